//! Reading the pictures back: the SVGs of a report, a sequence
//! diagram's arrows and time axis, and what tshark counts to compare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every `<svg>…</svg>` of the page, each parsed on its own.
pub fn svgs(html: &str) -> Vec<String> {
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
pub struct Diagram {
    pub title: String,
    knots: Vec<(f64, f64)>,
    pub kinds: BTreeMap<String, usize>,
    pub latency_rects: Vec<(f64, f64)>,
}

impl Diagram {
    pub fn parse(svg: &str) -> Diagram {
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
    pub fn time(&self, y: f64) -> f64 {
        let i = self.knots.iter().position(|k| k.1 >= y).unwrap();
        if i == 0 {
            return self.knots[0].0;
        }
        let ((t0, y0), (t1, y1)) = (self.knots[i - 1], self.knots[i]);
        t0 + (y - y0) / (y1 - y0) * (t1 - t0)
    }

    pub fn window(&self) -> (u64, u64) {
        let (a, b) = (self.knots[0].0, self.knots.last().unwrap().0);
        (a as u64, b as u64)
    }

    pub fn run(&self) -> &str {
        self.title.split(':').next().unwrap()
    }
}

/// The tshark fields that tell each drawn type, and the value for it.
pub const TYPES: [(&str, &str, &str); 11] = [
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
pub fn tshark_types(pcap: &Path, keys: &Path) -> Vec<(u64, String, String)> {
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

/// The sequence diagrams of the `report.html` in `dir`.
pub fn diagrams(dir: &Path) -> Vec<Diagram> {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    svgs(&html)
        .iter()
        .filter(|s| s.contains("class=\"sequence\""))
        .map(|s| Diagram::parse(s))
        .collect()
}

/// For every sequence diagram of the report in `dir`: as many arrows of
/// each of [`TYPES`] as tshark counts over the diagram's window in the
/// run's pcaps (`<run>-<link>.pcap`, keys in `wireshark-<run>/`), and a
/// BU in every handoff away. Returns the arrows counted.
pub fn assert_arrows_are_tsharks(dir: &Path, links: &[&str]) -> usize {
    assert_arrows_are_tsharks_in(dir, |run| {
        let pcaps = links
            .iter()
            .map(|l| dir.join(format!("{run}-{l}.pcap")))
            .collect();
        (pcaps, dir.join(format!("wireshark-{run}")))
    })
}

/// [`assert_arrows_are_tsharks`] with each run's pcaps and key log
/// directory from `files(run)`.
pub fn assert_arrows_are_tsharks_in(
    dir: &Path,
    files: impl Fn(&str) -> (Vec<PathBuf>, PathBuf),
) -> usize {
    let ds = diagrams(dir);
    let mut runs: Vec<&str> = ds.iter().map(Diagram::run).collect();
    runs.dedup();
    let mut total = 0;
    for run in runs {
        let (pcaps, keys) = files(run);
        let frames: Vec<(u64, String, String)> =
            pcaps.iter().flat_map(|p| tshark_types(p, &keys)).collect();
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
            if !d.title.contains("to home") {
                let n = |k: &str| d.kinds.get(k).copied().unwrap_or(0);
                assert!(n("BU") >= 1, "{}: {:?}", d.title, d.kinds);
            }
        }
    }
    total
}

/// Each handoff's interval as drawn equals its latency in the
/// `report.json` beside the page; returns how many were drawn.
pub fn assert_intervals_are_the_latencies(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let js: serde_json::Value = serde_json::from_str(&text).unwrap();
    let handoffs: Vec<&serde_json::Value> = js["pictures"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["handoffs"].as_array().unwrap())
        .collect();
    let ds = diagrams(dir);
    assert_eq!(ds.len(), handoffs.len());
    let mut drawn = 0;
    for (d, h) in ds.iter().zip(handoffs) {
        match (&d.latency_rects[..], h["latency_ms"].as_f64()) {
            ([(y1, y2)], Some(ms)) => {
                let got = (d.time(*y2) - d.time(*y1)) / 1000.0;
                assert!(
                    (got - ms).abs() < 0.01,
                    "{}: drawn {got} ms, json {ms}",
                    d.title
                );
                drawn += 1;
            }
            ([], None) => {}
            (r, l) => panic!("{}: intervals {r:?}, latency {l:?}", d.title),
        }
    }
    drawn
}

/// Headless Chromium draws `page` into `png`, `width`×`height` pixels;
/// returns the lines it logged about the page's console (`CONSOLE`).
pub fn chromium(page: &Path, png: &Path, (width, height): (u32, u32)) -> Vec<String> {
    let profile = super::scratch("report-chromium-profile");
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// What `png_stats.py` says of a PNG: size, colours, share of pixels
/// unlike the background.
pub fn png_stats(png: &Path) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/png_stats.py");
    let out = Command::new("/usr/bin/python3")
        .args([script, png.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
