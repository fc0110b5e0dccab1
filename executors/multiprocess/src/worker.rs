//! [`Worker`]: what [`PythonNode`](crate::PythonNode) needs of the process that runs its
//! node — a child process here ([`WorkerProcess`](crate::process::WorkerProcess)), a
//! process in a container for the Docker executor — so the node's side of the worker
//! protocol is written once for every place a worker can run.

use std::os::fd::RawFd;

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// In words, after "the Python worker (pid N)": "exited with status 1", "was killed
    /// by signal 9 (SIGKILL)", "was killed: container exceeded its 256 MiB memory limit".
    pub description: String,
    /// It exited with status 0.
    pub success: bool,
}

/// The process a Python node runs in, seen from the runtime.
pub trait Worker: Send + Sync + std::fmt::Debug {
    /// Its process id (in its own pid namespace), for messages.
    fn pid(&self) -> u32;

    /// Where it runs, for messages: `""` for a local process, `" in container rm-…"`.
    fn place(&self) -> String {
        String::new()
    }

    /// A descriptor that becomes readable (and stays so) once the worker has ended.
    fn exit_fd(&self) -> RawFd;

    /// How it ended, once it has.
    fn ended(&mut self) -> Option<Ended>;

    /// Whether it is still running.
    fn is_running(&mut self) -> bool {
        self.ended().is_none()
    }

    /// Kills it with everything it started and waits until it is gone.
    fn kill(&mut self);

    /// The last lines it printed so far.
    fn output_tail(&self) -> String;

    /// The last lines it printed, once its output has ended (waits a moment for that).
    fn final_output_tail(&self) -> String;
}
