//! strongSwan's charon (Debian 12, 5.9.8, kernel-libipsec: userspace ESP on
//! a TUN device) as an IKEv2 peer inside a [`Netns`], configured from Rust,
//! with its session keys turned into Wireshark UAT rows so tshark can
//! decrypt what a [`crate::netns::Capture`] recorded.
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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::netns::{
    check_bounded, is_test_address, resolve_program, run_bounded, unique_name, wait_until, Netns,
    Process, Signal,
};

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
    if !crate::netns::is_root() {
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

/// Which side starts the IKE SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Knows the peer's address and calls [`Charon::initiate`].
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
    pub fn generate(dir: &Path, name: &str) -> Result<Ed25519Key, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
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
    /// Log derived keys (ike = 4, chd = 4), needed by [`Charon::keys`].
    pub key_logging: bool,
    /// charon's first retransmission timeout in seconds (then ×1.8, three
    /// tries), short so failing tests end soon.
    pub retransmit_timeout_s: f64,
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
        }
    }

    fn validate(&self) -> Result<(), String> {
        let word = |what: &str, s: &str, extra: &str| -> Result<(), String> {
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(c))
            {
                return Err(format!("{what} {s:?}: unexpected characters"));
            }
            Ok(())
        };
        word("connection", &self.connection, "")?;
        for id in [&self.local_id, &self.remote_id] {
            word("id", id, "")?;
            if id.parse::<IpAddr>().is_ok() {
                return Err(format!("id {id:?}: use an FQDN, not an address"));
            }
        }
        word("ike_proposals", &self.ike_proposals, ",")?;
        word("esp_proposals", &self.esp_proposals, ",")?;
        for a in self.local_addrs.iter().chain(&self.remote_addrs) {
            if !is_test_address(*a) {
                return Err(format!("{a}: only 2001:db8::/32 and 192.0.2.0/24"));
            }
        }
        if self.role == Role::Initiator && self.remote_addrs.is_empty() {
            return Err("an initiator needs remote_addrs".to_string());
        }
        for c in &self.children {
            word("child name", &c.name, "")?;
            word("local_ts", &c.local_ts, ":/[],")?;
            word("remote_ts", &c.remote_ts, ":/[],")?;
        }
        if let Auth::Psk(psk) = &self.auth {
            if psk.is_empty() {
                return Err("empty PSK".to_string());
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
            r#"# generated by testbed::strongswan
charon {{
    # explicit plugin list: /etc/strongswan.d is ignored
    load_modular = no
    load = {CHARON_PLUGINS}
    install_virtual_ip = no
    retransmit_timeout = {retransmit}
    retransmit_tries = 3
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
            log = dir.join("charon.log").display(),
            vici = vici_socket.display(),
        )
    }

    /// The `swanctl.conf` text. Ed25519 keys are expected as
    /// `pubkey/local.pub.pem` and `pubkey/remote.pub.pem`.
    pub fn swanctl_conf(&self) -> String {
        let mut s = String::from("# generated by testbed::strongswan\nconnections {\n");
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

/// A running charon in a namespace. Dropping it stops charon (SIGTERM by
/// PID); its directory (configs, log) is kept for inspection.
#[derive(Debug)]
pub struct Charon {
    config: CharonConfig,
    dir: PathBuf,
    vici_socket: PathBuf,
    /// A short directory for the vici socket when `dir` is too long for a
    /// unix socket path; removed on drop.
    short_dir: Option<PathBuf>,
    process: Process,
}

impl Charon {
    /// Writes the configuration into `dir` (created), starts charon in
    /// `ns` and waits (up to 10 s) for its vici socket. Call
    /// [`Charon::load`] next.
    pub fn start(ns: &Netns, dir: &Path, config: CharonConfig) -> Result<Charon, String> {
        config.validate()?;
        let charon = charon_binary().ok_or("charon is not installed")?;
        let mkdir = |p: &Path| fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()));
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| e.to_string())?
                .join(dir)
        };
        let run_dir = dir.join("run");
        let swanctl_dir = dir.join("swanctl");
        for d in [
            &run_dir,
            &swanctl_dir.join("private"),
            &swanctl_dir.join("pubkey"),
        ] {
            mkdir(d)?;
        }
        // sun_path holds 108 bytes: fall back to a short private directory.
        let mut short_dir = None;
        let mut vici_socket = dir.join("charon.vici");
        if vici_socket.as_os_str().len() > 100 {
            let short = std::env::temp_dir().join(unique_name("vici"));
            mkdir(&short)?;
            vici_socket = short.join("charon.vici");
            short_dir = Some(short);
        }
        for stale in [
            &vici_socket,
            &run_dir.join("charon.pid"),
            &dir.join("charon.log"),
        ] {
            let _ = fs::remove_file(stale);
        }
        let write = |p: PathBuf, text: &str| {
            fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
        };
        write(
            dir.join("strongswan.conf"),
            &config.strongswan_conf(&dir, &vici_socket),
        )?;
        write(swanctl_dir.join("swanctl.conf"), &config.swanctl_conf())?;
        if let Auth::Ed25519 {
            local,
            remote_public_pem,
        } = &config.auth
        {
            let copy = |from: &Path, to: PathBuf| {
                fs::copy(from, &to)
                    .map(|_| ())
                    .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
            };
            copy(&local.private_pem, swanctl_dir.join("private/local.pem"))?;
            copy(&local.public_pem, swanctl_dir.join("pubkey/local.pub.pem"))?;
            copy(remote_public_pem, swanctl_dir.join("pubkey/remote.pub.pem"))?;
        }
        let conf = dir.join("strongswan.conf");
        let conf = conf.to_string_lossy();
        let run = run_dir.to_string_lossy();
        let charon_str = charon.to_string_lossy();
        // charon hard-codes /var/run/charon.pid: give it its own /run by a
        // bind mount in the mount namespace `ip netns exec` made for it.
        let process = ns.spawn_via_shell(
            "mount -n --bind \"$1\" /run && exec \"$2\"",
            &[&run, &charon_str],
            &charon,
            &[("STRONGSWAN_CONF", &conf)],
            &dir.join("charon.stdout"),
        )?;
        let mut started = Charon {
            config,
            dir,
            vici_socket,
            short_dir,
            process,
        };
        let mut exited = false;
        let ready = wait_until(Duration::from_secs(10), "charon's vici socket", || {
            if !started.process.is_running() {
                exited = true;
                return true;
            }
            started.vici_socket.exists()
        });
        if exited || ready.is_err() {
            return Err(format!(
                "charon in {} did not open {} ({}): stdout {:?}, log tail:\n{}",
                ns.name(),
                started.vici_socket.display(),
                if exited { "it exited" } else { "timed out" },
                started.process.output().trim(),
                tail(&started.log().unwrap_or_default(), 20)
            ));
        }
        Ok(started)
    }

    /// Its configuration.
    pub fn config(&self) -> &CharonConfig {
        &self.config
    }

    /// Its directory: `strongswan.conf`, `swanctl/`, `run/`, `charon.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("charon.log")
    }

    /// The log so far.
    pub fn log(&self) -> Result<String, String> {
        let path = self.log_path();
        fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// charon's PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `unix:///.../charon.vici`, for `swanctl --uri`.
    pub fn vici_uri(&self) -> String {
        format!("unix://{}", self.vici_socket.display())
    }

    /// Runs `swanctl ARGS --uri ...` from the host with this charon's
    /// `SWANCTL_DIR`, bounded; a non-zero exit is not an error here.
    pub fn swanctl(&self, args: &[&str]) -> Result<Output, String> {
        let mut cmd = Command::new("swanctl");
        cmd.env("SWANCTL_DIR", self.dir.join("swanctl"))
            .args(args)
            .args(["--uri", &self.vici_uri()]);
        run_bounded(cmd, SWANCTL_TIMEOUT)
    }

    /// Like [`Charon::swanctl`], but a failure is an error (with output
    /// and the log tail); returns stdout.
    fn swanctl_ok(&self, args: &[&str]) -> Result<String, String> {
        let out = self.swanctl(args)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "swanctl {args:?}: {}\n{}{}\ncharon log tail:\n{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim(),
                tail(&self.log().unwrap_or_default(), 30)
            ));
        }
        Ok(stdout)
    }

    /// `swanctl --load-all`: connections, secrets and keys.
    pub fn load(&self) -> Result<(), String> {
        let file = self.dir.join("swanctl/swanctl.conf");
        let file = file.to_string_lossy();
        self.swanctl_ok(&["--load-all", "--file", &file])
            .map(|_| ())
    }

    /// `swanctl --initiate --child CHILD`: returns once the IKE SA and the
    /// CHILD SA are up on this side (or fails after 20 s).
    pub fn initiate(&self, child: &str) -> Result<(), String> {
        let conn = self.config.connection.clone();
        self.swanctl_ok(&[
            "--initiate",
            "--ike",
            &conn,
            "--child",
            child,
            "--timeout",
            "20",
        ])
        .map(|_| ())
    }

    /// `swanctl --terminate --ike CONNECTION`.
    pub fn terminate(&self) -> Result<(), String> {
        let conn = self.config.connection.clone();
        self.swanctl_ok(&["--terminate", "--ike", &conn, "--timeout", "10"])
            .map(|_| ())
    }

    /// Starts a rekey of the CHILD SA named `child` (`swanctl --rekey`
    /// returns before it is done) and waits up to `timeout` until an
    /// INSTALLED one with a new inbound SPI replaced it; returns that SA.
    pub fn rekey_child(&self, child: &str, timeout: Duration) -> Result<ChildSa, String> {
        let installed = |sas: &[IkeSa]| -> Vec<ChildSa> {
            sas.iter()
                .flat_map(|sa| &sa.children)
                .filter(|c| c.name == child && c.state == "INSTALLED")
                .cloned()
                .collect()
        };
        let before: Vec<u32> = installed(&self.list_sas()?)
            .iter()
            .map(|c| c.spi_in)
            .collect();
        self.swanctl_ok(&["--rekey", "--child", child])?;
        let mut new = None;
        wait_until(timeout, &format!("child {child} rekeyed"), || {
            new = self.list_sas().ok().and_then(|sas| {
                installed(&sas)
                    .into_iter()
                    .find(|c| !before.contains(&c.spi_in))
            });
            new.is_some()
        })?;
        new.ok_or_else(|| format!("child {child} not rekeyed"))
    }

    /// The IKE SAs and their CHILD SAs (`swanctl --list-sas --raw`).
    pub fn list_sas(&self) -> Result<Vec<IkeSa>, String> {
        let raw = self.swanctl_ok(&["--list-sas", "--raw"])?;
        parse_list_sas(&raw)
    }

    /// Waits until an ESTABLISHED IKE SA has an INSTALLED child `child`
    /// (a responder installs its side without telling the initiator's
    /// swanctl); returns that IKE SA.
    pub fn wait_child_installed(&self, child: &str, timeout: Duration) -> Result<IkeSa, String> {
        let mut found = None;
        let mut last_err = String::new();
        let waited = wait_until(timeout, &format!("child {child} INSTALLED"), || {
            match self.list_sas() {
                Ok(sas) => {
                    found = sas.into_iter().find(|sa| {
                        sa.state == "ESTABLISHED"
                            && sa
                                .children
                                .iter()
                                .any(|c| c.name == child && c.state == "INSTALLED")
                    });
                }
                Err(e) => last_err = e,
            }
            found.is_some()
        });
        match found {
            Some(sa) => Ok(sa),
            None => {
                let mut e = waited.err().unwrap_or_default();
                if !last_err.is_empty() {
                    e = format!("{e}; last error: {last_err}");
                }
                Err(e)
            }
        }
    }

    /// The keys charon logged, joined with `--list-sas` for the IKE SPIs
    /// (an IKE SA that no longer exists is left out, with a note).
    pub fn keys(&self) -> Result<SessionKeys, String> {
        let log = self.log()?;
        let sas = self.list_sas()?;
        Ok(session_keys(&parse_key_log(&log), &sas))
    }

    /// Stops charon: SIGTERM by PID, bounded wait (then SIGKILL).
    pub fn stop(&mut self) -> Result<(), String> {
        self.process
            .stop(Signal::Term, Duration::from_secs(10))
            .map(|_| ())
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("strongswan: stopping charon: {e}");
        }
        if let Some(short) = &self.short_dir {
            let _ = fs::remove_dir_all(short);
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ------------------------------------------------------------------ SAs

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
    fn eat(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.at += c.len_utf8();
            Ok(())
        } else {
            Err(format!("expected {c:?} at {:?}", short(self.rest())))
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
    fn entries(&mut self) -> Result<Vec<(String, Vici)>, String> {
        let mut entries = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek() {
                None | Some('}') => return Ok(entries),
                _ => {}
            }
            let key = self.word("={}").to_string();
            if key.is_empty() {
                return Err(format!("expected a key at {:?}", short(self.rest())));
            }
            self.skip_spaces();
            match self.peek() {
                Some('=') => {
                    self.eat('=')?;
                    if self.peek() == Some('[') {
                        self.eat('[')?;
                        let end = self
                            .rest()
                            .find(']')
                            .ok_or_else(|| format!("unclosed list after {key}"))?;
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
                _ => return Err(format!("expected = or {{ after {key}")),
            }
        }
    }
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
) -> Result<T, String> {
    let v = fields.get(key).ok_or_else(|| format!("no {key}"))?;
    parse(v, 16).map_err(|e| format!("{key}={v}: {e}"))
}

fn parse_child(name: &str, entries: &[(String, Vici)]) -> Result<ChildSa, String> {
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

fn parse_ike(name: &str, entries: &[(String, Vici)]) -> Result<IkeSa, String> {
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
            .map_err(|_| format!("IKE SA {name}: no uniqueid"))?,
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
pub fn parse_list_sas(raw: &str) -> Result<Vec<IkeSa>, String> {
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

// ------------------------------------------------------------------ keys

/// An algorithm as charon logs it in `selected proposal:`, e.g.
/// `AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Algorithms {
    /// Encryption without key size: `AES_GCM_16`, `CHACHA20_POLY1305`.
    pub encr: String,
    /// The key size in bits, if the name carries one.
    pub key_bits: Option<u32>,
    /// The integrity algorithm (`HMAC_SHA2_256_128`), None for AEADs.
    pub integ: Option<String>,
}

impl Algorithms {
    /// Parses the part after `IKE:` or `ESP:`.
    pub fn parse(proposal: &str) -> Algorithms {
        let mut parts = proposal.split('/');
        let first = parts.next().unwrap_or_default();
        let (encr, key_bits) = match first.rsplit_once('_') {
            Some((name, bits)) if ["128", "192", "256"].contains(&bits) => {
                (name.to_string(), bits.parse().ok())
            }
            _ => (first.to_string(), None),
        };
        let integ = parts
            .find(|p| {
                ["HMAC_", "AES_XCBC", "AES_CMAC"]
                    .iter()
                    .any(|i| p.starts_with(i))
            })
            .map(str::to_string);
        Algorithms {
            encr,
            key_bits,
            integ,
        }
    }
}

/// The keys of one IKE SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeKeys {
    /// charon's unique id.
    pub uniqueid: u32,
    /// SPIi.
    pub spi_i: u64,
    /// SPIr.
    pub spi_r: u64,
    /// The negotiated algorithms.
    pub algorithms: Algorithms,
    /// SK_ei (with the 4-byte salt for AEADs).
    pub sk_ei: Vec<u8>,
    /// SK_er.
    pub sk_er: Vec<u8>,
    /// SK_ai (empty for AEADs).
    pub sk_ai: Vec<u8>,
    /// SK_ar.
    pub sk_ar: Vec<u8>,
}

/// The keys of one ESP SA (one direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspKeys {
    /// The SPI.
    pub spi: u32,
    /// Outer source when it was installed.
    pub src: IpAddr,
    /// Outer destination.
    pub dst: IpAddr,
    /// The negotiated algorithms.
    pub algorithms: Algorithms,
    /// The encryption key (with the 4-byte salt for AEADs).
    pub encr_key: Vec<u8>,
    /// The integrity key (empty for AEADs).
    pub integ_key: Vec<u8>,
}

impl EspKeys {
    /// The SA in `testbed decode --sa` syntax, if our decoder knows the
    /// algorithm (AES-GCM-16, ChaCha20-Poly1305, NULL+SHA-256).
    pub fn decode_spec(&self) -> Option<String> {
        let a = &self.algorithms;
        let key = hex::encode(&self.encr_key);
        let spi = self.spi;
        match (a.encr.as_str(), a.key_bits, a.integ.as_deref()) {
            ("AES_GCM_16", Some(bits @ (128 | 256)), None) => {
                Some(format!("spi=0x{spi:08x},enc=aes{bits}gcm16,enc-key={key}"))
            }
            ("CHACHA20_POLY1305", _, None) => Some(format!(
                "spi=0x{spi:08x},enc=chacha20poly1305,enc-key={key}"
            )),
            ("NULL", _, Some("HMAC_SHA2_256_128")) => Some(format!(
                "spi=0x{spi:08x},enc=null,integ=sha256,integ-key={}",
                hex::encode(&self.integ_key)
            )),
            _ => None,
        }
    }
}

/// Every key charon logged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionKeys {
    /// IKE SAs still listed by swanctl (their SPIs come from there).
    pub ike: Vec<IkeKeys>,
    /// ESP SAs, both directions of every CHILD SA in the log.
    pub esp: Vec<EspKeys>,
    /// What was left out and why.
    pub notes: Vec<String>,
}

/// Wireshark UAT rows: the lines of the `ikev2_decryption_table` and
/// `esp_sa` files (or `-o uat:NAME:ROW` values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UatRows {
    /// `SPIi,SPIr,SK_ei,SK_er,"encr",SK_ai,SK_ar,"integ"`.
    pub ikev2_decryption_table: Vec<String>,
    /// `"IPv6","*","*","0xSPI","encr","0xKEY","integ","0xKEY"`.
    pub esp_sa: Vec<String>,
    /// SAs tshark 4.0 cannot decrypt (ChaCha20-Poly1305 ...), and why.
    pub unsupported: Vec<String>,
}

impl UatRows {
    /// Writes `ikev2_decryption_table`, `esp_sa` and `preferences` (ESP
    /// decryption and ICV checking on) into `dir`, a Wireshark personal
    /// configuration directory (`WIRESHARK_CONFIG_DIR`).
    pub fn write_config_dir(&self, dir: &Path) -> Result<(), String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let header = "# This file is automatically generated, DO NOT MODIFY.\n";
        let table = |rows: &[String]| {
            let mut s = header.to_string();
            for r in rows {
                s.push_str(r);
                s.push('\n');
            }
            s
        };
        for (name, text) in [
            (
                "ikev2_decryption_table",
                table(&self.ikev2_decryption_table),
            ),
            ("esp_sa", table(&self.esp_sa)),
            (
                "preferences",
                "esp.enable_encryption_decode: TRUE\nesp.enable_authentication_check: TRUE\n"
                    .to_string(),
            ),
        ] {
            let p = dir.join(name);
            fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(())
    }
}

fn ike_encr_uat(a: &Algorithms) -> Option<String> {
    let bits = a.key_bits?;
    let icv = |n: &str| {
        a.encr
            .strip_prefix(n)
            .and_then(|icv| ["8", "12", "16"].contains(&icv).then_some(icv))
    };
    if let Some(icv) = icv("AES_GCM_") {
        return Some(format!("AES-GCM-{bits} with {icv} octet ICV [RFC5282]"));
    }
    if let Some(icv) = icv("AES_CCM_") {
        return Some(format!("AES-CCM-{bits} with {icv} octet ICV [RFC5282]"));
    }
    match a.encr.as_str() {
        "AES_CBC" => Some(format!("AES-CBC-{bits} [RFC3602]")),
        "AES_CTR" => Some(format!("AES-CTR-{bits} [RFC5930]")),
        _ => None,
    }
}

fn ike_integ_uat(integ: Option<&str>) -> Option<&'static str> {
    Some(match integ {
        None => "NONE [RFC4306]",
        Some("HMAC_MD5_96") => "HMAC_MD5_96 [RFC2403]",
        Some("HMAC_SHA1_96") => "HMAC_SHA1_96 [RFC2404]",
        Some("HMAC_SHA2_256_128") => "HMAC_SHA2_256_128 [RFC4868]",
        Some("HMAC_SHA2_384_192") => "HMAC_SHA2_384_192 [RFC4868]",
        Some("HMAC_SHA2_512_256") => "HMAC_SHA2_512_256 [RFC4868]",
        Some(_) => return None,
    })
}

fn esp_encr_uat(a: &Algorithms) -> Option<String> {
    if let Some(icv) = a.encr.strip_prefix("AES_GCM_") {
        if ["8", "12", "16"].contains(&icv) {
            return Some(format!("AES-GCM with {icv} octet ICV [RFC4106]"));
        }
    }
    match a.encr.as_str() {
        "AES_CBC" => Some("AES-CBC [RFC3602]".to_string()),
        "AES_CTR" => Some("AES-CTR [RFC3686]".to_string()),
        "NULL" => Some("NULL".to_string()),
        _ => None,
    }
}

fn esp_integ_uat(integ: Option<&str>) -> Option<&'static str> {
    Some(match integ {
        None => "NULL",
        Some("HMAC_MD5_96") => "HMAC-MD5-96 [RFC2403]",
        Some("HMAC_SHA1_96") => "HMAC-SHA-1-96 [RFC2404]",
        Some("HMAC_SHA2_256_128") => "HMAC-SHA-256-128 [RFC4868]",
        Some("HMAC_SHA2_384_192") => "HMAC-SHA-384-192 [RFC4868]",
        Some("HMAC_SHA2_512_256") => "HMAC-SHA-512-256 [RFC4868]",
        Some(_) => return None,
    })
}

impl SessionKeys {
    /// The rows tshark 4.0 can use. ESP rows use `*` for the addresses,
    /// so they still match after MOBIKE moves the SA.
    pub fn uat_rows(&self) -> UatRows {
        let mut rows = UatRows::default();
        for k in &self.ike {
            let a = &k.algorithms;
            match (ike_encr_uat(a), ike_integ_uat(a.integ.as_deref())) {
                (Some(encr), Some(integ)) => rows.ikev2_decryption_table.push(format!(
                    "{:016x},{:016x},{},{},\"{encr}\",{},{},\"{integ}\"",
                    k.spi_i,
                    k.spi_r,
                    hex::encode(&k.sk_ei),
                    hex::encode(&k.sk_er),
                    hex::encode(&k.sk_ai),
                    hex::encode(&k.sk_ar),
                )),
                _ => rows.unsupported.push(format!(
                    "IKE SA {:016x}_{:016x}: {a:?} has no Wireshark 4.0 IKEv2 decryptor",
                    k.spi_i, k.spi_r
                )),
            }
        }
        for k in &self.esp {
            let a = &k.algorithms;
            match (esp_encr_uat(a), esp_integ_uat(a.integ.as_deref())) {
                (Some(encr), Some(integ)) => {
                    let family = if k.src.is_ipv6() { "IPv6" } else { "IPv4" };
                    let integ_key = if k.integ_key.is_empty() {
                        String::new()
                    } else {
                        format!("0x{}", hex::encode(&k.integ_key))
                    };
                    rows.esp_sa.push(format!(
                        "\"{family}\",\"*\",\"*\",\"0x{:08x}\",\"{encr}\",\"0x{}\",\"{integ}\",\"{integ_key}\"",
                        k.spi,
                        hex::encode(&k.encr_key),
                    ));
                }
                _ => rows.unsupported.push(format!(
                    "ESP SA 0x{:08x}: {a:?} has no Wireshark 4.0 ESP decryptor",
                    k.spi
                )),
            }
        }
        rows
    }
}

/// One line of charon's filelog: `TIME THREAD[GROUP] <NAME|ID> MESSAGE`.
struct LogLine<'a> {
    thread: &'a str,
    group: &'a str,
    uniqueid: Option<u32>,
    message: &'a str,
}

fn parse_log_line(line: &str) -> Option<LogLine<'_>> {
    let (_time, rest) = line.split_once(' ')?;
    let (thread, rest) = rest.split_once('[')?;
    if thread.is_empty() || !thread.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (group, rest) = rest.split_once(']')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    // `<mip|1> ` or `<1> ` before the IKE SA has matched a config.
    let tagged = rest.strip_prefix('<').and_then(|r| {
        let (tag, message) = r.split_once("> ")?;
        let id = tag.rsplit('|').next()?.parse().ok()?;
        Some((id, message))
    });
    let (uniqueid, message) = match tagged {
        Some((id, message)) => (Some(id), message),
        None => (None, rest),
    };
    Some(LogLine {
        thread,
        group,
        uniqueid,
        message,
    })
}

/// The bytes of a hex-dump row `   16: 41 A4 ... 0F 90  A.....=....`.
fn hex_row(message: &str) -> Option<Vec<u8>> {
    let (offset, rest) = message.trim_start().split_once(": ")?;
    if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The ASCII column follows after two spaces.
    let hex_part = rest.split("  ").next()?;
    hex_part
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).ok().filter(|_| b.len() == 2))
        .collect()
}

/// `NAME => N bytes @ 0x...`: the name and N.
fn key_header(message: &str) -> Option<(&str, usize)> {
    let (name, rest) = message.split_once(" => ")?;
    let n = rest.split_once(" bytes")?.0.parse().ok()?;
    Some((name, n))
}

/// `  SPI 0x1234abcd, src X dst Y`.
fn spi_line(message: &str) -> Option<(u32, IpAddr, IpAddr)> {
    let rest = message.trim_start().strip_prefix("SPI 0x")?;
    let (spi, rest) = rest.split_once(", src ")?;
    let (src, dst) = rest.split_once(" dst ")?;
    Some((
        u32::from_str_radix(spi, 16).ok()?,
        src.trim().parse().ok()?,
        dst.trim().parse().ok()?,
    ))
}

/// Keys found in one charon log, before SPIs are known.
#[derive(Debug, Default)]
struct KeyLog {
    /// By uniqueid.
    ike: BTreeMap<u32, LoggedIke>,
    esp: Vec<EspKeys>,
}

/// What the log says about one IKE SA.
#[derive(Debug, Default)]
struct LoggedIke {
    /// `Sk_ei`, `Sk_er`, ... -> bytes.
    secrets: BTreeMap<String, Vec<u8>>,
    /// From `selected proposal: IKE:...`.
    algorithms: Option<Algorithms>,
}

/// A CHILD SA's keys while its log lines come in.
#[derive(Debug, Default)]
struct PendingChild {
    /// We initiated this CHILD SA exchange: "initiator" keys are ours.
    initiator: bool,
    algorithms: Algorithms,
    keys: BTreeMap<String, Vec<u8>>,
    inbound: Option<(u32, IpAddr, IpAddr)>,
    outbound: Option<(u32, IpAddr, IpAddr)>,
}

impl PendingChild {
    fn finish(self) -> Vec<EspKeys> {
        let (Some(inbound), Some(outbound)) = (self.inbound, self.outbound) else {
            return Vec::new();
        };
        // "initiator key" protects CHILD-initiator -> responder traffic.
        let (ours, theirs) = if self.initiator {
            ("initiator", "responder")
        } else {
            ("responder", "initiator")
        };
        let key = |kind: &str, who: &str| {
            self.keys
                .get(&format!("{kind} {who} key"))
                .cloned()
                .unwrap_or_default()
        };
        [(outbound, ours), (inbound, theirs)]
            .into_iter()
            .map(|((spi, src, dst), who)| EspKeys {
                spi,
                src,
                dst,
                algorithms: self.algorithms.clone(),
                encr_key: key("encryption", who),
                integ_key: key("integrity", who),
            })
            .collect()
    }
}

/// Reads IKE and CHILD keys out of a charon log written with ike = 4 and
/// chd = 4.
fn parse_key_log(log: &str) -> KeyLog {
    let lines: Vec<LogLine<'_>> = log.lines().filter_map(parse_log_line).collect();
    let mut found = KeyLog::default();
    // Per thread: did the last parsed message answer us (a response)?
    let mut answered: HashMap<&str, bool> = HashMap::new();
    let mut esp_proposal: HashMap<&str, Algorithms> = HashMap::new();
    let mut pending: HashMap<&str, PendingChild> = HashMap::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        i += 1;
        let msg = line.message;
        if line.group == "ENC" {
            if let Some(rest) = msg.strip_prefix("parsed ") {
                let mut words = rest.split(' ');
                if let (Some(_exchange), Some(kind)) = (words.next(), words.next()) {
                    answered.insert(line.thread, kind == "response");
                }
            }
            continue;
        }
        if let Some(p) = msg.strip_prefix("selected proposal: ") {
            if let Some(ike) = p.strip_prefix("IKE:") {
                if let Some(id) = line.uniqueid {
                    found.ike.entry(id).or_default().algorithms = Some(Algorithms::parse(ike));
                }
            } else if let Some(esp) = p.strip_prefix("ESP:") {
                esp_proposal.insert(line.thread, Algorithms::parse(esp));
            }
            continue;
        }
        if let Some((name, len)) = key_header(msg) {
            let is_ike = name.starts_with("Sk_") && name.ends_with(" secret");
            let is_child = (name.starts_with("encryption ") || name.starts_with("integrity "))
                && name.ends_with(" key");
            if !is_ike && !is_child {
                continue;
            }
            // The hex dump follows on the same thread.
            let mut bytes = Vec::with_capacity(len);
            let mut j = i;
            while bytes.len() < len && j < lines.len() {
                if lines[j].thread == line.thread {
                    match hex_row(lines[j].message) {
                        Some(row) => bytes.extend(row),
                        None => break,
                    }
                }
                j += 1;
            }
            if bytes.len() != len {
                continue;
            }
            if is_ike {
                if let Some(id) = line.uniqueid {
                    let sk = name.trim_end_matches(" secret").to_string();
                    found.ike.entry(id).or_default().secrets.insert(sk, bytes);
                }
            } else {
                let fresh =
                    name == "encryption initiator key" || !pending.contains_key(line.thread);
                if fresh {
                    pending.insert(
                        line.thread,
                        PendingChild {
                            initiator: answered.get(line.thread).copied().unwrap_or(false),
                            algorithms: esp_proposal.get(line.thread).cloned().unwrap_or_default(),
                            ..PendingChild::default()
                        },
                    );
                }
                if let Some(p) = pending.get_mut(line.thread) {
                    p.keys.insert(name.to_string(), bytes);
                }
            }
            continue;
        }
        // "adding inbound ESP SA" / "registering outbound ESP SA" (a rekey
        // responder registers its outbound SA before installing it), then
        // "  SPI 0x..., src X dst Y" on the same thread.
        let direction = msg
            .strip_prefix("adding ")
            .or_else(|| msg.strip_prefix("registering "))
            .and_then(|r| r.strip_suffix(" ESP SA"));
        if let (Some(dir), Some(p)) = (direction, pending.get_mut(line.thread)) {
            let spi = lines[i..]
                .iter()
                .find(|l| l.thread == line.thread)
                .and_then(|l| spi_line(l.message));
            match (dir, spi) {
                ("inbound", Some(s)) => p.inbound = Some(s),
                ("outbound", Some(s)) => p.outbound = Some(s),
                _ => {}
            }
            if p.inbound.is_some() && p.outbound.is_some() {
                if let Some(done) = pending.remove(line.thread) {
                    found.esp.extend(done.finish());
                }
            }
        }
    }
    found
}

/// Joins logged keys with the listed IKE SAs (for SPIs and, failing the
/// log, algorithms).
fn session_keys(log: &KeyLog, sas: &[IkeSa]) -> SessionKeys {
    let mut keys = SessionKeys {
        esp: log.esp.clone(),
        ..SessionKeys::default()
    };
    for (
        id,
        LoggedIke {
            secrets: sk,
            algorithms,
        },
    ) in &log.ike
    {
        let Some(sa) = sas.iter().find(|sa| sa.uniqueid == *id) else {
            keys.notes.push(format!(
                "IKE SA #{id}: keys logged but not listed (gone), left out"
            ));
            continue;
        };
        let (Some(ei), Some(er)) = (sk.get("Sk_ei"), sk.get("Sk_er")) else {
            keys.notes
                .push(format!("IKE SA #{id}: Sk_ei/Sk_er not in the log"));
            continue;
        };
        let algorithms = algorithms.clone().unwrap_or_else(|| Algorithms {
            encr: sa.fields.get("encr-alg").cloned().unwrap_or_default(),
            key_bits: sa.fields.get("encr-keysize").and_then(|v| v.parse().ok()),
            integ: sa.fields.get("integ-alg").cloned(),
        });
        keys.ike.push(IkeKeys {
            uniqueid: *id,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            algorithms,
            sk_ei: ei.clone(),
            sk_er: er.clone(),
            sk_ai: sk.get("Sk_ai").cloned().unwrap_or_default(),
            sk_ar: sk.get("Sk_ar").cloned().unwrap_or_default(),
        });
    }
    keys
}

/// Runs `tshark -r PCAP -n ARGS` with a private Wireshark configuration
/// directory (`PCAP.wireshark/`, from `WIRESHARK_CONFIG_DIR`) holding
/// `rows`, so IKEv2 and ESP are decrypted. Bounded to 60 s.
pub fn tshark(pcap: &Path, rows: &UatRows, args: &[&str]) -> Result<Output, String> {
    let mut config = pcap.as_os_str().to_owned();
    config.push(".wireshark");
    let config = PathBuf::from(config);
    rows.write_config_dir(&config)?;
    let mut cmd = Command::new("tshark");
    cmd.env("WIRESHARK_CONFIG_DIR", &config)
        .arg("-r")
        .arg(pcap)
        .arg("-n")
        .args(args);
    run_bounded(cmd, Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    const RAW: &str = "list-sa event {mip {uniqueid=1 version=2 state=ESTABLISHED local-host=2001:db8:1::a local-port=4500 local-id=a.example remote-host=2001:db8:1::b remote-port=4500 remote-id=b.example initiator=yes initiator-spi=909d8a556545620a responder-spi=41e6b0e87a2e6c21 nat-remote=yes nat-any=yes encr-alg=AES_GCM_16 encr-keysize=256 prf-alg=PRF_HMAC_SHA2_256 dh-group=CURVE_25519 established=0 rekey-time=13813 child-sas {net6-1 {name=net6 uniqueid=1 reqid=1 state=INSTALLED mode=TUNNEL protocol=ESP encap=yes spi-in=f5daaa3d spi-out=c24a34a9 encr-alg=AES_GCM_16 encr-keysize=256 bytes-in=0 packets-in=0 bytes-out=0 packets-out=0 rekey-time=3280 life-time=3960 install-time=0 local-ts=[2001:db8:a::1/128] remote-ts=[2001:db8:b::1/128]}}}}\nlist-sas reply {}\n";

    #[test]
    fn list_sas_raw_parses() {
        let sas = parse_list_sas(RAW).unwrap();
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

    const LOG: &str = "\
19:52:31.261 14[ENC] <mip|1> parsed IKE_SA_INIT response 0 [ SA KE No ]
19:52:31.261 14[CFG] <mip|1> selected proposal: IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519
19:52:31.262 14[IKE] <mip|1> Sk_ei secret => 36 bytes @ 0x7f8ee400f160
19:52:31.262 14[IKE] <mip|1>    0: 96 E4 EA C5 A1 09 EA 2F 68 6C 90 ED 90 FF 2E DD  ......./hl......
19:52:31.262 14[IKE] <mip|1>   16: 94 D4 C7 84 07 95 7F 4D 8E 69 56 A3 74 09 83 7F  .......M.iV.t...
19:52:31.262 14[IKE] <mip|1>   32: F5 1E 75 3E                                      ..u>
19:52:31.262 14[IKE] <mip|1> Sk_er secret => 4 bytes @ 0x7f8ee400f184
19:52:31.262 14[IKE] <mip|1>    0: 80 8E B6 24                                      ...$
19:52:31.265 13[ENC] <mip|1> parsed IKE_AUTH response 1 [ IDr AUTH SA TSi TSr ]
19:52:31.265 13[CFG] <mip|1> selected proposal: ESP:AES_GCM_16_256/NO_EXT_SEQ
19:52:31.265 13[CHD] <mip|1> encryption initiator key => 4 bytes @ 0x7f8ef4002de0
19:52:31.265 13[CHD] <mip|1>    0: 9B DB 71 70                                      ..qp
19:52:31.265 13[CHD] <mip|1> encryption responder key => 4 bytes @ 0x7f8ef4002bb0
19:52:31.265 14[IKE] <mip|2> something else on another thread
19:52:31.265 13[CHD] <mip|1>    0: 3C AF C3 1E                                      <...
19:52:31.265 13[CHD] <mip|1> adding inbound ESP SA
19:52:31.265 13[CHD] <mip|1>   SPI 0xf5daaa3d, src 2001:db8:1::b dst 2001:db8:1::a
19:52:31.265 13[CHD] <mip|1> adding outbound ESP SA
19:52:31.265 13[CHD] <mip|1>   SPI 0xc24a34a9, src 2001:db8:1::a dst 2001:db8:1::b
";

    #[test]
    fn keys_come_out_of_the_log_as_uat_rows() {
        let keys = session_keys(&parse_key_log(LOG), &parse_list_sas(RAW).unwrap());
        assert!(keys.notes.is_empty(), "{:?}", keys.notes);
        let rows = keys.uat_rows();
        assert_eq!(
            rows.ikev2_decryption_table,
            ["909d8a556545620a,41e6b0e87a2e6c21,96e4eac5a109ea2f686c90ed90ff2edd94d4c78407957f4d8e6956a37409837ff51e753e,808eb624,\"AES-GCM-256 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\""]
        );
        // We initiated: outbound uses the initiator key.
        assert_eq!(
            rows.esp_sa,
            [
                "\"IPv6\",\"*\",\"*\",\"0xc24a34a9\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x9bdb7170\",\"NULL\",\"\"",
                "\"IPv6\",\"*\",\"*\",\"0xf5daaa3d\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x3cafc31e\",\"NULL\",\"\"",
            ]
        );
        assert_eq!(
            keys.esp[0].decode_spec().unwrap(),
            "spi=0xc24a34a9,enc=aes256gcm16,enc-key=9bdb7170"
        );
    }

    #[test]
    fn a_responder_uses_the_responder_key_outbound() {
        let log = LOG.replace("IKE_AUTH response", "IKE_AUTH request");
        let keys = parse_key_log(&log);
        assert_eq!(keys.esp[0].spi, 0xc24a34a9);
        assert_eq!(keys.esp[0].encr_key, [0x3c, 0xaf, 0xc3, 0x1e]);
    }

    #[test]
    fn proposals_parse() {
        let a = Algorithms::parse("CHACHA20_POLY1305_256/PRF_HMAC_SHA2_256/CURVE_25519");
        assert_eq!(
            (a.encr.as_str(), a.key_bits, a.integ),
            ("CHACHA20_POLY1305", Some(256), None)
        );
        let a = Algorithms::parse("AES_CBC_128/HMAC_SHA2_256_128/NO_EXT_SEQ");
        assert_eq!(a.integ.as_deref(), Some("HMAC_SHA2_256_128"));
        assert_eq!(esp_encr_uat(&a).as_deref(), Some("AES-CBC [RFC3602]"));
    }

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
