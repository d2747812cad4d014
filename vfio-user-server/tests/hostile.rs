//! The server against a hostile VMM: malformed, out-of-range and out-of-order messages,
//! first one class at a time over the socket, then thousands of generated messages
//! through the message handler with the server's invariants checked after each.
//!
//! The generated run is seeded and bounded (3 000 messages by default); run it at
//! length with `VFIO_USER_FUZZ_CASES=1000000 VFIO_USER_FUZZ_SEED=7 cargo test -p
//! vfio-user-server --test hostile --release` (and `PROPTEST_CASES=100000` for the
//! property test).

#![allow(clippy::unwrap_used)] // in a test, an unwrap failing is the test failing

use npu::dma::{DmaAddr, DmaDesc};
use npu::regs;
use proptest::prelude::*;
use sim_bridge::SimConfig;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use vfio_user_server::protocol::{HEADER_BYTES, MAX_DATA_XFER, MAX_MESSAGE_BYTES, cmd};
use vfio_user_server::{Handler, Header, NpuServer, Session, VfioUserError};

/// One Verilated model at a time (see tests/socket.rs).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn socket(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("npu-hostile-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn memfd(len: u64) -> File {
    // SAFETY: a NUL-terminated name; the descriptor is ours.
    let f = unsafe { File::from_raw_fd(libc::memfd_create(c"hostile".as_ptr(), 0)) };
    f.set_len(len).unwrap();
    f
}

fn eventfd() -> File {
    // SAFETY: eventfd takes no pointers; the descriptor is ours.
    unsafe { File::from_raw_fd(libc::eventfd(0, libc::EFD_NONBLOCK)) }
}

fn msg(id: u16, command: u16, flags: u32, body: &[u8]) -> Vec<u8> {
    let size = (HEADER_BYTES + body.len()) as u32;
    let mut m = Header { id, command, size, flags, error: 0 }.to_bytes().to_vec();
    m.extend_from_slice(body);
    m
}

fn version_body() -> Vec<u8> {
    let mut b = vec![0u8; 4];
    b.extend_from_slice(b"{}\0");
    b
}

fn le(fields: &[u64], widths: &[usize]) -> Vec<u8> {
    fields.iter().zip(widths).flat_map(|(v, &w)| v.to_le_bytes()[..w].to_vec()).collect()
}

fn dma_map_body(flags: u32, offset: u64, iova: u64, size: u64) -> Vec<u8> {
    le(&[32, u64::from(flags), offset, iova, size], &[4, 4, 8, 8, 8])
}

fn dma_unmap_body(flags: u32, iova: u64, size: u64) -> Vec<u8> {
    le(&[24, u64::from(flags), iova, size], &[4, 4, 8, 8])
}

fn access_body(region: u32, offset: u64, count: u32) -> Vec<u8> {
    le(&[offset, u64::from(region), u64::from(count)], &[8, 4, 4])
}

fn set_irqs_body(flags: u32, index: u32, start: u32, count: u32) -> Vec<u8> {
    le(&[20, u64::from(flags), u64::from(index), u64::from(start), u64::from(count)], &[4, 4, 4, 4, 4])
}

/// A raw client: whatever bytes and descriptors the test chooses.
struct Raw(UnixStream);

impl Raw {
    fn send(&mut self, bytes: &[u8], fds: &[RawFd]) {
        if fds.is_empty() {
            self.0.write_all(bytes).unwrap();
            return;
        }
        // SAFETY: CMSG_SPACE/CMSG_LEN are size computations.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) as usize,
                libc::CMSG_LEN(std::mem::size_of_val(fds) as u32),
            )
        };
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
        // SAFETY: an all-zero msghdr is valid.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf.as_mut_ptr().cast();
        m.msg_controllen = space as _;
        // SAFETY: the control buffer holds one header with room for `fds`; the kernel
        // only reads `bytes` (iov) and `cbuf`.
        let n = unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = len as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast::<RawFd>(), fds.len());
            libc::sendmsg(self.0.as_raw_fd(), &m, 0)
        };
        assert_eq!(n, bytes.len() as isize);
    }

    /// The next reply: its header and payload.
    fn reply(&mut self) -> (Header, Vec<u8>) {
        let mut h = [0u8; HEADER_BYTES];
        self.0.read_exact(&mut h).unwrap();
        let h = Header::parse(&h);
        let mut body = vec![0u8; h.size as usize - HEADER_BYTES];
        self.0.read_exact(&mut body).unwrap();
        (h, body)
    }

    fn ask(&mut self, bytes: &[u8], fds: &[RawFd]) -> (Header, Vec<u8>) {
        self.send(bytes, fds);
        self.reply()
    }
}

fn assert_errno(r: (Header, Vec<u8>), errno: i32, what: &str) {
    assert!(r.0.is_error(), "{what}: expected an error reply, got {:?}", r.0);
    assert_eq!(r.0.error, errno as u32, "{what}: errno");
}

fn assert_ok(r: (Header, Vec<u8>), what: &str) -> Vec<u8> {
    assert!(!r.0.is_error(), "{what}: refused with errno {}", r.0.error);
    r.1
}

/// A server on its own thread and a raw client connected to it.
fn start(name: &str) -> (PathBuf, Raw, std::thread::JoinHandle<Result<vfio_user_server::ServeStats, VfioUserError>>) {
    let path = socket(name);
    let srv = NpuServer::bind(&path, SimConfig::default()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is owner-only");
    let t = std::thread::spawn(move || srv.serve());
    let c = Raw(UnixStream::connect(&path).unwrap());
    (path, c, t)
}

#[test]
fn out_of_order_and_malformed_messages_get_error_replies_and_the_session_goes_on() {
    let _one = serial();
    let (_path, mut c, srv) = start("order");
    let einval = libc::EINVAL;
    assert_errno(c.ask(&msg(1, cmd::REGION_READ, 0, &access_body(0, 0, 4)), &[]), einval, "read before VERSION");
    assert_errno(c.ask(&msg(2, cmd::VERSION, 0, &[]), &[]), einval, "VERSION without major/minor");
    assert_errno(c.ask(&msg(3, cmd::VERSION, 0, &[0, 0, 0, 0, b'{']), &[]), einval, "unterminated capabilities");
    assert_errno(c.ask(&msg(4, cmd::VERSION, 0, &[1, 0, 0, 0]), &[]), einval, "major version 1");
    let caps = assert_ok(c.ask(&msg(5, cmd::VERSION, 0, &version_body()), &[]), "VERSION");
    assert!(String::from_utf8_lossy(&caps).contains("\"max_data_xfer_size\":1048576"));
    assert_errno(c.ask(&msg(6, cmd::VERSION, 0, &version_body()), &[]), einval, "VERSION twice");
    assert_errno(c.ask(&msg(7, 99, 0, &[]), &[]), libc::ENOTSUP, "unknown command");
    assert_errno(c.ask(&msg(8, 6, 0, &[]), &[]), libc::ENOTSUP, "GET_REGION_IO_FDS");
    assert_errno(c.ask(&msg(9, cmd::DEVICE_RESET, 1, &[]), &[]), einval, "a reply sent as a command");
    // Region accesses.
    let rd = |id, region, off, count| msg(id, cmd::REGION_READ, 0, &access_body(region, off, count));
    assert_errno(c.ask(&rd(10, 0, 0, 8), &[]), einval, "BAR0 8-byte read");
    assert_errno(c.ask(&rd(11, 0, 4096, 4), &[]), einval, "BAR0 past its end");
    assert_errno(c.ask(&rd(12, 0, u64::MAX - 3, 4), &[]), einval, "BAR0 offset wrapping");
    assert_errno(c.ask(&rd(13, 7, 254, 4), &[]), einval, "config space past its end");
    assert_errno(c.ask(&rd(14, 1, 0, 4), &[]), einval, "empty BAR1");
    assert_errno(c.ask(&rd(15, 9, 0, 4), &[]), einval, "region 9 (none)");
    assert_errno(c.ask(&rd(16, 0, 0, u32::MAX), &[]), einval, "4 GiB read (no allocation)");
    assert_errno(c.ask(&rd(17, 0, 0, MAX_DATA_XFER + 1), &[]), einval, "read above max_data_xfer_size");
    let mut short = access_body(0, 0, 8);
    short.extend_from_slice(&[1, 2, 3, 4]);
    assert_errno(c.ask(&msg(18, cmd::REGION_WRITE, 0, &short), &[]), einval, "write count above data sent");
    assert_errno(c.ask(&msg(19, cmd::REGION_WRITE, 0, &[0; 8]), &[]), einval, "write body too short");
    let id = assert_ok(c.ask(&rd(20, 0, u64::from(regs::ID.offset), 4), &[]), "ID read");
    assert_eq!(u32::from_le_bytes(id[16..20].try_into().unwrap()), regs::NPU_ID, "the session still works");
    // Info requests for indices that do not exist.
    let ri = le(&[32, 0, 99, 0, 0, 0], &[4, 4, 4, 4, 8, 8]);
    assert_errno(c.ask(&msg(21, cmd::DEVICE_GET_REGION_INFO, 0, &ri), &[]), einval, "region info 99");
    let ii = le(&[16, 0, u64::from(u32::MAX), 0], &[4, 4, 4, 4]);
    assert_errno(c.ask(&msg(22, cmd::DEVICE_GET_IRQ_INFO, 0, &ii), &[]), einval, "IRQ info u32::MAX");
    // File descriptors with a command that takes none are closed, not kept.
    let ev = eventfd();
    assert_errno(c.ask(&rd(23, 0, 0, 4), &[ev.as_raw_fd()]), einval, "read with a descriptor");
    drop(c);
    srv.join().unwrap().unwrap();
}

#[test]
fn dma_maps_with_bad_fds_offsets_overlaps_and_unmaps_are_refused() {
    let _one = serial();
    let (_path, mut c, srv) = start("dma");
    assert_ok(c.ask(&msg(1, cmd::VERSION, 0, &version_body()), &[]), "VERSION");
    let file = memfd(0x10000);
    let fd = file.as_raw_fd();
    let map = |id, off, iova, size| msg(id, cmd::DMA_MAP, 0, &dma_map_body(3, off, iova, size));
    let einval = libc::EINVAL;
    assert_ok(c.ask(&map(2, 0, 0x30_0000, 0x1000), &[]), "no descriptor: recorded (a ROM), not reachable");
    assert_errno(c.ask(&map(3, 0, 0x10_0000, 0), &[fd]), einval, "empty range");
    assert_errno(c.ask(&map(4, 0, u64::MAX - 0xfff, 0x2000), &[fd]), einval, "IOVA wraps");
    assert_errno(c.ask(&map(5, 0xf000, 0x10_0000, 0x2000), &[fd]), einval, "past the end of the file");
    assert_errno(c.ask(&map(6, u64::MAX, 0x10_0000, 0x1000), &[fd]), einval, "offset wraps");
    let ev = eventfd();
    assert_errno(c.ask(&map(7, 0, 0x10_0000, 0x1000), &[ev.as_raw_fd()]), einval, "an eventfd is not memory");
    assert_errno(c.ask(&map(8, 0, 0x10_0000, 0x1000), &[fd, fd]), einval, "two descriptors");
    assert_errno(c.ask(&msg(9, cmd::DMA_MAP, 0, &[0; 16]), &[fd]), einval, "short body");
    assert_ok(c.ask(&map(10, 0x4000, 0x10_0000, 0x4000), &[fd]), "a good map");
    assert_errno(c.ask(&map(11, 0, 0x10_3000, 0x2000), &[fd]), libc::EEXIST, "overlap at the end");
    assert_errno(c.ask(&map(12, 0, 0xf_f000, 0x2000), &[fd]), libc::EEXIST, "overlap at the start");
    let unmap = |id, flags, iova, size| msg(id, cmd::DMA_UNMAP, 0, &dma_unmap_body(flags, iova, size));
    assert_errno(c.ask(&unmap(13, 0, 0x10_1000, 0x1000), &[]), einval, "unmap splitting a mapping");
    assert_errno(c.ask(&unmap(14, 2, 0x10_0000, 0x4000), &[]), libc::ENOTSUP, "dirty bitmap");
    assert_errno(c.ask(&unmap(15, 1 << 9, 0x10_0000, 0x4000), &[]), einval, "unknown flag");
    assert_ok(c.ask(&unmap(16, 0, 0x20_0000, 0x1000), &[]), "unmap of nothing");
    assert_ok(c.ask(&unmap(17, 0, u64::MAX - 5, 100), &[]), "unmap of nothing, wrapping");
    // SET_IRQS out of range.
    let trig = (1 << 2) | (1 << 5); // DATA_EVENTFD | ACTION_TRIGGER
    let irqs = |id, index, start, count| msg(id, cmd::DEVICE_SET_IRQS, 0, &set_irqs_body(trig, index, start, count));
    assert_errno(c.ask(&irqs(18, 2, 7, 1), &[ev.as_raw_fd()]), einval, "MSI-X vector 7");
    assert_errno(c.ask(&irqs(19, 2, u32::MAX, 2), &[]), einval, "vector range wrapping");
    assert_errno(c.ask(&irqs(20, 9, 0, 1), &[ev.as_raw_fd()]), einval, "IRQ index 9");
    assert_errno(c.ask(&irqs(21, 2, 0, 2), &[ev.as_raw_fd()]), einval, "one eventfd for two vectors");
    let bool_data = msg(22, cmd::DEVICE_SET_IRQS, 0, &set_irqs_body(2 | (1 << 3), 2, 0, 1));
    assert_errno(c.ask(&bool_data, &[]), libc::ENOTSUP, "mask by bool array");
    assert_ok(c.ask(&unmap(23, 0, 0x10_0000, 0x4000), &[]), "unmap");
    drop(c);
    let st = srv.join().unwrap().unwrap();
    assert_eq!((st.dma_maps, st.dma_unmaps), (2, 1));
}

#[test]
fn a_message_size_outside_the_bounds_ends_the_connection_with_a_typed_error() {
    let _one = serial();
    for (name, size) in [("small", 8u32), ("huge", MAX_MESSAGE_BYTES + 1), ("max", u32::MAX)] {
        let (path, mut c, srv) = start(name);
        let mut h = Header { id: 1, command: cmd::VERSION, size, flags: 0, error: 0 }.to_bytes().to_vec();
        h.extend_from_slice(&[0; 4]);
        let r = c.ask(&h, &[]);
        assert_errno(r, libc::EINVAL, name);
        assert!(matches!(srv.join().unwrap(), Err(VfioUserError::Framing { size: s }) if s == size));
        assert!(!path.exists());
    }
}

/// The RTL reaches only what is mapped: a copy whose destination runs off the end of
/// a mapping halts the channel, and the bytes of the client's file around the mapped
/// window stay as they were.
#[test]
fn the_rtl_cannot_reach_past_a_mapping() {
    let _one = serial();
    let path = socket("guard");
    let srv = NpuServer::bind(&path, SimConfig::default()).unwrap();
    let mut h = srv.handler();
    let file = memfd(0x10000);
    // SAFETY: a fresh shared mapping of the whole file, read and written by raw copies.
    let view = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            0x10000,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    }
    .cast::<u8>();
    // SAFETY: inside the 64 KiB mapping.
    unsafe { std::ptr::write_bytes(view, 0xa5, 0x10000) };
    let iova = 0x8000_0000u64;
    // File bytes 0x4000..0xc000 appear at iova..iova+0x8000: rings at +0, data at +0x2000.
    h.dma_map(3, 0x4000, iova, 0x8000, Some(file.try_clone().unwrap())).unwrap();
    let wr = |h: &mut dyn Handler, off: u32, v: u32| h.region_write(0, u64::from(off), &v.to_le_bytes()).unwrap();
    wr(&mut h, regs::DMA_DESC_BASE_LO.offset, iova as u32);
    wr(&mut h, regs::DMA_DESC_BASE_HI.offset, (iova >> 32) as u32);
    wr(&mut h, regs::DMA_DESC_SIZE_LOG2.offset, 4);
    wr(&mut h, regs::DMA_CPL_BASE_LO.offset, (iova + 0x1000) as u32);
    wr(&mut h, regs::DMA_CPL_BASE_HI.offset, (iova >> 32) as u32);
    wr(&mut h, regs::DMA_CPL_SIZE_LOG2.offset, 4);
    wr(&mut h, regs::CTRL.offset, 1 << regs::ctrl::DMA_EN.lsb);
    // Device memory -> the last 4 KiB of the window and 4 KiB beyond it.
    let d = DmaDesc::copy(DmaAddr::Device(0), DmaAddr::Host(iova + 0x7000), 0x2000, 1);
    // SAFETY: descriptor slot 0 of the ring at file offset 0x4000.
    unsafe { std::ptr::copy_nonoverlapping(d.encode().as_ptr(), view.add(0x4000), 32) };
    wr(&mut h, regs::DMA_DESC_TAIL.offset, 1);
    let mut status = 1;
    for _ in 0..200 {
        srv.with_device(|d| d.step(500));
        let mut b = [0u8; 4];
        h.region_read(0, u64::from(regs::DMA_CH_STATUS.offset), &mut b).unwrap();
        status = u32::from_le_bytes(b);
        if status & 1 == 0 {
            break;
        }
    }
    assert_eq!(status & 0b11, 0b10, "the channel halted on the unmapped part: {status:#x}");
    let mut outside = vec![0u8; 0x4000];
    // SAFETY: file bytes 0xc000..0x10000, inside the mapping.
    unsafe { std::ptr::copy_nonoverlapping(view.add(0xc000), outside.as_mut_ptr(), 0x4000) };
    assert!(outside.iter().all(|&b| b == 0xa5), "bytes past the window untouched");
    // SAFETY: file bytes 0..0x4000.
    unsafe { std::ptr::copy_nonoverlapping(view, outside.as_mut_ptr(), 0x4000) };
    assert!(outside.iter().all(|&b| b == 0xa5), "bytes before the window untouched");
    assert!(srv.stats().dma_faults >= 1);
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(view.cast(), 0x10000) };
}

/// xorshift64*: a seeded generator, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Mostly small or boundary values, sometimes anything.
    fn edgy(&mut self) -> u64 {
        const EDGES: [u64; 12] =
            [0, 1, 3, 4, 0xfff, 0x1000, 0x2000, 0xff8, 0x8000_0000, u64::MAX, u64::MAX - 3, 1 << 32];
        match self.below(4) {
            0 => EDGES[self.below(EDGES.len() as u64) as usize],
            1 => self.next(),
            _ => self.below(0x3) * 0x1000 + self.below(0x40) * 4,
        }
    }
}

/// The server's DMA map as the replies describe it: what a correct server must hold.
#[derive(Default)]
struct DmaModel(BTreeMap<u64, u64>);

impl DmaModel {
    fn overlaps(&self, iova: u64, size: u64) -> bool {
        let end = iova.saturating_add(size);
        self.0.range(..end).next_back().is_some_and(|(&s, &l)| s.saturating_add(l) > iova)
    }
}

/// Generates one message (header, body, descriptors) biased towards the interesting
/// corners: right layout with bad values, wrong layouts, wrong order, stray descriptors.
fn generate(r: &mut Rng, id: u16, file: &File, file_len: u64) -> (Header, Vec<u8>, Vec<File>) {
    let command = match r.below(12) {
        0 => r.below(20) as u16,
        1 => cmd::VERSION,
        2 | 3 => cmd::DMA_MAP,
        4 => cmd::DMA_UNMAP,
        5 => cmd::DEVICE_SET_IRQS,
        6 | 7 => cmd::REGION_READ,
        8 | 9 => cmd::REGION_WRITE,
        10 => cmd::DEVICE_RESET,
        _ => [cmd::DEVICE_GET_INFO, cmd::DEVICE_GET_REGION_INFO, cmd::DEVICE_GET_IRQ_INFO][r.below(3) as usize],
    };
    let flags = [0, 0, 0, 0, 0, 0, 0, 1 << 4, 1, r.next() as u32][r.below(10) as usize];
    let region = match r.below(8) {
        0 => r.next() as u32,
        1..=4 => 0, // BAR0: the RTL's CSRs
        _ => r.below(9) as u32,
    };
    let offset = if r.below(2) == 0 { r.below(1024) * 4 } else { r.edgy() };
    let mut body = match command {
        cmd::VERSION => version_body(),
        cmd::DMA_MAP => {
            let size = if r.below(2) == 0 { r.below(8) * 0x1000 } else { r.edgy() };
            let off = if r.below(2) == 0 { r.below(file_len / 0x1000 + 2) * 0x1000 } else { r.edgy() };
            dma_map_body(3, off, 0x1_0000_0000 + r.below(64) * 0x1000, size)
        }
        cmd::DMA_UNMAP => {
            let f = [0, 0, 4, 2, r.next() as u32][r.below(5) as usize];
            dma_unmap_body(f, 0x1_0000_0000 + r.below(64) * 0x1000, r.below(16) * 0x1000)
        }
        cmd::DEVICE_SET_IRQS => {
            let f = [0x24, 0x21, 0x22, 0x28, r.next() as u32][r.below(5) as usize];
            set_irqs_body(f, r.below(6) as u32, r.below(9) as u32, r.below(9) as u32)
        }
        cmd::REGION_READ => access_body(region, offset, [0, 1, 2, 4, 4, 4, 8, 4096][r.below(8) as usize]),
        cmd::REGION_WRITE => {
            let n = [1usize, 2, 4, 4, 4, 8][r.below(6) as usize];
            let mut b = access_body(region, offset, n as u32);
            b.extend((0..n).map(|_| r.next() as u8));
            b
        }
        cmd::DEVICE_GET_REGION_INFO => le(&[32, 0, u64::from(region), 0, 0, 0], &[4, 4, 4, 4, 8, 8]),
        cmd::DEVICE_GET_IRQ_INFO => le(&[16, 0, r.below(7), 0], &[4, 4, 4, 4]),
        _ => vec![0; 16],
    };
    match r.below(10) {
        0 => body.truncate(r.below(body.len() as u64 + 1) as usize),
        1 => body.extend((0..r.below(9)).map(|_| r.next() as u8)),
        _ => {}
    }
    let fds = match (command, r.below(8)) {
        (_, 0) => vec![eventfd()],
        (cmd::DMA_MAP, 1..=5) => vec![file.try_clone().unwrap()],
        (cmd::DMA_MAP, 6) => vec![file.try_clone().unwrap(), eventfd()],
        (cmd::DEVICE_SET_IRQS, 1..=5) => (0..r.below(4)).map(|_| eventfd()).collect(),
        _ => Vec::new(),
    };
    let size = (HEADER_BYTES + body.len()) as u32;
    (Header { id, command, size, flags, error: 0 }, body, fds)
}

/// Runs `cases` generated messages through the handler and checks, after each, that
/// the reply answers the request and that accepted DMA maps never overlap and lie
/// inside the client's file.
fn fuzz(seed: u64, cases: u64) {
    let path = socket(&format!("fuzz{seed}"));
    let srv = NpuServer::bind(&path, SimConfig::default()).unwrap();
    let mut h = srv.handler();
    let info = srv.device_info().clone();
    let file_len = 0x8000;
    let file = memfd(file_len);
    let mut r = Rng(seed | 1);
    let mut session = Session::new();
    let mut model = DmaModel::default();
    let mut refused = 0u64;
    let mut fd_less = std::collections::HashSet::new();
    for i in 0..cases {
        if i % 500 == 499 && r.below(4) == 0 {
            session = Session::new(); // a new connection: version first again
        }
        let (hdr, body, fds) = generate(&mut r, i as u16, &file, file_len);
        if fds.is_empty() {
            fd_less.insert(i);
        }
        let reply = session.handle(&mut h, &info, hdr, &body, fds);
        // Errors are always answered; no reply means NO_REPLY and success.
        if let Some(reply) = reply {
            let rh = Header::parse(reply[..HEADER_BYTES].try_into().unwrap());
            assert_eq!((rh.id, rh.command, rh.size as usize), (hdr.id, hdr.command, reply.len()), "message {i}");
            assert_eq!(rh.flags & 0xf, 1, "message {i}: a reply");
            assert_eq!(rh.is_error(), rh.error != 0, "message {i}: error flag and errno agree");
            if rh.is_error() {
                refused += 1;
                continue;
            }
        } else {
            assert!(hdr.flags & (1 << 4) != 0, "message {i}: no reply without NO_REPLY");
        }
        let f = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap());
        match hdr.command {
            cmd::DMA_MAP => {
                let (off, iova, size) = (f(8), f(16), f(24));
                // Without a descriptor (a ROM) the range is only recorded.
                let with_fd = !fd_less.contains(&i);
                assert!(size > 0, "message {i}: empty map accepted");
                assert!(
                    !with_fd || off.checked_add(size).is_some_and(|e| e <= file_len),
                    "message {i}: map {off:#x}+{size:#x} past the file"
                );
                assert!(!model.overlaps(iova, size), "message {i}: accepted an overlapping map at {iova:#x}");
                model.0.insert(iova, size);
            }
            cmd::DMA_UNMAP => {
                let (iova, size) = (f(8), f(16));
                if u32::from_le_bytes(body[4..8].try_into().unwrap()) & 4 != 0 {
                    model.0.clear();
                } else {
                    let end = iova.saturating_add(size);
                    assert!(
                        model.0.iter().all(|(&s, &l)| s >= end || s + l <= iova || (s >= iova && s + l <= end)),
                        "message {i}: unmap {iova:#x}+{size:#x} split a mapping"
                    );
                    model.0.retain(|&s, _| s < iova || s >= end);
                }
            }
            _ => {}
        }
    }
    let st = srv.stats();
    assert_eq!(st.dma_maps - st.dma_unmaps, model.0.len() as u64, "server and model hold the same maps");
    eprintln!("fuzz seed {seed:#x}: {cases} messages, {refused} refused, {st:?}");
    assert!(refused > cases / 10 && refused < cases, "the generator reaches both outcomes: {refused} of {cases}");
    assert!(st.dma_maps > cases / 200 && st.csr_writes > cases / 200, "maps and CSR writes get through: {st:?}");
}

#[test]
fn thousands_of_generated_messages_never_panic_and_keep_the_dma_map_sound() {
    let _one = serial();
    let cases = std::env::var("VFIO_USER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let seed = std::env::var("VFIO_USER_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    fuzz(seed, cases);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes as the body of any command, after a good VERSION: the handler
    /// answers every one with a well-formed reply.
    #[test]
    fn arbitrary_bodies_get_well_formed_replies(
        msgs in proptest::collection::vec((0u16..16, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..48)), 1..24)
    ) {
        let _one = serial();
        let path = socket("prop");
        let srv = NpuServer::bind(&path, SimConfig::default()).unwrap();
        let mut h = srv.handler();
        let info = srv.device_info().clone();
        let mut session = Session::new();
        let v = version_body();
        let ok = session.handle(&mut h, &info, Header { id: 0, command: cmd::VERSION, size: 23, flags: 0, error: 0 }, &v, Vec::new());
        prop_assert!(!Header::parse(ok.unwrap()[..16].try_into().unwrap()).is_error());
        for (i, (command, flags, body)) in msgs.into_iter().enumerate() {
            let hdr = Header { id: i as u16, command, size: (HEADER_BYTES + body.len()) as u32, flags: flags & 0x30, error: 0 };
            if let Some(reply) = session.handle(&mut h, &info, hdr, &body, Vec::new()) {
                let rh = Header::parse(reply[..HEADER_BYTES].try_into().unwrap());
                prop_assert_eq!((rh.id, rh.command, rh.size as usize), (hdr.id, command, reply.len()));
            }
        }
    }
}
