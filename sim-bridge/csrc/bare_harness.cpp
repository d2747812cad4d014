// Bare C++ harness of the NPU RTL, built only to measure the Rust bridge's overhead.
//
// It does what `gmem profile cosim` asks of the Rust bridge — configure the DMA rings
// over AXI4-Lite, service both AXI4 memory ports with the same latency/bandwidth model,
// run the same copies to completion — in the tightest C++ loop we could write, with
// the same two evals per cycle. Same RTL, same workload, same cycle count; the ratio
// of simulated cycles per wall second is the bridge's efficiency.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <vector>

#include "Vnpu_top.h"
#include "verilated.h"

namespace {

constexpr uint64_t kBeat = 64;

struct Timing {
    uint64_t rd_lat, wr_lat, bw;
    size_t max_out;
};

struct Burst {
    uint8_t id;
    uint64_t addr;
    uint32_t left;
    uint64_t ready_at;
};

struct Resp {
    uint8_t id;
    uint8_t resp;
    uint64_t ready_at;
};

// One memory port: flat memory [base, base + size), everything else SLVERR.
struct Port {
    Timing t{};
    uint8_t* mem = nullptr;
    uint64_t base = 0, size = 0;
    std::deque<Burst> reads, writes;
    std::deque<Resp> resps;
    uint64_t rcredit = 0, wcredit = 0;
    bool r_out = false;

    bool in(uint64_t a) const { return a >= base && a + kBeat <= base + size; }
};

template <typename P>
void drive(Port& p, uint64_t cyc, P& ar_ready, P& aw_ready, P& w_ready, P& r_valid, uint32_t* rdata,
           P& rresp, P& rlast, P& rid, P& b_valid, P& bid, P& bresp) {
    p.rcredit = std::min(p.rcredit + p.t.bw, kBeat + p.t.bw);
    p.wcredit = std::min(p.wcredit + p.t.bw, kBeat + p.t.bw);
    bool room = p.reads.size() + p.writes.size() + p.resps.size() < p.t.max_out;
    ar_ready = room;
    aw_ready = room;
    w_ready = !p.writes.empty() && p.wcredit >= kBeat;
    p.r_out = !p.reads.empty() && p.reads.front().ready_at <= cyc && p.rcredit >= kBeat;
    if (p.r_out) {
        Burst& b = p.reads.front();
        if (p.in(b.addr)) {
            std::memcpy(rdata, p.mem + (b.addr - p.base), kBeat);
            rresp = 0;
        } else {
            std::memset(rdata, 0, kBeat);
            rresp = 2;
        }
        rlast = b.left == 1;
        rid = b.id;
    }
    r_valid = p.r_out;
    bool bv = !p.resps.empty() && p.resps.front().ready_at <= cyc;
    if (bv) {
        bid = p.resps.front().id;
        bresp = p.resps.front().resp;
    }
    b_valid = bv;
}

}  // namespace

extern "C" {

struct NpuBareResult {
    uint64_t cycles;
    uint64_t wall_ns;
    uint64_t cpu_ns;
    int ok;
};

// Copies `bytes` host→device on channel 0 and device→host on channel 1 at once,
// `rounds` times. Returns device cycles and wall time of the copy phase.
NpuBareResult npu_bare_dma_run(uint64_t bytes, uint32_t rounds, uint64_t host_rd_lat, uint64_t host_wr_lat,
                               uint64_t host_bw, uint64_t dev_rd_lat, uint64_t dev_wr_lat, uint64_t dev_bw) {
    NpuBareResult res{0, 0, 0, 0};
    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vnpu_top>(ctx.get(), "npu_top");
    const uint64_t host_base = 0x100000, host_size = 4 * bytes + 0x100000;
    std::vector<uint8_t> host(host_size, 0);
    uint8_t* dev = static_cast<uint8_t*>(std::calloc(1, 2 * bytes + 0x1000));
    Port hp;
    hp.t = Timing{host_rd_lat, host_wr_lat, host_bw, 64};
    hp.mem = host.data();
    hp.base = host_base;
    hp.size = host_size;
    Port dp;
    dp.t = Timing{dev_rd_lat, dev_wr_lat, dev_bw, 64};
    dp.mem = dev;
    dp.base = 0;
    dp.size = 2 * bytes + 0x1000;
    uint64_t cyc = 0;

    auto tick = [&]() {
        drive(hp, cyc, top->m_axi_host_arready_i, top->m_axi_host_awready_i, top->m_axi_host_wready_i,
              top->m_axi_host_rvalid_i, top->m_axi_host_rdata_i.data(), top->m_axi_host_rresp_i,
              top->m_axi_host_rlast_i, top->m_axi_host_rid_i, top->m_axi_host_bvalid_i, top->m_axi_host_bid_i,
              top->m_axi_host_bresp_i);
        drive(dp, cyc, top->m_axi_dev_arready_i, top->m_axi_dev_awready_i, top->m_axi_dev_wready_i,
              top->m_axi_dev_rvalid_i, top->m_axi_dev_rdata_i.data(), top->m_axi_dev_rresp_i,
              top->m_axi_dev_rlast_i, top->m_axi_dev_rid_i, top->m_axi_dev_bvalid_i, top->m_axi_dev_bid_i,
              top->m_axi_dev_bresp_i);
        top->clk_i = 0;
        top->eval();
        // Sample handshakes of both ports.
        auto sample = [&](Port& p, auto arv, auto arr, auto arid, auto araddr, auto arlen, auto rv, auto rr,
                          auto awv, auto awr, auto awid, auto awaddr, auto wv, auto wr, const uint32_t* wdata,
                          uint64_t wstrb, auto wlast, auto bv, auto br) {
            if (arv && arr) p.reads.push_back({uint8_t(arid), uint64_t(araddr) & ~(kBeat - 1), uint32_t(arlen) + 1, cyc + p.t.rd_lat});
            if (rv && rr && p.r_out) {
                p.rcredit -= kBeat;
                Burst& b = p.reads.front();
                b.addr += kBeat;
                if (--b.left == 0) p.reads.pop_front();
            }
            if (awv && awr) p.writes.push_back({uint8_t(awid), uint64_t(awaddr) & ~(kBeat - 1), 0, 0});
            if (wv && wr && !p.writes.empty()) {
                p.wcredit -= kBeat;
                Burst& b = p.writes.front();
                if (p.in(b.addr)) {
                    const uint8_t* src = reinterpret_cast<const uint8_t*>(wdata);
                    uint8_t* dst = p.mem + (b.addr - p.base);
                    if (wstrb == ~0ull) std::memcpy(dst, src, kBeat);
                    else for (unsigned i = 0; i < kBeat; i++) if (wstrb >> i & 1) dst[i] = src[i];
                } else {
                    b.left = 1;  // mark failed
                }
                b.addr += kBeat;
                if (wlast) {
                    p.resps.push_back({b.id, uint8_t(b.left ? 2 : 0), cyc + p.t.wr_lat});
                    p.writes.pop_front();
                }
            }
            if (bv && br) p.resps.pop_front();
        };
        sample(hp, top->m_axi_host_arvalid_o, top->m_axi_host_arready_i, top->m_axi_host_arid_o,
               top->m_axi_host_araddr_o, top->m_axi_host_arlen_o, top->m_axi_host_rvalid_i,
               top->m_axi_host_rready_o, top->m_axi_host_awvalid_o, top->m_axi_host_awready_i,
               top->m_axi_host_awid_o, top->m_axi_host_awaddr_o, top->m_axi_host_wvalid_o,
               top->m_axi_host_wready_i, top->m_axi_host_wdata_o.data(), top->m_axi_host_wstrb_o,
               top->m_axi_host_wlast_o, top->m_axi_host_bvalid_i, top->m_axi_host_bready_o);
        sample(dp, top->m_axi_dev_arvalid_o, top->m_axi_dev_arready_i, top->m_axi_dev_arid_o,
               top->m_axi_dev_araddr_o, top->m_axi_dev_arlen_o, top->m_axi_dev_rvalid_i, top->m_axi_dev_rready_o,
               top->m_axi_dev_awvalid_o, top->m_axi_dev_awready_i, top->m_axi_dev_awid_o, top->m_axi_dev_awaddr_o,
               top->m_axi_dev_wvalid_o, top->m_axi_dev_wready_i, top->m_axi_dev_wdata_o.data(),
               top->m_axi_dev_wstrb_o, top->m_axi_dev_wlast_o, top->m_axi_dev_bvalid_i, top->m_axi_dev_bready_o);
        top->clk_i = 1;
        top->eval();
        cyc++;
    };

    auto csr_write = [&](uint32_t addr, uint32_t val) {
        top->s_axil_awaddr_i = addr;
        top->s_axil_awvalid_i = 1;
        top->s_axil_wdata_i = val;
        top->s_axil_wstrb_i = 0xF;
        top->s_axil_wvalid_i = 1;
        top->s_axil_bready_i = 1;
        for (int i = 0; i < 1000; i++) {
            top->clk_i = 0;
            top->eval();
            bool aw = top->s_axil_awvalid_i && top->s_axil_awready_o;
            bool w = top->s_axil_wvalid_i && top->s_axil_wready_o;
            bool b = top->s_axil_bvalid_o;
            tick();
            if (aw) top->s_axil_awvalid_i = 0;
            if (w) top->s_axil_wvalid_i = 0;
            if (b) break;
        }
        top->s_axil_bready_i = 0;
    };

    top->ff_skip_i = 0;  // fast-forward is the bridge's; the bare harness runs every cycle
    top->rst_ni = 0;
    for (int i = 0; i < 4; i++) tick();
    top->rst_ni = 1;
    tick();

    // Rings in host memory: channel c descriptors at D(c), completions at C(c).
    auto D = [&](int c) { return host_base + 0x1000 * c; };
    auto C = [&](int c) { return host_base + 0x4000 + 0x1000 * c; };
    const uint64_t h2d_src = host_base + 0x10000, d2h_dst = h2d_src + 2 * bytes;
    for (int c = 0; c < 2; c++) {
        uint32_t base = 0x200 + 0x40 * c;
        csr_write(base + 0x00, uint32_t(D(c)));
        csr_write(base + 0x04, uint32_t(D(c) >> 32));
        csr_write(base + 0x08, 6);
        csr_write(base + 0x14, uint32_t(C(c)));
        csr_write(base + 0x18, uint32_t(C(c) >> 32));
        csr_write(base + 0x1C, 6);
    }
    csr_write(0x024, 0b01100);      // INT_MASK: DMA0, DMA1
    csr_write(0x014, 1u << 2);      // CTRL.DMA_EN
    auto put_desc = [&](int c, unsigned slot, uint64_t src, uint64_t dst, uint32_t flags) {
        uint8_t* d = host.data() + (D(c) - host_base) + 32 * slot;
        std::memset(d, 0, 32);
        std::memcpy(d, &src, 8);
        std::memcpy(d + 8, &dst, 8);
        uint32_t len = uint32_t(bytes);
        std::memcpy(d + 16, &len, 4);
        uint16_t f = uint16_t(flags);
        std::memcpy(d + 20, &f, 2);
    };

    auto cpu_ns = [] {
        timespec ts{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
    };
    auto t0 = std::chrono::steady_clock::now();
    uint64_t cpu0 = cpu_ns();
    uint64_t c0 = cyc;
    bool ok = true;
    for (uint32_t r = 0; r < rounds; r++) {
        unsigned slot = r % 63;
        put_desc(0, slot, h2d_src, 0, (1 << 1) | (1 << 2));
        put_desc(1, slot, bytes, d2h_dst, (1 << 1) | (1 << 3));
        csr_write(0x210, (slot + 1) % 64);
        csr_write(0x250, (slot + 1) % 64);
        uint32_t seen = 0;
        uint64_t limit = cyc + 100 * bytes + 100000;
        while (cyc < limit) {
            seen |= (top->irq_o >> 2) & 0b11;
            if (seen == 0b11) break;
            tick();
        }
        if (seen != 0b11) ok = false;
        csr_write(0x028, 0b01100);  // INT_ACK
        csr_write(0x220, (slot + 1) % 64);
        csr_write(0x260, (slot + 1) % 64);
    }
    auto t1 = std::chrono::steady_clock::now();
    res.cpu_ns = cpu_ns() - cpu0;
    res.cycles = cyc - c0;
    res.wall_ns = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    res.ok = ok ? 1 : 0;
    top->final();
    std::free(dev);
    return res;
}

}  // extern "C"
