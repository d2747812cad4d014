// Training run of GCC profile-guided optimisation (GMEM_MODEL_PGO=1, see build.rs):
// the bare harness's DMA workload (host->device and device->host copies at once) on
// the model built with -fprofile-generate. Deterministic: same RTL, same profile.
#include <cstdint>
#include <cstdio>

extern "C" {
struct NpuBareResult {
    uint64_t cycles;
    uint64_t wall_ns;
    uint64_t cpu_ns;
    int ok;
};
NpuBareResult npu_bare_dma_run(uint64_t bytes, uint32_t rounds, uint64_t host_rd_lat, uint64_t host_wr_lat,
                               uint64_t host_bw, uint64_t dev_rd_lat, uint64_t dev_wr_lat, uint64_t dev_bw);
}

int main() {
    // TimingModel::default(): host 250/125 cycles, device 40/20 cycles, 64 B/cycle.
    NpuBareResult r = npu_bare_dma_run(1 << 20, 2, 250, 125, 64, 40, 20, 64);
    std::printf("pgo training: %llu cycles\n", static_cast<unsigned long long>(r.cycles));
    return r.ok == 1 ? 0 : 1;
}
