//! [`Endpoint`]: one side of a node's channel — its iceoryx2 ports.

use crate::message::{Envelope, MessageKind, FLAG_PAYLOAD_IS_INPUT};
use crate::owner::ActAs;
use crate::{ipc_err, IpcError, PayloadIdentity};
use iceoryx2::prelude::*;
use iceoryx2_cal::event::ListenerWaitError;
use remotemedia_runtime_core::data::codec::{FrameSink, FrameWriter};
use remotemedia_runtime_core::data::RuntimeData;
use std::mem::MaybeUninit;
use std::time::Duration;

pub use crate::service::Service;

/// Where a channel lives: its service name and the iceoryx2 files it uses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelSpec {
    /// Base service name; the four services hang below it.
    pub name: String,
    /// Directory of all of the channel's files (the default is [`DEFAULT_ROOT`]).
    pub root: String,
    /// Prefix of every file iceoryx2 creates for this channel in `root`.
    pub prefix: String,
    /// The uid and gid the runtime's side creates and opens the channel's files as, when
    /// they are not its own: a runtime running as root shares a channel with a worker that
    /// runs as an unprivileged user (in a container), and iceoryx2 makes every file
    /// readable by its owner only. `None`: the process's own ids. Never sent to workers.
    #[serde(default, skip_serializing)]
    pub owner: Option<(u32, u32)>,
}

/// Default [`ChannelSpec::root`]: on the tmpfs of `/dev/shm`, in a directory of its own.
pub const DEFAULT_ROOT: &str = "/dev/shm/remotemedia/";
/// Default [`ChannelSpec::prefix`].
pub const DEFAULT_PREFIX: &str = "remotemedia_";

/// Samples a subscriber may queue before the publisher waits (a side must never send more
/// than this unanswered while the other side may be waiting to send to it).
pub const BUFFER_SIZE: usize = 32;
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
    /// [`ChannelSpec::owner`]: the ids file access happens as.
    owner: Option<(u32, u32)>,
    /// With an owner: what is known to exist already, so that calls which cannot create a
    /// file skip the id switch (it costs about 7 µs: the kernel copies the credentials).
    files: KnownFiles,
}

/// Which of a channel's files exist, for an endpoint that acts as another user: a send
/// may create the connection to the peer (until one send reached it) and a larger data
/// segment (when a loan is larger than every one before); a receive may create the
/// connection (until one sample arrived). Opening the peer's files needs no switch: the
/// runtime may open every file (it is root when it acts as another user).
#[derive(Debug, Default)]
struct KnownFiles {
    delivered: std::sync::atomic::AtomicBool,
    largest_loan: std::sync::atomic::AtomicUsize,
    received: std::sync::atomic::AtomicBool,
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
        let _owner = ActAs::new(spec.owner);
        // Event services are Unix sockets in the root, named by prefix and a 40-digit id:
        // a socket path holds at most 107 bytes.
        if spec.root.len() + spec.prefix.len() + 48 > 107 {
            return Err(IpcError(format!(
                "the iceoryx2 root '{}' and prefix '{}' are too long for its Unix sockets: keep them under {} bytes together",
                spec.root,
                spec.prefix,
                107 - 48
            )));
        }
        if matches!(side, Side::Host) {
            // The event sockets live in the root: it must exist before any service does.
            std::fs::create_dir_all(&spec.root).map_err(|e| {
                IpcError(format!(
                    "cannot create the iceoryx2 root {}: {e}",
                    spec.root
                ))
            })?;
        }
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
            owner: spec.owner,
            files: KnownFiles::default(),
        })
    }

    /// Sends one message whose payload `write` puts into `len` bytes of loaned shared
    /// memory. Bytes `write` does not put are zeroed, so every byte sent is initialized.
    /// Does not wake the other side: call [`notify`](Self::notify) after the last message
    /// of a batch.
    fn send_with(
        &self,
        kind: MessageKind,
        flags: u32,
        instance: u32,
        seq: u64,
        len: usize,
        write: impl FnOnce(&mut UninitSink<'_>),
    ) -> Result<(), IpcError> {
        use std::sync::atomic::Ordering::{Acquire, Release};
        // A loan may create a larger data segment; a send may connect to the peer.
        let may_create =
            !self.files.delivered.load(Acquire) || len > self.files.largest_loan.load(Acquire);
        let _owner = ActAs::new(self.owner.filter(|_| may_create));
        let mut sample = self
            .publisher
            .loan_slice_uninit(len)
            .map_err(|e| ipc_err(&format!("cannot loan {len} bytes of shared memory"), e))?;
        *sample.user_header_mut() = Envelope {
            kind: kind.code(),
            flags,
            seq,
            instance,
            reserved: 0,
        };
        let mut sink = UninitSink::new(sample.payload_mut());
        write(&mut sink);
        sink.zero_rest();
        // SAFETY: `UninitSink` wrote every byte of the payload (what `write` put, zeros
        // for the rest) through `MaybeUninit::write_copy_of_slice`.
        let sample = unsafe { sample.assume_init() };
        let delivered = sample
            .send()
            .map_err(|e| ipc_err("cannot send the sample", e))?;
        if self.owner.is_some() && may_create && delivered > 0 {
            self.files.largest_loan.fetch_max(len, Release);
            self.files.delivered.store(true, Release);
        }
        Ok(())
    }

    /// Sends a message for `instance` with `payload` copied in.
    pub fn send_bytes(
        &self,
        kind: MessageKind,
        instance: u32,
        seq: u64,
        payload: &[u8],
    ) -> Result<(), IpcError> {
        self.send_with(kind, 0, instance, seq, payload.len(), |out| {
            out.put(payload)
        })
    }

    /// Sends a message for `instance` without payload (`Flush`, `Shutdown`, `Done`).
    pub fn send_control(&self, kind: MessageKind, instance: u32, seq: u64) -> Result<(), IpcError> {
        self.send_with(kind, 0, instance, seq, 0, |_| {})
    }

    /// Sends `data` as one frame. When its payload is the buffer `input` identifies (a
    /// node returning the input it is processing), only the frame head is sent, flagged
    /// [`FLAG_PAYLOAD_IS_INPUT`]: the receiver already holds the payload.
    pub fn send_frame(
        &self,
        kind: MessageKind,
        instance: u32,
        seq: u64,
        data: &RuntimeData,
        input: Option<PayloadIdentity>,
    ) -> Result<(), IpcError> {
        let writer = FrameWriter::new(data);
        if input.is_some() && crate::payload_identity(data) == input {
            return self.send_with(
                kind,
                FLAG_PAYLOAD_IS_INPUT,
                instance,
                seq,
                writer.head_len(),
                |out| writer.write_head_to(out),
            );
        }
        self.send_with(kind, 0, instance, seq, writer.len(), |out| {
            writer.write_to(out)
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
        use std::sync::atomic::Ordering::{Acquire, Release};
        // The first receive may create the connection to the sender.
        let may_create = !self.files.received.load(Acquire);
        let _owner = ActAs::new(self.owner.filter(|_| may_create));
        let received = self
            .subscriber
            .receive()
            .map_err(|e| ipc_err("cannot receive", e))?;
        if may_create && received.is_some() {
            self.files.received.store(true, Release);
        }
        Ok(received)
    }

    /// Whether a sample is waiting to be received.
    pub fn has_pending(&self) -> bool {
        self.subscriber.has_samples().unwrap_or(false)
    }

    /// Consumes pending wake-ups without blocking; returns how many there were.
    pub fn take_wakeups(&self) -> Result<u64, IpcError> {
        match self.listener.try_wait(|_| {}) {
            // An interrupted read (a signal, the process being frozen and thawed) read
            // nothing: the next wait reads the wake-ups.
            Err(ListenerWaitError::InterruptSignal) => Ok(0),
            other => other.map_err(|e| ipc_err("cannot read wake-ups", e)),
        }
    }

    /// Blocks until the other side notifies or `timeout` passes. An interrupted wait (a
    /// signal; a container being paused and resumed) returns early, like a wake-up: the
    /// caller looks for messages and waits again.
    pub fn wait(&self, timeout: Duration) -> Result<(), IpcError> {
        match self.listener.timed_wait(|_| {}, timeout) {
            Ok(_) | Err(ListenerWaitError::InterruptSignal) => Ok(()),
            Err(e) => Err(ipc_err("cannot wait for a wake-up", e)),
        }
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
        let _owner = ActAs::new(self.owner);
        let state = self
            .node
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_cleanup_dead_nodes();
        tracing::debug!(?state, "iceoryx2 dead-node cleanup");
    }
}

/// Writes into loaned, uninitialized shared memory from its start, keeping count of what
/// it has written, so the sender can tell that every byte is initialized.
pub(crate) struct UninitSink<'a> {
    out: &'a mut [MaybeUninit<u8>],
    written: usize,
}

impl<'a> UninitSink<'a> {
    fn new(out: &'a mut [MaybeUninit<u8>]) -> Self {
        Self { out, written: 0 }
    }

    /// Zeroes what was not written.
    fn zero_rest(&mut self) {
        for byte in &mut self.out[self.written..] {
            byte.write(0);
        }
        self.written = self.out.len();
    }
}

impl FrameSink for UninitSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = (self.written + bytes.len()).min(self.out.len());
        let n = end - self.written;
        self.out[self.written..end].write_copy_of_slice(&bytes[..n]);
        self.written = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_writes_in_order_and_zeroes_the_rest() {
        let mut memory = [MaybeUninit::<u8>::uninit(); 8];
        let mut sink = UninitSink::new(&mut memory);
        sink.put(&[1, 2]);
        sink.put(&[3]);
        assert_eq!(sink.written, 3);
        sink.zero_rest();
        // SAFETY: the sink has written all eight bytes.
        let bytes: Vec<u8> = memory.iter().map(|b| unsafe { b.assume_init() }).collect();
        assert_eq!(bytes, [1, 2, 3, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn the_sink_never_writes_past_the_loan() {
        let mut memory = [MaybeUninit::<u8>::uninit(); 2];
        let mut sink = UninitSink::new(&mut memory);
        sink.put(&[1, 2, 3]);
        assert_eq!(sink.written, 2);
    }
}
