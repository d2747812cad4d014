//! AXI4 protocol checker for the memory ports, fed every cycle with what both sides drive.
//!
//! The bridge samples each memory port just before the rising edge and hands the
//! checker one [`Signals`] per cycle. The checker applies the AXI4 rules that a board's
//! interconnect would rely on, to the RTL (master) and to the bridge's own answers
//! (slave) alike:
//! - **handshake**: once VALID is high without READY, VALID stays high and every payload
//!   field stays the same until the handshake (AXI4 A3.2.1), checked cycle by cycle on
//!   all five channels;
//! - **bursts**: INCR with full 64-byte beats (all the port serves), never crossing a
//!   4 KiB boundary (A3.4.1); WLAST on exactly the AWLEN+1-th beat; RLAST on exactly the
//!   ARLEN+1-th beat of its ID;
//! - **IDs**: an R or B beat only for an ID with a burst outstanding; no more bursts
//!   outstanding than the port's limits (reads: `MaxReadBursts` of docs/device.md §2.1).
//!
//! A violation is an [`AxiViolation`] naming the cycle, port, channel and field.

use crate::ports::Beat;
use std::collections::VecDeque;
use std::fmt;

/// Read bursts the NPU may have outstanding per master port (`MaxReadBursts`,
/// docs/device.md §2.1, all requesters together).
pub const MAX_READ_BURSTS: usize = 16;

/// `AxBURST` of an incrementing burst.
const INCR: u8 = 1;
/// `AxSIZE` of a full 64-byte beat.
const FULL_BEAT_SIZE: u8 = 6;

/// Which memory port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortName {
    /// `m_axi_host_*`.
    Host,
    /// `m_axi_dev_*`.
    Dev,
}

impl fmt::Display for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortName::Host => "host-memory",
            PortName::Dev => "device-memory",
        })
    }
}

/// One of the five AXI4 channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Write address.
    Aw,
    /// Write data.
    W,
    /// Write response.
    B,
    /// Read address.
    Ar,
    /// Read data.
    R,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Channel::Aw => "AW",
            Channel::W => "W",
            Channel::B => "B",
            Channel::Ar => "AR",
            Channel::R => "R",
        })
    }
}

/// The rule a beat broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// VALID fell before READY.
    ValidDropped,
    /// A payload field changed while VALID was high and READY low (`before`, `after`: the
    /// field's values; for data, the first 64-bit lane that differs).
    PayloadChanged {
        /// Value in the previous cycle.
        before: u64,
        /// Value in this cycle.
        after: u64,
    },
    /// Not an INCR burst of full 64-byte beats (the field's value).
    Unsupported {
        /// The offending AxBURST or AxSIZE.
        value: u64,
    },
    /// The burst crosses a 4 KiB boundary.
    Crosses4k {
        /// Start address.
        addr: u64,
        /// Bytes the burst covers from the beat-aligned start.
        bytes: u64,
    },
    /// LAST was high on beat `beat` (1-based) of a `beats`-beat burst, or low on its last beat.
    LastMismatch {
        /// Beat number within the burst, from 1.
        beat: u32,
        /// Beats the address phase announced (AxLEN + 1).
        beats: u32,
        /// The LAST bit on that beat.
        last: bool,
    },
    /// A response for an ID with nothing outstanding.
    NotOutstanding {
        /// The response's ID.
        id: u8,
    },
    /// An address handshake beyond the port's limit of outstanding bursts.
    TooManyOutstanding {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rule::ValidDropped => write!(f, "VALID dropped before READY"),
            Rule::PayloadChanged { before, after } => {
                write!(f, "changed from {before:#x} to {after:#x} while VALID && !READY")
            }
            Rule::Unsupported { value } => write!(f, "{value:#x}: only INCR bursts of full 64-byte beats are served"),
            Rule::Crosses4k { addr, bytes } => {
                write!(f, "burst at {addr:#x} of {bytes:#x} bytes crosses a 4 KiB boundary")
            }
            Rule::LastMismatch { beat, beats, last } => {
                write!(f, "LAST={} on beat {beat} of a {beats}-beat burst", u8::from(last))
            }
            Rule::NotOutstanding { id } => write!(f, "response for ID {id}, which has no burst outstanding"),
            Rule::TooManyOutstanding { limit } => write!(f, "more than {limit} bursts outstanding"),
        }
    }
}

/// An AXI4 protocol violation on a memory port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("AXI protocol violation at cycle {cycle} on the {port} port, channel {channel}, field {field}: {rule}")]
pub struct AxiViolation {
    /// Device cycle of the clock edge at which the beat was seen.
    pub cycle: u64,
    /// The port.
    pub port: PortName,
    /// The channel.
    pub channel: Channel,
    /// The signal, e.g. `awaddr`, `wlast`, `rid`.
    pub field: &'static str,
    /// What was wrong.
    pub rule: Rule,
}

/// An AW or AR payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AddrBeat {
    pub id: u8,
    pub addr: u64,
    pub len: u8,
    pub size: u8,
    pub burst: u8,
}

/// A W payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WBeat {
    pub data: Beat,
    pub strb: u64,
    pub last: bool,
}

/// An R payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RBeat {
    pub id: u8,
    pub data: Beat,
    pub resp: u8,
    pub last: bool,
}

/// A B payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BBeat {
    pub id: u8,
    pub resp: u8,
}

/// One channel in one cycle (the payload is only meaningful with `valid`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Chan<T> {
    pub valid: bool,
    pub ready: bool,
    pub beat: T,
}

/// Everything on one port in one cycle, as seen just before the rising edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Signals {
    pub aw: Chan<AddrBeat>,
    pub w: Chan<WBeat>,
    pub b: Chan<BBeat>,
    pub ar: Chan<AddrBeat>,
    pub r: Chan<RBeat>,
}

/// A payload whose fields the handshake rule compares.
trait Payload: Copy {
    /// Names of (VALID, fields…) on `channel`.
    fn valid_name(channel: Channel) -> &'static str;
    /// The first field that differs: (name, before, after).
    fn diff(&self, now: &Self, channel: Channel) -> Option<(&'static str, u64, u64)>;
}

fn first_diff(fields: &[(&'static str, u64, u64)]) -> Option<(&'static str, u64, u64)> {
    fields.iter().copied().find(|&(_, a, b)| a != b)
}

/// The first differing 64-bit lane of two data beats.
fn data_diff(name: &'static str, a: &Beat, b: &Beat) -> Option<(&'static str, u64, u64)> {
    let lane = |w: &Beat, i: usize| u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32);
    (0..a.len() / 2).map(|i| (name, lane(a, i), lane(b, i))).find(|&(_, x, y)| x != y)
}

impl Payload for AddrBeat {
    fn valid_name(channel: Channel) -> &'static str {
        if channel == Channel::Aw { "awvalid" } else { "arvalid" }
    }
    fn diff(&self, now: &Self, channel: Channel) -> Option<(&'static str, u64, u64)> {
        let n = if channel == Channel::Aw {
            ["awid", "awaddr", "awlen", "awsize", "awburst"]
        } else {
            ["arid", "araddr", "arlen", "arsize", "arburst"]
        };
        first_diff(&[
            (n[0], self.id.into(), now.id.into()),
            (n[1], self.addr, now.addr),
            (n[2], self.len.into(), now.len.into()),
            (n[3], self.size.into(), now.size.into()),
            (n[4], self.burst.into(), now.burst.into()),
        ])
    }
}

impl Payload for WBeat {
    fn valid_name(_: Channel) -> &'static str {
        "wvalid"
    }
    fn diff(&self, now: &Self, _: Channel) -> Option<(&'static str, u64, u64)> {
        first_diff(&[("wstrb", self.strb, now.strb), ("wlast", self.last.into(), now.last.into())])
            .or_else(|| data_diff("wdata", &self.data, &now.data))
    }
}

impl Payload for RBeat {
    fn valid_name(_: Channel) -> &'static str {
        "rvalid"
    }
    fn diff(&self, now: &Self, _: Channel) -> Option<(&'static str, u64, u64)> {
        first_diff(&[
            ("rid", self.id.into(), now.id.into()),
            ("rresp", self.resp.into(), now.resp.into()),
            ("rlast", self.last.into(), now.last.into()),
        ])
        .or_else(|| data_diff("rdata", &self.data, &now.data))
    }
}

impl Payload for BBeat {
    fn valid_name(_: Channel) -> &'static str {
        "bvalid"
    }
    fn diff(&self, now: &Self, _: Channel) -> Option<(&'static str, u64, u64)> {
        first_diff(&[("bid", self.id.into(), now.id.into()), ("bresp", self.resp.into(), now.resp.into())])
    }
}

/// The beat a channel showed with VALID && !READY in the previous cycle.
#[derive(Default)]
struct Held {
    aw: Option<AddrBeat>,
    w: Option<WBeat>,
    b: Option<BBeat>,
    ar: Option<AddrBeat>,
    r: Option<RBeat>,
}

/// Checks one port's beats cycle by cycle.
pub(crate) struct AxiChecker {
    port: PortName,
    max_reads: usize,
    max_writes: usize,
    held: Held,
    /// Accepted AW bursts whose W beats are not complete: (ID, beats).
    w_due: VecDeque<(u8, u32)>,
    /// W beats of the burst in progress.
    w_beats: u32,
    /// Beat counts of W bursts completed before their AW (AXI4 allows W first).
    w_early: VecDeque<u32>,
    /// Per ID: write bursts complete on AW and W, awaiting B.
    b_due: Vec<u32>,
    /// Write bursts from AW handshake to B handshake.
    writes: usize,
    /// Per ID, in issue order: (beats announced, beats seen) of each read burst.
    r_due: Vec<VecDeque<(u32, u32)>>,
    /// Read bursts from AR handshake to the last R beat.
    reads: usize,
}

impl AxiChecker {
    /// A checker for `port` allowing `max_reads` read and `max_writes` write bursts
    /// outstanding.
    pub(crate) fn new(port: PortName, max_reads: usize, max_writes: usize) -> Self {
        Self {
            port,
            max_reads,
            max_writes,
            held: Held::default(),
            w_due: VecDeque::new(),
            w_beats: 0,
            w_early: VecDeque::new(),
            b_due: vec![0; 256],
            writes: 0,
            r_due: vec![VecDeque::new(); 256],
            reads: 0,
        }
    }

    /// Forgets every burst (reset of the port).
    pub(crate) fn clear(&mut self) {
        *self = Self::new(self.port, self.max_reads, self.max_writes);
    }

    /// Checks the beats of one cycle; the first rule broken is returned.
    pub(crate) fn observe(&mut self, cycle: u64, s: &Signals) -> Result<(), AxiViolation> {
        let port = self.port;
        let err = |channel, (field, rule)| AxiViolation { cycle, port, channel, field, rule };
        handshake(&mut self.held.aw, &s.aw, Channel::Aw).map_err(|e| err(Channel::Aw, e))?;
        handshake(&mut self.held.w, &s.w, Channel::W).map_err(|e| err(Channel::W, e))?;
        handshake(&mut self.held.b, &s.b, Channel::B).map_err(|e| err(Channel::B, e))?;
        handshake(&mut self.held.ar, &s.ar, Channel::Ar).map_err(|e| err(Channel::Ar, e))?;
        handshake(&mut self.held.r, &s.r, Channel::R).map_err(|e| err(Channel::R, e))?;
        // Responses first: a burst whose last beat completes at this edge frees its place
        // before a new address is counted (both ends see the same edge).
        if fire(&s.r) {
            self.r_beat(&s.r.beat).map_err(|e| err(Channel::R, e))?;
        }
        if fire(&s.b) {
            self.b_beat(&s.b.beat).map_err(|e| err(Channel::B, e))?;
        }
        if fire(&s.ar) {
            self.ar_beat(&s.ar.beat).map_err(|e| err(Channel::Ar, e))?;
        }
        if fire(&s.aw) {
            self.aw_beat(&s.aw.beat).map_err(|e| err(Channel::Aw, e))?;
        }
        if fire(&s.w) {
            self.w_beat(s.w.beat.last).map_err(|e| err(Channel::W, e))?;
        }
        Ok(())
    }

    fn ar_beat(&mut self, a: &AddrBeat) -> Result<(), (&'static str, Rule)> {
        burst_rules(a, ["arsize", "arburst", "araddr"])?;
        if self.reads >= self.max_reads {
            return Err(("arvalid", Rule::TooManyOutstanding { limit: self.max_reads }));
        }
        self.reads += 1;
        self.r_due[usize::from(a.id)].push_back((u32::from(a.len) + 1, 0));
        Ok(())
    }

    fn r_beat(&mut self, r: &RBeat) -> Result<(), (&'static str, Rule)> {
        let due = &mut self.r_due[usize::from(r.id)];
        let Some((beats, seen)) = due.front_mut() else {
            return Err(("rid", Rule::NotOutstanding { id: r.id }));
        };
        *seen += 1;
        let (beat, beats) = (*seen, *beats);
        if r.last != (beat == beats) {
            return Err(("rlast", Rule::LastMismatch { beat, beats, last: r.last }));
        }
        if r.last {
            due.pop_front();
            self.reads -= 1;
        }
        Ok(())
    }

    fn aw_beat(&mut self, a: &AddrBeat) -> Result<(), (&'static str, Rule)> {
        burst_rules(a, ["awsize", "awburst", "awaddr"])?;
        if self.writes >= self.max_writes {
            return Err(("awvalid", Rule::TooManyOutstanding { limit: self.max_writes }));
        }
        self.writes += 1;
        let beats = u32::from(a.len) + 1;
        match self.w_early.pop_front() {
            Some(sent) if sent == beats => self.b_due[usize::from(a.id)] += 1,
            Some(sent) => return Err(("wlast", Rule::LastMismatch { beat: sent, beats, last: true })),
            None => self.w_due.push_back((a.id, beats)),
        }
        Ok(())
    }

    fn w_beat(&mut self, last: bool) -> Result<(), (&'static str, Rule)> {
        self.w_beats += 1;
        let beat = self.w_beats;
        match self.w_due.front() {
            Some(&(id, beats)) => {
                if last != (beat == beats) {
                    return Err(("wlast", Rule::LastMismatch { beat, beats, last }));
                }
                if last {
                    self.w_due.pop_front();
                    self.b_due[usize::from(id)] += 1;
                }
            }
            None if last => self.w_early.push_back(beat),
            None => {}
        }
        if last {
            self.w_beats = 0;
        }
        Ok(())
    }

    fn b_beat(&mut self, b: &BBeat) -> Result<(), (&'static str, Rule)> {
        let due = &mut self.b_due[usize::from(b.id)];
        if *due == 0 {
            return Err(("bid", Rule::NotOutstanding { id: b.id }));
        }
        *due -= 1;
        self.writes -= 1;
        Ok(())
    }
}

fn fire<T>(c: &Chan<T>) -> bool {
    c.valid && c.ready
}

/// VALID held and payload stable from a stalled beat; remembers this cycle's stall.
fn handshake<T: Payload>(held: &mut Option<T>, now: &Chan<T>, channel: Channel) -> Result<(), (&'static str, Rule)> {
    if let Some(before) = held.take() {
        if !now.valid {
            return Err((T::valid_name(channel), Rule::ValidDropped));
        }
        if let Some((field, before, after)) = before.diff(&now.beat, channel) {
            return Err((field, Rule::PayloadChanged { before, after }));
        }
    }
    if now.valid && !now.ready {
        *held = Some(now.beat);
    }
    Ok(())
}

/// INCR, full beats, within one 4 KiB page. `names`: size, burst, address fields.
fn burst_rules(a: &AddrBeat, names: [&'static str; 3]) -> Result<(), (&'static str, Rule)> {
    if a.size != FULL_BEAT_SIZE {
        return Err((names[0], Rule::Unsupported { value: a.size.into() }));
    }
    if a.burst != INCR {
        return Err((names[1], Rule::Unsupported { value: a.burst.into() }));
    }
    let beat = 1u64 << FULL_BEAT_SIZE;
    let start = a.addr & !(beat - 1);
    let bytes = (u64::from(a.len) + 1) * beat;
    if start >> 12 != (start + bytes - 1) >> 12 {
        return Err((names[2], Rule::Crosses4k { addr: a.addr, bytes }));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
