//! TCP header fields (RFC 9293 §3.1), decoded so traffic shows in traces;
//! the stack itself carries TCP opaquely.
//!
//! ```text
//! |          Source Port          |       Destination Port        |
//! |                        Sequence Number                        |
//! |                    Acknowledgment Number                      |
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |           Checksum            |         Urgent Pointer        |
//! |                           Options                             |
//! ```

use core::fmt;

use super::checksum::PseudoHeader;
use super::ipv6::IpProtocol;
use super::{be16, be32, WireError};

/// A TCP header as values (data offset and checksum are derived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The 12 bits after Data Offset: reserved bits and flags.
    pub flags: u16,
    pub window: u16,
    pub urgent: u16,
    /// Raw options, a multiple of 4 bytes.
    pub options: Vec<u8>,
}

impl TcpRepr {
    /// Parses the header; returns it and the offset of the payload.
    pub fn parse(b: &[u8]) -> Result<(Self, usize), WireError> {
        if b.len() < 20 {
            return Err(WireError::Truncated("tcp header"));
        }
        let off = usize::from(b[12] >> 4) * 4;
        if off < 20 {
            return Err(WireError::BadLength("tcp data offset"));
        }
        let options = b
            .get(20..off)
            .ok_or(WireError::Truncated("tcp options"))?
            .to_vec();
        let repr = TcpRepr {
            src_port: be16(b, 0),
            dst_port: be16(b, 2),
            seq: be32(b, 4),
            ack: be32(b, 8),
            flags: be16(b, 12) & 0x0fff,
            window: be16(b, 14),
            urgent: be16(b, 18),
            options,
        };
        Ok((repr, off))
    }

    /// Appends the header and `payload`, with the checksum under `ph`.
    pub fn emit(&self, payload: &[u8], ph: &PseudoHeader, out: &mut Vec<u8>) {
        let start = out.len();
        let words = (20 + self.options.len()).div_ceil(4);
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.ack.to_be_bytes());
        let off_flags = ((words.min(15) as u16) << 12) | (self.flags & 0x0fff);
        out.extend_from_slice(&off_flags.to_be_bytes());
        out.extend_from_slice(&self.window.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.urgent.to_be_bytes());
        out.extend_from_slice(&self.options);
        out.resize(start + words * 4, 0);
        out.extend_from_slice(payload);
        let c = ph.checksum(IpProtocol::Tcp.into(), &out[start..]);
        out[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
    }
}

impl fmt::Display for TcpRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TCP {} > {} seq={} flags={:#05x}",
            self.src_port, self.dst_port, self.seq, self.flags
        )
    }
}
