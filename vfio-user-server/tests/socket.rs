//! The vfio-user server end to end over its socket, with the `vfio_user` crate's client
//! in the role QEMU plays: configuration space, BAR0 CSRs, DMA into shared memory the
//! client maps by file descriptor, MSI-X through eventfds, and DMA after unmap failing
//! like an IOMMU fault.

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::dma::{DmaAddr, DmaDesc};
use npu::regs;
use sim_bridge::SimConfig;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use vfio_bindings::bindings::vfio::{VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX};
use vfio_user::Client;
use vfio_user_server::{NpuServer, ServeStats, VfioUserError};

/// One server at a time: a Verilated model built on one thread and destroyed on
/// another while a second model lives deadlocks in Verilator 5.006's scope registry
/// (`VerilatedContextImp::scopeErase`). `gmem serve` has one model, so only tests care.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const BAR0: u32 = 0;
const CONFIG: u32 = 7;
const IOVA: u64 = 0x8000_0000;
const SHARED: usize = 64 << 10;

fn socket(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("npu-vfu-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// A server on its own thread; join gives its statistics when the client hangs up.
fn start(name: &str) -> (PathBuf, std::thread::JoinHandle<Result<ServeStats, VfioUserError>>) {
    let path = socket(name);
    let srv = NpuServer::bind(&path, SimConfig::default()).unwrap();
    (path, std::thread::spawn(move || srv.serve()))
}

fn rd(c: &mut Client, off: u32) -> u32 {
    let mut b = [0u8; 4];
    c.region_read(BAR0, u64::from(off), &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn wr(c: &mut Client, off: u32, v: u32) {
    c.region_write(BAR0, u64::from(off), &v.to_le_bytes()).unwrap();
}

/// Shared memory the way QEMU backs guest RAM (memfd), mapped here too.
struct Memfd {
    file: File,
    ptr: *mut u8,
}

impl Memfd {
    fn new() -> Self {
        // SAFETY: a NUL-terminated name; memfd_create takes no other pointers.
        let fd = unsafe { libc::memfd_create(c"npu-test".as_ptr(), 0) };
        assert!(fd >= 0);
        // SAFETY: fd is a fresh descriptor we own.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(SHARED as u64).unwrap();
        // SAFETY: a fresh shared mapping of the whole file; only raw copies touch it.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), SHARED, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        assert_ne!(p, libc::MAP_FAILED);
        Self { file, ptr: p.cast() }
    }
    fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= SHARED);
        // SAFETY: in bounds of the mapping (checked above).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) };
    }
    fn read(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= SHARED);
        let mut v = vec![0u8; len];
        // SAFETY: in bounds of the mapping (checked above); the device may write it
        // concurrently only through raw copies too.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), v.as_mut_ptr(), len) };
        v
    }
}

impl Drop for Memfd {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), SHARED) };
    }
}

/// Channel 0's rings in the shared memory: descriptors at +0, completions at +0x1000.
fn setup_dma(c: &mut Client) {
    wr(c, regs::DMA_DESC_BASE_LO.offset, IOVA as u32);
    wr(c, regs::DMA_DESC_BASE_HI.offset, (IOVA >> 32) as u32);
    wr(c, regs::DMA_DESC_SIZE_LOG2.offset, 4);
    wr(c, regs::DMA_CPL_BASE_LO.offset, (IOVA + 0x1000) as u32);
    wr(c, regs::DMA_CPL_BASE_HI.offset, ((IOVA + 0x1000) >> 32) as u32);
    wr(c, regs::DMA_CPL_SIZE_LOG2.offset, 4);
    wr(c, regs::INT_MASK.offset, 1 << regs::int_cause::DMA0);
    wr(c, regs::CTRL.offset, 1 << regs::ctrl::DMA_EN.lsb);
}

/// Rings the doorbell for `slot + 1` descriptors and waits until the channel is idle.
fn run_dma(c: &mut Client, slot: u32) -> u32 {
    wr(c, regs::DMA_DESC_TAIL.offset, slot + 1);
    let t = Instant::now();
    loop {
        let st = rd(c, regs::DMA_CH_STATUS.offset);
        if st & 1 == 0 {
            return st;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "DMA did not finish, status {st:#x}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn config_space_and_bar0_identify_the_npu() {
    let _one = serial();
    let (path, srv) = start("ident");
    let mut c = Client::new(&path).unwrap();
    let mut b = [0u8; 4];
    c.region_read(CONFIG, 0, &mut b).unwrap();
    assert_eq!(u32::from_le_bytes(b), 0x9038_10ee, "vendor/device IDs of the board");
    assert_eq!(c.region(BAR0).unwrap().size, 4096);
    assert_eq!(c.region(2).unwrap().size, 4096, "BAR2: MSI-X table and PBA");
    assert_eq!(c.get_irq_info(VFIO_PCI_MSIX_IRQ_INDEX).unwrap().count, 7);
    assert_eq!(rd(&mut c, regs::ID.offset), regs::NPU_ID, "\"NPU1\"");
    wr(&mut c, regs::SCRATCH.offset, 0x6d65_6d67);
    assert_eq!(rd(&mut c, regs::SCRATCH.offset), 0x6d65_6d67);
    drop(c);
    let st = srv.join().unwrap().unwrap();
    assert_eq!((st.csr_reads, st.csr_writes), (2, 1));
    assert!(!path.exists(), "the socket is removed when the server stops");
}

#[test]
fn dma_lands_in_client_memory_signals_msix_and_faults_after_unmap() {
    let _one = serial();
    let (path, srv) = start("dma");
    let mut c = Client::new(&path).unwrap();
    let mem = Memfd::new();
    c.dma_map(0, IOVA, SHARED as u64, mem.file.as_raw_fd()).unwrap();
    // MSI-X on, one eventfd per vector.
    c.region_write(CONFIG, 0x42, &0x8006u16.to_le_bytes()).unwrap();
    let efds: Vec<File> = (0..7)
        .map(|_| {
            // SAFETY: eventfd takes no pointers; the descriptor is ours.
            unsafe { File::from_raw_fd(libc::eventfd(0, libc::EFD_NONBLOCK)) }
        })
        .collect();
    let raw: Vec<i32> = efds.iter().map(|f| f.as_raw_fd()).collect();
    c.set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 7, &raw).unwrap();
    setup_dma(&mut c);

    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    mem.write(0x4000, &pattern);
    let h2d = DmaDesc::copy(DmaAddr::Host(IOVA + 0x4000), DmaAddr::Device(0x10000), 4096, 1);
    let d2h = DmaDesc { irq: true, ..DmaDesc::copy(DmaAddr::Device(0x10000), DmaAddr::Host(IOVA + 0x8000), 4096, 2) };
    mem.write(0, &h2d.encode());
    mem.write(32, &d2h.encode());
    let st = run_dma(&mut c, 1);
    assert_eq!(st & 0b10, 0, "channel not halted");
    assert_eq!(mem.read(0x8000, 4096), pattern, "host -> device -> host through the client's memory");
    let mut n = [0u8; 8];
    let t = Instant::now();
    while (&efds[regs::int_cause::DMA0 as usize]).read(&mut n).is_err() {
        assert!(t.elapsed() < Duration::from_secs(5), "no MSI-X message for the DMA0 cause");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(u64::from_le_bytes(n), 1);

    // Rings stay mapped elsewhere: move them to a second range, then unmap the data.
    let mem2 = Memfd::new();
    c.dma_map(0, IOVA + 0x10_0000, SHARED as u64, mem2.file.as_raw_fd()).unwrap();
    c.dma_unmap(IOVA, SHARED as u64).unwrap();
    wr(&mut c, regs::CTRL.offset, 0);
    let ring = IOVA + 0x10_0000;
    wr(&mut c, regs::DMA_DESC_BASE_LO.offset, ring as u32);
    wr(&mut c, regs::DMA_CPL_BASE_LO.offset, (ring + 0x1000) as u32);
    let stale = DmaDesc::copy(DmaAddr::Device(0x10000), DmaAddr::Host(IOVA + 0x8000), 4096, 3);
    wr(&mut c, regs::CTRL.offset, 1 << regs::ctrl::DMA_EN.lsb);
    // The ring indices carry on from the first run: the next slot is the current tail.
    let tail = rd(&mut c, regs::DMA_DESC_TAIL.offset);
    mem2.write(32 * tail as usize, &stale.encode());
    let st = run_dma(&mut c, tail);
    assert_eq!(st & 0b10, 0b10, "DMA to an unmapped IOVA halts the channel");
    drop(c);
    let stats = srv.join().unwrap().unwrap();
    assert!(stats.dma_faults >= 1, "the host port answered with an error: {stats:?}");
    assert_eq!((stats.dma_maps, stats.dma_unmaps), (2, 1));
    assert!(stats.irqs_signalled >= 1);
}

#[test]
fn socket_problems_are_typed_errors() {
    let _one = serial();
    let path = socket("busy");
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(NpuServer::bind(&path, SimConfig::default()), Err(VfioUserError::SocketExists { .. })));
    std::fs::remove_file(&path).unwrap();
    let nowhere = PathBuf::from("/nonexistent-dir/npu.sock");
    assert!(matches!(NpuServer::bind(&nowhere, SimConfig::default()), Err(VfioUserError::Bind { .. })));
}
