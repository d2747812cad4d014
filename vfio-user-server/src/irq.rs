//! Interrupt delivery: the RTL's `irq_o` lines to the client's eventfds, as MSI-X,
//! MSI or INTx, whichever the client set up with SET_IRQS.
//!
//! - **MSI-X** (index 2): a rising edge of line i writes vector i's eventfd while the
//!   capability is enabled and not function-masked; per-vector masks live in the
//!   client's emulated table.
//! - **MSI** (index 1): a rising edge of line i writes vector min(i, n - 1), n being the
//!   vectors the client gave eventfds for; a vector masked in the capability's mask
//!   bits is held pending (the pending bits) and sent when unmasked.
//! - **INTx** (index 0): level-triggered and automasked, as kernel vfio-pci does it:
//!   while any line is high and INTx is neither masked nor disabled (command bit 10)
//!   one message is sent and the line masks itself; the client's UNMASK re-arms it
//!   (a line still high sends again at once). The status register's interrupt bit
//!   follows the level.

use crate::VfioUserError;
use crate::config::{MSI_VECTORS, PciConfig, VECTORS};
use std::fs::File;
use std::io::Write;
use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_ACTION_UNMASK,
    VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_INTX_IRQ_INDEX,
    VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
};

/// Vectors per IRQ index (VFIO numbering: INTx, MSI, MSI-X); other indices have none.
pub const fn vectors(index: u32) -> u32 {
    match index {
        VFIO_PCI_INTX_IRQ_INDEX => 1,
        VFIO_PCI_MSI_IRQ_INDEX => MSI_VECTORS,
        VFIO_PCI_MSIX_IRQ_INDEX => VECTORS as u32,
        _ => 0,
    }
}

/// The client's interrupt set-up and the delivery state.
#[derive(Debug, Default)]
pub(crate) struct Irqs {
    /// Eventfd per vector, per index (INTx, MSI, MSI-X).
    fds: [Vec<Option<File>>; 3],
    /// INTx masked (by the client, or automatically after a message).
    intx_masked: bool,
    /// MSI vectors that fired while masked.
    msi_pending: u32,
    /// Lines at the last delivery (rising edges send MSI/MSI-X messages).
    last: u8,
    /// Messages sent.
    pub(crate) signalled: u64,
}

impl Irqs {
    pub(crate) fn new() -> Self {
        Self { fds: [0, 1, 2].map(|i| (0..vectors(i)).map(|_| None).collect()), ..Self::default() }
    }

    /// Back to the state after reset: no pending, unmasked; eventfds stay (a function
    /// reset does not undo VFIO's interrupt set-up).
    pub(crate) fn reset(&mut self) {
        self.intx_masked = false;
        self.msi_pending = 0;
        self.last = 0;
    }

    fn send(fd: &mut Option<File>, signalled: &mut u64) -> bool {
        let Some(f) = fd else { return false };
        // An eventfd write only fails if the counter would overflow: the client then
        // has an unread interrupt anyway.
        let _ = f.write_all(&1u64.to_le_bytes());
        *signalled += 1;
        true
    }

    /// Delivers what the lines `now` call for, given the configuration space.
    pub(crate) fn deliver(&mut self, now: u8, cfg: &mut PciConfig) {
        let rising = now & !self.last;
        self.last = now;
        let [intx, msi, msix] = &mut self.fds;
        if rising != 0 && cfg.msix_enabled() {
            for (i, fd) in msix.iter_mut().enumerate() {
                if rising >> i & 1 == 1 {
                    Self::send(fd, &mut self.signalled);
                }
            }
        }
        let msi_n = msi.iter().rposition(Option::is_some).map_or(0, |p| p as u32 + 1);
        if msi_n > 0 {
            for line in (0..8).filter(|i| rising >> i & 1 == 1) {
                let v = line.min(msi_n - 1);
                self.msi_pending |= 1 << v;
            }
            for v in 0..msi_n {
                if self.msi_pending >> v & 1 == 1 && !cfg.msi_masked(v) {
                    self.msi_pending &= !(1 << v);
                    Self::send(&mut msi[v as usize], &mut self.signalled);
                }
            }
            cfg.set_msi_pending(self.msi_pending);
        }
        cfg.set_intx_status(now != 0);
        if now != 0 && !self.intx_masked && !cfg.intx_disabled() && Self::send(&mut intx[0], &mut self.signalled) {
            self.intx_masked = true;
        }
    }

    /// SET_IRQS: eventfds to trigger or none to stop (any index), and INTx mask/unmask.
    /// Mask/unmask of MSI and MSI-X vectors is the client's (its emulated capability)
    /// and accepted without effect.
    pub(crate) fn set(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> Result<(), VfioUserError> {
        let bad = |reason| VfioUserError::BadIrqs { index, flags, start, count, reason };
        let action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        let Some(slots) = self.fds.get_mut(index as usize) else {
            return if count == 0 { Ok(()) } else { Err(bad("the device has no such vectors")) };
        };
        let range = start as usize..start as usize + count as usize;
        if range.end > slots.len() {
            return Err(bad("vector beyond the index's count"));
        }
        if !action.is_power_of_two() || !data.is_power_of_two() {
            return Err(bad("exactly one action and one data type"));
        }
        if action != VFIO_IRQ_SET_ACTION_TRIGGER {
            if data != VFIO_IRQ_SET_DATA_NONE || !fds.is_empty() {
                return Err(bad("mask and unmask take no eventfds here"));
            }
            if index == VFIO_PCI_INTX_IRQ_INDEX && count > 0 {
                self.intx_masked = action == VFIO_IRQ_SET_ACTION_MASK;
            } else if action != VFIO_IRQ_SET_ACTION_MASK && action != VFIO_IRQ_SET_ACTION_UNMASK {
                return Err(bad("unknown action"));
            }
            // An unmasked INTx line still high sends at the next delivery.
            return Ok(());
        }
        match data {
            VFIO_IRQ_SET_DATA_NONE if count == 0 => slots.iter_mut().for_each(|f| *f = None),
            VFIO_IRQ_SET_DATA_NONE => slots[range].iter_mut().for_each(|f| *f = None),
            VFIO_IRQ_SET_DATA_EVENTFD if fds.len() == count as usize => {
                for (slot, f) in slots[range].iter_mut().zip(fds) {
                    *slot = Some(f);
                }
            }
            VFIO_IRQ_SET_DATA_EVENTFD if fds.is_empty() => slots[range].iter_mut().for_each(|f| *f = None),
            VFIO_IRQ_SET_DATA_EVENTFD => return Err(bad("eventfd count differs from the vector count")),
            _ => return Err(bad("only eventfd triggers are supported")),
        }
        if index == VFIO_PCI_INTX_IRQ_INDEX {
            self.intx_masked = false;
        }
        // A line already high gets its message now (level semantics of INT_STATUS).
        self.last = 0;
        Ok(())
    }

    /// True if vector `v` of `index` has an eventfd (tests).
    #[cfg(test)]
    pub(crate) fn has(&self, index: u32, v: usize) -> bool {
        self.fds.get(index as usize).and_then(|s| s.get(v)).is_some_and(Option::is_some)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    fn eventfd() -> File {
        // SAFETY: eventfd takes no pointers; the descriptor is ours.
        unsafe { File::from_raw_fd(libc::eventfd(0, libc::EFD_NONBLOCK)) }
    }

    fn count(f: &File) -> u64 {
        let mut b = [0u8; 8];
        match (&*f).read(&mut b) {
            Ok(8) => u64::from_le_bytes(b),
            _ => 0,
        }
    }

    const TRIG: u32 = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;

    #[test]
    fn intx_is_level_triggered_and_automasked() {
        let mut irqs = Irqs::new();
        let mut cfg = PciConfig::new();
        let fd = eventfd();
        irqs.set(VFIO_PCI_INTX_IRQ_INDEX, TRIG, 0, 1, vec![fd.try_clone().unwrap()]).unwrap();
        irqs.deliver(0b100, &mut cfg);
        irqs.deliver(0b100, &mut cfg);
        irqs.deliver(0b110, &mut cfg);
        assert_eq!(count(&fd), 1, "one message, then masked until the client unmasks");
        let unmask = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK;
        irqs.set(VFIO_PCI_INTX_IRQ_INDEX, unmask, 0, 1, vec![]).unwrap();
        irqs.deliver(0b010, &mut cfg);
        assert_eq!(count(&fd), 1, "a line still high sends again after unmask");
        irqs.set(VFIO_PCI_INTX_IRQ_INDEX, unmask, 0, 1, vec![]).unwrap();
        irqs.deliver(0, &mut cfg);
        assert_eq!(count(&fd), 0, "low: nothing");
        assert!(cfg.write(4, &0x0400u16.to_le_bytes()), "INTx disable");
        irqs.deliver(1, &mut cfg);
        assert_eq!(count(&fd), 0, "disabled by the command register");
        assert_eq!(irqs.signalled, 2);
    }

    #[test]
    fn msi_folds_lines_into_the_enabled_vectors_and_holds_masked_ones() {
        let mut irqs = Irqs::new();
        let mut cfg = PciConfig::new();
        let fds: Vec<File> = (0..2).map(|_| eventfd()).collect();
        let clones = fds.iter().map(|f| f.try_clone().unwrap()).collect();
        irqs.set(VFIO_PCI_MSI_IRQ_INDEX, TRIG, 0, 2, clones).unwrap();
        irqs.deliver(0b0000_0001, &mut cfg);
        irqs.deliver(0b0100_0001, &mut cfg);
        assert_eq!((count(&fds[0]), count(&fds[1])), (1, 1), "line 0 -> vector 0, line 6 -> vector 1");
        assert!(cfg.write(0x60, &2u32.to_le_bytes()), "mask vector 1");
        irqs.deliver(0, &mut cfg);
        irqs.deliver(0b0010_0000, &mut cfg);
        assert_eq!(count(&fds[1]), 0, "masked: pending");
        let mut b = [0u8; 4];
        assert!(cfg.read(0x64, &mut b));
        assert_eq!(u32::from_le_bytes(b), 2, "pending bit");
        assert!(cfg.write(0x60, &0u32.to_le_bytes()));
        irqs.deliver(0b0010_0000, &mut cfg);
        assert_eq!(count(&fds[1]), 1, "sent when unmasked");
    }

    #[test]
    fn msix_needs_the_enable_bit_and_bad_set_ups_are_refused() {
        let mut irqs = Irqs::new();
        let mut cfg = PciConfig::new();
        let fd = eventfd();
        irqs.set(VFIO_PCI_MSIX_IRQ_INDEX, TRIG, 3, 1, vec![fd.try_clone().unwrap()]).unwrap();
        irqs.deliver(0b1000, &mut cfg);
        assert_eq!(count(&fd), 0, "MSI-X disabled in the capability");
        assert!(cfg.write(0x42, &0x8006u16.to_le_bytes()));
        irqs.deliver(0, &mut cfg);
        irqs.deliver(0b1000, &mut cfg);
        assert_eq!(count(&fd), 1);
        let e = |r: Result<(), VfioUserError>| matches!(r, Err(VfioUserError::BadIrqs { .. }));
        assert!(e(irqs.set(VFIO_PCI_MSIX_IRQ_INDEX, TRIG, 7, 1, vec![eventfd()])), "vector 7");
        assert!(e(irqs.set(VFIO_PCI_MSI_IRQ_INDEX, TRIG, 0, 9, vec![])), "9 MSI vectors");
        assert!(e(irqs.set(VFIO_PCI_INTX_IRQ_INDEX, TRIG, 0, 2, vec![])), "2 INTx lines");
        assert!(e(irqs.set(3, TRIG, 0, 1, vec![eventfd()])), "error IRQ");
        assert!(irqs.set(3, TRIG, 0, 0, vec![]).is_ok(), "nothing for an empty index is fine");
        assert!(e(irqs.set(VFIO_PCI_MSIX_IRQ_INDEX, TRIG, 0, 2, vec![eventfd()])), "fd count");
        let both = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
        assert!(e(irqs.set(VFIO_PCI_MSIX_IRQ_INDEX, both, 0, 1, vec![])), "two data types");
        let unmask_fd = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK;
        assert!(e(irqs.set(VFIO_PCI_INTX_IRQ_INDEX, unmask_fd, 0, 1, vec![eventfd()])), "unmask eventfd");
        irqs.set(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, vec![]).unwrap();
        assert!(!irqs.has(VFIO_PCI_MSIX_IRQ_INDEX, 3), "DATA_NONE with count 0 disables the index");
    }
}
