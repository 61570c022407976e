//! The mobile node's configuration file (commented example:
//! config/mn.yaml).

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use common::io::daemon::{self, FieldError, NodeFile, Seeds, TunFile};
use common::io::ike_file::{IkeFile, Role};
use common::io::Setup;
use common::ipsec::Ipsec;
use common::node::{Correspondent, Mn, MnConfig, RouteOptimisation};
use common::time::Duration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnFile {
    pub home_address: Ipv6Addr,
    pub home_agent: Ipv6Addr,
    /// The network interfaces the node may attach through, in order: the
    /// first is link 0. Each has the kernel's IPv6 switched off while the
    /// node runs.
    pub interfaces: Vec<String>,
    #[serde(default)]
    pub correspondents: Vec<CorrespondentFile>,
    /// Seconds asked of the home agent.
    #[serde(default = "default_home_lifetime")]
    pub home_lifetime: u64,
    /// Seconds asked of correspondents.
    #[serde(default = "default_correspondent_lifetime")]
    pub correspondent_lifetime: u64,
    /// Static IPsec keys (the format of config/ipsec/mn.yaml), relative to
    /// this file.
    pub ipsec: Option<PathBuf>,
    /// IKEv2 with the home agent and correspondents (config/mn-ike.yaml).
    pub ike: Option<IkeFile>,
    #[serde(default)]
    pub tun: TunFile,
    /// The control socket (default /run/mip6/mn.sock).
    pub control: Option<PathBuf>,
    /// A fixed RNG seed, for labs that want the same nonces every run.
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrespondentFile {
    pub address: Ipv6Addr,
    pub mode: Mode,
}

/// How the node talks to a correspondent while away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A BU under a suitable SA (draft-dupont-mipv6-cn-ipsec §4).
    Ipsec,
    /// Return routability, then a BU (RFC 6275 §5.2).
    #[serde(alias = "rr")]
    ReturnRoutability,
    /// Home Address option under the SA, answers through the home agent.
    Triangular,
    /// Everything through the home agent.
    None,
}

fn default_home_lifetime() -> u64 {
    600
}

fn default_correspondent_lifetime() -> u64 {
    420
}

impl NodeFile for MnFile {
    const ROLE: &'static str = "mn";
    type Engine = Mn;

    fn ipsec(&self) -> Option<&Path> {
        self.ipsec.as_deref()
    }

    fn control(&self) -> Option<&Path> {
        self.control.as_deref()
    }

    fn build(&self, ipsec: Ipsec, base: &Path, seeds: Seeds) -> Result<(Mn, Setup), FieldError> {
        if self.interfaces.is_empty() {
            return Err(FieldError::new(
                "interfaces",
                None,
                "name at least one network interface",
            ));
        }
        if self.interfaces.len() > common::node::MAX_LINKS {
            return Err(FieldError::new(
                "interfaces",
                None,
                format!("at most {} interfaces", common::node::MAX_LINKS),
            ));
        }
        let seeds = seeds.or_fixed(self.seed);
        let mut cfg = MnConfig::new(self.home_address, self.home_agent, seeds.node);
        cfg.home_lifetime = Duration::from_secs(self.home_lifetime);
        cfg.correspondent_lifetime = Duration::from_secs(self.correspondent_lifetime);
        cfg.correspondents = self
            .correspondents
            .iter()
            .map(|c| Correspondent {
                address: c.address,
                mode: match c.mode {
                    Mode::Ipsec => RouteOptimisation::Ipsec,
                    Mode::ReturnRoutability => RouteOptimisation::ReturnRoutability,
                    Mode::Triangular => RouteOptimisation::Triangular,
                    Mode::None => RouteOptimisation::None,
                },
            })
            .collect();
        if let Some(ike) = &self.ike {
            let correspondents: Vec<_> = cfg
                .correspondents
                .iter()
                .map(|c| (c.address, c.mode))
                .collect();
            let role = Role::MobileNode {
                home_address: self.home_address,
                home_agent: self.home_agent,
                correspondents: &correspondents,
            };
            cfg.ike = Some(ike.build(role, base, seeds.ike)?);
        }
        let setup = Setup {
            links: self.interfaces.clone(),
            stack: daemon::stack(&self.tun, &[self.home_address]),
            control: self.control.clone(),
        };
        Ok((Mn::new(cfg, ipsec), setup))
    }
}
