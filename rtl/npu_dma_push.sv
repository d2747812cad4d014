// Pushed-descriptor window of one DMA channel (docs/device.md 9.3).
//
// The host writes a 32-byte DMA_DESC as eight 32-bit words through BAR0 (DMA_PUSH). The
// write of word 7 commits the window as the ring entry at the channel's DMA_DESC_TAIL of
// that moment; the channel takes it in place of fetching that entry (npu_dma_channel).
// A committed push is forgotten when the channel takes it or fetches from the ring
// (`forget_i`), when a word of a new push is written, and at soft reset, so a stale copy
// never stands in for a later entry at the same index.
`include "prim_assert.svh"

module npu_dma_push #(
  localparam int unsigned RecBits = 256
) (
  input  logic               clk_i,
  input  logic               rst_ni,
  input  logic               soft_reset_i,
  input  logic [7:0]         we_i,         // word i of the window written
  input  logic [31:0]        wd_i,
  input  logic [15:0]        desc_tail_i,  // DMA_DESC_TAIL as the write finds it
  input  logic               forget_i,
  output logic               valid_o,
  output logic [15:0]        idx_o,
  output logic [RecBits-1:0] rec_o
);

  logic [31:0] word_q [8];
  logic        valid_q;
  logic [15:0] idx_q;

  always_ff @(posedge clk_i) begin : words_ff
    for (int i = 0; i < 8; i++) begin
      if (we_i[i]) word_q[i] <= wd_i;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : commit_ff
    if (!rst_ni) begin
      valid_q <= 1'b0;
      idx_q   <= '0;
    end else if (soft_reset_i || forget_i || we_i[6:0] != '0) begin
      valid_q <= 1'b0;
    end else if (we_i[7]) begin
      valid_q <= 1'b1;
      idx_q   <= desc_tail_i;
    end
  end

  assign valid_o = valid_q;
  assign idx_o   = idx_q;
  always_comb begin : record
    for (int i = 0; i < 8; i++) rec_o[32*i +: 32] = word_q[i];
  end

  // The CSR block writes one word per cycle.
  `PRIM_ASSERT(a_one_word_at_a_time, $onehot0(we_i))

endmodule
