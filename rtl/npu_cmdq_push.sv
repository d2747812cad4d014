// Pushed-command window of the command queue (docs/device.md 8).
//
// The host writes up to `Cmds` 16-byte CMD records as 32-bit words through BAR0
// (CMDQ_PUSH, word 4k + i is word i of command k), then CMDQ_PUSH_COMMIT with the count
// less one: the first COUNT + 1 commands stand for the ring entries from the CMDQ_TAIL of
// that moment on, and the engine takes them in place of fetching (npu_cmdq). A committed
// push is forgotten whenever the engine chooses between it and a fetch (it is taken, or
// the engine, behind, fetches first) or a fetched beat arrives (`forget_i`; a commit in
// that cycle is dropped too), when any word of the window is written, and at soft
// reset, so a stale copy never stands in for a later entry at the same index.
`include "prim_assert.svh"

module npu_cmdq_push #(
  parameter  int unsigned Cmds    = 4,
  localparam int unsigned Words   = 4 * Cmds,
  localparam int unsigned CntBits = $clog2(Cmds + 1)
) (
  input  logic                  clk_i,
  input  logic                  rst_ni,
  input  logic                  soft_reset_i,
  input  logic [15:0]           we_i,         // word i of the window written
  input  logic [31:0]           wd_i,
  input  logic                  commit_i,     // CMDQ_PUSH_COMMIT written
  input  logic [1:0]            count_i,      // its COUNT field: commands less one
  input  logic [15:0]           tail_i,       // CMDQ_TAIL as the commit finds it
  input  logic [15:0]           mask_i,       // the ring's index mask
  input  logic                  forget_i,
  input  logic [15:0]           head_i,       // CMDQ_HEAD
  output logic                  hit_o,        // committed at HEAD (see `hit_q`)
  output logic                  valid_o,
  output logic [15:0]           idx_o,        // CMDQ_TAIL at the commit (unmasked)
  output logic [CntBits-1:0]    n_o,          // commands committed (1 to Cmds)
  output logic [128*Cmds-1:0]   rec_o         // command k in bits 128k +: 128
);

  if (Cmds < 1 || Cmds > 4) begin : gen_bad_cmds
    $error("npu_cmdq_push holds 1 to 4 commands (CMDQ_PUSH has 16 words)");
  end

  logic [31:0]        word_q [Words];
  logic               valid_q;
  logic [15:0]        idx_q;
  logic [CntBits-1:0] n_q, n_asked;

  // COUNT + 1, at most the window's commands.
  assign n_asked = 32'(count_i) + 1 > Cmds ? CntBits'(Cmds) : CntBits'(count_i) + 1'b1;

  always_ff @(posedge clk_i) begin : words_ff
    for (int i = 0; i < Words; i++) begin
      if (we_i[i]) word_q[i] <= wd_i;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : commit_ff
    if (!rst_ni) begin
      valid_q <= 1'b0;
      idx_q   <= '0;
      n_q     <= '0;
    end else if (soft_reset_i || forget_i || we_i != '0) begin
      valid_q <= 1'b0;
    end else if (commit_i) begin
      valid_q <= 1'b1;
      idx_q   <= tail_i;
      n_q     <= n_asked;
    end
  end

  // Committed at HEAD, registered so the engine's choice between the push and a fetch
  // starts from flip-flops: the compare of the cycle before, void if the window was
  // written, committed or forgotten in that cycle (the push it compared may have
  // changed), and only while the push is still valid.
  logic hit_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : hit_ff
    if (!rst_ni) begin
      hit_q <= 1'b0;
    end else begin
      hit_q <= valid_q && (idx_q & mask_i) == head_i && we_i == '0 && !commit_i && !forget_i
               && !soft_reset_i;
    end
  end
  assign hit_o   = hit_q && valid_q;
  assign valid_o = valid_q;
  assign idx_o   = idx_q;
  assign n_o     = n_q;
  always_comb begin : record
    for (int i = 0; i < Words; i++) rec_o[32*i +: 32] = word_q[i];
  end

  // The CSR block writes one register per cycle.
  `PRIM_ASSERT(a_one_write_at_a_time, $onehot0({we_i, commit_i}))
  `PRIM_ASSERT(a_count_in_window, !valid_q || n_q >= 1 && 32'(n_q) <= Cmds)

endmodule
