//! tshark must decode every packet of our reference set with no malformed
//! packet and no expert error, and report the same value as our decoder for
//! every field name we share with it. Neighbor Discovery fields must be
//! among those compared, and MAC addresses must be printed as tshark
//! prints them.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::collections::BTreeSet;
use std::fs::File;

use common::wire::packet::{decode, Decoded};
use common::wire::{CodePoints, FieldValue};
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

/// The Neighbor Discovery fields (RFC 4861 §4, RFC 6275 §7) the samples
/// must carry and tshark must know, so that they are compared.
const ND_FIELDS: &[&str] = &[
    "icmpv6.reserved",
    "icmpv6.nd.ra.cur_hop_limit",
    "icmpv6.nd.ra.flag",
    "icmpv6.nd.ra.flag.m",
    "icmpv6.nd.ra.flag.o",
    "icmpv6.nd.ra.flag.h",
    "icmpv6.nd.ra.flag.prf",
    "icmpv6.nd.ra.flag.p",
    "icmpv6.nd.ra.flag.rsv",
    "icmpv6.nd.ra.router_lifetime",
    "icmpv6.nd.ra.reachable_time",
    "icmpv6.nd.ra.retrans_timer",
    "icmpv6.nd.ns.target_address",
    "icmpv6.nd.na.flag",
    "icmpv6.nd.na.flag.r",
    "icmpv6.nd.na.flag.s",
    "icmpv6.nd.na.flag.o",
    "icmpv6.nd.na.flag.rsv",
    "icmpv6.nd.na.target_address",
    "icmpv6.opt.type",
    "icmpv6.opt.length",
    "icmpv6.opt.linkaddr",
    "icmpv6.opt.src_linkaddr",
    "icmpv6.opt.target_linkaddr",
    "icmpv6.opt.prefix.length",
    "icmpv6.opt.prefix.flag",
    "icmpv6.opt.prefix.flag.l",
    "icmpv6.opt.prefix.flag.a",
    "icmpv6.opt.prefix.flag.r",
    "icmpv6.opt.prefix.flag.reserved",
    "icmpv6.opt.prefix.valid_lifetime",
    "icmpv6.opt.prefix.preferred_lifetime",
    "icmpv6.opt.prefix",
    "icmpv6.opt.mtu",
    "icmpv6.opt.advertisement_interval",
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
    let known: BTreeSet<String> = tools::tshark(&["-G", "fields"])
        .lines()
        .filter_map(|l| l.split('\t').nth(2).map(str::to_owned))
        .collect();
    for name in ND_FIELDS {
        assert!(known.contains(*name), "tshark has no field {name}");
        assert!(
            packets.iter().any(|d| !d.fields.get(name).is_empty()),
            "no sample carries {name}"
        );
    }
    let macs = assert_macs_printed_as_tshark_does(pcap, &packets);
    let skip: Vec<&str> = NOT_COMPARABLE.iter().map(|(f, _)| *f).collect();
    let (compared, names) = tools::compare_with_tshark(pcap, &[], &packets, &skip);
    assert!(names > 100, "only {names} shared field names");
    eprintln!(
        "tshark agreed on {compared} values over {names} field names, {macs} MACs to the character"
    );
}

/// The shared comparison drops the colons of byte strings; MACs must also
/// read exactly as tshark writes them (`02:00:00:00:00:11`).
fn assert_macs_printed_as_tshark_does(pcap: &str, packets: &[Decoded]) -> usize {
    let names: Vec<String> = packets
        .iter()
        .flat_map(|d| &d.fields.entries)
        .filter(|(_, v)| matches!(v, FieldValue::Mac(_)))
        .map(|(n, _)| n.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(!names.is_empty(), "no MAC address among our fields");
    let columns: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = tools::tshark_fields(pcap, &[], &columns);
    let mut n = 0;
    for (i, (row, d)) in out.lines().zip(packets).enumerate() {
        for (name, theirs) in columns.iter().zip(row.split('\t')) {
            let ours: Vec<String> = d.fields.get(name).iter().map(|v| v.to_string()).collect();
            let theirs: Vec<&str> = theirs.split('|').filter(|v| !v.is_empty()).collect();
            assert_eq!(ours, theirs, "packet {} {name}", i + 1);
            n += ours.len();
        }
    }
    n
}
