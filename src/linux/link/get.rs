//! `RTM_GETLINK`: one link, by index or name (what identifies it); and
//! dumps of every tun/tap link, every link of a device group, and every
//! link's name.

use super::parse::{
    LinkIdentity, LinkState, parse_group_member, parse_link_identity, parse_link_name,
    parse_link_state, parse_link_summary, parse_tun_link,
};
use super::{Target, push_ifinfomsg, push_target};
use crate::kernel::LinkInfo;
use crate::linux::LinkSummary;
use crate::linux::netlink::{Malformed, NLM_F_ACK, NLM_F_DUMP, NlError, Request, Rtnl};
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

/// The `RTM_GETLINK` of the one link `target`, without statistics, acked
/// (the kernel answers with the link, then the ack; or with an error,
/// `ENODEV` when there is no such link).
pub(crate) fn link_request(target: Target) -> Request {
    let mut request = Request::new(libc::RTM_GETLINK, NLM_F_ACK);
    push_target(&mut request, target, 0, 0);
    request.attr_u32(libc::IFLA_EXT_MASK, SKIP_STATS);
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

    /// What identifies the link `target` now ([`link_request`]): its index,
    /// name and whether it is a tap. A reply about another link than the
    /// one asked for (by index, or by name) is malformed.
    pub(crate) fn link(&mut self, target: Target) -> Result<LinkIdentity, NlError> {
        let mut found = None;
        self.transact(&mut link_request(target), |payload| {
            if found.is_none() {
                found = Some(parse_link_identity(payload)?);
            }
            Ok(())
        })?;
        let link = found.ok_or(Malformed::NoLink)?;
        let same = match target {
            Target::Index(index) => link.index == index,
            Target::Name(name) => link.name == Some(name),
        };
        if !same {
            return Err(Malformed::OtherLink {
                answered: link.index,
            }
            .into());
        }
        Ok(link)
    }

    /// The tun/tap link at `index`, as [`Rtnl::tun_links`] reads it; `None`
    /// if the link there is not a tun/tap device.
    pub(crate) fn tun_link(&mut self, index: u32) -> Result<Option<LinkInfo>, NlError> {
        let mut found = None;
        self.transact(&mut link_request(Target::Index(index)), |payload| {
            if found.is_none() {
                found = Some(parse_tun_link(payload)?);
            }
            Ok(())
        })?;
        let link = found.ok_or(Malformed::NoLink)?;
        if let Some(other) = link.as_ref().filter(|link| link.index != index) {
            return Err(Malformed::OtherLink {
                answered: other.index,
            }
            .into());
        }
        Ok(link)
    }

    /// The [`LinkState`] of the link with index `index`, from one
    /// [`link_request`]. A reply about another link is malformed.
    pub(crate) fn link_state(&mut self, index: u32) -> Result<LinkState, NlError> {
        let mut found = None;
        self.transact(&mut link_request(Target::Index(index)), |payload| {
            if found.is_none() {
                found = Some(parse_link_state(payload)?);
            }
            Ok(())
        })?;
        let (answered, state) = found.ok_or(Malformed::NoLink)?;
        if answered != index {
            return Err(Malformed::OtherLink { answered }.into());
        }
        Ok(state)
    }

    /// Every link's index and name, from one dump ([`group_dump_request`]);
    /// a link the kernel sent no device name for (it always sends one) is
    /// left out.
    pub(crate) fn link_names(&mut self) -> Result<Vec<(u32, TapName)>, NlError> {
        self.dump(&mut group_dump_request(), |payload, names| {
            if let (index, Some(name)) = parse_link_name(payload)? {
                names.push((index, name));
            }
            Ok(())
        })
    }

    /// Every link, of any kind, from one dump ([`group_dump_request`]); a
    /// link the kernel sent no device name for (it always sends one) is
    /// left out.
    pub(crate) fn link_summaries(&mut self) -> Result<Vec<LinkSummary>, NlError> {
        self.dump(&mut group_dump_request(), |payload, links| {
            links.extend(parse_link_summary(payload)?);
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
    fn one_link_by_index_with_no_stats() {
        #[rustfmt::skip]
        let expected = [
            0x28, 0x00, 0x00, 0x00, // nlmsg_len: 40
            0x12, 0x00,             // nlmsg_type: RTM_GETLINK (18)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x07, 0x00, 0x00, 0x00, // nlmsg_seq: 7
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x39, 0x05, 0x00, 0x00, // ifi_index: 1337
            0x00, 0x00, 0x00, 0x00, // ifi_flags
            0x00, 0x00, 0x00, 0x00, // ifi_change
            0x08, 0x00,             // nla_len: 8
            0x1d, 0x00,             // nla_type: IFLA_EXT_MASK (29)
            0x08, 0x00, 0x00, 0x00, // RTEXT_FILTER_SKIP_STATS
        ];
        assert_eq!(link_request(Target::Index(1337)).finish(7), expected);
    }

    #[test]
    fn one_link_by_name_with_no_stats() {
        let name = TapName::new("tap1").expect("valid");
        #[rustfmt::skip]
        let expected = [
            0x34, 0x00, 0x00, 0x00, // nlmsg_len: 52
            0x12, 0x00,             // nlmsg_type: RTM_GETLINK (18)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x07, 0x00, 0x00, 0x00, // nlmsg_seq: 7
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
            0x08, 0x00,             // nla_len: 8
            0x1d, 0x00,             // nla_type: IFLA_EXT_MASK (29)
            0x08, 0x00, 0x00, 0x00, // RTEXT_FILTER_SKIP_STATS
        ];
        assert_eq!(link_request(Target::Name(name)).finish(7), expected);
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
