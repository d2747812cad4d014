//! The NPU's software face: register map, queue and record formats, and the driver.
//!
//! The NPU is the project's RTL accelerator: a device MMU walking Sv39 page tables
//! in device memory, an ASID-tagged TLB, a DMA engine fed by descriptor rings in host
//! memory, and a small compute unit that issues virtual-address loads and stores.
//! Software talks to it through 32-bit control/status registers and rings in host
//! memory. This crate holds the register constants generated from the single register
//! description (`rtl/npu_regs.toml`), the binary formats of commands, fault records,
//! DMA descriptors, kernel descriptors and completions, the drivers of its
//! queues (commands, faults, DMA, kernels), and the [`DeviceIo`] transport trait that every
//! way of reaching the device (Verilator co-simulation, VFIO board) implements.

pub mod cmdq;
pub mod device;
mod device_io;
pub mod dma;
mod dma_buf;
#[cfg(test)]
mod fake_io;
pub mod fault;
pub mod inject;
mod iova;
pub mod kernel;
mod record;
mod regmap;
pub mod regs;
pub mod session;
pub mod sv39;

pub use device::{NpuConfig, NpuDevice, NpuError, NpuStats};
pub use device_io::{Clock, DeviceIo, IoError};
pub use dma_buf::{DmaBufError, DmaBuffer, DmaOwners};
pub use iova::{IOVA_PAGE, IovaAllocator, IovaError};
pub use record::RecordError;
pub use regmap::{Access, Field, Reg};
