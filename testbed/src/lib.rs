//! Testbeds and tools for the Mobile IPv6 stack. Four products live here:
//!
//! - **The simulator**: [`sim`], a deterministic network with virtual time
//!   that drives the `common` engines; [`topology`], the demo topology
//!   built on it; [`demo`], the demo scenario, what it measures and its
//!   reports (`testbed demo`); [`router`], the IPv6 router the simulator
//!   and the real demo share; [`flood`] and [`loss`], the demo's node
//!   under floods from random addresses and over lossy links.
//! - **Scenario files**: [`scenario`], networks and timelines as YAML
//!   (`testbed run FILE`).
//! - **The pictures**: [`pictures`], sequence diagrams, delay plots and
//!   the demo's `report.html`.
//! - **The packet tools**: [`tools`], decoding for people and test oracles
//!   (`testbed decode`), pcap files, and the reference packet set
//!   (`testbed samples`).
//! - **The IKE daemon**: [`ike_peer`], our IKEv2 engine and ESP data plane
//!   on real sockets and a TUN (`testbed ike`).
//! - **The namespace harness**: [`harness`], real processes in network
//!   namespaces, and strongSwan's charon as an interop peer.
//! - **The namespace backend**: [`real`], the real demo's pieces next to
//!   the real daemons: its router as a process on veth ports (`testbed
//!   router`), with the simulator's link model and router.
//! - **The benches' figures**: [`summary`], the line each bench prints
//!   per headline figure for `scripts/bench.sh`'s one table.

pub mod demo;
pub mod flood;
pub mod harness;
pub mod ike_load;
pub mod ike_peer;
pub mod loss;
pub mod pictures;
pub mod real;
pub mod router;
pub mod scenario;
pub mod sim;
pub mod summary;
pub mod tools;
pub mod topology;
