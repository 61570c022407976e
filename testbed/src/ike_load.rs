//! `testbed ike-load`: IKEv2 handshakes against a responder over real UDP,
//! as fast as it answers, to compare responders (ours, charon) under the
//! same load. One initiator engine keeps `concurrency` handshakes in
//! flight, each a new IKE SA (new SPIs, nonces and X25519 keys):
//! IKE_SA_INIT on port 500, then IKE_AUTH with a tunnel CHILD_SA on 4500
//! (NAT traversal on, as charon's libipsec needs). A handshake counts when
//! its child is up; one not up within a second counts as failed and is
//! forgotten. Both sides keep the SAs; only the first carries
//! INITIAL_CONTACT (the engine has the others), so the responder deletes
//! nothing, as a gateway taking new clients.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;

use common::ike::crypto::{ed25519_private_from_pem, ed25519_public_from_pem, Encr};
use common::ike::{
    ChildConfig, Datagram, Identity, Ike, IkeConfig, IkeEvent, IkeSaId, Mobility, NatTraversal,
    PeerAuth, PeerConfig, TsSpec, IKE_PORT, NATT_PORT,
};
use common::io::Clock;
use common::ipsec::{Ipsec, Mode};
use common::time::{Duration, Instant};
use serde::Serialize;

/// The generator's identity; the responder's is [`RESPONDER_ID`].
pub const LOAD_ID: &str = "load.example";
pub const RESPONDER_ID: &str = "responder.example";
/// The traffic selectors of every child: the generator's side, then the
/// responder's.
pub const LOAD_TS: &str = "2001:db8:a::/48";
pub const RESPONDER_TS: &str = "2001:db8:b::/48";

/// A handshake unanswered this long failed.
const GIVE_UP: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The responder's address (port 500).
    #[arg(long)]
    pub target: IpAddr,
    /// Ours, bound on port 500.
    #[arg(long)]
    pub local: IpAddr,
    /// A PSK (UTF-8)...
    #[arg(long, conflicts_with = "ed25519_key")]
    pub psk: Option<String>,
    /// ... or our Ed25519 key (PKCS#8 PEM) and the responder's public key
    /// (SPKI PEM).
    #[arg(long, requires = "responder_pub")]
    pub ed25519_key: Option<PathBuf>,
    #[arg(long)]
    pub responder_pub: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// What one run measured; printed as one JSON line.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub handshakes: u64,
    pub failed: u64,
    pub seconds: f64,
    pub per_second: f64,
    /// IKE_SA_INIT sent to child up, milliseconds, median and 99th
    /// percentile.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn config(args: &LoadArgs) -> io::Result<IkeConfig> {
    let bad = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let mut c = IkeConfig::new(Identity::Fqdn(LOAD_ID.into()), 1);
    c.proposals = vec![Encr::Aes256Gcm16];
    c.mobility = Mobility::Off;
    // As charon's libipsec needs (it has only UDP-encapsulated ESP).
    c.nat_traversal = NatTraversal::On;
    let auth = match (&args.psk, &args.ed25519_key, &args.responder_pub) {
        (Some(psk), _, _) => PeerAuth::Psk(psk.as_bytes().to_vec()),
        (None, Some(key), Some(public)) => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).map_err(|e| bad(format!("{}: {e}", p.display())))
            };
            c.signing_key =
                Some(ed25519_private_from_pem(&read(key)?).map_err(|e| bad(e.to_string()))?);
            PeerAuth::Ed25519(
                ed25519_public_from_pem(&read(public)?).map_err(|e| bad(e.to_string()))?,
            )
        }
        _ => return Err(bad("give --psk or --ed25519-key and --responder-pub".into())),
    };
    let mut child = ChildConfig::new(
        "load",
        Mode::Tunnel,
        TsSpec::prefix(LOAD_TS.parse().map_err(|_| bad(LOAD_TS.into()))?),
        TsSpec::prefix(RESPONDER_TS.parse().map_err(|_| bad(RESPONDER_TS.into()))?),
    );
    child.proposals = vec![Encr::Aes256Gcm16];
    c.peers.push(PeerConfig {
        name: "responder".into(),
        id: Identity::Fqdn(RESPONDER_ID.into()),
        auth,
        addresses: vec![SocketAddr::new(args.target, IKE_PORT)],
        children: vec![child],
        local: None,
    });
    Ok(c)
}

/// Runs the load for `args.seconds` and reports.
pub fn run(args: &LoadArgs) -> io::Result<LoadReport> {
    let bind = |port| -> io::Result<UdpSocket> {
        let s = UdpSocket::bind(SocketAddr::new(args.local, port))?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let sockets = [bind(IKE_PORT)?, bind(NATT_PORT)?];
    let locals = [sockets[0].local_addr()?, sockets[1].local_addr()?];
    let clock = Clock::new();
    let end = clock.now() + Duration::from_secs(args.seconds);
    let mut ike = Ike::new(config(args)?);
    ike.set_local_addresses(clock.now(), &[args.local]);
    let mut ipsec = Ipsec::default();
    let mut started: HashMap<IkeSaId, Instant> = HashMap::new();
    let (mut handshakes, mut failed) = (0u64, 0u64);
    let mut latencies: Vec<Duration> = Vec::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = clock.now();
        if now >= end {
            break;
        }
        while started.len() < args.concurrency {
            let sa = ike
                .initiate(now, "responder")
                .map_err(|e| io::Error::other(e.to_string()))?;
            started.insert(sa, now);
        }
        for (socket, local) in sockets.iter().zip(locals) {
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let d = Datagram {
                        local,
                        remote: from,
                        bytes: buf[..n].to_vec(),
                    };
                    ike.handle_datagram(now, d, &mut ipsec);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if ike.poll_timeout().is_some_and(|t| t <= now) {
            ike.handle_timeout(now, &mut ipsec);
        }
        while let Some(d) = ike.poll_transmit() {
            let socket = &sockets[usize::from(d.local.port() == NATT_PORT)];
            socket.send_to(&d.bytes, d.remote)?;
        }
        while let Some(e) = ike.poll_event() {
            if let IkeEvent::ChildUp { sa, .. } = e {
                if let Some(t) = started.remove(&sa) {
                    latencies.push(now - t);
                    handshakes += 1;
                }
            }
        }
        let late: Vec<IkeSaId> = started
            .iter()
            .filter(|(_, t)| now - **t >= GIVE_UP)
            .map(|(sa, _)| *sa)
            .collect();
        for sa in late {
            started.remove(&sa);
            ike.abandon(sa, &mut ipsec);
            failed += 1;
        }
    }
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let seconds = args.seconds as f64;
    Ok(LoadReport {
        handshakes,
        failed,
        seconds,
        per_second: handshakes as f64 / seconds,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
    })
}
