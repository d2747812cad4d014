// Register slice (skid buffer) for one valid/ready channel, e.g. an AXI AR, AW, W, R or
// B channel with its payload packed into `Width` bits.
//
// Full throughput (one transfer per cycle), and every output comes from a register:
// `m_valid_o`/`m_data_o` from the output register, `s_ready_o` from "skid register
// empty". No combinational path from any input to any output, so a slice cuts the
// timing of both directions. The payload holds while `m_valid_o && !m_ready_i`
// (AXI rule), also when `clr_i` arrives: a clear waits until the slave has taken a
// shown transfer, then drops the rest (not needed on AXI ports that are never cleared;
// tie it low there). With `ClrAll` (internal interfaces only, not AXI) a clear drops
// everything at once, the shown transfer included.
`include "prim_assert.svh"

module prim_reg_slice #(
  parameter int unsigned Width  = 32,
  parameter bit          ClrAll = 1'b0
) (
  input  logic             clk_i,
  input  logic             rst_ni,
  input  logic             clr_i,
  // upstream (slave side of the slice)
  input  logic             s_valid_i,
  output logic             s_ready_o,
  input  logic [Width-1:0] s_data_i,
  // downstream (master side of the slice)
  output logic             m_valid_o,
  input  logic             m_ready_i,
  output logic [Width-1:0] m_data_o
);

  logic             out_valid_q, skid_valid_q;
  logic [Width-1:0] out_q, skid_q;
  logic             out_load, s_fire;

  assign s_ready_o = !skid_valid_q;
  assign s_fire    = s_valid_i && s_ready_o;
  assign out_load  = !out_valid_q || m_ready_i;   // the output register may change

  always_ff @(posedge clk_i or negedge rst_ni) begin : valid_ff
    if (!rst_ni) begin
      out_valid_q  <= 1'b0;
      skid_valid_q <= 1'b0;
    end else if (clr_i) begin
      out_valid_q  <= out_valid_q && !m_ready_i && !ClrAll;  // AXI: shown stays until taken
      skid_valid_q <= 1'b0;
    end else if (out_load) begin
      out_valid_q  <= skid_valid_q || s_valid_i;
      skid_valid_q <= 1'b0;
    end else if (s_fire) begin
      skid_valid_q <= 1'b1;
    end
  end

  always_ff @(posedge clk_i) begin : data_ff
    if (out_load && !clr_i) out_q <= skid_valid_q ? skid_q : s_data_i;
    if (!out_load && s_fire) skid_q <= s_data_i;
  end

  assign m_valid_o = out_valid_q;
  assign m_data_o  = out_q;

  // ---- assertions
  `PRIM_ASSERT(a_skid_only_when_full, !skid_valid_q || out_valid_q)
  `PRIM_ASSERT_NEXT(a_m_stable, m_valid_o && !m_ready_i && !(ClrAll && clr_i), m_valid_o && $stable(m_data_o))

endmodule
