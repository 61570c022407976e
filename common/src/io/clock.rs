//! The one clock read of the whole core: monotonic time since the driver
//! started, as the engines' [`Instant`], and back into Tokio's timers.

use std::time::Duration;

use crate::time::Instant;

/// Monotonic time since [`Clock::new`], as the engines' [`Instant`].
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
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

    /// Starts the clock: [`Clock::now`] is [`Instant::ZERO`] now.
    pub fn new() -> Clock {
        Clock {
            start: Self::read(),
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
