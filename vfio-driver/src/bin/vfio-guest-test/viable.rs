//! IOMMU group viability on a real kernel: two `edu` devices behind one PCIe-to-PCI
//! bridge share an IOMMU group (the bridge aliases their requester IDs). With one bound
//! to vfio-pci and the other to a host driver (uio_pci_generic), the group is not
//! viable: the sysfs pre-flight must say so and name the other device, and the kernel
//! must agree (pci-driver's raw open fails); after unbinding the other device both
//! must agree that it is usable.

use std::fs;
use std::path::Path;

use pci_driver::backends::vfio::VfioPciDevice;
use vfio_driver::{IrqMode, OpenOptions, VfioError, VfioPci};

use crate::Checks;
use crate::guest;

fn driver(bdf: &str) -> Option<String> {
    vfio_driver::sysfs::bound_driver(&Path::new("/sys/bus/pci/devices").join(bdf))
}

fn bind(bdf: &str, drv: &str) -> Result<(), String> {
    fs::write(format!("/sys/bus/pci/devices/{bdf}/driver_override"), drv)
        .map_err(|e| format!("override {bdf}: {e}"))?;
    fs::write("/sys/bus/pci/drivers_probe", bdf).map_err(|e| format!("probe {bdf}: {e}"))?;
    match driver(bdf) {
        Some(d) if d == drv => Ok(()),
        other => Err(format!("{bdf} bound to {other:?}, wanted {drv}")),
    }
}

/// Runs the viability checks on the edu pair `a` (for VFIO) and `b` (host driver).
pub fn run(c: &mut Checks, a: &str, b: &str) {
    let sys = Path::new("/sys/bus/pci/devices");
    let (ga, gb) = (vfio_driver::sysfs::iommu_group(&sys.join(a)), vfio_driver::sysfs::iommu_group(&sys.join(b)));
    let setup = (|| {
        if ga.is_none() || ga != gb {
            return Err(format!("{a} and {b} are in groups {ga:?} and {gb:?}, expected one shared group"));
        }
        let mods = guest::load_modules(Path::new("/modules-uio")).map_err(|e| e.to_string())?;
        bind(a, "vfio-pci")?;
        bind(b, "uio_pci_generic")?;
        Ok(format!("group {}: {a} vfio-pci, {b} uio_pci_generic (loaded {})", ga.unwrap_or(0), mods.join(" ")))
    })();
    let ok = setup.is_ok();
    c.check("shared group: one device on vfio-pci, its sibling on a host driver", setup);
    if !ok {
        return;
    }
    let opts = OpenOptions { irq: IrqMode::Off, ..OpenOptions::default() };
    c.check(
        "shared group: GroupNotViable names the sibling and its driver",
        match VfioPci::open(a, &opts) {
            Err(e) => match &e {
                VfioError::GroupNotViable { others, .. }
                    if others.iter().any(|m| m.bdf == b && m.driver.as_deref() == Some("uio_pci_generic")) =>
                {
                    Ok(e.to_string().chars().take(170).collect())
                }
                _ => Err(format!("wrong or incomplete error: {e}")),
            },
            Ok(_) => Err("opened a non-viable group".into()),
        },
    );
    c.check(
        "shared group: the kernel agrees it is not viable",
        match VfioPciDevice::open(sys.join(a)) {
            Err(e) => Ok(format!("VFIO refused: {e}")),
            Ok(_) => Err("the kernel let VFIO open it: the sysfs rule is too strict".into()),
        },
    );
    let unbound = fs::write(sys.join(b).join("driver/unbind"), b);
    c.check(
        "shared group: viable once the sibling is unbound",
        match unbound {
            Err(e) => Err(format!("unbind {b}: {e}")),
            Ok(()) => {
                VfioPci::open(a, &opts).map(|d| format!("opened, group {}", d.info().group)).map_err(|e| e.to_string())
            }
        },
    );
}
