//! Netlink plumbing shared by every rtnetlink request: the socket and its
//! request/reply loop, message framing, attributes and the kernel's status
//! (ack, error, extended ack).
//!
//! neli provides only the socket ([`neli::socket::NlSocket`]); framing and
//! parsing are ours. neli's router drops the kernel's extended-ack text (the
//! most useful part of a refusal), and its parser allocates per attribute,
//! which a dump of thousands of links cannot afford.

mod attr;
mod error;
mod message;
mod socket;
mod sockopt;
mod status;

pub(crate) use attr::{Attrs, c_str, c_string, read_attr_u32};
pub(crate) use error::{Malformed, NlError, SocketStep};
#[cfg(test)]
pub(crate) use message::Header;
pub(crate) use message::{NLM_F_ACK, NLM_F_DUMP, Request, align, read_u32, split_message};
pub(crate) use socket::{Rtnl, recv, recv_queued};
pub(crate) use sockopt::{attach_filter, set_int_option, set_recv_timeout};
#[cfg(test)]
pub(crate) use status::parse_status;
