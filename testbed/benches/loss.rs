//! Handoff latency and the mobile node's signalling with every link of
//! the demo losing 0, 10, 20 and 30 % of its frames, over many seeds
//! (testbed::loss). `cargo bench -p testbed --bench loss [-- SEEDS]`.

use common::node::RouteOptimisation;
use common::time::Duration;
use testbed::loss::{percentile, run};
use testbed::topology::Setup;

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test` runs a bench without `--bench`: two seeds.
    let seeds: u64 = if args.iter().any(|a| a == "--bench") {
        args.iter().find_map(|a| a.parse().ok()).unwrap_or(50)
    } else {
        2
    };
    println!("{seeds} seeds, 2 handoffs each (access A, then B 60 s later)");
    println!("| mode | loss on every link | completed | p50 ms | p90 ms | p99 ms | max ms | MN signalling messages per run | × loss-free |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut figures = vec![];
    for (name, mode) in [
        ("IPsec", RouteOptimisation::Ipsec),
        ("RR", RouteOptimisation::ReturnRoutability),
    ] {
        let mut base = None;
        let mut quiet = None;
        for loss in [0.0, 0.1, 0.2, 0.3] {
            let runs: Vec<_> = (1..=seeds)
                .map(|s| run(&Setup::new(s, mode), loss))
                .collect();
            let mut lat: Vec<Duration> = runs.iter().flat_map(|r| r.handoffs).flatten().collect();
            lat.sort();
            let msgs = runs.iter().map(|r| r.mn_signalling).sum::<u64>() as f64 / seeds as f64;
            let b = *base.get_or_insert(msgs);
            if loss == 0.0 {
                quiet = percentile(&lat, 50);
            }
            if loss == 0.3 {
                let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
                figures.push(
                    testbed::summary::Figure {
                        item: "loss",
                        what: &format!(
                            "{name} handoff p50 at 30 % loss, ms ({}/{} done)",
                            lat.len(),
                            2 * seeds
                        ),
                        ours: ms(percentile(&lat, 50)),
                        baseline: "loss-free",
                        base: ms(quiet),
                        goal: "-",
                    }
                    .line(),
                );
            }
            println!(
                "| {name} | {:.0} % | {}/{} | {} | {} | {} | {} | {msgs:.1} | {:.2} |",
                loss * 100.0,
                lat.len(),
                2 * seeds,
                ms(percentile(&lat, 50)),
                ms(percentile(&lat, 90)),
                ms(percentile(&lat, 99)),
                ms(lat.last().copied()),
                msgs / b,
            );
        }
    }
    for f in figures {
        println!("{f}");
    }
}
