//! The one clock read of the whole core: monotonic time since the driver
//! started, as the engines' [`Instant`], and back into Tokio's timers; and
//! the wall clock at that start, for what a store keeps across restarts.

use std::time::Duration;

use crate::time::Instant;

/// Monotonic time since [`Clock::new`], as the engines' [`Instant`].
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
    /// The wall clock at `start`, in µs since the Unix epoch.
    wall_start: u64,
}

impl Clock {
    /// The driver's only clock read.
    #[expect(
        clippy::disallowed_methods,
        reason = "the driver is where the engines' time comes from"
    )]
    fn read() -> std::time::Instant {
        std::time::Instant::now()
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "a store's expiry times outlive the monotonic clock"
    )]
    fn read_wall() -> u64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
    }

    /// Starts the clock: [`Clock::now`] is [`Instant::ZERO`] now.
    pub fn new() -> Clock {
        Clock {
            start: Self::read(),
            wall_start: Self::read_wall(),
        }
    }

    /// `at` on the wall clock, in µs since the Unix epoch.
    pub fn to_unix_micros(&self, at: Instant) -> u64 {
        self.wall_start.saturating_add(at.total_micros())
    }

    /// A wall-clock time as an [`Instant`] of this clock; one before its
    /// start is [`Instant::ZERO`].
    pub fn from_unix_micros(&self, us: u64) -> Instant {
        Instant::from_micros(us.saturating_sub(self.wall_start))
    }

    /// This clock as if started `d` later (a node started again).
    #[cfg(test)]
    pub(crate) fn shifted(&self, d: Duration) -> Clock {
        Clock {
            start: self.start + d,
            wall_start: self.wall_start + u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// Time since start, in whole microseconds.
    pub fn now(&self) -> Instant {
        let elapsed = Self::read().duration_since(self.start).as_micros();
        Instant::from_micros(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// The Tokio instant for an engine deadline, for `sleep_until`. Capped
    /// at a century from start, so the std clock cannot overflow.
    pub fn to_tokio(&self, at: Instant) -> tokio::time::Instant {
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
        let since_start = Duration::from_micros(at.total_micros()).min(CENTURY);
        tokio::time::Instant::from_std(self.start + since_start)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_monotonic_and_maps_back_to_tokio() {
        let clock = Clock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        let t = clock.to_tokio(Instant::from_secs(5));
        assert_eq!(t - clock.to_tokio(Instant::ZERO), Duration::from_secs(5));
        // Far deadlines are capped instead of overflowing.
        let far = clock.to_tokio(Instant::from_micros(u64::MAX));
        assert!(far > t);
    }
}
