//! Routes (`RTM_*ROUTE`): one file per verb.

pub(super) mod del;
pub(super) mod get;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `sizeof(struct rtmsg)` (linux/rtnetlink.h; the libc crate lacks the
/// struct): family, destination and source prefix lengths, TOS, table,
/// protocol, scope, type, flags.
pub(crate) const RTMSG_LEN: usize = 12;

/// `sizeof(struct rtnexthop)` (linux/rtnetlink.h): length, flags, hops,
/// interface index; each of `RTA_MULTIPATH`'s next hops starts with one.
pub(crate) const RTNEXTHOP_LEN: usize = 8;

/// A route that goes through a link, as a dump reported it: enough to say
/// which one it is, and the whole payload, which `RTM_DELROUTE` takes back
/// verbatim (as `ip route flush` does), so that every attribute the kernel
/// matches on (table, type, scope, metric, next hop) is the one it
/// reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// The `rtmsg` and its attributes; at least [`RTMSG_LEN`] long.
    pub(crate) payload: Vec<u8>,
    /// `RTA_DST`, or the unspecified address of the family for a default
    /// route.
    pub(crate) destination: IpAddr,
    /// `rtm_dst_len`.
    pub(crate) prefix_len: u8,
    /// `RTA_TABLE`, or `rtm_table`.
    pub(crate) table: u32,
    /// Whether the link is one of several next hops (`RTA_MULTIPATH`).
    pub(crate) multipath: bool,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} table {}{}",
            self.destination,
            self.prefix_len,
            self.table,
            if self.multipath { " (multipath)" } else { "" }
        )
    }
}

/// The unspecified address of `family` (`AF_INET` or `AF_INET6`).
pub(crate) fn unspecified(family: u8) -> IpAddr {
    if family == libc::AF_INET6 as u8 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}
