//! `testbed demo`'s `report.html`: self-contained, its SVGs parse as XML,
//! every sequence diagram draws as many arrows of each signalling type as
//! tshark counts in the pcaps over its window, the handoff interval drawn
//! is the latency `--json` reports, and the same seed gives the same page.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

const SEED: u64 = 7;
const RUNS: [&str; 3] = ["rr", "ipsec", "ipsec-ike"];
const LINKS: [&str; 4] = ["home", "cn", "access-a", "access-b"];

/// `testbed demo --json` into `dir`: what it printed.
fn demo(dir: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["demo", "--json", "--out", dir.to_str().unwrap()])
        .args(["--seed", &SEED.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The demo's output directory and `--json`, made once per test binary.
fn shared() -> &'static (PathBuf, Value) {
    static DIR: OnceLock<(PathBuf, Value)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tools::scratch("report-shared");
        let v = demo(&dir);
        (dir, v)
    })
}

/// Every `<svg>…</svg>` of the page, each parsed on its own.
fn svgs(html: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = html;
    while let Some(i) = rest.find("<svg") {
        let j = rest[i..].find("</svg>").unwrap() + i + "</svg>".len();
        out.push(rest[i..j].to_string());
        rest = &rest[j..];
    }
    out
}

/// A sequence diagram: its title, time axis (µs, y) and elements.
struct Diagram {
    title: String,
    knots: Vec<(f64, f64)>,
    kinds: BTreeMap<String, usize>,
    latency_rects: Vec<(f64, f64)>,
}

impl Diagram {
    fn parse(svg: &str) -> Diagram {
        let doc = roxmltree::Document::parse(svg).unwrap();
        let root = doc.root_element();
        let knots = root
            .attribute("data-axis")
            .unwrap()
            .split(' ')
            .map(|k| {
                let (t, y) = k.split_once(':').unwrap();
                (t.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        let title = root
            .descendants()
            .find(|n| n.has_tag_name("text"))
            .and_then(|n| n.text())
            .unwrap()
            .to_string();
        let mut kinds = BTreeMap::new();
        let mut latency_rects = vec![];
        for n in root.descendants() {
            if n.attribute("class") == Some("msg") {
                *kinds
                    .entry(n.attribute("data-kind").unwrap().to_string())
                    .or_default() += 1;
            }
            if n.attribute("class") == Some("latency") {
                let y: f64 = n.attribute("y").unwrap().parse().unwrap();
                let h: f64 = n.attribute("height").unwrap().parse().unwrap();
                latency_rects.push((y, y + h));
            }
        }
        Diagram {
            title,
            knots,
            kinds,
            latency_rects,
        }
    }

    /// The time (µs) at height `y`, from the axis the diagram was drawn on.
    fn time(&self, y: f64) -> f64 {
        let i = self.knots.iter().position(|k| k.1 >= y).unwrap();
        if i == 0 {
            return self.knots[0].0;
        }
        let ((t0, y0), (t1, y1)) = (self.knots[i - 1], self.knots[i]);
        t0 + (y - y0) / (y1 - y0) * (t1 - t0)
    }

    fn window(&self) -> (u64, u64) {
        let (a, b) = (self.knots[0].0, self.knots.last().unwrap().0);
        (a as u64, b as u64)
    }

    fn run(&self) -> &str {
        self.title.split(':').next().unwrap()
    }
}

fn page() -> String {
    std::fs::read_to_string(shared().0.join("report.html")).unwrap()
}

fn diagrams() -> Vec<Diagram> {
    svgs(&page())
        .iter()
        .filter(|s| s.contains("class=\"sequence\""))
        .map(|s| Diagram::parse(s))
        .collect()
}

#[test]
fn the_report_is_one_page_of_pictures_that_parse() {
    let html = page();
    // Nothing to fetch: no script, stylesheet or image from elsewhere.
    for bad in ["<script", "<link", "<img", "<iframe", "https://", "src="] {
        assert!(!html.contains(bad), "report.html has {bad}");
    }
    let http: Vec<&str> = html.matches("http://").collect();
    let svgs = svgs(&html);
    // The SVG namespace is the only address in it.
    assert_eq!(http.len(), svgs.len());
    for s in &svgs {
        roxmltree::Document::parse(s).unwrap();
    }
    let ds = diagrams();
    // One diagram per handoff and run, in run order.
    let runs: Vec<&str> = ds.iter().map(Diagram::run).collect();
    let want: Vec<&str> = RUNS.iter().flat_map(|r| [*r; 3]).collect();
    assert_eq!(runs, want);
    let plot = svgs
        .iter()
        .find(|s| s.contains("class=\"delay-plot\""))
        .unwrap();
    let doc = roxmltree::Document::parse(plot).unwrap();
    let panels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("panel"))
        .map(|n| n.attribute("data-run").unwrap())
        .collect();
    assert_eq!(panels, RUNS);
    // Every CN→MN packet is a dot or a lost tick: 8.5 s at one a ms.
    let count = |class: &str| -> Vec<u64> {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .map(|n| n.attribute("data-count").unwrap().parse().unwrap())
            .collect()
    };
    for (dots, lost) in count("delays").iter().zip(count("lost")) {
        assert_eq!(dots + lost, 8500);
        assert!(lost > 0);
    }
    // The pcaps are linked, by their names beside the page.
    for r in RUNS {
        for l in LINKS {
            assert!(html.contains(&format!("<a href=\"{r}-{l}.pcap\">")));
        }
    }
    // report.json is `--json` and the pictures' data.
    let js: Value =
        serde_json::from_str(&std::fs::read_to_string(shared().0.join("report.json")).unwrap())
            .unwrap();
    let mut without = js.clone();
    without.as_object_mut().unwrap().remove("pictures");
    assert_eq!(without, shared().1);
    assert_eq!(js["pictures"]["runs"].as_array().unwrap().len(), RUNS.len());
}

#[test]
fn the_drawn_handoff_interval_is_the_json_latency() {
    let v = &shared().1;
    let ds = diagrams();
    for (i, run) in RUNS.iter().enumerate() {
        assert_eq!(v["runs"][i]["mode"], *run);
        let drawn: Vec<f64> = ds
            .iter()
            .filter(|d| d.run() == *run && !d.title.contains("to home"))
            .map(|d| {
                let [(y1, y2)] = d.latency_rects[..] else {
                    panic!("{}: one latency interval", d.title)
                };
                (d.time(y2) - d.time(y1)) / 1000.0
            })
            .collect();
        assert_eq!(drawn.len(), 2, "{run}: two handoffs away");
        let mean = drawn.iter().sum::<f64>() / 2.0;
        let json = v["runs"][i]["handoff_latency_ms"].as_f64().unwrap();
        assert!(
            (mean - json).abs() < 0.01,
            "{run}: drawn {mean} ms, json {json} ms"
        );
    }
}

#[test]
fn the_path_pictures_trace_the_packets_the_way_each_mode_sends_them() {
    let html = page();
    let routes: Vec<(String, String, String)> = svgs(&html)
        .iter()
        .filter(|s| s.contains("class=\"paths\""))
        .map(|s| {
            let doc = roxmltree::Document::parse(s).unwrap();
            let r = doc.root_element();
            let a = |k| r.attribute(k).unwrap().to_string();
            (a("data-run"), a("data-phase"), a("data-route"))
        })
        .collect();
    let phases: Vec<(&str, &str)> = routes.iter().map(|r| (&r.0[..], &r.1[..])).collect();
    let want: Vec<(&str, &str)> = RUNS
        .iter()
        .flat_map(|r| {
            [
                "at home, direct",
                "through the home agent, tunnelled",
                "route optimised",
            ]
            .map(|p| (*r, p))
        })
        .collect();
    assert_eq!(phases, want);
    for (run, phase, route) in &routes {
        let ok = match &phase[..] {
            "at home, direct" => route == "CN>cn>router>home>MN",
            // Return routability waits for the home agent's binding
            // first; with IPsec the correspondent is bound before the
            // tunnel is, and no packet goes through it.
            "through the home agent, tunnelled" if run == "rr" => {
                route.starts_with("CN>cn>router>home>HA>home>router>access-")
                    && route.ends_with(">MN")
            }
            "through the home agent, tunnelled" => route.is_empty(),
            _ => {
                let access = route.strip_prefix("CN>cn>router>access-");
                access.is_some_and(|a| a.ends_with(">MN") && a.len() == 4)
            }
        };
        assert!(ok, "{run}, {phase}: {route}");
    }
}

/// The tshark fields that tell each drawn type, and the value for it.
const TYPES: [(&str, &str, &str); 11] = [
    ("BU", "mip6.mhtype", "5"),
    ("BA", "mip6.mhtype", "6"),
    ("HoTI", "mip6.mhtype", "1"),
    ("CoTI", "mip6.mhtype", "2"),
    ("HoT", "mip6.mhtype", "3"),
    ("CoT", "mip6.mhtype", "4"),
    ("RS", "icmpv6.type", "133"),
    ("IKE_SA_INIT", "isakmp.exchangetype", "34"),
    ("IKE_AUTH", "isakmp.exchangetype", "35"),
    ("CREATE_CHILD_SA", "isakmp.exchangetype", "36"),
    ("INFORMATIONAL", "isakmp.exchangetype", "37"),
];

/// (µs, field, value) of every frame of `pcap` that has one of `TYPES`'
/// fields, as tshark with the run's keys sees them.
fn tshark_types(pcap: &Path, keys: &Path) -> Vec<(u64, String, String)> {
    let mut cmd = Command::new("tshark");
    cmd.env("WIRESHARK_CONFIG_DIR", keys)
        .args(["-n", "-r", pcap.to_str().unwrap(), "-T", "fields"])
        .args(["-e", "frame.time_epoch"]);
    let fields = ["mip6.mhtype", "icmpv6.type", "isakmp.exchangetype"];
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let mut v = vec![];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let us = (cols[0].parse::<f64>().unwrap() * 1e6).round() as u64;
        for (f, c) in fields.iter().zip(&cols[1..]) {
            // One count per frame, as the diagram draws one arrow a frame.
            if let Some(x) = c.split(',').find(|x| !x.is_empty()) {
                v.push((us, f.to_string(), x.to_string()));
            }
        }
    }
    v
}

#[test]
fn each_diagram_draws_every_message_tshark_counts() {
    if !tools::require("tshark", &["--version"]) {
        return;
    }
    let dir = &shared().0;
    let ds = diagrams();
    let mut total = 0;
    for run in RUNS {
        let keys = dir.join(format!("wireshark-{run}"));
        let frames: Vec<(u64, String, String)> = LINKS
            .iter()
            .flat_map(|l| tshark_types(&dir.join(format!("{run}-{l}.pcap")), &keys))
            .collect();
        for d in ds.iter().filter(|d| d.run() == run) {
            let (a, b) = d.window();
            for (kind, field, value) in TYPES {
                let want = frames
                    .iter()
                    .filter(|(t, f, x)| *t >= a && *t < b && f == field && x == value)
                    .count();
                let got = d.kinds.get(kind).copied().unwrap_or(0);
                assert_eq!(got, want, "{}: {kind} arrows", d.title);
                total += got;
            }
            // Every handoff away is bound: a BU and a BA at least.
            if !d.title.contains("to home") {
                assert!(d.kinds["BU"] >= 2 && d.kinds["BA"] >= 2, "{}", d.title);
            }
        }
    }
    assert!(total > 50, "{total} arrows counted");
}

#[test]
fn testbed_sequence_draws_every_message_of_a_capture() {
    if !tools::require("tshark", &["--version"]) {
        return;
    }
    let dir = &shared().0;
    let pcap = dir.join("ipsec-ike-access-a.pcap");
    let keys = dir.join("wireshark-ipsec-ike");
    let svg = dir.join("access-a.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["sequence", "--pcap", pcap.to_str().unwrap()])
        .args(["--keylog", keys.to_str().unwrap()])
        .args(["--name", "2001:db8:2::100=MN", "--name", "2001:db8:1::1=HA"])
        .args(["-o", svg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let d = Diagram::parse(&text);
    let frames = tshark_types(&pcap, &keys);
    let nd = [("RA", "134"), ("NS", "135"), ("NA", "136")].map(|(k, v)| (k, "icmpv6.type", v));
    for (kind, field, value) in TYPES.into_iter().chain(nd) {
        let want = frames
            .iter()
            .filter(|(_, f, x)| f == field && x == value)
            .count();
        assert_eq!(d.kinds.get(kind).copied().unwrap_or(0), want, "{kind}");
    }
    // Every ESP frame opened with the key log: none drawn as opaque ESP.
    assert_eq!(d.kinds.get("ESP"), None);
    assert!(d.kinds["INFORMATIONAL"] > 0 && d.kinds["BU"] > 0);
    // The named lifelines come first.
    let doc = roxmltree::Document::parse(&text).unwrap();
    let lanes: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text") && n.attribute("font-weight") == Some("bold"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(lanes[1..3], ["MN (2001:db8:2::100)", "HA (2001:db8:1::1)"]);
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let dir = tools::scratch("report-again");
    demo(&dir);
    let first: Vec<Vec<u8>> = ["report.html", "report.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    demo(&dir);
    for (f, before) in ["report.html", "report.json"].iter().zip(first) {
        assert!(std::fs::read(dir.join(f)).unwrap() == before, "{f} differs");
    }
}
