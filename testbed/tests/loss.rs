//! Handoffs over lossy links (issue 14, item 4): every link of the demo
//! losing 10, 20 and 30 % of its frames, several seeds. IPsec route
//! optimisation gets each move through by retransmission; return
//! routability needs four more messages, each across up to four lossy
//! links, and is measured by `cargo bench -p testbed --bench loss`.

#![allow(clippy::unwrap_used, reason = "tests")]

use common::node::RouteOptimisation;
use testbed::loss::run;
use testbed::topology::Setup;

// REQ MIP-BASE
#[test]
fn ipsec_handoffs_complete_with_up_to_30_percent_loss_on_every_link() {
    for seed in 1..=4 {
        let setup = Setup::new(seed, RouteOptimisation::Ipsec);
        let clean = run(&setup, 0.0);
        assert!(
            clean.handoffs.iter().all(Option::is_some),
            "{seed}: {clean:?}"
        );
        for loss in [0.1, 0.2, 0.3] {
            let lossy = run(&setup, loss);
            assert!(
                lossy.handoffs.iter().all(Option::is_some),
                "{seed} {loss}: {lossy:?}"
            );
            // What loss costs is retransmissions (against no loss: each
            // rate draws its own losses, so one seed need not be monotone).
            assert!(
                lossy.mn_signalling > clean.mn_signalling,
                "{seed} {loss}: {lossy:?}"
            );
        }
    }
}

// REQ MIP-BASE
#[test]
fn return_routability_handoffs_complete_without_loss() {
    for seed in 1..=4 {
        let r = run(&Setup::new(seed, RouteOptimisation::ReturnRoutability), 0.0);
        assert!(r.handoffs.iter().all(Option::is_some), "{seed}: {r:?}");
    }
}
