//! IKEv2 messages (RFC 7296 §3): header, generic payload chain, and the
//! payloads of §3.3–§3.16, plus the Peer Address Update payload of
//! draft-dupont-ikev2-addrmgmt Annex C. No crypto: SK (§3.14) is opaque.
//!
//! ```text
//! header (§3.1)                      generic payload header (§3.2)
//! +-------------------------------+  +-------------+-+-------+---------------+
//! ! IKE SA Initiator's SPI (8)    !  ! Next Payload!C!RESERVD! Payload Length!
//! ! IKE SA Responder's SPI (8)    !  +-------------+-+-------+---------------+
//! ! Next ! MjV|MnV ! Exch ! Flags !
//! ! Message ID (4) ! Length (4)   !  Flags: I 0x08, V 0x10, R 0x20
//! +-------------------------------+
//! ```
//!
//! Each payload names the type of the one after it; on emit that chain is
//! derived from the list, and every length is back-patched.

mod notify;
mod payload;
mod sa;
#[cfg(test)]
mod test;

pub use notify::{
    AdditionalAddress, MobikeSupported, Notify, NotifyType, PeerAddress, SwitchToIpAddress,
    TunnelAddress,
};
pub use payload::{CpAttribute, Identification, IkePayload, TrafficSelector};
pub use sa::{Proposal, Transform, TransformAttribute};

use super::codec::{Reader, Writer};
use super::{hex, CodePoints, Fields, WireError};
use core::fmt;

enum_with_unknown! {
    /// Exchange types (RFC 7296 §3.1).
    #[allow(non_camel_case_types)]
    pub enum ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
    }
}

enum_with_unknown! {
    /// Payload types (RFC 7296 §3.2), named as in its notation.
    #[allow(non_camel_case_types)]
    pub enum IkePayloadType(u8) {
        NONE = 0,
        SA = 33,
        KE = 34,
        IDi = 35,
        IDr = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        Nonce = 40,
        N = 41,
        D = 42,
        V = 43,
        TSi = 44,
        TSr = 45,
        SK = 46,
        CP = 47,
        EAP = 48,
    }
}

/// The fixed IKE header; next payload and length are derived on emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeHeader {
    pub spi_i: u64,
    pub spi_r: u64,
    pub major_version: u8,
    pub minor_version: u8,
    pub exchange: ExchangeType,
    /// The raw flags octet; see the `FLAG_*` constants.
    pub flags: u8,
    pub message_id: u32,
}

impl IkeHeader {
    pub const LEN: usize = 28;
    /// Sent by the original initiator of the IKE SA.
    pub const FLAG_I: u8 = 0x08;
    /// The sender can speak a higher major version.
    pub const FLAG_V: u8 = 0x10;
    /// This message is a response.
    pub const FLAG_R: u8 = 0x20;

    pub fn initiator(&self) -> bool {
        self.flags & Self::FLAG_I != 0
    }

    pub fn higher_version(&self) -> bool {
        self.flags & Self::FLAG_V != 0
    }

    pub fn response(&self) -> bool {
        self.flags & Self::FLAG_R != 0
    }
}

/// A whole IKEv2 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeRepr {
    pub header: IkeHeader,
    /// In wire order; an `Sk` payload, if any, must be last.
    pub payloads: Vec<IkePayload>,
}

impl IkeRepr {
    /// Parses a whole message; its length field must equal `bytes.len()`.
    pub fn parse(bytes: &[u8], cp: &CodePoints) -> Result<IkeRepr, WireError> {
        let mut r = Reader::new(bytes);
        let spi_i = r.u64("ike header")?;
        let spi_r = r.u64("ike header")?;
        let next = r.u8("ike header")?;
        let version = r.u8("ike header")?;
        let exchange = ExchangeType::from(r.u8("ike header")?);
        let flags = r.u8("ike header")?;
        let message_id = r.u32("ike header")?;
        let length = r.u32("ike header")?;
        if usize::try_from(length).ok() != Some(bytes.len()) {
            return Err(WireError::BadLength("ike message length"));
        }
        let header = IkeHeader {
            spi_i,
            spi_r,
            major_version: version >> 4,
            minor_version: version & 0x0f,
            exchange,
            flags,
            message_id,
        };
        let payloads = read_chain(&mut r, next, true, cp)?;
        if !r.is_empty() {
            return Err(WireError::BadLength("ike data after last payload"));
        }
        Ok(IkeRepr { header, payloads })
    }

    /// The length `emit` writes. No length depends on the code points; `_cp`
    /// keeps the signature alike to `parse` and `emit`.
    pub fn buffer_len(&self, _cp: &CodePoints) -> usize {
        IkeHeader::LEN
            + self
                .payloads
                .iter()
                .map(|p| 4 + p.body_len())
                .sum::<usize>()
    }

    /// Appends the message to `out`. Parts longer than their length field
    /// can say (65535 octets for a payload, 255 SPI octets) are the caller's
    /// to avoid; `buffer_len` tells the size beforehand.
    pub fn emit(&self, out: &mut Vec<u8>, cp: &CodePoints) {
        let h = &self.header;
        let mut w = Writer::new(out);
        let start = w.position();
        w.u64(h.spi_i);
        w.u64(h.spi_r);
        w.u8(self.payloads.first().map_or(0, |p| p.payload_type(cp)));
        w.u8(h.major_version << 4 | (h.minor_version & 0x0f));
        w.u8(h.exchange.into());
        w.u8(h.flags);
        w.u32(h.message_id);
        let len_at = w.u32_placeholder();
        for (i, p) in self.payloads.iter().enumerate() {
            let next = self.next_type(i, cp);
            let p_start = w.position();
            w.u8(next);
            w.u8(0);
            let p_len_at = w.u16_placeholder();
            p.emit_body(&mut w);
            w.patch_u16_len(p_len_at, p_start);
        }
        w.patch_u32_len(len_at, start);
    }

    /// The next-payload octet of payload `i`.
    fn next_type(&self, i: usize, cp: &CodePoints) -> u8 {
        match (self.payloads.get(i), self.payloads.get(i + 1)) {
            (Some(IkePayload::Sk { first_inner, .. }), _) => *first_inner,
            (_, Some(n)) => n.payload_type(cp),
            _ => 0,
        }
    }

    /// Parses the payloads inside an SK payload once it is opened; `first`
    /// is the SK payload's next-payload octet.
    pub fn parse_inner(
        first: u8,
        bytes: &[u8],
        cp: &CodePoints,
    ) -> Result<Vec<IkePayload>, WireError> {
        let mut r = Reader::new(bytes);
        let payloads = read_chain(&mut r, first, false, cp)?;
        if !r.is_empty() {
            return Err(WireError::BadLength("ike data after last inner payload"));
        }
        Ok(payloads)
    }

    /// Emits payloads to go inside an SK payload; returns the type of the
    /// first, for the SK payload's next-payload octet.
    pub fn emit_inner(payloads: &[IkePayload], out: &mut Vec<u8>, cp: &CodePoints) -> u8 {
        let mut w = Writer::new(out);
        for (i, p) in payloads.iter().enumerate() {
            let p_start = w.position();
            w.u8(payloads.get(i + 1).map_or(0, |n| n.payload_type(cp)));
            w.u8(0);
            let p_len_at = w.u16_placeholder();
            p.emit_body(&mut w);
            w.patch_u16_len(p_len_at, p_start);
        }
        payloads.first().map_or(0, |p| p.payload_type(cp))
    }

    /// Appends the message's fields in packet order, named as in Wireshark.
    pub fn fields(&self, cp: &CodePoints, out: &mut Fields) {
        let h = &self.header;
        out.bytes("isakmp.ispi", &h.spi_i.to_be_bytes());
        out.bytes("isakmp.rspi", &h.spi_r.to_be_bytes());
        out.num(
            "isakmp.nextpayload",
            self.payloads.first().map_or(0, |p| p.payload_type(cp)),
        );
        out.num(
            "isakmp.version",
            h.major_version << 4 | (h.minor_version & 0x0f),
        );
        out.num("isakmp.exchangetype", u8::from(h.exchange));
        out.num("isakmp.flags", h.flags);
        out.num("isakmp.messageid", h.message_id);
        out.num("isakmp.length", self.buffer_len(cp) as u64);
        for (i, p) in self.payloads.iter().enumerate() {
            out.num("isakmp.typepayload", p.payload_type(cp));
            out.num("isakmp.nextpayload", self.next_type(i, cp));
            out.num("isakmp.payloadlength", (4 + p.body_len()) as u64);
            p.fields(cp, out);
        }
    }
}

impl fmt::Display for IkeRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        write!(
            f,
            "{} #{} {} {} spi_i={} spi_r={} [",
            h.exchange,
            h.message_id,
            if h.initiator() { "I" } else { "R" },
            if h.response() { "resp" } else { "req" },
            hex(&h.spi_i.to_be_bytes()),
            hex(&h.spi_r.to_be_bytes()),
        )?;
        for (i, p) in self.payloads.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match p {
                // The sender's role tells which nonce this is.
                IkePayload::Nonce(_) if h.initiator() => f.write_str("Ni")?,
                IkePayload::Nonce(_) => f.write_str("Nr")?,
                _ => write!(f, "{p}")?,
            }
        }
        f.write_str("]")
    }
}

/// Reads a payload chain starting with type `next`. In a message, the chain
/// ends at SK (`stop_at_sk`), whose next-payload octet names its first
/// inner payload; inside SK, an SK payload is an error.
fn read_chain(
    r: &mut Reader<'_>,
    mut next: u8,
    stop_at_sk: bool,
    cp: &CodePoints,
) -> Result<Vec<IkePayload>, WireError> {
    let mut payloads = Vec::new();
    while next != 0 {
        let this = next;
        next = r.u8("ike payload header")?;
        let critical = r.u8("ike payload header")? & 0x80 != 0;
        let len = usize::from(r.u16("ike payload header")?);
        let body_len = len
            .checked_sub(4)
            .ok_or(WireError::BadLength("ike payload length"))?;
        let body = r.take(body_len, "ike payload")?;
        let p = IkePayload::parse(this, next, critical, body, cp)?;
        let is_sk = matches!(p, IkePayload::Sk { .. });
        payloads.push(p);
        if is_sk {
            if !stop_at_sk {
                return Err(WireError::BadValue("ike SK inside SK"));
            }
            break;
        }
    }
    Ok(payloads)
}
