//! Reaching a real PCIe FPGA NPU from user space through Linux VFIO.
//!
//! VFIO lets an unprivileged-by-design user process own a PCI device: it maps the
//! device's BARs for MMIO, programs the IOMMU so the device can DMA into chosen host
//! buffers at chosen I/O virtual addresses (IOVAs), and receives interrupts through
//! eventfds. This crate implements the NPU's transport trait over VFIO so the same
//! driver and manager code that runs against the co-simulation drives a board.
