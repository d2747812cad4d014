//! Types behind the generated register map (`regs.rs`): registers, fields, access kinds.

/// How software may access a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Fixed value (identification).
    Const,
    /// Driven by hardware; writes are ignored.
    ReadOnly,
    /// Storage in the CSR block.
    ReadWrite,
    /// A write triggers an action; reads return 0.
    WriteOnly,
    /// Read/write with storage in the hardware unit (e.g. error-injection counts).
    ReadWriteHw,
}

/// A register, or an array of registers, in the CSR space (BAR0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg {
    /// Name as in the register description.
    pub name: &'static str,
    /// Byte offset of element 0.
    pub offset: u32,
    /// Number of elements.
    pub count: u32,
    /// Byte distance between elements.
    pub stride: u32,
    /// Access kind.
    pub access: Access,
    /// Reset value (ReadWrite) or fixed value (Const).
    pub reset: u32,
    /// Writable bits (ReadWrite).
    pub mask: u32,
}

impl Reg {
    /// Byte offset of element `i`, or `None` past the end of the array.
    pub const fn at(self, i: u32) -> Option<u32> {
        if i < self.count { Some(self.offset + i * self.stride) } else { None }
    }
}

/// A bit field of a register (≤ 32 bits) or of a record (≤ 64 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Lowest bit.
    pub lsb: u32,
    /// Width in bits, 1..=64.
    pub width: u32,
}

impl Field {
    /// Mask of the field's width, not shifted.
    pub const fn max(self) -> u64 {
        if self.width >= 64 { u64::MAX } else { (1u64 << self.width) - 1 }
    }

    /// Extracts the field from a register value.
    pub const fn get32(self, reg: u32) -> u32 {
        ((reg as u64 >> self.lsb) & self.max()) as u32
    }

    /// Places `value` (truncated to the field width) into a register value.
    pub const fn put32(self, reg: u32, value: u32) -> u32 {
        let m = (self.max() << self.lsb) as u32;
        (reg & !m) | (((value as u64) << self.lsb) as u32 & m)
    }

    /// The bytes `[first, end)` of a record the field lies in: at most 9 (64 bits
    /// starting mid-byte), `None` if they are not all in a record of `len` bytes.
    fn span(self, len: usize) -> Option<(usize, usize)> {
        let end = (self.lsb + self.width).div_ceil(8) as usize;
        (end <= len && self.width <= 64).then_some(((self.lsb / 8) as usize, end))
    }

    /// Reads the field from a little-endian record.
    ///
    /// Returns `None` if the field does not fit in `bytes`.
    pub fn get(self, bytes: &[u8]) -> Option<u64> {
        let (first, end) = self.span(bytes.len())?;
        let mut word = [0u8; 16];
        word[..end - first].copy_from_slice(&bytes[first..end]);
        Some((u128::from_le_bytes(word) >> (self.lsb % 8)) as u64 & self.max())
    }

    /// Writes `value` (truncated to the field width) into a little-endian record.
    ///
    /// Returns `false` (and changes nothing) if the field does not fit in `bytes`.
    pub fn set(self, bytes: &mut [u8], value: u64) -> bool {
        let Some((first, end)) = self.span(bytes.len()) else { return false };
        let mut word = [0u8; 16];
        word[..end - first].copy_from_slice(&bytes[first..end]);
        let shift = self.lsb % 8;
        let mask = u128::from(self.max()) << shift;
        let merged = (u128::from_le_bytes(word) & !mask) | ((u128::from(value) << shift) & mask);
        bytes[first..end].copy_from_slice(&merged.to_le_bytes()[..end - first]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_fields_round_trip_across_byte_boundaries() {
        let f = Field { lsb: 12, width: 20 };
        let mut rec = [0xFFu8; 8];
        assert!(f.set(&mut rec, 0xABCDE));
        assert_eq!(f.get(&rec), Some(0xABCDE));
        assert_eq!(rec[0], 0xFF, "bits below the field are untouched");
        assert_eq!(rec[4..], [0xFF; 4], "bits above the field are untouched");
    }

    #[test]
    fn sixty_four_bit_field_at_offset() {
        let f = Field { lsb: 128, width: 64 };
        let mut rec = [0u8; 32];
        assert!(f.set(&mut rec, 0x0123_4567_89AB_CDEF));
        assert_eq!(f.get(&rec), Some(0x0123_4567_89AB_CDEF));
        assert_eq!(&rec[16..24], &0x0123_4567_89AB_CDEFu64.to_le_bytes());
    }

    /// The bit-at-a-time definition the word-wide `get`/`set` must match.
    fn get_bitwise(f: Field, bytes: &[u8]) -> u64 {
        (0..f.width).fold(0, |v, i| v | u64::from(bytes[((f.lsb + i) / 8) as usize] >> ((f.lsb + i) % 8) & 1) << i)
    }

    fn set_bitwise(f: Field, bytes: &mut [u8], value: u64) {
        for i in 0..f.width {
            let (byte, bit) = (((f.lsb + i) / 8) as usize, 1u8 << ((f.lsb + i) % 8));
            if value >> i & 1 == 1 { bytes[byte] |= bit } else { bytes[byte] &= !bit }
        }
    }

    #[test]
    fn word_wide_access_matches_the_bitwise_definition() {
        // Every field of a 24-byte record, over random records and values.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for lsb in 0..128 {
            for width in 1..=64 {
                let f = Field { lsb, width };
                let mut rec = [0u8; 24];
                rec.iter_mut().for_each(|b| *b = next() as u8);
                let (mut want, value) = (rec, next());
                assert_eq!(f.get(&rec), Some(get_bitwise(f, &rec)), "{f:?}");
                assert!(f.set(&mut rec, value));
                set_bitwise(f, &mut want, value);
                assert_eq!(rec, want, "{f:?} set {value:#x}");
            }
        }
    }

    #[test]
    fn field_outside_record_is_refused() {
        let f = Field { lsb: 60, width: 8 };
        let mut rec = [0u8; 8];
        assert!(!f.set(&mut rec, 1));
        assert_eq!(f.get(&rec), None);
    }

    #[test]
    fn register_field_put_and_get() {
        let f = Field { lsb: 8, width: 8 };
        assert_eq!(f.put32(0xFFFF_FFFF, 0x12), 0xFFFF_12FF);
        assert_eq!(f.get32(0xFFFF_12FF), 0x12);
    }

    #[test]
    fn array_element_offsets() {
        let r = Reg { name: "X", offset: 0x200, count: 3, stride: 0x40, access: Access::ReadWrite, reset: 0, mask: 0 };
        assert_eq!(r.at(2), Some(0x280));
        assert_eq!(r.at(3), None);
    }
}
