// TLB: fully associative, ASID-tagged, 4 KiB and 2 MiB entries (docs/device.md 6.3).
//
// One combinational lookup port, one refill port, one single-entry invalidation (a
// failed permission check drops the entry that hit) and the INVAL command port. A
// refill first drops every entry of its ASID that overlaps the new page, so at most one
// entry ever hits; the victim is the lowest-numbered free entry, else the entry under a
// round-robin pointer. The MMU never refills in the cycle of an INVAL (the invalidation
// wins: the walk that would refill is restarted instead).
`include "prim_assert.svh"

module npu_tlb #(
  parameter int unsigned Entries = 32,
  localparam int unsigned IdxW   = Entries > 1 ? $clog2(Entries) : 1
) (
  input  logic            clk_i,
  input  logic            rst_ni,
  // lookup (combinational)
  input  logic [15:0]     lu_asid_i,
  input  logic [26:0]     lu_vpn_i,      // VA[38:12]
  output logic            lu_hit_o,
  output logic [IdxW-1:0] lu_idx_o,
  output logic            lu_super_o,
  output logic [28:0]     lu_ppn_o,
  output logic            lu_r_o,
  output logic            lu_w_o,
  output logic            lu_d_o,
  // drop the entry `drop_idx_i` (failed permission check)
  input  logic            drop_i,
  input  logic [IdxW-1:0] drop_idx_i,
  // refill
  input  logic            fill_i,
  input  logic [15:0]     fill_asid_i,
  input  logic [26:0]     fill_vpn_i,
  input  logic            fill_super_i,
  input  logic [28:0]     fill_ppn_i,
  input  logic            fill_r_i,
  input  logic            fill_w_i,
  input  logic            fill_d_i,
  // INVAL command: scope ALL / ASID / RANGE over [first page, first page + pages)
  input  logic            inval_i,
  input  logic [1:0]      inval_scope_i,
  input  logic [15:0]     inval_asid_i,
  input  logic [26:0]     inval_vpn_i,
  input  logic [31:0]     inval_pages_i,
  // soft reset: drop everything
  input  logic            flush_i
);

  localparam logic [1:0] ScopeAll  = 2'(npu_reg_pkg::INVAL_SCOPE_ALL);
  localparam logic [1:0] ScopeAsid = 2'(npu_reg_pkg::INVAL_SCOPE_ASID);

  logic [Entries-1:0] valid_d, valid_q, super_q, r_q, w_q, d_q;
  logic [15:0]        asid_q [Entries];
  logic [26:0]        vpn_q  [Entries];
  logic [28:0]        ppn_q  [Entries];
  logic [IdxW-1:0]    rr_d, rr_q, victim;

  // An entry covers its page, or the 512 pages of its superpage.
  function automatic logic covers(logic sup, logic [26:0] base, logic [26:0] vpn);
    covers = sup ? base[26:9] == vpn[26:9] : base == vpn;
  endfunction

  // ---------------------------------------------------------------- lookup
  // At most one entry hits (a_one_hit), so the hit entry's fields are an AND-OR over the
  // entries (a balanced tree, not a chain of 2:1 multiplexers).
  logic [Entries-1:0] hits;
  always_comb begin : lookup
    hits       = '0;
    lu_idx_o   = '0;
    lu_super_o = 1'b0;
    lu_ppn_o   = '0;
    lu_r_o     = 1'b0;
    lu_w_o     = 1'b0;
    lu_d_o     = 1'b0;
    for (int unsigned e = 0; e < Entries; e++) begin
      hits[e]    = valid_q[e] && asid_q[e] == lu_asid_i && covers(super_q[e], vpn_q[e], lu_vpn_i);
      lu_idx_o   = lu_idx_o | (hits[e] ? IdxW'(e) : '0);
      lu_super_o = lu_super_o | (hits[e] && super_q[e]);
      lu_ppn_o   = lu_ppn_o | (hits[e] ? ppn_q[e] : '0);
      lu_r_o     = lu_r_o | (hits[e] && r_q[e]);
      lu_w_o     = lu_w_o | (hits[e] && w_q[e]);
      lu_d_o     = lu_d_o | (hits[e] && d_q[e]);
    end
  end
  assign lu_hit_o = |hits;

  // ---------------------------------------------------------------- invalidation and refill
  logic [32:0] inval_first, inval_end;
  assign inval_first = 33'(inval_vpn_i);
  assign inval_end   = inval_first + (inval_pages_i == '0 ? 33'd1 : 33'(inval_pages_i));

  logic [Entries-1:0] overlap, free_after, first_free;
  logic               found_free;
  always_comb begin : update
    logic [32:0] e_first, e_end;
    valid_d    = valid_q;
    overlap    = '0;
    victim     = rr_q;
    found_free = 1'b0;
    rr_d       = rr_q;
    if (drop_i) valid_d[drop_idx_i] = 1'b0;
    for (int unsigned e = 0; e < Entries; e++) begin
      e_first = super_q[e] ? {6'd0, vpn_q[e][26:9], 9'd0} : 33'(vpn_q[e]);
      e_end   = e_first + (super_q[e] ? 33'd512 : 33'd1);
      if (inval_i && (inval_scope_i == ScopeAll
          || (asid_q[e] == inval_asid_i && (inval_scope_i == ScopeAsid
              || (e_first < inval_end && inval_first < e_end))))) begin
        valid_d[e] = 1'b0;
      end
      overlap[e] = fill_i && valid_q[e] && asid_q[e] == fill_asid_i
                   && (covers(super_q[e] || fill_super_i, vpn_q[e], fill_vpn_i));
    end
    // The lowest free entry: isolate the lowest set bit (x & -x), then encode it.
    free_after = ~valid_q | overlap;
    first_free = free_after & (~free_after + 1'b1);
    found_free = |free_after;
    if (found_free) begin
      victim = '0;
      for (int unsigned e = 0; e < Entries; e++) victim = victim | (first_free[e] ? IdxW'(e) : '0);
    end
    if (fill_i) begin
      valid_d = valid_d & ~overlap;
      valid_d[victim] = 1'b1;
      if (!found_free) rr_d = (int'(rr_q) == Entries - 1) ? '0 : rr_q + 1'b1;
    end
    if (flush_i) valid_d = '0;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      valid_q <= '0;
      rr_q    <= '0;
    end else begin
      valid_q <= valid_d;
      rr_q    <= rr_d;
    end
  end

  // Entry payload needs no reset: it is only read while its valid bit is set.
  always_ff @(posedge clk_i) begin : payload_ff
    if (fill_i) begin
      asid_q[victim]  <= fill_asid_i;
      vpn_q[victim]   <= fill_vpn_i;
      super_q[victim] <= fill_super_i;
      ppn_q[victim]   <= fill_ppn_i;
      r_q[victim]     <= fill_r_i;
      w_q[victim]     <= fill_w_i;
      d_q[victim]     <= fill_d_i;
    end
  end

  // ---- assertions
  `PRIM_ASSERT(a_one_hit, $onehot0(hits))
  `PRIM_ASSUME(a_no_fill_during_inval, !(fill_i && inval_i))
  `PRIM_ASSERT_KNOWN(a_fill_known, fill_i ? {fill_asid_i, fill_vpn_i, fill_ppn_i} : '0)
`ifdef FORMAL
  // The invariant behind a_one_hit (formal only: Entries^2/2 compares per cycle): no two
  // valid entries of one ASID overlap.
  for (genvar i = 0; i < Entries; i++) begin : gen_fv_i
    for (genvar j = i + 1; j < Entries; j++) begin : gen_fv_j
      `PRIM_ASSERT(a_no_overlap, !(valid_q[i] && valid_q[j] && asid_q[i] == asid_q[j]
                                   && covers(super_q[i] || super_q[j], vpn_q[i], vpn_q[j])))
    end
  end
`endif

endmodule
