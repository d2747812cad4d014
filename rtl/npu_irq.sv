// Interrupt status of the NPU: one sticky bit per cause, a mask, write-1-to-clear ack.
//
// A cause bit is set by a one-cycle pulse from its unit and cleared by writing 1 to
// its INT_ACK bit; a set and an ack in the same cycle leave the bit set so no event
// is lost. A soft reset clears every pending cause. Vector i of `irq_o` is high while cause i is pending and enabled (level
// semantics; a board's MSI-X bridge sends one message per rising edge).
module npu_irq #(
  parameter int unsigned NumCauses = 7
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  input  logic                 soft_reset_i,
  input  logic [NumCauses-1:0] cause_set_i,
  input  logic                 ack_we_i,
  input  logic [NumCauses-1:0] ack_wd_i,
  input  logic [NumCauses-1:0] mask_i,
  output logic [31:0]          status_o,
  output logic [NumCauses-1:0] irq_o
);

  if (NumCauses < 1 || NumCauses > 32) begin : gen_bad_num_causes
    $error("NumCauses must be in 1..32");
  end

  logic [NumCauses-1:0] pending_d, pending_q;
  logic [NumCauses-1:0] ack;

  assign ack = ack_we_i ? ack_wd_i : '0;

  always_comb begin : next_pending
    pending_d = soft_reset_i ? '0 : (pending_q & ~ack) | cause_set_i;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      pending_q <= '0;
    end else begin
      pending_q <= pending_d;
    end
  end

  assign status_o = 32'(pending_q);
  assign irq_o    = pending_q & mask_i;

  // ---- assertions
`ifndef SYNTHESIS
  a_irq_known: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(irq_o));
  // A cause that fires is pending in the next cycle, whatever the ack said.
  a_no_lost_cause: assert property (@(posedge clk_i) disable iff (!rst_ni)
      |cause_set_i && !soft_reset_i |=> (pending_q & $past(cause_set_i)) == $past(cause_set_i));
`endif

endmodule
