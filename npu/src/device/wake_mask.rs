//! INT_MASK while the driver sleeps on a fault record or a kernel completion: FAULT and
//! KERNEL are unmasked only for the sleep (both are polled in host memory otherwise).
//! A failed write of the polling mask is remembered and written again before the next
//! wait, so the device does not go on raising interrupts nobody sleeps on.

use crate::{DeviceIo, IoError, regs};

/// The interrupt causes a sleeping driver wakes on.
pub(super) const WAKE: u32 = 1 << regs::int_cause::FAULT | 1 << regs::int_cause::KERNEL;

/// INT_MASK as the driver keeps it.
pub(super) struct WakeMask {
    /// INT_MASK while the driver polls (FAULT and KERNEL masked).
    polling: u32,
    /// FAULT | KERNEL may be unmasked on the device: raised, and not lowered since.
    raised: bool,
}

impl WakeMask {
    /// The polling mask `polling` (FAULT and KERNEL cleared), written to the device.
    pub(super) fn init<T: DeviceIo + ?Sized>(io: &mut T, polling: u32) -> Result<Self, IoError> {
        let polling = polling & !WAKE;
        io.write32(regs::INT_MASK.offset, polling)?;
        Ok(Self { polling, raised: false })
    }

    /// Unmasks FAULT | KERNEL for a sleep. Marked before the write: a write reported
    /// failed that did land is lowered all the same.
    pub(super) fn raise<T: DeviceIo + ?Sized>(&mut self, io: &mut T) -> Result<(), IoError> {
        self.raised = true;
        io.write32(regs::INT_MASK.offset, self.polling | WAKE)
    }

    /// Masks them again; on failure they stay marked raised.
    pub(super) fn lower<T: DeviceIo + ?Sized>(&mut self, io: &mut T) -> Result<(), IoError> {
        io.write32(regs::INT_MASK.offset, self.polling)?;
        self.raised = false;
        Ok(())
    }

    /// Masks them again if an earlier lowering failed.
    pub(super) fn lower_if_raised<T: DeviceIo + ?Sized>(&mut self, io: &mut T) -> Result<(), IoError> {
        if self.raised { self.lower(io) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_io::FakeIo;
    use crate::inject::FaultyIo;

    #[test]
    fn a_failed_lowering_is_written_again_before_the_next_wait() {
        let inj = gmem_host::inject::Injector::new(1);
        let mut io = FaultyIo::new(FakeIo::new(), inj.clone());
        let mut mask = WakeMask::init(&mut io, 0xFF).unwrap();
        let at = regs::INT_MASK.offset;
        assert_eq!(io.inner().regs[&at], 0xFF & !WAKE, "polling: FAULT and KERNEL masked");
        mask.raise(&mut io).unwrap();
        assert_eq!(io.inner().regs[&at], 0xFF | WAKE);
        // The lowering write fails: the device keeps them unmasked, and the driver knows.
        inj.add_text("io:write32=count:0:1").unwrap();
        assert!(mask.lower(&mut io).is_err());
        assert_eq!(io.inner().regs[&at], 0xFF | WAKE);
        inj.clear();
        mask.lower_if_raised(&mut io).unwrap();
        assert_eq!(io.inner().regs[&at], 0xFF & !WAKE, "masked again");
        // Nothing left to lower: no write.
        let writes = io.inner().log.len();
        mask.lower_if_raised(&mut io).unwrap();
        assert_eq!(io.inner().log.len(), writes);
    }
}
