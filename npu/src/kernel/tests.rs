use super::*;
use crate::fake_io::{CsrOp, FakeIo};
use proptest::prelude::*;

const CU_EN: u32 = 1 << 3;
const OTHER_CTRL: u32 = 0b1_0011; // MMU_EN | FQ_EN | CMDQ_EN

/// A queue of 4 entries (3 in flight) on a fake device, with the KCQ's IOVA.
fn setup() -> (FakeIo, KernelQueue, u64) {
    let mut io = FakeIo::new();
    let q = KernelQueue::init(&mut io, 2).unwrap();
    let kcq = u64::from(io.regs[&regs::KCQ_BASE_LO.offset]) | u64::from(io.regs[&regs::KCQ_BASE_HI.offset]) << 32;
    (io, q, kcq)
}

fn ok(tag: u16, asid: u16, done: u32) -> KernelCompletion {
    KernelCompletion { tag, status: KernelStatus::Ok, asid, result: 0, fault_va: 0, done, index: 0 }
}

/// Plays the device: writes `c` at KCQ `slot` and moves KCQ_TAIL past it.
fn complete(io: &mut FakeIo, kcq: u64, slot: u16, c: &KernelCompletion) {
    io.device_write(kcq + u64::from(slot) * 32, &c.encode());
    io.regs.insert(regs::KCQ_TAIL.offset, u32::from((slot + 1) % 4));
}

fn add(tag: u16) -> Kernel {
    Kernel::add(3, 0x1000, 0x2000, 0x3000, 16).with_tag(tag)
}

#[test]
fn descriptors_encode_per_the_record_layout() {
    let r = Kernel::add(7, 0x1_0000, 0x2_0000, 0x3_0000, 100).with_tag(0xBEEF).with_irq().encode();
    assert_eq!((r[0], r[1]), (3, 0b01), "ADD, IRQ");
    assert_eq!(u16::from_le_bytes([r[2], r[3]]), 7);
    assert_eq!(u16::from_le_bytes([r[4], r[5]]), 0xBEEF);
    assert_eq!(&r[6..8], &[0, 0]);
    assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 100);
    assert_eq!(u64::from_le_bytes(r[16..24].try_into().unwrap()), 0x1_0000);
    assert_eq!(u64::from_le_bytes(r[24..32].try_into().unwrap()), 0x2_0000);
    assert_eq!(u64::from_le_bytes(r[32..40].try_into().unwrap()), 0x3_0000);
    assert_eq!(&r[40..], &[0u8; 24]);
    let t = Kernel::strided_touch(1, 0x4000, 4096, 8, Some(0xA5A5_0001)).encode();
    assert_eq!((t[0], t[1]), (7, 0b10), "STRIDED_TOUCH, WRITE");
    assert_eq!(u32::from_le_bytes(t[12..16].try_into().unwrap()), 4096);
    assert_eq!(u32::from_le_bytes(t[40..44].try_into().unwrap()), 0xA5A5_0001);
    let f = Kernel::fill(0, 0x8000, 4, 9).encode();
    assert_eq!((f[0], u32::from_le_bytes(f[40..44].try_into().unwrap())), (2, 9));
    for (k, code) in [
        (Kernel::copy(0, 0, 0, 1), 1),
        (Kernel::scale(0, 0, 0, 1, 3), 4),
        (Kernel::reduce_sum(0, 0, 0, 1), 5),
        (Kernel::gather(0, 0, 0, 0, 1), 6),
    ] {
        assert_eq!(k.encode()[0], code, "{:?}", k.op);
    }
}

#[test]
fn kdesc_decode_refuses_what_the_device_calls_bad_desc() {
    let mut r = add(1).encode();
    r[0] = 0x08;
    assert_eq!(Kernel::decode(&r), Err(RecordError::UnknownOpcode { opcode: 8 }));
    let mut r = add(1).encode();
    r[1] = 0b100;
    assert_eq!(Kernel::decode(&r), Err(RecordError::ReservedBit { record: "KDESC", bit: 10 }));
    let mut r = add(1).encode();
    r[63] = 0xFF; // reserved, ignored when read
    assert_eq!(Kernel::decode(&r), Ok(add(1)));
    assert_eq!(Kernel::decode(&r[..32]), Err(RecordError::Length { record: "KDESC", expected: 64, got: 32 }));
}

#[test]
fn validate_checks_the_operand_rules() {
    let mis = |k: Kernel| match k.validate() {
        Err(KernelError::Misaligned { operand, va, .. }) => Some((operand, va)),
        Ok(()) => None,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(mis(Kernel::add(0, 0x1002, 0x2000, 0x3000, 1)), Some(('A', 0x1002)));
    assert_eq!(mis(Kernel::add(0, 0x1000, 0x2001, 0x3000, 1)), Some(('B', 0x2001)));
    assert_eq!(mis(Kernel::gather(0, 0x1000, 0x2003, 0x3000, 1)), Some(('B', 0x2003)));
    assert_eq!(mis(Kernel::fill(0, 0x3002, 1, 0)), Some(('C', 0x3002)));
    assert_eq!(mis(Kernel::reduce_sum(0, 0x1000, 0x3001, 1)), Some(('C', 0x3001)));
    // Operands the operation does not use may hold anything.
    assert_eq!(mis(Kernel { b: 0x7, ..Kernel::copy(0, 0x1000, 0x3000, 1) }), None);
    assert_eq!(mis(Kernel { a: 0x7, b: 0x7, ..Kernel::fill(0, 0x3000, 1, 0) }), None);
    assert_eq!(mis(Kernel { b: 0x7, c: 0x7, ..Kernel::strided_touch(0, 0x1000, 8, 1, None) }), None);
    assert_eq!(mis(Kernel::reduce_sum(0, 0x1000, 0, 1)), None, "C = 0: no store");
    let err = Kernel::strided_touch(0, 0x1000, 6, 2, None).with_tag(9).validate().unwrap_err();
    assert!(matches!(err, KernelError::BadStride { tag: 9, stride: 6 }), "{err}");
    assert_eq!(err.to_string(), "kernel tag 0x0009 (StridedTouch): stride 0x6 is not a multiple of 4");
    assert!(Kernel { stride: 3, ..add(0) }.validate().is_ok(), "STRIDE only matters to StridedTouch");
}

#[test]
fn completion_decode_checks_every_rule() {
    let c = KernelCompletion {
        tag: 0x1234,
        status: KernelStatus::MemError,
        asid: 5,
        result: 1 << 40,
        fault_va: 0xdead_0000,
        done: 7,
        index: 0,
    };
    let r = c.encode();
    assert_eq!(u16::from_le_bytes([r[0], r[1]]), 0x1234);
    assert_eq!(r[2], 3);
    assert_eq!(u16::from_le_bytes([r[4], r[5]]), 5);
    assert_eq!(u64::from_le_bytes(r[8..16].try_into().unwrap()), 1 << 40);
    assert_eq!(u64::from_le_bytes(r[16..24].try_into().unwrap()), 0xdead_0000);
    assert_eq!(u32::from_le_bytes(r[24..28].try_into().unwrap()), 7);
    assert_eq!(KernelCompletion::decode(&r), Ok(c));

    let mut bad = r;
    bad[2] = 4;
    assert_eq!(KernelCompletion::decode(&bad), Err(RecordError::UnknownStatus { status: 4 }));
    for (byte, bit) in [(3, 24), (6, 48), (7, 56), (28, 224), (31, 248)] {
        let mut bad = r;
        bad[byte] = 1 << (bit % 8);
        assert_eq!(KernelCompletion::decode(&bad), Err(RecordError::ReservedBit { record: "KCPL", bit }));
    }
    for status in [KernelStatus::Ok, KernelStatus::BadDesc] {
        let err = KernelCompletion::decode(&KernelCompletion { status, ..c }.encode()).unwrap_err();
        assert_eq!(err, RecordError::StrayFaultVa { status, fault_va: 0xdead_0000 });
    }
    assert_eq!(
        KernelCompletion::decode(&KernelCompletion { status: KernelStatus::FaultAbort, ..c }.encode())
            .map(|d| d.status),
        Ok(KernelStatus::FaultAbort)
    );
    assert_eq!(KernelCompletion::decode(&[0; 31]), Err(RecordError::Length { record: "KCPL", expected: 32, got: 31 }));
    assert_eq!(
        RecordError::StrayFaultVa { status: KernelStatus::Ok, fault_va: 0x40 }.to_string(),
        "KCPL record: FAULT_VA is 0x40 but status Ok names no failed access"
    );
}

#[test]
fn init_programs_the_rings_and_keeps_other_ctrl_bits() {
    let mut io = FakeIo::new();
    io.regs.insert(regs::CTRL.offset, OTHER_CTRL);
    io.regs.insert(regs::KQ_HEAD.offset, 2);
    io.regs.insert(regs::KCQ_TAIL.offset, 1);
    let q = KernelQueue::init(&mut io, 2).unwrap();
    assert_eq!(io.regs[&regs::CTRL.offset], OTHER_CTRL | CU_EN);
    assert_eq!((io.regs[&regs::KQ_SIZE_LOG2.offset], io.regs[&regs::KCQ_SIZE_LOG2.offset]), (2, 2));
    assert_ne!(io.regs[&regs::KQ_BASE_LO.offset], 0);
    assert_eq!(io.regs[&regs::KQ_BASE_LO.offset] % 64, 0);
    assert_eq!(io.regs[&regs::KCQ_BASE_LO.offset] % 32, 0);
    assert_eq!(
        (io.regs[&regs::KQ_TAIL.offset], io.regs[&regs::KCQ_HEAD.offset]),
        (2, 1),
        "rings start empty where the device stands"
    );
    assert_eq!(q.free(), 3);
    assert!(matches!(KernelQueue::init(&mut io, 2), Err(KernelError::AlreadyEnabled)));
    q.release(&mut io).unwrap();
    assert_eq!(io.regs[&regs::CTRL.offset], OTHER_CTRL, "release clears CU_EN only");
    for size_log2 in [0, 17] {
        assert!(
            matches!(KernelQueue::init(&mut io, size_log2), Err(KernelError::RingSize { size_log2: s }) if s == size_log2)
        );
    }
}

#[test]
fn both_rings_wrap_around() {
    let (mut io, mut q, kcq) = setup();
    let first: Vec<Kernel> = (0..3).map(add).collect();
    assert_eq!(q.submit(&mut io, &first).unwrap(), [0, 1, 2]);
    assert_eq!(io.regs[&regs::KQ_TAIL.offset], 3);
    for slot in 0..3 {
        complete(&mut io, kcq, slot, &ok(slot, 3, 16));
    }
    let got = q.completions(&mut io).unwrap();
    assert_eq!(got.iter().map(|c| (c.tag, c.index)).collect::<Vec<_>>(), [(0, 0), (1, 1), (2, 2)]);
    assert_eq!(io.regs[&regs::KCQ_HEAD.offset], 3);

    let second: Vec<Kernel> = (10..13).map(add).collect();
    assert_eq!(q.submit(&mut io, &second).unwrap(), [3, 0, 1]);
    assert_eq!(io.regs[&regs::KQ_TAIL.offset], 2);
    let mut rec = [0u8; 64];
    for (slot, k) in [3usize, 0, 1].into_iter().zip(&second) {
        q.kq.buf.read(slot * 64, &mut rec).unwrap();
        assert_eq!(Kernel::decode(&rec), Ok(*k), "KQ slot {slot}");
    }
    for (slot, tag) in [(3, 10), (0, 11), (1, 12)] {
        complete(&mut io, kcq, slot, &ok(tag, 3, 16));
    }
    assert_eq!(io.regs[&regs::KCQ_TAIL.offset], 2);
    let got = q.completions(&mut io).unwrap();
    assert_eq!(got.iter().map(|c| (c.tag, c.index)).collect::<Vec<_>>(), [(10, 3), (11, 0), (12, 1)]);
    assert_eq!(io.regs[&regs::KCQ_HEAD.offset], 2);
    assert_eq!(q.in_flight(), 0);
}

#[test]
fn a_refused_submission_submits_nothing() {
    let (mut io, mut q, _) = setup();
    let err = q.submit(&mut io, &[add(0); 4]).unwrap_err();
    assert!(matches!(err, KernelError::RingFull { needed: 4, free: 3 }), "{err}");
    let bad = Kernel::copy(0, 0x1001, 0x2000, 4).with_tag(7);
    let err = q.submit(&mut io, &[add(0), bad]).unwrap_err();
    assert!(matches!(err, KernelError::Misaligned { tag: 7, op: KernelOp::Copy, operand: 'A', va: 0x1001 }), "{err}");
    assert_eq!(io.regs[&regs::KQ_TAIL.offset], 0, "no doorbell");
    assert_eq!(q.in_flight(), 0);
    q.submit(&mut io, &[add(0), add(1)]).unwrap();
    let err = q.submit(&mut io, &[add(2), add(3)]).unwrap_err();
    assert!(matches!(err, KernelError::RingFull { needed: 2, free: 1 }), "{err}");
    assert_eq!(io.regs[&regs::KQ_TAIL.offset], 2);
}

#[test]
fn completions_are_found_in_memory_without_register_reads() {
    let (mut io, mut q, kcq) = setup();
    q.submit(&mut io, &[add(1)]).unwrap();
    complete(&mut io, kcq, 0, &ok(1, 3, 16));
    io.log.clear();
    q.completions(&mut io).unwrap();
    assert_eq!(io.log, [CsrOp::Write(regs::KCQ_HEAD.offset, 1)], "one posted HEAD write, no read");
    io.log.clear();
    assert_eq!(q.completions(&mut io).unwrap(), []);
    assert_eq!(io.log, [], "no HEAD write when nothing was read");
}

/// A bad second completion, and the test that the error is the expected one.
type BadCase = (KernelCompletion, fn(&KernelError) -> bool);

#[test]
fn completions_that_break_order_or_consistency_are_refused() {
    let cases: [BadCase; 6] = [
        (ok(9, 3, 16), |e| matches!(e, KernelError::WrongTag { slot: 1, index: 1, expected: 2, got: 9 })),
        (ok(2, 4, 16), |e| matches!(e, KernelError::WrongAsid { slot: 1, index: 1, expected: 3, got: 4 })),
        (ok(2, 3, 15), |e| matches!(e, KernelError::BadDone { done: 15, count: 16, status: KernelStatus::Ok, .. })),
        (KernelCompletion { status: KernelStatus::BadDesc, ..ok(2, 3, 1) }, |e| {
            matches!(e, KernelError::BadDone { done: 1, status: KernelStatus::BadDesc, .. })
        }),
        (KernelCompletion { status: KernelStatus::FaultAbort, fault_va: 0x3000, ..ok(2, 3, 17) }, |e| {
            matches!(e, KernelError::BadDone { done: 17, .. })
        }),
        (KernelCompletion { fault_va: 0x3000, ..ok(2, 3, 16) }, |e| {
            matches!(e, KernelError::Malformed { slot: 1, source: RecordError::StrayFaultVa { .. } })
        }),
    ];
    for (second, is_expected) in cases {
        let (mut io, mut q, kcq) = setup();
        q.submit(&mut io, &[add(1), add(2)]).unwrap();
        complete(&mut io, kcq, 0, &ok(1, 3, 16));
        complete(&mut io, kcq, 1, &second);
        let err = q.completions(&mut io).unwrap_err();
        assert!(is_expected(&err), "{second:?}: {err}");
        assert_eq!(io.regs[&regs::KCQ_HEAD.offset], 1, "the good record is consumed, the bad one is not");
        // The device (in this play) rewrites the record correctly: nothing was lost.
        complete(
            &mut io,
            kcq,
            1,
            &KernelCompletion { status: KernelStatus::FaultAbort, fault_va: 0x3008, ..ok(2, 3, 3) },
        );
        let got = q.completions(&mut io).unwrap();
        assert_eq!(
            got.iter().map(|c| (c.tag, c.index, c.status)).collect::<Vec<_>>(),
            [(1, 0, KernelStatus::Ok), (2, 1, KernelStatus::FaultAbort)]
        );
    }

    let (mut io, mut q, kcq) = setup();
    complete(&mut io, kcq, 0, &ok(1, 3, 16));
    assert!(matches!(q.completions(&mut io), Err(KernelError::Unsolicited { slot: 0 })));
}

#[test]
fn wait_collects_everything_or_names_what_is_missing() {
    let (mut io, mut q, kcq) = setup();
    q.submit(&mut io, &[add(1), add(2)]).unwrap();
    complete(&mut io, kcq, 0, &ok(1, 3, 16));
    complete(&mut io, kcq, 1, &ok(2, 3, 16));
    assert_eq!(q.wait(&mut io, 10_000).unwrap().len(), 2);

    q.submit(&mut io, &[add(3), add(4)]).unwrap();
    complete(&mut io, kcq, 2, &ok(3, 3, 16));
    let t0 = io.now_ns();
    let err = q.wait(&mut io, 10_000).unwrap_err();
    assert!(matches!(err, KernelError::Timeout { missing: 1, budget_ns: 10_000 }), "{err}");
    assert_eq!(io.now_ns() - t0, 10_000, "the budget is device time, not more");
    complete(&mut io, kcq, 3, &ok(4, 3, 16));
    let got = q.completions(&mut io).unwrap();
    assert_eq!(
        got.iter().map(|c| c.tag).collect::<Vec<_>>(),
        [3, 4],
        "the completion collected before the timeout is kept"
    );

    // A device error of another unit does not end the wait; one of the kernel queue does.
    q.submit(&mut io, &[add(5)]).unwrap();
    io.regs.insert(regs::STATUS.offset, 1 << 4);
    io.regs.insert(regs::ERR_INFO.offset, 0x0008); // CPL_WRITE, unit 0
    assert!(matches!(q.wait(&mut io, 5_000), Err(KernelError::Timeout { missing: 1, .. })));
    io.regs.insert(regs::ERR_INFO.offset, 0x0205); // DESC_FETCH, unit 2
    assert!(matches!(q.wait(&mut io, 5_000), Err(KernelError::DeviceError { err_info: 0x0205 })));
}

#[test]
fn soft_reset_forgets_kernels_in_flight() {
    let (mut io, mut q, kcq) = setup();
    q.submit(&mut io, &[add(1), add(2)]).unwrap();
    assert_eq!(q.after_soft_reset(), 2);
    io.regs.insert(regs::KCQ_TAIL.offset, 0);
    assert_eq!(q.submit(&mut io, &[add(3)]).unwrap(), [0]);
    complete(&mut io, kcq, 0, &ok(3, 3, 16));
    assert_eq!(q.completions(&mut io).unwrap()[0].tag, 3);
}

fn any_kernel() -> impl Strategy<Value = Kernel> {
    (0..KernelOp::ALL.len(), any::<(u16, u16, u32, u32, u64, u64, u64, u32, bool, bool)>()).prop_map(
        |(op, (asid, tag, count, stride, a, b, c, scalar, irq, write))| Kernel {
            op: KernelOp::ALL[op],
            asid,
            tag,
            count,
            stride,
            a,
            b,
            c,
            scalar,
            irq,
            write,
        },
    )
}

fn any_completion() -> impl Strategy<Value = KernelCompletion> {
    (0..KernelStatus::ALL.len(), any::<(u16, u16, u64, u64, u32)>()).prop_map(
        |(s, (tag, asid, result, fault_va, done))| {
            let status = KernelStatus::ALL[s];
            KernelCompletion {
                tag,
                status,
                asid,
                result,
                fault_va: if status.names_fault_va() { fault_va } else { 0 },
                done,
                index: 0,
            }
        },
    )
}

proptest! {
    #[test]
    fn kdesc_round_trips(k in any_kernel()) {
        prop_assert_eq!(Kernel::decode(&k.encode()), Ok(k));
    }

    #[test]
    fn kcpl_round_trips(c in any_completion()) {
        prop_assert_eq!(KernelCompletion::decode(&c.encode()), Ok(c));
    }

    /// Arbitrary bytes never panic; what decodes is exactly what encodes back.
    #[test]
    fn decoders_survive_arbitrary_bytes(b32 in prop::array::uniform32(any::<u8>()), b64 in prop::collection::vec(any::<u8>(), 64), short in prop::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(c) = KernelCompletion::decode(&b32) {
            prop_assert_eq!(c.encode(), b32);
        }
        if let Ok(k) = Kernel::decode(&b64) {
            prop_assert_eq!(Kernel::decode(&k.encode()), Ok(k));
        }
        let _ = KernelCompletion::decode(&short);
        let _ = Kernel::decode(&short);
    }
}
