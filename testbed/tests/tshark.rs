//! tshark must decode every packet of our reference set with no malformed
//! packet and no expert error, and report the same value as our decoder for
//! every field name we share with it.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::process::Command;

use common::wire::packet::decode;
use common::wire::{CodePoints, FieldValue};
use testbed::pcap::PcapWriter;
use testbed::samples::samples;

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

fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Our value in tshark's `-T fields` spelling.
fn ours(v: &FieldValue) -> String {
    match v {
        FieldValue::Num(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// tshark prints numbers in decimal or 0x-hex, booleans as 1/0 or
/// True/False, bytes with or without colons.
fn normalise(v: &str) -> String {
    let v = v.trim();
    if let Some(h) = v.strip_prefix("0x") {
        if let Ok(n) = u64::from_str_radix(h, 16) {
            return n.to_string();
        }
    }
    match v {
        // An empty byte string.
        "<MISSING>" | "<missing>" => String::new(),
        "True" => "1".into(),
        "False" => "0".into(),
        _ if v.contains(':')
            && v.split(':')
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())) =>
        {
            v.replace(':', "")
        }
        _ => match v.parse::<std::net::IpAddr>() {
            Ok(a) => a.to_string(),
            Err(_) => v.to_lowercase(),
        },
    }
}

#[test]
fn tshark_agrees_with_our_fields_and_finds_nothing_malformed() {
    if !tools::require("tshark", &["--version"]) {
        return;
    }
    let cp = CodePoints::default();
    let pcap = write_samples(&cp);
    let pcap = pcap.to_str().unwrap();

    let bad = tshark(&[
        "-r",
        pcap,
        "-Y",
        "_ws.malformed || _ws.expert.severity >= 8388608",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    ]);
    assert_eq!(
        bad.trim(),
        "",
        "tshark found malformed packets or expert errors (frame, message)"
    );

    let known: BTreeSet<String> = tshark(&["-G", "fields"])
        .lines()
        .filter_map(|l| l.split('\t').nth(2).map(str::to_owned))
        .collect();
    let skip: BTreeSet<&str> = NOT_COMPARABLE.iter().map(|(f, _)| *f).collect();
    let packets: Vec<_> = samples(&cp)
        .iter()
        .map(|s| decode(&s.bytes, &cp, true))
        .collect();
    let names: Vec<String> = packets
        .iter()
        .flat_map(|d| d.fields.entries.iter().map(|(n, _)| n.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|n| known.contains(n) && !skip.contains(n.as_str()))
        .collect();
    assert!(names.len() > 100, "only {} shared field names", names.len());

    let mut args = vec![
        "-r",
        pcap,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-E",
        "separator=\t",
    ];
    for n in &names {
        args.extend(["-e", n.as_str()]);
    }
    let out = tshark(&args);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), packets.len());
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for (i, (row, d)) in rows.iter().zip(&packets).enumerate() {
        assert!(
            d.errors.is_empty(),
            "packet {}: our decoder reports {:?}",
            i + 1,
            d.errors
        );
        let theirs: BTreeMap<&str, Vec<String>> = names
            .iter()
            .map(String::as_str)
            .zip(row.split('\t'))
            .map(|(n, v)| {
                (
                    n,
                    if v.is_empty() {
                        vec![]
                    } else {
                        v.split('|').map(normalise).collect()
                    },
                )
            })
            .collect();
        for n in &names {
            let mine: Vec<String> = d
                .fields
                .get(n)
                .into_iter()
                .map(|v| normalise(&ours(v)))
                .collect();
            if mine.is_empty() {
                continue;
            }
            compared += mine.len();
            if theirs[n.as_str()] != mine {
                mismatches.push(format!(
                    "packet {} {n}: ours {mine:?}, tshark {:?}",
                    i + 1,
                    theirs[n.as_str()]
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    eprintln!(
        "tshark agreed on {compared} values over {} field names",
        names.len()
    );
}
