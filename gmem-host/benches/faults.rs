//! Host software cost of device faults, and metadata size.
//!
//! * `fault_batch_256/*`: wall time of one `Gmem::dev_fault` call with 256 faults on
//!   256 distinct pages, on the in-crate software device (its "DMA" is a memcpy, so
//!   the figure is manager + userfaultfd/madvise system calls + 1 MiB of memcpy).
//!   Throughput is reported per fault (element). Thrashing detection is off: the bench
//!   bounces the same pages on purpose.
//! * `fault_batch_sizes/{1,4,16,256}`: the same copy-in on the null device at the NPU's
//!   real batch sizes (1–16 faults) and UVM's (256): the calibration of the
//!   co-simulation's modelled host time (`npu::HostCosts`, docs/performance-model.md).
//! * `hint_sizes/{prefetch,accessed_by}/{1,16,256,1024}`: one `Gmem::hmadvise` call on
//!   the null device over 1 to 1024 pages: PREFETCH of CPU-resident pages (each moves
//!   host -> device), ACCESSED_BY (an attribute change only); the calibration of the
//!   modelled host time of hints and of each page a migration moves
//!   (`npu::HostCosts::hint_ns`, `page_in_ns`; docs/performance-model.md).
//! * `hint_sizes/prefetch_parts/256`: the 256-page PREFETCH on a null device declaring
//!   `ASYNC_COPY`, pipelined in 4 parts of 64 pages: against `prefetch/256` (one round,
//!   no `ASYNC_COPY`), a rough measure of `npu::HostCosts::part_ns` (`gmem profile host`
//!   measures it on a matched pair).
//! * `cpu_fault_back_256/{uffd,uffd_nulldev,uffd_nulldev_ahead0}/read`: 256 CPU reads of
//!   device-resident pages, served by the userfaultfd handler thread (D2H copy to
//!   staging + UFFDIO_COPY), on the software device or the null one; a fault brings
//!   back 16 pages (`Config::cpu_fault_ahead` 15) or, with `ahead0`, one: the
//!   calibration of `npu::HostCosts::cpu_fault_ns` and `page_out_ns`.
//! * `reserve_1tib`: mmap + munmap of a never-touched 1 TiB PEER_SHARED region.
//! * Printed (not timed): logical page table bytes per tracked page, and the manager's
//!   metadata for a 1 TiB reservation.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gmem_host::nulldev::NullDevice;
use gmem_host::softdev::{SoftConfig, SoftDevice};
use gmem_host::{Access, Config, CpuMode, DeviceFault, GmMmu, Gmem, Hint, Hooks, MapFlags, Node, ThrashConfig};

const BATCH: u64 = 256;

type Rig = (Gmem, gmem_host::DeviceId, gmem_host::SpaceId, gmem_host::Asid);

fn manager(cpu: CpuMode, mem_pages: u64, va_bits: u8) -> Rig {
    let dev = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: mem_pages * 4096, va_bits, ..Default::default() }));
    manager_with(cpu, dev)
}

fn manager_with(cpu: CpuMode, dev: Arc<dyn GmMmu>) -> Rig {
    manager_cfg(Config { cpu, ..Default::default() }, dev)
}

/// A manager with `cfg`, thrashing detection off, and `dev` registered and attached.
fn manager_cfg(cfg: Config, dev: Arc<dyn GmMmu>) -> Rig {
    let cfg = Config { thrash: ThrashConfig { enabled: false, ..Default::default() }, ..cfg };
    let gm = Gmem::new(cfg).expect("manager");
    let id = gm.register_device(dev).expect("register");
    let space = gm.create_space();
    let asid = gm.attach(space, id).expect("attach");
    (gm, id, space, asid)
}

fn faults(asid: gmem_host::Asid, va: u64, access: Access) -> Vec<DeviceFault> {
    (0..BATCH).map(|i| DeviceFault { asid, va: va + i * 4096 + 64, access, tag: i }).collect()
}

/// Wall time of `iters` calls of `Gmem::dev_fault(faults)` on CPU-resident pages (each
/// copies its page host -> device); the pages go back to the CPU between calls, untimed.
fn copy_in(
    gm: &Gmem,
    id: gmem_host::DeviceId,
    space: gmem_host::SpaceId,
    va: u64,
    len: u64,
    faults: &[DeviceFault],
    iters: u64,
) -> Duration {
    let mut t = Duration::ZERO;
    for _ in 0..iters {
        gm.hmadvise(space, Node::Cpu, va, len, Hint::DontNeed).expect("reset");
        let s = Instant::now();
        let r = gm.dev_fault(id, faults);
        t += s.elapsed();
        assert!(r.iter().all(|x| x.is_retry()));
    }
    t
}

fn bench_faults(c: &mut Criterion) {
    let mut g = c.benchmark_group("fault_batch_256");
    g.throughput(Throughput::Elements(BATCH));
    g.measurement_time(Duration::from_secs(3));
    for (name, cpu, null) in [
        ("uffd", CpuMode::Userfaultfd, false),
        ("manual", CpuMode::Manual, false),
        ("uffd_nulldev", CpuMode::Userfaultfd, true),
    ] {
        let (gm, id, space, asid) =
            if null { manager_with(cpu, Arc::new(NullDevice::new(4 * BATCH))) } else { manager(cpu, 4 * BATCH, 39) };
        let len = BATCH * 4096;
        let p = gm.mmap(space, len, MapFlags::PEER_SHARED).expect("mmap");
        let va = p as u64;
        gm.cpu_access(va, len, true).expect("populate");
        // CPU-resident pages: each fault copies a page host -> device.
        let f = faults(asid, va, Access::Read);
        g.bench_function(format!("{name}/copy_in"), |b| {
            b.iter_custom(|iters| copy_in(&gm, id, space, va, len, &f, iters))
        });
        // First touch: each fault zero-fills a device frame.
        g.bench_function(format!("{name}/first_touch"), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    let q = gm.mmap(space, len, MapFlags::PEER_SHARED).expect("mmap");
                    let f = faults(asid, q as u64, Access::Write);
                    let s = Instant::now();
                    let r = gm.dev_fault(id, &f);
                    t += s.elapsed();
                    assert!(r.iter().all(|x| x.is_retry()));
                    gm.munmap(space, q, len).expect("munmap");
                }
                t
            })
        });
        // Already resolved (spurious/duplicate replays): the bookkeeping floor.
        gm.dev_fault(id, &f);
        g.bench_function(format!("{name}/already_mapped"), |b| b.iter(|| gm.dev_fault(id, &f)));
    }
    g.finish();
}

fn bench_batch_sizes(c: &mut Criterion) {
    let mut g = c.benchmark_group("fault_batch_sizes");
    g.measurement_time(Duration::from_secs(3));
    let (gm, id, space, asid) = manager_with(CpuMode::Userfaultfd, Arc::new(NullDevice::new(4 * BATCH)));
    let len = BATCH * 4096;
    let p = gm.mmap(space, len, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    gm.cpu_access(va, len, true).expect("populate");
    for n in [1usize, 4, 16, 256] {
        let f: Vec<DeviceFault> = faults(asid, va, Access::Read).into_iter().take(n).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| b.iter_custom(|iters| copy_in(&gm, id, space, va, len, &f, iters)));
    }
    g.finish();
}

fn bench_hint_sizes(c: &mut Criterion) {
    const PAGES: [u64; 4] = [1, 16, 256, 1024];
    let mut g = c.benchmark_group("hint_sizes");
    g.measurement_time(Duration::from_secs(3));
    let (gm, id, space, _asid) = manager_with(CpuMode::Userfaultfd, Arc::new(NullDevice::new(4 * 1024)));
    let most = 1024 * 4096;
    let p = gm.mmap(space, most, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    gm.cpu_access(va, most, true).expect("populate");
    for n in PAGES {
        let len = n * 4096;
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("prefetch/{n}"), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    gm.hmadvise(space, Node::Cpu, va, len, Hint::DontNeed).expect("reset");
                    let s = Instant::now();
                    let r = gm.hmadvise(space, Node::Device(id), va, len, Hint::Prefetch).expect("prefetch");
                    t += s.elapsed();
                    assert_eq!(r.pages_moved, n, "every page moves");
                }
                t
            })
        });
        g.bench_function(format!("accessed_by/{n}"), |b| {
            b.iter(|| gm.hmadvise(space, Node::Device(id), va, len, Hint::AccessedBy).expect("accessed_by"))
        });
    }
    // The 256-page PREFETCH pipelined in 4 parts of 64 pages (a device declaring
    // ASYNC_COPY): against prefetch/256, what each part beyond the first costs.
    let cfg = Config { cpu: CpuMode::Userfaultfd, part_pages: 64, ..Default::default() };
    let dev = NullDevice { hooks: Hooks::ASYNC_COPY, ..NullDevice::new(4 * 1024) };
    let (gm, id, space, _asid) = manager_cfg(cfg, Arc::new(dev));
    let len = 256 * 4096;
    let va = gm.mmap(space, len, MapFlags::PEER_SHARED).expect("mmap") as u64;
    gm.cpu_access(va, len, true).expect("populate");
    g.throughput(Throughput::Elements(256));
    g.bench_function("prefetch_parts/256", |b| {
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                gm.hmadvise(space, Node::Cpu, va, len, Hint::DontNeed).expect("reset");
                let parts = gm.counters().pipelined_parts;
                let s = Instant::now();
                let r = gm.hmadvise(space, Node::Device(id), va, len, Hint::Prefetch).expect("prefetch");
                t += s.elapsed();
                assert_eq!((r.pages_moved, gm.counters().pipelined_parts - parts), (256, 4), "in 4 parts");
            }
            t
        })
    });
    g.finish();
}

fn bench_cpu_fault_back(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_fault_back_256");
    g.throughput(Throughput::Elements(BATCH));
    g.measurement_time(Duration::from_secs(3));
    let soft: Arc<dyn GmMmu> =
        Arc::new(SoftDevice::new(SoftConfig { mem_bytes: 4 * BATCH * 4096, va_bits: 39, ..Default::default() }));
    let null = || Arc::new(NullDevice::new(4 * BATCH)) as Arc<dyn GmMmu>;
    let ahead = Config::default().cpu_fault_ahead as u64;
    for (name, dev, ahead) in
        [("uffd", soft, ahead), ("uffd_nulldev", null(), ahead), ("uffd_nulldev_ahead0", null(), 0)]
    {
        let cfg = Config { cpu: CpuMode::Userfaultfd, cpu_fault_ahead: ahead as usize, ..Default::default() };
        let (gm, id, space, _asid) = manager_cfg(cfg, dev);
        let len = BATCH * 4096;
        let p = gm.mmap(space, len, MapFlags::PEER_SHARED).expect("mmap");
        let va = p as u64;
        // Each iteration: the device holds all 256 pages; the CPU reads one byte of each,
        // every read blocking in userfaultfd until the handler brought the page back (with
        // the `ahead` pages after it, Config::cpu_fault_ahead).
        g.bench_function(format!("{name}/read"), |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                for _ in 0..iters {
                    gm.hmadvise(space, Node::Device(id), va, len, Hint::Prefetch).expect("to device");
                    let faults = gm.counters().cpu_faults;
                    let s = Instant::now();
                    let mut sum = 0u64;
                    for i in 0..BATCH as usize {
                        // SAFETY: inside the live region; the read faults through userfaultfd.
                        sum += u64::from(unsafe { std::ptr::read_volatile(p.add(i * 4096)) });
                    }
                    t += s.elapsed();
                    criterion::black_box(sum);
                    assert_eq!(gm.counters().cpu_faults - faults, BATCH / (ahead + 1), "pages back per CPU fault");
                }
                t
            })
        });
    }
    g.finish();
}

fn bench_reserve(c: &mut Criterion) {
    let (gm, _id, space, _asid) = manager(CpuMode::Userfaultfd, 1024, 47);
    c.bench_function("reserve_1tib", |b| {
        b.iter(|| {
            let p = gm.mmap(space, 1 << 40, MapFlags::PEER_SHARED).expect("mmap");
            gm.munmap(space, p, 1 << 40).expect("munmap");
        })
    });
}

fn report_sizes() {
    let pages = 16384u64; // 64 MiB touched
    let (gm, id, space, asid) = manager(CpuMode::Manual, pages, 39);
    let p = gm.mmap(space, pages * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let before = gm.metadata_bytes(space).expect("space");
    for chunk in 0..pages / BATCH {
        let f = faults(asid, p as u64 + chunk * BATCH * 4096, Access::Write);
        gm.dev_fault(id, &f);
    }
    let after = gm.metadata_bytes(space).expect("space");
    println!(
        "logical page table: {:.2} bytes per tracked page ({} pages, {} bytes)",
        (after - before) as f64 / pages as f64,
        pages,
        after - before
    );
    let (gm, _id, space, _asid) = manager(CpuMode::Userfaultfd, 1024, 47);
    let base = gm.metadata_bytes(space).expect("space");
    let p = gm.mmap(space, 1 << 40, MapFlags::PEER_SHARED).expect("mmap");
    println!("1 TiB reservation: {} bytes of manager metadata", gm.metadata_bytes(space).expect("space") - base);
    gm.munmap(space, p, 1 << 40).expect("munmap");
}

fn sizes(_c: &mut Criterion) {
    report_sizes();
}

criterion_group!(
    benches,
    sizes,
    bench_faults,
    bench_batch_sizes,
    bench_hint_sizes,
    bench_cpu_fault_back,
    bench_reserve
);
criterion_main!(benches);
