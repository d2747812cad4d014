//! CPU coherence through userfaultfd: CPU threads and the device share a region with no
//! explicit synchronisation call into the manager.

mod common;

use std::sync::mpsc;

use common::*;
use gmem_host::{Config, Gmem, MapFlags, Residency};

const PAGES: u64 = 128;

fn read_u32(p: *mut u8, off: usize) -> u32 {
    // SAFETY: offsets are 4-aligned and inside the live region.
    unsafe { std::ptr::read_volatile(p.add(off).cast::<u32>()) }
}

fn write_u32(p: *mut u8, off: usize, v: u32) {
    // SAFETY: offsets are 4-aligned and inside the live region.
    unsafe { std::ptr::write_volatile(p.add(off).cast::<u32>(), v) }
}

#[test]
fn cpu_writes_device_computes_cpu_reads_back() {
    let r = rig(64); // half the working set: eviction happens during the compute
    let p = r.gm.mmap(r.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    let addr = p as usize;
    let (to_dev, dev_rx) = mpsc::channel::<()>();
    let (to_cpu, cpu_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let p = addr as *mut u8;
            for pg in 0..PAGES as usize {
                for w in 0..16 {
                    write_u32(p, pg * 4096 + w * 4, (pg * 1000 + w) as u32);
                }
            }
            to_dev.send(()).expect("send");
            cpu_rx.recv().expect("recv");
            // No sync call: device-resident pages fault back through userfaultfd.
            for pg in 0..PAGES as usize {
                for w in 0..16 {
                    assert_eq!(read_u32(p, pg * 4096 + w * 4), 2 * (pg * 1000 + w) as u32 + 1, "page {pg} word {w}");
                }
            }
        });
        dev_rx.recv().expect("recv");
        // The "kernel": x = 2x + 1 over the first 16 words of every page.
        for pg in 0..PAGES {
            let mut buf = [0u8; 64];
            r.dev.load(&r.gm, r.id, r.asid, va + pg * 4096, &mut buf).expect("load");
            for w in buf.chunks_mut(4) {
                let x = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]);
                w.copy_from_slice(&(2 * x + 1).to_ne_bytes());
            }
            r.dev.store(&r.gm, r.id, r.asid, va + pg * 4096, &buf).expect("store");
        }
        to_cpu.send(()).expect("send");
    });
    // The handler wakes the toucher before it finishes its commit; taking the manager
    // lock once waits for that commit.
    let _ = r.gm.device_pages(r.id);
    let c = r.gm.counters();
    assert!(c.cpu_faults >= PAGES, "{c:?}");
    assert!(c.evictions > 0, "{c:?}");
    assert!(c.pages_d2h >= PAGES, "{c:?}");
}

#[test]
fn cpu_and_device_work_concurrently_on_disjoint_pages() {
    let r = rig(32);
    let p = r.gm.mmap(r.space, PAGES * 4096, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64;
    let addr = p as usize;
    std::thread::scope(|s| {
        // Two CPU threads hammer the even pages while the device works the odd ones.
        for t in 0..2usize {
            s.spawn(move || {
                let p = addr as *mut u8;
                for round in 0..20u32 {
                    for pg in (0..PAGES as usize).step_by(2).skip(t).step_by(2) {
                        write_u32(p, pg * 4096 + 8, round);
                        assert_eq!(read_u32(p, pg * 4096 + 8), round);
                    }
                }
            });
        }
        for round in 0..20u8 {
            for pg in (1..PAGES).step_by(2) {
                r.dev.store(&r.gm, r.id, r.asid, va + pg * 4096 + 16, &[round]).expect("store");
                let mut b = [0u8; 1];
                r.dev.load(&r.gm, r.id, r.asid, va + pg * 4096 + 16, &mut b).expect("load");
                assert_eq!(b[0], round);
            }
        }
    });
    for pg in 0..PAGES as usize {
        if pg % 2 == 0 {
            assert_eq!(read_u32(p, pg * 4096 + 8), 19);
        } else {
            assert_eq!(cpu_read(p, pg * 4096 + 16), 19);
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
}

/// As an unprivileged user (`nobody`), `/dev/userfaultfd` is closed and only
/// `UFFD_USER_MODE_ONLY` descriptors are allowed: the manager must still work. Runs this
/// test binary again as uid 65534 (needs root to switch; skipped as non-root, where the
/// whole suite already is the unprivileged case).
#[test]
fn unprivileged_user_mode_only() {
    if std::env::var_os("GMEM_CHILD").is_some() {
        match Gmem::new(Config::default()) {
            Ok(gm) => {
                assert!(gm.uses_userfaultfd());
                println!("CHILD-UFFD-OK");
            }
            Err(e) => println!("CHILD-UFFD-ERR {e}"),
        }
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    use std::os::unix::process::CommandExt;
    let spawned = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["unprivileged_user_mode_only", "--exact", "--nocapture", "--test-threads=1"])
        .env("GMEM_CHILD", "1")
        .uid(65534)
        .gid(65534)
        .output();
    let Ok(out) = spawned else {
        // `nobody` cannot reach the test binary (e.g. a checkout under a 0700 home).
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("CHILD-UFFD-") {
        return; // the child could not run the test binary at all
    }
    let knob = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd").unwrap_or_default();
    if text.contains("CHILD-UFFD-ERR") {
        // Only acceptable where the kernel forbids unprivileged userfaultfd entirely
        // (pre-5.11 kernels without user-mode-only); the error must say why.
        assert!(text.contains("userfaultfd is unavailable"), "{text}");
        assert!(text.contains("/dev/userfaultfd"), "{text}");
    } else {
        assert!(
            text.contains("CHILD-UFFD-OK"),
            "knob={knob} stdout={text} stderr={}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
