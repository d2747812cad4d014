// Compute-unit data requester on one memory port (one AXI ID).
//
// Slots that want this port are served round-robin, one single-beat request at a time:
// the chosen request is latched, then sent as AR, or as AW followed by its W beat. The
// grant reaches the slot from a register a cycle later (its request holds until then,
// and the port is busy with it), so the arbiter does not sit in front of the slots'
// state. Responses of one AXI ID return in order per
// direction, so a FIFO of slot numbers per direction routes each R or B to its slot. A
// burst that the arbiter's error injection swallows is answered with an error one
// cycle after its last handshake (the AR, or the W beat of a swallowed AW), from a
// register, so the arbiter's handshakes do not reach the slots' state combinationally.
`include "prim_assert.svh"

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

  typedef enum logic [1:0] { PIdle, PAr, PAw, PW } state_e;
  state_e               state_d, state_q;
  logic [SlotW-1:0]     slot_d, slot_q, pick, prev_slot_q;
  logic                 found, swallowed_d, swallowed_q, swallow_rsp_d, swallow_rsp_q;
  logic [63:0]          addr_q;
  logic [DataWidth-1:0] wdata_q;
  logic [StrbWidth-1:0] wstrb_q;
  logic [Slots-1:0]     gnt, gnt_q;

  // Slot of each request in flight, per direction, oldest at the head (responses of
  // one ID return in order). At most Slots requests are in flight, so they never fill.
  localparam int unsigned QCntW = $clog2(2 ** SlotW + 2);
  logic             rq_push, wq_push, rq_any, wq_any, rq_room, wq_room;
  logic [SlotW-1:0] rq_head, wq_head;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [QCntW-1:0] rq_count, wq_count;  // for waveforms only
  /* verilator lint_on UNUSEDSIGNAL */
  prim_fifo_sync #(
    .Width(SlotW),
    .Depth(2 ** SlotW)
  ) u_rq (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .wvalid_i (rq_push),
    .wready_o (rq_room),
    .wdata_i  (slot_q),
    .rvalid_o (rq_any),
    .rready_i (r_valid_i),
    .rdata_o  (rq_head),
    .count_o  (rq_count)
  );
  prim_fifo_sync #(
    .Width(SlotW),
    .Depth(2 ** SlotW)
  ) u_wq (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .wvalid_i (wq_push),
    .wready_o (wq_room),
    .wdata_i  (slot_q),
    .rvalid_o (wq_any),
    .rready_i (b_valid_i),
    .rdata_o  (wq_head),
    .count_o  (wq_count)
  );

  // Round-robin pick among the requesting slots.
  prim_arb_rr #(
    .N(Slots)
  ) u_arb (
    .clk_i,
    .rst_ni,
    .req_i   (req_valid_i),
    .ready_i (state_q == PIdle && issue_en_i),
    .valid_o (found),
    .idx_o   (pick),
    /* verilator lint_off PINCONNECTEMPTY */
    .win_o   (),
    /* verilator lint_on PINCONNECTEMPTY */
    .gnt_o   (gnt)
  );
  always_ff @(posedge clk_i or negedge rst_ni) begin : gnt_ff
    if (!rst_ni) gnt_q <= '0;
    else         gnt_q <= gnt;
  end
  assign req_ready_o = gnt_q;

  always_comb begin : next_state
    state_d     = state_q;
    slot_d      = slot_q;
    swallowed_d = swallowed_q;
    swallow_rsp_d = 1'b0;
    rsp_valid_o = '0;
    rsp_err_o   = '0;
    rq_push     = 1'b0;
    wq_push     = 1'b0;
    unique case (state_q)
      PIdle: begin
        if (issue_en_i && found) begin
          slot_d  = pick;
          state_d = req_write_i[pick] ? PAw : PAr;
        end
      end
      PAr: begin
        if (ar_ready_i) begin
          state_d = PIdle;
          if (ar_err_i) begin
            swallow_rsp_d = 1'b1;
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
            swallow_rsp_d = 1'b1;
          end else begin
            wq_push = 1'b1;
          end
        end
      end
      default: state_d = PIdle;
    endcase
    if (swallow_rsp_q) begin
      rsp_valid_o[prev_slot_q] = 1'b1;
      rsp_err_o[prev_slot_q]   = 1'b1;
    end
    if (r_valid_i) begin
      rsp_valid_o[rq_head] = 1'b1;
      rsp_err_o[rq_head]   = r_resp_i != 2'b00;
    end
    if (b_valid_i) begin
      rsp_valid_o[wq_head] = 1'b1;
      rsp_err_o[wq_head]   = b_resp_i != 2'b00;
    end
  end

  assign idle_o     = state_q == PIdle && !rq_any && !wq_any && !swallow_rsp_q;
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
      swallowed_q <= 1'b0;
      swallow_rsp_q <= 1'b0;
      prev_slot_q   <= '0;
    end else begin
      state_q     <= state_d;
      slot_q      <= slot_d;
      swallowed_q <= swallowed_d;
      swallow_rsp_q <= swallow_rsp_d;
      prev_slot_q   <= slot_q;
    end
  end

  always_ff @(posedge clk_i) begin : payload_ff
    if (state_q == PIdle && issue_en_i && found) begin
      addr_q  <= req_addr_i[pick*64 +: 64];
      wdata_q <= req_wdata_i[pick*DataWidth +: DataWidth];
      wstrb_q <= req_wstrb_i[pick*StrbWidth +: StrbWidth];
    end
  end

  // ---- assertions
  `PRIM_ASSERT(a_r_expected, !r_valid_i || rq_any)
  `PRIM_ASSERT(a_b_expected, !b_valid_i || wq_any)
  `PRIM_ASSERT(a_rq_room, !rq_push || rq_room)
  `PRIM_ASSERT(a_wq_room, !wq_push || wq_room)
  `PRIM_ASSERT_KNOWN(a_rsp_known, rsp_valid_o)

endmodule
