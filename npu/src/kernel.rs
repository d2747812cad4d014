//! Driver of the NPU's compute unit: kernel descriptors in, kernel completions out.
//!
//! The compute unit (docs/device.md §10) runs small vector kernels — copy, fill, add,
//! scale, reduce-sum, gather, strided touch — over 32-bit words addressed by virtual
//! address in an ASID, so every access goes through the device MMU and may fault
//! (§7). Software writes 64-byte `KDESC` records into the kernel queue (KQ) and rings
//! the doorbell `KQ_TAIL`; the unit runs them one at a time, in order, and reports each
//! with a 32-byte `KCPL` record in the kernel completion queue (KCQ). [`KernelQueue`]
//! owns both rings; it checks descriptors against the operand rules before the device
//! sees them ([`Kernel::validate`]) and every completion against the spec and against
//! what was submitted before handing it out.

use std::collections::VecDeque;
use std::sync::atomic::{Ordering, fence};

use crate::device_io::{DeviceIo, IoError};
use crate::dma_buf::DmaBufError;
use crate::record::{RecordError, check_len, check_reserved, get};
use crate::regmap::Field;
use crate::regs;
use crate::ring::{Producer, QUIET_NS, Ring, RingRegs, Verdict, marker};

/// Value of ERR_INFO.UNIT for the kernel queue (§12.3).
const ERR_UNIT_KERNEL: u32 = 2;

/// Kernel operations (KERNEL_OPCODE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KernelOp {
    /// `c[i] = a[i]`.
    Copy = regs::kernel_opcode::COPY as u8,
    /// `c[i] = scalar`.
    Fill = regs::kernel_opcode::FILL as u8,
    /// `c[i] = a[i] + b[i]` (wrapping).
    Add = regs::kernel_opcode::ADD as u8,
    /// `c[i] = a[i] × scalar` (low 32 bits).
    Scale = regs::kernel_opcode::SCALE as u8,
    /// `result = Σ a[i]` (64-bit); also stored to `c[0]` unless `c` is 0.
    ReduceSum = regs::kernel_opcode::REDUCE_SUM as u8,
    /// `c[i] = a[b[i]]` (`b` holds 32-bit indices).
    Gather = regs::kernel_opcode::GATHER as u8,
    /// Touch the word at `a + i × stride`: store `scalar` if `write`, else load and sum.
    StridedTouch = regs::kernel_opcode::STRIDED_TOUCH as u8,
}

impl KernelOp {
    const ALL: [KernelOp; 7] =
        [Self::Copy, Self::Fill, Self::Add, Self::Scale, Self::ReduceSum, Self::Gather, Self::StridedTouch];

    /// The KDESC.OPCODE value.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The operation of a KDESC.OPCODE value.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.code() == code)
    }

    /// Which of the operands A, B, C the operation uses (§10.2–10.3): those must be
    /// 4-byte aligned.
    pub fn operands(self) -> [bool; 3] {
        match self {
            Self::Copy | Self::Scale | Self::ReduceSum => [true, false, true],
            Self::Fill => [false, false, true],
            Self::Add | Self::Gather => [true, true, true],
            Self::StridedTouch => [true, false, false],
        }
    }
}

/// One kernel: the fields of a KDESC record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Operation.
    pub op: KernelOp,
    /// Address space the kernel runs in.
    pub asid: u16,
    /// Software tag echoed in the completion.
    pub tag: u16,
    /// Number of elements.
    pub count: u32,
    /// StridedTouch: bytes between accesses (multiple of 4).
    pub stride: u32,
    /// VA of operand a.
    pub a: u64,
    /// VA of operand b (Gather: the index vector).
    pub b: u64,
    /// VA of the result c.
    pub c: u64,
    /// Fill value, Scale factor, StridedTouch store value.
    pub scalar: u32,
    /// Raise interrupt KERNEL on completion (a failed kernel raises it anyway).
    pub irq: bool,
    /// StridedTouch stores `scalar` instead of loading.
    pub write: bool,
}

/// KDESC.FLAGS bits that have a meaning; the others must be 0 (§10.2).
const KDESC_FLAGS_DEFINED: u64 = 1 << regs::kernel_flag::IRQ | 1 << regs::kernel_flag::WRITE;

impl Kernel {
    fn new(op: KernelOp, asid: u16, count: u32) -> Self {
        Self { op, asid, tag: 0, count, stride: 0, a: 0, b: 0, c: 0, scalar: 0, irq: false, write: false }
    }

    /// `c[i] = a[i]` for `i < count`.
    pub fn copy(asid: u16, a: u64, c: u64, count: u32) -> Self {
        Self { a, c, ..Self::new(KernelOp::Copy, asid, count) }
    }

    /// `c[i] = value` for `i < count`.
    pub fn fill(asid: u16, c: u64, count: u32, value: u32) -> Self {
        Self { c, scalar: value, ..Self::new(KernelOp::Fill, asid, count) }
    }

    /// `c[i] = a[i] + b[i]` for `i < count`.
    pub fn add(asid: u16, a: u64, b: u64, c: u64, count: u32) -> Self {
        Self { a, b, c, ..Self::new(KernelOp::Add, asid, count) }
    }

    /// `c[i] = a[i] × factor` for `i < count`.
    pub fn scale(asid: u16, a: u64, c: u64, count: u32, factor: u32) -> Self {
        Self { a, c, scalar: factor, ..Self::new(KernelOp::Scale, asid, count) }
    }

    /// Sum of `a[0..count]` in the completion's `result`; also stored at `c[0]` unless
    /// `c` is 0.
    pub fn reduce_sum(asid: u16, a: u64, c: u64, count: u32) -> Self {
        Self { a, c, ..Self::new(KernelOp::ReduceSum, asid, count) }
    }

    /// `c[i] = a[index[i]]` for `i < count`.
    pub fn gather(asid: u16, a: u64, index: u64, c: u64, count: u32) -> Self {
        Self { a, b: index, c, ..Self::new(KernelOp::Gather, asid, count) }
    }

    /// Accesses the word at `a + i × stride` for `i < count`: a load (the completion's
    /// `result` is the sum) if `store` is `None`, else a store of the value.
    pub fn strided_touch(asid: u16, a: u64, stride: u32, count: u32, store: Option<u32>) -> Self {
        Self {
            a,
            stride,
            scalar: store.unwrap_or(0),
            write: store.is_some(),
            ..Self::new(KernelOp::StridedTouch, asid, count)
        }
    }

    /// The same kernel with software tag `tag`.
    pub fn with_tag(self, tag: u16) -> Self {
        Self { tag, ..self }
    }

    /// The same kernel, raising interrupt KERNEL when it completes.
    pub fn with_irq(self) -> Self {
        Self { irq: true, ..self }
    }

    /// Checks the operand rules of §10.2 that would make the device end the kernel with
    /// BAD_DESC: A, B, C 4-byte aligned where the operation uses them, STRIDE a multiple
    /// of 4 for StridedTouch. (FLAGS bits 7:2 cannot be set from this type.)
    pub fn validate(&self) -> Result<(), KernelError> {
        for ((used, operand), va) in self.op.operands().into_iter().zip(['A', 'B', 'C']).zip([self.a, self.b, self.c]) {
            if used && va % 4 != 0 {
                return Err(KernelError::Misaligned { tag: self.tag, op: self.op, operand, va });
            }
        }
        if self.op == KernelOp::StridedTouch && self.stride % 4 != 0 {
            return Err(KernelError::BadStride { tag: self.tag, stride: self.stride });
        }
        Ok(())
    }

    /// The 64-byte KDESC record. Fields are written as they are, used by the operation
    /// or not; reserved bits are 0.
    pub fn encode(&self) -> [u8; regs::kdesc::SIZE] {
        use regs::kdesc as k;
        let mut rec = [0u8; k::SIZE];
        let flags = u64::from(self.irq) << regs::kernel_flag::IRQ | u64::from(self.write) << regs::kernel_flag::WRITE;
        for (f, v) in [
            (k::OPCODE, u64::from(self.op.code())),
            (k::FLAGS, flags),
            (k::ASID, u64::from(self.asid)),
            (k::TAG, u64::from(self.tag)),
            (k::COUNT, u64::from(self.count)),
            (k::STRIDE, u64::from(self.stride)),
            (k::A, self.a),
            (k::B, self.b),
            (k::C, self.c),
            (k::SCALAR, u64::from(self.scalar)),
        ] {
            f.set(&mut rec, v);
        }
        rec
    }

    /// Reads a KDESC record as the device does (for models and tests): an unknown
    /// opcode or a set FLAGS bit 7:2 is refused (the device's BAD_DESC); other reserved
    /// bits are ignored (§14: "ignored when read"). Operand rules are not checked here —
    /// see [`Kernel::validate`].
    pub fn decode(rec: &[u8]) -> Result<Self, RecordError> {
        use regs::kdesc as k;
        check_len("KDESC", rec, k::SIZE)?;
        let opcode = get(rec, k::OPCODE) as u8;
        let op = KernelOp::from_code(opcode).ok_or(RecordError::UnknownOpcode { opcode })?;
        let flags = get(rec, k::FLAGS);
        let stray = flags & !KDESC_FLAGS_DEFINED;
        if stray != 0 {
            return Err(RecordError::ReservedBit { record: "KDESC", bit: k::FLAGS.lsb + stray.trailing_zeros() });
        }
        Ok(Self {
            op,
            asid: get(rec, k::ASID) as u16,
            tag: get(rec, k::TAG) as u16,
            count: get(rec, k::COUNT) as u32,
            stride: get(rec, k::STRIDE) as u32,
            a: get(rec, k::A),
            b: get(rec, k::B),
            c: get(rec, k::C),
            scalar: get(rec, k::SCALAR) as u32,
            irq: flags >> regs::kernel_flag::IRQ & 1 == 1,
            write: flags >> regs::kernel_flag::WRITE & 1 == 1,
        })
    }
}

/// Outcome of a kernel (KERNEL_STATUS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KernelStatus {
    /// Completed.
    Ok = regs::kernel_status::OK as u8,
    /// A fault was answered with REPLAY ABORT; `fault_va` names the address.
    FaultAbort = regs::kernel_status::FAULT_ABORT as u8,
    /// Unknown opcode or malformed descriptor; nothing was accessed.
    BadDesc = regs::kernel_status::BAD_DESC as u8,
    /// A data access got an error response after translation; `fault_va` names it.
    MemError = regs::kernel_status::MEM_ERROR as u8,
}

impl KernelStatus {
    const ALL: [KernelStatus; 4] = [Self::Ok, Self::FaultAbort, Self::BadDesc, Self::MemError];

    /// The KCPL.STATUS value.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status of a KCPL.STATUS value.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether KCPL.FAULT_VA may be non-zero.
    fn names_fault_va(self) -> bool {
        matches!(self, Self::FaultAbort | Self::MemError)
    }
}

/// A validated kernel completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelCompletion {
    /// Descriptor tag.
    pub tag: u16,
    /// Outcome.
    pub status: KernelStatus,
    /// ASID of the kernel.
    pub asid: u16,
    /// ReduceSum / StridedTouch (load) result; 0 otherwise.
    pub result: u64,
    /// FaultAbort / MemError: VA of the failed access; else 0.
    pub fault_va: u64,
    /// Elements completed (`count` on success; on failure not necessarily a prefix).
    pub done: u32,
    /// KQ ring index of the kernel. Not part of the record: [`KernelCompletion::decode`]
    /// sets 0 and [`KernelQueue::completions`] fills it in from its submission list.
    pub index: u16,
}

/// KCPL fields, for the reserved-bit check.
const KCPL_FIELDS: [Field; 6] = {
    use regs::kcpl::*;
    [TAG, STATUS, ASID, RESULT, FAULT_VA, DONE]
};

impl KernelCompletion {
    /// Decodes and validates a 32-byte KCPL record: known status, reserved bits 0,
    /// FAULT_VA 0 unless the status is FaultAbort or MemError.
    pub fn decode(rec: &[u8]) -> Result<Self, RecordError> {
        use regs::kcpl as k;
        check_len("KCPL", rec, k::SIZE)?;
        let code = get(rec, k::STATUS) as u8;
        let status = KernelStatus::from_code(code).ok_or(RecordError::UnknownStatus { status: code })?;
        check_reserved("KCPL", rec, &KCPL_FIELDS)?;
        let fault_va = get(rec, k::FAULT_VA);
        if fault_va != 0 && !status.names_fault_va() {
            return Err(RecordError::StrayFaultVa { status, fault_va });
        }
        Ok(Self {
            tag: get(rec, k::TAG) as u16,
            status,
            asid: get(rec, k::ASID) as u16,
            result: get(rec, k::RESULT),
            fault_va,
            done: get(rec, k::DONE) as u32,
            index: 0,
        })
    }

    /// The 32-byte KCPL record as the device writes it (for models and tests); `index`
    /// is not part of it.
    pub fn encode(&self) -> [u8; regs::kcpl::SIZE] {
        use regs::kcpl as k;
        let mut rec = [0u8; k::SIZE];
        for (f, v) in [
            (k::TAG, u64::from(self.tag)),
            (k::STATUS, u64::from(self.status.code())),
            (k::ASID, u64::from(self.asid)),
            (k::RESULT, self.result),
            (k::FAULT_VA, self.fault_va),
            (k::DONE, u64::from(self.done)),
        ] {
            f.set(&mut rec, v);
        }
        rec
    }
}

/// Errors of the kernel queue driver.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Transport failure.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Ring memory could not be allocated or accessed.
    #[error(transparent)]
    Buffer(#[from] DmaBufError),
    /// Ring size outside 1 ..= 16 (log2 of the entry count).
    #[error("kernel queue size_log2 {size_log2} is outside 1..=16")]
    RingSize {
        /// Requested.
        size_log2: u32,
    },
    /// CTRL.CU_EN is already set: the rings must not be reprogrammed while enabled (§4).
    #[error("the compute unit is already enabled (CTRL.CU_EN = 1); release the other queue first")]
    AlreadyEnabled,
    /// An operand the operation uses is not 4-byte aligned (the device's BAD_DESC).
    #[error("kernel tag {tag:#06x} ({op:?}): operand {operand} at VA {va:#x} is not 4-byte aligned")]
    Misaligned {
        /// Kernel tag.
        tag: u16,
        /// Operation.
        op: KernelOp,
        /// 'A', 'B' or 'C'.
        operand: char,
        /// The operand's VA.
        va: u64,
    },
    /// StridedTouch with a stride that is not a multiple of 4 (the device's BAD_DESC).
    #[error("kernel tag {tag:#06x} (StridedTouch): stride {stride:#x} is not a multiple of 4")]
    BadStride {
        /// Kernel tag.
        tag: u16,
        /// Stride in bytes.
        stride: u32,
    },
    /// Not enough room in the ring; nothing was submitted.
    #[error("kernel queue full: {needed} kernels submitted, room for {free}")]
    RingFull {
        /// Kernels asked for.
        needed: usize,
        /// Kernels that fit now.
        free: usize,
    },
    /// The device wrote a completion that breaks the record rules.
    #[error("malformed kernel completion at KCQ slot {slot}")]
    Malformed {
        /// KCQ slot of the record.
        slot: u16,
        /// The rule it breaks.
        #[source]
        source: RecordError,
    },
    /// A completion arrived although no kernel is in flight.
    #[error("kernel completion at KCQ slot {slot} with no kernel in flight")]
    Unsolicited {
        /// KCQ slot of the record.
        slot: u16,
    },
    /// A completion does not carry the tag of the oldest kernel in flight: completions
    /// arrive in submission order.
    #[error(
        "kernel completion at KCQ slot {slot} has tag {got:#06x}, but the oldest kernel in flight (KQ index {index}) has tag {expected:#06x}"
    )]
    WrongTag {
        /// KCQ slot of the record.
        slot: u16,
        /// KQ index of the oldest kernel in flight.
        index: u16,
        /// Its tag.
        expected: u16,
        /// Tag in the record.
        got: u16,
    },
    /// A completion names another ASID than its kernel's.
    #[error(
        "kernel completion at KCQ slot {slot} (KQ index {index}) has ASID {got}, the kernel ran in ASID {expected}"
    )]
    WrongAsid {
        /// KCQ slot of the record.
        slot: u16,
        /// KQ index of the kernel.
        index: u16,
        /// The kernel's ASID.
        expected: u16,
        /// ASID in the record.
        got: u16,
    },
    /// DONE is impossible for the kernel's COUNT and status (more than COUNT; less than
    /// COUNT on success; non-zero for BadDesc, which makes no access).
    #[error(
        "kernel completion at KCQ slot {slot} (KQ index {index}): DONE {done} with status {status:?} for COUNT {count}"
    )]
    BadDone {
        /// KCQ slot of the record.
        slot: u16,
        /// KQ index of the kernel.
        index: u16,
        /// Status in the record.
        status: KernelStatus,
        /// DONE in the record.
        done: u32,
        /// COUNT of the kernel.
        count: u32,
    },
    /// Completions did not arrive within the budget.
    #[error("{missing} kernel completion(s) missing after {budget_ns} ns of device time")]
    Timeout {
        /// Kernels still in flight.
        missing: usize,
        /// Budget.
        budget_ns: u64,
    },
    /// The kernel queue stopped with a device error (descriptor fetch or completion
    /// write failure); only a soft reset recovers.
    #[error("the kernel queue stopped with a device error (ERR_INFO {err_info:#010x})")]
    DeviceError {
        /// ERR_INFO register.
        err_info: u32,
    },
}

/// A submitted kernel whose completion has not been collected.
#[derive(Clone, Copy, Debug)]
struct Pending {
    index: u16,
    tag: u16,
    asid: u16,
    count: u32,
}

/// Checks the record at KCQ slot `slot` against the spec and the oldest kernel in
/// flight (the front of `pending`).
fn check(pending: &VecDeque<Pending>, slot: u16, rec: &[u8]) -> Result<KernelCompletion, KernelError> {
    let c = KernelCompletion::decode(rec).map_err(|source| KernelError::Malformed { slot, source })?;
    let p = *pending.front().ok_or(KernelError::Unsolicited { slot })?;
    if c.tag != p.tag {
        return Err(KernelError::WrongTag { slot, index: p.index, expected: p.tag, got: c.tag });
    }
    if c.asid != p.asid {
        return Err(KernelError::WrongAsid { slot, index: p.index, expected: p.asid, got: c.asid });
    }
    let done_ok = match c.status {
        KernelStatus::Ok => c.done == p.count,
        KernelStatus::BadDesc => c.done == 0,
        KernelStatus::FaultAbort | KernelStatus::MemError => c.done <= p.count,
    };
    if !done_ok {
        return Err(KernelError::BadDone { slot, index: p.index, status: c.status, done: c.done, count: p.count });
    }
    Ok(KernelCompletion { index: p.index, ..c })
}

const KQ_REGS: RingRegs = RingRegs {
    base: regs::KQ_BASE_LO.offset,
    size_log2: regs::KQ_SIZE_LOG2.offset,
    head: regs::KQ_HEAD.offset,
    tail: regs::KQ_TAIL.offset,
};

const KCQ_REGS: RingRegs = RingRegs {
    base: regs::KCQ_BASE_LO.offset,
    size_log2: regs::KCQ_SIZE_LOG2.offset,
    head: regs::KCQ_HEAD.offset,
    tail: regs::KCQ_TAIL.offset,
};

/// The kernel queue (KQ) and kernel completion queue (KCQ), set up on a device.
///
/// Both rings have 2^`size_log2` entries. A KQ slot is reused only once its kernel's
/// completion has been collected, so at most 2^`size_log2` − 1 kernels are in flight and
/// the KCQ can never fill up.
pub struct KernelQueue {
    /// The KQ; its index is the next KQ index the host writes (mirror of KQ_TAIL).
    kq: Ring,
    /// The KCQ; its index is the next KCQ index the host reads (mirror of KCQ_HEAD).
    kcq: Ring,
    /// Submitted kernels, oldest first.
    pending: VecDeque<Pending>,
    /// Completions collected but not yet handed out (a later record was bad, or a
    /// wait ran out of time); the next call returns them first.
    carry: Vec<KernelCompletion>,
}

impl KernelQueue {
    /// Allocates and maps both rings with 2^`size_log2` entries, programs KQ_* and
    /// KCQ_*, and sets CTRL.CU_EN (other CTRL bits kept).
    pub fn init<T: DeviceIo + ?Sized>(io: &mut T, size_log2: u32) -> Result<Self, KernelError> {
        if !crate::ring::SIZE_LOG2.contains(&size_log2) {
            return Err(KernelError::RingSize { size_log2 });
        }
        if regs::ctrl::CU_EN.get32(io.read32(regs::CTRL.offset)?) == 1 {
            return Err(KernelError::AlreadyEnabled);
        }
        let kq = Ring::set_up::<_, KernelError>(io, KQ_REGS, size_log2, regs::kdesc::SIZE, Producer::Host)?;
        let kcq = Ring::set_up::<_, KernelError>(
            io,
            KCQ_REGS,
            size_log2,
            regs::kcpl::SIZE,
            Producer::Device { marker: marker::KCPL },
        )?;
        crate::device_io::set_ctrl_bit(io, regs::ctrl::CU_EN, true)?;
        Ok(Self { kq, kcq, pending: VecDeque::new(), carry: Vec::new() })
    }

    fn mask(&self) -> u16 {
        self.kq.mask
    }

    /// Kernels submitted whose completion has not been collected.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Kernels that can be submitted now.
    pub fn free(&self) -> usize {
        usize::from(self.mask()) - self.pending.len()
    }

    /// Validates every kernel, writes them into the KQ and rings the doorbell once.
    /// Returns their KQ ring indices, in order. On any error nothing is submitted.
    pub fn submit<T: DeviceIo + ?Sized>(&mut self, io: &mut T, kernels: &[Kernel]) -> Result<Vec<u16>, KernelError> {
        for k in kernels {
            k.validate()?;
        }
        let free = self.free();
        if kernels.len() > free {
            return Err(KernelError::RingFull { needed: kernels.len(), free });
        }
        let mask = self.mask();
        let mut indices = Vec::with_capacity(kernels.len());
        let mut tail = self.kq.index;
        for k in kernels {
            self.kq.buf.write(usize::from(tail) * regs::kdesc::SIZE, &k.encode())?;
            indices.push(tail);
            tail = tail.wrapping_add(1) & mask;
        }
        fence(Ordering::Release);
        io.write32(regs::KQ_TAIL.offset, u32::from(tail))?;
        self.kq.index = tail;
        self.pending.extend(indices.iter().zip(kernels).map(|(&index, k)| Pending {
            index,
            tag: k.tag,
            asid: k.asid,
            count: k.count,
        }));
        Ok(indices)
    }

    /// Collects the completions the device has written (possibly none): found in host
    /// memory by their free markers (no MMIO read; [`crate::ring`]), checked, then
    /// KCQ_HEAD is written (posted).
    ///
    /// A record that breaks a rule is an error and stays in the ring; the completions
    /// before it are consumed and returned by the next call.
    pub fn completions<T: DeviceIo + ?Sized>(&mut self, io: &mut T) -> Result<Vec<KernelCompletion>, KernelError> {
        let mut out = std::mem::take(&mut self.carry);
        match self.collect(io, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                self.carry = out;
                Err(e)
            }
        }
    }

    fn collect<T: DeviceIo + ?Sized>(
        &mut self,
        io: &mut T,
        out: &mut Vec<KernelCompletion>,
    ) -> Result<(), KernelError> {
        let pending = &mut self.pending;
        self.kcq.consume(io, |slot, rec| match check(pending, slot, rec) {
            Ok(c) => {
                out.push(c);
                pending.pop_front();
                Verdict::Take
            }
            Err(e) => Verdict::Keep(e),
        })
    }

    /// Waits until every submitted kernel has completed, letting at most `budget_ns` of
    /// device time pass; returns the completions collected, in submission order. Polls
    /// the completion ring in host memory ([`DeviceIo::wait_host`]); after
    /// [`QUIET_NS`] without a completion it reads STATUS for a compute-unit error. A
    /// failed kernel does not stop the wait: the compute unit goes on with the next one.
    ///
    /// On an error, the completions collected so far are kept for the next call.
    pub fn wait<T: DeviceIo + ?Sized>(
        &mut self,
        io: &mut T,
        budget_ns: u64,
    ) -> Result<Vec<KernelCompletion>, KernelError> {
        let mut got = Vec::new();
        match self.wait_into(io, budget_ns, &mut got) {
            Ok(()) => Ok(got),
            Err(e) => {
                got.append(&mut self.carry);
                self.carry = got;
                Err(e)
            }
        }
    }

    fn wait_into<T: DeviceIo + ?Sized>(
        &mut self,
        io: &mut T,
        budget_ns: u64,
        got: &mut Vec<KernelCompletion>,
    ) -> Result<(), KernelError> {
        let start = io.now_ns();
        loop {
            got.extend(self.completions(io)?);
            if self.pending.is_empty() {
                return Ok(());
            }
            let elapsed = io.now_ns().saturating_sub(start);
            if elapsed >= budget_ns {
                return Err(KernelError::Timeout { missing: self.pending.len(), budget_ns });
            }
            let kcq = &self.kcq;
            if !io.wait_host((budget_ns - elapsed).min(QUIET_NS), &mut || kcq.has_record())? {
                // Quiet for a while: a device error of the compute unit would explain it
                // (the only MMIO reads of the wait).
                if regs::status::ERROR.get32(io.read32(regs::STATUS.offset)?) == 1 {
                    let err_info = io.read32(regs::ERR_INFO.offset)?;
                    if regs::err_info::UNIT.get32(err_info) == ERR_UNIT_KERNEL {
                        return Err(KernelError::DeviceError { err_info });
                    }
                }
            }
        }
    }

    /// True if [`KernelQueue::completions`] has a completion to hand out (one in host
    /// memory, or one held back by an earlier error). Reads host memory only.
    pub(crate) fn has_record(&self) -> bool {
        !self.carry.is_empty() || self.kcq.has_record()
    }

    /// After a soft reset (§13) the device has forgotten every kernel and zeroed the
    /// ring indices: forget them here too. Returns how many kernels were in flight.
    pub fn after_soft_reset(&mut self) -> usize {
        let lost = self.pending.len();
        self.pending.clear();
        self.carry.clear();
        self.kq.restart();
        self.kcq.restart();
        lost
    }

    /// Clears CTRL.CU_EN (other bits kept) and unmaps the rings. Collect the
    /// completions of kernels in flight first: a completion written after the unmap
    /// fails as a device error.
    pub fn release<T: DeviceIo + ?Sized>(self, io: &mut T) -> Result<(), KernelError> {
        crate::device_io::set_ctrl_bit(io, regs::ctrl::CU_EN, false)?;
        io.dma_unmap(self.kq.iova)?;
        io.dma_unmap(self.kcq.iova)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
