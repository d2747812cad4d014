//! A CPU touch of a *poisoned* page — one whose only copy is on a device that could not
//! give it back — raises SIGBUS at that page, like a hardware memory error
//! (docs/architecture.md §4). Without a handler the process dies silently with status
//! 135; `gmem` says what happened first. The handler is `gmem`'s own: the manager never
//! installs signal handlers (applications keep theirs).

/// The message, with 16 hex digits of the address patched in at `HEX`.
const MESSAGE: &[u8] = b"gmem: error: SIGBUS at 0x0000000000000000: the CPU touched a page whose data could not \
come back from the device (poisoned after repeated device errors); run with -v to see them\n";
/// Offset of the address digits in [`MESSAGE`].
const HEX: usize = 25;

extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // Only async-signal-safe work here: a stack copy, write(2), _exit(2).
    let mut msg = [0u8; MESSAGE.len()];
    msg.copy_from_slice(MESSAGE);
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = if info.is_null() { 0 } else { (unsafe { (*info).si_addr() }) as usize };
    for (i, d) in msg[HEX..HEX + 16].iter_mut().enumerate() {
        *d = b"0123456789abcdef"[(addr >> (60 - 4 * i)) & 0xf];
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe; msg outlives the call.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(128 + libc::SIGBUS);
    }
}

/// Installs the SIGBUS report for this process.
pub fn report_and_exit() {
    // SAFETY: a zeroed sigaction is valid; we set the handler, SA_SIGINFO and an empty
    // mask before passing it, and on_sigbus has the SA_SIGINFO signature.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) != 0 {
            eprintln!("gmem: warning: cannot install the SIGBUS report; a poisoned page would end gmem silently");
        }
    }
}
