//! `testbed`: tools around the Mobile IPv6 stack.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::ipsec::EspKeyring;
use common::node::RouteOptimisation;
use common::wire::esp::EspOpener;
use common::wire::CodePoints;
use testbed::demo;
use testbed::tools::decode::packet_json;
use testbed::tools::pcap::{read_packets, PcapWriter};
use testbed::tools::samples::samples;
use testbed::topology::Setup;

#[derive(Parser)]
#[command(version, about = "Testbed and packet tools for the Mobile IPv6 stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode packets and print one JSON object per packet, with Wireshark
    /// display-filter field names. Reads --hex, --pcap, or hex lines on stdin.
    Decode {
        /// A packet as hex (IPv6 or IPv4 header first); may be repeated.
        #[arg(long)]
        hex: Vec<String>,
        /// A pcap file (raw IP, Ethernet or Linux cooked link types).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Add "reencoded": the hex our emitter produces from the parsed values.
        #[arg(long)]
        reencode: bool,
        /// Decrypt ESP with this SA, like Wireshark's esp_sa table; may be
        /// repeated. strongSwan keywords:
        /// `spi=0x201,enc=null,integ=sha256,integ-key=HEX` or
        /// `spi=0x202,enc=aes128gcm16|aes256gcm16|chacha20poly1305,enc-key=HEX`
        /// (the key followed by its 4-byte salt).
        #[arg(long = "sa", value_name = "SPEC")]
        sas: Vec<String>,
    },
    /// Run the built-in topology (home link with HA, a correspondent, two
    /// access networks, one mobile node that moves away and back) twice,
    /// with return routability and with IPsec route optimisation, in the
    /// simulator; print the timeline and write a pcap per link.
    Demo {
        /// Where the pcaps go.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// The seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of the timeline.
        #[arg(long)]
        json: bool,
    },
    /// Write the reference packet set (every MH message and option, HAO,
    /// RH2, ESP, IKEv2 payloads and the drafts' formats) to a pcap and print
    /// what each packet is.
    Samples {
        /// Where to write samples.pcap.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Run our IKEv2 engine and ESP data plane as an initiator or responder
    /// on real UDP sockets and a TUN device, driven by commands on stdin
    /// (root; exits when stdin closes).
    Ike(testbed::ike_peer::IkeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Its own exit codes: 2 for a bad configuration.
    if let Command::Ike(args) = &cli.command {
        return testbed::ike_peer::main(args);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let cp = CodePoints::default();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let io_err = |e: io::Error| e.to_string();
    match cli.command {
        Command::Decode {
            hex,
            pcap,
            reencode,
            sas,
        } => {
            let mut keys = EspKeyring::default();
            for spec in &sas {
                keys.add_spec(spec)
                    .map_err(|e| format!("--sa {spec}: {e}"))?;
            }
            let keys = (!keys.is_empty()).then_some(&keys as &dyn EspOpener);
            let mut print = |bytes: Result<Vec<u8>, String>| -> Result<(), String> {
                let v = match bytes {
                    Ok(b) => packet_json(&b, &cp, reencode, keys),
                    Err(e) => {
                        serde_json::json!({ "summary": "undecodable", "fields": {}, "errors": [e] })
                    }
                };
                writeln!(out, "{v}").map_err(io_err)
            };
            if let Some(path) = &pcap {
                let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                for (_, p) in read_packets(file).map_err(|e| format!("{}: {e}", path.display()))? {
                    print(Ok(p))?;
                }
            }
            for h in &hex {
                print(parse_hex(h))?;
            }
            if pcap.is_none() && hex.is_empty() {
                for line in io::stdin().lock().lines() {
                    let line = line.map_err(io_err)?;
                    if !line.trim().is_empty() {
                        print(parse_hex(&line))?;
                    }
                }
            }
        }
        Command::Demo {
            out: dir,
            seed,
            json,
        } => {
            let mut runs = vec![];
            let mut pcaps = vec![];
            let mut setup = None;
            for mode in [
                RouteOptimisation::ReturnRoutability,
                RouteOptimisation::Ipsec,
            ] {
                let s = Setup::new(seed, mode);
                let r = demo::run(&s);
                let prefix = format!(
                    "{}-",
                    if mode == RouteOptimisation::Ipsec {
                        "ipsec"
                    } else {
                        "rr"
                    }
                );
                pcaps.extend(
                    r.topology
                        .sim
                        .write_pcaps(&dir, &prefix)
                        .map_err(|e| format!("{}: {e}", dir.display()))?,
                );
                runs.push(r);
                setup = Some(s);
            }
            let setup = setup.ok_or("no run")?;
            if json {
                writeln!(out, "{}", demo::report_json(&setup, &runs, &pcaps)).map_err(io_err)?;
            } else {
                write!(out, "{}", demo::report_text(&setup, &runs, &pcaps)).map_err(io_err)?;
            }
        }
        Command::Samples { out: dir } => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = dir.join("samples.pcap");
            let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut w = PcapWriter::new(BufWriter::new(file)).map_err(io_err)?;
            for (i, s) in samples(&cp).iter().enumerate() {
                w.write_packet(i as u64 * 1000, &s.bytes).map_err(io_err)?;
                let summary = packet_json(&s.bytes, &cp, false, None)["summary"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                writeln!(out, "{:>2}  {:<52} {summary}", i + 1, s.label).map_err(io_err)?;
            }
            w.into_inner().flush().map_err(io_err)?;
            writeln!(
                out,
                "\nwrote {} (open it in Wireshark, or: tshark -r {0} -V)",
                path.display()
            )
            .map_err(io_err)?;
        }
        Command::Ike(_) => {}
    }
    out.flush().map_err(io_err)
}

/// Hex with optional whitespace, colons or a 0x prefix.
fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    hex::decode(&clean).map_err(|e| format!("bad hex: {e}"))
}
