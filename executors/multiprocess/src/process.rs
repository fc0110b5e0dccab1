//! Worker processes: spawned so they cannot outlive the runtime, watched without polling,
//! killed with everything they started.
//!
//! - Children are forked from one long-lived thread, so `PR_SET_PDEATHSIG` (which fires
//!   when the *thread* that forked the child ends) means "when this process dies".
//! - Each child leads its own process group: a terminal's Ctrl-C reaches only the runtime
//!   (which then shuts its workers down in order), and killing the group also ends
//!   whatever the Python node started (e.g. a synthesizer subprocess).
//! - Exit is observed through a pidfd, which an event loop can wait on, and read with
//!   `waitid(WNOWAIT)`, which leaves the exited worker unreaped. The group is signalled only
//!   while its leader is unreaped (a zombie still owns its pid, so the group id cannot have
//!   been reused by another process); the worker is reaped right after, and its group is
//!   never signalled again.
//! - stdout and stderr share one pipe, read by a thread that logs each line (tracing
//!   target `remotemedia::python`) and keeps the last lines for error reports. A report
//!   about a worker that exited waits (briefly) for the end of that pipe, so the lines
//!   that explain the exit are in it. At most [`MAX_LINE_BYTES`] of a line are kept.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Lines of worker output kept for error reports.
const TAIL_LINES: usize = 40;
/// Bytes kept of one line of worker output; the rest of a longer line is dropped (and
/// counted), so a worker printing without newlines cannot grow the runtime's memory.
pub const MAX_LINE_BYTES: usize = 4096;
/// How long a report about an exited worker waits for the rest of its output.
const OUTPUT_DRAIN_WAIT: Duration = Duration::from_secs(2);

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
    /// The pipe has reached end of file: every writer (the worker and whatever it
    /// started) has closed it.
    ended: bool,
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

/// The tail and the signal that it has ended, shared with the reader thread.
#[derive(Debug, Default)]
struct SharedTail {
    tail: Mutex<OutputTail>,
    ended: Condvar,
}

impl SharedTail {
    fn lock(&self) -> std::sync::MutexGuard<'_, OutputTail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads `reader` line by line until end of file, keeping at most [`MAX_LINE_BYTES`] of
/// each line; calls `line` for each (the text, and how many bytes were dropped).
fn read_lines(reader: impl std::io::Read, mut line: impl FnMut(String, usize)) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0usize;
    loop {
        let (consumed, newline) = match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(chunk) => {
                let (part, newline) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(end) => (&chunk[..end], true),
                    None => (chunk, false),
                };
                let room = MAX_LINE_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&part[..part.len().min(room)]);
                dropped += part.len().saturating_sub(room);
                (part.len() + usize::from(newline), newline)
            }
        };
        reader.consume(consumed);
        if newline {
            line(
                String::from_utf8_lossy(&kept).trim_end().to_owned(),
                dropped,
            );
            kept.clear();
            dropped = 0;
        }
    }
    if !kept.is_empty() || dropped > 0 {
        line(
            String::from_utf8_lossy(&kept).trim_end().to_owned(),
            dropped,
        );
    }
}

/// A running worker process.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pidfd: OwnedFd,
    tail: Arc<SharedTail>,
    python: PathBuf,
    /// How the worker ended, once it has (read without reaping it).
    status: Option<ExitStatus>,
    /// The worker has been reaped: its pid and group id may belong to others now.
    reaped: bool,
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
        let tail = Arc::new(SharedTail::default());
        let thread_tail = Arc::clone(&tail);
        let label = launch.label.clone();
        let pid = child.id();
        std::thread::Builder::new()
            .name(format!("remotemedia-worker-{pid}"))
            .spawn(move || {
                read_lines(reader, |mut text, dropped| {
                    if dropped > 0 {
                        text.push_str(&format!(" [... {dropped} more bytes of this line dropped]"));
                    }
                    tracing::info!(target: "remotemedia::python", node = %label, pid, "{text}");
                    thread_tail.lock().push(text);
                });
                thread_tail.lock().ended = true;
                thread_tail.ended.notify_all();
            })?;
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            pidfd,
            tail,
            python: launch.python.clone(),
            status: None,
            reaped: false,
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

    /// The exit status, if the process has exited. The worker is not reaped (see the
    /// module docs); [`kill`](Self::kill) reaps it.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() && !self.reaped {
            self.status = peek_exit(self.child.id());
        }
        self.status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// The last lines the worker printed so far.
    pub fn output_tail(&self) -> String {
        self.tail.lock().text()
    }

    /// The last lines the worker printed, once its output has ended — for reports about a
    /// worker that exited or was killed, whose last lines explain why. Waits at most a
    /// moment for the end (a process that escaped the group may hold the pipe open).
    pub fn final_output_tail(&self) -> String {
        let deadline = Instant::now() + OUTPUT_DRAIN_WAIT;
        let mut tail = self.tail.lock();
        while !tail.ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tail = self
                .tail
                .ended
                .wait_timeout(tail, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        tail.text()
    }

    /// Kills the worker's whole process group and reaps the worker. After the worker has
    /// been reaped this does nothing: its group id may belong to someone else by then.
    pub fn kill(&mut self) {
        if self.reaped {
            return;
        }
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall. The leader is not reaped yet (a zombie at worst), so the
        // group id is still this worker's: the signal reaches its group and nobody else.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        match self.child.wait() {
            Ok(status) => {
                self.status.get_or_insert(status);
            }
            Err(e) => {
                tracing::warn!(pid = pgid, error = %e, "cannot reap a Python worker");
            }
        }
        self.reaped = true;
    }

    /// Closes stdin (the worker treats EOF as "the runtime is gone").
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

impl crate::worker::Worker for WorkerProcess {
    fn pid(&self) -> u32 {
        WorkerProcess::pid(self)
    }

    fn exit_fd(&self) -> RawFd {
        WorkerProcess::exit_fd(self)
    }

    fn ended(&mut self) -> Option<crate::worker::Ended> {
        self.try_status().map(|status| crate::worker::Ended {
            description: describe_status(&status),
            success: status.success(),
        })
    }

    fn kill(&mut self) {
        WorkerProcess::kill(self);
    }

    fn output_tail(&self) -> String {
        WorkerProcess::output_tail(self)
    }

    fn final_output_tail(&self) -> String {
        WorkerProcess::final_output_tail(self)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Signal the group even when the worker exited on its own: it may have left
        // children behind.
        self.kill();
    }
}

/// The exit status of `pid` if it has exited, read without reaping it.
fn peek_exit(pid: u32) -> Option<ExitStatus> {
    // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall on our own child; `info` is a valid, writable siginfo_t.
    let result = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info` (or left it zeroed); these accessors read its fields.
    let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
    if result != 0 || child == 0 {
        return None;
    }
    // Back to a wait(2) status word, the form ExitStatus is built from.
    let raw = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    };
    Some(ExitStatus::from_raw(raw))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The state follows the command name, which is in parentheses.
        stat.rsplit(')').next()?.trim_start().chars().next()
    }

    /// `sh -u -m remotemedia.worker` fails at once (no such script): a worker that exits
    /// by itself, after printing why.
    fn exiting_worker() -> WorkerProcess {
        WorkerProcess::spawn(&Launch {
            python: PathBuf::from("/bin/sh"),
            env: Vec::new(),
            label: "test".to_owned(),
        })
        .expect("spawn")
    }

    #[test]
    fn an_exited_worker_stays_unreaped_until_its_group_is_killed() {
        let mut worker = exiting_worker();
        let pid = worker.pid();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = worker.try_status() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the worker never exited"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(!status.success());
        assert_eq!(
            state_of(pid),
            Some('Z'),
            "reading the status must not reap: the zombie keeps the group id ours"
        );
        worker.kill();
        assert_eq!(state_of(pid), None, "kill() signals the group, then reaps");
        assert_eq!(
            worker.try_status(),
            Some(status),
            "the status survives reaping"
        );
        worker.kill(); // reaped: nothing is signalled any more
    }

    #[test]
    fn the_final_output_tail_has_the_last_lines_of_an_exited_worker() {
        let mut worker = exiting_worker();
        while worker.is_running() {
            std::thread::sleep(Duration::from_millis(5));
        }
        worker.kill();
        let tail = worker.final_output_tail();
        assert!(
            tail.contains("cannot open remotemedia.worker"),
            "sh's complaint: {tail:?}"
        );
    }

    #[test]
    fn a_line_without_an_end_is_kept_only_up_to_its_cap() {
        let mut long = vec![b'x'; MAX_LINE_BYTES * 3];
        long.extend_from_slice(b"\nshort\nlast without newline");
        let mut lines = Vec::new();
        read_lines(&long[..], |text, dropped| lines.push((text, dropped)));
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].0.len(), MAX_LINE_BYTES);
        assert_eq!(lines[0].1, MAX_LINE_BYTES * 2);
        assert_eq!(lines[1], ("short".to_owned(), 0));
        assert_eq!(lines[2], ("last without newline".to_owned(), 0));
    }
}
