//! Network namespaces: which one a worker thread lives in.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::kernel::{Errno, KernelError};

/// A network namespace the pool's devices live in.
///
/// Entering one affects only the calling thread, so the pool's kernel worker
/// threads can live in a namespace while the rest of the process does not.
#[derive(Clone, Debug)]
pub enum Netns {
    /// A namespace file, such as `/run/netns/NAME` (made by `ip netns add`) or
    /// `/proc/PID/ns/net`.
    Path(PathBuf),
    /// An open namespace file descriptor, shared by every worker.
    Fd(Arc<OwnedFd>),
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netns::Path(path) => write!(f, "{}", path.display()),
            Netns::Fd(fd) => write!(f, "fd {}", fd.as_raw_fd()),
        }
    }
}

impl Netns {
    /// Makes a new, empty network namespace that lives as long as the returned
    /// value (and any thread inside it). It is made on a short-lived helper
    /// thread, so neither the calling thread nor the host's namespace is
    /// touched. Demos and tests use it for a throwaway namespace.
    pub fn new_private() -> Result<Netns, KernelError> {
        let fail = |errno| KernelError::Namespace {
            netns: "a new private namespace".to_owned(),
            errno,
        };
        std::thread::spawn(|| {
            // SAFETY: unshare changes only this helper thread's namespaces.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
                return Err(Errno::of(&std::io::Error::last_os_error()));
            }
            open_ns_file(std::path::Path::new("/proc/thread-self/ns/net"))
        })
        .join()
        .map_err(|_| fail(Errno(libc::EIO)))?
        .map(|fd| Netns::Fd(Arc::new(fd)))
        .map_err(fail)
    }

    /// A path naming this namespace for other programs (`nsenter --net=`),
    /// valid while this process lives.
    pub fn path(&self) -> PathBuf {
        match self {
            Netns::Path(path) => path.clone(),
            Netns::Fd(fd) => PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                fd.as_raw_fd()
            )),
        }
    }
}

/// Moves the calling thread (only it) into `netns` with `setns(2)`.
///
/// Sockets and `/dev/net/tun` files opened afterwards on this thread belong to
/// that namespace; ones opened before keep theirs.
pub fn enter(netns: &Netns) -> Result<(), KernelError> {
    let fail = |errno: Errno| KernelError::Namespace {
        netns: netns.to_string(),
        errno,
    };
    match netns {
        Netns::Path(path) => {
            let file = open_ns_file(path).map_err(fail)?;
            setns(&file).map_err(fail)
        }
        Netns::Fd(fd) => setns(fd.as_ref()).map_err(fail),
    }
}

fn open_ns_file(path: &std::path::Path) -> Result<OwnedFd, Errno> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno(libc::EINVAL))?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::of(&std::io::Error::last_os_error()));
    }
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setns(fd: &impl AsFd) -> Result<(), Errno> {
    // SAFETY: the descriptor is borrowed for the duration of the call; setns
    // only reads it, and CLONE_NEWNET restricts it to network namespaces.
    let rc = unsafe { libc::setns(fd.as_fd().as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(Errno::of(&std::io::Error::last_os_error()));
    }
    Ok(())
}
