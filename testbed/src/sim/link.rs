//! The link model: what a link does to a packet sent on it (capture, MTU,
//! loss, delay and jitter: [`LinkModel::fate`], which the real router
//! process runs too) and which of its interfaces receive it: the one with
//! the destination MAC, every other one for all-nodes and broadcast, and
//! for any other group MAC only those that listen to it (the engines
//! report their groups, as MLD would to a snooping switch).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use hashbrown::HashMap;

use common::nd::ALL_NODES;
use common::time::{Duration, Instant};
use common::wire::MacAddr;
use rand_core::RngCore;

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
    const MIN: Port = Port {
        node: NodeId(0),
        iface: 0,
    };
    const MAX: Port = Port {
        node: NodeId(usize::MAX),
        iface: u8::MAX,
    };

    /// Every simulated interface's MAC: locally administered, from the
    /// node and interface numbers.
    pub fn mac(self) -> MacAddr {
        MacAddr::local(((self.node.0 as u64) << 8) | u64::from(self.iface))
    }
}

/// The two random draws a frame's fate takes, in the order they come
/// out of the RNG: loss first, then jitter. The simulator and the real
/// router ([`crate::real`]) both take them with [`Draws::take`], one pair
/// per frame put on a link, so a seed gives the same fates in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draws {
    pub loss: u64,
    pub jitter: u64,
}

impl Draws {
    /// The next two draws of `rng`.
    pub fn take(rng: &mut impl RngCore) -> Draws {
        let loss = rng.next_u64();
        let jitter = rng.next_u64();
        Draws { loss, jitter }
    }
}

/// What a link does with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The link is down: not captured.
    Down,
    /// Longer than the MTU (captured, then dropped).
    TooBig,
    /// Lost (captured, then dropped).
    Lost,
    /// Delivered at this time.
    Arrives(Instant),
}

/// What every link is, in the simulator and in the real router alike: its
/// parameters, whether it is up, and its counters. [`LinkModel::fate`] is
/// the one place a frame's fate is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    pub params: LinkParams,
    pub up: bool,
    pub stats: LinkStats,
}

impl LinkModel {
    /// A link that is up, with nothing counted yet.
    pub fn new(params: LinkParams) -> LinkModel {
        LinkModel {
            params,
            up: true,
            stats: LinkStats::default(),
        }
    }

    /// The fate of a frame put on the link at `now`. `bytes` is what the
    /// MTU applies to and what a capture records: the IPv6 packet, without
    /// an Ethernet header. In this order: counted as sent; dropped if the
    /// link is down; handed to `capture`; dropped if longer than the MTU,
    /// or if the loss draw falls under `loss`; else it arrives after the
    /// delay plus the jitter draw modulo the jitter (in microseconds).
    /// Every drop is counted. Which interfaces get it is the caller's
    /// business (and so is [`LinkStats::unreachable`]).
    pub fn fate(
        &mut self,
        now: Instant,
        bytes: &[u8],
        draws: Draws,
        capture: impl FnOnce(Instant, &[u8]),
    ) -> Fate {
        self.stats.sent += 1;
        if !self.up {
            self.stats.down += 1;
            return Fate::Down;
        }
        capture(now, bytes);
        if bytes.len() > self.params.mtu {
            self.stats.too_big += 1;
            return Fate::TooBig;
        }
        if (draws.loss as f64 / u64::MAX as f64) < self.params.loss {
            self.stats.lost += 1;
            return Fate::Lost;
        }
        let jitter = self.params.jitter.as_micros() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            draws.jitter % jitter
        };
        Fate::Arrives(now + self.params.delay + Duration::from_micros(extra))
    }
}

#[derive(Clone)]
pub(super) struct Link {
    pub(super) name: String,
    pub(super) prefix: Ipv6Addr,
    pub(super) model: LinkModel,
    /// The interfaces attached, by MAC (where unicast frames go).
    members: HashMap<MacAddr, Port>,
    /// The same, in order: where all-nodes and broadcast frames go.
    ports: BTreeSet<Port>,
    /// Who listens to each group MAC ...
    listeners: BTreeSet<(MacAddr, Port)>,
    /// ... and for how many of its groups (two may share a MAC), by
    /// interface, to forget them all when it leaves.
    joined: HashMap<Port, HashMap<MacAddr, u32>>,
    pub(super) capture: Option<Vec<(Instant, Vec<u8>)>>,
    /// Who sent each captured frame and who got it when (same index).
    pub(super) hops: Vec<Hop>,
}

/// The ends of a captured frame: the sender, and when it arrived and at
/// which nodes (`None`: dropped, or nobody on the link had its MAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub from: Option<NodeId>,
    pub arrived: Option<(Instant, Vec<NodeId>)>,
}

impl Link {
    /// An empty link, up, not captured.
    pub(super) fn new(name: &str, prefix: Ipv6Addr, params: LinkParams) -> Link {
        Link {
            name: name.to_string(),
            prefix,
            model: LinkModel::new(params),
            members: HashMap::new(),
            ports: BTreeSet::new(),
            listeners: BTreeSet::new(),
            joined: HashMap::new(),
            capture: None,
            hops: vec![],
        }
    }

    /// The interfaces attached, in order.
    pub(super) fn ports(&self) -> impl Iterator<Item = &Port> {
        self.ports.iter()
    }

    pub(super) fn attach(&mut self, port: Port) {
        self.members.insert(port.mac(), port);
        self.ports.insert(port);
    }

    /// Takes `port` off the link, with the groups it listened to.
    pub(super) fn detach(&mut self, port: Port) {
        self.members.remove(&port.mac());
        self.ports.remove(&port);
        for mac in self.joined.remove(&port).unwrap_or_default().into_keys() {
            self.listeners.remove(&(mac, port));
        }
    }

    /// `port` now listens to (`join`) or left a group with MAC `mac`.
    pub(super) fn membership(&mut self, port: Port, mac: MacAddr, join: bool) {
        let groups = self.joined.entry(port).or_default();
        let n = groups.entry(mac).or_default();
        if join {
            *n += 1;
            self.listeners.insert((mac, port));
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                groups.remove(&mac);
                self.listeners.remove(&(mac, port));
            }
        }
    }

    /// Carries a frame to `dst` that `from` sent at `now`: its fate
    /// ([`LinkModel::fate`], with the capture), then the interface with
    /// that MAC, or every other one that listens for a group MAC. Returns
    /// when the frame arrives and where, in order; None when the link
    /// dropped it or nobody has the MAC (counted).
    pub(super) fn carry(
        &mut self,
        now: Instant,
        from: Option<Port>,
        dst: MacAddr,
        bytes: &[u8],
        draws: Draws,
    ) -> Option<(Instant, Vec<Port>)> {
        let capture = &mut self.capture;
        let mut captured = false;
        let fate = self.model.fate(now, bytes, draws, |at, b| {
            if let Some(c) = capture {
                c.push((at, b.to_vec()));
                captured = true;
            }
        });
        let carried = self.deliver(fate, from, dst);
        if captured {
            self.hops.push(Hop {
                from: from.map(|p| p.node),
                arrived: carried
                    .as_ref()
                    .map(|(at, to)| (*at, to.iter().map(|p| p.node).collect())),
            });
        }
        carried
    }

    /// Where a frame of this fate goes: the interface with `dst`, or every
    /// other one for a group MAC.
    fn deliver(
        &mut self,
        fate: Fate,
        from: Option<Port>,
        dst: MacAddr,
    ) -> Option<(Instant, Vec<Port>)> {
        let Fate::Arrives(at) = fate else {
            return None;
        };
        let everybody = dst == MacAddr::ipv6_multicast(ALL_NODES) || dst.0[..2] != [0x33, 0x33];
        let to: Vec<Port> = if !dst.is_multicast() {
            self.members.get(&dst).copied().into_iter().collect()
        } else if everybody {
            self.ports
                .iter()
                .copied()
                .filter(|m| Some(*m) != from)
                .collect()
        } else {
            self.listeners
                .range((dst, Port::MIN)..=(dst, Port::MAX))
                .map(|(_, p)| *p)
                .filter(|m| Some(*m) != from)
                .collect()
        };
        if to.is_empty() {
            self.model.stats.unreachable += 1;
            return None;
        }
        Some((at, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator's link arithmetic before the fate was shared, written
    /// out: lost when `loss / u64::MAX < p`, extra delay `jitter % J` µs.
    #[test]
    fn the_fate_is_the_simulators_for_fixed_draws() {
        let params = LinkParams {
            delay: Duration::from_millis(20),
            jitter: Duration::from_micros(3000),
            loss: 0.25,
            mtu: 1280,
        };
        let now = Instant::from_micros(1_000_000);
        let packet = [0u8; 1280];
        let cases = [
            // Under a quarter of the range: lost, whatever the jitter draw.
            (Draws { loss: 0, jitter: 7 }, Fate::Lost),
            (
                Draws {
                    loss: u64::MAX / 4 - 4096,
                    jitter: 0,
                },
                Fate::Lost,
            ),
            // From a quarter on: delivered after 20 ms + (jitter % 3000) µs.
            (
                Draws {
                    loss: u64::MAX / 4 + 4096,
                    jitter: 2999,
                },
                Fate::Arrives(Instant::from_micros(1_022_999)),
            ),
            (
                Draws {
                    loss: u64::MAX,
                    jitter: 3000,
                },
                Fate::Arrives(Instant::from_micros(1_020_000)),
            ),
            (
                Draws {
                    loss: 1 << 63,
                    jitter: 0x0123_4567_89ab_cdef,
                },
                Fate::Arrives(Instant::from_micros(
                    1_020_000 + 0x0123_4567_89ab_cdef % 3000,
                )),
            ),
        ];
        let mut model = LinkModel::new(params);
        let mut captured = 0;
        for (draws, want) in cases {
            assert_eq!(
                model.fate(now, &packet, draws, |_, _| captured += 1),
                want,
                "{draws:?}"
            );
        }
        assert_eq!(captured, cases.len());
        // Too big comes before the loss draw is looked at; captured still.
        let big = [0u8; 1281];
        assert_eq!(
            model.fate(now, &big, Draws { loss: 0, jitter: 0 }, |_, _| captured +=
                1),
            Fate::TooBig
        );
        assert_eq!(captured, cases.len() + 1);
        // Down: counted, not captured.
        model.up = false;
        assert_eq!(
            model.fate(
                now,
                &packet,
                Draws {
                    loss: u64::MAX,
                    jitter: 0
                },
                |_, _| captured += 1
            ),
            Fate::Down
        );
        assert_eq!(captured, cases.len() + 1);
        assert_eq!(
            model.stats,
            LinkStats {
                sent: 7,
                lost: 2,
                too_big: 1,
                down: 1,
                unreachable: 0
            }
        );
        // No jitter: the draw is not used.
        let mut plain = LinkModel::new(LinkParams::delay(Duration::from_millis(5)));
        assert_eq!(
            plain.fate(
                now,
                &packet,
                Draws {
                    loss: 0,
                    jitter: 12345
                },
                |_, _| ()
            ),
            Fate::Arrives(Instant::from_micros(1_005_000))
        );
    }

    #[test]
    fn draws_come_loss_first() {
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;
        let mut a = ChaCha20Rng::seed_from_u64(7);
        let mut b = ChaCha20Rng::seed_from_u64(7);
        let d = Draws::take(&mut a);
        assert_eq!((d.loss, d.jitter), (b.next_u64(), b.next_u64()));
    }
}
