//! Driver of the NPU's DMA engine: descriptor and completion rings in host memory.
//!
//! Each channel owns a descriptor ring (32-byte `DMA_DESC` records, host-produced) and
//! a completion ring (16-byte `DMA_CPL` records, device-produced), both in DMA-mapped
//! host memory. [`Dma::submit`] writes a descriptor and rings the doorbell
//! (`DMA_DESC_TAIL`); [`Dma::completions`] collects what the engine wrote back. Every
//! record read from the device is validated before use.

use crate::device_io::{DeviceIo, IoError};
use crate::dma_buf::DmaBufError;
use crate::regs;
use crate::ring::{Producer, Ring, RingRegs, Verdict, marker};

/// Where a DMA address points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaAddr {
    /// Host memory, by IOVA.
    Host(u64),
    /// Device memory, by device-physical address.
    Device(u64),
}

/// One transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaDesc {
    /// Source (ignored for zero-fill).
    pub src: DmaAddr,
    /// Destination.
    pub dst: DmaAddr,
    /// Bytes, 1 ..= 16 MiB.
    pub len: u32,
    /// Write zeros instead of copying.
    pub zero_fill: bool,
    /// Interrupt when done.
    pub irq: bool,
    /// Software tag echoed in the completion.
    pub tag: u16,
}

impl DmaDesc {
    /// A copy of `len` bytes.
    pub fn copy(src: DmaAddr, dst: DmaAddr, len: u32, tag: u16) -> Self {
        Self { src, dst, len, zero_fill: false, irq: false, tag }
    }

    /// A zero-fill of `len` bytes at `dst`.
    pub fn zero(dst: DmaAddr, len: u32, tag: u16) -> Self {
        Self { src: DmaAddr::Device(0), dst, len, zero_fill: true, irq: false, tag }
    }

    /// The 32-byte record.
    pub fn encode(&self) -> [u8; regs::dma_desc::SIZE] {
        let mut rec = [0u8; regs::dma_desc::SIZE];
        let (src, src_host) = match self.src {
            DmaAddr::Host(a) => (a, true),
            DmaAddr::Device(a) => (a, false),
        };
        let (dst, dst_host) = match self.dst {
            DmaAddr::Host(a) => (a, true),
            DmaAddr::Device(a) => (a, false),
        };
        let mut flags = 0u64;
        for (on, bit) in [
            (self.zero_fill, regs::dma_flag::ZERO_FILL),
            (self.irq, regs::dma_flag::IRQ),
            (src_host && !self.zero_fill, regs::dma_flag::SRC_HOST),
            (dst_host, regs::dma_flag::DST_HOST),
        ] {
            if on {
                flags |= 1 << bit;
            }
        }
        regs::dma_desc::SRC.set(&mut rec, if self.zero_fill { 0 } else { src });
        regs::dma_desc::DST.set(&mut rec, dst);
        regs::dma_desc::LEN.set(&mut rec, u64::from(self.len));
        regs::dma_desc::FLAGS.set(&mut rec, flags);
        regs::dma_desc::TAG.set(&mut rec, u64::from(self.tag));
        rec
    }
}

/// Error codes of a completion (`DMA_ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaStatus {
    /// Success.
    Ok,
    /// Host-port read error (unmapped IOVA, injected).
    HostRead,
    /// Host-port write error.
    HostWrite,
    /// Device-port read error.
    DevRead,
    /// Device-port write error.
    DevWrite,
    /// The descriptor could not be fetched.
    DescFetch,
    /// Malformed descriptor.
    BadDesc,
    /// Poisoned source data.
    Poison,
}

impl DmaStatus {
    fn from_code(code: u64) -> Option<Self> {
        use regs::dma_error as e;
        Some(match code {
            e::OK => Self::Ok,
            e::HOST_RD => Self::HostRead,
            e::HOST_WR => Self::HostWrite,
            e::DEV_RD => Self::DevRead,
            e::DEV_WR => Self::DevWrite,
            e::DESC_FETCH => Self::DescFetch,
            e::BAD_DESC => Self::BadDesc,
            e::POISON => Self::Poison,
            _ => return None,
        })
    }
}

/// A validated completion record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaCompletion {
    /// Channel.
    pub channel: usize,
    /// Descriptor tag.
    pub tag: u16,
    /// Outcome.
    pub status: DmaStatus,
    /// Destination bytes written.
    pub bytes: u32,
    /// Ring index of the descriptor.
    pub index: u16,
}

/// Errors of the DMA driver.
#[derive(Debug, thiserror::Error)]
pub enum DmaError {
    /// Transport failure.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Ring memory could not be allocated.
    #[error(transparent)]
    Buffer(#[from] DmaBufError),
    /// Ring size outside 1 ..= 16 (log2 of the entry count).
    #[error("DMA ring size_log2 {size_log2} is outside 1..=16")]
    RingSize {
        /// Requested.
        size_log2: u32,
    },
    /// No such channel.
    #[error("DMA channel {channel} does not exist (the device has {count})")]
    NoChannel {
        /// Requested.
        channel: usize,
        /// Available.
        count: usize,
    },
    /// The descriptor ring is full; collect completions first.
    #[error("DMA channel {channel}: descriptor ring full ({capacity} in flight)")]
    RingFull {
        /// Channel.
        channel: usize,
        /// Descriptors the ring holds.
        capacity: usize,
    },
    /// Zero or > 16 MiB length.
    #[error("DMA length {len:#x} is outside 1 ..= 16 MiB")]
    BadLength {
        /// Requested.
        len: u32,
    },
    /// The device wrote a completion that cannot be right.
    #[error("DMA channel {channel}: malformed completion at index {slot}: {why}")]
    BadCompletion {
        /// Channel.
        channel: usize,
        /// Completion ring slot.
        slot: u16,
        /// What is wrong.
        why: String,
    },
    /// Completions did not arrive within the budget.
    #[error("DMA channel {channel}: {missing} completion(s) missing after {budget_ns} ns of device time")]
    Timeout {
        /// Channel.
        channel: usize,
        /// Outstanding descriptors.
        missing: usize,
        /// Budget.
        budget_ns: u64,
    },
}

struct Channel {
    /// Descriptor ring; its index is the host's DMA_DESC_TAIL.
    desc: Ring,
    /// Completion ring; its index is the host's DMA_CPL_HEAD.
    cpl: Ring,
    in_flight: usize,
    /// A pushed entry was committed but its doorbell failed: the device holds it for
    /// the entry at its TAIL until a later push replaces it (docs/device.md 9.3).
    stale_push: bool,
}

/// Number of channels of the v1 device.
pub const CHANNELS: usize = 3;

/// The DMA engine's rings, set up on a device.
pub struct Dma {
    channels: Vec<Channel>,
    size_log2: u32,
    push: bool,
}

impl Dma {
    /// Allocates and maps rings of 2^`size_log2` entries per channel, programs the
    /// ring registers and enables the engine (CTRL.DMA_EN).
    pub fn init<T: DeviceIo + ?Sized>(io: &mut T, size_log2: u32) -> Result<Self, DmaError> {
        if !crate::ring::SIZE_LOG2.contains(&size_log2) {
            return Err(DmaError::RingSize { size_log2 });
        }
        let mut channels = Vec::with_capacity(CHANNELS);
        for ch in 0..CHANNELS as u32 {
            let at = |r: crate::Reg| r.at(ch).unwrap_or(r.offset);
            let desc_regs = RingRegs {
                base: at(regs::DMA_DESC_BASE_LO),
                size_log2: at(regs::DMA_DESC_SIZE_LOG2),
                head: at(regs::DMA_DESC_HEAD),
                tail: at(regs::DMA_DESC_TAIL),
            };
            let cpl_regs = RingRegs {
                base: at(regs::DMA_CPL_BASE_LO),
                size_log2: at(regs::DMA_CPL_SIZE_LOG2),
                head: at(regs::DMA_CPL_HEAD),
                tail: at(regs::DMA_CPL_TAIL),
            };
            let desc = Ring::set_up::<_, DmaError>(io, desc_regs, size_log2, regs::dma_desc::SIZE, Producer::Host)?;
            let cpl = Ring::set_up::<_, DmaError>(
                io,
                cpl_regs,
                size_log2,
                regs::dma_cpl::SIZE,
                Producer::Device { marker: marker::DMA_CPL },
            )?;
            channels.push(Channel { desc, cpl, in_flight: 0, stale_push: false });
        }
        crate::device_io::set_ctrl_bit(io, regs::ctrl::DMA_EN, true)?;
        Ok(Self { channels, size_log2, push: true })
    }

    /// Whether [`Dma::submit`] pushes the first descriptor of a submission on an idle
    /// channel through BAR0 (DMA_PUSH), so the device starts it without fetching it from
    /// the ring. On after [`Dma::init`]; the NPU driver sets it from `NpuConfig::push`
    /// (off by default: nine uncached stores cost a board more than the fetch).
    pub fn set_push(&mut self, on: bool) {
        self.push = on;
    }

    fn mask(&self) -> u16 {
        ((1u32 << self.size_log2) - 1) as u16
    }

    fn channel(&mut self, channel: usize) -> Result<&mut Channel, DmaError> {
        self.channels.get_mut(channel).ok_or(DmaError::NoChannel { channel, count: CHANNELS })
    }

    /// Descriptors submitted on `channel` whose completion has not been collected.
    pub fn in_flight(&self, channel: usize) -> usize {
        self.channels.get(channel).map_or(0, |c| c.in_flight)
    }

    /// Queues descriptors on `channel` and rings the doorbell once. On an error the
    /// device was handed none of them (a failed write is taken as not delivered) and
    /// the ring and [`Dma::in_flight`] are as before.
    pub fn submit<T: DeviceIo + ?Sized>(
        &mut self,
        io: &mut T,
        channel: usize,
        descs: &[DmaDesc],
    ) -> Result<(), DmaError> {
        let mask = self.mask();
        let capacity = usize::from(mask);
        for d in descs {
            if d.len == 0 || d.len > 1 << 24 {
                return Err(DmaError::BadLength { len: d.len });
            }
        }
        let push = self.push;
        let ch = self.channel(channel)?;
        if descs.is_empty() {
            return Ok(());
        }
        if ch.in_flight + descs.len() > capacity {
            return Err(DmaError::RingFull { channel, capacity });
        }
        // An idle channel has no fetch outstanding, so it takes a pushed first entry
        // (docs/device.md 9.3); behind busy ones the ring is as quick. A push committed
        // by a submission whose doorbell failed is replaced by pushing again.
        let push_first = (push || ch.stale_push) && ch.in_flight == 0;
        let pushed = push_first.then(|| descs.first()).flatten().map(DmaDesc::encode);
        let mut tail = ch.desc.index;
        for d in descs {
            let slot = usize::from(tail & mask);
            ch.desc.buf.write(slot * regs::dma_desc::SIZE, &d.encode())?;
            tail = tail.wrapping_add(1) & mask;
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        if let Some(rec) = pushed {
            // The same record as in the ring; word 7 commits it at the device's TAIL.
            crate::device_io::write_window(io, regs::DMA_PUSH, channel as u32 * 8, &rec)?;
            // Committed (word 7 went out): until a doorbell takes it, it names the
            // entry at the device's TAIL, which the next submission rewrites.
            ch.stale_push = true;
        }
        // Only a doorbell that reached the device hands it the entries: a failed one
        // leaves the ring index and the count in flight as they were, so the next
        // submission rewrites these slots and no entry of this one ever runs.
        io.write32(regs::DMA_DESC_TAIL.at(channel as u32).unwrap_or(0), u32::from(tail))?;
        ch.desc.index = tail;
        ch.in_flight += descs.len();
        ch.stale_push = false;
        Ok(())
    }

    /// Collects the completions the device has written on `channel` (possibly none):
    /// found in host memory by their free markers (no MMIO read; [`crate::ring`]),
    /// checked, then DMA_CPL_HEAD is written (posted). A record that breaks a rule stays
    /// in the ring: the completions before it are returned, the error by the next call.
    pub fn completions<T: DeviceIo + ?Sized>(
        &mut self,
        io: &mut T,
        channel: usize,
    ) -> Result<Vec<DmaCompletion>, DmaError> {
        let size = u32::from(self.mask()) + 1;
        let ch = self.channel(channel)?;
        let in_flight = &mut ch.in_flight;
        let mut out = Vec::new();
        let result = ch.cpl.consume(io, |slot, rec| {
            let field = |f: crate::Field| f.get(rec).unwrap_or(0);
            let bad = |why: String| Verdict::Keep(DmaError::BadCompletion { channel, slot, why });
            let Some(status) = DmaStatus::from_code(field(regs::dma_cpl::ERROR)) else {
                return bad(format!("unknown error code {}", field(regs::dma_cpl::ERROR)));
            };
            let index = field(regs::dma_cpl::INDEX);
            if index >= u64::from(size) {
                return bad(format!("descriptor index {index} outside the ring"));
            }
            if *in_flight == 0 {
                return bad("completion without a descriptor in flight".into());
            }
            out.push(DmaCompletion {
                channel,
                tag: field(regs::dma_cpl::TAG) as u16,
                status,
                bytes: field(regs::dma_cpl::BYTES) as u32,
                index: index as u16,
            });
            *in_flight -= 1;
            Verdict::Take
        });
        match result {
            Ok(()) => Ok(out),
            Err(e) if out.is_empty() => Err(e),
            // The good completions before a bad record are handed out now; the bad
            // record stays and fails the next call.
            Err(_) => Ok(out),
        }
    }

    /// Waits until every descriptor submitted on the given channels has completed, or
    /// until a completion reports an error, letting device time pass while it polls the
    /// completion rings in host memory ([`DeviceIo::wait_host`]; no MMIO read); returns
    /// the completions collected, in arrival order per channel. After an error it also
    /// waits (reading DMA_CH_STATUS, the error path's MMIO reads) until the channel is
    /// HALTED — later descriptors discarded, DESC_HEAD after the failed one — so that
    /// [`Dma::resume`] or a rewound TAIL takes effect (§9.4).
    pub fn wait_idle<T: DeviceIo + ?Sized>(
        &mut self,
        io: &mut T,
        channels: &[usize],
        budget_ns: u64,
    ) -> Result<Vec<DmaCompletion>, DmaError> {
        let start = io.now_ns();
        let mut all = Vec::new();
        loop {
            for &c in channels {
                all.extend(self.completions(io, c)?);
            }
            let pending: usize = channels.iter().map(|&c| self.in_flight(c)).sum();
            let failed: Vec<usize> = all.iter().filter(|c| c.status != DmaStatus::Ok).map(|c| c.channel).collect();
            if !failed.is_empty() {
                for c in failed {
                    wait_halted(io, c, start, budget_ns)?;
                }
                return Ok(all);
            }
            if pending == 0 {
                return Ok(all);
            }
            let waited = io.now_ns().saturating_sub(start);
            if waited > budget_ns {
                let channel = channels.iter().copied().find(|&c| self.in_flight(c) > 0).unwrap_or(0);
                return Err(DmaError::Timeout { channel, missing: pending, budget_ns });
            }
            let chs = &self.channels;
            let any = &mut || channels.iter().any(|&c| chs.get(c).is_some_and(|ch| ch.cpl.has_record()));
            io.wait_host(budget_ns - waited + 1, any)?;
        }
    }

    /// After a soft reset (§13) every ring index is 0 and the device forgot the
    /// descriptors in flight: start again at index 0 (the rings stay programmed).
    /// Returns how many descriptors were in flight (now void).
    pub fn after_soft_reset(&mut self) -> usize {
        let mut lost = 0;
        for ch in &mut self.channels {
            lost += ch.in_flight;
            ch.desc.restart();
            ch.cpl.restart();
            ch.in_flight = 0;
            // A soft reset forgets committed pushes (docs/device.md 9.3).
            ch.stale_push = false;
        }
        lost
    }

    /// After an error completion: continue with the channel's next descriptor.
    pub fn resume<T: DeviceIo + ?Sized>(&mut self, io: &mut T, channel: usize) -> Result<(), DmaError> {
        self.channel(channel)?;
        // The error completion can be seen before the channel halts, and a RESUME that
        // reaches a channel not yet halted has no effect (§9.4).
        wait_halted(io, channel, io.now_ns(), RESUME_BUDGET_NS)?;
        io.write32(regs::DMA_CH_CTRL.at(channel as u32).unwrap_or(0), 1 << regs::dma_ch_ctrl::RESUME.lsb)?;
        Ok(())
    }

    /// Unmaps the rings (call before dropping if the device stays in use).
    pub fn release<T: DeviceIo + ?Sized>(self, io: &mut T) -> Result<(), DmaError> {
        crate::device_io::set_ctrl_bit(io, regs::ctrl::DMA_EN, false)?;
        for ch in &self.channels {
            io.dma_unmap(ch.desc.iova)?;
            io.dma_unmap(ch.cpl.iova)?;
        }
        Ok(())
    }
}

/// Waits until channel `channel` reads HALTED (it does once its error completion is
/// written and nothing else is in flight), within `budget_ns` of `start`.
fn wait_halted<T: DeviceIo + ?Sized>(io: &mut T, channel: usize, start: u64, budget_ns: u64) -> Result<(), DmaError> {
    let status = regs::DMA_CH_STATUS.at(channel as u32).unwrap_or(0);
    while regs::dma_ch_status::HALTED.get32(io.read32(status)?) == 0 {
        if io.now_ns().saturating_sub(start) > budget_ns {
            return Err(DmaError::Timeout { channel, missing: 0, budget_ns });
        }
        io.advance(HALT_POLL_NS)?;
    }
    Ok(())
}

/// Step between DMA_CH_STATUS reads while a failed channel drains, ns.
const HALT_POLL_NS: u64 = 200;

/// How long [`Dma::resume`] waits for the channel to halt, ns of device time.
const RESUME_BUDGET_NS: u64 = 10_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_io::FakeIo;

    /// Rings on a fake device, with the completion ring's IOVA.
    fn setup() -> (FakeIo, Dma, u64) {
        let mut io = FakeIo::new();
        let dma = Dma::init(&mut io, 3).unwrap();
        let cpl_iova = u64::from(io.regs[&regs::DMA_CPL_BASE_LO.offset])
            | u64::from(io.regs[&(regs::DMA_CPL_BASE_LO.offset + 4)]) << 32;
        (io, dma, cpl_iova)
    }

    fn cpl(tag: u16, error: u8, bytes: u32, index: u16) -> [u8; 16] {
        let mut r = [0u8; 16];
        r[0..2].copy_from_slice(&tag.to_le_bytes());
        r[2] = error;
        r[4..8].copy_from_slice(&bytes.to_le_bytes());
        r[8..10].copy_from_slice(&index.to_le_bytes());
        r
    }

    fn one_descriptor(io: &mut FakeIo, dma: &mut Dma) {
        dma.submit(io, 0, &[DmaDesc::copy(DmaAddr::Host(0x1000), DmaAddr::Device(0), 64, 5)]).unwrap();
    }

    #[test]
    fn a_valid_completion_is_collected_and_acknowledged() {
        let (mut io, mut dma, cpl_iova) = setup();
        one_descriptor(&mut io, &mut dma);
        io.device_write(cpl_iova, &cpl(5, 0, 64, 0));
        io.regs.insert(regs::DMA_CPL_TAIL.offset, 1);
        let c = dma.completions(&mut io, 0).unwrap();
        assert_eq!(c, [DmaCompletion { channel: 0, tag: 5, status: DmaStatus::Ok, bytes: 64, index: 0 }]);
        assert_eq!(io.regs[&regs::DMA_CPL_HEAD.offset], 1, "CPL_HEAD written back");
        assert_eq!(dma.in_flight(0), 0);
    }

    #[test]
    fn malformed_completions_from_a_misbehaving_device_are_refused() {
        let (mut io, mut dma, cpl_iova) = setup();
        // A completion although nothing was submitted.
        io.device_write(cpl_iova, &cpl(1, 0, 64, 0));
        io.regs.insert(regs::DMA_CPL_TAIL.offset, 1);
        let err = dma.completions(&mut io, 0).unwrap_err();
        assert!(err.to_string().contains("completion without a descriptor in flight"), "{err}");

        let (mut io, mut dma, cpl_iova) = setup();
        one_descriptor(&mut io, &mut dma);
        io.device_write(cpl_iova, &cpl(5, 0x77, 64, 0));
        io.regs.insert(regs::DMA_CPL_TAIL.offset, 1);
        let err = dma.completions(&mut io, 0).unwrap_err();
        assert!(err.to_string().contains("unknown error code 119"), "{err}");
        assert_eq!(dma.in_flight(0), 1, "nothing consumed from a bad record");

        let (mut io, mut dma, cpl_iova) = setup();
        one_descriptor(&mut io, &mut dma);
        io.device_write(cpl_iova, &cpl(5, 0, 64, 200));
        io.regs.insert(regs::DMA_CPL_TAIL.offset, 1);
        let err = dma.completions(&mut io, 0).unwrap_err();
        assert!(err.to_string().contains("descriptor index 200 outside the ring"), "{err}");
    }

    proptest::proptest! {
        /// A misbehaving device writes arbitrary completion records and an arbitrary
        /// tail: the driver never panics, never consumes more completions than it has
        /// descriptors in flight, and every completion it accepts is well-formed.
        #[test]
        fn arbitrary_completion_rings_never_corrupt_the_driver(
            submitted in 0usize..8,
            tail in 0u32..12,
            ring in proptest::collection::vec(proptest::array::uniform16(proptest::prelude::any::<u8>()), 8),
        ) {
            let (mut io, mut dma, cpl_iova) = setup();
            for _ in 0..submitted.min(7) {
                one_descriptor(&mut io, &mut dma);
            }
            for (slot, rec) in ring.iter().enumerate() {
                io.device_write(cpl_iova + slot as u64 * 16, rec);
            }
            io.regs.insert(regs::DMA_CPL_TAIL.offset, tail);
            let before = dma.in_flight(0);
            match dma.completions(&mut io, 0) {
                Ok(c) => {
                    proptest::prop_assert!(c.len() <= before);
                    proptest::prop_assert_eq!(dma.in_flight(0), before - c.len());
                    // Completion k is slot k (the head starts at 0), exactly as written.
                    for (k, x) in c.iter().enumerate() {
                        let rec = &ring[k];
                        proptest::prop_assert!(x.index < 8, "index {} outside the ring", x.index);
                        proptest::prop_assert_eq!(x.tag, u16::from_le_bytes([rec[0], rec[1]]));
                        proptest::prop_assert_eq!(Some(x.status), DmaStatus::from_code(u64::from(rec[2])));
                        proptest::prop_assert_eq!(x.index, u16::from_le_bytes([rec[8], rec[9]]));
                    }
                }
                Err(_) => proptest::prop_assert!(dma.in_flight(0) <= before),
            }
        }
    }

    #[test]
    fn bad_submissions_are_typed_errors() {
        let (mut io, mut dma, _) = setup();
        let d = DmaDesc::copy(DmaAddr::Host(0x1000), DmaAddr::Device(0), 64, 1);
        assert!(matches!(dma.submit(&mut io, 3, &[d]), Err(DmaError::NoChannel { channel: 3, count: 3 })));
        let zero = DmaDesc { len: 0, ..d };
        assert!(matches!(dma.submit(&mut io, 0, &[zero]), Err(DmaError::BadLength { len: 0 })));
        let huge = DmaDesc { len: (1 << 24) + 1, ..d };
        assert!(matches!(dma.submit(&mut io, 0, &[huge]), Err(DmaError::BadLength { .. })));
        assert!(matches!(dma.submit(&mut io, 0, &[d; 8]), Err(DmaError::RingFull { channel: 0, capacity: 7 })));
        assert_eq!(dma.in_flight(0), 0, "a refused submission queues nothing");
        dma.submit(&mut io, 0, &[d; 7]).unwrap();
        let err = dma.wait_idle(&mut io, &[0], 10_000).unwrap_err();
        assert!(matches!(err, DmaError::Timeout { channel: 0, missing: 7, budget_ns: 10_000 }), "{err}");
    }

    /// The fake device behind a transport whose writes to `[lo, hi)` fail while `inj`
    /// holds the rule.
    fn failing_writes(io: FakeIo, lo: u32, hi: u32) -> (crate::inject::FaultyIo<FakeIo>, gmem_host::inject::Injector) {
        let inj = crate::inject::injector(1);
        let io = crate::inject::FaultyIo::new(io, inj.clone());
        let rule = gmem_host::inject::Trigger::Range { lo: u64::from(lo), hi: u64::from(hi) };
        inj.add("io:write32", rule).unwrap();
        (io, inj)
    }

    /// Word `i` of channel 0's push window as the fake device last saw it.
    fn pushed_word(io: &mut crate::inject::FaultyIo<FakeIo>, i: u32) -> u32 {
        io.inner().regs[&regs::DMA_PUSH.at(i).unwrap()]
    }

    #[test]
    fn a_failed_doorbell_hands_the_device_nothing_and_the_next_submission_replaces_it() {
        let (fake, mut dma, _) = setup();
        let tail = regs::DMA_DESC_TAIL.offset;
        let (mut io, inj) = failing_writes(fake, tail, tail + 4);
        let a = DmaDesc::copy(DmaAddr::Host(0xa000), DmaAddr::Device(0), 64, 1);
        let b = DmaDesc::copy(DmaAddr::Host(0xb000), DmaAddr::Device(0x1000), 64, 2);
        assert!(matches!(dma.submit(&mut io, 0, &[a, a]), Err(DmaError::Io(_))));
        assert_eq!(dma.in_flight(0), 0, "nothing in flight after a failed doorbell");
        assert_eq!(pushed_word(&mut io, 0), 0xa000, "A was pushed (and committed) before the doorbell failed");
        // Even with pushes off, the next submission replaces the committed push of A.
        dma.set_push(false);
        inj.clear();
        dma.submit(&mut io, 0, &[b]).unwrap();
        assert_eq!(io.inner().regs[&tail], 1, "the doorbell hands the device B alone");
        assert_eq!(dma.in_flight(0), 1);
        let mut slot = [0u8; regs::dma_desc::SIZE];
        dma.channels[0].desc.buf.read(0, &mut slot).unwrap();
        assert_eq!(slot, b.encode(), "B took A's ring slot");
        assert_eq!(pushed_word(&mut io, 0), 0xb000, "and A's committed push");
        // Once a doorbell went out, pushes are off again as asked.
        let pushes = io.inner().log.len();
        dma.submit(&mut io, 0, &[a]).unwrap();
        assert_eq!(io.inner().log.len(), pushes + 1, "a doorbell only: {:?}", &io.inner().log[pushes..]);
    }

    #[test]
    fn a_failed_completion_head_write_is_written_again_by_the_next_collection() {
        let (mut fake, mut dma, cpl_iova) = setup();
        one_descriptor(&mut fake, &mut dma);
        fake.device_write(cpl_iova, &cpl(5, 0, 64, 0));
        let head = regs::DMA_CPL_HEAD.offset;
        let (mut io, inj) = failing_writes(fake, head, head + 4);
        let got = dma.completions(&mut io, 0).unwrap();
        assert_eq!(got.len(), 1, "the completion is handed out although its HEAD write failed");
        assert_eq!(io.inner().regs.get(&head).copied().unwrap_or(0), 0, "the device did not see HEAD move");
        inj.clear();
        assert!(dma.completions(&mut io, 0).unwrap().is_empty());
        assert_eq!(io.inner().regs[&head], 1, "HEAD written again without a new record");
        let writes = io.inner().log.len();
        dma.completions(&mut io, 0).unwrap();
        assert_eq!(io.inner().log.len(), writes, "and not again once it went out");
    }

    #[test]
    fn descriptor_encoding_matches_the_record_layout() {
        let d = DmaDesc {
            src: DmaAddr::Host(0x1234_5000),
            dst: DmaAddr::Device(0x40_0000),
            len: 4096,
            zero_fill: false,
            irq: true,
            tag: 0xBEEF,
        };
        let rec = d.encode();
        assert_eq!(u64::from_le_bytes(rec[0..8].try_into().unwrap()), 0x1234_5000);
        assert_eq!(u64::from_le_bytes(rec[8..16].try_into().unwrap()), 0x40_0000);
        assert_eq!(u32::from_le_bytes(rec[16..20].try_into().unwrap()), 4096);
        assert_eq!(u16::from_le_bytes(rec[20..22].try_into().unwrap()), 0b0110, "IRQ + SRC_HOST");
        assert_eq!(u16::from_le_bytes(rec[22..24].try_into().unwrap()), 0xBEEF);
        assert_eq!(&rec[24..], &[0u8; 8]);
        let z = DmaDesc::zero(DmaAddr::Host(0x2000), 10, 1).encode();
        assert_eq!(u16::from_le_bytes(z[20..22].try_into().unwrap()), 0b1001, "ZERO_FILL + DST_HOST");
    }
}
