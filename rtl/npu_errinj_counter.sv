// One "fail the next N events" error-injection counter.
//
// Software writes N (the ERRINJ_* register). While the count is non-zero `armed_o`
// tells the unit to fail its next event; the unit pulses `consume_i` when it did, and
// the count drops by one. Reads return the remaining count; a soft reset zeroes it.
module npu_errinj_counter (
  input  logic        clk_i,
  input  logic        rst_ni,
  input  logic        soft_reset_i,
  input  logic        we_i,
  input  logic [31:0] wd_i,
  input  logic        consume_i,
  output logic        armed_o,
  output logic [31:0] count_o
);

  logic [31:0] count_d, count_q;

  assign armed_o = count_q != 32'd0;

  always_comb begin : next_count
    count_d = count_q;
    if (soft_reset_i) begin
      count_d = '0;
    end else if (we_i) begin
      count_d = wd_i;
    end else if (consume_i) begin  // only ever while armed (asserted below)
      count_d = count_q - 32'd1;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      count_q <= '0;
    end else begin
      count_q <= count_d;
    end
  end

  assign count_o = count_q;

  // ---- assertions
`ifndef SYNTHESIS
  a_consume_only_when_armed: assert property (@(posedge clk_i) disable iff (!rst_ni)
      consume_i |-> armed_o);
`endif

endmodule
