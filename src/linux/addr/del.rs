//! `RTM_DELADDR`: removing one address.

use super::Address;
use crate::linux::netlink::{NLM_F_ACK, NlError, Request, Rtnl};

/// The `RTM_DELADDR` removing `address`: the dump's payload, verbatim.
pub(crate) fn request(address: &Address) -> Request {
    let mut request = Request::new(libc::RTM_DELADDR, NLM_F_ACK);
    request.push(&address.payload);
    request
}

impl Rtnl {
    /// Deletes one address that [`Rtnl::addresses`] reported.
    pub(crate) fn del_addr(&mut self, address: &Address) -> Result<(), NlError> {
        self.ack(&mut request(address))
    }
}

/// Golden bytes, one comment per field, for the addresses of the captured
/// dump (`testdata/addr_dump.bin`). Little-endian hosts only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    /// The dump the payloads below were read from.
    const CAPTURED: &[u8] = include_bytes!("../testdata/addr_dump.bin");

    #[test]
    fn ipv4() {
        #[rustfmt::skip]
        let payload = [
            0x02,                   // ifa_family: AF_INET
            0x18,                   // ifa_prefixlen: 24
            0x80,                   // ifa_flags: IFA_F_PERMANENT
            0x00,                   // ifa_scope: RT_SCOPE_UNIVERSE
            0x03, 0x00, 0x00, 0x00, // ifa_index: 3
            0x08, 0x00,             // nla_len: 8
            0x01, 0x00,             // nla_type: IFA_ADDRESS
            0x0a, 0x00, 0x00, 0x01, // 10.0.0.1
            0x08, 0x00,             // nla_len: 8
            0x02, 0x00,             // nla_type: IFA_LOCAL
            0x0a, 0x00, 0x00, 0x01, // 10.0.0.1
            0x0a, 0x00,             // nla_len: 10
            0x03, 0x00,             // nla_type: IFA_LABEL
            b't', b'a', b'p', b'c', b'0', 0x00, // "tapc0\0"
            0x00, 0x00,             // padding
            0x08, 0x00,             // nla_len: 8
            0x08, 0x00,             // nla_type: IFA_FLAGS
            0x80, 0x00, 0x00, 0x00, // IFA_F_PERMANENT
            0x14, 0x00,             // nla_len: 20
            0x06, 0x00,             // nla_type: IFA_CACHEINFO
            0xff, 0xff, 0xff, 0xff, // ifa_prefered: forever
            0xff, 0xff, 0xff, 0xff, // ifa_valid: forever
            0x64, 0x34, 0x02, 0x00, // cstamp
            0x64, 0x34, 0x02, 0x00, // tstamp
        ];
        let header = [
            0x50, 0x00, 0x00, 0x00, // nlmsg_len: 80
            0x15, 0x00, // nlmsg_type: RTM_DELADDR (21)
            0x05, 0x00, // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
        ];
        let address = Address {
            payload: payload.to_vec(),
        };
        assert_eq!(payload[..], CAPTURED[16..80]);
        assert_eq!(address.family(), libc::AF_INET as u8);
        assert_eq!(
            request(&address).finish(1),
            [&header[..], &payload].concat()
        );
    }

    #[test]
    fn ipv6() {
        #[rustfmt::skip]
        let payload = [
            0x0a,                   // ifa_family: AF_INET6
            0x40,                   // ifa_prefixlen: 64
            0x82,                   // ifa_flags: IFA_F_PERMANENT | IFA_F_NODAD
            0x00,                   // ifa_scope: RT_SCOPE_UNIVERSE
            0x03, 0x00, 0x00, 0x00, // ifa_index: 3
            0x14, 0x00,             // nla_len: 20
            0x01, 0x00,             // nla_type: IFA_ADDRESS
            0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // fd00::1
            0x14, 0x00,             // nla_len: 20
            0x06, 0x00,             // nla_type: IFA_CACHEINFO
            0xff, 0xff, 0xff, 0xff, // ifa_prefered: forever
            0xff, 0xff, 0xff, 0xff, // ifa_valid: forever
            0x66, 0x34, 0x02, 0x00, // cstamp
            0x66, 0x34, 0x02, 0x00, // tstamp
            0x08, 0x00,             // nla_len: 8
            0x08, 0x00,             // nla_type: IFA_FLAGS
            0x82, 0x00, 0x00, 0x00, // IFA_F_PERMANENT | IFA_F_NODAD
        ];
        let header = [
            0x48, 0x00, 0x00, 0x00, // nlmsg_len: 72
            0x15, 0x00, // nlmsg_type: RTM_DELADDR (21)
            0x05, 0x00, // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x07, 0x00, 0x00, 0x00, // nlmsg_seq: 7
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
        ];
        let address = Address {
            payload: payload.to_vec(),
        };
        assert_eq!(payload[..], CAPTURED[96..152]);
        assert_eq!(address.family(), libc::AF_INET6 as u8);
        assert_eq!(
            request(&address).finish(7),
            [&header[..], &payload].concat()
        );
    }
}
