// BAR0 of the board: the PCIe bridge's AXI4 master (BAR hits, `m_axib_*` of XDMA in
// AXI Bridge mode, 512-bit) onto the NPU's 32-bit AXI4-Lite CSR slave.
//
// The host accesses CSRs with single 32-bit reads and writes (docs/device.md §2.3), which
// the bridge delivers as one-beat AXI4 bursts of at most 4 bytes on the byte lanes of
// their address. One transaction at a time: a write's data lane (awaddr[5:2]) goes to
// the CSR slave with its strobes; a read's word is returned on every 32-bit lane.
// Anything else (a burst longer than one beat, a transfer wider than 4 bytes) is
// answered SLVERR without touching a CSR; a multi-beat read answers every beat SLVERR.
// The idle state alternates between offering AW and AR, so neither ready depends on
// the other valid: every output of both sides comes from a register (the AXI4-Lite
// side through prim_reg_slice), with no path from an input to an output.
`include "prim_assert.svh"

module npu_board_bar0 #(
  parameter int unsigned IdWidth      = 4,
  parameter int unsigned AddrWidth    = 64,
  parameter int unsigned DataWidth    = 512,
  parameter int unsigned CsrAddrWidth = 12,
  localparam int unsigned StrbWidth   = DataWidth / 8
) (
  input  logic                    clk_i,
  input  logic                    rst_ni,
  // AXI4 slave (from the PCIe bridge)
  input  logic [IdWidth-1:0]      s_awid_i,
  input  logic [AddrWidth-1:0]    s_awaddr_i,
  input  logic [7:0]              s_awlen_i,
  input  logic [2:0]              s_awsize_i,
  input  logic                    s_awvalid_i,
  output logic                    s_awready_o,
  input  logic [DataWidth-1:0]    s_wdata_i,
  input  logic [StrbWidth-1:0]    s_wstrb_i,
  input  logic                    s_wlast_i,
  input  logic                    s_wvalid_i,
  output logic                    s_wready_o,
  output logic [IdWidth-1:0]      s_bid_o,
  output logic [1:0]              s_bresp_o,
  output logic                    s_bvalid_o,
  input  logic                    s_bready_i,
  input  logic [IdWidth-1:0]      s_arid_i,
  input  logic [AddrWidth-1:0]    s_araddr_i,
  input  logic [7:0]              s_arlen_i,
  input  logic [2:0]              s_arsize_i,
  input  logic                    s_arvalid_i,
  output logic                    s_arready_o,
  output logic [IdWidth-1:0]      s_rid_o,
  output logic [DataWidth-1:0]    s_rdata_o,
  output logic [1:0]              s_rresp_o,
  output logic                    s_rlast_o,
  output logic                    s_rvalid_o,
  input  logic                    s_rready_i,
  // AXI4-Lite master (to npu_top's CSR slave)
  output logic                    m_axil_awvalid_o,
  input  logic                    m_axil_awready_i,
  output logic [CsrAddrWidth-1:0] m_axil_awaddr_o,
  output logic                    m_axil_wvalid_o,
  input  logic                    m_axil_wready_i,
  output logic [31:0]             m_axil_wdata_o,
  output logic [3:0]              m_axil_wstrb_o,
  input  logic                    m_axil_bvalid_i,
  output logic                    m_axil_bready_o,
  input  logic [1:0]              m_axil_bresp_i,
  output logic                    m_axil_arvalid_o,
  input  logic                    m_axil_arready_i,
  output logic [CsrAddrWidth-1:0] m_axil_araddr_o,
  input  logic                    m_axil_rvalid_i,
  output logic                    m_axil_rready_o,
  input  logic [31:0]             m_axil_rdata_i,
  input  logic [1:0]              m_axil_rresp_i
);

  localparam int unsigned Lanes   = DataWidth / 32;
  localparam int unsigned LaneW   = $clog2(Lanes);
  localparam logic [1:0]  SlvErr  = 2'b10;

  `PRIM_ASSERT_INIT(gen_bad_width, DataWidth >= 64 && (DataWidth & (DataWidth - 1)) == 0)
  `PRIM_ASSERT_INIT(gen_bad_csr_width, CsrAddrWidth > LaneW + 2 && CsrAddrWidth < AddrWidth)

  typedef enum logic [2:0] {IdleW, IdleR, WData, WLite, WResp, RLite, RResp} state_e;

  state_e                  state_d, state_q;
  logic [IdWidth-1:0]      id_d, id_q;
  logic [CsrAddrWidth-1:0] addr_d, addr_q;
  logic                    single_d, single_q;   // one beat of at most 4 bytes
  logic                    first_d, first_q;     // no W beat taken yet
  logic [7:0]              beats_d, beats_q;     // R beats still to send after this one
  logic [31:0]             data_d, data_q;
  logic [3:0]              strb_d, strb_q;
  logic [1:0]              resp_d, resp_q;
  logic                    aw_sent_d, aw_sent_q, w_sent_d, w_sent_q, ar_sent_d, ar_sent_q;

  // AXI4-Lite side, each channel through a register slice.
  logic lite_aw_valid, lite_aw_ready, lite_w_valid, lite_w_ready, lite_ar_valid, lite_ar_ready;
  logic lite_b_valid, lite_b_ready, lite_r_valid, lite_r_ready;
  logic [1:0]  lite_b_resp;
  logic [33:0] lite_r;

  // Above the CSR space only BAR0's base (pciebar2axibar_0) remains: not decoded.
  logic unused_high_addr;
  assign unused_high_addr = ^{s_awaddr_i[AddrWidth-1:CsrAddrWidth], s_araddr_i[AddrWidth-1:CsrAddrWidth]};

  logic [LaneW-1:0] w_lane;
  assign w_lane = addr_q[LaneW+1:2];

  always_comb begin : next_state
    state_d   = state_q;
    id_d      = id_q;
    addr_d    = addr_q;
    single_d  = single_q;
    first_d   = first_q;
    beats_d   = beats_q;
    data_d    = data_q;
    strb_d    = strb_q;
    resp_d    = resp_q;
    aw_sent_d = aw_sent_q;
    w_sent_d  = w_sent_q;
    ar_sent_d = ar_sent_q;
    unique case (state_q)
      IdleW: begin
        if (s_awvalid_i) begin
          state_d   = WData;
          id_d      = s_awid_i;
          addr_d    = s_awaddr_i[CsrAddrWidth-1:0];
          single_d  = s_awlen_i == 8'd0 && s_awsize_i <= 3'd2;
          first_d   = 1'b1;
          strb_d    = '0;
          aw_sent_d = 1'b0;
          w_sent_d  = 1'b0;
        end else begin
          state_d = IdleR;
        end
      end
      IdleR: begin
        if (s_arvalid_i) begin
          id_d      = s_arid_i;
          addr_d    = s_araddr_i[CsrAddrWidth-1:0];
          ar_sent_d = 1'b0;
          beats_d   = s_arlen_i;
          if (s_arlen_i == 8'd0 && s_arsize_i <= 3'd2) begin
            state_d = RLite;
          end else begin
            state_d = RResp;
            data_d  = '0;
            resp_d  = SlvErr;
          end
        end else begin
          state_d = IdleW;
        end
      end
      WData: begin
        if (s_wvalid_i) begin
          if (first_q) begin
            data_d = s_wdata_i[32*w_lane +: 32];
            strb_d = s_wstrb_i[4*w_lane +: 4];
          end
          first_d = 1'b0;
          if (s_wlast_i) begin
            if (single_q) begin
              state_d = WLite;
            end else begin
              state_d = WResp;
              resp_d  = SlvErr;
            end
          end
        end
      end
      WLite: begin
        aw_sent_d = aw_sent_q || lite_aw_ready;
        w_sent_d  = w_sent_q || lite_w_ready;
        if (lite_b_valid && aw_sent_q && w_sent_q) begin
          state_d = WResp;
          resp_d  = lite_b_resp;
        end
      end
      WResp: begin
        if (s_bready_i) state_d = IdleR;
      end
      RLite: begin
        ar_sent_d = ar_sent_q || lite_ar_ready;
        if (lite_r_valid && ar_sent_q) begin
          state_d = RResp;
          data_d  = lite_r[33:2];
          resp_d  = lite_r[1:0];
        end
      end
      RResp: begin
        if (s_rready_i) begin
          if (beats_q == 8'd0) state_d = IdleW;
          else                 beats_d = beats_q - 8'd1;
        end
      end
      default: state_d = IdleW;
    endcase
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : state_ff
    if (!rst_ni) begin
      state_q   <= IdleW;
      aw_sent_q <= 1'b0;
      w_sent_q  <= 1'b0;
      ar_sent_q <= 1'b0;
    end else begin
      state_q   <= state_d;
      aw_sent_q <= aw_sent_d;
      w_sent_q  <= w_sent_d;
      ar_sent_q <= ar_sent_d;
    end
  end

  // Datapath registers: no reset (only read in states that wrote them first).
  always_ff @(posedge clk_i) begin : data_ff
    id_q     <= id_d;
    addr_q   <= addr_d;
    single_q <= single_d;
    first_q  <= first_d;
    beats_q  <= beats_d;
    data_q   <= data_d;
    strb_q   <= strb_d;
    resp_q   <= resp_d;
  end

  assign s_awready_o = state_q == IdleW;
  assign s_arready_o = state_q == IdleR;
  assign s_wready_o  = state_q == WData;
  assign s_bvalid_o  = state_q == WResp;
  assign s_bid_o     = id_q;
  assign s_bresp_o   = resp_q;
  assign s_rvalid_o  = state_q == RResp;
  assign s_rid_o     = id_q;
  assign s_rdata_o   = {Lanes{data_q}};
  assign s_rresp_o   = resp_q;
  assign s_rlast_o   = beats_q == 8'd0;

  assign lite_aw_valid = state_q == WLite && !aw_sent_q;
  assign lite_w_valid  = state_q == WLite && !w_sent_q;
  assign lite_b_ready  = state_q == WLite && aw_sent_q && w_sent_q;
  assign lite_ar_valid = state_q == RLite && !ar_sent_q;
  assign lite_r_ready  = state_q == RLite && ar_sent_q;

  prim_reg_slice #(.Width(CsrAddrWidth)) u_lite_aw (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(lite_aw_valid),
    .s_ready_o(lite_aw_ready),
    .s_data_i (addr_q),
    .m_valid_o(m_axil_awvalid_o),
    .m_ready_i(m_axil_awready_i),
    .m_data_o (m_axil_awaddr_o)
  );

  prim_reg_slice #(.Width(36)) u_lite_w (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(lite_w_valid),
    .s_ready_o(lite_w_ready),
    .s_data_i ({data_q, strb_q}),
    .m_valid_o(m_axil_wvalid_o),
    .m_ready_i(m_axil_wready_i),
    .m_data_o ({m_axil_wdata_o, m_axil_wstrb_o})
  );

  prim_reg_slice #(.Width(2)) u_lite_b (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(m_axil_bvalid_i),
    .s_ready_o(m_axil_bready_o),
    .s_data_i (m_axil_bresp_i),
    .m_valid_o(lite_b_valid),
    .m_ready_i(lite_b_ready),
    .m_data_o (lite_b_resp)
  );

  prim_reg_slice #(.Width(CsrAddrWidth)) u_lite_ar (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(lite_ar_valid),
    .s_ready_o(lite_ar_ready),
    .s_data_i (addr_q),
    .m_valid_o(m_axil_arvalid_o),
    .m_ready_i(m_axil_arready_i),
    .m_data_o (m_axil_araddr_o)
  );

  prim_reg_slice #(.Width(34)) u_lite_r (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .s_valid_i(m_axil_rvalid_i),
    .s_ready_o(m_axil_rready_o),
    .s_data_i ({m_axil_rdata_i, m_axil_rresp_i}),
    .m_valid_o(lite_r_valid),
    .m_ready_i(lite_r_ready),
    .m_data_o (lite_r)
  );

  // ---- assertions
  `PRIM_ASSERT(a_one_idle_ready, !(s_awready_o && s_arready_o))
  `PRIM_ASSERT_NEXT(a_b_held, s_bvalid_o && !s_bready_i, s_bvalid_o && $stable({s_bid_o, s_bresp_o}))
  `PRIM_ASSERT_NEXT(a_r_held, s_rvalid_o && !s_rready_i,
                    s_rvalid_o && $stable({s_rid_o, s_rresp_o, s_rlast_o, data_q}))

endmodule
