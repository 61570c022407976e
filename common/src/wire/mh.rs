//! The Mobility Header (RFC 6275 §6.1) and mobility options (§6.2), with the
//! care-of address test additions of draft-dupont-mipv6-cn-ipsec Annex A1
//! (a Cookie option and a BA status, both configurable code points).
//!
//! ```text
//! +---------------+---------------+---------------+---------------+
//! | Payload Proto |  Header Len   |   MH Type     |   Reserved    |
//! +---------------+---------------+---------------+---------------+
//! |           Checksum            |                               |
//! +-------------------------------+       Message Data            |
//! |                  (type-specific fields, then options)         |
//! ```
//!
//! Payload Proto is always 59; Header Len counts 8-octet units after the
//! first 8. The checksum covers the IPv6 pseudo-header with the home address
//! as source when a Home Address option is present (§6.1.1); the packet
//! layer ([`super::packet`]) picks the addresses.
//!
//! Option alignment on emit (§6.2): Binding Refresh Advice 2n, Alternate
//! Care-of Address 8n+6, Nonce Indices 2n, Binding Authorization Data 8n+2.
//! The draft gives the Cookie option no alignment; we place it at 8n+4 so
//! that the tested care-of address inside it (after the 16-bit timestamp)
//! is 8-octet aligned.

use core::fmt;
use core::net::Ipv6Addr;

use super::checksum::PseudoHeader;
use super::ext::push_padding;
use super::ipv6::IpProtocol;
use super::{addr6, be16, CodePoints, Field, WireError};

enum_with_unknown! {
    /// Mobility Header message types (RFC 6275 §6.1.2 – §6.1.9).
    pub enum MhType(u8) {
        BindingRefreshRequest = 0,
        HomeTestInit = 1,
        CareOfTestInit = 2,
        HomeTest = 3,
        CareOfTest = 4,
        BindingUpdate = 5,
        BindingAck = 6,
        BindingError = 7,
    }
}

impl MhType {
    /// The length of the message's fixed part, where its options start;
    /// `None` for a type we do not know.
    pub fn fixed_len(self) -> Option<usize> {
        match self {
            MhType::BindingRefreshRequest => Some(8),
            MhType::BindingUpdate | MhType::BindingAck => Some(12),
            MhType::HomeTestInit | MhType::CareOfTestInit => Some(16),
            MhType::HomeTest | MhType::CareOfTest | MhType::BindingError => Some(24),
            MhType::Unknown(_) => None,
        }
    }
}

enum_with_unknown! {
    /// Binding Acknowledgement status (RFC 6275 §6.1.8). The Annex A1
    /// "care-of address test required" status is a configurable code point
    /// ([`CodePoints::ba_status_coa_test`]) and so appears as `Unknown`.
    pub enum BaStatus(u8) {
        Accepted = 0,
        AcceptedPrefixDiscoveryNecessary = 1,
        ReasonUnspecified = 128,
        AdministrativelyProhibited = 129,
        InsufficientResources = 130,
        HomeRegistrationNotSupported = 131,
        NotHomeSubnet = 132,
        NotHomeAgentForThisMobileNode = 133,
        DuplicateAddressDetectionFailed = 134,
        SequenceNumberOutOfWindow = 135,
        ExpiredHomeNonceIndex = 136,
        ExpiredCareOfNonceIndex = 137,
        ExpiredNonces = 138,
        RegistrationTypeChangeDisallowed = 139,
    }
}

impl BaStatus {
    /// Statuses below 128 accept the binding (§6.1.8).
    pub fn is_accepted(self) -> bool {
        u8::from(self) < 128
    }

    /// The Annex A1 care-of address test status.
    pub fn is_coa_test(self, cp: &CodePoints) -> bool {
        u8::from(self) == cp.ba_status_coa_test
    }
}

/// Binding Update flags, the whole 16-bit word after the sequence number
/// (unknown bits are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BuFlags(pub u16);

impl BuFlags {
    /// Acknowledge (RFC 6275).
    pub const A: u16 = 0x8000;
    /// Home Registration (RFC 6275).
    pub const H: u16 = 0x4000;
    /// Link-Local Address Compatibility (RFC 6275).
    pub const L: u16 = 0x2000;
    /// Key Management Mobility Capability (RFC 6275).
    pub const K: u16 = 0x1000;
    /// MAP Registration (RFC 5380).
    pub const M: u16 = 0x0800;
    /// Mobile Router (RFC 3963).
    pub const R: u16 = 0x0400;
    /// Proxy Registration (RFC 5213).
    pub const P: u16 = 0x0200;
    /// Forcing UDP encapsulation (RFC 5555).
    pub const F: u16 = 0x0100;
    /// TLV-header format (RFC 5845).
    pub const T: u16 = 0x0080;
    /// Bulk binding update (RFC 6602).
    pub const B: u16 = 0x0040;

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// Binding Acknowledgement flags byte (unknown bits are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BaFlags(pub u8);

impl BaFlags {
    /// Key Management Mobility Capability (RFC 6275).
    pub const K: u8 = 0x80;
    /// Mobile Router (RFC 3963).
    pub const R: u8 = 0x40;
    /// Proxy Registration (RFC 5213).
    pub const P: u8 = 0x20;
    /// TLV-header format (RFC 5845).
    pub const T: u8 = 0x10;
    /// Bulk binding update (RFC 6602).
    pub const B: u8 = 0x08;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// The type-specific part of a Mobility Header message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MhMessage {
    /// §6.1.2.
    BindingRefreshRequest,
    /// §6.1.3.
    HomeTestInit { cookie: u64 },
    /// §6.1.4.
    CareOfTestInit { cookie: u64 },
    /// §6.1.5.
    HomeTest {
        nonce_index: u16,
        cookie: u64,
        token: u64,
    },
    /// §6.1.6.
    CareOfTest {
        nonce_index: u16,
        cookie: u64,
        token: u64,
    },
    /// §6.1.7. `lifetime` is in units of 4 seconds.
    BindingUpdate {
        seq: u16,
        flags: BuFlags,
        lifetime: u16,
    },
    /// §6.1.8. `lifetime` is in units of 4 seconds.
    BindingAck {
        status: BaStatus,
        flags: BaFlags,
        seq: u16,
        lifetime: u16,
    },
    /// §6.1.9.
    BindingError { status: u8, home_address: Ipv6Addr },
    /// A type we do not know: everything after the checksum, kept as is.
    Unknown { mh_type: u8, data: Vec<u8> },
}

impl MhMessage {
    pub fn mh_type(&self) -> MhType {
        match self {
            MhMessage::BindingRefreshRequest => MhType::BindingRefreshRequest,
            MhMessage::HomeTestInit { .. } => MhType::HomeTestInit,
            MhMessage::CareOfTestInit { .. } => MhType::CareOfTestInit,
            MhMessage::HomeTest { .. } => MhType::HomeTest,
            MhMessage::CareOfTest { .. } => MhType::CareOfTest,
            MhMessage::BindingUpdate { .. } => MhType::BindingUpdate,
            MhMessage::BindingAck { .. } => MhType::BindingAck,
            MhMessage::BindingError { .. } => MhType::BindingError,
            MhMessage::Unknown { mh_type, .. } => MhType::Unknown(*mh_type),
        }
    }
}

/// Mobility option types of RFC 6275 §6.2.
mod opt {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const BINDING_REFRESH_ADVICE: u8 = 2;
    pub const ALTERNATE_COA: u8 = 3;
    pub const NONCE_INDICES: u8 = 4;
    pub const BINDING_AUTH_DATA: u8 = 5;
}

/// A mobility option (padding is not represented: emit aligns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MhOption {
    /// §6.2.4, refresh interval in units of 4 seconds.
    BindingRefreshAdvice(u16),
    /// §6.2.5.
    AlternateCareOfAddress(Ipv6Addr),
    /// §6.2.6.
    NonceIndices { home: u16, care_of: u16 },
    /// §6.2.7: the 96-bit authenticator.
    BindingAuthData([u8; 12]),
    /// Annex A1 cookie, opaque to everyone but the CN that made it.
    Cookie(Vec<u8>),
    /// Any other option, kept as is; `at` is where it started, modulo 8,
    /// so that re-encoding keeps the alignment its rule (unknown to us)
    /// asked for (e.g. RFC 3963's Mobile Network Prefix, 8n+4).
    Unknown { opt_type: u8, data: Vec<u8>, at: u8 },
}

impl MhOption {
    fn alignment(&self) -> (usize, usize) {
        match self {
            MhOption::BindingRefreshAdvice(_) | MhOption::NonceIndices { .. } => (2, 0),
            MhOption::AlternateCareOfAddress(_) => (8, 6),
            MhOption::BindingAuthData(_) => (8, 2),
            MhOption::Cookie(_) => (8, 4),
            MhOption::Unknown { at, .. } => (8, usize::from(*at % 8)),
        }
    }

    fn parse(t: u8, data: &[u8], at: usize, cp: &CodePoints) -> Result<Self, WireError> {
        let exact = |n: usize, what| {
            if data.len() == n {
                Ok(())
            } else {
                Err(WireError::BadLength(what))
            }
        };
        Ok(match t {
            opt::BINDING_REFRESH_ADVICE => {
                exact(2, "binding refresh advice option")?;
                MhOption::BindingRefreshAdvice(be16(data, 0))
            }
            opt::ALTERNATE_COA => {
                exact(16, "alternate care-of address option")?;
                MhOption::AlternateCareOfAddress(addr6(data, 0))
            }
            opt::NONCE_INDICES => {
                exact(4, "nonce indices option")?;
                MhOption::NonceIndices {
                    home: be16(data, 0),
                    care_of: be16(data, 2),
                }
            }
            opt::BINDING_AUTH_DATA => {
                exact(12, "binding authorization data option")?;
                let mut a = [0u8; 12];
                a.copy_from_slice(data);
                MhOption::BindingAuthData(a)
            }
            t if t == cp.mh_cookie_option => {
                if data.is_empty() {
                    return Err(WireError::BadLength("cookie option"));
                }
                MhOption::Cookie(data.to_vec())
            }
            _ => MhOption::Unknown {
                opt_type: t,
                data: data.to_vec(),
                at: (at % 8) as u8,
            },
        })
    }

    fn emit(&self, out: &mut Vec<u8>, cp: &CodePoints) {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        let t = match self {
            MhOption::BindingRefreshAdvice(v) => {
                out.extend_from_slice(&v.to_be_bytes());
                opt::BINDING_REFRESH_ADVICE
            }
            MhOption::AlternateCareOfAddress(a) => {
                out.extend_from_slice(&a.octets());
                opt::ALTERNATE_COA
            }
            MhOption::NonceIndices { home, care_of } => {
                out.extend_from_slice(&home.to_be_bytes());
                out.extend_from_slice(&care_of.to_be_bytes());
                opt::NONCE_INDICES
            }
            MhOption::BindingAuthData(a) => {
                out.extend_from_slice(a);
                opt::BINDING_AUTH_DATA
            }
            MhOption::Cookie(c) => {
                out.extend_from_slice(c);
                cp.mh_cookie_option
            }
            MhOption::Unknown { opt_type, data, .. } => {
                out.extend_from_slice(data);
                *opt_type
            }
        };
        out.truncate(start + 2 + 255);
        out[start] = t;
        out[start + 1] = (out.len() - start - 2) as u8;
    }
}

/// The Annex A1 cookie as our CN builds it: 16-bit timestamp, tested
/// care-of address, and the high 96 bits of an HMAC (draft Annex A1, methods 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoaTestCookie {
    pub timestamp: u16,
    pub care_of: Ipv6Addr,
    pub mac: [u8; 12],
}

impl CoaTestCookie {
    pub const LEN: usize = 30;

    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        if b.len() != Self::LEN {
            return Err(WireError::BadLength("care-of test cookie"));
        }
        let mut mac = [0u8; 12];
        mac.copy_from_slice(&b[18..30]);
        Ok(CoaTestCookie {
            timestamp: be16(b, 0),
            care_of: addr6(b, 2),
            mac,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.timestamp.to_be_bytes().to_vec();
        v.extend_from_slice(&self.care_of.octets());
        v.extend_from_slice(&self.mac);
        v
    }
}

/// Header Len is one octet of 8-octet units.
const MAX_LEN: usize = 256 * 8;

mod field {
    use super::Field;
    pub const PAYLOAD_PROTO: usize = 0;
    pub const HEADER_LEN: usize = 1;
    pub const MH_TYPE: usize = 2;
    pub const CHECKSUM: Field = 4..6;
    pub const DATA: usize = 6;
}

/// A read/write view of a Mobility Header.
#[derive(Debug, Clone)]
pub struct MhPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MhPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        MhPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer is exactly the length Header Len announces, at least 8.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < 8 {
            return Err(WireError::Truncated("mobility header"));
        }
        if b.len() < self.total_len() {
            return Err(WireError::Truncated("mobility header data"));
        }
        if b.len() > self.total_len() {
            return Err(WireError::BadLength("mobility header length"));
        }
        Ok(())
    }

    pub fn payload_proto(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_PROTO]
    }

    pub fn header_len(&self) -> u8 {
        self.buffer.as_ref()[field::HEADER_LEN]
    }

    /// Length in octets from Header Len.
    pub fn total_len(&self) -> usize {
        (usize::from(self.header_len()) + 1) * 8
    }

    pub fn mh_type(&self) -> MhType {
        self.buffer.as_ref()[field::MH_TYPE].into()
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Everything after the checksum.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Whether the checksum verifies under `ph` (§6.1.1).
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        ph.checksum(IpProtocol::Mobility.into(), self.buffer.as_ref()) == 0
    }

    /// The offset of the field RFC 6275 §9.2 answers with an ICMPv6
    /// Parameter Problem, code 0: a Payload Proto other than 59, else a
    /// Header Len too short for the type. Call on a length-checked header.
    pub fn parameter_problem(&self) -> Option<usize> {
        if self.payload_proto() != u8::from(IpProtocol::NoNextHeader) {
            return Some(field::PAYLOAD_PROTO);
        }
        let fixed = self.mh_type().fixed_len()?;
        (self.total_len() < fixed).then_some(field::HEADER_LEN)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MhPacket<T> {
    /// Computes and writes the checksum under `ph`.
    pub fn fill_checksum(&mut self, ph: &PseudoHeader) {
        self.buffer.as_mut()[field::CHECKSUM].fill(0);
        let c = ph.checksum(IpProtocol::Mobility.into(), self.buffer.as_ref());
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

/// A Mobility Header message with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhRepr {
    pub message: MhMessage,
    /// Empty for `MhMessage::Unknown`, whose options we cannot locate.
    pub options: Vec<MhOption>,
}

impl MhRepr {
    /// Parses the header. The checksum is not verified here: it depends on
    /// addresses of the enclosing packet ([`MhPacket::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(p: &MhPacket<T>, cp: &CodePoints) -> Result<Self, WireError> {
        p.check_len()?;
        if p.payload_proto() != u8::from(IpProtocol::NoNextHeader) {
            return Err(WireError::BadValue("mh payload proto"));
        }
        Self::parse_message(p, cp)
    }

    /// [`MhRepr::parse`] whatever the Payload Proto: what a decoder shows
    /// of a header it also reports as bad.
    pub fn parse_message<T: AsRef<[u8]>>(
        p: &MhPacket<T>,
        cp: &CodePoints,
    ) -> Result<Self, WireError> {
        p.check_len()?;
        let b = p.buffer.as_ref();
        // An unknown type has no fixed part we know of.
        let opt_at = p.mh_type().fixed_len().unwrap_or(field::DATA);
        if b.len() < opt_at {
            return Err(WireError::BadLength(
                "mobility header too short for its type",
            ));
        }
        let u64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(a)
        };
        let message = match p.mh_type() {
            MhType::BindingRefreshRequest => MhMessage::BindingRefreshRequest,
            MhType::HomeTestInit => MhMessage::HomeTestInit { cookie: u64_at(8) },
            MhType::CareOfTestInit => MhMessage::CareOfTestInit { cookie: u64_at(8) },
            MhType::HomeTest => MhMessage::HomeTest {
                nonce_index: be16(b, 6),
                cookie: u64_at(8),
                token: u64_at(16),
            },
            MhType::CareOfTest => MhMessage::CareOfTest {
                nonce_index: be16(b, 6),
                cookie: u64_at(8),
                token: u64_at(16),
            },
            MhType::BindingUpdate => MhMessage::BindingUpdate {
                seq: be16(b, 6),
                flags: BuFlags(be16(b, 8)),
                lifetime: be16(b, 10),
            },
            MhType::BindingAck => MhMessage::BindingAck {
                status: b[6].into(),
                flags: BaFlags(b[7]),
                seq: be16(b, 8),
                lifetime: be16(b, 10),
            },
            MhType::BindingError => MhMessage::BindingError {
                status: b[6],
                home_address: addr6(b, 8),
            },
            MhType::Unknown(mh_type) => {
                return Ok(MhRepr {
                    message: MhMessage::Unknown {
                        mh_type,
                        data: p.data().to_vec(),
                    },
                    options: vec![],
                })
            }
        };
        let options = parse_options(b, opt_at, cp)?;
        let repr = MhRepr { message, options };
        // Tightly packed options grow when emit aligns them (up to 7 bytes
        // each); refuse what could not be re-emitted in 2048 bytes.
        if b.len() + 7 * repr.options.len() > MAX_LEN && repr.to_bytes(cp).len() > MAX_LEN {
            return Err(WireError::BadLength("mobility options once aligned"));
        }
        Ok(repr)
    }

    /// The fixed part and options, padded to 8n, checksum zero.
    fn to_bytes(&self, cp: &CodePoints) -> Vec<u8> {
        let mut b = Vec::new();
        self.write(&mut b, cp);
        b
    }

    /// Appends [`MhRepr::to_bytes`] to `b`.
    fn write(&self, b: &mut Vec<u8>, cp: &CodePoints) {
        let start = b.len();
        b.extend_from_slice(&[
            IpProtocol::NoNextHeader.into(),
            0,
            self.message.mh_type().into(),
            0,
            0,
            0,
        ]);
        match &self.message {
            MhMessage::BindingRefreshRequest => b.extend_from_slice(&[0, 0]),
            MhMessage::HomeTestInit { cookie } | MhMessage::CareOfTestInit { cookie } => {
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(&cookie.to_be_bytes());
            }
            MhMessage::HomeTest {
                nonce_index,
                cookie,
                token,
            }
            | MhMessage::CareOfTest {
                nonce_index,
                cookie,
                token,
            } => {
                b.extend_from_slice(&nonce_index.to_be_bytes());
                b.extend_from_slice(&cookie.to_be_bytes());
                b.extend_from_slice(&token.to_be_bytes());
            }
            MhMessage::BindingUpdate {
                seq,
                flags,
                lifetime,
            } => {
                b.extend_from_slice(&seq.to_be_bytes());
                b.extend_from_slice(&flags.0.to_be_bytes());
                b.extend_from_slice(&lifetime.to_be_bytes());
            }
            MhMessage::BindingAck {
                status,
                flags,
                seq,
                lifetime,
            } => {
                b.extend_from_slice(&[(*status).into(), flags.0]);
                b.extend_from_slice(&seq.to_be_bytes());
                b.extend_from_slice(&lifetime.to_be_bytes());
            }
            MhMessage::BindingError {
                status,
                home_address,
            } => {
                b.extend_from_slice(&[*status, 0]);
                b.extend_from_slice(&home_address.octets());
            }
            MhMessage::Unknown { data, .. } => b.extend_from_slice(data),
        }
        for o in &self.options {
            let (n, k) = o.alignment();
            let gap = (n + k - (b.len() - start) % n) % n;
            push_padding(b, gap);
            o.emit(b, cp);
        }
        let gap = (8 - (b.len() - start) % 8) % 8;
        push_padding(b, gap);
        b[start + field::HEADER_LEN] = u8::try_from((b.len() - start) / 8 - 1).unwrap_or(u8::MAX);
    }

    pub fn buffer_len(&self, cp: &CodePoints) -> usize {
        self.to_bytes(cp).len()
    }

    /// Writes the header into a buffer of `buffer_len()` bytes and fills
    /// the checksum under `ph`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut MhPacket<T>,
        ph: &PseudoHeader,
        cp: &CodePoints,
    ) {
        let b = self.to_bytes(cp);
        p.buffer.as_mut()[..b.len()].copy_from_slice(&b);
        p.fill_checksum(ph);
    }

    /// Appends the header, checksum filled under `ph`.
    pub fn emit_vec(&self, out: &mut Vec<u8>, ph: &PseudoHeader, cp: &CodePoints) {
        let start = out.len();
        self.write(out, cp);
        MhPacket::new_unchecked(&mut out[start..]).fill_checksum(ph);
    }

    /// The first option matching `f`.
    pub fn option<R>(&self, f: impl FnMut(&MhOption) -> Option<R>) -> Option<R> {
        self.options.iter().find_map(f)
    }
}

/// The options of header `mh` from offset `at` on.
fn parse_options(mh: &[u8], mut at: usize, cp: &CodePoints) -> Result<Vec<MhOption>, WireError> {
    let mut out = Vec::new();
    while let Some(&t) = mh.get(at) {
        if t == opt::PAD1 {
            at += 1;
            continue;
        }
        let len = usize::from(
            *mh.get(at + 1)
                .ok_or(WireError::Truncated("mobility option length"))?,
        );
        let data = mh
            .get(at + 2..at + 2 + len)
            .ok_or(WireError::Truncated("mobility option data"))?;
        if t != opt::PADN {
            out.push(MhOption::parse(t, data, at, cp)?);
        }
        at += 2 + len;
    }
    Ok(out)
}

impl fmt::Display for MhRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            MhMessage::BindingRefreshRequest => write!(f, "MH BRR")?,
            MhMessage::HomeTestInit { cookie } => write!(f, "MH HoTI cookie={cookie:016x}")?,
            MhMessage::CareOfTestInit { cookie } => write!(f, "MH CoTI cookie={cookie:016x}")?,
            MhMessage::HomeTest {
                nonce_index,
                cookie,
                token,
            } => write!(
                f,
                "MH HoT idx={nonce_index} cookie={cookie:016x} token={token:016x}"
            )?,
            MhMessage::CareOfTest {
                nonce_index,
                cookie,
                token,
            } => write!(
                f,
                "MH CoT idx={nonce_index} cookie={cookie:016x} token={token:016x}"
            )?,
            MhMessage::BindingUpdate {
                seq,
                flags,
                lifetime,
            } => {
                write!(f, "MH BU seq={seq} flags=")?;
                for (bit, c) in [
                    (BuFlags::A, 'A'),
                    (BuFlags::H, 'H'),
                    (BuFlags::L, 'L'),
                    (BuFlags::K, 'K'),
                    (BuFlags::M, 'M'),
                    (BuFlags::R, 'R'),
                    (BuFlags::P, 'P'),
                    (BuFlags::F, 'F'),
                    (BuFlags::T, 'T'),
                    (BuFlags::B, 'B'),
                ] {
                    if flags.has(bit) {
                        write!(f, "{c}")?;
                    }
                }
                write!(f, " lifetime={}s", u32::from(*lifetime) * 4)?
            }
            MhMessage::BindingAck {
                status,
                flags,
                seq,
                lifetime,
            } => write!(
                f,
                "MH BA status={status} flags={:#04x} seq={seq} lifetime={}s",
                flags.0,
                u32::from(*lifetime) * 4
            )?,
            MhMessage::BindingError {
                status,
                home_address,
            } => write!(f, "MH BE status={status} hoa={home_address}")?,
            MhMessage::Unknown { mh_type, data } => {
                write!(f, "MH type {mh_type} ({} bytes)", data.len())?
            }
        }
        for o in &self.options {
            match o {
                MhOption::BindingRefreshAdvice(v) => write!(f, " BRA({}s)", u32::from(*v) * 4)?,
                MhOption::AlternateCareOfAddress(a) => write!(f, " AltCoA({a})")?,
                MhOption::NonceIndices { home, care_of } => write!(f, " NI({home},{care_of})")?,
                MhOption::BindingAuthData(a) => write!(f, " BAD({})", super::hex(a))?,
                MhOption::Cookie(c) => write!(f, " Cookie({})", super::hex(c))?,
                MhOption::Unknown { opt_type, data, .. } => {
                    write!(f, " opt{opt_type}({})", super::hex(data))?
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    fn ph() -> PseudoHeader {
        PseudoHeader::V6 {
            src: "2001:db8:1::100".parse().unwrap(),
            dst: "2001:db8:3::1".parse().unwrap(),
        }
    }

    fn emit(r: &MhRepr, cp: &CodePoints) -> Vec<u8> {
        let mut v = Vec::new();
        r.emit_vec(&mut v, &ph(), cp);
        v
    }

    fn parse(b: &[u8], cp: &CodePoints) -> Result<MhRepr, WireError> {
        MhRepr::parse(&MhPacket::new_checked(b)?, cp)
    }

    fn bu(options: Vec<MhOption>) -> MhRepr {
        MhRepr {
            message: MhMessage::BindingUpdate {
                seq: 1,
                flags: BuFlags(0),
                lifetime: 10,
            },
            options,
        }
    }

    #[test]
    fn options_are_aligned_as_rfc6275_6_2_requires() {
        // REQ MIP-BASE: Alt-CoA 8n+6, Nonce Indices 2n, BAD 8n+2, BRA 2n.
        let cp = CodePoints::default();
        let r = bu(vec![
            MhOption::BindingRefreshAdvice(1),
            MhOption::AlternateCareOfAddress("2001:db8::1".parse().unwrap()),
            MhOption::NonceIndices {
                home: 1,
                care_of: 2,
            },
            MhOption::BindingAuthData([7; 12]),
        ]);
        let b = emit(&r, &cp);
        assert_eq!(b.len() % 8, 0);
        assert_eq!(usize::from(b[1]), b.len() / 8 - 1);
        let find = |t: u8| {
            let mut i = 12;
            while i < b.len() {
                if b[i] == t {
                    return i;
                }
                i += if b[i] == opt::PAD1 {
                    1
                } else {
                    2 + usize::from(b[i + 1])
                };
            }
            panic!("option {t} not found")
        };
        assert_eq!(find(opt::BINDING_REFRESH_ADVICE) % 2, 0);
        assert_eq!(find(opt::ALTERNATE_COA) % 8, 6);
        assert_eq!(find(opt::NONCE_INDICES) % 2, 0);
        assert_eq!(find(opt::BINDING_AUTH_DATA) % 8, 2);
        assert_eq!(parse(&b, &cp).unwrap(), r);
        assert!(MhPacket::new_checked(&b[..])
            .unwrap()
            .verify_checksum(&ph()));
    }

    #[test]
    fn wrong_option_lengths_are_errors() {
        let cp = CodePoints::default();
        for (t, len, what) in [
            (opt::NONCE_INDICES, 3, "nonce indices option"),
            (
                opt::BINDING_AUTH_DATA,
                16,
                "binding authorization data option",
            ),
            (opt::ALTERNATE_COA, 8, "alternate care-of address option"),
            (
                opt::BINDING_REFRESH_ADVICE,
                4,
                "binding refresh advice option",
            ),
        ] {
            let mut b = vec![59, 0, 5, 0, 0, 0, 0, 1, 0, 0, 0, 10, t, len];
            b.resize(14 + usize::from(len), 0);
            b.resize(b.len().div_ceil(8) * 8, 0);
            b[1] = (b.len() / 8 - 1) as u8;
            assert_eq!(parse(&b, &cp), Err(WireError::BadLength(what)));
        }
    }

    #[test]
    fn payload_proto_and_header_length_are_checked() {
        let cp = CodePoints::default();
        let mut b = emit(&bu(vec![]), &cp);
        assert_eq!(b.len(), 16);
        b[0] = 6;
        assert_eq!(parse(&b, &cp), Err(WireError::BadValue("mh payload proto")));
        b[0] = 59;
        b[1] = 2; // says 24 bytes, has 16
        assert_eq!(
            parse(&b, &cp),
            Err(WireError::Truncated("mobility header data"))
        );
        b[1] = 0; // says 8 bytes, has 16
        assert_eq!(
            parse(&b, &cp),
            Err(WireError::BadLength("mobility header length"))
        );
        // A BU that claims 8 bytes is too short for its fixed part (12).
        assert_eq!(
            parse(&b[..8], &cp),
            Err(WireError::BadLength(
                "mobility header too short for its type"
            ))
        );
    }

    #[test]
    fn cookie_option_uses_the_configured_code_point() {
        let cookie = CoaTestCookie {
            timestamp: 0x1234,
            care_of: "2001:db8:2::10".parse().unwrap(),
            mac: [9; 12],
        };
        let r = bu(vec![MhOption::Cookie(cookie.to_bytes())]);
        let default = CodePoints::default();
        let b = emit(&r, &default);
        let at = b.iter().position(|&x| x == 200).unwrap();
        assert_eq!(at % 8, 4, "cookie at 8n+4 so the CoA inside is 8n aligned");
        assert_eq!(b[at + 1] as usize, CoaTestCookie::LEN);
        assert_eq!(parse(&b, &default).unwrap(), r);
        assert_eq!(CoaTestCookie::parse(&cookie.to_bytes()).unwrap(), cookie);
        // Under another code point the same bytes are an unknown option.
        let other = CodePoints {
            mh_cookie_option: 201,
            ..default
        };
        assert!(matches!(
            parse(&b, &other).unwrap().options[..],
            [MhOption::Unknown { opt_type: 200, .. }]
        ));
        let ba = MhRepr {
            message: MhMessage::BindingAck {
                status: 250.into(),
                flags: BaFlags(0),
                seq: 1,
                lifetime: 0,
            },
            options: vec![],
        };
        let MhMessage::BindingAck { status, .. } =
            parse(&emit(&ba, &default), &default).unwrap().message
        else {
            panic!()
        };
        assert!(status.is_coa_test(&default) && !status.is_accepted());
    }

    #[test]
    fn packed_options_that_could_not_be_re_emitted_are_refused() {
        // Found by the `mh` fuzz target: 113 back-to-back Alternate CoA
        // options fill 2048 bytes, and aligning them would overflow Header Len.
        let mut b = vec![59, 255, 5, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        for _ in 0..113 {
            b.extend_from_slice(&[opt::ALTERNATE_COA, 16]);
            b.extend_from_slice(&[0; 16]);
        }
        b.extend_from_slice(&[opt::PADN, 0]);
        assert_eq!(b.len(), 2048);
        assert_eq!(
            parse(&b, &CodePoints::default()),
            Err(WireError::BadLength("mobility options once aligned"))
        );
    }

    #[test]
    fn unknown_type_is_kept() {
        let cp = CodePoints::default();
        let r = MhRepr {
            message: MhMessage::Unknown {
                mh_type: 17,
                data: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            },
            options: vec![],
        };
        assert_eq!(parse(&emit(&r, &cp), &cp).unwrap(), r);
    }

    fn addr() -> impl Strategy<Value = Ipv6Addr> {
        any::<[u8; 16]>().prop_map(Ipv6Addr::from)
    }

    fn option() -> impl Strategy<Value = MhOption> {
        prop_oneof![
            any::<u16>().prop_map(MhOption::BindingRefreshAdvice),
            addr().prop_map(MhOption::AlternateCareOfAddress),
            (any::<u16>(), any::<u16>())
                .prop_map(|(home, care_of)| MhOption::NonceIndices { home, care_of }),
            any::<[u8; 12]>().prop_map(MhOption::BindingAuthData),
            prop::collection::vec(any::<u8>(), 1..40).prop_map(MhOption::Cookie),
            (6u8..199, prop::collection::vec(any::<u8>(), 0..20), 0u8..8)
                .prop_map(|(opt_type, data, at)| MhOption::Unknown { opt_type, data, at }),
        ]
    }

    fn message() -> impl Strategy<Value = MhMessage> {
        prop_oneof![
            Just(MhMessage::BindingRefreshRequest),
            any::<u64>().prop_map(|cookie| MhMessage::HomeTestInit { cookie }),
            any::<u64>().prop_map(|cookie| MhMessage::CareOfTestInit { cookie }),
            (any::<u16>(), any::<u64>(), any::<u64>()).prop_map(|(nonce_index, cookie, token)| {
                MhMessage::HomeTest {
                    nonce_index,
                    cookie,
                    token,
                }
            }),
            (any::<u16>(), any::<u64>(), any::<u64>()).prop_map(|(nonce_index, cookie, token)| {
                MhMessage::CareOfTest {
                    nonce_index,
                    cookie,
                    token,
                }
            }),
            (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(seq, f, lifetime)| {
                MhMessage::BindingUpdate {
                    seq,
                    flags: BuFlags(f),
                    lifetime,
                }
            }),
            (any::<u8>(), any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
                |(s, f, seq, lifetime)| {
                    MhMessage::BindingAck {
                        status: s.into(),
                        flags: BaFlags(f),
                        seq,
                        lifetime,
                    }
                }
            ),
            (any::<u8>(), addr()).prop_map(|(status, home_address)| MhMessage::BindingError {
                status,
                home_address
            }),
        ]
    }

    proptest! {
        #[test]
        fn repr_emit_parse_round_trip(message in message(), options in prop::collection::vec(option(), 0..6)) {
            let cp = CodePoints::default();
            let r = MhRepr { message, options };
            let b = emit(&r, &cp);
            prop_assert_eq!(b.len(), r.buffer_len(&cp));
            prop_assert!(MhPacket::new_checked(&b[..]).unwrap().verify_checksum(&ph()));
            prop_assert_eq!(parse(&b, &cp).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..96)) {
            let _ = parse(&b, &CodePoints::default());
        }
    }
}
