//! A page the CPU cannot get back from the NPU — every device-to-host copy fails — is
//! poisoned after `Config::cpu_fault_attempts`: the touching thread gets SIGBUS at the
//! touched address (it is never left blocked), the data stays on the device, which keeps
//! computing with it, nothing else is lost, and munmap clears the poison.
//!
//! The copies fail in the device itself: `ERRINJ_POISON` marks every DMA read burst
//! poisoned, so each migration's descriptor completes with a POISON error. Each case
//! runs in a child process (it takes a SIGBUS): the test re-runs its own binary.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gmem_host::{GmemError, Hint, MapFlags, MigrateError, Node, Residency};
use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig, regs};
use tests::Stack;

/// What the SIGBUS handler saw: `si_addr` and `si_code`.
static SIGBUS_ADDR: AtomicU64 = AtomicU64::new(0);
static SIGBUS_CODE: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (addr, code) = unsafe { ((*info).si_addr() as u64, (*info).si_code) };
    SIGBUS_CODE.store(code, Ordering::SeqCst);
    SIGBUS_ADDR.store(addr, Ordering::SeqCst);
    // The access cannot complete: park this thread; the process ends with _exit.
    loop {
        // SAFETY: pause(2) is async-signal-safe.
        unsafe { libc::pause() };
    }
}

const N: usize = 8 * 1024; // words: 8 pages per region

fn region<T: DeviceIo + Send + 'static>(s: &Stack<T>) -> *mut u32 {
    s.gm.mmap(s.space, (N * 4) as u64, MapFlags::PEER_SHARED).unwrap() as *mut u32
}

fn read(p: *mut u32, i: usize) -> u32 {
    // SAFETY: i < N, inside a live region.
    unsafe { p.add(i).read_volatile() }
}

/// The child: must end in `_exit(0)` after printing "poison: ok".
fn poisoned_page_raises_sigbus<T: DeviceIo + Send + 'static>(s: Stack<T>) -> ! {
    // SAFETY: installs a handler for SIGBUS only, from a zeroed sigaction.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()), 0);
    }
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
    let c_addr = c as usize;
    std::thread::spawn(move || read(c_addr as *mut u32, 2 * 1024 + 5));
    let t0 = Instant::now();
    while SIGBUS_ADDR.load(Ordering::SeqCst) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the toucher was left blocked: no SIGBUS");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(SIGBUS_ADDR.load(Ordering::SeqCst), touched, "si_addr is the touched address");
    assert_eq!(SIGBUS_CODE.load(Ordering::SeqCst), libc::BUS_ADRERR);
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
    println!("poison: ok");
    // SAFETY: _exit ends the process without unwinding the parked thread.
    unsafe { libc::_exit(0) }
}

/// Runs `case` in a child process (this binary, this test only) and checks it passed.
fn in_child(name: &str, case: fn() -> !) {
    if std::env::var("GMEM_POISON_CASE").is_ok_and(|c| c == name) {
        case();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env("GMEM_POISON_CASE", name)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("poison: ok"), "{:?}\n{text}", out.status);
}

#[test]
fn rtl_page_that_cannot_come_back_raises_sigbus_and_loses_nothing_else() {
    in_child("rtl_page_that_cannot_come_back_raises_sigbus_and_loses_nothing_else", || {
        poisoned_page_raises_sigbus(tests::rtl(NpuConfig::default()))
    });
}

#[test]
fn model_page_that_cannot_come_back_raises_sigbus_and_loses_nothing_else() {
    in_child("model_page_that_cannot_come_back_raises_sigbus_and_loses_nothing_else", || {
        poisoned_page_raises_sigbus(tests::model(NpuConfig::default()))
    });
}
