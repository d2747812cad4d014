// One DMA channel: a pipeline of descriptors from its ring to its completion ring.
//
// Up to `Slots` descriptors are in flight at once, each in one of these stages (slot
// pointers advance in ring order):
//   fetch    reads 32-byte DMA_DESC records (several fetches outstanding) and checks them;
//            the entry the host pushed through BAR0 is taken from its copy instead, when
//            no fetch is outstanding (no read round trip; docs/device.md 9.3);
//   read     requests a descriptor's source in bursts that never cross 4 KiB, as long as
//            the beat FIFO has room for every requested beat; the next descriptor's reads
//            start as soon as this one's are issued;
//   receive  stores returning source beats in the FIFO; each beat belongs to the slot of
//            the oldest read burst in flight (responses return in order on one port, and
//            a channel keeps its reads — and its writes — on one port at a time);
//   write    cuts the destination at every 4 KiB boundary and sends a chunk once all of
//            its source beats are in the FIFO (store-and-forward); each destination beat
//            is two adjacent source beats shifted by (SRC - DST) mod beat size, with byte
//            strobes on the unaligned head and tail; ZERO_FILL sends zeros;
//   complete once every write of the descriptor has its response, writes the 16-byte
//            DMA_CPL (completion writes are pipelined); CPL_TAIL advances and the
//            interrupt pulses when each completion write is acknowledged.
// An error in a descriptor stops new fetches and reads; descriptors before it finish,
// its error completion is written, everything after it is drained and discarded, HEAD is
// rewound to the descriptor after the failed one, and the channel halts until RESUME.
//
// Timing structure (250 MHz on UltraScale+, scripts/fpga-report.sh): every request
// (data AR/AW, descriptor fetch, completion write) leaves from registers with its
// payload; a fetched descriptor is cut from its beat and checked in two register stages
// before it fills its slot; each slot's next value is computed from the cycle's events
// in parallel (no chained read-modify-write); errors are recorded a cycle after they are
// seen; the beat FIFO is read through registered ports (block RAM).
module npu_dma_channel #(
  parameter int unsigned DataWidth   = 512,
  parameter int unsigned DevMemBytes = 256 * 1024 * 1024,
  parameter int unsigned FifoBeats   = 512,
  parameter int unsigned MaxRdBursts = 16,
  parameter int unsigned MaxWrBursts = 16,
  parameter int unsigned Slots       = 16,
  localparam int unsigned StrbWidth  = DataWidth / 8,
  localparam int unsigned OffBits    = $clog2(StrbWidth),
  localparam int unsigned FifoIdx    = $clog2(FifoBeats),
  localparam int unsigned SlotIdx    = $clog2(Slots)
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
  // pushed descriptor (npu_dma_push): a copy of the ring entry at push_idx_i
  input  logic                 push_valid_i,
  input  logic [15:0]          push_idx_i,
  input  logic [255:0]         push_rec_i,
  output logic                 push_forget_o,  // taken, or the ring was fetched from
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
  if (FifoBeats < 4 * 4096 / StrbWidth || (FifoBeats & (FifoBeats - 1)) != 0) begin : gen_bad_fifo
    $error("FifoBeats must be a power of two holding at least four 4 KiB chunks");
  end
  if (Slots < 2 || Slots > 64 || (Slots & (Slots - 1)) != 0) begin : gen_bad_slots
    $error("Slots must be a power of two in 2..64");
  end

  localparam logic [1:0]  RespOkay     = 2'b00;
  localparam logic [7:0]  ErrOk        = 8'(npu_reg_pkg::DMA_ERROR_OK);
  localparam logic [7:0]  ErrHostRd    = 8'(npu_reg_pkg::DMA_ERROR_HOST_RD);
  localparam logic [7:0]  ErrHostWr    = 8'(npu_reg_pkg::DMA_ERROR_HOST_WR);
  localparam logic [7:0]  ErrDevRd     = 8'(npu_reg_pkg::DMA_ERROR_DEV_RD);
  localparam logic [7:0]  ErrDevWr     = 8'(npu_reg_pkg::DMA_ERROR_DEV_WR);
  localparam logic [7:0]  ErrPoison    = 8'(npu_reg_pkg::DMA_ERROR_POISON);
  localparam int unsigned FlagZero     = npu_reg_pkg::DMA_FLAG_ZERO_FILL;
  localparam int unsigned FlagIrq      = npu_reg_pkg::DMA_FLAG_IRQ;
  localparam int unsigned FlagSrcHost  = npu_reg_pkg::DMA_FLAG_SRC_HOST;
  localparam int unsigned FlagDstHost  = npu_reg_pkg::DMA_FLAG_DST_HOST;
  localparam int unsigned BeatsPer4k   = 4096 / StrbWidth;

  typedef logic [SlotIdx:0] sptr_t;  // slot pointer with wrap bit

  typedef struct packed {
    logic [63:0] src;
    logic [63:0] dst;
    logic [31:0] len;
    logic [15:0] flags;
    logic [15:0] tag;
    logic [15:0] index;      // ring index of the descriptor
    logic [7:0]  err;
    logic [31:0] rd_beats;   // source beats requested that will be answered
    logic [31:0] rcvd;       // source beats received
    logic [31:0] bytes_ok;   // destination bytes acknowledged OKAY
    logic [7:0]  b_pend;     // write bursts awaiting their response
  } slot_t;

  // Slots live in one flat vector (Yosys does not support packed arrays of structs);
  // a slot is always read and written whole through a `slot_t` variable.
  localparam int unsigned SlotW = 320;
  logic [Slots*SlotW-1:0] slot_d, slot_q;

  // Slot read by pointer: an AND-OR over the slots (a balanced tree, not a priority
  // chain); writes are per slot (slot_next).
  function automatic slot_t get_slot(logic [Slots*SlotW-1:0] v, logic [SlotIdx-1:0] p);
    get_slot = '0;
    for (int unsigned i = 0; i < Slots; i++) begin
      get_slot = get_slot | (v[i*SlotW +: SlotW] & {SlotW{p == SlotIdx'(i)}});
    end
  endfunction

  // ---------------------------------------------------------------- pipeline pointers
  sptr_t fe_d, fe_q;   // next slot to allocate (fetch issued)
  sptr_t fi_d, fi_q;   // next slot to fill (fetch answered)
  sptr_t rd_d, rd_q;   // slot whose reads are being issued
  sptr_t wr_d, wr_q;   // slot being written
  sptr_t cp_d, cp_q;   // next completion to write
  sptr_t cb_d, cb_q;   // oldest slot: completion awaiting its write response

  function automatic logic [SlotIdx:0] age(sptr_t p, sptr_t base);
    age = p - base;
  endfunction

  // ---------------------------------------------------------------- channel state
  logic        halting_d, halting_q;   // an error was recorded in slot halt_slot
  sptr_t       halt_d, halt_q;
  logic        halted_d, halted_q;     // waiting for RESUME
  logic        draining_d, draining_q; // soft reset: finish in-flight bursts, then clear
  logic        dev_err_d, dev_err_q;   // completion write failed: stuck until soft reset
  logic        resume_pend_d, resume_pend_q;  // RESUME written while the channel drains
  // Requests leave from registers: a stage decides from its registered state, the request
  // is shown from the next cycle with its payload registered alongside, and it stays
  // shown until accepted (AXI valid/ready rule), even if the condition that raised it has
  // gone since. After a handshake the stage decides again from the updated state (one
  // idle cycle between two requests of one requester).
  localparam int unsigned BurstW = $clog2(BeatsPer4k) + 1;
  logic        rd_req_d, rd_req_q, aw_req_d, aw_req_q;
  logic        fetch_req_d, fetch_req_q, cpl_req_d, cpl_req_q;
  logic [BurstW-1:0] rd_burst_q;
  logic [7:0]  rd_len_q;
  logic        rd_host_q;
  logic [63:0] fetch_addr_q;
  logic [63:OffBits] cpl_addr_q;  // beat-aligned
  logic [OffBits-1:0] cpl_off_q;  // byte offset of the record in its beat
  logic [127:0] cpl_rec_q;
  logic [15:0] head_d, head_q;         // DMA_DESC_HEAD
  logic [15:0] fidx_d, fidx_q;         // ring index of the next descriptor to fetch
  logic [15:0] cpl_tail_d, cpl_tail_q;
  logic [7:0]  fetch_fly_d, fetch_fly_q;
  logic [7:0]  cpl_fly_d, cpl_fly_q;

  // read stage
  logic        rd_started_d, rd_started_q;
  logic [63:0] rd_addr_d, rd_addr_q;
  logic [31:0] rd_left_d, rd_left_q;
  logic [FifoIdx+1:0] rd_beats_fly_d, rd_beats_fly_q;
  logic [7:0]  rd_bursts_fly_d, rd_bursts_fly_q;
  logic        rd_fly_host_d, rd_fly_host_q;  // port of the reads in flight
  // Slot of each read burst in flight, oldest at the head (prim_fifo_sync below).
  logic        rbq_push;
  sptr_t       rx;  // slot of the beat arriving now

  // write stage
  logic        wr_started_d, wr_started_q;
  logic [63:0] wr_addr_d, wr_addr_q;
  logic [31:0] wr_left_d, wr_left_q;     // destination beats not yet issued in an AW
  logic [31:0] sent_d, sent_q;           // destination beats sent
  logic [FifoIdx:0] rp0_d, rp0_q;        // FIFO pointer of the slot's first source beat
  logic        w_active_d, w_active_q;
  logic [8:0]  w_beats_d, w_beats_q;
  logic        w_swallowed_d, w_swallowed_q;
  logic        wr_fly_host_d, wr_fly_host_q;  // port of the writes in flight
  // write bursts awaiting B, oldest first: {slot, bytes} (prim_fifo_sync below)
  localparam int unsigned BqW  = SlotIdx + 1 + 13;  // full slot pointer (with wrap bit)
  localparam int unsigned BqCW = $clog2(MaxWrBursts + 2);
  logic           bq_push;
  logic [BqW-1:0] bq_head;
  logic [BqCW-1:0] bq_n;

  // completion stage
  logic        cw_pend_d, cw_pend_q;     // AW accepted, W beat pending
  logic [DataWidth-1:0] cw_data_q;
  logic [StrbWidth-1:0] cw_strb_q;

  // beat FIFO of source data (two copies, u_fifo_lo and u_fifo_hi below)
  logic [FifoIdx:0]     fifo_wr_d, fifo_wr_q, fifo_rel_d, fifo_rel_q, fifo_held_q;
  logic                 fifo_push;

  // ---------------------------------------------------------------- ring geometry
  // Ring sizes are registers (CSRs); their masks are registered here, so a size write
  // takes effect a cycle later.
  logic [15:0] dmask, cmask;
  logic        rings_ok, fetch_pending, cpl_room;
  always_ff @(posedge clk_i or negedge rst_ni) begin : ring_geometry_ff
    if (!rst_ni) begin
      dmask    <= '0;
      cmask    <= '0;
      rings_ok <= 1'b0;
    end else begin
      dmask    <= 16'((32'd1 << desc_size_log2_i) - 1);
      cmask    <= 16'((32'd1 << cpl_size_log2_i) - 1);
      rings_ok <= desc_size_log2_i >= 5'd1 && desc_size_log2_i <= 5'd16
                  && cpl_size_log2_i >= 5'd1 && cpl_size_log2_i <= 5'd16;
    end
  end
  assign fetch_pending = (fidx_q & dmask) != (desc_tail_i & dmask);
  // Room in the completion ring, registered: a completion is raised at least a cycle
  // after the last one's AW handshake counted it in flight (its W beat lies between),
  // and the host's head only frees room.
  always_ff @(posedge clk_i or negedge rst_ni) begin : cpl_room_ff
    if (!rst_ni) cpl_room <= 1'b0;
    else         cpl_room <= ((cpl_tail_q + 16'(cpl_fly_q) + 16'd1) & cmask) != (cpl_head_i & cmask);
  end

  // Beat-aligned ring addresses use the upper bits, the byte offset within the beat the
  // lower ones; each is consumed in part.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [63:0] fetch_addr, cpl_addr;
  /* verilator lint_on UNUSEDSIGNAL */

  // Views of the slots at the fill and halt pointers (each read in part). Slots are
  // always read and written whole by a dynamic index.
  /* verilator lint_off UNUSEDSIGNAL */
  slot_t fs, hs;
  /* verilator lint_on UNUSEDSIGNAL */
  assign fs = get_slot(slot_q, fi_q[SlotIdx-1:0]);
  assign hs = get_slot(slot_q, halt_q[SlotIdx-1:0]);
  assign fetch_addr = desc_base_i + {43'd0, fidx_q & dmask, 5'd0};
  assign cpl_addr   = cpl_base_i + {44'd0, (cpl_tail_q + 16'(cpl_fly_q)) & cmask, 4'd0};

  // ---------------------------------------------------------------- fill pipeline
  // A fetched descriptor is cut out of its beat at the byte offset its fetch recorded and
  // checked (npu_dma_desc_check, two register stages) before it lands in its slot (fill
  // pointer fi). fa points at the slot whose descriptor arrives next.
  sptr_t              fa_d, fa_q;
  logic [OffBits-1:0] d_off_q [Slots];  // byte offset of each slot's record in its beat
  logic [OffBits-1:0] fa_off;
  logic               fill_busy;
  assign fa_off = d_off_q[fa_q[SlotIdx-1:0]];
  logic [63:0]        f_src, f_dst;
  logic [31:0]        f_len;
  logic [15:0]        f_flags, f_tag;
  logic               ev_fill;
  logic [7:0]         ev_fill_code;
  logic               ev_fill_bad;
  npu_dma_desc_check #(
    .DataWidth   (DataWidth),
    .DevMemBytes (DevMemBytes)
  ) u_desc_check (
    .clk_i,
    .rst_ni,
    .beat_valid_i (fetch_rsp),
    .beat_data_i  (fetch_rsp_data),
    .beat_resp_i  (fetch_rsp_resp),
    .beat_off_i   (fa_off),
    .desc_valid_o (ev_fill),
    .busy_o       (fill_busy),
    .desc_src_o   (f_src),
    .desc_dst_o   (f_dst),
    .desc_len_o   (f_len),
    .desc_flags_o (f_flags),
    .desc_tag_o   (f_tag),
    .desc_code_o  (ev_fill_code),
    .desc_bad_o   (ev_fill_bad)
  );

  function automatic logic [31:0] beats_of(logic [OffBits-1:0] off, logic [31:0] len);
    beats_of = 32'((64'(off) + 64'(len) + 64'(StrbWidth) - 64'd1) >> OffBits);
  endfunction

  // Bytes of a destination chunk: whole beats less the unaligned head and tail.
  function automatic logic [12:0] chunk_bytes(logic [8:0] beats, logic first, logic last,
                                              logic [OffBits-1:0] head_off, logic [OffBits-1:0] tail_off);
    logic [13:0] b;
    b = 14'(beats) << OffBits;
    if (first) b = b - 14'(head_off);
    if (last && tail_off != '0) b = b - 14'(StrbWidth) + 14'(tail_off);
    chunk_bytes = 13'(b);
  endfunction

  // ---------------------------------------------------------------- read stage
  // Stage views of a slot: each stage reads only the fields it needs.
  /* verilator lint_off UNUSEDSIGNAL */
  slot_t       rs;  // slot in the read stage
  /* verilator lint_on UNUSEDSIGNAL */
  logic        rs_ok, rd_can;
  logic [31:0] rd_to_4k, rd_burst;
  logic [FifoIdx+2:0] fifo_reserved;
  assign rs       = get_slot(slot_q, rd_q[SlotIdx-1:0]);
  // The stage's view of its slot, registered: the slot file's read mux stays in front of
  // a register. Valid (rs_ok_view) once it was taken of this slot after its fill; the
  // fields the read stage uses (addresses, length, flags, the fill's error code) do not
  // change from the fill until the stage has left the slot (a read or write error can
  // hit a slot only after its reads have started).
  /* verilator lint_off UNUSEDSIGNAL */
  slot_t rs_q;
  /* verilator lint_on UNUSEDSIGNAL */
  sptr_t rs_slot_q;
  logic  rs_filled_q, rs_view_ok;
  always_ff @(posedge clk_i) begin : rs_view_ff
    rs_q        <= rs;
    rs_slot_q   <= rd_q;
    rs_filled_q <= rd_q != fi_q;
  end
  assign rs_view_ok = rs_filled_q && rs_slot_q == rd_q;
  assign rs_ok    = rd_q != fi_q && rd_started_q;
  assign rd_to_4k = 32'(BeatsPer4k) - 32'(rd_addr_q[11:OffBits]);
  assign rd_burst = rd_left_q < rd_to_4k ? rd_left_q : rd_to_4k;
  // Beats held (0..FifoBeats: one bit more than a FIFO index, so a full FIFO counts as
  // full) plus beats requested and not yet received. Held beats are registered from the
  // write pointer's next value and the release pointer's current one: a release is seen a
  // cycle late (the count errs on the full side), a push at once.
  assign fifo_reserved = (FifoIdx + 3)'(fifo_held_q) + (FifoIdx + 3)'(rd_beats_fly_q);
  // After an error only descriptors older than the failed one keep reading.
  assign rd_can   = rs_ok && !err_pend_q && (!halting_q || age(rd_q, cb_q) < age(halt_q, cb_q)) && !halted_q && !draining_q && !hang_i && rd_left_q != 0
                    && rd_bursts_fly_q < 8'(MaxRdBursts)
                    && (rd_bursts_fly_q == 0 || rd_fly_host_q == rs_q.flags[FlagSrcHost])
                    && 34'(fifo_reserved) + 34'(rd_burst) <= 34'(FifoBeats);
  assign rd_host_o     = rd_host_q;
  assign rd_ar_valid_o = rd_req_q;
  assign rd_ar_addr_o  = rd_addr_q;
  assign rd_ar_len_o   = rd_len_q;

  // ---------------------------------------------------------------- write stage
  // Stage views of a slot: each stage reads only the fields it needs.
  /* verilator lint_off UNUSEDSIGNAL */
  slot_t       ws;  // slot in the write stage
  /* verilator lint_on UNUSEDSIGNAL */
  logic [OffBits-1:0] w_dst_off, w_end_off, w_sh;
  logic        w_neg, w_zero, w_dhost, w_allowed;
  logic [31:0] w_ns, w_nd, w_to_4k, w_chunk, w_need;
  assign ws = get_slot(slot_q, wr_q[SlotIdx-1:0]);
  // The stage's registered view of its slot, as for the read stage (rs_q): the
  // descriptor's fields, valid once taken of this slot after its fill. Its error code
  // and counts change while the slot's reads are in flight and are read live (ws).
  /* verilator lint_off UNUSEDSIGNAL */
  slot_t ws_q;
  /* verilator lint_on UNUSEDSIGNAL */
  sptr_t ws_slot_q;
  logic  ws_filled_q, ws_view_ok;
  always_ff @(posedge clk_i) begin : ws_view_ff
    ws_q        <= ws;
    ws_slot_q   <= wr_q;
    ws_filled_q <= wr_q != fi_q;
  end
  assign ws_view_ok = ws_filled_q && ws_slot_q == wr_q;
  // The slot's constants, registered while no slot is started (so they hold the
  // started slot's values from the cycle after its start on).
  always_ff @(posedge clk_i) begin : w_const_ff
    if (!wr_started_q) begin
      w_dst_off <= ws_q.dst[OffBits-1:0];
      w_end_off <= OffBits'(ws_q.dst + 64'(ws_q.len));
      w_neg     <= ws_q.src[OffBits-1:0] < ws_q.dst[OffBits-1:0];
      w_sh      <= ws_q.src[OffBits-1:0] - ws_q.dst[OffBits-1:0];
      w_zero    <= ws_q.flags[FlagZero];
      w_dhost   <= ws_q.flags[FlagDstHost];
      w_ns      <= beats_of(ws_q.src[OffBits-1:0], ws_q.len);
      w_nd      <= beats_of(ws_q.dst[OffBits-1:0], ws_q.len);
    end
  end
  // The next chunk (destination beats up to the next 4 KiB boundary), its AW length and
  // byte count, and the source beats it needs (up to and including the upper half of
  // its last beat's window) are registered from the stage state; they are valid
  // (w_fresh_q) once that state has held for a cycle, and they hold while the state does
  // (an AW request shows them).
  logic [BurstW-1:0] w_chunk_q;
  logic [7:0]        aw_len_q;
  logic [12:0]       aw_bytes_q;
  logic [31:0]       w_need_q, w_need_raw;
  logic              w_fresh_q;
  assign w_to_4k    = 32'(BeatsPer4k) - 32'(wr_addr_q[11:OffBits]);
  assign w_chunk    = wr_left_q < w_to_4k ? wr_left_q : w_to_4k;
  assign w_need_raw = (w_nd - wr_left_q) + w_chunk + (w_neg ? 32'd0 : 32'd1);
  assign w_need     = w_need_raw < w_ns ? w_need_raw : w_ns;
  always_ff @(posedge clk_i) begin : w_chunk_ff
    w_chunk_q  <= BurstW'(w_chunk);
    aw_len_q   <= 8'(w_chunk - 32'd1);
    aw_bytes_q <= chunk_bytes(9'(w_chunk), wr_left_q == w_nd, wr_left_q == w_chunk, w_dst_off, w_end_off);
    w_need_q   <= w_need;
  end
  always_ff @(posedge clk_i or negedge rst_ni) begin : w_fresh_ff
    if (!rst_ni) w_fresh_q <= 1'b0;
    else         w_fresh_q <= wr_started_q && !(wr_aw_valid_o && wr_aw_ready_i);
  end
  // The slot-done inputs, registered from the write stage's view: every source beat
  // received (two cycles late: per slot, then picked) and where the slot's source beats
  // end in the FIFO (a cycle late). They are used only for the slot and start they were
  // taken for (w_view_ok). Late is safe: the slot's read count is final once the read stage has left it (slot done
  // requires wr_q != rd_q, and the read stage steps only in a cycle without a read
  // handshake), so "all received" stays true once true, and the FIFO start (rp0_q) is
  // fixed from the slot's start on. "All received" is compared in every slot side by
  // side, then picked.
  logic              w_all_rcvd_q, w_view_started_q, w_view_ok;
  sptr_t             w_view_slot_q;
  logic [FifoIdx:0]  w_rel_end_q;
  // Per-slot flags computed side by side, then picked by the write pointer (a pick of
  // one bit is a single LUT level; picking the fields first would put the slot file's
  // read mux in front of each compare): every source beat received, an error recorded,
  // enough source beats received for the next AW (w_need_q).
  logic [Slots-1:0]  all_rcvd, slot_bad, rcvd_enough, irq_want, no_b_pend;
  always_comb begin : flags_per_slot
    /* verilator lint_off UNUSEDSIGNAL */
    slot_t t;
    /* verilator lint_on UNUSEDSIGNAL */
    for (int unsigned i = 0; i < Slots; i++) begin
      t              = slot_q[i*SlotW +: SlotW];
      all_rcvd[i]    = t.rcvd == t.rd_beats;
      slot_bad[i]    = t.err != ErrOk;
      rcvd_enough[i] = t.rcvd >= w_need_q;
      irq_want[i]    = t.flags[FlagIrq] || t.err != ErrOk;
      no_b_pend[i]   = t.b_pend == 0;
    end
  end
  // All received, error recorded and interrupt wanted are registered per slot, a cycle
  // after the slot file (err_pend_q covers that cycle for errors).
  logic [Slots-1:0] all_rcvd_q, slot_bad_q, irq_want_q;
  always_ff @(posedge clk_i) begin : slot_flags_ff
    all_rcvd_q <= all_rcvd;
    slot_bad_q <= slot_bad;
    irq_want_q <= irq_want;
  end
  logic ws_bad, ws_rcvd_enough;
  assign ws_bad         = slot_bad_q[wr_q[SlotIdx-1:0]];
  assign ws_rcvd_enough = rcvd_enough[wr_q[SlotIdx-1:0]];
  always_ff @(posedge clk_i) begin : w_done_view_ff
    w_view_slot_q    <= wr_q;
    w_view_started_q <= wr_started_q;
    w_all_rcvd_q     <= all_rcvd_q[wr_q[SlotIdx-1:0]];
    w_rel_end_q      <= rp0_q + (FifoIdx + 1)'(ws.rd_beats);
  end
  assign w_view_ok = w_view_started_q && w_view_slot_q == wr_q;

  // Slots after the one that failed are never written.
  // (Once halted, the failed slot has completed and ages no longer compare.)
  assign w_allowed  = !halted_q && !err_pend_q && (!halting_q || age(wr_q, cb_q) <= age(halt_q, cb_q));

  // The next AW may be raised while the last W beat of the current burst is offered,
  // taken or not (W readiness stays off this decision). The mux fires an AW only once
  // the current burst's last W beat goes, and its acknowledgement reaches the channel a
  // cycle later, when no W beat is active any more.
  logic aw_can;
  assign aw_can = wr_started_q && w_fresh_q && wr_q != fi_q && !ws_bad && w_allowed && !draining_q
                  && !hang_i && (!w_active_q || w_beats_q == 9'd1) && wr_left_q != 0 && 32'(bq_n) < MaxWrBursts
                  && (bq_n == 0 || wr_fly_host_q == w_dhost)
                  && (w_zero || ws_rcvd_enough);
  assign wr_host_o     = w_dhost;
  assign wr_aw_valid_o = aw_req_q;
  assign wr_aw_addr_o  = wr_addr_q;
  assign wr_aw_len_o   = aw_len_q;

  // Destination beat `sent_q` from the beat FIFO, and its strobes (npu_dma_wr_beats).
  // A source beat is stored rotated by its slot's (source - destination offset), which
  // its read burst carries (u_rbq).
  logic                 lo_in;  // destination beat sent_q uses a source beat at k+c
  logic [DataWidth-1:0] w_data;
  logic [StrbWidth-1:0] w_strb;
  npu_dma_wr_beats #(
    .DataWidth (DataWidth),
    .FifoBeats (FifoBeats)
  ) u_wr_beats (
    .clk_i,
    .push_i       (fifo_push),
    .push_ptr_i   (fifo_wr_q[FifoIdx-1:0]),
    .push_data_i  (rd_r_data_i),
    .push_sh_i    (rx_sh),
    .rp0_i        (rp0_q[FifoIdx-1:0]),
    .sent_i       (sent_q),
    .take_i       (w_active_q && wr_w_ready_i),
    .hold_i       (w_active_q && !wr_w_ready_i),
    .clear_strb_i (soft_reset_i || draining_q),
    .neg_i        (w_neg),
    .sh_i         (w_sh),
    .zero_i       (w_zero),
    .ns_i         (w_ns),
    .nd_i         (w_nd),
    .dst_off_i    (w_dst_off),
    .end_off_i    (w_end_off),
    .lo_in_o      (lo_in),
    .data_o       (w_data),
    .strb_o       (w_strb)
  );
  assign wr_w_valid_o = w_active_q;
  assign wr_w_data_o  = w_data;
  assign wr_w_strb_o  = w_strb;
  assign wr_w_last_o  = w_beats_q == 9'd1;


  // ---------------------------------------------------------------- completion stage
  // Stage views of a slot: each stage reads only the fields it needs.
  /* verilator lint_off UNUSEDSIGNAL */
  slot_t cs;  // slot whose completion is next
  /* verilator lint_on UNUSEDSIGNAL */
  logic  cp_can;
  assign cs     = get_slot(slot_q, cp_q[SlotIdx-1:0]);
  assign cp_can = cp_q != wr_q && !err_pend_q && no_b_pend[cp_q[SlotIdx-1:0]] && !cw_pend_q && cpl_room && !hang_i && !draining_q && !halted_q
                  && (!halting_q || age(cp_q, cb_q) <= age(halt_q, cb_q));
  logic [127:0] cpl_rec;
  // TAG is 0 for a DESC_FETCH error: npu_dma_desc_check clears it in the record.
  assign cpl_rec = {48'd0, cs.index, cs.bytes_ok, 8'd0, cs.err, cs.tag};

  assign ring_aw_valid_o = cpl_req_q;
  assign ring_aw_addr_o  = {cpl_addr_q, {OffBits{1'b0}}};
  assign ring_w_valid_o  = cw_pend_q;
  assign ring_w_data_o   = cw_data_q;
  assign ring_w_strb_o   = cw_strb_q;

  // ---------------------------------------------------------------- fetch stage
  logic fetch_can;
  assign fetch_can = enable_i && rings_ok && fetch_pending && !err_pend_q && !halting_q && !halted_q && !draining_q
                     && !hang_i && age(fe_q, cb_q) < (SlotIdx + 1)'(Slots) && fetch_fly_q < 8'(Slots);

  // A pushed entry stands in for its fetch when it is the next to fetch and no fetch is
  // outstanding (so its "response" keeps the order of fetch responses): the slot is
  // allocated as at a fetch handshake (push_go_q), and a cycle later the record arrives
  // as a fetch response (push_rsp_q), in both halves of a beat, so the record's offset
  // in its beat (0 or 32: the ring is 32-byte aligned) finds it.
  logic                 push_hit, push_go_d, push_go_q, push_rsp_q;
  logic [DataWidth-1:0] push_beat_q;
  logic                 fetch_rsp;
  logic [DataWidth-1:0] fetch_rsp_data;
  logic [1:0]           fetch_rsp_resp;
  assign push_hit  = push_valid_i && (push_idx_i & dmask) == (fidx_q & dmask) && fetch_fly_q == 8'd0;
  assign push_go_d = fetch_can && push_hit && !fetch_req_q && !push_go_q && !soft_reset_i;
  // fetch_busy_q = fetch_req_q || push_go_q || push_rsp_q, as one register for `quiet`
  // (fetch_fly_q counts ring fetches only).
  logic fetch_busy_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : push_ff
    if (!rst_ni) begin
      push_go_q    <= 1'b0;
      push_rsp_q   <= 1'b0;
      fetch_busy_q <= 1'b0;
    end else begin
      push_go_q    <= push_go_d;
      push_rsp_q   <= push_go_q && !soft_reset_i;
      fetch_busy_q <= fetch_req_d || push_go_d || (push_go_q && !soft_reset_i);
    end
  end
  always_ff @(posedge clk_i) begin : push_beat_ff
    if (push_go_d) push_beat_q <= DataWidth'({(DataWidth / 256){push_rec_i}});
  end
  assign push_forget_o  = push_go_q || (ring_ar_valid_o && ring_ar_ready_i);
  assign fetch_rsp      = ring_r_valid_i || push_rsp_q;
  assign fetch_rsp_data = push_rsp_q ? push_beat_q : ring_r_data_i;
  assign fetch_rsp_resp = push_rsp_q ? RespOkay : ring_r_resp_i;
  assign ring_ar_valid_o = fetch_req_q;
  assign ring_ar_addr_o  = {fetch_addr_q[63:OffBits], {OffBits{1'b0}}};

  // Request payloads, loaded while no request is shown (the state they are computed from
  // changes only at the handshake, or when no request can be raised). The completion
  // record is built when its request is raised (it is loaded in every cycle no completion
  // is shown or writing): every write response of the slot is in by then (b_pend == 0)
  // and recorded (no error pending), and the record holds until its W beat is taken.
  always_ff @(posedge clk_i) begin : req_payload_ff
    if (!rd_req_q) begin
      rd_burst_q <= BurstW'(rd_burst);
      rd_len_q   <= 8'(rd_burst - 32'd1);
      rd_host_q  <= rs_q.flags[FlagSrcHost];
    end
    if (!fetch_req_q) fetch_addr_q <= fetch_addr;
    if (!cpl_req_q && !cw_pend_q) begin
      cpl_addr_q <= cpl_addr[63:OffBits];
      cpl_off_q  <= cpl_addr[OffBits-1:0];
      cpl_rec_q  <= cpl_rec;
    end
    // The W beat of a completion is placed in its beat when the AW is accepted.
    if (ring_aw_valid_o && ring_aw_ready_i) begin
      cw_data_q <= DataWidth'({{(DataWidth-128){1'b0}}, cpl_rec_q}) << {cpl_off_q, 3'b000};
      cw_strb_q <= StrbWidth'({{(StrbWidth-16){1'b0}}, 16'hFFFF}) << cpl_off_q;
    end
  end

  // In-flight bookkeeping: the slot of each read burst (popped by its last R beat) and
  // {slot, bytes} of each write burst (popped by its B). Both are pushed at the request
  // handshake, so their heads are ready before the first response can arrive.
  /* verilator lint_off UNUSEDSIGNAL */
  logic [$clog2(MaxRdBursts + 2)-1:0] rbq_n;  // rd_bursts_fly_q counts the same
  /* verilator lint_on UNUSEDSIGNAL */
  logic rbq_room, bq_room, rbq_any, bq_any;
  // A read burst also carries its slot's shift (source - destination offset), by which
  // its beats are stored rotated (npu_dma_wr_beats).
  logic [OffBits-1:0] rx_sh;
  prim_fifo_sync #(
    .Width(SlotIdx + 1 + OffBits),
    .Depth(MaxRdBursts)
  ) u_rbq (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .wvalid_i (rbq_push),
    .wready_o (rbq_room),
    .wdata_i  ({rd_q, OffBits'(rs_q.src[OffBits-1:0] - rs_q.dst[OffBits-1:0])}),
    .rvalid_o (rbq_any),
    .rready_i (rd_r_valid_i && rd_r_last_i),
    .rdata_o  ({rx, rx_sh}),
    .count_o  (rbq_n)
  );
  prim_fifo_sync #(
    .Width(BqW),
    .Depth(MaxWrBursts)
  ) u_bq (
    .clk_i,
    .rst_ni,
    .clr_i    (1'b0),
    .wvalid_i (bq_push),
    .wready_o (bq_room),
    .wdata_i  ({wr_q, aw_bytes_q}),
    .rvalid_o (bq_any),
    .rready_i (wr_b_valid_i),
    .rdata_o  (bq_head),
    .count_o  (bq_n)
  );

  // ---------------------------------------------------------------- slot file updates
  // The events of one cycle, each at its stage's slot: allocation (fetch issued), fill
  // (descriptor arrived), read request, read beat, write request, write response. Each
  // slot computes its next value from the events that hit it, all in parallel (no
  // chained read-modify-write of the slot file). Allocation and fill hit slots no other
  // stage is using.
  logic        ev_alloc, ev_ar, ev_r, ev_r_bad, ev_aw, ev_b, ev_b_ok;
  logic [7:0]  ev_ar_code;
  sptr_t       b_slot;
  assign ev_alloc     = (ring_ar_valid_o && ring_ar_ready_i) || push_go_q;
  assign ev_ar        = rd_ar_valid_o && rd_ar_ready_i;
  assign ev_ar_code   = rd_ar_err_i ? (rd_host_q ? ErrHostRd : ErrDevRd)
                        : (rd_ar_poison_i ? ErrPoison : ErrOk);
  assign ev_r         = rd_r_valid_i;
  assign ev_r_bad     = rd_r_resp_i != RespOkay;
  assign ev_aw        = wr_aw_valid_o && wr_aw_ready_i;
  assign ev_b         = wr_b_valid_i;
  assign ev_b_ok      = wr_b_resp_i == RespOkay;
  assign b_slot       = bq_head[SlotIdx+13:13];

  always_ff @(posedge clk_i) begin : desc_off_ff
    if (ev_alloc) d_off_q[fe_q[SlotIdx-1:0]] <= fetch_addr_q[OffBits-1:0];
  end

  // Destination bytes counted this cycle (their response came a cycle earlier), reported
  // to the performance counters a cycle later.
  logic [12:0] bytes_done_d;
  always_ff @(posedge clk_i or negedge rst_ni) begin : bytes_done_ff
    if (!rst_ni) bytes_done_o <= '0;
    else         bytes_done_o <= bytes_done_d;
  end

  // Errors seen at a request handshake or in a response are recorded a cycle later, in
  // their own stage (er_*): the slot's error code and the halt. While one is pending
  // (err_pend_q) no stage decides anything that depends on errors (no request is raised,
  // no write-stage slot starts or finishes, the read stage does not step and the
  // channel is not quiet). Counts (beats requested and received, bytes, responses
  // pending) are updated at once, except a write response's: it is applied a cycle
  // later (eb_*), together with the errors seen in its own cycle, and counts its bytes
  // only if its slot has no error recorded by then.
  logic  er_ar_q, er_r_q, er_aw_q, er_b_q, err_pend_q, fill_err_q;
  logic [7:0] er_ar_code_q;
  sptr_t er_ar_slot_q, er_r_slot_q, er_aw_slot_q, er_b_slot_q;
  // err_pend_q is the OR of the four and of a descriptor found bad at its fill, held a
  // cycle longer (the slots' error flags are registered once more, slot_bad_q, and the
  // halt decision takes a cycle more, first_error_ff), in its own register (it gates
  // most decisions).
  logic er_ar_d, er_r_d, er_aw_d, er_b_d;
  logic eb_q, eb_ok_q;        // a write response arrived last cycle (its slot: er_b_slot_q)
  logic [12:0] eb_bytes_q;
  assign er_ar_d = ev_ar && ev_ar_code != ErrOk;
  assign er_r_d  = ev_r && ev_r_bad;
  assign er_aw_d = ev_aw && wr_aw_err_i;
  assign er_b_d  = ev_b && !ev_b_ok;
  always_ff @(posedge clk_i or negedge rst_ni) begin : err_event_ff
    if (!rst_ni) begin
      er_ar_q    <= 1'b0;
      er_r_q     <= 1'b0;
      er_aw_q    <= 1'b0;
      er_b_q     <= 1'b0;
      err_pend_q <= 1'b0;
      fill_err_q <= 1'b0;
      eb_q       <= 1'b0;
    end else begin
      er_ar_q    <= er_ar_d;
      er_r_q     <= er_r_d;
      er_aw_q    <= er_aw_d;
      er_b_q     <= er_b_d;
      // An error event shows in its slot two cycles later and in halting_q three.
      err_pend_q <= er_ar_d || er_r_d || er_aw_d || er_b_d || er_ar_q || er_r_q || er_aw_q || er_b_q
                    || (ev_fill && ev_fill_bad) || fill_err_q;
      fill_err_q <= ev_fill && ev_fill_bad;
      eb_q       <= ev_b;
    end
  end
  always_ff @(posedge clk_i) begin : err_slot_ff
    er_ar_code_q <= ev_ar_code;
    er_ar_slot_q <= rd_q;
    er_r_slot_q  <= rx;
    er_aw_slot_q <= wr_q;
    er_b_slot_q  <= b_slot;
    eb_ok_q      <= ev_b_ok;
    eb_bytes_q   <= bq_head[12:0];
  end

  // The delayed write response counts its bytes if its slot has no error recorded
  // before this cycle (slot_bad) and none recorded in this cycle (er_*_q naming it).
  logic b_counts;
  assign b_counts = eb_q && eb_ok_q && !slot_bad[er_b_slot_q[SlotIdx-1:0]]
                    && !(er_ar_q && er_ar_slot_q[SlotIdx-1:0] == er_b_slot_q[SlotIdx-1:0])
                    && !(er_r_q && er_r_slot_q[SlotIdx-1:0] == er_b_slot_q[SlotIdx-1:0])
                    && !(er_aw_q && er_aw_slot_q[SlotIdx-1:0] == er_b_slot_q[SlotIdx-1:0]);
  assign bytes_done_d = b_counts ? eb_bytes_q : '0;

  always_comb begin : slot_next
    slot_t      s;
    logic       hit_al, hit_fl, hit_ar, hit_r, hit_aw, hit_b;
    logic [7:0] e;
    slot_d       = slot_q;
    for (int unsigned i = 0; i < Slots; i++) begin
      s      = slot_q[i*SlotW +: SlotW];
      hit_al = ev_alloc && fe_q[SlotIdx-1:0] == SlotIdx'(i);
      hit_fl = ev_fill && fi_q[SlotIdx-1:0] == SlotIdx'(i);
      hit_ar = ev_ar && rd_q[SlotIdx-1:0] == SlotIdx'(i);
      hit_r  = ev_r && rx[SlotIdx-1:0] == SlotIdx'(i);
      hit_aw = ev_aw && wr_q[SlotIdx-1:0] == SlotIdx'(i);
      hit_b  = eb_q && er_b_slot_q[SlotIdx-1:0] == SlotIdx'(i);
      // The slot's first error is kept (in stage order when several arrive at once).
      e = ErrOk;
      if (er_ar_q && er_ar_slot_q[SlotIdx-1:0] == SlotIdx'(i))      e = er_ar_code_q;
      else if (er_r_q && er_r_slot_q[SlotIdx-1:0] == SlotIdx'(i))   e = s.flags[FlagSrcHost] ? ErrHostRd : ErrDevRd;
      else if (er_aw_q && er_aw_slot_q[SlotIdx-1:0] == SlotIdx'(i)) e = s.flags[FlagDstHost] ? ErrHostWr : ErrDevWr;
      else if (er_b_q && er_b_slot_q[SlotIdx-1:0] == SlotIdx'(i))   e = s.flags[FlagDstHost] ? ErrHostWr : ErrDevWr;
      if (s.err == ErrOk) s.err = e;
      if (hit_ar && !rd_ar_err_i) s.rd_beats = s.rd_beats + 32'(rd_burst_q);
      if (hit_r) s.rcvd = s.rcvd + 32'd1;
      if (hit_b && b_counts) s.bytes_ok = s.bytes_ok + 32'(eb_bytes_q);
      s.b_pend = s.b_pend + 8'(hit_aw && !wr_aw_err_i) - 8'(hit_b);
      if (hit_fl) begin
        s.src   = f_src;
        s.dst   = f_dst;
        s.len   = f_len;
        s.flags = f_flags;
        s.tag   = f_tag;
        s.err   = ev_fill_code;
      end
      if (hit_al) begin
        s       = '0;
        s.index = fidx_q & dmask;
      end
      slot_d[i*SlotW +: SlotW] = s;
    end
  end

  // Errors recorded this cycle, the oldest slot first: slots in the write-response stage
  // are older than the one writing, which is no younger than a slot receiving beats,
  // then the slot reading, then the one being filled (all younger than the others).
  logic  err_any;
  sptr_t err_slot;
  always_comb begin : first_error
    err_any  = 1'b1;
    err_slot = halt_q;
    if (er_b_q)                                err_slot = er_b_slot_q;
    else if (er_aw_q)                          err_slot = er_aw_slot_q;
    else if (er_r_q)                           err_slot = er_r_slot_q;
    else if (er_ar_q)                          err_slot = er_ar_slot_q;
    else if (ev_fill && ev_fill_bad)           err_slot = fi_q;
    else                                       err_any = 1'b0;
  end
  // The halt decision compares the registered pick a cycle later (err_pend_q keeps the
  // stages waiting until it is in halting_q).
  logic  err_any_q;
  sptr_t err_slot_q;
  always_ff @(posedge clk_i or negedge rst_ni) begin : first_error_ff
    if (!rst_ni) err_any_q <= 1'b0;
    else         err_any_q <= err_any;
  end
  always_ff @(posedge clk_i) begin : first_error_slot_ff
    err_slot_q <= err_slot;
  end

  // ---------------------------------------------------------------- next state
  logic quiet;  // nothing in flight on any port
  always_comb begin : next_state
    fe_d            = fe_q;
    fa_d            = fa_q;
    fi_d            = fi_q;
    rd_d            = rd_q;
    wr_d            = wr_q;
    cp_d            = cp_q;
    cb_d            = cb_q;
    halting_d       = halting_q;
    halt_d          = halt_q;
    halted_d        = halted_q;
    draining_d      = draining_q;
    dev_err_d       = dev_err_q;
    resume_pend_d   = resume_pend_q;
    rd_req_d        = rd_req_q ? !rd_ar_ready_i : rd_can;
    aw_req_d        = aw_req_q ? !wr_aw_ready_i : aw_can;
    fetch_req_d     = fetch_req_q ? !ring_ar_ready_i : fetch_can && !push_hit && !push_go_q;
    cpl_req_d       = cpl_req_q ? !ring_aw_ready_i : cp_can;
    head_d          = head_q;
    fidx_d          = fidx_q;
    cpl_tail_d      = cpl_tail_q;
    fetch_fly_d     = fetch_fly_q;
    cpl_fly_d       = cpl_fly_q;
    rd_started_d    = rd_started_q;
    rd_addr_d       = rd_addr_q;
    rd_left_d       = rd_left_q;
    rd_beats_fly_d  = rd_beats_fly_q;
    rd_bursts_fly_d = rd_bursts_fly_q;
    rd_fly_host_d   = rd_fly_host_q;
    rbq_push        = 1'b0;
    wr_fly_host_d   = wr_fly_host_q;
    wr_started_d    = wr_started_q;
    wr_addr_d       = wr_addr_q;
    wr_left_d       = wr_left_q;
    sent_d          = sent_q;
    rp0_d           = rp0_q;
    w_active_d      = w_active_q;
    w_beats_d       = w_beats_q;
    w_swallowed_d   = w_swallowed_q;
    bq_push         = 1'b0;
    cw_pend_d       = cw_pend_q;
    fifo_wr_d       = fifo_wr_q;
    fifo_rel_d      = fifo_rel_q;
    fifo_push       = 1'b0;
    irq_o           = 1'b0;

    // ---- fetch: issue, then fill
    if (ev_alloc) begin
      fe_d   = fe_q + 1'b1;
      fidx_d = (fidx_q + 16'd1) & dmask;
    end
    if (ring_ar_valid_o && ring_ar_ready_i) fetch_fly_d = fetch_fly_d + 8'd1;
    if (fetch_rsp) fa_d = fa_q + 1'b1;
    if (ring_r_valid_i) fetch_fly_d = fetch_fly_d - 8'd1;
    if (ev_fill) begin
      fi_d   = fi_q + 1'b1;
      // Slots are filled in ring order, so HEAD names the slot being filled
      // (a_head_names_fill).
      head_d = (head_q + 16'd1) & dmask;
    end

    // ---- read stage
    if (rd_q != fi_q && !rd_started_q && rs_view_ok) begin
      rd_started_d = 1'b1;
      rd_addr_d    = {rs_q.src[63:OffBits], {OffBits{1'b0}}};
      rd_left_d    = (rs_q.err != ErrOk || rs_q.flags[FlagZero]) ? 32'd0 : beats_of(rs_q.src[OffBits-1:0], rs_q.len);
    end
    if (halting_q && rd_q == halt_q && rd_started_q && !rd_req_q) begin
      rd_left_d = '0;  // the failed slot issues no more reads
    end
    if (ev_ar) begin
      rd_addr_d = rd_addr_q + (64'(rd_burst_q) << OffBits);
      rd_left_d = rd_left_q - 32'(rd_burst_q);
      if (ev_ar_code != ErrOk) rd_left_d = '0;
      if (!rd_ar_err_i) begin
        rd_beats_fly_d  = rd_beats_fly_d + (FifoIdx + 2)'(rd_burst_q);
        rbq_push        = 1'b1;
        rd_bursts_fly_d = rd_bursts_fly_d + 8'd1;
        rd_fly_host_d   = rd_host_q;
      end
    end
    // After an error the read stage may still step past the failed slot (so later
    // stages can finish it) but no further.
    if (rd_started_q && rd_left_q == 0 && !(rd_ar_valid_o && rd_ar_ready_i) && !err_pend_q
        && !halted_q && (!halting_q || age(rd_q, cb_q) <= age(halt_q, cb_q))) begin
      rd_d         = rd_q + 1'b1;
      rd_started_d = 1'b0;
    end

    // ---- receive stage
    if (rd_r_valid_i) begin
      fifo_push       = 1'b1;
      fifo_wr_d       = fifo_wr_q + 1'b1;
      rd_beats_fly_d  = rd_beats_fly_d - 1'b1;
      if (rd_r_last_i) begin
        rd_bursts_fly_d = rd_bursts_fly_d - 8'd1;
      end
    end
    // ---- write stage
    if (wr_q != fi_q && !wr_started_q && w_allowed && ws_view_ok) begin
      wr_started_d = 1'b1;
      wr_addr_d    = {ws_q.dst[63:OffBits], {OffBits{1'b0}}};
      wr_left_d    = ws_bad ? 32'd0 : beats_of(ws_q.dst[OffBits-1:0], ws_q.len);
      sent_d       = '0;
      rp0_d        = fifo_rel_q;
    end
    if (wr_aw_valid_o && wr_aw_ready_i) begin
      w_active_d    = 1'b1;
      w_beats_d     = 9'(w_chunk_q);
      w_swallowed_d = wr_aw_err_i;
      wr_fly_host_d = w_dhost;
      wr_addr_d     = wr_addr_q + (64'(w_chunk_q) << OffBits);
      wr_left_d     = wr_left_q - 32'(w_chunk_q);
      bq_push       = !wr_aw_err_i;
    end
    if (w_active_q && wr_w_ready_i) begin
      sent_d    = sent_q + 32'd1;
      w_beats_d = w_beats_q - 9'd1;
      if (w_beats_q == 9'd1) w_active_d = 1'b0;
      // Source beat k+c is not needed after destination beat k.
      if (!w_zero && lo_in) begin
        fifo_rel_d = fifo_rel_q + 1'b1;
      end
    end
    // Slot done: nothing left to send and every source beat received; release the rest.
    if (wr_started_q && (wr_left_q == 0 || ws_bad) && !w_active_q
        && wr_q != rd_q && w_view_ok && w_all_rcvd_q && w_allowed) begin
      fifo_rel_d   = w_rel_end_q;
      wr_d         = wr_q + 1'b1;
      wr_started_d = 1'b0;
    end

    // ---- errors found this cycle: the oldest failed slot halts the channel
    if (err_any_q && (!halting_q || age(err_slot_q, cb_q) < age(halt_q, cb_q))) begin
      halting_d = 1'b1;
      halt_d    = err_slot_q;
    end

    // ---- completions
    if (ring_aw_valid_o && ring_aw_ready_i) begin
      cw_pend_d = 1'b1;
      cp_d      = cp_q + 1'b1;
      cpl_fly_d = cpl_fly_d + 8'd1;
      // A write error found by a late response still lands in this completion's slot
      // before the record is built (b_pend == 0 guarantees every response is in).
    end
    if (cw_pend_q && ring_w_ready_i) begin
      cw_pend_d = 1'b0;
    end
    if (ring_b_valid_i) begin
      cpl_fly_d = cpl_fly_d - 8'd1;
      if (ring_b_resp_i != RespOkay) begin
        dev_err_d = 1'b1;
        halted_d  = 1'b1;
        halting_d = 1'b1;
        halt_d    = cb_q;
      end else begin
        cpl_tail_d = (cpl_tail_q + 16'd1) & cmask;
        irq_o      = irq_want_q[cb_q[SlotIdx-1:0]];
        if (slot_bad_q[cb_q[SlotIdx-1:0]]) halted_d = 1'b1;
      end
      cb_d = cb_q + 1'b1;
    end

    // ---- after an error completion: drain and discard the rest, rewind HEAD
    if ((halted_q || draining_q) && quiet) begin
      fe_d = cb_q;
      fa_d = cb_q;
      fi_d = cb_q;
      rd_d = cb_q;
      wr_d = cb_q;
      cp_d = cb_q;
      rd_started_d = 1'b0;
      wr_started_d = 1'b0;
      rd_left_d    = '0;
      wr_left_d    = '0;
      fifo_rel_d   = fifo_wr_q;
      if (halting_q && !draining_q) begin
        head_d = (hs.index + 16'd1) & dmask;
        fidx_d = head_d;
      end
      halting_d = 1'b0;
    end
    // A RESUME during a soft reset's drain is not kept (the drain ends un-halted), so
    // the pending flag needs no clearing when the drain ends.
    if (halted_q && resume_i && !draining_q) resume_pend_d = 1'b1;
    if (halted_q && !halting_q && (resume_i || resume_pend_q) && !dev_err_q) begin
      halted_d      = 1'b0;
      resume_pend_d = 1'b0;
    end

    // ---- soft reset: forget everything once in-flight bursts have drained
    if (soft_reset_i) begin
      draining_d    = 1'b1;
      dev_err_d     = 1'b0;  // reported state clears at once; ERR_INFO must not re-latch
      resume_pend_d = 1'b0;
    end
    if (draining_q && quiet) begin
      draining_d    = 1'b0;
      dev_err_d     = 1'b0;
      halted_d      = 1'b0;
      halting_d  = 1'b0;
      head_d     = '0;
      fidx_d     = '0;
      cpl_tail_d = '0;
    end
  end

  // Nothing in flight on any port. A response arrives only for a request counted in
  // flight (a_*_in_flight below), so the counts and queues cover the response inputs.
  assign quiet = fetch_fly_q == 0 && rd_bursts_fly_q == 0 && rd_beats_fly_q == 0 && !w_active_q
                 && !rd_req_q && !aw_req_q && !fetch_busy_q && !cpl_req_q
                 && !bq_any && cpl_fly_q == 0 && !cw_pend_q
                 && !fill_busy && !err_pend_q && !eb_q;

  // ---------------------------------------------------------------- registers
  // The slot file resets synchronously (docs/device.md 2.2); the channel's state,
  // pointers, addresses and counts asynchronously.
  always_ff @(posedge clk_i or negedge rst_ni) begin : regs_ff
    if (!rst_ni) begin
      fe_q            <= '0;
      fa_q            <= '0;
      fi_q            <= '0;
      rd_q            <= '0;
      wr_q            <= '0;
      cp_q            <= '0;
      cb_q            <= '0;
      halting_q       <= 1'b0;
      halt_q          <= '0;
      halted_q        <= 1'b0;
      draining_q      <= 1'b0;
      dev_err_q       <= 1'b0;
      resume_pend_q   <= 1'b0;
      rd_req_q        <= 1'b0;
      aw_req_q        <= 1'b0;
      fetch_req_q     <= 1'b0;
      cpl_req_q       <= 1'b0;
      rd_started_q    <= 1'b0;
      wr_started_q    <= 1'b0;
      w_active_q      <= 1'b0;
      w_swallowed_q   <= 1'b0;
      cw_pend_q       <= 1'b0;
      head_q          <= '0;
      fidx_q          <= '0;
      cpl_tail_q      <= '0;
      fetch_fly_q     <= '0;
      cpl_fly_q       <= '0;
      rd_addr_q       <= '0;
      rd_left_q       <= '0;
      rd_beats_fly_q  <= '0;
      rd_bursts_fly_q <= '0;
      rd_fly_host_q   <= 1'b0;
      wr_fly_host_q   <= 1'b0;
      wr_addr_q       <= '0;
      wr_left_q       <= '0;
      sent_q          <= '0;
      rp0_q           <= '0;
      w_beats_q       <= '0;
      fifo_wr_q       <= '0;
      fifo_rel_q      <= '0;
      fifo_held_q     <= '0;
    end else begin
      fe_q            <= fe_d;
      fa_q            <= fa_d;
      fi_q            <= fi_d;
      rd_q            <= rd_d;
      wr_q            <= wr_d;
      cp_q            <= cp_d;
      cb_q            <= cb_d;
      halting_q       <= halting_d;
      halt_q          <= halt_d;
      halted_q        <= halted_d;
      draining_q      <= draining_d;
      dev_err_q       <= dev_err_d;
      resume_pend_q   <= resume_pend_d;
      rd_req_q        <= rd_req_d;
      aw_req_q        <= aw_req_d;
      fetch_req_q     <= fetch_req_d;
      cpl_req_q       <= cpl_req_d;
      rd_started_q    <= rd_started_d;
      wr_started_q    <= wr_started_d;
      w_active_q      <= w_active_d;
      w_swallowed_q   <= w_swallowed_d;
      cw_pend_q       <= cw_pend_d;
      head_q          <= head_d;
      fidx_q          <= fidx_d;
      cpl_tail_q      <= cpl_tail_d;
      fetch_fly_q     <= fetch_fly_d;
      cpl_fly_q       <= cpl_fly_d;
      rd_addr_q       <= rd_addr_d;
      rd_left_q       <= rd_left_d;
      rd_beats_fly_q  <= rd_beats_fly_d;
      rd_bursts_fly_q <= rd_bursts_fly_d;
      rd_fly_host_q   <= rd_fly_host_d;
      wr_fly_host_q   <= wr_fly_host_d;
      wr_addr_q       <= wr_addr_d;
      wr_left_q       <= wr_left_d;
      sent_q          <= sent_d;
      rp0_q           <= rp0_d;
      w_beats_q       <= w_beats_d;
      fifo_wr_q       <= fifo_wr_d;
      fifo_rel_q      <= fifo_rel_d;
      fifo_held_q     <= fifo_wr_d - fifo_rel_q;
    end
  end
  // Deliberately synchronous: rst_ni is also the asynchronous reset of control state.
  /* verilator lint_off SYNCASYNCNET */
  always_ff @(posedge clk_i) begin : slot_file_ff
    if (!rst_ni) begin
      slot_q          <= '0;
    end else begin
      slot_q          <= slot_d;
    end
  end
  /* verilator lint_on SYNCASYNCNET */

  assign desc_head_o = head_q;
  assign cpl_tail_o  = cpl_tail_q;
  assign busy_o      = fe_q != cb_q || draining_q || (halting_q && !halted_q)
                       || (enable_i && rings_ok && fetch_pending && !halted_q);
  assign halted_o    = halted_q;
  assign dev_err_o   = dev_err_q;
  assign stall_o     = busy_o && !rd_r_valid_i && !(wr_w_valid_o && wr_w_ready_i);

  // ---- assertions
`ifndef SYNTHESIS
  // Each slot's ring index is allocated in order from HEAD (fidx_q), so the slot being
  // filled is the one HEAD names.
  a_head_names_fill: assert property (@(posedge clk_i) disable iff (!rst_ni)
      ev_fill |-> fs.index == head_q);
  // An AW is acknowledged only after the previous burst's W beats (aw_can).
  a_aw_after_w: assert property (@(posedge clk_i) disable iff (!rst_ni)
      (wr_aw_valid_o && wr_aw_ready_i) |-> !w_active_q);
  a_fifo_no_overflow: assert property (@(posedge clk_i) disable iff (!rst_ni)
      (FifoIdx + 1)'(fifo_wr_q - fifo_rel_q) <= (FifoIdx + 1)'(FifoBeats));
  a_beat_has_slot: assert property (@(posedge clk_i) disable iff (!rst_ni)
      rd_r_valid_i |-> rd_beats_fly_q != 0 && rd_bursts_fly_q != 0 && rbq_any);
  a_no_unexpected_b: assert property (@(posedge clk_i) disable iff (!rst_ni)
      wr_b_valid_i |-> bq_any);
  a_rbq_room: assert property (@(posedge clk_i) disable iff (!rst_ni) rbq_push |-> rbq_room);
  a_bq_room: assert property (@(posedge clk_i) disable iff (!rst_ni) bq_push |-> bq_room);
  a_slots_in_order: assert property (@(posedge clk_i) disable iff (!rst_ni)
      age(cp_q, cb_q) <= age(wr_q, cb_q) && age(wr_q, cb_q) <= age(rd_q, cb_q)
      && age(rd_q, cb_q) <= age(fi_q, cb_q)
      && age(fi_q, cb_q) <= age(fa_q, cb_q)
      && age(fa_q, cb_q) <= age(fe_q, cb_q));
  a_slot_width: assert property (@(posedge clk_i) $bits(slot_t) == SlotW);
  a_rd_valid_held: assert property (@(posedge clk_i) disable iff (!rst_ni)
      rd_ar_valid_o && !rd_ar_ready_i |=> rd_ar_valid_o && $stable(rd_ar_addr_o) && $stable(rd_ar_len_o));
  a_aw_valid_held: assert property (@(posedge clk_i) disable iff (!rst_ni)
      wr_aw_valid_o && !wr_aw_ready_i |=> wr_aw_valid_o && $stable(wr_aw_addr_o) && $stable(wr_aw_len_o));
  // A pushed record's response never meets a fetch response (none was outstanding).
  a_ring_r_in_flight: assert property (@(posedge clk_i) disable iff (!rst_ni)
      ring_r_valid_i |-> fetch_fly_q != 8'd0);
  a_ring_b_in_flight: assert property (@(posedge clk_i) disable iff (!rst_ni)
      ring_b_valid_i |-> cpl_fly_q != 8'd0);
  a_push_alone: assert property (@(posedge clk_i) disable iff (!rst_ni)
      push_rsp_q |-> !ring_r_valid_i);
  a_fetch_busy: assert property (@(posedge clk_i) disable iff (!rst_ni)
      fetch_busy_q == (fetch_req_q || push_go_q || push_rsp_q));
  a_swallowed_known: assert property (@(posedge clk_i) disable iff (!rst_ni) !$isunknown(w_swallowed_q));
`endif

endmodule
