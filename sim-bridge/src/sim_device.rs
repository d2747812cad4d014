//! `SimDevice`: the Verilated NPU clocked by Rust, with an AXI4-Lite CSR master.

use crate::model::{Model, ModelError};
use crate::ports::TopPorts;
use std::path::PathBuf;

/// How to build a simulated device.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Write an FST waveform of the whole run to this path.
    pub waves: Option<PathBuf>,
    /// Cycles a CSR transaction may take before it is reported as hung.
    pub csr_timeout_cycles: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self { waves: None, csr_timeout_cycles: 1_000 }
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
    cfg: SimConfig,
}

const RESET_CYCLES: u64 = 4;

impl SimDevice {
    /// Builds the model, opens the waveform if asked, and applies reset.
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        let mut model = Model::new();
        if let Some(path) = &cfg.waves {
            model.trace_open(path)?;
        }
        let ports = TopPorts::bind(&model)?;
        let mut dev = Self { ports, model, cycle: 0, trace_time: 0, cfg };
        dev.reset();
        Ok(dev)
    }

    /// Holds reset for a few cycles, then releases it; the cycle count restarts at 0.
    pub fn reset(&mut self) {
        self.ports.rst_n.set(0);
        for _ in 0..RESET_CYCLES {
            self.tick();
        }
        self.ports.rst_n.set(1);
        self.tick();
        self.cycle = 0;
    }

    /// Cycles since the end of reset.
    pub fn cycles(&self) -> u64 {
        self.cycle
    }

    /// Current level of the interrupt vectors (bit i = vector i).
    pub fn irq_lines(&mut self) -> u8 {
        self.ports.clk.set(0);
        self.model.eval();
        self.ports.irq.get()
    }

    /// Advances `n` clock cycles with all requests idle.
    pub fn step(&mut self, n: u64) {
        for _ in 0..n {
            self.tick();
        }
    }

    /// Low phase: inputs set by the caller settle; outputs then show what the next
    /// rising edge will see.
    #[inline]
    fn low(&mut self) {
        self.ports.clk.set(0);
        self.model.eval();
        self.trace_time += 1;
        self.model.trace_dump(self.trace_time);
    }

    /// Rising edge: registers capture.
    #[inline]
    fn high(&mut self) {
        self.ports.clk.set(1);
        self.model.eval();
        self.cycle += 1;
        self.trace_time += 1;
        self.model.trace_dump(self.trace_time);
    }

    #[inline]
    fn tick(&mut self) {
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
        if self.model.assertion_failed() { Err(SimError::Assertion { cycle: self.cycle }) } else { Ok(()) }
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
        let lo_off = npu::regs::PERF_LO.at(index).ok_or(SimError::CsrOutOfRange { offset: index, size: npu::regs::PERF_LO.count })?;
        let hi_off = npu::regs::PERF_HI.at(index).ok_or(SimError::CsrOutOfRange { offset: index, size: npu::regs::PERF_HI.count })?;
        let lo = self.csr_read32(lo_off)?;
        let hi = self.csr_read32(hi_off)?;
        Ok((u64::from(hi) << 32) | u64::from(lo))
    }

    /// Flushes the waveform (also done on drop).
    pub fn finish(&mut self) {
        self.model.trace_close();
    }
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        self.model.trace_close();
    }
}
