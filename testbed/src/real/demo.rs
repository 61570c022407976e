//! `testbed demo --real`: the demo topology as network namespaces and veth
//! pairs, with the real `ha`, `cn` and `mn` daemons in them, our router
//! process between the links (the simulator's link model and router, on
//! the wire), and kernel applications doing the talking: a ping from the
//! mobile node to the correspondent every 50 ms, a UDP flow each way every
//! millisecond, and a TCP stream of known bytes that must survive both
//! handoffs and the return home. The mobile node moves only as a real node
//! does: the router side of its veth loses carrier, another gains it.
//!
//! What comes out has the simulated demo's shape (timeline, side-by-side
//! table, `--json`), measured on the wire: handoff latency from carrier up
//! to the first flow packet from the correspondent that arrives over the
//! path the node should end on (route optimised, seen with its type 2
//! routing header in the router's capture of the new link, or direct at
//! home), losses from the flows' sequence numbers, signalling from the
//! daemons' counters. Pcaps per link open decrypted in Wireshark with the
//! key log the daemons wrote.
//!
//! Namespaces and processes are removed by PID when the run ends, fails, or
//! is interrupted (SIGINT/SIGTERM end the run at the next step).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as WallDuration;

use common::ike::Mobility;
use common::node::RouteOptimisation;
use common::time::{Duration, Instant};
use common::wire::packet::UdpPayload;
use common::wire::{CodePoints, ExtHeaderRepr, IpRepr, PacketRepr, RoutingRepr, UpperRepr};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;

use super::traffic::wall_micros;
use crate::demo::{Handoff, Run};
use crate::harness::netns::{check_bounded, is_root, Netns, Process, Signal};
use crate::sim::{parse_flow, FLOW_PORT};
use crate::tools::pcap::read_packets;
use crate::topology::{
    CnSa, Keying, Setup, ACCESS_A, ACCESS_B, CN, CN_ID, CN_PREFIX, HA, HA_ID, HOA, HOME_PREFIX,
    MN_ID, PSK,
};

/// Set by SIGINT or SIGTERM: the run stops at its next step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// TCP port of the demo's stream.
const TCP_PORT: u16 = 5001;
/// Bytes of the TCP stream, sent evenly from 1 s to 9 s.
const TCP_BYTES: u64 = 1_600_000;

/// Why the real demo could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the real demo needs root (network namespaces, veths, raw sockets)")]
    NotRoot,
    #[error(
        "{0} is not built next to this program: cargo build --release -p mn -p cn -p ha -p testbed"
    )]
    NotBuilt(String),
    #[error("interrupted")]
    Interrupted,
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    #[error(transparent)]
    Harness(#[from] crate::harness::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn failed(what: impl Into<String>, detail: impl std::fmt::Display) -> Error {
    Error::Failed {
        what: what.into(),
        detail: detail.to_string(),
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The programs of the demo, found next to the running `testbed`.
#[derive(Debug, Clone)]
pub struct Bins {
    pub testbed: PathBuf,
    pub mn: PathBuf,
    pub cn: PathBuf,
    pub ha: PathBuf,
}

impl Bins {
    pub fn beside_me() -> Result<Bins, Error> {
        let me = std::env::current_exe().map_err(|e| failed("locating testbed", e))?;
        Bins::beside(&me)
    }

    /// The daemons in the directory of this `testbed` binary.
    pub fn beside(testbed: &Path) -> Result<Bins, Error> {
        let me = testbed.to_path_buf();
        let dir = me.parent().map(Path::to_path_buf).unwrap_or_default();
        let find = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::NotBuilt(p.display().to_string()))
            }
        };
        Ok(Bins {
            testbed: me.clone(),
            mn: find("mn")?,
            cn: find("cn")?,
            ha: find("ha")?,
        })
    }
}

/// One run of the real demo, and what only it has.
pub struct RealRun {
    pub run: Run,
    /// (bytes, sha256) the TCP sender sent and the receiver got.
    pub tcp_sent: (u64, String),
    pub tcp_received: (u64, String),
    pub pcaps: Vec<PathBuf>,
    /// The Wireshark configuration directory with the daemons' keys.
    pub keylog: PathBuf,
    /// Each daemon's `status --json` at the end (`ha`, `cn`, `mn`).
    pub statuses: BTreeMap<&'static str, Value>,
    /// The run's time zero on the wall clock (the pcaps' clock).
    pub t0: Instant,
    /// Send time (from t0) and one-way delay of each CN→MN flow packet
    /// that arrived; the lost ones are `run.down_lost`.
    pub down: Vec<(Instant, Duration)>,
    /// The link-local address of every interface and whose it is
    /// (`MN`, `router`, `HA`, `CN`): the captures' link-local sources.
    pub link_locals: Vec<(Ipv6Addr, &'static str)>,
}

/// Stops the run at the next step on SIGINT or SIGTERM, so every
/// namespace and process is removed.
pub fn catch_interrupts() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
        });
    });
}

/// Err once SIGINT or SIGTERM came (see [`catch_interrupts`]).
pub fn check_interrupted() -> Result<(), Error> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Waits until the wall clock reads `until_us` (µs since the epoch), in
/// slices short enough to notice an interrupt.
fn wait_until_wall(rt: &tokio::runtime::Runtime, until_us: u64) -> Result<(), Error> {
    loop {
        check_interrupted()?;
        let now = wall_micros();
        if now >= until_us {
            return Ok(());
        }
        let step = (until_us - now).min(20_000);
        rt.block_on(async { tokio::time::sleep(WallDuration::from_micros(step)).await });
    }
}

fn mode_name(m: RouteOptimisation) -> &'static str {
    match m {
        RouteOptimisation::Ipsec => "ipsec",
        RouteOptimisation::ReturnRoutability => "rr",
        RouteOptimisation::Triangular => "triangular",
        RouteOptimisation::None => "none",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Two fresh 20-byte keys (AES-128-GCM and its salt), one each way.
fn key_pair(rng: &mut ChaCha20Rng) -> (String, String) {
    let mut k = || {
        let mut b = [0u8; 20];
        rng.fill_bytes(&mut b);
        format!("0x{}", common::wire::hex(&b))
    };
    (k(), k())
}

/// BU and BA only: the suitable pair of draft-dupont-mipv6-cn-ipsec §2,
/// RFC 3776's with the home agent.
const BU_BA: &str = "protocol: mobility, mh_types: [bu, ba]";

/// One transport SA pair as one side writes it in its static-keys file.
struct Sa<'a> {
    local: Ipv6Addr,
    peer: Ipv6Addr,
    /// (SPI, key) each way.
    out: (u32, &'a str),
    inb: (u32, &'a str),
    /// The SA's selector and the policy's match: the insides of YAML flow
    /// mappings.
    selector: &'a str,
    policy: String,
}

/// A pair between `a` and `b` (SPI `spi` from a, `spi + 1` from b) as
/// each writes it: `sel` and `policy` are a's and b's.
fn mirrored<'a>(
    (a, b): (Ipv6Addr, Ipv6Addr),
    spi: u32,
    keys: &'a (String, String),
    sel: [&'a str; 2],
    policy: [String; 2],
) -> (Sa<'a>, Sa<'a>) {
    let (ab, ba) = ((spi, keys.0.as_str()), (spi + 1, keys.1.as_str()));
    let [pa, pb] = policy;
    (
        Sa {
            local: a,
            peer: b,
            out: ab,
            inb: ba,
            selector: sel[0],
            policy: pa,
        },
        Sa {
            local: b,
            peer: a,
            out: ba,
            inb: ab,
            selector: sel[1],
            policy: pb,
        },
    )
}

/// A pair between `a` and `b` whose SAs and policies both match `sel`
/// (empty: everything between the two addresses).
fn between<'a>(
    (a, b): (Ipv6Addr, Ipv6Addr),
    spi: u32,
    keys: &'a (String, String),
    sel: &'a str,
) -> (Sa<'a>, Sa<'a>) {
    let policy = |l: Ipv6Addr, r: Ipv6Addr| {
        let comma = if sel.is_empty() { "" } else { ", " };
        format!("local: \"{l}\", remote: \"{r}\"{comma}{sel}")
    };
    mirrored((a, b), spi, keys, [sel, sel], [policy(a, b), policy(b, a)])
}

/// One side's static-keys file (`common::ipsec::config`).
fn keys_yaml(pairs: &[Sa<'_>]) -> String {
    let mut s = String::from("fallback: bypass\nsa_pairs:\n");
    let mut p = String::from("policies:\n");
    for sa in pairs {
        let _ = writeln!(
            s,
            "  - {{ local: \"{}\", peer: \"{}\", mode: transport, algorithm: aes128gcm16, \
             outbound: {{ spi: {:#x}, key: \"{}\" }}, inbound: {{ spi: {:#x}, key: \"{}\" }}, \
             selector: {{ {} }} }}",
            sa.local, sa.peer, sa.out.0, sa.out.1, sa.inb.0, sa.inb.1, sa.selector
        );
        let _ = writeln!(
            p,
            "  - {{ match: {{ {} }}, protect: [{:#x}] }}",
            sa.policy, sa.out.0
        );
    }
    s + &p
}

/// The namespaces of one run, wired: each node's links are veths to the
/// router's namespace.
pub struct Hosts {
    pub rt: Netns,
    pub ha: Netns,
    pub cn: Netns,
    pub mn: Netns,
}

/// Router-side port of each of the mobile node's links, in the order of
/// its interfaces (home, access A, access B), and the node's side.
const MN_PORTS: [&str; 3] = ["r-mnh", "r-mna", "r-mnb"];
const MN_DEVICES: [&str; 3] = ["mn-home", "mn-a", "mn-b"];

/// Sets `down` then `up` in the router's namespace in one `ip -batch`.
pub fn carrier(rt: &Netns, down: &[&str], up: &[&str]) -> Result<(), Error> {
    let mut script = String::new();
    for p in down {
        let _ = writeln!(script, "link set {p} down");
    }
    for p in up {
        let _ = writeln!(script, "link set {p} up");
    }
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "printf '%s' \"$1\" | ip -n \"$2\" -batch -",
        "sh",
        &script,
        rt.name(),
    ]);
    check_bounded(cmd, WallDuration::from_secs(5))?;
    Ok(())
}

/// When the node's log says `device` gained carrier, at or after `after`.
fn carrier_up(log: &str, device: &str, after: u64) -> Option<u64> {
    let link = format!("link={device}");
    log.lines()
        .filter(|l| l.contains("carrier up") && l.split_whitespace().any(|w| w == link))
        .filter_map(|l| rfc3339_micros(l.split(' ').next()?))
        .find(|t| *t >= after)
}

pub fn build_hosts() -> Result<Hosts, Error> {
    let h = Hosts {
        rt: Netns::new("rt")?,
        ha: Netns::new("ha")?,
        cn: Netns::new("cn")?,
        mn: Netns::new("mn")?,
    };
    Netns::veth_pair(&h.ha, "ha0", &h.rt, "r-ha")?;
    Netns::veth_pair(&h.cn, "cn0", &h.rt, "r-cn")?;
    for (dev, port) in MN_DEVICES.iter().zip(MN_PORTS) {
        Netns::veth_pair(&h.mn, dev, &h.rt, port)?;
    }
    Ok(h)
}

/// What a run's files add to the demo's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extras {
    /// ESP (AES-GCM) on the tunnel between the care-of address and the
    /// home agent: a transport pair for IPv6-in-IPv6 (protocol 41), RFC
    /// 4877's payload protection with static keys.
    pub esp_tunnel: bool,
    /// A pcap per link from the router.
    pub capture: bool,
}

/// The router's file: the demo's four links with `setup`'s delays.
pub fn router_yaml(setup: &Setup, dir: &Path, capture: bool) -> String {
    let ms = |d: Duration| d.as_micros() as f64 / 1000.0;
    let pcaps = if capture {
        format!("pcap_dir: {}\n", dir.display())
    } else {
        String::new()
    };
    format!(
        "ra_interval_ms: 1000\nseed: {}\n{pcaps}links:\n\
         \x20 - {{ name: home, prefix: \"{HOME_PREFIX}/64\", delay_ms: {}, ports: [r-ha, r-mnh] }}\n\
         \x20 - {{ name: cn, prefix: \"{CN_PREFIX}/64\", delay_ms: {}, ports: [r-cn] }}\n\
         \x20 - {{ name: access-a, prefix: \"{ACCESS_A}/64\", delay_ms: {}, ports: [r-mna] }}\n\
         \x20 - {{ name: access-b, prefix: \"{ACCESS_B}/64\", delay_ms: {}, ports: [r-mnb] }}\n",
        setup.seed,
        ms(setup.home_delay),
        ms(setup.cn_delay),
        ms(setup.access_delay),
        ms(setup.access_delay),
    )
}

/// The `ike:` sections of the mobile node, home agent and correspondent
/// for the simulator's IKE keying (`topology::ike_configs`, `cn_ike`):
/// the same identities and pre-shared key, the children the daemons build
/// for their roles, or with triangular routing one child for everything
/// between the home address and the correspondent, written out.
fn ike_sections(mobility: Mobility, payload: bool, cn_sa: CnSa) -> [String; 3] {
    let mobility = match mobility {
        Mobility::Mobike { r_mobike: false } => "mobike",
        Mobility::Mobike { r_mobike: true } => "r-mobike",
        Mobility::AddrMgmt => "addrmgmt",
        Mobility::Off => "off",
    };
    let psk = String::from_utf8_lossy(PSK);
    let head =
        |id: &str| format!("ike:\n  id: {{ fqdn: {id} }}\n  mobility: {mobility}\n  peers:\n");
    let peer = |name: &str, id: &str, rest: &str| {
        format!("    - {{ name: {name}, id: {{ fqdn: {id} }}, psk: \"{psk}\", {rest} }}\n")
    };
    let all = |l: Ipv6Addr, r: Ipv6Addr| {
        format!(
            "children: [{{ name: cn-signalling, mode: transport, local_ts: \"{l}/128\", remote_ts: \"{r}/128\" }}]"
        )
    };
    let mut mn = head(MN_ID)
        + &peer(
            "ha",
            HA_ID,
            &format!("addresses: [\"{HA}\"], payload: {payload}"),
        );
    let ha = head(HA_ID) + &peer("mn", MN_ID, &format!("home_address: \"{HOA}\""));
    let mut cn = String::new();
    if cn_sa != CnSa::None {
        let (mn_side, cn_side) = match cn_sa {
            CnSa::All => (
                format!("addresses: [\"{CN}\"], {}", all(HOA, CN)),
                all(CN, HOA),
            ),
            _ => (
                format!("addresses: [\"{CN}\"]"),
                format!("home_address: \"{HOA}\""),
            ),
        };
        mn += &peer("cn", CN_ID, &mn_side);
        cn = head(CN_ID) + &peer("mn", MN_ID, &cn_side);
    }
    [mn, ha, cn]
}

/// Writes every configuration file of a run into `dir`: the router's,
/// the three daemons' and their static keys.
pub fn write_configs(setup: &Setup, dir: &Path, extras: Extras) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let mut rng = ChaCha20Rng::seed_from_u64(setup.seed ^ 0x6b65_7973);
    let (ha_keys, cn_keys, tunnel_keys) =
        (key_pair(&mut rng), key_pair(&mut rng), key_pair(&mut rng));
    let ike = match setup.keying {
        Keying::Static => None,
        Keying::Ike { mobility, payload } => Some((mobility, payload)),
    };
    let (mut mn, mut ha) = (vec![], vec![]);
    if ike.is_none() {
        let (mn_ha, ha_mn) = between((HOA, HA), 0x100, &ha_keys, BU_BA);
        mn.push(mn_ha);
        ha.push(ha_mn);
    }
    let cn_selector = match setup.cn_sa {
        CnSa::None => None,
        CnSa::Signalling => Some(BU_BA),
        // Triangular routing: everything between the two.
        CnSa::All => Some(""),
    };
    let mut cn = vec![];
    // As the simulator: with IKE keying, IKE keys the correspondent too.
    if let (Some(sel), None) = (cn_selector, ike) {
        let (mn_cn, cn_mn) = between((HOA, CN), 0x200, &cn_keys, sel);
        mn.push(mn_cn);
        cn.push(cn_mn);
    }
    if extras.esp_tunnel {
        // The care-of address changes; the pair's addresses are not on
        // the wire in transport mode.
        let (mn_tun, ha_tun) = mirrored(
            (HOA, HA),
            0x300,
            &tunnel_keys,
            [
                "local: \"::/0\", protocol: 41",
                "remote: \"::/0\", protocol: 41",
            ],
            [
                format!("remote: \"{HA}\", protocol: 41"),
                format!("local: \"{HA}\", protocol: 41"),
            ],
        );
        mn.push(mn_tun);
        ha.push(ha_tun);
    }
    let [mn_ike, ha_ike, cn_ike] = match ike {
        Some((mobility, payload)) => ike_sections(mobility, payload, setup.cn_sa),
        None => Default::default(),
    };
    let keys = |pairs: &[Sa<'_>], role: &str| {
        if pairs.is_empty() {
            String::new()
        } else {
            format!("ipsec: {role}-keys.yaml\n")
        }
    };
    let control = |role: &str| dir.join(format!("{role}.sock"));
    let files = [
        ("mn-keys.yaml", keys_yaml(&mn)),
        ("ha-keys.yaml", keys_yaml(&ha)),
        ("cn-keys.yaml", keys_yaml(&cn)),
        (
            "ha.yaml",
            format!(
                "address: {HA}\nhome_prefix: {HOME_PREFIX}/64\ninterface: ha0\n\
                 mobile_nodes: [{HOA}]\n{}{ha_ike}control: {}\nseed: {}\n",
                keys(&ha, "ha"),
                control("ha").display(),
                setup.seed ^ 2
            ),
        ),
        (
            "cn.yaml",
            format!(
                "address: {CN}\ninterface: cn0\n{}{cn_ike}control: {}\nseed: {}\n",
                keys(&cn, "cn"),
                control("cn").display(),
                setup.seed ^ 3
            ),
        ),
        (
            "mn.yaml",
            format!(
                "home_address: {HOA}\nhome_agent: {HA}\ninterfaces: [mn-home, mn-a, mn-b]\n\
                 correspondents: [{{ address: \"{CN}\", mode: {} }}]\nhome_lifetime: {}\n\
                 correspondent_lifetime: {}\n{}{mn_ike}control: {}\nseed: {}\n",
                mode_name(setup.mode),
                setup.mn.home_lifetime.as_secs(),
                setup.mn.correspondent_lifetime.as_secs(),
                keys(&mn, "mn"),
                control("mn").display(),
                setup.seed ^ 1
            ),
        ),
        ("router.yaml", router_yaml(setup, dir, extras.capture)),
    ];
    for (name, text) in files {
        let p = dir.join(name);
        fs::write(&p, text).map_err(io_at(&p))?;
    }
    Ok(())
}

/// Starts the router in its namespace and waits for its `ready`. Its
/// stdin stays open as long as the returned pipe: it stops at its end.
pub fn start_router(
    hosts: &Hosts,
    bins: &Bins,
    dir: &Path,
) -> Result<(Process, ChildStdin), Error> {
    let (router, stdin) = hosts.rt.spawn_piped(
        &bins.testbed.to_string_lossy(),
        &[
            "router",
            "--config",
            &dir.join("router.yaml").to_string_lossy(),
        ],
        &[],
        &dir.join("router.log"),
    )?;
    crate::harness::netns::wait_until(
        WallDuration::from_secs(10),
        "the router to be ready",
        || router.output().lines().any(|l| l == "ready"),
    )?;
    Ok((router, stdin))
}

/// A running daemon's status, through its CLI.
pub fn status(bin: &Path, role: &str, dir: &Path) -> Option<Value> {
    let mut cmd = Command::new(bin);
    cmd.args(["status", "--json", "--control"])
        .arg(dir.join(format!("{role}.sock")));
    let out = check_bounded(cmd, WallDuration::from_secs(5)).ok()?;
    serde_json::from_str(out.trim()).ok()
}

/// Runs `args` in `ns` in the background, logging to `dir/name.log`.
pub fn spawn(
    ns: &Netns,
    bin: &Path,
    args: &[&str],
    dir: &Path,
    name: &str,
) -> Result<Process, Error> {
    let log = dir.join(format!("{name}.log"));
    Ok(ns.spawn(&bin.to_string_lossy(), args, &[("RUST_LOG", "info")], &log)?)
}

/// One run of the demo in `setup.mode`, its files under `dir`.
pub fn run(setup: &Setup, bins: &Bins, dir: &Path) -> Result<RealRun, Error> {
    if !is_root() {
        return Err(Error::NotRoot);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("tokio runtime", e))?;
    let _ = fs::remove_dir_all(dir);
    let extras = Extras {
        esp_tunnel: false,
        capture: true,
    };
    write_configs(setup, dir, extras)?;
    let keylog = dir.join("wireshark");
    let hosts = build_hosts()?;
    let link_locals = link_locals(&hosts)?;
    let (router, _router_stdin) = start_router(&hosts, bins, dir)?;
    // The router brings its ports up; the node starts at home, with no
    // carrier on its access interfaces.
    carrier(&hosts.rt, &MN_PORTS[1..], &[])?;
    let daemon = |ns: &Netns, bin: &Path, role: &str| {
        let config = dir.join(format!("{role}.yaml"));
        spawn(
            ns,
            bin,
            &[
                "run",
                "--config",
                &config.to_string_lossy(),
                "--keylog",
                &keylog.to_string_lossy(),
            ],
            dir,
            role,
        )
    };
    let t0 = wall_micros();
    let mut daemons = [
        daemon(&hosts.ha, &bins.ha, "ha")?,
        daemon(&hosts.cn, &bins.cn, "cn")?,
        daemon(&hosts.mn, &bins.mn, "mn")?,
    ];
    let at = |s: f64| t0 + (s * 1e6) as u64;
    // The correspondent's and home agent's DAD takes a second, as in the
    // simulator; the traffic starts after it, as there.
    wait_until_wall(&rt, at(0.5))?;
    // A ping every 50 ms each way, so both directions are seen in every
    // phase.
    let ping_to = |ns: &Netns, to: Ipv6Addr, name: &str| {
        let to = to.to_string();
        let args = ["-6", "-n", "-D", "-i", "0.05", "-c", "180", "-W", "1", &to];
        spawn(ns, Path::new("/usr/bin/ping"), &args, dir, name)
    };
    let ping = ping_to(&hosts.mn, CN, "ping")?;
    let _ping_back = ping_to(&hosts.cn, HOA, "ping-cn")?;
    let recv = |ns: &Netns, name: &str| {
        let out = dir.join(format!("{name}.arrivals"));
        spawn(
            ns,
            &bins.testbed,
            &[
                "traffic",
                "udp-recv",
                "--for-ms",
                "10000",
                "--out",
                &out.to_string_lossy(),
            ],
            dir,
            name,
        )
    };
    let mut mn_recv = recv(&hosts.mn, "mn-udp-recv")?;
    let mut cn_recv = recv(&hosts.cn, "cn-udp-recv")?;
    let mut tcp_recv = spawn(
        &hosts.cn,
        &bins.testbed,
        &[
            "traffic",
            "tcp-recv",
            "--port",
            &TCP_PORT.to_string(),
            "--timeout-ms",
            "30000",
        ],
        dir,
        "tcp-recv",
    )?;
    wait_until_wall(&rt, at(1.0))?;
    for d in &mut daemons {
        if !d.is_running() {
            return Err(failed(
                format!("{} stopped", d.exe().display()),
                d.output().lines().last().unwrap_or("no output"),
            ));
        }
    }
    let send = |ns: &Netns, to: Ipv6Addr, flow: u32, name: &str| {
        spawn(
            ns,
            &bins.testbed,
            &[
                "traffic",
                "udp-send",
                "--to",
                &format!("[{to}]:{FLOW_PORT}"),
                "--flow",
                &flow.to_string(),
                "--count",
                "8500",
            ],
            dir,
            name,
        )
    };
    let mut down = send(&hosts.cn, HOA, 0, "cn-udp-send")?;
    let mut up = send(&hosts.mn, CN, 1, "mn-udp-send")?;
    let mut tcp_send = spawn(
        &hosts.mn,
        &bins.testbed,
        &[
            "traffic",
            "tcp-send",
            "--to",
            &format!("[{CN}]:{TCP_PORT}"),
            "--bytes",
            &TCP_BYTES.to_string(),
            "--for-ms",
            "8000",
        ],
        dir,
        "tcp-send",
    )?;
    // Moves: carrier off on every other link of the node and on on the
    // new one, in one netlink batch; the node's log says when it saw the
    // carrier come up, which is when its handoff starts (as the
    // simulator's link-up).
    let mut moves = vec![];
    for (when, port, to) in [(2.0, 1, "access-a"), (5.0, 2, "access-b"), (8.0, 0, "home")] {
        wait_until_wall(&rt, at(when))?;
        let others: Vec<&str> = (0..3).filter(|i| *i != port).map(|i| MN_PORTS[i]).collect();
        let started = wall_micros();
        carrier(&hosts.rt, &others, &[MN_PORTS[port]])?;
        moves.push((started, port, to.to_string()));
    }
    wait_until_wall(&rt, at(10.0))?;
    let statuses: BTreeMap<&'static str, Value> =
        [(&bins.ha, "ha"), (&bins.cn, "cn"), (&bins.mn, "mn")]
            .into_iter()
            .filter_map(|(b, r)| Some((r, status(b, r, dir)?)))
            .collect();
    for p in [&mut down, &mut up, &mut mn_recv, &mut cn_recv] {
        p.wait_exit(WallDuration::from_secs(5))?;
    }
    tcp_send.wait_exit(WallDuration::from_secs(15))?;
    tcp_recv.wait_exit(WallDuration::from_secs(15))?;
    let _ = ping.output();
    drop(daemons);
    let mut router = router;
    let _ = router.stop(Signal::Term, WallDuration::from_secs(5));
    let tcp = |p: &Process| -> (u64, String) {
        let v: Value = p
            .output()
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        (
            v["bytes"].as_u64().unwrap_or(0),
            v["sha256"].as_str().unwrap_or("").to_string(),
        )
    };
    let mn_log = fs::read_to_string(dir.join("mn.log")).unwrap_or_default();
    let moves: Vec<(u64, String)> = moves
        .into_iter()
        .map(|(started, port, to)| {
            let up = carrier_up(&mn_log, MN_DEVICES[port], started).unwrap_or(started);
            (up, to)
        })
        .collect();
    let measured = Measured::read(dir, t0, &moves)?;
    let run = measured.run(
        setup,
        statuses.values(),
        &ping.output(),
        &[dir.join("ha.log"), dir.join("cn.log"), dir.join("mn.log")],
    );
    Ok(RealRun {
        run,
        tcp_sent: tcp(&tcp_send),
        tcp_received: tcp(&tcp_recv),
        pcaps: ["home", "cn", "access-a", "access-b"]
            .iter()
            .map(|l| dir.join(format!("{l}.pcap")))
            .collect(),
        keylog,
        statuses,
        t0: Instant::from_micros(t0),
        down: measured.down(),
        link_locals,
    })
}

/// Each interface's link-local address, from its MAC (the kernel's and
/// our router's are both EUI-64), with the node it is on.
fn link_locals(hosts: &Hosts) -> Result<Vec<(Ipv6Addr, &'static str)>, Error> {
    let mut out = vec![];
    for (ns, who) in [
        (&hosts.mn, "MN"),
        (&hosts.rt, "router"),
        (&hosts.ha, "HA"),
        (&hosts.cn, "CN"),
    ] {
        let links = ns.check(&["ip", "-o", "link", "show"])?;
        for l in links.lines() {
            let mac = l
                .split_whitespace()
                .skip_while(|w| *w != "link/ether")
                .nth(1);
            if let Some(mac) = mac.and_then(|m| m.parse().ok()) {
                out.push((common::nd::link_local(mac), who));
            }
        }
    }
    Ok(out)
}

/// What the wire and the logs say, before it is turned into a [`Run`].
struct Measured {
    t0: u64,
    moves: Vec<(u64, String)>,
    /// The flow packets the mobile node got from the correspondent
    /// (flow 0) and the correspondent from the node (flow 1): seq to
    /// arrival time.
    arrivals: [HashMap<u64, u64>; 2],
    /// Flow 0's (sent, arrived) as its payload stamped and the receiver saw.
    down_times: Vec<(u64, u64)>,
    /// The senders' first send times (seq n leaves n ms later).
    first_sent: [u64; 2],
    sent: [u64; 2],
    /// Flow-0 sequence numbers seen with a type 2 routing header, per link.
    route_optimised: HashMap<String, HashSet<u64>>,
    /// ICMPv6 echo replies to the home address by path: (seq, tunnelled?).
    echo_paths: HashMap<u16, &'static str>,
}

impl Measured {
    fn read(dir: &Path, t0: u64, moves: &[(u64, String)]) -> Result<Measured, Error> {
        let mut arrivals = [HashMap::new(), HashMap::new()];
        let mut down_times = vec![];
        for (i, name) in ["mn-udp-recv", "cn-udp-recv"].iter().enumerate() {
            let p = dir.join(format!("{name}.arrivals"));
            let text = fs::read_to_string(&p).map_err(io_at(&p))?;
            for l in text.lines() {
                let f: Vec<u64> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [_, seq, sent, at] = f[..] {
                    arrivals[i].insert(seq, at);
                    if i == 0 {
                        down_times.push((sent, at));
                    }
                }
            }
        }
        let mut first_sent = [0; 2];
        let mut sent = [0; 2];
        for (i, name) in ["cn-udp-send", "mn-udp-send"].iter().enumerate() {
            let p = dir.join(format!("{name}.log"));
            let text = fs::read_to_string(&p).map_err(io_at(&p))?;
            let v: Value = text
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .unwrap_or(Value::Null);
            first_sent[i] = v["first_us"].as_u64().unwrap_or(0);
            sent[i] = v["sent"].as_u64().unwrap_or(0);
        }
        let cp = CodePoints::default();
        let mut route_optimised: HashMap<String, HashSet<u64>> = HashMap::new();
        let mut echo_paths = HashMap::new();
        for link in ["home", "cn", "access-a", "access-b"] {
            let p = dir.join(format!("{link}.pcap"));
            let Ok(f) = fs::File::open(&p) else { continue };
            let packets = read_packets(f).map_err(|e| failed(p.display().to_string(), e))?;
            for (_, bytes) in packets {
                let Ok(repr) = PacketRepr::parse(&bytes, &cp) else {
                    continue;
                };
                classify(link, &repr, &mut route_optimised, &mut echo_paths);
            }
        }
        Ok(Measured {
            t0,
            moves: moves.to_vec(),
            arrivals,
            down_times,
            first_sent,
            sent,
            route_optimised,
            echo_paths,
        })
    }

    /// Flow 0's packets for the delay plot: send time from t0, delay.
    fn down(&self) -> Vec<(Instant, Duration)> {
        let mut v: Vec<(Instant, Duration)> = self
            .down_times
            .iter()
            .map(|(sent, at)| {
                let delay = Duration::from_micros(at.saturating_sub(*sent));
                (Instant::from_micros(sent.saturating_sub(self.t0)), delay)
            })
            .collect();
        v.sort();
        v
    }

    fn run<'a>(
        &self,
        setup: &Setup,
        statuses: impl Iterator<Item = &'a Value>,
        ping: &str,
        logs: &[PathBuf],
    ) -> Run {
        let rel = |us: u64| Instant::from_micros(us.saturating_sub(self.t0));
        let end = self.t0 + 10_000_000;
        let mut handoffs = vec![];
        for (i, (at, to)) in self.moves.iter().enumerate() {
            let next = self.moves.get(i + 1).map_or(end, |m| m.0);
            let ro = self.route_optimised.get(to);
            let latency = self.arrivals[0]
                .iter()
                .filter(|(seq, t)| {
                    **t >= *at && (to == "home" || ro.is_some_and(|r| r.contains(seq)))
                })
                .map(|(_, t)| *t)
                .min()
                .map(|t| Duration::from_micros(t - at));
            let mut lost = 0;
            for f in 0..2 {
                lost += (0..self.sent[f])
                    .filter(|seq| {
                        let sent = self.first_sent[f] + seq * 1000;
                        sent >= *at && sent < next && !self.arrivals[f].contains_key(seq)
                    })
                    .count() as u64;
            }
            handoffs.push(Handoff {
                at: rel(*at),
                to: to.clone(),
                latency,
                lost,
            });
        }
        let (mut messages, mut bytes, mut ike_messages, mut ike_bytes) = (0, 0, 0, 0);
        for s in statuses {
            let counter = |k: &str| s["status"]["counters"][k].as_u64().unwrap_or(0);
            messages += counter("signalling_messages");
            bytes += counter("signalling_bytes");
            ike_messages += counter("ike_messages");
            ike_bytes += counter("ike_bytes");
        }
        let pings = parse_ping(ping);
        let median = |f: &dyn Fn(u64, Option<&str>) -> bool| {
            let mut v: Vec<Duration> = pings
                .iter()
                .filter(|(seq, at, _)| f(*at, self.echo_paths.get(seq).copied()))
                .map(|(_, _, rtt)| *rtt)
                .collect();
            v.sort();
            v.get(v.len() / 2).copied()
        };
        let (s2, s8) = (self.t0 + 2_000_000, self.t0 + 8_000_000);
        Run {
            name: crate::demo::name(setup),
            mode: setup.mode,
            handoffs,
            signalling_messages: messages,
            signalling_bytes: bytes,
            ike_messages,
            ike_bytes,
            ping_home: median(&|at, _| at < s2),
            ping_via_ha: median(&|at, p| at >= s2 && at < s8 && p == Some("tunnelled")),
            ping_optimised: median(&|at, p| at >= s2 && at < s8 && p == Some("optimised")),
            timeline: timeline(logs, self.t0),
            down_flow: None,
            // The schedule's send times of flow 0's missing packets.
            down_lost: (0..self.sent[0])
                .filter(|seq| !self.arrivals[0].contains_key(seq))
                .map(|seq| rel(self.first_sent[0] + seq * 1000))
                .collect(),
        }
    }
}

/// Notes route-optimised flow packets and the path of echo replies.
fn classify(
    link: &str,
    repr: &PacketRepr,
    route_optimised: &mut HashMap<String, HashSet<u64>>,
    echo_paths: &mut HashMap<u16, &'static str>,
) {
    let type2 = |r: &PacketRepr| match &r.ip {
        IpRepr::V6 { ext, .. } => ext
            .iter()
            .any(|e| matches!(e, ExtHeaderRepr::Routing(RoutingRepr::Type2 { .. }))),
        IpRepr::V4(_) => false,
    };
    let (inner, tunnelled) = match &repr.upper {
        UpperRepr::Tunnel(inner) => (&**inner, true),
        _ => (repr, false),
    };
    match &inner.upper {
        UpperRepr::Udp(_, UdpPayload::Raw(d)) => {
            if let Some((0, seq, _)) = parse_flow(d) {
                if type2(inner) {
                    route_optimised
                        .entry(link.to_string())
                        .or_default()
                        .insert(seq);
                }
            }
        }
        UpperRepr::Icmpv6(i) if i.msg_type == common::wire::icmpv6::ECHO_REPLY => {
            if let (Some((_, seq)), true) = (i.echo(), link.starts_with("access")) {
                let path = if tunnelled {
                    "tunnelled"
                } else if type2(inner) {
                    "optimised"
                } else {
                    return;
                };
                echo_paths.insert(seq, path);
            }
        }
        _ => {}
    }
}

/// `ping -D` lines: (icmp_seq, sent at µs since the epoch, rtt).
fn parse_ping(text: &str) -> Vec<(u16, u64, Duration)> {
    text.lines()
        .filter_map(|l| {
            let stamp = l.strip_prefix('[')?.split(']').next()?;
            let (secs, frac) = stamp.split_once('.')?;
            let micros = secs.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?;
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let rtt: f64 = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
            let rtt = Duration::from_micros((rtt * 1000.0) as u64);
            // -D stamps the reply; the request left one RTT earlier.
            Some((seq, micros.saturating_sub(rtt.as_micros() as u64), rtt))
        })
        .collect()
}

/// The daemons' event lines, as the simulated demo's timeline shows them.
fn timeline(logs: &[PathBuf], t0: u64) -> Vec<(Instant, String)> {
    let mut lines = vec![];
    for log in logs {
        let role = log
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(text) = fs::read_to_string(log) else {
            continue;
        };
        for l in text.lines() {
            let Some((stamp, rest)) = l.split_once(' ') else {
                continue;
            };
            let Some(us) = rfc3339_micros(stamp) else {
                continue;
            };
            let Some((_, what)) = rest.split_once(": ") else {
                continue;
            };
            let routine = what.starts_with("running")
                || what.starts_with("carrier")
                || what.contains("passed DAD")
                || what.starts_with("SIG");
            if !routine && us >= t0 {
                lines.push((Instant::from_micros(us - t0), format!("{role:<6} {what}")));
            }
        }
    }
    lines.sort();
    lines
}

/// `2026-12-01T09:30:01.123456Z` as µs since the epoch.
fn rfc3339_micros(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let d: Vec<i64> = date.split('-').filter_map(|x| x.parse().ok()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<u64> = hms.split(':').filter_map(|x| x.parse().ok()).collect();
    let (&[y, m, day], &[hh, mm, ss]) = (&d[..], &t[..]) else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let frac = format!("{frac:0<6}");
    let micros: u64 = frac.get(..6)?.parse().ok()?;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000 + micros)
}

/// The real runs' report lines: TCP, and real against simulated.
pub fn compare_text(real: &[RealRun], simulated: &[Run], rtt_mn_cn: Duration) -> String {
    let mut o = String::new();
    for r in real {
        let ok = r.tcp_sent == r.tcp_received && r.tcp_sent.0 > 0;
        let _ = writeln!(
            o,
            "   {} TCP stream: {} bytes sent, {} received, SHA-256 {}",
            r.run.name,
            r.tcp_sent.0,
            r.tcp_received.0,
            if ok {
                "equal: nothing lost"
            } else {
                "DIFFERENT"
            }
        );
    }
    let _ = writeln!(
        o,
        "\nReal against simulated (handoffs away from home, mean):"
    );
    let sims: BTreeMap<&str, &Run> = simulated.iter().map(|r| (r.name, r)).collect();
    for r in real {
        let m = r.run.name;
        let (Some(real), Some(sim)) = (
            r.run.away_latency(),
            sims.get(m).and_then(|s| s.away_latency()),
        ) else {
            continue;
        };
        let _ = writeln!(
            o,
            "   {m:<9} real {:.1} ms ({:.2} RTT), simulated {:.1} ms ({:.2} RTT): {:+.1} %",
            ms(real),
            ms(real) / ms(rtt_mn_cn),
            ms(sim),
            ms(sim) / ms(rtt_mn_cn),
            (ms(real) / ms(sim) - 1.0) * 100.0
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_ping_lines_parse() {
        // 2026-12-01T00:00:00Z
        assert_eq!(
            rfc3339_micros("2026-12-01T00:00:00Z"),
            Some(1_796_083_200_000_000)
        );
        assert_eq!(
            rfc3339_micros("1970-01-02T00:00:01.5Z"),
            Some((86_400 + 1) * 1_000_000 + 500_000)
        );
        let p = parse_ping(
            "[1796083200.100000] 64 bytes from 2001:db8:3::1: icmp_seq=7 ttl=62 time=40.5 ms",
        );
        assert_eq!(
            p,
            vec![(7, 1_796_083_200_059_500, Duration::from_micros(40_500))]
        );
    }
}
