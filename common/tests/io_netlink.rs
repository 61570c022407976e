//! `common::io::netlink` in a namespace of its own, checked against what
//! `ip` shows. Needs root, `ip` and /dev/net/tun; skipped otherwise
//! (failed with `CI=true`).

#![allow(clippy::expect_used, reason = "a test fails loudly on a setup error")]

mod io_harness;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::io::netlink::{Ipv6Address, Ipv6Route, LinkEvent, OperState};
use common::io::{LinkEvents, Netlink, NetlinkError, Tun};
use io_harness::{on_thread, parse_mac, skip, step, Netns};

#[test]
fn lookup_matches_ip_link_and_carrier_events_follow_the_peer() {
    if skip(false) {
        return;
    }
    let ns = Netns::new("nl-link");
    ns.ip(&["link", "add", "x", "type", "veth", "peer", "name", "y"]);
    ns.ip(&["link", "set", "x", "up"]);
    ns.ip(&["link", "set", "y", "up"]);
    let h = ns.handle();
    on_thread(Duration::from_secs(60), move || async move {
        h.enter();
        let nl = Netlink::new().expect("netlink");
        let x = step("lookup x", nl.link_by_name("x")).await.expect("x");
        let j = h.link_json("x");
        assert_eq!(
            u64::from(x.ifindex),
            j["ifindex"].as_u64().expect("ifindex")
        );
        assert_eq!(x.name, "x");
        assert_eq!(
            x.mac,
            Some(parse_mac(j["address"].as_str().expect("address")))
        );
        assert_eq!(u64::from(x.mtu), j["mtu"].as_u64().expect("mtu"));
        assert!(x.up);
        let by_index = step("lookup by index", nl.link_by_index(x.ifindex))
            .await
            .expect("by index");
        assert_eq!(by_index.name, "x");
        assert_eq!(by_index.mac, x.mac);
        match step("lookup missing", nl.link_by_name("nosuchlink0")).await {
            Err(e @ NetlinkError::NoSuchName(_)) => assert!(e.is_not_found()),
            other => panic!("{other:?}"),
        }
        let all = step("links", nl.links()).await.expect("links");
        assert!(all.iter().any(|l| l.name == "lo") && all.iter().any(|l| l.name == "y"));

        step("mtu", nl.set_mtu(x.ifindex, 1400)).await.expect("mtu");
        assert_eq!(h.link_json("x")["mtu"].as_u64(), Some(1400));

        // Carrier: x loses it when its peer goes down, and gets it back.
        let y = step("lookup y", nl.link_by_name("y")).await.expect("y");
        let mut events = LinkEvents::new().expect("events");
        for (up, want) in [(false, false), (true, true)] {
            if up {
                step("y up", nl.set_link_up(y.ifindex)).await.expect("up");
            } else {
                step("y down", nl.set_link_down(y.ifindex))
                    .await
                    .expect("down");
            }
            loop {
                match step("carrier event", events.next()).await {
                    Some(LinkEvent::Changed(l)) if l.ifindex == x.ifindex && l.carrier == want => {
                        let (oper, shown) = if want {
                            (OperState::Up, "UP")
                        } else {
                            (OperState::LowerLayerDown, "LOWERLAYERDOWN")
                        };
                        assert_eq!(l.oper, oper, "{l:?}");
                        assert_eq!(h.link_json("x")["operstate"].as_str(), Some(shown));
                        break;
                    }
                    Some(_) => {}
                    None => panic!("event stream closed"),
                }
            }
        }
        step("delete y", async {
            h.ip(&["link", "del", "y"]);
            loop {
                if let Some(LinkEvent::Removed { ifindex }) = events.next().await {
                    if ifindex == y.ifindex || ifindex == x.ifindex {
                        break;
                    }
                }
            }
        })
        .await;
    });
    drop(ns);
}

const P5: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 1);
const GW: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 2);
const NET6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, 0);
const NET7: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, 0);

#[test]
fn addresses_and_routes_on_a_tun_come_and_go() {
    if skip(true) {
        return;
    }
    let ns = Netns::new("nl-addr");
    let h = ns.handle();
    on_thread(Duration::from_secs(60), move || async move {
        h.enter();
        let nl = Netlink::new().expect("netlink");
        let tun = Tun::open("mip6nl0", 1400, &nl).await.expect("tun");
        let ifindex = tun.ifindex();
        let addr = Ipv6Address::nodad(ifindex, P5, 64);
        let via = Ipv6Route {
            gateway: Some(GW),
            metric: Some(50),
            ..Ipv6Route::device(NET6, 64, ifindex)
        };
        let dev = Ipv6Route::device(NET7, 48, ifindex);
        let addrs = || h.ip(&["-6", "addr", "show", "dev", "mip6nl0"]);
        let routes = || h.ip(&["-6", "route", "show", "dev", "mip6nl0"]);

        step("add address", nl.add_address(&addr))
            .await
            .expect("add address");
        let shown = addrs();
        assert!(shown.contains("inet6 2001:db8:5::1/64"), "{shown}");
        assert!(!shown.contains("fe80"), "addrgenmode none: {shown}");
        assert_eq!(
            step("list", nl.addresses(ifindex)).await.expect("list"),
            [(P5, 64)]
        );
        let again = step("add again", nl.add_address(&addr)).await;
        assert!(
            again.as_ref().is_err_and(NetlinkError::is_exists),
            "{again:?}"
        );
        for r in [&via, &dev] {
            step("add route", nl.add_route(r)).await.expect("add route");
        }
        let shown = routes();
        assert!(
            shown.contains("2001:db8:6::/64 via 2001:db8:5::2 proto static metric 50"),
            "{shown}"
        );
        assert!(shown.contains("2001:db8:7::/48"), "{shown}");

        for r in [&via, &dev] {
            step("del route", nl.del_route(r)).await.expect("del route");
        }
        let shown = routes();
        assert!(
            !shown.contains("2001:db8:6::") && !shown.contains("2001:db8:7::"),
            "{shown}"
        );
        let gone = step("del again", nl.del_route(&dev)).await;
        assert!(
            gone.as_ref().is_err_and(NetlinkError::is_not_found),
            "{gone:?}"
        );
        step("del address", nl.del_address(&addr))
            .await
            .expect("del address");
        assert!(!addrs().contains("2001:db8:5::1"));
        assert!(step("list", nl.addresses(ifindex))
            .await
            .expect("list")
            .is_empty());
        let gone = step("del again", nl.del_address(&addr)).await;
        assert!(
            gone.as_ref().is_err_and(NetlinkError::is_not_found),
            "{gone:?}"
        );
        let e = gone.expect_err("gone");
        assert!(e.to_string().contains("2001:db8:5::1/64"), "{e}");
    });
    drop(ns);
}
