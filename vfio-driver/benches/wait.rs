//! Wall time of a 200 ns wait on this host, the length of a driver's ring poll
//! (`DeviceIo::advance(200)`), three ways:
//!
//! * `sleep, default slack`: `thread::sleep` with Linux's default 50 µs timer slack —
//!   what `VfioDevice::advance` did before `vfio_driver::wait`;
//! * `sleep, 1 µs slack`: the same sleep with the slack lowered to `wait::TIMER_SLACK`;
//! * `wait_for`: `wait::wait_for`, which spins below `wait::SPIN_BELOW`.
//!
//! A plain benchmark (no harness): it prints the median and 99th percentile of each
//! wait's wall time and its overshoot past 200 ns, and each overshoot as a ratio to
//! `wait_for`'s. Run with `nice -n 10 cargo bench -p vfio-driver --bench wait`.

use std::time::{Duration, Instant};

use vfio_driver::{sys, wait};

const D: Duration = Duration::from_nanos(200);
const RUNS: usize = 5_000;

/// Median and 99th percentile of `RUNS` timed calls of `f`, nanoseconds.
fn measure(mut f: impl FnMut()) -> (u64, u64) {
    let mut t: Vec<u64> = (0..RUNS)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_nanos() as u64
        })
        .collect();
    t.sort_unstable();
    (t[RUNS / 2], t[RUNS * 99 / 100])
}

fn main() {
    // `cargo test --benches` runs this with --bench absent: measure only under cargo bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let slack = |ns: u64| sys::set_timer_slack(ns).expect("PR_SET_TIMERSLACK");
    slack(50_000);
    let default = measure(|| std::thread::sleep(D));
    slack(wait::TIMER_SLACK.as_nanos() as u64);
    let lowered = measure(|| std::thread::sleep(D));
    let spin = measure(|| wait::wait_for(D));
    let over = |ns: u64| ns.saturating_sub(D.as_nanos() as u64);
    println!("wall time of a {D:?} wait, {RUNS} runs each (model: this host's wall clock)");
    for (name, (p50, p99)) in [("sleep, default slack", default), ("sleep, 1 µs slack", lowered), ("wait_for", spin)] {
        println!(
            "  {name:<22} median {p50:>7} ns (overshoot {:>7} ns, {:>6.1}× wait_for's)   p99 {p99:>7} ns",
            over(p50),
            over(p50) as f64 / over(spin.0).max(1) as f64,
        );
    }
}
