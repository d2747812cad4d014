//! The guest booted without interrupt remapping (`intel-iommu` without `intremap=on`):
//! VFIO type1 refuses to set up the IOMMU (EPERM) unless `allow_unsafe_interrupts` is
//! set. The sysfs pre-flight must predict that from the IOMMU's ECAP register and name
//! the module parameter; setting it must make the device usable.

use std::path::Path;
use std::time::Duration;

use pci_driver::backends::vfio::VfioPciDevice;
use vfio_driver::sysfs::{HostPaths, IntRemap, interrupt_remapping};
use vfio_driver::{IrqKind, IrqMode, VfioError, VfioPci};

use crate::{Checks, edu, guest};

const PARAM: &str = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";

/// Runs the checks; `bdf` is edu, already bound to vfio-pci.
pub fn run(c: &mut Checks, bdf: &str) {
    c.check(
        "no remapping: sysfs shows ECAP.IR = 0",
        match interrupt_remapping(&HostPaths::default()) {
            IntRemap::Missing => Ok("IntRemap::Missing".into()),
            other => Err(format!("{other:?}")),
        },
    );
    let opts = edu::edu_options(IrqMode::Only(IrqKind::Msi));
    c.check(
        "no remapping: NoInterruptRemapping names allow_unsafe_interrupts",
        match VfioPci::open(bdf, &opts) {
            Err(e @ VfioError::NoInterruptRemapping) if e.to_string().contains("allow_unsafe_interrupts") => {
                Ok("NoInterruptRemapping".into())
            }
            Err(e) => Err(format!("wrong error: {e}")),
            Ok(_) => Err("opened without interrupt remapping".into()),
        },
    );
    c.check("no remapping: the kernel refuses VFIO_SET_IOMMU with EPERM", {
        match VfioPciDevice::open(Path::new("/sys/bus/pci/devices").join(bdf)) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(format!("{e}")),
            Err(e) => Err(format!("other error: {e}")),
            Ok(_) => Err("the kernel accepted it".into()),
        }
    });
    c.check(
        "allow_unsafe_interrupts=1: device opens and MSI arrives",
        (|| {
            std::fs::write(PARAM, "1").map_err(|e| format!("write {PARAM}: {e}"))?;
            let mut d = VfioPci::open(bdf, &opts).map_err(|e| e.to_string())?;
            d.write32(0, 0x60, 0x10).map_err(|e| e.to_string())?; // raise interrupt
            let fired = d.wait_irq(1, Duration::from_secs(10)).map_err(|e| e.to_string())?;
            let st = d.read32(0, 0x24).map_err(|e| e.to_string())?;
            d.write32(0, 0x64, st).map_err(|e| e.to_string())?;
            if fired == 1 && st & 0x10 != 0 {
                Ok(format!("MSI vector 0, status {st:#x}"))
            } else {
                Err(format!("fired {fired:#x}, status {st:#x}"))
            }
        })(),
    );
}

/// Sets the guest up (modules, binding) and runs [`run`].
pub fn guest(c: &mut Checks) {
    let Some(bdf) = guest::find_pci(edu::VENDOR, edu::DEVICE) else {
        return c.fail("no remapping: find edu", "not on the bus");
    };
    let setup = guest::load_modules(Path::new("/modules"))
        .map_err(|e| e.to_string())
        .and_then(|_| guest::bind_vfio(&bdf).map_err(|e| e.to_string()));
    match setup {
        Ok(()) => c.pass("no remapping: load VFIO and bind edu", &bdf),
        Err(e) => return c.fail("no remapping: load VFIO and bind edu", e),
    }
    run(c, &bdf);
}
