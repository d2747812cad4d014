// TLB: fully associative, ASID-tagged, 4 KiB and 2 MiB entries (docs/device.md 6.3).
//
// Pipelined for the clock: the entry compare and the read of the hit entry are in
// different cycles.
//   lookup  cycle t: the request is compared with every entry and the hit vector is
//           registered; t+1: the answer (hit; ok = hit, the hit entry grants the access
//           and the requester's own checks `lu_check_i` of cycle t passed; superpage
//           flag, PPN) is read out of the hit entry onto `lu_*_o`. A lookup in the cycle
//           of an INVAL, a flush or a refill's write misses (no answer may come from an
//           entry that the INVAL removes or the refill overwrites).
//   drop    `drop_i` in t+1 drops the entry that the answer shown names (a failed
//           permission check).
//   refill  cycle t (`fill_i`): the entries that overlap the new page and the free
//           entries are found and registered with the new entry; cycle t+1: the victim
//           (lowest-numbered free entry, else the entry under a round-robin pointer
//           that advances on each such replacement) is written and the overlapping
//           entries of its ASID are dropped, so at most one entry ever hits. An INVAL
//           or flush in t+1 wins: the victim is left invalid. The MMU never refills in
//           the cycle of an INVAL (the walk result is not cached) and never twice in a
//           row (a walk takes several cycles).
// An INVAL (scope ALL / ASID / RANGE) and a flush take effect at the end of the cycle
// they are presented in.
`include "prim_assert.svh"

module npu_tlb #(
  parameter int unsigned Entries = 32
) (
  input  logic            clk_i,
  input  logic            rst_ni,
  // lookup: request in cycle t, answer in t+1
  input  logic [15:0]     lu_asid_i,
  input  logic [26:0]     lu_vpn_i,      // VA[38:12]
  input  logic            lu_write_i,
  input  logic            lu_check_i,    // the requester's own checks pass
  output logic            lu_hit_o,
  output logic            lu_ok_o,       // hit, access granted (R; W and D), check passed
  output logic            lu_super_o,
  output logic [28:0]     lu_ppn_o,
  // drop the entry that the answer shown this cycle names (failed permission check)
  input  logic            drop_i,
  // refill (written in the next cycle)
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

  localparam int unsigned IdxW     = Entries > 1 ? $clog2(Entries) : 1;
  localparam logic [1:0] ScopeAll  = 2'(npu_reg_pkg::INVAL_SCOPE_ALL);
  localparam logic [1:0] ScopeAsid = 2'(npu_reg_pkg::INVAL_SCOPE_ASID);

  logic [Entries-1:0] valid_d, valid_q, super_q, r_q, w_q, d_q;
  logic [15:0]        asid_q [Entries];
  logic [26:0]        vpn_q  [Entries];
  logic [28:0]        ppn_q  [Entries];
  logic [IdxW-1:0]    rr_d, rr_q;

  // An entry covers its page, or the 512 pages of its superpage.
  function automatic logic covers(logic sup, logic [26:0] base, logic [26:0] vpn);
    covers = sup ? base[26:9] == vpn[26:9] : base == vpn;
  endfunction

  // ---------------------------------------------------------------- lookup
  logic [Entries-1:0] hits, hits_q;
  logic               live_q, ok_en_q, write_q;
  always_comb begin : lookup_compare
    for (int unsigned e = 0; e < Entries; e++) begin
      hits[e] = valid_q[e] && asid_q[e] == lu_asid_i && covers(super_q[e], vpn_q[e], lu_vpn_i);
    end
  end

  logic fl_valid_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : lookup_live_ff
    if (!rst_ni) begin
      live_q  <= 1'b0;
      ok_en_q <= 1'b0;
    end else begin
      live_q  <= !inval_i && !flush_i && !fl_valid_q;
      ok_en_q <= !inval_i && !flush_i && !fl_valid_q && lu_check_i;
    end
  end
  // hits_q and write_q are only used while live_q is set.
  always_ff @(posedge clk_i) begin : lookup_hits_ff
    hits_q  <= hits;
    write_q <= lu_write_i;
  end

  // At most one entry hits (a_one_hit), so the hit entry's fields are an AND-OR over the
  // entries (a balanced tree, not a chain of 2:1 multiplexers).
  always_comb begin : lookup_read
    lu_ok_o    = 1'b0;
    lu_super_o = 1'b0;
    lu_ppn_o   = '0;
    for (int unsigned e = 0; e < Entries; e++) begin
      lu_ok_o    = lu_ok_o | (hits_q[e] && ok_en_q && (write_q ? w_q[e] && d_q[e] : r_q[e]));
      lu_super_o = lu_super_o | (hits_q[e] && super_q[e]);
      lu_ppn_o   = lu_ppn_o | (hits_q[e] ? ppn_q[e] : '0);
    end
  end
  assign lu_hit_o = live_q && |hits_q;

  // ---------------------------------------------------------------- refill, first cycle
  // The entries the new page overlaps (same ASID) and the free entries, registered.
  logic               fl_super_q, fl_r_q, fl_w_q, fl_d_q;
  logic [15:0]        fl_asid_q;
  logic [26:0]        fl_vpn_q;
  logic [28:0]        fl_ppn_q;
  logic [Entries-1:0] overlap, fl_overlap_q, fl_free_q;
  always_comb begin : fill_overlap
    for (int unsigned e = 0; e < Entries; e++) begin
      overlap[e] = valid_q[e] && asid_q[e] == fill_asid_i
                   && covers(super_q[e] || fill_super_i, vpn_q[e], fill_vpn_i);
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : fill_valid_ff
    if (!rst_ni) fl_valid_q <= 1'b0;
    else         fl_valid_q <= fill_i && !flush_i;
  end
  always_ff @(posedge clk_i) begin : fill_payload_ff
    if (fill_i) begin
      fl_overlap_q <= overlap;
      fl_free_q    <= ~valid_q | overlap;
      fl_asid_q    <= fill_asid_i;
      fl_vpn_q     <= fill_vpn_i;
      fl_super_q   <= fill_super_i;
      fl_ppn_q     <= fill_ppn_i;
      fl_r_q       <= fill_r_i;
      fl_w_q       <= fill_w_i;
      fl_d_q       <= fill_d_i;
    end
  end

  // ---------------------------------------------------------------- refill, second cycle
  // The victim as a one-hot vector: the lowest free entry (x & -x isolates the lowest
  // set bit), else the round-robin entry.
  logic [Entries-1:0] first_free, victim;
  logic               found_free;
  assign first_free = fl_free_q & (~fl_free_q + 1'b1);
  assign found_free = |fl_free_q;
  always_comb begin : victim_pick
    for (int unsigned e = 0; e < Entries; e++) victim[e] = found_free ? first_free[e] : rr_q == IdxW'(e);
  end

  // ---------------------------------------------------------------- valid bits
  logic [32:0] inval_first, inval_end;
  assign inval_first = 33'(inval_vpn_i);
  assign inval_end   = inval_first + (inval_pages_i == '0 ? 33'd1 : 33'(inval_pages_i));

  always_comb begin : update
    logic [32:0] e_first, e_end;
    valid_d = valid_q;
    rr_d    = rr_q;
    if (drop_i) valid_d = valid_d & ~hits_q;
    for (int unsigned e = 0; e < Entries; e++) begin
      e_first = super_q[e] ? {6'd0, vpn_q[e][26:9], 9'd0} : 33'(vpn_q[e]);
      e_end   = e_first + (super_q[e] ? 33'd512 : 33'd1);
      if (inval_i && (inval_scope_i == ScopeAll
          || (asid_q[e] == inval_asid_i && (inval_scope_i == ScopeAsid
              || (e_first < inval_end && inval_first < e_end))))) begin
        valid_d[e] = 1'b0;
      end
    end
    if (fl_valid_q) begin
      valid_d = valid_d & ~fl_overlap_q;
      // INVAL beats refill: the victim's payload is overwritten, so it stays invalid.
      valid_d = inval_i ? valid_d & ~victim : valid_d | victim;
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
    for (int unsigned e = 0; e < Entries; e++) begin
      if (fl_valid_q && victim[e]) begin
        asid_q[e]  <= fl_asid_q;
        vpn_q[e]   <= fl_vpn_q;
        super_q[e] <= fl_super_q;
        ppn_q[e]   <= fl_ppn_q;
        r_q[e]     <= fl_r_q;
        w_q[e]     <= fl_w_q;
        d_q[e]     <= fl_d_q;
      end
    end
  end

  // ---- assertions
  `PRIM_ASSERT(a_one_hit, $onehot0(hits))
  `PRIM_ASSERT(a_one_victim, !fl_valid_q || $onehot(victim))
  `PRIM_ASSUME(a_no_fill_during_inval, !(fill_i && inval_i))
  `PRIM_ASSUME(a_no_fill_back_to_back, !(fill_i && fl_valid_q))
  `PRIM_ASSERT_KNOWN(a_fill_known, fill_i ? {fill_asid_i, fill_vpn_i, fill_ppn_i} : '0)
`ifdef FORMAL
  // The invariant behind a_one_hit (formal only: Entries^2/2 compares per cycle): no two
  // valid entries of one ASID overlap; and a pending refill knows every valid entry it
  // overlaps (entries only become valid by a refill, so none can appear in between).
  for (genvar i = 0; i < Entries; i++) begin : gen_fv_i
    for (genvar j = i + 1; j < Entries; j++) begin : gen_fv_j
      `PRIM_ASSERT(a_no_overlap, !(valid_q[i] && valid_q[j] && asid_q[i] == asid_q[j]
                                   && covers(super_q[i] || super_q[j], vpn_q[i], vpn_q[j])))
    end
    `PRIM_ASSERT(a_fill_knows_overlap, !(fl_valid_q && valid_q[i] && asid_q[i] == fl_asid_q
                                         && covers(super_q[i] || fl_super_q, vpn_q[i], fl_vpn_q))
                                       || fl_overlap_q[i])
  end
`endif

endmodule
