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
}

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
    /// Runtime → worker: clean up and exit.
    Shutdown,
    /// Worker → runtime: the node is initialized (payload: JSON facts about the worker).
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
