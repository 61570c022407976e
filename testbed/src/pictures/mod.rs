//! Teaching pictures, drawn by hand as SVG: sequence diagrams of
//! signalling ([`sequence`]), the CN→MN delay and loss plot ([`plot`]),
//! the topology with the path packets take ([`paths`]), and the demo's
//! `report.html` that holds them ([`report`]). Output depends on the run
//! only (no wall clock, no hash-map order), so a seed gives the same file.

use common::ipsec::{Algorithm, EspCipher, EspKeyring};
use common::wire::esp::EspOpener;
use common::wire::packet::decode_with;
use common::wire::{CodePoints, FieldValue};

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
/// so the diagram counts what tshark counts), opening ESP with `keys`.
pub fn classify(bytes: &[u8], cp: &CodePoints, keys: Option<&dyn EspOpener>) -> Message {
    let d = decode_with(bytes, cp, true, keys);
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
        // MOBIKE's updates ride in INFORMATIONAL, but inside SK.
        let reference = if x == 37 {
            "RFC 7296 §1.4"
        } else {
            "RFC 7296 §1.2"
        };
        return msg(kind, format!(" #{id} {dir}"), reference);
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
