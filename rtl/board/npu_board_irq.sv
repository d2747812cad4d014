// NPU interrupt lines onto the PCIe bridge's user interrupts, one MSI-X vector each.
//
// Mapping: NPU line i (INT_CAUSE bit i, docs/device.md §11) drives usr_irq_req[i]; in
// AXI Bridge mode with internal MSI-X the bridge sends user interrupt i as MSI-X
// vector i (PG195, "MSI and Internal MSI-X Interrupts"), so INT_CAUSE i = MSI-X vector i,
// as the driver expects.
//
// Handshake (PG195): a request, once raised, stays high until its usr_irq_ack; the
// bridge sends one message per request. Here a request rises with its NPU line and
// falls once it has been acknowledged and the line has fallen (the host cleared the
// cause): a cause that stays pending sends no second message (the host's wait_irq
// re-reads INT_STATUS), and a line that falls before the ack still gets its message.
// Every output comes from a register.
`include "prim_assert.svh"

module npu_board_irq #(
  parameter int unsigned NumIrq = 7
) (
  input  logic              clk_i,
  input  logic              rst_ni,
  input  logic [NumIrq-1:0] irq_i,          // npu_top irq_o (level)
  output logic [NumIrq-1:0] usr_irq_req_o,  // to the bridge
  input  logic [NumIrq-1:0] usr_irq_ack_i   // from the bridge (one-cycle pulse)
);

  `PRIM_ASSERT_INIT(gen_bad_num_irq, NumIrq >= 1 && NumIrq <= 16)

  logic [NumIrq-1:0] req_d, req_q, acked_d, acked_q;
  logic [NumIrq-1:0] acked, done;

  // Per vector: idle → request on the line; requested → acked once the ack pulse came;
  // done when acked and the line is low.
  assign acked   = req_q & (acked_q | usr_irq_ack_i);
  assign done    = acked & ~irq_i;
  assign req_d   = (req_q & ~done) | (~req_q & irq_i);
  assign acked_d = acked & ~done;

  always_ff @(posedge clk_i or negedge rst_ni) begin : req_ff
    if (!rst_ni) begin
      req_q   <= '0;
      acked_q <= '0;
    end else begin
      req_q   <= req_d;
      acked_q <= acked_d;
    end
  end

  assign usr_irq_req_o = req_q;

  // ---- assertions
  `PRIM_ASSUME(a_ack_only_for_req, (usr_irq_ack_i & ~req_q) == '0)
  // A request never falls before its acknowledgement.
  logic [NumIrq-1:0] unacked_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : unacked_ff
    if (!rst_ni) unacked_q <= '0;
    else         unacked_q <= req_q & ~acked_q & ~usr_irq_ack_i;
  end
  `PRIM_ASSERT(a_req_held, (unacked_q & ~req_q) == '0)

endmodule
