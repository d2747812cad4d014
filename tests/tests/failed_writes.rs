//! An MMIO write that does not reach the device (a transport failure) loses nothing: the
//! driver's state follows what the device took, so a retried operation writes again
//! what the failed one meant to write.
//!
//! Here every command-queue doorbell fails while the CPU takes back pages the NPU
//! holds: the invalidation that removes the device's mappings cannot be sent. The
//! released PTEs must still reach device memory when the access is retried; sending the
//! INVALs alone would let the next walk refill the TLB from the stale entry and the NPU
//! would read and write the freed frames. And a soft reset whose drain cannot be watched
//! (its STATUS read fails) has still reset the device: the driver's rings follow at
//! once, or the next doorbell would hand the device old commands again. Runs on the RTL
//! and on the model, and on the RTL with the driver's pushes on (`NpuConfig::push`: a
//! push committed before a failed doorbell is forgotten before its slot is rung again).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::inject::Injector;
use gmem_host::{Asid, MapFlags, Residency};
use npu::kernel::Kernel;
use npu::session::{Session, manager_config};
use npu::{DeviceIo, NpuConfig, regs};

const N: usize = 8 * 1024; // words: 8 pages per region
const LEN: u64 = (N * 4) as u64;

fn word(p: *mut u32, i: usize) -> *mut u32 {
    assert!(i < N);
    // SAFETY: i < N, inside a live region of N words.
    unsafe { p.add(i) }
}

/// The device mappings of `[va, va + LEN)` as they are in device memory.
fn device_mappings<T: DeviceIo + Send + 'static>(s: &Session<T>, va: u64) -> Vec<String> {
    let dump = s.npu.pte_dump(Asid(u32::from(s.asid)), false).unwrap();
    dump.lines()
        .filter(|l| {
            let start = l.split("..").next().and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
            start.is_some_and(|a| (va..va + LEN).contains(&a))
        })
        .map(str::to_string)
        .collect()
}

fn failed_invalidation_leaves_no_stale_mapping<T: DeviceIo + Send + 'static>(io: T, push: bool) {
    let inj = Injector::new(1);
    let s = Session::open_faulty(io, NpuConfig { push, ..NpuConfig::default() }, manager_config(), &inj).unwrap();
    let region = || s.gm.mmap(s.space, LEN, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    let (p, q) = (region(), region());
    s.launch(Kernel::fill(s.asid, p as u64, N as u32, 7)).unwrap();
    assert_eq!(s.gm.page_info(s.space, p as u64).unwrap().residency, Residency::Device);
    assert_eq!(device_mappings(&s, p as u64).len(), 8, "the fill mapped every page of p");

    let tail = regs::CMDQ_TAIL.offset;
    inj.add_text(&format!("io:write32=range:{tail:#x}:{:#x}", tail + 4)).unwrap();
    let err = s.gm.cpu_access(p as u64, LEN, true).unwrap_err();
    assert!(err.to_string().contains("invalidat"), "{err}");
    inj.clear();

    // Retried: the CPU gets its pages, and no PTE in device memory names them any more.
    s.gm.cpu_access(p as u64, LEN, true).unwrap();
    for i in 0..N {
        // SAFETY: inside p; the pages are the CPU's and writable.
        unsafe { word(p, i).write(i as u32) };
    }
    assert_eq!(s.gm.page_info(s.space, p as u64).unwrap().residency, Residency::Cpu);
    assert_eq!(device_mappings(&s, p as u64), Vec::<String>::new(), "stale device mappings of p");
    // The NPU reads what the CPU wrote, not the frames p had on the device.
    s.launch(Kernel::scale(s.asid, p as u64, q as u64, N as u32, 3)).unwrap();
    for i in 0..N {
        // SAFETY: inside q; device pages fault back to the CPU.
        assert_eq!(unsafe { word(q, i).read() }, 3 * i as u32, "q[{i}]");
    }
}

fn reset_whose_drain_read_fails_still_resyncs<T: DeviceIo + Send + 'static>(io: T, push: bool) {
    let inj = Injector::new(1);
    let s = Session::open_faulty(io, NpuConfig { push, ..NpuConfig::default() }, manager_config(), &inj).unwrap();
    let p = s.gm.mmap(s.space, LEN, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    s.launch(Kernel::fill(s.asid, p as u64, N as u32, 7)).unwrap();
    s.gm.cpu_access(p as u64, LEN, true).unwrap();
    assert_ne!(s.npu.command_ring_tail(), 0, "commands went out");
    // The RESET write reaches the device; the first STATUS read of the drain fails.
    inj.add_text("io:read32=count:0:1").unwrap();
    assert!(s.npu.recover().is_err());
    inj.clear();
    let device_tail = s.npu.with_io(|io| io.read32(regs::CMDQ_TAIL.offset)).unwrap();
    assert_eq!((s.npu.command_ring_tail(), device_tail), (0, 0), "the driver's ring follows the device's reset");
    // The device works on, and the data is intact.
    s.launch(Kernel::scale(s.asid, p as u64, p as u64, N as u32, 3)).unwrap();
    for i in 0..N {
        // SAFETY: inside p; device pages fault back to the CPU.
        assert_eq!(unsafe { word(p, i).read() }, 21, "p[{i}]");
    }
}

#[test]
fn rtl_reset_whose_drain_read_fails_still_resyncs() {
    reset_whose_drain_read_fails_still_resyncs(sim_bridge::SimDevice::new(Default::default()).unwrap(), false);
}

#[test]
fn rtl_pushed_reset_whose_drain_read_fails_still_resyncs() {
    reset_whose_drain_read_fails_still_resyncs(sim_bridge::SimDevice::new(Default::default()).unwrap(), true);
}

#[test]
fn model_reset_whose_drain_read_fails_still_resyncs() {
    reset_whose_drain_read_fails_still_resyncs(npu_refmodel::ModelDevice::new(Default::default()), false);
}

#[test]
fn rtl_failed_invalidation_leaves_no_stale_mapping() {
    failed_invalidation_leaves_no_stale_mapping(sim_bridge::SimDevice::new(Default::default()).unwrap(), false);
}

#[test]
fn rtl_pushed_failed_invalidation_leaves_no_stale_mapping() {
    failed_invalidation_leaves_no_stale_mapping(sim_bridge::SimDevice::new(Default::default()).unwrap(), true);
}

#[test]
fn model_failed_invalidation_leaves_no_stale_mapping() {
    failed_invalidation_leaves_no_stale_mapping(npu_refmodel::ModelDevice::new(Default::default()), false);
}
