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

/// Golden bytes, one comment per field. Little-endian hosts only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::name::TapName;

    #[test]
    fn by_index() {
        #[rustfmt::skip]
        let expected = [
            0x20, 0x00, 0x00, 0x00, // nlmsg_len: 32
            0x11, 0x00,             // nlmsg_type: RTM_DELLINK (17)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x39, 0x05, 0x00, 0x00, // ifi_index: 1337
            0x00, 0x00, 0x00, 0x00, // ifi_flags
            0x00, 0x00, 0x00, 0x00, // ifi_change
        ];
        assert_eq!(request(Target::Index(1337)).finish(1), expected);
    }

    #[test]
    fn by_name() {
        let name = TapName::new("tap1").expect("valid");
        #[rustfmt::skip]
        let expected = [
            0x2c, 0x00, 0x00, 0x00, // nlmsg_len: 44
            0x11, 0x00,             // nlmsg_type: RTM_DELLINK (17)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x00, 0x00, 0x00, 0x00, // ifi_index: 0, the name says which
            0x00, 0x00, 0x00, 0x00, // ifi_flags
            0x00, 0x00, 0x00, 0x00, // ifi_change
            0x09, 0x00,             // nla_len: 9
            0x03, 0x00,             // nla_type: IFLA_IFNAME
            b't', b'a', b'p', b'1', 0x00, // "tap1\0"
            0x00, 0x00, 0x00,       // padding
        ];
        assert_eq!(request(Target::Name(name)).finish(1), expected);
    }

    #[test]
    fn by_group() {
        #[rustfmt::skip]
        let expected = [
            0x28, 0x00, 0x00, 0x00, // nlmsg_len: 40
            0x11, 0x00,             // nlmsg_type: RTM_DELLINK (17)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x00, 0x00, 0x00, 0x00, // ifi_index: 0, no one link
            0x00, 0x00, 0x00, 0x00, // ifi_flags
            0x00, 0x00, 0x00, 0x00, // ifi_change
            0x08, 0x00,             // nla_len: 8
            0x1b, 0x00,             // nla_type: IFLA_GROUP (27)
            0xe9, 0x03, 0x00, 0x00, // 1001
        ];
        assert_eq!(group_request(1001).finish(1), expected);
    }
}
