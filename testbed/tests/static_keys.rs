//! Static keying from YAML, as shipped in `config/ipsec/`: the MN's and
//! the CN's files give a working, "suitable" SA pair, and mistakes are
//! refused with a message that says where.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

use common::ipsec::config::IpsecConfig;
use common::ipsec::{Inbound, Ipsec, Outbound};
use common::time::Instant;
use common::wire::ext::ExtHeaderRepr;
use common::wire::mh::{BuFlags, MhMessage, MhRepr};
use common::wire::packet::{PacketRepr, UpperRepr};
use common::wire::CodePoints;
use testbed::tools::samples::{CN, COA, HOA};

fn load(text: &str) -> Result<Ipsec, String> {
    let cfg: IpsecConfig = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    cfg.build(Instant::ZERO).map_err(|e| e.to_string())
}

fn shipped(name: &str) -> Ipsec {
    let path = format!("{}/../config/ipsec/{name}", env!("CARGO_MANIFEST_DIR"));
    load(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bu_from_coa() -> Vec<u8> {
    let bu = MhRepr {
        message: MhMessage::BindingUpdate {
            seq: 1,
            flags: BuFlags(BuFlags::A),
            lifetime: 60,
        },
        options: vec![],
    };
    let hao = ExtHeaderRepr::home_address(HOA);
    PacketRepr::ipv6(COA, CN, vec![hao], UpperRepr::Mobility(bu)).to_bytes(&CodePoints::default())
}

// REQ CN-2.5: the shipped configuration restricts the SAs to BU and BA.
#[test]
fn shipped_mn_and_cn_files_protect_bu_and_make_a_suitable_pair() {
    let mut mn = shipped("mn.yaml");
    let mut cn = shipped("cn.yaml");
    let bu = bu_from_coa();
    let mut wire = Vec::new();
    assert!(matches!(
        mn.outbound(Instant::ZERO, &bu, &mut wire),
        Ok(Outbound::Protected { .. })
    ));
    let mut plain = Vec::new();
    let Ok(Inbound::Decrypted { sa, .. }) = cn.inbound(Instant::ZERO, &wire, &mut plain) else {
        panic!("the CN did not open the MN's BU: {:?}", cn.stats());
    };
    assert_eq!(plain, bu);
    assert_eq!(cn.check_suitable(sa, HOA, CN), Ok(()));
    assert_eq!(cn.find_suitable(HOA, CN), Some(sa));
    // Lifetimes from the file: soft at 3000 s.
    assert_eq!(cn.poll_timeout(), Some(Instant::from_secs(3000)));
}

#[test]
fn mistakes_are_refused_with_where_and_why() {
    let good = std::fs::read_to_string(format!(
        "{}/../config/ipsec/cn.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for (from, to, why) in [
        ("aes128gcm16", "aes128", "sa_pairs[0]: unknown algorithm \"aes128\" (aes128gcm16, aes256gcm16, chacha20poly1305, null-sha256)"),
        ("mode: transport", "mode: beet", "sa_pairs[0]: unknown mode \"beet\" (transport, tunnel)"),
        ("0x000102030405060708090a0b0c0d0e0f10111213", "0x0001", "sa_pairs[0]: aes128gcm16 needs a 20-byte key, got 2"),
        ("protect: [0x202]", "protect: [0x999]", "policies[0]: no SA pair has outbound SPI 0x999"),
        ("mh_types: [bu, ba] }\n    replay", "mh_types: [bu, bx] }\n    replay", "sa_pairs[0]: unknown MH type \"bx\" (bu, ba, be, brr, hoti, coti, hot, cot)"),
        ("fallback: bypass", "fallback: allow", "fallback: unknown action \"allow\" (bypass, discard)"),
        ("replay_window: 1024", "replay_window: 100000", "sa_pairs[0]: replay window 100000 is larger than 65536"),
        ("spi: 0x201", "spi: 0", "sa_pairs[0]: SPI 0 is reserved (RFC 4303 §2.1)"),
        ("protocol: mobility, mh_types: [bu, ba] }\n    protect", "protocol: udp, mh_types: [bu, ba] }\n    protect", "policies[0]: mh_types needs protocol: mobility"),
    ] {
        assert!(good.contains(from), "{from}");
        let bad = good.replacen(from, to, 1);
        assert_eq!(load(&bad).err().as_deref(), Some(why), "{from} -> {to}");
    }
    let typo = good.replacen("replay_window", "replay_windw", 1);
    assert!(load(&typo)
        .unwrap_err()
        .contains("unknown field `replay_windw`"));
}
