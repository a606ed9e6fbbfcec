//! Socket options, each behind a checked `setsockopt` that returns the
//! errno as an `io::Error`.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// `setsockopt` with a value of type `T`.
///
/// Every caller below passes the type its option reads (`int`, `timeval`,
/// `sock_fprog`). A wrong one could only make the kernel refuse the option
/// (`EINVAL`, or `EFAULT` through a bad pointer inside it): `setsockopt`
/// reads at most `optlen` bytes and never writes to the caller's memory.
fn set_option<T>(
    socket: &impl AsRawFd,
    level: libc::c_int,
    option: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` for the duration of the call and
    // the length passed is its size, so the kernel reads only that object;
    // it copies what it reads, writes nothing back and keeps no pointer.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt` with an `int` value.
pub(crate) fn set_int_option(
    socket: &impl AsRawFd,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    set_option(socket, level, option, &value)
}

/// `SO_RCVTIMEO`: how long a receive blocks before failing with `EAGAIN`.
pub(crate) fn set_recv_timeout(socket: &impl AsRawFd, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    set_option(socket, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

/// `SO_ATTACH_FILTER`: a classic BPF program run on every message before it
/// is queued. The kernel copies the program.
pub(crate) fn attach_filter(
    socket: &impl AsRawFd,
    program: &[libc::sock_filter],
) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        // The kernel only reads the program; `sock_fprog` is declared with a
        // mutable pointer all the same.
        filter: program.as_ptr().cast_mut(),
    };
    set_option(socket, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}
