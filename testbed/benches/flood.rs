//! The correspondent and the home agent flooded from random addresses
//! while the mobile node keys them with IKE and moves twice, against the
//! same run without the flood (testbed::flood::scenario).
//!
//! `cargo bench -p testbed --bench flood [-- PER_MS]`: PER_MS packets a
//! millisecond at each victim (default 100: 1.2 M packets in 6 s).

use common::ike::IkeDrop;
use testbed::flood::{scenario, Outcome};

fn ms(d: Option<common::time::Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

fn row(name: &str, o: &Outcome, wall: f64) {
    let t = &o.t;
    let ike = |n| t.sim.engine(n).and_then(|e| e.ike());
    let sas = |n| ike(n).map_or(0, |i| i.sa_ids().count());
    let cookies = |n| ike(n).map_or(0, |i| i.stats().dropped(IkeDrop::Cookie));
    let up = |p| {
        o.ike_up(p).map_or("-".into(), |at| {
            format!("{:.3}", at.total_micros() as f64 / 1e6)
        })
    };
    println!(
        "| {name} | {} | {:.2} | {} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} |",
        o.flood_packets,
        wall,
        ms(o.handoffs.first().copied().flatten()),
        ms(o.handoffs.get(1).copied().flatten()),
        up("ha.example.org"),
        up("cn.example.org"),
        o.neighbours(t.cn),
        o.neighbours(t.ha),
        sas(t.cn),
        sas(t.ha),
        cookies(t.cn),
        cookies(t.ha),
        o.bus_refused(t.cn),
        o.bus_refused(t.ha),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test` runs a bench without `--bench`: a small run.
    let per_ms = if args.iter().any(|a| a == "--bench") {
        args.iter().find_map(|a| a.parse().ok()).unwrap_or(100)
    } else {
        1
    };
    println!("| run | flood packets | wall s | handoff A ms | handoff B ms | IKE up with HA s | with CN s | neighbours CN / HA | IKE SAs CN / HA | COOKIE refusals CN / HA | BUs refused CN / HA |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut runs = vec![];
    for (name, n) in [("quiet", 0), ("flooded", per_ms)] {
        #[expect(clippy::disallowed_methods, reason = "a bench measures wall time")]
        let start = std::time::Instant::now();
        let o = scenario(n);
        row(name, &o, start.elapsed().as_secs_f64());
        runs.push(o);
    }
    let s = |d: Option<common::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let ike_s = |o: &Outcome| {
        o.ike_up("ha.example.org")
            .map(|at| at.total_micros() as f64 / 1e6)
    };
    let (quiet, flooded) = (&runs[0], &runs[1]);
    let first = |o: &Outcome| s(o.handoffs.first().copied().flatten());
    for (what, ours, base) in [
        (
            "first handoff under the flood, ms",
            first(flooded),
            first(quiet),
        ),
        (
            "IKE up with the HA under the flood, s",
            ike_s(flooded),
            ike_s(quiet),
        ),
    ] {
        testbed::summary::Figure {
            item: "flood",
            what,
            ours,
            baseline: "no flood",
            base,
            goal: "≈ 1",
        }
        .print();
    }
}
