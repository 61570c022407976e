//! `common::io::packet` on a veth pair between two namespaces: A, whose
//! kernel IPv6 is off on its end (`disable_ipv6=1`), and B, a normal IPv6
//! host. Needs root and `ip`; skipped otherwise (failed with `CI=true`).

#![allow(clippy::expect_used, reason = "a test fails loudly on a setup error")]

mod io_harness;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::io::netlink::Netlink;
use common::io::packet::ETHERNET_HEADER_LEN;
use common::io::{Framing, PacketConfig, PacketKind, PacketSocket, RecvBatch, Sysctls};
use common::wire::nd::solicited_node;
use common::wire::MacAddr;
use io_harness::{echo, ipv6, on_thread, skip, step, with_hao, with_rh2, Netns};

const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xa);
const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xb);
const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 99, 0, 0, 0, 0, 1);

/// `va` in A (down, IPv6 still on: the test turns it off), `vb` in B (up,
/// 2001:db8:1::b/64, a permanent neighbour entry for A's address).
struct Pair {
    a: Netns,
    b: Netns,
    va_mac: [u8; 6],
    vb_mac: [u8; 6],
}

fn pair(tag: &str) -> Pair {
    let a = Netns::new(&format!("{tag}-a"));
    let b = Netns::new(&format!("{tag}-b"));
    a.ip(&[
        "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b.name,
    ]);
    let (va_mac, vb_mac) = (a.mac("va"), b.mac("vb"));
    b.ip(&["addr", "add", "2001:db8:1::b/64", "dev", "vb", "nodad"]);
    b.ip(&["link", "set", "vb", "up"]);
    let lladdr = a.link_json("va")["address"]
        .as_str()
        .expect("mac")
        .to_string();
    b.ip(&[
        "-6",
        "neigh",
        "add",
        "2001:db8:1::a",
        "lladdr",
        &lladdr,
        "dev",
        "vb",
        "nud",
        "permanent",
    ]);
    Pair {
        a,
        b,
        va_mac,
        vb_mac,
    }
}

/// In A (the calling thread enters it): `disable_ipv6=1` on `va`, then up.
async fn prepare_a(a: &Netns, sysctls: &mut Sysctls) -> (Netlink, u32) {
    a.enter();
    sysctls.disable_ipv6("va").expect("disable_ipv6");
    let nl = Netlink::new().expect("netlink");
    let va = step("lookup va", nl.link_by_name("va")).await.expect("va");
    step("va up", nl.set_link_up(va.ifindex))
        .await
        .expect("va up");
    (nl, va.ifindex)
}

async fn ifindex(name: &str) -> u32 {
    let nl = Netlink::new().expect("netlink");
    step("lookup", nl.link_by_name(name))
        .await
        .expect("link")
        .ifindex
}

#[test]
fn ip_framing_receives_hao_and_rh2_while_the_kernel_stays_silent() {
    if skip(false) {
        return;
    }
    let p = pair("rx");
    let (a, b, va_mac, vb_mac) = (p.a.handle(), p.b.handle(), p.va_mac, p.vb_mac);
    on_thread(Duration::from_secs(60), move || async move {
        let mut sysctls = Sysctls::new();
        let (_nl, va) = prepare_a(&a, &mut sysctls).await;
        let reader = PacketSocket::open(va, &PacketConfig::new(Framing::Ip)).expect("reader");
        assert_eq!(reader.mac(), va_mac);
        assert_eq!(reader.name(), "va");

        b.enter();
        let vb = ifindex("vb").await;
        let sender = PacketSocket::open(vb, &PacketConfig::new(Framing::Ip)).expect("sender");
        let monitor = PacketSocket::open(
            vb,
            &PacketConfig::new(Framing::Ethernet { ipv6_only: false }),
        )
        .expect("monitor");

        // Both would draw a Parameter Problem from a kernel with IPv6 on
        // (unknown option type 201 / routing type 2 with segments left).
        let hao = ipv6(B, A, 60, &with_hao(HOA, 58, &echo(HOA, A, 128, 7, 1)));
        let rh2 = ipv6(B, A, 43, &with_rh2(HOA, 58, &echo(B, HOA, 128, 7, 2)));
        for pkt in [&hao, &rh2] {
            step("send", sender.send(pkt, va_mac)).await.expect("send");
        }

        let mut want = vec![hao.clone(), rh2.clone()];
        let mut buf = vec![0u8; 2048];
        while !want.is_empty() {
            let r = step("receive both", reader.recv(&mut buf))
                .await
                .expect("recv");
            assert_ne!(r.kind, PacketKind::Outgoing);
            if let Some(i) = want.iter().position(|w| w[..] == buf[..r.len]) {
                assert_eq!(
                    (r.kind, r.src, r.truncated),
                    (PacketKind::Host, vb_mac, false)
                );
                want.remove(i);
            }
        }

        // Truncation is reported, not hidden.
        step("send", sender.send(&hao, va_mac)).await.expect("send");
        let mut small = [0u8; 40];
        loop {
            let r = step("receive into 40 bytes", reader.recv(&mut small))
                .await
                .expect("recv");
            if r.kind == PacketKind::Host && small[..] == hao[..40] {
                assert!(r.truncated && r.len == 40, "{r:?}");
                break;
            }
        }

        // A's kernel answers nothing: B sees no frame from va at all.
        let quiet = tokio::time::sleep(Duration::from_millis(700));
        tokio::pin!(quiet);
        let mut from_a = vec![];
        loop {
            tokio::select! {
                () = &mut quiet => break,
                r = monitor.recv(&mut buf) => {
                    let r = r.expect("monitor");
                    if r.src == va_mac {
                        from_a.push(buf[..r.len].to_vec());
                    }
                }
            }
        }
        assert!(from_a.is_empty(), "A's kernel sent {from_a:02x?}");
        sysctls.restore().expect("restore");
    });
    drop(p);
}

#[test]
fn try_send_reaches_the_peer_kernel_and_its_reply_comes_back() {
    if skip(false) {
        return;
    }
    let p = pair("tx");
    let (a, va_mac, vb_mac) = (p.a.handle(), p.va_mac, p.vb_mac);
    let a2 = p.a.handle();
    let maddr = move || a2.ip(&["maddr", "show", "dev", "va"]);
    let a3 = p.a.handle();
    // `allmulti` (IFLA_ALLMULTI) counts the holders; the ALLMULTI flag
    // only shows what `ip link set allmulticast` did.
    let allmulti = move || {
        let out = a3.ip(&["-d", "-j", "link", "show", "dev", "va"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
        v[0]["allmulti"].as_u64().expect("allmulti")
    };
    on_thread(Duration::from_secs(60), move || async move {
        let mut sysctls = Sysctls::new();
        let (_nl, va) = prepare_a(&a, &mut sysctls).await;
        let sock = PacketSocket::open(va, &PacketConfig::new(Framing::Ip)).expect("socket");
        // Only ETH_P_ALL taps get the kernel's copies of outgoing frames.
        let all = Framing::Ethernet { ipv6_only: false };
        let mut capture_cfg = PacketConfig::new(all);
        capture_cfg.outgoing = true;
        let capture = PacketSocket::open(va, &capture_cfg).expect("capture socket");
        let quiet_all = PacketSocket::open(va, &PacketConfig::new(all)).expect("ETH_P_ALL socket");
        let frames = PacketSocket::open(
            va,
            &PacketConfig::new(Framing::Ethernet { ipv6_only: true }),
        )
        .expect("frame socket");
        eprintln!(
            "PACKET_IGNORE_OUTGOING taken: {}; SO_RCVBUF {} SO_SNDBUF {}",
            sock.kernel_ignores_outgoing(),
            sock.recv_buffer_size().expect("rcvbuf"),
            sock.send_buffer_size().expect("sndbuf"),
        );
        assert!(sock.recv_buffer_size().expect("rcvbuf") >= 4 << 20);

        let request = ipv6(A, B, 58, &echo(A, B, 128, 0x4242, 1));
        sock.try_send(&request, vb_mac).expect("try_send");
        let mut buf = vec![0u8; 2048];
        let reply = loop {
            let r = step("echo reply", sock.recv(&mut buf)).await.expect("recv");
            assert_ne!(r.kind, PacketKind::Outgoing, "our own send came back");
            let p = &buf[..r.len];
            if r.kind == PacketKind::Host && p.len() > 44 && p[6] == 58 && p[40] == 129 {
                assert_eq!(r.src, vb_mac);
                break p.to_vec();
            }
        };
        assert_eq!(&reply[8..24], &B.octets());
        assert_eq!(&reply[24..40], &A.octets());
        assert_eq!(
            &reply[44..48],
            &[0x42, 0x42, 0, 1],
            "identifier and sequence"
        );
        let upper = &reply[40..];
        assert_eq!(io_harness::checksum(B, A, 58, upper), 0, "reply checksum");

        // The socket that asked for outgoing copies saw the request leave;
        // the one that did not got the reply first.
        let out = loop {
            let r = step("outgoing copy", capture.recv(&mut buf))
                .await
                .expect("recv");
            if r.kind == PacketKind::Outgoing {
                break buf[..r.len].to_vec();
            }
        };
        assert_eq!(&out[ETHERNET_HEADER_LEN..], &request[..]);
        assert_eq!((&out[..6], &out[6..12]), (&vb_mac[..], &va_mac[..]));
        loop {
            let r = step("reply on ETH_P_ALL", quiet_all.recv(&mut buf))
                .await
                .expect("recv");
            assert_ne!(r.kind, PacketKind::Outgoing, "{:02x?}", &buf[..r.len]);
            if r.kind == PacketKind::Host && r.len > 54 && buf[54] == 129 {
                break;
            }
        }

        // Whole frames: the Ethernet framing sends them as they are.
        let mut frame = vb_mac.to_vec();
        frame.extend_from_slice(&va_mac);
        frame.extend_from_slice(&0x86ddu16.to_be_bytes());
        frame.extend_from_slice(&ipv6(A, B, 58, &echo(A, B, 128, 0x4242, 2)));
        assert!(
            frames.try_send(&frame, va_mac).is_err(),
            "dst must match the frame"
        );
        step("send frame", frames.send(&frame, vb_mac))
            .await
            .expect("send frame");
        loop {
            let r = step("second reply", frames.recv(&mut buf))
                .await
                .expect("recv");
            let f = &buf[..r.len];
            let ip = &f[ETHERNET_HEADER_LEN..];
            if r.kind == PacketKind::Host && ip.len() > 48 && ip[40] == 129 && ip[47] == 2 {
                assert_eq!(&f[..6], &va_mac);
                break;
            }
        }

        // Control: B's kernel, IPv6 on, answers what A's stayed quiet on,
        // with a Parameter Problem pointing at the option type (code 2,
        // offset 46) and at the routing type (code 0, offset 42).
        for (pkt, code, pointer) in [
            (
                ipv6(A, B, 60, &with_hao(HOA, 58, &echo(HOA, B, 128, 9, 1))),
                2,
                46,
            ),
            (
                ipv6(A, B, 43, &with_rh2(HOA, 58, &echo(A, HOA, 128, 9, 2))),
                0,
                42,
            ),
        ] {
            sock.try_send(&pkt, vb_mac).expect("send");
            loop {
                let r = step("parameter problem", sock.recv(&mut buf))
                    .await
                    .expect("recv");
                let p = &buf[..r.len];
                if r.kind == PacketKind::Host && p.len() > 48 && p[6] == 58 && p[40] == 4 {
                    assert_eq!((p[41], &p[44..48]), (code, &pointer_bytes(pointer)[..]));
                    assert_eq!(&p[48..88], &pkt[..40], "the offending packet is quoted");
                    break;
                }
            }
        }

        // Multicast MACs for real NICs: visible in the link's list.
        let group = MacAddr::ipv6_multicast(solicited_node(A)).0;
        sock.add_multicast(group).expect("add membership");
        let listed = maddr();
        assert!(listed.contains("33:33:ff:00:00:0a"), "{listed}");
        sock.drop_multicast(group).expect("drop membership");
        assert!(!maddr().contains("33:33:ff:00:00:0a"));
        sock.set_all_multicast(true).expect("allmulti");
        assert_eq!(allmulti(), 1);
        sock.set_all_multicast(false).expect("allmulti off");
        assert_eq!(allmulti(), 0);
        sysctls.restore().expect("restore");
    });
    drop(p);
}

fn pointer_bytes(p: u32) -> [u8; 4] {
    p.to_be_bytes()
}

/// `try_send_batch` hands the kernel many frames a call and
/// `recv_batch` takes many a call: every one arrives, once, in order,
/// byte for byte, in both framings.
#[test]
fn batches_of_frames_arrive_whole_and_in_order() {
    if skip(false) {
        return;
    }
    let p = pair("batch");
    let (a, b, va_mac, vb_mac) = (p.a.handle(), p.b.handle(), p.va_mac, p.vb_mac);
    on_thread(Duration::from_secs(60), move || async move {
        let mut sysctls = Sysctls::new();
        let (_nl, va) = prepare_a(&a, &mut sysctls).await;
        let reader = PacketSocket::open(va, &PacketConfig::new(Framing::Ip)).expect("reader");
        b.enter();
        let vb = ifindex("vb").await;
        let ip_sender = PacketSocket::open(vb, &PacketConfig::new(Framing::Ip)).expect("sender");
        let raw = Framing::Ethernet { ipv6_only: true };
        let frame_sender = PacketSocket::open(vb, &PacketConfig::new(raw)).expect("sender");
        // 150 through the IP framing, then 150 whole frames: more than a
        // SEND_BATCH each, of different lengths.
        let packets: Vec<Vec<u8>> = (0..300u16)
            .map(|i| {
                let padding = vec![0xee; usize::from(i % 3) * 500];
                ipv6(B, A, 58, &[echo(B, A, 128, 9, i), padding].concat())
            })
            .collect();
        let (ip_half, frame_half) = packets.split_at(150);
        let to_a: Vec<(&[u8], [u8; 6])> = ip_half.iter().map(|p| (&p[..], va_mac)).collect();
        let sent = ip_sender.try_send_batch(&to_a);
        assert_eq!((sent.sent, sent.full, sent.failed), (150, 0, 0), "{sent:?}");
        let frames: Vec<Vec<u8>> = frame_half
            .iter()
            .map(|p| [&va_mac[..], &vb_mac[..], &[0x86, 0xdd], p].concat())
            .collect();
        let to_a: Vec<(&[u8], [u8; 6])> = frames.iter().map(|f| (&f[..], va_mac)).collect();
        let sent = frame_sender.try_send_batch(&to_a);
        assert_eq!((sent.sent, sent.full, sent.failed), (150, 0, 0), "{sent:?}");
        // A frame whose destination is not the one given is refused, alone.
        let wrong = [(&frames[0][..], vb_mac), (&frames[1][..], va_mac)];
        let sent = frame_sender.try_send_batch(&wrong);
        assert_eq!((sent.sent, sent.failed), (1, 1), "{sent:?}");

        let mut batch = RecvBatch::new(32, 4096);
        let (mut got, mut calls, mut most) = (Vec::new(), 0, 0);
        while got.len() < 301 {
            let n = step("receive", reader.recv_batch(&mut batch))
                .await
                .expect("recv_batch");
            calls += 1;
            most = most.max(n);
            for (r, bytes) in batch.packets() {
                if r.kind == PacketKind::Host && bytes[6] == 58 {
                    assert_eq!((r.src, r.truncated), (vb_mac, false));
                    got.push(bytes.to_vec());
                }
            }
        }
        let mut want = packets.clone();
        want.push(packets[151].clone());
        assert_eq!(got, want);
        assert!(
            most > 1 && calls < 301,
            "{calls} calls, at most {most} a call"
        );
        sysctls.restore().expect("restore");
    });
    drop(p);
}

/// Frames the kernel drops at a full receive queue are not lost from
/// view: `take_queue_drops` counts them (what a daemon's status reports as
/// `link-queue-full`), and a read resets it.
#[test]
fn a_full_receive_queue_counts_what_it_dropped() {
    if skip(false) {
        return;
    }
    let p = pair("qfull");
    let (a, b, va_mac) = (p.a.handle(), p.b.handle(), p.va_mac);
    on_thread(Duration::from_secs(60), move || async move {
        let mut sysctls = Sysctls::new();
        let (_nl, va) = prepare_a(&a, &mut sysctls).await;
        let small = PacketConfig {
            recv_buffer: Some(64 << 10),
            ..PacketConfig::new(Framing::Ip)
        };
        let reader = PacketSocket::open(va, &small).expect("reader");
        assert_eq!(reader.take_queue_drops().expect("statistics"), 0);
        b.enter();
        let vb = ifindex("vb").await;
        let sender = PacketSocket::open(vb, &PacketConfig::new(Framing::Ip)).expect("sender");
        // 2 000 of 1 400 bytes, nobody reading: far more than 64 kB holds.
        let packet = ipv6(
            B,
            A,
            58,
            &[echo(B, A, 128, 7, 1), vec![0xee; 1300]].concat(),
        );
        let mut sent = 0;
        for _ in 0..40 {
            let batch: Vec<(&[u8], [u8; 6])> = (0..50).map(|_| (&packet[..], va_mac)).collect();
            sent += sender.try_send_batch(&batch).sent;
        }
        assert_eq!(sent, 2000);
        let mut buf = vec![0u8; 2048];
        let mut ours = 0;
        while let Ok(r) = reader.try_recv(&mut buf) {
            if r.kind == PacketKind::Host && buf[..r.len].starts_with(&packet[..40]) {
                ours += 1;
            }
        }
        let dropped = reader.take_queue_drops().expect("statistics");
        assert!(dropped > 0 && ours < 2000, "{ours} read, {dropped} dropped");
        assert!(
            ours + dropped >= 2000,
            "{ours} read + {dropped} dropped < 2000 sent"
        );
        assert_eq!(reader.take_queue_drops().expect("statistics"), 0, "reset");
        sysctls.restore().expect("restore");
    });
    drop(p);
}
