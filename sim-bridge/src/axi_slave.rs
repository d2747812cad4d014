//! Servicing one AXI4 master port of the RTL: the memory behind it, with timing.
//!
//! Each cycle the bridge first [`drive`](AxiSlave::drive)s the slave-side signals from
//! its state (ready, read data, write responses), then the RTL settles, then the bridge
//! [`sample`](AxiSlave::sample)s which handshakes happened at the coming clock edge.
//! Bursts are INCR with full-width beats (the RTL never issues anything else).

use crate::dram::{DramModel, DramState};
use crate::memory::{BEAT, Unmapped};
use crate::pcie::{LinkState, PcieLink};
use crate::ports::{AxiMasterPorts, Beat};
use crate::timing::{PortTiming, Rng, StallPattern};
use std::collections::VecDeque;

const OKAY: u8 = 0;
const SLVERR: u8 = 2;

/// A memory that serves whole beats.
pub(crate) trait BeatStore {
    fn read_beat(&self, addr: u64) -> Result<[u8; BEAT], Unmapped>;
    fn write_beat(&mut self, addr: u64, data: &[u8; BEAT], strb: u64) -> Result<(), Unmapped>;
}

struct ReadBurst {
    id: u8,
    addr: u64,
    beats: u32,
    beats_left: u32,
    /// Cycle from which each beat may be delivered (one entry for all beats in the
    /// ideal model).
    ready: Vec<u64>,
}

impl ReadBurst {
    fn next_ready(&self) -> u64 {
        let i = (self.beats - self.beats_left) as usize;
        self.ready[i.min(self.ready.len() - 1)]
    }
}

struct WriteBurst {
    id: u8,
    addr: u64,
    failed: bool,
    /// No beat accepted yet.
    first: bool,
    /// Cycle from which the B response may go (timed models; set per beat).
    b_at: u64,
}

/// What times a port's traffic.
pub(crate) enum PortModel {
    /// Fixed latencies and the [`PortTiming`] payload cap.
    Ideal,
    /// A PCIe link (host port).
    Pcie(PcieLink),
    /// A half-duplex DRAM (device port).
    Dram(DramModel),
}

enum Timer {
    Ideal,
    Link(Box<LinkState>),
    Dram(DramState),
}

struct Response {
    id: u8,
    resp: u8,
    ready_at: u64,
}

/// Statistics of one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Read data beats delivered.
    pub read_beats: u64,
    /// Write data beats accepted.
    pub write_beats: u64,
    /// Bursts answered with an error (unmapped address).
    pub error_bursts: u64,
    /// Bursts that broke the port's rules (not INCR, not full-width beats, or crossing
    /// a 4 KiB boundary). Always 0 for a correct RTL.
    pub protocol_violations: u64,
}

/// True if a burst is INCR with full 64-byte beats and stays within one 4 KiB page.
fn burst_ok(addr: u64, len: u8, size: u8, burst: u8) -> bool {
    let start = addr & !(BEAT as u64 - 1);
    let end = start + (u64::from(len) + 1) * BEAT as u64;
    size == 6 && burst == 1 && (start >> 12) == ((end - 1) >> 12)
}

/// The slave side of one AXI4 port.
pub(crate) struct AxiSlave {
    timing: PortTiming,
    timer: Timer,
    /// Bytes of payload per cycle the credit buckets refill (the ideal model's cap;
    /// one beat for timed models, whose own pipes limit the rate).
    credit_cap: u64,
    stalls: Option<(Rng, u8)>,
    reads: VecDeque<ReadBurst>,
    writes: VecDeque<WriteBurst>,
    responses: VecDeque<Response>,
    read_credit: u64,
    write_credit: u64,
    /// What `drive` put on R this cycle: (data, resp, last).
    r_out: Option<(Beat, u8, bool)>,
    r_failed: bool,
    stats: PortStats,
}

fn to_words(b: &[u8; BEAT]) -> Beat {
    let mut w = [0u32; 16];
    for (i, chunk) in b.chunks_exact(4).enumerate() {
        w[i] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    w
}

fn to_bytes(w: &Beat) -> [u8; BEAT] {
    let mut b = [0u8; BEAT];
    for (i, word) in w.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    b
}

impl AxiSlave {
    pub(crate) fn new(timing: PortTiming, model: PortModel, stalls: Option<StallPattern>) -> Self {
        let (timer, credit_cap) = match model {
            PortModel::Ideal => (Timer::Ideal, timing.bytes_per_cycle),
            PortModel::Pcie(l) => (Timer::Link(Box::new(LinkState::new(l))), BEAT as u64),
            PortModel::Dram(d) => (Timer::Dram(DramState::new(d)), BEAT as u64),
        };
        Self {
            timing,
            timer,
            credit_cap,
            stalls: stalls.map(|s| (Rng::new(s.seed), s.percent)),
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            responses: VecDeque::new(),
            read_credit: 0,
            write_credit: 0,
            r_out: None,
            r_failed: false,
            stats: PortStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> PortStats {
        self.stats
    }

    /// Forgets every burst in flight (hardware reset of the port).
    pub(crate) fn clear(&mut self) {
        self.reads.clear();
        self.writes.clear();
        self.responses.clear();
        self.r_out = None;
        match &mut self.timer {
            Timer::Ideal => {}
            Timer::Link(l) => l.clear(),
            Timer::Dram(d) => d.clear(),
        }
    }

    fn timer_w_ready(&self, cycle: u64) -> bool {
        match &self.timer {
            Timer::Ideal => true,
            Timer::Link(l) => l.w_ready(cycle),
            Timer::Dram(d) => d.w_ready(cycle),
        }
    }

    /// True when nothing is in flight.
    pub(crate) fn idle(&self) -> bool {
        self.reads.is_empty() && self.writes.is_empty() && self.responses.is_empty()
    }

    fn stall(&mut self) -> bool {
        match &mut self.stalls {
            Some((rng, pct)) => rng.chance(*pct),
            None => false,
        }
    }

    /// Drives ready/valid/data into the RTL for the coming edge.
    pub(crate) fn drive(&mut self, p: &AxiMasterPorts, cycle: u64, mem: &dyn BeatStore) {
        let cap = self.credit_cap;
        self.read_credit = (self.read_credit + cap).min(BEAT as u64 + cap);
        self.write_credit = (self.write_credit + cap).min(BEAT as u64 + cap);

        let outstanding = self.reads.len() + self.writes.len() + self.responses.len();
        let room = outstanding < self.timing.max_outstanding;
        let ar = room && !self.stall();
        p.arready.set(u8::from(ar));
        let aw = room && !self.stall();
        p.awready.set(u8::from(aw));
        let w =
            !self.writes.is_empty() && self.write_credit >= BEAT as u64 && self.timer_w_ready(cycle) && !self.stall();
        p.wready.set(u8::from(w));

        self.r_out = None;
        let r_ready = self.reads.front().is_some_and(|f| f.next_ready() <= cycle) && self.read_credit >= BEAT as u64;
        if r_ready
            && !self.stall()
            && let Some(front) = self.reads.front()
        {
            let (data, resp) = match mem.read_beat(front.addr) {
                Ok(d) => (to_words(&d), OKAY),
                Err(Unmapped) => ([0; 16], SLVERR),
            };
            let last = front.beats_left == 1;
            p.rid.set(front.id);
            p.rdata.set(data);
            p.rresp.set(resp);
            p.rlast.set(u8::from(last));
            self.r_out = Some((data, resp, last));
        }
        p.rvalid.set(u8::from(self.r_out.is_some()));

        let b = self.responses.front().is_some_and(|r| r.ready_at <= cycle) && !self.stall();
        if b {
            if let Some(r) = self.responses.front() {
                p.bid.set(r.id);
                p.bresp.set(r.resp);
            }
        }
        p.bvalid.set(u8::from(b));
    }

    /// Records the handshakes the RTL made at this edge.
    pub(crate) fn sample(&mut self, p: &AxiMasterPorts, cycle: u64, mem: &mut dyn BeatStore) {
        if p.arvalid.get() == 1 && p.arready.get() == 1 {
            if !burst_ok(p.araddr.get(), p.arlen.get(), p.arsize.get(), p.arburst.get()) {
                self.stats.protocol_violations += 1;
            }
            let addr = p.araddr.get() & !(BEAT as u64 - 1);
            let beats = u32::from(p.arlen.get()) + 1;
            let bytes = u64::from(beats) * BEAT as u64;
            let mut ready = Vec::with_capacity(beats as usize);
            match &mut self.timer {
                Timer::Ideal => ready.push(cycle + self.timing.read_latency),
                Timer::Link(l) => l.read(cycle, addr, bytes, BEAT as u64, &mut ready),
                Timer::Dram(d) => d.read(cycle, bytes, BEAT as u64, &mut ready),
            }
            self.reads.push_back(ReadBurst { id: p.arid.get(), addr, beats, beats_left: beats, ready });
        }
        if p.rvalid.get() == 1 && p.rready.get() == 1 {
            if let (Some((_, resp, last)), Some(front)) = (self.r_out, self.reads.front_mut()) {
                self.read_credit -= BEAT as u64;
                self.stats.read_beats += 1;
                self.r_failed |= resp != OKAY;
                front.addr += BEAT as u64;
                front.beats_left -= 1;
                if last {
                    self.reads.pop_front();
                    if std::mem::take(&mut self.r_failed) {
                        self.stats.error_bursts += 1;
                    }
                }
            }
        }
        if p.awvalid.get() == 1 && p.awready.get() == 1 {
            if !burst_ok(p.awaddr.get(), p.awlen.get(), p.awsize.get(), p.awburst.get()) {
                self.stats.protocol_violations += 1;
            }
            self.writes.push_back(WriteBurst {
                id: p.awid.get(),
                addr: p.awaddr.get() & !(BEAT as u64 - 1),
                failed: false,
                first: true,
                b_at: 0,
            });
        }
        if p.wvalid.get() == 1 && p.wready.get() == 1 {
            let data = to_bytes(&p.wdata.get());
            let strb = p.wstrb.get();
            let last = p.wlast.get() == 1;
            if let Some(front) = self.writes.front_mut() {
                self.write_credit -= BEAT as u64;
                self.stats.write_beats += 1;
                if mem.write_beat(front.addr, &data, strb).is_err() {
                    front.failed = true;
                }
                front.b_at = match &mut self.timer {
                    Timer::Ideal => cycle + self.timing.write_latency,
                    Timer::Link(l) => l.write(cycle, front.addr, BEAT as u64, front.first),
                    Timer::Dram(d) => d.write(cycle, BEAT as u64),
                };
                front.first = false;
                front.addr += BEAT as u64;
                if last {
                    let done = self.writes.pop_front();
                    if let Some(done) = done {
                        if done.failed {
                            self.stats.error_bursts += 1;
                        }
                        self.responses.push_back(Response {
                            id: done.id,
                            resp: if done.failed { SLVERR } else { OKAY },
                            ready_at: done.b_at,
                        });
                    }
                }
            }
        }
        if p.bvalid.get() == 1 && p.bready.get() == 1 {
            self.responses.pop_front();
        }
    }
}
