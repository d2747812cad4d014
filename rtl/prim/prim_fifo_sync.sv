// Synchronous first-word-fall-through FIFO whose storage is read through a registered
// port (prim_ram_1r1w), so deep FIFOs map to block RAM and nothing in the read path is
// combinational from the storage.
//
// Structure: the head entry lives in an output stage (`rvalid_o`/`rdata_o`); the others
// in the RAM. The output stage is refilled from the RAM (its registered read) or, when
// the RAM holds nothing, straight from the write port (bypass register), so an entry
// written in cycle t is visible at the output in cycle t+1 and the FIFO streams one
// entry per cycle. Capacity is Depth + 1 (RAM plus output stage).
//
// Every output comes from a register or from a compare of registers: no path from an
// input to an output. `wready_o` is low only when full; `rdata_o` holds while
// `rvalid_o && !rready_i`. `clr_i` empties the FIFO (synchronous, e.g. soft reset).
`include "prim_assert.svh"

module prim_fifo_sync #(
  parameter int unsigned Width = 8,
  parameter int unsigned Depth = 4,   // RAM entries, a power of two >= 2
  localparam int unsigned AddrW = $clog2(Depth),
  localparam int unsigned CntW  = $clog2(Depth + 2)
) (
  input  logic             clk_i,
  input  logic             rst_ni,
  input  logic             clr_i,
  input  logic             wvalid_i,
  output logic             wready_o,
  input  logic [Width-1:0] wdata_i,
  output logic             rvalid_o,
  input  logic             rready_i,
  output logic [Width-1:0] rdata_o,
  output logic [CntW-1:0]  count_o     // entries held, output stage included
);

  `PRIM_ASSERT_INIT(gen_bad_depth, Depth >= 2 && (Depth & (Depth - 1)) == 0)

  logic [AddrW:0]   wptr_d, wptr_q, rptr_d, rptr_q;   // RAM pointers with wrap bit
  logic             out_valid_d, out_valid_q;
  logic             sel_byp_d, sel_byp_q;             // output from the bypass register
  logic [Width-1:0] byp_q, ram_rdata;
  logic [AddrW:0]   ram_count;
  logic             ram_empty, ram_full, push, pop, load, ram_we, ram_re, byp_we;

  assign ram_count = wptr_q - rptr_q;
  assign ram_empty = wptr_q == rptr_q;
  assign ram_full  = wptr_q == {~rptr_q[AddrW], rptr_q[AddrW-1:0]};
  assign wready_o  = !ram_full;
  assign push      = wvalid_i && wready_o;
  assign pop       = out_valid_q && rready_i;
  assign load      = !out_valid_q || pop;             // the output stage takes a new entry

  always_comb begin : ctrl
    wptr_d      = wptr_q;
    rptr_d      = rptr_q;
    out_valid_d = out_valid_q && !pop;
    sel_byp_d   = sel_byp_q;
    ram_re      = 1'b0;
    ram_we      = 1'b0;
    byp_we      = 1'b0;
    if (load && !ram_empty) begin
      // oldest RAM entry moves to the output stage
      ram_re      = 1'b1;
      rptr_d      = rptr_q + 1'b1;
      out_valid_d = 1'b1;
      sel_byp_d   = 1'b0;
    end else if (load && push) begin
      // RAM empty: the new entry goes straight to the output stage
      byp_we      = 1'b1;
      out_valid_d = 1'b1;
      sel_byp_d   = 1'b1;
    end
    if (push && !(load && ram_empty)) begin
      ram_we = 1'b1;
      wptr_d = wptr_q + 1'b1;
    end
    if (clr_i) begin
      wptr_d      = '0;
      rptr_d      = '0;
      out_valid_d = 1'b0;
    end
  end

  prim_ram_1r1w #(
    .Width(Width),
    .Depth(Depth)
  ) u_ram (
    .clk_i,
    .we_i    (ram_we),
    .waddr_i (wptr_q[AddrW-1:0]),
    .wdata_i (wdata_i),
    .re_i    (ram_re),
    .raddr_i (rptr_q[AddrW-1:0]),
    .rdata_o (ram_rdata)
  );

  always_ff @(posedge clk_i) begin : byp_ff
    if (byp_we) byp_q <= wdata_i;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : ctrl_ff
    if (!rst_ni) begin
      wptr_q      <= '0;
      rptr_q      <= '0;
      out_valid_q <= 1'b0;
      sel_byp_q   <= 1'b0;
    end else begin
      wptr_q      <= wptr_d;
      rptr_q      <= rptr_d;
      out_valid_q <= out_valid_d;
      sel_byp_q   <= sel_byp_d;
    end
  end

  assign rvalid_o = out_valid_q;
  assign rdata_o  = sel_byp_q ? byp_q : ram_rdata;
  assign count_o  = CntW'(ram_count) + CntW'(out_valid_q);

  // ---- assertions
  `PRIM_ASSERT(a_count_range, ram_count <= (AddrW + 1)'(Depth))
  `PRIM_ASSERT(a_ram_only_behind_output, ram_empty || out_valid_q)
  `PRIM_ASSERT_NEXT(a_rdata_stable, rvalid_o && !rready_i && !clr_i, rvalid_o && $stable(rdata_o))

endmodule
