//! `RTM_GETROUTE`: the routes of one family, in every table, that go
//! through one link.

use std::net::IpAddr;

use super::{RTMSG_LEN, RTNEXTHOP_LEN, Route, unspecified};
use crate::linux::netlink::{
    Attrs, Malformed, NLM_F_DUMP, NlError, Request, Rtnl, align, read_attr_u32, read_u32,
};

/// The dump of the routes of `family` (`AF_INET` or `AF_INET6`) in every
/// table (`rtm_table` 0, no `RTA_TABLE`) that go through the link with
/// index `index` (`RTA_OIF`). With strict checking on
/// (`NETLINK_GET_STRICT_CHK`) the kernel sends only those, and counts a
/// multipath route with any next hop through the link
/// (`fib_info_nh_uses_dev`, `fib6_info_uses_dev`); [`parse_route`] checks
/// again, for a kernel that ignores the filter.
pub(crate) fn request(family: u8, index: u32) -> Request {
    let mut request = Request::new(libc::RTM_GETROUTE, NLM_F_DUMP);
    let mut rtmsg = [0u8; RTMSG_LEN];
    rtmsg[0] = family; // rtm_family; the rest 0: every table, type, protocol
    request.push(&rtmsg);
    request.attr_u32(libc::RTA_OIF, index);
    request
}

/// Reads one `RTM_NEWROUTE` payload: the route, if it goes through the link
/// with index `index` (`RTA_OIF`, or one of `RTA_MULTIPATH`'s next hops).
pub(crate) fn parse_route(payload: &[u8], index: u32) -> Result<Option<Route>, Malformed> {
    if payload.len() < RTMSG_LEN {
        return Err(Malformed::Truncated {
            what: "rtmsg",
            len: payload.len(),
            need: RTMSG_LEN,
        });
    }
    let (rtmsg, attrs) = payload.split_at(RTMSG_LEN);
    let family = rtmsg[0];
    let mut route = Route {
        payload: payload.to_vec(),
        destination: unspecified(family),
        prefix_len: rtmsg[1],
        table: rtmsg[4].into(),
        multipath: false,
    };
    let mut through = false;
    for (kind, value) in Attrs(attrs) {
        match kind {
            libc::RTA_DST => {
                if let Some(address) = ip_address(value) {
                    route.destination = address;
                }
            }
            libc::RTA_TABLE => route.table = read_attr_u32(kind, value)?,
            libc::RTA_OIF => through |= read_attr_u32(kind, value)? == index,
            libc::RTA_MULTIPATH if next_hops(value).any(|ifindex| ifindex == index) => {
                through = true;
                route.multipath = true;
            }
            _ => {}
        }
    }
    Ok(through.then_some(route))
}

/// The interface index of each next hop of an `RTA_MULTIPATH` (a sequence
/// of `struct rtnexthop`, each followed by its own attributes).
fn next_hops(mut bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    std::iter::from_fn(move || {
        if bytes.len() < RTNEXTHOP_LEN {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
        if len < RTNEXTHOP_LEN || len > bytes.len() {
            return None;
        }
        let ifindex = read_u32(bytes, 4);
        bytes = &bytes[align(len).min(bytes.len())..];
        Some(ifindex)
    })
}

/// An address attribute's value as an IPv4 or IPv6 address.
fn ip_address(value: &[u8]) -> Option<IpAddr> {
    match value.len() {
        4 => <[u8; 4]>::try_from(value).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(value).ok().map(IpAddr::from),
        _ => None,
    }
}

impl Rtnl {
    /// Every route of `family`, in any table, through the link with index
    /// `index`, from one `RTM_GETROUTE` dump.
    pub(crate) fn routes_through(&mut self, family: u8, index: u32) -> Result<Vec<Route>, NlError> {
        self.dump(&mut request(family, index), |payload, found| {
            found.extend(parse_route(payload, index)?);
            Ok(())
        })
    }
}

/// Golden bytes, one comment per field. Little-endian hosts only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn ipv4_every_table_through_one_link() {
        #[rustfmt::skip]
        let expected = [
            0x24, 0x00, 0x00, 0x00, // nlmsg_len: 36
            0x1a, 0x00,             // nlmsg_type: RTM_GETROUTE (26)
            0x01, 0x03,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_DUMP (0x300)
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x02,                   // rtm_family: AF_INET
            0x00,                   // rtm_dst_len
            0x00,                   // rtm_src_len
            0x00,                   // rtm_tos
            0x00,                   // rtm_table: RT_TABLE_UNSPEC, every table
            0x00,                   // rtm_protocol: any
            0x00,                   // rtm_scope
            0x00,                   // rtm_type: any
            0x00, 0x00, 0x00, 0x00, // rtm_flags
            0x08, 0x00,             // nla_len: 8
            0x04, 0x00,             // nla_type: RTA_OIF
            0x07, 0x00, 0x00, 0x00, // 7
        ];
        assert_eq!(request(libc::AF_INET as u8, 7).finish(1), expected);
    }

    #[test]
    fn ipv6_every_table_through_one_link() {
        let bytes = request(libc::AF_INET6 as u8, 1337).finish(2).to_vec();
        assert_eq!(bytes[16], 0x0a); // rtm_family: AF_INET6
        assert_eq!(bytes[8..12], [0x02, 0x00, 0x00, 0x00]); // nlmsg_seq: 2
        assert_eq!(bytes[32..36], [0x39, 0x05, 0x00, 0x00]); // RTA_OIF 1337
    }

    /// A route as the kernel dumps it: an `rtmsg`, then `attrs`.
    fn route(family: u8, dst_len: u8, table: u8, attrs: &[u8]) -> Vec<u8> {
        let mut payload = vec![family, dst_len, 0, 0, table, 3, 0, 1, 0, 0, 0, 0];
        payload.extend_from_slice(attrs);
        payload
    }

    #[test]
    fn a_route_through_the_link_by_its_output_interface() {
        #[rustfmt::skip]
        let attrs = [
            0x08, 0x00, 0x0f, 0x00, 0x64, 0x00, 0x00, 0x00, // RTA_TABLE: 100
            0x08, 0x00, 0x01, 0x00, 0x0a, 0x02, 0x00, 0x00, // RTA_DST: 10.2.0.0
            0x08, 0x00, 0x04, 0x00, 0x07, 0x00, 0x00, 0x00, // RTA_OIF: 7
        ];
        let payload = route(libc::AF_INET as u8, 16, 100, &attrs);
        let found = parse_route(&payload, 7).expect("parses");
        assert_eq!(
            found,
            Some(Route {
                payload: payload.clone(),
                destination: IpAddr::V4(Ipv4Addr::new(10, 2, 0, 0)),
                prefix_len: 16,
                table: 100,
                multipath: false,
            })
        );
        assert_eq!(found.expect("a route").to_string(), "10.2.0.0/16 table 100");
        assert_eq!(parse_route(&payload, 8), Ok(None));
    }

    #[test]
    fn a_multipath_route_with_one_next_hop_through_the_link() {
        #[rustfmt::skip]
        let attrs = [
            0x08, 0x00, 0x0f, 0x00, 0xfe, 0x00, 0x00, 0x00, // RTA_TABLE: 254 (main)
            0x14, 0x00, 0x01, 0x00,                         // RTA_DST, 20 bytes:
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x04, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //   2001:db8:4::
            0x24, 0x00, 0x09, 0x00,                         // RTA_MULTIPATH, 36 bytes:
            0x08, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, //   rtnexthop: len 8, index 3
            0x18, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, //   rtnexthop: len 24, index 7
            0x14, 0x00, 0x05, 0x00,                         //     RTA_GATEWAY, 20 bytes
            0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //     fe80::1
        ];
        let payload = route(libc::AF_INET6 as u8, 64, 254, &attrs);
        let found = parse_route(&payload, 7)
            .expect("parses")
            .expect("through 7");
        assert_eq!(
            found.destination,
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0))
        );
        assert!(found.multipath);
        assert_eq!(found.to_string(), "2001:db8:4::/64 table 254 (multipath)");
        assert!(parse_route(&payload, 3).expect("parses").is_some());
        assert_eq!(parse_route(&payload, 5), Ok(None));
    }

    #[test]
    fn a_default_route_has_no_destination_attribute() {
        let attrs = [0x08, 0x00, 0x04, 0x00, 0x07, 0x00, 0x00, 0x00]; // RTA_OIF: 7
        let payload = route(libc::AF_INET6 as u8, 0, 254, &attrs);
        let found = parse_route(&payload, 7)
            .expect("parses")
            .expect("through 7");
        assert_eq!(found.to_string(), "::/0 table 254");
    }

    /// A dump captured on 6.18 (`testdata/README.md`): a route of scope
    /// host in table 100 through index 3, and a multipath route with next
    /// hops through 3 and 4; the kernel sent only those.
    #[test]
    fn captured_dump() {
        let through = |index| -> Vec<String> {
            let mut found = Vec::new();
            let mut rest: &[u8] = include_bytes!("../testdata/route_dump.bin");
            while !rest.is_empty() {
                let (header, payload, next) =
                    crate::linux::netlink::split_message(rest).expect("framed");
                rest = next;
                if header.kind == libc::RTM_NEWROUTE {
                    found.extend(parse_route(payload, index).expect("parses"));
                }
            }
            found.iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            through(3),
            ["10.5.0.0/16 table 100", "10.4.0.0/16 table 254 (multipath)"]
        );
        assert_eq!(through(4), ["10.4.0.0/16 table 254 (multipath)"]);
        assert!(through(5).is_empty());
    }

    #[test]
    fn short_payload_is_malformed() {
        assert_eq!(
            parse_route(&[2, 0, 0], 7),
            Err(Malformed::Truncated {
                what: "rtmsg",
                len: 3,
                need: RTMSG_LEN
            })
        );
    }
}
