//! Time from address loss to traffic on the new path with MOBIKE (RFC
//! 4555), two of our peers (`testbed ike`) against two charons
//! (kernel-libipsec), in the same namespaces, in the same run, moves
//! interleaved.
//!
//! Namespaces a (the initiator, which moves) and b (the responder) are
//! joined by two veths: link 1 (2001:db8:1::/64) and link 2
//! (2001:db8:2::/64). b's IKE address is on its loopback, reached from a
//! over link 1 (metric 100) or link 2 (metric 200). A tunnel child joins
//! the inner addresses; a sends b a UDP datagram through it every
//! millisecond (`testbed traffic`, stamped with its send time). A move is `ip link set a1 down`, which takes link 1's
//! address and route away (`keep_addr_on_down` is 0): from then on only
//! link 2 carries anything, so a datagram after it came the new way. Each
//! side notices on its own, from netlink (ours with `--follow-addresses`,
//! charon from its kernel-netlink plugin), and moves the IKE SA and the
//! child by UPDATE_SA_ADDRESSES. Measured: from the moment `ip` returned
//! (the address is gone) to the arrival of the first datagram sent after
//! it (1 ms resolution); the datagrams lost, and the sends a's kernel
//! refused meanwhile (no route). Both sides run fresh for
//! every move, UDP-encapsulated ESP (what libipsec does), AES-256-GCM,
//! PSK, each stack at its defaults otherwise (ours checks the new address
//! answers before moving its SAs; charon, libipsec unable to move SAs,
//! rekeys the child after the move).
//!
//! ```text
//! cargo bench -p testbed --bench mobike            # 10 moves each
//! cargo bench -p testbed --bench mobike -- 30      # 30 moves each
//! cargo test -p testbed --bench mobike             # smoke: 1 move each
//! ```
//! Needs root, charon and swanctl; without them it says what is
//! missing and measures nothing (under `CI=true` it fails).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup")]

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::time::Duration;

use testbed::harness::netns::{wait_until, Netns, Process, Signal};
use testbed::harness::strongswan::{self, Auth, Charon, CharonConfig, ChildConfig, Role};
use testbed::real::traffic::wall_micros;

const BIN: &str = env!("CARGO_BIN_EXE_testbed");
const A1: &str = "2001:db8:1::a";
const B1: &str = "2001:db8:1::b";
const A2: &str = "2001:db8:2::a";
const B2: &str = "2001:db8:2::b";
const B_IKE: &str = "2001:db8:f::b";
const A_INNER: &str = "2001:db8:a::1";
const B_INNER: &str = "2001:db8:b::1";
const PSK: &str = "mobike secret";
const WAIT: Duration = Duration::from_secs(20);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The two sides of one stack, up with their child; dropping stops them.
enum Pair {
    Ours {
        a: Box<(Process, ChildStdin)>,
        b: Box<(Process, ChildStdin)>,
    },
    Charon {
        a: Box<Charon>,
        /// Kept running until the pair is dropped.
        _b: Box<Charon>,
    },
}

impl Pair {
    /// What says the initiator moved: our peer's event line, or charon's
    /// child installed again on link 2 (its rekey after the move).
    fn moved(&self) -> bool {
        match self {
            Pair::Ours { a, .. } => {
                a.0.output()
                    .lines()
                    .any(|l| l.starts_with("event moved") && l.contains(&format!("local=[{A2}]:")))
            }
            Pair::Charon { a, .. } => a
                .list_sas()
                .unwrap_or_default()
                .iter()
                .any(|sa| sa.local_host == Some(ip(A2)) && sa.state == "ESTABLISHED"),
        }
    }

    fn stop(self) {
        if let Pair::Ours { mut a, mut b } = self {
            for (p, stdin) in [&mut *a, &mut *b] {
                let _ = writeln!(stdin, "quit");
                if p.wait_exit(Duration::from_secs(5)).ok().flatten().is_none() {
                    let _ = p.stop(Signal::Kill, Duration::from_secs(5));
                }
            }
        }
    }
}

fn ours_yaml(
    us: &str,
    them: &str,
    their_addresses: &[&str],
    local: &[&str],
    inner: (&str, &str),
) -> String {
    let addresses: Vec<String> = their_addresses
        .iter()
        .map(|a| format!("\"[{a}]:500\""))
        .collect();
    format!(
        "ike:
  id: {{ fqdn: {us}.example }}
  proposals: [aes256gcm16]
  nat_traversal: on
  peers:
    - name: {them}
      id: {{ fqdn: {them}.example }}
      psk: \"{PSK}\"
      addresses: [{}]
      children:
        - name: net
          mode: tunnel
          local_ts: {}/128
          remote_ts: {}/128
          esp_proposals: [aes256gcm16]
local_addresses: [{}]
tun:
  name: ike0
  addresses: [{}/128]
  routes: [{}/128]
",
        addresses.join(", "),
        inner.0,
        inner.1,
        local.join(", "),
        inner.0,
        inner.1,
    )
}

fn ours(a: &Netns, b: &Netns, dir: &Path) -> Pair {
    let start = |ns: &Netns, name: &str, yaml: String, extra: &[&str]| {
        let config = dir.join(format!("{name}.yaml"));
        fs::write(&config, yaml).unwrap();
        let mut args = vec!["ike", "--config", config.to_str().unwrap()];
        args.extend(extra);
        let p = ns
            .spawn_piped(BIN, &args, &[], &dir.join(format!("{name}.log")))
            .unwrap();
        wait_until(WAIT, "our peer to be ready", || {
            p.0.output().lines().any(|l| l == "ready")
        })
        .unwrap();
        p
    };
    let b_peer = start(
        b,
        "ours-b",
        ours_yaml("b", "a", &[A1, A2], &[B_IKE], (B_INNER, A_INNER)),
        &[],
    );
    let a_peer = start(
        a,
        "ours-a",
        ours_yaml("a", "b", &[B_IKE], &[A1, A2], (A_INNER, B_INNER)),
        &["--initiate", "b", "--follow-addresses"],
    );
    wait_until(WAIT, "our child SA", || {
        a_peer
            .0
            .output()
            .lines()
            .any(|l| l.starts_with("event child-up"))
    })
    .unwrap();
    Pair::Ours {
        a: Box::new(a_peer),
        b: Box::new(b_peer),
    }
}

fn charon(a: &Netns, b: &Netns, dir: &Path) -> Pair {
    let config = |role, us: &str, them: &str, local: &str, remote: &str| {
        let mut c = CharonConfig::new(role, us, them, Auth::Psk(PSK.to_string()));
        c.children = vec![ChildConfig::tunnel(
            "net",
            &format!("{local}/128"),
            &format!("{remote}/128"),
        )];
        c.key_logging = false;
        c
    };
    let rb = config(Role::Responder, "b.example", "a.example", B_INNER, A_INNER);
    let resp = Charon::start(b, &dir.join("charon-b"), rb).unwrap();
    resp.load().unwrap();
    let mut ra = config(Role::Initiator, "a.example", "b.example", A_INNER, B_INNER);
    ra.remote_addrs = vec![ip(B_IKE)];
    let init = Charon::start(a, &dir.join("charon-a"), ra).unwrap();
    init.load().unwrap();
    init.initiate("net").unwrap();
    init.wait_child_installed("net", WAIT).unwrap();
    Pair::Charon {
        a: Box::new(init),
        _b: Box::new(resp),
    }
}

/// `flow seq sent_us received_us` lines of `testbed traffic udp-recv`.
fn arrivals(path: &Path) -> Vec<(u64, u64, u64)> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<u64> = l.split(' ').map(|w| w.parse().unwrap()).collect();
            (f[1], f[2], f[3])
        })
        .collect()
}

/// One move: the milliseconds from address loss to the first datagram
/// sent after it arriving, the outage, the
/// datagrams lost and the sends the kernel refused.
struct Move {
    ms: f64,
    /// The longest time between the sending of two datagrams that arrived
    /// with only lost ones between them: the interruption, from before
    /// the address went (the sender's own stalls, on a loaded machine,
    /// are not in it).
    gap_ms: f64,
    lost: u64,
    refused: u64,
}

/// a's route to b's IKE address over link `dev` (through b's `via`).
fn route_to_b(a: &Netns, via: &str, dev: &str, metric: &str) {
    let dst = format!("{B_IKE}/128");
    a.check(&[
        "ip", "-6", "route", "add", &dst, "via", via, "dev", dev, "metric", metric,
    ])
    .unwrap();
}

/// Brings link 1 back as it was before a move.
fn restore_link1(a: &Netns) {
    a.link_up("a1").unwrap();
    a.add_address("a1", &format!("{A1}/64")).unwrap();
    route_to_b(a, B1, "a1", "100");
}

#[expect(
    clippy::disallowed_methods,
    reason = "the experiment's schedule, not a synchronisation: the move comes \
              1 s into the flow, and the arrivals show the flow ran before it"
)]
fn schedule(after: Duration) {
    std::thread::sleep(after);
}

/// A UDP datagram every millisecond for 3 s through the tunnel; link 1
/// goes down 1 s into it (the experiment's schedule).
fn one_move(a: &Netns, b: &Netns, pair: &Pair, dir: &Path) -> Move {
    let out = dir.join("arrivals.txt");
    let out_arg = out.to_string_lossy().into_owned();
    let mut recv = b
        .spawn(
            BIN,
            &[
                "traffic", "udp-recv", "--port", "9000", "--for-ms", "5000", "--out", &out_arg,
            ],
            &[],
            &dir.join("recv.log"),
        )
        .unwrap();
    let to = format!("[{B_INNER}]:9000");
    let send_log = dir.join("send.log");
    let mut send = a
        .spawn(
            BIN,
            &[
                "traffic",
                "udp-send",
                "--to",
                &to,
                "--every-us",
                "1000",
                "--count",
                "3000",
            ],
            &[],
            &send_log,
        )
        .unwrap();
    schedule(Duration::from_secs(1));
    a.check(&["ip", "link", "set", "a1", "down"]).unwrap();
    let t0 = wall_micros();
    wait_until(WAIT, "the initiator to say it moved", || pair.moved()).unwrap();
    send.wait_exit(WAIT).unwrap().unwrap();
    recv.wait_exit(WAIT).unwrap().unwrap();
    restore_link1(a);
    let report: serde_json::Value = serde_json::from_str(
        fs::read_to_string(&send_log)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let got = arrivals(&out);
    assert!(
        got.iter().filter(|d| d.2 < t0).count() > 500,
        "traffic flowed before the move: {}",
        out.display()
    );
    let resumed = got
        .iter()
        .filter(|d| d.1 > t0)
        .map(|d| d.2)
        .min()
        .expect("a datagram on link 2");
    let mut by_seq: Vec<(u64, u64)> = got.iter().map(|d| (d.0, d.1)).collect();
    by_seq.sort_unstable();
    let gap = by_seq
        .windows(2)
        .filter(|w| w[1].0 > w[0].0 + 1)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or(0);
    Move {
        ms: (resumed - t0) as f64 / 1e3,
        gap_ms: gap as f64 / 1e3,
        lost: report["sent"].as_u64().unwrap() - got.len() as u64,
        refused: report["errors"].as_u64().unwrap(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let moves: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10);
    let moves = if bench { moves } else { 1 };
    let missing = strongswan::missing_prerequisites();
    if !missing.is_empty() {
        println!("mobike: skipped, missing {missing:?}");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have {missing:?}"
        );
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mobike");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let a = Netns::new("mob-a").unwrap();
    let b = Netns::new("mob-b").unwrap();
    Netns::veth_pair(&a, "a1", &b, "b1").unwrap();
    Netns::veth_pair(&a, "a2", &b, "b2").unwrap();
    a.add_address("a2", &format!("{A2}/64")).unwrap();
    b.add_address("b1", &format!("{B1}/64")).unwrap();
    b.add_address("b2", &format!("{B2}/64")).unwrap();
    b.add_loopback_address(ip(B_IKE)).unwrap();
    route_to_b(&a, B2, "a2", "200");
    restore_link1(&a);
    a.wait_ping(ip(A1), ip(B_IKE), WAIT).unwrap();
    a.wait_ping(ip(A2), ip(B_IKE), WAIT).unwrap();
    let mut results: Vec<(&str, Vec<Move>)> = vec![("ours", Vec::new()), ("charon", Vec::new())];
    for n in 0..moves {
        for (who, list) in &mut results {
            let d = dir.join(format!("{who}-{n}"));
            fs::create_dir_all(&d).unwrap();
            let charon_run = *who == "charon";
            // charon routes the child from an inner address it finds on
            // the host; ours puts it on its TUN device.
            if charon_run {
                a.add_loopback_address(ip(A_INNER)).unwrap();
                b.add_loopback_address(ip(B_INNER)).unwrap();
            }
            let pair = if charon_run {
                charon(&a, &b, &d)
            } else {
                ours(&a, &b, &d)
            };
            list.push(one_move(&a, &b, &pair, &d));
            pair.stop();
            if charon_run {
                a.del_address("lo", &format!("{A_INNER}/128")).unwrap();
                b.del_address("lo", &format!("{B_INNER}/128")).unwrap();
            }
        }
    }
    println!("{moves} moves each: link 1 down, a UDP datagram every 1 ms through the tunnel");
    println!("| stack | moves | address gone to new path, median ms | p90 ms | max ms | outage (lost datagrams' span), median ms | max ms | datagrams lost, median | sends refused, median | charon / ours, gap median |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let sorted = |l: &[Move], f: fn(&Move) -> f64| {
        let mut v: Vec<f64> = l.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let ours_gap = sorted(&results[0].1, |m| m.gap_ms);
    let charon_gap = sorted(&results[1].1, |m| m.gap_ms);
    for (who, list) in &results {
        let ms = sorted(list, |m| m.ms);
        let gap = sorted(list, |m| m.gap_ms);
        let median_of = |f: fn(&Move) -> u64| {
            let mut v: Vec<u64> = list.iter().map(f).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        println!(
            "| {who} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            list.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.9),
            ms[ms.len() - 1],
            percentile(&gap, 0.5),
            gap[gap.len() - 1],
            median_of(|m| m.lost),
            median_of(|m| m.refused),
            // No ratio when ours lost nothing (an outage of 0).
            if *who == "charon" && percentile(&ours_gap, 0.5) > 0.0 {
                format!(
                    "{:.1}",
                    percentile(&charon_gap, 0.5) / percentile(&ours_gap, 0.5)
                )
            } else {
                String::new()
            }
        );
    }
    let reached = |i: usize| sorted(&results[i].1, |m| m.ms);
    for (what, ours, theirs) in [
        (
            "MOBIKE: address gone to the new path, median ms",
            reached(0),
            reached(1),
        ),
        (
            "MOBIKE: outage (lost datagrams' span), median ms",
            ours_gap,
            charon_gap,
        ),
    ] {
        testbed::summary::Figure {
            item: "3 IKE",
            what,
            ours: Some(percentile(&ours, 0.5)),
            baseline: "charon",
            base: Some(percentile(&theirs, 0.5)),
            goal: "-",
        }
        .print();
    }
    std::io::stdout().flush().unwrap();
}
