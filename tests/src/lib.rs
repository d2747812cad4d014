//! Cross-crate scenarios: the manager, the NPU driver and a transport working together.
//!
//! Every scenario here runs the whole stack — `gmem-host` on top of the `npu` driver on
//! top of a transport — and checks results byte for byte. The scenarios live in this
//! crate's `tests/` folder; the library holds the shared set-up: an [`npu::session`] on
//! the Verilated RTL or on the reference model.

pub mod sigbus;

use npu::NpuConfig;
use npu::session::{Session, manager_config};
use npu_refmodel::ModelDevice;
use sim_bridge::{SimConfig, SimDevice};

/// A manager with one NPU attached to one address space.
pub type Stack<T> = Session<T>;

/// The stack on the Verilated RTL.
pub fn rtl(cfg: NpuConfig) -> Stack<SimDevice> {
    Session::open(SimDevice::new(SimConfig::default()).expect("RTL model builds"), cfg, manager_config())
        .expect("session opens")
}

/// The stack on the reference model.
pub fn model(cfg: NpuConfig) -> Stack<ModelDevice> {
    Session::open(ModelDevice::new(Default::default()), cfg, manager_config()).expect("session opens")
}
