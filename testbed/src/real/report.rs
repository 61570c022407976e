//! `report.html` of `testbed demo --real` and `testbed run --real`: the
//! simulated report's page
//! (table, a sequence diagram per handoff and run, delay and loss plot,
//! pcaps) drawn from the router's captures, one per link.
//!
//! Each captured frame is one arrow, on the link it was captured on, as
//! the simulator draws each hop: frames are not matched across links.
//! The router captures a frame when it is put on the link and delivers
//! it the link's delay later, so an arrow leaves at the capture time and
//! arrives that delay later (on a link with jitter, its fixed part; a
//! frame the link loses is drawn as delivered).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use common::time::{Duration, Instant};
use common::wire::CodePoints;
use serde_json::Value;

use super::demo::RealRun;
use crate::pictures::paths::{flow_of, panel, Hop, Node, Sample, PHASES};
use crate::pictures::plot::Series;
use crate::pictures::report::{handoff_sequences, handoff_spans, Report};
use crate::pictures::sequence::{ends, Arrow, Sequence};
use crate::pictures::{classify, Keys, Message};
use crate::sim::Path as Via;
use crate::tools::pcap::read_packets;

const MN: usize = 0;
const ROUTER: usize = 1;
const HA_LANE: usize = 2;
/// Correspondent `i`'s lifeline is `CNS + i`.
const CNS: usize = 3;

/// Lifelines: MN, router, HA, then each correspondent, as the simulated
/// report's.
fn lanes(real: &RealRun) -> Vec<String> {
    let mut l = vec!["MN".into(), "router".into(), "HA".into()];
    l.extend(real.net.cns.iter().map(|c| c.name.to_uppercase()));
    l
}

/// One real run's captures, read once.
struct Captured<'a> {
    real: &'a RealRun,
    lanes: Vec<String>,
    /// (wall µs, link, packet), in time order.
    frames: Vec<(u64, usize, Vec<u8>)>,
}

impl Captured<'_> {
    /// The lifeline an address is on, if it is one of the run's.
    fn node(&self, a: Ipv6Addr) -> Option<usize> {
        let net = &self.real.net;
        let in_prefix = |p: Ipv6Addr| a.segments()[..4] == p.segments()[..4];
        let ll = self.real.link_locals.iter().find(|(x, _)| *x == a);
        let cn = net.cns.iter().position(|c| c.config.address == a);
        // A care-of address: on a link the node visits, not its home.
        let care_of = net
            .mn_links
            .iter()
            .any(|l| *l != net.ha_link && in_prefix(net.links[*l].prefix));
        match (ll, cn) {
            (Some((_, who)), _) => self.lanes.iter().position(|l| l == who),
            (None, Some(i)) => Some(CNS + i),
            _ if a == net.ha.address => Some(HA_LANE),
            _ if a == net.mn.home_address || care_of => Some(MN),
            _ => None,
        }
    }

    /// The link the node has carrier on at `t`: its first before its
    /// first move, then each move's.
    fn mn_link_at(&self, t: Instant) -> &str {
        let net = &self.real.net;
        let mut on = net
            .mn_links
            .first()
            .map_or("", |l| net.links[*l].name.as_str());
        for h in &self.real.run.handoffs {
            if self.real.t0 + (h.at - Instant::ZERO) <= t {
                on = &h.to;
            }
        }
        on
    }

    /// The nodes on `link` at `t` besides the router, the mobile node
    /// first: it is on one of its links while its carrier is there, and
    /// stands for an access link nobody else is on.
    fn attached(&self, link: usize, t: Instant) -> Vec<usize> {
        let net = &self.real.net;
        let mut here = vec![];
        if self.mn_link_at(t) == net.links[link].name {
            here.push(MN);
        }
        if link == net.ha_link {
            here.push(HA_LANE);
        }
        let cns = net.cns.iter().enumerate().filter(|(_, c)| c.link == link);
        here.extend(cns.map(|(i, _)| CNS + i));
        if here.is_empty() && net.mn_links.contains(&link) {
            here.push(MN);
        }
        here
    }

    /// The hop a frame on `link` took: its sender is its source's node if
    /// that is on the link (or, sent from `::`, the owner of the address
    /// it checks), else the router; its receiver likewise, a group's the
    /// link's host from the router and the router from a host.
    fn hop(&self, link: usize, t: Instant, b: &[u8]) -> Option<(usize, usize)> {
        let (std::net::IpAddr::V6(src), std::net::IpAddr::V6(dst)) = ends(b)? else {
            return None;
        };
        let here = self.attached(link, t);
        let first = *here.first()?;
        // Away, the home agent stands for the home address on the home
        // link: it takes what comes for it (its proxy ND, RFC 6275
        // §10.4.1) and sends what the node reverse-tunnels.
        let net = &self.real.net;
        let home = net.mn.home_address;
        let node = |a: Ipv6Addr| match self.node(a) {
            Some(MN) if a == home && link == net.ha_link && !here.contains(&MN) => Some(HA_LANE),
            n => n,
        };
        let on = |n: Option<usize>| n.filter(|n| here.contains(n));
        let from = if src.is_unspecified() {
            // DAD: an NS for its target (RFC 4862 §5.4.2), else an RS.
            let target = b.get(48..64).and_then(|t| <[u8; 16]>::try_from(t).ok());
            let dad = (b.get(40) == Some(&135)).then_some(target).flatten();
            on(dad.and_then(|t| node(t.into()))).unwrap_or(first)
        } else {
            on(node(src)).unwrap_or(ROUTER)
        };
        let to = match on(node(dst)) {
            _ if dst.is_multicast() && from == ROUTER => first,
            _ if dst.is_multicast() => ROUTER,
            Some(n) => n,
            None => ROUTER,
        };
        Some((from, to))
    }

    /// Every frame captured in `[from, to)`, an arrow on its link.
    fn arrows(&self, from: Instant, to: Instant, msg: &dyn Fn(&[u8]) -> Message) -> Vec<Arrow> {
        let (a, b) = (from.total_micros(), to.total_micros());
        let first = self.frames.partition_point(|f| f.0 < a);
        self.frames[first..]
            .iter()
            .take_while(|f| f.0 < b)
            .filter_map(|(us, link, bytes)| {
                let sent = Instant::from_micros(*us);
                let (from, to) = self.hop(*link, sent, bytes)?;
                let delay: Duration = self.real.net.links[*link].params.delay;
                Some(Arrow {
                    from,
                    to,
                    sent,
                    arrived: Some(sent + delay),
                    msg: msg(bytes),
                })
            })
            .collect()
    }
}

/// Every captured frame of the run; `pcaps[i]` is link `i`'s.
fn read_frames(real: &RealRun) -> Result<Vec<(u64, usize, Vec<u8>)>, crate::tools::Error> {
    let mut frames = vec![];
    for (i, p) in real.pcaps.iter().enumerate() {
        let f = std::fs::File::open(p).map_err(|e| crate::tools::Error::from(e).in_file(p))?;
        let packets = read_packets(f).map_err(|e| e.in_file(p))?;
        frames.extend(packets.into_iter().map(|(us, b)| (us, i, b)));
    }
    frames.sort_by_key(|f| (f.0, f.1));
    Ok(frames)
}

/// The diagrams of one real run and its path panels, ESP and IKE opened
/// with its key log.
fn pictures(real: &RealRun) -> Result<(Vec<Sequence>, Vec<String>), crate::tools::Error> {
    let keys = Keys::from_dir(&real.keylog)?;
    let cp = CodePoints::default();
    let classified = |b: &[u8]| classify(b, &cp, &keys);
    let captured = Captured {
        real,
        lanes: lanes(real),
        frames: read_frames(real)?,
    };
    let sequences = handoff_sequences(&real.run, &captured.lanes, real.t0, |a, b| {
        captured.arrows(a, b, &classified)
    });
    Ok((sequences, captured.panels(&keys.esp)))
}

impl Captured<'_> {
    /// One panel per phase: the middle packet of the measured flow that
    /// took its path, traced through the captures (every frame holding
    /// its flow and sequence number, opened or detunnelled as need be).
    fn panels(&self, keys: &common::ipsec::EspKeyring) -> Vec<String> {
        let net = &self.real.net;
        let cp = CodePoints::default();
        let node = |lane: usize| match lane {
            MN => Node::Mn,
            HA_LANE => Node::Ha,
            l if l >= CNS => Node::Cn(l - CNS),
            _ => Node::Router,
        };
        // seq: (capture time, hop), in capture order.
        let mut traced: BTreeMap<u64, Vec<(u64, Hop)>> = BTreeMap::new();
        for (us, link, bytes) in &self.frames {
            let Some((flow, seq)) = flow_of(bytes, &cp, keys) else {
                continue;
            };
            if Some(flow) != self.real.run.down_flow {
                continue;
            }
            if let Some((from, to)) = self.hop(*link, Instant::from_micros(*us), bytes) {
                traced
                    .entry(seq)
                    .or_default()
                    .push((*us, (node(from), *link, node(to))));
            }
        }
        // A packet's path by its hops: out of the home agent, tunnelled;
        // else to the node on its home link, direct; else to it away, route
        // optimised. One that never reached the node has none.
        let path_of = |hops: &[(u64, Hop)]| {
            let last = hops.last()?.1;
            if last.2 != Node::Mn {
                None
            } else if hops.iter().any(|h| h.1 .0 == Node::Ha) {
                Some(Via::Tunnelled)
            } else if last.1 == net.ha_link {
                Some(Via::Direct)
            } else {
                Some(Via::RouteOptimised)
            }
        };
        PHASES
            .iter()
            .map(|(path, phase)| {
                let on: Vec<&Vec<(u64, Hop)>> = traced
                    .values()
                    .filter(|h| path_of(h) == Some(*path))
                    .collect();
                let sample = on.get(on.len() / 2).and_then(|hops| {
                    let (first, last) = (hops.first()?, hops.last()?);
                    let delivered = last.0 + net.links[last.1 .1].params.delay.as_micros() as u64;
                    Some(Sample {
                        hops: hops.iter().map(|h| h.1).collect(),
                        one_way: Duration::from_micros(delivered.saturating_sub(first.0)),
                    })
                });
                panel(self.real.run.name, net, sample.as_ref(), phase)
            })
            .collect()
    }
}

/// Writes `report.html` and `report.json` of `reals` into `dir` (their
/// pcaps below it), titled `title`, `intro` first in its text; `summary`
/// is what `--json` prints. Returns the page.
pub fn write(
    dir: &Path,
    title: &str,
    intro: &str,
    reals: &[RealRun],
    summary: Value,
) -> Result<PathBuf, crate::tools::Error> {
    let (mut runs, mut paths) = (vec![], vec![]);
    let mut series = vec![];
    for r in reals {
        let (sequences, panels) = pictures(r)?;
        runs.push((r.run.clone(), sequences));
        paths.extend(panels);
        series.push(Series {
            name: r.run.name.into(),
            points: r.down.clone(),
            lost: r.run.down_lost.clone(),
            handoffs: handoff_spans(&r.run),
        });
    }
    let intro = format!(
        "{}. On real links: network namespaces, the ha, cn and mn daemons, our router \
         process between the links. Each arrow is a frame the router captured, on the \
         link it was captured on, leaving at the capture time and arriving the link's \
         delay later (the router holds every frame that long); frames are not matched \
         across links in the diagrams. The path pictures trace one packet of the measured \
         flow per phase through every capture that holds it.",
        intro.trim_end().trim_end_matches('.')
    );
    let end = reals.iter().map(|r| r.end).max().unwrap_or(Instant::ZERO);
    let mut report = Report::from_parts(title, &intro, runs, &series, end);
    report.paths = paths;
    report.pcaps = reals
        .iter()
        .flat_map(|r| &r.pcaps)
        .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
        .collect();
    report.commands = reals
        .iter()
        .filter_map(|r| {
            let pcap = r.pcaps.first()?;
            Some(format!(
                "WIRESHARK_CONFIG_DIR={} wireshark {}",
                r.keylog.display(),
                pcap.display()
            ))
        })
        .collect();
    report.summary = summary;
    report.write(dir)
}
