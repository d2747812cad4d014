// Simple dual-port RAM: one write port, one read port, one clock, registered read
// (the data of `raddr_i` appears on `rdata_o` the cycle after `re_i`, and holds until the
// next read). This is the shape synthesis maps to block RAM (RAMB18E2/RAMB36E2 on
// UltraScale+) or, when small, to distributed RAM with an output register. A read of the
// address written in the same cycle returns the old data (read-first); callers that
// need the new word bypass it themselves. No reset: the contents are undefined until
// written, as in a real RAM.
`include "prim_assert.svh"

module prim_ram_1r1w #(
  parameter int unsigned Width = 32,
  parameter int unsigned Depth = 16,
  localparam int unsigned AddrW = Depth > 1 ? $clog2(Depth) : 1
) (
  input  logic             clk_i,
  input  logic             we_i,
  input  logic [AddrW-1:0] waddr_i,
  input  logic [Width-1:0] wdata_i,
  input  logic             re_i,
  input  logic [AddrW-1:0] raddr_i,
  output logic [Width-1:0] rdata_o
);

  `PRIM_ASSERT_INIT(gen_bad_depth, Depth >= 2 && Width >= 1)

  logic [Width-1:0] mem [Depth];

  always_ff @(posedge clk_i) begin : write_ff
    if (we_i) mem[waddr_i] <= wdata_i;
  end

  always_ff @(posedge clk_i) begin : read_ff
    if (re_i) rdata_o <= mem[raddr_i];
  end

endmodule
