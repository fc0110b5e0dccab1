//! [`PythonNode`]: one Python node instance in its worker process, driven like any node.

use crate::config::NodeSettings;
use crate::worker::Worker;
use async_trait::async_trait;
use remotemedia_ipc::{envelope, Endpoint, ErrorReport, MessageKind, Received, SampleHolder, Spin};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::nodes::{NodeContext, NodeExecutor, Outputs};
use remotemedia_runtime_core::{Error, Result};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

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

/// A Python node running in a worker process; created by
/// [`MultiprocessBackend`](crate::MultiprocessBackend).
pub struct PythonNode {
    // Dropped first: it refers to descriptors of `endpoint` and `worker`.
    watch: Option<Watch>,
    node_id: String,
    node_type: String,
    settings: NodeSettings,
    endpoint: Endpoint,
    worker: Box<dyn Worker>,
    state: State,
    seq: u64,
    outputs: SampleHolder,
    started: Instant,
    spin: Spin,
    /// A call (`process`/`flush`) was sent and the worker has not ended it (Done, or its
    /// error report): set while the worker works on it, still set when the call was
    /// abandoned (a cancelled session, an error on the runtime's side) — then the worker is
    /// busy with work nobody waits for, and shutting it down means killing it.
    in_call: bool,
    /// What the backend keeps while the node lives (its place under the worker limit,
    /// its share of a container); dropped last, after the worker.
    _lease: Box<dyn Send + Sync>,
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
    /// A node whose `worker` was started at `started` and handed its assignment, talking
    /// over the host side of its channel, `endpoint`. `lease` is kept as long as the node
    /// lives (an executor's bookkeeping: a place under a limit, a share of a container).
    pub fn new(
        node_id: String,
        node_type: String,
        settings: NodeSettings,
        endpoint: Endpoint,
        worker: Box<dyn Worker>,
        started: Instant,
        lease: Box<dyn Send + Sync>,
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
            outputs: SampleHolder::for_host(),
            started,
            spin: Spin::new(Spin::HOST_WINDOW),
            in_call: false,
            _lease: lease,
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
            .ended()
            .map(|ended| ended.description)
            .unwrap_or_else(|| "stopped".to_owned());
        // Kill the group first: then the output pipe ends and its last lines are read.
        self.worker.kill();
        let tail = self.worker.final_output_tail();
        self.endpoint.clean_up_dead_peers();
        let mut message = format!(
            "the Python worker (pid {}{}) {status} while {doing}",
            self.worker.pid(),
            self.worker.place()
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
        let tail = self.worker.final_output_tail();
        let mut message = format!(
            "the Python worker (pid {}{}) did not finish {doing} within {:.1} s ({setting}); it was killed",
            self.worker.pid(),
            self.worker.place(),
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
        self.outputs
            .decode(sample, flags, input)
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
        let wait = self.spin.begin(asked);
        let mut slept = false;
        let mut exited = false;
        loop {
            while let Some(sample) = self.receive()? {
                let (kind, envelope) = envelope(&sample);
                match kind {
                    Some(MessageKind::Output) if envelope.seq == seq => {
                        let item = self.output_item(sample, envelope.flags, input)?;
                        // On at once, waiting while downstream is full: a generator's items
                        // stream through with backpressure (the worker waits in turn when
                        // the channel's buffer fills).
                        outputs.emit(item).await?;
                    }
                    Some(MessageKind::Done) if envelope.seq == seq => {
                        self.in_call = false;
                        self.spin.end(&wait, slept);
                        return Ok(());
                    }
                    Some(MessageKind::Error) => {
                        // The worker ended the call with its report.
                        self.in_call = false;
                        let report = ErrorReport::from_bytes(&sample);
                        drop(sample);
                        return Err(self.fail(Error::Node(report.to_string())));
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
            if !wait.is_over() {
                wait.poll(|| self.endpoint.has_pending());
                continue;
            }
            slept = true;
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
    fn send_control(
        &self,
        kind: MessageKind,
        seq: u64,
    ) -> std::result::Result<(), remotemedia_ipc::IpcError> {
        self.endpoint
            .send_control(kind, seq)
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
        if self.in_call {
            // The session was cancelled while the worker was on a call: it would not read
            // Shutdown before the call ends (maybe in minutes). Kill it now.
            tracing::debug!(node_id = %self.node_id, pid = self.worker.pid(),
                "session cancelled during a call: killing the Python worker");
            self.worker.kill();
            self.endpoint.clean_up_dead_peers();
            self.state = State::Stopped;
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
                            if let (Some(MessageKind::Error), _) = envelope(&sample) {
                                let report = ErrorReport::from_bytes(&sample);
                                tracing::warn!(node_id = %self.node_id, "{report}");
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
        if let Some(ended) = self.worker.ended() {
            if !ended.success && was_running && !matches!(self.state, State::Failed(_)) {
                tracing::warn!(node_id = %self.node_id, "the Python worker {} at shutdown", ended.description);
            }
        }
        self.endpoint.clean_up_dead_peers();
        self.state = State::Stopped;
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

impl Drop for PythonNode {
    /// Dropped without its orderly shutdown (the runtime going away mid-session, a task
    /// cancelled before `cleanup`): the worker is killed with its group and its shared
    /// memory removed here, so nothing is left behind.
    fn drop(&mut self) {
        if !matches!(self.state, State::Stopped) {
            self.worker.kill();
            self.endpoint.clean_up_dead_peers();
        }
    }
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
                match envelope(&sample) {
                    (Some(MessageKind::Ready), _) => {
                        tracing::debug!(node_id = %self.node_id, pid = self.worker.pid(),
                            elapsed_ms = self.started.elapsed().as_millis() as u64,
                            info = %String::from_utf8_lossy(&sample), "Python worker ready");
                        self.state = State::Running;
                        return Ok(());
                    }
                    (Some(MessageKind::Error), _) => {
                        let report = ErrorReport::from_bytes(&sample);
                        drop(sample);
                        let error = self.fail(Error::Node(report.to_string()));
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
        let sent = self
            .endpoint
            .send_frame(MessageKind::Data, seq, &input, None)
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
        // Until the worker answers Done or reports an error, it is on this call; an error
        // on our side (a bad frame, the work budget, a cancelled session) leaves it busy.
        self.in_call = true;
        self.collect(seq, outputs, Some(&input), &doing).await
    }

    async fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        self.check_usable()?;
        self.seq += 1;
        let seq = self.seq;
        if self.send_control(MessageKind::Flush, seq).is_err() {
            return Err(self.died("flushing at end of stream"));
        }
        self.in_call = true;
        self.collect(seq, outputs, None, "flushing at end of stream")
            .await
    }

    async fn cleanup(&mut self) -> Result<()> {
        self.shutdown().await;
        Ok(())
    }
}
