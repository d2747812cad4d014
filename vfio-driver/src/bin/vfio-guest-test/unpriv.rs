//! Running as a normal user, as `docs/board.md` describes: once the group node belongs
//! to the user, the open succeeds without root; DMA mappings are then charged to the
//! locked-memory limit, and an exhausted limit must come out as an error that names
//! `ulimit -l` — and mapping must work again once the limit allows it.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::Duration;

use npu::DmaBuffer;
use vfio_driver::{IrqKind, IrqMode, VfioPci};

use crate::{Checks, NOBODY, edu};

fn chown(path: &str, uid: u32) -> Result<(), String> {
    let c = CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a NUL-terminated path that lives across the call.
    let r = unsafe { libc::chown(c.as_ptr(), uid, uid) };
    if r == 0 { Ok(()) } else { Err(format!("chown {path}: {}", std::io::Error::last_os_error())) }
}

fn set_memlock_soft(bytes: u64) -> Result<u64, String> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write one live rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
        }
        let old = lim.rlim_cur;
        lim.rlim_cur = bytes.min(lim.rlim_max);
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
        Ok(old)
    }
}

/// Parent side: hands the group node of `bdf` to uid NOBODY and runs the child.
pub fn run(c: &mut Checks, bdf: &str) {
    let group = vfio_driver::sysfs::iommu_group(&std::path::Path::new("/sys/bus/pci/devices").join(bdf));
    let Some(group) = group else { return c.fail("unprivileged user: chown the group node", "no IOMMU group") };
    let node = format!("/dev/vfio/{group}");
    let r = (|| {
        chown(&node, NOBODY)?;
        let out = Command::new("/proc/self/exe")
            .args(["--probe-unprivileged", bdf])
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .map_err(|e| format!("spawn: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().replace('\n', "; ");
        if out.status.success() { Ok(text) } else { Err(format!("{text} {}", String::from_utf8_lossy(&out.stderr))) }
    })();
    let restored = chown(&node, 0);
    c.check(
        "unprivileged user with the group node: open, memlock limit, DMA map, MSI",
        r.and_then(|t| restored.map(|()| t)),
    );
}

/// Child side (uid NOBODY): the checks; prints one line per step, exit 0 if all held.
pub fn child(bdf: &str) -> ExitCode {
    let r = (|| -> Result<(), String> {
        let mut d =
            VfioPci::open(bdf, &edu::edu_options(IrqMode::Only(IrqKind::Msi))).map_err(|e| format!("open: {e}"))?;
        println!("opened as uid {NOBODY}");
        let buf = DmaBuffer::new(4096).map_err(|e| e.to_string())?;
        let old = set_memlock_soft(0)?;
        // SAFETY: `buf` outlives the mapping, which is removed below before it drops.
        match unsafe { d.dma_map_raw(buf.as_ptr(), buf.len()) } {
            Err(npu::IoError::Os { what, source })
                if source.raw_os_error() == Some(libc::ENOMEM) && what.contains("ulimit -l") =>
            {
                println!("memlock 0: ENOMEM naming ulimit -l");
            }
            Err(e) => return Err(format!("memlock 0: wrong error {e}")),
            Ok(iova) => {
                let _ = d.dma_unmap(iova);
                return Err("memlock 0: mapped anyway".into());
            }
        }
        set_memlock_soft(old.max(1 << 20))?;
        // SAFETY: as above.
        let iova = unsafe { d.dma_map_raw(buf.as_ptr(), buf.len()) }.map_err(|e| format!("memlock {old:#x}: {e}"))?;
        d.dma_unmap(iova).map_err(|e| e.to_string())?;
        println!("memlock {:#x}: mapped at {iova:#x}", old.max(1 << 20));
        d.write32(0, 0x60, 0x20).map_err(|e| e.to_string())?;
        let fired = d.wait_irq(1, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        let st = d.read32(0, 0x24).map_err(|e| e.to_string())?;
        d.write32(0, 0x64, st).map_err(|e| e.to_string())?;
        if fired != 1 {
            return Err(format!("MSI did not arrive (status {st:#x})"));
        }
        println!("MSI arrived");
        Ok(())
    })();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}
