//! Whether this process can make taps, checked without making one:
//! [`probe`] where the calling thread is, [`probe_in`] inside a namespace.

use std::io;
use std::path::PathBuf;
use std::thread;

use caps::{CapSet, Capability};

use super::netlink::Rtnl;
use super::netns::{Netns, enter};
use super::tun::{TUN_DEVICE, open_tun};
use crate::kernel::{Errno, KernelError};
use crate::probe::ProbeError;

/// Checks that the calling thread can make taps in its own network
/// namespace, and makes none: `/dev/net/tun` opens (then is closed), and
/// the kernel takes link changes from this thread there.
///
/// The second check asks the kernel itself (an `RTM_SETLINK` naming no
/// link, which it refuses for naming none once the sender's right has been
/// checked) rather than only reading the thread's capabilities, because
/// `CAP_NET_ADMIN` counts only over network namespaces whose user namespace
/// is the thread's own or below it: in an unprivileged user namespace
/// (`unshare --user`) the capability is effective, yet the kernel refuses
/// to make taps in a namespace of the host's. Where the kernel refuses,
/// the thread's effective capabilities (read with `capget`) say which of
/// the two it is.
///
/// # Errors
/// [`ProbeError::TunDevice`] when `/dev/net/tun` does not open;
/// [`ProbeError::NoNetAdmin`] or [`ProbeError::ForeignUserNamespace`] when
/// the kernel refuses link changes; [`ProbeError::Socket`] or
/// [`ProbeError::Capabilities`] when it cannot be asked.
pub fn probe() -> Result<(), ProbeError> {
    let tun = open_tun().map_err(|errno| ProbeError::TunDevice {
        path: PathBuf::from(TUN_DEVICE.to_string_lossy().as_ref()),
        errno,
    })?;
    drop(tun);
    let socket_error = |e: super::netlink::NlError| ProbeError::Socket { errno: e.errno() };
    let mut rtnl = Rtnl::open().map_err(socket_error)?;
    if rtnl.may_change_links().map_err(socket_error)? {
        return Ok(());
    }
    let effective = caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN)
        .map_err(|e| ProbeError::Capabilities(io::Error::other(e)))?;
    Err(if effective {
        ProbeError::ForeignUserNamespace
    } else {
        ProbeError::NoNetAdmin
    })
}

/// [`probe`] inside `netns`, as a pool's kernel workers would run there: on
/// a short-lived thread started from this one (so with this thread's
/// capabilities), which enters the namespace first. The calling thread
/// stays where it is.
///
/// # Errors
/// [`ProbeError::Namespace`] when the namespace cannot be entered,
/// [`ProbeError::Thread`] when the thread cannot run, else what [`probe`]
/// finds there.
pub fn probe_in(netns: &Netns) -> Result<(), ProbeError> {
    let netns = netns.clone();
    thread::Builder::new()
        .name("tap-pool-probe".to_owned())
        .spawn(move || {
            enter(&netns).map_err(|error| match error {
                KernelError::Namespace { netns, errno } => ProbeError::Namespace { netns, errno },
                // `enter` fails with nothing else; keep what it said.
                other => ProbeError::Namespace {
                    netns: format!("{netns}: {other}"),
                    errno: Errno(libc::EIO),
                },
            })?;
            probe()
        })
        .map_err(ProbeError::Thread)?
        .join()
        .map_err(|_| ProbeError::Thread(io::Error::other("the probe's thread panicked")))?
}
