// Performance counters of the NPU: NumCounters free-running 64-bit event counters.
//
// Each cycle counter i adds `inc_i[i]` (0..2^IncWidth-1, e.g. bytes moved this cycle).
// The increments are registered first (`inc_q`), so no event logic of another block
// sits in front of the 64-bit adders: a counter shows an event one cycle later.
// `clear_i` zeroes every counter and drops the registered increments, so exactly the
// events after the clear are counted. Software reads a counter as PERF_LO then PERF_HI:
// the read of PERF_LO[i] returns bits 31:0 and latches bits 63:32 into one shared
// shadow, which every PERF_HI element returns, so the pair is consistent even while
// the counter runs.
//
// Simulation support (npu_top's ff_skip_i, docs/device.md 2.7): an edge with `skip_i`
// = k stands for k + 1 cycles. The bridge skips only where the whole design is at a
// fixed point, where every increment is 0 or 1 and repeats each cycle, so a counter
// whose increment is 1 adds k + 1 (registered with the increments, applied a cycle
// later like them). On a board `skip_i` is 0 and this is an unused multiplexer.
module npu_perf #(
  parameter int unsigned NumCounters = 24,
  parameter int unsigned IncWidth    = 8
) (
  input  logic                            clk_i,
  input  logic                            rst_ni,
  input  logic [NumCounters*IncWidth-1:0] inc_i,
  input  logic [15:0]                     skip_i,
  input  logic                            clear_i,
  input  logic [NumCounters-1:0]          lo_re_i,
  output logic [NumCounters*32-1:0]       lo_o,
  output logic [31:0]                     hi_shadow_o
);

  if (IncWidth < 1 || IncWidth > 32) begin : gen_bad_inc_width
    $error("IncWidth must be in 1..32");
  end

  logic [NumCounters*64-1:0] count_d, count_q;
  logic [31:0]               shadow_d, shadow_q;
  logic [NumCounters*IncWidth-1:0] inc_q;
  logic [15:0]                     skip_q;

  always_comb begin : next_counts
    count_d  = count_q;
    shadow_d = shadow_q;
    for (int unsigned i = 0; i < NumCounters; i++) begin
      if (clear_i) begin
        count_d[i*64 +: 64] = '0;
      end else begin
        if (skip_q != 0 && inc_q[i*IncWidth +: IncWidth] == IncWidth'(1)) begin
          count_d[i*64 +: 64] = count_q[i*64 +: 64] + 64'(skip_q) + 64'd1;
        end else begin
          count_d[i*64 +: 64] = count_q[i*64 +: 64] + 64'(inc_q[i*IncWidth +: IncWidth]);
        end
      end
    end
    // At most one LO read per cycle (a_one_read): the shadow is an AND-OR over the
    // counters, not a chain of 2:1 multiplexers.
    if (|lo_re_i) begin
      shadow_d = '0;
      for (int unsigned i = 0; i < NumCounters; i++) begin
        shadow_d = shadow_d | (lo_re_i[i] ? count_q[i*64 + 32 +: 32] : 32'd0);
      end
    end
  end

  // Counters are datapath: synchronous reset (docs/device.md 2.2), deliberately: elsewhere
  // in npu_top rst_ni is also the asynchronous reset of control state.
  /* verilator lint_off SYNCASYNCNET */
  always_ff @(posedge clk_i) begin : regs_ff
    if (!rst_ni) begin
      count_q  <= '0;
      shadow_q <= '0;
      inc_q    <= '0;
      skip_q   <= '0;
    end else begin
      count_q  <= count_d;
      shadow_q <= shadow_d;
      inc_q    <= clear_i ? '0 : inc_i;
      skip_q   <= skip_i;
    end
  end
  /* verilator lint_on SYNCASYNCNET */

  for (genvar i = 0; i < NumCounters; i++) begin : gen_lo
    assign lo_o[i*32 +: 32] = count_q[i*64 +: 32];
  end
  assign hi_shadow_o = shadow_q;

  // ---- assertions
`ifndef SYNTHESIS
  // At most one counter is read per cycle (one register-bus access per cycle).
  a_one_read: assert property (@(posedge clk_i) disable iff (!rst_ni) $onehot0(lo_re_i));
`endif

endmodule
