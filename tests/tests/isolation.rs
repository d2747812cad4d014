//! Isolation: a kernel of one address space never reaches another space's memory, nor
//! memory its own space gave back — whatever shape the attempt takes. Each attempt must
//! end in a kernel abort naming the VA, with every byte of the victim unchanged.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

mod common;

use common::{WORDS, aborted_at, check, fill};
use gmem_host::{Hint, MapFlags, Node};
use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig};
use tests::Stack;

fn isolation<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let region = (WORDS * 4) as u64;
    // Space A (the session's) holds a secret, resident on the device.
    let secret = s.alloc(region).unwrap();
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { fill(secret, |i| 0x5ec0_0000 + i as u32) };
    s.gm.hmadvise(s.space, Node::Device(s.id), secret as u64, region, Hint::Prefetch).unwrap();

    // Space B on the same NPU.
    let b = s.gm.create_space();
    let asid_b = s.gm.attach(b, s.id).unwrap().0 as u16;
    assert_ne!(asid_b, s.asid);
    let out_b = s.gm.mmap(b, region, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { fill(out_b, |_| 7) };

    // 1. B names A's VA directly: B's page table has no such page; the manager refuses.
    let r = s.npu.launch(&s.gm, s.id, Kernel::copy(asid_b, secret as u64, out_b as u64, WORDS as u32));
    aborted_at(r, secret as u64, "B reads A's VA");
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { check(out_b, "B's output untouched", |_| 7) };

    // 2. Stale translations after munmap: A's kernel fills its TLB with a region, the
    //    region is unmapped, the same VA is touched again.
    let gone = s.alloc(region).unwrap();
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { fill(gone, |i| i as u32) };
    s.launch(Kernel::reduce_sum(s.asid, gone as u64, 0, WORDS as u32)).unwrap();
    s.gm.munmap(s.space, gone as *mut u8, region).unwrap();
    let r = s.launch(Kernel::reduce_sum(s.asid, gone as u64, 0, WORDS as u32));
    aborted_at(r, gone as u64, "A touches its unmapped region");
    // New memory (which may reuse the freed frames) reads as its own contents.
    let fresh = s.alloc(region).unwrap();
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { fill(fresh, |i| 0xf00d_0000 + i as u32) };
    let out = s.alloc(region).unwrap();
    s.launch(Kernel::copy(s.asid, fresh as u64, out as u64, WORDS as u32)).unwrap();
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { check(out, "fresh region", |i| 0xf00d_0000 + i as u32) };

    // 3. A reused ASID: B goes away, a new space C gets B's ASID; B's old VA means
    //    nothing in C.
    s.gm.destroy_space(b).unwrap();
    let c = s.gm.create_space();
    let asid_c = s.gm.attach(c, s.id).unwrap().0 as u16;
    let r = s.npu.launch(&s.gm, s.id, Kernel::reduce_sum(asid_c, out_b as u64, 0, WORDS as u32));
    aborted_at(r, out_b as u64, "C reads B's old VA");
    let r = s.npu.launch(&s.gm, s.id, Kernel::reduce_sum(asid_c, secret as u64, 0, WORDS as u32));
    aborted_at(r, secret as u64, "C reads A's VA");

    // 4. A write into another space's device pages through a VA of one's own is
    //    impossible: C's fresh region lives in frames of its own, A's secret survives.
    let own = s.gm.mmap(c, region, MapFlags::PEER_SHARED).unwrap() as *mut u32;
    s.npu.launch(&s.gm, s.id, Kernel::fill(asid_c, own as u64, WORDS as u32, 0xbad)).unwrap();
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { check(own, "C's own region", |_| 0xbad) };
    // SAFETY: a live region of WORDS words, referenced nowhere else.
    unsafe { check(secret, "A's secret after every attempt", |i| 0x5ec0_0000 + i as u32) };
}

#[test]
fn rtl_refuses_every_cross_space_access() {
    isolation(tests::rtl(NpuConfig::default()));
}

#[test]
fn model_refuses_every_cross_space_access() {
    isolation(tests::model(NpuConfig::default()));
}
