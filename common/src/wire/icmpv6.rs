//! ICMPv6 (RFC 4443 §2.1): type, code and checksum; the body is kept as is.
//! Echo request/reply identifiers are exposed for traces and traffic
//! generators.
//!
//! ```text
//! |     Type      |     Code      |          Checksum             |
//! |                         Message Body                          |
//! ```

use core::fmt;

use super::checksum::PseudoHeader;
use super::ipv6::IpProtocol;
use super::{be16, WireError};

/// RFC 4443 §3.1; code 3 is address unreachable.
pub const DESTINATION_UNREACHABLE: u8 = 1;
/// RFC 4443 §3.3; code 0 is the hop limit exceeded in transit.
pub const TIME_EXCEEDED: u8 = 3;
/// RFC 4443 §3.4; code 0 is an erroneous header field.
pub const PARAMETER_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;

/// An ICMPv6 message (checksum derived on emit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Repr {
    pub msg_type: u8,
    pub code: u8,
    /// Everything after the checksum.
    pub body: Vec<u8>,
}

impl Icmpv6Repr {
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() < 4 {
            return Err(WireError::Truncated("icmpv6 header"));
        }
        Ok(Icmpv6Repr {
            msg_type: b[0],
            code: b[1],
            body: b[4..].to_vec(),
        })
    }

    pub fn verify_checksum(b: &[u8], ph: &PseudoHeader) -> bool {
        ph.checksum(IpProtocol::Icmpv6.into(), b) == 0
    }

    /// `(identifier, sequence)` of an echo request or reply.
    pub fn echo(&self) -> Option<(u16, u16)> {
        let is_echo = matches!(self.msg_type, ECHO_REQUEST | ECHO_REPLY);
        (is_echo && self.body.len() >= 4).then(|| (be16(&self.body, 0), be16(&self.body, 2)))
    }

    /// Appends the message with its checksum under `ph`.
    pub fn emit(&self, ph: &PseudoHeader, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[self.msg_type, self.code, 0, 0]);
        out.extend_from_slice(&self.body);
        let c = ph.checksum(IpProtocol::Icmpv6.into(), &out[start..]);
        out[start + 2..start + 4].copy_from_slice(&c.to_be_bytes());
    }
}

impl fmt::Display for Icmpv6Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.echo() {
            Some((id, seq)) if self.msg_type == ECHO_REQUEST => {
                write!(f, "ICMPv6 echo request id={id} seq={seq}")
            }
            Some((id, seq)) => write!(f, "ICMPv6 echo reply id={id} seq={seq}"),
            None => write!(f, "ICMPv6 type={} code={}", self.msg_type, self.code),
        }
    }
}
