//! Checks shared by the decoders of the NPU's in-memory records (FAULT, KCPL, KDESC).
//!
//! A record the device writes is input from hardware: the driver decodes it into a
//! typed value only if every field holds a value the spec (docs/device.md §14) allows,
//! and says exactly which rule a bad record breaks — [`RecordError`], one variant per
//! reason.

use crate::fault::FaultCause;
use crate::kernel::KernelStatus;
use crate::regmap::Field;

/// Why a record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The byte slice does not have the record's size.
    #[error("{record} record must be {expected} bytes, got {got}")]
    Length {
        /// Record name (FAULT, KCPL, KDESC).
        record: &'static str,
        /// Size of the record.
        expected: usize,
        /// Size of the slice.
        got: usize,
    },
    /// A bit that no field of the record uses is set.
    #[error("{record} record: reserved bit {bit} is set")]
    ReservedBit {
        /// Record name.
        record: &'static str,
        /// Bit number, counted from bit 0 of byte 0.
        bit: u32,
    },
    /// KDESC.OPCODE is not a KERNEL_OPCODE.
    #[error("KDESC record: unknown kernel opcode {opcode:#04x}")]
    UnknownOpcode {
        /// OPCODE field.
        opcode: u8,
    },
    /// KCPL.STATUS is not a KERNEL_STATUS.
    #[error("KCPL record: unknown kernel status {status:#04x}")]
    UnknownStatus {
        /// STATUS field.
        status: u8,
    },
    /// KCPL.FAULT_VA is non-zero although the status reports no failed access.
    #[error("KCPL record: FAULT_VA is {fault_va:#x} but status {status:?} names no failed access")]
    StrayFaultVa {
        /// STATUS field (Ok or BadDesc).
        status: KernelStatus,
        /// FAULT_VA field.
        fault_va: u64,
    },
    /// FAULT.CAUSE is not a FAULT_CAUSE.
    #[error("FAULT record: unknown cause {cause:#x}")]
    UnknownCause {
        /// CAUSE field.
        cause: u16,
    },
    /// FAULT.ACCESS contradicts a cause that names the access type.
    #[error("FAULT record: cause {cause:?} but ACCESS = {}", if *write { "write" } else { "read" })]
    AccessMismatch {
        /// CAUSE field.
        cause: FaultCause,
        /// ACCESS field (true = write).
        write: bool,
    },
    /// FAULT.LEVEL above the Sv39 root level 2.
    #[error("FAULT record: LEVEL {level} is above the root level 2")]
    BadLevel {
        /// LEVEL field.
        level: u8,
    },
    /// FAULT.REQID names a unit other than the compute unit.
    #[error("FAULT record: REQID {reqid:#06x} names unit {}, not the compute unit (1)", reqid >> 8)]
    BadRequester {
        /// REQID field.
        reqid: u16,
    },
}

/// Refuses a slice whose length is not the record size.
pub(crate) fn check_len(record: &'static str, rec: &[u8], expected: usize) -> Result<(), RecordError> {
    if rec.len() == expected { Ok(()) } else { Err(RecordError::Length { record, expected, got: rec.len() }) }
}

/// Refuses a record with a set bit outside `fields` (the lowest such bit is named).
pub(crate) fn check_reserved(record: &'static str, rec: &[u8], fields: &[Field]) -> Result<(), RecordError> {
    let mut used = vec![0u8; rec.len()];
    for f in fields {
        for b in f.lsb..f.lsb + f.width {
            if let Some(byte) = used.get_mut((b / 8) as usize) {
                *byte |= 1 << (b % 8);
            }
        }
    }
    for (i, (&r, &u)) in rec.iter().zip(&used).enumerate() {
        let stray = r & !u;
        if stray != 0 {
            return Err(RecordError::ReservedBit { record, bit: i as u32 * 8 + stray.trailing_zeros() });
        }
    }
    Ok(())
}

/// Reads a field of a record whose length was checked (a field outside reads 0).
pub(crate) fn get(rec: &[u8], f: Field) -> u64 {
    f.get(rec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bits_are_found_exactly() {
        let fields = [Field { lsb: 0, width: 12 }, Field { lsb: 16, width: 8 }];
        assert_eq!(check_reserved("X", &[0xFF, 0x0F, 0x00, 0x00], &fields), Ok(()));
        assert_eq!(
            check_reserved("X", &[0x00, 0x10, 0xFF, 0x00], &fields),
            Err(RecordError::ReservedBit { record: "X", bit: 12 })
        );
        assert_eq!(
            check_reserved("X", &[0x00, 0x00, 0x00, 0x80], &fields),
            Err(RecordError::ReservedBit { record: "X", bit: 31 })
        );
        assert_eq!(check_len("X", &[0; 3], 4), Err(RecordError::Length { record: "X", expected: 4, got: 3 }));
    }
}
