//! scapy, a decoder we did not write, against ours in both directions:
//! RFC 6275 messages scapy builds must parse (strictly: checksums with the
//! MIPv6 pseudo-header rules) to the fields scapy put in them, and scapy must
//! dissect the Mobility Header packets we emit to the fields we decode.
//! The same both ways for Neighbor Discovery (RFC 4861 §4, RFC 6275 §7),
//! where scapy also checks our checksums.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use common::wire::packet::{decode, Decoded};
use common::wire::{CodePoints, FieldValue, IpProtocol, NdRepr, PacketRepr, UpperRepr};
use serde_json::Value;
use testbed::tools::samples::samples;

const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy_mh.py");

fn scapy_available() -> bool {
    tools::require(PYTHON, &["-c", "import scapy.layers.inet6"])
}

fn run_script(mode: &str, input: &str) -> Vec<Value> {
    tools::python_lines(PYTHON, SCRIPT, mode, input)
}

/// Every field scapy reports must have the same values in ours.
fn compare(label: &str, bytes: &[u8], scapy_fields: &Value, cp: &CodePoints) -> usize {
    let d = decode(bytes, cp, true);
    assert!(
        d.errors.is_empty(),
        "{label}: our decoder reports {:?}",
        d.errors
    );
    let mut n = 0;
    for (name, values) in scapy_fields.as_object().unwrap() {
        let theirs: Vec<String> = values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::String(s) => s
                    .parse::<std::net::IpAddr>()
                    .map_or_else(|_| s.clone(), |a| a.to_string()),
                other => other.to_string(),
            })
            .collect();
        let ours: Vec<String> = d
            .fields
            .get(name)
            .into_iter()
            .map(|v| match v {
                FieldValue::Num(n) => n.to_string(),
                other => other.to_string(),
            })
            .collect();
        assert_eq!(ours, theirs, "{label}: field {name}");
        n += theirs.len();
    }
    n
}

#[test]
fn scapy_built_rfc6275_messages_parse_to_the_same_fields() {
    // REQ MIP-BASE
    if !scapy_available() {
        return;
    }
    let cp = CodePoints::default();
    let packets = run_script("build", "");
    assert!(packets.len() >= 10);
    let mut compared = 0;
    for p in &packets {
        let bytes = hex::decode(p["hex"].as_str().unwrap()).unwrap();
        let repr = PacketRepr::parse(&bytes, &cp).unwrap_or_else(|e| panic!("{}: {e}", p["hex"]));
        compared += compare(&repr.to_string(), &bytes, &p["fields"], &cp);
    }
    eprintln!(
        "scapy → ours: {compared} values agree over {} packets",
        packets.len()
    );
}

#[test]
fn scapy_dissects_our_mobility_packets_to_the_same_fields() {
    // REQ MIP-BASE
    if !scapy_available() {
        return;
    }
    let cp = CodePoints::default();
    // Our emitted packets that scapy has layers for: MH (not inside ESP or a
    // tunnel) and echo with HAO/RH2.
    let ours: Vec<_> = samples(&cp)
        .into_iter()
        .filter(|s| {
            let d = decode(&s.bytes, &cp, true);
            let nxt = d.fields.get("ipv6.nxt");
            !nxt.contains(&&FieldValue::Num(u8::from(IpProtocol::Ipv6).into()))
                && (!d.fields.get("mip6.mhtype").is_empty()
                    || !d.fields.get("icmpv6.echo.identifier").is_empty())
        })
        .collect();
    assert!(ours.len() >= 12, "only {} samples", ours.len());
    let input: String = ours.iter().map(|s| hex::encode(&s.bytes) + "\n").collect();
    let dissected = run_script("dissect", &input);
    assert_eq!(dissected.len(), ours.len());
    let mut compared = 0;
    for (s, d) in ours.iter().zip(&dissected) {
        compared += compare(s.label, &s.bytes, &d["fields"], &cp);
    }
    eprintln!(
        "ours → scapy: {compared} values agree over {} packets",
        ours.len()
    );
}

/// The scapy class of each ND message type.
const ND_CLASSES: [(u64, &str); 4] = [
    (133, "ICMPv6ND_RS"),
    (134, "ICMPv6ND_RA"),
    (135, "ICMPv6ND_NS"),
    (136, "ICMPv6ND_NA"),
];

/// The ND message type of a decoded packet, if it is one.
fn nd_type(d: &Decoded) -> Option<u64> {
    d.fields.get("icmpv6.type").iter().find_map(|v| match v {
        FieldValue::Num(t) if ND_CLASSES.iter().any(|(c, _)| c == t) => Some(*t),
        _ => None,
    })
}

#[test]
fn scapy_built_nd_messages_parse_to_the_same_fields() {
    if !scapy_available() {
        return;
    }
    let cp = CodePoints::default();
    let packets = run_script("build-nd", "");
    assert_eq!(packets.len(), 9);
    let mut compared = 0;
    for p in &packets {
        let bytes = hex::decode(p["hex"].as_str().unwrap()).unwrap();
        let repr = PacketRepr::parse(&bytes, &cp).unwrap_or_else(|e| panic!("{}: {e}", p["hex"]));
        let UpperRepr::Icmpv6(icmp) = &repr.upper else {
            panic!("{repr}: not ICMPv6")
        };
        assert!(
            matches!(NdRepr::parse(icmp), Ok(Some(_))),
            "{repr}: not an ND message"
        );
        compared += compare(&repr.to_string(), &bytes, &p["fields"], &cp);
    }
    eprintln!(
        "scapy → ours: {compared} ND values agree over {} packets",
        packets.len()
    );
}

#[test]
fn scapy_dissects_our_nd_packets_to_the_same_fields() {
    if !scapy_available() {
        return;
    }
    let cp = CodePoints::default();
    let ours: Vec<_> = samples(&cp)
        .into_iter()
        .filter_map(|s| {
            let d = decode(&s.bytes, &cp, true);
            nd_type(&d).map(|t| (s, d, t))
        })
        .collect();
    assert_eq!(ours.len(), 9, "ND samples");
    let input: String = ours
        .iter()
        .map(|(s, ..)| hex::encode(&s.bytes) + "\n")
        .collect();
    let dissected = run_script("dissect", &input);
    assert_eq!(dissected.len(), ours.len());
    let mut compared = 0;
    for ((s, d, t), theirs) in ours.iter().zip(&dissected) {
        assert_eq!(
            theirs["checksum_ok"], true,
            "{}: scapy's checksum differs",
            s.label
        );
        // scapy must see the message and every option as its own layers,
        // not as raw bytes.
        let layers: Vec<&str> = theirs["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        let class = ND_CLASSES.iter().find(|(c, _)| c == t).unwrap().1;
        assert_eq!(layers[..2], ["IPv6", class], "{}: {layers:?}", s.label);
        let options = layers[2..].iter().filter(|l| l.starts_with("ICMPv6NDOpt"));
        assert_eq!(
            options.count(),
            d.fields.get("icmpv6.opt.type").len(),
            "{}: {layers:?}",
            s.label
        );
        assert_eq!(layers.len(), 2 + d.fields.get("icmpv6.opt.type").len());
        compared += compare(s.label, &s.bytes, &theirs["fields"], &cp);
    }
    eprintln!(
        "ours → scapy: {compared} ND values agree over {} packets",
        ours.len()
    );
}
