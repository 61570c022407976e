//! Security Association payload body (RFC 7296 §3.3): proposals, their
//! transforms, and transform attributes.
//!
//! ```text
//! proposal:  Last(0|2) ! RESERVED ! Length(2) ! Proposal Num ! Protocol ID !
//!            SPI Size ! #Transforms ! SPI ! transforms...
//! transform: Last(0|3) ! RESERVED ! Length(2) ! Type ! RESERVED ! ID(2) !
//!            attributes...
//! attribute: A|Type(15) ! Value(2)              (TV, AF = 1)
//!            A|Type(15) ! Length(2) ! Value     (TLV, AF = 0)
//! ```

use super::{Reader, Writer};
use crate::wire::{Fields, WireError};

const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
const ATTR_TV: u16 = 0x8000;
const ATTR_KEY_LENGTH: u16 = 14;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Kept as given; RFC 7296 numbers them from 1.
    pub number: u8,
    /// 1 IKE, 2 AH, 3 ESP.
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// 1 ENCR, 2 PRF, 3 INTEG, 4 DH, 5 ESN.
    pub transform_type: u8,
    pub id: u16,
    pub attributes: Vec<TransformAttribute>,
}

impl Transform {
    /// A transform with, for ciphers that take one, a Key Length attribute
    /// (RFC 7296 §3.3.5).
    pub fn new(transform_type: u8, id: u16, key_length: Option<u16>) -> Self {
        Transform {
            transform_type,
            id,
            attributes: key_length
                .map(|value| TransformAttribute::Tv {
                    attr_type: KEY_LENGTH,
                    value,
                })
                .into_iter()
                .collect(),
        }
    }
}

/// The Key Length attribute type (RFC 7296 §3.3.5).
pub const KEY_LENGTH: u16 = 14;

/// A transform attribute; `attr_type` uses 15 bits (the 16th is AF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformAttribute {
    Tv { attr_type: u16, value: u16 },
    Tlv { attr_type: u16, value: Vec<u8> },
}

impl Transform {
    /// The Key Length attribute (type 14), if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            TransformAttribute::Tv {
                attr_type: ATTR_KEY_LENGTH,
                value,
            } => Some(*value),
            _ => None,
        })
    }

    fn len(&self) -> usize {
        8 + self.attributes.iter().map(|a| a.len()).sum::<usize>()
    }
}

impl TransformAttribute {
    fn len(&self) -> usize {
        match self {
            TransformAttribute::Tv { .. } => 4,
            TransformAttribute::Tlv { value, .. } => 4 + value.len(),
        }
    }
}

impl Proposal {
    fn len(&self) -> usize {
        8 + self.spi.len() + self.transforms.iter().map(Transform::len).sum::<usize>()
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let number = r.u8("ike proposal")?;
        let protocol = r.u8("ike proposal")?;
        let spi_size = r.u8("ike proposal")?;
        let count = r.u8("ike proposal")?;
        let spi = r.take(spi_size.into(), "ike proposal spi")?.to_vec();
        let mut transforms = Vec::with_capacity(count.into());
        for i in 0..count {
            let last = r.u8("ike transform")?;
            if last != if i + 1 < count { MORE_TRANSFORMS } else { 0 } {
                return Err(WireError::BadValue("ike transform last"));
            }
            r.u8("ike transform")?;
            let len = usize::from(r.u16("ike transform")?);
            let body_len = len
                .checked_sub(4)
                .ok_or(WireError::BadLength("ike transform length"))?;
            let mut t = r.sub(body_len, "ike transform")?;
            let transform_type = t.u8("ike transform")?;
            t.u8("ike transform")?;
            let id = t.u16("ike transform")?;
            let mut attributes = Vec::new();
            while !t.is_empty() {
                let ty = t.u16("ike transform attribute")?;
                let attr_type = ty & !ATTR_TV;
                attributes.push(if ty & ATTR_TV != 0 {
                    let value = t.u16("ike transform attribute")?;
                    TransformAttribute::Tv { attr_type, value }
                } else {
                    let n = t.u16("ike transform attribute")?;
                    let value = t.take(n.into(), "ike transform attribute")?.to_vec();
                    TransformAttribute::Tlv { attr_type, value }
                });
            }
            transforms.push(Transform {
                transform_type,
                id,
                attributes,
            });
        }
        if !r.is_empty() {
            return Err(WireError::BadLength("ike proposal length"));
        }
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }

    fn emit(&self, w: &mut Writer<'_>) {
        w.u8(self.number);
        w.u8(self.protocol);
        w.u8(self.spi.len() as u8);
        w.u8(self.transforms.len() as u8);
        w.bytes(&self.spi);
        for (i, t) in self.transforms.iter().enumerate() {
            let start = w.position();
            let more = i + 1 < self.transforms.len();
            w.u8(if more { MORE_TRANSFORMS } else { 0 });
            w.u8(0);
            let len_at = w.u16_placeholder();
            w.u8(t.transform_type);
            w.u8(0);
            w.u16(t.id);
            for a in &t.attributes {
                match a {
                    TransformAttribute::Tv { attr_type, value } => {
                        w.u16(ATTR_TV | attr_type);
                        w.u16(*value);
                    }
                    TransformAttribute::Tlv { attr_type, value } => {
                        w.u16(attr_type & !ATTR_TV);
                        w.u16(value.len() as u16);
                        w.bytes(value);
                    }
                }
            }
            w.patch_u16_len(len_at, start);
        }
    }

    fn fields(&self, more: bool, out: &mut Fields) {
        out.num("isakmp.typepayload", 2u8);
        out.num("isakmp.nextpayload", if more { MORE_PROPOSALS } else { 0 });
        out.num("isakmp.payloadlength", self.len() as u64);
        out.num("isakmp.prop.number", self.number);
        out.num("isakmp.prop.protoid", self.protocol);
        out.num("isakmp.spisize", self.spi.len() as u64);
        out.num("isakmp.prop.transforms", self.transforms.len() as u64);
        if !self.spi.is_empty() {
            out.bytes("isakmp.spi", &self.spi);
        }
        for (i, t) in self.transforms.iter().enumerate() {
            let more = i + 1 < self.transforms.len();
            out.num("isakmp.typepayload", 3u8);
            out.num("isakmp.nextpayload", if more { MORE_TRANSFORMS } else { 0 });
            out.num("isakmp.payloadlength", t.len() as u64);
            out.num("isakmp.tf.type", t.transform_type);
            let id_name = match t.transform_type {
                1 => "isakmp.tf.id.encr",
                2 => "isakmp.tf.id.prf",
                3 => "isakmp.tf.id.integ",
                4 => "isakmp.tf.id.dh",
                5 => "isakmp.tf.id.esn",
                _ => "isakmp.tf.id",
            };
            out.num(id_name, t.id);
            for a in &t.attributes {
                match a {
                    TransformAttribute::Tv { attr_type, value } => {
                        out.flag("isakmp.ike2.attr.format", true);
                        out.num("isakmp.ike2.attr.type", *attr_type);
                        out.bytes("isakmp.ike2.attr.value", &value.to_be_bytes());
                        if *attr_type == ATTR_KEY_LENGTH {
                            out.num("isakmp.ike2.attr.key_length", *value);
                        }
                    }
                    TransformAttribute::Tlv { attr_type, value } => {
                        out.flag("isakmp.ike2.attr.format", false);
                        out.num("isakmp.ike2.attr.type", *attr_type);
                        out.num("isakmp.ike2.attr.length", value.len() as u64);
                        out.bytes("isakmp.ike2.attr.value", value);
                    }
                }
            }
        }
    }
}

/// Parses an SA payload body into its proposals.
pub(super) fn parse_sa(body: &[u8]) -> Result<Vec<Proposal>, WireError> {
    let mut r = Reader::new(body);
    let mut proposals = Vec::new();
    while !r.is_empty() {
        let last = r.u8("ike proposal")?;
        r.u8("ike proposal")?;
        let len = usize::from(r.u16("ike proposal")?);
        let body_len = len
            .checked_sub(4)
            .ok_or(WireError::BadLength("ike proposal length"))?;
        let mut p = r.sub(body_len, "ike proposal")?;
        proposals.push(Proposal::parse(&mut p)?);
        if last != if r.is_empty() { 0 } else { MORE_PROPOSALS } {
            return Err(WireError::BadValue("ike proposal last"));
        }
    }
    Ok(proposals)
}

pub(super) fn sa_len(proposals: &[Proposal]) -> usize {
    proposals.iter().map(Proposal::len).sum()
}

pub(super) fn emit_sa(proposals: &[Proposal], w: &mut Writer<'_>) {
    for (i, p) in proposals.iter().enumerate() {
        let start = w.position();
        w.u8(if i + 1 < proposals.len() {
            MORE_PROPOSALS
        } else {
            0
        });
        w.u8(0);
        let len_at = w.u16_placeholder();
        p.emit(w);
        w.patch_u16_len(len_at, start);
    }
}

pub(super) fn sa_fields(proposals: &[Proposal], out: &mut Fields) {
    for (i, p) in proposals.iter().enumerate() {
        p.fields(i + 1 < proposals.len(), out);
    }
}
