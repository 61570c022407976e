//! Handoffs over lossy links: the demo's topology with every link losing
//! a share of its frames, two moves 60 s apart so the back-off (1 s
//! doubling to 32 s) has room, and what they cost against no loss.

use common::time::{Duration, Instant};

use crate::sim::{Flow, Path};
use crate::topology::{build, Setup, CN, HOA};

/// Virtual seconds between the moves, and after the last.
const WINDOW: u64 = 60;

/// One run's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct LossRun {
    /// Link up → first route-optimised packet from the correspondent, for
    /// the moves to access A and then B; `None` if none came in the window.
    pub handoffs: [Option<Duration>; 2],
    /// Mobility Header messages the mobile node sent, retransmissions
    /// included.
    pub mn_signalling: u64,
}

/// `setup` with every link losing `loss` of its frames from the start;
/// a flow each way every 10 ms from 1 s; the node moves to
/// access A at 2 s and to B 60 s later.
pub fn run(setup: &Setup, loss: f64) -> LossRun {
    let mut t = build(setup);
    for link in [t.home, t.cn_link, t.access_a, t.access_b] {
        let mut p = t.sim.link_params(link);
        p.loss = loss;
        t.sim.set_link_params(link, p);
    }
    let at = |s: u64| Instant::from_secs(s);
    let end = at(2 + 2 * WINDOW);
    let down = t.sim.flow(
        at(1),
        Flow {
            from: t.cn,
            src: CN,
            dst: HOA,
            interval: Duration::from_millis(10),
            until: end,
        },
    );
    t.sim.flow(
        at(1),
        Flow {
            from: t.mn,
            src: HOA,
            dst: CN,
            interval: Duration::from_millis(10),
            until: end,
        },
    );
    let moves = [(at(2), t.access_a), (at(2 + WINDOW), t.access_b)];
    for (when, to) in moves {
        t.move_mn(when, Some(to));
    }
    t.sim.run_until(end);
    let handoffs = moves.map(|(when, link)| {
        let up = t
            .sim
            .link_ups
            .iter()
            .find(|(u, p, l)| p.node == t.mn && *l == link && *u >= when)
            .map(|(u, _, _)| *u)?;
        let until = up + Duration::from_secs(WINDOW);
        t.sim
            .arrivals
            .iter()
            .find(|a| {
                a.flow == down && a.at >= up && a.at < until && a.path == Path::RouteOptimised
            })
            .map(|a| a.at - up)
    });
    let mn_signalling = t
        .sim
        .engine(t.mn)
        .map_or(0, |e| e.stats().signalling_messages);
    LossRun {
        handoffs,
        mn_signalling,
    }
}

/// Percentile `p` (0..=100) of sorted `v`.
pub fn percentile(v: &[Duration], p: usize) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let i = (p * (v.len() - 1) + 50) / 100;
    v.get(i).copied()
}
