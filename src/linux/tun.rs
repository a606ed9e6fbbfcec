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

use super::ioctl::{IfreqIoctl, IntIoctl, ValueIoctl, ifreq, ioctl_ifreq, ioctl_int, ioctl_value};
use crate::kernel::{CreateStep, Errno, KernelError, TapSpec};
use crate::name::TapName;

const TUN_DEVICE: &std::ffi::CStr = c"/dev/net/tun";

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

    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL;
    if spec.vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if spec.multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
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
