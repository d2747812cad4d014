//! PCI addresses ("BDF": domain, bus, device, function) as Linux spells them.
//!
//! sysfs names a PCI function `DDDD:BB:DD.F` (hex; `0000:01:00.0`). Users often type the
//! short `lspci` form `01:00.0`, which means domain 0; both are accepted, and
//! [`Bdf`]'s `Display` always prints the canonical long form that sysfs uses.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a PCI address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PCI address {input:?}: {reason} (expected DDDD:BB:DD.F or BB:DD.F in hex, e.g. 0000:01:00.0)")]
pub struct BdfError {
    /// What was given.
    pub input: String,
    /// Which rule it broke.
    pub reason: &'static str,
}

/// A PCI function address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// PCI segment (domain), 0..=0xffff.
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=0x1f.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl Bdf {
    /// Builds an address, checking the device and function ranges.
    pub fn new(domain: u16, bus: u8, device: u8, function: u8) -> Result<Self, BdfError> {
        let input = format!("{domain:04x}:{bus:02x}:{device:02x}.{function:x}");
        if device > 0x1f {
            return Err(BdfError { input, reason: "device number above 0x1f" });
        }
        if function > 7 {
            return Err(BdfError { input, reason: "function number above 7" });
        }
        Ok(Self { domain, bus, device, function })
    }
}

fn hex_field(input: &str, s: &str, max_digits: usize, what: &'static str) -> Result<u32, BdfError> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BdfError { input: input.to_owned(), reason: what });
    }
    // Cannot fail: at most 4 hex digits were checked above.
    u32::from_str_radix(s, 16).map_err(|_| BdfError { input: input.to_owned(), reason: what })
}

impl FromStr for Bdf {
    type Err = BdfError;

    fn from_str(input: &str) -> Result<Self, BdfError> {
        let s = input.trim();
        let err = |reason| BdfError { input: input.to_owned(), reason };
        let (rest, func) = s.rsplit_once('.').ok_or_else(|| err("missing '.' before the function number"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (dom, bus, dev) = match parts.as_slice() {
            [bus, dev] => ("0", *bus, *dev),
            [dom, bus, dev] => (*dom, *bus, *dev),
            _ => return Err(err("expected two or three ':'-separated fields before '.'")),
        };
        let domain = hex_field(input, dom, 4, "domain is not 1-4 hex digits")?;
        let bus = hex_field(input, bus, 2, "bus is not 1-2 hex digits")?;
        let device = hex_field(input, dev, 2, "device is not 1-2 hex digits")?;
        let function = hex_field(input, func, 1, "function is not one hex digit")?;
        if device > 0x1f {
            return Err(err("device number above 0x1f"));
        }
        if function > 7 {
            return Err(err("function number above 7"));
        }
        // The casts cannot truncate: the digit counts and range checks above bound them.
        Ok(Self { domain: domain as u16, bus: bus as u8, device: device as u8, function: function as u8 })
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.domain, self.bus, self.device, self.function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_long_and_short_forms_and_prints_canonically() {
        let b: Bdf = "0000:01:00.0".parse().unwrap();
        assert_eq!(b, Bdf { domain: 0, bus: 1, device: 0, function: 0 });
        let b: Bdf = "3a:1f.7".parse().unwrap();
        assert_eq!(b, Bdf { domain: 0, bus: 0x3a, device: 0x1f, function: 7 });
        assert_eq!(b.to_string(), "0000:3a:1f.7");
        let b: Bdf = "1:0:2.1".parse().unwrap();
        assert_eq!(b, Bdf::new(1, 0, 2, 1).unwrap());
        assert_eq!(b.to_string(), "0001:00:02.1");
        assert_eq!("ABCD:EF:1A.3".parse::<Bdf>().unwrap().to_string(), "abcd:ef:1a.3");
        assert_eq!(
            " 0000:00:04.0\n".parse::<Bdf>().unwrap().to_string(),
            "0000:00:04.0",
            "sysfs-style trailing newline"
        );
    }

    #[test]
    fn rejects_malformed_addresses_with_the_rule_broken() {
        let reason = |s: &str| s.parse::<Bdf>().unwrap_err().reason;
        assert_eq!(reason("0000:01:00"), "missing '.' before the function number");
        assert_eq!(reason("01.0"), "expected two or three ':'-separated fields before '.'");
        assert_eq!(reason("0:0:0:01:00.0"), "expected two or three ':'-separated fields before '.'");
        assert_eq!(reason("00000:01:00.0"), "domain is not 1-4 hex digits");
        assert_eq!(reason("0000:100:00.0"), "bus is not 1-2 hex digits");
        assert_eq!(reason("0000:0g:00.0"), "bus is not 1-2 hex digits");
        assert_eq!(reason("0000:01:20.0"), "device number above 0x1f");
        assert_eq!(reason("0000:01:00.8"), "function number above 7");
        assert_eq!(reason("0000:01:00.10"), "function is not one hex digit");
        assert_eq!(reason("0000:01:+1.0"), "device is not 1-2 hex digits");
        let e = "xyz".parse::<Bdf>().unwrap_err();
        assert_eq!(e.input, "xyz");
        assert!(e.to_string().contains("e.g. 0000:01:00.0"), "{e}");
        assert_eq!(Bdf::new(0, 0, 0x20, 0).unwrap_err().reason, "device number above 0x1f");
        assert_eq!(Bdf::new(0, 0, 0, 8).unwrap_err().reason, "function number above 7");
    }
}
