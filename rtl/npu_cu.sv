// Compute unit: kernel queue, group dispatch, slots, completion queue (docs/device.md 10).
//
// While enabled the unit fetches one 64-byte KDESC at a time from the kernel queue,
// checks it, and cuts the kernel into groups (at most 16 elements, each contiguous
// operand within one 64-byte line). Group g goes to slot g mod Slots, strictly in
// order, when that slot is idle. Slots translate through the MMU and reach memory
// through one requester per port. When every group is done (or the first failure has
// let the running groups finish) the unit writes the 32-byte KCPL, moves KCQ_TAIL and
// raises cause KERNEL if asked or on failure.
module npu_cu #(
  parameter int unsigned Slots = 4,
  localparam int unsigned DataWidth = 512,
  localparam int unsigned StrbWidth = DataWidth / 8,
  localparam int unsigned SlotW     = Slots > 1 ? $clog2(Slots) : 1
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  input  logic                 soft_reset_i,
  input  logic                 enable_i,
  input  logic                 hang_i,
  input  logic [63:0]          kq_base_i,
  input  logic [4:0]           kq_size_log2_i,
  input  logic [15:0]          kq_tail_i,
  output logic [15:0]          kq_head_o,
  input  logic [63:0]          kcq_base_i,
  input  logic [4:0]           kcq_size_log2_i,
  input  logic [15:0]          kcq_head_i,
  output logic [15:0]          kcq_tail_o,
  output logic                 irq_o,
  output logic [7:0]           dev_err_code_o,
  output logic                 busy_o,
  output logic                 kernel_busy_o,
  output logic                 kernel_stall_o,
  // MMU translation port
  output logic                 tr_req_valid_o,
  input  logic                 tr_req_ready_i,
  output logic [SlotW-1:0]     tr_req_slot_o,
  output logic [15:0]          tr_req_asid_o,
  output logic [63:0]          tr_req_va_o,
  output logic                 tr_req_write_o,
  input  logic                 tr_rsp_valid_i,
  input  logic [SlotW-1:0]     tr_rsp_slot_i,
  input  logic                 tr_rsp_abort_i,
  input  logic [40:0]          tr_rsp_pa_i,
  // FENCE tracking: slots holding a translation whose memory response is not in yet
  output logic [Slots-1:0]     xlated_o,
  output logic [Slots-1:0]     data_done_o,
  // data requesters: index 0 host port, 1 device port
  output logic [1:0]           ar_valid_o,
  input  logic [1:0]           ar_ready_i,
  output logic [2*64-1:0]      ar_addr_o,
  input  logic [1:0]           ar_err_i,
  input  logic [1:0]           r_valid_i,
  input  logic [2*DataWidth-1:0] r_data_i,
  input  logic [3:0]           r_resp_i,
  output logic [1:0]           aw_valid_o,
  input  logic [1:0]           aw_ready_i,
  output logic [2*64-1:0]      aw_addr_o,
  input  logic [1:0]           aw_err_i,
  output logic [1:0]           w_valid_o,
  input  logic [1:0]           w_ready_i,
  output logic [2*DataWidth-1:0] w_data_o,
  output logic [2*StrbWidth-1:0] w_strb_o,
  input  logic [1:0]           b_valid_i,
  input  logic [3:0]           b_resp_i,
  // ring requester on the host port (KDESC fetch, KCPL write)
  output logic                 q_ar_valid_o,
  input  logic                 q_ar_ready_i,
  output logic [63:0]          q_ar_addr_o,
  input  logic                 q_r_valid_i,
  input  logic [DataWidth-1:0] q_r_data_i,
  input  logic [1:0]           q_r_resp_i,
  output logic                 q_aw_valid_o,
  input  logic                 q_aw_ready_i,
  output logic [63:0]          q_aw_addr_o,
  output logic                 q_w_valid_o,
  input  logic                 q_w_ready_i,
  output logic [DataWidth-1:0] q_w_data_o,
  output logic [StrbWidth-1:0] q_w_strb_o,
  input  logic                 q_b_valid_i,
  input  logic [1:0]           q_b_resp_i
);

  localparam logic [7:0] OpCopy   = 8'(npu_reg_pkg::KERNEL_OPCODE_COPY);
  localparam logic [7:0] OpFill   = 8'(npu_reg_pkg::KERNEL_OPCODE_FILL);
  localparam logic [7:0] OpAdd    = 8'(npu_reg_pkg::KERNEL_OPCODE_ADD);
  localparam logic [7:0] OpScale  = 8'(npu_reg_pkg::KERNEL_OPCODE_SCALE);
  localparam logic [7:0] OpReduce = 8'(npu_reg_pkg::KERNEL_OPCODE_REDUCE_SUM);
  localparam logic [7:0] OpGather = 8'(npu_reg_pkg::KERNEL_OPCODE_GATHER);
  localparam logic [7:0] OpTouch  = 8'(npu_reg_pkg::KERNEL_OPCODE_STRIDED_TOUCH);
  localparam logic [7:0] StOk     = 8'(npu_reg_pkg::KERNEL_STATUS_OK);
  localparam logic [7:0] StAbort  = 8'(npu_reg_pkg::KERNEL_STATUS_FAULT_ABORT);
  localparam logic [7:0] StBad    = 8'(npu_reg_pkg::KERNEL_STATUS_BAD_DESC);
  localparam logic [7:0] StMemErr = 8'(npu_reg_pkg::KERNEL_STATUS_MEM_ERROR);
  localparam logic [7:0] ErrFetch = 8'(npu_reg_pkg::DMA_ERROR_DESC_FETCH);
  localparam logic [7:0] ErrWrite = 8'(npu_reg_pkg::DMA_ERROR_CPL_WRITE);

  typedef enum logic [3:0] {
    KIdle, KFetch, KFetchWait, KCheck, KRun, KFinal, KFinalWait, KCplAw, KCplW, KCplB, KError
  } state_e;

  state_e       state_d, state_q;
  logic [15:0]  head_d, head_q, tail_d, tail_q, kq_mask, kcq_mask;
  logic [511:0] desc_d, desc_q;
  logic [7:0]   status_d, status_q, err_d, err_q;
  logic         flush_d, flush_q;
  logic [31:0]  next_i_d, next_i_q, done_d, done_q;
  logic [63:0]  cur_a_d, cur_a_q, cur_b_d, cur_b_q, cur_c_d, cur_c_q, fail_va_d, fail_va_q;
  logic [SlotW-1:0] disp_d, disp_q;
  logic         failed_d, failed_q;

  // Descriptor fields (KDESC record).
  logic [7:0]  opcode, flags;
  logic [15:0] asid, tag;
  logic [31:0] count, stride, scalar;
  logic [63:0] a, b, c;
  assign opcode = desc_q[7:0];
  assign flags  = desc_q[15:8];
  assign asid   = desc_q[31:16];
  assign tag    = desc_q[47:32];
  assign count  = desc_q[95:64];
  assign stride = desc_q[127:96];
  assign a      = desc_q[191:128];
  assign b      = desc_q[255:192];
  assign c      = desc_q[319:256];
  assign scalar = desc_q[351:320];

  // Operands each operation reads or writes as contiguous arrays.
  function automatic logic uses_a(logic [7:0] op);
    uses_a = op == OpCopy || op == OpAdd || op == OpScale || op == OpReduce;
  endfunction
  function automatic logic uses_b(logic [7:0] op);
    uses_b = op == OpAdd || op == OpGather;
  endfunction
  function automatic logic uses_c(logic [7:0] op);
    uses_c = op == OpCopy || op == OpFill || op == OpAdd || op == OpScale || op == OpGather;
  endfunction
  // Whether a KDESC is well formed (checked as it arrives, registered for KCheck).
  /* verilator lint_off UNUSEDSIGNAL */
  function automatic logic desc_valid(logic [511:0] d);
    logic [7:0] op;
    op = d[7:0];
    desc_valid = op >= OpCopy && op <= OpTouch && d[15:10] == '0
                 && ((!uses_a(op) && op != OpGather && op != OpTouch) || d[129:128] == '0)
                 && (!uses_b(op) || d[193:192] == '0)
                 && ((!uses_c(op) && !(op == OpReduce && d[319:256] != '0)) || d[257:256] == '0)
                 && (op != OpTouch || d[97:96] == '0);
  endfunction
  /* verilator lint_on UNUSEDSIGNAL */
  logic use_a, use_b, use_c, desc_ok_q;
  assign use_a = uses_a(opcode);
  assign use_b = uses_b(opcode);
  assign use_c = uses_c(opcode);
  always_ff @(posedge clk_i) begin : desc_ok_ff
    if (state_q == KFetchWait && q_r_valid_i) desc_ok_q <= desc_valid(q_r_data_i);
  end

  // ---------------------------------------------------------------- group size
  function automatic logic [4:0] line_left(logic [3:0] word);
    line_left = 5'd16 - 5'(word);
  endfunction
  function automatic logic [4:0] min5(logic [4:0] x, logic [4:0] y);
    min5 = x < y ? x : y;
  endfunction
  // The three compares side by side, then one pick.
  function automatic logic [4:0] min3(logic [4:0] x, logic [4:0] y, logic [4:0] z);
    logic xy, xz, yz;
    {xy, xz, yz} = {x <= y, x <= z, y <= z};
    min3 = xy && xz ? x : yz ? y : z;
  endfunction
  // The size is computed in two registered stages from the current position (the
  // elements left, capped at 16 or 1 for STRIDED_TOUCH, and the words left in each used
  // operand's line), and used only when both stages saw the current values
  // (settle_q: in KRun for three cycles, no dispatch in the last two), so neither the dispatch
  // adds nor the opcode decode sit behind the size logic; dispatches are at least three
  // cycles apart. The opcode decode is registered too (desc_q changes only on a fetch,
  // two cycles before KRun).
  logic [4:0]  group_n, group_n_q, rem_cap_q, line_min_q;
  logic [1:0]  settle_q;
  logic [31:0] remaining;
  logic        use_a_q, use_b_q, use_c_q, is_touch_q, final_op_q, sum_in_cpl_q, more_q;
  logic [63:0] a_step_q;
  assign remaining = count - next_i_q;
  // The size as one expression, for the assertion that the stages agree with it.
  always_comb begin : group_size
    group_n = remaining < 32'd16 ? 5'(remaining) : 5'd16;
    if (opcode == OpTouch) group_n = 5'd1;
    if (use_a && line_left(cur_a_q[5:2]) < group_n) group_n = line_left(cur_a_q[5:2]);
    if (use_b && line_left(cur_b_q[5:2]) < group_n) group_n = line_left(cur_b_q[5:2]);
    if (use_c && line_left(cur_c_q[5:2]) < group_n) group_n = line_left(cur_c_q[5:2]);
  end
  always_ff @(posedge clk_i) begin : decode_ff
    use_a_q    <= use_a;
    use_b_q    <= use_b;
    use_c_q    <= use_c;
    is_touch_q <= opcode == OpTouch;
    final_op_q <= opcode == OpReduce && c != '0;
    sum_in_cpl_q <= opcode == OpReduce || opcode == OpTouch;
  end
  logic [4:0] group_n_next;
  assign group_n_next = min5(rem_cap_q, line_min_q);
  always_ff @(posedge clk_i) begin : group_stage_ff
    rem_cap_q  <= is_touch_q ? 5'd1 : remaining < 32'd16 ? 5'(remaining) : 5'd16;
    line_min_q <= min3(use_a_q ? line_left(cur_a_q[5:2]) : 5'd16,
                       use_b_q ? line_left(cur_b_q[5:2]) : 5'd16,
                       use_c_q ? line_left(cur_c_q[5:2]) : 5'd16);
    more_q     <= next_i_q != count;
    group_n_q  <= group_n_next;
    a_step_q   <= is_touch_q ? {32'd0, stride} : 64'(group_n_next) << 2;
  end

  // ---------------------------------------------------------------- slots
  logic [Slots-1:0]          s_idle, s_waiting, s_done, s_fail, s_abort, s_start, s_tr_valid;
  logic [Slots-1:0]          s_tr_ready, s_m_valid, s_m_host, s_m_write, s_m_ready, s_rsp, s_err;
  logic [Slots*5-1:0]        s_done_n;
  logic [Slots*64-1:0]       s_fail_va, s_sum, s_tr_va, s_m_addr, s_m_wstrb;
  logic [Slots*DataWidth-1:0] s_m_wdata;
  logic [Slots-1:0]          s_tr_write;
  logic                      final_start, dispatch, issue_en;
  logic [63:0]               total;
  logic [1:0][Slots-1:0]     p_ready, p_rsp, p_err;
  logic [1:0]                p_idle;

  assign issue_en = !hang_i && !flush_q && !soft_reset_i;
  // Slot reports pass a register stage before the sequencer counts them (the slots' done
  // and fail strobes come from their memory responses): per slot the elements of a group
  // done in the last cycle (0 if none), and whether it failed. No dispatch while a
  // failure is in that stage, so no group starts after the first failure.
  logic [Slots-1:0][4:0] rep_done_n_q;
  logic [Slots-1:0]      rep_fail_q, rep_abort_q;
  logic                  fail_seen;
  always_ff @(posedge clk_i or negedge rst_ni) begin : report_ff
    if (!rst_ni) begin
      rep_done_n_q <= '0;
      rep_fail_q   <= '0;
      rep_abort_q  <= '0;
    end else begin
      for (int unsigned s = 0; s < Slots; s++) begin
        rep_done_n_q[s] <= s_done[s] ? s_done_n[s*5 +: 5] : 5'd0;
      end
      rep_fail_q  <= s_fail;
      rep_abort_q <= s_abort;
    end
  end
  assign fail_seen = failed_q || |rep_fail_q;
  assign dispatch = state_q == KRun && settle_q == '0 && !fail_seen && more_q
                    && s_idle[disp_q] && issue_en;
  always_ff @(posedge clk_i or negedge rst_ni) begin : settle_ff
    if (!rst_ni)                             settle_q <= 2'd2;
    else if (state_q != KRun || dispatch)    settle_q <= 2'd2;
    else if (settle_q != '0)                 settle_q <= settle_q - 2'd1;
  end

  // Sum of the staged done counts (a tree over Slots small adds), and the first failing
  // slot of the staged reports.
  logic [7:0]       done_sum;
  logic [SlotW-1:0] first_fail;
  always_comb begin : done_tree
    done_sum = '0;
    for (int unsigned s = 0; s < Slots; s++) done_sum = done_sum + 8'(rep_done_n_q[s]);
  end
  always_comb begin : first_fail_pick
    first_fail = '0;
    for (int i = Slots - 1; i >= 0; i--) begin
      if (rep_fail_q[i]) first_fail = SlotW'(i);
    end
  end

  always_comb begin : sum_slots
    total = '0;
    for (int unsigned s = 0; s < Slots; s++) total = total + s_sum[s*64 +: 64];
  end
  // The sum, registered: it is read only after the slots are idle (the final store and
  // the KCPL record), a cycle or more after their last update.
  logic [63:0] total_q;
  always_ff @(posedge clk_i) total_q <= total;

  // Memory responses pass a register stage before the slots take them (the
  // multiplexer's R/B routing and the ports' response queues do not sit in front of the
  // slots' operand-line updates): valid, error and port per slot, and each port's R data.
  logic [Slots-1:0]          rsp_port0_q;
  logic [1:0][DataWidth-1:0] rsp_data_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : rsp_valid_ff
    if (!rst_ni) s_rsp <= '0;
    else         s_rsp <= p_rsp[0] | p_rsp[1];
  end
  always_ff @(posedge clk_i) begin : rsp_data_ff
    for (int unsigned s = 0; s < Slots; s++) begin
      s_err[s] <= p_rsp[0][s] ? p_err[0][s] : p_err[1][s];
    end
    rsp_port0_q   <= p_rsp[0];
    rsp_data_q[0] <= r_data_i[0 +: DataWidth];
    rsp_data_q[1] <= r_data_i[DataWidth +: DataWidth];
  end

  // A start reaches its slot a cycle after the dispatch decision, with the group's
  // operands registered (the next dispatch is at least three cycles later, and
  // KFinalWait waits out the final store's start); a soft reset in that cycle drops it.
  logic [Slots-1:0] start_q;
  logic             final_q;
  logic [4:0]       n_start_q;
  logic [63:0]      va_a_start_q, va_b_start_q, va_c_start_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : start_ff
    if (!rst_ni) begin
      start_q <= '0;
      final_q <= 1'b0;
    end else begin
      start_q <= s_start;
      final_q <= final_start;
    end
  end
  always_ff @(posedge clk_i) begin : start_operands_ff
    n_start_q    <= group_n_q;
    va_a_start_q <= cur_a_q;
    va_b_start_q <= cur_b_q;
    va_c_start_q <= final_start ? c : cur_c_q;
  end

  for (genvar s = 0; s < Slots; s++) begin : gen_slot
    assign s_start[s] = (dispatch && disp_q == SlotW'(s)) || (final_start && s == 0);
    assign s_m_ready[s] = p_ready[0][s] || p_ready[1][s];
    npu_cu_slot u_slot (
      .clk_i,
      .rst_ni,
      .flush_i       (soft_reset_i),
      .opcode_i      (opcode),
      .store_i       (flags[npu_reg_pkg::KERNEL_FLAG_WRITE]),
      .a_base_i      (a),
      .scalar_i      (scalar),
      .final_value_i (total_q[31:0]),
      .clear_sum_i   (state_q == KCheck),
      .start_i       (start_q[s] && !soft_reset_i),
      .final_i       (final_q),
      .n_i           (n_start_q),
      .va_a_i        (va_a_start_q),
      .va_b_i        (va_b_start_q),
      .va_c_i        (va_c_start_q),
      .idle_o        (s_idle[s]),
      .waiting_o     (s_waiting[s]),
      .done_o        (s_done[s]),
      .done_n_o      (s_done_n[s*5 +: 5]),
      .fail_o        (s_fail[s]),
      .fail_abort_o  (s_abort[s]),
      .fail_va_o     (s_fail_va[s*64 +: 64]),
      .sum_o         (s_sum[s*64 +: 64]),
      .tr_valid_o    (s_tr_valid[s]),
      .tr_ready_i    (s_tr_ready[s]),
      .tr_va_o       (s_tr_va[s*64 +: 64]),
      .tr_write_o    (s_tr_write[s]),
      .tr_rsp_i      (tr_rsp_valid_i && tr_rsp_slot_i == SlotW'(s)),
      .tr_abort_i    (tr_rsp_abort_i),
      .tr_pa_i       (tr_rsp_pa_i),
      .m_valid_o     (s_m_valid[s]),
      .m_ready_i     (s_m_ready[s]),
      .m_host_o      (s_m_host[s]),
      .m_addr_o      (s_m_addr[s*64 +: 64]),
      .m_write_o     (s_m_write[s]),
      .m_wdata_o     (s_m_wdata[s*DataWidth +: DataWidth]),
      .m_wstrb_o     (s_m_wstrb[s*64 +: 64]),
      .m_xlated_o    (xlated_o[s]),
      .m_rsp_i       (s_rsp[s]),
      .m_err_i       (s_err[s]),
      .m_rdata_i     (rsp_port0_q[s] ? rsp_data_q[0] : rsp_data_q[1])
    );
  end
  assign data_done_o = s_rsp;

  // Translation requests: round-robin among slots, then a register slice, so the slots'
  // request logic and the arbiter are not in front of the MMU's TLB lookup (one cycle
  // more per translation). A soft reset empties the slice: the slots forget their
  // requests and the MMU accepts nothing in that cycle.
  localparam int unsigned TrW = SlotW + 16 + 64 + 1;
  logic [SlotW-1:0] tr_pick;
  logic [Slots-1:0] tr_gnt;
  logic             tr_found, tr_s_ready;
  prim_arb_rr #(
    .N(Slots)
  ) u_tr_arb (
    .clk_i,
    .rst_ni,
    .req_i   (s_tr_valid & ~s_tr_ready),
    .ready_i (issue_en && tr_s_ready),
    .valid_o (tr_found),
    .idx_o   (tr_pick),
    /* verilator lint_off PINCONNECTEMPTY */
    .win_o   (),
    /* verilator lint_on PINCONNECTEMPTY */
    .gnt_o   (tr_gnt)
  );
  // The grant reaches the slot from a register (its request holds until then and is
  // not picked twice), so the arbiter does not sit in front of the slots' state.
  always_ff @(posedge clk_i or negedge rst_ni) begin : tr_gnt_ff
    if (!rst_ni) s_tr_ready <= '0;
    else         s_tr_ready <= tr_gnt;
  end
  prim_reg_slice #(
    .Width(TrW),
    .ClrAll(1'b1)
  ) u_tr_slice (
    .clk_i,
    .rst_ni,
    .clr_i     (soft_reset_i),
    .s_valid_i (tr_found && issue_en),
    .s_ready_o (tr_s_ready),
    .s_data_i  ({tr_pick, asid, s_tr_va[tr_pick*64 +: 64], s_tr_write[tr_pick]}),
    .m_valid_o (tr_req_valid_o),
    .m_ready_i (tr_req_ready_i),
    .m_data_o  ({tr_req_slot_o, tr_req_asid_o, tr_req_va_o, tr_req_write_o})
  );

  // Data requesters: port 0 = host (host-window addresses), 1 = device.
  for (genvar p = 0; p < 2; p++) begin : gen_port
    npu_cu_port #(
      .Slots(Slots)
    ) u_port (
      .clk_i,
      .rst_ni,
      .issue_en_i  (issue_en),
      .req_valid_i (s_m_valid & (p == 0 ? s_m_host : ~s_m_host)),
      .req_addr_i  (s_m_addr),
      .req_write_i (s_m_write),
      .req_wdata_i (s_m_wdata),
      .req_wstrb_i (s_m_wstrb),
      .req_ready_o (p_ready[p]),
      .rsp_valid_o (p_rsp[p]),
      .rsp_err_o   (p_err[p]),
      .idle_o      (p_idle[p]),
      .ar_valid_o  (ar_valid_o[p]),
      .ar_ready_i  (ar_ready_i[p]),
      .ar_addr_o   (ar_addr_o[p*64 +: 64]),
      .ar_err_i    (ar_err_i[p]),
      .r_valid_i   (r_valid_i[p]),
      .r_resp_i    (r_resp_i[p*2 +: 2]),
      .aw_valid_o  (aw_valid_o[p]),
      .aw_ready_i  (aw_ready_i[p]),
      .aw_addr_o   (aw_addr_o[p*64 +: 64]),
      .aw_err_i    (aw_err_i[p]),
      .w_valid_o   (w_valid_o[p]),
      .w_ready_i   (w_ready_i[p]),
      .w_data_o    (w_data_o[p*DataWidth +: DataWidth]),
      .w_strb_o    (w_strb_o[p*StrbWidth +: StrbWidth]),
      .b_valid_i   (b_valid_i[p]),
      .b_resp_i    (b_resp_i[p*2 +: 2])
    );
  end

  // ---------------------------------------------------------------- kernel sequence
  logic        kq_ring_ok, kcq_ring_ok, pending, kcq_full, all_idle;
  logic [63:0] fetch_addr, cpl_addr;
  logic [255:0] kcpl;
  // Ring sizes decoded into registers (they change only by CSR writes, which the
  // driver makes before it rings a doorbell): masks and validity lag a write by a cycle.
  always_ff @(posedge clk_i or negedge rst_ni) begin : ring_size_ff
    if (!rst_ni) begin
      kq_mask     <= '0;
      kcq_mask    <= '0;
      kq_ring_ok  <= 1'b0;
      kcq_ring_ok <= 1'b0;
    end else begin
      kq_mask     <= 16'((32'd1 << kq_size_log2_i) - 1);
      kcq_mask    <= 16'((32'd1 << kcq_size_log2_i) - 1);
      kq_ring_ok  <= kq_size_log2_i >= 5'd1 && kq_size_log2_i <= 5'd16;
      kcq_ring_ok <= kcq_size_log2_i >= 5'd1 && kcq_size_log2_i <= 5'd16;
    end
  end
  assign pending     = (head_q & kq_mask) != (kq_tail_i & kq_mask);
  // Room for the next completion, registered in two stages (the tail's successor, then
  // the compare) before the completion AW valid register takes it. The tail moves only
  // after a completion is written, many cycles before the next one (a KDESC fetch lies
  // between), and the head only frees.
  logic [15:0] tail_inc_q;
  always_ff @(posedge clk_i) tail_inc_q <= (tail_q + 16'd1) & kcq_mask;
  assign kcq_full    = tail_inc_q == (kcq_head_i & kcq_mask);
  logic kcq_room_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : kcq_room_ff
    if (!rst_ni) kcq_room_q <= 1'b0;
    else         kcq_room_q <= kcq_ring_ok && !kcq_full;
  end
  assign fetch_addr  = kq_base_i + {42'd0, head_q & kq_mask, 6'd0};
  assign cpl_addr    = kcq_base_i + {43'd0, tail_q & kcq_mask, 5'd0};
  assign all_idle    = &s_idle;
  always_comb begin : completion_record
    kcpl          = '0;
    kcpl[15:0]    = tag;
    kcpl[23:16]   = status_q;
    kcpl[47:32]   = asid;
    kcpl[127:64]  = sum_in_cpl_q ? total_q : '0;
    kcpl[191:128] = (status_q == StAbort || status_q == StMemErr) ? fail_va_q : '0;
    kcpl[223:192] = done_q;
  end

  always_comb begin : next_state
    state_d     = state_q;
    head_d      = head_q;
    tail_d      = tail_q;
    desc_d      = desc_q;
    status_d    = status_q;
    err_d       = err_q;
    flush_d     = flush_q || soft_reset_i;
    next_i_d    = next_i_q;
    done_d      = done_q;
    cur_a_d     = cur_a_q;
    cur_b_d     = cur_b_q;
    cur_c_d     = cur_c_q;
    disp_d      = disp_q;
    failed_d    = failed_q;
    fail_va_d   = fail_va_q;
    final_start = 1'b0;
    irq_o       = 1'b0;

    // Slot reports (registered): groups done, and the first failure (lowest slot). A
    // failed slot stays idle and keeps its failing address while its report is staged.
    done_d = done_q + 32'(done_sum);
    if (!failed_q && |rep_fail_q) begin
      failed_d  = 1'b1;
      fail_va_d = s_fail_va[first_fail*64 +: 64];
      status_d  = rep_abort_q[first_fail] ? StAbort : StMemErr;
    end

    unique case (state_q)
      KIdle: begin
        if (enable_i && kq_ring_ok && pending && issue_en) state_d = KFetch;
      end
      KFetch: if (q_ar_ready_i) state_d = KFetchWait;
      KFetchWait: begin
        if (q_r_valid_i) begin
          desc_d = q_r_data_i;
          head_d = (head_q + 16'd1) & kq_mask;
          if (q_r_resp_i != 2'b00) begin
            err_d   = ErrFetch;
            state_d = KError;
          end else begin
            state_d = KCheck;
          end
        end
      end
      KCheck: begin
        next_i_d = '0;
        done_d   = '0;
        cur_a_d  = a;
        cur_b_d  = b;
        cur_c_d  = c;
        disp_d   = '0;
        failed_d = 1'b0;
        fail_va_d = '0;
        status_d = desc_ok_q ? StOk : StBad;
        state_d  = desc_ok_q && count != '0 ? KRun : KCplAw;
      end
      KRun: begin
        if (dispatch) begin
          next_i_d = next_i_q + 32'(group_n_q);
          cur_a_d  = cur_a_q + a_step_q;
          cur_b_d  = cur_b_q + (64'(group_n_q) << 2);
          cur_c_d  = cur_c_q + (64'(group_n_q) << 2);
          disp_d   = (int'(disp_q) == Slots - 1) ? '0 : disp_q + 1'b1;
        end else if (settle_q == '0 && (!more_q || fail_seen) && all_idle) begin
          state_d = final_op_q && !fail_seen ? KFinal : KCplAw;
        end
      end
      KFinal: begin
        if (issue_en) begin
          final_start = 1'b1;
          state_d     = KFinalWait;
        end
      end
      KFinalWait: if (all_idle && !final_q) state_d = KCplAw;
      KCplAw: begin
        if (q_aw_valid_o && q_aw_ready_i) state_d = KCplW;
      end
      KCplW: if (q_w_ready_i) state_d = KCplB;
      KCplB: begin
        if (q_b_valid_i) begin
          if (q_b_resp_i != 2'b00) begin
            err_d   = ErrWrite;
            state_d = KError;
          end else begin
            tail_d  = (tail_q + 16'd1) & kcq_mask;
            irq_o   = flags[npu_reg_pkg::KERNEL_FLAG_IRQ] || status_q != StOk;
            state_d = KIdle;
          end
        end
      end
      KError: ;
      default: state_d = KIdle;
    endcase

    // Soft reset: shown AR/AW and open bursts finish, slots drain, then all is forgotten.
    if (flush_d) begin
      irq_o = 1'b0;
      if (state_q != KFetch && state_q != KFetchWait && state_q != KCplW && state_q != KCplB
          && !(state_q == KCplAw && q_aw_valid_o)) begin
        state_d = KIdle;
      end
      if (state_d == KIdle && all_idle && &p_idle && !soft_reset_i) flush_d = 1'b0;
      head_d = '0;
      tail_d = '0;
      err_d  = '0;
    end
  end

  assign kq_head_o      = head_q;
  assign kcq_tail_o     = tail_q;
  assign dev_err_code_o = err_q;
  assign kernel_busy_o  = state_q != KIdle && state_q != KError;
  assign kernel_stall_o = kernel_busy_o && !all_idle && (s_waiting | s_idle) == '1 && !(|s_rsp);
  assign busy_o         = kernel_busy_o || flush_q || (enable_i && kq_ring_ok && pending);

  // The ring requester's outputs come straight from registers (no logic in front of
  // the host multiplexer): the valids are decided from the next state, the addresses
  // are taken while the request is not shown (head and tail hold then), and the KCPL
  // strobes are built with the beat and cleared by a soft reset.
  logic [63:0] fetch_addr_q, cpl_addr_q;
  always_ff @(posedge clk_i) begin : ring_addr_ff
    if (state_q != KFetch) fetch_addr_q <= fetch_addr;
    if (state_q != KCplAw && state_q != KCplW && state_q != KCplB) cpl_addr_q <= cpl_addr;
  end
  // A shown completion AW holds until its handshake (AXI), even if the ring's room
  // goes (a ring size write) meanwhile.
  logic q_ar_valid_q, q_aw_valid_q, q_w_valid_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : ring_valid_ff
    if (!rst_ni) begin
      q_ar_valid_q <= 1'b0;
      q_aw_valid_q <= 1'b0;
      q_w_valid_q  <= 1'b0;
    end else begin
      q_ar_valid_q <= state_d == KFetch;
      q_aw_valid_q <= state_d == KCplAw
                      && (kcq_room_q || (q_aw_valid_o && !q_aw_ready_i));
      q_w_valid_q  <= state_d == KCplW;
    end
  end
  assign q_ar_valid_o = q_ar_valid_q;
  assign q_ar_addr_o  = fetch_addr_q;  // 64-byte aligned: one KDESC is one beat
  assign q_aw_valid_o = q_aw_valid_q;
  assign q_aw_addr_o  = {cpl_addr_q[63:6], 6'd0};
  assign q_w_valid_o  = q_w_valid_q;
  // The KCPL beat is built in KCplAw and registered: every input of the record is
  // final there (a slot reports done or failed only while busy, so with all slots idle
  // in the last KRun or KFinalWait cycle, the last report was counted in that cycle).
  logic [DataWidth-1:0] cpl_beat_q;
  logic [StrbWidth-1:0] cpl_strb_q;
  always_ff @(posedge clk_i) begin : cpl_beat_ff
    if (state_q == KCplAw) cpl_beat_q <= DataWidth'(kcpl) << {cpl_addr_q[5:0], 3'b000};
    if (state_q == KCplAw) begin
      cpl_strb_q <= flush_d ? '0 : StrbWidth'({32{1'b1}}) << cpl_addr_q[5:0];
    end else if (flush_d) begin
      cpl_strb_q <= '0;
    end
  end
  assign q_w_data_o   = cpl_beat_q;
  assign q_w_strb_o   = cpl_strb_q;

  // Control state: asynchronous reset; ring indices, the descriptor, counts and
  // addresses: synchronous (docs/device.md 2.2).
  always_ff @(posedge clk_i or negedge rst_ni) begin : ctrl_ff
    if (!rst_ni) begin
      state_q   <= KIdle;
      flush_q   <= 1'b0;
      failed_q  <= 1'b0;
    end else begin
      state_q   <= state_d;
      flush_q   <= flush_d;
      failed_q  <= failed_d;
    end
  end
  // Deliberately synchronous: rst_ni is also the asynchronous reset of control state.
  /* verilator lint_off SYNCASYNCNET */
  always_ff @(posedge clk_i) begin : data_ff
    if (!rst_ni) begin
      head_q    <= '0;
      tail_q    <= '0;
      desc_q    <= '0;
      status_q  <= '0;
      err_q     <= '0;
      next_i_q  <= '0;
      done_q    <= '0;
      cur_a_q   <= '0;
      cur_b_q   <= '0;
      cur_c_q   <= '0;
      disp_q    <= '0;
      fail_va_q <= '0;
    end else begin
      head_q    <= head_d;
      tail_q    <= tail_d;
      desc_q    <= desc_d;
      status_q  <= status_d;
      err_q     <= err_d;
      next_i_q  <= next_i_d;
      done_q    <= done_d;
      cur_a_q   <= cur_a_d;
      cur_b_q   <= cur_b_d;
      cur_c_q   <= cur_c_d;
      disp_q    <= disp_d;
      fail_va_q <= fail_va_d;
    end
  end
  /* verilator lint_on SYNCASYNCNET */

  // ---- assertions
`ifndef SYNTHESIS
  a_state_known: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(state_q));
  a_head_in_ring: assert property (@(posedge clk_i) disable iff (!rst_ni)
      kq_ring_ok |-> (head_q & ~kq_mask) == '0);
  a_tail_in_ring: assert property (@(posedge clk_i) disable iff (!rst_ni)
      kcq_ring_ok |-> (tail_q & ~kcq_mask) == '0);
  a_r_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) q_r_valid_i |-> state_q == KFetchWait);
  a_b_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) q_b_valid_i |-> state_q == KCplB);
  a_group_in_range: assert property (@(posedge clk_i) disable iff (!rst_ni)
      dispatch |-> group_n_q == group_n && group_n_q >= 5'd1 && 32'(group_n_q) <= remaining);
  a_no_tr_x: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(tr_req_valid_o));
`endif

endmodule
