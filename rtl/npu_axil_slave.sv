// AXI4-Lite slave to register-bus adaptor for the NPU CSR block.
//
// One write and one read may be outstanding. AW and W are accepted independently
// (in any order) and held until both are present; the write then takes one cycle on
// the register bus and its B response carries SLVERR if no register decodes the
// address or the address is not word aligned (then the access is not performed).
// A read's address is registered when AR is accepted; the read takes the register bus
// in the next cycle, and its data is registered and held until R is accepted (so the
// register bus is driven from registers and the read mux ends in a register). While a
// write is ready to issue no read is accepted, and while an accepted read waits for the
// register bus no write issues. AxPROT is not part of the port: the NPU grants every
// access.
module npu_axil_slave #(
  parameter int unsigned AddrWidth = 12
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  // AXI4-Lite slave
  input  logic                 s_axil_awvalid_i,
  output logic                 s_axil_awready_o,
  input  logic [AddrWidth-1:0] s_axil_awaddr_i,
  input  logic                 s_axil_wvalid_i,
  output logic                 s_axil_wready_o,
  input  logic [31:0]          s_axil_wdata_i,
  input  logic [3:0]           s_axil_wstrb_i,
  output logic                 s_axil_bvalid_o,
  input  logic                 s_axil_bready_i,
  output logic [1:0]           s_axil_bresp_o,
  input  logic                 s_axil_arvalid_i,
  output logic                 s_axil_arready_o,
  input  logic [AddrWidth-1:0] s_axil_araddr_i,
  output logic                 s_axil_rvalid_o,
  input  logic                 s_axil_rready_i,
  output logic [31:0]          s_axil_rdata_o,
  output logic [1:0]           s_axil_rresp_o,
  // register bus to the CSR block
  output logic                 reg_we_o,
  output logic                 reg_re_o,
  output logic [AddrWidth-1:0] reg_addr_o,
  output logic [31:0]          reg_wdata_o,
  output logic [3:0]           reg_wstrb_o,
  input  logic [31:0]          reg_rdata_i,
  input  logic                 reg_error_i
);

  localparam logic [1:0] RespOkay   = 2'b00;
  localparam logic [1:0] RespSlvErr = 2'b10;

  if (AddrWidth < 3 || AddrWidth > 32) begin : gen_bad_addr_width
    $error("AddrWidth must be in 3..32");
  end

  logic                 aw_valid_d, aw_valid_q;
  logic [AddrWidth-1:0] aw_addr_d, aw_addr_q;
  logic                 w_valid_d, w_valid_q;
  logic [31:0]          w_data_d, w_data_q;
  logic [3:0]           w_strb_d, w_strb_q;
  logic                 b_valid_d, b_valid_q;
  logic [1:0]           b_resp_d, b_resp_q;
  logic                 r_valid_d, r_valid_q;
  logic                 rd_pend_q;           // an accepted read takes the register bus
  logic [AddrWidth-1:0] bus_addr_q;          // the register-bus address of this cycle
  logic [31:0]          r_data_d, r_data_q;
  logic [1:0]           r_resp_d, r_resp_q;
  logic                 write_fire, read_fire;

  // Only word-aligned accesses reach the register bus; others answer SLVERR.
  logic aw_aligned, ar_aligned;
  assign aw_aligned = aw_addr_q[1:0] == 2'b00;
  assign ar_aligned = bus_addr_q[1:0] == 2'b00;  // used while rd_pend_q

  assign s_axil_awready_o = !aw_valid_q;
  assign s_axil_wready_o  = !w_valid_q;
  assign write_fire       = aw_valid_q && w_valid_q && !b_valid_q && !rd_pend_q;
  assign s_axil_arready_o = !r_valid_q && !rd_pend_q && !(aw_valid_q && w_valid_q && !b_valid_q);
  assign read_fire        = s_axil_arvalid_i && s_axil_arready_o;

  assign reg_we_o    = write_fire && aw_aligned;
  assign reg_re_o    = rd_pend_q && ar_aligned;
  assign reg_addr_o  = bus_addr_q;
  assign reg_wdata_o = w_data_q;
  assign reg_wstrb_o = w_strb_q;

  always_comb begin : next_state
    aw_valid_d = aw_valid_q;
    aw_addr_d  = aw_addr_q;
    w_valid_d  = w_valid_q;
    w_data_d   = w_data_q;
    w_strb_d   = w_strb_q;
    b_valid_d  = b_valid_q;
    b_resp_d   = b_resp_q;
    r_valid_d  = r_valid_q;
    r_data_d   = r_data_q;
    r_resp_d   = r_resp_q;

    if (s_axil_awvalid_i && s_axil_awready_o) begin
      aw_valid_d = 1'b1;
      aw_addr_d  = s_axil_awaddr_i;
    end
    if (s_axil_wvalid_i && s_axil_wready_o) begin
      w_valid_d = 1'b1;
      w_data_d  = s_axil_wdata_i;
      w_strb_d  = s_axil_wstrb_i;
    end
    if (write_fire) begin
      aw_valid_d = 1'b0;
      w_valid_d  = 1'b0;
      b_valid_d  = 1'b1;
      b_resp_d   = (reg_error_i || !aw_aligned) ? RespSlvErr : RespOkay;
    end else if (b_valid_q && s_axil_bready_i) begin
      b_valid_d = 1'b0;
    end

    // A misaligned address decodes to no register: its read data is 0.
    if (rd_pend_q) begin
      r_valid_d = 1'b1;
      r_data_d  = reg_rdata_i;
      r_resp_d  = (reg_error_i || !ar_aligned) ? RespSlvErr : RespOkay;
    end else if (r_valid_q && s_axil_rready_i) begin
      r_valid_d = 1'b0;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      aw_valid_q <= 1'b0;
      w_valid_q  <= 1'b0;
      b_valid_q  <= 1'b0;
      r_valid_q  <= 1'b0;
      rd_pend_q  <= 1'b0;
    end else begin
      aw_valid_q <= aw_valid_d;
      w_valid_q  <= w_valid_d;
      b_valid_q  <= b_valid_d;
      r_valid_q  <= r_valid_d;
      rd_pend_q  <= read_fire;
    end
  end

  // Payloads: no reset. Each is loaded with its VALID and used only under it (the
  // register bus only under reg_we_o/reg_re_o, the responses under BVALID/RVALID).
  always_ff @(posedge clk_i) begin : payload_ff
    aw_addr_q <= aw_addr_d;
    w_data_q  <= w_data_d;
    w_strb_q  <= w_strb_d;
    b_resp_q  <= b_resp_d;
    r_data_q  <= r_data_d;
    r_resp_q  <= r_resp_d;
    // The next cycle's register-bus address: the read just accepted, else the write's
    // (a write issues only in a cycle without a pending read).
    bus_addr_q <= read_fire ? s_axil_araddr_i : aw_addr_d;
  end

  assign s_axil_bvalid_o = b_valid_q;
  assign s_axil_bresp_o  = b_resp_q;
  assign s_axil_rvalid_o = r_valid_q;
  assign s_axil_rdata_o  = r_data_q;
  assign s_axil_rresp_o  = r_resp_q;

  // ---- assertions
`ifndef SYNTHESIS
  // Never a read and a write on the register bus in one cycle.
  a_one_access: assert property (@(posedge clk_i) disable iff (!rst_ni) !(reg_we_o && reg_re_o));
  // A response stays valid until accepted (AXI handshake rule).
  a_b_stable: assert property (@(posedge clk_i) disable iff (!rst_ni)
      s_axil_bvalid_o && !s_axil_bready_i |=> s_axil_bvalid_o);
  a_r_stable: assert property (@(posedge clk_i) disable iff (!rst_ni)
      s_axil_rvalid_o && !s_axil_rready_i |=> s_axil_rvalid_o && $stable(s_axil_rdata_o));
  // Handshake inputs are never X after reset.
  a_known: assert property (@(posedge clk_i) disable iff (!rst_ni)
      !$isunknown({s_axil_awvalid_i, s_axil_wvalid_i, s_axil_arvalid_i, s_axil_bready_i, s_axil_rready_i}));
`endif

endmodule
