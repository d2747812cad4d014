use super::*;
use crate::fake_io::{CsrOp, FakeIo};
use proptest::prelude::*;

const FQ_EN: u32 = 1 << 1;
const OTHER_CTRL: u32 = 0b1_1101; // MMU_EN | CU_EN | DMA_EN | CMDQ_EN

/// A fault queue of 4 records on a fake device, with the ring's IOVA.
fn setup() -> (FakeIo, FaultQueue, u64) {
    let mut io = FakeIo::new();
    let q = FaultQueue::init(&mut io, 2).unwrap();
    let base = u64::from(io.regs[&regs::FQ_BASE_LO.offset]) | u64::from(io.regs[&regs::FQ_BASE_HI.offset]) << 32;
    (io, q, base)
}

fn fault(seq: u32, slot: u8) -> FaultRecord {
    FaultRecord {
        cause: FaultCause::WritePage,
        write: true,
        level: 0,
        asid: 3,
        reqid: 0x100 | u16::from(slot),
        seq,
        va: 0x4000_1234,
        pte: 0x2001,
    }
}

/// Plays the MMU: writes `f` at FQ `slot` and moves FQ_TAIL past it.
fn post(io: &mut FakeIo, base: u64, slot: u16, f: &FaultRecord) {
    io.device_write(base + u64::from(slot) * 32, &f.encode());
    io.regs.insert(regs::FQ_TAIL.offset, u32::from((slot + 1) % 4));
}

fn seqs(v: &[FaultRecord]) -> Vec<u32> {
    v.iter().map(|f| f.seq).collect()
}

#[test]
fn records_encode_per_the_layout_and_decode_back() {
    let f = FaultRecord {
        cause: FaultCause::ReadAccess,
        write: false,
        level: 1,
        asid: 0xABCD,
        reqid: 0x103,
        seq: 0xFFFF_FFFF,
        va: 0xFFFF_FFC0_0000_1000,
        pte: 0x8000_0001,
    };
    let r = f.encode();
    assert_eq!(u16::from_le_bytes([r[0], r[1]]), 5 | 1 << 14, "CAUSE, ACCESS = read, LEVEL = 1");
    assert_eq!(u16::from_le_bytes([r[2], r[3]]), 0xABCD);
    assert_eq!(u16::from_le_bytes([r[4], r[5]]), 0x103);
    assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 0xFFFF_FFFF);
    assert_eq!(u64::from_le_bytes(r[16..24].try_into().unwrap()), 0xFFFF_FFC0_0000_1000);
    assert_eq!(u64::from_le_bytes(r[24..32].try_into().unwrap()), 0x8000_0001);
    assert_eq!(FaultRecord::decode(&r), Ok(f));
    assert_eq!(f.slot(), 3);
    assert_eq!(f.replay(true), Command::Replay { reqid: 0x103, abort: true });
    let w = FaultRecord { cause: FaultCause::AsidInvalid, write: true, level: 2, pte: 0, ..f }.encode();
    assert_eq!(u16::from_le_bytes([w[0], w[1]]), 0x100 | 1 << 12 | 2 << 14);
}

#[test]
fn decode_refuses_every_malformed_record() {
    let good = fault(0, 1).encode();
    let with = |f: &dyn Fn(&mut [u8; 32])| {
        let mut r = good;
        f(&mut r);
        FaultRecord::decode(&r)
    };
    assert_eq!(with(&|r| r[0] = 6), Err(RecordError::UnknownCause { cause: 6 }));
    assert_eq!(with(&|r| r[1] = 0x0F | 1 << 4), Err(RecordError::UnknownCause { cause: 0xF0F }), "CAUSE is 12 bits");
    assert_eq!(
        with(&|r| r[1] &= !(1 << 4)),
        Err(RecordError::AccessMismatch { cause: FaultCause::WritePage, write: false })
    );
    let read = FaultRecord { cause: FaultCause::ReadPage, write: true, ..fault(0, 1) }.encode();
    assert_eq!(
        FaultRecord::decode(&read),
        Err(RecordError::AccessMismatch { cause: FaultCause::ReadPage, write: true })
    );
    for write in [false, true] {
        let a = FaultRecord { cause: FaultCause::AsidInvalid, write, level: 2, pte: 0, ..fault(0, 1) };
        assert_eq!(FaultRecord::decode(&a.encode()), Ok(a), "ASID_INVALID goes with either access");
    }
    assert_eq!(with(&|r| r[1] |= 3 << 6), Err(RecordError::BadLevel { level: 3 }));
    for (byte, bit) in [(1, 13), (6, 48), (7, 63), (12, 96), (15, 127)] {
        assert_eq!(with(&|r| r[byte] |= 1 << (bit % 8)), Err(RecordError::ReservedBit { record: "FAULT", bit }));
    }
    assert_eq!(with(&|r| r[5] = 2), Err(RecordError::BadRequester { reqid: 0x201 }));
    assert_eq!(with(&|r| r[5] = 0), Err(RecordError::BadRequester { reqid: 0x001 }));
    assert_eq!(FaultRecord::decode(&good[..16]), Err(RecordError::Length { record: "FAULT", expected: 32, got: 16 }));
    assert_eq!(
        RecordError::BadRequester { reqid: 0x201 }.to_string(),
        "FAULT record: REQID 0x0201 names unit 2, not the compute unit (1)"
    );
    assert_eq!(
        RecordError::AccessMismatch { cause: FaultCause::WritePage, write: false }.to_string(),
        "FAULT record: cause WritePage but ACCESS = read"
    );
}

#[test]
fn init_programs_the_ring_and_keeps_other_ctrl_bits() {
    let mut io = FakeIo::new();
    io.regs.insert(regs::CTRL.offset, OTHER_CTRL);
    io.regs.insert(regs::FQ_TAIL.offset, 3);
    let q = FaultQueue::init(&mut io, 2).unwrap();
    assert_eq!(io.regs[&regs::CTRL.offset], OTHER_CTRL | FQ_EN);
    assert_eq!(io.regs[&regs::FQ_SIZE_LOG2.offset], 2);
    assert_ne!(io.regs[&regs::FQ_BASE_LO.offset], 0);
    assert_eq!(io.regs[&regs::FQ_BASE_LO.offset] % 32, 0);
    assert_eq!(io.regs[&regs::FQ_HEAD.offset], 3, "the ring starts empty where the device stands");
    assert!(matches!(FaultQueue::init(&mut io, 2), Err(FaultError::AlreadyEnabled)));
    q.release(&mut io).unwrap();
    assert_eq!(io.regs[&regs::CTRL.offset], OTHER_CTRL, "release clears FQ_EN only");
    for size_log2 in [0, 17] {
        assert!(
            matches!(FaultQueue::init(&mut io, size_log2), Err(FaultError::RingSize { size_log2: s }) if s == size_log2)
        );
    }
}

#[test]
fn drain_finds_records_in_memory_and_reads_no_register() {
    let (mut io, mut q, base) = setup();
    post(&mut io, base, 0, &fault(0, 0));
    post(&mut io, base, 1, &fault(1, 1));
    io.log.clear();
    assert_eq!(q.drain(&mut io).unwrap(), [fault(0, 0), fault(1, 1)]);
    assert_eq!(io.log, [CsrOp::Write(regs::FQ_HEAD.offset, 2)], "one posted HEAD write, no read");
    io.log.clear();
    assert_eq!(q.drain(&mut io).unwrap(), [], "consumed entries are free again though their bytes stay");
    assert_eq!(io.log, []);
    // A record is found by its marker alone: TAIL is not consulted.
    io.device_write(base + 2 * 32, &fault(2, 2).encode());
    assert_eq!(seqs(&q.drain(&mut io).unwrap()), [2]);
    // An entry whose marker the device has not cleared is not a record yet.
    let mut half = fault(3, 3).encode();
    half[crate::ring::marker::FAULT] = crate::ring::FREE;
    io.device_write(base + 3 * 32, &half);
    assert_eq!(q.drain(&mut io).unwrap(), []);
}

#[test]
fn the_ring_wraps_around() {
    let (mut io, mut q, base) = setup();
    for (slot, seq) in [(0, 7), (1, 8), (2, 9)] {
        post(&mut io, base, slot, &fault(seq, slot as u8));
    }
    assert_eq!(seqs(&q.drain(&mut io).unwrap()), [7, 8, 9]);
    for (slot, seq) in [(3, 10), (0, 11), (1, 12)] {
        post(&mut io, base, slot, &fault(seq, 0));
    }
    assert_eq!(io.regs[&regs::FQ_TAIL.offset], 2);
    assert_eq!(seqs(&q.drain(&mut io).unwrap()), [10, 11, 12]);
    assert_eq!(io.regs[&regs::FQ_HEAD.offset], 2);
}

#[test]
fn seq_continuity_is_checked_across_drains_and_wrap() {
    let (mut io, mut q, base) = setup();
    post(&mut io, base, 0, &fault(u32::MAX, 0));
    post(&mut io, base, 1, &fault(0, 1));
    assert_eq!(seqs(&q.drain(&mut io).unwrap()), [u32::MAX, 0], "SEQ wraps");

    // A gap: the records before it are kept, the record after it is delivered next time.
    post(&mut io, base, 2, &fault(1, 2));
    post(&mut io, base, 3, &fault(4, 3));
    let err = q.drain(&mut io).unwrap_err();
    assert!(matches!(err, FaultError::SeqGap { slot: 3, expected: 2, seen: 4 }), "{err}");
    assert_eq!(err.to_string(), "fault record at FQ slot 3: SEQ gap, expected 2, saw 4");
    assert_eq!(io.regs[&regs::FQ_HEAD.offset], 3);
    assert_eq!(seqs(&q.drain(&mut io).unwrap()), [1, 4]);

    // A repeat: reported, and the duplicate is never handed out.
    post(&mut io, base, 0, &fault(4, 3));
    post(&mut io, base, 1, &fault(5, 0));
    let err = q.drain(&mut io).unwrap_err();
    assert!(matches!(err, FaultError::SeqRepeat { slot: 0, expected: 5, seen: 4 }), "{err}");
    assert_eq!(io.regs[&regs::FQ_HEAD.offset], 1, "the duplicate is consumed");
    assert_eq!(seqs(&q.drain(&mut io).unwrap()), [5]);
}

#[test]
fn malformed_records_are_refused_and_stay_in_the_ring() {
    let (mut io, mut q, base) = setup();
    post(&mut io, base, 0, &fault(0, 0));
    let mut bad = fault(1, 1).encode();
    bad[0] = 0x42;
    io.device_write(base + 32, &bad);
    io.regs.insert(regs::FQ_TAIL.offset, 2);
    let err = q.drain(&mut io).unwrap_err();
    assert!(
        matches!(err, FaultError::Malformed { slot: 1, source: RecordError::UnknownCause { cause: 0x42 } }),
        "{err}"
    );
    assert_eq!(io.regs[&regs::FQ_HEAD.offset], 1, "the bad record stays in the ring");
    post(&mut io, base, 1, &fault(1, 1));
    assert_eq!(seqs(&q.drain(&mut io).unwrap()), [0, 1], "nothing before the bad record was lost");
}

#[test]
fn records_put_back_come_out_first_at_the_next_drain_and_a_reset_voids_them() {
    let (mut io, mut q, base) = setup();
    post(&mut io, base, 0, &fault(0, 0));
    post(&mut io, base, 1, &fault(1, 1));
    let got = q.drain(&mut io).unwrap();
    assert!(!q.has_record());
    q.put_back(got);
    assert!(q.has_record(), "a record put back is there to drain");
    post(&mut io, base, 2, &fault(2, 2));
    assert_eq!(seqs(&q.drain(&mut io).unwrap()), [0, 1, 2], "put back first, then the new one");
    q.put_back(vec![fault(2, 2)]);
    assert_eq!(q.after_soft_reset(), 1, "the reset voids what was put back");
    assert!(!q.has_record());
}

#[test]
fn soft_reset_restarts_seq_at_zero() {
    let (mut io, mut q, base) = setup();
    post(&mut io, base, 0, &fault(40, 0));
    post(&mut io, base, 1, &fault(41, 1));
    q.drain(&mut io).unwrap();
    assert_eq!(q.after_soft_reset(), 0);
    post(&mut io, base, 0, &fault(1, 0));
    assert!(
        matches!(q.drain(&mut io), Err(FaultError::SeqGap { expected: 0, seen: 1, .. })),
        "after a reset SEQ starts at 0"
    );
}

fn any_fault() -> impl Strategy<Value = FaultRecord> {
    (0..FaultCause::ALL.len(), any::<bool>(), 0u8..=2, any::<(u16, u8, u32, u64, u64)>()).prop_map(
        |(c, w, level, (asid, slot, seq, va, pte))| {
            let cause = FaultCause::ALL[c];
            FaultRecord {
                cause,
                write: cause.implies_write().unwrap_or(w),
                level,
                asid,
                reqid: 0x100 | u16::from(slot),
                seq,
                va,
                pte,
            }
        },
    )
}

proptest! {
    #[test]
    fn fault_records_round_trip(f in any_fault()) {
        prop_assert_eq!(FaultRecord::decode(&f.encode()), Ok(f));
    }

    /// Arbitrary bytes never panic; what decodes is exactly what encodes back.
    #[test]
    fn decode_survives_arbitrary_bytes(b in prop::array::uniform32(any::<u8>()), any_len in prop::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(f) = FaultRecord::decode(&b) {
            prop_assert_eq!(f.encode(), b);
        }
        let _ = FaultRecord::decode(&any_len);
    }
}
