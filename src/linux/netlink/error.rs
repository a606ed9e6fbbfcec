//! How an rtnetlink request fails: [`NlError`], and [`Malformed`] for a
//! reply that could not be read.

use std::fmt;
use std::io;

use thiserror::Error;

use crate::kernel::Errno;

/// The step of opening a netlink socket that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketStep {
    /// `socket` and `bind` (neli's `NlSocket::connect`).
    Connect,
    /// Making the socket blocking.
    Block,
    /// `NETLINK_EXT_ACK`.
    ExtAck,
    /// `SO_RCVTIMEO`.
    RecvTimeout,
    /// `SO_ATTACH_FILTER`.
    Filter,
    /// `SO_RCVBUF`.
    RecvBuffer,
}

impl fmt::Display for SocketStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketStep::Connect => "connect",
            SocketStep::Block => "set blocking",
            SocketStep::ExtAck => "NETLINK_EXT_ACK",
            SocketStep::RecvTimeout => "SO_RCVTIMEO",
            SocketStep::Filter => "SO_ATTACH_FILTER",
            SocketStep::RecvBuffer => "SO_RCVBUF",
        })
    }
}

/// An rtnetlink request that failed.
#[derive(Debug, Error)]
pub(crate) enum NlError {
    /// Opening or setting up the socket failed.
    #[error("opening the netlink socket failed at {step}")]
    Open {
        /// The step that failed.
        step: SocketStep,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Sending the request failed.
    #[error("sending a netlink request failed")]
    Send(#[source] io::Error),
    /// Receiving a reply failed; `EAGAIN` when none came in time.
    #[error("receiving a netlink reply failed")]
    Receive(#[source] io::Error),
    /// The kernel refused the request.
    #[error("the kernel refused the request: {errno}{}", ExtAck(ext_ack))]
    Refused {
        /// The errno it answered with.
        errno: Errno,
        /// Its extended-ack text, if any.
        ext_ack: Option<String>,
    },
    /// A reply could not be read.
    #[error("malformed netlink reply")]
    Malformed(#[source] Malformed),
    /// The socket's receive queue overran (`NLMSG_OVERRUN`): replies were
    /// lost.
    #[error("netlink replies were lost (overrun)")]
    Overrun,
    /// Every attempt at a dump was interrupted by a change
    /// (`NLM_F_DUMP_INTR`), so no consistent view was read.
    #[error("dump interrupted by a change on each of {attempts} attempts")]
    DumpInterrupted {
        /// How many times it was read.
        attempts: usize,
    },
}

impl From<Malformed> for NlError {
    fn from(malformed: Malformed) -> NlError {
        NlError::Malformed(malformed)
    }
}

impl NlError {
    /// The errno that stands for this error where only an errno can go
    /// ([`crate::KernelError::Socket`]).
    pub(crate) fn errno(&self) -> Errno {
        match self {
            NlError::Open { source, .. } | NlError::Send(source) | NlError::Receive(source) => {
                // neli's `recv` turns a timeout into an `io::Error` made
                // from `ErrorKind::WouldBlock`, which carries no errno.
                match (source.raw_os_error(), source.kind()) {
                    (None, io::ErrorKind::WouldBlock) => Errno(libc::EAGAIN),
                    _ => Errno::of(source),
                }
            }
            NlError::Refused { errno, .. } => *errno,
            NlError::Malformed(_) => Errno(libc::EBADMSG),
            NlError::Overrun => Errno(libc::ENOBUFS),
            NlError::DumpInterrupted { .. } => Errno(libc::EINTR),
        }
    }
}

/// Renders an optional extended-ack text as a suffix.
struct ExtAck<'a>(&'a Option<String>);

impl fmt::Display for ExtAck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(text) => write!(f, " (kernel says: {text})"),
            None => Ok(()),
        }
    }
}

/// What was wrong with a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub(crate) enum Malformed {
    /// A device group's member came with no name a device can have (the
    /// kernel always sends one).
    #[error("a member of the device group came with no device name")]
    UnnamedMember,
    /// A structure was cut short.
    #[error("{what} truncated: {len} bytes, need {need}")]
    Truncated {
        /// The structure.
        what: &'static str,
        /// The bytes there were.
        len: usize,
        /// The bytes it takes.
        need: usize,
    },
    /// A message header's length does not fit the datagram.
    #[error("message length {len} outside the header size and the {available} bytes left")]
    MessageLength {
        /// `nlmsg_len`.
        len: usize,
        /// The bytes left in the datagram.
        available: usize,
    },
    /// An attribute's value is too short for its type.
    #[error("attribute {kind} holds {len} bytes, need {need}")]
    Attribute {
        /// The attribute type.
        kind: u16,
        /// The bytes it holds.
        len: usize,
        /// The bytes its type takes.
        need: usize,
    },
    /// `IFLA_TUN_TYPE` is neither `IFF_TUN` nor `IFF_TAP`.
    #[error("unknown tun device type {0:?}")]
    TunType(Option<u8>),
    /// A query for one link was acknowledged without the link.
    #[error("a query for one link was answered without it")]
    NoLink,
    /// A query for one link was answered about another one.
    #[error("a query for one link was answered about another (index {answered})")]
    OtherLink {
        /// The index of the link the reply was about.
        answered: u32,
    },
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn display_strings() {
        let refused = NlError::Refused {
            errno: Errno(libc::EINVAL),
            ext_ack: Some("Unknown device type".to_owned()),
        };
        assert_eq!(
            refused.to_string(),
            "the kernel refused the request: Invalid argument (os error 22) (kernel says: Unknown device type)"
        );
        let bare = NlError::Refused {
            errno: Errno(libc::ENODEV),
            ext_ack: None,
        };
        assert_eq!(
            bare.to_string(),
            "the kernel refused the request: No such device (os error 19)"
        );
        let open = NlError::Open {
            step: SocketStep::ExtAck,
            source: io::Error::from_raw_os_error(libc::ENOPROTOOPT),
        };
        assert_eq!(
            open.to_string(),
            "opening the netlink socket failed at NETLINK_EXT_ACK"
        );
        assert_eq!(
            NlError::Send(io::Error::from_raw_os_error(libc::ENOBUFS)).to_string(),
            "sending a netlink request failed"
        );
        assert_eq!(
            NlError::Receive(io::Error::from(io::ErrorKind::WouldBlock)).to_string(),
            "receiving a netlink reply failed"
        );
        assert_eq!(
            NlError::Overrun.to_string(),
            "netlink replies were lost (overrun)"
        );
        assert_eq!(
            NlError::DumpInterrupted { attempts: 3 }.to_string(),
            "dump interrupted by a change on each of 3 attempts"
        );
        let malformed = Malformed::Truncated {
            what: "ifinfomsg",
            len: 3,
            need: 16,
        };
        assert_eq!(
            malformed.to_string(),
            "ifinfomsg truncated: 3 bytes, need 16"
        );
        assert_eq!(
            NlError::from(malformed).to_string(),
            "malformed netlink reply"
        );
        assert_eq!(
            Malformed::MessageLength {
                len: 4,
                available: 20
            }
            .to_string(),
            "message length 4 outside the header size and the 20 bytes left"
        );
        assert_eq!(
            Malformed::Attribute {
                kind: 4,
                len: 2,
                need: 4
            }
            .to_string(),
            "attribute 4 holds 2 bytes, need 4"
        );
        assert_eq!(
            Malformed::TunType(Some(9)).to_string(),
            "unknown tun device type Some(9)"
        );
        assert_eq!(
            Malformed::NoLink.to_string(),
            "a query for one link was answered without it"
        );
        assert_eq!(
            Malformed::OtherLink { answered: 7 }.to_string(),
            "a query for one link was answered about another (index 7)"
        );
        assert_eq!(SocketStep::Connect.to_string(), "connect");
    }

    /// Each error says its own part once; the cause is only its source.
    #[test]
    fn sources_are_chained_not_repeated() {
        let inner = io::Error::from_raw_os_error(libc::EPERM);
        let inner_text = inner.to_string();
        let errors = [
            NlError::Open {
                step: SocketStep::Connect,
                source: inner,
            },
            NlError::Send(io::Error::from_raw_os_error(libc::EPERM)),
            NlError::Receive(io::Error::from_raw_os_error(libc::EPERM)),
        ];
        for error in errors {
            let source = error.source().expect("a source");
            assert_eq!(source.to_string(), inner_text);
            assert!(!error.to_string().contains(&inner_text), "{error}");
        }
        let malformed = NlError::Malformed(Malformed::TunType(None));
        let source = malformed.source().expect("a source");
        assert!(!malformed.to_string().contains(&source.to_string()));
    }

    #[test]
    fn errnos_at_the_kernel_boundary() {
        let would_block = NlError::Receive(io::Error::from(io::ErrorKind::WouldBlock));
        assert_eq!(would_block.errno(), Errno(libc::EAGAIN));
        let os = NlError::Send(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(os.errno(), Errno(libc::ECONNREFUSED));
        assert_eq!(NlError::Overrun.errno(), Errno(libc::ENOBUFS));
        assert_eq!(
            NlError::DumpInterrupted { attempts: 3 }.errno(),
            Errno(libc::EINTR)
        );
        assert_eq!(
            NlError::Malformed(Malformed::TunType(None)).errno(),
            Errno(libc::EBADMSG)
        );
    }
}
