// Top of the NPU: everything between the hard-IP interfaces of a board.
//
// The AXI4-Lite CSR slave and generated CSR block, identification and capability
// registers, interrupt status, performance counters, error-injection counters, the
// DMA engine, the command queue, the MMU (TLB, walker, fault queue) and the compute
// unit, sharing the host-memory and device-memory AXI4 masters.
module npu_top #(
  parameter int unsigned DataWidth  = 512,
  parameter int unsigned DevMemMiB  = 256,
  parameter int unsigned NumAsids   = 16,
  parameter int unsigned TlbEntries = 32,
  parameter int unsigned DmaChannels = 3,
  parameter int unsigned CuInflight = 4,
  parameter int unsigned AxiIdWidth = 4,
  parameter int unsigned MaxReadBursts = 16,
  localparam int unsigned NumIrq    = 7,
  localparam int unsigned StrbWidth = DataWidth / 8
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
  // AXI4 host-memory master (addresses are host IOVAs)
  output logic [AxiIdWidth-1:0]   m_axi_host_awid_o,
  output logic [63:0]             m_axi_host_awaddr_o,
  output logic [7:0]              m_axi_host_awlen_o,
  output logic [2:0]              m_axi_host_awsize_o,
  output logic [1:0]              m_axi_host_awburst_o,
  output logic                    m_axi_host_awvalid_o,
  input  logic                    m_axi_host_awready_i,
  output logic [DataWidth-1:0]    m_axi_host_wdata_o,
  output logic [StrbWidth-1:0]    m_axi_host_wstrb_o,
  output logic                    m_axi_host_wlast_o,
  output logic                    m_axi_host_wvalid_o,
  input  logic                    m_axi_host_wready_i,
  input  logic [AxiIdWidth-1:0]   m_axi_host_bid_i,
  input  logic [1:0]              m_axi_host_bresp_i,
  input  logic                    m_axi_host_bvalid_i,
  output logic                    m_axi_host_bready_o,
  output logic [AxiIdWidth-1:0]   m_axi_host_arid_o,
  output logic [63:0]             m_axi_host_araddr_o,
  output logic [7:0]              m_axi_host_arlen_o,
  output logic [2:0]              m_axi_host_arsize_o,
  output logic [1:0]              m_axi_host_arburst_o,
  output logic                    m_axi_host_arvalid_o,
  input  logic                    m_axi_host_arready_i,
  input  logic [AxiIdWidth-1:0]   m_axi_host_rid_i,
  input  logic [DataWidth-1:0]    m_axi_host_rdata_i,
  input  logic [1:0]              m_axi_host_rresp_i,
  input  logic                    m_axi_host_rlast_i,
  input  logic                    m_axi_host_rvalid_i,
  output logic                    m_axi_host_rready_o,
  // AXI4 device-memory master (device-physical addresses)
  output logic [AxiIdWidth-1:0]   m_axi_dev_awid_o,
  output logic [39:0]             m_axi_dev_awaddr_o,
  output logic [7:0]              m_axi_dev_awlen_o,
  output logic [2:0]              m_axi_dev_awsize_o,
  output logic [1:0]              m_axi_dev_awburst_o,
  output logic                    m_axi_dev_awvalid_o,
  input  logic                    m_axi_dev_awready_i,
  output logic [DataWidth-1:0]    m_axi_dev_wdata_o,
  output logic [StrbWidth-1:0]    m_axi_dev_wstrb_o,
  output logic                    m_axi_dev_wlast_o,
  output logic                    m_axi_dev_wvalid_o,
  input  logic                    m_axi_dev_wready_i,
  input  logic [AxiIdWidth-1:0]   m_axi_dev_bid_i,
  input  logic [1:0]              m_axi_dev_bresp_i,
  input  logic                    m_axi_dev_bvalid_i,
  output logic                    m_axi_dev_bready_o,
  output logic [AxiIdWidth-1:0]   m_axi_dev_arid_o,
  output logic [39:0]             m_axi_dev_araddr_o,
  output logic [7:0]              m_axi_dev_arlen_o,
  output logic [2:0]              m_axi_dev_arsize_o,
  output logic [1:0]              m_axi_dev_arburst_o,
  output logic                    m_axi_dev_arvalid_o,
  input  logic                    m_axi_dev_arready_i,
  input  logic [AxiIdWidth-1:0]   m_axi_dev_rid_i,
  input  logic [DataWidth-1:0]    m_axi_dev_rdata_i,
  input  logic [1:0]              m_axi_dev_rresp_i,
  input  logic                    m_axi_dev_rlast_i,
  input  logic                    m_axi_dev_rvalid_i,
  output logic                    m_axi_dev_rready_o,
  // Interrupt vectors, one per INT_CAUSE (level; MSI-X vector i on a board)
  output logic [NumIrq-1:0]       irq_o,
  // Simulation support (docs/device.md): on a board ff_skip_i is tied to 0 and
  // quiescent_o is left open. quiescent_o (registered) says no unit was busy, no CSR
  // access, interrupt cause, soft reset or memory-port beat/valid was seen the cycle
  // before; a nonzero ff_skip_i makes this edge stand for ff_skip_i + 1 cycles: every
  // performance counter whose increment is 1 adds that many (CYCLES, the busy and
  // stall counters); nothing else in the design counts time. The bridge skips only at
  // a fixed point of the whole design (docs/device.md 2.7).
  input  logic [15:0]             ff_skip_i,
  output logic                    quiescent_o
);

  localparam int unsigned NumCounters = 24;
  localparam int unsigned DataBytesLog2 = $clog2(DataWidth / 8);

  if (DataWidth != 512) begin : gen_bad_data_width
    $error("DataWidth must be 512 in this revision (a compute-unit line is one beat)");
  end
  if (AxiIdWidth < 4 || AxiIdWidth > 8) begin : gen_bad_id_width
    $error("AxiIdWidth must be in 4..8 (10 host-port requesters)");
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
  // A write of RESET.SOFT is registered before it fans out to every block: the soft
  // reset acts from the cycle after the register write.
  logic        soft_reset, reset_we;
  logic [31:0] reset_wd;
  always_ff @(posedge clk_i or negedge rst_ni) begin : soft_reset_ff
    if (!rst_ni) soft_reset <= 1'b0;
    else         soft_reset <= reset_we && reset_wd[npu_reg_pkg::REG_RESET_SOFT_LSB];
  end

  // ---------------------------------------------------------------- identification
  logic [31:0] caps0, caps1;
  assign caps0 = {8'(DataBytesLog2), 8'(TlbEntries), 8'(NumAsids), 8'(DmaChannels)};
  assign caps1 = {8'(40), 8'(CuInflight), 16'(DevMemMiB)};

  // ---------------------------------------------------------------- interrupts
  logic [31:0]       int_status;
  logic              int_ack_we;
  logic [NumIrq-1:0] cause_set;

  logic [2:0] dma_irq, dma_dev_err;
  logic       dev_err_any_d, dev_err_any_q;
  always_comb begin : causes
    cause_set = '0;
    cause_set[npu_reg_pkg::INT_CAUSE_FAULT]  = fault_irq;
    cause_set[npu_reg_pkg::INT_CAUSE_KERNEL] = cu_irq;
    cause_set[npu_reg_pkg::INT_CAUSE_DMA0] = dma_irq[0];
    cause_set[npu_reg_pkg::INT_CAUSE_DMA1] = dma_irq[1];
    cause_set[npu_reg_pkg::INT_CAUSE_DMA2] = dma_irq[2];
    cause_set[npu_reg_pkg::INT_CAUSE_CMD]  = cmdq_irq;
    cause_set[npu_reg_pkg::INT_CAUSE_ERROR] = dev_err_any_d && !dev_err_any_q;
  end

  npu_irq #(
    .NumCauses(NumIrq)
  ) u_irq (
    .clk_i,
    .rst_ni,
    .soft_reset_i (soft_reset),
    .cause_set_i (cause_set),
    .ack_we_i    (int_ack_we),
    .ack_wd_i    (int_ack_wd[NumIrq-1:0]),
    .mask_i      (int_mask_q[NumIrq-1:0]),
    .status_o    (int_status),
    .irq_o
  );

  // ---------------------------------------------------------------- performance counters
  logic [NumCounters*16-1:0] perf_inc;
  logic [3*13-1:0]           dma_bytes;
  logic [2:0]                dma_busy, dma_stall;
  logic [3:0]                port_beats;
  logic [NumCounters*32-1:0] perf_lo;
  logic [NumCounters-1:0]    perf_lo_re;
  logic [31:0]               perf_hi_shadow, perf_ctrl_wd;
  logic                      perf_ctrl_we;

  always_comb begin : perf_events
    perf_inc = '0;
    perf_inc[npu_reg_pkg::PERF_CTR_CYCLES*16 +: 16]        = 16'd1;
    perf_inc[npu_reg_pkg::PERF_CTR_CSR_ACCESSES*16 +: 16]  = 16'(reg_we || reg_re);
    perf_inc[npu_reg_pkg::PERF_CTR_CMDS*16 +: 16]          = 16'(cmd_done);
    perf_inc[npu_reg_pkg::PERF_CTR_TLB_HITS*16 +: 16]      = 16'(tlb_hit);
    perf_inc[npu_reg_pkg::PERF_CTR_TLB_MISSES*16 +: 16]    = 16'(tlb_miss);
    perf_inc[npu_reg_pkg::PERF_CTR_PTW_WALKS*16 +: 16]     = 16'(walk_start);
    perf_inc[npu_reg_pkg::PERF_CTR_PTW_CYCLES*16 +: 16]    = 16'(walk_busy);
    perf_inc[npu_reg_pkg::PERF_CTR_FAULTS*16 +: 16]        = 16'(fault_irq);
    perf_inc[npu_reg_pkg::PERF_CTR_REPLAYS*16 +: 16]       = 16'(replay_done);
    perf_inc[npu_reg_pkg::PERF_CTR_KERNEL_BUSY*16 +: 16]   = 16'(kernel_busy);
    perf_inc[npu_reg_pkg::PERF_CTR_KERNEL_STALL*16 +: 16]  = 16'(kernel_stall);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA0_BYTES*16 +: 16]    = 16'(dma_bytes[0*13 +: 13]);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA0_BUSY*16 +: 16]     = 16'(dma_busy[0]);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA0_STALL*16 +: 16]    = 16'(dma_stall[0]);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA1_BYTES*16 +: 16]    = 16'(dma_bytes[1*13 +: 13]);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA1_BUSY*16 +: 16]     = 16'(dma_busy[1]);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA1_STALL*16 +: 16]    = 16'(dma_stall[1]);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA2_BYTES*16 +: 16]    = 16'(dma_bytes[2*13 +: 13]);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA2_BUSY*16 +: 16]     = 16'(dma_busy[2]);
    perf_inc[npu_reg_pkg::PERF_CTR_DMA2_STALL*16 +: 16]    = 16'(dma_stall[2]);
    perf_inc[npu_reg_pkg::PERF_CTR_HOST_RD_BYTES*16 +: 16] = port_beats[0] ? 16'(StrbWidth) : 16'd0;
    perf_inc[npu_reg_pkg::PERF_CTR_HOST_WR_BYTES*16 +: 16] = port_beats[1] ? 16'(StrbWidth) : 16'd0;
    perf_inc[npu_reg_pkg::PERF_CTR_DEV_RD_BYTES*16 +: 16]  = port_beats[2] ? 16'(StrbWidth) : 16'd0;
    perf_inc[npu_reg_pkg::PERF_CTR_DEV_WR_BYTES*16 +: 16]  = port_beats[3] ? 16'(StrbWidth) : 16'd0;
  end

  npu_perf #(
    .NumCounters(NumCounters),
    .IncWidth(16)
  ) u_perf (
    .clk_i,
    .rst_ni,
    .inc_i       (perf_inc),
    .skip_i      (ff_skip_i),
    .clear_i     (perf_ctrl_we && perf_ctrl_wd[npu_reg_pkg::REG_PERF_CTRL_CLEAR_LSB]),
    .lo_re_i     (perf_lo_re),
    .lo_o        (perf_lo),
    .hi_shadow_o (perf_hi_shadow)
  );

  // ---------------------------------------------------------------- error injection
  localparam int unsigned NumErrInj = 6;  // host rd, host wr, dev rd, dev wr, ptw, poison
  logic [NumErrInj-1:0]    errinj_we, errinj_consume, errinj_armed;
  logic [NumErrInj*32-1:0] errinj_wd, errinj_count;


  for (genvar i = 0; i < NumErrInj; i++) begin : gen_errinj
    npu_errinj_counter u_counter (
      .clk_i,
      .rst_ni,
      .soft_reset_i (soft_reset),
      .we_i     (errinj_we[i]),
      .wd_i     (errinj_wd[i*32 +: 32]),
      .consume_i (errinj_consume[i]),
      .armed_o   (errinj_armed[i]),
      .count_o  (errinj_count[i*32 +: 32])
    );
  end

  // ---------------------------------------------------------------- plain CSR storage
  /* verilator lint_off UNUSEDSIGNAL */
  // SCRATCH is storage only; bits above the register masks read 0.
  logic [31:0] scratch_q, ctrl_q, errinj_hang_q;
  logic [31:0] fq_base_lo_q, fq_base_hi_q, fq_size_log2_q, fq_head_q;
  logic [31:0] kq_base_lo_q, kq_base_hi_q, kq_size_log2_q, kq_tail_q;
  logic [31:0] kcq_base_lo_q, kcq_base_hi_q, kcq_size_log2_q, kcq_head_q;
  logic [16*32-1:0]          ptroot_q;
  // INT_MASK/INT_ACK bits above the last cause are reserved.
  logic [31:0]               int_mask_q, int_ack_wd;
  /* verilator lint_on UNUSEDSIGNAL */

  // ---------------------------------------------------------------- DMA engine
  logic [DmaChannels*32-1:0] dma_desc_base_lo_q, dma_desc_base_hi_q, dma_desc_size_log2_q;
  logic [DmaChannels*32-1:0] dma_desc_tail_q, dma_cpl_base_lo_q, dma_cpl_base_hi_q;
  logic [DmaChannels*32-1:0] dma_cpl_size_log2_q, dma_cpl_head_q;
  logic [DmaChannels*32-1:0] dma_desc_head, dma_cpl_tail, dma_ch_status;
  logic [DmaChannels-1:0]    dma_ch_ctrl_we;
  logic [31:0]               dma_ch_ctrl_wd;
  logic [DmaChannels*8-1:0]  dma_push_we;
  logic [31:0]               dma_push_wd;
  logic [15:0]               cmdq_push_we;
  logic [31:0]               cmdq_push_wd;
  logic                      cmdq_push_commit_we;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [31:0]               cmdq_push_commit_wd;  // COUNT only (bits 31:2 are ignored)
  /* verilator lint_on UNUSEDSIGNAL */
  logic                      dma_busy_any;

  npu_dma #(
    .DataWidth   (DataWidth),
    .DevMemMiB   (DevMemMiB),
    .MaxRdBursts (MaxReadBursts)
  ) u_dma (
    .clk_i,
    .rst_ni,
    .soft_reset_i     (soft_reset),
    .enable_i         (ctrl_q[npu_reg_pkg::REG_CTRL_DMA_EN_LSB]),
    .hang_i           (errinj_hang_q[npu_reg_pkg::REG_ERRINJ_HANG_DMA_LSB]),
    .desc_base_lo_i   (dma_desc_base_lo_q),
    .desc_base_hi_i   (dma_desc_base_hi_q),
    .desc_size_log2_i (dma_desc_size_log2_q),
    .desc_tail_i      (dma_desc_tail_q),
    .desc_head_o      (dma_desc_head),
    .cpl_base_lo_i    (dma_cpl_base_lo_q),
    .cpl_base_hi_i    (dma_cpl_base_hi_q),
    .cpl_size_log2_i  (dma_cpl_size_log2_q),
    .cpl_head_i       (dma_cpl_head_q),
    .cpl_tail_o       (dma_cpl_tail),
    .ch_status_o      (dma_ch_status),
    .ch_ctrl_we_i     (dma_ch_ctrl_we),
    .ch_ctrl_wd_i     (dma_ch_ctrl_wd),
    .push_we_i        (dma_push_we),
    .push_wd_i        (dma_push_wd),
    .irq_o            (dma_irq),
    .dev_err_o        (dma_dev_err),
    .busy_o           (dma_busy_any),
    .ch_bytes_o       (dma_bytes),
    .ch_busy_o        (dma_busy),
    .ch_stall_o       (dma_stall),
    .h_ar_valid_o     (h_ar_valid[5:0]),
    .h_ar_ready_i     (h_ar_ready[5:0]),
    .h_ar_addr_o      (h_ar_addr[6*64-1:0]),
    .h_ar_len_o       (h_ar_len[6*8-1:0]),
    .h_ar_err_i       (h_ar_err[5:0]),
    .h_ar_poison_i    (h_ar_poison[5:0]),
    .h_r_valid_i      (h_r_valid[5:0]),
    .h_r_data_i       (h_r_data),
    .h_r_resp_i       (h_r_resp),
    .h_r_last_i       (h_r_last),
    .h_aw_valid_o     (h_aw_valid[5:0]),
    .h_aw_ready_i     (h_aw_ready[5:0]),
    .h_aw_addr_o      (h_aw_addr[6*64-1:0]),
    .h_aw_len_o       (h_aw_len[6*8-1:0]),
    .h_aw_err_i       (h_aw_err[5:0]),
    .h_w_valid_o      (h_w_valid[5:0]),
    .h_w_ready_i      (h_w_ready[5:0]),
    .h_w_data_o       (h_w_data[6*DataWidth-1:0]),
    .h_w_strb_o       (h_w_strb[6*StrbWidth-1:0]),
    .h_w_last_o       (h_w_last[5:0]),
    .h_b_valid_i      (h_b_valid[5:0]),
    .h_b_resp_i       (h_b_resp),
    .d_ar_valid_o     (d_ar_valid[2:0]),
    .d_ar_ready_i     (d_ar_ready[2:0]),
    .d_ar_addr_o      (d_ar_addr[3*64-1:0]),
    .d_ar_len_o       (d_ar_len[3*8-1:0]),
    .d_ar_err_i       (d_ar_err[2:0]),
    .d_ar_poison_i    (d_ar_poison[2:0]),
    .d_r_valid_i      (d_r_valid[2:0]),
    .d_r_data_i       (d_r_data),
    .d_r_resp_i       (d_r_resp),
    .d_r_last_i       (d_r_last),
    .d_aw_valid_o     (d_aw_valid[2:0]),
    .d_aw_ready_i     (d_aw_ready[2:0]),
    .d_aw_addr_o      (d_aw_addr[3*64-1:0]),
    .d_aw_len_o       (d_aw_len[3*8-1:0]),
    .d_aw_err_i       (d_aw_err[2:0]),
    .d_w_valid_o      (d_w_valid[2:0]),
    .d_w_ready_i      (d_w_ready[2:0]),
    .d_w_data_o       (d_w_data[3*DataWidth-1:0]),
    .d_w_strb_o       (d_w_strb[3*StrbWidth-1:0]),
    .d_w_last_o       (d_w_last[2:0]),
    .d_b_valid_i      (d_b_valid[2:0]),
    .d_b_resp_i       (d_b_resp)
  );

  // ---------------------------------------------------------------- command queue
  logic [31:0] cmdq_base_lo_q, cmdq_base_hi_q;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [31:0] cmdq_size_log2_q, cmdq_tail_q;  // bits above the register masks are 0
  /* verilator lint_on UNUSEDSIGNAL */
  logic [15:0] cmdq_head;
  logic        cmdq_busy, cmdq_irq, cmd_done;
  logic [7:0]  cmdq_err_code;
  logic        inval_valid, inval_ready, replay_valid, replay_ready, replay_abort, fence_start;
  logic [1:0]  inval_scope;
  logic [15:0] inval_asid, replay_reqid;
  logic [63:0] inval_va;
  logic [31:0] inval_pages;

  npu_cmdq #(
    .DataWidth(DataWidth),
    .DevMemMiB(DevMemMiB)
  ) u_cmdq (
    .clk_i,
    .rst_ni,
    .soft_reset_i   (soft_reset),
    .enable_i       (ctrl_q[npu_reg_pkg::REG_CTRL_CMDQ_EN_LSB]),
    .base_i         ({cmdq_base_hi_q, cmdq_base_lo_q}),
    .size_log2_i    (cmdq_size_log2_q[4:0]),
    .tail_i         (cmdq_tail_q[15:0]),
    .head_o         (cmdq_head),
    .push_we_i      (cmdq_push_we),
    .push_wd_i      (cmdq_push_wd),
    .push_commit_i  (cmdq_push_commit_we),
    .push_count_i   (cmdq_push_commit_wd[npu_reg_pkg::REG_CMDQ_PUSH_COMMIT_COUNT_LSB +: 2]),
    .busy_o         (cmdq_busy),
    .irq_o          (cmdq_irq),
    .dev_err_code_o (cmdq_err_code),
    .cmd_done_o     (cmd_done),
    .inval_valid_o  (inval_valid),
    .inval_ready_i  (inval_ready),
    .inval_scope_o  (inval_scope),
    .inval_asid_o   (inval_asid),
    .inval_va_o     (inval_va),
    .inval_pages_o  (inval_pages),
    .replay_valid_o (replay_valid),
    .replay_ready_i (replay_ready),
    .replay_reqid_o (replay_reqid),
    .replay_abort_o (replay_abort),
    .fence_start_o  (fence_start),
    .mmu_quiet_i    (mmu_quiet),
    .ar_valid_o     (h_ar_valid[6]),
    .ar_ready_i     (h_ar_ready[6]),
    .ar_addr_o      (h_ar_addr[6*64 +: 64]),
    .r_valid_i      (h_r_valid[6]),
    .r_data_i       (h_r_data),
    .r_resp_i       (h_r_resp),
    .aw_valid_o     (h_aw_valid[6]),
    .aw_ready_i     (h_aw_ready[6]),
    .aw_addr_o      (h_aw_addr[6*64 +: 64]),
    .w_valid_o      (h_w_valid[6]),
    .w_ready_i      (h_w_ready[6]),
    .w_data_o       (h_w_data[6*DataWidth +: DataWidth]),
    .w_strb_o       (h_w_strb[6*StrbWidth +: StrbWidth]),
    .b_valid_i      (h_b_valid[6]),
    .b_resp_i       (h_b_resp),
    .dev_aw_valid_o (d_aw_valid[5]),
    .dev_aw_ready_i (d_aw_ready[5]),
    .dev_aw_addr_o  (d_aw_addr[5*64 +: 64]),
    .dev_w_valid_o  (d_w_valid[5]),
    .dev_w_ready_i  (d_w_ready[5]),
    .dev_b_valid_i  (d_b_valid[5]),
    .dev_b_resp_i   (d_b_resp)
  );
  // PTE_WRITE's beat is the one the command queue shows on its host-port W.
  assign d_w_data[5*DataWidth +: DataWidth] = h_w_data[6*DataWidth +: DataWidth];
  assign d_w_strb[5*StrbWidth +: StrbWidth] = h_w_strb[6*StrbWidth +: StrbWidth];
  assign d_aw_len[5*8 +: 8]  = 8'd0;
  assign d_w_last[5]         = 1'b1;
  assign d_ar_valid[5]       = 1'b0;  // the command queue never reads the device port
  assign d_ar_addr[5*64 +: 64] = '0;
  assign d_ar_len[5*8 +: 8]  = 8'd0;
  assign h_ar_len[6*8 +: 8] = 8'd0;
  assign h_aw_len[6*8 +: 8] = 8'd0;
  assign h_w_last[6]        = 1'b1;

  // ---------------------------------------------------------------- MMU
  localparam int unsigned SlotW = CuInflight > 1 ? $clog2(CuInflight) : 1;
  logic                  tr_req_valid, tr_req_ready, tr_req_write, tr_rsp_valid, tr_rsp_abort;
  logic [SlotW-1:0]      tr_req_slot, tr_rsp_slot;
  logic [15:0]           tr_req_asid, fq_tail, kq_head, kcq_tail;
  logic [63:0]           tr_req_va;
  logic [40:0]           tr_rsp_pa;
  logic                  fault_irq, faults_pending, fq_dev_err, stale_walk;
  logic                  tlb_hit, tlb_miss, walk_start, walk_busy, replay_done;
  logic                  dev_lock_req, dev_lock_ok;
  /* verilator lint_off UNUSEDSIGNAL */
  logic                  mmu_busy;  // for the waveform; STATUS has no MMU bit
  /* verilator lint_on UNUSEDSIGNAL */

  npu_mmu #(
    .DataWidth  (DataWidth),
    .DevMemMiB  (DevMemMiB),
    .NumAsids   (NumAsids),
    .TlbEntries (TlbEntries),
    .Slots      (CuInflight)
  ) u_mmu (
    .clk_i,
    .rst_ni,
    .soft_reset_i     (soft_reset),
    .mmu_en_i         (ctrl_q[npu_reg_pkg::REG_CTRL_MMU_EN_LSB]),
    .fq_en_i          (ctrl_q[npu_reg_pkg::REG_CTRL_FQ_EN_LSB]),
    .ptroot_i         (ptroot_q),
    .hang_i           (errinj_hang_q[npu_reg_pkg::REG_ERRINJ_HANG_PTW_LSB]),
    .errinj_armed_i   (errinj_armed[4]),
    .errinj_consume_o (errinj_consume[4]),
    .fq_base_i        ({fq_base_hi_q, fq_base_lo_q}),
    .fq_size_log2_i   (fq_size_log2_q[4:0]),
    .fq_head_i        (fq_head_q[15:0]),
    .fq_tail_o        (fq_tail),
    .fault_irq_o      (fault_irq),
    .faults_pending_o (faults_pending),
    .dev_err_o        (fq_dev_err),
    .tr_req_valid_i   (tr_req_valid),
    .tr_req_ready_o   (tr_req_ready),
    .tr_req_slot_i    (tr_req_slot),
    .tr_req_asid_i    (tr_req_asid),
    .tr_req_va_i      (tr_req_va),
    .tr_req_write_i   (tr_req_write),
    .tr_rsp_valid_o   (tr_rsp_valid),
    .tr_rsp_slot_o    (tr_rsp_slot),
    .tr_rsp_abort_o   (tr_rsp_abort),
    .tr_rsp_pa_o      (tr_rsp_pa),
    .inval_valid_i    (inval_valid),
    .inval_ready_o    (inval_ready),
    .inval_scope_i    (inval_scope),
    .inval_asid_i     (inval_asid),
    .inval_va_i       (inval_va),
    .inval_pages_i    (inval_pages),
    .replay_valid_i   (replay_valid),
    .replay_ready_o   (replay_ready),
    .replay_reqid_i   (replay_reqid),
    .replay_abort_i   (replay_abort),
    .stale_walk_o     (stale_walk),
    .busy_o           (mmu_busy),
    .tlb_hit_o        (tlb_hit),
    .tlb_miss_o       (tlb_miss),
    .walk_start_o     (walk_start),
    .walk_busy_o      (walk_busy),
    .replay_o         (replay_done),
    .d_ar_valid_o     (d_ar_valid[4]),
    .d_ar_ready_i     (d_ar_ready[4]),
    .d_ar_addr_o      (d_ar_addr[4*64 +: 64]),
    .d_r_valid_i      (d_r_valid[4]),
    .d_r_data_i       (d_r_data),
    .d_r_resp_i       (d_r_resp),
    .d_aw_valid_o     (d_aw_valid[4]),
    .d_aw_ready_i     (d_aw_ready[4]),
    .d_aw_addr_o      (d_aw_addr[4*64 +: 64]),
    .d_w_valid_o      (d_w_valid[4]),
    .d_w_ready_i      (d_w_ready[4]),
    .d_w_data_o       (d_w_data[4*DataWidth +: DataWidth]),
    .d_w_strb_o       (d_w_strb[4*StrbWidth +: StrbWidth]),
    .d_b_valid_i      (d_b_valid[4]),
    .d_b_resp_i       (d_b_resp),
    .d_lock_req_o     (dev_lock_req),
    .d_lock_ok_i      (dev_lock_ok),
    .h_aw_valid_o     (h_aw_valid[8]),
    .h_aw_ready_i     (h_aw_ready[8]),
    .h_aw_addr_o      (h_aw_addr[8*64 +: 64]),
    .h_w_valid_o      (h_w_valid[8]),
    .h_w_ready_i      (h_w_ready[8]),
    .h_w_data_o       (h_w_data[8*DataWidth +: DataWidth]),
    .h_w_strb_o       (h_w_strb[8*StrbWidth +: StrbWidth]),
    .h_b_valid_i      (h_b_valid[8]),
    .h_b_resp_i       (h_b_resp)
  );
  assign d_ar_len[4*8 +: 8]    = 8'd0;
  assign d_aw_len[4*8 +: 8]    = 8'd0;
  assign d_w_last[4]           = 1'b1;
  assign h_ar_valid[8]         = 1'b0;  // the fault queue only writes
  assign h_ar_addr[8*64 +: 64] = '0;
  assign h_ar_len[8*8 +: 8]    = 8'd0;
  assign h_aw_len[8*8 +: 8]    = 8'd0;
  assign h_w_last[8]           = 1'b1;

  // ---------------------------------------------------------------- compute unit
  logic [CuInflight-1:0]  cu_xlated, cu_data_done;
  logic                   cu_irq, cu_busy, kernel_busy, kernel_stall;
  logic [7:0]             cu_err_code;
  logic [1:0]             cu_ar_valid, cu_ar_ready, cu_ar_err, cu_r_valid, cu_aw_valid, cu_aw_ready;
  logic [1:0]             cu_aw_err, cu_w_valid, cu_w_ready;
  logic [2*64-1:0]        cu_ar_addr, cu_aw_addr;
  logic [2*DataWidth-1:0] cu_w_data;
  logic [2*StrbWidth-1:0] cu_w_strb;

  npu_cu #(
    .Slots(CuInflight)
  ) u_cu (
    .clk_i,
    .rst_ni,
    .soft_reset_i    (soft_reset),
    .enable_i        (ctrl_q[npu_reg_pkg::REG_CTRL_CU_EN_LSB]),
    .hang_i          (errinj_hang_q[npu_reg_pkg::REG_ERRINJ_HANG_CU_LSB]),
    .kq_base_i       ({kq_base_hi_q, kq_base_lo_q}),
    .kq_size_log2_i  (kq_size_log2_q[4:0]),
    .kq_tail_i       (kq_tail_q[15:0]),
    .kq_head_o       (kq_head),
    .kcq_base_i      ({kcq_base_hi_q, kcq_base_lo_q}),
    .kcq_size_log2_i (kcq_size_log2_q[4:0]),
    .kcq_head_i      (kcq_head_q[15:0]),
    .kcq_tail_o      (kcq_tail),
    .irq_o           (cu_irq),
    .dev_err_code_o  (cu_err_code),
    .busy_o          (cu_busy),
    .kernel_busy_o   (kernel_busy),
    .kernel_stall_o  (kernel_stall),
    .tr_req_valid_o  (tr_req_valid),
    .tr_req_ready_i  (tr_req_ready),
    .tr_req_slot_o   (tr_req_slot),
    .tr_req_asid_o   (tr_req_asid),
    .tr_req_va_o     (tr_req_va),
    .tr_req_write_o  (tr_req_write),
    .tr_rsp_valid_i  (tr_rsp_valid),
    .tr_rsp_slot_i   (tr_rsp_slot),
    .tr_rsp_abort_i  (tr_rsp_abort),
    .tr_rsp_pa_i     (tr_rsp_pa),
    .xlated_o        (cu_xlated),
    .data_done_o     (cu_data_done),
    .ar_valid_o      (cu_ar_valid),
    .ar_ready_i      (cu_ar_ready),
    .ar_addr_o       (cu_ar_addr),
    .ar_err_i        (cu_ar_err),
    .r_valid_i       (cu_r_valid),
    .r_data_i        ({d_r_data, h_r_data}),
    .r_resp_i        ({d_r_resp, h_r_resp}),
    .aw_valid_o      (cu_aw_valid),
    .aw_ready_i      (cu_aw_ready),
    .aw_addr_o       (cu_aw_addr),
    .aw_err_i        (cu_aw_err),
    .w_valid_o       (cu_w_valid),
    .w_ready_i       (cu_w_ready),
    .w_data_o        (cu_w_data),
    .w_strb_o        (cu_w_strb),
    .b_valid_i       ({d_b_valid[3], h_b_valid[7]}),
    .b_resp_i        ({d_b_resp, h_b_resp}),
    .q_ar_valid_o    (h_ar_valid[9]),
    .q_ar_ready_i    (h_ar_ready[9]),
    .q_ar_addr_o     (h_ar_addr[9*64 +: 64]),
    .q_r_valid_i     (h_r_valid[9]),
    .q_r_data_i      (h_r_data),
    .q_r_resp_i      (h_r_resp),
    .q_aw_valid_o    (h_aw_valid[9]),
    .q_aw_ready_i    (h_aw_ready[9]),
    .q_aw_addr_o     (h_aw_addr[9*64 +: 64]),
    .q_w_valid_o     (h_w_valid[9]),
    .q_w_ready_i     (h_w_ready[9]),
    .q_w_data_o      (h_w_data[9*DataWidth +: DataWidth]),
    .q_w_strb_o      (h_w_strb[9*StrbWidth +: StrbWidth]),
    .q_b_valid_i     (h_b_valid[9]),
    .q_b_resp_i      (h_b_resp)
  );
  // CU data: host requester 7 and device requester 3, single-beat bursts.
  assign h_ar_valid[7]                      = cu_ar_valid[0];
  assign h_ar_addr[7*64 +: 64]              = cu_ar_addr[0 +: 64];
  assign h_aw_valid[7]                      = cu_aw_valid[0];
  assign h_aw_addr[7*64 +: 64]              = cu_aw_addr[0 +: 64];
  assign h_w_valid[7]                       = cu_w_valid[0];
  assign h_w_data[7*DataWidth +: DataWidth] = cu_w_data[0 +: DataWidth];
  assign h_w_strb[7*StrbWidth +: StrbWidth] = cu_w_strb[0 +: StrbWidth];
  assign d_ar_valid[3]                      = cu_ar_valid[1];
  assign d_ar_addr[3*64 +: 64]              = cu_ar_addr[64 +: 64];
  assign d_aw_valid[3]                      = cu_aw_valid[1];
  assign d_aw_addr[3*64 +: 64]              = cu_aw_addr[64 +: 64];
  assign d_w_valid[3]                       = cu_w_valid[1];
  assign d_w_data[3*DataWidth +: DataWidth] = cu_w_data[DataWidth +: DataWidth];
  assign d_w_strb[3*StrbWidth +: StrbWidth] = cu_w_strb[StrbWidth +: StrbWidth];
  assign cu_ar_ready = {d_ar_ready[3], h_ar_ready[7]};
  assign cu_ar_err   = {d_ar_err[3], h_ar_err[7]};
  assign cu_r_valid  = {d_r_valid[3], h_r_valid[7]};
  assign cu_aw_ready = {d_aw_ready[3], h_aw_ready[7]};
  assign cu_aw_err   = {d_aw_err[3], h_aw_err[7]};
  assign cu_w_ready  = {d_w_ready[3], h_w_ready[7]};
  assign h_ar_len[7*8 +: 8] = 8'd0;
  assign h_aw_len[7*8 +: 8] = 8'd0;
  assign h_w_last[7]        = 1'b1;
  assign d_ar_len[3*8 +: 8] = 8'd0;
  assign d_aw_len[3*8 +: 8] = 8'd0;
  assign d_w_last[3]        = 1'b1;
  assign h_ar_len[9*8 +: 8] = 8'd0;
  assign h_aw_len[9*8 +: 8] = 8'd0;
  assign h_w_last[9]        = 1'b1;

  // ---------------------------------------------------------------- FENCE condition
  // A FENCE waits for every stale walk and for the compute-unit accesses translated
  // before it began: the slots holding a translation then, including one the MMU is
  // answering in that cycle, less one whose memory response arrives in that cycle (its
  // access is over; waiting for its next response could wait on a REPLAY queued behind
  // the FENCE) (docs/device.md 8).
  logic [CuInflight-1:0] fence_snap_d, fence_snap_q, answering;
  logic                  mmu_quiet;
  always_comb begin : fence_tracking
    answering = '0;
    if (tr_rsp_valid && !tr_rsp_abort) answering[tr_rsp_slot] = 1'b1;
    fence_snap_d = (fence_start ? (cu_xlated | answering) : fence_snap_q) & ~cu_data_done;
    if (soft_reset) fence_snap_d = '0;
  end
  assign mmu_quiet = !stale_walk && fence_snap_q == '0;
  always_ff @(posedge clk_i or negedge rst_ni) begin : fence_ff
    if (!rst_ni) fence_snap_q <= '0;
    else         fence_snap_q <= fence_snap_d;
  end
`ifndef SYNTHESIS
  // A slot the FENCE waits for still has its access outstanding: its response is what
  // lets the FENCE go (a slot waiting for a REPLAY behind the FENCE would never answer).
  a_fence_waits_on_open_access: assert property (@(posedge clk_i) disable iff (!rst_ni)
      (fence_snap_q & ~cu_xlated) == '0);
`endif

  // ---------------------------------------------------------------- memory ports
  // Host port requesters (AXI ID = index): 0..2 DMA data, 3..5 DMA rings, 6 command
  // queue, 7 compute-unit data, 8 fault queue, 9 kernel queue. Device port requesters:
  // 0..2 DMA data, 3 compute-unit data, 4 page-table walker, 5 command queue (PTE_WRITE).
  localparam int unsigned NumHostReq = 10;
  localparam int unsigned NumDevReq  = 6;
  logic [NumHostReq-1:0]           h_ar_valid, h_ar_ready, h_r_valid;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [NumHostReq-1:0]           h_ar_err, h_ar_poison, h_aw_err;  // data requesters only
  /* verilator lint_on UNUSEDSIGNAL */
  logic [NumHostReq*64-1:0]        h_ar_addr, h_aw_addr;
  logic [NumHostReq*8-1:0]         h_ar_len, h_aw_len;
  logic [NumHostReq-1:0]           h_aw_valid, h_aw_ready, h_w_valid, h_w_ready, h_w_last, h_b_valid;
  logic [NumHostReq*DataWidth-1:0] h_w_data;
  logic [NumHostReq*StrbWidth-1:0] h_w_strb;
  logic [DataWidth-1:0]            h_r_data, d_r_data;
  logic [1:0]                      h_r_resp, h_b_resp, d_r_resp, d_b_resp;
  logic                            h_r_last, d_r_last;
  logic [NumDevReq-1:0]            d_ar_valid, d_ar_ready, d_r_valid;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [NumDevReq-1:0]            d_ar_err, d_ar_poison, d_aw_err;  // data requesters only
  /* verilator lint_on UNUSEDSIGNAL */
  logic [NumDevReq*64-1:0]         d_ar_addr, d_aw_addr;
  logic [NumDevReq*8-1:0]          d_ar_len, d_aw_len;
  logic [NumDevReq-1:0]            d_aw_valid, d_aw_ready, d_w_valid, d_w_ready, d_w_last, d_b_valid;
  logic [NumDevReq*DataWidth-1:0]  d_w_data;
  logic [NumDevReq*StrbWidth-1:0]  d_w_strb;
  logic [63:0]                     d_awaddr64, d_araddr64;
  logic                            poison_consume_host, poison_consume_dev, poison_want_host;
  /* verilator lint_off UNUSEDSIGNAL */
  logic                            poison_want_dev_unused;  // nothing defers to the device port
  /* verilator lint_on UNUSEDSIGNAL */
  /* verilator lint_off UNUSEDSIGNAL */
  logic                            host_lock_ok_unused;  // nobody locks the host port
  logic [1:0]                      fq_read_unused;       // the fault queue never reads
  /* verilator lint_on UNUSEDSIGNAL */
  assign fq_read_unused = {h_ar_ready[8], h_r_valid[8]};
  /* verilator lint_off UNUSEDSIGNAL */
  logic [1:0]                      cmdq_dev_read_unused;  // nor the command queue the device port
  /* verilator lint_on UNUSEDSIGNAL */
  assign cmdq_dev_read_unused = {d_ar_ready[5], d_r_valid[5]};

  npu_axi_mux #(
    .NumReq    (NumHostReq),
    .AddrWidth (64),
    .DataWidth (DataWidth),
    .IdWidth   (AxiIdWidth),
    .DataReq   (10'b00_1000_0111),
    .PoisonReq (10'b00_0000_0111),
    .MaxReadBursts (MaxReadBursts)
  ) u_host_mux (
    .clk_i,
    .rst_ni,
    .req_ar_valid_i      (h_ar_valid),
    .req_ar_ready_o      (h_ar_ready),
    .req_ar_addr_i       (h_ar_addr),
    .req_ar_len_i        (h_ar_len),
    .req_ar_err_o        (h_ar_err),
    .req_ar_poison_o     (h_ar_poison),
    .req_r_valid_o       (h_r_valid),
    .req_r_data_o        (h_r_data),
    .req_r_resp_o        (h_r_resp),
    .req_r_last_o        (h_r_last),
    .req_aw_valid_i      (h_aw_valid),
    .req_aw_ready_o      (h_aw_ready),
    .req_aw_addr_i       (h_aw_addr),
    .req_aw_len_i        (h_aw_len),
    .req_aw_err_o        (h_aw_err),
    .req_w_valid_i       (h_w_valid),
    .req_w_ready_o       (h_w_ready),
    .req_w_data_i        (h_w_data),
    .req_w_strb_i        (h_w_strb),
    .req_w_last_i        (h_w_last),
    .req_b_valid_o       (h_b_valid),
    .req_b_resp_o        (h_b_resp),
    .rd_err_armed_i      (errinj_armed[0]),
    .rd_err_consume_o    (errinj_consume[0]),
    .wr_err_armed_i      (errinj_armed[1]),
    .wr_err_consume_o    (errinj_consume[1]),
    .rd_poison_armed_i   (errinj_armed[5]),
    .rd_poison_consume_o (poison_consume_host),
    .rd_poison_want_o    (poison_want_host),
    .lock_req_i          (1'b0),
    .lock_ok_o           (host_lock_ok_unused),
    .rd_beat_o           (port_beats[0]),
    .wr_beat_o           (port_beats[1]),
    .m_axi_awid_o        (m_axi_host_awid_o),
    .m_axi_awaddr_o      (m_axi_host_awaddr_o),
    .m_axi_awlen_o       (m_axi_host_awlen_o),
    .m_axi_awsize_o      (m_axi_host_awsize_o),
    .m_axi_awburst_o     (m_axi_host_awburst_o),
    .m_axi_awvalid_o     (m_axi_host_awvalid_o),
    .m_axi_awready_i     (m_axi_host_awready_i),
    .m_axi_wdata_o       (m_axi_host_wdata_o),
    .m_axi_wstrb_o       (m_axi_host_wstrb_o),
    .m_axi_wlast_o       (m_axi_host_wlast_o),
    .m_axi_wvalid_o      (m_axi_host_wvalid_o),
    .m_axi_wready_i      (m_axi_host_wready_i),
    .m_axi_bid_i         (m_axi_host_bid_i),
    .m_axi_bresp_i       (m_axi_host_bresp_i),
    .m_axi_bvalid_i      (m_axi_host_bvalid_i),
    .m_axi_bready_o      (m_axi_host_bready_o),
    .m_axi_arid_o        (m_axi_host_arid_o),
    .m_axi_araddr_o      (m_axi_host_araddr_o),
    .m_axi_arlen_o       (m_axi_host_arlen_o),
    .m_axi_arsize_o      (m_axi_host_arsize_o),
    .m_axi_arburst_o     (m_axi_host_arburst_o),
    .m_axi_arvalid_o     (m_axi_host_arvalid_o),
    .m_axi_arready_i     (m_axi_host_arready_i),
    .m_axi_rid_i         (m_axi_host_rid_i),
    .m_axi_rdata_i       (m_axi_host_rdata_i),
    .m_axi_rresp_i       (m_axi_host_rresp_i),
    .m_axi_rlast_i       (m_axi_host_rlast_i),
    .m_axi_rvalid_i      (m_axi_host_rvalid_i),
    .m_axi_rready_o      (m_axi_host_rready_o)
  );

  npu_axi_mux #(
    .NumReq    (NumDevReq),
    .AddrWidth (64),
    .DataWidth (DataWidth),
    .IdWidth   (AxiIdWidth),
    .DataReq   (6'b00_1111),
    .PoisonReq (6'b00_0111),
    .LockReq   (4),
    .MaxReadBursts (MaxReadBursts)
  ) u_dev_mux (
    .clk_i,
    .rst_ni,
    .req_ar_valid_i      (d_ar_valid),
    .req_ar_ready_o      (d_ar_ready),
    .req_ar_addr_i       (d_ar_addr),
    .req_ar_len_i        (d_ar_len),
    .req_ar_err_o        (d_ar_err),
    .req_ar_poison_o     (d_ar_poison),
    .req_r_valid_o       (d_r_valid),
    .req_r_data_o        (d_r_data),
    .req_r_resp_o        (d_r_resp),
    .req_r_last_o        (d_r_last),
    .req_aw_valid_i      (d_aw_valid),
    .req_aw_ready_o      (d_aw_ready),
    .req_aw_addr_i       (d_aw_addr),
    .req_aw_len_i        (d_aw_len),
    .req_aw_err_o        (d_aw_err),
    .req_w_valid_i       (d_w_valid),
    .req_w_ready_o       (d_w_ready),
    .req_w_data_i        (d_w_data),
    .req_w_strb_i        (d_w_strb),
    .req_w_last_i        (d_w_last),
    .req_b_valid_o       (d_b_valid),
    .req_b_resp_o        (d_b_resp),
    .rd_err_armed_i      (errinj_armed[2]),
    .rd_err_consume_o    (errinj_consume[2]),
    .wr_err_armed_i      (errinj_armed[3]),
    .wr_err_consume_o    (errinj_consume[3]),
    // The poison counter is shared: the device port takes it only while no host-port
    // data read could (so at most one burst is poisoned per count).
    .rd_poison_armed_i   (errinj_armed[5] && !poison_want_host),
    .rd_poison_consume_o (poison_consume_dev),
    .rd_poison_want_o    (poison_want_dev_unused),
    .lock_req_i          (dev_lock_req),
    .lock_ok_o           (dev_lock_ok),
    .rd_beat_o           (port_beats[2]),
    .wr_beat_o           (port_beats[3]),
    .m_axi_awid_o        (m_axi_dev_awid_o),
    .m_axi_awaddr_o      (d_awaddr64),
    .m_axi_awlen_o       (m_axi_dev_awlen_o),
    .m_axi_awsize_o      (m_axi_dev_awsize_o),
    .m_axi_awburst_o     (m_axi_dev_awburst_o),
    .m_axi_awvalid_o     (m_axi_dev_awvalid_o),
    .m_axi_awready_i     (m_axi_dev_awready_i),
    .m_axi_wdata_o       (m_axi_dev_wdata_o),
    .m_axi_wstrb_o       (m_axi_dev_wstrb_o),
    .m_axi_wlast_o       (m_axi_dev_wlast_o),
    .m_axi_wvalid_o      (m_axi_dev_wvalid_o),
    .m_axi_wready_i      (m_axi_dev_wready_i),
    .m_axi_bid_i         (m_axi_dev_bid_i),
    .m_axi_bresp_i       (m_axi_dev_bresp_i),
    .m_axi_bvalid_i      (m_axi_dev_bvalid_i),
    .m_axi_bready_o      (m_axi_dev_bready_o),
    .m_axi_arid_o        (m_axi_dev_arid_o),
    .m_axi_araddr_o      (d_araddr64),
    .m_axi_arlen_o       (m_axi_dev_arlen_o),
    .m_axi_arsize_o      (m_axi_dev_arsize_o),
    .m_axi_arburst_o     (m_axi_dev_arburst_o),
    .m_axi_arvalid_o     (m_axi_dev_arvalid_o),
    .m_axi_arready_i     (m_axi_dev_arready_i),
    .m_axi_rid_i         (m_axi_dev_rid_i),
    .m_axi_rdata_i       (m_axi_dev_rdata_i),
    .m_axi_rresp_i       (m_axi_dev_rresp_i),
    .m_axi_rlast_i       (m_axi_dev_rlast_i),
    .m_axi_rvalid_i      (m_axi_dev_rvalid_i),
    .m_axi_rready_o      (m_axi_dev_rready_o)
  );

  // Device-physical addresses are 40 bits; descriptors were range-checked against
  // device memory, so the upper address bits are zero here.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [63:0] d_awaddr_upper_unused, d_araddr_upper_unused;
  /* verilator lint_on UNUSEDSIGNAL */
  assign d_awaddr_upper_unused = d_awaddr64;
  assign d_araddr_upper_unused = d_araddr64;
  assign m_axi_dev_awaddr_o = d_awaddr64[39:0];
  assign m_axi_dev_araddr_o = d_araddr64[39:0];
  assign errinj_consume[5]  = poison_consume_host || poison_consume_dev;

  // ---------------------------------------------------------------- status and device errors
  logic [31:0] status, status_q, err_info_d, err_info_q;
  logic [DmaChannels*32-1:0] dma_ch_status_q;
  always_comb begin : status_logic
    status = '0;
    status[npu_reg_pkg::REG_STATUS_DMA_BUSY_LSB]  = dma_busy_any;
    status[npu_reg_pkg::REG_STATUS_CMDQ_BUSY_LSB] = cmdq_busy;
    status[npu_reg_pkg::REG_STATUS_CU_BUSY_LSB]   = cu_busy;
    status[npu_reg_pkg::REG_STATUS_FAULTS_PENDING_LSB] = faults_pending;
    status[npu_reg_pkg::REG_STATUS_ERROR_LSB]    = err_info_q != '0;
    dev_err_any_d = (|dma_dev_err || cmdq_err_code != '0 || fq_dev_err || cu_err_code != '0)
                    && !soft_reset;
    err_info_d    = err_info_q;
    if (soft_reset) begin
      err_info_d = '0;
    end else if (err_info_q == '0 && cmdq_err_code != '0) begin
      err_info_d = {16'd0, 8'd0, cmdq_err_code};
    end else if (err_info_q == '0 && fq_dev_err) begin
      err_info_d = {16'd0, 8'd1, 8'(npu_reg_pkg::DMA_ERROR_CPL_WRITE)};
    end else if (err_info_q == '0 && cu_err_code != '0) begin
      err_info_d = {16'd0, 8'd2, cu_err_code};
    end else if (err_info_q == '0) begin
      for (int unsigned c = 0; c < 3; c++) begin
        if (dma_dev_err[c] && err_info_d == '0) begin
          err_info_d = {16'd0, 8'(3 + c), 8'(npu_reg_pkg::DMA_ERROR_CPL_WRITE)};
        end
      end
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : status_ff
    if (!rst_ni) begin
      err_info_q    <= '0;
      dev_err_any_q <= 1'b0;
      status_q      <= '0;
      dma_ch_status_q <= '0;
    end else begin
      err_info_q    <= err_info_d;
      dev_err_any_q <= dev_err_any_d;
      status_q      <= status;
      dma_ch_status_q <= dma_ch_status;
    end
  end

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
    .status_i               (status_q),  // registered: STATUS shows the previous cycle
    .reset_we_o             (reset_we),
    .reset_wd_o             (reset_wd),
    .int_status_i           (int_status),
    .int_mask_q_o           (int_mask_q),
    .int_ack_we_o           (int_ack_we),
    .int_ack_wd_o           (int_ack_wd),
    .err_info_i             (err_info_q),
    .cmdq_base_lo_q_o       (cmdq_base_lo_q),
    .cmdq_base_hi_q_o       (cmdq_base_hi_q),
    .cmdq_size_log2_q_o     (cmdq_size_log2_q),
    .cmdq_head_i            (32'(cmdq_head)),
    .cmdq_tail_q_o          (cmdq_tail_q),
    .fq_base_lo_q_o         (fq_base_lo_q),
    .fq_base_hi_q_o         (fq_base_hi_q),
    .fq_size_log2_q_o       (fq_size_log2_q),
    .fq_head_q_o            (fq_head_q),
    .fq_tail_i              (32'(fq_tail)),
    .kq_base_lo_q_o         (kq_base_lo_q),
    .kq_base_hi_q_o         (kq_base_hi_q),
    .kq_size_log2_q_o       (kq_size_log2_q),
    .kq_head_i              (32'(kq_head)),
    .kq_tail_q_o            (kq_tail_q),
    .kcq_base_lo_q_o        (kcq_base_lo_q),
    .kcq_base_hi_q_o        (kcq_base_hi_q),
    .kcq_size_log2_q_o      (kcq_size_log2_q),
    .kcq_head_q_o           (kcq_head_q),
    .kcq_tail_i             (32'(kcq_tail)),
    .dma_desc_base_lo_q_o   (dma_desc_base_lo_q),
    .dma_desc_base_hi_q_o   (dma_desc_base_hi_q),
    .dma_desc_size_log2_q_o (dma_desc_size_log2_q),
    .dma_desc_head_i        (dma_desc_head),
    .dma_desc_tail_q_o      (dma_desc_tail_q),
    .dma_cpl_base_lo_q_o    (dma_cpl_base_lo_q),
    .dma_cpl_base_hi_q_o    (dma_cpl_base_hi_q),
    .dma_cpl_size_log2_q_o  (dma_cpl_size_log2_q),
    .dma_cpl_head_q_o       (dma_cpl_head_q),
    .dma_cpl_tail_i         (dma_cpl_tail),
    .dma_ch_status_i        (dma_ch_status_q),  // registered like STATUS
    .dma_ch_ctrl_we_o       (dma_ch_ctrl_we),
    .dma_ch_ctrl_wd_o       (dma_ch_ctrl_wd),
    .dma_push_we_o          (dma_push_we),
    .dma_push_wd_o          (dma_push_wd),
    .cmdq_push_we_o         (cmdq_push_we),
    .cmdq_push_wd_o         (cmdq_push_wd),
    .cmdq_push_commit_we_o  (cmdq_push_commit_we),
    .cmdq_push_commit_wd_o  (cmdq_push_commit_wd),
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

  // ---------------------------------------------------------------- quiescence (simulation)
  // Two flop stages: the unit busy levels, event pulses and AXI valids, each registered
  // as it is (some busy levels are deep), then their AND. The bridge also requires a run
  // of quiet cycles with idle memory ports and no CSR traffic before it skips
  // (sim-bridge/src/fast_forward.rs), which covers the two-cycle lag.
  logic [16:0] active_q;
  logic        quiescent_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : quiescent_reg
    if (!rst_ni) begin
      active_q    <= '1;
      quiescent_q <= 1'b0;
    end else begin
      active_q    <= {dma_busy_any, cmdq_busy, cu_busy, kernel_busy, mmu_busy, walk_busy,
                      reg_we, reg_re, cause_set != '0, soft_reset, port_beats != '0,
                      dev_err_any_d, m_axi_host_awvalid_o, m_axi_host_wvalid_o,
                      m_axi_host_arvalid_o, m_axi_dev_awvalid_o || m_axi_dev_wvalid_o,
                      m_axi_dev_arvalid_o};
      quiescent_q <= active_q == '0;
    end
  end
  assign quiescent_o = quiescent_q;

endmodule
