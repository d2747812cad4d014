//! Translation faults: records, concurrent faults of one kernel, fault-queue back
//! pressure, REPLAY retry and abort, and soft reset of stalled work.

use super::rig::{Fr, Kd, Rig, batch, word};
use npu::DeviceIo;
use npu::regs::{self, fault_cause as fc, kernel_opcode as op, kernel_status as ks};
use npu::sv39::{Access, PAGE, Pte};

const VA: u64 = 0x1000_0000;
const PA: u64 = 0x20_0000;

/// ASID 1: a (VA .. +8 KiB) is unmapped, c (VA + 0x10000 .. +8 KiB) is mapped.
fn rig_with(fq_log2: u32) -> Rig {
    let mut r = Rig::with_rings(fq_log2, 4);
    r.new_root(1);
    r.map_range(1, VA + 0x10000, PA + 0x10000, 2);
    r.put_words(PA, &(0..2048).map(word).collect::<Vec<_>>());
    r
}

fn copy(count: u32) -> Kd {
    Kd { op: op::COPY, asid: 1, tag: 0x77, count, a: VA, c: VA + 0x10000, ..Kd::default() }
}

fn status(r: &mut Rig) -> (u32, u32) {
    let s = r.rd(regs::STATUS);
    (regs::status::CU_BUSY.get32(s), regs::status::FAULTS_PENDING.get32(s))
}

/// The record the first load of slot `slot` (group `slot`) gives on the unmapped a.
fn unmapped(r: &mut Rig, slot: u16, seq: u32) -> Fr {
    let va = VA + 64 * u64::from(slot);
    let f = r.oracle(1, va, Access::Read).unwrap_err();
    Fr { reqid: 0x100 | slot, cause: f.cause, write: false, level: f.level, asid: 1, seq, va, pte: f.pte.0 }
}

#[test]
fn four_slots_fault_at_once_and_retry_after_mapping() {
    let mut r = rig_with(4);
    r.submit(&[copy(128)]);
    r.step();
    assert_eq!(r.irqs(), 1 << regs::int_cause::FAULT);
    let got = batch(r.faults(), 0);
    let want: Vec<Fr> = (0..4).map(|s| unmapped(&mut r, s, u32::from(s))).collect();
    assert_eq!(got, want);
    assert_eq!(want[0].cause, fc::READ_PAGE);
    assert_eq!((want[0].level, want[0].pte), (0, 0), "a's leaf PTE is empty (c shares its tables)");
    assert_eq!(status(&mut r), (1, 1));
    r.step();
    assert!(r.faults().is_empty(), "stalled slots wait; groups 4.. wait for slot 0");
    r.map_range(1, VA, PA, 2);
    r.replay(&[0x100, 0x101, 0x102, 0x103], false);
    r.step();
    let c = r.completions();
    assert_eq!((c[0].tag, c[0].status, c[0].done), (0x77, ks::OK, 128));
    assert_eq!(r.words(PA + 0x10000, 128), r.words(PA, 128));
    assert_eq!(status(&mut r), (0, 0));
    assert_eq!(r.dev.read64(regs::PERF_LO.at(regs::perf_ctr::FAULTS as u32).unwrap()).unwrap(), 4);
    assert_eq!(r.dev.read64(regs::PERF_LO.at(regs::perf_ctr::REPLAYS as u32).unwrap()).unwrap(), 4);
}

#[test]
fn full_fault_queue_back_pressures_without_dropping() {
    let mut r = rig_with(1);
    r.submit(&[copy(128)]);
    r.step();
    let mut all = Vec::new();
    for i in 0..5 {
        assert_eq!(status(&mut r), (1, 1));
        let f = r.faults();
        assert_eq!(f.len(), 1, "one record fits a 2-entry ring (batch {i})");
        assert_eq!(f[0].seq, i, "SEQ runs on");
        all.extend(f);
        if i == 0 {
            // Slot 0 retries and faults again: its new record queues behind slots 1-3.
            r.replay(&[0x100], false);
        }
        r.step();
    }
    assert!(r.faults().is_empty());
    assert_eq!(
        all.iter().map(|f| f.reqid).collect::<Vec<_>>(),
        [0x100, 0x101, 0x102, 0x103, 0x100],
        "records follow the stalls"
    );
    all.pop();
    assert_eq!(batch(all, 0), (0..4).map(|s| unmapped(&mut r, s, u32::from(s))).collect::<Vec<_>>());
    // With FQ_EN = 0 the record is held, and written when the queue is enabled again.
    r.replay(&[0x100], false);
    r.ctrl(regs::ctrl::FQ_EN, false);
    r.step();
    assert_eq!(r.rd(regs::FQ_TAIL), r.rd(regs::FQ_HEAD), "nothing written while FQ_EN = 0");
    assert_eq!(status(&mut r), (1, 1));
    r.ctrl(regs::ctrl::FQ_EN, true);
    r.step();
    assert_eq!(r.faults(), [unmapped(&mut r, 0, 5)], "the retry faulted again");
}

#[test]
fn abort_fails_the_kernel_with_the_first_failure() {
    let mut r = rig_with(4);
    // a's first page is mapped, its second is not: groups 0-63 complete, 64-67 fault.
    r.map_range(1, VA, PA, 1);
    r.submit(&[copy(2048)]);
    r.step();
    let f = batch(r.faults(), 0);
    assert_eq!(
        f.iter().map(|f| (f.reqid, f.va, f.level)).collect::<Vec<_>>(),
        (0..4u16).map(|s| (0x100 | s, VA + PAGE + 64 * u64::from(s), 0)).collect::<Vec<_>>()
    );
    r.replay(&[0x101], true);
    r.replay(&[0x100, 0x102, 0x103], false);
    r.step();
    let again = batch(r.faults(), 4);
    assert_eq!(
        again.iter().map(|f| f.reqid).collect::<Vec<_>>(),
        [0x100, 0x102, 0x103],
        "retries fault again; no new group started"
    );
    assert!(r.completions().is_empty(), "the kernel waits for its stalled slots");
    r.replay(&[0x100, 0x102, 0x103], true);
    r.step();
    let c = r.completions();
    assert_eq!(
        (c[0].status, c[0].fault_va, c[0].done),
        (ks::FAULT_ABORT, VA + PAGE + 64, 1024),
        "the first abort names the VA"
    );
    assert_eq!(r.irqs(), 1 << regs::int_cause::FAULT | 1 << regs::int_cause::KERNEL);
    assert_eq!(status(&mut r), (0, 0));
    // A REPLAY for a slot that waits for nothing is ignored.
    r.replay(&[0x100, 0x1FF, 0x200], true);
    r.step();
    assert_eq!(r.rd(regs::ERR_INFO), 0);
}

#[test]
fn write_to_read_only_page_and_reduce_store_fault_in_slot_0() {
    let mut r = rig_with(4);
    r.map(1, VA, PA, PAGE, false);
    // REDUCE_SUM's final store of c[0] is slot 0's request after every group.
    let k = Kd { op: op::REDUCE_SUM, asid: 1, count: 100, a: VA, c: VA + 0x800, ..Kd::default() };
    r.submit(&[k]);
    r.step();
    let f = r.faults();
    let oracle = r.oracle(1, VA + 0x800, Access::Write).unwrap_err();
    let pte = Pte::leaf(PA, false).0;
    assert_eq!(
        f,
        [Fr { reqid: 0x100, cause: fc::WRITE_PAGE, write: true, level: 0, asid: 1, seq: 0, va: VA + 0x800, pte }]
    );
    assert_eq!((oracle.cause, oracle.level, oracle.pte.0), (fc::WRITE_PAGE, 0, pte));
    // Make the page writable (no invalidation needed to add rights) and retry.
    let at = r.leaf_pte_addr(1, VA);
    r.set_pte(at, Pte::leaf(PA, true).0);
    r.replay(&[0x100], false);
    r.step();
    let sum: u64 = (0..100).map(|i| u64::from(word(i))).sum();
    let c = r.completions();
    assert_eq!((c[0].status, c[0].result, c[0].done), (ks::OK, sum, 100));
    assert_eq!(r.words(PA + 0x800, 1), [sum as u32]);
    // The same store aborted: DONE still counts every group.
    r.set_pte(at, Pte::leaf(PA, false).0);
    r.submit(&[k]);
    r.step();
    assert_eq!(r.faults().len(), 1);
    r.replay(&[0x100], true);
    r.step();
    let c = r.completions();
    assert_eq!((c[0].status, c[0].fault_va, c[0].done, c[0].result), (ks::FAULT_ABORT, VA + 0x800, 100, sum));
}

#[test]
fn failed_record_write_stops_the_fault_unit() {
    let mut r = rig_with(4);
    let (_, fq, _, _) = r.ring_iovas();
    r.dev.dma_unmap(fq).unwrap();
    r.submit(&[copy(16)]);
    r.step();
    assert_eq!(r.rd(regs::ERR_INFO), 1 << 8 | regs::dma_error::CPL_WRITE as u32);
    assert_eq!(r.rd(regs::FQ_TAIL), 0);
    assert_eq!(r.irqs(), 1 << regs::int_cause::ERROR);
    assert_eq!(status(&mut r), (1, 1), "the request stays stalled");
}

#[test]
fn soft_reset_forgets_stalled_work_and_restarts_seq() {
    let mut r = rig_with(4);
    r.submit(&[copy(128)]);
    r.replay(&[0x100], false);
    r.step();
    assert_eq!(r.faults().len(), 4);
    assert_eq!(r.rd(regs::CMDQ_HEAD), 1);
    r.soft_reset();
    for reg in [
        regs::STATUS,
        regs::INT_STATUS,
        regs::FQ_TAIL,
        regs::KQ_HEAD,
        regs::KCQ_TAIL,
        regs::CMDQ_HEAD,
        regs::FQ_HEAD,
        regs::KQ_TAIL,
    ] {
        assert_eq!(r.rd(reg), 0, "{} after soft reset", reg.name);
    }
    r.step();
    assert!(r.completions().is_empty(), "the kernel was forgotten");
    r.submit(&[copy(16)]);
    r.step();
    assert_eq!(r.faults(), [unmapped(&mut r, 0, 0)], "SEQ starts again at 0");
}
