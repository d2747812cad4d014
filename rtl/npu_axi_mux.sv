// AXI4 master multiplexer: NumReq requesters share one AXI4 master port.
//
// Requester r always uses AXI ID r, so responses route back by ID and each
// requester sees its own responses in issue order. AR and AW are granted separately,
// round-robin per burst (prim_arb_rr). After an AW is granted its owner's W beats
// follow back to back; the next AW is granted once the last W beat has gone. Requesters
// accept every R and B beat routed to them (they reserve room before asking), so RREADY
// and BREADY are held high.
//
// AR, AW and W leave through register slices (prim_reg_slice): every AXI master output
// comes from a register, a shown request holds until accepted whatever happens behind
// it (error injection, soft reset), and no ready input reaches an output. Requesters
// are granted against the slices' registered readies. The slices add one cycle of
// latency to each request, not to throughput.
//
// Arbitration is registered in two steps, so no requester's state depends
// combinationally on other requesters' requests or on the injection logic: in cycle t
// the arbiter picks among the shown AR (AW) requests into a pick register; in cycle t+1
// (or later, once the slice has room, the port is under its read-burst limit, and for
// AW the previous burst's W beats are out) the pick fires: its payload enters the
// slice and the injection decision is taken; in cycle t+2 the requester sees
// `req_ar_ready_o` (`req_aw_ready_o`) and its error/poison flag, from registers. This
// relies on the requester rule of AXI: a shown request, with its payload, holds until
// its handshake (a picked or acknowledged requester is not a candidate meanwhile).
//
// Error injection (ERRINJ_*): requesters flagged in `DataReq` carry data bursts. While
// `rd_err_armed_i` is set, the next granted data read burst is not sent: the requester
// gets `req_ar_err_o` in the handshake cycle and must treat the burst as failed (no R
// beats will come). `wr_err_armed_i` does the same for a write burst: its W beats are
// swallowed and `req_aw_err_o` tells the requester to expect no B. While
// `rd_poison_armed_i` is set, the next data read burst that is sent is flagged
// poisoned with `req_ar_poison_o`. Each such event pulses the matching `*_consume_o`
// when it is decided (as the pick fires, the cycle before the requester's handshake).
// `rd_poison_want_o` says the pick is a `PoisonReq` read that may take the poison this
// cycle: another multiplexer sharing the poison counter defers to it.
`include "prim_assert.svh"

module npu_axi_mux #(
  parameter int unsigned NumReq    = 4,
  parameter int unsigned AddrWidth = 64,
  parameter int unsigned DataWidth = 512,
  parameter int unsigned IdWidth   = 4,
  parameter logic [NumReq-1:0] DataReq = '0,
  parameter logic [NumReq-1:0] PoisonReq = DataReq,
  parameter int unsigned LockReq   = 0,
  parameter int unsigned MaxReadBursts = 16,  // read bursts outstanding on the port
  localparam int unsigned StrbWidth = DataWidth / 8,
  localparam int unsigned ReqIdx    = NumReq > 1 ? $clog2(NumReq) : 1
) (
  input  logic                          clk_i,
  input  logic                          rst_ni,
  // requester side
  input  logic [NumReq-1:0]             req_ar_valid_i,
  output logic [NumReq-1:0]             req_ar_ready_o,
  input  logic [NumReq*AddrWidth-1:0]   req_ar_addr_i,
  input  logic [NumReq*8-1:0]           req_ar_len_i,
  output logic [NumReq-1:0]             req_ar_err_o,
  output logic [NumReq-1:0]             req_ar_poison_o,
  output logic [NumReq-1:0]             req_r_valid_o,
  output logic [DataWidth-1:0]          req_r_data_o,
  output logic [1:0]                    req_r_resp_o,
  output logic                          req_r_last_o,
  input  logic [NumReq-1:0]             req_aw_valid_i,
  output logic [NumReq-1:0]             req_aw_ready_o,
  input  logic [NumReq*AddrWidth-1:0]   req_aw_addr_i,
  input  logic [NumReq*8-1:0]           req_aw_len_i,
  output logic [NumReq-1:0]             req_aw_err_o,
  input  logic [NumReq-1:0]             req_w_valid_i,
  output logic [NumReq-1:0]             req_w_ready_o,
  input  logic [NumReq*DataWidth-1:0]   req_w_data_i,
  input  logic [NumReq*StrbWidth-1:0]   req_w_strb_i,
  input  logic [NumReq-1:0]             req_w_last_i,
  output logic [NumReq-1:0]             req_b_valid_o,
  output logic [1:0]                    req_b_resp_o,
  // error injection
  input  logic                          rd_err_armed_i,
  output logic                          rd_err_consume_o,
  input  logic                          wr_err_armed_i,
  output logic                          wr_err_consume_o,
  input  logic                          rd_poison_armed_i,
  output logic                          rd_poison_consume_o,
  output logic                          rd_poison_want_o,
  // write lock
  input  logic                          lock_req_i,
  output logic                          lock_ok_o,
  // activity for performance counters
  output logic                          rd_beat_o,
  output logic                          wr_beat_o,
  // AXI4 master port
  output logic [IdWidth-1:0]            m_axi_awid_o,
  output logic [AddrWidth-1:0]          m_axi_awaddr_o,
  output logic [7:0]                    m_axi_awlen_o,
  output logic [2:0]                    m_axi_awsize_o,
  output logic [1:0]                    m_axi_awburst_o,
  output logic                          m_axi_awvalid_o,
  input  logic                          m_axi_awready_i,
  output logic [DataWidth-1:0]          m_axi_wdata_o,
  output logic [StrbWidth-1:0]          m_axi_wstrb_o,
  output logic                          m_axi_wlast_o,
  output logic                          m_axi_wvalid_o,
  input  logic                          m_axi_wready_i,
  input  logic [IdWidth-1:0]            m_axi_bid_i,
  input  logic [1:0]                    m_axi_bresp_i,
  input  logic                          m_axi_bvalid_i,
  output logic                          m_axi_bready_o,
  output logic [IdWidth-1:0]            m_axi_arid_o,
  output logic [AddrWidth-1:0]          m_axi_araddr_o,
  output logic [7:0]                    m_axi_arlen_o,
  output logic [2:0]                    m_axi_arsize_o,
  output logic [1:0]                    m_axi_arburst_o,
  output logic                          m_axi_arvalid_o,
  input  logic                          m_axi_arready_i,
  input  logic [IdWidth-1:0]            m_axi_rid_i,
  input  logic [DataWidth-1:0]          m_axi_rdata_i,
  input  logic [1:0]                    m_axi_rresp_i,
  input  logic                          m_axi_rlast_i,
  input  logic                          m_axi_rvalid_i,
  output logic                          m_axi_rready_o
);

  if (NumReq < 1 || (1 << IdWidth) < NumReq) begin : gen_bad_ids
    $error("NumReq must be in 1..2^IdWidth");
  end
  if (MaxReadBursts < 1 || MaxReadBursts > 64) begin : gen_bad_max_rd
    $error("MaxReadBursts must be in 1..64");
  end

  localparam logic [2:0] BeatSize = 3'($clog2(StrbWidth));

  // ---------------------------------------------------------------- read address
  typedef struct packed {
    logic [IdWidth-1:0]   id;
    logic [AddrWidth-1:0] addr;
    logic [7:0]           len;
  } ax_t;
  typedef struct packed {
    logic [DataWidth-1:0] data;
    logic [StrbWidth-1:0] strb;
    logic                 last;
  } w_t;
  localparam int unsigned AxW = IdWidth + AddrWidth + 8;
  localparam int unsigned WW  = DataWidth + StrbWidth + 1;

  logic [ReqIdx-1:0] ar_sel, ar_pick_q;
  logic              ar_any, ar_take, ar_inject, ar_fire, ar_s_ready, ar_room;
  logic              ar_pick_v_q, ar_pick_data_q, ar_pick_poison_q;
  logic [NumReq-1:0] ar_win, ar_pick_oh_q, ar_ack_q;
  logic              ar_ack_err_q, ar_ack_poison_q;
  ax_t               ar_s, ar_m;

  // Pick: among the shown requests, less the one picked (until it fires) and the one
  // acknowledged now. The pick register takes a new winner when empty or firing.
  assign ar_take = !ar_pick_v_q || ar_fire;
  prim_arb_rr #(
    .N(NumReq)
  ) u_ar_arb (
    .clk_i,
    .rst_ni,
    .req_i   (req_ar_valid_i & ~ar_ack_q & ~ar_pick_oh_q),
    .ready_i (ar_take),
    .valid_o (ar_any),
    .idx_o   (ar_sel),
    .win_o   (ar_win),
    /* verilator lint_off PINCONNECTEMPTY */
    .gnt_o   ()
    /* verilator lint_on PINCONNECTEMPTY */
  );
  always_ff @(posedge clk_i or negedge rst_ni) begin : ar_pick_ff
    if (!rst_ni) begin
      ar_pick_v_q      <= 1'b0;
      ar_pick_oh_q     <= '0;
      ar_pick_q        <= '0;
      ar_pick_data_q   <= 1'b0;
      ar_pick_poison_q <= 1'b0;
    end else if (ar_take) begin
      ar_pick_v_q      <= ar_any;
      ar_pick_oh_q     <= ar_win;  // the grant: loaded only when taken
      ar_pick_q        <= ar_sel;
      ar_pick_data_q   <= DataReq[ar_sel];
      ar_pick_poison_q <= PoisonReq[ar_sel];
    end
  end
  // Fire: the pick enters the slice, or is swallowed by error injection.
  assign ar_inject = ar_pick_data_q && rd_err_armed_i;
  assign ar_fire   = ar_pick_v_q && ar_s_ready && ar_room;

  // At most MaxReadBursts read bursts outstanding on the port, all requesters together
  // (docs/device.md 2): a burst counts from its grant (it may wait in the slice) to its
  // last R beat. Injected bursts never reach the port and do not count.
  logic [6:0] rd_open_d, rd_open_q;
  assign ar_room = 32'(rd_open_q) < MaxReadBursts;
  always_comb begin : rd_open_count
    rd_open_d = rd_open_q;
    if (ar_fire && !ar_inject) rd_open_d = rd_open_d + 7'd1;
    if (m_axi_rvalid_i && m_axi_rlast_i) rd_open_d = rd_open_d - 7'd1;
  end
  always_ff @(posedge clk_i or negedge rst_ni) begin : rd_open_ff
    if (!rst_ni) rd_open_q <= '0;
    else         rd_open_q <= rd_open_d;
  end
  assign ar_s.id    = IdWidth'(ar_pick_q);
  assign ar_s.addr  = req_ar_addr_i[ar_pick_q*AddrWidth +: AddrWidth];
  assign ar_s.len   = req_ar_len_i[ar_pick_q*8 +: 8];

  prim_reg_slice #(
    .Width(AxW)
  ) u_ar_slice (
    .clk_i,
    .rst_ni,
    .clr_i     (1'b0),
    .s_valid_i (ar_fire && !ar_inject),
    .s_ready_o (ar_s_ready),
    .s_data_i  (ar_s),
    .m_valid_o (m_axi_arvalid_o),
    .m_ready_i (m_axi_arready_i),
    .m_data_o  (ar_m)
  );
  assign m_axi_arid_o    = ar_m.id;
  assign m_axi_araddr_o  = ar_m.addr;
  assign m_axi_arlen_o   = ar_m.len;
  assign m_axi_arsize_o  = BeatSize;
  assign m_axi_arburst_o = 2'b01;

  // The handshake and its injection flags reach the requester a cycle after the fire,
  // from registers.
  logic ar_poison;
  assign ar_poison = ar_pick_poison_q && rd_poison_armed_i;
  always_ff @(posedge clk_i or negedge rst_ni) begin : ar_ack_ff
    if (!rst_ni) begin
      ar_ack_q        <= '0;
      ar_ack_err_q    <= 1'b0;
      ar_ack_poison_q <= 1'b0;
    end else begin
      ar_ack_q        <= ar_fire ? ar_pick_oh_q : '0;
      ar_ack_err_q    <= ar_fire && ar_inject;
      ar_ack_poison_q <= ar_fire && !ar_inject && ar_poison;
    end
  end
  assign req_ar_ready_o  = ar_ack_q;
  assign req_ar_err_o    = ar_ack_err_q ? ar_ack_q : '0;
  assign req_ar_poison_o = ar_ack_poison_q ? ar_ack_q : '0;

  assign rd_poison_want_o    = ar_pick_v_q && ar_pick_poison_q;
  assign rd_err_consume_o    = ar_fire && ar_inject;
  assign rd_poison_consume_o = ar_fire && !ar_inject && ar_poison;

  // ---------------------------------------------------------------- read data
  // R beats are registered before they reach the requesters (RREADY is always high, so a
  // plain register stage suffices): no requester logic hangs off the R inputs. The ID
  // is decoded into per-requester valids on the way into the register.
  logic                 r_last_q;
  logic [DataWidth-1:0] r_data_q;
  logic [1:0]           r_resp_q;
  assign m_axi_rready_o = 1'b1;
  always_ff @(posedge clk_i) begin : r_data_ff
    if (m_axi_rvalid_i) begin
      r_data_q <= m_axi_rdata_i;
      r_resp_q <= m_axi_rresp_i;
      r_last_q <= m_axi_rlast_i;
    end
  end
  // The ID is decoded into the per-requester valids as the beat is registered.
  logic [NumReq-1:0] r_route_d, r_route_q;
  always_comb begin : r_route
    r_route_d = '0;
    if (m_axi_rvalid_i && int'(m_axi_rid_i) < NumReq) begin
      r_route_d[m_axi_rid_i[ReqIdx-1:0]] = 1'b1;
    end
  end
  always_ff @(posedge clk_i or negedge rst_ni) begin : r_route_ff
    if (!rst_ni) r_route_q <= '0;
    else         r_route_q <= r_route_d;
  end
  assign req_r_valid_o = r_route_q;
  assign req_r_data_o = r_data_q;
  assign req_r_resp_o = r_resp_q;
  assign req_r_last_o = r_last_q;
  assign rd_beat_o    = m_axi_rvalid_i;

  // ---------------------------------------------------------------- write address + data
  logic [ReqIdx-1:0] aw_sel, aw_pick_q, w_owner_d, w_owner_q;
  logic              w_busy_d, w_busy_q, w_swallow_d, w_swallow_q;
  logic              aw_any, aw_take, aw_inject, aw_fire, aw_open, w_fire_last;
  logic              aw_pick_v_q, aw_pick_data_q;
  logic              aw_s_ready, w_s_valid, w_s_ready;
  logic [NumReq-1:0] aw_valid, aw_win, aw_pick_oh_q, aw_ack_q;
  logic              aw_ack_err_q;
  ax_t               aw_s, aw_m;
  w_t                w_s, w_m;

  // Pick as for AR. Under the write lock only the lock owner's AW may be picked (one
  // already picked or in the slice goes on, and the lock waits for it).
  always_comb begin : aw_lock_mask
    aw_valid = req_aw_valid_i & ~aw_ack_q & ~aw_pick_oh_q;
    if (lock_req_i) begin
      for (int unsigned r = 0; r < NumReq; r++) begin
        if (r != LockReq) aw_valid[r] = 1'b0;
      end
    end
  end
  assign aw_take = !aw_pick_v_q || aw_fire;
  prim_arb_rr #(
    .N(NumReq)
  ) u_aw_arb (
    .clk_i,
    .rst_ni,
    .req_i   (aw_valid),
    .ready_i (aw_take),
    .valid_o (aw_any),
    .idx_o   (aw_sel),
    .win_o   (aw_win),
    /* verilator lint_off PINCONNECTEMPTY */
    .gnt_o   ()
    /* verilator lint_on PINCONNECTEMPTY */
  );
  always_ff @(posedge clk_i or negedge rst_ni) begin : aw_pick_ff
    if (!rst_ni) begin
      aw_pick_v_q    <= 1'b0;
      aw_pick_oh_q   <= '0;
      aw_pick_q      <= '0;
      aw_pick_data_q <= 1'b0;
    end else if (aw_take) begin
      aw_pick_v_q    <= aw_any;
      aw_pick_oh_q   <= aw_win;  // the grant: loaded only when taken
      aw_pick_q      <= aw_sel;
      aw_pick_data_q <= DataReq[aw_sel];
    end
  end
  // Fire: the pick may go in the cycle the current burst's last W beat goes.
  assign aw_open   = !w_busy_q || w_fire_last;
  assign aw_inject = aw_pick_data_q && wr_err_armed_i;
  assign aw_fire   = aw_pick_v_q && aw_open && aw_s_ready;
  assign aw_s.id   = IdWidth'(aw_pick_q);
  assign aw_s.addr = req_aw_addr_i[aw_pick_q*AddrWidth +: AddrWidth];
  assign aw_s.len  = req_aw_len_i[aw_pick_q*8 +: 8];

  prim_reg_slice #(
    .Width(AxW)
  ) u_aw_slice (
    .clk_i,
    .rst_ni,
    .clr_i     (1'b0),
    .s_valid_i (aw_fire && !aw_inject),
    .s_ready_o (aw_s_ready),
    .s_data_i  (aw_s),
    .m_valid_o (m_axi_awvalid_o),
    .m_ready_i (m_axi_awready_i),
    .m_data_o  (aw_m)
  );
  assign m_axi_awid_o    = aw_m.id;
  assign m_axi_awaddr_o  = aw_m.addr;
  assign m_axi_awlen_o   = aw_m.len;
  assign m_axi_awsize_o  = BeatSize;
  assign m_axi_awburst_o = 2'b01;

  assign w_s_valid   = w_busy_q && !w_swallow_q && req_w_valid_i[w_owner_q];
  assign w_s.data    = req_w_data_i[w_owner_q*DataWidth +: DataWidth];
  assign w_s.strb    = req_w_strb_i[w_owner_q*StrbWidth +: StrbWidth];
  assign w_s.last    = req_w_last_i[w_owner_q];
  assign w_fire_last = w_busy_q && req_w_valid_i[w_owner_q] && req_w_last_i[w_owner_q]
                       && (w_swallow_q || w_s_ready);

  prim_reg_slice #(
    .Width(WW)
  ) u_w_slice (
    .clk_i,
    .rst_ni,
    .clr_i     (1'b0),
    .s_valid_i (w_s_valid),
    .s_ready_o (w_s_ready),
    .s_data_i  (w_s),
    .m_valid_o (m_axi_wvalid_o),
    .m_ready_i (m_axi_wready_i),
    .m_data_o  (w_m)
  );
  assign m_axi_wdata_o = w_m.data;
  assign m_axi_wstrb_o = w_m.strb;
  assign m_axi_wlast_o = w_m.last;

  always_ff @(posedge clk_i or negedge rst_ni) begin : aw_ack_ff
    if (!rst_ni) begin
      aw_ack_q     <= '0;
      aw_ack_err_q <= 1'b0;
    end else begin
      aw_ack_q     <= aw_fire ? aw_pick_oh_q : '0;
      aw_ack_err_q <= aw_fire && aw_inject;
    end
  end
  assign req_aw_ready_o = aw_ack_q;
  assign req_aw_err_o   = aw_ack_err_q ? aw_ack_q : '0;

  // The burst's W beats follow from its fire on (its requester sends them after its
  // handshake).
  always_comb begin : aw_grant
    req_w_ready_o = '0;
    w_owner_d     = w_owner_q;
    w_busy_d      = w_busy_q;
    w_swallow_d   = w_swallow_q;
    if (w_busy_q) begin
      req_w_ready_o[w_owner_q] = w_swallow_q || w_s_ready;
      if (w_fire_last) begin
        w_busy_d    = 1'b0;
        w_swallow_d = 1'b0;
      end
    end
    if (aw_fire) begin
      w_owner_d            = aw_pick_q;
      w_busy_d             = 1'b1;
      w_swallow_d          = aw_inject;
    end
  end

  assign wr_err_consume_o = aw_fire && aw_inject;
  assign wr_beat_o        = m_axi_wvalid_o && m_axi_wready_i;

  // ---------------------------------------------------------------- write response
  // B responses are registered before they are routed, with the ID decoded on the way
  // in, like R.
  logic               b_valid_q;
  logic [1:0]         b_resp_q;
  logic [NumReq-1:0]  b_route_d, b_route_q;
  assign m_axi_bready_o = 1'b1;
  always_comb begin : b_route
    b_route_d = '0;
    if (m_axi_bvalid_i && int'(m_axi_bid_i) < NumReq) begin
      b_route_d[m_axi_bid_i[ReqIdx-1:0]] = 1'b1;
    end
  end
  always_ff @(posedge clk_i or negedge rst_ni) begin : b_valid_ff
    if (!rst_ni) begin
      b_valid_q <= 1'b0;
      b_route_q <= '0;
    end else begin
      b_valid_q <= m_axi_bvalid_i;
      b_route_q <= b_route_d;
    end
  end
  always_ff @(posedge clk_i) begin : b_data_ff
    if (m_axi_bvalid_i) b_resp_q <= m_axi_bresp_i;
  end
  assign req_b_valid_o = b_route_q;
  assign req_b_resp_o = b_resp_q;

  // Write bursts sent and not yet answered (injected ones get no response). The lock
  // is granted only when none is open, no AW waits in its slice and no B in its register.
  logic [7:0] wr_open_d, wr_open_q;
  always_comb begin : wr_open_count
    wr_open_d = wr_open_q;
    if (m_axi_awvalid_o && m_axi_awready_i) wr_open_d = wr_open_d + 8'd1;
    if (m_axi_bvalid_i) wr_open_d = wr_open_d - 8'd1;
  end
  // The grant is registered: it reports the previous cycle's state, which still holds
  // while the lock is asked for (under the request only the owner's AW can be picked,
  // and a B needs an open write). It is dropped with the request.
  logic lock_ok_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : lock_ok_ff
    if (!rst_ni) lock_ok_q <= 1'b0;
    else         lock_ok_q <= lock_req_i && !w_busy_q && !m_axi_awvalid_o && wr_open_q == '0
                              && !b_valid_q && !(aw_pick_v_q && 32'(aw_pick_q) != LockReq);
  end
  assign lock_ok_o = lock_req_i && lock_ok_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      w_owner_q   <= '0;
      w_busy_q    <= 1'b0;
      w_swallow_q <= 1'b0;
      wr_open_q   <= '0;
    end else begin
      w_owner_q   <= w_owner_d;
      w_busy_q    <= w_busy_d;
      w_swallow_q <= w_swallow_d;
      wr_open_q   <= wr_open_d;
    end
  end

  // ---- assertions
  // The slave answers only IDs it was sent, and only bursts that are open.
  `PRIM_ASSUME(a_rid_known, !m_axi_rvalid_i || int'(m_axi_rid_i) < NumReq)
  `PRIM_ASSUME(a_bid_known, !m_axi_bvalid_i || int'(m_axi_bid_i) < NumReq)
  `PRIM_ASSUME(a_wr_open_no_underflow, !m_axi_bvalid_i || wr_open_q != '0)
  `PRIM_ASSUME(a_rd_open_no_underflow, !(m_axi_rvalid_i && m_axi_rlast_i) || rd_open_q != '0)
  `PRIM_ASSERT(a_rd_open_limit, 32'(rd_open_q) <= MaxReadBursts)
  `PRIM_ASSERT(a_lock_only_owner, !(lock_ok_o && m_axi_awvalid_o) || int'(m_axi_awid_o) == LockReq)
  // Requesters hold a shown request and its payload until its handshake (AXI).
  for (genvar r = 0; r < NumReq; r++) begin : gen_req_hold
    `PRIM_ASSUME_NEXT(a_req_ar_held, req_ar_valid_i[r] && !req_ar_ready_o[r],
                      req_ar_valid_i[r] && $stable(req_ar_addr_i[r*AddrWidth +: AddrWidth]) && $stable(req_ar_len_i[r*8 +: 8]))
    `PRIM_ASSUME_NEXT(a_req_aw_held, req_aw_valid_i[r] && !req_aw_ready_o[r],
                      req_aw_valid_i[r] && $stable(req_aw_addr_i[r*AddrWidth +: AddrWidth]) && $stable(req_aw_len_i[r*8 +: 8]))
  end
  // A handshake only ever meets a shown request.
  `PRIM_ASSERT(a_ar_ack_valid, (req_ar_ready_o & ~req_ar_valid_i) == '0)
  `PRIM_ASSERT(a_aw_ack_valid, (req_aw_ready_o & ~req_aw_valid_i) == '0)
  `PRIM_ASSERT(a_ar_onehot, $onehot0(req_ar_ready_o))
  `PRIM_ASSERT(a_aw_onehot, $onehot0(req_aw_ready_o))
  `PRIM_ASSERT(a_w_ready_onehot, $onehot0(req_w_ready_o))
  `PRIM_ASSERT_NEXT(a_aw_stable, m_axi_awvalid_o && !m_axi_awready_i, m_axi_awvalid_o && $stable(aw_m))
  `PRIM_ASSERT_NEXT(a_ar_stable, m_axi_arvalid_o && !m_axi_arready_i, m_axi_arvalid_o && $stable(ar_m))
  `PRIM_ASSERT_NEXT(a_w_stable, m_axi_wvalid_o && !m_axi_wready_i, m_axi_wvalid_o && $stable(w_m))
  // Requesters never ask for a burst that crosses a 4 KiB boundary, so none is sent.
  for (genvar r = 0; r < NumReq; r++) begin : gen_req_rules
    `PRIM_ASSUME(a_req_ar_no_4k_cross, !req_ar_valid_i[r] || 14'(req_ar_addr_i[r*AddrWidth +: 12]) + (14'(req_ar_len_i[r*8 +: 8]) + 14'd1) * 14'(StrbWidth) <= 14'h1000 + 14'(StrbWidth - 1))
    `PRIM_ASSUME(a_req_aw_no_4k_cross, !req_aw_valid_i[r] || 14'(req_aw_addr_i[r*AddrWidth +: 12]) + (14'(req_aw_len_i[r*8 +: 8]) + 14'd1) * 14'(StrbWidth) <= 14'h1000 + 14'(StrbWidth - 1))
  end
  `PRIM_ASSERT(a_no_4k_cross_ar, !m_axi_arvalid_o || 14'(m_axi_araddr_o[11:0]) + (14'(m_axi_arlen_o) + 14'd1) * 14'(StrbWidth) <= 14'h1000 + 14'(StrbWidth - 1))
  `PRIM_ASSERT(a_no_4k_cross_aw, !m_axi_awvalid_o || 14'(m_axi_awaddr_o[11:0]) + (14'(m_axi_awlen_o) + 14'd1) * 14'(StrbWidth) <= 14'h1000 + 14'(StrbWidth - 1))

endmodule
