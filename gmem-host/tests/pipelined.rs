//! Pipelined migrations (`Hooks::ASYNC_COPY`): a plan of 128 pages or more migrates in
//! parts of about 64 pages, the next part's copy started before this part's host work and
//! commit, so a device moves data while the host commits. The software device copies in
//! `copy_finish`, so a page committed before its copy finished would read zeros.

mod common;

use std::sync::Arc;

use common::*;
use gmem_host::softdev::{SoftConfig, SoftDevice, SoftEvent};
use gmem_host::{
    Access, Config, DeviceFault, FaultResolution, Gmem, GmemError, Hint, Hooks, HostWork, MapFlags, MigrateError, Node,
    Prot,
};

const PAGE: u64 = 4096;
const CHUNK: u64 = 2 << 20;
/// Pages of a pipeline part (`Config::part_pages`, default).
const PART: u64 = 64;
/// Parts of a 2 MiB chunk.
const PARTS: u64 = CHUNK / PAGE / PART;

/// A rig with 16 MiB of device memory declaring `hooks`, and a 4 MiB region written
/// by the CPU (byte `i` of page `p` is `p as u8 ^ 0x5a`), 2 MiB-aligned.
fn written(hooks: Hooks) -> (Rig, *mut u8) {
    written_with(Config::default(), hooks)
}

/// [`written`] under `cfg`.
fn written_with(cfg: Config, hooks: Hooks) -> (Rig, *mut u8) {
    let r = rig_with(cfg, SoftConfig { hooks, ..Default::default() });
    let p = r.gm.mmap(r.space, 2 * CHUNK, MapFlags::PEER_SHARED).expect("mmap");
    assert_eq!(p as u64 % CHUNK, 0, "chunk-aligned");
    for pg in 0..2 * CHUNK / PAGE {
        cpu_write(p, (pg * PAGE) as usize, pg as u8 ^ 0x5a);
    }
    r.dev.take_events();
    (r, p)
}

/// Every page's first byte as the device reads it.
fn device_view(r: &Rig, p: *mut u8) -> Vec<u8> {
    (0..2 * CHUNK / PAGE)
        .map(|pg| {
            let mut b = [0u8; 1];
            r.dev.load(&r.gm, r.id, r.asid, p as u64 + pg * PAGE, &mut b).expect("device load");
            b[0]
        })
        .collect()
}

/// The host work of part `k` of a round of parts of `per` pages copied to the host
/// (`to_host`) or to the device: the first part's is the round's.
fn part_work(k: u64, per: u64, to_host: bool) -> SoftEvent {
    let (to_device, to_host) = if to_host { (0, per) } else { (per, 0) };
    SoftEvent::HostWork(match k {
        0 => HostWork::Migration { to_device, to_host },
        _ => HostWork::MigrationPart { to_device, to_host },
    })
}

/// `n` parts of `per` pages from ticket `first_ticket` on: each one's host work runs
/// while the next one copies.
fn pipeline(first_ticket: u64, n: u64, per: u64, to_host: bool) -> Vec<SoftEvent> {
    let bytes = per * PAGE;
    let t0 = first_ticket;
    let mut want = vec![SoftEvent::CopyStarted { ticket: t0, bytes }, SoftEvent::CopyFinished { ticket: t0 }];
    for k in 1..n {
        let t = t0 + k;
        want.extend([
            SoftEvent::CopyStarted { ticket: t, bytes },
            part_work(k - 1, per, to_host),
            SoftEvent::CopyFinished { ticket: t },
        ]);
    }
    want.push(part_work(n - 1, per, to_host));
    want
}

#[test]
fn a_two_chunk_prefetch_commits_each_part_while_the_next_one_copies_and_maps_each_chunk_whole() {
    let (r, p) = written(Hooks::all());
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 2 * CHUNK, Hint::Prefetch).expect("prefetch");
    let copies: Vec<SoftEvent> =
        r.dev.take_events().into_iter().filter(|e| !matches!(e, SoftEvent::HostWork(HostWork::Hint { .. }))).collect();
    let want = pipeline(1, 2 * PARTS, PART, false);
    assert_eq!(copies, want, "each part's host work runs while the next part copies");
    assert_eq!(r.dev.copies_in_flight(), 0);
    let want: Vec<u8> = (0..2 * CHUNK / PAGE).map(|pg| pg as u8 ^ 0x5a).collect();
    assert_eq!(device_view(&r, p), want, "every page's data on the device");
    assert_eq!(r.dev.mappings(r.asid), 2, "one 2 MiB mapping per chunk, made once its last part committed");
}

#[test]
fn a_chunk_whose_last_part_fails_maps_its_committed_parts_page_by_page() {
    let (r, p) = written(Hooks::all());
    let before = r.gm.counters();
    // The first chunk's parts copy but its last one, whose start fails once.
    r.dev.inject_failure("copy_batch", PARTS as u32 - 1, 1);
    let rep = r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 2 * CHUNK, Hint::Prefetch).expect("prefetch");
    assert_eq!(rep.pages_moved, 1024);
    let after = r.gm.counters();
    assert_eq!(after.dma_retries - before.dma_retries, PART, "the last part's pages, once each");
    assert_eq!(after.pages_h2d - before.pages_h2d, 1024, "no page copied twice");
    assert_eq!(after.huge_maps - before.huge_maps, 1, "only the second chunk maps whole");
    assert_eq!(r.dev.mappings(r.asid), 512 + 1, "the first chunk in base pages, the second in one");
    let want: Vec<u8> = (0..2 * CHUNK / PAGE).map(|pg| pg as u8 ^ 0x5a).collect();
    assert_eq!(device_view(&r, p), want, "every page's data on the device");
    for pg in [0, 200, 511, 512, 1023] {
        assert_eq!(cpu_read(p, (pg * PAGE) as usize), pg as u8 ^ 0x5a, "page {pg} comes back to the CPU intact");
    }
}

#[test]
fn a_device_without_async_copies_migrates_the_plan_in_one_round() {
    let (r, p) = written(Hooks::all() - Hooks::ASYNC_COPY);
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 2 * CHUNK, Hint::Prefetch).expect("prefetch");
    let events = r.dev.take_events();
    let work = SoftEvent::HostWork(HostWork::Migration { to_device: 1024, to_host: 0 });
    assert_eq!(events.iter().filter(|e| matches!(e, SoftEvent::HostWork(HostWork::Migration { .. }))).count(), 1);
    assert!(events.contains(&work), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, SoftEvent::CopyStarted { .. })), "copy_batch, not copy_start");
    let want: Vec<u8> = (0..2 * CHUNK / PAGE).map(|pg| pg as u8 ^ 0x5a).collect();
    assert_eq!(device_view(&r, p), want);
}

#[test]
fn a_failed_part_is_tried_again_alone_and_every_started_copy_is_finished() {
    let (r, p) = written(Hooks::all());
    let before = r.gm.counters();
    // The first part's copy starts; the second one's start fails once.
    r.dev.inject_failure("copy_batch", 1, 1);
    let rep = r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 2 * CHUNK, Hint::Prefetch).expect("prefetch");
    assert_eq!(rep.pages_moved, 1024);
    let after = r.gm.counters();
    assert_eq!(after.dma_retries - before.dma_retries, PART, "the second part's pages, once each");
    assert_eq!(after.pages_h2d - before.pages_h2d, 1024, "no page copied twice");
    assert_eq!(r.dev.copies_in_flight(), 0, "every started copy was finished");
    let want: Vec<u8> = (0..2 * CHUNK / PAGE).map(|pg| pg as u8 ^ 0x5a).collect();
    assert_eq!(device_view(&r, p), want);
}

#[test]
fn a_part_whose_copy_keeps_failing_fails_the_hint_and_loses_nothing() {
    let (r, p) = written(Hooks::all());
    let frames = r.gm.device_pages(r.id);
    // Every copy after the first part's fails, the hint's roll-back included: the first
    // part stays on the device, where its data is.
    r.dev.inject_failure("copy_batch", 1, 1000);
    let e = r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 2 * CHUNK, Hint::Prefetch).expect_err("fails");
    assert!(
        matches!(&e, GmemError::Fault(gmem_host::FaultError::Migration { source, .. })
            if matches!(**source, MigrateError::Copy { .. })),
        "{e:?}"
    );
    assert_eq!(r.dev.copies_in_flight(), 0, "every started copy was finished");
    r.dev.inject_failure("copy_batch", 0, 0);
    for pg in 0..2 * CHUNK / PAGE {
        assert_eq!(cpu_read(p, (pg * PAGE) as usize), pg as u8 ^ 0x5a, "page {pg} intact for the CPU");
    }
    assert_eq!(r.gm.device_pages(r.id), frames, "back on the CPU, no frame held");
}

#[test]
fn a_round_to_the_host_installs_each_part_while_the_next_one_copies() {
    let (r, p) = written(Hooks::all());
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, CHUNK, Hint::Prefetch).expect("to the device");
    r.dev.take_events();
    r.gm.hmadvise(r.space, Node::Cpu, p as u64, CHUNK, Hint::DontNeed).expect("back");
    let events: Vec<SoftEvent> =
        r.dev.take_events().into_iter().filter(|e| !matches!(e, SoftEvent::HostWork(HostWork::Hint { .. }))).collect();
    // The prefetch took the first PARTS tickets.
    let want = pipeline(PARTS + 1, PARTS, PART, true);
    assert_eq!(events, want, "each part is installed while the next one copies");
    assert_eq!(r.dev.copies_in_flight(), 0);
    for pg in 0..CHUNK / PAGE {
        assert_eq!(cpu_read(p, (pg * PAGE) as usize), pg as u8 ^ 0x5a, "page {pg} back with its data");
    }
}

#[test]
fn a_small_part_size_pipelines_a_small_plan_both_ways() {
    // Parts of 4 pages (what the soak runs with): a 64 KiB prefetch is 4 parts, its way
    // back too, each part's host work overlapping the next one's copy.
    let cfg = Config { part_pages: 4, ..Config::default() };
    let (r, p) = written_with(cfg, Hooks::all());
    let before = r.gm.counters().pipelined_parts;
    r.gm.hmadvise(r.space, Node::Device(r.id), p as u64, 16 * PAGE, Hint::Prefetch).expect("to the device");
    r.gm.hmadvise(r.space, Node::Cpu, p as u64, 16 * PAGE, Hint::DontNeed).expect("back");
    let events: Vec<SoftEvent> =
        r.dev.take_events().into_iter().filter(|e| !matches!(e, SoftEvent::HostWork(HostWork::Hint { .. }))).collect();
    let want: Vec<SoftEvent> = pipeline(1, 4, 4, false).into_iter().chain(pipeline(5, 4, 4, true)).collect();
    assert_eq!(events, want);
    assert_eq!(r.gm.counters().pipelined_parts - before, 8, "4 parts each way");
    for pg in 0..16 {
        assert_eq!(cpu_read(p, (pg * PAGE) as usize), pg as u8 ^ 0x5a, "page {pg} back with its data");
    }
}

/// A manager and software device that callbacks can share, and a 2 MiB chunk at `va`
/// written by the CPU as in [`written`].
struct Shared {
    gm: Arc<Gmem>,
    dev: Arc<SoftDevice>,
    id: gmem_host::DeviceId,
    space: gmem_host::SpaceId,
    asid: gmem_host::Asid,
    va: u64,
}

fn shared() -> Shared {
    let gm = Arc::new(Gmem::new(Config::default()).expect("manager"));
    let dev = Arc::new(SoftDevice::new(SoftConfig { hooks: Hooks::all(), mem_bytes: 16 << 20, ..Default::default() }));
    let id = gm.register_device(dev.clone()).expect("register");
    let space = gm.create_space();
    let asid = gm.attach(space, id).expect("attach");
    let p = gm.mmap(space, 2 * CHUNK, MapFlags::PEER_SHARED).expect("mmap");
    let va = p as u64 + (CHUNK - p as u64 % CHUNK) % CHUNK;
    for pg in 0..CHUNK / PAGE {
        cpu_write(va as *mut u8, (pg * PAGE) as usize, pg as u8 ^ 0x5a);
    }
    Shared { gm, dev, id, space, asid, va }
}

/// Arms `dev` to run `f` when the `n`-th next copy finishes (the manager's lock dropped).
fn at_copy_finish(dev: Arc<SoftDevice>, n: u32, f: Box<dyn FnOnce() + Send>) {
    let again = dev.clone();
    dev.on_next_copy(Box::new(move || if n == 0 { f() } else { at_copy_finish(again, n - 1, f) }));
}

#[test]
fn an_mprotect_while_a_chunk_is_staged_leaves_no_page_mapped_beyond_it() {
    let Shared { gm, dev, id, space, asid, va } = shared();
    // While the third part copies, the first two are staged (committed, not mapped).
    let (g2, d2) = (gm.clone(), dev.clone());
    at_copy_finish(d2, 2, Box::new(move || g2.mprotect(space, va, CHUNK, Prot::READ).expect("mprotect")));
    gm.hmadvise(space, Node::Device(id), va, CHUNK, Hint::Prefetch).expect("prefetch");
    for pg in 0..CHUNK / PAGE {
        let rights = dev.translate(asid, va + pg * PAGE).map(|(_, prot)| prot);
        assert!(rights.is_none_or(|r| !r.contains(Prot::WRITE)), "page {pg} mapped {rights:?} after PROT_READ");
    }
    let mut b = [0u8; 1];
    dev.load(&gm, id, asid, va, &mut b).expect("a read is allowed");
    assert_eq!(b[0], 0x5a);
    assert!(dev.store(&gm, id, asid, va, &[7]).is_err(), "a device store to a PROT_READ page");
}

#[test]
fn a_cpu_write_to_a_staged_page_waits_for_its_chunk_and_lands_on_its_data() {
    let Shared { gm, dev, id, space, va, .. } = shared();
    // While the third part copies, a thread writes byte 1 of page 5, staged with the
    // first part (its CPU copy dropped, not mapped on the device yet); the copy waits
    // until that write is in the manager's fault handler.
    let writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>> = Arc::default();
    let (g2, w2) = (gm.clone(), writer.clone());
    at_copy_finish(
        dev.clone(),
        2,
        Box::new(move || {
            let before = g2.counters().cpu_faults;
            let addr = va as usize + 5 * PAGE as usize;
            *w2.lock().unwrap() = Some(std::thread::spawn(move || cpu_write(addr as *mut u8, 1, 0xee)));
            let t0 = std::time::Instant::now();
            while g2.counters().cpu_faults == before {
                assert!(t0.elapsed() < std::time::Duration::from_secs(10), "the write never faulted");
                std::thread::yield_now();
            }
        }),
    );
    gm.hmadvise(space, Node::Device(id), va, CHUNK, Hint::Prefetch).expect("prefetch");
    writer.lock().unwrap().take().expect("the writer ran").join().expect("writer");
    let page5 = va as usize + 5 * PAGE as usize;
    assert_eq!(cpu_read(page5 as *mut u8, 1), 0xee, "the write landed");
    assert_eq!(cpu_read(page5 as *mut u8, 0), 5 ^ 0x5a, "on the staged page's data, from the device");
    for pg in (0..CHUNK / PAGE).step_by(37) {
        assert_eq!(cpu_read(va as *mut u8, (pg * PAGE) as usize), pg as u8 ^ 0x5a, "page {pg}");
    }
}

/// A write fault per page of `pages`, fault `i` on page `pages[i]`, each answered retry;
/// returns the events of the batch but its `FaultBatch` host work.
fn fault_batch(r: &Rig, p: *mut u8, pages: &[u64]) -> Vec<SoftEvent> {
    let faults: Vec<DeviceFault> = pages
        .iter()
        .enumerate()
        .map(|(i, &pg)| DeviceFault { asid: r.asid, va: p as u64 + pg * PAGE, access: Access::Write, tag: i as u64 })
        .collect();
    let res = r.gm.dev_fault(r.id, &faults);
    assert!(res.iter().all(FaultResolution::is_retry), "{res:?}");
    r.dev.take_events().into_iter().filter(|e| !matches!(e, SoftEvent::HostWork(HostWork::FaultBatch { .. }))).collect()
}

/// Only the faulted pages move: no density prefetch, no fault-around block.
fn no_prefetch() -> Config {
    Config { prefetch_threshold_pct: None, dev_fault_block_pages: 1, ..Config::default() }
}

#[test]
fn a_fault_batch_is_answered_part_by_part_while_the_later_parts_copy() {
    let (r, p) = written_with(no_prefetch(), Hooks::all());
    // 256 pages of the first chunk (not whole: base mappings), fault i on page 7i mod 256.
    let pages: Vec<u64> = (0..4 * PART).map(|i| i * 7 % (4 * PART)).collect();
    let events = fault_batch(&r, p, &pages);
    let mut want = pipeline(1, 4, PART, false);
    // Part k's faults are reported after its host work and commit, before part k+1's
    // copy finishes; the last part's are answered with the batch.
    for k in (0..3).rev() {
        let at = 2 + 3 * k as usize + 2;
        let of_part: Vec<usize> = (0..pages.len()).filter(|&i| pages[i] / PART == k).collect();
        assert_eq!(want[at - 1], part_work(k, PART, false));
        want.insert(at, SoftEvent::FaultsResolved(of_part));
    }
    assert_eq!(events, want);
    let data: Vec<u8> = device_view(&r, p)[..4 * PART as usize].to_vec();
    assert_eq!(data, (0..4 * PART).map(|pg| pg as u8 ^ 0x5a).collect::<Vec<u8>>(), "each page's data on the device");
}

#[test]
fn faults_on_a_staged_chunk_are_answered_once_it_is_mapped_whole() {
    let (r, p) = written_with(no_prefetch(), Hooks::all());
    let pages: Vec<u64> = (0..2 * CHUNK / PAGE).collect();
    let events = fault_batch(&r, p, &pages);
    let resolved: Vec<(usize, &SoftEvent)> =
        events.iter().enumerate().filter(|(_, e)| matches!(e, SoftEvent::FaultsResolved(_))).collect();
    let first_chunk: Vec<usize> = (0..(CHUNK / PAGE) as usize).collect();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(*resolved[0].1, SoftEvent::FaultsResolved(first_chunk), "the first chunk's faults, all at once");
    let works_before = events[..resolved[0].0].iter().filter(|e| matches!(e, SoftEvent::HostWork(_))).count();
    assert_eq!(works_before as u64, PARTS, "after the part that maps the first chunk whole, not before");
    assert_eq!(r.dev.mappings(r.asid), 2);
}

#[test]
fn a_fault_reported_resolved_is_answered_retry_though_its_region_goes_before_its_slice() {
    // 1 MiB of device memory: a batch is handled in slices of 128 pages.
    let gm = Arc::new(Gmem::new(no_prefetch()).expect("manager"));
    let dev = Arc::new(SoftDevice::new(SoftConfig { hooks: Hooks::all(), mem_bytes: 1 << 20, ..Default::default() }));
    let id = gm.register_device(dev.clone()).expect("register");
    let space = gm.create_space();
    let asid = gm.attach(space, id).expect("attach");
    let a = gm.mmap(space, 2 * PART * PAGE, MapFlags::PEER_SHARED).expect("mmap") as u64;
    let b = gm.mmap(space, PAGE, MapFlags::PEER_SHARED).expect("mmap") as u64;
    assert!(b > a, "slices follow page order: a's pages first");
    for pg in 0..2 * PART {
        cpu_write(a as *mut u8, (pg * PAGE) as usize, 1);
    }
    cpu_write(b as *mut u8, 0, 2);
    let read_b = DeviceFault { asid, va: b, access: Access::Read, tag: 0 };
    assert!(gm.dev_fault(id, &[read_b]).iter().all(FaultResolution::is_retry), "b's page on the device");
    // 128 write faults on a (the first slice: two parts), then a read of b (the second
    // slice), which is mapped already and so reported with a's first part.
    let mut faults: Vec<DeviceFault> =
        (0..2 * PART).map(|pg| DeviceFault { asid, va: a + pg * PAGE, access: Access::Write, tag: pg }).collect();
    faults.push(read_b);
    // While a's second part copies, b is unmapped: its slice then finds no region.
    let g2 = gm.clone();
    at_copy_finish(dev.clone(), 1, Box::new(move || g2.munmap(space, b as *mut u8, PAGE).expect("munmap")));
    dev.take_events();
    let before = gm.counters();
    let res = gm.dev_fault(id, &faults);
    let reported: Vec<usize> = dev
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            SoftEvent::FaultsResolved(v) => Some(v),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(reported.contains(&(2 * PART as usize)), "b's fault reported with a's first part: {reported:?}");
    assert!(res.iter().all(FaultResolution::is_retry), "a device may have replayed it: retry, {res:?}");
    assert_eq!(gm.counters().fault_aborts, before.fault_aborts, "no abort counted that no device saw");
}
