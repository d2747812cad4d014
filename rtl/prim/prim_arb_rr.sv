// Round-robin arbiter: grants the first requester at or after the priority pointer
// (cyclically). The pointer moves past the granted requester when the grant is taken
// (`valid_o && ready_i`), so a requester that keeps asking waits at most N-1 grants.
// Purely combinational from `req_i` to `idx_o`/`win_o`/`gnt_o`; the pointer is the only
// state. A user that registers the winner only when it takes it can load `win_o` (equal
// to `gnt_o` then) and keep `ready_i` off the register's data path.
// Search: requesters at or above the pointer first (masked), then all of them. The
// pointer is also kept as a registered mask (requesters below it), and each search
// isolates the lowest set bit as x & -x (a carry chain), so the winner is a one-hot
// vector a few LUT levels after the requests; the index is encoded from it.
`include "prim_assert.svh"

module prim_arb_rr #(
  parameter int unsigned N = 4,
  localparam int unsigned IdxW = N > 1 ? $clog2(N) : 1
) (
  input  logic            clk_i,
  input  logic            rst_ni,
  input  logic [N-1:0]    req_i,
  input  logic            ready_i,   // the granted request is taken this cycle
  output logic            valid_o,   // some request is present
  output logic [IdxW-1:0] idx_o,     // the winner (0 when none)
  output logic [N-1:0]    win_o,     // one-hot winner (0 when none), taken or not
  output logic [N-1:0]    gnt_o      // one-hot winner, only when taken (valid_o && ready_i)
);

  `PRIM_ASSERT_INIT(gen_bad_n, N >= 1)

  logic [IdxW-1:0] ptr_d, ptr_q;
  logic [N-1:0]    below_d, below_q, masked, win_masked, win_all, win;
  logic            any_masked;

  assign masked     = req_i & ~below_q;
  assign any_masked = |masked;
  assign win_masked = masked & (~masked + N'(1));  // lowest set bit
  assign win_all    = req_i & (~req_i + N'(1));
  assign win        = any_masked ? win_masked : win_all;
  assign valid_o    = |req_i;
  assign win_o      = win;

  always_comb begin : encode
    idx_o = '0;
    for (int unsigned k = 0; k < N; k++) begin
      if (win[k]) idx_o = idx_o | IdxW'(k);
    end
  end

  always_comb begin : grant
    gnt_o  = '0;
    ptr_d  = ptr_q;
    below_d = below_q;
    if (valid_o && ready_i) begin
      gnt_o  = win;
      ptr_d  = (32'(idx_o) == N - 1) ? '0 : idx_o + 1'b1;
      below_d = (win << 1) - N'(1);  // the winner and those below it
      if (below_d == '1) below_d = '0;  // after N-1 the pointer wraps to 0
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : ptr_ff
    if (!rst_ni) begin
      ptr_q   <= '0;
      below_q <= '0;
    end else begin
      ptr_q   <= ptr_d;
      below_q <= below_d;
    end
  end

  // ---- assertions
  `PRIM_ASSERT(a_gnt_onehot, $onehot0(gnt_o))
  `PRIM_ASSERT(a_gnt_is_req, (gnt_o & ~req_i) == '0)
  `PRIM_ASSERT(a_idx_is_req, !valid_o || req_i[idx_o])
  `PRIM_ASSERT(a_ptr_range, 32'(ptr_q) < N)
  `PRIM_ASSERT(a_gnt_when_taken, (|gnt_o) == (valid_o && ready_i))
  `PRIM_ASSERT(a_win_is_gnt, !ready_i || win_o == gnt_o)
  for (genvar k = 0; k < N; k++) begin : gen_below_is_ptr
    `PRIM_ASSERT(a_below_is_ptr, below_q[k] == (k < int'(ptr_q)))
  end

endmodule
