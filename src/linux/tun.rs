//! Making a persistent tap through `/dev/net/tun`.
//!
//! Every step is an ioctl on a file that is closed before returning: the pool
//! never holds a tap open, so the microVM that later attaches to it is its
//! only user.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::kernel::{CreateStep, Errno, KernelError, TapSpec};
use crate::name::TapName;

const TUN_DEVICE: &std::ffi::CStr = c"/dev/net/tun";

/// Creates the persistent tap `name` as `spec` says and closes it.
///
/// If a step before `TUNSETPERSIST` fails, closing the file removes the
/// half-made device; `TUNSETPERSIST` is the last step, so nothing is left
/// behind on any failure.
pub(crate) fn create_persistent_tap(name: TapName, spec: &TapSpec) -> Result<(), KernelError> {
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

    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    if let Some(owner) = spec.effective_owner(euid) {
        ioctl_value(&file, libc::TUNSETOWNER, owner.into()).map_err(fail(CreateStep::SetOwner))?;
    }
    if let Some(group) = spec.group {
        ioctl_value(&file, libc::TUNSETGROUP, group.into()).map_err(fail(CreateStep::SetGroup))?;
    }
    ioctl_value(&file, libc::TUNSETPERSIST, 1).map_err(fail(CreateStep::SetPersist))?;
    drop(file);
    Ok(())
}

/// Opens `/dev/net/tun`. The device it makes belongs to the calling thread's
/// network namespace.
pub(crate) fn open_tun() -> Result<OwnedFd, Errno> {
    // SAFETY: the path is a valid NUL-terminated string with static lifetime.
    let fd = unsafe { libc::open(TUN_DEVICE.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `TUNSETIFF`: binds `file` to the device `name`, creating it if needed.
pub(crate) fn set_iff(file: &OwnedFd, name: TapName, flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // The name is at most 15 bytes (checked by `TapName`), so the 16-byte
    // field keeps its terminating NUL from the zeroed struct.
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_str().bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `req` is, and
    // `req` lives until the call returns.
    unsafe { ioctl_ptr(file, libc::TUNSETIFF, (&raw mut req).cast()) }
}

/// An ioctl whose argument is passed by value.
fn ioctl_value(file: &OwnedFd, request: libc::Ioctl, value: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: the callers pass only requests (TUNSETOWNER, TUNSETGROUP,
    // TUNSETPERSIST) that take an integer, not a pointer, as argument.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, value) };
    if rc < 0 { Err(last_errno()) } else { Ok(()) }
}

/// An ioctl whose argument is a pointer.
///
/// # Safety
///
/// `arg` must point to memory of the type `request` expects, valid for reads
/// and writes for the duration of the call.
unsafe fn ioctl_ptr(
    file: &OwnedFd,
    request: libc::Ioctl,
    arg: *mut libc::c_void,
) -> Result<(), Errno> {
    // SAFETY: upheld by the caller, see above.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, arg) };
    if rc < 0 { Err(last_errno()) } else { Ok(()) }
}

fn last_errno() -> Errno {
    Errno::of(&io::Error::last_os_error())
}
