//! IKEv2 payload bodies (RFC 7296 §3.3–§3.16) and the Peer Address Update
//! payload (draft-dupont-ikev2-addrmgmt Annex C). The generic header
//! (§3.2) is read and written by `IkeRepr`.
//!
//! ```text
//! KE:      DH Group (2) ! RESERVED (2) ! Key Exchange Data
//! ID:      ID Type ! RESERVED (3) ! Identification Data
//! CERT(REQ): Encoding ! Data            AUTH: Method ! RESERVED (3) ! Data
//! D:       Protocol ID ! SPI Size ! #SPIs (2) ! SPIs
//! TS:      #TSs ! RESERVED (3) ! { TS Type ! IP Proto ! Len (2) !
//!          Start Port (2) ! End Port (2) ! Start Addr ! End Addr }...
//! CP:      CFG Type ! RESERVED (3) ! { R|Type (15) ! Length (2) ! Value }...
//! PAU:     A|Protocol ID (7) ! SPI Size ! #SPIs (2) ! SPIs
//! ```

use super::notify::{Notify, NotifyType, PeerAddress, SwitchToIpAddress, TunnelAddress};
use super::sa::{emit_sa, parse_sa, sa_fields, sa_len, Proposal};
use super::{IkePayloadType, Reader, Writer};
use crate::wire::{hex, CodePoints, Fields, WireError};
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkePayload {
    Sa(Vec<Proposal>),
    Ke {
        group: u16,
        data: Vec<u8>,
    },
    IdI(Identification),
    IdR(Identification),
    Cert {
        encoding: u8,
        data: Vec<u8>,
    },
    CertReq {
        encoding: u8,
        data: Vec<u8>,
    },
    Auth {
        method: u8,
        data: Vec<u8>,
    },
    Nonce(Vec<u8>),
    Notify(Notify),
    /// Every SPI must be `spi_size` octets long.
    Delete {
        protocol: u8,
        spi_size: u8,
        spis: Vec<Vec<u8>>,
    },
    VendorId(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    /// Encrypted and authenticated payloads, opaque here (IV, ciphertext,
    /// ICV). Its next-payload octet names the first inner payload.
    Sk {
        first_inner: u8,
        data: Vec<u8>,
    },
    Eap(Vec<u8>),
    Cp {
        cfg_type: u8,
        attributes: Vec<CpAttribute>,
    },
    /// Peer Address Update (addrmgmt Annex C); `protocol` uses 7 bits and
    /// every SPI must be `spi_size` octets long.
    PeerAddressUpdate {
        all: bool,
        protocol: u8,
        spi_size: u8,
        spis: Vec<Vec<u8>>,
    },
    /// A non-critical payload of a type we do not know (§2.5: skipped).
    Unknown {
        payload_type: u8,
        data: Vec<u8>,
    },
}

/// ID payload body (§3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identification {
    pub id_type: u8,
    pub data: Vec<u8>,
}

impl Identification {
    pub const IPV4_ADDR: u8 = 1;
    pub const FQDN: u8 = 2;
    pub const RFC822_ADDR: u8 = 3;
    pub const IPV6_ADDR: u8 = 5;
    pub const DER_ASN1_DN: u8 = 9;
    pub const DER_ASN1_GN: u8 = 10;
    pub const KEY_ID: u8 = 11;
}

/// One traffic selector (§3.13.1); `ts_type` must match the address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficSelector {
    pub ts_type: u8,
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start_addr: IpAddr,
    pub end_addr: IpAddr,
}

impl TrafficSelector {
    pub const IPV4_ADDR_RANGE: u8 = 7;
    pub const IPV6_ADDR_RANGE: u8 = 8;

    fn len(&self) -> usize {
        8 + addr_len(&self.start_addr) + addr_len(&self.end_addr)
    }
}

/// Configuration attribute (§3.15.1); `attr_type` uses 15 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpAttribute {
    pub attr_type: u16,
    pub value: Vec<u8>,
}

fn addr_len(a: &IpAddr) -> usize {
    if a.is_ipv4() {
        4
    } else {
        16
    }
}

fn write_addr(w: &mut Writer<'_>, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => w.bytes(&a.octets()),
        IpAddr::V6(a) => w.bytes(&a.octets()),
    }
}

fn read_addr(r: &mut Reader<'_>, v6: bool) -> Result<IpAddr, WireError> {
    Ok(if v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(r.take(16, "ike traffic selector")?);
        Ipv6Addr::from(a).into()
    } else {
        let mut a = [0u8; 4];
        a.copy_from_slice(r.take(4, "ike traffic selector")?);
        Ipv4Addr::from(a).into()
    })
}

/// A type octet, 3 reserved octets, then the data (ID, AUTH, CP).
fn typed<'a>(body: &'a [u8], what: &'static str) -> Result<(u8, &'a [u8]), WireError> {
    let mut r = Reader::new(body);
    let ty = r.u8(what)?;
    r.take(3, what)?;
    Ok((ty, r.rest()))
}

/// SPI list of D and PAU: the count and SPI size must account for every
/// remaining octet.
fn parse_spis(r: &mut Reader<'_>, size: u8, what: &'static str) -> Result<Vec<Vec<u8>>, WireError> {
    let count = usize::from(r.u16(what)?);
    if size == 0 && count != 0 {
        return Err(WireError::BadValue(what));
    }
    if r.remaining() != count * usize::from(size) {
        return Err(WireError::BadLength(what));
    }
    (0..count)
        .map(|_| Ok(r.take(size.into(), what)?.to_vec()))
        .collect()
}

fn parse_ts(body: &[u8]) -> Result<Vec<TrafficSelector>, WireError> {
    let mut r = Reader::new(body);
    let count = r.u8("ike traffic selectors")?;
    r.take(3, "ike traffic selectors")?;
    let mut out = Vec::with_capacity(count.into());
    for _ in 0..count {
        let ts_type = r.u8("ike traffic selector")?;
        let ip_protocol = r.u8("ike traffic selector")?;
        let len = r.u16("ike traffic selector")?;
        let v6 = match ts_type {
            TrafficSelector::IPV4_ADDR_RANGE => false,
            TrafficSelector::IPV6_ADDR_RANGE => true,
            _ => return Err(WireError::BadValue("ike traffic selector type")),
        };
        if len != if v6 { 40 } else { 16 } {
            return Err(WireError::BadLength("ike traffic selector"));
        }
        out.push(TrafficSelector {
            ts_type,
            ip_protocol,
            start_port: r.u16("ike traffic selector")?,
            end_port: r.u16("ike traffic selector")?,
            start_addr: read_addr(&mut r, v6)?,
            end_addr: read_addr(&mut r, v6)?,
        });
    }
    if !r.is_empty() {
        return Err(WireError::BadLength("ike traffic selectors"));
    }
    Ok(out)
}

fn parse_cp(body: &[u8]) -> Result<IkePayload, WireError> {
    let (cfg_type, rest) = typed(body, "ike configuration")?;
    let mut r = Reader::new(rest);
    let mut attributes = Vec::new();
    while !r.is_empty() {
        let attr_type = r.u16("ike configuration attribute")? & 0x7fff;
        let n = r.u16("ike configuration attribute")?;
        let value = r.take(n.into(), "ike configuration attribute")?.to_vec();
        attributes.push(CpAttribute { attr_type, value });
    }
    Ok(IkePayload::Cp {
        cfg_type,
        attributes,
    })
}

impl IkePayload {
    /// Parses the body of a payload of type `ty` whose header carried
    /// `next` and the critical bit `critical`.
    pub(super) fn parse(
        ty: u8,
        next: u8,
        critical: bool,
        body: &[u8],
        cp: &CodePoints,
    ) -> Result<Self, WireError> {
        use IkePayloadType as T;
        let id = |b| {
            typed(b, "ike identification").map(|(id_type, d)| Identification {
                id_type,
                data: d.to_vec(),
            })
        };
        let cert = |b: &[u8], what| match b.split_first() {
            Some((e, d)) => Ok((*e, d.to_vec())),
            None => Err(WireError::Truncated(what)),
        };
        Ok(match T::from(ty) {
            T::SA => IkePayload::Sa(parse_sa(body)?),
            T::KE => {
                let mut r = Reader::new(body);
                let group = r.u16("ike key exchange")?;
                r.u16("ike key exchange")?;
                IkePayload::Ke {
                    group,
                    data: r.rest().to_vec(),
                }
            }
            T::IDi => IkePayload::IdI(id(body)?),
            T::IDr => IkePayload::IdR(id(body)?),
            T::CERT => {
                let (encoding, data) = cert(body, "ike certificate")?;
                IkePayload::Cert { encoding, data }
            }
            T::CERTREQ => {
                let (encoding, data) = cert(body, "ike certificate request")?;
                IkePayload::CertReq { encoding, data }
            }
            T::AUTH => {
                let (method, d) = typed(body, "ike authentication")?;
                IkePayload::Auth {
                    method,
                    data: d.to_vec(),
                }
            }
            T::Nonce => IkePayload::Nonce(body.to_vec()),
            T::N => IkePayload::Notify(Notify::parse(body)?),
            T::D => {
                let mut r = Reader::new(body);
                let protocol = r.u8("ike delete")?;
                let spi_size = r.u8("ike delete")?;
                let spis = parse_spis(&mut r, spi_size, "ike delete spis")?;
                IkePayload::Delete {
                    protocol,
                    spi_size,
                    spis,
                }
            }
            T::V => IkePayload::VendorId(body.to_vec()),
            T::TSi => IkePayload::TsI(parse_ts(body)?),
            T::TSr => IkePayload::TsR(parse_ts(body)?),
            T::SK => IkePayload::Sk {
                first_inner: next,
                data: body.to_vec(),
            },
            T::CP => parse_cp(body)?,
            T::EAP => IkePayload::Eap(body.to_vec()),
            _ if ty == cp.ike_payload_peer_address_update => {
                let mut r = Reader::new(body);
                let a_proto = r.u8("ike peer address update")?;
                let spi_size = r.u8("ike peer address update")?;
                let spis = parse_spis(&mut r, spi_size, "ike peer address update spis")?;
                IkePayload::PeerAddressUpdate {
                    all: a_proto & 0x80 != 0,
                    protocol: a_proto & 0x7f,
                    spi_size,
                    spis,
                }
            }
            // NONE (0) cannot name a payload, so it is unknown here too.
            _ if critical => return Err(WireError::UnsupportedCritical(ty)),
            _ => IkePayload::Unknown {
                payload_type: ty,
                data: body.to_vec(),
            },
        })
    }

    /// The payload's type code.
    pub fn payload_type(&self, cp: &CodePoints) -> u8 {
        match self {
            IkePayload::PeerAddressUpdate { .. } => cp.ike_payload_peer_address_update,
            IkePayload::Unknown { payload_type, .. } => *payload_type,
            p => p.rfc7296_type().into(),
        }
    }

    /// The RFC 7296 type; PAU and unknown payloads have none.
    fn rfc7296_type(&self) -> IkePayloadType {
        use IkePayloadType as T;
        match self {
            IkePayload::Sa(_) => T::SA,
            IkePayload::Ke { .. } => T::KE,
            IkePayload::IdI(_) => T::IDi,
            IkePayload::IdR(_) => T::IDr,
            IkePayload::Cert { .. } => T::CERT,
            IkePayload::CertReq { .. } => T::CERTREQ,
            IkePayload::Auth { .. } => T::AUTH,
            IkePayload::Nonce(_) => T::Nonce,
            IkePayload::Notify(_) => T::N,
            IkePayload::Delete { .. } => T::D,
            IkePayload::VendorId(_) => T::V,
            IkePayload::TsI(_) => T::TSi,
            IkePayload::TsR(_) => T::TSr,
            IkePayload::Sk { .. } => T::SK,
            IkePayload::Eap(_) => T::EAP,
            IkePayload::Cp { .. } => T::CP,
            IkePayload::PeerAddressUpdate { .. } | IkePayload::Unknown { .. } => T::NONE,
        }
    }

    /// Length of the body, without the 4-octet generic header.
    pub(super) fn body_len(&self) -> usize {
        match self {
            IkePayload::Sa(p) => sa_len(p),
            IkePayload::Ke { data, .. } => 4 + data.len(),
            IkePayload::IdI(id) | IkePayload::IdR(id) => 4 + id.data.len(),
            IkePayload::Cert { data, .. } | IkePayload::CertReq { data, .. } => 1 + data.len(),
            IkePayload::Auth { data, .. } => 4 + data.len(),
            IkePayload::Notify(n) => 4 + n.spi.len() + n.data.len(),
            IkePayload::Delete { spis, .. } | IkePayload::PeerAddressUpdate { spis, .. } => {
                4 + spis.iter().map(Vec::len).sum::<usize>()
            }
            IkePayload::TsI(ts) | IkePayload::TsR(ts) => {
                4 + ts.iter().map(TrafficSelector::len).sum::<usize>()
            }
            IkePayload::Cp { attributes, .. } => {
                4 + attributes.iter().map(|a| 4 + a.value.len()).sum::<usize>()
            }
            IkePayload::Nonce(d)
            | IkePayload::VendorId(d)
            | IkePayload::Eap(d)
            | IkePayload::Sk { data: d, .. }
            | IkePayload::Unknown { data: d, .. } => d.len(),
        }
    }

    pub(super) fn emit_body(&self, w: &mut Writer<'_>) {
        match self {
            IkePayload::Sa(p) => emit_sa(p, w),
            IkePayload::Ke { group, data } => {
                w.u16(*group);
                w.u16(0);
                w.bytes(data);
            }
            IkePayload::IdI(id) | IkePayload::IdR(id) => {
                w.u32(u32::from(id.id_type) << 24);
                w.bytes(&id.data);
            }
            IkePayload::Cert { encoding, data } | IkePayload::CertReq { encoding, data } => {
                w.u8(*encoding);
                w.bytes(data);
            }
            IkePayload::Auth { method, data } => {
                w.u32(u32::from(*method) << 24);
                w.bytes(data);
            }
            IkePayload::Notify(n) => {
                w.u8(n.protocol);
                w.u8(n.spi.len() as u8);
                w.u16(n.notify_type);
                w.bytes(&n.spi);
                w.bytes(&n.data);
            }
            IkePayload::Delete {
                protocol,
                spi_size,
                spis,
            } => {
                w.u8(*protocol);
                w.u8(*spi_size);
                w.u16(spis.len() as u16);
                spis.iter().for_each(|s| w.bytes(s));
            }
            IkePayload::PeerAddressUpdate {
                all,
                protocol,
                spi_size,
                spis,
            } => {
                w.u8(if *all { 0x80 } else { 0 } | (protocol & 0x7f));
                w.u8(*spi_size);
                w.u16(spis.len() as u16);
                spis.iter().for_each(|s| w.bytes(s));
            }
            IkePayload::TsI(ts) | IkePayload::TsR(ts) => {
                w.u32((ts.len() as u32) << 24);
                for t in ts {
                    w.u8(t.ts_type);
                    w.u8(t.ip_protocol);
                    w.u16(t.len() as u16);
                    w.u16(t.start_port);
                    w.u16(t.end_port);
                    write_addr(w, &t.start_addr);
                    write_addr(w, &t.end_addr);
                }
            }
            IkePayload::Cp {
                cfg_type,
                attributes,
            } => {
                w.u32(u32::from(*cfg_type) << 24);
                for a in attributes {
                    w.u16(a.attr_type & 0x7fff);
                    w.u16(a.value.len() as u16);
                    w.bytes(&a.value);
                }
            }
            IkePayload::Nonce(d)
            | IkePayload::VendorId(d)
            | IkePayload::Eap(d)
            | IkePayload::Sk { data: d, .. }
            | IkePayload::Unknown { data: d, .. } => w.bytes(d),
        }
    }

    /// Fields of the body, after the generic header's.
    pub(super) fn fields(&self, cp: &CodePoints, out: &mut Fields) {
        match self {
            IkePayload::Sa(p) => sa_fields(p, out),
            IkePayload::Ke { group, data } => {
                out.num("isakmp.key_exchange.dh_group", *group);
                out.bytes("isakmp.key_exchange.data", data);
            }
            IkePayload::IdI(id) | IkePayload::IdR(id) => {
                out.num("isakmp.id.type", id.id_type);
                out.bytes("isakmp.id.data", &id.data);
                id_fields(id, out);
            }
            IkePayload::Cert { encoding, data } => {
                out.num("isakmp.cert.encoding", *encoding);
                out.bytes("isakmp.cert.data", data);
            }
            IkePayload::CertReq { encoding, data } => {
                out.num("isakmp.certreq.type", *encoding);
                out.bytes("isakmp.ike.certreq.authority", data);
            }
            IkePayload::Auth { method, data } => {
                out.num("isakmp.auth.method", *method);
                out.bytes("isakmp.auth.data", data);
            }
            IkePayload::Nonce(d) => out.bytes("isakmp.nonce", d),
            IkePayload::Notify(n) => notify_fields(n, cp, out),
            IkePayload::Delete {
                protocol,
                spi_size,
                spis,
            } => {
                out.num("isakmp.delete.protoid", *protocol);
                out.num("isakmp.spisize", *spi_size);
                out.num("isakmp.spinum", spis.len() as u64);
                spis.iter().for_each(|s| out.bytes("isakmp.delete.spi", s));
            }
            IkePayload::VendorId(d) => out.bytes("isakmp.vid_bytes", d),
            IkePayload::TsI(ts) | IkePayload::TsR(ts) => {
                out.num("isakmp.ts.number", ts.len() as u64);
                for t in ts {
                    out.num("isakmp.ts.type", t.ts_type);
                    out.num("isakmp.ts.protoid", t.ip_protocol);
                    out.num("isakmp.ts.selector_length", t.len() as u64);
                    out.num("isakmp.ts.start_port", t.start_port);
                    out.num("isakmp.ts.end_port", t.end_port);
                    let (s, e) = if t.start_addr.is_ipv4() {
                        ("isakmp.ts.start_ipv4", "isakmp.ts.end_ipv4")
                    } else {
                        ("isakmp.ts.start_ipv6", "isakmp.ts.end_ipv6")
                    };
                    out.addr(s, t.start_addr);
                    out.addr(e, t.end_addr);
                }
            }
            IkePayload::Sk { data, .. } => out.bytes("isakmp.enc.data", data),
            IkePayload::Eap(d) => out.bytes("isakmp.eap.data", d),
            IkePayload::Cp {
                cfg_type,
                attributes,
            } => {
                out.num("isakmp.cfg.type", *cfg_type);
                for a in attributes {
                    out.flag("isakmp.cfg.attr.format", false);
                    out.num("isakmp.cfg.attr.type", a.attr_type);
                    out.num("isakmp.cfg.attr.length", a.value.len() as u64);
                    if !a.value.is_empty() {
                        out.bytes("isakmp.cfg.attr.value", &a.value);
                    }
                }
            }
            // Not in Wireshark: names of ours.
            IkePayload::PeerAddressUpdate {
                all,
                protocol,
                spi_size,
                spis,
            } => {
                out.flag("isakmp.pau.all", *all);
                out.num("isakmp.pau.protoid", *protocol);
                out.num("isakmp.pau.spisize", *spi_size);
                out.num("isakmp.pau.spinum", spis.len() as u64);
                spis.iter().for_each(|s| out.bytes("isakmp.pau.spi", s));
            }
            IkePayload::Unknown { data, .. } => out.bytes("isakmp.datapayload", data),
        }
    }
}

fn id_fields(id: &Identification, out: &mut Fields) {
    let d = id.data.as_slice();
    match id.id_type {
        Identification::IPV4_ADDR => {
            if let Ok(a) = <[u8; 4]>::try_from(d) {
                out.addr("isakmp.id.data.ipv4_addr", Ipv4Addr::from(a));
            }
        }
        Identification::IPV6_ADDR => {
            if let Ok(a) = <[u8; 16]>::try_from(d) {
                out.addr("isakmp.id.data.ipv6_addr", Ipv6Addr::from(a));
            }
        }
        Identification::FQDN => out.text("isakmp.id.data.fqdn", String::from_utf8_lossy(d)),
        Identification::RFC822_ADDR => {
            out.text("isakmp.id.data.user_fqdn", String::from_utf8_lossy(d))
        }
        Identification::KEY_ID => out.bytes("isakmp.id.data.key_id", d),
        _ => {}
    }
}

fn notify_fields(n: &Notify, cp: &CodePoints, out: &mut Fields) {
    out.num("isakmp.notify.protoid", n.protocol);
    out.num("isakmp.spisize", n.spi.len() as u64);
    out.num("isakmp.notify.msgtype", n.notify_type);
    if !n.spi.is_empty() {
        out.bytes("isakmp.spi", &n.spi);
    }
    out.bytes("isakmp.notify.data", &n.data);
    // The drafts' data, decoded only when well formed; names of ours.
    let t = n.notify_type;
    if t == cp.notify_peer_address_source || t == cp.notify_peer_address_destination {
        if let Ok(p) = PeerAddress::from_notify(n) {
            out.num("isakmp.peer_address.port", p.port);
            out.addr("isakmp.peer_address.addr", p.addr);
        }
    } else if t == cp.notify_switch_to_ip_address {
        if let Ok(a) = SwitchToIpAddress::from_notify(n) {
            out.addr("isakmp.switch_to_ip", a.0);
        }
    } else if t == cp.notify_tunnel_address {
        if let Ok(a) = TunnelAddress::from_notify(n) {
            out.addr("isakmp.tunnel_address", a.0);
        }
    }
}

impl fmt::Display for IkePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IkePayload::Notify(n) => write!(f, "N({})", NotifyType::from(n.notify_type)),
            IkePayload::Delete { protocol, spis, .. } => write!(f, "D({protocol}x{})", spis.len()),
            IkePayload::Sk { first_inner, data } => {
                write!(
                    f,
                    "SK({} {}B)",
                    IkePayloadType::from(*first_inner),
                    data.len()
                )
            }
            IkePayload::PeerAddressUpdate { all, spis, .. } => {
                write!(
                    f,
                    "PAU({})",
                    if *all {
                        "all".into()
                    } else {
                        spis.len().to_string()
                    }
                )
            }
            IkePayload::VendorId(d) => write!(f, "V({})", hex(d)),
            IkePayload::Unknown { payload_type, .. } => write!(f, "?{payload_type}"),
            p => write!(f, "{}", p.rfc7296_type()),
        }
    }
}
