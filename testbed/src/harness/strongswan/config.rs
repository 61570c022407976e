//! A charon's configuration and how it is written out: `strongswan.conf`
//! (plugins, filelog, libipsec settings) and `swanctl.conf` (the
//! connection, its children and the PSK), and the Ed25519 keys it loads.

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{CHARON_PLUGINS, SWANCTL_TIMEOUT};
use crate::harness::netns::{check_bounded, is_test_address};
use crate::harness::{Error, Result};

/// Which side starts the IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Knows the peer's address and calls [`Charon::initiate`](super::Charon::initiate).
    Initiator,
    /// Accepts from any address (`remote_addrs = %any` unless given).
    Responder,
}

/// IPsec mode of a child. libipsec refuses transport mode
/// (NO_PROPOSAL_CHOSEN), but a test may want to see exactly that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// ESP tunnel mode.
    Tunnel,
    /// ESP transport mode.
    Transport,
}

/// One `children { NAME { ... } }` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildConfig {
    /// The child's name (for `initiate`).
    pub name: String,
    /// Tunnel or transport.
    pub mode: Mode,
    /// swanctl syntax: `2001:db8:a::1/128`, `dynamic`, `dynamic[135]`.
    pub local_ts: String,
    /// Same syntax as `local_ts`.
    pub remote_ts: String,
}

impl ChildConfig {
    /// A tunnel-mode child.
    pub fn tunnel(name: &str, local_ts: &str, remote_ts: &str) -> ChildConfig {
        ChildConfig {
            name: name.to_string(),
            mode: Mode::Tunnel,
            local_ts: local_ts.to_string(),
            remote_ts: remote_ts.to_string(),
        }
    }
}

/// An Ed25519 key pair as plain OpenSSL PEM files (`PRIVATE KEY` PKCS#8 and
/// `PUBLIC KEY` SubjectPublicKeyInfo), the format our own peer loads too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519Key {
    /// `openssl genpkey -algorithm ed25519` output.
    pub private_pem: PathBuf,
    /// `openssl pkey -pubout` output.
    pub public_pem: PathBuf,
}

impl Ed25519Key {
    /// Generates `DIR/NAME.key.pem` and `DIR/NAME.pub.pem` with openssl.
    pub fn generate(dir: &Path, name: &str) -> Result<Ed25519Key> {
        fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let key = Ed25519Key {
            private_pem: dir.join(format!("{name}.key.pem")),
            public_pem: dir.join(format!("{name}.pub.pem")),
        };
        let mut gen = Command::new("openssl");
        gen.args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&key.private_pem);
        check_bounded(gen, SWANCTL_TIMEOUT)?;
        let mut public = Command::new("openssl");
        public
            .args(["pkey", "-pubout", "-in"])
            .arg(&key.private_pem)
            .arg("-out")
            .arg(&key.public_pem);
        check_bounded(public, SWANCTL_TIMEOUT)?;
        Ok(key)
    }
}

/// How the two sides authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A pre-shared key (its UTF-8 bytes are the PSK).
    Psk(String),
    /// Ed25519 raw public keys (RFC 7427 AUTH method 14): our key pair and
    /// the peer's public key, each bound to the configured id.
    Ed25519 {
        /// Our key pair.
        local: Ed25519Key,
        /// The peer's `PUBLIC KEY` PEM.
        remote_public_pem: PathBuf,
    },
}

/// A charon's configuration; [`CharonConfig::new`] fills the defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct CharonConfig {
    /// The swanctl connection name.
    pub connection: String,
    /// Initiator or responder.
    pub role: Role,
    /// Our IKE addresses; empty means `%any`.
    pub local_addrs: Vec<IpAddr>,
    /// The peer's IKE addresses; empty means `%any` (responder only).
    pub remote_addrs: Vec<IpAddr>,
    /// Our identity, an FQDN (`a.example`), never an address.
    pub local_id: String,
    /// The peer's identity, an FQDN.
    pub remote_id: String,
    /// PSK or Ed25519.
    pub auth: Auth,
    /// IKE proposals, swanctl syntax (`aes256gcm16-prfsha256-x25519`).
    pub ike_proposals: String,
    /// ESP proposals for every child (`aes256gcm16`).
    pub esp_proposals: String,
    /// MOBIKE (RFC 4555) offered/accepted.
    pub mobike: bool,
    /// The children.
    pub children: Vec<ChildConfig>,
    /// Log derived keys (ike = 4, chd = 4), needed by [`Charon::keys`](super::Charon::keys).
    pub key_logging: bool,
    /// charon's first retransmission timeout in seconds (then ×1.8, three
    /// tries), short so failing tests end soon.
    pub retransmit_timeout_s: f64,
    /// charon's COOKIEs past 10 half-open SAs and its block past 5 from
    /// one address (`charon.dos_protection`); off for a load test, whose
    /// one generator keeps many handshakes in flight.
    pub dos_protection: bool,
}

impl CharonConfig {
    /// Defaults: connection `mip`, addresses `%any`, IKE
    /// `aes256gcm16-prfsha256-x25519`, ESP `aes256gcm16` (both tshark can
    /// decrypt), MOBIKE on, no children, key logging on.
    pub fn new(role: Role, local_id: &str, remote_id: &str, auth: Auth) -> CharonConfig {
        CharonConfig {
            connection: "mip".to_string(),
            role,
            local_addrs: Vec::new(),
            remote_addrs: Vec::new(),
            local_id: local_id.to_string(),
            remote_id: remote_id.to_string(),
            auth,
            ike_proposals: "aes256gcm16-prfsha256-x25519".to_string(),
            esp_proposals: "aes256gcm16".to_string(),
            mobike: true,
            children: Vec::new(),
            key_logging: true,
            retransmit_timeout_s: 2.0,
            dos_protection: true,
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        let word = |what: &str, s: &str, extra: &str| -> Result<()> {
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(c))
            {
                return Err(Error::refused(
                    format!("{what} {s:?}"),
                    "unexpected characters",
                ));
            }
            Ok(())
        };
        word("connection", &self.connection, "")?;
        for id in [&self.local_id, &self.remote_id] {
            word("id", id, "")?;
            if id.parse::<IpAddr>().is_ok() {
                return Err(Error::refused(
                    format!("id {id:?}"),
                    "use an FQDN, not an address",
                ));
            }
        }
        word("ike_proposals", &self.ike_proposals, ",")?;
        word("esp_proposals", &self.esp_proposals, ",")?;
        for a in self.local_addrs.iter().chain(&self.remote_addrs) {
            if !is_test_address(*a) {
                return Err(Error::refused(
                    a.to_string(),
                    "only 2001:db8::/32 and 192.0.2.0/24",
                ));
            }
        }
        if self.role == Role::Initiator && self.remote_addrs.is_empty() {
            return Err(Error::refused(
                "remote_addrs",
                "empty, but an initiator needs remote_addrs",
            ));
        }
        for c in &self.children {
            word("child name", &c.name, "")?;
            word("local_ts", &c.local_ts, ":/[],")?;
            word("remote_ts", &c.remote_ts, ":/[],")?;
        }
        if let Auth::Psk(psk) = &self.auth {
            if psk.is_empty() {
                return Err(Error::refused("PSK", "empty PSK"));
            }
        }
        Ok(())
    }

    fn addrs(list: &[IpAddr]) -> String {
        if list.is_empty() {
            "%any".to_string()
        } else {
            list.iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    }

    /// The `strongswan.conf` text for a charon whose files are in `dir`.
    pub fn strongswan_conf(&self, dir: &Path, vici_socket: &Path) -> String {
        let keys = if self.key_logging { 4 } else { 2 };
        format!(
            r#"# generated by testbed::harness::strongswan
charon {{
    # explicit plugin list: /etc/strongswan.d is ignored
    load_modular = no
    load = {CHARON_PLUGINS}
    install_virtual_ip = no
    retransmit_timeout = {retransmit}
    retransmit_tries = 3
    dos_protection = {dos}
    filelog {{
        charon {{
            path = {log}
            append = no
            flush_line = yes
            time_format = %H:%M:%S
            time_add_ms = yes
            ike_name = yes
            default = 1
            ike = {keys}
            chd = {keys}
            cfg = 2
            knl = 2
            net = 2
            enc = 1
            esp = 1
            mgr = 1
        }}
    }}
    plugins {{
        vici {{
            socket = unix://{vici}
        }}
        kernel-libipsec {{
            # host-to-host tunnels (TS = the IKE addresses) need this and
            # the fwmark pair, so IKE/ESP-in-UDP skip the ipsec0 route
            allow_peer_ts = yes
        }}
        socket-default {{
            fwmark = 0x42
        }}
        kernel-netlink {{
            fwmark = !0x42
        }}
    }}
}}
"#,
            retransmit = self.retransmit_timeout_s,
            dos = yes_no(self.dos_protection),
            log = dir.join("charon.log").display(),
            vici = vici_socket.display(),
        )
    }

    /// The `swanctl.conf` text. Ed25519 keys are expected as
    /// `pubkey/local.pub.pem` and `pubkey/remote.pub.pem`.
    pub fn swanctl_conf(&self) -> String {
        let mut s = String::from("# generated by testbed::harness::strongswan\nconnections {\n");
        let _ = writeln!(s, "    {} {{", self.connection);
        let _ = writeln!(s, "        version = 2");
        let _ = writeln!(
            s,
            "        local_addrs = {}",
            Self::addrs(&self.local_addrs)
        );
        let _ = writeln!(
            s,
            "        remote_addrs = {}",
            Self::addrs(&self.remote_addrs)
        );
        let _ = writeln!(s, "        proposals = {}", self.ike_proposals);
        let _ = writeln!(s, "        mobike = {}", yes_no(self.mobike));
        let _ = writeln!(s, "        dpd_delay = 0");
        let _ = writeln!(s, "        rekey_time = 4h");
        let _ = writeln!(s, "        encap = no");
        let (auth, local_key, remote_key) = match &self.auth {
            Auth::Psk(_) => ("psk", "", ""),
            Auth::Ed25519 { .. } => (
                "pubkey",
                "            pubkeys = local.pub.pem\n",
                "            pubkeys = remote.pub.pem\n",
            ),
        };
        let _ = write!(
            s,
            "        local {{\n            auth = {auth}\n            id = {}\n{local_key}        }}\n",
            self.local_id
        );
        let _ = write!(
            s,
            "        remote {{\n            auth = {auth}\n            id = {}\n{remote_key}        }}\n",
            self.remote_id
        );
        s.push_str("        children {\n");
        for c in &self.children {
            let mode = match c.mode {
                Mode::Tunnel => "tunnel",
                Mode::Transport => "transport",
            };
            let _ = write!(
                s,
                "            {} {{\n                mode = {mode}\n                local_ts = {}\n                remote_ts = {}\n                esp_proposals = {}\n                start_action = none\n                rekey_time = 1h\n            }}\n",
                c.name, c.local_ts, c.remote_ts, self.esp_proposals
            );
        }
        s.push_str("        }\n    }\n}\n");
        if let Auth::Psk(psk) = &self.auth {
            // Hex, so no quoting rules apply to the secret.
            let _ = write!(
                s,
                "secrets {{\n    ike-psk {{\n        id-local = {}\n        id-remote = {}\n        secret = 0x{}\n    }}\n}}\n",
                self.local_id,
                self.remote_id,
                hex::encode(psk.as_bytes())
            );
        }
        s
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn configs_refuse_addresses_as_ids_and_foreign_addresses() {
        let mut c = CharonConfig::new(
            Role::Responder,
            "a.example",
            "b.example",
            Auth::Psk("x".into()),
        );
        assert!(c.validate().is_ok());
        c.local_id = "2001:db8::1".into();
        assert!(c.validate().is_err());
        c.local_id = "a.example".into();
        c.remote_addrs = vec!["10.1.1.1".parse().unwrap()];
        assert!(c.validate().is_err());
        let i = CharonConfig::new(
            Role::Initiator,
            "a.example",
            "b.example",
            Auth::Psk("x".into()),
        );
        assert!(i.validate().is_err(), "an initiator needs a peer address");
    }
}
