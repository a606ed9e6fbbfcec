//! `RTM_SETLINK`: changing a link's settings.

use super::{
    AF_INET, AF_INET6, IFLA_GRO_IPV4_MAX_SIZE, IFLA_GSO_IPV4_MAX_SIZE, IFLA_INET_CONF,
    IFLA_INET6_TOKEN, IFLA_XDP_FD, IFLA_XDP_FLAGS, LinkConfig, Target, push_ifinfomsg, push_target,
};
use crate::linux::netlink::{NLM_F_ACK, NlError, Request, Rtnl};

/// The `RTM_SETLINK` applying `config` to `target`. The attributes go in
/// a fixed order; the kernel applies them in its own (`do_setlink`:
/// master, then flags, then the rest).
pub(crate) fn request(target: Target, config: LinkConfig) -> Request {
    let mut request = Request::new(libc::RTM_SETLINK, NLM_F_ACK);
    let up = if config.up { libc::IFF_UP as u32 } else { 0 };
    let flags = config.flags.unwrap_or_default();
    push_target(
        &mut request,
        target,
        (flags.value & !up) | up,
        flags.mask | up,
    );
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
    if let Some(txqlen) = config.txqlen {
        request.attr_u32(libc::IFLA_TXQLEN, txqlen);
    }
    if config.clear_alias {
        // No value at all, as `ip link set alias ""` sends it: a NUL
        // would be an alias of its own.
        request.attr(libc::IFLA_IFALIAS, &[]);
    }
    if let Some(broadcast) = config.broadcast {
        request.attr(libc::IFLA_BROADCAST, &broadcast);
    }
    if let Some(linkmode) = config.linkmode {
        request.attr(libc::IFLA_LINKMODE, &[linkmode]);
    }
    if let Some(segments) = config.segments {
        request.attr_u32(libc::IFLA_GSO_MAX_SIZE, segments.gso_max_size);
        request.attr_u32(libc::IFLA_GSO_MAX_SEGS, segments.gso_max_segs);
        request.attr_u32(libc::IFLA_GRO_MAX_SIZE, segments.gro_max_size);
        request.attr_u32(IFLA_GSO_IPV4_MAX_SIZE, segments.gso_ipv4_max_size);
        request.attr_u32(IFLA_GRO_IPV4_MAX_SIZE, segments.gro_ipv4_max_size);
    }
    if let Some(mode) = config.detach_xdp {
        let xdp = request.begin_nested(libc::IFLA_XDP);
        request.attr(IFLA_XDP_FD, &(-1i32).to_ne_bytes());
        request.attr_u32(IFLA_XDP_FLAGS, mode);
        request.end_nested(xdp);
    }
    if !config.inet_conf.is_empty() || config.clear_token {
        // Sent without NLA_F_NESTED, as `ip` sends it.
        let af_spec = request.begin_nested(libc::IFLA_AF_SPEC);
        if !config.inet_conf.is_empty() {
            let inet = request.begin_nested(AF_INET);
            let conf = request.begin_nested(IFLA_INET_CONF);
            for &(key, value) in config.inet_conf {
                request.attr_u32(key, value);
            }
            request.end_nested(conf);
            request.end_nested(inet);
        }
        if config.clear_token {
            let inet6 = request.begin_nested(AF_INET6);
            request.attr(IFLA_INET6_TOKEN, &[0; 16]);
            request.end_nested(inet6);
        }
        request.end_nested(af_spec);
    }
    request
}

/// The `RTM_SETLINK` naming no link (index 0, no name) and changing
/// nothing: the kernel checks that the sender may change links in the
/// socket's namespace (`CAP_NET_ADMIN` over the user namespace that owns
/// it, in `rtnetlink_rcv_msg`) before it reads the request, so the answer
/// is `EPERM` without that right, and a refusal for naming no link
/// (`EINVAL`, or `ENODEV`) with it.
pub(crate) fn no_link_request() -> Request {
    let mut request = Request::new(libc::RTM_SETLINK, NLM_F_ACK);
    push_ifinfomsg(&mut request, 0, 0, 0);
    request
}

impl Rtnl {
    /// Applies `config` to `target` in one `RTM_SETLINK`.
    pub(crate) fn set_link(&mut self, target: Target, config: LinkConfig) -> Result<(), NlError> {
        self.ack(&mut request(target, config))
    }

    /// Whether the kernel takes link changes from this thread in the
    /// socket's namespace, asked with [`no_link_request`], which changes
    /// nothing: `false` only for `EPERM`.
    pub(crate) fn may_change_links(&mut self) -> Result<bool, NlError> {
        match self.ack(&mut no_link_request()) {
            Err(NlError::Refused { errno, .. }) if errno.0 == libc::EPERM => Ok(false),
            // Refused for naming no link: the right was there.
            Ok(()) | Err(NlError::Refused { .. }) => Ok(true),
            Err(other) => Err(other),
        }
    }
}

/// Golden bytes, one comment per field (as netlink-packet-route's tests).
/// Little-endian hosts only: netlink is in host byte order.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::super::{Flags, Segments};
    use super::*;
    use crate::name::TapName;

    /// The probe of the right to change links: a header naming nothing.
    #[test]
    fn no_link() {
        #[rustfmt::skip]
        let expected = [
            0x20, 0x00, 0x00, 0x00, // nlmsg_len: 32
            0x13, 0x00,             // nlmsg_type: RTM_SETLINK (19)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0, the kernel
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x00, 0x00, 0x00, 0x00, // ifi_index: 0, and no IFLA_IFNAME: no link
            0x00, 0x00, 0x00, 0x00, // ifi_flags
            0x00, 0x00, 0x00, 0x00, // ifi_change: nothing to change
        ];
        assert_eq!(no_link_request().finish(1), expected);
    }

    /// Everything a reset sets, by index.
    #[test]
    fn by_index_every_attribute_and_up() {
        let config = LinkConfig {
            up: true,
            mtu: Some(9000),
            master: Some(3),
            group: Some(5),
            mac: Some([0x02, 0, 0, 0, 0, 0x07]),
            ..LinkConfig::default()
        };
        #[rustfmt::skip]
        let expected = [
            0x44, 0x00, 0x00, 0x00, // nlmsg_len: 68
            0x13, 0x00,             // nlmsg_type: RTM_SETLINK (19)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0, the kernel
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x07, 0x00, 0x00, 0x00, // ifi_index: 7
            0x01, 0x00, 0x00, 0x00, // ifi_flags: IFF_UP
            0x01, 0x00, 0x00, 0x00, // ifi_change: IFF_UP
            0x0a, 0x00,             // nla_len: 10
            0x01, 0x00,             // nla_type: IFLA_ADDRESS
            0x02, 0x00, 0x00, 0x00, 0x00, 0x07, // 02:00:00:00:00:07
            0x00, 0x00,             // padding
            0x08, 0x00,             // nla_len: 8
            0x04, 0x00,             // nla_type: IFLA_MTU
            0x28, 0x23, 0x00, 0x00, // 9000
            0x08, 0x00,             // nla_len: 8
            0x1b, 0x00,             // nla_type: IFLA_GROUP (27)
            0x05, 0x00, 0x00, 0x00, // 5
            0x08, 0x00,             // nla_len: 8
            0x0a, 0x00,             // nla_type: IFLA_MASTER (10)
            0x03, 0x00, 0x00, 0x00, // 3
        ];
        assert_eq!(request(Target::Index(7), config).finish(1), expected);
    }

    /// A create's configuration, by name: up, MTU, master, group; no MAC.
    #[test]
    fn by_name_up_mtu_group_master() {
        let config = LinkConfig {
            up: true,
            mtu: Some(1400),
            master: Some(2),
            group: Some(7),
            ..LinkConfig::default()
        };
        let name = TapName::new("tap-pool-0").expect("valid");
        #[rustfmt::skip]
        let expected = [
            0x48, 0x00, 0x00, 0x00, // nlmsg_len: 72
            0x13, 0x00,             // nlmsg_type: RTM_SETLINK (19)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x00, 0x00, 0x00, 0x00, // ifi_index: 0, the name says which
            0x01, 0x00, 0x00, 0x00, // ifi_flags: IFF_UP
            0x01, 0x00, 0x00, 0x00, // ifi_change: IFF_UP
            0x0f, 0x00,             // nla_len: 15
            0x03, 0x00,             // nla_type: IFLA_IFNAME
            b't', b'a', b'p', b'-', b'p', b'o', b'o', b'l', b'-', b'0', 0x00, // "tap-pool-0\0"
            0x00,                   // padding
            0x08, 0x00,             // nla_len: 8
            0x04, 0x00,             // nla_type: IFLA_MTU
            0x78, 0x05, 0x00, 0x00, // 1400
            0x08, 0x00,             // nla_len: 8
            0x1b, 0x00,             // nla_type: IFLA_GROUP (27)
            0x07, 0x00, 0x00, 0x00, // 7
            0x08, 0x00,             // nla_len: 8
            0x0a, 0x00,             // nla_type: IFLA_MASTER (10)
            0x02, 0x00, 0x00, 0x00, // 2
        ];
        assert_eq!(request(Target::Name(name), config).finish(1), expected);
    }

    /// `set_device_group`: only the group; the flags untouched.
    #[test]
    fn group_only_leaves_the_flags_alone() {
        let config = LinkConfig {
            group: Some(0),
            ..LinkConfig::default()
        };
        #[rustfmt::skip]
        let expected = [
            0x28, 0x00, 0x00, 0x00, // nlmsg_len: 40
            0x13, 0x00,             // nlmsg_type: RTM_SETLINK (19)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x02, 0x00, 0x00, 0x00, // nlmsg_seq: 2
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x2a, 0x00, 0x00, 0x00, // ifi_index: 42
            0x00, 0x00, 0x00, 0x00, // ifi_flags: none
            0x00, 0x00, 0x00, 0x00, // ifi_change: none, so IFF_UP is kept
            0x08, 0x00,             // nla_len: 8
            0x1b, 0x00,             // nla_type: IFLA_GROUP (27)
            0x00, 0x00, 0x00, 0x00, // 0, the default group
        ];
        assert_eq!(request(Target::Index(42), config).finish(2), expected);
    }

    /// What a reset's own requests add: flags by mask, every leftover
    /// setting, an XDP detach, IPv4 settings and the IPv6 token.
    #[test]
    fn flags_by_mask_and_every_leftover_setting() {
        let config = LinkConfig {
            flags: Some(Flags {
                value: libc::IFF_MULTICAST as u32,
                mask: 0xf3a5, // every flag a user can set
            }),
            master: Some(0),
            txqlen: Some(1000),
            clear_alias: true,
            broadcast: Some([0xff; 6]),
            linkmode: Some(0),
            segments: Some(Segments {
                gso_max_size: 65536,
                gso_max_segs: 65535,
                gro_max_size: 65536,
                gso_ipv4_max_size: 65536,
                gro_ipv4_max_size: 65536,
            }),
            detach_xdp: Some(1 << 1), // XDP_FLAGS_SKB_MODE
            inet_conf: &[(3, 0), (14, u32::MAX)],
            clear_token: true,
            ..LinkConfig::default()
        };
        #[rustfmt::skip]
        let expected = [
            0xb8, 0x00, 0x00, 0x00, // nlmsg_len: 184
            0x13, 0x00,             // nlmsg_type: RTM_SETLINK (19)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifi_family: AF_UNSPEC
            0x00,                   // padding
            0x00, 0x00,             // ifi_type: 0
            0x07, 0x00, 0x00, 0x00, // ifi_index: 7
            0x00, 0x10, 0x00, 0x00, // ifi_flags: IFF_MULTICAST, so IFF_UP off
            0xa5, 0xf3, 0x00, 0x00, // ifi_change: UP DEBUG NOTRAILERS NOARP PROMISC
                                    //   ALLMULTI MULTICAST PORTSEL AUTOMEDIA DYNAMIC
            0x08, 0x00,             // nla_len: 8
            0x0a, 0x00,             // nla_type: IFLA_MASTER (10)
            0x00, 0x00, 0x00, 0x00, // 0: no master
            0x08, 0x00,             // nla_len: 8
            0x0d, 0x00,             // nla_type: IFLA_TXQLEN (13)
            0xe8, 0x03, 0x00, 0x00, // 1000
            0x04, 0x00,             // nla_len: 4, no value: no alias
            0x14, 0x00,             // nla_type: IFLA_IFALIAS (20)
            0x0a, 0x00,             // nla_len: 10
            0x02, 0x00,             // nla_type: IFLA_BROADCAST (2)
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // ff:ff:ff:ff:ff:ff
            0x00, 0x00,             // padding
            0x05, 0x00,             // nla_len: 5
            0x11, 0x00,             // nla_type: IFLA_LINKMODE (17)
            0x00,                   // IF_LINK_MODE_DEFAULT
            0x00, 0x00, 0x00,       // padding
            0x08, 0x00,             // nla_len: 8
            0x29, 0x00,             // nla_type: IFLA_GSO_MAX_SIZE (41)
            0x00, 0x00, 0x01, 0x00, // 65536
            0x08, 0x00,             // nla_len: 8
            0x28, 0x00,             // nla_type: IFLA_GSO_MAX_SEGS (40)
            0xff, 0xff, 0x00, 0x00, // 65535
            0x08, 0x00,             // nla_len: 8
            0x3a, 0x00,             // nla_type: IFLA_GRO_MAX_SIZE (58)
            0x00, 0x00, 0x01, 0x00, // 65536
            0x08, 0x00,             // nla_len: 8
            0x3f, 0x00,             // nla_type: IFLA_GSO_IPV4_MAX_SIZE (63)
            0x00, 0x00, 0x01, 0x00, // 65536
            0x08, 0x00,             // nla_len: 8
            0x40, 0x00,             // nla_type: IFLA_GRO_IPV4_MAX_SIZE (64)
            0x00, 0x00, 0x01, 0x00, // 65536
            0x14, 0x00,             // nla_len: 20
            0x2b, 0x00,             // nla_type: IFLA_XDP (43)
            0x08, 0x00,             //   nla_len: 8
            0x01, 0x00,             //   nla_type: IFLA_XDP_FD
            0xff, 0xff, 0xff, 0xff, //   -1: detach
            0x08, 0x00,             //   nla_len: 8
            0x03, 0x00,             //   nla_type: IFLA_XDP_FLAGS
            0x02, 0x00, 0x00, 0x00, //   XDP_FLAGS_SKB_MODE
            0x34, 0x00,             // nla_len: 52
            0x1a, 0x00,             // nla_type: IFLA_AF_SPEC (26)
            0x18, 0x00,             //   nla_len: 24
            0x02, 0x00,             //   nla_type: AF_INET
            0x14, 0x00,             //     nla_len: 20
            0x01, 0x00,             //     nla_type: IFLA_INET_CONF
            0x08, 0x00,             //       nla_len: 8
            0x03, 0x00,             //       nla_type: IPV4_DEVCONF_PROXY_ARP (3)
            0x00, 0x00, 0x00, 0x00, //       0
            0x08, 0x00,             //       nla_len: 8
            0x0e, 0x00,             //       nla_type: IPV4_DEVCONF_MEDIUM_ID (14)
            0xff, 0xff, 0xff, 0xff, //       -1
            0x18, 0x00,             //   nla_len: 24
            0x0a, 0x00,             //   nla_type: AF_INET6
            0x14, 0x00,             //     nla_len: 20
            0x07, 0x00,             //     nla_type: IFLA_INET6_TOKEN
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // ::, no token
        ];
        assert_eq!(request(Target::Index(7), config).finish(1), expected);
    }

    /// A request can be sent again (a retry) under a new sequence number.
    #[test]
    fn finish_again_changes_only_the_sequence_number() {
        let mut request = request(Target::Index(42), LinkConfig::default());
        let first = request.finish(1).to_vec();
        let second = request.finish(2).to_vec();
        assert_eq!(first.len(), 32);
        assert_eq!(first[..8], second[..8]);
        assert_eq!(second[8..12], [0x02, 0x00, 0x00, 0x00]); // nlmsg_seq: 2
        assert_eq!(first[12..], second[12..]);
    }
}
