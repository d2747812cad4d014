// Top of the NPU: everything between the hard-IP interfaces of a board.
//
// First light: the AXI4-Lite CSR slave, the generated CSR block, identification and
// capability registers, interrupt status, performance counters and error-injection
// counters. The DMA engine (host- and device-memory AXI4 masters), the MMU and the
// compute unit attach to the CSR outputs listed under "units to come" below.
module npu_top #(
  parameter int unsigned DataWidth  = 512,
  parameter int unsigned DevMemMiB  = 256,
  parameter int unsigned NumAsids   = 16,
  parameter int unsigned TlbEntries = 32,
  parameter int unsigned DmaChannels = 3,
  parameter int unsigned CuInflight = 4,
  localparam int unsigned NumIrq    = 7
) (
  input  logic                    clk_i,
  input  logic                    rst_ni,
  // AXI4-Lite CSR slave (BAR0)
  input  logic                    s_axil_awvalid_i,
  output logic                    s_axil_awready_o,
  input  logic [npu_reg_pkg::CsrAddrWidth-1:0] s_axil_awaddr_i,
  input  logic                    s_axil_wvalid_i,
  output logic                    s_axil_wready_o,
  input  logic [31:0]             s_axil_wdata_i,
  input  logic [3:0]              s_axil_wstrb_i,
  output logic                    s_axil_bvalid_o,
  input  logic                    s_axil_bready_i,
  output logic [1:0]              s_axil_bresp_o,
  input  logic                    s_axil_arvalid_i,
  output logic                    s_axil_arready_o,
  input  logic [npu_reg_pkg::CsrAddrWidth-1:0] s_axil_araddr_i,
  output logic                    s_axil_rvalid_o,
  input  logic                    s_axil_rready_i,
  output logic [31:0]             s_axil_rdata_o,
  output logic [1:0]              s_axil_rresp_o,
  // Interrupt vectors, one per INT_CAUSE (level; MSI-X vector i on a board)
  output logic [NumIrq-1:0]       irq_o
);

  localparam int unsigned NumCounters = 24;
  localparam int unsigned DataBytesLog2 = $clog2(DataWidth / 8);

  if (DataWidth < 64 || DataWidth > 1024 || (DataWidth & (DataWidth - 1)) != 0) begin : gen_bad_data_width
    $error("DataWidth must be a power of two in 64..1024");
  end
  if (DevMemMiB < 1 || DevMemMiB > 65535) begin : gen_bad_dev_mem
    $error("DevMemMiB must be in 1..65535");
  end
  if (NumAsids < 1 || NumAsids > 16) begin : gen_bad_asids
    $error("NumAsids must be in 1..16 (PTROOT has 16 elements)");
  end
  if (DmaChannels != 3) begin : gen_bad_dma_channels
    $error("DmaChannels must be 3 in spec v1");
  end
  if (TlbEntries < 1 || TlbEntries > 255 || CuInflight < 1 || CuInflight > 255) begin : gen_bad_sizes
    $error("TlbEntries and CuInflight must be in 1..255");
  end

  // ---------------------------------------------------------------- register bus
  logic                    reg_we, reg_re, reg_error;
  logic [npu_reg_pkg::CsrAddrWidth-1:0] reg_addr;
  logic [31:0]             reg_wdata, reg_rdata;
  logic [3:0]              reg_wstrb;

  npu_axil_slave #(
    .AddrWidth(npu_reg_pkg::CsrAddrWidth)
  ) u_axil (
    .clk_i,
    .rst_ni,
    .s_axil_awvalid_i,
    .s_axil_awready_o,
    .s_axil_awaddr_i,
    .s_axil_wvalid_i,
    .s_axil_wready_o,
    .s_axil_wdata_i,
    .s_axil_wstrb_i,
    .s_axil_bvalid_o,
    .s_axil_bready_i,
    .s_axil_bresp_o,
    .s_axil_arvalid_i,
    .s_axil_arready_o,
    .s_axil_araddr_i,
    .s_axil_rvalid_o,
    .s_axil_rready_i,
    .s_axil_rdata_o,
    .s_axil_rresp_o,
    .reg_we_o    (reg_we),
    .reg_re_o    (reg_re),
    .reg_addr_o  (reg_addr),
    .reg_wdata_o (reg_wdata),
    .reg_wstrb_o (reg_wstrb),
    .reg_rdata_i (reg_rdata),
    .reg_error_i (reg_error)
  );

  // ---------------------------------------------------------------- soft reset
  logic        soft_reset, reset_we;
  logic [31:0] reset_wd;
  assign soft_reset = reset_we && reset_wd[npu_reg_pkg::REG_RESET_SOFT_LSB];

  // ---------------------------------------------------------------- identification
  logic [31:0] caps0, caps1;
  assign caps0 = {8'(DataBytesLog2), 8'(TlbEntries), 8'(NumAsids), 8'(DmaChannels)};
  assign caps1 = {8'(40), 8'(CuInflight), 16'(DevMemMiB)};

  // ---------------------------------------------------------------- interrupts
  logic [31:0]       int_status;
  logic              int_ack_we;
  logic [NumIrq-1:0] cause_set;

  // No unit raises a cause yet: the DMA engine, MMU and compute unit drive these.
  assign cause_set = '0;

  npu_irq #(
    .NumCauses(NumIrq)
  ) u_irq (
    .clk_i,
    .rst_ni,
    .cause_set_i (cause_set),
    .ack_we_i    (int_ack_we),
    .ack_wd_i    (int_ack_wd[NumIrq-1:0]),
    .mask_i      (int_mask_q[NumIrq-1:0]),
    .status_o    (int_status),
    .irq_o
  );

  // ---------------------------------------------------------------- performance counters
  logic [NumCounters*8-1:0]  perf_inc;
  logic [NumCounters*32-1:0] perf_lo;
  logic [NumCounters-1:0]    perf_lo_re;
  logic [31:0]               perf_hi_shadow, perf_ctrl_wd;
  logic                      perf_ctrl_we;

  always_comb begin : perf_events
    perf_inc = '0;
    perf_inc[npu_reg_pkg::PERF_CTR_CYCLES*8 +: 8]       = 8'd1;
    perf_inc[npu_reg_pkg::PERF_CTR_CSR_ACCESSES*8 +: 8] = 8'(reg_we || reg_re);
  end

  npu_perf #(
    .NumCounters(NumCounters),
    .IncWidth(8)
  ) u_perf (
    .clk_i,
    .rst_ni,
    .inc_i       (perf_inc),
    .clear_i     (perf_ctrl_we && perf_ctrl_wd[npu_reg_pkg::REG_PERF_CTRL_CLEAR_LSB]),
    .lo_re_i     (perf_lo_re),
    .lo_o        (perf_lo),
    .hi_shadow_o (perf_hi_shadow)
  );

  // ---------------------------------------------------------------- error injection
  localparam int unsigned NumErrInj = 6;  // host rd, host wr, dev rd, dev wr, ptw, poison
  logic [NumErrInj-1:0]    errinj_we, errinj_event, errinj_inject;
  logic [NumErrInj*32-1:0] errinj_wd, errinj_count;

  // No unit consumes injections yet: the memory ports and the walker will.
  assign errinj_event = '0;

  for (genvar i = 0; i < NumErrInj; i++) begin : gen_errinj
    npu_errinj_counter u_counter (
      .clk_i,
      .rst_ni,
      .soft_reset_i (soft_reset),
      .we_i     (errinj_we[i]),
      .wd_i     (errinj_wd[i*32 +: 32]),
      .event_i  (errinj_event[i]),
      .inject_o (errinj_inject[i]),
      .count_o  (errinj_count[i*32 +: 32])
    );
  end

  // ---------------------------------------------------------------- units to come
  // CSR outputs that the DMA engine, MMU and compute unit will consume. Until those
  // units exist the registers are plain storage that software can read back.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [31:0] scratch_q, ctrl_q, dma_ch_ctrl_wd, errinj_hang_q;
  logic [31:0] cmdq_base_lo_q, cmdq_base_hi_q, cmdq_size_log2_q, cmdq_tail_q;
  logic [31:0] fq_base_lo_q, fq_base_hi_q, fq_size_log2_q, fq_head_q;
  logic [31:0] kq_base_lo_q, kq_base_hi_q, kq_size_log2_q, kq_tail_q;
  logic [31:0] kcq_base_lo_q, kcq_base_hi_q, kcq_size_log2_q, kcq_head_q;
  logic [DmaChannels*32-1:0] dma_desc_base_lo_q, dma_desc_base_hi_q, dma_desc_size_log2_q;
  logic [DmaChannels*32-1:0] dma_desc_tail_q, dma_cpl_base_lo_q, dma_cpl_base_hi_q;
  logic [DmaChannels*32-1:0] dma_cpl_size_log2_q, dma_cpl_head_q;
  logic [DmaChannels-1:0]    dma_ch_ctrl_we;
  logic [16*32-1:0]          ptroot_q;
  logic [NumErrInj-1:0]      errinj_inject_unused;
  // INT_MASK/INT_ACK bits above the last cause are reserved.
  logic [31:0]               int_mask_q, int_ack_wd;
  /* verilator lint_on UNUSEDSIGNAL */
  assign errinj_inject_unused = errinj_inject;

  // ---------------------------------------------------------------- CSR block
  npu_csr u_csr (
    .clk_i,
    .rst_ni,
    .soft_reset_i           (soft_reset),
    .reg_we_i               (reg_we),
    .reg_re_i               (reg_re),
    .reg_addr_i             (reg_addr),
    .reg_wdata_i            (reg_wdata),
    .reg_wstrb_i            (reg_wstrb),
    .reg_rdata_o            (reg_rdata),
    .reg_error_o            (reg_error),
    .caps0_i                (caps0),
    .caps1_i                (caps1),
    .scratch_q_o            (scratch_q),
    .ctrl_q_o               (ctrl_q),
    .status_i               ('0),
    .reset_we_o             (reset_we),
    .reset_wd_o             (reset_wd),
    .int_status_i           (int_status),
    .int_mask_q_o           (int_mask_q),
    .int_ack_we_o           (int_ack_we),
    .int_ack_wd_o           (int_ack_wd),
    .err_info_i             ('0),
    .cmdq_base_lo_q_o       (cmdq_base_lo_q),
    .cmdq_base_hi_q_o       (cmdq_base_hi_q),
    .cmdq_size_log2_q_o     (cmdq_size_log2_q),
    .cmdq_head_i            ('0),
    .cmdq_tail_q_o          (cmdq_tail_q),
    .fq_base_lo_q_o         (fq_base_lo_q),
    .fq_base_hi_q_o         (fq_base_hi_q),
    .fq_size_log2_q_o       (fq_size_log2_q),
    .fq_head_q_o            (fq_head_q),
    .fq_tail_i              ('0),
    .kq_base_lo_q_o         (kq_base_lo_q),
    .kq_base_hi_q_o         (kq_base_hi_q),
    .kq_size_log2_q_o       (kq_size_log2_q),
    .kq_head_i              ('0),
    .kq_tail_q_o            (kq_tail_q),
    .kcq_base_lo_q_o        (kcq_base_lo_q),
    .kcq_base_hi_q_o        (kcq_base_hi_q),
    .kcq_size_log2_q_o      (kcq_size_log2_q),
    .kcq_head_q_o           (kcq_head_q),
    .kcq_tail_i             ('0),
    .dma_desc_base_lo_q_o   (dma_desc_base_lo_q),
    .dma_desc_base_hi_q_o   (dma_desc_base_hi_q),
    .dma_desc_size_log2_q_o (dma_desc_size_log2_q),
    .dma_desc_head_i        ('0),
    .dma_desc_tail_q_o      (dma_desc_tail_q),
    .dma_cpl_base_lo_q_o    (dma_cpl_base_lo_q),
    .dma_cpl_base_hi_q_o    (dma_cpl_base_hi_q),
    .dma_cpl_size_log2_q_o  (dma_cpl_size_log2_q),
    .dma_cpl_head_q_o       (dma_cpl_head_q),
    .dma_cpl_tail_i         ('0),
    .dma_ch_status_i        ('0),
    .dma_ch_ctrl_we_o       (dma_ch_ctrl_we),
    .dma_ch_ctrl_wd_o       (dma_ch_ctrl_wd),
    .ptroot_q_o             (ptroot_q),
    .errinj_host_rd_we_o    (errinj_we[0]),
    .errinj_host_rd_wd_o    (errinj_wd[0*32 +: 32]),
    .errinj_host_rd_q_i     (errinj_count[0*32 +: 32]),
    .errinj_host_wr_we_o    (errinj_we[1]),
    .errinj_host_wr_wd_o    (errinj_wd[1*32 +: 32]),
    .errinj_host_wr_q_i     (errinj_count[1*32 +: 32]),
    .errinj_dev_rd_we_o     (errinj_we[2]),
    .errinj_dev_rd_wd_o     (errinj_wd[2*32 +: 32]),
    .errinj_dev_rd_q_i      (errinj_count[2*32 +: 32]),
    .errinj_dev_wr_we_o     (errinj_we[3]),
    .errinj_dev_wr_wd_o     (errinj_wd[3*32 +: 32]),
    .errinj_dev_wr_q_i      (errinj_count[3*32 +: 32]),
    .errinj_ptw_we_o        (errinj_we[4]),
    .errinj_ptw_wd_o        (errinj_wd[4*32 +: 32]),
    .errinj_ptw_q_i         (errinj_count[4*32 +: 32]),
    .errinj_poison_we_o     (errinj_we[5]),
    .errinj_poison_wd_o     (errinj_wd[5*32 +: 32]),
    .errinj_poison_q_i      (errinj_count[5*32 +: 32]),
    .errinj_hang_q_o        (errinj_hang_q),
    .perf_ctrl_we_o         (perf_ctrl_we),
    .perf_ctrl_wd_o         (perf_ctrl_wd),
    .perf_lo_i              (perf_lo),
    .perf_lo_re_o           (perf_lo_re),
    .perf_hi_i              ({NumCounters{perf_hi_shadow}})
  );

endmodule
