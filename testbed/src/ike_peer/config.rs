//! The `testbed ike` YAML file: the `ike:` section the daemons have
//! ([`common::io::ike_file`]), the addresses to bind and an optional TUN
//! device. Unknown keys are errors; every mistake names the file, line,
//! column and field. See `testbed/examples/ike-peer.yaml` for every key.

use std::net::IpAddr;
use std::path::Path;

use common::ike::IkeConfig;
use common::io::daemon::{read_yaml, FieldError, FileError};
use common::io::ike_file::{Checked, IkeFile, Role};
use common::ipsec::Prefix;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    ike: IkeFile,
    local_addresses: Vec<IpAddr>,
    #[serde(default)]
    tun: Option<TunEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TunEntry {
    #[serde(default = "default_tun_name")]
    name: String,
    #[serde(default = "default_mtu")]
    mtu: u16,
    #[serde(default)]
    addresses: Vec<Checked<Prefix>>,
    #[serde(default)]
    routes: Vec<Checked<Prefix>>,
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
    /// The engine's configuration; its seed is zero until the driver
    /// draws one.
    pub ike: IkeConfig,
    /// Where UDP 500 and 4500 (and raw ESP) are bound.
    pub local_addresses: Vec<IpAddr>,
    pub tun: Option<TunConfig>,
}

/// Reads and checks a config file; key paths are relative to it.
pub fn load(path: &Path) -> Result<PeerSetup, FileError> {
    let f: File = read_yaml(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    build(&f, base).map_err(|e| e.in_file(path))
}

fn build(f: &File, base: &Path) -> Result<PeerSetup, FieldError> {
    if f.local_addresses.is_empty() {
        return Err(FieldError::new(
            "local_addresses",
            None,
            "give at least one address",
        ));
    }
    Ok(PeerSetup {
        ike: f.ike.build(Role::Peer, base, [0; 32])?,
        local_addresses: f.local_addresses.clone(),
        tun: f.tun.as_ref().map(tun).transpose()?,
    })
}

fn tun(t: &TunEntry) -> Result<TunConfig, FieldError> {
    // IFNAMSIZ is 16 with the NUL; no '/' or spaces (ip(8) and sysfs).
    if t.name.is_empty()
        || t.name.len() > 15
        || !t
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(FieldError::new(
            "tun.name",
            Some(t.name.clone()),
            format!("{:?}: 1 to 15 letters, digits, '-', '_' or '.'", t.name),
        ));
    }
    if t.mtu < 1280 {
        return Err(FieldError::new(
            "tun.mtu",
            Some(t.mtu.to_string()),
            format!("{} is below IPv6's minimum 1280", t.mtu),
        ));
    }
    let values = |list: &[Checked<Prefix>]| list.iter().map(|p| p.value).collect();
    Ok(TunConfig {
        name: t.name.clone(),
        mtu: t.mtu,
        addresses: values(&t.addresses),
        routes: values(&t.routes),
    })
}
