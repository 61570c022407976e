//! The topology with the path CN→MN packets take: the router in the
//! middle, each link around it with its delay, the hosts on their links;
//! one packet of the measured flow per phase (direct at home, tunnelled
//! through the home agent, route optimised), traced hop by hop through
//! the captures.

use std::fmt::Write;

use common::ipsec::EspKeyring;
use common::time::Duration;
use common::wire::packet::{decode_with, UdpPayload};
use common::wire::{CodePoints, UpperRepr};

use super::esc;
use super::report::Played;
use crate::sim::{parse_flow, Arrival, NodeId, Path};
use crate::topology::Network;

/// The phases, as the panels name them.
pub const PHASES: [(Path, &str); 3] = [
    (Path::Direct, "at home, direct"),
    (Path::Tunnelled, "through the home agent, tunnelled"),
    (Path::RouteOptimised, "route optimised"),
];

/// (flow, seq) of the flow datagram inside a packet, tunnelled or in
/// ESP as it may be.
pub fn flow_of(bytes: &[u8], cp: &CodePoints, keys: &EspKeyring) -> Option<(u32, u64)> {
    fn udp(u: &UpperRepr) -> Option<(u32, u64)> {
        match u {
            UpperRepr::Udp(_, UdpPayload::Raw(p)) => parse_flow(p).map(|(f, s, _)| (f, s)),
            UpperRepr::Tunnel(inner) => udp(&inner.upper),
            _ => None,
        }
    }
    let d = decode_with(bytes, cp, false, Some(keys));
    d.repr
        .iter()
        .map(|r| &r.upper)
        .chain(&d.decrypted)
        .find_map(udp)
}

/// A node of a panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Router,
    Ha,
    /// An index into [`Network::cns`].
    Cn(usize),
    Mn,
}

/// One hop of a traced packet: sender, link (an index into
/// [`Network::links`]), receiver.
pub type Hop = (Node, usize, Node);

/// A packet of the measured flow on one phase's path: the hops that
/// carried it, in order, and its one-way delay.
pub struct Sample {
    pub hops: Vec<Hop>,
    pub one_way: Duration,
}

/// The hops that carried `a`, in order.
fn trace(p: &Played, keys: &EspKeyring, a: &Arrival) -> Vec<Hop> {
    let cp = CodePoints::default();
    let ly = p.layout;
    let node = |n: NodeId| match ly.cns.iter().position(|c| *c == n) {
        Some(i) => Node::Cn(i),
        None if n == ly.ha => Node::Ha,
        None if n == ly.mn => Node::Mn,
        None => Node::Router,
    };
    let mut hops = vec![];
    for (l, link) in ly.links.iter().enumerate() {
        let frames = p.sim.captured(*link).iter().zip(p.sim.hops(*link));
        for ((sent, bytes), hop) in frames {
            if *sent < a.sent || *sent > a.at {
                continue;
            }
            let (Some(from), Some((_, to))) = (hop.from, &hop.arrived) else {
                continue;
            };
            if flow_of(bytes, &cp, keys) == Some((a.flow, a.seq)) {
                if let Some(to) = to.first() {
                    hops.push((*sent, node(from), l, node(*to)));
                }
            }
        }
    }
    hops.sort_by_key(|h| h.0);
    hops.into_iter().map(|(_, f, l, t)| (f, l, t)).collect()
}

const W: f64 = 400.0;
const H: f64 = 380.0;
const CX: f64 = 200.0;
const CY: f64 = 200.0;

/// Where link `i` of `n` sits, and the unit vector out from the router.
fn link_pos(i: usize, n: usize) -> ((f64, f64), (f64, f64)) {
    let a = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n.max(1) as f64
        - std::f64::consts::FRAC_PI_4;
    let u = (a.cos(), a.sin());
    ((CX + 95.0 * u.0, CY + 95.0 * u.1), u)
}

/// The panels of one run, one per phase: a packet of the measured flow
/// on that path, or a note that none went that way.
pub fn panels(p: &Played) -> Vec<String> {
    let keys = p.keys().esp;
    let mut out = vec![];
    for (path, phase) in PHASES {
        // The middle one: clear of a phase's first packets, which may
        // wait for neighbour discovery.
        let on: Vec<&Arrival> = p
            .sim
            .arrivals
            .iter()
            .filter(|a| Some(a.flow) == p.run.down_flow && a.path == path)
            .collect();
        let sample = on.get(on.len() / 2).map(|a| Sample {
            hops: trace(p, &keys, a),
            one_way: a.at.saturating_duration_since(a.sent),
        });
        out.push(panel(p.run.name, p.net, sample.as_ref(), phase));
    }
    out
}

/// The panel of one phase of run `run` on `net`: its topology, and the
/// hops of `sample` if a packet went that way.
pub fn panel(run: &str, net: &Network, sample: Option<&Sample>, phase: &str) -> String {
    let hops = sample.map_or(&[][..], |s| &s.hops[..]);
    let n = net.links.len();
    // Hosts: the home agent, the correspondents, and the mobile node on
    // the link the packet found it on.
    let mn_link = hops
        .iter()
        .rev()
        .find(|h| h.2 == Node::Mn)
        .map_or(net.mn_links.first().copied().unwrap_or(0), |h| h.1);
    let mut hosts: Vec<(Node, usize)> = vec![(Node::Ha, net.ha_link)];
    hosts.extend(
        net.cns
            .iter()
            .enumerate()
            .map(|(i, c)| (Node::Cn(i), c.link)),
    );
    hosts.push((Node::Mn, mn_link));
    let pos = |node: Node| -> (f64, f64) {
        let Some(k) = hosts.iter().position(|h| h.0 == node) else {
            return (CX, CY);
        };
        let l = hosts[k].1;
        // Hosts sharing a link sit side by side.
        let same: Vec<usize> = (0..hosts.len()).filter(|j| hosts[*j].1 == l).collect();
        let slot = same.iter().position(|j| *j == k).unwrap_or(0) as f64;
        let spread = (slot - (same.len() - 1) as f64 / 2.0) * 70.0;
        let ((x, y), u) = link_pos(l, n);
        (x + 60.0 * u.0 - spread * u.1, y + 60.0 * u.1 + spread * u.0)
    };
    let name = |node: Node| -> String {
        match node {
            Node::Router => "router".into(),
            Node::Ha => "HA".into(),
            Node::Cn(i) => net.cns[i].name.to_uppercase(),
            Node::Mn => "MN".into(),
        }
    };
    let route: Vec<String> = hops
        .first()
        .map(|h| name(h.0))
        .into_iter()
        .chain(hops.iter().map(|h| name(h.2)))
        .collect();
    // For a reader: nodes and the links between them, `>`-separated.
    let hops_attr: Vec<String> = hops
        .first()
        .map(|h| name(h.0))
        .into_iter()
        .chain(
            hops.iter()
                .map(|h| format!("{}>{}", net.links[h.1].name, name(h.2))),
        )
        .collect();
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="paths" width="{W}" height="{H}" viewBox="0 0 {W} {H}" data-run="{}" data-phase="{}" data-route="{}" font-family="sans-serif" font-size="11">"##,
        esc(run),
        esc(phase),
        esc(&hops_attr.join(">"))
    );
    let caption = match sample {
        Some(s) => format!(
            "{} · {} hops · {:.1} ms one way",
            route.join(" → "),
            hops.len(),
            s.one_way.as_micros() as f64 / 1000.0
        ),
        None => "no CN→MN packet went this way in this run".into(),
    };
    let _ = write!(
        o,
        r##"<text x="8" y="16" font-weight="bold">{}: {}</text><text x="8" y="32" fill="#555">{}</text>"##,
        esc(run),
        esc(phase),
        esc(&caption)
    );
    for (i, spec) in net.links.iter().enumerate() {
        let ((x, y), u) = link_pos(i, n);
        let d = spec.params.delay.as_micros() as f64 / 1000.0;
        let loss = if spec.params.loss > 0.0 {
            format!(", {:.0}% loss", spec.params.loss * 100.0)
        } else {
            String::new()
        };
        let _ = write!(
            o,
            r##"<line x1="{CX}" y1="{CY}" x2="{x:.1}" y2="{y:.1}" stroke="#ccc" stroke-width="2"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888" stroke-width="6"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{} {d} ms{loss}</text>"##,
            x - 40.0 * u.1,
            y + 40.0 * u.0,
            x + 40.0 * u.1,
            y - 40.0 * u.0,
            x + 40.0 * u.1 + 14.0 * u.0,
            y - 40.0 * u.0 + 14.0 * u.1 + 4.0,
            esc(&spec.name)
        );
    }
    for (node, l) in &hosts {
        let (x, y) = pos(*node);
        let ((lx, lyy), _) = link_pos(*l, n);
        let _ = write!(
            o,
            r##"<line x1="{lx:.1}" y1="{lyy:.1}" x2="{x:.1}" y2="{y:.1}" stroke="#ccc" stroke-width="2"/>"##
        );
    }
    // The hops, each a little aside from the last, so a link crossed
    // twice (into the home agent and out) shows twice.
    for (k, (from, link, to)) in hops.iter().enumerate() {
        let ((lx, lyy), _) = link_pos(*link, n);
        let off = (k as f64 - (hops.len() as f64 - 1.0) / 2.0) * 5.0;
        let (a, b) = (pos(*from), pos(*to));
        let (ax, ay, bx, by) = (a.0 + off, a.1 + off, b.0 + off, b.1 + off);
        let (mx, my) = (lx + off, lyy + off);
        let (dx, dy) = (bx - mx, by - my);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        // Stop short of the node's circle, with a head.
        let (ex, ey) = (bx - 18.0 * ux, by - 18.0 * uy);
        let _ = write!(
            o,
            r##"<g class="hop"><polyline points="{ax:.1},{ay:.1} {mx:.1},{my:.1} {ex:.1},{ey:.1}" fill="none" stroke="#e83" stroke-width="3" stroke-opacity="0.85"/><polygon points="{ex:.1},{ey:.1} {:.1},{:.1} {:.1},{:.1}" fill="#e83"/><text x="{mx:.1}" y="{:.1}" fill="#c60" font-weight="bold">{}</text></g>"##,
            ex - 9.0 * ux - 4.0 * uy,
            ey - 9.0 * uy + 4.0 * ux,
            ex - 9.0 * ux + 4.0 * uy,
            ey - 9.0 * uy - 4.0 * ux,
            my - 6.0,
            k + 1
        );
    }
    let mut nodes = vec![Node::Router];
    nodes.extend(hosts.iter().map(|h| h.0));
    for node in nodes {
        let (x, y) = pos(node);
        let _ = write!(
            o,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="16" fill="#fff" stroke="#333" stroke-width="1.5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold" font-size="10">{}</text>"##,
            y + 4.0,
            esc(&name(node))
        );
    }
    o.push_str("</svg>");
    o
}
