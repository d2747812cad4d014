// One DMA channel: fetches descriptors from its ring, moves the data, writes completions.
//
// Per descriptor: FETCH reads the 32-byte DMA_DESC at DESC_BASE + HEAD*32 (ring port),
// checks it (BAD_DESC), then RUN moves the data with three concurrent parts:
//   - the read issuer requests the source in bursts that never cross 4 KiB, as long as
//     the beat FIFO has room for every requested beat;
//   - the aligner shifts source beats into destination-aligned beats (a 2-beat window
//     and a byte shift fixed per descriptor) and pushes them into the FIFO; ZERO_FILL
//     pushes zero beats instead of reading;
//   - the write issuer cuts the destination at every 4 KiB boundary and sends a chunk
//     only when all of its beats are in the FIFO (store-and-forward), with byte strobes
//     for the unaligned head and tail.
// On any error the channel stops issuing, drains what is in flight, writes an error
// completion and halts until RESUME. CPL writes the 16-byte DMA_CPL at
// CPL_BASE + CPL_TAIL*16 once every data write has its response, then advances
// CPL_TAIL and raises the interrupt pulse (IRQ flag or error).
module npu_dma_channel #(
  parameter int unsigned DataWidth   = 512,
  parameter int unsigned DevMemBytes = 256 * 1024 * 1024,
  parameter int unsigned FifoBeats   = 512,
  parameter int unsigned MaxRdBursts = 16,
  parameter int unsigned MaxWrBursts = 8,
  localparam int unsigned StrbWidth  = DataWidth / 8,
  localparam int unsigned OffBits    = $clog2(StrbWidth),
  localparam int unsigned FifoIdx    = $clog2(FifoBeats)
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  input  logic                 soft_reset_i,
  input  logic                 enable_i,
  input  logic                 hang_i,
  input  logic                 resume_i,
  // rings
  input  logic [63:0]          desc_base_i,
  input  logic [4:0]           desc_size_log2_i,
  input  logic [15:0]          desc_tail_i,
  output logic [15:0]          desc_head_o,
  input  logic [63:0]          cpl_base_i,
  input  logic [4:0]           cpl_size_log2_i,
  input  logic [15:0]          cpl_head_i,
  output logic [15:0]          cpl_tail_o,
  output logic                 busy_o,
  output logic                 halted_o,
  output logic                 irq_o,
  output logic                 dev_err_o,
  // performance
  output logic [12:0]          bytes_done_o,
  output logic                 stall_o,
  // ring requester (host port): descriptor fetch, completion write
  output logic                 ring_ar_valid_o,
  input  logic                 ring_ar_ready_i,
  output logic [63:0]          ring_ar_addr_o,
  input  logic                 ring_r_valid_i,
  input  logic [DataWidth-1:0] ring_r_data_i,
  input  logic [1:0]           ring_r_resp_i,
  output logic                 ring_aw_valid_o,
  input  logic                 ring_aw_ready_i,
  output logic [63:0]          ring_aw_addr_o,
  output logic                 ring_w_valid_o,
  input  logic                 ring_w_ready_i,
  output logic [DataWidth-1:0] ring_w_data_o,
  output logic [StrbWidth-1:0] ring_w_strb_o,
  input  logic                 ring_b_valid_i,
  input  logic [1:0]           ring_b_resp_i,
  // data read requester (host or device port, `rd_host_o` selects)
  output logic                 rd_host_o,
  output logic                 rd_ar_valid_o,
  input  logic                 rd_ar_ready_i,
  output logic [63:0]          rd_ar_addr_o,
  output logic [7:0]           rd_ar_len_o,
  input  logic                 rd_ar_err_i,
  input  logic                 rd_ar_poison_i,
  input  logic                 rd_r_valid_i,
  input  logic [DataWidth-1:0] rd_r_data_i,
  input  logic [1:0]           rd_r_resp_i,
  input  logic                 rd_r_last_i,
  // data write requester (host or device port, `wr_host_o` selects)
  output logic                 wr_host_o,
  output logic                 wr_aw_valid_o,
  input  logic                 wr_aw_ready_i,
  output logic [63:0]          wr_aw_addr_o,
  output logic [7:0]           wr_aw_len_o,
  input  logic                 wr_aw_err_i,
  output logic                 wr_w_valid_o,
  input  logic                 wr_w_ready_i,
  output logic [DataWidth-1:0] wr_w_data_o,
  output logic [StrbWidth-1:0] wr_w_strb_o,
  output logic                 wr_w_last_o,
  input  logic                 wr_b_valid_i,
  input  logic [1:0]           wr_b_resp_i
);

  if (DataWidth < 256 || DataWidth > 1024 || (DataWidth & (DataWidth - 1)) != 0) begin : gen_bad_width
    $error("npu_dma_channel needs DataWidth in 256..1024, a power of two (a descriptor fits one beat)");
  end
  if (FifoBeats < 2 * 4096 / StrbWidth || (FifoBeats & (FifoBeats - 1)) != 0) begin : gen_bad_fifo
    $error("FifoBeats must be a power of two holding at least two 4 KiB chunks");
  end

  localparam logic [1:0] RespOkay = 2'b00;
  localparam logic [31:0] MaxLen  = 32'h0100_0000;  // 16 MiB
  localparam logic [7:0] ErrOk        = 8'(npu_reg_pkg::DMA_ERROR_OK);
  localparam logic [7:0] ErrHostRd    = 8'(npu_reg_pkg::DMA_ERROR_HOST_RD);
  localparam logic [7:0] ErrHostWr    = 8'(npu_reg_pkg::DMA_ERROR_HOST_WR);
  localparam logic [7:0] ErrDevRd     = 8'(npu_reg_pkg::DMA_ERROR_DEV_RD);
  localparam logic [7:0] ErrDevWr     = 8'(npu_reg_pkg::DMA_ERROR_DEV_WR);
  localparam logic [7:0] ErrDescFetch = 8'(npu_reg_pkg::DMA_ERROR_DESC_FETCH);
  localparam logic [7:0] ErrBadDesc   = 8'(npu_reg_pkg::DMA_ERROR_BAD_DESC);
  localparam logic [7:0] ErrPoison    = 8'(npu_reg_pkg::DMA_ERROR_POISON);
  localparam int unsigned FlagZero    = npu_reg_pkg::DMA_FLAG_ZERO_FILL;
  localparam int unsigned FlagIrq     = npu_reg_pkg::DMA_FLAG_IRQ;
  localparam int unsigned FlagSrcHost = npu_reg_pkg::DMA_FLAG_SRC_HOST;
  localparam int unsigned FlagDstHost = npu_reg_pkg::DMA_FLAG_DST_HOST;
  localparam int unsigned BeatsPer4k  = 4096 / StrbWidth;

  typedef enum logic [2:0] {
    StIdle, StFetch, StFetchWait, StRun, StCpl, StCplW, StCplB, StHalted
  } state_e;

  // ---------------------------------------------------------------- state
  state_e        state_d, state_q;
  logic          draining_d, draining_q;   // soft reset: finish in-flight bursts, then idle
  logic          dev_err_d, dev_err_q;     // completion write failed: stuck until soft reset
  logic [15:0]   head_d, head_q, cpl_tail_d, cpl_tail_q, index_d, index_q;
  logic [63:0]   src_d, src_q, dst_d, dst_q;
  logic [31:0]   len_d, len_q;
  logic [15:0]   flags_d, flags_q, tag_d, tag_q;
  logic [7:0]    err_d, err_q;
  logic [31:0]   bytes_ok_d, bytes_ok_q;

  // read issuer
  logic [63:0]   rd_addr_d, rd_addr_q;           // next source beat address (aligned)
  logic [31:0]   rd_left_d, rd_left_q;           // source beats not yet requested
  logic [FifoIdx:0] rd_beats_fly_d, rd_beats_fly_q;  // requested, not yet received
  logic [7:0]    rd_bursts_fly_d, rd_bursts_fly_q;
  // aligner
  logic [DataWidth-1:0] prev_d, prev_q;
  logic [31:0]   src_seen_d, src_seen_q;         // source beats received
  logic [31:0]   pushed_d, pushed_q;             // destination beats pushed
  logic          flush_d, flush_q;
  logic [DataWidth-1:0] flush_data_d, flush_data_q;
  // write issuer
  logic [63:0]   wr_addr_d, wr_addr_q;           // next destination beat address (aligned)
  logic [31:0]   wr_left_d, wr_left_q;           // destination beats not yet sent
  logic          w_active_d, w_active_q;
  logic [8:0]    w_beats_d, w_beats_q;           // beats left in the current burst
  logic [12:0]   w_bytes_d, w_bytes_q;           // bytes of the current burst
  logic          w_swallowed_d, w_swallowed_q;   // burst failed by injection (no B)
  logic [7:0]    b_fly_d, b_fly_q;
  // per-burst byte counts awaiting their B, oldest first
  logic [MaxWrBursts*13-1:0] bq_d, bq_q;
  logic [7:0]    bq_n_d, bq_n_q;

  // beat FIFO of destination-aligned data
  logic [DataWidth-1:0] fifo_mem [FifoBeats];
  logic [FifoIdx-1:0]   fifo_wr_q, fifo_rd_q;
  logic [FifoIdx:0]     fifo_cnt_q;
  logic                 fifo_push, fifo_pop, fifo_clear;
  logic [DataWidth-1:0] fifo_push_data;

  // ---------------------------------------------------------------- descriptor geometry
  logic [OffBits-1:0] src_off, dst_off, end_off, sh;
  logic               off_neg;                   // src_off < dst_off
  logic [31:0]        n_src_beats, n_dst_beats;
  assign src_off = src_q[OffBits-1:0];
  assign dst_off = dst_q[OffBits-1:0];
  assign end_off = OffBits'(dst_q + 64'(len_q));  // byte offset of the end within its beat
  assign off_neg = src_off < dst_off;
  assign sh      = src_off - dst_off;             // modulo StrbWidth
  assign n_src_beats = 32'((64'(src_off) + 64'(len_q) + 64'(StrbWidth) - 64'd1) >> OffBits);
  assign n_dst_beats = 32'((64'(dst_off) + 64'(len_q) + 64'(StrbWidth) - 64'd1) >> OffBits);

  logic zero_fill, src_host, dst_host;
  assign zero_fill = flags_q[FlagZero];
  assign src_host  = flags_q[FlagSrcHost];
  assign dst_host  = flags_q[FlagDstHost];

  // ---------------------------------------------------------------- ring geometry
  logic [15:0] size_mask_desc, size_mask_cpl;
  logic        rings_ok, desc_pending, cpl_full;
  assign size_mask_desc = 16'((32'd1 << desc_size_log2_i) - 1);
  assign size_mask_cpl  = 16'((32'd1 << cpl_size_log2_i) - 1);
  assign rings_ok     = desc_size_log2_i >= 5'd1 && desc_size_log2_i <= 5'd16
                        && cpl_size_log2_i >= 5'd1 && cpl_size_log2_i <= 5'd16;
  assign desc_pending = (head_q & size_mask_desc) != (desc_tail_i & size_mask_desc);
  assign cpl_full     = ((cpl_tail_q + 16'd1) & size_mask_cpl) == (cpl_head_i & size_mask_cpl);

  logic [63:0] desc_addr, cpl_addr;
  assign desc_addr = desc_base_i + {43'd0, head_q & size_mask_desc, 5'd0};
  assign cpl_addr  = cpl_base_i + {44'd0, cpl_tail_q & size_mask_cpl, 4'd0};

  // Descriptor fields from the fetched beat.
  logic [191:0] desc_raw;  // bits 255:192 of DMA_DESC are reserved
  assign desc_raw = 192'(ring_r_data_i >> {desc_addr[OffBits-1:0], 3'b000});

  function automatic logic range_bad(logic [63:0] addr, logic [31:0] len, logic host);
    logic [64:0] end_addr;
    end_addr = {1'b0, addr} + {33'd0, len};
    range_bad = host ? end_addr[64] : end_addr > 65'(DevMemBytes);
  endfunction

  logic [63:0] f_src, f_dst;
  logic [31:0] f_len;
  logic [15:0] f_flags, f_tag;
  logic        f_bad;
  assign f_src   = desc_raw[63:0];
  assign f_dst   = desc_raw[127:64];
  assign f_len   = desc_raw[159:128];
  assign f_flags = desc_raw[175:160];
  assign f_tag   = desc_raw[191:176];
  assign f_bad   = f_len == 32'd0 || f_len > MaxLen || f_flags[15:4] != 12'd0
                   || (!f_flags[FlagZero] && range_bad(f_src, f_len, f_flags[FlagSrcHost]))
                   || range_bad(f_dst, f_len, f_flags[FlagDstHost]);

  // ---------------------------------------------------------------- read issuer
  logic [31:0] rd_to_4k, rd_burst;
  logic [FifoIdx+1:0] fifo_reserved;
  logic        rd_can;
  assign rd_to_4k = 32'(BeatsPer4k) - 32'(rd_addr_q[11:OffBits]);
  assign rd_burst = rd_left_q < rd_to_4k ? rd_left_q : rd_to_4k;
  assign fifo_reserved = (FifoIdx + 2)'(fifo_cnt_q) + (FifoIdx + 2)'(rd_beats_fly_q) + (FifoIdx + 2)'(2);
  assign rd_can   = state_q == StRun && !draining_q && !hang_i && err_q == ErrOk && !zero_fill
                    && rd_left_q != 0 && rd_bursts_fly_q < 8'(MaxRdBursts)
                    && 33'(fifo_reserved) + 33'(rd_burst) <= 33'(FifoBeats);
  assign rd_host_o     = src_host;
  assign rd_ar_valid_o = rd_can;
  assign rd_ar_addr_o  = rd_addr_q;
  assign rd_ar_len_o   = 8'(rd_burst - 32'd1);

  // ---------------------------------------------------------------- aligner
  logic                 r_beat, r_ok, r_last_src;
  logic [2*DataWidth-1:0] window;
  logic [DataWidth-1:0] shifted, shifted_tail;
  assign r_beat     = rd_r_valid_i;
  assign r_ok       = rd_r_resp_i == RespOkay;
  assign r_last_src = src_seen_q + 32'd1 == n_src_beats;
  assign window       = {rd_r_data_i, (src_seen_q == 0 ? {DataWidth{1'b0}} : prev_q)};
  // Both cases use the window {s_i, s_(i-1)} shifted by sh bytes: for src_off >= dst_off
  // it yields destination beat i-1, otherwise destination beat i.
  assign shifted      = window[{1'b0, sh, 3'b000} +: DataWidth];
  assign shifted_tail = DataWidth'({{DataWidth{1'b0}}, rd_r_data_i} >> {sh, 3'b000});

  // ---------------------------------------------------------------- write issuer
  logic [31:0] wr_to_4k, wr_chunk;
  logic        aw_can, w_first, w_lastbeat;
  logic [StrbWidth-1:0] strb_head, strb_tail;
  assign wr_to_4k = 32'(BeatsPer4k) - 32'(wr_addr_q[11:OffBits]);
  assign wr_chunk = wr_left_q < wr_to_4k ? wr_left_q : wr_to_4k;
  assign aw_can   = state_q == StRun && !draining_q && !hang_i && err_q == ErrOk && !w_active_q
                    && wr_left_q != 0 && 33'(fifo_cnt_q) >= 33'(wr_chunk) && bq_n_q < 8'(MaxWrBursts);
  assign wr_host_o     = dst_host;
  assign wr_aw_valid_o = aw_can;
  assign wr_aw_addr_o  = wr_addr_q;
  assign wr_aw_len_o   = 8'(wr_chunk - 32'd1);

  // The beat being sent is the descriptor's first/last destination beat?
  assign w_first    = wr_left_q + 32'(w_beats_q) == n_dst_beats;
  assign w_lastbeat = wr_left_q == 0 && w_beats_q == 9'd1;
  assign strb_head  = {StrbWidth{1'b1}} << dst_off;
  assign strb_tail  = end_off == '0 ? {StrbWidth{1'b1}} : ~({StrbWidth{1'b1}} << end_off);
  assign wr_w_valid_o = w_active_q;
  assign wr_w_data_o  = fifo_mem[fifo_rd_q];
  assign wr_w_strb_o  = draining_q ? '0
                        : (w_first ? strb_head : {StrbWidth{1'b1}}) & (w_lastbeat ? strb_tail : {StrbWidth{1'b1}});
  assign wr_w_last_o  = w_beats_q == 9'd1;

  // Bytes a chunk of `beats` beats starting at wr_addr_q writes.
  function automatic logic [12:0] chunk_bytes(logic [8:0] beats, logic first, logic last,
                                              logic [OffBits-1:0] head_off, logic [OffBits-1:0] tail_off);
    logic [13:0] b;
    b = 14'(beats) << OffBits;
    if (first) b = b - 14'(head_off);
    if (last && tail_off != '0) b = b - 14'(StrbWidth) + 14'(tail_off);
    chunk_bytes = 13'(b);
  endfunction

  // ---------------------------------------------------------------- ring traffic
  assign ring_ar_valid_o = state_q == StFetch && !hang_i;
  assign ring_ar_addr_o  = {desc_addr[63:OffBits], {OffBits{1'b0}}};
  assign ring_aw_valid_o = state_q == StCpl && !cpl_full && !hang_i;
  assign ring_aw_addr_o  = {cpl_addr[63:OffBits], {OffBits{1'b0}}};
  assign ring_w_valid_o  = state_q == StCplW;
  logic [127:0] cpl_rec;
  assign cpl_rec = {48'd0, index_q, bytes_ok_q, 8'd0, err_q, tag_q};
  assign ring_w_data_o = DataWidth'({{(DataWidth-128){1'b0}}, cpl_rec}) << {cpl_addr[OffBits-1:0], 3'b000};
  assign ring_w_strb_o = StrbWidth'({{(StrbWidth-16){1'b0}}, 16'hFFFF}) << cpl_addr[OffBits-1:0];

  // ---------------------------------------------------------------- next state
  logic run_done;
  assign run_done = (wr_left_q == 0 || err_q != ErrOk) && !w_active_q && b_fly_q == 0
                    && rd_bursts_fly_q == 0 && !flush_q
                    && (err_q != ErrOk || pushed_q == n_dst_beats || zero_fill);

  always_comb begin : next_state
    state_d        = state_q;
    draining_d     = draining_q;
    dev_err_d      = dev_err_q;
    head_d         = head_q;
    cpl_tail_d     = cpl_tail_q;
    index_d        = index_q;
    src_d          = src_q;
    dst_d          = dst_q;
    len_d          = len_q;
    flags_d        = flags_q;
    tag_d          = tag_q;
    err_d          = err_q;
    bytes_ok_d     = bytes_ok_q;
    rd_addr_d      = rd_addr_q;
    rd_left_d      = rd_left_q;
    rd_beats_fly_d = rd_beats_fly_q;
    rd_bursts_fly_d = rd_bursts_fly_q;
    prev_d         = prev_q;
    src_seen_d     = src_seen_q;
    pushed_d       = pushed_q;
    flush_d        = flush_q;
    flush_data_d   = flush_data_q;
    wr_addr_d      = wr_addr_q;
    wr_left_d      = wr_left_q;
    w_active_d     = w_active_q;
    w_beats_d      = w_beats_q;
    w_bytes_d      = w_bytes_q;
    w_swallowed_d  = w_swallowed_q;
    b_fly_d        = b_fly_q;
    bq_d           = bq_q;
    bq_n_d         = bq_n_q;
    fifo_push      = 1'b0;
    fifo_push_data = '0;
    fifo_pop       = 1'b0;
    fifo_clear     = 1'b0;
    irq_o          = 1'b0;
    bytes_done_o   = '0;

    // ---- read issue and responses
    if (rd_ar_valid_o && rd_ar_ready_i) begin
      rd_addr_d = rd_addr_q + (64'(rd_burst) << OffBits);
      rd_left_d = rd_left_q - rd_burst;
      if (rd_ar_err_i) begin
        if (err_d == ErrOk) err_d = src_host ? ErrHostRd : ErrDevRd;
      end else begin
        rd_beats_fly_d  = rd_beats_fly_d + (FifoIdx + 1)'(rd_burst);
        rd_bursts_fly_d = rd_bursts_fly_d + 8'd1;
        if (rd_ar_poison_i && err_d == ErrOk) err_d = ErrPoison;
      end
    end
    if (r_beat) begin
      rd_beats_fly_d = rd_beats_fly_d - 1'b1;
      if (rd_r_last_i) rd_bursts_fly_d = rd_bursts_fly_d - 8'd1;
      if (!r_ok && err_d == ErrOk) err_d = src_host ? ErrHostRd : ErrDevRd;
      src_seen_d = src_seen_q + 32'd1;
      prev_d     = rd_r_data_i;
      if (err_d == ErrOk && !draining_q) begin
        // Destination beat from this source beat (see the header).
        if (off_neg || src_seen_q != 0) begin
          fifo_push      = 1'b1;
          fifo_push_data = shifted;
        end
        // The last source beat may complete one more destination beat.
        if (r_last_src && pushed_q + 32'(fifo_push) < n_dst_beats) begin
          if (fifo_push) begin
            flush_d      = 1'b1;
            flush_data_d = shifted_tail;
          end else begin
            fifo_push      = 1'b1;
            fifo_push_data = shifted_tail;
          end
        end
      end
    end else if (flush_q) begin
      fifo_push      = 1'b1;
      fifo_push_data = flush_data_q;
      flush_d        = 1'b0;
    end else if (state_q == StRun && zero_fill && err_q == ErrOk && !draining_q
                 && pushed_q < n_dst_beats && 33'(fifo_cnt_q) + 33'd1 < 33'(FifoBeats)) begin
      fifo_push = 1'b1;
    end
    if (fifo_push) pushed_d = pushed_q + 32'd1;

    // ---- write issue
    if (wr_aw_valid_o && wr_aw_ready_i) begin
      w_active_d    = 1'b1;
      w_beats_d     = 9'(wr_chunk);
      w_bytes_d     = chunk_bytes(9'(wr_chunk), wr_left_q == n_dst_beats, wr_left_q == wr_chunk, dst_off, end_off);
      w_swallowed_d = wr_aw_err_i;
      if (wr_aw_err_i && err_d == ErrOk) err_d = dst_host ? ErrHostWr : ErrDevWr;
      wr_addr_d     = wr_addr_q + (64'(wr_chunk) << OffBits);
      wr_left_d     = wr_left_q - wr_chunk;
    end
    if (w_active_q && wr_w_ready_i) begin
      fifo_pop  = 1'b1;
      w_beats_d = w_beats_q - 9'd1;
      if (w_beats_q == 9'd1) begin
        w_active_d = 1'b0;
        if (!w_swallowed_q) begin
          b_fly_d = b_fly_d + 8'd1;
          bq_d[bq_n_q*13 +: 13] = w_bytes_q;
          bq_n_d = bq_n_q + 8'd1;
        end
      end
    end
    if (wr_b_valid_i) begin
      b_fly_d = b_fly_d - 8'd1;
      if (wr_b_resp_i == RespOkay && err_d == ErrOk && !draining_q) begin
        bytes_ok_d   = bytes_ok_d + 32'(bq_q[12:0]);
        bytes_done_o = bq_q[12:0];
      end else if (wr_b_resp_i != RespOkay && err_d == ErrOk) begin
        err_d = dst_host ? ErrHostWr : ErrDevWr;
      end
      bq_d   = bq_d >> 13;
      bq_n_d = bq_n_d - 8'd1;
    end

    // ---- descriptor sequencing
    unique case (state_q)
      StIdle: begin
        if (enable_i && rings_ok && desc_pending && !hang_i && !draining_q) begin
          state_d = StFetch;
        end
      end
      StFetch: begin
        if (ring_ar_ready_i) state_d = StFetchWait;
      end
      StFetchWait: begin
        if (ring_r_valid_i) begin
          index_d    = head_q & size_mask_desc;
          head_d     = (head_q + 16'd1) & size_mask_desc;
          src_d      = f_src;
          dst_d      = f_dst;
          len_d      = f_len;
          flags_d    = f_flags;
          tag_d      = f_tag;
          bytes_ok_d = '0;
          fifo_clear = 1'b1;
          if (ring_r_resp_i != RespOkay) begin
            err_d   = ErrDescFetch;
            tag_d   = '0;
            state_d = StCpl;
          end else if (f_bad) begin
            err_d   = ErrBadDesc;
            state_d = StCpl;
          end else begin
            err_d      = ErrOk;
            rd_addr_d  = {f_src[63:OffBits], {OffBits{1'b0}}};
            rd_left_d  = 32'((64'(f_src[OffBits-1:0]) + 64'(f_len) + 64'(StrbWidth) - 64'd1) >> OffBits);
            wr_addr_d  = {f_dst[63:OffBits], {OffBits{1'b0}}};
            wr_left_d  = 32'((64'(f_dst[OffBits-1:0]) + 64'(f_len) + 64'(StrbWidth) - 64'd1) >> OffBits);
            src_seen_d = '0;
            pushed_d   = '0;
            state_d    = StRun;
          end
        end
      end
      StRun: begin
        if (run_done) state_d = StCpl;
      end
      StCpl: begin
        if (ring_aw_valid_o && ring_aw_ready_i) state_d = StCplW;
      end
      StCplW: begin
        if (ring_w_ready_i) state_d = StCplB;
      end
      StCplB: begin
        if (ring_b_valid_i) begin
          if (ring_b_resp_i != RespOkay) begin
            dev_err_d = 1'b1;
            state_d   = StHalted;
          end else begin
            cpl_tail_d = (cpl_tail_q + 16'd1) & size_mask_cpl;
            irq_o      = flags_q[FlagIrq] || err_q != ErrOk;
            state_d    = err_q != ErrOk ? StHalted : StIdle;
          end
        end
      end
      StHalted: begin
        if (resume_i && !dev_err_q) state_d = StIdle;
      end
      default: state_d = StIdle;
    endcase

    // ---- soft reset: forget everything once in-flight bursts have drained
    if (soft_reset_i) begin
      draining_d = 1'b1;
    end
    if (draining_d && !w_active_d && b_fly_d == 0 && rd_bursts_fly_d == 0
        && state_q != StFetchWait && state_q != StCplW && state_q != StCplB) begin
      draining_d = 1'b0;
      dev_err_d  = 1'b0;
      state_d    = StIdle;
      head_d     = '0;
      cpl_tail_d = '0;
      err_d      = ErrOk;
      rd_left_d  = '0;
      wr_left_d  = '0;
      flush_d    = 1'b0;
      fifo_clear = 1'b1;
    end
  end

  // ---------------------------------------------------------------- registers
  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      state_q         <= StIdle;
      draining_q      <= 1'b0;
      dev_err_q       <= 1'b0;
      head_q          <= '0;
      cpl_tail_q      <= '0;
      index_q         <= '0;
      src_q           <= '0;
      dst_q           <= '0;
      len_q           <= '0;
      flags_q         <= '0;
      tag_q           <= '0;
      err_q           <= ErrOk;
      bytes_ok_q      <= '0;
      rd_addr_q       <= '0;
      rd_left_q       <= '0;
      rd_beats_fly_q  <= '0;
      rd_bursts_fly_q <= '0;
      prev_q          <= '0;
      src_seen_q      <= '0;
      pushed_q        <= '0;
      flush_q         <= 1'b0;
      flush_data_q    <= '0;
      wr_addr_q       <= '0;
      wr_left_q       <= '0;
      w_active_q      <= 1'b0;
      w_beats_q       <= '0;
      w_bytes_q       <= '0;
      w_swallowed_q   <= 1'b0;
      b_fly_q         <= '0;
      bq_q            <= '0;
      bq_n_q          <= '0;
    end else begin
      state_q         <= state_d;
      draining_q      <= draining_d;
      dev_err_q       <= dev_err_d;
      head_q          <= head_d;
      cpl_tail_q      <= cpl_tail_d;
      index_q         <= index_d;
      src_q           <= src_d;
      dst_q           <= dst_d;
      len_q           <= len_d;
      flags_q         <= flags_d;
      tag_q           <= tag_d;
      err_q           <= err_d;
      bytes_ok_q      <= bytes_ok_d;
      rd_addr_q       <= rd_addr_d;
      rd_left_q       <= rd_left_d;
      rd_beats_fly_q  <= rd_beats_fly_d;
      rd_bursts_fly_q <= rd_bursts_fly_d;
      prev_q          <= prev_d;
      src_seen_q      <= src_seen_d;
      pushed_q        <= pushed_d;
      flush_q         <= flush_d;
      flush_data_q    <= flush_data_d;
      wr_addr_q       <= wr_addr_d;
      wr_left_q       <= wr_left_d;
      w_active_q      <= w_active_d;
      w_beats_q       <= w_beats_d;
      w_bytes_q       <= w_bytes_d;
      w_swallowed_q   <= w_swallowed_d;
      b_fly_q         <= b_fly_d;
      bq_q            <= bq_d;
      bq_n_q          <= bq_n_d;
    end
  end

  // Beat FIFO: storage without reset (a RAM), pointers with reset.
  always_ff @(posedge clk_i) begin : fifo_ram
    if (fifo_push) fifo_mem[fifo_wr_q] <= fifo_push_data;
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin : fifo_ptrs
    if (!rst_ni) begin
      fifo_wr_q  <= '0;
      fifo_rd_q  <= '0;
      fifo_cnt_q <= '0;
    end else if (fifo_clear) begin
      fifo_wr_q  <= '0;
      fifo_rd_q  <= '0;
      fifo_cnt_q <= '0;
    end else begin
      fifo_wr_q  <= fifo_wr_q + FifoIdx'(fifo_push);
      fifo_rd_q  <= fifo_rd_q + FifoIdx'(fifo_pop);
      fifo_cnt_q <= fifo_cnt_q + (FifoIdx + 1)'(fifo_push) - (FifoIdx + 1)'(fifo_pop);
    end
  end

  assign desc_head_o = head_q;
  assign cpl_tail_o  = cpl_tail_q;
  assign busy_o      = (state_q != StIdle && state_q != StHalted) || draining_q || desc_pending && enable_i && state_q == StIdle;
  assign halted_o    = state_q == StHalted;
  assign dev_err_o   = dev_err_q;
  assign stall_o     = state_q != StIdle && state_q != StHalted && !rd_r_valid_i && !(wr_w_valid_o && wr_w_ready_i);

  // ---- assertions
`ifndef SYNTHESIS
  a_fifo_no_overflow: assert property (@(posedge clk_i) disable iff (!rst_ni)
      fifo_push && !fifo_pop |-> fifo_cnt_q < (FifoIdx + 1)'(FifoBeats));
  a_fifo_no_underflow: assert property (@(posedge clk_i) disable iff (!rst_ni)
      fifo_pop |-> fifo_cnt_q != 0);
  a_no_unexpected_r: assert property (@(posedge clk_i) disable iff (!rst_ni)
      rd_r_valid_i |-> rd_beats_fly_q != 0);
  a_no_unexpected_b: assert property (@(posedge clk_i) disable iff (!rst_ni)
      wr_b_valid_i |-> b_fly_q != 0);
  a_known_state: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(state_q));
`endif

endmodule
