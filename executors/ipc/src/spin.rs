//! [`Spin`]: how long a side polls for the next message before it sleeps.

use std::time::{Duration, Instant};

/// After polling missed (the answer came after the window), this many waits go straight
/// to sleep before polling is tried again.
const RETRY_AFTER: u32 = 16;

/// The polling policy of one side of a channel.
///
/// Each wait first polls for up to `window` — yielding the CPU between polls, so that when
/// the kernel has put the other side on this CPU it runs now instead of after our time
/// slice — then sleeps on the event service. When a poll window passes without the
/// message (a node taking milliseconds, a stream paced in real time), the next 16 waits
/// sleep at once: polling only pays while the other side answers within the window. Only
/// a wait that had to sleep counts as a miss: an answer the poll found, however late in
/// the window, keeps polling on (otherwise both sides, each answering the other late
/// while asleep, would keep each other out of polling).
///
/// Measured on two cores (docs/PERFORMANCE.md): a 20 ms frame's round trip is 8 µs with
/// polling and 21 µs without; a bare spin without yielding is worse when both processes
/// share a CPU.
#[derive(Debug, Clone)]
pub struct Spin {
    window: Duration,
    skip: u32,
}

impl Spin {
    /// The runtime's window: it sends an item and waits for the node's answer.
    pub const HOST_WINDOW: Duration = Duration::from_micros(30);
    /// The worker's window: it answers and waits for the next item.
    pub const WORKER_WINDOW: Duration = Duration::from_micros(50);

    /// A policy polling up to `window` per wait.
    pub fn new(window: Duration) -> Self {
        Self { window, skip: 0 }
    }

    /// Starts one wait: the instant polling should stop (`started` itself when this wait
    /// should sleep at once).
    pub fn begin(&mut self, started: Instant) -> SpinWait {
        let spinning = self.skip == 0;
        self.skip = self.skip.saturating_sub(1);
        SpinWait {
            until: if spinning {
                started + self.window
            } else {
                started
            },
            spinning,
        }
    }

    /// Ends a wait begun with [`begin`](Self::begin); `slept` says whether the message
    /// came only after the wait gave up polling. A polling wait that had to sleep stops
    /// polling for a while.
    pub fn end(&mut self, wait: &SpinWait, slept: bool) {
        if wait.spinning && slept {
            self.skip = RETRY_AFTER;
        }
    }
}

/// One wait's polling deadline; see [`Spin::begin`].
#[derive(Debug, Clone, Copy)]
pub struct SpinWait {
    until: Instant,
    spinning: bool,
}

impl SpinWait {
    /// Polls `ready` (yielding between polls) until it is true or the window has passed;
    /// returns whether it became true.
    pub fn poll(&self, mut ready: impl FnMut() -> bool) -> bool {
        loop {
            if ready() {
                return true;
            }
            if Instant::now() >= self.until {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// Whether the window has passed.
    pub fn is_over(&self) -> bool {
        Instant::now() >= self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_window_skips_polling_for_the_next_waits() {
        let mut spin = Spin::new(Duration::from_micros(30));
        let t0 = Instant::now();
        let wait = spin.begin(t0);
        assert!(wait.spinning);
        spin.end(&wait, true);
        for _ in 0..RETRY_AFTER {
            assert!(!spin.begin(t0).spinning);
        }
        assert!(spin.begin(t0).spinning, "polling is tried again");
    }

    #[test]
    fn an_answer_the_poll_found_keeps_polling() {
        let mut spin = Spin::new(Duration::from_micros(30));
        let t0 = Instant::now();
        let wait = spin.begin(t0);
        spin.end(&wait, false);
        assert!(spin.begin(t0).spinning);
    }
}
