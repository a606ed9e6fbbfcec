//! rtnetlink: configuring, deleting and listing links.
//!
//! Built on neli's plain [`NlSocket`] rather than its router: the router
//! drops the kernel's extended-ack text, which is the most useful part of a
//! refusal. Every request asks for an ack (`NLM_F_ACK`), carries its own
//! sequence number, and is read to its end (the ack, the error or the dump's
//! done message) before the call returns, so a failed call never leaves
//! replies behind for the next one. Replies with another sequence number are
//! stale leftovers of an earlier, timed-out call and are skipped.

use std::io::{self, Cursor};
use std::os::fd::AsRawFd;
use std::time::Duration;

use neli::consts::rtnl::{Ifla, RtAddrFamily};
use neli::consts::socket::{Msg, NlFamily};
use neli::rtnl::{Ifinfomsg, IfinfomsgBuilder, Rtattr, RtattrBuilder};
use neli::socket::NlSocket;
use neli::types::{Buffer, RtBuffer};
use neli::utils::Groups;
use neli::{Size, ToBytes};

use crate::kernel::{Errno, LinkInfo, TunKind};
use crate::name::TapName;

// From linux/netlink.h.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_TYPE_MASK: u16 = !(1 << 15 | 1 << 14);
/// `NETLINK_GET_STRICT_CHK` (linux/netlink.h; the libc crate lacks it): the
/// kernel honours a dump request's filters (here: an address dump's
/// `ifa_index`) instead of ignoring them.
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;

// From linux/rtnetlink.h.
pub(super) const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;

/// The size of `struct ifaddrmsg`.
const IFADDRMSG_LEN: usize = 8;
/// `sizeof(struct ifinfomsg)`.
pub(super) const IFINFOMSG_LEN: usize = 16;
/// `RTEXT_FILTER_SKIP_STATS` (linux/rtnetlink.h): leave out `IFLA_STATS*`.
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

// From linux/if_link.h; neli does not name the tun attributes.
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_PERSIST: u16 = 6;
const IFLA_TUN_NUM_QUEUES: u16 = 8;
const IFLA_TUN_NUM_DISABLED_QUEUES: u16 = 9;

// From linux/if_tun.h.
const IFF_TUN: u8 = 0x0001;
const IFF_TAP: u8 = 0x0002;

/// How long to wait for one reply datagram before giving up on the socket.
/// Replies come within microseconds; this only stops a lost reply from
/// hanging a worker thread forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a dump the kernel reports as interrupted (a link changed while it
/// was being read) is retried before its result is taken as it is.
const DUMP_ATTEMPTS: usize = 3;

/// An rtnetlink request that failed.
#[derive(Debug)]
pub(crate) enum NlError {
    /// The kernel refused the request.
    Kernel {
        /// The errno it answered with.
        errno: Errno,
        /// Its extended-ack text, if any.
        ext_ack: Option<String>,
    },
    /// The socket itself failed (send, receive, a malformed reply).
    Socket(Errno),
}

impl NlError {
    fn socket(err: &io::Error) -> NlError {
        // neli's `recv` turns a timeout into an `io::Error` made from
        // `ErrorKind::WouldBlock`, which carries no errno.
        match (err.raw_os_error(), err.kind()) {
            (None, io::ErrorKind::WouldBlock) => NlError::Socket(Errno(libc::EAGAIN)),
            _ => NlError::Socket(Errno::of(err)),
        }
    }
}

/// Which link a request is about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// By name (`IFLA_IFNAME`).
    Name(TapName),
    /// By interface index (`ifi_index`): immune to a rename, and never
    /// mistaken for a later device of the same name.
    Index(u32),
}

/// What one `RTM_SETLINK` sets. `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinkConfig {
    /// Set `IFF_UP`.
    pub(crate) up: bool,
    pub(crate) mtu: Option<u32>,
    /// The master's interface index; `Some(0)` detaches from any master.
    pub(crate) master: Option<u32>,
    pub(crate) group: Option<u32>,
    /// The Ethernet address (`IFLA_ADDRESS`).
    pub(crate) mac: Option<[u8; 6]>,
}

/// One address on a link, as an `RTM_NEWADDR` dump gave it: the whole
/// payload, which `RTM_DELADDR` takes back verbatim (as `ip address flush`
/// does), so that every attribute the kernel matches on (local, peer,
/// prefix length) is the one it reported.
pub(crate) struct Address {
    payload: Vec<u8>,
}

impl Address {
    /// The address family (`AF_INET`, `AF_INET6`).
    pub(crate) fn family(&self) -> u8 {
        self.payload[0]
    }
}

/// A route netlink socket, bound to the network namespace of the thread that
/// opened it.
pub(crate) struct Rtnl {
    socket: NlSocket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens and binds the socket, with extended acks and strict dump
    /// checking on.
    pub(crate) fn open() -> Result<Rtnl, Errno> {
        let errno = |e: io::Error| Errno::of(&e);
        let socket = NlSocket::connect(NlFamily::Route, None, Groups::empty()).map_err(errno)?;
        socket.block().map_err(errno)?;
        socket.enable_ext_ack(true).map_err(errno)?;
        // Best effort: without it (kernels before 4.20) the address dump is
        // not filtered by the kernel, and `addresses` filters it itself.
        if let Err(errno) = set_int_option(&socket, libc::SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1) {
            tracing::debug!(%errno, "NETLINK_GET_STRICT_CHK refused");
        }
        set_recv_timeout(&socket, REPLY_TIMEOUT)?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Applies `config` to `target` in one `RTM_SETLINK`.
    pub(crate) fn set_link(&mut self, target: Target, config: LinkConfig) -> Result<(), NlError> {
        let mut attrs = RtBuffer::new();
        let mut builder = IfinfomsgBuilder::default();
        match target {
            Target::Name(name) => attrs.push(attr(Ifla::Ifname, name.as_str())?),
            Target::Index(index) => builder = builder.ifi_index(index as libc::c_int),
        }
        if let Some(mac) = config.mac {
            attrs.push(attr(Ifla::Address, Buffer::from(&mac[..]))?);
        }
        if let Some(mtu) = config.mtu {
            attrs.push(attr(Ifla::Mtu, mtu)?);
        }
        if let Some(group) = config.group {
            attrs.push(attr(Ifla::Group, group)?);
        }
        if let Some(master) = config.master {
            attrs.push(attr(Ifla::Master, master)?);
        }
        if config.up {
            builder = builder.up();
        }
        let msg = ifinfomsg(builder, attrs)?;
        self.transact(RTM_SETLINK, NLM_F_ACK, &msg, |_| Ok(()))
            .map(drop)
    }

    /// Deletes the link `target`.
    pub(crate) fn del_link(&mut self, target: Target) -> Result<(), NlError> {
        let mut attrs = RtBuffer::new();
        let mut builder = IfinfomsgBuilder::default();
        match target {
            Target::Name(name) => attrs.push(attr(Ifla::Ifname, name.as_str())?),
            Target::Index(index) => builder = builder.ifi_index(index as libc::c_int),
        }
        let msg = ifinfomsg(builder, attrs)?;
        self.transact(RTM_DELLINK, NLM_F_ACK, &msg, |_| Ok(()))
            .map(drop)
    }

    /// Deletes every link in device group `group`, in one `RTM_DELLINK` with
    /// no index and no name (as `ip link delete group N` sends). The kernel
    /// answers `ENODEV` when no link is in the group, `EPERM` for group 0,
    /// and `EOPNOTSUPP` (deleting nothing) if any link in the group cannot
    /// be deleted (a physical device).
    pub(crate) fn del_group(&mut self, group: u32) -> Result<(), NlError> {
        let mut attrs = RtBuffer::new();
        attrs.push(attr(Ifla::Group, group)?);
        let msg = ifinfomsg(IfinfomsgBuilder::default(), attrs)?;
        self.transact(RTM_DELLINK, NLM_F_ACK, &msg, |_| Ok(()))
            .map(drop)
    }

    /// The interface index of the link `name` (`SIOCGIFINDEX` on this
    /// socket, which answers for the socket's namespace): one ioctl, no
    /// netlink round trip. `ENODEV` if there is none.
    pub(crate) fn ifindex(&self, name: TapName) -> Result<u32, Errno> {
        let mut req = ifreq(name);
        // SAFETY: SIOCGIFINDEX reads and writes one `ifreq`, which `req` is,
        // and `req` lives until the call returns.
        let rc = unsafe {
            libc::ioctl(
                self.socket.as_raw_fd(),
                libc::SIOCGIFINDEX as libc::Ioctl,
                &raw mut req,
            )
        };
        if rc < 0 {
            return Err(Errno::of(&io::Error::last_os_error()));
        }
        // SAFETY: SIOCGIFINDEX succeeded, so it wrote the index member.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
    }

    /// Every IPv4 and IPv6 address on the link with index `index`, from one
    /// `RTM_GETADDR` dump.
    pub(crate) fn addresses(&mut self, index: u32) -> Result<Vec<Address>, NlError> {
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        let mut request = [0u8; IFADDRMSG_LEN];
        request[4..8].copy_from_slice(&index.to_ne_bytes());
        self.dump(RTM_GETADDR, &request, |payload, found| {
            if payload.len() < IFADDRMSG_LEN {
                return Err(NlError::Socket(Errno(libc::EBADMSG)));
            }
            // Filtered again here: without strict checking the kernel
            // dumps every link's addresses.
            if read_u32(payload, 4) == index {
                found.push(Address {
                    payload: payload.to_vec(),
                });
            }
            Ok(())
        })
    }

    /// Deletes one address that [`Rtnl::addresses`] reported.
    pub(crate) fn del_addr(&mut self, address: &Address) -> Result<(), NlError> {
        self.transact(RTM_DELADDR, NLM_F_ACK, &address.payload[..], |_| Ok(()))
            .map(drop)
    }

    /// Every tun/tap link, from one `RTM_GETLINK` dump.
    ///
    /// The request asks the kernel to send only `tun` links (an
    /// `IFLA_LINKINFO` kind filter) and no statistics (`IFLA_EXT_MASK`
    /// with `RTEXT_FILTER_SKIP_STATS`): a namespace of thousands of links
    /// is read in a fraction of the messages and bytes. Links are still
    /// checked one by one, for a kernel that ignores either.
    pub(crate) fn tun_links(&mut self) -> Result<Vec<LinkInfo>, NlError> {
        let mut attrs = RtBuffer::new();
        attrs.push(attr(Ifla::ExtMask, RTEXT_FILTER_SKIP_STATS)?);
        attrs.push(attr(Ifla::Linkinfo, Buffer::from(&tun_kind_filter()[..]))?);
        let msg = ifinfomsg(IfinfomsgBuilder::default(), attrs)?;
        self.dump(RTM_GETLINK, &msg, |payload, links| {
            links.extend(parse_tun_link(payload)?);
            Ok(())
        })
    }

    /// Every device, of any kind, in device group `group`.
    pub(crate) fn group_members(&mut self, group: u32) -> Result<Vec<TapName>, NlError> {
        let mut attrs = RtBuffer::new();
        attrs.push(attr(Ifla::ExtMask, RTEXT_FILTER_SKIP_STATS)?);
        let msg = ifinfomsg(IfinfomsgBuilder::default(), attrs)?;
        self.dump(RTM_GETLINK, &msg, |payload, names| {
            if payload.len() < IFINFOMSG_LEN {
                return Err(NlError::Socket(Errno(libc::EBADMSG)));
            }
            let mut name = None;
            let mut in_group = false;
            for (kind, data) in Attrs(&payload[IFINFOMSG_LEN..]) {
                match kind {
                    libc::IFLA_IFNAME => name = Some(c_str(data)),
                    libc::IFLA_GROUP => in_group = read_attr_u32(data)? == group,
                    _ => {}
                }
            }
            if in_group && let Some(name) = name.and_then(|n| TapName::new(&n).ok()) {
                names.push(name);
            }
            Ok(())
        })
    }

    /// A whole dump: every reply's payload goes to `parse`, which collects
    /// what it wants. A dump the kernel flags as interrupted by a change is
    /// read again, up to [`DUMP_ATTEMPTS`] times; after that it fails with
    /// `EINTR`, because a partial view could make the pool forget, adopt or
    /// keep the wrong things.
    fn dump<T>(
        &mut self,
        kind: u16,
        request: &(impl Payload + ?Sized),
        mut parse: impl FnMut(&[u8], &mut Vec<T>) -> Result<(), NlError>,
    ) -> Result<Vec<T>, NlError> {
        for attempt in 1..=DUMP_ATTEMPTS {
            let mut found = Vec::new();
            let interrupted = self.transact(kind, NLM_F_DUMP, request, |payload| {
                parse(payload, &mut found)
            })?;
            if !interrupted {
                return Ok(found);
            }
            tracing::debug!(attempt, kind, "dump interrupted by a change");
        }
        Err(NlError::Socket(Errno(libc::EINTR)))
    }

    /// Sends one request (a header of type `kind` around `payload`) and reads
    /// every reply to it, handing each data message's payload to
    /// `on_message`. Returns whether the kernel flagged a dump as interrupted
    /// (`NLM_F_DUMP_INTR`).
    ///
    /// The replies are read to the end even when `on_message` fails, so the
    /// socket is clean for the next request.
    fn transact(
        &mut self,
        kind: u16,
        flags: u16,
        payload: &(impl Payload + ?Sized),
        mut on_message: impl FnMut(&[u8]) -> Result<(), NlError>,
    ) -> Result<bool, NlError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut request = Vec::with_capacity(256);
        request.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, below
        request.extend_from_slice(&kind.to_ne_bytes());
        request.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        request.extend_from_slice(&seq.to_ne_bytes());
        request.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
        payload.write_to(&mut request)?;
        let len = request.len() as u32;
        request[..4].copy_from_slice(&len.to_ne_bytes());
        self.socket
            .send(&request, Msg::empty())
            .map_err(|e| NlError::socket(&e))?;

        let mut outcome = Ok(());
        let mut interrupted = false;
        loop {
            let len = recv(&self.socket, &mut self.buf)?;
            let mut rest = &self.buf[..len];
            while !rest.is_empty() {
                let (header, payload, next) = split_message(rest)?;
                rest = next;
                if header.seq != seq {
                    tracing::debug!(seq = header.seq, expected = seq, "skipping a stale reply");
                    continue;
                }
                // The kernel may flag any message of a dump, its DONE too.
                interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                match header.kind {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR | NLMSG_DONE => {
                        let (code, ext_ack) = parse_status(header, payload)?;
                        return match (code, outcome) {
                            (0, outcome) => outcome.map(|()| interrupted),
                            (code, _) => Err(NlError::Kernel {
                                errno: Errno(code.saturating_neg()),
                                ext_ack,
                            }),
                        };
                    }
                    NLMSG_OVERRUN => outcome = Err(NlError::Socket(Errno(libc::ENOBUFS))),
                    _ => {
                        if outcome.is_ok() {
                            outcome = on_message(payload);
                        }
                    }
                }
            }
        }
    }
}

/// The body of a request: a neli message, or bytes already laid out.
trait Payload {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<(), NlError>;
}

impl Payload for Ifinfomsg {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<(), NlError> {
        let mut bytes = Cursor::new(vec![0; self.padded_size()]);
        self.to_bytes(&mut bytes)
            .map_err(|_| NlError::Socket(Errno(libc::EINVAL)))?;
        out.extend_from_slice(bytes.get_ref());
        Ok(())
    }
}

impl Payload for [u8] {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<(), NlError> {
        out.extend_from_slice(self);
        out.resize(align(out.len()), 0);
        Ok(())
    }
}

impl<const N: usize> Payload for [u8; N] {
    fn write_to(&self, out: &mut Vec<u8>) -> Result<(), NlError> {
        self[..].write_to(out)
    }
}

/// Receives one datagram into `buf`, growing it if the datagram is larger,
/// and returns its length.
pub(super) fn recv(socket: &NlSocket, buf: &mut Vec<u8>) -> Result<usize, NlError> {
    loop {
        // Peek first so that a datagram larger than the buffer is never
        // truncated (which would lose the reply's end and hang the call).
        let peeked = socket.recv(&mut buf[..], Msg::PEEK | Msg::TRUNC);
        match peeked {
            Ok((len, _)) if len > buf.len() => buf.resize(len, 0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(NlError::socket(&e)),
        }
        match socket.recv(&mut buf[..], Msg::empty()) {
            Ok((len, _)) => return Ok(len),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(NlError::socket(&e)),
        }
    }
}

/// The fields of a netlink message header that replies are checked against.
#[derive(Clone, Copy)]
pub(super) struct Header {
    pub(super) kind: u16,
    pub(super) flags: u16,
    pub(super) seq: u32,
}

/// Splits the first message off `bytes`: its header, its payload, and what
/// follows it.
pub(super) fn split_message(bytes: &[u8]) -> Result<(Header, &[u8], &[u8]), NlError> {
    let malformed = NlError::Socket(Errno(libc::EBADMSG));
    if bytes.len() < NLMSG_HDRLEN {
        return Err(malformed);
    }
    let len = read_u32(bytes, 0) as usize;
    if len < NLMSG_HDRLEN || len > bytes.len() {
        return Err(malformed);
    }
    let header = Header {
        kind: read_u16(bytes, 4),
        flags: read_u16(bytes, 6),
        seq: read_u32(bytes, 8),
    };
    let next = align(len).min(bytes.len());
    Ok((header, &bytes[NLMSG_HDRLEN..len], &bytes[next..]))
}

/// The status code (0 or a negative errno) of an `NLMSG_ERROR` or
/// `NLMSG_DONE` message, and its extended-ack text.
///
/// A dump's done message may carry no payload at all, which means success.
fn parse_status(header: Header, payload: &[u8]) -> Result<(i32, Option<String>), NlError> {
    if payload.len() < 4 {
        return if header.kind == NLMSG_DONE {
            Ok((0, None))
        } else {
            Err(NlError::Socket(Errno(libc::EBADMSG)))
        };
    }
    let code = read_u32(payload, 0) as i32;
    if header.flags & NLM_F_ACK_TLVS == 0 {
        return Ok((code, None));
    }
    // An error echoes the request after the code: the whole request, or
    // only its header when capped. A done message echoes nothing.
    let echoed = if header.kind == NLMSG_DONE {
        0
    } else if header.flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else if payload.len() >= 8 {
        align(read_u32(payload, 4) as usize)
    } else {
        0
    };
    let tlvs = payload.get(4 + echoed..).unwrap_or_default();
    Ok((code, ext_ack_message(tlvs)))
}

/// The `NLMSGERR_ATTR_MSG` string among an ack's attributes.
fn ext_ack_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = read_u16(tlvs, 0) as usize;
        let kind = read_u16(tlvs, 2) & NLA_TYPE_MASK;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = c_string(&tlvs[4..len]);
            return (!text.is_empty()).then_some(text);
        }
        tlvs = &tlvs[align(len).min(tlvs.len())..];
    }
    None
}

/// Reads one `RTM_NEWLINK` payload; `None` if the link is not a tun/tap.
/// The payload of an `IFLA_LINKINFO` holding only `IFLA_INFO_KIND` = "tun":
/// one attribute header (length 8, type `IFLA_INFO_KIND`) and the
/// NUL-terminated kind.
fn tun_kind_filter() -> [u8; 8] {
    let mut attr = [0u8, 0, 0, 0, b't', b'u', b'n', 0];
    attr[..2].copy_from_slice(&8u16.to_ne_bytes());
    attr[2..4].copy_from_slice(&IFLA_INFO_KIND.to_ne_bytes());
    attr
}

fn parse_tun_link(payload: &[u8]) -> Result<Option<LinkInfo>, NlError> {
    // Read in place (no allocation per attribute): a dump of thousands of
    // links spends its time here otherwise. `struct ifinfomsg` is 16 bytes:
    // family, pad, type (u16), index (i32), flags (u32), change (u32).
    if payload.len() < IFINFOMSG_LEN {
        return Err(NlError::Socket(Errno(libc::EBADMSG)));
    }
    let index = read_u32(payload, 4);
    let flags = read_u32(payload, 8);
    let mut name = None;
    let mut mtu = 0;
    let mut master = None;
    let mut device_group = 0;
    let mut mac = [0; 6];
    let mut tun = None;
    let mut carrier = None;
    for (kind, data) in Attrs(&payload[IFINFOMSG_LEN..]) {
        match kind {
            libc::IFLA_IFNAME => name = Some(c_str(data)),
            libc::IFLA_MTU => mtu = read_attr_u32(data)?,
            libc::IFLA_MASTER => master = Some(read_attr_u32(data)?),
            libc::IFLA_GROUP => device_group = read_attr_u32(data)?,
            libc::IFLA_CARRIER => carrier = data.first().map(|&c| c != 0),
            libc::IFLA_ADDRESS => {
                if let Ok(address) = data.try_into() {
                    mac = address;
                }
            }
            libc::IFLA_LINKINFO => tun = parse_tun_info(data)?,
            _ => {}
        }
    }
    let (Some(name), Some(tun)) = (name, tun) else {
        return Ok(None);
    };
    let Ok(name) = TapName::new(&name) else {
        tracing::warn!(%name, "skipping a tun device whose name TapName refuses");
        return Ok(None);
    };
    let up = flags & libc::IFF_UP as u32 != 0;
    let lower_up = flags & libc::IFF_LOWER_UP as u32 != 0;
    Ok(Some(LinkInfo {
        name,
        index,
        kind: tun.kind,
        persistent: tun.persistent,
        owner: tun.owner,
        group: tun.group,
        master,
        mtu,
        up,
        // Whether a file is attached. Multi-queue taps report their queues;
        // for the others the tun driver turns the carrier on when a file
        // attaches and off when the last one goes (the pool creates taps with
        // the carrier off). IFLA_CARRIER says so even while the device is
        // down, when LOWER_UP shows nothing though a VMM holds it open.
        in_use: if tun.attached_unknown {
            carrier.unwrap_or(lower_up)
        } else {
            tun.attached > 0
        },
        device_group,
        mac,
    }))
}

/// The tun driver's own view of a device (`IFLA_INFO_DATA`).
struct TunData {
    kind: TunKind,
    persistent: bool,
    owner: Option<u32>,
    group: Option<u32>,
    /// Files attached (enabled and disabled queues).
    attached: u32,
    /// The kernel (before 4.15) did not say how many.
    attached_unknown: bool,
}

/// Reads `IFLA_LINKINFO`; `None` unless its kind is `tun`.
fn parse_tun_info(linkinfo: &[u8]) -> Result<Option<TunData>, NlError> {
    let mut is_tun = false;
    let mut data = None;
    for (kind, value) in Attrs(linkinfo) {
        match kind {
            IFLA_INFO_KIND => is_tun = c_str(value) == "tun",
            IFLA_INFO_DATA => data = Some(value),
            _ => {}
        }
    }
    let Some(data) = data.filter(|_| is_tun) else {
        return Ok(None);
    };
    let mut tun = TunData {
        kind: TunKind::Tun,
        persistent: false,
        owner: None,
        group: None,
        attached: 0,
        attached_unknown: true,
    };
    // The kernel omits owner and group when unset, and older kernels sent
    // (u32)-1 for them; both mean "not set".
    let id = |value: &[u8]| read_attr_u32(value).map(|id| (id != u32::MAX).then_some(id));
    for (kind, value) in Attrs(data) {
        match kind {
            IFLA_TUN_TYPE => {
                tun.kind = match value.first() {
                    Some(&IFF_TAP) => TunKind::Tap,
                    Some(&IFF_TUN) => TunKind::Tun,
                    _ => return Err(NlError::Socket(Errno(libc::EBADMSG))),
                }
            }
            IFLA_TUN_PERSIST => tun.persistent = value.first().is_some_and(|&b| b != 0),
            IFLA_TUN_OWNER => tun.owner = id(value)?,
            IFLA_TUN_GROUP => tun.group = id(value)?,
            IFLA_TUN_NUM_QUEUES | IFLA_TUN_NUM_DISABLED_QUEUES => {
                tun.attached += read_attr_u32(value)?;
                tun.attached_unknown = false;
            }
            _ => {}
        }
    }
    Ok(Some(tun))
}

/// Iterates over a buffer of netlink attributes as (type, payload), stopping
/// at the first malformed one.
pub(super) struct Attrs<'a>(pub(super) &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.0;
        if bytes.len() < 4 {
            return None;
        }
        let len = read_u16(bytes, 0) as usize;
        if len < 4 || len > bytes.len() {
            self.0 = &[];
            return None;
        }
        self.0 = &bytes[align(len).min(bytes.len())..];
        Some((read_u16(bytes, 2) & NLA_TYPE_MASK, &bytes[4..len]))
    }
}

fn ifinfomsg(
    builder: IfinfomsgBuilder,
    attrs: RtBuffer<Ifla, Buffer>,
) -> Result<Ifinfomsg, NlError> {
    builder
        .ifi_family(RtAddrFamily::Unspecified)
        .rtattrs(attrs)
        .build()
        .map_err(|_| NlError::Socket(Errno(libc::EINVAL)))
}

fn attr<P: Size + ToBytes>(kind: Ifla, payload: P) -> Result<Rtattr<Ifla, Buffer>, NlError> {
    RtattrBuilder::default()
        .rta_type(kind)
        .rta_payload(payload)
        .build()
        .map_err(|_| NlError::Socket(Errno(libc::EINVAL)))
}

/// An `ifreq` naming `name`, all else zero.
pub(super) fn ifreq(name: TapName) -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // The name is at most 15 bytes (checked by `TapName`), so the 16-byte
    // field keeps its terminating NUL from the zeroed struct.
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_str().bytes()) {
        *dst = src as libc::c_char;
    }
    req
}

/// `setsockopt` with an `int` value.
pub(super) fn set_int_option(
    socket: &NlSocket,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> Result<(), Errno> {
    // SAFETY: the option reads one `int`; `value` is one and outlives the
    // call, and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(Errno::of(&io::Error::last_os_error()));
    }
    Ok(())
}

pub(super) fn set_recv_timeout(socket: &NlSocket, timeout: Duration) -> Result<(), Errno> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: SO_RCVTIMEO reads one `timeval`; `tv` is one and outlives the
    // call, and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(Errno::of(&io::Error::last_os_error()));
    }
    Ok(())
}

fn read_attr_u32(value: &[u8]) -> Result<u32, NlError> {
    if value.len() < 4 {
        return Err(NlError::Socket(Errno(libc::EBADMSG)));
    }
    Ok(read_u32(value, 0))
}

pub(super) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

pub(super) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

/// Text up to the first NUL (netlink strings are NUL-terminated), borrowed
/// when it is UTF-8.
fn c_str(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
}

/// [`c_str`], owned.
pub(super) fn c_string(bytes: &[u8]) -> String {
    c_str(bytes).into_owned()
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_with_ext_ack_after_the_echoed_request() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-libc::EINVAL).to_ne_bytes()); // error code
        payload.extend_from_slice(&20u32.to_ne_bytes()); // echoed nlmsg_len: 16 + 4
        payload.extend_from_slice(&[0; 12]); // rest of the echoed header
        payload.extend_from_slice(&[0; 4]); // echoed payload
        payload.extend_from_slice(&9u16.to_ne_bytes()); // attr len: 4 + "oops\0"
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes()); // attr type
        payload.extend_from_slice(b"oops\0\0\0\0"); // text, padded
        let header = Header {
            kind: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS,
            seq: 1,
        };
        let (code, ack) = parse_status(header, &payload).unwrap_or_else(|_| panic!("parses"));
        assert_eq!(code, -libc::EINVAL);
        assert_eq!(ack.as_deref(), Some("oops"));
    }

    #[test]
    fn capped_error_echoes_only_the_header() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-libc::ERANGE).to_ne_bytes()); // error code
        payload.extend_from_slice(&64u32.to_ne_bytes()); // echoed nlmsg_len (uncapped size)
        payload.extend_from_slice(&[0; 12]); // rest of the echoed header
        payload.extend_from_slice(&7u16.to_ne_bytes()); // attr len: 4 + "no\0"
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes()); // attr type
        payload.extend_from_slice(b"no\0\0"); // text, padded
        let header = Header {
            kind: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS | NLM_F_CAPPED,
            seq: 1,
        };
        let (code, ack) = parse_status(header, &payload).unwrap_or_else(|_| panic!("parses"));
        assert_eq!(code, -libc::ERANGE);
        assert_eq!(ack.as_deref(), Some("no"));
    }

    #[test]
    fn done_without_payload_is_success() {
        let header = Header {
            kind: NLMSG_DONE,
            flags: 0,
            seq: 1,
        };
        let (code, ack) = parse_status(header, &[]).unwrap_or_else(|_| panic!("parses"));
        assert_eq!((code, ack), (0, None));
    }
}
