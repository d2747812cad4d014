//! A CPU touch of a *poisoned* page — one whose only copy is on a device that could not
//! give it back — raises SIGBUS at that page, like a hardware memory error
//! (docs/architecture.md §4). Without a handler the process dies silently with status
//! 135; `gmem` says what happened first, and during a soak which seed and operation
//! were running (the soak's own accesses go through `Gmem::cpu_access` and so never
//! get here; anything that does is a finding). The handler is `gmem`'s own: the
//! manager never installs signal handlers (applications keep theirs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const HEAD: &[u8] = b"gmem: error: SIGBUS at 0x";
const WHY: &[u8] = b": the CPU touched a page whose data could not come back from the device \
(poisoned after repeated device errors)";
const SOAK: &[u8] = b" during soak --seed ";
const OP: &[u8] = b", op ";
const TAIL: &[u8] = b"; run with -v to see the device errors\n";

/// Set while a soak operation runs; read by the handler.
static SOAK_ACTIVE: AtomicBool = AtomicBool::new(false);
static SOAK_SEED: AtomicU64 = AtomicU64::new(0);
static SOAK_OP: AtomicU64 = AtomicU64::new(0);

/// Records the soak operation now running (for the SIGBUS report).
pub fn set_soak_op(seed: u64, op: u64) {
    SOAK_SEED.store(seed, Ordering::Relaxed);
    SOAK_OP.store(op, Ordering::Relaxed);
    SOAK_ACTIVE.store(true, Ordering::Release);
}

/// The soak is over.
pub fn clear_soak_op() {
    SOAK_ACTIVE.store(false, Ordering::Release);
}

/// A fixed buffer the handler formats into (no allocation in a signal handler).
struct Buf {
    bytes: [u8; 512],
    len: usize,
}

impl Buf {
    fn put(&mut self, s: &[u8]) {
        for &b in s {
            if self.len < self.bytes.len() {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn hex(&mut self, v: usize) {
        for i in 0..usize::BITS as usize / 4 {
            self.put(&[b"0123456789abcdef"[(v >> (usize::BITS as usize - 4 - 4 * i)) & 0xf]]);
        }
    }

    fn dec(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut n = 0;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        digits[..n].reverse();
        self.put(&digits[..n]);
    }
}

extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // Only async-signal-safe work here: stack buffers, atomics, write(2), _exit(2).
    let mut msg = Buf { bytes: [0; 512], len: 0 };
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = if info.is_null() { 0 } else { (unsafe { (*info).si_addr() }) as usize };
    msg.put(HEAD);
    msg.hex(addr);
    msg.put(WHY);
    if SOAK_ACTIVE.load(Ordering::Acquire) {
        msg.put(SOAK);
        msg.dec(SOAK_SEED.load(Ordering::Relaxed));
        msg.put(OP);
        msg.dec(SOAK_OP.load(Ordering::Relaxed));
    }
    msg.put(TAIL);
    // SAFETY: write(2) and _exit(2) are async-signal-safe; msg outlives the call.
    unsafe {
        libc::write(2, msg.bytes.as_ptr().cast(), msg.len);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_formats_addresses_in_hex_and_numbers_in_decimal() {
        let mut b = Buf { bytes: [0; 512], len: 0 };
        b.hex(0x7f00_dead_b000);
        b.put(b" ");
        b.dec(0);
        b.put(b" ");
        b.dec(18_446_744_073_709_551_615);
        assert_eq!(&b.bytes[..b.len], b"00007f00deadb000 0 18446744073709551615");
    }
}
