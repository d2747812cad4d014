//! `gmem profile faults`: the unified-memory figures, measured on the Verilated RTL in
//! the co-simulation's cycle domain (every figure is a ratio of two measurements of
//! this run), next to the CUDA unified-memory anchors they compete with.

use std::sync::Arc;
use std::time::Instant;

use gmem_host::softdev::{SoftConfig, SoftDevice};
use gmem_host::{Access, Asid, Config, DeviceFault, GmMmu, Hint, MapFlags, Node, VaRange};
use npu::kernel::Kernel;
use npu::session::Session;
use npu::{DeviceIo, NpuConfig};
use serde::Serialize;
use sim_bridge::SimDevice;

use crate::profile_dma::{self, Direction};
use crate::system::System;

/// One figure of the profile.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// Name (stable, for scripts).
    pub name: &'static str,
    /// Measured value.
    pub value: f64,
    /// Unit of `value` (`ratio`, `GB/s`, `us`).
    pub unit: &'static str,
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

fn session(sys: &System, device_mem: u64, thrash: bool) -> Result<Session<SimDevice>, String> {
    let gm = npu::session::manager_config_thrashing(thrash);
    let npu = sys.npu(NpuConfig { managed_bytes: Some(device_mem), ..Default::default() });
    Session::open(SimDevice::new(sys.sim_config()).map_err(err)?, npu, gm).map_err(err)
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

fn gbps(bytes: u64, ns: u64) -> f64 {
    bytes as f64 / ns.max(1) as f64
}

/// Commands per fetch beat of the command engine (64 bytes, 16-byte commands).
const COMMANDS_PER_BEAT: u16 = 4;

/// One isolated fault: device time (ns) of the faulting kernel and of the same kernel
/// on the now resident page, and the driver's fault-service breakdown.
struct Isolated {
    faulting: u64,
    resident: u64,
    service: u64,
    gather: u64,
    dma: u64,
    host: u64,
}

impl Isolated {
    /// What the fault added: the faulting kernel's time beyond the resident one's (ns).
    fn cost(&self) -> u64 {
        self.faulting.saturating_sub(self.resident)
    }
}

/// A one-page kernel on the CPU-resident page at `va`, then once more.
fn isolated_fault(s: &Session<SimDevice>, va: u64) -> Result<Isolated, String> {
    let touch = || Kernel::strided_touch(s.asid, va, 4096, 1, None);
    let before = s.npu.stats();
    let faulting = timed(s, || s.launch(touch()).map(|_| ()).map_err(err))?;
    let after = s.npu.stats();
    let resident = timed(s, || s.launch(touch()).map(|_| ()).map_err(err))?;
    let d = |f: fn(&npu::NpuStats) -> u64| f(&after) - f(&before);
    Ok(Isolated {
        faulting,
        resident,
        service: d(|t| t.fault_service_ns),
        gather: d(|t| t.fault_gather_ns),
        dma: d(|t| t.fault_dma_ns),
        host: d(|t| t.fault_host_ns),
    })
}

/// Moves the command ring's tail to `slot` of a fetch beat with one fenced invalidation
/// of 1 to 4 unmapped pages (an INVAL per page and a FENCE: 2 to 5 commands).
fn align_command_ring(s: &Session<SimDevice>, slot: u16) -> Result<(), String> {
    let tail = s.npu.command_ring_tail();
    let shift = (slot + COMMANDS_PER_BEAT - tail % COMMANDS_PER_BEAT) % COMMANDS_PER_BEAT;
    // `invals` + 1 commands, 2 ..= 5, congruent to `shift`.
    let invals = (shift + COMMANDS_PER_BEAT - 2) % COMMANDS_PER_BEAT + 1;
    // Pages below the manager's VA base: never mapped.
    let ranges: Vec<VaRange> =
        (0..u64::from(invals)).map(|i| VaRange { start: (2 * i + 1) * 4096, len: 4096 }).collect();
    s.npu.tlb_invl_coalesced(Asid(u32::from(s.asid)), &ranges).map_err(err)?;
    let tail = s.npu.command_ring_tail();
    if tail % COMMANDS_PER_BEAT != slot {
        return Err(format!("command ring at slot {} of its beat, wanted {slot}", tail % COMMANDS_PER_BEAT));
    }
    Ok(())
}

/// Runs every measurement over `bytes` per stream; `progress` is told each figure.
pub fn run(bytes: u64, sys: &System, mut progress: impl FnMut(&Figure)) -> Result<Vec<Figure>, String> {
    let words = (bytes / 4) as usize;
    let mut out = Vec::new();
    let mut push = |f: Figure, out: &mut Vec<Figure>| {
        progress(&f);
        out.push(f);
    };

    // The references: explicit DMA copies on the same model, measured in this run.
    let copy_h2d = profile_dma::copy_gbps(sys, Direction::H2d).map_err(err)?;
    let copy_d2h = profile_dma::copy_gbps(sys, Direction::D2h).map_err(err)?;
    push(
        Figure {
            name: "copy_gbps",
            value: copy_h2d,
            unit: "GB/s",
            target: "reference",
            anchor: "CUDA H100: pinned memcpy H2D 55 GB/s (Gen5 x16)",
            how: format!(
                "explicit H2D DMA copy, 64 KiB descriptors over 4 MiB, until the driver sees the last completion (D2H: {copy_d2h:.2} GB/s)"
            ),
        },
        &mut out,
    );

    // Fault-driven streaming: a reduction over host-resident data, every page faulted in.
    let s = session(sys, 64 << 20, false)?;
    let a = s.alloc(bytes).map_err(err)?;
    fill(a, words);
    // The kernel reads one word per 4 KiB page: the compute unit's own throughput
    // (4 slots, about 3 B/cycle on a full-line stream) stays out of the figure, as a
    // GPU's does in the CUDA measurement.
    let pages = (bytes / 4096) as u32;
    let ns =
        timed(&s, || s.launch(Kernel::strided_touch(s.asid, a as u64, 4096, pages, None)).map(|_| ()).map_err(err))?;
    let stream = gbps(bytes, ns);
    push(
        Figure {
            name: "fault_stream_gbps",
            value: stream,
            unit: "GB/s",
            target: "",
            anchor: "CUDA UM H100: 7-8 GB/s",
            how: format!("a kernel reading every 4 KiB page of {} KiB of CPU-written data in order", bytes >> 10),
        },
        &mut out,
    );
    push(
        Figure {
            name: "fault_stream_efficiency",
            value: stream / copy_h2d,
            unit: "ratio",
            target: ">= 0.50",
            anchor: "CUDA UM H100: 0.15 (8.3 of 55 GB/s)",
            how: "fault_stream_gbps / copy_gbps, both measured in this run".into(),
        },
        &mut out,
    );

    // Isolated fault: a one-page kernel on a host-resident page, minus the same kernel
    // on a page already on the device; once at each position of the fault's command
    // batch in the command engine's fetch beat (one host read or two), the median.
    let mut isolated: Vec<Isolated> = Vec::new();
    for slot in 0..COMMANDS_PER_BEAT {
        let one = s.alloc(8192).map_err(err)?;
        fill(one, 2048);
        align_command_ring(&s, slot)?;
        isolated.push(isolated_fault(&s, one as u64)?);
    }
    isolated.sort_by_key(Isolated::cost);
    let (lo, hi) = (&isolated[0], &isolated[COMMANDS_PER_BEAT as usize - 1]);
    let m = &isolated[COMMANDS_PER_BEAT as usize / 2];
    let us = |ns: u64| ns as f64 / 1e3;
    let (service, gather, dma, host) = (us(m.service), us(m.gather), us(m.dma), us(m.host));
    push(
        Figure {
            name: "isolated_fault_us",
            value: us(m.cost()),
            unit: "us",
            target: "<= 5",
            anchor: "CUDA UM H100: 31-44 us",
            how: format!(
                "one-page kernel on a CPU-resident page ({:.2} us) minus the same kernel once it is resident ({:.2} us), \
                 the upper median of {COMMANDS_PER_BEAT} faults, one per position of the fault's commands in the \
                 command engine's 64-byte fetch beat (range {:.2}..{:.2} us); the driver served the fault for \
                 {service:.2} us: gathering the batch {gather:.2}, DMA {dma:.2}, host time {host:.2}, the rest {:.2} \
                 (PTEs and commands); the remaining {:.2} us are the record's flight and the replay to the completion, \
                 beyond what the resident kernel pays",
                us(m.faulting),
                us(m.resident),
                us(lo.cost()),
                us(hi.cost()),
                service - gather - dma - host,
                us(m.cost()) - service
            ),
        },
        &mut out,
    );

    // Prefetch: the same amount, hinted.
    let b = s.alloc(bytes).map_err(err)?;
    fill(b, words);
    let ns = timed(&s, || {
        s.gm.hmadvise(s.space, Node::Device(s.id), b as u64, bytes, Hint::Prefetch).map_err(err)?;
        s.npu.flush_page_tables().map_err(err)
    })?;
    push(
        Figure {
            name: "prefetch_efficiency",
            value: gbps(bytes, ns) / copy_h2d,
            unit: "ratio",
            target: ">= 0.95",
            anchor: "CUDA UM H100: 0.84 (prefetch H2D 45-47 GB/s of 55)",
            how: format!(
                "hmadvise(PREFETCH) of {} KiB with its PTE flush, {:.2} GB/s / copy_gbps",
                bytes >> 10,
                gbps(bytes, ns)
            ),
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
    let back = gbps(bytes, ns);
    push(
        Figure {
            name: "cpu_faultback_gbps",
            value: back,
            unit: "GB/s",
            target: "",
            anchor: "CUDA UM H100: 3.6-4.5 GB/s",
            how: format!("the CPU reads one word per page of {} KiB the NPU filled, in device time", bytes >> 10),
        },
        &mut out,
    );
    push(
        Figure {
            name: "cpu_faultback_efficiency",
            value: back / copy_d2h,
            unit: "ratio",
            target: ">= 0.30",
            anchor: "CUDA UM H100: 0.08 (3.6-4.5 of 55 GB/s)",
            how: format!("cpu_faultback_gbps / the D2H copy rate of this run ({copy_d2h:.2} GB/s)"),
        },
        &mut out,
    );
    let d = s.alloc(4096).map_err(err)?;
    s.launch(Kernel::fill(s.asid, d as u64, 1024, 9)).map_err(err)?;
    // SAFETY: word 0 of a 4 KiB managed region; the read faults the page back.
    let ns = timed(&s, || if unsafe { d.read() } == 9 { Ok(()) } else { Err("cpu fault read wrong data".into()) })?;
    push(
        Figure {
            name: "cpu_fault_us",
            value: ns as f64 / 1e3,
            unit: "us",
            target: "",
            anchor: "UVM: CPU fault on GPU-resident data, tens of us",
            how: "one CPU load of one device-resident page until it returns, in device time".into(),
        },
        &mut out,
    );
    drop(s);

    // Oversubscription: a link-bound stream (one word per page) over 2x the working set
    // of device memory, fitting vs 2x oversubscribed.
    let stream = |device_mem: u64| -> Result<(u64, u64), String> {
        let s = session(sys, device_mem, false)?;
        let a = s.alloc(2 * bytes).map_err(err)?;
        fill(a, 2 * words);
        let pages = (2 * bytes / 4096) as u32;
        let ns = timed(&s, || {
            s.launch(Kernel::strided_touch(s.asid, a as u64, 4096, pages, None)).map(|_| ()).map_err(err)
        })?;
        Ok((ns, s.npu.stats().dma_bytes))
    };
    let (fit, fit_bytes) = stream(4 * bytes)?;
    let (over, over_bytes) = stream(bytes)?;
    push(
        Figure {
            name: "oversubscription_cost",
            value: over as f64 / fit as f64 - 1.0,
            unit: "ratio",
            target: "<= 0.15",
            anchor: "UVM: eviction can spin (field failure); no published ratio",
            how: format!(
                "strided touch of {} KiB with device memory 2x vs 0.5x of it: slowdown ({:.2} vs {:.2} ms); {} KiB \
                 moved vs {} KiB",
                (2 * bytes) >> 10,
                fit as f64 / 1e6,
                over as f64 / 1e6,
                over_bytes >> 10,
                fit_bytes >> 10
            ),
        },
        &mut out,
    );

    // Ping-pong: un-hinted vs ACCESSED_BY; thrashing control off vs on.
    let pingpong = |hint: bool, thrash: bool| -> Result<u64, String> {
        let s = session(sys, 64 << 20, thrash)?;
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
    let per_round = |ns: u64| ns as f64 / 16e3;
    push(
        Figure {
            name: "pingpong_hint_speedup",
            value: plain as f64 / hinted as f64,
            unit: "ratio",
            target: ">= 100",
            anchor: "CUDA UM H100: 125x (100-125 ms/iter -> 0.9 ms with hints)",
            how: format!(
                "16 rounds of CPU then NPU writing one word in each of 64 pages; device time without ({:.1} us/round) / with ACCESSED_BY ({:.1} us/round)",
                per_round(plain),
                per_round(hinted)
            ),
        },
        &mut out,
    );
    let adaptive = pingpong(false, true)?;
    push(
        Figure {
            name: "thrash_adaptive_speedup",
            value: plain as f64 / adaptive as f64,
            unit: "ratio",
            target: "",
            anchor: "UVM: throttle, then pin + map remotely after 3 events in 500 us",
            how: format!(
                "the same un-hinted ping-pong, thrashing control off / on ({:.1} us/round)",
                per_round(adaptive)
            ),
        },
        &mut out,
    );
    push(
        Figure {
            name: "thrash_vs_hinted",
            value: adaptive as f64 / hinted as f64,
            unit: "ratio",
            target: "<= 1.5",
            anchor: "CUDA UM H100: 100-125 ms/iter un-hinted vs 0.9 ms hinted",
            how: format!(
                "the un-hinted ping-pong with thrashing control on ({:.1} us/round) / the hinted one ({:.1} us/round)",
                per_round(adaptive),
                per_round(hinted)
            ),
        },
        &mut out,
    );

    // Host software per fault: the manager alone (a software device), per batch size.
    for batch in [1, 4, 16, 256] {
        push(host_cost(batch)?, &mut out);
    }
    Ok(out)
}

/// Wall time of `Gmem::dev_fault` per fault, batches of `BATCH` CPU-resident pages.
fn host_cost(batch: u64) -> Result<Figure, String> {
    let dev = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 4 * batch * 4096, ..Default::default() }));
    let (gm, id, space, asid) = crate::profile_host::rig(Config::default(), dev)?;
    let len = batch * 4096;
    let p = gm.mmap(space, len, MapFlags::PEER_SHARED).map_err(err)? as u64;
    gm.cpu_access(p, len, true).map_err(err)?;
    let faults: Vec<DeviceFault> =
        (0..batch).map(|i| DeviceFault { asid, va: p + i * 4096 + 64, access: Access::Read, tag: i }).collect();
    let mut samples = Vec::new();
    for _ in 0..30 {
        gm.hmadvise(space, Node::Cpu, p, len, Hint::DontNeed).map_err(err)?;
        let t = Instant::now();
        let r = gm.dev_fault(id, &faults);
        samples.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
        if !r.iter().all(|x| x.is_retry()) {
            return Err("a host-cost fault was not resolved".into());
        }
    }
    Ok(Figure {
        name: "host_us_per_fault",
        value: crate::profile_host::median(samples),
        unit: "us",
        target: "<= 1",
        anchor: "UVM: ~50k faults/s (20 us/fault), isolated fault 31-44 us",
        how: format!(
            "batch={batch}: median wall time of Gmem::dev_fault per fault, CPU-resident pages (software device; host wall time, not device time)"
        ),
    })
}
