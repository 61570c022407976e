//! The home agent's configuration file (commented example: config/ha.yaml).

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use common::io::daemon::{self, FieldError, NodeFile, Seeds, TunFile};
use common::io::ike_file::{IkeFile, Role};
use common::io::Setup;
use common::ipsec::Ipsec;
use common::node::{Ha, HaConfig};
use common::time::Duration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaFile {
    /// The home agent's own address, on the home link.
    pub address: Ipv6Addr,
    /// The home link's prefix, as `2001:db8:1::/64`.
    pub home_prefix: String,
    /// The network interface on the home link; the kernel's IPv6 is
    /// switched off there while the agent runs.
    pub interface: String,
    /// The home addresses this agent serves.
    pub mobile_nodes: Vec<Ipv6Addr>,
    /// The longest registration granted, in seconds.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: u64,
    /// Static IPsec keys for the BUs and BAs of each mobile node (RFC
    /// 3776), relative to this file.
    pub ipsec: Option<PathBuf>,
    /// IKEv2 with the mobile nodes (RFC 4877; config/ha-ike.yaml).
    pub ike: Option<IkeFile>,
    #[serde(default)]
    pub tun: TunFile,
    /// The control socket (default /run/mip6/ha.sock).
    pub control: Option<PathBuf>,
    /// Keeps the binding cache and the static SAs' outbound sequence
    /// numbers across a restart, in this file (relative to this one);
    /// without it a restarted agent starts empty.
    pub store: Option<PathBuf>,
    pub seed: Option<u64>,
}

fn default_max_lifetime() -> u64 {
    3600
}

/// `2001:db8:1::/64`: home links are /64s (RFC 6275 §10.3.1 compares the
/// home address against the home subnet prefix).
fn prefix64(s: &str) -> Result<Ipv6Addr, FieldError> {
    let bad = || {
        FieldError::new(
            "home_prefix",
            Some(s.to_string()),
            format!("{s:?} is not an IPv6 /64 prefix such as 2001:db8:1::/64"),
        )
    };
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    if len != "64" {
        return Err(bad());
    }
    let a: Ipv6Addr = addr.parse().map_err(|_| bad())?;
    Ok(Ipv6Addr::from(u128::from(a) & !u128::from(u64::MAX)))
}

impl NodeFile for HaFile {
    const ROLE: &'static str = "ha";
    type Engine = Ha;

    fn ipsec(&self) -> Option<&Path> {
        self.ipsec.as_deref()
    }

    fn control(&self) -> Option<&Path> {
        self.control.as_deref()
    }

    fn store(&self) -> Option<&Path> {
        self.store.as_deref()
    }

    fn build(&self, ipsec: Ipsec, base: &Path, seeds: Seeds) -> Result<(Ha, Setup), FieldError> {
        let prefix = prefix64(&self.home_prefix)?;
        if !common::node::same_prefix64(prefix, self.address) {
            return Err(FieldError::new(
                "address",
                None,
                format!(
                    "{} is not on the home prefix {}",
                    self.address, self.home_prefix
                ),
            ));
        }
        if let Some(m) = self
            .mobile_nodes
            .iter()
            .find(|m| !common::node::same_prefix64(prefix, **m))
        {
            return Err(FieldError::new(
                "mobile_nodes",
                Some(m.to_string()),
                format!("{m} is not on the home prefix {}", self.home_prefix),
            ));
        }
        let seeds = seeds.or_fixed(self.seed);
        let mut cfg = HaConfig::new(self.address, self.mobile_nodes.clone(), seeds.node);
        cfg.home_prefix = prefix;
        if let Some(ike) = &self.ike {
            let role = Role::HomeAgent {
                address: self.address,
                home_prefix: prefix,
                mobile_nodes: &self.mobile_nodes,
            };
            cfg.ike = Some(ike.build(role, base, seeds.ike)?);
        }
        cfg.max_lifetime = Duration::from_secs(self.max_lifetime);
        let setup = Setup {
            links: vec![self.interface.clone()],
            stack: daemon::stack(&self.tun, &[self.address]),
            control: self.control.clone(),
        };
        Ok((Ha::new(cfg, ipsec), setup))
    }
}
