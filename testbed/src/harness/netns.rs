//! Linux network namespaces for tests with real programs (strongSwan charon,
//! tcpdump, our own daemons): create them, wire them with veth pairs, run
//! and spawn programs inside, capture packets, and clean everything up on
//! drop.
//!
//! Rules this module keeps, so tests can run in parallel and never touch
//! anything they did not create:
//! - every namespace name is unique to the process and the call
//!   (`mip-<pid>-<n>-<tag>`);
//! - a spawned process is only ever signalled by its recorded PID, and only
//!   while `/proc/PID/exe` is still the binary we started (no `pkill`);
//! - only documentation addresses (2001:db8::/32, 192.0.2.0/24) are added;
//! - every wait polls a condition against a deadline.
//!
//! Errors are [`Error`]s naming the command line, path or value, with what
//! the program wrote to stderr.
//!
//! Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and `ip` from iproute2.

use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{Error, Result};

/// How often deadline loops look at their condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The bound on one `run` inside a namespace unless the caller gives one.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a spawned process may take to exit after a polite signal
/// before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A name unique within this machine while this process lives:
/// `mip-<pid>-<n>-<tag>`.
pub fn unique_name(tag: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("mip-{}-{n}-{tag}", std::process::id())
}

/// Whether this process runs as root (namespaces, mounts and raw sockets
/// need it). Read from /proc so no libc call is needed.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// A wall-clock deadline. This module drives real processes, which give
/// no event to wait on, so it (and only it here) reads the clock and naps
/// [`POLL_INTERVAL`] between polls; the core never does (.clippy.toml).
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    /// `timeout` from now.
    #[expect(
        clippy::disallowed_methods,
        reason = "bounding waits on real processes needs the wall clock"
    )]
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    /// Whether it has passed.
    #[expect(
        clippy::disallowed_methods,
        reason = "bounding waits on real processes needs the wall clock"
    )]
    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }

    /// Naps one [`POLL_INTERVAL`] (never past the deadline by more).
    #[expect(
        clippy::disallowed_methods,
        reason = "a short poll interval inside a deadline loop: a process's exit, a file or a socket appearing raise no event we can wait on"
    )]
    pub fn nap(&self) {
        thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `ready` every [`POLL_INTERVAL`] until it returns true or `timeout`
/// has passed; the error names `what` was awaited.
pub fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    wait_for(timeout, what, || Ok(ready().then_some(())))
}

/// Polls `poll` every [`POLL_INTERVAL`] until it returns a value or
/// `timeout` has passed. An error from `poll` does not end the wait; the
/// last one is in the timeout error, with `what` was awaited.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut poll: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Deadline::after(timeout);
    let mut last_error = None;
    loop {
        match poll() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(Box::new(e)),
        }
        if deadline.passed() {
            return Err(Error::TimedOut {
                what: what.to_string(),
                timeout,
                last_error,
            });
        }
        deadline.nap();
    }
}

/// The command line, for error messages.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn read_in_thread(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            // A read error just truncates what we report.
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` to completion with its output captured, killing it if it is
/// still running after `timeout`. A non-zero exit is not an error here:
/// look at `Output::status`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let desc = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: desc.clone(),
        source,
    })?;
    // Readers in threads so a chatty program cannot fill a pipe and stall.
    let stdout = read_in_thread(child.stdout.take());
    let stderr = read_in_thread(child.stderr.take());
    let deadline = Deadline::after(timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if deadline.passed() => {
                // Our own unreaped child: its PID cannot have been reused.
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap_or_default();
                return Err(Error::Killed {
                    command: desc,
                    timeout,
                    stderr: String::from_utf8_lossy(&err).trim().to_string(),
                });
            }
            Ok(None) => deadline.nap(),
            Err(source) => {
                return Err(Error::Wait {
                    process: desc,
                    source,
                })
            }
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Like [`run_bounded`], but a non-zero exit is an error (with stderr);
/// returns stdout as text.
pub fn check_bounded(cmd: Command, timeout: Duration) -> Result<String> {
    let desc = describe(&cmd);
    let out = run_bounded(cmd, timeout)?;
    if !out.status.success() {
        return Err(Error::Failed {
            command: desc,
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program` as the path `/proc/PID/exe` will show once it runs: searched
/// in PATH unless it has a slash, symlinks resolved.
pub fn resolve_program(program: &str) -> Result<PathBuf> {
    let found = if program.contains('/') {
        Some(PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
    };
    let path = found.ok_or_else(|| Error::NotInstalled {
        program: program.to_string(),
        looked_in: "PATH".to_string(),
    })?;
    fs::canonicalize(&path).map_err(Error::io(&path))
}

/// When a process started (field 22 of /proc/PID/stat, clock ticks after
/// boot): with the PID, it names one process even if the PID is reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: count after its ')'.
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(19)?.parse().ok()
}

/// One process we started: its PID, the binary it must be running and
/// when it started, so a recycled PID is never signalled.
#[derive(Clone, Debug)]
struct ProcessId {
    pid: u32,
    exe: PathBuf,
    start_time: Option<u64>,
}

impl ProcessId {
    /// Whether it is alive (not a zombie) and still the process we started,
    /// running `exe`.
    fn runs_exe(&self) -> bool {
        if start_time(self.pid) != self.start_time {
            return false;
        }
        match fs::read_link(format!("/proc/{}/exe", self.pid)) {
            // The kernel appends " (deleted)" when the binary was replaced.
            Ok(link) => {
                link == self.exe
                    || link.to_string_lossy().strip_suffix(" (deleted)")
                        == Some(&*self.exe.to_string_lossy())
            }
            Err(_) => false,
        }
    }

    /// Sends `signal` only if [`ProcessId::runs_exe`]; Ok(false) if not
    /// (exited, zombie, or the PID now belongs to something else).
    fn signal(&self, signal: Signal) -> Result<bool> {
        if !self.runs_exe() {
            return Ok(false);
        }
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "kill -s \"$1\" \"$2\"", "sh", signal.name()])
            .arg(self.pid.to_string());
        let out = run_bounded(cmd, Duration::from_secs(5))?;
        // It may have exited between the check and the kill: not an error.
        Ok(out.status.success())
    }
}

/// A signal by name, sent with the shell's `kill` builtin (no libc, and
/// `sh` is on every Debian system, unlike procps' `kill`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: orderly shutdown (charon).
    Term,
    /// SIGINT: tcpdump's "finish the file and exit".
    Int,
    /// SIGKILL: last resort.
    Kill,
    /// SIGHUP.
    Hup,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Kill => "KILL",
            Signal::Hup => "HUP",
        }
    }
}

/// A program started in a namespace by [`Netns::spawn`]. Dropping it stops
/// it (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]).
#[derive(Debug)]
pub struct Process {
    label: String,
    id: ProcessId,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Process {
    /// The PID (of the program itself: `ip netns exec` and `sh -c 'exec'`
    /// replace themselves).
    pub fn pid(&self) -> u32 {
        self.id.pid
    }

    /// The binary `/proc/PID/exe` must show for us to signal it.
    pub fn exe(&self) -> &Path {
        &self.id.exe
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its exit status if it has exited (reaping it), None while it runs.
    pub fn exit_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait().map_err(|source| Error::Wait {
                process: self.label.clone(),
                source,
            })?;
        }
        Ok(self.status)
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.exit_status(), Ok(None))
    }

    /// Sends `signal` if it still runs the expected binary.
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.exit_status()?.is_some() {
            return Err(Error::AlreadyExited {
                process: self.label.clone(),
                pid: self.id.pid,
            });
        }
        self.id.signal(signal).map(|_| ())
    }

    /// Sends `signal` and waits up to `timeout` for the exit; then SIGKILL
    /// and another bounded wait. Returns the exit status.
    pub fn stop(&mut self, signal: Signal, timeout: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exit_status()? {
            return Ok(status);
        }
        self.id.signal(signal)?;
        if let Some(status) = self.wait_exit(timeout)? {
            return Ok(status);
        }
        self.id.signal(Signal::Kill)?;
        self.wait_exit(STOP_TIMEOUT)?
            .ok_or_else(|| Error::TimedOut {
                what: format!("{} (pid {}) to exit after SIGKILL", self.label, self.id.pid),
                timeout: STOP_TIMEOUT,
                last_error: None,
            })
    }

    /// Waits up to `timeout` for it to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Deadline::after(timeout);
        loop {
            if let Some(status) = self.exit_status()? {
                return Ok(Some(status));
            }
            if deadline.passed() {
                return Ok(None);
            }
            deadline.nap();
        }
    }

    /// Its log (stdout + stderr) so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(e) = self.stop(Signal::Term, STOP_TIMEOUT) {
            eprintln!("netns: stopping {}: {e}", self.label);
        }
    }
}

/// A network namespace that exists as long as this value: dropping it
/// stops what it spawned and deletes it (and so its interfaces).
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// What it started, so Drop can stop it even if a [`Process`] handle
    /// was leaked.
    spawned: Mutex<Vec<ProcessId>>,
}

impl Netns {
    /// Creates `mip-<pid>-<n>-<tag>` with loopback up and duplicate address
    /// detection off (so no test waits for DAD).
    pub fn new(tag: &str) -> Result<Netns> {
        let name = unique_name(tag);
        let mut add = Command::new("ip");
        add.args(["netns", "add", &name]);
        check_bounded(add, DEFAULT_RUN_TIMEOUT)?;
        // From here Drop deletes it, whatever fails next.
        let ns = Netns {
            name,
            spawned: Mutex::new(Vec::new()),
        };
        ns.set_sysctl("net.ipv6.conf.all.accept_dad", "0")?;
        ns.set_sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        ns.link_up("lo")?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME args...` as a Command, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `args` in the namespace, bounded by [`DEFAULT_RUN_TIMEOUT`].
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        self.run_timeout(args, DEFAULT_RUN_TIMEOUT)
    }

    /// Runs `args` in the namespace, killed after `timeout`.
    pub fn run_timeout(&self, args: &[&str], timeout: Duration) -> Result<Output> {
        run_bounded(self.command(args), timeout)
    }

    /// Runs `args` in the namespace; a non-zero exit is an error. Returns
    /// stdout.
    pub fn check(&self, args: &[&str]) -> Result<String> {
        check_bounded(self.command(args), DEFAULT_RUN_TIMEOUT)
    }

    /// Sets a sysctl of this namespace (`net.ipv6.conf.all.forwarding`),
    /// by writing /proc/sys, so procps' sysctl is not needed.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        if key.contains("..") || key.contains('/') {
            return Err(Error::refused(
                format!("sysctl key {key:?}"),
                "not a dotted name",
            ));
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.check(&[
            "sh",
            "-c",
            "printf '%s\\n' \"$2\" > \"$1\"",
            "sh",
            &path,
            value,
        ])
        .map(|_| ())
    }

    /// `ip link set DEV up`.
    pub fn link_up(&self, dev: &str) -> Result<()> {
        self.check(&["ip", "link", "set", dev, "up"]).map(|_| ())
    }

    /// Adds `addr/prefix` to `dev`; IPv6 addresses with `nodad`. Only
    /// documentation addresses are accepted.
    pub fn add_address(&self, dev: &str, cidr: &str) -> Result<()> {
        let addr = parse_test_cidr(cidr)?;
        let mut args = vec!["ip", "addr", "add", cidr, "dev", dev];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        self.check(&args).map(|_| ())
    }

    /// Removes `addr/prefix` from `dev`.
    pub fn del_address(&self, dev: &str, cidr: &str) -> Result<()> {
        parse_test_cidr(cidr)?;
        self.check(&["ip", "addr", "del", cidr, "dev", dev])
            .map(|_| ())
    }

    /// Adds a host address (/128 or /32) on `lo`, e.g. an inner tunnel
    /// address.
    pub fn add_loopback_address(&self, addr: IpAddr) -> Result<()> {
        let cidr = match addr {
            IpAddr::V6(a) => format!("{a}/128"),
            IpAddr::V4(a) => format!("{a}/32"),
        };
        self.add_address("lo", &cidr)
    }

    /// A veth pair: `a_dev` in `a`, `b_dev` in `b`, both up. The devices
    /// are created directly in their namespaces, so the same names can be
    /// used by parallel tests.
    pub fn veth_pair(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) -> Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["link", "add", a_dev, "netns", &a.name, "type", "veth"])
            .args(["peer", "name", b_dev, "netns", &b.name]);
        check_bounded(cmd, DEFAULT_RUN_TIMEOUT)?;
        a.link_up(a_dev)?;
        b.link_up(b_dev)
    }

    /// `ping -c COUNT -I SRC DST` (0.2 s apart, 2 s per reply), from this
    /// namespace. The Output tells how many replies came.
    pub fn ping(&self, src: IpAddr, dst: IpAddr, count: u32) -> Result<Output> {
        let family = if dst.is_ipv6() { "-6" } else { "-4" };
        let (src, dst, count) = (src.to_string(), dst.to_string(), count.to_string());
        self.run(&[
            "ping", family, "-n", "-c", &count, "-i", "0.2", "-W", "2", "-I", &src, &dst,
        ])
    }

    /// Pings (one at a time) until one reply comes or `timeout` passes.
    pub fn wait_ping(&self, src: IpAddr, dst: IpAddr, timeout: Duration) -> Result<()> {
        wait_until(timeout, &format!("a ping reply {src} -> {dst}"), || {
            self.ping(src, dst, 1).is_ok_and(|o| o.status.success())
        })
    }

    /// Starts `program args...` in the namespace in the background, stdout
    /// and stderr to `log`, with `env` added to the environment. Returns
    /// once `/proc/PID/exe` shows the program (or fails if it exits first).
    pub fn spawn(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Process> {
        let exe = resolve_program(program)?;
        let mut cmd = self.command(&[]);
        cmd.arg(&exe).args(args);
        cmd.stdin(Stdio::null());
        self.spawn_command(cmd, exe, env, log)
    }

    /// [`Netns::spawn`] with a pipe to the program's stdin, for programs
    /// that take commands there and stop at its end.
    pub fn spawn_piped(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<(Process, ChildStdin)> {
        let exe = resolve_program(program)?;
        let mut cmd = self.command(&[]);
        cmd.arg(&exe).args(args);
        cmd.stdin(Stdio::piped());
        let mut p = self.spawn_command(cmd, exe, env, log)?;
        let stdin = p.child.stdin.take().ok_or_else(|| {
            Error::refused(format!("{} in {}", program, self.name), "no stdin pipe")
        })?;
        Ok((p, stdin))
    }

    /// Starts `sh -c SCRIPT sh SCRIPT_ARGS...` in the namespace, for setup
    /// that has to happen in the program's own mount namespace (charon's
    /// bind-mounted /run). The script must end by `exec`ing `exe`, so the
    /// PID is the program's; this waits until it has.
    pub fn spawn_via_shell(
        &self,
        script: &str,
        script_args: &[&str],
        exe: &Path,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Process> {
        let exe = resolve_program(&exe.to_string_lossy())?;
        let mut cmd = self.command(&["sh", "-c", script, "sh"]);
        cmd.args(script_args).stdin(Stdio::null());
        self.spawn_command(cmd, exe, env, log)
    }

    fn spawn_command(
        &self,
        mut cmd: Command,
        exe: PathBuf,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Process> {
        let desc = describe(&cmd);
        let out = fs::File::create(log).map_err(Error::io(log))?;
        let err = out.try_clone().map_err(Error::io(log))?;
        cmd.stdout(out).stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            command: desc.clone(),
            source,
        })?;
        // Our unreaped child: the PID is still this process, and exec
        // keeps the start time.
        let id = ProcessId {
            pid: child.id(),
            start_time: start_time(child.id()),
            exe,
        };
        self.spawned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id.clone());
        let label = format!(
            "{} in {}",
            id.exe.file_name().unwrap_or_default().to_string_lossy(),
            self.name
        );
        let mut process = Process {
            label,
            id: id.clone(),
            child,
            log: log.to_path_buf(),
            status: None,
        };
        // `ip netns exec` (and `sh -c exec`) replace themselves: wait for
        // the final program, so signals by PID reach it and only it.
        let mut exited = None;
        let became = wait_until(
            Duration::from_secs(5),
            &format!("{} to start", id.exe.display()),
            || {
                if id.runs_exe() {
                    return true;
                }
                exited = process.exit_status().ok().flatten();
                exited.is_some()
            },
        );
        if let Some(status) = exited {
            return Err(Error::ExitedEarly {
                process: desc,
                status,
                output: process.output().trim().to_string(),
            });
        }
        became?;
        Ok(process)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let spawned = match self.spawned.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for id in &spawned {
            // Normally its Process handle has stopped it already.
            if !id.runs_exe() {
                continue;
            }
            let _ = id.signal(Signal::Term);
            let gone = wait_until(STOP_TIMEOUT, "exit", || !id.runs_exe());
            if gone.is_err() {
                let _ = id.signal(Signal::Kill);
            }
        }
        let mut del = Command::new("ip");
        del.args(["netns", "del", &self.name]);
        if let Err(e) = check_bounded(del, DEFAULT_RUN_TIMEOUT) {
            eprintln!("netns: deleting {}: {e}", self.name);
        }
    }
}

/// Whether `addr` is a documentation address (2001:db8::/32 or
/// 192.0.2.0/24), the only kind tests may configure.
pub fn is_test_address(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V6(a) => a.segments()[..2] == [0x2001, 0x0db8],
        IpAddr::V4(a) => a.octets()[..3] == [192, 0, 2],
    }
}

/// Parses `addr/prefix` and checks it is a documentation address with a
/// sane prefix length.
fn parse_test_cidr(cidr: &str) -> Result<IpAddr> {
    let what = || format!("{cidr:?}");
    let (addr, len) = cidr
        .split_once('/')
        .ok_or_else(|| Error::parse(what(), "expected ADDR/PREFIX"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|e: std::net::AddrParseError| Error::parse(what(), e.to_string()))?;
    let len: u8 = len
        .parse()
        .map_err(|e: std::num::ParseIntError| Error::parse(what(), e.to_string()))?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    if len > max {
        return Err(Error::refused(what(), format!("prefix longer than {max}")));
    }
    if !is_test_address(addr) {
        return Err(Error::refused(
            what(),
            "only 2001:db8::/32 and 192.0.2.0/24 may be used in tests",
        ));
    }
    Ok(addr)
}

/// A packet capture: `tcpdump --immediate-mode` on one interface of a
/// namespace into a pcap file. Stop it with [`Capture::stop`] before
/// reading the file; dropping it stops it too.
#[derive(Debug)]
pub struct Capture {
    process: Process,
    path: PathBuf,
}

impl Capture {
    /// Starts capturing on `iface` in `ns` into `pcap`; returns once
    /// tcpdump has written the file header (it opens the capture first, so
    /// from then on packets are recorded).
    pub fn start(ns: &Netns, iface: &str, pcap: &Path) -> Result<Capture> {
        let path = pcap.to_path_buf();
        let _ = fs::remove_file(&path);
        let log = path.with_extension("tcpdump.log");
        let file = path.to_string_lossy().into_owned();
        // --immediate-mode: otherwise libpcap hands packets over in ~1 s
        // blocks and a pcap read right after a test misses the last ones.
        // -U flushes each packet; -Z root keeps the file writable.
        let process = ns.spawn(
            "tcpdump",
            &[
                "-i",
                iface,
                "--immediate-mode",
                "-U",
                "-n",
                "-s",
                "0",
                "-Z",
                "root",
                "-w",
                &file,
            ],
            &[],
            &log,
        )?;
        let mut capture = Capture { process, path };
        let mut exited = None;
        let header = wait_until(
            Duration::from_secs(10),
            "tcpdump's pcap header",
            || match capture.process.exit_status() {
                Ok(None) => fs::metadata(&capture.path).is_ok_and(|m| m.len() >= 24),
                Ok(Some(status)) => {
                    exited = Some(Ok(status));
                    true
                }
                Err(e) => {
                    exited = Some(Err(e));
                    true
                }
            },
        );
        if let Some(status) = exited {
            return Err(Error::ExitedEarly {
                process: format!("tcpdump on {iface} in {}", ns.name()),
                status: status?,
                output: capture.process.output().trim().to_string(),
            });
        }
        header?;
        Ok(capture)
    }

    /// The pcap file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops tcpdump with SIGINT (it completes the file) and waits for it;
    /// returns the pcap path.
    pub fn stop(mut self) -> Result<PathBuf> {
        self.process.stop(Signal::Int, STOP_TIMEOUT)?;
        Ok(self.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_documentation_addresses_pass() {
        assert!(parse_test_cidr("2001:db8:1::a/64").is_ok());
        assert!(parse_test_cidr("192.0.2.65/32").is_ok());
        assert!(parse_test_cidr("2001:db9::1/64").is_err());
        assert!(parse_test_cidr("10.0.0.1/8").is_err());
        assert!(parse_test_cidr("192.0.2.1/33").is_err());
        assert!(parse_test_cidr("192.0.2.1").is_err());
    }

    #[test]
    fn names_are_unique() {
        let a = unique_name("x");
        let b = unique_name("x");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("mip-{}-", std::process::id())));
    }

    #[test]
    fn a_process_is_named_by_pid_and_start_time() {
        let me = ProcessId {
            pid: std::process::id(),
            exe: fs::read_link("/proc/self/exe").unwrap(),
            start_time: start_time(std::process::id()),
        };
        assert!(me.start_time.is_some());
        assert!(me.runs_exe());
        let reused = ProcessId {
            start_time: me.start_time.map(|t| t + 1),
            ..me.clone()
        };
        assert!(!reused.runs_exe(), "same PID, other start time");
        let other_exe = ProcessId {
            exe: PathBuf::from("/usr/lib/ipsec/charon"),
            ..me
        };
        assert!(!other_exe.runs_exe());
    }

    #[test]
    fn bounded_runs_end() {
        let mut cmd = Command::new("sleep");
        cmd.arg("10");
        let err = run_bounded(cmd, Duration::from_millis(100));
        assert!(matches!(err, Err(Error::Killed { .. })), "{err:?}");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hi"]);
        assert_eq!(check_bounded(cmd, DEFAULT_RUN_TIMEOUT).unwrap(), "hi\n");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let err = check_bounded(cmd, DEFAULT_RUN_TIMEOUT).unwrap_err();
        assert!(matches!(err, Error::Failed { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "sh -c echo oops >&2; exit 3: exit status: 3: oops"
        );
    }
}
