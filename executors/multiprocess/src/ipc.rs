//! The wire between the runtime and one Python worker: iceoryx2 shared memory.
//!
//! Each node instance gets a *channel*: two publish/subscribe services carrying byte slices
//! (`<name>/in`: runtime → worker, `<name>/out`: worker → runtime) and two event services
//! (`<name>/in.event`, `<name>/out.event`) whose notifications wake the other side, so an
//! idle side sleeps in the kernel instead of polling. Every sample carries an [`Envelope`]
//! (message kind, flags, sequence number) as its user header; data samples carry one item
//! encoded with the runtime's frame codec
//! ([`remotemedia_runtime_core::data::codec`]), written straight into the loaned shared
//! memory and read in place by the receiver.
//!
//! The runtime side ([`Endpoint::host`]) creates the services and its ports before the
//! worker starts; the worker ([`Endpoint::worker`]) opens them and answers
//! [`MessageKind::Ready`] once its node is initialized. Both sides are this module, so the
//! protocol is written once: the worker side runs inside the `remotemedia` Python
//! extension.
//!
//! Conversation, per input item `seq`:
//!
//! ```text
//! runtime                               worker
//!   Data(seq, frame)          ───────▶   node.process(item)
//!                              ◀───────  Output(seq, frame)   (zero or more)
//!                              ◀───────  Done(seq)            or Error(seq, report)
//!   Flush(seq)                ───────▶   node.flush()
//!                              ◀───────  Output(seq, ..)*, Done(seq)
//!   Shutdown                  ───────▶   node.cleanup(), exit
//! ```
//!
//! An `Output` whose payload is exactly the payload of the input being processed (a node
//! returning its input audio unchanged) is sent as its frame head only, flagged
//! [`FLAG_PAYLOAD_IS_INPUT`]; the runtime reuses the buffer it sent.

use iceoryx2::prelude::*;
use std::mem::MaybeUninit;
use std::time::Duration;

/// The iceoryx2 service variant both sides use: ports that may move between threads.
pub type Service = ipc_threadsafe::Service;

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
    /// Worker → runtime: the node raised (payload: JSON `{message, traceback, phase}`).
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

/// An IPC failure, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcError(pub String);

impl std::fmt::Display for IpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IpcError {}

fn ipc_err(what: &str, e: impl std::fmt::Debug) -> IpcError {
    IpcError(format!("{what}: {e:?}"))
}

/// Where a channel lives: its service name and the iceoryx2 files it uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelSpec {
    /// Base service name; the four services hang below it.
    pub name: String,
    /// Directory of iceoryx2's bookkeeping files (the default is `/tmp/iceoryx2/`).
    pub root: String,
    /// Prefix of every file iceoryx2 creates for this channel, in `root` and `/dev/shm`.
    pub prefix: String,
}

/// Default [`ChannelSpec::root`].
pub const DEFAULT_ROOT: &str = "/tmp/iceoryx2/";
/// Default [`ChannelSpec::prefix`].
pub const DEFAULT_PREFIX: &str = "remotemedia_";

/// Samples a subscriber may queue before the publisher waits.
const BUFFER_SIZE: usize = 32;
/// Samples a subscriber may hold at once; the worker keeps input views alive this way.
pub const MAX_BORROWED: usize = 16;
/// Slices start this large and grow by powers of two on demand (no size cap).
const INITIAL_SLICE_LEN: usize = 64 * 1024;
/// Payloads are aligned for in-place views of f32/f64/i64 elements.
const PAYLOAD_ALIGNMENT: usize = 16;

impl ChannelSpec {
    fn config(&self) -> Result<Config, IpcError> {
        let mut config = Config::default();
        let root = Path::new(self.root.as_bytes())
            .map_err(|e| ipc_err(&format!("invalid iceoryx2 root '{}'", self.root), e))?;
        config.global.set_root_path(&root);
        config.global.prefix = FileName::new(self.prefix.as_bytes())
            .map_err(|e| ipc_err(&format!("invalid iceoryx2 prefix '{}'", self.prefix), e))?;
        Ok(config)
    }

    fn service_name(&self, suffix: &str) -> Result<ServiceName, IpcError> {
        let name = format!("{}/{suffix}", self.name);
        ServiceName::new(&name).map_err(|e| ipc_err(&format!("invalid service name '{name}'"), e))
    }
}

type Publisher = iceoryx2::port::publisher::Publisher<Service, [u8], Envelope>;
type Subscriber = iceoryx2::port::subscriber::Subscriber<Service, [u8], Envelope>;
type Notifier = iceoryx2::port::notifier::Notifier<Service>;
type Listener = iceoryx2::port::listener::Listener<Service>;

/// A received sample: its envelope and its bytes, which stay mapped while it lives.
pub type Received = iceoryx2::sample::Sample<Service, [u8], Envelope>;

/// One side of a channel: a publisher and notifier towards the other side, a subscriber
/// and listener from it.
#[derive(Debug)]
pub struct Endpoint {
    publisher: Publisher,
    subscriber: Subscriber,
    notifier: Notifier,
    listener: Listener,
    // Behind a lock so an endpoint can be shared between threads (the node itself is only
    // used for dead-peer cleanup).
    node: std::sync::Mutex<Node<Service>>,
}

enum Side {
    Host,
    Worker,
}

impl Endpoint {
    /// Creates the channel's services and the runtime's ports.
    pub fn host(spec: &ChannelSpec) -> Result<Self, IpcError> {
        Self::open(spec, Side::Host)
    }

    /// Opens an existing channel from the worker's side.
    pub fn worker(spec: &ChannelSpec) -> Result<Self, IpcError> {
        Self::open(spec, Side::Worker)
    }

    fn open(spec: &ChannelSpec, side: Side) -> Result<Self, IpcError> {
        let config = spec.config()?;
        let node = NodeBuilder::new()
            .config(&config)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Service>()
            .map_err(|e| ipc_err("cannot create the iceoryx2 node", e))?;
        let alignment = Alignment::new(PAYLOAD_ALIGNMENT)
            .ok_or_else(|| IpcError("invalid payload alignment".to_owned()))?;
        let pubsub = |suffix: &str| -> Result<_, IpcError> {
            let builder = node
                .service_builder(&spec.service_name(suffix)?)
                .publish_subscribe::<[u8]>()
                .user_header::<Envelope>()
                .payload_alignment(alignment)
                .max_publishers(1)
                .max_subscribers(1)
                .max_nodes(2)
                .history_size(0)
                .subscriber_max_buffer_size(BUFFER_SIZE)
                .subscriber_max_borrowed_samples(MAX_BORROWED)
                .enable_safe_overflow(false);
            match side {
                Side::Host => builder.create().map_err(|e| {
                    ipc_err(&format!("cannot create service {}/{suffix}", spec.name), e)
                }),
                Side::Worker => builder.open().map_err(|e| {
                    ipc_err(&format!("cannot open service {}/{suffix}", spec.name), e)
                }),
            }
        };
        let event = |suffix: &str| -> Result<_, IpcError> {
            let builder = node
                .service_builder(&spec.service_name(suffix)?)
                .event()
                .max_notifiers(1)
                .max_listeners(1)
                .max_nodes(2);
            match side {
                Side::Host => builder.create().map_err(|e| {
                    ipc_err(&format!("cannot create service {}/{suffix}", spec.name), e)
                }),
                Side::Worker => builder.open().map_err(|e| {
                    ipc_err(&format!("cannot open service {}/{suffix}", spec.name), e)
                }),
            }
        };
        let (send_suffix, recv_suffix) = match side {
            Side::Host => ("in", "out"),
            Side::Worker => ("out", "in"),
        };
        let send_service = pubsub(send_suffix)?;
        let recv_service = pubsub(recv_suffix)?;
        let send_event = event(&format!("{send_suffix}.event"))?;
        let recv_event = event(&format!("{recv_suffix}.event"))?;
        let publisher = send_service
            .publisher_builder()
            .initial_max_slice_len(INITIAL_SLICE_LEN)
            .allocation_strategy(AllocationStrategy::PowerOfTwo)
            .max_loaned_samples(2)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(|e| ipc_err("cannot create the publisher", e))?;
        let subscriber = recv_service
            .subscriber_builder()
            .buffer_size(BUFFER_SIZE)
            .create()
            .map_err(|e| ipc_err("cannot create the subscriber", e))?;
        let notifier = send_event
            .notifier_builder()
            .create()
            .map_err(|e| ipc_err("cannot create the notifier", e))?;
        let listener = recv_event
            .listener_builder()
            .create()
            .map_err(|e| ipc_err("cannot create the listener", e))?;
        Ok(Self {
            publisher,
            subscriber,
            notifier,
            listener,
            node: std::sync::Mutex::new(node),
        })
    }

    /// Sends one message whose payload `write` produces into `len` bytes of shared memory.
    /// `write` must fill all `len` bytes. Does not wake the other side: call
    /// [`notify`](Self::notify) after the last message of a batch.
    pub fn send_with(
        &self,
        kind: MessageKind,
        flags: u32,
        seq: u64,
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Result<(), IpcError>,
    ) -> Result<(), IpcError> {
        let mut sample = self
            .publisher
            .loan_slice_uninit(len)
            .map_err(|e| ipc_err(&format!("cannot loan {len} bytes of shared memory"), e))?;
        *sample.user_header_mut() = Envelope {
            kind: kind.code(),
            flags,
            seq,
        };
        write(init_bytes(sample.payload_mut()))?;
        // SAFETY: `init_bytes` documents why every byte is initialized; `write` wrote them.
        let sample = unsafe { sample.assume_init() };
        sample
            .send()
            .map_err(|e| ipc_err("cannot send the sample", e))?;
        Ok(())
    }

    /// Sends a message with `payload` copied in.
    pub fn send_bytes(&self, kind: MessageKind, seq: u64, payload: &[u8]) -> Result<(), IpcError> {
        self.send_with(kind, 0, seq, payload.len(), |out| {
            out.copy_from_slice(payload);
            Ok(())
        })
    }

    /// Wakes the other side.
    pub fn notify(&self) -> Result<(), IpcError> {
        self.notifier
            .notify()
            .map(|_| ())
            .map_err(|e| ipc_err("cannot notify the other side", e))
    }

    /// The next received sample, if one is queued.
    pub fn receive(&self) -> Result<Option<Received>, IpcError> {
        self.subscriber
            .receive()
            .map_err(|e| ipc_err("cannot receive", e))
    }

    /// Whether a sample is waiting to be received.
    pub fn has_pending(&self) -> bool {
        self.subscriber.has_samples().unwrap_or(false)
    }

    /// Consumes pending wake-ups without blocking; returns how many there were.
    pub fn take_wakeups(&self) -> Result<u64, IpcError> {
        self.listener
            .try_wait(|_| {})
            .map_err(|e| ipc_err("cannot read wake-ups", e))
    }

    /// Blocks until the other side notifies or `timeout` passes.
    pub fn wait(&self, timeout: Duration) -> Result<(), IpcError> {
        self.listener
            .timed_wait(|_| {}, timeout)
            .map(|_| ())
            .map_err(|e| ipc_err("cannot wait for a wake-up", e))
    }

    /// The file descriptor that becomes readable when the other side notifies, for
    /// integration with an event loop (then call [`take_wakeups`](Self::take_wakeups)).
    pub fn wakeup_fd(&self) -> std::os::fd::RawFd {
        // SAFETY: only the number is read; the listener keeps the descriptor open.
        unsafe { self.listener.file_descriptor().native_handle() }
    }

    /// Removes the files of iceoryx2 nodes whose process died without cleaning up (a
    /// crashed worker).
    pub fn clean_up_dead_peers(&self) {
        let state = self
            .node
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_cleanup_dead_nodes();
        tracing::debug!(?state, "iceoryx2 dead-node cleanup");
    }
}

/// The envelope and kind of a received sample.
pub fn envelope(sample: &Received) -> (Option<MessageKind>, Envelope) {
    let envelope = *sample.user_header();
    (MessageKind::from_code(envelope.kind), envelope)
}

/// Views a loaned slice as bytes for writing.
fn init_bytes(buffer: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: the loaned memory is shared memory mapped from a file: the kernel zero-fills
    // it when it is first mapped and afterwards it holds earlier messages, so every byte is
    // initialized; `u8` has no invalid values. Callers write the whole slice before sending.
    unsafe { std::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast::<u8>(), buffer.len()) }
}
