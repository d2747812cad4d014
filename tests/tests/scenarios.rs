//! The NPU end-to-end scenarios (oversubscription, prefetch hint, ping-pong with
//! ACCESSED_BY, two address spaces, two NPUs, huge pages), each on the Verilated RTL
//! (`rtl::*`) and on the reference model (`model::*`). After each scenario the device
//! page tables, read back from device memory, are snapshot-tested: the RTL and the model
//! must produce the same dump (both tests assert the same snapshot).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::{Hint, MapFlags, Node};
use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig, NpuError};
use tests::Stack;

const MIB: u64 = 1 << 20;

fn region(s: &Stack<impl DeviceIo + Send + 'static>, bytes: u64) -> *mut u32 {
    s.gm.mmap(s.space, bytes, MapFlags::PEER_SHARED).unwrap() as *mut u32
}

fn fill(p: *mut u32, n: usize, f: impl Fn(usize) -> u32) {
    for i in 0..n {
        // SAFETY: callers pass a managed region of at least n words.
        unsafe { p.add(i).write(f(i)) };
    }
}

fn read(p: *const u32, i: usize) -> u32 {
    // SAFETY: callers pass an index inside a managed region.
    unsafe { p.add(i).read() }
}

/// The NPU's page-table dump with each VA written relative to the named region that
/// holds it (region placement depends on what else the process mapped).
fn dump<T: DeviceIo + Send + 'static>(s: &Stack<T>, regions: &[(&str, *mut u32, u64)]) -> String {
    dump_of(&s.npu.pte_dump(gmem_host::Asid(u32::from(s.asid)), false).unwrap(), regions)
}

fn dump_of(text: &str, regions: &[(&str, *mut u32, u64)]) -> String {
    let rel = |va: u64| {
        regions
            .iter()
            .find(|(_, p, len)| (*p as u64..*p as u64 + len).contains(&va))
            .map_or(format!("{va:#x}"), |(name, p, _)| format!("{name}+{:#08x}", va - *p as u64))
    };
    let mut out = String::new();
    for line in text.lines() {
        let (range, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (a, b) = range.split_once("..").unwrap_or((range, range));
        let va = |x: &str| u64::from_str_radix(x.trim_start_matches("0x"), 16).unwrap_or(0);
        out += &format!("{}..{} {rest}\n", rel(va(a)), rel(va(b) - 1));
    }
    out
}

/// Device memory of 16 MiB, working set 64 MiB: a stream (copy) and a gather.
fn oversubscription<T: DeviceIo + Send + 'static>(s: Stack<T>) -> String {
    let words = (32 * MIB / 4) as usize;
    let a = region(&s, 32 * MIB);
    let c = region(&s, 32 * MIB);
    fill(a, words, |i| (i as u32).wrapping_mul(2_654_435_761));
    let asid = s.asid;
    s.npu.launch(&s.gm, s.id, Kernel::copy(asid, a as u64, c as u64, words as u32)).unwrap();
    let idx = region(&s, 64 * 1024);
    let out = region(&s, 64 * 1024);
    fill(idx, 4096, |i| ((i * 7919) % words) as u32);
    s.npu.launch(&s.gm, s.id, Kernel::gather(asid, c as u64, idx as u64, out as u64, 4096)).unwrap();
    for i in (0..words).step_by(997) {
        assert_eq!(read(c, i), (i as u32).wrapping_mul(2_654_435_761), "copy element {i}");
    }
    for i in 0..4096 {
        let j = (i * 7919) % words;
        assert_eq!(read(out, i), (j as u32).wrapping_mul(2_654_435_761), "gather element {i}");
    }
    let k = s.gm.counters();
    assert!(k.evictions > 0 && k.pages_h2d > 0 && k.pages_d2h > 0, "{k:?}");
    format!("evicted pages: {}\n", k.evictions > 0)
}

/// PREFETCH before the kernel: no device fault while it runs.
fn prefetch_hint<T: DeviceIo + Send + 'static>(s: Stack<T>) -> String {
    let n = (2 * MIB / 4) as usize;
    let a = region(&s, 2 * MIB);
    fill(a, n, |i| i as u32);
    s.gm.hmadvise(s.space, Node::Device(s.id), a as u64, 2 * MIB, Hint::Prefetch).unwrap();
    let before = s.npu.stats().faults;
    let cpl = s.npu.launch(&s.gm, s.id, Kernel::reduce_sum(s.asid, a as u64, 0, n as u32)).unwrap();
    assert_eq!(s.npu.stats().faults, before, "no device faults after PREFETCH");
    assert_eq!(cpl.result, (0..n as u64).sum::<u64>());
    dump(&s, &[("a", a, 2 * MIB)])
}

/// CPU and NPU alternately touch one word per page; with ACCESSED_BY the pages stay on
/// the CPU and the NPU maps them remotely (through the host window).
fn pingpong<T: DeviceIo + Send + 'static>(s: Stack<T>) -> String {
    let pages = 64usize;
    let moved = |s: &Stack<T>, hinted: bool| -> (u64, *mut u32) {
        let p = region(s, pages as u64 * 4096);
        if hinted {
            s.gm.hmadvise(s.space, Node::Device(s.id), p as u64, pages as u64 * 4096, Hint::AccessedBy).unwrap();
        }
        let k0 = s.gm.counters();
        for round in 0..4u32 {
            fill(p, pages * 1024, |i| if i % 1024 == 0 { round } else { 0 });
            let k = Kernel::strided_touch(s.asid, p as u64, 4096, pages as u32, Some(round + 100));
            s.npu.launch(&s.gm, s.id, k).unwrap();
            assert_eq!(read(p, 5 * 1024), round + 100, "the CPU sees the NPU's store");
        }
        let k1 = s.gm.counters();
        ((k1.pages_h2d - k0.pages_h2d) + (k1.pages_d2h - k0.pages_d2h), p)
    };
    let (unhinted, _) = moved(&s, false);
    let (hinted, p) = moved(&s, true);
    // Un-hinted, each page moves in (round 0), back (round 1's CPU write) and is then
    // pinned by thrashing control (2 events: one round trip).
    assert!(unhinted >= 2 * pages as u64, "un-hinted pages move until pinned: {unhinted}");
    assert_eq!(hinted, 0, "with ACCESSED_BY no page moves");
    // The hinted pages are mapped remotely: the NPU reaches them in host memory.
    let tables = dump(&s, &[("hinted", p, pages as u64 * 4096)]);
    let remote: Vec<&str> = tables.lines().filter(|l| l.starts_with("hinted+")).collect();
    assert_eq!(remote.len(), pages, "every hinted page mapped remotely:\n{tables}");
    format!("un-hinted moves >= {}: true\nhinted moves: {hinted}\n{}\n", 2 * pages, remote.join("\n"))
}

/// Two address spaces on one NPU: a kernel in one can't reach the other's data.
fn two_spaces<T: DeviceIo + Send + 'static>(s: Stack<T>) -> String {
    let p1 = region(&s, 64 * 1024);
    fill(p1, 1024, |i| i as u32);
    let space2 = s.gm.create_space();
    let asid2 = s.gm.attach(space2, s.id).unwrap();
    assert_ne!(asid2.0, u32::from(s.asid));
    let p2 = s.gm.mmap(space2, 64 * 1024, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    // Legal in its own space...
    s.npu.launch(&s.gm, s.id, Kernel::copy(s.asid, p1 as u64, p1 as u64 + 8192, 1024)).unwrap();
    // ...but ASID 2 reading space 1's VA is refused, naming the address.
    let err = s.npu.launch(&s.gm, s.id, Kernel::copy(asid2.0 as u16, p1 as u64, p2 as u64, 16)).unwrap_err();
    match err {
        NpuError::KernelAborted { va, .. } => assert_eq!(va, p1 as u64),
        e => panic!("expected an abort naming {p1:?}, got {e}"),
    }
    let tables = dump(&s, &[("p1", p1, 64 * 1024)]);
    assert_eq!(read(p1, 7), 7, "space 1's data intact");
    tables
}

/// Two NPUs in one space: data written by one is read by the other.
fn two_npus<T: DeviceIo + Send + 'static>(s: Stack<T>, second: T) -> String {
    let npu2 = std::sync::Arc::new(
        npu::NpuDevice::open(second, NpuConfig { name: "npu1".into(), ..Default::default() }).unwrap(),
    );
    let id2 = s.gm.register_device(npu2.clone()).unwrap();
    let asid2 = s.gm.attach(s.space, id2).unwrap();
    let n = 16 * 1024usize;
    let p = region(&s, n as u64 * 4);
    s.npu.launch(&s.gm, s.id, Kernel::fill(s.asid, p as u64, n as u32, 7)).unwrap();
    let cpl = npu2.launch(&s.gm, id2, Kernel::reduce_sum(asid2.0 as u16, p as u64, 0, n as u32)).unwrap();
    assert_eq!(cpl.result, 7 * n as u64, "NPU 1 read what NPU 0 wrote");
    let info = s.gm.page_info(s.space, p as u64).unwrap();
    assert_eq!(info.device, Some(id2), "the page moved to the second NPU");
    let r = [("p", p, n as u64 * 4)];
    format!("npu0:\n{}npu1:\n{}", dump(&s, &r), dump_of(&npu2.pte_dump(asid2, false).unwrap(), &r))
}

/// A fully populated 2 MiB block is mapped with one superpage PTE and demoted when part
/// of it leaves the device.
fn huge_pages<T: DeviceIo + Send + 'static>(s: Stack<T>) -> String {
    let p = region(&s, 4 * MIB);
    let base = (p as u64).next_multiple_of(2 * MIB);
    let n = (2 * MIB / 4) as u32;
    s.gm.hmadvise(s.space, Node::Device(s.id), base, 2 * MIB, Hint::Prefetch).unwrap();
    s.npu.launch(&s.gm, s.id, Kernel::fill(s.asid, base, n, 3)).unwrap();
    let r = [("p", p, 4 * MIB)];
    let whole = dump(&s, &r);
    assert!(whole.contains(" L1 2M "), "one superpage PTE:\n{whole}");
    s.gm.hmadvise(s.space, Node::Cpu, base + 4096, 4096, Hint::DontNeed).unwrap();
    let split = dump(&s, &r);
    assert!(!split.contains(" L1 2M ") && split.lines().count() >= 511, "demoted:\n{split}");
    assert_eq!(read(base as *const u32, 1024), 3);
    format!("after prefetch:\n{whole}after DONTNEED of one page:\n{} lines of 4K mappings\n", split.lines().count())
}

macro_rules! scenarios {
    ($($name:ident),*) => {
        mod rtl {
            $(#[test]
            fn $name() {
                let out = super::$name(tests::rtl(super::cfg()));
                super::snapshot(stringify!($name), &out);
            })*
            #[test]
            fn two_npus() {
                let second = sim_bridge::SimDevice::new(sim_bridge::SimConfig::default()).unwrap();
                let out = super::two_npus(tests::rtl(super::cfg()), second);
                super::snapshot("two_npus", &out);
            }
        }
        mod model {
            $(#[test]
            fn $name() {
                let out = super::$name(tests::model(super::cfg()));
                super::snapshot(stringify!($name), &out);
            })*
            #[test]
            fn two_npus() {
                let out = super::two_npus(tests::model(super::cfg()), npu_refmodel::ModelDevice::new(Default::default()));
                super::snapshot("two_npus", &out);
            }
        }
    };
}

/// One snapshot per scenario, shared by the RTL and the model tests (so the two must
/// render the same page tables).
fn snapshot(name: &str, out: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_suffix("");
    settings.bind(|| insta::assert_snapshot!(format!("pte__{name}"), out));
}

fn cfg() -> NpuConfig {
    NpuConfig { managed_bytes: Some(16 * MIB), ..Default::default() }
}

scenarios!(oversubscription, prefetch_hint, pingpong, two_spaces, huge_pages);
