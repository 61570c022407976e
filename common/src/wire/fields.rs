//! A flat, ordered list of named fields that a decoded packet shows to a
//! person or a test oracle. Names follow Wireshark's display-filter names
//! where Wireshark has the field (`mip6.bu.seqnr`, `isakmp.exchangetype`);
//! otherwise a name of ours under the same prefix.

use core::fmt;
use core::net::IpAddr;

use super::mac::MacAddr;

/// One field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Numbers, flags (0/1) and code points.
    Num(u64),
    /// IPv4 or IPv6 addresses.
    Addr(IpAddr),
    /// Ethernet MAC addresses, shown as tshark shows them
    /// (`02:00:00:00:00:11`).
    Mac(MacAddr),
    /// Opaque bytes (keys, cookies, tokens, SPIs longer than 8 bytes).
    Bytes(Vec<u8>),
    /// Text, e.g. an identity in an ID payload.
    Text(String),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Num(n) => write!(f, "{n}"),
            FieldValue::Addr(a) => write!(f, "{a}"),
            FieldValue::Mac(m) => write!(f, "{m}"),
            FieldValue::Bytes(b) => f.write_str(&super::hex(b)),
            FieldValue::Text(t) => f.write_str(t),
        }
    }
}

/// The fields of one packet in packet order, plus the checks that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub entries: Vec<(String, FieldValue)>,
}

impl Fields {
    pub fn num(&mut self, name: &str, v: impl Into<u64>) {
        self.entries
            .push((name.to_owned(), FieldValue::Num(v.into())));
    }

    pub fn flag(&mut self, name: &str, v: bool) {
        self.num(name, u64::from(v));
    }

    pub fn addr(&mut self, name: &str, v: impl Into<IpAddr>) {
        self.entries
            .push((name.to_owned(), FieldValue::Addr(v.into())));
    }

    pub fn mac(&mut self, name: &str, v: MacAddr) {
        self.entries.push((name.to_owned(), FieldValue::Mac(v)));
    }

    pub fn bytes(&mut self, name: &str, v: &[u8]) {
        self.entries
            .push((name.to_owned(), FieldValue::Bytes(v.to_vec())));
    }

    pub fn text(&mut self, name: &str, v: impl Into<String>) {
        self.entries
            .push((name.to_owned(), FieldValue::Text(v.into())));
    }

    /// All values of `name`, in packet order.
    pub fn get(&self, name: &str) -> Vec<&FieldValue> {
        self.entries
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect()
    }
}
