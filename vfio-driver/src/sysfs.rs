//! Pre-flight diagnosis from sysfs and `/dev`, before any VFIO call.
//!
//! The kernel answers a misconfigured VFIO open with a bare errno (ENOENT, EPERM, EBUSY,
//! EINVAL). Everything that can be known from the file system is checked here first, so
//! the user gets a typed [`VfioError`] that says what to fix. The roots of sysfs and
//! `/dev` are parameters ([`HostPaths`]) so tests run the checks on fake trees.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::bdf::Bdf;
use crate::error::{GroupMember, VfioError};

/// Where the kernel's interfaces live (normally `/sys` and `/dev`).
///
/// Only the pre-flight reads these roots; the VFIO open itself (pci-driver) always uses
/// the real `/dev/vfio`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// sysfs mount point.
    pub sysfs: PathBuf,
    /// devtmpfs mount point.
    pub dev: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self { sysfs: PathBuf::from("/sys"), dev: PathBuf::from("/dev") }
    }
}

impl HostPaths {
    /// sysfs directory of a PCI function.
    pub fn device_dir(&self, bdf: &Bdf) -> PathBuf {
        self.sysfs.join("bus/pci/devices").join(bdf.to_string())
    }

    /// `/dev/vfio`.
    pub fn vfio_dir(&self) -> PathBuf {
        self.dev.join("vfio")
    }
}

/// Who is asking: decides the permission check (the kernel's DAC rules, simplified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid and supplementary groups.
    pub gids: Vec<u32>,
}

impl Credentials {
    /// The calling process.
    pub fn current() -> Self {
        let (uid, gids) = crate::sys::credentials();
        Self { uid, gids }
    }

    /// May these credentials open `meta`'s file for reading and writing?
    pub fn may_read_write(&self, meta: &fs::Metadata) -> bool {
        if self.uid == 0 {
            return true; // CAP_DAC_OVERRIDE
        }
        let mode = meta.mode();
        let bits = if meta.uid() == self.uid {
            (mode >> 6) & 7
        } else if self.gids.contains(&meta.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        bits & 6 == 6
    }
}

/// What pre-flight learned about a device that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its address.
    pub bdf: Bdf,
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// IOMMU group number.
    pub group: u32,
}

/// Can the IOMMU remap interrupts (which VFIO type1 requires unless told otherwise)?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntRemap {
    /// An IOMMU reports interrupt-remapping support.
    Supported,
    /// `vfio_iommu_type1 allow_unsafe_interrupts=1` is set: VFIO won't ask.
    UnsafeAllowed,
    /// Every Intel IOMMU present reports no interrupt remapping (ECAP.IR = 0).
    Missing,
    /// Nothing conclusive in sysfs (AMD, or no IOMMU listed); VFIO will tell.
    Unknown,
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn read_hex(path: &Path) -> Option<u64> {
    let s = read_trimmed(path)?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Name of the driver bound to the device at `dir` (`dir/driver` symlink), if any.
pub fn bound_driver(dir: &Path) -> Option<String> {
    let target = fs::read_link(dir.join("driver")).ok()?;
    target.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// IOMMU group number of the device at `dir` (`dir/iommu_group` symlink), if any.
pub fn iommu_group(dir: &Path) -> Option<u32> {
    let target = fs::read_link(dir.join("iommu_group")).ok()?;
    target.file_name()?.to_str()?.parse().ok()
}

/// Drivers that leave an IOMMU group usable by VFIO: VFIO's own (vfio-pci and its
/// variant drivers) and the drivers that declare `driver_managed_dma` (pci-stub,
/// pcieport for bridges).
fn driver_keeps_group_viable(driver: Option<&str>) -> bool {
    match driver {
        None => true,
        Some(d) => d.starts_with("vfio") || d == "pci-stub" || d == "pcieport",
    }
}

/// Devices of `group` other than `bdf` whose drivers make the group non-viable.
pub fn group_blockers(paths: &HostPaths, group: u32, bdf: &Bdf) -> Vec<GroupMember> {
    let mut v = group_members(paths, group, bdf);
    v.retain(|m| !driver_keeps_group_viable(m.driver.as_deref()));
    v
}

/// Every device of `group` other than `bdf`, with its driver, in address order.
pub fn group_members(paths: &HostPaths, group: u32, bdf: &Bdf) -> Vec<GroupMember> {
    let dir = paths.sysfs.join("kernel/iommu_groups").join(group.to_string()).join("devices");
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<GroupMember> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy() != bdf.to_string())
        // Entries are symlinks to the device directories; follow them for `driver`.
        .map(|e| GroupMember { bdf: e.file_name().to_string_lossy().into_owned(), driver: bound_driver(&e.path()) })
        .collect();
    out.sort_by(|a, b| a.bdf.cmp(&b.bdf));
    out
}

/// Reads the interrupt-remapping state from sysfs.
pub fn interrupt_remapping(paths: &HostPaths) -> IntRemap {
    let param = paths.sysfs.join("module/vfio_iommu_type1/parameters/allow_unsafe_interrupts");
    if matches!(read_trimmed(&param).as_deref(), Some("Y" | "1")) {
        return IntRemap::UnsafeAllowed;
    }
    let Ok(entries) = fs::read_dir(paths.sysfs.join("class/iommu")) else { return IntRemap::Unknown };
    let mut intel_seen = false;
    for e in entries.filter_map(Result::ok) {
        // Intel VT-d: ECAP bit 3 (IR) says the unit remaps interrupts.
        if let Some(ecap) = read_hex(&e.path().join("intel-iommu/ecap")) {
            intel_seen = true;
            if ecap & (1 << 3) != 0 {
                return IntRemap::Supported;
            }
        }
    }
    if intel_seen { IntRemap::Missing } else { IntRemap::Unknown }
}

fn check_node(path: &Path, who: &Credentials) -> Result<(), VfioError> {
    let meta = fs::metadata(path).map_err(|e| VfioError::os(format!("cannot stat {}", path.display()), e))?;
    if who.may_read_write(&meta) {
        Ok(())
    } else {
        Err(VfioError::PermissionDenied { path: path.to_owned(), uid: who.uid })
    }
}

/// Checks everything that VFIO will need to open `bdf`, from the file system only.
///
/// Order matters for the message: the first unmet precondition is reported (module
/// loaded → device exists → bound to vfio-pci → IOMMU group → group viable → nodes
/// present → permissions → interrupt remapping).
pub fn preflight(paths: &HostPaths, bdf: &Bdf, who: &Credentials) -> Result<DeviceInfo, VfioError> {
    let dir = paths.device_dir(bdf);
    if !dir.exists() {
        return Err(VfioError::NoDevice { bdf: *bdf, path: dir });
    }
    let vfio = paths.vfio_dir();
    if !vfio.is_dir() {
        return Err(VfioError::VfioMissing { path: vfio });
    }
    let vendor = read_hex(&dir.join("vendor")).unwrap_or(0) as u16;
    let device = read_hex(&dir.join("device")).unwrap_or(0) as u16;
    let driver = bound_driver(&dir);
    if driver.as_deref() != Some("vfio-pci") {
        return Err(VfioError::NotBound { bdf: *bdf, driver, vendor, device });
    }
    let group = iommu_group(&dir).ok_or(VfioError::NoIommu { bdf: *bdf })?;
    let others = group_blockers(paths, group, bdf);
    if !others.is_empty() {
        return Err(VfioError::GroupNotViable { group, bdf: *bdf, others });
    }
    let container = vfio.join("vfio");
    if !container.exists() {
        return Err(VfioError::VfioMissing { path: container });
    }
    let node = vfio.join(group.to_string());
    if !node.exists() {
        return Err(VfioError::GroupMissing { bdf: *bdf, group, path: node });
    }
    check_node(&container, who)?;
    check_node(&node, who)?;
    if interrupt_remapping(paths) == IntRemap::Missing {
        return Err(VfioError::NoInterruptRemapping);
    }
    Ok(DeviceInfo { bdf: *bdf, vendor, device, group })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A fake `/sys` + `/dev` in a temporary directory, removed on drop.
    struct FakeHost {
        root: PathBuf,
        paths: HostPaths,
    }

    impl FakeHost {
        fn new(name: &str) -> Self {
            let root = std::env::temp_dir().join(format!("vfio-driver-test-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            let paths = HostPaths { sysfs: root.join("sys"), dev: root.join("dev") };
            fs::create_dir_all(paths.sysfs.join("bus/pci/devices")).unwrap();
            fs::create_dir_all(paths.sysfs.join("bus/pci/drivers")).unwrap();
            fs::create_dir_all(paths.sysfs.join("kernel/iommu_groups")).unwrap();
            Self { root, paths }
        }

        /// Adds a PCI function, optionally bound to `driver` and in `group`.
        fn device(&self, bdf: &str, ids: (u16, u16), driver: Option<&str>, group: Option<u32>) {
            let real = self.paths.sysfs.join("devices/pci0000:00").join(bdf);
            fs::create_dir_all(&real).unwrap();
            fs::write(real.join("vendor"), format!("{:#06x}\n", ids.0)).unwrap();
            fs::write(real.join("device"), format!("{:#06x}\n", ids.1)).unwrap();
            symlink(&real, self.paths.sysfs.join("bus/pci/devices").join(bdf)).unwrap();
            if let Some(d) = driver {
                let drv = self.paths.sysfs.join("bus/pci/drivers").join(d);
                fs::create_dir_all(&drv).unwrap();
                symlink(&drv, real.join("driver")).unwrap();
            }
            if let Some(g) = group {
                let gdir = self.paths.sysfs.join("kernel/iommu_groups").join(g.to_string());
                fs::create_dir_all(gdir.join("devices")).unwrap();
                symlink(&gdir, real.join("iommu_group")).unwrap();
                symlink(&real, gdir.join("devices").join(bdf)).unwrap();
            }
        }

        fn vfio_nodes(&self, groups: &[u32]) {
            let v = self.paths.vfio_dir();
            fs::create_dir_all(&v).unwrap();
            fs::write(v.join("vfio"), "").unwrap();
            for g in groups {
                fs::write(v.join(g.to_string()), "").unwrap();
            }
        }

        fn intel_iommu(&self, name: &str, ecap: u64) {
            let d = self.paths.sysfs.join("class/iommu").join(name).join("intel-iommu");
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("ecap"), format!("{ecap:x}\n")).unwrap();
        }
    }

    impl Drop for FakeHost {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    const ROOT: Credentials = Credentials { uid: 0, gids: Vec::new() };
    fn bdf(s: &str) -> Bdf {
        s.parse().unwrap()
    }

    #[test]
    fn a_well_configured_device_passes_with_its_ids_and_group() {
        let h = FakeHost::new("ok");
        h.device("0000:01:00.0", (0x10ee, 0x9038), Some("vfio-pci"), Some(7));
        h.device("0000:01:00.1", (0x10ee, 0x9039), None, Some(7)); // unbound sibling: fine
        h.vfio_nodes(&[7]);
        h.intel_iommu("dmar0", 0xf0_0f5e); // IR bit set
        let info = preflight(&h.paths, &bdf("0000:01:00.0"), &ROOT).unwrap();
        assert_eq!(info, DeviceInfo { bdf: bdf("01:00.0"), vendor: 0x10ee, device: 0x9038, group: 7 });
    }

    #[test]
    fn missing_device_and_missing_vfio_are_reported_first() {
        let h = FakeHost::new("missing");
        let e = preflight(&h.paths, &bdf("0000:02:00.0"), &ROOT).unwrap_err();
        assert!(matches!(e, VfioError::NoDevice { .. }), "{e}");
        h.device("0000:02:00.0", (0x1234, 0x11e8), None, Some(3));
        let e = preflight(&h.paths, &bdf("0000:02:00.0"), &ROOT).unwrap_err();
        assert!(matches!(&e, VfioError::VfioMissing { path } if path.ends_with("dev/vfio")), "{e}");
        assert!(e.to_string().contains("modprobe vfio-pci"), "{e}");
    }

    #[test]
    fn unbound_and_wrongly_bound_devices_get_bind_commands() {
        let h = FakeHost::new("bind");
        h.vfio_nodes(&[]);
        h.device("0000:03:00.0", (0x1234, 0x11e8), None, Some(4));
        h.device("0000:04:00.0", (0x10ee, 0x9038), Some("xdma"), Some(5));
        let e = preflight(&h.paths, &bdf("03:00.0"), &ROOT).unwrap_err();
        assert!(matches!(&e, VfioError::NotBound { driver: None, vendor: 0x1234, device: 0x11e8, .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("is not bound to any driver"), "{msg}");
        assert!(msg.contains("echo vfio-pci > /sys/bus/pci/devices/0000:03:00.0/driver_override"), "{msg}");
        assert!(msg.contains("echo 1234 11e8 > /sys/bus/pci/drivers/vfio-pci/new_id"), "{msg}");
        assert!(!msg.contains("driver/unbind"), "nothing to unbind: {msg}");
        let e = preflight(&h.paths, &bdf("04:00.0"), &ROOT).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bound to driver \"xdma\""), "{msg}");
        assert!(msg.contains("echo 0000:04:00.0 > /sys/bus/pci/devices/0000:04:00.0/driver/unbind"), "{msg}");
    }

    #[test]
    fn no_iommu_group_means_the_iommu_is_off() {
        let h = FakeHost::new("noiommu");
        h.vfio_nodes(&[]);
        h.device("0000:05:00.0", (0x10ee, 0x9038), Some("vfio-pci"), None);
        let e = preflight(&h.paths, &bdf("05:00.0"), &ROOT).unwrap_err();
        assert!(matches!(e, VfioError::NoIommu { .. }), "{e}");
        assert!(e.to_string().contains("intel_iommu=on"), "{e}");
    }

    #[test]
    fn a_group_shared_with_a_host_driver_names_the_other_devices() {
        let h = FakeHost::new("viable");
        h.vfio_nodes(&[9]);
        h.device("0000:06:00.0", (0x10ee, 0x9038), Some("vfio-pci"), Some(9));
        h.device("0000:06:00.1", (0x8086, 0x10fb), Some("ixgbe"), Some(9));
        h.device("0000:00:1c.0", (0x8086, 0xa110), Some("pcieport"), Some(9)); // bridge: fine
        h.device("0000:06:00.2", (0x8086, 0x10fc), Some("pci-stub"), Some(9)); // fine
        h.device("0000:06:00.3", (0x8086, 0x10fd), Some("e1000e"), Some(9));
        let e = preflight(&h.paths, &bdf("06:00.0"), &ROOT).unwrap_err();
        match &e {
            VfioError::GroupNotViable { group: 9, others, .. } => {
                let names: Vec<_> = others.iter().map(|m| (m.bdf.as_str(), m.driver.as_deref())).collect();
                assert_eq!(names, [("0000:06:00.1", Some("ixgbe")), ("0000:06:00.3", Some("e1000e"))]);
            }
            other => panic!("unexpected {other}"),
        }
        assert!(e.to_string().contains("0000:06:00.1 (driver ixgbe), 0000:06:00.3 (driver e1000e)"), "{e}");
        let all: Vec<_> = group_members(&h.paths, 9, &bdf("06:00.0")).into_iter().map(|m| m.bdf).collect();
        assert_eq!(all, ["0000:00:1c.0", "0000:06:00.1", "0000:06:00.2", "0000:06:00.3"], "itself excluded, sorted");
    }

    #[test]
    fn missing_nodes_and_permissions_are_distinguished() {
        let h = FakeHost::new("nodes");
        h.device("0000:07:00.0", (0x10ee, 0x9038), Some("vfio-pci"), Some(11));
        fs::create_dir_all(h.paths.vfio_dir()).unwrap();
        let e = preflight(&h.paths, &bdf("07:00.0"), &ROOT).unwrap_err();
        assert!(matches!(&e, VfioError::VfioMissing { path } if path.ends_with("vfio/vfio")), "{e}");
        h.vfio_nodes(&[]);
        let e = preflight(&h.paths, &bdf("07:00.0"), &ROOT).unwrap_err();
        assert!(matches!(&e, VfioError::GroupMissing { group: 11, path, .. } if path.ends_with("vfio/11")), "{e}");
        h.vfio_nodes(&[11]);
        let node = h.paths.vfio_dir().join("11");
        fs::set_permissions(&node, fs::Permissions::from_mode(0o600)).unwrap();
        let owner = fs::metadata(&node).unwrap().uid();
        let stranger = Credentials { uid: owner + 1000, gids: vec![4242] };
        // /dev/vfio/vfio is 0644 here: not writable by others.
        fs::set_permissions(h.paths.vfio_dir().join("vfio"), fs::Permissions::from_mode(0o666)).unwrap();
        let e = preflight(&h.paths, &bdf("07:00.0"), &stranger).unwrap_err();
        assert!(
            matches!(&e, VfioError::PermissionDenied { path, uid } if path == &node && *uid == owner + 1000),
            "{e}"
        );
        assert!(e.to_string().contains("ulimit -l"), "{e}");
        let gid = fs::metadata(&node).unwrap().gid();
        fs::set_permissions(&node, fs::Permissions::from_mode(0o660)).unwrap();
        let member = Credentials { uid: owner + 1000, gids: vec![gid] };
        assert_eq!(preflight(&h.paths, &bdf("07:00.0"), &member).unwrap().group, 11);
        assert_eq!(preflight(&h.paths, &bdf("07:00.0"), &ROOT).unwrap().group, 11);
    }

    #[test]
    fn interrupt_remapping_is_read_from_ecap_and_the_module_parameter() {
        let h = FakeHost::new("intremap");
        assert_eq!(interrupt_remapping(&h.paths), IntRemap::Unknown, "no IOMMU listed");
        h.intel_iommu("dmar0", 0xf0_0f56); // bit 3 clear
        assert_eq!(interrupt_remapping(&h.paths), IntRemap::Missing);
        h.device("0000:08:00.0", (0x10ee, 0x9038), Some("vfio-pci"), Some(2));
        h.vfio_nodes(&[2]);
        let e = preflight(&h.paths, &bdf("08:00.0"), &ROOT).unwrap_err();
        assert!(matches!(e, VfioError::NoInterruptRemapping), "{e}");
        assert!(e.to_string().contains("allow_unsafe_interrupts"), "{e}");
        let p = h.paths.sysfs.join("module/vfio_iommu_type1/parameters");
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("allow_unsafe_interrupts"), "N\n").unwrap();
        assert_eq!(interrupt_remapping(&h.paths), IntRemap::Missing);
        fs::write(p.join("allow_unsafe_interrupts"), "Y\n").unwrap();
        assert_eq!(interrupt_remapping(&h.paths), IntRemap::UnsafeAllowed);
        assert_eq!(preflight(&h.paths, &bdf("08:00.0"), &ROOT).unwrap().group, 2);
        fs::write(p.join("allow_unsafe_interrupts"), "N\n").unwrap();
        h.intel_iommu("dmar1", 0x8); // a second unit with IR
        assert_eq!(interrupt_remapping(&h.paths), IntRemap::Supported);
    }
}
