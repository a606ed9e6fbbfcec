//! Network namespaces: which one a worker thread lives in.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::ioctl::{QueryIoctl, ioctl_query};
use crate::kernel::{Errno, KernelError};

/// A network namespace the pool's devices live in.
///
/// Entering one affects only the calling thread, so the pool's kernel worker
/// threads can live in a namespace while the rest of the process does not.
#[derive(Clone, Debug)]
pub enum Netns {
    /// A namespace file, such as `/run/netns/NAME` (made by `ip netns add`) or
    /// `/proc/PID/ns/net`. A pool opens it once, when it starts
    /// ([`Netns::open`]), and its threads enter what it named then; [`enter`]
    /// on its own opens the path at each call.
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
    ///
    /// # Errors
    /// [`KernelError::Namespace`] with the errno of the step that failed
    /// (`unshare` needs `CAP_SYS_ADMIN`), or `EAGAIN` when no helper
    /// thread starts.
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

    /// This namespace as an open file, shared by every thread that enters
    /// it: a [`Netns::Path`] is opened now, once, and checked to name a
    /// network namespace; a [`Netns::Fd`] is itself. The open file names
    /// that namespace for as long as it is open, whatever later becomes of
    /// the path (unmounted, removed, or another namespace mounted there).
    /// A pool opens its namespace this way when it starts.
    ///
    /// # Errors
    /// [`KernelError::Namespace`], naming the path and the errno: `ENOENT`
    /// for a path that does not exist, `EACCES`/`EPERM` for one this process
    /// may not open, `EINVAL` for a file that is not a network namespace.
    pub fn open(&self) -> Result<Netns, KernelError> {
        let path = match self {
            Netns::Path(path) => path,
            Netns::Fd(_) => return Ok(self.clone()),
        };
        let fail = |errno| KernelError::Namespace {
            netns: path.display().to_string(),
            errno,
        };
        let file = open_ns_file(path).map_err(fail)?;
        match ioctl_query(&file, QueryIoctl::NsType) {
            Ok(libc::CLONE_NEWNET) => {}
            // Some other namespace.
            Ok(_) => return Err(fail(Errno(libc::EINVAL))),
            // Not a namespace file at all (`ENOTTY` from a regular file,
            // `EINVAL` from some special files).
            Err(Errno(libc::ENOTTY | libc::EINVAL)) => return Err(fail(Errno(libc::EINVAL))),
            Err(errno) => return Err(fail(errno)),
        }
        Ok(Netns::Fd(Arc::new(file)))
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
///
/// # Errors
/// [`KernelError::Namespace`]: the path does not open as a namespace, or
/// `setns` refuses (`EPERM` without `CAP_SYS_ADMIN` over it). The thread
/// is then still where it was.
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
    // Non-blocking, and never a controlling terminal: a path that is no
    // namespace (a FIFO, whose open would wait for a writer; a terminal)
    // opens at once and is then refused for what it is. A namespace file
    // ignores both flags.
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags) };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn errno_of(netns: &Netns) -> Option<(String, Errno)> {
        match netns.open() {
            Ok(_) => None,
            Err(KernelError::Namespace { netns, errno }) => Some((netns, errno)),
            Err(other) => panic!("not a namespace error: {other}"),
        }
    }

    #[test]
    fn opening_a_path_checks_it_names_a_network_namespace() {
        let missing = Netns::Path("/nonexistent/tap-pool-netns".into());
        assert_eq!(
            errno_of(&missing),
            Some((
                "/nonexistent/tap-pool-netns".to_owned(),
                Errno(libc::ENOENT)
            ))
        );
        // Another kind of namespace, and a file that is no namespace.
        for path in ["/proc/self/ns/mnt", "/proc/self/status"] {
            let wrong = Netns::Path(path.into());
            assert_eq!(
                errno_of(&wrong),
                Some((path.to_owned(), Errno(libc::EINVAL))),
                "{path}"
            );
        }
        let own = Netns::Path("/proc/self/ns/net".into());
        assert!(matches!(own.open(), Ok(Netns::Fd(_))));
    }

    #[test]
    fn an_open_namespace_opens_as_itself() {
        let Ok(Netns::Fd(fd)) = Netns::Path("/proc/self/ns/net".into()).open() else {
            panic!("this process's namespace opens");
        };
        let Ok(Netns::Fd(same)) = Netns::Fd(Arc::clone(&fd)).open() else {
            panic!("an open namespace is itself");
        };
        assert!(Arc::ptr_eq(&fd, &same));
    }
}
