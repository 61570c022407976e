//! The three Mobile IPv6 engines, [`Mn`], [`Ha`] and [`Cn`], behind one
//! sans-IO contract ([`Engine`]), and what they share.
//!
//! A driver (a daemon with a TUN device, or the simulator) feeds an engine
//! whole IP packets with the interface they came from, commands and the
//! time, and drains what it wants to send ([`Transmit`]), what happened
//! ([`Event`]) and when to call again. [`Iface::Stack`] is the node's own
//! IP stack: packets the node's applications send come in there, and
//! packets for them go out there, with every Mobile IPv6 header removed.
//!
//! Everything a peer can get wrong is counted in [`NodeStats`] by
//! [`NodeDrop`] reason (IPsec drops in detail in [`Ipsec::stats`]).

mod cache;
pub mod cn;
pub mod cookie;
mod core;
pub mod ha;
pub mod mn;
pub mod rr;
pub mod status;

use ::core::fmt;
use ::core::net::Ipv6Addr;

pub use self::cn::{Cn, CnConfig, CoaTestPolicy};
pub use self::core::MAX_LINKS;
pub use self::ha::{Ha, HaConfig};
pub use self::mn::{Correspondent, Mn, MnConfig, RouteOptimisation};
pub use self::status::NodeStatus;
pub use cookie::CookieMethod;

use crate::ike::{CloseReason, Ike, IkeEvent};
use crate::ipsec::{Ipsec, IpsecEvent};
use crate::nd::{Membership, NdEvent, NdIface};
use crate::time::{Duration, Instant};
pub use crate::wire::MacAddr;

/// RFC 6275 §12: the first home registration waits 1.5 s for its BA.
pub const INITIAL_BINDACK_TIMEOUT_FIRST_REG: Duration = Duration::from_millis(1500);
/// RFC 6275 §12: every other BU, and HoTI/CoTI, wait 1 s at first.
pub const INITIAL_BINDACK_TIMEOUT: Duration = Duration::from_secs(1);
/// RFC 6275 §12: retransmissions back off by doubling up to 32 s.
pub const MAX_BINDACK_TIMEOUT: Duration = Duration::from_secs(32);

/// Where a packet enters or leaves a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Iface {
    /// The node's own IP stack (a TUN device in the daemons).
    Stack,
    /// A network interface, numbered from 0.
    Link(u8),
}

/// A packet to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub iface: Iface,
    /// The link-layer destination on a link (a group MAC for multicast);
    /// `None` for the stack.
    pub dst_mac: Option<MacAddr>,
    pub bytes: Vec<u8>,
}

/// What a driver tells an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The interface has carrier, and `mac` is its hardware address: it
    /// starts Neighbor Discovery (a link-local address, router solicitation).
    LinkUp { iface: u8, mac: MacAddr },
    /// The interface lost carrier: its addresses and neighbours are gone.
    LinkDown(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("this node has no interface {0}")]
    NoSuchInterface(u8),
    #[error("this node does not take that command")]
    Unsupported,
}

/// What a node keeps across a restart, as plain data: the driver writes
/// each to its store before it sends what the engine queued with it (see
/// [`Engine::poll_persist`]), and hands the latest of each binding and SA
/// back to [`Engine::restore`] when the node starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// An accepted registration of `home`, until `expires`; its BA is
    /// queued behind this.
    Bound {
        home: Ipv6Addr,
        care_of: Ipv6Addr,
        seq: u16,
        expires: Instant,
    },
    /// The binding of `home` went (deregistered, expired, or not restored).
    Unbound { home: Ipv6Addr },
    /// Outbound SA `spi` may send up to sequence number `mark`; after a
    /// restart it resumes after it (see [`Ipsec::keep_sequences`]).
    SequenceMark { spi: u32, mark: u64 },
}

/// Why a binding went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Expired,
    Deregistered,
}

/// What an engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The mobile node has a new care-of address on `iface`, or is home
    /// (`care_of: None`), or lost every link (`iface: None`).
    Moved {
        iface: Option<u8>,
        care_of: Option<Ipv6Addr>,
    },
    /// The mobile node sent a BU (with `ipsec` protection or not).
    BindingUpdateSent {
        peer: Ipv6Addr,
        seq: u16,
        ipsec: bool,
    },
    /// The mobile node got a BA.
    BindingAcked {
        peer: Ipv6Addr,
        status: u8,
        lifetime: Duration,
        /// K: the peer's IKE SA follows the care-of address (RFC 4877).
        key_mobility: bool,
    },
    /// A cache entry now points `home` at `care_of`.
    BindingCached {
        home: Ipv6Addr,
        care_of: Ipv6Addr,
        lifetime: Duration,
    },
    /// A cache entry went away.
    BindingRemoved {
        home: Ipv6Addr,
        reason: Removal,
    },
    /// The correspondent asked for a care-of address test (Annex A1) and
    /// sends to the home address meanwhile, unless it keeps the old one.
    CoaTestStarted {
        home: Ipv6Addr,
        care_of: Ipv6Addr,
    },
    /// The mobile node started return routability with `peer`.
    ReturnRoutabilityStarted {
        peer: Ipv6Addr,
    },
    /// A correspondent disowned the mobile node's binding (a Binding
    /// Error), or with `refused` takes no Mobile IPv6 signalling at all
    /// (Binding Error status 2, an ICMPv6 Parameter Problem at the
    /// Mobility Header): then the node sends it no BU for
    /// [`mn::RETRY_REFUSED`].
    BindingLost {
        peer: Ipv6Addr,
        refused: bool,
    },
    /// Neighbor Discovery on interface `iface` (what a person wants to
    /// see: DAD outcomes, routers lost, neighbours unreachable).
    Nd {
        iface: u8,
        event: NdEvent,
    },
    Ipsec(IpsecEvent),
    Ike(IkeEvent),
}

/// How much an [`Event`] needs a person's attention (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    /// Something did not work and the node works around it.
    Warning,
    /// Something a person must fix (RFC 4862 §5.4.5: a duplicate address).
    Error,
}

impl Event {
    pub fn severity(&self) -> Severity {
        match self {
            Event::Nd {
                event: NdEvent::AddressDuplicate(_),
                ..
            } => Severity::Error,
            Event::Nd {
                event:
                    NdEvent::RouterLost(_)
                    | NdEvent::NeighborUnreachable { .. }
                    | NdEvent::ProxyChecked { unique: false, .. },
                ..
            }
            | Event::Ipsec(IpsecEvent::HardExpired { .. })
            | Event::Ike(
                IkeEvent::SwitchRefused { .. }
                | IkeEvent::AddressMismatch { .. }
                | IkeEvent::ChildRefused { .. }
                | IkeEvent::Closed {
                    reason: CloseReason::Timeout | CloseReason::NoProposalChosen,
                    ..
                },
            ) => Severity::Warning,
            Event::Ike(IkeEvent::Closed {
                reason: CloseReason::AuthenticationFailed,
                ..
            }) => Severity::Error,
            Event::BindingAcked { status, .. } if *status >= 128 => Severity::Warning,
            Event::BindingLost { refused: true, .. } => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Moved {
                iface: Some(i),
                care_of: Some(c),
            } => write!(f, "care-of address {c} on link {i}"),
            Event::Moved {
                iface: Some(_),
                care_of: None,
            } => write!(f, "at home"),
            Event::Moved { iface: None, .. } => write!(f, "no link"),
            Event::BindingUpdateSent { peer, seq, ipsec } => {
                let how = if *ipsec {
                    "under ESP"
                } else {
                    "with RR authorisation"
                };
                write!(f, "BU seq {seq} to {peer} {how}")
            }
            Event::BindingAcked {
                peer,
                status,
                lifetime,
                key_mobility,
            } => {
                write!(
                    f,
                    "BA from {peer}: status {status}, lifetime {} s{}",
                    lifetime.as_secs(),
                    if *key_mobility { ", K" } else { "" }
                )
            }
            Event::BindingCached {
                home,
                care_of,
                lifetime,
            } => {
                write!(
                    f,
                    "binding {home} -> {care_of} for {} s",
                    lifetime.as_secs()
                )
            }
            Event::BindingRemoved { home, reason } => {
                write!(f, "binding {home} removed ({reason:?})")
            }
            Event::CoaTestStarted { home, care_of } => {
                write!(f, "care-of test of {care_of} for {home}")
            }
            Event::ReturnRoutabilityStarted { peer } => write!(f, "HoTI/CoTI to {peer}"),
            Event::BindingLost {
                peer,
                refused: false,
            } => write!(f, "binding with {peer} lost"),
            Event::BindingLost { peer, .. } => {
                write!(
                    f,
                    "{peer} refuses mobility signalling: none to it for a while"
                )
            }
            Event::Nd { iface, event } => match event {
                NdEvent::AddressReady(a) => write!(f, "{a} passed DAD on link {iface}"),
                NdEvent::AddressDuplicate(a) => write!(f, "{a} is a duplicate on link {iface}"),
                NdEvent::RouterLost(r) => write!(f, "router {r} lost on link {iface}"),
                NdEvent::RouterAdvert { router, .. } => write!(f, "RA from {router}"),
                NdEvent::NeighborUnreachable { neighbor, dropped } => {
                    write!(
                        f,
                        "neighbour {neighbor} unreachable, {dropped} packets dropped"
                    )
                }
                NdEvent::ProxyChecked {
                    address,
                    unique: true,
                } => write!(f, "DAD of {address} found nobody: proxying it"),
                NdEvent::ProxyChecked { address, .. } => {
                    write!(f, "DAD of {address} found it in use")
                }
                NdEvent::RouterSolicited { from } => write!(f, "RS from {from}"),
            },
            Event::Ipsec(e) => write!(f, "ipsec: {e:?}"),
            Event::Ike(e) => match e {
                IkeEvent::Established {
                    sa,
                    peer,
                    local,
                    remote,
                } => write!(f, "{sa} with {peer} up, {local} <-> {remote}"),
                IkeEvent::ChildUp { sa, child } => write!(
                    f,
                    "{sa}: CHILD_SA {} up, SPIs {:#010x} in, {:#010x} out, {:?} {} <-> {}",
                    child.name,
                    child.spi_in,
                    child.spi_out,
                    child.mode,
                    child.addresses.local,
                    child.addresses.peer
                ),
                IkeEvent::ChildDown {
                    sa,
                    spi_in,
                    spi_out,
                } => {
                    write!(f, "{sa}: CHILD_SA {spi_in:#010x}/{spi_out:#010x} down")
                }
                IkeEvent::Moved { sa, local, remote } => {
                    write!(f, "{sa} moved to {local} <-> {remote}")
                }
                IkeEvent::SwitchRefused { sa, to } => write!(f, "{sa}: switch to {to} refused"),
                IkeEvent::AddressMismatch { sa } => {
                    write!(
                        f,
                        "{sa}: peer address notification does not match the header"
                    )
                }
                IkeEvent::ChildRefused {
                    sa,
                    notify,
                    by_peer,
                } => {
                    let who = if *by_peer { "the peer" } else { "us" };
                    write!(f, "{sa}: CHILD_SA refused by {who}: {notify:?}")
                }
                IkeEvent::Closed { sa, reason } => write!(f, "{sa} closed: {reason:?}"),
                IkeEvent::KeyLog { table, .. } => write!(f, "key log row for {table:?}"),
            },
        }
    }
}

/// Why an engine dropped a packet. Each has a counter in [`NodeStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeDrop {
    /// Did not parse, or a checksum failed.
    Malformed,
    /// IPsec refused it (the reason is counted in [`Ipsec::stats`]).
    Ipsec,
    /// Not addressed to this node.
    NotForUs,
    /// A Home Address option that no suitable SA, binding or BU vouches for
    /// (REQ CN-3.2; at a home agent, no registration from that care-of
    /// address), or a home address that is not unicast routable (RFC 6275
    /// §9.5.1).
    HaoUnverified,
    /// A BU with H=1 at a correspondent (status 131).
    HomeRegistrationNotSupported,
    /// An Alternate CoA the rules do not allow (REQ CN-4.3), or a care-of
    /// address that is not unicast routable (RFC 6275 §9.5.1).
    AlternateCoaRefused,
    /// A BU whose sequence number is not newer (status 135).
    SequenceOutOfWindow,
    /// An echoed care-of test cookie that is too old.
    CookieStale,
    /// An echoed cookie that does not verify.
    CookieForged,
    /// A return-routability BU without valid authorisation data.
    BadAuthorization,
    /// A return-routability BU with a nonce index that expired.
    ExpiredNonce,
    /// Signalling that had to be under IPsec and was not.
    Unprotected,
    /// A home registration for an address off the home prefix (132).
    NotHomeSubnet,
    /// A home registration for a node this home agent does not serve (133).
    NotOurMobileNode,
    /// A deregistration for which the home agent holds no registration
    /// (133, RFC 6275 §10.3.2).
    NotRegistered,
    /// A BU that would change the kind of registration (139).
    RegistrationTypeChange,
    /// A BU for one binding more than the cache may hold (130).
    CacheFull,
    /// A tunnelled packet whose outer source is not the registered care-of
    /// address (RFC 6275 §10.4.5), or not the home agent.
    TunnelSourceMismatch,
    /// A BA, HoT or CoT that matches nothing we sent.
    Unsolicited,
    /// A Mobility Header type we do not handle (Binding Error status 2).
    UnknownMhType,
    /// Nowhere to send it: no interface, no route, no default router.
    NoRoute,
    /// Its next hop did not answer Neighbor Discovery, or too much was
    /// already waiting for it.
    Unresolved,
    /// A Neighbor Discovery message that fails RFC 4861's checks.
    NdInvalid,
    /// A home registration whose home address another node uses (BA 134).
    DuplicateHomeAddress,
    /// A Mobility Header with a Payload Proto other than 59 or a Header
    /// Len too short for its type (ICMPv6 Parameter Problem, RFC 6275 §9.2).
    BadMobilityHeader,
    /// A multicast packet other than Neighbor Discovery: the engines run
    /// no MLD and join no other group.
    Multicast,
    /// A packet a home agent would forward with its Hop Limit at 0 (ICMPv6
    /// Time Exceeded, RFC 4443 §3.3).
    HopLimit,
}

impl NodeDrop {
    pub const ALL: [NodeDrop; 27] = [
        NodeDrop::Malformed,
        NodeDrop::Ipsec,
        NodeDrop::NotForUs,
        NodeDrop::HaoUnverified,
        NodeDrop::HomeRegistrationNotSupported,
        NodeDrop::AlternateCoaRefused,
        NodeDrop::SequenceOutOfWindow,
        NodeDrop::CookieStale,
        NodeDrop::CookieForged,
        NodeDrop::BadAuthorization,
        NodeDrop::ExpiredNonce,
        NodeDrop::Unprotected,
        NodeDrop::NotHomeSubnet,
        NodeDrop::NotOurMobileNode,
        NodeDrop::NotRegistered,
        NodeDrop::RegistrationTypeChange,
        NodeDrop::CacheFull,
        NodeDrop::TunnelSourceMismatch,
        NodeDrop::Unsolicited,
        NodeDrop::UnknownMhType,
        NodeDrop::NoRoute,
        NodeDrop::Unresolved,
        NodeDrop::NdInvalid,
        NodeDrop::DuplicateHomeAddress,
        NodeDrop::BadMobilityHeader,
        NodeDrop::Multicast,
        NodeDrop::HopLimit,
    ];
}

/// Counters of one engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Mobility Header messages sent, and their bytes on the wire.
    pub signalling_messages: u64,
    pub signalling_bytes: u64,
    /// Packets delivered to the stack by how they came: route optimised
    /// (RH2 or HAO), through the home agent's tunnel, or plain.
    pub delivered_route_optimised: u64,
    pub delivered_tunnelled: u64,
    pub delivered_direct: u64,
    /// Packets from the stack by how they left.
    pub sent_route_optimised: u64,
    pub sent_tunnelled: u64,
    pub sent_direct: u64,
    /// Packets a home agent forwarded through a tunnel, both ways.
    pub forwarded: u64,
    /// IKE messages sent (retransmissions included), and their UDP
    /// payload bytes.
    pub ike_messages: u64,
    pub ike_bytes: u64,
    /// ICMPv6 errors and Binding Errors not sent: over the rate limit, or
    /// about a packet from or to an address that is not unicast.
    pub errors_suppressed: u64,
    /// BUs a home agent took while it checks the home address for a first
    /// registration (RFC 6275 §10.3.1): the BA waits for DAD and
    /// acknowledges the last.
    pub held_for_dad: u64,
    /// Home and Care-of Test replies a mobile node took (RFC 6275
    /// §11.6.2): their keygen tokens wait for the BU both complete.
    pub rr_tokens_taken: u64,
    drops: [u64; NodeDrop::ALL.len()],
}

impl NodeStats {
    pub fn dropped(&self, reason: NodeDrop) -> u64 {
        self.drops[reason as usize]
    }

    /// Every reason with a non-zero count.
    pub fn drops(&self) -> impl Iterator<Item = (NodeDrop, u64)> + '_ {
        NodeDrop::ALL
            .iter()
            .map(|r| (*r, self.dropped(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// The contract every engine keeps (see the module docs).
pub trait Engine {
    /// A packet arrived on `iface`; from a link, `src_mac` is the frame's
    /// source (a home agent answers a mobile node come home through it).
    fn handle_packet(
        &mut self,
        now: Instant,
        iface: Iface,
        src_mac: Option<MacAddr>,
        packet: &[u8],
    );
    fn handle_command(&mut self, now: Instant, command: Command) -> Result<(), CommandError>;
    /// Call when [`Engine::poll_timeout`] has passed (earlier is harmless).
    fn handle_timeout(&mut self, now: Instant);
    /// Poll after every `handle_*` call until `None`.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_event(&mut self) -> Option<Event>;
    /// A change of the multicast groups interface `i` listens to, for the
    /// driver's link-layer filter (the simulator's links deliver group
    /// frames only to listeners). Carrier lost or found starts the
    /// interface's groups afresh: a filter forgets them on `LinkDown`.
    fn poll_membership(&mut self) -> Option<(u8, Membership)>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn stats(&self) -> &NodeStats;
    /// Neighbor Discovery state of interface `iface`, while it has carrier.
    fn interface(&self, iface: u8) -> Option<&NdIface>;
    /// Everything the engine is doing, for people and scripts.
    fn status(&self, now: Instant) -> NodeStatus;
    fn ipsec(&self) -> &Ipsec;
    /// The node's IKE, when it keys SAs with IKEv2.
    fn ike(&self) -> Option<&Ike>;
    /// Mutable IPsec, for key management to install and move SAs.
    fn ipsec_mut(&mut self) -> &mut Ipsec;
    /// Takes back what an earlier run reported through
    /// [`Engine::poll_persist`] (the latest record of each binding and
    /// SA), and from now on reports what must survive a restart. Call
    /// once, before the first packet. Roles that keep nothing refuse.
    fn restore(&mut self, _now: Instant, _saved: &[Persist]) -> Result<(), CommandError> {
        Err(CommandError::Unsupported)
    }
    /// What a store must hold before the packets queued so far are sent:
    /// drain it before [`Engine::poll_transmit`] after every `handle_*`
    /// call, once [`Engine::restore`] was called.
    fn poll_persist(&mut self) -> Option<Persist> {
        None
    }
}

/// RFC 6275 §9.5.1: `a` is newer than `b` if it is less than 2^15 ahead,
/// modulo 2^16.
pub fn seq_newer(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

/// BU and BA lifetimes are in units of 4 seconds.
pub fn lifetime_units(d: Duration) -> u16 {
    u16::try_from(d.as_secs() / 4).unwrap_or(u16::MAX)
}

pub fn units_lifetime(units: u16) -> Duration {
    Duration::from_secs(u64::from(units) * 4)
}

/// A /64 prefix and an interface identifier make an address (SLAAC).
pub fn slaac(prefix: Ipv6Addr, interface_id: u64) -> Ipv6Addr {
    let p = u128::from(prefix) & !u128::from(u64::MAX);
    Ipv6Addr::from(p | u128::from(interface_id))
}

/// Neither multicast, unspecified, loopback nor link-local (RFC 6275
/// §9.5.1's "unicast routable").
pub(crate) fn unicast_routable(a: Ipv6Addr) -> bool {
    !(a.is_multicast() || a.is_unspecified() || a.is_loopback() || a.is_unicast_link_local())
}

pub fn same_prefix64(a: Ipv6Addr, b: Ipv6Addr) -> bool {
    u128::from(a) >> 64 == u128::from(b) >> 64
}

#[cfg(test)]
mod tests;
