//! What the daemons' integration tests share (cn/tests/cn.rs, and through
//! `#[path]` ha/tests/ha.rs and mn/tests/mn.rs): the prerequisites check,
//! a daemon run in a namespace and asked through its own `status --json`,
//! and scapy (tests/scapy_peer.py) as the independent peer on its links.
//!
//! Everything is bounded: replies of the peer, status polls and frame
//! waits poll an observable condition against a deadline. Processes are
//! stopped by PID (the harness's [`Process`], and the peer, our own
//! unreaped child), namespaces removed on drop, also after a panic.

#![allow(dead_code, reason = "each test binary uses a part")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on a setup error"
)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use testbed::harness::netns::{is_root, run_bounded, wait_for, Deadline, Netns, Process, Signal};

pub const PYTHON: &str = "/usr/bin/python3";
/// One copy for the three crates: `CARGO_MANIFEST_DIR` is the crate whose
/// test includes this module.
pub const PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../cn/tests/scapy_peer.py");
/// The repository's example configurations.
pub const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");

/// The bound on one peer request, one CLI call, one awaited frame.
pub const STEP: Duration = Duration::from_secs(10);

/// Whether the namespace tests can run here. Missing root, `ip`,
/// /dev/net/tun or /usr/bin/python3 with scapy (and cryptography, for its
/// ESP): under `CI=true` a failure, else a skip with a message.
pub fn prerequisites(extra: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root".to_string());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        missing.push("ip (iproute2)".to_string());
    }
    if !Path::new("/dev/net/tun").exists() {
        missing.push("/dev/net/tun".to_string());
    }
    let scapy = Command::new(PYTHON)
        .args([
            "-c",
            "import scapy.layers.inet6, scapy.layers.ipsec, cryptography",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !scapy {
        missing.push(format!("{PYTHON} with scapy and cryptography"));
    }
    for program in extra {
        if Command::new(program).arg("--version").output().is_err() {
            missing.push((*program).to_string());
        }
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but missing: {missing:?} (run as root; scripts/test.sh installs the packages)"
    );
    let _ = writeln!(std::io::stderr(), "skipping: missing {missing:?}");
    false
}

/// A fresh directory for one test, readable by everybody (a test runs a
/// daemon as `nobody`).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

/// Two namespaces' ends of a veth pair, both up; the peer's end has the
/// kernel's IPv6 off, so scapy is the only IPv6 node there.
pub fn wire(daemon: &Netns, dev: &str, peer: &Netns, peer_dev: &str) {
    Netns::veth_pair(daemon, dev, peer, peer_dev).unwrap();
    peer.set_sysctl(&format!("net.ipv6.conf.{peer_dev}.disable_ipv6"), "1")
        .unwrap();
}

/// A namespace for a daemon whose kernel never solicits routers on new
/// interfaces (so every RS on the wire is the daemon's).
pub fn daemon_netns(tag: &str) -> Netns {
    let ns = Netns::new(tag).unwrap();
    ns.set_sysctl("net.ipv6.conf.default.router_solicitations", "0")
        .unwrap();
    ns
}

/// `ip netns exec NS ARGS`, bounded.
pub fn in_ns(ns: &Netns, args: &[&str]) -> Output {
    ns.run_timeout(args, STEP).unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The modified EUI-64 link-local address of `mac` (RFC 4291 App. A).
pub fn link_local(mac: &str) -> Ipv6Addr {
    let m: Vec<u8> = mac
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

/// The solicited-node group of `a` and its MAC.
pub fn solicited_node(a: Ipv6Addr) -> (Ipv6Addr, String) {
    let o = a.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    );
    let g = group.octets();
    let mac = format!(
        "33:33:{:02x}:{:02x}:{:02x}:{:02x}",
        g[12], g[13], g[14], g[15]
    );
    (group, mac)
}

/// An address as scapy prints it, for comparisons.
pub fn addr(v: &Value) -> Ipv6Addr {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an IPv6 address: {v}"))
}

// ---------------------------------------------------------------------------
// The command line.

/// How a command ended.
#[derive(Debug)]
pub struct Cli {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Cli {
    fn from(o: Output) -> Cli {
        Cli {
            code: o.status.code(),
            stdout: text(&o.stdout),
            stderr: text(&o.stderr),
        }
    }
}

/// `BIN ARGS` in this namespace, bounded.
pub fn cli(bin: &str, args: &[&str]) -> Cli {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    Cli::from(run_bounded(cmd, STEP).unwrap())
}

/// Exit status 2, nothing on stdout, and exactly one line on stderr that
/// contains every one of `needles`.
pub fn assert_refused(what: &str, got: &Cli, needles: &[&str]) {
    assert_eq!(
        got.code,
        Some(2),
        "{what}: exit status; stderr {:?}",
        got.stderr
    );
    assert_eq!(
        got.stderr.lines().count(),
        1,
        "{what}: one line on stderr, got {:?}",
        got.stderr
    );
    for n in needles {
        assert!(
            got.stderr.contains(n),
            "{what}: {:?} does not name {n:?}",
            got.stderr
        );
    }
    assert!(got.stdout.is_empty(), "{what}: stdout {:?}", got.stdout);
}

/// One edit of a shipped example's `ike:` section for a `check` that
/// must fail: `from` becomes `to`, and the one line names the field and
/// where `at` first is in the edited section.
pub struct Mistake<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub field: &'a str,
    pub at: &'a str,
}

/// `BIN check` refuses each mistake in config/`example` in one line
/// starting `FILE:LINE:COLUMN:` of the mistake's `at`, with its field, and
/// exit 2 (key files are found in config/ike/ as the example says).
pub fn assert_mistakes_located(bin: &str, dir: &Path, example: &str, mistakes: &[Mistake<'_>]) {
    let text = fs::read_to_string(Path::new(CONFIG_DIR).join(example)).unwrap();
    let text = text.replace(" ike/", &format!(" {CONFIG_DIR}/ike/"));
    for (i, m) in mistakes.iter().enumerate() {
        assert!(text.contains(m.from), "{example} has no {:?}", m.from);
        let edited = text.replacen(m.from, m.to, 1);
        let (line, col) = edited
            .lines()
            .enumerate()
            .skip_while(|(_, l)| !l.starts_with("ike:"))
            .find_map(|(n, l)| l.find(m.at).map(|c| (n + 1, c + 1)))
            .unwrap_or_else(|| panic!("{:?} is not in the edited file", m.at));
        let path = write(dir, &format!("mistake-{i}.yaml"), &edited);
        let path = path.to_string_lossy();
        let got = cli(bin, &["check", "--config", &path]);
        assert_refused(
            &format!("{example}: {:?} for {:?}", m.to, m.from),
            &got,
            &[&format!("{path}:{line}:{col}: {}:", m.field)],
        );
    }
}

// ---------------------------------------------------------------------------
// A daemon.

/// A daemon (`cn`, `ha`, `mn`) running in a namespace, stopped by PID on
/// drop.
pub struct Daemon {
    pub process: Process,
    pub bin: &'static str,
    pub control: PathBuf,
}

impl Daemon {
    /// `BIN run --config CONFIG -v` in `ns`; returns once its control
    /// socket answers `status`.
    pub fn start(ns: &Netns, bin: &'static str, config: &Path, control: &Path) -> Daemon {
        let log = config.with_extension("log");
        let config = config.to_string_lossy();
        let process = ns
            .spawn(bin, &["run", "--config", &config, "-v"], &[], &log)
            .unwrap();
        let mut d = Daemon {
            process,
            bin,
            control: control.to_path_buf(),
        };
        d.wait_status(STEP, "the control socket to answer", |_| true);
        d
    }

    /// `BIN status --control SOCKET --json`, parsed; Err with what it said.
    pub fn status(&self) -> Result<Value, String> {
        let mut cmd = Command::new(self.bin);
        cmd.arg("status")
            .arg("--control")
            .arg(&self.control)
            .arg("--json");
        let out = run_bounded(cmd, STEP).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("{}: {}", out.status, text(&out.stderr).trim()));
        }
        serde_json::from_str(&text(&out.stdout)).map_err(|e| e.to_string())
    }

    /// Polls `status` until `ready` holds; fails at once, with its log, if
    /// the daemon exits.
    pub fn wait_status(
        &mut self,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Deadline::after(timeout);
        let mut last;
        loop {
            if let Some(code) = self.process.exit_status().unwrap() {
                panic!(
                    "{} exited ({code}) while waiting for {what}; log:\n{}",
                    self.bin,
                    self.process.output()
                );
            }
            match self.status() {
                Ok(s) if ready(&s) => return s,
                Ok(s) => last = Some(s.to_string()),
                Err(e) => last = Some(e),
            }
            if deadline.passed() {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last status: {}\nlog:\n{}",
                    last.unwrap_or_default(),
                    self.process.output()
                );
            }
            deadline.nap();
        }
    }

    /// SIGTERM and the exit status, bounded.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.process.stop(Signal::Term, STEP).unwrap()
    }
}

/// A drop counter of a status reply (0 if absent).
pub fn drops(status: &Value, reason: &str) -> u64 {
    status["status"]["drops"][reason].as_u64().unwrap_or(0)
}

/// The daemon's interface `i` in a status reply.
pub fn iface(status: &Value, i: usize) -> &Value {
    status["status"]["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["iface"] == i))
        .unwrap_or(&Value::Null)
}

/// Whether `addr` is one of interface `i`'s addresses in `state`.
pub fn has_address(status: &Value, i: usize, addr: Ipv6Addr, state: &str) -> bool {
    iface(status, i)["addresses"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x[0] == addr.to_string() && x[1] == state))
}

/// Whether interface `i` has `router` as a default router.
pub fn has_router(status: &Value, i: usize, router: Ipv6Addr) -> bool {
    iface(status, i)["routers"]
        .as_array()
        .is_some_and(|a| a.iter().any(|r| *r == router.to_string()))
}

// ---------------------------------------------------------------------------
// The scapy peer.

/// tests/scapy_peer.py in a namespace, on some of its interfaces, driven
/// by JSON lines. Dropping it closes its stdin and, if it lingers, kills
/// it (our own unreaped child, so its PID is still its own).
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
    pub macs: BTreeMap<String, String>,
}

impl Peer {
    pub fn start(ns: &Netns, ifaces: &[&str], log: &Path) -> Peer {
        let mut args = vec![PYTHON, PEER_SCRIPT];
        args.extend_from_slice(ifaces);
        let mut cmd = ns.command(&args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(log).unwrap());
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut peer = Peer {
            child,
            stdin,
            lines,
            log: log.to_path_buf(),
            macs: BTreeMap::new(),
        };
        // Importing scapy on a busy machine takes a few seconds.
        let hello = peer.read(Duration::from_secs(30));
        assert_eq!(hello["ready"], true, "{hello}");
        peer.macs = hello["links"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        peer
    }

    fn read(&mut self, timeout: Duration) -> Value {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line).unwrap(),
            Err(e) => panic!(
                "scapy peer: no answer within {timeout:?} ({e}); its stderr:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            ),
        }
    }

    /// One request and its answer (an `error` answer fails the test).
    pub fn request(&mut self, req: Value) -> Value {
        let mut line = req.to_string();
        line.push('\n');
        self.stdin
            .as_mut()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        let answer = self.read(STEP);
        assert!(
            answer.get("error").is_none(),
            "scapy peer refused {req}: {}",
            answer["error"]
        );
        answer
    }

    pub fn mac(&self, iface: &str) -> &str {
        &self.macs[iface]
    }

    /// Builds and sends `packets` (see scapy_peer.py) on `iface`; returns
    /// the frames' hex.
    pub fn send(&mut self, iface: &str, packets: &[Value]) -> Vec<String> {
        let a = self.request(json!({"op": "send", "iface": iface, "packets": packets}));
        a["sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    }

    /// The frames received on `iface` from index `since` on, and the next
    /// index.
    pub fn frames(&mut self, iface: &str, since: usize) -> (Vec<Value>, usize) {
        let a = self.request(json!({"op": "frames", "iface": iface, "since": since}));
        let next = usize::try_from(a["next"].as_u64().unwrap()).unwrap();
        (a["frames"].as_array().unwrap().clone(), next)
    }

    /// How many frames `iface` has received so far.
    pub fn mark(&mut self, iface: &str) -> usize {
        let a = self.request(json!({"op": "frames", "iface": iface, "since": usize::MAX >> 12}));
        usize::try_from(a["next"].as_u64().unwrap()).unwrap()
    }

    /// The first frame on `iface` from index `since` for which `pred`
    /// holds, waiting up to `timeout`.
    pub fn wait_frame(
        &mut self,
        iface: &str,
        since: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut next = since;
        let mut seen = Vec::new();
        let found = wait_for(timeout, what, || {
            let (frames, n) = self.frames(iface, next);
            next = n;
            for f in frames {
                if pred(&f) {
                    return Ok(Some(f));
                }
                seen.push(summary(&f));
            }
            Ok(None)
        });
        match found {
            Ok(f) => f,
            Err(e) => panic!("{e}; frames seen on {iface}:\n{}", seen.join("\n")),
        }
    }

    /// Every frame on `iface` from `since` to now.
    pub fn all_frames(&mut self, iface: &str, since: usize) -> Vec<Value> {
        self.frames(iface, since).0
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Deadline::after(Duration::from_secs(5));
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if deadline.passed() => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                Ok(None) => deadline.nap(),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// scapy's dissections.

/// The first layer called `name` in a layer list.
pub fn layer<'a>(layers: &'a Value, name: &str) -> Option<&'a Value> {
    layers.as_array()?.iter().find(|l| l["layer"] == name)
}

/// Every layer called `name` in a layer list, outermost first.
pub fn layers_named<'a>(layers: &'a Value, name: &str) -> Vec<&'a Value> {
    layers
        .as_array()
        .map(|a| a.iter().filter(|l| l["layer"] == name).collect())
        .unwrap_or_default()
}

/// The first layer called `name` of a frame as it was on the wire.
pub fn wire_layer<'a>(frame: &'a Value, name: &str) -> Option<&'a Value> {
    layer(&frame["layers"], name)
}

/// The first layer called `name` of the packet ESP opened.
pub fn opened_layer<'a>(frame: &'a Value, name: &str) -> Option<&'a Value> {
    layer(&frame["decrypted"], name)
}

/// The option called `name` in a layer's `options` (scapy gives each as
/// a list of layers).
pub fn option<'a>(l: &'a Value, name: &str) -> Option<&'a Value> {
    l["options"]
        .as_array()?
        .iter()
        .filter_map(|o| o.as_array().and_then(|o| o.first()))
        .find(|o| o["layer"] == name)
}

/// Whether every checksum scapy checked (on the wire and inside ESP) is
/// right.
pub fn checksums_ok(frame: &Value) -> bool {
    ["checksums", "decrypted_checksums"].iter().all(|k| {
        frame[*k]
            .as_array()
            .is_none_or(|a| a.iter().all(|c| c["ok"] == true))
    })
}

/// The layer names of a frame, for messages.
pub fn summary(frame: &Value) -> String {
    let names = |ls: &Value| -> String {
        ls.as_array()
            .map(|a| {
                a.iter()
                    .map(|l| l["layer"].as_str().unwrap_or("?").to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    };
    let ip = wire_layer(frame, "IPv6").map_or(String::new(), |i| {
        format!(" {} > {} hlim {}", i["src"], i["dst"], i["hlim"])
    });
    let mut s = format!("#{} {}{ip}", frame["index"], names(&frame["layers"]));
    if frame.get("decrypted").is_some() {
        s.push_str(&format!(" [ESP opened: {}]", names(&frame["decrypted"])));
    }
    s
}

/// An ICMPv6 ND message of class `name` (`ICMPv6ND_NS`...) with target
/// `target`, if the frame is one.
pub fn nd<'a>(frame: &'a Value, name: &str, target: Option<Ipv6Addr>) -> Option<&'a Value> {
    let m = wire_layer(frame, name)?;
    match target {
        Some(t) => (addr(&m["tgt"]) == t).then_some(m),
        None => Some(m),
    }
}
