// Assertion macros shared by simulation (Verilator --assert) and formal (Yosys
// `read_verilog -formal -sv`, `sat -tempinduct -prove-asserts`), after OpenTitan's
// prim_assert.sv. The same line serves both: each macro expands to an immediate
// assertion in a clocked process, which both front ends accept (Yosys rejects
// module-level `assert property (@(posedge clk) ...)` and SVA implication operators).
//
//   `PRIM_ASSERT(name, prop)              prop holds at every clk_i edge out of reset
//   `PRIM_ASSERT_NEXT(name, ante, cons)   ante |=> cons (one cycle later, reset-safe)
//   `PRIM_ASSUME(name, prop)              environment constraint: assumed by formal,
//                                         checked like an assertion in simulation
//   `PRIM_ASSUME_NEXT(name, ante, cons)   ante |=> cons as an environment constraint
//   `PRIM_ASSERT_INIT(name, prop)         elaboration-time check of parameters
//   `PRIM_ASSERT_KNOWN(name, sig)         no X/Z on sig (simulation only; formal proofs
//                                         and our 2-state simulator cannot see X, so it
//                                         fires only in a 4-state simulator)
// The clock and active-low reset are `clk_i` and `rst_ni`; the _CR variants take them.
// Assertions are compiled when simulating (SYNTHESIS undefined) or proving (FORMAL);
// plain synthesis sees nothing.
`ifndef PRIM_ASSERT_SVH
`define PRIM_ASSERT_SVH

`define PRIM_STRINGIFY(x) `"x`"

`ifdef FORMAL
  `define PRIM_ASSERT_ON
`elsif SYNTHESIS
`else
  `define PRIM_ASSERT_ON
`endif

`ifdef PRIM_ASSERT_ON

`define PRIM_ASSERT_CR(name, prop, clk, rst_n)  \
  always @(posedge clk) begin : name           \
    if (rst_n) begin                           \
      assert (prop);                           \
    end                                        \
  end

// `name`_past_q: the antecedent held in the previous cycle, out of reset.
`define PRIM_ASSERT_NEXT_CR(name, ante, cons, clk, rst_n)  \
  logic name``_past_q;                                    \
  always @(posedge clk or negedge rst_n) begin            \
    if (!rst_n) name``_past_q <= 1'b0;                    \
    else        name``_past_q <= (ante);                  \
  end                                                     \
  always @(posedge clk) begin : name                      \
    if (rst_n && name``_past_q) begin                     \
      assert (cons);                                      \
    end                                                   \
  end

`ifdef FORMAL
`define PRIM_ASSUME_CR(name, prop, clk, rst_n)  \
  always @(posedge clk) begin : name           \
    if (rst_n) begin                           \
      assume (prop);                           \
    end                                        \
  end
`define PRIM_ASSUME_NEXT_CR(name, ante, cons, clk, rst_n)  \
  logic name``_past_q;                                    \
  always @(posedge clk or negedge rst_n) begin            \
    if (!rst_n) name``_past_q <= 1'b0;                    \
    else        name``_past_q <= (ante);                  \
  end                                                     \
  always @(posedge clk) begin : name                      \
    if (rst_n && name``_past_q) begin                     \
      assume (cons);                                      \
    end                                                   \
  end
`define PRIM_ASSERT_KNOWN(name, sig)
`else
`define PRIM_ASSUME_CR(name, prop, clk, rst_n) `PRIM_ASSERT_CR(name, prop, clk, rst_n)
`define PRIM_ASSUME_NEXT_CR(name, ante, cons, clk, rst_n) `PRIM_ASSERT_NEXT_CR(name, ante, cons, clk, rst_n)
`define PRIM_ASSERT_KNOWN(name, sig) `PRIM_ASSERT_CR(name, !$isunknown(sig), clk_i, rst_ni)
`endif

`else  // no assertions in plain synthesis

`define PRIM_ASSERT_CR(name, prop, clk, rst_n)
`define PRIM_ASSERT_NEXT_CR(name, ante, cons, clk, rst_n)
`define PRIM_ASSUME_CR(name, prop, clk, rst_n)
`define PRIM_ASSUME_NEXT_CR(name, ante, cons, clk, rst_n)
`define PRIM_ASSERT_KNOWN(name, sig)

`endif

`define PRIM_ASSERT(name, prop) `PRIM_ASSERT_CR(name, prop, clk_i, rst_ni)
`define PRIM_ASSERT_NEXT(name, ante, cons) `PRIM_ASSERT_NEXT_CR(name, ante, cons, clk_i, rst_ni)
`define PRIM_ASSUME(name, prop) `PRIM_ASSUME_CR(name, prop, clk_i, rst_ni)
`define PRIM_ASSUME_NEXT(name, ante, cons) `PRIM_ASSUME_NEXT_CR(name, ante, cons, clk_i, rst_ni)

// Parameter checks hold in every flow (elaboration error).
`define PRIM_ASSERT_INIT(name, prop)                                \
  if (!(prop)) begin : name                                        \
    $error("%m: parameter check failed: %s", `PRIM_STRINGIFY(prop)); \
  end

`endif  // PRIM_ASSERT_SVH
