// Register slices on all five channels of one AXI4 port: every output of the port
// comes from a flip-flop (prim_reg_slice), so the NPU's AXI timing is cut from the
// shell's interconnect in both directions. Full throughput; payload stable while
// VALID && !READY. `s_*` faces the master (the NPU), `m_*` the slave (the shell).
`include "prim_assert.svh"

module npu_board_axi_slice #(
  parameter int unsigned AddrWidth = 64,
  parameter int unsigned IdWidth   = 4,
  parameter int unsigned DataWidth = 512,
  localparam int unsigned StrbWidth = DataWidth / 8
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  // from the master
  input  logic [IdWidth-1:0]   s_awid_i,
  input  logic [AddrWidth-1:0] s_awaddr_i,
  input  logic [7:0]           s_awlen_i,
  input  logic [2:0]           s_awsize_i,
  input  logic [1:0]           s_awburst_i,
  input  logic                 s_awvalid_i,
  output logic                 s_awready_o,
  input  logic [DataWidth-1:0] s_wdata_i,
  input  logic [StrbWidth-1:0] s_wstrb_i,
  input  logic                 s_wlast_i,
  input  logic                 s_wvalid_i,
  output logic                 s_wready_o,
  output logic [IdWidth-1:0]   s_bid_o,
  output logic [1:0]           s_bresp_o,
  output logic                 s_bvalid_o,
  input  logic                 s_bready_i,
  input  logic [IdWidth-1:0]   s_arid_i,
  input  logic [AddrWidth-1:0] s_araddr_i,
  input  logic [7:0]           s_arlen_i,
  input  logic [2:0]           s_arsize_i,
  input  logic [1:0]           s_arburst_i,
  input  logic                 s_arvalid_i,
  output logic                 s_arready_o,
  output logic [IdWidth-1:0]   s_rid_o,
  output logic [DataWidth-1:0] s_rdata_o,
  output logic [1:0]           s_rresp_o,
  output logic                 s_rlast_o,
  output logic                 s_rvalid_o,
  input  logic                 s_rready_i,
  // to the slave
  output logic [IdWidth-1:0]   m_awid_o,
  output logic [AddrWidth-1:0] m_awaddr_o,
  output logic [7:0]           m_awlen_o,
  output logic [2:0]           m_awsize_o,
  output logic [1:0]           m_awburst_o,
  output logic                 m_awvalid_o,
  input  logic                 m_awready_i,
  output logic [DataWidth-1:0] m_wdata_o,
  output logic [StrbWidth-1:0] m_wstrb_o,
  output logic                 m_wlast_o,
  output logic                 m_wvalid_o,
  input  logic                 m_wready_i,
  input  logic [IdWidth-1:0]   m_bid_i,
  input  logic [1:0]           m_bresp_i,
  input  logic                 m_bvalid_i,
  output logic                 m_bready_o,
  output logic [IdWidth-1:0]   m_arid_o,
  output logic [AddrWidth-1:0] m_araddr_o,
  output logic [7:0]           m_arlen_o,
  output logic [2:0]           m_arsize_o,
  output logic [1:0]           m_arburst_o,
  output logic                 m_arvalid_o,
  input  logic                 m_arready_i,
  input  logic [IdWidth-1:0]   m_rid_i,
  input  logic [DataWidth-1:0] m_rdata_i,
  input  logic [1:0]           m_rresp_i,
  input  logic                 m_rlast_i,
  input  logic                 m_rvalid_i,
  output logic                 m_rready_o
);

  // Payloads of the slices; packed in field order ({id, addr, ...} fills them).
  typedef struct packed {
    logic [IdWidth-1:0]   id;
    logic [AddrWidth-1:0] addr;
    logic [7:0]           len;
    logic [2:0]           size;
    logic [1:0]           burst;
  } addr_t;

  typedef struct packed {
    logic [DataWidth-1:0] data;
    logic [StrbWidth-1:0] strb;
    logic                 last;
  } w_t;

  typedef struct packed {
    logic [IdWidth-1:0] id;
    logic [1:0]         resp;
  } b_t;

  typedef struct packed {
    logic [IdWidth-1:0]   id;
    logic [DataWidth-1:0] data;
    logic [1:0]           resp;
    logic                 last;
  } r_t;

  // Widths of the structs above (Yosys does not take $bits of a type in a parameter).
  localparam int unsigned AddrW = IdWidth + AddrWidth + 13;
  localparam int unsigned WW    = DataWidth + StrbWidth + 1;
  localparam int unsigned BW    = IdWidth + 2;
  localparam int unsigned RW    = IdWidth + DataWidth + 3;

  addr_t aw_m, ar_m;
  w_t    w_m;
  b_t    b_s;
  r_t    r_s;

  prim_reg_slice #(.Width(AddrW)) u_aw (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(s_awvalid_i),
    .s_ready_o(s_awready_o),
    .s_data_i ({s_awid_i, s_awaddr_i, s_awlen_i, s_awsize_i, s_awburst_i}),
    .m_valid_o(m_awvalid_o),
    .m_ready_i(m_awready_i),
    .m_data_o (aw_m)
  );
  assign {m_awid_o, m_awaddr_o, m_awlen_o, m_awsize_o, m_awburst_o} = aw_m;

  prim_reg_slice #(.Width(WW)) u_w (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(s_wvalid_i),
    .s_ready_o(s_wready_o),
    .s_data_i ({s_wdata_i, s_wstrb_i, s_wlast_i}),
    .m_valid_o(m_wvalid_o),
    .m_ready_i(m_wready_i),
    .m_data_o (w_m)
  );
  assign {m_wdata_o, m_wstrb_o, m_wlast_o} = w_m;

  prim_reg_slice #(.Width(BW)) u_b (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(m_bvalid_i),
    .s_ready_o(m_bready_o),
    .s_data_i ({m_bid_i, m_bresp_i}),
    .m_valid_o(s_bvalid_o),
    .m_ready_i(s_bready_i),
    .m_data_o (b_s)
  );
  assign {s_bid_o, s_bresp_o} = b_s;

  prim_reg_slice #(.Width(AddrW)) u_ar (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(s_arvalid_i),
    .s_ready_o(s_arready_o),
    .s_data_i ({s_arid_i, s_araddr_i, s_arlen_i, s_arsize_i, s_arburst_i}),
    .m_valid_o(m_arvalid_o),
    .m_ready_i(m_arready_i),
    .m_data_o (ar_m)
  );
  assign {m_arid_o, m_araddr_o, m_arlen_o, m_arsize_o, m_arburst_o} = ar_m;

  prim_reg_slice #(.Width(RW)) u_r (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(m_rvalid_i),
    .s_ready_o(m_rready_o),
    .s_data_i ({m_rid_i, m_rdata_i, m_rresp_i, m_rlast_i}),
    .m_valid_o(s_rvalid_o),
    .m_ready_i(s_rready_i),
    .m_data_o (r_s)
  );
  assign {s_rid_o, s_rdata_o, s_rresp_o, s_rlast_o} = r_s;

  `PRIM_ASSERT_INIT(gen_bad_data_width, DataWidth >= 32 && (DataWidth & (DataWidth - 1)) == 0)

endmodule
