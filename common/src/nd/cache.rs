//! The neighbour cache of one interface (RFC 4861 §7.3, Appendix C): what
//! each neighbour's link-layer address is, how sure we are of it, and the
//! packets waiting for it.

use core::net::Ipv6Addr;
use hashbrown::HashMap;

use crate::wire::MacAddr;

/// RFC 4861 §7.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighborState {
    /// Address resolution is in progress.
    Incomplete,
    /// Positively confirmed within ReachableTime.
    Reachable,
    /// Not known to be reachable; nothing is done until a packet is sent.
    Stale,
    /// A packet was sent to a stale neighbour; probe unless confirmed.
    Delay,
    /// Unicast solicitations are being sent.
    Probe,
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    /// `None` only while `Incomplete`.
    pub mac: Option<MacAddr>,
    pub state: NeighborState,
    /// The neighbour said it is a router (R flag, or an RA from it).
    pub is_router: bool,
    /// Solicitations sent in this state.
    pub(crate) probes: u8,
    /// Packets waiting for resolution, oldest first.
    pub(crate) queue: Vec<Vec<u8>>,
    /// Resolve by soliciting this proxied address instead (RFC 6275
    /// §11.5.5: a mobile node come home finds its home agent by asking
    /// for its own home address, which the agent still defends).
    pub(crate) solicit_for: Option<Ipv6Addr>,
}

impl Neighbor {
    pub(crate) fn incomplete() -> Self {
        Neighbor {
            mac: None,
            state: NeighborState::Incomplete,
            is_router: false,
            probes: 0,
            queue: Vec::new(),
            solicit_for: None,
        }
    }

    /// Packets waiting for this neighbour.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn stale(mac: MacAddr) -> Self {
        Neighbor {
            mac: Some(mac),
            state: NeighborState::Stale,
            ..Neighbor::incomplete()
        }
    }
}

pub(crate) type Cache = HashMap<Ipv6Addr, Neighbor>;
