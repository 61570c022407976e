//! The demo: on the [`topology`](crate::topology), a mobile node leaves
//! home, moves on and comes back, with return routability, with IPsec
//! route optimisation on static keys, and with IPsec route optimisation
//! keyed by IKEv2; what each handoff cost, and the reports.

use common::node::RouteOptimisation;
use common::time::{Duration, Instant};

use crate::sim::{Flow, LinkId, NodeId, Path};
use crate::topology::{build, Keying, Layout, Network, Setup, Topology};

/// One handoff, measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Handoff {
    pub at: Instant,
    pub to: String,
    /// Link up to the first correspondent packet over the path the node
    /// should end on (route optimised away, direct at home); `None` if
    /// none came before the next move.
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
    /// The measured flow to the mobile node (the simulator's number), and
    /// when each of its packets that never arrived was sent.
    pub down_flow: Option<u32>,
    pub down_lost: Vec<Instant>,
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

/// Who sends a flow or a ping: the mobile node (from its home address)
/// or a correspondent (an index into [`Network::cns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Mn,
    Cn(usize),
}

/// Packets every `interval` from `start` until `until`, `from` one end
/// `to` the other: UDP flow datagrams or echo requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    pub from: End,
    pub to: End,
    pub start: Instant,
    pub interval: Duration,
    pub until: Instant,
}

/// How the mobile node moves at a moment; links are indices into
/// [`Network::links`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Onto a link, losing carrier on every other (break before make).
    To(usize),
    /// Onto a link too, keeping the others (make before break).
    Join(usize),
    /// Off a link.
    Leave(usize),
}

impl Move {
    /// The link it brings up, if any: a handoff starts there.
    pub fn arrives(self) -> Option<usize> {
        match self {
            Move::To(l) | Move::Join(l) => Some(l),
            Move::Leave(_) => None,
        }
    }
}

/// What happens in a run: the mobile node's moves, in time order, the UDP
/// flows and pings, and when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub moves: Vec<(Instant, Move)>,
    pub flows: Vec<Stream>,
    pub pings: Vec<Stream>,
    pub end: Instant,
}

impl Timeline {
    /// When the node is away: from its first move until it is next moved
    /// home (the run's end if it is not).
    pub fn away(&self, home: usize) -> (Instant, Instant) {
        let left = self.moves.first().map_or(self.end, |m| m.0);
        let back = self
            .moves
            .iter()
            .find(|(at, m)| *at > left && *m == Move::To(home))
            .map_or(self.end, |m| m.0);
        (left, back)
    }
}

/// The demo's: home until 2 s, access A at 2 s, access B at 5 s, home at
/// 8 s, end at 10 s; UDP both ways every millisecond and a ping every
/// 50 ms between the home address and the correspondent.
pub fn timeline() -> Timeline {
    let s = |x: f64| Instant::from_micros((x * 1e6) as u64);
    let every = |from, to, start, interval| Stream {
        from,
        to,
        start: s(start),
        interval,
        until: s(9.5),
    };
    let ms = Duration::from_millis(1);
    Timeline {
        moves: vec![
            (s(2.0), Move::To(2)),
            (s(5.0), Move::To(3)),
            (s(8.0), Move::To(0)),
        ],
        flows: vec![
            every(End::Cn(0), End::Mn, 1.0, ms),
            every(End::Mn, End::Cn(0), 1.0, ms),
        ],
        pings: vec![every(End::Mn, End::Cn(0), 0.5, ms * 50)],
        end: s(10.0),
    }
}

/// Runs the demo's timeline on the [`topology`](crate::topology) of
/// `setup`.
pub fn run(setup: &Setup) -> (Run, Topology) {
    let mut t = build(setup);
    let run = play(&mut t.sim, &t.network, &t.layout, &timeline(), name(setup));
    (run, t)
}

/// The node and address of one end.
fn end(net: &Network, layout: &Layout, e: End) -> (NodeId, std::net::Ipv6Addr) {
    match e {
        End::Mn => (layout.mn, net.mn.home_address),
        End::Cn(i) => (layout.cns[i], net.cns[i].config.address),
    }
}

/// Schedules `timeline` on a built network, runs it to its end and
/// measures it: each handoff's latency on the first flow to the mobile
/// node (link up to its first packet over the path the node should end
/// on, route optimised away or direct at home), the flow packets lost,
/// the signalling, the pings.
pub fn play(
    sim: &mut crate::sim::Sim,
    net: &Network,
    layout: &Layout,
    timeline: &Timeline,
    name: &'static str,
) -> Run {
    let flows: Vec<(u32, Stream)> = timeline
        .flows
        .iter()
        .map(|f| {
            let ((node, src), (_, dst)) = (end(net, layout, f.from), end(net, layout, f.to));
            let flow = Flow {
                from: node,
                src,
                dst,
                interval: f.interval,
                until: f.until,
            };
            (sim.flow(f.start, flow), *f)
        })
        .collect();
    for p in &timeline.pings {
        let ((node, src), (_, dst)) = (end(net, layout, p.from), end(net, layout, p.to));
        sim.ping(p.start, node, src, dst, p.interval, p.until);
    }
    for (at, m) in &timeline.moves {
        match *m {
            Move::To(l) => layout.move_mn(sim, *at, Some(layout.links[l])),
            Move::Join(l) | Move::Leave(l) => {
                let link = layout.links[l];
                let iface = layout.mn_iface(link).unwrap_or(0);
                let to = matches!(m, Move::Join(_)).then_some(link);
                sim.move_at(*at, layout.mn, iface, to);
            }
        }
    }
    sim.run_until(timeline.end);
    measure(sim, net, layout, timeline, &flows, name)
}

fn measure(
    sim: &crate::sim::Sim,
    net: &Network,
    layout: &Layout,
    timeline: &Timeline,
    flows: &[(u32, Stream)],
    name: &'static str,
) -> Run {
    let end = timeline.end;
    let home = layout.links[net.ha_link];
    let down = flows.iter().find(|(_, f)| f.to == End::Mn);
    let cn_address = |e: End| match e {
        End::Cn(i) => Some(net.cns[i].config.address),
        End::Mn => None,
    };
    // The mode of the correspondent the measured flow comes from.
    let mode = down
        .and_then(|(_, f)| cn_address(f.from))
        .and_then(|a| net.mn.correspondents.iter().find(|c| c.address == a))
        .map_or(RouteOptimisation::None, |c| c.mode);
    let ups: Vec<(Instant, LinkId)> = sim
        .link_ups
        .iter()
        .filter(|(_, p, _)| p.node == layout.mn)
        .map(|(at, _, l)| (*at, *l))
        .collect();
    let mut handoffs = vec![];
    for (i, (at, link)) in ups.iter().enumerate() {
        let next = ups.get(i + 1).map_or(end, |u| u.0);
        let to = sim.link_name(*link).to_string();
        let want = if *link == home {
            Path::Direct
        } else if mode == RouteOptimisation::None {
            Path::Tunnelled
        } else {
            Path::RouteOptimised
        };
        let latency = down.and_then(|(down, _)| {
            sim.arrivals
                .iter()
                .filter(|a| a.flow == *down && a.at >= *at && a.at < next)
                // Over the new link: with make before break the old one
                // carries packets meanwhile.
                .filter(|a| a.path == want && a.link == Some(*link))
                .map(|a| a.at.saturating_duration_since(*at))
                .next()
        });
        let lost = flows
            .iter()
            .map(|f| lost_of(sim, f).filter(|t| *t >= *at && *t < next).count() as u64)
            .sum();
        handoffs.push(Handoff {
            at: *at,
            to,
            latency,
            lost,
        });
    }
    let (left, back) = timeline.away(net.ha_link);
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
    let away = |at: Instant| at >= left && at < back;
    let ping_home = median(&|at, _| at < left);
    let ping_via_ha = median(&|at, p| away(at) && p == Path::Tunnelled);
    let ping_optimised = median(&|at, p| away(at) && p == Path::RouteOptimised);
    let (mut messages, mut bytes, mut ike_messages, mut ike_bytes) = (0, 0, 0, 0);
    let nodes = [layout.mn, layout.ha]
        .into_iter()
        .chain(layout.cns.iter().copied());
    for n in nodes {
        if let Some(e) = sim.engine(n) {
            messages += e.stats().signalling_messages;
            bytes += e.stats().signalling_bytes;
            ike_messages += e.stats().ike_messages;
            ike_bytes += e.stats().ike_bytes;
        }
    }
    let timeline = sim
        .trace()
        .into_iter()
        .filter(|l| {
            // Movement is marked by the handoff lines; routine DAD is noise.
            !l.what.contains(" leaves its link")
                && !l.what.contains(" moves to ")
                && !l.what.contains("passed DAD")
                && l.node != "sim"
        })
        .map(|l| (l.at, format!("{:<6} {}", l.node, l.what)))
        .collect();
    Run {
        name,
        mode,
        down_flow: down.map(|(f, _)| *f),
        down_lost: down.map_or(vec![], |f| lost_of(sim, f).collect()),
        handoffs,
        signalling_messages: messages,
        signalling_bytes: bytes,
        ike_messages,
        ike_bytes,
        ping_home,
        ping_via_ha,
        ping_optimised,
        timeline,
    }
}

/// When each packet of a flow that never arrived was sent.
fn lost_of<'a>(
    sim: &'a crate::sim::Sim,
    (f, stream): &'a (u32, Stream),
) -> impl Iterator<Item = Instant> + 'a {
    let got: std::collections::BTreeSet<u64> = sim
        .arrivals
        .iter()
        .filter(|a| a.flow == *f)
        .map(|a| a.seq)
        .collect();
    // Seq n left at the start plus n intervals.
    (0..sim.flow_sent(*f))
        .filter(move |seq| !got.contains(seq))
        .map(|seq| stream.start + stream.interval * u32::try_from(seq).unwrap_or(u32::MAX))
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

/// One run's figures in `--json`; the latency in round trips MN↔CN
/// where that is known.
pub fn run_json(r: &Run, mn_cn: Option<Duration>) -> serde_json::Value {
    let latency = r.away_latency().map(ms);
    serde_json::json!({
        "mode": r.name,
        "handoff_latency_ms": latency,
        "handoff_latency_rtt": latency.zip(mn_cn).map(|(l, rtt)| l / ms(rtt)),
        "packets_lost": r.away_lost(),
        "signalling_messages": r.signalling_messages,
        "signalling_bytes": r.signalling_bytes,
        "ike_messages": r.ike_messages,
        "ike_bytes": r.ike_bytes,
    })
}

/// The demo's `--json` object.
pub fn report_json(setup: &Setup, runs: &[Run], pcaps: &[std::path::PathBuf]) -> serde_json::Value {
    let (mn_cn, mn_ha, via_ha) = setup.rtts();
    let runs: Vec<serde_json::Value> = runs.iter().map(|r| run_json(r, Some(mn_cn))).collect();
    serde_json::json!({
        "seed": setup.seed,
        "rtt_ms": { "mn_cn": ms(mn_cn), "mn_ha": ms(mn_ha), "via_ha": ms(via_ha) },
        "runs": runs,
        "pcaps": pcaps.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
    })
}

/// The demo's delays and round trips, in two lines.
pub fn intro(setup: &Setup) -> String {
    let (mn_cn, mn_ha, via_ha) = setup.rtts();
    format!(
        "Mobile IPv6 demo, seed {}: home agent {} ms away, correspondent {} ms, access links {} ms\n\
         Round trips: MN-CN {:.1} ms, MN-HA {:.1} ms, MN-HA-CN-HA-MN {:.1} ms\n",
        setup.seed,
        ms(setup.home_delay),
        ms(setup.cn_delay),
        ms(setup.access_delay),
        ms(mn_cn),
        ms(mn_ha),
        ms(via_ha)
    )
}

/// The demo's timeline, for people.
pub fn report_text(setup: &Setup, runs: &[Run], pcaps: &[std::path::PathBuf]) -> String {
    use std::fmt::Write;
    let (mn_cn, _, _) = setup.rtts();
    let mut o = intro(setup);
    o.push('\n');
    let opt = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1} ms", ms(d)));
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
