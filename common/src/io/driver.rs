//! The one driver: it owns an [`Engine`] and moves bytes between it and the
//! host. [`Iface::Link`]`(i)` is the `i`-th link of [`Setup::links`], an
//! AF_PACKET socket with the kernel's IPv6 off; [`Iface::Stack`] is a TUN
//! device carrying the node's own addresses, so the kernel's applications
//! talk through the engine. Carrier changes become [`Command::LinkUp`] and
//! [`Command::LinkDown`], timers come from [`Engine::poll_timeout`], the
//! clock is read here and nowhere else. A Unix control socket answers
//! newline-delimited JSON requests; SIGINT and SIGTERM stop the driver,
//! SIGHUP calls back the daemon to re-read its configuration. With a
//! [`Store`] ([`Driver::keep`]), what the engine must keep across a
//! restart is committed before the packets queued with it are sent. On the way
//! out everything the driver changed on the host is put back: addresses
//! and routes, the TUN, sysctls, link state, the socket file.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::netlink::{Ipv6Address, Ipv6Route, LinkEvent, LinkEvents, Netlink, NetlinkError};
use super::packet::{
    Framing, PacketConfig, PacketError, PacketKind, PacketSocket, RecvBatch, SEND_BATCH,
};
use super::sysctl::{SysctlError, Sysctls};
use super::tun::{self, Installed, Tun, TunBatch, TunError, TunQueue};
use super::{Clock, KeyLog, Store, StoreError};
use crate::ike::IkeEvent;
use crate::ipsec::Direction;
use crate::keylog::KeyTable;
use crate::node::{
    Command, CommandError, Engine, Event, Iface, MacAddr, NodeStatus, Persist, Severity, Transmit,
};
use crate::time::Duration;

/// Big enough for any frame or TUN packet.
const BUFFER: usize = 65_536;
/// Frames a `recvmmsg` takes, and inputs handled before the engine's
/// output is sent.
const BATCH: usize = 32;
/// How long to sleep when the engine has no deadline.
const IDLE: Duration = Duration::from_secs(3600);

/// The node's own stack: a TUN device and what goes on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub name: String,
    pub mtu: u16,
    /// Addresses and prefix lengths (a mobile node's home address as a
    /// /128 that stays while it moves).
    pub addresses: Vec<(Ipv6Addr, u8)>,
    /// Destinations routed into the TUN (`::/0` for a node whose only
    /// IPv6 is ours).
    pub routes: Vec<(Ipv6Addr, u8)>,
}

/// What the driver opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// Interface names; `links[i]` is the engine's `Iface::Link(i)`.
    pub links: Vec<String>,
    pub stack: Stack,
    /// The control socket's path.
    pub control: Option<PathBuf>,
}

/// Why the driver could not start or stopped; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{0} (run as root, or give the program CAP_NET_ADMIN and CAP_NET_RAW)")]
    NotPermitted(String),
    #[error("no network interface named {0:?} (see `ip link`)")]
    NoInterface(String),
    #[error("{0} has no Ethernet address: links must be Ethernet-like (veth, NIC)")]
    NotEthernet(String),
    #[error("no /dev/net/tun: load the tun module (`modprobe tun`) or, in a container, pass the device in")]
    NoTun,
    #[error("control socket {path}: {source}")]
    Control {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("signal handlers: {0}")]
    Signals(#[source] io::Error),
    #[error("{0} is given twice")]
    Duplicate(String),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Tun(#[from] TunError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store: {0}")]
    Keep(CommandError),
}

/// What the driver itself dropped or failed to do, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DriverStats {
    pub link_received: u64,
    pub link_sent: u64,
    pub tun_received: u64,
    pub tun_sent: u64,
    pub drops: BTreeMap<&'static str, u64>,
}

/// A control request: one JSON object per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Everything: the engine's [`NodeStatus`] and the driver's counters.
    Status,
}

/// The answer to a [`Request`], one JSON object per line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Status {
        status: Box<NodeStatus>,
        driver: DriverStats,
        links: Vec<String>,
        stack: String,
    },
    Error {
        error: String,
    },
}

enum Input {
    Link {
        iface: u8,
        src: MacAddr,
        bytes: Vec<u8>,
    },
    Tun(Vec<u8>),
    Carrier {
        ifindex: u32,
        up: bool,
    },
    Control {
        line: String,
        reply: oneshot::Sender<String>,
    },
    /// A reader stopped.
    Failed(String),
    /// A reader dropped what it read, for this reason.
    Dropped(&'static str),
}

struct Link {
    name: String,
    ifindex: u32,
    mac: MacAddr,
    socket: Arc<PacketSocket>,
    carrier: bool,
    /// We set it administratively up, and put it down again on exit.
    raised: bool,
    /// Frames to send when the engine is done, with their destinations.
    queue: Vec<(Vec<u8>, [u8; 6])>,
}

/// An engine on its devices. [`Driver::open`] takes the devices,
/// [`Driver::run`] runs until a signal stops it and puts the host back.
pub struct Driver<E> {
    engine: E,
    clock: Clock,
    netlink: Netlink,
    links: Vec<Link>,
    tun: Arc<Tun>,
    /// Packets for the stack, written when the engine is done.
    stack: TunQueue,
    installed: Option<Installed>,
    sysctls: Sysctls,
    control: Option<PathBuf>,
    tx: mpsc::Sender<Input>,
    rx: mpsc::Receiver<Input>,
    tasks: Vec<JoinHandle<()>>,
    stats: DriverStats,
    setup: Setup,
    /// Where IKE's key-log rows go.
    keylog: Option<KeyLog>,
    /// What the engine keeps across restarts goes here.
    store: Option<Store>,
}

/// CAP_NET_ADMIN (12) and CAP_NET_RAW (13) in the effective set.
fn has_capabilities() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0 && caps & (1 << 13) != 0)
}

impl<E: Engine> Driver<E> {
    /// Opens every link and the TUN, switches the kernel's IPv6 off on
    /// the links, and puts the stack's addresses and routes on the TUN.
    /// Must run inside a Tokio runtime. Nothing stays changed on failure.
    pub async fn open(engine: E, setup: &Setup) -> Result<Self, DriverError> {
        if !has_capabilities() {
            return Err(DriverError::NotPermitted(
                "this program may not open packet sockets or change interfaces".into(),
            ));
        }
        if !Path::new("/dev/net/tun").exists() {
            return Err(DriverError::NoTun);
        }
        for (i, a) in setup.links.iter().enumerate() {
            if setup.links[..i].contains(a) {
                return Err(DriverError::Duplicate(format!("interface {a}")));
            }
        }
        let netlink = Netlink::new()?;
        let (tx, rx) = mpsc::channel(4096);
        let mut sysctls = Sysctls::new();
        let mut links: Vec<Link> = Vec::new();
        let opened = Self::open_links(&netlink, setup, &mut sysctls, &mut links).await;
        if let Err(e) = opened {
            Self::undo(&netlink, &mut links, &mut sysctls, None).await;
            return Err(e);
        }
        let tun = match Tun::open(&setup.stack.name, setup.stack.mtu, &netlink).await {
            Ok(t) => Arc::new(t),
            Err(e) => {
                Self::undo(&netlink, &mut links, &mut sysctls, None).await;
                return Err(e.into());
            }
        };
        let addresses: Vec<Ipv6Address> = setup
            .stack
            .addresses
            .iter()
            .map(|(a, len)| {
                let mut x = Ipv6Address::nodad(tun.ifindex(), *a, *len);
                x.flags.home = *len == 128;
                x
            })
            .collect();
        let routes: Vec<Ipv6Route> = setup
            .stack
            .routes
            .iter()
            .map(|(d, len)| tun.route(*d, *len))
            .collect();
        let installed = match tun::install(&netlink, &addresses, &routes).await {
            Ok(i) => i,
            Err(e) => {
                Self::undo(&netlink, &mut links, &mut sysctls, None).await;
                return Err(e.into());
            }
        };
        let mut driver = Driver {
            engine,
            clock: Clock::new(),
            netlink,
            links,
            tun,
            stack: TunQueue::default(),
            installed: Some(installed),
            sysctls,
            control: None,
            tx,
            rx,
            tasks: Vec::new(),
            stats: DriverStats::default(),
            setup: setup.clone(),
            keylog: None,
            store: None,
        };
        if let Err(e) = driver.start_tasks(setup.control.as_deref()) {
            driver.restore().await;
            return Err(e);
        }
        Ok(driver)
    }

    async fn open_links(
        netlink: &Netlink,
        setup: &Setup,
        sysctls: &mut Sysctls,
        links: &mut Vec<Link>,
    ) -> Result<(), DriverError> {
        for name in &setup.links {
            let info = match netlink.link_by_name(name).await {
                Ok(i) => i,
                Err(NetlinkError::NoSuchName(_)) => {
                    return Err(DriverError::NoInterface(name.clone()))
                }
                Err(e) => return Err(e.into()),
            };
            let mac = info
                .mac
                .map(MacAddr)
                .ok_or_else(|| DriverError::NotEthernet(name.clone()))?;
            sysctls.disable_ipv6(name)?;
            let raised = !info.up;
            if raised {
                netlink.set_link_up(info.ifindex).await?;
            }
            let mut cfg = PacketConfig::new(Framing::Ip);
            // Real NICs filter multicast by MAC; the solicited-node groups
            // of every address the engine takes must get through.
            cfg.all_multicast = true;
            let socket = PacketSocket::open(info.ifindex, &cfg)?;
            links.push(Link {
                name: name.clone(),
                ifindex: info.ifindex,
                mac,
                socket: Arc::new(socket),
                carrier: false,
                raised,
                queue: Vec::with_capacity(BATCH),
            });
        }
        Ok(())
    }

    /// Reader tasks for each link and the TUN, link events, the control
    /// socket.
    fn start_tasks(&mut self, control: Option<&Path>) -> Result<(), DriverError> {
        for (i, l) in self.links.iter().enumerate() {
            let iface = u8::try_from(i).unwrap_or(u8::MAX);
            let socket = l.socket.clone();
            let tx = self.tx.clone();
            self.tasks.push(tokio::spawn(read_link(iface, socket, tx)));
        }
        self.tasks
            .push(tokio::spawn(read_tun(self.tun.clone(), self.tx.clone())));
        let events = LinkEvents::new()?;
        self.tasks
            .push(tokio::spawn(read_carrier(events, self.tx.clone())));
        if let Some(path) = control {
            if path.exists() {
                // A stale socket of an earlier run that died: ours to take
                // only if nobody answers on it.
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(DriverError::Control {
                        path: path.to_path_buf(),
                        source: io::Error::new(
                            io::ErrorKind::AddrInUse,
                            "another daemon answers on it",
                        ),
                    });
                }
                let _ = std::fs::remove_file(path);
            }
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let listener = UnixListener::bind(path).map_err(|source| DriverError::Control {
                path: path.to_path_buf(),
                source,
            })?;
            self.control = Some(path.to_path_buf());
            self.tasks
                .push(tokio::spawn(serve_control(listener, self.tx.clone())));
        }
        Ok(())
    }

    /// Appends every key-log row IKE emits to `log` (Wireshark's tables).
    pub fn set_keylog(&mut self, log: Option<KeyLog>) {
        self.keylog = log;
    }

    /// Gives the engine back what `store` kept of an earlier run and from
    /// now on keeps in it what the engine reports, each batch committed
    /// before the packets queued with it leave. Call before
    /// [`Driver::run`]. On an error the host is put back, as when the
    /// driver stops.
    pub async fn keep(&mut self, store: Store) -> Result<(), DriverError> {
        let kept = self.keep_in(store);
        if kept.is_err() {
            self.restore().await;
        }
        kept
    }

    fn keep_in(&mut self, mut store: Store) -> Result<(), DriverError> {
        let now = self.clock.now();
        let saved = store.load(&self.clock)?;
        self.engine
            .restore(now, &saved)
            .map_err(DriverError::Keep)?;
        let sad = &self.engine.ipsec().sad;
        let live: std::collections::HashSet<u32> = sad
            .iter()
            .filter(|(_, s)| s.direction() == Direction::Outbound)
            .map(|(_, s)| s.spi())
            .collect();
        store.retain_sequences(|spi| live.contains(&spi))?;
        tracing::info!(
            "store {}: {} records given back, {} outbound SA counters kept",
            store.path().display(),
            saved.len(),
            live.len()
        );
        self.store = Some(store);
        self.persist()?;
        Ok(())
    }

    /// Commits what the engine reported to keep, in one transaction.
    fn persist(&mut self) -> Result<(), StoreError> {
        let Some(store) = &mut self.store else {
            return Ok(());
        };
        let records: Vec<Persist> = std::iter::from_fn(|| self.engine.poll_persist()).collect();
        if records.is_empty() {
            return Ok(());
        }
        store.write(&records, &self.clock)
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// Runs until SIGINT or SIGTERM, then puts the host back. `reload` is
    /// called on SIGHUP and says what it did (it is logged).
    pub async fn run(mut self, mut reload: impl FnMut(&mut E) -> String) -> Result<E, DriverError> {
        let mut term = signal(SignalKind::terminate()).map_err(DriverError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(DriverError::Signals)?;
        let mut hup = signal(SignalKind::hangup()).map_err(DriverError::Signals)?;
        self.initial_carrier().await;
        tracing::info!(
            links = ?self.setup.links,
            stack = %self.tun.name(),
            "running"
        );
        loop {
            if let Err(e) = self.pump() {
                // What was queued behind it must not leave unkept.
                tracing::error!("{e}: stopping");
                self.restore().await;
                return Err(e.into());
            }
            let deadline = self
                .engine
                .poll_timeout()
                .unwrap_or_else(|| self.clock.now() + IDLE);
            let sleep = tokio::time::sleep_until(self.clock.to_tokio(deadline));
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(i) => {
                        self.input(i);
                        self.more_input();
                    }
                    None => break,
                },
                () = sleep => {
                    // Engines take an early call; Tokio may wake late.
                    let now = self.clock.now();
                    self.engine.handle_timeout(now);
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping");
                    break;
                }
                _ = hup.recv() => {
                    let said = reload(&mut self.engine);
                    tracing::info!("SIGHUP: {said}");
                }
            }
        }
        self.restore().await;
        Ok(self.engine)
    }

    /// Tells the engine about the links that have carrier now.
    async fn initial_carrier(&mut self) {
        for i in 0..self.links.len() {
            let ifindex = self.links[i].ifindex;
            if let Ok(info) = self.netlink.link_by_index(ifindex).await {
                if info.carrier {
                    self.carrier(ifindex, true);
                }
            }
        }
    }

    fn drop_reason(&mut self, reason: &'static str) {
        *self.stats.drops.entry(reason).or_default() += 1;
    }

    fn input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Link { iface, src, bytes } => {
                self.stats.link_received += 1;
                self.engine
                    .handle_packet(now, Iface::Link(iface), Some(src), &bytes);
            }
            Input::Tun(bytes) => {
                self.stats.tun_received += 1;
                self.engine.handle_packet(now, Iface::Stack, None, &bytes);
            }
            Input::Carrier { ifindex, up } => self.carrier(ifindex, up),
            Input::Control { line, reply } => {
                let _ = reply.send(self.control(&line));
            }
            Input::Failed(what) => {
                tracing::error!("{what}");
                self.drop_reason("reader-failed");
            }
            Input::Dropped(reason) => self.drop_reason(reason),
        }
    }

    /// What else is queued, up to a batch, so the engine's output for all
    /// of it leaves together.
    fn more_input(&mut self) {
        for _ in 1..BATCH {
            match self.rx.try_recv() {
                Ok(i) => self.input(i),
                Err(_) => return,
            }
        }
    }

    fn carrier(&mut self, ifindex: u32, up: bool) {
        let Some(i) = self.links.iter().position(|l| l.ifindex == ifindex) else {
            return;
        };
        if self.links[i].carrier == up {
            return;
        }
        self.links[i].carrier = up;
        let iface = u8::try_from(i).unwrap_or(u8::MAX);
        let now = self.clock.now();
        let command = if up {
            Command::LinkUp {
                iface,
                mac: self.links[i].mac,
            }
        } else {
            Command::LinkDown(iface)
        };
        tracing::info!(link = %self.links[i].name, "carrier {}", if up { "up" } else { "down" });
        if let Err(e) = self.engine.handle_command(now, command) {
            tracing::error!(link = %self.links[i].name, "{e}");
        }
    }

    /// Adds what the kernel dropped at each link's full receive queue
    /// since the last look, which only the socket knows.
    fn count_queue_drops(&mut self) {
        for l in &self.links {
            match l.socket.take_queue_drops() {
                Ok(0) => {}
                Ok(n) => *self.stats.drops.entry("link-queue-full").or_default() += n,
                Err(e) => tracing::warn!(link = %l.name, "PACKET_STATISTICS: {e}"),
            }
        }
    }

    fn control(&mut self, line: &str) -> String {
        self.count_queue_drops();
        let reply = match serde_json::from_str::<Request>(line) {
            Ok(Request::Status) => Reply::Status {
                status: Box::new(
                    self.engine
                        .status(self.clock.now())
                        .with_ike(self.engine.ike()),
                ),
                driver: self.stats.clone(),
                links: self.links.iter().map(|l| l.name.clone()).collect(),
                stack: self.tun.name().to_string(),
            },
            Err(e) => Reply::Error {
                error: format!("bad request: {e}"),
            },
        };
        serde_json::to_string(&reply).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Sends what the engine queued and logs its events, until it is quiet;
    /// what it keeps goes to the store first.
    fn pump(&mut self) -> Result<(), StoreError> {
        loop {
            let mut busy = false;
            self.persist()?;
            while let Some(t) = self.engine.poll_transmit() {
                busy = true;
                self.send(t);
            }
            // Out before the log lines: a handoff's BUs should not wait
            // for the writes that tell of them.
            for i in 0..self.links.len() {
                self.flush(i);
            }
            self.flush_stack();
            // The sockets take every group (all-multicast): nothing to program.
            while self.engine.poll_membership().is_some() {}
            while let Some(e) = self.engine.poll_event() {
                busy = true;
                // Key material goes to the key log, never to the log.
                if let Event::Ike(IkeEvent::KeyLog { table, row }) = &e {
                    self.key_row(*table, row);
                    continue;
                }
                match e.severity() {
                    Severity::Info => tracing::info!("{e}"),
                    Severity::Warning => tracing::warn!("{e}"),
                    Severity::Error => tracing::error!("{e}"),
                }
            }
            if !busy {
                return Ok(());
            }
        }
    }

    /// Writes the packets queued for the stack, coalesced. A failed write
    /// counts every packet of the batch as dropped: which of the others
    /// went, the device does not say.
    fn flush_stack(&mut self) {
        let n = self.stack.len() as u64;
        match self.tun.try_send_queue(&mut self.stack) {
            Ok(sent) => self.stats.tun_sent += sent as u64,
            Err(e) => {
                tracing::debug!("TUN write: {e}");
                let reason = if e.kind() == io::ErrorKind::WouldBlock {
                    "tun-full"
                } else {
                    "tun-error"
                };
                *self.stats.drops.entry(reason).or_default() += n;
            }
        }
    }

    /// Sends a link's queued frames, batched.
    fn flush(&mut self, i: usize) {
        let link = &mut self.links[i];
        if link.queue.is_empty() {
            return;
        }
        let frames: Vec<(&[u8], [u8; 6])> = link
            .queue
            .iter()
            .map(|(bytes, dst)| (bytes.as_slice(), *dst))
            .collect();
        let out = link.socket.try_send_batch(&frames);
        if let Some(e) = &out.error {
            tracing::debug!(link = %link.name, "send: {e}");
        }
        link.queue.clear();
        self.stats.link_sent += out.sent as u64;
        for (reason, n) in [("link-full", out.full), ("link-error", out.failed)] {
            if n > 0 {
                *self.stats.drops.entry(reason).or_default() += n as u64;
            }
        }
    }

    fn key_row(&mut self, table: KeyTable, row: &str) {
        let Some(log) = &self.keylog else {
            return;
        };
        if let Err(e) = log.append(table, row) {
            tracing::warn!("key log {}: {e}", log.dir().display());
            self.drop_reason("keylog-error");
        }
    }

    fn send(&mut self, t: Transmit) {
        match (t.iface, t.dst_mac) {
            (Iface::Stack, _) => {
                self.stack.push(&t.bytes);
                if self.stack.len() >= SEND_BATCH {
                    self.flush_stack();
                }
            }
            (Iface::Link(i), Some(dst)) => {
                let i = usize::from(i);
                let Some(link) = self.links.get_mut(i) else {
                    return self.drop_reason("no-such-link");
                };
                link.queue.push((t.bytes, dst.0));
                if link.queue.len() >= SEND_BATCH {
                    self.flush(i);
                }
            }
            (Iface::Link(_), None) => self.drop_reason("no-destination-mac"),
        }
    }

    /// Puts the host back as it was.
    async fn restore(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(path) = self.control.take() {
            let _ = std::fs::remove_file(path);
        }
        Self::undo(
            &self.netlink,
            &mut self.links,
            &mut self.sysctls,
            self.installed.take(),
        )
        .await;
    }

    async fn undo(
        netlink: &Netlink,
        links: &mut Vec<Link>,
        sysctls: &mut Sysctls,
        installed: Option<Installed>,
    ) {
        if let Some(i) = installed {
            if let Err(e) = i.remove(netlink).await {
                tracing::warn!("removing the TUN's addresses and routes: {e}");
            }
        }
        for l in links.drain(..) {
            if l.raised {
                let _ = netlink.set_link_down(l.ifindex).await;
            }
        }
        if let Err(e) = sysctls.restore() {
            tracing::warn!("restoring sysctls: {e}");
        }
    }
}

async fn read_link(iface: u8, socket: Arc<PacketSocket>, tx: mpsc::Sender<Input>) {
    let mut batch = RecvBatch::new(BATCH, BUFFER);
    loop {
        if let Err(e) = socket.recv_batch(&mut batch).await {
            let _ = tx
                .send(Input::Failed(format!("{}: receive: {e}", socket.name())))
                .await;
            return;
        }
        for (r, bytes) in batch.packets() {
            // Frames for other MACs arrive on veth and promiscuous NICs.
            if matches!(r.kind, PacketKind::OtherHost | PacketKind::Outgoing) || r.truncated {
                continue;
            }
            let input = Input::Link {
                iface,
                src: MacAddr(r.src),
                bytes: bytes.to_vec(),
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
    }
}

async fn read_tun(tun: Arc<Tun>, tx: mpsc::Sender<Input>) {
    let mut batch = TunBatch::new(tun.mtu());
    loop {
        match tun.recv_batch(&mut batch).await {
            Ok(_) => {}
            Err(e) if e.raw_os_error().is_none() => {
                tracing::debug!("{}: {e}", tun.name());
                if tx.send(Input::Dropped("tun-unsplit")).await.is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                let _ = tx
                    .send(Input::Failed(format!("{}: receive: {e}", tun.name())))
                    .await;
                return;
            }
        }
        for packet in batch.packets() {
            // Only IPv6 is ours; the kernel may still hand the TUN IPv4.
            if packet.first().is_some_and(|b| b >> 4 == 6)
                && tx.send(Input::Tun(packet.to_vec())).await.is_err()
            {
                return;
            }
        }
    }
}

async fn read_carrier(mut events: LinkEvents, tx: mpsc::Sender<Input>) {
    while let Some(e) = events.next().await {
        let input = match e {
            LinkEvent::Changed(info) => Input::Carrier {
                ifindex: info.ifindex,
                up: info.carrier,
            },
            LinkEvent::Removed { ifindex } => Input::Carrier { ifindex, up: false },
        };
        if tx.send(input).await.is_err() {
            return;
        }
    }
    let _ = tx
        .send(Input::Failed("link events: netlink socket closed".into()))
        .await;
}

async fn serve_control(listener: UnixListener, tx: mpsc::Sender<Input>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve_connection(stream, tx.clone()));
    }
}

async fn serve_connection(stream: UnixStream, tx: mpsc::Sender<Input>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (reply, answer) = oneshot::channel();
        if tx.send(Input::Control { line, reply }).await.is_err() {
            return;
        }
        let Ok(mut text) = answer.await else {
            return;
        };
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Sends one request to a daemon's control socket and returns its reply
/// line (for the daemons' CLIs).
pub async fn request(path: &Path, request: &Request) -> io::Result<String> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    lines
        .next_line()
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no reply"))
}
