//! Time as the engines see it: an instant passed in by the caller (the
//! daemons read a clock, the simulator keeps a virtual one), never read here.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use std::collections::BTreeSet;

pub use core::time::Duration;

/// A point in time, in microseconds since the driver's epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    micros: u64,
}

/// The earlier of two deadlines, either of which may be unset. Written
/// out, since an engine's next timeout folds a few of them after every
/// event, and rustc compiles `[a, b, c].into_iter().flatten().min()` into
/// hundreds of instructions.
pub fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Instant {
    pub const ZERO: Instant = Instant { micros: 0 };

    pub const fn from_micros(micros: u64) -> Self {
        Instant { micros }
    }

    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            micros: millis.saturating_mul(1000),
        }
    }

    pub const fn from_secs(secs: u64) -> Self {
        Instant {
            micros: secs.saturating_mul(1_000_000),
        }
    }

    pub const fn total_micros(self) -> u64 {
        self.micros
    }

    /// Zero when `earlier` is later than `self`.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        let d = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Instant {
            micros: self.micros.saturating_add(d),
        }
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.micros / 1_000_000,
            self.micros % 1_000_000
        )
    }
}

/// Timers keyed by `K`, earliest first. The owner keeps each key's current
/// deadline, so a reschedule removes the old entry.
#[derive(Debug, Clone)]
pub struct Deadlines<K: Ord + Copy> {
    set: BTreeSet<(Instant, K)>,
}

impl<K: Ord + Copy> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            set: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    pub fn reschedule(&mut self, key: K, old: Option<Instant>, new: Option<Instant>) {
        if let Some(o) = old {
            self.set.remove(&(o, key));
        }
        if let Some(n) = new {
            self.set.insert((n, key));
        }
    }

    pub fn next(&self) -> Option<Instant> {
        self.set.first().map(|(t, _)| *t)
    }

    /// The next key whose deadline is at or before `now`, removed.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        match self.set.first() {
            Some((t, _)) if *t <= now => self.set.pop_first().map(|(_, k)| k),
            _ => None,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(1500);
        assert_eq!(t + Duration::from_millis(500), Instant::from_secs(2));
        assert_eq!(Instant::from_secs(2) - t, Duration::from_millis(500));
        assert_eq!(t - Instant::from_secs(2), Duration::ZERO);
        assert_eq!(
            Instant::from_micros(u64::MAX) + Duration::MAX,
            Instant::from_micros(u64::MAX)
        );
        assert_eq!(t.to_string(), "1.500000s");
    }
}
