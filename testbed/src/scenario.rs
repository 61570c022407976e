//! Scenario files (`testbed/scenarios/*.yaml`, `testbed run FILE`): a
//! network of the demo's kind and a timeline, played once per run (a
//! route-optimisation mode and its keying) in the simulator. Unknown keys
//! and bad values are errors naming the file, line, column and field.

use std::net::Ipv6Addr;
use std::path::Path;

use common::ike::Mobility;
use common::io::daemon::{read_yaml, FileError};
use common::node::RouteOptimisation;
use common::node::{CnConfig, CoaTestPolicy, CookieMethod, Correspondent, HaConfig, MnConfig};
use common::time::{Duration, Instant};
use serde::Deserialize;

use crate::demo::{End, Move, Stream, Timeline};
use crate::sim::LinkParams;
use crate::topology::{CnSa, CnSpec, Keying, LinkSpec, Network, CN, HOME_PREFIX};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// What it shows, the report's title.
    pub title: String,
    #[serde(default = "one")]
    pub seed: u64,
    /// Played once each, in this order.
    pub runs: Vec<RunKind>,
    pub links: Vec<LinkFile>,
    pub ha: HaFile,
    pub cns: Vec<CnFile>,
    pub mn: MnFile,
    #[serde(default)]
    pub moves: Vec<MoveFile>,
    #[serde(default)]
    pub flows: Vec<StreamFile>,
    #[serde(default)]
    pub pings: Vec<StreamFile>,
    /// When the run ends, in seconds.
    pub end: f64,
}

fn one() -> u64 {
    1
}

/// A run: the mode the mobile node uses with every correspondent (unless
/// the correspondent names its own), on static keys or IKEv2 with MOBIKE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    Rr,
    Ipsec,
    IpsecIke,
    Tunnel,
    TunnelIke,
}

impl RunKind {
    /// The run's name (as [`crate::demo::name`] has it), mode and keying.
    pub fn parts(self) -> (&'static str, RouteOptimisation, Keying) {
        let ike = Keying::Ike {
            mobility: Mobility::Mobike { r_mobike: false },
            payload: true,
        };
        match self {
            RunKind::Rr => ("rr", RouteOptimisation::ReturnRoutability, Keying::Static),
            RunKind::Ipsec => ("ipsec", RouteOptimisation::Ipsec, Keying::Static),
            RunKind::IpsecIke => ("ipsec-ike", RouteOptimisation::Ipsec, ike),
            RunKind::Tunnel => ("tunnel", RouteOptimisation::None, Keying::Static),
            RunKind::TunnelIke => ("tunnel-ike", RouteOptimisation::None, ike),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkFile {
    pub name: String,
    /// The /64 the router advertises.
    pub prefix: Ipv6Addr,
    pub delay_ms: f64,
    #[serde(default)]
    pub jitter_ms: f64,
    /// The chance a packet is lost, from 0 to below 1.
    #[serde(default)]
    pub loss: f64,
    #[serde(default = "mtu")]
    pub mtu: usize,
}

fn mtu() -> usize {
    1500
}

/// The home agent, `::1` on its link's prefix; the mobile node's home
/// address is `::100` there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaFile {
    pub link: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModeFile {
    Rr,
    Ipsec,
    Tunnel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoaTestFile {
    Off,
    AlternateOnly,
    Always,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnFile {
    pub name: String,
    pub link: String,
    /// Default: `::1` on the link's prefix.
    #[serde(default)]
    pub address: Option<Ipv6Addr>,
    /// This correspondent's mode in every run; default: the run's.
    #[serde(default)]
    pub mode: Option<ModeFile>,
    /// When the correspondent tests a care-of address with a cookie
    /// (draft-dupont-mipv6-cn-ipsec Annex A1); default: alternate-only.
    #[serde(default)]
    pub coa_test: Option<CoaTestFile>,
    /// Annex A1 method 2 (a global secret) instead of 1.
    #[serde(default)]
    pub global_cookies: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnFile {
    /// The links it may visit, one interface each; it starts on the first,
    /// the home agent's.
    pub links: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveFile {
    /// Seconds.
    pub at: f64,
    /// One of: onto this link, off every other (break before make);
    #[serde(default)]
    pub to: Option<String>,
    /// onto this link too, keeping the others (make before break);
    #[serde(default)]
    pub join: Option<String>,
    /// off this link.
    #[serde(default)]
    pub leave: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFile {
    /// `mn` or a correspondent's name; one end is the mobile node.
    pub from: String,
    pub to: String,
    /// Seconds.
    pub start: f64,
    pub every_ms: f64,
    pub until: f64,
}

/// A scenario read and checked: the network of each run, and the timeline.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub title: String,
    pub runs: Vec<(&'static str, Network)>,
    pub timeline: Timeline,
}

/// Where a field is: keys and list indices from the top.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// `line:column` (from 1) of the field at `path` in YAML `text`, in the
/// block style and one-line flow items the shipped files use: each key
/// looked for within the block found last, each index the n-th `- `
/// item of the list there. Stops at the closest it found.
fn locate(text: &str, path: &[Seg]) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let blank = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
    // The line found last, its indentation, the column.
    let (mut at, mut depth, mut col): (Option<usize>, Option<usize>, usize) = (None, None, 0);
    for seg in path {
        let from = at.unwrap_or(0);
        // The block: this line and the ones indented deeper than it.
        let block = (from..lines.len()).take_while(|i| {
            Some(*i) == at || blank(lines[*i]) || depth.is_none_or(|d| indent(lines[*i]) > d)
        });
        let found = match *seg {
            // Top-level keys start their line.
            Seg::Key(k) => block
                .filter(|i| !blank(lines[*i]) && (depth.is_some() || indent(lines[*i]) == 0))
                .find_map(|i| {
                    let l = lines[i];
                    let pat = format!("{k}:");
                    let c = l.match_indices(&pat).map(|m| m.0).find(|c| {
                        l[..*c]
                            .chars()
                            .last()
                            .is_none_or(|b| matches!(b, ' ' | '{' | ',' | '-'))
                    })?;
                    Some((i, c))
                }),
            Seg::Index(n) => {
                let items: Vec<usize> = block
                    .skip(1)
                    .filter(|i| lines[*i].trim_start().starts_with("- "))
                    .collect();
                let min = items.iter().map(|i| indent(lines[*i])).min();
                items
                    .into_iter()
                    .filter(|i| Some(indent(lines[*i])) == min)
                    .nth(n)
                    .map(|i| (i, indent(lines[i])))
            }
        };
        let Some((i, c)) = found else { break };
        (at, col) = (Some(i), c);
        depth = Some(indent(lines[i]));
    }
    (at.unwrap_or(0) + 1, col + 1)
}

/// Reads and checks a scenario file.
pub fn read(path: &Path) -> Result<Scenario, FileError> {
    let file: ScenarioFile = read_yaml(path)?;
    let text =
        std::fs::read_to_string(path).map_err(|e| FileError(format!("{}: {e}", path.display())))?;
    let err = |p: &[Seg], message: String| {
        let (line, col) = locate(&text, p);
        let field: Vec<String> = p
            .iter()
            .map(|s| match s {
                Seg::Key(k) => format!(".{k}"),
                Seg::Index(i) => format!("[{i}]"),
            })
            .collect();
        let field = field.concat();
        FileError(format!(
            "{}:{line}:{col}: {}: {message}",
            path.display(),
            field.trim_start_matches('.')
        ))
    };
    check(&file, &err)
}

type Err<'a> = dyn Fn(&[Seg], String) -> FileError + 'a;

fn secs(s: f64) -> Instant {
    Instant::from_micros((s * 1e6).round() as u64)
}

fn ms(m: f64) -> Duration {
    Duration::from_micros((m * 1000.0).round() as u64)
}

fn check(f: &ScenarioFile, err: &Err) -> Result<Scenario, FileError> {
    use Seg::{Index, Key};
    if f.runs.is_empty() {
        return Err(err(&[Key("runs")], "name at least one run".into()));
    }
    for (i, r) in f.runs.iter().enumerate() {
        if f.runs[..i].contains(r) {
            return Err(err(&[Key("runs")], format!("{} twice", r.parts().0)));
        }
    }
    let mut links = vec![];
    for (i, l) in f.links.iter().enumerate() {
        let at = |k| [Key("links"), Index(i), Key(k)];
        if f.links[..i].iter().any(|x| x.name == l.name) {
            return Err(err(
                &at("name"),
                format!("a second link named {:?}", l.name),
            ));
        }
        let finite = |v: f64| v.is_finite() && v >= 0.0;
        if !finite(l.delay_ms) {
            return Err(err(&at("delay_ms"), "must be 0 or more".into()));
        }
        if !finite(l.jitter_ms) {
            return Err(err(&at("jitter_ms"), "must be 0 or more".into()));
        }
        if !(0.0..1.0).contains(&l.loss) {
            return Err(err(&at("loss"), "must be from 0 to below 1".into()));
        }
        if l.mtu < 1280 {
            return Err(err(&at("mtu"), "IPv6 needs 1280 or more".into()));
        }
        if u128::from(l.prefix) & u128::from(u64::MAX) != 0 {
            return Err(err(&at("prefix"), "must be a /64 (host bits zero)".into()));
        }
        links.push(LinkSpec {
            name: l.name.clone(),
            prefix: l.prefix,
            params: LinkParams {
                delay: ms(l.delay_ms),
                jitter: ms(l.jitter_ms),
                loss: l.loss,
                mtu: l.mtu,
            },
        });
    }
    let link = |name: &str, p: &[Seg]| {
        f.links.iter().position(|l| l.name == name).ok_or_else(|| {
            let names: Vec<&str> = f.links.iter().map(|l| l.name.as_str()).collect();
            err(
                p,
                format!("no link named {name:?} (links: {})", names.join(", ")),
            )
        })
    };
    let ha_link = link(&f.ha.link, &[Key("ha"), Key("link")])?;
    let prefix = f.links[ha_link].prefix;
    let with_iid = |p: Ipv6Addr, iid: u128| Ipv6Addr::from(u128::from(p) | iid);
    let (ha, hoa) = (with_iid(prefix, 1), with_iid(prefix, 0x100));
    let mut mn_links = vec![];
    for (i, l) in f.mn.links.iter().enumerate() {
        let p = [Key("mn"), Key("links"), Index(i)];
        let l = link(l, &p)?;
        if mn_links.contains(&l) {
            return Err(err(&p, "a link listed twice".into()));
        }
        mn_links.push(l);
    }
    if mn_links.first() != Some(&ha_link) {
        return Err(err(
            &[Key("mn"), Key("links")],
            format!("must start with the home agent's link {:?}", f.ha.link),
        ));
    }
    let mut cns = vec![];
    for (i, c) in f.cns.iter().enumerate() {
        let at = |k| [Key("cns"), Index(i), Key(k)];
        if c.name == "mn" || f.cns[..i].iter().any(|x| x.name == c.name) {
            return Err(err(&at("name"), format!("{:?} is taken", c.name)));
        }
        let l = link(&c.link, &at("link"))?;
        let address = c.address.unwrap_or(with_iid(f.links[l].prefix, 1));
        cns.push((l, address));
    }
    if cns.is_empty() {
        return Err(err(&[Key("cns")], "name at least one correspondent".into()));
    }
    // NaN and infinities fail these too.
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(f.end) {
        return Err(err(&[Key("end")], "must be after 0".into()));
    }
    let end = secs(f.end);
    let mut moves = vec![];
    for (i, m) in f.moves.iter().enumerate() {
        let at = |k| [Key("moves"), Index(i), Key(k)];
        let (key, name) = match (&m.to, &m.join, &m.leave) {
            (Some(n), None, None) => ("to", n),
            (None, Some(n), None) => ("join", n),
            (None, None, Some(n)) => ("leave", n),
            _ => {
                return Err(err(
                    &[Key("moves"), Index(i)],
                    "needs exactly one of to, join, leave".into(),
                ))
            }
        };
        let l = link(name, &at(key))?;
        if !mn_links.contains(&l) {
            return Err(err(&at(key), format!("{name:?} is not in mn.links")));
        }
        let how = match key {
            "to" => Move::To(l),
            "join" => Move::Join(l),
            _ => Move::Leave(l),
        };
        let t = secs(m.at);
        if !positive(m.at) || t >= end || moves.last().is_some_and(|(p, _)| *p >= t) {
            return Err(err(
                &at("at"),
                "must be after the last move and before the end".into(),
            ));
        }
        moves.push((t, how));
    }
    let end_of = |name: &str, p: &[Seg]| match name {
        "mn" => Ok(End::Mn),
        n => f
            .cns
            .iter()
            .position(|c| c.name == n)
            .map(End::Cn)
            .ok_or_else(|| err(p, format!("{n:?} is neither mn nor a correspondent"))),
    };
    let streams = |key: &'static str, list: &[StreamFile]| -> Result<Vec<Stream>, FileError> {
        let mut out = vec![];
        for (i, s) in list.iter().enumerate() {
            let at = |k| [Key(key), Index(i), Key(k)];
            let (from, to) = (end_of(&s.from, &at("from"))?, end_of(&s.to, &at("to"))?);
            if (from == End::Mn) == (to == End::Mn) {
                return Err(err(
                    &at("to"),
                    "one end must be mn, the other a correspondent".into(),
                ));
            }
            if !positive(s.every_ms) {
                return Err(err(&at("every_ms"), "must be more than 0".into()));
            }
            if !(s.start >= 0.0 && s.start < s.until && secs(s.until) <= end) {
                return Err(err(
                    &at("until"),
                    "must be after start and no later than end".into(),
                ));
            }
            out.push(Stream {
                from,
                to,
                start: secs(s.start),
                interval: ms(s.every_ms),
                until: secs(s.until),
            });
        }
        Ok(out)
    };
    let timeline = Timeline {
        moves,
        flows: streams("flows", &f.flows)?,
        pings: streams("pings", &f.pings)?,
        end,
    };
    let mut runs = vec![];
    for (r, kind) in f.runs.iter().enumerate() {
        let (name, mode, keying) = kind.parts();
        let ike = matches!(keying, Keying::Ike { .. });
        // IKE is configured at the demo's addresses (topology::ike_configs).
        if ike && prefix != HOME_PREFIX {
            return Err(err(
                &[Key("runs"), Index(r)],
                format!("{name} needs the home agent's link on {HOME_PREFIX}/64"),
            ));
        }
        let seed = f.seed;
        let mut mn = MnConfig::new(hoa, ha, seed ^ 1);
        let mut ha_cfg = HaConfig::new(ha, vec![hoa], seed ^ 2);
        ha_cfg.home_prefix = prefix;
        let mut specs = vec![];
        for (i, (c, (l, address))) in f.cns.iter().zip(&cns).enumerate() {
            let mode = match c.mode {
                Some(ModeFile::Rr) => RouteOptimisation::ReturnRoutability,
                Some(ModeFile::Ipsec) => RouteOptimisation::Ipsec,
                Some(ModeFile::Tunnel) => RouteOptimisation::None,
                None => mode,
            };
            let sa = if mode == RouteOptimisation::Ipsec {
                CnSa::Signalling
            } else {
                CnSa::None
            };
            if ike && sa != CnSa::None && *address != CN {
                return Err(err(
                    &[Key("cns"), Index(i), Key("address")],
                    format!("{name}: IPsec with a correspondent keyed by IKE needs it at {CN}"),
                ));
            }
            mn.correspondents.push(Correspondent {
                address: *address,
                mode,
            });
            // The first keeps the demo's seed.
            let mut config = CnConfig::new(*address, seed ^ 3 ^ ((i as u64) << 8));
            config.coa_test = match c.coa_test {
                Some(CoaTestFile::Off) => CoaTestPolicy::Off,
                Some(CoaTestFile::Always) => CoaTestPolicy::Always,
                Some(CoaTestFile::AlternateOnly) | None => config.coa_test,
            };
            if c.global_cookies {
                config.cookie_method = CookieMethod::Global;
            }
            specs.push(CnSpec {
                name: c.name.clone(),
                link: *l,
                config,
                sa,
            });
        }
        runs.push((
            name,
            Network {
                seed,
                links: links.clone(),
                ra_interval: Duration::from_secs(1),
                ha_link,
                ha: ha_cfg,
                cns: specs,
                mn_links: mn_links.clone(),
                mn,
                keying,
                sa_lifetime: Duration::from_secs(3600),
            },
        ));
    }
    Ok(Scenario {
        title: f.title.clone(),
        runs,
        timeline,
    })
}

/// Plays every run of `s`, writes each one's pcaps (`<run>-<link>.pcap`)
/// and key log (`wireshark-<run>/`) into `dir`, and the report
/// (`report.html`, `report.json`). Returns the runs and the summary
/// (what `testbed run --json` prints).
pub fn write(
    s: &Scenario,
    dir: &Path,
) -> Result<(Vec<crate::demo::Run>, serde_json::Value), crate::tools::Error> {
    use crate::pictures::report::{Played, Report};
    let mut played = vec![];
    let (mut pcaps, mut keylogs) = (vec![], vec![]);
    for (name, net) in &s.runs {
        let (mut sim, layout, _) = crate::topology::build_network(net);
        let run = crate::demo::play(&mut sim, net, &layout, &s.timeline, name);
        pcaps.extend(sim.write_pcaps(dir, &format!("{name}-"))?);
        let keys = dir.join(format!("wireshark-{name}"));
        sim.write_keylog(&keys)?;
        keylogs.push(keys);
        played.push((run, sim, net, layout));
    }
    let runs: Vec<crate::demo::Run> = played.iter().map(|p| p.0.clone()).collect();
    let list = |p: &[std::path::PathBuf]| -> Vec<String> {
        p.iter().map(|p| p.display().to_string()).collect()
    };
    let summary = serde_json::json!({
        "scenario": s.title,
        "seed": s.runs.first().map(|r| r.1.seed),
        "runs": runs.iter().map(|r| crate::demo::run_json(r, None)).collect::<Vec<_>>(),
        "pcaps": list(&pcaps),
        "keylogs": list(&keylogs),
    });
    let views: Vec<Played> = played
        .iter()
        .map(|(run, sim, net, layout)| Played {
            run,
            sim,
            net,
            layout,
        })
        .collect();
    let intro: Vec<String> = s.runs[0]
        .1
        .links
        .iter()
        .map(|l| {
            format!(
                "{} {} ms{}",
                l.name,
                l.params.delay.as_micros() as f64 / 1000.0,
                if l.params.loss > 0.0 {
                    format!(" ({:.0}% loss)", l.params.loss * 100.0)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let mut report = Report::new(
        &s.title,
        &format!("Links: {}.", intro.join(", ")),
        &views,
        s.timeline.end,
    );
    report.pcaps = pcaps
        .iter()
        .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .collect();
    report.commands = runs
        .iter()
        .zip(&keylogs)
        .filter_map(|(r, k)| {
            let pcap = pcaps.iter().find(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{}-", r.name)))
            })?;
            Some(format!(
                "WIRESHARK_CONFIG_DIR={} wireshark {}",
                k.display(),
                pcap.display()
            ))
        })
        .collect();
    report.summary = summary.clone();
    report.write(dir)?;
    Ok((runs, summary))
}
