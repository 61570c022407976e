//! `testbed router --config FILE`: the real demo's router, a process that
//! joins several real links and behaves like the simulator's links and its
//! router ([`super::fabric`] has the behaviour; this is its I/O).
//!
//! - Each port (an interface in the router's namespace, normally a veth
//!   end) gets an AF_PACKET socket with Ethernet framing, IPv6 only; the
//!   kernel's IPv6 is switched off on it (`disable_ipv6=1`, put back on
//!   exit) so the kernel neither answers nor forwards there, and it is set
//!   up. The router's MAC on a link is its first port's.
//! - Carrier comes from rtnetlink link events: a port that is down or has
//!   no carrier gets nothing (counted as `port_down`). The demo moves a
//!   host by setting the router-side veth of its old port down and of its
//!   new one up.
//! - Timers (the delay queue and the router's) run on
//!   [`common::io::Clock`], the one clock read. Pcap timestamps are that
//!   clock plus the wall-clock time read once at start, so Wireshark shows
//!   real times.
//! - stdin, one command a line: `link NAME up|down` (answered `ok link
//!   NAME up|down`), `status` (one JSON line: per link its state, MAC,
//!   link-local address, ports and counters `sent lost too_big down
//!   unreachable port_down send_errors queue_full malformed`; the router's
//!   `forwarded no_route hop_limit_exceeded unresolved malformed`),
//!   `quit` (`ok quit`, exit). End of stdin exits too, so keep it open.
//!   `ready` is printed once every port is open, and the `status` line
//!   once more on exit. SIGINT and SIGTERM exit cleanly: sysctls put
//!   back, pcaps flushed.
//! - Exit status: 0 after `quit`, end of stdin or a signal; 2 (with one
//!   line on stderr) for a mistake in the file, a missing interface, or
//!   not being root; 1 for any other failure.
//!
//! Frames that a kernel's TCP sends over a veth may come as GSO
//! super-frames with partial checksums: switch transmit offload off on the
//! hosts' ends (`ethtool -K DEV tx off`) when TCP goes through the router.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;

use common::io::{
    Clock, Framing, LinkEvent, LinkEvents, Netlink, NetlinkError, PacketConfig, PacketSocket,
    RecvBatch, Sysctls,
};
use common::time::{Duration, Instant};
use common::wire::MacAddr;
use serde_json::{json, Value};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use super::config::{self, RouterConfig};
use super::fabric::Fabric;
use super::timer::Timer;
use crate::harness::netns::is_root;
use crate::tools::pcap::PcapWriter;

const HELP: &str = "Commands on stdin, one per line:
  link NAME up|down   take a link down (it drops everything, counted) or up
  status              one JSON line: every link's state and counters, the router's counters
  quit                exit (so does the end of stdin, SIGINT and SIGTERM)
`ready` is printed once every port is open, the status line again on exit.";

/// How long to sleep when nothing is scheduled (the router always has
/// its next RA, so only in theory).
const IDLE: Duration = Duration::from_secs(3600);

/// How often the pcaps are flushed while running.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A receive buffer: the largest IPv6 packet and its Ethernet header.
const FRAME_BUFFER: usize = 65_535 + 40 + 14;
/// Frames a `recvmmsg` takes, and frames handled before the fabric's
/// output is sent.
const BATCH: usize = 32;

#[derive(clap::Args, Debug)]
#[command(after_help = HELP)]
pub struct RouterArgs {
    /// The YAML configuration: `links: [{ name, prefix, delay_ms,
    /// jitter_ms, loss, mtu, ports, up }]`, `ra_interval_ms`, `seed`,
    /// `pcap_dir` (see testbed::real::config).
    #[arg(long)]
    pub config: PathBuf,
}

/// Why the router stops before it is ready.
#[derive(Debug)]
enum Failure {
    /// Exit 2: what a person must fix (the file, an interface, root).
    Refused(String),
    /// Exit 1.
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(e.to_string())
}

/// Runs the router. See the module doc for the exit status.
pub fn main(args: &RouterArgs) -> ExitCode {
    let result = config::load(&args.config)
        .map_err(|e| Failure::Refused(e.to_string()))
        .and_then(|cfg| {
            if !is_root() {
                return Err(Failure::Refused(
                    "must run as root (AF_PACKET sockets, sysctls, links)".to_string(),
                ));
            }
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| failed(format!("tokio runtime: {e}")))?
                .block_on(run(cfg, &args.config))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(e)) => {
            eprintln!("testbed router: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("testbed router: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The wall-clock time, in microseconds since the Unix epoch.
#[expect(
    clippy::disallowed_methods,
    reason = "pcap timestamps are real times: the wall clock is read once at start, then the process clock adds to it"
)]
fn wall_clock_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

enum Input {
    Frame {
        port: usize,
        bytes: Vec<u8>,
    },
    Line(String),
    Eof,
    Link(LinkEvent),
    /// A reader gave up (its interface is gone, or an unexpected error).
    Stopped(String),
}

/// One line on stdout. A closed stdout is no reason to stop (or panic).
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A pcap file that can be flushed while its [`PcapWriter`] owns it.
#[derive(Clone)]
struct SharedFile(Rc<RefCell<BufWriter<File>>>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

struct Pcap {
    path: PathBuf,
    writer: PcapWriter<SharedFile>,
    file: SharedFile,
    /// The first write error; the file is given up after it.
    failed: bool,
}

struct Process {
    fabric: Fabric,
    clock: Clock,
    /// The wall clock at `Clock`'s start, µs since the epoch.
    wall_start: u64,
    sockets: Vec<Arc<PacketSocket>>,
    /// ifindex → port, for link events.
    by_ifindex: HashMap<u32, usize>,
    /// One per link, with `pcap_dir`.
    pcaps: Vec<Pcap>,
    last_flush: Instant,
}

/// The opened ports, before anything runs.
struct Ports {
    sockets: Vec<Arc<PacketSocket>>,
    macs: Vec<MacAddr>,
    usable: Vec<bool>,
    by_ifindex: HashMap<u32, usize>,
}

/// Looks every port up, switches the kernel's IPv6 off on it, sets it up
/// and opens its socket.
async fn open_ports(
    cfg: &RouterConfig,
    path: &Path,
    netlink: &Netlink,
    sysctls: &mut Sysctls,
) -> Result<Ports, Failure> {
    let mut ports = Ports {
        sockets: vec![],
        macs: vec![],
        usable: vec![],
        by_ifindex: HashMap::new(),
    };
    let packet = PacketConfig::new(Framing::Ethernet { ipv6_only: true });
    for (i, l) in cfg.links.iter().enumerate() {
        for (j, name) in l.ports.iter().enumerate() {
            let info = match netlink.link_by_name(name).await {
                Ok(info) => info,
                Err(NetlinkError::NoSuchName(_)) => {
                    return Err(Failure::Refused(format!(
                        "{}: links[{i}].ports[{j}]: no interface named {name:?} in this network namespace",
                        path.display()
                    )))
                }
                Err(e) => return Err(failed(e)),
            };
            sysctls.disable_ipv6(name).map_err(failed)?;
            netlink.set_link_up(info.ifindex).await.map_err(failed)?;
            let socket = PacketSocket::open(info.ifindex, &packet).map_err(failed)?;
            let now = netlink.link_by_index(info.ifindex).await.map_err(failed)?;
            ports.by_ifindex.insert(info.ifindex, ports.sockets.len());
            ports.macs.push(MacAddr(socket.mac()));
            ports.usable.push(now.up && now.carrier);
            ports.sockets.push(Arc::new(socket));
        }
    }
    Ok(ports)
}

fn open_pcaps(cfg: &RouterConfig) -> Result<Vec<Pcap>, Failure> {
    let Some(dir) = &cfg.pcap_dir else {
        return Ok(vec![]);
    };
    fs::create_dir_all(dir).map_err(|e| failed(format!("pcap_dir {}: {e}", dir.display())))?;
    cfg.links
        .iter()
        .map(|l| {
            let path = dir.join(format!("{}.pcap", l.name));
            let file = File::create(&path)
                .map(|f| SharedFile(Rc::new(RefCell::new(BufWriter::new(f)))))
                .map_err(|e| failed(format!("{}: {e}", path.display())))?;
            let writer = PcapWriter::new(file.clone())
                .map_err(|e| failed(format!("{}: {e}", path.display())))?;
            Ok(Pcap {
                path,
                writer,
                file,
                failed: false,
            })
        })
        .collect()
}

async fn run(cfg: RouterConfig, path: &Path) -> Result<(), Failure> {
    // Before anything is changed, so a signal from now on is handled.
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| failed(format!("SIGINT: {e}")))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| failed(format!("SIGTERM: {e}")))?;
    // Subscribed first: no carrier change between the look-ups and the
    // loop is missed.
    let events = LinkEvents::new().map_err(failed)?;
    let netlink = Netlink::new().map_err(failed)?;
    let timer = Timer::new().map_err(|e| failed(format!("timerfd: {e}")))?;
    let mut sysctls = Sysctls::new();
    let ports = open_ports(&cfg, path, &netlink, &mut sysctls).await?;
    let pcaps = open_pcaps(&cfg)?;

    let clock = Clock::new();
    let wall_start = wall_clock_micros();
    let mut fabric = Fabric::new(clock.now(), &cfg, &ports.macs, !pcaps.is_empty());
    for (p, usable) in ports.usable.iter().enumerate() {
        fabric.set_port_usable(p, *usable);
    }
    let (tx, mut rx) = mpsc::channel(4096);
    for (p, socket) in ports.sockets.iter().enumerate() {
        tokio::spawn(read_port(Arc::clone(socket), p, tx.clone()));
    }
    tokio::spawn(link_events(events, tx.clone()));
    // A thread, not a task: a blocked read of stdin must not keep the
    // runtime from shutting down.
    std::thread::spawn(move || read_stdin(&tx));
    let mut p = Process {
        fabric,
        last_flush: clock.now(),
        clock,
        wall_start,
        sockets: ports.sockets,
        by_ifindex: ports.by_ifindex,
        pcaps,
    };
    say("ready");
    let result = p.run(&timer, &mut rx, &mut sigint, &mut sigterm).await;
    p.drain();
    p.flush_pcaps();
    // The counters at exit, for whoever reads the log after a run.
    say(&p.status().to_string());
    let restored = sysctls
        .restore()
        .map_err(|e| failed(format!("restoring sysctls: {e}")));
    result.and(restored)
}

/// Reads one port's frames until its interface is gone.
async fn read_port(socket: Arc<PacketSocket>, port: usize, tx: mpsc::Sender<Input>) {
    let mut batch = RecvBatch::new(BATCH, FRAME_BUFFER);
    loop {
        match socket.recv_batch(&mut batch).await {
            Ok(_) => {
                for (_, bytes) in batch.packets() {
                    let bytes = bytes.to_vec();
                    if tx.send(Input::Frame { port, bytes }).await.is_err() {
                        return;
                    }
                }
            }
            // The interface went down: the socket says so once, and hears
            // again when it comes back up.
            Err(e) if e.kind() == io::ErrorKind::NetworkDown => {}
            Err(e) => {
                let what = format!("{}: receiving stopped: {e}", socket.name());
                let _ = tx.send(Input::Stopped(what)).await;
                return;
            }
        }
    }
}

async fn link_events(mut events: LinkEvents, tx: mpsc::Sender<Input>) {
    while let Some(e) = events.next().await {
        if tx.send(Input::Link(e)).await.is_err() {
            return;
        }
    }
    let _ = tx
        .send(Input::Stopped(
            "link events stopped: carrier changes are no longer seen".to_string(),
        ))
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

impl Process {
    /// The main loop, until `quit`, the end of stdin or a signal.
    async fn run(
        &mut self,
        timer: &Timer,
        rx: &mut mpsc::Receiver<Input>,
        sigint: &mut Signal,
        sigterm: &mut Signal,
    ) -> Result<(), Failure> {
        let timerfd = |e: io::Error| failed(format!("timerfd: {e}"));
        loop {
            self.drain();
            let now = self.clock.now();
            let next = self.fabric.poll_timeout().unwrap_or(now + IDLE);
            timer
                .arm(next.saturating_duration_since(now))
                .map_err(timerfd)?;
            tokio::select! {
                _ = sigint.recv() => return Ok(()),
                _ = sigterm.recv() => return Ok(()),
                fired = timer.fired() => fired.map_err(timerfd)?,
                input = rx.recv() => match input {
                    None | Some(Input::Eof) => return Ok(()),
                    Some(Input::Line(line)) => {
                        if !self.command(&line) {
                            return Ok(());
                        }
                    }
                    Some(Input::Frame { port, bytes }) => {
                        let now = self.clock.now();
                        self.fabric.handle_frame(now, port, &bytes);
                        // What else came, up to a batch, before the sends.
                        for _ in 1..BATCH {
                            let Ok(Input::Frame { port, bytes }) = rx.try_recv() else {
                                break;
                            };
                            self.fabric.handle_frame(now, port, &bytes);
                        }
                    }
                    Some(Input::Link(e)) => self.link_event(e),
                    Some(Input::Stopped(e)) => eprintln!("testbed router: {e}"),
                },
            }
            let now = self.clock.now();
            self.fabric.handle_timeout(now);
        }
    }

    /// Sends what the fabric has for the ports and writes its captures.
    fn drain(&mut self) {
        let mut queues: Vec<Vec<Vec<u8>>> = vec![Vec::new(); self.sockets.len()];
        while let Some((port, frame)) = self.fabric.poll_send() {
            queues[port].push(frame);
        }
        for (port, queue) in queues.iter().enumerate() {
            let frames: Vec<(&[u8], [u8; 6])> = queue
                .iter()
                .map(|f| {
                    let mut dst = [0u8; 6];
                    dst.copy_from_slice(&f[..6]);
                    (f.as_slice(), dst)
                })
                .collect();
            let out = self.sockets[port].try_send_batch(&frames);
            for _ in 0..out.full + out.failed {
                self.fabric.send_failed(port);
            }
        }
        while let Some((link, at, packet)) = self.fabric.poll_capture() {
            let Some(pcap) = self.pcaps.get_mut(link) else {
                continue;
            };
            if pcap.failed {
                continue;
            }
            if let Err(e) = pcap
                .writer
                .write_packet(self.wall_start + at.total_micros(), &packet)
            {
                eprintln!("testbed router: {}: {e}", pcap.path.display());
                pcap.failed = true;
            }
        }
        let now = self.clock.now();
        if now >= self.last_flush + FLUSH_EVERY {
            self.flush_pcaps();
        }
    }

    fn flush_pcaps(&mut self) {
        self.last_flush = self.clock.now();
        for pcap in &mut self.pcaps {
            if !pcap.failed {
                if let Err(e) = pcap.file.flush() {
                    eprintln!("testbed router: {}: {e}", pcap.path.display());
                    pcap.failed = true;
                }
            }
        }
    }

    fn link_event(&mut self, e: LinkEvent) {
        let (ifindex, usable) = match e {
            LinkEvent::Changed(info) => (info.ifindex, info.up && info.carrier),
            LinkEvent::Removed { ifindex } => (ifindex, false),
        };
        if let Some(&port) = self.by_ifindex.get(&ifindex) {
            self.fabric.set_port_usable(port, usable);
        }
    }

    /// Carries out one stdin line; false to exit.
    fn command(&mut self, line: &str) -> bool {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["quit"] => {
                say("ok quit");
                return false;
            }
            ["status"] => {
                self.flush_pcaps();
                say(&self.status().to_string());
            }
            ["link", name, state @ ("up" | "down")] => match self.fabric.link_index(name) {
                Some(i) => {
                    self.fabric.set_link(i, *state == "up");
                    say(&format!("ok link {name} {state}"));
                }
                None => say(&format!("error link: no link named {name:?}")),
            },
            _ => say(&format!(
                "error {}: expected `link NAME up|down`, `status` or `quit`",
                words[0]
            )),
        }
        true
    }

    fn status(&mut self) -> Value {
        // What the kernel dropped at each port's full receive queue since
        // the last status, which only the socket knows.
        for (port, socket) in self.sockets.iter().enumerate() {
            match socket.take_queue_drops() {
                Ok(n) => self.fabric.queue_full(port, n),
                Err(e) => eprintln!("testbed router: port {port}: PACKET_STATISTICS: {e}"),
            }
        }
        let f = &self.fabric;
        let links: Vec<Value> = (0..f.link_count())
            .map(|i| {
                let s = f.link_stats(i);
                let link_local = u8::try_from(i)
                    .ok()
                    .and_then(|i| f.router().port(i))
                    .map(|(ll, _)| ll.to_string());
                let ports: Vec<Value> = f
                    .link_ports(i)
                    .map(
                        |p| json!({ "name": p.name, "mac": p.mac.to_string(), "usable": p.usable }),
                    )
                    .collect();
                json!({
                    "name": f.link_name(i),
                    "up": f.link_up(i),
                    "prefix": format!("{}/64", f.link_prefix(i)),
                    "mac": f.link_mac(i).to_string(),
                    "link_local": link_local,
                    "ports": ports,
                    "sent": s.link.sent,
                    "lost": s.link.lost,
                    "too_big": s.link.too_big,
                    "down": s.link.down,
                    "unreachable": s.link.unreachable,
                    "port_down": s.port_down,
                    "send_errors": s.send_errors,
                    "queue_full": s.queue_full,
                    "malformed": s.malformed,
                })
            })
            .collect();
        let r = f.router_stats();
        json!({
            "links": links,
            "router": {
                "forwarded": r.forwarded,
                "no_route": r.no_route,
                "hop_limit_exceeded": r.hop_limit_exceeded,
                "unresolved": r.unresolved,
                "malformed": r.malformed,
            },
        })
    }
}
