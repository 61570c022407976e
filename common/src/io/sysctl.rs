//! IPv6 sysctls (`/proc/sys/net/ipv6/conf/IF/KEY`) and a guard that puts
//! back what it changed.
//!
//! Sysctls are not netlink: procfs shows the network namespace of the
//! thread that opens the file, so these calls act on the namespace the
//! calling thread is in.
//!
//! What a node sets (see `DAEMONS.md`): `disable_ipv6=1` on every link its
//! engine drives through AF_PACKET, so the kernel neither drops nor answers
//! Mobile IPv6 packets there ([`Sysctls::disable_ipv6`]); on its TUN,
//! `router_solicitations=0` and `accept_ra=0` ([`Sysctls::quiet_tun`];
//! [`Tun::open`](super::Tun::open) does it itself, together with the
//! link-local address generation switched off over netlink).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the per-interface IPv6 settings live.
pub const IPV6_CONF: &str = "/proc/sys/net/ipv6/conf";

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("invalid sysctl name {name:?}: {why}")]
    InvalidName { name: String, why: &'static str },
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
}

impl SysctlError {
    /// The file is missing: no such interface (any more), or no such key.
    pub fn is_not_found(&self) -> bool {
        match self {
            SysctlError::Read { source, .. } | SysctlError::Write { source, .. } => {
                source.kind() == io::ErrorKind::NotFound
            }
            SysctlError::InvalidName { .. } => false,
        }
    }
}

/// `/proc/sys/net/ipv6/conf/IFACE/KEY`; `iface` may be `all` or `default`.
pub fn ipv6_conf_path(iface: &str, key: &str) -> Result<PathBuf, SysctlError> {
    check_component(iface, 15)?;
    check_component(key, 64)?;
    Ok(Path::new(IPV6_CONF).join(iface).join(key))
}

/// One path component: an interface name (at most IFNAMSIZ - 1 bytes) or
/// a key, never something that walks out of the directory.
fn check_component(name: &str, max: usize) -> Result<(), SysctlError> {
    let why = if name.is_empty() {
        Some("empty")
    } else if name.len() > max {
        Some("too long")
    } else if name == "." || name == ".." {
        Some("not a name")
    } else if name.contains(['/', '\0']) || name.chars().any(char::is_whitespace) {
        Some("contains '/', NUL or whitespace")
    } else {
        None
    };
    match why {
        Some(why) => Err(SysctlError::InvalidName {
            name: name.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// Reads a sysctl file, without the trailing newline.
pub fn read_path(path: &Path) -> Result<String, SysctlError> {
    fs::read_to_string(path)
        .map(|s| s.trim_end().to_string())
        .map_err(|source| SysctlError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes a sysctl file.
pub fn write_path(path: &Path, value: &str) -> Result<(), SysctlError> {
    fs::write(path, value).map_err(|source| SysctlError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Reads `net.ipv6.conf.IFACE.KEY`.
pub fn read(iface: &str, key: &str) -> Result<String, SysctlError> {
    read_path(&ipv6_conf_path(iface, key)?)
}

/// Writes `net.ipv6.conf.IFACE.KEY`, with nothing to restore it: see
/// [`Sysctls`] for that.
pub fn write(iface: &str, key: &str, value: &str) -> Result<(), SysctlError> {
    write_path(&ipv6_conf_path(iface, key)?, value)
}

/// Changes sysctls and remembers what they were: [`Sysctls::restore`] (or
/// dropping the guard) writes the old values back, last change first.
///
/// Only the first change of a path records its value, so setting one key
/// twice still restores the original; a write that changes nothing records
/// nothing. Restoring skips files that are gone (an interface that was
/// deleted in the meantime takes its settings with it).
#[derive(Debug, Default)]
pub struct Sysctls {
    /// (path, previous value), in the order they were changed.
    saved: Vec<(PathBuf, String)>,
}

impl Sysctls {
    pub fn new() -> Sysctls {
        Sysctls::default()
    }

    /// Sets `net.ipv6.conf.IFACE.KEY` to `value`.
    pub fn set(&mut self, iface: &str, key: &str, value: &str) -> Result<(), SysctlError> {
        self.set_path(&ipv6_conf_path(iface, key)?, value)
    }

    /// Sets any sysctl file (for example under `/proc/sys/net/ipv6/neigh`).
    pub fn set_path(&mut self, path: &Path, value: &str) -> Result<(), SysctlError> {
        let old = read_path(path)?;
        if old == value.trim_end() {
            return Ok(());
        }
        write_path(path, value)?;
        if !self.saved.iter().any(|(p, _)| p == path) {
            self.saved.push((path.to_path_buf(), old));
        }
        Ok(())
    }

    /// `disable_ipv6=1` on a link the engine drives over AF_PACKET: the
    /// kernel then drops every IPv6 packet there (after the packet taps)
    /// and sends none (no ICMP errors, RS, MLD or DAD).
    pub fn disable_ipv6(&mut self, iface: &str) -> Result<(), SysctlError> {
        self.set(iface, "disable_ipv6", "1")
    }

    /// A TUN that carries the node's own addresses: no router
    /// solicitations into it and no RAs accepted from it. Link-local
    /// address generation is switched off separately (over netlink by
    /// [`Tun::open`](super::Tun::open), or [`Sysctls::no_addr_gen`]).
    pub fn quiet_tun(&mut self, iface: &str) -> Result<(), SysctlError> {
        self.set(iface, "router_solicitations", "0")?;
        self.set(iface, "accept_ra", "0")
    }

    /// `addr_gen_mode=1` (none): no link-local address when the link comes
    /// up. Takes effect for the next up; the netlink attribute
    /// `IFLA_INET6_ADDR_GEN_MODE` does the same.
    pub fn no_addr_gen(&mut self, iface: &str) -> Result<(), SysctlError> {
        self.set(iface, "addr_gen_mode", "1")
    }

    /// What was changed and not yet restored, oldest first.
    pub fn changed(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.saved.iter().map(|(p, v)| (p.as_path(), v.as_str()))
    }

    /// Writes every recorded value back, last change first. Tries them all
    /// and returns the first error; files that are gone are skipped.
    pub fn restore(&mut self) -> Result<(), SysctlError> {
        let mut first = None;
        while let Some((path, old)) = self.saved.pop() {
            match write_path(&path, &old) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Sysctls {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(
            ipv6_conf_path("eth0", "disable_ipv6").unwrap(),
            Path::new("/proc/sys/net/ipv6/conf/eth0/disable_ipv6")
        );
        assert!(ipv6_conf_path("all", "forwarding").is_ok());
        for bad in ["", "..", "a/b", "veth-with-a-long-name", "a b"] {
            assert!(ipv6_conf_path(bad, "x").is_err(), "{bad:?}");
        }
        assert!(ipv6_conf_path("eth0", "../../ipv4").is_err());
    }

    #[test]
    fn the_guard_restores_in_reverse_and_keeps_the_first_value() {
        let dir = std::env::temp_dir().join(format!("mip6-sysctl-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        fs::write(&a, "0\n").unwrap();
        fs::write(&b, "7\n").unwrap();
        {
            let mut s = Sysctls::new();
            s.set_path(&a, "1").unwrap();
            s.set_path(&a, "2").unwrap();
            s.set_path(&b, "7").unwrap(); // unchanged: nothing recorded
            assert_eq!(s.changed().count(), 1);
            assert_eq!(read_path(&a).unwrap(), "2");
            fs::remove_file(&b).unwrap();
        }
        assert_eq!(read_path(&a).unwrap(), "0");
        assert!(!b.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
