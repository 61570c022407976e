//! `testbed decode` as a user runs it: hex in, one JSON object a packet out.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

// scapy 2.5: IPv6(src=COA, dst=CN)/IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])/
// MIP6MH_BU(seq=7, flags="A", mhtime=100, options=[AltCoA, NI(3,4), BAD])
const BU_HAO: &str = "6000000000503c4020010db800020000000000000000001020010db8000300000000000000000001870201020000c91020010db80001000000000000000001003b06050082390007800000640100031020010db800020000000000000000001004040003000401020000050c0102030405060708090a0b0c";

fn run(args: &[&str], stdin: &str) -> Vec<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn decodes_hex_with_wireshark_names_and_reencodes() {
    let v = run(&["decode", "--reencode", "--hex", BU_HAO], "");
    assert_eq!(v.len(), 1);
    let f = &v[0]["fields"];
    assert_eq!(f["ipv6.src"], "2001:db8:2::10");
    assert_eq!(f["ipv6.opt.mipv6.home_address"], "2001:db8:1::100");
    assert_eq!(f["mip6.mhtype"], 5);
    assert_eq!(f["mip6.bu.seqnr"], 7);
    assert_eq!(f["mip6.bu.a_flag"], 1);
    assert_eq!(f["mip6.ni.hni"], 3);
    assert_eq!(f["mip6.bad.auth"], "0102030405060708090a0b0c");
    assert_eq!(v[0]["errors"], serde_json::json!([]));
    assert_eq!(v[0]["reencoded"], BU_HAO);
}

#[test]
fn stdin_lines_repeated_fields_and_errors() {
    let mut bad = hex::decode(BU_HAO).unwrap();
    *bad.last_mut().unwrap() ^= 1;
    // A tunnelled packet repeats ipv6.src: outer then inner.
    let tunnelled = {
        let inner = hex::decode(BU_HAO).unwrap();
        let mut outer = hex::decode(
            "60000000000029400000000000000000000000000000000100000000000000000000000000000002",
        )
        .unwrap();
        outer[4..6].copy_from_slice(&(inner.len() as u16).to_be_bytes());
        outer.extend_from_slice(&inner);
        outer
    };
    let input = format!("{}\n\nzz\n{}\n", hex::encode(&bad), hex::encode(&tunnelled));
    let v = run(&["decode"], &input);
    assert_eq!(v.len(), 3);
    assert_eq!(
        v[0]["errors"],
        serde_json::json!(["bad checksum: mobility header"])
    );
    assert_eq!(
        v[0]["fields"]["mip6.bu.seqnr"], 7,
        "decoded as far as it goes"
    );
    assert!(v[1]["errors"][0].as_str().unwrap().starts_with("bad hex"));
    assert_eq!(
        v[2]["fields"]["ipv6.src"],
        serde_json::json!(["::1", "2001:db8:2::10"])
    );
    assert_eq!(v[2]["errors"], serde_json::json!([]));
}
