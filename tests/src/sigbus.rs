//! Scenarios that end in a SIGBUS (a poisoned or lost page): a handler that records
//! where it hit and parks the thread, and a runner that re-runs one test of the
//! current binary in a child process, so the signal never reaches the test harness.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the handler saw: `si_addr` and `si_code`.
static ADDR: AtomicU64 = AtomicU64::new(0);
static CODE: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (addr, code) = unsafe { ((*info).si_addr() as u64, (*info).si_code) };
    CODE.store(code, Ordering::SeqCst);
    ADDR.store(addr, Ordering::SeqCst);
    // The access cannot complete: park this thread; the process ends with _exit.
    loop {
        // SAFETY: pause(2) is async-signal-safe.
        unsafe { libc::pause() };
    }
}

/// Installs the SIGBUS handler (in the child).
pub fn install() {
    // SAFETY: installs a handler for SIGBUS only, from a zeroed sigaction.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()), 0);
    }
}

/// Reads the `u32` at `addr` on a new thread and returns the SIGBUS it raised:
/// `(si_addr, si_code)`. Panics if none came within 60 s (the toucher was left blocked).
pub fn touch_expecting_sigbus(addr: u64) -> (u64, i32) {
    std::thread::spawn(move || {
        // SAFETY: `addr` is inside a live region of the caller's (a SIGBUS page).
        unsafe { (addr as *const u32).read_volatile() }
    });
    let t0 = Instant::now();
    while ADDR.load(Ordering::SeqCst) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "the toucher was left blocked: no SIGBUS");
        std::thread::sleep(Duration::from_millis(5));
    }
    (ADDR.load(Ordering::SeqCst), CODE.load(Ordering::SeqCst))
}

/// Ends the child after a passed case: prints `"{name}: ok"` and `_exit(0)`s (a thread
/// is parked in the handler; nothing may unwind).
pub fn pass(name: &str) -> ! {
    println!("{name}: ok");
    // SAFETY: _exit ends the process without unwinding the parked thread.
    unsafe { libc::_exit(0) }
}

/// Runs `case` in a child process (this binary, test `name` only) and checks it ended
/// with [`pass`]. In the child (`GMEM_SIGBUS_CASE` = `name`) it runs `case` itself.
pub fn in_child(name: &str, case: impl FnOnce() -> std::convert::Infallible) {
    if std::env::var("GMEM_SIGBUS_CASE").is_ok_and(|c| c == name) {
        // Diverges: the child ends in `pass` or a panic.
        case();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env("GMEM_SIGBUS_CASE", name)
        .output()
        .expect("child runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains(&format!("{name}: ok")), "{:?}\n{text}", out.status);
}
