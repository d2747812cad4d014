//! Shared set-up for the MMU and compute-unit tests: the same rig drives the Verilated
//! RTL and the reference model (anything that is a `DeviceIo` with a device-memory
//! backdoor), so scenario code is written once.

#![allow(dead_code)] // each test binary uses its own part of the rig
#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::backdoor::{BackdoorTables, DevMemBackdoor};
use npu::cmdq::{CmdQueue, Command, InvalScope};
use npu::fault::{FaultQueue, FaultRecord};
use npu::kernel::{Kernel, KernelCompletion, KernelQueue};
use npu::sv39::{self, Access, TableBuilder};
use npu::{DeviceIo, DmaBuffer, regs};

/// Print the device's counters while settling (for debugging a diverging step).
pub static DEBUG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// splitmix64: small, seedable, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Device-time budget for one wait.
pub const BUDGET_NS: u64 = 50_000_000;
/// Page tables are allocated from here up (device-physical).
pub const TABLE_BASE: u64 = 200 << 20;

/// Page-table roots and a bump allocator of table pages in device memory.
pub struct Tables {
    pub next: u64,
    pub roots: [Option<u64>; 16],
}

impl Tables {
    fn alloc<D: DevMemBackdoor>(&mut self, dev: &mut D) -> u64 {
        let t = self.next;
        self.next += sv39::PAGE;
        dev.backdoor_write(t, &[0u8; sv39::PAGE as usize]).unwrap();
        t
    }

    /// Root of `asid` (created and written to PTROOT on first use).
    pub fn root<D: DeviceIo + DevMemBackdoor>(&mut self, dev: &mut D, asid: u16) -> u64 {
        if let Some(r) = self.roots[usize::from(asid)] {
            return r;
        }
        let r = self.alloc(dev);
        self.roots[usize::from(asid)] = Some(r);
        let v = regs::ptroot::PPN.put32(0, (r >> 12) as u32);
        dev.write32(regs::PTROOT.offset + 4 * u32::from(asid), regs::ptroot::VALID.put32(v, 1)).unwrap();
        r
    }

    /// Maps one 4 KiB or 2 MiB page.
    pub fn map<D: DeviceIo + DevMemBackdoor>(
        &mut self,
        dev: &mut D,
        asid: u16,
        va: u64,
        pa: u64,
        size: u64,
        write: bool,
    ) {
        let root = self.root(dev, asid);
        // The builder links at most two new tables (levels 1 and 0), taken from the
        // bump pointer: zero them before it can.
        for t in 0..2 {
            dev.backdoor_write(self.next + t * sv39::PAGE, &[0u8; sv39::PAGE as usize]).unwrap();
        }
        let mut next = self.next;
        let mut alloc = || {
            let t = next;
            next += sv39::PAGE;
            Some(t)
        };
        TableBuilder { mem: &mut BackdoorTables(dev), root }.map(va, pa, size, write, &mut alloc).unwrap();
        self.next = next;
    }

    /// Removes the leaf at `va`; returns its PTE.
    pub fn unmap<D: DeviceIo + DevMemBackdoor>(&mut self, dev: &mut D, asid: u16, va: u64) -> Option<u64> {
        let root = self.root(dev, asid);
        let mut b = TableBuilder { mem: &mut BackdoorTables(dev), root };
        b.unmap(va).unwrap().map(|p| p.0)
    }

    /// Address of the leaf PTE of `va` (which must be mapped).
    pub fn leaf_at<D: DeviceIo + DevMemBackdoor>(&mut self, dev: &mut D, asid: u16, va: u64) -> u64 {
        let mut table = self.root(dev, asid);
        for level in (0..=2u32).rev() {
            let at = table + ((va >> (12 + 9 * level)) & 0x1FF) * 8;
            let pte = sv39::Pte(read_u64(dev, at));
            if !pte.is_pointer() {
                return at;
            }
            table = pte.target();
        }
        panic!("{va:#x} has no leaf");
    }

    /// The independent software walk of `va` in `asid` over the device's memory.
    pub fn oracle<D: DeviceIo + DevMemBackdoor>(
        &mut self,
        dev: &mut D,
        asid: u16,
        va: u64,
        access: Access,
    ) -> Result<sv39::Translation, sv39::WalkFault> {
        let root = self.root(dev, asid);
        let size = dev.dev_mem_size();
        sv39::walk(&BackdoorTables(dev), root, va, access, size)
    }
}

pub fn read_u64<D: DevMemBackdoor>(dev: &D, at: u64) -> u64 {
    let mut b = [0u8; 8];
    dev.backdoor_read(at, &mut b).unwrap();
    u64::from_le_bytes(b)
}

pub fn put_words<D: DevMemBackdoor>(dev: &mut D, pa: u64, words: &[u32]) {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    dev.backdoor_write(pa, &bytes).unwrap();
}

pub fn words<D: DevMemBackdoor>(dev: &D, pa: u64, n: usize) -> Vec<u32> {
    let mut bytes = vec![0u8; n * 4];
    dev.backdoor_read(pa, &mut bytes).unwrap();
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// What the fault handler of [`Rig::run`] answers.
pub enum Reply {
    Retry,
    Abort,
    /// Retry, with these commands ahead of the REPLAYs in the same submission.
    RetryAfter(Vec<Command>),
}

/// A device with its command, fault and kernel queues set up and the MMU on.
pub struct Rig<D: DeviceIo + DevMemBackdoor> {
    pub dev: D,
    pub cmdq: CmdQueue,
    pub fq: FaultQueue,
    pub kq: KernelQueue,
    pub tables: Tables,
    /// Device time let pass after a fault interrupt before the batch is read, so every
    /// slot that is going to fault before software answers has faulted (the set of
    /// records is then independent of timing, docs/device.md 7).
    pub settle_ns: u64,
}

impl<D: DeviceIo + DevMemBackdoor> Rig<D> {
    pub fn new(dev: D) -> Self {
        Self::with_fq(dev, 6)
    }

    pub fn with_fq(mut dev: D, fq_log2: u32) -> Self {
        let cmdq = CmdQueue::init(&mut dev, 6).unwrap();
        let fq = FaultQueue::init(&mut dev, fq_log2).unwrap();
        let kq = KernelQueue::init(&mut dev, 4).unwrap();
        let ctrl = dev.read32(regs::CTRL.offset).unwrap();
        dev.write32(regs::CTRL.offset, regs::ctrl::MMU_EN.put32(ctrl, 1)).unwrap();
        let mask = (1 << regs::int_cause::FAULT) | (1 << regs::int_cause::KERNEL) | (1 << regs::int_cause::CMD);
        dev.write32(regs::INT_MASK.offset, mask).unwrap();
        Self { dev, cmdq, fq, kq, tables: Tables { next: TABLE_BASE, roots: [None; 16] }, settle_ns: 0 }
    }

    pub fn map(&mut self, asid: u16, va: u64, pa: u64, size: u64, write: bool) {
        self.tables.map(&mut self.dev, asid, va, pa, size, write);
    }

    /// Maps `pages` consecutive 4 KiB pages.
    pub fn map_range(&mut self, asid: u16, va: u64, pa: u64, pages: u64, write: bool) {
        for p in 0..pages {
            self.map(asid, va + p * sv39::PAGE, pa + p * sv39::PAGE, sv39::PAGE, write);
        }
    }

    /// Runs commands and waits for their FENCE.
    pub fn fenced(&mut self, cmds: &[Command]) {
        self.cmdq.run_fenced(&mut self.dev, cmds, BUDGET_NS).unwrap();
    }

    pub fn inval_all(&mut self) {
        self.fenced(&[Command::Inval(InvalScope::All)]);
    }

    /// Submits `kernel`, answers each batch of its faults (sorted by REQID) with one
    /// reply from `on_batch` (which may edit page tables first), and returns its
    /// completion and every fault batch seen.
    pub fn run(
        &mut self,
        kernel: Kernel,
        on_batch: &mut dyn FnMut(&mut D, &mut Tables, &[FaultRecord]) -> Reply,
    ) -> (KernelCompletion, Vec<Vec<FaultRecord>>) {
        self.run_with(kernel, &[], on_batch)
    }

    /// [`Rig::run`], with `cmds` submitted to the command queue right after the kernel
    /// (so an invalidation can meet the kernel's walks).
    pub fn run_with(
        &mut self,
        kernel: Kernel,
        cmds: &[Command],
        on_batch: &mut dyn FnMut(&mut D, &mut Tables, &[FaultRecord]) -> Reply,
    ) -> (KernelCompletion, Vec<Vec<FaultRecord>>) {
        self.kq.submit(&mut self.dev, &[kernel.with_irq()]).unwrap();
        if !cmds.is_empty() {
            self.cmdq.submit(&mut self.dev, cmds).unwrap();
        }
        let mut seen = Vec::new();
        let wake = (1 << regs::int_cause::FAULT) | (1 << regs::int_cause::KERNEL);
        let deadline = self.dev.now_ns() + BUDGET_NS;
        loop {
            let pending =
                self.dev.read32(regs::FQ_TAIL.offset).unwrap() != self.dev.read32(regs::FQ_HEAD.offset).unwrap();
            // Read the batch only after the check that decided to settle (a record may
            // arrive between the two register reads).
            let mut faults = Vec::new();
            if pending {
                if self.settle_ns > 0 {
                    self.settle();
                }
                faults = self.fq.drain(&mut self.dev).unwrap();
            }
            if !faults.is_empty() {
                faults.sort_by_key(|f| f.reqid);
                let (abort, mut cmds) = match on_batch(&mut self.dev, &mut self.tables, &faults) {
                    Reply::Retry => (false, Vec::new()),
                    Reply::Abort => (true, Vec::new()),
                    Reply::RetryAfter(first) => (false, first),
                };
                cmds.extend(faults.iter().map(|f| f.replay(abort)));
                self.cmdq.submit(&mut self.dev, &cmds).unwrap();
                seen.push(faults);
            }
            let done = self.kq.completions(&mut self.dev).unwrap();
            if let Some(c) = done.into_iter().next() {
                return (c, seen);
            }
            assert!(self.dev.now_ns() < deadline, "kernel did not complete; faults so far: {seen:#?}");
            self.dev.wait_irq(wake, 20_000).unwrap();
        }
    }

    /// Lets device time pass until no memory port has moved a beat and no fault record
    /// has been written for `settle_ns`: every slot is then stalled on a fault or idle.
    pub fn settle(&mut self) {
        let activity = |dev: &mut D| -> u64 {
            let mut sum = u64::from(dev.read32(regs::FQ_TAIL.offset).unwrap());
            for c in [
                regs::perf_ctr::HOST_RD_BYTES,
                regs::perf_ctr::HOST_WR_BYTES,
                regs::perf_ctr::DEV_RD_BYTES,
                regs::perf_ctr::DEV_WR_BYTES,
            ] {
                let lo = dev.read32(regs::PERF_LO.offset + 8 * c as u32).unwrap();
                sum = sum.wrapping_add(u64::from(lo));
            }
            sum
        };
        let mut last = activity(&mut self.dev);
        loop {
            self.dev.advance(self.settle_ns).unwrap();
            let now = activity(&mut self.dev);
            if DEBUG.load(std::sync::atomic::Ordering::Relaxed) {
                let c: Vec<u32> = (0..9).map(|i| self.dev.read32(regs::PERF_LO.offset + 8 * i).unwrap()).collect();
                let st = self.dev.read32(regs::STATUS.offset).unwrap();
                let fq =
                    (self.dev.read32(regs::FQ_HEAD.offset).unwrap(), self.dev.read32(regs::FQ_TAIL.offset).unwrap());
                eprintln!("settle: t={} activity {now} status {st:#x} fq {fq:?} counters {c:?}", self.dev.now_ns());
            }
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// Runs a kernel that must not fault.
    pub fn run_clean(&mut self, kernel: Kernel) -> KernelCompletion {
        let (c, faults) = self.run(kernel, &mut |_, _, f| panic!("unexpected faults {f:?}"));
        assert!(faults.is_empty());
        c
    }
}

/// A host buffer mapped for the device.
pub fn host_buffer<D: DeviceIo>(dev: &mut D, len: usize) -> (DmaBuffer, u64) {
    let buf = DmaBuffer::new(len).unwrap();
    let iova = dev.dma_map(&buf).unwrap();
    (buf, iova)
}
