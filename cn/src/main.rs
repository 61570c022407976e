//! `cn`: the correspondent node daemon. Its address lives on a TUN device,
//! so the host's applications (a ping, a server) talk to mobile nodes
//! through it: Home Address options checked (draft-dupont-mipv6-cn-ipsec
//! §3), BUs under IPsec with the care-of address test (§4, Annex A1) or by
//! return routability. `cn run --config cn.yaml`; `cn bindings`.

mod config;

use std::process::ExitCode;

use clap::Parser;
use common::io::daemon::{self, Action};

#[derive(Parser)]
#[command(
    version,
    about = "Mobile IPv6 correspondent node (draft-dupont-mipv6-cn-ipsec)"
)]
struct Cli {
    #[command(subcommand)]
    action: Action,
}

fn main() -> ExitCode {
    daemon::main::<config::CnFile>(Cli::parse().action)
}
