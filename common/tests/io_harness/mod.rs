//! What the `io_*` tests share: the root/`ip` check, namespaces that clean
//! up after themselves, running code inside one, and hand-built packets.

#![allow(dead_code, reason = "each test binary uses a part")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on a setup error"
)]

use std::fs::File;
use std::io::Write as _;
use std::net::Ipv6Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use nix::sched::CloneFlags;

/// Each step of a test is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

/// Whether to skip: true (and says why) when this machine cannot run the
/// namespace tests. With `CI=true` that is a failure instead.
pub fn skip(needs_tun: bool) -> bool {
    let reason = if !is_root() {
        Some("not root")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("no `ip` command")
    } else if needs_tun && !Path::new("/dev/net/tun").exists() {
        Some("no /dev/net/tun")
    } else {
        None
    };
    let Some(reason) = reason else {
        return false;
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cannot run: {reason} (CI=true: failing instead of skipping)");
    }
    // Straight to stderr, past the test harness's capture, so it shows.
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
    true
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace of this test, deleted on drop (also when the test
/// panics). Its name has the PID, so parallel runs do not collide.
pub struct Netns {
    pub name: String,
    /// Deleted on drop; a [`Netns::handle`] is not.
    owned: bool,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("mip6io-{tag}-{}", std::process::id());
        // A leftover of an earlier run with the same PID.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name, owned: true };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The same namespace, for another thread; dropping it deletes nothing.
    pub fn handle(&self) -> Netns {
        Netns {
            name: self.name.clone(),
            owned: false,
        }
    }

    /// `ip -n NAME ARGS...`, which must succeed; its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.name];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&run(&all).stdout).into_owned()
    }

    /// `ip netns exec NAME ARGS...`, whatever its outcome.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {} {args:?}: {e}", self.name))
    }

    /// Moves the calling thread into this namespace (sockets, netlink and
    /// procfs opened afterwards are the namespace's).
    pub fn enter(&self) {
        let f = File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("opening /run/netns/{}: {e}", self.name));
        nix::sched::setns(f, CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns into {}: {e}", self.name));
    }

    /// `ip -j link show DEV`, parsed.
    pub fn link_json(&self, dev: &str) -> serde_json::Value {
        let out = self.ip(&["-j", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
        v[0].clone()
    }

    /// `ip -s -j link show DEV`'s counters (`stats64`).
    pub fn link_json_stats(&self, dev: &str) -> serde_json::Value {
        let out = self.ip(&["-s", "-j", "link", "show", "dev", dev]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -s -j output");
        v[0]["stats64"].clone()
    }

    pub fn mac(&self, dev: &str) -> [u8; 6] {
        parse_mac(self.link_json(dev)["address"].as_str().expect("address"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub fn parse_mac(s: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (i, part) in s.split(':').enumerate() {
        mac[i] = u8::from_str_radix(part, 16).expect("MAC");
    }
    mac
}

/// Runs `f` on a fresh thread with a current-thread Tokio runtime (so
/// `setns` there leaves the test's own thread alone), bounded by `limit`.
pub fn on_thread<F, Fut>(limit: Duration, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            tokio::time::timeout(limit, f())
                .await
                .expect("the test took too long");
        });
    });
    if let Err(panic) = t.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Bounded by [`STEP`].
pub async fn step<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// RFC 1071 sum over the IPv6 pseudo-header and `upper`.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, upper: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&u32::try_from(upper.len()).unwrap().to_be_bytes());
    add(&[0, 0, 0, next_header]);
    add(upper);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// ICMPv6 echo request (type 128) or reply (129), checksum included.
pub fn echo(src: Ipv6Addr, dst: Ipv6Addr, kind: u8, id: u16, seq: u16) -> Vec<u8> {
    let mut icmp = vec![kind, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"mip6-io-test-payload");
    let c = checksum(src, dst, 58, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    icmp
}

/// An IPv6 header and `payload`, `next_header` naming its first header.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    p.push(next_header);
    p.push(64);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// A Destination Options header with a Home Address option (type 201,
/// PadN before it for the 8n+6 alignment), then `upper`.
pub fn with_hao(hoa: Ipv6Addr, next_header: u8, upper: &[u8]) -> Vec<u8> {
    let mut h = vec![next_header, 2, 1, 2, 0, 0, 201, 16];
    h.extend_from_slice(&hoa.octets());
    assert_eq!(h.len(), 24);
    h.extend_from_slice(upper);
    h
}

/// A type 2 routing header (segments left 1) carrying `hoa`, then `upper`.
pub fn with_rh2(hoa: Ipv6Addr, next_header: u8, upper: &[u8]) -> Vec<u8> {
    let mut h = vec![next_header, 2, 2, 1, 0, 0, 0, 0];
    h.extend_from_slice(&hoa.octets());
    assert_eq!(h.len(), 24);
    h.extend_from_slice(upper);
    h
}
