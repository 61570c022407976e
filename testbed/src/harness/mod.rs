//! Real processes for interop tests: network namespaces, veth pairs,
//! processes and captures in them ([`netns`]), and strongSwan's charon as
//! an IKEv2 peer ([`strongswan`]).

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub mod netns;
pub mod strongswan;

/// What went wrong driving real programs: each variant carries the
/// command line, path or value involved, and what the program said.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program could not be started.
    #[error("{command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        #[source]
        source: io::Error,
    },
    /// Asking the OS whether a program we started has exited failed.
    #[error("{process}: {source}")]
    Wait {
        /// Which program, and where.
        process: String,
        #[source]
        source: io::Error,
    },
    /// A program is not installed.
    #[error("{program}: not found in {looked_in}")]
    NotInstalled {
        /// Its name.
        program: String,
        /// `PATH`, or the paths tried.
        looked_in: String,
    },
    /// A program exited with a failure status.
    #[error("{command}: {status}: {output}")]
    Failed {
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// Its stderr, then its stdout.
        output: String,
    },
    /// A program we started in the background exited before it was ready.
    #[error("{process}: exited at once ({status}): {output}")]
    ExitedEarly {
        /// The command line, or which program and where.
        process: String,
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to its log.
        output: String,
    },
    /// A program was still running when its bound passed, and was killed.
    #[error("{command}: still running after {timeout:?}, killed; stderr: {stderr}")]
    Killed {
        /// The command line.
        command: String,
        /// Its bound.
        timeout: Duration,
        /// What it wrote to stderr until then.
        stderr: String,
    },
    /// A program we started was to be signalled but has exited already.
    #[error("{process} (pid {pid}) has already exited")]
    AlreadyExited {
        /// Which program, and where.
        process: String,
        /// Its PID.
        pid: u32,
    },
    /// A condition did not come true in time.
    #[error("timed out after {timeout:?} waiting for {what}{}", last_error_suffix(.last_error))]
    TimedOut {
        /// What was awaited.
        what: String,
        /// For how long.
        timeout: Duration,
        /// The last error while polling, if one explains the wait.
        last_error: Option<Box<Error>>,
    },
    /// I/O on a file or directory.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Copying a file.
    #[error("{} -> {}: {source}", .from.display(), .to.display())]
    Copy {
        /// The original.
        from: PathBuf,
        /// The copy.
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Text (a program's output, an argument) did not parse.
    #[error("{what}: {problem}")]
    Parse {
        /// What was parsed: the command whose output it is, or the value.
        what: String,
        /// What was wrong, and where.
        problem: String,
    },
    /// A value the harness refuses: a non-documentation address, a name
    /// with unexpected characters, a configuration that cannot work.
    #[error("{what}: {why}")]
    Refused {
        /// The value, or the setting.
        what: String,
        /// Why not.
        why: String,
    },
    /// charon exited or timed out before it opened its vici socket.
    #[error(
        "charon in {netns} did not open {} ({}): stdout {stdout:?}, log tail:\n{log_tail}",
        .socket.display(),
        if *.exited { "it exited" } else { "timed out" }
    )]
    CharonNotReady {
        /// The namespace it ran in.
        netns: String,
        /// The vici socket it should have opened.
        socket: PathBuf,
        /// Whether it exited (rather than timed out).
        exited: bool,
        /// What it wrote to stdout and stderr.
        stdout: String,
        /// The end of its log.
        log_tail: String,
    },
    /// A swanctl call failed.
    #[error("swanctl {args:?}: {status}\n{output}\ncharon log tail:\n{log_tail}")]
    Swanctl {
        /// swanctl's arguments (without `--uri`).
        args: Vec<String>,
        /// How it exited.
        status: ExitStatus,
        /// Its stdout, then its stderr.
        output: String,
        /// The end of charon's log.
        log_tail: String,
    },
}

/// A harness result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn last_error_suffix(last: &Option<Box<Error>>) -> String {
    last.as_ref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default()
}

impl Error {
    /// For `map_err`: an I/O error on `path`.
    pub(crate) fn io(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A value the harness refuses.
    pub(crate) fn refused(what: impl Into<String>, why: impl Into<String>) -> Error {
        Error::Refused {
            what: what.into(),
            why: why.into(),
        }
    }

    /// Text that did not parse.
    pub(crate) fn parse(what: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::Parse {
            what: what.into(),
            problem: problem.into(),
        }
    }
}
