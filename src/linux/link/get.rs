//! `RTM_GETLINK` dumps: every tun/tap link, and every link of a device
//! group.

use super::parse::{parse_group_member, parse_tun_link};
use super::push_ifinfomsg;
use crate::kernel::LinkInfo;
use crate::linux::netlink::{NLM_F_DUMP, NlError, Request, Rtnl};
use crate::name::TapName;

/// Asks the kernel to leave out `IFLA_STATS*` (libc's value, as the `u32`
/// `IFLA_EXT_MASK` carries).
const SKIP_STATS: u32 = libc::RTEXT_FILTER_SKIP_STATS as u32;

/// The dump of every tun/tap link: an `IFLA_LINKINFO` holding only
/// `IFLA_INFO_KIND` "tun" (so the kernel sends tun links only), and
/// `IFLA_EXT_MASK` with `RTEXT_FILTER_SKIP_STATS` (no statistics).
pub(crate) fn tun_dump_request() -> Request {
    let mut request = Request::new(libc::RTM_GETLINK, NLM_F_DUMP);
    push_ifinfomsg(&mut request, 0, 0, 0);
    request.attr_u32(libc::IFLA_EXT_MASK, SKIP_STATS);
    // Sent without NLA_F_NESTED, as the kernel's own `ip` sends it.
    let linkinfo = request.begin_nested(libc::IFLA_LINKINFO);
    request.attr_str(libc::IFLA_INFO_KIND, "tun");
    request.end_nested(linkinfo);
    request
}

/// The dump of every link, without statistics. The kernel cannot filter a
/// dump by group; [`parse_group_member`] does.
pub(crate) fn group_dump_request() -> Request {
    let mut request = Request::new(libc::RTM_GETLINK, NLM_F_DUMP);
    push_ifinfomsg(&mut request, 0, 0, 0);
    request.attr_u32(libc::IFLA_EXT_MASK, SKIP_STATS);
    request
}

impl Rtnl {
    /// Every tun/tap link, from one dump ([`tun_dump_request`]): a namespace
    /// of thousands of links is read in a fraction of the messages and
    /// bytes. Links are still checked one by one, for a kernel that ignores
    /// either filter.
    pub(crate) fn tun_links(&mut self) -> Result<Vec<LinkInfo>, NlError> {
        self.dump(&mut tun_dump_request(), |payload, links| {
            links.extend(parse_tun_link(payload)?);
            Ok(())
        })
    }

    /// Every device, of any kind, in device group `group`.
    pub(crate) fn group_members(&mut self, group: u32) -> Result<Vec<TapName>, NlError> {
        self.dump(&mut group_dump_request(), |payload, names| {
            names.extend(parse_group_member(payload, group)?);
            Ok(())
        })
    }
}

/// Golden bytes, one comment per field. Little-endian hosts only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    #[test]
    fn tun_dump_with_kind_filter_and_no_stats() {
        #[rustfmt::skip]
        let expected = [
            0x34, 0x00, 0x00, 0x00, // nlmsg_len: 52
            0x12, 0x00,             // nlmsg_type: RTM_GETLINK (18)
            0x01, 0x03,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_DUMP (0x300)
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x00, 0x00, 0x00, 0x00, // ifi_index: 0, every link
            0x00, 0x00, 0x00, 0x00, // ifi_flags
            0x00, 0x00, 0x00, 0x00, // ifi_change
            0x08, 0x00,             // nla_len: 8
            0x1d, 0x00,             // nla_type: IFLA_EXT_MASK (29)
            0x08, 0x00, 0x00, 0x00, // RTEXT_FILTER_SKIP_STATS
            0x0c, 0x00,             // nla_len: 12
            0x12, 0x00,             // nla_type: IFLA_LINKINFO (18)
            0x08, 0x00,             //   nla_len: 8
            0x01, 0x00,             //   nla_type: IFLA_INFO_KIND
            b't', b'u', b'n', 0x00, //   "tun\0"
        ];
        assert_eq!(tun_dump_request().finish(1), expected);
    }

    #[test]
    fn group_dump_with_no_stats() {
        #[rustfmt::skip]
        let expected = [
            0x28, 0x00, 0x00, 0x00, // nlmsg_len: 40
            0x12, 0x00,             // nlmsg_type: RTM_GETLINK (18)
            0x01, 0x03,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_DUMP (0x300)
            0x03, 0x00, 0x00, 0x00, // nlmsg_seq: 3
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x00, 0x00, 0x00, 0x00, // ifi_index: 0, every link
            0x00, 0x00, 0x00, 0x00, // ifi_flags
            0x00, 0x00, 0x00, 0x00, // ifi_change
            0x08, 0x00,             // nla_len: 8
            0x1d, 0x00,             // nla_type: IFLA_EXT_MASK (29)
            0x08, 0x00, 0x00, 0x00, // RTEXT_FILTER_SKIP_STATS
        ];
        assert_eq!(group_dump_request().finish(3), expected);
    }
}
