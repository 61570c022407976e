//! `common::io::sysctl` and `common::io::tun` in namespaces of their own.
//! Needs root, `ip` and /dev/net/tun; skipped otherwise (failed with
//! `CI=true`).

#![allow(clippy::expect_used, reason = "a test fails loudly on a setup error")]

mod io_harness;

use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::io::sysctl;
use common::io::tun::{install, GSO_MAX_SEGS};
use common::io::{Installed, Netlink, Sysctls, Tun, TunBatch, TunQueue};
use io_harness::{checksum, echo, ipv6, on_thread, skip, step, Netns};

#[test]
fn the_sysctl_guard_restores_on_drop_in_reverse_order() {
    if skip(false) {
        return;
    }
    let ns = Netns::new("sysctl");
    ns.ip(&["link", "add", "x", "type", "veth", "peer", "name", "y"]);
    let h = ns.handle();
    // The host's own value, which the namespace's changes must not touch.
    let host_forwarding = sysctl::read("all", "forwarding").expect("host value");
    on_thread(Duration::from_secs(30), move || async move {
        h.enter();
        let shown = |key: &str| {
            let out = h.exec(&["sysctl", "-n", key]);
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let before = [
            sysctl::read("x", "disable_ipv6").expect("read"),
            sysctl::read("all", "forwarding").expect("read"),
            sysctl::read("x", "forwarding").expect("read"),
            sysctl::read("y", "accept_ra").expect("read"),
        ];
        assert_eq!(before[0], shown("net.ipv6.conf.x.disable_ipv6"));
        {
            let mut guard = Sysctls::new();
            guard.disable_ipv6("x").expect("disable_ipv6");
            // all/forwarding also sets every interface's: undone last-first.
            guard.set("x", "forwarding", "0").expect("x forwarding");
            guard.set("all", "forwarding", "1").expect("all forwarding");
            guard.set("y", "accept_ra", "0").expect("accept_ra");
            guard.set("y", "accept_ra", "2").expect("accept_ra again");
            assert_eq!(shown("net.ipv6.conf.x.disable_ipv6"), "1");
            assert_eq!(shown("net.ipv6.conf.x.forwarding"), "1");
            assert_eq!(shown("net.ipv6.conf.y.accept_ra"), "2");
            assert_eq!(guard.changed().count(), 3, "x/forwarding was already 0");
            assert!(sysctl::read("nosuchlink0", "accept_ra")
                .expect_err("missing")
                .is_not_found());
            assert!(guard.set("../ipv4", "x", "1").is_err());
        }
        let after = [
            sysctl::read("x", "disable_ipv6").expect("read"),
            sysctl::read("all", "forwarding").expect("read"),
            sysctl::read("x", "forwarding").expect("read"),
            sysctl::read("y", "accept_ra").expect("read"),
        ];
        assert_eq!(before, after);

        // restore() by hand, then a link deleted before restoring.
        let mut guard = Sysctls::new();
        guard.disable_ipv6("y").expect("disable_ipv6");
        guard.restore().expect("restore");
        assert_eq!(sysctl::read("y", "disable_ipv6").expect("read"), before[0]);
        guard.disable_ipv6("y").expect("disable_ipv6");
        h.ip(&["link", "del", "x"]);
        guard.restore().expect("a vanished link is skipped");
        assert_eq!(guard.changed().count(), 0);
    });
    assert_eq!(
        sysctl::read("all", "forwarding").expect("host value"),
        host_forwarding
    );
    drop(ns);
}

const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1);
const FAR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 5);

fn udp(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + data.len()).expect("len");
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    let c = checksum(src, dst, 17, &u);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    ipv6(src, dst, 17, &u)
}

#[test]
fn a_tun_carries_packets_both_ways_and_installs_what_it_removes() {
    if skip(true) {
        return;
    }
    let ns = Netns::new("tun");
    let h = ns.handle();
    on_thread(Duration::from_secs(60), move || async move {
        h.enter();
        let nl = Netlink::new().expect("netlink");
        let tun = Tun::open("mip6tun0", 1400, &nl).await.expect("tun");
        assert_eq!(tun.name(), "mip6tun0");
        let j = h.link_json("mip6tun0");
        assert_eq!(j["mtu"].as_u64(), Some(1400));
        let details = h.ip(&["-d", "-j", "link", "show", "dev", "mip6tun0"]);
        let details: serde_json::Value = serde_json::from_str(&details).expect("ip -d -j");
        assert_eq!(
            details[0]["gso_max_segs"].as_u64(),
            Some(GSO_MAX_SEGS as u64)
        );
        assert!(j["flags"].to_string().contains("\"UP\""), "{j}");
        assert_eq!(
            sysctl::read("mip6tun0", "router_solicitations").expect("rs"),
            "0"
        );
        assert_eq!(sysctl::read("mip6tun0", "accept_ra").expect("ra"), "0");

        // A mobile node's setup: the home address as a /128, a route away.
        let installed = step(
            "install",
            install(&nl, &[tun.home_address(HOA)], &[tun.route(FAR, 64)]),
        )
        .await
        .expect("install");
        let addrs = || h.ip(&["-6", "addr", "show", "dev", "mip6tun0"]);
        let routes = || h.ip(&["-6", "route", "show", "dev", "mip6tun0"]);
        assert!(addrs().contains("inet6 2001:db8:100::1/128"), "{}", addrs());
        assert!(routes().contains("2001:db8:200::/64"), "{}", routes());

        let mut seen = Vec::new();
        let mut batch = TunBatch::new(1400);
        let mut queued = std::collections::VecDeque::new();
        // Kernel → TUN: a UDP datagram from the home address.
        let sock = tokio::net::UdpSocket::bind(SocketAddr::new(HOA.into(), 0))
            .await
            .expect("bind the home address");
        let port = sock.local_addr().expect("port").port();
        sock.send_to(b"hello", SocketAddr::new(FAR.into(), 4242))
            .await
            .expect("send_to");
        loop {
            let p = next_packet(&tun, &mut batch, &mut queued, "datagram in the TUN").await;
            seen.push(p.clone());
            if p[6] == 17 && p[24..40] == FAR.octets() {
                assert_eq!(&p[8..24], &HOA.octets());
                assert_eq!(&p[42..44], &4242u16.to_be_bytes());
                assert_eq!(&p[48..], b"hello");
                assert_eq!(checksum(HOA, FAR, 17, &p[40..]), 0);
                break;
            }
        }

        // TUN → kernel: the answer reaches the socket.
        tun.send(&udp(FAR, 4242, HOA, port, b"world"))
            .await
            .expect("send");
        let mut got = [0u8; 16];
        let (n, from) = step("datagram from the TUN", sock.recv_from(&mut got))
            .await
            .expect("recv_from");
        assert_eq!(
            (&got[..n], from),
            (&b"world"[..], SocketAddr::new(FAR.into(), 4242))
        );

        // And the kernel answers a ping that came in through the TUN.
        tun.send(&ipv6(FAR, HOA, 58, &echo(FAR, HOA, 128, 0x77, 1)))
            .await
            .expect("send");
        loop {
            let p = next_packet(&tun, &mut batch, &mut queued, "echo reply in the TUN").await;
            seen.push(p.clone());
            if p[6] == 58 && p[40] == 129 {
                assert_eq!(
                    (&p[8..24], &p[24..40]),
                    (&HOA.octets()[..], &FAR.octets()[..])
                );
                assert_eq!(&p[44..48], &[0, 0x77, 0, 1]);
                break;
            }
        }
        let kinds: Vec<(u8, u8)> = seen
            .iter()
            .map(|p| (p[6], if p[6] == 58 { p[40] } else { 0 }))
            .collect();
        eprintln!("in the TUN (next header, ICMPv6 type): {kinds:?}");
        // No link-local address, no router solicitation.
        assert!(!addrs().contains("fe80"), "{}", addrs());
        let rs = seen.iter().filter(|p| p[6] == 58 && p[40] == 133).count();
        assert_eq!(rs, 0, "router solicitations: {seen:02x?}");
        drop(sock);

        step("remove", installed.remove(&nl)).await.expect("remove");
        assert!(!addrs().contains("2001:db8:100::1"), "{}", addrs());
        assert!(!routes().contains("2001:db8:200::"), "{}", routes());
        drop(tun);
        let gone = h.exec(&["ip", "link", "show", "mip6tun0"]);
        assert!(!gone.status.success(), "the TUN outlived its owner");
    });
    drop(ns);
}

/// The next packet the kernel put into the TUN.
async fn next_packet(
    tun: &Tun,
    batch: &mut TunBatch,
    queued: &mut std::collections::VecDeque<Vec<u8>>,
    what: &str,
) -> Vec<u8> {
    while queued.is_empty() {
        step(what, tun.recv_batch(batch)).await.expect("recv");
        queued.extend(batch.packets().map(<[u8]>::to_vec));
    }
    queued.pop_front().expect("a packet")
}

/// TUN `name` (MTU 1400) with the home address on it and a route to FAR.
async fn tun_with_home_address(name: &str) -> (Netlink, Tun, Installed) {
    let nl = Netlink::new().expect("netlink");
    let tun = Tun::open(name, 1400, &nl).await.expect("tun");
    let installed = step(
        "install",
        install(&nl, &[tun.home_address(HOA)], &[tun.route(FAR, 64)]),
    )
    .await
    .expect("install");
    (nl, tun, installed)
}

/// With offload, one read takes what the kernel sends as one GSO segment
/// of many packets, and `recv_batch` hands them over as packets of the
/// MTU with finished checksums, in order: a UDP datagram sent with
/// `UDP_SEGMENT` of 500 bytes comes as 7 packets from a single read.
#[test]
fn a_gso_send_comes_out_of_one_read_as_packets_of_the_mtu() {
    if skip(true) {
        return;
    }
    let ns = Netns::new("gso");
    let h = ns.handle();
    on_thread(Duration::from_secs(60), move || async move {
        h.enter();
        let (nl, tun, installed) = tun_with_home_address("mip6gso0").await;
        let sock = std::net::UdpSocket::bind(SocketAddr::new(HOA.into(), 0)).expect("bind");
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::UdpGsoSegment, &500)
            .expect("UDP_SEGMENT");
        let payload: Vec<u8> = (0..3200u32).map(|i| (i % 251) as u8).collect();
        sock.send_to(&payload, SocketAddr::new(FAR.into(), 4243))
            .expect("send_to");
        let mut batch = TunBatch::new(1400);
        let mut got = Vec::new();
        let mut most = 0;
        while got.len() < payload.len() {
            let n = step("the segments", tun.recv_batch(&mut batch))
                .await
                .expect("recv");
            most = most.max(n);
            for p in batch.packets() {
                if p[6] != 17 || p[24..40] != FAR.octets() {
                    continue;
                }
                assert!(p.len() <= 1400, "{} bytes", p.len());
                assert_eq!(checksum(HOA, FAR, 17, &p[40..]), 0, "{p:02x?}");
                got.extend_from_slice(&p[48..]);
            }
        }
        assert_eq!(got, payload);
        assert_eq!(most, 7, "the 7 packets came from one read");
        step("remove", installed.remove(&nl)).await.expect("remove");
    });
    drop(ns);
}

/// Datagrams of one flow written in one batch go up coalesced: the
/// device counts one packet received for all of them (tun-rs's GRO, with
/// UDP segmentation offload on the TUN), and the socket still gets each
/// datagram whole, in order.
#[test]
fn a_queue_of_one_flows_datagrams_goes_up_as_one_packet() {
    if skip(true) {
        return;
    }
    let ns = Netns::new("gro");
    let h = ns.handle();
    on_thread(Duration::from_secs(60), move || async move {
        h.enter();
        let (nl, tun, installed) = tun_with_home_address("mip6gro0").await;
        let sock = tokio::net::UdpSocket::bind(SocketAddr::new(HOA.into(), 0))
            .await
            .expect("bind the home address");
        let port = sock.local_addr().expect("port").port();
        let received = || h.link_json_stats("mip6gro0")["rx"]["packets"].as_u64();
        let before = received().expect("rx packets");
        let datagrams: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 500]).collect();
        let mut queue = TunQueue::default();
        for d in &datagrams {
            queue.push(&udp(FAR, 4244, HOA, port, d));
        }
        assert_eq!(tun.try_send_queue(&mut queue).expect("write"), 6);
        assert!(queue.is_empty());
        let mut got = [0u8; 600];
        for d in &datagrams {
            let (n, from) = step("a datagram", sock.recv_from(&mut got))
                .await
                .expect("recv_from");
            assert_eq!(
                (&got[..n], from),
                (&d[..], SocketAddr::new(FAR.into(), 4244))
            );
        }
        assert_eq!(received(), Some(before + 1), "one coalesced packet");
        step("remove", installed.remove(&nl)).await.expect("remove");
    });
    drop(ns);
}
