//! `RTM_DELLINK`: deleting one link, or every link of a device group.

use super::{Target, push_ifinfomsg, push_target};
use crate::linux::netlink::{NLM_F_ACK, NlError, Request, Rtnl};

/// The `RTM_DELLINK` deleting `target`.
pub(crate) fn request(target: Target) -> Request {
    let mut request = Request::new(libc::RTM_DELLINK, NLM_F_ACK);
    push_target(&mut request, target, 0, 0);
    request
}

/// The `RTM_DELLINK` deleting every link in device group `group`: no index
/// and no name, only `IFLA_GROUP` (what `ip link delete group N` sends).
pub(crate) fn group_request(group: u32) -> Request {
    let mut request = Request::new(libc::RTM_DELLINK, NLM_F_ACK);
    push_ifinfomsg(&mut request, 0, 0, 0);
    request.attr_u32(libc::IFLA_GROUP, group);
    request
}

impl Rtnl {
    /// Deletes the link `target`.
    pub(crate) fn del_link(&mut self, target: Target) -> Result<(), NlError> {
        self.ack(&mut request(target))
    }

    /// Deletes every link in device group `group`. The kernel answers
    /// `ENODEV` when no link is in the group, `EPERM` for group 0, and
    /// `EOPNOTSUPP` (deleting nothing) if any link in the group cannot be
    /// deleted (a physical device).
    pub(crate) fn del_group(&mut self, group: u32) -> Result<(), NlError> {
        self.ack(&mut group_request(group))
    }
}
