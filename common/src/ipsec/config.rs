//! Static keying: SAs and policies written by hand, as UMIP and setkey
//! users do today, until IKEv2 installs them. Plain serde structs, parsed
//! from YAML by the daemons and the testbed; [`IpsecConfig::build`] checks
//! everything and says where a mistake is.
//!
//! ```yaml
//! fallback: bypass                 # what no policy matches (default: discard)
//! sa_pairs:
//!   - local: 2001:db8:3::1         # this node (the CN)
//!     peer: 2001:db8:1::100        # the MN's home address
//!     mode: transport
//!     algorithm: aes128gcm16       # aes256gcm16, chacha20poly1305, null-sha256
//!     inbound:  { spi: 0x202, key: 0x000102030405060708090a0b0c0d0e0f10111213 }
//!     outbound: { spi: 0x201, key: 0x101112131415161718191a1b1c1d1e1f20212223 }
//!     selector: { protocol: mobility, mh_types: [bu, ba] }   # addresses default to local/peer
//!     replay_window: 1024          # default; 0 turns anti-replay off
//!     lifetime: { soft_seconds: 3000, hard_seconds: 3600 }
//! policies:                        # first match wins
//!   - { match: { remote: 2001:db8:1::100, protocol: mobility, mh_types: [bu, ba] }, protect: [0x201] }
//! ```

use core::fmt;
use core::net::IpAddr;

use serde::Deserialize;

use super::{
    Action, AddressPair, Algorithm, Ipsec, Lifetime, Mode, Policy, PortRange, Prefix, SaKeys,
    SaPairSpec, Selector,
};
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, MhType};

/// A mistake in the configuration, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ConfigError {
    pub at: String,
    pub message: String,
}

fn err(at: impl fmt::Display, message: impl fmt::Display) -> ConfigError {
    ConfigError {
        at: at.to_string(),
        message: message.to_string(),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpsecConfig {
    /// `bypass` or `discard` (RFC 4301 §4.4.1: discard).
    #[serde(default)]
    pub fallback: Option<String>,
    #[serde(default)]
    pub sa_pairs: Vec<SaPairConfig>,
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaPairConfig {
    pub local: IpAddr,
    pub peer: IpAddr,
    /// `transport` or `tunnel`.
    pub mode: String,
    /// A strongSwan ESP proposal keyword (see [`Algorithm`]).
    pub algorithm: String,
    pub inbound: KeysConfig,
    pub outbound: KeysConfig,
    #[serde(default)]
    pub selector: SelectorConfig,
    #[serde(default = "default_window")]
    pub replay_window: u32,
    #[serde(default)]
    pub esn: bool,
    #[serde(default)]
    pub lifetime: LifetimeConfig,
}

fn default_window() -> u32 {
    super::DEFAULT_WINDOW
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub spi: u32,
    /// Hex, `0x` optional: the AEAD key followed by its 4-byte salt, or the
    /// HMAC key for `null-sha256`.
    pub key: HexOrNumber,
}

/// YAML reads `0x0102…` as a number when it fits; keys accept both.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HexOrNumber {
    Text(String),
    Number(u64),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifetimeConfig {
    pub soft_seconds: Option<u64>,
    pub hard_seconds: Option<u64>,
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
}

/// Selector fields; absent ones mean "any" (or, in an SA pair, the pair's
/// own addresses).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorConfig {
    /// A prefix (`2001:db8::/32`) or an address.
    pub local: Option<String>,
    pub remote: Option<String>,
    /// A name (`mobility`, `udp`, `tcp`, `icmpv6`, …) or a number.
    pub protocol: Option<NameOrNumber>,
    /// `500` or `1024-65535`.
    pub local_ports: Option<NameOrNumber>,
    pub remote_ports: Option<NameOrNumber>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// Mobility Header types by name (`bu`, `ba`, `be`, `brr`, `hoti`,
    /// `coti`, `hot`, `cot`) or number.
    #[serde(default)]
    pub mh_types: Vec<NameOrNumber>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NameOrNumber {
    Number(u64),
    Name(String),
}

impl fmt::Display for NameOrNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameOrNumber::Number(n) => write!(f, "{n}"),
            NameOrNumber::Name(s) => write!(f, "{s}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(rename = "match", default)]
    pub selector: SelectorConfig,
    /// `bypass` or `discard`; leave out with `protect`.
    pub action: Option<String>,
    /// Outbound SPIs of the SA pairs to apply, innermost first.
    #[serde(default)]
    pub protect: Vec<u32>,
}

impl IpsecConfig {
    /// Installs the SA pairs and policies into a new [`Ipsec`]; SA lifetimes
    /// count from `now`.
    pub fn build(&self, now: Instant) -> Result<Ipsec, ConfigError> {
        let mut ipsec = Ipsec::default();
        ipsec.spd.fallback = match self.fallback.as_deref() {
            None => Action::Discard,
            Some(a) => plain_action(a).map_err(|m| err("fallback", m))?,
        };
        let mut outbound = Vec::new();
        for (i, p) in self.sa_pairs.iter().enumerate() {
            let at = format!("sa_pairs[{i}]");
            let spec = p.spec().map_err(|m| err(&at, m))?;
            let (_, out) = ipsec.sad.add_pair(now, &spec).map_err(|e| err(&at, e))?;
            if outbound.iter().any(|(spi, _)| *spi == spec.outbound.spi) {
                return Err(err(
                    &at,
                    format!("outbound SPI {:#x} is used twice", spec.outbound.spi),
                ));
            }
            outbound.push((spec.outbound.spi, out));
        }
        for (i, p) in self.policies.iter().enumerate() {
            let at = format!("policies[{i}]");
            let selector = p.selector.build(None).map_err(|m| err(&at, m))?;
            let action = match (p.action.as_deref(), p.protect.as_slice()) {
                (Some(a), []) => plain_action(a).map_err(|m| err(&at, m))?,
                (None | Some("protect"), spis) if !spis.is_empty() => {
                    let mut sas = Vec::new();
                    for spi in spis {
                        let (_, id) = outbound.iter().find(|(s, _)| s == spi).ok_or_else(|| {
                            err(&at, format!("no SA pair has outbound SPI {spi:#x}"))
                        })?;
                        sas.push(*id);
                    }
                    // SAs applied together move together (REQ AM-C.1).
                    for w in sas.windows(2) {
                        ipsec.sad.bundle(w[0], w[1]).map_err(|e| err(&at, e))?;
                    }
                    Action::Protect(sas)
                }
                _ => {
                    return Err(err(
                        &at,
                        "give either action: bypass|discard, or protect: [outbound SPIs]",
                    ))
                }
            };
            ipsec.spd.push(Policy { selector, action });
        }
        Ok(ipsec)
    }
}

impl IpsecConfig {
    /// Wireshark `esp_sa` rows for every SA of the configuration, so a
    /// capture of its traffic opens decrypted (see [`crate::keylog`]).
    pub fn key_log_rows(&self) -> Result<Vec<String>, ConfigError> {
        let mut rows = Vec::new();
        for (i, p) in self.sa_pairs.iter().enumerate() {
            let spec = p.spec().map_err(|m| err(format!("sa_pairs[{i}]"), m))?;
            let v6 = spec.addresses.local.is_ipv6();
            for k in [&spec.inbound, &spec.outbound] {
                rows.extend(crate::keylog::esp_row_for(
                    v6,
                    k.spi,
                    spec.algorithm,
                    &k.key,
                ));
            }
        }
        Ok(rows)
    }
}

fn plain_action(a: &str) -> Result<Action, String> {
    match a {
        "bypass" => Ok(Action::Bypass),
        "discard" => Ok(Action::Discard),
        other => Err(format!("unknown action {other:?} (bypass, discard)")),
    }
}

impl SaPairConfig {
    fn spec(&self) -> Result<SaPairSpec, String> {
        let mode = match self.mode.as_str() {
            "transport" => Mode::Transport,
            "tunnel" => Mode::Tunnel,
            m => return Err(format!("unknown mode {m:?} (transport, tunnel)")),
        };
        let algorithm = Algorithm::from_keyword(&self.algorithm).ok_or_else(|| {
            let known: Vec<_> = Algorithm::ALL.iter().map(|a| a.keyword()).collect();
            format!(
                "unknown algorithm {:?} ({})",
                self.algorithm,
                known.join(", ")
            )
        })?;
        let keys = |k: &KeysConfig, dir: &str| -> Result<SaKeys, String> {
            let key = match &k.key {
                HexOrNumber::Text(t) => parse_hex(t),
                HexOrNumber::Number(_) => Err("write the key as a quoted hex string".to_owned()),
            }
            .map_err(|m| format!("{dir}.key: {m}"))?;
            Ok(SaKeys { spi: k.spi, key })
        };
        let addresses = AddressPair {
            local: self.local,
            peer: self.peer,
        };
        let mut spec = SaPairSpec::new(
            addresses,
            mode,
            algorithm,
            self.selector.build(Some(addresses))?,
            keys(&self.inbound, "inbound")?,
            keys(&self.outbound, "outbound")?,
        );
        spec.replay_window = self.replay_window;
        spec.esn = self.esn;
        let l = &self.lifetime;
        spec.lifetime = Lifetime {
            soft_time: l.soft_seconds.map(Duration::from_secs),
            hard_time: l.hard_seconds.map(Duration::from_secs),
            soft_bytes: l.soft_bytes,
            hard_bytes: l.hard_bytes,
        };
        Ok(spec)
    }
}

impl SelectorConfig {
    /// With `pair`, absent addresses default to the SA pair's own.
    fn build(&self, pair: Option<AddressPair>) -> Result<Selector, String> {
        let prefix = |s: &Option<String>, default: Option<IpAddr>| match (s, default) {
            (Some(s), _) => s.parse::<Prefix>(),
            (None, Some(a)) => Ok(Prefix::host(a)),
            (None, None) => Ok(Prefix::ANY),
        };
        let mut sel = Selector::between(
            prefix(&self.local, pair.map(|p| p.local))?,
            prefix(&self.remote, pair.map(|p| p.peer))?,
        );
        sel.protocol = self.protocol.as_ref().map(protocol).transpose()?;
        sel.local_ports = self
            .local_ports
            .as_ref()
            .map_or(Ok(PortRange::ANY), ports)?;
        sel.remote_ports = self
            .remote_ports
            .as_ref()
            .map_or(Ok(PortRange::ANY), ports)?;
        sel.icmp = self.icmp_type.map(|t| (t, self.icmp_code));
        if self.icmp_code.is_some() && self.icmp_type.is_none() {
            return Err("icmp_code needs icmp_type".to_owned());
        }
        sel.mh_types = self
            .mh_types
            .iter()
            .map(mh_type)
            .collect::<Result<_, _>>()?;
        let needs = |what: &str, p: IpProtocol| match sel.protocol {
            Some(q) if q == p => Ok(()),
            _ => Err(format!("{what} needs protocol: {}", protocol_name(p))),
        };
        let has_ports = matches!(sel.protocol, Some(IpProtocol::Udp | IpProtocol::Tcp));
        if (sel.local_ports != PortRange::ANY || sel.remote_ports != PortRange::ANY) && !has_ports {
            return Err("ports need protocol: udp or tcp".to_owned());
        }
        if sel.icmp.is_some() {
            needs("icmp_type", IpProtocol::Icmpv6)?;
        }
        if !sel.mh_types.is_empty() {
            needs("mh_types", IpProtocol::Mobility)?;
        }
        Ok(sel)
    }
}

const PROTOCOLS: [(&str, IpProtocol); 8] = [
    ("mobility", IpProtocol::Mobility),
    ("udp", IpProtocol::Udp),
    ("tcp", IpProtocol::Tcp),
    ("icmpv6", IpProtocol::Icmpv6),
    ("esp", IpProtocol::Esp),
    ("ipv6", IpProtocol::Ipv6),
    ("ipv4", IpProtocol::Ipv4),
    ("icmp", IpProtocol::Icmp),
];

fn protocol_name(p: IpProtocol) -> String {
    PROTOCOLS
        .iter()
        .find(|(_, q)| *q == p)
        .map_or_else(|| u8::from(p).to_string(), |(n, _)| (*n).to_owned())
}

fn protocol(v: &NameOrNumber) -> Result<IpProtocol, String> {
    match v {
        NameOrNumber::Number(n) => u8::try_from(*n)
            .map(IpProtocol::from)
            .map_err(|_| format!("protocol {n} is not 0-255")),
        NameOrNumber::Name(s) => PROTOCOLS
            .iter()
            .find(|(n, _)| n == s)
            .map(|(_, p)| *p)
            .ok_or_else(|| format!("unknown protocol {s:?}")),
    }
}

fn ports(v: &NameOrNumber) -> Result<PortRange, String> {
    let bad = || format!("bad port range {v} (write 500 or 1024-65535)");
    let one = |s: &str| s.trim().parse::<u16>().map_err(|_| bad());
    match v {
        NameOrNumber::Number(n) => u16::try_from(*n).map(PortRange::single).map_err(|_| bad()),
        NameOrNumber::Name(s) => {
            let (low, high) = match s.split_once('-') {
                Some((l, h)) => (one(l)?, one(h)?),
                None => (one(s)?, one(s)?),
            };
            if low > high {
                return Err(bad());
            }
            Ok(PortRange { low, high })
        }
    }
}

const MH_TYPES: [(&str, MhType); 8] = [
    ("brr", MhType::BindingRefreshRequest),
    ("hoti", MhType::HomeTestInit),
    ("coti", MhType::CareOfTestInit),
    ("hot", MhType::HomeTest),
    ("cot", MhType::CareOfTest),
    ("bu", MhType::BindingUpdate),
    ("ba", MhType::BindingAck),
    ("be", MhType::BindingError),
];

fn mh_type(v: &NameOrNumber) -> Result<u8, String> {
    match v {
        NameOrNumber::Number(n) => {
            u8::try_from(*n).map_err(|_| format!("MH type {n} is not 0-255"))
        }
        NameOrNumber::Name(s) => MH_TYPES
            .iter()
            .find(|(n, _)| n == s)
            .map(|(_, t)| u8::from(*t))
            .ok_or_else(|| {
                format!("unknown MH type {s:?} (bu, ba, be, brr, hoti, coti, hot, cot)")
            }),
    }
}

/// Hex with an optional `0x`.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let h = s.trim().trim_start_matches("0x");
    if h.len() % 2 != 0 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("not hex: {s:?}"));
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| format!("not hex: {s:?}")))
        .collect()
}
