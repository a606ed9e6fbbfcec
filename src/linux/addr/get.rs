//! `RTM_GETADDR`: the addresses on one link.

use super::{Address, IFADDRMSG_LEN};
use crate::linux::netlink::{Malformed, NLM_F_DUMP, NlError, Request, Rtnl, read_u32};

/// The dump of the addresses on the link with index `index`, of every
/// family. The kernel honours the index only with strict checking on
/// (`NETLINK_GET_STRICT_CHK`); [`parse_address`] filters again.
pub(crate) fn request(index: u32) -> Request {
    let mut request = Request::new(libc::RTM_GETADDR, NLM_F_DUMP);
    let mut ifaddrmsg = [0u8; IFADDRMSG_LEN]; // family AF_UNSPEC, prefixlen, flags, scope
    ifaddrmsg[4..8].copy_from_slice(&index.to_ne_bytes()); // ifa_index
    request.push(&ifaddrmsg);
    request
}

/// Reads one `RTM_NEWADDR` payload: the address, if it is on the link with
/// index `index`.
pub(crate) fn parse_address(payload: &[u8], index: u32) -> Result<Option<Address>, Malformed> {
    if payload.len() < IFADDRMSG_LEN {
        return Err(Malformed::Truncated {
            what: "ifaddrmsg",
            len: payload.len(),
            need: IFADDRMSG_LEN,
        });
    }
    Ok((read_u32(payload, 4) == index).then(|| Address {
        payload: payload.to_vec(),
    }))
}

impl Rtnl {
    /// Every IPv4 and IPv6 address on the link with index `index`, from one
    /// `RTM_GETADDR` dump.
    pub(crate) fn addresses(&mut self, index: u32) -> Result<Vec<Address>, NlError> {
        self.dump(&mut request(index), |payload, found| {
            found.extend(parse_address(payload, index)?);
            Ok(())
        })
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::linux::netlink::split_message;

    #[test]
    fn golden_request() {
        #[rustfmt::skip]
        let expected = [
            0x18, 0x00, 0x00, 0x00, // nlmsg_len: 24
            0x16, 0x00,             // nlmsg_type: RTM_GETADDR (22)
            0x01, 0x03,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_DUMP (0x300)
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // ifa_family: AF_UNSPEC, every family
            0x00,                   // ifa_prefixlen
            0x00,                   // ifa_flags
            0x00,                   // ifa_scope
            0x03, 0x00, 0x00, 0x00, // ifa_index: 3
        ];
        assert_eq!(request(3).finish(1), expected);
    }

    /// The captured dump (see `testdata/README.md`): an IPv4 and an IPv6
    /// address on index 3, each kept verbatim; nothing for index 4.
    #[test]
    fn captured_dump() {
        let mut rest: &[u8] = include_bytes!("../testdata/addr_dump.bin");
        let mut found = Vec::new();
        let mut other = Vec::new();
        let mut kinds = Vec::new();
        while !rest.is_empty() {
            let (header, payload, next) = split_message(rest).expect("framed");
            rest = next;
            kinds.push(header.kind);
            if header.kind == libc::RTM_NEWADDR {
                found.extend(parse_address(payload, 3).expect("parses"));
                other.extend(parse_address(payload, 4).expect("parses"));
                assert_eq!(found.last().map(|a| &a.payload[..]), Some(payload));
            }
        }
        assert_eq!(
            kinds,
            [
                libc::RTM_NEWADDR,
                libc::RTM_NEWADDR,
                libc::NLMSG_DONE as u16
            ]
        );
        let families: Vec<_> = found.iter().map(Address::family).collect();
        assert_eq!(families, [libc::AF_INET as u8, libc::AF_INET6 as u8]);
        assert!(other.is_empty());
    }

    #[test]
    fn short_payload_is_malformed() {
        assert_eq!(
            parse_address(&[2, 24, 0], 3),
            Err(Malformed::Truncated {
                what: "ifaddrmsg",
                len: 3,
                need: IFADDRMSG_LEN
            })
        );
    }
}
