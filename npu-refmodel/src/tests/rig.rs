//! A model device with the command, fault, kernel and completion rings set up and Sv39
//! tables in its device memory; records are written and parsed by small local helpers.

use crate::{ModelConfig, ModelDevice};
use npu::backdoor::{BackdoorTables, DevMemBackdoor};
use npu::sv39::{self, PAGE, TableBuilder, TableMemory};
use npu::{DeviceIo, DmaBuffer, regs};

/// Device time let pass per step.
pub(super) const STEP_NS: u64 = 10_000;
/// Page-table pages are allocated from here up.
const TABLES: u64 = 0x0100_0000;
/// Every interrupt cause.
pub(super) const ALL_IRQS: u32 = 0x7F;

/// A kernel descriptor.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Kd {
    pub(super) op: u64,
    pub(super) flags: u64,
    pub(super) asid: u16,
    pub(super) tag: u16,
    pub(super) count: u32,
    pub(super) stride: u32,
    pub(super) a: u64,
    pub(super) b: u64,
    pub(super) c: u64,
    pub(super) scalar: u32,
}

/// A kernel completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Kc {
    pub(super) tag: u16,
    pub(super) status: u64,
    pub(super) asid: u16,
    pub(super) result: u64,
    pub(super) fault_va: u64,
    pub(super) done: u32,
}

/// A fault record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fr {
    pub(super) reqid: u16,
    pub(super) cause: u64,
    pub(super) write: bool,
    pub(super) level: u8,
    pub(super) asid: u16,
    pub(super) seq: u32,
    pub(super) va: u64,
    pub(super) pte: u64,
}

struct Ring {
    buf: DmaBuffer,
    iova: u64,
    mask: u16,
    /// The host's index: TAIL of CMDQ/KQ, HEAD of FQ/KCQ.
    index: u16,
}

impl Ring {
    fn new(dev: &mut ModelDevice, log2: u32, entry: usize, base_lo: npu::Reg, size: npu::Reg) -> Self {
        let buf = DmaBuffer::new((entry << log2).next_multiple_of(PAGE as usize)).unwrap();
        let iova = dev.dma_map(&buf).unwrap();
        dev.write64(base_lo.offset, iova).unwrap();
        dev.write32(size.offset, log2).unwrap();
        Self { buf, iova, mask: ((1u32 << log2) - 1) as u16, index: 0 }
    }
}

/// The rig: field order drops the device (and its host mappings) before the buffers.
pub(super) struct Rig {
    pub(super) dev: ModelDevice,
    cmdq: Ring,
    fq: Ring,
    kq: Ring,
    kcq: Ring,
    /// A host word for FENCE writes.
    pub(super) fence: DmaBuffer,
    pub(super) fence_iova: u64,
    host_pages: Vec<DmaBuffer>,
    next_table: u64,
}

impl Rig {
    /// Rings of 16 entries, enables CMDQ, FQ, CU and MMU, every interrupt unmasked.
    pub(super) fn new() -> Self {
        Self::with_rings(4, 4)
    }

    /// Like [`Rig::new`] with 2^`fq_log2` fault records and 2^`kcq_log2` completions.
    pub(super) fn with_rings(fq_log2: u32, kcq_log2: u32) -> Self {
        let mut dev = ModelDevice::new(ModelConfig { dev_mem_bytes: 64 << 20, ..ModelConfig::default() });
        let cmdq = Ring::new(&mut dev, 4, regs::cmd::SIZE, regs::CMDQ_BASE_LO, regs::CMDQ_SIZE_LOG2);
        let fq = Ring::new(&mut dev, fq_log2, regs::fault::SIZE, regs::FQ_BASE_LO, regs::FQ_SIZE_LOG2);
        let kq = Ring::new(&mut dev, 4, regs::kdesc::SIZE, regs::KQ_BASE_LO, regs::KQ_SIZE_LOG2);
        let kcq = Ring::new(&mut dev, kcq_log2, regs::kcpl::SIZE, regs::KCQ_BASE_LO, regs::KCQ_SIZE_LOG2);
        let fence = DmaBuffer::new(PAGE as usize).unwrap();
        let fence_iova = dev.dma_map(&fence).unwrap();
        use regs::ctrl as c;
        let ctrl = [c::CMDQ_EN, c::FQ_EN, c::CU_EN, c::MMU_EN].iter().fold(0, |v, f| f.put32(v, 1));
        dev.write32(regs::CTRL.offset, ctrl).unwrap();
        dev.write32(regs::INT_MASK.offset, ALL_IRQS).unwrap();
        Self { dev, cmdq, fq, kq, kcq, fence, fence_iova, host_pages: Vec::new(), next_table: TABLES }
    }

    /// Lets device time pass (the model runs every unit).
    pub(super) fn step(&mut self) {
        self.dev.advance(STEP_NS).unwrap();
    }

    pub(super) fn rd(&mut self, r: npu::Reg) -> u32 {
        self.dev.read32(r.offset).unwrap()
    }

    pub(super) fn wr(&mut self, r: npu::Reg, v: u32) {
        self.dev.write32(r.offset, v).unwrap()
    }

    /// Sets one CTRL enable.
    pub(super) fn ctrl(&mut self, enable: npu::Field, on: bool) {
        let v = self.rd(regs::CTRL);
        self.wr(regs::CTRL, enable.put32(v, u32::from(on)));
    }

    /// Takes and acknowledges the pending interrupt causes.
    pub(super) fn irqs(&mut self) -> u32 {
        let s = self.rd(regs::INT_STATUS);
        self.wr(regs::INT_ACK, s);
        s
    }

    /// IOVAs of the rings: (CMDQ, FQ, KQ, KCQ).
    pub(super) fn ring_iovas(&self) -> (u64, u64, u64, u64) {
        (self.cmdq.iova, self.fq.iova, self.kq.iova, self.kcq.iova)
    }

    /// RESET.SOFT; the host's ring indices return to 0 with the device's.
    pub(super) fn soft_reset(&mut self) {
        self.wr(regs::RESET, 1);
        for r in [&mut self.cmdq, &mut self.fq, &mut self.kq, &mut self.kcq] {
            r.index = 0;
        }
    }

    // ---- page tables

    fn alloc_table(&mut self) -> u64 {
        self.next_table += PAGE;
        self.next_table - PAGE
    }

    /// Gives `asid` an empty root table; returns its address.
    pub(super) fn new_root(&mut self, asid: u32) -> u64 {
        let root = self.alloc_table();
        self.wr_at(regs::PTROOT, asid, 1 << 31 | (root >> 12) as u32);
        root
    }

    fn wr_at(&mut self, r: npu::Reg, i: u32, v: u32) {
        self.dev.write32(r.at(i).unwrap(), v).unwrap();
    }

    /// Root table of `asid` (from PTROOT).
    pub(super) fn root(&mut self, asid: u32) -> u64 {
        let v = self.dev.read32(regs::PTROOT.at(asid).unwrap()).unwrap();
        u64::from(regs::ptroot::PPN.get32(v)) << 12
    }

    /// Maps one page (4 KiB or 2 MiB) in `asid`'s tables (A, and D if writable, preset).
    pub(super) fn map(&mut self, asid: u32, va: u64, pa: u64, size: u64, write: bool) {
        let root = self.root(asid);
        let mut next = self.next_table;
        let mut alloc = || {
            next += PAGE;
            Some(next - PAGE)
        };
        TableBuilder { mem: &mut BackdoorTables(&mut self.dev), root }.map(va, pa, size, write, &mut alloc).unwrap();
        self.next_table = next;
    }

    /// Maps `pages` 4 KiB pages from `va` to device memory from `pa`, writable.
    pub(super) fn map_range(&mut self, asid: u32, va: u64, pa: u64, pages: u64) {
        for i in 0..pages {
            self.map(asid, va + i * PAGE, pa + i * PAGE, PAGE, true);
        }
    }

    /// Address of the leaf PTE of `va` (which must be mapped by 4 KiB pages).
    pub(super) fn leaf_pte_addr(&mut self, asid: u32, va: u64) -> u64 {
        let mut table = self.root(asid);
        let t = BackdoorTables(&mut self.dev);
        for level in [2u32, 1] {
            table = sv39::Pte(t.read_pte(table + (va >> (12 + 9 * level) & 0x1FF) * 8).unwrap()).target();
        }
        table + (va >> 12 & 0x1FF) * 8
    }

    pub(super) fn pte(&mut self, at: u64) -> u64 {
        BackdoorTables(&mut self.dev).read_pte(at).unwrap()
    }

    pub(super) fn set_pte(&mut self, at: u64, pte: u64) {
        BackdoorTables(&mut self.dev).write_pte(at, pte).unwrap()
    }

    /// The oracle's translation of `va` in `asid`.
    pub(super) fn oracle(
        &mut self,
        asid: u32,
        va: u64,
        access: sv39::Access,
    ) -> Result<sv39::Translation, sv39::WalkFault> {
        let root = self.root(asid);
        sv39::walk(&BackdoorTables(&mut self.dev), root, va, access, 64 << 20)
    }

    /// A fresh, DMA-mapped host page (zeroed); returns its index and IOVA.
    pub(super) fn host_page(&mut self) -> (usize, u64) {
        let buf = DmaBuffer::new(PAGE as usize).unwrap();
        let iova = self.dev.dma_map(&buf).unwrap();
        self.host_pages.push(buf);
        (self.host_pages.len() - 1, iova)
    }

    pub(super) fn host_page_buf(&self, i: usize) -> &DmaBuffer {
        &self.host_pages[i]
    }

    // ---- device memory words

    pub(super) fn put_words(&mut self, pa: u64, words: &[u32]) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.dev.backdoor_write(pa, &bytes).unwrap();
    }

    pub(super) fn words(&mut self, pa: u64, n: usize) -> Vec<u32> {
        let mut bytes = vec![0u8; 4 * n];
        self.dev.backdoor_read(pa, &mut bytes).unwrap();
        bytes.chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().unwrap())).collect()
    }

    // ---- rings

    /// Queues kernels and rings the KQ doorbell once.
    pub(super) fn submit(&mut self, kernels: &[Kd]) {
        for k in kernels {
            let mut rec = [0u8; regs::kdesc::SIZE];
            use regs::kdesc as f;
            for (field, v) in [
                (f::OPCODE, k.op),
                (f::FLAGS, k.flags),
                (f::ASID, u64::from(k.asid)),
                (f::TAG, u64::from(k.tag)),
                (f::COUNT, u64::from(k.count)),
                (f::STRIDE, u64::from(k.stride)),
                (f::A, k.a),
                (f::B, k.b),
                (f::C, k.c),
                (f::SCALAR, u64::from(k.scalar)),
            ] {
                field.set(&mut rec, v);
            }
            let i = usize::from(self.kq.index);
            self.kq.buf.write(i * regs::kdesc::SIZE, &rec).unwrap();
            self.kq.index = self.kq.index.wrapping_add(1) & self.kq.mask;
        }
        let tail = self.kq.index;
        self.wr(regs::KQ_TAIL, u32::from(tail));
    }

    /// Consumes every kernel completion written so far.
    pub(super) fn completions(&mut self) -> Vec<Kc> {
        let tail = self.rd(regs::KCQ_TAIL) as u16;
        let mut out = Vec::new();
        while self.kcq.index != tail {
            let mut r = [0u8; regs::kcpl::SIZE];
            self.kcq.buf.read(usize::from(self.kcq.index) * regs::kcpl::SIZE, &mut r).unwrap();
            let f = |field: npu::Field| field.get(&r).unwrap();
            use regs::kcpl as k;
            out.push(Kc {
                tag: f(k::TAG) as u16,
                status: f(k::STATUS),
                asid: f(k::ASID) as u16,
                result: f(k::RESULT),
                fault_va: f(k::FAULT_VA),
                done: f(k::DONE) as u32,
            });
            self.kcq.index = self.kcq.index.wrapping_add(1) & self.kcq.mask;
        }
        let head = self.kcq.index;
        self.wr(regs::KCQ_HEAD, u32::from(head));
        out
    }

    /// Submits one kernel, lets time pass and returns its completion.
    pub(super) fn run(&mut self, k: Kd) -> Kc {
        self.submit(&[k]);
        self.step();
        let c = self.completions();
        assert_eq!(c.len(), 1, "one completion for {k:?}");
        c[0]
    }

    /// Consumes every fault record written so far.
    pub(super) fn faults(&mut self) -> Vec<Fr> {
        let tail = self.rd(regs::FQ_TAIL) as u16;
        let mut out = Vec::new();
        while self.fq.index != tail {
            let mut r = [0u8; regs::fault::SIZE];
            self.fq.buf.read(usize::from(self.fq.index) * regs::fault::SIZE, &mut r).unwrap();
            let f = |field: npu::Field| field.get(&r).unwrap();
            use regs::fault as k;
            out.push(Fr {
                reqid: f(k::REQID) as u16,
                cause: f(k::CAUSE),
                write: f(k::ACCESS) == 1,
                level: f(k::LEVEL) as u8,
                asid: f(k::ASID) as u16,
                seq: f(k::SEQ) as u32,
                va: f(k::VA),
                pte: f(k::PTE),
            });
            self.fq.index = self.fq.index.wrapping_add(1) & self.fq.mask;
        }
        let head = self.fq.index;
        self.wr(regs::FQ_HEAD, u32::from(head));
        out
    }

    /// Queues raw commands {opcode, flags, asid, arg, addr} and rings the doorbell.
    pub(super) fn commands(&mut self, cmds: &[(u64, u64, u16, u32, u64)]) {
        for &(op, flags, asid, arg, addr) in cmds {
            let mut rec = [0u8; regs::cmd::SIZE];
            use regs::cmd as f;
            for (field, v) in [
                (f::OPCODE, op),
                (f::FLAGS, flags),
                (f::ASID, u64::from(asid)),
                (f::ARG, u64::from(arg)),
                (f::ADDR, addr),
            ] {
                field.set(&mut rec, v);
            }
            let i = usize::from(self.cmdq.index);
            self.cmdq.buf.write(i * regs::cmd::SIZE, &rec).unwrap();
            self.cmdq.index = self.cmdq.index.wrapping_add(1) & self.cmdq.mask;
        }
        let tail = self.cmdq.index;
        self.wr(regs::CMDQ_TAIL, u32::from(tail));
    }

    /// Answers faults with REPLAY commands (RETRY, or ABORT if `abort`).
    pub(super) fn replay(&mut self, reqids: &[u16], abort: bool) {
        let cmds: Vec<_> =
            reqids.iter().map(|&r| (regs::cmd_opcode::REPLAY, u64::from(abort), 0, u32::from(r), 0)).collect();
        self.commands(&cmds);
    }

    /// The FENCE word.
    pub(super) fn fence_word(&self) -> u32 {
        self.fence.read_u32(0).unwrap()
    }
}

/// Records of one batch sorted by REQID with SEQ renumbered from `first_seq` (the order
/// of simultaneous faults is timing-dependent, the set is not); checks that the SEQs were
/// consecutive from `first_seq`.
pub(super) fn batch(mut faults: Vec<Fr>, first_seq: u32) -> Vec<Fr> {
    let mut seqs: Vec<u32> = faults.iter().map(|f| f.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (first_seq..first_seq + faults.len() as u32).collect::<Vec<_>>(), "SEQ runs on");
    faults.sort_by_key(|f| f.reqid);
    for (i, f) in faults.iter_mut().enumerate() {
        f.seq = first_seq + i as u32;
    }
    faults
}

/// Deterministic test data.
pub(super) fn word(i: usize) -> u32 {
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 29) as u32
}
