//! The scenario files under `testbed/scenarios/`: each runs in the
//! simulator (`testbed run FILE`) and its report is checked as the demo's
//! is; the same seed gives the same report; the demo's file is the demo;
//! mistakes are errors naming the line and the field.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tools::pictures::{assert_arrows_are_tsharks, assert_intervals_are_the_latencies, svgs};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");

fn testbed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(args)
        .output()
        .unwrap()
}

/// `testbed run FILE --json` into `dir`: what it printed.
fn run(file: &Path, dir: &Path) -> Value {
    let out = testbed(&[
        "run",
        file.to_str().unwrap(),
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(SCENARIOS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_scenario_runs_and_draws_what_tshark_counts() {
    let names: Vec<String> = files()
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    // The five the issue asks for.
    for want in [
        "demo",
        "two-correspondents",
        "cookie-coa-test",
        "lossy-access",
        "fast-mover",
    ] {
        assert!(names.iter().any(|n| n == want), "{want}.yaml is missing");
    }
    let tshark = tools::require("tshark", &["--version"]);
    for file in files() {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = tools::scratch(&format!("scenario-{stem}"));
        let v = run(&file, &dir);
        let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
        for s in svgs(&html) {
            roxmltree::Document::parse(&s).unwrap();
        }
        // report.json is the summary and the pictures.
        let js: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                .unwrap();
        let mut without = js.clone();
        without.as_object_mut().unwrap().remove("pictures");
        assert_eq!(without, v, "{stem}");
        let runs = v["runs"].as_array().unwrap();
        assert!(!runs.is_empty());
        // Every handoff drawn with its latency, where it had one.
        assert!(assert_intervals_are_the_latencies(&dir) > 0, "{stem}");
        if tshark {
            let scenario = testbed::scenario::read(&file).unwrap();
            let links: Vec<String> = scenario.runs[0]
                .1
                .links
                .iter()
                .map(|l| l.name.clone())
                .collect();
            let links: Vec<&str> = links.iter().map(String::as_str).collect();
            assert!(assert_arrows_are_tsharks(&dir, &links) > 10, "{stem}");
        }
    }
}

#[test]
fn the_scenarios_show_what_they_are_about() {
    let json = |stem: &str| {
        let dir = tools::scratch(&format!("scenario-about-{stem}"));
        run(&Path::new(SCENARIOS).join(format!("{stem}.yaml")), &dir);
        let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let labels = |v: &Value, run: usize| -> Vec<String> {
        v["pictures"]["runs"][run]["handoffs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|h| h["signalling"].as_array().unwrap().clone())
            .map(|a| a["label"].as_str().unwrap().to_string())
            .collect()
    };
    // The cookie test: a BA with a cookie, then the BU that echoes it.
    let v = json("cookie-coa-test");
    let l = labels(&v, 0);
    let ba = l
        .iter()
        .position(|x| x.starts_with("BA") && x.contains("+cookie"));
    let bu = l
        .iter()
        .rposition(|x| x.starts_with("BU") && x.contains("+cookie"));
    assert!(ba.is_some() && bu > ba, "{l:?}");
    // Two correspondents: one bound over ESP, one after the RR tests.
    let v = json("two-correspondents");
    let l = labels(&v, 0);
    assert!(
        l.iter().any(|x| x.contains("draft-dupont-mipv6-cn-ipsec")),
        "{l:?}"
    );
    assert!(l.iter().any(|x| x.starts_with("HoTI")) && l.iter().any(|x| x.starts_with("CoT")));
    // The fast mover: more handoffs than seconds away, IPsec keeping up.
    let v = json("fast-mover");
    let ipsec = &v["pictures"]["runs"][1]["handoffs"];
    assert_eq!(ipsec.as_array().unwrap().len(), 6);
    for h in ipsec.as_array().unwrap().iter().take(5) {
        assert!(h["latency_ms"].as_f64().unwrap() < 400.0, "{h}");
    }
    // Make before break: B binds while A still carries the flow, then A
    // goes, and no packet sent from B's arrival until the move home is
    // lost (those sent in the last 20 ms before it were on their way to
    // B when the node left it); the switch to A did lose some.
    let v = json("make-before-break");
    for run in 0..2 {
        let r = &v["pictures"]["runs"][run];
        let lost: Vec<u64> = r["down_lost_sent_us"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        let during = lost
            .iter()
            .filter(|t| (3_900_000..7_970_000).contains(*t))
            .count();
        assert_eq!(during, 0, "{lost:?}");
        assert!(
            lost.iter().any(|t| (2_000_000..2_100_000).contains(t)),
            "{lost:?}"
        );
        let to_b = &r["handoffs"][1];
        assert_eq!(to_b["to"], "access-b");
        assert!(
            to_b["latency_ms"].as_f64().unwrap() > 40.0,
            "{to_b}: over B, not A"
        );
    }
    // The lossy link loses CN→MN packets outside handoffs too.
    let v = json("lossy-access");
    let lost = v["pictures"]["runs"][1]["down_lost_sent_us"]
        .as_array()
        .unwrap();
    let quiet = lost
        .iter()
        .filter(|t| (2_500_000..6_000_000).contains(&t.as_u64().unwrap()))
        .count();
    assert!(
        quiet > 50,
        "{quiet} lost on the lossy link between handoffs"
    );
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let file = Path::new(SCENARIOS).join("lossy-access.yaml");
    let dir = tools::scratch("scenario-again");
    run(&file, &dir);
    let first: Vec<Vec<u8>> = ["report.html", "report.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    run(&file, &dir);
    for (f, before) in ["report.html", "report.json"].iter().zip(first) {
        assert!(std::fs::read(dir.join(f)).unwrap() == before, "{f} differs");
    }
}

#[test]
fn the_demo_scenario_is_the_demo() {
    let a = tools::scratch("scenario-demo-file");
    let b = tools::scratch("scenario-demo-command");
    run(&Path::new(SCENARIOS).join("demo.yaml"), &a);
    let out = testbed(&[
        "demo",
        "--json",
        "--seed",
        "1",
        "--out",
        b.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let demo: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pcaps = demo["pcaps"].as_array().unwrap();
    assert_eq!(pcaps.len(), 12);
    for p in pcaps {
        let name = Path::new(p.as_str().unwrap()).file_name().unwrap();
        let same = std::fs::read(a.join(name)).unwrap() == std::fs::read(b.join(name)).unwrap();
        assert!(same, "{name:?} differs");
    }
}

/// `testbed run` on `text` (as a file): its one line on stderr.
fn error_of(name: &str, text: &str) -> String {
    let dir = tools::scratch("scenario-errors");
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    let out = testbed(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{name} ran");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn mistakes_name_the_line_and_the_field() {
    let demo = std::fs::read_to_string(Path::new(SCENARIOS).join("demo.yaml")).unwrap();
    let line_of = |needle: &str| demo.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases = [
        (
            "unknown-key",
            demo.replace("delay_ms: 20}", "delay_ms: 20, dealy_ms: 3}"),
            line_of("delay_ms: 20}"),
            "links[1]: unknown field `dealy_ms`",
        ),
        (
            "bad-loss",
            demo.replace("delay_ms: 0.2}", "delay_ms: 0.2, loss: 1.5}"),
            line_of("access-a"),
            "links[2].loss: must be from 0 to below 1",
        ),
        (
            "no-such-link",
            demo.replace("{at: 5.0, to: access-b}", "{at: 5.0, to: acess-b}"),
            line_of("{at: 5.0"),
            "moves[1].to: no link named \"acess-b\"",
        ),
        (
            "bad-mode",
            demo.replace("{name: cn, link: cn}", "{name: cn, link: cn, mode: fast}"),
            line_of("{name: cn, link: cn}"),
            "cns[0].mode: unknown variant `fast`",
        ),
        (
            "zero-interval",
            demo.replace("every_ms: 50", "every_ms: 0"),
            line_of("every_ms: 50"),
            "pings[0].every_ms: must be more than 0",
        ),
        (
            "moves-back-in-time",
            demo.replace("{at: 8.0, to: home}", "{at: 4.0, to: home}"),
            line_of("{at: 8.0"),
            "moves[2].at: must be after the last move",
        ),
        (
            "not-home-first",
            demo.replace("links: [home, access-a", "links: [access-a, home"),
            line_of("links: [home"),
            "mn.links: must start with the home agent's link",
        ),
    ];
    for (name, text, line, want) in cases {
        let e = error_of(name, &text);
        let at = format!("{name}.yaml:{line}:");
        assert!(
            e.contains(&at) && e.contains(want),
            "{name}: {e}\nwant {at} … {want}"
        );
    }
}
