// Self-checking testbench of the board shell's own logic (run by
// sim-bridge/tests/board_shell.rs with `verilator --binary --timing --assert`):
// npu_board_bar0 between an AXI4 master driven here and an AXI4-Lite register model
// with random ready delays, and npu_board_irq against the bridge's usr_irq handshake.
// Prints PASS at the end; any failed check stops with $fatal. The testbench drives its
// inputs at the falling edge and samples one time unit later, so what it sees is what
// the next rising edge sees.
module tb_npu_board;
  logic clk = 1'b0;
  logic rst_n = 1'b0;
  always #2 clk = ~clk;

  // xorshift for stalls
  logic [31:0] rnd = 32'h1234_5678;
  always @(posedge clk) rnd <= rnd ^ (rnd << 13) ^ (rnd >> 17) ^ (rnd << 5);

  // ------------------------------------------------------------ AXI4 side (bridge)
  logic [3:0]   awid, bid, arid, rid;
  logic [63:0]  awaddr, araddr;
  logic [7:0]   awlen, arlen;
  logic [2:0]   awsize, arsize;
  logic         awvalid = 0, awready, wlast, wvalid = 0, wready, bvalid, bready = 0;
  logic         arvalid = 0, arready, rlast, rvalid, rready = 0;
  logic [511:0] wdata, rdata;
  logic [63:0]  wstrb;
  logic [1:0]   bresp, rresp;

  // ------------------------------------------------------------ AXI4-Lite side (CSRs)
  logic        l_awvalid, l_awready, l_wvalid, l_wready, l_bvalid, l_bready;
  logic        l_arvalid, l_arready, l_rvalid, l_rready;
  logic [11:0] l_awaddr, l_araddr;
  logic [31:0] l_wdata, l_rdata;
  logic [3:0]  l_wstrb;
  logic [1:0]  l_bresp, l_rresp;

  npu_board_bar0 dut (
    .clk_i(clk), .rst_ni(rst_n),
    .s_awid_i(awid), .s_awaddr_i(awaddr), .s_awlen_i(awlen), .s_awsize_i(awsize),
    .s_awvalid_i(awvalid), .s_awready_o(awready),
    .s_wdata_i(wdata), .s_wstrb_i(wstrb), .s_wlast_i(wlast), .s_wvalid_i(wvalid), .s_wready_o(wready),
    .s_bid_o(bid), .s_bresp_o(bresp), .s_bvalid_o(bvalid), .s_bready_i(bready),
    .s_arid_i(arid), .s_araddr_i(araddr), .s_arlen_i(arlen), .s_arsize_i(arsize),
    .s_arvalid_i(arvalid), .s_arready_o(arready),
    .s_rid_o(rid), .s_rdata_o(rdata), .s_rresp_o(rresp), .s_rlast_o(rlast), .s_rvalid_o(rvalid),
    .s_rready_i(rready),
    .m_axil_awvalid_o(l_awvalid), .m_axil_awready_i(l_awready), .m_axil_awaddr_o(l_awaddr),
    .m_axil_wvalid_o(l_wvalid), .m_axil_wready_i(l_wready), .m_axil_wdata_o(l_wdata),
    .m_axil_wstrb_o(l_wstrb), .m_axil_bvalid_i(l_bvalid), .m_axil_bready_o(l_bready),
    .m_axil_bresp_i(l_bresp), .m_axil_arvalid_o(l_arvalid), .m_axil_arready_i(l_arready),
    .m_axil_araddr_o(l_araddr), .m_axil_rvalid_i(l_rvalid), .m_axil_rready_o(l_rready),
    .m_axil_rdata_i(l_rdata), .m_axil_rresp_i(l_rresp)
  );

  // Register model: 64 words at 0x000-0x0FF, word 0 reads "NPU1"; other offsets SLVERR.
  logic [31:0] regs [64];
  int lite_writes = 0, lite_reads = 0;
  logic aw_got = 0, w_got = 0;
  logic [11:0] aw_q;
  logic [31:0] wd_q;
  logic [3:0]  ws_q;
  assign l_awready = !aw_got && rnd[0];
  assign l_wready  = !w_got && rnd[1];
  assign l_arready = !l_rvalid && rnd[2];
  always @(posedge clk) begin
    if (!rst_n) begin
      aw_got <= 0; w_got <= 0; l_bvalid <= 0; l_rvalid <= 0;
      for (int i = 0; i < 64; i++) regs[i] <= 32'(i);
      regs[0] <= 32'h3155_504E;  // "NPU1"
    end else begin
      if (l_awvalid && l_awready) begin aw_got <= 1; aw_q <= l_awaddr; end
      if (l_wvalid && l_wready) begin w_got <= 1; wd_q <= l_wdata; ws_q <= l_wstrb; end
      if (aw_got && w_got && !l_bvalid) begin
        l_bvalid <= 1;
        l_bresp <= aw_q < 12'h100 ? 2'b00 : 2'b10;
        if (aw_q < 12'h100)
          for (int b = 0; b < 4; b++) if (ws_q[b]) regs[aw_q[7:2]][8*b +: 8] <= wd_q[8*b +: 8];
        lite_writes <= lite_writes + 1;
      end
      if (l_bvalid && l_bready) begin l_bvalid <= 0; aw_got <= 0; w_got <= 0; end
      if (l_arvalid && l_arready) begin
        l_rvalid <= 1;
        l_rdata <= l_araddr < 12'h100 ? regs[l_araddr[7:2]] : 32'hBAD0_BAD0;
        l_rresp <= l_araddr < 12'h100 ? 2'b00 : 2'b10;
        lite_reads <= lite_reads + 1;
      end else if (l_rvalid && l_rready) begin
        l_rvalid <= 0;
      end
    end
  end

  // Random back-pressure on B and R.
  always @(negedge clk) begin
    bready <= rnd[3] | rnd[4];
    rready <= rnd[5] | rnd[6];
  end

  task automatic check(input bit ok, input string what);
    if (!ok) $fatal(1, "FAIL: %s", what);
  endtask

  // Waits until the signals settle after a falling edge (inputs are driven there).
  task automatic low_phase();
    @(negedge clk);
    #1;
  endtask

  // One AXI4 write: `beats` beats, data word `d` with strobes `s` on the lane of addr.
  task automatic axi_write(input logic [3:0] id, input logic [63:0] a, input logic [2:0] size,
                           input int beats, input logic [31:0] d, input logic [3:0] s,
                           output logic [1:0] resp);
    int lane = int'(a[5:2]);
    @(negedge clk);
    awid = id; awaddr = a; awlen = 8'(beats - 1); awsize = size; awvalid = 1;
    #1;
    while (!awready) low_phase();
    @(negedge clk);
    awvalid = 0;
    for (int i = 0; i < beats; i++) begin
      wdata = '0; wstrb = '0;
      wdata[32*lane +: 32] = d;
      wstrb[4*lane +: 4] = s;
      wlast = i == beats - 1;
      wvalid = 1;
      #1;
      while (!wready) low_phase();
      @(negedge clk);
      wvalid = 0;
    end
    #1;
    while (!(bvalid && bready)) low_phase();
    check(bid == id, "B carries the write's ID");
    resp = bresp;
    @(posedge clk);
  endtask

  // One AXI4 read of `beats` beats; returns the first beat's lane word and every resp.
  task automatic axi_read(input logic [3:0] id, input logic [63:0] a, input logic [2:0] size,
                          input int beats, output logic [31:0] d, output logic [1:0] resp);
    int n = 0;
    @(negedge clk);
    arid = id; araddr = a; arlen = 8'(beats - 1); arsize = size; arvalid = 1;
    #1;
    while (!arready) low_phase();
    @(negedge clk);
    arvalid = 0;
    resp = 2'b00;
    #1;
    while (n < beats) begin
      if (rvalid && rready) begin
        check(rid == id, "R carries the read's ID");
        check(rlast == (n == beats - 1), "RLAST on exactly the last beat");
        if (n == 0) begin
          d = rdata[32*int'(a[5:2]) +: 32];
          check(rdata == {16{rdata[31:0]}}, "read word on every lane");
        end
        resp |= rresp;
        n++;
      end
      if (n < beats) low_phase();
    end
    @(posedge clk);
  endtask

  // ------------------------------------------------------------ interrupts
  logic [6:0] irq = '0, req, ack = '0;
  npu_board_irq #(.NumIrq(7)) dut_irq (
    .clk_i(clk), .rst_ni(rst_n), .irq_i(irq), .usr_irq_req_o(req), .usr_irq_ack_i(ack)
  );

  task automatic cycles(input int n);
    repeat (n) @(negedge clk);
  endtask

  initial begin
    logic [1:0] r;
    logic [31:0] d;
    int w0, r0;
    cycles(4);
    rst_n = 1;
    cycles(2);

    // CSR path
    axi_read(4'd3, 64'h0, 3'd2, 1, d, r);
    check(r == 2'b00 && d == 32'h3155_504E, "ID register reads NPU1");
    axi_write(4'd5, 64'h10, 3'd2, 1, 32'hDEAD_BEEF, 4'hF, r);
    check(r == 2'b00, "32-bit write OKAY");
    axi_read(4'd6, 64'h10, 3'd2, 1, d, r);
    check(r == 2'b00 && d == 32'hDEAD_BEEF, "32-bit write reads back");
    axi_write(4'd1, 64'h12, 3'd1, 1, 32'h1234_0000, 4'b1100, r);
    axi_read(4'd1, 64'h10, 3'd2, 1, d, r);
    check(d == 32'h1234_BEEF, "16-bit write touches only its strobed bytes");
    axi_read(4'd2, 64'h3C, 3'd2, 1, d, r);
    check(r == 2'b00 && d == 32'd15, "word on the last lane of a beat");
    axi_read(4'd2, 64'h900, 3'd2, 1, d, r);
    check(r == 2'b10, "CSR error response passes through");
    axi_write(4'd2, 64'h900, 3'd2, 1, 32'h0, 4'hF, r);
    check(r == 2'b10, "CSR write error passes through");

    // Outside the rules: no CSR access, SLVERR on every beat.
    w0 = lite_writes; r0 = lite_reads;
    axi_read(4'd7, 64'h20, 3'd2, 4, d, r);
    check(r == 2'b10, "4-beat read is SLVERR");
    axi_write(4'd7, 64'h20, 3'd2, 2, 32'h5555_5555, 4'hF, r);
    check(r == 2'b10, "2-beat write is SLVERR");
    axi_write(4'd7, 64'h20, 3'd3, 1, 32'h5555_5555, 4'hF, r);
    check(r == 2'b10, "8-byte write is SLVERR");
    check(lite_writes == w0 && lite_reads == r0, "refused bursts never reach a CSR");
    axi_read(4'd7, 64'h20, 3'd2, 1, d, r);
    check(d == 32'd8, "refused writes left the register alone");

    axi_write(4'd8, 64'h40, 3'd2, 1, 32'hCAFE_F00D, 4'hF, r);
    axi_read(4'd9, 64'h44, 3'd2, 1, d, r);
    check(r == 2'b00 && d == 32'd17, "read after a write");
    axi_read(4'd8, 64'h40, 3'd2, 1, d, r);
    check(d == 32'hCAFE_F00D, "write landed");

    // Interrupts: a request rises with its line, and stays until acknowledged. (Whole
    // vectors are assigned: Verilator 5.006 does not re-evaluate logic fed by a
    // bit-select written from a suspended initial block.)
    irq = 7'b000_0100; cycles(2);
    check(req == 7'b000_0100, "request follows the line");
    irq = '0; cycles(3);
    check(req[2], "request held until its ack although the line fell");
    ack = 7'b000_0100; cycles(1); ack = '0; cycles(2);
    check(req == '0, "acked request with the line low falls");
    // A line that stays high after the ack sends no second message.
    irq = 7'b010_0000; cycles(2); ack = 7'b010_0000; cycles(1); ack = '0; cycles(3);
    check(req[5], "request stays while the cause is pending");
    irq = '0; cycles(2);
    check(!req[5], "request falls when the host clears the cause");
    irq = 7'b010_0000; cycles(2);
    check(req[5], "a new event raises a new request");
    irq = '0; ack = 7'b010_0000; cycles(1); ack = '0; cycles(2);
    check(req == '0, "all requests done");

    $display("PASS");
    $finish;
  end

  initial begin
    #200000;
    $fatal(1, "FAIL: timeout");
  end
endmodule
