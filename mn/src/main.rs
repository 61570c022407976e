//! `mn`: the mobile node daemon. Its home address lives on a TUN device,
//! so the host's applications keep using it while the node moves between
//! the links it is configured with (`mn run --config mn.yaml`); `mn
//! status` and `mn bindings` ask a running node what it is doing.

mod config;

use std::process::ExitCode;

use clap::Parser;
use common::io::daemon::{self, Action};

#[derive(Parser)]
#[command(
    version,
    about = "Mobile IPv6 mobile node (RFC 6275, draft-dupont-mipv6-cn-ipsec)"
)]
struct Cli {
    #[command(subcommand)]
    action: Action,
}

fn main() -> ExitCode {
    daemon::main::<config::MnFile>(Cli::parse().action)
}
