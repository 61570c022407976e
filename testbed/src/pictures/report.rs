//! `report.html`: one self-contained page per demo or scenario (inline
//! SVG, no script, no link but to the pcaps beside it), and its data as
//! JSON.

use std::fmt::Write;
use std::path::Path;

use common::keylog::KeyTable;
use common::time::{Duration, Instant};
use common::wire::CodePoints;
use serde_json::{json, Value};

use super::plot::{delay_plot, Series};
use super::sequence::{Arrow, Interval, Sequence};
use super::{classify, esc, Keys};
use crate::demo::Run;
use crate::sim::{NodeId, Sim};
use crate::topology::{Layout, Network};

/// A run that was played, with the simulator it ran in.
pub struct Played<'a> {
    pub run: &'a Run,
    pub sim: &'a Sim,
    pub net: &'a Network,
    pub layout: &'a Layout,
}

impl Played<'_> {
    /// Lifelines: MN, router, HA, then each correspondent.
    fn lanes(&self) -> Vec<String> {
        let mut l = vec!["MN".into(), "router".into(), "HA".into()];
        l.extend(self.net.cns.iter().map(|c| c.name.to_uppercase()));
        l
    }

    fn lane(&self, n: NodeId) -> usize {
        let ly = self.layout;
        match ly.cns.iter().position(|c| *c == n) {
            Some(i) => 3 + i,
            None if n == ly.mn => 0,
            None if n == ly.ha => 2,
            None => 1,
        }
    }

    /// Every key of the run, static or negotiated, from its key log.
    pub fn keys(&self) -> Keys {
        let rows = |table: KeyTable| {
            let rows: Vec<&str> = self
                .sim
                .keylog
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, r)| r.as_str())
                .collect();
            rows.join("\n")
        };
        Keys::from_tables(&rows(KeyTable::Esp), &rows(KeyTable::Ikev2))
    }

    /// Every captured frame sent in `[from, to)` on any link, as arrows:
    /// to the node that got it (the mobile node first, of a multicast
    /// one), or if it was lost, to the router, or from it to the mobile
    /// node; router discovery only to or from the mobile node.
    fn arrows(&self, keys: &Keys, from: Instant, to: Instant) -> Vec<Arrow> {
        let cp = CodePoints::default();
        let mut out = vec![];
        for link in &self.layout.links {
            let frames = self.sim.captured(*link).iter().zip(self.sim.hops(*link));
            for ((sent, bytes), hop) in frames {
                let Some(sender) = hop.from.filter(|_| *sent >= from && *sent < to) else {
                    continue;
                };
                let (arrived, receiver) = match &hop.arrived {
                    Some((at, nodes)) => {
                        let r = nodes.iter().find(|n| **n == self.layout.mn);
                        (Some(*at), r.or(nodes.first()).copied())
                    }
                    None => (None, None),
                };
                let msg = classify(bytes, &cp, keys);
                // Router discovery of the mobile node only: the other
                // links' advertisements would fill the page.
                let mn = self.layout.mn;
                let rd = matches!(msg.kind, "RS" | "RA");
                if rd && sender != mn && receiver != Some(mn) {
                    continue;
                }
                let receiver = receiver.unwrap_or(if sender == self.layout.router {
                    mn
                } else {
                    self.layout.router
                });
                out.push(Arrow {
                    from: self.lane(sender),
                    to: self.lane(receiver),
                    sent: *sent,
                    arrived,
                    msg,
                });
            }
        }
        out.sort_by_key(|a| (a.sent, a.from, a.to));
        out
    }

    /// One diagram per handoff ([`handoff_sequences`]).
    pub fn sequences(&self) -> Vec<Sequence> {
        let keys = self.keys();
        handoff_sequences(self.run, &self.lanes(), Instant::ZERO, |from, to| {
            self.arrows(&keys, from, to)
        })
    }

    /// The CN→MN packets of the measured flow.
    fn series(&self) -> Series {
        let run = self.run;
        let points = self
            .sim
            .arrivals
            .iter()
            .filter(|a| Some(a.flow) == run.down_flow)
            .map(|a| (a.sent, a.at.saturating_duration_since(a.sent)))
            .collect();
        Series {
            name: run.name.into(),
            points,
            lost: run.down_lost.clone(),
            handoffs: handoff_spans(run),
        }
    }
}

/// One diagram per handoff of `run`, its arrows from `arrows(from, to)`
/// (every frame sent in `[from, to)`) on a clock whose time zero of the
/// run is `origin` (the simulator's zero, or a capture's wall clock):
/// from just before the link comes up until the last binding or IKE
/// message of the handoff has arrived (and the latency is over), before
/// the next move.
pub fn handoff_sequences(
    run: &Run,
    lanes: &[String],
    origin: Instant,
    arrows: impl Fn(Instant, Instant) -> Vec<Arrow>,
) -> Vec<Sequence> {
    let mut out = vec![];
    for (i, h) in run.handoffs.iter().enumerate() {
        let at = origin + (h.at - Instant::ZERO);
        let next = run
            .handoffs
            .get(i + 1)
            .map_or(Instant::from_micros(u64::MAX / 2), |n| {
                origin + (n.at - Instant::ZERO)
            });
        let limit = next.min(at + Duration::from_secs(2));
        let start = Instant::from_micros(at.total_micros().saturating_sub(1000));
        let burst = arrows(at, limit)
            .into_iter()
            .filter(|a| !a.msg.is_data() && !matches!(a.msg.kind, "RS" | "RA" | "NS" | "NA"))
            .filter_map(|a| a.arrived)
            .max();
        let latency_end = h.latency.map(|l| at + l);
        let last = burst.max(latency_end).unwrap_or(at);
        let margin = last.saturating_duration_since(start) / 20 + Duration::from_millis(2);
        let end = (last + margin).min(next);
        let intervals = latency_end
            .map(|e| Interval {
                from: at,
                to: e,
                label: format!(
                    "handoff latency {:.1} ms",
                    e.saturating_duration_since(at).as_micros() as f64 / 1000.0
                ),
            })
            .into_iter()
            .collect();
        out.push(Sequence {
            title: format!("{}: handoff to {} at {:.3} s", run.name, h.to, secs(h.at)),
            lanes: lanes.to_vec(),
            start,
            end,
            arrows: arrows(start, end),
            intervals,
            marks: vec![(at, format!("link up on {}", h.to))],
            origin,
        });
    }
    out
}

/// Each handoff of `run` with a latency, for the delay plot: from link
/// up to the latency's end.
pub fn handoff_spans(run: &Run) -> Vec<(Instant, Instant, String)> {
    run.handoffs
        .iter()
        .filter_map(|h| {
            let l = h.latency?;
            Some((h.at, h.at + l, format!("to {}: {:.1} ms", h.to, ms(l))))
        })
        .collect()
}

fn secs(t: Instant) -> f64 {
    t.total_micros() as f64 / 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.1}", ms(d)))
}

/// What a report shows, and its pictures already drawn.
pub struct Report {
    pub title: String,
    /// A line or two on the topology and its round trips.
    pub intro: String,
    pub runs: Vec<(Run, Vec<Sequence>)>,
    pub plot: String,
    /// Topology panels (SVG), one per phase and mode.
    pub paths: Vec<String>,
    /// File names of the captures, relative to the report, and the
    /// Wireshark command lines that open them decrypted.
    pub pcaps: Vec<String>,
    pub commands: Vec<String>,
    /// The figures as `--json` prints them; the report's JSON adds the
    /// pictures' data to it.
    pub summary: Value,
}

impl Report {
    /// Draws the pictures of `played`, the runs on one timeline ending at
    /// `end`.
    pub fn new(title: &str, intro: &str, played: &[Played], end: Instant) -> Report {
        let series: Vec<Series> = played.iter().map(Played::series).collect();
        let mut r = Report::from_parts(
            title,
            intro,
            played
                .iter()
                .map(|p| (p.run.clone(), p.sequences()))
                .collect(),
            &series,
            end,
        );
        r.paths = played.iter().flat_map(super::paths::panels).collect();
        r
    }

    /// A report of runs whose diagrams are drawn, with the delay plot of
    /// `series` up to `end`.
    pub fn from_parts(
        title: &str,
        intro: &str,
        runs: Vec<(Run, Vec<Sequence>)>,
        series: &[Series],
        end: Instant,
    ) -> Report {
        Report {
            title: title.into(),
            intro: intro.into(),
            runs,
            plot: delay_plot(series, end),
            paths: vec![],
            pcaps: vec![],
            commands: vec![],
            summary: json!({}),
        }
    }

    /// The page.
    pub fn html(&self) -> String {
        let mut o = String::new();
        let _ = write!(
            o,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
             <style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}\
             table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
             th:first-child,td:first-child{{text-align:left}}svg{{display:block;margin:1em 0}}\
             .panels{{display:flex;flex-wrap:wrap;gap:1em}}code{{background:#f4f4f4}}</style></head><body>\n",
            esc(&self.title)
        );
        let _ = writeln!(
            o,
            "<h1>{}</h1>\n<p>{}</p>",
            esc(&self.title),
            esc(&self.intro)
        );
        o.push_str("<h2>Side by side</h2>\n");
        o.push_str(&self.table());
        if !self.paths.is_empty() {
            o.push_str(
                "<h2>Where the CN→MN packets go</h2>\n<p>The path of one packet of the \
                 correspondent's flow in each phase, hop by hop, as the captures show it.</p>\
                 <div class=\"panels\">",
            );
            for p in &self.paths {
                o.push_str(p);
            }
            o.push_str("</div>\n");
        }
        o.push_str(
            "<h2>Handoffs, message by message</h2>\n<p>Each arrow leaves its sender when the \
             packet was sent and reaches the receiver when it arrived; signalling is labelled \
             (type, sequence number, status, ESP, the section it follows; hover for the times), \
             data packets are faint, the orange bar is the handoff latency.</p>\n",
        );
        for (run, seqs) in &self.runs {
            let _ = writeln!(o, "<h3 id=\"run-{0}\">{0}</h3>", esc(run.name));
            for s in seqs {
                o.push_str(&s.svg());
                o.push('\n');
            }
        }
        o.push_str(
            "<h2>Delay and loss</h2>\n<p>One-way delay of every CN→MN flow packet by the time \
             it was sent; handoffs shaded from link up to the first packet on the final path; \
             red ticks: packets never delivered.</p>\n",
        );
        o.push_str(&self.plot);
        if !self.pcaps.is_empty() {
            o.push_str("\n<h2>Captures</h2>\n<ul>");
            for p in &self.pcaps {
                let _ = write!(o, "<li><a href=\"{0}\">{0}</a></li>", esc(p));
            }
            o.push_str("</ul>\n<p>Decrypted (ESP and IKE) in Wireshark:</p><ul>");
            for c in &self.commands {
                let _ = write!(o, "<li><code>{}</code></li>", esc(c));
            }
            o.push_str("</ul>\n");
        }
        o.push_str("</body></html>\n");
        o
    }

    fn table(&self) -> String {
        let mut o = String::from(
            "<table><tr><th>run</th><th>handoff latency away (ms, mean)</th><th>lost</th>\
             <th>signalling messages</th><th>bytes</th><th>IKE messages</th><th>IKE bytes</th>\
             <th>ping home</th><th>ping via HA</th><th>ping optimised</th></tr>\n",
        );
        for (r, _) in &self.runs {
            let _ = writeln!(
                o,
                "<tr><td><a href=\"#run-{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td>\
                 <td>{5}</td><td>{6}</td><td>{7}</td><td>{8}</td><td>{9}</td></tr>",
                esc(r.name),
                opt_ms(r.away_latency()),
                r.away_lost(),
                r.signalling_messages,
                r.signalling_bytes,
                r.ike_messages,
                r.ike_bytes,
                opt_ms(r.ping_home),
                opt_ms(r.ping_via_ha),
                opt_ms(r.ping_optimised)
            );
        }
        o.push_str("</table>\n");
        o
    }

    /// [`Report::summary`] with the pictures' data: per run, each
    /// handoff's diagram (window, latency, every signalling arrow) and
    /// the lost packets plotted.
    pub fn json(&self) -> Value {
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|(r, seqs)| {
                let handoffs: Vec<Value> = r
                    .handoffs
                    .iter()
                    .zip(seqs)
                    .map(|(h, s)| {
                        let arrows: Vec<Value> = s
                            .arrows
                            .iter()
                            .filter(|a| !a.msg.is_data())
                            .map(|a| {
                                json!({
                                    "kind": a.msg.kind,
                                    "label": a.msg.label,
                                    "from": s.lanes[a.from],
                                    "to": s.lanes[a.to],
                                    "sent_us": a.sent.total_micros(),
                                    "arrived_us": a.arrived.map(Instant::total_micros),
                                })
                            })
                            .collect();
                        json!({
                            "to": h.to,
                            "at_us": h.at.total_micros(),
                            "latency_ms": h.latency.map(ms),
                            "lost": h.lost,
                            "window_us": [s.start.total_micros(), s.end.total_micros()],
                            "data_packets": s.arrows.len() - arrows.len(),
                            "signalling": arrows,
                        })
                    })
                    .collect();
                json!({
                    "mode": r.name,
                    "handoff_latency_ms": r.away_latency().map(ms),
                    "packets_lost": r.away_lost(),
                    "down_lost_sent_us": r.down_lost.iter().map(|t| t.total_micros()).collect::<Vec<_>>(),
                    "handoffs": handoffs,
                })
            })
            .collect();
        let mut v = self.summary.clone();
        v["pictures"] = json!({ "title": self.title, "runs": runs });
        v
    }

    /// Writes `report.html` and `report.json` into `dir`; returns the
    /// page's path.
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf, crate::tools::Error> {
        let err = |p: &Path| {
            let p = p.to_path_buf();
            move |e: std::io::Error| crate::tools::Error::from(e).in_file(&p)
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let html = dir.join("report.html");
        std::fs::write(&html, self.html()).map_err(err(&html))?;
        let js = dir.join("report.json");
        let text = format!("{:#}\n", self.json());
        std::fs::write(&js, text).map_err(err(&js))?;
        Ok(html)
    }
}
