//! Two strongSwan charons (kernel-libipsec) in network namespaces set up a
//! tunnel through the `testbed::harness::{netns, strongswan}` harness:
//! the smoke test for the harness our own IKEv2 peer is tested with.
//!
//! Needs root, charon, swanctl, openssl, tcpdump, ping and tshark; skipped
//! without them, except under CI=true where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod tools;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testbed::harness::netns::{wait_until, Capture, Netns};
use testbed::harness::strongswan::{
    missing_prerequisites, tshark, Auth, Charon, CharonConfig, ChildConfig, Ed25519Key, IkeSa, Role,
};

const A_OUTER: &str = "2001:db8:1::a";
const B_OUTER: &str = "2001:db8:1::b";
const A_INNER: &str = "2001:db8:a::1";
const B_INNER: &str = "2001:db8:b::1";

/// Wall time, only to report how long setup took.
#[expect(clippy::disallowed_methods, reason = "reports wall time")]
fn now() -> Instant {
    Instant::now()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// False (after saying why) when this machine cannot run the test; under
/// CI=true a missing prerequisite fails instead.
fn prerequisites_met() -> bool {
    tools::prerequisites_met(&missing_prerequisites())
}

/// A fresh directory for one test under the target's tmp dir.
fn scratch(name: &str) -> PathBuf {
    tools::scratch(&format!("strongswan/{name}"))
}

/// ns a (initiator) and ns b (responder), joined by veth va <-> vb
/// carrying the outer addresses; the inner (tunnelled) addresses on lo.
fn two_namespaces() -> (Netns, Netns) {
    let a = Netns::new("a").unwrap();
    let b = Netns::new("b").unwrap();
    Netns::veth_pair(&a, "va", &b, "vb").unwrap();
    a.add_address("va", &format!("{A_OUTER}/64")).unwrap();
    b.add_address("vb", &format!("{B_OUTER}/64")).unwrap();
    a.add_loopback_address(ip(A_INNER)).unwrap();
    b.add_loopback_address(ip(B_INNER)).unwrap();
    a.wait_ping(ip(A_OUTER), ip(B_OUTER), Duration::from_secs(5))
        .unwrap();
    (a, b)
}

/// Initiator and responder configurations with one tunnel child `net6`
/// between the inner addresses.
fn configs(auth_a: Auth, auth_b: Auth, ike: &str, esp: &str) -> (CharonConfig, CharonConfig) {
    let mut a = CharonConfig::new(Role::Initiator, "a.example", "b.example", auth_a);
    a.remote_addrs = vec![ip(B_OUTER)];
    a.children = vec![ChildConfig::tunnel(
        "net6",
        &format!("{A_INNER}/128"),
        &format!("{B_INNER}/128"),
    )];
    let mut b = CharonConfig::new(Role::Responder, "b.example", "a.example", auth_b);
    b.children = vec![ChildConfig::tunnel(
        "net6",
        &format!("{B_INNER}/128"),
        &format!("{A_INNER}/128"),
    )];
    for c in [&mut a, &mut b] {
        c.ike_proposals = ike.to_string();
        c.esp_proposals = esp.to_string();
    }
    (a, b)
}

/// Checks both sides agree on one ESTABLISHED IKE SA with an INSTALLED,
/// UDP-encapsulated tunnel child whose SPIs mirror each other.
fn assert_sas_match(a: &IkeSa, b: &IkeSa) {
    assert_eq!(a.state, "ESTABLISHED");
    assert_eq!(b.state, "ESTABLISHED");
    assert!(a.initiator && !b.initiator);
    assert_eq!((a.spi_i, a.spi_r), (b.spi_i, b.spi_r));
    assert_eq!(a.remote_host, Some(ip(B_OUTER)));
    assert_eq!(b.remote_host, Some(ip(A_OUTER)));
    assert_eq!(
        (a.local_id.as_str(), a.remote_id.as_str()),
        ("a.example", "b.example")
    );
    let (ca, cb) = (&a.children[0], &b.children[0]);
    for c in [ca, cb] {
        assert_eq!((c.name.as_str(), c.state.as_str()), ("net6", "INSTALLED"));
        assert_eq!(c.mode, "TUNNEL");
        assert!(c.encap, "libipsec always UDP-encapsulates");
    }
    assert_eq!((ca.spi_in, ca.spi_out), (cb.spi_out, cb.spi_in));
    assert_eq!(ca.local_ts, [format!("{A_INNER}/128")]);
    assert_eq!(ca.remote_ts, [format!("{B_INNER}/128")]);
}

/// Pings b's inner address from a's through the tunnel; at least one
/// reply.
fn ping_through_tunnel(a: &Netns) -> String {
    let out = a.ping(ip(A_INNER), ip(B_INNER), 3).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ping through the tunnel failed:\n{text}"
    );
    text
}

#[test]
fn charon_to_charon_psk_aes_gcm_tunnel_decrypted_by_tshark() {
    if !prerequisites_met() {
        return;
    }
    let started = now();
    let dir = scratch("psk_aes_gcm");
    let (ns_a, ns_b) = two_namespaces();
    let psk = Auth::Psk("mip6-test-psk-not-secret-0123456789".to_string());
    let (conf_a, conf_b) = configs(
        psk.clone(),
        psk,
        "aes256gcm16-prfsha256-x25519",
        "aes256gcm16",
    );
    let capture = Capture::start(&ns_b, "vb", &dir.join("vb.pcap")).unwrap();
    let charon_b = Charon::start(&ns_b, &dir.join("b"), conf_b).unwrap();
    let charon_a = Charon::start(&ns_a, &dir.join("a"), conf_a).unwrap();
    charon_b.load().unwrap();
    charon_a.load().unwrap();
    let setup = now();
    charon_a.initiate("net6").unwrap();
    let initiated = setup.elapsed();
    let sa_b = charon_b
        .wait_child_installed("net6", Duration::from_secs(10))
        .unwrap();
    let sa_a = charon_a.list_sas().unwrap().remove(0);
    assert_sas_match(&sa_a, &sa_b);

    let ping = ping_through_tunnel(&ns_a);
    let sa_a = charon_a.list_sas().unwrap().remove(0);
    assert!(
        sa_a.children[0].counter("packets-out").unwrap() >= 1,
        "no packet went out on the child SA: {sa_a:?}"
    );

    // A rekey started by the responder: charon-a, the CHILD_SA responder
    // now, logs its keys differently (registers the outbound SA first);
    // keys() must still get both generations right.
    let rekeyed = charon_b
        .rekey_child("net6", Duration::from_secs(10))
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "charon-a on the new CHILD SA",
        || {
            charon_a.list_sas().is_ok_and(|sas| {
                sas.iter()
                    .flat_map(|sa| &sa.children)
                    .any(|c| c.state == "INSTALLED" && c.spi_out == rekeyed.spi_in)
            })
        },
    )
    .unwrap();
    ping_through_tunnel(&ns_a);

    let keys = charon_a.keys().unwrap();
    let rows = keys.uat_rows();
    assert_eq!(rows.ikev2_decryption_table.len(), 1, "{keys:?}");
    assert_eq!(
        rows.esp_sa.len(),
        4,
        "two generations, two directions: {keys:?}"
    );
    assert!(rows.unsupported.is_empty(), "{:?}", rows.unsupported);
    // The responder derived the same keys.
    let keys_b = charon_b.keys().unwrap();
    assert_eq!(
        keys_b.uat_rows().ikev2_decryption_table,
        rows.ikev2_decryption_table
    );
    let mut esp_b = keys_b.uat_rows().esp_sa;
    let mut esp_a = rows.esp_sa.clone();
    esp_a.sort();
    esp_b.sort();
    assert_eq!(esp_a, esp_b);

    let pcap = capture.stop().unwrap();
    let out = tshark(
        &pcap,
        &rows,
        &[
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "frame.number",
            "-e",
            "isakmp.exchangetype",
            "-e",
            "isakmp.enc.decrypted",
            "-e",
            "esp.spi",
            "-e",
            "icmpv6.type",
            "-e",
            "ipv6.src",
            "-e",
            "_ws.malformed",
        ],
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    let ike_auth: Vec<_> = frames.iter().filter(|f| f[1] == "35").collect();
    assert_eq!(
        ike_auth.len(),
        2,
        "IKE_AUTH request and response:\n{stdout}"
    );
    for f in &ike_auth {
        assert!(!f[2].is_empty(), "IKE_AUTH not decrypted: {f:?}\n{stdout}");
    }
    // ESP frames whose inner ICMPv6 echo request/reply tshark decoded.
    let echoes = frames
        .iter()
        .filter(|f| !f[3].is_empty() && (f[4] == "128" || f[4] == "129"))
        .count();
    assert!(
        echoes >= 4,
        "too few decrypted echo requests/replies inside ESP:\n{stdout}"
    );
    // Every ESP frame, of both generations, decrypts to ICMPv6.
    let undecrypted: Vec<_> = frames
        .iter()
        .filter(|f| !f[3].is_empty() && f[4].is_empty())
        .collect();
    assert!(
        undecrypted.is_empty(),
        "ESP not decrypted: {undecrypted:?}\n{stdout}"
    );
    let generations: std::collections::BTreeSet<_> = frames
        .iter()
        .filter(|f| !f[3].is_empty())
        .map(|f| f[3])
        .collect();
    assert_eq!(generations.len(), 4, "ESP SPIs seen: {generations:?}");
    // The CREATE_CHILD_SA rekey exchange decrypts too.
    let rekey: Vec<_> = frames.iter().filter(|f| f[1] == "36").collect();
    assert_eq!(
        rekey.len(),
        2,
        "CREATE_CHILD_SA request and response:\n{stdout}"
    );
    assert!(rekey.iter().all(|f| !f[2].is_empty()), "{rekey:?}");
    let malformed: Vec<_> = frames.iter().filter(|f| !f[6].is_empty()).collect();
    assert!(malformed.is_empty(), "malformed frames: {malformed:?}");
    assert_sequence_draws_tsharks_ike(&pcap, &frames);
    // The verbose dissection says the same, with a verified ICV.
    let verbose = tshark(&pcap, &rows, &["-V", "-Y", "esp"]).unwrap();
    let verbose = String::from_utf8_lossy(&verbose.stdout);
    assert!(verbose.contains("Echo (ping) request"), "{verbose}");
    assert!(!verbose.contains("Malformed"), "{verbose}");
    assert!(!verbose.contains("[incorrect"), "an ICV failed:\n{verbose}");
    eprintln!(
        "psk/aes-gcm: swanctl initiate {initiated:?}, whole test {:?}\n{}",
        started.elapsed(),
        ping.lines().last().unwrap_or_default()
    );
}

/// `testbed sequence` on charon's capture, with the key log `tshark`
/// wrote beside it: as many arrows of each IKE exchange as tshark counts
/// (`frames`: its fields, the exchange type second), and every ESP frame
/// opened.
fn assert_sequence_draws_tsharks_ike(pcap: &std::path::Path, frames: &[Vec<&str>]) {
    let svg = pcap.with_extension("svg");
    let mut keys = pcap.as_os_str().to_owned();
    keys.push(".wireshark");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["sequence", "--pcap", pcap.to_str().unwrap(), "--keylog"])
        .arg(&keys)
        .args(["--name", &format!("{A_OUTER}=charon-a")])
        .args(["--name", &format!("{B_OUTER}=charon-b")])
        .args(["-o", svg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let drawn = |kind: &str| {
        doc.descendants()
            .filter(|n| {
                n.attribute("class") == Some("msg") && n.attribute("data-kind") == Some(kind)
            })
            .count()
    };
    let mut total = 0;
    for (kind, code) in [
        ("IKE_SA_INIT", "34"),
        ("IKE_AUTH", "35"),
        ("CREATE_CHILD_SA", "36"),
        ("INFORMATIONAL", "37"),
    ] {
        let want = frames.iter().filter(|f| f[1] == code).count();
        assert_eq!(drawn(kind), want, "{kind} arrows");
        total += want;
    }
    assert!(total >= 6, "{total} IKE messages");
    assert_eq!(drawn("ESP"), 0, "ESP left opaque");
    // charon's IKE SA keys open its SK payloads: each IKE_AUTH names its
    // identity, each rekey says so.
    let titles = |kind: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| {
                n.attribute("class") == Some("msg") && n.attribute("data-kind") == Some(kind)
            })
            .filter_map(|n| n.children().find(|c| c.has_tag_name("title"))?.text())
            .map(str::to_string)
            .collect()
    };
    let auth = titles("IKE_AUTH");
    assert!(
        auth.iter()
            .all(|t| t.contains(" IDi") || t.contains(" IDr")),
        "{auth:?}"
    );
    let rekeys = titles("CREATE_CHILD_SA");
    let requests: Vec<_> = rekeys.iter().filter(|t| t.contains(" req ")).collect();
    assert!(!requests.is_empty(), "{rekeys:?}");
    assert!(
        requests.iter().all(|t| t.contains("REKEY_SA")),
        "{rekeys:?}"
    );
}

#[test]
fn charon_to_charon_ed25519_chacha20poly1305_tunnel() {
    if !prerequisites_met() {
        return;
    }
    let started = now();
    let dir = scratch("ed25519_chacha");
    let key_a = Ed25519Key::generate(&dir.join("keys"), "a").unwrap();
    let key_b = Ed25519Key::generate(&dir.join("keys"), "b").unwrap();
    let pem = std::fs::read_to_string(&key_a.private_pem).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let (ns_a, ns_b) = two_namespaces();
    let (conf_a, conf_b) = configs(
        Auth::Ed25519 {
            local: key_a.clone(),
            remote_public_pem: key_b.public_pem.clone(),
        },
        Auth::Ed25519 {
            local: key_b,
            remote_public_pem: key_a.public_pem,
        },
        "chacha20poly1305-prfsha256-x25519",
        "chacha20poly1305",
    );
    let charon_b = Charon::start(&ns_b, &dir.join("b"), conf_b).unwrap();
    let charon_a = Charon::start(&ns_a, &dir.join("a"), conf_a).unwrap();
    charon_b.load().unwrap();
    charon_a.load().unwrap();
    charon_a.initiate("net6").unwrap();
    let sa_b = charon_b
        .wait_child_installed("net6", Duration::from_secs(10))
        .unwrap();
    let sa_a = charon_a.list_sas().unwrap().remove(0);
    assert_sas_match(&sa_a, &sa_b);
    assert_eq!(sa_a.fields["encr-alg"], "CHACHA20_POLY1305");
    assert_eq!(sa_a.children[0].fields["encr-alg"], "CHACHA20_POLY1305");
    assert!(
        charon_a
            .log()
            .unwrap()
            .contains("authentication of 'b.example' with ED25519 successful"),
        "the responder did not authenticate with Ed25519"
    );
    ping_through_tunnel(&ns_a);
    // Keys come out all the same; tshark 4.0 has no ChaCha20 decryptor,
    // but our own decoder takes them.
    let keys = charon_a.keys().unwrap();
    let rows = keys.uat_rows();
    assert!(rows.esp_sa.is_empty() && rows.ikev2_decryption_table.is_empty());
    assert_eq!(rows.unsupported.len(), 3, "{rows:?}");
    assert_eq!(keys.esp.len(), 2);
    for k in &keys.esp {
        assert_eq!(k.encr_key.len(), 36, "256-bit key + 4-byte salt");
        assert!(k
            .decode_spec()
            .unwrap()
            .contains("enc=chacha20poly1305,enc-key="));
    }
    eprintln!("ed25519/chacha: whole test {:?}", started.elapsed());
}

#[test]
fn a_panicking_test_leaves_no_namespace_or_process_behind() {
    if !prerequisites_met() {
        return;
    }
    let dir = scratch("panic_cleanup");
    let left = std::sync::Mutex::new((Vec::new(), Vec::new()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (ns_a, ns_b) = two_namespaces();
        let psk = Auth::Psk("panic".to_string());
        let (_, conf_b) = configs(
            psk.clone(),
            psk,
            "aes256gcm16-prfsha256-x25519",
            "aes256gcm16",
        );
        let capture = Capture::start(&ns_a, "va", &dir.join("va.pcap")).unwrap();
        let charon_b = Charon::start(&ns_b, &dir.join("b"), conf_b).unwrap();
        let mut left = left.lock().unwrap();
        left.0 = vec![ns_a.name().to_string(), ns_b.name().to_string()];
        left.1 = vec![charon_b.pid()];
        drop(left);
        let _keep = capture;
        panic!("on purpose, with charon and tcpdump running");
    }));
    assert!(result.is_err());
    let (names, pids) = left.into_inner().unwrap();
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for name in &names {
        assert!(!list.contains(name.as_str()), "{name} still exists");
    }
    for pid in pids {
        assert!(
            std::fs::read_link(format!("/proc/{pid}/exe")).is_err(),
            "charon {pid} still runs"
        );
    }
}
