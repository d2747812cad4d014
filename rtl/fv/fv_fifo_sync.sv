// Formal harness (scripts/formal.sh only): prim_fifo_sync keeps order, loses nothing
// and invents nothing. The writer sends a running sequence number; every entry read
// must carry the next number expected, and the count must match. A clear drops
// everything, including a write in the same cycle.
`include "prim_assert.svh"

module fv_fifo_sync #(
  parameter int unsigned Depth = 4
) (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic clr_i,
  input  logic wvalid_i,
  input  logic rready_i
);
  localparam int unsigned W = 4;   // sequence numbers modulo 16 > capacity Depth + 1
  localparam int unsigned CntW = $clog2(Depth + 2);
  logic [W-1:0]    wcnt_q, rcnt_q, rdata;
  logic            wready, rvalid;
  logic [CntW-1:0] count;

  prim_fifo_sync #(
    .Width(W),
    .Depth(Depth)
  ) u_dut (
    .clk_i,
    .rst_ni,
    .clr_i,
    .wvalid_i,
    .wready_o (wready),
    .wdata_i  (wcnt_q),
    .rvalid_o (rvalid),
    .rready_i,
    .rdata_o  (rdata),
    .count_o  (count)
  );

  logic [W-1:0] wcnt_d;
  assign wcnt_d = wcnt_q + W'(wvalid_i && wready);
  always_ff @(posedge clk_i or negedge rst_ni) begin : cnt_ff
    if (!rst_ni) begin
      wcnt_q <= '0;
      rcnt_q <= '0;
    end else begin
      wcnt_q <= wcnt_d;
      rcnt_q <= clr_i ? wcnt_d : rcnt_q + W'(rvalid && rready_i);
    end
  end

  `PRIM_ASSERT(a_in_order, !rvalid || rdata == rcnt_q)
  `PRIM_ASSERT(a_count, W'(count) == W'(wcnt_q - rcnt_q))
  `PRIM_ASSERT(a_full_at_capacity, wready == (32'(count) < Depth + 1))
endmodule
