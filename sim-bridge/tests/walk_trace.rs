//! Walk traces: for fixed scenarios, the software walker's trace (VA → each level's PTE
//! → result) rendered as text and snapshot-tested, with the RTL's outcome for the same
//! access appended and checked against it: the loaded word or the fault record, and the
//! leaf PTE as the RTL left it (A/D set by the hardware walker).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;

use common::{Reply, Rig, host_buffer, put_words, read_u64, words};
use npu::kernel::{Kernel, KernelStatus};
use npu::regs;
use npu::sv39::{self, Access, HUGE, PAGE};
use sim_bridge::{BackdoorTables, DevMemBackdoor, SimConfig, SimDevice};

/// Traces `va` in ASID 1, runs the same access on the RTL, checks it agrees and
/// returns the trace with the RTL's outcome.
fn trace(r: &mut Rig<SimDevice>, va: u64, access: Access) -> String {
    let root = r.tables.root(&mut r.dev, 1);
    let size = r.dev.dev_mem_size();
    let (steps, result) = sv39::walk_traced(&BackdoorTables(&mut r.dev), root, va, access, size);
    let mut text = sv39::render_trace(va, access, &steps, &result);
    let store = (access == Access::Write).then_some(0xC0DE_0001);
    let (cpl, batches) = r.run(Kernel::strided_touch(1, va, 4, 1, store), &mut |_, _, _| Reply::Abort);
    match result {
        Ok(t) => {
            assert_eq!(cpl.status, KernelStatus::Ok, "{cpl:?}");
            let word = if t.pa >= 1 << 40 { None } else { Some(words(&r.dev, t.pa, 1)[0]) };
            match (store, word) {
                (Some(v), Some(w)) => assert_eq!(w, v, "the store landed at the traced PA"),
                (None, Some(w)) => assert_eq!(cpl.result, u64::from(w), "the load read the traced PA"),
                _ => {}
            }
            let leaf = steps.last().unwrap();
            let after = read_u64(&r.dev, leaf.at);
            text += &format!(
                "  RTL: {} ok, leaf PTE now {:#018x}\n",
                if store.is_some() { "store" } else { "load" },
                after
            );
        }
        Err(f) => {
            let rec = batches.concat()[0];
            assert_eq!((u64::from(rec.cause as u16), rec.level, rec.pte, rec.va), (f.cause, f.level, f.pte.0, va));
            text += &format!(
                "  RTL: fault record cause {} level {} PTE {:#x}, kernel {:?}\n",
                rec.cause as u16, rec.level, rec.pte, cpl.status
            );
        }
    }
    text
}

fn clear_ad(r: &mut Rig<SimDevice>, va: u64) {
    let at = r.tables.leaf_at(&mut r.dev, 1, va);
    let v = read_u64(&r.dev, at) & !(1 << regs::pte_bit::A | 1 << regs::pte_bit::D);
    r.dev.backdoor_write(at, &v.to_le_bytes()).unwrap();
}

#[test]
fn walk_traces_of_fixed_scenarios_match_the_rtl() {
    let mut r = Rig::new(SimDevice::new(SimConfig::default()).unwrap());
    r.map(1, 0x1000_3000, 0x80_0000, PAGE, false);
    r.map(1, 0x4000_0000, 0x20_0000, HUGE, true);
    put_words(&mut r.dev, 0x80_0123 & !3, &[0x1111_2222]);
    clear_ad(&mut r, 0x4000_0000);
    let (_host_page, iova) = host_buffer(&mut r.dev, PAGE as usize); // mapped: must live
    r.map(1, 0x5000_0000, (1 << 40) + iova, PAGE, true);
    let mut all = String::new();
    all += &trace(&mut r, 0x1000_3120, Access::Read); // 4 KiB page, A already set
    all += &trace(&mut r, 0x4012_3450, Access::Write); // 2 MiB superpage, A/D update
    all += &trace(&mut r, 0x1000_4000, Access::Read); // next page: invalid leaf
    all += &trace(&mut r, 0x1000_3000, Access::Write); // read-only page
    all += &trace(&mut r, 0x0000_0080_0000_0000, Access::Read); // non-canonical
    all += &trace(&mut r, 0x5000_0010, Access::Write); // host window
    // Host IOVAs come from the allocator: redact them.
    let window = (1u64 << 40) + iova;
    let redacted = all
        .replace(&format!("{:#x}", window + 0x10), "<host window page> + 0x10")
        .replace(&format!("{:#x}", window), "<host window page>");
    insta::assert_snapshot!("walk__fixed_scenarios", redacted);
}
