//! Teaching pictures, drawn by hand as SVG: sequence diagrams of
//! signalling ([`sequence`]), the CN→MN delay and loss plot ([`plot`]),
//! the topology with the path packets take ([`paths`]), and the demo's
//! `report.html` that holds them ([`report`]). Output depends on the run
//! only (no wall clock, no hash-map order), so a seed gives the same file.

use std::path::Path;

use common::ike::crypto::{Encr, SkCipher};
use common::ipsec::{Algorithm, EspCipher, EspKeyring};
use common::keylog::KeyTable;
use common::wire::ike::{Identification, NotifyType};
use common::wire::packet::{decode_with, UdpPayload};
use common::wire::{CodePoints, FieldValue, IkePayload, IkeRepr, UpperRepr};

pub mod paths;
pub mod plot;
pub mod report;
pub mod sequence;

/// What a packet is, for a diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The type the diagrams and tests key on: `BU`, `BA`, `HoTI`, `CoTI`,
    /// `HoT`, `CoT`, `BRR`, `BE`, `RS`, `RA`, `NS`, `NA`, an IKE exchange
    /// (`IKE_SA_INIT`, `IKE_AUTH`, `CREATE_CHILD_SA`, `INFORMATIONAL`),
    /// `data` (anything else that decoded) or `ESP` (opaque ESP).
    pub kind: &'static str,
    /// Type, sequence number, status, ESP, and the section it follows.
    pub label: String,
}

impl Message {
    pub fn is_data(&self) -> bool {
        self.kind == "data"
    }
}

/// Classifies an IPv6 packet from its decoded fields (Wireshark's names,
/// so the diagram counts what tshark counts), opening ESP and IKE's SK
/// payloads with `keys`.
pub fn classify(bytes: &[u8], cp: &CodePoints, keys: &Keys) -> Message {
    let d = decode_with(bytes, cp, true, (!keys.esp.is_empty()).then_some(&keys.esp));
    let num = |name: &str| {
        d.fields.get(name).into_iter().last().and_then(|v| match v {
            FieldValue::Num(n) => Some(*n),
            _ => None,
        })
    };
    let has = |name: &str| !d.fields.get(name).is_empty();
    let esp = if has("esp.spi") { " [ESP]" } else { "" };
    let msg = |kind: &'static str, detail: String, reference: &str| Message {
        kind,
        label: format!("{kind}{detail}{esp} · {reference}"),
    };
    let cookie = if has("mip6.cookie") { " +cookie" } else { "" };
    let to_ha = num("mip6.bu.h_flag") == Some(1);
    if let Some(t) = num("mip6.mhtype") {
        let seq = |f| num(f).map_or(String::new(), |s| format!(" seq={s}"));
        return match t {
            0 => msg("BRR", String::new(), "RFC 6275 §9.5.5"),
            1 => msg("HoTI", String::new(), "RFC 6275 §11.6.1"),
            2 => msg("CoTI", String::new(), "RFC 6275 §11.6.1"),
            3 => msg("HoT", String::new(), "RFC 6275 §9.4.3"),
            4 => msg("CoT", String::new(), "RFC 6275 §9.4.4"),
            5 if to_ha => msg("BU", seq("mip6.bu.seqnr"), "RFC 6275 §11.7.1"),
            5 if !esp.is_empty() => msg(
                "BU",
                format!("{}{cookie}", seq("mip6.bu.seqnr")),
                "draft-dupont-mipv6-cn-ipsec §4",
            ),
            5 => msg("BU", seq("mip6.bu.seqnr"), "RFC 6275 §11.7.2"),
            6 => {
                let status = num("mip6.ba.status").map_or(String::new(), |s| format!(" st={s}"));
                let detail = format!("{}{status}{cookie}", seq("mip6.ba.seqnr"));
                let reference = if cookie.is_empty() {
                    "RFC 6275 §9.5.4"
                } else {
                    "draft-dupont-mipv6-cn-ipsec A.1"
                };
                msg("BA", detail, reference)
            }
            7 => msg("BE", String::new(), "RFC 6275 §9.3.3"),
            _ => msg("MH", format!(" type {t}"), "RFC 6275 §6.1"),
        };
    }
    if let Some(x) = num("isakmp.exchangetype") {
        let kind = match x {
            34 => "IKE_SA_INIT",
            35 => "IKE_AUTH",
            36 => "CREATE_CHILD_SA",
            37 => "INFORMATIONAL",
            _ => "IKE",
        };
        let flags = num("isakmp.flags").unwrap_or(0);
        let dir = if flags & 0x20 != 0 { "resp" } else { "req" };
        let id = num("isakmp.messageid").unwrap_or(0);
        let inner = d
            .repr
            .as_ref()
            .and_then(|r| match &r.upper {
                UpperRepr::Udp(_, UdpPayload::Ike(ike)) => Some(ike),
                _ => None,
            })
            .and_then(|ike| keys.open_ike(ike, cp));
        let (what, reference) = match &inner {
            Some(payloads) => ike_summary(x, payloads, cp),
            None => (String::new(), exchange_section(x)),
        };
        return msg(kind, format!(" #{id} {dir}{what}"), reference);
    }
    // The ND messages; an ICMPv6 error or echo is data.
    if let Some(t) = num("icmpv6.type") {
        let nd = match t {
            133 => Some(("RS", "RFC 4861 §6.3.7")),
            134 => Some(("RA", "RFC 4861 §6.2.3")),
            135 => Some(("NS", "RFC 4861 §7.2.2")),
            136 => Some(("NA", "RFC 4861 §7.2.4")),
            _ => None,
        };
        if let Some((kind, reference)) = nd {
            return msg(kind, String::new(), reference);
        }
    }
    if !esp.is_empty() && d.decrypted.is_empty() {
        return Message {
            kind: "ESP",
            label: "ESP (no key)".into(),
        };
    }
    Message {
        kind: "data",
        label: String::new(),
    }
}

/// A keyring from Wireshark's `esp_sa` table (the rows we write with
/// `common::keylog::esp_row_for`): AES-GCM-16 by key length, or NULL
/// with HMAC-SHA-256-128. Other rows are skipped.
pub fn keyring_from_esp_sa(text: &str) -> EspKeyring {
    let mut ring = EspKeyring::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        let [_, _, _, spi, enc, enc_key, integ, integ_key] = cols[..] else {
            continue;
        };
        let hex = |k: &str| hex::decode(k.trim_start_matches("0x")).ok();
        let Some(spi) = u32::from_str_radix(spi.trim_start_matches("0x"), 16).ok() else {
            continue;
        };
        let sa = match (enc, integ) {
            ("NULL", i) if i.starts_with("HMAC-SHA-256") => {
                hex(integ_key).map(|k| (Algorithm::NullSha256, k))
            }
            (e, _) if e.starts_with("AES-GCM with 16") => {
                hex(enc_key).and_then(|k| match k.len() {
                    20 => Some((Algorithm::Aes128Gcm16, k)),
                    36 => Some((Algorithm::Aes256Gcm16, k)),
                    _ => None,
                })
            }
            _ => None,
        };
        if let Some(c) = sa.and_then(|(a, k)| EspCipher::new(a, &k).ok()) {
            ring.add(spi, c);
        }
    }
    ring
}

/// The section of RFC 7296 an exchange type follows.
fn exchange_section(exchange: u64) -> &'static str {
    match exchange {
        36 => "RFC 7296 §1.3",
        37 => "RFC 7296 §1.4",
        _ => "RFC 7296 §1.2",
    }
}

/// What an IKE message's opened SK payload says, for its label (the
/// identities, the notifications by name, deletes, the addrmgmt update),
/// and the section its exchange follows.
fn ike_summary(exchange: u64, payloads: &[IkePayload], cp: &CodePoints) -> (String, &'static str) {
    let notify_name = |t: u16| -> String {
        let drafts = [
            (cp.notify_peer_address_source, "PEER_ADDRESS_SOURCE"),
            (
                cp.notify_peer_address_destination,
                "PEER_ADDRESS_DESTINATION",
            ),
            (cp.notify_switch_to_ip_address, "SWITCH_TO_IP_ADDRESS"),
            (
                cp.notify_different_tunnel_address_supported,
                "DIFFERENT_TUNNEL_ADDRESS_SUPPORTED",
            ),
            (cp.notify_tunnel_address, "TUNNEL_ADDRESS"),
            (cp.notify_peer_address_mismatch, "PEER_ADDRESS_MISMATCH"),
        ];
        match drafts.iter().find(|(c, _)| *c == t) {
            Some((_, n)) => (*n).to_string(),
            None => NotifyType::from(t).to_string(),
        }
    };
    let id = |side: &str, i: &Identification| match i.id_type {
        Identification::FQDN | Identification::RFC822_ADDR => {
            format!("{side}={}", String::from_utf8_lossy(&i.data))
        }
        _ => side.to_string(),
    };
    let mut parts: Vec<String> = vec![];
    for p in payloads {
        let part = match p {
            IkePayload::IdI(i) => id("IDi", i),
            IkePayload::IdR(i) => id("IDr", i),
            IkePayload::Notify(n) => notify_name(n.notify_type),
            IkePayload::Delete { .. } => "D".into(),
            IkePayload::PeerAddressUpdate { .. } => "PEER_ADDRESS_UPDATE".into(),
            _ => continue,
        };
        // Which NAT a packet crossed is not what a picture is about.
        if part.starts_with("NAT_DETECTION") {
            continue;
        }
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    if exchange == 37 && payloads.is_empty() {
        return (" liveness".into(), "RFC 7296 §2.4");
    }
    // The section of what the message is for, the most specific first.
    let informational = exchange == 37;
    let sections = [
        ("UPDATE_SA_ADDRESSES", true, "RFC 4555 §3.5"),
        (
            "PEER_ADDRESS_UPDATE",
            true,
            "draft-dupont-ikev2-addrmgmt §3.4",
        ),
        (
            "PEER_ADDRESS_SOURCE",
            true,
            "draft-dupont-ikev2-addrmgmt §3.3",
        ),
        (
            "PEER_ADDRESS_DESTINATION",
            true,
            "draft-dupont-ikev2-addrmgmt §3.3",
        ),
        (
            "SWITCH_TO_IP_ADDRESS",
            true,
            "draft-smyslov-ipsecme-ikev2-r-mobike §4.2",
        ),
        (
            "TUNNEL_ADDRESS",
            true,
            "draft-arora-ipsecme-ikev2-alt-tunnel-addresses §7.2",
        ),
        ("REKEY_SA", true, "RFC 7296 §1.3.3"),
        ("D", true, "RFC 7296 §1.4.1"),
        ("ADDITIONAL_IP6_ADDRESS", informational, "RFC 4555 §3.6"),
        ("ADDITIONAL_IP4_ADDRESS", informational, "RFC 4555 §3.6"),
        ("NO_ADDITIONAL_ADDRESSES", informational, "RFC 4555 §3.6"),
        ("COOKIE2", informational, "RFC 4555 §3.7"),
    ];
    let reference = sections
        .iter()
        .find(|(name, applies, _)| *applies && parts.iter().any(|p| p == name))
        .map_or(exchange_section(exchange), |s| s.2);
    // A label, not a dissection: the first few, and how many more.
    let mut text = parts.iter().take(4).fold(String::new(), |s, p| s + " " + p);
    if parts.len() > 4 {
        text += &format!(" +{}", parts.len() - 4);
    }
    (text, reference)
}

/// The keys a picture opens packets with: ESP SAs and IKE SAs, as
/// Wireshark's `esp_sa` and `ikev2_decryption_table` hold them.
#[derive(Debug, Default)]
pub struct Keys {
    pub esp: EspKeyring,
    /// (SPIi, SPIr) and the initiator's and responder's SK_e.
    ike: Vec<((u64, u64), SkCipher, SkCipher)>,
}

impl Keys {
    /// From the two tables' text (either may be empty).
    pub fn from_tables(esp_sa: &str, ikev2: &str) -> Keys {
        Keys {
            esp: keyring_from_esp_sa(esp_sa),
            ike: ike_keys_from_table(ikev2),
        }
    }

    /// From a Wireshark configuration directory; a table it lacks is empty.
    pub fn from_dir(dir: &Path) -> Result<Keys, crate::tools::Error> {
        let read = |t: KeyTable| {
            let path = dir.join(t.file_name());
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => {
                    Ok(String::new())
                }
                Err(e) => Err(crate::tools::Error::from(e).in_file(&path)),
            }
        };
        Ok(Keys::from_tables(
            &read(KeyTable::Esp)?,
            &read(KeyTable::Ikev2)?,
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.esp.is_empty() && self.ike.is_empty()
    }

    /// The payloads inside `ike`'s SK payload, if we have its SA's key
    /// and the ICV holds.
    fn open_ike(&self, ike: &IkeRepr, cp: &CodePoints) -> Option<Vec<IkePayload>> {
        let [IkePayload::Sk { first_inner, data }] = ike.payloads.as_slice() else {
            return None;
        };
        let h = &ike.header;
        let (_, i, r) = self.ike.iter().find(|k| k.0 == (h.spi_i, h.spi_r))?;
        let sk = if h.initiator() { i } else { r };
        // Our decoder keeps every octet: the message emits as it came.
        let mut bytes = Vec::with_capacity(ike.buffer_len(cp));
        ike.emit(&mut bytes, cp);
        let aad = bytes.get(..bytes.len().checked_sub(data.len())?)?;
        let plain = sk.open(aad, data).ok()?;
        IkeRepr::parse_inner(*first_inner, &plain, cp).ok()
    }
}

/// The rows of `ikev2_decryption_table` whose algorithm is an AEAD we
/// have (AES-GCM-16 of 128 or 256 bits, no integrity algorithm); others
/// are skipped.
fn ike_keys_from_table(text: &str) -> Vec<((u64, u64), SkCipher, SkCipher)> {
    let mut out = vec![];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        let [spi_i, spi_r, sk_ei, sk_er, encr, _, _, _] = cols[..] else {
            continue;
        };
        let encr = match encr {
            e if e.starts_with("AES-GCM-128 with 16") => Encr::Aes128Gcm16,
            e if e.starts_with("AES-GCM-256 with 16") => Encr::Aes256Gcm16,
            _ => continue,
        };
        let spi = |s: &str| u64::from_str_radix(s, 16).ok();
        let key = |k: &str| {
            hex::decode(k)
                .ok()
                .and_then(|k| SkCipher::new(encr, &k).ok())
        };
        if let (Some(a), Some(b), Some(ei), Some(er)) =
            (spi(spi_i), spi(spi_r), key(sk_ei), key(sk_er))
        {
            out.push(((a, b), ei, er));
        }
    }
    out
}

/// Escapes text for SVG and HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick step of 1, 2 or 5 times a power of ten giving about `n` ticks
/// over `span`.
pub fn tick_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(100.0, 5.0), 20.0);
        assert_eq!(tick_step(9.5, 5.0), 2.0);
        assert_eq!(tick_step(0.3, 3.0), 0.1);
    }

    #[test]
    fn esp_sa_rows_open_what_they_name() {
        let key = [7u8; 20];
        let row = common::keylog::esp_row_for(true, 0x1234, Algorithm::Aes128Gcm16, &key);
        let text = format!(
            "{}\n{}\n",
            common::keylog::UAT_HEADER,
            row.unwrap_or_default()
        );
        assert!(!keyring_from_esp_sa(&text).is_empty());
        assert!(
            keyring_from_esp_sa("\"IPv6\",\"*\",\"*\",\"0x1\",\"TripleDES\",\"\",\"\",\"\"")
                .is_empty()
        );
    }
}
