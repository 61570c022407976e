//! CREATE_CHILD_SA (RFC 7296 §1.3): new children and their rekeying,
//! traffic selector narrowing (§2.9), installation into [`Ipsec`], and the
//! rekeying of the IKE SA itself (§2.18).

use core::net::IpAddr;

use core::mem;

use super::config::{ChildConfig, Mobility, TsSpec};
use super::crypto::{self, Dh, Encr, IkeKeys};
use super::init::{choose_ike, has_transform, ike_keys_logged, ike_proposal, offered, DH, ENCR};
use super::payloads::{
    has_notify, notify, payload_ke, payload_nonce, payload_ts, PROTO_ESP, PROTO_IKE,
};
use super::sa::{Child, Established, IkeSa, Keyed, Phase, Request, Sk};
use super::tunnel_addresses;
use super::{keylog, ChildInfo, Ike, IkeDrop, IkeEvent, IkeSaId, KeyTable};
use crate::ipsec::{
    Action, AddressPair, Ipsec, Mode, PortRange, Prefix, SaId, SaKeys, SaPairSpec, Selector,
};
use crate::time::Instant;
use crate::wire::ike::{IkePayload, Notify, NotifyType, Proposal, TrafficSelector, Transform};
use crate::wire::IpProtocol;

/// Extended sequence numbers, a transform type (§3.3.2).
const ESN: u8 = 5;

/// One side of a child's selectors, with `dynamic` resolved to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Side {
    prefix: Prefix,
    protocol: u8,
    ports: PortRange,
}

/// The first and last address of a prefix.
fn range(prefix: Prefix) -> (IpAddr, IpAddr) {
    match prefix.addr {
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.len.min(128)))
                .unwrap_or(0);
            let s = u128::from(a) & mask;
            (IpAddr::V6(s.into()), IpAddr::V6((s | !mask).into()))
        }
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.len.min(32)))
                .unwrap_or(0);
            let s = u32::from(a) & mask;
            (IpAddr::V4(s.into()), IpAddr::V4((s | !mask).into()))
        }
    }
}

fn ts_from(side: Side) -> TrafficSelector {
    let (start, end) = range(side.prefix);
    TrafficSelector {
        ts_type: if side.prefix.addr.is_ipv6() {
            TrafficSelector::IPV6_ADDR_RANGE
        } else {
            TrafficSelector::IPV4_ADDR_RANGE
        },
        ip_protocol: side.protocol,
        start_port: side.ports.low,
        end_port: side.ports.high,
        start_addr: start,
        end_addr: end,
    }
}

/// The prefix a selector's range is, if it is one.
fn ts_prefix(ts: &TrafficSelector) -> Option<Prefix> {
    let (diff, bits) = match (ts.start_addr, ts.end_addr) {
        (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s) ^ u128::from(e), 128),
        (IpAddr::V4(s), IpAddr::V4(e)) => (u128::from(u32::from(s) ^ u32::from(e)), 32),
        _ => return None,
    };
    let host_bits = 128 - diff.leading_zeros();
    // The differing bits must be a run of ones at the bottom.
    if diff.count_ones() != host_bits {
        return None;
    }
    let len = u8::try_from(bits - host_bits).ok()?;
    let p = Prefix {
        addr: ts.start_addr,
        len,
    };
    (p.contains(ts.end_addr) && range(p).0 == ts.start_addr).then_some(p)
}

fn intersect(a: Prefix, b: Prefix) -> Option<Prefix> {
    if a.len <= b.len && a.contains(b.addr) {
        Some(b)
    } else if b.len <= a.len && b.contains(a.addr) {
        Some(a)
    } else {
        None
    }
}

/// The first of their selectors that narrows to within ours: the
/// intersection of the prefixes, protocols and port ranges. (An OPAQUE
/// range, start above end, intersects nothing.)
fn narrow(theirs: &[TrafficSelector], ours: Side) -> Option<Side> {
    theirs.iter().find_map(|ts| {
        let prefix = intersect(ts_prefix(ts)?, ours.prefix)?;
        let protocol = match (ts.ip_protocol, ours.protocol) {
            (a, 0) => a,
            (0, b) => b,
            (a, b) if a == b => a,
            _ => return None,
        };
        let ports = PortRange {
            low: ts.start_port.max(ours.ports.low),
            high: ts.end_port.min(ours.ports.high),
        };
        (ports.low <= ports.high).then_some(Side {
            prefix,
            protocol,
            ports,
        })
    })
}

/// The MH types whose port (`t << 8`, RFC 7296 §3.13.1) is in `ports`.
fn mh_types(ports: PortRange) -> impl Iterator<Item = u8> {
    (ports.low.div_ceil(256)..=ports.high / 256).filter_map(|t| u8::try_from(t).ok())
}

/// What a narrowed pair installs, if it can be: one protocol for both
/// sides, ports where the protocol has them, and for the Mobility Header
/// the types. The SPD has one MH-type list for both directions: it gets
/// what either side's range allows, so RFC 4877's "BU out, BAck in" as
/// TSi BU and TSr BA installs [BU, BA] too.
fn selector(local: Side, remote: Side) -> Option<Selector> {
    let protocol = match (local.protocol, remote.protocol) {
        (a, 0) | (0, a) => a,
        (a, b) if a == b => a,
        _ => return None,
    };
    let mut s = Selector {
        protocol: (protocol != 0).then(|| IpProtocol::from(protocol)),
        ..Selector::between(local.prefix, remote.prefix)
    };
    let any = |side: Side| side.ports == PortRange::ANY;
    match s.protocol {
        _ if any(local) && any(remote) => {}
        // Ports mean nothing without a protocol, and ICMP type and code
        // selectors are not installed.
        None | Some(IpProtocol::Icmp | IpProtocol::Icmpv6) => return None,
        // Either side allows every type: so does the SA.
        Some(IpProtocol::Mobility) if any(local) || any(remote) => {}
        Some(IpProtocol::Mobility) => {
            s.mh_types = mh_types(local.ports)
                .chain(mh_types(remote.ports))
                .collect();
            s.mh_types.sort_unstable();
            s.mh_types.dedup();
            if s.mh_types.is_empty() {
                return None;
            }
        }
        Some(_) => {
            s.local_ports = local.ports;
            s.remote_ports = remote.ports;
        }
    }
    Some(s)
}

fn resolve(ts: TsSpec, ike: IpAddr) -> Side {
    Side {
        prefix: ts.prefix.unwrap_or(Prefix::host(ike)),
        protocol: ts.protocol,
        ports: ts.ports,
    }
}

/// Our offer: every encryption transform, X25519 when `pfs`, no ESN.
fn esp_proposal(proposals: &[Encr], spi: u32, pfs: bool) -> Proposal {
    let mut transforms: Vec<Transform> = proposals
        .iter()
        .map(|e| Transform::new(ENCR, e.transform_id(), e.key_length_attr()))
        .collect();
    if pfs {
        transforms.push(Transform::new(DH, crypto::DH_CURVE25519, None));
    }
    transforms.push(Transform::new(ESN, 0, None));
    Proposal {
        number: 1,
        protocol: PROTO_ESP,
        spi: spi.to_be_bytes().to_vec(),
        transforms,
    }
}

/// Diffie-Hellman group NONE (§3.3.2).
const DH_NONE: u16 = 0;

/// One ESP proposal of the peer's and what we took from it.
#[derive(Debug, Clone, Copy)]
struct EspChoice {
    number: u8,
    encr: Encr,
    /// The peer's SPI.
    spi: u32,
    /// The D-H transform we selected, when the proposal has that type:
    /// X25519 (PFS) or NONE.
    dh: Option<u16>,
    /// Whether the proposal has the ESN type (we select "no ESN").
    esn: bool,
}

impl EspChoice {
    /// The accepted proposal: the peer's number and one transform of each
    /// type it offered (§3.3).
    fn proposal(&self, spi: u32) -> Proposal {
        let mut transforms = vec![Transform::new(
            ENCR,
            self.encr.transform_id(),
            self.encr.key_length_attr(),
        )];
        transforms.extend(self.dh.map(|g| Transform::new(DH, g, None)));
        if self.esn {
            transforms.push(Transform::new(ESN, 0, None));
        }
        Proposal {
            number: self.number,
            protocol: PROTO_ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms,
        }
    }

    fn pfs(&self) -> bool {
        self.dh == Some(crypto::DH_CURVE25519)
    }
}

/// Our choice among ESP proposals. `kex`: the exchange can carry a KE
/// (CREATE_CHILD_SA; IKE_AUTH cannot, §1.2); `pfs`: we require one then.
fn choose_esp(payloads: &[IkePayload], ours: &[Encr], kex: bool, pfs: bool) -> Option<EspChoice> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Sa(props) => props.iter().find_map(|pr| {
            let spi = u32::from_be_bytes(pr.spi.as_slice().try_into().ok()?);
            let has = |ty| pr.transforms.iter().any(|t| t.transform_type == ty);
            if pr.protocol != PROTO_ESP || has(ESN) && !has_transform(pr, ESN, 0) {
                return None;
            }
            let theirs: Vec<Encr> = offered(pr).collect();
            let encr = *ours.iter().find(|e| theirs.contains(e))?;
            let none = has_transform(pr, DH, DH_NONE);
            let dh = match (has(DH), kex) {
                (false, true) if pfs => return None,
                (false, _) => None,
                // No KE can answer it: NONE if offered, else the type is
                // left out as the RFC says to send it.
                (true, false) => none.then_some(DH_NONE),
                (true, true) if has_transform(pr, DH, crypto::DH_CURVE25519) => {
                    Some(crypto::DH_CURVE25519)
                }
                (true, true) if none && !pfs => Some(DH_NONE),
                (true, true) => return None,
            };
            Some(EspChoice {
                number: pr.number,
                encr,
                spi,
                dh,
                esn: has(ESN),
            })
        }),
        _ => None,
    })
}

/// What a CHILD_SA negotiation settled, before installation.
struct ChildDeal {
    config: usize,
    encr: Encr,
    spi_in: u32,
    spi_out: u32,
    /// Our side and the peer's, narrowed, and what they install.
    local: Side,
    remote: Side,
    selector: Selector,
    peer_tunnel: Option<IpAddr>,
}

impl Ike {
    /// SA, TSi, TSr and mode/tunnel notifications for one child; `pfs`
    /// offers X25519 (never in IKE_AUTH, §1.2).
    pub(super) fn child_payloads(
        &self,
        sa: &IkeSa,
        peer: usize,
        config: usize,
        spi_in: u32,
        pfs: bool,
    ) -> Vec<IkePayload> {
        let Some(c) = self.cfg.peers[peer].children.get(config) else {
            return Vec::new();
        };
        let mut p = vec![
            IkePayload::Sa(vec![esp_proposal(&c.proposals, spi_in, pfs)]),
            IkePayload::TsI(vec![ts_from(resolve(c.local_ts, sa.local.ip()))]),
            IkePayload::TsR(vec![ts_from(resolve(c.remote_ts, sa.remote.ip()))]),
        ];
        p.extend(self.child_notifications(sa, c));
        p
    }

    fn child_notifications(&self, sa: &IkeSa, c: &ChildConfig) -> Vec<IkePayload> {
        let mut p = Vec::new();
        if c.mode == Mode::Transport {
            p.push(notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
        }
        p.extend(tunnel_addresses::ours(sa, c, &self.cfg.code_points));
        p
    }

    /// A CREATE_CHILD_SA request for a new child, or a rekey of `rekey`;
    /// with `dh`, PFS.
    pub(super) fn create_child_payloads(
        &self,
        sa: &IkeSa,
        peer: usize,
        config: usize,
        spi_in: u32,
        (nonce, dh): (&[u8], Option<&Dh>),
        rekey: Option<u32>,
    ) -> Vec<IkePayload> {
        let mut p = Vec::new();
        if let Some(old) = rekey {
            let mut n = Notify::new(NotifyType::REKEY_SA.into(), Vec::new());
            n.protocol = PROTO_ESP;
            n.spi = old.to_be_bytes().to_vec();
            p.push(IkePayload::Notify(n));
        }
        let mut child = self.child_payloads(sa, peer, config, spi_in, dh.is_some());
        // SA, Ni, [KEi], then the rest (§1.3.1).
        let rest = child.split_off(usize::from(!child.is_empty()));
        p.extend(child);
        p.push(IkePayload::Nonce(nonce.to_vec()));
        p.extend(dh.map(ke_payload));
        p.extend(rest);
        if self.cfg.mobility == Mobility::AddrMgmt {
            p.extend(self.peer_address_notifications(sa.local, sa.remote));
        }
        p
    }

    /// Responder side of a CHILD_SA: chooses, installs, and returns the
    /// response payloads (SA, [KEr], TSi, TSr, ...: no nonce), or the
    /// notification that refuses it. `kex`: in CREATE_CHILD_SA, where a
    /// proposal with X25519 is answered with PFS.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accept_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[IkePayload],
        rekey: Option<String>,
        nonces: (&[u8], &[u8]),
        kex: bool,
        ipsec: &mut Ipsec,
    ) -> Result<Vec<IkePayload>, IkePayload> {
        let refuse = |t| notify(t, Vec::new());
        let cp = self.cfg.code_points;
        let peer = sa
            .peer()
            .ok_or_else(|| refuse(NotifyType::CHILD_SA_NOT_FOUND))?;
        let (tsi, tsr) = payload_ts(payloads).ok_or_else(|| refuse(NotifyType::TS_UNACCEPTABLE))?;
        let transport = has_notify(payloads, NotifyType::USE_TRANSPORT_MODE);
        let mode = if transport {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        let mut no_proposal = false;
        let mut deal = None;
        for (i, c) in self.cfg.peers[peer].children.iter().enumerate() {
            if rekey.as_ref().is_some_and(|n| *n != c.name) {
                continue;
            }
            let (Some(remote), Some(local)) = (
                narrow(tsi, resolve(c.remote_ts, sa.remote.ip())),
                narrow(tsr, resolve(c.local_ts, sa.local.ip())),
            ) else {
                continue;
            };
            let Some(selector) = selector(local, remote) else {
                continue;
            };
            if c.mode != mode {
                no_proposal = true;
                continue;
            }
            if mode == Mode::Transport && !self.proxy_allowed(sa, remote.prefix) {
                continue;
            }
            let Some(choice) = choose_esp(payloads, &c.proposals, kex, c.pfs) else {
                no_proposal = true;
                continue;
            };
            deal = Some((
                choice,
                ChildDeal {
                    config: i,
                    encr: choice.encr,
                    spi_in: 0,
                    spi_out: choice.spi,
                    local,
                    remote,
                    selector,
                    peer_tunnel: tunnel_addresses::theirs(payloads, &cp),
                },
            ));
            break;
        }
        let Some((choice, mut deal)) = deal else {
            return Err(refuse(if no_proposal {
                NotifyType::NO_PROPOSAL_CHOSEN
            } else {
                NotifyType::TS_UNACCEPTABLE
            }));
        };
        // PFS: their KE must be of the group we chose (§1.3.1).
        let dh = choice.pfs().then(|| Dh::generate(&mut self.rng));
        let shared = match (&dh, payload_ke(payloads)) {
            (None, _) => None,
            (Some(dh), Some((crypto::DH_CURVE25519, ke))) => Some(
                dh.shared(ke)
                    .map_err(|_| refuse(NotifyType::INVALID_SYNTAX))?,
            ),
            (Some(_), _) => {
                return Err(notify(
                    NotifyType::INVALID_KE_PAYLOAD,
                    crypto::DH_CURVE25519.to_be_bytes().to_vec(),
                ))
            }
        };
        deal.spi_in = self.fresh_esp_spi(ipsec);
        let len = deal.encr.keymat_len();
        let sk_d = &sa
            .established()
            .ok_or_else(|| refuse(NotifyType::CHILD_SA_NOT_FOUND))?
            .sk_d;
        let km = crypto::child_keymat(
            sk_d,
            shared.as_ref().map(|s| &s[..]),
            nonces.0,
            nonces.1,
            2 * len,
        );
        // Initiator-to-responder keys come first (§2.17): ours are inbound.
        let (key_in, key_out) = km.split_at(len);
        let child = self
            .install(now, sa, &deal, mode, (key_in, key_out), nonces, ipsec)
            .ok_or_else(|| refuse(NotifyType::NO_PROPOSAL_CHOSEN))?;
        let c = &self.cfg.peers[peer].children[deal.config];
        let mut out = vec![IkePayload::Sa(vec![choice.proposal(child.spi_in)])];
        out.extend(dh.as_ref().map(ke_payload));
        out.push(IkePayload::TsI(vec![ts_from(deal.remote)]));
        out.push(IkePayload::TsR(vec![ts_from(deal.local)]));
        out.extend(self.child_notifications(sa, c));
        Ok(out)
    }

    /// Reports a child refused by notification `n`.
    pub(super) fn child_refused(&mut self, sa: &IkeSa, n: &IkePayload, by_peer: bool) {
        if let IkePayload::Notify(n) = n {
            self.events.push_back(IkeEvent::ChildRefused {
                sa: IkeSaId(sa.ours),
                notify: n.notify_type.into(),
                by_peer,
            });
        }
    }

    /// The proxy case: a transport-mode TSi other than the peer's own
    /// address needs policy; the peer's address set is allowed (AM-3.2c).
    fn proxy_allowed(&self, sa: &IkeSa, ts: Prefix) -> bool {
        ts.is_host() && (ts.addr == sa.remote.ip() || sa.peer_addresses.contains(&ts.addr))
            || self
                .cfg
                .proxy_policy
                .iter()
                .any(|p| p.len <= ts.len && p.contains(ts.addr))
    }

    /// Initiator side: the response to our CHILD_SA request.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        config: usize,
        spi_in: u32,
        rekey: Option<u32>,
        nonces: (&[u8], &[u8]),
        dh: Option<&Dh>,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) {
        let cp = self.cfg.code_points;
        let Some(c) = sa
            .peer()
            .and_then(|p| self.cfg.peers[p].children.get(config))
        else {
            return;
        };
        let choice = choose_esp(payloads, &c.proposals, dh.is_some(), dh.is_some());
        // With PFS offered, the answer has X25519 and the peer's share.
        let shared = match (choice.map(|ch| ch.pfs()), dh, payload_ke(payloads)) {
            (Some(false), None, _) => Some(None),
            (Some(true), Some(dh), Some((crypto::DH_CURVE25519, ke))) => {
                dh.shared(ke).ok().map(Some)
            }
            _ => None,
        };
        let (Some(choice), Some(shared), Some((tsi, tsr))) = (choice, shared, payload_ts(payloads))
        else {
            if let Some(n) = payloads.iter().find(|p| is_error(p)) {
                self.child_refused(sa, n, true);
            }
            if let Some(old) = rekey {
                clear_rekey(sa, old);
            }
            return;
        };
        let narrowed = narrow(tsi, resolve(c.local_ts, sa.local.ip()))
            .zip(narrow(tsr, resolve(c.remote_ts, sa.remote.ip())))
            .and_then(|(l, r)| Some((l, r, selector(l, r)?)));
        let transport = has_notify(payloads, NotifyType::USE_TRANSPORT_MODE);
        let mode = c.mode;
        // Selectors outside ours, or a peer that ignored USE_TRANSPORT_MODE
        // and gave us a tunnel: refuse the child.
        let Some((local, remote, selector)) =
            narrowed.filter(|_| transport == (mode == Mode::Transport))
        else {
            self.queue_request(
                now,
                sa,
                Request::Delete {
                    ike: false,
                    spis: vec![spi_in],
                },
            );
            return;
        };
        let encr = choice.encr;
        let deal = ChildDeal {
            config,
            encr,
            spi_in,
            spi_out: choice.spi,
            local,
            remote,
            selector,
            peer_tunnel: tunnel_addresses::theirs(payloads, &cp),
        };
        let len = encr.keymat_len();
        let Some(e) = sa.established() else {
            return;
        };
        let km = crypto::child_keymat(
            &e.sk_d,
            shared.as_ref().map(|s| &s[..]),
            nonces.0,
            nonces.1,
            2 * len,
        );
        let (key_out, key_in) = km.split_at(len);
        let Some(child) = self.install(now, sa, &deal, mode, (key_in, key_out), nonces, ipsec)
        else {
            return;
        };
        if let Some(old) = rekey {
            self.finish_rekey(now, sa, old, &child);
        }
    }

    /// Puts a negotiated child into the SAD and SPD.
    #[allow(clippy::too_many_arguments)]
    fn install(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        deal: &ChildDeal,
        mode: Mode,
        (key_in, key_out): (&[u8], &[u8]),
        nonces: (&[u8], &[u8]),
        ipsec: &mut Ipsec,
    ) -> Option<Child> {
        let c = self.cfg.peers[sa.peer()?].children.get(deal.config)?;
        let (addresses, fixed) = match mode {
            Mode::Tunnel => tunnel_addresses::outer(sa, c.tunnel_address, deal.peer_tunnel),
            // The packet's endpoints when they are single hosts (the proxy
            // case), else the peer addresses (AM-3.1b).
            Mode::Transport => (
                AddressPair {
                    local: if deal.local.prefix.is_host() {
                        deal.local.prefix.addr
                    } else {
                        sa.local.ip()
                    },
                    peer: if deal.remote.prefix.is_host() {
                        deal.remote.prefix.addr
                    } else {
                        sa.remote.ip()
                    },
                },
                (false, false),
            ),
        };
        let selector = deal.selector.clone();
        let mut spec = SaPairSpec::new(
            addresses,
            mode,
            deal.encr.esp_algorithm(),
            selector.clone(),
            SaKeys {
                spi: deal.spi_in,
                key: key_in.to_vec(),
            },
            SaKeys {
                spi: deal.spi_out,
                key: key_out.to_vec(),
            },
        );
        spec.lifetime = c.lifetime;
        let name = c.name.clone();
        let udp_encap = sa.nat().then_some((sa.local.port(), sa.remote.port()));
        let (inbound, outbound) = ipsec.add_protected_pair(now, &spec).ok()?;
        let v6 = addresses.local.is_ipv6();
        for (s, k) in [(deal.spi_in, key_in), (deal.spi_out, key_out)] {
            if let Some(row) = keylog::esp_row(v6, s, deal.encr, k) {
                self.events.push_back(IkeEvent::KeyLog {
                    table: KeyTable::Esp,
                    row,
                });
            }
        }
        let child = Child {
            name: name.clone(),
            inbound,
            outbound,
            spi_in: deal.spi_in,
            spi_out: deal.spi_out,
            mode,
            encr: deal.encr,
            selector,
            addresses,
            fixed,
            udp_encap: udp_encap.is_some(),
            nonces: (nonces.0.to_vec(), nonces.1.to_vec()),
            rekeyed_by: None,
        };
        sa.children.push(child.clone());
        self.child_owners.insert(inbound, (sa.ours, deal.spi_in));
        self.child_owners.insert(outbound, (sa.ours, deal.spi_in));
        self.events.push_back(IkeEvent::ChildUp {
            sa: IkeSaId(sa.ours),
            child: ChildInfo {
                name,
                inbound,
                outbound,
                spi_in: deal.spi_in,
                spi_out: deal.spi_out,
                mode,
                addresses,
                udp_encap,
            },
        });
        Some(child)
    }

    /// Forgets the child whose inbound SPI is `spi_in`.
    pub(super) fn forget_child(&mut self, sa: &mut IkeSa, spi_in: u32, ipsec: &mut Ipsec) {
        let Some(i) = sa.children.iter().position(|c| c.spi_in == spi_in) else {
            return;
        };
        let c = sa.children.remove(i);
        self.uninstall(sa.ours, &c, ipsec);
    }

    /// Takes a child of IKE SA `ike` out of the SAD, SPD and index.
    pub(super) fn uninstall(&mut self, ike: u64, c: &Child, ipsec: &mut Ipsec) {
        self.child_owners.remove(&c.inbound);
        self.child_owners.remove(&c.outbound);
        ipsec.sad.remove(c.inbound);
        ipsec.sad.remove(c.outbound);
        remove_policy(ipsec, c.outbound);
        self.events.push_back(IkeEvent::ChildDown {
            sa: IkeSaId(ike),
            spi_in: c.spi_in,
            spi_out: c.spi_out,
        });
    }

    /// Our rekey of `old` produced `new`: delete the old child, unless the
    /// peer rekeyed it too and ours is the redundant SA (§2.8.1).
    fn finish_rekey(&mut self, now: Instant, sa: &mut IkeSa, old: u32, new: &Child) {
        let Some(o) = sa.children.iter().find(|c| c.spi_in == old) else {
            return;
        };
        let theirs = o.rekeyed_by.and_then(|n| {
            sa.children
                .iter()
                .find(|c| c.spi_in == n && c.spi_in != new.spi_in)
        });
        let lowest = |c: &Child| c.nonces.0.clone().min(c.nonces.1.clone());
        let ours_redundant = theirs.is_some_and(|t| lowest(new) < lowest(t));
        let delete = if ours_redundant {
            new.spi_in
        } else {
            if let Some(o) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                o.rekeyed_by = Some(new.spi_in);
            }
            old
        };
        self.queue_request(
            now,
            sa,
            Request::Delete {
                ike: false,
                spis: vec![delete],
            },
        );
    }

    pub(super) fn rekey_ike_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        new: u64,
        (ni, dh): (&[u8], &Dh),
        payloads: &[IkePayload],
    ) {
        let (Some((_, encr, peer_spi)), Some(nr), Some((crypto::DH_CURVE25519, ke))) = (
            choose_ike(payloads, &[sa.encr]),
            payload_nonce(payloads),
            payload_ke(payloads),
        ) else {
            return;
        };
        let (Ok(peer_spi), Ok(shared)) = (<[u8; 8]>::try_from(peer_spi.as_slice()), dh.shared(ke))
        else {
            self.drop(IkeDrop::Malformed);
            return;
        };
        let peer_spi = u64::from_be_bytes(peer_spi);
        let nr = nr.to_vec();
        self.replace_ike(
            now,
            sa,
            new,
            true,
            (new, peer_spi),
            encr,
            &shared,
            (ni, &nr),
        );
        // The initiator of the rekey deletes the old SA (§2.18).
        self.queue_request(
            now,
            sa,
            Request::Delete {
                ike: true,
                spis: Vec::new(),
            },
        );
    }

    /// Creates the IKE SA that replaces `old` and hands it the children.
    #[allow(clippy::too_many_arguments)]
    fn replace_ike(
        &mut self,
        now: Instant,
        old: &mut IkeSa,
        ours: u64,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        encr: Encr,
        shared: &[u8],
        (ni, nr): (&[u8], &[u8]),
    ) {
        let Some(o) = old.established() else {
            return;
        };
        let keys = IkeKeys::rekey(encr, &o.sk_d, shared, ni, nr, spi_i, spi_r);
        self.events
            .extend(ike_keys_logged(encr, spi_i, spi_r, &keys));
        let Ok(sk) = Sk::new(encr, &keys, initiator) else {
            return;
        };
        let state = Established::new(o.peer, keys.sk_d, now);
        let mut sa = IkeSa::new(
            ours,
            initiator,
            (old.local, old.remote),
            Phase::Keyed(sk, Keyed::Established(state)),
        );
        sa.spi_i = spi_i;
        sa.spi_r = spi_r;
        sa.encr = encr;
        sa.nat_local = old.nat_local;
        sa.nat_remote = old.nat_remote;
        sa.mobike = old.mobike;
        sa.peer_r_mobike = old.peer_r_mobike;
        sa.tunnel_addresses = old.tunnel_addresses;
        sa.peer_addresses = old.peer_addresses.clone();
        sa.children = mem::take(&mut old.children);
        for c in &sa.children {
            self.child_owners.insert(c.inbound, (ours, c.spi_in));
            self.child_owners.insert(c.outbound, (ours, c.spi_in));
        }
        if let Some(o) = old.established_mut() {
            o.replaced_by = Some(ours);
        }
        let event = sa.peer().map(|peer| IkeEvent::Established {
            sa: IkeSaId(ours),
            peer: self.cfg.peers[peer].id.clone(),
            local: sa.local,
            remote: sa.remote,
        });
        self.put(sa);
        self.events.extend(event);
    }

    pub(super) fn on_create_child(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Vec<IkePayload> {
        let Some(ni) = payload_nonce(payloads).map(<[u8]>::to_vec) else {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        };
        let nr = self.nonce();
        let ike_rekey = payloads.iter().any(|p| {
            matches!(p, IkePayload::Sa(props) if props.iter().any(|pr| pr.protocol == PROTO_IKE))
        });
        if ike_rekey {
            return self.on_rekey_ike(now, sa, &ni, nr, payloads);
        }
        let rekey_of = payloads.iter().find_map(|p| match p {
            IkePayload::Notify(n)
                if NotifyType::from(n.notify_type) == NotifyType::REKEY_SA
                    && n.protocol == PROTO_ESP =>
            {
                Some(u32::from_be_bytes(n.spi.as_slice().try_into().ok()?))
            }
            _ => None,
        });
        let old = match rekey_of {
            Some(s) => match sa.children.iter().find(|c| c.spi_out == s) {
                Some(c) => Some((c.spi_in, c.name.clone())),
                None => {
                    let mut n = Notify::new(NotifyType::CHILD_SA_NOT_FOUND.into(), Vec::new());
                    n.protocol = PROTO_ESP;
                    n.spi = s.to_be_bytes().to_vec();
                    return vec![IkePayload::Notify(n)];
                }
            },
            None => None,
        };
        let accepted = self.accept_child(
            now,
            sa,
            payloads,
            old.as_ref().map(|o| o.1.clone()),
            (&ni, &nr),
            true,
            ipsec,
        );
        let mut out = match accepted {
            Ok(p) => p,
            Err(n) => {
                self.child_refused(sa, &n, false);
                return vec![n];
            }
        };
        if let Some((old_in, _)) = old {
            let new_in = sa.children.last().map(|c| c.spi_in);
            if let Some(o) = sa.children.iter_mut().find(|c| c.spi_in == old_in) {
                // A collision with our own rekey is settled when ours ends.
                o.rekeyed_by = new_in;
            }
        }
        // SA, Nr, [KEr], TSi, TSr (§1.3.1).
        out.insert(1, IkePayload::Nonce(nr));
        out
    }

    fn on_rekey_ike(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        ni: &[u8],
        nr: Vec<u8>,
        payloads: &[IkePayload],
    ) -> Vec<IkePayload> {
        let Some((number, encr, peer_spi)) = choose_ike(payloads, &[sa.encr]) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
        };
        let Some((crypto::DH_CURVE25519, ke)) = payload_ke(payloads) else {
            return vec![notify(
                NotifyType::INVALID_KE_PAYLOAD,
                crypto::DH_CURVE25519.to_be_bytes().to_vec(),
            )];
        };
        let dh = Dh::generate(&mut self.rng);
        let (Ok(peer_spi), Ok(shared)) = (<[u8; 8]>::try_from(peer_spi.as_slice()), dh.shared(ke))
        else {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        };
        let peer_spi = u64::from_be_bytes(peer_spi);
        let ours = self.fresh_spi(Some(sa.ours));
        self.replace_ike(
            now,
            sa,
            ours,
            false,
            (peer_spi, ours),
            encr,
            &shared,
            (ni, &nr),
        );
        let mut proposal = ike_proposal(&[encr], ours.to_be_bytes().to_vec());
        proposal.number = number;
        vec![
            IkePayload::Sa(vec![proposal]),
            IkePayload::Nonce(nr),
            ke_payload(&dh),
        ]
    }
}

/// A CREATE_CHILD_SA request that rekeys the IKE SA (§1.3.2).
pub(super) fn rekey_ike_payloads(encr: Encr, spi: u64, nonce: &[u8], dh: &Dh) -> Vec<IkePayload> {
    vec![
        IkePayload::Sa(vec![ike_proposal(&[encr], spi.to_be_bytes().to_vec())]),
        IkePayload::Nonce(nonce.to_vec()),
        ke_payload(dh),
    ]
}

/// An error notification (types below 16384, §3.10.1).
pub(super) fn is_error(p: &IkePayload) -> bool {
    matches!(p, IkePayload::Notify(n) if n.notify_type < 16384)
}

fn ke_payload(dh: &Dh) -> IkePayload {
    IkePayload::Ke {
        group: crypto::DH_CURVE25519,
        data: dh.public().to_vec(),
    }
}

/// Our rekey of `old` failed: it may be rekeyed again.
pub(super) fn clear_rekey(sa: &mut IkeSa, old: u32) {
    if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == old) {
        c.rekeyed_by = None;
    }
}

/// Removes the SPD policy that sends through `outbound`.
fn remove_policy(ipsec: &mut Ipsec, outbound: SaId) {
    if let Some(i) = ipsec
        .spd
        .policies()
        .iter()
        .position(|p| p.action == Action::Protect(vec![outbound]))
    {
        ipsec.spd.remove(i);
    }
}
