// Formal harness (scripts/formal.sh only): prim_reg_slice passes every transfer once,
// in order (sequence numbers as in fv_fifo_sync), and holds no more than two.
`include "prim_assert.svh"

module fv_reg_slice (
  input  logic clk_i,
  input  logic rst_ni,
  input  logic s_valid_i,
  input  logic m_ready_i
);
  localparam int unsigned W = 3;
  logic [W-1:0] scnt_q, mcnt_q, m_data;
  logic         s_ready, m_valid;

  prim_reg_slice #(
    .Width(W)
  ) u_dut (
    .clk_i,
    .rst_ni,
    .clr_i     (1'b0),
    .s_valid_i,
    .s_ready_o (s_ready),
    .s_data_i  (scnt_q),
    .m_valid_o (m_valid),
    .m_ready_i,
    .m_data_o  (m_data)
  );

  always_ff @(posedge clk_i or negedge rst_ni) begin : cnt_ff
    if (!rst_ni) begin
      scnt_q <= '0;
      mcnt_q <= '0;
    end else begin
      scnt_q <= scnt_q + W'(s_valid_i && s_ready);
      mcnt_q <= mcnt_q + W'(m_valid && m_ready_i);
    end
  end

  `PRIM_ASSERT(a_in_order, !m_valid || m_data == mcnt_q)
  `PRIM_ASSERT(a_at_most_two, W'(scnt_q - mcnt_q) <= 3'd2)
  `PRIM_ASSERT(a_full_throughput, s_ready || m_valid)
endmodule
