//! The `testbed router` YAML file. Values are checked while the file is
//! read (each field has a type that refuses what cannot work), so every
//! mistake comes back as one line naming the file, line, column and field,
//! e.g. `r.yaml:4:15: links[0].prefix: ...`; the checks across entries
//! (unique names and ports) name the file and the field.
//!
//! ```yaml
//! ra_interval_ms: 1000       # optional, default 1000, at least 30
//! seed: 1                    # optional, default 1: loss and jitter draws, ND
//! pcap_dir: out/real         # optional: one <link>.pcap per link
//! links:
//!   - { name: home, prefix: "2001:db8:1::/64", delay_ms: 30, jitter_ms: 0,
//!       loss: 0.0, mtu: 1500, ports: [r-ha, r-mnh], up: true }
//! ```
//!
//! Per link only `name`, `prefix` and `ports` are required; `delay_ms` and
//! `jitter_ms` (default 0, fractions allowed: 0.2 is 200 µs), `loss`
//! (default 0, a probability per frame), `mtu` (default 1500, the largest
//! IPv6 packet the link carries, 1280 to 65535) and `up` (default true)
//! are the simulator's [`LinkParams`] and up/down.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use common::time::Duration;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::sim::LinkParams;

/// A mistake in the file, said in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The router's configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    pub ra_interval: Duration,
    pub seed: u64,
    /// Relative to the working directory.
    pub pcap_dir: Option<PathBuf>,
    pub links: Vec<LinkConfig>,
}

/// One link: an Ethernet segment of one or more ports.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    pub name: String,
    /// The /64 (host bits zero), advertised for autoconfiguration.
    pub prefix: Ipv6Addr,
    pub params: LinkParams,
    /// Interface names in the router's namespace.
    pub ports: Vec<String>,
    pub up: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "default_ra_interval")]
    ra_interval_ms: RaInterval,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    pcap_dir: Option<PathBuf>,
    links: Vec<LinkEntry>,
}

fn default_ra_interval() -> RaInterval {
    RaInterval(1000)
}

fn default_seed() -> u64 {
    1
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    name: LinkName,
    prefix: Prefix64,
    #[serde(default)]
    delay_ms: Millis,
    #[serde(default)]
    jitter_ms: Millis,
    #[serde(default)]
    loss: Probability,
    #[serde(default)]
    mtu: Mtu,
    ports: Vec<PortName>,
    #[serde(default = "yes")]
    up: bool,
}

/// A string checked by `F` inside the deserializer's call, so serde places
/// the error at the value (its line, column and field path).
struct Str<F>(F, &'static str);

impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for Str<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

/// A number checked by `F` (as an `f64`), likewise.
struct Num<F>(F, &'static str);

impl<F> Num<F> {
    fn check<T, E: de::Error>(self, v: f64) -> Result<T, E>
    where
        F: FnOnce(f64) -> Result<T, String>,
    {
        (self.0)(v).map_err(E::custom)
    }
}

impl<'de, T, F: FnOnce(f64) -> Result<T, String>> Visitor<'de> for Num<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.check(v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.check(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        self.check(v)
    }
}

/// A whole number in `range`, for [`Num`].
fn whole(v: f64, range: std::ops::RangeInclusive<u64>, what: &str) -> Result<u64, String> {
    if v.fract() == 0.0 && v >= *range.start() as f64 && v <= *range.end() as f64 {
        Ok(v as u64)
    } else {
        Err(format!("{v}: {what}"))
    }
}

#[derive(Debug)]
struct RaInterval(u64);

impl<'de> Deserialize<'de> for RaInterval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let check = |v| {
            whole(
                v,
                30..=1_800_000,
                "milliseconds from 30 (RFC 6275 §7.5's MinRtrAdvInterval) to 1800000",
            )
            .map(RaInterval)
        };
        d.deserialize_any(Num(check, "milliseconds"))
    }
}

/// A link name: also the pcap's file name, so letters, digits, `-`, `_`.
#[derive(Debug)]
struct LinkName(String);

impl<'de> Deserialize<'de> for LinkName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let check = |s: &str| {
            let ok = !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if ok {
                Ok(LinkName(s.to_string()))
            } else {
                Err(format!(
                    "{s:?}: 1 to 64 letters, digits, '-' or '_' (it names the pcap file)"
                ))
            }
        };
        d.deserialize_str(Str(check, "a link name"))
    }
}

/// `ADDR/64` with the host bits zero.
#[derive(Debug)]
struct Prefix64(Ipv6Addr);

impl<'de> Deserialize<'de> for Prefix64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let check = |s: &str| {
            let (addr, len) = s
                .split_once('/')
                .ok_or_else(|| format!("{s:?}: expected ADDR/64"))?;
            let addr: Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("{s:?}: {addr:?} is not an IPv6 address"))?;
            if len != "64" {
                return Err(format!(
                    "{s:?}: the prefix must be a /64 (what SLAAC and the router's forwarding use)"
                ));
            }
            if u128::from(addr) & u128::from(u64::MAX) != 0 {
                return Err(format!("{s:?}: host bits set in a /64"));
            }
            if addr.is_multicast() || addr.is_unspecified() || addr.segments()[0] & 0xffc0 == 0xfe80
            {
                return Err(format!("{s:?}: not a unicast global prefix"));
            }
            Ok(Prefix64(addr))
        };
        d.deserialize_str(Str(check, "ADDR/64"))
    }
}

/// Milliseconds, fractions allowed, kept as whole microseconds.
#[derive(Debug, Default)]
struct Millis(Duration);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let check = |ms: f64| {
            // An hour is far beyond any link this models.
            if !(0.0..=3_600_000.0).contains(&ms) {
                return Err(format!("{ms}: milliseconds from 0 to 3600000"));
            }
            Ok(Millis(Duration::from_micros((ms * 1000.0).round() as u64)))
        };
        d.deserialize_any(Num(check, "milliseconds"))
    }
}

#[derive(Debug, Default)]
struct Probability(f64);

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let check = |p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(Probability(p))
            } else {
                Err(format!("{p}: a probability, from 0 to 1"))
            }
        };
        d.deserialize_any(Num(check, "a probability"))
    }
}

#[derive(Debug)]
struct Mtu(usize);

impl Default for Mtu {
    fn default() -> Self {
        Mtu(1500)
    }
}

impl<'de> Deserialize<'de> for Mtu {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let check = |v| {
            whole(v, 1280..=65535, "bytes from 1280 (IPv6's minimum) to 65535")
                .map(|m| Mtu(m as usize))
        };
        d.deserialize_any(Num(check, "an MTU"))
    }
}

/// An interface name as the kernel takes it.
#[derive(Debug)]
struct PortName(String);

impl<'de> Deserialize<'de> for PortName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let check = |s: &str| {
            let ok = !s.is_empty()
                && s.len() <= 15
                && s != "."
                && s != ".."
                && !s.contains(['/', ':', '\0'])
                && !s.chars().any(char::is_whitespace);
            if ok {
                Ok(PortName(s.to_string()))
            } else {
                Err(format!(
                    "{s:?}: an interface name (1 to 15 bytes, no '/', ':' or whitespace)"
                ))
            }
        };
        d.deserialize_str(Str(check, "an interface name"))
    }
}

impl fmt::Display for RouterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.links.iter().map(|l| l.name.as_str()).collect();
        write!(f, "{} links: {}", self.links.len(), names.join(", "))
    }
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<RouterConfig, ConfigError> {
    let text =
        fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    parse(&text).map_err(|e| ConfigError(format!("{}{e}", path.display())))
}

/// Parses and checks a file's text. The error starts with `:LINE:COL: `
/// when serde knows where, else `: `, for [`load`] to put the file first.
pub fn parse(text: &str) -> Result<RouterConfig, String> {
    let file: File = serde_yaml_ng::from_str(text).map_err(|e| {
        let message = e.to_string();
        match e.location() {
            Some(l) => {
                // serde_yaml_ng says where at the end too: once is enough.
                let tail = format!(" at line {} column {}", l.line(), l.column());
                let message = message.strip_suffix(&tail).unwrap_or(&message);
                format!(":{}:{}: {message}", l.line(), l.column())
            }
            None => format!(": {message}"),
        }
    })?;
    if file.links.is_empty() {
        return Err(": links: at least one link".to_string());
    }
    if file.links.len() > usize::from(u8::MAX) + 1 {
        return Err(": links: at most 256 links".to_string());
    }
    let mut names = HashSet::new();
    let mut ports = HashSet::new();
    let mut links = Vec::with_capacity(file.links.len());
    for (i, l) in file.links.into_iter().enumerate() {
        if !names.insert(l.name.0.clone()) {
            return Err(format!(": links[{i}].name: {:?} is used twice", l.name.0));
        }
        if l.ports.is_empty() {
            return Err(format!(": links[{i}].ports: at least one port"));
        }
        for (j, p) in l.ports.iter().enumerate() {
            if !ports.insert(p.0.clone()) {
                return Err(format!(
                    ": links[{i}].ports[{j}]: {:?} is on a link already",
                    p.0
                ));
            }
        }
        links.push(LinkConfig {
            name: l.name.0,
            prefix: l.prefix.0,
            params: LinkParams {
                delay: l.delay_ms.0,
                jitter: l.jitter_ms.0,
                loss: l.loss.0,
                mtu: l.mtu.0,
            },
            ports: l.ports.into_iter().map(|p| p.0).collect(),
            up: l.up,
        });
    }
    Ok(RouterConfig {
        ra_interval: Duration::from_millis(file.ra_interval_ms.0),
        seed: file.seed,
        pcap_dir: file.pcap_dir,
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "ra_interval_ms: 1000
seed: 1
pcap_dir: out/real
links:
  - { name: home, prefix: \"2001:db8:1::/64\", delay_ms: 30, jitter_ms: 0, loss: 0.0, mtu: 1500, ports: [r-ha, r-mnh], up: true }
  - { name: access-a, prefix: \"2001:db8:a::/64\", delay_ms: 0.2, ports: [r-mna] }
";

    #[test]
    fn the_brief_example_parses_with_defaults() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(c.ra_interval, Duration::from_millis(1000));
        assert_eq!(c.pcap_dir.as_deref(), Some(Path::new("out/real")));
        assert_eq!(c.links[0].ports, ["r-ha", "r-mnh"]);
        assert_eq!(
            c.links[0].params,
            LinkParams::delay(Duration::from_millis(30))
        );
        let a = &c.links[1];
        assert_eq!(a.prefix, "2001:db8:a::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(a.params, LinkParams::delay(Duration::from_micros(200)));
        assert!(a.up);
    }

    #[test]
    fn mistakes_name_line_column_and_field() {
        let cases = [
            (
                EXAMPLE.replace("mtu: 1500,", "mtu: 1500, colour: blue,"),
                ":5:",
                "links[0]: unknown field `colour`",
            ),
            (
                EXAMPLE.replace("2001:db8:a::/64", "2001:db8:a::/48"),
                ":6:",
                "links[1].prefix: \"2001:db8:a::/48\": the prefix must be a /64",
            ),
            (
                EXAMPLE.replace("2001:db8:a::/64", "2001:db8:a::1/64"),
                ":6:",
                "links[1].prefix: \"2001:db8:a::1/64\": host bits set",
            ),
            (
                EXAMPLE.replace("loss: 0.0", "loss: 1.5"),
                ":5:",
                "links[0].loss: 1.5: a probability",
            ),
            (
                EXAMPLE.replace("mtu: 1500", "mtu: 1000"),
                ":5:",
                "links[0].mtu: 1000: bytes from 1280",
            ),
            (
                EXAMPLE.replace("delay_ms: 0.2", "delay_ms: -1"),
                ":6:",
                "links[1].delay_ms: -1: milliseconds",
            ),
            (
                EXAMPLE.replace("r-mna", "a/b"),
                ":6:",
                "links[1].ports[0]: \"a/b\": an interface name",
            ),
            (
                EXAMPLE.replace("ra_interval_ms: 1000", "ra_interval_ms: 10"),
                ":1:",
                "ra_interval_ms: 10: milliseconds from 30",
            ),
            (
                EXAMPLE.replace("seed: 1", "seed: one"),
                ":2:",
                "seed: invalid type",
            ),
        ];
        for (text, at, what) in cases {
            let e = parse(&text).unwrap_err();
            assert!(e.starts_with(at), "{e}");
            assert!(e.contains(what), "{e}\nwanted: {what}");
            assert!(!e.contains(" at line "), "{e}");
        }
        // The column is the value's.
        let e = parse(&EXAMPLE.replace("2001:db8:a::/64", "2001:db8:a::/48")).unwrap_err();
        assert!(e.starts_with(":6:31: links[1].prefix: "), "{e}");
    }

    #[test]
    fn checks_across_links_name_the_field() {
        let twice = EXAMPLE.replace("access-a", "home");
        assert_eq!(
            parse(&twice).unwrap_err(),
            ": links[1].name: \"home\" is used twice"
        );
        let shared = EXAMPLE.replace("r-mna", "r-ha");
        assert_eq!(
            parse(&shared).unwrap_err(),
            ": links[1].ports[0]: \"r-ha\" is on a link already"
        );
        let none = EXAMPLE.replace("ports: [r-mna]", "ports: []");
        assert_eq!(
            parse(&none).unwrap_err(),
            ": links[1].ports: at least one port"
        );
        assert_eq!(
            parse("links: []").unwrap_err(),
            ": links: at least one link"
        );
    }
}
