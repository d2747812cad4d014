// Page-table walker: Sv39 over device memory, with the hardware A/D update
// (docs/device.md 6.2, 6.4, 6.5).
//
// One walk at a time. Every PTE read is one beat on the device port (the PTE sits at
// its byte lane); the response is registered before it is checked. A leaf whose A (or,
// for a write, D) is clear is updated atomically: the walker takes the device port's
// write lock, waits until no other write is open, re-reads the PTE, re-checks it and
// writes it back with A/D set. An INVAL during a walk marks it stale: the walk finishes
// its outstanding access, drops its result and starts again from the root. A soft reset
// (`flush_i`) lets the outstanding access finish, then idles without a result (a walk
// that ends in the reset's own cycle too).
//
// A walk's result is registered: it waits in StDone until the MMU takes it
// (`res_ready_i`). An INVAL before that makes the walk stale like any walk in flight:
// the result is dropped and the walk starts again from the root.
//
// A two-entry walk cache keeps the last level-1 and level-0 table addresses found (per
// ASID and VA prefix), so walks of neighbouring pages start lower and cost one or two
// PTE reads instead of three. Any INVAL and any soft reset empty it.
module npu_ptw #(
  parameter int unsigned DataWidth = 512,
  parameter int unsigned DevMemMiB = 256,
  parameter int unsigned NumAsids  = 16,
  parameter int unsigned TagWidth  = 2,
  localparam int unsigned StrbWidth = DataWidth / 8,
  localparam int unsigned OffBits   = $clog2(StrbWidth)
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  input  logic                 flush_i,
  input  logic                 mmu_en_i,
  input  logic [16*32-1:0]     ptroot_i,
  input  logic                 hang_i,
  input  logic                 errinj_armed_i,
  output logic                 errinj_consume_o,
  input  logic                 inval_i,
  output logic                 stale_o,
  output logic                 busy_o,
  output logic                 walk_start_o,
  // walk request; the tag comes back with the result
  input  logic                 walk_valid_i,
  output logic                 walk_ready_o,
  input  logic [TagWidth-1:0]  walk_tag_i,
  input  logic [15:0]          walk_asid_i,
  input  logic [63:0]          walk_va_i,
  input  logic                 walk_write_i,
  // result, held until taken: a fault, or the leaf PTE as written back
  output logic                 res_valid_o,
  input  logic                 res_ready_i,
  output logic                 res_pending_o,  // a result waits (registered; an INVAL may still drop it)
  output logic [TagWidth-1:0]  res_tag_o,
  output logic [15:0]          res_asid_o,
  output logic [38:0]          res_va_o,      // the translated bits
  output logic                 res_fault_o,
  output logic [11:0]          res_cause_o,
  output logic [1:0]           res_level_o,
  output logic [63:0]          res_pte_o,
  // device-port requester (1-beat bursts)
  output logic                 ar_valid_o,
  input  logic                 ar_ready_i,
  output logic [63:0]          ar_addr_o,
  input  logic                 r_valid_i,
  input  logic [DataWidth-1:0] r_data_i,
  input  logic [1:0]           r_resp_i,
  output logic                 aw_valid_o,
  input  logic                 aw_ready_i,
  output logic [63:0]          aw_addr_o,
  output logic                 w_valid_o,
  input  logic                 w_ready_i,
  output logic [DataWidth-1:0] w_data_o,
  output logic [StrbWidth-1:0] w_strb_o,
  input  logic                 b_valid_i,
  input  logic [1:0]           b_resp_i,
  output logic                 lock_req_o,
  input  logic                 lock_ok_i
);

  localparam logic [40:0] DevMemBytes = 41'(DevMemMiB) << 20;
  localparam logic [11:0] CauseAccessR = 12'(npu_reg_pkg::FAULT_CAUSE_READ_ACCESS);
  localparam logic [11:0] CauseAccessW = 12'(npu_reg_pkg::FAULT_CAUSE_WRITE_ACCESS);
  localparam logic [11:0] CausePageR   = 12'(npu_reg_pkg::FAULT_CAUSE_READ_PAGE);
  localparam logic [11:0] CausePageW   = 12'(npu_reg_pkg::FAULT_CAUSE_WRITE_PAGE);
  localparam logic [11:0] CauseAsid    = 12'(npu_reg_pkg::FAULT_CAUSE_ASID_INVALID);
  localparam int unsigned BitV = npu_reg_pkg::PTE_BIT_V;
  localparam int unsigned BitR = npu_reg_pkg::PTE_BIT_R;
  localparam int unsigned BitW = npu_reg_pkg::PTE_BIT_W;
  localparam int unsigned BitX = npu_reg_pkg::PTE_BIT_X;
  localparam int unsigned BitA = npu_reg_pkg::PTE_BIT_A;
  localparam int unsigned BitD = npu_reg_pkg::PTE_BIT_D;

  typedef enum logic [3:0] {
    StIdle, StStart, StStartFault, StRead, StReadWait, StCheck, StLock, StWrite, StWriteData,
    StWriteResp, StDone
  } state_e;

  state_e              state_d, state_q;
  logic [TagWidth-1:0] tag_d, tag_q;
  logic [15:0]         asid_d, asid_q;
  logic [63:0]         va_d, va_q, pte_d, pte_q;
  logic                write_d, write_q, rd_err_d, rd_err_q, stale_d, stale_q, flush_d, flush_q;
  logic                locked_d, locked_q;
  logic [1:0]          level_d, level_q;
  logic                fault_d, fault_q;
  logic [11:0]         cause_d, cause_q;
  logic [28:0]         table_d, table_q;  // the current table's device-physical address >> 12
  logic                ar_valid_q, aw_valid_q, w_valid_q, lock_req_q, done_q, idle_q;

  // ---------------------------------------------------------------- the current PTE
  logic [8:0]  vpn_i;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [40:0] pte_addr;  // bits 2:0 are 0
  /* verilator lint_on UNUSEDSIGNAL */
  logic [11:0] page_fault, access_fault;
  always_comb begin : pte_view
    unique case (level_q)
      2'd2:    vpn_i = va_q[38:30];
      2'd1:    vpn_i = va_q[29:21];
      default: vpn_i = va_q[20:12];
    endcase
  end
  assign pte_addr     = {table_q, vpn_i, 3'b000};  // a table is 4 KiB aligned: no adder
  assign page_fault   = write_q ? CausePageW : CausePageR;
  assign access_fault = write_q ? CauseAccessW : CauseAccessR;
  logic [63:0] pte_updated;
  assign pte_updated = pte_q | (64'd1 << BitA) | (64'(write_q) << BitD);

  // ---------------------------------------------------------------- PTE checks
  // Steps 5-8 of the walk (docs/device.md 6.2) are evaluated on the PTE lane of the R
  // beat as it arrives and registered with the PTE; StCheck only orders them.
  logic [63:0] pte_in;
  logic [40:0] target_in;  // PPN << 12, meaningful while PPN < 2^29 (ppn_small)
  logic [40:0] page_bytes;
  logic        ppn_small;
  logic        ck_bad_d, ck_ptr_d, ck_next_ok_d, ck_leaf_fault_d, ck_page_ok_d, ck_update_d;
  logic        ck_bad_q, ck_ptr_q, ck_leaf_fault_q, ck_page_ok_q;
  logic        ck_descend_q, ck_upd_go_q;  // StCheck descends / updates A/D (without a read error)
  assign pte_in     = r_data_i[{pte_addr[OffBits-1:3], 6'd0} +: 64];
  assign target_in  = {pte_in[38:10], 12'd0};
  assign ppn_small  = pte_in[53:39] == '0;
  assign page_bytes = level_q == 2'd1 ? 41'h20_0000 : 41'h1000;
  // V = 0, W without R, or reserved bits set (step 5)
  assign ck_bad_d        = !pte_in[BitV] || (pte_in[BitW] && !pte_in[BitR]) || pte_in[63:54] != '0;
  assign ck_ptr_d        = !pte_in[BitR] && !pte_in[BitW] && !pte_in[BitX];
  // a pointer's next table lies wholly in device memory (step 6)
  assign ck_next_ok_d    = ppn_small && target_in + 41'h1000 <= DevMemBytes;
  // a leaf at level 2, a misaligned superpage, or a missing permission (step 7)
  assign ck_leaf_fault_d = level_q == 2'd2 || (level_q == 2'd1 && pte_in[18:10] != '0)
                           || (write_q ? !pte_in[BitW] : !pte_in[BitR]);
  // a leaf's page lies wholly in device memory or in the host window (an aligned page
  // with PPN in [2^28, 2^29) always does) (step 7)
  assign ck_page_ok_d    = ppn_small && (target_in[40] || target_in + page_bytes <= DevMemBytes);
  assign ck_update_d     = !pte_in[BitA] || (write_q && !pte_in[BitD]);  // step 8

  // Root table of the walk's ASID. The StStart checks are prepared off its path, in
  // two registered steps: for every ASID whether its PTROOT is valid and whether its
  // root table lies in device memory (with a copy of the root), then for the walk's
  // ASID and VA (from asid_d/va_d, so ready in StStart). A walk thus sees PTROOT two
  // cycles late, but whole.
  logic [15:0] root_valid_q, root_good_q;  // all 16 PTROOT elements: no X index
  logic [27:0] root_tab_q [16];
  logic [27:0] start_tab_q;
  logic        start_asid_q, start_good_q, start_canon_q;
  logic        asid_ok, start_ok;
  assign asid_ok  = mmu_en_i && start_asid_q;
  // every StStart check passes
  assign start_ok = mmu_en_i && start_good_q && !errinj_armed_i;
  always_ff @(posedge clk_i) begin : root_ff
    logic asid_small, va_canon;
    for (int unsigned a = 0; a < 16; a++) begin
      root_valid_q[a] <= ptroot_i[a*32 + npu_reg_pkg::REG_PTROOT_VALID_LSB];
      root_good_q[a]  <= ptroot_i[a*32 + npu_reg_pkg::REG_PTROOT_VALID_LSB]
                         && 41'({ptroot_i[a*32 +: 28], 12'd0}) + 41'h1000 <= DevMemBytes;
      root_tab_q[a]   <= ptroot_i[a*32 +: 28];
    end
    asid_small    = int'(asid_d) < NumAsids;
    va_canon      = va_d[63:39] == {25{va_d[38]}};
    start_asid_q  <= asid_small && root_valid_q[asid_d[3:0]];
    start_good_q  <= asid_small && root_good_q[asid_d[3:0]] && va_canon;
    start_canon_q <= va_canon;
    start_tab_q   <= root_tab_q[asid_d[3:0]];
  end

  // ---------------------------------------------------------------- walk cache
  // c1: the level-1 table of (ASID, VA[38:30]); c0: the level-0 table of (ASID, VA[38:21]).
  logic        c1_valid_d, c1_valid_q, c0_valid_d, c0_valid_q;
  logic [15:0] c1_asid_q, c0_asid_q;
  logic [8:0]  c1_tag_q;
  logic [17:0] c0_tag_q;
  logic [28:0] c1_table_q, c0_table_q;
  logic        c1_fill, c0_fill, c1_hit, c0_hit;
  // Whether an entry's (ASID, prefix) is the walk's: compared when the walk is accepted
  // (off the StStart path) and set when this walk fills the entry. An entry only changes
  // by this walk's fills, so this equals comparing with asid_q/va_q in StStart.
  logic        c1_match_q, c0_match_q;
  assign c1_hit = c1_valid_q && c1_match_q;
  assign c0_hit = c0_valid_q && c0_match_q;

  // ---------------------------------------------------------------- next state
  always_comb begin : next_state
    logic finish, fault;
    logic [11:0] cause;
    logic [1:0]  flevel;
    logic [63:0] fpte;
    state_d          = state_q;
    tag_d            = tag_q;
    asid_d           = asid_q;
    va_d             = va_q;
    write_d          = write_q;
    pte_d            = pte_q;
    rd_err_d         = rd_err_q;
    level_d          = level_q;
    table_d          = table_q;
    locked_d         = locked_q;
    fault_d          = fault_q;
    cause_d          = cause_q;
    // Idle, nothing is stale and nothing is left to drain (both flags clear in the first
    // idle cycle, from the registered idle flag).
    stale_d          = !idle_q && (stale_q || inval_i);
    flush_d          = !idle_q && (flush_q || flush_i);
    c1_fill          = 1'b0;
    c0_fill          = 1'b0;
    errinj_consume_o = 1'b0;
    walk_start_o     = 1'b0;
    finish           = 1'b0;
    fault            = 1'b0;
    cause            = '0;
    flevel           = level_q;
    fpte             = '0;
    // Accepting a walk (walk_ready_o holds only in StIdle, from the registered idle flag).
    if (walk_valid_i && walk_ready_o) begin
      tag_d   = walk_tag_i;
      asid_d  = walk_asid_i;
      va_d    = walk_va_i;
      write_d = walk_write_i;
      state_d = StStart;
    end
    unique case (state_q)
      StIdle: ;
      StStart: begin
        walk_start_o = 1'b1;
        level_d      = 2'd2;
        locked_d     = 1'b0;
        table_d      = 29'(start_tab_q);
        // The next state follows start_ok alone: a failed check registers its cause and
        // finishes in StStartFault, off this cycle's path (one cycle more for such walks).
        if (!start_ok) begin
          state_d          = StStartFault;
          errinj_consume_o = asid_ok && errinj_armed_i;
          if (!asid_ok)            cause_d = CauseAsid;
          else if (errinj_armed_i) cause_d = access_fault;
          else if (!start_canon_q) cause_d = page_fault;
          else                     cause_d = access_fault;  // the root table is not in memory
        end else begin
          state_d = StRead;
          if (c0_hit) begin
            level_d = 2'd0;
            table_d = c0_table_q;
          end else if (c1_hit) begin
            level_d = 2'd1;
            table_d = c1_table_q;
          end
        end
      end
      StStartFault: {finish, fault, cause, flevel} = {1'b1, 1'b1, cause_q, 2'd2};
      StRead: begin
        if (ar_ready_i) state_d = StReadWait;
      end
      StReadWait: begin
        if (r_valid_i) begin
          pte_d    = pte_in;
          rd_err_d = r_resp_i != 2'b00;
          state_d  = StCheck;
        end
      end
      StCheck: begin
        // The next state follows two registered decisions; the cause is data beside them.
        if (!rd_err_q && ck_descend_q) begin
          // Descend (under the lock, the re-read PTE changed into a pointer: release it).
          locked_d = 1'b0;
          level_d  = level_q - 2'd1;
          table_d  = pte_q[38:10];
          state_d  = StRead;
          c1_fill  = level_q == 2'd2;
          c0_fill  = level_q == 2'd1;
        end else if (!rd_err_q && ck_upd_go_q) begin
          state_d = locked_q ? StWrite : StLock;
        end else begin
          finish = 1'b1;
          fault  = 1'b1;
          fpte   = pte_q;
          if (rd_err_q) begin
            cause = access_fault;
            fpte  = '0;
          end else if (ck_bad_q) begin
            cause = page_fault;
          end else if (ck_ptr_q) begin
            cause = level_q == 2'd0 ? page_fault : access_fault;  // the next table is not in memory
          end else if (ck_leaf_fault_q) begin
            cause = page_fault;
          end else if (!ck_page_ok_q) begin
            cause = access_fault;
          end else begin
            fault = 1'b0;
          end
        end
      end
      StLock: begin
        if (lock_ok_i) begin
          locked_d = 1'b1;
          state_d  = StRead;  // re-read under the lock
        end
      end
      StWrite: begin
        if (aw_ready_i) state_d = StWriteData;
      end
      StWriteData: begin
        if (w_ready_i) state_d = StWriteResp;
      end
      StWriteResp: begin
        if (b_valid_i) begin
          finish = 1'b1;
          if (b_resp_i != 2'b00) begin
            {fault, cause, fpte} = {1'b1, access_fault, pte_q};
          end else begin
            pte_d = pte_updated;
          end
        end
      end
      StDone: begin
        // The result waits to be taken; an INVAL meanwhile makes it stale.
        if (flush_i) begin
          state_d = StIdle;
        end else if (inval_i) begin
          stale_d = 1'b0;
          state_d = StStart;
        end else if (res_ready_i) begin
          state_d = StIdle;
        end
      end
      default: state_d = StIdle;
    endcase

    // Waiting for the lock is a decision point too: a flush or INVAL ends it.
    if (state_q == StLock && (flush_q || stale_q)) finish = 1'b1;

    if (finish) begin
      locked_d = 1'b0;
      // A walk that ends in the soft reset's own cycle shows no result either: its
      // requester forgot it in that cycle.
      if (flush_q || flush_i) begin
        state_d = StIdle;
      end else if (stale_q || inval_i) begin
        stale_d = 1'b0;
        state_d = StStart;  // walk again from the root
      end else begin
        state_d = StDone;
        fault_d = fault;
        cause_d = cause;
        level_d = flevel;
        if (fault) pte_d = fpte;
      end
    end
  end

  assign walk_ready_o = idle_q && !flush_q && !flush_i && !hang_i;
  assign res_valid_o  = done_q && !inval_i;
  assign res_pending_o = done_q;
  assign res_tag_o    = tag_q;
  assign res_asid_o   = asid_q;
  assign res_va_o     = va_q[38:0];
  assign res_fault_o  = fault_q;
  assign res_cause_o  = cause_q;
  assign res_level_o  = level_q;
  assign res_pte_o    = pte_q;
  assign stale_o      = stale_q;
  assign busy_o       = !idle_q;
  // The AXI request valids and the lock request are registered: decoded from the next
  // state, they equal the decode of the current state.
  assign lock_req_o   = lock_req_q;

  assign ar_valid_o = ar_valid_q;
  assign ar_addr_o  = {23'd0, pte_addr[40:OffBits], {OffBits{1'b0}}};
  assign aw_valid_o = aw_valid_q;
  assign aw_addr_o  = ar_addr_o;
  assign w_valid_o  = w_valid_q;
  assign w_data_o   = DataWidth'(pte_updated) << {pte_addr[OffBits-1:3], 6'd0};
  assign w_strb_o   = flush_q ? '0 : StrbWidth'(8'hFF) << {pte_addr[OffBits-1:3], 3'd0};

  // The registered decodes of the next state, written out from the current state and
  // the few conditions that move it, so that they do not wait for state_d (equal to
  // decoding state_d; a_valids_decoded checks it).
  logic ar_valid_d, aw_valid_d, w_valid_d, lock_req_d, done_d, idle_d;
  always_comb begin : next_decode
    logic go_descend, go_update, fin, fin_done, to_start;
    go_descend = state_q == StCheck && !rd_err_q && ck_descend_q;
    go_update  = state_q == StCheck && !rd_err_q && !ck_descend_q && ck_upd_go_q;
    // the cases that set finish in next_state
    fin        = state_q == StStartFault
                 || state_q == StCheck && !go_descend && !go_update
                 || state_q == StLock && (flush_q || stale_q)
                 || state_q == StWriteResp && b_valid_i;
    to_start   = stale_q || inval_i;
    fin_done   = fin && !flush_q && !flush_i && !to_start;
    ar_valid_d = state_q == StStart && start_ok
                 || state_q == StRead && !ar_ready_i
                 || go_descend
                 || state_q == StLock && lock_ok_i && !flush_q && !stale_q;
    aw_valid_d = go_update && locked_q || state_q == StWrite && !aw_ready_i;
    w_valid_d  = state_q == StWrite && aw_ready_i || state_q == StWriteData && !w_ready_i;
    done_d     = fin_done
                 || state_q == StDone && !flush_i && !inval_i && !res_ready_i;
    idle_d     = fin && (flush_q || flush_i)
                 || state_q == StDone && (flush_i || !inval_i && res_ready_i)
                 || state_q == StIdle && !(walk_valid_i && walk_ready_o);
    lock_req_d = go_update && !locked_q
                 || state_q == StLock && !flush_q && !stale_q  // waits, or takes the lock
                 || locked_q && !fin && state_q != StStart && !go_descend;
  end

  // A fill from a walk that an INVAL hits in the same cycle, or that is stale, is dropped.
  always_comb begin : walk_cache
    c1_valid_d = c1_valid_q;
    c0_valid_d = c0_valid_q;
    if (c1_fill && !stale_q) c1_valid_d = 1'b1;
    if (c0_fill && !stale_q) c0_valid_d = 1'b1;
    if (inval_i || flush_i || flush_q) begin
      c1_valid_d = 1'b0;
      c0_valid_d = 1'b0;
    end
  end

  // The PTE checks are read only in StCheck, which follows their load.
  always_ff @(posedge clk_i) begin : checks_ff
    if (state_q == StReadWait) begin
      ck_bad_q        <= ck_bad_d;
      ck_ptr_q        <= ck_ptr_d;
      ck_leaf_fault_q <= ck_leaf_fault_d;
      ck_page_ok_q    <= ck_page_ok_d;
      ck_descend_q    <= !ck_bad_d && ck_ptr_d && level_q != 2'd0 && ck_next_ok_d;
      ck_upd_go_q     <= !ck_bad_d && !ck_ptr_d && !ck_leaf_fault_d && ck_page_ok_d
                         && ck_update_d;
    end
  end

  // Read only under c1_valid_q/c0_valid_q, which a fill sets together with its match.
  always_ff @(posedge clk_i) begin : walk_cache_payload
    if (walk_valid_i && walk_ready_o) begin
      c1_match_q <= c1_asid_q == walk_asid_i && c1_tag_q == walk_va_i[38:30];
      c0_match_q <= c0_asid_q == walk_asid_i && c0_tag_q == walk_va_i[38:21];
    end
    if (c1_fill) c1_match_q <= 1'b1;
    if (c0_fill) c0_match_q <= 1'b1;
    if (c1_fill) begin
      c1_asid_q  <= asid_q;
      c1_tag_q   <= va_q[38:30];
      c1_table_q <= pte_q[38:10];
    end
    if (c0_fill) begin
      c0_asid_q  <= asid_q;
      c0_tag_q   <= va_q[38:21];
      c0_table_q <= pte_q[38:10];
    end
  end

  // Control state: asynchronous reset.
  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      c1_valid_q <= 1'b0;
      c0_valid_q <= 1'b0;
      state_q    <= StIdle;
      ar_valid_q <= 1'b0;
      aw_valid_q <= 1'b0;
      w_valid_q  <= 1'b0;
      lock_req_q <= 1'b0;
      done_q     <= 1'b0;
      idle_q     <= 1'b1;
      locked_q   <= 1'b0;
      stale_q    <= 1'b0;
      flush_q    <= 1'b0;
    end else begin
      c1_valid_q <= c1_valid_d;
      c0_valid_q <= c0_valid_d;
      state_q    <= state_d;
      ar_valid_q <= ar_valid_d;
      aw_valid_q <= aw_valid_d;
      w_valid_q  <= w_valid_d;
      lock_req_q <= lock_req_d;
      done_q     <= done_d;
      idle_q     <= idle_d;
      locked_q   <= locked_d;
      stale_q    <= stale_d;
      flush_q    <= flush_d;
    end
  end

  // The walk's datapath: no reset. A walk loads tag, ASID, VA and access type when it is
  // accepted, StStart sets level and table, StReadWait the PTE and its read error, and
  // the result fields are set when the walk finishes; outputs show them only under
  // their VALIDs (res_valid_o, ar/aw/w_valid_o).
  always_ff @(posedge clk_i) begin : datapath_ff
    tag_q    <= tag_d;
    asid_q   <= asid_d;
    va_q     <= va_d;
    write_q  <= write_d;
    pte_q    <= pte_d;
    rd_err_q <= rd_err_d;
    level_q  <= level_d;
    fault_q  <= fault_d;
    cause_q  <= cause_d;
    table_q  <= table_d;
  end

  // ---- assertions
`ifndef SYNTHESIS
  a_state_known: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(state_q));
  a_r_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) r_valid_i |-> state_q == StReadWait);
  a_b_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) b_valid_i |-> state_q == StWriteResp);
  a_write_locked: assert property (@(posedge clk_i) disable iff (!rst_ni) aw_valid_o |-> locked_q);
  a_cache_match: assert property (@(posedge clk_i) disable iff (!rst_ni) state_q != StIdle |->
      (!c1_valid_q || c1_match_q == (c1_asid_q == asid_q && c1_tag_q == va_q[38:30]))
      && (!c0_valid_q || c0_match_q == (c0_asid_q == asid_q && c0_tag_q == va_q[38:21])));
  a_valids_decoded: assert property (@(posedge clk_i) disable iff (!rst_ni)
      ar_valid_q == (state_q == StRead) && aw_valid_q == (state_q == StWrite)
      && w_valid_q == (state_q == StWriteData) && lock_req_q == (state_q == StLock || locked_q)
      && done_q == (state_q == StDone) && idle_q == (state_q == StIdle));
  a_result_known: assert property (@(posedge clk_i) disable iff (!rst_ni)
      res_valid_o |-> !$isunknown({res_fault_o, res_pte_o}));
  // A soft reset forgets every requester: no result is shown after one until a new walk.
  a_flush_no_result: assert property (@(posedge clk_i) disable iff (!rst_ni)
      flush_i |=> !done_q);
`endif

endmodule
