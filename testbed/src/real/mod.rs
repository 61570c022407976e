//! The namespace backend: the real demo's pieces on Linux links, next to
//! the real daemons.
//!
//! - [`router`]: `testbed router --config FILE`, the demo's router as a
//!   process. It joins real links (veth ends in its namespace) and behaves,
//!   frame for frame, like the simulator's links and its router: the same
//!   link model ([`crate::sim::LinkModel::fate`]: delay, jitter, loss, MTU,
//!   up/down, capture) and the same [`crate::router::Router`].
//! - [`fabric`]: that behaviour sans-IO (learning switch, link model,
//!   delay queue, router), so it is tested without namespaces.
//! - [`config`]: its YAML file.
//! - [`demo`]: `testbed demo --real`, the demo topology in namespaces with
//!   the real daemons, this router, and kernel applications talking.
//! - [`traffic`]: `testbed traffic`, the kernel traffic of the real demo
//!   (UDP flows, a TCP stream of known bytes).

pub mod config;
pub mod demo;
pub mod fabric;
pub mod report;
pub mod router;
mod timer;
pub mod traffic;
