//! The route netlink socket ([`Rtnl`]): opening it, sending a request and
//! reading every reply to it, and the dump loop that retries a dump the
//! kernel flags as interrupted (`NLM_F_DUMP_INTR`).
//!
//! Every request asks for an ack (`NLM_F_ACK`) or is a dump, carries its own
//! sequence number, and is read to its end (the ack, the error or the dump's
//! done message) before the call returns, so a failed call never leaves
//! replies behind for the next one. Replies with another sequence number are
//! stale leftovers of an earlier, timed-out call and are skipped.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use super::error::{NlError, SocketStep};
use super::message::{
    NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, Request, split_message,
};
use super::sockopt::{set_int_option, set_recv_timeout};
use super::status::parse_status;
use crate::kernel::Errno;

/// How long to wait for one reply datagram before giving up on the socket.
/// Replies come within microseconds; this only stops a lost reply from
/// hanging a worker thread forever.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a dump the kernel reports as interrupted (a link changed while it
/// was being read) is read before giving up.
const DUMP_ATTEMPTS: usize = 3;

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
    pub(crate) fn open() -> Result<Rtnl, NlError> {
        let fail = |step| move |source| NlError::Open { step, source };
        let socket = NlSocket::connect(NlFamily::Route, None, Groups::empty())
            .map_err(fail(SocketStep::Connect))?;
        socket.block().map_err(fail(SocketStep::Block))?;
        socket
            .enable_ext_ack(true)
            .map_err(fail(SocketStep::ExtAck))?;
        // Best effort: without it (kernels before 4.20) the kernel ignores a
        // dump request's filters (an address dump's `ifa_index`), and the
        // parsers filter again themselves.
        if let Err(e) = set_int_option(&socket, libc::SOL_NETLINK, libc::NETLINK_GET_STRICT_CHK, 1)
        {
            tracing::debug!(error = %e, "NETLINK_GET_STRICT_CHK refused");
        }
        set_recv_timeout(&socket, REPLY_TIMEOUT).map_err(fail(SocketStep::RecvTimeout))?;
        Ok(Rtnl::from_socket(socket))
    }

    /// A socket opened (with [`Rtnl::open`]'s options) by another process
    /// and handed over: it belongs to the namespace it was opened in.
    pub(crate) fn from_socket(socket: NlSocket) -> Rtnl {
        Rtnl {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        }
    }

    /// The socket, to hand to another process.
    pub(crate) fn into_socket(self) -> NlSocket {
        self.socket
    }

    /// Sends `request` (which asks for an ack) and waits for the ack.
    pub(crate) fn ack(&mut self, request: &mut Request) -> Result<(), NlError> {
        self.transact(request, |_| Ok(())).map(drop)
    }

    /// A whole dump: every reply's payload goes to `parse`, which collects
    /// what it wants. A dump the kernel flags as interrupted by a change is
    /// read again, up to [`DUMP_ATTEMPTS`] times; after that it fails,
    /// because a partial view could make the pool forget, adopt or keep the
    /// wrong things.
    pub(crate) fn dump<T>(
        &mut self,
        request: &mut Request,
        mut parse: impl FnMut(&[u8], &mut Vec<T>) -> Result<(), NlError>,
    ) -> Result<Vec<T>, NlError> {
        for attempt in 1..=DUMP_ATTEMPTS {
            let mut found = Vec::new();
            let interrupted = self.transact(request, |payload| parse(payload, &mut found))?;
            if !interrupted {
                return Ok(found);
            }
            tracing::debug!(attempt, "dump interrupted by a change");
        }
        Err(NlError::DumpInterrupted {
            attempts: DUMP_ATTEMPTS,
        })
    }

    /// Sends `request` under a new sequence number and reads every reply to
    /// it, handing each data message's payload to `on_message`. Returns
    /// whether the kernel flagged a dump as interrupted (`NLM_F_DUMP_INTR`).
    ///
    /// The replies are read to the end even when `on_message` fails, so the
    /// socket is clean for the next request.
    pub(crate) fn transact(
        &mut self,
        request: &mut Request,
        mut on_message: impl FnMut(&[u8]) -> Result<(), NlError>,
    ) -> Result<bool, NlError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        self.socket
            .send(request.finish(seq), Msg::empty())
            .map_err(NlError::Send)?;

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
                        let status = parse_status(header, payload)?;
                        return match (status.code, outcome) {
                            (0, outcome) => outcome.map(|()| interrupted),
                            (code, _) => Err(NlError::Refused {
                                errno: Errno(code.saturating_neg()),
                                ext_ack: status.ext_ack,
                            }),
                        };
                    }
                    NLMSG_OVERRUN => outcome = Err(NlError::Overrun),
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

impl AsRawFd for Rtnl {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Receives one datagram into `buf`, growing it if the datagram is larger,
/// and returns its length.
pub(crate) fn recv(socket: &NlSocket, buf: &mut Vec<u8>) -> Result<usize, NlError> {
    receive(socket, buf, Msg::empty())
}

/// [`recv`] without waiting: `None` when no datagram is queued.
pub(crate) fn recv_queued(socket: &NlSocket, buf: &mut Vec<u8>) -> Result<Option<usize>, NlError> {
    match receive(socket, buf, Msg::DONTWAIT) {
        Ok(len) => Ok(Some(len)),
        Err(NlError::Receive(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// [`recv`] with `flags` (`MSG_DONTWAIT` or none) on both receives.
fn receive(socket: &NlSocket, buf: &mut Vec<u8>, flags: Msg) -> Result<usize, NlError> {
    loop {
        // Peek first so that a datagram larger than the buffer is never
        // truncated (which would lose the reply's end and hang the call).
        let peeked = socket.recv(&mut buf[..], Msg::PEEK | Msg::TRUNC | flags);
        match peeked {
            Ok((len, _)) if len > buf.len() => buf.resize(len, 0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(NlError::Receive(e)),
        }
        match socket.recv(&mut buf[..], flags) {
            Ok((len, _)) => return Ok(len),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(NlError::Receive(e)),
        }
    }
}
