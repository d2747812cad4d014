//! The register description: parsing and validation of `rtl/npu_regs.toml`.

use serde::Deserialize;
use std::collections::BTreeSet;

/// Everything that can be wrong with the register description.
#[derive(Debug, thiserror::Error)]
pub enum DescError {
    /// The TOML did not parse or did not match the schema.
    #[error("register description does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    /// A semantic rule was broken (overlap, range, duplicate name, ...).
    #[error("register description is invalid: {0}")]
    Invalid(String),
}

/// The whole description.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desc {
    /// Device-wide facts.
    pub device: Device,
    /// CSRs in BAR0.
    #[serde(rename = "register", default)]
    pub registers: Vec<Register>,
    /// Named constant groups.
    #[serde(rename = "constants", default)]
    pub constants: Vec<ConstGroup>,
    /// Records in host or device memory.
    #[serde(rename = "record", default)]
    pub records: Vec<Record>,
}

/// Device-wide facts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Size of the CSR space in bytes (power of two).
    pub csr_bytes: u32,
    /// Identification value.
    pub id: u32,
    /// Spec version, major part.
    pub version_major: u32,
    /// Spec version, minor part.
    pub version_minor: u32,
    /// Spec version, patch part.
    pub version_patch: u32,
}

/// How software and hardware reach a register.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Fixed value.
    Const,
    /// Driven by hardware.
    Ro,
    /// Storage in the CSR block.
    Rw,
    /// Write pulse to hardware.
    Wo,
    /// Read/write, storage in hardware.
    Hwext,
}

impl Access {
    /// Lowercase name as written in the description.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Const => "const",
            Access::Ro => "ro",
            Access::Rw => "rw",
            Access::Wo => "wo",
            Access::Hwext => "hwext",
        }
    }
}

/// One register or register array.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    /// Uppercase name.
    pub name: String,
    /// Byte offset of element 0.
    pub offset: u32,
    /// Access kind.
    pub access: Access,
    /// Number of elements (1 = plain register).
    #[serde(default = "one")]
    pub count: u32,
    /// Byte distance between elements.
    #[serde(default)]
    pub stride: u32,
    /// Reset value (rw).
    #[serde(default)]
    pub reset: u32,
    /// Writable bits (rw).
    #[serde(default)]
    pub mask: Option<u32>,
    /// Fixed value (const).
    #[serde(default)]
    pub value: Option<u32>,
    /// Read pulse to hardware.
    #[serde(default)]
    pub read_strobe: bool,
    /// A soft reset (RESET.SOFT) returns the register to its reset value (rw only).
    #[serde(default)]
    pub soft_reset: bool,
    /// Documentation.
    pub doc: String,
    /// Bit fields.
    #[serde(default)]
    pub fields: Vec<Field>,
}

fn one() -> u32 {
    1
}

impl Register {
    /// Byte offsets of every element.
    pub fn element_offsets(&self) -> Vec<u32> {
        (0..self.count).map(|i| self.offset + i * self.stride).collect()
    }
    /// Lowercase name used for SV ports.
    pub fn port(&self) -> String {
        self.name.to_lowercase()
    }
}

/// A bit field of a register or record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Uppercase name.
    pub name: String,
    /// "msb:lsb" or "n".
    pub bits: String,
    /// Documentation.
    pub doc: String,
}

impl Field {
    /// (msb, lsb), validated as numbers.
    pub fn range(&self) -> Result<(u32, u32), DescError> {
        let bad = || DescError::Invalid(format!("field {} has bad bits {:?}", self.name, self.bits));
        let (msb, lsb) = match self.bits.split_once(':') {
            Some((m, l)) => (m.trim().parse().map_err(|_| bad())?, l.trim().parse().map_err(|_| bad())?),
            None => {
                let n: u32 = self.bits.trim().parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if msb < lsb {
            return Err(bad());
        }
        Ok((msb, lsb))
    }
    /// Width in bits.
    pub fn width(&self) -> Result<u32, DescError> {
        let (m, l) = self.range()?;
        Ok(m - l + 1)
    }
}

/// A named group of constants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstGroup {
    /// Uppercase group name (prefix).
    pub name: String,
    /// Documentation.
    pub doc: String,
    /// Members.
    pub values: Vec<ConstValue>,
}

/// One constant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstValue {
    /// Uppercase name.
    pub name: String,
    /// Value.
    pub value: u64,
    /// Documentation.
    pub doc: String,
}

/// A fixed-size record in memory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Uppercase name.
    pub name: String,
    /// Size in bytes.
    pub bytes: u32,
    /// Documentation.
    pub doc: String,
    /// Fields, bit 0 = bit 0 of byte 0.
    pub fields: Vec<Field>,
}

fn invalid(msg: String) -> DescError {
    DescError::Invalid(msg)
}

/// Parses and validates the description.
pub fn parse(text: &str) -> Result<Desc, DescError> {
    let desc: Desc = toml::from_str(text)?;
    validate(&desc)?;
    Ok(desc)
}

fn check_fields(owner: &str, fields: &[Field], bits: u32) -> Result<(), DescError> {
    let mut used = vec![false; bits as usize];
    let mut names = BTreeSet::new();
    for f in fields {
        let (msb, lsb) = f.range()?;
        if msb >= bits {
            return Err(invalid(format!("{owner}.{} bits {} exceed {bits} bits", f.name, f.bits)));
        }
        if f.width()? > 64 {
            return Err(invalid(format!("{owner}.{} is wider than 64 bits", f.name)));
        }
        if !names.insert(f.name.as_str()) {
            return Err(invalid(format!("{owner} has two fields named {}", f.name)));
        }
        for b in lsb..=msb {
            if std::mem::replace(&mut used[b as usize], true) {
                return Err(invalid(format!("{owner}.{} overlaps another field at bit {b}", f.name)));
            }
        }
    }
    Ok(())
}

fn validate(d: &Desc) -> Result<(), DescError> {
    if !d.device.csr_bytes.is_power_of_two() {
        return Err(invalid("csr_bytes must be a power of two".into()));
    }
    let mut names = BTreeSet::new();
    let mut offsets = BTreeSet::new();
    for r in &d.registers {
        if !names.insert(r.name.clone()) {
            return Err(invalid(format!("duplicate name {}", r.name)));
        }
        if r.count == 0 || (r.count > 1 && r.stride < 4) {
            return Err(invalid(format!("{}: arrays need count >= 1 and stride >= 4", r.name)));
        }
        for off in r.element_offsets() {
            if off % 4 != 0 || off >= d.device.csr_bytes {
                return Err(invalid(format!("{} element at {off:#x} is unaligned or outside the CSR space", r.name)));
            }
            if !offsets.insert(off) {
                return Err(invalid(format!("{} element at {off:#x} overlaps another register", r.name)));
            }
        }
        match r.access {
            Access::Const if r.value.is_none() => return Err(invalid(format!("{}: const needs value", r.name))),
            Access::Rw if r.mask.is_none() => return Err(invalid(format!("{}: rw needs mask", r.name))),
            _ => {}
        }
        if r.access != Access::Rw && (r.mask.is_some() || r.reset != 0) {
            return Err(invalid(format!("{}: mask/reset only apply to rw registers", r.name)));
        }
        if r.soft_reset && r.access != Access::Rw {
            return Err(invalid(format!("{}: soft_reset only applies to rw registers", r.name)));
        }
        if r.read_strobe && r.access != Access::Ro {
            return Err(invalid(format!("{}: read_strobe only applies to ro registers", r.name)));
        }
        check_fields(&r.name, &r.fields, 32)?;
    }
    for g in &d.constants {
        for v in &g.values {
            if !names.insert(format!("{}_{}", g.name, v.name)) {
                return Err(invalid(format!("duplicate constant {}_{}", g.name, v.name)));
            }
        }
    }
    for rec in &d.records {
        if !names.insert(rec.name.clone()) {
            return Err(invalid(format!("duplicate record name {}", rec.name)));
        }
        check_fields(&rec.name, &rec.fields, rec.bytes * 8)?;
        for f in &rec.fields {
            if f.name == "SIZE" {
                return Err(invalid(format!(
                    "record {}: a field may not be named SIZE (the record size constant)",
                    rec.name
                )));
            }
            if !names.insert(format!("{}_{}_LSB", rec.name, f.name)) {
                return Err(invalid(format!("record field {}.{} collides with a constant", rec.name, f.name)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[device]
csr_bytes = 4096
id = 1
version_major = 1
version_minor = 0
version_patch = 0
"#;

    fn with(extra: &str) -> Result<Desc, DescError> {
        parse(&format!("{MINIMAL}{extra}"))
    }

    #[test]
    fn overlapping_registers_are_refused() {
        let err = with(
            r#"
[[register]]
name = "A"
offset = 0x10
access = "ro"
doc = "a"
[[register]]
name = "B"
offset = 0x0
count = 5
stride = 4
access = "ro"
doc = "b"
"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("B element at 0x10 overlaps"), "{err}");
    }

    #[test]
    fn overlapping_fields_are_refused() {
        let err = with(
            r#"
[[register]]
name = "A"
offset = 0x0
access = "ro"
doc = "a"
fields = [ { name = "X", bits = "3:0", doc = "" }, { name = "Y", bits = "4:3", doc = "" } ]
"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("A.Y overlaps another field at bit 3"), "{err}");
    }

    #[test]
    fn rw_without_mask_is_refused() {
        let err = with("[[register]]\nname = \"A\"\noffset = 0\naccess = \"rw\"\ndoc = \"\"\n").unwrap_err();
        assert!(err.to_string().contains("rw needs mask"), "{err}");
    }

    #[test]
    fn record_field_beyond_size_is_refused() {
        let err = with(
            "[[record]]\nname = \"R\"\nbytes = 4\ndoc = \"\"\nfields = [ { name = \"F\", bits = \"32:0\", doc = \"\" } ]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("exceed 32 bits"), "{err}");
    }
}
