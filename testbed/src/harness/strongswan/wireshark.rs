//! Session keys as Wireshark UAT rows (`ikev2_decryption_table`,
//! `esp_sa`), a Wireshark configuration directory holding them, and tshark
//! run with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::keylog;

use super::keys::{Algorithms, SessionKeys};
use crate::harness::netns::run_bounded;
use crate::harness::{Error, Result};

/// Wireshark UAT rows: the lines of the `ikev2_decryption_table` and
/// `esp_sa` files (or `-o uat:NAME:ROW` values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UatRows {
    /// `SPIi,SPIr,SK_ei,SK_er,"encr",SK_ai,SK_ar,"integ"`.
    pub ikev2_decryption_table: Vec<String>,
    /// `"IPv6","*","*","0xSPI","encr","0xKEY","integ","0xKEY"`.
    pub esp_sa: Vec<String>,
    /// SAs tshark 4.0 cannot decrypt (ChaCha20-Poly1305 ...), and why.
    pub unsupported: Vec<String>,
}

impl UatRows {
    /// Writes `ikev2_decryption_table`, `esp_sa` and `preferences` (ESP
    /// decryption and ICV checking on) into `dir`, a Wireshark personal
    /// configuration directory (`WIRESHARK_CONFIG_DIR`).
    pub fn write_config_dir(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(Error::io(dir))?;
        for (name, text) in keylog::config_files(&self.ikev2_decryption_table, &self.esp_sa) {
            let p = dir.join(name);
            fs::write(&p, text).map_err(Error::io(&p))?;
        }
        Ok(())
    }
}

fn ike_encr_uat(a: &Algorithms) -> Option<String> {
    let bits = a.key_bits?;
    let icv = |n: &str| {
        a.encr
            .strip_prefix(n)
            .and_then(|icv| ["8", "12", "16"].contains(&icv).then_some(icv))
    };
    if let Some(icv) = icv("AES_GCM_") {
        return Some(format!("AES-GCM-{bits} with {icv} octet ICV [RFC5282]"));
    }
    if let Some(icv) = icv("AES_CCM_") {
        return Some(format!("AES-CCM-{bits} with {icv} octet ICV [RFC5282]"));
    }
    match a.encr.as_str() {
        "AES_CBC" => Some(format!("AES-CBC-{bits} [RFC3602]")),
        "AES_CTR" => Some(format!("AES-CTR-{bits} [RFC5930]")),
        _ => None,
    }
}

fn ike_integ_uat(integ: Option<&str>) -> Option<&'static str> {
    Some(match integ {
        None => "NONE [RFC4306]",
        Some("HMAC_MD5_96") => "HMAC_MD5_96 [RFC2403]",
        Some("HMAC_SHA1_96") => "HMAC_SHA1_96 [RFC2404]",
        Some("HMAC_SHA2_256_128") => "HMAC_SHA2_256_128 [RFC4868]",
        Some("HMAC_SHA2_384_192") => "HMAC_SHA2_384_192 [RFC4868]",
        Some("HMAC_SHA2_512_256") => "HMAC_SHA2_512_256 [RFC4868]",
        Some(_) => return None,
    })
}

fn esp_encr_uat(a: &Algorithms) -> Option<String> {
    if let Some(icv) = a.encr.strip_prefix("AES_GCM_") {
        if ["8", "12", "16"].contains(&icv) {
            return Some(format!("AES-GCM with {icv} octet ICV [RFC4106]"));
        }
    }
    match a.encr.as_str() {
        "AES_CBC" => Some("AES-CBC [RFC3602]".to_string()),
        "AES_CTR" => Some("AES-CTR [RFC3686]".to_string()),
        "NULL" => Some("NULL".to_string()),
        _ => None,
    }
}

fn esp_integ_uat(integ: Option<&str>) -> Option<&'static str> {
    Some(match integ {
        None => "NULL",
        Some("HMAC_MD5_96") => "HMAC-MD5-96 [RFC2403]",
        Some("HMAC_SHA1_96") => "HMAC-SHA-1-96 [RFC2404]",
        Some("HMAC_SHA2_256_128") => "HMAC-SHA-256-128 [RFC4868]",
        Some("HMAC_SHA2_384_192") => "HMAC-SHA-384-192 [RFC4868]",
        Some("HMAC_SHA2_512_256") => "HMAC-SHA-512-256 [RFC4868]",
        Some(_) => return None,
    })
}

impl SessionKeys {
    /// The rows tshark 4.0 can use. ESP rows use `*` for the addresses,
    /// so they still match after MOBIKE moves the SA.
    pub fn uat_rows(&self) -> UatRows {
        let mut rows = UatRows::default();
        for k in &self.ike {
            let a = &k.algorithms;
            match (ike_encr_uat(a), ike_integ_uat(a.integ.as_deref())) {
                (Some(encr), Some(integ)) => rows.ikev2_decryption_table.push(keylog::ike_row(
                    k.spi_i, k.spi_r, &k.sk_ei, &k.sk_er, &encr, &k.sk_ai, &k.sk_ar, integ,
                )),
                _ => rows.unsupported.push(format!(
                    "IKE SA {:016x}_{:016x}: {a:?} has no Wireshark 4.0 IKEv2 decryptor",
                    k.spi_i, k.spi_r
                )),
            }
        }
        for k in &self.esp {
            let a = &k.algorithms;
            match (esp_encr_uat(a), esp_integ_uat(a.integ.as_deref())) {
                (Some(encr), Some(integ)) => rows.esp_sa.push(keylog::esp_row(
                    k.src.is_ipv6(),
                    k.spi,
                    &encr,
                    &k.encr_key,
                    integ,
                    &k.integ_key,
                )),
                _ => rows.unsupported.push(format!(
                    "ESP SA 0x{:08x}: {a:?} has no Wireshark 4.0 ESP decryptor",
                    k.spi
                )),
            }
        }
        rows
    }
}

/// Runs `tshark -r PCAP -n ARGS` with a private Wireshark configuration
/// directory (`PCAP.wireshark/`, from `WIRESHARK_CONFIG_DIR`) holding
/// `rows`, so IKEv2 and ESP are decrypted. Bounded to 60 s.
pub fn tshark(pcap: &Path, rows: &UatRows, args: &[&str]) -> Result<Output> {
    let mut config = pcap.as_os_str().to_owned();
    config.push(".wireshark");
    let config = PathBuf::from(config);
    rows.write_config_dir(&config)?;
    let mut cmd = Command::new("tshark");
    cmd.env("WIRESHARK_CONFIG_DIR", &config)
        .arg("-r")
        .arg(pcap)
        .arg("-n")
        .args(args);
    run_bounded(cmd, Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_parse() {
        let a = Algorithms::parse("CHACHA20_POLY1305_256/PRF_HMAC_SHA2_256/CURVE_25519");
        assert_eq!(
            (a.encr.as_str(), a.key_bits, a.integ),
            ("CHACHA20_POLY1305", Some(256), None)
        );
        let a = Algorithms::parse("AES_CBC_128/HMAC_SHA2_256_128/NO_EXT_SEQ");
        assert_eq!(a.integ.as_deref(), Some("HMAC_SHA2_256_128"));
        assert_eq!(esp_encr_uat(&a).as_deref(), Some("AES-CBC [RFC3602]"));
    }
}
