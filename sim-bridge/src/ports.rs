//! Typed pointers to the Verilated model's top-level ports.
//!
//! Ports are read and written through these pointers directly, so driving a signal
//! costs a memory access, not an FFI call; only `eval` crosses into C++.

use crate::model::{Model, ModelError};

/// A port of Verilator storage type `T` (u8 ≤ 8 bits, u16 ≤ 16, u32 ≤ 32, u64 ≤ 64).
///
/// Invariant: created by [`Port::bind`] from a live [`Model`] and only kept in a
/// struct that owns that model (see `SimDevice`), so the pointer never dangles.
pub(crate) struct Port<T: Copy> {
    ptr: *mut T,
}

impl<T: Copy> Port<T> {
    /// Binds the port `name`, checking that it is `size_of::<T>()` bytes.
    pub(crate) fn bind(model: &Model, name: &'static str) -> Result<Self, ModelError> {
        let bytes = u32::try_from(std::mem::size_of::<T>()).unwrap_or(u32::MAX);
        Ok(Self { ptr: model.port_ptr(name, bytes)?.cast::<T>() })
    }

    #[inline]
    pub(crate) fn get(&self) -> T {
        // SAFETY: per the type invariant the model owning this storage is alive, the
        // size was checked at bind time, and Verilator aligns port storage naturally.
        unsafe { self.ptr.read() }
    }

    #[inline]
    pub(crate) fn set(&self, value: T) {
        // SAFETY: as in `get`; the model is not evaluating concurrently (single thread).
        unsafe { self.ptr.write(value) }
    }
}

/// Every port of `npu_top`.
pub(crate) struct TopPorts {
    pub clk: Port<u8>,
    pub rst_n: Port<u8>,
    pub awvalid: Port<u8>,
    pub awready: Port<u8>,
    pub awaddr: Port<u16>,
    pub wvalid: Port<u8>,
    pub wready: Port<u8>,
    pub wdata: Port<u32>,
    pub wstrb: Port<u8>,
    pub bvalid: Port<u8>,
    pub bready: Port<u8>,
    pub bresp: Port<u8>,
    pub arvalid: Port<u8>,
    pub arready: Port<u8>,
    pub araddr: Port<u16>,
    pub rvalid: Port<u8>,
    pub rready: Port<u8>,
    pub rdata: Port<u32>,
    pub rresp: Port<u8>,
    pub irq: Port<u8>,
}

impl TopPorts {
    /// Binds every port; fails if the RTL and the shim disagree.
    pub(crate) fn bind(m: &Model) -> Result<Self, ModelError> {
        Ok(Self {
            clk: Port::bind(m, "clk_i")?,
            rst_n: Port::bind(m, "rst_ni")?,
            awvalid: Port::bind(m, "s_axil_awvalid_i")?,
            awready: Port::bind(m, "s_axil_awready_o")?,
            awaddr: Port::bind(m, "s_axil_awaddr_i")?,
            wvalid: Port::bind(m, "s_axil_wvalid_i")?,
            wready: Port::bind(m, "s_axil_wready_o")?,
            wdata: Port::bind(m, "s_axil_wdata_i")?,
            wstrb: Port::bind(m, "s_axil_wstrb_i")?,
            bvalid: Port::bind(m, "s_axil_bvalid_o")?,
            bready: Port::bind(m, "s_axil_bready_i")?,
            bresp: Port::bind(m, "s_axil_bresp_o")?,
            arvalid: Port::bind(m, "s_axil_arvalid_i")?,
            arready: Port::bind(m, "s_axil_arready_o")?,
            araddr: Port::bind(m, "s_axil_araddr_i")?,
            rvalid: Port::bind(m, "s_axil_rvalid_o")?,
            rready: Port::bind(m, "s_axil_rready_i")?,
            rdata: Port::bind(m, "s_axil_rdata_o")?,
            rresp: Port::bind(m, "s_axil_rresp_o")?,
            irq: Port::bind(m, "irq_o")?,
        })
    }
}
