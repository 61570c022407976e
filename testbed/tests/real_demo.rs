//! The demo on real links: namespaces, veths, the real daemons, our router
//! process, kernel ping, UDP and TCP (`testbed::real::demo`). Needs root,
//! tshark, ping and the daemons built next to `testbed` (`cargo test
//! --workspace` builds them); under `CI=true` a missing one fails.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use common::ike::Mobility;
use common::node::RouteOptimisation;
use common::time::Duration;
use common::wire::packet::UdpPayload;
use common::wire::{CodePoints, ExtHeaderRepr, IpRepr, PacketRepr, RoutingRepr, UpperRepr};
use testbed::real::demo::{self as real, Bins, RealRun};
use testbed::tools::pcap::read_packets;
use testbed::topology::{Keying, Setup, CN, HA, HOA};

fn prerequisites() -> Option<Bins> {
    let mut missing = vec![];
    if !testbed::harness::netns::is_root() {
        missing.push("root".to_string());
    }
    for p in ["/usr/bin/ping", "/usr/bin/tshark"] {
        if !Path::new(p).exists() {
            missing.push(p.to_string());
        }
    }
    let bins = Bins::beside(Path::new(env!("CARGO_BIN_EXE_testbed")));
    if let Err(e) = &bins {
        missing.push(e.to_string());
    }
    tools::prerequisites_met(&missing)
        .then(|| bins.ok())
        .flatten()
}

/// One real-demo test at a time, from its run to its last check: a run
/// keeps both cores busy for ten seconds of real time and its latencies
/// are the thing measured, so another test's tshark and Chromium must not
/// run beside it.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run(mode: RouteOptimisation, name: &str) -> Option<(RealRun, Setup, PathBuf)> {
    run_setup(Setup::new(1, mode), name)
}

fn run_setup(setup: Setup, name: &str) -> Option<(RealRun, Setup, PathBuf)> {
    let bins = prerequisites()?;
    let dir = tools::scratch(name);
    let net = setup.network();
    let r = real::run(
        &net,
        &testbed::demo::timeline(),
        testbed::demo::name(&setup),
        &bins,
        &dir,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    Some((r, setup, dir))
}

/// How packets of the UDP flows and pings crossed a link.
#[derive(Debug, Default)]
struct Paths {
    /// Correspondent to home address with a type 2 routing header.
    rh2_down: usize,
    /// Home address to correspondent with a Home Address option.
    hao_up: usize,
    /// IPv6-in-IPv6 between a care-of address and the home agent, each way.
    tunnel_down: usize,
    tunnel_up: usize,
}

/// What to read when a path is missing: the mobile node's and the home
/// agent's logs and the router's counters at exit.
fn logs(dir: &Path) -> String {
    ["mn.log", "ha.log", "router.log"]
        .iter()
        .map(|f| {
            let text = fs::read_to_string(dir.join(f)).unwrap_or_default();
            format!("--- {f}\n{text}")
        })
        .collect()
}

fn paths(pcap: &Path) -> Paths {
    let cp = CodePoints::default();
    let mut p = Paths::default();
    for (_, b) in read_packets(fs::File::open(pcap).unwrap()).unwrap() {
        let Ok(r) = PacketRepr::parse(&b, &cp) else {
            continue;
        };
        let IpRepr::V6 { header, ext } = &r.ip else {
            continue;
        };
        let data = |u: &UpperRepr| {
            matches!(
                u,
                UpperRepr::Udp(_, UdpPayload::Raw(_)) | UpperRepr::Icmpv6(_)
            ) || matches!(u, UpperRepr::Esp(_))
        };
        match &r.upper {
            UpperRepr::Tunnel(inner) => {
                let IpRepr::V6 { header: ih, .. } = &inner.ip else {
                    continue;
                };
                if header.src == HA && ih.dst == HOA && data(&inner.upper) {
                    p.tunnel_down += 1;
                }
                if header.dst == HA && ih.src == HOA && data(&inner.upper) {
                    p.tunnel_up += 1;
                }
            }
            u if data(u) => {
                let rh2 = ext
                    .iter()
                    .any(|e| matches!(e, ExtHeaderRepr::Routing(RoutingRepr::Type2 { home_address, .. }) if *home_address == HOA));
                let hao = ext.iter().any(|e| match e {
                    ExtHeaderRepr::DestOpts(d) => d.home_address() == Some(HOA),
                    _ => false,
                });
                if rh2 && header.src == CN {
                    p.rh2_down += 1;
                }
                if hao && header.dst == CN {
                    p.hao_up += 1;
                }
            }
            _ => {}
        }
    }
    p
}

/// Echo replies per phase of the demo, from a `ping -D -i 0.05` log that
/// started 0.5 s into it: home (before 2 s), access A (2.5 to 5 s), access
/// B (5.5 to 8 s), home again (8.5 s on), by the time each request left
/// (the reply's stamp less its round trip).
fn replies_per_phase(log: &Path) -> [usize; 4] {
    let text = fs::read_to_string(log).unwrap();
    let sent: Vec<(u64, f64)> = text
        .lines()
        .filter_map(|l| {
            let stamp: f64 = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let seq: u64 = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let rtt: f64 = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((seq, stamp - rtt / 1000.0))
        })
        .collect();
    // When the first request left: the early requests barely drift.
    let start = sent
        .iter()
        .map(|(seq, t)| t - (*seq as f64 - 1.0) * 0.05)
        .fold(f64::INFINITY, f64::min);
    let mut n = [0; 4];
    for (_, t) in sent {
        let s = t - start + 0.5;
        let phase = match s {
            s if s < 2.0 => Some(0),
            s if (2.5..5.0).contains(&s) => Some(1),
            s if (5.5..8.0).contains(&s) => Some(2),
            s if s >= 8.5 => Some(3),
            _ => None,
        };
        if let Some(i) = phase {
            n[i] += 1;
        }
    }
    n
}

fn assert_pings_both_ways(dir: &Path) {
    for log in ["ping-mn-cn.log", "ping-cn-mn.log"] {
        let n = replies_per_phase(&dir.join(log));
        assert!(
            n.iter().all(|c| *c > 5),
            "{log}: replies per phase {n:?}\n{}",
            logs(dir)
        );
    }
}

/// The daemons' key log as tshark options: the preferences, and a
/// `-o uat:TABLE:ROW` for every row.
fn keylog_options(dir: &Path) -> Vec<String> {
    let mut o = vec![];
    let prefs = fs::read_to_string(dir.join("preferences")).unwrap();
    for table in ["preferences", "esp_sa", "ikev2_decryption_table"] {
        let Ok(text) = fs::read_to_string(dir.join(table)) else {
            continue;
        };
        for l in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            o.push("-o".to_string());
            o.push(if table == "preferences" {
                l.replacen(": ", ":", 1)
            } else {
                format!("uat:{table}:{l}")
            });
        }
    }
    assert!(!prefs.is_empty());
    o
}

/// tshark opens every capture, decrypted with the daemons' key log,
/// without a malformed packet, and finds the BUs and BAs inside ESP.
fn assert_captures_decode(r: &RealRun) -> BTreeMap<String, usize> {
    let keys = keylog_options(&r.keylog);
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut mh = BTreeMap::new();
    for pcap in &r.pcaps {
        let p = pcap.to_string_lossy();
        tools::assert_nothing_malformed(&p, &keys);
        let env = format!("WIRESHARK_CONFIG_DIR={}", r.keylog.display());
        let out = std::process::Command::new("env")
            .args([
                &env,
                "tshark",
                "-n",
                "-r",
                &p,
                "-Y",
                "mipv6",
                "-T",
                "fields",
                "-e",
                "mip6.mhtype",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        mh.insert(
            pcap.file_stem().unwrap().to_string_lossy().into_owned(),
            text.lines().count(),
        );
    }
    mh
}

/// The path panels of a real report on the demo's topology, one packet
/// of the correspondent's flow per phase traced through the captures:
/// direct at home, route optimised away; through the home agent with
/// return routability, which waits for the home registration first (with
/// IPsec a packet may be caught in flight by the home agent, or none).
/// Returns how many panels there are.
fn assert_paths_traced(html: &str) -> usize {
    let routes: Vec<(String, String, String)> = tools::pictures::svgs(html)
        .iter()
        .filter(|s| s.contains("class=\"paths\""))
        .map(|s| {
            let doc = roxmltree::Document::parse(s).unwrap();
            let a = |k| doc.root_element().attribute(k).unwrap().to_string();
            (a("data-run"), a("data-phase"), a("data-route"))
        })
        .collect();
    let via_ha =
        |r: &str| r.starts_with("CN>cn>router>home>HA>home>router>access-") && r.ends_with(">MN");
    for (run, phase, route) in &routes {
        let ok = match &phase[..] {
            "at home, direct" => route == "CN>cn>router>home>MN",
            "through the home agent, tunnelled" if run == "rr" => via_ha(route),
            "through the home agent, tunnelled" => route.is_empty() || via_ha(route),
            _ => route
                .strip_prefix("CN>cn>router>access-")
                .is_some_and(|a| a.ends_with(">MN") && a.len() == 4),
        };
        assert!(ok, "{run}, {phase}: {route}");
    }
    routes.len()
}

/// The run's `report.html`, as `testbed demo --real` writes it: its SVGs
/// parse, a diagram per handoff, each with as many arrows of every
/// signalling type as tshark counts in the four captures over its window
/// (BUs and BAs to the correspondent opened with the key log, none left
/// as opaque ESP), the drawn latencies are the JSON's, and a delay plot
/// with every flow packet a dot or a lost tick.
fn assert_report_draws_the_captures(r: &RealRun, setup: &Setup, dir: &Path) {
    let out = dir;
    let summary = serde_json::json!({ "real": true });
    let intro = testbed::demo::intro(setup);
    let page = testbed::real::report::write(out, "real", &intro, std::slice::from_ref(r), summary)
        .unwrap();
    // Headless Chromium draws it, no console message, not blank.
    if tools::require("chromium", &["--version"]) {
        let png = out.join("report.png");
        let logged = tools::pictures::chromium(&page, &png, (1300, 3000));
        assert!(logged.is_empty(), "{logged:?}");
        let s = tools::pictures::png_stats(&png);
        assert!(s["not_background"].as_f64().unwrap() > 0.03, "{s}");
    }
    let html = fs::read_to_string(page).unwrap();
    let svgs = tools::pictures::svgs(&html);
    for s in &svgs {
        roxmltree::Document::parse(s).unwrap();
    }
    let ds = tools::pictures::diagrams(out);
    assert_eq!(ds.len(), r.run.handoffs.len());
    let counted =
        tools::pictures::assert_arrows_are_tsharks_in(out, |_| (r.pcaps.clone(), r.keylog.clone()));
    assert!(counted > 10, "{counted} arrows counted");
    for d in &ds {
        let n = |k: &str| d.kinds.get(k).copied().unwrap_or(0);
        assert!(n("BU") >= 2 && n("BA") >= 2, "{}: {:?}", d.title, d.kinds);
        assert_eq!(n("ESP"), 0, "{}: ESP left closed", d.title);
    }
    assert_eq!(
        tools::pictures::assert_intervals_are_the_latencies(out),
        r.run
            .handoffs
            .iter()
            .filter(|h| h.latency.is_some())
            .count()
    );
    let plot = svgs
        .iter()
        .find(|s| s.contains("class=\"delay-plot\""))
        .unwrap();
    let doc = roxmltree::Document::parse(plot).unwrap();
    let count = |class: &str| -> u64 {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .map(|n| n.attribute("data-count").unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(count("delays") + count("lost"), 8500);
    assert_eq!(assert_paths_traced(&html), 3);
    for l in ["home", "cn", "access-a", "access-b"] {
        // Linked by their names beside the page.
        assert!(html.contains(&format!("<a href=\"{l}.pcap\">")), "{l}");
    }
    let js: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(js["real"], true);
    assert_eq!(
        js["pictures"]["runs"][0]["handoffs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

// REQ MIP-BASE
// REQ CN-4.1
// REQ CN-3.1
#[test]
fn ipsec_route_optimisation_on_real_links_keeps_tcp_and_one_rtt() {
    let _one = one_at_a_time();
    let Some((r, setup, dir)) = run(RouteOptimisation::Ipsec, "real-ipsec") else {
        return;
    };
    let (mn_cn, _, _) = setup.rtts();
    // A TCP stream of known bytes survived both handoffs and the return home.
    assert_eq!(r.tcp_sent.0, 1_600_000);
    assert_eq!(r.tcp_sent, r.tcp_received, "bytes and SHA-256");
    // Carrier up to the first correspondent packet route optimised: one
    // MN-CN round trip, so one BU to the correspondent a move (two moves
    // and the return home), each answered. How close to one round trip is
    // the bench's figure (`scripts/bench.sh`): here, under a debug build,
    // only that it is less than two, which a second exchange would take.
    let away: Vec<Duration> = r
        .run
        .handoffs
        .iter()
        .filter(|h| h.to != "home")
        .map(|h| h.latency.expect("a route-optimised packet after each move"))
        .collect();
    assert_eq!(away.len(), 2);
    for l in &away {
        assert!(
            *l >= mn_cn && *l < mn_cn.mul_f64(2.0),
            "handoff {l:?} against RTT {mn_cn:?}"
        );
    }
    let mn_log = fs::read_to_string(dir.join("mn.log")).unwrap();
    let count = |s: &str| mn_log.lines().filter(|l| l.contains(s)).count();
    assert_eq!(count(&format!(" to {CN} under ESP")), 3, "{mn_log}");
    assert_eq!(count(&format!("BA from {CN}: status 0")), 3, "{mn_log}");
    // The path from the captures: RH2 down and HAO up on both access links.
    for link in ["access-a", "access-b"] {
        let p = paths(&dir.join(format!("{link}.pcap")));
        assert!(
            p.rh2_down > 500 && p.hao_up > 500,
            "{link}: {p:?}\n{}",
            logs(&dir)
        );
    }
    assert_pings_both_ways(&dir);
    assert_report_draws_the_captures(&r, &setup, &dir);
    // The BUs and BAs to the correspondent are under ESP: tshark sees them
    // only with the key log.
    let mh = assert_captures_decode(&r);
    assert!(mh["cn"] >= 6, "{mh:?}");
    let plain = tools::tshark(&[
        "-n",
        "-r",
        &dir.join("cn.pcap").to_string_lossy(),
        "-Y",
        "mipv6",
    ]);
    assert_eq!(plain.lines().count(), 0, "without keys: {plain}");
}

// REQ MIP-BASE
// REQ MIP-HA-IPSEC
#[test]
fn tunnelled_through_the_home_agent_on_real_links() {
    let _one = one_at_a_time();
    let Some((r, _, dir)) = run(RouteOptimisation::None, "real-tunnel") else {
        return;
    };
    assert_eq!(r.tcp_sent, r.tcp_received, "bytes and SHA-256");
    for link in ["access-a", "access-b"] {
        let p = paths(&dir.join(format!("{link}.pcap")));
        assert!(
            p.tunnel_down > 500 && p.tunnel_up > 500,
            "{link}: {p:?}\n{}",
            logs(&dir)
        );
        assert_eq!(
            (p.rh2_down, p.hao_up),
            (0, 0),
            "{link}: no route optimisation"
        );
    }
    assert_pings_both_ways(&dir);
    assert_captures_decode(&r);
}

// REQ CN-3.3
#[test]
fn triangular_on_real_links_goes_straight_up_and_home_down() {
    let _one = one_at_a_time();
    let Some((r, _, dir)) = run(RouteOptimisation::Triangular, "real-triangular") else {
        return;
    };
    assert_eq!(r.tcp_sent, r.tcp_received, "bytes and SHA-256");
    for link in ["access-a", "access-b"] {
        let p = paths(&dir.join(format!("{link}.pcap")));
        // Up: a HAO under the suitable SA; down: through the home agent.
        assert!(
            p.hao_up > 500 && p.tunnel_down > 500,
            "{link}: {p:?}\n{}",
            logs(&dir)
        );
        assert_eq!(p.rh2_down, 0, "{link}: no binding at the correspondent");
    }
    assert_pings_both_ways(&dir);
}

const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x100);

/// tshark's values of `field` in `pcap` (decrypted with `keys`), one a
/// line.
fn tshark_values(pcap: &Path, keys: &[String], filter: &str, field: &str) -> Vec<String> {
    let mut args: Vec<&str> = keys.iter().map(String::as_str).collect();
    let p = pcap.to_string_lossy();
    args.extend(["-n", "-r", &p, "-Y", filter, "-T", "fields", "-e", field]);
    tools::tshark(&args)
        .lines()
        .flat_map(|l| l.split(','))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

// REQ CN-5.1
// REQ MIP-HA-IPSEC
#[test]
fn ipsec_keyed_by_ike_on_real_links_keeps_tcp_and_the_ike_sas_follow() {
    let _one = one_at_a_time();
    let mut setup = Setup::new(1, RouteOptimisation::Ipsec);
    setup.keying = Keying::Ike {
        mobility: Mobility::Mobike { r_mobike: false },
        payload: true,
    };
    let Some((r, setup, dir)) = run_setup(setup, "real-ipsec-ike") else {
        return;
    };
    let (mn_cn, _, _) = setup.rtts();
    // A TCP stream of known bytes survived both handoffs and the return home.
    assert_eq!(r.tcp_sent.0, 1_600_000);
    assert_eq!(r.tcp_sent, r.tcp_received, "bytes and SHA-256");
    // Route optimised after each move away within two MN-CN round trips
    // (the bench has how close to one): IKE with the correspondent ran
    // once, at home, where running it again would take two more, and the
    // home agent's IKE SA moves in place.
    for h in r.run.handoffs.iter().filter(|h| h.to != "home") {
        let l = h.latency.expect("a route-optimised packet after each move");
        assert!(
            l >= mn_cn && l < mn_cn.mul_f64(2.0),
            "handoff to {} {l:?} against RTT {mn_cn:?}",
            h.to
        );
    }
    for link in ["access-a", "access-b"] {
        let p = paths(&dir.join(format!("{link}.pcap")));
        assert!(
            p.rh2_down > 500 && p.hao_up > 500,
            "{link}: {p:?}\n{}",
            logs(&dir)
        );
    }
    assert_pings_both_ways(&dir);
    // The home agent's IKE SA followed the care-of address by MOBIKE, one
    // move per handoff, then came home.
    let ha_log = fs::read_to_string(dir.join("ha.log")).unwrap();
    let moved: Vec<&str> = ha_log
        .lines()
        .filter(|l| l.contains(" moved to "))
        .collect();
    assert_eq!(moved.len(), 3, "{moved:#?}");
    for (line, coa) in moved.iter().zip([COA_A, COA_B, HOA]) {
        assert!(line.contains(&format!("<-> [{coa}]:")), "{line}");
    }
    let ha = &r.statuses["ha"]["status"]["ike"];
    assert_eq!(ha.as_array().unwrap().len(), 1, "{ha}");
    assert_eq!(ha[0]["peer"], "mn.example.org");
    assert_eq!(ha[0]["mobike"], true, "{ha}");
    let names: Vec<&str> = ha[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["home-signalling", "home-payload"], "{ha}");
    // The correspondent's IKE SA is with the home address, and never moved.
    let cn = &r.statuses["cn"]["status"]["ike"];
    assert_eq!(cn.as_array().unwrap().len(), 1, "{cn}");
    assert_eq!(cn[0]["peer"], "mn.example.org");
    let remote: SocketAddr = cn[0]["remote"].as_str().unwrap().parse().unwrap();
    assert_eq!(remote.ip(), IpAddr::V6(HOA), "{cn}");
    let cn_log = fs::read_to_string(dir.join("cn.log")).unwrap();
    assert!(!cn_log.contains(" moved to "), "{cn_log}");
    // No key material in the logs: it went to the key log.
    for role in ["ha", "cn", "mn"] {
        let log = fs::read_to_string(dir.join(format!("{role}.log"))).unwrap();
        assert!(!log.contains("key log"), "{role}.log");
    }
    // With the key log tshark opens IKE_AUTH (the identities inside SK)
    // and the BUs and BAs inside ESP; without it, neither.
    let keys = keylog_options(&r.keylog);
    let ids = |pcap: &str, keys: &[String]| {
        let mut v = tshark_values(&dir.join(pcap), keys, "isakmp", "isakmp.id.data.fqdn");
        v.sort();
        v.dedup();
        v
    };
    // At home the node keyed both: the home agent and, over the home
    // address, the correspondent.
    assert_eq!(
        ids("home.pcap", &keys),
        ["cn.example.org", "ha.example.org", "mn.example.org"]
    );
    assert_eq!(ids("cn.pcap", &keys), ["cn.example.org", "mn.example.org"]);
    // MOBIKE's UPDATE_SA_ADDRESSES (16400) from each care-of address.
    for link in ["access-a", "access-b"] {
        let pcap = dir.join(format!("{link}.pcap"));
        let notify = |keys: &[String]| {
            tshark_values(&pcap, keys, "isakmp", "isakmp.notify.msgtype")
                .contains(&"16400".to_string())
        };
        assert!(notify(&keys) && !notify(&[]), "{link}");
    }
    assert!(ids("home.pcap", &[]).is_empty());
    let mh = assert_captures_decode(&r);
    for link in ["home", "cn", "access-a", "access-b"] {
        assert!(mh[link] >= 2, "{link}: {mh:?}");
        let plain = tools::tshark(&[
            "-n",
            "-r",
            &dir.join(format!("{link}.pcap")).to_string_lossy(),
            "-Y",
            "mipv6",
        ]);
        assert_eq!(plain.lines().count(), 0, "{link} without keys: {plain}");
    }
}

/// `testbed run --real` plays every shipped scenario in namespaces (two
/// correspondents, the cookie test, a lossy access link with jitter, a
/// fast mover, make before break, the demo): each run's TCP stream arrives
/// whole, make before break loses nothing, a handoff
/// the simulator completes completes here too, IKE runs key by IKE, and
/// the report draws, per handoff, as many arrows of each signalling type
/// as tshark counts in that run's captures, the intervals its latencies.
#[test]
fn every_shipped_scenario_runs_on_real_links() {
    let _one = one_at_a_time();
    let Some(bins) = prerequisites() else {
        return;
    };
    let mut files: Vec<PathBuf> = fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let out = tools::scratch(&format!("real-scenario-{stem}"));
        let o = std::process::Command::new(&bins.testbed)
            .args(["run", "--real", "--json", "--out"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{stem}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let runs = v["runs"].as_array().unwrap();
        assert!(!runs.is_empty(), "{stem}");
        for t in v["tcp"].as_array().unwrap() {
            assert!(t["sent_bytes"].as_u64().unwrap() > 0, "{stem}: {t}");
            assert_eq!(t["sent_bytes"], t["received_bytes"], "{stem}: {t}");
            assert_eq!(t["sent_sha256"], t["received_sha256"], "{stem}: {t}");
        }
        for (real, sim) in runs.iter().zip(v["simulated"].as_array().unwrap()) {
            assert_eq!(real["mode"], sim["mode"]);
            assert_eq!(
                real["handoff_latency_ms"].is_number(),
                sim["handoff_latency_ms"].is_number(),
                "{stem}: real {real}, simulated {sim}"
            );
            let ike = real["mode"].as_str().unwrap().ends_with("-ike");
            assert_eq!(
                real["ike_messages"].as_u64().unwrap() > 0,
                ike,
                "{stem}: {real}"
            );
        }
        let ds = tools::pictures::diagrams(&out);
        let report: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
        let handoffs: usize = report["pictures"]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["handoffs"].as_array().unwrap().len())
            .sum();
        assert_eq!(ds.len(), handoffs, "{stem}");
        let counted = tools::pictures::assert_arrows_are_tsharks_in(&out, |run| {
            let dir = out.join(run);
            let pcaps = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
                .collect();
            (pcaps, dir.join("wireshark"))
        });
        assert!(counted > 10, "{stem}: {counted} arrows");
        tools::pictures::assert_intervals_are_the_latencies(&out);
        // Make before break: nothing sent from B's arrival to the move
        // home is lost (the last link delay's worth was bound for B).
        if stem == "make-before-break" {
            for r in report["pictures"]["runs"].as_array().unwrap() {
                let lost = r["down_lost_sent_us"].as_array().unwrap();
                let during = lost
                    .iter()
                    .filter(|t| (3_900_000..7_950_000).contains(&t.as_u64().unwrap()))
                    .count();
                assert_eq!(during, 0, "{}: {lost:?}", r["mode"]);
            }
        }
        if stem == "demo" {
            let html = fs::read_to_string(out.join("report.html")).unwrap();
            assert_eq!(assert_paths_traced(&html), 9, "three runs, three phases");
        }
    }
}
