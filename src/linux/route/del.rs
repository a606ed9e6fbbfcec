//! `RTM_DELROUTE`: removing one route.

use super::Route;
use crate::linux::netlink::{NLM_F_ACK, NlError, Request, Rtnl};

/// The `RTM_DELROUTE` removing `route`: the dump's payload, verbatim.
pub(crate) fn request(route: &Route) -> Request {
    let mut request = Request::new(libc::RTM_DELROUTE, NLM_F_ACK);
    request.push(&route.payload);
    request
}

impl Rtnl {
    /// Deletes one route that [`Rtnl::routes_through`] reported. The kernel
    /// answers `ESRCH` when it is gone already.
    pub(crate) fn del_route(&mut self, route: &Route) -> Result<(), NlError> {
        self.ack(&mut request(route))
    }
}

/// Golden bytes, one comment per field. Little-endian hosts only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    #[test]
    fn the_dumped_payload_verbatim() {
        #[rustfmt::skip]
        let payload = [
            0x02,                   // rtm_family: AF_INET
            0x10,                   // rtm_dst_len: 16
            0x00,                   // rtm_src_len
            0x00,                   // rtm_tos
            0xfe,                   // rtm_table: RT_TABLE_MAIN
            0x04,                   // rtm_protocol: RTPROT_STATIC
            0xfe,                   // rtm_scope: RT_SCOPE_HOST
            0x01,                   // rtm_type: RTN_UNICAST
            0x00, 0x00, 0x00, 0x00, // rtm_flags
            0x08, 0x00,             // nla_len: 8
            0x0f, 0x00,             // nla_type: RTA_TABLE
            0xfe, 0x00, 0x00, 0x00, // 254
            0x08, 0x00,             // nla_len: 8
            0x01, 0x00,             // nla_type: RTA_DST
            0x0a, 0x4e, 0x00, 0x00, // 10.78.0.0
            0x08, 0x00,             // nla_len: 8
            0x04, 0x00,             // nla_type: RTA_OIF
            0x07, 0x00, 0x00, 0x00, // 7
        ];
        let header = [
            0x34, 0x00, 0x00, 0x00, // nlmsg_len: 52
            0x19, 0x00, // nlmsg_type: RTM_DELROUTE (25)
            0x05, 0x00, // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x03, 0x00, 0x00, 0x00, // nlmsg_seq: 3
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
        ];
        let route = Route {
            payload: payload.to_vec(),
            destination: IpAddr::V4(Ipv4Addr::new(10, 78, 0, 0)),
            prefix_len: 16,
            table: 254,
            multipath: false,
        };
        assert_eq!(request(&route).finish(3), [&header[..], &payload].concat());
    }
}
