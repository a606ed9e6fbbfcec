//! Watching links go away: a route netlink socket subscribed to
//! `RTNLGRP_LINK`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;

use super::link::IFINFOMSG_LEN;
use super::netlink::{
    self, Attrs, Malformed, NlError, SocketStep, attach_filter, c_string, read_u32, set_int_option,
    set_recv_timeout, split_message,
};
use crate::kernel::{KernelError, LinkEvent, LinkWatcher};
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
        Self::open_socket().map_err(|e| super::socket_error(&e))
    }

    fn open_socket() -> Result<LinuxLinkWatcher, NlError> {
        let fail = |step| move |source| NlError::Open { step, source };
        let groups = Groups::new_groups(&[libc::RTNLGRP_LINK]);
        let socket =
            NlSocket::connect(NlFamily::Route, None, groups).map_err(fail(SocketStep::Connect))?;
        socket.block().map_err(fail(SocketStep::Block))?;
        set_recv_timeout(&socket, WAIT).map_err(fail(SocketStep::RecvTimeout))?;
        attach_filter(&socket, &removal_filter()).map_err(fail(SocketStep::Filter))?;
        if set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECV_BUFFER).is_err() {
            set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, RECV_BUFFER)
                .map_err(fail(SocketStep::RecvBuffer))?;
        }
        Ok(LinuxLinkWatcher {
            socket,
            buf: vec![0; 64 * 1024],
            pending: VecDeque::new(),
        })
    }
}

/// A classic BPF instruction (`struct sock_filter`).
const fn insn(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// A filter that lets only link removals into the socket: `nlmsg_type ==
/// RTM_DELLINK` and `ifi_family == AF_UNSPEC`. The kernel runs it as it
/// broadcasts, so the many other link notifications (several per tap a
/// warm-up creates) are never queued and never wake the watcher thread, a
/// cross-CPU wake-up the creating thread would pay for each.
/// `queue_removals` checks again.
fn removal_filter() -> [libc::sock_filter; 6] {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET};
    // `ld h` reads in network byte order; netlink fields are in host order.
    let dellink = u32::from(u16::from_be_bytes(libc::RTM_DELLINK.to_ne_bytes()));
    [
        insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 4), // A = nlmsghdr.nlmsg_type
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, dellink), // not RTM_DELLINK: drop
        insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 16), // A = ifinfomsg.ifi_family
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, libc::AF_UNSPEC as u32), // not AF_UNSPEC: drop
        insn(BPF_RET | BPF_K, 0, 0, u32::MAX),   // accept the whole message
        insn(BPF_RET | BPF_K, 0, 0, 0),          // drop
    ]
}

/// Queues the removals among the messages of one datagram (several
/// notifications may share one).
pub(super) fn queue_removals(
    mut rest: &[u8],
    pending: &mut VecDeque<LinkEvent>,
) -> Result<(), Malformed> {
    while !rest.is_empty() {
        let (header, payload, next) = split_message(rest)?;
        rest = next;
        if header.kind != libc::RTM_DELLINK || payload.len() < IFINFOMSG_LEN {
            continue;
        }
        // struct ifinfomsg: family, pad, type, index, flags, change.
        if payload[0] != libc::AF_UNSPEC as u8 {
            continue;
        }
        let index = read_u32(payload, 4);
        let name = Attrs(&payload[IFINFOMSG_LEN..])
            .find(|&(kind, _)| kind == libc::IFLA_IFNAME)
            .map(|(_, value)| c_string(value));
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
            let len = match netlink::recv(&self.socket, &mut self.buf) {
                Ok(len) => len,
                Err(e) => {
                    let errno = e.errno();
                    if errno.0 == libc::ENOBUFS {
                        tracing::debug!("link notifications overran the socket; resync");
                        return Ok(Some(LinkEvent::Resync));
                    }
                    if errno.0 == libc::EAGAIN || errno.0 == libc::EWOULDBLOCK {
                        return Ok(None);
                    }
                    return Err(super::socket_error(&e));
                }
            };
            if let Err(e) = queue_removals(&self.buf[..len], &mut self.pending) {
                // A malformed datagram: what it held is unknown.
                tracing::warn!(error = %e, "malformed link notification");
                return Ok(Some(LinkEvent::Resync));
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
        let mut datagram = Vec::new();
        datagram.extend(message(libc::RTM_NEWLINK, 0, 5, "tap-a"));
        // A bridge port leaving its bridge: not a removal.
        datagram.extend(message(
            libc::RTM_DELLINK,
            libc::AF_BRIDGE as u8,
            5,
            "tap-a",
        ));
        datagram.extend(message(libc::RTM_DELLINK, 0, 5, "tap-a"));
        datagram.extend(message(libc::RTM_DELLINK, 0, 9, "tap-bb"));
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

    #[cfg(target_endian = "little")]
    #[test]
    fn golden_removal_filter() {
        let program: Vec<_> = removal_filter()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect();
        #[rustfmt::skip]
        let expected = [
            (0x28, 0, 0, 4),          // ldh [4]: nlmsg_type (BPF_LD | BPF_H | BPF_ABS)
            (0x15, 0, 3, 0x1100),     // jeq #RTM_DELLINK (17, byte-swapped), else drop
            (0x30, 0, 0, 16),         // ldb [16]: ifi_family (BPF_LD | BPF_B | BPF_ABS)
            (0x15, 0, 1, 0),          // jeq #AF_UNSPEC, else drop
            (0x06, 0, 0, u32::MAX),   // ret #-1: accept the whole message
            (0x06, 0, 0, 0),          // ret #0: drop
        ];
        assert_eq!(program, expected);
    }

    /// Runs the classic BPF subset `removal_filter` uses on `packet`, as the
    /// kernel would: `ld` of a half-word (network order) or byte at an
    /// absolute offset, `jeq #k`, `ret #k`. Returns the bytes accepted.
    fn run_filter(program: &[libc::sock_filter], packet: &[u8]) -> u32 {
        let mut a = 0u32;
        let mut pc = 0;
        loop {
            let insn = program[pc];
            let k = insn.k as usize;
            match u32::from(insn.code) {
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS => {
                    a = u32::from(u16::from_be_bytes([packet[k], packet[k + 1]]));
                }
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => a = u32::from(packet[k]),
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == insn.k { insn.jt } else { insn.jf });
                }
                c if c == libc::BPF_RET | libc::BPF_K => return insn.k,
                other => panic!("opcode {other:#x} not in the subset"),
            }
            pc += 1;
        }
    }

    /// Notifications captured from Linux 6.18 (`testdata/README.md` says
    /// how): a tap leaving its bridge, then deleted.
    const NEWLINK_BRIDGE_PORT: &[u8] = include_bytes!("testdata/newlink_bridge_port.bin");
    const DELLINK_BRIDGE_PORT: &[u8] = include_bytes!("testdata/dellink_bridge_port.bin");
    const DELLINK: &[u8] = include_bytes!("testdata/dellink.bin");

    #[cfg(target_endian = "little")]
    #[test]
    fn captured_notifications_through_the_filter() {
        let program = removal_filter();
        assert_eq!(run_filter(&program, NEWLINK_BRIDGE_PORT), 0);
        assert_eq!(run_filter(&program, DELLINK_BRIDGE_PORT), 0);
        assert_eq!(run_filter(&program, DELLINK), u32::MAX);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn captured_notifications_only_the_removal_is_queued() {
        let mut pending = VecDeque::new();
        for datagram in [NEWLINK_BRIDGE_PORT, DELLINK_BRIDGE_PORT, DELLINK] {
            assert_eq!(queue_removals(datagram, &mut pending), Ok(()));
        }
        let removed = LinkEvent::Removed {
            name: TapName::new("tapc0").expect("valid"),
            index: 3,
        };
        assert_eq!(Vec::from(pending), [removed]);
    }

    #[test]
    fn truncated_datagram_is_malformed() {
        let mut pending = VecDeque::new();
        assert_eq!(
            queue_removals(&DELLINK[..10], &mut pending),
            Err(Malformed::Truncated {
                what: "message header",
                len: 10,
                need: 16
            })
        );
        assert!(pending.is_empty());
    }
}
