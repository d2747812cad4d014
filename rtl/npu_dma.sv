// DMA engine: three channels, as requesters on the host-memory and device-memory ports.
//
// Host port requesters (the top's multiplexer gives requester i AXI ID i): 0..2 channel
// data, 3..5 channel rings (descriptor fetch, completion write). Device port
// requesters: 0..2 channel data. Each channel's data requester is steered to the host
// or device port per descriptor (its aperture flags).
module npu_dma #(
  parameter int unsigned DataWidth   = 512,
  parameter int unsigned DevMemMiB   = 256,
  parameter int unsigned MaxRdBursts = 16,
  localparam int unsigned NumCh      = 3,
  localparam int unsigned StrbWidth  = DataWidth / 8,
  localparam int unsigned NumHostReq = 2 * NumCh
) (
  input  logic                      clk_i,
  input  logic                      rst_ni,
  input  logic                      soft_reset_i,
  input  logic                      enable_i,
  input  logic                      hang_i,
  // per-channel CSRs (size and index registers: bits above the register masks are 0)
  input  logic [NumCh*32-1:0]       desc_base_lo_i,
  input  logic [NumCh*32-1:0]       desc_base_hi_i,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [NumCh*32-1:0]       desc_size_log2_i,
  input  logic [NumCh*32-1:0]       desc_tail_i,
  /* verilator lint_on UNUSEDSIGNAL */
  output logic [NumCh*32-1:0]       desc_head_o,
  input  logic [NumCh*32-1:0]       cpl_base_lo_i,
  input  logic [NumCh*32-1:0]       cpl_base_hi_i,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [NumCh*32-1:0]       cpl_size_log2_i,
  input  logic [NumCh*32-1:0]       cpl_head_i,
  /* verilator lint_on UNUSEDSIGNAL */
  output logic [NumCh*32-1:0]       cpl_tail_o,
  output logic [NumCh*32-1:0]       ch_status_o,
  input  logic [NumCh-1:0]          ch_ctrl_we_i,
  input  logic [31:0]               ch_ctrl_wd_i,
  input  logic [NumCh*8-1:0]        push_we_i,     // DMA_PUSH word writes
  input  logic [31:0]               push_wd_i,
  output logic [NumCh-1:0]          irq_o,
  output logic [NumCh-1:0]          dev_err_o,
  output logic                      busy_o,
  // performance
  output logic [NumCh*13-1:0]       ch_bytes_o,
  output logic [NumCh-1:0]          ch_busy_o,
  output logic [NumCh-1:0]          ch_stall_o,
  // host-port requesters 0..2*NumCh-1 (see npu_axi_mux for the protocol)
  output logic [NumHostReq-1:0]           h_ar_valid_o,
  input  logic [NumHostReq-1:0]           h_ar_ready_i,
  output logic [NumHostReq*64-1:0]        h_ar_addr_o,
  output logic [NumHostReq*8-1:0]         h_ar_len_o,
  // Injection flags of the ring requesters 3..5 stay 0: the mux injects into data only.
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [NumHostReq-1:0]           h_ar_err_i,
  input  logic [NumHostReq-1:0]           h_ar_poison_i,
  input  logic [NumHostReq-1:0]           h_aw_err_i,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [NumHostReq-1:0]           h_r_valid_i,
  input  logic [DataWidth-1:0]            h_r_data_i,
  input  logic [1:0]                      h_r_resp_i,
  input  logic                            h_r_last_i,
  output logic [NumHostReq-1:0]           h_aw_valid_o,
  input  logic [NumHostReq-1:0]           h_aw_ready_i,
  output logic [NumHostReq*64-1:0]        h_aw_addr_o,
  output logic [NumHostReq*8-1:0]         h_aw_len_o,
  output logic [NumHostReq-1:0]           h_w_valid_o,
  input  logic [NumHostReq-1:0]           h_w_ready_i,
  output logic [NumHostReq*DataWidth-1:0] h_w_data_o,
  output logic [NumHostReq*StrbWidth-1:0] h_w_strb_o,
  output logic [NumHostReq-1:0]           h_w_last_o,
  input  logic [NumHostReq-1:0]           h_b_valid_i,
  input  logic [1:0]                      h_b_resp_i,
  // device-port requesters 0..NumCh-1
  output logic [NumCh-1:0]                d_ar_valid_o,
  input  logic [NumCh-1:0]                d_ar_ready_i,
  output logic [NumCh*64-1:0]             d_ar_addr_o,
  output logic [NumCh*8-1:0]              d_ar_len_o,
  input  logic [NumCh-1:0]                d_ar_err_i,
  input  logic [NumCh-1:0]                d_ar_poison_i,
  input  logic [NumCh-1:0]                d_r_valid_i,
  input  logic [DataWidth-1:0]            d_r_data_i,
  input  logic [1:0]                      d_r_resp_i,
  input  logic                            d_r_last_i,
  output logic [NumCh-1:0]                d_aw_valid_o,
  input  logic [NumCh-1:0]                d_aw_ready_i,
  output logic [NumCh*64-1:0]             d_aw_addr_o,
  output logic [NumCh*8-1:0]              d_aw_len_o,
  input  logic [NumCh-1:0]                d_aw_err_i,
  output logic [NumCh-1:0]                d_w_valid_o,
  input  logic [NumCh-1:0]                d_w_ready_i,
  output logic [NumCh*DataWidth-1:0]      d_w_data_o,
  output logic [NumCh*StrbWidth-1:0]      d_w_strb_o,
  output logic [NumCh-1:0]                d_w_last_o,
  input  logic [NumCh-1:0]                d_b_valid_i,
  input  logic [1:0]                      d_b_resp_i
);

  logic [NumCh-1:0] ch_busy, ch_halted;

  for (genvar c = 0; c < NumCh; c++) begin : gen_ch
    logic                 rd_host, wr_host;
    logic                 rd_ar_valid, wr_aw_valid, wr_w_valid, wr_w_last;
    logic [63:0]          rd_ar_addr, wr_aw_addr;
    logic [7:0]           rd_ar_len, wr_aw_len;
    logic [DataWidth-1:0] wr_w_data;
    logic [StrbWidth-1:0] wr_w_strb;
    logic [15:0]          desc_head, cpl_tail;
    logic                 push_valid, push_forget;
    logic [15:0]          push_idx;
    logic [255:0]         push_rec;

    npu_dma_push u_push (
      .clk_i,
      .rst_ni,
      .soft_reset_i,
      .we_i         (push_we_i[c*8 +: 8]),
      .wd_i         (push_wd_i),
      .desc_tail_i  (desc_tail_i[c*32 +: 16]),
      .forget_i     (push_forget),
      .valid_o      (push_valid),
      .idx_o        (push_idx),
      .rec_o        (push_rec)
    );

    npu_dma_channel #(
      .DataWidth   (DataWidth),
      .DevMemBytes (DevMemMiB * 1024 * 1024),
      .MaxRdBursts (MaxRdBursts)
    ) u_channel (
      .clk_i,
      .rst_ni,
      .soft_reset_i,
      .enable_i,
      .hang_i,
      .resume_i         (ch_ctrl_we_i[c] && ch_ctrl_wd_i[npu_reg_pkg::REG_DMA_CH_CTRL_RESUME_LSB]),
      .desc_base_i      ({desc_base_hi_i[c*32 +: 32], desc_base_lo_i[c*32 +: 32]}),
      .desc_size_log2_i (desc_size_log2_i[c*32 +: 5]),
      .desc_tail_i      (desc_tail_i[c*32 +: 16]),
      .desc_head_o      (desc_head),
      .push_valid_i     (push_valid),
      .push_idx_i       (push_idx),
      .push_rec_i       (push_rec),
      .push_forget_o    (push_forget),
      .cpl_base_i       ({cpl_base_hi_i[c*32 +: 32], cpl_base_lo_i[c*32 +: 32]}),
      .cpl_size_log2_i  (cpl_size_log2_i[c*32 +: 5]),
      .cpl_head_i       (cpl_head_i[c*32 +: 16]),
      .cpl_tail_o       (cpl_tail),
      .busy_o           (ch_busy[c]),
      .halted_o         (ch_halted[c]),
      .irq_o            (irq_o[c]),
      .dev_err_o        (dev_err_o[c]),
      .bytes_done_o     (ch_bytes_o[c*13 +: 13]),
      .stall_o          (ch_stall_o[c]),
      .ring_ar_valid_o  (h_ar_valid_o[NumCh+c]),
      .ring_ar_ready_i  (h_ar_ready_i[NumCh+c]),
      .ring_ar_addr_o   (h_ar_addr_o[(NumCh+c)*64 +: 64]),
      .ring_r_valid_i   (h_r_valid_i[NumCh+c]),
      .ring_r_data_i    (h_r_data_i),
      .ring_r_resp_i    (h_r_resp_i),
      .ring_aw_valid_o  (h_aw_valid_o[NumCh+c]),
      .ring_aw_ready_i  (h_aw_ready_i[NumCh+c]),
      .ring_aw_addr_o   (h_aw_addr_o[(NumCh+c)*64 +: 64]),
      .ring_w_valid_o   (h_w_valid_o[NumCh+c]),
      .ring_w_ready_i   (h_w_ready_i[NumCh+c]),
      .ring_w_data_o    (h_w_data_o[(NumCh+c)*DataWidth +: DataWidth]),
      .ring_w_strb_o    (h_w_strb_o[(NumCh+c)*StrbWidth +: StrbWidth]),
      .ring_b_valid_i   (h_b_valid_i[NumCh+c]),
      .ring_b_resp_i    (h_b_resp_i),
      .rd_host_o        (rd_host),
      .rd_ar_valid_o    (rd_ar_valid),
      .rd_ar_ready_i    (rd_host ? h_ar_ready_i[c] : d_ar_ready_i[c]),
      .rd_ar_addr_o     (rd_ar_addr),
      .rd_ar_len_o      (rd_ar_len),
      .rd_ar_err_i      (rd_host ? h_ar_err_i[c] : d_ar_err_i[c]),
      .rd_ar_poison_i   (rd_host ? h_ar_poison_i[c] : d_ar_poison_i[c]),
      .rd_r_valid_i     (h_r_valid_i[c] || d_r_valid_i[c]),
      .rd_r_data_i      (h_r_valid_i[c] ? h_r_data_i : d_r_data_i),
      .rd_r_resp_i      (h_r_valid_i[c] ? h_r_resp_i : d_r_resp_i),
      .rd_r_last_i      (h_r_valid_i[c] ? h_r_last_i : d_r_last_i),
      .wr_host_o        (wr_host),
      .wr_aw_valid_o    (wr_aw_valid),
      .wr_aw_ready_i    (wr_host ? h_aw_ready_i[c] : d_aw_ready_i[c]),
      .wr_aw_addr_o     (wr_aw_addr),
      .wr_aw_len_o      (wr_aw_len),
      .wr_aw_err_i      (wr_host ? h_aw_err_i[c] : d_aw_err_i[c]),
      .wr_w_valid_o     (wr_w_valid),
      .wr_w_ready_i     (wr_host ? h_w_ready_i[c] : d_w_ready_i[c]),
      .wr_w_data_o      (wr_w_data),
      .wr_w_strb_o      (wr_w_strb),
      .wr_w_last_o      (wr_w_last),
      .wr_b_valid_i     (h_b_valid_i[c] || d_b_valid_i[c]),
      .wr_b_resp_i      (h_b_valid_i[c] ? h_b_resp_i : d_b_resp_i)
    );

    assign h_ar_valid_o[c]            = rd_ar_valid && rd_host;
    assign d_ar_valid_o[c]            = rd_ar_valid && !rd_host;
    assign h_ar_addr_o[c*64 +: 64]    = rd_ar_addr;
    assign d_ar_addr_o[c*64 +: 64]    = rd_ar_addr;
    assign h_ar_len_o[c*8 +: 8]       = rd_ar_len;
    assign d_ar_len_o[c*8 +: 8]       = rd_ar_len;
    assign h_aw_valid_o[c]            = wr_aw_valid && wr_host;
    assign d_aw_valid_o[c]            = wr_aw_valid && !wr_host;
    assign h_aw_addr_o[c*64 +: 64]    = wr_aw_addr;
    assign d_aw_addr_o[c*64 +: 64]    = wr_aw_addr;
    assign h_aw_len_o[c*8 +: 8]       = wr_aw_len;
    assign d_aw_len_o[c*8 +: 8]       = wr_aw_len;
    assign h_w_valid_o[c]             = wr_w_valid && wr_host;
    assign d_w_valid_o[c]             = wr_w_valid && !wr_host;
    assign h_w_data_o[c*DataWidth +: DataWidth] = wr_w_data;
    assign d_w_data_o[c*DataWidth +: DataWidth] = wr_w_data;
    assign h_w_strb_o[c*StrbWidth +: StrbWidth] = wr_w_strb;
    assign d_w_strb_o[c*StrbWidth +: StrbWidth] = wr_w_strb;
    assign h_w_last_o[c]              = wr_w_last;
    assign d_w_last_o[c]              = wr_w_last;
    // ring requesters: single-beat bursts
    assign h_ar_len_o[(NumCh+c)*8 +: 8] = 8'd0;
    assign h_aw_len_o[(NumCh+c)*8 +: 8] = 8'd0;
    assign h_w_last_o[NumCh+c]          = 1'b1;

    assign desc_head_o[c*32 +: 32] = 32'(desc_head);
    assign cpl_tail_o[c*32 +: 32]  = 32'(cpl_tail);
    assign ch_status_o[c*32 +: 32] = {30'd0, ch_halted[c], ch_busy[c]};
  end

  assign ch_busy_o = ch_busy;
  assign busy_o    = |ch_busy;

  // ---- assertions
`ifndef SYNTHESIS
  // A channel's data requester asks one port at a time.
  a_one_port_per_channel: assert property (@(posedge clk_i) disable iff (!rst_ni)
      (h_ar_valid_o[NumCh-1:0] & d_ar_valid_o) == '0 && (h_aw_valid_o[NumCh-1:0] & d_aw_valid_o) == '0);
`endif

endmodule
