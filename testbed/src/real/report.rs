//! `report.html` of `testbed demo --real`: the simulated report's page
//! (table, a sequence diagram per handoff and run, delay and loss plot,
//! pcaps) drawn from the router's captures, one per link.
//!
//! Each captured frame is one arrow, on the link it was captured on, as
//! the simulator draws each hop: frames are not matched across links.
//! The router captures a frame when it is put on the link and delivers
//! it the link's delay later (no jitter or loss in the demo), so an
//! arrow leaves at the capture time and arrives that delay later.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use common::time::{Duration, Instant};
use common::wire::CodePoints;
use serde_json::Value;

use super::demo::RealRun;
use crate::pictures::plot::Series;
use crate::pictures::report::{handoff_sequences, handoff_spans, Report};
use crate::pictures::sequence::{ends, Arrow, Sequence};
use crate::pictures::{classify, Keys, Message};
use crate::tools::pcap::read_packets;
use crate::topology::{Setup, ACCESS_A, ACCESS_B, CN, HA, HOA};

/// The links, as the router names its captures.
const LINKS: [&str; 4] = ["home", "cn", "access-a", "access-b"];
const LANES: [&str; 4] = ["MN", "router", "HA", "CN"];
const MN: usize = 0;
const ROUTER: usize = 1;
const HA_LANE: usize = 2;
const CN_LANE: usize = 3;

/// One real run's captures, read once.
struct Captured<'a> {
    real: &'a RealRun,
    /// (wall µs, link, packet), in time order.
    frames: Vec<(u64, usize, Vec<u8>)>,
    delays: [Duration; 4],
}

impl Captured<'_> {
    /// The node an address is on, if it is one of the demo's.
    fn node(&self, a: Ipv6Addr) -> Option<usize> {
        let in_prefix = |p: Ipv6Addr| a.segments()[..4] == p.segments()[..4];
        let ll = self.real.link_locals.iter().find(|(x, _)| *x == a);
        match ll {
            Some((_, who)) => LANES.iter().position(|l| l == who),
            None if a == HA => Some(HA_LANE),
            None if a == CN => Some(CN_LANE),
            // The home address, or a care-of address.
            None if a == HOA || in_prefix(ACCESS_A) || in_prefix(ACCESS_B) => Some(MN),
            None => None,
        }
    }

    /// Whether the node's carrier is on the home link at `t`: before its
    /// first move, and from its move home.
    fn home_at(&self, t: Instant) -> bool {
        let mut at_home = true;
        for h in &self.real.run.handoffs {
            if self.real.t0 + (h.at - Instant::ZERO) <= t {
                at_home = h.to == "home";
            }
        }
        at_home
    }

    /// The nodes on `link` at `t` besides the router: the mobile node is
    /// on the home link only while its carrier is there.
    fn attached(&self, link: usize, t: Instant) -> &'static [usize] {
        match LINKS[link] {
            "home" if self.home_at(t) => &[MN, HA_LANE],
            "home" => &[HA_LANE],
            "cn" => &[CN_LANE],
            _ => &[MN],
        }
    }

    /// The hop a frame on `link` took: its sender is its source's node if
    /// that is on the link (or, sent from `::`, the owner of the address
    /// it checks), else the router; its receiver likewise, a group's the
    /// link's host from the router and the router from a host.
    fn hop(&self, link: usize, t: Instant, b: &[u8]) -> Option<(usize, usize)> {
        let (std::net::IpAddr::V6(src), std::net::IpAddr::V6(dst)) = ends(b)? else {
            return None;
        };
        let here = self.attached(link, t);
        let on = |n: Option<usize>| n.filter(|n| here.contains(n));
        let from = if src.is_unspecified() {
            // DAD: an NS for its target (RFC 4862 §5.4.2), else an RS.
            let target = b.get(48..64).and_then(|t| <[u8; 16]>::try_from(t).ok());
            let dad = (b.get(40) == Some(&135)).then_some(target).flatten();
            on(dad.and_then(|t| self.node(t.into()))).unwrap_or(here[0])
        } else {
            on(self.node(src)).unwrap_or(ROUTER)
        };
        let to = match on(self.node(dst)) {
            _ if dst.is_multicast() && from == ROUTER => here[0],
            _ if dst.is_multicast() => ROUTER,
            Some(n) => n,
            None => ROUTER,
        };
        Some((from, to))
    }

    /// Every frame captured in `[from, to)`, an arrow on its link.
    fn arrows(&self, from: Instant, to: Instant, msg: &dyn Fn(&[u8]) -> Message) -> Vec<Arrow> {
        let (a, b) = (from.total_micros(), to.total_micros());
        let first = self.frames.partition_point(|f| f.0 < a);
        self.frames[first..]
            .iter()
            .take_while(|f| f.0 < b)
            .filter_map(|(us, link, bytes)| {
                let sent = Instant::from_micros(*us);
                let (from, to) = self.hop(*link, sent, bytes)?;
                Some(Arrow {
                    from,
                    to,
                    sent,
                    arrived: Some(sent + self.delays[*link]),
                    msg: msg(bytes),
                })
            })
            .collect()
    }
}

fn read_frames(real: &RealRun) -> Result<Vec<(u64, usize, Vec<u8>)>, crate::tools::Error> {
    let mut frames = vec![];
    for (i, link) in LINKS.iter().enumerate() {
        let Some(p) = real
            .pcaps
            .iter()
            .find(|p| p.file_stem() == Some(link.as_ref()))
        else {
            continue;
        };
        let f = std::fs::File::open(p).map_err(|e| crate::tools::Error::from(e).in_file(p))?;
        let packets = read_packets(f).map_err(|e| e.in_file(p))?;
        frames.extend(packets.into_iter().map(|(us, b)| (us, i, b)));
    }
    frames.sort_by_key(|f| (f.0, f.1));
    Ok(frames)
}

/// The diagrams of one real run, ESP opened with its key log.
fn sequences(real: &RealRun, setup: &Setup) -> Result<Vec<Sequence>, crate::tools::Error> {
    let keys = Keys::from_dir(&real.keylog)?;
    let cp = CodePoints::default();
    let classified = |b: &[u8]| classify(b, &cp, &keys);
    let captured = Captured {
        real,
        frames: read_frames(real)?,
        delays: [
            setup.home_delay,
            setup.cn_delay,
            setup.access_delay,
            setup.access_delay,
        ],
    };
    let lanes: Vec<String> = LANES.iter().map(|l| l.to_string()).collect();
    Ok(handoff_sequences(&real.run, &lanes, real.t0, |a, b| {
        captured.arrows(a, b, &classified)
    }))
}

/// Writes `report.html` and `report.json` of `reals` into `dir` (their
/// pcaps below it); `summary` is what `--json` prints. Returns the page.
pub fn write(
    dir: &Path,
    setup: &Setup,
    reals: &[RealRun],
    summary: Value,
) -> Result<PathBuf, crate::tools::Error> {
    let mut runs = vec![];
    let mut series = vec![];
    for r in reals {
        runs.push((r.run.clone(), sequences(r, setup)?));
        series.push(Series {
            name: r.run.name.into(),
            points: r.down.clone(),
            lost: r.run.down_lost.clone(),
            handoffs: handoff_spans(&r.run),
        });
    }
    let intro = format!(
        "{} On real links: network namespaces, the ha, cn and mn daemons, our router \
         process between the links. Each arrow is a frame the router captured, on the \
         link it was captured on, leaving at the capture time and arriving the link's \
         delay later (the router holds every frame that long); frames are not matched \
         across links. The topology pictures of the simulated report are left out: they \
         follow the simulator's hops.",
        crate::demo::intro(setup)
    );
    let mut report = Report::from_parts(
        &format!("Mobile IPv6 demo on real links, seed {}", setup.seed),
        &intro,
        runs,
        &series,
        Instant::from_micros(10_000_000),
    );
    report.pcaps = reals
        .iter()
        .flat_map(|r| &r.pcaps)
        .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
        .collect();
    report.commands = reals
        .iter()
        .filter_map(|r| {
            let pcap = r.pcaps.first()?;
            Some(format!(
                "WIRESHARK_CONFIG_DIR={} wireshark {}",
                r.keylog.display(),
                pcap.display()
            ))
        })
        .collect();
    report.summary = summary;
    report.write(dir)
}
