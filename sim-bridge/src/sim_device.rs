//! `SimDevice`: the Verilated NPU clocked by Rust, with an AXI4-Lite CSR master.

use crate::axi_check::{AxiViolation, PortName};
use crate::axi_slave::{AxiSlave, BeatStore, PortModel, PortStats};
use crate::fast_forward::{
    FastForwardStats, MAX_SKIP, PROBE_BACKOFF, PROBE_MIN_WINDOW, next_backoff, next_quiet_streak, skip_window,
};
use crate::memory::{BEAT, DeviceMemory, HostMemory, Unmapped};
use crate::model::{Model, ModelBuild, ModelError};
use crate::ports::TopPorts;
use crate::timing::{DevMem, HostLink, TimingModel};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

/// How to build a simulated device.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Write an FST waveform of the run to this path. Its timescale is 1 ps and one
    /// cycle lasts the nominal clock's period (4 ns at 250 MHz); its one top scope is
    /// the design's `npu_top`.
    pub waves: Option<PathBuf>,
    /// Hierarchy levels of the waveform from `npu_top` (1: its own signals only; 0: all).
    pub waves_depth: u32,
    /// Cycles (counted from the start of reset) whose values the waveform records,
    /// both ends included.
    pub waves_cycles: std::ops::RangeInclusive<u64>,
    /// Cycles a CSR transaction may take before it is reported as hung.
    pub csr_timeout_cycles: u64,
    /// Timing of the memory ports.
    pub timing: TimingModel,
    /// Bytes of device memory behind the device port. Must match the RTL's DevMemMiB
    /// (256 MiB by default): the RTL refuses descriptors beyond its own size, the
    /// bridge answers SLVERR beyond this one.
    pub dev_mem_bytes: usize,
    /// `--host-time measured`: the wall time the host spends between two transport calls
    /// (driver, manager, userfaultfd, the test itself) passes as device time, capped at
    /// [`MAX_HOST_GAP_NS`] per gap. Not deterministic; off by default.
    pub measure_host_time: bool,
    /// Seed of out-of-order answers on both memory ports: responses of different AXI
    /// IDs return in a seeded random order and R beats of different IDs interleave, one
    /// ID's responses in issue order (same seed, same order). `None` (the default): in
    /// order, which keeps the figures of the timing model and the bare C++ harness
    /// comparison cycle-exact.
    pub axi_reorder: Option<u64>,
    /// Which Verilated build of the RTL runs (the shipped one by default; the plain
    /// reference build only with the `plain-model` feature).
    pub model: ModelBuild,
    /// Cycle-exact fast-forward of quiescent stretches (`crate::fast_forward`): same
    /// cycles, counters and memory as without it, fewer evaluations. On by default;
    /// the environment variable `GMEM_FAST_FORWARD=0` turns it off, and it stays off
    /// while a waveform is recorded or a port has seeded stalls.
    pub fast_forward: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            waves: None,
            waves_depth: 0,
            waves_cycles: 0..=u64::MAX,
            csr_timeout_cycles: 1_000,
            timing: TimingModel::default(),
            dev_mem_bytes: 256 << 20,
            measure_host_time: false,
            axi_reorder: None,
            model: ModelBuild::Shipped,
            fast_forward: true,
        }
    }
}

/// Longest host gap `measure_host_time` charges at once (a debugger stop or a slow
/// machine must not turn into hours of simulated idle cycles).
pub const MAX_HOST_GAP_NS: u64 = 1_000_000;

/// What the driver asked of the transport ([`npu::DeviceIo`] calls), for checks that
/// a path does no MMIO read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// `read32` calls (each a non-posted round trip on a board).
    pub csr_reads: u64,
    /// `write32` calls (posted).
    pub csr_writes: u64,
    /// `wait_irq` calls.
    pub irq_waits: u64,
    /// `wait_host` calls (polls of host memory).
    pub host_waits: u64,
    /// Cycles the host waited for its earlier CSR writes to leave
    /// (`MmioCost::write_gap_ns`: uncached stores go out one at a time).
    pub write_gap_cycles: u64,
}

/// Host time measured by `measure_host_time`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostTimeStats {
    /// Nanoseconds of host time charged as device time.
    pub charged_ns: u64,
    /// Gaps cut to [`MAX_HOST_GAP_NS`].
    pub clamped_gaps: u64,
}

impl BeatStore for HostMemory {
    fn read_beat(&self, addr: u64) -> Result<[u8; BEAT], Unmapped> {
        HostMemory::read_beat(self, addr)
    }
    fn write_beat(&mut self, addr: u64, data: &[u8; BEAT], strb: u64) -> Result<(), Unmapped> {
        HostMemory::write_beat(self, addr, data, strb)
    }
    fn writable(&self, addr: u64) -> bool {
        self.map.reachable(addr, BEAT)
    }
}

impl BeatStore for DeviceMemory {
    fn read_beat(&self, addr: u64) -> Result<[u8; BEAT], Unmapped> {
        DeviceMemory::read_beat(self, addr)
    }
    fn write_beat(&mut self, addr: u64, data: &[u8; BEAT], strb: u64) -> Result<(), Unmapped> {
        DeviceMemory::write_beat(self, addr, data, strb)
    }
    fn writable(&self, addr: u64) -> bool {
        addr.checked_add(BEAT as u64).is_some_and(|end| end <= self.size() as u64)
    }
}

/// Errors of the simulated device.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Building or tracing the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The CSR slave answered SLVERR/DECERR: no register there, or an unaligned offset.
    #[error("CSR {kind} at offset {offset:#05x} answered with error response {resp:#04b}")]
    CsrError {
        /// "read" or "write".
        kind: &'static str,
        /// Byte offset in BAR0.
        offset: u32,
        /// AXI response code.
        resp: u8,
    },
    /// The offset lies outside the 4 KiB CSR space.
    #[error("CSR offset {offset:#x} is outside the {size:#x}-byte CSR space")]
    CsrOutOfRange {
        /// Requested offset.
        offset: u32,
        /// Size of the CSR space.
        size: u32,
    },
    /// The CSR slave did not complete a transaction within the budget.
    #[error("CSR {kind} at offset {offset:#05x} did not complete within {cycles} cycles")]
    CsrTimeout {
        /// "read" or "write".
        kind: &'static str,
        /// Byte offset in BAR0.
        offset: u32,
        /// The budget.
        cycles: u64,
    },
    /// The device-memory backing store could not be mapped.
    #[error("cannot allocate {bytes:#x} bytes of simulated device memory")]
    DeviceMemory {
        /// Requested size.
        bytes: usize,
        /// Cause.
        #[source]
        source: mmap_rs::Error,
    },
    /// A backdoor access fell outside device memory.
    #[error("device memory access [{addr:#x}, +{len:#x}) is outside the {size:#x}-byte device memory")]
    DeviceMemoryRange {
        /// Start.
        addr: u64,
        /// Length.
        len: usize,
        /// Device memory size.
        size: usize,
    },
    /// A host-memory mapping at a caller-chosen IOVA is empty, wraps, or overlaps one.
    #[error("host mapping at IOVA {iova:#x} of {len:#x} bytes is empty, wraps or overlaps an existing mapping")]
    IovaConflict {
        /// Requested IOVA.
        iova: u64,
        /// Requested length.
        len: usize,
    },
    /// The RTL (or the bridge) broke an AXI4 rule on a memory port.
    #[error(transparent)]
    AxiProtocol(#[from] AxiViolation),
    /// An assertion inside the RTL failed.
    #[error("an RTL assertion failed at cycle {cycle} (see the simulator's message above)")]
    Assertion {
        /// Cycle of detection.
        cycle: u64,
    },
}

/// The Verilated NPU as a device: clocking, reset, CSR access, interrupt lines.
///
/// Time is counted in device clock cycles from the end of reset; the same sequence
/// of calls always gives the same cycle counts.
pub struct SimDevice {
    // Field order matters: `ports` points into `model`, so it is dropped first.
    ports: TopPorts,
    model: Model,
    cycle: u64,
    /// Half-cycles since creation: the waveform's time axis (never reset).
    trace_time: u64,
    /// Half-cycles recorded in the waveform ([`SimConfig::waves_cycles`] doubled).
    trace_window: std::ops::RangeInclusive<u64>,
    cfg: SimConfig,
    pub(crate) host_mem: HostMemory,
    pub(crate) dev_mem: DeviceMemory,
    pub(crate) host_port: AxiSlave,
    dev_port: AxiSlave,
    pub(crate) iova: npu::IovaAllocator,
    /// Buffers mapped by `dma_map`, kept alive until their unmap (dropped last).
    pub(crate) owners: npu::DmaOwners,
    /// Posted CSR writes on their way to the device: (arrival cycle, offset, value).
    posted: VecDeque<(u64, u32, u32)>,
    /// First cycle at which the host may send its next CSR write
    /// (`MmioCost::write_gap_ns` after the one before).
    pub(crate) next_write_at: u64,
    /// When the host last left the transport (`measure_host_time`).
    pub(crate) host_left: Option<Instant>,
    pub(crate) host_time: HostTimeStats,
    pub(crate) transport: TransportStats,
    /// Fast-forward in force (config, environment, no waveform, no seeded stalls).
    ff: bool,
    /// Consecutive quiet cycles ([`crate::fast_forward::next_quiet_streak`]).
    quiet: u32,
    ff_stats: FastForwardStats,
    /// Fixed-point probes possible (fast-forward on and the build has the probe).
    probe: bool,
    /// First cycle of the next fixed-point probe, and the wait after a miss.
    probe_at: u64,
    probe_backoff: u64,
}

const RESET_CYCLES: u64 = 4;

/// Half a period of the nominal clock in picoseconds, the waveform's time unit (2000 at
/// 250 MHz: one cycle shows as 4 ns).
const HALF_PERIOD_PS: u64 = 1_000_000_000_000 / (2 * crate::timing::NOMINAL_HZ);

impl SimDevice {
    /// Builds the model, opens the waveform if asked, and applies reset.
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        let mut model = Model::new(cfg.model)?;
        if let Some(path) = &cfg.waves {
            model.trace_open(path, cfg.waves_depth)?;
        }
        let (from, to) = (*cfg.waves_cycles.start(), *cfg.waves_cycles.end());
        // Cycle c is half-cycles 2c+1 (clock low) and 2c+2 (rising edge).
        let trace_window = from.saturating_mul(2).saturating_add(1)..=to.saturating_mul(2).saturating_add(2);
        let ports = TopPorts::bind(&model)?;
        ports.ff_skip.set(0);
        let ff = cfg.fast_forward
            && std::env::var("GMEM_FAST_FORWARD").map_or(true, |v| v != "0")
            && cfg.waves.is_none()
            && cfg.timing.host_stalls.is_none()
            && cfg.timing.dev_stalls.is_none();
        let dev_mem = DeviceMemory::new(cfg.dev_mem_bytes)
            .map_err(|source| SimError::DeviceMemory { bytes: cfg.dev_mem_bytes, source })?;
        let mut dev = Self {
            ports,
            model,
            cycle: 0,
            trace_time: 0,
            trace_window,
            host_mem: HostMemory::default(),
            dev_mem,
            host_port: AxiSlave::new(
                PortName::Host,
                cfg.timing.host,
                host_model(&cfg.timing),
                cfg.timing.host_stalls,
                cfg.axi_reorder,
            ),
            dev_port: AxiSlave::new(
                PortName::Dev,
                cfg.timing.dev,
                dev_model(&cfg.timing),
                cfg.timing.dev_stalls,
                cfg.axi_reorder.map(|s| s ^ 0xDE7),
            ),
            iova: npu::IovaAllocator::npu_default(),
            cfg,
            owners: npu::DmaOwners::default(),
            posted: VecDeque::new(),
            next_write_at: 0,
            host_left: None,
            host_time: HostTimeStats::default(),
            transport: TransportStats::default(),
            ff,
            quiet: 0,
            ff_stats: FastForwardStats::default(),
            probe: ff,
            probe_at: 0,
            probe_backoff: PROBE_BACKOFF.0,
        };
        dev.reset();
        Ok(dev)
    }

    /// Holds reset for a few cycles, then releases it; the cycle count restarts at 0.
    /// Posted CSR writes still in flight are dropped with the reset.
    pub fn reset(&mut self) {
        self.posted.clear();
        self.next_write_at = 0;
        // Writes already on the link land; the reset does not call them back.
        let on_link = self.host_port.beats_in_flight();
        self.host_port.land_first(on_link, &mut self.host_mem);
        self.host_port.clear();
        self.dev_port.clear();
        self.ports.rst_n.set(0);
        for _ in 0..RESET_CYCLES {
            self.tick();
        }
        self.ports.rst_n.set(1);
        self.tick();
        self.cycle = 0;
        self.quiet = 0;
        // The probe schedule counts in cycles since reset too.
        self.probe_at = 0;
        self.probe_backoff = PROBE_BACKOFF.0;
    }

    /// Cycles since the end of reset.
    pub fn cycles(&self) -> u64 {
        self.cycle
    }

    /// Current level of the interrupt vectors (bit i = vector i).
    pub fn irq_lines(&mut self) -> u8 {
        self.ports.irq.get()
    }

    /// Advances `n` clock cycles with all requests idle.
    pub fn step(&mut self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Advances `n` cycles as [`SimDevice::step`] does, but an idle stretch costs one
    /// edge when fast-forward is on (`SimConfig::fast_forward`): what a clock that runs
    /// the device between host actions wants. The cycle count advances by `n` either way.
    ///
    /// # Errors
    /// A posted CSR write that fails on delivery (see [`SimDevice::csr_write32`]).
    pub fn advance(&mut self, n: u64) -> Result<(), SimError> {
        self.run(n)
    }

    /// Advances `n` cycles, delivering posted CSR writes as they arrive.
    pub(crate) fn run(&mut self, n: u64) -> Result<(), SimError> {
        let end = self.cycle + n;
        while self.cycle < end {
            self.step_towards(end)?;
        }
        self.host_port.land(self.cycle, &mut self.host_mem);
        Ok(())
    }

    /// One step towards cycle `end`: the posted CSR writes that have arrived are
    /// delivered, then one edge, which stands for many cycles when the design is
    /// provably quiet or at a fixed point (fast-forward).
    pub(crate) fn step_towards(&mut self, end: u64) -> Result<(), SimError> {
        self.deliver_posted(false)?;
        let window = self.ff_window(end);
        if window >= 2 {
            self.skip(window);
        } else if !self.fixed_point_skip(end) {
            self.tick();
        }
        Ok(())
    }

    /// Runs until `ready` holds or `end` (a cycle) is reached; `ready` is asked first
    /// and again whenever a device write has landed in host memory. Returns whether it
    /// held.
    pub(crate) fn run_until_host_sees(&mut self, end: u64, ready: &mut dyn FnMut() -> bool) -> Result<bool, SimError> {
        let mut landed = None;
        loop {
            self.host_port.land(self.cycle, &mut self.host_mem);
            let now_landed = self.host_port.stats().landed_beats;
            if landed != Some(now_landed) {
                landed = Some(now_landed);
                if ready() {
                    return Ok(true);
                }
            }
            if self.cycle >= end {
                return Ok(false);
            }
            // Stop at the next landing: that is when `ready` may change.
            let stop = end.min(self.host_port.next_landing().unwrap_or(u64::MAX).max(self.cycle + 1));
            self.step_towards(stop)?;
        }
    }

    /// The cycles from now until the next change of the RTL's inputs that no action of
    /// the RTL causes (the end of the caller's run at `end`, a posted CSR write's
    /// arrival, a memory port's next beat or response), at most [`MAX_SKIP`]; 0 if a
    /// port cannot tell.
    fn input_window(&self, end: u64) -> u64 {
        let (Some(host), Some(dev)) = (self.host_port.next_input_change(), self.dev_port.next_input_change()) else {
            return 0;
        };
        let posted = self.posted.front().map_or(u64::MAX, |&(due, _, _)| due);
        end.min(posted).min(host).min(dev).saturating_sub(self.cycle).min(MAX_SKIP)
    }

    /// Fast-forward at a fixed point of the whole design (`crate::fast_forward`): if a
    /// probe is due and the inputs hold for at least [`PROBE_MIN_WINDOW`] cycles,
    /// records the model's state, runs one cycle and, if nothing but the performance
    /// counters changed, skips to the next input change. Returns false if it did not
    /// probe (the caller runs the cycle).
    pub(crate) fn fixed_point_skip(&mut self, end: u64) -> bool {
        if !self.probe || self.cycle < self.probe_at || self.input_window(end) < PROBE_MIN_WINDOW {
            return false;
        }
        if !self.model.ff_snapshot() {
            self.probe = false; // this build has no probe
            return false;
        }
        self.tick();
        self.ff_stats.probes += 1;
        let hit = self.model.ff_unchanged();
        self.probe_backoff = next_backoff(self.probe_backoff, hit);
        self.probe_at = self.cycle + if hit { 0 } else { self.probe_backoff };
        if hit {
            self.ff_stats.probe_hits += 1;
            let window = self.input_window(end);
            if window >= 2 {
                self.skip(window);
            }
        }
        true
    }

    /// Cycles one edge may stand for now if the caller's run ends at `end` (0 when the
    /// device is not provably quiet or fast-forward is off).
    pub(crate) fn ff_window(&self, end: u64) -> u64 {
        if !self.ff {
            return 0;
        }
        skip_window(self.cycle, self.quiet, end, self.posted.front().map(|&(due, _, _)| due))
    }

    /// One edge standing for `cycles` cycles (at least 2): the RTL sees `ff_skip_i =
    /// cycles - 1`, the ports' credit buckets refill as over that many idle cycles.
    fn skip(&mut self, cycles: u64) {
        let extra = cycles - 1;
        self.ports.ff_skip.set(extra as u16);
        self.host_port.skip_idle(extra);
        self.dev_port.skip_idle(extra);
        self.tick();
        self.ports.ff_skip.set(0);
        self.cycle += extra;
        // The edge after a skip edge shows `ff_skip_i` back at 0 in the performance
        // counters' registered skip: a probe across it cannot hit.
        self.probe_at = self.probe_at.max(self.cycle + 1);
        self.trace_time += 2 * extra;
        self.ff_stats.skipped_cycles += extra;
        self.ff_stats.skips += 1;
    }

    /// Cycles skipped by fast-forward so far (zero when it is off).
    pub fn fast_forward_stats(&self) -> FastForwardStats {
        self.ff_stats
    }

    /// True if fast-forward is in force for this device.
    pub fn fast_forward_on(&self) -> bool {
        self.ff
    }

    /// Queues a posted CSR write that reaches the device after `flight` cycles; with no
    /// flight time it is written at once.
    pub(crate) fn post_write32(&mut self, offset: u32, value: u32, flight: u64) -> Result<(), SimError> {
        self.check_offset(offset)?;
        if flight == 0 && self.posted.is_empty() {
            return self.csr_write32(offset, value);
        }
        self.posted.push_back((self.cycle + flight, offset, value));
        Ok(())
    }

    /// Writes the posted CSR writes that have arrived (`all`: every one, as a read that
    /// may not pass them requires).
    pub(crate) fn deliver_posted(&mut self, all: bool) -> Result<(), SimError> {
        while let Some(&(due, offset, value)) = self.posted.front() {
            if !all && due > self.cycle {
                break;
            }
            self.posted.pop_front();
            self.csr_write32(offset, value)?;
        }
        Ok(())
    }

    /// The driver's transport calls so far.
    pub fn transport_stats(&self) -> TransportStats {
        self.transport
    }

    /// Host time measured by `measure_host_time`.
    pub fn host_time_stats(&self) -> HostTimeStats {
        self.host_time
    }

    /// Low phase: the memory ports drive their side, inputs set by the caller settle;
    /// outputs then show what the next rising edge will see.
    #[inline]
    fn low(&mut self) {
        self.host_port.land(self.cycle, &mut self.host_mem);
        self.host_port.drive(&self.ports.host, self.cycle, &self.host_mem);
        self.dev_port.drive(&self.ports.dev, self.cycle, &self.dev_mem);
        self.ports.clk.set(0);
        self.model.eval();
        self.dump_wave();
    }

    /// Rising edge: the memory ports record this edge's handshakes; registers capture.
    #[inline]
    fn high(&mut self) {
        self.host_port.sample(&self.ports.host, self.cycle, &mut self.host_mem);
        self.dev_port.sample(&self.ports.dev, self.cycle, &mut self.dev_mem);
        self.ports.clk.set(1);
        self.model.eval();
        self.cycle += 1;
        self.dump_wave();
        if self.ff {
            let p = &self.ports;
            let quiet = p.quiescent.get() == 1
                && p.awvalid.get() == 0
                && p.wvalid.get() == 0
                && p.arvalid.get() == 0
                && self.host_port.idle()
                && self.dev_port.idle();
            self.quiet = next_quiet_streak(self.quiet, quiet);
        }
    }

    /// Counts a half-cycle and records it in the waveform if it is in the window, at its
    /// real time: a half period of the nominal clock per half-cycle.
    #[inline]
    fn dump_wave(&mut self) {
        self.trace_time += 1;
        if self.trace_window.contains(&self.trace_time) {
            self.model.trace_dump(self.trace_time * HALF_PERIOD_PS);
        }
    }

    /// Advances one cycle (memory ports serviced).
    #[inline]
    pub(crate) fn tick(&mut self) {
        self.low();
        self.high();
    }

    fn check_offset(&self, offset: u32) -> Result<u16, SimError> {
        if offset >= npu::regs::CSR_BYTES {
            return Err(SimError::CsrOutOfRange { offset, size: npu::regs::CSR_BYTES });
        }
        Ok(offset as u16)
    }

    fn check_assertions(&self) -> Result<(), SimError> {
        if let Some(v) = self.axi_violation() {
            return Err(v.into());
        }
        if self.model.assertion_failed() { Err(SimError::Assertion { cycle: self.cycle }) } else { Ok(()) }
    }

    /// The first AXI protocol violation on either memory port (host port first), if any.
    /// CSR accesses fail with it as [`SimError::AxiProtocol`].
    pub fn axi_violation(&self) -> Option<AxiViolation> {
        self.host_port.violation().or(self.dev_port.violation())
    }

    /// One AXI4-Lite read of the 32-bit CSR at byte `offset`.
    pub fn csr_read32(&mut self, offset: u32) -> Result<u32, SimError> {
        let addr = self.check_offset(offset)?;
        let p = &self.ports;
        p.araddr.set(addr);
        p.arvalid.set(1);
        p.rready.set(1);
        let start = self.cycle;
        let mut result = None;
        while result.is_none() {
            if self.cycle - start > self.cfg.csr_timeout_cycles {
                self.ports.arvalid.set(0);
                self.ports.rready.set(0);
                return Err(SimError::CsrTimeout { kind: "read", offset, cycles: self.cfg.csr_timeout_cycles });
            }
            self.low();
            let ar_done = self.ports.arvalid.get() == 1 && self.ports.arready.get() == 1;
            if self.ports.rvalid.get() == 1 {
                result = Some((self.ports.rdata.get(), self.ports.rresp.get()));
            }
            self.high();
            if ar_done {
                self.ports.arvalid.set(0);
            }
        }
        self.ports.rready.set(0);
        self.check_assertions()?;
        match result {
            Some((data, 0)) => Ok(data),
            Some((_, resp)) => Err(SimError::CsrError { kind: "read", offset, resp }),
            None => Err(SimError::CsrTimeout { kind: "read", offset, cycles: self.cfg.csr_timeout_cycles }),
        }
    }

    /// One AXI4-Lite write of the 32-bit CSR at byte `offset` (all byte lanes).
    pub fn csr_write32(&mut self, offset: u32, value: u32) -> Result<(), SimError> {
        let addr = self.check_offset(offset)?;
        let p = &self.ports;
        p.awaddr.set(addr);
        p.awvalid.set(1);
        p.wdata.set(value);
        p.wstrb.set(0xF);
        p.wvalid.set(1);
        p.bready.set(1);
        let start = self.cycle;
        let mut resp = None;
        while resp.is_none() {
            if self.cycle - start > self.cfg.csr_timeout_cycles {
                self.ports.awvalid.set(0);
                self.ports.wvalid.set(0);
                self.ports.bready.set(0);
                return Err(SimError::CsrTimeout { kind: "write", offset, cycles: self.cfg.csr_timeout_cycles });
            }
            self.low();
            let aw_done = self.ports.awvalid.get() == 1 && self.ports.awready.get() == 1;
            let w_done = self.ports.wvalid.get() == 1 && self.ports.wready.get() == 1;
            if self.ports.bvalid.get() == 1 {
                resp = Some(self.ports.bresp.get());
            }
            self.high();
            if aw_done {
                self.ports.awvalid.set(0);
            }
            if w_done {
                self.ports.wvalid.set(0);
            }
        }
        self.ports.bready.set(0);
        self.check_assertions()?;
        match resp {
            Some(0) => Ok(()),
            Some(r) => Err(SimError::CsrError { kind: "write", offset, resp: r }),
            None => Err(SimError::CsrTimeout { kind: "write", offset, cycles: self.cfg.csr_timeout_cycles }),
        }
    }

    /// Reads a 64-bit performance counter (PERF_LO then PERF_HI, see the spec).
    pub fn perf_counter(&mut self, index: u32) -> Result<u64, SimError> {
        let lo_off = npu::regs::PERF_LO
            .at(index)
            .ok_or(SimError::CsrOutOfRange { offset: index, size: npu::regs::PERF_LO.count })?;
        let hi_off = npu::regs::PERF_HI
            .at(index)
            .ok_or(SimError::CsrOutOfRange { offset: index, size: npu::regs::PERF_HI.count })?;
        let lo = self.csr_read32(lo_off)?;
        let hi = self.csr_read32(hi_off)?;
        Ok((u64::from(hi) << 32) | u64::from(lo))
    }

    /// Level of the interrupt vectors after the last edge (bit i = vector i).
    #[inline]
    pub(crate) fn irq_now(&self) -> u8 {
        self.ports.irq.get()
    }

    /// The timing model in force.
    pub fn timing(&self) -> &TimingModel {
        &self.cfg.timing
    }

    /// The whole configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Traffic statistics of the host-memory and device-memory ports.
    pub fn port_stats(&self) -> (PortStats, PortStats) {
        (self.host_port.stats(), self.dev_port.stats())
    }

    /// True when no burst is in flight on either memory port.
    pub fn ports_idle(&self) -> bool {
        self.host_port.idle() && self.dev_port.idle()
    }

    /// Bytes of device memory behind the device port.
    pub fn dev_mem_bytes(&self) -> u64 {
        self.dev_mem.size() as u64
    }

    /// Backdoor read of device memory (no device cycles pass; for tests and dumps).
    pub fn dev_mem_read(&self, addr: u64, out: &mut [u8]) -> Result<(), SimError> {
        self.dev_mem.peek(addr, out).map_err(|Unmapped| SimError::DeviceMemoryRange {
            addr,
            len: out.len(),
            size: self.dev_mem.size(),
        })
    }

    /// Backdoor write of device memory (no device cycles pass; for tests and set-up).
    pub fn dev_mem_write(&mut self, addr: u64, data: &[u8]) -> Result<(), SimError> {
        let size = self.dev_mem.size();
        self.dev_mem.poke(addr, data).map_err(|Unmapped| SimError::DeviceMemoryRange { addr, len: data.len(), size })
    }

    /// Maps host memory at an IOVA the caller chooses (a vfio-user client's DMA map),
    /// bypassing the IOVA allocator that [`npu::DeviceIo::dma_map`] uses: the RTL's
    /// host-memory port then reads and writes `host..host+len` for `iova..iova+len`.
    ///
    /// # Safety
    /// `host..host+len` must stay valid for reads and writes (no Rust reference to it
    /// may exist) until [`Self::unmap_host_region`] removes the mapping or the device is
    /// dropped.
    pub unsafe fn map_host_region(&mut self, iova: u64, host: *mut u8, len: usize) -> Result<(), SimError> {
        if len == 0 || iova.checked_add(len as u64).is_none() || self.host_mem.overlaps(iova, len) {
            return Err(SimError::IovaConflict { iova, len });
        }
        // SAFETY: the caller keeps the range valid until unmap_host_region or drop.
        unsafe { self.host_mem.map(iova, host, len) };
        Ok(())
    }

    /// Removes a mapping made by [`Self::map_host_region`] starting at `iova`; false if
    /// there was none. Device accesses to it answer SLVERR from now on.
    pub fn unmap_host_region(&mut self, iova: u64) -> bool {
        self.host_mem.unmap(iova)
    }

    /// Flushes the waveform (also done on drop).
    pub fn finish(&mut self) {
        self.model.trace_close();
    }
}

fn host_model(t: &TimingModel) -> PortModel {
    match t.link {
        HostLink::Ideal => PortModel::Ideal,
        HostLink::Pcie(l) => PortModel::Pcie(l),
    }
}

fn dev_model(t: &TimingModel) -> PortModel {
    match t.dev_mem {
        DevMem::Ideal => PortModel::Ideal,
        DevMem::Dram(d) => PortModel::Dram(d),
    }
}

// SAFETY: a SimDevice exclusively owns its Verilated model (built single-threaded, no
// `--threads`), the port pointers into it and its device-memory mapping; every access
// goes through `&mut self`, so moving the whole device to another thread moves that
// exclusive ownership with it. The host-memory map holds pointers into process memory
// that the `dma_map_raw` contract keeps valid, from any thread.
unsafe impl Send for SimDevice {}

impl Drop for SimDevice {
    fn drop(&mut self) {
        self.model.trace_close();
    }
}
