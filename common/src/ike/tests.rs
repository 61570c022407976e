//! Pair tests: two engines back to back on a virtual wire, with tampering
//! in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::VecDeque;

use super::crypto::Encr;
use super::*;
use crate::ipsec::{Inbound, Outbound, Prefix};
use crate::time::Duration;
use crate::wire::ike::{
    IkeHeader, IkePayload, MobikeSupported, Notify, NotifyType, PeerAddress, TunnelAddress,
};
use crate::wire::packet::{PacketRepr, UdpPayload, UpperRepr};
use crate::wire::{CodePoints, UdpRepr};

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
        let mut node = |c| Node {
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

    fn node(&mut self, a: bool) -> &mut Node {
        if a {
            &mut self.a
        } else {
            &mut self.b
        }
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
        let now = self.now;
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
        let mut out = Vec::new();
        let (s, r) = if from_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        let Ok(Outbound::Protected { .. }) = s.ipsec.outbound(now, &p, &mut out) else {
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

fn child_spis(p: &Pair, a: bool, sa: IkeSaId) -> Vec<(u32, u32)> {
    p.sa(a, sa)
        .children
        .iter()
        .map(|c| (c.spi_in, c.spi_out))
        .collect()
}

// ---------------------------------------------------------------- IKE-BASE

// REQ IKE-BASE
#[test]
fn psk_aes_gcm_handshake_installs_a_working_tunnel_child() {
    let (mut p, sa, sb) = Pair::established(true);
    assert_eq!(p.sa(true, sa).state, IkeState::Established);
    assert_eq!(p.sa(false, sb).state, IkeState::Established);
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
        .all(|s| p.sa(false, s).state == IkeState::Established));
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
    assert!(p.events(true).iter().any(|e| *e
        == IkeEvent::Closed {
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
        ike: Ike::new(IkeConfig { seed: 9, ..ca }),
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
