//! The `testbed ike` YAML file: plain serde structs (unknown keys are
//! errors), then [`load`] checks the values and builds the engine's
//! [`IkeConfig`], naming the field of any mistake. See
//! `testbed/examples/ike-peer.yaml` for every key.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use common::ike::crypto::{ed25519_private_from_pem, ed25519_public_from_pem, Encr};
use common::ike::{
    ChildConfig, Identity, IkeConfig, Mobility, NatTraversal, PeerAuth, PeerConfig, TsSpec,
    IKE_PORT,
};
use common::ipsec::{Lifetime, Mode, PortRange, Prefix};
use common::time::Duration;
use serde::Deserialize;

/// A mistake in the file, with the field it is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    id: IdEntry,
    /// PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    #[serde(default)]
    ed25519_key: Option<PathBuf>,
    local_addresses: Vec<IpAddr>,
    #[serde(default)]
    mobility: MobilityEntry,
    #[serde(default)]
    tunnel_addresses: bool,
    #[serde(default)]
    nat_traversal: NatEntry,
    #[serde(default = "yes")]
    return_routability: bool,
    #[serde(default)]
    proposals: Option<Vec<String>>,
    #[serde(default)]
    peers: Vec<PeerEntry>,
    #[serde(default)]
    tun: Option<TunEntry>,
}

fn yes() -> bool {
    true
}

/// `{ fqdn: NAME }` or `{ email: ADDRESS }`: an identity is a name,
/// never an address (REQ AM-2.1c).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdEntry {
    #[serde(default)]
    fqdn: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum MobilityEntry {
    #[default]
    Mobike,
    RMobike,
    Addrmgmt,
    Off,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum NatEntry {
    #[default]
    Auto,
    On,
    Off,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerEntry {
    name: String,
    id: IdEntry,
    #[serde(default)]
    psk: Option<String>,
    /// SubjectPublicKeyInfo PEM (`openssl pkey -pubout`).
    #[serde(default)]
    ed25519_pubkey: Option<PathBuf>,
    /// `[2001:db8::1]:500`, `192.0.2.1:4500`, or an address alone (port 500).
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    children: Vec<ChildEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChildEntry {
    name: String,
    #[serde(default)]
    mode: ModeEntry,
    local_ts: String,
    remote_ts: String,
    #[serde(default)]
    esp_proposals: Option<Vec<String>>,
    #[serde(default)]
    tunnel_address: Option<IpAddr>,
    /// Rekey after this many seconds; the SA expires 10 % later.
    #[serde(default)]
    lifetime: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeEntry {
    #[default]
    Tunnel,
    Transport,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TunEntry {
    #[serde(default = "default_tun_name")]
    name: String,
    #[serde(default = "default_mtu")]
    mtu: u16,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    routes: Vec<String>,
}

fn default_tun_name() -> String {
    "ike0".to_string()
}

fn default_mtu() -> u16 {
    1400
}

/// The TUN device the data plane reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    pub name: String,
    pub mtu: u16,
    /// Put on the device (`ip addr add`).
    pub addresses: Vec<Prefix>,
    /// Sent into the device (`ip route add ... dev NAME`).
    pub routes: Vec<Prefix>,
}

/// Everything a `testbed ike` run needs from its file.
#[derive(Debug, Clone)]
pub struct PeerSetup {
    /// The engine's configuration; `seed` is 0 until the driver draws one.
    pub ike: IkeConfig,
    /// Where UDP 500 and 4500 (and raw ESP) are bound.
    pub local_addresses: Vec<IpAddr>,
    pub tun: Option<TunConfig>,
}

/// Reads and checks a config file; relative key paths are relative to it.
pub fn load(path: &Path) -> Result<PeerSetup, ConfigError> {
    let file = path.display().to_string();
    let text = fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|message| ConfigError { file, message })
}

/// Checks a config given as text; key paths are relative to `base`.
pub fn parse(text: &str, base: &Path) -> Result<PeerSetup, String> {
    let f: File = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let mut ike = IkeConfig::new(identity(&f.id, "id")?, 0);
    if let Some(key) = &f.ed25519_key {
        let pem = read_key(base, key, "ed25519_key")?;
        ike.signing_key = Some(
            ed25519_private_from_pem(&pem)
                .map_err(|e| format!("ed25519_key: {}: {e}", key.display()))?,
        );
    }
    if f.local_addresses.is_empty() {
        return Err("local_addresses: give at least one address".to_string());
    }
    ike.mobility = match f.mobility {
        MobilityEntry::Mobike => Mobility::Mobike { r_mobike: false },
        MobilityEntry::RMobike => Mobility::Mobike { r_mobike: true },
        MobilityEntry::Addrmgmt => Mobility::AddrMgmt,
        MobilityEntry::Off => Mobility::Off,
    };
    ike.tunnel_addresses = f.tunnel_addresses;
    ike.nat_traversal = match f.nat_traversal {
        NatEntry::Auto => NatTraversal::Auto,
        NatEntry::On => NatTraversal::On,
        NatEntry::Off => NatTraversal::Off,
    };
    ike.return_routability = f.return_routability;
    if let Some(p) = &f.proposals {
        ike.proposals = proposals(p, "proposals")?;
    }
    for (i, p) in f.peers.iter().enumerate() {
        let at = format!("peers[{i}]");
        if f.peers[..i].iter().any(|q| q.name == p.name) {
            return Err(format!("{at}.name: {:?} is used twice", p.name));
        }
        let peer = peer(p, &at, base)?;
        if matches!(peer.auth, PeerAuth::Ed25519(_)) && ike.signing_key.is_none() {
            return Err(format!(
                "{at}.ed25519_pubkey: needs our own ed25519_key at the top level"
            ));
        }
        ike.peers.push(peer);
    }
    let tun = f.tun.as_ref().map(tun).transpose()?;
    Ok(PeerSetup {
        ike,
        local_addresses: f.local_addresses,
        tun,
    })
}

fn identity(id: &IdEntry, at: &str) -> Result<Identity, String> {
    let (id, key) = match (&id.fqdn, &id.email) {
        (Some(s), None) => (Identity::Fqdn(s.clone()), "fqdn"),
        (None, Some(s)) => (Identity::Rfc822(s.clone()), "email"),
        _ => return Err(format!("{at}: give exactly one of fqdn and email")),
    };
    let s = id.to_string();
    if s.is_empty() || s.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "{at}.{key}: {s:?}: an identity is a name, never an address"
        ));
    }
    Ok(id)
}

fn read_key(base: &Path, path: &Path, at: &str) -> Result<String, String> {
    let full = base.join(path);
    fs::read_to_string(&full).map_err(|e| format!("{at}: {}: {e}", full.display()))
}

fn proposals(words: &[String], at: &str) -> Result<Vec<Encr>, String> {
    if words.is_empty() {
        return Err(format!("{at}: give at least one"));
    }
    words
        .iter()
        .map(|w| {
            Encr::from_keyword(w).ok_or_else(|| {
                format!("{at}: unknown {w:?} (aes128gcm16, aes256gcm16 or chacha20poly1305)")
            })
        })
        .collect()
}

fn peer(p: &PeerEntry, at: &str, base: &Path) -> Result<PeerConfig, String> {
    let auth = match (&p.psk, &p.ed25519_pubkey) {
        (Some(psk), None) if !psk.is_empty() => PeerAuth::Psk(psk.as_bytes().to_vec()),
        (None, Some(key)) => {
            let at = format!("{at}.ed25519_pubkey");
            let pem = read_key(base, key, &at)?;
            PeerAuth::Ed25519(
                ed25519_public_from_pem(&pem)
                    .map_err(|e| format!("{at}: {}: {e}", key.display()))?,
            )
        }
        _ => {
            return Err(format!(
                "{at}: give exactly one of psk (not empty) and ed25519_pubkey"
            ))
        }
    };
    let addresses = p
        .addresses
        .iter()
        .enumerate()
        .map(|(i, a)| peer_address(a).map_err(|e| format!("{at}.addresses[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut children = Vec::new();
    for (i, c) in p.children.iter().enumerate() {
        let at = format!("{at}.children[{i}]");
        if p.children[..i].iter().any(|d| d.name == c.name) {
            return Err(format!("{at}.name: {:?} is used twice", c.name));
        }
        children.push(child(c, &at)?);
    }
    Ok(PeerConfig {
        name: p.name.clone(),
        id: identity(&p.id, &format!("{at}.id"))?,
        auth,
        addresses,
        children,
        local: None,
    })
}

fn peer_address(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|a| SocketAddr::new(a, IKE_PORT)))
        .map_err(|_| format!("{s:?}: not an address or [address]:port"))
}

fn child(c: &ChildEntry, at: &str) -> Result<ChildConfig, String> {
    let mode = match c.mode {
        ModeEntry::Tunnel => Mode::Tunnel,
        ModeEntry::Transport => Mode::Transport,
    };
    let local = traffic_selector(&c.local_ts).map_err(|e| format!("{at}.local_ts: {e}"))?;
    let remote = traffic_selector(&c.remote_ts).map_err(|e| format!("{at}.remote_ts: {e}"))?;
    let mut child = ChildConfig::new(&c.name, mode, local, remote);
    if let Some(p) = &c.esp_proposals {
        child.proposals = proposals(p, &format!("{at}.esp_proposals"))?;
    }
    child.tunnel_address = c.tunnel_address;
    if let Some(secs) = c.lifetime {
        if secs == 0 {
            return Err(format!("{at}.lifetime: must be at least 1 second"));
        }
        child.lifetime = Lifetime {
            soft_time: Some(Duration::from_secs(secs)),
            hard_time: Some(Duration::from_secs(secs + (secs / 10).max(1))),
            ..Lifetime::default()
        };
    }
    Ok(child)
}

/// swanctl's syntax: `2001:db8::/32` or `dynamic`, either with `[PROTO]`
/// or `[PROTO/PORTS]` after it: an IP protocol number, then a port or a
/// range `LOW-HIGH`. For the Mobility Header the ports carry the type in
/// their high octet: BU and BA are `[135/1280-1791]`.
fn traffic_selector(s: &str) -> Result<TsSpec, String> {
    let (what, protocol, ports) = match s.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((what, inner)) => {
            let (protocol, ports) = inner.split_once('/').unwrap_or((inner, "0-65535"));
            let protocol = protocol
                .parse::<u8>()
                .map_err(|_| format!("{s:?}: the protocol in [] must be a number 0-255"))?;
            let ports = port_range(ports).ok_or_else(|| {
                format!("{s:?}: the ports after / must be N or LOW-HIGH, 0-65535, LOW <= HIGH")
            })?;
            (what, protocol, ports)
        }
        None => (s, 0, PortRange::ANY),
    };
    let prefix = match what {
        "dynamic" => None,
        p => Some(p.parse::<Prefix>()?),
    };
    Ok(TsSpec {
        prefix,
        protocol,
        ports,
    })
}

fn port_range(s: &str) -> Option<PortRange> {
    let (low, high) = s.split_once('-').unwrap_or((s, s));
    let (low, high) = (low.parse().ok()?, high.parse().ok()?);
    (low <= high).then_some(PortRange { low, high })
}

fn tun(t: &TunEntry) -> Result<TunConfig, String> {
    let prefixes = |list: &[String], at: &str| {
        list.iter()
            .enumerate()
            .map(|(i, p)| {
                p.parse::<Prefix>()
                    .map_err(|e| format!("tun.{at}[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    // IFNAMSIZ is 16 with the NUL; no '/' or spaces (ip(8) and sysfs).
    if t.name.is_empty()
        || t.name.len() > 15
        || !t
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "tun.name: {:?}: 1 to 15 letters, digits, '-', '_' or '.'",
            t.name
        ));
    }
    if t.mtu < 1280 {
        return Err(format!("tun.mtu: {} is below IPv6's minimum 1280", t.mtu));
    }
    Ok(TunConfig {
        name: t.name.clone(),
        mtu: t.mtu,
        addresses: prefixes(&t.addresses, "addresses")?,
        routes: prefixes(&t.routes, "routes")?,
    })
}
