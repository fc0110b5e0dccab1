//! `remotemedia-ipc`: the worker protocol — the wire between the runtime and one
//! out-of-process node, over iceoryx2 shared memory.
//!
//! Both ends use this crate: the executors that start workers (`remotemedia-multiprocess`,
//! `remotemedia-docker`) on the runtime side, and the worker loop inside the `remotemedia`
//! Python extension on the other. The protocol is therefore written once: the services,
//! the message envelope, how frames are written into and read out of shared memory, the
//! polling policy, and the error report.
//!
//! # Channel
//!
//! Each worker process gets a *channel*: two publish/subscribe services carrying byte
//! slices (`<name>/in`: runtime → worker, `<name>/out`: worker → runtime) and two event
//! services (`<name>/in.event`, `<name>/out.event`) whose notifications wake the other
//! side, so an idle side sleeps in the kernel instead of polling. Every sample carries an
//! [`Envelope`] (message kind, flags, sequence number, node instance) as its user header;
//! data samples carry one item encoded with the runtime's frame codec
//! ([`remotemedia_runtime_core::data::codec`]), written straight into the loaned shared
//! memory ([`Endpoint::send_frame`]) and read in place by the receiver
//! ([`SampleHolder::decode`]).
//!
//! A process hosts one or more *instances* of one node type and configuration (one per
//! session using it; a model is loaded once per process), each with its own state;
//! [`Envelope::instance`] says which one a message is for, [`PROCESS`] the process itself.
//! The runtime side ([`Endpoint::host`]) creates the services and its ports before the
//! worker starts; the worker ([`Endpoint::worker`]) opens them, finds the node class and
//! answers `Ready` to [`PROCESS`] with what the class declares (how many instances it
//! lets one process host).
//!
//! # Conversation
//!
//! ```text
//! runtime                               worker
//!                              ◀───────  Ready(PROCESS, {pid, node_class, share})
//!   Open(i, {node_id, params}) ───────▶  node = Class(...); node.initialize()
//!                              ◀───────  Ready(i)             or Error(i, report)
//!   Data(i, seq, frame)       ───────▶   node.process(item)
//!                              ◀───────  Output(i, seq, frame) (zero or more, as produced)
//!                              ◀───────  Done(i, seq)          or Error(i, seq, report)
//!   Flush(i, seq)             ───────▶   node.flush()
//!                              ◀───────  Output(i, seq, ..)*, Done(i, seq)
//!   Shutdown(i, seq)          ───────▶   node.cleanup()
//!                              ◀───────  Done(i, seq)
//!   Shutdown(PROCESS)         ───────▶   cleanup of every instance left, exit
//! ```
//!
//! Calls of different instances are queued in the worker; when several instances' items
//! are waiting at once and the class has a `process_batch` hook, they go to it in one call.
//!
//! An `Output` whose payload is exactly the payload of the input being processed (a node
//! returning its input audio unchanged) is sent as its frame head only, flagged
//! [`FLAG_PAYLOAD_IS_INPUT`]; the runtime reuses the buffer it sent.
//!
//! # Waiting
//!
//! After a message, each side polls briefly for the answer before it sleeps on the event
//! service ([`Spin`]): a quick node answers sooner than a sleep/wake round trip, and a
//! side whose polling keeps missing (a slow model, a stream paced in real time) stops
//! polling for a while.

mod endpoint;
mod frames;
mod message;
mod owner;
mod service;
mod spin;

pub use endpoint::{
    ChannelSpec, Endpoint, Received, Service, BUFFER_SIZE, DEFAULT_PREFIX, DEFAULT_ROOT,
    MAX_BORROWED,
};
pub use frames::{payload_identity, PayloadIdentity, SampleHolder};
pub use message::{envelope, Envelope, MessageKind, FLAG_PAYLOAD_IS_INPUT, PROCESS};
/// A node failure as a worker reports it (the core's type: the WASM engine's Python
/// backend words failures the same way).
pub use remotemedia_runtime_core::nodes::ErrorReport;
pub use spin::Spin;

/// An IPC failure, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcError(pub String);

impl std::fmt::Display for IpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IpcError {}

pub(crate) fn ipc_err(what: &str, e: impl std::fmt::Debug) -> IpcError {
    IpcError(format!("{what}: {e:?}"))
}
