//! The delay and loss plot: one-way delay of every CN→MN flow packet
//! against its send time, one panel per run on the same axes, handoffs
//! shaded, lost packets ticked.

use std::fmt::Write;

use common::time::{Duration, Instant};

use super::{esc, tick_step};

/// One run's packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    /// Send time and one-way delay of each packet that arrived.
    pub points: Vec<(Instant, Duration)>,
    /// Send times of the packets that never arrived.
    pub lost: Vec<Instant>,
    /// Each handoff: from link up to its latency's end, and a label.
    pub handoffs: Vec<(Instant, Instant, String)>,
}

const W: f64 = 900.0;
const H: f64 = 150.0;
const LEFT: f64 = 60.0;
const GAP: f64 = 40.0;

/// The plot of `series` from time zero to `end`, as an SVG element.
/// Each panel's group carries its run (`data-run`); the lost ticks'
/// group its count (`data-count`), drawn one per pixel column.
pub fn delay_plot(series: &[Series], end: Instant) -> String {
    let end_s = (end.total_micros() as f64 / 1e6).max(1e-3);
    let max_ms = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.as_micros() as f64 / 1000.0))
        .fold(1.0, f64::max)
        * 1.15;
    let x = |t: Instant| LEFT + t.total_micros() as f64 / 1e6 / end_s * W;
    let height = (H + GAP) * series.len() as f64 + 30.0;
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="delay-plot" width="{:.0}" height="{height:.0}" viewBox="0 0 {:.0} {height:.0}" font-family="sans-serif" font-size="11">"##,
        W + LEFT + 20.0,
        W + LEFT + 20.0
    );
    let y_step = tick_step(max_ms, 4.0);
    let x_step = tick_step(end_s, 10.0);
    for (i, s) in series.iter().enumerate() {
        let top = 20.0 + (H + GAP) * i as f64;
        let y = |ms: f64| top + H - ms / max_ms * H;
        let _ = write!(
            o,
            r##"<g class="panel" data-run="{}"><text x="{LEFT}" y="{:.1}" font-weight="bold">{} — CN→MN one-way delay (ms) by send time (s)</text><rect x="{LEFT}" y="{top:.1}" width="{W}" height="{H}" fill="none" stroke="#999"/>"##,
            esc(&s.name),
            top - 5.0,
            esc(&s.name)
        );
        for (from, to, label) in &s.handoffs {
            let _ = write!(
                o,
                r##"<rect class="handoff" x="{:.2}" y="{top:.1}" width="{:.2}" height="{H}" fill="#e83" fill-opacity="0.25"><title>{}</title></rect>"##,
                x(*from),
                (x(*to) - x(*from)).max(1.0),
                esc(label)
            );
        }
        let mut ms = 0.0;
        while ms <= max_ms {
            let _ = write!(
                o,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#777">{ms}</text>"##,
                LEFT,
                y(ms),
                LEFT + W,
                y(ms),
                LEFT - 4.0,
                y(ms) + 4.0
            );
            ms += y_step;
        }
        let mut t = 0.0;
        while t <= end_s + 1e-9 {
            let _ = write!(
                o,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#777">{t}</text>"##,
                LEFT + t / end_s * W,
                top + H + 14.0
            );
            t += x_step;
        }
        // One dot per pixel: packets a millisecond apart overlap anyway.
        let mut d = String::new();
        let mut last = None;
        for (sent, delay) in &s.points {
            let p = (
                (x(*sent) * 2.0).round() / 2.0,
                (y(delay.as_micros() as f64 / 1000.0) * 2.0).round() / 2.0,
            );
            if last != Some(p) {
                let _ = write!(d, "M{:.1} {:.1}h1", p.0, p.1);
                last = Some(p);
            }
        }
        let _ = write!(
            o,
            r##"<path class="delays" data-count="{}" d="{d}" stroke="#16a" stroke-width="2" fill="none"/>"##,
            s.points.len()
        );
        let mut ticks = String::new();
        let mut last = None;
        for t in &s.lost {
            let px = x(*t).round();
            if last != Some(px) {
                let _ = write!(ticks, "M{px:.0} {:.1}v8", top + 2.0);
                last = Some(px);
            }
        }
        let _ = write!(
            o,
            r##"<path class="lost" data-count="{}" d="{ticks}" stroke="#d00" stroke-width="1.5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#d00">{} lost</text></g>"##,
            s.lost.len(),
            LEFT + W - 4.0,
            top + 22.0,
            s.lost.len()
        );
    }
    o.push_str("</svg>");
    o
}
