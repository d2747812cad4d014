//! Co-simulation speed: the Rust bridge vs a bare C++ harness of the same RTL, side by
//! side in one run. Criterion reports simulated cycles per second for each (throughput
//! in "elements" = device cycles); the last line prints the ratio (target ≥ 0.90).
//!
//! Run: `cargo bench -p sim-bridge --bench cosim`.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sim_bridge::TimingModel;
use sim_bridge::cosim::{bare_dma, bridge_dma};
use std::time::Duration;

const BYTES: u64 = 256 * 1024;
const ROUNDS: u32 = 2;

fn cosim(c: &mut Criterion) {
    let t = TimingModel::default();
    let cycles = bare_dma(BYTES, ROUNDS, &t).expect("bare harness runs").cycles;
    let mut g = c.benchmark_group("cosim_dma_256k_h2d_d2h");
    g.throughput(Throughput::Elements(cycles));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("rust_bridge", |b| b.iter(|| bridge_dma(BYTES, ROUNDS, &t).expect("bridge runs")));
    g.bench_function("bare_cpp", |b| b.iter(|| bare_dma(BYTES, ROUNDS, &t).expect("bare runs")));
    g.finish();

    // One more paired measurement for the ratio line.
    let bridge = bridge_dma(BYTES, 4 * ROUNDS, &t).expect("bridge runs");
    let bare = bare_dma(BYTES, 4 * ROUNDS, &t).expect("bare runs");
    println!(
        "cosim ratio (bridge cycles/s ÷ bare cycles/s) = {:.3}   [{:.0} vs {:.0} cycles/s, {} cycles each]",
        bridge.cycles_per_second() / bare.cycles_per_second(),
        bridge.cycles_per_second(),
        bare.cycles_per_second(),
        bare.cycles
    );
}

criterion_group!(benches, cosim);
criterion_main!(benches);
