//! Worker processes: spawned so they cannot outlive the runtime, watched without polling,
//! killed with everything they started.
//!
//! - Children are forked from one long-lived thread, so `PR_SET_PDEATHSIG` (which fires
//!   when the *thread* that forked the child ends) means "when this process dies".
//! - Each child leads its own process group: a terminal's Ctrl-C reaches only the runtime
//!   (which then shuts its workers down in order), and killing the group also ends
//!   whatever the Python node started (e.g. a synthesizer subprocess).
//! - Exit is observed through a pidfd, which an event loop can wait on.
//! - stdout and stderr share one pipe, read by a thread that logs each line (tracing
//!   target `remotemedia::python`) and keeps the last lines for error reports.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

/// Lines of worker output kept for error reports.
const TAIL_LINES: usize = 40;

/// How to start a worker interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Launch {
    /// The Python interpreter.
    pub python: PathBuf,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Label for log lines (the node id, or `pool`).
    pub label: String,
}

/// The last lines a worker wrote to stdout/stderr.
#[derive(Debug, Default)]
pub struct OutputTail {
    lines: VecDeque<String>,
}

impl OutputTail {
    fn push(&mut self, line: String) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The kept lines, oldest first, joined by newlines.
    pub fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A running worker process.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pidfd: OwnedFd,
    tail: Arc<Mutex<OutputTail>>,
    python: PathBuf,
    status: Option<ExitStatus>,
}

type SpawnReply = std::io::Result<Child>;
/// A command to spawn and where to send the result.
type SpawnRequest = (Command, mpsc::Sender<SpawnReply>);

/// Forks every worker from one thread that lives as long as the process.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let thread = std::thread::Builder::new()
            .name("remotemedia-spawner".to_owned())
            .spawn(move || {
                // The sender lives in a static, so this loop ends only with the process.
                while let Ok((mut command, reply)) = rx.recv() {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = thread {
            tracing::error!(error = %e, "cannot start the worker spawner thread");
        }
        Mutex::new(tx)
    })
}

fn spawn_from_spawner_thread(command: Command) -> std::io::Result<Child> {
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((command, reply_tx))
        .map_err(|_| std::io::Error::other("the worker spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("the worker spawner thread is gone"))?
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

impl WorkerProcess {
    /// Starts `python -m remotemedia.worker`. The worker imports its runtime and then waits
    /// for an assignment on stdin (see [`assign`](Self::assign)).
    pub fn spawn(launch: &Launch) -> std::io::Result<Self> {
        let (reader, writer) = std::io::pipe()?;
        let mut command = Command::new(&launch.python);
        command
            .args(["-u", "-m", "remotemedia.worker"])
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe calls (prctl, getppid, _exit).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = spawn_from_spawner_thread(command)?;
        // Our copies of the pipe's write end went with `command`; EOF comes when the
        // worker and everything it started have exited.
        let pidfd = match pidfd_open(child.id()) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let tail = Arc::new(Mutex::new(OutputTail::default()));
        let thread_tail = Arc::clone(&tail);
        let label = launch.label.clone();
        let pid = child.id();
        std::thread::Builder::new()
            .name(format!("remotemedia-worker-{pid}"))
            .spawn(move || {
                let mut lines = BufReader::new(reader);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match lines.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                            tracing::info!(target: "remotemedia::python", node = %label, pid, "{text}");
                            thread_tail
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(text);
                        }
                    }
                }
            })?;
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            pidfd,
            tail,
            python: launch.python.clone(),
            status: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The interpreter it runs.
    pub fn python(&self) -> &std::path::Path {
        &self.python
    }

    /// Hands the worker its node (one JSON line on stdin). Stdin stays open: the worker
    /// also exits when it closes.
    pub fn assign(&mut self, assignment: &serde_json::Value) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the worker's stdin is closed"))?;
        let mut line = assignment.to_string();
        line.push('\n');
        stdin.write_all(line.as_bytes())?;
        stdin.flush()
    }

    /// A descriptor that becomes readable when the process exits.
    pub fn exit_fd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    /// The exit status, if the process has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// The last lines the worker printed.
    pub fn output_tail(&self) -> String {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).text()
    }

    /// Kills the worker's whole process group and reaps the worker.
    pub fn kill(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signals the process group this worker leads; harmless if it is gone.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
    }

    /// Closes stdin (the worker treats EOF as "the runtime is gone").
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Always signal the group: a worker that exited may have left children behind.
        self.kill();
    }
}

/// "exited with status 1", "was killed by signal 9 (SIGKILL)", ...
pub fn describe_status(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => format!("was killed by signal {signal} ({})", signal_name(signal)),
        None => "ended".to_owned(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}
