//! The link model: what a link does to a packet sent on it (capture, MTU,
//! loss, delay and jitter) and which of its nodes receive it.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use common::time::{Duration, Instant};
use common::wire::Ipv6Packet;

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
    /// No node on the link answers for the destination.
    pub unreachable: u64,
}

pub(super) struct Link {
    pub(super) name: String,
    pub(super) prefix: Ipv6Addr,
    pub(super) params: LinkParams,
    pub(super) up: bool,
    pub(super) members: Vec<NodeId>,
    pub(super) owners: HashMap<Ipv6Addr, NodeId>,
    pub(super) router: Option<NodeId>,
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
            members: vec![],
            owners: HashMap::new(),
            router: None,
            stats: LinkStats::default(),
            capture: None,
        }
    }

    /// Carries `bytes` that `from` sent at `now`: capture, MTU, loss, then
    /// the neighbour that answers for the destination, or the router.
    /// `roll` and `jitter_roll` are the simulator's random draws for loss
    /// and jitter. Returns when the packet arrives and where; None when
    /// the link dropped it (counted).
    pub(super) fn carry(
        &mut self,
        now: Instant,
        from: Option<NodeId>,
        bytes: &[u8],
        roll: u64,
        jitter_roll: u64,
    ) -> Option<(Instant, Vec<NodeId>)> {
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
        let Ok(p) = Ipv6Packet::new_checked(bytes) else {
            self.stats.unreachable += 1;
            return None;
        };
        let dst = p.dst_addr();
        let to: Vec<NodeId> = if dst.is_multicast() {
            self.members
                .iter()
                .copied()
                .filter(|m| Some(*m) != from)
                .collect()
        } else if let Some(n) = self.owners.get(&dst) {
            vec![*n]
        } else if let Some(r) = self.router.filter(|r| Some(*r) != from) {
            vec![r]
        } else {
            self.stats.unreachable += 1;
            return None;
        };
        Some((at, to))
    }
}
