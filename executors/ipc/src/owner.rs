//! Acting as another user for file access, on the calling thread only.
//!
//! A runtime running as root shares channels with workers that run unprivileged (in a
//! container). iceoryx2 creates each file readable and writable by its owner only, so
//! the runtime's side must create its files as the worker's user, and open the worker's
//! files as that user. Linux keeps a *filesystem* uid and gid per thread
//! (`setfsuid(2)`/`setfsgid(2)`), used for exactly these checks and for the owner of new
//! files, and nothing else: signals, other threads and the process's identity are
//! untouched. [`ActAs`] switches them for one call and switches back when dropped.

/// Switches the calling thread's filesystem ids to `owner` until dropped (no switch for
/// `None`). Endpoint calls are synchronous, so the switch never spans an `await`.
pub(crate) struct ActAs {
    previous: Option<(u32, u32)>,
}

impl ActAs {
    pub(crate) fn new(owner: Option<(u32, u32)>) -> Self {
        let Some((uid, gid)) = owner else {
            return Self { previous: None };
        };
        // SAFETY: plain syscalls on the calling thread; each returns the previous id.
        // The group first: changing the uid away from 0 drops the capabilities that file
        // checks use, not the one setfsgid needs, but keep the order symmetric anyway.
        let previous = unsafe {
            (
                libc::setfsuid(uid as libc::uid_t),
                libc::setfsgid(gid as libc::gid_t),
            )
        };
        Self {
            previous: Some((previous.0 as u32, previous.1 as u32)),
        }
    }
}

impl Drop for ActAs {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.previous {
            // SAFETY: as above; back to the ids the thread had.
            unsafe {
                libc::setfsgid(gid as libc::gid_t);
                libc::setfsuid(uid as libc::uid_t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs_ids() -> (u32, u32) {
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        let field = |name: &str| -> u32 {
            let line = status.lines().find(|l| l.starts_with(name)).expect("field");
            // Real, effective, saved, filesystem.
            line.split_whitespace()
                .nth(4)
                .expect("fs id")
                .parse()
                .expect("number")
        };
        (field("Uid:"), field("Gid:"))
    }

    #[test]
    fn the_switch_lasts_while_the_guard_lives_and_stays_on_its_thread() {
        let own = fs_ids();
        {
            let _none = ActAs::new(None);
            assert_eq!(fs_ids(), own);
        }
        // SAFETY: reading the effective uid.
        if unsafe { libc::geteuid() } != 0 {
            return; // switching needs root (CAP_SETUID); CI runs as root
        }
        // A thread started before the switch (a new thread would inherit the ids).
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            asked.recv().expect("asked");
            fs_ids()
        });
        {
            let _guard = ActAs::new(Some((4321, 4322)));
            assert_eq!(fs_ids(), (4321, 4322));
            ask.send(()).expect("ask");
            assert_eq!(
                other.join().expect("thread"),
                own,
                "other threads keep their ids"
            );
        }
        assert_eq!(fs_ids(), own, "restored on drop");
    }
}
