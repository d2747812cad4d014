// Black-box stub of the UltraScale+ GT reference-clock input buffer (UNISIM
// IBUFDS_GTE4, UG576). For lint and open-source synthesis only; Vivado uses the
// primitive. O feeds the GT (XDMA sys_clk_gt), ODIV2 the fabric (XDMA sys_clk).
/* verilator lint_off UNDRIVEN */
/* verilator lint_off UNUSEDSIGNAL */
(* blackbox *)
module IBUFDS_GTE4 (
  input  logic I,
  input  logic IB,
  input  logic CEB,
  output logic O,
  output logic ODIV2
);
endmodule
/* verilator lint_on UNUSEDSIGNAL */
/* verilator lint_on UNDRIVEN */
