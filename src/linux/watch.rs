//! Watching links go away: a route netlink socket subscribed to
//! `RTNLGRP_LINK`.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;

use super::rtnl::{self, Attrs, IFINFOMSG_LEN, NlError, RTM_DELLINK};
use crate::kernel::{Errno, KernelError, LinkEvent, LinkWatcher};
use crate::name::TapName;

/// How long [`LinkWatcher::next_event`] waits before answering `None`.
const WAIT: Duration = Duration::from_secs(1);

/// The receive buffer asked for: a group delete of hundreds of taps sends
/// several notifications per tap (the link going down, its bridge port going,
/// the link going) faster than a thread reads them. Set with
/// `SO_RCVBUFFORCE` when the process may (`CAP_NET_ADMIN`), else capped by
/// `net.core.rmem_max`. An overrun is not fatal: it becomes
/// [`LinkEvent::Resync`].
const RECV_BUFFER: libc::c_int = 8 << 20;

/// `SO_RCVBUFFORCE` (asm-generic/socket.h; the libc crate names it only for
/// Android).
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_RCVBUFFORCE: libc::c_int = 33;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_RCVBUFFORCE: libc::c_int = 0x100b;

// From linux/rtnetlink.h.
const RTNLGRP_LINK: u32 = 1;

/// The Linux [`LinkWatcher`]: reports every link removed from the network
/// namespace it was opened in.
///
/// Only a real removal counts: an `RTM_DELLINK` whose family is
/// `AF_UNSPEC`. The bridge also sends `RTM_DELLINK` (family `AF_BRIDGE`) when
/// a port leaves it — `ip link set TAP nomaster`, or a reset moving a tap to
/// another bridge — and that one is not a removal. `RTM_NEWLINK` is ignored.
pub struct LinuxLinkWatcher {
    socket: NlSocket,
    buf: Vec<u8>,
    pending: VecDeque<LinkEvent>,
}

impl LinuxLinkWatcher {
    /// Opens a watcher in the calling thread's network namespace. Changes
    /// made after this returns are seen; earlier ones are not.
    pub fn open() -> Result<LinuxLinkWatcher, KernelError> {
        let fail = |errno| KernelError::Socket { errno };
        let socket = NlSocket::connect(NlFamily::Route, None, Groups::new_groups(&[RTNLGRP_LINK]))
            .map_err(|e| fail(Errno::of(&e)))?;
        socket.block().map_err(|e| fail(Errno::of(&e)))?;
        rtnl::set_recv_timeout(&socket, WAIT).map_err(fail)?;
        attach_removal_filter(&socket).map_err(fail)?;
        if rtnl::set_int_option(&socket, libc::SOL_SOCKET, SO_RCVBUFFORCE, RECV_BUFFER).is_err() {
            rtnl::set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, RECV_BUFFER)
                .map_err(fail)?;
        }
        Ok(LinuxLinkWatcher {
            socket,
            buf: vec![0; 64 * 1024],
            pending: VecDeque::new(),
        })
    }
}

/// `SO_ATTACH_FILTER` (asm-generic/socket.h; the same number on every
/// architecture).
const SO_ATTACH_FILTER: libc::c_int = 26;

/// Classic BPF opcodes (linux/bpf_common.h): `BPF_LD` (0) with
/// `BPF_H`/`BPF_B` and `BPF_ABS`; `BPF_JMP | BPF_JEQ | BPF_K`; `BPF_RET | BPF_K`.
const BPF_LD_H_ABS: u16 = 0x08 | 0x20;
const BPF_LD_B_ABS: u16 = 0x10 | 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_RET_K: u16 = 0x06;

/// Lets only link removals into the socket: `nlmsg_type == RTM_DELLINK` and
/// `ifi_family == AF_UNSPEC`. The kernel runs the filter as it broadcasts, so
/// the many other link notifications (several per tap a warm-up creates)
/// are never queued and never wake the watcher thread, a cross-CPU wake-up
/// the creating thread would pay for each. `queue_removals` checks again.
fn attach_removal_filter(socket: &NlSocket) -> Result<(), Errno> {
    // `ld h` reads in network byte order; netlink fields are in host order.
    let dellink = u32::from(u16::from_be_bytes(RTM_DELLINK.to_ne_bytes()));
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut program = [
        insn(BPF_LD_H_ABS, 0, 0, 4), // nlmsghdr.nlmsg_type
        insn(BPF_JEQ_K, 0, 3, dellink),
        insn(BPF_LD_B_ABS, 0, 0, 16), // ifinfomsg.ifi_family
        insn(BPF_JEQ_K, 0, 1, libc::AF_UNSPEC as u32),
        insn(BPF_RET_K, 0, 0, u32::MAX),
        insn(BPF_RET_K, 0, 0, 0),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: the option reads one `sock_fprog` whose program outlives the
    // call (the kernel copies it), and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::of(&std::io::Error::last_os_error()))
    }
}

/// Queues the removals among the messages of one datagram (several
/// notifications may share one).
fn queue_removals(mut rest: &[u8], pending: &mut VecDeque<LinkEvent>) -> Result<(), NlError> {
    while !rest.is_empty() {
        let (header, payload, next) = rtnl::split_message(rest)?;
        rest = next;
        if header.kind != RTM_DELLINK || payload.len() < IFINFOMSG_LEN {
            continue;
        }
        // struct ifinfomsg: family, pad, type, index, flags, change.
        if payload[0] != libc::AF_UNSPEC as u8 {
            continue;
        }
        let index = rtnl::read_u32(payload, 4);
        let name = Attrs(&payload[IFINFOMSG_LEN..])
            .find(|&(kind, _)| kind == libc::IFLA_IFNAME)
            .map(|(_, value)| rtnl::c_string(value));
        match name.as_deref().map(TapName::new) {
            Some(Ok(name)) => {
                tracing::debug!(%name, index, "link removed");
                pending.push_back(LinkEvent::Removed { name, index });
            }
            // Not a name the pool could have made: not one of its taps.
            _ => tracing::debug!(?name, index, "link removed (not a tap name)"),
        }
    }
    Ok(())
}

impl LinkWatcher for LinuxLinkWatcher {
    fn next_event(&mut self) -> Result<Option<LinkEvent>, KernelError> {
        let start = Instant::now();
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            // Ignored notifications (a link changing) do not extend the wait
            // by more than one receive timeout.
            if start.elapsed() >= WAIT {
                return Ok(None);
            }
            match rtnl::recv(&self.socket, &mut self.buf) {
                Ok(len) => {
                    if let Err(e) = queue_removals(&self.buf[..len], &mut self.pending) {
                        // A malformed datagram: what it held is unknown.
                        tracing::warn!(error = ?e, "malformed link notification");
                        return Ok(Some(LinkEvent::Resync));
                    }
                }
                Err(NlError::Socket(errno)) if errno.0 == libc::ENOBUFS => {
                    tracing::debug!("link notifications overran the socket; resync");
                    return Ok(Some(LinkEvent::Resync));
                }
                Err(NlError::Socket(errno))
                    if errno.0 == libc::EAGAIN || errno.0 == libc::EWOULDBLOCK =>
                {
                    return Ok(None);
                }
                Err(NlError::Socket(errno)) | Err(NlError::Kernel { errno, .. }) => {
                    return Err(KernelError::Socket { errno });
                }
            }
        }
    }
}

impl std::fmt::Debug for LinuxLinkWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxLinkWatcher")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `RTM_*LINK` message: header, ifinfomsg of `family` and `index`,
    /// and an `IFLA_IFNAME` attribute.
    fn message(kind: u16, family: u8, index: u32, name: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let attr_len = 4 + name.len() + 1;
        attr.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        attr.extend_from_slice(&libc::IFLA_IFNAME.to_ne_bytes());
        attr.extend_from_slice(name.as_bytes());
        attr.push(0);
        attr.resize((attr.len() + 3) & !3, 0);
        let mut info = vec![family, 0, 1, 0];
        info.extend_from_slice(&index.to_ne_bytes());
        info.extend_from_slice(&[0; 8]);
        let len = 16 + info.len() + attr.len();
        let mut msg = Vec::new();
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend(info);
        msg.extend(attr);
        msg
    }

    #[test]
    fn one_datagram_many_notifications_only_real_removals() {
        const RTM_NEWLINK: u16 = 16;
        let mut datagram = Vec::new();
        datagram.extend(message(RTM_NEWLINK, 0, 5, "tap-a"));
        // A bridge port leaving its bridge: not a removal.
        datagram.extend(message(RTM_DELLINK, libc::AF_BRIDGE as u8, 5, "tap-a"));
        datagram.extend(message(RTM_DELLINK, 0, 5, "tap-a"));
        datagram.extend(message(RTM_DELLINK, 0, 9, "tap-bb"));
        let mut pending = VecDeque::new();
        assert!(queue_removals(&datagram, &mut pending).is_ok());
        let removed = |name: &str, index| LinkEvent::Removed {
            name: TapName::new(name).expect("valid"),
            index,
        };
        assert_eq!(
            Vec::from(pending),
            [removed("tap-a", 5), removed("tap-bb", 9)]
        );
    }
}
