//! A one-shot timer with the kernel's precision, for the processes of the
//! real demo that pace what they send: the router's link delays and the
//! UDP flows.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use common::time::Duration;
use nix::sys::time::TimeSpec;
use nix::sys::timer::Expiration;
use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

/// Tokio's timers round up to the next millisecond, which would add up to
/// a millisecond (more than 1 ms on average with the reactor's own
/// rounding) to every delay a link adds and every datagram of a flow.
/// Armed with a relative time computed from the process clock, so it
/// reads no clock of its own.
pub struct Timer {
    fd: AsyncFd<TimerHandle>,
}

struct TimerHandle(TimerFd);

impl AsRawFd for TimerHandle {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok(Timer {
            fd: register(TimerHandle(fd))?,
        })
    }

    /// Fires `after` from now (at once for zero: the kernel would take a
    /// zero as "disarm").
    pub fn arm(&self, after: Duration) -> io::Result<()> {
        let after = std::time::Duration::from_micros((after.as_micros() as u64).max(1));
        self.fd.get_ref().0.set(
            Expiration::OneShot(TimeSpec::from_duration(after)),
            TimerSetTimeFlags::empty(),
        )?;
        Ok(())
    }

    /// Waits until it fires.
    pub async fn fired(&self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|h| h.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(result) => return result,
                Err(_would_block) => {}
            }
        }
    }
}

/// Registers the timer with Tokio's reactor.
///
/// Tokio 1.54 deprecated the safe `AsyncFd::new` for the `unsafe`
/// `AsyncFd::register`, whose contract is that the descriptor stays open
/// and the same for the `AsyncFd`'s lifetime: the `TimerFd` moved into it
/// owns its descriptor, so the safe call stays sound (as in
/// `common::io::packet`).
#[expect(
    deprecated,
    reason = "sound for an owned descriptor; the replacement is `unsafe`, forbidden in this workspace"
)]
fn register(handle: TimerHandle) -> io::Result<AsyncFd<TimerHandle>> {
    AsyncFd::new(handle)
}
