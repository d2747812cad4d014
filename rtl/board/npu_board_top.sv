// Board top for the Alveo U55C: the NPU behind a Xilinx XDMA PCIe bridge (AXI Bridge
// mode, Gen3 x16, 512-bit AXI at 250 MHz) with HBM as device memory.
//
//   PCIe ─ XDMA ─ m_axib (BAR0 hits) ─ npu_board_bar0 (AXI4 → AXI4-Lite) ─ s_axil  ┐
//              ─ s_axib (AXI → PCIe) ◄─ slice ◄─ m_axi_host ───────────── npu_top ┤
//              ─ usr_irq_req[6:0] ◄─ npu_board_irq ◄─ irq_o ──────────────────────┤
//   HBM ◄─ npu_devmem (SmartConnect + HBM) ◄─ slice ◄─ m_axi_dev ─────────────────┘
//
// Clock: the bridge's axi_aclk (250 MHz) is the NPU's clk_i; there is no other clock
// domain in the NPU. Reset: axi_aresetn (low while the link is down or after a PCIe
// hot reset) through prim_rst_sync, so the whole NPU leaves reset in one cycle.
// Every NPU AXI port passes a register slice (npu_board_axi_slice, or the slices in
// npu_board_bar0), so the NPU's I/O timing is cut from the IP's.
// The vendor IP (xdma_0, IBUFDS_GTE4, npu_devmem) are black boxes in rtl/board/stub for
// lint and open-source synthesis; rtl/board/build.tcl builds the real ones.
module npu_board_top (
  input  logic        pcie_refclk_p_i,   // 100 MHz PCIe reference clock (edge connector)
  input  logic        pcie_refclk_n_i,
  input  logic        pcie_perst_ni,     // PERST# from the slot
  output logic [15:0] pci_exp_txp_o,
  output logic [15:0] pci_exp_txn_o,
  input  logic [15:0] pci_exp_rxp_i,
  input  logic [15:0] pci_exp_rxn_i,
  input  logic        hbm_refclk_p_i,    // 100 MHz board clock for the HBM controller
  input  logic        hbm_refclk_n_i,
  output logic        hbm_cattrip_o      // must stay low or the card powers off
);

  localparam int unsigned NumIrq = 7;

  logic sys_clk, sys_clk_gt;
  logic clk, aresetn, rst_n;
  logic link_up;
  logic [NumIrq-1:0] irq, usr_irq_req, usr_irq_ack;

  IBUFDS_GTE4 u_pcie_refclk (
    .I    (pcie_refclk_p_i),
    .IB   (pcie_refclk_n_i),
    .CEB  (1'b0),
    .O    (sys_clk_gt),
    .ODIV2(sys_clk)
  );

  // ---------------------------------------------------------------- PCIe bridge
  // BAR0 hits (bridge AXI master)
  logic [3:0]   b_awid, b_bid, b_arid, b_rid;
  logic [63:0]  b_awaddr, b_araddr;
  logic [7:0]   b_awlen, b_arlen;
  logic [2:0]   b_awsize, b_arsize;
  logic         b_awvalid, b_awready, b_wlast, b_wvalid, b_wready, b_bvalid, b_bready;
  logic         b_arvalid, b_arready, b_rlast, b_rvalid, b_rready;
  logic [511:0] b_wdata, b_rdata;
  logic [63:0]  b_wstrb;
  logic [1:0]   b_bresp, b_rresp;

  // NPU host-memory master, after its slice (to the bridge's AXI slave)
  logic [3:0] hs_awid;
  logic [63:0] hs_awaddr;
  logic [7:0] hs_awlen;
  logic [2:0] hs_awsize;
  logic [1:0] hs_awburst;
  logic hs_awvalid;
  logic hs_awready;
  logic [511:0] hs_wdata;
  logic [63:0] hs_wstrb;
  logic hs_wlast;
  logic hs_wvalid;
  logic hs_wready;
  logic [3:0] hs_bid;
  logic [1:0] hs_bresp;
  logic hs_bvalid;
  logic hs_bready;
  logic [3:0] hs_arid;
  logic [63:0] hs_araddr;
  logic [7:0] hs_arlen;
  logic [2:0] hs_arsize;
  logic [1:0] hs_arburst;
  logic hs_arvalid;
  logic hs_arready;
  logic [3:0] hs_rid;
  logic [511:0] hs_rdata;
  logic [1:0] hs_rresp;
  logic hs_rlast;
  logic hs_rvalid;
  logic hs_rready;

  // The bridge's outputs this shell does not use stay open (burst type, protection,
  // lock and cache of BAR hits; the bridge-register AXI4-Lite slave).
  /* verilator lint_off PINCONNECTEMPTY */
  xdma_0 u_xdma (
    .sys_clk        (sys_clk),
    .sys_clk_gt     (sys_clk_gt),
    .sys_rst_n      (pcie_perst_ni),
    .user_lnk_up    (link_up),
    .pci_exp_txp    (pci_exp_txp_o),
    .pci_exp_txn    (pci_exp_txn_o),
    .pci_exp_rxp    (pci_exp_rxp_i),
    .pci_exp_rxn    (pci_exp_rxn_i),
    .axi_aclk       (clk),
    .axi_aresetn    (aresetn),
    .usr_irq_req    (usr_irq_req),
    .usr_irq_ack    (usr_irq_ack),
    .msi_enable     (),
    .msix_enable    (),
    .m_axib_awid    (b_awid),
    .m_axib_awaddr  (b_awaddr),
    .m_axib_awlen   (b_awlen),
    .m_axib_awsize  (b_awsize),
    .m_axib_awburst (),
    .m_axib_awprot  (),
    .m_axib_awvalid (b_awvalid),
    .m_axib_awready (b_awready),
    .m_axib_awlock  (),
    .m_axib_awcache (),
    .m_axib_wdata   (b_wdata),
    .m_axib_wstrb   (b_wstrb),
    .m_axib_wlast   (b_wlast),
    .m_axib_wvalid  (b_wvalid),
    .m_axib_wready  (b_wready),
    .m_axib_bid     (b_bid),
    .m_axib_bresp   (b_bresp),
    .m_axib_bvalid  (b_bvalid),
    .m_axib_bready  (b_bready),
    .m_axib_arid    (b_arid),
    .m_axib_araddr  (b_araddr),
    .m_axib_arlen   (b_arlen),
    .m_axib_arsize  (b_arsize),
    .m_axib_arburst (),
    .m_axib_arprot  (),
    .m_axib_arvalid (b_arvalid),
    .m_axib_arready (b_arready),
    .m_axib_arlock  (),
    .m_axib_arcache (),
    .m_axib_rid     (b_rid),
    .m_axib_rdata   (b_rdata),
    .m_axib_rresp   (b_rresp),
    .m_axib_rlast   (b_rlast),
    .m_axib_rvalid  (b_rvalid),
    .m_axib_rready  (b_rready),
    .s_axib_awid    (hs_awid),
    .s_axib_awaddr  (hs_awaddr),
    .s_axib_awregion(4'd0),
    .s_axib_awlen   (hs_awlen),
    .s_axib_awsize  (hs_awsize),
    .s_axib_awburst (hs_awburst),
    .s_axib_awvalid (hs_awvalid),
    .s_axib_awready (hs_awready),
    .s_axib_wdata   (hs_wdata),
    .s_axib_wstrb   (hs_wstrb),
    .s_axib_wlast   (hs_wlast),
    .s_axib_wvalid  (hs_wvalid),
    .s_axib_wready  (hs_wready),
    .s_axib_bid     (hs_bid),
    .s_axib_bresp   (hs_bresp),
    .s_axib_bvalid  (hs_bvalid),
    .s_axib_bready  (hs_bready),
    .s_axib_arid    (hs_arid),
    .s_axib_araddr  (hs_araddr),
    .s_axib_arregion(4'd0),
    .s_axib_arlen   (hs_arlen),
    .s_axib_arsize  (hs_arsize),
    .s_axib_arburst (hs_arburst),
    .s_axib_arvalid (hs_arvalid),
    .s_axib_arready (hs_arready),
    .s_axib_rid     (hs_rid),
    .s_axib_rdata   (hs_rdata),
    .s_axib_rresp   (hs_rresp),
    .s_axib_rlast   (hs_rlast),
    .s_axib_rvalid  (hs_rvalid),
    .s_axib_rready  (hs_rready),
    .s_axil_awaddr  (32'd0),
    .s_axil_awprot  (3'd0),
    .s_axil_awvalid (1'b0),
    .s_axil_awready (),
    .s_axil_wdata   (32'd0),
    .s_axil_wstrb   (4'd0),
    .s_axil_wvalid  (1'b0),
    .s_axil_wready  (),
    .s_axil_bvalid  (),
    .s_axil_bresp   (),
    .s_axil_bready  (1'b1),
    .s_axil_araddr  (32'd0),
    .s_axil_arprot  (3'd0),
    .s_axil_arvalid (1'b0),
    .s_axil_arready (),
    .s_axil_rdata   (),
    .s_axil_rresp   (),
    .s_axil_rvalid  (),
    .s_axil_rready  (1'b1)
  );
  /* verilator lint_on PINCONNECTEMPTY */

  // ---------------------------------------------------------------- reset
  prim_rst_sync #(
    .Stages(3)
  ) u_rst_sync (
    .clk_i (clk),
    .rst_ni(aresetn),
    .rst_no(rst_n)
  );

  // ---------------------------------------------------------------- BAR0 → CSRs
  logic                                 l_awvalid, l_awready, l_wvalid, l_wready, l_bvalid, l_bready;
  logic                                 l_arvalid, l_arready, l_rvalid, l_rready;
  logic [npu_reg_pkg::CsrAddrWidth-1:0] l_awaddr, l_araddr;
  logic [31:0]                          l_wdata, l_rdata;
  logic [3:0]                           l_wstrb;
  logic [1:0]                           l_bresp, l_rresp;

  npu_board_bar0 #(
    .IdWidth     (4),
    .AddrWidth   (64),
    .DataWidth   (512),
    .CsrAddrWidth(npu_reg_pkg::CsrAddrWidth)
  ) u_bar0 (
    .clk_i           (clk),
    .rst_ni          (rst_n),
    .s_awid_i        (b_awid),
    .s_awaddr_i      (b_awaddr),
    .s_awlen_i       (b_awlen),
    .s_awsize_i      (b_awsize),
    .s_awvalid_i     (b_awvalid),
    .s_awready_o     (b_awready),
    .s_wdata_i       (b_wdata),
    .s_wstrb_i       (b_wstrb),
    .s_wlast_i       (b_wlast),
    .s_wvalid_i      (b_wvalid),
    .s_wready_o      (b_wready),
    .s_bid_o         (b_bid),
    .s_bresp_o       (b_bresp),
    .s_bvalid_o      (b_bvalid),
    .s_bready_i      (b_bready),
    .s_arid_i        (b_arid),
    .s_araddr_i      (b_araddr),
    .s_arlen_i       (b_arlen),
    .s_arsize_i      (b_arsize),
    .s_arvalid_i     (b_arvalid),
    .s_arready_o     (b_arready),
    .s_rid_o         (b_rid),
    .s_rdata_o       (b_rdata),
    .s_rresp_o       (b_rresp),
    .s_rlast_o       (b_rlast),
    .s_rvalid_o      (b_rvalid),
    .s_rready_i      (b_rready),
    .m_axil_awvalid_o(l_awvalid),
    .m_axil_awready_i(l_awready),
    .m_axil_awaddr_o (l_awaddr),
    .m_axil_wvalid_o (l_wvalid),
    .m_axil_wready_i (l_wready),
    .m_axil_wdata_o  (l_wdata),
    .m_axil_wstrb_o  (l_wstrb),
    .m_axil_bvalid_i (l_bvalid),
    .m_axil_bready_o (l_bready),
    .m_axil_bresp_i  (l_bresp),
    .m_axil_arvalid_o(l_arvalid),
    .m_axil_arready_i(l_arready),
    .m_axil_araddr_o (l_araddr),
    .m_axil_rvalid_i (l_rvalid),
    .m_axil_rready_o (l_rready),
    .m_axil_rdata_i  (l_rdata),
    .m_axil_rresp_i  (l_rresp)
  );

  // ---------------------------------------------------------------- the NPU
  // NPU memory masters, before their slices
  logic [3:0] nh_awid;
  logic [63:0] nh_awaddr;
  logic [7:0] nh_awlen;
  logic [2:0] nh_awsize;
  logic [1:0] nh_awburst;
  logic nh_awvalid;
  logic nh_awready;
  logic [511:0] nh_wdata;
  logic [63:0] nh_wstrb;
  logic nh_wlast;
  logic nh_wvalid;
  logic nh_wready;
  logic [3:0] nh_bid;
  logic [1:0] nh_bresp;
  logic nh_bvalid;
  logic nh_bready;
  logic [3:0] nh_arid;
  logic [63:0] nh_araddr;
  logic [7:0] nh_arlen;
  logic [2:0] nh_arsize;
  logic [1:0] nh_arburst;
  logic nh_arvalid;
  logic nh_arready;
  logic [3:0] nh_rid;
  logic [511:0] nh_rdata;
  logic [1:0] nh_rresp;
  logic nh_rlast;
  logic nh_rvalid;
  logic nh_rready;
  logic [3:0] nd_awid;
  logic [39:0] nd_awaddr;
  logic [7:0] nd_awlen;
  logic [2:0] nd_awsize;
  logic [1:0] nd_awburst;
  logic nd_awvalid;
  logic nd_awready;
  logic [511:0] nd_wdata;
  logic [63:0] nd_wstrb;
  logic nd_wlast;
  logic nd_wvalid;
  logic nd_wready;
  logic [3:0] nd_bid;
  logic [1:0] nd_bresp;
  logic nd_bvalid;
  logic nd_bready;
  logic [3:0] nd_arid;
  logic [39:0] nd_araddr;
  logic [7:0] nd_arlen;
  logic [2:0] nd_arsize;
  logic [1:0] nd_arburst;
  logic nd_arvalid;
  logic nd_arready;
  logic [3:0] nd_rid;
  logic [511:0] nd_rdata;
  logic [1:0] nd_rresp;
  logic nd_rlast;
  logic nd_rvalid;
  logic nd_rready;

  /* verilator lint_off UNUSEDSIGNAL */
  logic npu_quiescent;  // simulation-support output of npu_top, unused on a board
  /* verilator lint_on UNUSEDSIGNAL */

  npu_top u_npu (
    .clk_i           (clk),
    .rst_ni          (rst_n),
    .s_axil_awvalid_i(l_awvalid),
    .s_axil_awready_o(l_awready),
    .s_axil_awaddr_i (l_awaddr),
    .s_axil_wvalid_i (l_wvalid),
    .s_axil_wready_o (l_wready),
    .s_axil_wdata_i  (l_wdata),
    .s_axil_wstrb_i  (l_wstrb),
    .s_axil_bvalid_o (l_bvalid),
    .s_axil_bready_i (l_bready),
    .s_axil_bresp_o  (l_bresp),
    .s_axil_arvalid_i(l_arvalid),
    .s_axil_arready_o(l_arready),
    .s_axil_araddr_i (l_araddr),
    .s_axil_rvalid_o (l_rvalid),
    .s_axil_rready_i (l_rready),
    .s_axil_rdata_o  (l_rdata),
    .s_axil_rresp_o  (l_rresp),
    .m_axi_host_awid_o (nh_awid),
    .m_axi_host_awaddr_o (nh_awaddr),
    .m_axi_host_awlen_o (nh_awlen),
    .m_axi_host_awsize_o (nh_awsize),
    .m_axi_host_awburst_o (nh_awburst),
    .m_axi_host_awvalid_o (nh_awvalid),
    .m_axi_host_awready_i (nh_awready),
    .m_axi_host_wdata_o (nh_wdata),
    .m_axi_host_wstrb_o (nh_wstrb),
    .m_axi_host_wlast_o (nh_wlast),
    .m_axi_host_wvalid_o (nh_wvalid),
    .m_axi_host_wready_i (nh_wready),
    .m_axi_host_bid_i (nh_bid),
    .m_axi_host_bresp_i (nh_bresp),
    .m_axi_host_bvalid_i (nh_bvalid),
    .m_axi_host_bready_o (nh_bready),
    .m_axi_host_arid_o (nh_arid),
    .m_axi_host_araddr_o (nh_araddr),
    .m_axi_host_arlen_o (nh_arlen),
    .m_axi_host_arsize_o (nh_arsize),
    .m_axi_host_arburst_o (nh_arburst),
    .m_axi_host_arvalid_o (nh_arvalid),
    .m_axi_host_arready_i (nh_arready),
    .m_axi_host_rid_i (nh_rid),
    .m_axi_host_rdata_i (nh_rdata),
    .m_axi_host_rresp_i (nh_rresp),
    .m_axi_host_rlast_i (nh_rlast),
    .m_axi_host_rvalid_i (nh_rvalid),
    .m_axi_host_rready_o (nh_rready),
    .m_axi_dev_awid_o (nd_awid),
    .m_axi_dev_awaddr_o (nd_awaddr),
    .m_axi_dev_awlen_o (nd_awlen),
    .m_axi_dev_awsize_o (nd_awsize),
    .m_axi_dev_awburst_o (nd_awburst),
    .m_axi_dev_awvalid_o (nd_awvalid),
    .m_axi_dev_awready_i (nd_awready),
    .m_axi_dev_wdata_o (nd_wdata),
    .m_axi_dev_wstrb_o (nd_wstrb),
    .m_axi_dev_wlast_o (nd_wlast),
    .m_axi_dev_wvalid_o (nd_wvalid),
    .m_axi_dev_wready_i (nd_wready),
    .m_axi_dev_bid_i (nd_bid),
    .m_axi_dev_bresp_i (nd_bresp),
    .m_axi_dev_bvalid_i (nd_bvalid),
    .m_axi_dev_bready_o (nd_bready),
    .m_axi_dev_arid_o (nd_arid),
    .m_axi_dev_araddr_o (nd_araddr),
    .m_axi_dev_arlen_o (nd_arlen),
    .m_axi_dev_arsize_o (nd_arsize),
    .m_axi_dev_arburst_o (nd_arburst),
    .m_axi_dev_arvalid_o (nd_arvalid),
    .m_axi_dev_arready_i (nd_arready),
    .m_axi_dev_rid_i (nd_rid),
    .m_axi_dev_rdata_i (nd_rdata),
    .m_axi_dev_rresp_i (nd_rresp),
    .m_axi_dev_rlast_i (nd_rlast),
    .m_axi_dev_rvalid_i (nd_rvalid),
    .m_axi_dev_rready_o (nd_rready),
    .irq_o           (irq),
    .ff_skip_i       (16'd0),  // simulation-support port: constant 0 on a board
    .quiescent_o     (npu_quiescent)
  );

  npu_board_axi_slice #(
    .AddrWidth(64),
    .IdWidth  (4),
    .DataWidth(512)
  ) u_host_slice (
    .clk_i  (clk),
    .rst_ni (rst_n),
    .s_awid_i (nh_awid),
    .s_awaddr_i (nh_awaddr),
    .s_awlen_i (nh_awlen),
    .s_awsize_i (nh_awsize),
    .s_awburst_i (nh_awburst),
    .s_awvalid_i (nh_awvalid),
    .s_awready_o (nh_awready),
    .s_wdata_i (nh_wdata),
    .s_wstrb_i (nh_wstrb),
    .s_wlast_i (nh_wlast),
    .s_wvalid_i (nh_wvalid),
    .s_wready_o (nh_wready),
    .s_bid_o (nh_bid),
    .s_bresp_o (nh_bresp),
    .s_bvalid_o (nh_bvalid),
    .s_bready_i (nh_bready),
    .s_arid_i (nh_arid),
    .s_araddr_i (nh_araddr),
    .s_arlen_i (nh_arlen),
    .s_arsize_i (nh_arsize),
    .s_arburst_i (nh_arburst),
    .s_arvalid_i (nh_arvalid),
    .s_arready_o (nh_arready),
    .s_rid_o (nh_rid),
    .s_rdata_o (nh_rdata),
    .s_rresp_o (nh_rresp),
    .s_rlast_o (nh_rlast),
    .s_rvalid_o (nh_rvalid),
    .s_rready_i (nh_rready),
    .m_awid_o (hs_awid),
    .m_awaddr_o (hs_awaddr),
    .m_awlen_o (hs_awlen),
    .m_awsize_o (hs_awsize),
    .m_awburst_o (hs_awburst),
    .m_awvalid_o (hs_awvalid),
    .m_awready_i (hs_awready),
    .m_wdata_o (hs_wdata),
    .m_wstrb_o (hs_wstrb),
    .m_wlast_o (hs_wlast),
    .m_wvalid_o (hs_wvalid),
    .m_wready_i (hs_wready),
    .m_bid_i (hs_bid),
    .m_bresp_i (hs_bresp),
    .m_bvalid_i (hs_bvalid),
    .m_bready_o (hs_bready),
    .m_arid_o (hs_arid),
    .m_araddr_o (hs_araddr),
    .m_arlen_o (hs_arlen),
    .m_arsize_o (hs_arsize),
    .m_arburst_o (hs_arburst),
    .m_arvalid_o (hs_arvalid),
    .m_arready_i (hs_arready),
    .m_rid_i (hs_rid),
    .m_rdata_i (hs_rdata),
    .m_rresp_i (hs_rresp),
    .m_rlast_i (hs_rlast),
    .m_rvalid_i (hs_rvalid),
    .m_rready_o (hs_rready)
  );

  // ---------------------------------------------------------------- device memory
  // NPU device-memory master, after its slice
  logic [3:0] ds_awid;
  logic [39:0] ds_awaddr;
  logic [7:0] ds_awlen;
  logic [2:0] ds_awsize;
  logic [1:0] ds_awburst;
  logic ds_awvalid;
  logic ds_awready;
  logic [511:0] ds_wdata;
  logic [63:0] ds_wstrb;
  logic ds_wlast;
  logic ds_wvalid;
  logic ds_wready;
  logic [3:0] ds_bid;
  logic [1:0] ds_bresp;
  logic ds_bvalid;
  logic ds_bready;
  logic [3:0] ds_arid;
  logic [39:0] ds_araddr;
  logic [7:0] ds_arlen;
  logic [2:0] ds_arsize;
  logic [1:0] ds_arburst;
  logic ds_arvalid;
  logic ds_arready;
  logic [3:0] ds_rid;
  logic [511:0] ds_rdata;
  logic [1:0] ds_rresp;
  logic ds_rlast;
  logic ds_rvalid;
  logic ds_rready;

  npu_board_axi_slice #(
    .AddrWidth(40),
    .IdWidth  (4),
    .DataWidth(512)
  ) u_dev_slice (
    .clk_i  (clk),
    .rst_ni (rst_n),
    .s_awid_i (nd_awid),
    .s_awaddr_i (nd_awaddr),
    .s_awlen_i (nd_awlen),
    .s_awsize_i (nd_awsize),
    .s_awburst_i (nd_awburst),
    .s_awvalid_i (nd_awvalid),
    .s_awready_o (nd_awready),
    .s_wdata_i (nd_wdata),
    .s_wstrb_i (nd_wstrb),
    .s_wlast_i (nd_wlast),
    .s_wvalid_i (nd_wvalid),
    .s_wready_o (nd_wready),
    .s_bid_o (nd_bid),
    .s_bresp_o (nd_bresp),
    .s_bvalid_o (nd_bvalid),
    .s_bready_i (nd_bready),
    .s_arid_i (nd_arid),
    .s_araddr_i (nd_araddr),
    .s_arlen_i (nd_arlen),
    .s_arsize_i (nd_arsize),
    .s_arburst_i (nd_arburst),
    .s_arvalid_i (nd_arvalid),
    .s_arready_o (nd_arready),
    .s_rid_o (nd_rid),
    .s_rdata_o (nd_rdata),
    .s_rresp_o (nd_rresp),
    .s_rlast_o (nd_rlast),
    .s_rvalid_o (nd_rvalid),
    .s_rready_i (nd_rready),
    .m_awid_o (ds_awid),
    .m_awaddr_o (ds_awaddr),
    .m_awlen_o (ds_awlen),
    .m_awsize_o (ds_awsize),
    .m_awburst_o (ds_awburst),
    .m_awvalid_o (ds_awvalid),
    .m_awready_i (ds_awready),
    .m_wdata_o (ds_wdata),
    .m_wstrb_o (ds_wstrb),
    .m_wlast_o (ds_wlast),
    .m_wvalid_o (ds_wvalid),
    .m_wready_i (ds_wready),
    .m_bid_i (ds_bid),
    .m_bresp_i (ds_bresp),
    .m_bvalid_i (ds_bvalid),
    .m_bready_o (ds_bready),
    .m_arid_o (ds_arid),
    .m_araddr_o (ds_araddr),
    .m_arlen_o (ds_arlen),
    .m_arsize_o (ds_arsize),
    .m_arburst_o (ds_arburst),
    .m_arvalid_o (ds_arvalid),
    .m_arready_i (ds_arready),
    .m_rid_i (ds_rid),
    .m_rdata_i (ds_rdata),
    .m_rresp_i (ds_rresp),
    .m_rlast_i (ds_rlast),
    .m_rvalid_i (ds_rvalid),
    .m_rready_o (ds_rready)
  );

  npu_devmem u_devmem (
    .aclk            (clk),
    .aresetn         (rst_n),
    .hbm_refclk_clk_p(hbm_refclk_p_i),
    .hbm_refclk_clk_n(hbm_refclk_n_i),
    .hbm_cattrip     (hbm_cattrip_o),
    .s_axi_awid    (ds_awid),
    .s_axi_awaddr  (ds_awaddr),
    .s_axi_awlen   (ds_awlen),
    .s_axi_awsize  (ds_awsize),
    .s_axi_awburst (ds_awburst),
    .s_axi_awvalid (ds_awvalid),
    .s_axi_awready (ds_awready),
    .s_axi_wdata   (ds_wdata),
    .s_axi_wstrb   (ds_wstrb),
    .s_axi_wlast   (ds_wlast),
    .s_axi_wvalid  (ds_wvalid),
    .s_axi_wready  (ds_wready),
    .s_axi_bid     (ds_bid),
    .s_axi_bresp   (ds_bresp),
    .s_axi_bvalid  (ds_bvalid),
    .s_axi_bready  (ds_bready),
    .s_axi_arid    (ds_arid),
    .s_axi_araddr  (ds_araddr),
    .s_axi_arlen   (ds_arlen),
    .s_axi_arsize  (ds_arsize),
    .s_axi_arburst (ds_arburst),
    .s_axi_arvalid (ds_arvalid),
    .s_axi_arready (ds_arready),
    .s_axi_rid     (ds_rid),
    .s_axi_rdata   (ds_rdata),
    .s_axi_rresp   (ds_rresp),
    .s_axi_rlast   (ds_rlast),
    .s_axi_rvalid  (ds_rvalid),
    .s_axi_rready  (ds_rready)
  );

  // ---------------------------------------------------------------- interrupts
  npu_board_irq #(
    .NumIrq(NumIrq)
  ) u_irq (
    .clk_i        (clk),
    .rst_ni       (rst_n),
    .irq_i        (irq),
    .usr_irq_req_o(usr_irq_req),
    .usr_irq_ack_i(usr_irq_ack)
  );

  // Link status is visible to the host through the bridge; nothing here uses it.
  logic unused_link_up;
  assign unused_link_up = link_up;

endmodule
