//! `swanctl --list-sas --raw` parsed into [`IkeSa`]s and their
//! [`ChildSa`]s.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::harness::{Error, Result};

/// What this module parses, for errors.
const WHAT: &str = "swanctl --list-sas --raw";

fn bad(problem: impl Into<String>) -> Error {
    Error::parse(WHAT, problem)
}

/// One IKE SA from `swanctl --list-sas --raw`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSa {
    /// The connection name.
    pub name: String,
    /// charon's unique id (the `<name|N>` tag in its log).
    pub uniqueid: u32,
    /// `ESTABLISHED`, `CONNECTING`, `DELETING`, ...
    pub state: String,
    /// Our IKE address.
    pub local_host: Option<IpAddr>,
    /// Our IKE port (4500 once NAT-T/MOBIKE moved it).
    pub local_port: Option<u16>,
    /// The peer's IKE address.
    pub remote_host: Option<IpAddr>,
    /// The peer's IKE port.
    pub remote_port: Option<u16>,
    /// Our identity.
    pub local_id: String,
    /// The peer's identity.
    pub remote_id: String,
    /// Whether we initiated this IKE SA.
    pub initiator: bool,
    /// SPIi.
    pub spi_i: u64,
    /// SPIr.
    pub spi_r: u64,
    /// Every scalar field as listed (`encr-alg`, `prf-alg`, `dh-group`,
    /// `nat-remote`, ...).
    pub fields: BTreeMap<String, String>,
    /// Its CHILD SAs.
    pub children: Vec<ChildSa>,
}

/// One CHILD SA from `swanctl --list-sas --raw`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSa {
    /// The child config's name.
    pub name: String,
    /// charon's unique id of this CHILD SA.
    pub uniqueid: u32,
    /// `INSTALLED`, `REKEYED`, `DELETING`, ...
    pub state: String,
    /// `TUNNEL` or `TRANSPORT`.
    pub mode: String,
    /// Whether ESP is UDP-encapsulated (always with libipsec).
    pub encap: bool,
    /// Our inbound SPI.
    pub spi_in: u32,
    /// Our outbound SPI (the peer's inbound).
    pub spi_out: u32,
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// Every scalar field as listed (`encr-alg`, `packets-in`, ...).
    pub fields: BTreeMap<String, String>,
}

impl ChildSa {
    /// A numeric field such as `packets-in`, `bytes-out`.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.fields.get(name).and_then(|v| v.parse().ok())
    }
}

/// A node of swanctl's raw output: `k=v`, `k=[a b]`, `k {...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Vici {
    Value(String),
    List(Vec<String>),
    Section(Vec<(String, Vici)>),
}

struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }
    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn eat(&mut self, c: char) -> Result<()> {
        if self.peek() == Some(c) {
            self.at += c.len_utf8();
            Ok(())
        } else {
            Err(bad(format!("expected {c:?} at {:?}", short(self.rest()))))
        }
    }
    /// Up to (not including) whitespace or any of `stops`.
    fn word(&mut self, stops: &str) -> &str {
        let rest = &self.text[self.at..];
        let end = rest
            .find(|c: char| c.is_whitespace() || stops.contains(c))
            .unwrap_or(rest.len());
        self.at += end;
        &rest[..end]
    }
    /// Entries until a closing brace (not consumed) or the end.
    fn entries(&mut self) -> Result<Vec<(String, Vici)>> {
        let mut entries = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek() {
                None | Some('}') => return Ok(entries),
                _ => {}
            }
            let key = self.word("={}").to_string();
            if key.is_empty() {
                return Err(bad(format!("expected a key at {:?}", short(self.rest()))));
            }
            self.skip_spaces();
            match self.peek() {
                Some('=') => {
                    self.eat('=')?;
                    if self.peek() == Some('[') {
                        self.eat('[')?;
                        let end = list_end(self.rest())
                            .ok_or_else(|| bad(format!("unclosed list after {key}")))?;
                        let items = self.rest()[..end]
                            .split_whitespace()
                            .map(str::to_string)
                            .collect();
                        self.at += end + 1;
                        entries.push((key, Vici::List(items)));
                    } else {
                        let value = self.word("}").to_string();
                        entries.push((key, Vici::Value(value)));
                    }
                }
                Some('{') => {
                    self.eat('{')?;
                    let inner = self.entries()?;
                    self.eat('}')?;
                    entries.push((key, Vici::Section(inner)));
                }
                _ => return Err(bad(format!("expected = or {{ after {key}"))),
            }
        }
    }
}

/// Where the list that `s` starts inside ends: the first unmatched `]`,
/// since selectors have brackets of their own
/// (`2001:db8::1/128[mobility-header/1280-1791]`).
fn list_end(s: &str) -> Option<usize> {
    let mut depth = 0u32;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

fn scalars(entries: &[(String, Vici)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|(k, v)| match v {
            Vici::Value(s) => Some((k.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

fn list(entries: &[(String, Vici)], key: &str) -> Vec<String> {
    entries
        .iter()
        .find_map(|(k, v)| match v {
            Vici::List(items) if k == key => Some(items.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn hex_field<T>(
    fields: &BTreeMap<String, String>,
    key: &str,
    parse: fn(&str, u32) -> Result<T, std::num::ParseIntError>,
) -> Result<T> {
    let v = fields.get(key).ok_or_else(|| bad(format!("no {key}")))?;
    parse(v, 16).map_err(|e| bad(format!("{key}={v}: {e}")))
}

fn parse_child(name: &str, entries: &[(String, Vici)]) -> Result<ChildSa> {
    let fields = scalars(entries);
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    Ok(ChildSa {
        name: fields
            .get("name")
            .cloned()
            .unwrap_or_else(|| name.to_string()),
        uniqueid: get("uniqueid").parse().unwrap_or(0),
        state: get("state"),
        mode: get("mode"),
        encap: get("encap") == "yes",
        spi_in: hex_field(&fields, "spi-in", u32::from_str_radix).unwrap_or(0),
        spi_out: hex_field(&fields, "spi-out", u32::from_str_radix).unwrap_or(0),
        local_ts: list(entries, "local-ts"),
        remote_ts: list(entries, "remote-ts"),
        fields,
    })
}

fn parse_ike(name: &str, entries: &[(String, Vici)]) -> Result<IkeSa> {
    let fields = scalars(entries);
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let mut children = Vec::new();
    for (k, v) in entries {
        if let (true, Vici::Section(list)) = (k == "child-sas", v) {
            for (child_name, child) in list {
                if let Vici::Section(c) = child {
                    children.push(parse_child(child_name, c)?);
                }
            }
        }
    }
    Ok(IkeSa {
        name: name.to_string(),
        uniqueid: get("uniqueid")
            .parse()
            .map_err(|_| bad(format!("IKE SA {name}: no uniqueid")))?,
        state: get("state"),
        local_host: get("local-host").parse().ok(),
        local_port: get("local-port").parse().ok(),
        remote_host: get("remote-host").parse().ok(),
        remote_port: get("remote-port").parse().ok(),
        local_id: get("local-id"),
        remote_id: get("remote-id"),
        initiator: get("initiator") == "yes",
        spi_i: hex_field(&fields, "initiator-spi", u64::from_str_radix)?,
        spi_r: hex_field(&fields, "responder-spi", u64::from_str_radix).unwrap_or(0),
        fields,
        children,
    })
}

/// Parses `swanctl --list-sas --raw`: one `list-sa event {NAME {...}}` line
/// per IKE SA. Values are assumed free of spaces (FQDN ids, addresses).
pub fn parse_list_sas(raw: &str) -> Result<Vec<IkeSa>> {
    let mut sas = Vec::new();
    for line in raw.lines() {
        let Some(body) = line.strip_prefix("list-sa event ") else {
            continue;
        };
        let mut cur = Cursor { text: body, at: 0 };
        cur.skip_spaces();
        cur.eat('{')?;
        for (name, sa) in cur.entries()? {
            if let Vici::Section(entries) = sa {
                sas.push(parse_ike(&name, &entries)?);
            }
        }
        cur.eat('}')?;
    }
    Ok(sas)
}

#[cfg(test)]
pub(super) const LIST_SAS_RAW: &str = "list-sa event {mip {uniqueid=1 version=2 state=ESTABLISHED local-host=2001:db8:1::a local-port=4500 local-id=a.example remote-host=2001:db8:1::b remote-port=4500 remote-id=b.example initiator=yes initiator-spi=909d8a556545620a responder-spi=41e6b0e87a2e6c21 nat-remote=yes nat-any=yes encr-alg=AES_GCM_16 encr-keysize=256 prf-alg=PRF_HMAC_SHA2_256 dh-group=CURVE_25519 established=0 rekey-time=13813 child-sas {net6-1 {name=net6 uniqueid=1 reqid=1 state=INSTALLED mode=TUNNEL protocol=ESP encap=yes spi-in=f5daaa3d spi-out=c24a34a9 encr-alg=AES_GCM_16 encr-keysize=256 bytes-in=0 packets-in=0 bytes-out=0 packets-out=0 rekey-time=3280 life-time=3960 install-time=0 local-ts=[2001:db8:a::1/128] remote-ts=[2001:db8:b::1/128]}}}}\nlist-sas reply {}\n";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn list_sas_raw_parses() {
        let sas = parse_list_sas(LIST_SAS_RAW).unwrap();
        assert_eq!(sas.len(), 1);
        let sa = &sas[0];
        assert_eq!(sa.name, "mip");
        assert_eq!(sa.state, "ESTABLISHED");
        assert!(sa.initiator);
        assert_eq!(sa.spi_i, 0x909d8a556545620a);
        assert_eq!(sa.spi_r, 0x41e6b0e87a2e6c21);
        assert_eq!(sa.remote_host, Some("2001:db8:1::b".parse().unwrap()));
        assert_eq!(sa.remote_port, Some(4500));
        assert_eq!(sa.children.len(), 1);
        let c = &sa.children[0];
        assert_eq!((c.name.as_str(), c.state.as_str()), ("net6", "INSTALLED"));
        assert_eq!((c.spi_in, c.spi_out), (0xf5daaa3d, 0xc24a34a9));
        assert_eq!(c.local_ts, ["2001:db8:a::1/128"]);
        assert_eq!(c.counter("packets-in"), Some(0));
        assert!(c.encap);
    }

    #[test]
    fn selectors_with_protocol_and_ports_parse() {
        let raw = LIST_SAS_RAW.replace(
            "remote-ts=[2001:db8:b::1/128]",
            "remote-ts=[2001:db8:b::1/128[mobility-header/1280-1791] 2001:db8:c::/48[udp]]",
        );
        let c = &parse_list_sas(&raw).unwrap()[0].children[0];
        assert_eq!(
            c.remote_ts,
            [
                "2001:db8:b::1/128[mobility-header/1280-1791]",
                "2001:db8:c::/48[udp]"
            ]
        );
    }
}
