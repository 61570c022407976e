//! `testbed decode`: what the stack thinks of a packet, as one JSON object,
//! with Wireshark display-filter names so it can sit next to tshark.

use common::wire::esp::EspOpener;
use common::wire::packet::decode_with;
use common::wire::{CodePoints, FieldValue};
use serde_json::{json, Map, Value};

use super::Error;

/// A packet written as hex, with optional whitespace, colons or a 0x
/// prefix.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, Error> {
    let clean: String = s
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    Ok(hex::decode(&clean)?)
}

/// Decodes one packet into `{"summary", "fields", "errors"[, "reencoded"]}`,
/// opening ESP whose SA is in `keys`. A field that occurs more than once
/// maps to an array in packet order.
pub fn packet_json(
    bytes: &[u8],
    cp: &CodePoints,
    reencode: bool,
    keys: Option<&dyn EspOpener>,
) -> Value {
    let d = decode_with(bytes, cp, true, keys);
    let mut fields = Map::new();
    for (name, value) in &d.fields.entries {
        let v = match value {
            FieldValue::Num(n) => json!(n),
            other => json!(other.to_string()),
        };
        match fields.get_mut(name) {
            None => {
                fields.insert(name.clone(), v);
            }
            // Single values are never arrays, so an array means "seen before".
            Some(Value::Array(a)) => a.push(v),
            Some(first) => *first = json!([first.take(), v]),
        }
    }
    let errors: Vec<String> = d.errors.iter().map(|e| e.to_string()).collect();
    let mut summary = d
        .repr
        .as_ref()
        .map_or_else(|| "undecodable".to_owned(), |r| r.to_string());
    for inner in &d.decrypted {
        summary.push_str(&format!(" {{decrypted: {inner}}}"));
    }
    let mut out = json!({
        "summary": summary,
        "fields": fields,
        "errors": errors,
    });
    if reencode {
        out["reencoded"] = d
            .repr
            .map_or(Value::Null, |r| json!(hex::encode(r.to_bytes(cp))));
    }
    out
}
