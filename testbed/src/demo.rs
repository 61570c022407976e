//! The demo: on the [`topology`](crate::topology), a mobile node leaves
//! home, moves on and comes back, with return routability, with IPsec
//! route optimisation on static keys, and with IPsec route optimisation
//! keyed by IKEv2; what each handoff cost, and the reports.

use common::node::RouteOptimisation;
use common::time::{Duration, Instant};

use crate::sim::{Flow, LinkId, Path};
use crate::topology::{build, Keying, Setup, Topology, CN, HOA};

/// One handoff, measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Handoff {
    pub at: Instant,
    pub to: String,
    /// Link up to the first correspondent packet over the path the node
    /// should end on (route optimised away, direct at home).
    pub latency: Option<Duration>,
    /// Flow packets (both ways) sent from the move until the next one that
    /// never arrived.
    pub lost: u64,
}

#[derive(Clone)]
pub struct Run {
    /// What the run is called in reports and file names ([`name`]).
    pub name: &'static str,
    pub mode: RouteOptimisation,
    pub handoffs: Vec<Handoff>,
    pub signalling_messages: u64,
    pub signalling_bytes: u64,
    /// IKE messages (every node, retransmissions included) and their UDP
    /// payload bytes.
    pub ike_messages: u64,
    pub ike_bytes: u64,
    /// Median ping RTT per phase: at home, through the home agent, route
    /// optimised.
    pub ping_home: Option<Duration>,
    pub ping_via_ha: Option<Duration>,
    pub ping_optimised: Option<Duration>,
    pub timeline: Vec<(Instant, String)>,
}

impl Run {
    /// Mean latency of the handoffs that end away from home.
    pub fn away_latency(&self) -> Option<Duration> {
        let away: Vec<Duration> = self
            .handoffs
            .iter()
            .filter(|h| h.to != "home")
            .filter_map(|h| h.latency)
            .collect();
        let n = u32::try_from(away.len()).ok().filter(|n| *n > 0)?;
        Some(away.iter().sum::<Duration>() / n)
    }

    pub fn away_lost(&self) -> u64 {
        self.handoffs
            .iter()
            .filter(|h| h.to != "home")
            .map(|h| h.lost)
            .sum()
    }
}

/// The scenario: home until 2 s, access A at 2 s, access B at 5 s, home at
/// 8 s, end at 10 s; UDP both ways every millisecond and a ping every
/// 50 ms between the home address and the correspondent.
pub fn run(setup: &Setup) -> (Run, Topology) {
    let mut t = build(setup);
    let s = |x: f64| Instant::from_micros((x * 1e6) as u64);
    let end = s(10.0);
    let ms = Duration::from_millis(1);
    let down = t.sim.flow(
        s(1.0),
        Flow {
            from: t.cn,
            src: CN,
            dst: HOA,
            interval: ms,
            until: s(9.5),
        },
    );
    let up = t.sim.flow(
        s(1.0),
        Flow {
            from: t.mn,
            src: HOA,
            dst: CN,
            interval: ms,
            until: s(9.5),
        },
    );
    t.sim
        .ping(s(0.5), t.mn, HOA, CN, Duration::from_millis(50), s(9.5));
    let moves = [(2.0, t.access_a), (5.0, t.access_b), (8.0, t.home)];
    for (at, to) in moves {
        t.move_mn(s(at), Some(to));
    }
    t.sim.run_until(end);

    let sim = &t.sim;
    let ups: Vec<(Instant, LinkId)> = sim
        .link_ups
        .iter()
        .filter(|(_, p, _)| p.node == t.mn)
        .map(|(at, _, l)| (*at, *l))
        .collect();
    let mut handoffs = vec![];
    for (i, (at, link)) in ups.iter().enumerate() {
        let next = ups.get(i + 1).map_or(end, |u| u.0);
        let to = sim.link_name(*link).to_string();
        let want = if *link == t.home {
            Path::Direct
        } else {
            Path::RouteOptimised
        };
        let want = if setup.mode == RouteOptimisation::None && *link != t.home {
            Path::Tunnelled
        } else {
            want
        };
        let latency = sim
            .arrivals
            .iter()
            .filter(|a| a.flow == down && a.at >= *at && a.path == want)
            .map(|a| a.at.saturating_duration_since(*at))
            .next();
        let mut lost = 0;
        for f in [down, up] {
            let sent_in: Vec<u64> = (0..sim.flow_sent(f)).collect();
            let got: std::collections::HashSet<u64> = sim
                .arrivals
                .iter()
                .filter(|a| a.flow == f)
                .map(|a| a.seq)
                .collect();
            // Flow packets go every millisecond from 1 s: seq n left at 1 s + n ms.
            lost += sent_in
                .iter()
                .filter(|seq| {
                    let sent = s(1.0) + ms * u32::try_from(**seq).unwrap_or(u32::MAX);
                    sent >= *at && sent < next && !got.contains(seq)
                })
                .count() as u64;
        }
        handoffs.push(Handoff {
            at: *at,
            to,
            latency,
            lost,
        });
    }
    let median = |f: &dyn Fn(Instant, Path) -> bool| {
        let mut v: Vec<Duration> = sim
            .pings
            .iter()
            .filter(|p| f(p.sent, p.path))
            .map(|p| p.rtt)
            .collect();
        v.sort();
        v.get(v.len() / 2).copied()
    };
    let ping_home = median(&|at, _| at < s(2.0));
    let ping_via_ha = median(&|at, p| at >= s(2.0) && at < s(8.0) && p == Path::Tunnelled);
    let ping_optimised = median(&|at, p| at >= s(2.0) && at < s(8.0) && p == Path::RouteOptimised);
    let (mut messages, mut bytes, mut ike_messages, mut ike_bytes) = (0, 0, 0, 0);
    for n in [t.mn, t.ha, t.cn] {
        if let Some(e) = sim.engine(n) {
            messages += e.stats().signalling_messages;
            bytes += e.stats().signalling_bytes;
            ike_messages += e.stats().ike_messages;
            ike_bytes += e.stats().ike_bytes;
        }
    }
    let timeline = sim
        .trace
        .iter()
        .filter(|l| {
            // Movement is marked by the handoff lines; routine DAD is noise.
            !l.what.contains(" leaves its link")
                && !l.what.contains(" moves to ")
                && !l.what.contains("passed DAD")
                && l.node != "sim"
        })
        .map(|l| (l.at, format!("{:<6} {}", l.node, l.what)))
        .collect();
    let run = Run {
        name: name(setup),
        mode: setup.mode,
        handoffs,
        signalling_messages: messages,
        signalling_bytes: bytes,
        ike_messages,
        ike_bytes,
        ping_home,
        ping_via_ha,
        ping_optimised,
        timeline,
    };
    (run, t)
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// The demo's runs: return routability, IPsec route optimisation on static
/// keys, and keyed by IKEv2 with MOBIKE.
pub fn setups(seed: u64) -> [Setup; 3] {
    let mut ike = Setup::new(seed, RouteOptimisation::Ipsec);
    ike.keying = Keying::Ike {
        mobility: common::ike::Mobility::Mobike { r_mobike: false },
        payload: true,
    };
    [
        Setup::new(seed, RouteOptimisation::ReturnRoutability),
        Setup::new(seed, RouteOptimisation::Ipsec),
        ike,
    ]
}

/// A run's name: its mode, and `-ike` when IKEv2 keys it.
pub fn name(setup: &Setup) -> &'static str {
    match (setup.mode, setup.keying) {
        (RouteOptimisation::Ipsec, Keying::Ike { .. }) => "ipsec-ike",
        (RouteOptimisation::None, Keying::Ike { .. }) => "tunnel-ike",
        (m, _) => mode_name(m),
    }
}

pub fn mode_name(m: RouteOptimisation) -> &'static str {
    match m {
        RouteOptimisation::Ipsec => "ipsec",
        RouteOptimisation::ReturnRoutability => "rr",
        RouteOptimisation::Triangular => "triangular",
        RouteOptimisation::None => "tunnel",
    }
}

/// The demo's `--json` object.
pub fn report_json(setup: &Setup, runs: &[Run], pcaps: &[std::path::PathBuf]) -> serde_json::Value {
    let (mn_cn, mn_ha, via_ha) = setup.rtts();
    let runs: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let latency = r.away_latency().map(ms);
            serde_json::json!({
                "mode": r.name,
                "handoff_latency_ms": latency,
                "handoff_latency_rtt": latency.map(|l| l / ms(mn_cn)),
                "packets_lost": r.away_lost(),
                "signalling_messages": r.signalling_messages,
                "signalling_bytes": r.signalling_bytes,
                "ike_messages": r.ike_messages,
                "ike_bytes": r.ike_bytes,
            })
        })
        .collect();
    serde_json::json!({
        "seed": setup.seed,
        "rtt_ms": { "mn_cn": ms(mn_cn), "mn_ha": ms(mn_ha), "via_ha": ms(via_ha) },
        "runs": runs,
        "pcaps": pcaps.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    })
}

/// The demo's timeline, for people.
pub fn report_text(setup: &Setup, runs: &[Run], pcaps: &[std::path::PathBuf]) -> String {
    use std::fmt::Write;
    let (mn_cn, mn_ha, via_ha) = setup.rtts();
    let mut o = String::new();
    let opt = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1} ms", ms(d)));
    let _ = writeln!(
        o,
        "Mobile IPv6 demo, seed {}: home agent {} ms away, correspondent {} ms, access links {} ms",
        setup.seed,
        ms(setup.home_delay),
        ms(setup.cn_delay),
        ms(setup.access_delay)
    );
    let _ = writeln!(
        o,
        "Round trips: MN-CN {:.1} ms, MN-HA {:.1} ms, MN-HA-CN-HA-MN {:.1} ms\n",
        ms(mn_cn),
        ms(mn_ha),
        ms(via_ha)
    );
    for r in runs {
        let title = match r.name {
            "ipsec" => "IPsec route optimisation on static keys (draft-dupont-mipv6-cn-ipsec)",
            "ipsec-ike" => {
                "IPsec route optimisation keyed by IKEv2 (RFC 4877 with the home agent, \
                 over the home address with the correspondent, MOBIKE)"
            }
            "rr" => "Return routability (RFC 6275 baseline)",
            other => other,
        };
        let _ = writeln!(o, "== {title} ==");
        let _ = writeln!(
            o,
            "   ping at home {}, through the home agent {}, route optimised {}",
            opt(r.ping_home),
            opt(r.ping_via_ha),
            opt(r.ping_optimised)
        );
        let mut h = r.handoffs.iter().peekable();
        for (at, line) in &r.timeline {
            while let Some(x) = h.peek() {
                if x.at > *at {
                    break;
                }
                let _ = writeln!(
                    o,
                    "{:>9.3} s  -- moves to {} --",
                    x.at.total_micros() as f64 / 1e6,
                    x.to
                );
                h.next();
            }
            let _ = writeln!(o, "{:>9.3} s  {line}", at.total_micros() as f64 / 1e6);
        }
        for x in &r.handoffs {
            let lat = x.latency.map_or("never".to_string(), |l| {
                format!("{:.1} ms = {:.2} RTT", ms(l), ms(l) / ms(mn_cn))
            });
            let path = if x.to == "home" {
                "direct"
            } else {
                "route-optimised"
            };
            let _ = writeln!(
                o,
                "   handoff to {:<8}: first {path} packet from the CN after {lat}, {} packets lost",
                x.to, x.lost
            );
        }
        let _ = writeln!(
            o,
            "   signalling: {} messages, {} bytes; IKE: {} messages, {} bytes\n",
            r.signalling_messages, r.signalling_bytes, r.ike_messages, r.ike_bytes
        );
    }
    let _ = writeln!(o, "Side by side (handoffs away from home, mean):");
    let _ = writeln!(
        o,
        "   {:<9} {:>10} {:>8} {:>6} {:>10} {:>8} {:>5} {:>9}",
        "mode", "latency", "x RTT", "lost", "messages", "bytes", "IKE", "IKE bytes"
    );
    for r in runs {
        let l = r.away_latency();
        let _ = writeln!(
            o,
            "   {:<9} {:>10} {:>8} {:>6} {:>10} {:>8} {:>5} {:>9}",
            r.name,
            opt(l),
            l.map_or("-".into(), |l| format!("{:.2}", ms(l) / ms(mn_cn))),
            r.away_lost(),
            r.signalling_messages,
            r.signalling_bytes,
            r.ike_messages,
            r.ike_bytes
        );
    }
    let _ = writeln!(o, "\npcaps (one per link; open in Wireshark):");
    for p in pcaps {
        let _ = writeln!(o, "   {}", p.display());
    }
    o
}
