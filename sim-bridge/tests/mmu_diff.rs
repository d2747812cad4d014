//! Differential test of the MMU and compute unit: the RTL (`SimDevice`) against the
//! reference model (`ModelDevice`).
//!
//! A random sequence of operations runs on both devices through the same drivers:
//! page-table edits (4 KiB and 2 MiB maps, host-window maps, unmaps, permission
//! removal, A/D clearing — each removal followed by INVAL + FENCE as the spec requires),
//! DMA writes into device memory, and kernels of every operation whose faults are
//! answered batch by batch (demand-map and RETRY, write-upgrade, or ABORT the whole
//! batch), some with an INVAL ALL racing their walks. After every operation the kernel
//! completion, the fault batches (sorted by REQID, SEQ left out), the data pools, the
//! page-table pages (A/D bits included) and the host-window buffer must agree.
//!
//! The RTL answers a fault batch only once its ports have been quiet for 4 µs of device
//! time, so every slot that is going to fault before software answers has faulted
//! (docs/device.md 7).
//!
//! `MMU_DIFF_OPS` (default 10 000) and `MMU_DIFF_SEED` widen a run; the long run is
//! `MMU_DIFF_OPS=1000000 cargo test --release -p sim-bridge --test mmu_diff`.
//! `MMU_DIFF_SEEDS=A-B` runs seeds A to B instead (each an independent run of
//! `MMU_DIFF_OPS`), on `MMU_DIFF_THREADS` threads (default 1), each thread with its own
//! pair of devices: a long run spread over cores and, by seed range, over runners
//! (docs/testing.md).
//! `MMU_DIFF_TRACE=1` prints each operation before it runs.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;

use common::{Reply, Rig, Rng, Tables, host_buffer};
use npu::backdoor::DevMemBackdoor;
use npu::cmdq::{Command, InvalScope};
use npu::dma::{Dma, DmaAddr, DmaDesc};
use npu::fault::FaultRecord;
use npu::kernel::{Kernel, KernelCompletion};
use npu::sv39::{HUGE, PAGE};
use npu::{DeviceIo, DmaBuffer, regs};
use npu_refmodel::ModelDevice;
use sim_bridge::{SimConfig, SimDevice};
use std::collections::BTreeMap;

/// Input VAs (operands a, b) are pages 0..32 of the VA region, outputs (c) pages 32..64;
/// their physical pools are disjoint, so no kernel's output aliases its inputs.
const VA_BASE: u64 = 0x4000_0000;
const VA_PAGES: u64 = 64;
/// Two superpage VAs (inputs only), backed by two fixed 2 MiB frames.
const HUGE_VA: [u64; 2] = [0x8000_0000, 0x8020_0000];
const HUGE_PA: [u64; 2] = [32 << 20, 34 << 20];
const IN_POOL: u64 = 16 << 20;
const OUT_POOL: u64 = 17 << 20;
const POOL_PAGES: u64 = 128;
const HOST_PAGES: usize = 16;
const ASIDS: [u16; 3] = [1, 2, 3];
const SETTLE_NS: u64 = 4_000;
const HOST_WINDOW: u64 = 1 << 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Map {
    pa: u64,
    size: u64,
    write: bool,
}

/// One device with its rig, its host-window buffer and the software view of its maps.
struct Side<D: DeviceIo + DevMemBackdoor> {
    rig: Rig<D>,
    dma: Dma,
    host: DmaBuffer,
    host_iova: u64,
    staging: DmaBuffer,
    staging_iova: u64,
    maps: BTreeMap<(u16, u64), Map>,
}

impl<D: DeviceIo + DevMemBackdoor> Side<D> {
    fn new(mut dev: D, settle_ns: u64) -> Self {
        let dma = Dma::init(&mut dev, 4).unwrap();
        let (host, host_iova) = host_buffer(&mut dev, HOST_PAGES * PAGE as usize);
        let (staging, staging_iova) = host_buffer(&mut dev, PAGE as usize);
        let mut rig = Rig::new(dev);
        rig.settle_ns = settle_ns;
        let dev = &mut rig.dev;
        dev.backdoor_write(IN_POOL, &vec![0u8; (2 * POOL_PAGES * PAGE) as usize]).unwrap();
        Self { rig, dma, host, host_iova, staging, staging_iova, maps: BTreeMap::new() }
    }

    fn pte_at(&mut self, asid: u16, va: u64) -> u64 {
        self.rig.tables.leaf_at(&mut self.rig.dev, asid, va)
    }

    fn edit_pte(&mut self, asid: u16, va: u64, f: impl Fn(u64) -> u64) {
        let at = self.pte_at(asid, va);
        let v = common::read_u64(&self.rig.dev, at);
        self.rig.dev.backdoor_write(at, &f(v).to_le_bytes()).unwrap();
    }
}

/// Where a demand-mapped page goes: its pool by VA half, a frame by hash.
fn demand_pa(asid: u16, va: u64) -> u64 {
    let page = (va - VA_BASE) / PAGE;
    let pool = if page < VA_PAGES / 2 { IN_POOL } else { OUT_POOL };
    let h = (u64::from(asid) << 32 | page).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    pool + (h % POOL_PAGES) * PAGE
}

fn in_region(va: u64) -> bool {
    (VA_BASE..VA_BASE + VA_PAGES * PAGE).contains(&va)
}

/// The software fault policy, a pure function of the batch, the maps and `choice`.
fn answer<D: DeviceIo + DevMemBackdoor>(
    dev: &mut D,
    t: &mut Tables,
    maps: &mut BTreeMap<(u16, u64), Map>,
    batch: &[FaultRecord],
    choice: u64,
) -> Reply {
    if choice % 8 == 0 || batch.iter().any(|f| !in_region(f.va)) {
        return Reply::Abort;
    }
    for f in batch {
        let page = f.va & !(PAGE - 1);
        match maps.get(&(f.asid, page)).copied() {
            None => {
                let pa = demand_pa(f.asid, page);
                t.map(dev, f.asid, page, pa, PAGE, true);
                maps.insert((f.asid, page), Map { pa, size: PAGE, write: true });
            }
            Some(m) if f.write && !m.write => {
                // Upgrade to writable: adding rights needs no invalidation (§6.3).
                let at = t.leaf_at(dev, f.asid, page);
                let v = common::read_u64(dev, at) | 1 << regs::pte_bit::W;
                dev.backdoor_write(at, &v.to_le_bytes()).unwrap();
                maps.insert((f.asid, page), Map { write: true, ..m });
            }
            Some(_) => {} // mapped by an earlier record of this batch
        }
    }
    Reply::Retry
}

#[derive(Clone, Debug)]
enum Op {
    Map { asid: u16, page: u64, host: Option<usize>, write: bool, clear_ad: bool },
    MapHuge { asid: u16, which: usize },
    Unmap { asid: u16, va: u64, scope: u64 },
    Protect { asid: u16, va: u64 },
    ClearAd { asid: u16, va: u64 },
    Dma { page: u64, seed: u64 },
    Kernel { kernel: Kernel, choice: u64, race_inval: bool },
}

fn gen_kernel(rng: &mut Rng) -> Kernel {
    let asid = ASIDS[rng.below(3) as usize];
    let count = 1 + rng.below(80) as u32;
    let input = |rng: &mut Rng| -> u64 {
        if rng.chance(10) {
            HUGE_VA[rng.below(2) as usize] + rng.below(HUGE / 4 - 128) * 4
        } else {
            VA_BASE + rng.below(VA_PAGES / 2 * PAGE / 4 - 80) * 4
        }
    };
    let output = |rng: &mut Rng| VA_BASE + VA_PAGES / 2 * PAGE + rng.below(VA_PAGES / 2 * PAGE / 4 - 80) * 4;
    match rng.below(7) {
        0 => Kernel::copy(asid, input(rng), output(rng), count),
        1 => Kernel::fill(asid, output(rng), count, rng.next() as u32),
        2 => Kernel::add(asid, input(rng), input(rng), output(rng), count),
        3 => Kernel::scale(asid, input(rng), output(rng), count, rng.next() as u32),
        4 => Kernel::reduce_sum(asid, input(rng), if rng.chance(50) { output(rng) } else { 0 }, count),
        5 => {
            // Indices are whatever the index page holds: reduce them into the region.
            let base = VA_BASE + rng.below(8) * PAGE;
            Kernel::gather(asid, base, input(rng), output(rng), count.min(40))
        }
        _ => {
            let span = VA_PAGES / 2 * PAGE;
            let stride = 4 * (1 + rng.below(1024));
            let n = (u64::from(count)).min(span / stride).max(1) as u32;
            let store = rng.chance(50).then(|| rng.next() as u32);
            let a = if store.is_some() { VA_BASE + span } else { VA_BASE };
            Kernel::strided_touch(asid, a, stride as u32, n, store)
        }
    }
}

fn gen_op(rng: &mut Rng, maps: &BTreeMap<(u16, u64), Map>) -> Op {
    let mapped: Vec<(u16, u64)> = maps.keys().copied().collect();
    let pick = |rng: &mut Rng| mapped[rng.below(mapped.len() as u64) as usize];
    match rng.below(100) {
        0..=19 => Op::Map {
            asid: ASIDS[rng.below(3) as usize],
            page: rng.below(VA_PAGES),
            host: rng.chance(10).then(|| rng.below(HOST_PAGES as u64 / 2) as usize),
            write: rng.chance(60),
            clear_ad: rng.chance(30),
        },
        20..=22 => Op::MapHuge { asid: ASIDS[rng.below(3) as usize], which: rng.below(2) as usize },
        23..=30 if !mapped.is_empty() => {
            let (asid, va) = pick(rng);
            Op::Unmap { asid, va, scope: rng.below(3) }
        }
        31..=35 if !mapped.is_empty() => {
            let (asid, va) = pick(rng);
            Op::Protect { asid, va }
        }
        36..=39 if !mapped.is_empty() => {
            let (asid, va) = pick(rng);
            Op::ClearAd { asid, va }
        }
        40..=47 => Op::Dma { page: rng.below(2 * POOL_PAGES), seed: rng.next() },
        _ => Op::Kernel { kernel: gen_kernel(rng), choice: rng.next(), race_inval: rng.chance(10) },
    }
}

/// Applies `op` to one side; returns the kernel completion and fault batches, if any.
fn apply<D: DeviceIo + DevMemBackdoor>(s: &mut Side<D>, op: &Op) -> Option<(KernelCompletion, Vec<Vec<FaultRecord>>)> {
    match op.clone() {
        Op::Map { asid, page, host, write, clear_ad } => {
            let va = VA_BASE + page * PAGE;
            if s.maps.contains_key(&(asid, va)) {
                return None;
            }
            let pa = match host {
                // Host pages: 0..8 back inputs, 8..16 back outputs.
                Some(h) => HOST_WINDOW + s.host_iova + ((h + if page >= VA_PAGES / 2 { 8 } else { 0 }) as u64) * PAGE,
                None => demand_pa(asid, va),
            };
            s.rig.map(asid, va, pa, PAGE, write);
            if clear_ad {
                s.edit_pte(asid, va, |v| v & !(1 << regs::pte_bit::A | 1 << regs::pte_bit::D));
            }
            s.maps.insert((asid, va), Map { pa, size: PAGE, write });
        }
        Op::MapHuge { asid, which } => {
            let va = HUGE_VA[which];
            if s.maps.contains_key(&(asid, va)) {
                return None;
            }
            s.rig.map(asid, va, HUGE_PA[which], HUGE, false);
            s.maps.insert((asid, va), Map { pa: HUGE_PA[which], size: HUGE, write: false });
        }
        Op::Unmap { asid, va, scope } => {
            s.rig.tables.unmap(&mut s.rig.dev, asid, va).unwrap();
            let m = s.maps.remove(&(asid, va)).unwrap();
            let scope = match scope {
                0 => InvalScope::Range { asid, va, pages: (m.size / PAGE) as u32 },
                1 => InvalScope::Asid(asid),
                _ => InvalScope::All,
            };
            s.rig.fenced(&[Command::Inval(scope)]);
        }
        Op::Protect { asid, va } => {
            s.edit_pte(asid, va, |v| v & !(1 << regs::pte_bit::W));
            s.maps.get_mut(&(asid, va)).unwrap().write = false;
            s.rig.fenced(&[Command::Inval(InvalScope::Range { asid, va, pages: 1 })]);
        }
        Op::ClearAd { asid, va } => {
            s.edit_pte(asid, va, |v| v & !(1 << regs::pte_bit::A | 1 << regs::pte_bit::D));
            s.rig.fenced(&[Command::Inval(InvalScope::Range { asid, va, pages: 1 })]);
        }
        Op::Dma { page, seed } => {
            // Half the writes are small words, usable as GATHER indices into the inputs.
            let mut rng = Rng(seed);
            let bytes: Vec<u8> = if seed % 2 == 0 {
                (0..PAGE / 4).flat_map(|_| (rng.below(8192) as u32).to_le_bytes()).collect()
            } else {
                (0..PAGE).map(|_| rng.next() as u8).collect()
            };
            s.staging.write(0, &bytes).unwrap();
            let off = rng.below(PAGE / 2);
            let len = 1 + rng.below(PAGE - off) as u32;
            let desc =
                DmaDesc::copy(DmaAddr::Host(s.staging_iova), DmaAddr::Device(IN_POOL + page * PAGE + off), len, 1);
            s.dma.submit(&mut s.rig.dev, 0, &[desc]).unwrap();
            let cpls = s.dma.wait_idle(&mut s.rig.dev, &[0], common::BUDGET_NS).unwrap();
            assert!(cpls.iter().all(|c| c.status == npu::dma::DmaStatus::Ok), "{cpls:?}");
        }
        Op::Kernel { kernel, choice, race_inval } => {
            let cmds: &[Command] = if race_inval { &[Command::Inval(InvalScope::All)] } else { &[] };
            let Side { rig, maps, .. } = s;
            let mut n = 0u64;
            let out = rig.run_with(kernel, cmds, &mut |dev, t, batch| {
                n += 1;
                answer(dev, t, maps, batch, choice.rotate_left(n as u32))
            });
            return Some(out);
        }
    }
    None
}

fn strip_seq(batches: &[Vec<FaultRecord>]) -> Vec<Vec<FaultRecord>> {
    batches.iter().map(|b| b.iter().map(|f| FaultRecord { seq: 0, ..*f }).collect()).collect()
}

fn compare_memory(rtl: &Side<SimDevice>, model: &Side<ModelDevice>, step: usize, full: bool) {
    let tables = model.rig.tables.next - common::TABLE_BASE;
    assert_eq!(rtl.rig.tables.next, model.rig.tables.next, "step {step}");
    let mut ranges = vec![(IN_POOL, 2 * POOL_PAGES * PAGE), (common::TABLE_BASE, tables)];
    if full {
        ranges.extend(HUGE_PA.iter().map(|&p| (p, HUGE)));
    }
    for (base, len) in ranges {
        let mut a = vec![0u8; len as usize];
        let mut b = vec![0u8; len as usize];
        rtl.rig.dev.backdoor_read(base, &mut a).unwrap();
        model.rig.dev.backdoor_read(base, &mut b).unwrap();
        if a != b {
            let i = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(0);
            let at = (base + i as u64) & !7;
            panic!(
                "step {step}: device memory differs first at {:#x}: RTL {:#018x} model {:#018x}",
                at,
                common::read_u64(&rtl.rig.dev, at),
                common::read_u64(&model.rig.dev, at)
            );
        }
    }
    let mut a = vec![0u8; HOST_PAGES * PAGE as usize];
    let mut b = vec![0u8; HOST_PAGES * PAGE as usize];
    rtl.host.read(0, &mut a).unwrap();
    model.host.read(0, &mut b).unwrap();
    assert!(a == b, "step {step}: host-window buffer differs");
}

/// The seeds of the run: `MMU_DIFF_SEEDS=A-B`, else `MMU_DIFF_SEED` (default 1).
fn seeds() -> Vec<u64> {
    if let Ok(range) = std::env::var("MMU_DIFF_SEEDS") {
        let bounds = range.split_once('-').and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
        let (a, b): (u64, u64) = bounds.unwrap_or_else(|| panic!("MMU_DIFF_SEEDS={range}: expected A-B, e.g. 1-8"));
        assert!(a <= b, "MMU_DIFF_SEEDS={range}: A must not be above B");
        return (a..=b).collect();
    }
    vec![std::env::var("MMU_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1)]
}

#[test]
fn rtl_and_model_agree_on_random_page_tables_and_kernels() {
    let ops: usize = std::env::var("MMU_DIFF_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let threads: usize = std::env::var("MMU_DIFF_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let seeds = seeds();
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Each worker takes the next seed until none is left; a failing seed's panic names
    // its thread (`mmu_diff seed N`) and fails the test when the scope ends.
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, seeds.len()) {
            s.spawn(|| {
                while let Some(&seed) = seeds.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                    let run = std::thread::Builder::new().name(format!("mmu_diff seed {seed}"));
                    run.spawn(move || run_seed(seed, ops)).unwrap().join().unwrap();
                }
            });
        }
    });
}

/// One differential run: `ops` operations of the stream seeded `seed`.
fn run_seed(seed: u64, ops: usize) {
    let trace = std::env::var_os("MMU_DIFF_TRACE").is_some();
    let mut rtl = Side::new(SimDevice::new(SimConfig::default()).unwrap(), SETTLE_NS);
    let mut model = Side::new(ModelDevice::new(Default::default()), 0);
    assert_eq!(rtl.host_iova, model.host_iova, "same IOVA plan on both devices");
    let mut rng = Rng(seed);
    let (mut kernels, mut faults, mut aborted) = (0usize, 0usize, 0usize);
    for step in 0..ops {
        let op = gen_op(&mut rng, &model.maps);
        if std::env::var("MMU_DIFF_DEBUG_STEP").ok().and_then(|v| v.parse::<usize>().ok()) == Some(step) {
            common::DEBUG.store(true, std::sync::atomic::Ordering::Relaxed);
            eprintln!("step {step}: {op:?}");
        }
        if trace {
            eprintln!("step {step}: {op:?}");
        }
        let want = apply(&mut model, &op);
        let got = apply(&mut rtl, &op);
        match (got, want) {
            (Some((gc, gb)), Some((wc, wb))) => {
                assert_eq!(strip_seq(&gb), strip_seq(&wb), "step {step}: fault batches of {op:?}");
                assert_eq!(gc, wc, "step {step}: completion of {op:?}");
                kernels += 1;
                faults += wb.iter().map(Vec::len).sum::<usize>();
                aborted += usize::from(wc.status != npu::kernel::KernelStatus::Ok);
            }
            (None, None) => {}
            (g, w) => panic!("step {step}: one side ran a kernel and the other did not: {g:?} vs {w:?}"),
        }
        assert_eq!(rtl.maps, model.maps, "step {step}");
        compare_memory(&rtl, &model, step, step % 256 == 255 || step + 1 == ops);
    }
    // Same number of fault records on both (SEQ is the running count).
    let seq = |d: &mut dyn DeviceIo| d.read32(regs::FQ_TAIL.offset).unwrap();
    assert_eq!(seq(&mut rtl.rig.dev), seq(&mut model.rig.dev));
    eprintln!(
        "mmu_diff: seed {seed}, {ops} ops, {kernels} kernels, {faults} fault records, {aborted} kernels aborted, {} RTL cycles",
        rtl.rig.dev.cycles()
    );
    assert!(kernels > ops / 3 && faults > ops / 10 && aborted > 0, "the mix exercised too little");
}
