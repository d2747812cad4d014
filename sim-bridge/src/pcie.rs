//! The PCIe link between the NPU's host-memory port and host memory, at the protocol
//! level: where an XDMA/QDMA AXI bridge sits on a board, so the RTL's AXI boundary does
//! not change.
//!
//! Each direction is a [`Pipe`] that carries TLP bytes at the lane rate after 128b/130b
//! encoding, less documented factors for DLLPs (ACK, flow-control updates) and SKP
//! ordered sets. What travels on it:
//! - **device writes to host memory** (AXI W) go upstream as posted memory-write TLPs,
//!   split at MPS-aligned boundaries, each with a 4DW header (64-bit address), the 4-byte
//!   Gen3 STP framing token and the 4-byte LCRC: 24 bytes of overhead per TLP;
//! - **device reads of host memory** (AXI AR) become read requests split at MRRS-aligned
//!   boundaries, 24 bytes each, upstream — sharing that direction with posted writes —
//!   each holding one tag until its last completion arrives (a tag limit); after the
//!   host's read latency (plus seeded jitter) the completions come downstream split at
//!   `completion_bytes` (the read-completion boundary, 64 B on many root complexes), each
//!   with a 3DW header and framing: 20 bytes of overhead.
//!
//! docs/performance-model.md works out each preset's payload rate by hand; the unit
//! tests below check the code against those numbers.

use crate::pipe::{Fixed, Pipe, ceil_cycles, fixed, fixed_ns};
use crate::timing::{NOMINAL_HZ, Rng};
use std::collections::BinaryHeap;

/// Overhead of a memory request TLP with a 64-bit address: 16 B header, 4 B STP, 4 B LCRC.
pub const MEM_TLP_OVERHEAD: u64 = 24;
/// Overhead of a completion TLP: 12 B header, 4 B STP, 4 B LCRC.
pub const CPL_TLP_OVERHEAD: u64 = 20;

/// PCIe generation: the lane rate (all three use 128b/130b encoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PcieGen {
    /// 8 GT/s per lane.
    Gen3,
    /// 16 GT/s per lane.
    Gen4,
    /// 32 GT/s per lane.
    Gen5,
}

impl PcieGen {
    /// Transfers per second per lane.
    pub fn transfers_per_s(self) -> f64 {
        match self {
            PcieGen::Gen3 => 8e9,
            PcieGen::Gen4 => 16e9,
            PcieGen::Gen5 => 32e9,
        }
    }
}

/// Parameters of the PCIe link model. See the module doc and docs/performance-model.md.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PcieLink {
    /// Generation (lane rate).
    pub generation: PcieGen,
    /// Lanes.
    pub lanes: u32,
    /// Max payload size of a write TLP (bytes).
    pub mps: u32,
    /// Max read request size (bytes).
    pub mrrs: u32,
    /// Size of read completions (the root complex's read-completion boundary; 64..=MPS).
    pub completion_bytes: u32,
    /// Read requests in flight at once (tags).
    pub tags: u32,
    /// From the end of a read request on the link to the start of its first completion:
    /// flight both ways, root complex and host DRAM.
    pub read_latency_ns: u64,
    /// Seeded uniform jitter added to each read's latency, 0..=jitter_ns.
    pub jitter_ns: u64,
    /// Seed of the jitter.
    pub seed: u64,
    /// From the last byte of a posted write on the link to the bridge's AXI B response.
    pub write_response_ns: u64,
    /// Share of link symbols left for TLPs after ACK and UpdateFC DLLPs.
    pub dllp_factor: f64,
    /// Share left after SKP ordered sets (one 16-symbol block per ~370 at 128b/130b).
    pub skp_factor: f64,
}

impl PcieLink {
    /// A link of `generation` and `lanes` with the documented defaults.
    pub fn new(generation: PcieGen, lanes: u32) -> Self {
        Self {
            generation,
            lanes,
            mps: 256,
            mrrs: 512,
            completion_bytes: 64,
            tags: 64,
            read_latency_ns: 800,
            jitter_ns: 200,
            seed: 1,
            write_response_ns: 40,
            dllp_factor: 0.98,
            skp_factor: 1.0 - 1.0 / 371.0,
        }
    }

    /// Raw rate per direction after 128b/130b encoding, bytes per second.
    pub fn raw_bytes_per_s(&self) -> f64 {
        self.generation.transfers_per_s() * f64::from(self.lanes) * 128.0 / 130.0 / 8.0
    }

    /// Bytes per device cycle the link carries for TLPs (after DLLP and SKP).
    pub fn tlp_bytes_per_cycle(&self) -> f64 {
        self.raw_bytes_per_s() * self.dllp_factor * self.skp_factor / NOMINAL_HZ as f64
    }

    /// Payload bytes per second of a long stream of device writes (MPS TLPs).
    pub fn write_payload_bytes_per_s(&self) -> f64 {
        let mps = f64::from(self.mps);
        self.raw_bytes_per_s() * self.dllp_factor * self.skp_factor * mps / (mps + MEM_TLP_OVERHEAD as f64)
    }

    /// Payload bytes per second of a long stream of device reads (completions of
    /// `completion_bytes`), if tags and latency do not limit it.
    pub fn read_payload_bytes_per_s(&self) -> f64 {
        let c = f64::from(self.completion_bytes);
        self.raw_bytes_per_s() * self.dllp_factor * self.skp_factor * c / (c + CPL_TLP_OVERHEAD as f64)
    }

    /// Checks the parameters a link needs to make sense.
    pub fn validate(&self) -> Result<(), String> {
        let pow2 = |v: u32| v.is_power_of_two();
        if !(pow2(self.mps) && (128..=4096).contains(&self.mps)) {
            return Err(format!("MPS {} is not a power of two in 128..=4096", self.mps));
        }
        if !(pow2(self.mrrs) && (128..=4096).contains(&self.mrrs)) {
            return Err(format!("MRRS {} is not a power of two in 128..=4096", self.mrrs));
        }
        if !(pow2(self.completion_bytes) && (64..=self.mps).contains(&self.completion_bytes)) {
            return Err(format!("completion size {} is not a power of two in 64..=MPS", self.completion_bytes));
        }
        if self.lanes == 0 || self.tags == 0 {
            return Err("a link needs at least one lane and one tag".into());
        }
        Ok(())
    }
}

/// The link's state while it serves one AXI port.
pub(crate) struct LinkState {
    cfg: PcieLink,
    /// Device → host: posted writes and read requests.
    up: Pipe,
    /// Host → device: read completions.
    down: Pipe,
    /// When each tag in use comes free (min-heap through `Reverse`).
    tags: BinaryHeap<std::cmp::Reverse<Fixed>>,
    jitter: Rng,
    read_latency: Fixed,
    jitter_span: u64,
    write_response: Fixed,
    /// From the last byte of a posted write on the link until a polling CPU can see it
    /// in host memory: half the read round trip (the flight up and the root complex).
    write_visible: Fixed,
}

/// Cycles of W backlog the bridge buffers before it withholds WREADY.
const W_BUFFER_CYCLES: u64 = 8;

impl LinkState {
    pub(crate) fn new(cfg: PcieLink) -> Self {
        let rate = cfg.tlp_bytes_per_cycle();
        Self {
            up: Pipe::new(rate),
            down: Pipe::new(rate),
            tags: BinaryHeap::new(),
            jitter: Rng::new(cfg.seed),
            read_latency: fixed_ns(cfg.read_latency_ns),
            jitter_span: fixed_ns(cfg.jitter_ns),
            write_response: fixed_ns(cfg.write_response_ns),
            write_visible: fixed_ns(cfg.read_latency_ns / 2),
            cfg,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.up.clear();
        self.down.clear();
        self.tags.clear();
    }

    /// Schedules a read burst of `bytes` at `addr` accepted at `cycle`; pushes the cycle
    /// at which each 64-byte beat has fully arrived.
    pub(crate) fn read(&mut self, cycle: u64, addr: u64, bytes: u64, beat: u64, ready: &mut Vec<u64>) {
        let (mrrs, cpl) = (u64::from(self.cfg.mrrs), u64::from(self.cfg.completion_bytes));
        let end = addr + bytes;
        let mut next_beat_end = addr + beat;
        let mut req = addr;
        while req < end {
            let req_end = ((req / mrrs + 1) * mrrs).min(end);
            let mut issue = fixed(cycle);
            if self.tags.len() >= self.cfg.tags as usize
                && let Some(std::cmp::Reverse(free)) = self.tags.pop()
            {
                issue = issue.max(free);
            }
            let sent = self.up.send(issue, MEM_TLP_OVERHEAD);
            let jitter = if self.jitter_span == 0 { 0 } else { self.jitter.next() % (self.jitter_span + 1) };
            let data_at = sent + self.read_latency + jitter;
            let mut c = req;
            let mut last = data_at;
            while c < req_end {
                let c_end = ((c / cpl + 1) * cpl).min(req_end);
                last = self.down.send(data_at, CPL_TLP_OVERHEAD + (c_end - c));
                while next_beat_end <= c_end {
                    ready.push(ceil_cycles(last));
                    next_beat_end += beat;
                }
                c = c_end;
            }
            self.tags.push(std::cmp::Reverse(last));
            req = req_end;
        }
    }

    /// True if the bridge can take another W beat at `cycle`.
    pub(crate) fn w_ready(&self, cycle: u64) -> bool {
        self.up.free_at() <= fixed(cycle + W_BUFFER_CYCLES)
    }

    /// Schedules one W beat of `bytes` at `addr` accepted at `cycle`; `first` marks a
    /// burst's first beat. Returns the cycle at which a B response for a burst ending
    /// with this beat may be given, and the cycle from which the host can see the beat
    /// in its memory.
    pub(crate) fn write(&mut self, cycle: u64, addr: u64, bytes: u64, first: bool) -> (u64, u64) {
        let new_tlp = first || addr % u64::from(self.cfg.mps) == 0;
        let overhead = if new_tlp { MEM_TLP_OVERHEAD } else { 0 };
        let done = self.up.send(fixed(cycle), bytes + overhead);
        (ceil_cycles(done + self.write_response), ceil_cycles(done + self.write_visible))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen3() -> PcieLink {
        PcieLink::new(PcieGen::Gen3, 16)
    }

    #[test]
    fn gen3_x16_rates_match_the_hand_computation() {
        let l = gen3();
        // 8 GT/s x 16 lanes x 128/130 / 8 = 15.754 GB/s raw.
        assert!((l.raw_bytes_per_s() / 1e9 - 15.754).abs() < 0.001, "{}", l.raw_bytes_per_s());
        // x 0.98 (DLLP) x 370/371 (SKP) = 15.397 GB/s of TLP bytes = 61.59 B/cycle.
        assert!((l.tlp_bytes_per_cycle() - 61.59).abs() < 0.01, "{}", l.tlp_bytes_per_cycle());
        // Writes: x 256/280 = 14.077 GB/s; reads with 64 B completions: x 64/84 = 11.731 GB/s.
        assert!((l.write_payload_bytes_per_s() / 1e9 - 14.077).abs() < 0.001);
        assert!((l.read_payload_bytes_per_s() / 1e9 - 11.731).abs() < 0.001);
    }

    /// Streams `bursts` 4 KiB writes one beat per cycle when the bridge lets it; returns
    /// the cycle the last B response is due.
    fn stream_writes(link: &mut LinkState, bursts: u64) -> u64 {
        let (mut cycle, mut b) = (0, 0);
        for n in 0..bursts {
            for i in 0..64 {
                while !link.w_ready(cycle) {
                    cycle += 1;
                }
                b = link.write(cycle, n * 4096 + i * 64, 64, i == 0).0;
                cycle += 1;
            }
        }
        b
    }

    #[test]
    fn a_write_stream_runs_at_the_mps_payload_rate() {
        let mut link = LinkState::new(gen3());
        let bursts = 256; // 1 MiB
        let done = stream_writes(&mut link, bursts) - ceil_cycles(fixed_ns(40));
        let rate = (bursts * 4096) as f64 / done as f64; // bytes per cycle
        let expect = gen3().write_payload_bytes_per_s() / NOMINAL_HZ as f64; // 56.31
        assert!((rate - expect).abs() / expect < 0.002, "{rate} vs {expect}");
    }

    #[test]
    fn a_read_stream_runs_at_the_completion_payload_rate() {
        let mut link = LinkState::new(PcieLink { jitter_ns: 0, ..gen3() });
        let mut ready = Vec::new();
        for n in 0..256u64 {
            link.read(n, n * 4096, 4096, 64, &mut ready);
        }
        assert_eq!(ready.len(), 256 * 64);
        assert!(ready.windows(2).all(|w| w[0] <= w[1]), "beats arrive in order");
        let first = ready[0];
        // First beat: one request (24 B = 0.39 cycle) up, 800 ns = 200 cycles, one
        // 84-byte completion (1.36 cycles) down: 201.75 cycles.
        assert_eq!(first, 202);
        let span = ready[ready.len() - 1] - first;
        let rate = (256 * 4096 - 64) as f64 / span as f64;
        let expect = gen3().read_payload_bytes_per_s() / NOMINAL_HZ as f64; // 46.93
        assert!((rate - expect).abs() / expect < 0.002, "{rate} vs {expect}");
    }

    #[test]
    fn completions_are_split_at_the_completion_size_with_their_own_headers() {
        let mut link = LinkState::new(PcieLink { jitter_ns: 0, completion_bytes: 256, ..gen3() });
        let mut ready = Vec::new();
        link.read(0, 0, 4096, 64, &mut ready);
        // 256 B completions: 4 beats arrive together with each completion.
        assert_eq!(ready[0], ready[3]);
        assert!(ready[4] > ready[3]);
        // Larger completions carry more payload per header: the burst ends sooner.
        let mut small = LinkState::new(PcieLink { jitter_ns: 0, ..gen3() });
        let mut r64 = Vec::new();
        small.read(0, 0, 4096, 64, &mut r64);
        assert!(ready[63] < r64[63], "{} vs {}", ready[63], r64[63]);
    }

    #[test]
    fn the_tag_limit_bounds_reads_in_flight() {
        // One tag: every 512-byte request waits for the previous one's completions, so
        // 8 KiB takes 16 round trips of ~200 cycles.
        let mut link = LinkState::new(PcieLink { jitter_ns: 0, tags: 1, ..gen3() });
        let mut ready = Vec::new();
        link.read(0, 0, 4096, 64, &mut ready);
        link.read(0, 4096, 4096, 64, &mut ready);
        let last = *ready.last().unwrap_or(&0);
        assert!(last > 16 * 200, "{last}");
        let mut wide = LinkState::new(PcieLink { jitter_ns: 0, ..gen3() });
        let mut r = Vec::new();
        wide.read(0, 0, 4096, 64, &mut r);
        wide.read(0, 4096, 4096, 64, &mut r);
        assert!(*r.last().unwrap_or(&0) < 400, "{r:?}");
    }

    #[test]
    fn read_requests_share_the_upstream_direction_with_writes() {
        let mut link = LinkState::new(PcieLink { jitter_ns: 0, ..gen3() });
        let mut alone = Vec::new();
        LinkState::new(PcieLink { jitter_ns: 0, ..gen3() }).read(0, 0, 512, 64, &mut alone);
        // A 4 KiB write queued first delays the request behind it by its TLP bytes.
        for i in 0..64 {
            link.write(0, i * 64, 64, i == 0);
        }
        let mut behind = Vec::new();
        link.read(0, 0x10000, 512, 64, &mut behind);
        let write_cycles = (4096 + 16 * 24) as f64 / gen3().tlp_bytes_per_cycle();
        let delay = (behind[0] - alone[0]) as f64;
        assert!((delay - write_cycles).abs() <= 1.0, "{delay} vs {write_cycles}");
    }

    #[test]
    fn jitter_is_deterministic_per_seed() {
        let run = |seed| {
            let mut link = LinkState::new(PcieLink { seed, ..gen3() });
            let mut r = Vec::new();
            for n in 0..32 {
                link.read(n * 10, n * 512, 512, 64, &mut r);
            }
            r
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn bad_parameters_are_named() {
        assert!(PcieLink { mps: 300, ..gen3() }.validate().unwrap_err().contains("MPS 300"));
        assert!(PcieLink { completion_bytes: 512, ..gen3() }.validate().unwrap_err().contains("completion size"));
        assert_eq!(gen3().validate(), Ok(()));
    }
}
