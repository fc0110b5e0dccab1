//! [`DockerWorker`]: a node's worker process inside a container, reached through the
//! container's agent — started, watched and killed over one Unix-socket connection.

use crate::container::Container;
use remotemedia_multiprocess::process::MAX_LINE_BYTES;
use remotemedia_multiprocess::{Ended, Worker};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines of worker output kept for error reports.
const TAIL_LINES: usize = 40;
/// How long a report waits for the agent's status line or the container's fate.
const END_WAIT: Duration = Duration::from_secs(3);
/// How long a report about a SIGKILLed worker waits to learn whether its container was
/// killed too.
const FATE_WAIT: Duration = Duration::from_millis(500);

/// What the agent said about the worker's end.
#[derive(Debug, Clone, serde::Deserialize)]
struct Status {
    code: Option<i32>,
    signal: Option<i32>,
    #[serde(default)]
    oom_kills: u64,
}

#[derive(Debug, Default)]
struct State {
    lines: VecDeque<String>,
    status: Option<Status>,
    /// The connection has ended: the worker is gone (or its container is).
    ended: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_ended(&self, limit: Duration) -> std::sync::MutexGuard<'_, State> {
        let deadline = Instant::now() + limit;
        let mut state = self.lock();
        while !state.ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        state
    }
}

/// A worker in a container.
#[derive(Debug)]
pub struct DockerWorker {
    container: Arc<Container>,
    stream: UnixStream,
    pid: u32,
    shared: Arc<Shared>,
    exit_read: OwnedFd,
}

impl DockerWorker {
    /// Asks the container's agent to start a worker with `assignment`; returns once the
    /// worker runs. Blocking.
    pub fn start(
        container: Arc<Container>,
        assignment: &serde_json::Value,
        label: String,
    ) -> Result<Self, String> {
        let socket = container.agent_socket();
        let mut stream = UnixStream::connect(&socket).map_err(|e| {
            format!(
                "cannot reach the agent of container {} at {}: {e}",
                container.name,
                socket.display()
            )
        })?;
        let request = serde_json::json!({"kind": "worker", "assignment": assignment});
        let mut line = request.to_string();
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .map_err(|e| format!("cannot hand the worker its node: {e}"))?;
        let reader_stream = stream
            .try_clone()
            .map_err(|e| format!("cannot read from the agent: {e}"))?;
        reader_stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| format!("cannot read from the agent: {e}"))?;
        let mut reader = BufReader::new(reader_stream);
        let mut first = String::new();
        reader.read_line(&mut first).map_err(|e| {
            format!(
                "the agent of container {} did not answer: {e}",
                container.name
            )
        })?;
        let pid = match first.trim_end().split_once(' ') {
            Some(("P", pid)) => pid.parse::<u32>().unwrap_or(0),
            Some(("E", message)) => return Err(format!("the agent refused: {message}")),
            _ => {
                return Err(format!(
                    "the agent of container {} did not start a worker (it said {:?})",
                    container.name,
                    first.trim_end()
                ))
            }
        };
        reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| format!("cannot read from the agent: {e}"))?;
        let (exit_read, exit_write) =
            std::io::pipe().map_err(|e| format!("cannot watch the worker: {e}"))?;
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread_label = label;
        let container_name = container.name.clone();
        std::thread::Builder::new()
            .name(format!("remotemedia-docker-{pid}"))
            .spawn(move || {
                read_agent(reader, &thread_shared, &thread_label, &container_name, pid);
                {
                    let mut state = thread_shared.lock();
                    state.ended = true;
                }
                thread_shared.changed.notify_all();
                let mut exit_write = exit_write;
                let _ = exit_write.write_all(b"x");
            })
            .map_err(|e| format!("cannot watch the worker: {e}"))?;
        Ok(Self {
            container,
            stream,
            pid,
            shared,
            exit_read: exit_read.into(),
        })
    }

    /// The container it runs in.
    pub fn container(&self) -> &Arc<Container> {
        &self.container
    }
}

/// Reads the agent's lines until the connection ends.
fn read_agent(
    mut reader: BufReader<UnixStream>,
    shared: &Shared,
    label: &str,
    container: &str,
    pid: u32,
) {
    let mut raw = Vec::new();
    loop {
        raw.clear();
        // The agent cuts lines at 4096 bytes; read a bounded amount either way.
        match (&mut reader)
            .take((MAX_LINE_BYTES + 16) as u64)
            .read_until(b'\n', &mut raw)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(text) = line.strip_prefix("O ") {
            tracing::info!(target: "remotemedia::python", node = %label, container, pid, "{text}");
            let mut state = shared.lock();
            if state.lines.len() == TAIL_LINES {
                state.lines.pop_front();
            }
            state.lines.push_back(text.to_owned());
        } else if let Some(json) = line.strip_prefix("S ") {
            if let Ok(status) = serde_json::from_str::<Status>(json) {
                shared.lock().status = Some(status);
            }
        }
    }
}

impl Worker for DockerWorker {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn place(&self) -> String {
        format!(" in container {}", self.container.name)
    }

    fn exit_fd(&self) -> RawFd {
        self.exit_read.as_raw_fd()
    }

    fn ended(&mut self) -> Option<Ended> {
        let ended = self.shared.lock().ended;
        if !ended {
            return None;
        }
        let status = self.shared.lock().status.clone();
        let (description, success) = match status {
            Some(Status {
                signal: Some(9),
                oom_kills,
                ..
            }) if oom_kills > 0 => (
                format!(
                    "was killed: container exceeded its {} MiB memory limit",
                    self.container.memory_mb
                ),
                false,
            ),
            // Killed with its container (which the runtime kills when it stops
            // answering): the container's fate is the cause.
            Some(Status {
                signal: Some(9), ..
            }) if self.container.wait_for_fate(FATE_WAIT).is_some() => {
                let fate = self
                    .container
                    .fate()
                    .unwrap_or(crate::container::Fate::Removed);
                (fate.describe(), false)
            }
            Some(Status {
                signal: Some(signal),
                ..
            }) => (
                format!("was killed by signal {signal}{}", signal_name(signal)),
                false,
            ),
            Some(Status {
                code: Some(code), ..
            }) => (format!("exited with status {code}"), code == 0),
            Some(_) => ("ended".to_owned(), false),
            // No word from the agent: the container itself went away.
            None => match self.container.wait_for_fate(END_WAIT) {
                Some(fate) => (fate.describe(), false),
                None => (
                    "was lost: the connection to its container's agent ended".to_owned(),
                    false,
                ),
            },
        };
        Some(Ended {
            description,
            success,
        })
    }

    fn kill(&mut self) {
        // The agent kills the worker's process group when the runtime hangs up, then
        // reports its status and closes.
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        drop(self.shared.wait_ended(END_WAIT));
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    fn output_tail(&self) -> String {
        let state = self.shared.lock();
        state.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn final_output_tail(&self) -> String {
        let state = self.shared.wait_ended(END_WAIT);
        state.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for DockerWorker {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        6 => " (SIGABRT)",
        15 => " (SIGTERM)",
        7 => " (SIGBUS)",
        _ => "",
    }
}
