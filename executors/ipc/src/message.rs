//! The envelope every sample carries, and what a message means.

use iceoryx2::prelude::ZeroCopySend;

/// Header of every sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ZeroCopySend)]
#[type_name("RemoteMediaEnvelope")]
#[repr(C)]
pub struct Envelope {
    /// A [`MessageKind`] as a number.
    pub kind: u32,
    /// Bit flags ([`FLAG_PAYLOAD_IS_INPUT`]).
    pub flags: u32,
    /// The input item this message belongs to.
    pub seq: u64,
    /// The node instance in the worker process it is for or from ([`PROCESS`] for the
    /// process itself): one process may host several instances of a node type.
    pub instance: u32,
    /// Zero.
    pub reserved: u32,
}

/// [`Envelope::instance`] of messages about the worker process itself, not an instance.
pub const PROCESS: u32 = u32::MAX;

/// The payload of this `Output` is the payload of the input being processed; only the
/// frame head was sent.
pub const FLAG_PAYLOAD_IS_INPUT: u32 = 1;

/// What a sample means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Runtime → worker: process this frame.
    Data,
    /// Runtime → worker: end of stream, emit what is buffered.
    Flush,
    /// Runtime → worker: clean up the instance (to [`PROCESS`]: clean up all, exit);
    /// the worker answers `Done` with the same `seq`.
    Shutdown,
    /// Runtime → worker: create and initialize an instance (payload: JSON
    /// `{"session_id", "node_id", "params"}`).
    Open,
    /// Worker → runtime: the instance is initialized (payload: JSON facts about it); to
    /// [`PROCESS`]: the node class was found (payload: JSON `{"pid", "python",
    /// "node_class", "share"}`, `share` being the instances the class lets one process host).
    Ready,
    /// Worker → runtime: one output item (payload: a frame).
    Output,
    /// Worker → runtime: every output of `seq` has been sent.
    Done,
    /// Worker → runtime: the node raised (payload: an [`ErrorReport`](crate::ErrorReport)).
    Error,
}

impl MessageKind {
    /// The number carried in [`Envelope::kind`].
    pub fn code(self) -> u32 {
        match self {
            MessageKind::Data => 1,
            MessageKind::Flush => 2,
            MessageKind::Shutdown => 3,
            MessageKind::Open => 4,
            MessageKind::Ready => 10,
            MessageKind::Output => 11,
            MessageKind::Done => 12,
            MessageKind::Error => 13,
        }
    }

    /// The kind a number stands for.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => MessageKind::Data,
            2 => MessageKind::Flush,
            3 => MessageKind::Shutdown,
            4 => MessageKind::Open,
            10 => MessageKind::Ready,
            11 => MessageKind::Output,
            12 => MessageKind::Done,
            13 => MessageKind::Error,
            _ => return None,
        })
    }
}

/// The kind and envelope of a received sample.
pub fn envelope(sample: &crate::Received) -> (Option<MessageKind>, Envelope) {
    let envelope = *sample.user_header();
    (MessageKind::from_code(envelope.kind), envelope)
}
