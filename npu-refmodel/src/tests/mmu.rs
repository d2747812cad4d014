//! Translation seen through kernels: 4 KiB, 2 MiB and host-window pages against the
//! software walker, ASID isolation, A/D update, injected walk errors and PTW hang.

use super::rig::{Fr, Kd, Rig};
use npu::regs::{self, fault_cause as fc, kernel_opcode as op, kernel_status as ks, pte_bit as pb};
use npu::sv39::{Access, HOST_WINDOW, HUGE, PAGE, Pte};

fn touch(asid: u16, va: u64, count: u32, stride: u32) -> Kd {
    Kd { op: op::STRIDED_TOUCH, asid, count, stride, a: va, ..Kd::default() }
}

/// The word at the oracle's translation of `va` (device memory or host page `page`).
fn word_at(r: &mut Rig, pa: u64, host_iova: u64, page: usize) -> u32 {
    if pa >= HOST_WINDOW {
        r.host_page_buf(page).read_u32((pa - HOST_WINDOW - host_iova) as usize).unwrap()
    } else {
        r.words(pa, 1)[0]
    }
}

#[test]
fn small_huge_and_host_window_pages_translate_like_the_oracle() {
    let mut r = Rig::new();
    r.new_root(2);
    let (page, iova) = r.host_page();
    r.map(2, 0x1000_0000, 0x30_0000, PAGE, true);
    r.map(2, 0x4020_0000, 0x40_0000, HUGE, true);
    r.map(2, 0x3F_FFFF_F000, HOST_WINDOW + iova, PAGE, true);
    r.put_words(0x30_0000, &(0..1024).map(|i| 0x1000 + i).collect::<Vec<_>>());
    r.put_words(0x40_0000, &(0..(HUGE as u32 / 4)).map(|i| 0x10_0000 + i).collect::<Vec<_>>());
    let host: Vec<u8> = (0..1024u32).flat_map(|i| (0x20_0000 + i).to_le_bytes()).collect();
    r.host_page_buf(page).write(0, &host).unwrap();
    // Loads: RESULT is the sum of the words the oracle's translations name.
    for (va, count, stride) in [(0x1000_0000, 9, 500), (0x4020_0000, 40, 0xC000 + 4), (0x3F_FFFF_F000, 8, 508)] {
        let c = r.run(touch(2, va, count, stride));
        let mut want = 0u64;
        for i in 0..u64::from(count) {
            let t = r.oracle(2, va + i * u64::from(stride), Access::Read).unwrap();
            want += u64::from(word_at(&mut r, t.pa, iova, page));
        }
        assert_eq!((c.status, c.result, c.done), (ks::OK, want, count), "loads from {va:#x}");
    }
    // Stores land where the oracle says.
    for (va, stride) in [(0x1000_0FF0u64, 4u32), (0x403F_FFF0, 4), (0x3F_FFFF_FFF0, 4)] {
        let c = r.run(Kd { flags: 1 << regs::kernel_flag::WRITE, scalar: 0xC0DE, ..touch(2, va, 4, stride) });
        assert_eq!(c.status, ks::OK);
        for i in 0..4 {
            let t = r.oracle(2, va + i * 4, Access::Write).unwrap();
            assert_eq!(word_at(&mut r, t.pa, iova, page), 0xC0DE, "store to {:#x}", va + i * 4);
        }
    }
}

#[test]
fn address_spaces_are_isolated() {
    let mut r = Rig::new();
    for asid in [1, 2] {
        r.new_root(asid);
        let pa = 0x50_0000 + u64::from(asid) * PAGE;
        r.map(asid, 0x2000, pa, PAGE, true);
        r.put_words(pa, &[asid * 100]);
    }
    assert_eq!(r.run(touch(1, 0x2000, 1, 0)).result, 100);
    assert_eq!(r.run(touch(2, 0x2000, 1, 0)).result, 200);
    // ASID 3 has no valid root, ASID 16 does not exist; MMU_EN = 0 disables every ASID.
    let invalid =
        |asid, seq| Fr { reqid: 0x100, cause: fc::ASID_INVALID, write: false, level: 2, asid, seq, va: 0x2000, pte: 0 };
    for (asid, seq) in [(3, 0), (16, 1)] {
        r.submit(&[touch(asid, 0x2000, 1, 0)]);
        r.step();
        assert_eq!(r.faults(), [invalid(asid, seq)]);
        r.replay(&[0x100], true);
        r.step();
        assert_eq!(r.completions()[0].status, ks::FAULT_ABORT);
    }
    r.ctrl(regs::ctrl::MMU_EN, false);
    r.submit(&[touch(1, 0x2000, 1, 0)]);
    r.step();
    assert_eq!(r.faults(), [invalid(1, 2)]);
    r.ctrl(regs::ctrl::MMU_EN, true);
    r.replay(&[0x100], false);
    r.step();
    assert_eq!(r.completions()[0].result, 100, "the retry translates once the MMU is enabled");
}

#[test]
fn walker_sets_accessed_and_dirty() {
    let mut r = Rig::new();
    r.new_root(1);
    r.map(1, 0x8000, 0x60_0000, PAGE, true);
    let at = r.leaf_pte_addr(1, 0x8000);
    let bare = Pte::leaf(0x60_0000, true).0 & !(1 << pb::A | 1 << pb::D) | 1 << 8; // RSW bit kept
    r.set_pte(at, bare);
    assert!(r.oracle(1, 0x8000, Access::Read).unwrap().needs_ad_update);
    assert_eq!(r.run(touch(1, 0x8000, 1, 0)).status, ks::OK);
    assert_eq!(r.pte(at), bare | 1 << pb::A, "a read sets A only");
    let c = r.run(Kd { flags: 1 << regs::kernel_flag::WRITE, ..touch(1, 0x8004, 1, 0) });
    assert_eq!(c.status, ks::OK);
    assert_eq!(r.pte(at), bare | 1 << pb::A | 1 << pb::D, "a write sets D");
    assert!(!r.oracle(1, 0x8000, Access::Write).unwrap().needs_ad_update);
}

#[test]
fn injected_walk_errors_and_walker_hang() {
    let mut r = Rig::new();
    r.new_root(1);
    r.map(1, 0x8000, 0x60_0000, PAGE, true);
    r.put_words(0x60_0000, &[5]);
    r.wr(regs::ERRINJ_PTW, 1);
    r.submit(&[touch(1, 0x8000, 1, 0)]);
    r.step();
    let f = Fr { reqid: 0x100, cause: fc::READ_ACCESS, write: false, level: 2, asid: 1, seq: 0, va: 0x8000, pte: 0 };
    assert_eq!(r.faults(), [f]);
    assert_eq!(r.rd(regs::ERRINJ_PTW), 0);
    r.replay(&[0x100], false);
    r.step();
    assert_eq!(r.completions()[0].result, 5);
    // A hung walker translates nothing: the kernel makes no progress and raises nothing.
    r.wr(regs::ERRINJ_HANG, 1 << regs::errinj_hang::PTW.lsb);
    r.irqs();
    r.submit(&[touch(1, 0x8000, 1, 0)]);
    r.step();
    assert_eq!((r.rd(regs::STATUS), r.irqs()), (1 << regs::status::CU_BUSY.lsb, 0));
    r.wr(regs::ERRINJ_HANG, 0);
    r.step();
    assert_eq!(r.completions()[0].result, 5);
}
