//! [`Host`]: one worker process and its channel, seen from the runtime, hosting one or
//! more node instances (one per session using it).
//!
//! Every instance's [`PythonNode`](crate::PythonNode) talks over the host's one channel;
//! a message from the worker names its instance. Whichever node is waiting receives: it
//! takes what the channel holds, keeps its own messages and puts the others' into their
//! inboxes (waking their nodes), so a host with one instance works exactly as a worker of
//! its own, without a router in between.

use crate::config::NodeSettings;
use crate::worker::Worker;
use bytes::Bytes;
use remotemedia_ipc::{
    envelope, Endpoint, Envelope, ErrorReport, IpcError, MessageKind, SampleHolder, PROCESS,
};
use remotemedia_runtime_core::data::{codec, RuntimeData};
use remotemedia_runtime_core::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Calls (an instance's open, item, flush or shutdown, each until its answer) in flight to
/// one worker at once. Below the worker's receive buffer, so the runtime never waits to
/// send — the worker may wait to send its outputs until the runtime reads, and a runtime
/// blocked sending to it would read no more.
const CALLS_IN_FLIGHT: usize = remotemedia_ipc::BUFFER_SIZE - 8;

/// Messages an instance's inbox holds before the others stop taking messages for it
/// from the channel (its node then takes them itself): a session that does not read
/// cannot make the runtime buffer without bound.
const INBOX_LIMIT: usize = 64;

/// A node waiting for its worker looks at the channel at least this often, wake-up or not
/// (as the worker does every second): a wake-up that never comes costs this much instead
/// of the whole call.
const RECHECK: Duration = Duration::from_millis(50);

/// A raw descriptor for [`AsyncFd`]; the owner keeps it open.
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The event-loop registrations of a running worker.
struct Watch {
    wakeup: AsyncFd<Fd>,
    exit: AsyncFd<Fd>,
}

/// One message from the worker, taken off the channel.
#[derive(Debug)]
pub(crate) struct Message {
    pub kind: Option<MessageKind>,
    pub envelope: Envelope,
    /// The payload: in shared memory (large frames) or copied out.
    pub payload: Bytes,
}

impl Message {
    /// The item a frame message carries. A head-only frame
    /// ([`FLAG_PAYLOAD_IS_INPUT`](remotemedia_ipc::FLAG_PAYLOAD_IS_INPUT)) takes its payload
    /// from `input`.
    pub fn item(&self, input: Option<&RuntimeData>) -> Result<RuntimeData> {
        let bad = |e: Error| Error::Node(format!("the Python worker sent a bad frame: {e}"));
        if self.envelope.flags & remotemedia_ipc::FLAG_PAYLOAD_IS_INPUT != 0 {
            let payload = input.and_then(codec::shared_payload).ok_or_else(|| {
                bad(Error::InvalidData(
                    "a frame refers to an input payload that does not exist".to_owned(),
                ))
            })?;
            let header = codec::parse_header_prefix(&self.payload, usize::MAX).map_err(bad)?;
            return codec::decode_parts(&header, payload).map_err(bad);
        }
        codec::decode(self.payload.clone()).map_err(bad)
    }

    /// The error report an `Error` message carries.
    pub fn report(&self) -> ErrorReport {
        ErrorReport::from_bytes(&self.payload)
    }
}

#[derive(Default)]
struct Inbox {
    queue: VecDeque<Message>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct Routes {
    inboxes: HashMap<u32, Inbox>,
    next_instance: u32,
}

/// What one wait ended with.
pub(crate) enum Wake {
    /// Something may have arrived.
    Message,
    /// The worker process has exited.
    Exited,
    /// The deadline passed.
    TimedOut,
}

/// A worker process with its channel; shared (`Arc`) by the nodes it hosts.
pub struct Host {
    // Dropped first: it refers to descriptors of `endpoint` and `worker`.
    watch: OnceLock<Watch>,
    endpoint: Endpoint,
    worker: Mutex<Box<dyn Worker>>,
    pid: u32,
    place: String,
    exit_fd: RawFd,
    holder: SampleHolder,
    routes: Mutex<Routes>,
    /// Places for calls in flight ([`CALLS_IN_FLIGHT`]).
    calls: Arc<Semaphore>,
    /// Instances the process may host (what the class declared, or the manifest's
    /// `share`), and how many it hosts now.
    capacity: usize,
    active: AtomicUsize,
    /// Set once no new instance may join (closing, dead, or a call was abandoned).
    closed: AtomicBool,
    /// Why the runtime killed the process, for the other instances' messages.
    killed_because: Mutex<Option<String>>,
    /// Facts the worker reported about itself.
    info: serde_json::Value,
    /// The interpreter, for hints.
    python: std::path::PathBuf,
    /// What the executor keeps while the process lives (its place under the worker limit,
    /// its share of a container): let go once the process is killed or gone.
    lease: Mutex<Option<Box<dyn Send + Sync>>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("pid", &self.pid)
            .field("capacity", &self.capacity)
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn ipc(e: IpcError) -> Error {
    Error::Node(e.to_string())
}

impl Host {
    /// Waits (until `deadline`) for the worker — started at `started` and handed its
    /// assignment — to report that it found its node class, and returns the host of
    /// that process. `share` (the manifest's) overrides how many instances the class lets
    /// one process host. `lease` lives as long as the process.
    pub async fn connect(
        worker: Box<dyn Worker>,
        endpoint: Endpoint,
        settings: &NodeSettings,
        started: Instant,
        lease: Box<dyn Send + Sync>,
    ) -> Result<Arc<Self>> {
        let pid = worker.pid();
        let place = worker.place();
        let exit_fd = worker.exit_fd();
        let mut host = Self {
            watch: OnceLock::new(),
            endpoint,
            worker: Mutex::new(worker),
            pid,
            place,
            exit_fd,
            holder: SampleHolder::for_host(),
            routes: Mutex::new(Routes::default()),
            calls: Arc::new(Semaphore::new(CALLS_IN_FLIGHT)),
            capacity: 1,
            active: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            killed_because: Mutex::new(None),
            info: serde_json::Value::Null,
            python: settings.python.clone(),
            lease: Mutex::new(Some(lease)),
        };
        host.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .inboxes
            .insert(PROCESS, Inbox::default());
        let deadline = started + settings.init_timeout;
        let mut exited = false;
        loop {
            while let Some(message) = host.take(PROCESS)? {
                match message.kind {
                    Some(MessageKind::Ready) => {
                        let info: serde_json::Value =
                            serde_json::from_slice(&message.payload).unwrap_or_default();
                        let declared = info["share"].as_u64().unwrap_or(1) as usize;
                        host.capacity = settings
                            .share
                            .unwrap_or(declared)
                            .clamp(1, crate::config::MAX_SHARE);
                        host.info = info;
                        tracing::debug!(pid, info = %host.info, capacity = host.capacity,
                            elapsed_ms = started.elapsed().as_millis() as u64, "Python worker started");
                        return Ok(Arc::new(host));
                    }
                    Some(MessageKind::Error) => {
                        let report = message.report();
                        // The worker waits for this before it exits.
                        host.close(settings.shutdown_timeout).await;
                        return Err(Error::Node(report.to_string()));
                    }
                    _ => tracing::warn!(
                        kind = message.envelope.kind,
                        "ignoring an unexpected message from a starting Python worker"
                    ),
                }
            }
            if exited {
                return Err(Error::Node(host.died("starting")));
            }
            match host.wait(PROCESS, Some(deadline)).await? {
                Wake::Message => {}
                Wake::Exited => exited = true,
                Wake::TimedOut => {
                    return Err(Error::Node(host.hung(
                        "starting",
                        settings.init_timeout,
                        "init_timeout_ms",
                    )))
                }
            }
        }
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Instances it may host.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Instances it hosts now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Whether a new instance may join: running, open, and a place free.
    pub(crate) fn has_room(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.active() < self.capacity && self.is_running()
    }

    /// Whether the process still runs.
    pub fn is_running(&self) -> bool {
        self.worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_running()
    }

    /// No new instance may join (the process is going away).
    pub(crate) fn close_to_new(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// A new instance: its number, with an inbox.
    pub(crate) fn add_instance(&self) -> u32 {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let instance = routes.next_instance;
        routes.next_instance = routes.next_instance.wrapping_add(1) % PROCESS;
        routes.inboxes.insert(instance, Inbox::default());
        self.active.fetch_add(1, Ordering::AcqRel);
        instance
    }

    /// Forgets an instance; what still arrives for it is dropped. Returns how many
    /// instances are left.
    pub(crate) fn remove_instance(&self, instance: u32) -> usize {
        let removed = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .inboxes
            .remove(&instance)
            .is_some();
        if removed {
            self.active.fetch_sub(1, Ordering::AcqRel) - 1
        } else {
            self.active()
        }
    }

    /// The next message for `instance`. Everything the channel holds is first put into
    /// the inboxes of the instances it is for: whoever takes, or was woken, receives for
    /// all, so no message stays behind a consumed wake-up.
    pub(crate) fn take(&self, instance: u32) -> Result<Option<Message>> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        self.drain(&mut routes, instance)?;
        Ok(routes
            .inboxes
            .get_mut(&instance)
            .and_then(|inbox| inbox.queue.pop_front()))
    }

    /// Moves what the channel holds into the inboxes, waking their nodes (except
    /// `caller`'s, which is running). Stops while an inbox is full: its node takes the
    /// rest, draining again with every message it takes.
    fn drain(&self, routes: &mut Routes, caller: u32) -> Result<()> {
        loop {
            let Some(sample) = self.endpoint.receive().map_err(ipc)? else {
                return Ok(());
            };
            let (kind, envelope) = envelope(&sample);
            let message = Message {
                kind,
                envelope,
                payload: self.holder.bytes(sample),
            };
            match routes.inboxes.get_mut(&envelope.instance) {
                Some(inbox) => {
                    inbox.queue.push_back(message);
                    if envelope.instance != caller {
                        inbox.notify.notify_one();
                    }
                    if inbox.queue.len() >= INBOX_LIMIT {
                        return Ok(());
                    }
                }
                // An instance that left (its session ended during a call).
                None => tracing::debug!(
                    instance = envelope.instance,
                    kind = envelope.kind,
                    "dropping a message for an instance that has left"
                ),
            }
        }
    }

    /// Whether something may be waiting for `instance` (for polling).
    pub(crate) fn has_pending(&self, instance: u32) -> bool {
        if self.endpoint.has_pending() {
            return true;
        }
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .inboxes
            .get(&instance)
            .is_some_and(|inbox| !inbox.queue.is_empty())
    }

    fn watch(&self) -> Result<&Watch> {
        if let Some(watch) = self.watch.get() {
            return Ok(watch);
        }
        let register = |fd: RawFd| {
            // SAFETY: the descriptor belongs to `endpoint` or `worker`, which stay alive
            // and keep it open longer than `watch` (declared first, dropped first).
            unsafe { AsyncFd::register_with_interest(Fd(fd), tokio::io::Interest::READABLE) }
                .map_err(|e| Error::Node(format!("cannot watch the Python worker: {e}")))
        };
        let watch = Watch {
            wakeup: register(self.endpoint.wakeup_fd())?,
            exit: register(self.exit_fd)?,
        };
        // Another node may have registered meanwhile (the descriptors are the same):
        // keep the first.
        let _ = self.watch.set(watch);
        self.watch
            .get()
            .ok_or_else(|| Error::Node("the Python worker is not watched".to_owned()))
    }

    /// Waits until the worker notifies, a message for `instance` is put into its inbox,
    /// the worker exits, or `deadline` passes.
    pub(crate) async fn wait(&self, instance: u32, deadline: Option<Instant>) -> Result<Wake> {
        let watch = self.watch()?;
        let notify = {
            let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            match routes.inboxes.get(&instance) {
                Some(inbox) if !inbox.queue.is_empty() => return Ok(Wake::Message),
                Some(inbox) => Arc::clone(&inbox.notify),
                None => Arc::new(Notify::new()),
            }
        };
        let recheck = Instant::now() + RECHECK;
        let until = deadline.map_or(recheck, |at| at.min(recheck));
        let sleep = tokio::time::sleep_until(until.into());
        tokio::select! {
            ready = watch.wakeup.readable() => {
                let mut guard = ready.map_err(|e| Error::Node(format!("cannot wait for the Python worker: {e}")))?;
                let taken = self.endpoint.take_wakeups();
                // Every pending wake-up was read; a later one re-arms the descriptor.
                guard.clear_ready();
                taken.map_err(ipc)?;
                // What the wake-up announced goes to the inboxes now, before this task
                // can be cancelled: the other nodes waiting on this process are not woken
                // by the descriptor again.
                let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
                self.drain(&mut routes, instance)?;
                Ok(Wake::Message)
            }
            _ = notify.notified() => Ok(Wake::Message),
            ready = watch.exit.readable() => {
                // The descriptor stays readable once the process has exited.
                let _exited = ready.map_err(|e| Error::Node(format!("cannot watch the Python worker: {e}")))?;
                Ok(Wake::Exited)
            }
            _ = sleep => {
                if deadline.is_some_and(|at| Instant::now() >= at) {
                    return Ok(Wake::TimedOut);
                }
                let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
                self.drain(&mut routes, instance)?;
                if routes.inboxes.get(&instance).is_some_and(|inbox| !inbox.queue.is_empty()) {
                    tracing::debug!(pid = self.pid, instance,
                        "a message for a waiting node was found without a wake-up");
                }
                Ok(Wake::Message)
            }
        }
    }

    /// A place for one call in flight, held until its answer has arrived; waits while the
    /// worker has [`CALLS_IN_FLIGHT`] calls queued.
    pub(crate) async fn call_place(&self) -> OwnedSemaphorePermit {
        match Arc::clone(&self.calls).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => Arc::clone(&self.calls)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed"),
        }
    }

    /// Sends `data` to `instance` as call `seq` and wakes the worker.
    pub(crate) fn send_item(
        &self,
        instance: u32,
        seq: u64,
        data: &RuntimeData,
    ) -> std::result::Result<(), IpcError> {
        self.endpoint
            .send_frame(MessageKind::Data, instance, seq, data, None)
            .and_then(|_| self.endpoint.notify())
    }

    /// Sends a message without payload and wakes the worker.
    pub(crate) fn send_control(
        &self,
        kind: MessageKind,
        instance: u32,
        seq: u64,
    ) -> std::result::Result<(), IpcError> {
        self.endpoint
            .send_control(kind, instance, seq)
            .and_then(|_| self.endpoint.notify())
    }

    /// Asks the worker to create and initialize `instance` with `payload` (JSON).
    pub(crate) fn send_open(
        &self,
        instance: u32,
        payload: &serde_json::Value,
    ) -> std::result::Result<(), IpcError> {
        self.endpoint
            .send_bytes(
                MessageKind::Open,
                instance,
                0,
                payload.to_string().as_bytes(),
            )
            .and_then(|_| self.endpoint.notify())
    }

    /// How the process ended, if it has.
    fn status(&self) -> Option<String> {
        self.worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ended()
            .map(|ended| ended.description)
    }

    /// Kills the process with everything it started, saying why (for the messages of
    /// the other instances it hosted).
    pub(crate) fn kill(&self, because: Option<String>) {
        self.close_to_new();
        if let Some(because) = because {
            let mut reason = self
                .killed_because
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            reason.get_or_insert(because);
        }
        self.worker.lock().unwrap_or_else(|p| p.into_inner()).kill();
        self.endpoint.clean_up_dead_peers();
    }

    fn tail(&self) -> String {
        self.worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .final_output_tail()
    }

    /// `the Python worker (pid N...)` for messages.
    fn name(&self) -> String {
        format!("the Python worker (pid {}{})", self.pid, self.place)
    }

    /// Describes a worker that exited while `doing`, with what it printed last, and
    /// kills what is left.
    pub(crate) fn died(&self, doing: &str) -> String {
        let status = self.status().unwrap_or_else(|| "stopped".to_owned());
        // Kill the group first: then the output pipe ends and its last lines are read.
        self.kill(None);
        let tail = self.tail();
        let reason = self
            .killed_because
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut message = match reason {
            Some(reason) => format!("{} {status} while {doing}: {reason}", self.name()),
            None => format!("{} {status} while {doing}", self.name()),
        };
        if self.capacity > 1 {
            message.push_str(&format!(
                " (the process hosted up to {} sessions' instances of this node)",
                self.capacity
            ));
        }
        if let Some(hint) = import_hint(&tail, &self.python) {
            message.push_str(&format!("; {hint}"));
        }
        if !tail.is_empty() {
            message.push_str(&format!("\n--- worker output (last lines) ---\n{tail}"));
        }
        message
    }

    /// Kills a worker that did not finish `doing` within `limit` and describes it.
    pub(crate) fn hung(&self, doing: &str, limit: Duration, setting: &str) -> String {
        let what = format!(
            "did not finish {doing} within {:.1} s ({setting}); it was killed",
            limit.as_secs_f64()
        );
        self.kill(Some(format!("another instance in it {what}")));
        let tail = self.tail();
        let mut message = format!("{} {what}", self.name());
        if !tail.is_empty() {
            message.push_str(&format!("\n--- worker output (last lines) ---\n{tail}"));
        }
        message
    }

    /// Ends the process in order: asks it to clean up and exit, waits up to `timeout`,
    /// then kills what is left.
    pub(crate) async fn close(&self, timeout: Duration) {
        self.close_to_new();
        let was_running = self.is_running();
        if was_running && self.send_control(MessageKind::Shutdown, PROCESS, 0).is_ok() {
            let deadline = Instant::now() + timeout;
            while self.is_running() {
                match self.wait(PROCESS, Some(deadline)).await {
                    Ok(Wake::Exited) => break,
                    Ok(Wake::Message) => {
                        // Drain anything late (e.g. an error from a cleanup()).
                        while let Ok(Some(message)) = self.take(PROCESS) {
                            if message.kind == Some(MessageKind::Error) {
                                tracing::warn!(pid = self.pid, "{}", message.report());
                            }
                        }
                    }
                    Ok(Wake::TimedOut) | Err(_) => {
                        tracing::warn!(pid = self.pid,
                            "the Python worker did not exit within the shutdown timeout; killing it");
                        break;
                    }
                }
            }
        }
        self.kill(None);
        let ended = self
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ended();
        if let Some(ended) = ended {
            if !ended.success && was_running {
                tracing::warn!(
                    pid = self.pid,
                    "the Python worker {} at shutdown",
                    ended.description
                );
            }
        }
    }
}

impl Drop for Host {
    /// The last node and the executor let go without closing it (the runtime going
    /// away): the worker is killed with its group and its shared memory removed here.
    fn drop(&mut self) {
        self.worker
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .kill();
        self.endpoint.clean_up_dead_peers();
        drop(
            self.lease
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}

/// A hint when the worker could not even import the runtime package.
fn import_hint(tail: &str, python: &std::path::Path) -> Option<String> {
    if tail.contains("No module named 'remotemedia'")
        || tail.contains("No module named remotemedia")
    {
        return Some(format!(
            "the interpreter {} cannot import the remotemedia package: install the remotemedia wheel into it, or point python_executable / {} at one that has it",
            python.display(),
            crate::config::PYTHON_ENV
        ));
    }
    None
}
