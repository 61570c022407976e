//! Wire codecs: byte-exact parsing and emitting of every packet the stack
//! sends or receives.
//!
//! Two levels, as in smoltcp:
//! - `XxxPacket<T: AsRef<[u8]>>` is a zero-copy view. `new_checked` runs
//!   `check_len`; after it succeeds no accessor panics. Setters exist for
//!   `T: AsMut<[u8]>`.
//! - `XxxRepr` is the validated, owned, high-level value, with
//!   `parse(&XxxPacket) -> Result<XxxRepr, WireError>`, `buffer_len()` and
//!   `emit(&self, &mut XxxPacket)`. `emit` never panics when the buffer is
//!   at least `buffer_len()` bytes long.
//!
//! IKEv2 messages nest length-prefixed payloads, so their codec is a
//! reader/writer pair ([`codec`]) that back-patches lengths on emit.
//!
//! Every decode error says what was wrong and where ([`WireError`]), so
//! engines can count drops by cause.
//!
//! Code points the drafts leave "TBA by IANA" are private-use values held in
//! [`CodePoints`]; parse and emit take them where they matter.

#[macro_use]
mod macros;

pub mod checksum;
pub mod codec;
pub mod esp;
pub mod ext;
pub mod fields;
pub mod icmpv6;
pub mod ike;
pub mod ipv4;
pub mod ipv6;
pub mod mac;
pub mod mh;
pub mod nd;
pub mod packet;
pub mod tcp;
pub mod udp;

pub use esp::{EspPacket, EspRepr, EspTrailer};
pub use ext::{DestOptRepr, ExtHeader, ExtHeaderRepr, FragmentRepr, Ipv6OptionRepr, RoutingRepr};
pub use fields::{FieldValue, Fields};
pub use icmpv6::Icmpv6Repr;
pub use ike::{IkeHeader, IkePayload, IkeRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{IpProtocol, Ipv6Packet, Ipv6Repr};
pub use mac::MacAddr;
pub use mh::{BaStatus, MhMessage, MhOption, MhPacket, MhRepr, MhType};
pub use nd::NdRepr;
pub use packet::{Decoded, IpRepr, PacketRepr, UpperRepr};
pub use tcp::TcpRepr;
pub use udp::{UdpPacket, UdpRepr};

/// Why a decoder refused its input. Each variant names the field or header
/// it concerns, so a drop can be counted by cause and a log line says where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer ends before the field named.
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// A length field disagrees with the format or with the buffer.
    #[error("bad length: {0}")]
    BadLength(&'static str),
    /// The checksum does not verify.
    #[error("bad checksum: {0}")]
    BadChecksum(&'static str),
    /// A field holds a value the format forbids.
    #[error("bad value: {0}")]
    BadValue(&'static str),
    /// An IKEv2 payload of an unknown type has its critical bit set
    /// (RFC 7296 §2.5).
    #[error("unsupported critical payload type {0}")]
    UnsupportedCritical(u8),
}

/// Code points that the drafts leave to IANA, taken from private-use
/// ranges. Defaults are those of `REQUIREMENTS.md` (last section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePoints {
    /// Mobility option carrying the care-of address test cookie
    /// (draft-dupont-mipv6-cn-ipsec Annex A1).
    pub mh_cookie_option: u8,
    /// BA status "care-of address test required" (Annex A1), in the
    /// rejection range.
    pub ba_status_coa_test: u8,
    /// PEER_ADDRESS_SOURCE notify (draft-dupont-ikev2-addrmgmt Annex B).
    pub notify_peer_address_source: u16,
    /// PEER_ADDRESS_DESTINATION notify (addrmgmt Annex B).
    pub notify_peer_address_destination: u16,
    /// SWITCH_TO_IP_ADDRESS notify (draft-smyslov-ipsecme-ikev2-r-mobike §5.2).
    pub notify_switch_to_ip_address: u16,
    /// DIFFERENT_TUNNEL_ADDRESS_SUPPORTED notify (alt-tunnel-addresses §7.1).
    pub notify_different_tunnel_address_supported: u16,
    /// TUNNEL_ADDRESS notify (alt-tunnel-addresses §7.2).
    pub notify_tunnel_address: u16,
    /// Peer Address Update payload type (addrmgmt Annex C).
    pub ike_payload_peer_address_update: u8,
    /// The warning addrmgmt §3.3 asks for when a request's peer address
    /// notifications do not match its header; the draft names none, so it
    /// is a private-use status notify.
    pub notify_peer_address_mismatch: u16,
}

impl Default for CodePoints {
    fn default() -> Self {
        CodePoints {
            mh_cookie_option: 200,
            ba_status_coa_test: 250,
            notify_peer_address_source: 40960,
            notify_peer_address_destination: 40961,
            notify_switch_to_ip_address: 40962,
            notify_different_tunnel_address_supported: 40963,
            notify_tunnel_address: 40964,
            ike_payload_peer_address_update: 128,
            notify_peer_address_mismatch: 40965,
        }
    }
}

/// A byte range inside a header, as in smoltcp's `mod field`.
pub(crate) type Field = core::ops::Range<usize>;

/// Reads a big-endian `u16` at `at`; callers have checked the length.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian `u32` at `at`; callers have checked the length.
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads 16 bytes at `at` as an IPv6 address; callers have checked the length.
pub(crate) fn addr6(b: &[u8], at: usize) -> core::net::Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    core::net::Ipv6Addr::from(a)
}

/// Writes `hex` as lowercase hexadecimal with no separators (logs, JSON).
pub fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
