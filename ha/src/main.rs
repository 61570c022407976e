//! The home agent daemon. Its engine (common::node) and tokio/TUN driver are not
//! built yet; until then the binary says so rather than pretending to run.

fn main() -> std::process::ExitCode {
    eprintln!(
        "ha: the home agent daemon is not available yet: its engine is still to be built. \
         Use `testbed decode` to inspect packets."
    );
    std::process::ExitCode::from(2)
}
