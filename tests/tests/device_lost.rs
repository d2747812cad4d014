//! An NPU that stops answering for good: its MMIO reads fail (a board that fell off the
//! bus), so the soft reset of `Session::recover` cannot even read STATUS. The session
//! declares it lost: read-duplicated pages are served by their CPU copy, the pages only
//! the NPU held are reported by range and raise SIGBUS when touched, CPU-only data is
//! untouched, and kernels, hints and the manager's hooks never reach the device again.
//!
//! Runs on the RTL and on the model; each case runs in a child process (it takes a
//! SIGBUS).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::inject::Injector;
use gmem_host::{GmemError, Hint, LostRange, MapFlags, Node, Residency};
use npu::kernel::Kernel;
use npu::session::{Recovery, Session, manager_config};
use npu::{DeviceIo, NpuConfig, NpuError};
use tests::sigbus;

const N: usize = 8 * 1024; // words: 8 pages per region
const LEN: u64 = (N * 4) as u64;

fn read(p: *mut u32, i: usize) -> u32 {
    // SAFETY: i < N, inside a live region.
    unsafe { p.add(i).read_volatile() }
}

fn write(p: *mut u32, i: usize, v: u32) {
    // SAFETY: i < N, inside a live region.
    unsafe { p.add(i).write_volatile(v) }
}

fn device_stops_answering<T: DeviceIo + Send + 'static>(io: T, name: &str) -> std::convert::Infallible {
    sigbus::install();
    let inj = Injector::new(1);
    let s = Session::open_faulty(io, NpuConfig::default(), manager_config(), &inj).unwrap();
    let region = || s.gm.mmap(s.space, LEN, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    let (dup, only, cpu) = (region(), region(), region());
    for i in 0..N {
        write(dup, i, i as u32);
        write(cpu, i, 7 * i as u32);
    }
    s.gm.hmadvise(s.space, Node::Device(s.id), dup as u64, LEN, Hint::ReadMostly).unwrap();
    // The NPU reads `dup` (read-duplicated) and writes `only` (device-resident).
    s.launch(Kernel::scale(s.asid, dup as u64, only as u64, N as u32, 3)).unwrap();
    let info = |p: *mut u32, pg: u64| s.gm.page_info(s.space, p as u64 + pg * 4096).unwrap();
    for pg in 0..8 {
        assert_eq!(info(dup, pg).residency, Residency::Dup, "dup page {pg}");
        assert_eq!(info(only, pg).residency, Residency::Device, "only page {pg}");
    }

    // One failed MMIO read costs one reset attempt, not the device.
    inj.add_text("io:read32=count:0:1").unwrap();
    assert!(matches!(s.recover().unwrap(), Recovery::Reset));
    assert!(!s.npu.is_lost());
    // Every MMIO read fails from now on: no reset can complete.
    inj.add_text("io:read32=count:0:4000000000").unwrap();
    let Recovery::Lost { cause, report } = s.recover().unwrap() else { panic!("the reset cannot have worked") };
    assert!(matches!(cause, NpuError::Io(_)), "{cause}");
    assert_eq!((report.recovered_pages, report.lost_pages, report.remote_dropped), (8, 8, 0), "{report:?}");
    assert_eq!(report.lost, [LostRange { space: s.space, va: only as u64, len: LEN }]);
    assert!(s.npu.is_lost());
    let reads_before = inj.counts().get("io:read32").copied().unwrap_or(0);

    // The duplicates are the CPU's again, writable; CPU-only data is intact.
    for i in 0..N {
        assert_eq!(read(dup, i), i as u32, "dup[{i}]");
        assert_eq!(read(cpu, i), 7 * i as u32, "cpu[{i}]");
    }
    write(dup, 5, 0xabcd);
    assert_eq!(read(dup, 5), 0xabcd);
    // Nothing reaches the device any more: typed refusals.
    assert!(matches!(s.launch(Kernel::fill(s.asid, cpu as u64, 16, 1)).unwrap_err(), NpuError::Lost));
    assert!(matches!(s.npu.recover().unwrap_err(), NpuError::Lost));
    let e = s.gm.hmadvise(s.space, Node::Device(s.id), cpu as u64, LEN, Hint::Prefetch).unwrap_err();
    assert!(matches!(e, GmemError::DeviceLost { .. }), "{e:?}");
    // A lost page raises SIGBUS at the touched address, never zeros.
    let touched = only as u64 + 3 * 4096 + 8;
    let (addr, code) = sigbus::touch_expecting_sigbus(touched);
    assert_eq!((addr, code), (touched, libc::BUS_ADRERR));
    // munmap releases everything without a device access.
    for p in [dup, only, cpu] {
        s.gm.munmap(s.space, p.cast(), LEN).unwrap();
    }
    assert_eq!(inj.counts().get("io:read32").copied().unwrap_or(0), reads_before, "no MMIO read after the loss");
    let (free, total) = s.gm.device_pages(s.id).unwrap();
    assert_eq!(free, total, "every frame accounted for");
    sigbus::pass(name)
}

#[test]
fn rtl_device_that_stops_answering_is_declared_lost_and_reported() {
    let name = "rtl_device_that_stops_answering_is_declared_lost_and_reported";
    sigbus::in_child(name, || device_stops_answering(sim_bridge::SimDevice::new(Default::default()).unwrap(), name));
}

#[test]
fn model_device_that_stops_answering_is_declared_lost_and_reported() {
    let name = "model_device_that_stops_answering_is_declared_lost_and_reported";
    sigbus::in_child(name, || device_stops_answering(npu_refmodel::ModelDevice::new(Default::default()), name));
}
