//! Sequence diagrams: one lifeline per node, time down the page, every
//! message an arrow from its send to its arrival time.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::time::Instant;
use common::wire::CodePoints;

use super::{classify, esc, tick_step, Keys, Message};

/// One packet between two lifelines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    pub from: usize,
    pub to: usize,
    pub sent: Instant,
    /// `None`: lost on the way.
    pub arrived: Option<Instant>,
    pub msg: Message,
}

/// A span of time marked beside the lifelines (the handoff latency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub from: Instant,
    pub to: Instant,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub title: String,
    pub lanes: Vec<String>,
    pub start: Instant,
    pub end: Instant,
    pub arrows: Vec<Arrow>,
    pub intervals: Vec<Interval>,
    /// Moments across every lifeline (a link coming up).
    pub marks: Vec<(Instant, String)>,
    /// Time zero of the tick labels: the run's start in the simulator, the
    /// first packet of a capture (whose clock is the wall's).
    pub origin: Instant,
}

const LANE: f64 = 180.0;
const LEFT: f64 = 150.0;
const TOP: f64 = 60.0;

/// A quiet stretch longer than this (no signalling, no mark) is drawn
/// [`BREAK_PX`] tall, so a handoff's bursts stay readable around a
/// second of waiting.
const GAP_MS: f64 = 40.0;
const BREAK_PX: f64 = 36.0;
const MIN_PX: f64 = 16.0;

/// The time axis: linear between knots (µs, y).
struct Axis {
    knots: Vec<(u64, f64)>,
    scale: f64,
}

impl Axis {
    fn new(s: &Sequence) -> Axis {
        let mut t: Vec<u64> = [Some(s.start), Some(s.end)]
            .into_iter()
            .chain(s.marks.iter().map(|m| Some(m.0)))
            .chain(s.intervals.iter().flat_map(|i| [Some(i.from), Some(i.to)]))
            .chain(
                s.arrows
                    .iter()
                    .filter(|a| !a.msg.is_data())
                    .flat_map(|a| [Some(a.sent), a.arrived]),
            )
            .flatten()
            .filter(|t| *t >= s.start && *t <= s.end)
            .map(Instant::total_micros)
            .collect();
        t.sort_unstable();
        t.dedup();
        let gaps = || t.windows(2).map(|w| (w[1] - w[0]) as f64 / 1000.0);
        let linear: f64 = gaps().filter(|g| *g <= GAP_MS).sum();
        // About 700 px of linear time, within bounds either way.
        let scale = (700.0 / linear.max(1.0)).clamp(0.5, 12.0);
        let mut knots = vec![(t[0], TOP)];
        for (w, gap) in t.windows(2).zip(gaps()) {
            let y = knots.last().map_or(TOP, |k| k.1);
            // Events close in time still get a label's height apart.
            let dy = if gap <= GAP_MS {
                (gap * scale).max(MIN_PX)
            } else {
                BREAK_PX
            };
            knots.push((w[1], y + dy));
        }
        Axis { knots, scale }
    }

    fn y(&self, t: Instant) -> f64 {
        let t = t.total_micros();
        let i = self.knots.partition_point(|k| k.0 <= t);
        match (
            i.checked_sub(1).map(|i| self.knots[i]),
            self.knots.get(i).copied(),
        ) {
            (Some((t0, y0)), Some((t1, y1))) => y0 + (t - t0) as f64 / (t1 - t0) as f64 * (y1 - y0),
            (Some((_, y)), None) | (None, Some((_, y))) => y,
            (None, None) => TOP,
        }
    }

    /// The stretches drawn as breaks: (from, to) in µs.
    fn breaks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.knots
            .windows(2)
            .filter(|w| (w[1].0 - w[0].0) as f64 / 1000.0 > GAP_MS)
            .map(|w| (w[0].0, w[1].0))
    }

    /// As `data-axis`: `µs:y` knots, space-separated.
    fn attr(&self) -> String {
        let k: Vec<String> = self
            .knots
            .iter()
            .map(|(t, y)| format!("{t}:{y:.3}"))
            .collect();
        k.join(" ")
    }
}

impl Sequence {
    fn x(lane: usize) -> f64 {
        LEFT + LANE * lane as f64
    }

    /// The diagram as a standalone SVG element. The root carries its time
    /// axis (`data-axis`: `µs:y` knots, linear between them) so a reader
    /// can turn any y back into a time; each arrow carries its type
    /// (`data-kind`) and times, each interval its length (`data-ms`).
    pub fn svg(&self) -> String {
        let ax = Axis::new(self);
        let width = LEFT + LANE * self.lanes.len().saturating_sub(1) as f64 + 260.0;
        let height = ax.y(self.end) + 30.0;
        let mut o = String::new();
        let _ = write!(
            o,
            r##"<svg xmlns="http://www.w3.org/2000/svg" class="sequence" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" data-axis="{}" font-family="sans-serif" font-size="11">"##,
            ax.attr()
        );
        let _ = write!(
            o,
            r##"<text x="10" y="18" font-size="14" font-weight="bold">{}</text>"##,
            esc(&self.title)
        );
        // Ticks about every 60 px on the linear stretches, in seconds
        // since the origin; a zigzag across each break.
        let step_us = (tick_step(60.0 / ax.scale, 1.0) * 1000.0).round().max(1.0) as u64;
        let breaks: Vec<(u64, u64)> = ax.breaks().collect();
        let mut t = self.start.total_micros().div_ceil(step_us) * step_us;
        while t <= self.end.total_micros() {
            if !breaks.iter().any(|(a, b)| t > *a && t < *b) {
                let y = ax.y(Instant::from_micros(t));
                let _ = write!(
                    o,
                    r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" fill="#777" text-anchor="end">{:.3} s</text>"##,
                    LEFT - 60.0,
                    width - 10.0,
                    LEFT - 64.0,
                    y + 4.0,
                    t.saturating_sub(self.origin.total_micros()) as f64 / 1e6
                );
            }
            t += step_us;
        }
        for (a, b) in &breaks {
            let (ya, yb) = (
                ax.y(Instant::from_micros(*a)),
                ax.y(Instant::from_micros(*b)),
            );
            let ym = (ya + yb) / 2.0;
            let _ = write!(
                o,
                r##"<path class="break" d="M{:.1} {:.1}l8 -5l8 10l8 -5" stroke="#aaa" fill="none"/><text x="{:.1}" y="{:.1}" fill="#aaa">{:.0} ms without signalling</text>"##,
                LEFT - 90.0,
                ym,
                width - 250.0,
                ym + 4.0,
                (b - a) as f64 / 1000.0
            );
        }
        for (i, name) in self.lanes.iter().enumerate() {
            let x = Self::x(i);
            let _ = write!(
                o,
                r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text><line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4 3"/>"##,
                TOP - 12.0,
                esc(name),
                height - 20.0
            );
        }
        for (at, label) in &self.marks {
            let y = ax.y(*at);
            let _ = write!(
                o,
                r##"<line class="mark" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#2a7" stroke-width="1.5"/><text x="{:.1}" y="{:.1}" fill="#2a7">{}</text>"##,
                LEFT - 60.0,
                width - 10.0,
                width - 250.0,
                y - 3.0,
                esc(label)
            );
        }
        for iv in &self.intervals {
            let (y1, y2) = (ax.y(iv.from), ax.y(iv.to));
            let ms = iv.to.saturating_duration_since(iv.from).as_micros() as f64 / 1000.0;
            let _ = write!(
                o,
                r##"<rect class="latency" data-ms="{ms:.3}" x="{:.1}" y="{y1:.3}" width="8" height="{:.3}" fill="#e83" fill-opacity="0.7"/><text x="{:.1}" y="{:.1}" fill="#c60" transform="rotate(-90 {:.1} {:.1})" text-anchor="end">{}</text>"##,
                LEFT - 40.0,
                y2 - y1,
                LEFT - 44.0,
                y1,
                LEFT - 44.0,
                y1,
                esc(&iv.label)
            );
        }
        // Data first, so signalling draws over it; at most one data arrow
        // per 8 px between two lifelines, or they would fill the page.
        let mut drawn: Vec<((usize, usize), f64)> = vec![];
        for a in self.arrows.iter().filter(|a| a.msg.is_data()) {
            let (pair, y) = ((a.from, a.to), ax.y(a.sent));
            match drawn.iter_mut().find(|(p, _)| *p == pair) {
                Some((_, last)) if y - *last < 8.0 => continue,
                Some((_, last)) => *last = y,
                None => drawn.push((pair, y)),
            }
            self.arrow(&mut o, &ax, a, &mut vec![]);
        }
        let mut labels = vec![];
        for a in self.arrows.iter().filter(|a| !a.msg.is_data()) {
            self.arrow(&mut o, &ax, a, &mut labels);
        }
        o.push_str("</svg>");
        o
    }

    /// Draws `a`; its label goes below any in `labels` (x from, x to,
    /// y) that it would overlap.
    fn arrow(&self, o: &mut String, ax: &Axis, a: &Arrow, labels: &mut Vec<(f64, f64, f64)>) {
        let (x1, y1) = (Self::x(a.from), ax.y(a.sent));
        let x2 = if a.from == a.to {
            x1 + 30.0
        } else {
            Self::x(a.to)
        };
        // A lost packet stops half way, with a cross.
        let (x2, y2) = match a.arrived {
            Some(t) => (x2, ax.y(t)),
            None => ((x1 + x2) / 2.0, y1 + 6.0),
        };
        let times = format!(
            r##"data-kind="{}" data-sent-us="{}" data-arrived-us="{}""##,
            a.msg.kind,
            a.sent.total_micros(),
            a.arrived
                .map_or(String::new(), |t| t.total_micros().to_string())
        );
        if a.msg.is_data() {
            let _ = write!(
                o,
                r##"<line class="data" {times} x1="{x1:.1}" y1="{y1:.2}" x2="{x2:.1}" y2="{y2:.2}" stroke="#48c" stroke-opacity="0.15"/>"##
            );
            return;
        }
        let colour = match a.msg.kind {
            "BU" | "BA" => "#c22",
            "HoTI" | "CoTI" | "HoT" | "CoT" => "#829",
            "RS" | "RA" | "NS" | "NA" => "#777",
            _ => "#16a",
        };
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let head = format!(
            "{x2:.1},{y2:.2} {:.1},{:.2} {:.1},{:.2}",
            x2 - 8.0 * ux - 3.5 * uy,
            y2 - 8.0 * uy + 3.5 * ux,
            x2 - 8.0 * ux + 3.5 * uy,
            y2 - 8.0 * uy - 3.5 * ux
        );
        let end = if a.arrived.is_none() {
            format!(
                r##"<text x="{x2:.1}" y="{:.1}" fill="{colour}" text-anchor="middle" font-size="14">×</text>"##,
                y2 + 5.0
            )
        } else {
            format!(r##"<polygon points="{head}" fill="{colour}"/>"##)
        };
        // In ms since the origin, as the ticks.
        let ms = |t: Instant| t.saturating_duration_since(self.origin).as_micros() as f64 / 1000.0;
        let when = match a.arrived {
            Some(t) => format!("sent {:.3} ms, arrived {:.3} ms", ms(a.sent), ms(t)),
            None => format!("sent {:.3} ms, lost", ms(a.sent)),
        };
        let half = 3.0 * a.msg.label.chars().count() as f64;
        // A long label on a short arrow stays on the page.
        let lx = ((x1 + x2) / 2.0).max(half + 4.0);
        let mut ly = (y1 + y2) / 2.0 - 3.0;
        for _ in 0..8 {
            let hit = labels
                .iter()
                .any(|(l, r, y)| lx - half < *r && lx + half > *l && (ly - y).abs() < 11.0);
            if !hit {
                break;
            }
            ly += 11.0;
        }
        labels.push((lx - half, lx + half, ly));
        let _ = write!(
            o,
            r##"<g class="msg" {times}><title>{} ({when})</title><line x1="{x1:.1}" y1="{y1:.2}" x2="{x2:.1}" y2="{y2:.2}" stroke="{colour}" stroke-width="1.5"/>{end}<text x="{lx:.1}" y="{ly:.1}" text-anchor="middle" fill="{colour}" stroke="#fff" stroke-width="3" paint-order="stroke">{}</text></g>"##,
            esc(&a.msg.label),
            esc(&a.msg.label)
        );
    }
}

/// The source and destination of an IP packet (IPv6 or IPv4).
pub fn ends(b: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match b.first()? >> 4 {
        6 if b.len() >= 40 => {
            let a = |r: std::ops::Range<usize>| -> Option<IpAddr> {
                let o: [u8; 16] = b.get(r)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            };
            Some((a(8..24)?, a(24..40)?))
        }
        4 if b.len() >= 20 => {
            let a = |r: std::ops::Range<usize>| -> Option<IpAddr> {
                let o: [u8; 4] = b.get(r)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(o)))
            };
            Some((a(12..16)?, a(16..20)?))
        }
        _ => None,
    }
}

/// The diagram of a capture: a lifeline per address (outer header), the
/// named ones first in the order of `names`, then in order of
/// appearance, every multicast group on one; each packet an arrow at its
/// capture time (one capture point: sent and arrived alike).
pub fn from_capture(
    title: &str,
    packets: &[(u64, Vec<u8>)],
    keys: &Keys,
    names: &[(IpAddr, String)],
) -> Sequence {
    let cp = CodePoints::default();
    let mut addrs: Vec<IpAddr> = names.iter().map(|n| n.0).collect();
    let group = IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0));
    let mut lane = |a: IpAddr| {
        let a = if a.is_multicast() { group } else { a };
        match addrs.iter().position(|x| *x == a) {
            Some(i) => i,
            None => {
                addrs.push(a);
                addrs.len() - 1
            }
        }
    };
    let mut arrows = vec![];
    for (us, b) in packets {
        let Some((src, dst)) = ends(b) else { continue };
        let at = Instant::from_micros(*us);
        arrows.push(Arrow {
            from: lane(src),
            to: lane(dst),
            sent: at,
            arrived: Some(at),
            msg: classify(b, &cp, keys),
        });
    }
    let lanes = addrs
        .iter()
        .map(|a| match names.iter().find(|(x, _)| x == a) {
            Some((_, n)) => format!("{n} ({a})"),
            None if *a == group => "multicast".into(),
            None => a.to_string(),
        })
        .collect();
    let times = || packets.iter().map(|p| Instant::from_micros(p.0));
    let start = times().min().unwrap_or(Instant::ZERO);
    Sequence {
        title: title.into(),
        lanes,
        start,
        origin: start,
        end: times().max().unwrap_or(Instant::ZERO),
        arrows,
        intervals: vec![],
        marks: vec![],
    }
}
