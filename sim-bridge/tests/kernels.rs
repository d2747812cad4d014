//! The compute unit through the MMU: every kernel operation, translations against the
//! independent software walker, faults and their records, replays, fault-queue
//! back-pressure, invalidation, ASID isolation, the host window, A/D updates and error
//! injection. Every scenario runs on the Verilated RTL (`rtl_*`) and on the reference
//! model (`model_*`) through the same drivers.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;

use common::{Reply, Rig, host_buffer, put_words, read_u64, words};
use npu::backdoor::DevMemBackdoor;
use npu::cmdq::{Command, InvalScope};
use npu::fault::{FaultCause, FaultRecord};
use npu::kernel::{Kernel, KernelStatus};
use npu::sv39::{Access, HUGE, PAGE};
use npu::{DeviceIo, regs};
use npu_refmodel::ModelDevice;
use sim_bridge::{SimConfig, SimDevice};

const A: u64 = 0x10_0000;
const B: u64 = 0x20_0000;
const C: u64 = 0x30_0000;
const PA_A: u64 = 0x100_0000;
const PA_B: u64 = 0x110_0000;
const PA_C: u64 = 0x120_0000;

fn pattern(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32).map(|i| i.wrapping_mul(0x9E37_79B9) ^ seed).collect()
}

/// Inputs at A and B (4 pages each, read-only), outputs at C (4 pages, writable).
fn standard_maps<D: DeviceIo + DevMemBackdoor>(r: &mut Rig<D>, asid: u16) {
    r.map_range(asid, A, PA_A, 4, false);
    r.map_range(asid, B, PA_B, 4, false);
    r.map_range(asid, C, PA_C, 4, true);
}

fn every_operation_is_exact<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    standard_maps(&mut r, 1);
    let n = 1000usize;
    let (av, bv) = (pattern(n + 16, 1), pattern(n + 16, 2));
    put_words(&mut r.dev, PA_A, &av);
    put_words(&mut r.dev, PA_B, &bv);
    // `want(i)` is the expected c[i]; c starts `skip` words into the C frame, and the
    // words before and after it must keep their guard value.
    let check = |r: &mut Rig<D>, k: Kernel, skip: usize, want: &dyn Fn(usize) -> u32| {
        let len = k.count as usize;
        put_words(&mut r.dev, PA_C, &vec![0xDEAD_BEEF; skip + len + 16]);
        let cpl = r.run_clean(k);
        assert_eq!((cpl.status, cpl.done), (KernelStatus::Ok, k.count), "{k:?}: {cpl:?}");
        let got = words(&r.dev, PA_C, skip + len + 16);
        for i in 0..len {
            assert_eq!(got[skip + i], want(i), "{:?} element {i}", k.op);
        }
        assert!(got[..skip].iter().chain(&got[skip + len..]).all(|&w| w == 0xDEAD_BEEF), "{:?} wrote outside c", k.op);
    };
    // Unaligned starts cut groups at line boundaries differently per operand.
    check(&mut r, Kernel::copy(1, A + 12, C + 40, 999), 10, &|i| av[i + 3]);
    check(&mut r, Kernel::fill(1, C, n as u32, 0x5A5A_0001), 0, &|_| 0x5A5A_0001);
    check(&mut r, Kernel::add(1, A, B + 4, C + 4, 900), 1, &|i| av[i].wrapping_add(bv[i + 1]));
    check(&mut r, Kernel::scale(1, A, C, n as u32, 0x1_0003), 0, &|i| av[i].wrapping_mul(0x1_0003));
    let idx: Vec<u32> = (0..300u32).map(|i| (i * 37) % 1000).collect();
    put_words(&mut r.dev, PA_B + 2 * PAGE, &idx);
    check(&mut r, Kernel::gather(1, A, B + 2 * PAGE, C, 300), 0, &|i| av[idx[i] as usize]);
    // REDUCE_SUM: 64-bit sum of zero-extended words, low word stored at c[0].
    put_words(&mut r.dev, PA_C, &[0; 4]);
    let cpl = r.run_clean(Kernel::reduce_sum(1, A + 4, C + 8, 777));
    let sum: u64 = av[1..778].iter().map(|&w| u64::from(w)).sum();
    assert_eq!((cpl.status, cpl.result), (KernelStatus::Ok, sum));
    assert_eq!(words(&r.dev, PA_C, 4), vec![0, 0, sum as u32, 0]);
    // STRIDED_TOUCH: loads sum every 9th word; stores write only their words.
    let cpl = r.run_clean(Kernel::strided_touch(1, A, 36, 100, None));
    let sum: u64 = (0..100).map(|i| u64::from(av[i * 9])).sum();
    assert_eq!((cpl.status, cpl.result), (KernelStatus::Ok, sum));
    put_words(&mut r.dev, PA_C, &vec![0; 3 * 1024 + 8]);
    r.run_clean(Kernel::strided_touch(1, C, 4096 + 8, 3, Some(77)));
    for (i, w) in words(&r.dev, PA_C, 3 * 1024 + 8).iter().enumerate() {
        assert_eq!(*w, if [0, 1026, 2052].contains(&i) { 77 } else { 0 }, "word {i}");
    }
    // COUNT = 0 completes OK without any access.
    let cpl = r.run_clean(Kernel::copy(1, 0xdead_0000, 0xbeef_0000, 0));
    assert_eq!((cpl.status, cpl.done), (KernelStatus::Ok, 0));
}

fn translations_match_the_software_walker<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    // 4 KiB pages scattered, a 2 MiB superpage, and boundary addresses of both.
    let maps = [(0x7000u64, 0x200_0000u64), (0x8000, 0x200_5000), (0x40_0000_0000 - PAGE, 0x200_9000)];
    for (va, pa) in maps {
        r.map(3, va, pa, PAGE, false);
    }
    r.map(3, 0x4000_0000, 0x400_0000, HUGE, false);
    let vas = [0x7000, 0x7FFC, 0x8000, 0x8FFC, 0x40_0000_0000 - 4, 0x4000_0000, 0x4000_0FFC, 0x4010_0000, 0x401F_FFFC];
    for &va in &vas {
        let t = r.tables.oracle(&mut r.dev, 3, va, Access::Read).unwrap();
        put_words(&mut r.dev, t.pa, &[va as u32 ^ 0x1234_5678]);
        let cpl = r.run_clean(Kernel::strided_touch(3, va, 4, 1, None));
        assert_eq!(cpl.result, u64::from(va as u32 ^ 0x1234_5678), "VA {va:#x} → PA {:#x}", t.pa);
    }
    // Non-canonical (bits 63:39 not all equal to bit 38) and unmapped VAs fault at the
    // level the walker stops, with the PTE it read there.
    for va in [0x80_0000_0000u64, 0xFFFF_FF7F_FFFF_F000, 0x9000, 0x4020_0000] {
        let (cpl, batches) = r.run(Kernel::strided_touch(3, va, 4, 1, None), &mut |_, _, _| Reply::Abort);
        let f = batches.concat()[0];
        let want = r.tables.oracle(&mut r.dev, 3, va, Access::Read).unwrap_err();
        assert_eq!(
            (u64::from(f.cause as u16), f.level, f.pte, f.va),
            (want.cause, want.level, want.pte.0, va),
            "{va:#x}"
        );
        assert_eq!((cpl.status, cpl.fault_va), (KernelStatus::FaultAbort, va));
    }
}

fn fault_records_are_exact<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    r.map(2, A, PA_A, PAGE, false);
    let at = r.tables.leaf_at(&mut r.dev, 2, A);
    let leaf = read_u64(&r.dev, at);
    // A store to a read-only page: WRITE_PAGE at level 0 with the leaf PTE.
    let (cpl, batches) = r.run(Kernel::fill(2, A + 0x40, 1, 1), &mut |_, _, _| Reply::Abort);
    let f = batches.concat();
    assert_eq!(f.len(), 1);
    let want = FaultRecord {
        cause: FaultCause::WritePage,
        write: true,
        level: 0,
        asid: 2,
        reqid: 0x100,
        seq: f[0].seq,
        va: A + 0x40,
        pte: leaf,
    };
    assert_eq!(f[0], want);
    assert_eq!((cpl.status, cpl.fault_va, cpl.done), (KernelStatus::FaultAbort, A + 0x40, 0));
    // A load from an invalid PTE at level 0 (tables exist): READ_PAGE, PTE 0.
    let (_, batches) = r.run(Kernel::strided_touch(2, A + PAGE + 8, 4, 1, None), &mut |_, _, _| Reply::Abort);
    let f = batches.concat()[0];
    assert_eq!((f.cause, f.write, f.level, f.pte, f.va), (FaultCause::ReadPage, false, 0, 0, A + PAGE + 8));
    // No root for ASID 9: ASID_INVALID at level 2.
    let (_, batches) = r.run(Kernel::strided_touch(9, A, 4, 1, None), &mut |_, _, _| Reply::Abort);
    assert_eq!(batches.concat()[0].cause, FaultCause::AsidInvalid);
    // An injected walk error: access fault at level 2 with PTE 0 (the TLB missed: the
    // page was never walked in ASID 2 for this VA's table).
    r.dev.write32(regs::ERRINJ_PTW.offset, 1).unwrap();
    let (_, batches) = r.run(Kernel::strided_touch(2, A + 3 * PAGE, 4, 1, None), &mut |_, _, _| Reply::Abort);
    let f = batches.concat()[0];
    assert_eq!((f.cause, f.level, f.pte), (FaultCause::ReadAccess, 2, 0));
    assert_eq!(r.dev.read32(regs::ERRINJ_PTW.offset).unwrap(), 0, "injection consumed");
    // SEQ counts records from 0.
    assert_eq!(f.seq, 3);
}

fn concurrent_faults_and_replay_retry<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    r.settle_ns = 4_000;
    r.map_range(1, A, PA_A, 1, false);
    put_words(&mut r.dev, PA_A, &pattern(1024, 3));
    // 4 slots copy into 4 unmapped pages: 4 faults outstanding at once, one per slot.
    let (cpl, batches) = r.run(Kernel::copy(1, A, C + PAGE - 128, 256), &mut |dev, t, batch| {
        for f in batch {
            let page = f.va & !(PAGE - 1);
            if t.oracle(dev, 1, page, Access::Write).is_err() {
                t.map(dev, 1, page, PA_C + (page - C), PAGE, true);
            }
        }
        Reply::Retry
    });
    assert_eq!(cpl.status, KernelStatus::Ok, "{cpl:?}");
    assert_eq!(batches[0].iter().map(|f| f.slot()).collect::<Vec<_>>(), vec![0, 1, 2, 3], "{batches:#?}");
    assert_eq!(words(&r.dev, PA_C + PAGE - 128, 256), pattern(1024, 3)[..256]);
}

fn pte_write_commands_land_before_the_replay_behind_them<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    r.map(1, A, PA_A, PAGE, false);
    put_words(&mut r.dev, PA_B, &[99]);
    // The leaf of A + PAGE sits in A's table: learn the PTE a mapping writes there, then
    // take it away again, so the kernel faults on it.
    let va = A + PAGE;
    r.map(1, va, PA_B, PAGE, false);
    let at = r.tables.leaf_at(&mut r.dev, 1, va);
    let pte = read_u64(&r.dev, at);
    r.tables.unmap(&mut r.dev, 1, va);
    r.inval_all();
    // The answer is the PTE as a PTE_WRITE command, then the REPLAY, in one submission:
    // the retry must find the entry (a REPLAY that overtook the write would fault again).
    let write = Command::PteWrite { pa: at, value: pte };
    let (cpl, batches) = r.run(Kernel::strided_touch(1, va, 4, 1, None), &mut |_, _, _| Reply::RetryAfter(vec![write]));
    assert_eq!((cpl.status, cpl.result), (KernelStatus::Ok, 99), "{cpl:?}");
    assert_eq!(batches.len(), 1, "one fault, answered once: {batches:#?}");
    let ad = 1 << regs::pte_bit::A | 1 << regs::pte_bit::D;
    assert_eq!(read_u64(&r.dev, at) & !ad, pte & !ad, "the command wrote the PTE (the walker then set A)");
    // A PTE beyond device memory is a malformed command: the queue stops, nothing written.
    let size = r.dev.dev_mem_size();
    r.cmdq.submit(&mut r.dev, &[Command::PteWrite { pa: size, value: pte }]).unwrap();
    r.dev.advance(5_000).unwrap();
    let info = r.dev.read32(regs::ERR_INFO.offset).unwrap();
    assert_eq!(regs::err_info::CODE.get32(info), regs::dma_error::BAD_DESC as u32, "ERR_INFO {info:#x}");
    assert_eq!(regs::err_info::UNIT.get32(info), 0, "the command queue's error");
}

fn full_fault_queue_back_pressures_without_loss<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    // A 2-entry ring holds one record: four stalled slots must queue behind it.
    r.settle_ns = 4_000;
    r.map_range(1, A, PA_A, 1, false);
    let mut records = 0;
    let (cpl, batches) = r.run(Kernel::copy(1, A, C, 64), &mut |dev, t, batch| {
        records += batch.len();
        if t.oracle(dev, 1, C, Access::Write).is_err() {
            t.map(dev, 1, C, PA_C, PAGE, true);
        }
        Reply::Retry
    });
    assert_eq!(cpl.status, KernelStatus::Ok);
    assert_eq!(records, 4, "every stalled slot's record arrived: {batches:#?}");
    assert!(batches.iter().all(|b| b.len() == 1), "one record at a time through a 2-entry ring");
}

fn invalidation_removes_stale_translations<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    r.map(1, A, PA_A, PAGE, false);
    put_words(&mut r.dev, PA_A, &[111]);
    put_words(&mut r.dev, PA_B, &[222]);
    assert_eq!(r.run_clean(Kernel::strided_touch(1, A, 4, 1, None)).result, 111);
    // Retarget the PTE without an invalidation: a TLB may keep the old page...
    let at = r.tables.leaf_at(&mut r.dev, 1, A);
    let old = read_u64(&r.dev, at);
    let new = (old & 0x3FF) | (PA_B >> 12) << 10;
    r.dev.backdoor_write(at, &new.to_le_bytes()).unwrap();
    let stale = r.run_clean(Kernel::strided_touch(1, A, 4, 1, None)).result;
    assert!(stale == 111 || stale == 222);
    // ...but after INVAL + FENCE only the new one is reachable.
    r.fenced(&[Command::Inval(InvalScope::Range { asid: 1, va: A, pages: 1 })]);
    assert_eq!(r.run_clean(Kernel::strided_touch(1, A, 4, 1, None)).result, 222);
    // Unmapped after INVAL ASID: faults.
    r.tables.unmap(&mut r.dev, 1, A);
    r.fenced(&[Command::Inval(InvalScope::Asid(1))]);
    let (cpl, _) = r.run(Kernel::strided_touch(1, A, 4, 1, None), &mut |_, _, _| Reply::Abort);
    assert_eq!(cpl.status, KernelStatus::FaultAbort);
}

fn asids_are_isolated<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    r.map(2, A, PA_A, PAGE, true);
    put_words(&mut r.dev, PA_A, &[42; 16]);
    // ASID 1 has a root (another page mapped) but not this VA: every access faults.
    r.map(1, B, PA_B, PAGE, true);
    for k in [Kernel::copy(1, A, B, 16), Kernel::fill(1, A, 16, 7)] {
        let (cpl, batches) = r.run(k, &mut |_, _, b| {
            assert!(b.iter().all(|f| f.asid == 1 && f.va & !(PAGE - 1) == A));
            Reply::Abort
        });
        assert_eq!((cpl.status, cpl.fault_va), (KernelStatus::FaultAbort, A));
        assert!(!batches.is_empty());
    }
    assert_eq!(words(&r.dev, PA_A, 16), vec![42; 16], "ASID 2's page untouched");
    assert_eq!(r.run_clean(Kernel::strided_touch(2, A, 4, 1, None)).result, 42);
}

fn host_window_pages_reach_host_memory<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    let (buf, iova) = host_buffer(&mut r.dev, 2 * PAGE as usize);
    let input: Vec<u8> = pattern(1024, 9).iter().flat_map(|w| w.to_le_bytes()).collect();
    buf.write(0, &input).unwrap();
    r.map(1, A, (1 << 40) + iova, PAGE, false);
    r.map(1, C, (1 << 40) + iova + PAGE, PAGE, true);
    let cpl = r.run_clean(Kernel::scale(1, A, C, 1024, 3));
    assert_eq!(cpl.status, KernelStatus::Ok);
    let mut out = vec![0u8; PAGE as usize];
    buf.read(PAGE as usize, &mut out).unwrap();
    let got: Vec<u32> = out.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(got, pattern(1024, 9).iter().map(|w| w.wrapping_mul(3)).collect::<Vec<_>>());
    // A host page whose IOVA the host unmapped: MEM_ERROR naming the VA.
    r.map(1, B, (1 << 40) + 0x7_0000_0000, PAGE, false);
    let (cpl, _) = r.run(Kernel::copy(1, B, C, 16), &mut |_, _, _| Reply::Abort);
    assert_eq!((cpl.status, cpl.fault_va), (KernelStatus::MemError, B));
}

fn hardware_sets_accessed_and_dirty<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    r.map(1, A, PA_A, PAGE, false);
    r.map(1, C, PA_C, PAGE, true);
    for va in [A, C] {
        let at = r.tables.leaf_at(&mut r.dev, 1, va);
        let v = read_u64(&r.dev, at) & !(1 << regs::pte_bit::A | 1 << regs::pte_bit::D);
        r.dev.backdoor_write(at, &v.to_le_bytes()).unwrap();
    }
    r.run_clean(Kernel::strided_touch(1, C, 4, 1, None));
    let c_at = r.tables.leaf_at(&mut r.dev, 1, C);
    assert_eq!(read_u64(&r.dev, c_at) >> 6 & 3, 0b01, "a load sets A only");
    r.run_clean(Kernel::copy(1, A, C, 8));
    let a_at = r.tables.leaf_at(&mut r.dev, 1, A);
    assert_eq!(read_u64(&r.dev, a_at) >> 6 & 3, 0b01, "A on the source");
    assert_eq!(read_u64(&r.dev, c_at) >> 6 & 3, 0b11, "A and D on the destination");
}

fn injected_data_errors_end_with_mem_error<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    standard_maps(&mut r, 1);
    r.dev.write32(regs::ERRINJ_DEV_WR.offset, 1).unwrap();
    let (cpl, _) = r.run(Kernel::fill(1, C, 16, 5), &mut |_, _, _| Reply::Abort);
    assert_eq!((cpl.status, cpl.fault_va, cpl.done), (KernelStatus::MemError, C, 0));
    assert_eq!(r.dev.read32(regs::ERRINJ_DEV_WR.offset).unwrap(), 0);
    // The next kernel runs normally.
    let cpl = r.run_clean(Kernel::fill(1, C, 16, 5));
    assert_eq!(cpl.status, KernelStatus::Ok);
}

fn soft_reset_forgets_stalled_work<D: DeviceIo + DevMemBackdoor>(mut r: Rig<D>) {
    r.kq.submit(&mut r.dev, &[Kernel::fill(1, C, 64, 1)]).unwrap();
    r.dev.advance(50_000).unwrap();
    let status = r.dev.read32(regs::STATUS.offset).unwrap();
    assert_eq!(regs::status::FAULTS_PENDING.get32(status), 1, "stalled on a fault");
    r.dev.write32(regs::RESET.offset, 1).unwrap();
    for _ in 0..100 {
        let s = r.dev.read32(regs::STATUS.offset).unwrap();
        if regs::status::CU_BUSY.get32(s) == 0 && regs::status::CMDQ_BUSY.get32(s) == 0 {
            break;
        }
        r.dev.advance(1_000).unwrap();
    }
    let s = r.dev.read32(regs::STATUS.offset).unwrap();
    assert_eq!(s & 0x1F, 0, "idle, no faults pending, no error after the reset");
    assert_eq!(r.dev.read32(regs::FQ_TAIL.offset).unwrap(), 0);
    assert_eq!(r.dev.read32(regs::KQ_HEAD.offset).unwrap(), 0);
    r.cmdq.after_soft_reset();
    r.fq.after_soft_reset();
    r.kq.after_soft_reset();
    r.map(1, C, PA_C, PAGE, true);
    let cpl = r.run_clean(Kernel::fill(1, C, 64, 9));
    assert_eq!(cpl.status, KernelStatus::Ok);
    assert_eq!(words(&r.dev, PA_C, 64), vec![9; 64]);
}

fn rtl(fq_log2: u32) -> Rig<SimDevice> {
    Rig::with_fq(SimDevice::new(SimConfig::default()).unwrap(), fq_log2)
}

fn model(fq_log2: u32) -> Rig<ModelDevice> {
    Rig::with_fq(ModelDevice::new(Default::default()), fq_log2)
}

/// Each scenario as a test on the RTL (`rtl::name`) and on the model (`model::name`),
/// with a fault queue of 2^n entries.
macro_rules! on_both {
    ($($scenario:ident($fq:expr)),* $(,)?) => {
        mod rtl {
            $(#[test]
            fn $scenario() {
                super::$scenario(super::rtl($fq));
            })*
        }
        mod model {
            $(#[test]
            fn $scenario() {
                super::$scenario(super::model($fq));
            })*
        }
    };
}

on_both!(
    every_operation_is_exact(6),
    translations_match_the_software_walker(6),
    fault_records_are_exact(6),
    concurrent_faults_and_replay_retry(6),
    pte_write_commands_land_before_the_replay_behind_them(6),
    full_fault_queue_back_pressures_without_loss(1),
    invalidation_removes_stale_translations(6),
    asids_are_isolated(6),
    host_window_pages_reach_host_memory(6),
    hardware_sets_accessed_and_dirty(6),
    injected_data_errors_end_with_mem_error(6),
    soft_reset_forgets_stalled_work(6),
);

/// RTL-only: the MMU and compute-unit performance counters count what happened.
#[test]
fn rtl_counters_count_lookups_walks_faults_and_replays() {
    let mut r = rtl(6);
    r.settle_ns = 4_000;
    r.map_range(1, A, PA_A, 4, false);
    let ctr = |r: &mut Rig<SimDevice>, c: u64| r.dev.perf_counter(c as u32).unwrap();
    let (cpl, batches) = r.run(Kernel::copy(1, A, C, 4096), &mut |dev, t, batch| {
        for f in batch {
            let page = f.va & !(PAGE - 1);
            if t.oracle(dev, 1, page, Access::Write).is_err() {
                t.map(dev, 1, page, PA_C + (page - C), PAGE, true);
            }
        }
        Reply::Retry
    });
    assert_eq!(cpl.status, KernelStatus::Ok);
    let records = batches.concat().len() as u64;
    let (hits, misses, walks) = (
        ctr(&mut r, regs::perf_ctr::TLB_HITS),
        ctr(&mut r, regs::perf_ctr::TLB_MISSES),
        ctr(&mut r, regs::perf_ctr::PTW_WALKS),
    );
    // 256 groups, each a load and a store: 512 requests, each looked up once (a RETRY
    // walks again without a lookup).
    assert_eq!(hits + misses, 512, "every request looked up once");
    assert!(misses >= 8 && walks >= misses, "hits {hits} misses {misses} walks {walks}");
    assert_eq!(ctr(&mut r, regs::perf_ctr::FAULTS), records);
    assert_eq!(ctr(&mut r, regs::perf_ctr::REPLAYS), records);
    assert!(ctr(&mut r, regs::perf_ctr::PTW_CYCLES) > walks);
    let busy = ctr(&mut r, regs::perf_ctr::KERNEL_BUSY);
    let stall = ctr(&mut r, regs::perf_ctr::KERNEL_STALL);
    assert!(busy > 0 && stall > 0 && stall < busy, "busy {busy} stall {stall}");
}

/// RTL-only: INVAL ALL commands racing a kernel's walks never change its results
/// (stale walks are dropped and walked again).
#[test]
fn rtl_invalidations_racing_walks_keep_results_exact() {
    let mut r = rtl(6);
    standard_maps(&mut r, 1);
    let av = pattern(4096, 5);
    put_words(&mut r.dev, PA_A, &av);
    for round in 0..3u64 {
        let cmds = vec![Command::Inval(InvalScope::All); 20];
        let (cpl, batches) = r.run_with(Kernel::copy(1, A + round * 4, C, 4000), &cmds, &mut |_, _, b| panic!("{b:?}"));
        assert!(batches.is_empty());
        assert_eq!(cpl.status, KernelStatus::Ok);
        assert_eq!(words(&r.dev, PA_C, 4000), av[round as usize..round as usize + 4000]);
    }
}

/// RTL-only: a soft reset in any cycle of a kernel's first walks (the kernel's fetch,
/// the translation requests, each level's read and check) drains without a stray
/// translation: a walk that finishes in the reset's cycle shows no result afterwards
/// (a slot already forgot its request, `a_tr_rsp_expected`). No assertion fires, and the
/// next kernel runs.
#[test]
fn rtl_a_soft_reset_in_any_cycle_of_a_walk_leaves_no_stray_translation() {
    let mut r = rtl(6);
    standard_maps(&mut r, 1);
    put_words(&mut r.dev, PA_A, &pattern(64, 3));
    for at in 0..900u64 {
        let case = format!("reset {at} cycles after the doorbell");
        r.kq.submit(&mut r.dev, &[Kernel::copy(1, A, C, 64)]).unwrap();
        r.dev.step(at);
        reset_and_resync(&mut r, &case, at as u32);
    }
}

/// Soft-resets the device, waits for the drain, restarts the driver's queues and runs a
/// clean FILL of `v` (it must land).
fn reset_and_resync(r: &mut Rig<SimDevice>, case: &str, v: u32) {
    r.dev.write32(regs::RESET.offset, 1).unwrap();
    let drained = (0..40).any(|_| {
        r.dev.advance(100).unwrap_or_else(|e| panic!("{case}: {e}"));
        let s = r.dev.read32(regs::STATUS.offset).unwrap();
        regs::status::CU_BUSY.get32(s) == 0 && regs::status::CMDQ_BUSY.get32(s) == 0
    });
    assert!(drained, "{case}: drained");
    r.cmdq.after_soft_reset();
    r.fq.after_soft_reset();
    r.kq.after_soft_reset();
    let cpl = r.run_clean(Kernel::fill(1, C, 16, v));
    assert_eq!(cpl.status, KernelStatus::Ok, "{case}");
    assert_eq!(words(&r.dev, PA_C, 16), vec![v; 16], "{case}");
}

/// RTL-only: a soft reset in any cycle of a fault's life — the walk that faults, the
/// record's write to host memory, and (second sweep) the REPLAY RETRY that answers it,
/// its re-walk and the data access — drains with no assertion, and the next kernel runs.
#[test]
fn rtl_a_soft_reset_in_any_cycle_of_a_fault_and_its_replay_drains() {
    const D: u64 = 0x40_0000; // left unmapped: the kernel faults on it
    const PA_D: u64 = 0x130_0000;
    let mut r = rtl(6);
    standard_maps(&mut r, 1);
    for at in (0..1200u64).step_by(2) {
        let case = format!("reset {at} cycles after the faulting kernel's doorbell");
        r.kq.submit(&mut r.dev, &[Kernel::fill(1, D, 64, 1)]).unwrap();
        r.dev.step(at);
        reset_and_resync(&mut r, &case, 7);
    }
    for at in 0..500u64 {
        let case = format!("reset {at} cycles after the REPLAY's doorbell");
        r.kq.submit(&mut r.dev, &[Kernel::fill(1, D, 64, 1)]).unwrap();
        let records = loop {
            r.dev.advance(1_000).unwrap();
            let got = r.fq.drain(&mut r.dev).unwrap();
            if !got.is_empty() {
                break got;
            }
        };
        r.map(1, D, PA_D, PAGE, true);
        let replays: Vec<Command> = records.iter().map(|f| f.replay(false)).collect();
        r.cmdq.submit(&mut r.dev, &replays).unwrap();
        r.dev.step(at);
        reset_and_resync(&mut r, &case, 7);
        r.tables.unmap(&mut r.dev, 1, D);
        r.inval_all();
    }
}

/// RTL-only: descriptors breaking the operand rules end with BAD_DESC without any
/// memory access (written into the ring by hand: the driver refuses to submit them).
#[test]
fn rtl_bad_descriptors_complete_with_bad_desc() {
    let mut dev = SimDevice::new(SimConfig::default()).unwrap();
    let (kq, kq_iova) = host_buffer(&mut dev, 4096);
    let (kcq, kcq_iova) = host_buffer(&mut dev, 4096);
    dev.write64(regs::KQ_BASE_LO.offset, kq_iova).unwrap();
    dev.write32(regs::KQ_SIZE_LOG2.offset, 4).unwrap();
    dev.write64(regs::KCQ_BASE_LO.offset, kcq_iova).unwrap();
    dev.write32(regs::KCQ_SIZE_LOG2.offset, 4).unwrap();
    let good = Kernel::copy(1, A, C, 16).with_tag(7);
    let bad = [
        Kernel { a: A + 2, ..good },                                     // misaligned a
        Kernel { c: C + 1, ..good },                                     // misaligned c
        Kernel { stride: 6, ..Kernel::strided_touch(1, A, 4, 4, None) }, // stride not a multiple of 4
    ];
    for (i, k) in bad.iter().enumerate() {
        kq.write(i * 64, &k.encode()).unwrap();
    }
    let mut raw = good.encode();
    raw[0] = 9; // unknown opcode
    kq.write(3 * 64, &raw).unwrap();
    let mut raw = good.encode();
    raw[1] = 0x80; // reserved FLAGS bit
    kq.write(4 * 64, &raw).unwrap();
    dev.write32(regs::KQ_TAIL.offset, 5).unwrap();
    dev.write32(regs::CTRL.offset, 1 << regs::ctrl::CU_EN.lsb).unwrap();
    dev.advance(100_000).unwrap();
    assert_eq!(dev.read32(regs::KCQ_TAIL.offset).unwrap(), 5);
    for i in 0..5 {
        let mut rec = [0u8; 32];
        kcq.read(i * 32, &mut rec).unwrap();
        let cpl = npu::kernel::KernelCompletion::decode(&rec).unwrap();
        assert_eq!((cpl.status, cpl.done), (KernelStatus::BadDesc, 0), "descriptor {i}");
    }
    assert_eq!(dev.perf_counter(regs::perf_ctr::TLB_MISSES as u32).unwrap(), 0, "no access made");
    let st = dev.read32(regs::INT_STATUS.offset).unwrap();
    assert_eq!(st >> regs::int_cause::KERNEL & 1, 1, "a failed kernel raises KERNEL");
}
