//! The `ha` daemon against an independent peer: scapy
//! (cn/tests/scapy_peer.py) on the home link, in a namespace of its own
//! with a veth to the daemon's. scapy is the link's router (an RA for
//! 2001:db8:1::/64); it checks that the home agent does not answer for a
//! home address before a registration, then registers a mobile node with a
//! BU it seals itself under the static keys of config/ipsec/mn.yaml (the
//! MN → HA pair, SPI 0x101) and opens the BA (SPI 0x102) with its own ESP,
//! watching the home agent's DAD probe, its proxy Neighbor Advertisements
//! and answers; and with a second node ("the squatter") defending the
//! home address, BA 134. Then several hundred broken frames, and the
//! command line.
//!
//! The namespace tests need root, `ip`, /dev/net/tun and /usr/bin/python3
//! with scapy and cryptography: skipped without them, failed under CI=true.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on a setup error"
)]

#[path = "../../cn/tests/support/mod.rs"]
mod support;

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::*;
use testbed::harness::netns::Netns;

const BIN: &str = env!("CARGO_BIN_EXE_ha");
const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const HOME: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
/// Off the home link: the BA goes through the default router, scapy.
const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
/// config/ipsec/mn.yaml's pair with the home agent (ha.yaml mirrors it).
const MN_TO_HA: (u32, &str) = (0x101, "404142434445464748494a4b4c4d4e4f50515253");
const HA_TO_MN: (u32, &str) = (0x102, "606162636465666768696a6b6c6d6e6f70717273");
const SQUATTER_MAC: &str = "02:00:00:db:08:99";

fn config(dir: &Path) -> (PathBuf, PathBuf) {
    let control = dir.join("ha.sock");
    let cfg = write(
        dir,
        "ha.yaml",
        &format!(
            "address: {HA}\nhome_prefix: 2001:db8:1::/64\ninterface: ha0\n\
             mobile_nodes: [{HOME}]\nipsec: {CONFIG_DIR}/ipsec/ha.yaml\n\
             control: {}\nseed: 7\n",
            control.display()
        ),
    );
    (cfg, control)
}

#[test]
fn the_static_keys_are_those_of_the_shipped_files() {
    for file in ["mn.yaml", "ha.yaml"] {
        let y = std::fs::read_to_string(Path::new(CONFIG_DIR).join("ipsec").join(file)).unwrap();
        for (spi, key) in [MN_TO_HA, HA_TO_MN] {
            assert!(
                y.contains(&format!("spi: {spi:#x}, key: \"0x{key}\"")),
                "{file}"
            );
        }
    }
}

struct Lab {
    peer: Peer,
    ha: Daemon,
    cfg: PathBuf,
    ha_mac: String,
    router: Ipv6Addr,
    _peer_ns: Netns,
    _ha_ns: Netns,
}

/// The home agent past DAD of its address, scapy its default router
/// (answering NUD for itself with R=1), scapy holding the MN's SAs.
fn lab(name: &str) -> Lab {
    let dir = scratch(&format!("ha/{name}"));
    let ha_ns = daemon_netns("ha");
    let peer_ns = Netns::new("peer").unwrap();
    wire(&ha_ns, "ha0", &peer_ns, "pe0");
    let mut peer = Peer::start(&peer_ns, &["pe0"], &dir.join("scapy.log"));
    let (cfg, control) = config(&dir);
    let mut ha = Daemon::start(&ha_ns, BIN, &cfg, &control);
    let s = ha.wait_status(STEP, "2001:db8:1::1 to pass DAD", |s| {
        has_address(s, 0, HA, "preferred")
    });
    let ha_mac = iface(&s, 0)["mac"].as_str().unwrap().to_string();
    let router = link_local(peer.mac("pe0"));
    peer.request(
        json!({"op": "answer", "iface": "pe0", "address": router.to_string(),
                        "router": true}),
    );
    for (spi, key) in [MN_TO_HA, HA_TO_MN] {
        peer.request(json!({"op": "sa", "spi": spi, "alg": "aes128gcm16", "key": key}));
    }
    peer.send(
        "pe0",
        &[json!({"kind": "ra", "src": router.to_string(),
                  "prefixes": [{"prefix": "2001:db8:1::", "len": 64, "L": true, "A": true}]})],
    );
    ha.wait_status(STEP, "scapy as the default router", |s| {
        has_router(s, 0, router)
    });
    Lab {
        peer,
        ha,
        cfg,
        ha_mac,
        router,
        _peer_ns: peer_ns,
        _ha_ns: ha_ns,
    }
}

impl Lab {
    /// A resolution NS for the home agent's own address, which it answers:
    /// once its NA is here, everything sent before has been handled.
    /// Returns the frames from `since` up to that NA.
    fn barrier(&mut self, since: usize) -> Vec<Value> {
        let (group, mac) = solicited_node(HA);
        self.peer.send(
            "pe0",
            &[
                json!({"kind": "ns", "src": self.router.to_string(), "dst": group.to_string(),
                      "dst_mac": mac, "target": HA.to_string()}),
            ],
        );
        let na = self.peer.wait_frame(
            "pe0",
            since,
            STEP,
            "the NA for the home agent's address",
            |f| nd(f, "ICMPv6ND_NA", Some(HA)).is_some(),
        );
        // Solicited, from the target to the solicitor, with its MAC.
        let m = nd(&na, "ICMPv6ND_NA", Some(HA)).unwrap();
        assert_eq!(
            (m["S"].clone(), m["R"].clone()),
            (json!(1), json!(0)),
            "{m}"
        );
        let ip = wire_layer(&na, "IPv6").unwrap();
        assert_eq!(addr(&ip["dst"]), self.router, "{}", summary(&na));
        let upto = usize::try_from(na["index"].as_u64().unwrap()).unwrap();
        let (frames, _) = self.peer.frames("pe0", since);
        frames
            .into_iter()
            .filter(|f| f["index"].as_u64().unwrap() < upto as u64)
            .collect()
    }

    /// A DAD probe (from ::, no SLLA) and a resolution NS (from scapy, with
    /// its SLLA) for the home address.
    fn solicit_home(&mut self) {
        let (group, mac) = solicited_node(HOME);
        self.peer.send(
            "pe0",
            &[
                json!({"kind": "ns", "src": "::", "dst": group.to_string(), "dst_mac": mac,
                       "target": HOME.to_string()}),
                json!({"kind": "ns", "src": self.router.to_string(), "dst": group.to_string(),
                       "dst_mac": mac, "target": HOME.to_string()}),
            ],
        );
    }

    /// The first home registration: a BU from the care-of address with a
    /// HAO, A and H set, an Alternate CoA option, sealed by scapy under
    /// SPI 0x101.
    fn register(&mut self, seq: u16) {
        self.bu(seq, "AH", 100);
    }

    /// A BU under SPI 0x101 from the care-of address, HAO, Alternate CoA.
    fn bu(&mut self, seq: u16, flags: &str, lifetime: u16) {
        let ha_mac = self.ha_mac.clone();
        self.peer.send(
            "pe0",
            &[
                json!({"kind": "bu", "src": COA.to_string(), "dst": HA.to_string(),
                      "hoa": HOME.to_string(), "seq": seq, "flags": flags,
                      "lifetime": lifetime, "alt_coa": COA.to_string(), "spi": MN_TO_HA.0,
                      "dst_mac": ha_mac}),
            ],
        );
    }

    /// The home agent's DAD probe for the home address (RFC 6275
    /// §10.3.1): from ::, to the solicited-node group, no SLLA.
    fn dad_probe(&mut self, since: usize) -> Value {
        let probe = self.peer.wait_frame(
            "pe0",
            since,
            STEP,
            "the DAD probe for the home address",
            |f| nd(f, "ICMPv6ND_NS", Some(HOME)).is_some(),
        );
        let (group, mac) = solicited_node(HOME);
        let eth = wire_layer(&probe, "Ether").unwrap();
        assert_eq!(eth["src"], self.ha_mac, "{}", summary(&probe));
        assert_eq!(eth["dst"], mac, "{}", summary(&probe));
        let ip = wire_layer(&probe, "IPv6").unwrap();
        assert_eq!(
            addr(&ip["src"]),
            Ipv6Addr::UNSPECIFIED,
            "{}",
            summary(&probe)
        );
        assert_eq!(addr(&ip["dst"]), group, "{}", summary(&probe));
        assert_eq!(ip["hlim"], 255);
        assert!(
            wire_layer(&probe, "ICMPv6NDOptSrcLLAddr").is_none(),
            "a DAD probe has no SLLA: {}",
            summary(&probe)
        );
        assert!(checksums_ok(&probe), "{probe}");
        probe
    }

    /// The BA, opened by scapy: under SPI 0x102, to the care-of address
    /// through a type 2 routing header with the home address, via the
    /// router's MAC. Returns the frame and its MIP6MH_BA layer.
    fn ba(&mut self, since: usize) -> (Value, Value) {
        let f = self
            .peer
            .wait_frame("pe0", since, STEP, "the BA under ESP", |f| {
                wire_layer(f, "ESP").is_some()
            });
        let esp = wire_layer(&f, "ESP").unwrap();
        assert_eq!(esp["spi"], HA_TO_MN.0, "{}", summary(&f));
        assert!(f.get("decrypt_error").is_none(), "{f}");
        let eth = wire_layer(&f, "Ether").unwrap();
        assert_eq!(eth["src"], self.ha_mac);
        assert_eq!(eth["dst"], self.peer.mac("pe0"));
        let ip = wire_layer(&f, "IPv6").unwrap();
        assert_eq!(addr(&ip["src"]), HA);
        assert_eq!(addr(&ip["dst"]), COA);
        // RFC 3776 / our README: the routing header stays ahead of ESP.
        let rh = wire_layer(&f, "IPv6ExtHdrRouting").expect("RH2 before ESP");
        assert_eq!(rh["type"], 2, "{rh}");
        assert_eq!(rh["segleft"], 1, "{rh}");
        assert_eq!(rh["addresses"], json!([HOME.to_string()]), "{rh}");
        assert_eq!(rh["nh"], 50, "{rh}");
        let ba = opened_layer(&f, "MIP6MH_BA")
            .unwrap_or_else(|| panic!("no BA inside ESP: {}", summary(&f)))
            .clone();
        assert!(checksums_ok(&f), "{f}");
        (f, ba)
    }
}

fn time(f: &Value) -> f64 {
    f["time"].as_f64().unwrap()
}

#[test]
fn before_a_registration_the_home_agent_does_not_answer_for_the_home_address() {
    if !prerequisites(&[]) {
        return;
    }
    let mut lab = lab("quiet");
    let since = lab.peer.mark("pe0");
    lab.solicit_home();
    let before = lab.barrier(since);
    let answered: Vec<String> = before
        .iter()
        .filter(|f| nd(f, "ICMPv6ND_NA", Some(HOME)).is_some())
        .map(summary)
        .collect();
    assert!(answered.is_empty(), "NAs for {HOME}: {answered:?}");
    let s = lab.ha.status().unwrap();
    assert!(iface(&s, 0).get("proxied").is_none(), "{s}");
    assert!(s["status"].get("bindings").is_none(), "{s}");
}

#[test]
fn a_bu_scapy_seals_registers_after_dad_and_the_home_address_is_defended() {
    if !prerequisites(&[]) {
        return;
    }
    let mut lab = lab("register");
    let since = lab.peer.mark("pe0");
    lab.register(1);
    let probe = lab.dad_probe(since);
    let (ba_frame, ba) = lab.ba(since);
    assert_eq!(ba["status"], 0, "{ba}");
    assert_eq!(ba["seq"], 1, "{ba}");
    assert_eq!(
        ba["mhtime"], 100,
        "the lifetime asked (400 s < max_lifetime): {ba}"
    );
    assert_eq!(ba["flags"], 0, "{ba}");
    // RetransTimer (1 s) after the one probe, and not before.
    let waited = time(&ba_frame) - time(&probe);
    assert!(
        (0.9..3.0).contains(&waited),
        "the BA came {waited:.3} s after the DAD probe"
    );

    // Unsolicited NAs for the home address (RFC 6275 §10.4.1): from the
    // home agent's address to all nodes, O=1, S=0, R=0, its own MAC.
    let first = lab.peer.wait_frame(
        "pe0",
        since,
        STEP,
        "an unsolicited NA for the home address",
        |f| nd(f, "ICMPv6ND_NA", Some(HOME)).is_some(),
    );
    let after_first = usize::try_from(first["index"].as_u64().unwrap()).unwrap() + 1;
    let second = lab
        .peer
        .wait_frame("pe0", after_first, STEP, "a second unsolicited NA", |f| {
            nd(f, "ICMPv6ND_NA", Some(HOME)).is_some()
        });
    for na in [&first, &second] {
        let m = nd(na, "ICMPv6ND_NA", Some(HOME)).unwrap();
        assert_eq!(
            (m["R"].as_u64(), m["S"].as_u64(), m["O"].as_u64()),
            (Some(0), Some(0), Some(1)),
            "{m}"
        );
        let ip = wire_layer(na, "IPv6").unwrap();
        assert_eq!(addr(&ip["src"]), HA, "{}", summary(na));
        assert_eq!(addr(&ip["dst"]), "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(ip["hlim"], 255);
        let tlla = wire_layer(na, "ICMPv6NDOptDstLLAddr").expect("TLLA");
        assert_eq!(tlla["lladdr"], lab.ha_mac);
        assert!(checksums_ok(na), "{na}");
    }
    let gap = time(&second) - time(&first);
    assert!((0.8..2.0).contains(&gap), "announcements {gap:.3} s apart");

    // A resolution NS for the home address: a solicited NA with the home
    // agent's MAC, S=1, O=0 (a proxy never overrides: RFC 4861 §7.2.8).
    let since = lab.peer.mark("pe0");
    let (group, mac) = solicited_node(HOME);
    lab.peer.send(
        "pe0",
        &[
            json!({"kind": "ns", "src": lab.router.to_string(), "dst": group.to_string(),
                  "dst_mac": mac, "target": HOME.to_string()}),
        ],
    );
    let na = lab
        .peer
        .wait_frame("pe0", since, STEP, "the proxy's answer", |f| {
            nd(f, "ICMPv6ND_NA", Some(HOME)).is_some_and(|m| m["S"] == 1)
        });
    let m = nd(&na, "ICMPv6ND_NA", Some(HOME)).unwrap();
    assert_eq!(
        (m["S"].as_u64(), m["O"].as_u64(), m["R"].as_u64()),
        (Some(1), Some(0), Some(0)),
        "{m}"
    );
    assert_eq!(
        wire_layer(&na, "ICMPv6NDOptDstLLAddr").unwrap()["lladdr"],
        lab.ha_mac
    );
    let ip = wire_layer(&na, "IPv6").unwrap();
    assert_eq!(addr(&ip["dst"]), lab.router, "{}", summary(&na));
    assert_eq!(addr(&ip["src"]), HA, "{}", summary(&na));
    assert_eq!(
        wire_layer(&na, "Ether").unwrap()["dst"],
        lab.peer.mac("pe0")
    );

    // Another node's DAD probe for it is answered too, to all nodes.
    let since = lab.peer.mark("pe0");
    lab.peer.send(
        "pe0",
        &[
            json!({"kind": "ns", "src": "::", "dst": group.to_string(), "dst_mac": mac,
                  "target": HOME.to_string()}),
        ],
    );
    let na = lab
        .peer
        .wait_frame("pe0", since, STEP, "the answer to a DAD probe", |f| {
            nd(f, "ICMPv6ND_NA", Some(HOME)).is_some()
        });
    let ip = wire_layer(&na, "IPv6").unwrap();
    assert_eq!(
        addr(&ip["dst"]),
        "ff02::1".parse::<Ipv6Addr>().unwrap(),
        "{}",
        summary(&na)
    );
    assert_eq!(nd(&na, "ICMPv6ND_NA", Some(HOME)).unwrap()["S"], 0);

    // The binding, as `ha status` reports it.
    let s = lab.ha.status().unwrap();
    let b = &s["status"]["bindings"][0];
    assert_eq!(b["home"], HOME.to_string(), "{s}");
    assert_eq!(b["care_of"], COA.to_string(), "{s}");
    assert_eq!(
        (b["seq"].as_u64(), b["how"].as_str()),
        (Some(1), Some("ipsec")),
        "{s}"
    );
    assert!(b["expires_in"].as_u64().unwrap() > 390, "{s}");
    assert_eq!(
        iface(&s, 0)["proxied"],
        json!([[HOME.to_string(), true]]),
        "{s}"
    );
    assert_eq!(s["status"]["counters"]["esp_opened"], 1, "{s}");
    assert_eq!(s["status"]["counters"]["esp_sealed"], 1, "{s}");

    // `ha bindings`, finding the socket through the file, as JSON and for
    // people.
    let cfg = lab.cfg.to_string_lossy().into_owned();
    let got = ha(&["bindings", "--config", &cfg, "--json"]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let b: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(b["role"], "ha", "{b}");
    assert_eq!(b["bindings"][0]["home"], HOME.to_string(), "{b}");
    let got = ha(&["bindings", "--config", &cfg]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let row = got
        .stdout
        .lines()
        .find(|l| l.contains(&HOME.to_string()))
        .unwrap_or_else(|| panic!("{}", got.stdout));
    assert!(
        row.contains(&COA.to_string()) && row.contains("ipsec"),
        "{row}"
    );
}

#[test]
fn a_squatter_defending_the_home_address_gets_the_registration_refused_134() {
    if !prerequisites(&[]) {
        return;
    }
    let mut lab = lab("squatter");
    // A second node on the link (scapy, with its own MAC) uses the home
    // address and answers DAD probes for it.
    lab.peer.request(
        json!({"op": "defend", "iface": "pe0", "address": HOME.to_string(),
                            "mac": SQUATTER_MAC}),
    );
    let since = lab.peer.mark("pe0");
    lab.register(1);
    lab.dad_probe(since);
    let (_, ba) = lab.ba(since);
    assert_eq!(ba["status"], 134, "{ba}");
    assert_eq!(ba["seq"], 1, "{ba}");
    assert_eq!(ba["mhtime"], 0, "{ba}");
    let s = lab.ha.status().unwrap();
    assert_eq!(drops(&s, "DuplicateHomeAddress"), 1, "{s}");
    assert!(s["status"].get("bindings").is_none(), "{s}");
    assert!(iface(&s, 0).get("proxied").is_none(), "{s}");
    // And the home agent does not answer for the squatter's address.
    let since = lab.peer.mark("pe0");
    lab.solicit_home();
    let frames = lab.barrier(since);
    let from_ha: Vec<String> = frames
        .iter()
        .filter(|f| {
            nd(f, "ICMPv6ND_NA", Some(HOME)).is_some()
                && wire_layer(f, "Ether").unwrap()["src"] == lab.ha_mac
        })
        .map(summary)
        .collect();
    assert!(from_ha.is_empty(), "{from_ha:?}");
}

#[test]
fn a_retransmission_during_dad_probes_once_and_is_acked_with_its_sequence_number() {
    if !prerequisites(&[]) {
        return;
    }
    let mut lab = lab("retransmit");
    let since = lab.peer.mark("pe0");
    lab.register(1);
    let probe = lab.dad_probe(since);
    // While the probe's second runs: the retransmission, a newer number.
    lab.register(2);
    let s = lab.ha.status().unwrap();
    let (_, ba) = lab.ba(since);
    assert_eq!(
        (ba["status"].as_u64(), ba["seq"].as_u64()),
        (Some(0), Some(2)),
        "{ba}"
    );
    let probes = lab
        .peer
        .frames("pe0", since)
        .0
        .iter()
        .filter(|f| nd(f, "ICMPv6ND_NS", Some(HOME)).is_some())
        .count();
    assert_eq!(probes, 1, "one DAD probe");
    let after = lab.ha.status().unwrap();
    if s["status"]["bindings"][0]["how"] == "dad" {
        // The retransmission arrived while DAD was still running.
        assert_eq!(s["status"]["bindings"][0]["seq"], 2, "{s}");
    } else {
        eprintln!(
            "the retransmission came after DAD ({}): not the case under test",
            probe["time"]
        );
    }
    assert_eq!(after["status"]["bindings"][0]["seq"], 2, "{after}");
    // Only one BA: the first BU's is not sent separately.
    let bas = lab
        .peer
        .frames("pe0", since)
        .0
        .iter()
        .filter(|f| wire_layer(f, "ESP").is_some())
        .count();
    assert_eq!(bas, 1);
}

#[test]
fn a_bu_without_h_is_refused_and_a_deregistration_ends_the_proxy() {
    if !prerequisites(&[]) {
        return;
    }
    let mut lab = lab("deregister");
    // H clear: the home agent is no correspondent here (129).
    let since = lab.peer.mark("pe0");
    lab.bu(1, "A", 100);
    let (_, ba) = lab.ba(since);
    assert_eq!(
        (ba["status"].as_u64(), ba["seq"].as_u64()),
        (Some(129), Some(1)),
        "{ba}"
    );
    assert_eq!(drops(&lab.ha.status().unwrap(), "NotOurMobileNode"), 1);

    let since = lab.peer.mark("pe0");
    lab.register(2);
    let (_, ba) = lab.ba(since);
    assert_eq!(ba["status"], 0, "{ba}");
    // Deregistration from the care-of address: lifetime 0.
    let since = lab.peer.mark("pe0");
    lab.bu(3, "AH", 0);
    let (_, ba) = lab.ba(since);
    assert_eq!(
        (
            ba["status"].as_u64(),
            ba["seq"].as_u64(),
            ba["mhtime"].as_u64()
        ),
        (Some(0), Some(3), Some(0)),
        "{ba}"
    );
    let s = lab.ha.status().unwrap();
    assert!(s["status"].get("bindings").is_none(), "{s}");
    assert!(iface(&s, 0).get("proxied").is_none(), "{s}");
    // It no longer answers for the home address.
    let since = lab.peer.mark("pe0");
    lab.solicit_home();
    let frames = lab.barrier(since);
    let answered: Vec<String> = frames
        .iter()
        .filter(|f| nd(f, "ICMPv6ND_NA", Some(HOME)).is_some())
        .map(summary)
        .collect();
    assert!(answered.is_empty(), "{answered:?}");
}

/// An on-link correspondent (scapy) on the home link.
const ONLINK: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x50);

#[test]
fn the_home_agent_tunnels_both_ways_for_a_registered_node() {
    if !prerequisites(&[]) {
        return;
    }
    let mut lab = lab("tunnel");
    let since = lab.peer.mark("pe0");
    lab.register(1);
    let (_, ba) = lab.ba(since);
    assert_eq!(ba["status"], 0, "{ba}");
    let ha_mac = lab.ha_mac.clone();
    lab.peer
        .request(json!({"op": "answer", "iface": "pe0", "address": ONLINK.to_string()}));

    // Intercepted (the frame goes to the MAC the home agent defends the
    // home address with) and tunnelled to the care-of address (RFC 6275
    // §10.4.1, RFC 2473).
    let since = lab.peer.mark("pe0");
    lab.peer.send(
        "pe0",
        &[
            json!({"kind": "echo", "type": "request", "src": ONLINK.to_string(),
                  "dst": HOME.to_string(), "id": 7, "seq": 1, "data": "7475", "dst_mac": ha_mac}),
        ],
    );
    let f = lab
        .peer
        .wait_frame("pe0", since, STEP, "the tunnelled echo request", |f| {
            layers_named(&f["layers"], "IPv6").len() == 2
        });
    let ips = layers_named(&f["layers"], "IPv6");
    assert_eq!(
        (addr(&ips[0]["src"]), addr(&ips[0]["dst"])),
        (HA, COA),
        "{}",
        summary(&f)
    );
    assert_eq!(ips[0]["nh"], 41, "{}", summary(&f));
    assert_eq!(
        (addr(&ips[1]["src"]), addr(&ips[1]["dst"])),
        (ONLINK, HOME),
        "{}",
        summary(&f)
    );
    let echo = wire_layer(&f, "ICMPv6EchoRequest").expect("the echo request inside");
    assert_eq!(
        (echo["id"].as_u64(), echo["seq"].as_u64()),
        (Some(7), Some(1)),
        "{echo}"
    );
    let eth = wire_layer(&f, "Ether").unwrap();
    assert_eq!(
        (eth["src"].as_str(), eth["dst"].as_str()),
        (Some(&*lab.ha_mac), Some(lab.peer.mac("pe0")))
    );
    assert!(checksums_ok(&f), "{f}");

    // The reverse tunnel from the registered care-of address: the inner
    // packet goes on to the on-link node (resolved with ND).
    let since = lab.peer.mark("pe0");
    lab.peer.send(
        "pe0",
        &[
            json!({"kind": "echo", "type": "reply", "src": HOME.to_string(),
                  "dst": ONLINK.to_string(), "id": 7, "seq": 1, "data": "7475",
                  "outer_src": COA.to_string(), "outer_dst": HA.to_string(), "dst_mac": ha_mac}),
        ],
    );
    let f = lab
        .peer
        .wait_frame("pe0", since, STEP, "the decapsulated echo reply", |f| {
            wire_layer(f, "ICMPv6EchoReply").is_some()
        });
    let ips = layers_named(&f["layers"], "IPv6");
    assert_eq!(ips.len(), 1, "{}", summary(&f));
    assert_eq!(
        (addr(&ips[0]["src"]), addr(&ips[0]["dst"])),
        (HOME, ONLINK),
        "{}",
        summary(&f)
    );
    let eth = wire_layer(&f, "Ether").unwrap();
    assert_eq!(
        (eth["src"].as_str(), eth["dst"].as_str()),
        (Some(&*lab.ha_mac), Some(lab.peer.mac("pe0")))
    );
    assert!(checksums_ok(&f), "{f}");

    // From any other source: dropped and counted (RFC 6275 §10.4.5).
    lab.peer.send(
        "pe0",
        &[
            json!({"kind": "echo", "type": "reply", "src": HOME.to_string(),
                  "dst": ONLINK.to_string(), "id": 7, "seq": 2, "data": "7475",
                  "outer_src": "2001:db8:2::999", "outer_dst": HA.to_string(), "dst_mac": ha_mac}),
        ],
    );
    let s = lab
        .ha
        .wait_status(STEP, "the mismatched tunnel dropped", |s| {
            drops(s, "TunnelSourceMismatch") == 1
        });
    assert_eq!(s["status"]["counters"]["forwarded"], 2, "{s}");
}

#[test]
fn the_home_agent_survives_garbage() {
    if !prerequisites(&[]) {
        return;
    }
    let mut lab = lab("garbage");
    let before = lab.ha.status().unwrap();
    let (_, sn_mac) = solicited_node(HA);
    let (_, home_mac) = solicited_node(HOME);
    let macs = [
        lab.ha_mac.clone(),
        "33:33:00:00:00:01".to_string(),
        sn_mac,
        home_mac,
        "ff:ff:ff:ff:ff:ff".to_string(),
    ];
    for batch in 0..12u64 {
        let got = lab.ha.status().unwrap()["driver"]["link_received"]
            .as_u64()
            .unwrap();
        let a = lab
            .peer
            .request(json!({"op": "garbage", "iface": "pe0", "count": 50,
            "seed": 0x6861_0000 + batch, "dst": HA.to_string(), "dst_macs": macs}));
        let ipv6 = a["ipv6"].as_u64().unwrap();
        lab.ha
            .wait_status(STEP, &format!("garbage batch {batch} read"), |s| {
                s["driver"]["link_received"].as_u64().unwrap() >= got + ipv6
            });
    }
    assert!(
        lab.ha.process.is_running(),
        "ha exited on garbage; log:\n{}",
        lab.ha.process.output()
    );
    let after = lab.ha.status().unwrap();
    for reason in ["Malformed", "NdInvalid", "NotForUs"] {
        assert!(
            drops(&after, reason) > drops(&before, reason),
            "{reason} did not grow: before {}, after {}",
            before["status"]["drops"],
            after["status"]["drops"]
        );
    }
    assert_eq!(
        after["driver"]["drops"],
        json!({}),
        "the driver's own drops"
    );
    assert!(has_address(&after, 0, HA, "preferred"), "{after}");
    assert!(has_router(&after, 0, lab.router), "{after}");
    eprintln!(
        "drops after 600 broken frames: {}",
        after["status"]["drops"]
    );
    // It still registers.
    let since = lab.peer.mark("pe0");
    lab.register(1);
    let (_, ba) = lab.ba(since);
    assert_eq!(ba["status"], 0, "{ba}");
}

// ---------------------------------------------------------------------------
// The command line.

fn ha(args: &[&str]) -> Cli {
    cli(BIN, args)
}

fn file(dir: &Path, name: &str, body: &str) -> String {
    write(dir, name, body).to_string_lossy().into_owned()
}

const PREFIX48: &str =
    "address: 2001:db8:1::1\nhome_prefix: 2001:db8:1::/48\ninterface: ha0\nmobile_nodes: [2001:db8:1::100]\n";
const OFF_PREFIX: &str =
    "address: 2001:db8:1::1\nhome_prefix: 2001:db8:1::/64\ninterface: ha0\nmobile_nodes: [2001:db8:1::100, 2001:db8:2::100]\n";

#[test]
fn configuration_mistakes_are_one_line_naming_the_file_and_the_field() {
    let dir = scratch("ha/check");
    let p48 = file(&dir, "prefix48.yaml", PREFIX48);
    let off = file(&dir, "off-prefix.yaml", OFF_PREFIX);
    let unknown = file(
        &dir,
        "unknown.yaml",
        "address: 2001:db8:1::1\nhome_prefix: 2001:db8:1::/64\ninterface: ha0\nmobile_nodes: []\nmax_lifetim: 5\n",
    );
    let bad = file(
        &dir,
        "bad.yaml",
        "address: 2001:db8:1::1\nhome_prefix: 2001:db8:1::/64\ninterface: ha0\nmobile_nodes: [2001:db8:1::zz]\n",
    );
    for action in ["check", "run"] {
        assert_refused(
            &format!("{action}: home_prefix a /48"),
            &ha(&[action, "--config", &p48]),
            &[&p48, "home_prefix", "/64"],
        );
        assert_refused(
            &format!("{action}: a mobile node off the home prefix"),
            &ha(&[action, "--config", &off]),
            &[&off, "mobile_nodes", "2001:db8:2::100"],
        );
        assert_refused(
            &format!("{action}: an unknown key"),
            &ha(&[action, "--config", &unknown]),
            &[&format!("{unknown}:5:1:"), "max_lifetim"],
        );
        assert_refused(
            &format!("{action}: a bad address"),
            &ha(&[action, "--config", &bad]),
            &[&format!("{bad}:4:"), "mobile_nodes"],
        );
    }
}

#[test]
fn semantic_mistakes_name_their_line_and_column() {
    let dir = scratch("ha/check-lines");
    let p48 = file(&dir, "prefix48.yaml", PREFIX48);
    let off = file(&dir, "off-prefix.yaml", OFF_PREFIX);
    assert_refused(
        "home_prefix a /48",
        &ha(&["check", "--config", &p48]),
        &[&format!("{p48}:2:"), "home_prefix"],
    );
    assert_refused(
        "a mobile node off the prefix",
        &ha(&["check", "--config", &off]),
        &[&format!("{off}:4:"), "mobile_nodes"],
    );
}

#[test]
fn run_refuses_a_missing_interface_and_a_user_without_capabilities() {
    if !prerequisites(&["setpriv"]) {
        return;
    }
    let dir = scratch("ha/run-refusals");
    let ns = Netns::new("ha-refusals").unwrap();
    let control = dir.join("ha.sock");
    let body = |iface: &str| {
        format!(
            "address: {HA}\nhome_prefix: 2001:db8:1::/64\ninterface: {iface}\n\
             mobile_nodes: [{HOME}]\nipsec: {CONFIG_DIR}/ipsec/ha.yaml\ncontrol: {}\n",
            control.display()
        )
    };
    let missing = file(&dir, "missing.yaml", &body("nosuch0"));
    let got = Cli::from(in_ns(&ns, &[BIN, "run", "--config", &missing]));
    assert_refused("run on a missing interface", &got, &["nosuch0"]);
    assert!(!control.exists());
    Netns::veth_pair(&ns, "ha0", &ns, "ha0-peer").unwrap();
    let ok = file(&dir, "ok.yaml", &body("ha0"));
    let got = Cli::from(in_ns(
        &ns,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "run",
            "--config",
            &ok,
        ],
    ));
    assert_refused("run as nobody", &got, &["CAP_NET_ADMIN", "CAP_NET_RAW"]);
}

#[test]
fn a_query_without_a_daemon_is_one_line_and_exit_2() {
    let dir = scratch("ha/no-daemon");
    let sock = dir.join("nobody-here.sock");
    let sock = sock.to_string_lossy();
    for view in ["status", "bindings"] {
        assert_refused(
            &format!("{view} without a daemon"),
            &ha(&[view, "--control", &sock]),
            &[&sock, "ha run"],
        );
    }
}

#[test]
fn the_shipped_configuration_passes_check() {
    let p = Path::new(CONFIG_DIR).join("ha.yaml");
    let got = ha(&["check", "--config", &p.to_string_lossy()]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.stdout.contains("is good"), "{:?}", got.stdout);
    assert!(got.stderr.is_empty(), "{:?}", got.stderr);
}

#[test]
fn the_shipped_ike_configuration_passes_check() {
    let p = Path::new(CONFIG_DIR).join("ha-ike.yaml");
    let got = ha(&["check", "--config", &p.to_string_lossy()]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.stdout.contains("is good"), "{:?}", got.stdout);
    assert!(got.stderr.is_empty(), "{:?}", got.stderr);
}

// REQ MIP-HA-IPSEC
#[test]
fn mistakes_in_the_ike_section_name_their_line_column_and_field() {
    let dir = scratch("ha/check-ike");
    let m = |from, to, field, at| Mistake {
        from,
        to,
        field,
        at,
    };
    assert_mistakes_located(
        BIN,
        &dir,
        "ha-ike.yaml",
        &[
            m(
                "home_address: 2001:db8:1::100",
                "home_address: 2001:db8:1::200",
                "ike.peers[0].home_address",
                "2001:db8:1::200",
            ),
            m("psk:", "pks:", "ike.peers[0]", "pks:"),
            m(
                "psk: \"an example secret: choose your own\"",
                "psk: \"\"",
                "ike.peers[0]",
                "name: mn",
            ),
            m(
                "home_address: 2001:db8:1::100",
                "addresses: [2001:db8:1::100]",
                "ike.peers[0].addresses",
                "2001:db8:1::100]",
            ),
        ],
    );
}
