//! Servicing one AXI4 master port of the RTL: the memory behind it, with timing.
//!
//! Each cycle the bridge first [`drive`](AxiSlave::drive)s the slave-side signals from
//! its state (ready, read data, write responses), then the RTL settles, then the bridge
//! [`sample`](AxiSlave::sample)s which handshakes happened at the coming clock edge.
//! Bursts are INCR with full-width beats (the RTL never issues anything else).
//! Every cycle's beats of both sides also go through the [`AxiChecker`]; the first
//! violation is kept for [`AxiSlave::violation`].
//!
//! Responses: in order by default (the oldest read burst streams its beats, then the
//! next; B responses in completion order). With a reorder seed, each R beat and each B
//! response is picked at random among the bursts whose data or response is due and
//! that are the oldest of their ID, so different IDs return out of order and R beats
//! of different IDs interleave, while one ID's responses keep their issue order (AXI4).
//! A beat shown with VALID stays on the bus, unchanged, until it is taken.

use crate::axi_check::{
    AddrBeat, AxiChecker, AxiViolation, BBeat, Chan, MAX_READ_BURSTS, PortName, RBeat, Signals, WBeat,
};
use crate::dram::{DramModel, DramState};
use crate::memory::{BEAT, Unmapped};
use crate::pcie::{LinkState, PcieLink};
use crate::ports::{AxiMasterPorts, Beat, Port};
use crate::timing::{PortTiming, Rng, StallPattern};
use std::collections::VecDeque;

const OKAY: u8 = 0;
const SLVERR: u8 = 2;

/// A memory that serves whole beats.
pub(crate) trait BeatStore {
    fn read_beat(&self, addr: u64) -> Result<[u8; BEAT], Unmapped>;
    fn write_beat(&mut self, addr: u64, data: &[u8; BEAT], strb: u64) -> Result<(), Unmapped>;
    /// Whether a whole beat at `addr` may be written (decided when the beat is taken,
    /// even if it lands later).
    fn writable(&self, addr: u64) -> bool;
}

/// A write beat on its way to host memory across the link: taken by the bridge, not yet
/// visible to the host.
struct PostedBeat {
    /// Cycle from which the host sees it.
    visible_at: u64,
    addr: u64,
    data: [u8; BEAT],
    strb: u64,
}

struct ReadBurst {
    id: u8,
    addr: u64,
    beats: u32,
    beats_left: u32,
    /// A beat was answered with an error.
    failed: bool,
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
    /// R beats and B responses answered ahead of an older burst of another ID (only
    /// with a reorder seed; [`crate::SimConfig::axi_reorder`]).
    pub reordered: u64,
    /// Cycles in which the protocol checker found a violation (see
    /// [`crate::axi_check`]; after the first, later ones may be its consequences).
    /// Always 0 for a correct RTL.
    pub protocol_violations: u64,
    /// Write beats that reached memory (on a link, when the host can see them).
    pub landed_beats: u64,
    /// Write beats on the link whose mapping was removed before they landed (dropped,
    /// as an IOMMU drops a posted write to an unmapped page).
    pub dropped_beats: u64,
}

/// The R beat on the bus: which burst it belongs to, and what was driven.
#[derive(Clone, Copy)]
struct ROut {
    /// Index of the burst in `reads`.
    burst: usize,
    data: Beat,
    resp: u8,
    last: bool,
}

/// The slave side of one AXI4 port.
pub(crate) struct AxiSlave {
    timing: PortTiming,
    timer: Timer,
    /// Bytes of payload per cycle the credit buckets refill (the ideal model's cap;
    /// one beat for timed models, whose own pipes limit the rate).
    credit_cap: u64,
    stalls: Option<(Rng, u8)>,
    /// Out-of-order answers (the PRNG that picks), or `None` for in order.
    reorder: Option<Rng>,
    /// Accepted read bursts in issue order.
    reads: VecDeque<ReadBurst>,
    writes: VecDeque<WriteBurst>,
    /// Write responses in completion order.
    responses: VecDeque<Response>,
    /// Write beats on the link (timed by a PCIe link only), in the order they land.
    in_flight: VecDeque<PostedBeat>,
    read_credit: u64,
    write_credit: u64,
    /// What `drive` put on R this cycle; kept until the RTL takes it.
    r_out: Option<ROut>,
    /// Index in `responses` of what `drive` put on B; kept until the RTL takes it.
    b_out: Option<usize>,
    /// Candidates of an out-of-order pick (reused to avoid allocating per cycle).
    picks: Vec<usize>,
    checker: AxiChecker,
    violation: Option<AxiViolation>,
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
    /// The slave of port `name`; `reorder`: seed of out-of-order answers (`None`: in order).
    pub(crate) fn new(
        name: PortName,
        timing: PortTiming,
        model: PortModel,
        stalls: Option<StallPattern>,
        reorder: Option<u64>,
    ) -> Self {
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
            reorder: reorder.map(Rng::new),
            reads: VecDeque::new(),
            writes: VecDeque::new(),
            responses: VecDeque::new(),
            in_flight: VecDeque::new(),
            read_credit: 0,
            write_credit: 0,
            r_out: None,
            b_out: None,
            picks: Vec::new(),
            checker: AxiChecker::new(name, MAX_READ_BURSTS, timing.max_outstanding),
            violation: None,
            stats: PortStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> PortStats {
        self.stats
    }

    /// The first AXI protocol violation seen on this port since creation.
    pub(crate) fn violation(&self) -> Option<AxiViolation> {
        self.violation
    }

    /// Writes the beats on the link that the host can see by `cycle` into `mem`.
    pub(crate) fn land(&mut self, cycle: u64, mem: &mut dyn BeatStore) {
        while self.in_flight.front().is_some_and(|b| b.visible_at <= cycle) {
            self.land_front(mem);
        }
    }

    /// Writes the first `n` beats on the link into `mem` whatever their time: what a
    /// completion or message that may not pass them requires (PCIe ordering).
    pub(crate) fn land_first(&mut self, n: usize, mem: &mut dyn BeatStore) {
        for _ in 0..n.min(self.in_flight.len()) {
            self.land_front(mem);
        }
    }

    fn land_front(&mut self, mem: &mut dyn BeatStore) {
        if let Some(b) = self.in_flight.pop_front() {
            match mem.write_beat(b.addr, &b.data, b.strb) {
                Ok(()) => self.stats.landed_beats += 1,
                Err(Unmapped) => self.stats.dropped_beats += 1,
            }
        }
    }

    /// Write beats on the link, not yet visible to the host.
    pub(crate) fn beats_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Cycle at which the next beat on the link becomes visible to the host.
    pub(crate) fn next_landing(&self) -> Option<u64> {
        self.in_flight.front().map(|b| b.visible_at)
    }

    /// Forgets every burst in flight (hardware reset of the port). Beats already on
    /// the link are not the port's any more: the caller lands them first
    /// ([`AxiSlave::land_first`]).
    pub(crate) fn clear(&mut self) {
        self.reads.clear();
        self.writes.clear();
        self.responses.clear();
        self.r_out = None;
        self.b_out = None;
        self.checker.clear();
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

    /// Refills the credit buckets as `cycles` idle cycles of `drive` would (the
    /// fast-forward's skip edge calls `drive` once for many cycles).
    pub(crate) fn skip_idle(&mut self, cycles: u64) {
        let add = self.credit_cap.saturating_mul(cycles);
        let full = BEAT as u64 + self.credit_cap;
        self.read_credit = self.read_credit.saturating_add(add).min(full);
        self.write_credit = self.write_credit.saturating_add(add).min(full);
    }

    /// True when nothing is in flight.
    pub(crate) fn idle(&self) -> bool {
        self.reads.is_empty() && self.writes.is_empty() && self.responses.is_empty()
    }

    /// The first cycle from `cycle` on at which `drive` may put something different on
    /// the RTL's inputs, when nothing the RTL does changes them first (it makes no
    /// handshake): the next read beat or write response due, or `u64::MAX` with nothing
    /// in flight. `None` when that cannot be told: a beat or response is on the bus, a
    /// burst awaits its W beats (the link's W timing), or a PRNG draws every cycle
    /// (seeded stalls, out-of-order picks).
    pub(crate) fn next_input_change(&self) -> Option<u64> {
        if self.stalls.is_some() || self.r_out.is_some() || self.b_out.is_some() || !self.writes.is_empty() {
            return None;
        }
        if self.reorder.is_some() && !(self.reads.is_empty() && self.responses.is_empty()) {
            return None;
        }
        let read = self.reads.front().map_or(u64::MAX, ReadBurst::next_ready);
        let response = self.responses.front().map_or(u64::MAX, |r| r.ready_at);
        Some(read.min(response))
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

        if self.r_out.is_none()
            && self.read_credit >= BEAT as u64
            && let Some(burst) = self.pick_read(cycle)
            && !self.stall()
        {
            let b = &self.reads[burst];
            let (data, resp) = match mem.read_beat(b.addr) {
                Ok(d) => (to_words(&d), OKAY),
                Err(Unmapped) => ([0; 16], SLVERR),
            };
            self.r_out = Some(ROut { burst, data, resp, last: b.beats_left == 1 });
        }
        if let Some(o) = &self.r_out {
            p.rid.set(self.reads[o.burst].id);
            p.rdata.set(o.data);
            p.rresp.set(o.resp);
            p.rlast.set(u8::from(o.last));
        }
        p.rvalid.set(u8::from(self.r_out.is_some()));

        if self.b_out.is_none()
            && let Some(i) = self.pick_response(cycle)
            && !self.stall()
        {
            self.b_out = Some(i);
        }
        if let Some(i) = self.b_out {
            p.bid.set(self.responses[i].id);
            p.bresp.set(self.responses[i].resp);
        }
        p.bvalid.set(u8::from(self.b_out.is_some()));
    }

    /// The read burst whose next beat goes out now, if one is due.
    fn pick_read(&mut self, cycle: u64) -> Option<usize> {
        match &mut self.reorder {
            None => self.reads.front().is_some_and(|f| f.next_ready() <= cycle).then_some(0),
            Some(rng) => pick(rng, &mut self.picks, self.reads.iter().map(|r| (r.id, r.next_ready() <= cycle))),
        }
    }

    /// The write response that goes out now, if one is due.
    fn pick_response(&mut self, cycle: u64) -> Option<usize> {
        match &mut self.reorder {
            None => self.responses.front().is_some_and(|r| r.ready_at <= cycle).then_some(0),
            Some(rng) => pick(rng, &mut self.picks, self.responses.iter().map(|r| (r.id, r.ready_at <= cycle))),
        }
    }

    /// Checks this edge's beats and records the handshakes the RTL made.
    pub(crate) fn sample(&mut self, p: &AxiMasterPorts, cycle: u64, mem: &mut dyn BeatStore) {
        let s = signals(p);
        if let Err(v) = self.checker.observe(cycle, &s) {
            self.stats.protocol_violations += 1;
            self.violation.get_or_insert(v);
        }
        if fire(&s.ar) {
            let a = s.ar.beat;
            let addr = a.addr & !(BEAT as u64 - 1);
            let beats = u32::from(a.len) + 1;
            let bytes = u64::from(beats) * BEAT as u64;
            let mut ready = Vec::with_capacity(beats as usize);
            match &mut self.timer {
                Timer::Ideal => ready.push(cycle + self.timing.read_latency),
                Timer::Link(l) => l.read(cycle, addr, bytes, BEAT as u64, &mut ready),
                Timer::Dram(d) => d.read(cycle, bytes, BEAT as u64, &mut ready),
            }
            self.reads.push_back(ReadBurst { id: a.id, addr, beats, beats_left: beats, failed: false, ready });
        }
        if fire(&s.r)
            && let Some(o) = self.r_out.take()
        {
            self.read_credit -= BEAT as u64;
            self.stats.read_beats += 1;
            self.stats.reordered += u64::from(o.burst != 0);
            let b = &mut self.reads[o.burst];
            b.failed |= o.resp != OKAY;
            b.addr += BEAT as u64;
            b.beats_left -= 1;
            if o.last && self.reads.remove(o.burst).is_some_and(|b| b.failed) {
                self.stats.error_bursts += 1;
            }
        }
        if fire(&s.aw) {
            let a = s.aw.beat;
            self.writes.push_back(WriteBurst {
                id: a.id,
                addr: a.addr & !(BEAT as u64 - 1),
                failed: false,
                first: true,
                b_at: 0,
            });
        }
        if fire(&s.w) {
            let data = to_bytes(&s.w.beat.data);
            let strb = s.w.beat.strb;
            let last = s.w.beat.last;
            if let Some(front) = self.writes.front_mut() {
                self.write_credit -= BEAT as u64;
                self.stats.write_beats += 1;
                front.b_at = match &mut self.timer {
                    Timer::Link(l) => {
                        // A posted write: the host sees it once it has crossed the link.
                        let (b_at, visible_at) = l.write(cycle, front.addr, BEAT as u64, front.first);
                        if mem.writable(front.addr) {
                            self.in_flight.push_back(PostedBeat { visible_at, addr: front.addr, data, strb });
                        } else {
                            front.failed = true;
                        }
                        b_at
                    }
                    timer => {
                        if mem.write_beat(front.addr, &data, strb).is_ok() {
                            self.stats.landed_beats += 1;
                        } else {
                            front.failed = true;
                        }
                        match timer {
                            Timer::Dram(d) => d.write(cycle, BEAT as u64),
                            _ => cycle + self.timing.write_latency,
                        }
                    }
                };
                front.first = false;
                front.addr += BEAT as u64;
                if last && let Some(done) = self.writes.pop_front() {
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
        if fire(&s.b)
            && let Some(i) = self.b_out.take()
        {
            self.stats.reordered += u64::from(i != 0);
            self.responses.remove(i);
        }
    }
}

fn fire<T>(c: &Chan<T>) -> bool {
    c.valid && c.ready
}

/// Index of a random entry among those that are due and the oldest of their ID.
fn pick(rng: &mut Rng, picks: &mut Vec<usize>, entries: impl Iterator<Item = (u8, bool)>) -> Option<usize> {
    let mut seen = [0u64; 4];
    picks.clear();
    for (i, (id, due)) in entries.enumerate() {
        let (word, bit) = (usize::from(id / 64), 1u64 << (id % 64));
        if seen[word] & bit == 0 {
            seen[word] |= bit;
            if due {
                picks.push(i);
            }
        }
    }
    let n = picks.len() as u64;
    (n > 0).then(|| picks[(rng.next() % n) as usize])
}

/// Both sides of every channel of `p` in this cycle (payloads read only when valid).
fn signals(p: &AxiMasterPorts) -> Signals {
    let addr = |valid: &Port<u8>,
                ready: &Port<u8>,
                id: &Port<u8>,
                a: &Port<u64>,
                len: &Port<u8>,
                size: &Port<u8>,
                burst: &Port<u8>| {
        let valid = valid.get() == 1;
        let beat = if valid {
            AddrBeat { id: id.get(), addr: a.get(), len: len.get(), size: size.get(), burst: burst.get() }
        } else {
            AddrBeat::default()
        };
        Chan { valid, ready: ready.get() == 1, beat }
    };
    let (wv, rv, bv) = (p.wvalid.get() == 1, p.rvalid.get() == 1, p.bvalid.get() == 1);
    Signals {
        aw: addr(&p.awvalid, &p.awready, &p.awid, &p.awaddr, &p.awlen, &p.awsize, &p.awburst),
        ar: addr(&p.arvalid, &p.arready, &p.arid, &p.araddr, &p.arlen, &p.arsize, &p.arburst),
        w: Chan {
            valid: wv,
            ready: p.wready.get() == 1,
            beat: if wv {
                WBeat { data: p.wdata.get(), strb: p.wstrb.get(), last: p.wlast.get() == 1 }
            } else {
                WBeat::default()
            },
        },
        r: Chan {
            valid: rv,
            ready: p.rready.get() == 1,
            beat: if rv {
                RBeat { id: p.rid.get(), data: p.rdata.get(), resp: p.rresp.get(), last: p.rlast.get() == 1 }
            } else {
                RBeat::default()
            },
        },
        b: Chan {
            valid: bv,
            ready: p.bready.get() == 1,
            beat: if bv { BBeat { id: p.bid.get(), resp: p.bresp.get() } } else { BBeat::default() },
        },
    }
}
