//! `testbed`: tools around the Mobile IPv6 stack.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::ipsec::EspKeyring;
use common::wire::esp::EspOpener;
use common::wire::CodePoints;
use testbed::demo::{self, Timeline};
use testbed::pictures::report::{Played, Report};
use testbed::pictures::{sequence, Keys};
use testbed::real::demo::RealRun;
use testbed::tools;
use testbed::tools::decode::{packet_json, parse_hex};
use testbed::tools::pcap::{read_packets, PcapWriter};
use testbed::tools::samples::samples;
use testbed::topology::Network;

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
    /// access networks, one mobile node that moves away and back) three
    /// times, with return routability, IPsec route optimisation on static
    /// keys and keyed by IKEv2, in the simulator (`--real`: in network
    /// namespaces with the daemons); print the timeline, write a pcap per
    /// link and
    /// report.html (sequence diagrams, paths, delays) with report.json.
    Demo {
        /// Where the pcaps go (default out/demo, out/real with --real).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print one JSON object instead of the timeline.
        #[arg(long)]
        json: bool,
        /// Run it for real (root): network namespaces, the mn, cn and ha
        /// daemons, our router process between the links, ping, UDP and
        /// TCP from the kernel; then compare with the simulator.
        #[arg(long)]
        real: bool,
    },
    /// Draw a capture as a sequence diagram (SVG): a lifeline per address,
    /// every packet an arrow at its capture time, signalling labelled
    /// (type, sequence number, status, ESP, the section it follows), data
    /// faint. ESP opens with the keys given; IKE is labelled from its
    /// clear header (exchange, message ID, request or response) and, with
    /// its SA's keys, from what its SK payload holds (identities, the
    /// MOBIKE and addrmgmt notifications, deletes).
    Sequence {
        /// The capture (raw IP, Ethernet or Linux cooked link types).
        #[arg(long)]
        pcap: PathBuf,
        /// An ESP SA, as for `decode --sa`; may be repeated.
        #[arg(long = "sa", value_name = "SPEC")]
        sas: Vec<String>,
        /// A Wireshark configuration directory whose `esp_sa` and
        /// `ikev2_decryption_table` hold the keys (the demo's
        /// `wireshark-<run>/`, the daemons' `--keylog`, the interop tests').
        #[arg(long)]
        keylog: Option<PathBuf>,
        /// Name a lifeline, `ADDR=LABEL`; may be repeated.
        #[arg(long = "name", value_name = "ADDR=LABEL")]
        names: Vec<String>,
        /// Where to write the SVG.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
    /// Play a scenario file (testbed/scenarios/*.yaml) in the simulator:
    /// each run's pcaps and key log, report.html and report.json.
    Run {
        /// The scenario.
        file: PathBuf,
        /// Where it all goes (default out/<file name without .yaml>, with
        /// --real out/real-<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// On real links instead (root): network namespaces, the ha, cn
        /// and mn daemons, our router process, kernel ping, UDP and TCP;
        /// the same report from the router's captures, and the simulator
        /// beside it for comparison.
        #[arg(long)]
        real: bool,
    },
    /// Kernel traffic for the real demo (UDP flows, a TCP stream of known
    /// bytes); prints one JSON line.
    #[command(subcommand)]
    Traffic(testbed::real::traffic::Traffic),
    /// Write the reference packet set (every MH message and option, HAO,
    /// RH2, ESP, IKEv2 payloads and the drafts' formats) to a pcap and print
    /// what each packet is.
    Samples {
        /// Where to write samples.pcap.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Print one row of `scripts/bench.sh`'s table (`summary | ...`, as the
    /// benches print theirs): a figure against its baseline of the same
    /// run, their ratio and the goal. An OURS or BASE that is not a number
    /// reads `-`.
    Figure {
        item: String,
        what: String,
        ours: String,
        baseline: String,
        base: String,
        goal: String,
    },
    /// Run our IKEv2 engine and ESP data plane as an initiator or responder
    /// on real UDP sockets and a TUN device, driven by commands on stdin
    /// (root; exits when stdin closes).
    Ike(testbed::ike_peer::IkeArgs),
    /// IKEv2 handshakes against a responder on real UDP, as fast as it
    /// answers (`concurrency` in flight); prints one JSON line.
    IkeLoad(testbed::ike_load::LoadArgs),
    /// The real demo's router: joins links made of veth ends in its
    /// namespace and behaves like the simulator's links (delay, jitter,
    /// loss, MTU, up/down, a pcap each) and its router, driven by commands
    /// on stdin (root; exits when stdin closes).
    Router(testbed::real::router::RouterArgs),
}

/// What can stop a command: each names the argument, file or stream.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// A `--sa` the keyring refuses.
    #[error("--sa {spec}: {reason}")]
    Sa { spec: String, reason: String },
    /// A scenario file that does not read or check.
    #[error(transparent)]
    Scenario(#[from] common::io::daemon::FileError),
    /// A `--name` that is not `ADDR=LABEL`.
    #[error("--name {0}: want ADDR=LABEL with an IP address")]
    Name(String),
    /// Reading or writing packets, with the file if there is one.
    #[error(transparent)]
    Tools(#[from] tools::Error),
    /// Reading stdin or writing stdout.
    #[error("{stream}: {source}")]
    Stdio {
        stream: &'static str,
        source: io::Error,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Its own exit codes: 2 for a bad configuration.
    if let Command::Ike(args) = &cli.command {
        return testbed::ike_peer::main(args);
    }
    if let Command::Router(args) = &cli.command {
        return testbed::real::router::main(args);
    }
    if let Command::IkeLoad(args) = &cli.command {
        return match testbed::ike_load::run(args) {
            Ok(r) => {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("testbed ike-load: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Traffic(t) = &cli.command {
        return match testbed::real::traffic::run(t) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("testbed traffic: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Demo {
        real: true,
        out,
        seed,
        json,
    } = &cli.command
    {
        let dir = out.clone().unwrap_or_else(|| PathBuf::from("out/real"));
        return real_demo(&dir, *seed, *json);
    }
    if let Command::Run {
        real: true,
        file,
        out,
        json,
    } = &cli.command
    {
        let scenario = match testbed::scenario::read(file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("testbed: {e}");
                return ExitCode::from(2);
            }
        };
        let dir = out.clone().unwrap_or_else(|| {
            let stem = file.file_stem().unwrap_or_default().to_string_lossy();
            PathBuf::from("out").join(format!("real-{stem}"))
        });
        return real_scenario(&scenario, &dir, *json);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let cp = CodePoints::default();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let stdout_err = |source| CliError::Stdio {
        stream: "stdout",
        source,
    };
    match cli.command {
        Command::Decode {
            hex,
            pcap,
            reencode,
            sas,
        } => {
            let mut keys = EspKeyring::default();
            for spec in &sas {
                keys.add_spec(spec).map_err(|reason| CliError::Sa {
                    spec: spec.clone(),
                    reason,
                })?;
            }
            let keys = (!keys.is_empty()).then_some(&keys as &dyn EspOpener);
            let mut print = |bytes: Result<Vec<u8>, tools::Error>| -> Result<(), CliError> {
                let v = match bytes {
                    Ok(b) => packet_json(&b, &cp, reencode, keys),
                    Err(e) => {
                        serde_json::json!({ "summary": "undecodable", "fields": {}, "errors": [e.to_string()] })
                    }
                };
                writeln!(out, "{v}").map_err(stdout_err)
            };
            if let Some(path) = &pcap {
                let in_file = |e: tools::Error| e.in_file(path);
                let file = File::open(path).map_err(|e| in_file(e.into()))?;
                for (_, p) in read_packets(file).map_err(in_file)? {
                    print(Ok(p))?;
                }
            }
            for h in &hex {
                print(parse_hex(h))?;
            }
            if pcap.is_none() && hex.is_empty() {
                for line in io::stdin().lock().lines() {
                    let line = line.map_err(|source| CliError::Stdio {
                        stream: "stdin",
                        source,
                    })?;
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
            real: _,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("out/demo"));
            let mut runs = vec![];
            let mut topologies = vec![];
            let mut pcaps = vec![];
            let mut keylogs = vec![];
            let setups = demo::setups(seed);
            for s in &setups {
                let (r, t) = demo::run(s);
                pcaps.extend(t.sim.write_pcaps(&dir, &format!("{}-", r.name))?);
                let keys = dir.join(format!("wireshark-{}", r.name));
                t.sim.write_keylog(&keys)?;
                keylogs.push(keys);
                runs.push(r);
                topologies.push(t);
            }
            // The seed and the delays, the same in all.
            let setup = &setups[0];
            let mut v = demo::report_json(setup, &runs, &pcaps);
            v["keylogs"] = serde_json::json!(keylogs
                .iter()
                .map(|k| k.display().to_string())
                .collect::<Vec<_>>());
            let commands: Vec<String> = runs
                .iter()
                .zip(&keylogs)
                .map(|(r, k)| {
                    format!(
                        "WIRESHARK_CONFIG_DIR={} wireshark {}",
                        k.display(),
                        dir.join(format!("{}-cn.pcap", r.name)).display()
                    )
                })
                .collect();
            let played: Vec<Played> = runs
                .iter()
                .zip(&topologies)
                .map(|(run, t)| Played {
                    run,
                    sim: &t.sim,
                    net: &t.network,
                    layout: &t.layout,
                })
                .collect();
            let mut report = Report::new(
                &format!("Mobile IPv6 demo, seed {seed}"),
                &demo::intro(setup),
                &played,
                demo::timeline().end,
            );
            report.pcaps = pcaps
                .iter()
                .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                .collect();
            report.commands.clone_from(&commands);
            report.summary = v.clone();
            let page = report.write(&dir)?;
            if json {
                writeln!(out, "{v}").map_err(stdout_err)?;
            } else {
                write!(out, "{}", demo::report_text(setup, &runs, &pcaps)).map_err(stdout_err)?;
                writeln!(out, "\ndecrypted (ESP and IKE) in Wireshark:").map_err(stdout_err)?;
                for c in &commands {
                    writeln!(out, "   {c}").map_err(stdout_err)?;
                }
                writeln!(out, "\npictures: {}", page.display()).map_err(stdout_err)?;
            }
        }
        Command::Sequence {
            pcap,
            sas,
            keylog,
            names,
            out: svg,
        } => {
            let mut keys = match &keylog {
                Some(dir) => Keys::from_dir(dir)?,
                None => Keys::default(),
            };
            for spec in &sas {
                keys.esp.add_spec(spec).map_err(|reason| CliError::Sa {
                    spec: spec.clone(),
                    reason,
                })?;
            }
            let names = names
                .iter()
                .map(|n| {
                    let (a, l) = n.split_once('=').ok_or_else(|| CliError::Name(n.clone()))?;
                    let a = a.parse().map_err(|_| CliError::Name(n.clone()))?;
                    Ok((a, l.to_string()))
                })
                .collect::<Result<Vec<_>, CliError>>()?;
            let in_file = |e: tools::Error| e.in_file(&pcap);
            let file = File::open(&pcap).map_err(|e| in_file(e.into()))?;
            let packets = read_packets(file).map_err(in_file)?;
            let title = pcap
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().into_owned());
            let seq = sequence::from_capture(&title, &packets, &keys, &names);
            std::fs::write(&svg, seq.svg()).map_err(|e| tools::Error::from(e).in_file(&svg))?;
            let mut kinds = std::collections::BTreeMap::new();
            for a in seq.arrows.iter().filter(|a| !a.msg.is_data()) {
                *kinds.entry(a.msg.kind).or_insert(0) += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(
                out,
                "wrote {}: {} lifelines, {} packets; signalling: {}",
                svg.display(),
                seq.lanes.len(),
                seq.arrows.len(),
                kinds.join(", ")
            )
            .map_err(stdout_err)?;
        }
        Command::Run {
            file,
            out: dir,
            json,
            real: _,
        } => {
            let scenario = testbed::scenario::read(&file)?;
            let dir = dir.unwrap_or_else(|| {
                let stem = file.file_stem().unwrap_or_default();
                PathBuf::from("out").join(stem)
            });
            let (runs, summary) = testbed::scenario::write(&scenario, &dir)?;
            if json {
                writeln!(out, "{summary}").map_err(stdout_err)?;
            } else {
                write!(out, "{}", runs_text(&scenario.title, &runs)).map_err(stdout_err)?;
                writeln!(out, "\npictures: {}", dir.join("report.html").display())
                    .map_err(stdout_err)?;
            }
        }
        Command::Figure {
            item,
            what,
            ours,
            baseline,
            base,
            goal,
        } => {
            let figure = testbed::summary::Figure {
                item: &item,
                what: &what,
                ours: ours.parse().ok(),
                baseline: &baseline,
                base: base.parse().ok(),
                goal: &goal,
            };
            writeln!(out, "{}", figure.line()).map_err(stdout_err)?;
        }
        Command::Samples { out: dir } => {
            std::fs::create_dir_all(&dir).map_err(|e| tools::Error::from(e).in_file(&dir))?;
            let path = dir.join("samples.pcap");
            let in_file = |e: tools::Error| e.in_file(&path);
            let file = File::create(&path).map_err(|e| in_file(e.into()))?;
            let mut w = PcapWriter::new(BufWriter::new(file)).map_err(in_file)?;
            for (i, s) in samples(&cp).iter().enumerate() {
                w.write_packet(i as u64 * 1000, &s.bytes).map_err(in_file)?;
                let summary = packet_json(&s.bytes, &cp, false, None)["summary"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                writeln!(out, "{:>2}  {:<52} {summary}", i + 1, s.label).map_err(stdout_err)?;
            }
            w.into_inner().flush().map_err(|e| in_file(e.into()))?;
            writeln!(
                out,
                "\nwrote {} (open it in Wireshark, or: tshark -r {0} -V)",
                path.display()
            )
            .map_err(stdout_err)?;
        }
        Command::Ike(_) | Command::IkeLoad(_) | Command::Router(_) | Command::Traffic(_) => {}
    }
    out.flush().map_err(stdout_err)
}

/// The scenario's runs as text: each handoff's latency and losses, the
/// signalling.
fn runs_text(title: &str, runs: &[demo::Run]) -> String {
    use std::fmt::Write as _;
    let mut o = format!("{title}\n");
    for r in runs {
        let _ = writeln!(o, "== {} ==", r.name);
        for h in &r.handoffs {
            let lat = h.latency.map_or("never".into(), |l| {
                format!("{:.1} ms", l.as_micros() as f64 / 1000.0)
            });
            let _ = writeln!(
                o,
                "   {:>7.3} s handoff to {:<8}: latency {lat}, {} packets lost",
                h.at.total_micros() as f64 / 1e6,
                h.to,
                h.lost
            );
        }
        let _ = writeln!(
            o,
            "   signalling: {} messages, {} bytes; IKE: {} messages, {} bytes",
            r.signalling_messages, r.signalling_bytes, r.ike_messages, r.ike_bytes
        );
    }
    o
}

/// Plays each named network of `plans` on `timeline` in namespaces, its
/// files under `dir/<name>/`; on failure, the exit code (2: cannot run
/// here).
fn real_runs(
    plans: &[(&'static str, Network)],
    timeline: &Timeline,
    dir: &Path,
    what: &str,
) -> Result<Vec<RealRun>, ExitCode> {
    use testbed::real::demo as real;
    real::catch_interrupts();
    let bins = real::Bins::beside_me().map_err(|e| {
        eprintln!("{what}: {e}");
        ExitCode::from(2)
    })?;
    let mut reals = vec![];
    for (name, net) in plans {
        match real::run(net, timeline, name, &bins, &dir.join(name)) {
            Ok(r) => reals.push(r),
            Err(e @ (real::Error::NotRoot | real::Error::NotBuilt(_))) => {
                eprintln!("{what}: {e}");
                return Err(ExitCode::from(2));
            }
            Err(e) => {
                eprintln!("{what}: {e}");
                return Err(ExitCode::FAILURE);
            }
        }
    }
    Ok(reals)
}

/// What real runs add to the JSON: `real`, each run's TCP stream, the key
/// logs, and the simulated runs beside them.
fn real_json(v: &mut serde_json::Value, reals: &[RealRun], simulated: serde_json::Value) {
    v["real"] = serde_json::json!(true);
    v["tcp"] = serde_json::json!(reals
        .iter()
        .map(|r| serde_json::json!({
            "mode": r.run.name,
            "sent_bytes": r.tcp_sent.0,
            "received_bytes": r.tcp_received.0,
            "sent_sha256": r.tcp_sent.1,
            "received_sha256": r.tcp_received.1,
        }))
        .collect::<Vec<_>>());
    v["simulated"] = simulated;
    v["keylogs"] = serde_json::json!(reals
        .iter()
        .map(|r| r.keylog.display().to_string())
        .collect::<Vec<_>>());
}

/// The Wireshark command of each real run, and where the pictures are.
fn real_tail(reals: &[RealRun], page: &Path) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    for r in reals {
        let _ = writeln!(
            o,
            "\n   decrypted in Wireshark: WIRESHARK_CONFIG_DIR={} wireshark {}",
            r.keylog.display(),
            r.pcaps
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let _ = writeln!(o, "\npictures: {}", page.display());
    o
}

/// `testbed demo --real`: the demo's runs in namespaces, then the simulator
/// with the same setups for the comparison line.
fn real_demo(dir: &Path, seed: u64, json: bool) -> ExitCode {
    let setups = demo::setups(seed);
    let plans: Vec<(&'static str, Network)> = setups
        .iter()
        .map(|s| (demo::name(s), s.network()))
        .collect();
    let reals = match real_runs(&plans, &demo::timeline(), dir, "testbed demo --real") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let simulated: Vec<demo::Run> = setups.iter().map(|s| demo::run(s).0).collect();
    // The seed and the delays, the same in all.
    let [_, setup, _] = &setups;
    let runs: Vec<demo::Run> = reals.iter().map(|r| r.run.clone()).collect();
    let pcaps: Vec<PathBuf> = reals.iter().flat_map(|r| r.pcaps.clone()).collect();
    let (mn_cn, _, _) = setup.rtts();
    let mut v = demo::report_json(setup, &runs, &pcaps);
    let sims = demo::report_json(setup, &simulated, &[])["runs"].clone();
    real_json(&mut v, &reals, sims);
    let title = format!("Mobile IPv6 demo on real links, seed {}", setup.seed);
    let page =
        match testbed::real::report::write(dir, &title, &demo::intro(setup), &reals, v.clone()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("testbed demo --real: {e}");
                return ExitCode::FAILURE;
            }
        };
    if json {
        println!("{v}");
    } else {
        print!("{}", demo::report_text(setup, &runs, &pcaps));
        print!(
            "{}",
            testbed::real::demo::compare_text(&reals, &simulated, mn_cn)
        );
        print!("{}", real_tail(&reals, &page));
    }
    ExitCode::SUCCESS
}

/// `testbed run --real FILE`: the scenario's runs in namespaces, then in
/// the simulator for the comparison.
fn real_scenario(s: &testbed::scenario::Scenario, dir: &Path, json: bool) -> ExitCode {
    let reals = match real_runs(&s.runs, &s.timeline, dir, "testbed run --real") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let simulated: Vec<demo::Run> = s
        .runs
        .iter()
        .map(|(name, net)| {
            let (mut sim, layout, _) = testbed::topology::build_network(net);
            demo::play(&mut sim, net, &layout, &s.timeline, name)
        })
        .collect();
    let runs: Vec<demo::Run> = reals.iter().map(|r| r.run.clone()).collect();
    let list = |p: Vec<String>| serde_json::json!(p);
    let mut v = serde_json::json!({
        "scenario": s.title,
        "seed": s.runs.first().map(|r| r.1.seed),
        "runs": runs.iter().map(|r| demo::run_json(r, None)).collect::<Vec<_>>(),
        "pcaps": list(reals.iter().flat_map(|r| &r.pcaps).map(|p| p.display().to_string()).collect()),
    });
    let sims = serde_json::json!(simulated
        .iter()
        .map(|r| demo::run_json(r, None))
        .collect::<Vec<_>>());
    real_json(&mut v, &reals, sims);
    let links: Vec<String> = s.runs.first().map_or(vec![], |(_, net)| {
        net.links
            .iter()
            .map(|l| {
                format!(
                    "{} {} ms",
                    l.name,
                    l.params.delay.as_micros() as f64 / 1000.0
                )
            })
            .collect()
    });
    let title = format!("{} (real links)", s.title);
    let intro = format!("Links: {}.", links.join(", "));
    let page = match testbed::real::report::write(dir, &title, &intro, &reals, v.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("testbed run --real: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{v}");
    } else {
        print!("{}", runs_text(&title, &runs));
        // The round trip between the node's first foreign link and the
        // first correspondent, the latencies' yardstick.
        let rtt = s.runs.first().and_then(|(_, net)| {
            let away = net.mn_links.iter().find(|l| **l != net.ha_link)?;
            let cn = net.cns.first()?;
            Some((net.links[*away].params.delay + net.links[cn.link].params.delay) * 2)
        });
        if let Some(rtt) = rtt {
            print!(
                "{}",
                testbed::real::demo::compare_text(&reals, &simulated, rtt)
            );
        }
        print!("{}", real_tail(&reals, &page));
    }
    ExitCode::SUCCESS
}
