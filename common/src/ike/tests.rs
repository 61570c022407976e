//! Pair tests: two engines back to back on a virtual wire, with tampering
//! in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::ops::RangeInclusive;
use std::collections::VecDeque;

use super::crypto::Encr;
use super::payloads::payload_ts;
use super::*;
use crate::ipsec::{Action, Inbound, Outbound, PortRange};
use crate::time::Duration;
use crate::wire::ike::{
    IkeHeader, IkePayload, Notify, NotifyType, PeerAddress, Transform, TunnelAddress,
};
use crate::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhRepr};
use crate::wire::packet::{PacketRepr, UdpPayload, UpperRepr};
use crate::wire::{CodePoints, IpProtocol, UdpRepr};

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const A: &str = "2001:db8:1::a";
const A2: &str = "2001:db8:2::a";
const A3: &str = "2001:db8:4::a";
const B: &str = "2001:db8:1::b";
const B2: &str = "2001:db8:3::b";

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(v6(ip), port)
}

fn cp() -> CodePoints {
    CodePoints::default()
}

/// `a.example` talks to `b.example` with a tunnel child between
/// 2001:db8:a::/48 and 2001:db8:b::/48.
fn configs(psk: bool) -> (IkeConfig, IkeConfig) {
    let ka = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let kb = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let make = |me: &str,
                them: &str,
                mine: &str,
                theirs: &str,
                addr: &str,
                seed,
                key: &ed25519_dalek::SigningKey,
                their_key: &ed25519_dalek::SigningKey| {
        let mut c = IkeConfig::new(Identity::Fqdn(me.into()), seed);
        c.signing_key = Some(key.clone());
        c.peers.push(PeerConfig {
            name: them.into(),
            id: Identity::Fqdn(them.into()),
            auth: if psk {
                PeerAuth::Psk(b"lab secret".to_vec())
            } else {
                PeerAuth::Ed25519(their_key.verifying_key())
            },
            addresses: vec![sock(addr, IKE_PORT)],
            children: vec![ChildConfig::new(
                "net",
                Mode::Tunnel,
                TsSpec::prefix(mine.parse().unwrap()),
                TsSpec::prefix(theirs.parse().unwrap()),
            )],
            local: None,
        });
        c
    };
    (
        make(
            "a.example",
            "b.example",
            "2001:db8:a::/48",
            "2001:db8:b::/48",
            B,
            1,
            &ka,
            &kb,
        ),
        make(
            "b.example",
            "a.example",
            "2001:db8:b::/48",
            "2001:db8:a::/48",
            A,
            2,
            &kb,
            &ka,
        ),
    )
}

struct Node {
    ike: Ike,
    ipsec: Ipsec,
    events: Vec<IkeEvent>,
}

type Tamper<'a> = &'a mut dyn FnMut(&mut Datagram) -> bool;

struct Pair {
    now: Instant,
    a: Node,
    b: Node,
    wire: VecDeque<Datagram>,
    /// Every datagram sent, as sent.
    sent: Vec<(Instant, Datagram)>,
}

impl Pair {
    fn new(ca: IkeConfig, cb: IkeConfig, addrs_a: &[&str], addrs_b: &[&str]) -> Self {
        let now = Instant::from_secs(1);
        let node = |c| Node {
            ike: Ike::new(c),
            ipsec: Ipsec::default(),
            events: Vec::new(),
        };
        let mut p = Pair {
            now,
            a: node(ca),
            b: node(cb),
            wire: VecDeque::new(),
            sent: Vec::new(),
        };
        let aa: Vec<IpAddr> = addrs_a.iter().map(|s| v6(s)).collect();
        let bb: Vec<IpAddr> = addrs_b.iter().map(|s| v6(s)).collect();
        p.a.ike.set_local_addresses(now, &aa);
        p.b.ike.set_local_addresses(now, &bb);
        p
    }

    fn established(psk: bool) -> (Pair, IkeSaId, IkeSaId) {
        let (ca, cb) = configs(psk);
        Self::up(ca, cb)
    }

    fn up(ca: IkeConfig, cb: IkeConfig) -> (Pair, IkeSaId, IkeSaId) {
        let mut p = Pair::new(ca, cb, &[A], &[B]);
        let sa = p.a.ike.initiate(p.now, "b.example").unwrap();
        p.run();
        let sb = p.only_sa(false);
        (p, sa, sb)
    }

    fn only_sa(&self, a: bool) -> IkeSaId {
        let n = if a { &self.a } else { &self.b };
        let ids: Vec<IkeSaId> = n.ike.sa_ids().collect();
        assert_eq!(ids.len(), 1, "one IKE SA expected");
        ids[0]
    }

    fn collect(&mut self) {
        for n in [&mut self.a, &mut self.b] {
            while let Some(d) = n.ike.poll_transmit() {
                self.sent.push((self.now, d.clone()));
                self.wire.push_back(d);
            }
            while let Some(e) = n.ike.poll_event() {
                n.events.push(e);
            }
        }
    }

    /// Delivers one datagram (after `tamper`, which may drop it by
    /// returning false); false when the wire is empty.
    fn step(&mut self, tamper: Tamper<'_>) -> bool {
        self.collect();
        let Some(mut d) = self.wire.pop_front() else {
            return false;
        };
        if tamper(&mut d) {
            self.deliver(d);
        }
        self.collect();
        true
    }

    fn deliver(&mut self, d: Datagram) {
        let now = self.now;
        let to_a = self.a.ike.local_addresses().contains(&d.remote.ip());
        let to_b = self.b.ike.local_addresses().contains(&d.remote.ip());
        let n = match (to_a, to_b) {
            (true, _) => &mut self.a,
            (_, true) => &mut self.b,
            _ => return,
        };
        let rx = Datagram {
            local: d.remote,
            remote: d.local,
            bytes: d.bytes,
        };
        n.ike.handle_datagram(now, rx, &mut n.ipsec);
    }

    fn run(&mut self) {
        self.run_with(&mut |_| true);
    }

    /// Delivers until the wire is quiet, then lets timers fire, for up to
    /// 120 virtual seconds.
    fn run_with(&mut self, tamper: Tamper<'_>) {
        let end = self.now + Duration::from_secs(120);
        loop {
            while self.step(tamper) {}
            let next = [self.a.ike.poll_timeout(), self.b.ike.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for n in [&mut self.a, &mut self.b] {
                        n.ike.handle_timeout(now, &mut n.ipsec);
                    }
                }
                _ => return,
            }
        }
    }

    /// Delivers only what is on the wire now, no timers.
    fn flush_with(&mut self, tamper: Tamper<'_>) {
        self.collect();
        let n = self.wire.len();
        for _ in 0..n {
            self.step(tamper);
        }
    }

    fn sa(&self, a: bool, id: IkeSaId) -> &IkeSa {
        let n = if a { &self.a } else { &self.b };
        n.ike.sa(id).unwrap()
    }

    /// A UDP packet from `src` to `dst` through `from`'s SAs, opened by
    /// the other side: returns the outer (src, dst) and whether it opened.
    fn esp(&mut self, from_a: bool, src: &str, dst: &str) -> (IpAddr, IpAddr, bool) {
        let p = PacketRepr::ipv6(
            src.parse().unwrap(),
            dst.parse().unwrap(),
            Vec::new(),
            UpperRepr::Udp(
                UdpRepr {
                    src_port: 7,
                    dst_port: 7,
                },
                UdpPayload::Raw(b"through the child".to_vec()),
            ),
        )
        .to_bytes(&cp());
        self.esp_packet(from_a, &p)
    }

    /// [`Pair::esp`] with a packet of any kind.
    fn esp_packet(&mut self, from_a: bool, p: &[u8]) -> (IpAddr, IpAddr, bool) {
        let now = self.now;
        let mut out = Vec::new();
        let (s, r) = if from_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        let Ok(Outbound::Protected { .. }) = s.ipsec.outbound(now, p, &mut out) else {
            panic!("not protected");
        };
        let outer = crate::ipsec::Layout::parse(&out).unwrap();
        let (osrc, odst) = (outer.selectors.src, outer.selectors.dst);
        let mut back = Vec::new();
        let opened = matches!(
            r.ipsec.inbound(now, &out, &mut back),
            Ok(Inbound::Decrypted { .. })
        ) && back == p;
        (osrc, odst, opened)
    }

    /// The inner payloads of a sent message, opened with the receiver's
    /// keys.
    fn opened(&self, d: &Datagram) -> (IkeHeader, Vec<IkePayload>) {
        let bytes = strip(&d.bytes);
        let repr = IkeRepr::parse(bytes, &cp()).unwrap();
        let h = &repr.header;
        let ours_b = if h.initiator() { h.spi_r } else { h.spi_i };
        let ours_a = if h.initiator() { h.spi_r } else { h.spi_i };
        let sa = self
            .b
            .ike
            .sas
            .get(&ours_b)
            .filter(|s| s.initiator != h.initiator())
            .or_else(|| {
                self.a
                    .ike
                    .sas
                    .get(&ours_a)
                    .filter(|s| s.initiator != h.initiator())
            })
            .expect("receiver SA");
        let inner = sa.open_message(&repr, bytes, &cp()).unwrap();
        (repr.header, inner)
    }

    /// Messages sent since `from` of this exchange and direction.
    fn messages(
        &self,
        from: usize,
        exchange: ExchangeType,
        response: bool,
    ) -> Vec<(Datagram, IkeHeader, Vec<IkePayload>)> {
        self.sent[from..]
            .iter()
            .filter_map(|(_, d)| {
                let repr = IkeRepr::parse(strip(&d.bytes), &cp()).ok()?;
                (repr.header.exchange == exchange && repr.header.response() == response)
                    .then_some(d)
            })
            .map(|d| {
                let (h, p) = self.opened(d);
                (d.clone(), h, p)
            })
            .collect()
    }

    /// Rewrites a message in flight: opens it with the receiver's keys,
    /// lets `f` change the inner payloads, seals it with the sender's.
    fn reseal(&mut self, d: &mut Datagram, f: impl FnOnce(&mut Vec<IkePayload>)) {
        let (h, mut inner) = self.opened(d);
        f(&mut inner);
        let sender_spi = if h.initiator() { h.spi_i } else { h.spi_r };
        let sender = if self
            .a
            .ike
            .sas
            .get(&sender_spi)
            .is_some_and(|s| s.initiator == h.initiator())
        {
            &mut self.a
        } else {
            &mut self.b
        };
        let sa = sender.ike.sas.get_mut(&sender_spi).unwrap();
        let sealed = sa
            .seal_message(h.exchange, h.response(), h.message_id, &inner, &cp())
            .unwrap();
        let marker = d.bytes.len() - strip(&d.bytes).len();
        d.bytes.truncate(marker);
        d.bytes.extend_from_slice(&sealed);
    }

    fn events(&self, a: bool) -> &[IkeEvent] {
        if a {
            &self.a.events
        } else {
            &self.b.events
        }
    }
}

fn strip(b: &[u8]) -> &[u8] {
    if b.starts_with(&[0, 0, 0, 0]) {
        &b[4..]
    } else {
        b
    }
}

fn notify_types(p: &[IkePayload]) -> Vec<u16> {
    p.iter()
        .filter_map(|x| match x {
            IkePayload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect()
}

fn has(p: &[IkePayload], t: NotifyType) -> bool {
    notify_types(p).contains(&t.into())
}

/// b's SA of an established pair, on (B, A) port 500.
fn established_sa() -> IkeSa {
    let (mut p, _, sb) = Pair::established(true);
    p.b.ike.sas.remove(&sb.0).unwrap()
}

fn child_spis(p: &Pair, a: bool, sa: IkeSaId) -> Vec<(u32, u32)> {
    p.sa(a, sa)
        .children
        .iter()
        .map(|c| (c.spi_in, c.spi_out))
        .collect()
}

// ---------------------------------------------------------------- IKE-BASE

// REQ IKE-BASE
// REQ AM-3.1b
#[test]
fn psk_aes_gcm_handshake_installs_a_working_tunnel_child() {
    let (mut p, sa, sb) = Pair::established(true);
    assert_eq!(p.sa(true, sa).state(), IkeState::Established);
    assert_eq!(p.sa(false, sb).state(), IkeState::Established);
    let (ca, cb) = (child_spis(&p, true, sa), child_spis(&p, false, sb));
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0], (cb[0].1, cb[0].0), "SPIs mirror each other");
    assert_eq!(p.a.ipsec.sad.len(), 2);
    // Four messages: IKE_SA_INIT and IKE_AUTH, nothing retransmitted.
    assert_eq!(p.sent.len(), 4);
    assert_eq!(p.a.ike.stats().retransmits, 0);
    let (s, d, ok) = p.esp(true, "2001:db8:a::1", "2001:db8:b::1");
    assert!(ok, "b opens what a sealed");
    assert_eq!(
        (s, d),
        (v6(A), v6(B)),
        "tunnel endpoints are the IKE addresses"
    );
    let (_, _, back) = p.esp(false, "2001:db8:b::1", "2001:db8:a::1");
    assert!(back);
    assert!(p
        .events(true)
        .iter()
        .any(|e| matches!(e, IkeEvent::ChildUp { child, .. } if child.udp_encap.is_none())));
    // AES-GCM keys are logged for tshark: one IKE row, two ESP rows per side.
    let rows = |a| {
        p.events(a)
            .iter()
            .filter(|e| matches!(e, IkeEvent::KeyLog { .. }))
            .count()
    };
    assert_eq!((rows(true), rows(false)), (3, 3));
}

// REQ IKE-BASE
#[test]
fn ed25519_chacha20_handshake() {
    let (mut ca, mut cb) = configs(false);
    ca.proposals = vec![Encr::ChaCha20Poly1305];
    cb.proposals = vec![Encr::ChaCha20Poly1305];
    for c in [&mut ca, &mut cb] {
        c.peers[0].children[0].proposals = vec![Encr::ChaCha20Poly1305];
    }
    let (mut p, sa, _) = Pair::up(ca, cb);
    assert_eq!(p.sa(true, sa).encr, Encr::ChaCha20Poly1305);
    let auth = p.messages(0, ExchangeType::IKE_AUTH, false);
    let method = auth[0].2.iter().find_map(|x| match x {
        IkePayload::Auth { method, data } => Some((*method, data[..8].to_vec())),
        _ => None,
    });
    // RFC 7427 method 14 with the Ed25519 AlgorithmIdentifier.
    assert_eq!(method, Some((14, hex::decode("07300506032b6570").unwrap())));
    assert!(p.esp(true, "2001:db8:a::1", "2001:db8:b::1").2);
    // tshark 4.0 cannot decrypt ChaCha20: no key-log rows.
    assert!(!p
        .events(true)
        .iter()
        .any(|e| matches!(e, IkeEvent::KeyLog { .. })));
}

// REQ IKE-BASE
#[test]
fn wrong_psk_fails_authentication_on_both_sides() {
    let (ca, mut cb) = configs(true);
    cb.peers[0].auth = PeerAuth::Psk(b"other".to_vec());
    let mut p = Pair::new(ca, cb, &[A], &[B]);
    p.a.ike.initiate(p.now, "b.example").unwrap();
    p.run();
    assert_eq!(p.b.ike.stats().dropped(IkeDrop::AuthenticationFailed), 1);
    assert!(p.a.ike.sa_ids().next().is_none());
    assert!(p.b.ike.sa_ids().next().is_none());
    assert!(p.a.ipsec.sad.is_empty() && p.b.ipsec.sad.is_empty());
    assert!(p.events(true).contains(&IkeEvent::Closed {
        sa: IkeSaId(
            p.sent[0].1.bytes[..8]
                .iter()
                .fold(0, |a, b| a << 8 | u64::from(*b))
        ),
        reason: CloseReason::AuthenticationFailed
    }));
}

// REQ IKE-BASE
#[test]
fn cookie_is_demanded_under_load_and_echoed() {
    let (ca, mut cb) = configs(true);
    cb.cookie_threshold = 0;
    let mut p = Pair::new(ca, cb, &[A], &[B]);
    p.a.ike.initiate(p.now, "b.example").unwrap();
    p.run();
    assert_eq!(p.b.ike.stats().dropped(IkeDrop::Cookie), 1);
    let first = IkeRepr::parse(&p.sent[2].1.bytes, &cp()).unwrap();
    assert!(
        matches!(&first.payloads[0], IkePayload::Notify(n) if n.notify_type == u16::from(NotifyType::COOKIE)),
        "the retry starts with the COOKIE"
    );
    assert_eq!(p.a.ike.sa_ids().count(), 1);
    assert!(p
        .b
        .ike
        .sa_ids()
        .all(|s| p.sa(false, s).state() == IkeState::Established));
}

// REQ IKE-BASE
#[test]
fn wrong_ke_group_gets_invalid_ke_payload_naming_x25519() {
    let (ca, cb) = configs(true);
    let mut p = Pair::new(ca, cb, &[A], &[B]);
    p.a.ike.initiate(p.now, "b.example").unwrap();
    p.flush_with(&mut |d| {
        let mut r = IkeRepr::parse(&d.bytes, &cp()).unwrap();
        for x in &mut r.payloads {
            if let IkePayload::Ke { group, data } = x {
                *group = 19;
                data.resize(64, 1);
            }
        }
        d.bytes.clear();
        r.emit(&mut d.bytes, &cp());
        true
    });
    let resp = IkeRepr::parse(&p.sent[1].1.bytes, &cp()).unwrap();
    let [IkePayload::Notify(n)] = resp.payloads.as_slice() else {
        panic!("{resp}");
    };
    assert_eq!(n.notify_type, u16::from(NotifyType::INVALID_KE_PAYLOAD));
    assert_eq!(n.data, 31u16.to_be_bytes());
    assert!(
        p.b.ike.sa_ids().next().is_none(),
        "no state for a refused request"
    );
}

// REQ IKE-BASE
#[test]
fn unanswered_requests_back_off_then_the_peer_is_dead() {
    let (mut p, sa, _) = Pair::established(true);
    let start = p.sent.len();
    p.a.ike.liveness(p.now, sa).unwrap();
    // Nothing reaches b any more.
    p.run_with(&mut |_| false);
    let times: Vec<u64> = p.sent[start..]
        .iter()
        .map(|(t, _)| t.total_micros())
        .collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]) / 1000).collect();
    assert_eq!(gaps, [500, 1000, 2000, 4000, 8000]);
    assert!(p.events(true).contains(&IkeEvent::Closed {
        sa,
        reason: CloseReason::Timeout
    }));
    assert!(p.a.ipsec.sad.is_empty(), "children go with the IKE SA");
}

// REQ IKE-BASE
#[test]
fn create_rekey_and_delete_children_then_rekey_and_delete_the_ike_sa() {
    let (mut p, sa, sb) = Pair::established(true);
    p.a.ike.create_child(p.now, sa, "net", &p.a.ipsec).unwrap();
    p.run();
    assert_eq!(child_spis(&p, true, sa).len(), 2);
    assert_eq!(p.b.ipsec.sad.len(), 4);
    let old = child_spis(&p, true, sa)[0];
    p.a.ike.rekey_child(p.now, sa, old.0, &p.a.ipsec).unwrap();
    p.run();
    let now_a = child_spis(&p, true, sa);
    assert_eq!(now_a.len(), 2, "the old child is deleted after the rekey");
    assert!(!now_a.contains(&old));
    assert_eq!(p.b.ipsec.sad.len(), 4);
    assert!(p.esp(true, "2001:db8:a::1", "2001:db8:b::1").2);
    // IKE rekey: new SPIs, children carried over, old SA closed.
    p.a.ike.rekey_ike(p.now, sa).unwrap();
    p.run();
    let na = p.only_sa(true);
    let nb = p.only_sa(false);
    assert_ne!(na, sa);
    assert_ne!(nb, sb);
    assert_eq!(child_spis(&p, true, na), now_a);
    assert!(p.events(false).contains(&IkeEvent::Closed {
        sa: sb,
        reason: CloseReason::Rekeyed
    }));
    p.a.ike.liveness(p.now, na).unwrap();
    p.run();
    assert_eq!(p.a.ike.stats().retransmits, 0, "the new SA answers");
    p.b.ike.delete(p.now, nb).unwrap();
    p.run();
    assert!(p.a.ike.sa_ids().next().is_none() && p.b.ike.sa_ids().next().is_none());
    assert!(p.a.ipsec.sad.is_empty() && p.b.ipsec.sad.is_empty());
}

/// An established pair whose child `net` has `pfs` on both sides, and
/// a's rekey request of it taken off the wire, b's child SPIs before it.
fn rekey_request(pfs: bool) -> (Pair, Datagram, Vec<(u32, u32)>) {
    let (mut ca, mut cb) = configs(true);
    ca.peers[0].children[0].pfs = pfs;
    cb.peers[0].children[0].pfs = pfs;
    let (mut p, sa, sb) = Pair::up(ca, cb);
    let old = child_spis(&p, true, sa)[0].0;
    p.a.ike.rekey_child(p.now, sa, old, &p.a.ipsec).unwrap();
    p.collect();
    let d = p.wire.pop_front().unwrap();
    let before = child_spis(&p, false, sb);
    (p, d, before)
}

fn transforms(p: &[IkePayload]) -> Vec<(u8, Vec<(u8, u16)>)> {
    p.iter()
        .find_map(|x| match x {
            IkePayload::Sa(props) => Some(
                props
                    .iter()
                    .map(|pr| {
                        let t = pr.transforms.iter();
                        (pr.number, t.map(|t| (t.transform_type, t.id)).collect())
                    })
                    .collect(),
            ),
            _ => None,
        })
        .unwrap()
}

fn ke_group(p: &[IkePayload]) -> Option<u16> {
    p.iter().find_map(|x| match x {
        IkePayload::Ke { group, .. } => Some(*group),
        _ => None,
    })
}

// REQ IKE-BASE
#[test]
fn a_child_rekey_answer_echoes_the_chosen_proposal_number_and_each_transform_type() {
    for pfs in [false, true] {
        let (mut p, mut d, _) = rekey_request(pfs);
        let ours = transforms(&p.opened(&d).1);
        let dh: Vec<(u8, u16)> = pfs.then_some((4, 31)).into_iter().collect();
        assert_eq!(
            ours,
            [(
                1,
                [vec![(1, 20), (1, 20), (1, 28)], dh.clone(), vec![(5, 0)]].concat()
            )],
            "pfs {pfs}: our offer"
        );
        // Proposal 1 is AES-CBC, which we lack; proposal 2 is ours, with
        // the D-H type widened by a group we lack (and NONE without PFS).
        p.reseal(&mut d, |inner| {
            for x in inner.iter_mut() {
                if let IkePayload::Sa(props) = x {
                    let mut cbc = props[0].clone();
                    cbc.transforms = vec![Transform::new(1, 12, Some(256))];
                    props[0].number = 2;
                    let dh_at = props[0].transforms.len() - 1;
                    let extra = if pfs { 19 } else { 0 };
                    props[0]
                        .transforms
                        .insert(dh_at, Transform::new(4, extra, None));
                    props.insert(0, cbc);
                }
            }
        });
        p.deliver(d);
        p.collect();
        let resp = p.messages(0, ExchangeType::CREATE_CHILD_SA, true);
        let answer = &resp.last().unwrap().2;
        let dh = if pfs { (4, 31) } else { (4, 0) };
        assert_eq!(
            transforms(answer),
            [(2, vec![(1, 20), dh, (5, 0)])],
            "pfs {pfs}: one proposal, numbered as theirs, one transform per type"
        );
        assert_eq!(ke_group(answer), pfs.then_some(31), "pfs {pfs}");
        p.run();
        let sa = p.only_sa(true);
        assert_eq!(child_spis(&p, true, sa).len(), 1, "pfs {pfs}: rekeyed");
        assert!(p.esp(true, "2001:db8:a::1", "2001:db8:b::1").2, "pfs {pfs}");
        assert!(
            p.esp(false, "2001:db8:b::1", "2001:db8:a::1").2,
            "pfs {pfs}"
        );
    }
}

// REQ IKE-BASE
#[test]
fn a_ke_of_another_group_than_the_chosen_one_gets_invalid_ke_payload() {
    let (mut p, mut d, before) = rekey_request(true);
    // Offer 19 and 31, send a KE of 19: we choose 31.
    p.reseal(&mut d, |inner| {
        for x in inner.iter_mut() {
            match x {
                IkePayload::Sa(props) => props[0].transforms.insert(1, Transform::new(4, 19, None)),
                IkePayload::Ke { group, data } => {
                    *group = 19;
                    data.resize(64, 1);
                }
                _ => {}
            }
        }
    });
    p.deliver(d);
    p.collect();
    let resp = p.messages(0, ExchangeType::CREATE_CHILD_SA, true);
    let answer = &resp.last().unwrap().2;
    let [IkePayload::Notify(n)] = answer.as_slice() else {
        panic!("{answer:?}");
    };
    assert_eq!(n.notify_type, u16::from(NotifyType::INVALID_KE_PAYLOAD));
    assert_eq!(n.data, 31u16.to_be_bytes());
    let sb = p.only_sa(false);
    assert_eq!(child_spis(&p, false, sb), before, "nothing installed");
    assert_eq!(p.b.ipsec.sad.len(), 2);
}

// REQ IKE-BASE
#[test]
fn a_responder_configured_for_pfs_refuses_a_rekey_without_it() {
    let (ca, mut cb) = configs(true);
    cb.peers[0].children[0].pfs = true;
    let (mut p, sa, sb) = Pair::up(ca, cb);
    let before = child_spis(&p, false, sb);
    let old = child_spis(&p, true, sa)[0].0;
    p.a.ike.rekey_child(p.now, sa, old, &p.a.ipsec).unwrap();
    p.run();
    let resp = p.messages(0, ExchangeType::CREATE_CHILD_SA, true);
    assert!(has(&resp[0].2, NotifyType::NO_PROPOSAL_CHOSEN), "{resp:?}");
    assert_eq!(child_spis(&p, false, sb), before);
    assert_eq!(
        child_spis(&p, true, sa),
        [(old, before[0].0)],
        "a keeps its child"
    );
    for (a, id) in [(false, sb), (true, sa)] {
        assert!(p.events(a).contains(&IkeEvent::ChildRefused {
            sa: id,
            notify: NotifyType::NO_PROPOSAL_CHOSEN,
            by_peer: a,
        }));
    }
}

// REQ IKE-BASE
#[test]
fn simultaneous_child_rekeys_leave_one_pair() {
    let (mut p, sa, sb) = Pair::established(true);
    let (ina, inb) = (
        child_spis(&p, true, sa)[0].0,
        child_spis(&p, false, sb)[0].0,
    );
    p.a.ike.rekey_child(p.now, sa, ina, &p.a.ipsec).unwrap();
    p.b.ike.rekey_child(p.now, sb, inb, &p.b.ipsec).unwrap();
    p.run();
    let (ca, cb) = (child_spis(&p, true, sa), child_spis(&p, false, sb));
    assert_eq!(ca.len(), 1, "{ca:?}");
    assert_eq!(ca[0], (cb[0].1, cb[0].0));
    assert!(!ca.contains(&(ina, inb)));
    assert_eq!(p.a.ipsec.sad.len(), 2);
    assert!(p.esp(true, "2001:db8:a::1", "2001:db8:b::1").2);
}

// REQ IKE-BASE
#[test]
fn transport_mode_is_asked_and_checked() {
    let (mut ca, mut cb) = configs(true);
    for c in [&mut ca, &mut cb] {
        c.peers[0].children[0].mode = Mode::Transport;
        c.peers[0].children[0].local_ts = TsSpec::DYNAMIC;
        c.peers[0].children[0].remote_ts = TsSpec::DYNAMIC;
    }
    let (p, sa, _) = Pair::up(ca.clone(), cb);
    assert_eq!(p.sa(true, sa).children[0].mode, Mode::Transport);
    let auth = p.messages(0, ExchangeType::IKE_AUTH, true);
    assert!(has(&auth[0].2, NotifyType::USE_TRANSPORT_MODE));
    // A responder that only does tunnel mode refuses (as libipsec does).
    let (_, mut cb) = configs(true);
    cb.peers[0].children[0].local_ts = TsSpec::DYNAMIC;
    cb.peers[0].children[0].remote_ts = TsSpec::DYNAMIC;
    let (p, sa, sb) = Pair::up(ca, cb);
    let auth = p.messages(0, ExchangeType::IKE_AUTH, true);
    assert!(has(&auth[0].2, NotifyType::NO_PROPOSAL_CHOSEN));
    assert!(p.sa(true, sa).children.is_empty() && p.sa(false, sb).children.is_empty());
    assert!(p.a.ipsec.sad.is_empty());
}

// ------------------------------------------------------- MH type selectors

/// A Mobility Header packet between two addresses.
fn mh(src: &str, dst: &str, message: MhMessage) -> Vec<u8> {
    let mh = MhRepr {
        message,
        options: Vec::new(),
    };
    PacketRepr::ipv6(
        src.parse().unwrap(),
        dst.parse().unwrap(),
        Vec::new(),
        UpperRepr::Mobility(mh),
    )
    .to_bytes(&cp())
}

fn binding_update() -> MhMessage {
    MhMessage::BindingUpdate {
        seq: 1,
        flags: BuFlags(BuFlags::A),
        lifetime: 100,
    }
}

fn binding_ack() -> MhMessage {
    MhMessage::BindingAck {
        status: BaStatus::Accepted,
        flags: BaFlags(0),
        seq: 1,
        lifetime: 100,
    }
}

/// a and b with one transport child `mip` between their IKE addresses for
/// the Mobility Header, of these types (`None`: every type).
fn mh_configs(
    a_types: Option<RangeInclusive<u8>>,
    b_types: Option<RangeInclusive<u8>>,
) -> (IkeConfig, IkeConfig) {
    let (mut ca, mut cb) = configs(true);
    for (c, types) in [(&mut ca, a_types), (&mut cb, b_types)] {
        let ts = match types {
            Some(t) => TsSpec::DYNAMIC.mh_types(t),
            None => TsSpec {
                protocol: IpProtocol::Mobility.into(),
                ..TsSpec::DYNAMIC
            },
        };
        c.peers[0].children = vec![ChildConfig::new("mip", Mode::Transport, ts, ts)];
    }
    (ca, cb)
}

/// (protocol, start port, end port) of each TSi and TSr in `payloads`.
fn ts_ports(payloads: &[IkePayload]) -> Vec<(u8, u16, u16)> {
    let (tsi, tsr) = payload_ts(payloads).unwrap();
    tsi.iter()
        .chain(tsr)
        .map(|t| (t.ip_protocol, t.start_port, t.end_port))
        .collect()
}

/// The MH types of every SA a node has.
fn installed_mh_types(n: &Node) -> Vec<Vec<u8>> {
    n.ipsec
        .sad
        .iter()
        .map(|(_, s)| s.selector.mh_types.clone())
        .collect()
}

const BU_BA_PORTS: (u8, u16, u16) = (135, 0x0500, 0x06ff);

// REQ CN-5.5
#[test]
fn a_bu_ba_only_child_protects_bu_and_ba_and_not_a_hoti() {
    let (ca, cb) = mh_configs(Some(5..=6), Some(5..=6));
    let (mut p, _, _) = Pair::up(ca, cb);
    // The types travel in the high octet of the ports (RFC 4301 §4.4.1.1).
    let req = p.messages(0, ExchangeType::IKE_AUTH, false);
    let resp = p.messages(0, ExchangeType::IKE_AUTH, true);
    assert_eq!(ts_ports(&req[0].2), [BU_BA_PORTS; 2]);
    assert_eq!(ts_ports(&resp[0].2), [BU_BA_PORTS; 2]);
    for n in [&p.a, &p.b] {
        assert_eq!(installed_mh_types(n), [[5, 6]; 2]);
    }
    assert!(p.esp_packet(true, &mh(A, B, binding_update())).2);
    assert!(p.esp_packet(false, &mh(B, A, binding_ack())).2);
    // A HoTI between the same addresses is not for this SA.
    p.a.ipsec.spd.fallback = Action::Bypass;
    let hoti = mh(A, B, MhMessage::HomeTestInit { cookie: 7 });
    let mut out = Vec::new();
    assert!(matches!(
        p.a.ipsec.outbound(p.now, &hoti, &mut out),
        Ok(Outbound::Clear)
    ));
}

// REQ CN-2.5
#[test]
fn a_bu_ba_only_responder_narrows_mh_any_and_the_sa_is_suitable() {
    let (ca, cb) = mh_configs(None, Some(5..=6));
    let (p, sa, sb) = Pair::up(ca, cb);
    let req = p.messages(0, ExchangeType::IKE_AUTH, false);
    let resp = p.messages(0, ExchangeType::IKE_AUTH, true);
    assert_eq!(ts_ports(&req[0].2), [(135, 0, u16::MAX); 2]);
    assert_eq!(ts_ports(&resp[0].2), [BU_BA_PORTS; 2]);
    // The initiator takes the narrower answer.
    for n in [&p.a, &p.b] {
        assert_eq!(installed_mh_types(n), [[5, 6]; 2]);
    }
    let (home, cn) = (A.parse().unwrap(), B.parse().unwrap());
    let inbound = |a: bool, id| p.sa(a, id).children[0].inbound;
    assert_eq!(
        p.a.ipsec.check_suitable(inbound(true, sa), home, cn),
        Ok(())
    );
    assert_eq!(
        p.b.ipsec.check_suitable(inbound(false, sb), home, cn),
        Ok(())
    );
}

/// a and b with BU/BA children, b's IKE_AUTH response rewritten to carry
/// the ports `ports` in TSi and TSr.
fn answered_with_ports(ports: (u16, u16)) -> (Pair, IkeSaId) {
    let (ca, cb) = mh_configs(Some(5..=6), Some(5..=6));
    let mut p = Pair::new(ca, cb, &[A], &[B]);
    let sa = p.a.ike.initiate(p.now, "b.example").unwrap();
    // IKE_SA_INIT both ways and the IKE_AUTH request.
    for _ in 0..3 {
        p.flush_with(&mut |_| true);
    }
    let mut d = p.wire.pop_front().unwrap();
    p.reseal(&mut d, |inner| {
        for x in inner.iter_mut() {
            if let IkePayload::TsI(t) | IkePayload::TsR(t) = x {
                (t[0].start_port, t[0].end_port) = ports;
            }
        }
    });
    p.deliver(d);
    p.run();
    (p, sa)
}

// REQ CN-5.5
#[test]
fn mh_types_outside_ours_are_refused_by_responder_and_initiator() {
    // b does only the return routability tests (HoTI … CoT).
    let (ca, cb) = mh_configs(Some(5..=6), Some(1..=4));
    let (p, sa, sb) = Pair::up(ca, cb);
    let resp = p.messages(0, ExchangeType::IKE_AUTH, true);
    assert!(has(&resp[0].2, NotifyType::TS_UNACCEPTABLE));
    assert!(p.sa(true, sa).children.is_empty() && p.sa(false, sb).children.is_empty());
    assert!(p.a.ipsec.sad.is_empty() && p.b.ipsec.sad.is_empty());
    // An answer within ours is taken: BU only.
    let (p, _) = answered_with_ports((0x0500, 0x05ff));
    assert_eq!(installed_mh_types(&p.a), [[5]; 2]);
    // One outside ours, HoTI, is deleted.
    let (p, sa) = answered_with_ports((0x0100, 0x01ff));
    assert!(p.sa(true, sa).children.is_empty());
    assert!(p.a.ipsec.sad.is_empty() && p.b.ipsec.sad.is_empty());
    let deletes = p.messages(0, ExchangeType::INFORMATIONAL, false);
    assert!(deletes[0]
        .2
        .iter()
        .any(|x| matches!(x, IkePayload::Delete { .. })));
}

// REQ IKE-BASE
#[test]
fn port_selectors_are_installed_and_icmp_type_ranges_refused() {
    let with = |protocol: u8, ports| {
        let (mut ca, mut cb) = configs(true);
        for c in [&mut ca, &mut cb] {
            let child = &mut c.peers[0].children[0];
            for ts in [&mut child.local_ts, &mut child.remote_ts] {
                (ts.protocol, ts.ports) = (protocol, ports);
            }
        }
        Pair::up(ca, cb)
    };
    // The echo port, as Pair::esp sends.
    let (mut p, sa, _) = with(17, PortRange::single(7));
    let s = &p.sa(true, sa).children[0].selector;
    assert_eq!(s.protocol, Some(IpProtocol::Udp));
    assert_eq!(
        (s.local_ports, s.remote_ports),
        (PortRange::single(7), PortRange::single(7))
    );
    assert!(s.mh_types.is_empty());
    assert!(p.esp(true, "2001:db8:a::1", "2001:db8:b::1").2);
    // Echo requests only: not installable, so not accepted.
    let (p, sa, _) = with(
        58,
        PortRange {
            low: 0x8000,
            high: 0x80ff,
        },
    );
    let resp = p.messages(0, ExchangeType::IKE_AUTH, true);
    assert!(has(&resp[0].2, NotifyType::TS_UNACCEPTABLE));
    assert!(p.sa(true, sa).children.is_empty());
}

// REQ IKE-BASE
#[test]
fn a_response_to_our_request_is_counted_and_a_replay_of_it_dropped() {
    // Found by engine_ike: an answered request left no counter moved.
    let (mut p, sa, _) = Pair::established(true);
    let before = p.a.ike.stats().responses_received;
    p.a.ike.liveness(p.now, sa).unwrap();
    p.collect();
    let request = p.wire.pop_front().unwrap();
    p.deliver(request);
    p.collect();
    let response = p.wire.pop_front().unwrap();
    p.deliver(response.clone());
    assert_eq!(p.a.ike.stats().responses_received, before + 1);
    assert!(p.a.ike.sa(sa).unwrap().idle());
    p.deliver(response);
    assert_eq!(p.a.ike.stats().responses_received, before + 1);
    assert_eq!(p.a.ike.stats().dropped(IkeDrop::MessageId), 1);
}

// ---------------------------------------------------------------- addrmgmt

// REQ AM-2.1a
#[test]
fn sas_are_found_by_spi_not_by_address() {
    let (mut p, sa, _) = Pair::established(true);
    p.a.ike.liveness(p.now, sa).unwrap();
    p.collect();
    let mut d = p.wire.pop_front().unwrap();
    // Same message from an address b never heard of: still answered.
    d.local = sock(A3, NATT_PORT);
    p.a.ike.local_addresses.push(v6(A3));
    let before = p.b.ike.stats().responses_sent;
    p.deliver(d.clone());
    p.collect();
    assert_eq!(p.b.ike.stats().responses_sent, before + 1);
    // From the right address with an unknown SPI: dropped.
    d.bytes[4 + 15] ^= 1; // the responder SPI, which is b's
    d.local = sock(A, NATT_PORT);
    p.deliver(d);
    assert_eq!(p.b.ike.stats().dropped(IkeDrop::UnknownSpi), 1);
}

// REQ AM-3.1a
#[test]
fn replies_go_back_where_the_request_came_from() {
    let (mut p, sa, _) = Pair::established(true);
    p.a.ike.local_addresses.push(v6(A3));
    p.a.ike.liveness(p.now, sa).unwrap();
    p.collect();
    let mut d = p.wire.pop_front().unwrap();
    d.local = sock(A3, 4321);
    p.deliver(d.clone());
    p.collect();
    let reply = p.wire.pop_front().unwrap();
    assert_eq!((reply.local, reply.remote), (d.remote, d.local));
    // A retransmission from yet another port gets the cached reply there.
    d.local = sock(A3, 999);
    p.deliver(d.clone());
    p.collect();
    let again = p.wire.pop_front().unwrap();
    assert_eq!(again.remote, d.local);
    assert_eq!(again.bytes, reply.bytes);
    assert_eq!(p.b.ike.stats().cached_replies, 1);
}

// REQ AM-2.1b
#[test]
fn initial_contact_deletes_old_sas_of_the_identity_wherever_they_were() {
    let (ca, cb) = configs(true);
    let mut p = Pair::new(ca.clone(), cb, &[A], &[B]);
    p.a.ike.initiate(p.now, "b.example").unwrap();
    p.run();
    let old = p.only_sa(false);
    // a reboots and comes back from another address.
    p.a = Node {
        ike: Ike::new(IkeConfig {
            seed: seed_from(9),
            ..ca
        }),
        ipsec: Ipsec::default(),
        events: Vec::new(),
    };
    p.a.ike.set_local_addresses(p.now, &[v6(A2)]);
    p.a.ike.initiate(p.now, "b.example").unwrap();
    p.run();
    let auth = p.messages(4, ExchangeType::IKE_AUTH, false);
    assert!(has(&auth[0].2, NotifyType::INITIAL_CONTACT));
    assert!(p.events(false).contains(&IkeEvent::Closed {
        sa: old,
        reason: CloseReason::InitialContact
    }));
    let now = p.only_sa(false);
    assert_eq!(p.sa(false, now).remote.ip(), v6(A2));
}

// REQ AM-2.1c
// REQ CN-5.3
#[test]
fn identities_are_names_and_an_address_identity_is_refused() {
    let (mut p, _, _) = {
        let (ca, cb) = configs(true);
        let mut p = Pair::new(ca, cb, &[A], &[B]);
        p.a.ike.initiate(p.now, "b.example").unwrap();
        // IKE_SA_INIT both ways, then rewrite IDi in the IKE_AUTH request.
        p.flush_with(&mut |_| true);
        p.flush_with(&mut |_| true);
        (p, (), ())
    };
    let auth = p.messages(0, ExchangeType::IKE_AUTH, false);
    let idi = auth[0].2.iter().find_map(|x| match x {
        IkePayload::IdI(id) => Some(id.clone()),
        _ => None,
    });
    assert_eq!(idi.unwrap().id_type, crate::wire::ike::Identification::FQDN);
    let mut d = p.wire.pop_front().unwrap();
    p.reseal(&mut d, |inner| {
        for x in inner.iter_mut() {
            if let IkePayload::IdI(id) = x {
                id.id_type = crate::wire::ike::Identification::IPV6_ADDR;
                id.data = Ipv6Addr::from(0x2001_0db8_0001_u128 << 80 | 0xa)
                    .octets()
                    .to_vec();
            }
        }
    });
    p.deliver(d);
    p.run();
    assert_eq!(p.b.ike.stats().dropped(IkeDrop::AuthenticationFailed), 1);
    assert!(p.b.ike.sa_ids().next().is_none());
    assert_eq!(
        Identity::from_payload(&crate::wire::ike::Identification {
            id_type: crate::wire::ike::Identification::IPV6_ADDR,
            data: vec![0; 16]
        }),
        None
    );
}

// REQ AM-2.1d
#[test]
fn nat_traversal_is_off_for_ipv6_by_default_and_on_for_ipv4() {
    let (p, sa, _) = Pair::established(true);
    let init = IkeRepr::parse(&p.sent[0].1.bytes, &cp()).unwrap();
    let types: Vec<u16> = init
        .payloads
        .iter()
        .filter_map(|x| match x {
            IkePayload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect();
    assert!(!types.contains(&NotifyType::NAT_DETECTION_SOURCE_IP.into()));
    assert!(!p.sa(true, sa).nat());
    // IPv4: NAT_D is sent, and a NAT that rewrites the source is seen.
    let (mut ca, mut cb) = configs(true);
    ca.peers[0].addresses = vec![SocketAddr::new(
        Ipv4Addr::new(192, 0, 2, 2).into(),
        IKE_PORT,
    )];
    cb.peers[0].addresses = vec![SocketAddr::new(
        Ipv4Addr::new(192, 0, 2, 1).into(),
        IKE_PORT,
    )];
    ca.mobility = Mobility::Off;
    cb.mobility = Mobility::Off;
    let mut p = Pair::new(ca, cb, &["192.0.2.1"], &["192.0.2.2"]);
    p.b.ike.cfg.nat_traversal = NatTraversal::Auto;
    let sa = p.a.ike.initiate(p.now, "b.example").unwrap();
    p.run();
    let init = IkeRepr::parse(&p.sent[0].1.bytes, &cp()).unwrap();
    assert!(init.payloads.iter().any(|x| matches!(x, IkePayload::Notify(n) if n.notify_type == u16::from(NotifyType::NAT_DETECTION_SOURCE_IP))));
    assert!(!p.sa(true, sa).nat());
    assert_eq!(
        p.sa(true, sa).local.port(),
        IKE_PORT,
        "no NAT, no MOBIKE: stays on 500"
    );
}

// ---------------------------------------------------------------- MOBIKE

fn mobike_pair(r: bool) -> (Pair, IkeSaId, IkeSaId) {
    let (mut ca, mut cb) = configs(true);
    ca.mobility = Mobility::Mobike { r_mobike: r };
    cb.mobility = Mobility::Mobike { r_mobike: r };
    let mut p = Pair::new(ca, cb, &[A, A2], &[B, B2]);
    let sa = p.a.ike.initiate(p.now, "b.example").unwrap();
    p.run();
    let sb = p.only_sa(false);
    (p, sa, sb)
}

fn notify_data(p: &[IkePayload], t: u16) -> Option<&Notify> {
    p.iter().find_map(|x| match x {
        IkePayload::Notify(n) if n.notify_type == t => Some(n),
        _ => None,
    })
}

// REQ MOBIKE
#[test]
fn mobike_moves_the_sas_in_place_after_a_probe_and_a_return_routability_check() {
    let (mut p, sa, sb) = mobike_pair(false);
    let auth = p.messages(0, ExchangeType::IKE_AUTH, false);
    assert!(has(&auth[0].2, NotifyType::MOBIKE_SUPPORTED));
    assert!(has(&auth[0].2, NotifyType::ADDITIONAL_IP6_ADDRESS));
    assert!(p.sa(true, sa).mobike && p.sa(false, sb).mobike);
    assert_eq!(p.sa(true, sa).local.port(), NATT_PORT, "IKE_AUTH on 4500");
    assert_eq!(p.sa(true, sa).peer_addresses, [v6(B), v6(B2)]);
    let spis = child_spis(&p, false, sb);
    assert!(p.esp(false, "2001:db8:b::1", "2001:db8:a::1").2);
    let start = p.sent.len();
    // a loses its address: probe, UPDATE, the responder's check, moved.
    p.a.ike.set_local_addresses(p.now, &[v6(A2)]);
    p.run();
    let reqs = p.messages(start, ExchangeType::INFORMATIONAL, false);
    assert!(reqs[0].2.is_empty(), "first an empty path probe");
    assert_eq!(reqs[0].0.local, sock(A2, NATT_PORT));
    let update = &reqs[1].2;
    assert!(has(update, NotifyType::UPDATE_SA_ADDRESSES) && has(update, NotifyType::COOKIE2));
    assert!(has(update, NotifyType::NO_ADDITIONAL_ADDRESSES));
    let check = &reqs[2];
    assert_eq!(
        check.0.remote,
        sock(A2, NATT_PORT),
        "the responder checks the new address"
    );
    assert!(has(&check.2, NotifyType::COOKIE2));
    assert_eq!(
        (p.sa(false, sb).local, p.sa(false, sb).remote),
        (sock(B, NATT_PORT), sock(A2, NATT_PORT))
    );
    assert_eq!(child_spis(&p, false, sb), spis, "moved, not rekeyed");
    let seq_before =
        p.b.ipsec
            .sad
            .get(p.sa(false, sb).children[0].outbound)
            .unwrap()
            .sequence();
    let (s, d, ok) = p.esp(false, "2001:db8:b::1", "2001:db8:a::1");
    assert_eq!((s, d, ok), (v6(B), v6(A2), true));
    let seq_after =
        p.b.ipsec
            .sad
            .get(p.sa(false, sb).children[0].outbound)
            .unwrap()
            .sequence();
    assert_eq!(seq_after, seq_before + 1, "sequence numbers carry on");
    assert!(p
        .events(true)
        .iter()
        .any(|e| matches!(e, IkeEvent::Moved { local, .. } if *local == sock(A2, NATT_PORT))));
}

// REQ MOBIKE
// REQ RM-4.2f
#[test]
fn children_wait_for_the_return_routability_answer() {
    let (mut p, _, sb) = mobike_pair(false);
    p.a.ike.set_local_addresses(p.now, &[v6(A2)]);
    // a never answers the responder's COOKIE2 check.
    let a2 = sock(A2, NATT_PORT);
    // a's only response from its new address is to that check.
    let mut block = |d: &mut Datagram| {
        !(d.local == a2
            && IkeRepr::parse(strip(&d.bytes), &cp()).is_ok_and(|r| r.header.response()))
    };
    p.run_with(&mut block);
    let c = &p.sa(false, sb).children[0];
    assert_eq!(
        c.addresses.peer,
        v6(A),
        "no traffic moves before the check answers"
    );
}

// ---------------------------------------------------------------- R-MOBIKE

// REQ RM-4.1a
// REQ RM-4.1b
#[test]
fn only_the_initiator_says_r_and_unknown_data_is_ignored() {
    let (p, sa, sb) = mobike_pair(true);
    let req = p.messages(0, ExchangeType::IKE_AUTH, false);
    let resp = p.messages(0, ExchangeType::IKE_AUTH, true);
    let t = NotifyType::MOBIKE_SUPPORTED.into();
    assert_eq!(notify_data(&req[0].2, t).unwrap().data, b"R");
    assert!(notify_data(&resp[0].2, t).unwrap().data.is_empty());
    assert!(p.sa(false, sb).peer_r_mobike && !p.sa(true, sa).peer_r_mobike);
    // Data the responder does not understand: MOBIKE without 'R'.
    let (ca, cb) = {
        let (mut ca, mut cb) = configs(true);
        ca.mobility = Mobility::Mobike { r_mobike: true };
        cb.mobility = Mobility::Mobike { r_mobike: true };
        (ca, cb)
    };
    let mut p = Pair::new(ca, cb, &[A], &[B]);
    p.a.ike.initiate(p.now, "b.example").unwrap();
    p.flush_with(&mut |_| true);
    p.flush_with(&mut |_| true);
    let mut d = p.wire.pop_front().unwrap();
    p.reseal(&mut d, |inner| {
        for x in inner.iter_mut() {
            if let IkePayload::Notify(n) = x {
                if n.notify_type == t {
                    n.data = b"XY".to_vec();
                }
            }
        }
    });
    p.deliver(d);
    p.run();
    let sb = p.only_sa(false);
    assert!(p.sa(false, sb).mobike && !p.sa(false, sb).peer_r_mobike);
}

// REQ RM-4.2a
#[test]
fn no_switch_request_to_an_initiator_without_r() {
    let (mut p, sa, sb) = mobike_pair(false);
    assert_eq!(
        p.b.ike.request_switch(p.now, sb, v6(B2)),
        Err(IkeError::SwitchNotAllowed)
    );
    // Nor from the initiator's side.
    let (mut q, qa, _) = mobike_pair(true);
    assert_eq!(
        q.a.ike.request_switch(q.now, qa, v6(A2)),
        Err(IkeError::SwitchNotAllowed)
    );
    let _ = (&mut p, sa);
    assert_eq!(p.sent.len(), 4, "nothing sent");
}

// REQ RM-4.2b
#[test]
fn a_switch_from_the_initiator_is_answered_empty_and_ignored() {
    let (mut p, sa, sb) = mobike_pair(true);
    let start = p.sent.len();
    p.a.ike.request(p.now, sa.0, Request::Switch(v6(A2)));
    p.run();
    let resp = p.messages(start, ExchangeType::INFORMATIONAL, true);
    assert_eq!(resp.len(), 1);
    assert!(resp[0].2.is_empty());
    assert_eq!(p.b.ike.stats().switches_ignored, 1);
    assert_eq!(p.sent.len(), start + 2, "no update follows");
    assert_eq!(p.sa(false, sb).remote, sock(A, NATT_PORT));
}

// REQ RM-4.2c
// REQ RM-4.2e
// REQ RM-4.2f
#[test]
fn switch_to_an_announced_address_runs_the_update_on_the_same_port() {
    let (mut p, sa, sb) = mobike_pair(true);
    p.a.ike.cfg.nat_traversal = NatTraversal::On;
    let start = p.sent.len();
    p.b.ike.request_switch(p.now, sb, v6(B2)).unwrap();
    // The SWITCH request, then its empty answer only.
    p.flush_with(&mut |_| true);
    p.step(&mut |_| true);
    let sw = p.messages(start, ExchangeType::INFORMATIONAL, false);
    let n = notify_data(&sw[0].2, cp().notify_switch_to_ip_address).unwrap();
    assert_eq!((n.protocol, n.spi.len(), n.data.len()), (0, 0, 16));
    assert_eq!(n.data, B2.parse::<Ipv6Addr>().unwrap().octets());
    // The UPDATE is on the wire, not yet delivered: b has not moved.
    assert_eq!(p.sa(false, sb).local, sock(B, NATT_PORT));
    let update = p.wire.front().unwrap().clone();
    assert_eq!(
        (update.local, update.remote),
        (sock(A, NATT_PORT), sock(B2, NATT_PORT))
    );
    let (_, inner) = p.opened(&update);
    for t in [
        NotifyType::UPDATE_SA_ADDRESSES,
        NotifyType::NAT_DETECTION_SOURCE_IP,
        NotifyType::NAT_DETECTION_DESTINATION_IP,
        NotifyType::COOKIE2,
    ] {
        assert!(has(&inner, t), "{t:?}");
    }
    p.run();
    assert_eq!(p.sa(false, sb).local, sock(B2, NATT_PORT));
    assert_eq!(p.sa(true, sa).remote, sock(B2, NATT_PORT));
    assert_eq!(p.sa(true, sa).children[0].addresses.peer, v6(B2));
}

// REQ RM-4.2d
#[test]
fn an_unannounced_switch_is_refused_unless_policy_allows() {
    let (mut p, sa, sb) = mobike_pair(true);
    let other = v6("2001:db8:9::b");
    p.b.ike.local_addresses.push(other);
    let start = p.sent.len();
    p.b.ike.request_switch(p.now, sb, other).unwrap();
    p.run();
    assert!(p
        .events(true)
        .contains(&IkeEvent::SwitchRefused { sa, to: other }));
    let reqs = p.messages(start, ExchangeType::INFORMATIONAL, false);
    assert_eq!(reqs.len(), 2, "the switch, then a liveness check");
    assert!(reqs[1].2.is_empty());
    assert_eq!(p.sa(true, sa).remote, sock(B, NATT_PORT));
    // Local policy may allow it.
    p.a.ike.cfg.switch_policy = vec!["2001:db8:9::/48".parse().unwrap()];
    p.b.ike.request_switch(p.now, sb, other).unwrap();
    p.run();
    assert_eq!(p.sa(true, sa).remote, SocketAddr::new(other, NATT_PORT));
}

// ---------------------------------------------------------------- alternate tunnel addresses

const TA_A: &str = "2001:db8:5::a";
const TA_B: &str = "2001:db8:6::b";

fn ta_configs(b_supports: bool, b_address: bool) -> (IkeConfig, IkeConfig) {
    let (mut ca, mut cb) = configs(true);
    ca.tunnel_addresses = true;
    cb.tunnel_addresses = b_supports;
    ca.peers[0].children[0].tunnel_address = Some(v6(TA_A));
    if b_address {
        cb.peers[0].children[0].tunnel_address = Some(v6(TA_B));
    }
    (ca, cb)
}

// REQ TA-3a
#[test]
fn tunnel_address_support_is_offered_and_echoed_in_ike_sa_init() {
    let t = cp().notify_different_tunnel_address_supported;
    for b_supports in [true, false] {
        let (ca, cb) = ta_configs(b_supports, true);
        let (p, sa, _) = Pair::up(ca, cb);
        let req = IkeRepr::parse(&p.sent[0].1.bytes, &cp()).unwrap();
        let resp = IkeRepr::parse(&p.sent[1].1.bytes, &cp()).unwrap();
        let carries = |r: &IkeRepr| {
            r.payloads
                .iter()
                .any(|x| matches!(x, IkePayload::Notify(n) if n.notify_type == t))
        };
        assert!(carries(&req));
        assert_eq!(carries(&resp), b_supports);
        assert_eq!(p.sa(true, sa).tunnel_addresses, b_supports);
        let auth = p.messages(0, ExchangeType::IKE_AUTH, false);
        assert_eq!(
            notify_data(&auth[0].2, cp().notify_tunnel_address).is_some(),
            b_supports
        );
    }
}

// REQ TA-3b
// REQ TA-5
// REQ TA-7
#[test]
fn tunnel_addresses_in_ike_auth_become_the_outer_esp_addresses() {
    let (ca, cb) = ta_configs(true, true);
    let (mut p, sa, sb) = Pair::up(ca, cb);
    let req = p.messages(0, ExchangeType::IKE_AUTH, false);
    let resp = p.messages(0, ExchangeType::IKE_AUTH, true);
    let t = cp().notify_tunnel_address;
    let n = notify_data(&req[0].2, t).unwrap();
    assert_eq!(n.protocol, 3, "sent with the text's Protocol ID");
    assert_eq!(TunnelAddress::from_notify(n).unwrap().0, v6(TA_A));
    assert_eq!(
        TunnelAddress::from_notify(notify_data(&resp[0].2, t).unwrap())
            .unwrap()
            .0,
        v6(TA_B)
    );
    let c = &p.sa(true, sa).children[0];
    assert_eq!((c.addresses.local, c.addresses.peer), (v6(TA_A), v6(TA_B)));
    assert_eq!(
        p.esp(true, "2001:db8:a::1", "2001:db8:b::1"),
        (v6(TA_A), v6(TA_B), true)
    );
    // IKE stays on the IKE addresses.
    assert_eq!(
        (p.sa(false, sb).local.ip(), p.sa(false, sb).remote.ip()),
        (v6(B), v6(A))
    );
    // A side that gives none uses its IKE address.
    let (ca, cb) = ta_configs(true, false);
    let (mut p, _, _) = Pair::up(ca, cb);
    assert_eq!(
        p.esp(true, "2001:db8:a::1", "2001:db8:b::1"),
        (v6(TA_A), v6(B), true)
    );
    // Protocol ID 0, as the draft's figure has it, is accepted too.
    let (ca, cb) = ta_configs(true, false);
    let mut p = Pair::new(ca, cb, &[A], &[B]);
    p.a.ike.initiate(p.now, "b.example").unwrap();
    p.flush_with(&mut |_| true);
    p.flush_with(&mut |_| true);
    let mut d = p.wire.pop_front().unwrap();
    p.reseal(&mut d, |inner| {
        for x in inner.iter_mut() {
            if let IkePayload::Notify(n) = x {
                if n.notify_type == t {
                    n.protocol = 0;
                }
            }
        }
    });
    p.deliver(d);
    p.run();
    let sb = p.only_sa(false);
    assert_eq!(p.sa(false, sb).children[0].addresses.peer, v6(TA_A));
}

// REQ TA-4
#[test]
fn create_child_sa_carries_tunnel_addresses_per_child() {
    let (ca, cb) = ta_configs(true, true);
    let (mut p, sa, _) = Pair::up(ca, cb);
    let start = p.sent.len();
    p.a.ike.cfg.peers[0].children[0].tunnel_address = Some(v6("2001:db8:5::a2"));
    p.a.ike.create_child(p.now, sa, "net", &p.a.ipsec).unwrap();
    p.run();
    let req = p.messages(start, ExchangeType::CREATE_CHILD_SA, false);
    let n = notify_data(&req[0].2, cp().notify_tunnel_address).unwrap();
    assert_eq!(
        TunnelAddress::from_notify(n).unwrap().0,
        v6("2001:db8:5::a2")
    );
    let c = &p.sa(true, sa).children[1];
    assert_eq!(
        (c.addresses.local, c.addresses.peer),
        (v6("2001:db8:5::a2"), v6(TA_B))
    );
}

// REQ TA-6
#[test]
fn behind_a_nat_the_tunnel_stays_on_the_ike_addresses() {
    let (mut ca, mut cb) = ta_configs(true, true);
    let (ia, ib, outside) = ("192.0.2.1", "192.0.2.2", "192.0.2.9");
    ca.peers[0].addresses = vec![SocketAddr::new(v6(ib), IKE_PORT)];
    ca.peers[0].children[0].tunnel_address = Some(v6("192.0.2.65"));
    cb.peers[0].children[0].tunnel_address = Some(v6("192.0.2.66"));
    for c in [&mut ca, &mut cb] {
        c.peers[0].children[0].local_ts = TsSpec::DYNAMIC;
        c.peers[0].children[0].remote_ts = TsSpec::DYNAMIC;
    }
    // b sees a at the NAT's address, a's selector names its own.
    cb.peers[0].children[0].remote_ts = TsSpec::prefix("192.0.2.0/28".parse().unwrap());
    let mut p = Pair::new(ca, cb, &[ia], &[ib]);
    let sa = p.a.ike.initiate(p.now, "b.example").unwrap();
    // A NAT in front of a: its source becomes 192.0.2.9, port + 10000.
    let mut nat = |d: &mut Datagram| {
        if d.local.ip() == v6(ia) {
            d.local = SocketAddr::new(v6(outside), d.local.port() + 10000);
        } else if d.remote.ip() == v6(outside) {
            d.remote = SocketAddr::new(v6(ia), d.remote.port() - 10000);
        }
        true
    };
    p.run_with(&mut nat);
    let sb = p.only_sa(false);
    assert!(p.sa(true, sa).nat() && p.sa(false, sb).nat());
    let auth = p.messages(0, ExchangeType::IKE_AUTH, false);
    assert!(notify_data(&auth[0].2, cp().notify_tunnel_address).is_none());
    let c = &p.sa(false, sb).children[0];
    assert_eq!((c.addresses.local, c.addresses.peer), (v6(ib), v6(outside)));
    assert!(p.events(false).iter().any(|e| matches!(e, IkeEvent::ChildUp { child, .. } if child.udp_encap == Some((NATT_PORT, NATT_PORT + 10000)))));
}

// ---------------------------------------------------------------- addrmgmt (continued)

const HOA: &str = "2001:db8:7::100";

/// addrmgmt on both sides; a has a tunnel child and, if `signalling`, a
/// transport child for its home address (MH only), the MIPv6 case.
fn am_pair(signalling: bool, a_addrs: &[&str]) -> (Pair, IkeSaId, IkeSaId) {
    let (mut ca, mut cb) = configs(true);
    ca.mobility = Mobility::AddrMgmt;
    cb.mobility = Mobility::AddrMgmt;
    if signalling {
        let mip = |local: TsSpec, remote: TsSpec| {
            let mut c = ChildConfig::new("mip", Mode::Transport, local, remote);
            c.local_ts.protocol = 135;
            c.remote_ts.protocol = 135;
            c
        };
        ca.peers[0]
            .children
            .push(mip(TsSpec::prefix(HOA.parse().unwrap()), TsSpec::DYNAMIC));
        cb.peers[0]
            .children
            .push(mip(TsSpec::DYNAMIC, TsSpec::prefix(HOA.parse().unwrap())));
    }
    let mut p = Pair::new(ca, cb, a_addrs, &[B, B2]);
    let sa = p.a.ike.initiate(p.now, "b.example").unwrap();
    p.run();
    if signalling {
        p.a.ike.create_child(p.now, sa, "mip", &p.a.ipsec).unwrap();
        p.run();
    }
    let sb = p.only_sa(false);
    (p, sa, sb)
}

fn pau(p: &[IkePayload]) -> Vec<(bool, u8, usize)> {
    p.iter()
        .filter_map(|x| match x {
            IkePayload::PeerAddressUpdate {
                all,
                protocol,
                spis,
                ..
            } => Some((*all, *protocol, spis.len())),
            _ => None,
        })
        .collect()
}

// REQ AM-2.2
// REQ AM-3.2b
// REQ AM-3.3c
#[test]
fn peer_address_sets_come_with_ike_auth_in_preference_order() {
    let (mut ca, cb) = configs(true);
    ca.mobility = Mobility::AddrMgmt;
    let mut cb = cb;
    cb.mobility = Mobility::AddrMgmt;
    // b is tried at its preferred address first.
    ca.peers[0].addresses = vec![sock(B, IKE_PORT), sock(B2, IKE_PORT)];
    let mut p = Pair::new(ca, cb, &[A, A2], &[B, B2]);
    let sa = p.a.ike.initiate(p.now, "b.example").unwrap();
    p.run();
    assert_eq!(p.sent[0].1.remote, sock(B, IKE_PORT));
    let sb = p.only_sa(false);
    // The IKE SA's addresses are IKE_SA_INIT's.
    assert_eq!(p.sa(false, sb).remote.ip(), v6(A));
    assert_eq!(p.sa(true, sa).peer_addresses, [v6(B), v6(B2)]);
    assert_eq!(p.sa(false, sb).peer_addresses, [v6(A), v6(A2)]);
    let auth = p.messages(0, ExchangeType::IKE_AUTH, false);
    let sources: Vec<IpAddr> = auth[0]
        .2
        .iter()
        .filter_map(|x| match x {
            IkePayload::Notify(n) if n.notify_type == cp().notify_peer_address_source => {
                Some(PeerAddress::from_notify(n).unwrap().addr)
            }
            _ => None,
        })
        .collect();
    assert_eq!(sources, [v6(A), v6(A2)], "the address in use first");
    // A repeated address reduces the set to one.
    let mut sa_b = established_sa();
    sa_b.peer_addresses = vec![v6(A), v6(A2)];
    let s = |a: &str| {
        IkePayload::Notify(
            PeerAddress {
                port: 500,
                addr: v6(a),
            }
            .to_notify(true, &cp()),
        )
    };
    addrmgmt::learn_peer_address_set(&mut sa_b, &[s(A2), s(A2)], &cp());
    assert_eq!(sa_b.peer_addresses, [v6(A2)]);
}

// REQ AM-3.3d
#[test]
fn mixed_notification_order_gives_association_hints() {
    let mut sa = established_sa();
    let n = |src: bool, a: &str| {
        IkePayload::Notify(
            PeerAddress {
                port: 500,
                addr: v6(a),
            }
            .to_notify(src, &cp()),
        )
    };
    let (s1, s2, s3) = ("2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3");
    let (d1, d2, d3) = ("2001:db8:2::1", "2001:db8:2::2", "2001:db8:2::3");
    let msg = [
        n(true, s1),
        n(true, s2),
        n(false, d1),
        n(true, s3),
        n(false, d2),
        n(false, d3),
    ];
    addrmgmt::learn_peer_address_set(&mut sa, &msg, &cp());
    assert_eq!(
        sa.address_hints,
        vec![
            (vec![v6(s1), v6(s2)], vec![v6(d1)]),
            (vec![v6(s3)], vec![v6(d2), v6(d3)]),
        ]
    );
    assert_eq!(sa.peer_addresses, [v6(s1), v6(s2), v6(s3)]);
}

// REQ AM-3.4a
// REQ AM-3.4c
// REQ AM-3.4d
// REQ AM-2.3b
// REQ AM-3.3b
// REQ AM-C.1
// REQ AM-4
#[test]
fn an_update_moves_the_ike_sa_and_tunnel_sas_after_a_check_and_leaves_the_signalling_sa() {
    assert!(
        IkeConfig::new(Identity::Fqdn("x".into()), 0).return_routability,
        "on by default"
    );
    let (mut p, sa, sb) = am_pair(true, &[A, HOA]);
    assert_eq!(p.sa(false, sb).children.len(), 2);
    let tunnel_before = p.sa(false, sb).children[0].clone();
    let start = p.sent.len();
    p.a.ike.set_local_addresses(p.now, &[v6(A2), v6(HOA)]);
    p.run();
    // Update from the new address, then b's check, then the reply.
    let order: Vec<(bool, bool, SocketAddr)> = p.sent[start..]
        .iter()
        .map(|(_, d)| {
            let r = IkeRepr::parse(strip(&d.bytes), &cp()).unwrap();
            (r.header.initiator(), r.header.response(), d.local)
        })
        .collect();
    assert_eq!(
        order,
        [
            (true, false, sock(A2, IKE_PORT)),
            (false, false, sock(B, IKE_PORT)),
            (true, true, sock(A2, IKE_PORT)),
            (false, true, sock(B, IKE_PORT)),
        ]
    );
    let update = p.messages(start, ExchangeType::INFORMATIONAL, false);
    assert_eq!(
        pau(&update[0].2),
        [(true, 0, 0)],
        "All flag, protocol 0, no SPI"
    );
    let ns = notify_types(&update[0].2);
    assert!(
        ns.contains(&cp().notify_peer_address_source)
            && ns.contains(&cp().notify_peer_address_destination)
    );
    let reply = p.messages(start, ExchangeType::INFORMATIONAL, true);
    assert_eq!(pau(&reply[1].2), [(true, 0, 0)]);
    let b = p.sa(false, sb);
    assert_eq!(b.remote, sock(A2, IKE_PORT));
    let tunnel = &b.children[0];
    assert_eq!(
        (tunnel.spi_in, tunnel.addresses.peer),
        (tunnel_before.spi_in, v6(A2))
    );
    let (ib, ob) = (tunnel.inbound, tunnel.outbound);
    assert_eq!(
        p.b.ipsec.sad.get(ib).unwrap().addresses().peer,
        v6(A2),
        "both SAs of the pair"
    );
    assert_eq!(p.b.ipsec.sad.get(ob).unwrap().addresses().peer, v6(A2));
    let mip = &b.children[1];
    assert_eq!(
        (mip.mode, mip.addresses.peer),
        (Mode::Transport, v6(HOA)),
        "the home-address SA stays"
    );
    assert_eq!(p.sa(true, sa).local, sock(A2, IKE_PORT));
    assert_eq!(
        p.esp(true, "2001:db8:a::1", "2001:db8:b::1"),
        (v6(A2), v6(B), true)
    );
}

// REQ AM-3.2c
#[test]
fn proxy_transport_selectors_need_the_peer_address_set_or_policy() {
    // The home address is not in a's address set: refused by default.
    let (p, sa, _) = am_pair(true, &[A]);
    assert_eq!(p.sa(true, sa).children.len(), 1);
    let resp = p.messages(4, ExchangeType::CREATE_CHILD_SA, true);
    assert!(has(&resp[0].2, NotifyType::TS_UNACCEPTABLE));
    // In a's set (announced in IKE_AUTH): permitted.
    let (p, sa, _) = am_pair(true, &[A, HOA]);
    assert_eq!(p.sa(true, sa).children.len(), 2);
}

// REQ AM-2.3a
// REQ AM-3.2a
// REQ AM-3.3f
#[test]
fn a_newer_move_cancels_a_pending_update_and_retransmissions_use_the_new_address() {
    let (mut p, sa, sb) = am_pair(false, &[A]);
    let start = p.sent.len();
    p.a.ike.liveness(p.now, sa).unwrap();
    p.collect();
    p.wire.clear(); // lost
    p.a.ike.set_local_addresses(p.now, &[v6(A2)]);
    p.a.ike.set_local_addresses(p.now, &[v6(A3)]);
    p.run();
    let reqs = p.messages(start, ExchangeType::INFORMATIONAL, false);
    assert_eq!(
        reqs[1].0.local,
        sock(A3, IKE_PORT),
        "the retransmission comes from the new address"
    );
    assert!(reqs[1].2.is_empty());
    let updates: Vec<_> = reqs.iter().filter(|r| !pau(&r.2).is_empty()).collect();
    assert_eq!(
        updates.len(),
        1,
        "the update for the older move was cancelled"
    );
    assert_eq!(updates[0].0.local, sock(A3, IKE_PORT));
    assert_eq!(p.sa(false, sb).remote, sock(A3, IKE_PORT));
}

// REQ AM-2.1d
#[test]
fn a_transient_pseudo_nat_does_not_move_the_sa() {
    // draft-dupont-ikev2-addrmgmt §2.1.1: an on-path attacker rewrites the
    // source of one authenticated request, hoping the responder "detects a
    // NAT" and moves the SA (and its traffic) to the attacker's address.
    // With NAT traversal off on IPv6, and addresses changed only by
    // authenticated updates after the return-routability check, nothing
    // moves: the answer goes back where the request came from, the SA
    // stays.
    for addrmgmt in [false, true] {
        let (mut p, sa, sb) = if addrmgmt {
            am_pair(false, &[A])
        } else {
            Pair::established(true)
        };
        let before = p.sa(false, sb).remote;
        p.a.ike.liveness(p.now, sa).unwrap();
        p.step(&mut |d| {
            d.local.set_ip(A3.parse().unwrap());
            true
        });
        assert_eq!(p.sa(false, sb).remote, before, "{addrmgmt}");
        let moved =
            p.b.events
                .iter()
                .any(|e| matches!(e, IkeEvent::Moved { .. }));
        assert!(!moved, "{addrmgmt}: {:?}", p.b.events);
    }
}

// REQ AM-3.3a
#[test]
fn peer_address_notifications_outside_sk_are_refused() {
    let (mut p, sa, sb) = am_pair(false, &[A]);
    p.a.ike.liveness(p.now, sa).unwrap();
    p.collect();
    let mut d = p.wire.pop_front().unwrap();
    let mut r = IkeRepr::parse(strip(&d.bytes), &cp()).unwrap();
    r.payloads.insert(
        0,
        IkePayload::Notify(
            PeerAddress {
                port: 500,
                addr: v6(A3),
            }
            .to_notify(true, &cp()),
        ),
    );
    d.bytes.clear();
    r.emit(&mut d.bytes, &cp());
    p.deliver(d);
    assert_eq!(p.b.ike.stats().dropped(IkeDrop::Unprotected), 1);
    assert_eq!(p.sa(false, sb).remote, sock(A, IKE_PORT));
}

// REQ AM-3.3e
#[test]
fn mismatched_notifications_are_ignored_warned_and_counted() {
    let (mut p, sa, sb) = am_pair(false, &[A]);
    let mid = p.sa(false, sb).peer_message_id;
    let start = p.sent.len();
    // A new request whose source notification lies.
    p.a.ike.request(
        p.now,
        sa.0,
        Request::AddressUpdate {
            path: (sock(A, IKE_PORT), sock(B, IKE_PORT)),
            all: true,
            spis: Vec::new(),
        },
    );
    p.collect();
    let mut d = p.wire.pop_front().unwrap();
    p.reseal(&mut d, |inner| {
        for x in inner.iter_mut() {
            if let IkePayload::Notify(n) = x {
                if n.notify_type == cp().notify_peer_address_source {
                    *n = PeerAddress {
                        port: 500,
                        addr: v6(A3),
                    }
                    .to_notify(true, &cp());
                }
            }
        }
    });
    p.deliver(d.clone());
    p.collect();
    assert_eq!(p.b.ike.stats().address_mismatches, 1);
    assert_eq!(
        p.sa(false, sb).peer_message_id,
        mid + 1,
        "the counter advances"
    );
    let warn = p.messages(start, ExchangeType::INFORMATIONAL, true);
    assert_eq!(
        notify_types(&warn[0].2),
        [cp().notify_peer_address_mismatch]
    );
    // Its retransmission gets the cached reply.
    p.deliver(d);
    assert_eq!(p.b.ike.stats().cached_replies, 1);
    p.run();
    // A reply that lies makes the request go again.
    let before = p.a.ike.stats().retransmits;
    p.a.ike.liveness(p.now, sa).unwrap();
    let mut lied = false;
    let b_sa = sb.0;
    let mut tamper = |d: &mut Datagram| {
        let r = IkeRepr::parse(strip(&d.bytes), &cp()).unwrap();
        !(r.header.response() && r.header.spi_r == b_sa && !lied && {
            lied = true;
            true
        })
    };
    // Drop-and-tamper stand-in: the first reply is replaced by one with a
    // wrong destination notification.
    p.collect();
    p.step(&mut |_| true);
    p.collect();
    let mut reply = p.wire.pop_front().unwrap();
    p.reseal(&mut reply, |inner| {
        inner.push(IkePayload::Notify(
            PeerAddress {
                port: 500,
                addr: v6(A3),
            }
            .to_notify(false, &cp()),
        ));
    });
    p.deliver(reply);
    assert_eq!(p.a.ike.stats().retransmits, before + 1);
    p.run_with(&mut tamper);
    assert!(
        p.a.ike.sa(sa).unwrap().inflight().is_none(),
        "answered in the end"
    );
}

// REQ AM-3.4b
#[test]
fn updates_are_processed_in_order_and_a_replayed_one_is_refused() {
    let (mut p, _, sb) = am_pair(false, &[A]);
    let start = p.sent.len();
    p.a.ike.set_local_addresses(p.now, &[v6(A2)]);
    p.run();
    let first = p.messages(start, ExchangeType::INFORMATIONAL, false)[0]
        .0
        .clone();
    p.a.ike.set_local_addresses(p.now, &[v6(A3), v6(A2)]);
    p.a.ike.set_local_addresses(p.now, &[v6(A3)]);
    p.run();
    assert_eq!(p.sa(false, sb).remote, sock(A3, IKE_PORT));
    // The first update replayed: an old message ID, dropped.
    let drops = p.b.ike.stats().dropped(IkeDrop::MessageId);
    p.deliver(first);
    assert_eq!(p.b.ike.stats().dropped(IkeDrop::MessageId), drops + 1);
    assert_eq!(p.sa(false, sb).remote, sock(A3, IKE_PORT));
}

// REQ AM-C.2
#[test]
fn a_per_sa_update_is_answered_with_the_paired_sas() {
    let (mut p, sa, sb) = am_pair(false, &[A, A2]);
    let child = p.sa(true, sa).children[0].clone();
    let start = p.sent.len();
    p.a.ike.request(
        p.now,
        sa.0,
        Request::AddressUpdate {
            path: (sock(A2, IKE_PORT), sock(B, IKE_PORT)),
            all: false,
            spis: vec![child.spi_in],
        },
    );
    p.run();
    let req = p.messages(start, ExchangeType::INFORMATIONAL, false);
    assert_eq!(
        pau(&req[0].2),
        [(false, 1, 1)],
        "ESP is protocol 1 in Annex C"
    );
    let reply = p.messages(start, ExchangeType::INFORMATIONAL, true);
    let spis: Vec<Vec<u8>> = reply
        .last()
        .unwrap()
        .2
        .iter()
        .filter_map(|x| match x {
            IkePayload::PeerAddressUpdate { spis, .. } => Some(spis.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        spis,
        [child.spi_out.to_be_bytes().to_vec()],
        "b names its own inbound SPI of the pair"
    );
    assert_eq!(p.sa(false, sb).children[0].addresses.peer, v6(A2));
}

// REQ AM-D.1
#[test]
fn the_data_plane_asks_and_the_sa_and_its_siblings_follow_after_a_check() {
    let (mut p, sa, sb) = am_pair(false, &[A, A2]);
    p.a.ike.create_child(p.now, sa, "net", &p.a.ipsec).unwrap();
    p.run();
    // a's ESP now leaves from A2 (its data plane moved first).
    // The newest child is first in the SPD.
    let out_a = p.sa(true, sa).children[1].outbound;
    p.a.ipsec
        .sad
        .update_addresses(
            out_a,
            AddressPair {
                local: v6(A2),
                peer: v6(B),
            },
        )
        .unwrap();
    let (_, _, opened) = p.esp(true, "2001:db8:a::1", "2001:db8:b::1");
    assert!(opened);
    let now = p.now;
    let mut asked = 0;
    while let Some(e) = p.b.ipsec.poll_event() {
        if matches!(e, IpsecEvent::AddressUpdate(_)) {
            asked += 1;
        }
        p.b.ike.handle_ipsec_event(now, e, &mut p.b.ipsec);
    }
    assert_eq!(asked, 1);
    p.run();
    let b = p.sa(false, sb);
    assert_eq!(b.remote.ip(), v6(A2));
    assert!(
        b.children.iter().all(|c| c.addresses.peer == v6(A2)),
        "siblings too"
    );
}

// Bad input never panics: every message of a full run, mutated, into both
// engines; each is dropped and counted, or answered.
#[test]
fn mutated_messages_never_panic_and_are_counted() {
    let (mut p, sa, _) = mobike_pair(true);
    p.a.ike.rekey_ike(p.now, sa).unwrap();
    p.run();
    let samples: Vec<Datagram> = p.sent.iter().map(|(_, d)| d.clone()).collect();
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(7);
    let received = p.a.ike.stats().received + p.b.ike.stats().received;
    let mut n = 0;
    for d in &samples {
        for _ in 0..200 {
            let mut m = d.clone();
            let i = (rng.next_u32() as usize) % m.bytes.len();
            m.bytes[i] ^= 1 << (rng.next_u32() % 8);
            if rng.next_u32() % 4 == 0 {
                m.bytes.truncate(i);
            }
            p.deliver(m);
            n += 1;
        }
    }
    p.collect();
    assert_eq!(
        p.a.ike.stats().received + p.b.ike.stats().received,
        received + n
    );
    let drops: u64 = [&p.a, &p.b]
        .iter()
        .flat_map(|x| x.ike.stats().drops().map(|d| d.1))
        .sum();
    assert!(drops > n / 2, "{drops} of {n} counted as drops");
}

/// The owner index matches the children, and no proposed SPI is held.
fn indices_in_step(n: &Node) {
    let mut owners = hashbrown::HashMap::new();
    for id in n.ike.sa_ids() {
        for c in &n.ike.sa(id).unwrap().children {
            owners.insert(c.inbound, (id.0, c.spi_in));
            owners.insert(c.outbound, (id.0, c.spi_in));
        }
    }
    assert_eq!(n.ike.child_owners, owners);
    assert!(n.ike.offered_spis.is_empty());
}

// The hash indices follow the children through creation, a rekey, an IKE
// rekey that hands them over, a soft expiry, and deletion.
#[test]
fn the_child_index_follows_children_through_rekeys_and_deletes() {
    let (mut p, sa, _) = Pair::established(true);
    p.a.ike.create_child(p.now, sa, "net", &p.a.ipsec).unwrap();
    p.run();
    let old = child_spis(&p, true, sa)[0].0;
    p.a.ike.rekey_child(p.now, sa, old, &p.a.ipsec).unwrap();
    p.run();
    p.a.ike.rekey_ike(p.now, sa).unwrap();
    p.run();
    for n in [&p.a, &p.b] {
        indices_in_step(n);
    }
    let na = p.only_sa(true);
    let child = p.sa(true, na).children[0].clone();
    let now = p.now;
    let soft = IpsecEvent::SoftExpired {
        sa: child.outbound,
        spi: child.spi_out,
    };
    p.a.ike.handle_ipsec_event(now, soft, &mut p.a.ipsec);
    p.run();
    assert!(!child_spis(&p, true, na).contains(&(child.spi_in, child.spi_out)));
    assert_eq!(
        child_spis(&p, true, na).len(),
        2,
        "rekeyed through the index"
    );
    for n in [&p.a, &p.b] {
        indices_in_step(n);
    }
    p.a.ike.delete(p.now, na).unwrap();
    p.run();
    for n in [&p.a, &p.b] {
        indices_in_step(n);
        assert!(n.ike.child_owners.is_empty());
    }
}
