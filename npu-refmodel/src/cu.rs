//! The model's compute unit (spec §10): kernels from the kernel queue, cut into groups
//! that run in `CuInflight` slots, each request translated by the MMU
//! ([`super::mmu`]); results in the kernel completion queue.
//!
//! The execution model is the RTL's, for everything that does not depend on timing:
//! - a KDESC is fetched as one host-port beat (KQ_HEAD advances, also on a fetch error,
//!   which is the device error {DESC_FETCH, 2}); kernels run one at a time; operand
//!   checks (§10.2) come first and end the kernel with BAD_DESC and no access, then
//!   COUNT = 0 ends it with OK and no access;
//! - groups (§10.3) are at most 16 consecutive elements whose bytes stay in one 64-byte
//!   line in every contiguous operand (COPY/SCALE a, c; ADD a, b, c; FILL c; REDUCE_SUM
//!   a; GATHER b, c); STRIDED_TOUCH groups are one element. Group g runs in slot
//!   g mod CuInflight; groups are dispatched in order and a slot takes its next group
//!   only when it has finished the previous one;
//! - a group's requests, one at a time: COPY/SCALE load a, store c; FILL store c; ADD
//!   load a, load b, store c; REDUCE_SUM load a; GATHER load b, one word load of
//!   `A + 4 × b[k]` per element, store c; STRIDED_TOUCH one word at `A + i × STRIDE`
//!   (load, or store SCALAR with FLAGS.WRITE). A request's VA is its first byte;
//!   REDUCE_SUM with C ≠ 0 ends with slot 0 storing RESULT[31:0] to c[0] after every
//!   group has finished;
//! - a fault stalls the slot until its REPLAY (records: [`super::fq`]); ABORT fails the
//!   request with FAULT_ABORT; an error response or an injected ERRINJ_HOST_/DEV_ error
//!   on a data request (one burst of one beat) fails it with MEM_ERROR. After the first
//!   failure no group starts; the other slots finish theirs (stalled ones still need a
//!   REPLAY); a failed slot abandons its group. The KCPL reports the first failure's
//!   kind and VA; DONE counts the elements of groups that finished all their accesses
//!   (REDUCE_SUM's final store is no group: its failure leaves DONE = COUNT); RESULT is
//!   the REDUCE_SUM / STRIDED_TOUCH sum of the loads done (0 for other operations);
//! - the KCPL is written when the KCQ has room ({CPL_WRITE, 2} if that fails; a device
//!   error stops the unit until soft reset), then KCQ_TAIL advances, then INT KERNEL if
//!   FLAGS.IRQ or STATUS ≠ OK.
//!
//! Untimed scheduling: the unit dispatches every group it can, then runs slot 0, 1, …
//! each until it stalls on a fault or finishes its group, and repeats until nothing
//! can progress. Which groups complete after a failure, and the order of fault records
//! of slots that stall together, are timing-dependent in the RTL; the model's answer
//! is one the RTL can give.

use super::csr::Inj;
use super::mmu::{Fault, Phys};
use super::{BEAT, ModelDevice};
use npu::regs::{self, kcpl, kdesc, kernel_opcode as op, kernel_status as ks};

/// Elements of a group at most.
const GROUP_MAX: usize = 16;
/// Bytes of the line a group's operand stays in.
const LINE: u64 = 64;

/// A request stalled on a translation fault, waiting for its REPLAY.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stall {
    pub(crate) fault: Fault,
    pub(crate) asid: u16,
    pub(crate) va: u64,
    pub(crate) write: bool,
    /// Its fault record has been written (only then does a REPLAY reach it).
    pub(crate) recorded: bool,
    /// Stalls are numbered as they happen; records are written in this order (the
    /// RTL's walk FIFO).
    pub(crate) order: u64,
}

/// One request slot.
#[derive(Default)]
pub(crate) struct Slot {
    work: Option<Work>,
    /// Set while the current request waits for a REPLAY.
    pub(crate) stall: Option<Stall>,
}

enum Work {
    Group(Box<Group>),
    /// REDUCE_SUM's store of RESULT[31:0] to c[0].
    FinalStore,
}

/// A group in a slot: its elements, the next request and the words loaded so far.
struct Group {
    first: u64,
    n: usize,
    step: usize,
    a: [u32; GROUP_MAX],
    b: [u32; GROUP_MAX],
    x: [u32; GROUP_MAX],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    LoadA,
    LoadB,
    /// GATHER's load of `a[b[k]]`.
    Gather(usize),
    StoreC,
    Touch,
}

/// Request `i` of a group of `n` elements.
fn step(opcode: u64, n: usize, i: usize) -> Option<Step> {
    use Step::*;
    match opcode {
        op::COPY | op::SCALE => [LoadA, StoreC].get(i).copied(),
        op::FILL => [StoreC].get(i).copied(),
        op::ADD => [LoadA, LoadB, StoreC].get(i).copied(),
        op::REDUCE_SUM => [LoadA].get(i).copied(),
        op::GATHER if i == 0 => Some(LoadB),
        op::GATHER if i <= n => Some(Gather(i - 1)),
        op::GATHER if i == n + 1 => Some(StoreC),
        op::STRIDED_TOUCH => [Touch].get(i).copied(),
        _ => None,
    }
}

/// A kernel descriptor as fetched.
#[derive(Clone, Copy, Debug)]
struct KDesc {
    opcode: u64,
    flags: u64,
    asid: u16,
    tag: u16,
    count: u64,
    stride: u64,
    a: u64,
    b: u64,
    c: u64,
    scalar: u32,
}

impl KDesc {
    fn parse(rec: &[u8; kdesc::SIZE]) -> Self {
        let f = |field: npu::Field| field.get(rec).unwrap_or(0);
        Self {
            opcode: f(kdesc::OPCODE),
            flags: f(kdesc::FLAGS),
            asid: f(kdesc::ASID) as u16,
            tag: f(kdesc::TAG) as u16,
            count: f(kdesc::COUNT),
            stride: f(kdesc::STRIDE),
            a: f(kdesc::A),
            b: f(kdesc::B),
            c: f(kdesc::C),
            scalar: f(kdesc::SCALAR) as u32,
        }
    }

    fn flag(&self, bit: u64) -> bool {
        self.flags >> bit & 1 == 1
    }

    /// The operand rules of §10.2 (alignment of the operands used, STRIDE, FLAGS 7:2).
    fn valid(&self) -> bool {
        let al = |x: u64| x % 4 == 0;
        self.flags >> 2 == 0
            && match self.opcode {
                op::COPY | op::SCALE | op::REDUCE_SUM => al(self.a) && al(self.c),
                op::FILL => al(self.c),
                op::ADD | op::GATHER => al(self.a) && al(self.b) && al(self.c),
                op::STRIDED_TOUCH => al(self.a) && self.stride % 4 == 0,
                _ => false,
            }
    }

    /// Elements of the group that starts at element `first`.
    fn group_len(&self, first: u64) -> usize {
        let lines: &[u64] = match self.opcode {
            op::COPY | op::SCALE => &[self.a, self.c],
            op::ADD => &[self.a, self.b, self.c],
            op::FILL => &[self.c],
            op::REDUCE_SUM => &[self.a],
            op::GATHER => &[self.b, self.c],
            _ => return 1,
        };
        let room = |base: u64| (LINE - base.wrapping_add(4 * first) % LINE) / 4;
        lines.iter().map(|&x| room(x)).fold((GROUP_MAX as u64).min(self.count - first), u64::min) as usize
    }
}

/// The first failure of a kernel.
#[derive(Clone, Copy, Debug)]
struct Failure {
    status: u64,
    va: u64,
}

/// The kernel being executed.
struct Kernel {
    d: KDesc,
    next_elem: u64,
    next_group: u64,
    failure: Option<Failure>,
    /// Elements of completed groups.
    done: u64,
    /// REDUCE_SUM / STRIDED_TOUCH sum.
    result: u64,
    /// REDUCE_SUM's store of c[0] is still to be issued.
    final_store: bool,
}

/// One memory request of a slot.
struct Req {
    va: u64,
    write: bool,
    len: usize,
    /// Store data (the first `len` bytes).
    data: [u8; LINE as usize],
}

impl Req {
    fn load(va: u64, len: usize) -> Self {
        Self { va, write: false, len, data: [0; LINE as usize] }
    }

    fn store(va: u64, words: impl Iterator<Item = u32>) -> Self {
        let mut r = Self { va, write: true, len: 0, data: [0; LINE as usize] };
        for w in words {
            r.data[r.len..r.len + 4].copy_from_slice(&w.to_le_bytes());
            r.len += 4;
        }
        r
    }
}

/// The unit's state.
pub(crate) struct ComputeUnit {
    /// KQ_HEAD.
    pub(crate) head: u16,
    /// KCQ_TAIL.
    pub(crate) kcq_tail: u16,
    /// Stopped by a device error until soft reset.
    stopped: bool,
    kernel: Option<Kernel>,
    /// CuInflight slots.
    pub(crate) slots: Vec<Slot>,
    /// Stalls so far (numbers [`Stall::order`]).
    stalls: u64,
}

impl ComputeUnit {
    /// An idle unit with `slots` request slots.
    pub(crate) fn new(slots: u32) -> Self {
        Self {
            head: 0,
            kcq_tail: 0,
            stopped: false,
            kernel: None,
            slots: (0..slots).map(|_| Slot::default()).collect(),
            stalls: 0,
        }
    }

    fn fail(&mut self, slot: usize, status: u64, va: u64) {
        let s = &mut self.slots[slot];
        s.work = None;
        s.stall = None;
        if let Some(k) = &mut self.kernel {
            k.failure.get_or_insert(Failure { status, va });
        }
    }

    /// Starts every group (and the final store) that can start now.
    fn dispatch(&mut self) -> bool {
        let Some(k) = &mut self.kernel else { return false };
        let mut progress = false;
        while k.failure.is_none() && k.next_elem < k.d.count {
            let s = (k.next_group % self.slots.len() as u64) as usize;
            if self.slots[s].work.is_some() {
                break;
            }
            let n = k.d.group_len(k.next_elem);
            let g = Group { first: k.next_elem, n, step: 0, a: [0; GROUP_MAX], b: [0; GROUP_MAX], x: [0; GROUP_MAX] };
            self.slots[s].work = Some(Work::Group(Box::new(g)));
            k.next_elem += n as u64;
            k.next_group += 1;
            progress = true;
        }
        let idle = self.slots.iter().all(|s| s.work.is_none());
        if idle && k.final_store && k.failure.is_none() && k.next_elem == k.d.count {
            k.final_store = false;
            self.slots[0].work = Some(Work::FinalStore);
            progress = true;
        }
        progress
    }

    /// The request `slot` issues next, if it has one to issue.
    fn request(&self, slot: usize) -> Option<Req> {
        let k = self.kernel.as_ref()?;
        let s = &self.slots[slot];
        if s.stall.is_some() {
            return None;
        }
        let d = &k.d;
        let g = match s.work.as_ref()? {
            Work::FinalStore => return Some(Req::store(d.c, [k.result as u32].into_iter())),
            Work::Group(g) => g,
        };
        let at = |base: u64| base.wrapping_add(4 * g.first);
        let len = 4 * g.n;
        Some(match step(d.opcode, g.n, g.step)? {
            Step::LoadA => Req::load(at(d.a), len),
            Step::LoadB => Req::load(at(d.b), len),
            Step::Gather(k) => Req::load(d.a.wrapping_add(4 * u64::from(g.b[k])), 4),
            Step::StoreC => Req::store(
                at(d.c),
                (0..g.n).map(|i| match d.opcode {
                    op::COPY => g.a[i],
                    op::FILL => d.scalar,
                    op::ADD => g.a[i].wrapping_add(g.b[i]),
                    op::SCALE => g.a[i].wrapping_mul(d.scalar),
                    _ => g.x[i],
                }),
            ),
            Step::Touch => {
                let va = d.a.wrapping_add(g.first.wrapping_mul(d.stride));
                if d.flag(regs::kernel_flag::WRITE) { Req::store(va, [d.scalar].into_iter()) } else { Req::load(va, 4) }
            }
        })
    }

    /// `slot`'s request completed with `data` (loaded words): the work moves on.
    fn complete(&mut self, slot: usize, data: &[u8]) {
        let Some(k) = &mut self.kernel else { return };
        let Some(Work::Group(g)) = &mut self.slots[slot].work else {
            self.slots[slot].work = None; // the final store
            return;
        };
        let mut words = data.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        match step(k.d.opcode, g.n, g.step) {
            Some(Step::LoadA) => {
                for (i, w) in words.enumerate() {
                    g.a[i] = w;
                    if k.d.opcode == op::REDUCE_SUM {
                        k.result = k.result.wrapping_add(u64::from(w));
                    }
                }
            }
            Some(Step::LoadB) => words.enumerate().for_each(|(i, w)| g.b[i] = w),
            Some(Step::Gather(i)) => g.x[i] = words.next().unwrap_or(0),
            Some(Step::Touch) if !k.d.flag(regs::kernel_flag::WRITE) => {
                k.result = k.result.wrapping_add(u64::from(words.next().unwrap_or(0)));
            }
            _ => {}
        }
        g.step += 1;
        if step(k.d.opcode, g.n, g.step).is_none() {
            k.done += g.n as u64;
            self.slots[slot].work = None;
        }
    }

    /// The kernel has nothing left to do but its KCPL.
    fn finished(&self) -> bool {
        self.kernel.as_ref().is_some_and(|k| {
            self.slots.iter().all(|s| s.work.is_none())
                && (k.failure.is_some() || (k.next_elem == k.d.count && !k.final_store))
        })
    }
}

impl ModelDevice {
    fn cu_hung(&self) -> bool {
        regs::errinj_hang::CU.get32(self.rw.get(regs::ERRINJ_HANG, 0)) == 1
    }

    /// KQ and KCQ, if CU_EN is set and both rings are valid.
    fn cu_rings(&self) -> Option<((u64, u16), (u64, u16))> {
        let kq = self.ring(regs::KQ_BASE_LO, regs::KQ_BASE_HI, regs::KQ_SIZE_LOG2)?;
        let kcq = self.ring(regs::KCQ_BASE_LO, regs::KCQ_BASE_HI, regs::KCQ_SIZE_LOG2)?;
        self.ctrl(regs::ctrl::CU_EN).then_some((kq, kcq))
    }

    fn kq_pending(&self, mask: u16) -> bool {
        self.cu.head & mask != self.rw.get(regs::KQ_TAIL, 0) as u16 & mask
    }

    /// STATUS.CU_BUSY: a kernel in the unit, or unfetched kernels while enabled (like
    /// the command queue, also after a device error stopped the unit).
    pub(crate) fn cu_busy(&self) -> bool {
        self.cu.kernel.is_some() || self.cu_rings().is_some_and(|((_, mask), _)| self.kq_pending(mask))
    }

    /// STATUS.FAULTS_PENDING: some slot waits for a REPLAY.
    pub(crate) fn faults_pending(&self) -> bool {
        self.cu.slots.iter().any(|s| s.stall.is_some())
    }

    /// Delivers a REPLAY to the slot `reqid` names, if it waits for one (spec §7).
    pub(crate) fn replay(&mut self, reqid: u16, abort: bool) {
        let slot = usize::from(reqid & 0xFF);
        if reqid >> 8 != 1 || slot >= self.cu.slots.len() {
            return;
        }
        let Some(stall) = self.cu.slots[slot].stall.filter(|s| s.recorded) else { return };
        self.cu.slots[slot].stall = None;
        if abort {
            self.cu.fail(slot, ks::FAULT_ABORT, stall.va);
        }
    }

    /// Runs the unit until it can make no more progress; true if it made any.
    pub(crate) fn run_cu(&mut self) -> bool {
        let mut any = false;
        while !self.cu_hung() {
            let mut progress = if self.cu.kernel.is_none() { self.fetch_kernel() } else { self.cu.dispatch() };
            for slot in 0..self.cu.slots.len() {
                progress |= self.run_slot(slot);
            }
            progress |= self.write_kcpl();
            if !progress {
                break;
            }
            any = true;
        }
        any
    }

    fn fetch_kernel(&mut self) -> bool {
        let Some(((base, mask), _)) = self.cu_rings() else { return false };
        if self.cu.stopped || !self.kq_pending(mask) {
            return false;
        }
        let index = self.cu.head & mask;
        let mut rec = [0u8; kdesc::SIZE];
        let fetched = self.host_record_read(base.wrapping_add(u64::from(index) * kdesc::SIZE as u64), &mut rec);
        self.cu.head = index.wrapping_add(1) & mask;
        if !fetched {
            self.device_error(2, regs::dma_error::DESC_FETCH);
            self.cu.stopped = true;
            return true;
        }
        let d = KDesc::parse(&rec);
        let bad = !d.valid();
        self.cu.kernel = Some(Kernel {
            d,
            next_elem: if bad { d.count } else { 0 },
            next_group: 0,
            failure: bad.then_some(Failure { status: ks::BAD_DESC, va: 0 }),
            done: 0,
            result: 0,
            final_store: d.opcode == op::REDUCE_SUM && d.c != 0 && d.count != 0,
        });
        true
    }

    /// Runs `slot` until it stalls, fails or finishes its work; true if it issued any
    /// request.
    fn run_slot(&mut self, slot: usize) -> bool {
        let mut progress = false;
        while let Some(req) = self.cu.request(slot) {
            if self.ptw_hung() {
                break;
            }
            progress = true;
            let asid = self.cu.kernel.as_ref().map_or(0, |k| k.d.asid);
            match self.translate(asid, req.va, req.write) {
                Err(fault) => {
                    let order = self.cu.stalls;
                    self.cu.stalls += 1;
                    let stall = Stall { fault, asid, va: req.va, write: req.write, recorded: false, order };
                    self.cu.slots[slot].stall = Some(stall);
                    break;
                }
                Ok(phys) => match self.cu_access(phys, &req) {
                    Some(data) => self.cu.complete(slot, &data[..req.len]),
                    None => self.cu.fail(slot, ks::MEM_ERROR, req.va),
                },
            }
        }
        progress
    }

    /// One data request (one beat): the loaded bytes, or `None` on an error response.
    fn cu_access(&mut self, phys: Phys, req: &Req) -> Option<[u8; LINE as usize]> {
        let host = matches!(phys, Phys::Host(_));
        let inj = match (host, req.write) {
            (true, false) => Inj::HostRd,
            (true, true) => Inj::HostWr,
            (false, false) => Inj::DevRd,
            (false, true) => Inj::DevWr,
        };
        if self.inject(inj) {
            return None;
        }
        self.perf_port(!req.write, host, BEAT);
        let mut data = req.data;
        let buf = &mut data[..req.len];
        let ok = match phys {
            Phys::Dev(pa) if req.write => self.dev.write(pa, buf).is_ok(),
            Phys::Dev(pa) => self.dev.read(pa, buf).is_ok(),
            Phys::Host(iova) => {
                self.host.reachable(iova & !(BEAT - 1), BEAT as usize)
                    && if req.write { self.host.write(iova, buf) } else { self.host.read(iova, buf) }.is_ok()
            }
        };
        ok.then_some(data)
    }

    /// Writes the finished kernel's KCPL if the KCQ has room; true if the kernel left.
    fn write_kcpl(&mut self) -> bool {
        if !self.cu.finished() {
            return false;
        }
        let Some((base, mask)) = self.ring(regs::KCQ_BASE_LO, regs::KCQ_BASE_HI, regs::KCQ_SIZE_LOG2) else {
            return false;
        };
        let tail = self.cu.kcq_tail & mask;
        if tail.wrapping_add(1) & mask == self.rw.get(regs::KCQ_HEAD, 0) as u16 & mask {
            return false;
        }
        let Some(k) = self.cu.kernel.take() else { return false };
        let (status, va) = k.failure.map_or((ks::OK, 0), |f| (f.status, f.va));
        let mut rec = [0u8; kcpl::SIZE];
        kcpl::TAG.set(&mut rec, u64::from(k.d.tag));
        kcpl::STATUS.set(&mut rec, status);
        kcpl::ASID.set(&mut rec, u64::from(k.d.asid));
        kcpl::RESULT.set(&mut rec, k.result);
        kcpl::FAULT_VA.set(&mut rec, va);
        kcpl::DONE.set(&mut rec, k.done);
        if !self.host_record_write(base.wrapping_add(u64::from(tail) * kcpl::SIZE as u64), &rec) {
            self.device_error(2, regs::dma_error::CPL_WRITE);
            self.cu.stopped = true;
            return true;
        }
        self.cu.kcq_tail = tail.wrapping_add(1) & mask;
        if k.d.flag(regs::kernel_flag::IRQ) || status != ks::OK {
            self.int_status |= 1 << regs::int_cause::KERNEL;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(opcode: u64, a: u64, b: u64, c: u64, count: u64) -> KDesc {
        KDesc { opcode, flags: 0, asid: 0, tag: 0, count, stride: 0, a, b, c, scalar: 0 }
    }

    #[test]
    fn groups_stop_at_the_first_line_boundary_of_any_operand() {
        let d = desc(op::ADD, 0x1000, 0x2008, 0x3004, 100);
        assert_eq!(d.group_len(0), 14, "b reaches its line end after 14 words");
        assert_eq!(d.group_len(14), 1, "c's line ends after 15 words");
        assert_eq!(d.group_len(15), 1);
        assert_eq!(desc(op::FILL, 3, 3, 0x40, 100).group_len(0), 16, "FILL ignores a");
        assert_eq!(desc(op::FILL, 0, 0, 0x40, 5).group_len(0), 5, "COUNT ends the last group");
        assert_eq!(desc(op::GATHER, 4, 0x40, 0x80, 100).group_len(0), 16, "GATHER's a is not contiguous");
        assert_eq!(desc(op::STRIDED_TOUCH, 0, 0, 0, 100).group_len(7), 1);
        assert_eq!(desc(op::COPY, u64::MAX - 7, 0, 0, 100).group_len(0), 2, "addresses wrap");
    }

    #[test]
    fn request_order_of_each_operation() {
        use Step::*;
        let all = |opcode, n| (0..).map_while(|i| step(opcode, n, i)).collect::<Vec<_>>();
        assert_eq!(all(op::ADD, 3), [LoadA, LoadB, StoreC]);
        assert_eq!(all(op::GATHER, 2), [LoadB, Gather(0), Gather(1), StoreC]);
        assert_eq!(all(op::REDUCE_SUM, 16), [LoadA]);
        assert_eq!(all(op::FILL, 16), [StoreC]);
        assert_eq!(all(0, 16), []);
    }
}
