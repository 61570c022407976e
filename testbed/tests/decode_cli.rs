//! `testbed decode` as a user runs it: hex in, one JSON object a packet out.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::process::Command;

use serde_json::Value;

// scapy 2.5: IPv6(src=COA, dst=CN)/IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])/
// MIP6MH_BU(seq=7, flags="A", mhtime=100, options=[AltCoA, NI(3,4), BAD])
const BU_HAO: &str = "6000000000503c4020010db800020000000000000000001020010db8000300000000000000000001870201020000c91020010db80001000000000000000001003b06050082390007800000640100031020010db800020000000000000000001004040003000401020000050c0102030405060708090a0b0c";

fn run(args: &[&str], stdin: &str) -> Vec<Value> {
    tools::json_lines(env!("CARGO_BIN_EXE_testbed"), args, stdin)
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

/// A BU with a HAO from the care-of address, sealed with NULL +
/// HMAC-SHA-256-128 on SPI 0x201 and key 0x2a2a….
fn esp_bu() -> Vec<u8> {
    use common::ipsec::{
        AddressPair, Algorithm, Ipsec, Mode, Prefix, SaKeys, SaPairSpec, Selector,
    };
    let plain = hex::decode(BU_HAO).unwrap();
    let home: std::net::IpAddr = "2001:db8:1::100".parse().unwrap();
    let cn: std::net::IpAddr = "2001:db8:3::1".parse().unwrap();
    let sel = Selector::mobility(Prefix::host(home), Prefix::host(cn), &[]);
    let spec = SaPairSpec::new(
        AddressPair {
            local: home,
            peer: cn,
        },
        Mode::Transport,
        Algorithm::NullSha256,
        sel.clone(),
        SaKeys {
            spi: 0x202,
            key: vec![0x2b; 32],
        },
        SaKeys {
            spi: 0x201,
            key: vec![0x2a; 32],
        },
    );
    let mut ipsec = Ipsec::default();
    ipsec
        .add_protected_pair(common::time::Instant::ZERO, &spec)
        .unwrap();
    let mut wire = Vec::new();
    ipsec
        .outbound(common::time::Instant::ZERO, &plain, &mut wire)
        .unwrap();
    wire
}

#[test]
fn decrypts_esp_with_sa_specs_and_reports_a_bad_icv() {
    let sa = format!(
        "spi=0x201,enc=null,integ=sha256,integ-key={}",
        "2a".repeat(32)
    );
    let wire = esp_bu();
    let mut bad = wire.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let v = run(
        &["decode", "--sa", &sa],
        &format!("{}\n{}\n", hex::encode(&wire), hex::encode(&bad)),
    );
    let f = &v[0]["fields"];
    assert_eq!(v[0]["errors"], serde_json::json!([]));
    assert_eq!(f["esp.spi"], 0x201);
    assert_eq!(f["esp.protocol"], 135);
    assert_eq!(f["esp.pad_len"], 2);
    assert_eq!(f["mip6.bu.seqnr"], 7);
    assert_eq!(f["ipv6.opt.mipv6.home_address"], "2001:db8:1::100");
    assert!(
        v[0]["summary"]
            .as_str()
            .unwrap()
            .contains("{decrypted: MH BU seq=7"),
        "{}",
        v[0]["summary"]
    );
    assert_eq!(v[1]["errors"], serde_json::json!(["bad checksum: esp icv"]));
    assert!(v[1]["fields"].get("mip6.bu.seqnr").is_none());
    // Without the key the body stays opaque and nothing is an error.
    let v = run(&["decode", "--hex", &hex::encode(&wire)], "");
    assert_eq!(v[0]["errors"], serde_json::json!([]));
    assert!(v[0]["fields"].get("esp.pad_len").is_none());
}

#[test]
fn a_bad_sa_spec_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args([
            "decode",
            "--sa",
            "spi=1,enc=aes128gcm16,enc-key=00",
            "--hex",
            "00",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "testbed: --sa spi=1,enc=aes128gcm16,enc-key=00: aes128gcm16 needs a 20-byte key, got 1"
    );
}

// scapy 2.5: the same BU with options=[AltCoA, MIP6OptMobNetPrefix(prefix=
// "2001:db8:99::", plen=48)]: RFC 3963's option, 8n+4 aligned, which we do
// not model.
const BU_MNP: &str = "6000000000503c4020010db800020000000000000000001020010db8000300000000000000000001870201020000c91020010db80001000000000000000001003b0605007ae60007800000640100031020010db8000200000000000000000010010200000612003020010db8009900000000000000000000";

// REQ MIP-BASE
#[test]
fn an_option_we_do_not_model_keeps_its_alignment_and_bytes() {
    let v = run(&["decode", "--reencode", "--hex", BU_MNP], "");
    assert_eq!(v[0]["errors"], serde_json::json!([]));
    assert_eq!(v[0]["fields"]["mip6.unknown_option.type"], 6);
    assert_eq!(v[0]["reencoded"], BU_MNP);
}

// scapy 2.5: MIP6MH_BU(nh=6, seq=7, flags="A", mhtime=100,
// options=[AltCoA]) behind the HAO: a Payload Proto of TCP.
const BU_PROTO_6: &str = "6000000000383c4020010db800020000000000000000001020010db8000300000000000000000001870201020000c91020010db800010000000000000000010006030500e5970007800000640100031020010db8000200000000000000000010";

// REQ MIP-BASE
#[test]
fn a_bad_payload_proto_is_reported_and_the_message_still_shown() {
    let v = run(&["decode", "--hex", BU_PROTO_6], "");
    assert_eq!(
        v[0]["errors"],
        serde_json::json!(["bad value: mh payload proto"])
    );
    let f = &v[0]["fields"];
    assert_eq!(f["mip6.proto"], 6);
    assert_eq!(f["mip6.bu.seqnr"], 7);
    assert_eq!(f["mip6.acoa.acoa"], "2001:db8:2::10");
}
