//! IPv6 extension headers (RFC 8200 §4) with the Mobile IPv6 pieces:
//! the Home Address option in a Destination Options header (RFC 6275 §6.3)
//! and the type 2 routing header (RFC 6275 §6.4).
//!
//! ```text
//! Hop-by-Hop / Destination Options          Type 2 Routing Header
//! +-------------+-------------+----------+  +-------------+-------------+----------------+---------------+
//! | Next Header | Hdr Ext Len | Options  |  | Next Header | Hdr Ext Len=2 | Routing Type=2 | Segments Left |
//! +-------------+-------------+----------+  +-------------+-------------+----------------+---------------+
//!                                           |   Reserved (4)  |  Home Address (16)                      |
//! Home Address option (8n+6 alignment)
//! | Option Type=201 | Opt Data Len=16 | Home Address (16) |
//!
//! Fragment header
//! | Next Header | Reserved | Fragment Offset (13) |Res|M| Identification (32) |
//! ```
//!
//! Pad1/PadN are not kept in the representation: emit places every option
//! at its required alignment and pads the header to a multiple of 8 octets.

use core::fmt;
use core::net::Ipv6Addr;

use super::ipv6::IpProtocol;
use super::{addr6, be16, be32, WireError};

/// Home Address option type (RFC 6275 §6.3).
pub const OPT_HOME_ADDRESS: u8 = 201;
const OPT_PAD1: u8 = 0;
const OPT_PADN: u8 = 1;

/// One option of a Hop-by-Hop or Destination Options header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipv6OptionRepr {
    /// RFC 6275 §6.3.
    HomeAddress(Ipv6Addr),
    /// Any other option, kept as is.
    Unknown { opt_type: u8, data: Vec<u8> },
}

impl Ipv6OptionRepr {
    fn wire_len(&self) -> usize {
        match self {
            Ipv6OptionRepr::HomeAddress(_) => 18,
            Ipv6OptionRepr::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// `(n, k)`: the option type byte goes at an offset `x` with `x % n == k`.
    fn alignment(&self) -> (usize, usize) {
        match self {
            Ipv6OptionRepr::HomeAddress(_) => (8, 6),
            Ipv6OptionRepr::Unknown { .. } => (1, 0),
        }
    }
}

/// The options of a Hop-by-Hop or Destination Options header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestOptRepr {
    pub options: Vec<Ipv6OptionRepr>,
}

impl DestOptRepr {
    fn from_options(options: Options<'_>) -> Result<Self, WireError> {
        let body_len = options.0.len();
        let options = options
            .map(|o| {
                o.map(|(t, data)| match t {
                    OPT_HOME_ADDRESS => Ipv6OptionRepr::HomeAddress(addr6(data, 0)),
                    _ => Ipv6OptionRepr::Unknown {
                        opt_type: t,
                        data: data.to_vec(),
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let repr = DestOptRepr { options };
        // Emit aligns options, which can grow a tightly packed header past
        // what Hdr Ext Len can say (2048 bytes): refuse such input.
        if 2 + body_len + 7 * repr.options.len() > 2048 && repr.header_len() > 2048 {
            return Err(WireError::BadLength("ipv6 options once aligned"));
        }
        Ok(repr)
    }

    /// Appends the options with padding to a header that began at `start`
    /// and holds its two fixed bytes.
    fn write_options(&self, start: usize, out: &mut Vec<u8>) {
        for opt in &self.options {
            let (n, k) = opt.alignment();
            let at = out.len() - start;
            push_padding(out, (n + k - at % n) % n);
            match opt {
                Ipv6OptionRepr::HomeAddress(a) => {
                    out.extend_from_slice(&[OPT_HOME_ADDRESS, 16]);
                    out.extend_from_slice(&a.octets());
                }
                Ipv6OptionRepr::Unknown { opt_type, data } => {
                    out.push(*opt_type);
                    out.push(u8::try_from(data.len()).unwrap_or(u8::MAX));
                    out.extend_from_slice(&data[..data.len().min(255)]);
                }
            }
            debug_assert_eq!((out.len() - start - opt.wire_len()) % n, k);
        }
        let total = out.len() - start;
        push_padding(out, (8 - total % 8) % 8);
    }

    /// The header's length once emitted.
    fn header_len(&self) -> usize {
        let mut v = vec![0, 0];
        self.write_options(0, &mut v);
        v.len()
    }

    /// The home address carried in a Home Address option, if any.
    pub fn home_address(&self) -> Option<Ipv6Addr> {
        self.options.iter().find_map(|o| match o {
            Ipv6OptionRepr::HomeAddress(a) => Some(*a),
            Ipv6OptionRepr::Unknown { .. } => None,
        })
    }
}

/// Appends `n` bytes of Pad1/PadN. Mobility options use the same two
/// padding options with the same codes (RFC 6275 §6.2.2, §6.2.3).
pub(crate) fn push_padding(out: &mut Vec<u8>, n: usize) {
    match n {
        0 => {}
        1 => out.push(OPT_PAD1),
        _ => {
            out.push(OPT_PADN);
            out.push((n - 2) as u8);
            out.resize(out.len() + n - 2, 0);
        }
    }
}

/// The options of a Hop-by-Hop or Destination Options header body as they
/// lie in the packet, Pad1 and PadN skipped: `(type, data)`, each checked
/// as [`ExtHeaderRepr::parse`] checks it, with nothing allocated.
#[derive(Debug, Clone)]
pub struct Options<'a>(&'a [u8]);

impl<'a> Options<'a> {
    fn option(&self) -> Result<(u8, &'a [u8]), WireError> {
        let b = self.0;
        let len = usize::from(*b.get(1).ok_or(WireError::Truncated("ipv6 option length"))?);
        let data = b
            .get(2..2 + len)
            .ok_or(WireError::Truncated("ipv6 option data"))?;
        if b[0] == OPT_HOME_ADDRESS && len != 16 {
            return Err(WireError::BadLength("home address option"));
        }
        Ok((b[0], data))
    }

    /// The home address of the first Home Address option, once every
    /// option has checked.
    pub fn home_address(self) -> Result<Option<Ipv6Addr>, WireError> {
        let mut hoa = None;
        for o in self {
            if let (OPT_HOME_ADDRESS, data) = o? {
                hoa = hoa.or(Some(addr6(data, 0)));
            }
        }
        Ok(hoa)
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u8, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match *self.0.first()? {
                OPT_PAD1 => self.0 = &self.0[1..],
                t => match self.option() {
                    Ok((_, data)) => {
                        self.0 = &self.0[2 + data.len()..];
                        if t != OPT_PADN {
                            return Some(Ok((t, data)));
                        }
                    }
                    Err(e) => {
                        self.0 = &[];
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}

/// One extension header as it lies in a packet, borrowed: walking a chain
/// with it allocates nothing.
#[derive(Debug, Clone)]
pub enum ExtHeader<'a> {
    HopByHop(Options<'a>),
    /// A type 2 routing header's length is checked; `data` follows
    /// Segments Left.
    Routing {
        routing_type: u8,
        segments_left: u8,
        data: &'a [u8],
    },
    Fragment(FragmentRepr),
    DestOpts(Options<'a>),
}

impl<'a> ExtHeader<'a> {
    /// The header of type `proto` at the start of `b`, the next header and
    /// the header's length in bytes.
    pub fn parse(proto: IpProtocol, b: &'a [u8]) -> Result<(Self, IpProtocol, usize), WireError> {
        if b.len() < 8 {
            return Err(WireError::Truncated("ipv6 extension header"));
        }
        let next = IpProtocol::from(b[0]);
        if proto == IpProtocol::Fragment {
            let off = be16(b, 2);
            let frag = FragmentRepr {
                offset: off >> 3,
                more: off & 1 == 1,
                ident: be32(b, 4),
            };
            return Ok((ExtHeader::Fragment(frag), next, 8));
        }
        let len = (usize::from(b[1]) + 1) * 8;
        let body = b
            .get(2..len)
            .ok_or(WireError::Truncated("ipv6 extension header"))?;
        let h = match proto {
            IpProtocol::HopByHop => ExtHeader::HopByHop(Options(body)),
            IpProtocol::DestOpts => ExtHeader::DestOpts(Options(body)),
            IpProtocol::Routing if body[0] == 2 && b[1] != 2 => {
                return Err(WireError::BadLength("type 2 routing header"))
            }
            IpProtocol::Routing => ExtHeader::Routing {
                routing_type: body[0],
                segments_left: body[1],
                data: &body[2..],
            },
            _ => return Err(WireError::BadValue("not an extension header")),
        };
        Ok((h, next, len))
    }
}

/// A routing header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingRepr {
    /// RFC 6275 §6.4.
    Type2 {
        segments_left: u8,
        home_address: Ipv6Addr,
    },
    /// Any other routing type, body kept as is.
    Other {
        routing_type: u8,
        segments_left: u8,
        data: Vec<u8>,
    },
}

/// A fragment header (parsed so that a chain with one decodes; we never
/// fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRepr {
    /// In 8-octet units (13 bits).
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

/// One extension header of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtHeaderRepr {
    HopByHop(DestOptRepr),
    Routing(RoutingRepr),
    Fragment(FragmentRepr),
    DestOpts(DestOptRepr),
}

impl ExtHeaderRepr {
    /// A Destination Options header carrying a Home Address option.
    pub fn home_address(hoa: Ipv6Addr) -> Self {
        ExtHeaderRepr::DestOpts(DestOptRepr {
            options: vec![Ipv6OptionRepr::HomeAddress(hoa)],
        })
    }

    /// A type 2 routing header with one segment left.
    pub fn type2(hoa: Ipv6Addr) -> Self {
        ExtHeaderRepr::Routing(RoutingRepr::Type2 {
            segments_left: 1,
            home_address: hoa,
        })
    }

    /// Whether `proto` is an extension header this module parses.
    pub fn is_ext(proto: IpProtocol) -> bool {
        matches!(
            proto,
            IpProtocol::HopByHop
                | IpProtocol::Routing
                | IpProtocol::Fragment
                | IpProtocol::DestOpts
        )
    }

    pub fn protocol(&self) -> IpProtocol {
        match self {
            ExtHeaderRepr::HopByHop(_) => IpProtocol::HopByHop,
            ExtHeaderRepr::Routing(_) => IpProtocol::Routing,
            ExtHeaderRepr::Fragment(_) => IpProtocol::Fragment,
            ExtHeaderRepr::DestOpts(_) => IpProtocol::DestOpts,
        }
    }

    /// Parses the header of type `proto` at the start of `b`; returns it, the
    /// next header and the header's length in bytes.
    pub fn parse(proto: IpProtocol, b: &[u8]) -> Result<(Self, IpProtocol, usize), WireError> {
        let (h, next, len) = ExtHeader::parse(proto, b)?;
        let repr = match h {
            ExtHeader::HopByHop(o) => ExtHeaderRepr::HopByHop(DestOptRepr::from_options(o)?),
            ExtHeader::DestOpts(o) => ExtHeaderRepr::DestOpts(DestOptRepr::from_options(o)?),
            ExtHeader::Fragment(f) => ExtHeaderRepr::Fragment(f),
            ExtHeader::Routing {
                routing_type: 2,
                segments_left,
                data,
            } => ExtHeaderRepr::Routing(RoutingRepr::Type2 {
                segments_left,
                home_address: addr6(data, 4),
            }),
            ExtHeader::Routing {
                routing_type,
                segments_left,
                data,
            } => ExtHeaderRepr::Routing(RoutingRepr::Other {
                routing_type,
                segments_left,
                data: data.to_vec(),
            }),
        };
        Ok((repr, next, len))
    }

    /// Appends the header with `next` as its Next Header.
    pub fn emit(&self, next: IpProtocol, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(next.into());
        out.push(0);
        match self {
            ExtHeaderRepr::HopByHop(o) | ExtHeaderRepr::DestOpts(o) => o.write_options(start, out),
            ExtHeaderRepr::Routing(RoutingRepr::Type2 {
                segments_left,
                home_address,
            }) => {
                out.extend_from_slice(&[2, *segments_left, 0, 0, 0, 0]);
                out.extend_from_slice(&home_address.octets());
            }
            ExtHeaderRepr::Routing(RoutingRepr::Other {
                routing_type,
                segments_left,
                data,
            }) => {
                out.extend_from_slice(&[*routing_type, *segments_left]);
                out.extend_from_slice(data);
                let pad = (8 - (out.len() - start) % 8) % 8;
                out.resize(out.len() + pad, 0);
            }
            ExtHeaderRepr::Fragment(f) => {
                let off = (f.offset << 3) | u16::from(f.more);
                out.extend_from_slice(&off.to_be_bytes());
                out.extend_from_slice(&f.ident.to_be_bytes());
            }
        }
        if !matches!(self, ExtHeaderRepr::Fragment(_)) {
            out[start + 1] = u8::try_from((out.len() - start) / 8 - 1).unwrap_or(u8::MAX);
        }
    }

    pub fn buffer_len(&self) -> usize {
        let mut v = Vec::new();
        self.emit(IpProtocol::NoNextHeader, &mut v);
        v.len()
    }
}

impl fmt::Display for ExtHeaderRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtHeaderRepr::HopByHop(o) => write!(f, "HBH({} opts)", o.options.len()),
            ExtHeaderRepr::DestOpts(o) => match o.home_address() {
                Some(a) => write!(f, "DST(HAO {a})"),
                None => write!(f, "DST({} opts)", o.options.len()),
            },
            ExtHeaderRepr::Routing(RoutingRepr::Type2 { home_address, .. }) => {
                write!(f, "RH2({home_address})")
            }
            ExtHeaderRepr::Routing(RoutingRepr::Other { routing_type, .. }) => {
                write!(f, "RH{routing_type}")
            }
            ExtHeaderRepr::Fragment(fr) => write!(
                f,
                "FRAG(off={} m={} id={:#x})",
                fr.offset, fr.more as u8, fr.ident
            ),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    // scapy 2.5: raw(IPv6ExtHdrDestOpt(nh=135, options=[HAO(hoa="2001:db8:1::100")]))
    const HAO_DSTOPT: &str = "870201020000c91020010db8000100000000000000000100";
    // scapy 2.5: raw(IPv6ExtHdrRouting(nh=135, type=2, segleft=1, addresses=["2001:db8:1::100"]))
    const RH2: &str = "8702020100000000 20010db8000100000000000000000100";

    #[test]
    fn home_address_option_at_8n_plus_6() {
        // REQ MIP-BASE: the HAO's type byte sits at offset 6 of its header.
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let h = ExtHeaderRepr::DestOpts(DestOptRepr {
            options: vec![Ipv6OptionRepr::HomeAddress(hoa)],
        });
        let mut out = Vec::new();
        h.emit(IpProtocol::Mobility, &mut out);
        assert_eq!(out, hex(&HAO_DSTOPT.replace(' ', "")));
        assert_eq!(out[6], OPT_HOME_ADDRESS);
        let (back, next, len) = ExtHeaderRepr::parse(IpProtocol::DestOpts, &out).unwrap();
        assert_eq!((back, next, len), (h, IpProtocol::Mobility, 24));
    }

    #[test]
    fn type2_routing_header() {
        let b = hex(&RH2.replace(' ', ""));
        let (h, next, len) = ExtHeaderRepr::parse(IpProtocol::Routing, &b).unwrap();
        assert_eq!(next, IpProtocol::Mobility);
        assert_eq!(len, 24);
        assert_eq!(
            h,
            ExtHeaderRepr::Routing(RoutingRepr::Type2 {
                segments_left: 1,
                home_address: "2001:db8:1::100".parse().unwrap()
            })
        );
        let mut out = Vec::new();
        h.emit(IpProtocol::Mobility, &mut out);
        assert_eq!(out, b);
    }

    // Found by the fuzzing helper for the MH case; the same guard covers
    // Destination Options: 113 back-to-back HAOs fill a 2048-byte header,
    // but aligned at 8n+6 they would need 2712 bytes, which Hdr Ext Len
    // cannot say.
    #[test]
    fn packed_options_that_cannot_be_re_emitted_are_refused() {
        let packed = |count: usize| {
            let mut b = vec![59, 0];
            for i in 0..count {
                b.extend_from_slice(&[201, 16]);
                b.extend_from_slice(
                    &Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i as u16).octets(),
                );
            }
            let pad = (8 - b.len() % 8) % 8;
            if pad == 1 {
                b.push(0);
            } else if pad > 1 {
                b.extend_from_slice(&[1, pad as u8 - 2]);
                b.resize(b.len() + pad - 2, 0);
            }
            b[1] = (b.len() / 8 - 1) as u8;
            b
        };
        let full = packed(113);
        assert_eq!(full.len(), 2040);
        assert!(ExtHeaderRepr::parse(IpProtocol::DestOpts, &full).is_err());
        // A few packed HAOs re-emit fine (with padding), so they parse.
        let (h, _, _) = ExtHeaderRepr::parse(IpProtocol::DestOpts, &packed(3)).unwrap();
        let mut out = Vec::new();
        h.emit(IpProtocol::NoNextHeader, &mut out);
        assert_eq!(
            ExtHeaderRepr::parse(IpProtocol::DestOpts, &out).unwrap().0,
            h
        );
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let mut b = hex(&HAO_DSTOPT.replace(' ', ""));
        b[7] = 15; // HAO length 15
        assert!(ExtHeaderRepr::parse(IpProtocol::DestOpts, &b).is_err());
        let mut r = hex(&RH2.replace(' ', ""));
        r[1] = 3;
        assert_eq!(
            ExtHeaderRepr::parse(IpProtocol::Routing, &r).map(|_| ()),
            Err(WireError::Truncated("ipv6 extension header"))
        );
        r.extend_from_slice(&[0; 8]);
        assert_eq!(
            ExtHeaderRepr::parse(IpProtocol::Routing, &r).map(|_| ()),
            Err(WireError::BadLength("type 2 routing header"))
        );
    }

    #[test]
    fn every_truncation_fails() {
        for v in [HAO_DSTOPT, RH2] {
            let b = hex(&v.replace(' ', ""));
            let proto = if v == RH2 {
                IpProtocol::Routing
            } else {
                IpProtocol::DestOpts
            };
            for n in 0..b.len() {
                assert!(ExtHeaderRepr::parse(proto, &b[..n]).is_err(), "len {n}");
            }
        }
    }

    #[test]
    fn fragment_round_trip() {
        let f = ExtHeaderRepr::Fragment(FragmentRepr {
            offset: 0x1abc,
            more: true,
            ident: 0xdeadbeef,
        });
        let mut out = Vec::new();
        f.emit(IpProtocol::Udp, &mut out);
        assert_eq!(out, [17, 0, 0xd5, 0xe1, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            ExtHeaderRepr::parse(IpProtocol::Fragment, &out).unwrap(),
            (f, IpProtocol::Udp, 8)
        );
    }
}
