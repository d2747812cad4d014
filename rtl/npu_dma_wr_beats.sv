// Destination beats of one DMA channel's write stage: the beat FIFO of source data
// (two copies in block RAM, read through registered ports) and the shifter that builds
// each destination beat from two adjacent source beats, with its byte strobes.
//
// Destination beat k of a slot is source beats k+c and k+c+1 (c = -1 if the source
// offset is below the destination offset, else 0) of the slot's first source beat on
// (FIFO pointer `rp0_i`), shifted down by `sh_i` bytes; a source beat past the slot's
// last (`ns_i` beats) reads as zeros, ZERO_FILL sends zeros. Source beats are stored
// rotated down by their slot's shift (`push_sh_i`, the same as `sh_i` when they are
// read), so each destination byte is the same byte of one of the two read beats: the
// shift is paid on the push side, and the W data is one LUT behind the block RAMs. The beat shown in the next
// cycle is `sent_i`, or `sent_i + 1` when a beat is taken now (`take_i`): its source
// beats are read now, and addresses, flags and strobes of both cases come from
// registers, so the W handshake only picks one. Strobes cover the slot's unaligned
// head (`dst_off_i`) and tail (`end_off_i`); none while `clear_strb_i` (the channel
// drains after a soft reset). They are registered when the beat is next shown and hold
// while a shown beat waits (`hold_i`).
//
// Timing contract with the channel: when a slot starts, `sent_i`, `rp0_i` and the slot
// constants are loaded and the reads and strobes of that cycle and the next are stale
// (the head/tail masks and the last-beat compares are registered from the constants);
// no beat of the slot is shown before its AW, at least three cycles later. Every source
// beat of a chunk is in the FIFO before its AW is sent, so a beat is written at least a
// cycle before it is read.
module npu_dma_wr_beats #(
  parameter int unsigned DataWidth  = 512,
  parameter int unsigned FifoBeats  = 512,
  localparam int unsigned StrbWidth = DataWidth / 8,
  localparam int unsigned OffBits   = $clog2(StrbWidth),
  localparam int unsigned FifoIdx   = $clog2(FifoBeats)
) (
  input  logic                 clk_i,
  // source beats (receive stage)
  input  logic                 push_i,
  input  logic [FifoIdx-1:0]   push_ptr_i,
  input  logic [DataWidth-1:0] push_data_i,
  input  logic [OffBits-1:0]   push_sh_i,    // shift of the pushed beat's slot
  // position of the destination beat
  input  logic [FifoIdx-1:0]   rp0_i,        // FIFO pointer of the slot's first source beat
  input  logic [31:0]          sent_i,       // destination beats of the slot sent
  input  logic                 take_i,       // the shown beat is taken this cycle
  input  logic                 hold_i,       // the shown beat waits
  input  logic                 clear_strb_i,
  // the slot's constants
  input  logic                 neg_i,        // source offset below destination offset
  input  logic [OffBits-1:0]   sh_i,         // (source - destination offset) mod beat
  input  logic                 zero_i,       // ZERO_FILL
  input  logic [31:0]          ns_i,         // source beats of the slot
  input  logic [31:0]          nd_i,         // destination beats of the slot
  input  logic [OffBits-1:0]   dst_off_i,
  input  logic [OffBits-1:0]   end_off_i,    // byte offset of the slot's end in its beat
  // destination beat `sent_i`
  output logic                 lo_in_o,      // it uses the source beat at k+c
  output logic [DataWidth-1:0] data_o,
  output logic [StrbWidth-1:0] strb_o
);

  // ---------------------------------------------------------------- data
  logic [31:0]            lo_idx;
  logic                   in_1, in_2;  // source beats lo_idx + 1 and lo_idx + 2 exist
  logic                   lo_in_n, hi_in_n, lo_in_q, hi_in_q;
  logic [FifoIdx-1:0]     lo_addr;
  logic [DataWidth-1:0]   lo_raw, hi_raw, lo_beat, hi_beat;
  logic [2*DataWidth-1:0] push_twice;
  logic [DataWidth-1:0]   push_rot;
  logic [StrbWidth-1:0]   from_lo_q;  // destination byte j comes from the lower beat
  assign push_twice = {push_data_i, push_data_i};
  assign push_rot   = push_twice[{1'b0, push_sh_i, 3'b000} +: DataWidth];
  assign lo_idx  = neg_i ? sent_i - 32'd1 : sent_i;
  assign lo_in_o = !(neg_i && sent_i == 0) && lo_idx < ns_i;
  assign in_1    = lo_idx + 32'd1 < ns_i;
  assign in_2    = lo_idx + 32'd2 < ns_i;
  assign lo_in_n = take_i ? in_1 : lo_in_o;
  assign hi_in_n = take_i ? in_2 : in_1;
  assign lo_addr = rp0_i + FifoIdx'(lo_idx);
  always_ff @(posedge clk_i) begin : beat_in_ff
    lo_in_q <= lo_in_n;
    hi_in_q <= hi_in_n;
  end
  prim_ram_1r1w #(
    .Width(DataWidth),
    .Depth(FifoBeats)
  ) u_fifo_lo (
    .clk_i,
    .we_i    (push_i),
    .waddr_i (push_ptr_i),
    .wdata_i (push_rot),
    .re_i    (1'b1),
    .raddr_i (lo_addr + FifoIdx'(take_i)),
    .rdata_o (lo_raw)
  );
  prim_ram_1r1w #(
    .Width(DataWidth),
    .Depth(FifoBeats)
  ) u_fifo_hi (
    .clk_i,
    .we_i    (push_i),
    .waddr_i (push_ptr_i),
    .wdata_i (push_rot),
    .re_i    (1'b1),
    .raddr_i (lo_addr + (take_i ? FifoIdx'(2) : FifoIdx'(1))),
    .rdata_o (hi_raw)
  );
  always_ff @(posedge clk_i) begin : from_lo_ff
    for (int unsigned j = 0; j < StrbWidth; j++) from_lo_q[j] <= j + int'(sh_i) < StrbWidth;
  end
  assign lo_beat = lo_in_q && !zero_i ? lo_raw : '0;
  assign hi_beat = hi_in_q && !zero_i ? hi_raw : '0;
  always_comb begin : pick_bytes
    for (int unsigned j = 0; j < StrbWidth; j++) begin
      data_o[j*8 +: 8] = from_lo_q[j] ? lo_beat[j*8 +: 8] : hi_beat[j*8 +: 8];
    end
  end

  // ---------------------------------------------------------------- strobes
  logic                 first, last_0, last_1;
  logic [31:0]          nd_m1_q, nd_m2_q;
  logic [StrbWidth-1:0] head_q, tail_q, strb_hold, strb_take, strb_q;
  always_ff @(posedge clk_i) begin : strb_const_ff
    nd_m1_q <= nd_i - 32'd1;
    nd_m2_q <= nd_i - 32'd2;
    head_q  <= {StrbWidth{1'b1}} << dst_off_i;
    tail_q  <= end_off_i == '0 ? {StrbWidth{1'b1}} : ~({StrbWidth{1'b1}} << end_off_i);
  end
  assign first     = sent_i == 0;
  assign last_0    = sent_i == nd_m1_q;
  assign last_1    = sent_i == nd_m2_q;
  assign strb_hold = (first ? head_q : {StrbWidth{1'b1}}) & (last_0 ? tail_q : {StrbWidth{1'b1}});
  assign strb_take = last_1 ? tail_q : {StrbWidth{1'b1}};
  always_ff @(posedge clk_i) begin : strb_ff
    if (!hold_i) strb_q <= clear_strb_i ? '0 : (take_i ? strb_take : strb_hold);
  end
  assign strb_o = strb_q;

endmodule
