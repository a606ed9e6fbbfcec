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
