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

/// Words of one 512-bit data beat as Verilator stores it (`VlWide<16>`).
pub(crate) type Beat = [u32; 16];

/// One AXI4 master port of `npu_top` (`m_axi_host_*` or `m_axi_dev_*`).
pub(crate) struct AxiMasterPorts {
    pub awid: Port<u8>,
    pub awaddr: Port<u64>,
    pub awlen: Port<u8>,
    pub awsize: Port<u8>,
    pub awburst: Port<u8>,
    pub awvalid: Port<u8>,
    pub awready: Port<u8>,
    pub wdata: Port<Beat>,
    pub wstrb: Port<u64>,
    pub wlast: Port<u8>,
    pub wvalid: Port<u8>,
    pub wready: Port<u8>,
    pub bid: Port<u8>,
    pub bresp: Port<u8>,
    pub bvalid: Port<u8>,
    pub bready: Port<u8>,
    pub arid: Port<u8>,
    pub araddr: Port<u64>,
    pub arlen: Port<u8>,
    pub arsize: Port<u8>,
    pub arburst: Port<u8>,
    pub arvalid: Port<u8>,
    pub arready: Port<u8>,
    pub rid: Port<u8>,
    pub rdata: Port<Beat>,
    pub rresp: Port<u8>,
    pub rlast: Port<u8>,
    pub rvalid: Port<u8>,
    pub rready: Port<u8>,
}

impl AxiMasterPorts {
    /// Binds `m_axi_<which>_*`.
    pub(crate) fn bind(m: &Model, which: &'static str) -> Result<Self, ModelError> {
        let host = which == "host";
        macro_rules! p {
            ($h:literal, $d:literal) => {
                Port::bind(m, if host { $h } else { $d })?
            };
        }
        Ok(Self {
            awid: p!("m_axi_host_awid_o", "m_axi_dev_awid_o"),
            awaddr: p!("m_axi_host_awaddr_o", "m_axi_dev_awaddr_o"),
            awlen: p!("m_axi_host_awlen_o", "m_axi_dev_awlen_o"),
            awsize: p!("m_axi_host_awsize_o", "m_axi_dev_awsize_o"),
            awburst: p!("m_axi_host_awburst_o", "m_axi_dev_awburst_o"),
            awvalid: p!("m_axi_host_awvalid_o", "m_axi_dev_awvalid_o"),
            awready: p!("m_axi_host_awready_i", "m_axi_dev_awready_i"),
            wdata: p!("m_axi_host_wdata_o", "m_axi_dev_wdata_o"),
            wstrb: p!("m_axi_host_wstrb_o", "m_axi_dev_wstrb_o"),
            wlast: p!("m_axi_host_wlast_o", "m_axi_dev_wlast_o"),
            wvalid: p!("m_axi_host_wvalid_o", "m_axi_dev_wvalid_o"),
            wready: p!("m_axi_host_wready_i", "m_axi_dev_wready_i"),
            bid: p!("m_axi_host_bid_i", "m_axi_dev_bid_i"),
            bresp: p!("m_axi_host_bresp_i", "m_axi_dev_bresp_i"),
            bvalid: p!("m_axi_host_bvalid_i", "m_axi_dev_bvalid_i"),
            bready: p!("m_axi_host_bready_o", "m_axi_dev_bready_o"),
            arid: p!("m_axi_host_arid_o", "m_axi_dev_arid_o"),
            araddr: p!("m_axi_host_araddr_o", "m_axi_dev_araddr_o"),
            arlen: p!("m_axi_host_arlen_o", "m_axi_dev_arlen_o"),
            arsize: p!("m_axi_host_arsize_o", "m_axi_dev_arsize_o"),
            arburst: p!("m_axi_host_arburst_o", "m_axi_dev_arburst_o"),
            arvalid: p!("m_axi_host_arvalid_o", "m_axi_dev_arvalid_o"),
            arready: p!("m_axi_host_arready_i", "m_axi_dev_arready_i"),
            rid: p!("m_axi_host_rid_i", "m_axi_dev_rid_i"),
            rdata: p!("m_axi_host_rdata_i", "m_axi_dev_rdata_i"),
            rresp: p!("m_axi_host_rresp_i", "m_axi_dev_rresp_i"),
            rlast: p!("m_axi_host_rlast_i", "m_axi_dev_rlast_i"),
            rvalid: p!("m_axi_host_rvalid_i", "m_axi_dev_rvalid_i"),
            rready: p!("m_axi_host_rready_o", "m_axi_dev_rready_o"),
        })
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
    pub ff_skip: Port<u16>,
    pub quiescent: Port<u8>,
    pub host: AxiMasterPorts,
    pub dev: AxiMasterPorts,
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
            ff_skip: Port::bind(m, "ff_skip_i")?,
            quiescent: Port::bind(m, "quiescent_o")?,
            host: AxiMasterPorts::bind(m, "host")?,
            dev: AxiMasterPorts::bind(m, "dev")?,
        })
    }
}
