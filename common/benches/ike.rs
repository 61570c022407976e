//! IKEv2 handshakes per second, the responder's share of them, and the CPU
//! cost and message count of a MOBIKE move, next to the bare X25519 work of
//! a handshake, measured in the same run.
//!
//! - `handshake/{psk,ed25519}_aes256gcm`: IKE_SA_INIT and IKE_AUTH between
//!   two fresh engines, through to one tunnel CHILD_SA installed in each
//!   side's `Ipsec`; both sides' work.
//! - `handshake/{psk,ed25519}_aes256gcm_responder`: the same handshakes, of
//!   which only the responder's `handle_datagram` calls are timed: the
//!   handshakes per second one core of a responder can take.
//! - `handshake/x25519_only`: two X25519 key generations and one DH per
//!   side, the part of a handshake no implementation avoids (a responder
//!   does half of it). The responder benches also print the X25519 share
//!   of a whole handshake and of the responder's part from sums timed
//!   back to back with each handshake, which the load of a shared machine
//!   skews less than a ratio of two benches run seconds apart.
//! - `mobike/move`: the initiator's address goes (`set_local_addresses`),
//!   it probes the new path, sends UPDATE_SA_ADDRESSES, the responder moves
//!   the IKE SA, checks return routability and then moves the CHILD_SA in
//!   place. Both sides' work; the messages are printed once.
//!
//! Every handshake uses new engine seeds (so new SPIs, nonces and DH keys)
//! and a fresh responder, so that what is timed is one handshake and the
//! responder holds no SA from an earlier one. Engines and configs are
//! built outside the timed region.
//!
//! ```text
//! cargo bench -p common --bench ike
//! ```

#![allow(clippy::unwrap_used, reason = "bench setup")]

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration as WallDuration;

use common::ike::crypto::{Dh, Encr};
use common::ike::{
    ChildConfig, Datagram, Identity, Ike, IkeConfig, IkeSaId, IkeState, PeerAuth, PeerConfig,
    TsSpec, IKE_PORT, NATT_PORT,
};
use common::ipsec::{Ipsec, Mode};
use common::time::Instant;
use common::wire::{CodePoints, IkeRepr};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The initiator's address, and the one it moves to.
const A: &str = "2001:db8:1::a";
const A2: &str = "2001:db8:2::a";
/// The responder's.
const B: &str = "2001:db8:1::b";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `a.example` (initiator) and `b.example` (responder), AES-256-GCM only
/// for IKE and ESP, a tunnel child between 2001:db8:a::/48 and
/// 2001:db8:b::/48; PSK or raw Ed25519 keys.
fn configs(psk: bool) -> (IkeConfig, IkeConfig) {
    let ka = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let kb = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let make = |me: &str,
                them: &str,
                (mine, theirs): (&str, &str),
                addr: &str,
                key: &ed25519_dalek::SigningKey,
                their_key: &ed25519_dalek::SigningKey| {
        let mut c = IkeConfig::new(Identity::Fqdn(me.into()), 0);
        c.signing_key = Some(key.clone());
        c.proposals = vec![Encr::Aes256Gcm16];
        let mut child = ChildConfig::new(
            "net",
            Mode::Tunnel,
            TsSpec::prefix(mine.parse().unwrap()),
            TsSpec::prefix(theirs.parse().unwrap()),
        );
        child.proposals = vec![Encr::Aes256Gcm16];
        c.peers.push(PeerConfig {
            name: them.into(),
            id: Identity::Fqdn(them.into()),
            auth: if psk {
                PeerAuth::Psk(b"bench secret".to_vec())
            } else {
                PeerAuth::Ed25519(their_key.verifying_key())
            },
            addresses: vec![SocketAddr::new(ip(addr), IKE_PORT)],
            children: vec![child],
            local: None,
        });
        c
    };
    (
        make(
            "a.example",
            "b.example",
            ("2001:db8:a::/48", "2001:db8:b::/48"),
            B,
            &ka,
            &kb,
        ),
        make(
            "b.example",
            "a.example",
            ("2001:db8:b::/48", "2001:db8:a::/48"),
            A,
            &kb,
            &ka,
        ),
    )
}

struct Node {
    ike: Ike,
    ipsec: Ipsec,
}

impl Node {
    fn new(cfg: IkeConfig, addr: &str, now: Instant) -> Self {
        let mut ike = Ike::new(cfg);
        ike.set_local_addresses(now, &[ip(addr)]);
        Node {
            ike,
            ipsec: Ipsec::default(),
        }
    }

    fn only_sa(&self) -> IkeSaId {
        let mut ids = self.ike.sa_ids();
        let id = ids.next().unwrap();
        assert!(ids.next().is_none(), "one IKE SA");
        id
    }
}

/// What one exchange put on the wire.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Traffic {
    messages: u32,
    /// Waves of datagrams each caused by the one before: one-way trips.
    flights: u32,
    /// Sent to an address neither side has.
    lost: u32,
}

/// Two engines back to back; `a` initiates, `b` responds.
struct Pair {
    now: Instant,
    a: Node,
    b: Node,
}

impl Pair {
    /// Fresh engines seeded from `seed`, not yet talking.
    fn new(ca: &IkeConfig, cb: &IkeConfig, seed: u64) -> Self {
        let now = Instant::from_secs(1);
        let seeded = |c: &IkeConfig, s| IkeConfig {
            seed: common::ike::seed_from(s),
            ..c.clone()
        };
        Pair {
            now,
            a: Node::new(seeded(ca, 2 * seed), A, now),
            b: Node::new(seeded(cb, 2 * seed + 1), B, now),
        }
    }

    /// Delivers, in flights, until the wire is quiet; adds the time of
    /// `b`'s `handle_datagram` calls to `responder`, if given. `trace`
    /// prints every datagram.
    fn run(&mut self, mut responder: Option<&mut WallDuration>, trace: bool) -> Traffic {
        let now = self.now;
        let mut t = Traffic::default();
        let mut wire = Vec::new();
        loop {
            for (name, n) in [("a", &mut self.a), ("b", &mut self.b)] {
                while let Some(d) = n.ike.poll_transmit() {
                    if trace {
                        describe(t.flights + 1, name, &d);
                    }
                    wire.push(d);
                }
                while let Some(e) = n.ike.poll_event() {
                    black_box(e);
                }
            }
            if wire.is_empty() {
                return t;
            }
            t.flights += 1;
            for d in wire.drain(..) {
                t.messages += 1;
                // The receiver sees the addresses the other way round.
                let rx = Datagram {
                    local: d.remote,
                    remote: d.local,
                    bytes: d.bytes,
                };
                let to = rx.local.ip();
                if self.a.ike.local_addresses().contains(&to) {
                    self.a.ike.handle_datagram(now, rx, &mut self.a.ipsec);
                } else if self.b.ike.local_addresses().contains(&to) {
                    let b = &mut self.b;
                    match responder.as_deref_mut() {
                        Some(total) => {
                            *total += timed(|| b.ike.handle_datagram(now, rx, &mut b.ipsec)).1;
                        }
                        None => b.ike.handle_datagram(now, rx, &mut b.ipsec),
                    }
                } else {
                    t.lost += 1;
                }
            }
        }
    }

    /// `a` initiates and the handshake runs to completion.
    fn handshake(&mut self, responder: Option<&mut WallDuration>) -> Traffic {
        self.a.ike.initiate(self.now, "b.example").unwrap();
        let t = self.run(responder, false);
        assert_eq!(
            t,
            Traffic {
                messages: 4,
                flights: 4,
                lost: 0
            }
        );
        self.check_up();
        t
    }

    /// One established IKE SA on each side, with its child in the SAD.
    fn check_up(&self) {
        for n in [&self.a, &self.b] {
            let sa = n.ike.sa(n.only_sa()).unwrap();
            assert_eq!(sa.state(), IkeState::Established);
            assert_eq!(sa.children.len(), 1);
            assert_eq!(n.ipsec.sad.len(), 2, "one CHILD_SA pair installed");
        }
    }

    /// Both sides' IKE SA and child run between `to` and B.
    fn check_moved(&self, to: IpAddr) {
        let (sa, sb) = (self.a.only_sa(), self.b.only_sa());
        let (sa, sb) = (self.a.ike.sa(sa).unwrap(), self.b.ike.sa(sb).unwrap());
        assert_eq!((sa.local.ip(), sb.remote.ip()), (to, to), "IKE SA moved");
        assert_eq!(
            (
                sa.children[0].addresses.local,
                sb.children[0].addresses.peer
            ),
            (to, to),
            "CHILD_SA moved"
        );
        assert_eq!((self.a.ipsec.sad.len(), self.b.ipsec.sad.len()), (2, 2));
    }
}

/// Runs `f`, and how long it took.
fn timed<R>(f: impl FnOnce() -> R) -> (R, WallDuration) {
    #[expect(clippy::disallowed_methods, reason = "a bench measures wall time")]
    let start = std::time::Instant::now();
    let r = f();
    (r, start.elapsed())
}

/// Interleaved sums, for the X25519 shares of a handshake.
#[derive(Default)]
struct Shares {
    /// Both sides' work for whole handshakes.
    whole: WallDuration,
    /// The responder's.
    responder: WallDuration,
    /// One side's X25519 work, as many times.
    side: WallDuration,
    /// Both sides'.
    both: WallDuration,
}

impl Shares {
    fn print(&self, name: &str) {
        let pc = |a: WallDuration, b: WallDuration| 100.0 * a.as_secs_f64() / b.as_secs_f64();
        eprintln!(
            "handshake/{name}: X25519 is {:.1}% of a whole handshake, {:.1}% of the \
             responder's part, which is {:.1}% of the whole (interleaved sums)",
            pc(self.both, self.whole),
            pc(self.side, self.responder),
            pc(self.responder, self.whole),
        );
    }
}

/// The X25519 work of one side of a handshake: a key pair (its public
/// value computed, as for the KE payload) and the DH with the peer's.
fn x25519_side(rng: &mut ChaCha20Rng, peer: &[u8; 32]) -> [u8; 32] {
    let dh = Dh::generate(rng);
    black_box(dh.public());
    dh.shared(peer).unwrap()
}

/// One line per datagram: flight, sender, path, exchange and message ID.
fn describe(flight: u32, from: &str, d: &Datagram) {
    // Past the non-ESP marker on the NAT-T port.
    let natt = d.local.port() == NATT_PORT || d.remote.port() == NATT_PORT;
    let bytes = if natt { &d.bytes[4..] } else { &d.bytes[..] };
    let h = IkeRepr::parse(bytes, &CodePoints::default())
        .unwrap()
        .header;
    eprintln!(
        "  flight {flight}: {from} {} -> {}  {} {} #{}",
        d.local,
        d.remote,
        h.exchange,
        if h.response() { "response" } else { "request" },
        h.message_id,
    );
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    // A new seed for every handshake of every bench.
    let mut seed = 1u64;
    let mut rng = ChaCha20Rng::seed_from_u64(0x7832_3535_3139);
    let peer = Dh::generate(&mut rng).public();
    for (name, psk) in [("psk_aes256gcm", true), ("ed25519_aes256gcm", false)] {
        let (ca, cb) = configs(psk);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    seed += 1;
                    Pair::new(&ca, &cb, seed)
                },
                |mut p| {
                    p.handshake(None);
                    p
                },
                BatchSize::SmallInput,
            )
        });
        // Besides, the whole handshake and both sides' X25519 work are
        // timed with each handshake, outside what criterion sees, for
        // shares that the load of a shared machine skews less: the parts
        // of a share run back to back under the same load.
        let mut shares = Shares::default();
        g.bench_function(format!("{name}_responder"), |b| {
            b.iter_custom(|iters| {
                let mut total = WallDuration::ZERO;
                for _ in 0..iters {
                    seed += 1;
                    let mut p = Pair::new(&ca, &cb, seed);
                    let mut responder = WallDuration::ZERO;
                    shares.whole += timed(|| p.handshake(Some(&mut responder))).1;
                    shares.responder += responder;
                    total += responder;
                    let side = timed(|| black_box(x25519_side(&mut rng, &peer))).1;
                    let other = timed(|| black_box(x25519_side(&mut rng, &peer))).1;
                    shares.side += side;
                    shares.both += side + other;
                }
                total
            })
        });
        shares.print(name);
    }
    g.bench_function("x25519_only", |b| {
        b.iter(|| {
            let (i, r) = (Dh::generate(&mut rng), Dh::generate(&mut rng));
            let (pi, pr) = (i.public(), r.public());
            black_box((i.shared(&pr).unwrap(), r.shared(&pi).unwrap()))
        })
    });
    g.finish();
}

fn mobike(c: &mut Criterion) {
    let (ca, cb) = configs(true);
    // Once, with the messages.
    let mut p = Pair::new(&ca, &cb, 0);
    p.handshake(None);
    eprintln!("mobike/move: the initiator loses {A} and has {A2}");
    p.a.ike.set_local_addresses(p.now, &[ip(A2)]);
    let t = p.run(None, true);
    p.check_moved(ip(A2));
    eprintln!(
        "mobike/move: {} messages in {} flights ({} round trips), {} lost",
        t.messages,
        t.flights,
        f64::from(t.flights) / 2.0,
        t.lost
    );
    // Timed: the same pair moves back and forth, one move per iteration.
    let mut g = c.benchmark_group("mobike");
    g.throughput(Throughput::Elements(1));
    let (home, away) = (ip(A), ip(A2));
    let mut on_a2 = true;
    g.bench_function("move", |b| {
        b.iter(|| {
            let to = if on_a2 { home } else { away };
            p.a.ike.set_local_addresses(p.now, &[to]);
            let moved = p.run(None, false);
            assert_eq!(moved, t);
            p.check_moved(to);
            on_a2 = !on_a2;
        })
    });
    g.finish();
}

criterion_group!(benches, handshake, mobike);
criterion_main!(benches);
