//! [`PythonNode`]: one Python node instance in a worker process, driven like any node.

use crate::config::NodeSettings;
use crate::host::{Host, Wake};
use async_trait::async_trait;
use remotemedia_ipc::{MessageKind, Spin};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::nodes::{NodeContext, NodeExecutor, Outputs};
use remotemedia_runtime_core::{Error, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum State {
    Starting,
    Running,
    Failed(Error),
    Stopped,
}

/// What a node does with its host when it leaves it.
pub trait Release: Send + Sync {
    /// Called once the instance has left `host` in order (its cleanup done), with how
    /// many instances are left in it; returns whether the node should close the
    /// process now (otherwise the executor keeps it for other sessions).
    fn released(&self, host: &Arc<Host>, left: usize) -> bool;
}

/// Closes the process when its last instance leaves.
#[derive(Debug)]
pub struct CloseWhenEmpty;

impl Release for CloseWhenEmpty {
    fn released(&self, _host: &Arc<Host>, left: usize) -> bool {
        left == 0
    }
}

/// A Python node instance running in a worker process; created by
/// [`MultiprocessBackend`](crate::MultiprocessBackend).
pub struct PythonNode {
    node_id: String,
    node_type: String,
    settings: NodeSettings,
    host: Arc<Host>,
    instance: u32,
    release: Arc<dyn Release>,
    state: State,
    seq: u64,
    started: Instant,
    spin: Spin,
    /// A call (`process`/`flush`) was sent and the worker has not ended it (Done, or its
    /// error report): set while the worker works on it, still set when the call was
    /// abandoned (a cancelled session, an error on the runtime's side) — then the worker is
    /// busy with work nobody waits for.
    in_call: bool,
    /// The node's place among the calls in flight to its worker, while one is.
    place: Option<tokio::sync::OwnedSemaphorePermit>,
    /// What opens the instance in the worker (sent by `initialize`).
    open: serde_json::Value,
}

impl std::fmt::Debug for PythonNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonNode")
            .field("node_id", &self.node_id)
            .field("node_type", &self.node_type)
            .field("pid", &self.host.pid())
            .field("instance", &self.instance)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl PythonNode {
    /// A new instance of the node `node` (of session `session_id`) in `host`, started at
    /// `started`, opened in the worker by [`initialize`](NodeExecutor::initialize);
    /// `release` decides what happens to the host when the instance leaves it.
    pub fn open(
        host: Arc<Host>,
        node: &remotemedia_runtime_core::manifest::NodeManifest,
        session_id: &str,
        settings: NodeSettings,
        started: Instant,
        release: Arc<dyn Release>,
    ) -> Result<Self> {
        let instance = host.add_instance();
        let open = serde_json::json!({
            "session_id": session_id,
            "node_id": node.id,
            "params": node.params,
        });
        Ok(Self {
            node_id: node.id.clone(),
            node_type: node.node_type.clone(),
            settings,
            host,
            instance,
            release,
            state: State::Starting,
            seq: 0,
            started,
            spin: Spin::new(Spin::HOST_WINDOW),
            in_call: false,
            place: None,
            open,
        })
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.host.pid()
    }

    /// The process hosting this instance.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    fn fail(&mut self, error: Error) -> Error {
        self.state = State::Failed(error.clone());
        error
    }

    fn died(&mut self, doing: &str) -> Error {
        let message = self.host.died(doing);
        self.fail(Error::Node(message))
    }

    fn hung(&mut self, doing: &str, limit: Duration, setting: &str) -> Error {
        let message = self.host.hung(doing, limit, setting);
        self.fail(Error::Node(message))
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
            while let Some(message) = self.host.take(self.instance)? {
                match message.kind {
                    Some(MessageKind::Output) if message.envelope.seq == seq => {
                        let item = message.item(input)?;
                        drop(message);
                        // On at once, waiting while downstream is full: a generator's items
                        // stream through with backpressure (the worker waits in turn when
                        // the channel's buffer fills).
                        outputs.emit(item).await?;
                    }
                    Some(MessageKind::Done) if message.envelope.seq == seq => {
                        self.in_call = false;
                        self.place = None;
                        self.spin.end(&wait, slept);
                        return Ok(());
                    }
                    Some(MessageKind::Error) => {
                        // The worker ended the call with its report.
                        self.in_call = false;
                        self.place = None;
                        let report = message.report();
                        return Err(self.fail(Error::Node(report.to_string())));
                    }
                    _ => {
                        tracing::warn!(node_id = %self.node_id, kind = message.envelope.kind, seq = message.envelope.seq,
                            "ignoring an unexpected message from the Python worker");
                    }
                }
            }
            if exited {
                return Err(self.died(doing));
            }
            if !wait.is_over() {
                wait.poll(|| self.host.has_pending(self.instance));
                continue;
            }
            slept = true;
            match self.host.wait(self.instance, deadline).await? {
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

    /// Leaves the host without waiting: what still arrives for the instance is dropped.
    fn leave(&mut self) -> usize {
        self.state = State::Stopped;
        self.host.remove_instance(self.instance)
    }

    async fn shutdown(&mut self) {
        if matches!(self.state, State::Stopped) {
            return;
        }
        let alone = self.host.capacity() == 1;
        if self.in_call {
            // The session was cancelled while the worker was on a call: it would not read
            // Shutdown before the call ends (maybe in minutes).
            if alone {
                tracing::debug!(node_id = %self.node_id, pid = self.host.pid(),
                    "session cancelled during a call: killing the Python worker");
                self.host.kill(None);
                self.leave();
                return;
            }
            // Other sessions use the process: the instance leaves now, the worker cleans it
            // up after the call, and no new instance joins a process that is busy with work
            // nobody waits for.
            tracing::debug!(node_id = %self.node_id, pid = self.host.pid(),
                "session cancelled during a call: the instance leaves its shared worker");
            let _ = self
                .host
                .send_control(MessageKind::Shutdown, self.instance, self.seq + 1);
            self.host.close_to_new();
            let left = self.leave();
            if self.release.released(&self.host, left) {
                self.host.close(self.settings.shutdown_timeout).await;
            }
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        if self.host.is_running() {
            self.place = Some(self.host.call_place().await);
        }
        if self.host.is_running()
            && self
                .host
                .send_control(MessageKind::Shutdown, self.instance, seq)
                .is_ok()
        {
            let deadline = Instant::now() + self.settings.shutdown_timeout;
            loop {
                match self.host.take(self.instance) {
                    Ok(Some(message)) => {
                        match message.kind {
                            Some(MessageKind::Done) if message.envelope.seq == seq => break,
                            // An error from cleanup(): the session is over; it goes to the log.
                            Some(MessageKind::Error) => {
                                tracing::warn!(node_id = %self.node_id, "{}", message.report())
                            }
                            _ => {}
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
                match self.host.wait(self.instance, Some(deadline)).await {
                    Ok(Wake::Message) => {}
                    Ok(Wake::Exited) | Err(_) => break,
                    Ok(Wake::TimedOut) => {
                        tracing::warn!(node_id = %self.node_id, pid = self.host.pid(),
                            "the Python node's cleanup did not finish within the shutdown timeout");
                        if alone {
                            self.host.kill(None);
                        }
                        break;
                    }
                }
            }
        }
        self.place = None;
        let left = self.leave();
        if self.release.released(&self.host, left) {
            self.host.close(self.settings.shutdown_timeout).await;
        }
    }
}

impl Drop for PythonNode {
    /// Dropped without its orderly shutdown (the runtime going away mid-session, a task
    /// cancelled before `cleanup`): a worker of its own is killed here; in a shared one,
    /// the instance is told to clean up and leaves.
    fn drop(&mut self) {
        if matches!(self.state, State::Stopped) {
            return;
        }
        if self.host.capacity() == 1 {
            self.host.kill(None);
        } else {
            let _ = self
                .host
                .send_control(MessageKind::Shutdown, self.instance, self.seq + 1);
        }
        let left = self.leave();
        if left == 0 && self.release.released(&self.host, left) {
            self.host.kill(None);
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
        self.place = Some(self.host.call_place().await);
        if let Err(e) = self.host.send_open(self.instance, &self.open) {
            if !self.host.is_running() {
                return Err(self.died("starting"));
            }
            return Err(self.fail(Error::Node(format!(
                "cannot send to the Python worker: {e}"
            ))));
        }
        let mut exited = false;
        loop {
            while let Some(message) = self.host.take(self.instance)? {
                match message.kind {
                    Some(MessageKind::Ready) => {
                        tracing::debug!(node_id = %self.node_id, pid = self.host.pid(), instance = self.instance,
                            elapsed_ms = self.started.elapsed().as_millis() as u64,
                            info = %String::from_utf8_lossy(&message.payload), "Python node ready");
                        self.state = State::Running;
                        self.place = None;
                        return Ok(());
                    }
                    Some(MessageKind::Error) => {
                        self.place = None;
                        let report = message.report();
                        let error = self.fail(Error::Node(report.to_string()));
                        // The worker dropped the instance; the process stays for others.
                        let left = self.leave();
                        if self.release.released(&self.host, left) {
                            self.host.close(self.settings.shutdown_timeout).await;
                        }
                        self.state = State::Failed(error.clone());
                        return Err(error);
                    }
                    _ => {
                        tracing::warn!(node_id = %self.node_id, kind = message.envelope.kind,
                            "ignoring an unexpected message from a starting Python node");
                    }
                }
            }
            if exited {
                return Err(self.died("starting"));
            }
            match self.host.wait(self.instance, Some(deadline)).await? {
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
        self.place = Some(self.host.call_place().await);
        if let Err(e) = self.host.send_item(self.instance, seq, &input) {
            if !self.host.is_running() {
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
        self.place = Some(self.host.call_place().await);
        if self
            .host
            .send_control(MessageKind::Flush, self.instance, seq)
            .is_err()
        {
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
