//! `RTM_DELLINKPROP`: removing a link's alternative names.

use super::push_ifinfomsg;
use crate::linux::netlink::{NLM_F_ACK, NlError, Request, Rtnl};

/// `RTM_DELLINKPROP` (linux/rtnetlink.h, Linux 5.5; the libc crate lacks
/// it).
const RTM_DELLINKPROP: u16 = 109;

/// `NLA_F_NESTED` (libc's value, narrowed to `nla_type`'s width).
const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;

/// The `RTM_DELLINKPROP` removing each of `names` from the alternative
/// names (`IFLA_PROP_LIST` / `IFLA_ALT_IFNAME`) of the link with index
/// `index`.
pub(crate) fn request(index: u32, names: &[String]) -> Request {
    let mut request = Request::new(RTM_DELLINKPROP, NLM_F_ACK);
    push_ifinfomsg(&mut request, index, 0, 0);
    // Nested as `ip link property del` sends it.
    let list = request.begin_nested(libc::IFLA_PROP_LIST | NLA_F_NESTED);
    for name in names {
        request.attr_str(libc::IFLA_ALT_IFNAME, name);
    }
    request.end_nested(list);
    request
}

impl Rtnl {
    /// Removes the alternative names `names` of the link with index
    /// `index`, in one request.
    pub(crate) fn del_altnames(&mut self, index: u32, names: &[String]) -> Result<(), NlError> {
        self.ack(&mut request(index, names))
    }
}

/// Golden bytes, one comment per field. Little-endian hosts only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn two_alternative_names() {
        #[rustfmt::skip]
        let expected = [
            0x40, 0x00, 0x00, 0x00, // nlmsg_len: 64
            0x6d, 0x00,             // nlmsg_type: RTM_DELLINKPROP (109)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x07, 0x00, 0x00, 0x00, // ifi_index: 7
            0x00, 0x00, 0x00, 0x00, // ifi_flags
            0x00, 0x00, 0x00, 0x00, // ifi_change
            0x20, 0x00,             // nla_len: 32
            0x34, 0x80,             // nla_type: IFLA_PROP_LIST (52) | NLA_F_NESTED
            0x0a, 0x00,             //   nla_len: 10
            0x35, 0x00,             //   nla_type: IFLA_ALT_IFNAME (53)
            b'v', b'm', b'-', b'a', b'1', 0x00, // "vm-a1\0"
            0x00, 0x00,             //   padding
            0x0d, 0x00,             //   nla_len: 13
            0x35, 0x00,             //   nla_type: IFLA_ALT_IFNAME (53)
            b'p', b'r', b'e', b'v', b'i', b'o', b'u', b's', 0x00, // "previous\0"
            0x00, 0x00, 0x00,       //   padding
        ];
        let names = ["vm-a1".to_owned(), "previous".to_owned()];
        assert_eq!(request(7, &names).finish(1), expected);
    }
}
