//! Whole packets: the IP header, the IPv6 extension-header chain and the
//! upper layer, including tunnelled packets (IPv6-in-IPv6, IPv4), ESP,
//! the Mobility Header, and IKEv2 over UDP 500/4500.
//!
//! Upper-layer checksums use the Mobile IPv6 pseudo-header rules: the home
//! address from a Home Address option replaces the source (RFC 6275 §6.3),
//! and the home address of a type 2 routing header with segments left is
//! the final destination (RFC 6275 §6.4, RFC 8200 §8.1).
//!
//! [`decode`] goes as far as the bytes allow and lists every check that
//! failed; [`PacketRepr::parse`] is the strict form that fails on the first.
//! With a [`Fields`] sink, decoding also records every field under its
//! Wireshark display-filter name, read from the wire (lengths and checksums
//! as they were, not as we would emit them). Neighbor Discovery messages
//! (RFC 4861 §4) are read field by field and option by option in tshark's
//! names, and one that [`NdRepr::parse`] refuses is an error while its
//! ICMPv6 message still stands.

use core::fmt;
use core::net::{IpAddr, Ipv6Addr};

use super::checksum::PseudoHeader;
use super::esp::{EspOpener, EspPacket, EspRepr};
use super::ext::{ExtHeaderRepr, RoutingRepr};
use super::icmpv6::Icmpv6Repr;
use super::ike::IkeRepr;
use super::ipv4::{Ipv4Packet, Ipv4Repr};
use super::ipv6::{IpProtocol, Ipv6Packet, Ipv6Repr};
use super::mac::MacAddr;
use super::mh::{BaFlags, BuFlags, CoaTestCookie, MhMessage, MhOption, MhPacket, MhRepr};
use super::nd::{
    NdRepr, NEIGHBOR_ADVERTISEMENT, NEIGHBOR_SOLICITATION, ROUTER_ADVERTISEMENT,
    ROUTER_SOLICITATION,
};
use super::tcp::TcpRepr;
use super::udp::{UdpPacket, UdpRepr};
use super::{addr6, be16, be32, CodePoints, Fields, WireError};

/// IKEv2 (RFC 7296 §2).
pub const IKE_PORT: u16 = 500;
/// IKEv2 and ESP after NAT traversal (RFC 3948, RFC 7296 §2.23).
pub const IKE_NATT_PORT: u16 = 4500;

/// How deep tunnels may nest before the rest is kept as raw bytes.
const MAX_NESTING: usize = 8;

/// The Neighbor Discovery option types the decoder names (RFC 4861 §4.6,
/// RFC 6275 §7.3).
/// The network layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpRepr {
    /// `header.next_header` and `header.payload_len` are derived on emit.
    V6 {
        header: Ipv6Repr,
        ext: Vec<ExtHeaderRepr>,
    },
    /// The protocol field is derived on emit.
    V4(Ipv4Repr),
}

/// The payload of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpPayload {
    /// IKEv2 on port 500, or on 4500 after the non-ESP marker.
    Ike(IkeRepr),
    /// UDP-encapsulated ESP (RFC 3948) on port 4500.
    Esp(EspRepr),
    /// The one-byte NAT keepalive (RFC 3948 §2.3).
    NatKeepalive,
    Raw(Vec<u8>),
}

/// What follows the IP header and its extension headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperRepr {
    Mobility(MhRepr),
    Esp(EspRepr),
    Udp(UdpRepr, UdpPayload),
    Tcp(TcpRepr, Vec<u8>),
    Icmpv6(Icmpv6Repr),
    /// IPv6-in-IPv6 (41) or IPv4-in-IP (4).
    Tunnel(Box<PacketRepr>),
    /// Next header 59.
    NoNextHeader,
    /// Anything else, or a layer that did not decode.
    Raw {
        protocol: IpProtocol,
        data: Vec<u8>,
    },
}

/// A whole packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketRepr {
    pub ip: IpRepr,
    pub upper: UpperRepr,
}

/// The result of [`decode`]: the packet as far as it decoded, the checks
/// that failed, and the fields if asked for.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    pub repr: Option<PacketRepr>,
    /// What decrypted ESP payloads held, outermost first (only with
    /// [`decode_with`] and the keys).
    pub decrypted: Vec<UpperRepr>,
    pub errors: Vec<WireError>,
    pub fields: Fields,
}

/// Decodes `bytes` as an IP packet (the version nibble picks v4 or v6).
pub fn decode(bytes: &[u8], cp: &CodePoints, want_fields: bool) -> Decoded {
    decode_with(bytes, cp, want_fields, None)
}

/// [`decode`], also opening ESP for which `keys` has the SA: the payload
/// decodes as the layer its trailer names, as Wireshark does with its
/// `esp_sa` table, and a failed ICV is listed among the errors.
pub fn decode_with(
    bytes: &[u8],
    cp: &CodePoints,
    want_fields: bool,
    keys: Option<&dyn EspOpener>,
) -> Decoded {
    let mut d = Decoder {
        cp,
        want_fields,
        keys,
        out: Decoded::default(),
    };
    let repr = d.packet(bytes, 0);
    d.out.repr = repr;
    d.out
}

impl PacketRepr {
    /// An IPv6 packet with hop limit 64 and no traffic class or flow label;
    /// lengths and next-header fields are derived on emit.
    pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>, upper: UpperRepr) -> Self {
        let header = Ipv6Repr {
            traffic_class: 0,
            flow_label: 0,
            next_header: IpProtocol::NoNextHeader,
            payload_len: 0,
            hop_limit: 64,
            src,
            dst,
        };
        PacketRepr {
            ip: IpRepr::V6 { header, ext },
            upper,
        }
    }

    /// Strict parse: every check must pass, checksums included.
    pub fn parse(bytes: &[u8], cp: &CodePoints) -> Result<Self, WireError> {
        let d = decode(bytes, cp, false);
        match (d.errors.first(), d.repr) {
            (Some(e), _) => Err(*e),
            (None, Some(r)) => Ok(r),
            (None, None) => Err(WireError::Truncated("ip header")),
        }
    }

    /// The pseudo-header for this packet's upper layer.
    pub fn pseudo_header(&self) -> PseudoHeader {
        match &self.ip {
            IpRepr::V6 { header, ext } => pseudo_header_v6(header, ext),
            IpRepr::V4(h) => PseudoHeader::V4 {
                src: h.src,
                dst: h.dst,
            },
        }
    }

    /// The protocol number the upper layer goes under.
    fn upper_protocol(&self) -> IpProtocol {
        match &self.upper {
            UpperRepr::Mobility(_) => IpProtocol::Mobility,
            UpperRepr::Esp(_) => IpProtocol::Esp,
            UpperRepr::Udp(..) => IpProtocol::Udp,
            UpperRepr::Tcp(..) => IpProtocol::Tcp,
            UpperRepr::Icmpv6(_) => IpProtocol::Icmpv6,
            UpperRepr::Tunnel(inner) => match inner.ip {
                IpRepr::V6 { .. } => IpProtocol::Ipv6,
                IpRepr::V4(_) => IpProtocol::Ipv4,
            },
            UpperRepr::NoNextHeader => IpProtocol::NoNextHeader,
            UpperRepr::Raw { protocol, .. } => *protocol,
        }
    }

    /// Appends the packet with every length, next-header field and checksum
    /// computed, each layer written in place.
    pub fn emit(&self, out: &mut Vec<u8>, cp: &CodePoints) {
        match &self.ip {
            IpRepr::V6 { header, ext } => {
                let start = out.len();
                let mut h = *header;
                out.resize(start + h.buffer_len(), 0);
                for (i, e) in ext.iter().enumerate() {
                    let next = ext
                        .get(i + 1)
                        .map_or(self.upper_protocol(), |n| n.protocol());
                    e.emit(next, out);
                }
                self.emit_upper(out, cp);
                h.next_header = ext.first().map_or(self.upper_protocol(), |e| e.protocol());
                let payload = out.len() - start - h.buffer_len();
                h.payload_len = u16::try_from(payload).unwrap_or(u16::MAX);
                h.emit(&mut Ipv6Packet::new_unchecked(&mut out[start..]));
            }
            IpRepr::V4(h) => {
                // Its header length depends on the payload's.
                let mut upper = Vec::new();
                self.emit_upper(&mut upper, cp);
                let mut h = h.clone();
                h.protocol = self.upper_protocol();
                h.emit(upper.len(), out);
                out.extend_from_slice(&upper);
            }
        }
    }

    fn emit_upper(&self, out: &mut Vec<u8>, cp: &CodePoints) {
        let ph = self.pseudo_header();
        match &self.upper {
            UpperRepr::Mobility(mh) => mh.emit_vec(out, &ph, cp),
            UpperRepr::Esp(esp) => out.extend_from_slice(&esp_bytes(esp)),
            UpperRepr::Udp(udp, payload) => match payload {
                UdpPayload::Raw(b) => udp.emit(b, &ph, out),
                UdpPayload::NatKeepalive => udp.emit(&[0xff], &ph, out),
                UdpPayload::Esp(esp) => udp.emit(&esp_bytes(esp), &ph, out),
                UdpPayload::Ike(ike) => {
                    let mut b = Vec::new();
                    if udp.src_port == IKE_NATT_PORT || udp.dst_port == IKE_NATT_PORT {
                        b.extend_from_slice(&[0; 4]);
                    }
                    ike.emit(&mut b, cp);
                    udp.emit(&b, &ph, out);
                }
            },
            UpperRepr::Tcp(tcp, payload) => tcp.emit(payload, &ph, out),
            UpperRepr::Icmpv6(icmp) => icmp.emit(&ph, out),
            UpperRepr::Tunnel(inner) => inner.emit(out, cp),
            UpperRepr::NoNextHeader => {}
            UpperRepr::Raw { data, .. } => out.extend_from_slice(data),
        }
    }

    pub fn to_bytes(&self, cp: &CodePoints) -> Vec<u8> {
        // Room for a signalling message or a small datagram at once, rather
        // than growing through 8, 16, 32... bytes as the layers append.
        let mut v = Vec::with_capacity(256);
        self.emit(&mut v, cp);
        v
    }
}

fn esp_bytes(esp: &EspRepr) -> Vec<u8> {
    let mut b = vec![0u8; esp.buffer_len()];
    esp.emit(&mut EspPacket::new_unchecked(&mut b[..]));
    b
}

/// RFC 6275 §6.3/§6.4 and RFC 8200 §8.1: the home address stands for the
/// care-of address in the checksum of a packet carrying a HAO, and an
/// unprocessed type 2 routing header names the final destination.
fn pseudo_header_v6(h: &Ipv6Repr, ext: &[ExtHeaderRepr]) -> PseudoHeader {
    let mut src = h.src;
    let mut dst = h.dst;
    for e in ext {
        match e {
            ExtHeaderRepr::DestOpts(o) => {
                if let Some(hoa) = o.home_address() {
                    src = hoa;
                }
            }
            ExtHeaderRepr::Routing(RoutingRepr::Type2 {
                segments_left,
                home_address,
            }) if *segments_left > 0 => {
                dst = *home_address;
            }
            _ => {}
        }
    }
    PseudoHeader::V6 { src, dst }
}

struct Decoder<'c> {
    cp: &'c CodePoints,
    want_fields: bool,
    keys: Option<&'c dyn EspOpener>,
    out: Decoded,
}

impl Decoder<'_> {
    fn num(&mut self, name: &str, v: impl Into<u64>) {
        if self.want_fields {
            self.out.fields.num(name, v);
        }
    }

    fn flag(&mut self, name: &str, v: bool) {
        self.num(name, u64::from(v));
    }

    fn addr(&mut self, name: &str, v: impl Into<IpAddr>) {
        if self.want_fields {
            self.out.fields.addr(name, v);
        }
    }

    fn mac(&mut self, name: &str, v: MacAddr) {
        if self.want_fields {
            self.out.fields.mac(name, v);
        }
    }

    fn bytes(&mut self, name: &str, v: &[u8]) {
        if self.want_fields {
            self.out.fields.bytes(name, v);
        }
    }

    fn error(&mut self, e: WireError) {
        self.out.errors.push(e);
    }

    fn packet(&mut self, b: &[u8], depth: usize) -> Option<PacketRepr> {
        match b.first().map(|v| v >> 4) {
            Some(6) => self.ipv6(b, depth),
            Some(4) => self.ipv4(b, depth),
            Some(_) => {
                self.error(WireError::BadValue("ip version"));
                None
            }
            None => {
                self.error(WireError::Truncated("ip header"));
                None
            }
        }
    }

    fn ipv6(&mut self, b: &[u8], depth: usize) -> Option<PacketRepr> {
        let p = match Ipv6Packet::new_checked(b) {
            Ok(p) => p,
            Err(e) => {
                self.error(e);
                return None;
            }
        };
        let header = match Ipv6Repr::parse(&p) {
            Ok(h) => h,
            Err(e) => {
                self.error(e);
                return None;
            }
        };
        self.num("ipv6.version", 6u8);
        self.num("ipv6.tclass", header.traffic_class);
        self.num("ipv6.flow", header.flow_label);
        self.num("ipv6.plen", header.payload_len);
        self.num("ipv6.nxt", u8::from(header.next_header));
        self.num("ipv6.hlim", header.hop_limit);
        self.addr("ipv6.src", header.src);
        self.addr("ipv6.dst", header.dst);
        let mut rest = p.payload();
        let mut next = header.next_header;
        let mut ext = Vec::new();
        while ExtHeaderRepr::is_ext(next) {
            match ExtHeaderRepr::parse(next, rest) {
                Ok((h, n, len)) => {
                    self.ext_fields(&h, rest, n);
                    ext.push(h);
                    next = n;
                    rest = &rest[len..];
                }
                Err(e) => {
                    self.error(e);
                    let upper = UpperRepr::Raw {
                        protocol: next,
                        data: rest.to_vec(),
                    };
                    return Some(PacketRepr {
                        ip: IpRepr::V6 { header, ext },
                        upper,
                    });
                }
            }
        }
        let ph = pseudo_header_v6(&header, &ext);
        let upper = self.upper(next, rest, &ph, depth);
        Some(PacketRepr {
            ip: IpRepr::V6 { header, ext },
            upper,
        })
    }

    fn ext_fields(&mut self, h: &ExtHeaderRepr, b: &[u8], next: IpProtocol) {
        let len = b.get(1).copied().unwrap_or(0);
        match h {
            ExtHeaderRepr::HopByHop(_) => {
                self.num("ipv6.hopopts.nxt", u8::from(next));
                self.num("ipv6.hopopts.len", len);
            }
            ExtHeaderRepr::DestOpts(o) => {
                self.num("ipv6.dstopts.nxt", u8::from(next));
                self.num("ipv6.dstopts.len", len);
                if let Some(hoa) = o.home_address() {
                    self.addr("ipv6.opt.mipv6.home_address", hoa);
                }
            }
            ExtHeaderRepr::Routing(r) => {
                self.num("ipv6.routing.nxt", u8::from(next));
                self.num("ipv6.routing.len", len);
                let (ty, sl) = match r {
                    RoutingRepr::Type2 { segments_left, .. } => (2, *segments_left),
                    RoutingRepr::Other {
                        routing_type,
                        segments_left,
                        ..
                    } => (*routing_type, *segments_left),
                };
                self.num("ipv6.routing.type", ty);
                self.num("ipv6.routing.segleft", sl);
                if let RoutingRepr::Type2 { home_address, .. } = r {
                    self.addr("ipv6.routing.mipv6.home_address", *home_address);
                }
            }
            ExtHeaderRepr::Fragment(f) => {
                self.num("ipv6.fraghdr.nxt", u8::from(next));
                self.num("ipv6.fraghdr.offset", f.offset);
                self.flag("ipv6.fraghdr.more", f.more);
                self.num("ipv6.fraghdr.ident", f.ident);
            }
        }
    }

    fn ipv4(&mut self, b: &[u8], depth: usize) -> Option<PacketRepr> {
        let parsed = Ipv4Packet::new_checked(b).and_then(|p| Ok((Ipv4Repr::parse(&p)?, p)));
        let (header, p) = match parsed {
            Ok(v) => v,
            Err(e) => {
                self.error(e);
                return None;
            }
        };
        self.num("ip.version", 4u8);
        self.num("ip.hdr_len", p.header_len() as u64);
        self.num("ip.dsfield", header.tos);
        self.num("ip.len", p.total_len());
        self.num("ip.id", header.ident);
        self.num("ip.flags", header.flags_fragment >> 13);
        self.num("ip.frag_offset", header.flags_fragment & 0x1fff);
        self.num("ip.ttl", header.ttl);
        self.num("ip.proto", u8::from(header.protocol));
        self.num("ip.checksum", be16(b, 10));
        self.addr("ip.src", header.src);
        self.addr("ip.dst", header.dst);
        if !p.header_checksum_ok() {
            self.error(WireError::BadChecksum("ipv4 header"));
        }
        let ph = PseudoHeader::V4 {
            src: header.src,
            dst: header.dst,
        };
        let upper = self.upper(header.protocol, p.payload(), &ph, depth);
        Some(PacketRepr {
            ip: IpRepr::V4(header),
            upper,
        })
    }

    fn upper(&mut self, proto: IpProtocol, b: &[u8], ph: &PseudoHeader, depth: usize) -> UpperRepr {
        let raw = || UpperRepr::Raw {
            protocol: proto,
            data: b.to_vec(),
        };
        let result = match proto {
            IpProtocol::Mobility => self.mobility(b, ph).map(UpperRepr::Mobility),
            IpProtocol::Esp => self.esp(b, ph, depth).map(UpperRepr::Esp),
            IpProtocol::Udp => self.udp(b, ph, depth),
            IpProtocol::Tcp => self.tcp(b, ph),
            IpProtocol::Icmpv6 => self.icmpv6(b, ph).map(UpperRepr::Icmpv6),
            IpProtocol::Ipv6 | IpProtocol::Ipv4 if depth >= MAX_NESTING => {
                Err(WireError::BadValue("tunnels nested too deep"))
            }
            IpProtocol::Ipv6 | IpProtocol::Ipv4 => {
                let want = if proto == IpProtocol::Ipv6 { 6 } else { 4 };
                if b.first().map(|v| v >> 4) != Some(want) {
                    Err(WireError::BadValue("tunnelled ip version"))
                } else {
                    return self
                        .packet(b, depth + 1)
                        .map_or_else(raw, |p| UpperRepr::Tunnel(Box::new(p)));
                }
            }
            IpProtocol::NoNextHeader => Ok(UpperRepr::NoNextHeader),
            _ => Ok(raw()),
        };
        result.unwrap_or_else(|e| {
            self.error(e);
            raw()
        })
    }

    fn mobility(&mut self, b: &[u8], ph: &PseudoHeader) -> Result<MhRepr, WireError> {
        if b.len() >= 6 {
            self.num("mip6.proto", b[0]);
            self.num("mip6.hlen", b[1]);
            self.num("mip6.mhtype", b[2]);
            self.num("mip6.reserved", b[3]);
            self.num("mip6.csum", be16(b, 4));
        }
        let p = MhPacket::new_checked(b)?;
        // Shown as far as it goes: a bad Payload Proto is reported, and the
        // message and its options still decode.
        let mh = MhRepr::parse_message(&p, self.cp)?;
        if p.payload_proto() != u8::from(IpProtocol::NoNextHeader) {
            self.error(WireError::BadValue("mh payload proto"));
        }
        if !p.verify_checksum(ph) {
            self.error(WireError::BadChecksum("mobility header"));
        }
        self.mh_fields(&mh);
        Ok(mh)
    }

    fn mh_fields(&mut self, mh: &MhRepr) {
        match &mh.message {
            MhMessage::BindingRefreshRequest => {}
            MhMessage::HomeTestInit { cookie } => self.num("mip6.hoti.cookie", *cookie),
            MhMessage::CareOfTestInit { cookie } => self.num("mip6.coti.cookie", *cookie),
            MhMessage::HomeTest {
                nonce_index,
                cookie,
                token,
            } => {
                self.num("mip6.hot.nindex", *nonce_index);
                self.num("mip6.hot.cookie", *cookie);
                self.num("mip6.hot.token", *token);
            }
            MhMessage::CareOfTest {
                nonce_index,
                cookie,
                token,
            } => {
                self.num("mip6.cot.nindex", *nonce_index);
                self.num("mip6.cot.cookie", *cookie);
                self.num("mip6.cot.token", *token);
            }
            MhMessage::BindingUpdate {
                seq,
                flags,
                lifetime,
            } => {
                self.num("mip6.bu.seqnr", *seq);
                for (bit, name) in [
                    (BuFlags::A, "mip6.bu.a_flag"),
                    (BuFlags::H, "mip6.bu.h_flag"),
                    (BuFlags::L, "mip6.bu.l_flag"),
                    (BuFlags::K, "mip6.bu.k_flag"),
                    (BuFlags::M, "mip6.bu.m_flag"),
                    (BuFlags::R, "mip6.nemo.bu.r_flag"),
                    (BuFlags::P, "mip6.bu.p_flag"),
                    (BuFlags::F, "mip6.bu.f_flag"),
                    (BuFlags::T, "mip6.bu.t_flag"),
                    (BuFlags::B, "mip6.bu.b_flag"),
                ] {
                    self.flag(name, flags.has(bit));
                }
                self.num("mip6.bu.lifetime", *lifetime);
            }
            MhMessage::BindingAck {
                status,
                flags,
                seq,
                lifetime,
            } => {
                self.num("mip6.ba.status", u8::from(*status));
                for (bit, name) in [
                    (BaFlags::K, "mip6.ba.k_flag"),
                    (BaFlags::R, "mip6.nemo.ba.r_flag"),
                    (BaFlags::P, "mip6.ba.p_flag"),
                    (BaFlags::T, "mip6.ba.t_flag"),
                    (BaFlags::B, "mip6.ba.b_flag"),
                ] {
                    self.flag(name, flags.has(bit));
                }
                self.num("mip6.ba.seqnr", *seq);
                self.num("mip6.ba.lifetime", *lifetime);
            }
            MhMessage::BindingError {
                status,
                home_address,
            } => {
                self.num("mip6.be.status", *status);
                self.addr("mip6.be.haddr", *home_address);
            }
            MhMessage::Unknown { data, .. } => self.bytes("mip6.unknown_type_data", data),
        }
        for o in &mh.options {
            match o {
                MhOption::BindingRefreshAdvice(v) => self.num("mip6.bra.interval", *v),
                MhOption::AlternateCareOfAddress(a) => self.addr("mip6.acoa.acoa", *a),
                MhOption::NonceIndices { home, care_of } => {
                    self.num("mip6.ni.hni", *home);
                    self.num("mip6.ni.cni", *care_of);
                }
                MhOption::BindingAuthData(a) => self.bytes("mip6.bad.auth", a),
                MhOption::Cookie(c) => {
                    self.bytes("mip6.cookie", c);
                    if let Ok(k) = CoaTestCookie::parse(c) {
                        self.num("mip6.cookie.timestamp", k.timestamp);
                        self.addr("mip6.cookie.coa", k.care_of);
                        self.bytes("mip6.cookie.mac", &k.mac);
                    }
                }
                MhOption::Unknown { opt_type, data, .. } => {
                    self.num("mip6.unknown_option.type", *opt_type);
                    self.bytes("mip6.unknown_option.data", data);
                }
            }
        }
    }

    fn esp(&mut self, b: &[u8], ph: &PseudoHeader, depth: usize) -> Result<EspRepr, WireError> {
        let esp = EspRepr::parse(&EspPacket::new_checked(b)?)?;
        self.num("esp.spi", esp.spi);
        self.num("esp.sequence", esp.sequence);
        match self.keys.and_then(|k| k.open(b)) {
            None => {}
            Some(Err(e)) => self.error(e),
            Some(Ok((payload, trailer))) => {
                self.num("esp.pad_len", trailer.pad_len);
                self.num("esp.protocol", u8::from(trailer.next_header));
                // Transport mode: the payload's checksum uses the outer
                // (pseudo-)header, which ESP did not change.
                let inner = self.upper(trailer.next_header, &payload, ph, depth + 1);
                self.out.decrypted.push(inner);
            }
        }
        Ok(esp)
    }

    fn udp(&mut self, b: &[u8], ph: &PseudoHeader, depth: usize) -> Result<UpperRepr, WireError> {
        let p = UdpPacket::new_checked(b)?;
        let udp = UdpRepr::parse(&p)?;
        self.num("udp.srcport", udp.src_port);
        self.num("udp.dstport", udp.dst_port);
        self.num("udp.length", p.len());
        self.num("udp.checksum", p.checksum());
        if !p.verify_checksum(ph) {
            self.error(WireError::BadChecksum("udp"));
        }
        let body = p.payload();
        let ports = [udp.src_port, udp.dst_port];
        let payload = if ports.contains(&IKE_NATT_PORT) {
            match body {
                [0xff] => Ok(UdpPayload::NatKeepalive),
                [0, 0, 0, 0, ike @ ..] => self.ike(ike).map(UdpPayload::Ike),
                _ => self.esp(body, ph, depth).map(UdpPayload::Esp),
            }
        } else if ports.contains(&IKE_PORT) {
            self.ike(body).map(UdpPayload::Ike)
        } else {
            Ok(UdpPayload::Raw(body.to_vec()))
        };
        let payload = payload.unwrap_or_else(|e| {
            self.error(e);
            UdpPayload::Raw(body.to_vec())
        });
        Ok(UpperRepr::Udp(udp, payload))
    }

    fn ike(&mut self, b: &[u8]) -> Result<IkeRepr, WireError> {
        let ike = IkeRepr::parse(b, self.cp)?;
        if self.want_fields {
            ike.fields(self.cp, &mut self.out.fields);
        }
        Ok(ike)
    }

    fn tcp(&mut self, b: &[u8], ph: &PseudoHeader) -> Result<UpperRepr, WireError> {
        let (tcp, off) = TcpRepr::parse(b)?;
        self.num("tcp.srcport", tcp.src_port);
        self.num("tcp.dstport", tcp.dst_port);
        self.num("tcp.seq_raw", tcp.seq);
        self.num("tcp.ack_raw", tcp.ack);
        self.num("tcp.hdr_len", off as u64);
        self.num("tcp.flags", tcp.flags);
        self.num("tcp.window_size_value", tcp.window);
        self.num("tcp.checksum", be16(b, 16));
        self.num("tcp.urgent_pointer", tcp.urgent);
        if ph.checksum(IpProtocol::Tcp.into(), b) != 0 {
            self.error(WireError::BadChecksum("tcp"));
        }
        Ok(UpperRepr::Tcp(tcp, b[off..].to_vec()))
    }

    fn icmpv6(&mut self, b: &[u8], ph: &PseudoHeader) -> Result<Icmpv6Repr, WireError> {
        let icmp = Icmpv6Repr::parse(b)?;
        self.num("icmpv6.type", icmp.msg_type);
        self.num("icmpv6.code", icmp.code);
        self.num("icmpv6.checksum", be16(b, 2));
        if let Some((id, seq)) = icmp.echo() {
            self.num("icmpv6.echo.identifier", id);
            self.num("icmpv6.echo.sequence_number", seq);
        }
        if !Icmpv6Repr::verify_checksum(b, ph) {
            self.error(WireError::BadChecksum("icmpv6"));
        }
        self.nd(&icmp);
        Ok(icmp)
    }

    /// A Neighbor Discovery message's fields as far as its bytes go, then
    /// the checks of [`NdRepr::parse`] (code 0, length, option lengths,
    /// unicast target): a failure is listed and the ICMPv6 message kept.
    fn nd(&mut self, icmp: &Icmpv6Repr) {
        let b = &icmp.body[..];
        let fixed = match icmp.msg_type {
            ROUTER_SOLICITATION => 4,
            ROUTER_ADVERTISEMENT => 12,
            NEIGHBOR_SOLICITATION | NEIGHBOR_ADVERTISEMENT => 20,
            _ => return,
        };
        if self.want_fields {
            self.nd_fields(icmp.msg_type, b, fixed);
        }
        if let Err(e) = NdRepr::parse(icmp) {
            self.error(e);
        }
    }

    fn nd_fields(&mut self, msg_type: u8, b: &[u8], fixed: usize) {
        let at = |i: usize, n: usize| b.get(i..i + n);
        match msg_type {
            ROUTER_ADVERTISEMENT => {
                if let Some(v) = at(0, 1) {
                    self.num("icmpv6.nd.ra.cur_hop_limit", v[0]);
                }
                if let Some(v) = at(1, 1) {
                    let f = v[0];
                    self.num("icmpv6.nd.ra.flag", f);
                    self.flag("icmpv6.nd.ra.flag.m", f & 0x80 != 0);
                    self.flag("icmpv6.nd.ra.flag.o", f & 0x40 != 0);
                    // RFC 6275 §7.1: the router is a home agent.
                    self.flag("icmpv6.nd.ra.flag.h", f & 0x20 != 0);
                    self.num("icmpv6.nd.ra.flag.prf", (f >> 3) & 0x03);
                    self.flag("icmpv6.nd.ra.flag.p", f & 0x04 != 0);
                    self.num("icmpv6.nd.ra.flag.rsv", f & 0x03);
                }
                if let Some(v) = at(2, 2) {
                    self.num("icmpv6.nd.ra.router_lifetime", be16(v, 0));
                }
                if let Some(v) = at(4, 4) {
                    self.num("icmpv6.nd.ra.reachable_time", be32(v, 0));
                }
                if let Some(v) = at(8, 4) {
                    self.num("icmpv6.nd.ra.retrans_timer", be32(v, 0));
                }
            }
            NEIGHBOR_ADVERTISEMENT => {
                if let Some(v) = at(0, 4) {
                    let f = be32(v, 0);
                    self.num("icmpv6.nd.na.flag", f);
                    self.flag("icmpv6.nd.na.flag.r", f & 0x8000_0000 != 0);
                    self.flag("icmpv6.nd.na.flag.s", f & 0x4000_0000 != 0);
                    self.flag("icmpv6.nd.na.flag.o", f & 0x2000_0000 != 0);
                    self.num("icmpv6.nd.na.flag.rsv", f & 0x1fff_ffff);
                }
                if let Some(v) = at(4, 16) {
                    self.addr("icmpv6.nd.na.target_address", addr6(v, 0));
                }
            }
            // RS and NS: four reserved bytes, and NS's target.
            _ => {
                if let Some(v) = at(0, 4) {
                    self.bytes("icmpv6.reserved", v);
                }
                if msg_type == NEIGHBOR_SOLICITATION {
                    if let Some(v) = at(4, 16) {
                        self.addr("icmpv6.nd.ns.target_address", addr6(v, 0));
                    }
                }
            }
        }
        if let Some(options) = b.get(fixed..) {
            self.nd_options(options);
        }
    }

    /// The options on the wire, in order, up to one of length 0 or one
    /// cut short (which [`NdRepr::parse`] reports).
    fn nd_options(&mut self, mut b: &[u8]) {
        while let &[kind, units, ..] = b {
            self.num("icmpv6.opt.type", kind);
            self.num("icmpv6.opt.length", units);
            let len = usize::from(units) * 8;
            let Some(opt) = b.get(..len).filter(|_| len > 0) else {
                return;
            };
            match (kind, len) {
                (super::nd::option::SOURCE_LL | super::nd::option::TARGET_LL, 8) => {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(&opt[2..8]);
                    let m = MacAddr(m);
                    // tshark gives both the generic name and a hidden
                    // per-kind one.
                    self.mac("icmpv6.opt.linkaddr", m);
                    if kind == super::nd::option::SOURCE_LL {
                        self.mac("icmpv6.opt.src_linkaddr", m);
                    } else {
                        self.mac("icmpv6.opt.target_linkaddr", m);
                    }
                }
                (super::nd::option::PREFIX_INFORMATION, 32) => {
                    let f = opt[3];
                    self.num("icmpv6.opt.prefix.length", opt[2]);
                    self.num("icmpv6.opt.prefix.flag", f);
                    self.flag("icmpv6.opt.prefix.flag.l", f & 0x80 != 0);
                    self.flag("icmpv6.opt.prefix.flag.a", f & 0x40 != 0);
                    // RFC 6275 §7.2: the prefix field is the router's address.
                    self.flag("icmpv6.opt.prefix.flag.r", f & 0x20 != 0);
                    self.num("icmpv6.opt.prefix.flag.reserved", f & 0x1f);
                    self.num("icmpv6.opt.prefix.valid_lifetime", be32(opt, 4));
                    self.num("icmpv6.opt.prefix.preferred_lifetime", be32(opt, 8));
                    self.addr("icmpv6.opt.prefix", addr6(opt, 16));
                }
                (super::nd::option::MTU, 8) => self.num("icmpv6.opt.mtu", be32(opt, 4)),
                // RFC 6275 §7.3.
                (super::nd::option::ADVERTISEMENT_INTERVAL, 8) => {
                    self.num("icmpv6.opt.advertisement_interval", be32(opt, 4));
                }
                _ => {}
            }
            b = &b[len..];
        }
    }
}

impl fmt::Display for PacketRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ip {
            IpRepr::V6 { header, ext } => {
                write!(f, "IPv6 {} > {}", header.src, header.dst)?;
                for e in ext {
                    write!(f, " {e}")?;
                }
            }
            IpRepr::V4(h) => write!(f, "IPv4 {} > {}", h.src, h.dst)?,
        }
        write!(f, " {}", self.upper)
    }
}

impl fmt::Display for UpperRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpperRepr::Mobility(mh) => write!(f, "{mh}"),
            UpperRepr::Esp(esp) => write!(f, "{esp}"),
            UpperRepr::Udp(udp, UdpPayload::Ike(ike)) => write!(f, "{udp} {ike}"),
            UpperRepr::Udp(udp, UdpPayload::Esp(esp)) => write!(f, "{udp} {esp}"),
            UpperRepr::Udp(udp, UdpPayload::NatKeepalive) => write!(f, "{udp} NAT keepalive"),
            UpperRepr::Udp(udp, UdpPayload::Raw(b)) => write!(f, "{udp} ({} bytes)", b.len()),
            UpperRepr::Tcp(tcp, b) => write!(f, "{tcp} ({} bytes)", b.len()),
            UpperRepr::Icmpv6(icmp) => match NdRepr::parse(icmp) {
                Ok(Some(nd)) => write_nd(f, &nd),
                _ => write!(f, "{icmp}"),
            },
            UpperRepr::Tunnel(inner) => write!(f, "[{inner}]"),
            UpperRepr::NoNextHeader => write!(f, "no next header"),
            UpperRepr::Raw { protocol, data } => {
                write!(f, "proto {protocol} ({} bytes)", data.len())
            }
        }
    }
}

/// One line for a Neighbor Discovery message: its kind, target, flags and
/// options.
fn write_nd(f: &mut fmt::Formatter<'_>, nd: &NdRepr) -> fmt::Result {
    let ll = |f: &mut fmt::Formatter<'_>, kind: &str, m: Option<MacAddr>| match m {
        Some(m) => write!(f, " {kind} {m}"),
        None => Ok(()),
    };
    match nd {
        NdRepr::RouterSolicit { source_ll } => {
            f.write_str("ND router solicitation")?;
            ll(f, "sll", *source_ll)
        }
        NdRepr::RouterAdvert(ra) => {
            write!(f, "ND router advertisement lifetime={}", ra.router_lifetime)?;
            if ra.flags & super::nd::ra_flags::HOME_AGENT != 0 {
                f.write_str(" H")?;
            }
            ll(f, "sll", ra.source_ll)?;
            if let Some(mtu) = ra.mtu {
                write!(f, " mtu {mtu}")?;
            }
            if let Some(ms) = ra.advertisement_interval {
                write!(f, " interval {ms} ms")?;
            }
            for p in &ra.prefixes {
                write!(f, " prefix {}/{}", p.prefix, p.prefix_len)?;
                if p.router_address {
                    f.write_str(" R")?;
                }
            }
            Ok(())
        }
        NdRepr::NeighborSolicit { target, source_ll } => {
            write!(f, "ND neighbor solicitation target {target}")?;
            ll(f, "sll", *source_ll)
        }
        NdRepr::NeighborAdvert {
            flags,
            target,
            target_ll,
        } => {
            write!(f, "ND neighbor advertisement target {target}")?;
            for (set, name) in [
                (flags.router, " R"),
                (flags.solicited, " S"),
                (flags.override_, " O"),
            ] {
                if set {
                    f.write_str(name)?;
                }
            }
            ll(f, "tll", *target_ll)
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::ext::{DestOptRepr, Ipv6OptionRepr};
    use crate::wire::mh::BaStatus;

    // Built by scapy 2.5 (scapy.layers.inet6), with its own checksums, which
    // follow the MIPv6 pseudo-header rules (HAO → source, RH2 → destination).
    // BU_HAO: IPv6(src=COA, dst=CN)/IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])/
    //   MIP6MH_BU(seq=7, flags="A" (scapy numbers BU flag bits LSB-first), mhtime=100,
    //   options=[MIP6OptAltCoA(acoa=COA), MIP6OptNonceIndices(olen=4, hni=3, coni=4),
    //   MIP6OptBindingAuthData(olen=12, authenticator=0x0102..0c)])
    const BU_HAO: &str = "6000000000503c4020010db800020000000000000000001020010db8000300000000000000000001870201020000c91020010db80001000000000000000001003b06050082390007800000640100031020010db800020000000000000000001004040003000401020000050c0102030405060708090a0b0c";
    // IPv6(src=CN, dst=COA)/IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA])/
    //   MIP6MH_BA(status=0, seq=7, mhtime=100, options=[MIP6OptBRAdvice(rinter=50)])
    const BA_RH2: &str = "6000000000282b4020010db800030000000000000000000120010db8000200000000000000000010870202010000000020010db80001000000000000000001003b0106005ed100800007006402020032";
    const HOTI: &str = "600000000010874020010db800010000000000000000010020010db80003000000000000000000013b01010056dc00000102030405060708";
    const COTI: &str = "600000000010874020010db800020000000000000000001020010db80003000000000000000000013b010200168b00001112131415161718";
    const HOT: &str = "600000000018874020010db800030000000000000000000120010db80001000000000000000001003b020300c23700050102030405060708a1a2a3a4a5a6a7a8";
    const COT: &str = "600000000018874020010db800030000000000000000000120010db80002000000000000000000103b02040041a500061112131415161718b1b2b3b4b5b6b7b8";
    const BRR: &str = "600000000008874020010db800030000000000000000000120010db80001000000000000000001003b00000067f90000";
    const BE: &str = "600000000018874020010db800030000000000000000000120010db80002000000000000000000103b020700321c010020010db8000100000000000000000100";

    const ALL: [&str; 8] = [BU_HAO, BA_RH2, HOTI, COTI, HOT, COT, BRR, BE];

    fn a(s: &str) -> core::net::Ipv6Addr {
        s.parse().unwrap()
    }

    fn mh_of(p: &PacketRepr) -> &MhRepr {
        match &p.upper {
            UpperRepr::Mobility(mh) => mh,
            other => panic!("not MH: {other:?}"),
        }
    }

    #[test]
    fn scapy_vectors_parse_strictly_and_reemit_identically() {
        // REQ MIP-BASE: MH checksums with HoA as source (HAO) and the RH2 home
        // address as destination agree with scapy's.
        let cp = CodePoints::default();
        for v in ALL {
            let b = hex::decode(v).unwrap();
            let p = PacketRepr::parse(&b, &cp).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(p.to_bytes(&cp), b, "re-emit of {p}");
        }
    }

    #[test]
    fn binding_update_with_hao_fields() {
        let cp = CodePoints::default();
        let p = PacketRepr::parse(&hex::decode(BU_HAO).unwrap(), &cp).unwrap();
        let IpRepr::V6 { ext, .. } = &p.ip else {
            panic!()
        };
        assert_eq!(
            ext[..],
            [ExtHeaderRepr::DestOpts(DestOptRepr {
                options: vec![Ipv6OptionRepr::HomeAddress(a("2001:db8:1::100"))]
            })]
        );
        assert_eq!(
            *mh_of(&p),
            MhRepr {
                message: MhMessage::BindingUpdate {
                    seq: 7,
                    flags: BuFlags(BuFlags::A),
                    lifetime: 100
                },
                options: vec![
                    MhOption::AlternateCareOfAddress(a("2001:db8:2::10")),
                    MhOption::NonceIndices {
                        home: 3,
                        care_of: 4
                    },
                    MhOption::BindingAuthData([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
                ]
            }
        );
        assert_eq!(
            p.pseudo_header(),
            PseudoHeader::V6 {
                src: a("2001:db8:1::100"),
                dst: a("2001:db8:3::1")
            }
        );
    }

    #[test]
    fn binding_ack_and_rr_messages() {
        let cp = CodePoints::default();
        let parse = |v: &str| PacketRepr::parse(&hex::decode(v).unwrap(), &cp).unwrap();
        let ba = parse(BA_RH2);
        assert_eq!(
            *mh_of(&ba),
            MhRepr {
                message: MhMessage::BindingAck {
                    status: BaStatus::Accepted,
                    // scapy's BA sets K by default.
                    flags: BaFlags(BaFlags::K),
                    seq: 7,
                    lifetime: 100
                },
                options: vec![MhOption::BindingRefreshAdvice(50)],
            }
        );
        assert_eq!(
            ba.pseudo_header(),
            PseudoHeader::V6 {
                src: a("2001:db8:3::1"),
                dst: a("2001:db8:1::100")
            }
        );
        assert_eq!(
            mh_of(&parse(HOTI)).message,
            MhMessage::HomeTestInit {
                cookie: 0x0102030405060708
            }
        );
        assert_eq!(
            mh_of(&parse(COTI)).message,
            MhMessage::CareOfTestInit {
                cookie: 0x1112131415161718
            }
        );
        assert_eq!(
            mh_of(&parse(HOT)).message,
            MhMessage::HomeTest {
                nonce_index: 5,
                cookie: 0x0102030405060708,
                token: 0xa1a2a3a4a5a6a7a8
            }
        );
        assert_eq!(
            mh_of(&parse(COT)).message,
            MhMessage::CareOfTest {
                nonce_index: 6,
                cookie: 0x1112131415161718,
                token: 0xb1b2b3b4b5b6b7b8
            }
        );
        assert_eq!(mh_of(&parse(BRR)).message, MhMessage::BindingRefreshRequest);
        assert_eq!(
            mh_of(&parse(BE)).message,
            MhMessage::BindingError {
                status: 1,
                home_address: a("2001:db8:1::100")
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let cp = CodePoints::default();
        for v in ALL {
            let b = hex::decode(v).unwrap();
            for n in 0..b.len() {
                assert!(PacketRepr::parse(&b[..n], &cp).is_err(), "{v} cut at {n}");
            }
            // The Mobility Header alone, cut anywhere, is refused too.
            let mh_start = b.len() - mh_len(&b);
            let mh = &b[mh_start..];
            for n in 0..mh.len() {
                assert!(
                    MhPacket::new_checked(&mh[..n]).is_err(),
                    "{v} MH cut at {n}"
                );
            }
        }
    }

    fn mh_len(b: &[u8]) -> usize {
        // The MH is the last header: its Header Len is at its second byte.
        let d = decode(b, &CodePoints::default(), true);
        let hlen = d.fields.get("mip6.hlen");
        match hlen.first() {
            Some(crate::wire::FieldValue::Num(n)) => (*n as usize + 1) * 8,
            _ => panic!("no MH"),
        }
    }

    #[test]
    fn bad_checksum_is_reported_and_decoding_goes_on() {
        let cp = CodePoints::default();
        let mut b = hex::decode(BU_HAO).unwrap();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert_eq!(
            PacketRepr::parse(&b, &cp),
            Err(WireError::BadChecksum("mobility header"))
        );
        let d = decode(&b, &cp, true);
        assert_eq!(d.errors, [WireError::BadChecksum("mobility header")]);
        assert!(matches!(d.repr.unwrap().upper, UpperRepr::Mobility(_)));
        assert_eq!(
            d.fields.get("mip6.bu.seqnr"),
            [&crate::wire::FieldValue::Num(7)]
        );
    }

    /// An ND packet as the engines send it: hop limit 255, no extension
    /// headers.
    fn nd_bytes(src: &str, dst: &str, nd: &NdRepr) -> Vec<u8> {
        let mut p = PacketRepr::ipv6(a(src), a(dst), vec![], UpperRepr::Icmpv6(nd.to_icmpv6()));
        if let IpRepr::V6 { header, .. } = &mut p.ip {
            header.hop_limit = 255;
        }
        p.to_bytes(&CodePoints::default())
    }

    fn home_ra() -> NdRepr {
        use crate::wire::nd::{ra_flags, PrefixInfo, RouterAdvert};
        NdRepr::RouterAdvert(RouterAdvert {
            hop_limit: 64,
            flags: ra_flags::HOME_AGENT,
            router_lifetime: 1800,
            reachable_time: 30_000,
            retrans_timer: 1000,
            source_ll: Some(MacAddr([2, 0, 0, 0, 0, 0x11])),
            mtu: Some(1500),
            prefixes: vec![PrefixInfo {
                router_address: true,
                ..PrefixInfo::slaac(a("2001:db8:1::1"))
            }],
            advertisement_interval: Some(1000),
        })
    }

    #[test]
    fn neighbor_discovery_fields_use_tsharks_names() {
        use crate::wire::FieldValue::{Addr, Mac, Num};
        let cp = CodePoints::default();
        let b = nd_bytes("fe80::1", "ff02::1", &home_ra());
        let d = decode(&b, &cp, true);
        assert_eq!(d.errors, []);
        let f = |n: &str| d.fields.get(n).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(f("icmpv6.nd.ra.cur_hop_limit"), [Num(64)]);
        assert_eq!(f("icmpv6.nd.ra.flag"), [Num(0x20)]);
        assert_eq!(f("icmpv6.nd.ra.flag.h"), [Num(1)]);
        assert_eq!(f("icmpv6.nd.ra.flag.m"), [Num(0)]);
        assert_eq!(f("icmpv6.nd.ra.router_lifetime"), [Num(1800)]);
        assert_eq!(f("icmpv6.nd.ra.reachable_time"), [Num(30_000)]);
        assert_eq!(f("icmpv6.nd.ra.retrans_timer"), [Num(1000)]);
        assert_eq!(f("icmpv6.opt.type"), [Num(1), Num(5), Num(7), Num(3)]);
        assert_eq!(f("icmpv6.opt.length"), [Num(1), Num(1), Num(1), Num(4)]);
        let mac = MacAddr([2, 0, 0, 0, 0, 0x11]);
        assert_eq!(f("icmpv6.opt.linkaddr"), [Mac(mac)]);
        assert_eq!(f("icmpv6.opt.src_linkaddr"), [Mac(mac)]);
        assert_eq!(
            d.fields.get("icmpv6.opt.linkaddr")[0].to_string(),
            "02:00:00:00:00:11"
        );
        assert_eq!(f("icmpv6.opt.mtu"), [Num(1500)]);
        assert_eq!(f("icmpv6.opt.advertisement_interval"), [Num(1000)]);
        assert_eq!(f("icmpv6.opt.prefix"), [Addr(a("2001:db8:1::1").into())]);
        assert_eq!(f("icmpv6.opt.prefix.length"), [Num(64)]);
        assert_eq!(f("icmpv6.opt.prefix.flag"), [Num(0xe0)]);
        assert_eq!(f("icmpv6.opt.prefix.flag.r"), [Num(1)]);
        assert_eq!(f("icmpv6.opt.prefix.valid_lifetime"), [Num(2_592_000)]);
        assert_eq!(f("icmpv6.opt.prefix.preferred_lifetime"), [Num(604_800)]);

        let na = NdRepr::NeighborAdvert {
            flags: crate::wire::nd::NaFlags {
                router: false,
                solicited: true,
                override_: false,
            },
            target: a("2001:db8:1::100"),
            target_ll: Some(mac),
        };
        let d = decode(&nd_bytes("2001:db8:1::1", "2001:db8:1::2", &na), &cp, true);
        assert_eq!(d.errors, []);
        let f = |n: &str| d.fields.get(n).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(f("icmpv6.nd.na.flag"), [Num(0x4000_0000)]);
        assert_eq!(f("icmpv6.nd.na.flag.s"), [Num(1)]);
        assert_eq!(f("icmpv6.nd.na.flag.o"), [Num(0)]);
        assert_eq!(
            f("icmpv6.nd.na.target_address"),
            [Addr(a("2001:db8:1::100").into())]
        );
        assert_eq!(f("icmpv6.opt.target_linkaddr"), [Mac(mac)]);
        assert!(f("icmpv6.opt.src_linkaddr").is_empty());
        assert_eq!(
            d.repr.unwrap().to_string(),
            "IPv6 2001:db8:1::1 > 2001:db8:1::2 ND neighbor advertisement \
             target 2001:db8:1::100 S tll 02:00:00:00:00:11"
        );

        let ns = NdRepr::NeighborSolicit {
            target: a("2001:db8:2::10"),
            source_ll: None,
        };
        let d = decode(&nd_bytes("::", "ff02::1:ff00:10", &ns), &cp, true);
        assert_eq!(d.errors, []);
        assert_eq!(
            d.fields.get("icmpv6.nd.ns.target_address"),
            [&Addr(a("2001:db8:2::10").into())]
        );
        assert_eq!(
            d.fields.get("icmpv6.reserved"),
            [&crate::wire::FieldValue::Bytes(vec![0; 4])]
        );
        assert!(d.fields.get("icmpv6.opt.type").is_empty());
    }

    /// Rewrites the ICMPv6 checksum after a change to the message, so that
    /// only the ND check fails.
    fn fix_icmpv6_checksum(b: &mut [u8]) {
        let ph = PseudoHeader::V6 {
            src: crate::wire::addr6(b, 8),
            dst: crate::wire::addr6(b, 24),
        };
        b[42] = 0;
        b[43] = 0;
        let c = ph.checksum(IpProtocol::Icmpv6.into(), &b[40..]);
        b[42..44].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn invalid_neighbor_discovery_is_an_error_and_decodes_as_far_as_it_goes() {
        use crate::wire::FieldValue::Num;
        let cp = CodePoints::default();
        let good = nd_bytes("fe80::1", "ff02::1", &home_ra());
        // Code 1 (RFC 4861 §6.1.2): every field still there.
        let mut b = good.clone();
        b[41] = 1;
        fix_icmpv6_checksum(&mut b);
        let d = decode(&b, &cp, true);
        assert_eq!(d.errors, [WireError::BadValue("nd code")]);
        assert!(matches!(d.repr.unwrap().upper, UpperRepr::Icmpv6(_)));
        assert_eq!(d.fields.get("icmpv6.opt.type").len(), 4);
        assert_eq!(
            PacketRepr::parse(&b, &cp),
            Err(WireError::BadValue("nd code"))
        );
        // The MTU option (the second) with length 0: the options stop there.
        let mut b = good.clone();
        b[40 + 4 + 12 + 8 + 1] = 0;
        fix_icmpv6_checksum(&mut b);
        let d = decode(&b, &cp, true);
        assert_eq!(d.errors, [WireError::BadLength("nd option length 0")]);
        assert_eq!(d.fields.get("icmpv6.opt.type"), [&Num(1), &Num(5)]);
        assert_eq!(d.fields.get("icmpv6.opt.length"), [&Num(1), &Num(0)]);
        assert!(d.fields.get("icmpv6.opt.mtu").is_empty());
        assert_eq!(d.fields.get("icmpv6.nd.ra.router_lifetime"), [&Num(1800)]);
        // Cut inside the fixed part and inside an option (the IPv6 payload
        // length follows): the fields that are there, and an error.
        for (cut, error, hop_limit, options) in [
            (40 + 4 + 6, WireError::Truncated("nd message"), 1, 0),
            (good.len() - 8, WireError::Truncated("nd option"), 1, 4),
        ] {
            let mut b = good[..cut].to_vec();
            let plen = u16::try_from(cut - 40).unwrap();
            b[4..6].copy_from_slice(&plen.to_be_bytes());
            fix_icmpv6_checksum(&mut b);
            let d = decode(&b, &cp, true);
            assert_eq!(d.errors, [error], "cut at {cut}");
            assert_eq!(d.fields.get("icmpv6.nd.ra.cur_hop_limit").len(), hop_limit);
            assert_eq!(
                d.fields.get("icmpv6.opt.type").len(),
                options,
                "cut at {cut}"
            );
            assert!(d.fields.get("icmpv6.nd.ra.reachable_time").len() == usize::from(cut > 50));
        }
    }
}
