//! The NPU's pipelined copies (`GmMmu::copy_start` / `copy_finish`, `Hooks::ASYNC_COPY`)
//! on the RTL and the reference model: a started copy lands, another use of the DMA
//! engine waits for it and keeps its result, a failed transfer and a soft reset are
//! reported by `copy_finish`, a ticket is finished once, and migrations of several
//! parts through the whole stack keep every word.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::{
    CopyOp, CopyTicket, GmMmu, Hint, Hooks, HostRegion, HostRegionId, HostRegionKind, MapFlags, MemAddr, MmuError, Node,
};
use npu::kernel::Kernel;
use npu::{DeviceIo, DmaBuffer, NpuConfig, regs};
use tests::Stack;

const LEN: u64 = 128 << 10;
const REGION: HostRegionId = HostRegionId(0xA5C0);

/// A host buffer of `2 * LEN` registered with the NPU as region [`REGION`] (source in the
/// first half, read-back in the second), and two device frames' worth of space at the
/// top of managed memory, which the manager of this test never allocates from.
struct Rig<T: DeviceIo + Send + 'static> {
    s: Stack<T>,
    buf: DmaBuffer,
    dev: u64,
}

impl<T: DeviceIo + Send + 'static> Rig<T> {
    fn new(s: Stack<T>) -> Self {
        let buf = DmaBuffer::new(2 * LEN as usize).unwrap();
        let info = s.npu.info();
        assert!(info.hooks.contains(Hooks::ASYNC_COPY));
        let top = info.mem_ranges.iter().map(|r| r.end).max().unwrap();
        let region = HostRegion { id: REGION, kind: HostRegionKind::Staging, va: buf.as_ptr() as u64, len: 2 * LEN };
        // SAFETY: `buf` stays allocated until `Drop` unmapped the region; no reference to
        // its bytes exists while copies run (the test reads it through `DmaBuffer::read`).
        unsafe { s.npu.dma_map_host(&region) }.unwrap();
        Rig { s, buf, dev: top - 4 * LEN }
    }

    fn fill(&self, seed: u8) -> Vec<u8> {
        let data: Vec<u8> = (0..LEN).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        self.buf.write(0, &data).unwrap();
        data
    }

    /// Host source → device, in two elements.
    fn to_device(&self) -> [CopyOp; 2] {
        let half = LEN / 2;
        [0, half].map(|o| CopyOp {
            src: MemAddr::Host { region: REGION, offset: o },
            dst: MemAddr::Device(self.dev + o),
            len: half,
        })
    }

    /// What the device holds, copied back into the second half of the buffer.
    fn device_bytes(&self) -> Vec<u8> {
        let back =
            CopyOp { src: MemAddr::Device(self.dev), dst: MemAddr::Host { region: REGION, offset: LEN }, len: LEN };
        self.s.npu.copy_batch(&[back]).unwrap();
        let mut out = vec![0u8; LEN as usize];
        self.buf.read(LEN as usize, &mut out).unwrap();
        out
    }
}

impl<T: DeviceIo + Send + 'static> Drop for Rig<T> {
    fn drop(&mut self) {
        if let Err(e) = self.s.npu.dma_unmap_host(REGION) {
            eprintln!("unmapping the test region: {e}");
        }
    }
}

fn a_started_copy_lands_and_other_dma_waits_for_it<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let r = Rig::new(s);
    let now = || r.s.npu.with_io(|io| io.now_ns());
    let data = r.fill(1);
    let t0 = now();
    r.s.npu.copy_batch(&r.to_device()).unwrap();
    let blocking = now() - t0;

    // Started, then 100 us of other work: the copy ran meanwhile, finishing it is quick.
    let data2 = r.fill(2);
    let t = r.s.npu.copy_start(&r.to_device()).unwrap();
    assert_ne!(t, CopyTicket::DONE, "a small batch runs asynchronously");
    r.s.npu.with_io(|io| io.advance(100_000)).unwrap();
    let t1 = now();
    r.s.npu.copy_finish(t).unwrap();
    let waited = now() - t1;
    assert!(waited * 10 < blocking, "finish waited {waited} ns, a blocking copy takes {blocking} ns");
    assert_eq!(r.device_bytes(), data2);
    assert_ne!(data, data2);

    // A copy on the same channel while one runs waits for it first and keeps its result:
    // a failed started copy is reported by its copy_finish, not by the copy after it.
    r.fill(3);
    r.s.npu.with_io(|io| io.write32(regs::ERRINJ_HOST_RD.offset, 1)).unwrap();
    let t = r.s.npu.copy_start(&r.to_device()).unwrap();
    let other =
        CopyOp { src: MemAddr::Host { region: REGION, offset: 0 }, dst: MemAddr::Device(r.dev + LEN), len: LEN };
    r.s.npu.copy_batch(&[other]).unwrap();
    let e = r.s.npu.copy_finish(t).unwrap_err();
    assert!(matches!(e, MmuError::Dma { .. }), "{e}");
}

fn a_failed_read_is_reported_by_copy_finish<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let r = Rig::new(s);
    r.fill(3);
    r.s.npu.with_io(|io| io.write32(regs::ERRINJ_HOST_RD.offset, 1)).unwrap();
    let t = r.s.npu.copy_start(&r.to_device()).unwrap();
    let e = r.s.npu.copy_finish(t).unwrap_err();
    assert!(matches!(e, MmuError::Dma { .. }), "{e}");
    // The engine goes on: the next copy lands, and a PTE dump (tables read back by DMA)
    // between its start and its finish changes nothing.
    let data = r.fill(4);
    let t = r.s.npu.copy_start(&r.to_device()).unwrap();
    r.s.npu.pte_dump(gmem_host::Asid(u32::from(r.s.asid)), false).unwrap();
    r.s.npu.copy_finish(t).unwrap();
    assert_eq!(r.device_bytes(), data);
}

fn a_ticket_is_finished_once_and_a_soft_reset_voids_the_copy<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let r = Rig::new(s);
    r.fill(5);
    let t = r.s.npu.copy_start(&r.to_device()).unwrap();
    let id = t.id();
    r.s.npu.copy_finish(t).unwrap();
    let again = r.s.npu.copy_finish(CopyTicket::new(id)).unwrap_err();
    assert!(matches!(&again, MmuError::Device { hook: "copy_finish", .. }), "{again}");
    r.s.npu.copy_finish(CopyTicket::DONE).unwrap();

    let t = r.s.npu.copy_start(&r.to_device()).unwrap();
    r.s.npu.recover().unwrap();
    let e = r.s.npu.copy_finish(t).unwrap_err();
    assert!(e.to_string().contains("soft reset"), "{e}");
    let data = r.fill(6);
    let t = r.s.npu.copy_start(&r.to_device()).unwrap();
    r.s.npu.copy_finish(t).unwrap();
    assert_eq!(r.device_bytes(), data, "copies work after the reset");
}

/// 4 MiB each way in pipelined parts, end to end: a PREFETCH whose first part's copy
/// fails once (retried), a fault-driven stream (read-ahead of the second chunk), and
/// DONTNEEDs that bring both regions back in parts; every word is checked on the CPU.
fn pipelined_migrations_keep_every_word<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    const BYTES: u64 = 4 << 20;
    let words = (BYTES / 4) as usize;
    let pages = (BYTES / 4096) as u32;
    let region = |seed: u32| {
        let p = s.gm.mmap(s.space, BYTES, MapFlags::PEER_SHARED).unwrap() as *mut u32;
        for i in 0..words {
            // SAFETY: i < words, inside the region.
            unsafe { p.add(i).write(i as u32 ^ seed) };
        }
        p
    };
    let (p, q) = (region(0x1111), region(0x2222));
    let before = s.gm.counters();
    s.npu.with_io(|io| io.write32(regs::ERRINJ_HOST_RD.offset, 1)).unwrap();
    s.gm.hmadvise(s.space, Node::Device(s.id), p as u64, BYTES, Hint::Prefetch).unwrap();
    let after = s.gm.counters();
    assert!(after.dma_retries > before.dma_retries, "the failed copy was retried");
    // Word 0 of every page is overwritten on the device; q faults in as a stream.
    s.npu.launch(&s.gm, s.id, Kernel::strided_touch(s.asid, p as u64, 4096, pages, Some(7))).unwrap();
    let early = s.npu.stats().early_replays;
    s.npu.launch(&s.gm, s.id, Kernel::strided_touch(s.asid, q as u64, 4096, pages, Some(9))).unwrap();
    assert!(s.gm.counters().prefetched > after.prefetched + 512, "the stream came in as prefetches, not page by page");
    // The fault that brings the rest of the first chunk and the whole second one is
    // replayed once its part has committed, while later parts still copy, and so is each
    // fault the kernel raises meanwhile on a part committed since: more than a batch's
    // own records (one per compute-unit slot).
    let caps1 = s.npu.with_io(|io| io.read32(regs::CAPS1.offset)).unwrap();
    let slots = u64::from(regs::caps1::CU_INFLIGHT.get32(caps1));
    let replayed = s.npu.stats().early_replays - early;
    assert!(replayed > slots, "{replayed} early replays, {slots} slots: {:?}", s.npu.stats());
    for (r, seed, stored) in [(p, 0x1111, 7), (q, 0x2222, 9)] {
        s.gm.hmadvise(s.space, Node::Cpu, r as u64, BYTES, Hint::DontNeed).unwrap();
        for i in 0..words {
            let want = if i % 1024 == 0 { stored } else { i as u32 ^ seed };
            // SAFETY: i < words, inside the region; the pages are on the CPU again.
            assert_eq!(unsafe { r.add(i).read() }, want, "word {i}");
        }
    }
}

/// The 4 MiB fault stream with early replays on, its first N host-memory data bursts
/// failing (ERRINJ_HOST_RD: the ramp's first copies fail and the manager retries them):
/// the kernel ends with every word as written.
fn a_stream_with_a_failed_host_read_keeps_every_word<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    const BYTES: u64 = 4 << 20;
    let words = (BYTES / 4) as usize;
    for (n, fails) in [3u32, 40].into_iter().enumerate() {
        let seed = 0x3000 + n as u32;
        let p = s.gm.mmap(s.space, BYTES, MapFlags::PEER_SHARED).unwrap() as *mut u32;
        for i in 0..words {
            // SAFETY: i < words, inside the region.
            unsafe { p.add(i).write(i as u32 ^ seed) };
        }
        let before = s.gm.counters();
        s.npu.with_io(|io| io.write32(regs::ERRINJ_HOST_RD.offset, fails)).unwrap();
        s.npu
            .launch(&s.gm, s.id, Kernel::strided_touch(s.asid, p as u64, 4096, (BYTES / 4096) as u32, Some(5)))
            .unwrap();
        assert_eq!(s.npu.with_io(|io| io.read32(regs::ERRINJ_HOST_RD.offset)).unwrap(), 0, "every armed burst failed");
        assert!(s.gm.counters().dma_retries > before.dma_retries, "{fails} failed bursts were retried");
        s.gm.hmadvise(s.space, Node::Cpu, p as u64, BYTES, Hint::DontNeed).unwrap();
        for i in 0..words {
            let want = if i % 1024 == 0 { 5 } else { i as u32 ^ seed };
            // SAFETY: i < words, inside the region; the pages are on the CPU again.
            assert_eq!(unsafe { p.add(i).read() }, want, "{fails} failed bursts: word {i}");
        }
        s.gm.munmap(s.space, p as *mut u8, BYTES).unwrap();
    }
}

fn cfg() -> NpuConfig {
    NpuConfig { budget_ns: 2_000_000, ..Default::default() }
}

/// Each scenario on the RTL (`rtl::name`) and on the reference model (`model::name`).
macro_rules! on_both {
    ($($name:ident),*) => {
        mod rtl {
            $(#[test]
            fn $name() {
                super::$name(tests::rtl(super::cfg()));
            })*
        }
        mod model {
            $(#[test]
            fn $name() {
                super::$name(tests::model(super::cfg()));
            })*
        }
    };
}

on_both!(
    a_started_copy_lands_and_other_dma_waits_for_it,
    a_failed_read_is_reported_by_copy_finish,
    a_ticket_is_finished_once_and_a_soft_reset_voids_the_copy,
    pipelined_migrations_keep_every_word,
    a_stream_with_a_failed_host_read_keeps_every_word
);
