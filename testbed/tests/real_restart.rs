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
//! node's anti-replay window. Needs root, ping and the daemons built next
//! to `testbed`; skipped otherwise (under CI=true that is a failure).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
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
/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(20);

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

/// The mobile node's entry for the home agent: (care-of, seq, bound).
fn home_update(mn: &Value) -> Option<(Ipv6Addr, u16, bool)> {
    let u = mn["status"]["binding_updates"]
        .as_array()?
        .iter()
        .find(|u| u["peer"].as_str() == Some(&HA.to_string()))?;
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

struct Run<'a> {
    hosts: &'a Hosts,
    bins: &'a Bins,
    dir: &'a Path,
    /// The next access link: true for A.
    to_a: bool,
    /// Home agents started so far (each logs to its own file).
    started: usize,
}

impl Run<'_> {
    fn mn(&self) -> testbed::harness::Result<Value> {
        status(&self.bins.mn, "mn", self.dir)
    }

    fn start_ha(&mut self) -> Process {
        self.started += 1;
        let config = self.dir.join("ha.yaml");
        real::spawn(
            &self.hosts.ha,
            &self.bins.ha,
            &["run", "--config", &config.to_string_lossy()],
            self.dir,
            &format!("ha-{}", self.started),
        )
        .unwrap()
    }

    /// Carrier to the other access link; returns its prefix.
    fn switch(&mut self) -> Ipv6Addr {
        let (port, other, prefix) = if self.to_a {
            ("r-mn1", "r-mn2", ACCESS_A)
        } else {
            ("r-mn2", "r-mn1", ACCESS_B)
        };
        self.to_a = !self.to_a;
        real::carrier(&self.hosts.rt, &[other], &[port]).unwrap();
        prefix
    }

    /// Waits until the node has sent its BU from `prefix` (`bound`: and
    /// has its BA).
    fn sent_from(&self, prefix: Ipv6Addr, bound: bool) -> (Ipv6Addr, u16) {
        wait_for(WAIT, "the mobile node's BU from its new link", || {
            Ok(home_update(&self.mn()?)
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
    let Some(bins) = prerequisites() else {
        return;
    };
    let dir: PathBuf = tools::scratch("real_restart");
    let mut setup = Setup::new(1, RouteOptimisation::None);
    setup.home_delay = common::time::Duration::from_millis(5);
    setup.cn_delay = common::time::Duration::from_millis(5);
    let extras = Extras {
        esp_tunnel: true,
        capture: false,
    };
    real::write_configs(&setup.network(), &dir, extras).unwrap();
    let store = dir.join("ha.db");
    let mut ha_yaml = fs::OpenOptions::new()
        .append(true)
        .open(dir.join("ha.yaml"))
        .unwrap();
    writeln!(ha_yaml, "store: ha.db").unwrap();
    let hosts = real::build_hosts(&setup.network()).unwrap();
    let (_router, _router_stdin) = real::start_router(&hosts, &bins, &dir).unwrap();
    // Away from the start: only access B has carrier; the first move is to A.
    real::carrier(&hosts.rt, &["r-mn0", "r-mn1"], &[]).unwrap();
    let mut ha = vec![];
    let mut run = Run {
        hosts: &hosts,
        bins: &bins,
        dir: &dir,
        to_a: true,
        started: 0,
    };
    ha.push(run.start_ha());
    let daemon = |ns, bin: &Path, role: &str| {
        let config = dir.join(format!("{role}.yaml"));
        real::spawn(
            ns,
            bin,
            &["run", "--config", &config.to_string_lossy()],
            &dir,
            role,
        )
        .unwrap()
    };
    let _cn = daemon(&hosts.cns[0], &bins.cn, "cn");
    let _mn = daemon(&hosts.mn, &bins.mn, "mn");
    wait_for(WAIT, "the first home registration", || {
        Ok(home_update(&run.mn()?).filter(|u| u.2))
    })
    .unwrap();

    // The storm, and kill -9 while one more carrier switch is under way:
    // the node is soliciting a router or sending its BU, or the agent is
    // taking it, or its BA is on the way, as it falls.
    for _ in 0..5 {
        run.handoff(false);
    }
    let ha_before = status(&bins.ha, "ha", &dir).unwrap();
    let prefix = std::thread::scope(|s| {
        let switched = s.spawn(|| run.switch());
        ha[0].stop(Signal::Kill, WAIT).unwrap();
        switched.join().unwrap()
    });
    let (last_coa, last_sent) = run.sent_from(prefix, false);
    let acked = home_update(&run.mn().unwrap()) == Some((last_coa, last_sent, true));
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
    ha.push(run.start_ha());
    wait_for(WAIT, "the node bound again after the first restart", || {
        Ok(home_update(&run.mn()?).filter(|u| u.2))
    })
    .unwrap();

    // More storm, then traffic through the tunnel, and kill -9 just
    // after the BA of one more handoff.
    for _ in 0..4 {
        run.handoff(false);
    }
    run.handoff(true);
    hosts.cns[0]
        .wait_ping(IpAddr::V6(CN), IpAddr::V6(HOA), WAIT)
        .unwrap();
    let (coa, seq) = run.handoff(true);
    let mn_before = run.mn().unwrap();
    let ha_before = status(&bins.ha, "ha", &dir).unwrap();
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
    let ping = real::spawn(
        &hosts.cns[0],
        Path::new("/usr/bin/ping"),
        &[
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
        ],
        &dir,
        "ping-restart",
    )
    .unwrap();
    let restarted = wall_micros();
    ha.push(run.start_ha());
    // (2) The binding is there as soon as the agent answers.
    let ha_after = wait_for(WAIT, "the restarted agent's status", || {
        Ok(real::status(&bins.ha, "ha", &dir))
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
    assert_eq!(home_update(&mn_after), Some((coa, seq, true)));
    assert_eq!(
        counter(&mn_after, "signalling_messages"),
        counter(&mn_before, "signalling_messages")
    );
    // (4) The agent's ESP resumed past its mark, and the node's window
    // took it.
    let ha_now = status(&bins.ha, "ha", &dir).unwrap();
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
