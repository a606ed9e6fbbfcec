//! `RTM_DELADDR`: removing one address.

use super::Address;
use crate::linux::netlink::{NLM_F_ACK, NlError, Request, Rtnl};

/// The `RTM_DELADDR` removing `address`: the dump's payload, verbatim.
pub(crate) fn request(address: &Address) -> Request {
    let mut request = Request::new(libc::RTM_DELADDR, NLM_F_ACK);
    request.push(&address.payload);
    request
}

impl Rtnl {
    /// Deletes one address that [`Rtnl::addresses`] reported.
    pub(crate) fn del_addr(&mut self, address: &Address) -> Result<(), NlError> {
        self.ack(&mut request(address))
    }
}
