//! `RTM_GETADDR`: the addresses on one link.

use super::{Address, IFADDRMSG_LEN};
use crate::linux::netlink::{Malformed, NLM_F_DUMP, NlError, Request, Rtnl, read_u32};

/// The dump of the addresses on the link with index `index`, of every
/// family. The kernel honours the index only with strict checking on
/// (`NETLINK_GET_STRICT_CHK`); [`parse_address`] filters again.
pub(crate) fn request(index: u32) -> Request {
    let mut request = Request::new(libc::RTM_GETADDR, NLM_F_DUMP);
    let mut ifaddrmsg = [0u8; IFADDRMSG_LEN]; // family AF_UNSPEC, prefixlen, flags, scope
    ifaddrmsg[4..8].copy_from_slice(&index.to_ne_bytes()); // ifa_index
    request.push(&ifaddrmsg);
    request
}

/// Reads one `RTM_NEWADDR` payload: the address, if it is on the link with
/// index `index`.
pub(crate) fn parse_address(payload: &[u8], index: u32) -> Result<Option<Address>, Malformed> {
    if payload.len() < IFADDRMSG_LEN {
        return Err(Malformed::Truncated {
            what: "ifaddrmsg",
            len: payload.len(),
            need: IFADDRMSG_LEN,
        });
    }
    Ok((read_u32(payload, 4) == index).then(|| Address {
        payload: payload.to_vec(),
    }))
}

impl Rtnl {
    /// Every IPv4 and IPv6 address on the link with index `index`, from one
    /// `RTM_GETADDR` dump.
    pub(crate) fn addresses(&mut self, index: u32) -> Result<Vec<Address>, NlError> {
        self.dump(&mut request(index), |payload, found| {
            found.extend(parse_address(payload, index)?);
            Ok(())
        })
    }
}
