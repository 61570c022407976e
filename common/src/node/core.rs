//! What the three engines share: IPsec on the way in and out, the queues,
//! the counters and the RNG; Mobile IPv6 header surgery; deadlines.

use core::net::Ipv6Addr;
use std::collections::VecDeque;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{rr, Event, Iface, NodeDrop, NodeStats, Transmit};
use crate::ipsec::{Inbound, Ipsec, Layout, Outbound, SaId};
use crate::time::Instant;
use crate::wire::checksum::PseudoHeader;
use crate::wire::mh::{MhMessage, MhOption, MhRepr};
use crate::wire::{
    CodePoints, ExtHeaderRepr, IpProtocol, IpRepr, Ipv6OptionRepr, Ipv6Repr, PacketRepr,
    RoutingRepr, UpperRepr,
};

/// A packet after IPsec: parsed, with the SA it came through.
pub(crate) struct Rx {
    pub repr: PacketRepr,
    pub sa: Option<SaId>,
    /// The bytes `repr` was parsed from (decrypted if it was ESP).
    pub bytes: Vec<u8>,
}

impl Rx {
    pub fn header(&self) -> Option<&Ipv6Repr> {
        match &self.repr.ip {
            IpRepr::V6 { header, .. } => Some(header),
            IpRepr::V4(_) => None,
        }
    }

    pub fn home_address_option(&self) -> Option<Ipv6Addr> {
        home_address_option(&self.repr)
    }

    /// The Mobility Header as it was on the wire, for authenticators.
    pub fn mh_bytes(&self) -> Option<&[u8]> {
        let l = Layout::parse(&self.bytes).ok()?;
        self.bytes.get(l.upper_offset..l.end)
    }
}

pub(crate) struct Core {
    pub cp: CodePoints,
    pub ipsec: Ipsec,
    pub rng: ChaCha20Rng,
    pub stats: NodeStats,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
}

impl Core {
    pub fn new(ipsec: Ipsec, seed: u64, cp: CodePoints) -> Self {
        Core {
            cp,
            ipsec,
            rng: ChaCha20Rng::seed_from_u64(seed),
            stats: NodeStats::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    pub fn drop(&mut self, reason: NodeDrop) {
        self.stats.drops[reason as usize] += 1;
    }

    pub fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    /// The earlier of the engine's own deadline and IPsec's.
    pub fn earliest(&self, own: Option<Instant>) -> Option<Instant> {
        match (own, self.ipsec.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.ipsec.poll_event() {
            return Some(Event::Ipsec(e));
        }
        self.events.pop_front()
    }

    /// Applies IPsec and parses strictly; drops are counted.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) -> Option<Rx> {
        let (bytes, sa) = match self.ipsec.inbound(now, bytes, &mut self.scratch) {
            Ok(Inbound::Clear) => (bytes.to_vec(), None),
            Ok(Inbound::Decrypted { sa, .. }) => (self.scratch.clone(), Some(sa)),
            Err(_) => {
                self.drop(NodeDrop::Ipsec);
                return None;
            }
        };
        match PacketRepr::parse(&bytes, &self.cp) {
            Ok(repr) => Some(Rx { repr, sa, bytes }),
            Err(_) => {
                self.drop(NodeDrop::Malformed);
                None
            }
        }
    }

    /// Parses a packet from the node's own stack.
    pub fn parse_local(&mut self, bytes: &[u8]) -> Option<PacketRepr> {
        match PacketRepr::parse(bytes, &self.cp) {
            Ok(
                r @ PacketRepr {
                    ip: IpRepr::V6 { .. },
                    ..
                },
            ) => Some(r),
            _ => {
                self.drop(NodeDrop::Malformed);
                None
            }
        }
    }

    /// Hands a packet to the stack.
    pub fn deliver(&mut self, repr: &PacketRepr) {
        let bytes = repr.to_bytes(&self.cp);
        self.out.push_back(Transmit {
            iface: Iface::Stack,
            bytes,
        });
    }

    /// Applies the SPD and queues the packet on `iface`. Returns whether
    /// ESP protected it, or `None` if IPsec dropped it. Mobility Header
    /// messages count as signalling.
    pub fn send(&mut self, now: Instant, iface: Iface, repr: &PacketRepr) -> Option<bool> {
        let bytes = repr.to_bytes(&self.cp);
        let signalling = is_signalling(repr);
        let (bytes, protected) = match self.ipsec.outbound(now, &bytes, &mut self.scratch) {
            Ok(Outbound::Clear) => (bytes, false),
            Ok(Outbound::Protected { .. }) => (self.scratch.clone(), true),
            Err(_) => {
                self.drop(NodeDrop::Ipsec);
                return None;
            }
        };
        if signalling {
            self.stats.signalling_messages += 1;
            self.stats.signalling_bytes += bytes.len() as u64;
        }
        self.out.push_back(Transmit { iface, bytes });
        Some(protected)
    }

    /// Sends a Mobility Header message from `src` to `dst` with `ext`.
    pub fn send_mh(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ext: Vec<ExtHeaderRepr>,
        mh: MhRepr,
    ) -> Option<bool> {
        let repr = PacketRepr::ipv6(src, dst, ext, UpperRepr::Mobility(mh));
        self.send(now, Iface::Link(0), &repr)
    }

    /// A Binding Error (RFC 6275 §9.3.1, §6.1.9) to `to` about `home`.
    pub fn binding_error(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        to: Ipv6Addr,
        home: Ipv6Addr,
        status: u8,
    ) {
        let mh = MhRepr {
            message: MhMessage::BindingError {
                status,
                home_address: home,
            },
            options: vec![],
        };
        self.send_mh(now, src, to, vec![], mh);
    }

    /// Fills the Binding Authorization Data option of `mh` (it must be the
    /// last option) as RFC 6275 §6.2.7 says: an HMAC over the care-of
    /// address, the correspondent and the message with a zero checksum.
    pub fn authorise(&self, mh: &mut MhRepr, kbm: &[u8; 20], care_of: Ipv6Addr, cn: Ipv6Addr) {
        let zero = PseudoHeader::V6 {
            src: Ipv6Addr::UNSPECIFIED,
            dst: Ipv6Addr::UNSPECIFIED,
        };
        mh.options.push(MhOption::BindingAuthData([0; 12]));
        let mut bytes = Vec::new();
        mh.emit_vec(&mut bytes, &zero, &self.cp);
        bytes[4..6].fill(0);
        let data = &bytes[..bytes.len() - 12];
        let auth = rr::authenticator(kbm, care_of, cn, data);
        if let Some(MhOption::BindingAuthData(a)) = mh.options.last_mut() {
            *a = auth;
        }
    }
}

/// Checks the Binding Authorization Data of a received message.
pub(crate) fn authorised(rx: &Rx, kbm: &[u8; 20], care_of: Ipv6Addr, cn: Ipv6Addr) -> bool {
    let Some(mh) = rx.mh_bytes() else {
        return false;
    };
    let Some(split) = mh.len().checked_sub(12) else {
        return false;
    };
    let mut data = mh[..split].to_vec();
    if data.len() < 6 {
        return false;
    }
    data[4..6].fill(0);
    let mut auth = [0u8; 12];
    auth.copy_from_slice(&mh[split..]);
    rr::verify_authenticator(kbm, care_of, cn, &data, &auth)
}

fn is_signalling(repr: &PacketRepr) -> bool {
    match &repr.upper {
        UpperRepr::Mobility(_) => true,
        UpperRepr::Tunnel(inner) => is_signalling(inner),
        _ => false,
    }
}

/// The home address of a Home Address option, if the packet has one.
pub(crate) fn home_address_option(repr: &PacketRepr) -> Option<Ipv6Addr> {
    let IpRepr::V6 { ext, .. } = &repr.ip else {
        return None;
    };
    ext.iter().find_map(|e| match e {
        ExtHeaderRepr::DestOpts(d) => d.home_address(),
        _ => None,
    })
}

/// The home address of a type 2 routing header, if the packet has one.
pub(crate) fn type2_address(repr: &PacketRepr) -> Option<Ipv6Addr> {
    let IpRepr::V6 { ext, .. } = &repr.ip else {
        return None;
    };
    ext.iter().find_map(|e| match e {
        ExtHeaderRepr::Routing(RoutingRepr::Type2 { home_address, .. }) => Some(*home_address),
        _ => None,
    })
}

/// Where a header the Mobile IPv6 layer adds goes: after hop-by-hop and
/// routing headers, before everything else (RFC 6275 §6.3).
fn mobility_header_slot(ext: &[ExtHeaderRepr]) -> usize {
    ext.iter()
        .take_while(|e| matches!(e, ExtHeaderRepr::HopByHop(_) | ExtHeaderRepr::Routing(_)))
        .count()
}

/// Mobile node, route optimised: the care-of address as source and the
/// home address in a HAO.
pub(crate) fn add_home_address_option(repr: &mut PacketRepr, care_of: Ipv6Addr) {
    if let IpRepr::V6 { header, ext } = &mut repr.ip {
        let at = mobility_header_slot(ext);
        ext.insert(at, ExtHeaderRepr::home_address(header.src));
        header.src = care_of;
    }
}

/// Correspondent, route optimised: the care-of address as destination and
/// the home address in a type 2 routing header.
pub(crate) fn add_type2(repr: &mut PacketRepr, care_of: Ipv6Addr) {
    if let IpRepr::V6 { header, ext } = &mut repr.ip {
        let at = ext
            .iter()
            .take_while(|e| matches!(e, ExtHeaderRepr::HopByHop(_)))
            .count();
        ext.insert(at, ExtHeaderRepr::type2(header.dst));
        header.dst = care_of;
    }
}

/// What the stack sees of a route-optimised packet: the home address in
/// the IP header, no HAO and no type 2 routing header.
pub(crate) fn strip_mobility_headers(repr: &mut PacketRepr) {
    let IpRepr::V6 { header, ext } = &mut repr.ip else {
        return;
    };
    for e in ext.iter_mut() {
        match e {
            ExtHeaderRepr::DestOpts(d) => {
                if let Some(hoa) = d.home_address() {
                    header.src = hoa;
                    d.options
                        .retain(|o| !matches!(o, Ipv6OptionRepr::HomeAddress(_)));
                }
            }
            ExtHeaderRepr::Routing(RoutingRepr::Type2 { home_address, .. }) => {
                header.dst = *home_address;
            }
            _ => {}
        }
    }
    ext.retain(|e| match e {
        ExtHeaderRepr::DestOpts(d) => !d.options.is_empty(),
        ExtHeaderRepr::Routing(RoutingRepr::Type2 { .. }) => false,
        _ => true,
    });
}

/// IPv6-in-IPv6 (RFC 2473) around `inner`.
pub(crate) fn encapsulate(src: Ipv6Addr, dst: Ipv6Addr, inner: PacketRepr) -> PacketRepr {
    PacketRepr::ipv6(src, dst, vec![], UpperRepr::Tunnel(Box::new(inner)))
}

/// IPv6-in-IPv6 around bytes we forward without parsing them.
pub(crate) fn encapsulate_bytes(src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> PacketRepr {
    let data = inner.to_vec();
    PacketRepr::ipv6(
        src,
        dst,
        vec![],
        UpperRepr::Raw {
            protocol: IpProtocol::Ipv6,
            data,
        },
    )
}
