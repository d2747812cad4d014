//! `gmem profile host`: the host-time model's costs measured on this machine.
//!
//! The co-simulation charges host software time from `npu::HostCosts`, whose defaults
//! were measured on the project's development VM. This command measures the same
//! operations here — the manager on a null device (its own work and its system calls,
//! no device work), pinned to one CPU, and the driver's kernel submission on a
//! transport with no device — fits the model's costs to them and prints them
//! as `--host-cost` flags, with the fit checked against every measurement
//! (docs/performance-model.md, "Your host").

use std::sync::Arc;
use std::time::Instant;

use crate::profile_cosim::Spread;
use gmem_host::nulldev::NullDevice;
use gmem_host::{
    Access, Asid, Config, CpuMode, DeviceFault, DeviceId, GmMmu, Gmem, Hint, Hooks, MapFlags, Node, SpaceId,
    ThrashConfig,
};
use npu::HostCosts;

/// `n` and the noun, singular for 1.
fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}
use serde::Serialize;

/// One cost of the model, as fitted here.
#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    /// Its name for `--host-cost` (one of [`HostCosts::NAMES`]).
    pub name: &'static str,
    /// Fitted value, ns.
    pub value: u64,
    /// Always `ns`.
    pub unit: &'static str,
    /// The model's default.
    pub default: u64,
    /// Where it comes from.
    pub how: &'static str,
}

/// One measurement next to what the fitted model charges for it.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Always `check`.
    pub name: &'static str,
    /// The operation measured.
    pub what: String,
    /// Median wall time, µs.
    pub measured_us: f64,
    /// The fitted model's charge for it, µs.
    pub model_us: f64,
}

/// What `run` found.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// Every cost of the model, in [`HostCosts::NAMES`] order.
    pub costs: Vec<Cost>,
    /// Every measurement with the fitted model's charge.
    pub checks: Vec<Check>,
    /// The CPU the measurements ran on (None: pinning refused, ran unpinned).
    pub cpu: Option<usize>,
}

impl Calibration {
    /// The costs as `gmem` flags.
    pub fn flags(&self) -> String {
        let flags: Vec<String> = self.costs.iter().map(|c| format!("--host-cost {}={}", c.name, c.value)).collect();
        flags.join(" ")
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The manager with `cfg` (userfaultfd; thrashing detection off: the measurements
/// bounce pages on purpose) and `dev`, attached to a new space.
pub(crate) fn rig(cfg: Config, dev: Arc<dyn GmMmu>) -> Result<(Gmem, DeviceId, SpaceId, Asid), String> {
    let cfg = Config { cpu: CpuMode::Userfaultfd, thrash: ThrashConfig { enabled: false, ..cfg.thrash }, ..cfg };
    let gm = Gmem::new(cfg).map_err(err)?;
    let id = gm.register_device(dev).map_err(err)?;
    let space = gm.create_space();
    let asid = gm.attach(space, id).map_err(err)?;
    Ok((gm, id, space, asid))
}

/// The median of `v` (NaN if empty).
pub(crate) fn median(v: Vec<f64>) -> f64 {
    Spread::of(v).map_or(f64::NAN, |s| s.median)
}

/// The median of `samples` runs of `f`, each returning the time it measured.
fn median_of(samples: usize, mut f: impl FnMut() -> Result<f64, String>) -> Result<f64, String> {
    Ok(median((0..samples).map(|_| f()).collect::<Result<Vec<f64>, String>>()?))
}

/// Least-squares line through `(x, y)`: (intercept, slope).
fn line(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|&(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|&(x, y)| (x - mx) * (y - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - slope * mx, slope)
}

/// Pins this thread (and the threads it starts later: the manager's userfaultfd
/// handler) to the CPU it runs on. Returns that CPU and the mask to restore.
fn pin() -> Option<(usize, libc::cpu_set_t)> {
    // SAFETY: sched_getcpu takes no arguments; cpu_set_t is plain data, zeroed is empty,
    // and the affinity calls get its exact size.
    unsafe {
        let cpu = usize::try_from(libc::sched_getcpu()).ok()?;
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) != 0 {
            return None;
        }
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        (libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) == 0).then_some((cpu, old))
    }
}

fn unpin(old: &libc::cpu_set_t) {
    // SAFETY: `old` is a mask sched_getaffinity filled in.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), old) };
}

/// Measures and fits the model's costs; `samples` per measurement (the median counts).
pub fn run(samples: usize) -> Result<Calibration, String> {
    let pinned = pin();
    let measured = measure(samples.max(3));
    if let Some((_, old)) = &pinned {
        unpin(old);
    }
    Ok(fit(measured?, pinned.map(|(cpu, _)| cpu)))
}

/// The medians, in ns.
struct Measured {
    /// `ACCESSED_BY` over 1024 pages.
    hint: f64,
    /// `PREFETCH` of n CPU-resident pages: (n, ns).
    prefetch: Vec<(u64, f64)>,
    /// `DONTNEED` to the CPU of n CPU-resident pages (a walk that moves nothing): (n, ns).
    walk: Vec<(u64, f64)>,
    /// `dev_fault` with n faults on resident pages (no migration): (n, ns).
    resident: Vec<(u64, f64)>,
    /// `dev_fault` with n faults on CPU-resident pages: (n, pages moved, ns).
    faults: Vec<(u64, u64, f64)>,
    /// A CPU fault bringing back (1 + ahead) pages: (pages, ns per fault).
    cpu_faults: Vec<(u64, f64)>,
    /// `PREFETCH` of [`PARTED_PAGES`] CPU-resident pages in one round and pipelined in
    /// parts, alternated: (parts, one round ns, in parts ns).
    parted: (u64, f64, f64),
    /// The driver's part of a kernel launch: one kernel written into the ring and the
    /// doorbell, on a transport with no device.
    launch: f64,
}

fn measure(samples: usize) -> Result<Measured, String> {
    const PAGES: u64 = 1024;
    let (gm, id, space, asid) = rig(Config::default(), Arc::new(NullDevice::new(4 * PAGES)))?;
    let len = PAGES * 4096;
    let va = gm.mmap(space, len, MapFlags::PEER_SHARED).map_err(err)? as u64;
    gm.cpu_access(va, len, true).map_err(err)?;
    let time = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_nanos() as f64)
    };
    let to_cpu = |n: u64| gm.hmadvise(space, Node::Cpu, va, n * 4096, Hint::DontNeed).map(|_| ()).map_err(err);

    // On a region of its own: the attribute would change how the others migrate.
    let hinted = gm.mmap(space, len, MapFlags::PEER_SHARED).map_err(err)? as u64;
    let hint = median_of(samples, || {
        time(&mut || gm.hmadvise(space, Node::Device(id), hinted, len, Hint::AccessedBy).map(|_| ()).map_err(err))
    })?;
    let mut prefetch = Vec::new();
    for n in [1u64, 16, 256, 1024] {
        let t = median_of(samples, || {
            to_cpu(n)?;
            time(&mut || {
                let r = gm.hmadvise(space, Node::Device(id), va, n * 4096, Hint::Prefetch).map_err(err)?;
                if r.pages_moved == n { Ok(()) } else { Err(format!("PREFETCH of {n} pages moved {}", r.pages_moved)) }
            })
        })?;
        prefetch.push((n, t));
    }
    // A walk that moves nothing, over a region of its own (read: zero pages, no memory).
    let walked = 16 * PAGES;
    let wide = gm.mmap(space, walked * 4096, MapFlags::PEER_SHARED).map_err(err)? as u64;
    gm.cpu_access(wide, walked * 4096, false).map_err(err)?;
    let mut walk = Vec::new();
    for n in [PAGES, walked] {
        let t = median_of(samples, || {
            time(&mut || gm.hmadvise(space, Node::Cpu, wide, n * 4096, Hint::DontNeed).map(|_| ()).map_err(err))
        })?;
        walk.push((n, t));
    }
    let faults_on = |n: u64| -> Vec<DeviceFault> {
        (0..n).map(|i| DeviceFault { asid, va: va + i * 4096 + 64, access: Access::Read, tag: i }).collect()
    };
    let mut faults = Vec::new();
    let mut resident = Vec::new();
    for n in [1u64, 4, 16] {
        let f = faults_on(n);
        let (mut cold, mut warm, mut moved) = (Vec::new(), Vec::new(), 0);
        for _ in 0..samples {
            to_cpu(n)?;
            let before = gm.counters().pages_h2d;
            cold.push(time(&mut || answered(&gm.dev_fault(id, &f)))?);
            moved = gm.counters().pages_h2d - before;
            warm.push(time(&mut || answered(&gm.dev_fault(id, &f)))?);
        }
        faults.push((n, moved, median(cold)));
        resident.push((n, median(warm)));
    }
    drop(gm);

    let mut cpu_faults = Vec::new();
    for ahead in [15usize, 0] {
        let cfg = Config { cpu_fault_ahead: ahead, ..Config::default() };
        let (gm, id, space, _) = rig(cfg, Arc::new(NullDevice::new(4 * 256)))?;
        let len = 256 * 4096;
        let p = gm.mmap(space, len, MapFlags::PEER_SHARED).map_err(err)?;
        let per_fault = median_of(samples.div_ceil(8), || {
            gm.hmadvise(space, Node::Device(id), p as u64, len, Hint::Prefetch).map_err(err)?;
            let before = gm.counters().cpu_faults;
            let ns = time(&mut || {
                for i in 0..256 {
                    // SAFETY: byte 0 of page `i` of the live 1 MiB region `p`; the read
                    // blocks in userfaultfd until the manager brought the page back.
                    std::hint::black_box(unsafe { std::ptr::read_volatile(p.add(i * 4096)) });
                }
                Ok(())
            })?;
            match gm.counters().cpu_faults - before {
                0 => Err("the CPU reads of device-resident pages took no CPU fault".into()),
                n => Ok(ns / n as f64),
            }
        })?;
        cpu_faults.push((1 + ahead as u64, per_fault));
    }
    let parted = parted(samples)?;
    let launch = launch(samples)?;
    Ok(Measured { hint, prefetch, walk, resident, faults, cpu_faults, parted, launch })
}

/// Pages of the pipelined `PREFETCH` [`parted`] times.
const PARTED_PAGES: u64 = 256;

/// `hmadvise(PREFETCH)` of [`PARTED_PAGES`] CPU-resident pages on a device declaring
/// `ASYNC_COPY`, in one round and pipelined in parts of 64 pages (the default
/// `Config::part_pages`), alternated (ABAB, on two managers) so that the two medians
/// see the same machine: (parts, one round ns, in parts ns).
fn parted(samples: usize) -> Result<(u64, f64, f64), String> {
    let open = |part_pages: usize| -> Result<_, String> {
        let cfg = Config { part_pages, ..Config::default() };
        let dev = NullDevice { hooks: Hooks::ASYNC_COPY, ..NullDevice::new(4 * PARTED_PAGES) };
        let (gm, id, space, _) = rig(cfg, Arc::new(dev))?;
        let len = PARTED_PAGES * 4096;
        let va = gm.mmap(space, len, MapFlags::PEER_SHARED).map_err(err)? as u64;
        gm.cpu_access(va, len, true).map_err(err)?;
        Ok((gm, id, space, va))
    };
    let rigs = [open(PARTED_PAGES as usize)?, open(64)?];
    let mut times = [Vec::new(), Vec::new()];
    let mut parts = 0;
    for _ in 0..samples {
        for (k, (gm, id, space, va)) in rigs.iter().enumerate() {
            let len = PARTED_PAGES * 4096;
            gm.hmadvise(*space, Node::Cpu, *va, len, Hint::DontNeed).map_err(err)?;
            let before = gm.counters().pipelined_parts;
            let t = Instant::now();
            let moved = gm.hmadvise(*space, Node::Device(*id), *va, len, Hint::Prefetch).map_err(err)?.pages_moved;
            times[k].push(t.elapsed().as_nanos() as f64);
            let cut = gm.counters().pipelined_parts - before;
            if moved != PARTED_PAGES || (k == 1) != (cut > 1) {
                return Err(format!("a PREFETCH of {PARTED_PAGES} pages moved {moved} in {} parts", cut.max(1)));
            }
            parts = parts.max(cut);
        }
    }
    let [one, cut] = times;
    Ok((parts, median(one), median(cut)))
}

/// The host part of `NpuDevice::launch`, ns: its lock taken and released around
/// `KernelQueue::submit` of one kernel on `FakeIo` (no device: the doorbell is a store
/// into a map); the PTE flush before it has nothing queued here, and the wait for the
/// completion is device time. Timed 8 at a time; the ring is emptied between rounds (a
/// 16-entry ring takes 15).
fn launch(samples: usize) -> Result<f64, String> {
    use npu::kernel::{Kernel, KernelQueue};
    const PER_ROUND: u32 = 8;
    let mut io = npu::fake_io::FakeIo::new();
    let mut kq = KernelQueue::init(&mut io, 4).map_err(err)?;
    let k = Kernel::fill(1, 0x1000_0000, 1024, 7);
    let lock = std::sync::Mutex::new(());
    median_of(samples, || {
        kq.after_soft_reset();
        io.clear_log();
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            let held = lock.lock().map_err(err)?;
            kq.submit(&mut io, &[k]).map_err(err)?;
            drop(held);
        }
        Ok(t.elapsed().as_nanos() as f64 / f64::from(PER_ROUND))
    })
}

fn answered(r: &[gmem_host::FaultResolution]) -> Result<(), String> {
    if r.iter().all(|x| x.is_retry()) { Ok(()) } else { Err("a fault on the null device was not resolved".into()) }
}

/// The model's costs from the medians (ns, each at least 0 and at most 1 s):
/// - `hint`: `ACCESSED_BY` (an attribute change only);
/// - `page_in`: the slope of `PREFETCH` from 16 to 1024 pages;
/// - `batch`, `per_fault`: the line through `dev_fault` on resident pages;
/// - `migration`: what `dev_fault` on CPU-resident pages costs beyond that and its
///   pages (`page_in` each), averaged over 1, 4 and 16 faults;
/// - `page_out`, `cpu_fault`: from CPU faults bringing back 16 and 1 pages (each
///   also pays a migration round).
fn fit(m: Measured, cpu: Option<usize>) -> Calibration {
    let hint = m.hint;
    let hint_page = line(&m.walk.iter().map(|&(n, t)| (n as f64, t)).collect::<Vec<_>>()).1.max(0.0);
    // A PREFETCH walks the pages it moves, too.
    let large: Vec<(f64, f64)> = m.prefetch.iter().filter(|p| p.0 >= 16).map(|&(n, t)| (n as f64, t)).collect();
    let page_in = (line(&large).1 - hint_page).max(0.0);
    let (batch, per_fault) = line(&m.resident.iter().map(|&(n, t)| (n as f64, t)).collect::<Vec<_>>());
    let (batch, per_fault) = (batch.max(0.0), per_fault.max(0.0));
    let beyond: Vec<f64> =
        m.faults.iter().map(|&(n, moved, t)| t - batch - per_fault * n as f64 - page_in * moved as f64).collect();
    let migration = (beyond.iter().sum::<f64>() / beyond.len() as f64).max(0.0);
    let (many, one) = (m.cpu_faults[0], m.cpu_faults[1]);
    let page_out = ((many.1 - one.1) / (many.0 - one.0) as f64).max(0.0);
    let cpu_fault = (one.1 - migration - page_out).max(0.0);
    // The same PREFETCH in one round and in parts: what each part beyond the first adds.
    let (parts, single, parted) = m.parted;
    let part = ((parted - single) / parts.saturating_sub(1).max(1) as f64).max(0.0);

    let defaults = HostCosts::default();
    let ns = |v: f64| (v.round() as u64).min(HostCosts::MAX_NS);
    let fitted = [
        ("batch", ns(batch), defaults.fault_batch_ns, "dev_fault on resident pages (1, 4, 16 faults): intercept"),
        ("per_fault", ns(per_fault), defaults.per_fault_ns, "dev_fault on resident pages (1, 4, 16 faults): slope"),
        ("migration", ns(migration), defaults.migration_ns, "dev_fault on CPU-resident pages, beyond batch and pages"),
        ("part", ns(part), defaults.part_ns, "PREFETCH of 256 pages in 4 pipelined parts vs in one: per extra part"),
        ("page_in", ns(page_in), defaults.page_in_ns, "hmadvise(PREFETCH) of 16 to 1024 pages: slope, less hint_page"),
        ("page_out", ns(page_out), defaults.page_out_ns, "CPU faults bringing back 16 vs 1 page: difference / 15"),
        ("cpu_fault", ns(cpu_fault), defaults.cpu_fault_ns, "a CPU fault bringing back 1 page, beyond its round"),
        ("hint", ns(hint), defaults.hint_ns, "hmadvise(ACCESSED_BY) of 1024 pages"),
        (
            "hint_page",
            ns(hint_page),
            defaults.hint_page_ns,
            "hmadvise(DONTNEED) of 1024 vs 16384 CPU-resident pages: slope",
        ),
        ("launch", ns(m.launch), defaults.launch_ns, "a kernel submitted under the driver's lock, no device behind"),
    ];
    let costs: Vec<Cost> =
        fitted.into_iter().map(|(name, value, default, how)| Cost { name, value, unit: "ns", default, how }).collect();

    let c = |name: &str| costs.iter().find(|c| c.name == name).map_or(0.0, |c| c.value as f64);
    let us = |ns: f64| ns / 1e3;
    let mut checks = Vec::new();
    let mut check = |what: String, measured: f64, model: f64| {
        checks.push(Check { name: "check", what, measured_us: us(measured), model_us: us(model) });
    };
    for &(n, t) in &m.prefetch {
        let model = c("hint") + c("migration") + (c("hint_page") + c("page_in")) * n as f64;
        check(format!("hmadvise(PREFETCH) of {}", count(n, "page")), t, model);
    }
    for &(n, t) in &m.walk {
        let model = c("hint") + c("hint_page") * n as f64;
        check(format!("hmadvise(DONTNEED) of {} left in place", count(n, "page")), t, model);
    }
    for &(n, t) in &m.resident {
        check(format!("dev_fault, {} on resident pages", count(n, "fault")), t, c("batch") + c("per_fault") * n as f64);
    }
    for &(n, moved, t) in &m.faults {
        let model = c("batch") + c("per_fault") * n as f64 + c("migration") + c("page_in") * moved as f64;
        check(format!("dev_fault, {} moving {}", count(n, "fault"), count(moved, "page")), t, model);
    }
    for &(pages, t) in &m.cpu_faults {
        check(
            format!("CPU fault bringing back {}", count(pages, "page")),
            t,
            c("cpu_fault") + c("migration") + c("page_out") * pages as f64,
        );
    }
    let model = c("hint")
        + c("migration")
        + c("part") * parts.saturating_sub(1) as f64
        + (c("hint_page") + c("page_in")) * PARTED_PAGES as f64;
    check(format!("hmadvise(PREFETCH) of {PARTED_PAGES} pages in {parts} pipelined parts"), parted, model);
    Calibration { costs, checks, cpu }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_of_exact_model_times_returns_the_model() {
        // Times made by the model itself with known costs: the fit gives them back.
        let (batch, per_fault, migration, page_in, page_out, cpu_fault, hint, hint_page) =
            (250.0, 90.0, 2800.0, 400.0, 1000.0, 3300.0, 180.0, 15.0);
        let part = 1200.0;
        let m = Measured {
            hint,
            prefetch: [1u64, 16, 256, 1024].map(|n| (n, hint + migration + (hint_page + page_in) * n as f64)).to_vec(),
            walk: [1024u64, 16384].map(|n| (n, hint + hint_page * n as f64)).to_vec(),
            resident: [1u64, 4, 16].map(|n| (n, batch + per_fault * n as f64)).to_vec(),
            faults: [1u64, 4, 16]
                .map(|n| (n, 2 * n, batch + per_fault * n as f64 + migration + page_in * (2 * n) as f64))
                .to_vec(),
            cpu_faults: [16u64, 1].map(|p| (p, cpu_fault + migration + page_out * p as f64)).to_vec(),
            parted: (
                4,
                hint + migration + (hint_page + page_in) * PARTED_PAGES as f64,
                hint + migration + 3.0 * part + (hint_page + page_in) * PARTED_PAGES as f64,
            ),
            launch: 150.0,
        };
        let cal = fit(m, Some(0));
        let got: Vec<(&str, u64)> = cal.costs.iter().map(|c| (c.name, c.value)).collect();
        assert_eq!(
            got,
            [
                ("batch", 250),
                ("per_fault", 90),
                ("migration", 2800),
                ("part", 1200),
                ("page_in", 400),
                ("page_out", 1000),
                ("cpu_fault", 3300),
                ("hint", 180),
                ("hint_page", 15),
                ("launch", 150)
            ]
        );
        assert!(cal.checks.iter().all(|c| (c.measured_us - c.model_us).abs() < 1e-6), "{:?}", cal.checks);
        assert!(cal.flags().starts_with("--host-cost batch=250 --host-cost per_fault=90 "), "{}", cal.flags());
    }

    #[test]
    fn a_fit_never_goes_negative() {
        // Noise can make a difference negative: the cost is 0, not a wrapped integer.
        let m = Measured {
            hint: 100.0,
            prefetch: [1u64, 16, 256, 1024].map(|n| (n, 5000.0 - n as f64)).to_vec(),
            walk: vec![(1024, 500.0), (16384, 400.0)],
            resident: [1u64, 4, 16].map(|n| (n, 1000.0 - 10.0 * n as f64)).to_vec(),
            faults: [1u64, 4, 16].map(|n| (n, n, 10.0)).to_vec(),
            cpu_faults: vec![(16, 100.0), (1, 200.0)],
            parted: (4, 20.0, 10.0),
            launch: 1e12,
        };
        let cal = fit(m, None);
        assert!(cal.costs.iter().all(|c| c.value <= HostCosts::MAX_NS), "{:?}", cal.costs);
        assert_eq!(cal.costs.last().unwrap().value, HostCosts::MAX_NS, "clamped to 1 s");
        for name in ["page_in", "per_fault", "migration", "part", "page_out", "hint_page"] {
            assert_eq!(cal.costs.iter().find(|c| c.name == name).unwrap().value, 0, "{name}");
        }
    }
}
