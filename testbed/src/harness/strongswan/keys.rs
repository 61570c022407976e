//! The session keys charon derived, read out of its filelog (written with
//! `ike = 4` and `chd = 4`) and joined with `--list-sas` for the SPIs.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::vici::IkeSa;

/// An algorithm as charon logs it in `selected proposal:`, e.g.
/// `AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Algorithms {
    /// Encryption without key size: `AES_GCM_16`, `CHACHA20_POLY1305`.
    pub encr: String,
    /// The key size in bits, if the name carries one.
    pub key_bits: Option<u32>,
    /// The integrity algorithm (`HMAC_SHA2_256_128`), None for AEADs.
    pub integ: Option<String>,
}

impl Algorithms {
    /// Parses the part after `IKE:` or `ESP:`.
    pub fn parse(proposal: &str) -> Algorithms {
        let mut parts = proposal.split('/');
        let first = parts.next().unwrap_or_default();
        let (encr, key_bits) = match first.rsplit_once('_') {
            Some((name, bits)) if ["128", "192", "256"].contains(&bits) => {
                (name.to_string(), bits.parse().ok())
            }
            _ => (first.to_string(), None),
        };
        let integ = parts
            .find(|p| {
                ["HMAC_", "AES_XCBC", "AES_CMAC"]
                    .iter()
                    .any(|i| p.starts_with(i))
            })
            .map(str::to_string);
        Algorithms {
            encr,
            key_bits,
            integ,
        }
    }
}

/// The keys of one IKE SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeKeys {
    /// charon's unique id.
    pub uniqueid: u32,
    /// SPIi.
    pub spi_i: u64,
    /// SPIr.
    pub spi_r: u64,
    /// The negotiated algorithms.
    pub algorithms: Algorithms,
    /// SK_ei (with the 4-byte salt for AEADs).
    pub sk_ei: Vec<u8>,
    /// SK_er.
    pub sk_er: Vec<u8>,
    /// SK_ai (empty for AEADs).
    pub sk_ai: Vec<u8>,
    /// SK_ar.
    pub sk_ar: Vec<u8>,
}

/// The keys of one ESP SA (one direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspKeys {
    /// The SPI.
    pub spi: u32,
    /// Outer source when it was installed.
    pub src: IpAddr,
    /// Outer destination.
    pub dst: IpAddr,
    /// The negotiated algorithms.
    pub algorithms: Algorithms,
    /// The encryption key (with the 4-byte salt for AEADs).
    pub encr_key: Vec<u8>,
    /// The integrity key (empty for AEADs).
    pub integ_key: Vec<u8>,
}

impl EspKeys {
    /// The SA in `testbed decode --sa` syntax, if our decoder knows the
    /// algorithm (AES-GCM-16, ChaCha20-Poly1305, NULL+SHA-256).
    pub fn decode_spec(&self) -> Option<String> {
        let a = &self.algorithms;
        let key = hex::encode(&self.encr_key);
        let spi = self.spi;
        match (a.encr.as_str(), a.key_bits, a.integ.as_deref()) {
            ("AES_GCM_16", Some(bits @ (128 | 256)), None) => {
                Some(format!("spi=0x{spi:08x},enc=aes{bits}gcm16,enc-key={key}"))
            }
            ("CHACHA20_POLY1305", _, None) => Some(format!(
                "spi=0x{spi:08x},enc=chacha20poly1305,enc-key={key}"
            )),
            ("NULL", _, Some("HMAC_SHA2_256_128")) => Some(format!(
                "spi=0x{spi:08x},enc=null,integ=sha256,integ-key={}",
                hex::encode(&self.integ_key)
            )),
            _ => None,
        }
    }
}

/// Every key charon logged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionKeys {
    /// IKE SAs still listed by swanctl (their SPIs come from there).
    pub ike: Vec<IkeKeys>,
    /// ESP SAs, both directions of every CHILD SA in the log.
    pub esp: Vec<EspKeys>,
    /// What was left out and why.
    pub notes: Vec<String>,
}

/// One line of charon's filelog: `TIME THREAD[GROUP] <NAME|ID> MESSAGE`.
struct LogLine<'a> {
    thread: &'a str,
    group: &'a str,
    uniqueid: Option<u32>,
    message: &'a str,
}

fn parse_log_line(line: &str) -> Option<LogLine<'_>> {
    let (_time, rest) = line.split_once(' ')?;
    let (thread, rest) = rest.split_once('[')?;
    if thread.is_empty() || !thread.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (group, rest) = rest.split_once(']')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    // `<mip|1> ` or `<1> ` before the IKE SA has matched a config.
    let tagged = rest.strip_prefix('<').and_then(|r| {
        let (tag, message) = r.split_once("> ")?;
        let id = tag.rsplit('|').next()?.parse().ok()?;
        Some((id, message))
    });
    let (uniqueid, message) = match tagged {
        Some((id, message)) => (Some(id), message),
        None => (None, rest),
    };
    Some(LogLine {
        thread,
        group,
        uniqueid,
        message,
    })
}

/// The bytes of a hex-dump row `   16: 41 A4 ... 0F 90  A.....=....`.
fn hex_row(message: &str) -> Option<Vec<u8>> {
    let (offset, rest) = message.trim_start().split_once(": ")?;
    if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The ASCII column follows after two spaces.
    let hex_part = rest.split("  ").next()?;
    hex_part
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).ok().filter(|_| b.len() == 2))
        .collect()
}

/// `NAME => N bytes @ 0x...`: the name and N.
fn key_header(message: &str) -> Option<(&str, usize)> {
    let (name, rest) = message.split_once(" => ")?;
    let n = rest.split_once(" bytes")?.0.parse().ok()?;
    Some((name, n))
}

/// `  SPI 0x1234abcd, src X dst Y`.
fn spi_line(message: &str) -> Option<(u32, IpAddr, IpAddr)> {
    let rest = message.trim_start().strip_prefix("SPI 0x")?;
    let (spi, rest) = rest.split_once(", src ")?;
    let (src, dst) = rest.split_once(" dst ")?;
    Some((
        u32::from_str_radix(spi, 16).ok()?,
        src.trim().parse().ok()?,
        dst.trim().parse().ok()?,
    ))
}

/// Keys found in one charon log, before SPIs are known.
#[derive(Debug, Default)]
pub(super) struct KeyLog {
    /// By uniqueid.
    ike: BTreeMap<u32, LoggedIke>,
    esp: Vec<EspKeys>,
}

/// What the log says about one IKE SA.
#[derive(Debug, Default)]
struct LoggedIke {
    /// `Sk_ei`, `Sk_er`, ... -> bytes.
    secrets: BTreeMap<String, Vec<u8>>,
    /// From `selected proposal: IKE:...`.
    algorithms: Option<Algorithms>,
}

/// A CHILD SA's keys while its log lines come in.
#[derive(Debug, Default)]
struct PendingChild {
    /// We initiated this CHILD SA exchange: "initiator" keys are ours.
    initiator: bool,
    algorithms: Algorithms,
    keys: BTreeMap<String, Vec<u8>>,
    inbound: Option<(u32, IpAddr, IpAddr)>,
    outbound: Option<(u32, IpAddr, IpAddr)>,
}

impl PendingChild {
    fn finish(self) -> Vec<EspKeys> {
        let (Some(inbound), Some(outbound)) = (self.inbound, self.outbound) else {
            return Vec::new();
        };
        // "initiator key" protects CHILD-initiator -> responder traffic.
        let (ours, theirs) = if self.initiator {
            ("initiator", "responder")
        } else {
            ("responder", "initiator")
        };
        let key = |kind: &str, who: &str| {
            self.keys
                .get(&format!("{kind} {who} key"))
                .cloned()
                .unwrap_or_default()
        };
        [(outbound, ours), (inbound, theirs)]
            .into_iter()
            .map(|((spi, src, dst), who)| EspKeys {
                spi,
                src,
                dst,
                algorithms: self.algorithms.clone(),
                encr_key: key("encryption", who),
                integ_key: key("integrity", who),
            })
            .collect()
    }
}

/// Reads IKE and CHILD keys out of a charon log written with ike = 4 and
/// chd = 4.
pub(super) fn parse_key_log(log: &str) -> KeyLog {
    let lines: Vec<LogLine<'_>> = log.lines().filter_map(parse_log_line).collect();
    let mut found = KeyLog::default();
    // Per thread: did the last parsed message answer us (a response)?
    let mut answered: HashMap<&str, bool> = HashMap::new();
    let mut esp_proposal: HashMap<&str, Algorithms> = HashMap::new();
    let mut pending: HashMap<&str, PendingChild> = HashMap::new();
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        i += 1;
        let msg = line.message;
        if line.group == "ENC" {
            if let Some(rest) = msg.strip_prefix("parsed ") {
                let mut words = rest.split(' ');
                if let (Some(_exchange), Some(kind)) = (words.next(), words.next()) {
                    answered.insert(line.thread, kind == "response");
                }
            }
            continue;
        }
        if let Some(p) = msg.strip_prefix("selected proposal: ") {
            if let Some(ike) = p.strip_prefix("IKE:") {
                if let Some(id) = line.uniqueid {
                    found.ike.entry(id).or_default().algorithms = Some(Algorithms::parse(ike));
                }
            } else if let Some(esp) = p.strip_prefix("ESP:") {
                esp_proposal.insert(line.thread, Algorithms::parse(esp));
            }
            continue;
        }
        if let Some((name, len)) = key_header(msg) {
            let is_ike = name.starts_with("Sk_") && name.ends_with(" secret");
            let is_child = (name.starts_with("encryption ") || name.starts_with("integrity "))
                && name.ends_with(" key");
            if !is_ike && !is_child {
                continue;
            }
            // The hex dump follows on the same thread.
            let mut bytes = Vec::with_capacity(len);
            let mut j = i;
            while bytes.len() < len && j < lines.len() {
                if lines[j].thread == line.thread {
                    match hex_row(lines[j].message) {
                        Some(row) => bytes.extend(row),
                        None => break,
                    }
                }
                j += 1;
            }
            if bytes.len() != len {
                continue;
            }
            if is_ike {
                if let Some(id) = line.uniqueid {
                    let sk = name.trim_end_matches(" secret").to_string();
                    found.ike.entry(id).or_default().secrets.insert(sk, bytes);
                }
            } else {
                let fresh =
                    name == "encryption initiator key" || !pending.contains_key(line.thread);
                if fresh {
                    pending.insert(
                        line.thread,
                        PendingChild {
                            initiator: answered.get(line.thread).copied().unwrap_or(false),
                            algorithms: esp_proposal.get(line.thread).cloned().unwrap_or_default(),
                            ..PendingChild::default()
                        },
                    );
                }
                if let Some(p) = pending.get_mut(line.thread) {
                    p.keys.insert(name.to_string(), bytes);
                }
            }
            continue;
        }
        // "adding inbound ESP SA" / "registering outbound ESP SA" (a rekey
        // responder registers its outbound SA before installing it), then
        // "  SPI 0x..., src X dst Y" on the same thread.
        let direction = msg
            .strip_prefix("adding ")
            .or_else(|| msg.strip_prefix("registering "))
            .and_then(|r| r.strip_suffix(" ESP SA"));
        if let (Some(dir), Some(p)) = (direction, pending.get_mut(line.thread)) {
            let spi = lines[i..]
                .iter()
                .find(|l| l.thread == line.thread)
                .and_then(|l| spi_line(l.message));
            match (dir, spi) {
                ("inbound", Some(s)) => p.inbound = Some(s),
                ("outbound", Some(s)) => p.outbound = Some(s),
                _ => {}
            }
            if p.inbound.is_some() && p.outbound.is_some() {
                if let Some(done) = pending.remove(line.thread) {
                    found.esp.extend(done.finish());
                }
            }
        }
    }
    found
}

/// Joins logged keys with the listed IKE SAs (for SPIs and, failing the
/// log, algorithms).
pub(super) fn session_keys(log: &KeyLog, sas: &[IkeSa]) -> SessionKeys {
    let mut keys = SessionKeys {
        esp: log.esp.clone(),
        ..SessionKeys::default()
    };
    for (
        id,
        LoggedIke {
            secrets: sk,
            algorithms,
        },
    ) in &log.ike
    {
        let Some(sa) = sas.iter().find(|sa| sa.uniqueid == *id) else {
            keys.notes.push(format!(
                "IKE SA #{id}: keys logged but not listed (gone), left out"
            ));
            continue;
        };
        let (Some(ei), Some(er)) = (sk.get("Sk_ei"), sk.get("Sk_er")) else {
            keys.notes
                .push(format!("IKE SA #{id}: Sk_ei/Sk_er not in the log"));
            continue;
        };
        let algorithms = algorithms.clone().unwrap_or_else(|| Algorithms {
            encr: sa.fields.get("encr-alg").cloned().unwrap_or_default(),
            key_bits: sa.fields.get("encr-keysize").and_then(|v| v.parse().ok()),
            integ: sa.fields.get("integ-alg").cloned(),
        });
        keys.ike.push(IkeKeys {
            uniqueid: *id,
            spi_i: sa.spi_i,
            spi_r: sa.spi_r,
            algorithms,
            sk_ei: ei.clone(),
            sk_er: er.clone(),
            sk_ai: sk.get("Sk_ai").cloned().unwrap_or_default(),
            sk_ar: sk.get("Sk_ar").cloned().unwrap_or_default(),
        });
    }
    keys
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::harness::strongswan::vici::{parse_list_sas, LIST_SAS_RAW};

    const LOG: &str = "\
19:52:31.261 14[ENC] <mip|1> parsed IKE_SA_INIT response 0 [ SA KE No ]
19:52:31.261 14[CFG] <mip|1> selected proposal: IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519
19:52:31.262 14[IKE] <mip|1> Sk_ei secret => 36 bytes @ 0x7f8ee400f160
19:52:31.262 14[IKE] <mip|1>    0: 96 E4 EA C5 A1 09 EA 2F 68 6C 90 ED 90 FF 2E DD  ......./hl......
19:52:31.262 14[IKE] <mip|1>   16: 94 D4 C7 84 07 95 7F 4D 8E 69 56 A3 74 09 83 7F  .......M.iV.t...
19:52:31.262 14[IKE] <mip|1>   32: F5 1E 75 3E                                      ..u>
19:52:31.262 14[IKE] <mip|1> Sk_er secret => 4 bytes @ 0x7f8ee400f184
19:52:31.262 14[IKE] <mip|1>    0: 80 8E B6 24                                      ...$
19:52:31.265 13[ENC] <mip|1> parsed IKE_AUTH response 1 [ IDr AUTH SA TSi TSr ]
19:52:31.265 13[CFG] <mip|1> selected proposal: ESP:AES_GCM_16_256/NO_EXT_SEQ
19:52:31.265 13[CHD] <mip|1> encryption initiator key => 4 bytes @ 0x7f8ef4002de0
19:52:31.265 13[CHD] <mip|1>    0: 9B DB 71 70                                      ..qp
19:52:31.265 13[CHD] <mip|1> encryption responder key => 4 bytes @ 0x7f8ef4002bb0
19:52:31.265 14[IKE] <mip|2> something else on another thread
19:52:31.265 13[CHD] <mip|1>    0: 3C AF C3 1E                                      <...
19:52:31.265 13[CHD] <mip|1> adding inbound ESP SA
19:52:31.265 13[CHD] <mip|1>   SPI 0xf5daaa3d, src 2001:db8:1::b dst 2001:db8:1::a
19:52:31.265 13[CHD] <mip|1> adding outbound ESP SA
19:52:31.265 13[CHD] <mip|1>   SPI 0xc24a34a9, src 2001:db8:1::a dst 2001:db8:1::b
";

    #[test]
    fn keys_come_out_of_the_log_as_uat_rows() {
        let keys = session_keys(&parse_key_log(LOG), &parse_list_sas(LIST_SAS_RAW).unwrap());
        assert!(keys.notes.is_empty(), "{:?}", keys.notes);
        let rows = keys.uat_rows();
        assert_eq!(
            rows.ikev2_decryption_table,
            ["909d8a556545620a,41e6b0e87a2e6c21,96e4eac5a109ea2f686c90ed90ff2edd94d4c78407957f4d8e6956a37409837ff51e753e,808eb624,\"AES-GCM-256 with 16 octet ICV [RFC5282]\",,,\"NONE [RFC4306]\""]
        );
        // We initiated: outbound uses the initiator key.
        assert_eq!(
            rows.esp_sa,
            [
                "\"IPv6\",\"*\",\"*\",\"0xc24a34a9\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x9bdb7170\",\"NULL\",\"\"",
                "\"IPv6\",\"*\",\"*\",\"0xf5daaa3d\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x3cafc31e\",\"NULL\",\"\"",
            ]
        );
        assert_eq!(
            keys.esp[0].decode_spec().unwrap(),
            "spi=0xc24a34a9,enc=aes256gcm16,enc-key=9bdb7170"
        );
    }

    #[test]
    fn a_responder_uses_the_responder_key_outbound() {
        let log = LOG.replace("IKE_AUTH response", "IKE_AUTH request");
        let keys = parse_key_log(&log);
        assert_eq!(keys.esp[0].spi, 0xc24a34a9);
        assert_eq!(keys.esp[0].encr_key, [0x3c, 0xaf, 0xc3, 0x1e]);
    }
}
