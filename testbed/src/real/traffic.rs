//! Kernel traffic for the real demo, over ordinary sockets, so the host's
//! stack and the node's TUN device carry it as they would any
//! application's: UDP flows whose datagrams carry the simulator's flow
//! payload (magic, flow, sequence number, send time), and a TCP stream of
//! known bytes whose count and SHA-256 both ends report.
//!
//! `testbed traffic ...` runs one of them inside a namespace and prints
//! one JSON line when done.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::timer::Timer;
use crate::sim::{flow_payload, parse_flow, FLOW_PORT};

/// Microseconds since the Unix epoch: every process of the demo stamps
/// with the same clock, so times compare across namespaces and with the
/// router's pcaps.
#[expect(
    clippy::disallowed_methods,
    reason = "real traffic is stamped with the wall clock the pcaps use"
)]
pub fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[derive(Debug, clap::Subcommand)]
pub enum Traffic {
    /// Sends `count` UDP datagrams to `to`, one every `every_us`.
    UdpSend {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 0)]
        flow: u32,
        #[arg(long, default_value_t = 1000)]
        every_us: u64,
        #[arg(long)]
        count: u64,
    },
    /// Receives flow datagrams on `port` for `for_ms`; writes one line
    /// `flow seq sent_us received_us` per arrival to `out`.
    UdpRecv {
        #[arg(long, default_value_t = FLOW_PORT)]
        port: u16,
        #[arg(long)]
        for_ms: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Connects to `to` (trying for up to 5 s) and sends `bytes`
    /// pseudo-random bytes (from `seed`), evenly over `for_ms`, then
    /// closes.
    TcpSend {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long)]
        bytes: u64,
        #[arg(long)]
        for_ms: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Accepts one connection on `port` and reads it to the end, for at
    /// most `timeout_ms`.
    TcpRecv {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        timeout_ms: u64,
    },
}

/// Runs one generator; returns its JSON line.
pub fn run(t: &Traffic) -> io::Result<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            match t {
                Traffic::UdpSend {
                    to,
                    flow,
                    every_us,
                    count,
                } => udp_send(*to, *flow, *every_us, *count).await,
                Traffic::UdpRecv { port, for_ms, out } => udp_recv(*port, *for_ms, out).await,
                Traffic::TcpSend {
                    to,
                    bytes,
                    for_ms,
                    seed,
                } => tcp_send(*to, *bytes, *for_ms, *seed).await,
                Traffic::TcpRecv { port, timeout_ms } => tcp_recv(*port, *timeout_ms).await,
            }
        })
}

async fn udp_send(to: SocketAddr, flow: u32, every_us: u64, count: u64) -> io::Result<String> {
    let socket = UdpSocket::bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0)).await?;
    let every = Duration::from_micros(every_us.max(1));
    let timer = Timer::new()?;
    let start = tokio::time::Instant::now();
    let first = wall_micros();
    let mut errors = 0u64;
    for seq in 0..count {
        let at = start + every * u32::try_from(seq).unwrap_or(u32::MAX);
        let wait = at.saturating_duration_since(tokio::time::Instant::now());
        if !wait.is_zero() {
            let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
            timer.arm(common::time::Duration::from_micros(micros))?;
            timer.fired().await?;
        }
        // No route while the node has no link: the kernel says so; count it.
        if socket
            .send_to(&flow_payload(flow, seq, wall_micros()), to)
            .await
            .is_err()
        {
            errors += 1;
        }
    }
    Ok(serde_json::json!({ "sent": count, "errors": errors, "first_us": first }).to_string())
}

async fn udp_recv(port: u16, for_ms: u64, out: &PathBuf) -> io::Result<String> {
    let socket = UdpSocket::bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)).await?;
    let end = tokio::time::Instant::now() + Duration::from_millis(for_ms);
    let mut buf = [0u8; 2048];
    let mut lines = String::new();
    let mut got = 0u64;
    loop {
        let r = tokio::time::timeout_at(end, socket.recv_from(&mut buf)).await;
        let Ok(r) = r else { break };
        let (n, _) = r?;
        let now = wall_micros();
        if let Some((flow, seq, sent)) = parse_flow(&buf[..n]) {
            got += 1;
            lines.push_str(&format!("{flow} {seq} {sent} {now}\n"));
        }
    }
    std::fs::write(out, lines)?;
    Ok(serde_json::json!({ "received": got }).to_string())
}

fn stream(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

async fn tcp_send(to: SocketAddr, bytes: u64, for_ms: u64, seed: u64) -> io::Result<String> {
    const CHUNK: u64 = 1000;
    // The node's stack may still be coming up (its TUN, its routes): try
    // again for a few seconds before giving up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut conn = loop {
        match TcpStream::connect(to).await {
            Ok(c) => break c,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let mut rng = stream(seed);
    let mut hash = Sha256::new();
    let chunks = bytes.div_ceil(CHUNK);
    let start = tokio::time::Instant::now();
    let span = Duration::from_millis(for_ms);
    let mut sent = 0u64;
    for i in 0..chunks {
        let at = start + span.mul_f64(i as f64 / chunks.max(1) as f64);
        tokio::time::sleep_until(at).await;
        let n = usize::try_from(CHUNK.min(bytes - sent)).unwrap_or(0);
        let mut chunk = vec![0u8; n];
        rng.fill_bytes(&mut chunk);
        conn.write_all(&chunk).await?;
        hash.update(&chunk);
        sent += n as u64;
    }
    conn.shutdown().await?;
    Ok(serde_json::json!({
        "bytes": sent,
        "sha256": common::wire::hex(&hash.finalize()),
    })
    .to_string())
}

async fn tcp_recv(port: u16, timeout_ms: u64) -> io::Result<String> {
    let listener = TcpListener::bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)).await?;
    let end = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no connection in time");
    let (mut conn, _) = tokio::time::timeout_at(end, listener.accept())
        .await
        .map_err(|_| timed_out())??;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 65_536];
    let mut got = 0u64;
    loop {
        let n = tokio::time::timeout_at(end, conn.read(&mut buf))
            .await
            .map_err(|_| timed_out())??;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        got += n as u64;
    }
    Ok(serde_json::json!({
        "bytes": got,
        "sha256": common::wire::hex(&hash.finalize()),
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_payload_round_trips() {
        let p = flow_payload(3, 77, 123_456);
        assert_eq!(parse_flow(&p), Some((3, 77, 123_456)));
        assert_eq!(parse_flow(&p[1..]), None);
    }
}
