//! Two device requesters and two CPU threads hammer the *same* pages (distinct bytes):
//! pages bounce, migrations race CPU writes, eviction runs under pressure. Every byte
//! ends with its owner's last value, accounting balances, no stale TLB entry remains.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use gmem_host::{MapFlags, Residency};

const PAGES: u64 = 48;
const ROUNDS: u8 = 12;

#[test]
fn devices_and_cpus_share_pages() {
    let r = rig(16); // a third of the working set
    let p = r.gm.mmap(r.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    let addr = p as usize;
    let done = AtomicBool::new(false);
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _release_watchdog = Done(&done);
        // Watchdog: a deadlock fails loudly instead of hanging the suite.
        s.spawn(|| {
            for _ in 0..600 {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("stress test deadlocked; counters: {:?}", r.gm.counters());
            std::process::abort();
        });
        let mut workers = Vec::new();
        for t in 0..2u64 {
            let r = &r;
            workers.push(s.spawn(move || {
                for round in 1..=ROUNDS {
                    for pg in 0..PAGES {
                        let at = va + pg * 4096 + t * 64;
                        r.dev.store(&r.gm, r.id, r.asid, at, &[round; 8]).expect("store");
                        let mut b = [0u8; 8];
                        r.dev.load(&r.gm, r.id, r.asid, at, &mut b).expect("load");
                        assert_eq!(b, [round; 8], "device {t} page {pg}");
                    }
                }
            }));
        }
        for t in 0..2usize {
            workers.push(s.spawn(move || {
                let p = addr as *mut u8;
                for round in 1..=ROUNDS {
                    for pg in 0..PAGES as usize {
                        let off = pg * 4096 + 2048 + t * 64;
                        for i in 0..8 {
                            cpu_write(p, off + i, round);
                        }
                        for i in 0..8 {
                            assert_eq!(cpu_read(p, off + i), round, "cpu {t} page {pg}");
                        }
                    }
                }
            }));
        }
        for w in workers {
            w.join().expect("worker");
        }
    });
    for pg in 0..PAGES {
        let mut b = [0u8; 8];
        for t in 0..2u64 {
            r.dev.load(&r.gm, r.id, r.asid, va + pg * 4096 + t * 64, &mut b).expect("load");
            assert_eq!(b, [ROUNDS; 8]);
        }
        for t in 0..2usize {
            assert_eq!(cpu_read(p, pg as usize * 4096 + 2048 + t * 64), ROUNDS);
        }
    }
    assert_eq!(r.dev.stale_tlb_entries(), 0);
    let (free, total) = r.gm.device_pages(r.id).expect("dev");
    let on_dev = (0..PAGES)
        .filter(|i| {
            matches!(
                r.gm.page_info(r.space, va + i * 4096).map(|x| x.residency),
                Some(Residency::Device | Residency::Dup)
            )
        })
        .count() as u64;
    assert_eq!(free + on_dev, total);
    r.gm.munmap(r.space, p, PAGES * 4096).expect("munmap");
    assert_eq!(r.gm.device_pages(r.id), Some((16, 16)));
}
