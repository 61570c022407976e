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
    let mut missed_at_30 = vec![];
    for seed in 1..=4 {
        let setup = Setup::new(seed, RouteOptimisation::Ipsec);
        let clean = run(&setup, 0.0);
        assert!(
            clean.handoffs.iter().all(Option::is_some),
            "{seed}: {clean:?}"
        );
        for loss in [0.1, 0.2, 0.3] {
            let lossy = run(&setup, loss);
            // At 30 % the bench completes 79 of 80 handoffs in the 60 s
            // window (README, "Loss"): one run of these four may miss one;
            // below 30 % every handoff completes.
            let missed = lossy.handoffs.iter().filter(|h| h.is_none()).count();
            if loss < 0.25 {
                assert_eq!(missed, 0, "{seed} {loss}: {lossy:?}");
            } else if missed > 0 {
                missed_at_30.push((seed, lossy.clone()));
            }
            // What loss costs is retransmissions (against no loss: each
            // rate draws its own losses, so one seed need not be monotone).
            assert!(
                lossy.mn_signalling >= clean.mn_signalling,
                "{seed} {loss}: {lossy:?}"
            );
        }
    }
    assert!(missed_at_30.len() <= 1, "{missed_at_30:?}");
}

// REQ MIP-BASE
#[test]
fn return_routability_handoffs_complete_without_loss() {
    for seed in 1..=4 {
        let r = run(&Setup::new(seed, RouteOptimisation::ReturnRoutability), 0.0);
        assert!(r.handoffs.iter().all(Option::is_some), "{seed}: {r:?}");
    }
}
