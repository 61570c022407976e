//! The `mn` daemon against an independent peer: two links (veths to a
//! peer namespace), scapy (cn/tests/scapy_peer.py) on both as their
//! router. The node solicits routers when a link gets carrier; scapy
//! answers one with an RA, and the node must probe its care-of address
//! (DAD), send its home agent a BU under ESP from it (scapy opens it with
//! the keys of config/ipsec/mn.yaml), take the BA scapy seals, say where
//! it is in `mn status`, lose the link with its carrier, move to the other
//! link when that one gets an RA, and on SIGTERM leave the host as it
//! found it (TUN, home address, default route, `disable_ipv6`).
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
use std::path::Path;

use serde_json::{json, Value};
use support::*;
use testbed::harness::netns::{Deadline, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_mn");
const HOME: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// Link A's prefix and the care-of address there: the prefix and the low
/// 64 bits of the home address (MnConfig::new).
const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x100);
/// config/ipsec/mn.yaml's pair with the home agent.
const MN_TO_HA: (u32, &str) = (0x101, "404142434445464748494a4b4c4d4e4f50515253");
const HA_TO_MN: (u32, &str) = (0x102, "606162636465666768696a6b6c6d6e6f70717273");
const LINKS: [(&str, &str); 2] = [("mn-a", "pa"), ("mn-b", "pb")];

#[test]
fn the_static_keys_are_those_of_the_shipped_file() {
    let y = std::fs::read_to_string(Path::new(CONFIG_DIR).join("ipsec/mn.yaml")).unwrap();
    for (spi, key) in [MN_TO_HA, HA_TO_MN] {
        assert!(y.contains(&format!("spi: {spi:#x}, key: \"0x{key}\"")));
    }
}

fn sysctl(ns: &Netns, dev: &str, key: &str) -> String {
    let out = in_ns(
        ns,
        &["cat", &format!("/proc/sys/net/ipv6/conf/{dev}/{key}")],
    );
    text(&out.stdout).trim().to_string()
}

fn ip(ns: &Netns, args: &[&str]) -> String {
    let mut all = vec!["ip"];
    all.extend_from_slice(args);
    text(&in_ns(ns, &all).stdout)
}

/// A Router Solicitation from the node (RFC 4861 §6.3.7, §4.1): to all
/// routers, hop limit 255, from :: without SLLA or from its link-local
/// address.
fn assert_rs(f: &Value, mac: &str) {
    let eth = wire_layer(f, "Ether").unwrap();
    assert_eq!(eth["src"], mac, "{}", summary(f));
    assert_eq!(eth["dst"], "33:33:00:00:00:02", "{}", summary(f));
    let ipl = wire_layer(f, "IPv6").unwrap();
    assert_eq!(
        addr(&ipl["dst"]),
        "ff02::2".parse::<Ipv6Addr>().unwrap(),
        "{}",
        summary(f)
    );
    assert_eq!(ipl["hlim"], 255, "{}", summary(f));
    let src = addr(&ipl["src"]);
    if src.is_unspecified() {
        assert!(
            wire_layer(f, "ICMPv6NDOptSrcLLAddr").is_none(),
            "an RS from :: has no SLLA: {}",
            summary(f)
        );
    } else {
        assert_eq!(src, link_local(mac), "{}", summary(f));
    }
    assert_eq!(wire_layer(f, "ICMPv6ND_RS").unwrap()["code"], 0);
    assert!(checksums_ok(f), "{f}");
}

fn is_rs(f: &Value) -> bool {
    wire_layer(f, "ICMPv6ND_RS").is_some()
}

/// The node's DAD probe for `coa`: from ::, to its solicited-node group,
/// no SLLA, hop limit 255.
fn assert_dad_probe(f: &Value, mac: &str, coa: Ipv6Addr) {
    let (group, group_mac) = solicited_node(coa);
    let eth = wire_layer(f, "Ether").unwrap();
    assert_eq!(
        (eth["src"].as_str(), eth["dst"].as_str()),
        (Some(mac), Some(&*group_mac))
    );
    let ipl = wire_layer(f, "IPv6").unwrap();
    assert_eq!(addr(&ipl["src"]), Ipv6Addr::UNSPECIFIED, "{}", summary(f));
    assert_eq!(addr(&ipl["dst"]), group, "{}", summary(f));
    assert_eq!(ipl["hlim"], 255);
    assert!(
        wire_layer(f, "ICMPv6NDOptSrcLLAddr").is_none(),
        "{}",
        summary(f)
    );
    assert!(checksums_ok(f), "{f}");
}

/// The home registration as it leaves: from the care-of address, a HAO
/// with the home address ahead of ESP (SPI 0x101), to the router's MAC;
/// inside, a BU with A and H, 600 s (150 units), an Alternate CoA option
/// with the care-of address. Returns its sequence number.
fn assert_home_bu(f: &Value, mn_mac: &str, router_mac: &str, coa: Ipv6Addr) -> u64 {
    let eth = wire_layer(f, "Ether").unwrap();
    assert_eq!(
        (eth["src"].as_str(), eth["dst"].as_str()),
        (Some(mn_mac), Some(router_mac))
    );
    let ipl = wire_layer(f, "IPv6").unwrap();
    assert_eq!(addr(&ipl["src"]), coa, "{}", summary(f));
    assert_eq!(addr(&ipl["dst"]), HA, "{}", summary(f));
    let dst_opts = wire_layer(f, "IPv6ExtHdrDestOpt").expect("a Destination Options header");
    assert_eq!(dst_opts["nh"], 50, "the HAO stays ahead of ESP: {dst_opts}");
    let hao = option(dst_opts, "HAO").expect("a Home Address option");
    assert_eq!(addr(&hao["hoa"]), HOME, "{hao}");
    assert_eq!(wire_layer(f, "ESP").unwrap()["spi"], MN_TO_HA.0);
    assert!(f.get("decrypt_error").is_none(), "{f}");
    let bu = opened_layer(f, "MIP6MH_BU").unwrap_or_else(|| panic!("no BU in {}", summary(f)));
    // scapy's flags: P R M K L H A from bit 0, so A=64, H=32.
    assert_eq!(bu["flags"], 64 + 32, "A and H only: {bu}");
    assert_eq!(bu["mhtime"], 150, "{bu}");
    let alt = option(bu, "MIP6OptAltCoA").expect("an Alternate CoA option");
    assert_eq!(addr(&alt["acoa"]), coa, "{alt}");
    assert!(checksums_ok(f), "scapy's checksum of the opened BU: {f}");
    bu["seq"].as_u64().unwrap()
}

fn location(s: &Value) -> &str {
    s["status"]["location"].as_str().unwrap_or("")
}

fn home_agent_entry(s: &Value) -> &Value {
    s["status"]["binding_updates"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["peer"] == HA.to_string()))
        .unwrap_or(&Value::Null)
}

#[test]
fn the_mobile_node_solicits_moves_registers_and_cleans_up() {
    if !prerequisites(&[]) {
        return;
    }
    let dir = scratch("mn/moves");
    let mn_ns = daemon_netns("mn");
    let peer_ns = Netns::new("peer").unwrap();
    for (dev, peer_dev) in LINKS {
        wire(&mn_ns, dev, &peer_ns, peer_dev);
    }
    // Link B without carrier until later, and with the kernel's IPv6
    // already off: each link's own old value must come back.
    peer_ns.check(&["ip", "link", "set", "pb", "down"]).unwrap();
    mn_ns
        .set_sysctl("net.ipv6.conf.mn-b.disable_ipv6", "1")
        .unwrap();
    let old: Vec<String> = LINKS
        .iter()
        .map(|(d, _)| sysctl(&mn_ns, d, "disable_ipv6"))
        .collect();
    assert_eq!(old, ["0", "1"]);

    let mut peer = Peer::start(&peer_ns, &["pa", "pb"], &dir.join("scapy.log"));
    for (spi, key) in [MN_TO_HA, HA_TO_MN] {
        peer.request(json!({"op": "sa", "spi": spi, "alg": "aes128gcm16", "key": key}));
    }
    let routers: Vec<Ipv6Addr> = ["pa", "pb"]
        .iter()
        .map(|p| link_local(peer.mac(p)))
        .collect();
    for (p, r) in ["pa", "pb"].iter().zip(&routers) {
        peer.request(json!({"op": "answer", "iface": p, "address": r.to_string(), "router": true}));
    }
    let control = dir.join("mn.sock");
    let cfg = write(
        &dir,
        "mn.yaml",
        &format!(
            "home_address: {HOME}\nhome_agent: {HA}\ninterfaces: [mn-a, mn-b]\n\
             ipsec: {CONFIG_DIR}/ipsec/mn.yaml\ncontrol: {}\nseed: 7\n",
            control.display()
        ),
    );
    let mut mn = Daemon::start(&mn_ns, BIN, &cfg, &control);
    let s = mn.wait_status(STEP, "link 0 up", |s| !iface(s, 0).is_null());
    let mac_a = iface(&s, 0)["mac"].as_str().unwrap().to_string();
    assert_eq!(location(&s), "no link", "{s}");

    // An RS on link A at once; none on B, which has no carrier.
    let rs = peer.wait_frame("pa", 0, STEP, "an RS on link A", is_rs);
    assert_rs(&rs, &mac_a);
    assert!(peer.all_frames("pb", 0).is_empty());
    // B gets carrier: an RS there.
    peer_ns.check(&["ip", "link", "set", "pb", "up"]).unwrap();
    let s = mn.wait_status(STEP, "link 1 up", |s| !iface(s, 1).is_null());
    let mac_b = iface(&s, 1)["mac"].as_str().unwrap().to_string();
    let rs = peer.wait_frame("pb", 0, STEP, "an RS on link B after carrier", is_rs);
    assert_rs(&rs, &mac_b);

    // While it runs: the home address on the TUN, the default route into
    // it, the kernel's IPv6 off on the links.
    let addrs = ip(&mn_ns, &["-6", "addr", "show", "dev", "mip6"]);
    assert!(addrs.contains(&format!("inet6 {HOME}/128")), "{addrs}");
    let routes = ip(&mn_ns, &["-6", "route", "show", "default"]);
    assert!(routes.contains("dev mip6"), "{routes}");
    for (d, _) in LINKS {
        assert_eq!(sysctl(&mn_ns, d, "disable_ipv6"), "1", "{d}");
    }

    // scapy answers on link A: 2001:db8:2::/64.
    let since = peer.mark("pa");
    peer.send(
        "pa",
        &[json!({"kind": "ra", "src": routers[0].to_string(),
                  "prefixes": [{"prefix": "2001:db8:2::", "len": 64, "L": true, "A": true}]})],
    );
    let probe = peer.wait_frame(
        "pa",
        since,
        STEP,
        "the DAD probe for the care-of address",
        |f| nd(f, "ICMPv6ND_NS", Some(COA_A)).is_some(),
    );
    assert_dad_probe(&probe, &mac_a, COA_A);
    let bu = peer.wait_frame("pa", since, STEP, "the BU to the home agent", |f| {
        wire_layer(f, "ESP").is_some()
    });
    let mut seq = assert_home_bu(&bu, &mac_a, peer.mac("pa"), COA_A);
    let s = mn.wait_status(STEP, "away on link 0", |s| location(s).starts_with("away"));
    assert_eq!(location(&s), format!("away on link 0 at {COA_A}"), "{s}");
    let e = home_agent_entry(&s);
    assert_eq!(e["care_of"], COA_A.to_string(), "{s}");
    assert_eq!(
        (e["bound"].as_bool(), e["waiting"].as_bool()),
        (Some(false), Some(true)),
        "{s}"
    );

    // A BA in clear, with the right sequence number: IPsec's policy
    // refuses it before the engine sees it.
    peer.send(
        "pa",
        &[
            json!({"kind": "ba", "src": HA.to_string(), "dst": COA_A.to_string(),
                  "home": HOME.to_string(), "seq": seq, "status": 0, "lifetime": 150,
                  "dst_mac": mac_a}),
        ],
    );
    let s = mn.wait_status(STEP, "the clear BA dropped", |s| {
        drops(s, "ipsec/Unprotected") == 1
    });
    assert_eq!(home_agent_entry(&s)["bound"], false, "{s}");

    // scapy, as the home agent, accepts: a BA under SPI 0x102 to the
    // care-of address with a type 2 routing header. A retransmission may
    // have taken a newer sequence number meanwhile: answer the newest.
    let mut from = usize::try_from(bu["index"].as_u64().unwrap()).unwrap() + 1;
    let deadline = Deadline::after(STEP);
    loop {
        peer.send(
            "pa",
            &[
                json!({"kind": "ba", "src": HA.to_string(), "dst": COA_A.to_string(),
                      "home": HOME.to_string(), "seq": seq, "status": 0, "lifetime": 150,
                      "spi": HA_TO_MN.0, "dst_mac": mac_a}),
            ],
        );
        let bound = Deadline::after(std::time::Duration::from_secs(1));
        let mut ok = false;
        while !bound.passed() {
            if home_agent_entry(&mn.status().unwrap())["bound"] == true {
                ok = true;
                break;
            }
            bound.nap();
        }
        if ok {
            break;
        }
        assert!(!deadline.passed(), "the node never took scapy's BA");
        let (frames, next) = peer.frames("pa", from);
        from = next;
        if let Some(newer) = frames.iter().rev().find(|f| wire_layer(f, "ESP").is_some()) {
            seq = assert_home_bu(newer, &mac_a, peer.mac("pa"), COA_A);
        }
    }
    let s = mn.status().unwrap();
    let e = home_agent_entry(&s);
    assert_eq!(e["seq"], seq, "{s}");
    assert_eq!(e["waiting"], false, "{s}");
    assert!(
        s["status"]["counters"]["esp_opened"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert_eq!(drops(&s, "ipsec/Unprotected"), 1, "{s}");
    let got = cli(
        BIN,
        &[
            "bindings",
            "--control",
            &control.to_string_lossy(),
            "--json",
        ],
    );
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let b: Value = serde_json::from_str(&got.stdout).unwrap();
    assert_eq!(b["location"], format!("away on link 0 at {COA_A}"), "{b}");
    assert_eq!(b["binding_updates"][0]["peer"], HA.to_string(), "{b}");
    assert_eq!(b["binding_updates"][0]["bound"], true, "{b}");
    assert_eq!(drops(&s, "Unsolicited"), 0, "{s}");

    // The host's traffic: a ping from the home address goes into the
    // reverse tunnel to the home agent; scapy, as the home agent, tunnels
    // the answer back, and the ping gets it through the TUN.
    let cn: Ipv6Addr = "2001:db8:3::1".parse().unwrap();
    let since = peer.mark("pa");
    let mut ping = mn_ns
        .spawn(
            "ping",
            &["-6", "-n", "-c", "1", "-W", "5", &cn.to_string()],
            &[],
            &dir.join("ping.log"),
        )
        .unwrap();
    let f = peer.wait_frame("pa", since, STEP, "the tunnelled echo request", |f| {
        wire_layer(f, "ICMPv6EchoRequest").is_some()
    });
    let ips = layers_named(&f["layers"], "IPv6");
    assert_eq!(ips.len(), 2, "{}", summary(&f));
    assert_eq!(
        (addr(&ips[0]["src"]), addr(&ips[0]["dst"])),
        (COA_A, HA),
        "{}",
        summary(&f)
    );
    assert_eq!(
        (addr(&ips[1]["src"]), addr(&ips[1]["dst"])),
        (HOME, cn),
        "{}",
        summary(&f)
    );
    assert_eq!(wire_layer(&f, "Ether").unwrap()["dst"], peer.mac("pa"));
    assert!(checksums_ok(&f), "{f}");
    let echo = wire_layer(&f, "ICMPv6EchoRequest").unwrap().clone();
    peer.send(
        "pa",
        &[
            json!({"kind": "echo", "type": "reply", "src": cn.to_string(), "dst": HOME.to_string(),
                  "id": echo["id"], "seq": echo["seq"], "data": echo["data"],
                  "outer_src": HA.to_string(), "outer_dst": COA_A.to_string(),
                  "dst_mac": mac_a}),
        ],
    );
    let done = ping.wait_exit(STEP).unwrap();
    assert!(
        done.is_some_and(|s| s.success()),
        "ping: {done:?}: {}",
        ping.output()
    );
    let s = mn.status().unwrap();
    let c = &s["status"]["counters"];
    assert_eq!(
        (
            c["sent_tunnelled"].as_u64(),
            c["delivered_tunnelled"].as_u64()
        ),
        (Some(1), Some(1)),
        "{s}"
    );

    // Link A loses its carrier: B has no router, so no link at all.
    peer_ns.check(&["ip", "link", "set", "pa", "down"]).unwrap();
    mn.wait_status(STEP, "no link", |s| location(s) == "no link");

    // An RA on B: the node moves there, with a care-of address and a BU
    // from it.
    let since = peer.mark("pb");
    peer.send(
        "pb",
        &[json!({"kind": "ra", "src": routers[1].to_string(),
                  "prefixes": [{"prefix": "2001:db8:4::", "len": 64, "L": true, "A": true}]})],
    );
    let s = mn.wait_status(STEP, "away on link 1", |s| {
        location(s).starts_with("away on link 1")
    });
    assert_eq!(location(&s), format!("away on link 1 at {COA_B}"), "{s}");
    let bu = peer.wait_frame("pb", since, STEP, "the BU from link B", |f| {
        wire_layer(f, "ESP").is_some()
    });
    let seq_b = assert_home_bu(&bu, &mac_b, peer.mac("pb"), COA_B);
    assert!(seq_b > seq, "a new sequence number: {seq_b} after {seq}");

    // SIGTERM: everything it changed is put back.
    let status = mn.terminate();
    assert!(status.success(), "{status}; log:\n{}", mn.process.output());
    let links = ip(&mn_ns, &["-o", "link"]);
    assert!(!links.contains("mip6"), "the TUN is gone: {links}");
    let addrs = ip(&mn_ns, &["-6", "addr"]);
    assert!(!addrs.contains(&HOME.to_string()), "{addrs}");
    let routes = ip(&mn_ns, &["-6", "route", "show", "default"]);
    assert!(routes.trim().is_empty(), "no default route: {routes}");
    let now: Vec<String> = LINKS
        .iter()
        .map(|(d, _)| sysctl(&mn_ns, d, "disable_ipv6"))
        .collect();
    assert_eq!(now, old, "disable_ipv6 back to what it was");
    assert!(!control.exists(), "the control socket is removed");
}

#[test]
fn the_mobile_node_survives_garbage_on_a_visited_link() {
    if !prerequisites(&[]) {
        return;
    }
    let dir = scratch("mn/garbage");
    let mn_ns = daemon_netns("mn");
    let peer_ns = Netns::new("peer").unwrap();
    wire(&mn_ns, "mn-a", &peer_ns, "pa");
    let mut peer = Peer::start(&peer_ns, &["pa"], &dir.join("scapy.log"));
    let router = link_local(peer.mac("pa"));
    peer.request(
        json!({"op": "answer", "iface": "pa", "address": router.to_string(), "router": true}),
    );
    let control = dir.join("mn.sock");
    let cfg = write(
        &dir,
        "mn.yaml",
        &format!(
            "home_address: {HOME}\nhome_agent: {HA}\ninterfaces: [mn-a]\n\
             ipsec: {CONFIG_DIR}/ipsec/mn.yaml\ncontrol: {}\nseed: 7\n",
            control.display()
        ),
    );
    let mut mn = Daemon::start(&mn_ns, BIN, &cfg, &control);
    peer.send(
        "pa",
        &[json!({"kind": "ra", "src": router.to_string(),
                  "prefixes": [{"prefix": "2001:db8:2::", "len": 64, "L": true, "A": true}]})],
    );
    let before = mn.wait_status(STEP, "away on link 0", |s| location(s).starts_with("away"));
    let mac = iface(&before, 0)["mac"].as_str().unwrap().to_string();
    let macs = [
        mac,
        "33:33:00:00:00:01".to_string(),
        solicited_node(COA_A).1,
        "ff:ff:ff:ff:ff:ff".to_string(),
    ];
    for batch in 0..12u64 {
        let got = mn.status().unwrap()["driver"]["link_received"]
            .as_u64()
            .unwrap();
        let a = peer.request(json!({"op": "garbage", "iface": "pa", "count": 50,
            "seed": 0x6d6e_0000 + batch, "dst": COA_A.to_string(), "dst_macs": macs}));
        let ipv6 = a["ipv6"].as_u64().unwrap();
        mn.wait_status(STEP, &format!("garbage batch {batch} read"), |s| {
            s["driver"]["link_received"].as_u64().unwrap() >= got + ipv6
        });
    }
    assert!(
        mn.process.is_running(),
        "mn exited; log:\n{}",
        mn.process.output()
    );
    let after = mn.status().unwrap();
    for reason in ["Malformed", "NdInvalid", "NotForUs"] {
        assert!(
            drops(&after, reason) > drops(&before, reason),
            "{reason} did not grow: {}",
            after["status"]["drops"]
        );
    }
    assert_eq!(after["driver"]["drops"], json!({}));
    assert_eq!(
        location(&after),
        format!("away on link 0 at {COA_A}"),
        "{after}"
    );
    eprintln!(
        "drops after 600 broken frames: {}",
        after["status"]["drops"]
    );
}

// ---------------------------------------------------------------------------
// The command line.

fn mn(args: &[&str]) -> Cli {
    cli(BIN, args)
}

#[test]
fn configuration_mistakes_are_one_line_naming_the_file_and_the_field() {
    let dir = scratch("mn/check");
    let unknown = write(
        &dir,
        "unknown.yaml",
        "home_address: 2001:db8:1::100\nhome_agent: 2001:db8:1::1\ninterfaces: [mn-a]\nhome_lifetme: 5\n",
    );
    let bad = write(
        &dir,
        "bad.yaml",
        "home_address: 2001:db8:1::100\nhome_agent: 2001:db8::1::1\ninterfaces: [mn-a]\n",
    );
    let none = write(
        &dir,
        "none.yaml",
        "home_address: 2001:db8:1::100\nhome_agent: 2001:db8:1::1\ninterfaces: []\n",
    );
    let (u, b, n) = (
        unknown.to_string_lossy(),
        bad.to_string_lossy(),
        none.to_string_lossy(),
    );
    for action in ["check", "run"] {
        assert_refused(
            &format!("{action}: an unknown key"),
            &mn(&[action, "--config", &u]),
            &[&format!("{u}:4:1:"), "home_lifetme"],
        );
        assert_refused(
            &format!("{action}: a bad address"),
            &mn(&[action, "--config", &b]),
            &[&format!("{b}:2:13:"), "home_agent"],
        );
        assert_refused(
            &format!("{action}: no interface"),
            &mn(&[action, "--config", &n]),
            &[&n, "interfaces"],
        );
    }
}

#[test]
fn a_value_the_builder_refuses_names_its_line_and_column() {
    let dir = scratch("mn/check-lines");
    let none = write(
        &dir,
        "none.yaml",
        "home_address: 2001:db8:1::100\nhome_agent: 2001:db8:1::1\ninterfaces: []\n",
    );
    let n = none.to_string_lossy();
    assert_refused(
        "no interface",
        &mn(&["check", "--config", &n]),
        &[&format!("{n}:3:"), "interfaces"],
    );
}

#[test]
fn run_refuses_a_missing_interface_and_a_user_without_capabilities() {
    if !prerequisites(&["setpriv"]) {
        return;
    }
    let dir = scratch("mn/run-refusals");
    let ns = Netns::new("mn-refusals").unwrap();
    Netns::veth_pair(&ns, "mn-a", &ns, "mn-a-peer").unwrap();
    let control = dir.join("mn.sock");
    let body = |second: &str| {
        format!(
            "home_address: {HOME}\nhome_agent: {HA}\ninterfaces: [mn-a, {second}]\n\
             ipsec: {CONFIG_DIR}/ipsec/mn.yaml\ncontrol: {}\n",
            control.display()
        )
    };
    // The second of two interfaces is missing: refused, and the first is
    // left as it was.
    let missing = write(&dir, "missing.yaml", &body("nosuch0"));
    let got = Cli::from(in_ns(
        &ns,
        &[BIN, "run", "--config", &missing.to_string_lossy()],
    ));
    assert_refused("run on a missing interface", &got, &["nosuch0"]);
    assert_eq!(sysctl(&ns, "mn-a", "disable_ipv6"), "0");
    assert!(!control.exists());
    let ok = write(&dir, "ok.yaml", &body("mn-a-peer"));
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
            &ok.to_string_lossy(),
        ],
    ));
    assert_refused("run as nobody", &got, &["CAP_NET_ADMIN", "CAP_NET_RAW"]);
}

#[test]
fn the_shipped_configuration_passes_check() {
    let p = Path::new(CONFIG_DIR).join("mn.yaml");
    let got = mn(&["check", "--config", &p.to_string_lossy()]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.stdout.contains("is good"), "{:?}", got.stdout);
    assert!(got.stderr.is_empty(), "{:?}", got.stderr);
}

#[test]
fn the_shipped_ike_configuration_passes_check() {
    let p = Path::new(CONFIG_DIR).join("mn-ike.yaml");
    let got = mn(&["check", "--config", &p.to_string_lossy()]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.stdout.contains("is good"), "{:?}", got.stdout);
    assert!(got.stderr.is_empty(), "{:?}", got.stderr);
}

// REQ CN-5.3
#[test]
fn mistakes_in_the_ike_section_name_their_line_column_and_field() {
    let dir = scratch("mn/check-ike");
    let none = format!("{CONFIG_DIR}/ike/none.pem");
    let m = |from, to, field, at| Mistake {
        from,
        to,
        field,
        at,
    };
    assert_mistakes_located(
        BIN,
        &dir,
        "mn-ike.yaml",
        &[
            m(
                "mobility: mobike",
                "mobility: mobyke",
                "ike.mobility",
                "mobyke",
            ),
            // An identity is a name, never an address.
            m(
                "id: { fqdn: mn.example.org }",
                "id: { fqdn: 2001:db8:1::100 }",
                "ike.id.fqdn",
                "2001:db8:1::100 }",
            ),
            m(
                "addresses: [2001:db8:3::1]",
                "addresses: [2001:db8:5::1]",
                "ike.peers[1].addresses",
                "2001:db8:5::1",
            ),
            m(
                "addresses: [2001:db8:1::1]",
                "addresses: [2001:db8:1::1/64]",
                "ike.peers[0].addresses[0]",
                "2001:db8:1::1/64",
            ),
            m(
                "cn.pub.pem",
                "none.pem",
                "ike.peers[1].ed25519_pubkey",
                &none,
            ),
            m(
                "payload: true",
                "payload: yes please",
                "ike.peers[0].payload",
                "yes please",
            ),
        ],
    );
}
