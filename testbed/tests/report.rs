//! `testbed demo`'s `report.html`: self-contained, its SVGs parse as XML,
//! every sequence diagram draws as many arrows of each signalling type as
//! tshark counts in the pcaps over its window, the handoff interval drawn
//! is the latency `--json` reports, and the same seed gives the same page.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use tools::pictures::{
    assert_arrows_are_tsharks, chromium, png_stats, svgs, tshark_types, Diagram, TYPES,
};

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

fn page() -> String {
    std::fs::read_to_string(shared().0.join("report.html")).unwrap()
}

fn diagrams() -> Vec<Diagram> {
    tools::pictures::diagrams(&shared().0)
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
    // Every handoff's, home-coming ones too, against report.json.
    let drawn = tools::pictures::assert_intervals_are_the_latencies(&shared().0);
    assert_eq!(drawn, RUNS.len() * 3);
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

#[test]
fn each_diagram_draws_every_message_tshark_counts() {
    if !tools::require("tshark", &["--version"]) {
        return;
    }
    let total = assert_arrows_are_tsharks(&shared().0, &LINKS);
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
    // IKE opened with the key log's IKE SAs: every MOBIKE address update
    // tshark finds inside SK is labelled as one.
    let titles = msg_titles(&doc);
    let updates = titles
        .iter()
        .filter(|t| t.starts_with("INFORMATIONAL") && t.contains("UPDATE_SA_ADDRESSES"))
        .count();
    assert_eq!(
        updates,
        tshark_count(&pcap, &keys, "isakmp.notify.msgtype == 16400")
    );
    assert!(updates > 0);
    assert!(titles.iter().any(|t| t.contains("liveness")), "{titles:?}");
}

/// The `<title>` of every signalling arrow of a diagram.
fn msg_titles(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.attribute("class") == Some("msg"))
        .filter_map(|n| n.children().find(|c| c.has_tag_name("title")))
        .filter_map(|t| t.text().map(str::to_string))
        .collect()
}

/// Frames of `pcap` matching `filter`, as tshark with the keys sees them.
fn tshark_count(pcap: &Path, keys: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", keys)
        .args(["-n", "-r", pcap.to_str().unwrap(), "-Y", filter])
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn testbed_sequence_names_what_ike_says_inside_sk() {
    if !tools::require("tshark", &["--version"]) {
        return;
    }
    let dir = &shared().0;
    let pcap = dir.join("ipsec-ike-home.pcap");
    let keys = dir.join("wireshark-ipsec-ike");
    let svg = dir.join("home.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["sequence", "--pcap", pcap.to_str().unwrap()])
        .args([
            "--keylog",
            keys.to_str().unwrap(),
            "-o",
            svg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let titles = msg_titles(&doc);
    let with = |what: &str| titles.iter().filter(|t| t.contains(what)).count();
    // The identities of IKE_AUTH, as tshark decrypts them.
    for id in ["mn.example.org", "ha.example.org", "cn.example.org"] {
        let filter = format!("isakmp.id.data.fqdn == \"{id}\"");
        assert_eq!(
            with(&format!("={id}")),
            tshark_count(&pcap, &keys, &filter),
            "{id}"
        );
    }
    assert!(with("IDi=mn.example.org") >= 2, "{titles:?}");
    // Each update names its section; the return routability check of RFC
    // 4555 its own.
    let updates = with("UPDATE_SA_ADDRESSES");
    assert_eq!(
        updates,
        tshark_count(&pcap, &keys, "isakmp.notify.msgtype == 16400")
    );
    assert_eq!(
        with("UPDATE_SA_ADDRESSES COOKIE2 NO_ADDITIONAL_ADDRESSES · RFC 4555 §3.5"),
        updates
    );
    assert_eq!(
        with("INFORMATIONAL #"),
        tshark_count(&pcap, &keys, "isakmp.exchangetype == 37")
    );
    let cookie2_only = titles
        .iter()
        .filter(|t| t.contains("COOKIE2 · RFC 4555 §3.7"))
        .count();
    assert!(cookie2_only > 0, "{titles:?}");
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

#[test]
fn chromium_draws_the_report_with_no_console_message() {
    if !tools::require("chromium", &["--version"]) {
        return;
    }
    let dir = tools::scratch("report-chromium");
    // The checks catch what they look for: a script error is logged, a
    // blank page is blank.
    let bad = dir.join("bad.html");
    std::fs::write(
        &bad,
        "<html><body><script>console.error('x'); nope();</script></body></html>",
    )
    .unwrap();
    let logged = chromium(&bad, &dir.join("bad.png"), (400, 300));
    assert_eq!(logged.len(), 2, "{logged:?}");
    let blank = png_stats(&dir.join("bad.png"));
    assert_eq!(blank["not_background"].as_f64(), Some(0.0), "{blank}");

    let page = shared().0.join("report.html");
    let png = shared().0.join("report.png");
    let logged = chromium(&page, &png, (1300, 4000));
    assert!(logged.is_empty(), "{logged:?}");
    let s = png_stats(&png);
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(1300), Some(4000))
    );
    // Text, lifelines, arrows, bars in several colours over a good part
    // of the page.
    assert!(s["not_background"].as_f64().unwrap() > 0.03, "{s}");
    assert!(s["colours"].as_u64().unwrap() > 50, "{s}");
}
