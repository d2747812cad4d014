//! Reviewable snapshots of the logical page table after scripted scenarios
//! (`cargo insta review` to accept changes).

mod common;

use std::sync::Arc;

use common::*;
use gmem_host::softdev::SoftConfig;
use gmem_host::{Config, Hint, MapFlags, Node, ThrashConfig};

#[test]
fn pte_oversubscribe_small() {
    // Deterministic: fixed clock, no thrashing detection, sequential operations.
    let cfg = Config {
        clock: Arc::new(|| 0),
        thrash: ThrashConfig { enabled: false, ..Default::default() },
        ..Default::default()
    };
    let r = rig_with(cfg, SoftConfig { mem_bytes: 16 * 4096, ..Default::default() });
    let pages = 48u64;
    let p = r.gm.mmap(r.space, pages * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    for pg in 0..pages as usize {
        cpu_write(p, pg * 4096, pg as u8);
    }
    r.gm.hmadvise(r.space, Node::Cpu, va + 8 * 4096, 4 * 4096, Hint::ReadMostly).expect("advise");
    r.gm.hmadvise(r.space, Node::Device(r.id), va + 40 * 4096, 4 * 4096, Hint::AccessedBy).expect("advise");
    for pg in 0..24u64 {
        if (8..12).contains(&pg) {
            continue;
        }
        r.dev.store(&r.gm, r.id, r.asid, va + pg * 4096 + 1, &[0xee]).expect("store");
    }
    let mut b = [0u8; 1];
    for pg in (8..12u64).chain(40..44) {
        r.dev.load(&r.gm, r.id, r.asid, va + pg * 4096, &mut b).expect("load");
        assert_eq!(b[0], pg as u8);
    }
    assert_eq!(cpu_read(p, 20 * 4096 + 1), 0xee);
    let _ = r.gm.device_pages(r.id); // wait for the handler's commit
    let text = format!("{}\ncounters:\n{}", r.gm.dump_space(r.space).expect("dump"), r.gm.counters());
    insta::assert_snapshot!("pte__oversubscribe_small", text);
}
