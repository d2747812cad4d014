// One compute-unit slot: runs one group of a kernel (docs/device.md 10.3).
//
// A group is up to 16 consecutive elements whose operand lines are each one 64-byte
// line. The slot issues its requests one at a time, each translated by the MMU and
// then sent to memory: load the a-line, load the b-line, (GATHER: load each a[b[k]]
// word), compute one element per cycle, store the c-line. STRIDED_TOUCH groups are one
// word access; the REDUCE_SUM final store is one word. A translation abort or a memory
// error fails the group; the slot then reports the failure and goes idle.
module npu_cu_slot #(
  localparam int unsigned LineBits = 512
) (
  input  logic                clk_i,
  input  logic                rst_ni,
  input  logic                flush_i,
  // kernel parameters, stable while a kernel runs
  input  logic [7:0]          opcode_i,
  input  logic                store_i,       // STRIDED_TOUCH stores
  input  logic [63:0]         a_base_i,      // GATHER element base
  input  logic [31:0]         scalar_i,
  input  logic [31:0]         final_value_i, // REDUCE_SUM result for the final store
  input  logic                clear_sum_i,
  // group
  input  logic                start_i,
  input  logic                final_i,       // the REDUCE_SUM store of c[0]
  input  logic [4:0]          n_i,
  input  logic [63:0]         va_a_i,
  input  logic [63:0]         va_b_i,
  input  logic [63:0]         va_c_i,
  output logic                idle_o,
  output logic                waiting_o,
  output logic                done_o,        // group finished all its accesses
  output logic [4:0]          done_n_o,
  output logic                fail_o,
  output logic                fail_abort_o,  // 1: REPLAY ABORT, 0: memory error
  output logic [63:0]         fail_va_o,
  output logic [63:0]         sum_o,
  // translation
  output logic                tr_valid_o,
  input  logic                tr_ready_i,
  output logic [63:0]         tr_va_o,
  output logic                tr_write_o,
  input  logic                tr_rsp_i,
  input  logic                tr_abort_i,
  input  logic [40:0]         tr_pa_i,
  // memory
  output logic                m_valid_o,
  input  logic                m_ready_i,
  output logic                m_host_o,
  output logic [63:0]         m_addr_o,
  output logic                m_write_o,
  output logic [LineBits-1:0] m_wdata_o,
  output logic [63:0]         m_wstrb_o,
  output logic                m_xlated_o,    // translated, memory response not yet in
  input  logic                m_rsp_i,
  input  logic                m_err_i,
  input  logic [LineBits-1:0] m_rdata_i
);

  localparam logic [7:0] OpCopy   = 8'(npu_reg_pkg::KERNEL_OPCODE_COPY);
  localparam logic [7:0] OpFill   = 8'(npu_reg_pkg::KERNEL_OPCODE_FILL);
  localparam logic [7:0] OpAdd    = 8'(npu_reg_pkg::KERNEL_OPCODE_ADD);
  localparam logic [7:0] OpScale  = 8'(npu_reg_pkg::KERNEL_OPCODE_SCALE);
  localparam logic [7:0] OpReduce = 8'(npu_reg_pkg::KERNEL_OPCODE_REDUCE_SUM);
  localparam logic [7:0] OpGather = 8'(npu_reg_pkg::KERNEL_OPCODE_GATHER);

  typedef enum logic [2:0] { SIdle, SXReq, SXWait, SMReq, SMWait, SCompute } state_e;
  typedef enum logic [2:0] { StepA, StepB, StepG, StepTouch, StepC, StepFinal } step_e;

  state_e      state_d, state_q;
  step_e       step_d, step_q;
  logic [4:0]  n_d, n_q;
  logic [3:0]  k_d, k_q;
  logic [63:0] va_a_d, va_a_q, va_b_d, va_b_q, va_c_d, va_c_q, va_d, va_q, sum_d, sum_q;
  logic [40:0] pa_d, pa_q;
  logic        flush_d, flush_q;
  logic [31:0] a_d [16];
  logic [31:0] a_q [16];
  logic [31:0] b_d [16];
  logic [31:0] b_q [16];
  logic [31:0] c_d [16];
  logic [31:0] c_q [16];
  logic [1:0]  mul_v_d, mul_v_q;  // result pipeline (below)
  logic [3:0]  mul_k_q [2];
  logic [1:0]  mul_scale_q;
  logic [31:0] mul_a_q, mul_p_q;
  logic [31:0] mul_r_q [2];

  // The current request: address, direction, and whether it is one word.
  // GATHER's element address a_base + 4*b[k] is computed a cycle ahead from the next
  // values of b and k (g_va_q), so the add does not sit in front of the TLB lookup; it
  // is the address of b[k] whenever it is used (a_base_i is stable while a kernel runs).
  // The next b[k] is b_q[k_g], or, in the cycle the b-line arrives (k is 0 then), its
  // word at the line offset, which the GATHER step reads anyway. k_g is k_d without the
  // start branch (k_d = 0 there): a started kernel loads its b-line before g_va_q is
  // used, so g_va_q does not wait for the dispatch decision behind start_i.
  logic        is_write, is_word, load_b;
  logic [3:0]  k_g;
  logic [63:0] req_va, g_va_q;
  logic [3:0]  wo;  // word offset of the request in its line
  always_comb begin : request
    unique case (step_q)
      StepA:     req_va = va_a_q;
      StepB:     req_va = va_b_q;
      StepG:     req_va = g_va_q;
      StepTouch: req_va = va_a_q;
      default:   req_va = va_c_q;  // StepC, StepFinal
    endcase
    is_write = step_q == StepC || step_q == StepFinal || (step_q == StepTouch && store_i);
    is_word  = step_q == StepG || step_q == StepTouch || step_q == StepFinal;
  end
  assign wo = va_q[5:2];

  assign load_b = state_q == SMWait && m_rsp_i && step_q == StepB;
  assign k_g    = state_q == SMWait && m_rsp_i && step_q == StepG ? k_q + 4'd1 : k_q;

  // Element k of a loaded line starts at word wo + k.
  logic [31:0] line_word [16];
  always_comb begin : line_words
    for (int unsigned w = 0; w < 16; w++) line_word[w] = m_rdata_i[w*32 +: 32];
  end

  // ---------------------------------------------------------------- next state
  always_comb begin : next_state
    state_d  = state_q;
    step_d   = step_q;
    n_d      = n_q;
    k_d      = k_q;
    va_a_d   = va_a_q;
    va_b_d   = va_b_q;
    va_c_d   = va_c_q;
    va_d     = va_q;
    pa_d     = pa_q;
    sum_d    = clear_sum_i ? '0 : sum_q;
    flush_d  = flush_q || flush_i;
    a_d      = a_q;
    b_d      = b_q;
    c_d      = c_q;
    done_o   = 1'b0;
    fail_o   = 1'b0;
    fail_abort_o = 1'b0;
    unique case (state_q)
      SIdle: begin
        if (start_i) begin
          n_d    = n_i;
          k_d    = '0;
          va_a_d = va_a_i;
          va_b_d = va_b_i;
          va_c_d = va_c_i;
          if (final_i) begin
            step_d  = StepFinal;
            state_d = SXReq;
          end else if (opcode_i == OpFill) begin
            state_d = SCompute;
          end else begin
            step_d  = opcode_i == OpGather ? StepB
                    : (opcode_i == OpCopy || opcode_i == OpAdd || opcode_i == OpScale
                       || opcode_i == OpReduce) ? StepA : StepTouch;
            state_d = SXReq;
          end
        end
      end
      SXReq: begin
        va_d = req_va;
        if (tr_ready_i) state_d = SXWait;
      end
      SXWait: begin
        if (tr_rsp_i) begin
          if (tr_abort_i) begin
            fail_o       = 1'b1;
            fail_abort_o = 1'b1;
            state_d      = SIdle;
          end else begin
            pa_d    = tr_pa_i;
            state_d = SMReq;
          end
        end
      end
      SMReq: begin
        if (m_ready_i) state_d = SMWait;
      end
      SMWait: begin
        if (m_rsp_i) begin
          if (flush_q) begin
            state_d = SIdle;
          end else if (m_err_i) begin
            fail_o  = 1'b1;
            state_d = SIdle;
          end else begin
            unique case (step_q)
              StepA: begin
                for (int unsigned k = 0; k < 16; k++) a_d[k] = line_word[(int'(wo) + k) % 16];
                step_d  = StepB;
                state_d = opcode_i == OpAdd ? SXReq : SCompute;
              end
              StepB: begin
                for (int unsigned k = 0; k < 16; k++) b_d[k] = line_word[(int'(wo) + k) % 16];
                step_d  = opcode_i == OpGather ? StepG : StepC;
                state_d = opcode_i == OpGather ? SXReq : SCompute;
              end
              StepG: begin
                c_d[k_q] = line_word[wo];
                k_d      = k_q + 4'd1;
                if (5'(k_q) + 5'd1 == n_q) step_d = StepC;
                state_d = SXReq;
              end
              StepTouch: begin
                if (!store_i) sum_d = sum_q + 64'(line_word[wo]);
                done_o  = 1'b1;
                state_d = SIdle;
              end
              default: begin  // StepC, StepFinal
                done_o  = 1'b1;
                state_d = SIdle;
              end
            endcase
          end
        end
      end
      SCompute: begin
        unique case (opcode_i)
          OpCopy, OpFill, OpAdd, OpScale: ;  // c[k] through the result pipeline below
          OpReduce: sum_d    = sum_q + 64'(a_q[k_q]);
          default: ;
        endcase
        k_d = k_q + 4'd1;
        if (5'(k_q) + 5'd1 == n_q) begin
          k_d = '0;
          if (opcode_i == OpReduce) begin
            done_o  = 1'b1;
            state_d = SIdle;
          end else begin
            step_d  = StepC;
            state_d = SXReq;
          end
        end
      end
      default: state_d = SIdle;
    endcase

    // Results land two cycles after their element was computed (the store of the c-line
    // is at least three cycles after the last element: translate, then request).
    if (mul_v_q[1]) c_d[mul_k_q[1]] = mul_scale_q[1] ? mul_p_q : mul_r_q[1];

    // Soft reset: forget the group; a memory access already sent (or granted in this
    // cycle: the port sends it) still drains.
    if (flush_q || flush_i) begin
      done_o = 1'b0;
      fail_o = 1'b0;
      if (state_q != SMWait && !(state_q == SMReq && m_ready_i)) state_d = SIdle;
    end
    if (state_d == SIdle && (state_q != SMWait || m_rsp_i)) flush_d = 1'b0;
    if (state_q == SIdle) flush_d = 1'b0;
  end

  // ---------------------------------------------------------------- result pipeline
  // Element results (COPY, FILL, ADD, SCALE) pass two register stages before they are
  // written to the c-line: for SCALE the operand and the product of the 32x32 multiply,
  // so it maps onto DSP48E2s with their input and output registers instead of a
  // combinational cascade; the other results ride along, so the c-line keeps a single
  // compute write port. Data registers have no reset (DSP registers); the valid bits do
  // and are dropped by a soft reset.
  assign mul_v_d = {mul_v_q[0], state_q == SCompute && (opcode_i == OpCopy || opcode_i == OpFill
                                                         || opcode_i == OpAdd || opcode_i == OpScale)}
                   & {2{!(flush_q || flush_i)}};
  always_ff @(posedge clk_i or negedge rst_ni) begin : mul_valid_ff
    if (!rst_ni) mul_v_q <= '0;
    else         mul_v_q <= mul_v_d;
  end
  always_ff @(posedge clk_i) begin : mul_ff
    mul_a_q     <= a_q[k_q];
    mul_k_q[0]  <= k_q;
    mul_scale_q <= {mul_scale_q[0], opcode_i == OpScale};
    unique case (opcode_i)
      OpFill:  mul_r_q[0] <= scalar_i;
      OpAdd:   mul_r_q[0] <= a_q[k_q] + b_q[k_q];
      default: mul_r_q[0] <= a_q[k_q];  // COPY
    endcase
    mul_p_q     <= mul_a_q * scalar_i;
    mul_r_q[1]  <= mul_r_q[0];
    mul_k_q[1]  <= mul_k_q[0];
  end

  // ---------------------------------------------------------------- outputs
  assign idle_o     = state_q == SIdle;
  assign waiting_o  = state_q != SIdle && state_q != SCompute;
  assign done_n_o   = step_q == StepFinal ? 5'd0 : n_q;
  assign fail_va_o  = va_q;
  assign sum_o      = sum_q;
  assign tr_valid_o = state_q == SXReq && !flush_q;
  assign tr_va_o    = req_va;
  assign tr_write_o = is_write;

  // A store is shown from its second cycle in SMReq: its data and strobes are registered
  // (the line rotation does not sit in front of the port's request mux), from values
  // that hold in SMReq (the c-line is complete before it).
  logic m_data_ok_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : m_data_ok_ff
    if (!rst_ni) m_data_ok_q <= 1'b0;
    else         m_data_ok_q <= state_q == SMReq;
  end
  assign m_valid_o  = state_q == SMReq && !flush_q && (!is_write || m_data_ok_q);
  assign m_host_o   = pa_q[40];
  assign m_addr_o   = {24'd0, pa_q[39:6], 6'd0};
  assign m_write_o  = is_write;
  assign m_xlated_o = state_q == SMReq || state_q == SMWait;
  logic [LineBits-1:0] wdata;
  logic [63:0]         wstrb;
  always_comb begin : write_data
    wdata = '0;
    wstrb = '0;
    // Per line word j: element k = j - wo (mod 16) of the group, if it is one (a
    // 16-to-1 pick per word, no chain of overlapping assignments).
    for (int unsigned j = 0; j < 16; j++) begin
      logic [3:0] k;
      k = 4'(j) - wo;
      if (is_word) begin
        if (4'(j) == wo) begin
          wdata[j*32 +: 32] = step_q == StepFinal ? final_value_i : scalar_i;
          wstrb[j*4 +: 4]   = 4'hF;
        end
      end else if (5'(k) < n_q) begin
        wdata[j*32 +: 32] = c_q[k];
        wstrb[j*4 +: 4]   = 4'hF;
      end
    end
  end
  always_ff @(posedge clk_i) begin : write_data_ff
    m_wdata_o <= wdata;
    m_wstrb_o <= wstrb;
  end

  // Control state: asynchronous reset; counters, addresses and sums: synchronous
  // (docs/device.md 2.2).
  always_ff @(posedge clk_i or negedge rst_ni) begin : ctrl_ff
    if (!rst_ni) begin
      state_q <= SIdle;
      step_q  <= StepA;
      flush_q <= 1'b0;
    end else begin
      state_q <= state_d;
      step_q  <= step_d;
      flush_q <= flush_d;
    end
  end
  // Deliberately synchronous: rst_ni is also the asynchronous reset of control state.
  /* verilator lint_off SYNCASYNCNET */
  always_ff @(posedge clk_i) begin : data_ff
    if (!rst_ni) begin
      n_q     <= '0;
      k_q     <= '0;
      va_a_q  <= '0;
      va_b_q  <= '0;
      va_c_q  <= '0;
      va_q    <= '0;
      pa_q    <= '0;
      sum_q   <= '0;
    end else begin
      n_q     <= n_d;
      k_q     <= k_d;
      va_a_q  <= va_a_d;
      va_b_q  <= va_b_d;
      va_c_q  <= va_c_d;
      va_q    <= va_d;
      pa_q    <= pa_d;
      sum_q   <= sum_d;
    end
  end
  /* verilator lint_on SYNCASYNCNET */

  // Operand lines need no reset: they are written before they are read.
  always_ff @(posedge clk_i) begin : lines_ff
    a_q    <= a_d;
    b_q    <= b_d;
    c_q    <= c_d;
    g_va_q <= a_base_i + {30'd0, load_b ? line_word[wo] : b_q[k_g], 2'b00};
  end

  // ---- assertions
`ifndef SYNTHESIS
  a_state_known: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(state_q));
  a_start_when_idle: assert property (@(posedge clk_i) disable iff (!rst_ni) start_i |-> state_q == SIdle);
  a_rsp_expected: assert property (@(posedge clk_i) disable iff (!rst_ni) m_rsp_i |-> state_q == SMWait);
  a_tr_rsp_expected: assert property (@(posedge clk_i) disable iff (!rst_ni)
      tr_rsp_i && !flush_q |-> state_q == SXWait);
  a_group_size: assert property (@(posedge clk_i) disable iff (!rst_ni)
      start_i && !final_i |-> n_i >= 5'd1 && n_i <= 5'd16);
  // The b-line arrives while k is 0 (g_va_q takes its word at the line offset).
  a_load_b_at_k0: assert property (@(posedge clk_i) disable iff (!rst_ni) load_b |-> k_q == '0);
  // The c-line is complete before it is stored.
  a_mul_done_before_store: assert property (@(posedge clk_i) disable iff (!rst_ni)
      state_q == SMReq |-> mul_v_q == '0);
`endif

endmodule
