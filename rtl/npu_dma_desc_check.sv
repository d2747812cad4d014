// DMA descriptor intake of one channel: a fetched DMA_DESC record passes two register
// stages. Stage 1 cuts the 32-byte record out of its beat at the byte offset its fetch
// recorded; stage 2 checks it (length 0 or over 16 MiB, reserved flags, a source or
// destination range that leaves its aperture) and holds the fields with an error code:
// DESC_FETCH when the fetch's response was an error, BAD_DESC when a check failed, else
// OK. One record per beat, one beat per cycle at most; the checked record is shown for
// one cycle (`desc_valid_o`), two cycles after its beat.
module npu_dma_desc_check #(
  parameter int unsigned DataWidth   = 512,
  parameter int unsigned DevMemBytes = 256 * 1024 * 1024,
  localparam int unsigned OffBits    = $clog2(DataWidth / 8)
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,
  // fetched beat
  input  logic                 beat_valid_i,
  input  logic [DataWidth-1:0] beat_data_i,
  input  logic [1:0]           beat_resp_i,
  input  logic [OffBits-1:0]   beat_off_i,   // byte offset of the record in the beat
  // checked record
  output logic                 desc_valid_o,
  output logic                 busy_o,       // a record is in one of the stages
  output logic [63:0]          desc_src_o,
  output logic [63:0]          desc_dst_o,
  output logic [31:0]          desc_len_o,
  output logic [15:0]          desc_flags_o,
  output logic [15:0]          desc_tag_o,
  output logic [7:0]           desc_code_o,
  output logic                 desc_bad_o    // desc_code_o is an error
);

  localparam logic [31:0] MaxLen       = 32'h0100_0000;  // 16 MiB
  localparam logic [7:0]  ErrOk        = 8'(npu_reg_pkg::DMA_ERROR_OK);
  localparam logic [7:0]  ErrDescFetch = 8'(npu_reg_pkg::DMA_ERROR_DESC_FETCH);
  localparam logic [7:0]  ErrBadDesc   = 8'(npu_reg_pkg::DMA_ERROR_BAD_DESC);
  localparam int unsigned FlagZero     = npu_reg_pkg::DMA_FLAG_ZERO_FILL;
  localparam int unsigned FlagSrcHost  = npu_reg_pkg::DMA_FLAG_SRC_HOST;
  localparam int unsigned FlagDstHost  = npu_reg_pkg::DMA_FLAG_DST_HOST;

  logic         s1_valid_q, s1_resp_bad_q, s2_valid_q;
  logic [191:0] s1_raw_q, s2_raw_q;  // bits 255:192 of DMA_DESC are reserved
  logic [7:0]   s2_code_q;
  logic         s2_bad_q;

  function automatic logic range_bad(logic [63:0] addr, logic [31:0] len, logic host);
    logic [64:0] end_addr;
    end_addr  = {1'b0, addr} + {33'd0, len};
    range_bad = host ? end_addr[64] : end_addr > 65'(DevMemBytes);
  endfunction

  // Checks of stage 1's record.
  logic [63:0] c_src, c_dst;
  logic [31:0] c_len;
  logic [15:0] c_flags;
  logic        c_bad;
  assign c_src   = s1_raw_q[63:0];
  assign c_dst   = s1_raw_q[127:64];
  assign c_len   = s1_raw_q[159:128];
  assign c_flags = s1_raw_q[175:160];
  assign c_bad   = c_len == 32'd0 || c_len > MaxLen || c_flags[15:4] != 12'd0
                   || (!c_flags[FlagZero] && range_bad(c_src, c_len, c_flags[FlagSrcHost]))
                   || range_bad(c_dst, c_len, c_flags[FlagDstHost]);

  always_ff @(posedge clk_i or negedge rst_ni) begin : valid_ff
    if (!rst_ni) begin
      s1_valid_q <= 1'b0;
      s2_valid_q <= 1'b0;
    end else begin
      s1_valid_q <= beat_valid_i;
      s2_valid_q <= s1_valid_q;
    end
  end
  always_ff @(posedge clk_i) begin : data_ff
    if (beat_valid_i) begin
      s1_raw_q      <= 192'(beat_data_i >> {beat_off_i, 3'b000});
      s1_resp_bad_q <= beat_resp_i != 2'b00;
    end
    if (s1_valid_q) begin
      // A record that could not be fetched has no tag: its completion reports TAG 0.
      s2_raw_q  <= s1_resp_bad_q ? {16'd0, s1_raw_q[175:0]} : s1_raw_q;
      s2_code_q <= s1_resp_bad_q ? ErrDescFetch : (c_bad ? ErrBadDesc : ErrOk);
      s2_bad_q  <= s1_resp_bad_q || c_bad;
    end
  end

  assign desc_valid_o = s2_valid_q;
  assign busy_o       = s1_valid_q || s2_valid_q;
  assign desc_src_o   = s2_raw_q[63:0];
  assign desc_dst_o   = s2_raw_q[127:64];
  assign desc_len_o   = s2_raw_q[159:128];
  assign desc_flags_o = s2_raw_q[175:160];
  assign desc_tag_o   = s2_raw_q[191:176];
  assign desc_code_o  = s2_code_q;
  assign desc_bad_o   = s2_bad_q;

endmodule
