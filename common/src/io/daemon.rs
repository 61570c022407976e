//! What the `mn`, `cn` and `ha` daemons share, so each is a config file
//! and a `main`: the command line (`run`, `check`, `status`, `bindings`),
//! reading YAML with errors that name the file, line, column and field,
//! logging, the run on the [`Driver`], key logs, and the control socket's
//! client with its human and `--json` output.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::driver::{request, Driver, Request, Setup, Stack};
use super::keylog::KeyLog;
use crate::ipsec::config::IpsecConfig;
use crate::ipsec::Ipsec;
use crate::keylog::KeyTable;
use crate::node::Engine;
use crate::time::Instant;

/// The subcommands every daemon has.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Run the node on its interfaces until SIGINT or SIGTERM (root, or
    /// CAP_NET_ADMIN and CAP_NET_RAW). SIGHUP re-reads the configuration.
    Run(RunArgs),
    /// Check a configuration file and exit (0: good; 2: the error).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Everything a running node is doing: interfaces, neighbours,
    /// bindings, SAs, counters.
    Status(QueryArgs),
    /// The binding cache (home agent, correspondent) or the binding update
    /// list (mobile node) of a running node.
    Bindings(QueryArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The YAML configuration (see config/ for commented examples).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Append Wireshark key tables (esp_sa) to DIR, so captures of this
    /// node open decrypted: WIRESHARK_CONFIG_DIR=DIR wireshark FILE.
    #[arg(long, value_name = "DIR")]
    pub keylog: Option<PathBuf>,
    /// More log detail (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The control socket (default: the one `--config` names, else
    /// /run/mip6/ROLE.sock).
    #[arg(long, short = 's')]
    pub control: Option<PathBuf>,
    /// Find the control socket in this configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the reply as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The TUN device that holds the node's own addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunFile {
    #[serde(default = "default_tun_name")]
    pub name: String,
    /// Room for the 40 bytes of the home agent's tunnel and a Home Address
    /// option under a 1500-byte link MTU.
    #[serde(default = "default_tun_mtu")]
    pub mtu: u16,
}

impl Default for TunFile {
    fn default() -> Self {
        TunFile {
            name: default_tun_name(),
            mtu: default_tun_mtu(),
        }
    }
}

fn default_tun_name() -> String {
    "mip6".to_string()
}

fn default_tun_mtu() -> u16 {
    1400
}

/// The default control socket of a role.
pub fn default_control(role: &str) -> PathBuf {
    PathBuf::from(format!("/run/mip6/{role}.sock"))
}

/// A role's configuration file: what a daemon reads, and what it builds
/// from it.
pub trait NodeFile: DeserializeOwned + Serialize + PartialEq {
    /// `mn`, `cn` or `ha`.
    const ROLE: &'static str;
    type Engine: Engine;
    /// The static keys file, relative to the configuration file.
    fn ipsec(&self) -> Option<&Path>;
    fn control(&self) -> Option<&Path>;
    /// The store that keeps what must survive a restart, relative to the
    /// configuration file; none, nothing is kept.
    fn store(&self) -> Option<&Path> {
        None
    }
    /// Checks the values and builds the engine, with `ipsec` and RNG
    /// `seeds` (files such as keys are relative to `base`), and what the
    /// driver must open.
    fn build(
        &self,
        ipsec: Ipsec,
        base: &Path,
        seeds: Seeds,
    ) -> Result<(Self::Engine, Setup), FieldError>;
}

/// A value the builder refuses: the field (`home_prefix`, or a path
/// such as `ike.peers[0].psk`), the value as written (to find its line),
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub value: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            value,
            message: message.into(),
        }
    }

    /// The mistake in `path`, at its line and column when they can be
    /// found: `FILE:LINE:COLUMN: FIELD: MESSAGE`.
    pub fn in_file(&self, path: &Path) -> FileError {
        let text = fs::read_to_string(path).unwrap_or_default();
        let at = locate(&text, &self.field, self.value.as_deref())
            .map(|(l, c)| format!(":{l}:{c}"))
            .unwrap_or_default();
        FileError(format!(
            "{}{at}: {}: {}",
            path.display(),
            self.field,
            self.message
        ))
    }
}

/// `line:column` (from 1) of `field` in YAML `text`. The field is a
/// top-level key, or a path under one (`ike.peers[0].psk`): from that
/// key's line on, where `value` first appears, else the path's last key,
/// else just after the top-level key.
fn locate(text: &str, field: &str, value: Option<&str>) -> Option<(usize, usize)> {
    let top = field.split(['.', '[']).next().unwrap_or(field);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.strip_prefix(top).is_some_and(|r| r.starts_with(':')))?;
    let find = |needle: &str| {
        lines
            .iter()
            .enumerate()
            .skip(at)
            .filter(|(_, l)| !l.trim_start().starts_with('#'))
            .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
    };
    if let Some(found) = value.and_then(find) {
        return Some(found);
    }
    let last = field.rsplit('.').next().and_then(|k| k.split('[').next());
    if let Some(found) = last
        .filter(|k| *k != top)
        .and_then(|k| find(&format!("{k}:")))
    {
        return Some(found);
    }
    let key = lines[at];
    let col = key[top.len() + 1..]
        .find(|c: char| !c.is_whitespace())
        .map_or(top.len() + 2, |c| top.len() + 2 + c);
    Some((at + 1, col))
}

/// A mistake in a file, said in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// Reads YAML into `T`; unknown keys are errors; the message names the
/// file, line, column and field (serde_yaml_ng puts the field path first).
pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    let text =
        fs::read_to_string(path).map_err(|e| FileError(format!("{}: {e}", path.display())))?;
    serde_yaml_ng::from_str(&text).map_err(|e| {
        let message = e.to_string();
        match e.location() {
            Some(l) => {
                // The position goes in front, once.
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m);
                FileError(format!(
                    "{}:{}:{}: {message}",
                    path.display(),
                    l.line(),
                    l.column()
                ))
            }
            None => FileError(format!("{}: {message}", path.display())),
        }
    })
}

/// The file's static keys (if it names a file), and their key-log rows.
fn static_keys<F: NodeFile>(file: &F, path: &Path) -> Result<(Ipsec, Vec<String>), FileError> {
    let Some(keys) = file.ipsec() else {
        let mut ipsec = Ipsec::default();
        ipsec.spd.fallback = crate::ipsec::Action::Bypass;
        return Ok((ipsec, vec![]));
    };
    let keys = path.parent().unwrap_or(Path::new(".")).join(keys);
    let cfg: IpsecConfig = read_yaml(&keys)?;
    let at = |e: crate::ipsec::config::ConfigError| FileError(format!("{}: {e}", keys.display()));
    let ipsec = cfg.build(Instant::ZERO).map_err(at)?;
    let rows = cfg.key_log_rows().map_err(at)?;
    Ok((ipsec, rows))
}

fn load<F: NodeFile>(
    path: &Path,
    seeds: Seeds,
) -> Result<(F, F::Engine, Setup, Vec<String>), FileError> {
    let file: F = read_yaml(path)?;
    let (ipsec, rows) = static_keys(&file, path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let (engine, mut setup) = file
        .build(ipsec, base, seeds)
        .map_err(|e| e.in_file(path))?;
    if setup.control.is_none() {
        setup.control = Some(default_control(F::ROLE));
    }
    Ok((file, engine, setup, rows))
}

/// The engines' RNG seeds: the node's, and IKE's 32 octets for its SPIs,
/// nonces and DH keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    pub node: u64,
    pub ike: [u8; 32],
}

impl Seeds {
    /// Fresh from the kernel, or all from the file's `seed` (labs that
    /// want the same nonces every run).
    pub fn or_fixed(self, fixed: Option<u64>) -> Seeds {
        match fixed {
            Some(n) => Seeds {
                node: n,
                ike: crate::ike::seed_from(n ^ 0x696b_6500),
            },
            None => self,
        }
    }

    fn random() -> Seeds {
        let b = random_bytes::<40>();
        let mut ike = [0; 32];
        ike.copy_from_slice(&b[8..]);
        Seeds {
            node: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            ike,
        }
    }
}

/// `N` random octets from the kernel.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // Without /dev/urandom the seed is weaker, never absent.
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        for (i, x) in std::process::id().to_le_bytes().iter().enumerate() {
            b[i % N] ^= x;
        }
    }
    b
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// One line on stderr and exit 2: what a person must fix.
fn refuse(role: &str, what: impl std::fmt::Display) -> ExitCode {
    eprintln!("{role}: {what}");
    ExitCode::from(2)
}

/// The whole daemon: parses nothing itself (the binary's clap does), runs
/// `action` for role `F`.
pub fn main<F: NodeFile>(action: Action) -> ExitCode {
    match action {
        Action::Check { config } => match load::<F>(
            &config,
            Seeds {
                node: 0,
                ike: [0; 32],
            },
        ) {
            Ok(_) => {
                println!("{}: {} is good", F::ROLE, config.display());
                ExitCode::SUCCESS
            }
            Err(e) => refuse(F::ROLE, e),
        },
        Action::Run(args) => run::<F>(&args),
        Action::Status(q) => query::<F>(&q, View::Status),
        Action::Bindings(q) => query::<F>(&q, View::Bindings),
    }
}

fn runtime(role: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("{role}: tokio runtime: {e}");
            ExitCode::FAILURE
        })
}

fn run<F: NodeFile>(args: &RunArgs) -> ExitCode {
    init_logging(args.verbose);
    let (file, engine, setup, rows) = match load::<F>(&args.config, Seeds::random()) {
        Ok(x) => x,
        Err(e) => return refuse(F::ROLE, e),
    };
    // Opened before the devices, so a bad store changes nothing.
    let store = match file.store() {
        Some(p) => {
            let p = args.config.parent().unwrap_or(Path::new(".")).join(p);
            match super::Store::open(&p) {
                Ok(s) => Some(s),
                Err(e) => return refuse(F::ROLE, e),
            }
        }
        None => None,
    };
    // The static SAs' rows now; IKE's as it negotiates (the driver).
    let keylog = match &args.keylog {
        Some(dir) => {
            let written = KeyLog::create(dir).and_then(|log| {
                rows.iter()
                    .try_for_each(|r| log.append(KeyTable::Esp, r))
                    .map(|()| log)
            });
            match written {
                Ok(log) => Some(log),
                Err(e) => return refuse(F::ROLE, format!("--keylog {}: {e}", dir.display())),
            }
        }
        None => None,
    };
    let rt = match runtime(F::ROLE) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let path = args.config.clone();
    rt.block_on(async move {
        let mut driver = match Driver::open(engine, &setup).await {
            Ok(d) => d,
            Err(e) => return refuse(F::ROLE, e),
        };
        driver.set_keylog(keylog);
        if let Some(store) = store {
            if let Err(e) = driver.keep(store).await {
                eprintln!("{}: {e}", F::ROLE);
                return ExitCode::FAILURE;
            }
        }
        let reload = move |_: &mut F::Engine| reloaded(&file, &path);
        match driver.run(reload).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: {e}", F::ROLE);
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGHUP: reads the file again. Nothing in it changes live (the engine
/// and the devices were built from it), so this says what differs and
/// that a restart applies it.
fn reloaded<F: NodeFile>(running: &F, path: &Path) -> String {
    match read_yaml::<F>(path) {
        Err(e) => format!("{e}; the running configuration stays"),
        Ok(new) if new == *running => format!("{} unchanged", path.display()),
        Ok(new) => {
            let (a, b) = (
                serde_json::to_value(running).unwrap_or(Value::Null),
                serde_json::to_value(&new).unwrap_or(Value::Null),
            );
            let changed: Vec<&String> = match (a.as_object(), b.as_object()) {
                (Some(a), Some(b)) => a
                    .keys()
                    .chain(b.keys())
                    .filter(|k| a.get(*k) != b.get(*k))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                _ => vec![],
            };
            let names: Vec<&str> = changed.iter().map(|s| s.as_str()).collect();
            format!(
                "{} changed ({}); nothing changes in a running node: restart it to apply",
                path.display(),
                names.join(", ")
            )
        }
    }
}

/// What a query prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Status,
    Bindings,
}

fn query<F: NodeFile>(q: &QueryArgs, view: View) -> ExitCode {
    let from_file = match &q.config {
        Some(c) => match read_yaml::<F>(c) {
            Ok(f) => f.control().map(Path::to_path_buf),
            Err(e) => return refuse(F::ROLE, e),
        },
        None => None,
    };
    let path = q
        .control
        .clone()
        .or(from_file)
        .unwrap_or_else(|| default_control(F::ROLE));
    let rt = match runtime(F::ROLE) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let line = match rt.block_on(request(&path, &Request::Status)) {
        Ok(l) => l,
        Err(e) => {
            return refuse(
                F::ROLE,
                format!(
                    "{}: {e} (is `{} run` running? --control names another socket)",
                    path.display(),
                    F::ROLE
                ),
            )
        }
    };
    let reply: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => return refuse(F::ROLE, format!("bad reply from the daemon: {e}")),
    };
    if let Some(err) = reply.get("error").and_then(Value::as_str) {
        return refuse(F::ROLE, err);
    }
    if q.json {
        let shown = match view {
            View::Status => reply,
            View::Bindings => bindings_json(&reply),
        };
        println!("{shown}");
    } else {
        print!("{}", render(&reply, view));
    }
    ExitCode::SUCCESS
}

fn bindings_json(reply: &Value) -> Value {
    let s = &reply["status"];
    serde_json::json!({
        "role": s["role"],
        "location": s.get("location"),
        "bindings": s.get("bindings").cloned().unwrap_or(Value::Array(vec![])),
        "binding_updates": s.get("binding_updates").cloned().unwrap_or(Value::Array(vec![])),
        "ike": s.get("ike"),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        v => v.to_string(),
    }
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// The reply for people: a section per kind of state, aligned columns.
pub fn render(reply: &Value, view: View) -> String {
    let s = &reply["status"];
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} on {}, stack {}",
        text(&s["role"]),
        text(&reply["links"]),
        text(&reply["stack"])
    );
    if let Some(loc) = s.get("location") {
        let _ = writeln!(o, "location: {}", text(loc));
    }
    let bindings = rows(&s["bindings"]);
    if !bindings.is_empty() || view == View::Bindings && s.get("binding_updates").is_none() {
        let _ = writeln!(o, "\nbinding cache ({}):", bindings.len());
        let _ = writeln!(
            o,
            "  {:<28} {:<28} {:>6} {:>8}  how",
            "home address", "care-of address", "seq", "expires"
        );
        for b in bindings {
            let _ = writeln!(
                o,
                "  {:<28} {:<28} {:>6} {:>7}s  {}",
                text(&b["home"]),
                text(&b["care_of"]),
                text(&b["seq"]),
                text(&b["expires_in"]),
                text(&b["how"])
            );
        }
    }
    let updates = rows(&s["binding_updates"]);
    if !updates.is_empty() {
        let _ = writeln!(o, "\nbinding update list ({}):", updates.len());
        let _ = writeln!(
            o,
            "  {:<28} {:<11} {:<28} {:>6}  state",
            "peer", "mode", "care-of address", "seq"
        );
        for u in updates {
            let state = match (u["bound"].as_bool(), u["waiting"].as_bool()) {
                (Some(true), _) => "bound",
                (_, Some(true)) => "waiting for BA",
                _ => "-",
            };
            let _ = writeln!(
                o,
                "  {:<28} {:<11} {:<28} {:>6}  {state}",
                text(&u["peer"]),
                text(&u["mode"]),
                text(&u["care_of"]),
                text(&u["seq"])
            );
        }
    }
    if let Some(sas) = s.get("ike").and_then(Value::as_array) {
        let _ = writeln!(o, "\nIKE SAs ({}):", sas.len());
        for a in sas {
            let _ = writeln!(
                o,
                "  {} {} {} <-> {}  {}{}{}",
                text(&a["spi"]),
                text(&a["peer"]),
                text(&a["local"]),
                text(&a["remote"]),
                text(&a["state"]),
                if a["initiator"] == true {
                    ", initiator"
                } else {
                    ""
                },
                if a["mobike"] == true { ", MOBIKE" } else { "" }
            );
            for c in rows(&a["children"]) {
                let _ = writeln!(
                    o,
                    "    {:<16} {} in {} out {:<9} {} <-> {}",
                    text(&c["name"]),
                    text(&c["spi_in"]),
                    text(&c["spi_out"]),
                    text(&c["mode"]),
                    text(&c["local"]),
                    text(&c["remote"])
                );
            }
        }
    }
    if view == View::Bindings {
        return o;
    }
    for i in rows(&s["interfaces"]) {
        let _ = writeln!(o, "\nlink {} ({}):", text(&i["iface"]), text(&i["mac"]));
        for a in rows(&i["addresses"]) {
            let _ = writeln!(o, "  address {:<28} {}", text(&a[0]), text(&a[1]));
        }
        for r in rows(&i["routers"]) {
            let _ = writeln!(o, "  router  {}", text(r));
        }
        for p in rows(&i["proxied"]) {
            let state = if p[1].as_bool() == Some(true) {
                "defended"
            } else {
                "DAD"
            };
            let _ = writeln!(o, "  proxies {:<28} {state}", text(&p[0]));
        }
        for n in rows(&i["neighbors"]) {
            let router = if n["router"].as_bool() == Some(true) {
                " router"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "  neighbour {:<26} {:<18} {}{router}",
                text(&n["address"]),
                text(&n["mac"]),
                text(&n["state"])
            );
        }
    }
    let sas = rows(&s["sas"]);
    let _ = writeln!(o, "\nSAs ({}):", sas.len());
    for a in sas {
        let arrow = if a["direction"] == "in" { "<-" } else { "->" };
        let _ = writeln!(
            o,
            "  {} {:<3} {:<9} {} {arrow} {} {} packets {} bytes {} seq {}",
            text(&a["spi"]),
            text(&a["direction"]),
            text(&a["mode"]),
            text(&a["local"]),
            text(&a["peer"]),
            text(&a["algorithm"]),
            text(&a["packets"]),
            text(&a["bytes"]),
            text(&a["sequence"])
        );
    }
    let _ = writeln!(o, "\ncounters:");
    if let Some(c) = s["counters"].as_object() {
        for (k, v) in c {
            let _ = writeln!(o, "  {k:<28} {}", text(v));
        }
    }
    let d = &reply["driver"];
    for k in ["link_received", "link_sent", "tun_received", "tun_sent"] {
        let _ = writeln!(o, "  {:<28} {}", k, text(&d[k]));
    }
    let _ = writeln!(o, "\ndrops by reason:");
    let mut any = false;
    for (k, v) in s["drops"].as_object().into_iter().flatten() {
        any = true;
        let _ = writeln!(o, "  {k:<28} {}", text(v));
    }
    for (k, v) in d["drops"].as_object().into_iter().flatten() {
        any = true;
        let _ = writeln!(o, "  driver/{k:<21} {}", text(v));
    }
    if !any {
        let _ = writeln!(o, "  none");
    }
    o
}

/// A stack holding `addresses` as /128s, with the default route into it.
pub fn stack(tun: &TunFile, addresses: &[Ipv6Addr]) -> Stack {
    Stack {
        name: tun.name.clone(),
        mtu: tun.mtu,
        addresses: addresses.iter().map(|a| (*a, 128)).collect(),
        routes: vec![(Ipv6Addr::UNSPECIFIED, 0)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_the_value_or_the_key() {
        let text = "address: 2001:db8:3::1\nmobile_nodes:\n  - 2001:db8:1::100\n  - 2001:db8:7::1\nrotation:   0\n";
        assert_eq!(
            locate(text, "mobile_nodes", Some("2001:db8:7::1")),
            Some((4, 5))
        );
        assert_eq!(locate(text, "rotation", None), Some((5, 13)));
        assert_eq!(locate(text, "address", Some("nowhere")), Some((1, 10)));
        assert_eq!(locate(text, "absent", None), None);
    }

    #[test]
    fn locate_follows_a_path_under_a_top_level_key() {
        let text = "id: x\nike:\n  # children: a comment\n  peers:\n    - name: ha\n      children: []\n    - name: cn\n";
        // The value first, then the path's last key, then the top key.
        assert_eq!(locate(text, "ike.peers[1]", Some("name: cn")), Some((7, 7)));
        assert_eq!(locate(text, "ike.peers[0].children", None), Some((6, 7)));
        assert_eq!(locate(text, "ike.proposals", None), Some((2, 5)));
    }
}
