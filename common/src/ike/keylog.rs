//! The key-log rows of IKE SAs and CHILD SAs ([`crate::keylog`] formats
//! them). tshark 4.0 has no ChaCha20-Poly1305, so those SAs get no row.

use super::crypto::{Encr, IkeKeys};
use crate::ipsec::Algorithm;
use crate::keylog;

/// A row of `ikev2_decryption_table`: SPIs, SK_ei and SK_er (with salt), the
/// encryption algorithm, no integrity keys (AEAD).
pub fn ike_row(encr: Encr, spi_i: u64, spi_r: u64, keys: &IkeKeys) -> Option<String> {
    let alg = match encr {
        Encr::Aes128Gcm16 => "AES-GCM-128 with 16 octet ICV [RFC5282]",
        Encr::Aes256Gcm16 => "AES-GCM-256 with 16 octet ICV [RFC5282]",
        Encr::ChaCha20Poly1305 => return None,
    };
    Some(keylog::ike_row(
        spi_i,
        spi_r,
        &keys.sk_ei,
        &keys.sk_er,
        alg,
        &[],
        &[],
        "NONE [RFC4306]",
    ))
}

/// A row of `esp_sa` for one direction's CHILD SA.
pub fn esp_row(ipv6: bool, spi: u32, encr: Encr, key_and_salt: &[u8]) -> Option<String> {
    let alg = match encr {
        Encr::Aes128Gcm16 => Algorithm::Aes128Gcm16,
        Encr::Aes256Gcm16 => Algorithm::Aes256Gcm16,
        Encr::ChaCha20Poly1305 => Algorithm::ChaCha20Poly1305,
    };
    keylog::esp_row_for(ipv6, spi, alg, key_and_salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(encr: Encr) -> IkeKeys {
        let n = encr.keymat_len();
        IkeKeys {
            sk_d: vec![0xdd; 32],
            sk_ei: (0..n as u8).collect(),
            sk_er: (0..n as u8).map(|b| 0xf0 ^ b).collect(),
            sk_pi: vec![0xaa; 32],
            sk_pr: vec![0xbb; 32],
        }
    }

    #[test]
    fn ike_rows_match_the_tshark_format() {
        assert_eq!(
            ike_row(
                Encr::Aes128Gcm16,
                0x309e1f898d16560b,
                0x00c0c7dd2bc78202,
                &keys(Encr::Aes128Gcm16)
            )
            .as_deref(),
            Some(
                "309e1f898d16560b,00c0c7dd2bc78202,\
                 000102030405060708090a0b0c0d0e0f10111213,\
                 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeffe0e1e2e3,\
                 \"AES-GCM-128 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\""
            )
        );
        assert_eq!(
            ike_row(Encr::Aes256Gcm16, 1, 0, &keys(Encr::Aes256Gcm16)).as_deref(),
            Some(
                "0000000000000001,0000000000000000,\
                 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223,\
                 f0f1f2f3f4f5f6f7f8f9fafbfcfdfeffe0e1e2e3e4e5e6e7e8e9eaebecedeeefd0d1d2d3,\
                 \"AES-GCM-256 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\""
            )
        );
        let chacha = keys(Encr::ChaCha20Poly1305);
        assert_eq!(ike_row(Encr::ChaCha20Poly1305, 1, 2, &chacha), None);
    }

    #[test]
    fn esp_rows_match_the_tshark_format() {
        let key: Vec<u8> = (0..20).collect();
        assert_eq!(
            esp_row(true, 0x01ef780b, Encr::Aes128Gcm16, &key).as_deref(),
            Some(
                "\"IPv6\",\"*\",\"*\",\"0x01ef780b\",\"AES-GCM with 16 octet ICV [RFC4106]\",\
                 \"0x000102030405060708090a0b0c0d0e0f10111213\",\"NULL\",\"\""
            )
        );
        let key = [0xab; 36];
        assert_eq!(
            esp_row(false, 0xc0000001, Encr::Aes256Gcm16, &key).as_deref(),
            Some(
                "\"IPv4\",\"*\",\"*\",\"0xc0000001\",\"AES-GCM with 16 octet ICV [RFC4106]\",\
                 \"0xabababababababababababababababababababababababababababababababababababab\",\"NULL\",\"\""
            )
        );
        assert_eq!(esp_row(true, 1, Encr::ChaCha20Poly1305, &key), None);
    }
}
