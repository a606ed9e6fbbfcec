//! `RTM_SETLINK`: changing a link's settings.

use super::{LinkConfig, Target, push_target};
use crate::linux::netlink::{NLM_F_ACK, NlError, Request, Rtnl};

/// The `RTM_SETLINK` applying `config` to `target`.
pub(crate) fn request(target: Target, config: LinkConfig) -> Request {
    let mut request = Request::new(libc::RTM_SETLINK, NLM_F_ACK);
    let up = if config.up { libc::IFF_UP as u32 } else { 0 };
    push_target(&mut request, target, up, up);
    if let Some(mac) = config.mac {
        request.attr(libc::IFLA_ADDRESS, &mac);
    }
    if let Some(mtu) = config.mtu {
        request.attr_u32(libc::IFLA_MTU, mtu);
    }
    if let Some(group) = config.group {
        request.attr_u32(libc::IFLA_GROUP, group);
    }
    if let Some(master) = config.master {
        request.attr_u32(libc::IFLA_MASTER, master);
    }
    request
}

impl Rtnl {
    /// Applies `config` to `target` in one `RTM_SETLINK`.
    pub(crate) fn set_link(&mut self, target: Target, config: LinkConfig) -> Result<(), NlError> {
        self.ack(&mut request(target, config))
    }
}
