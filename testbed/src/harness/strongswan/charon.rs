//! A running charon: started in a namespace with its own `/run`, vici
//! socket and log, driven by `swanctl` from the host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::config::{Auth, CharonConfig};
use super::keys::{parse_key_log, session_keys, SessionKeys};
use super::vici::{parse_list_sas, ChildSa, IkeSa};
use super::{charon_binary, CHARON_PATHS, SWANCTL_TIMEOUT};
use crate::harness::netns::{
    run_bounded, unique_name, wait_for, wait_until, Netns, Process, Signal,
};
use crate::harness::{Error, Result};

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
    pub fn start(ns: &Netns, dir: &Path, config: CharonConfig) -> Result<Charon> {
        config.validate()?;
        let charon = charon_binary().ok_or_else(|| Error::NotInstalled {
            program: "charon".to_string(),
            looked_in: format!("{CHARON_PATHS:?}"),
        })?;
        let mkdir = |p: &Path| fs::create_dir_all(p).map_err(Error::io(p));
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(Error::io(Path::new(".")))?
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
        let write = |p: PathBuf, text: &str| fs::write(&p, text).map_err(Error::io(&p));
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
                    .map_err(|source| Error::Copy {
                        from: from.to_path_buf(),
                        to: to.clone(),
                        source,
                    })
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
            return Err(Error::CharonNotReady {
                netns: ns.name().to_string(),
                socket: started.vici_socket.clone(),
                exited,
                stdout: started.process.output().trim().to_string(),
                log_tail: tail(&started.log().unwrap_or_default(), 20),
            });
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
    pub fn log(&self) -> Result<String> {
        let path = self.log_path();
        fs::read_to_string(&path).map_err(Error::io(&path))
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
    pub fn swanctl(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new("swanctl");
        cmd.env("SWANCTL_DIR", self.dir.join("swanctl"))
            .args(args)
            .args(["--uri", &self.vici_uri()]);
        run_bounded(cmd, SWANCTL_TIMEOUT)
    }

    /// Like [`Charon::swanctl`], but a failure is an error (with output
    /// and the log tail); returns stdout.
    fn swanctl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.swanctl(args)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(Error::Swanctl {
                args: args.iter().map(|a| a.to_string()).collect(),
                status: out.status,
                output: format!(
                    "{}{}",
                    stdout.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                log_tail: tail(&self.log().unwrap_or_default(), 30),
            });
        }
        Ok(stdout)
    }

    /// `swanctl --load-all`: connections, secrets and keys.
    pub fn load(&self) -> Result<()> {
        let file = self.dir.join("swanctl/swanctl.conf");
        let file = file.to_string_lossy();
        self.swanctl_ok(&["--load-all", "--file", &file])
            .map(|_| ())
    }

    /// `swanctl --initiate --child CHILD`: returns once the IKE SA and the
    /// CHILD SA are up on this side (or fails after 20 s).
    pub fn initiate(&self, child: &str) -> Result<()> {
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
    pub fn terminate(&self) -> Result<()> {
        let conn = self.config.connection.clone();
        self.swanctl_ok(&["--terminate", "--ike", &conn, "--timeout", "10"])
            .map(|_| ())
    }

    /// Starts a rekey of the CHILD SA named `child` (`swanctl --rekey`
    /// returns before it is done) and waits up to `timeout` until an
    /// INSTALLED one with a new inbound SPI replaced it; returns that SA.
    pub fn rekey_child(&self, child: &str, timeout: Duration) -> Result<ChildSa> {
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
        wait_for(timeout, &format!("child {child} rekeyed"), || {
            Ok(installed(&self.list_sas()?)
                .into_iter()
                .find(|c| !before.contains(&c.spi_in)))
        })
    }

    /// Starts a rekey of the IKE SA (`swanctl --rekey --ike CONNECTION`,
    /// which returns before it is done) and waits up to `timeout` until
    /// an ESTABLISHED one with SPIs other than `old`'s replaced it.
    pub fn rekey_ike(&self, old: &IkeSa, timeout: Duration) -> Result<IkeSa> {
        let conn = self.config.connection.clone();
        self.swanctl_ok(&["--rekey", "--ike", &conn])?;
        wait_for(timeout, "IKE SA rekeyed", || {
            Ok(self.list_sas()?.into_iter().find(|sa| {
                sa.state == "ESTABLISHED" && (sa.spi_i, sa.spi_r) != (old.spi_i, old.spi_r)
            }))
        })
    }

    /// The IKE SAs and their CHILD SAs (`swanctl --list-sas --raw`).
    pub fn list_sas(&self) -> Result<Vec<IkeSa>> {
        let raw = self.swanctl_ok(&["--list-sas", "--raw"])?;
        parse_list_sas(&raw)
    }

    /// Waits until an ESTABLISHED IKE SA has an INSTALLED child `child`
    /// (a responder installs its side without telling the initiator's
    /// swanctl); returns that IKE SA.
    pub fn wait_child_installed(&self, child: &str, timeout: Duration) -> Result<IkeSa> {
        wait_for(timeout, &format!("child {child} INSTALLED"), || {
            Ok(self.list_sas()?.into_iter().find(|sa| {
                sa.state == "ESTABLISHED"
                    && sa
                        .children
                        .iter()
                        .any(|c| c.name == child && c.state == "INSTALLED")
            }))
        })
    }

    /// The keys charon logged, joined with `--list-sas` for the IKE SPIs
    /// (an IKE SA that no longer exists is left out, with a note).
    pub fn keys(&self) -> Result<SessionKeys> {
        let log = self.log()?;
        let sas = self.list_sas()?;
        Ok(session_keys(&parse_key_log(&log), &sas))
    }

    /// Stops charon: SIGTERM by PID, bounded wait (then SIGKILL).
    pub fn stop(&mut self) -> Result<()> {
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
