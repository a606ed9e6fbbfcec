//! Making a persistent tap through `/dev/net/tun`.
//!
//! Every step is an ioctl on a file that is closed before returning: the pool
//! never holds a tap open, so the microVM that later attaches to it is its
//! only user.
//!
//! A tap is made in two halves. [`new_tap`] makes it (`TUNSETIFF`, owner,
//! group) and hands back the open file as a [`NewTap`]; the caller configures
//! the device over rtnetlink while that file is still open, then
//! [`NewTap::persist`] makes it persistent and closes the file. Until that
//! last step the device lives only as long as the file: if the process dies
//! (even by `SIGKILL`) anywhere before `TUNSETPERSIST` succeeds, the kernel
//! closes the file and removes the device with it. So a persistent tap is
//! always a fully configured one. (On an ordinary failure the caller also
//! deletes the device explicitly, because a close is only as prompt as the
//! last copy of the descriptor: see `LinuxKernel::discard`.)

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use super::ioctl::{
    GetIntIoctl, IfreqIoctl, IntIoctl, TunFilter, ValueIoctl, ifreq, ioctl_clear_filter,
    ioctl_get_filter, ioctl_get_int, ioctl_ifreq, ioctl_int, ioctl_tx_filter, ioctl_value,
};
use crate::kernel::{CreateStep, Errno, KernelError, TapSpec};
use crate::name::TapName;

pub(crate) const TUN_DEVICE: &std::ffi::CStr = c"/dev/net/tun";

/// A tap made but not yet persistent: dropping it removes the device (once
/// no forked child holds a copy of the file).
pub(crate) struct NewTap {
    name: TapName,
    file: OwnedFd,
}

/// Makes the tap `name` as `spec` says (flags, owner, group), not persistent.
///
/// Its carrier is turned off while the file is held (`TUNSETCARRIER`), as
/// if no one had it open: configuring it up with carrier on would start
/// IPv6 autoconfiguration (a link-local address, DAD, router solicitations)
/// for a device that nobody uses yet. A VMM attaching later turns the
/// carrier on, as it would for a tap made any other way.
pub(crate) fn new_tap(name: TapName, spec: &TapSpec) -> Result<NewTap, KernelError> {
    let fail = |step: CreateStep| {
        move |errno: Errno| {
            if step == CreateStep::SetIff && (errno.0 == libc::EBUSY || errno.0 == libc::EEXIST) {
                KernelError::Exists { name }
            } else {
                KernelError::Create { name, step, errno }
            }
        }
    };
    let file = open_tun().map_err(fail(CreateStep::OpenTun))?;
    let flags = tap_flags(spec) | libc::IFF_TUN_EXCL;
    set_iff(&file, name, flags).map_err(fail(CreateStep::SetIff))?;
    // From here on, an early return drops `file` and with it the device.

    if let Err(errno) = ioctl_int(&file, IntIoctl::TunSetCarrier, &0) {
        // Kernels before 4.17 lack it; the tap then just autoconfigures.
        tracing::debug!(%name, %errno, "TUNSETCARRIER refused");
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    if let Some(owner) = spec.effective_owner(euid) {
        ioctl_value(&file, ValueIoctl::Owner, owner.into()).map_err(fail(CreateStep::SetOwner))?;
    }
    if let Some(group) = spec.group {
        ioctl_value(&file, ValueIoctl::Group, group.into()).map_err(fail(CreateStep::SetGroup))?;
    }
    Ok(NewTap { name, file })
}

impl NewTap {
    /// The Ethernet address the kernel gave the tap (`SIOCGIFHWADDR`, which
    /// the tun driver answers on its own file).
    pub(crate) fn mac(&self) -> Result<[u8; 6], Errno> {
        let mut req = ifreq(self.name);
        ioctl_ifreq(&self.file, IfreqIoctl::GetHwAddr, &mut req)?;
        // SAFETY: every member of the `ifr_ifru` union is plain data, valid
        // for any bytes; SIOCGIFHWADDR wrote the hardware address member.
        let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
        Ok(std::array::from_fn(|i| data[i] as u8))
    }

    /// Makes the tap persistent and closes it. If `TUNSETPERSIST` fails, the
    /// close removes the device.
    pub(crate) fn persist(self) -> Result<(), KernelError> {
        ioctl_value(&self.file, ValueIoctl::Persist, 1).map_err(|errno| KernelError::Create {
            name: self.name,
            step: CreateStep::SetPersist,
            errno,
        })
    }
}

/// Opens `/dev/net/tun`. The device it makes belongs to the calling thread's
/// network namespace.
pub(crate) fn open_tun() -> Result<OwnedFd, Errno> {
    // SAFETY: the path is a valid NUL-terminated string with static lifetime.
    let fd = unsafe { libc::open(TUN_DEVICE.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::of(&io::Error::last_os_error()));
    }
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `TUNSETIFF`: binds `file` to the device `name`, creating it if needed.
pub(crate) fn set_iff(file: &OwnedFd, name: TapName, flags: libc::c_int) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    ioctl_ifreq(file, IfreqIoctl::TunSetIff, &mut req)
}

/// The flags a pool tap is made and attached with: a tap, no packet
/// information header, and the spec's `IFF_VNET_HDR` and `IFF_MULTI_QUEUE`.
/// (`IFF_NO_PI` has the value of `IFF_NOFILTER` too, so an attach with
/// these flags never applies a classic socket filter left on the device.)
fn tap_flags(spec: &TapSpec) -> libc::c_int {
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if spec.vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if spec.multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    flags
}

/// `sizeof(struct virtio_net_hdr)` (linux/virtio_net.h): the vnet header
/// size a tap is made with.
pub(crate) const VNET_HDR_LEN: libc::c_int = 10;

/// The send buffer a file gets when it opens `/dev/net/tun`, which a
/// `TUNSETSNDBUF` on the device changes for every attached file.
const SNDBUF: libc::c_int = libc::c_int::MAX;

/// A pool tap this process has attached to in order to reset it. While it
/// is held, no other file can attach to a single-queue tap (`EBUSY`);
/// dropping it detaches (and removes the tap if it is not persistent).
#[derive(Debug)]
pub(crate) struct Attached {
    file: OwnedFd,
}

/// Why a tun setting could not be put back.
#[derive(Debug)]
pub(crate) enum TunRestore {
    /// The kernel refused to set it.
    Refused(&'static str, Errno),
    /// It was set, and read back as something else.
    Differs(&'static str),
}

/// Attaches to the existing tap `name` with the pool's flags, as any
/// process allowed to would: `EBUSY` if a single-queue tap already has a
/// file attached, `EINVAL` if `name` is not a tap or its multi-queue flag
/// is not the spec's. The carrier is turned off at once, as at creation, so
/// that attaching starts no IPv6 autoconfiguration.
///
/// By name: the caller checks that it is the device it means. Beware that
/// a `TUNSETIFF` of a name no device has makes one (not persistent: it goes
/// when the file is dropped).
pub(crate) fn attach(name: TapName, spec: &TapSpec) -> Result<Attached, Errno> {
    let file = open_tun()?;
    set_iff(&file, name, tap_flags(spec))?;
    if let Err(errno) = ioctl_int(&file, IntIoctl::TunSetCarrier, &0) {
        tracing::debug!(%name, %errno, "TUNSETCARRIER refused");
    }
    Ok(Attached { file })
}

impl Attached {
    /// Puts back every setting a tenant can change through a file attached
    /// to the tap (each tun ioctl that needs no capability; see
    /// docs/security.md), then reads back those the kernel reports:
    ///
    /// - owner and group: set to `owner` and `group` where given (the
    ///   caller has checked that the tap has none where none is given: the
    ///   kernel cannot unset them);
    /// - offloads (`TUNSETOFFLOAD` 0, as made), the MAC filter (off), the
    ///   classic socket filter (detached, and the program description the
    ///   device keeps overwritten: read back), the steering and filtering eBPF
    ///   programs (none), the driver's log level (0, as made);
    /// - the vnet header's size (10), little- and big-endian headers (off),
    ///   the send buffer (`INT_MAX`, as a fresh file has): read back;
    /// - the flags (`TUNGETIFF`): a tap, the spec's vnet header and
    ///   multi-queue flags, persistent: read back after [`Attached::persist`]
    ///   sets persistence, by the caller's final check.
    pub(crate) fn restore(&self, owner: Option<u32>, group: Option<u32>) -> Result<(), TunRestore> {
        let file = &self.file;
        let set = |what: &'static str, result: Result<(), Errno>| {
            result.map_err(|errno| TunRestore::Refused(what, errno))
        };
        // Absent from a kernel built without it: then no tenant set it either.
        let optional = |what: &'static str, result: Result<(), Errno>| match result {
            Err(errno) if errno.0 == libc::EINVAL || errno.0 == libc::ENOTTY => Ok(()),
            other => set(what, other),
        };
        if let Some(owner) = owner {
            set("owner", ioctl_value(file, ValueIoctl::Owner, owner.into()))?;
        }
        if let Some(group) = group {
            set("group", ioctl_value(file, ValueIoctl::Group, group.into()))?;
        }
        set("offloads", ioctl_value(file, ValueIoctl::Offload, 0))?;
        let no_filter = TunFilter { flags: 0, count: 0 };
        set("MAC filter", ioctl_tx_filter(file, &no_filter))?;
        // The device keeps the last program description it was given
        // (`TUNGETFILTER` shows it to the next tenant): overwritten with an
        // empty one, which the kernel then refuses.
        match ioctl_clear_filter(file) {
            Ok(()) => {}
            Err(errno) if errno.0 == libc::EINVAL => {}
            Err(errno) => return Err(TunRestore::Refused("socket filter", errno)),
        }
        set(
            "socket filter",
            ioctl_value(file, ValueIoctl::DetachFilter, 0),
        )?;
        optional(
            "steering eBPF program",
            ioctl_int(file, IntIoctl::SteeringEbpf, &-1),
        )?;
        optional(
            "filter eBPF program",
            ioctl_int(file, IntIoctl::FilterEbpf, &-1),
        )?;
        set("log level", ioctl_value(file, ValueIoctl::Debug, 0))?;
        set(
            "vnet header size",
            ioctl_int(file, IntIoctl::SetVnetHdrSz, &VNET_HDR_LEN),
        )?;
        set(
            "little-endian vnet headers",
            ioctl_int(file, IntIoctl::SetVnetLe, &0),
        )?;
        optional(
            "big-endian vnet headers",
            ioctl_int(file, IntIoctl::SetVnetBe, &0),
        )?;
        set("send buffer", ioctl_int(file, IntIoctl::SetSndBuf, &SNDBUF))?;

        let get = |what: &'static str, request| {
            ioctl_get_int(file, request).map_err(|errno| TunRestore::Refused(what, errno))
        };
        let expect = |what: &'static str, value: libc::c_int, want: libc::c_int| {
            if value == want {
                Ok(())
            } else {
                Err(TunRestore::Differs(what))
            }
        };
        expect(
            "vnet header size",
            get("vnet header size", GetIntIoctl::VnetHdrSz)?,
            VNET_HDR_LEN,
        )?;
        expect(
            "little-endian vnet headers",
            get("little-endian vnet headers", GetIntIoctl::VnetLe)?,
            0,
        )?;
        match ioctl_get_int(file, GetIntIoctl::VnetBe) {
            Ok(be) => expect("big-endian vnet headers", be, 0)?,
            Err(errno) if errno.0 == libc::EINVAL => {}
            Err(errno) => return Err(TunRestore::Refused("big-endian vnet headers", errno)),
        }
        expect(
            "send buffer",
            get("send buffer", GetIntIoctl::SndBuf)?,
            SNDBUF,
        )?;
        match ioctl_get_filter(file) {
            Ok((0, 0)) => Ok(()),
            Ok(_) => Err(TunRestore::Differs("socket filter")),
            Err(errno) => Err(TunRestore::Refused("socket filter", errno)),
        }
    }

    /// Makes the tap persistent (a tenant may have turned that off) and
    /// detaches.
    pub(crate) fn persist(self) -> Result<(), Errno> {
        ioctl_value(&self.file, ValueIoctl::Persist, 1)
    }
}
