//! Cross-crate scenarios: the manager, the NPU driver and a transport working together.
//!
//! Every scenario here runs the whole stack — `gmem-host` on top of the `npu` driver on
//! top of a transport — and checks results byte for byte. The scenarios live in this
//! crate's `tests/` folder; the library holds the shared set-up: a manager with one NPU
//! on the Verilated RTL or on the reference model.

use std::sync::Arc;

use gmem_host::{Asid, Config, DeviceId, Gmem, SpaceId};
use npu::{DeviceIo, NpuConfig, NpuDevice};
use sim_bridge::{ModelDevice, SimConfig, SimDevice};

/// A manager with one NPU attached to one address space.
pub struct Stack<T: DeviceIo + Send + 'static> {
    /// The manager.
    pub gm: Gmem,
    /// The device (also registered with the manager).
    pub npu: Arc<NpuDevice<T>>,
    /// Its id in the manager.
    pub id: DeviceId,
    /// The address space.
    pub space: SpaceId,
    /// The device's ASID for it.
    pub asid: Asid,
}

impl<T: DeviceIo + Send + 'static> Stack<T> {
    /// Opens the NPU on `io` with `cfg`, registers it and attaches a fresh space.
    pub fn new(io: T, cfg: NpuConfig) -> Self {
        let gm = Gmem::new(Config::default()).expect("manager starts");
        let npu = Arc::new(NpuDevice::open(io, cfg).expect("NPU opens"));
        let id = gm.register_device(npu.clone()).expect("device registers");
        let space = gm.create_space();
        let asid = gm.attach(space, id).expect("space attaches");
        Self { gm, npu, id, space, asid }
    }
}

/// The stack on the Verilated RTL.
pub fn rtl(cfg: NpuConfig) -> Stack<SimDevice> {
    Stack::new(SimDevice::new(SimConfig::default()).expect("RTL model builds"), cfg)
}

/// The stack on the reference model.
pub fn model(cfg: NpuConfig) -> Stack<ModelDevice> {
    Stack::new(ModelDevice::new(Default::default()), cfg)
}
