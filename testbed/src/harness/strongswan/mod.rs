//! strongSwan's charon (Debian 12, 5.9.8, kernel-libipsec: userspace ESP on
//! a TUN device) as an IKEv2 peer inside a
//! [`Netns`](crate::harness::netns::Netns), configured from Rust, with its
//! session keys turned into Wireshark UAT rows so tshark can decrypt what a
//! [`Capture`](crate::harness::netns::Capture) recorded.
//!
//! - `config`: [`CharonConfig`] and what it renders, `strongswan.conf` and
//!   `swanctl.conf`; [`Ed25519Key`].
//! - `charon`: [`Charon`], the running daemon, and the `swanctl` calls.
//! - `vici`: `swanctl --list-sas --raw` parsed into [`IkeSa`]s.
//! - `keys`: charon's log parsed into [`SessionKeys`].
//! - `wireshark`: [`UatRows`] for tshark, and [`tshark`] run with them.
//!
//! How charon is run (the non-obvious parts):
//! - its own `strongswan.conf` (`STRONGSWAN_CONF`) with `load_modular = no`
//!   and an explicit plugin list, so `/etc/strongswan.d` is ignored;
//! - the PID file is hard-coded to `/var/run/charon.pid`, so charon is
//!   started as `sh -c 'mount -n --bind DIR/run /run && exec charon'` in
//!   the private mount namespace `ip netns exec` creates (`-n`: no
//!   `/run/mount` on the host);
//! - its own vici socket, reached by `swanctl --uri` from the host, with
//!   `SWANCTL_DIR` pointing at its own `swanctl/` directory;
//! - a filelog with `ike = 4` and `chd = 4`, which logs the derived IKE and
//!   CHILD keys (Debian has no save-keys plugin);
//! - the libipsec host-to-host settings (`allow_peer_ts`, fwmark 0x42) so
//!   IKE and ESP-in-UDP never loop into `ipsec0`.

mod charon;
mod config;
mod keys;
mod vici;
mod wireshark;

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::netns::resolve_program;

pub use charon::Charon;
pub use config::{Auth, CharonConfig, ChildConfig, Ed25519Key, Mode, Role};
pub use keys::{Algorithms, EspKeys, IkeKeys, SessionKeys};
pub use vici::{parse_list_sas, ChildSa, IkeSa};
pub use wireshark::{tshark, UatRows};

/// Where Debian (and others) install charon.
pub const CHARON_PATHS: &[&str] = &["/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon"];

/// The plugins each charon loads, nothing else: crypto for PSK and Ed25519
/// with X25519, AES-GCM and ChaCha20-Poly1305, kernel-libipsec for ESP and
/// kernel-netlink for addresses and routes (both must load), vici for
/// swanctl.
pub const CHARON_PLUGINS: &str = "random nonce openssl pem pkcs1 pkcs8 pubkey x509 curve25519 \
     chapoly gcm aes sha2 hmac kdf kernel-libipsec kernel-netlink socket-default vici updown";

/// The bound on one swanctl call.
const SWANCTL_TIMEOUT: Duration = Duration::from_secs(30);

/// charon's binary, if installed.
pub fn charon_binary() -> Option<PathBuf> {
    CHARON_PATHS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// What is missing to run charon tests here (empty: nothing). Checks
/// root, charon, swanctl, openssl, tcpdump, ping and tshark.
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if !crate::harness::netns::is_root() {
        missing.push("root (network namespaces and mounts)".to_string());
    }
    if charon_binary().is_none() {
        missing.push(format!("charon (none of {CHARON_PATHS:?})"));
    }
    for program in [
        "ip", "swanctl", "openssl", "tcpdump", "ping", "tshark", "mount",
    ] {
        if resolve_program(program).is_err() {
            missing.push(program.to_string());
        }
    }
    missing
}
