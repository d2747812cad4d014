// Reset synchroniser: asserts asynchronously with `rst_ni`, releases synchronously
// `Stages` clock edges after `rst_ni` rises, so every flip-flop of the clock domain
// leaves reset in the same cycle (no recovery/removal violation). Give the
// synchroniser flops ASYNC_REG in the XDC (they are the `sync_q` register).
`include "prim_assert.svh"

module prim_rst_sync #(
  parameter int unsigned Stages = 2
) (
  input  logic clk_i,
  input  logic rst_ni,   // asynchronous, from a pin or a PLL lock
  output logic rst_no    // synchronous release
);

  `PRIM_ASSERT_INIT(gen_bad_stages, Stages >= 2)

  logic [Stages-1:0] sync_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin : sync_ff
    if (!rst_ni) sync_q <= '0;
    else         sync_q <= {sync_q[Stages-2:0], 1'b1};
  end

  assign rst_no = sync_q[Stages-1];

endmodule
