//! Watching links go away and change names: a route netlink socket
//! subscribed to `RTNLGRP_LINK`, and a second one to read the links.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use neli::consts::socket::NlFamily;
use neli::socket::NlSocket;
use neli::utils::Groups;
use rustc_hash::FxHashMap;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use super::link::parse::{exact_name, parse_link_name};
use super::link::{IFINFOMSG_LEN, Target};
use super::netlink::{
    self, Attrs, Malformed, NlError, Rtnl, SocketStep, attach_filter, read_u32, set_int_option,
    set_recv_timeout, split_message,
};
use crate::kernel::{KernelError, LinkEvent, LinkWatcher};
use crate::name::TapName;

/// How long [`LinkWatcher::next_event`] waits before answering `None`.
const WAIT: Duration = Duration::from_secs(1);

/// How long the watcher pauses, after a notification that was no event,
/// before it waits on the socket again: a warm-up sends three
/// `RTM_NEWLINK`s per tap, and a thread waiting on the socket is woken by
/// each (a cross-CPU wake-up the creating thread pays for). Paused, it lets
/// a burst queue up and reads it in one go; an event in a burst is seen at
/// most this late.
const BURST_PAUSE: Duration = Duration::from_millis(1);

/// The receive buffer asked for: a group delete of hundreds of taps sends
/// several notifications per tap (the link going down, its bridge port going,
/// the link going) faster than a thread reads them. Set with
/// `SO_RCVBUFFORCE` when the process may (`CAP_NET_ADMIN`), else capped by
/// `net.core.rmem_max`. An overrun is not fatal: it becomes
/// [`LinkEvent::Resync`].
const RECV_BUFFER: libc::c_int = 8 << 20;

/// The Linux [`LinkWatcher`]: reports every link removed from the network
/// namespace it was opened in, and every link renamed there.
///
/// Only a real removal counts: an `RTM_DELLINK` whose family is
/// `AF_UNSPEC`. The bridge also sends `RTM_DELLINK` (family `AF_BRIDGE`) when
/// a port leaves it — `ip link set TAP nomaster`, or a reset moving a tap to
/// another bridge — and that one is not a removal.
///
/// A rename has no notification of its own: the kernel sends an
/// `RTM_NEWLINK` (family `AF_UNSPEC`) with the new name, as it does for any
/// other change to a link. So the watcher keeps every link's name as last
/// seen, by index: read from a dump when it opens (after it subscribes, so
/// that nothing in between is missed), updated by each `RTM_NEWLINK` and
/// forgotten at each `RTM_DELLINK`. A notification that shows a known index
/// under another name is checked with one `RTM_GETLINK` of that index
/// before it is reported ([`LinkEvent::Renamed`], with the name the link has
/// now): notifications queued before the dump can be older than what it
/// read, and are then not renames. Names are kept byte for byte: every name
/// the kernel gives a link is a [`TapName`], UTF-8 or not.
/// After lost notifications ([`LinkEvent::Resync`]) the names are read
/// again, and a link whose name changed meanwhile is reported as renamed
/// after the resync.
///
/// Every change to a link reaches the watcher, so after a notification that
/// was no event it pauses for 1 ms before it waits on the socket again: the
/// rest of a burst queues up meanwhile instead of waking it once per
/// notification, a wake-up the thread making the change would pay for.
pub struct LinuxLinkWatcher {
    socket: NlSocket,
    /// For the dumps of every link's name and the checks of one link's:
    /// the subscribed socket's queue is for notifications only.
    rtnl: Rtnl,
    buf: Vec<u8>,
    pending: VecDeque<LinkEvent>,
    /// Every link's name as last seen, by interface index.
    names: FxHashMap<u32, TapName>,
    /// Whether the last datagram held no event (see [`BURST_PAUSE`]).
    in_burst: bool,
}

impl LinuxLinkWatcher {
    /// Opens a watcher in the calling thread's network namespace. Changes
    /// made after this returns are seen; earlier ones are not, but a link
    /// that existed then is known by the name it had, so its renames are
    /// reported too.
    ///
    /// # Errors
    /// [`KernelError::Socket`] when the netlink socket cannot be opened,
    /// bound or subscribed, or the first listing fails.
    pub fn open() -> Result<LinuxLinkWatcher, KernelError> {
        Self::open_socket().map_err(|e| super::socket_error(&e))
    }

    /// A watcher in the calling thread's namespace told of removals only
    /// ([`LinkEvent::Removed`], and [`LinkEvent::Resync`] when some may
    /// have been lost): its socket's filter lets no other notification
    /// in, so the link changes of every create and reset do not wake its
    /// thread. For a process that needs to know only which devices went
    /// (`tap-pool-helper`, for its ledger).
    ///
    /// # Errors
    /// As [`LinuxLinkWatcher::open`].
    pub fn open_removals() -> Result<LinuxLinkWatcher, KernelError> {
        Self::subscribe(&removal_filter())
            .and_then(|socket| Self::from_parts(socket, Rtnl::open()?))
            .map_err(|e| super::socket_error(&e))
    }

    fn open_socket() -> Result<LinuxLinkWatcher, NlError> {
        let socket = Self::subscribe(&link_filter())?;
        // Subscribed first, then the dump: a change made while it is read
        // is in the socket's queue.
        Self::from_parts(socket, Rtnl::open()?)
    }

    /// The two sockets a watcher reads, opened in the calling thread's
    /// namespace, to hand to a process that cannot enter it: the one
    /// subscribed to link changes, then one for dumps. See
    /// [`LinuxLinkWatcher::from_sockets`].
    ///
    /// # Errors
    /// [`KernelError::Socket`] when either socket cannot be opened, bound
    /// or subscribed.
    pub fn open_sockets() -> Result<[OwnedFd; 2], KernelError> {
        let opened = Self::subscribe(&link_filter()).and_then(|socket| Ok((socket, Rtnl::open()?)));
        let (socket, rtnl) = opened.map_err(|e| super::socket_error(&e))?;
        Ok([owned(socket), owned(rtnl.into_socket())])
    }

    /// A watcher reading the sockets [`LinuxLinkWatcher::open_sockets`]
    /// opened, in whatever namespace that was (another process's, handed
    /// over with `SCM_RIGHTS`). Receiving link changes and dumping links
    /// need no privilege.
    ///
    /// # Errors
    /// [`KernelError::Socket`] when the first listing fails (a descriptor
    /// that is not such a socket).
    pub fn from_sockets(
        subscribed: OwnedFd,
        dumps: OwnedFd,
    ) -> Result<LinuxLinkWatcher, KernelError> {
        let socket = nl_socket(subscribed);
        let rtnl = Rtnl::from_socket(nl_socket(dumps));
        Self::from_parts(socket, rtnl).map_err(|e| super::socket_error(&e))
    }

    fn subscribe(filter: &[libc::sock_filter]) -> Result<NlSocket, NlError> {
        let fail = |step| move |source| NlError::Open { step, source };
        let groups = Groups::new_groups(&[libc::RTNLGRP_LINK]);
        let socket =
            NlSocket::connect(NlFamily::Route, None, groups).map_err(fail(SocketStep::Connect))?;
        socket.block().map_err(fail(SocketStep::Block))?;
        set_recv_timeout(&socket, WAIT).map_err(fail(SocketStep::RecvTimeout))?;
        attach_filter(&socket, filter).map_err(fail(SocketStep::Filter))?;
        if set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECV_BUFFER).is_err() {
            set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, RECV_BUFFER)
                .map_err(fail(SocketStep::RecvBuffer))?;
        }
        Ok(socket)
    }

    fn from_parts(socket: NlSocket, mut rtnl: Rtnl) -> Result<LinuxLinkWatcher, NlError> {
        let names = rtnl.link_names()?.into_iter().collect();
        Ok(LinuxLinkWatcher {
            socket,
            rtnl,
            buf: vec![0; 64 * 1024],
            pending: VecDeque::new(),
            names,
            in_burst: false,
        })
    }

    /// Reads every link's name again after notifications were lost, and
    /// queues a [`LinkEvent::Renamed`] for each link known before under
    /// another name.
    fn reread_names(&mut self) -> Result<(), NlError> {
        let names: FxHashMap<u32, TapName> = self.rtnl.link_names()?.into_iter().collect();
        let mut renamed: Vec<(u32, TapName, TapName)> = names
            .iter()
            .filter_map(|(&index, &to)| {
                let from = *self.names.get(&index)?;
                (from != to).then_some((index, from, to))
            })
            .collect();
        renamed.sort_unstable_by_key(|&(index, ..)| index);
        self.pending.extend(
            renamed
                .into_iter()
                .map(|(index, from, to)| LinkEvent::Renamed {
                    index,
                    from,
                    to: Some(to),
                }),
        );
        self.names = names;
        Ok(())
    }

    /// What a receive's failure, or a malformed datagram, means: the
    /// notifications it held are lost, so the names are read again and the
    /// owner told to resync. Failing to read them fails the watcher.
    fn resync(&mut self) -> Result<Option<LinkEvent>, KernelError> {
        self.reread_names().map_err(|e| super::socket_error(&e))?;
        Ok(Some(LinkEvent::Resync))
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

/// `ld h` reads in network byte order; netlink fields are in host order.
fn message_type(kind: u16) -> u32 {
    u32::from(u16::from_be_bytes(kind.to_ne_bytes()))
}

/// A filter that lets only link removals and link changes into the
/// socket: `nlmsg_type` is `RTM_DELLINK` or `RTM_NEWLINK`, and
/// `ifi_family == AF_UNSPEC`. The kernel runs it as it broadcasts, so the
/// bridge's own notifications about its ports (`AF_BRIDGE`, several per
/// tap a warm-up creates) are never queued and never wake the watcher
/// thread, a cross-CPU wake-up the creating thread would pay for each.
/// `queue_events` checks again.
fn link_filter() -> [libc::sock_filter; 7] {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET};
    [
        insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 4), // A = nlmsghdr.nlmsg_type
        insn(
            BPF_JMP | BPF_JEQ | BPF_K,
            1,
            0,
            message_type(libc::RTM_DELLINK),
        ), // RTM_DELLINK: on
        insn(
            BPF_JMP | BPF_JEQ | BPF_K,
            0,
            3,
            message_type(libc::RTM_NEWLINK),
        ), // neither: drop
        insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 16), // A = ifinfomsg.ifi_family
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, libc::AF_UNSPEC as u32), // not AF_UNSPEC: drop
        insn(BPF_RET | BPF_K, 0, 0, u32::MAX),   // accept the whole message
        insn(BPF_RET | BPF_K, 0, 0, 0),          // drop
    ]
}

/// [`link_filter`] for removals alone: `nlmsg_type` is `RTM_DELLINK` and
/// `ifi_family == AF_UNSPEC`.
fn removal_filter() -> [libc::sock_filter; 6] {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET};
    [
        insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 4), // A = nlmsghdr.nlmsg_type
        insn(
            BPF_JMP | BPF_JEQ | BPF_K,
            0,
            3,
            message_type(libc::RTM_DELLINK),
        ), // not RTM_DELLINK: drop
        insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 16), // A = ifinfomsg.ifi_family
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, libc::AF_UNSPEC as u32), // not AF_UNSPEC: drop
        insn(BPF_RET | BPF_K, 0, 0, u32::MAX),   // accept the whole message
        insn(BPF_RET | BPF_K, 0, 0, 0),          // drop
    ]
}

/// The kernel's answer to "what is link `index` called now?", asked before
/// a notification is reported as a rename.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NameNow {
    /// This.
    Is(TapName),
    /// No name: the kernel sent none a device can have (it always does
    /// send one).
    Unfit,
    /// Unknown: the link is gone (its removal is queued behind), or the
    /// question failed. The notification is the latest word there is.
    Unknown,
}

/// Asks the kernel what link `index` is called now.
fn name_now(rtnl: &mut Rtnl, index: u32) -> NameNow {
    match rtnl.link(Target::Index(index)) {
        Ok(link) => link.name.map_or(NameNow::Unfit, NameNow::Is),
        Err(e) => {
            tracing::debug!(index, error = %e, "cannot check a link's name");
            NameNow::Unknown
        }
    }
}

/// Queues the removals and renames among the messages of one datagram
/// (several notifications may share one), keeping `names` (every link's
/// name as last seen, by index) up to date. `name_now` is asked before a
/// known link seen under another name is reported as renamed.
pub(super) fn queue_events(
    mut rest: &[u8],
    names: &mut FxHashMap<u32, TapName>,
    name_now: &mut dyn FnMut(u32) -> NameNow,
    pending: &mut VecDeque<LinkEvent>,
) -> Result<(), Malformed> {
    while !rest.is_empty() {
        let (header, payload, next) = split_message(rest)?;
        rest = next;
        // struct ifinfomsg: family, pad, type, index, flags, change.
        if payload.len() < IFINFOMSG_LEN || payload[0] != libc::AF_UNSPEC as u8 {
            continue;
        }
        match header.kind {
            libc::RTM_NEWLINK => queue_rename(payload, names, name_now, pending)?,
            libc::RTM_DELLINK => {
                let index = read_u32(payload, 4);
                names.remove(&index);
                let name = Attrs(&payload[IFINFOMSG_LEN..])
                    .find(|&(kind, _)| kind == libc::IFLA_IFNAME)
                    .and_then(|(_, value)| exact_name(value));
                match name {
                    Some(name) => {
                        tracing::debug!(%name, index, "link removed");
                        pending.push_back(LinkEvent::Removed { name, index });
                    }
                    // No name the kernel could give a device (it always
                    // sends one): nothing to tell the pool.
                    None => tracing::debug!(index, "link removed (no device name)"),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// One `RTM_NEWLINK`: a link first seen is remembered; a known one under
/// another name is reported as renamed, to the name the kernel gives it now.
fn queue_rename(
    payload: &[u8],
    names: &mut FxHashMap<u32, TapName>,
    name_now: &mut dyn FnMut(u32) -> NameNow,
    pending: &mut VecDeque<LinkEvent>,
) -> Result<(), Malformed> {
    let (index, seen) = parse_link_name(payload)?;
    let Some(seen) = seen else {
        // A known link now with no name a device can have (the kernel
        // always sends one): renamed all the same (the pool can never open
        // it by name); forgotten here.
        if let Some(from) = names.remove(&index) {
            tracing::debug!(index, %from, "link renamed to no device name");
            pending.push_back(LinkEvent::Renamed {
                index,
                from,
                to: None,
            });
        }
        return Ok(());
    };
    let Some(&from) = names.get(&index) else {
        names.insert(index, seen);
        return Ok(());
    };
    if from == seen {
        return Ok(());
    }
    let to = match name_now(index) {
        // An old notification: the name it shows is past.
        NameNow::Is(now) if now == from => return Ok(()),
        NameNow::Is(now) => Some(now),
        NameNow::Unfit => None,
        NameNow::Unknown => Some(seen),
    };
    tracing::debug!(index, %from, ?to, "link renamed");
    match to {
        Some(to) => names.insert(index, to),
        None => names.remove(&index),
    };
    pending.push_back(LinkEvent::Renamed { index, from, to });
    Ok(())
}

impl LinkWatcher for LinuxLinkWatcher {
    fn next_event(&mut self) -> Result<Option<LinkEvent>, KernelError> {
        let start = Instant::now();
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            // Notifications that are not events (a link changing) do not
            // extend the wait by more than one receive timeout.
            if start.elapsed() >= WAIT {
                return Ok(None);
            }
            let received = match netlink::recv_queued(&self.socket, &mut self.buf) {
                Ok(Some(len)) => Ok(len),
                // Nothing queued after notifications that were no events:
                // pause rather than be woken by each of the next ones.
                Ok(None) if self.in_burst => {
                    self.in_burst = false;
                    std::thread::sleep(BURST_PAUSE);
                    continue;
                }
                Ok(None) => netlink::recv(&self.socket, &mut self.buf),
                Err(e) => Err(e),
            };
            let len = match received {
                Ok(len) => len,
                Err(e) => {
                    let errno = e.errno();
                    if errno.0 == libc::ENOBUFS {
                        tracing::debug!("link notifications overran the socket; resync");
                        return self.resync();
                    }
                    if errno.0 == libc::EAGAIN || errno.0 == libc::EWOULDBLOCK {
                        return Ok(None);
                    }
                    return Err(super::socket_error(&e));
                }
            };
            let rtnl = &mut self.rtnl;
            let queued = queue_events(
                &self.buf[..len],
                &mut self.names,
                &mut |index| name_now(rtnl, index),
                &mut self.pending,
            );
            if let Err(e) = queued {
                // A malformed datagram: what it held is unknown.
                tracing::warn!(error = %e, "malformed link notification");
                return self.resync();
            }
            self.in_burst = self.pending.is_empty();
        }
    }
}

impl std::fmt::Debug for LinuxLinkWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxLinkWatcher")
            .field("pending", &self.pending.len())
            .field("links", &self.names.len())
            .finish_non_exhaustive()
    }
}

/// A netlink socket as a plain descriptor.
pub(crate) fn owned(socket: NlSocket) -> OwnedFd {
    // SAFETY: `into_raw_fd` gives up the socket's descriptor, open and owned
    // by nobody else from here.
    unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) }
}

/// A descriptor (a netlink socket, checked by its first use) as neli's
/// socket.
pub(crate) fn nl_socket(fd: OwnedFd) -> NlSocket {
    // SAFETY: `into_raw_fd` gives up an open descriptor that nothing else
    // owns; the socket closes it when dropped.
    unsafe { NlSocket::from_raw_fd(fd.into_raw_fd()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(name: &str) -> TapName {
        TapName::new(name).expect("valid")
    }

    /// One `RTM_*LINK` message: header, ifinfomsg of `family` and `index`,
    /// and an `IFLA_IFNAME` attribute.
    fn message(kind: u16, family: u8, index: u32, name: impl AsRef<[u8]>) -> Vec<u8> {
        let name = name.as_ref();
        let mut attr = Vec::new();
        let attr_len = 4 + name.len() + 1;
        attr.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        attr.extend_from_slice(&libc::IFLA_IFNAME.to_ne_bytes());
        attr.extend_from_slice(name);
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

    /// The events `datagrams` make, given the names known before, with
    /// `name_now` answering every check; and the names known after.
    fn run(
        known: &[(u32, &str)],
        datagrams: &[&[u8]],
        mut name_now: impl FnMut(u32) -> NameNow,
    ) -> (Vec<LinkEvent>, Vec<(u32, TapName)>) {
        let mut names: FxHashMap<u32, TapName> =
            known.iter().map(|&(index, n)| (index, name(n))).collect();
        let mut pending = VecDeque::new();
        for datagram in datagrams {
            assert_eq!(
                queue_events(datagram, &mut names, &mut name_now, &mut pending),
                Ok(())
            );
        }
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        (Vec::from(pending), names)
    }

    /// A check the test does not expect.
    fn never(index: u32) -> NameNow {
        panic!("unexpected check of link {index}")
    }

    fn removed(n: &str, index: u32) -> LinkEvent {
        LinkEvent::Removed {
            name: name(n),
            index,
        }
    }

    fn renamed(index: u32, from: &str, to: &str) -> LinkEvent {
        LinkEvent::Renamed {
            index,
            from: name(from),
            to: Some(name(to)),
        }
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
        let (events, names) = run(&[(9, "tap-bb")], &[&datagram], never);
        assert_eq!(events, [removed("tap-a", 5), removed("tap-bb", 9)]);
        assert_eq!(names, []);
    }

    #[test]
    fn a_known_link_under_another_name_is_renamed() {
        let datagram = [
            message(libc::RTM_NEWLINK, 0, 5, "tap-b"),
            // The same name again (another change): nothing.
            message(libc::RTM_NEWLINK, 0, 5, "tap-b"),
            // First seen: remembered, not reported.
            message(libc::RTM_NEWLINK, 0, 7, "veth0"),
            message(libc::RTM_NEWLINK, 0, 7, "tap-a"),
        ]
        .concat();
        let (events, names) = run(&[(5, "tap-a")], &[&datagram], |index| match index {
            5 => NameNow::Is(name("tap-b")),
            7 => NameNow::Is(name("tap-a")),
            _ => never(index),
        });
        assert_eq!(
            events,
            [renamed(5, "tap-a", "tap-b"), renamed(7, "veth0", "tap-a")]
        );
        assert_eq!(names, [(5, name("tap-b")), (7, name("tap-a"))]);
    }

    /// A notification older than the name last seen (queued before a dump
    /// that read a later name) is not a rename; one between is reported
    /// with the name the link has now.
    #[test]
    fn renames_are_reported_with_the_name_the_kernel_gives_now() {
        let stale = message(libc::RTM_NEWLINK, 0, 5, "tap-b");
        let (events, names) = run(&[(5, "tap-c")], &[&stale], |_| NameNow::Is(name("tap-c")));
        assert_eq!(events, []);
        assert_eq!(names, [(5, name("tap-c"))]);

        let (events, names) = run(&[(5, "tap-a")], &[&stale], |_| NameNow::Is(name("tap-c")));
        assert_eq!(events, [renamed(5, "tap-a", "tap-c")]);
        assert_eq!(names, [(5, name("tap-c"))]);

        // Gone, or the check failed: the notification is the last word.
        let (events, _) = run(&[(5, "tap-a")], &[&stale], |_| NameNow::Unknown);
        assert_eq!(events, [renamed(5, "tap-a", "tap-b")]);

        // Now with no device name (the kernel always sends one): renamed
        // all the same (the pool can never open it by name), and forgotten
        // here.
        let (events, names) = run(&[(5, "tap-a")], &[&stale], |_| NameNow::Unfit);
        assert_eq!(
            events,
            [LinkEvent::Renamed {
                index: 5,
                from: name("tap-a"),
                to: None
            }]
        );
        assert_eq!(names, []);
    }

    /// A known link with no device name (which the kernel never sends) is
    /// renamed (to `None`); an unknown one, and other families, are
    /// skipped.
    #[test]
    fn no_device_name_is_a_rename_and_other_families_are_skipped() {
        let datagram = [
            message(libc::RTM_NEWLINK, 0, 5, "white space"),
            message(libc::RTM_NEWLINK, 0, 6, "tap-\u{a0}x"),
            message(libc::RTM_NEWLINK, libc::AF_BRIDGE as u8, 5, "tap-z"),
            message(libc::RTM_NEWLINK, 0, 8, ""),
        ]
        .concat();
        let (events, names) = run(&[(5, "tap-a")], &[&datagram], never);
        assert_eq!(
            events,
            [LinkEvent::Renamed {
                index: 5,
                from: name("tap-a"),
                to: None
            }]
        );
        assert_eq!(names, []);
    }

    /// Names are kept byte for byte: a link renamed to bytes that are not
    /// UTF-8 is renamed to exactly those, and two such names stay two (once,
    /// such a rename was reported to `None`; and a removal was not reported).
    #[test]
    fn names_that_are_not_utf8_are_renames_and_removals() {
        let odd = |b: &[u8]| TapName::from_bytes(b).expect("valid");
        let datagram = [
            message(libc::RTM_NEWLINK, 0, 5, b"tap\xff"),
            message(libc::RTM_NEWLINK, 0, 6, b"tap\xfe"),
            message(libc::RTM_NEWLINK, 0, 7, "t\u{2003}x"),
        ]
        .concat();
        let (events, names) = run(
            &[(5, "tap-a"), (6, "tap-b")],
            &[&datagram],
            |index| match index {
                5 => NameNow::Is(odd(b"tap\xff")),
                6 => NameNow::Is(odd(b"tap\xfe")),
                _ => never(index),
            },
        );
        let to = |index, from, to: &[u8]| LinkEvent::Renamed {
            index,
            from: name(from),
            to: Some(odd(to)),
        };
        assert_eq!(
            events,
            [to(5, "tap-a", b"tap\xff"), to(6, "tap-b", b"tap\xfe")]
        );
        assert_eq!(
            names,
            [
                (5, odd(b"tap\xff")),
                (6, odd(b"tap\xfe")),
                (7, name("t\u{2003}x"))
            ]
        );

        let gone = [
            message(libc::RTM_DELLINK, 0, 5, b"tap\xff"),
            message(libc::RTM_DELLINK, 0, 6, b"tap\xfe"),
        ]
        .concat();
        let (events, _) = run(&[], &[&gone], never);
        assert_eq!(
            events,
            [
                LinkEvent::Removed {
                    name: odd(b"tap\xff"),
                    index: 5
                },
                LinkEvent::Removed {
                    name: odd(b"tap\xfe"),
                    index: 6
                },
            ]
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn golden_link_filter() {
        let program: Vec<_> = link_filter()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect();
        #[rustfmt::skip]
        let expected = [
            (0x28, 0, 0, 4),          // ldh [4]: nlmsg_type (BPF_LD | BPF_H | BPF_ABS)
            (0x15, 1, 0, 0x1100),     // jeq #RTM_DELLINK (17, byte-swapped): to the family
            (0x15, 0, 3, 0x1000),     // jeq #RTM_NEWLINK (16, byte-swapped), else drop
            (0x30, 0, 0, 16),         // ldb [16]: ifi_family (BPF_LD | BPF_B | BPF_ABS)
            (0x15, 0, 1, 0),          // jeq #AF_UNSPEC, else drop
            (0x06, 0, 0, u32::MAX),   // ret #-1: accept the whole message
            (0x06, 0, 0, 0),          // ret #0: drop
        ];
        assert_eq!(program, expected);
    }

    /// Runs the classic BPF subset `link_filter` uses on `packet`, as the
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
    /// how): a tap leaving its bridge, then deleted; in another run, the
    /// tap renamed, then its MTU changed (the bridge's follows).
    const NEWLINK_BRIDGE_PORT: &[u8] = include_bytes!("testdata/newlink_bridge_port.bin");
    const DELLINK_BRIDGE_PORT: &[u8] = include_bytes!("testdata/dellink_bridge_port.bin");
    const DELLINK: &[u8] = include_bytes!("testdata/dellink.bin");
    const NEWLINK_RENAME: &[u8] = include_bytes!("testdata/newlink_rename.bin");
    const NEWLINK_MTU: &[u8] = include_bytes!("testdata/newlink_mtu.bin");
    const NEWLINK_BRIDGE_MTU: &[u8] = include_bytes!("testdata/newlink_bridge_mtu.bin");

    #[cfg(target_endian = "little")]
    #[test]
    fn captured_notifications_through_the_filter() {
        let program = link_filter();
        assert_eq!(run_filter(&program, NEWLINK_BRIDGE_PORT), 0);
        assert_eq!(run_filter(&program, DELLINK_BRIDGE_PORT), 0);
        assert_eq!(run_filter(&program, DELLINK), u32::MAX);
        assert_eq!(run_filter(&program, NEWLINK_RENAME), u32::MAX);
        assert_eq!(run_filter(&program, NEWLINK_MTU), u32::MAX);
        assert_eq!(run_filter(&program, NEWLINK_BRIDGE_MTU), u32::MAX);
        // A message of another type (an address's) is dropped.
        let mut newaddr = NEWLINK_MTU.to_vec();
        newaddr[4..6].copy_from_slice(&libc::RTM_NEWADDR.to_ne_bytes());
        assert_eq!(run_filter(&program, &newaddr), 0);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn the_removal_filter_lets_in_removals_only() {
        let program = removal_filter();
        assert_eq!(run_filter(&program, DELLINK), u32::MAX);
        for other in [
            NEWLINK_BRIDGE_PORT,
            DELLINK_BRIDGE_PORT,
            NEWLINK_RENAME,
            NEWLINK_MTU,
            NEWLINK_BRIDGE_MTU,
        ] {
            assert_eq!(run_filter(&program, other), 0);
        }
    }

    /// The names a captured dump (`lo`, `br0`, `tapc0`, `tunc0`) seeds, then
    /// the captured notifications: only the removal and the rename are
    /// events.
    #[cfg(target_endian = "little")]
    #[test]
    fn captured_notifications_removals_and_renames() {
        let mut dump = include_bytes!("testdata/group_dump.bin").as_slice();
        let mut known = Vec::new();
        while !dump.is_empty() {
            let (header, payload, next) = split_message(dump).expect("framed");
            dump = next;
            if header.kind == libc::RTM_NEWLINK
                && let (index, Some(n)) = parse_link_name(payload).expect("parses")
            {
                known.push((index, n));
            }
        }
        let expected = [
            (1, name("lo")),
            (2, name("br0")),
            (3, name("tapc0")),
            (4, name("tunc0")),
        ];
        assert_eq!(known, expected);
        let known: Vec<(u32, &str)> = known
            .iter()
            .map(|(i, n)| (*i, n.to_str().expect("UTF-8")))
            .collect();

        let (events, names) = run(
            &known,
            &[
                NEWLINK_BRIDGE_PORT,
                DELLINK_BRIDGE_PORT,
                NEWLINK_RENAME,
                NEWLINK_MTU,
                NEWLINK_BRIDGE_MTU,
            ],
            |index| match index {
                3 => NameNow::Is(name("tapc1")),
                _ => never(index),
            },
        );
        assert_eq!(events, [renamed(3, "tapc0", "tapc1")]);
        assert_eq!(names[2], (3, name("tapc1")));

        let (events, names) = run(&known, &[DELLINK], never);
        assert_eq!(events, [removed("tapc0", 3)]);
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn truncated_datagram_is_malformed() {
        let mut pending = VecDeque::new();
        let mut names = FxHashMap::default();
        assert_eq!(
            queue_events(&DELLINK[..10], &mut names, &mut never, &mut pending),
            Err(Malformed::Truncated {
                what: "message header",
                len: 10,
                need: 16
            })
        );
        assert!(pending.is_empty());
    }
}
