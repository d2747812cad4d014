// One "fail the next N events" error-injection counter.
//
// Software writes N (the ERRINJ_* register); each cycle in which `event_i` is high
// while the count is non-zero, `inject_o` tells the unit to fail that event and the
// count drops by one. Reads return the remaining count; a soft reset zeroes it.
module npu_errinj_counter (
  input  logic        clk_i,
  input  logic        rst_ni,
  input  logic        soft_reset_i,
  input  logic        we_i,
  input  logic [31:0] wd_i,
  input  logic        event_i,
  output logic        inject_o,
  output logic [31:0] count_o
);

  logic [31:0] count_d, count_q;

  assign inject_o = event_i && (count_q != 32'd0);

  always_comb begin : next_count
    count_d = count_q;
    if (soft_reset_i) begin
      count_d = '0;
    end else if (we_i) begin
      count_d = wd_i;
    end else if (inject_o) begin
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
  a_no_inject_at_zero: assert property (@(posedge clk_i) disable iff (!rst_ni)
      count_q == 32'd0 |-> !inject_o);
`endif

endmodule
