//! `gmem serve --vfio-user <socket>`: the Verilated NPU as a PCI device for a VMM.
//!
//! Listens on a UNIX socket for one vfio-user client (QEMU's `vfio-user-pci`), serves
//! it until it disconnects, then prints what the device did (docs/vfio-user.md).
//!
//! The socket file is `gmem`'s to clean up: it is removed when the server ends, and on
//! SIGINT/SIGTERM (the process then exits with 130/143, as a shell expects; a waveform
//! being written is cut short). A socket file left by a server that is gone (nothing
//! accepts connections on it) is removed and reused; one with a live server, or a path
//! that is not a socket, is refused.

use std::ffi::CString;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use vfio_user_server::NpuServer;

/// Error text with its chain of causes.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// The socket path the signal handler removes (a leaked C string; null: none).
static SOCKET: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_stop(signal: libc::c_int) {
    let path = SOCKET.load(Ordering::Acquire);
    // SAFETY: unlink(2) and _exit(2) are async-signal-safe; `path` is null or a C
    // string leaked by `remove_on_signal`, never freed.
    unsafe {
        if !path.is_null() {
            libc::unlink(path);
        }
        libc::_exit(128 + signal);
    }
}

/// Removes `socket` if the process is stopped by SIGINT or SIGTERM.
fn remove_on_signal(socket: &Path) {
    let Ok(c) = CString::new(socket.as_os_str().as_encoded_bytes()) else { return };
    SOCKET.store(c.into_raw(), Ordering::Release);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is valid; we set the handler (plain signature, no
        // SA_SIGINFO) and an empty mask before passing it.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                eprintln!("gmem serve: warning: cannot catch signal {sig}; the socket may be left behind");
            }
        }
    }
}

/// Makes `socket` free to bind: removes a stale socket file whose server is gone.
fn claim(socket: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(socket) else { return Ok(()) };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "--vfio-user {}: the path exists and is not a socket; pick another path",
            socket.display()
        ));
    }
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => Err(format!(
            "--vfio-user {}: another server is listening on this socket; stop it or pick another path",
            socket.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(socket)
                .map_err(|e| format!("cannot remove the stale socket {}: {e}", socket.display()))?;
            eprintln!("gmem serve: removed the stale socket {} (its server is gone)", socket.display());
            Ok(())
        }
        Err(e) => Err(format!("--vfio-user {}: cannot tell whether the socket is in use: {e}", socket.display())),
    }
}

/// Serves one client on `socket`.
pub fn run(socket: &Path, waves: Option<PathBuf>) -> Result<(), String> {
    claim(socket)?;
    let cfg = sim_bridge::SimConfig { waves, ..Default::default() };
    let srv = NpuServer::bind(socket, cfg).map_err(|e| chain(&e))?;
    remove_on_signal(socket);
    eprintln!("gmem serve: NPU (Verilated RTL) on vfio-user socket {}, waiting for a client", socket.display());
    let r = srv.serve();
    drop(srv);
    // Whatever the server does with its socket on drop, the path is free afterwards.
    let _ = std::fs::remove_file(socket);
    let st = r.map_err(|e| chain(&e))?;
    println!("gmem serve: client disconnected");
    println!("  device cycles   {}", st.cycles);
    println!("  CSR accesses    {} reads, {} writes", st.csr_reads, st.csr_writes);
    println!("  DMA maps        {} mapped, {} unmapped", st.dma_maps, st.dma_unmaps);
    println!(
        "  host memory     {} bytes moved by the RTL, {} faulting bursts (unmapped IOVA)",
        st.host_bytes, st.dma_faults
    );
    println!("  interrupts      {} messages", st.irqs_signalled);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_socket_is_reclaimed_a_live_one_or_a_file_refused() {
        let dir = std::env::temp_dir().join(format!("gmem-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("npu.sock");
        assert_eq!(claim(&path), Ok(()), "no file: free");
        let live = std::os::unix::net::UnixListener::bind(&path).ok();
        assert!(claim(&path).is_err_and(|e| e.contains("another server is listening")));
        drop(live); // the listener is gone, its file stays: stale
        assert_eq!(claim(&path), Ok(()));
        assert!(!path.exists(), "the stale socket was removed");
        std::fs::write(&path, b"x").unwrap_or_default();
        assert!(claim(&path).is_err_and(|e| e.contains("is not a socket")));
        std::fs::remove_dir_all(&dir).ok();
    }
}
