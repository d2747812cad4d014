// MMU: TLB + page-table walker + replayable faults (docs/device.md 6, 7).
//
// Requesters (the compute unit's slots) present one translation at a time on a shared
// port; each slot has at most one request in the MMU. A request is looked up in the TLB
// in the cycle it is accepted (stage A; the TLB registers its answer) and decided in the
// next (stage B): a hit that passes the permission check is answered in the cycle after
// that. Anything else goes to the walk FIFO; the walker serves it in order. A walk that
// faults leaves its slot stalled: the fault writer puts a FAULT record in the
// fault-queue ring (waiting while the ring is full or disabled, never dropping) and
// raises cause FAULT; the slot then waits for its REPLAY: RETRY queues a new walk, ABORT
// answers the requester with an abort.
//
// Answers leave through one registered port, one per cycle. Stage B always proceeds; a
// walk result waits in the walker while stage B decides, a REPLAY waits for both. A
// waiting walk result or REPLAY holds new requests back (stage A accepts nothing), so
// each waits at most one cycle.
module npu_mmu #(
  parameter int unsigned DataWidth  = 512,
  parameter int unsigned DevMemMiB  = 256,
  parameter int unsigned NumAsids   = 16,
  parameter int unsigned TlbEntries = 32,
  parameter int unsigned Slots      = 4,
  localparam int unsigned SlotW     = Slots > 1 ? $clog2(Slots) : 1,
  localparam int unsigned StrbWidth = DataWidth / 8,
  localparam int unsigned OffBits   = $clog2(StrbWidth)
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  input  logic                 soft_reset_i,
  input  logic                 mmu_en_i,
  input  logic                 fq_en_i,
  input  logic [16*32-1:0]     ptroot_i,
  input  logic                 hang_i,
  input  logic                 errinj_armed_i,
  output logic                 errinj_consume_o,
  // fault queue ring
  input  logic [63:0]          fq_base_i,
  input  logic [4:0]           fq_size_log2_i,
  input  logic [15:0]          fq_head_i,
  output logic [15:0]          fq_tail_o,
  output logic                 fault_irq_o,
  output logic                 faults_pending_o,
  output logic                 dev_err_o,
  // translation port
  input  logic                 tr_req_valid_i,
  output logic                 tr_req_ready_o,
  input  logic [SlotW-1:0]     tr_req_slot_i,
  input  logic [15:0]          tr_req_asid_i,
  input  logic [63:0]          tr_req_va_i,
  input  logic                 tr_req_write_i,
  output logic                 tr_rsp_valid_o,
  output logic [SlotW-1:0]     tr_rsp_slot_o,
  output logic                 tr_rsp_abort_o,
  output logic [40:0]          tr_rsp_pa_o,
  // command queue
  input  logic                 inval_valid_i,
  output logic                 inval_ready_o,
  input  logic [1:0]           inval_scope_i,
  input  logic [15:0]          inval_asid_i,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [63:0]          inval_va_i,     // RANGE compares VA bits 38:12 only
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [31:0]          inval_pages_i,
  input  logic                 replay_valid_i,
  output logic                 replay_ready_o,
  input  logic [15:0]          replay_reqid_i,
  input  logic                 replay_abort_i,
  output logic                 stale_walk_o,
  output logic                 busy_o,
  // performance events
  output logic                 tlb_hit_o,
  output logic                 tlb_miss_o,
  output logic                 walk_start_o,
  output logic                 walk_busy_o,
  output logic                 replay_o,
  // device port (walker)
  output logic                 d_ar_valid_o,
  input  logic                 d_ar_ready_i,
  output logic [63:0]          d_ar_addr_o,
  input  logic                 d_r_valid_i,
  input  logic [DataWidth-1:0] d_r_data_i,
  input  logic [1:0]           d_r_resp_i,
  output logic                 d_aw_valid_o,
  input  logic                 d_aw_ready_i,
  output logic [63:0]          d_aw_addr_o,
  output logic                 d_w_valid_o,
  input  logic                 d_w_ready_i,
  output logic [DataWidth-1:0] d_w_data_o,
  output logic [StrbWidth-1:0] d_w_strb_o,
  input  logic                 d_b_valid_i,
  input  logic [1:0]           d_b_resp_i,
  output logic                 d_lock_req_o,
  input  logic                 d_lock_ok_i,
  // host port (fault records)
  output logic                 h_aw_valid_o,
  input  logic                 h_aw_ready_i,
  output logic [63:0]          h_aw_addr_o,
  output logic                 h_w_valid_o,
  input  logic                 h_w_ready_i,
  output logic [DataWidth-1:0] h_w_data_o,
  output logic [StrbWidth-1:0] h_w_strb_o,
  input  logic                 h_b_valid_i,
  input  logic [1:0]           h_b_resp_i
);

  localparam int unsigned FifoW   = SlotW + 1;  // depth 2^SlotW >= Slots, plus wrap bit

  // Where each slot's request is.
  typedef enum logic [1:0] { SlIdle, SlWalk, SlFault, SlReplay } slot_e;

  slot_e       slot_d [Slots];
  slot_e       slot_q [Slots];
  logic [15:0] req_asid_q [Slots];
  logic [63:0] req_va_q   [Slots];
  logic        req_write_q [Slots];
  logic [11:0] f_cause_q [Slots];
  logic [1:0]  f_level_q [Slots];
  logic [63:0] f_pte_q   [Slots];

  // ---------------------------------------------------------------- TLB lookup
  // Stage A registers what stage B needs besides the TLB's answer.
  logic               lu_hit, lu_super, lu_ok, canonical;
  logic [28:0]        lu_ppn;
  logic               accept;
  logic               l_valid_q;
  logic [SlotW-1:0]   l_slot_q;
  logic [20:0]        l_off_q;
  assign canonical = tr_req_va_i[63:39] == {25{tr_req_va_i[38]}};

  // ---------------------------------------------------------------- walker
  logic             ptw_res, ptw_pending, ptw_take, ptw_fault, ptw_ready, ptw_stale;
  logic [SlotW-1:0] ptw_tag;
  logic [15:0]      ptw_asid;
  logic [38:0]      ptw_va;
  logic [11:0]      ptw_cause;
  logic [1:0]       ptw_level;
  logic [63:0]      ptw_pte;

  // Walk FIFO of slot numbers.
  logic [SlotW-1:0] wq_mem [2**SlotW];
  logic [FifoW-1:0] wq_wr_d, wq_wr_q, wq_rd_d, wq_rd_q;
  logic             wq_push, wq_empty;
  logic [SlotW-1:0] wq_push_slot, wq_head;
  assign wq_empty = wq_wr_q == wq_rd_q;
  assign wq_head  = wq_mem[wq_rd_q[SlotW-1:0]];

  // ---------------------------------------------------------------- replay
  // The REPLAY's requester ID is checked a cycle ahead: the command queue shows it (its
  // decoded command) at least one cycle before it raises replay_valid_i (a_reqid_early).
  logic             replay_fire, replay_hit, replay_id_ok_q;
  logic [SlotW-1:0] replay_slot;
  assign replay_slot = replay_reqid_i[SlotW-1:0];
  assign replay_hit  = replay_id_ok_q && slot_q[replay_slot] == SlReplay;

  // One answer per cycle: stage B > walk result > replay; a waiting walk result or
  // replay holds stage A. (The command queue never shows an INVAL and a REPLAY at once,
  // so a pending result blocks a REPLAY exactly when it would be taken.)
  assign ptw_take       = ptw_res && !l_valid_q;
  assign replay_ready_o = !ptw_pending && !l_valid_q;
  assign replay_fire    = replay_valid_i && replay_ready_o;
  assign tr_req_ready_o = !ptw_pending && !replay_valid_i && !soft_reset_i;
  assign accept         = tr_req_valid_i && tr_req_ready_o;
  assign inval_ready_o  = 1'b1;

  // ---------------------------------------------------------------- fault writer
  typedef enum logic [2:0] { FwIdle, FwAw, FwW, FwB, FwError } fw_e;
  fw_e              fw_d, fw_q;
  logic [SlotW-1:0] fq_mem [2**SlotW];
  logic [FifoW-1:0] fq_wr_d, fq_wr_q, fq_rd_d, fq_rd_q;
  logic [15:0]      tail_d, tail_q, fq_mask;
  logic [31:0]      seq_d, seq_q;
  logic             fq_ring_ok, fq_full, fw_flush_d, fw_flush_q;
  logic [SlotW-1:0] fw_slot, fw_slot_q;
  logic [63:0]      fw_addr, fw_addr_q;
  logic [255:0]     record;
  logic             fault_written;
  assign fq_mask    = 16'((32'd1 << fq_size_log2_i) - 1);
  assign fq_ring_ok = fq_size_log2_i >= 5'd1 && fq_size_log2_i <= 5'd16;
  assign fq_full    = ((tail_q + 16'd1) & fq_mask) == (fq_head_i & fq_mask);
  assign fw_slot    = fq_mem[fq_rd_q[SlotW-1:0]];
  assign fw_addr    = fq_base_i + {43'd0, tail_q & fq_mask, 5'd0};
  // The record's slot and address are registered when the write starts (FwIdle -> FwAw),
  // so the AW and W payloads come from registers and hold until taken.
  always_comb begin : fault_record
    record          = '0;
    record[11:0]    = f_cause_q[fw_slot_q];
    record[12]      = req_write_q[fw_slot_q];
    record[15:14]   = f_level_q[fw_slot_q];
    record[31:16]   = req_asid_q[fw_slot_q];
    record[47:32]   = {8'd1, 8'(fw_slot_q)};
    record[95:64]   = seq_q;
    record[191:128] = req_va_q[fw_slot_q];
    record[255:192] = f_pte_q[fw_slot_q];
  end

  always_comb begin : fault_writer
    fw_d            = fw_q;
    fq_rd_d         = fq_rd_q;
    tail_d          = tail_q;
    seq_d           = seq_q;
    fw_flush_d      = fw_flush_q || soft_reset_i;
    fault_irq_o     = 1'b0;
    fault_written = 1'b0;
    unique case (fw_q)
      FwIdle: begin
        if (fq_wr_q != fq_rd_q && fq_en_i && fq_ring_ok && !fq_full && !soft_reset_i) fw_d = FwAw;
      end
      FwAw: if (h_aw_ready_i) fw_d = FwW;
      FwW:  if (h_w_ready_i) fw_d = FwB;
      FwB: begin
        if (h_b_valid_i) begin
          if (fw_flush_q) begin
            fw_d = FwIdle;
          end else if (h_b_resp_i != 2'b00) begin
            fw_d = FwError;
          end else begin
            fq_rd_d         = fq_rd_q + 1'b1;
            tail_d          = (tail_q + 16'd1) & fq_mask;
            seq_d           = seq_q + 32'd1;
            fault_irq_o     = 1'b1;
            fault_written = 1'b1;
            fw_d            = FwIdle;
          end
        end
      end
      FwError: ;
      default: fw_d = FwIdle;
    endcase
    if (fw_q == FwError && soft_reset_i) fw_d = FwIdle;
    if (fw_d == FwIdle || fw_d == FwError) fw_flush_d = 1'b0;
    if (soft_reset_i) begin
      fq_rd_d = '0;
      tail_d  = '0;
      seq_d   = '0;
    end
  end

  assign h_aw_valid_o = fw_q == FwAw;
  assign h_aw_addr_o  = {fw_addr_q[63:OffBits], {OffBits{1'b0}}};
  assign h_w_valid_o  = fw_q == FwW;
  // The W beat is built in FwAw and registered (the record's inputs hold until the
  // write's response: its slot stays stalled, the sequence number moves in FwB).
  logic [DataWidth-1:0] fw_beat_q;
  always_ff @(posedge clk_i) begin : fw_beat_ff
    if (fw_q == FwAw) fw_beat_q <= DataWidth'(record) << {fw_addr_q[OffBits-1:0], 3'b000};
  end
  assign h_w_data_o   = fw_beat_q;
  assign h_w_strb_o   = fw_flush_q ? '0 : StrbWidth'({32{1'b1}}) << fw_addr_q[OffBits-1:0];
  assign fq_tail_o    = tail_q;
  assign dev_err_o    = fw_q == FwError;

  // ---------------------------------------------------------------- slots and queues
  logic             rsp_valid_d, rsp_valid_q, rsp_abort_d, rsp_abort_q;
  logic [SlotW-1:0] rsp_slot_d, rsp_slot_q;
  logic [40:0]      rsp_pa_d, rsp_pa_q;
  logic             fill, fq_push, drop;

  // The events that change a slot: stage B's miss, a walk result taken, a REPLAY (these
  // three are exclusive by the ready rules above) and a written fault record (its slot
  // waits in SlFault, so no other event names it).
  logic b_hit, b_miss, w_ok, w_fault, r_abort, r_retry;
  assign b_hit   = l_valid_q && lu_ok;
  assign b_miss  = l_valid_q && !lu_ok;
  assign w_ok    = ptw_take && !ptw_fault;
  assign w_fault = ptw_take && ptw_fault;
  assign r_abort = replay_fire && replay_hit && replay_abort_i;
  assign r_retry = replay_fire && replay_hit && !replay_abort_i;

  always_comb begin : slots
    logic to_walk, to_idle, to_fault, to_replay;
    for (int unsigned s = 0; s < Slots; s++) begin
      to_walk   = b_miss && l_slot_q == SlotW'(s) || r_retry && replay_slot == SlotW'(s);
      to_idle   = w_ok && ptw_tag == SlotW'(s) || r_abort && replay_slot == SlotW'(s);
      to_fault  = w_fault && ptw_tag == SlotW'(s);
      to_replay = fault_written && fw_slot_q == SlotW'(s);
      slot_d[s] = soft_reset_i ? SlIdle
                : to_walk      ? SlWalk
                : to_idle      ? SlIdle
                : to_fault     ? SlFault
                : to_replay    ? SlReplay : slot_q[s];
    end
    replay_o     = replay_fire;
    tlb_hit_o    = b_hit && !soft_reset_i;
    tlb_miss_o   = b_miss && !soft_reset_i;
    drop         = l_valid_q && lu_hit && !lu_ok;
    fill         = w_ok;  // the walker never shows a result during an INVAL
    fq_push      = w_fault;
    wq_push      = b_miss || r_retry;
    wq_push_slot = l_valid_q ? l_slot_q : replay_slot;
    wq_wr_d      = soft_reset_i ? '0 : wq_wr_q + FifoW'(wq_push);
    wq_rd_d      = soft_reset_i ? '0 : wq_rd_q + FifoW'(ptw_ready && !wq_empty);
    fq_wr_d      = soft_reset_i ? '0 : fq_wr_q + FifoW'(fq_push);
    // One answer per cycle; its slot and PA are loaded whether or not there is one.
    rsp_valid_d  = (b_hit || w_ok || r_abort) && !soft_reset_i;
    rsp_abort_d  = r_abort;
    rsp_slot_d   = l_valid_q ? l_slot_q : ptw_take ? ptw_tag : replay_slot;
    rsp_pa_d     = l_valid_q ? (lu_super ? {lu_ppn[28:9], l_off_q} : {lu_ppn, l_off_q[11:0]})
                 : ptw_level == 2'd1 ? {ptw_pte[38:19], ptw_va[20:0]}
                 : {ptw_pte[38:10], ptw_va[11:0]};
  end

  npu_tlb #(
    .Entries(TlbEntries)
  ) u_tlb (
    .clk_i,
    .rst_ni,
    .lu_asid_i     (tr_req_asid_i),
    .lu_vpn_i      (tr_req_va_i[38:12]),
    .lu_write_i    (tr_req_write_i),
    .lu_check_i    (canonical && mmu_en_i && int'(tr_req_asid_i) < NumAsids),
    .lu_hit_o      (lu_hit),
    .lu_ok_o       (lu_ok),
    .lu_super_o    (lu_super),
    .lu_ppn_o      (lu_ppn),
    .drop_i        (drop),
    .fill_i        (fill && !soft_reset_i),
    .fill_asid_i   (ptw_asid),
    .fill_vpn_i    (ptw_va[38:12]),
    .fill_super_i  (ptw_level == 2'd1),
    .fill_ppn_i    (ptw_pte[38:10]),
    .fill_r_i      (ptw_pte[npu_reg_pkg::PTE_BIT_R]),
    .fill_w_i      (ptw_pte[npu_reg_pkg::PTE_BIT_W]),
    .fill_d_i      (ptw_pte[npu_reg_pkg::PTE_BIT_D]),
    .inval_i       (inval_valid_i),
    .inval_scope_i (inval_scope_i),
    .inval_asid_i  (inval_asid_i),
    .inval_vpn_i   (inval_va_i[38:12]),
    .inval_pages_i (inval_pages_i),
    .flush_i       (soft_reset_i)
  );

  npu_ptw #(
    .DataWidth (DataWidth),
    .DevMemMiB (DevMemMiB),
    .NumAsids  (NumAsids),
    .TagWidth  (SlotW)
  ) u_ptw (
    .clk_i,
    .rst_ni,
    .flush_i          (soft_reset_i),
    .mmu_en_i,
    .ptroot_i,
    .hang_i,
    .errinj_armed_i,
    .errinj_consume_o,
    .inval_i          (inval_valid_i),
    .stale_o          (ptw_stale),
    .busy_o           (walk_busy_o),
    .walk_start_o,
    .walk_valid_i     (!wq_empty),
    .walk_ready_o     (ptw_ready),
    .walk_tag_i       (wq_head),
    .walk_asid_i      (req_asid_q[wq_head]),
    .walk_va_i        (req_va_q[wq_head]),
    .walk_write_i     (req_write_q[wq_head]),
    .res_valid_o      (ptw_res),
    .res_ready_i      (!l_valid_q),
    .res_pending_o    (ptw_pending),
    .res_tag_o        (ptw_tag),
    .res_asid_o       (ptw_asid),
    .res_va_o         (ptw_va),
    .res_fault_o      (ptw_fault),
    .res_cause_o      (ptw_cause),
    .res_level_o      (ptw_level),
    .res_pte_o        (ptw_pte),
    .ar_valid_o       (d_ar_valid_o),
    .ar_ready_i       (d_ar_ready_i),
    .ar_addr_o        (d_ar_addr_o),
    .r_valid_i        (d_r_valid_i),
    .r_data_i         (d_r_data_i),
    .r_resp_i         (d_r_resp_i),
    .aw_valid_o       (d_aw_valid_o),
    .aw_ready_i       (d_aw_ready_i),
    .aw_addr_o        (d_aw_addr_o),
    .w_valid_o        (d_w_valid_o),
    .w_ready_i        (d_w_ready_i),
    .w_data_o         (d_w_data_o),
    .w_strb_o         (d_w_strb_o),
    .b_valid_i        (d_b_valid_i),
    .b_resp_i         (d_b_resp_i),
    .lock_req_o       (d_lock_req_o),
    .lock_ok_i        (d_lock_ok_i)
  );

  assign stale_walk_o     = ptw_stale;
  assign tr_rsp_valid_o   = rsp_valid_q;
  assign tr_rsp_slot_o    = rsp_slot_q;
  assign tr_rsp_abort_o   = rsp_abort_q;
  assign tr_rsp_pa_o      = rsp_pa_q;

  logic [Slots-1:0] slot_idle;
  always_comb begin : pending
    faults_pending_o = 1'b0;
    for (int unsigned s = 0; s < Slots; s++) slot_idle[s] = slot_q[s] == SlIdle;
    busy_o           = walk_busy_o || !wq_empty || fw_q != FwIdle && fw_q != FwError || rsp_valid_q
                       || l_valid_q;
    for (int unsigned s = 0; s < Slots; s++) begin
      if (slot_q[s] == SlFault || slot_q[s] == SlReplay) faults_pending_o = 1'b1;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      for (int unsigned s = 0; s < Slots; s++) slot_q[s] <= SlIdle;
      wq_wr_q     <= '0;
      wq_rd_q     <= '0;
      fq_wr_q     <= '0;
      fq_rd_q     <= '0;
      fw_q        <= FwIdle;
      fw_flush_q  <= 1'b0;
      tail_q      <= '0;
      seq_q       <= '0;
      rsp_valid_q <= 1'b0;
      l_valid_q   <= 1'b0;
    end else begin
      for (int unsigned s = 0; s < Slots; s++) slot_q[s] <= slot_d[s];
      wq_wr_q     <= wq_wr_d;
      wq_rd_q     <= wq_rd_d;
      fq_wr_q     <= fq_wr_d;
      fq_rd_q     <= fq_rd_d;
      fw_q        <= fw_d;
      fw_flush_q  <= fw_flush_d;
      tail_q      <= tail_d;
      seq_q       <= seq_d;
      rsp_valid_q <= rsp_valid_d;
      l_valid_q   <= accept;
    end
  end

  // Payloads, read only under a valid flag: the answer (under rsp_valid_q), stage B's
  // request (under l_valid_q), the requests and faults (while their slot is inside).
  always_ff @(posedge clk_i) begin : payload_ff
    rsp_slot_q  <= rsp_slot_d;
    rsp_abort_q <= rsp_abort_d;
    replay_id_ok_q <= replay_reqid_i[15:8] == 8'd1 && int'(replay_reqid_i[7:0]) < Slots;
    rsp_pa_q    <= rsp_pa_d;
    l_slot_q   <= tr_req_slot_i;
    l_off_q    <= tr_req_va_i[20:0];
    if (accept) begin
      req_asid_q[tr_req_slot_i]  <= tr_req_asid_i;
      req_va_q[tr_req_slot_i]    <= tr_req_va_i;
      req_write_q[tr_req_slot_i] <= tr_req_write_i;
    end
    if (fw_q == FwIdle) begin
      fw_slot_q <= fw_slot;
      fw_addr_q <= fw_addr;
    end
    if (wq_push) wq_mem[wq_wr_q[SlotW-1:0]] <= wq_push_slot;
    if (fq_push) begin
      fq_mem[fq_wr_q[SlotW-1:0]] <= ptw_tag;
      f_cause_q[ptw_tag]         <= ptw_cause;
      f_level_q[ptw_tag]         <= ptw_level;
      f_pte_q[ptw_tag]           <= ptw_pte;
    end
  end

  // ---- assertions
`ifndef SYNTHESIS
  a_req_from_idle_slot: assert property (@(posedge clk_i) disable iff (!rst_ni)
      accept |-> slot_idle[tr_req_slot_i]);
  a_req_known: assert property (@(posedge clk_i) disable iff (!rst_ni)
      tr_req_valid_i |-> !$isunknown({tr_req_slot_i, tr_req_asid_i, tr_req_va_i, tr_req_write_i}));
  a_wq_in_range: assert property (@(posedge clk_i) disable iff (!rst_ni)
      FifoW'(wq_wr_q - wq_rd_q) <= FifoW'(Slots));
  a_fq_in_range: assert property (@(posedge clk_i) disable iff (!rst_ni)
      FifoW'(fq_wr_q - fq_rd_q) <= FifoW'(Slots));
  a_inval_or_replay: assert property (@(posedge clk_i) disable iff (!rst_ni)
      !(inval_valid_i && replay_valid_i));
  a_reqid_early: assert property (@(posedge clk_i) disable iff (!rst_ni)
      replay_valid_i |-> replay_reqid_i == $past(replay_reqid_i));
  a_tail_in_ring: assert property (@(posedge clk_i) disable iff (!rst_ni)
      fq_ring_ok |-> (tail_q & ~fq_mask) == '0);
`endif

endmodule
