//! The co-simulation bridge: the Verilated NPU RTL as a device the host can drive.
//!
//! Verilator compiles the SystemVerilog of the NPU (`rtl/`) into a cycle-accurate C++
//! model. This crate's build script verilates the RTL and links the model through a
//! thin `extern "C"` shim; [`SimDevice`] clocks it and services its boundary ports the
//! way the hard IP of a real board would: AXI4-Lite CSR transactions from the host,
//! interrupt lines latched into host-visible state. Time is measured in device clock
//! cycles, so every run with the same inputs is bit-for-bit and cycle-for-cycle
//! repeatable.

mod ffi;
mod model;
mod ports;
mod sim_device;

pub use model::ModelError;
pub use sim_device::{SimConfig, SimDevice, SimError};
