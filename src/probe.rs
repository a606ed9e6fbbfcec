//! [`ProbeError`]: why a pool could not make taps where it would make them.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::kernel::Errno;

/// Why this process cannot make taps where a pool would make them: the
/// answer of [`linux::probe`](crate::linux::probe) and of
/// [`KernelFactory::probe`](crate::KernelFactory::probe), which a pool
/// started with fail-fast asks before anything starts.
///
/// The checks make no device and change nothing: they open `/dev/net/tun`
/// and close it, and ask the kernel whether it would take a change to the
/// namespace's links from this thread (an `RTM_SETLINK` naming no link,
/// which the kernel refuses for naming none once it has checked the
/// capability).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The pool's network namespace cannot be entered (`setns`): `EPERM`
    /// without `CAP_SYS_ADMIN` over it (a process in a user namespace of
    /// its own entering the host's), `EBADF`/`EINVAL` for a descriptor that
    /// is not a network namespace.
    #[error("cannot enter network namespace {netns}: {errno}")]
    Namespace {
        /// The namespace, as configured (a path, or `fd N`).
        netns: String,
        /// What `setns` answered.
        errno: Errno,
    },
    /// The tun device does not open: `ENOENT` (no device node: the `tun`
    /// module is not loaded, or a container without `/dev/net/tun`),
    /// `EACCES`/`EPERM` (the node's mode, or a device cgroup that denies
    /// it), `ENODEV` (a node but no driver).
    #[error("cannot open {}: {errno}", path.display())]
    TunDevice {
        /// The device node's path, `/dev/net/tun`.
        path: PathBuf,
        /// What `open` answered.
        errno: Errno,
    },
    /// The kernel refuses to change links here, and `CAP_NET_ADMIN` is not
    /// in the thread's effective capability set: run the pool as root, or
    /// give it the capability (`setcap cap_net_admin+ep`, systemd's
    /// `AmbientCapabilities=CAP_NET_ADMIN`).
    #[error("CAP_NET_ADMIN is not in the effective capability set")]
    NoNetAdmin,
    /// The kernel refuses to change links here although `CAP_NET_ADMIN` is
    /// effective: the capability counts only in the thread's own user
    /// namespace and those below it, and the network namespace belongs to
    /// another (a process in an unprivileged user namespace, as made by
    /// `unshare --user`, probing a network namespace of the host's). A
    /// security module's policy that refuses `RTM_SETLINK` reads the same.
    #[error(
        "CAP_NET_ADMIN is effective, but the kernel refuses to change links in this network \
         namespace: it belongs to a user namespace where this thread's capabilities do not count"
    )]
    ForeignUserNamespace,
    /// The thread's capabilities cannot be read (`capget`).
    #[error("cannot read the thread's capabilities")]
    Capabilities(#[source] io::Error),
    /// No rtnetlink socket opens to ask the kernel.
    #[error("cannot open an rtnetlink socket: {errno}")]
    Socket {
        /// What the kernel answered.
        errno: Errno,
    },
    /// The pool's kernel is `tap-pool-helper`, and it cannot be used: it
    /// does not answer on its socket, or its policy does not let this uid
    /// in ([`KernelError::Helper`](crate::KernelError::Helper),
    /// [`KernelError::Refused`](crate::KernelError::Refused)).
    #[error("the tap-pool helper cannot be used")]
    Helper(#[source] crate::kernel::KernelError),
    /// The short-lived thread that probes inside the pool's namespace could
    /// not be started, or died.
    #[error("cannot run the probe's thread")]
    Thread(#[source] io::Error),
}
