//! Compute-unit kernels without faults: results, operand checks, memory errors, the
//! completion queue and device errors.

use super::rig::{Kd, Rig, word};
use npu::DeviceIo;
use npu::regs::{self, kernel_opcode as op, kernel_status as ks};

const VA: u64 = 0x1000_0000;
const PA: u64 = 0x20_0000;
const N: usize = 1500;
const A: u64 = VA + 0x10;
const B: u64 = VA + 0x2008;
const C: u64 = VA + 0x4004;
const GUARD: u32 = 0xA5A5_A5A5;

/// c[i] from a, b and i.
type Expect = fn(&[u32], &[u32], usize) -> u32;

fn pa(va: u64) -> u64 {
    PA + (va - VA)
}

/// ASID 1 maps 8 pages at VA to device memory at PA.
fn rig() -> Rig {
    let mut r = Rig::new();
    r.new_root(1);
    r.map_range(1, VA, PA, 8);
    r
}

fn load_operands(r: &mut Rig, b: &[u32]) -> Vec<u32> {
    let a: Vec<u32> = (0..N).map(word).collect();
    r.put_words(pa(A), &a);
    r.put_words(pa(B), b);
    r.put_words(pa(C) - 64, &vec![GUARD; N + 32]);
    a
}

#[test]
fn every_operation_matches_plain_rust() {
    let mut r = rig();
    let b: Vec<u32> = (0..N).map(|i| word(i + 7)).collect();
    let idx: Vec<u32> = (0..N).map(|i| word(i + 3) % N as u32).collect();
    let k = |op, b, scalar| Kd { op, asid: 1, tag: op as u16, count: N as u32, a: A, b, c: C, scalar, ..Kd::default() };
    let cases: [(Kd, &[u32], Expect); 5] = [
        (k(op::COPY, B, 0), &b, |a, _, i| a[i]),
        (k(op::FILL, B, 0xF00D), &b, |_, _, _| 0xF00D),
        (k(op::ADD, B, 0), &b, |a, b, i| a[i].wrapping_add(b[i])),
        (k(op::SCALE, B, 0x1_0003), &b, |a, _, i| a[i].wrapping_mul(0x1_0003)),
        (k(op::GATHER, B, 0), &idx, |a, b, i| a[b[i] as usize]),
    ];
    for (kd, bv, f) in cases {
        let a = load_operands(&mut r, bv);
        let c = r.run(kd);
        assert_eq!(
            c,
            super::rig::Kc { tag: kd.tag, status: ks::OK, asid: 1, result: 0, fault_va: 0, done: N as u32 },
            "{kd:?}"
        );
        let got = r.words(pa(C) - 64, N + 32);
        assert_eq!(&got[..16], &[GUARD; 16], "guard below c, op {}", kd.op);
        assert_eq!(&got[16 + N..], &[GUARD; 16], "guard above c, op {}", kd.op);
        for i in 0..N {
            assert_eq!(got[16 + i], f(&a, bv, i), "op {} element {i}", kd.op);
        }
    }
    // REDUCE_SUM, with and without the store of c[0].
    let a = load_operands(&mut r, &b);
    let sum: u64 = a.iter().map(|&w| u64::from(w)).sum();
    let c = r.run(Kd { op: op::REDUCE_SUM, asid: 1, count: N as u32, a: A, c: C, ..Kd::default() });
    assert_eq!((c.status, c.result, c.done), (ks::OK, sum, N as u32));
    assert_eq!(r.words(pa(C) - 4, 3), [GUARD, sum as u32, GUARD]);
    let c = r.run(Kd { op: op::REDUCE_SUM, asid: 1, count: N as u32, a: A, c: 0, ..Kd::default() });
    assert_eq!((c.status, c.result), (ks::OK, sum));
    // STRIDED_TOUCH: loads of every third word, then stores.
    let touch = Kd { op: op::STRIDED_TOUCH, asid: 1, count: 500, stride: 12, a: A, scalar: 0x5EED, ..Kd::default() };
    let c = r.run(touch);
    assert_eq!((c.status, c.result, c.done), (ks::OK, (0..500).map(|i| u64::from(a[3 * i])).sum(), 500));
    let c = r.run(Kd { flags: 1 << regs::kernel_flag::WRITE, ..touch });
    assert_eq!((c.status, c.result, c.done), (ks::OK, 0, 500));
    let got = r.words(pa(A), N);
    for (i, &w) in got.iter().enumerate() {
        assert_eq!(w, if i % 3 == 0 { 0x5EED } else { a[i] }, "word {i}");
    }
}

#[test]
fn bad_descriptors_end_at_once_and_empty_kernels_complete() {
    let mut r = rig();
    load_operands(&mut r, &[0; N]);
    let copy = Kd { op: op::COPY, asid: 1, tag: 9, count: 16, a: A, c: C, ..Kd::default() };
    let bad = [
        Kd { op: 0, ..copy },
        Kd { op: 8, ..copy },
        Kd { flags: 1 << 2, ..copy },
        Kd { a: A + 2, ..copy },
        Kd { c: C + 1, ..copy },
        Kd { op: op::ADD, b: B + 2, ..copy },
        Kd { op: op::STRIDED_TOUCH, stride: 6, ..copy },
        Kd { op: op::REDUCE_SUM, c: C + 2, ..copy },
    ];
    r.irqs();
    for kd in bad {
        let c = r.run(kd);
        assert_eq!(
            c,
            super::rig::Kc { tag: 9, status: ks::BAD_DESC, asid: 1, result: 0, fault_va: 0, done: 0 },
            "{kd:?}"
        );
        assert_eq!(r.irqs(), 1 << regs::int_cause::KERNEL, "a status other than OK interrupts");
    }
    assert_eq!(r.words(pa(C), 16), [GUARD; 16], "no access");
    // Operands a FILL does not use need no alignment; COUNT = 0 accesses nothing.
    let c = r.run(Kd { op: op::FILL, a: 3, b: 5, count: 0, ..copy });
    assert_eq!((c.status, c.done), (ks::OK, 0));
    assert_eq!(r.irqs(), 0, "OK without FLAGS.IRQ does not interrupt");
    let c = r.run(Kd { op: op::REDUCE_SUM, count: 0, flags: 1, ..copy });
    assert_eq!((c.status, c.result), (ks::OK, 0));
    assert_eq!(r.irqs(), 1 << regs::int_cause::KERNEL);
    assert_eq!(r.words(pa(C), 1), [GUARD], "COUNT = 0: REDUCE_SUM stores nothing");
}

#[test]
fn data_errors_fail_with_mem_error() {
    let mut r = rig();
    // Host window: a page mapped, read, then unmapped under the device.
    let (page, iova) = r.host_page();
    r.host_page_buf(page).write(0, &[7, 0, 0, 0, 8, 0, 0, 0]).unwrap();
    r.map(1, 0x3000_0000, npu::sv39::HOST_WINDOW + iova, npu::sv39::PAGE, true);
    let sum = Kd { op: op::REDUCE_SUM, asid: 1, count: 2, a: 0x3000_0000, c: C, ..Kd::default() };
    assert_eq!(r.run(sum).result, 15);
    assert_eq!(r.words(pa(C), 1), [15], "stored in device memory");
    r.run(Kd { op: op::FILL, asid: 1, count: 4, c: 0x3000_0008, scalar: 3, ..Kd::default() });
    assert_eq!(r.host_page_buf(page).read_u64(8).unwrap(), 3 | 3 << 32, "stored through the host window");
    r.dev.dma_unmap(iova).unwrap();
    let c = r.run(sum);
    assert_eq!((c.status, c.fault_va, c.done, c.result), (ks::MEM_ERROR, 0x3000_0000, 0, 0));
    // An injected device-port write error fails slot 0's store; slots 1-3 finish their
    // groups and no later group starts.
    let a: Vec<u32> = (0..256).map(word).collect();
    r.put_words(PA, &a);
    r.put_words(PA + 0x4000, &[0; 256]);
    r.wr(regs::ERRINJ_DEV_WR, 1);
    let c = r.run(Kd { op: op::COPY, asid: 1, count: 256, a: VA, c: VA + 0x4000, ..Kd::default() });
    assert_eq!((c.status, c.fault_va, c.done), (ks::MEM_ERROR, VA + 0x4000, 48));
    assert_eq!(r.rd(regs::ERRINJ_DEV_WR), 0);
    let got = r.words(PA + 0x4000, 80);
    assert_eq!(&got[..16], &[0; 16], "the injected store wrote nothing");
    assert_eq!(&got[16..64], &a[16..64], "groups 1-3 completed");
    assert_eq!(&got[64..], &[0; 16], "group 4 never started");
    // An injected device-port read error on slot 0's load; slots 1 and 2 had started
    // their single-element groups and finish them.
    r.wr(regs::ERRINJ_DEV_RD, 1);
    let c = r.run(Kd { op: op::STRIDED_TOUCH, asid: 1, count: 8, stride: 4, a: VA, ..Kd::default() });
    let want = u64::from(a[1]) + u64::from(a[2]) + u64::from(a[3]);
    assert_eq!((c.status, c.fault_va, c.done, c.result), (ks::MEM_ERROR, VA, 3, want));
}

#[test]
fn completion_queue_full_waits_and_ring_errors_stop_the_unit() {
    let mut r = Rig::with_rings(4, 1);
    r.new_root(1);
    r.map_range(1, VA, PA, 8);
    let fill = |tag| Kd { op: op::FILL, asid: 1, tag, count: 4, c: C, scalar: 1, ..Kd::default() };
    r.submit(&[fill(1), fill(2)]);
    r.step();
    assert_eq!(r.rd(regs::KCQ_TAIL), 1, "a 2-entry ring holds one completion");
    assert_eq!(regs::status::CU_BUSY.get32(r.rd(regs::STATUS)), 1, "the second kernel waits");
    assert_eq!(r.completions().iter().map(|c| c.tag).collect::<Vec<_>>(), [1]);
    r.step();
    assert_eq!(r.completions().iter().map(|c| c.tag).collect::<Vec<_>>(), [2]);
    assert_eq!(r.rd(regs::STATUS), 0, "idle");
    // KCPL write error: the completion ring is unmapped.
    let (_, _, kq, kcq) = r.ring_iovas();
    r.dev.dma_unmap(kcq).unwrap();
    r.irqs();
    r.submit(&[fill(3), fill(4)]);
    r.step();
    assert_eq!(r.rd(regs::ERR_INFO), 2 << 8 | regs::dma_error::CPL_WRITE as u32);
    assert_eq!(r.irqs(), 1 << regs::int_cause::ERROR);
    assert_eq!(r.rd(regs::KQ_HEAD), 3, "the unit stopped after the first kernel");
    assert_eq!(r.rd(regs::STATUS), 1 << regs::status::CU_BUSY.lsb | 1 << regs::status::ERROR.lsb);
    // KDESC fetch error after soft reset.
    r.soft_reset();
    assert_eq!(r.rd(regs::STATUS), 0);
    r.dev.dma_unmap(kq).unwrap();
    r.submit(&[fill(5)]);
    r.step();
    assert_eq!(r.rd(regs::ERR_INFO), 2 << 8 | regs::dma_error::DESC_FETCH as u32);
    assert_eq!(r.rd(regs::KQ_HEAD), 1, "HEAD moves past the entry it could not fetch");
}

#[test]
fn hang_stops_the_unit_until_cleared() {
    let mut r = rig();
    r.wr(regs::ERRINJ_HANG, 1 << regs::errinj_hang::CU.lsb);
    r.submit(&[Kd { op: op::FILL, asid: 1, count: 4, c: C, scalar: 1, ..Kd::default() }]);
    r.step();
    assert_eq!(r.rd(regs::KQ_HEAD), 0, "nothing fetched");
    assert_eq!(r.rd(regs::STATUS), 1 << regs::status::CU_BUSY.lsb);
    r.wr(regs::ERRINJ_HANG, 0);
    r.step();
    assert_eq!(r.completions()[0].status, ks::OK);
}
