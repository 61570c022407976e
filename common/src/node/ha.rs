//! The home agent (RFC 6275 §10): home registrations under ESP (RFC 3776,
//! RFC 4877), the binding cache, interception of packets for registered
//! home addresses, and the bidirectional IPv6-in-IPv6 tunnel.

use core::net::Ipv6Addr;
use std::collections::{HashMap, HashSet};

use super::core::{encapsulate_bytes, Core, Rx};
use super::{
    lifetime_units, same_prefix64, seq_newer, units_lifetime, Command, CommandError, Engine, Event,
    Iface, NodeDrop, NodeStats, Removal, Transmit,
};
use crate::ipsec::Ipsec;
use crate::time::{Deadlines, Duration, Instant};
use crate::wire::mh::{BaFlags, BuFlags, MhMessage, MhOption, MhRepr};
use crate::wire::{BaStatus, CodePoints, ExtHeaderRepr, Ipv6Packet, UpperRepr};

#[derive(Debug, Clone)]
pub struct HaConfig {
    pub address: Ipv6Addr,
    /// The home link's /64.
    pub home_prefix: Ipv6Addr,
    /// The home addresses this agent serves.
    pub mobile_nodes: Vec<Ipv6Addr>,
    /// The longest lifetime granted.
    pub max_lifetime: Duration,
    pub seed: u64,
    pub code_points: CodePoints,
}

impl HaConfig {
    pub fn new(address: Ipv6Addr, mobile_nodes: Vec<Ipv6Addr>, seed: u64) -> Self {
        HaConfig {
            address,
            home_prefix: address,
            mobile_nodes,
            max_lifetime: Duration::from_secs(3600),
            seed,
            code_points: CodePoints::default(),
        }
    }
}

/// A home registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeBinding {
    pub care_of: Ipv6Addr,
    pub seq: u16,
    pub expires: Instant,
}

pub struct Ha {
    cfg: HaConfig,
    /// `cfg.mobile_nodes`, for a lookup per BU.
    served: HashSet<Ipv6Addr>,
    core: Core,
    cache: HashMap<Ipv6Addr, HomeBinding>,
    expiry: Deadlines<Ipv6Addr>,
}

impl Ha {
    pub fn new(cfg: HaConfig, ipsec: Ipsec) -> Self {
        let core = Core::new(ipsec, cfg.seed, cfg.code_points);
        Ha {
            served: cfg.mobile_nodes.iter().copied().collect(),
            cfg,
            core,
            cache: HashMap::new(),
            expiry: Deadlines::default(),
        }
    }

    pub fn binding(&self, home: Ipv6Addr) -> Option<&HomeBinding> {
        self.cache.get(&home)
    }

    pub fn bindings(&self) -> usize {
        self.cache.len()
    }

    fn incoming(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(p) = Ipv6Packet::new_checked(bytes) else {
            self.core.drop(NodeDrop::Malformed);
            return;
        };
        let dst = p.dst_addr();
        if dst.is_multicast() {
            return;
        }
        if dst != self.cfg.address {
            // Intercepted for a registered home address: into the tunnel,
            // untouched (RFC 6275 §10.4.1).
            match self.cache.get(&dst) {
                Some(b) => {
                    let outer = encapsulate_bytes(self.cfg.address, b.care_of, bytes);
                    self.core.stats.forwarded += 1;
                    self.core.send(now, Iface::Link(0), &outer);
                }
                None => self.core.drop(NodeDrop::NotForUs),
            }
            return;
        }
        let Some(rx) = self.core.receive(now, bytes) else {
            return;
        };
        let Some(h) = rx.header().copied() else {
            self.core.drop(NodeDrop::NotForUs);
            return;
        };
        match &rx.repr.upper {
            UpperRepr::Tunnel(inner) => {
                // Reverse tunnel: only from the registered care-of address
                // of the inner source (RFC 6275 §10.4.5).
                let inner_src = match &inner.ip {
                    crate::wire::IpRepr::V6 { header, .. } => Some(header.src),
                    crate::wire::IpRepr::V4(_) => None,
                };
                let registered = inner_src
                    .and_then(|s| self.cache.get(&s))
                    .is_some_and(|b| b.care_of == h.src);
                if !registered {
                    self.core.drop(NodeDrop::TunnelSourceMismatch);
                    return;
                }
                let inner = (**inner).clone();
                self.core.stats.forwarded += 1;
                self.core.send(now, Iface::Link(0), &inner);
            }
            UpperRepr::Mobility(mh) => match &mh.message {
                MhMessage::BindingUpdate {
                    seq,
                    flags,
                    lifetime,
                } => {
                    let (seq, flags, lifetime) = (*seq, *flags, *lifetime);
                    let options = mh.options.clone();
                    self.binding_update(now, &rx, h.src, seq, flags, lifetime, &options);
                }
                MhMessage::Unknown { .. } => {
                    self.core.drop(NodeDrop::UnknownMhType);
                    let home = rx.home_address_option().unwrap_or(h.src);
                    self.core
                        .binding_error(now, self.cfg.address, h.src, home, 2);
                }
                _ => self.core.drop(NodeDrop::Unsolicited),
            },
            _ => {
                self.core.stats.delivered_direct += 1;
                self.core.deliver(&rx.repr);
            }
        }
    }

    #[allow(clippy::too_many_arguments, reason = "the fields of one BU")]
    fn binding_update(
        &mut self,
        now: Instant,
        rx: &Rx,
        src: Ipv6Addr,
        seq: u16,
        flags: BuFlags,
        lifetime: u16,
        options: &[MhOption],
    ) {
        // At home the BU comes from the home address itself, without a HAO.
        let home = rx.home_address_option().unwrap_or(src);
        // REQ MIP-HA-IPSEC: home registrations only under ESP (RFC 3776
        // §3.1); the SA's selectors already tied it to this home address.
        if rx.sa.is_none() {
            self.core.drop(NodeDrop::Unprotected);
            return;
        }
        let care_of = options
            .iter()
            .find_map(|o| match o {
                MhOption::AlternateCareOfAddress(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(src);
        let reply = (home, src, seq);
        let existing = self.cache.get(&home).copied();
        let refusal = if !flags.has(BuFlags::H) {
            // We are no correspondent; a node registered here cannot turn its
            // registration into a correspondent one (§9.5.1).
            Some(if existing.is_some() {
                (
                    NodeDrop::RegistrationTypeChange,
                    BaStatus::RegistrationTypeChangeDisallowed,
                )
            } else {
                (
                    NodeDrop::NotOurMobileNode,
                    BaStatus::AdministrativelyProhibited,
                )
            })
        } else if !same_prefix64(home, self.cfg.home_prefix) {
            Some((NodeDrop::NotHomeSubnet, BaStatus::NotHomeSubnet))
        } else if !self.served.contains(&home) {
            Some((
                NodeDrop::NotOurMobileNode,
                BaStatus::NotHomeAgentForThisMobileNode,
            ))
        } else {
            None
        };
        if let Some((drop, status)) = refusal {
            self.core.drop(drop);
            self.ack(now, reply, status, 0);
            return;
        }
        if let Some(b) = existing {
            if !seq_newer(seq, b.seq) {
                self.core.drop(NodeDrop::SequenceOutOfWindow);
                self.ack(
                    now,
                    (home, src, b.seq),
                    BaStatus::SequenceNumberOutOfWindow,
                    0,
                );
                return;
            }
        }
        if lifetime == 0 || care_of == home {
            if let Some(b) = self.cache.remove(&home) {
                self.expiry.reschedule(home, Some(b.expires), None);
                self.core.event(Event::Release {
                    iface: Iface::Link(0),
                    address: home,
                });
                self.core.event(Event::BindingRemoved {
                    home,
                    reason: Removal::Deregistered,
                });
            }
            self.ack(now, (home, care_of, seq), BaStatus::Accepted, 0);
            return;
        }
        let granted = units_lifetime(lifetime).min(self.cfg.max_lifetime);
        let expires = now + granted;
        if existing.is_none() {
            self.core.event(Event::Claim {
                iface: Iface::Link(0),
                address: home,
            });
        }
        self.cache.insert(
            home,
            HomeBinding {
                care_of,
                seq,
                expires,
            },
        );
        self.expiry
            .reschedule(home, existing.map(|b| b.expires), Some(expires));
        self.core.event(Event::BindingCached {
            home,
            care_of,
            lifetime: granted,
        });
        self.ack(
            now,
            (home, care_of, seq),
            BaStatus::Accepted,
            lifetime_units(granted),
        );
    }

    /// A BA to `to` (through a type 2 routing header unless it is the home
    /// address), under whatever ESP the SPD asks for.
    fn ack(
        &mut self,
        now: Instant,
        (home, to, seq): (Ipv6Addr, Ipv6Addr, u16),
        status: BaStatus,
        lifetime: u16,
    ) {
        let mh = MhRepr {
            message: MhMessage::BindingAck {
                status,
                flags: BaFlags(0),
                seq,
                lifetime,
            },
            options: vec![],
        };
        let ext = if to == home {
            vec![]
        } else {
            vec![ExtHeaderRepr::type2(home)]
        };
        self.core.send_mh(now, self.cfg.address, to, ext, mh);
    }
}

impl Engine for Ha {
    fn handle_packet(&mut self, now: Instant, iface: Iface, packet: &[u8]) {
        match iface {
            Iface::Link(_) => self.incoming(now, packet),
            Iface::Stack => {
                if let Some(repr) = self.core.parse_local(packet) {
                    self.core.stats.sent_direct += 1;
                    self.core.send(now, Iface::Link(0), &repr);
                }
            }
        }
    }

    fn handle_command(&mut self, _now: Instant, _command: Command) -> Result<(), CommandError> {
        Err(CommandError::Unsupported)
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.ipsec.handle_timeout(now);
        while let Some(home) = self.expiry.pop_due(now) {
            if self.cache.remove(&home).is_some() {
                self.core.event(Event::Release {
                    iface: Iface::Link(0),
                    address: home,
                });
                self.core.event(Event::BindingRemoved {
                    home,
                    reason: Removal::Expired,
                });
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.earliest(self.expiry.next())
    }

    fn stats(&self) -> &NodeStats {
        &self.core.stats
    }

    fn ipsec(&self) -> &Ipsec {
        &self.core.ipsec
    }

    fn ipsec_mut(&mut self) -> &mut Ipsec {
        &mut self.core.ipsec
    }
}
