//! The UNIX socket: created owner-only, and messages received with the file
//! descriptors that travel with them (SCM_RIGHTS).

use crate::VfioUserError;
use crate::protocol::HEADER_BYTES;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// File descriptors received with one message at most; more are a malformed message.
pub const MAX_FDS: usize = 16;

/// Listens on `path` with mode 0600: the socket is bound inside a fresh 0700
/// directory next to it, made owner-only there and renamed into place, so no other
/// user can connect between bind and chmod.
pub(crate) fn bind_private(path: &Path) -> Result<UnixListener, VfioUserError> {
    let bind_err = |source| VfioUserError::Bind { path: path.into(), source };
    if path.symlink_metadata().is_ok() {
        return Err(VfioUserError::SocketExists { path: path.into() });
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => ".".into(),
    };
    let name = path.file_name().ok_or_else(|| bind_err(std::io::Error::other("no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = parent.join(tmp_name);
    std::fs::DirBuilder::new().mode(0o700).create(&tmp).map_err(bind_err)?;
    let inner = tmp.join("s");
    let r = (|| {
        let l = UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&tmp);
    r.map_err(bind_err)
}

/// A message header as received, with the descriptors that came with it.
pub(crate) struct Received {
    pub(crate) header: [u8; HEADER_BYTES],
    /// Owned: closed when dropped.
    pub(crate) fds: Vec<File>,
    /// More than [`MAX_FDS`] were sent; the kernel dropped the rest (a malformed message).
    pub(crate) fds_truncated: bool,
}

/// Receives one message header and the descriptors sent with it; `None` when the
/// client closed the connection between messages.
pub(crate) fn recv_header(stream: &UnixStream) -> std::io::Result<Option<Received>> {
    let mut hdr = [0u8; HEADER_BYTES];
    let mut got = 0;
    let mut fds = Vec::new();
    let mut truncated = false;
    while got < HEADER_BYTES {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<libc::c_int>()) as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        let mut iov = libc::iovec { iov_base: hdr[got..].as_mut_ptr().cast(), iov_len: HEADER_BYTES - got };
        // SAFETY: an all-zero msghdr is valid (null name, no iovecs, no control).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: `msg` points at `iov` (inside `hdr`) and `cbuf`, both live and of the
        // lengths given; the kernel writes only within them.
        let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within
        // msg_controllen, and each SCM_RIGHTS payload holds (len - CMSG_LEN(0)) / 4 fds.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                    let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / size_of::<libc::c_int>();
                    for i in 0..n {
                        fds.push(File::from_raw_fd(data.add(i).read_unaligned()));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        truncated |= msg.msg_flags & libc::MSG_CTRUNC != 0;
        if n == 0 {
            if got == 0 && fds.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n as usize;
    }
    let fds_truncated = truncated || fds.len() > MAX_FDS;
    Ok(Some(Received { header: hdr, fds, fds_truncated }))
}
