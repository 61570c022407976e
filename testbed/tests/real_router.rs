#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! `testbed router`, the real demo's router process: its configuration
//! errors, then two ordinary Linux hosts (kernel IPv6 on) in namespaces h1
//! and h2, each on a veth to the router's namespace r, the router on two
//! links (2001:db8:a::/64, 20 ms; 2001:db8:b::/64, 5 ms). The kernels
//! autoconfigure from our RAs, ping each other through the router with
//! the round-trip time the links add up to, stop when a link is down or
//! a port loses carrier and come back, lose pings on a lossy link, and the
//! pcaps decode in tshark.
//!
//! The namespace tests need root, `ip`, `ping` and tshark; they are
//! skipped without them, except under CI=true where that is a failure.
//! Timing is measured one test at a time (a lock), and every wait is
//! bounded.

mod tools;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use testbed::harness::netns::{
    is_root, resolve_program, run_bounded, wait_for, Deadline, Netns, POLL_INTERVAL,
};

const BIN: &str = env!("CARGO_BIN_EXE_testbed");
/// Bound on each awaited line of the router.
const WAIT: Duration = Duration::from_secs(10);
/// The links' one-way delays: a ping crosses each twice.
const DELAY_A_MS: f64 = 20.0;
const DELAY_B_MS: f64 = 5.0;
const RTT_MS: f64 = 2.0 * (DELAY_A_MS + DELAY_B_MS);
/// What the process may add to a round trip of four link crossings.
/// Measured on a 2-core machine with the debug build (a timerfd per
/// deadline): min 50.7, median 50.8 to 50.9, max 51.1 ms idle and 53.9 ms
/// with another build running; the bound leaves room for a busier box.
const RTT_SLACK_MS: f64 = 10.0;

/// One namespace test at a time: the round-trip times are the point.
static SERIAL: Mutex<()> = Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    tools::scratch(&format!("real_router/{name}"))
}

// ---------------------------------------------------------------------------
// The configuration file and the command line.

#[test]
fn a_config_mistake_exits_2_with_one_line_naming_file_line_column_and_field() {
    let dir = scratch("bad_config");
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "links:\n  - name: a\n    prefix: \"2001:db8:a::/48\"\n    ports: [r-h1]\n",
    )
    .unwrap();
    let out = router_once(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "testbed router: {}:3:13: links[0].prefix: \"2001:db8:a::/48\": the prefix must be a /64",
            path.display()
        )),
        "{stderr}"
    );

    std::fs::write(&path, "links: []\nseed: 1\ncolour: blue\n").unwrap();
    let out = router_once(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:3:1: unknown field `colour`"),
        "{stderr}"
    );

    let missing = dir.join("missing.yaml");
    let out = router_once(&missing);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml: "));
}

fn router_once(config: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["router", "--config"]).arg(config);
    run_bounded(cmd, WAIT).unwrap()
}

// ---------------------------------------------------------------------------
// Namespaces.

fn prerequisites_met() -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (network namespaces, AF_PACKET)".to_string());
    }
    for program in ["ip", "ping", "tshark"] {
        if resolve_program(program).is_err() {
            missing.push(program.to_string());
        }
    }
    tools::prerequisites_met(&missing)
}

/// The router in its namespace, fed commands on stdin, its stdout read
/// line by line by a thread. Dropping it kills it: it is our own unreaped
/// child (`ip netns exec` execs the binary), so its PID is its own.
struct Router {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Router {
    fn start(ns: &Netns, config: &Path, dir: &Path) -> Router {
        let stderr = dir.join("router.stderr");
        let mut cmd = ns.command(&[BIN, "router", "--config", &config.to_string_lossy()]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut router = Router {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
        };
        router.expect("ready");
        router
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
    }

    /// The next line starting with `prefix`, within [`WAIT`].
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Deadline::after(WAIT);
        loop {
            match self.lines.recv_timeout(POLL_INTERVAL) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !deadline.passed() => {}
                Err(e) => panic!(
                    "router: no line starting with {prefix:?} ({e:?}); stdout:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }

    fn command(&mut self, command: &str) {
        self.send(command);
        self.expect(&format!("ok {command}"));
    }

    fn status(&mut self) -> Value {
        self.send("status");
        serde_json::from_str(&self.expect("{")).unwrap()
    }

    /// Waits (bounded) for it to exit.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Deadline::after(WAIT);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(!deadline.passed(), "the router did not exit");
            deadline.nap();
        }
    }

    fn quit(&mut self) -> ExitStatus {
        self.command("quit");
        self.wait()
    }

    /// SIGTERM by PID (ours, unreaped), then its exit status.
    fn terminate(&mut self) -> ExitStatus {
        let mut kill = Command::new("sh");
        kill.args(["-c", "kill -s TERM \"$1\"", "sh"])
            .arg(self.child.id().to_string());
        assert!(run_bounded(kill, WAIT).unwrap().status.success());
        self.wait()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// h1 — r — h2, with the router's file written (not started).
struct Testbed {
    h1: Netns,
    h2: Netns,
    r: Netns,
    config: PathBuf,
    dir: PathBuf,
}

fn testbed(name: &str, loss_b: f64) -> Testbed {
    let dir = scratch(name);
    let h1 = Netns::new("h1").unwrap();
    let h2 = Netns::new("h2").unwrap();
    let r = Netns::new("r").unwrap();
    Netns::veth_pair(&h1, "h1", &r, "r-h1").unwrap();
    Netns::veth_pair(&h2, "h2", &r, "r-h2").unwrap();
    let config = dir.join("router.yaml");
    std::fs::write(
        &config,
        format!(
            "ra_interval_ms: 500
seed: 7
pcap_dir: {}
links:
  - {{ name: a, prefix: \"2001:db8:a::/64\", delay_ms: {DELAY_A_MS}, ports: [r-h1] }}
  - {{ name: b, prefix: \"2001:db8:b::/64\", delay_ms: {DELAY_B_MS}, loss: {loss_b}, ports: [r-h2] }}
",
            dir.join("pcap").display()
        ),
    )
    .unwrap();
    Testbed {
        h1,
        h2,
        r,
        config,
        dir,
    }
}

/// The address SLAAC gave `dev` in `prefix`, once the kernel has one
/// (bounded): global, /64, dynamic (from an RA).
fn slaac_address(ns: &Netns, dev: &str, prefix: &str) -> Ipv6Addr {
    let prefix: Ipv6Addr = prefix.parse().unwrap();
    wait_for(
        Duration::from_secs(10),
        &format!("a SLAAC address in {prefix}/64 on {dev}"),
        || {
            let out = ns.check(&["ip", "-6", "-j", "addr", "show", "dev", dev])?;
            let v: Value = serde_json::from_str(&out).unwrap();
            let found = v[0]["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|a| {
                    let addr: Ipv6Addr = a["local"].as_str()?.parse().ok()?;
                    let ok = u128::from(addr) >> 64 == u128::from(prefix) >> 64
                        && a["prefixlen"] == 64
                        && a["scope"] == "global"
                        && a["dynamic"] == true;
                    ok.then_some(addr)
                });
            Ok(found)
        },
    )
    .unwrap()
}

/// The default route of `ns` learnt from an RA, once there is one: its
/// gateway and device.
fn default_route(ns: &Netns) -> (Ipv6Addr, String) {
    wait_for(
        Duration::from_secs(10),
        "a default route from an RA",
        || {
            let out = ns.check(&["ip", "-6", "-j", "route", "show", "default"])?;
            let v: Value = serde_json::from_str(&out).unwrap();
            Ok(v.as_array().into_iter().flatten().find_map(|r| {
                (r["protocol"] == "ra").then(|| {
                    (
                        r["gateway"].as_str().unwrap().parse().unwrap(),
                        r["dev"].as_str().unwrap().to_string(),
                    )
                })
            }))
        },
    )
    .unwrap()
}

/// `ping -c COUNT -i INTERVAL -W 1`: the round-trip times of the replies,
/// and how many were sent.
fn ping(ns: &Netns, dst: Ipv6Addr, count: u32, interval: &str) -> (Vec<f64>, u32) {
    let out = ns
        .run_timeout(
            &[
                "ping",
                "-6",
                "-n",
                "-c",
                &count.to_string(),
                "-i",
                interval,
                "-W",
                "1",
                &dst.to_string(),
            ],
            Duration::from_secs(60),
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rtts = text
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .map(|t| t.trim_end_matches(" ms").parse::<f64>().unwrap())
        .collect();
    (rtts, count)
}

fn link<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn kernel_hosts_autoconfigure_and_ping_through_the_router() {
    if !prerequisites_met() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let tb = testbed("hosts", 0.0);
    let mut router = Router::start(&tb.r, &tb.config, &tb.dir);
    let status = router.status();

    // SLAAC from our RAs, and the router's link-local as default gateway.
    let a1 = slaac_address(&tb.h1, "h1", "2001:db8:a::");
    let a2 = slaac_address(&tb.h2, "h2", "2001:db8:b::");
    for (ns, dev, name) in [(&tb.h1, "h1", "a"), (&tb.h2, "h2", "b")] {
        let ll: Ipv6Addr = link(&status, name)["link_local"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(default_route(ns), (ll, dev.to_string()), "link {name}");
    }

    // Ping h1 -> h2 (once the router has resolved both hosts): four link
    // crossings, 2 x (20 + 5) ms.
    tb.h1
        .wait_ping(IpAddr::V6(a1), IpAddr::V6(a2), WAIT)
        .unwrap();
    let (rtts, sent) = ping(&tb.h1, a2, 20, "0.2");
    eprintln!(
        "RTT over {} pings, configured {RTT_MS} ms: min {:.3} median {:.3} max {:.3} ms",
        rtts.len(),
        rtts.iter().copied().fold(f64::MAX, f64::min),
        median(&rtts),
        rtts.iter().copied().fold(0.0, f64::max)
    );
    assert_eq!(rtts.len() as u32, sent, "every ping answered: {rtts:?}");
    for rtt in &rtts {
        assert!(
            (RTT_MS..RTT_MS + RTT_SLACK_MS).contains(rtt),
            "RTT {rtt} ms outside [{RTT_MS}, {}) ms: {rtts:?}",
            RTT_MS + RTT_SLACK_MS
        );
    }
    assert!(median(&rtts) < RTT_MS + 3.0, "median {}", median(&rtts));

    // Link b down: nothing gets through (counted); up: pings again.
    router.command("link b down");
    let (rtts, _) = ping(&tb.h1, a2, 5, "0.2");
    assert!(rtts.is_empty(), "replies over a down link: {rtts:?}");
    let down = link(&router.status(), "b")["down"].as_u64().unwrap();
    assert!(down >= 5, "link b counted {down} frames dropped down");
    router.command("link b up");
    tb.h1
        .wait_ping(IpAddr::V6(a1), IpAddr::V6(a2), WAIT)
        .unwrap();
    let (rtts, sent) = ping(&tb.h1, a2, 5, "0.2");
    assert_eq!(rtts.len() as u32, sent);

    // The demo's move: the router-side veth loses carrier (set down), so
    // its port gets nothing; back up, pings resume.
    tb.r.check(&["ip", "link", "set", "r-h2", "down"]).unwrap();
    wait_for(WAIT, "port r-h2 unusable in status", || {
        Ok((link(&router.status(), "b")["ports"][0]["usable"] == false).then_some(()))
    })
    .unwrap();
    let (rtts, _) = ping(&tb.h1, a2, 3, "0.2");
    assert!(rtts.is_empty(), "replies through a port without carrier");
    let port_down = link(&router.status(), "b")["port_down"].as_u64().unwrap();
    assert!(port_down >= 1, "no delivery to the down port counted");
    tb.r.check(&["ip", "link", "set", "r-h2", "up"]).unwrap();
    tb.h1
        .wait_ping(IpAddr::V6(a1), IpAddr::V6(a2), WAIT)
        .unwrap();

    let status = router.status();
    let r = &status["router"];
    assert!(r["forwarded"].as_u64().unwrap() >= 60, "{r}");
    assert_eq!(r["malformed"], 0);
    for name in ["a", "b"] {
        let l = link(&status, name);
        assert_eq!(
            (l["lost"].as_u64(), l["too_big"].as_u64()),
            (Some(0), Some(0)),
            "{l}"
        );
        assert_eq!(l["malformed"], 0, "{l}");
    }

    // SIGTERM: a clean exit, the kernel's IPv6 back on the ports, the
    // pcaps complete.
    assert!(router.terminate().success());
    for port in ["r-h1", "r-h2"] {
        let v =
            tb.r.check(&[
                "cat",
                &format!("/proc/sys/net/ipv6/conf/{port}/disable_ipv6"),
            ])
            .unwrap();
        assert_eq!(v.trim(), "0", "{port}: disable_ipv6 not restored");
    }
    let mut all_types = BTreeSet::new();
    for name in ["a", "b"] {
        let pcap = tb.dir.join(format!("pcap/{name}.pcap"));
        let pcap = pcap.to_str().unwrap();
        tools::assert_nothing_malformed(pcap, &[]);
        let types: BTreeSet<u8> = tools::tshark_fields(pcap, &[], &["icmpv6.type"])
            .lines()
            .flat_map(|l| l.split('|').map(str::to_string).collect::<Vec<_>>())
            .filter_map(|t| t.trim().parse().ok())
            .collect();
        for t in [128, 129, 134, 135, 136] {
            assert!(
                types.contains(&t),
                "{name}.pcap has no ICMPv6 type {t}: {types:?}"
            );
        }
        all_types.extend(types);
        // Real times: the first frame is stamped within the run, which
        // ended when the file was last written.
        let first: f64 = tools::tshark_fields(pcap, &["-c", "1"], &["frame.time_epoch"])
            .trim()
            .parse()
            .unwrap();
        let written = std::fs::metadata(pcap)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (0.0..120.0).contains(&(written - first)),
            "{name}.pcap: first frame at {first}, file written at {written}"
        );
    }
    eprintln!("ICMPv6 types captured: {all_types:?}");
}

#[test]
fn a_lossy_link_loses_frames_and_the_pings_that_cross_it() {
    if !prerequisites_met() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    const LOSS: f64 = 0.5;
    let tb = testbed("loss", LOSS);
    let mut router = Router::start(&tb.r, &tb.config, &tb.dir);
    let a1 = slaac_address(&tb.h1, "h1", "2001:db8:a::");
    let a2 = slaac_address(&tb.h2, "h2", "2001:db8:b::");
    tb.h1
        .wait_ping(IpAddr::V6(a1), IpAddr::V6(a2), Duration::from_secs(20))
        .unwrap();
    let before = router.status();
    let (rtts, sent) = ping(&tb.h1, a2, 100, "0.05");
    let after = router.status();
    let delta = |field: &str| {
        link(&after, "b")[field].as_u64().unwrap() - link(&before, "b")[field].as_u64().unwrap()
    };
    let (frames, lost) = (delta("sent"), delta("lost"));
    let frame_loss = lost as f64 / frames as f64;
    // A ping crosses link b twice: it comes back with (1 - p)^2.
    let ping_loss = 1.0 - rtts.len() as f64 / f64::from(sent);
    eprintln!(
        "loss {LOSS} on link b: {lost} of {frames} frames lost ({frame_loss:.3}), \
         {} of {sent} pings lost ({ping_loss:.2}; expected {:.2})",
        sent as usize - rtts.len(),
        1.0 - (1.0 - LOSS) * (1.0 - LOSS)
    );
    assert!(frames >= 120, "only {frames} frames on link b");
    assert!(
        (0.35..0.65).contains(&frame_loss),
        "frame loss {frame_loss} for p = {LOSS}"
    );
    assert!(
        (0.5..0.95).contains(&ping_loss),
        "ping loss {ping_loss}, expected about 0.75"
    );
    assert_eq!(link(&after, "a")["lost"], 0);
    assert!(router.quit().success());
}

#[test]
fn a_missing_interface_exits_2_naming_the_port() {
    if !prerequisites_met() {
        return;
    }
    let dir = scratch("missing_interface");
    let r = Netns::new("r").unwrap();
    let config = dir.join("router.yaml");
    std::fs::write(
        &config,
        "links:\n  - { name: a, prefix: \"2001:db8:a::/64\", ports: [lo, nope0] }\n",
    )
    .unwrap();
    let mut cmd = r.command(&[BIN, "router", "--config", &config.to_string_lossy()]);
    cmd.stdin(Stdio::null());
    let out = run_bounded(cmd, WAIT).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!(
            "testbed router: {}: links[0].ports[1]: no interface named \"nope0\" in this network namespace",
            config.display()
        )
    );
    // What it changed on the port it did open is back.
    let v = r
        .check(&["cat", "/proc/sys/net/ipv6/conf/lo/disable_ipv6"])
        .unwrap();
    assert_eq!(v.trim(), "0");
}
