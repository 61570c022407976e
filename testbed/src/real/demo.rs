//! `testbed demo --real` and `testbed run --real FILE`: a network of the
//! simulator's kind (the demo's, or a scenario file's) as network
//! namespaces and veth pairs, with the real `ha`, `cn` and `mn` daemons in
//! them, our router process between the links (the simulator's link model
//! and router, on the wire: delay, jitter, loss, MTU), and kernel
//! applications playing the timeline: the UDP flows, the pings (each
//! answered by one back), and a TCP stream of known bytes that must
//! survive every handoff. The mobile node moves only as a real node does:
//! the router side of its veth loses carrier, another gains it.
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
use common::ipsec::Algorithm;
use common::node::{CoaTestPolicy, CookieMethod, RouteOptimisation};
use common::time::{Duration, Instant};
use common::wire::packet::UdpPayload;
use common::wire::{CodePoints, ExtHeaderRepr, IpRepr, PacketRepr, RoutingRepr, UpperRepr};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;

use super::traffic::wall_micros;
use crate::demo::{End, Handoff, Move, Run, Stream, Timeline};
use crate::harness::netns::{check_bounded, is_root, Netns, Process, Signal};
use crate::sim::{parse_flow, FLOW_PORT};
use crate::tools::pcap::read_packets;
use crate::topology::{CnSa, Keying, Network, CN_ID, HA_ID, MN_ID, PSK};

/// Set by SIGINT or SIGTERM: the run stops at its next step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// TCP port of the stream of known bytes.
const TCP_PORT: u16 = 5001;

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
    /// Each daemon's `status --json` at the end (`ha`, each
    /// correspondent by name, `mn`).
    pub statuses: BTreeMap<String, Value>,
    /// The run's time zero on the wall clock (the pcaps' clock).
    pub t0: Instant,
    /// Send time (from t0) and one-way delay of each CN→MN flow packet
    /// that arrived; the lost ones are `run.down_lost`.
    pub down: Vec<(Instant, Duration)>,
    /// The link-local address of every interface and whose lifeline it
    /// is on (`MN`, `router`, `HA`, a correspondent's name in capitals):
    /// the captures' link-local sources.
    pub link_locals: Vec<(Ipv6Addr, String)>,
    /// What ran, and when the run ended (from t0).
    pub net: Network,
    pub end: Instant,
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

/// An SA pair's algorithm and its two fresh keys (with their salts), one
/// each way.
struct Keys {
    algorithm: Algorithm,
    ab: String,
    ba: String,
}

fn key_pair(rng: &mut ChaCha20Rng, algorithm: Algorithm) -> Keys {
    let mut k = || {
        let mut b = vec![0u8; algorithm.key_len()];
        rng.fill_bytes(&mut b);
        format!("0x{}", common::wire::hex(&b))
    };
    Keys {
        algorithm,
        ab: k(),
        ba: k(),
    }
}

/// The ESP tunnel's ([`Extras::esp_tunnel`]).
pub const TUNNEL_ALGORITHM: Algorithm = Algorithm::Aes256Gcm16;

/// BU and BA only: the suitable pair of draft-dupont-mipv6-cn-ipsec §2,
/// RFC 3776's with the home agent.
const BU_BA: &str = "protocol: mobility, mh_types: [bu, ba]";

/// One transport SA pair as one side writes it in its static-keys file.
struct Sa<'a> {
    local: Ipv6Addr,
    peer: Ipv6Addr,
    algorithm: Algorithm,
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
    keys: &'a Keys,
    sel: [&'a str; 2],
    policy: [String; 2],
) -> (Sa<'a>, Sa<'a>) {
    let (ab, ba) = ((spi, keys.ab.as_str()), (spi + 1, keys.ba.as_str()));
    let [pa, pb] = policy;
    (
        Sa {
            local: a,
            peer: b,
            algorithm: keys.algorithm,
            out: ab,
            inb: ba,
            selector: sel[0],
            policy: pa,
        },
        Sa {
            local: b,
            peer: a,
            algorithm: keys.algorithm,
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
    keys: &'a Keys,
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
            "  - {{ local: \"{}\", peer: \"{}\", mode: transport, algorithm: {}, \
             outbound: {{ spi: {:#x}, key: \"{}\" }}, inbound: {{ spi: {:#x}, key: \"{}\" }}, \
             selector: {{ {} }} }}",
            sa.local,
            sa.peer,
            sa.algorithm.keyword(),
            sa.out.0,
            sa.out.1,
            sa.inb.0,
            sa.inb.1,
            sa.selector
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
    /// One per correspondent, in [`Network::cns`] order.
    pub cns: Vec<Netns>,
    pub mn: Netns,
}

/// The router's port to the mobile node's interface `i` (one per link it
/// visits, in [`Network::mn_links`] order), the node's device, and the
/// router's port to correspondent `i`.
fn mn_port(i: usize) -> String {
    format!("r-mn{i}")
}

fn mn_device(i: usize) -> String {
    format!("mn{i}")
}

fn cn_port(i: usize) -> String {
    format!("r-cn{i}")
}

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

pub fn build_hosts(net: &Network) -> Result<Hosts, Error> {
    let h = Hosts {
        rt: Netns::new("rt")?,
        ha: Netns::new("ha")?,
        cns: net
            .cns
            .iter()
            .map(|_| Netns::new("cn"))
            .collect::<Result<_, _>>()?,
        mn: Netns::new("mn")?,
    };
    Netns::veth_pair(&h.ha, "ha0", &h.rt, "r-ha")?;
    for (i, ns) in h.cns.iter().enumerate() {
        Netns::veth_pair(ns, "cn0", &h.rt, &cn_port(i))?;
    }
    for i in 0..net.mn_links.len() {
        Netns::veth_pair(&h.mn, &mn_device(i), &h.rt, &mn_port(i))?;
    }
    Ok(h)
}

/// What a run's files add to the demo's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extras {
    /// ESP ([`TUNNEL_ALGORITHM`]) on the tunnel between the care-of address and the
    /// home agent: a transport pair for IPv6-in-IPv6 (protocol 41), RFC
    /// 4877's payload protection with static keys.
    pub esp_tunnel: bool,
    /// A pcap per link from the router.
    pub capture: bool,
}

/// The router's file: `net`'s links with their delay, jitter, loss and
/// MTU, each with the ports of the nodes on it.
pub fn router_yaml(net: &Network, dir: &Path, capture: bool) -> String {
    let ms = |d: Duration| d.as_micros() as f64 / 1000.0;
    let mut s = format!(
        "ra_interval_ms: {}\nseed: {}\n",
        net.ra_interval.as_micros() / 1000,
        net.seed
    );
    if capture {
        let _ = writeln!(s, "pcap_dir: {}", dir.display());
    }
    s.push_str("links:\n");
    for (l, link) in net.links.iter().enumerate() {
        let mut ports = vec![];
        if l == net.ha_link {
            ports.push("r-ha".to_string());
        }
        let cns = net.cns.iter().enumerate().filter(|(_, c)| c.link == l);
        ports.extend(cns.map(|(i, _)| cn_port(i)));
        let mns = net.mn_links.iter().enumerate().filter(|(_, m)| **m == l);
        ports.extend(mns.map(|(i, _)| mn_port(i)));
        let p = &link.params;
        let _ = writeln!(
            s,
            "  - {{ name: {}, prefix: \"{}/64\", delay_ms: {}, jitter_ms: {}, loss: {}, mtu: {}, ports: [{}] }}",
            link.name,
            link.prefix,
            ms(p.delay),
            ms(p.jitter),
            p.loss,
            p.mtu,
            ports.join(", ")
        );
    }
    s
}

/// The `ike:` sections of the mobile node, home agent and each
/// correspondent for the simulator's IKE keying (`topology::ike_configs`,
/// `cn_ike`): the same identities and pre-shared key, the children the
/// daemons build for their roles, or with triangular routing one child
/// for everything between the home address and the correspondent,
/// written out; no section for a correspondent with no SA.
fn ike_sections(net: &Network, mobility: Mobility, payload: bool) -> (String, String, Vec<String>) {
    let mobility = match mobility {
        Mobility::Mobike { r_mobike: false } => "mobike",
        Mobility::Mobike { r_mobike: true } => "r-mobike",
        Mobility::AddrMgmt => "addrmgmt",
        Mobility::Off => "off",
    };
    let (hoa, ha) = (net.mn.home_address, net.ha.address);
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
            &format!("addresses: [\"{ha}\"], payload: {payload}"),
        );
    let ha = head(HA_ID) + &peer("mn", MN_ID, &format!("home_address: \"{hoa}\""));
    let mut cns = vec![];
    for c in &net.cns {
        let cn = c.config.address;
        let (mn_side, cn_side) = match c.sa {
            CnSa::None => {
                cns.push(String::new());
                continue;
            }
            CnSa::All => (
                format!("addresses: [\"{cn}\"], {}", all(hoa, cn)),
                all(cn, hoa),
            ),
            CnSa::Signalling => (
                format!("addresses: [\"{cn}\"]"),
                format!("home_address: \"{hoa}\""),
            ),
        };
        mn += &peer(&c.name, CN_ID, &mn_side);
        cns.push(head(CN_ID) + &peer("mn", MN_ID, &cn_side));
    }
    (mn, ha, cns)
}

/// Writes every configuration file of a run into `dir`: the router's,
/// the daemons' (`ha.yaml`, `mn.yaml`, one `<name>.yaml` per
/// correspondent) and their static keys.
pub fn write_configs(net: &Network, dir: &Path, extras: Extras) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let mut rng = ChaCha20Rng::seed_from_u64(net.seed ^ 0x6b65_7973);
    let ha_keys = key_pair(&mut rng, Algorithm::Aes128Gcm16);
    let cn_keys: Vec<_> = net
        .cns
        .iter()
        .map(|_| key_pair(&mut rng, Algorithm::Aes128Gcm16))
        .collect();
    let tunnel_keys = key_pair(&mut rng, TUNNEL_ALGORITHM);
    let (hoa, ha_address) = (net.mn.home_address, net.ha.address);
    let ike = match net.keying {
        Keying::Static => None,
        Keying::Ike { mobility, payload } => Some((mobility, payload)),
    };
    let (mut mn, mut ha) = (vec![], vec![]);
    if ike.is_none() {
        let (mn_ha, ha_mn) = between((hoa, ha_address), 0x100, &ha_keys, BU_BA);
        mn.push(mn_ha);
        ha.push(ha_mn);
    }
    let mut cn_pairs: Vec<Vec<Sa<'_>>> = net.cns.iter().map(|_| vec![]).collect();
    for (i, c) in net.cns.iter().enumerate() {
        let selector = match c.sa {
            CnSa::None => None,
            CnSa::Signalling => Some(BU_BA),
            // Triangular routing: everything between the two.
            CnSa::All => Some(""),
        };
        // As the simulator: with IKE keying, IKE keys the correspondents too.
        if let (Some(sel), None) = (selector, ike) {
            let spi = 0x200 + 0x10 * u32::try_from(i).unwrap_or(0);
            let (mn_cn, cn_mn) = between((hoa, c.config.address), spi, &cn_keys[i], sel);
            mn.push(mn_cn);
            cn_pairs[i].push(cn_mn);
        }
    }
    if extras.esp_tunnel {
        // The care-of address changes; the pair's addresses are not on
        // the wire in transport mode.
        let (mn_tun, ha_tun) = mirrored(
            (hoa, ha_address),
            0x300,
            &tunnel_keys,
            [
                "local: \"::/0\", protocol: 41",
                "remote: \"::/0\", protocol: 41",
            ],
            [
                format!("remote: \"{ha_address}\", protocol: 41"),
                format!("local: \"{ha_address}\", protocol: 41"),
            ],
        );
        mn.push(mn_tun);
        ha.push(ha_tun);
    }
    let (mn_ike, ha_ike, cn_ike) = match ike {
        Some((mobility, payload)) => ike_sections(net, mobility, payload),
        None => (
            String::new(),
            String::new(),
            vec![String::new(); net.cns.len()],
        ),
    };
    let keys = |pairs: &[Sa<'_>], role: &str| {
        if pairs.is_empty() {
            String::new()
        } else {
            format!("ipsec: {role}-keys.yaml\n")
        }
    };
    let control = |role: &str| dir.join(format!("{role}.sock"));
    let interfaces: Vec<String> = (0..net.mn_links.len()).map(mn_device).collect();
    let correspondents: Vec<String> = net
        .mn
        .correspondents
        .iter()
        .map(|c| {
            format!(
                "{{ address: \"{}\", mode: {} }}",
                c.address,
                mode_name(c.mode)
            )
        })
        .collect();
    let mut files = vec![
        ("mn-keys.yaml".to_string(), keys_yaml(&mn)),
        ("ha-keys.yaml".to_string(), keys_yaml(&ha)),
        (
            "ha.yaml".to_string(),
            format!(
                "address: {ha_address}\nhome_prefix: {}/64\ninterface: ha0\n\
                 mobile_nodes: [{hoa}]\n{}{ha_ike}control: {}\nseed: {}\n",
                net.links[net.ha_link].prefix,
                keys(&ha, "ha"),
                control("ha").display(),
                net.seed ^ 2
            ),
        ),
        (
            "mn.yaml".to_string(),
            format!(
                "home_address: {hoa}\nhome_agent: {ha_address}\ninterfaces: [{}]\n\
                 correspondents: [{}]\nhome_lifetime: {}\n\
                 correspondent_lifetime: {}\n{}{mn_ike}control: {}\nseed: {}\n",
                interfaces.join(", "),
                correspondents.join(", "),
                net.mn.home_lifetime.as_secs(),
                net.mn.correspondent_lifetime.as_secs(),
                keys(&mn, "mn"),
                control("mn").display(),
                net.seed ^ 1
            ),
        ),
        (
            "router.yaml".to_string(),
            router_yaml(net, dir, extras.capture),
        ),
    ];
    for ((c, pairs), ike) in net.cns.iter().zip(&cn_pairs).zip(&cn_ike) {
        let coa_test = match c.config.coa_test {
            CoaTestPolicy::Off => "off",
            CoaTestPolicy::AlternateOnly => "alternate-only",
            CoaTestPolicy::Always => "always",
        };
        let cookie = match c.config.cookie_method {
            CookieMethod::Global => "global",
            CookieMethod::PerBinding => "per-binding",
        };
        files.push((format!("{}-keys.yaml", c.name), keys_yaml(pairs)));
        files.push((
            format!("{}.yaml", c.name),
            format!(
                "address: {}\ninterface: cn0\ncoa_test: {coa_test}\ncookie_method: {cookie}\n\
                 {}{ike}control: {}\nseed: {}\n",
                c.config.address,
                keys(pairs, &c.name),
                control(&c.name).display(),
                c.config.seed
            ),
        ));
    }
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

/// Puts the router in the real-time class (SCHED_FIFO, with `chrt`): it
/// is the wire, whose timers make every delay the demo measures, as the
/// kernel's netem runs in softirqs ahead of any process. At normal
/// priority the other processes on the two cores held it up to 4.5 ms,
/// twenty times in seven seconds, and a handoff that met such a pause
/// took 2 ms more. Kernel throttling keeps 5 % of each core for the
/// others whatever it does.
fn realtime(router: &Process) {
    let mut chrt = Command::new("chrt");
    chrt.args(["--fifo", "--pid", "10", &router.pid().to_string()]);
    let why = match crate::harness::netns::run_bounded(chrt, WallDuration::from_secs(5)) {
        Ok(o) if o.status.success() => return,
        Ok(o) => format!("chrt: {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => e.to_string(),
    };
    eprintln!(
        "testbed demo --real: the router keeps its normal priority, so a busy machine may delay its links: {why}"
    );
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

/// One end of a stream's name in file names: `mn` or the
/// correspondent's.
fn end_name(net: &Network, e: End) -> &str {
    match e {
        End::Mn => "mn",
        End::Cn(i) => &net.cns[i].name,
    }
}

/// The node and address of one end of a stream, and its name.
fn end_of<'a>(net: &'a Network, hosts: &'a Hosts, e: End) -> (&'a Netns, Ipv6Addr, &'a str) {
    let (ns, address) = match e {
        End::Mn => (&hosts.mn, net.mn.home_address),
        End::Cn(i) => (&hosts.cns[i], net.cns[i].config.address),
    };
    (ns, address, end_name(net, e))
}

/// How many packets a stream sends: one every interval from its start,
/// until its end.
fn count(s: &Stream) -> u64 {
    let span = s.until.saturating_duration_since(s.start).as_micros();
    u64::try_from(span / s.interval.as_micros().max(1)).unwrap_or(u64::MAX)
}

/// What happens when, on the wall clock, in a run.
enum Step {
    Flow(usize),
    Ping(usize),
    Tcp,
    Move(usize),
}

/// One run in namespaces: `net` and `timeline` as the simulator plays
/// them ([`crate::demo::play`]), on real links. Beyond the timeline, a
/// ping from the mobile node is answered by one back to it (so both
/// directions are seen in every phase), and a TCP stream of known bytes
/// goes from the node to the first correspondent while the flows run.
/// Its files go under `dir`.
pub fn run(
    net: &Network,
    timeline: &Timeline,
    name: &'static str,
    bins: &Bins,
    dir: &Path,
) -> Result<RealRun, Error> {
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
    write_configs(net, dir, extras)?;
    let keylog = dir.join("wireshark");
    let hosts = build_hosts(net)?;
    let link_locals = link_locals(&hosts, net)?;
    let (router, _router_stdin) = start_router(&hosts, bins, dir)?;
    realtime(&router);
    let ports: Vec<String> = (0..net.mn_links.len()).map(mn_port).collect();
    // The router brings its ports up; the node starts on its first link,
    // with no carrier on the others.
    let others: Vec<&str> = ports.iter().skip(1).map(String::as_str).collect();
    carrier(&hosts.rt, &others, &[])?;
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
    let end_us = timeline.end.total_micros();
    let mut roles = vec![("ha".to_string(), &bins.ha)];
    roles.extend(net.cns.iter().map(|c| (c.name.clone(), &bins.cn)));
    roles.push(("mn".to_string(), &bins.mn));
    let mut daemons = vec![daemon(&hosts.ha, &bins.ha, "ha")?];
    for (c, ns) in net.cns.iter().zip(&hosts.cns) {
        daemons.push(daemon(ns, &bins.cn, &c.name)?);
    }
    daemons.push(daemon(&hosts.mn, &bins.mn, "mn")?);
    // The timeline starts when every daemon answers, as every simulated
    // node starts at 0: a cold start of a binary can take a second.
    crate::harness::netns::wait_until(
        WallDuration::from_secs(20),
        "the daemons' control sockets",
        || roles.iter().all(|(r, b)| status(b, r, dir).is_some()),
    )?;
    let t0 = wall_micros();
    let at = |t: Instant| t0 + t.total_micros();
    // A receiver on every end a flow goes to, for the whole run.
    let mut receivers = vec![];
    let mut ends: Vec<End> = vec![];
    for f in &timeline.flows {
        if !ends.contains(&f.to) {
            ends.push(f.to);
        }
    }
    for e in ends {
        let (ns, _, who) = end_of(net, &hosts, e);
        let out = dir.join(format!("{who}-udp-recv.arrivals"));
        let for_ms = (end_us / 1000).to_string();
        let args = [
            "traffic",
            "udp-recv",
            "--for-ms",
            &for_ms,
            "--out",
            &out.to_string_lossy(),
        ];
        receivers.push(spawn(
            ns,
            &bins.testbed,
            &args,
            dir,
            &format!("{who}-udp-recv"),
        )?);
    }
    // The TCP stream: 200 bytes a millisecond from the first flow's start
    // until half a second before the last one's end.
    let tcp_span = timeline
        .flows
        .iter()
        .map(|f| f.start)
        .min()
        .zip(timeline.flows.iter().map(|f| f.until).max())
        .filter(|_| !net.cns.is_empty());
    let mut tcp_recv = match tcp_span {
        Some(_) => Some(spawn(
            &hosts.cns[0],
            &bins.testbed,
            &[
                "traffic",
                "tcp-recv",
                "--port",
                &TCP_PORT.to_string(),
                "--timeout-ms",
                &(end_us / 1000 + 20_000).to_string(),
            ],
            dir,
            "tcp-recv",
        )?),
        None => None,
    };
    let mut steps: Vec<(Instant, Step)> = vec![];
    steps.extend(
        timeline
            .flows
            .iter()
            .enumerate()
            .map(|(i, f)| (f.start, Step::Flow(i))),
    );
    steps.extend(
        timeline
            .pings
            .iter()
            .enumerate()
            .map(|(i, p)| (p.start, Step::Ping(i))),
    );
    steps.extend(tcp_span.map(|(start, _)| (start, Step::Tcp)));
    steps.extend(
        timeline
            .moves
            .iter()
            .enumerate()
            .map(|(i, m)| (m.0, Step::Move(i))),
    );
    steps.sort_by_key(|s| s.0);
    let (mut senders, mut pings, mut tcp_send, mut moves) = (vec![], vec![], None, vec![]);
    for (when, step) in steps {
        wait_until_wall(&rt, at(when))?;
        for d in &mut daemons {
            if !d.is_running() {
                return Err(failed(
                    format!("{} stopped", d.exe().display()),
                    d.output().lines().last().unwrap_or("no output"),
                ));
            }
        }
        match step {
            Step::Flow(i) => {
                let f = &timeline.flows[i];
                let ((ns, _, from), (_, to, _)) =
                    (end_of(net, &hosts, f.from), end_of(net, &hosts, f.to));
                let args = [
                    "traffic",
                    "udp-send",
                    "--to",
                    &format!("[{to}]:{FLOW_PORT}"),
                    "--flow",
                    &i.to_string(),
                    "--every-us",
                    &f.interval.as_micros().to_string(),
                    "--count",
                    &count(f).to_string(),
                ];
                let log = format!("flow{i}-{from}-udp-send");
                senders.push(spawn(ns, &bins.testbed, &args, dir, &log)?);
            }
            Step::Ping(i) => {
                let p = &timeline.pings[i];
                let interval = format!("{}", p.interval.as_micros() as f64 / 1e6);
                let count = count(p).to_string();
                // And one back, from the far end.
                for (from, to) in [(p.from, p.to), (p.to, p.from)] {
                    let ((ns, _, a), (_, dst, b)) =
                        (end_of(net, &hosts, from), end_of(net, &hosts, to));
                    let dst = dst.to_string();
                    let args = [
                        "-6", "-n", "-D", "-i", &interval, "-c", &count, "-W", "1", &dst,
                    ];
                    let ping = spawn(
                        ns,
                        Path::new("/usr/bin/ping"),
                        &args,
                        dir,
                        &format!("ping-{a}-{b}"),
                    )?;
                    pings.push((from, ping));
                }
            }
            Step::Tcp => {
                let Some((start, until)) = tcp_span else {
                    continue;
                };
                let for_ms =
                    (until.saturating_duration_since(start).as_micros() / 1000).saturating_sub(500);
                let cn = net.cns[0].config.address;
                tcp_send = Some(spawn(
                    &hosts.mn,
                    &bins.testbed,
                    &[
                        "traffic",
                        "tcp-send",
                        "--to",
                        &format!("[{cn}]:{TCP_PORT}"),
                        "--bytes",
                        &(for_ms * 200).to_string(),
                        "--for-ms",
                        &for_ms.to_string(),
                    ],
                    dir,
                    "tcp-send",
                )?);
            }
            // Carrier off and on as the move says (a switch: off on every
            // other link of the node, on on the new one), in one netlink
            // batch; the node's log says when it saw the carrier come up,
            // which is when its handoff starts (as the simulator's link-up).
            Step::Move(i) => {
                let m = timeline.moves[i].1;
                let (Move::To(l) | Move::Join(l) | Move::Leave(l)) = m;
                let Some(port) = net.mn_links.iter().position(|x| *x == l) else {
                    return Err(failed(
                        "a move",
                        format!("link {l} is not the mobile node's"),
                    ));
                };
                let (down, up): (Vec<&str>, Vec<&str>) = match m {
                    Move::To(_) => (
                        (0..ports.len())
                            .filter(|p| *p != port)
                            .map(|p| ports[p].as_str())
                            .collect(),
                        vec![&ports[port]],
                    ),
                    Move::Join(_) => (vec![], vec![&ports[port]]),
                    Move::Leave(_) => (vec![&ports[port]], vec![]),
                };
                let started = wall_micros();
                carrier(&hosts.rt, &down, &up)?;
                if m.arrives().is_some() {
                    moves.push((started, port, net.links[l].name.clone()));
                }
            }
        }
    }
    wait_until_wall(&rt, at(timeline.end))?;
    let statuses: BTreeMap<String, Value> = roles
        .iter()
        .filter_map(|(r, b)| Some((r.clone(), status(b, r, dir)?)))
        .collect();
    for p in senders.iter_mut().chain(&mut receivers) {
        p.wait_exit(WallDuration::from_secs(5))?;
    }
    for p in tcp_send.iter_mut().chain(&mut tcp_recv) {
        p.wait_exit(WallDuration::from_secs(15))?;
    }
    drop(daemons);
    let mut router = router;
    let _ = router.stop(Signal::Term, WallDuration::from_secs(5));
    let tcp = |p: Option<&Process>| -> (u64, String) {
        let v: Value = p
            .and_then(|p| {
                p.output()
                    .lines()
                    .rev()
                    .find_map(|l| serde_json::from_str(l).ok())
            })
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
            let up = carrier_up(&mn_log, &mn_device(port), started).unwrap_or(started);
            (up, to)
        })
        .collect();
    // The pings of the mobile node are the ones measured, as in the
    // simulator's table.
    let ping_out: String = pings
        .iter()
        .filter(|(from, _)| *from == End::Mn)
        .map(|(_, p)| p.output())
        .collect();
    let measured = Measured::read(net, timeline, dir, t0, &moves)?;
    let mut logs = vec![dir.join("ha.log")];
    logs.extend(net.cns.iter().map(|c| dir.join(format!("{}.log", c.name))));
    logs.push(dir.join("mn.log"));
    let run = measured.run(net, timeline, name, statuses.values(), &ping_out, &logs);
    Ok(RealRun {
        run,
        tcp_sent: tcp(tcp_send.as_ref()),
        tcp_received: tcp(tcp_recv.as_ref()),
        pcaps: net
            .links
            .iter()
            .map(|l| dir.join(format!("{}.pcap", l.name)))
            .collect(),
        keylog,
        statuses,
        t0: Instant::from_micros(t0),
        down: measured.down(),
        link_locals,
        net: net.clone(),
        end: timeline.end,
    })
}

/// Each interface's link-local address, from its MAC (the kernel's and
/// our router's are both EUI-64), with the lifeline it is on (`MN`,
/// `router`, `HA`, a correspondent's name in capitals).
fn link_locals(hosts: &Hosts, net: &Network) -> Result<Vec<(Ipv6Addr, String)>, Error> {
    let mut out = vec![];
    let mut who: Vec<(&Netns, String)> = vec![
        (&hosts.mn, "MN".into()),
        (&hosts.rt, "router".into()),
        (&hosts.ha, "HA".into()),
    ];
    who.extend(
        hosts
            .cns
            .iter()
            .zip(&net.cns)
            .map(|(ns, c)| (ns, c.name.to_uppercase())),
    );
    for (ns, who) in who {
        let links = ns.check(&["ip", "-o", "link", "show"])?;
        for l in links.lines() {
            let mac = l
                .split_whitespace()
                .skip_while(|w| *w != "link/ether")
                .nth(1);
            if let Some(mac) = mac.and_then(|m| m.parse().ok()) {
                out.push((common::nd::link_local(mac), who.clone()));
            }
        }
    }
    Ok(out)
}

/// What the wire and the logs say, before it is turned into a [`Run`].
struct Measured {
    t0: u64,
    moves: Vec<(u64, String)>,
    /// The measured flow (the first to the mobile node), as in the
    /// simulator.
    down: Option<usize>,
    /// Per flow: seq to arrival time.
    arrivals: Vec<HashMap<u64, u64>>,
    /// The measured flow's (sent, arrived) as its payload stamped and the
    /// receiver saw.
    down_times: Vec<(u64, u64)>,
    /// Per flow: the sender's first send time, how many it sent, the
    /// interval in µs (seq n leaves n intervals after the first).
    sent: Vec<(u64, u64, u64)>,
    /// The measured flow's sequence numbers seen per link with a type 2
    /// routing header, and tunnelled from the home agent.
    route_optimised: HashMap<String, HashSet<u64>>,
    tunnelled: HashMap<String, HashSet<u64>>,
    /// ICMPv6 echo replies to the home address on a foreign link, by path.
    echo_paths: HashMap<u16, &'static str>,
}

impl Measured {
    fn read(
        net: &Network,
        timeline: &Timeline,
        dir: &Path,
        t0: u64,
        moves: &[(u64, String)],
    ) -> Result<Measured, Error> {
        let down = timeline.flows.iter().position(|f| f.to == End::Mn);
        let mut arrivals = vec![HashMap::new(); timeline.flows.len()];
        let mut down_times = vec![];
        let mut receivers: Vec<&str> = vec![];
        for f in &timeline.flows {
            let who = end_name(net, f.to);
            if !receivers.contains(&who) {
                receivers.push(who);
            }
        }
        for who in receivers {
            let p = dir.join(format!("{who}-udp-recv.arrivals"));
            let text = fs::read_to_string(&p).map_err(io_at(&p))?;
            for l in text.lines() {
                let f: Vec<u64> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [flow, seq, sent, at] = f[..] {
                    let Some(a) = usize::try_from(flow).ok().and_then(|f| arrivals.get_mut(f))
                    else {
                        continue;
                    };
                    a.insert(seq, at);
                    if usize::try_from(flow).ok() == down {
                        down_times.push((sent, at));
                    }
                }
            }
        }
        let mut sent = vec![];
        for (i, f) in timeline.flows.iter().enumerate() {
            let from = end_name(net, f.from);
            let p = dir.join(format!("flow{i}-{from}-udp-send.log"));
            let text = fs::read_to_string(&p).map_err(io_at(&p))?;
            let v: Value = text
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .unwrap_or(Value::Null);
            sent.push((
                v["first_us"].as_u64().unwrap_or(0),
                v["sent"].as_u64().unwrap_or(0),
                u64::try_from(f.interval.as_micros()).unwrap_or(u64::MAX),
            ));
        }
        let cp = CodePoints::default();
        let (mut route_optimised, mut tunnelled) = (HashMap::new(), HashMap::new());
        let mut echo_paths = HashMap::new();
        let home = &net.links[net.ha_link].name;
        for link in &net.links {
            let p = dir.join(format!("{}.pcap", link.name));
            let Ok(f) = fs::File::open(&p) else { continue };
            let packets = read_packets(f).map_err(|e| failed(p.display().to_string(), e))?;
            let mut seen = Seen {
                down: down.and_then(|d| u32::try_from(d).ok()),
                foreign: link.name != *home,
                route_optimised: route_optimised.entry(link.name.clone()).or_default(),
                tunnelled: tunnelled.entry(link.name.clone()).or_default(),
                echo_paths: &mut echo_paths,
            };
            for (_, bytes) in packets {
                if let Ok(repr) = PacketRepr::parse(&bytes, &cp) {
                    seen.note(&repr);
                }
            }
        }
        Ok(Measured {
            t0,
            moves: moves.to_vec(),
            down,
            arrivals,
            down_times,
            sent,
            route_optimised,
            tunnelled,
            echo_paths,
        })
    }

    /// The measured flow's packets for the delay plot: send time from t0,
    /// delay.
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

    /// Seqs of flow `f` that never arrived, with their send times.
    fn lost(&self, f: usize) -> impl Iterator<Item = u64> + '_ {
        let (first, sent, every) = self.sent[f];
        (0..sent)
            .filter(move |seq| !self.arrivals[f].contains_key(seq))
            .map(move |seq| first + seq * every)
    }

    fn run<'a>(
        &self,
        net: &Network,
        timeline: &Timeline,
        name: &'static str,
        statuses: impl Iterator<Item = &'a Value>,
        ping: &str,
        logs: &[PathBuf],
    ) -> Run {
        let rel = |us: u64| Instant::from_micros(us.saturating_sub(self.t0));
        let end = self.t0 + timeline.end.total_micros();
        let home = &net.links[net.ha_link].name;
        // The mode of the correspondent the measured flow comes from.
        let mode = self
            .down
            .and_then(|d| match timeline.flows[d].from {
                End::Cn(i) => Some(net.cns[i].config.address),
                End::Mn => None,
            })
            .and_then(|a| net.mn.correspondents.iter().find(|c| c.address == a))
            .map_or(RouteOptimisation::None, |c| c.mode);
        let mut handoffs = vec![];
        for (i, (at, to)) in self.moves.iter().enumerate() {
            let next = self.moves.get(i + 1).map_or(end, |m| m.0);
            // The path the node should end on: direct at home, else route
            // optimised, or tunnelled without route optimisation.
            let on_path = if mode == RouteOptimisation::None {
                self.tunnelled.get(to)
            } else {
                self.route_optimised.get(to)
            };
            let latency = self.down.and_then(|d| {
                self.arrivals[d]
                    .iter()
                    .filter(|(seq, t)| {
                        **t >= *at
                            && **t < next
                            && (to == home || on_path.is_some_and(|r| r.contains(seq)))
                    })
                    .map(|(_, t)| *t)
                    .min()
                    .map(|t| Duration::from_micros(t - at))
            });
            let lost = (0..self.sent.len())
                .map(|f| self.lost(f).filter(|t| *t >= *at && *t < next).count() as u64)
                .sum();
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
        // Away from the first move until the node is next moved home, as
        // the simulator's table.
        let (left, back) = timeline.away(net.ha_link);
        let (left, back) = (self.t0 + left.total_micros(), self.t0 + back.total_micros());
        let away = |at: u64| at >= left && at < back;
        Run {
            name,
            mode,
            handoffs,
            signalling_messages: messages,
            signalling_bytes: bytes,
            ike_messages,
            ike_bytes,
            ping_home: median(&|at, _| at < left),
            ping_via_ha: median(&|at, p| away(at) && p == Some("tunnelled")),
            ping_optimised: median(&|at, p| away(at) && p == Some("optimised")),
            timeline: self::timeline(logs, self.t0),
            // The flow number is its index, as `traffic udp-send --flow`.
            down_flow: self.down.and_then(|d| u32::try_from(d).ok()),
            // The schedule's send times of the measured flow's missing
            // packets.
            down_lost: self
                .down
                .map_or(vec![], |d| self.lost(d).map(rel).collect()),
        }
    }
}

/// What one link's capture says of the measured flow and the echo
/// replies.
struct Seen<'a> {
    down: Option<u32>,
    /// A link the mobile node visits away from home.
    foreign: bool,
    route_optimised: &'a mut HashSet<u64>,
    tunnelled: &'a mut HashSet<u64>,
    echo_paths: &'a mut HashMap<u16, &'static str>,
}

impl Seen<'_> {
    /// Notes route-optimised and tunnelled packets of the measured flow,
    /// and the path of echo replies.
    fn note(&mut self, repr: &PacketRepr) {
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
                if let Some((flow, seq, _)) = parse_flow(d) {
                    if Some(flow) == self.down && type2(inner) {
                        self.route_optimised.insert(seq);
                    }
                    if Some(flow) == self.down && tunnelled {
                        self.tunnelled.insert(seq);
                    }
                }
            }
            UpperRepr::Icmpv6(i) if i.msg_type == common::wire::icmpv6::ECHO_REPLY => {
                if let (Some((_, seq)), true) = (i.echo(), self.foreign) {
                    let path = if tunnelled {
                        "tunnelled"
                    } else if type2(inner) {
                        "optimised"
                    } else {
                        return;
                    };
                    self.echo_paths.insert(seq, path);
                }
            }
            _ => {}
        }
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
