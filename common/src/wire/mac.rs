//! Ethernet (IEEE 802) MAC addresses, and the two mappings IPv6 makes
//! from them: multicast groups to MAC groups (RFC 2464 §7) and MACs to
//! modified EUI-64 interface identifiers (RFC 4291 Appendix A).

use core::fmt;
use core::net::Ipv6Addr;
use core::str::FromStr;

/// A 48-bit link-layer address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The group bit: multicast and broadcast frames.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// RFC 2464 §7: 33:33 and the low 32 bits of the group address.
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// RFC 4291 Appendix A: ff:fe in the middle, the universal/local bit
    /// inverted.
    pub fn interface_id(&self) -> u64 {
        let m = self.0;
        u64::from_be_bytes([m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
    }

    /// A locally administered unicast address from a number, for
    /// simulated interfaces.
    pub fn local(n: u64) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([0x02, b[3], b[4], b[5], b[6], b[7]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// A MAC address that does not read as six colon-separated hex bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (six hex bytes separated by colons)")]
pub struct BadMacAddr;

impl FromStr for MacAddr {
    type Err = BadMacAddr;

    fn from_str(s: &str) -> Result<Self, BadMacAddr> {
        let mut m = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut m {
            let p = parts.next().ok_or(BadMacAddr)?;
            if p.is_empty() || p.len() > 2 {
                return Err(BadMacAddr);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| BadMacAddr)?;
        }
        match parts.next() {
            Some(_) => Err(BadMacAddr),
            None => Ok(MacAddr(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_follow_the_rfcs() {
        let mac: MacAddr = "00:11:22:33:44:55".parse().unwrap();
        assert_eq!(mac.to_string(), "00:11:22:33:44:55");
        // RFC 4291 Appendix A's example pattern: u/l bit flipped, ff:fe inserted.
        assert_eq!(mac.interface_id(), 0x0211_22ff_fe33_4455);
        let group: Ipv6Addr = "ff02::1:ff33:4455".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(group),
            MacAddr([0x33, 0x33, 0xff, 0x33, 0x44, 0x55])
        );
        assert!(MacAddr::ipv6_multicast(group).is_multicast());
        assert!(!MacAddr::local(7).is_multicast());
        for bad in [
            "",
            "00:11:22:33:44",
            "00:11:22:33:44:55:66",
            "0g:11:22:33:44:55",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(BadMacAddr), "{bad}");
        }
    }
}
