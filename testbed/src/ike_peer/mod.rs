//! `testbed ike`: our IKEv2 engine ([`common::ike::Ike`]) and ESP data
//! plane ([`common::ipsec::Ipsec`]) on real sockets and a TUN device, as
//! initiator or responder, for interop with strongSwan and for trying the
//! drafts between two of our nodes.
//!
//! - IKE on UDP [addr]:500 and [addr]:4500 of every local address.
//! - Packets read from the TUN device go through `Ipsec::outbound`; ESP
//!   leaves in UDP from/to the child's ports when it is UDP-encapsulated
//!   (RFC 3948, what charon/libipsec always does), else as raw IP protocol
//!   50. ESP that arrives either way goes through `Ipsec::inbound` and the
//!   decrypted packet into the TUN device.
//! - Commands on stdin, one per line (`testbed ike --help`); each gets one
//!   `ok VERB ...` or `error VERB: ...` line. Every engine event is one
//!   `event KIND key=value...` line on stdout, and `ready` comes once the
//!   sockets and the TUN device are up. The peer exits when stdin closes.
//! - Drops are counted (`status`) and, with `--verbose`, logged on stderr.

pub mod config;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use common::ike::{
    classify_natt, CloseReason, Datagram, Ike, IkeEvent, IkeSaId, IkeState, NattPayload, NATT_PORT,
};
use common::io::netlink::{AddressEvent, AddressEvents, Ipv6Address};
use common::io::udp::{self, AddressSockets, Received};
use common::io::{tun, Clock, Installed, KeyLog, Netlink, Tun, TunBatch, TunQueue};
use common::ipsec::{Inbound, Ipsec, Mode, Outbound, SaId};
use common::time::{earlier, Duration};
use tokio::sync::mpsc;

use self::config::{PeerSetup, TunConfig};

/// What the peer's loop waits for.
#[derive(Debug)]
enum Input {
    Socket(Received),
    /// A packet read from the TUN device.
    Tun(Vec<u8>),
    /// A line on stdin.
    Line(String),
    /// An address of the namespace came or went (`--follow-addresses`).
    Address(AddressEvent),
    /// stdin closed: time to go.
    Eof,
    /// A reader stopped on an error.
    Failed(String),
}

impl From<Received> for Input {
    fn from(r: Received) -> Input {
        Input::Socket(r)
    }
}

/// The stdin commands, as an unknown command's error lists them.
const COMMANDS: &str = "addresses ADDR... | initiate PEER | create-child SA CHILD | \
     rekey-child SA SPI | rekey-ike SA | delete SA | liveness SA | switch SA ADDR | status | quit \
     (SA: the 16 hex digits of an event's sa=, or * for the oldest)";

const HELP: &str =
    "Commands on stdin, one per line, each answered by `ok VERB ...` or `error VERB: ...`:
  addresses ADDR...      set the local addresses (binds new sockets, closes removed ones)
  initiate PEER          start an IKE SA with a configured peer
  create-child SA CHILD  another CHILD_SA from the peer's config
  rekey-child SA SPI     rekey the child with this inbound SPI (hex)
  rekey-ike SA | delete SA | liveness SA
  switch SA ADDR         R-MOBIKE: ask the initiator to move to our ADDR
  status | quit
SA is the 16 hex digits of an event's sa=, or * for the oldest.
Events on stdout: ready; event established|child-up|child-down|child-refused|moved|
switch-refused|address-mismatch|closed|keylog key=value...; with --follow-addresses,
event addresses ADDR... when the local set follows the namespace's addresses.";

/// `lo` in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// How long to sleep when neither engine has a deadline.
const IDLE: Duration = Duration::from_secs(3600);

#[derive(clap::Args, Debug)]
#[command(after_help = HELP)]
pub struct IkeArgs {
    /// The YAML configuration (see testbed/examples/ike-peer.yaml).
    #[arg(long)]
    pub config: PathBuf,
    /// Start an IKE SA with this configured peer once ready.
    #[arg(long, value_name = "PEER")]
    pub initiate: Option<String>,
    /// Append the session keys to DIR/ikev2_decryption_table and DIR/esp_sa
    /// and write DIR/preferences, so WIRESHARK_CONFIG_DIR=DIR tshark
    /// decrypts a capture (AES-GCM only: tshark has no ChaCha20).
    #[arg(long, value_name = "DIR")]
    pub keylog: Option<PathBuf>,
    /// Log every dropped packet on stderr.
    #[arg(long)]
    pub verbose: bool,
    /// Keep the local address set equal to the namespace's global IPv6
    /// addresses outside the TUN device and loopback, as netlink reports
    /// them come and go (starting from `local_addresses`); each change is
    /// an `event addresses` line.
    #[arg(long)]
    pub follow_addresses: bool,
}

/// Why the peer could not run; each names the device, address or file.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("/dev/urandom: {0}")]
    Seed(#[source] io::Error),
    #[error("tokio runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("--keylog {dir}: {source}")]
    KeyLog {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Socket(#[from] udp::UdpError),
    #[error("TUN device: {0}")]
    Tun(#[from] common::io::TunError),
    #[error("netlink: {0}")]
    Netlink(#[from] common::io::NetlinkError),
    #[error("tun: {0}: only IPv6 goes on the TUN device")]
    NotIpv6(common::ipsec::Prefix),
}

/// Runs the peer: exit code 2 for a bad configuration, 1 for a failure
/// to set up sockets or the TUN device, 0 after `quit` or end of stdin.
pub fn main(args: &IkeArgs) -> ExitCode {
    let mut setup = match config::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("testbed ike: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(peer) = &args.initiate {
        if !setup.ike.peers.iter().any(|p| &p.name == peer) {
            eprintln!(
                "testbed ike: --initiate {peer}: no peer of that name in {}",
                args.config.display()
            );
            return ExitCode::from(2);
        }
    }
    let result = random_seed().and_then(|seed| {
        setup.ike.seed = seed;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(PeerError::Runtime)?
            .block_on(run(setup, args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed ike: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The engine's RNG seed, from the kernel.
fn random_seed() -> Result<[u8; 32], PeerError> {
    let mut seed = [0; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(PeerError::Seed)?;
    Ok(seed)
}

async fn run(setup: PeerSetup, args: &IkeArgs) -> Result<(), PeerError> {
    let (tx, mut rx) = mpsc::channel(1024);
    let keylog = match &args.keylog {
        Some(dir) => Some(KeyLog::create(dir).map_err(|source| PeerError::KeyLog {
            dir: dir.clone(),
            source,
        })?),
        None => None,
    };
    let mut peer = Peer {
        ike: Ike::new(setup.ike),
        ipsec: Ipsec::default(),
        clock: Clock::new(),
        tx: tx.clone(),
        sockets: BTreeMap::new(),
        tun: None,
        keylog,
        drops: BTreeMap::new(),
        verbose: args.verbose,
        buf: Vec::new(),
        stack: TunQueue::default(),
    };
    peer.bind(&setup.local_addresses)?;
    if let Some(cfg) = &setup.tun {
        peer.tun = Some(open_tun(cfg, &tx).await?);
    }
    let result = serve(&mut peer, &mut rx, &tx, args).await;
    if let Some((_, installed)) = peer.tun.take() {
        if let Ok(nl) = Netlink::new() {
            let _ = installed.remove(&nl).await;
        }
    }
    result
}

/// The TUN device with its addresses and routes (through netlink), and
/// its reader.
async fn open_tun(
    cfg: &TunConfig,
    tx: &mpsc::Sender<Input>,
) -> Result<(Arc<Tun>, Installed), PeerError> {
    let nl = Netlink::new()?;
    let dev = Tun::open(&cfg.name, cfg.mtu, &nl).await.map(Arc::new)?;
    let v6 = |p: &common::ipsec::Prefix| match p.addr {
        IpAddr::V6(a) => Ok((a, p.len)),
        IpAddr::V4(_) => Err(PeerError::NotIpv6(*p)),
    };
    let addresses = cfg
        .addresses
        .iter()
        .map(|p| v6(p).map(|(a, len)| Ipv6Address::nodad(dev.ifindex(), a, len)))
        .collect::<Result<Vec<_>, _>>()?;
    let routes = cfg
        .routes
        .iter()
        .map(|p| v6(p).map(|(a, len)| dev.route(a, len)))
        .collect::<Result<Vec<_>, _>>()?;
    let installed = tun::install(&nl, &addresses, &routes).await?;
    tokio::spawn(read_tun(dev.clone(), tx.clone()));
    Ok((dev, installed))
}

async fn read_tun(dev: Arc<Tun>, tx: mpsc::Sender<Input>) {
    let mut batch = TunBatch::new(dev.mtu());
    let input = loop {
        match dev.recv_batch(&mut batch).await {
            Ok(_) => {}
            // One read that did not split, not the device.
            Err(e) if e.raw_os_error().is_none() => {
                eprintln!("testbed ike: TUN: {e}");
                continue;
            }
            Err(e) => break Input::Failed(format!("TUN: {e}")),
        }
        for packet in batch.packets() {
            if tx.send(Input::Tun(packet.to_vec())).await.is_err() {
                return;
            }
        }
    };
    let _ = tx.send(input).await;
}

async fn serve(
    peer: &mut Peer,
    rx: &mut mpsc::Receiver<Input>,
    tx: &mpsc::Sender<Input>,
    args: &IkeArgs,
) -> Result<(), PeerError> {
    let (tx, tx_events) = (tx.clone(), tx.clone());
    // A thread, not a tokio task: a blocked read on stdin must not keep
    // the runtime from shutting down.
    std::thread::spawn(move || read_stdin(&tx));
    if args.follow_addresses {
        tokio::spawn(read_addresses(AddressEvents::new()?, tx_events));
    }
    say("ready");
    if let Some(name) = &args.initiate {
        peer.command(&format!("initiate {name}"));
    }
    loop {
        peer.pump();
        let deadline = peer.next_deadline();
        let input = tokio::select! {
            input = rx.recv() => input,
            () = tokio::time::sleep_until(deadline) => {
                peer.on_timeout();
                continue;
            }
        };
        match input {
            None | Some(Input::Eof) => return Ok(()),
            Some(Input::Line(line)) => {
                if !peer.command(&line) {
                    return Ok(());
                }
            }
            Some(Input::Socket(Received::Udp {
                local,
                remote,
                bytes,
            })) => peer.on_udp(local, remote, bytes),
            Some(Input::Socket(Received::Esp {
                local,
                remote,
                bytes,
            })) => peer.on_esp(local, remote, &bytes),
            Some(Input::Tun(packet)) => peer.on_tun(&packet),
            Some(Input::Address(e)) => peer.on_address(e),
            Some(Input::Failed(e) | Input::Socket(Received::Failed(e))) => {
                eprintln!("testbed ike: reader stopped: {e}")
            }
        }
    }
}

async fn read_addresses(mut events: AddressEvents, tx: mpsc::Sender<Input>) {
    while let Some(e) = events.next().await {
        if tx.send(Input::Address(e)).await.is_err() {
            return;
        }
    }
    let _ = tx
        .send(Input::Failed("netlink address events closed".to_string()))
        .await;
}

fn read_stdin(tx: &mpsc::Sender<Input>) {
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if tx.blocking_send(Input::Line(line)).is_err() {
            return;
        }
    }
    let _ = tx.blocking_send(Input::Eof);
}

/// One line on stdout. A closed stdout is no reason to stop (or panic).
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Peer {
    ike: Ike,
    ipsec: Ipsec,
    clock: Clock,
    /// For the readers of sockets bound later.
    tx: mpsc::Sender<Input>,
    sockets: BTreeMap<IpAddr, AddressSockets>,
    tun: Option<(Arc<Tun>, Installed)>,
    keylog: Option<KeyLog>,
    /// The driver's own drops; the engines count theirs.
    drops: BTreeMap<&'static str, u64>,
    verbose: bool,
    /// Reused for what `Ipsec` writes.
    buf: Vec<u8>,
    /// Reused for the TUN writes.
    stack: TunQueue,
}

impl Peer {
    /// Makes `addresses` the local address set: binds the new ones (all or
    /// nothing), closes the removed ones, tells the engine.
    fn bind(&mut self, addresses: &[IpAddr]) -> Result<(), udp::UdpError> {
        let mut fresh = BTreeMap::new();
        for a in addresses {
            if !self.sockets.contains_key(a) && !fresh.contains_key(a) {
                fresh.insert(*a, AddressSockets::bind(*a, &self.tx)?);
            }
        }
        self.sockets.retain(|a, _| addresses.contains(a));
        self.sockets.extend(fresh);
        let list: Vec<IpAddr> = self.sockets.keys().copied().collect();
        let now = self.clock.now();
        self.ike.set_local_addresses(now, &list);
        Ok(())
    }

    /// `--follow-addresses`: a global address outside the TUN device and
    /// loopback joins the local set when it comes and leaves it when it goes.
    fn on_address(&mut self, e: AddressEvent) {
        let (AddressEvent::Added { ifindex, addr } | AddressEvent::Removed { ifindex, addr }) = e;
        let tun = self.tun.as_ref().map(|(dev, _)| dev.ifindex());
        if ifindex == LOOPBACK_IFINDEX
            || Some(ifindex) == tun
            || addr.is_unicast_link_local()
            || addr.is_multicast()
        {
            return;
        }
        let mut list: Vec<IpAddr> = self.sockets.keys().copied().collect();
        let addr = IpAddr::V6(addr);
        match e {
            AddressEvent::Added { .. } if !list.contains(&addr) => list.push(addr),
            AddressEvent::Removed { .. } if list.contains(&addr) => list.retain(|a| *a != addr),
            _ => return,
        }
        match self.bind(&list) {
            Ok(()) => say(&format!("event addresses {}", join(self.sockets.keys()))),
            Err(err) => say(&format!("event addresses-failed {addr}: {err}")),
        }
    }

    fn next_deadline(&self) -> tokio::time::Instant {
        match earlier(self.ike.poll_timeout(), self.ipsec.poll_timeout()) {
            Some(at) => self.clock.to_tokio(at),
            None => self.clock.to_tokio(self.clock.now() + IDLE),
        }
    }

    fn on_timeout(&mut self) {
        let now = self.clock.now();
        self.ike.handle_timeout(now, &mut self.ipsec);
        self.ipsec.handle_timeout(now);
    }

    /// Sends what the engine queued and reports its events, until both
    /// engines are quiet.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(e) = self.ipsec.poll_event() {
                let now = self.clock.now();
                self.ike.handle_ipsec_event(now, e, &mut self.ipsec);
                busy = true;
            }
            while let Some(d) = self.ike.poll_transmit() {
                self.send_datagram(&d);
                busy = true;
            }
            while let Some(e) = self.ike.poll_event() {
                self.on_event(e);
                busy = true;
            }
            if !busy {
                return;
            }
        }
    }

    fn drop_packet(&mut self, reason: &'static str, detail: impl std::fmt::Display) {
        *self.drops.entry(reason).or_default() += 1;
        if self.verbose {
            eprintln!("drop {reason}: {detail}");
        }
    }

    fn send_datagram(&mut self, d: &Datagram) {
        let Some(socket) = self
            .sockets
            .get(&d.local.ip())
            .and_then(|s| s.udp(d.local.port()))
        else {
            return self.drop_packet("no-socket", format!("IKE from {}", d.local));
        };
        if let Err(e) = socket.send_to(&d.bytes, d.remote) {
            self.drop_packet(
                "send-error",
                format!("IKE {} -> {}: {e}", d.local, d.remote),
            );
        }
    }

    fn on_udp(&mut self, local: SocketAddr, remote: SocketAddr, bytes: Vec<u8>) {
        if local.port() == NATT_PORT {
            match classify_natt(&bytes) {
                NattPayload::Keepalive => return,
                NattPayload::Esp => return self.on_esp(local.ip(), remote.ip(), &bytes),
                NattPayload::Ike => {}
            }
        }
        let now = self.clock.now();
        let d = Datagram {
            local,
            remote,
            bytes,
        };
        self.ike.handle_datagram(now, d, &mut self.ipsec);
    }

    /// ESP from `remote` to our `local`, raw or out of UDP.
    fn on_esp(&mut self, local: IpAddr, remote: IpAddr, esp: &[u8]) {
        let Some(packet) = udp::esp_in_ip(remote, local, esp) else {
            return self.drop_packet("esp-too-big", format!("{} bytes from {remote}", esp.len()));
        };
        let now = self.clock.now();
        let mut out = core::mem::take(&mut self.buf);
        out.clear();
        match self.ipsec.inbound(now, &packet, &mut out) {
            Ok(Inbound::Decrypted { .. }) => self.deliver(&out),
            Ok(Inbound::Clear) => self.drop_packet("clear", format!("from {remote}")),
            Err(e) => {
                if self.verbose {
                    eprintln!("drop esp-in: {e} (from {remote})");
                }
            }
        }
        self.buf = out;
    }

    /// A decrypted packet, into the TUN device.
    fn deliver(&mut self, packet: &[u8]) {
        let Some((tun, _)) = &self.tun else {
            return self.drop_packet("no-tun", "decrypted packet");
        };
        // Unlike a fresh socket, the device has long been seen writable
        // by now: WouldBlock here means its queue is full.
        self.stack.push(packet);
        if let Err(e) = tun.try_send_queue(&mut self.stack) {
            self.drop_packet("tun-write", e);
        }
    }

    /// A packet from the TUN device: seal it and send the ESP.
    fn on_tun(&mut self, packet: &[u8]) {
        let now = self.clock.now();
        let mut out = core::mem::take(&mut self.buf);
        out.clear();
        match self.ipsec.outbound(now, packet, &mut out) {
            Ok(Outbound::Protected { sa }) => self.send_esp(sa, &out),
            Ok(Outbound::Clear) => self.drop_packet("clear", "TUN packet no SA protects"),
            Err(e) => {
                if self.verbose {
                    eprintln!("drop esp-out: {e}");
                }
            }
        }
        self.buf = out;
    }

    fn send_esp(&mut self, sa: SaId, packet: &[u8]) {
        let Some((src, dst, esp)) = udp::split_esp(packet) else {
            return self.drop_packet("esp-after-extension-headers", "sealed packet");
        };
        let encap = self.udp_encap(sa);
        let sockets = self.sockets.get(&src);
        let (socket, to) = match encap {
            Some((lport, rport)) => (
                sockets.and_then(|s| s.udp(lport)),
                SocketAddr::new(dst, rport),
            ),
            None => (sockets.map(|s| &s.esp), SocketAddr::new(dst, 0)),
        };
        let Some(socket) = socket else {
            return self.drop_packet("no-socket", format!("ESP from {src}"));
        };
        if let Err(e) = socket.send_to(esp, to) {
            self.drop_packet("send-error", format!("ESP {src} -> {to}: {e}"));
        }
    }

    /// The (local, remote) UDP ports when the ESP of outbound SA `sa` goes
    /// in UDP (RFC 3948): its IKE SA's, which the engine keeps current
    /// through moves and IKE rekeys (as in `ChildInfo::udp_encap`).
    fn udp_encap(&self, sa: SaId) -> Option<(u16, u16)> {
        self.ike
            .sa_ids()
            .filter_map(|id| self.ike.sa(id))
            .find_map(|ike| {
                let child = ike.children.iter().find(|c| c.outbound == sa)?;
                Some(
                    child
                        .udp_encap
                        .then_some((ike.local.port(), ike.remote.port())),
                )
            })?
    }

    fn on_event(&mut self, e: IkeEvent) {
        let line = match e {
            IkeEvent::Established {
                sa,
                peer,
                local,
                remote,
            } => format!(
                "event established sa={} peer={peer} local={local} remote={remote}",
                hex(sa)
            ),
            IkeEvent::ChildUp { sa, child } => format!(
                    "event child-up sa={} name={} spi_in={:#010x} spi_out={:#010x} mode={} outer={}->{} encap={}",
                    hex(sa),
                    child.name,
                    child.spi_in,
                    child.spi_out,
                    mode(child.mode),
                    child.addresses.local,
                    child.addresses.peer,
                    yes_no(child.udp_encap.is_some())
                ),
            IkeEvent::ChildDown {
                sa,
                spi_in,
                spi_out,
            } => format!(
                "event child-down sa={} spi_in={spi_in:#010x} spi_out={spi_out:#010x}",
                hex(sa)
            ),
            IkeEvent::Moved { sa, local, remote } => {
                format!("event moved sa={} local={local} remote={remote}", hex(sa))
            }
            IkeEvent::SwitchRefused { sa, to } => {
                format!("event switch-refused sa={} to={to}", hex(sa))
            }
            IkeEvent::AddressMismatch { sa } => {
                format!("event address-mismatch sa={}", hex(sa))
            }
            IkeEvent::ChildRefused {
                sa,
                notify,
                by_peer,
            } => format!(
                "event child-refused sa={} notify={notify:?} by={}",
                hex(sa),
                if by_peer { "peer" } else { "us" }
            ),
            IkeEvent::Closed { sa, reason } => {
                format!(
                    "event closed sa={} reason={}",
                    hex(sa),
                    close_reason(reason)
                )
            }
            IkeEvent::KeyLog { table, row } => {
                if let Some(log) = &self.keylog {
                    if let Err(e) = log.append(table, &row) {
                        eprintln!("testbed ike: key log {}: {e}", log.dir().display());
                    }
                }
                format!("event keylog table={}", table.file_name())
            }
        };
        say(&line);
    }

    /// Carries out one stdin line; false after `quit`.
    fn command(&mut self, line: &str) -> bool {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return true;
        };
        if verb == "quit" {
            say("ok quit");
            return false;
        }
        match self.run_command(verb, args) {
            Ok(detail) if detail.is_empty() => say(&format!("ok {verb}")),
            Ok(detail) => say(&format!("ok {verb} {detail}")),
            Err(e) => say(&format!("error {verb}: {e}")),
        }
        true
    }

    fn run_command(&mut self, verb: &str, args: &[&str]) -> Result<String, String> {
        let now = self.clock.now();
        let e = |e: common::ike::IkeError| e.to_string();
        match (verb, args) {
            ("addresses", list) => {
                let addresses = list
                    .iter()
                    .map(|a| a.parse().map_err(|_| format!("{a:?} is not an address")))
                    .collect::<Result<Vec<IpAddr>, String>>()?;
                self.bind(&addresses).map_err(|e| e.to_string())?;
                Ok(join(self.sockets.keys()))
            }
            ("initiate", [name]) => {
                let sa = self.ike.initiate(now, name).map_err(e)?;
                Ok(format!("sa={}", hex(sa)))
            }
            ("create-child", [sa, child]) => {
                let sa = self.sa(sa)?;
                self.ike
                    .create_child(now, sa, child, &self.ipsec)
                    .map_err(e)?;
                Ok(String::new())
            }
            ("rekey-child", [sa, spi]) => {
                let sa = self.sa(sa)?;
                let spi = u32::from_str_radix(spi.trim_start_matches("0x"), 16)
                    .map_err(|_| format!("{spi:?} is not a hex SPI"))?;
                self.ike.rekey_child(now, sa, spi, &self.ipsec).map_err(e)?;
                Ok(String::new())
            }
            ("rekey-ike", [sa]) => {
                let sa = self.sa(sa)?;
                self.ike.rekey_ike(now, sa).map_err(e)?;
                Ok(String::new())
            }
            ("delete", [sa]) => {
                let sa = self.sa(sa)?;
                self.ike.delete(now, sa).map_err(e)?;
                Ok(String::new())
            }
            ("liveness", [sa]) => {
                let sa = self.sa(sa)?;
                self.ike.liveness(now, sa).map_err(e)?;
                Ok(String::new())
            }
            ("switch", [sa, to]) => {
                let sa = self.sa(sa)?;
                let to = to
                    .parse()
                    .map_err(|_| format!("{to:?} is not an address"))?;
                self.ike.request_switch(now, sa, to).map_err(e)?;
                Ok(String::new())
            }
            ("status", []) => {
                self.print_status();
                Ok(String::new())
            }
            _ => Err(format!("expected one of: {COMMANDS}")),
        }
    }

    /// `*` (the oldest established SA) or the hex id of an event's `sa=`.
    fn sa(&self, word: &str) -> Result<IkeSaId, String> {
        if word == "*" {
            return self
                .ike
                .sa_ids()
                .filter_map(|id| {
                    self.ike
                        .sa(id)
                        .map(|s| (s.established_at().is_none(), s.established_at(), id))
                })
                .min()
                .map(|(_, _, id)| id)
                .ok_or_else(|| "no IKE SA".to_string());
        }
        u64::from_str_radix(word, 16)
            .map(IkeSaId)
            .map_err(|_| format!("{word:?} is not an SA id (16 hex digits) or *"))
    }

    fn print_status(&self) {
        let mut ids: Vec<IkeSaId> = self.ike.sa_ids().collect();
        ids.sort();
        for id in ids {
            let Some(sa) = self.ike.sa(id) else { continue };
            let peer = sa
                .peer()
                .and_then(|i| self.ike.config().peers.get(i))
                .map_or("-".to_string(), |p| p.id.to_string());
            let state = match sa.state() {
                IkeState::AwaitingInitResponse => "awaiting-init-response",
                IkeState::AwaitingAuthRequest => "awaiting-auth-request",
                IkeState::AwaitingAuthResponse => "awaiting-auth-response",
                IkeState::Established => "established",
            };
            say(&format!(
                "sa {} state={state} role={} peer={peer} local={} remote={} nat={} mobike={}",
                hex(id),
                if sa.initiator {
                    "initiator"
                } else {
                    "responder"
                },
                sa.local,
                sa.remote,
                yes_no(sa.nat()),
                yes_no(sa.mobike)
            ));
            for c in &sa.children {
                // The SAD has the current outer addresses (moves update it).
                let outer = self
                    .ipsec
                    .sad
                    .get(c.outbound)
                    .map_or(c.addresses, |s| s.addresses());
                say(&format!(
                    "child sa={} name={} spi_in={:#010x} spi_out={:#010x} mode={} outer={}->{} encap={}",
                    hex(id),
                    c.name,
                    c.spi_in,
                    c.spi_out,
                    mode(c.mode),
                    outer.local,
                    outer.peer,
                    yes_no(c.udp_encap)
                ));
            }
        }
        let ike = self.ike.stats();
        let esp = self.ipsec.stats();
        let counts = |it: &mut dyn Iterator<Item = (String, u64)>| {
            let v: Vec<String> = it.map(|(k, n)| format!("{k}:{n}")).collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(",")
            }
        };
        say(&format!(
            "stats ike-received={} ike-drops={} esp-sealed={} esp-opened={} esp-drops={} driver-drops={}",
            ike.received,
            counts(&mut ike.drops().map(|(r, n)| (format!("{r:?}"), n))),
            esp.sealed,
            esp.opened,
            counts(&mut esp.drops().map(|(r, n)| (format!("{r:?}"), n))),
            counts(&mut self.drops.iter().map(|(r, n)| (r.to_string(), *n))),
        ));
    }
}

fn hex(sa: IkeSaId) -> String {
    format!("{:016x}", sa.0)
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn mode(m: Mode) -> &'static str {
    match m {
        Mode::Tunnel => "tunnel",
        Mode::Transport => "transport",
    }
}

fn close_reason(r: CloseReason) -> &'static str {
    match r {
        CloseReason::Deleted => "deleted",
        CloseReason::Timeout => "timeout",
        CloseReason::AuthenticationFailed => "authentication-failed",
        CloseReason::NoProposalChosen => "no-proposal-chosen",
        CloseReason::Rekeyed => "rekeyed",
        CloseReason::InitialContact => "initial-contact",
    }
}
