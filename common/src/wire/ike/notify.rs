//! Notify payload body (RFC 7296 §3.10) and the typed data of the
//! notifications the mobility drafts define.
//!
//! ```text
//! Protocol ID ! SPI Size ! Notify Message Type (2) ! SPI ! Notification Data
//! ```
//!
//! Typed data:
//! - PEER_ADDRESS_SOURCE/_DESTINATION (draft-dupont-ikev2-addrmgmt Annex B):
//!   Address Family (2: 1 IPv4, 2 IPv6) ! Port (2) ! Address (4|16)
//! - SWITCH_TO_IP_ADDRESS (draft-smyslov-ipsecme-ikev2-r-mobike §5.2) and
//!   ADDITIONAL_IP4/6_ADDRESS (RFC 4555 §4.6): Address (4|16)
//! - TUNNEL_ADDRESS (alt-tunnel-addresses draft §7.2):
//!   IP Type (1: 1 IPv4, 2 IPv6) ! RESERVED (3) ! Address (4|16)
//! - MOBIKE_SUPPORTED (RFC 4555 §4.2): empty, or 'R' (r-mobike §5.1)

use super::Reader;
use crate::wire::{CodePoints, WireError};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

enum_with_unknown! {
    /// Notify message types of RFC 7296 §3.10.1, RFC 4555 and RFC 7427.
    /// The drafts' types are configurable and live in [`CodePoints`].
    #[allow(non_camel_case_types)]
    pub enum NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_IKE_SPI = 4,
        INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14,
        INVALID_KE_PAYLOAD = 17,
        AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34,
        NO_ADDITIONAL_SAS = 35,
        INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37,
        TS_UNACCEPTABLE = 38,
        INVALID_SELECTORS = 39,
        UNACCEPTABLE_ADDRESSES = 40,
        UNEXPECTED_NAT_DETECTED = 41,
        TEMPORARY_FAILURE = 43,
        CHILD_SA_NOT_FOUND = 44,
        INITIAL_CONTACT = 16384,
        SET_WINDOW_SIZE = 16385,
        ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387,
        NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389,
        COOKIE = 16390,
        USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396,
        ADDITIONAL_IP4_ADDRESS = 16397,
        ADDITIONAL_IP6_ADDRESS = 16398,
        NO_ADDITIONAL_ADDRESSES = 16399,
        UPDATE_SA_ADDRESSES = 16400,
        COOKIE2 = 16401,
        NO_NATS_ALLOWED = 16402,
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// 0 when no SPI applies, else 1 IKE, 2 AH, 3 ESP.
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub notify_type: u16,
    pub data: Vec<u8>,
}

const PROTO_AH: u8 = 2;
const PROTO_ESP: u8 = 3;
const R_MOBIKE: u8 = b'R';

impl Notify {
    pub(super) fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let protocol = r.u8("ike notify")?;
        let spi_size = r.u8("ike notify")?;
        let notify_type = r.u16("ike notify")?;
        let spi = r.take(spi_size.into(), "ike notify spi")?.to_vec();
        Ok(Notify {
            protocol,
            spi,
            notify_type,
            data: r.rest().to_vec(),
        })
    }

    /// A notification with no SPI, as all the drafts' are.
    pub fn new(notify_type: u16, data: Vec<u8>) -> Self {
        Notify {
            protocol: 0,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    /// DIFFERENT_TUNNEL_ADDRESS_SUPPORTED (alt-tunnel-addresses draft §7.1): no data.
    pub fn different_tunnel_address_supported(cp: &CodePoints) -> Self {
        Notify::new(cp.notify_different_tunnel_address_supported, Vec::new())
    }

    /// The data of a notification that must have Protocol ID 0 (or one of
    /// `also`) and no SPI.
    fn spi_less(&self, also: &[u8]) -> Result<&[u8], WireError> {
        if self.protocol != 0 && !also.contains(&self.protocol) {
            return Err(WireError::BadValue("ike notify protocol"));
        }
        if !self.spi.is_empty() {
            return Err(WireError::BadLength("ike notify spi"));
        }
        Ok(&self.data)
    }
}

fn parse_addr(b: &[u8], what: &'static str) -> Result<IpAddr, WireError> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        Ok(Ipv4Addr::from(a).into())
    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
        Ok(Ipv6Addr::from(a).into())
    } else {
        Err(WireError::BadLength(what))
    }
}

fn addr_octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// 1 for IPv4, 2 for IPv6: both IANA address family numbers (addrmgmt) and
/// the alt-tunnel-addresses IP Type use these values.
fn family(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        1
    } else {
        2
    }
}

/// Reads an address whose length the family/type octet fixes.
fn family_addr(fam: u16, b: &[u8], what: &'static str) -> Result<IpAddr, WireError> {
    let a = match fam {
        1 | 2 => parse_addr(b, what)?,
        _ => return Err(WireError::BadValue(what)),
    };
    if u16::from(family(&a)) != fam {
        return Err(WireError::BadLength(what));
    }
    Ok(a)
}

/// PEER_ADDRESS_SOURCE / PEER_ADDRESS_DESTINATION data (addrmgmt Annex B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddress {
    pub port: u16,
    pub addr: IpAddr,
}

impl PeerAddress {
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let fam = r.u16("ike peer address")?;
        let port = r.u16("ike peer address")?;
        let addr = family_addr(fam, r.rest(), "ike peer address")?;
        Ok(PeerAddress { port, addr })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&u16::from(family(&self.addr)).to_be_bytes());
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&addr_octets(&self.addr));
    }

    /// Checks Protocol ID 0 and no SPI, then parses the data.
    pub fn from_notify(n: &Notify) -> Result<Self, WireError> {
        Self::parse(n.spi_less(&[])?)
    }

    /// PEER_ADDRESS_SOURCE if `source`, else PEER_ADDRESS_DESTINATION.
    pub fn to_notify(&self, source: bool, cp: &CodePoints) -> Notify {
        let mut data = Vec::new();
        self.emit(&mut data);
        let ty = if source {
            cp.notify_peer_address_source
        } else {
            cp.notify_peer_address_destination
        };
        Notify::new(ty, data)
    }
}

/// SWITCH_TO_IP_ADDRESS data (r-mobike §5.2): the bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchToIpAddress(pub IpAddr);

impl SwitchToIpAddress {
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        parse_addr(data, "ike switch to ip address").map(SwitchToIpAddress)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&addr_octets(&self.0));
    }

    pub fn from_notify(n: &Notify) -> Result<Self, WireError> {
        Self::parse(n.spi_less(&[])?)
    }

    pub fn to_notify(&self, cp: &CodePoints) -> Notify {
        Notify::new(cp.notify_switch_to_ip_address, addr_octets(&self.0))
    }
}

/// ADDITIONAL_IP4_ADDRESS / ADDITIONAL_IP6_ADDRESS data (RFC 4555 §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdditionalAddress(pub IpAddr);

impl AdditionalAddress {
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        parse_addr(data, "ike additional address").map(AdditionalAddress)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&addr_octets(&self.0));
    }

    /// The notify type must match the address family.
    pub fn from_notify(n: &Notify) -> Result<Self, WireError> {
        let a = Self::parse(n.spi_less(&[])?)?;
        let want = match a.0 {
            IpAddr::V4(_) => NotifyType::ADDITIONAL_IP4_ADDRESS,
            IpAddr::V6(_) => NotifyType::ADDITIONAL_IP6_ADDRESS,
        };
        if NotifyType::from(n.notify_type) != want {
            return Err(WireError::BadLength("ike additional address"));
        }
        Ok(a)
    }

    pub fn to_notify(&self) -> Notify {
        let ty = match self.0 {
            IpAddr::V4(_) => NotifyType::ADDITIONAL_IP4_ADDRESS,
            IpAddr::V6(_) => NotifyType::ADDITIONAL_IP6_ADDRESS,
        };
        Notify::new(ty.into(), addr_octets(&self.0))
    }
}

/// TUNNEL_ADDRESS data (alt-tunnel-addresses §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelAddress(pub IpAddr);

impl TunnelAddress {
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(data);
        let ip_type = r.u8("ike tunnel address")?;
        r.take(3, "ike tunnel address")?;
        family_addr(ip_type.into(), r.rest(), "ike tunnel address").map(TunnelAddress)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[family(&self.0), 0, 0, 0]);
        out.extend_from_slice(&addr_octets(&self.0));
    }

    /// The draft's figure says Protocol ID 0 and its text AH or ESP: all
    /// three are accepted.
    pub fn from_notify(n: &Notify) -> Result<Self, WireError> {
        Self::parse(n.spi_less(&[PROTO_AH, PROTO_ESP])?)
    }

    /// Sent with Protocol ID 3 (ESP), as the draft's text says.
    pub fn to_notify(&self, cp: &CodePoints) -> Notify {
        let mut n = Notify::new(cp.notify_tunnel_address, Vec::new());
        n.protocol = PROTO_ESP;
        self.emit(&mut n.data);
        n
    }
}

/// MOBIKE_SUPPORTED data: empty (RFC 4555 §3.2) or the single octet 'R'
/// announcing r-mobike (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MobikeSupported {
    pub r_mobike: bool,
}

impl MobikeSupported {
    pub fn parse(data: &[u8]) -> Result<Self, WireError> {
        match data {
            [] => Ok(MobikeSupported { r_mobike: false }),
            [R_MOBIKE] => Ok(MobikeSupported { r_mobike: true }),
            _ => Err(WireError::BadValue("ike mobike supported")),
        }
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        if self.r_mobike {
            out.push(R_MOBIKE);
        }
    }

    pub fn from_notify(n: &Notify) -> Result<Self, WireError> {
        Self::parse(n.spi_less(&[])?)
    }

    pub fn to_notify(&self) -> Notify {
        let mut n = Notify::new(NotifyType::MOBIKE_SUPPORTED.into(), Vec::new());
        self.emit(&mut n.data);
        n
    }
}
