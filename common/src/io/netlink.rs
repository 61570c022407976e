//! rtnetlink: links (lookup, up, MTU, IPv6 address generation), IPv6
//! addresses and routes, and carrier and address events.
//!
//! On `rtnetlink` 0.24.0, pinned exactly (its releases break the API); the
//! message types come through its re-exports (`netlink-packet-route`
//! 0.34). A [`Netlink`] acts on the network namespace of the thread that
//! created it. Namespaces and veths are made by test harnesses and
//! scripts, never here (rtnetlink's namespace helpers fork).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};

use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute, LinkFlags, LinkMessage, State,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{AddressMessageBuilder, LinkUnspec, MulticastGroup, RouteMessageBuilder};
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a netlink socket{}: {source}", if *.multicast { " for link events" } else { "" })]
    Open {
        multicast: bool,
        #[source]
        source: io::Error,
    },
    #[error("netlink needs a Tokio runtime (the connection runs as a task)")]
    NoRuntime,
    #[error("no interface named {0:?}")]
    NoSuchName(String),
    #[error("no interface with ifindex {0}")]
    NoSuchIndex(u32),
    #[error("{op}: {source}")]
    Request {
        /// What was asked, naming the interface, address or route.
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
}

impl NetlinkError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => m.code.map(|c| -c.get()),
            _ => None,
        }
    }

    /// The address or route is already there (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The address, route or link is not there (`ESRCH`, `ENODEV`,
    /// `EADDRNOTAVAIL`, `ENOENT`).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            NetlinkError::NoSuchName(_) | NetlinkError::NoSuchIndex(_)
        ) || matches!(
            self.errno(),
            Some(libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL | libc::ENOENT)
        )
    }
}

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperState {
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
}

impl From<&State> for OperState {
    fn from(s: &State) -> OperState {
        match s {
            State::NotPresent => OperState::NotPresent,
            State::Down => OperState::Down,
            State::LowerLayerDown => OperState::LowerLayerDown,
            State::Testing => OperState::Testing,
            State::Dormant => OperState::Dormant,
            State::Up => OperState::Up,
            _ => OperState::Unknown,
        }
    }
}

/// What a node needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: String,
    /// `None` for links without an Ethernet address (TUN, loopback's is
    /// all zeros).
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// `IFLA_CARRIER` (else `IFF_LOWER_UP`).
    pub carrier: bool,
    pub oper: OperState,
}

impl LinkInfo {
    fn from_message(msg: &LinkMessage) -> LinkInfo {
        let mut info = LinkInfo {
            ifindex: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
            oper: OperState::Unknown,
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => info.name.clone_from(n),
                LinkAttribute::Address(a) => info.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(m) => info.mtu = *m,
                LinkAttribute::Carrier(c) => info.carrier = *c != 0,
                LinkAttribute::OperState(s) => info.oper = s.into(),
                _ => {}
            }
        }
        info
    }
}

/// Flags of an IPv6 address (`IFA_F_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AddrFlags {
    /// `nodad`: usable at once, no Duplicate Address Detection.
    pub nodad: bool,
    /// `noprefixroute`: no route for the prefix.
    pub noprefixroute: bool,
    /// `home` (`IFA_F_HOMEADDRESS`): a home address, preferred as a source
    /// (RFC 6724 rule 4; the kernel applies it only with CONFIG_IPV6_MIP6).
    pub home: bool,
}

impl AddrFlags {
    fn bits(self) -> AddressFlags {
        let mut f = AddressFlags::empty();
        f.set(AddressFlags::Nodad, self.nodad);
        f.set(AddressFlags::Noprefixroute, self.noprefixroute);
        f.set(AddressFlags::Homeaddress, self.home);
        f
    }
}

/// An IPv6 address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Address {
    pub ifindex: u32,
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    pub flags: AddrFlags,
}

impl Ipv6Address {
    /// `addr/prefix_len` with `nodad`.
    pub fn nodad(ifindex: u32, addr: Ipv6Addr, prefix_len: u8) -> Ipv6Address {
        Ipv6Address {
            ifindex,
            addr,
            prefix_len,
            flags: AddrFlags {
                nodad: true,
                ..AddrFlags::default()
            },
        }
    }
}

/// An IPv6 route in the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Route {
    pub dst: Ipv6Addr,
    pub prefix_len: u8,
    /// Output device.
    pub ifindex: u32,
    pub gateway: Option<Ipv6Addr>,
    /// `metric`; `None` is the kernel's default (1024).
    pub metric: Option<u32>,
}

impl Ipv6Route {
    /// `dst/prefix_len dev ifindex`.
    pub fn device(dst: Ipv6Addr, prefix_len: u8, ifindex: u32) -> Ipv6Route {
        Ipv6Route {
            dst,
            prefix_len,
            ifindex,
            gateway: None,
            metric: None,
        }
    }

    fn message(&self) -> rtnetlink::packet_route::route::RouteMessage {
        let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(self.dst, self.prefix_len)
            .output_interface(self.ifindex);
        if let Some(gw) = self.gateway {
            b = b.gateway(gw);
        }
        if let Some(m) = self.metric {
            b = b.priority(m);
        }
        b.build()
    }
}

impl std::fmt::Display for Ipv6Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.dst, self.prefix_len)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        write!(f, " dev ifindex {}", self.ifindex)?;
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

fn spawn_connection<C>(conn: C) -> Result<JoinHandle<()>, NetlinkError>
where
    C: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
    Ok(rt.spawn(conn))
}

/// A request socket. Its connection runs as a task on the current Tokio
/// runtime until the `Netlink` is dropped.
#[derive(Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    task: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Netlink {
    /// Opens a netlink socket in the calling thread's namespace. Must run
    /// inside a Tokio runtime.
    pub fn new() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _unsolicited) =
            rtnetlink::new_connection().map_err(|source| NetlinkError::Open {
                multicast: false,
                source,
            })?;
        let task = spawn_connection(conn)?;
        Ok(Netlink { handle, task })
    }

    fn request(op: impl FnOnce() -> String) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
        move |source| NetlinkError::Request { op: op(), source }
    }

    /// The link called `name`.
    pub async fn link_by_name(&self, name: &str) -> Result<LinkInfo, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(LinkInfo::from_message(&msg)),
            Ok(None) => Err(NetlinkError::NoSuchName(name.to_string())),
            Err(e) => {
                let e = Self::request(|| format!("looking up link {name:?}"))(e);
                if e.errno() == Some(libc::ENODEV) {
                    Err(NetlinkError::NoSuchName(name.to_string()))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The link with index `ifindex`.
    pub async fn link_by_index(&self, ifindex: u32) -> Result<LinkInfo, NetlinkError> {
        let mut links = self.handle.link().get().match_index(ifindex).execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(LinkInfo::from_message(&msg)),
            Ok(None) => Err(NetlinkError::NoSuchIndex(ifindex)),
            Err(e) => {
                let e = Self::request(|| format!("looking up ifindex {ifindex}"))(e);
                if e.errno() == Some(libc::ENODEV) {
                    Err(NetlinkError::NoSuchIndex(ifindex))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Every link.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, NetlinkError> {
        self.handle
            .link()
            .get()
            .execute()
            .map_ok(|m| LinkInfo::from_message(&m))
            .try_collect()
            .await
            .map_err(Self::request(|| "listing links".to_string()))
    }

    async fn set_link(
        &self,
        msg: LinkMessage,
        op: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(Self::request(op))
    }

    /// `ip link set IF up`.
    pub async fn set_link_up(&self, ifindex: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(ifindex).up().build();
        self.set_link(msg, || format!("setting ifindex {ifindex} up"))
            .await
    }

    /// `ip link set IF down`.
    pub async fn set_link_down(&self, ifindex: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(ifindex).down().build();
        self.set_link(msg, || format!("setting ifindex {ifindex} down"))
            .await
    }

    /// `ip link set IF mtu MTU`.
    /// `ip link set ... gso_max_segs N`: the most packets one GSO segment
    /// handed to the device may hold.
    pub async fn set_gso_max_segs(&self, ifindex: u32, segs: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(ifindex)
            .append_extra_attribute(LinkAttribute::GsoMaxSegs(segs))
            .build();
        self.set_link(msg, || {
            format!("setting gso_max_segs of ifindex {ifindex} to {segs}")
        })
        .await
    }

    pub async fn set_mtu(&self, ifindex: u32, mtu: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(ifindex).mtu(mtu).build();
        self.set_link(msg, || {
            format!("setting the MTU of ifindex {ifindex} to {mtu}")
        })
        .await
    }

    /// `ip link set IF addrgenmode none` (`IFLA_INET6_ADDR_GEN_MODE`): no
    /// link-local address when the link next comes up.
    pub async fn set_addr_gen_mode_none(&self, ifindex: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(ifindex)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]))
            .build();
        self.set_link(msg, || {
            format!("setting addrgenmode none on ifindex {ifindex}")
        })
        .await
    }

    /// `ip -6 addr add ADDR/LEN dev IF [nodad] [noprefixroute] [home]`.
    pub async fn add_address(&self, a: &Ipv6Address) -> Result<(), NetlinkError> {
        let mut req = self
            .handle
            .address()
            .add(a.ifindex, IpAddr::V6(a.addr), a.prefix_len);
        let flags = a.flags.bits();
        let msg = req.message_mut();
        // The header holds the low byte; IFA_FLAGS all of them.
        msg.header.flags = AddressHeaderFlags::from_bits_retain(flags.bits() as u8);
        msg.attributes.push(AddressAttribute::Flags(flags));
        req.execute().await.map_err(Self::request(|| {
            format!(
                "adding {}/{} to ifindex {}",
                a.addr, a.prefix_len, a.ifindex
            )
        }))
    }

    /// `ip -6 addr del ADDR/LEN dev IF`.
    pub async fn del_address(&self, a: &Ipv6Address) -> Result<(), NetlinkError> {
        let msg = AddressMessageBuilder::<Ipv6Addr>::new()
            .index(a.ifindex)
            .address(a.addr, a.prefix_len)
            .build();
        self.handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(Self::request(|| {
                format!(
                    "deleting {}/{} from ifindex {}",
                    a.addr, a.prefix_len, a.ifindex
                )
            }))
    }

    /// The IPv6 addresses on a link.
    pub async fn addresses(&self, ifindex: u32) -> Result<Vec<(Ipv6Addr, u8)>, NetlinkError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute()
            .try_collect()
            .await
            .map_err(Self::request(|| {
                format!("listing addresses of ifindex {ifindex}")
            }))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.index == ifindex)
            .filter_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V6(v6)) => Some((*v6, m.header.prefix_len)),
                    _ => None,
                })
            })
            .collect())
    }

    /// `ip -6 route add DST/LEN dev IF [via GW] [metric M]`.
    pub async fn add_route(&self, r: &Ipv6Route) -> Result<(), NetlinkError> {
        self.handle
            .route()
            .add(r.message())
            .execute()
            .await
            .map_err(Self::request(|| format!("adding route {r}")))
    }

    /// `ip -6 route del DST/LEN dev IF [via GW] [metric M]`.
    pub async fn del_route(&self, r: &Ipv6Route) -> Result<(), NetlinkError> {
        self.handle
            .route()
            .del(r.message())
            .execute()
            .await
            .map_err(Self::request(|| format!("deleting route {r}")))
    }
}

/// What [`LinkEvents`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link's carrier or operational state changed (or this is the first
    /// message about it since the stream opened).
    Changed(LinkInfo),
    /// The link is gone.
    Removed { ifindex: u32 },
}

/// Link events from `RTNLGRP_LINK`, reduced to carrier and operational
/// state changes per ifindex (the kernel repeats `RTM_NEWLINK` for many
/// other reasons).
pub struct LinkEvents {
    messages: BoxStream<'static, NetlinkMessage<RouteNetlinkMessage>>,
    task: JoinHandle<()>,
    last: HashMap<u32, (bool, OperState)>,
}

impl std::fmt::Debug for LinkEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkEvents")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Drop for LinkEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LinkEvents {
    /// Subscribes to `RTNLGRP_LINK` in the calling thread's namespace.
    /// Must run inside a Tokio runtime.
    pub fn new() -> Result<LinkEvents, NetlinkError> {
        let (conn, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).map_err(|source| {
                NetlinkError::Open {
                    multicast: true,
                    source,
                }
            })?;
        let task = spawn_connection(conn)?;
        Ok(LinkEvents {
            messages: messages.map(|(m, _)| m).boxed(),
            task,
            last: HashMap::new(),
        })
    }

    /// The next change; `None` once the socket is closed (also after an
    /// overrun of its receive buffer: reopen and look the links up again).
    pub async fn next(&mut self) -> Option<LinkEvent> {
        while let Some(msg) = self.messages.next().await {
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    let info = LinkInfo::from_message(&link);
                    let state = (info.carrier, info.oper);
                    if self.last.insert(info.ifindex, state) != Some(state) {
                        return Some(LinkEvent::Changed(info));
                    }
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                    let ifindex = link.header.index;
                    self.last.remove(&ifindex);
                    return Some(LinkEvent::Removed { ifindex });
                }
                _ => {}
            }
        }
        None
    }
}

/// What [`AddressEvents`] reports: an IPv6 address became usable (added
/// without DAD, or done with it) or went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressEvent {
    Added { ifindex: u32, addr: Ipv6Addr },
    Removed { ifindex: u32, addr: Ipv6Addr },
}

/// IPv6 address events from `RTNLGRP_IPV6_IFADDR`; a tentative address
/// (still in DAD) is not reported until the kernel says it is usable.
pub struct AddressEvents {
    messages: BoxStream<'static, NetlinkMessage<RouteNetlinkMessage>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for AddressEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressEvents").finish_non_exhaustive()
    }
}

impl Drop for AddressEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AddressEvents {
    /// Subscribes to `RTNLGRP_IPV6_IFADDR` in the calling thread's
    /// namespace. Must run inside a Tokio runtime.
    pub fn new() -> Result<AddressEvents, NetlinkError> {
        let (conn, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Ipv6Ifaddr]).map_err(
                |source| NetlinkError::Open {
                    multicast: true,
                    source,
                },
            )?;
        let task = spawn_connection(conn)?;
        Ok(AddressEvents {
            messages: messages.map(|(m, _)| m).boxed(),
            task,
        })
    }

    /// The next change; `None` once the socket is closed.
    pub async fn next(&mut self) -> Option<AddressEvent> {
        while let Some(msg) = self.messages.next().await {
            let (added, m) = match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => (true, m),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(m)) => (false, m),
                _ => continue,
            };
            let mut addr = None;
            // IFA_FLAGS (32 bits) when present, else the header's 8.
            let mut tentative = m.header.flags.contains(AddressHeaderFlags::Tentative);
            for a in &m.attributes {
                match a {
                    AddressAttribute::Address(IpAddr::V6(v6)) => addr = Some(*v6),
                    AddressAttribute::Flags(f) => tentative = f.contains(AddressFlags::Tentative),
                    _ => {}
                }
            }
            let Some(addr) = addr else { continue };
            let ifindex = m.header.index;
            match added {
                true if tentative => {}
                true => return Some(AddressEvent::Added { ifindex, addr }),
                false => return Some(AddressEvent::Removed { ifindex, addr }),
            }
        }
        None
    }
}
