//! What an engine is doing, as plain data for people and scripts: the
//! interfaces with their addresses, routers and neighbours, the binding
//! cache or the binding update list, the SAs, IKE's SAs, and every
//! counter. A daemon's control socket sends it as JSON; its CLI prints it.

use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::collections::BTreeMap;

use serde::Serialize;

use super::{NodeDrop, NodeStats};
use crate::ike::{Ike, IkeState};
use crate::ipsec::{Direction, Ipsec, Mode};
use crate::nd::{AddrState, NdIface, NeighborState};
use crate::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    /// `mn`, `ha` or `cn`.
    pub role: &'static str,
    pub interfaces: Vec<InterfaceStatus>,
    /// A mobile node: where it is (`home on link 0`, `away on link 1 at
    /// 2001:db8:2::100`, `no link`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// A home agent's or correspondent's binding cache.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BindingStatus>,
    /// A mobile node's binding update list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binding_updates: Vec<UpdateStatus>,
    pub sas: Vec<SaStatus>,
    /// IKE's SAs, when the node keys by IKEv2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ike: Option<Vec<IkeSaStatus>>,
    pub counters: BTreeMap<&'static str, u64>,
    /// Drops by reason: the engine's, and IPsec's under `ipsec/`.
    pub drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterfaceStatus {
    pub iface: u8,
    pub mac: String,
    /// Address and state (`preferred`, `optimistic`, `tentative`, ...).
    pub addresses: Vec<(Ipv6Addr, &'static str)>,
    pub routers: Vec<Ipv6Addr>,
    pub neighbors: Vec<NeighborStatus>,
    /// Home addresses a home agent defends here, and whether DAD is over.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proxied: Vec<(Ipv6Addr, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NeighborStatus {
    pub address: Ipv6Addr,
    pub mac: Option<String>,
    pub state: &'static str,
    pub router: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingStatus {
    pub home: Ipv6Addr,
    /// `None` while a correspondent tests a care-of address (Annex A1).
    pub care_of: Option<Ipv6Addr>,
    pub seq: Option<u16>,
    /// Seconds left.
    pub expires_in: u64,
    /// How it was authorised: `ipsec`, `rr`, or `dad` for a home
    /// registration still waiting for the DAD of its home address.
    pub how: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateStatus {
    pub peer: Ipv6Addr,
    /// `home-agent`, `ipsec`, `rr`, `triangular` or `none`.
    pub mode: &'static str,
    pub care_of: Ipv6Addr,
    pub seq: u16,
    pub bound: bool,
    pub waiting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaStatus {
    pub spi: String,
    pub direction: &'static str,
    pub mode: &'static str,
    pub local: IpAddr,
    pub peer: IpAddr,
    pub algorithm: String,
    pub packets: u64,
    pub bytes: u64,
    /// The last sequence number sent or the highest received.
    pub sequence: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IkeSaStatus {
    /// Our SPI, what the SA is found by.
    pub spi: String,
    /// The peer's identity, once IKE_AUTH named it, and its name in the
    /// configuration.
    pub peer: Option<String>,
    pub peer_name: Option<String>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: &'static str,
    pub initiator: bool,
    /// Both sides sent MOBIKE_SUPPORTED (RFC 4555).
    pub mobike: bool,
    pub children: Vec<ChildSaStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildSaStatus {
    pub name: String,
    pub spi_in: String,
    pub spi_out: String,
    pub mode: &'static str,
    pub local: IpAddr,
    pub remote: IpAddr,
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Transport => "transport",
        Mode::Tunnel => "tunnel",
    }
}

fn ike_state(s: IkeState) -> &'static str {
    match s {
        IkeState::AwaitingInitResponse => "awaiting IKE_SA_INIT response",
        IkeState::AwaitingAuthRequest => "awaiting IKE_AUTH request",
        IkeState::AwaitingAuthResponse => "awaiting IKE_AUTH response",
        IkeState::Established => "established",
    }
}

fn addr_state(s: AddrState) -> &'static str {
    match s {
        AddrState::Tentative => "tentative",
        AddrState::Optimistic => "optimistic",
        AddrState::Preferred => "preferred",
        AddrState::Quiet => "quiet",
        AddrState::Duplicate => "duplicate",
    }
}

fn neighbor_state(s: NeighborState) -> &'static str {
    match s {
        NeighborState::Incomplete => "incomplete",
        NeighborState::Reachable => "reachable",
        NeighborState::Stale => "stale",
        NeighborState::Delay => "delay",
        NeighborState::Probe => "probe",
    }
}

impl InterfaceStatus {
    pub fn of(iface: u8, nd: &NdIface) -> Self {
        let mut neighbors: Vec<NeighborStatus> = nd
            .neighbors()
            .map(|(a, n)| NeighborStatus {
                address: *a,
                mac: n.mac.map(|m| m.to_string()),
                state: neighbor_state(n.state),
                router: n.is_router,
            })
            .collect();
        neighbors.sort_by_key(|n| n.address);
        let mut proxied: Vec<(Ipv6Addr, bool)> = nd.proxied().collect();
        proxied.sort();
        InterfaceStatus {
            iface,
            mac: nd.mac().to_string(),
            addresses: nd.addresses().map(|(a, s)| (a, addr_state(s))).collect(),
            routers: nd.routers().iter().map(|r| r.address).collect(),
            neighbors,
            proxied,
        }
    }
}

impl NodeStatus {
    /// The parts every role has: interfaces, SAs, counters, drops.
    pub(crate) fn new<'a>(
        role: &'static str,
        links: impl Iterator<Item = (u8, &'a NdIface)>,
        ipsec: &Ipsec,
        stats: &NodeStats,
    ) -> Self {
        let mut sas: Vec<SaStatus> = ipsec
            .sad
            .iter()
            .map(|(_, sa)| {
                let a = sa.addresses();
                SaStatus {
                    spi: format!("{:#010x}", sa.spi()),
                    direction: match sa.direction() {
                        Direction::Inbound => "in",
                        Direction::Outbound => "out",
                    },
                    mode: mode_name(sa.mode()),
                    local: a.local,
                    peer: a.peer,
                    algorithm: sa.algorithm().to_string(),
                    packets: sa.packets(),
                    bytes: sa.bytes(),
                    sequence: sa.sequence(),
                }
            })
            .collect();
        sas.sort_by(|a, b| (&a.spi, a.direction).cmp(&(&b.spi, b.direction)));
        let counters = BTreeMap::from([
            ("signalling_messages", stats.signalling_messages),
            ("signalling_bytes", stats.signalling_bytes),
            ("delivered_route_optimised", stats.delivered_route_optimised),
            ("delivered_tunnelled", stats.delivered_tunnelled),
            ("delivered_direct", stats.delivered_direct),
            ("sent_route_optimised", stats.sent_route_optimised),
            ("sent_tunnelled", stats.sent_tunnelled),
            ("sent_direct", stats.sent_direct),
            ("forwarded", stats.forwarded),
            ("ike_messages", stats.ike_messages),
            ("ike_bytes", stats.ike_bytes),
            ("errors_suppressed", stats.errors_suppressed),
            ("held_for_dad", stats.held_for_dad),
            ("rr_tokens_taken", stats.rr_tokens_taken),
            ("esp_sealed", ipsec.stats().sealed),
            ("esp_opened", ipsec.stats().opened),
        ]);
        let mut drops: BTreeMap<String, u64> =
            stats.drops().map(|(r, n)| (drop_name(r), n)).collect();
        for (r, n) in ipsec.stats().drops() {
            drops.insert(format!("ipsec/{r:?}"), n);
        }
        NodeStatus {
            role,
            interfaces: links.map(|(i, nd)| InterfaceStatus::of(i, nd)).collect(),
            location: None,
            bindings: vec![],
            binding_updates: vec![],
            sas,
            ike: None,
            counters,
            drops,
        }
    }

    /// With `ike`'s SAs and their children, and its drops under `ike/`
    /// (the engines' `status` leaves them to the caller).
    pub fn with_ike(mut self, ike: Option<&Ike>) -> Self {
        let Some(ike) = ike else {
            return self;
        };
        let peers = &ike.config().peers;
        let mut sas: Vec<IkeSaStatus> = ike
            .sa_ids()
            .filter_map(|id| ike.sa(id))
            .map(|sa| {
                let peer = sa.peer().and_then(|i| peers.get(i));
                IkeSaStatus {
                    spi: format!("{:016x}", sa.ours),
                    peer: peer.map(|p| p.id.to_string()),
                    peer_name: peer.map(|p| p.name.clone()),
                    local: sa.local,
                    remote: sa.remote,
                    state: ike_state(sa.state()),
                    initiator: sa.initiator,
                    mobike: sa.mobike,
                    children: sa
                        .children
                        .iter()
                        .map(|c| ChildSaStatus {
                            name: c.name.clone(),
                            spi_in: format!("{:#010x}", c.spi_in),
                            spi_out: format!("{:#010x}", c.spi_out),
                            mode: mode_name(c.mode),
                            local: c.addresses.local,
                            remote: c.addresses.peer,
                        })
                        .collect(),
                }
            })
            .collect();
        sas.sort_by(|a, b| a.spi.cmp(&b.spi));
        self.ike = Some(sas);
        for (r, n) in ike.stats().drops() {
            self.drops.insert(format!("ike/{r:?}"), n);
        }
        self
    }
}

fn drop_name(r: NodeDrop) -> String {
    format!("{r:?}")
}

/// Seconds from `now` to `at`, zero if past.
pub(crate) fn seconds_until(now: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(now).as_secs()
}
