//! The co-simulation bridge: the Verilated NPU RTL as a device the host can drive.
//!
//! Verilator compiles the SystemVerilog of the NPU (`rtl/`) into a cycle-accurate C++
//! model. This crate's build script verilates the RTL and links the model through a
//! thin `extern "C"` shim; [`SimDevice`] clocks it and services its boundary ports the
//! way the hard IP of a real board would: AXI4-Lite CSR transactions from the host, the
//! host-memory port served from the process's own memory through an IOVA map (an
//! unmapped IOVA gets an error response, like an IOMMU fault), the device-memory port
//! served from a sparse anonymous mapping, each with the latency and bandwidth of the
//! [`TimingModel`], and interrupt lines. `SimDevice` implements the NPU's
//! [`npu::DeviceIo`] transport, so the driver runs on it unchanged. Time is measured in device clock
//! cycles, so every run with the same inputs is bit-for-bit and cycle-for-cycle
//! repeatable.

pub mod axi_check;
mod axi_slave;
mod backdoor;
pub mod cosim;
mod dram;
mod fast_forward;
mod ffi;
mod memory;
mod model;
mod pcie;
mod pipe;
mod ports;
mod sim_device;
mod sim_io;
mod timing;

pub use axi_slave::PortStats;
pub use dram::DramModel;
pub use fast_forward::FastForwardStats;
pub use model::{ModelBuild, ModelError};
pub use npu::backdoor::{BackdoorTables, DevMemBackdoor};
pub use pcie::{PcieGen, PcieLink};
pub use sim_device::{SimConfig, SimDevice, SimError, TransportStats};
pub use timing::{
    DevMem, DevMemPreset, HostLink, LinkPreset, MmioCost, NOMINAL_HZ, PortTiming, StallPattern, TimingModel,
};
