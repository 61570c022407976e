//! tshark must decode every packet of our reference set with no malformed
//! packet and no expert error, and report the same value as our decoder for
//! every field name we share with it.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::fs::File;

use common::wire::packet::decode;
use common::wire::CodePoints;
use testbed::tools::pcap::PcapWriter;
use testbed::tools::samples::samples;

/// Fields tshark lists but reports differently by design, and why.
const NOT_COMPARABLE: &[(&str, &str)] = &[
    (
        "isakmp.id.data",
        "tshark gives the ID data no value, it dissects it into typed sub-fields",
    ),
    (
        "isakmp.enc.data",
        "tshark splits an IV off the SK payload; ours is the opaque whole",
    ),
    ("isakmp.eap.data", "tshark hands EAP to its own dissector"),
    (
        "isakmp.cert.data",
        "tshark dissects the certificate as X.509",
    ),
];

fn write_samples(cp: &CodePoints) -> std::path::PathBuf {
    let path = tools::scratch("tshark").join("samples.pcap");
    let mut w = PcapWriter::new(File::create(&path).unwrap()).unwrap();
    for (i, s) in samples(cp).iter().enumerate() {
        w.write_packet(i as u64 * 1000, &s.bytes).unwrap();
    }
    path
}

#[test]
fn tshark_agrees_with_our_fields_and_finds_nothing_malformed() {
    if !tools::require("tshark", &["--version"]) {
        return;
    }
    let cp = CodePoints::default();
    let pcap = write_samples(&cp);
    let pcap = pcap.to_str().unwrap();
    tools::assert_nothing_malformed(pcap, &[]);
    let packets: Vec<_> = samples(&cp)
        .iter()
        .map(|s| decode(&s.bytes, &cp, true))
        .collect();
    for (i, d) in packets.iter().enumerate() {
        assert!(
            d.errors.is_empty(),
            "packet {}: our decoder reports {:?}",
            i + 1,
            d.errors
        );
    }
    let skip: Vec<&str> = NOT_COMPARABLE.iter().map(|(f, _)| *f).collect();
    let (compared, names) = tools::compare_with_tshark(pcap, &[], &packets, &skip);
    assert!(names > 100, "only {names} shared field names");
    eprintln!("tshark agreed on {compared} values over {names} field names");
}
