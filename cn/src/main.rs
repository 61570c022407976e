//! The correspondent node daemon. Its engine (common::node) and tokio/TUN driver are not
//! built yet; until then the binary says so rather than pretending to run.

fn main() -> std::process::ExitCode {
    eprintln!(
        "cn: the correspondent node daemon is not available yet: its engine is still to be built. \
         Use `testbed decode` to inspect packets."
    );
    std::process::ExitCode::from(2)
}
