//! Model-based property test: random sequences of CPU reads/writes (through
//! userfaultfd), device reads/writes and raw fault batches, hints, evictions and
//! munmap/mmap, against a reference model of data and attributes. After every step:
//! data read equals data last written, each page has exactly one writable owner, no
//! device mapping exists where the model says none, no stale TLB entry, and device
//! memory accounting balances.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use gmem_host::softdev::SoftError;
use gmem_host::softdev::{SoftConfig, SoftDevice};
use gmem_host::{
    Access, Asid, Config, DeviceFault, DeviceId, FaultError, Gmem, Hint, MapFlags, MemAddr, Node, Prot, Residency,
    SpaceId,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const REGIONS: usize = 2;
const PAGES: u64 = 12;
const DEV_PAGES: u64 = 16;

#[derive(Debug, Clone)]
enum Op {
    CpuRead { r: usize, pg: u64, off: u16 },
    CpuWrite { r: usize, pg: u64, off: u16, val: u8 },
    DevRead { d: usize, r: usize, pg: u64, off: u16 },
    DevWrite { d: usize, r: usize, pg: u64, off: u16, val: u8 },
    Batch { d: usize, r: usize, pages: Vec<(u64, bool)> },
    Advise { d: usize, r: usize, pg: u64, n: u64, hint: u8 },
    Evict { d: usize, n: u8 },
    Remap { r: usize },
    Maintain,
    Protect { d: usize, r: usize, pg: u64, n: u64, none: bool },
    Hole { r: usize, pg: u64 },
    Shrink { r: usize, keep: u64 },
    Move { r: usize },
}

fn off() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), Just(1), Just(4095), 0..4096u16]
}

/// Device 0 most of the time, device 1 sometimes.
fn dev() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 1 => Just(1usize)]
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REGIONS;
    let pg = 0..PAGES;
    prop_oneof![
        3 => (r.clone(), pg.clone(), off()).prop_map(|(r, pg, off)| Op::CpuRead { r, pg, off }),
        3 => (r.clone(), pg.clone(), off(), any::<u8>()).prop_map(|(r, pg, off, val)| Op::CpuWrite { r, pg, off, val }),
        3 => (dev(), r.clone(), pg.clone(), off()).prop_map(|(d, r, pg, off)| Op::DevRead { d, r, pg, off }),
        3 => (dev(), r.clone(), pg.clone(), off(), any::<u8>())
            .prop_map(|(d, r, pg, off, val)| Op::DevWrite { d, r, pg, off, val }),
        1 => (dev(), r.clone(), prop::collection::vec((pg.clone(), any::<bool>()), 1..24))
            .prop_map(|(d, r, pages)| Op::Batch { d, r, pages }),
        2 => (dev(), r.clone(), pg.clone(), 1..5u64, 0..9u8).prop_map(|(d, r, pg, n, hint)| Op::Advise { d, r, pg, n, hint }),
        1 => (dev(), 1..8u8).prop_map(|(d, n)| Op::Evict { d, n }),
        1 => r.clone().prop_map(|r| Op::Remap { r }),
        1 => Just(Op::Maintain),
        1 => (dev(), r.clone(), pg.clone(), 1..4u64, any::<bool>())
            .prop_map(|(d, r, pg, n, none)| Op::Protect { d, r, pg, n, none }),
        1 => (r.clone(), 1..PAGES - 1).prop_map(|(r, pg)| Op::Hole { r, pg }),
        1 => (r.clone(), 1..PAGES).prop_map(|(r, keep)| Op::Shrink { r, keep }),
        1 => r.prop_map(|r| Op::Move { r }),
    ]
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct ModelAttrs {
    read_mostly: bool,
    /// Bit per device.
    accessed_by: u32,
    preferred_cpu: bool,
}

struct Rigs {
    gm: Gmem,
    space: SpaceId,
}

struct Model {
    ptrs: [*mut u8; REGIONS],
    data: [HashMap<u64, u8>; REGIONS],
    attrs: [Vec<ModelAttrs>; REGIONS],
}

fn region_len() -> u64 {
    PAGES * 4096
}

/// The devices: (device, id, asid).
type Devs = Vec<(Arc<SoftDevice>, DeviceId, Asid)>;

fn check_invariants(gm: &Gmem, space: SpaceId, devs: &Devs, m: &Model) -> Result<(), TestCaseError> {
    let mut on_dev = vec![0u64; devs.len()];
    for (ri, &p) in m.ptrs.iter().enumerate() {
        let va0 = p as u64;
        for pg in 0..PAGES {
            let va = va0 + pg * 4096;
            let info = gm.page_info(space, va).expect("managed");
            let mut resident = 0u8;
            // SAFETY: `va` is a page of a live mapping; mincore only reads residency.
            let rc = unsafe { libc::mincore(va as *mut libc::c_void, 4096, &mut resident) };
            prop_assert_eq!(rc, 0);
            if matches!(info.residency, Residency::Device | Residency::Dup) {
                on_dev[info.device.expect("holder").0 as usize] += 1;
            }
            if info.residency == Residency::Device {
                prop_assert_eq!(resident & 1, 0, "CPU copy of device page {:#x} still present", va);
            }
            // At most one device maps the page, and only the one the table names.
            for (d, (dev, id, asid)) in devs.iter().enumerate() {
                let tr = dev.translate(*asid, va);
                let Some((target, prot)) = tr else { continue };
                prop_assert_eq!(info.device, Some(*id), "page {:#x} mapped on device {} it is not on", va, d);
                match info.residency {
                    Residency::Device => prop_assert_eq!(target, MemAddr::Device(info.device_pa.expect("pa"))),
                    Residency::Dup => {
                        prop_assert!(!prot.contains(Prot::WRITE), "duplicated page {:#x} writable on device", va)
                    }
                    Residency::Cpu | Residency::Unpopulated => {
                        prop_assert!(
                            info.remote && matches!(target, MemAddr::Host { .. }),
                            "CPU-owned page {:#x} -> {:?}",
                            va,
                            target
                        )
                    }
                }
            }
            if info.remote {
                prop_assert!(matches!(info.residency, Residency::Cpu));
            }
            let a = gm.range_attrs(space, va).expect("attrs");
            let want = m.attrs[ri][pg as usize];
            prop_assert_eq!(a.read_mostly, want.read_mostly);
            prop_assert_eq!(a.accessed_by, want.accessed_by);
            prop_assert_eq!(a.preferred == Some(Node::Cpu), want.preferred_cpu);
        }
    }
    for (d, (dev, id, _)) in devs.iter().enumerate() {
        let (free, total) = gm.device_pages(*id).expect("dev");
        prop_assert_eq!(free + on_dev[d], total, "device {} memory accounting", d);
        prop_assert_eq!(dev.stale_tlb_entries(), 0);
    }
    Ok(())
}

/// `mprotect` pages `[pg, pg+n)` of region `ri` read-only (or no-access): a device write
/// (and with no access, a read) is aborted with the address, the data is unchanged, a
/// read of read-only memory sees the data; then read-write again.
fn protect_step(
    r: &Rigs,
    (dev, id, asid): &(Arc<SoftDevice>, DeviceId, Asid),
    m: &Model,
    ri: usize,
    pg: u64,
    n: u64,
    none: bool,
) -> Result<(), TestCaseError> {
    let va = m.ptrs[ri] as u64 + pg * 4096;
    let prot = if none { Prot::empty() } else { Prot::READ };
    r.gm.mprotect(r.space, va, n * 4096, prot).expect("mprotect");
    prop_assert_eq!(r.gm.page_info(r.space, va).expect("info").protection, prot);
    let before = r.gm.page_info(r.space, va).expect("info");
    let aborted = |res: Result<(), SoftError>, write: bool| matches!(res, Err(SoftError::Fault(FaultError::Protection { va: at, write: w, .. })) if at == va + 5 && w == write);
    prop_assert!(aborted(dev.store(&r.gm, *id, *asid, va + 5, &[0xAB]), true), "write not aborted");
    let mut b = [0u8; 1];
    let read = dev.load(&r.gm, *id, *asid, va + 5, &mut b);
    if none {
        prop_assert!(aborted(read, false), "read of no-access memory not aborted");
        prop_assert_eq!(r.gm.page_info(r.space, va).expect("info").residency, before.residency, "nothing moved");
    } else {
        prop_assert!(read.is_ok());
        prop_assert_eq!(b[0], m.data[ri].get(&(pg * 4096 + 5)).copied().unwrap_or(0));
    }
    r.gm.mprotect(r.space, va, n * 4096, gmem_host::mmu::RW).expect("read-write again");
    Ok(())
}

/// Punch a one-page hole at page `pg` of region `ri`: the hole is gone everywhere, the
/// two pieces keep their data; then both pieces are unmapped.
fn hole_step(r: &Rigs, devs: &Devs, m: &Model, ri: usize, pg: u64) -> Result<(), TestCaseError> {
    let p = m.ptrs[ri] as u64;
    r.gm.munmap(r.space, (p + pg * 4096) as *mut u8, 4096).expect("hole");
    prop_assert!(r.gm.page_info(r.space, p + pg * 4096).is_none());
    for (dev, _, asid) in devs {
        prop_assert!(dev.translate(*asid, p + pg * 4096).is_none(), "mapping survived the hole");
    }
    for (&o, &v) in &m.data[ri] {
        if o / 4096 != pg {
            prop_assert_eq!(cpu_read(m.ptrs[ri], o as usize), v, "piece data at {:#x}", o);
        }
    }
    r.gm.munmap(r.space, p as *mut u8, pg * 4096).expect("first piece");
    r.gm.munmap(r.space, (p + (pg + 1) * 4096) as *mut u8, (PAGES - pg - 1) * 4096).expect("second piece");
    for (dev, id, asid) in devs {
        for v in 0..PAGES {
            prop_assert!(dev.translate(*asid, p + v * 4096).is_none());
        }
        let _ = id;
    }
    Ok(())
}

/// Force region `p` to move: a foreign page right after it blocks growing in place, so
/// growing by a page moves it; then it shrinks back. `None` when the blocker could not be
/// placed.
fn move_step(r: &Rigs, devs: &Devs, p: *mut u8) -> Result<Option<*mut u8>, TestCaseError> {
    let end = p as u64 + region_len();
    // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping; the result is checked.
    let blocker = unsafe {
        libc::mmap(
            end as *mut libc::c_void,
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if blocker == libc::MAP_FAILED {
        return Ok(None);
    }
    let moved = if blocker as u64 == end {
        let n = r.gm.mremap(r.space, p, region_len(), region_len() + 4096, true).expect("move");
        prop_assert_ne!(n, p, "grew in place over a foreign mapping");
        for (dev, _, asid) in devs {
            for v in 0..PAGES {
                prop_assert!(dev.translate(*asid, p as u64 + v * 4096).is_none(), "old mapping survived the move");
            }
        }
        prop_assert_eq!(r.gm.mremap(r.space, n, region_len() + 4096, region_len(), false).expect("shrink"), n);
        Some(n)
    } else {
        None
    };
    // SAFETY: the blocker is our own one-page mapping.
    unsafe { libc::munmap(blocker, 4096) };
    Ok(moved)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let now = Arc::new(AtomicU64::new(0));
    let clock = now.clone();
    // Deterministic time: every step adds 200 µs and every clock read 10 µs, so a
    // throttled page is released after a bounded number of device replays.
    let cfg = Config {
        clock: Arc::new(move || clock.fetch_add(10_000, Ordering::Relaxed)),
        staging_pages: 8,
        ..Default::default()
    };
    let gm = Gmem::new(cfg).expect("manager");
    let space = gm.create_space();
    let mut devs: Devs = Vec::new();
    for pages in [DEV_PAGES, DEV_PAGES / 2] {
        let dev = Arc::new(SoftDevice::new(SoftConfig { mem_bytes: pages * 4096, ..Default::default() }));
        let id = gm.register_device(dev.clone()).expect("register");
        let asid = gm.attach(space, id).expect("attach");
        devs.push((dev, id, asid));
    }
    let r = Rigs { gm, space };
    let mut m = Model { ptrs: [std::ptr::null_mut(); REGIONS], data: Default::default(), attrs: Default::default() };
    for i in 0..REGIONS {
        m.ptrs[i] = r.gm.mmap(r.space, region_len(), MapFlags::PEER_SHARED).expect("mmap");
        m.attrs[i] = vec![ModelAttrs::default(); PAGES as usize];
    }
    for (step, op) in ops.into_iter().enumerate() {
        now.fetch_add(200_000, Ordering::Relaxed);
        let shown = format!("{op:?}");
        match op {
            Op::CpuRead { r: ri, pg, off } => {
                let o = pg * 4096 + u64::from(off);
                let got = cpu_read(m.ptrs[ri], o as usize);
                prop_assert_eq!(got, m.data[ri].get(&o).copied().unwrap_or(0), "cpu read r{} {:#x}", ri, o);
            }
            Op::CpuWrite { r: ri, pg, off, val } => {
                let o = pg * 4096 + u64::from(off);
                cpu_write(m.ptrs[ri], o as usize, val);
                m.data[ri].insert(o, val);
                let info = r.gm.page_info(r.space, m.ptrs[ri] as u64 + pg * 4096).expect("info");
                prop_assert_eq!(info.residency, Residency::Cpu);
            }
            Op::DevRead { d, r: ri, pg, off } => {
                let o = pg * 4096 + u64::from(off);
                let mut b = [0u8; 1];
                let (dev, id, asid) = &devs[d];
                dev.load(&r.gm, *id, *asid, m.ptrs[ri] as u64 + o, &mut b).expect("device load");
                prop_assert_eq!(b[0], m.data[ri].get(&o).copied().unwrap_or(0), "device read r{} {:#x}", ri, o);
            }
            Op::DevWrite { d, r: ri, pg, off, val } => {
                let o = pg * 4096 + u64::from(off);
                let (dev, id, asid) = &devs[d];
                dev.store(&r.gm, *id, *asid, m.ptrs[ri] as u64 + o, &[val]).expect("device store");
                m.data[ri].insert(o, val);
                let info = r.gm.page_info(r.space, m.ptrs[ri] as u64 + pg * 4096).expect("info");
                prop_assert!(
                    (info.residency == Residency::Device && info.prot.contains(Prot::WRITE)) || info.remote,
                    "after a device write: {:?}",
                    info
                );
                prop_assert_eq!(info.device, Some(*id));
            }
            Op::Batch { d, r: ri, pages } => {
                let (_, id, asid) = &devs[d];
                let faults: Vec<DeviceFault> = pages
                    .iter()
                    .map(|&(pg, w)| DeviceFault {
                        asid: *asid,
                        va: m.ptrs[ri] as u64 + pg * 4096 + 3,
                        access: if w { Access::Write } else { Access::Read },
                        tag: pg,
                    })
                    .collect();
                let res = r.gm.dev_fault(*id, &faults);
                prop_assert!(res.iter().all(|x| x.is_retry()), "{:?}", res);
            }
            Op::Advise { d, r: ri, pg, n, hint } => {
                let n = n.min(PAGES - pg);
                let va = m.ptrs[ri] as u64 + pg * 4096;
                let dev = Node::Device(devs[d].1);
                let (node, h) = match hint {
                    0 => (dev, Hint::Prefetch),
                    1 => (Node::Cpu, Hint::Prefetch),
                    2 => (Node::Cpu, Hint::DontNeed),
                    3 => (Node::Cpu, Hint::ReadMostly),
                    4 => (Node::Cpu, Hint::UnsetReadMostly),
                    5 => (dev, Hint::AccessedBy),
                    6 => (dev, Hint::UnsetAccessedBy),
                    7 => (Node::Cpu, Hint::PreferredLocation),
                    _ => (Node::Cpu, Hint::UnsetPreferredLocation),
                };
                r.gm.hmadvise(r.space, node, va, n * 4096, h).expect("hmadvise");
                for p in pg..pg + n {
                    let a = &mut m.attrs[ri][p as usize];
                    match hint {
                        3 => a.read_mostly = true,
                        4 => a.read_mostly = false,
                        5 => a.accessed_by |= 1 << d,
                        6 => a.accessed_by &= !(1 << d),
                        7 => a.preferred_cpu = true,
                        8 => a.preferred_cpu = false,
                        _ => {}
                    }
                    let info = r.gm.page_info(r.space, m.ptrs[ri] as u64 + p * 4096).expect("info");
                    if hint == 1 || hint == 2 {
                        prop_assert!(!matches!(info.residency, Residency::Device | Residency::Dup) && !info.remote);
                    }
                }
            }
            Op::Evict { d, n } => {
                r.gm.evict(devs[d].1, usize::from(n)).expect("evict");
            }
            Op::Remap { r: ri } => {
                let old = m.ptrs[ri];
                r.gm.munmap(r.space, old, region_len()).expect("munmap");
                for pg in 0..PAGES {
                    for (dev, _, asid) in &devs {
                        prop_assert!(dev.translate(*asid, old as u64 + pg * 4096).is_none(), "mapping survived munmap");
                    }
                }
                m.ptrs[ri] = r.gm.mmap(r.space, region_len(), MapFlags::PEER_SHARED).expect("mmap");
                m.data[ri].clear();
                m.attrs[ri] = vec![ModelAttrs::default(); PAGES as usize];
            }
            Op::Maintain => {
                now.fetch_add(200_000_000, Ordering::Relaxed);
                r.gm.maintenance();
            }
            Op::Protect { d, r: ri, pg, n, none } => protect_step(&r, &devs[d], &m, ri, pg, n.min(PAGES - pg), none)?,
            Op::Hole { r: ri, pg } => {
                hole_step(&r, &devs, &m, ri, pg)?;
                m.ptrs[ri] = r.gm.mmap(r.space, region_len(), MapFlags::PEER_SHARED).expect("mmap");
                m.data[ri].clear();
                m.attrs[ri] = vec![ModelAttrs::default(); PAGES as usize];
            }
            Op::Shrink { r: ri, keep } => {
                let p = m.ptrs[ri];
                let got = r.gm.mremap(r.space, p, region_len(), keep * 4096, false).expect("shrink");
                prop_assert_eq!(got, p);
                for pg in keep..PAGES {
                    let va = p as u64 + pg * 4096;
                    prop_assert!(r.gm.page_info(r.space, va).is_none(), "page {} still managed", pg);
                    for (dev, _, asid) in &devs {
                        prop_assert!(dev.translate(*asid, va).is_none(), "mapping survived the shrink");
                    }
                }
                m.ptrs[ri] = r.gm.mremap(r.space, p, keep * 4096, region_len(), true).expect("grow");
                m.data[ri].retain(|&o, _| o < keep * 4096);
                for a in &mut m.attrs[ri][keep as usize..] {
                    *a = ModelAttrs::default();
                }
            }
            Op::Move { r: ri } => {
                if let Some(moved) = move_step(&r, &devs, m.ptrs[ri])? {
                    m.ptrs[ri] = moved;
                }
            }
        }
        check_invariants(&r.gm, r.space, &devs, &m)
            .map_err(|e| TestCaseError::fail(format!("after step {step} {shown}: {e}")))?;
    }
    // Final sweep: every written byte reads back on the CPU.
    for ri in 0..REGIONS {
        for (&o, &v) in &m.data[ri] {
            prop_assert_eq!(cpu_read(m.ptrs[ri], o as usize), v);
        }
    }
    for ri in 0..REGIONS {
        r.gm.munmap(r.space, m.ptrs[ri], region_len()).expect("munmap");
    }
    for (dev, id, asid) in &devs {
        let (free, total) = r.gm.device_pages(*id).expect("dev");
        prop_assert_eq!(free, total);
        prop_assert_eq!(dev.mappings(*asid), 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 4000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/state_machine.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn manager_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
