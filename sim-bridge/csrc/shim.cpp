// extern "C" shim around the Verilated NPU model.
//
// Only four things cross the FFI: create/destroy the model, look up a port's address
// and size by name (once, at start-up), evaluate the model, and drive the FST trace.
// Rust then reads and writes ports through the returned pointers, so a clock cycle
// costs two `npu_eval` calls and no other FFI traffic. No C++ type leaves this file.
//
// build.rs compiles this file once per Verilated build of the RTL: NPU_MODEL names the
// model class (Verilator's `--prefix`), NPU_HEADER its header, NPU_API the prefix of the exported functions
// (`npu_` for the shipped model, `npu_plain_` for the plain reference build) and
// NPU_TRACE whether the model was verilated with `--trace-fst`, NPU_FIXED_POINT whether
// the fixed-point probe of fast-forward is built (it names members of the model's root
// class, which only the shipped build's `-O3` layout is known to have).
#include <cstdint>
#include <cstring>
#include <memory>

#ifndef NPU_MODEL
#define NPU_MODEL Vnpu_top
#define NPU_HEADER "Vnpu_top.h"
#define NPU_API npu_
#define NPU_TRACE 1
#define NPU_FIXED_POINT 1
#endif

#define NPU_CAT2(a, b) a##b
#define NPU_CAT(a, b) NPU_CAT2(a, b)
#define NPU_FN(name) NPU_CAT(NPU_API, name)

#include NPU_HEADER
#include "verilated.h"
#include <algorithm>
#include <vector>
#if NPU_FIXED_POINT
#include "Vnpu_top___024root.h"
#endif
#if NPU_TRACE
#include "verilated_fst_c.h"
#endif

namespace {

struct Model {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<NPU_MODEL> top;
#if NPU_TRACE
    std::unique_ptr<VerilatedFstC> trace;
#endif
    // Fast-forward's fixed-point probe: the model's whole state at the snapshot.
    std::vector<unsigned char> snapshot;
};

#if NPU_FIXED_POINT
// Byte ranges of the root that may change at a fixed point: the performance counters
// and what is computed from them. Everything else (every register, memory, input and
// internal net of the design) must be equal for the state to be a fixed point.
struct Range {
    size_t begin, end;
};
template <typename Root, typename T>
Range range_of(const Root* r, const T& member) {
    size_t b = size_t(reinterpret_cast<const unsigned char*>(&member) - reinterpret_cast<const unsigned char*>(r));
    return Range{b, b + sizeof(T)};
}
#endif

struct PortEntry {
    const char* name;
    void* addr;
    uint32_t bytes;
};

#define NPU_PORT(p) PortEntry{#p, static_cast<void*>(&m->top->p), static_cast<uint32_t>(sizeof(m->top->p))}

// Every top-level port of npu_top. Keep in sync with rtl/npu_top.sv; the Rust side
// checks each name and size when it binds, so a mismatch fails loudly at start-up.
int lookup(Model* m, const char* name, void** addr, uint32_t* bytes) {
    const PortEntry ports[] = {
        NPU_PORT(clk_i),
        NPU_PORT(rst_ni),
        NPU_PORT(s_axil_awvalid_i),
        NPU_PORT(s_axil_awready_o),
        NPU_PORT(s_axil_awaddr_i),
        NPU_PORT(s_axil_wvalid_i),
        NPU_PORT(s_axil_wready_o),
        NPU_PORT(s_axil_wdata_i),
        NPU_PORT(s_axil_wstrb_i),
        NPU_PORT(s_axil_bvalid_o),
        NPU_PORT(s_axil_bready_i),
        NPU_PORT(s_axil_bresp_o),
        NPU_PORT(s_axil_arvalid_i),
        NPU_PORT(s_axil_arready_o),
        NPU_PORT(s_axil_araddr_i),
        NPU_PORT(s_axil_rvalid_o),
        NPU_PORT(s_axil_rready_i),
        NPU_PORT(s_axil_rdata_o),
        NPU_PORT(s_axil_rresp_o),
        NPU_PORT(irq_o),
        NPU_PORT(ff_skip_i),
        NPU_PORT(quiescent_o),
        NPU_PORT(m_axi_host_awid_o),
        NPU_PORT(m_axi_host_awaddr_o),
        NPU_PORT(m_axi_host_awlen_o),
        NPU_PORT(m_axi_host_awsize_o),
        NPU_PORT(m_axi_host_awburst_o),
        NPU_PORT(m_axi_host_awvalid_o),
        NPU_PORT(m_axi_host_awready_i),
        NPU_PORT(m_axi_host_wdata_o),
        NPU_PORT(m_axi_host_wstrb_o),
        NPU_PORT(m_axi_host_wlast_o),
        NPU_PORT(m_axi_host_wvalid_o),
        NPU_PORT(m_axi_host_wready_i),
        NPU_PORT(m_axi_host_bid_i),
        NPU_PORT(m_axi_host_bresp_i),
        NPU_PORT(m_axi_host_bvalid_i),
        NPU_PORT(m_axi_host_bready_o),
        NPU_PORT(m_axi_host_arid_o),
        NPU_PORT(m_axi_host_araddr_o),
        NPU_PORT(m_axi_host_arlen_o),
        NPU_PORT(m_axi_host_arsize_o),
        NPU_PORT(m_axi_host_arburst_o),
        NPU_PORT(m_axi_host_arvalid_o),
        NPU_PORT(m_axi_host_arready_i),
        NPU_PORT(m_axi_host_rid_i),
        NPU_PORT(m_axi_host_rdata_i),
        NPU_PORT(m_axi_host_rresp_i),
        NPU_PORT(m_axi_host_rlast_i),
        NPU_PORT(m_axi_host_rvalid_i),
        NPU_PORT(m_axi_host_rready_o),
        NPU_PORT(m_axi_dev_awid_o),
        NPU_PORT(m_axi_dev_awaddr_o),
        NPU_PORT(m_axi_dev_awlen_o),
        NPU_PORT(m_axi_dev_awsize_o),
        NPU_PORT(m_axi_dev_awburst_o),
        NPU_PORT(m_axi_dev_awvalid_o),
        NPU_PORT(m_axi_dev_awready_i),
        NPU_PORT(m_axi_dev_wdata_o),
        NPU_PORT(m_axi_dev_wstrb_o),
        NPU_PORT(m_axi_dev_wlast_o),
        NPU_PORT(m_axi_dev_wvalid_o),
        NPU_PORT(m_axi_dev_wready_i),
        NPU_PORT(m_axi_dev_bid_i),
        NPU_PORT(m_axi_dev_bresp_i),
        NPU_PORT(m_axi_dev_bvalid_i),
        NPU_PORT(m_axi_dev_bready_o),
        NPU_PORT(m_axi_dev_arid_o),
        NPU_PORT(m_axi_dev_araddr_o),
        NPU_PORT(m_axi_dev_arlen_o),
        NPU_PORT(m_axi_dev_arsize_o),
        NPU_PORT(m_axi_dev_arburst_o),
        NPU_PORT(m_axi_dev_arvalid_o),
        NPU_PORT(m_axi_dev_arready_i),
        NPU_PORT(m_axi_dev_rid_i),
        NPU_PORT(m_axi_dev_rdata_i),
        NPU_PORT(m_axi_dev_rresp_i),
        NPU_PORT(m_axi_dev_rlast_i),
        NPU_PORT(m_axi_dev_rvalid_i),
        NPU_PORT(m_axi_dev_rready_o),
    };
    for (const PortEntry& p : ports) {
        if (std::strcmp(p.name, name) == 0) {
            *addr = p.addr;
            *bytes = p.bytes;
            return 0;
        }
    }
    return -1;
}

// Makes `m`'s context the calling thread's. Verilator 5.006 reports an assertion
// ($stop, $fatal) to `Verilated::threadContextp()`, not to the model's own context, and
// a scope's destructor unregisters itself there too. That pointer is the context this
// thread created last, or, in a thread that created none, the one any thread created
// last: with two models in a process, one model's assertion would be flagged on the
// other (and missed), and deleting the older model would use the newer one's context
// (freed if that model is gone: a hang on its mutex, seen in a test). Every entry that
// runs model code calls this first; it costs one thread-local compare per call.
void use_context(Model* m) {
    if (Verilated::threadContextp() != m->ctx.get()) Verilated::threadContextp(m->ctx.get());
}

}  // namespace

extern "C" {

void* NPU_FN(new)(void) {
    auto* m = new Model;
    m->ctx = std::make_unique<VerilatedContext>();
    m->ctx->traceEverOn(NPU_TRACE != 0);
    m->ctx->fatalOnError(false);
    // An empty instance name: the design's own `npu_top` is the waveform's single top
    // scope (a named instance would wrap it in a second `npu_top`).
    m->top = std::make_unique<NPU_MODEL>(m->ctx.get(), "");
    return m;
}

void NPU_FN(delete)(void* handle) {
    auto* m = static_cast<Model*>(handle);
    use_context(m);
#if NPU_TRACE
    if (m->trace) m->trace->close();
#endif
    m->top->final();
    delete m;
    // The context is gone: the next model this thread runs sets its own (use_context).
    Verilated::threadContextp(nullptr);
}

int NPU_FN(port)(void* handle, const char* name, void** addr, uint32_t* bytes) {
    return lookup(static_cast<Model*>(handle), name, addr, bytes);
}

void NPU_FN(eval)(void* handle) {
    auto* m = static_cast<Model*>(handle);
    use_context(m);
    m->top->eval();
}

// Records the model's whole state (after a rising edge). 0 on success, -1 if this
// build has no fixed-point probe.
int NPU_FN(ff_snapshot)(void* handle) {
#if NPU_FIXED_POINT
    auto* m = static_cast<Model*>(handle);
    const auto* p = reinterpret_cast<const unsigned char*>(m->top->rootp);
    m->snapshot.assign(p, p + sizeof(*m->top->rootp));
    return 0;
#else
    (void)handle;
    return -1;
#endif
}

// 1 if the state after this rising edge equals the snapshot taken one edge before,
// except for the performance counters, and every counter's increment is 0 or 1: the
// design is at a fixed point (with the same inputs it stays there, and the counters
// advance by their increments each cycle). 0 if not, -1 without a snapshot or probe.
int NPU_FN(ff_unchanged)(void* handle) {
#if NPU_FIXED_POINT
    auto* m = static_cast<Model*>(handle);
    const auto* r = m->top->rootp;
    const size_t n = sizeof(*r);
    if (m->snapshot.size() != n) return -1;
    Range skip[] = {
        range_of(r, r->npu_top__DOT__u_perf__DOT__count_q),
        range_of(r, r->npu_top__DOT__u_perf__DOT__count_d),
        range_of(r, r->npu_top__DOT__perf_lo),
    };
    std::sort(std::begin(skip), std::end(skip), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    const auto* p = reinterpret_cast<const unsigned char*>(r);
    const unsigned char* s = m->snapshot.data();
    size_t at = 0;
    for (const Range& k : skip) {
        if (k.begin > at && std::memcmp(p + at, s + at, k.begin - at) != 0) return 0;
        at = std::max(at, k.end);
    }
    if (at < n && std::memcmp(p + at, s + at, n - at) != 0) return 0;
    // Increments are 16 bits each, two per 32-bit word.
    const auto& inc = r->npu_top__DOT__u_perf__DOT__inc_q;
    for (size_t w = 0; w < sizeof(inc) / sizeof(inc[0]); w++) {
        uint32_t v = inc[w];
        if ((v & 0xffffu) > 1 || (v >> 16) > 1) return 0;
    }
    return 1;
#else
    (void)handle;
    return -1;
#endif
}

// Non-zero once an assertion failed or $stop/$fatal ran inside the RTL.
int NPU_FN(got_error)(void* handle) { return static_cast<Model*>(handle)->ctx->gotError() ? 1 : 0; }

// 0 on success, -1 if a trace is already open, -2 if the file cannot be written, -3 if
// this build of the model has no trace support.
// `depth` levels of hierarchy below and including `npu_top` (0: all). Times passed to
// npu_trace_dump are picoseconds (the file's timescale is 1 ps).
int NPU_FN(trace_open)(void* handle, const char* path, int depth) {
#if !NPU_TRACE
    (void)handle, (void)path, (void)depth;
    return -3;
#else
    auto* m = static_cast<Model*>(handle);
    use_context(m);
    if (m->trace) return -1;
    auto t = std::make_unique<VerilatedFstC>();
    t->set_time_resolution("1ps");
    t->set_time_unit("1ps");
    // Only the design's scope: the wrapper's copies of the top-level ports (declared
    // outside any scope under an empty instance name) are left out. The prefix is the
    // trace's space-separated hierarchy, starting with the empty instance name.
    t->dumpvars(depth > 0 ? depth : 99, " npu_top");
    m->top->trace(t.get(), 99);
    t->open(path);
    if (!t->isOpen()) return -2;
    m->trace = std::move(t);
    return 0;
#endif
}

void NPU_FN(trace_dump)(void* handle, uint64_t time) {
#if NPU_TRACE
    auto* m = static_cast<Model*>(handle);
    if (m->trace) m->trace->dump(time);
#else
    (void)handle, (void)time;
#endif
}

void NPU_FN(trace_close)(void* handle) {
#if NPU_TRACE
    auto* m = static_cast<Model*>(handle);
    if (m->trace) {
        m->trace->close();
        m->trace.reset();
    }
#else
    (void)handle;
#endif
}

}  // extern "C"
