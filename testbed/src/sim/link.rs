//! The link model: what a link does to a packet sent on it (capture, MTU,
//! loss, delay and jitter) and which of its interfaces receive it.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use common::time::{Duration, Instant};
use common::wire::MacAddr;

use super::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub usize);

/// What a link does to packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkParams {
    pub delay: Duration,
    /// Extra delay, uniform in [0, jitter).
    pub jitter: Duration,
    /// Probability that a packet is lost.
    pub loss: f64,
    pub mtu: usize,
}

impl LinkParams {
    pub fn delay(delay: Duration) -> Self {
        LinkParams {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            mtu: 1500,
        }
    }
}

/// Per-link counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub lost: u64,
    pub too_big: u64,
    pub down: u64,
    /// No interface on the link has the destination MAC.
    pub unreachable: u64,
}

/// An interface of a node: the node and the interface's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub node: NodeId,
    pub iface: u8,
}

impl Port {
    /// Every simulated interface's MAC: locally administered, from the
    /// node and interface numbers.
    pub fn mac(self) -> MacAddr {
        MacAddr::local(((self.node.0 as u64) << 8) | u64::from(self.iface))
    }
}

pub(super) struct Link {
    pub(super) name: String,
    pub(super) prefix: Ipv6Addr,
    pub(super) params: LinkParams,
    pub(super) up: bool,
    /// The interfaces attached, by MAC (an Ethernet segment: unicast frames
    /// go to their MAC, multicast to everybody else).
    pub(super) members: HashMap<MacAddr, Port>,
    pub(super) stats: LinkStats,
    pub(super) capture: Option<Vec<(Instant, Vec<u8>)>>,
}

impl Link {
    /// An empty link, up, not captured.
    pub(super) fn new(name: &str, prefix: Ipv6Addr, params: LinkParams) -> Link {
        Link {
            name: name.to_string(),
            prefix,
            params,
            up: true,
            members: HashMap::new(),
            stats: LinkStats::default(),
            capture: None,
        }
    }

    /// Carries a frame to `dst` that `from` sent at `now`: capture, MTU,
    /// loss, then the interface with that MAC, or every other one for a
    /// group MAC. `roll` and `jitter_roll` are the simulator's random draws
    /// for loss and jitter. Returns when the frame arrives and where; None
    /// when the link dropped it (counted).
    pub(super) fn carry(
        &mut self,
        now: Instant,
        from: Option<Port>,
        dst: MacAddr,
        bytes: &[u8],
        roll: u64,
        jitter_roll: u64,
    ) -> Option<(Instant, Vec<Port>)> {
        self.stats.sent += 1;
        if !self.up {
            self.stats.down += 1;
            return None;
        }
        if let Some(c) = &mut self.capture {
            c.push((now, bytes.to_vec()));
        }
        if bytes.len() > self.params.mtu {
            self.stats.too_big += 1;
            return None;
        }
        if (roll as f64 / u64::MAX as f64) < self.params.loss {
            self.stats.lost += 1;
            return None;
        }
        let jitter = self.params.jitter.as_micros() as u64;
        let extra = if jitter == 0 { 0 } else { jitter_roll % jitter };
        let at = now + self.params.delay + Duration::from_micros(extra);
        let mut to: Vec<Port> = if dst.is_multicast() {
            self.members
                .values()
                .copied()
                .filter(|m| Some(*m) != from)
                .collect()
        } else {
            self.members.get(&dst).copied().into_iter().collect()
        };
        if to.is_empty() {
            self.stats.unreachable += 1;
            return None;
        }
        // Deterministic order, whatever the map's.
        to.sort();
        Some((at, to))
    }
}
