#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
//! `testbed ike`: its configuration file, then two of our peers, and our
//! initiator against a strongSwan charon responder, in network namespaces
//! with a ping through the CHILD_SA.
//!
//! The namespace tests need root, `ip` and `ping` (and charon's tools for
//! the interop test); they are skipped without them, except under CI=true
//! where that is a failure.

mod tools;

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::ike::TsSpec;
use common::ipsec::PortRange;
use testbed::harness::netns::{
    is_root, resolve_program, run_bounded, wait_for, wait_until, Capture, Deadline, Netns,
    POLL_INTERVAL,
};
use testbed::harness::strongswan::{
    missing_prerequisites, Auth, Charon, CharonConfig, ChildConfig, Ed25519Key, Role,
};
use testbed::ike_peer::config;

const BIN: &str = env!("CARGO_BIN_EXE_testbed");
const A_OUTER: &str = "2001:db8:1::a";
const B_OUTER: &str = "2001:db8:1::b";
const A_INNER: &str = "2001:db8:a::1";
const B_INNER: &str = "2001:db8:b::1";
const A_MOVED: &str = "2001:db8:1::a2";
const B_MOVED: &str = "2001:db8:1::b2";
const PSK: &str = "our interop secret";
/// Bound on each awaited line: IKE here takes milliseconds.
const WAIT: Duration = Duration::from_secs(10);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ike-peer.yaml")
}

/// A fresh directory for one test under the target's tmp dir.
fn scratch(name: &str) -> PathBuf {
    tools::scratch(&format!("ike_peer/{name}"))
}

// ---------------------------------------------------------------------------
// The configuration file.

#[test]
fn the_example_parses() {
    let s = config::load(&example()).unwrap();
    assert_eq!(s.local_addresses, [ip(A_OUTER)]);
    assert_eq!(s.ike.id.to_string(), "a.example");
    let peer = &s.ike.peers[0];
    assert_eq!(
        (peer.name.as_str(), peer.id.to_string()),
        ("b", "b.example".to_string())
    );
    assert_eq!(peer.addresses, ["[2001:db8:1::b]:500".parse().unwrap()]);
    let child = &peer.children[0];
    assert_eq!(child.name, "net6");
    assert!(child.pfs);
    assert_eq!(
        child.local_ts.prefix.unwrap().to_string(),
        "2001:db8:a::1/128"
    );
    let tun = s.tun.unwrap();
    assert_eq!((tun.name.as_str(), tun.mtu), ("ike0", 1400));
    assert_eq!(tun.routes[0].to_string(), "2001:db8:b::1/128");
}

const MINIMAL: &str = "local_addresses: [2001:db8:1::a]\nike:\n  id: { fqdn: a.example }\n";

/// A file with one child, on line 8.
fn child_config(child: &str) -> String {
    format!(
        "local_addresses: [2001:db8:1::a]\nike:\n  id: {{ fqdn: a.example }}\n  peers:\n    - name: b\n      id: {{ email: b@example.org }}\n      psk: x\n      children:\n        - {child}\n"
    )
}

/// `text` as file `name`, loaded; an error without the file's name in
/// front.
fn parse(name: &str, text: &str) -> Result<config::PeerSetup, String> {
    let path = scratch(name).join("peer.yaml");
    std::fs::write(&path, text).unwrap();
    config::load(&path).map_err(|e| {
        let e = e.to_string();
        e.strip_prefix(&*path.to_string_lossy())
            .unwrap_or_else(|| panic!("{e} does not start with the file"))
            .to_string()
    })
}

#[test]
fn defaults_and_dynamic_selectors() {
    let s = parse(
        "defaults",
        &child_config(
        "{ name: mh, mode: transport, local_ts: \"dynamic[135]\", remote_ts: \"dynamic[135/1280-1791]\", lifetime: 100 }",
    ),
    )
    .unwrap();
    assert!(s.tun.is_none());
    assert!(s.ike.return_routability);
    let c = &s.ike.peers[0].children[0];
    assert_eq!(
        (c.local_ts.prefix, c.local_ts.protocol, c.local_ts.ports),
        (None, 135, PortRange::ANY)
    );
    // BU and BA, as swanctl writes them.
    assert_eq!(c.remote_ts, TsSpec::DYNAMIC.mh_types(5..=6));
    assert_eq!(c.lifetime.soft_time, Some(Duration::from_secs(100)));
    assert_eq!(c.lifetime.hard_time, Some(Duration::from_secs(110)));
    assert!(!c.pfs);
}

#[test]
fn unknown_fields_are_errors_that_say_where() {
    let e = parse("colour", &format!("{MINIMAL}colour: blue\n")).unwrap_err();
    assert!(e.starts_with(":4:1: unknown field `colour`"), "{e}");
    let e = parse(
        "bogus",
        &child_config("{ name: c, local_ts: dynamic, remote_ts: dynamic, bogus: 1 }"),
    )
    .unwrap_err();
    assert!(
        e.starts_with(":9:61: ike.peers[0].children[0]: unknown field `bogus`"),
        "{e}"
    );
}

#[test]
fn bad_values_are_errors_that_name_the_field_at_its_line_and_column() {
    let cases = [
        (
            child_config("{ name: c, local_ts: 2001:db8::/129, remote_ts: dynamic }"),
            ":9:32: ike.peers[0].children[0].local_ts: not an address or prefix: \"2001:db8::/129\"",
        ),
        (
            child_config("{ name: c, local_ts: dynamic, remote_ts: \"dynamic[icmp]\" }"),
            ":9:52: ike.peers[0].children[0].remote_ts: \"dynamic[icmp]\": the protocol in [] must be a number 0-255",
        ),
        (
            child_config("{ name: c, local_ts: dynamic, remote_ts: \"dynamic[135/6-5]\" }"),
            ":9:52: ike.peers[0].children[0].remote_ts: \"dynamic[135/6-5]\": the ports after / must be N or LOW-HIGH",
        ),
        (
            child_config("{ name: c, local_ts: dynamic, remote_ts: dynamic, esp_proposals: [aes] }"),
            ":9:77: ike.peers[0].children[0].esp_proposals[0]: unknown \"aes\"",
        ),
        (
            child_config("{ name: c, local_ts: dynamic, remote_ts: dynamic, lifetime: 0 }"),
            ":9:71: ike.peers[0].children[0].lifetime: invalid value: integer `0`, expected a nonzero",
        ),
        (
            "ike:\n  id: { fqdn: 2001:db8::1 }\nlocal_addresses: [2001:db8:1::a]\n".to_string(),
            ":2:15: ike.id.fqdn: \"2001:db8::1\": an identity is a name, never an address",
        ),
        (
            "ike:\n  id: { fqdn: a, email: a@b }\nlocal_addresses: [2001:db8:1::a]\n".to_string(),
            ":2:7: ike.id: give only one of fqdn and email",
        ),
        (
            format!("{MINIMAL}  peers:\n    - {{ name: b, id: {{ fqdn: b }} }}\n"),
            ":5:9: ike.peers[0]: give exactly one of psk (not empty) and ed25519_pubkey",
        ),
        (
            format!("{MINIMAL}tun: {{ routes: [2001:db8:b::1/200] }}\n"),
            ":4:17: tun.routes[0]: not an address or prefix",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let e = parse(&format!("bad-value-{i}"), text).unwrap_err();
        assert!(e.starts_with(expected), "{e}\nexpected: {expected}");
    }
}

#[test]
fn a_bad_config_exits_2_naming_the_field() {
    let dir = scratch("bad_config");
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        child_config("{ name: c, local_ts: 2001:db8::/129, remote_ts: dynamic }"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["ike", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:9:32: ike.peers[0].children[0].local_ts"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Namespaces.

fn namespace_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (network namespaces, TUN, ports 500/4500, raw ESP)".to_string());
    }
    for program in ["ip", "ping"] {
        if resolve_program(program).is_err() {
            missing.push(program.to_string());
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun".to_string());
    }
    missing
}

/// ns a and ns b joined by veth va <-> vb with the outer addresses.
fn two_namespaces() -> (Netns, Netns) {
    let a = Netns::new("a").unwrap();
    let b = Netns::new("b").unwrap();
    Netns::veth_pair(&a, "va", &b, "vb").unwrap();
    a.add_address("va", &format!("{A_OUTER}/64")).unwrap();
    b.add_address("vb", &format!("{B_OUTER}/64")).unwrap();
    a.wait_ping(ip(A_OUTER), ip(B_OUTER), Duration::from_secs(5))
        .unwrap();
    (a, b)
}

/// One side's file: PSK, IKE and ESP aes256gcm16, MOBIKE (the default)
/// unless `extra` says otherwise, a tunnel child between the inner
/// addresses, which are on the TUN device with a route to the other's.
fn peer_yaml(
    (us, outer, inner): (&str, &str, &str),
    (them, their_outer, their_inner): (&str, &str, &str),
    extra: &str,
) -> String {
    let their = sock(their_outer);
    format!(
        "ike:
  id: {{ fqdn: {us}.example }}
  proposals: [aes256gcm16]
{extra}  peers:
    - name: {them}
      id: {{ fqdn: {them}.example }}
      psk: \"{PSK}\"
      addresses: [\"{their}:500\"]
      children:
        - name: net6
          mode: tunnel
          local_ts: {inner}/128
          remote_ts: {their_inner}/128
          esp_proposals: [aes256gcm16]
local_addresses: [{outer}]
tun:
  name: ike0
  addresses: [{inner}/128]
  routes: [{their_inner}/128]
"
    )
}

/// Our peer running in a namespace, fed commands on stdin, its stdout read
/// line by line by a thread. Dropping it kills it (by its PID: `ip netns
/// exec` execs the binary, and the child is ours and unreaped).
struct Peer {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Peer {
    fn start(name: &'static str, ns: &Netns, config: &Path, extra: &[&str], dir: &Path) -> Peer {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut cmd = ns.command(&[BIN, "ike", "--config", &config.to_string_lossy()]);
        cmd.args(extra)
            .stdin(Stdio::piped())
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
        let mut peer = Peer {
            name,
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
        };
        peer.expect("ready");
        peer
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
    }

    /// The next line starting with `prefix`, within [`WAIT`]; fails with
    /// everything seen so far.
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
                Err(e) => self.fail(&format!("{prefix:?} ({e:?})")),
            }
        }
    }

    /// The next line starting with each prefix, in whatever order they come.
    fn expect_all<const N: usize>(&mut self, prefixes: [&str; N]) -> [String; N] {
        let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
        let deadline = Deadline::after(WAIT);
        while found.iter().any(Option::is_none) {
            match self.lines.recv_timeout(POLL_INTERVAL) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(i) =
                        (0..N).find(|&i| found[i].is_none() && line.starts_with(prefixes[i]))
                    {
                        found[i] = Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !deadline.passed() => {}
                Err(e) => self.fail(&format!("{prefixes:?} ({e:?})")),
            }
        }
        found.map(Option::unwrap_or_default)
    }

    fn fail(&self, waiting_for: &str) -> ! {
        panic!(
            "{}: no line starting with {waiting_for}; stdout:\n{}\nstderr:\n{}",
            self.name,
            self.seen.join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// `quit`, then its exit status (bounded).
    fn quit(&mut self) -> ExitStatus {
        self.send("quit");
        self.expect("ok quit");
        let deadline = Deadline::after(WAIT);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(!deadline.passed(), "{} did not exit after quit", self.name);
            deadline.nap();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of `key=` in an event line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Rows (not the header) of a key-log file.
fn rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("# This file is automatically generated, DO NOT MODIFY."),
        "{}",
        path.display()
    );
    text.lines().skip(1).map(str::to_string).collect()
}

fn assert_pings(ns: &Netns, count: u32) {
    let out = ns.ping(ip(A_INNER), ip(B_INNER), count).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("{count} received")),
        "ping {A_INNER} -> {B_INNER}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether tcpdump and tshark are here to check the key log (required
/// under CI=true).
fn tshark_available() -> bool {
    let missing: Vec<String> = ["tcpdump", "tshark"]
        .into_iter()
        .filter(|p| resolve_program(p).is_err())
        .map(str::to_string)
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but missing {missing:?}"
        );
        eprintln!("skipping the tshark check: missing {missing:?}");
    }
    missing.is_empty()
}

/// `tshark -Y FILTER -T fields -e FIELD` with our key log as its config.
fn tshark_fields(pcap: &Path, keys: &Path, filter: &str, field: &str) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.env("WIRESHARK_CONFIG_DIR", keys)
        .arg("-r")
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields", "-e", field]);
    let out = run_bounded(cmd, Duration::from_secs(30)).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// tshark, given only our key log, opens IKE_AUTH (the identities inside
/// SK) and the pings inside ESP.
fn assert_tshark_decrypts(pcap: &Path, keys: &Path, spi_out: &str) {
    let ids = tshark_fields(pcap, keys, "isakmp.id.data.fqdn", "isakmp.id.data.fqdn");
    assert!(ids.iter().any(|i| i.contains("a.example")), "{ids:?}");
    let spis = tshark_fields(pcap, keys, "esp && icmpv6.type == 128", "esp.spi");
    assert_eq!(spis.len(), 3, "{spis:?}");
    assert!(spis.iter().all(|s| s == spi_out), "{spis:?} != {spi_out}");
}

#[test]
fn two_of_our_peers_set_up_a_tunnel_and_ping_through_it() {
    if !tools::prerequisites_met(&namespace_prerequisites()) {
        return;
    }
    let dir = scratch("two_peers");
    let (ns_a, ns_b) = two_namespaces();
    let a_yaml = dir.join("a.yaml");
    let b_yaml = dir.join("b.yaml");
    let a_side = ("a", A_OUTER, A_INNER);
    let b_side = ("b", B_OUTER, B_INNER);
    std::fs::write(&a_yaml, peer_yaml(a_side, b_side, "")).unwrap();
    std::fs::write(&b_yaml, peer_yaml(b_side, a_side, "")).unwrap();
    let keys = dir.join("keys");
    let capture =
        tshark_available().then(|| Capture::start(&ns_a, "va", &dir.join("va.pcap")).unwrap());

    let mut b = Peer::start("b", &ns_b, &b_yaml, &[], &dir);
    let mut a = Peer::start(
        "a",
        &ns_a,
        &a_yaml,
        &["--keylog", &keys.to_string_lossy()],
        &dir,
    );
    a.send("initiate b");
    let sa = field(&a.expect("ok initiate"), "sa").to_string();
    let up = a.expect("event established");
    assert_eq!(field(&up, "sa"), sa);
    assert_eq!(field(&up, "peer"), "b.example");
    assert_eq!(
        field(&up, "remote"),
        format!("[{B_OUTER}]:4500"),
        "MOBIKE moves IKE to 4500"
    );
    let child_a = a.expect("event child-up");
    assert_eq!(field(&child_a, "name"), "net6");
    assert_eq!(field(&child_a, "mode"), "tunnel");
    assert_eq!(
        field(&child_a, "encap"),
        "no",
        "IPv6 and nat_traversal auto: raw ESP"
    );
    assert_eq!(field(&b.expect("event established"), "peer"), "a.example");
    let child_b = b.expect("event child-up");
    assert_eq!(field(&child_a, "spi_in"), field(&child_b, "spi_out"));
    assert_eq!(field(&child_a, "spi_out"), field(&child_b, "spi_in"));

    assert_pings(&ns_a, 3);
    if let Some(capture) = capture {
        let pcap = capture.stop().unwrap();
        assert_tshark_decrypts(&pcap, &keys, field(&child_a, "spi_out"));
    }

    let ike_rows = rows(&keys.join("ikev2_decryption_table"));
    assert_eq!(ike_rows.len(), 1, "{ike_rows:?}");
    assert!(ike_rows[0].starts_with(&sa), "{ike_rows:?} for SA {sa}");
    let esp_rows = rows(&keys.join("esp_sa"));
    assert_eq!(esp_rows.len(), 2, "{esp_rows:?}");
    for spi in [field(&child_a, "spi_in"), field(&child_a, "spi_out")] {
        assert!(
            esp_rows.iter().any(|r| r.contains(&format!("\"{spi}\""))),
            "{spi} not in {esp_rows:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(keys.join("preferences")).unwrap(),
        common::keylog::PREFERENCES
    );

    // MOBIKE: a moves to a new address and drops the old one.
    ns_a.add_address("va", &format!("{A_MOVED}/64")).unwrap();
    a.send(&format!("addresses {A_MOVED}"));
    a.expect("ok addresses");
    let moved = a.expect("event moved");
    assert_eq!(field(&moved, "local"), format!("[{A_MOVED}]:4500"));
    assert_eq!(
        field(&b.expect("event moved"), "remote"),
        format!("[{A_MOVED}]:4500")
    );
    assert_pings(&ns_a, 3);

    // Rekeys and a liveness check, by command.
    a.send(&format!("rekey-child * {}", field(&child_a, "spi_in")));
    a.expect("ok rekey-child");
    let [_, down] = a.expect_all(["event child-up", "event child-down"]);
    assert_eq!(field(&down, "spi_in"), field(&child_a, "spi_in"));
    a.send("rekey-ike *");
    a.expect("ok rekey-ike");
    let [new_sa, old_sa] = a.expect_all(["event established", "event closed"]);
    assert_eq!(field(&old_sa, "sa"), sa);
    let sa = field(&new_sa, "sa").to_string();
    let [_, old_sa] = b.expect_all(["event established", "event closed"]);
    assert_eq!(field(&old_sa, "reason"), "rekeyed");
    a.send("liveness *");
    a.expect("ok liveness");
    assert_pings(&ns_a, 3);

    a.send("status");
    let stats = a.expect("stats");
    let sealed: u64 = field(&stats, "esp-sealed").parse().unwrap();
    let opened: u64 = field(&stats, "esp-opened").parse().unwrap();
    assert!(sealed >= 9 && opened >= 9, "{stats}");
    a.expect("ok status");

    // The IKE rekey added an IKE row, the child rekey two ESP rows.
    let ike_rows = rows(&keys.join("ikev2_decryption_table"));
    assert_eq!(ike_rows.len(), 2, "{ike_rows:?}");
    assert!(ike_rows[1].starts_with(&sa), "{ike_rows:?} for SA {sa}");
    assert_eq!(rows(&keys.join("esp_sa")).len(), 4);

    a.send("delete *");
    a.expect("ok delete");
    assert_eq!(field(&a.expect("event closed"), "reason"), "deleted");
    assert_eq!(field(&b.expect("event closed"), "reason"), "deleted");
    assert!(a.quit().success());
    assert!(b.quit().success());
}

#[test]
fn our_initiator_and_a_charon_responder_ping_through_the_child_sa() {
    if !tools::prerequisites_met(&missing_prerequisites()) {
        return;
    }
    let dir = scratch("charon_responder");
    let (ns_a, ns_b) = two_namespaces();
    ns_b.add_loopback_address(ip(B_INNER)).unwrap();
    let mut cfg = CharonConfig::new(
        Role::Responder,
        "b.example",
        "a.example",
        Auth::Psk(PSK.to_string()),
    );
    cfg.children = vec![ChildConfig::tunnel(
        "net6",
        &format!("{B_INNER}/128"),
        &format!("{A_INNER}/128"),
    )];
    let charon = Charon::start(&ns_b, &dir.join("charon"), cfg).unwrap();
    charon.load().unwrap();

    // libipsec needs ESP in UDP: it fakes a NAT, which we only look for
    // over IPv6 when told to.
    let a_yaml = dir.join("a.yaml");
    std::fs::write(
        &a_yaml,
        peer_yaml(
            ("a", A_OUTER, A_INNER),
            ("b", B_OUTER, B_INNER),
            "  nat_traversal: on\n",
        ),
    )
    .unwrap();
    let keys = dir.join("keys");
    let mut a = Peer::start(
        "a",
        &ns_a,
        &a_yaml,
        &["--initiate", "b", "--keylog", &keys.to_string_lossy()],
        &dir,
    );
    let up = a.expect("event established");
    assert_eq!(field(&up, "peer"), "b.example");
    assert_eq!(field(&up, "remote"), format!("[{B_OUTER}]:4500"));
    let child = a.expect("event child-up");
    assert_eq!(field(&child, "encap"), "yes", "{child}");
    let sa = charon.wait_child_installed("net6", WAIT).unwrap();
    let theirs = &sa.children[0];
    assert_eq!(
        format!("{:#010x}", theirs.spi_in),
        field(&child, "spi_out"),
        "{sa:?}"
    );

    assert_pings(&ns_a, 3);

    a.send("status");
    let status = a.expect("sa ");
    assert!(status.contains(" nat=yes mobike=yes"), "{status}");
    a.expect("ok status");

    // MOBIKE to a new address; libipsec cannot move SAs, so charon rekeys
    // the child after UPDATE_SA_ADDRESSES.
    ns_a.add_address("va", &format!("{A_MOVED}/64")).unwrap();
    a.send(&format!("addresses {A_MOVED}"));
    a.expect("ok addresses");
    // charon's rekey request may come before its UPDATE_SA_ADDRESSES
    // response: in any order.
    let [moved, rekeyed, _] = a.expect_all(["event moved", "event child-up", "event child-down"]);
    assert_eq!(field(&moved, "local"), format!("[{A_MOVED}]:4500"));
    assert_pings(&ns_a, 3);
    a.send("status");
    let child = a.expect("child ");
    assert_eq!(field(&child, "spi_in"), field(&rekeyed, "spi_in"));
    assert_eq!(field(&child, "outer"), format!("{A_MOVED}->{B_OUTER}"));
    a.expect("ok status");

    // The children move to the new IKE SA, and their ESP stays in UDP.
    a.send("rekey-ike *");
    a.expect("ok rekey-ike");
    a.expect_all(["event established", "event closed"]);
    assert_pings(&ns_a, 3);

    a.send("delete *");
    a.expect("ok delete");
    assert_eq!(field(&a.expect("event closed"), "reason"), "deleted");
    assert!(a.quit().success());
}

/// IPv4 outer addresses, for the IKE SAs over IPv4.
const A_OUTER4: &str = "192.0.2.1";
const B_OUTER4: &str = "192.0.2.2";
const A_MOVED4: &str = "192.0.2.3";

/// A charon initiator in ns a and our responder in ns b, after charon
/// initiated the child `net6` between the inner addresses and both sides
/// have it installed. `tune` changes charon's configuration, `ours` b's
/// file; `v4` runs IKE over the IPv4 outer addresses.
struct CharonInitiator {
    b: Peer,
    charon: Charon,
    /// b's child-up line.
    child: String,
    ns_a: Netns,
    _ns_b: Netns,
}

fn charon_initiator(
    dir: &Path,
    tune: impl FnOnce(&mut CharonConfig),
    ours: impl FnOnce(String) -> String,
    v4: bool,
) -> CharonInitiator {
    let (ns_a, ns_b) = charon_namespaces(v4);
    let mut b = our_peer_for_charon(&ns_b, dir, ours, v4, &[]);
    let c = charon_start(&ns_a, dir, Role::Initiator, tune, v4);
    c.initiate("net6").unwrap();
    let up = b.expect("event established");
    assert_eq!(field(&up, "peer"), "a.example");
    let child = b.expect("event child-up");
    assert_eq!(field(&child, "encap"), "yes", "{child}");
    let sa = c.wait_child_installed("net6", WAIT).unwrap();
    assert_eq!(
        format!("{:#010x}", sa.children[0].spi_out),
        field(&child, "spi_in"),
        "{sa:?}"
    );
    assert_pings(&ns_a, 3);
    CharonInitiator {
        b,
        charon: c,
        child,
        ns_a,
        _ns_b: ns_b,
    }
}

/// ns a and ns b, with charon's inner address on a's loopback and, for
/// `v4`, the IPv4 outer addresses too.
fn charon_namespaces(v4: bool) -> (Netns, Netns) {
    let (ns_a, ns_b) = two_namespaces();
    ns_a.add_loopback_address(ip(A_INNER)).unwrap();
    if v4 {
        ns_a.add_address("va", &format!("{A_OUTER4}/24")).unwrap();
        ns_b.add_address("vb", &format!("{B_OUTER4}/24")).unwrap();
        // So that removing the first address keeps the moved-to one.
        ns_a.set_sysctl("net.ipv4.conf.va.promote_secondaries", "1")
            .unwrap();
    }
    (ns_a, ns_b)
}

fn outer(v4: bool) -> (&'static str, &'static str) {
    if v4 {
        (A_OUTER4, B_OUTER4)
    } else {
        (A_OUTER, B_OUTER)
    }
}

/// charon in ns a with child `net6` between the inner addresses, loaded.
fn charon_start(
    ns_a: &Netns,
    dir: &Path,
    role: Role,
    tune: impl FnOnce(&mut CharonConfig),
    v4: bool,
) -> Charon {
    let mut cfg = CharonConfig::new(role, "a.example", "b.example", Auth::Psk(PSK.to_string()));
    if role == Role::Initiator {
        cfg.remote_addrs = vec![ip(outer(v4).1)];
    }
    cfg.children = vec![ChildConfig::tunnel(
        "net6",
        &format!("{A_INNER}/128"),
        &format!("{B_INNER}/128"),
    )];
    tune(&mut cfg);
    let charon = Charon::start(ns_a, &dir.join("charon"), cfg).unwrap();
    charon.load().unwrap();
    charon
}

/// Our peer b in ns b, NAT traversal on for libipsec, its file changed
/// by `ours`; `args` as for [`Peer::start`].
fn our_peer_for_charon(
    ns_b: &Netns,
    dir: &Path,
    ours: impl FnOnce(String) -> String,
    v4: bool,
    args: &[&str],
) -> Peer {
    let (a_outer, b_outer) = outer(v4);
    let yaml = peer_yaml(
        ("b", b_outer, B_INNER),
        ("a", a_outer, A_INNER),
        "  nat_traversal: on\n",
    );
    let b_yaml = dir.join("b.yaml");
    std::fs::write(&b_yaml, ours(yaml)).unwrap();
    Peer::start("b", ns_b, &b_yaml, args, dir)
}

#[test]
fn a_charon_initiator_and_our_responder_ping_through_the_child_sa() {
    if !tools::prerequisites_met(&missing_prerequisites()) {
        return;
    }
    let dir = scratch("charon_initiator");
    let mut c = charon_initiator(&dir, |_| {}, |y| y, false);
    c.charon.terminate().unwrap();
    assert_eq!(field(&c.b.expect("event closed"), "reason"), "deleted");
    assert!(c.b.quit().success());
}

/// The INSTALLED child `net6` of charon's established IKE SA.
fn installed(charon: &Charon) -> testbed::harness::strongswan::ChildSa {
    let sa = charon.wait_child_installed("net6", WAIT).unwrap();
    sa.children
        .into_iter()
        .find(|c| c.name == "net6" && c.state == "INSTALLED")
        .unwrap()
}

/// charon at its default IKE proposals and the ESP proposals `esp` moves
/// by MOBIKE to a new address (same family) and, libipsec being unable to
/// move SAs, rekeys the child: the pings after the move go through the
/// new child, both ways.
fn charon_defaults_move(case: &str, esp: &str, v4: bool) {
    if !tools::prerequisites_met(&missing_prerequisites()) {
        return;
    }
    let dir = scratch(&format!("charon_defaults_move/{case}"));
    let mut c = charon_initiator(
        &dir,
        |cfg| {
            cfg.ike_proposals = "default".to_string();
            cfg.esp_proposals = esp.to_string();
        },
        |y| y,
        v4,
    );
    let (from, to, b_outer) = if v4 {
        (format!("{A_OUTER4}/24"), A_MOVED4, B_OUTER4)
    } else {
        (format!("{A_OUTER}/64"), A_MOVED, B_OUTER)
    };
    let width = if v4 { 24 } else { 64 };
    c.ns_a.add_address("va", &format!("{to}/{width}")).unwrap();
    c.ns_a.del_address("va", &from).unwrap();
    let [moved, rekeyed, down] =
        c.b.expect_all(["event moved", "event child-up", "event child-down"]);
    assert_eq!(field(&moved, "remote"), format!("{}:4500", sock(to)));
    assert_eq!(field(&down, "spi_in"), field(&c.child, "spi_in"));
    assert_eq!(field(&rekeyed, "outer"), format!("{b_outer}->{to}"));
    assert_pings(&c.ns_a, 3);
    let theirs = installed(&c.charon);
    assert_eq!(
        format!("{:#010x}", theirs.spi_out),
        field(&rekeyed, "spi_in")
    );
    assert!(theirs.counter("packets-out") >= Some(3), "{theirs:?}");
    assert!(theirs.counter("packets-in") >= Some(3), "{theirs:?}");
    assert_pfs(&theirs, esp.contains("x25519"));
    let log = c.charon.log().unwrap();
    assert!(
        !log.contains("failed to establish CHILD_SA"),
        "charon refused"
    );
}

/// Whether charon's child was made with X25519 (PFS).
fn assert_pfs(child: &testbed::harness::strongswan::ChildSa, pfs: bool) {
    let group = child.fields.get("dh-group").map(String::as_str);
    assert_eq!(group, pfs.then_some("CURVE_25519"), "{child:?}");
}

/// charon initiates at its default IKE proposals and the ESP proposals
/// `esp`; the child and then the IKE SA are rekeyed by charon
/// (`by_charon`) or by us, the child with PFS when `esp` has X25519 (and
/// our child `pfs: true`), and the pings go through after each. Returns
/// charon's log.
fn rekeys(case: &str, by_charon: bool, esp: &str) -> String {
    let dir = scratch(&format!("charon_rekeys/{case}"));
    let pfs = esp.contains("x25519");
    let ours = if pfs { "          pfs: true\n" } else { "" };
    let mut c = charon_initiator(
        &dir,
        |cfg| {
            cfg.ike_proposals = "default".to_string();
            cfg.esp_proposals = esp.to_string();
        },
        |y| {
            let esp = "esp_proposals: [aes256gcm16]\n";
            y.replace(esp, &format!("{esp}{ours}"))
        },
        false,
    );
    let new_in = if by_charon {
        let theirs = c.charon.rekey_child("net6", WAIT).unwrap();
        format!("{:#010x}", theirs.spi_out)
    } else {
        c.b.send(&format!("rekey-child * {}", field(&c.child, "spi_in")));
        c.b.expect("ok rekey-child");
        String::new()
    };
    let [up, down] = c.b.expect_all(["event child-up", "event child-down"]);
    assert_eq!(field(&down, "spi_in"), field(&c.child, "spi_in"));
    if by_charon {
        assert_eq!(field(&up, "spi_in"), new_in);
    }
    assert_pings(&c.ns_a, 3);
    let theirs = installed(&c.charon);
    assert_eq!(format!("{:#010x}", theirs.spi_out), field(&up, "spi_in"));
    assert_pfs(&theirs, pfs);

    let old = c.charon.wait_child_installed("net6", WAIT).unwrap();
    if by_charon {
        c.charon.rekey_ike(&old, WAIT).unwrap();
    } else {
        c.b.send("rekey-ike *");
        c.b.expect("ok rekey-ike");
    }
    let [new_sa, closed] = c.b.expect_all(["event established", "event closed"]);
    assert_eq!(field(&closed, "reason"), "rekeyed");
    let ours = u64::from_str_radix(field(&new_sa, "sa"), 16).unwrap();
    let sa = wait_for(WAIT, "charon's new IKE SA", || {
        Ok(c.charon
            .list_sas()?
            .into_iter()
            .find(|sa| sa.state == "ESTABLISHED" && (sa.spi_i == ours || sa.spi_r == ours)))
    })
    .unwrap();
    assert_eq!(sa.fields["dh-group"], "CURVE_25519", "{sa:?}");
    let live = sa.children.iter().filter(|c| c.state == "INSTALLED");
    assert_eq!(live.count(), 1, "the child follows: {sa:?}");
    assert_pings(&c.ns_a, 3);
    let log = c.charon.log().unwrap();
    assert!(!log.contains("failed to establish"), "charon refused");
    log
}

// REQ IKE-BASE
#[test]
fn charon_rekeys_the_child_with_pfs_and_the_ike_sa() {
    if tools::prerequisites_met(&missing_prerequisites()) {
        rekeys("charon_pfs", true, "aes256gcm16-x25519");
    }
}

// REQ IKE-BASE
#[test]
fn charon_rekeys_the_child_without_pfs_and_the_ike_sa() {
    if tools::prerequisites_met(&missing_prerequisites()) {
        rekeys("charon_no_pfs", true, "aes256gcm16");
    }
}

// REQ IKE-BASE
#[test]
fn we_rekey_the_child_with_pfs_and_the_ike_sa_with_charon() {
    if tools::prerequisites_met(&missing_prerequisites()) {
        rekeys("ours_pfs", false, "aes256gcm16-x25519");
    }
}

// REQ IKE-BASE
#[test]
fn we_rekey_the_child_without_pfs_and_the_ike_sa_with_charon() {
    if tools::prerequisites_met(&missing_prerequisites()) {
        rekeys("ours_no_pfs", false, "aes256gcm16");
    }
}

// REQ IKE-BASE
#[test]
fn charons_ecp256_ke_gets_invalid_ke_payload_and_its_retry_with_x25519_rekeys() {
    if !tools::prerequisites_met(&missing_prerequisites()) {
        return;
    }
    let log = rekeys("charon_ecp256", true, "aes256gcm16-ecp256-x25519");
    assert!(
        log.contains("peer didn't accept DH group ECP_256, it requested CURVE_25519"),
        "{log}"
    );
}

/// Ed25519 keys for a (charon) and b (ours), and b's file changed to
/// sign with b's and know a's.
fn ed25519_keys(dir: &Path) -> (Auth, impl FnOnce(String) -> String) {
    let keys = dir.join("keys");
    let a = Ed25519Key::generate(&keys, "a").unwrap();
    let b = Ed25519Key::generate(&keys, "b").unwrap();
    let ours = format!("  ed25519_key: {}\n  peers:", b.private_pem.display());
    let theirs = format!("ed25519_pubkey: {}", a.public_pem.display());
    let auth = Auth::Ed25519 {
        local: a,
        remote_public_pem: b.public_pem,
    };
    (auth, move |y: String| {
        y.replacen("  peers:", &ours, 1)
            .replace(&format!("psk: \"{PSK}\""), &theirs)
            .replace("[aes256gcm16]", "[chacha20poly1305]")
    })
}

// REQ IKE-BASE
#[test]
fn a_charon_initiator_and_our_responder_with_ed25519_and_chacha20_poly1305() {
    if !tools::prerequisites_met(&missing_prerequisites()) {
        return;
    }
    let dir = scratch("charon_ed25519_chacha");
    let (auth, ours) = ed25519_keys(&dir);
    let c = charon_initiator(
        &dir,
        |cfg| {
            cfg.auth = auth;
            cfg.ike_proposals = "chacha20poly1305-prfsha256-x25519".to_string();
            cfg.esp_proposals = "chacha20poly1305".to_string();
        },
        ours,
        false,
    );
    let sa = c.charon.list_sas().unwrap().remove(0);
    assert_eq!(sa.fields["encr-alg"], "CHACHA20_POLY1305");
    assert_eq!(installed(&c.charon).fields["encr-alg"], "CHACHA20_POLY1305");
    assert!(
        c.charon
            .log()
            .unwrap()
            .contains("authentication of 'b.example' with ED25519 successful"),
        "we did not authenticate with Ed25519"
    );
}

// REQ IKE-BASE
#[test]
fn our_initiator_and_a_charon_responder_with_ed25519_and_chacha20_poly1305() {
    if !tools::prerequisites_met(&missing_prerequisites()) {
        return;
    }
    let dir = scratch("charon_responder_ed25519_chacha");
    let (ns_a, ns_b) = charon_namespaces(false);
    let (auth, ours) = ed25519_keys(&dir);
    let charon = charon_start(
        &ns_a,
        &dir,
        Role::Responder,
        |cfg| {
            cfg.auth = auth;
            cfg.ike_proposals = "chacha20poly1305-prfsha256-x25519".to_string();
            cfg.esp_proposals = "chacha20poly1305".to_string();
        },
        false,
    );
    let mut b = our_peer_for_charon(&ns_b, &dir, ours, false, &["--initiate", "a"]);
    b.expect("event established");
    let child = b.expect("event child-up");
    let sa = charon.wait_child_installed("net6", WAIT).unwrap();
    assert_eq!(sa.fields["encr-alg"], "CHACHA20_POLY1305");
    let theirs = installed(&charon);
    assert_eq!(theirs.fields["encr-alg"], "CHACHA20_POLY1305");
    assert_eq!(format!("{:#010x}", theirs.spi_in), field(&child, "spi_out"));
    assert!(charon
        .log()
        .unwrap()
        .contains("authentication of 'b.example' with ED25519 successful"));
    assert_pings(&ns_a, 3);
}

// REQ IKE-BASE
#[test]
fn our_responder_refuses_charons_aes_cbc_child_with_no_proposal_chosen() {
    if !tools::prerequisites_met(&missing_prerequisites()) {
        return;
    }
    let dir = scratch("charon_refused");
    let (ns_a, ns_b) = charon_namespaces(false);
    let mut b = our_peer_for_charon(&ns_b, &dir, |y| y, false, &[]);
    let charon = charon_start(
        &ns_a,
        &dir,
        Role::Initiator,
        |cfg| cfg.esp_proposals = "aes256-sha256".to_string(),
        false,
    );
    assert!(charon.initiate("net6").is_err(), "charon got a child");
    let up = b.expect("event established");
    let refused = b.expect("event child-refused");
    assert_eq!(field(&refused, "sa"), field(&up, "sa"));
    assert_eq!(field(&refused, "notify"), "NO_PROPOSAL_CHOSEN");
    assert_eq!(field(&refused, "by"), "us");
    let log = charon.log().unwrap();
    assert!(
        log.contains("received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built"),
        "{log}"
    );
}

// REQ IKE-BASE
#[test]
fn a_charon_responder_refuses_our_chacha20_child_with_no_proposal_chosen() {
    if !tools::prerequisites_met(&missing_prerequisites()) {
        return;
    }
    let dir = scratch("charon_refuses");
    let (ns_a, ns_b) = charon_namespaces(false);
    let charon = charon_start(&ns_a, &dir, Role::Responder, |_| {}, false);
    let mut b = our_peer_for_charon(
        &ns_b,
        &dir,
        |y| {
            y.replace(
                "esp_proposals: [aes256gcm16]",
                "esp_proposals: [chacha20poly1305]",
            )
        },
        false,
        &["--initiate", "a"],
    );
    let up = b.expect("event established");
    let refused = b.expect("event child-refused");
    assert_eq!(field(&refused, "sa"), field(&up, "sa"));
    assert_eq!(field(&refused, "notify"), "NO_PROPOSAL_CHOSEN");
    assert_eq!(field(&refused, "by"), "peer");
    let log = charon.log().unwrap();
    assert!(log.contains("no acceptable proposal found"), "{log}");
    assert!(log.contains("N(NO_PROP)"), "{log}");
}

/// `[addr]` for IPv6, `addr` for IPv4, as a socket address prints.
fn sock(a: &str) -> String {
    if a.contains(':') {
        format!("[{a}]")
    } else {
        a.to_string()
    }
}

// REQ MOBIKE
#[test]
fn charon_at_its_defaults_moves_by_mobike_over_ipv6_and_traffic_recovers() {
    charon_defaults_move("v6", "default", false);
}

// REQ MOBIKE
#[test]
fn charon_with_pfs_moves_by_mobike_and_rekeys_with_x25519() {
    charon_defaults_move("pfs", "aes256gcm16-x25519", false);
}

// REQ MOBIKE
#[test]
fn charon_at_its_defaults_moves_by_mobike_over_ipv4_and_traffic_recovers() {
    charon_defaults_move("v4", "default", true);
}

/// Sends one Mobility Header message, as raw `bytes` after the IPv6
/// header (the kernel fills in the MH checksum), from `src` to `dst` in
/// `ns`.
fn send_mh(ns: &Netns, src: &str, dst: &str, bytes: &[u8]) {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 135)\n\
         s.bind(('{src}', 0))\n\
         s.sendto(bytes({bytes:?}), ('{dst}', 0))\n"
    );
    ns.check(&["python3", "-c", &script]).unwrap();
}

/// BU, seq 1, A, lifetime 100, padded to 16 octets with a PadN.
const BU: [u8; 16] = [59, 1, 5, 0, 0, 0, 0, 1, 0x80, 0, 0, 100, 1, 2, 0, 0];
/// HoTI, cookie 7.
const HOTI: [u8; 16] = [59, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

/// The Mobility Header, types BU and BA only: the ports 1280-1791 of
/// RFC 4301 §4.4.1.1, in swanctl's syntax (which has no MH-type form:
/// `[135/5-6]` would be ports 5-6).
const BU_BA: &str = "[135/1280-1791]";

/// Our initiator against a charon responder, with selectors between the
/// inner addresses for the Mobility Header: `charon_ts` and `our_ts`
/// follow the prefixes, and we propose the ports `proposed`. The child
/// is for BU/BA on both sides; a BU goes through it and a HoTI does not.
fn bu_ba_child_with_charon(case: &str, charon_ts: &str, our_ts: &str, proposed: (u16, u16)) {
    let mut missing = missing_prerequisites();
    missing.extend(
        resolve_program("python3")
            .is_err()
            .then(|| "python3".to_string()),
    );
    if !tools::prerequisites_met(&missing) {
        return;
    }
    let dir = scratch(&format!("charon_mh_types/{case}"));
    let (ns_a, ns_b) = two_namespaces();
    ns_b.add_loopback_address(ip(B_INNER)).unwrap();
    let mut cfg = CharonConfig::new(
        Role::Responder,
        "b.example",
        "a.example",
        Auth::Psk(PSK.to_string()),
    );
    cfg.children = vec![ChildConfig::tunnel(
        "mip",
        &format!("{B_INNER}/128{charon_ts}"),
        &format!("{A_INNER}/128{charon_ts}"),
    )];
    let capture =
        tshark_available().then(|| Capture::start(&ns_b, "vb", &dir.join("vb.pcap")).unwrap());
    let charon = Charon::start(&ns_b, &dir.join("charon"), cfg).unwrap();
    charon.load().unwrap();

    // libipsec does tunnel mode only; the selectors are what matters.
    let ts = |a: &str| format!("\"{a}/128{our_ts}\"");
    let yaml = peer_yaml(
        ("a", A_OUTER, A_INNER),
        ("b", B_OUTER, B_INNER),
        "  nat_traversal: on\n",
    )
    .replace(
        &format!("local_ts: {A_INNER}/128"),
        &format!("local_ts: {}", ts(A_INNER)),
    )
    .replace(
        &format!("remote_ts: {B_INNER}/128"),
        &format!("remote_ts: {}", ts(B_INNER)),
    );
    let a_yaml = dir.join("a.yaml");
    std::fs::write(&a_yaml, yaml).unwrap();
    let keys = dir.join("keys");
    let mut a = Peer::start(
        "a",
        &ns_a,
        &a_yaml,
        &["--initiate", "b", "--keylog", &keys.to_string_lossy()],
        &dir,
    );
    a.expect("event established");
    a.expect("event child-up");
    let sa = charon.wait_child_installed("mip", WAIT).unwrap();
    let theirs = &sa.children[0];
    assert_eq!(
        theirs.local_ts,
        [format!("{B_INNER}/128[mobility-header/1280-1791]")],
        "{sa:?}"
    );
    assert_eq!(
        theirs.remote_ts,
        [format!("{A_INNER}/128[mobility-header/1280-1791]")],
        "{sa:?}"
    );

    send_mh(&ns_a, A_INNER, B_INNER, &BU);
    send_mh(&ns_a, A_INNER, B_INNER, &HOTI);
    // The BU reaches charon's inbound SA (which libipsec then drops: its
    // ip_packet.c skips the Mobility Header as an extension header, so
    // the packet is "[59]" and matches no MH policy).
    wait_until(WAIT, "the BU at charon", || {
        charon.list_sas().is_ok_and(|sas| {
            sas.iter()
                .flat_map(|s| &s.children)
                .any(|c| c.counter("packets-in") == Some(1))
        })
    })
    .unwrap();
    a.send("status");
    let stats = a.expect("stats");
    assert_eq!(field(&stats, "esp-sealed"), "1", "{stats}");
    // The HoTI: no SA is for it, and what none protects is discarded.
    assert_eq!(field(&stats, "esp-drops"), "PolicyDiscard:1", "{stats}");
    a.expect("ok status");

    if let Some(capture) = capture {
        let pcap = capture.stop().unwrap();
        // TSi and TSr of the IKE_AUTH request, then of the response.
        let ports = |field| tshark_fields(&pcap, &keys, field, field);
        let (low, high) = proposed;
        assert_eq!(
            ports("isakmp.ts.start_port"),
            [format!("{low},{low}"), "1280,1280".to_string()]
        );
        assert_eq!(
            ports("isakmp.ts.end_port"),
            [format!("{high},{high}"), "1791,1791".to_string()]
        );
        let types = tshark_fields(&pcap, &keys, "esp", "mip6.mhtype");
        assert_eq!(types, ["5"], "one ESP frame, a BU inside");
        let malformed = tshark_fields(&pcap, &keys, "_ws.malformed", "frame.number");
        assert!(malformed.is_empty(), "malformed frames: {malformed:?}");
    }
    assert!(a.quit().success());
}

// REQ CN-5.5
#[test]
fn our_bu_ba_child_is_narrowed_to_by_a_charon_responder_allowing_all_mh() {
    bu_ba_child_with_charon("charon_any", "[135]", BU_BA, (1280, 1791));
}

// REQ CN-5.5
#[test]
fn a_charon_responder_for_bu_ba_narrows_our_mh_any_proposal() {
    bu_ba_child_with_charon("ours_any", BU_BA, "[135]", (0, 65535));
}

/// Our two peers in ns a and ns b (declared first, so they stop before the
/// namespaces go), with `extra` in both files, after a initiated and both
/// saw the tunnel child up.
struct Pair {
    a: Peer,
    b: Peer,
    ns_a: Netns,
    ns_b: Netns,
}

fn our_pair(dir: &Path, extra: &str) -> Pair {
    let (ns_a, ns_b) = two_namespaces();
    let a_side = ("a", A_OUTER, A_INNER);
    let b_side = ("b", B_OUTER, B_INNER);
    std::fs::write(dir.join("a.yaml"), peer_yaml(a_side, b_side, extra)).unwrap();
    std::fs::write(dir.join("b.yaml"), peer_yaml(b_side, a_side, extra)).unwrap();
    let mut b = Peer::start("b", &ns_b, &dir.join("b.yaml"), &[], dir);
    let mut a = Peer::start("a", &ns_a, &dir.join("a.yaml"), &["--initiate", "b"], dir);
    a.expect_all(["event established", "event child-up"]);
    b.expect_all(["event established", "event child-up"]);
    assert_pings(&ns_a, 1);
    Pair { a, b, ns_a, ns_b }
}

#[test]
fn addrmgmt_moves_the_sas_to_the_initiators_new_address() {
    if !tools::prerequisites_met(&namespace_prerequisites()) {
        return;
    }
    let dir = scratch("addrmgmt");
    let mut p = our_pair(&dir, "  mobility: addrmgmt\n");
    p.ns_a.add_address("va", &format!("{A_MOVED}/64")).unwrap();
    p.a.send(&format!("addresses {A_MOVED}"));
    p.a.expect("ok addresses");
    // Without MOBIKE and NAT, IKE stays on port 500.
    let moved = p.a.expect("event moved");
    assert_eq!(field(&moved, "local"), format!("[{A_MOVED}]:500"));
    let moved = p.b.expect("event moved");
    assert_eq!(field(&moved, "remote"), format!("[{A_MOVED}]:500"));
    assert_pings(&p.ns_a, 3);
    p.b.send("status");
    assert_eq!(
        field(&p.b.expect("child "), "outer"),
        format!("{B_OUTER}->{A_MOVED}")
    );
}

#[test]
fn an_r_mobike_responder_switches_the_initiator_to_its_other_address() {
    if !tools::prerequisites_met(&namespace_prerequisites()) {
        return;
    }
    let dir = scratch("r_mobike");
    let mut p = our_pair(&dir, "  mobility: r-mobike\n");
    p.ns_b.add_address("vb", &format!("{B_MOVED}/64")).unwrap();
    p.b.send(&format!("addresses {B_OUTER} {B_MOVED}"));
    p.b.expect("ok addresses");
    p.b.send(&format!("switch * {B_MOVED}"));
    p.b.expect("ok switch");
    let moved = p.a.expect("event moved");
    assert_eq!(field(&moved, "remote"), format!("[{B_MOVED}]:4500"));
    let moved = p.b.expect("event moved");
    assert_eq!(field(&moved, "local"), format!("[{B_MOVED}]:4500"));
    assert_pings(&p.ns_a, 3);
    p.a.send("status");
    assert_eq!(
        field(&p.a.expect("child "), "outer"),
        format!("{A_OUTER}->{B_MOVED}")
    );
}

/// `--follow-addresses`: the initiator's local set follows the namespace's
/// addresses from netlink, and when the address its SAs use goes, MOBIKE
/// moves them to the one left, with no command.
#[test]
fn following_addresses_our_initiator_moves_by_itself_when_its_address_goes() {
    if !tools::prerequisites_met(&namespace_prerequisites()) {
        return;
    }
    let dir = scratch("follow_addresses");
    let (ns_a, ns_b) = two_namespaces();
    let a_side = ("a", A_OUTER, A_INNER);
    let b_side = ("b", B_OUTER, B_INNER);
    std::fs::write(dir.join("a.yaml"), peer_yaml(a_side, b_side, "")).unwrap();
    std::fs::write(dir.join("b.yaml"), peer_yaml(b_side, a_side, "")).unwrap();
    let mut b = Peer::start("b", &ns_b, &dir.join("b.yaml"), &[], &dir);
    let args = ["--initiate", "b", "--follow-addresses"];
    let mut a = Peer::start("a", &ns_a, &dir.join("a.yaml"), &args, &dir);
    a.expect_all(["event established", "event child-up"]);
    b.expect_all(["event established", "event child-up"]);
    ns_a.add_address("va", &format!("{A_MOVED}/64")).unwrap();
    assert_eq!(
        a.expect("event addresses"),
        format!("event addresses {A_OUTER} {A_MOVED}")
    );
    ns_a.del_address("va", &format!("{A_OUTER}/64")).unwrap();
    assert_eq!(
        a.expect("event addresses"),
        format!("event addresses {A_MOVED}")
    );
    let moved = a.expect("event moved");
    assert!(
        field(&moved, "local").starts_with(&format!("[{A_MOVED}]:")),
        "{moved}"
    );
    let moved = b.expect("event moved");
    assert!(
        field(&moved, "remote").starts_with(&format!("[{A_MOVED}]:")),
        "{moved}"
    );
    assert_pings(&ns_a, 3);
}
