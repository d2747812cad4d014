//! Reaching a real PCIe FPGA NPU from user space through Linux VFIO.
//!
//! VFIO lets a user process own a PCI device: it maps the device's BARs for MMIO,
//! programs the IOMMU so the device can DMA into chosen host buffers at chosen I/O
//! virtual addresses (IOVAs), and receives interrupts through eventfds. The IOMMU
//! confines the device to exactly those buffers, which is what makes handing a bus
//! master to user space safe; it also remaps the device's MSI writes, which is why VFIO
//! insists on interrupt remapping.
//!
//! Layers, bottom up:
//! - [`sysfs`]: pre-flight diagnosis from sysfs and `/dev` (module loaded, device bound
//!   to vfio-pci, IOMMU group viable, permissions, interrupt remapping), with typed
//!   [`VfioError`]s that say how to fix the host;
//! - [`sys`]: the raw VFIO ioctls and OS calls the `pci-driver` crate lacks;
//! - [`wait`]: wall-clock waits as short as the co-simulation's: below the kernel's 50 µs
//!   timer slack they spin, longer ones sleep with the thread's slack lowered;
//! - [`VfioPci`]: the generic layer for any PCI function (tested against QEMU's `edu`
//!   device by `scripts/vfio-guest-test.sh`);
//! - [`VfioDevice`]: the NPU, implementing [`npu::DeviceIo`] so the same driver and
//!   manager code that runs on the co-simulation drives a board;
//! - [`bringup`]: identification, SCRATCH and DMA-loopback checks over any
//!   [`npu::DeviceIo`], tested on the co-simulated RTL, run on a board by `vfio-npu-info`.
//!
//! Time on a board is wall-clock time: `DeviceIo::advance(ns)` waits `ns` through
//! [`wait::wait_for`], so the driver's 100–1000 ns waits while it polls its rings cost
//! about what the co-simulation charges for them instead of a 50 µs+ sleep. Interrupt
//! waits block on their eventfds.
//!
//! Binaries: `vfio-npu-info BDF` (board bring-up check, `docs/board.md`) and
//! `vfio-guest-test` (the `/init` of the QEMU guest that `scripts/vfio-guest-test.sh`
//! boots to test this crate on a real kernel VFIO stack without a board).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bdf;
pub mod bringup;
mod error;
mod npu_dev;
mod pci;
pub mod sys;
pub mod sysfs;
pub mod wait;

pub use bdf::{Bdf, BdfError};
pub use error::{GroupMember, VfioError};
pub use npu_dev::{
    CSR_BAR, KNOWN_MAJOR, NPU_VECTORS, VfioDevice, check_identity, npu_open_options, npu_open_options_from_env,
};
pub use pci::{IrqKind, IrqMode, OpenOptions, VfioPci, iova_allocator, usable_pieces};
