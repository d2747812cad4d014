//! PCI configuration space of the NPU as the vfio-user server presents it.
//!
//! A type-0 header with the board's IDs (Xilinx `10ee:9038`, docs/board.md), class
//! "processing accelerator", two 32-bit memory BARs — BAR0 = the 4 KiB CSR space,
//! BAR2 = 4 KiB holding the MSI-X table and PBA (kept out of BAR0 as on a board) — and
//! three capabilities: MSI-X with one vector per interrupt line (0x40), MSI with eight
//! vectors, 64-bit addresses and per-vector masking (0x50), and PCI Express (0x70, an
//! endpoint that offers function-level reset). INTx is pin A. The guest's driver picks
//! MSI-X, else MSI, else INTx (vfio-driver's fallback order).
//! BAR registers answer size probes (write all-ones, read the size mask); the command
//! register, the interrupt line, the MSI-X enable/mask bits, the MSI registers and the
//! PCIe device control are writable; everything else ignores writes, as read-only bits
//! do on hardware. Writing "initiate FLR" (device control bit 15) latches a request the
//! server takes with [`PciConfig::take_flr`]; the bit reads 0.

/// Size of the configuration region (conventional PCI header + capabilities).
pub const CONFIG_BYTES: usize = 256;
/// PCI vendor ID (Xilinx, as the board's PCIe IP presents it).
pub const VENDOR_ID: u16 = 0x10ee;
/// PCI device ID of the NPU shell (docs/board.md).
pub const DEVICE_ID: u16 = 0x9038;
/// Size of BAR0 (CSRs) and BAR2 (MSI-X table + PBA).
pub const BAR_BYTES: u32 = 4096;
/// BAR index holding the MSI-X table and PBA.
pub const MSIX_BAR: u32 = 2;
/// Offset of the MSI-X PBA in [`MSIX_BAR`] (the table starts at 0).
pub const MSIX_PBA_OFFSET: u32 = 0x800;
/// Interrupt vectors: one per `irq_o` line of the RTL (INT_CAUSE i = vector i).
pub const VECTORS: u16 = 7;

/// MSI vectors offered: the power of two at or above [`VECTORS`] (multiple message
/// capable = 3). Line i uses vector min(i, enabled - 1).
pub const MSI_VECTORS: u32 = 8;

const MSIX_CAP: usize = 0x40;
const MSI_CAP: usize = 0x50;
const PCIE_CAP: usize = 0x70;
/// MSI message control: per-vector masking, 64-bit, multiple message capable 8.
const MSI_CTRL: u32 = 0x0100 | 0x0080 | 3 << 1;
/// MSI mask bits register (64-bit layout with per-vector masking).
const MSI_MASK: usize = MSI_CAP + 0x10;
/// PCIe Device Capabilities bit 28: function-level reset capable.
const DEVCAP_FLR: u32 = 1 << 28;
/// PCIe Device Control (low half of the dword at +8); bit 15 initiates an FLR.
const PCIE_DEVCTL: usize = PCIE_CAP + 8;
const DEVCTL_BCR_FLR: u32 = 1 << 15;
/// Command register bit 10 and status register bit 3 (high half of dword 4).
const COMMAND_INTX_DISABLE: u32 = 1 << 10;
const STATUS_INTERRUPT: u32 = 1 << (16 + 3);
/// Class code: processing accelerator (0x12), subclass 0, interface 0.
const CLASS_ACCEL: u32 = 0x12 << 24;
/// Command register bits software may set: I/O, memory, bus master, INTx disable.
const COMMAND_WRITABLE: u32 = 0x0407;

/// The configuration space: 256 bytes plus the BAR values software wrote.
#[derive(Clone, Debug)]
pub struct PciConfig {
    bytes: [u8; CONFIG_BYTES],
}

impl Default for PciConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PciConfig {
    /// The NPU's configuration space after reset.
    pub fn new() -> Self {
        let mut c = Self { bytes: [0; CONFIG_BYTES] };
        c.put32(0x00, u32::from(VENDOR_ID) | u32::from(DEVICE_ID) << 16);
        c.put32(0x04, 0x0010 << 16); // status: capabilities list
        c.put32(0x08, CLASS_ACCEL | 0x01); // revision 1
        c.put32(0x2c, u32::from(VENDOR_ID) | u32::from(DEVICE_ID) << 16); // subsystem
        c.put32(0x34, MSIX_CAP as u32);
        c.put32(0x3c, 1 << 8); // interrupt pin A
        // MSI-X: ID 0x11, next MSI, table size N-1; table at BAR2+0, PBA at BAR2+0x800.
        c.put32(MSIX_CAP, 0x11 | (MSI_CAP as u32) << 8 | u32::from(VECTORS - 1) << 16);
        c.put32(MSIX_CAP + 4, MSIX_BAR);
        c.put32(MSIX_CAP + 8, MSIX_PBA_OFFSET | MSIX_BAR);
        // MSI: ID 0x05, next PCIe.
        c.put32(MSI_CAP, 0x05 | (PCIE_CAP as u32) << 8 | MSI_CTRL << 16);
        // PCI Express: ID 0x10, last; capability version 2, endpoint; FLR capable.
        c.put32(PCIE_CAP, 0x10 | 0x0002 << 16);
        c.put32(PCIE_CAP + 4, DEVCAP_FLR);
        c
    }

    fn get32(&self, off: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&self.bytes[off..off + 4]);
        u32::from_le_bytes(w)
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Reads `out.len()` bytes at `offset`; false if the range leaves the space.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> bool {
        match range(offset, out.len()) {
            Some(r) => {
                out.copy_from_slice(&self.bytes[r]);
                true
            }
            None => false,
        }
    }

    /// Writes `data` at `offset`, dword by dword through the writable-bits masks;
    /// false if the range leaves the space.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> bool {
        let Some(r) = range(offset, data.len()) else { return false };
        for (i, &b) in r.clone().zip(data) {
            let dword = i & !3;
            let shift = (i & 3) * 8;
            let old = self.get32(dword);
            let merged = old & !(0xff << shift) | u32::from(b) << shift;
            let mask = writable(dword);
            self.put32(dword, old & !mask | merged & mask);
        }
        true
    }

    /// Takes a pending function-level reset request (device control bit 15 written 1).
    pub fn take_flr(&mut self) -> bool {
        let v = self.get32(PCIE_DEVCTL);
        self.put32(PCIE_DEVCTL, v & !DEVCTL_BCR_FLR);
        v & DEVCTL_BCR_FLR != 0
    }

    /// MSI enabled (message control bit 0).
    pub fn msi_enabled(&self) -> bool {
        self.get32(MSI_CAP) >> 16 & 1 != 0
    }

    /// MSI vectors software enabled (multiple message enable, a power of two).
    pub fn msi_vectors(&self) -> u32 {
        1 << (self.get32(MSI_CAP) >> 20 & 7).min(3)
    }

    /// True if MSI vector `v` is masked (per-vector mask bits).
    pub fn msi_masked(&self, v: u32) -> bool {
        v < 32 && self.get32(MSI_MASK) >> v & 1 != 0
    }

    /// Sets the MSI pending bits (read-only for software).
    pub fn set_msi_pending(&mut self, bits: u32) {
        self.put32(MSI_MASK + 4, bits);
    }

    /// INTx disabled by software (command register bit 10).
    pub fn intx_disabled(&self) -> bool {
        self.get32(0x04) & COMMAND_INTX_DISABLE != 0
    }

    /// Reflects the INTx level in the status register's interrupt bit.
    pub fn set_intx_status(&mut self, asserted: bool) {
        let v = self.get32(0x04) & !STATUS_INTERRUPT;
        self.put32(0x04, v | if asserted { STATUS_INTERRUPT } else { 0 });
    }

    /// MSI-X enabled and not masked as a whole (message control bits 15 and 14).
    pub fn msix_enabled(&self) -> bool {
        let ctrl = self.get32(MSIX_CAP) >> 16;
        ctrl & 0x8000 != 0 && ctrl & 0x4000 == 0
    }
}

/// Writable bits of the dword at `off`.
fn writable(off: usize) -> u32 {
    match off {
        0x04 => COMMAND_WRITABLE,
        // BAR0 and BAR2: 32-bit memory BARs of BAR_BYTES, address bits above the size.
        0x10 | 0x18 => !(BAR_BYTES - 1),
        0x3c => 0xff, // interrupt line
        o if o == MSIX_CAP => 0xc000 << 16,
        o if o == MSI_CAP => 0x0071 << 16, // enable, multiple message enable
        o if o == MSI_CAP + 4 => 0xffff_fffc,
        o if o == MSI_CAP + 8 => u32::MAX,
        o if o == MSI_CAP + 0xc => 0xffff,
        o if o == MSI_MASK => (1 << MSI_VECTORS) - 1,
        o if o == PCIE_DEVCTL => 0xffff, // device control; device status is read-only
        _ => 0,
    }
}

fn range(offset: u64, len: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(len)?;
    (end <= CONFIG_BYTES).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r32(c: &PciConfig, off: u64) -> u32 {
        let mut b = [0u8; 4];
        assert!(c.read(off, &mut b));
        u32::from_le_bytes(b)
    }

    #[test]
    fn ids_class_and_capability_chain() {
        let c = PciConfig::new();
        assert_eq!(r32(&c, 0), 0x9038_10ee);
        assert_eq!(r32(&c, 8) >> 8, 0x12_0000);
        assert_eq!(r32(&c, 4) >> 16 & 0x10, 0x10);
        assert_eq!(r32(&c, 0x34), 0x40);
        assert_eq!(r32(&c, 0x40) & 0xff, 0x11);
        assert_eq!(r32(&c, 0x40) >> 16 & 0x7ff, u32::from(VECTORS - 1));
        assert_eq!(r32(&c, 0x44), 2);
        assert_eq!(r32(&c, 0x48), 0x802);
        assert_eq!(r32(&c, 0x3c) >> 8 & 0xff, 1, "INTx on pin A");
        assert_eq!(r32(&c, 0x40) >> 8 & 0xff, 0x50, "MSI-X -> MSI");
        assert_eq!(r32(&c, 0x50) & 0xffff, 0x7005, "MSI -> PCIe");
        assert_eq!(r32(&c, 0x50) >> 16, 0x0186, "MSI: per-vector mask, 64-bit, 8 vectors");
        assert_eq!(r32(&c, 0x70) & 0xffff, 0x0010, "PCIe, last capability");
        assert_eq!(r32(&c, 0x70) >> 16 & 0xf0, 0, "endpoint");
        assert_ne!(r32(&c, 0x74) & 1 << 28, 0, "FLR capable");
    }

    #[test]
    fn bar_size_probe_and_read_only_bits() {
        let mut c = PciConfig::new();
        assert!(c.write(0x10, &u32::MAX.to_le_bytes()));
        assert_eq!(r32(&c, 0x10), 0xffff_f000, "BAR0: 4 KiB, 32-bit memory");
        assert!(c.write(0x14, &u32::MAX.to_le_bytes()));
        assert_eq!(r32(&c, 0x14), 0, "BAR1 absent");
        assert!(c.write(0x10, &0xfebf_0000u32.to_le_bytes()));
        assert_eq!(r32(&c, 0x10), 0xfebf_0000);
        assert!(c.write(0, &[0xff, 0xff]));
        assert_eq!(r32(&c, 0), 0x9038_10ee, "IDs are read-only");
        assert!(c.write(4, &[0x06]));
        assert_eq!(r32(&c, 4) & 0xffff, 0x0006);
        assert!(!c.msix_enabled());
        assert!(c.write(0x42, &0x8006u16.to_le_bytes()));
        assert!(c.msix_enabled());
        assert_eq!(r32(&c, 0x40) >> 16 & 0x7ff, 6, "table size stays");
    }

    #[test]
    fn flr_msi_and_intx_bits() {
        let mut c = PciConfig::new();
        assert!(!c.take_flr());
        assert!(c.write(0x78, &0x8000u16.to_le_bytes()));
        assert!(c.take_flr(), "initiate FLR latches a request");
        assert_eq!(r32(&c, 0x78) & 0x8000, 0, "and reads 0 once taken");
        assert!(!c.take_flr());
        assert!(!c.msi_enabled());
        assert!(c.write(0x52, &0x0021u16.to_le_bytes()));
        assert!(c.msi_enabled());
        assert_eq!(c.msi_vectors(), 4);
        assert_eq!(r32(&c, 0x50) >> 16, 0x01a7, "capability bits stay");
        assert!(c.write(0x60, &0xffu32.to_le_bytes()));
        assert!(c.msi_masked(7) && !c.msi_masked(8));
        assert!(!c.intx_disabled());
        assert!(c.write(4, &0x0400u16.to_le_bytes()));
        assert!(c.intx_disabled());
        c.set_intx_status(true);
        assert_eq!(r32(&c, 4) >> 16 & 0x18, 0x18, "interrupt status and capabilities list");
        assert!(c.write(6, &0xffffu16.to_le_bytes()));
        assert_eq!(r32(&c, 4) >> 16 & 0x18, 0x18, "status is read-only");
    }

    #[test]
    fn out_of_range_is_refused() {
        let mut c = PciConfig::new();
        let mut b = [0u8; 4];
        assert!(!c.read(254, &mut b));
        assert!(!c.write(256, &[0]));
        assert!(!c.read(u64::MAX, &mut b));
    }
}
