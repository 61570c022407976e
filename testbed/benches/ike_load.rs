//! IKEv2 handshakes per second of our responder (`testbed ike`) against
//! strongSwan's charon, in the same namespaces, under the same load
//! generator (`testbed ike-load`: fresh initiators, IKE_SA_INIT and
//! IKE_AUTH with a tunnel CHILD_SA, AES-256-GCM and X25519, 16 in flight),
//! in the same run. The responder is pinned to CPU 1 (charon with all its
//! threads), the generator to CPU 0. The generator does an initiator's
//! share of each handshake, about what a responder does, so one core of it
//! may not saturate a fast responder: the table gives the handshakes per
//! second reached and the responder's CPU meanwhile (/proc), and compares
//! handshakes per responder CPU-second. charon runs with kernel-libipsec, its DoS
//! protection off (it would send COOKIEs past 10 half-open SAs and block
//! past 5 from one address), its key logging off; ours prints an event
//! line per SA and child on stdout, as it always does.
//!
//! ```text
//! cargo bench -p testbed --bench ike_load            # 10 s each
//! cargo bench -p testbed --bench ike_load -- 30      # 30 s each
//! cargo test -p testbed --bench ike_load             # smoke: 1 s each
//! ```
//! Needs root, charon, swanctl, openssl and taskset; without them it says
//! what is missing and measures nothing (under `CI=true` it fails).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup")]

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use testbed::harness::netns::{check_bounded, wait_until, Netns};
use testbed::harness::strongswan::{
    self, Auth, Charon, CharonConfig, ChildConfig, Ed25519Key, Role,
};
use testbed::ike_load::{LOAD_ID, LOAD_TS, RESPONDER_ID, RESPONDER_TS};

const BIN: &str = env!("CARGO_BIN_EXE_testbed");
const GEN: &str = "2001:db8:1::a";
const RESP: &str = "2001:db8:1::b";
const PSK: &str = "load secret";
const CONCURRENCY: usize = 16;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The generator's and the responder's key pairs, for Ed25519 runs.
struct Keys {
    load: Ed25519Key,
    responder: Ed25519Key,
}

/// `testbed ike-load` from the generator's namespace on CPU 0; its report.
fn load(gen: &Netns, seconds: u64, ed25519: Option<&Keys>) -> Value {
    let (seconds, concurrency) = (seconds.to_string(), CONCURRENCY.to_string());
    let mut args = vec![
        "/usr/bin/taskset",
        "-c",
        "0",
        BIN,
        "ike-load",
        "--target",
        RESP,
        "--local",
        GEN,
        "--seconds",
        &seconds,
        "--concurrency",
        &concurrency,
    ];
    let (key, public);
    match ed25519 {
        Some(k) => {
            key = k.load.private_pem.to_string_lossy().into_owned();
            public = k.responder.public_pem.to_string_lossy().into_owned();
            args.extend(["--ed25519-key", &key, "--responder-pub", &public]);
        }
        None => args.extend(["--psk", PSK]),
    }
    let out = check_bounded(gen.command(&args), Duration::from_secs(120)).unwrap();
    serde_json::from_str(out.trim()).unwrap()
}

/// CPU seconds `pid` has used, all its threads (/proc in USER_HZ, 100).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// The generator's report, with the responder's CPU seconds meanwhile.
fn measured(gen: &Netns, pid: u32, seconds: u64, ed25519: Option<&Keys>) -> Value {
    let before = cpu_seconds(pid);
    let mut r = load(gen, seconds, ed25519);
    r["responder_cpu_s"] = (cpu_seconds(pid) - before).into();
    r
}

/// Pins every thread of `pid` to CPU 1.
fn pin(pid: u32) {
    let mut cmd = std::process::Command::new("/usr/bin/taskset");
    cmd.args(["-a", "-p", "-c", "1", &pid.to_string()]);
    check_bounded(cmd, Duration::from_secs(5)).unwrap();
}

/// Our responder's file: the generator as its one peer.
fn ours_yaml(ed25519: Option<&Keys>) -> String {
    let (key, auth) = match ed25519 {
        Some(k) => (
            format!("  ed25519_key: {}\n", k.responder.private_pem.display()),
            format!("ed25519_pubkey: {}", k.load.public_pem.display()),
        ),
        None => (String::new(), format!("psk: \"{PSK}\"")),
    };
    format!(
        "ike:
  id: {{ fqdn: {RESPONDER_ID} }}
{key}  mobility: off
  nat_traversal: on
  proposals: [aes256gcm16]
  peers:
    - name: load
      id: {{ fqdn: {LOAD_ID} }}
      {auth}
      addresses: [\"[{GEN}]:500\"]
      children:
        - name: load
          mode: tunnel
          local_ts: {RESPONDER_TS}
          remote_ts: {LOAD_TS}
          esp_proposals: [aes256gcm16]
local_addresses: [{RESP}]
"
    )
}

fn ours(gen: &Netns, resp: &Netns, dir: &Path, seconds: u64, ed25519: Option<&Keys>) -> Value {
    let config = dir.join("ours.yaml");
    fs::write(&config, ours_yaml(ed25519)).unwrap();
    let log = dir.join("ours.log");
    let (mut peer, stdin) = resp
        .spawn_piped(
            BIN,
            &["ike", "--config", &config.to_string_lossy()],
            &[],
            &log,
        )
        .unwrap();
    wait_until(Duration::from_secs(10), "our responder to be ready", || {
        peer.output().lines().any(|l| l == "ready")
    })
    .unwrap();
    pin(peer.pid());
    let r = measured(gen, peer.pid(), seconds, ed25519);
    drop(stdin);
    peer.wait_exit(Duration::from_secs(10)).unwrap();
    r
}

fn charon(gen: &Netns, resp: &Netns, dir: &Path, seconds: u64, ed25519: Option<&Keys>) -> Value {
    let auth = match ed25519 {
        Some(k) => Auth::Ed25519 {
            local: k.responder.clone(),
            remote_public_pem: k.load.public_pem.clone(),
        },
        None => Auth::Psk(PSK.to_string()),
    };
    let mut cfg = CharonConfig::new(Role::Responder, RESPONDER_ID, LOAD_ID, auth);
    cfg.children = vec![ChildConfig::tunnel("load", RESPONDER_TS, LOAD_TS)];
    cfg.mobike = false;
    cfg.key_logging = false;
    cfg.dos_protection = false;
    let c = Charon::start(resp, &dir.join("charon"), cfg).unwrap();
    c.load().unwrap();
    pin(c.pid());
    measured(gen, c.pid(), seconds, ed25519)
}

fn missing() -> Vec<String> {
    let mut m = strongswan::missing_prerequisites();
    if !Path::new("/usr/bin/taskset").exists() {
        m.push("/usr/bin/taskset".to_string());
    }
    m
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let seconds: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10);
    let seconds = if bench { seconds } else { 1 };
    let missing = missing();
    if !missing.is_empty() {
        println!("ike_load: skipped, missing {missing:?}");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have {missing:?}"
        );
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ike-load");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let gen = Netns::new("gen").unwrap();
    let resp = Netns::new("resp").unwrap();
    Netns::veth_pair(&gen, "vg", &resp, "vr").unwrap();
    gen.add_address("vg", &format!("{GEN}/64")).unwrap();
    resp.add_address("vr", &format!("{RESP}/64")).unwrap();
    // charon installs a child's routes from an address of its selector.
    resp.add_loopback_address(ip("2001:db8:b::1")).unwrap();
    gen.wait_ping(ip(GEN), ip(RESP), Duration::from_secs(5))
        .unwrap();
    let keys = Keys {
        load: Ed25519Key::generate(&dir, "load").unwrap(),
        responder: Ed25519Key::generate(&dir, "responder").unwrap(),
    };
    println!(
        "{CONCURRENCY} handshakes in flight, {seconds} s each, responder on CPU 1, generator on CPU 0"
    );
    println!("| auth | responder | handshakes/s | responder CPU | per CPU-second | failed | p50 ms | p99 ms | ours / charon, per CPU-second |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut figures = vec![];
    for (name, ed25519) in [("PSK", None), ("Ed25519", Some(&keys))] {
        let d = dir.join(name);
        fs::create_dir_all(&d).unwrap();
        let a = ours(&gen, &resp, &d, seconds, ed25519);
        let b = charon(&gen, &resp, &d, seconds, ed25519);
        let rate = |v: &Value| v["per_second"].as_f64().unwrap();
        let cpu = |v: &Value| v["responder_cpu_s"].as_f64().unwrap() / seconds as f64;
        let per_cpu = |v: &Value| rate(v) / cpu(v).max(f64::MIN_POSITIVE);
        figures.push(
            testbed::summary::Figure {
                item: "3 IKE",
                what: &format!("{name} handshakes per responder CPU-second"),
                ours: Some(per_cpu(&a)),
                baseline: "charon",
                base: Some(per_cpu(&b)),
                goal: "≥ 2× charon",
            }
            .line(),
        );
        for (who, v) in [("ours", &a), ("charon", &b)] {
            println!(
                "| {name} | {who} | {:.0} | {:.0} % | {:.0} | {} | {:.2} | {:.2} | {} |",
                rate(v),
                cpu(v) * 100.0,
                per_cpu(v),
                v["failed"],
                v["p50_ms"].as_f64().unwrap(),
                v["p99_ms"].as_f64().unwrap(),
                if who == "ours" {
                    format!("{:.2}", per_cpu(&a) / per_cpu(&b).max(f64::MIN_POSITIVE))
                } else {
                    String::new()
                }
            );
        }
        // Both answered: the smoke run checks the bench still measures.
        assert!(rate(&a) > 0.0 && rate(&b) > 0.0, "{a} {b}");
    }
    for f in figures {
        println!("{f}");
    }
    std::io::stdout().flush().unwrap();
}
