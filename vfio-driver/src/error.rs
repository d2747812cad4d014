//! Errors of the VFIO transport, each saying what to do about it.
//!
//! Board bring-up fails mostly for host-configuration reasons (module not loaded,
//! device bound to the wrong driver, IOMMU off, ...). Each such case has its own
//! variant whose message names the exact command or setting that fixes it; most are
//! detected from sysfs before any VFIO call (see [`crate::sysfs`]).

use std::path::PathBuf;

use crate::bdf::{Bdf, BdfError};

/// A device sharing the IOMMU group of the device we open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its address.
    pub bdf: String,
    /// The driver it is bound to, if any.
    pub driver: Option<String>,
}

/// Errors opening or using a device through VFIO.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// The PCI address does not parse.
    #[error(transparent)]
    Bdf(#[from] BdfError),
    /// sysfs has no such device.
    #[error("no PCI device {bdf}: {path} does not exist (list devices with `lspci -D`)")]
    NoDevice {
        /// The address.
        bdf: Bdf,
        /// The sysfs directory looked for.
        path: PathBuf,
    },
    /// `/dev/vfio` (or `/dev/vfio/vfio`) is missing: the VFIO modules are not loaded.
    #[error("{path} does not exist: the VFIO driver is not loaded; run `modprobe vfio-pci`")]
    VfioMissing {
        /// The missing path.
        path: PathBuf,
    },
    /// The device is bound to another driver, or to none.
    #[error("{}", not_bound_help(.bdf, .driver.as_deref(), *.vendor, *.device))]
    NotBound {
        /// The address.
        bdf: Bdf,
        /// Current driver (None = unbound).
        driver: Option<String>,
        /// PCI vendor ID.
        vendor: u16,
        /// PCI device ID.
        device: u16,
    },
    /// The device has no IOMMU group: no IOMMU, or it is disabled.
    #[error(
        "PCI device {bdf} has no IOMMU group: the IOMMU is off or absent; enable VT-d/AMD-Vi in \
         the firmware and boot with `intel_iommu=on` (Intel) or `amd_iommu=on` (AMD)"
    )]
    NoIommu {
        /// The address.
        bdf: Bdf,
    },
    /// Another device in the group is bound to a host driver.
    #[error("{}", not_viable_help(*.group, .bdf, .others))]
    GroupNotViable {
        /// The group number.
        group: u32,
        /// The device we open.
        bdf: Bdf,
        /// The devices that make the group unusable.
        others: Vec<GroupMember>,
    },
    /// The group's device node is missing although the device is bound to vfio-pci.
    #[error(
        "{path} does not exist although {bdf} is bound to vfio-pci (IOMMU group {group}); \
         was it removed? rebind the device: `echo {bdf} > /sys/bus/pci/drivers/vfio-pci/unbind; \
         echo {bdf} > /sys/bus/pci/drivers/vfio-pci/bind`"
    )]
    GroupMissing {
        /// The address.
        bdf: Bdf,
        /// IOMMU group number.
        group: u32,
        /// The missing node.
        path: PathBuf,
    },
    /// The process may not open a VFIO node.
    #[error(
        "permission denied on {path} (uid {uid}): run as root, or give the user the group node \
         (`chown $USER {path}` or a udev rule) and raise its locked-memory limit \
         (`ulimit -l`, /etc/security/limits.conf) to cover the DMA buffers"
    )]
    PermissionDenied {
        /// The node.
        path: PathBuf,
        /// The caller's effective uid.
        uid: u32,
    },
    /// Another process (or container) already has the group open.
    #[error("IOMMU group {group} is already open in another process or container (EBUSY)")]
    GroupBusy {
        /// The group number.
        group: u32,
    },
    /// The platform IOMMU cannot remap interrupts, and VFIO refuses unsafe interrupts.
    #[error(
        "the IOMMU does not remap interrupts, so VFIO refuses to set up DMA (EPERM); enable \
         interrupt remapping (`intremap=on`, x2APIC in firmware) or, if you accept that the \
         device could forge MSIs, load vfio_iommu_type1 with the module parameter \
         allow_unsafe_interrupts=1: `echo 1 > /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts`"
    )]
    NoInterruptRemapping,
    /// A BAR the driver needs does not exist or cannot be memory-mapped.
    #[error("BAR{bar} of {bdf} is {problem}")]
    BarUnusable {
        /// The address.
        bdf: Bdf,
        /// BAR index.
        bar: usize,
        /// "absent" / "not mappable (I/O space?)".
        problem: &'static str,
    },
    /// BAR0 is smaller than the register map.
    #[error(
        "BAR{bar} of {bdf} is {size:#x} bytes, smaller than the {need:#x}-byte register map: \
         wrong bitstream or BAR size set wrongly in the PCIe IP"
    )]
    BarTooSmall {
        /// The address.
        bdf: Bdf,
        /// BAR index.
        bar: usize,
        /// Its size.
        size: u64,
        /// Size the register map needs.
        need: u64,
    },
    /// The ID register does not hold the expected value.
    #[error(
        "ID register of {bdf} reads {found:#010x}, expected {expected:#010x} (\"NPU1\"): \
         wrong bitstream loaded{}",
        if *.found == u32::MAX { " (or the device is dead: all-ones reads)" } else { "" }
    )]
    IdMismatch {
        /// The address.
        bdf: Bdf,
        /// Expected ID.
        expected: u32,
        /// What the register read.
        found: u32,
    },
    /// The device implements a major version this driver does not know.
    #[error("{bdf} implements NPU specification major version {found}, this driver knows {known}")]
    VersionMismatch {
        /// The address.
        bdf: Bdf,
        /// Device's major version.
        found: u32,
        /// Driver's major version.
        known: u32,
    },
    /// The device offers no interrupt mechanism that was asked for.
    #[error("{bdf} offers no usable interrupt ({wanted})")]
    NoInterrupts {
        /// The address.
        bdf: Bdf,
        /// What was asked.
        wanted: &'static str,
    },
    /// An interrupt mode name that is not one of auto, msix, msi, intx, off.
    #[error("interrupt mode {value:?} (GMEM_VFIO_IRQ): expected auto, msix, msi, intx or off")]
    BadIrqMode {
        /// What was given.
        value: String,
    },
    /// The device cannot be reset by VFIO (no FLR, PM or bus reset).
    #[error("{bdf} does not support a VFIO function reset (no FLR/PM/bus reset)")]
    ResetUnsupported {
        /// The address.
        bdf: Bdf,
    },
    /// An MMIO access falls outside the mapped BAR or is misaligned.
    #[error("MMIO {size}-byte access at BAR{bar}+{offset:#x} is outside the {len:#x}-byte mapping or misaligned")]
    MmioOutOfRange {
        /// BAR index.
        bar: usize,
        /// Offset.
        offset: u64,
        /// Access size in bytes.
        size: usize,
        /// Mapped length.
        len: usize,
    },
    /// No window of usable IOVA space is left after intersecting with the IOMMU's ranges.
    #[error("no usable IOVA space in [{start:#x}, {end:#x}) (IOMMU ranges: {ranges})")]
    NoIovaWindow {
        /// Requested window start.
        start: u64,
        /// Requested window end.
        end: u64,
        /// The IOMMU's usable ranges, printed.
        ranges: String,
    },
    /// An OS-level failure not covered above.
    #[error("{what}")]
    Os {
        /// What was attempted.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl VfioError {
    /// Wraps an OS error with what was attempted.
    pub fn os(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Os { what: what.into(), source }
    }
}

fn not_bound_help(bdf: &Bdf, driver: Option<&str>, vendor: u16, device: u16) -> String {
    let now = match driver {
        Some(d) => format!("is bound to driver {d:?}, not vfio-pci"),
        None => "is not bound to any driver (vfio-pci needed)".to_owned(),
    };
    let unbind = match driver {
        Some(_) => format!("\n  echo {bdf} > /sys/bus/pci/devices/{bdf}/driver/unbind"),
        None => String::new(),
    };
    format!(
        "PCI device {bdf} [{vendor:04x}:{device:04x}] {now}. Bind it (as root):\n  \
         modprobe vfio-pci{unbind}\n  \
         echo vfio-pci > /sys/bus/pci/devices/{bdf}/driver_override\n  \
         echo {bdf} > /sys/bus/pci/drivers_probe\n\
         or bind every device with this ID: echo {vendor:04x} {device:04x} > /sys/bus/pci/drivers/vfio-pci/new_id"
    )
}

fn not_viable_help(group: u32, bdf: &Bdf, others: &[GroupMember]) -> String {
    let list: Vec<String> = others
        .iter()
        .map(|m| match &m.driver {
            Some(d) => format!("{} (driver {d})", m.bdf),
            None => format!("{} (no driver)", m.bdf),
        })
        .collect();
    format!(
        "IOMMU group {group} of {bdf} is not viable: every device in it must be bound to vfio-pci \
         (or pci-stub, or unbound), but these are not: {}; unbind them \
         (`echo <bdf> > /sys/bus/pci/devices/<bdf>/driver/unbind`) or move the card to a slot \
         with its own group (ACS)",
        list.join(", ")
    )
}

impl From<VfioError> for npu::IoError {
    fn from(e: VfioError) -> Self {
        match e {
            VfioError::Os { what, source } => npu::IoError::Os { what, source },
            other => npu::IoError::Device(other.to_string()),
        }
    }
}
