// Black-box stub of the device-memory subsystem behind the NPU's device-memory port:
// on the Alveo U55C an AXI SmartConnect (clock crossing to the HBM AXI clock, AXI4 to
// AXI3, 512 to 256 bits) in front of one HBM stack (build.tcl, block design
// `npu_devmem`). AXI4 slave, 512-bit, 40-bit device-physical addresses from 0.
// For lint and open-source synthesis only; Vivado builds the block design.
/* verilator lint_off UNDRIVEN */
/* verilator lint_off UNUSEDSIGNAL */
(* blackbox *)
module npu_devmem (
  input  logic         aclk,
  input  logic         aresetn,
  input  logic         hbm_refclk_clk_p,
  input  logic         hbm_refclk_clk_n,
  output logic         hbm_cattrip,
  input  logic [3:0]   s_axi_awid,
  input  logic [39:0]  s_axi_awaddr,
  input  logic [7:0]   s_axi_awlen,
  input  logic [2:0]   s_axi_awsize,
  input  logic [1:0]   s_axi_awburst,
  input  logic         s_axi_awvalid,
  output logic         s_axi_awready,
  input  logic [511:0] s_axi_wdata,
  input  logic [63:0]  s_axi_wstrb,
  input  logic         s_axi_wlast,
  input  logic         s_axi_wvalid,
  output logic         s_axi_wready,
  output logic [3:0]   s_axi_bid,
  output logic [1:0]   s_axi_bresp,
  output logic         s_axi_bvalid,
  input  logic         s_axi_bready,
  input  logic [3:0]   s_axi_arid,
  input  logic [39:0]  s_axi_araddr,
  input  logic [7:0]   s_axi_arlen,
  input  logic [2:0]   s_axi_arsize,
  input  logic [1:0]   s_axi_arburst,
  input  logic         s_axi_arvalid,
  output logic         s_axi_arready,
  output logic [3:0]   s_axi_rid,
  output logic [511:0] s_axi_rdata,
  output logic [1:0]   s_axi_rresp,
  output logic         s_axi_rlast,
  output logic         s_axi_rvalid,
  input  logic         s_axi_rready
);
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNDRIVEN */
