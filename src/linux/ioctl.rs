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
    /// `TUNSETOFFLOAD`: the offloads (`TUN_F_*`) the reader can take.
    Offload,
    /// `TUNSETDEBUG`: the driver's log message level (`msg_enable`).
    Debug,
    /// `TUNDETACHFILTER`: removes the classic socket filter (the kernel
    /// reads no argument).
    DetachFilter,
}

/// Requests that read one `int` through a pointer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IntIoctl {
    /// `TUNSETCARRIER`: turn the carrier on or off.
    TunSetCarrier,
    /// `TUNSETVNETHDRSZ`: the virtio-net header's size.
    SetVnetHdrSz,
    /// `TUNSETVNETLE`: little-endian virtio-net headers.
    SetVnetLe,
    /// `TUNSETVNETBE`: big-endian virtio-net headers (only with
    /// `CONFIG_TUN_VNET_CROSS_LE`; `EINVAL` otherwise).
    SetVnetBe,
    /// `TUNSETSNDBUF`: the send buffer.
    SetSndBuf,
    /// `TUNSETSTEERINGEBPF`: the queue-steering eBPF program's fd (-1: none).
    SteeringEbpf,
    /// `TUNSETFILTEREBPF`: the filtering eBPF program's fd (-1: none).
    FilterEbpf,
}

/// Requests that write one `int` through a pointer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GetIntIoctl {
    /// `TUNGETVNETHDRSZ`.
    VnetHdrSz,
    /// `TUNGETVNETLE`.
    VnetLe,
    /// `TUNGETVNETBE` (`EINVAL` without `CONFIG_TUN_VNET_CROSS_LE`).
    VnetBe,
    /// `TUNGETSNDBUF`: this file's send buffer.
    SndBuf,
}

/// `struct tun_filter` (linux/if_tun.h; the libc crate lacks it) with no
/// address after it: a count of 0 turns the MAC filter off.
#[repr(C)]
pub(crate) struct TunFilter {
    /// `TUN_FLT_*`.
    pub(crate) flags: u16,
    /// How many addresses follow.
    pub(crate) count: u16,
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
        ValueIoctl::Offload => libc::TUNSETOFFLOAD,
        ValueIoctl::Debug => libc::TUNSETDEBUG,
        ValueIoctl::DetachFilter => libc::TUNDETACHFILTER,
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
        IntIoctl::SetVnetHdrSz => libc::TUNSETVNETHDRSZ,
        IntIoctl::SetVnetLe => libc::TUNSETVNETLE,
        IntIoctl::SetVnetBe => libc::TUNSETVNETBE,
        IntIoctl::SetSndBuf => libc::TUNSETSNDBUF,
        IntIoctl::SteeringEbpf => libc::TUNSETSTEERINGEBPF,
        IntIoctl::FilterEbpf => libc::TUNSETFILTEREBPF,
    };
    // SAFETY: the request reads one `int` through its argument, which points
    // to `value`, borrowed until the call returns.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_ref(value)) })
}

/// Makes an ioctl on `fd` that writes one `int`, and returns it.
pub(crate) fn ioctl_get_int(fd: &impl AsRawFd, request: GetIntIoctl) -> Result<libc::c_int, Errno> {
    let request = match request {
        GetIntIoctl::VnetHdrSz => libc::TUNGETVNETHDRSZ,
        GetIntIoctl::VnetLe => libc::TUNGETVNETLE,
        GetIntIoctl::VnetBe => libc::TUNGETVNETBE,
        GetIntIoctl::SndBuf => libc::TUNGETSNDBUF,
    };
    let mut value: libc::c_int = 0;
    // SAFETY: the request writes one `int` through its argument, which
    // points to `value`, exclusively borrowed until the call returns.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_mut(&mut value)) })?;
    Ok(value)
}

/// `TUNSETTXFILTER` with `filter` and no address after it.
pub(crate) fn ioctl_tx_filter(fd: &impl AsRawFd, filter: &TunFilter) -> Result<(), Errno> {
    debug_assert_eq!(filter.count, 0, "no addresses follow the header");
    // SAFETY: with a count of 0 the kernel reads only the `struct
    // tun_filter` header, which `filter` is, borrowed until the call returns.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETTXFILTER,
            std::ptr::from_ref(filter),
        )
    })
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

/// `TUNATTACHFILTER` with an empty program (`len` 0, no instructions): the
/// kernel keeps the `sock_fprog` it is given, then refuses the program
/// (`EINVAL`), so this overwrites whatever program description a tenant
/// left on the device.
pub(crate) fn ioctl_clear_filter(fd: &impl AsRawFd) -> Result<(), Errno> {
    let empty = libc::sock_fprog {
        len: 0,
        filter: std::ptr::null_mut(),
    };
    // SAFETY: the request reads one `sock_fprog`, which `empty` is,
    // borrowed until the call returns; its null program is never read.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNATTACHFILTER, &raw const empty) })
}

/// `TUNGETFILTER`: the socket filter description the device keeps, as
/// (length, address of the program in its setter's memory).
pub(crate) fn ioctl_get_filter(fd: &impl AsRawFd) -> Result<(u16, usize), Errno> {
    let mut fprog = libc::sock_fprog {
        len: 0,
        filter: std::ptr::null_mut(),
    };
    // SAFETY: the request writes one `sock_fprog` to `fprog`, exclusively
    // borrowed until the call returns.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETFILTER, &raw mut fprog) })?;
    Ok((fprog.len, fprog.filter as usize))
}
