// Command queue engine: fetches 16-byte commands from the host ring and executes them
// in order (docs/device.md §8).
//
//   INVAL   hands scope/ASID/VA/page count to the MMU and waits until it is accepted;
//   FENCE   waits until every earlier command has taken effect (`mmu_quiet_i`: no
//           invalidation pending, no stale refill in flight), writes ARG (32 bit) to the
//           IOVA ADDR, waits for the write response, then pulses the CMD interrupt if
//           FLAGS bit 0 is set;
//   REPLAY  hands the requester ID and action (retry/abort) to the MMU;
//   PTE_WRITE writes the 8-byte PTE value (ADDR) to device-physical ARG * 8 through the
//           device port and waits for the write response, so the INVAL or REPLAY after it
//           sees the new entry.
// One fetch reads a whole beat: the commands after the fetched one that lie in the same
// beat, before the ring's end and below the TAIL seen when the fetch was issued, are kept
// and executed without another fetch (a batch of REPLAYs costs one host read per beat,
// not one per command). A push (CMDQ_PUSH, npu_cmdq_push) stands in for the fetch when
// the engine reaches the pushed entry idle: its commands are taken like a fetched beat's,
// bounded the same way by the ring's end and the TAIL. HEAD advances as each command is
// read in. A command that cannot be fetched, an unknown
// opcode or scope, a misaligned FENCE address, or a failed FENCE write is a device error:
// the queue stops (ERR_INFO unit 0) until soft reset.
module npu_cmdq #(
  parameter int unsigned DataWidth = 512,
  parameter int unsigned DevMemMiB = 256,
  localparam int unsigned StrbWidth = DataWidth / 8,
  localparam int unsigned OffBits   = $clog2(StrbWidth)
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  input  logic                 soft_reset_i,
  input  logic                 enable_i,
  // ring registers
  input  logic [63:0]          base_i,
  input  logic [4:0]           size_log2_i,
  input  logic [15:0]          tail_i,
  output logic [15:0]          head_o,
  // pushed-command window (CMDQ_PUSH words, CMDQ_PUSH_COMMIT)
  input  logic [15:0]          push_we_i,
  input  logic [31:0]          push_wd_i,
  input  logic                 push_commit_i,
  input  logic [1:0]           push_count_i,
  output logic                 busy_o,
  output logic                 irq_o,
  output logic [7:0]           dev_err_code_o,
  output logic                 cmd_done_o,
  // MMU side
  output logic                 inval_valid_o,
  input  logic                 inval_ready_i,
  output logic [1:0]           inval_scope_o,
  output logic [15:0]          inval_asid_o,
  output logic [63:0]          inval_va_o,
  output logic [31:0]          inval_pages_o,
  output logic                 replay_valid_o,
  input  logic                 replay_ready_i,
  output logic [15:0]          replay_reqid_o,
  output logic                 replay_abort_o,
  output logic                 fence_start_o,  // a FENCE starts waiting (next cycle on)
  input  logic                 mmu_quiet_i,
  // host-port requester (single-beat bursts)
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
  // device-port writer (PTE_WRITE; single-beat bursts, the beat on w_data_o/w_strb_o)
  output logic                 dev_aw_valid_o,
  input  logic                 dev_aw_ready_i,
  output logic [63:0]          dev_aw_addr_o,
  output logic                 dev_w_valid_o,
  input  logic                 dev_w_ready_i,
  input  logic                 dev_b_valid_i,
  input  logic [1:0]           dev_b_resp_i
);

  if (DataWidth < 256 || (DataWidth & (DataWidth - 1)) != 0) begin : gen_bad_width
    $error("npu_cmdq needs a power-of-two DataWidth of at least 256 (two or more commands per beat)");
  end

  // Commands per data beat, and the ones a fetch may keep besides the fetched one.
  localparam int unsigned PerBeat   = DataWidth / 128;
  localparam int unsigned AheadBits = $clog2(PerBeat);
  localparam int unsigned AheadW    = (PerBeat - 1) * 128;

  localparam logic [7:0] OpInval  = 8'(npu_reg_pkg::CMD_OPCODE_INVAL);
  localparam logic [7:0] OpFence  = 8'(npu_reg_pkg::CMD_OPCODE_FENCE);
  localparam logic [7:0] OpReplay = 8'(npu_reg_pkg::CMD_OPCODE_REPLAY);
  localparam logic [7:0] OpPte    = 8'(npu_reg_pkg::CMD_OPCODE_PTE_WRITE);
  localparam logic [7:0] ErrDevWr = 8'(npu_reg_pkg::DMA_ERROR_DEV_WR);
  // PTE_WRITE's ARG (an 8-byte index) must name a PTE inside device memory.
  localparam logic [32:0] PteLimit = 33'(DevMemMiB) << 17;
  localparam logic [7:0] ErrFetch = 8'(npu_reg_pkg::DMA_ERROR_DESC_FETCH);
  localparam logic [7:0] ErrBad   = 8'(npu_reg_pkg::DMA_ERROR_BAD_DESC);
  localparam logic [7:0] ErrWrite = 8'(npu_reg_pkg::DMA_ERROR_CPL_WRITE);

  typedef enum logic [3:0] {
    StIdle, StChoose, StFetch, StFetchWait, StDecode, StInval, StReplay, StFenceWait, StFenceAw,
    StFenceW, StFenceB, StPteAw, StPteW, StPteB, StNext, StError
  } state_e;

  state_e        state_d, state_q;
  logic [15:0]   head_d, head_q;
  logic [127:0]  cmd_d, cmd_q;
  logic          draining_d, draining_q;
  logic [7:0]    err_code_d, err_code_q;
  // Commands kept from the last fetch (the next one in bits 127:0) and how many.
  logic [AheadW-1:0]    ahead_d, ahead_q;
  logic [AheadBits-1:0] left_d, left_q;

  // The ring size's decode, registered (it takes effect the cycle after CMDQ_SIZE_LOG2 is
  // written; the driver writes it with the queue off), so it stays out of the deep
  // "commands pending" logic.
  logic [15:0] mask;
  logic        ring_ok, pending;
  logic [63:0] fetch_addr;
  always_ff @(posedge clk_i or negedge rst_ni) begin : ring_size_ff
    if (!rst_ni) begin
      mask    <= '0;
      ring_ok <= 1'b0;
    end else begin
      mask    <= 16'((32'd1 << size_log2_i) - 1);
      ring_ok <= size_log2_i >= 5'd1 && size_log2_i <= 5'd16;
    end
  end
  assign pending    = (head_q & mask) != (tail_i & mask);
  assign fetch_addr = base_i + {44'd0, head_q & mask, 4'd0};

  // The committed push, if any (npu_cmdq_push): taken when the engine, idle, finds the
  // next command to execute at its index (`push_hit`: HEAD does not move in StIdle, so
  // the push's registered compare is current in StChoose).
  logic                 push_valid, push_hit;
  logic [15:0]          push_idx;
  logic [AheadBits:0]   push_n;
  logic [DataWidth-1:0] push_rec;
  npu_cmdq_push #(.Cmds(PerBeat)) u_push (
    .clk_i,
    .rst_ni,
    .soft_reset_i,
    .we_i     (push_we_i),
    .wd_i     (push_wd_i),
    .commit_i (push_commit_i),
    .count_i  (push_count_i),
    .tail_i   (tail_i),
    .mask_i   (mask),
    .forget_i (state_q == StChoose || state_q == StFetchWait && r_valid_i || !enable_i),
    .head_i   (head_q),
    .hit_o    (push_hit),
    .valid_o  (push_valid),
    .idx_o    (push_idx),
    .n_o      (push_n),
    .rec_o    (push_rec)
  );

  // Commands a fetch may keep besides the first: those in the same beat, before the
  // ring's end, and below the TAIL seen when the fetch was issued (written by the host
  // before its doorbell, so before the read). Counted when the beat arrives, from the
  // commands left in the beat from the fetched one on and that TAIL, both registered at
  // the fetch. A push is counted the same way, its commands standing for the beat's.
  logic [15:0] tail_seen_q, head_idx, tail_dist;
  logic [16:0] to_line, to_ring, to_tail, keep_n;
  logic [AheadBits:0] beat_left_q;
  assign head_idx  = head_q & mask;
  assign tail_dist = (tail_seen_q - head_q) & mask;
  assign to_line   = 17'(beat_left_q);
  assign to_ring   = {1'b0, mask} + 17'd1 - {1'b0, head_idx};
  assign to_tail   = {1'b0, tail_dist};
  always_comb begin : keep_count
    keep_n = to_line;
    if (to_ring < keep_n) keep_n = to_ring;
    if (to_tail < keep_n) keep_n = to_tail;
  end

  // Command fields (CMD record).
  logic [7:0]  opcode, flags;
  logic [15:0] asid;
  logic [31:0] arg;
  logic [63:0] addr;
  assign opcode = cmd_q[7:0];
  assign flags  = cmd_q[15:8];
  assign asid   = cmd_q[31:16];
  assign arg    = cmd_q[63:32];
  assign addr   = cmd_q[127:64];

  // A well-formed PTE_WRITE: no flags, no ASID, a PTE inside device memory.
  logic dec_pte;
  assign dec_pte = opcode == OpPte && flags == '0 && asid == '0 && {1'b0, arg} < PteLimit;

  // The fetched command sits at byte (fetch address mod beat size) of the beat.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [63:0] fetch_addr_q;  // only the in-beat offset is used after the fetch
  /* verilator lint_on UNUSEDSIGNAL */

  always_comb begin : next_state
    state_d        = state_q;
    head_d         = head_q;
    cmd_d          = cmd_q;
    draining_d     = draining_q;
    err_code_d     = err_code_q;
    ahead_d        = ahead_q;
    left_d         = left_q;
    irq_o          = 1'b0;
    cmd_done_o     = 1'b0;
    unique case (state_q)
      StIdle: begin
        if (enable_i && ring_ok && pending && !draining_q) state_d = StChoose;
      end
      StChoose: begin
        // The next command comes from the push if one was committed at its index (taken
        // like a fetched beat), else from a fetch.
        if (push_hit) begin
          cmd_d   = push_rec[127:0];
          ahead_d = AheadW'(push_rec >> 128);
          left_d  = AheadBits'(keep_n - 17'd1);
          head_d  = head_next_q;
          state_d = StDecode;
        end else begin
          state_d = StFetch;
        end
      end
      StFetch: begin
        if (ar_ready_i) state_d = StFetchWait;
      end
      StFetchWait: begin
        if (r_valid_i) begin
          cmd_d   = 128'(r_data_i >> {fetch_addr_q[OffBits-1:0], 3'b000});
          ahead_d = AheadW'(r_data_i >> {fetch_addr_q[OffBits-1:0], 3'b000} >> 128);
          left_d  = r_resp_i == 2'b00 ? AheadBits'(keep_n - 17'd1) : '0;
          head_d  = head_next_q;
          if (r_resp_i != 2'b00) begin
            err_code_d = ErrFetch;
            state_d    = StError;
          end else begin
            state_d = StDecode;
          end
        end
      end
      StDecode: begin
        if (opcode == OpInval && flags[7:2] == '0 && flags[1:0] != 2'd3) begin
          state_d = StInval;
        end else if (opcode == OpFence && flags[7:1] == '0 && addr[1:0] == 2'b00) begin
          state_d = StFenceWait;
        end else if (opcode == OpReplay && flags[7:1] == '0) begin
          state_d = StReplay;
        end else if (dec_pte) begin
          state_d = StPteAw;
        end else begin
          err_code_d = ErrBad;
          state_d    = StError;
        end
      end
      StInval: begin
        if (inval_ready_i) begin
          cmd_done_o = 1'b1;
          state_d    = StNext;
        end
      end
      StReplay: begin
        if (replay_ready_i) begin
          cmd_done_o = 1'b1;
          state_d    = StNext;
        end
      end
      StFenceWait: begin
        if (mmu_quiet_i) state_d = StFenceAw;
      end
      StFenceAw: begin
        if (aw_ready_i) state_d = StFenceW;
      end
      StFenceW: begin
        if (w_ready_i) state_d = StFenceB;
      end
      StFenceB: begin
        if (b_valid_i) begin
          if (b_resp_i != 2'b00) begin
            err_code_d = ErrWrite;
            state_d    = StError;
          end else begin
            irq_o      = flags[0];
            cmd_done_o = 1'b1;
            state_d    = StNext;
          end
        end
      end
      StPteAw: begin
        if (dev_aw_ready_i) state_d = StPteW;
      end
      StPteW: begin
        if (dev_w_ready_i) state_d = StPteB;
      end
      StPteB: begin
        if (dev_b_valid_i) begin
          if (dev_b_resp_i != 2'b00) begin
            err_code_d = ErrDevWr;
            state_d    = StError;
          end else begin
            cmd_done_o = 1'b1;
            state_d    = StNext;
          end
        end
      end
      StNext: begin
        // A command is done: the next one is decoded at once if the last fetch kept it
        // (it is below TAIL, so pending); else wait in StIdle, which keeps nothing.
        if (left_q != '0 && enable_i) begin
          cmd_d   = ahead_q[127:0];
          ahead_d = AheadW'(ahead_q >> 128);
          left_d  = left_q - 1'b1;
          head_d  = head_next_q;
          state_d = StDecode;
        end else begin
          state_d = StIdle;
        end
      end
      StError: ;
      default: state_d = StIdle;
    endcase


    // Soft reset: let an outstanding read or write response arrive, then forget all.
    if (soft_reset_i) draining_d = 1'b1;
    // A shown AR/AW stays shown until accepted (AXI), so those states drain too.
    if (draining_d && state_q != StFetch && state_q != StFetchWait && state_q != StFenceAw
        && state_q != StFenceW && state_q != StFenceB && state_q != StPteAw && state_q != StPteW
        && state_q != StPteB) begin
      draining_d = 1'b0;
      state_d    = StIdle;
      head_d     = '0;
      err_code_d = '0;
      left_d     = '0;
    end
    // Kept commands are dropped when the queue is turned off (its ring may then change).
    // After an error they stay unused until the soft reset drops them.
    if (!enable_i) left_d = '0;
  end

  // The MMU-side valids are registered decodes of the next state (equal to decoding the
  // current state), so they leave the command queue straight from flip-flops. Written
  // without the full next-state logic: StInval/StReplay are entered only from StDecode and
  // left when the MMU takes the command, and a drain (or soft reset) leaves them at once.
  logic inval_valid_q, replay_valid_q, dec_inval, dec_replay, ar_valid_q, aw_valid_q, w_valid_q;
  logic dev_aw_valid_q, dev_w_valid_q;
  assign dec_inval  = opcode == OpInval && flags[7:2] == '0 && flags[1:0] != 2'd3;
  assign dec_replay = opcode == OpReplay && flags[7:1] == '0;
  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      inval_valid_q  <= 1'b0;
      replay_valid_q <= 1'b0;
      ar_valid_q     <= 1'b0;
      aw_valid_q     <= 1'b0;
      w_valid_q      <= 1'b0;
      dev_aw_valid_q <= 1'b0;
      dev_w_valid_q  <= 1'b0;
      state_q      <= StIdle;
      head_q       <= '0;
      draining_q   <= 1'b0;
      err_code_q   <= '0;
      left_q       <= '0;
    end else begin
      inval_valid_q  <= !draining_q && !soft_reset_i
                        && (state_q == StDecode && dec_inval || state_q == StInval && !inval_ready_i);
      replay_valid_q <= !draining_q && !soft_reset_i
                        && (state_q == StDecode && dec_replay || state_q == StReplay && !replay_ready_i);
      // = (state_d == StFetch / StFenceAw / StFenceW), written without the full
      // next-state logic (the command's decode does not reach these flip-flops).
      ar_valid_q     <= state_q == StChoose && !push_hit && !draining_q && !soft_reset_i
                        || state_q == StFetch && !ar_ready_i;
      aw_valid_q     <= state_q == StFenceWait && mmu_quiet_i && !draining_q && !soft_reset_i
                        || state_q == StFenceAw && !aw_ready_i;
      w_valid_q      <= state_q == StFenceAw && aw_ready_i || state_q == StFenceW && !w_ready_i;
      dev_aw_valid_q <= state_q == StDecode && dec_pte && !draining_q && !soft_reset_i
                        || state_q == StPteAw && !dev_aw_ready_i;
      dev_w_valid_q  <= state_q == StPteAw && dev_aw_ready_i || state_q == StPteW && !dev_w_ready_i;
      state_q      <= state_d;
      head_q       <= head_d;
      draining_q   <= draining_d;
      err_code_q   <= err_code_d;
      left_q       <= left_d;
    end
  end

  // The command and its fetch address: no reset (loaded before use; the MMU and AXI
  // outputs show them only under their VALIDs).
  // HEAD + 1 in the ring, registered: HEAD moves at most every other cycle (a command is
  // decoded in between), so this is current whenever HEAD moves (a_head_next), and the
  // ring size's decode stays out of HEAD's input.
  logic [15:0] head_next_q;
  always_ff @(posedge clk_i) begin : head_next_ff
    head_next_q <= (head_q + 16'd1) & mask;
  end

  always_ff @(posedge clk_i) begin : command_ff
    cmd_q   <= cmd_d;
    ahead_q <= ahead_d;
    if (state_q == StFetch) begin
      fetch_addr_q <= fetch_addr;
      beat_left_q  <= (AheadBits+1)'(PerBeat) - (AheadBits+1)'(fetch_addr[OffBits-1:4]);
    end else if (state_q == StIdle) begin
      beat_left_q  <= push_n;
    end
    if (state_q == StIdle || state_q == StFetch) tail_seen_q <= tail_i;
  end

  // The FENCE or PTE_WRITE write beat, registered: the command does not change between
  // its decode and the W beat, so these equal the beat computed in the current cycle
  // (strobes off while draining: the beat still goes, writing nothing). FENCE: ARG at
  // host IOVA ADDR; PTE_WRITE: the 8 bytes of ADDR at device address ARG * 8.
  logic [DataWidth-1:0] w_data_q;
  logic [StrbWidth-1:0] w_strb_q;
  logic [OffBits-4:0]   pte_slot;  // the PTE's 8-byte slot in the beat
  assign pte_slot = arg[OffBits-4:0];
  // Only a well-formed FENCE (2) or PTE_WRITE (4) sends the beat: opcode bit 2 tells them
  // apart, and keeps the opcode's full decode out of these 576 flip-flops' inputs.
  if (OpFence[2] != 1'b0 || OpPte[2] != 1'b1) begin : gen_bad_opcodes
    $error("npu_cmdq: the write beat tells FENCE from PTE_WRITE by opcode bit 2");
  end
  // A beat already shown (W valid) keeps its payload until accepted (AXI), also when a
  // soft reset starts a drain meanwhile: that one beat keeps its strobes (device.md 13).
  always_ff @(posedge clk_i) begin : write_beat_ff
    if (w_valid_q || dev_w_valid_q) begin
      // held
    end else if (opcode[2]) begin
      w_data_q <= DataWidth'(addr) << {pte_slot, 6'b000000};
      w_strb_q <= draining_d ? '0 : StrbWidth'(8'hFF) << {pte_slot, 3'b000};
    end else begin
      w_data_q <= DataWidth'({{(DataWidth-32){1'b0}}, arg}) << {addr[OffBits-1:0], 3'b000};
      w_strb_q <= draining_d ? '0 : StrbWidth'({{(StrbWidth-4){1'b0}}, 4'hF}) << addr[OffBits-1:0];
    end
  end

  assign head_o         = head_q;
  assign busy_o         = state_q != StIdle && state_q != StError || draining_q
                          || (enable_i && ring_ok && pending);
  assign dev_err_code_o = err_code_q;

  // The AXI request valids are registered decodes of the next state, like the MMU-side
  // ones, so the multiplexer's arbiter starts from flip-flops.
  assign ar_valid_o = ar_valid_q;
  assign ar_addr_o  = {fetch_addr[63:OffBits], {OffBits{1'b0}}};
  assign aw_valid_o = aw_valid_q;
  assign aw_addr_o  = {addr[63:OffBits], {OffBits{1'b0}}};
  assign w_valid_o  = w_valid_q;
  assign w_data_o   = w_data_q;
  assign w_strb_o   = w_strb_q;
  assign dev_aw_valid_o = dev_aw_valid_q;
  assign dev_aw_addr_o  = {29'd0, arg[31:OffBits-3], {OffBits{1'b0}}};
  assign dev_w_valid_o  = dev_w_valid_q;

  // = (state_q == StDecode && state_d == StFenceWait), written without the next-state logic.
  assign fence_start_o  = state_q == StDecode && opcode == OpFence && flags[7:1] == '0
                          && addr[1:0] == 2'b00 && !draining_q && !soft_reset_i;
  assign inval_valid_o  = inval_valid_q;
  assign inval_scope_o  = flags[1:0];
  assign inval_asid_o   = asid;
  assign inval_va_o     = addr;
  assign inval_pages_o  = arg;
  assign replay_valid_o = replay_valid_q;
  assign replay_reqid_o = arg[15:0];
  assign replay_abort_o = flags[0];

  // ---- assertions
`ifndef SYNTHESIS
  a_state_known: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(state_q));
  a_r_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) r_valid_i |-> state_q == StFetchWait);
  a_b_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) b_valid_i |-> state_q == StFenceB);
  a_dev_b_expected: assert property (@(posedge clk_i) disable iff (!rst_ni)
      dev_b_valid_i |-> state_q == StPteB);
  // A drain discards the fetch it waits for (the soft reset zeroed the TAIL it counts
  // against) and ends by zeroing HEAD, possibly the cycle after that fetch moved it: both
  // checks hold outside a drain.
  a_keep_in_beat: assert property (@(posedge clk_i) disable iff (!rst_ni)
      (state_q == StFetchWait || state_q == StChoose && push_hit) && ring_ok && !draining_q
      |-> keep_n >= 17'd1 && keep_n <= 17'(PerBeat));
  // A push is forgotten once the engine chose (taken, or a fetch went ahead of it).
  a_push_taken_once: assert property (@(posedge clk_i) disable iff (!rst_ni)
      state_q == StChoose |=> !push_valid);
  // The registered compare is current when the engine chooses: the push is at HEAD.
  a_push_hit_at_head: assert property (@(posedge clk_i) disable iff (!rst_ni)
      state_q == StChoose && push_hit |-> push_valid && (push_idx & mask) == head_q);
  a_head_next: assert property (@(posedge clk_i) disable iff (!rst_ni)
      head_d != head_q && !draining_q && !soft_reset_i |-> head_next_q == ((head_q + 16'd1) & mask));
  // ... and a drain that ends forgets the fetch: HEAD 0, no command kept.
  a_drain_forgets: assert property (@(posedge clk_i) disable iff (!rst_ni)
      draining_q && !draining_d |=> head_q == '0 && left_q == '0 && state_q == StIdle);
  a_idle_keeps_nothing: assert property (@(posedge clk_i) disable iff (!rst_ni)
      state_q == StIdle |-> left_q == '0);
  a_kept_only_when_pending: assert property (@(posedge clk_i) disable iff (!rst_ni)
      state_q == StNext && left_q != '0 && enable_i && ring_ok |-> pending);
  a_head_in_ring: assert property (@(posedge clk_i) disable iff (!rst_ni) ring_ok |-> (head_q & ~mask) == '0);
  a_valids_decoded: assert property (@(posedge clk_i) disable iff (!rst_ni)
      inval_valid_q == (state_q == StInval) && replay_valid_q == (state_q == StReplay)
      && ar_valid_q == (state_q == StFetch) && aw_valid_q == (state_q == StFenceAw)
      && w_valid_q == (state_q == StFenceW) && dev_aw_valid_q == (state_q == StPteAw)
      && dev_w_valid_q == (state_q == StPteW));
  a_w_stable: assert property (@(posedge clk_i) disable iff (!rst_ni)
      (w_valid_o && !w_ready_i || dev_w_valid_o && !dev_w_ready_i) |=> $stable(w_data_q) && $stable(w_strb_q));
  a_fence_start: assert property (@(posedge clk_i) disable iff (!rst_ni)
      fence_start_o == (state_q == StDecode && state_d == StFenceWait));
`endif

endmodule
