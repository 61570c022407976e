//! `ha`: the home agent daemon. It registers its mobile nodes under ESP
//! (RFC 3776), checks each new home address with DAD, defends the
//! registered ones on the home link (proxy Neighbor Discovery) and tunnels
//! their traffic to the care-of address and back. `ha run --config
//! ha.yaml`; `ha bindings`.

mod config;

use std::process::ExitCode;

use clap::Parser;
use common::io::daemon::{self, Action};

#[derive(Parser)]
#[command(version, about = "Mobile IPv6 home agent (RFC 6275, RFC 3776)")]
struct Cli {
    #[command(subcommand)]
    action: Action,
}

fn main() -> ExitCode {
    daemon::main::<config::HaFile>(Cli::parse().action)
}
