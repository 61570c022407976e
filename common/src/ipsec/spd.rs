//! The Security Policy Database (RFC 4301 §4.4.1): an ordered list of
//! policies, first match wins, with selectors on addresses, next protocol,
//! ports, ICMPv6 type/code and Mobility Header type (the "MH type" selector
//! of RFC 4301 §4.4.1.1, which RFC 3776 and draft-dupont-mipv6-cn-ipsec
//! rely on to protect BU/BA only).

use core::fmt;
use core::net::IpAddr;
use std::collections::VecDeque;

use hashbrown::HashMap;

use super::layout::PacketSelectors;
use super::sad::SaId;
use crate::wire::IpProtocol;

/// Which way a packet goes, from this node's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// An address prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// The single address (a /128 or /32).
    pub fn host(addr: IpAddr) -> Self {
        let len = if addr.is_ipv6() { 128 } else { 32 };
        Prefix { addr, len }
    }

    /// Every address of both families.
    pub const ANY: Prefix = Prefix {
        addr: IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
        len: 0,
    };

    pub fn is_host(&self) -> bool {
        self.len == if self.addr.is_ipv6() { 128 } else { 32 }
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        if self.len == 0 {
            return true;
        }
        match (self.addr, a) {
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len.min(128)))
                    .unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.len.min(32)))
                    .unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl core::str::FromStr for Prefix {
    type Err = String;

    /// `2001:db8::/32`, or an address alone for a host prefix.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not an address or prefix: {s:?}");
        match s.split_once('/') {
            None => s.parse().map(Prefix::host).map_err(|_| bad()),
            Some((a, l)) => {
                let addr: IpAddr = a.parse().map_err(|_| bad())?;
                let len: u8 = l.parse().map_err(|_| bad())?;
                if len > if addr.is_ipv6() { 128 } else { 32 } {
                    return Err(bad());
                }
                Ok(Prefix { addr, len })
            }
        }
    }
}

/// An inclusive port range; `PortRange::ANY` also matches OPAQUE ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange {
        low: 0,
        high: u16::MAX,
    };

    pub fn single(p: u16) -> Self {
        PortRange { low: p, high: p }
    }

    fn matches(&self, p: Option<u16>) -> bool {
        match p {
            Some(p) => (self.low..=self.high).contains(&p),
            None => *self == PortRange::ANY,
        }
    }
}

/// Traffic selectors, from this node's point of view: `local` is our
/// address side, `remote` the peer's. Empty lists and `None` mean "any".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    pub local: Prefix,
    pub remote: Prefix,
    pub protocol: Option<IpProtocol>,
    pub local_ports: PortRange,
    pub remote_ports: PortRange,
    /// ICMPv6 type, and code if given.
    pub icmp: Option<(u8, Option<u8>)>,
    /// Mobility Header types (RFC 4301 §4.4.1.1 "Mobility Header type").
    pub mh_types: Vec<u8>,
}

impl Selector {
    /// Any traffic between two prefixes.
    pub fn between(local: Prefix, remote: Prefix) -> Self {
        Selector {
            local,
            remote,
            protocol: None,
            local_ports: PortRange::ANY,
            remote_ports: PortRange::ANY,
            icmp: None,
            mh_types: Vec::new(),
        }
    }

    /// Everything.
    pub fn any() -> Self {
        Self::between(Prefix::ANY, Prefix::ANY)
    }

    /// Only these Mobility Header types between two prefixes.
    pub fn mobility(local: Prefix, remote: Prefix, mh_types: &[u8]) -> Self {
        Selector {
            protocol: Some(IpProtocol::Mobility),
            mh_types: mh_types.to_vec(),
            ..Self::between(local, remote)
        }
    }

    /// Whether a packet going `dir` matches.
    pub fn matches(&self, p: &PacketSelectors, dir: Direction) -> bool {
        let (local, remote, local_port, remote_port) = match dir {
            Direction::Outbound => (p.src, p.dst, p.src_port, p.dst_port),
            Direction::Inbound => (p.dst, p.src, p.dst_port, p.src_port),
        };
        if !self.local.contains(local) || !self.remote.contains(remote) {
            return false;
        }
        let Some(proto) = self.protocol else {
            return true;
        };
        if proto != p.protocol {
            return false;
        }
        let icmp_ok = match (self.icmp, p.icmp) {
            (None, _) => true,
            (Some((t, c)), Some((pt, pc))) => t == pt && c.is_none_or(|c| c == pc),
            (Some(_), None) => false,
        };
        let mh_ok =
            self.mh_types.is_empty() || p.mh_type.is_some_and(|t| self.mh_types.contains(&t));
        self.local_ports.matches(local_port)
            && self.remote_ports.matches(remote_port)
            && icmp_ok
            && mh_ok
    }

    /// Whether every packet this selector matches has the MH type `t`
    /// allowed (protocol any or MH, and `t` among the types).
    pub fn allows_mh_type(&self, t: u8) -> bool {
        matches!(self.protocol, None | Some(IpProtocol::Mobility))
            && (self.mh_types.is_empty() || self.mh_types.contains(&t))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)?;
        if let Some(p) = self.protocol {
            write!(f, " proto {p}")?;
        }
        if self.local_ports != PortRange::ANY {
            write!(
                f,
                " lport {}-{}",
                self.local_ports.low, self.local_ports.high
            )?;
        }
        if self.remote_ports != PortRange::ANY {
            write!(
                f,
                " rport {}-{}",
                self.remote_ports.low, self.remote_ports.high
            )?;
        }
        if let Some((t, c)) = self.icmp {
            write!(f, " icmp {t}")?;
            if let Some(c) = c {
                write!(f, "/{c}")?;
            }
        }
        if !self.mh_types.is_empty() {
            write!(f, " mh {:?}", self.mh_types)?;
        }
        Ok(())
    }
}

/// What a policy does with a matching packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send and accept in the clear.
    Bypass,
    Discard,
    /// Outbound through these outbound SAs, innermost first; inbound, the
    /// packet must arrive protected.
    Protect(Vec<SaId>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub selector: Selector,
    pub action: Action,
}

/// Ordered policies; the first match wins, and `fallback` applies when none
/// does (RFC 4301 §4.4.1 wants discard, which is the default).
///
/// Policies whose remote side is a single address are indexed by it, so a
/// node with a policy per peer (a home agent or correspondent with 100 000
/// mobile nodes) looks up in the time of the few that can match, in order.
/// The index holds keys, a policy's position plus `front`: adding at
/// either end (what key management does) leaves every other key as it is.
#[derive(Debug, Clone)]
pub struct Spd {
    policies: VecDeque<Policy>,
    pub fallback: Action,
    /// The key of the first policy.
    front: i64,
    by_remote: HashMap<IpAddr, VecDeque<i64>>,
    /// Policies with a wider remote side, in order.
    wide: VecDeque<i64>,
}

impl Default for Spd {
    fn default() -> Self {
        Spd {
            policies: VecDeque::new(),
            fallback: Action::Discard,
            front: 0,
            by_remote: HashMap::new(),
            wide: VecDeque::new(),
        }
    }
}

impl Spd {
    /// Adds a policy after the existing ones.
    pub fn push(&mut self, p: Policy) {
        let key = self.front + self.policies.len() as i64;
        self.list(&p).push_back(key);
        self.policies.push_back(p);
    }

    /// Adds a policy ahead of `index` (0: first).
    pub fn insert(&mut self, index: usize, p: Policy) {
        match index {
            0 => {
                self.front -= 1;
                let key = self.front;
                self.list(&p).push_front(key);
                self.policies.push_front(p);
            }
            i if i >= self.policies.len() => self.push(p),
            i => {
                self.policies.insert(i, p);
                self.reindex();
            }
        }
    }

    pub fn remove(&mut self, index: usize) -> Option<Policy> {
        let p = self.policies.remove(index);
        self.reindex();
        p
    }

    pub fn policies(&self) -> &VecDeque<Policy> {
        &self.policies
    }

    /// The index list `p` belongs in.
    fn list(&mut self, p: &Policy) -> &mut VecDeque<i64> {
        let remote = p.selector.remote;
        if remote.is_host() {
            self.by_remote.entry(remote.addr).or_default()
        } else {
            &mut self.wide
        }
    }

    fn reindex(&mut self) {
        self.by_remote.clear();
        self.wide.clear();
        self.front = 0;
        let policies = std::mem::take(&mut self.policies);
        for p in policies {
            self.push(p);
        }
    }

    /// The action for a packet going `dir`.
    pub fn lookup(&self, p: &PacketSelectors, dir: Direction) -> &Action {
        self.first_match(p, dir, |_| true).unwrap_or(&self.fallback)
    }

    /// The action of the first matching policy that `eligible` lets
    /// through; `None` when there is none (the fallback is not applied).
    pub fn first_match(
        &self,
        p: &PacketSelectors,
        dir: Direction,
        eligible: impl Fn(&Action) -> bool,
    ) -> Option<&Action> {
        let remote = match dir {
            Direction::Outbound => p.dst,
            Direction::Inbound => p.src,
        };
        let none = VecDeque::new();
        let exact = self.by_remote.get(&remote).unwrap_or(&none);
        // Merge the two ordered lists, so the first match is still first.
        let (mut a, mut b) = (exact.iter().peekable(), self.wide.iter().peekable());
        loop {
            let i = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x < y => a.next(),
                (Some(_), Some(_)) | (None, Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, None) => return None,
            };
            let at = i.and_then(|k| usize::try_from(k - self.front).ok());
            if let Some(pol) = at.and_then(|i| self.policies.get(i)) {
                if pol.selector.matches(p, dir) && eligible(&pol.action) {
                    return Some(&pol.action);
                }
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::MhType;

    fn sel(src: &str, dst: &str, protocol: IpProtocol) -> PacketSelectors {
        PacketSelectors {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol,
            src_port: None,
            dst_port: None,
            icmp: None,
            mh_type: None,
        }
    }

    const HOA: &str = "2001:db8:1::100";
    const CN: &str = "2001:db8:3::1";

    #[test]
    fn indexed_lookup_keeps_first_match_order() {
        let cn = Prefix::host(CN.parse().unwrap());
        let hoa = Prefix::host(HOA.parse().unwrap());
        let udp_to_cn = Selector {
            protocol: Some(IpProtocol::Udp),
            ..Selector::between(hoa, cn)
        };
        let mut spd = Spd::default();
        spd.push(Policy {
            selector: udp_to_cn.clone(),
            action: Action::Discard,
        });
        spd.push(Policy {
            selector: Selector::any(),
            action: Action::Bypass,
        });
        spd.push(Policy {
            selector: Selector::between(hoa, cn),
            action: Action::Protect(vec![]),
        });
        let out = Direction::Outbound;
        assert_eq!(
            spd.lookup(&sel(HOA, CN, IpProtocol::Udp), out),
            &Action::Discard
        );
        assert_eq!(
            spd.lookup(&sel(HOA, CN, IpProtocol::Tcp), out),
            &Action::Bypass
        );
        spd.remove(1);
        assert_eq!(
            spd.lookup(&sel(HOA, CN, IpProtocol::Tcp), out),
            &Action::Protect(vec![])
        );
        assert_eq!(
            spd.lookup(&sel(CN, HOA, IpProtocol::Tcp), out),
            &Action::Discard
        );
        spd.insert(
            0,
            Policy {
                selector: Selector::any(),
                action: Action::Bypass,
            },
        );
        assert_eq!(
            spd.lookup(&sel(HOA, CN, IpProtocol::Udp), out),
            &Action::Bypass
        );
        // Keys below the first one, at the back, and renumbered in the middle.
        spd.insert(
            0,
            Policy {
                selector: udp_to_cn,
                action: Action::Discard,
            },
        );
        spd.push(Policy {
            selector: Selector::between(hoa, cn),
            action: Action::Discard,
        });
        let tcp = sel(HOA, CN, IpProtocol::Tcp);
        assert_eq!(
            spd.lookup(&sel(HOA, CN, IpProtocol::Udp), out),
            &Action::Discard
        );
        assert_eq!(spd.lookup(&tcp, out), &Action::Bypass);
        spd.insert(
            1,
            Policy {
                selector: Selector::between(hoa, cn),
                action: Action::Protect(vec![]),
            },
        );
        assert_eq!(spd.lookup(&tcp, out), &Action::Protect(vec![]));
        assert_eq!(spd.policies().len(), 6);
    }

    // REQ CN-5.5: a policy can restrict protection to mobility signalling,
    // here BU and BA between one home address and one CN.
    #[test]
    fn mh_type_selector_matches_bu_and_ba_only() {
        let bu = u8::from(MhType::BindingUpdate);
        let ba = u8::from(MhType::BindingAck);
        let s = Selector::mobility(
            Prefix::host(CN.parse().unwrap()),
            Prefix::host(HOA.parse().unwrap()),
            &[bu, ba],
        );
        let mut p = sel(HOA, CN, IpProtocol::Mobility);
        p.mh_type = Some(bu);
        assert!(s.matches(&p, Direction::Inbound));
        assert!(!s.matches(&p, Direction::Outbound), "orientation");
        p.mh_type = Some(u8::from(MhType::HomeTestInit));
        assert!(!s.matches(&p, Direction::Inbound));
        p.mh_type = Some(ba);
        let p = PacketSelectors {
            src: p.dst,
            dst: p.src,
            ..p
        };
        assert!(s.matches(&p, Direction::Outbound));
        let other = sel("2001:db8:1::101", CN, IpProtocol::Mobility);
        assert!(!s.matches(&other, Direction::Inbound));
        assert!(!s.matches(&sel(HOA, CN, IpProtocol::Udp), Direction::Inbound));
        assert!(s.allows_mh_type(bu) && !s.allows_mh_type(0));
    }

    #[test]
    fn ports_icmp_and_prefixes() {
        let mut s = Selector::between("2001:db8::/32".parse().unwrap(), Prefix::ANY);
        s.protocol = Some(IpProtocol::Udp);
        s.remote_ports = PortRange::single(500);
        let mut p = sel("2001:db8:5::1", "192.0.2.1", IpProtocol::Udp);
        assert!(
            !s.matches(&p, Direction::Outbound),
            "opaque ports only match ANY"
        );
        p.dst_port = Some(500);
        p.src_port = Some(1234);
        assert!(s.matches(&p, Direction::Outbound));
        p.dst_port = Some(4500);
        assert!(!s.matches(&p, Direction::Outbound));
        let mut s = Selector::between(Prefix::ANY, Prefix::ANY);
        s.protocol = Some(IpProtocol::Icmpv6);
        s.icmp = Some((128, None));
        let mut p = sel(HOA, CN, IpProtocol::Icmpv6);
        p.icmp = Some((128, 0));
        assert!(s.matches(&p, Direction::Inbound));
        s.icmp = Some((128, Some(1)));
        assert!(!s.matches(&p, Direction::Inbound));
        assert!(!Prefix::host("192.0.2.1".parse().unwrap()).contains(HOA.parse().unwrap()));
        assert_eq!(
            "2001:db8::/129".parse::<Prefix>().unwrap_err(),
            "not an address or prefix: \"2001:db8::/129\""
        );
        assert!("2001:db8::1".parse::<Prefix>().unwrap().is_host());
    }

    #[test]
    fn first_match_wins_and_fallback_applies() {
        let mut spd = Spd::default();
        let p = sel(HOA, CN, IpProtocol::Mobility);
        assert_eq!(spd.lookup(&p, Direction::Outbound), &Action::Discard);
        spd.push(Policy {
            selector: Selector::any(),
            action: Action::Bypass,
        });
        spd.insert(
            0,
            Policy {
                selector: Selector::mobility(Prefix::ANY, Prefix::ANY, &[]),
                action: Action::Discard,
            },
        );
        assert_eq!(spd.lookup(&p, Direction::Outbound), &Action::Discard);
        assert_eq!(
            spd.lookup(&sel(HOA, CN, IpProtocol::Tcp), Direction::Outbound),
            &Action::Bypass
        );
        assert!(spd.remove(0).is_some());
        assert_eq!(spd.lookup(&p, Direction::Outbound), &Action::Bypass);
    }
}
