//! Sv39 page tables as the NPU uses them (docs/device.md §6): PTE encoding, a software
//! walker that follows the spec step by step, a builder that maps and unmaps pages in
//! a table image, and a readable dump.
//!
//! The walker is the independent reference the RTL's page-table walker is checked
//! against; the builder and the dump are what the driver uses to keep device page tables
//! and what snapshot tests render. All of them reach table memory only through the
//! [`TableMemory`] trait, so the same code runs on a test image, on the simulator's
//! device memory, or through DMA on a board.

use crate::regs;

/// Base page size.
pub const PAGE: u64 = 4096;
/// Superpage (level-1 leaf) size.
pub const HUGE: u64 = 2 << 20;
/// First device-physical address of the host window.
pub const HOST_WINDOW: u64 = 1 << 40;
const PPN_BITS: u32 = 44;

/// Access type of a translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Load.
    Read,
    /// Store.
    Write,
}

/// An 8-byte Sv39 page-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Pte(pub u64);

impl Pte {
    fn bit(self, b: u64) -> bool {
        self.0 >> b & 1 == 1
    }
    /// V.
    pub fn valid(self) -> bool {
        self.bit(regs::pte_bit::V)
    }
    /// R.
    pub fn readable(self) -> bool {
        self.bit(regs::pte_bit::R)
    }
    /// W.
    pub fn writable(self) -> bool {
        self.bit(regs::pte_bit::W)
    }
    /// A.
    pub fn accessed(self) -> bool {
        self.bit(regs::pte_bit::A)
    }
    /// D.
    pub fn dirty(self) -> bool {
        self.bit(regs::pte_bit::D)
    }
    /// A valid PTE with R = W = X = 0 points to the next-level table.
    pub fn is_pointer(self) -> bool {
        self.valid() && self.0 & 0b1110 == 0
    }
    /// Physical address this PTE names (table or page).
    pub fn target(self) -> u64 {
        regs::pte::PPN.get(&self.0.to_le_bytes()).unwrap_or(0) << 12
    }
    /// Reserved bits 63:54 set?
    pub fn reserved_set(self) -> bool {
        self.0 >> (regs::pte_bit::PPN_LSB as u32 + PPN_BITS) != 0
    }
    /// Pointer to the table at `table_pa`.
    pub fn pointer(table_pa: u64) -> Self {
        Self((table_pa >> 12) << regs::pte_bit::PPN_LSB | 1 << regs::pte_bit::V)
    }
    /// Leaf mapping `pa` with the given rights; A (and D if writable) pre-set so the
    /// device never needs to update them.
    pub fn leaf(pa: u64, write: bool) -> Self {
        let mut v = (pa >> 12) << regs::pte_bit::PPN_LSB
            | 1 << regs::pte_bit::V
            | 1 << regs::pte_bit::R
            | 1 << regs::pte_bit::A;
        if write {
            v |= 1 << regs::pte_bit::W | 1 << regs::pte_bit::D;
        }
        Self(v)
    }
}

/// Where page tables live. Errors are the memory's own (e.g. a DMA failure).
pub trait TableMemory {
    /// Memory error type.
    type Error: std::fmt::Debug;
    /// Reads the 8-byte PTE at device-physical `pa`.
    fn read_pte(&self, pa: u64) -> Result<u64, Self::Error>;
    /// Writes the 8-byte PTE at device-physical `pa`.
    fn write_pte(&mut self, pa: u64, pte: u64) -> Result<(), Self::Error>;
}

/// Why a walk stopped (cause numbering of the fault record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkFault {
    /// FAULT_CAUSE value.
    pub cause: u64,
    /// Level at which the walk stopped (2 = root).
    pub level: u8,
    /// PTE read at that level (0 if none).
    pub pte: Pte,
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Device-physical address of the byte.
    pub pa: u64,
    /// 4 KiB or 2 MiB.
    pub page_size: u64,
    /// Leaf level (0 or 1).
    pub level: u8,
    /// The leaf PTE.
    pub pte: Pte,
    /// The hardware must set A (and D on a write) before using it (§6.5).
    pub needs_ad_update: bool,
}

fn canonical(va: u64) -> bool {
    let top = (va as i64) >> 38;
    top == 0 || top == -1
}

fn vpn(va: u64, level: u8) -> u64 {
    (va >> (12 + 9 * u32::from(level))) & 0x1FF
}

/// Walks the tables from `root_pa` for `va` exactly as docs/device.md §6.2 describes
/// (from step 2; the ASID checks of step 1 are the caller's). `dev_mem` is the device
/// memory size in bytes.
pub fn walk<M: TableMemory>(
    mem: &M,
    root_pa: u64,
    va: u64,
    access: Access,
    dev_mem: u64,
) -> Result<Translation, WalkFault> {
    walk_observed(mem, root_pa, va, access, dev_mem, &mut |_| {})
}

/// One PTE read by a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkStep {
    /// Level of the table (2 = root).
    pub level: u8,
    /// Device-physical address of the PTE.
    pub at: u64,
    /// The PTE read (0 if the read failed).
    pub pte: Pte,
}

/// [`walk`], also returning every PTE it read, in order.
pub fn walk_traced<M: TableMemory>(
    mem: &M,
    root_pa: u64,
    va: u64,
    access: Access,
    dev_mem: u64,
) -> (Vec<WalkStep>, Result<Translation, WalkFault>) {
    let mut steps = Vec::new();
    let result = walk_observed(mem, root_pa, va, access, dev_mem, &mut |s| steps.push(s));
    (steps, result)
}

/// Renders a traced walk as readable text: the VA, each level's PTE with its flags and
/// target, and the result.
pub fn render_trace(va: u64, access: Access, steps: &[WalkStep], result: &Result<Translation, WalkFault>) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{access:?} {va:#018x}\n");
    for s in steps {
        let p = s.pte;
        let kind = if !p.valid() {
            "invalid".to_string()
        } else if p.is_pointer() {
            format!("pointer -> table {:#x}", p.target())
        } else {
            format!("leaf -> {:#x}", p.target())
        };
        let _ = writeln!(out, "  L{} [{:#010x}] = {:#018x} {} {}", s.level, s.at, p.0, flags(p), kind);
    }
    let _ = match result {
        Ok(t) => writeln!(
            out,
            "  => PA {:#x} ({} page{})",
            t.pa,
            if t.page_size == HUGE { "2 MiB" } else { "4 KiB" },
            if t.needs_ad_update { ", A/D update" } else { "" }
        ),
        Err(f) => writeln!(out, "  => fault cause {} at level {} (PTE {:#x})", f.cause, f.level, f.pte.0),
    };
    out
}

fn flags(p: Pte) -> String {
    ["V", "R", "W", "X", "U", "G", "A", "D"]
        .iter()
        .enumerate()
        .map(|(i, f)| if p.0 >> i & 1 == 1 { *f } else { "-" })
        .collect()
}

fn walk_observed<M: TableMemory>(
    mem: &M,
    root_pa: u64,
    va: u64,
    access: Access,
    dev_mem: u64,
    observe: &mut dyn FnMut(WalkStep),
) -> Result<Translation, WalkFault> {
    let (page_fault, access_fault) = match access {
        Access::Read => (regs::fault_cause::READ_PAGE, regs::fault_cause::READ_ACCESS),
        Access::Write => (regs::fault_cause::WRITE_PAGE, regs::fault_cause::WRITE_ACCESS),
    };
    let fault = |cause, level, pte| Err(WalkFault { cause, level, pte });
    if !canonical(va) {
        return fault(page_fault, 2, Pte(0));
    }
    let in_dev = |pa: u64, len: u64| pa.checked_add(len).is_some_and(|e| e <= dev_mem);
    let mut table = root_pa;
    let mut level = 2u8;
    if !in_dev(table, PAGE) {
        return fault(access_fault, 2, Pte(0));
    }
    loop {
        let at = table + vpn(va, level) * 8;
        let pte = match mem.read_pte(at) {
            Ok(v) => Pte(v),
            Err(_) => {
                observe(WalkStep { level, at, pte: Pte(0) });
                return fault(access_fault, level, Pte(0));
            }
        };
        observe(WalkStep { level, at, pte });
        if !pte.valid() || (pte.writable() && !pte.readable()) || pte.reserved_set() {
            return fault(page_fault, level, pte);
        }
        if pte.is_pointer() {
            if level == 0 {
                return fault(page_fault, level, pte);
            }
            if !in_dev(pte.target(), PAGE) {
                return fault(access_fault, level, pte);
            }
            table = pte.target();
            level -= 1;
            continue;
        }
        if level == 2 || (level == 1 && (pte.target() >> 12) & 0x1FF != 0) {
            return fault(page_fault, level, pte);
        }
        let allowed = match access {
            Access::Read => pte.readable(),
            Access::Write => pte.writable(),
        };
        if !allowed {
            return fault(page_fault, level, pte);
        }
        let page_size = if level == 1 { HUGE } else { PAGE };
        let base = pte.target();
        let in_window = base >= HOST_WINDOW && base + page_size <= 2 * HOST_WINDOW;
        if !in_dev(base, page_size) && !in_window {
            return fault(access_fault, level, pte);
        }
        let needs_ad_update = !pte.accessed() || (access == Access::Write && !pte.dirty());
        return Ok(Translation { pa: base | (va & (page_size - 1)), page_size, level, pte, needs_ad_update });
    }
}

/// Errors of the table builder.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError<E: std::fmt::Debug> {
    /// VA or PA not aligned to the page size, or a size other than 4 KiB / 2 MiB.
    #[error("mapping {va:#x} -> {pa:#x} of {size:#x} bytes is not aligned to a 4 KiB or 2 MiB page")]
    Misaligned {
        /// Virtual address.
        va: u64,
        /// Physical address.
        pa: u64,
        /// Page size.
        size: u64,
    },
    /// The VA is not canonical for Sv39.
    #[error("VA {0:#x} is outside the 39-bit Sv39 space")]
    NonCanonical(u64),
    /// Something is already mapped there (or a superpage covers it).
    #[error("VA {0:#x} is already mapped")]
    AlreadyMapped(u64),
    /// No memory for another table page.
    #[error("no device memory left for a page-table page")]
    NoTableMemory,
    /// The table memory failed.
    #[error("page-table memory error: {0:?}")]
    Memory(E),
}

/// Maps and unmaps pages in the Sv39 tables rooted at `root`; new table pages come
/// from `alloc_table` (zeroed by the caller).
pub struct TableBuilder<'a, M: TableMemory> {
    /// Table memory.
    pub mem: &'a mut M,
    /// Root table address.
    pub root: u64,
}

impl<M: TableMemory> TableBuilder<'_, M> {
    fn slot(&self, table: u64, va: u64, level: u8) -> u64 {
        table + vpn(va, level) * 8
    }

    /// Maps `size` (4 KiB or 2 MiB) at `va` to `pa`.
    pub fn map(
        &mut self,
        va: u64,
        pa: u64,
        size: u64,
        write: bool,
        alloc_table: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<(), MapError<M::Error>> {
        if !(size == PAGE || size == HUGE) || va % size != 0 || pa % size != 0 {
            return Err(MapError::Misaligned { va, pa, size });
        }
        if !canonical(va) {
            return Err(MapError::NonCanonical(va));
        }
        let leaf_level = if size == HUGE { 1 } else { 0 };
        let mut table = self.root;
        let mut level = 2u8;
        while level > leaf_level {
            let at = self.slot(table, va, level);
            let pte = Pte(self.mem.read_pte(at).map_err(MapError::Memory)?);
            table = if pte.is_pointer() {
                pte.target()
            } else if pte.valid() {
                return Err(MapError::AlreadyMapped(va));
            } else {
                let t = alloc_table().ok_or(MapError::NoTableMemory)?;
                self.mem.write_pte(at, Pte::pointer(t).0).map_err(MapError::Memory)?;
                t
            };
            level -= 1;
        }
        let at = self.slot(table, va, leaf_level);
        if Pte(self.mem.read_pte(at).map_err(MapError::Memory)?).valid() {
            return Err(MapError::AlreadyMapped(va));
        }
        self.mem.write_pte(at, Pte::leaf(pa, write).0).map_err(MapError::Memory)
    }

    /// Removes the leaf mapping `va` (of either size); returns the removed PTE, if any.
    /// Table pages are kept (they are reused by later mappings).
    pub fn unmap(&mut self, va: u64) -> Result<Option<Pte>, MapError<M::Error>> {
        let mut table = self.root;
        for level in (0..=2u8).rev() {
            let at = self.slot(table, va, level);
            let pte = Pte(self.mem.read_pte(at).map_err(MapError::Memory)?);
            if !pte.valid() {
                return Ok(None);
            }
            if !pte.is_pointer() {
                self.mem.write_pte(at, 0).map_err(MapError::Memory)?;
                return Ok(Some(pte));
            }
            table = pte.target();
        }
        Ok(None)
    }
}

/// One leaf mapping found by [`dump`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First VA.
    pub va: u64,
    /// 4 KiB or 2 MiB.
    pub size: u64,
    /// Leaf level.
    pub level: u8,
    /// The leaf PTE.
    pub pte: Pte,
}

/// Every leaf mapping under `root`, in VA order.
pub fn dump<M: TableMemory>(mem: &M, root: u64) -> Result<Vec<Mapping>, M::Error> {
    let mut out = Vec::new();
    fn rec<M: TableMemory>(mem: &M, table: u64, level: u8, base: u64, out: &mut Vec<Mapping>) -> Result<(), M::Error> {
        for i in 0..512u64 {
            let pte = Pte(mem.read_pte(table + i * 8)?);
            if !pte.valid() {
                continue;
            }
            let mut va = base | i << (12 + 9 * u32::from(level));
            if va >> 38 & 1 == 1 {
                va |= !((1u64 << 39) - 1);
            }
            if pte.is_pointer() && level > 0 {
                rec(mem, pte.target(), level - 1, va, out)?;
            } else {
                out.push(Mapping { va, size: if level == 1 { HUGE } else { PAGE }, level, pte });
            }
        }
        Ok(())
    }
    rec(mem, root, 2, 0, &mut out)?;
    Ok(out)
}

/// Renders mappings as sorted text, one line per leaf: VA range, level, flags, target.
/// Host-window targets print as `host+offset` within their page so host addresses do not
/// leak into snapshots; device targets print as device-physical addresses.
pub fn render(maps: &[Mapping]) -> String {
    let mut s = String::new();
    for m in maps {
        let p = m.pte;
        let flags: String = [(p.readable(), 'R'), (p.writable(), 'W'), (p.accessed(), 'A'), (p.dirty(), 'D')]
            .iter()
            .map(|&(on, c)| if on { c } else { '-' })
            .collect();
        let target =
            if p.target() >= HOST_WINDOW { "host window".to_string() } else { format!("dev {:#012x}", p.target()) };
        s += &format!("{:#014x}..{:#014x} L{} {} {}\n", m.va, m.va + m.size, m.level, flags, target);
    }
    s
}

#[cfg(test)]
mod tests;
