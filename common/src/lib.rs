//! The sans-IO core of the Mobile IPv6 stack: everything the mobile node,
//! correspondent node, home agent and simulator share, and nothing that
//! touches a socket, a device or a clock.
//!
//! # The sans-IO contract
//!
//! - **Inputs carry `now`.** Every entry point that depends on time takes the
//!   current instant from its caller; nothing here reads a clock, sleeps or
//!   spawns. The workspace `.clippy.toml` bans reading the monotonic or
//!   wall clock, sleeping, and thread-local RNGs to keep it so.
//! - **Outputs are pulled.** Engines queue what they want to send, the events
//!   they raise and their next deadline; the caller drains them with
//!   `poll_transmit`, `poll_event` and `poll_timeout`.
//! - **Bad input is counted, not returned.** An engine never returns an error
//!   for something a peer sent: it drops the packet and counts the drop by
//!   reason. Decoders ([`wire`]) do return a [`wire::WireError`] that says
//!   why, which is the reason an engine counts.
//! - **Randomness is owned.** Each engine owns an RNG seeded from its
//!   configuration, so a seeded run is reproducible byte for byte.
//!
//! The daemons (`mn`, `cn`, `ha`) and the simulator (`testbed`) are drivers:
//! they feed packets and time in, and put packets on links or devices.

pub mod ike;
#[cfg(feature = "io")]
pub mod io;
pub mod ipsec;
pub mod keylog;
pub mod nd;
pub mod node;
pub mod time;
pub mod wire;
