// Round-robin arbiter: grants the first requester at or after the priority pointer
// (cyclically). The pointer moves past the granted requester when the grant is taken
// (`valid_o && ready_i`), so a requester that keeps asking waits at most N-1 grants.
// Purely combinational from `req_i` to `idx_o`/`gnt_o`; the pointer is the only state.
// Search: requesters at or above the pointer first (masked), then all of them, which
// is two priority encoders and a select instead of an N-step rotation.
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
  output logic [N-1:0]    gnt_o      // one-hot winner, only when taken (valid_o && ready_i)
);

  `PRIM_ASSERT_INIT(gen_bad_n, N >= 1)

  logic [IdxW-1:0] ptr_d, ptr_q;
  logic [N-1:0]    mask, masked;
  logic [IdxW-1:0] idx_masked, idx_all;
  logic            any_masked;

  always_comb begin : pick
    for (int unsigned k = 0; k < N; k++) begin
      mask[k] = k >= 32'(ptr_q);
    end
    masked     = req_i & mask;
    any_masked = |masked;
    idx_masked = '0;
    idx_all    = '0;
    for (int k = N - 1; k >= 0; k--) begin
      if (masked[k]) idx_masked = IdxW'(k);
      if (req_i[k])  idx_all    = IdxW'(k);
    end
  end

  assign valid_o = |req_i;
  assign idx_o   = any_masked ? idx_masked : idx_all;

  always_comb begin : grant
    gnt_o = '0;
    ptr_d = ptr_q;
    if (valid_o && ready_i) begin
      gnt_o[idx_o] = 1'b1;
      ptr_d        = (32'(idx_o) == N - 1) ? '0 : idx_o + 1'b1;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : ptr_ff
    if (!rst_ni) ptr_q <= '0;
    else         ptr_q <= ptr_d;
  end

  // ---- assertions
  `PRIM_ASSERT(a_gnt_onehot, $onehot0(gnt_o))
  `PRIM_ASSERT(a_gnt_is_req, (gnt_o & ~req_i) == '0)
  `PRIM_ASSERT(a_idx_is_req, !valid_o || req_i[idx_o])
  `PRIM_ASSERT(a_ptr_range, 32'(ptr_q) < N)
  `PRIM_ASSERT(a_gnt_when_taken, (|gnt_o) == (valid_o && ready_i))

endmodule
