//! The engine-level fuzz targets' harness: the demo topology in the
//! simulator (static keys, or IKEv2), with the mobile node away from home,
//! and a sequence of [`Step`]s into one engine, the victim. Packets come
//! arbitrary or replayed from what the links carried so far (a sealed BU,
//! an IKE_SA_INIT, an RA...) with a few bytes changed, so the fuzzer starts
//! deep. After every step [`World::check`] holds the invariants.
//!
//! Each input starts from a copy of a world built once per setup, at 0 or
//! with the mobile node registered: building and warming one is what
//! costs, not the steps.

use std::cell::RefCell;
use std::collections::HashMap;

use common::ike::Mobility;
use common::nd::NdConfig;
use common::node::{Engine, Iface, RouteOptimisation};
use common::time::{Duration, Instant};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use testbed::sim::{LinkId, NodeId, Role};
use testbed::topology::{build, Keying, Setup, Topology, HOA};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Arbitrary)]
pub enum Victim {
    Mn,
    Ha,
    Cn,
}

/// One input: how the world is set up, then what happens to the victim.
#[derive(Debug, Arbitrary)]
pub struct Input {
    pub mode: Mode,
    /// From the world at 0 (DAD and the first registrations ahead) or at
    /// [`REGISTERED`], the mobile node registered with both peers.
    pub registered: bool,
    pub steps: Vec<Step>,
}

/// When the mobile node is registered with the home agent and the
/// correspondent, IKE or not.
pub const REGISTERED: Duration = Duration::from_millis(8000);

/// Virtual time one input may pass: retransmissions back off for longer,
/// but a crafted BU's lifetime can be a few seconds, and an input that runs
/// for minutes of idle links costs a hundred short ones.
pub const RUN_BUDGET: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Arbitrary)]
pub enum Mode {
    Ipsec,
    ReturnRoutability,
    Triangular,
    None,
}

#[derive(Debug, Arbitrary)]
pub enum Step {
    /// Virtual time passes (never backwards): the nodes' own traffic, up
    /// to what is left of [`RUN_BUDGET`].
    Run { ms: u16 },
    /// A packet some link carried, changed, to the victim's interface.
    Replay {
        pick: u16,
        iface: u8,
        edits: Vec<Edit>,
    },
    /// Arbitrary bytes to the victim's interface.
    Raw { iface: u8, bytes: Vec<u8> },
    /// A packet, replayed and changed or not, from the victim's own stack.
    Stack { pick: u16, edits: Vec<Edit> },
    /// Carrier lost on, or the interface moved to, one of the four links.
    Move { iface: u8, to: Option<u8> },
}

/// XOR `xor` into byte `at` (modulo the length), or cut the packet there.
#[derive(Debug, Arbitrary)]
pub struct Edit {
    pub at: u16,
    pub xor: u8,
    pub truncate: bool,
}

/// What a packet can leave behind when it is dropped or accepted: a packet
/// that leaves none was ignored without a trace, which the engines must not
/// do. Entry counters (IPsec's bypassed and opened, ND's and IKE's
/// received) count every packet whatever becomes of it, so they are left
/// out: a packet must be counted as dropped, delivered or forwarded, or be
/// answered, or change what the engine reports.
#[derive(Debug, PartialEq, Eq)]
struct Counters {
    node: common::node::NodeStats,
    ipsec_drops: Vec<(common::ipsec::IpsecDrop, u64)>,
    nd: Vec<Option<common::nd::NdStats>>,
    ike: Option<common::ike::IkeStats>,
    /// Frames on the links and packets waiting for a neighbour: answers.
    frames: usize,
    queued: usize,
}

#[derive(Clone)]
pub struct World {
    t: Topology,
    victim: NodeId,
    links: [LinkId; 4],
    /// IKE SAs the configuration can make (one per peer, two while one
    /// rekeys): anything beyond that is half-open, which COOKIEs bound.
    legit_ike_sas: usize,
    /// What is left of [`RUN_BUDGET`].
    budget: Duration,
}

impl World {
    pub fn new(victim: Victim, mode: Mode, ike: bool) -> Self {
        let mode = match mode {
            Mode::Ipsec => RouteOptimisation::Ipsec,
            Mode::ReturnRoutability => RouteOptimisation::ReturnRoutability,
            Mode::Triangular => RouteOptimisation::Triangular,
            Mode::None => RouteOptimisation::None,
        };
        let mut setup = Setup::new(1, mode);
        if ike {
            setup.keying = Keying::Ike {
                mobility: Mobility::Mobike { r_mobike: false },
                payload: true,
            };
        }
        let mut t = build(&setup);
        // Away from home from the start: DAD, the home registration and the
        // correspondent's signalling happen in the steps' virtual time.
        t.sim.move_at(Instant::ZERO, t.mn, 0, None);
        t.sim.move_at(Instant::ZERO, t.mn, 1, Some(t.access_a));
        let victim = match victim {
            Victim::Mn => t.mn,
            Victim::Ha => t.ha,
            Victim::Cn => t.cn,
        };
        let links = [t.home, t.cn_link, t.access_a, t.access_b];
        let legit_ike_sas = t
            .sim
            .engine(victim)
            .and_then(Engine::ike)
            .map_or(0, |i| 2 * i.config().peers.len().max(1));
        World {
            t,
            victim,
            links,
            legit_ike_sas,
            budget: RUN_BUDGET,
        }
    }

    fn engine(&self) -> &dyn Engine {
        self.t
            .sim
            .engine(self.victim)
            .expect("the victim is a host")
    }

    fn counters(&self) -> Counters {
        let e = self.engine();
        let nd = |i| {
            e.interface(i).map(|n| common::nd::NdStats {
                received: 0,
                ..*n.stats()
            })
        };
        let queued = (0..3)
            .filter_map(|i| e.interface(i))
            .flat_map(|n| n.neighbors().map(|(_, x)| x.queued()))
            .sum();
        Counters {
            node: e.stats().clone(),
            ipsec_drops: e.ipsec().stats().drops().collect(),
            nd: (0..3).map(nd).collect(),
            ike: e.ike().map(|i| {
                let mut s = i.stats().clone();
                s.received = 0;
                s
            }),
            frames: self
                .links
                .iter()
                .map(|l| self.t.sim.captured(*l).len())
                .sum(),
            queued,
        }
    }

    /// Packet `pick` of everything captured so far, with `edits` applied.
    fn replayed(&self, pick: u16, edits: &[Edit]) -> Option<Vec<u8>> {
        let all: Vec<&[u8]> = self
            .links
            .iter()
            .flat_map(|l| self.t.sim.captured(*l).iter().map(|(_, b)| &b[..]))
            .collect();
        let mut p = all.get(usize::from(pick) % all.len().max(1))?.to_vec();
        for e in edits {
            if p.is_empty() {
                break;
            }
            let at = usize::from(e.at) % p.len();
            if e.truncate {
                p.truncate(at);
            } else {
                p[at] ^= e.xor;
            }
        }
        Some(p)
    }

    /// Hands `bytes` to the victim and checks that it left a trace.
    fn feed(&mut self, iface: Iface, bytes: &[u8]) {
        let before = self.counters();
        let mut events = 0;
        self.t.sim.act(self.victim, |role, now| {
            let e: &mut dyn Engine = match role {
                Role::Mn(e) => e.as_mut(),
                Role::Ha(e) => e.as_mut(),
                Role::Cn(e) => e.as_mut(),
            };
            e.handle_packet(now, iface, None, bytes);
            // Events are a trace too (the simulator only logs them).
            while e.poll_event().is_some() {
                events += 1;
            }
        });
        assert!(
            events > 0 || before != self.counters(),
            "a packet on {iface:?} left no trace: {bytes:02x?}"
        );
    }

    pub fn step(&mut self, s: &Step) {
        let ifaces = if self.victim == self.t.mn { 3 } else { 1 };
        match s {
            Step::Run { ms } => {
                let d = Duration::from_millis(u64::from(*ms)).min(self.budget);
                self.budget -= d;
                self.t.sim.run_for(d);
            }
            Step::Replay { pick, iface, edits } => {
                if let Some(p) = self.replayed(*pick, edits) {
                    self.feed(Iface::Link(iface % ifaces), &p);
                }
            }
            Step::Raw { iface, bytes } => self.feed(Iface::Link(iface % ifaces), bytes),
            Step::Stack { pick, edits } => {
                if let Some(p) = self.replayed(*pick, edits) {
                    self.feed(Iface::Stack, &p);
                }
            }
            Step::Move { iface, to } => {
                let to = to.map(|l| self.links[usize::from(l) % 4]);
                let now = self.t.sim.now();
                self.t.sim.move_at(now, self.victim, iface % ifaces, to);
                self.t.sim.run_until(now);
            }
        }
        self.check();
    }

    /// State stays bounded whatever arrives.
    fn check(&self) {
        let e = self.engine();
        let nd = NdConfig::default();
        for i in 0..3 {
            if let Some(n) = e.interface(i) {
                let (count, queued) = n
                    .neighbors()
                    .fold((0, 0), |(c, q), (_, x)| (c + 1, q + x.queued()));
                assert!(count <= nd.max_neighbors, "{count} neighbours");
                assert!(queued <= count * nd.queue_per_neighbor, "{queued} queued");
            }
        }
        if let Some(ike) = e.ike() {
            let sas = ike.sa_ids().count();
            let bound = self.legit_ike_sas + ike.config().cookie_threshold;
            assert!(sas <= bound, "{sas} IKE SAs, bound {bound}");
        }
        // Only the one mobile node can register, with the HA or the CN.
        let status = e.status(self.t.sim.now());
        assert!(
            status.bindings.iter().all(|b| b.home == HOA),
            "{:?}",
            status.bindings
        );
    }
}

thread_local! {
    static WORLDS: RefCell<HashMap<(Victim, Mode, bool, bool), World>> = RefCell::default();
}

/// A copy of the world `input` starts from.
fn world(victim: Victim, ike: bool, input: &Input) -> World {
    let key = (victim, input.mode, ike, input.registered);
    WORLDS.with_borrow_mut(|worlds| {
        worlds
            .entry(key)
            .or_insert_with(|| {
                let mut w = World::new(victim, input.mode, ike);
                if input.registered {
                    w.t.sim.run_for(REGISTERED);
                }
                w
            })
            .clone()
    })
}

/// The body of each engine target.
pub fn run(victim: Victim, ike: bool, input: &Input) {
    let mut w = world(victim, ike, input);
    // Bounded work per input: the fuzzer's time goes to variety.
    for s in input.steps.iter().take(64) {
        w.step(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input's steps pass at most [`RUN_BUDGET`] of virtual time.
    #[test]
    fn an_input_runs_for_at_most_its_budget() {
        let mut w = World::new(Victim::Cn, Mode::Ipsec, false);
        let start = w.t.sim.now();
        for _ in 0..3 {
            w.step(&Step::Run { ms: 20_000 });
        }
        assert_eq!(w.t.sim.now() - start, RUN_BUDGET);
    }

    /// Every input starts from a copy: it must run on as the original
    /// would, frame for frame, and leave the original as it was.
    #[test]
    fn a_copied_world_runs_as_the_original() {
        for ike in [false, true] {
            let mut original = World::new(Victim::Ha, Mode::Ipsec, ike);
            original.t.sim.run_for(Duration::from_millis(3000));
            let mut copy = original.clone();
            let before = original.counters().frames;
            copy.t.sim.run_for(REGISTERED);
            assert_eq!(original.counters().frames, before, "ike={ike}");
            original.t.sim.run_for(REGISTERED);
            for l in original.links {
                assert_eq!(original.t.sim.captured(l), copy.t.sim.captured(l), "ike={ike}");
            }
            assert!(original.counters().frames > before, "ike={ike}");
        }
    }

    /// The harness gets deep: after 8 s the mobile node is registered with
    /// the home agent and the correspondent, and every frame the links
    /// carried, replayed as is, leaves a trace at each victim.
    #[test]
    fn registrations_happen_and_replays_leave_a_trace() {
        for (victim, ike) in [
            (Victim::Ha, false),
            (Victim::Cn, false),
            (Victim::Mn, false),
            (Victim::Ha, true),
        ] {
            let input = Input {
                mode: Mode::ReturnRoutability,
                registered: true,
                steps: vec![],
            };
            let mut w = world(victim, ike, &input);
            let frames = w.counters().frames;
            for pick in 0..frames as u16 {
                w.step(&Step::Replay {
                    pick,
                    iface: 0,
                    edits: vec![],
                });
            }
            let bindings = w.engine().status(w.t.sim.now()).bindings.len();
            let want = usize::from(!matches!(victim, Victim::Mn));
            assert_eq!(bindings, want, "{victim:?} ike={ike}");
        }
    }
}
