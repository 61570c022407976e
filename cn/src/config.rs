//! The correspondent's configuration file (commented example:
//! config/cn.yaml; the least is `address` and `interface`).

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use common::io::daemon::{self, FieldError, NodeFile, Seeds, TunFile};
use common::io::ike_file::{IkeFile, Role};
use common::io::Setup;
use common::ipsec::Ipsec;
use common::node::{Cn, CnConfig, CoaTestPolicy, CookieMethod};
use common::time::{Duration, Instant};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnFile {
    pub address: Ipv6Addr,
    /// The network interface `address` is reached on; the kernel's IPv6 is
    /// switched off there while the node runs.
    pub interface: String,
    /// Static IPsec keys (the format of config/ipsec/cn.yaml), relative to
    /// this file.
    pub ipsec: Option<PathBuf>,
    /// IKEv2 with mobile nodes over their home addresses
    /// (draft-dupont-mipv6-cn-ipsec §5; config/cn-ike.yaml).
    pub ike: Option<IkeFile>,
    /// The Annex A1 care-of address test: `alternate-only` (what the Annex
    /// requires), `always` (every new care-of address too) or `off`.
    #[serde(default)]
    pub coa_test: CoaTest,
    /// `global` (Annex A1 method 2) or `per-binding` (method 1).
    #[serde(default)]
    pub cookie_method: Cookie,
    /// Seconds between cookie secret rotations.
    #[serde(default = "default_rotation")]
    pub cookie_rotation: u64,
    /// Keep sending to the old care-of address while a test is pending.
    #[serde(default)]
    pub keep_old_coa: bool,
    /// Accept return-routability BUs (the RFC 6275 baseline).
    #[serde(default = "yes")]
    pub return_routability: bool,
    #[serde(default)]
    pub tun: TunFile,
    /// The control socket (default /run/mip6/cn.sock).
    pub control: Option<PathBuf>,
    /// Keeps the IPsec-authorised bindings and the static SAs' outbound
    /// sequence numbers across a restart, in this file (relative to this
    /// one); without it a restarted correspondent starts empty.
    pub store: Option<PathBuf>,
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoaTest {
    Off,
    #[default]
    AlternateOnly,
    Always,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cookie {
    #[default]
    Global,
    PerBinding,
}

fn default_rotation() -> u64 {
    60
}

fn yes() -> bool {
    true
}

impl NodeFile for CnFile {
    const ROLE: &'static str = "cn";
    type Engine = Cn;

    fn ipsec(&self) -> Option<&Path> {
        self.ipsec.as_deref()
    }

    fn control(&self) -> Option<&Path> {
        self.control.as_deref()
    }

    fn store(&self) -> Option<&Path> {
        self.store.as_deref()
    }

    fn build(&self, ipsec: Ipsec, base: &Path, seeds: Seeds) -> Result<(Cn, Setup), FieldError> {
        if self.cookie_rotation == 0 {
            return Err(FieldError::new(
                "cookie_rotation",
                None,
                "must be at least 1 second",
            ));
        }
        let seeds = seeds.or_fixed(self.seed);
        let mut cfg = CnConfig::new(self.address, seeds.node);
        if let Some(ike) = &self.ike {
            let role = Role::Correspondent {
                address: self.address,
            };
            cfg.ike = Some(ike.build(role, base, seeds.ike)?);
        }
        cfg.coa_test = match self.coa_test {
            CoaTest::Off => CoaTestPolicy::Off,
            CoaTest::AlternateOnly => CoaTestPolicy::AlternateOnly,
            CoaTest::Always => CoaTestPolicy::Always,
        };
        cfg.cookie_method = match self.cookie_method {
            Cookie::Global => CookieMethod::Global,
            Cookie::PerBinding => CookieMethod::PerBinding,
        };
        cfg.cookie_rotation = Duration::from_secs(self.cookie_rotation);
        cfg.keep_old_coa = self.keep_old_coa;
        cfg.return_routability = self.return_routability;
        let setup = Setup {
            links: vec![self.interface.clone()],
            stack: daemon::stack(&self.tun, &[self.address]),
            control: self.control.clone(),
        };
        Ok((Cn::new(cfg, ipsec, Instant::ZERO), setup))
    }
}
