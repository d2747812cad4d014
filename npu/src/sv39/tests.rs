use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

const DEV_MEM: u64 = 256 << 20;

/// Table memory for tests: PTEs by address; unwritten PTEs read 0.
#[derive(Default)]
struct Mem(HashMap<u64, u64>);

impl TableMemory for Mem {
    type Error = ();
    fn read_pte(&self, pa: u64) -> Result<u64, ()> {
        if pa >= DEV_MEM { Err(()) } else { Ok(*self.0.get(&pa).unwrap_or(&0)) }
    }
    fn write_pte(&mut self, pa: u64, pte: u64) -> Result<(), ()> {
        self.0.insert(pa, pte);
        Ok(())
    }
}

/// Tables come from the top of device memory downwards.
fn tables() -> impl FnMut() -> Option<u64> {
    let mut next = DEV_MEM;
    move || {
        next -= PAGE;
        Some(next)
    }
}

const ROOT: u64 = 0x100_0000;

fn setup() -> (Mem, impl FnMut() -> Option<u64>) {
    (Mem::default(), tables())
}

#[test]
fn four_k_and_two_m_pages_translate() {
    let (mut mem, mut alloc) = setup();
    let mut b = TableBuilder { mem: &mut mem, root: ROOT };
    b.map(0x4000_1000, 0x20_3000, PAGE, true, &mut alloc).unwrap();
    b.map(0x8000_0000, 0x40_0000, HUGE, false, &mut alloc).unwrap();
    let t = walk(&mem, ROOT, 0x4000_1ABC, Access::Write, DEV_MEM).unwrap();
    assert_eq!((t.pa, t.page_size, t.level, t.needs_ad_update), (0x20_3ABC, PAGE, 0, false));
    let t = walk(&mem, ROOT, 0x801F_FFFF, Access::Read, DEV_MEM).unwrap();
    assert_eq!((t.pa, t.page_size, t.level), (0x5F_FFFF, HUGE, 1));
    let f = walk(&mem, ROOT, 0x8000_0000, Access::Write, DEV_MEM).unwrap_err();
    assert_eq!((f.cause, f.level), (regs::fault_cause::WRITE_PAGE, 1), "read-only superpage");
    let f = walk(&mem, ROOT, 0x4000_2000, Access::Read, DEV_MEM).unwrap_err();
    assert_eq!((f.cause, f.level, f.pte), (regs::fault_cause::READ_PAGE, 0, Pte(0)), "unmapped neighbour");
}

#[test]
fn boundary_and_non_canonical_addresses() {
    let (mut mem, mut alloc) = setup();
    let mut b = TableBuilder { mem: &mut mem, root: ROOT };
    let top = (1u64 << 38) - PAGE; // last page of the lower half
    let neg = !((1u64 << 38) - 1); // first page of the upper half (sign-extended)
    b.map(top, 0x1000, PAGE, true, &mut alloc).unwrap();
    b.map(neg, 0x2000, PAGE, true, &mut alloc).unwrap();
    assert_eq!(walk(&mem, ROOT, top + 0xFFF, Access::Read, DEV_MEM).unwrap().pa, 0x1FFF);
    assert_eq!(walk(&mem, ROOT, neg, Access::Read, DEV_MEM).unwrap().pa, 0x2000);
    let f = walk(&mem, ROOT, 1 << 38, Access::Read, DEV_MEM).unwrap_err();
    assert_eq!((f.cause, f.level), (regs::fault_cause::READ_PAGE, 2), "bit 38 set without sign extension");
    assert_eq!(b_err(&mut mem, 1 << 40), MapError::NonCanonical(1 << 40));
    let dump = dump(&mem, ROOT).unwrap();
    assert_eq!(dump.iter().map(|m| m.va).collect::<Vec<_>>(), [top, neg]);
}

fn b_err(mem: &mut Mem, va: u64) -> MapError<()> {
    let mut alloc = tables();
    TableBuilder { mem, root: ROOT }.map(va, 0, PAGE, false, &mut alloc).unwrap_err()
}

#[test]
fn malformed_ptes_fault_as_the_spec_says() {
    let (mut mem, mut alloc) = setup();
    TableBuilder { mem: &mut mem, root: ROOT }.map(0x1000, 0x5000, PAGE, true, &mut alloc).unwrap();
    let leaf_at = |mem: &Mem| {
        let l1 = Pte(mem.read_pte(ROOT).unwrap()).target();
        let l0 = Pte(mem.read_pte(l1).unwrap()).target();
        l0 + 8
    };
    let at = leaf_at(&mem);
    let good = mem.read_pte(at).unwrap();
    // W without R is reserved.
    mem.write_pte(at, good & !(1 << regs::pte_bit::R)).unwrap();
    assert_eq!(walk(&mem, ROOT, 0x1000, Access::Write, DEV_MEM).unwrap_err().cause, regs::fault_cause::WRITE_PAGE);
    // Reserved high bits.
    mem.write_pte(at, good | 1 << 60).unwrap();
    assert_eq!(walk(&mem, ROOT, 0x1000, Access::Read, DEV_MEM).unwrap_err().cause, regs::fault_cause::READ_PAGE);
    // A/D clear: translation succeeds but asks for the A/D update.
    mem.write_pte(at, good & !(1 << regs::pte_bit::A | 1 << regs::pte_bit::D)).unwrap();
    assert!(walk(&mem, ROOT, 0x1000, Access::Read, DEV_MEM).unwrap().needs_ad_update);
    // A leaf beyond device memory and outside the host window: access fault.
    mem.write_pte(at, Pte::leaf(DEV_MEM, true).0).unwrap();
    let f = walk(&mem, ROOT, 0x1000, Access::Read, DEV_MEM).unwrap_err();
    assert_eq!((f.cause, f.level), (regs::fault_cause::READ_ACCESS, 0));
    // A host-window leaf translates into the window.
    mem.write_pte(at, Pte::leaf(HOST_WINDOW + 0x7000, true).0).unwrap();
    assert_eq!(walk(&mem, ROOT, 0x1004, Access::Write, DEV_MEM).unwrap().pa, HOST_WINDOW + 0x7004);
    // A 1 GiB leaf at level 2 and a misaligned superpage are page faults.
    mem.write_pte(ROOT + 8, Pte::leaf(0, true).0).unwrap();
    assert_eq!(walk(&mem, ROOT, 1 << 30, Access::Read, DEV_MEM).unwrap_err().level, 2);
    let l1 = Pte(mem.read_pte(ROOT).unwrap()).target();
    mem.write_pte(l1 + 8, Pte::leaf(0x1000, true).0).unwrap();
    let f = walk(&mem, ROOT, HUGE, Access::Read, DEV_MEM).unwrap_err();
    assert_eq!((f.cause, f.level), (regs::fault_cause::READ_PAGE, 1), "superpage PPN not 2 MiB aligned");
    // A root outside device memory.
    assert_eq!(walk(&mem, DEV_MEM, 0, Access::Read, DEV_MEM).unwrap_err().cause, regs::fault_cause::READ_ACCESS);
}

#[test]
fn builder_refuses_bad_requests_and_changes_nothing() {
    let (mut mem, mut alloc) = setup();
    let mut b = TableBuilder { mem: &mut mem, root: ROOT };
    b.map(0x20_0000, 0x40_0000, HUGE, true, &mut alloc).unwrap();
    assert_eq!(
        b.map(0x20_1000, 0x1000, PAGE, true, &mut alloc),
        Err(MapError::AlreadyMapped(0x20_1000)),
        "inside a superpage"
    );
    assert_eq!(
        b.map(0x1000, 0x1800, PAGE, true, &mut alloc),
        Err(MapError::Misaligned { va: 0x1000, pa: 0x1800, size: PAGE })
    );
    assert_eq!(
        b.map(0x1000, 0x2000, 8192, true, &mut alloc),
        Err(MapError::Misaligned { va: 0x1000, pa: 0x2000, size: 8192 })
    );
    assert_eq!(b.unmap(0x20_0000).unwrap().map(|p| p.target()), Some(0x40_0000));
    assert_eq!(b.unmap(0x20_0000).unwrap(), None, "double unmap is a no-op");
    assert!(dump(&mem, ROOT).unwrap().is_empty());
}

#[test]
fn rendered_dump_is_stable_text() {
    let (mut mem, mut alloc) = setup();
    let mut b = TableBuilder { mem: &mut mem, root: ROOT };
    b.map(0x4000_0000, 0x60_0000, HUGE, true, &mut alloc).unwrap();
    b.map(0x1000, 0x3000, PAGE, false, &mut alloc).unwrap();
    b.map(0x7FFF_F000, HOST_WINDOW + 0x1234_5000, PAGE, true, &mut alloc).unwrap();
    insta::assert_snapshot!("pte__small_mix", render(&dump(&mem, ROOT).unwrap()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random maps and unmaps agree with a plain map of VA pages to PAs.
    #[test]
    fn walker_agrees_with_a_reference_map(ops in prop::collection::vec((0u64..64, 0u64..4096, any::<bool>(), any::<bool>(), any::<bool>()), 1..80)) {
        let (mut mem, mut alloc) = setup();
        let mut model: HashMap<u64, (u64, u64, bool)> = HashMap::new(); // base va -> (pa, size, write)
        for (slot, frame, huge, write, unmap) in ops {
            let (size, va, pa) = if huge { (HUGE, slot * HUGE + (1 << 32), (frame % 64) * HUGE) } else { (PAGE, slot * PAGE, frame * PAGE) };
            let mut b = TableBuilder { mem: &mut mem, root: ROOT };
            if unmap {
                let removed = b.unmap(va).unwrap().is_some();
                prop_assert_eq!(removed, model.remove(&va).is_some());
            } else {
                let r = b.map(va, pa, size, write, &mut alloc);
                if let std::collections::hash_map::Entry::Vacant(e) = model.entry(va) {
                    prop_assert!(r.is_ok());
                    e.insert((pa, size, write));
                } else {
                    prop_assert_eq!(r, Err(MapError::AlreadyMapped(va)));
                }
            }
        }
        for (&va, &(pa, size, write)) in &model {
            for off in [0, 8, size - 4] {
                let t = walk(&mem, ROOT, va + off, Access::Read, DEV_MEM).unwrap();
                prop_assert_eq!((t.pa, t.page_size), (pa + off, size));
                prop_assert_eq!(walk(&mem, ROOT, va + off, Access::Write, DEV_MEM).is_ok(), write);
            }
        }
        prop_assert_eq!(dump(&mem, ROOT).unwrap().len(), model.len());
    }
}
