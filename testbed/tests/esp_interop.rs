//! Our ESP against two implementations we did not write: scapy's
//! `SecurityAssociation` decrypts and verifies what we send and we do the
//! same with what it sends, for every transform, transport (with a Home
//! Address option ahead of ESP) and tunnel mode; tshark, given `esp_sa`
//! rows, verifies our ICVs and dissects the inner packets to the same
//! fields as `testbed decode --sa`. A flipped byte fails on every side.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on a setup error")]

mod tools;

use std::fs::File;
use std::net::Ipv6Addr;

use common::ipsec::{
    AddressPair, Algorithm, EspKeyring, Inbound, Ipsec, IpsecDrop, Mode, Outbound, Prefix, SaKeys,
    SaPairSpec, Selector,
};
use common::time::Instant;
use common::wire::ext::ExtHeaderRepr;
use common::wire::mh::{BuFlags, MhMessage, MhRepr};
use common::wire::packet::{decode_with, PacketRepr, UpperRepr};
use common::wire::{CodePoints, Icmpv6Repr, MhType, WireError};
use serde_json::{json, Value};
use testbed::tools::pcap::PcapWriter;
use testbed::tools::samples::{CN, COA, HA, HOA};

const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scapy_esp.py");
const T0: Instant = Instant::ZERO;
/// SPI of the direction we test (sender → receiver).
const SPI: u32 = 0x201;

fn v6(src: Ipv6Addr, dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>, upper: UpperRepr) -> Vec<u8> {
    PacketRepr::ipv6(src, dst, ext, upper).to_bytes(&CodePoints::default())
}

/// The packet each mode carries: a BU from the care-of address with a HAO
/// (transport, MN → CN), or a ping from the home address (tunnel, MN → HA).
fn plaintext(mode: Mode, n: u16) -> Vec<u8> {
    match mode {
        Mode::Transport => {
            let hao = ExtHeaderRepr::home_address(HOA);
            let bu = MhRepr {
                message: MhMessage::BindingUpdate {
                    seq: n,
                    flags: BuFlags(BuFlags::A | BuFlags::H),
                    lifetime: 100,
                },
                options: vec![],
            };
            v6(COA, CN, vec![hao], UpperRepr::Mobility(bu))
        }
        Mode::Tunnel => {
            let mut body = vec![0, 1];
            body.extend_from_slice(&n.to_be_bytes());
            body.extend_from_slice(b"esp interop");
            let echo = Icmpv6Repr {
                msg_type: 128,
                code: 0,
                body,
            };
            v6(HOA, CN, vec![], UpperRepr::Icmpv6(echo))
        }
    }
}

fn key(alg: Algorithm, seed: u8) -> Vec<u8> {
    (0..alg.key_len() as u8)
        .map(|i| i.wrapping_mul(13) ^ seed)
        .collect()
}

/// A sender and a receiver sharing one SA pair; SPI 0x201 goes sender →
/// receiver with `key(alg, 1)`.
struct Endpoints {
    sender: Ipsec,
    receiver: Ipsec,
    alg: Algorithm,
    mode: Mode,
    esn: bool,
}

impl Endpoints {
    fn new(alg: Algorithm, mode: Mode, esn: bool) -> Self {
        let (a, b) = match mode {
            Mode::Transport => (HOA, CN),
            Mode::Tunnel => (COA, HA),
        };
        let node = |local: Ipv6Addr, peer: Ipv6Addr, sends: bool| {
            let (sel_l, sel_r) = match (mode, sends) {
                (Mode::Transport, _) => (local, peer),
                (Mode::Tunnel, true) => (HOA, CN),
                (Mode::Tunnel, false) => (CN, HOA),
            };
            let selector = match mode {
                Mode::Transport => Selector::mobility(
                    Prefix::host(sel_l.into()),
                    Prefix::host(sel_r.into()),
                    &[MhType::BindingUpdate.into(), MhType::BindingAck.into()],
                ),
                Mode::Tunnel => {
                    Selector::between(Prefix::host(sel_l.into()), Prefix::host(sel_r.into()))
                }
            };
            let forward = SaKeys {
                spi: SPI,
                key: key(alg, 1),
            };
            let back = SaKeys {
                spi: 0x202,
                key: key(alg, 2),
            };
            let (inbound, outbound) = if sends {
                (back, forward)
            } else {
                (forward, back)
            };
            let addresses = AddressPair {
                local: local.into(),
                peer: peer.into(),
            };
            let mut spec =
                SaPairSpec::new(addresses, mode, alg, selector.clone(), inbound, outbound);
            spec.esn = esn;
            let mut ipsec = Ipsec::default();
            ipsec.add_protected_pair(T0, &spec).unwrap();
            ipsec
        };
        Endpoints {
            sender: node(a, b, true),
            receiver: node(b, a, false),
            alg,
            mode,
            esn,
        }
    }

    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let r = self.sender.outbound(T0, plain, &mut out).unwrap();
        assert!(matches!(r, Outbound::Protected { .. }));
        out
    }

    fn open(&mut self, wire: &[u8]) -> Result<Vec<u8>, IpsecDrop> {
        let mut out = Vec::new();
        let r = self.receiver.inbound(T0, wire, &mut out)?;
        assert!(matches!(r, Inbound::Decrypted { depth: 1, .. }));
        Ok(out)
    }

    fn scapy_request(&self, packet: &[u8]) -> Value {
        json!({
            "spi": SPI,
            "alg": self.alg.keyword(),
            "key": hex::encode(key(self.alg, 1)),
            "mode": if self.mode == Mode::Transport { "transport" } else { "tunnel" },
            "esn": self.esn,
            "packet": hex::encode(packet),
        })
    }

    fn label(&self) -> String {
        format!(
            "{} {:?}{}",
            self.alg,
            self.mode,
            if self.esn { " esn" } else { "" }
        )
    }
}

/// Every transform in both modes, and the AEADs with ESN too (scapy leaves
/// the ESN bits out of its ESP HMAC, so NULL+HMAC with ESN has no oracle).
fn cases() -> Vec<Endpoints> {
    let mut v = Vec::new();
    for alg in Algorithm::ALL {
        for mode in [Mode::Transport, Mode::Tunnel] {
            v.push(Endpoints::new(alg, mode, false));
            if alg.is_confidential() {
                v.push(Endpoints::new(alg, mode, true));
            }
        }
    }
    v
}

fn scapy(mode: &str, requests: &[Value]) -> Vec<Value> {
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let answers = tools::python_lines(PYTHON, SCRIPT, mode, &input);
    assert_eq!(answers.len(), requests.len());
    answers
}

fn flip(mut p: Vec<u8>) -> Vec<u8> {
    let n = p.len();
    p[n - 20] ^= 0x04;
    p
}

// REQ ESP: RFC 4303 §2, §3.3 as scapy's SecurityAssociation reads them.
#[test]
fn scapy_decrypts_and_verifies_our_esp() {
    if !tools::require(PYTHON, &["-c", "import cryptography, scapy.layers.ipsec"]) {
        return;
    }
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for mut c in cases() {
        for n in 0..3 {
            let plain = plaintext(c.mode, n);
            let wire = c.seal(&plain);
            requests.push(c.scapy_request(&wire));
            expected.push((c.label(), Some(plain)));
        }
        let wire = flip(c.seal(&plaintext(c.mode, 9)));
        requests.push(c.scapy_request(&wire));
        expected.push((c.label(), None));
    }
    let answers = scapy("decrypt", &requests);
    for ((label, plain), a) in expected.iter().zip(&answers) {
        match plain {
            Some(p) => {
                assert_eq!(a["ok"], true, "{label}: {a}");
                assert_eq!(a["plain"].as_str().unwrap(), hex::encode(p), "{label}");
            }
            None => {
                assert_eq!(a["ok"], false, "{label}: a flipped byte must fail");
                assert!(a["error"].as_str().unwrap().contains("ICV"), "{label}: {a}");
            }
        }
    }
    eprintln!("scapy verified {} of our ESP packets", answers.len());
}

// REQ ESP: RFC 4303 §3.4 on scapy's packets.
#[test]
fn we_decrypt_and_verify_scapys_esp() {
    if !tools::require(PYTHON, &["-c", "import cryptography, scapy.layers.ipsec"]) {
        return;
    }
    let mut cases = cases();
    let mut requests = Vec::new();
    for c in &cases {
        // With ESN, scapy's numbers cross 2^32 and we must follow.
        let first: u64 = if c.esn { (1 << 32) - 2 } else { 1 };
        for i in 0..5u16 {
            let mut r = c.scapy_request(&plaintext(c.mode, i));
            r["seq"] = json!(first + u64::from(i));
            r["tunnel_src"] = json!(COA.to_string());
            r["tunnel_dst"] = json!(HA.to_string());
            requests.push(r);
        }
    }
    let answers = scapy("encrypt", &requests);
    let mut opened = 0;
    for (c, chunk) in cases.iter_mut().zip(answers.chunks(5)) {
        for (i, a) in chunk.iter().enumerate() {
            assert_eq!(a["ok"], true, "{}: {a}", c.label());
            let wire = hex::decode(a["esp"].as_str().unwrap()).unwrap();
            if i == 4 {
                // A flipped byte fails the ICV, and is counted.
                assert_eq!(
                    c.open(&flip(wire)),
                    Err(IpsecDrop::IcvFailure),
                    "{}",
                    c.label()
                );
                assert_eq!(c.receiver.stats().dropped(IpsecDrop::IcvFailure), 1);
                continue;
            }
            let got = c
                .open(&wire)
                .unwrap_or_else(|e| panic!("{} packet {i}: {e}", c.label()));
            assert_eq!(got, plaintext(c.mode, i as u16), "{}", c.label());
            // Replaying scapy's packet is caught.
            assert_eq!(c.open(&wire), Err(IpsecDrop::Replayed));
            opened += 1;
        }
    }
    eprintln!("we verified {opened} of scapy's ESP packets");
}

/// `testbed decode --sa` spelling of the sender's SA.
fn sa_spec(alg: Algorithm) -> String {
    let k = hex::encode(key(alg, 1));
    match alg {
        Algorithm::NullSha256 => format!("spi={SPI:#x},enc=null,integ=sha256,integ-key={k}"),
        _ => format!("spi={SPI:#x},enc={},enc-key={k}", alg.keyword()),
    }
}

/// tshark's `esp_sa` row for the sender's SA (tshark 4.0 has no ChaCha20).
fn esp_sa_row(alg: Algorithm) -> String {
    let k = hex::encode(key(alg, 1));
    match alg {
        Algorithm::NullSha256 => {
            format!(
                r#"uat:esp_sa:"IPv6","*","*","{SPI:#010x}","NULL","","HMAC-SHA-256-128 [RFC4868]","0x{k}""#
            )
        }
        _ => format!(
            r#"uat:esp_sa:"IPv6","*","*","{SPI:#010x}","AES-GCM with 16 octet ICV [RFC4106]","0x{k}","NULL","""#
        ),
    }
}

// REQ ESP: the ICV and trailer (RFC 4303 §2.7, §2.8) as tshark checks them.
#[test]
fn tshark_verifies_our_icvs_and_dissects_the_inner_packets() {
    if !tools::require("tshark", &["--version"]) {
        return;
    }
    let cp = CodePoints::default();
    for alg in [
        Algorithm::NullSha256,
        Algorithm::Aes128Gcm16,
        Algorithm::Aes256Gcm16,
    ] {
        let mut packets = Vec::new();
        for mode in [Mode::Transport, Mode::Tunnel] {
            let mut c = Endpoints::new(alg, mode, false);
            packets.push(c.seal(&plaintext(mode, 7)));
            packets.push(c.seal(&plaintext(mode, 8)));
            packets.push(flip(c.seal(&plaintext(mode, 9))));
        }
        let path = tools::scratch(&format!("esp-{alg}")).join("esp.pcap");
        let mut w = PcapWriter::new(File::create(&path).unwrap()).unwrap();
        for (i, p) in packets.iter().enumerate() {
            w.write_packet(i as u64 * 1000, p).unwrap();
        }
        drop(w);
        let pcap = path.to_str().unwrap();
        let row = esp_sa_row(alg);
        let opts = [
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
            "-o",
            "esp.do_esp_sequence_analysis:FALSE",
            "-o",
            row.as_str(),
        ];
        tools::assert_nothing_malformed(pcap, &opts);
        let mut args = vec!["-r", pcap];
        args.extend_from_slice(&opts);
        args.extend([
            "-T",
            "fields",
            "-e",
            "esp.icv_good",
            "-e",
            "esp.icv_bad",
            "-e",
            "mip6.mhtype",
            "-e",
            "icmpv6.type",
        ]);
        let verdicts: Vec<String> = tools::tshark(&args).lines().map(str::to_owned).collect();
        assert_eq!(
            verdicts,
            [
                "1\t0\t5\t",
                "1\t0\t5\t",
                "0\t1\t5\t",
                "1\t0\t\t128",
                "1\t0\t\t128",
                "0\t1\t\t128"
            ],
            "{alg}: ICV good/bad, inner MH type, inner ICMPv6 type"
        );

        let mut keys = EspKeyring::default();
        keys.add_spec(&sa_spec(alg)).unwrap();
        let decoded: Vec<_> = packets
            .iter()
            .map(|p| decode_with(p, &cp, true, Some(&keys)))
            .collect();
        for (i, d) in decoded.iter().enumerate() {
            let want: &[WireError] = if i % 3 == 2 {
                &[WireError::BadChecksum("esp icv")]
            } else {
                &[]
            };
            assert_eq!(d.errors, want, "{alg} packet {i}");
        }
        // The flipped packets decrypt to nothing for us and to junk for
        // tshark: compare the good ones only.
        let good: Vec<_> = decoded
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 2)
            .map(|(_, d)| d)
            .collect();
        let good_path = tools::scratch(&format!("esp-{alg}-good")).join("esp.pcap");
        let mut w = PcapWriter::new(File::create(&good_path).unwrap()).unwrap();
        for (i, p) in packets.iter().enumerate().filter(|(i, _)| i % 3 != 2) {
            w.write_packet(i as u64 * 1000, p).unwrap();
        }
        drop(w);
        let (compared, names) =
            tools::compare_with_tshark(good_path.to_str().unwrap(), &opts, &good, &[]);
        assert!(names >= 30, "{alg}: only {names} shared field names");
        eprintln!("{alg}: tshark agreed on {compared} values over {names} field names");
    }
}
