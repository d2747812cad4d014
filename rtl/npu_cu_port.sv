// Compute-unit data requester on one memory port (one AXI ID).
//
// Slots that want this port are served round-robin, one single-beat request at a time:
// the chosen request is latched (its slot moves on to wait for the response), then sent
// as AR, or as AW followed by its W beat. Responses of one AXI ID return in order per
// direction, so a FIFO of slot numbers per direction routes each R or B to its slot. A
// burst that the arbiter's error injection swallows is answered at once with an error.
module npu_cu_port #(
  parameter int unsigned Slots = 4,
  localparam int unsigned DataWidth = 512,
  localparam int unsigned StrbWidth = DataWidth / 8,
  localparam int unsigned SlotW     = Slots > 1 ? $clog2(Slots) : 1
) (
  input  logic                       clk_i,
  input  logic                       rst_ni,
  input  logic                       issue_en_i,
  // slot side
  input  logic [Slots-1:0]           req_valid_i,
  input  logic [Slots*64-1:0]        req_addr_i,
  input  logic [Slots-1:0]           req_write_i,
  input  logic [Slots*DataWidth-1:0] req_wdata_i,
  input  logic [Slots*StrbWidth-1:0] req_wstrb_i,
  output logic [Slots-1:0]           req_ready_o,
  output logic [Slots-1:0]           rsp_valid_o,
  output logic [Slots-1:0]           rsp_err_o,
  output logic                       idle_o,
  // AXI requester
  output logic                       ar_valid_o,
  input  logic                       ar_ready_i,
  output logic [63:0]                ar_addr_o,
  input  logic                       ar_err_i,
  input  logic                       r_valid_i,
  input  logic [1:0]                 r_resp_i,
  output logic                       aw_valid_o,
  input  logic                       aw_ready_i,
  output logic [63:0]                aw_addr_o,
  input  logic                       aw_err_i,
  output logic                       w_valid_o,
  input  logic                       w_ready_i,
  output logic [DataWidth-1:0]       w_data_o,
  output logic [StrbWidth-1:0]       w_strb_o,
  input  logic                       b_valid_i,
  input  logic [1:0]                 b_resp_i
);

  localparam int unsigned FifoW = SlotW + 1;

  typedef enum logic [1:0] { PIdle, PAr, PAw, PW } state_e;
  state_e               state_d, state_q;
  logic [SlotW-1:0]     slot_d, slot_q, next_d, next_q, pick;
  logic                 found, swallowed_d, swallowed_q;
  logic [63:0]          addr_q;
  logic [DataWidth-1:0] wdata_q;
  logic [StrbWidth-1:0] wstrb_q;

  logic [SlotW-1:0] rq_mem [2**SlotW];
  logic [SlotW-1:0] wq_mem [2**SlotW];
  logic [FifoW-1:0] rq_wr_d, rq_wr_q, rq_rd_d, rq_rd_q, wq_wr_d, wq_wr_q, wq_rd_d, wq_rd_q;
  logic             rq_push, wq_push;

  // Round-robin pick among the requesting slots, starting at next_q.
  always_comb begin : rr
    logic [SlotW:0] idx;
    pick  = '0;
    found = 1'b0;
    for (int unsigned k = 0; k < Slots; k++) begin
      idx = {1'b0, next_q} + (SlotW + 1)'(k);
      if (idx >= (SlotW + 1)'(Slots)) idx = idx - (SlotW + 1)'(Slots);
      if (!found && req_valid_i[idx[SlotW-1:0]]) begin
        pick  = idx[SlotW-1:0];
        found = 1'b1;
      end
    end
  end

  always_comb begin : next_state
    state_d     = state_q;
    slot_d      = slot_q;
    next_d      = next_q;
    swallowed_d = swallowed_q;
    req_ready_o = '0;
    rsp_valid_o = '0;
    rsp_err_o   = '0;
    rq_rd_d     = rq_rd_q;
    wq_rd_d     = wq_rd_q;
    rq_push     = 1'b0;
    wq_push     = 1'b0;
    unique case (state_q)
      PIdle: begin
        if (issue_en_i && found) begin
          req_ready_o[pick] = 1'b1;
          slot_d            = pick;
          next_d            = (int'(pick) == Slots - 1) ? '0 : pick + 1'b1;
          state_d           = req_write_i[pick] ? PAw : PAr;
        end
      end
      PAr: begin
        if (ar_ready_i) begin
          state_d = PIdle;
          if (ar_err_i) begin
            rsp_valid_o[slot_q] = 1'b1;
            rsp_err_o[slot_q]   = 1'b1;
          end else begin
            rq_push = 1'b1;
          end
        end
      end
      PAw: begin
        if (aw_ready_i) begin
          swallowed_d = aw_err_i;
          state_d     = PW;
        end
      end
      PW: begin
        if (w_ready_i) begin
          state_d = PIdle;
          if (swallowed_q) begin
            rsp_valid_o[slot_q] = 1'b1;
            rsp_err_o[slot_q]   = 1'b1;
          end else begin
            wq_push = 1'b1;
          end
        end
      end
      default: state_d = PIdle;
    endcase
    if (r_valid_i) begin
      rsp_valid_o[rq_mem[rq_rd_q[SlotW-1:0]]] = 1'b1;
      rsp_err_o[rq_mem[rq_rd_q[SlotW-1:0]]]   = r_resp_i != 2'b00;
      rq_rd_d = rq_rd_q + 1'b1;
    end
    if (b_valid_i) begin
      rsp_valid_o[wq_mem[wq_rd_q[SlotW-1:0]]] = 1'b1;
      rsp_err_o[wq_mem[wq_rd_q[SlotW-1:0]]]   = b_resp_i != 2'b00;
      wq_rd_d = wq_rd_q + 1'b1;
    end
    rq_wr_d = rq_wr_q + FifoW'(rq_push);
    wq_wr_d = wq_wr_q + FifoW'(wq_push);
  end

  assign idle_o     = state_q == PIdle && rq_wr_q == rq_rd_q && wq_wr_q == wq_rd_q;
  assign ar_valid_o = state_q == PAr;
  assign ar_addr_o  = addr_q;
  assign aw_valid_o = state_q == PAw;
  assign aw_addr_o  = addr_q;
  assign w_valid_o  = state_q == PW;
  assign w_data_o   = wdata_q;
  assign w_strb_o   = wstrb_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      state_q     <= PIdle;
      slot_q      <= '0;
      next_q      <= '0;
      swallowed_q <= 1'b0;
      rq_wr_q     <= '0;
      rq_rd_q     <= '0;
      wq_wr_q     <= '0;
      wq_rd_q     <= '0;
    end else begin
      state_q     <= state_d;
      slot_q      <= slot_d;
      next_q      <= next_d;
      swallowed_q <= swallowed_d;
      rq_wr_q     <= rq_wr_d;
      rq_rd_q     <= rq_rd_d;
      wq_wr_q     <= wq_wr_d;
      wq_rd_q     <= wq_rd_d;
    end
  end

  always_ff @(posedge clk_i) begin : payload_ff
    if (state_q == PIdle && issue_en_i && found) begin
      addr_q  <= req_addr_i[pick*64 +: 64];
      wdata_q <= req_wdata_i[pick*DataWidth +: DataWidth];
      wstrb_q <= req_wstrb_i[pick*StrbWidth +: StrbWidth];
    end
    if (rq_push) rq_mem[rq_wr_q[SlotW-1:0]] <= slot_q;
    if (wq_push) wq_mem[wq_wr_q[SlotW-1:0]] <= slot_q;
  end

  // ---- assertions
`ifndef SYNTHESIS
  a_r_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) r_valid_i |-> rq_wr_q != rq_rd_q);
  a_b_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) b_valid_i |-> wq_wr_q != wq_rd_q);
  a_rsp_known: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(rsp_valid_o));
`endif

endmodule
