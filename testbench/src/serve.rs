//! `gmem serve --vfio-user <socket>`: the Verilated NPU as a PCI device for a VMM.
//!
//! Listens on a UNIX socket for one vfio-user client (QEMU's `vfio-user-pci`), serves
//! it until it disconnects, then prints what the device did (docs/vfio-user.md).

use std::path::{Path, PathBuf};
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

/// Serves one client on `socket`.
pub fn run(socket: &Path, waves: Option<PathBuf>) -> Result<(), String> {
    let cfg = sim_bridge::SimConfig { waves, ..Default::default() };
    let srv = NpuServer::bind(socket, cfg).map_err(|e| chain(&e))?;
    eprintln!("gmem serve: NPU (Verilated RTL) on vfio-user socket {}, waiting for a client", socket.display());
    let r = srv.serve();
    // The socket file is removed when `srv` drops.
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
