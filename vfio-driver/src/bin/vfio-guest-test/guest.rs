//! Plumbing for running as PID 1 in a minimal guest, and for building its initramfs.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

fn cstr(s: &str) -> CString {
    // Only called with literals and paths we built, which hold no NUL.
    CString::new(s).unwrap_or_default()
}

fn mount(src: &str, target: &str, fstype: &str) -> io::Result<()> {
    fs::create_dir_all(target)?;
    let (s, t, f) = (cstr(src), cstr(target), cstr(fstype));
    // SAFETY: all pointers are NUL-terminated strings that live across the call; no data.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Mounts /proc, /sys and /dev (devtmpfs) as an init must.
pub fn mount_basics() -> io::Result<()> {
    mount("proc", "/proc", "proc")?;
    mount("sysfs", "/sys", "sysfs")?;
    mount("devtmpfs", "/dev", "devtmpfs")
}

/// Loads a kernel module from a file (`finit_module`).
pub fn load_module(path: &Path) -> io::Result<()> {
    let f = fs::File::open(path)?;
    let params = cstr("");
    // SAFETY: finit_module reads the open file and a NUL-terminated parameter string.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Loads every `*.ko` in `dir` in file-name order (the harness numbers them by dependency).
pub fn load_modules(dir: &Path) -> io::Result<Vec<String>> {
    let mut names: Vec<_> = fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).collect();
    names.sort();
    let mut loaded = Vec::new();
    for p in names.iter().filter(|p| p.extension().is_some_and(|e| e == "ko")) {
        load_module(p).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        loaded.push(p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    }
    Ok(loaded)
}

/// Finds the first PCI function with the given IDs under `/sys/bus/pci/devices`.
pub fn find_pci(vendor: u16, device: u16) -> Option<String> {
    find_all_pci(vendor, device).into_iter().next()
}

/// Every PCI function with the given IDs, in address order.
pub fn find_all_pci(vendor: u16, device: u16) -> Vec<String> {
    let want = (format!("{vendor:#06x}"), format!("{device:#06x}"));
    let Ok(entries) = fs::read_dir("/sys/bus/pci/devices") else { return Vec::new() };
    let mut hits: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let rd = |f: &str| fs::read_to_string(e.path().join(f)).unwrap_or_default().trim().to_owned();
            rd("vendor") == want.0 && rd("device") == want.1
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    hits.sort();
    hits
}

/// One line per PCI function: address, IDs, IOMMU group, driver.
pub fn pci_inventory() -> Vec<String> {
    let Ok(entries) = fs::read_dir("/sys/bus/pci/devices") else { return Vec::new() };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| {
            let rd = |f: &str| {
                fs::read_to_string(e.path().join(f)).unwrap_or_default().trim().trim_start_matches("0x").to_owned()
            };
            let group = vfio_driver::sysfs::iommu_group(&e.path()).map_or("-".into(), |g| g.to_string());
            let driver = vfio_driver::sysfs::bound_driver(&e.path()).unwrap_or_else(|| "-".into());
            format!(
                "{} [{}:{}] class {} group {group} driver {driver}",
                e.file_name().to_string_lossy(),
                rd("vendor"),
                rd("device"),
                rd("class")
            )
        })
        .collect();
    out.sort();
    out
}

/// Binds `bdf` to vfio-pci with driver_override (what `docs/board.md` tells users to do).
pub fn bind_vfio(bdf: &str) -> io::Result<()> {
    fs::write(format!("/sys/bus/pci/devices/{bdf}/driver_override"), "vfio-pci")?;
    fs::write("/sys/bus/pci/drivers_probe", bdf)
}

/// The kernel log from now on, read without blocking.
pub struct Kmsg(fs::File);

impl Kmsg {
    /// Opens /dev/kmsg positioned at its end.
    pub fn open_at_end() -> io::Result<Self> {
        let f = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg")?;
        // SAFETY: lseek on an open descriptor; SEEK_END on /dev/kmsg skips old records.
        unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
        Ok(Self(f))
    }

    /// Messages logged since the last call.
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    // Record: "prio,seq,usec,flags;message\n"
                    let msg = rec.split_once(';').map_or(rec.as_ref(), |(_, m)| m);
                    out.push(msg.trim_end().to_owned());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        out
    }
}

/// Flushes and powers the guest off (PID 1 must never exit).
pub fn power_off() -> ! {
    let _ = io::stdout().flush();
    // SAFETY: sync and reboot take no pointers; reboot does not return on success.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Writes an uncompressed `newc` cpio archive (the initramfs format) of `entries`:
/// (path in archive, host file or None for a directory). Files keep only their
/// executable bit; owners are root.
pub fn write_cpio(out: &Path, entries: &[(String, Option<String>)]) -> io::Result<()> {
    let mut w = io::BufWriter::new(fs::File::create(out)?);
    let mut ino = 1u32;
    let mut put = |w: &mut io::BufWriter<fs::File>, name: &str, mode: u32, data: &[u8]| -> io::Result<()> {
        let hdr = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        ino += 1;
        w.write_all(hdr.as_bytes())?;
        w.write_all(name.as_bytes())?;
        w.write_all(&[0])?;
        let pad = |n: usize| (4 - n % 4) % 4;
        w.write_all(&[0; 4][..pad(hdr.len() + name.len() + 1)])?;
        w.write_all(data)?;
        w.write_all(&[0; 4][..pad(data.len())])
    };
    for (name, src) in entries {
        match src {
            None => put(&mut w, name, 0o040755, &[])?,
            Some(path) => {
                let data = fs::read(path)?;
                let meta = fs::metadata(path)?;
                let perm = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
                put(&mut w, name, 0o100000 | perm, &data)?;
            }
        }
    }
    put(&mut w, "TRAILER!!!", 0, &[])?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a newc archive back into (name, mode, data).
    fn parse(b: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let hex = |s: &[u8]| u32::from_str_radix(std::str::from_utf8(s).unwrap(), 16).unwrap();
        let mut out = Vec::new();
        let mut off = 0;
        loop {
            let h = &b[off..off + 110];
            assert_eq!(&h[..6], b"070701", "magic at {off}");
            let (mode, size, namesize) = (hex(&h[14..22]), hex(&h[54..62]) as usize, hex(&h[94..102]) as usize);
            let name = String::from_utf8(b[off + 110..off + 110 + namesize - 1].to_vec()).unwrap();
            off = (off + 110 + namesize).next_multiple_of(4);
            let data = b[off..off + size].to_vec();
            off = (off + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(off, b.len(), "nothing after the trailer");
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn cpio_archives_round_trip_with_directories_modes_and_padding() {
        let dir = std::env::temp_dir().join(format!("vfio-guest-cpio-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("init");
        fs::write(&exe, b"#!x").unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.join("m.ko");
        fs::write(&data, b"12345").unwrap();
        let out = dir.join("a.cpio");
        let s = |p: &Path| Some(p.to_string_lossy().into_owned());
        write_cpio(&out, &[("modules".into(), None), ("init".into(), s(&exe)), ("modules/10-m.ko".into(), s(&data))])
            .unwrap();
        let got = parse(&fs::read(&out).unwrap());
        assert_eq!(
            got,
            [
                ("modules".to_owned(), 0o040755, vec![]),
                ("init".to_owned(), 0o100755, b"#!x".to_vec()),
                ("modules/10-m.ko".to_owned(), 0o100644, b"12345".to_vec()),
            ]
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
