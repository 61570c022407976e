//! The real daemons on the real demo's topology: throughput and CPU with
//! the mobile node away, against the kernel in the same namespaces, and
//! the real demo's handoff latency against the simulated one. One run
//! measures, in this order:
//!
//! 1. **Baselines** on the same namespaces and veths (rt, ha, cn, mn):
//!    the kernel alone (addresses on the veths, `forwarding=1` in rt,
//!    static routes), once direct (the route-optimised path) and once
//!    forwarded through the home agent's namespace (`forwarding=1` there
//!    too, policy routes by incoming interface in rt: the tunnelled path's
//!    hops without the encapsulation, as kernels without ip6_tunnel can);
//!    then our router process alone (`testbed router`) between
//!    two kernel hosts (transmit offload off on their veths, as the router
//!    needs).
//! 2. **Our stack**: `ha`, `cn`, `mn` with the kernel routing in rt as in
//!    the kernel's rows and charon's (radvd advertising each link's
//!    prefix, from which our nodes take their addresses and default
//!    router; our router process would carry each tunnelled frame twice
//!    in user space and be the limit measured), the node on access A and
//!    bound, route optimised (`mode: ipsec`), through the home agent
//!    (`mode: none`), and through the home agent with the tunnel between
//!    care-of address and home agent in ESP (AES-256-GCM, static keys, a
//!    transport pair whose selector is any local address ↔ the home agent,
//!    protocol 41; the home agent's mirror). A ping is traced first, and
//!    the ESP row checks that the home agent's inbound tunnel SA counted it.
//!    Then the best alternative in the same namespaces: the kernel hosts
//!    through the HA's namespace with strongSwan's charon + kernel-libipsec
//!    in mn and ha keeping an ESP tunnel (AES-256-GCM, as ours) between
//!    the node's address on access A and the HA for the home address ↔
//!    cn (needs charon: `scripts/test.sh` installs it).
//! 3. For every path: iperf3 from the node (bound to its home address, or
//!    to its address on access A for the kernel and router-only rows) to
//!    the correspondent: TCP `-t 5` three times (median Mbit/s); UDP with
//!    64-byte datagrams for 2 s, once as fast as iperf3 sends (`-b 0`:
//!    datagrams delivered per second, the loss, and where along the path
//!    they were lost, from the router's, the daemons' and the kernel's
//!    counters) and once paced at 20 000 a second (which every path
//!    carries, so the CPU per datagram is not inflated by work later
//!    thrown away). The user and system CPU time of the router and every
//!    daemon (from /proc/PID/stat) and iperf3's own (from its report) is
//!    given per GB of TCP payload and per UDP datagram.
//! 4. The real demo (`testbed::real::demo::run`) for IPsec route
//!    optimisation and return routability against the simulator
//!    (`testbed::demo::run`): mean away-from-home handoff latency, and
//!    the ratio.
//!
//! To see where the time goes inside a process, `perf record -e
//! cpu-clock -g -p PID` on a daemon while a row runs works on machines
//! without hardware counters.
//!
//! Links have no delay here (the router's link model still queues every
//! frame) so throughput is the stack's, not the demo's 30 ms home link;
//! the handoff comparison keeps the demo's delays. The machine is shared
//! with builds: read the rows of one run against each other.
//!
//! ```text
//! cargo build --release -p mn -p cn -p ha -p testbed
//! cargo bench -p testbed --bench daemons
//! cargo bench -p testbed --bench daemons -- router tunnel-esp   # only these rows
//! ```
//!
//! Needs root, iperf3, ethtool, radvd (`apt-get install iperf3 ethtool
//! radvd`), charon
//! (the packages `scripts/test.sh` installs) and
//! the daemons built in release next to `target/release/testbed`;
//! otherwise it says what is missing and exits 0. Logs and configs stay
//! in `target/tmp/bench-daemons/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitCode};
use std::time::Duration;

use common::node::RouteOptimisation;
use common::wire::MacAddr;
use serde_json::Value;
use testbed::harness::netns::{check_bounded, is_root, wait_for, wait_until, Netns, Process};
use testbed::harness::strongswan::{self, Auth, Charon, CharonConfig, ChildConfig, Role};
use testbed::real::demo::{self as real, Bins};
use testbed::topology::{Setup, ACCESS_A, CN, CN_PREFIX, HA, HOA, HOME_PREFIX};

const COMMAND: &str = "cargo bench -p testbed --bench daemons";
const TCP_SECS: u32 = 5;
const TCP_RUNS: usize = 3;
const UDP_SECS: u32 = 2;
/// Datagrams per second of the paced UDP run: what every path should
/// carry, so its CPU per datagram is not inflated by work later dropped.
const UDP_PACED: u64 = 20_000;
const UDP_LEN: u64 = 64;
const PORT: &str = "5201";
/// The node's address on access A where the kernel holds it.
const KERNEL_COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);

type R<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The router namespace's kernel address on a prefix (kernel-only rows).
fn router_on(prefix: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(prefix) | 0xff)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scenario {
    Kernel,
    KernelViaHa,
    /// Direct, with transmit offload off on the hosts' veths (as the
    /// router needs).
    KernelTxOff,
    Router,
    Daemons {
        mode: RouteOptimisation,
        esp: bool,
    },
    /// The kernel hosts through the HA's namespace, with charon +
    /// kernel-libipsec in mn and ha keeping an ESP tunnel between the
    /// node's address on access A and the HA for the home address ↔ cn:
    /// the best alternative to our ESP tunnel row.
    Charon,
}

impl Scenario {
    const ALL: [Scenario; 8] = [
        Scenario::Kernel,
        Scenario::KernelViaHa,
        Scenario::KernelTxOff,
        Scenario::Router,
        Scenario::Daemons {
            mode: RouteOptimisation::Ipsec,
            esp: false,
        },
        Scenario::Daemons {
            mode: RouteOptimisation::None,
            esp: false,
        },
        Scenario::Daemons {
            mode: RouteOptimisation::None,
            esp: true,
        },
        Scenario::Charon,
    ];

    /// Our ESP tunnel row, which the charon row is the baseline of.
    const OUR_ESP_TUNNEL: Scenario = Scenario::Daemons {
        mode: RouteOptimisation::None,
        esp: true,
    };

    fn name(self) -> &'static str {
        match self {
            Scenario::Kernel => "kernel only, direct",
            Scenario::KernelViaHa => "kernel only, forwarded via the HA",
            Scenario::KernelTxOff => "kernel only, direct, tx offload off",
            Scenario::Router => "our router only (kernel hosts)",
            Scenario::Daemons {
                mode: RouteOptimisation::Ipsec,
                ..
            } => "daemons, route optimised (ipsec)",
            Scenario::Daemons { esp: false, .. } => "daemons, tunnel via HA (none)",
            Scenario::Daemons { esp: true, .. } => "daemons, tunnel via HA + ESP",
            Scenario::Charon => "kernel via HA + charon/kernel-libipsec ESP tunnel",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Scenario::Kernel => "kernel",
            Scenario::KernelViaHa => "kernel-via-ha",
            Scenario::KernelTxOff => "kernel-tx-off",
            Scenario::Router => "router",
            Scenario::Daemons {
                mode: RouteOptimisation::Ipsec,
                ..
            } => "ro",
            Scenario::Daemons { esp: false, .. } => "tunnel",
            Scenario::Daemons { esp: true, .. } => "tunnel-esp",
            Scenario::Charon => "charon",
        }
    }

    /// The kernel row of the same path.
    fn kernel(self) -> Scenario {
        match self {
            Scenario::KernelViaHa
            | Scenario::Charon
            | Scenario::Daemons {
                mode: RouteOptimisation::None,
                ..
            } => Scenario::KernelViaHa,
            _ => Scenario::Kernel,
        }
    }

    /// The row this one adds to.
    fn step(self) -> Option<Scenario> {
        match self {
            Scenario::Kernel => None,
            Scenario::KernelViaHa | Scenario::KernelTxOff => Some(Scenario::Kernel),
            Scenario::Charon => Some(Scenario::KernelViaHa),
            Scenario::Router => Some(Scenario::KernelTxOff),
            Scenario::Daemons {
                mode: RouteOptimisation::Ipsec,
                ..
            } => Some(Scenario::Kernel),
            Scenario::Daemons { esp: false, .. } => Some(Scenario::Daemons {
                mode: RouteOptimisation::Ipsec,
                esp: false,
            }),
            Scenario::Daemons { mode, esp: true } => Some(Scenario::Daemons { mode, esp: false }),
        }
    }
}

/// One path set up and ready for iperf3. Fields drop in order: the
/// programs stop before their namespaces go.
struct Env {
    server: Option<Process>,
    /// (label, process): the router (ours or radvd) first, then the
    /// daemons.
    procs: Vec<(&'static str, Process)>,
    /// (label, charon) on the charon path, labelled by the namespace.
    charons: Vec<(&'static str, Charon)>,
    router_stdin: Option<ChildStdin>,
    /// The iperf3 client's address in the mn namespace.
    src: Ipv6Addr,
    dir: PathBuf,
    /// For the daemons' status, on a daemons path.
    bins: Option<Bins>,
    hosts: real::Hosts,
}

fn ip(ns: &Netns, args: &[&str]) -> R<()> {
    let mut a = vec!["ip"];
    a.extend_from_slice(args);
    ns.check(&a).map(|_| ()).map_err(err)
}

fn tx_off(ns: &Netns, dev: &str) -> R<()> {
    ns.check(&["ethtool", "-K", dev, "tx", "off"])
        .map(|_| ())
        .map_err(|e| format!("ethtool -K {dev} tx off (apt-get install ethtool): {e}"))
}

/// The router's link-local address on the link of `port`, from its MAC.
fn router_link_local(rt: &Netns, port: &str) -> R<Ipv6Addr> {
    let text = rt
        .check(&["cat", &format!("/sys/class/net/{port}/address")])
        .map_err(err)?;
    let b: Vec<u8> = text
        .trim()
        .split(':')
        .filter_map(|x| u8::from_str_radix(x, 16).ok())
        .collect();
    let mac: [u8; 6] = b.try_into().map_err(|_| format!("{port}: MAC {text:?}"))?;
    Ok(common::nd::link_local(MacAddr(mac)))
}

/// The node's binding update entry for `peer`, once bound.
fn bound_with(mn: &Value, peer: Ipv6Addr) -> bool {
    mn["status"]["binding_updates"].as_array().is_some_and(|b| {
        b.iter().any(|u| {
            u["peer"].as_str() == Some(&peer.to_string()) && u["bound"].as_bool() == Some(true)
        })
    })
}

/// Packets an SA (by SPI) counted in a daemon's status.
fn sa_packets(status: &Value, spi: u32) -> u64 {
    let spi_of = |s: &Value| {
        s["spi"]
            .as_str()
            .and_then(|x| u32::from_str_radix(x.trim_start_matches("0x"), 16).ok())
    };
    status["status"]["sas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| spi_of(s) == Some(spi))
        .filter_map(|s| s["packets"].as_u64())
        .sum()
}

fn drops(status: &Value) -> String {
    let s = &status["status"];
    format!("drops {}, driver {}", s["drops"], status["driver"]["drops"])
}

/// The router namespace's ports on the path, their links' names and
/// prefixes.
const PORTS: [(&str, &str, Ipv6Addr); 3] = [
    ("r-mn1", "access-a", ACCESS_A),
    ("r-cn0", "cn", CN_PREFIX),
    ("r-ha", "home", HOME_PREFIX),
];

/// The kernel routes in rt: forwarding on, an address of its own on each
/// port of the path.
fn kernel_forwarding(rt: &Netns) -> R<()> {
    rt.set_sysctl("net.ipv6.conf.all.forwarding", "1")
        .map_err(err)?;
    for (dev, _, prefix) in PORTS {
        rt.add_address(dev, &format!("{}/64", router_on(prefix)))
            .map_err(err)?;
    }
    Ok(())
}

/// The kernel router for our daemons, the one the kernel's and charon's
/// rows go through: rt forwards, and radvd advertises each link's prefix
/// (our nodes take their addresses and default router from the RAs).
/// Our router process would carry each tunnelled frame twice in user
/// space, and be the limit of what is measured.
fn kernel_router(rt: &Netns, dir: &Path) -> R<Process> {
    kernel_forwarding(rt)?;
    let mut conf = String::new();
    for (dev, _, prefix) in PORTS {
        let _ = writeln!(
            conf,
            "interface {dev} {{ AdvSendAdvert on; MinRtrAdvInterval 3; MaxRtrAdvInterval 4; \
             prefix {prefix}/64 {{ }}; }};"
        );
    }
    let file = dir.join("radvd.conf");
    fs::write(&file, conf).map_err(err)?;
    let (file, pid) = (file.to_string_lossy(), dir.join("radvd.pid"));
    real::spawn(
        rt,
        Path::new("radvd"),
        &[
            "--nodaemon",
            "--logmethod",
            "stderr",
            "--config",
            &file,
            "--pidfile",
            &pid.to_string_lossy(),
        ],
        dir,
        "radvd",
    )
    .map_err(err)
}

fn kernel_hosts(hosts: &real::Hosts, via_ha: bool) -> R<()> {
    let (rt, mn, cn, ha) = (&hosts.rt, &hosts.mn, &hosts.cns[0], &hosts.ha);
    kernel_forwarding(rt)?;
    mn.add_address("mn1", &format!("{KERNEL_COA}/64"))
        .map_err(err)?;
    ip(
        mn,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &router_on(ACCESS_A).to_string(),
        ],
    )?;
    cn.add_address("cn0", &format!("{CN}/64")).map_err(err)?;
    ip(
        cn,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &router_on(CN_PREFIX).to_string(),
        ],
    )?;
    if !via_ha {
        return Ok(());
    }
    // No encapsulation (this kernel may lack ip6_tunnel): the same hops,
    // mn -> rt -> ha -> rt -> cn and back, by the interface a packet came
    // in on: from access A or the correspondent's link to the HA, from
    // the HA by the main table.
    ha.set_sysctl("net.ipv6.conf.all.forwarding", "1")
        .map_err(err)?;
    ha.add_address("ha0", &format!("{HA}/64")).map_err(err)?;
    ip(
        ha,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &router_on(HOME_PREFIX).to_string(),
        ],
    )?;
    ip(rt, &["-6", "rule", "add", "iif", "r-mn1", "table", "100"])?;
    ip(rt, &["-6", "rule", "add", "iif", "r-cn0", "table", "100"])?;
    ip(
        rt,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &HA.to_string(),
            "dev",
            "r-ha",
            "table",
            "100",
        ],
    )
}

/// charon in ha, then in mn initiating: an ESP tunnel (AES-256-GCM, as
/// our ESP row) between the node's address on access A and the HA, for
/// the home address ↔ the correspondent's prefix, as a gateway protects
/// a site. kernel-libipsec routes each side's remote selector into its
/// ipsec0 TUN device, from an address of its own inside the local
/// selector (or it refuses the child): the home address on mn's
/// loopback, and on ha's one in the correspondent's prefix. The HA
/// forwards between ipsec0 and its link.
fn charon_tunnel(hosts: &real::Hosts, dir: &Path) -> R<Vec<(&'static str, Charon)>> {
    let (hoa, site) = (format!("{HOA}/128"), format!("{CN_PREFIX}/64"));
    hosts
        .mn
        .add_loopback_address(IpAddr::V6(HOA))
        .map_err(err)?;
    let gateway = Ipv6Addr::from(u128::from(CN_PREFIX) | 0xfe);
    hosts
        .ha
        .add_loopback_address(IpAddr::V6(gateway))
        .map_err(err)?;
    let config = |role, us: &str, them: &str, local: Ipv6Addr, ts: (&str, &str)| {
        let mut c = CharonConfig::new(role, us, them, Auth::Psk("daemons-bench".into()));
        c.local_addrs = vec![IpAddr::V6(local)];
        c.esp_proposals = real::TUNNEL_ALGORITHM.keyword().into();
        c.children = vec![ChildConfig::tunnel("tunnel", ts.0, ts.1)];
        c.key_logging = false;
        c.dos_protection = false;
        c
    };
    let ha = config(
        Role::Responder,
        "ha.example",
        "mn.example",
        HA,
        (&site, &hoa),
    );
    let ha = Charon::start(&hosts.ha, &dir.join("charon-ha"), ha).map_err(err)?;
    ha.load().map_err(err)?;
    let mut mn = config(
        Role::Initiator,
        "mn.example",
        "ha.example",
        KERNEL_COA,
        (&hoa, &site),
    );
    mn.remote_addrs = vec![IpAddr::V6(HA)];
    let mn = Charon::start(&hosts.mn, &dir.join("charon-mn"), mn).map_err(err)?;
    mn.load().map_err(err)?;
    mn.initiate("tunnel").map_err(err)?;
    mn.wait_child_installed("tunnel", Duration::from_secs(10))
        .map_err(err)?;
    Ok(vec![("mn", mn), ("ha", ha)])
}

/// The real demo's setup in `mode` with no link delays.
fn undelayed(mode: RouteOptimisation) -> Setup {
    let mut setup = Setup::new(1, mode);
    setup.home_delay = Duration::ZERO;
    setup.cn_delay = Duration::ZERO;
    setup.access_delay = Duration::ZERO;
    setup
}

/// A daemon's `status --json`.
fn status(bin: &Path, role: &str, dir: &Path) -> R<Value> {
    real::status(bin, role, dir).ok_or_else(|| format!("{role}: no status on its control socket"))
}

/// Builds `path` in fresh namespaces, up to a traced ping.
fn prepare(path: Scenario, bins: &Bins, dir: &Path) -> R<Env> {
    let _ = fs::remove_dir_all(dir);
    match path {
        Scenario::Daemons { mode, esp } => {
            // The real demo's files without link delays, plus the tunnel
            // pair for ESP.
            let extras = real::Extras {
                esp_tunnel: esp,
                capture: false,
            };
            real::write_configs(&undelayed(mode).network(), dir, extras).map_err(err)?;
        }
        _ => {
            fs::create_dir_all(dir).map_err(err)?;
            let router =
                real::router_yaml(&undelayed(RouteOptimisation::None).network(), dir, false);
            fs::write(dir.join("router.yaml"), router).map_err(err)?;
        }
    }
    let hosts = real::build_hosts(&undelayed(RouteOptimisation::None).network()).map_err(err)?;
    let mut env = Env {
        server: None,
        procs: vec![],
        charons: vec![],
        router_stdin: None,
        src: KERNEL_COA,
        dir: dir.to_path_buf(),
        bins: None,
        hosts,
    };
    match path {
        Scenario::Kernel | Scenario::KernelViaHa | Scenario::KernelTxOff => {
            kernel_hosts(&env.hosts, path == Scenario::KernelViaHa)?;
            if path == Scenario::KernelTxOff {
                tx_off(&env.hosts.mn, "mn1")?;
                tx_off(&env.hosts.cns[0], "cn0")?;
            }
        }
        Scenario::Charon => {
            kernel_hosts(&env.hosts, true)?;
            env.charons = charon_tunnel(&env.hosts, dir)?;
            env.src = HOA;
        }
        Scenario::Router => {
            let (router, stdin) = real::start_router(&env.hosts, bins, dir).map_err(err)?;
            env.procs.push(("router", router));
            env.router_stdin = Some(stdin);
            let (mn, cn) = (&env.hosts.mn, &env.hosts.cns[0]);
            mn.add_address("mn1", &format!("{KERNEL_COA}/64"))
                .map_err(err)?;
            cn.add_address("cn0", &format!("{CN}/64")).map_err(err)?;
            for (ns, dev, port) in [(mn, "mn1", "r-mn1"), (cn, "cn0", "r-cn0")] {
                tx_off(ns, dev)?;
                let ll = router_link_local(&env.hosts.rt, port)?.to_string();
                ip(
                    ns,
                    &["-6", "route", "replace", "default", "via", &ll, "dev", dev],
                )?;
            }
        }
        Scenario::Daemons { mode, esp } => {
            let radvd = kernel_router(&env.hosts.rt, dir)?;
            env.procs.push(("radvd", radvd));
            // Away from the start: only access A has carrier.
            real::carrier(&env.hosts.rt, &["r-mn0", "r-mn2"], &[]).map_err(err)?;
            for (role, ns, bin) in [
                ("ha", &env.hosts.ha, &bins.ha),
                ("cn", &env.hosts.cns[0], &bins.cn),
                ("mn", &env.hosts.mn, &bins.mn),
            ] {
                let config = dir.join(format!("{role}.yaml"));
                let p = real::spawn(
                    ns,
                    bin,
                    &["run", "--config", &config.to_string_lossy()],
                    dir,
                    role,
                )
                .map_err(err)?;
                env.procs.push((role, p));
            }
            let ro = mode == RouteOptimisation::Ipsec;
            wait_for(Duration::from_secs(20), "the mobile node bound", || {
                let s = status(&bins.mn, "mn", dir).map_err(|problem| {
                    testbed::harness::Error::Parse {
                        what: "mn status".into(),
                        problem,
                    }
                })?;
                let ok = bound_with(&s, HA) && (!ro || bound_with(&s, CN));
                Ok(ok.then_some(()))
            })
            .map_err(|e| format!("{e}\nmn log:\n{}", log_tail(dir, "mn")))?;
            env.src = HOA;
            env.bins = Some(bins.clone());
            let cn = status(&bins.cn, "cn", dir)?;
            let cn_bindings = cn["status"]["bindings"].as_array().map_or(0, Vec::len);
            if ro != (cn_bindings == 1) {
                return Err(format!(
                    "the correspondent has {cn_bindings} bindings in mode {mode:?}"
                ));
            }
            let ha_before = status(&bins.ha, "ha", dir)?;
            let ping =
                env.hosts
                    .mn
                    .wait_ping(IpAddr::V6(HOA), IpAddr::V6(CN), Duration::from_secs(10));
            let ha_after = status(&bins.ha, "ha", dir)?;
            if esp {
                let opened = sa_packets(&ha_after, 0x300) - sa_packets(&ha_before, 0x300);
                let sealed = sa_packets(&ha_after, 0x301) - sa_packets(&ha_before, 0x301);
                if ping.is_err() || opened == 0 || sealed == 0 {
                    return Err(format!(
                        "ESP on the tunnel: ping {}, the HA opened {opened} and sealed {sealed} \
                         tunnel packets; HA {}; MN {}",
                        if ping.is_ok() {
                            "answered"
                        } else {
                            "unanswered"
                        },
                        drops(&ha_after),
                        status(&bins.mn, "mn", dir).map_or_else(|e| e, |s| drops(&s))
                    ));
                }
                eprintln!(
                    "   ESP traced: a ping through the tunnel, the HA opened {opened} and \
                     sealed {sealed} packets on SPIs 0x300/0x301"
                );
            }
            ping.map_err(|e| format!("{e}; HA {}", drops(&ha_after)))?;
        }
    }
    if !matches!(path, Scenario::Daemons { .. }) {
        env.hosts
            .mn
            .wait_ping(IpAddr::V6(env.src), IpAddr::V6(CN), Duration::from_secs(10))
            .map_err(err)?;
    }
    let server = real::spawn(
        &env.hosts.cns[0],
        Path::new("iperf3"),
        &["-s", "-B", &CN.to_string(), "-p", PORT, "--forceflush"],
        dir,
        "iperf3-server",
    )
    .map_err(err)?;
    wait_until(Duration::from_secs(5), "iperf3 -s listening", || {
        server.output().contains("listening")
    })
    .map_err(err)?;
    env.server = Some(server);
    Ok(env)
}

fn log_tail(dir: &Path, name: &str) -> String {
    let text = fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// User and system clock ticks of a process (all its threads).
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0, 0);
    };
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return (0, 0);
    };
    let f: Vec<&str> = fields.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (n(11), n(12))
}

/// CPU seconds, user and system.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    user: f64,
    system: f64,
}

impl Cpu {
    fn total(self) -> f64 {
        self.user + self.system
    }

    fn scaled(self, k: f64) -> Cpu {
        Cpu {
            user: self.user * k,
            system: self.system * k,
        }
    }

    fn add(&mut self, o: Cpu) {
        self.user += o.user;
        self.system += o.system;
    }
}

fn clock_ticks_per_second() -> f64 {
    let mut cmd = Command::new("getconf");
    cmd.arg("CLK_TCK");
    check_bounded(cmd, Duration::from_secs(5))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What one iperf3 run gave.
#[derive(Debug, Default, Clone)]
struct Run {
    /// Payload bytes the receiver got.
    bytes: u64,
    seconds: f64,
    bits_per_second: f64,
    retransmits: u64,
    /// UDP: datagrams sent and delivered.
    sent: u64,
    delivered: u64,
    /// CPU during the run, by label (router, daemons, iperf3).
    cpu: BTreeMap<&'static str, Cpu>,
}

impl Env {
    fn cpu(&self) -> Vec<(&'static str, (u64, u64))> {
        let procs = self.procs.iter().map(|(l, p)| (*l, p.pid()));
        let charons = self.charons.iter().map(|(l, c)| (*l, c.pid()));
        procs
            .chain(charons)
            .map(|(l, pid)| (l, cpu_ticks(pid)))
            .collect()
    }

    /// The router's `status` line.
    fn router_status(&mut self) -> Option<Value> {
        let stdin = self.router_stdin.as_mut()?;
        let log = self.dir.join("router.log");
        let count = |text: &str| text.lines().filter(|l| l.starts_with('{')).count();
        let before = count(&fs::read_to_string(&log).unwrap_or_default());
        stdin.write_all(b"status\n").ok()?;
        stdin.flush().ok()?;
        let line = wait_for(Duration::from_secs(5), "router status", || {
            let text = fs::read_to_string(&log).unwrap_or_default();
            Ok((count(&text) > before)
                .then(|| text.lines().rfind(|l| l.starts_with('{')).map(String::from))
                .flatten())
        })
        .ok()?;
        serde_json::from_str(&line).ok()
    }

    /// Every counter along the path: the router's frames per link (and
    /// its send errors), the daemons' drivers (packets in and out of
    /// links and TUN, drops by reason), the kernel's drops on the mobile
    /// node's TUN.
    fn counters(&mut self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        self.kernel_drops(&mut m);
        if self.router_stdin.is_none() {
            self.kernel_router_frames(&mut m);
        } else if let Some(v) = self.router_status() {
            for l in v["links"].as_array().into_iter().flatten() {
                let name = l["name"].as_str().unwrap_or("?");
                m.insert(format!("router {name}"), l["sent"].as_u64().unwrap_or(0));
                for k in [
                    "lost",
                    "too_big",
                    "send_errors",
                    "queue_full",
                    "port_down",
                    "unreachable",
                ] {
                    *m.entry(format!("router drop {k}")).or_default() += l[k].as_u64().unwrap_or(0);
                }
            }
        }
        let Some(bins) = &self.bins else { return m };
        for (role, bin) in [("mn", &bins.mn), ("ha", &bins.ha), ("cn", &bins.cn)] {
            let Ok(s) = status(bin, role, &self.dir) else {
                continue;
            };
            let d = &s["driver"];
            for k in ["link_received", "link_sent", "tun_received", "tun_sent"] {
                m.insert(format!("{role} {k}"), d[k].as_u64().unwrap_or(0));
            }
            for (k, v) in d["drops"].as_object().into_iter().flatten() {
                m.insert(format!("{role} drop {k}"), v.as_u64().unwrap_or(0));
            }
            for (k, v) in s["status"]["drops"].as_object().into_iter().flatten() {
                m.insert(format!("{role} engine drop {k}"), v.as_u64().unwrap_or(0));
            }
            for sa in s["status"]["sas"].as_array().into_iter().flatten() {
                let spi = sa["spi"]
                    .as_str()
                    .and_then(|x| u32::from_str_radix(x.trim_start_matches("0x"), 16).ok())
                    .unwrap_or(0);
                let dir = sa["direction"].as_str().unwrap_or("?");
                m.insert(
                    format!("{role} SA {spi:#x} {dir} packets"),
                    sa["packets"].as_u64().unwrap_or(0),
                );
            }
        }
        m
    }

    /// Where the kernel routes in rt: the frames on each link of the path
    /// (both ways through rt's port, as our router counts a link's), and
    /// what rt's ports dropped.
    fn kernel_router_frames(&self, m: &mut BTreeMap<String, u64>) {
        for (dev, link, _) in PORTS {
            let Some(v) = link_stats(&self.hosts.rt, dev) else {
                continue;
            };
            let s = &v[0]["stats64"];
            let n = |way: &str, k: &str| s[way][k].as_u64().unwrap_or(0);
            m.insert(
                format!("router {link}"),
                n("rx", "packets") + n("tx", "packets"),
            );
            *m.entry("router drop kernel".into()).or_default() +=
                n("rx", "dropped") + n("tx", "dropped");
        }
    }

    /// The kernel's drops on the TUN devices of the path (the daemons',
    /// kernel-libipsec's in mn and ha) and at the receiver's UDP socket
    /// (iperf3's, in cn).
    fn kernel_drops(&self, m: &mut BTreeMap<String, u64>) {
        let cn = &self.hosts.cns[0];
        if let Ok(text) = cn.check(&["cat", "/proc/net/snmp6"]) {
            let errors = text
                .lines()
                .find_map(|l| l.strip_prefix("Udp6RcvbufErrors"))
                .and_then(|v| v.trim().parse().ok());
            if let Some(n) = errors {
                m.insert("cn kernel UDP receive buffer full".into(), n);
            }
        }
        for (role, ns, dev) in [
            ("mn", &self.hosts.mn, "mip6"),
            ("cn", cn, "mip6"),
            ("ha", &self.hosts.ha, "mip6"),
            ("mn", &self.hosts.mn, "ipsec0"),
            ("ha", &self.hosts.ha, "ipsec0"),
        ] {
            let Some(v) = link_stats(ns, dev) else {
                continue;
            };
            for way in ["rx", "tx"] {
                m.insert(
                    format!("{role} kernel {dev} {way} dropped"),
                    v[0]["stats64"][way]["dropped"].as_u64().unwrap_or(0),
                );
            }
        }
    }

    fn iperf(&self, args: &[&str], hz: f64) -> R<Run> {
        let (src, dst) = (self.src.to_string(), CN.to_string());
        let mut a = vec!["iperf3", "-c", &dst, "-B", &src, "-p", PORT, "-J"];
        a.extend_from_slice(args);
        let before = self.cpu();
        let out = self
            .hosts
            .mn
            .run_timeout(&a, Duration::from_secs(30))
            .map_err(err)?;
        let after = self.cpu();
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "iperf3 {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if let Some(e) = v["error"].as_str() {
            return Err(format!("iperf3 {args:?}: {e}"));
        }
        let end = &v["end"];
        let received = &end["sum_received"];
        let mut run = Run {
            bytes: received["bytes"].as_u64().unwrap_or(0),
            seconds: received["seconds"].as_f64().unwrap_or(0.0),
            bits_per_second: received["bits_per_second"].as_f64().unwrap_or(0.0),
            retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
            ..Run::default()
        };
        if args.contains(&"-u") {
            run.sent = end["sum_sent"]["packets"].as_u64().unwrap_or(0);
            run.delivered = received["packets"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(received["lost_packets"].as_u64().unwrap_or(0));
        }
        for ((label, b), (_, a)) in before.iter().zip(&after) {
            let cpu = Cpu {
                user: a.0.saturating_sub(b.0) as f64 / hz,
                system: a.1.saturating_sub(b.1) as f64 / hz,
            };
            run.cpu.insert(label, cpu);
        }
        let pct = &end["cpu_utilization_percent"];
        let secs = end["sum_sent"]["seconds"].as_f64().unwrap_or(run.seconds);
        for (label, side) in [("iperf3 snd", "host"), ("iperf3 rcv", "remote")] {
            let share = |k: &str| pct[format!("{side}_{k}")].as_f64().unwrap_or(0.0) / 100.0 * secs;
            let cpu = Cpu {
                user: share("user"),
                system: share("system"),
            };
            run.cpu.insert(label, cpu);
        }
        Ok(run)
    }
}

/// Everything measured on one path.
#[derive(Debug, Default)]
struct Row {
    tcp: Vec<Run>,
    /// UDP as fast as iperf3 sends (`-b 0`), and paced at [`UDP_PACED`].
    udp: Option<Run>,
    paced: Option<Run>,
    /// Frames the router put on the home link per frame on access A,
    /// during the TCP runs.
    home_per_access: Option<f64>,
    /// Counter changes during the UDP run (see [`Env::counters`]).
    udp_trail: BTreeMap<String, u64>,
    failed: Option<String>,
}

impl Row {
    fn tcp_mbps(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.tcp.iter().map(|r| r.bits_per_second / 1e6).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }

    fn udp_pps(&self) -> Option<f64> {
        self.udp
            .as_ref()
            .map(|u| u.delivered as f64 / u.seconds.max(1e-9))
    }

    /// CPU seconds per GB of payload over the TCP runs, by label.
    fn tcp_cpu_per_gb(&self) -> BTreeMap<&'static str, Cpu> {
        let gb: f64 = self.tcp.iter().map(|r| r.bytes as f64).sum::<f64>() / 1e9;
        let mut m: BTreeMap<&'static str, Cpu> = BTreeMap::new();
        for r in &self.tcp {
            for (l, c) in &r.cpu {
                m.entry(*l).or_default().add(c.scaled(1.0 / gb.max(1e-12)));
            }
        }
        m
    }
}

/// `ip -j -s link show DEV` in `ns`.
fn link_stats(ns: &Netns, dev: &str) -> Option<Value> {
    let text = ns.check(&["ip", "-j", "-s", "link", "show", dev]).ok()?;
    serde_json::from_str(&text).ok()
}

fn measure(env: &mut Env, hz: f64) -> R<Row> {
    let mut row = Row::default();
    let frames_before = env.counters();
    let t = TCP_SECS.to_string();
    for i in 0..TCP_RUNS {
        real::check_interrupted().map_err(err)?;
        let r = env.iperf(&["-t", &t], hz)?;
        eprintln!(
            "   TCP run {}: {:.0} Mbit/s, {} retransmits",
            i + 1,
            r.bits_per_second / 1e6,
            r.retransmits
        );
        row.tcp.push(r);
    }
    let d = delta(&frames_before, &env.counters());
    if let Some(access) = d.get("router access-a").filter(|n| **n > 0) {
        let home = d.get("router home").copied().unwrap_or(0);
        row.home_per_access = Some(home as f64 / *access as f64);
    }
    let before = env.counters();
    real::check_interrupted().map_err(err)?;
    let (len, secs) = (UDP_LEN.to_string(), UDP_SECS.to_string());
    let u = env.iperf(&["-u", "-l", &len, "-b", "0", "-t", &secs], hz)?;
    eprintln!("   UDP: {} of {} datagrams delivered", u.delivered, u.sent);
    row.udp = Some(u);
    row.udp_trail = delta(&before, &env.counters());
    real::check_interrupted().map_err(err)?;
    let rate = (UDP_PACED * UDP_LEN * 8).to_string();
    let u = env.iperf(&["-u", "-l", &len, "-b", &rate, "-t", &secs], hz)?;
    eprintln!(
        "   UDP at {} kpps: {} of {} datagrams delivered",
        UDP_PACED / 1000,
        u.delivered,
        u.sent
    );
    row.paced = Some(u);
    Ok(row)
}

fn delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    b.iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(a.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[expect(clippy::disallowed_methods, reason = "a bench reports its wall time")]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn stamp(p: &Path) -> String {
    let mut cmd = Command::new("date");
    cmd.args(["-u", "+%Y-%m-%dT%H:%M:%SZ", "-r"]).arg(p);
    check_bounded(cmd, Duration::from_secs(5))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The newest source file the daemons are built from.
fn newest_source(root: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack: Vec<PathBuf> = ["common/src", "mn/src", "cn/src", "ha/src"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(t) = mtime(&p) {
                newest = newest.max(Some(t));
            }
        }
    }
    newest
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_default()
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!("daemons: a bench; run it with `{COMMAND}`");
        return ExitCode::SUCCESS;
    }
    let testbed = PathBuf::from(env!("CARGO_BIN_EXE_testbed"));
    let mut missing = vec![];
    if !is_root() {
        missing.push("root (namespaces, veths, AF_PACKET)".to_string());
    }
    for (tool, package) in [
        ("iperf3", "iperf3"),
        ("ethtool", "ethtool"),
        ("ping", "iputils-ping"),
        ("radvd", "radvd"),
    ] {
        if testbed::harness::netns::resolve_program(tool).is_err() {
            missing.push(format!("{tool} (apt-get install {package})"));
        }
    }
    // charon's (root is asked for above).
    missing.extend(
        strongswan::missing_prerequisites()
            .into_iter()
            .filter(|m| !m.starts_with("root")),
    );
    let bins = match Bins::beside(&testbed) {
        Ok(b) => Some(b),
        Err(e) => {
            missing.push(e.to_string());
            None
        }
    };
    let (Some(bins), true) = (bins, missing.is_empty()) else {
        println!("daemons bench skipped: missing {}", missing.join("; "));
        return ExitCode::SUCCESS;
    };
    real::catch_interrupts();
    let started = now();
    let hz = clock_ticks_per_second();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-daemons");
    let load_start = loadavg();
    let mut header = String::new();
    let _ = writeln!(header, "command: {COMMAND}");
    let _ = writeln!(header, "binaries (release, beside target/release/testbed):");
    let newest = newest_source(&root);
    let mut stale = vec![];
    for (name, p) in [
        ("testbed", &bins.testbed),
        ("mn", &bins.mn),
        ("cn", &bins.cn),
        ("ha", &bins.ha),
    ] {
        let _ = writeln!(header, "   {name:<8} {} (built {})", p.display(), stamp(p));
        if mtime(p) < newest {
            stale.push(name);
        }
    }
    if !stale.is_empty() {
        let _ = writeln!(
            header,
            "   WARNING: {} older than the newest source: cargo build --release -p mn -p cn -p ha -p testbed",
            stale.join(", ")
        );
    }
    eprint!("{header}");

    // `cargo bench ... -- router tunnel-esp`: only those rows, no handoffs
    // (for profiling one path).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut rows: Vec<(Scenario, Row)> = vec![];
    for path in Scenario::ALL {
        if !only.is_empty() && !only.iter().any(|t| t == path.tag()) {
            continue;
        }
        if real::check_interrupted().is_err() {
            break;
        }
        eprintln!("{} ...", path.name());
        let t = now();
        let row =
            prepare(path, &bins, &out.join(path.tag())).and_then(|mut env| measure(&mut env, hz));
        let row = row.unwrap_or_else(|e| {
            eprintln!("   FAILED: {e}");
            Row {
                failed: Some(e),
                ..Row::default()
            }
        });
        eprintln!("   ({:.1} s)", t.elapsed().as_secs_f64());
        rows.push((path, row));
    }

    // Handoffs: the real demo against the simulator, same setups.
    let mut handoffs = vec![];
    let modes = [
        RouteOptimisation::Ipsec,
        RouteOptimisation::ReturnRoutability,
    ];
    for mode in modes.into_iter().filter(|_| only.is_empty()) {
        if real::check_interrupted().is_err() {
            break;
        }
        let name = testbed::demo::mode_name(mode);
        eprintln!("real demo, {name} ...");
        let t = now();
        let setup = Setup::new(1, mode);
        let (sim, _) = testbed::demo::run(&setup);
        let real = real::run(
            &setup.network(),
            &testbed::demo::timeline(),
            testbed::demo::name(&setup),
            &bins,
            &out.join(format!("demo-{name}")),
        );
        eprintln!("   ({:.1} s)", t.elapsed().as_secs_f64());
        handoffs.push((mode, setup, sim, real));
    }

    let mut o = String::new();
    let _ = writeln!(o, "\n## Daemons bench\n");
    o.push_str(&header);
    let _ = writeln!(
        o,
        "machine: {} CPUs, shared with builds (load average {} at start, {} at end); {:.0} s in all\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_start,
        loadavg(),
        started.elapsed().as_secs_f64()
    );
    o.push_str(&throughput_report(&rows));
    let (text, handoffs_failed) = handoff_report(&handoffs);
    o.push_str(&text);
    let _ = writeln!(o, "\nlogs and configs: {}", out.display());
    print!("{o}");
    summary(&rows, &handoffs);
    if handoffs_failed || rows.iter().any(|(_, r)| r.failed.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn ms(d: common::time::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// The headline figures for `scripts/bench.sh`.
fn summary(rows: &[(Scenario, Row)], handoffs: &[Handoff]) {
    let row = |p: Scenario| {
        rows.iter()
            .find(|(q, r)| *q == p && r.failed.is_none())
            .map(|(_, r)| r)
    };
    let (esp, charon) = (row(Scenario::OUR_ESP_TUNNEL), row(Scenario::Charon));
    let tcp = |r: Option<&Row>| r.and_then(Row::tcp_mbps);
    let pps = |r: Option<&Row>| r.and_then(Row::udp_pps).map(|p| p / 1e3);
    let cpu = |r: Option<&Row>, labels: &[&str]| {
        let m = r?.tcp_cpu_per_gb();
        Some(
            labels
                .iter()
                .filter_map(|l| m.get(l))
                .map(|c| c.total())
                .sum(),
        )
    };
    let figure = |what, ours, baseline, base, goal| {
        testbed::summary::Figure {
            item: "2 ESP data path",
            what,
            ours,
            baseline,
            base,
            goal,
        }
        .print();
    };
    figure(
        "TCP Mbit/s, MN–HA tunnel + ESP",
        tcp(esp),
        "charon + kernel-libipsec",
        tcp(charon),
        "≥ 2000 Mbit/s, ≈ 10× charon",
    );
    figure(
        "TCP Mbit/s, MN–HA tunnel + ESP",
        tcp(esp),
        "plain veth (kernel, direct)",
        tcp(row(Scenario::Kernel)),
        "-",
    );
    figure(
        "UDP 64 B kpps delivered, tunnel + ESP",
        pps(esp),
        "charon + kernel-libipsec",
        pps(charon),
        "-",
    );
    figure(
        "CPU s per GB, tunnel + ESP (ours: the daemons)",
        cpu(esp, &OURS),
        "charon's two",
        cpu(charon, &["mn", "ha"]),
        "-",
    );
    for (mode, setup, sim, real) in handoffs {
        let real = real
            .as_ref()
            .ok()
            .and_then(|r| r.run.away_latency().map(ms));
        let rtt = Some(ms(setup.rtts().0));
        let ipsec = *mode == RouteOptimisation::Ipsec;
        let item = "5 handoff latency";
        let what = format!("{} handoff, real demo, ms", testbed::demo::mode_name(*mode));
        testbed::summary::Figure {
            item,
            what: &what,
            ours: real,
            baseline: "MN–CN RTT",
            base: rtt,
            goal: if ipsec { "≤ 1.05 × RTT" } else { "-" },
        }
        .print();
        testbed::summary::Figure {
            item,
            what: &what,
            ours: real,
            baseline: "the simulator's",
            base: sim.away_latency().map(ms),
            goal: "≈ 1",
        }
        .print();
    }
}

const LABELS: [&str; 6] = ["router", "mn", "cn", "ha", "iperf3 snd", "iperf3 rcv"];
const OURS: [&str; 4] = ["router", "mn", "cn", "ha"];

fn ratio(x: Option<f64>, y: Option<f64>) -> String {
    match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => format!("{:.3}", x / y),
        _ => "-".into(),
    }
}

fn loss(u: &Run) -> String {
    format!(
        "{:.1} %",
        100.0 * (1.0 - u.delivered as f64 / u.sent.max(1) as f64)
    )
}

fn throughput_report(rows: &[(Scenario, Row)]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Throughput with the mobile node on access A: iperf3 from mn (bound to the home address; \
         to its address on access A in the kernel and router-only rows) to cn. Links without delay, \
         TUN MTU 1400, veth MTU 1500. TCP -t {TCP_SECS}, median of {TCP_RUNS}; UDP -u -l {UDP_LEN} \
         -t {UDP_SECS}, as fast as iperf3 sends (-b 0), then paced at {} kpps. × kernel: against \
         the kernel row of the same path (direct, or forwarded through the HA's namespace); \
         × step: against the row it adds to (kernel → tx offload off → our router; kernel → \
         daemons, route optimised → tunnel via the HA instead → + ESP).\n",
        UDP_PACED / 1000
    );
    let _ = writeln!(
        o,
        "| path | TCP Mbit/s | × kernel | × step | TCP runs | UDP -b 0: kpps delivered | sent kpps | loss | × kernel | × step | UDP {} kpps: loss | home-link frames per access-A frame |",
        UDP_PACED / 1000
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let find = |p: Option<Scenario>| {
        p.and_then(|p| rows.iter().find(|(q, r)| *q == p && r.failed.is_none()))
            .map(|(_, r)| r)
    };
    for (path, row) in rows {
        if let Some(e) = &row.failed {
            let _ = writeln!(o, "| {} | failed: {} |", path.name(), e.replace('\n', " "));
            continue;
        }
        let (k, st) = (find(Some(path.kernel())), find(path.step()));
        let runs: Vec<String> = row
            .tcp
            .iter()
            .map(|r| format!("{:.0}", r.bits_per_second / 1e6))
            .collect();
        let udp = row.udp.as_ref();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            path.name(),
            fmt_opt(row.tcp_mbps(), 0),
            ratio(row.tcp_mbps(), k.and_then(Row::tcp_mbps)),
            ratio(row.tcp_mbps(), st.and_then(Row::tcp_mbps)),
            runs.join(" / "),
            fmt_opt(row.udp_pps().map(|p| p / 1e3), 1),
            fmt_opt(udp.map(|u| u.sent as f64 / u.seconds.max(1e-9) / 1e3), 1),
            udp.map_or("-".into(), loss),
            ratio(row.udp_pps(), k.and_then(Row::udp_pps)),
            ratio(row.udp_pps(), st.and_then(Row::udp_pps)),
            row.paced.as_ref().map_or("-".into(), loss),
            fmt_opt(row.home_per_access, 2),
        );
    }
    let _ = writeln!(
        o,
        "\nCPU during the TCP runs (user+system from /proc/PID/stat; iperf3's own from its report), \
         in CPU seconds per GB of payload delivered, and the share of it in user space; `ours` adds \
         our router and the daemons (the kernel's forwarding in rt is mostly charged to the \
         process whose send crossed the veth: a veth delivers in the sender's context).\n"
    );
    let _ = writeln!(o, "| path | {} | ours |", LABELS.join(" | "));
    let _ = writeln!(o, "|---|{}---|", "---|".repeat(LABELS.len()));
    let cell = |c: Cpu, k: f64, digits: usize| {
        format!(
            "{:.digits$} ({:.0} % user)",
            c.total() * k,
            100.0 * c.user / c.total().max(1e-12)
        )
    };
    let ours = |m: &BTreeMap<&'static str, Cpu>| {
        let mut sum = None::<Cpu>;
        for l in OURS {
            if let Some(c) = m.get(l) {
                sum.get_or_insert_with(Cpu::default).add(*c);
            }
        }
        sum
    };
    for (path, row) in rows.iter().filter(|(_, r)| r.failed.is_none()) {
        let m = row.tcp_cpu_per_gb();
        let cells: Vec<String> = LABELS
            .iter()
            .map(|l| m.get(l).map_or("-".into(), |c| cell(*c, 1.0, 2)))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            path.name(),
            cells.join(" | "),
            ours(&m).map_or("-".into(), |c| cell(c, 1.0, 2))
        );
    }
    let _ = writeln!(
        o,
        "\nCPU during the paced UDP run ({} kpps of 64-byte datagrams), in µs per datagram \
         delivered.\n",
        UDP_PACED / 1000
    );
    let _ = writeln!(o, "| path | {} | ours |", LABELS.join(" | "));
    let _ = writeln!(o, "|---|{}---|", "---|".repeat(LABELS.len()));
    for (path, row) in rows {
        let Some(u) = &row.paced else { continue };
        let per = 1e6 / u.delivered.max(1) as f64;
        let cells: Vec<String> = LABELS
            .iter()
            .map(|l| u.cpu.get(l).map_or("-".into(), |c| cell(*c, per, 1)))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            path.name(),
            cells.join(" | "),
            ours(&u.cpu).map_or("-".into(), |c| cell(c, per, 1))
        );
    }
    let _ = writeln!(
        o,
        "\nWhere the datagrams of the UDP -b 0 run went (counters changed during it: the router's \
         frames per link, the daemons' drivers, drops by reason; `kernel DEV tx dropped` is the \
         kernel's, for a full TUN queue; `queue_full` and `link-queue-full` a link socket's full \
         receive queue; `cn kernel UDP receive buffer full` iperf3's socket):\n"
    );
    for (path, row) in rows {
        let Some(u) = &row.udp else { continue };
        if row.udp_trail.is_empty() {
            continue;
        }
        let trail: Vec<String> = row
            .udp_trail
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            o,
            "- {}: iperf3 sent {}, delivered {}; {}",
            path.name(),
            u.sent,
            u.delivered,
            trail.join(", ")
        );
    }
    o
}

type Handoff = (
    RouteOptimisation,
    Setup,
    testbed::demo::Run,
    Result<real::RealRun, real::Error>,
);

fn handoff_report(handoffs: &[Handoff]) -> (String, bool) {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nHandoff latency with the demo's setups (seed 1, links 30/20/0.2 ms), mean of the \
         handoffs away from home: the real demo (`testbed::real::demo::run`) against the \
         simulator (`testbed::demo::run`).\n"
    );
    let _ = writeln!(
        o,
        "| mode | real | simulated | real ÷ simulated | MN–CN RTT |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    let mut failed = false;
    for (mode, setup, sim, real) in handoffs {
        let name = testbed::demo::mode_name(*mode);
        let rtt = ms(setup.rtts().0);
        let si = sim.away_latency();
        match real {
            Ok(r) => {
                let re = r.run.away_latency();
                let _ = writeln!(
                    o,
                    "| {name} | {} ms | {} ms | {} | {rtt:.1} ms |",
                    fmt_opt(re.map(ms), 1),
                    fmt_opt(si.map(ms), 1),
                    ratio(re.map(ms), si.map(ms)),
                );
            }
            Err(e) => {
                failed = true;
                let _ = writeln!(
                    o,
                    "| {name} | failed: {e} | {} ms | - | {rtt:.1} ms |",
                    fmt_opt(si.map(ms), 1)
                );
            }
        }
    }
    (o, failed)
}
