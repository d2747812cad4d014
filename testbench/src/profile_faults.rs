//! `gmem profile faults`: the unified-memory figures, measured on the Verilated RTL in
//! the co-simulation's cycle domain (every figure is a ratio of two measurements of
//! this run), next to the CUDA unified-memory anchors they compete with.

use std::sync::Arc;
use std::time::Instant;

use gmem_host::softdev::{SoftConfig, SoftDevice};
use gmem_host::{Access, Config, CpuMode, DeviceFault, Gmem, Hint, MapFlags, Node, ThrashConfig};
use npu::kernel::Kernel;
use npu::session::Session;
use npu::{DeviceIo, NpuConfig};
use serde::Serialize;
use sim_bridge::{SimConfig, SimDevice, TimingModel};

/// One figure of the profile.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// Name (stable, for scripts).
    pub name: &'static str,
    /// Measured value.
    pub value: f64,
    /// Target of the project.
    pub target: &'static str,
    /// What it competes with (CUDA unified memory on an H100, or UVM defaults).
    pub anchor: &'static str,
    /// How it was measured.
    pub how: String,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn session(device_mem: u64, thrash: bool) -> Result<Session<SimDevice>, String> {
    let gm = npu::session::manager_config_thrashing(thrash);
    let npu = NpuConfig { managed_bytes: Some(device_mem), ..Default::default() };
    Session::open(SimDevice::new(SimConfig::default()).map_err(err)?, npu, gm).map_err(err)
}

fn fill(p: *mut u32, n: usize) {
    for i in 0..n {
        // SAFETY: callers pass a managed region of n words.
        unsafe { p.add(i).write(i as u32) };
    }
}

/// Device time (ns) of `f`.
fn timed<T: DeviceIo + Send>(s: &Session<T>, f: impl FnOnce() -> Result<(), String>) -> Result<u64, String> {
    let t0 = s.now_ns();
    f()?;
    Ok(s.now_ns() - t0)
}

fn cycles(ns: u64) -> f64 {
    ns as f64 * sim_bridge::NOMINAL_HZ as f64 / 1e9
}

/// Runs every measurement over `bytes` per stream; `progress` is told each figure.
pub fn run(bytes: u64, mut progress: impl FnMut(&Figure)) -> Result<Vec<Figure>, String> {
    let timing = TimingModel::default();
    let peak = timing.host.bytes_per_cycle as f64;
    let words = (bytes / 4) as usize;
    let mut out = Vec::new();
    let mut push = |f: Figure, out: &mut Vec<Figure>| {
        progress(&f);
        out.push(f);
    };

    // Fault-driven streaming: a reduction over host-resident data, every page faulted in.
    let s = session(64 << 20, false)?;
    let a = s.alloc(bytes).map_err(err)?;
    fill(a, words);
    // The kernel reads one word per 4 KiB page: the compute unit's own throughput
    // (4 slots, about 3 B/cycle on a full-line stream) stays out of the figure, as a
    // GPU's does in the CUDA measurement.
    let pages = (bytes / 4096) as u32;
    let ns =
        timed(&s, || s.launch(Kernel::strided_touch(s.asid, a as u64, 4096, pages, None)).map(|_| ()).map_err(err))?;
    push(
        Figure {
            name: "fault_stream_efficiency",
            value: bytes as f64 / cycles(ns) / peak,
            target: ">= 0.50",
            anchor: "CUDA UM H100: 0.145 of link (7-8 GB/s of 55)",
            how: format!(
                "a kernel reading every 4 KiB page of {} KiB of CPU-written data in order; bytes migrated / kernel cycles / {peak} B/cycle",
                bytes >> 10
            ),
        },
        &mut out,
    );

    // Prefetch: the same amount, hinted.
    let b = s.alloc(bytes).map_err(err)?;
    fill(b, words);
    let ns = timed(&s, || s.gm.hmadvise(s.space, Node::Device(s.id), b as u64, bytes, Hint::Prefetch).map_err(err))?;
    push(
        Figure {
            name: "prefetch_efficiency",
            value: bytes as f64 / cycles(ns) / peak,
            target: ">= 0.95",
            anchor: "CUDA UM H100: 0.84 (prefetch H2D 45-47 GB/s of 55)",
            how: format!("hmadvise(PREFETCH) of {} KiB, bytes / cycles of the call / {peak} B/cycle", bytes >> 10),
        },
        &mut out,
    );

    // CPU fault-back: the CPU reads data the NPU wrote (device-resident).
    let c = s.alloc(bytes).map_err(err)?;
    s.launch(Kernel::fill(s.asid, c as u64, words as u32, 5)).map_err(err)?;
    let ns = timed(&s, || {
        for i in (0..words).step_by(1024) {
            // SAFETY: i < words, inside c; the read faults the page back.
            let v = unsafe { c.add(i).read() };
            if v != 5 {
                return Err(format!("fault-back read {v} at element {i}"));
            }
        }
        Ok(())
    })?;
    push(
        Figure {
            name: "cpu_faultback_efficiency",
            value: bytes as f64 / cycles(ns) / peak,
            target: ">= 0.30",
            anchor: "CUDA UM H100: 0.08 (3.6-4.5 GB/s)",
            how: format!(
                "CPU reads one word per page of {} KiB the NPU filled; bytes / device cycles / {peak} B/cycle",
                bytes >> 10
            ),
        },
        &mut out,
    );
    drop(s);

    // Oversubscription: the same copy stream, fitting vs 2x the device memory.
    let stream = |device_mem: u64| -> Result<u64, String> {
        let s = session(device_mem, false)?;
        let a = s.alloc(bytes).map_err(err)?;
        let c = s.alloc(bytes).map_err(err)?;
        fill(a, words);
        timed(&s, || s.launch(Kernel::copy(s.asid, a as u64, c as u64, words as u32)).map(|_| ()).map_err(err))
    };
    let fit = stream(4 * bytes)?;
    let over = stream(bytes)?;
    push(
        Figure {
            name: "oversubscription_cost",
            value: over as f64 / fit as f64 - 1.0,
            target: "<= 0.15",
            anchor: "UVM: eviction can spin (field failure); no published ratio",
            how: format!(
                "COPY of {} KiB -> {} KiB with device memory 2x vs 0.5x the working set: slowdown",
                bytes >> 10,
                bytes >> 10
            ),
        },
        &mut out,
    );

    // Ping-pong: un-hinted vs ACCESSED_BY; thrashing control off vs on.
    let pingpong = |hint: bool, thrash: bool| -> Result<u64, String> {
        let s = session(64 << 20, thrash)?;
        let pages = 64usize;
        let p = s.alloc(pages as u64 * 4096).map_err(err)?;
        if hint {
            s.gm.hmadvise(s.space, Node::Device(s.id), p as u64, pages as u64 * 4096, Hint::AccessedBy).map_err(err)?;
        }
        timed(&s, || {
            for round in 0..16u32 {
                for page in 0..pages {
                    // SAFETY: word 0 of page `page` of the region.
                    unsafe { p.add(page * 1024).write(round) };
                }
                s.launch(Kernel::strided_touch(s.asid, p as u64, 4096, pages as u32, Some(round))).map_err(err)?;
            }
            Ok(())
        })
    };
    let plain = pingpong(false, false)?;
    let hinted = pingpong(true, false)?;
    push(
        Figure {
            name: "pingpong_hint_speedup",
            value: plain as f64 / hinted as f64,
            target: ">= 100",
            anchor: "CUDA UM H100: 125x (100-125 ms/iter -> 0.9 ms with hints)",
            how:
                "16 rounds of CPU then NPU writing one word in each of 64 pages; device time without / with ACCESSED_BY"
                    .into(),
        },
        &mut out,
    );
    let adaptive = pingpong(false, true)?;
    push(
        Figure {
            name: "thrash_adaptive_speedup",
            value: plain as f64 / adaptive as f64,
            target: ">= 10",
            anchor: "UVM: throttle, then pin + map remotely after 3 events in 500 us",
            how: "the same un-hinted ping-pong, thrashing control off / on".into(),
        },
        &mut out,
    );

    // Host software per fault: the manager alone (a software device), 256-fault batches.
    push(host_cost()?, &mut out);
    Ok(out)
}

/// Wall time of `Gmem::dev_fault` per fault, batches of 256 CPU-resident pages.
fn host_cost() -> Result<Figure, String> {
    const BATCH: u64 = 256;
    let cfg = Config {
        cpu: CpuMode::Userfaultfd,
        thrash: ThrashConfig { enabled: false, ..Default::default() },
        ..Default::default()
    };
    let gm = Gmem::new(cfg).map_err(err)?;
    let dev = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 4 * BATCH * 4096, ..Default::default() }));
    let id = gm.register_device(dev).map_err(err)?;
    let space = gm.create_space();
    let asid = gm.attach(space, id).map_err(err)?;
    let len = BATCH * 4096;
    let p = gm.mmap(space, len, MapFlags::PEER_SHARED).map_err(err)? as u64;
    gm.cpu_access(p, len, true).map_err(err)?;
    let faults: Vec<DeviceFault> =
        (0..BATCH).map(|i| DeviceFault { asid, va: p + i * 4096 + 64, access: Access::Read, tag: i }).collect();
    let mut samples = Vec::new();
    for _ in 0..30 {
        gm.hmadvise(space, Node::Cpu, p, len, Hint::DontNeed).map_err(err)?;
        let t = Instant::now();
        let r = gm.dev_fault(id, &faults);
        samples.push(t.elapsed().as_secs_f64() * 1e6 / BATCH as f64);
        if !r.iter().all(|x| x.is_retry()) {
            return Err("a host-cost fault was not resolved".into());
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(Figure {
        name: "host_us_per_fault",
        value: samples[samples.len() / 2],
        target: "<= 1",
        anchor: "UVM: ~50k faults/s (20 us/fault), isolated fault 31-44 us",
        how: "median wall time of Gmem::dev_fault per fault, 256-fault batches of CPU-resident pages (software device)"
            .into(),
    })
}
