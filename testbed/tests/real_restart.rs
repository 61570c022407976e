//! The home agent restarted (`kill -9`, started again on its store) in
//! namespaces with the real daemons (issue 14.4): the real demo's
//! topology and files (`testbed::real::demo`), static keys with ESP on
//! the tunnel, `store: ha.db` in the home agent's file, and the mobile
//! node moving between its two access links as fast as it sends BUs
//! (the next carrier switch as soon as the BU for the last one left).
//!
//! First the agent is killed in the middle of that storm, with a BU or
//! its BA in flight: the store opens, consistent, and once restarted the
//! agent takes the node's retransmission. Then the storm goes on, and the
//! agent is killed again just after acknowledging its last BU: the store
//! holds exactly that binding; restarted, the agent shows it before any
//! BU from the node, and a ping from the correspondent to the home address
//! is answered through the tunnel without one, its ESP accepted by the
//! node's anti-replay window. The same for the correspondent under IPsec
//! route optimisation; and an agent whose store is locked by another
//! program stops before the BA of a binding it could not keep. Needs
//! root, ping and the daemons built next to `testbed`; skipped otherwise
//! (under CI=true that is a failure).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
use std::time::Duration;

use common::io::{Clock, Store};
use common::node::{Persist, RouteOptimisation};
use serde_json::Value;
use testbed::harness::netns::{wait_for, Process, Signal};
use testbed::real::demo::{self as real, Bins, Extras, Hosts};
use testbed::real::traffic::wall_micros;
use testbed::topology::{Setup, ACCESS_A, ACCESS_B, CN, HA, HOA};

/// The home agent's outbound SAs: BAs (RFC 3776) and the tunnel.
const BA_SPI: u32 = 0x101;
const TUNNEL_SPI: u32 = 0x301;
/// The router's ports to the mobile node's interfaces on the home link,
/// access A and access B (the demo network's `mn_links`).
const HOME_PORT: &str = "r-mn0";
const A_PORT: &str = "r-mn1";
const B_PORT: &str = "r-mn2";
/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(20);

/// One namespace test at a time: the figures are measured, on 2 cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn prerequisites() -> Option<Bins> {
    let mut missing = vec![];
    if !testbed::harness::netns::is_root() {
        missing.push("root".to_string());
    }
    if !Path::new("/usr/bin/ping").exists() {
        missing.push("/usr/bin/ping".to_string());
    }
    let bins = Bins::beside(Path::new(env!("CARGO_BIN_EXE_testbed")));
    if let Err(e) = &bins {
        missing.push(e.to_string());
    }
    tools::prerequisites_met(&missing)
        .then(|| bins.ok())
        .flatten()
}

fn status(bin: &Path, role: &str, dir: &Path) -> testbed::harness::Result<Value> {
    real::status(bin, role, dir).ok_or_else(|| testbed::harness::Error::Parse {
        what: format!("{role} status"),
        problem: "no answer on its control socket".into(),
    })
}

/// The mobile node's entry for `peer`: (care-of, seq, bound).
fn update(mn: &Value, peer: Ipv6Addr) -> Option<(Ipv6Addr, u16, bool)> {
    let u = mn["status"]["binding_updates"]
        .as_array()?
        .iter()
        .find(|u| u["peer"].as_str() == Some(&peer.to_string()))?;
    Some((
        u["care_of"].as_str()?.parse().ok()?,
        u16::try_from(u["seq"].as_u64()?).ok()?,
        u["bound"].as_bool()?,
    ))
}

fn on_prefix(a: Ipv6Addr, prefix: Ipv6Addr) -> bool {
    a.segments()[..4] == prefix.segments()[..4]
}

/// Field `key` of the SA with `spi` in `direction` in a status.
fn sa(status: &Value, spi: u32, direction: &str, key: &str) -> u64 {
    let spi = format!("{spi:#010x}");
    status["status"]["sas"]
        .as_array()
        .and_then(|sas| {
            sas.iter()
                .find(|s| s["spi"] == spi.as_str() && s["direction"] == direction)
        })
        .and_then(|s| s[key].as_u64())
        .unwrap_or(0)
}

fn counter(status: &Value, key: &str) -> u64 {
    status["status"]["counters"][key].as_u64().unwrap_or(0)
}

/// A stored binding: home address, care-of address, sequence number.
type Stored = (Ipv6Addr, Ipv6Addr, u16);

/// The store's records, read as the restarted agent will read them: the
/// bindings, and the sequence marks by SPI.
fn read_store(path: &Path) -> (Vec<Stored>, Vec<(u32, u64)>) {
    let saved = Store::open(path)
        .and_then(|s| s.load(&Clock::new()))
        .unwrap_or_else(|e| panic!("the store does not open after kill -9: {e}"));
    let mut bindings = vec![];
    let mut marks = vec![];
    for p in saved {
        match p {
            Persist::Bound {
                home, care_of, seq, ..
            } => bindings.push((home, care_of, seq)),
            Persist::SequenceMark { spi, mark } => marks.push((spi, mark)),
            Persist::Unbound { .. } => panic!("a store holds no removals"),
        }
    }
    (bindings, marks)
}

fn mark(marks: &[(u32, u64)], spi: u32) -> u64 {
    marks.iter().find(|(s, _)| *s == spi).map_or(0, |m| m.1)
}

/// The real demo's namespaces, router and files, for one test.
struct Run {
    _router: (Process, ChildStdin),
    hosts: Hosts,
    bins: Bins,
    dir: PathBuf,
    /// The next access link: true for A.
    to_a: bool,
    /// Daemons started so far (each logs to its own file).
    started: usize,
    /// Held until the namespaces are gone (fields drop in order).
    _one: std::sync::MutexGuard<'static, ()>,
}

impl Run {
    /// The demo's files for `mode` with ESP on the tunnel, short home and
    /// correspondent links, and `store: ROLE.db` for `role`; the node has
    /// carrier on access B only (its first move is to A).
    fn new(name: &str, mode: RouteOptimisation, role: &str) -> Option<Run> {
        let one = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bins = prerequisites()?;
        let dir = tools::scratch(name);
        let mut setup = Setup::new(1, mode);
        setup.home_delay = common::time::Duration::from_millis(5);
        setup.cn_delay = common::time::Duration::from_millis(5);
        let extras = Extras {
            esp_tunnel: true,
            capture: false,
        };
        let net = setup.network();
        real::write_configs(&net, &dir, extras).unwrap();
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(dir.join(format!("{role}.yaml")))
            .unwrap();
        writeln!(file, "store: {role}.db").unwrap();
        let hosts = real::build_hosts(&net).unwrap();
        let router = real::start_router(&hosts, &bins, &dir).unwrap();
        real::carrier(&hosts.rt, &[HOME_PORT, A_PORT], &[]).unwrap();
        Some(Run {
            _router: router,
            hosts,
            bins,
            dir,
            to_a: true,
            started: 0,
            _one: one,
        })
    }

    fn mn(&self) -> testbed::harness::Result<Value> {
        status(&self.bins.mn, "mn", &self.dir)
    }

    fn status(&self, role: &str) -> Value {
        let bin = match role {
            "ha" => &self.bins.ha,
            "cn" => &self.bins.cn,
            _ => &self.bins.mn,
        };
        status(bin, role, &self.dir).unwrap()
    }

    /// Starts `role`'s daemon (`ha`, `cn` or `mn`).
    fn start(&mut self, role: &str) -> Process {
        self.started += 1;
        let (ns, bin) = match role {
            "ha" => (&self.hosts.ha, &self.bins.ha),
            "cn" => (&self.hosts.cns[0], &self.bins.cn),
            _ => (&self.hosts.mn, &self.bins.mn),
        };
        let config = self.dir.join(format!("{role}.yaml"));
        real::spawn(
            ns,
            bin,
            &["run", "--config", &config.to_string_lossy()],
            &self.dir,
            &format!("{role}-{}", self.started),
        )
        .unwrap()
    }

    /// A ping from the correspondent to the home address every 10 ms,
    /// `ping -D`'s log the returned process's.
    fn ping_home(&self, name: &str) -> Process {
        let args = [
            "-6",
            "-n",
            "-D",
            "-i",
            "0.01",
            "-c",
            "1500",
            "-W",
            "1",
            &HOA.to_string(),
        ];
        real::spawn(
            &self.hosts.cns[0],
            Path::new("/usr/bin/ping"),
            &args,
            &self.dir,
            name,
        )
        .unwrap()
    }

    /// The next move: the router port to bring up, the one to put down,
    /// and the new link's prefix.
    fn next_link(&mut self) -> (&'static str, &'static str, Ipv6Addr) {
        self.to_a = !self.to_a;
        if self.to_a {
            (B_PORT, A_PORT, ACCESS_B)
        } else {
            (A_PORT, B_PORT, ACCESS_A)
        }
    }

    /// Carrier to the other access link; returns its prefix.
    fn switch(&mut self) -> Ipv6Addr {
        let (up, down, prefix) = self.next_link();
        real::carrier(&self.hosts.rt, &[down], &[up]).unwrap();
        prefix
    }

    /// Waits until the node has sent its BU from `prefix` (`bound`: and
    /// has its BA).
    fn sent_from(&self, prefix: Ipv6Addr, bound: bool) -> (Ipv6Addr, u16) {
        wait_for(WAIT, "the mobile node's BU from its new link", || {
            Ok(update(&self.mn()?, HA)
                .filter(|(coa, _, b)| on_prefix(*coa, prefix) && (*b || !bound))
                .map(|(coa, seq, _)| (coa, seq)))
        })
        .unwrap()
    }

    /// One handoff, over once the node has sent its BU from the new link.
    fn handoff(&mut self, bound: bool) -> (Ipv6Addr, u16) {
        let prefix = self.switch();
        self.sent_from(prefix, bound)
    }
}

// issue 14.4
#[test]
fn a_home_agent_killed_in_a_bu_storm_restarts_from_its_store_and_tunnels_without_a_bu() {
    let Some(mut run) = Run::new("real_restart_ha", RouteOptimisation::None, "ha") else {
        return;
    };
    let store = run.dir.join("ha.db");
    let mut ha = vec![run.start("ha")];
    let _cn = run.start("cn");
    let _mn = run.start("mn");
    wait_for(WAIT, "the first home registration", || {
        Ok(update(&run.mn()?, HA).filter(|u| u.2))
    })
    .unwrap();

    // The storm, and kill -9 while one more carrier switch is under way:
    // the node is soliciting a router or sending its BU, or the agent is
    // taking it, or its BA is on the way, as it falls.
    for _ in 0..5 {
        run.handoff(false);
    }
    let ha_before = run.status("ha");
    let (up, down, prefix) = run.next_link();
    let rt = &run.hosts.rt;
    std::thread::scope(|s| {
        let switched = s.spawn(move || real::carrier(rt, &[down], &[up]));
        ha[0].stop(Signal::Kill, WAIT).unwrap();
        switched.join().unwrap().unwrap();
    });
    let (last_coa, last_sent) = run.sent_from(prefix, false);
    let acked = update(&run.mn().unwrap(), HA) == Some((last_coa, last_sent, true));
    let (bindings, marks1) = read_store(&store);
    eprintln!(
        "killed with BU {last_sent} {}; the store holds {bindings:?}",
        if acked {
            "acknowledged"
        } else {
            "not acknowledged"
        }
    );
    // A BA the node got is a binding stored; otherwise the store holds an
    // earlier BU's binding or this one's (accepted, its BA not out).
    if acked {
        assert_eq!(bindings, vec![(HOA, last_coa, last_sent)]);
    }
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    let (home, coa, seq) = bindings[0];
    assert_eq!(home, HOA);
    assert!(on_prefix(coa, ACCESS_A) || on_prefix(coa, ACCESS_B));
    assert!(
        common::node::seq_newer(last_sent, seq) || seq == last_sent,
        "stored seq {seq}, the node's last {last_sent}"
    );
    for spi in [BA_SPI, TUNNEL_SPI] {
        assert!(mark(&marks1, spi) >= sa(&ha_before, spi, "out", "sequence"));
    }
    // Restarted, it takes the node's retransmission (or already holds it).
    ha.push(run.start("ha"));
    wait_for(WAIT, "the node bound again after the first restart", || {
        Ok(update(&run.mn()?, HA).filter(|u| u.2))
    })
    .unwrap();

    // More storm, then traffic through the tunnel, and kill -9 just
    // after the BA of one more handoff.
    for _ in 0..4 {
        run.handoff(false);
    }
    run.handoff(true);
    run.hosts.cns[0]
        .wait_ping(IpAddr::V6(CN), IpAddr::V6(HOA), WAIT)
        .unwrap();
    let (coa, seq) = run.handoff(true);
    let mn_before = run.mn().unwrap();
    let ha_before = run.status("ha");
    ha[1].stop(Signal::Kill, WAIT).unwrap();
    let (bindings, marks2) = read_store(&store);
    // (1) Exactly the acknowledged binding; the marks only grew, and cover
    // every number sent.
    assert_eq!(bindings, vec![(HOA, coa, seq)]);
    for spi in [BA_SPI, TUNNEL_SPI] {
        assert!(mark(&marks2, spi) >= mark(&marks1, spi));
        assert!(mark(&marks2, spi) >= sa(&ha_before, spi, "out", "sequence"));
    }
    // The correspondent pings the home address from before the restart.
    let ping = run.ping_home("ping-restart");
    let restarted = wall_micros();
    ha.push(run.start("ha"));
    // (2) The binding is there as soon as the agent answers.
    let ha_after = wait_for(WAIT, "the restarted agent's status", || {
        Ok(real::status(&run.bins.ha, "ha", &run.dir))
    })
    .unwrap();
    let answered = wall_micros();
    let cached: Vec<(String, String, u64)> = ha_after["status"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["home"].as_str().unwrap_or("").to_string(),
                b["care_of"].as_str().unwrap_or("").to_string(),
                b["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        cached,
        vec![(HOA.to_string(), coa.to_string(), u64::from(seq))]
    );
    // (3) The first echo reply comes back through the tunnel...
    let first_reply = wait_for(WAIT, "an echo reply after the restart", || {
        Ok(first_reply_after(&ping.output(), restarted))
    })
    .unwrap();
    let mn_after = run.mn().unwrap();
    // ...with no BU from the node meanwhile.
    assert_eq!(update(&mn_after, HA), Some((coa, seq, true)));
    assert_eq!(
        counter(&mn_after, "signalling_messages"),
        counter(&mn_before, "signalling_messages")
    );
    // (4) The agent's ESP resumed past its mark, and the node's window
    // took it.
    let ha_now = run.status("ha");
    let stored = mark(&marks2, TUNNEL_SPI);
    assert!(stored > sa(&mn_before, TUNNEL_SPI, "in", "sequence"));
    assert!(sa(&ha_now, TUNNEL_SPI, "out", "sequence") > stored);
    assert!(sa(&mn_after, TUNNEL_SPI, "in", "sequence") > stored);
    let drops = &mn_after["status"]["drops"];
    for reason in ["ipsec/Replayed", "ipsec/OutsideWindow"] {
        assert!(drops.get(reason).is_none(), "the node dropped {drops}");
    }
    let ms = |t: u64| (t - restarted) as f64 / 1000.0;
    eprintln!(
        "HA restart: binding in its status after {:.1} ms, first echo reply at the \
         correspondent after {:.1} ms, 0 BUs; tunnel SA mark {stored}, the node's window \
         now at {}",
        ms(answered),
        ms(first_reply),
        sa(&mn_after, TUNNEL_SPI, "in", "sequence")
    );
}

/// The wall time (µs) of the first echo reply in `ping -D` output at or
/// after `after`.
fn first_reply_after(log: &str, after: u64) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            let t = l.strip_prefix('[')?.split(']').next()?;
            let (s, us) = t.split_once('.')?;
            Some(s.parse::<u64>().ok()? * 1_000_000 + us.parse::<u64>().ok()?)
        })
        .find(|t| *t >= after)
}

/// The correspondent's outbound SA: its BAs (the real demo's keys).
const CN_BA_SPI: u32 = 0x201;

impl Run {
    /// Carrier to the other access link, then waits until the node is
    /// bound there with the home agent and the correspondent.
    fn handoff_bound_with_both(&mut self) -> Value {
        let prefix = self.switch();
        wait_for(WAIT, "the node bound with the HA and the CN", || {
            let mn = self.mn()?;
            let bound = |peer| update(&mn, peer).is_some_and(|u| u.2 && on_prefix(u.0, prefix));
            Ok((bound(HA) && bound(CN)).then_some(mn.clone()))
        })
        .unwrap()
    }
}

// issue 14.4: the same for the correspondent's cache, under IPsec route
// optimisation.
#[test]
fn a_correspondent_restarted_from_its_store_keeps_route_optimisation_and_its_bas_pass() {
    let Some(mut run) = Run::new("real_restart_cn", RouteOptimisation::Ipsec, "cn") else {
        return;
    };
    let store = run.dir.join("cn.db");
    let _ha = run.start("ha");
    let mut cn = vec![run.start("cn")];
    let _mn = run.start("mn");
    let mut mn_before = Value::Null;
    for _ in 0..4 {
        mn_before = run.handoff_bound_with_both();
    }
    let (coa, seq, _) = update(&mn_before, CN).unwrap();
    let cn_before = run.status("cn");
    cn[0].stop(Signal::Kill, WAIT).unwrap();
    // (1) The store holds the binding the node has, and a mark above every
    // BA sent (and so above the node's window).
    let (bindings, marks) = read_store(&store);
    assert_eq!(bindings, vec![(HOA, coa, seq)]);
    let stored = mark(&marks, CN_BA_SPI);
    assert!(stored >= sa(&cn_before, CN_BA_SPI, "out", "sequence"));
    assert!(stored > sa(&mn_before, CN_BA_SPI, "in", "sequence"));
    let restarted = wall_micros();
    cn.push(run.start("cn"));
    // (2) The binding is there as soon as it answers, and (3) its ping to
    // the home address goes straight to the care-of address and is
    // answered with the home address option it verifies against that
    // binding, with no BU from the node.
    let cn_after = wait_for(WAIT, "the restarted correspondent's status", || {
        Ok(real::status(&run.bins.cn, "cn", &run.dir))
    })
    .unwrap();
    let answered = wall_micros();
    let listed = &cn_after["status"]["bindings"][0];
    assert_eq!(listed["home"], HOA.to_string().as_str());
    assert_eq!(listed["care_of"], coa.to_string().as_str());
    assert_eq!(listed["seq"], u64::from(seq));
    let ping = run.ping_home("ping-cn-restart");
    let first_reply = wait_for(WAIT, "an echo reply after the restart", || {
        Ok(first_reply_after(&ping.output(), restarted))
    })
    .unwrap();
    let mn_after = run.mn().unwrap();
    assert_eq!(update(&mn_after, CN), Some((coa, seq, true)));
    assert_eq!(
        counter(&mn_after, "signalling_messages"),
        counter(&mn_before, "signalling_messages")
    );
    let cn_now = run.status("cn");
    assert!(counter(&cn_now, "sent_route_optimised") > 0);
    assert!(counter(&cn_now, "delivered_route_optimised") > 0);
    // (4) The next handoff's BA comes past the mark, and the node's
    // window takes it.
    let mn_moved = run.handoff_bound_with_both();
    assert!(sa(&mn_moved, CN_BA_SPI, "in", "sequence") > stored);
    let drops = &mn_moved["status"]["drops"];
    for reason in ["ipsec/Replayed", "ipsec/OutsideWindow"] {
        assert!(drops.get(reason).is_none(), "the node dropped {drops}");
    }
    let ms = |t: u64| (t - restarted) as f64 / 1000.0;
    eprintln!(
        "CN restart: binding in its status after {:.1} ms, first route-optimised echo reply \
         after {:.1} ms, 0 BUs; BA SA mark {stored}, the node's window now at {}",
        ms(answered),
        ms(first_reply),
        sa(&mn_moved, CN_BA_SPI, "in", "sequence")
    );
}

// issue 14.4: the BA waits for the commit. With the store locked by
// another program (as `sqlite3 ha.db` would), the agent's commit of a
// new binding fails after store::BUSY; it stops without its BA, and the
// store keeps the binding before.
#[test]
fn a_home_agent_that_cannot_commit_a_binding_stops_without_its_ba() {
    let Some(mut run) = Run::new("real_restart_locked", RouteOptimisation::None, "ha") else {
        return;
    };
    let store = run.dir.join("ha.db");
    let mut ha = vec![run.start("ha")];
    let _cn = run.start("cn");
    let _mn = run.start("mn");
    let (coa1, seq1) = run.handoff(true);
    let other = rusqlite::Connection::open(&store).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let prefix = run.switch();
    let status = ha[0].wait_exit(WAIT).unwrap();
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    let log = ha[0].output();
    assert!(log.contains("database is locked"), "{log}");
    let (coa2, seq2) = run.sent_from(prefix, false);
    assert_eq!(update(&run.mn().unwrap(), HA), Some((coa2, seq2, false)));
    assert!(common::node::seq_newer(seq2, seq1));
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    assert_eq!(read_store(&store).0, vec![(HOA, coa1, seq1)]);
    // Started again, it takes the node's retransmission.
    ha.push(run.start("ha"));
    run.sent_from(prefix, true);
}
