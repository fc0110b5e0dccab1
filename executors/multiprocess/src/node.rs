//! [`PythonNode`]: one Python node instance in its worker process, driven like any node.

use crate::config::NodeSettings;
use crate::ipc::{self, Endpoint, MessageKind, Received, FLAG_PAYLOAD_IS_INPUT};
use crate::process::{describe_status, WorkerProcess};
use async_trait::async_trait;
use bytes::Bytes;
use remotemedia_runtime_core::data::{codec, RuntimeData};
use remotemedia_runtime_core::nodes::{NodeContext, NodeExecutor, Outputs};
use remotemedia_runtime_core::{Error, Result};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// After sending an item, poll this long for the answer before sleeping: a quick node
/// answers sooner than a sleep/wake round trip of the event loop (8 µs instead of 21 µs
/// for a 20 ms frame, docs/PERFORMANCE.md).
const HOST_SPIN: Duration = Duration::from_micros(30);
/// After the answer missed the polling window, calls made without polling before it is
/// tried again.
const SPIN_RETRY: u32 = 16;
/// Received payloads at least this large are used in place (the sample stays mapped while
/// the pipeline holds the data); smaller ones are copied out.
const IN_PLACE_MIN_BYTES: usize = 64 * 1024;
/// How many received samples may be held in place at once; further payloads are copied so
/// the worker never runs out of shared memory because the pipeline keeps data around.
const IN_PLACE_MAX_HELD: usize = ipc::MAX_BORROWED / 2;

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

#[derive(Debug, Clone)]
enum State {
    Starting,
    Running,
    Failed(Error),
    Stopped,
}

/// Keeps a received sample mapped while the data that views it lives.
struct HeldSample {
    sample: Received,
    held: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for HeldSample {
    fn as_ref(&self) -> &[u8] {
        &self.sample
    }
}

impl Drop for HeldSample {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A Python node running in a worker process; created by
/// [`MultiprocessBackend`](crate::MultiprocessBackend).
pub struct PythonNode {
    // Dropped first: it refers to descriptors of `endpoint` and `worker`.
    watch: Option<Watch>,
    node_id: String,
    node_type: String,
    settings: NodeSettings,
    endpoint: Endpoint,
    worker: WorkerProcess,
    state: State,
    seq: u64,
    held: Arc<AtomicUsize>,
    started: Instant,
    /// Calls left before polling for the answer is tried again, after it last missed.
    spin_skip: u32,
}

impl std::fmt::Debug for PythonNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonNode")
            .field("node_id", &self.node_id)
            .field("node_type", &self.node_type)
            .field("pid", &self.worker.pid())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What one wait for the worker ended with.
enum Wake {
    Message,
    Exited,
    TimedOut,
}

impl PythonNode {
    pub(crate) fn new(
        node_id: String,
        node_type: String,
        settings: NodeSettings,
        endpoint: Endpoint,
        worker: WorkerProcess,
        started: Instant,
    ) -> Self {
        Self {
            watch: None,
            node_id,
            node_type,
            settings,
            endpoint,
            worker,
            state: State::Starting,
            seq: 0,
            held: Arc::new(AtomicUsize::new(0)),
            started,
            spin_skip: 0,
        }
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.worker.pid()
    }

    fn ensure_watch(&mut self) -> Result<()> {
        if self.watch.is_none() {
            let register = |fd: RawFd| {
                // SAFETY: the descriptor belongs to `endpoint` or `worker`, which stay alive
                // and keep it open longer than `watch` (declared first, dropped first).
                unsafe { AsyncFd::register_with_interest(Fd(fd), tokio::io::Interest::READABLE) }
                    .map_err(|e| Error::Node(format!("cannot watch the Python worker: {e}")))
            };
            self.watch = Some(Watch {
                wakeup: register(self.endpoint.wakeup_fd())?,
                exit: register(self.worker.exit_fd())?,
            });
        }
        Ok(())
    }

    /// Waits until the worker notifies, exits, or `deadline` passes.
    async fn wait(&mut self, deadline: Option<Instant>) -> Result<Wake> {
        self.ensure_watch()?;
        let (Some(watch), endpoint) = (&self.watch, &self.endpoint) else {
            return Err(Error::Node("the Python worker is not watched".to_owned()));
        };
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ready = watch.wakeup.readable() => {
                let mut guard = ready.map_err(|e| Error::Node(format!("cannot wait for the Python worker: {e}")))?;
                let taken = endpoint.take_wakeups();
                // Every pending wake-up was read; a later one re-arms the descriptor.
                guard.clear_ready();
                taken.map_err(|e| Error::Node(e.to_string()))?;
                Ok(Wake::Message)
            }
            ready = watch.exit.readable() => {
                // The descriptor stays readable once the process has exited.
                let _exited = ready.map_err(|e| Error::Node(format!("cannot watch the Python worker: {e}")))?;
                Ok(Wake::Exited)
            }
            _ = sleep => Ok(Wake::TimedOut),
        }
    }

    fn fail(&mut self, error: Error) -> Error {
        self.state = State::Failed(error.clone());
        error
    }

    /// Describes a worker that exited, with what it printed last, and kills what is left.
    fn died(&mut self, doing: &str) -> Error {
        let status = self
            .worker
            .try_status()
            .map(|s| describe_status(&s))
            .unwrap_or_else(|| "stopped".to_owned());
        let tail = self.worker.output_tail();
        self.worker.kill();
        self.endpoint.clean_up_dead_peers();
        let mut message = format!(
            "the Python worker (pid {}) {status} while {doing}",
            self.worker.pid()
        );
        if let Some(hint) = import_hint(&tail, &self.settings) {
            message.push_str(&format!("; {hint}"));
        }
        if !tail.is_empty() {
            message.push_str(&format!("\n--- worker output (last lines) ---\n{tail}"));
        }
        self.fail(Error::Node(message))
    }

    fn hung(&mut self, doing: &str, limit: Duration, setting: &str) -> Error {
        self.worker.kill();
        self.endpoint.clean_up_dead_peers();
        let tail = self.worker.output_tail();
        let mut message = format!(
            "the Python worker (pid {}) did not finish {doing} within {:.1} s ({setting}); it was killed",
            self.worker.pid(),
            limit.as_secs_f64()
        );
        if !tail.is_empty() {
            message.push_str(&format!("\n--- worker output (last lines) ---\n{tail}"));
        }
        self.fail(Error::Node(message))
    }

    /// Turns one `Output` sample into an item.
    fn output_item(
        &self,
        sample: Received,
        flags: u32,
        input: Option<&RuntimeData>,
    ) -> Result<RuntimeData> {
        if flags & FLAG_PAYLOAD_IS_INPUT != 0 {
            let payload = input.and_then(codec::shared_payload).ok_or_else(|| {
                Error::Node(
                    "the Python worker referred to an input payload that does not exist".to_owned(),
                )
            })?;
            // The head alone was sent; the payload length it announces is checked against
            // the buffer we hold.
            let header = codec::parse_header_prefix(&sample, usize::MAX)
                .map_err(|e| Error::Node(format!("the Python worker sent a bad frame: {e}")))?;
            return codec::decode_parts(&header, payload)
                .map_err(|e| Error::Node(format!("the Python worker sent a bad frame: {e}")));
        }
        let bytes = if sample.len() >= IN_PLACE_MIN_BYTES
            && self.held.fetch_add(1, Ordering::AcqRel) < IN_PLACE_MAX_HELD
        {
            Bytes::from_owner(HeldSample {
                sample,
                held: Arc::clone(&self.held),
            })
        } else {
            if sample.len() >= IN_PLACE_MIN_BYTES {
                self.held.fetch_sub(1, Ordering::AcqRel);
            }
            Bytes::copy_from_slice(&sample)
        };
        codec::decode(bytes)
            .map_err(|e| Error::Node(format!("the Python worker sent a bad frame: {e}")))
    }

    /// Collects outputs until the worker reports `seq` done.
    async fn collect(
        &mut self,
        seq: u64,
        outputs: &mut Outputs,
        input: Option<&RuntimeData>,
        doing: &str,
    ) -> Result<()> {
        let asked = Instant::now();
        let deadline = self.settings.process_timeout.map(|t| asked + t);
        // Poll for the answer unless polling missed recently (a model taking milliseconds
        // would just burn the window); try again every SPIN_RETRY calls.
        let spinning = self.spin_skip == 0;
        self.spin_skip = self.spin_skip.saturating_sub(1);
        let spin_until = if spinning { asked + HOST_SPIN } else { asked };
        let mut exited = false;
        loop {
            while let Some(sample) = self.receive()? {
                let (kind, envelope) = ipc::envelope(&sample);
                match kind {
                    Some(MessageKind::Output) if envelope.seq == seq => {
                        let item = self.output_item(sample, envelope.flags, input)?;
                        outputs.push(item);
                    }
                    Some(MessageKind::Done) if envelope.seq == seq => {
                        if spinning && asked.elapsed() > HOST_SPIN {
                            self.spin_skip = SPIN_RETRY;
                        }
                        return Ok(());
                    }
                    Some(MessageKind::Error) => {
                        let report = error_report(&sample);
                        drop(sample);
                        return Err(self.fail(Error::Node(report)));
                    }
                    _ => {
                        tracing::warn!(node_id = %self.node_id, kind = envelope.kind, seq = envelope.seq,
                            "ignoring an unexpected message from the Python worker");
                    }
                }
            }
            if exited {
                return Err(self.died(doing));
            }
            if Instant::now() < spin_until {
                while !self.endpoint.has_pending() && Instant::now() < spin_until {
                    // Yield rather than spin: when the kernel has put the worker on this
                    // CPU, it runs now instead of after our time slice.
                    std::thread::yield_now();
                }
                continue;
            }
            match self.wait(deadline).await? {
                Wake::Message => {}
                // Read once more what it sent before exiting, then report.
                Wake::Exited => exited = true,
                Wake::TimedOut => {
                    let limit = self.settings.process_timeout.unwrap_or_default();
                    return Err(self.hung(doing, limit, "process_timeout_ms"));
                }
            }
        }
    }

    /// The next message from the worker, if one is queued.
    fn receive(&self) -> Result<Option<Received>> {
        self.endpoint
            .receive()
            .map_err(|e| Error::Node(e.to_string()))
    }

    /// Sends a message without payload and wakes the worker.
    fn send_control(&self, kind: MessageKind, seq: u64) -> std::result::Result<(), ipc::IpcError> {
        self.endpoint
            .send_with(kind, 0, seq, 0, |_| Ok(()))
            .and_then(|_| self.endpoint.notify())
    }

    fn check_usable(&self) -> Result<()> {
        match &self.state {
            State::Running => Ok(()),
            State::Failed(e) => Err(e.clone()),
            State::Starting => Err(Error::Node(
                "the Python worker is not initialized".to_owned(),
            )),
            State::Stopped => Err(Error::Node("the Python worker has shut down".to_owned())),
        }
    }

    async fn shutdown(&mut self) {
        if matches!(self.state, State::Stopped) {
            return;
        }
        let was_running = self.worker.is_running();
        if was_running && self.send_control(MessageKind::Shutdown, self.seq).is_ok() {
            let deadline = Instant::now() + self.settings.shutdown_timeout;
            while self.worker.is_running() {
                match self.wait(Some(deadline)).await {
                    Ok(Wake::Exited) => break,
                    Ok(Wake::Message) => {
                        // Drain anything late (e.g. an error from cleanup()).
                        while let Ok(Some(sample)) = self.endpoint.receive() {
                            if let (Some(MessageKind::Error), _) = ipc::envelope(&sample) {
                                tracing::warn!(node_id = %self.node_id, "{}", error_report(&sample));
                            }
                        }
                    }
                    Ok(Wake::TimedOut) | Err(_) => {
                        tracing::warn!(node_id = %self.node_id, pid = self.worker.pid(),
                            "the Python worker did not exit within the shutdown timeout; killing it");
                        break;
                    }
                }
            }
        }
        self.worker.kill();
        if let Some(status) = self.worker.try_status() {
            if !status.success() && was_running && !matches!(self.state, State::Failed(_)) {
                tracing::warn!(node_id = %self.node_id, "the Python worker {} at shutdown", describe_status(&status));
            }
        }
        self.endpoint.clean_up_dead_peers();
        self.state = State::Stopped;
    }
}

/// Formats an `Error` message's JSON report.
fn error_report(sample: &Received) -> String {
    let report: serde_json::Value = serde_json::from_slice(sample).unwrap_or_else(
        |_| serde_json::json!({"message": String::from_utf8_lossy(sample).into_owned()}),
    );
    let message = report["message"]
        .as_str()
        .unwrap_or("the Python node raised an exception");
    let phase = report["phase"].as_str().unwrap_or("process");
    match report["traceback"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
    {
        Some(traceback) => format!(
            "Python exception in {phase}(): {message}\n{}",
            traceback.trim_end()
        ),
        None => format!("Python exception in {phase}(): {message}"),
    }
}

/// A hint when the worker could not even import the runtime package.
fn import_hint(tail: &str, settings: &NodeSettings) -> Option<String> {
    if tail.contains("No module named 'remotemedia'")
        || tail.contains("No module named remotemedia")
    {
        return Some(format!(
            "the interpreter {} cannot import the remotemedia package: install the remotemedia wheel into it, or point python_executable / {} at one that has it",
            settings.python.display(),
            crate::config::PYTHON_ENV
        ));
    }
    None
}

#[async_trait]
impl NodeExecutor for PythonNode {
    fn node_type(&self) -> &str {
        &self.node_type
    }

    async fn initialize(&mut self, _ctx: &NodeContext) -> Result<()> {
        let deadline = self.started + self.settings.init_timeout;
        let mut exited = false;
        loop {
            while let Some(sample) = self.receive()? {
                match ipc::envelope(&sample) {
                    (Some(MessageKind::Ready), _) => {
                        tracing::debug!(node_id = %self.node_id, pid = self.worker.pid(),
                            elapsed_ms = self.started.elapsed().as_millis() as u64,
                            info = %String::from_utf8_lossy(&sample), "Python worker ready");
                        self.state = State::Running;
                        return Ok(());
                    }
                    (Some(MessageKind::Error), _) => {
                        let report = error_report(&sample);
                        drop(sample);
                        let error = self.fail(Error::Node(report));
                        // The worker waits for this before it exits.
                        self.shutdown().await;
                        self.state = State::Failed(error.clone());
                        return Err(error);
                    }
                    (_, envelope) => {
                        tracing::warn!(node_id = %self.node_id, kind = envelope.kind,
                            "ignoring an unexpected message from a starting Python worker");
                    }
                }
            }
            if exited {
                return Err(self.died("starting"));
            }
            match self.wait(Some(deadline)).await? {
                Wake::Message => {}
                // Read once more what it sent before exiting, then report.
                Wake::Exited => exited = true,
                Wake::TimedOut => {
                    let limit = self.settings.init_timeout;
                    return Err(self.hung("starting", limit, "init_timeout_ms"));
                }
            }
        }
    }

    async fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        self.check_usable()?;
        self.seq += 1;
        let seq = self.seq;
        let writer = codec::FrameWriter::new(&input);
        let sent = self
            .endpoint
            .send_with(MessageKind::Data, 0, seq, writer.len(), |out| {
                writer
                    .write(out)
                    .map(|_| ())
                    .map_err(|e| ipc::IpcError(e.to_string()))
            })
            .and_then(|_| self.endpoint.notify());
        if let Err(e) = sent {
            if !self.worker.is_running() {
                return Err(self.died("receiving an item"));
            }
            return Err(self.fail(Error::Node(format!(
                "cannot send to the Python worker: {e}"
            ))));
        }
        let doing = format!("processing item {seq} ({})", input.type_name());
        self.collect(seq, outputs, Some(&input), &doing).await
    }

    async fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        self.check_usable()?;
        self.seq += 1;
        let seq = self.seq;
        if self.send_control(MessageKind::Flush, seq).is_err() {
            return Err(self.died("flushing at end of stream"));
        }
        self.collect(seq, outputs, None, "flushing at end of stream")
            .await
    }

    async fn cleanup(&mut self) -> Result<()> {
        self.shutdown().await;
        Ok(())
    }
}
