//! A page the CPU cannot get back from the NPU — every device-to-host copy fails — is
//! poisoned after `Config::cpu_fault_attempts`: the touching thread gets SIGBUS at the
//! touched address (it is never left blocked), the data stays on the device, which keeps
//! computing with it, nothing else is lost, and munmap clears the poison.
//!
//! The copies fail in the device itself: `ERRINJ_POISON` marks every DMA read burst
//! poisoned, so each migration's descriptor completes with a POISON error. Each case
//! runs in a child process (it takes a SIGBUS): the test re-runs its own binary.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::{GmemError, Hint, MapFlags, MigrateError, Node, Residency};
use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig, regs};
use tests::{Stack, sigbus};

const N: usize = 8 * 1024; // words: 8 pages per region

fn region<T: DeviceIo + Send + 'static>(s: &Stack<T>) -> *mut u32 {
    s.gm.mmap(s.space, (N * 4) as u64, MapFlags::PEER_SHARED).unwrap() as *mut u32
}

fn read(p: *mut u32, i: usize) -> u32 {
    // SAFETY: i < N, inside a live region.
    unsafe { p.add(i).read_volatile() }
}

/// The child: ends in [`sigbus::pass`].
fn poisoned_page_raises_sigbus<T: DeviceIo + Send + 'static>(s: Stack<T>, name: &str) -> std::convert::Infallible {
    sigbus::install();
    let (a, c, d) = (region(&s), region(&s), region(&s));
    for i in 0..N {
        // SAFETY: i < N, inside the region.
        unsafe { a.add(i).write(i as u32) };
    }
    let asid = s.asid;
    s.npu.launch(&s.gm, s.id, Kernel::scale(asid, a as u64, c as u64, N as u32, 3)).unwrap();
    // From now on every DMA read burst is poisoned: nothing leaves device memory.
    s.npu.with_io(|io| io.write32(regs::ERRINJ_POISON.offset, u32::MAX)).unwrap();
    let touched = c as u64 + (2 * 1024 + 5) * 4;
    let (addr, code) = sigbus::touch_expecting_sigbus(touched);
    assert_eq!(addr, touched, "si_addr is the touched address");
    assert_eq!(code, libc::BUS_ADRERR);
    let page = touched & !4095;
    let info = s.gm.page_info(s.space, page).unwrap();
    assert!(info.poisoned && info.residency == Residency::Device, "{info:?}");
    assert_eq!(s.gm.counters().poisoned, 1, "only the touched page");
    assert!(!s.gm.page_info(s.space, page + 4096).unwrap().poisoned);
    // Migrating it off the device is refused, typed, naming the page.
    let e = s.gm.hmadvise(s.space, Node::Cpu, page, 4096, Hint::Prefetch).unwrap_err();
    assert!(matches!(e, GmemError::Migrate(MigrateError::Poisoned { va, .. }) if va == page), "{e:?}");
    // The DMA engine works again (page-table updates need it too). The poisoned page
    // stays poisoned, and the NPU still computes with its data: d = c on the device.
    s.npu.with_io(|io| io.write32(regs::ERRINJ_POISON.offset, 0)).unwrap();
    s.npu.launch(&s.gm, s.id, Kernel::copy(asid, c as u64, d as u64, N as u32)).unwrap();
    assert!(s.gm.page_info(s.space, page).unwrap().poisoned);
    // Every other page of c, and all of d, come back to the CPU intact.
    for i in 0..N {
        assert_eq!(read(d, i), 3 * i as u32, "d[{i}]");
        if !(2 * 1024..3 * 1024).contains(&i) {
            assert_eq!(read(c, i), 3 * i as u32, "c[{i}]");
        }
    }
    // munmap clears the poison and frees every frame.
    for p in [a, c, d] {
        s.gm.munmap(s.space, p.cast(), (N * 4) as u64).unwrap();
    }
    let (free, total) = s.gm.device_pages(s.id).unwrap();
    assert_eq!(free, total, "no device frame leaked");
    sigbus::pass(name)
}

#[test]
fn rtl_page_that_cannot_come_back_raises_sigbus_and_loses_nothing_else() {
    let name = "rtl_page_that_cannot_come_back_raises_sigbus_and_loses_nothing_else";
    sigbus::in_child(name, || poisoned_page_raises_sigbus(tests::rtl(NpuConfig::default()), name));
}

#[test]
fn model_page_that_cannot_come_back_raises_sigbus_and_loses_nothing_else() {
    let name = "model_page_that_cannot_come_back_raises_sigbus_and_loses_nothing_else";
    sigbus::in_child(name, || poisoned_page_raises_sigbus(tests::model(NpuConfig::default()), name));
}
