//! Scenario 1, malloc-style sharing: the CPU fills arrays in a `PEER_SHARED` region,
//! the NPU adds them (its faults migrate the pages with the DMA engine), and the CPU
//! reads the result back through userfaultfd fault-back — no explicit copy anywhere.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use gmem_host::MapFlags;
use npu::kernel::Kernel;
use npu::{DeviceIo, NpuConfig};
use tests::Stack;

fn sharing<T: DeviceIo + Send + 'static>(s: Stack<T>) {
    let n = 48 * 1024usize; // 192 KiB per array
    let bytes = (n * 4) as u64;
    let p = s.gm.mmap(s.space, 3 * bytes, MapFlags::PEER_SHARED).unwrap();
    // SAFETY: the region holds three arrays of `bytes` bytes.
    let (a, b, c) =
        unsafe { (p as *mut u32, p.add(bytes as usize) as *mut u32, p.add(2 * bytes as usize) as *mut u32) };
    for i in 0..n {
        // SAFETY: a and b are inside the region just mapped; the CPU owns its pages.
        unsafe {
            a.add(i).write(i as u32 * 3);
            b.add(i).write(0x1000_0000 + i as u32);
        }
    }
    let k = Kernel::add(s.asid, a as u64, b as u64, c as u64, n as u32);
    let cpl = s.npu.launch(&s.gm, s.id, k).unwrap();
    assert_eq!(cpl.done, n as u32);
    for i in 0..n {
        // SAFETY: c is inside the region; a CPU touch of a device page faults it back.
        let v = unsafe { c.add(i).read() };
        assert_eq!(v, i as u32 * 3 + 0x1000_0000 + i as u32, "element {i}");
    }
    let st = s.npu.stats();
    assert!(st.faults > 0 && st.dma_bytes >= 3 * bytes, "{st:?}");
}

#[test]
fn rtl_malloc_style_sharing() {
    sharing(tests::rtl(NpuConfig::default()));
}

#[test]
fn model_malloc_style_sharing() {
    sharing(tests::model(NpuConfig::default()));
}
