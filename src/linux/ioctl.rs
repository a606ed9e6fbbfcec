//! The ioctls this crate makes, each through a checked wrapper that returns
//! the errno as a typed error. The request is one of a closed set (an enum
//! per argument type), so no caller can pair a request with an argument of
//! the wrong type.

use std::io;
use std::os::fd::AsRawFd;

use crate::kernel::Errno;
use crate::name::TapName;

/// Requests that read and write one `struct ifreq`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IfreqIoctl {
    /// `TUNSETIFF`: bind a `/dev/net/tun` file to a device, making it.
    TunSetIff,
    /// `SIOCGIFINDEX`: the interface index of a name.
    GetIndex,
    /// `SIOCGIFHWADDR`: the hardware address.
    GetHwAddr,
}

/// Requests that take an integer by value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ValueIoctl {
    /// `TUNSETOWNER`: the uid allowed to attach.
    Owner,
    /// `TUNSETGROUP`: the gid allowed to attach.
    Group,
    /// `TUNSETPERSIST`: whether the device outlives its last file.
    Persist,
}

/// Requests that read one `int` through a pointer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IntIoctl {
    /// `TUNSETCARRIER`: turn the carrier on or off.
    TunSetCarrier,
}

/// An `ifreq` naming `name`, all else zero.
pub(crate) fn ifreq(name: TapName) -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data (integers, byte arrays and a union
    // of them); all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // The name is at most 15 bytes (checked by `TapName`), so the 16-byte
    // field keeps its terminating NUL from the zeroed struct.
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    req
}

/// Makes an `ifreq` ioctl on `fd`.
pub(crate) fn ioctl_ifreq(
    fd: &impl AsRawFd,
    request: IfreqIoctl,
    req: &mut libc::ifreq,
) -> Result<(), Errno> {
    let request = match request {
        IfreqIoctl::TunSetIff => libc::TUNSETIFF,
        IfreqIoctl::GetIndex => libc::SIOCGIFINDEX as libc::Ioctl,
        IfreqIoctl::GetHwAddr => libc::SIOCGIFHWADDR as libc::Ioctl,
    };
    // SAFETY: each of these requests reads and writes one `ifreq`; `req` is
    // one, exclusively borrowed until the call returns.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_mut(req)) })
}

/// Makes an ioctl on `fd` that takes `value` by value.
pub(crate) fn ioctl_value(
    fd: &impl AsRawFd,
    request: ValueIoctl,
    value: libc::c_ulong,
) -> Result<(), Errno> {
    let request = match request {
        ValueIoctl::Owner => libc::TUNSETOWNER,
        ValueIoctl::Group => libc::TUNSETGROUP,
        ValueIoctl::Persist => libc::TUNSETPERSIST,
    };
    // SAFETY: each of these requests takes an integer, not a pointer, so the
    // kernel touches none of this process's memory.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), request, value) })
}

/// Makes an ioctl on `fd` that reads `*value`.
pub(crate) fn ioctl_int(
    fd: &impl AsRawFd,
    request: IntIoctl,
    value: &libc::c_int,
) -> Result<(), Errno> {
    let request = match request {
        IntIoctl::TunSetCarrier => libc::TUNSETCARRIER,
    };
    // SAFETY: the request reads one `int` through its argument, which points
    // to `value`, borrowed until the call returns.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_ref(value)) })
}

/// Requests that take no argument and answer with their return value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum QueryIoctl {
    /// `NS_GET_NSTYPE`: the kind of namespace a namespace file names (a
    /// `CLONE_NEW*` flag).
    NsType,
}

/// Makes an ioctl on `fd` that takes no argument, and returns its answer.
pub(crate) fn ioctl_query(fd: &impl AsRawFd, request: QueryIoctl) -> Result<libc::c_int, Errno> {
    let request = match request {
        QueryIoctl::NsType => libc::NS_GET_NSTYPE,
    };
    // SAFETY: the request takes no argument, so the kernel touches none of
    // this process's memory.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request) };
    check(rc).map(|()| rc)
}

/// The errno of a failed call (a negative return).
fn check(rc: libc::c_int) -> Result<(), Errno> {
    if rc < 0 {
        Err(Errno::of(&io::Error::last_os_error()))
    } else {
        Ok(())
    }
}
