//! One media clock for every track of a source, continued across reconnections.

/// Maps a connection's timestamps (µs, as the stream carries them) onto the source's
/// media time: the first connection starts at 0 (the stream's start time), and each later
/// one starts where the delivered media ended, so time never goes back and tracks stay
/// on one clock.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    origin_raw_us: Option<i64>,
    offset_us: u64,
    delivered_us: u64,
}

impl Clock {
    /// A new connection whose stream says it starts at `start_us` (None: its first
    /// timestamp is its start). A negative start (a file's codec priming, which the
    /// decoder drops) counts as 0.
    pub(crate) fn begin_connection(&mut self, start_us: Option<i64>) {
        self.origin_raw_us = start_us.map(|s| s.max(0));
        self.offset_us = self.delivered_us;
    }

    /// The media time of a timestamp of the current connection.
    pub(crate) fn map(&mut self, raw_us: i64) -> u64 {
        let origin = *self.origin_raw_us.get_or_insert(raw_us);
        self.offset_us + raw_us.saturating_sub(origin).max(0) as u64
    }

    /// The media time for data without a timestamp: where delivery stands.
    pub(crate) fn map_unknown(&self) -> u64 {
        self.delivered_us.max(self.offset_us)
    }

    /// Media up to `end_us` has been delivered.
    pub(crate) fn delivered(&mut self, end_us: u64) {
        self.delivered_us = self.delivered_us.max(end_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_connection_starts_where_the_first_ended() {
        let mut clock = Clock::default();
        clock.begin_connection(Some(1_400_000));
        assert_eq!(clock.map(1_400_000), 0);
        assert_eq!(clock.map(2_400_000), 1_000_000);
        clock.delivered(1_020_000);
        // The publisher restarts at 0.
        clock.begin_connection(None);
        assert_eq!(clock.map(0), 1_020_000);
        assert_eq!(clock.map(40_000), 1_060_000);
        // A timestamp before the connection's start does not go back in time.
        assert_eq!(clock.map(-5), 1_020_000);
    }
}
