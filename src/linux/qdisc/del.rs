//! `RTM_DELQDISC`: removing the qdisc at a device's root, or its
//! `ingress`/`clsact` qdisc.

use super::TCMSG_LEN;
use crate::linux::netlink::{NLM_F_ACK, NlError, Request, Rtnl};

/// The `RTM_DELQDISC` removing the qdisc whose parent is `parent`
/// ([`TC_H_ROOT`](super::TC_H_ROOT) or [`TC_H_INGRESS`](super::TC_H_INGRESS))
/// on the link with index `index`. No `TCA_KIND`: the kernel then takes
/// whichever qdisc is there (`ingress` or `clsact` alike), where `tc`
/// sends the kind and is refused unless it matches.
pub(crate) fn request(index: u32, parent: u32) -> Request {
    let mut request = Request::new(libc::RTM_DELQDISC, NLM_F_ACK);
    let mut tcmsg = [0u8; TCMSG_LEN]; // tcm_family AF_UNSPEC, pads
    tcmsg[4..8].copy_from_slice(&index.to_ne_bytes()); // tcm_ifindex
    // tcm_handle (8..12) stays 0: the qdisc is named by its parent.
    tcmsg[12..16].copy_from_slice(&parent.to_ne_bytes()); // tcm_parent
    request.push(&tcmsg);
    request
}

impl Rtnl {
    /// Deletes the qdisc under `parent` on the link with index `index`. The
    /// kernel answers `ENOENT` when there is nothing to delete: no qdisc
    /// there, or only the device's default one (handle 0, "Cannot delete
    /// qdisc with handle of zero"), which comes back by itself after a
    /// delete.
    pub(crate) fn del_qdisc(&mut self, index: u32, parent: u32) -> Result<(), NlError> {
        self.ack(&mut request(index, parent))
    }
}

/// Golden bytes, one comment per field. Little-endian hosts only.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::super::{TC_H_INGRESS, TC_H_ROOT};
    use super::*;

    #[test]
    fn root() {
        #[rustfmt::skip]
        let expected = [
            0x24, 0x00, 0x00, 0x00, // nlmsg_len: 36
            0x25, 0x00,             // nlmsg_type: RTM_DELQDISC (37)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x01, 0x00, 0x00, 0x00, // nlmsg_seq: 1
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // tcm_family: AF_UNSPEC
            0x00,                   // tcm__pad1
            0x00, 0x00,             // tcm__pad2
            0x07, 0x00, 0x00, 0x00, // tcm_ifindex: 7
            0x00, 0x00, 0x00, 0x00, // tcm_handle: 0, named by its parent
            0xff, 0xff, 0xff, 0xff, // tcm_parent: TC_H_ROOT
            0x00, 0x00, 0x00, 0x00, // tcm_info
        ];
        assert_eq!(request(7, TC_H_ROOT).finish(1), expected);
    }

    #[test]
    fn ingress_or_clsact() {
        #[rustfmt::skip]
        let expected = [
            0x24, 0x00, 0x00, 0x00, // nlmsg_len: 36
            0x25, 0x00,             // nlmsg_type: RTM_DELQDISC (37)
            0x05, 0x00,             // nlmsg_flags: NLM_F_REQUEST | NLM_F_ACK
            0x02, 0x00, 0x00, 0x00, // nlmsg_seq: 2
            0x00, 0x00, 0x00, 0x00, // nlmsg_pid: 0
            0x00,                   // tcm_family: AF_UNSPEC
            0x00,                   // tcm__pad1
            0x00, 0x00,             // tcm__pad2
            0x39, 0x05, 0x00, 0x00, // tcm_ifindex: 1337
            0x00, 0x00, 0x00, 0x00, // tcm_handle: 0
            0xf1, 0xff, 0xff, 0xff, // tcm_parent: TC_H_INGRESS (TC_H_CLSACT)
            0x00, 0x00, 0x00, 0x00, // tcm_info
            // No TCA_KIND: whichever of ingress and clsact is there.
        ];
        assert_eq!(request(1337, TC_H_INGRESS).finish(2), expected);
    }
}

/// What the kernel answers when there is nothing to delete, captured on
/// 6.18 (`testdata/README.md`): `ENOENT` both, with its reason.
#[cfg(all(test, target_endian = "little"))]
mod captured {
    use crate::linux::netlink::{parse_status, split_message};

    fn answer(bytes: &[u8]) -> (i32, Option<String>) {
        let (header, payload, rest) = split_message(bytes).expect("framed");
        assert!(rest.is_empty());
        let status = parse_status(header, payload).expect("a status");
        (status.code, status.ext_ack)
    }

    #[test]
    fn a_default_root_qdisc() {
        assert_eq!(
            answer(include_bytes!("../testdata/delqdisc_root_default.bin")),
            (
                -libc::ENOENT,
                Some("Cannot delete qdisc with handle of zero".to_owned())
            )
        );
    }

    #[test]
    fn no_ingress_qdisc() {
        assert_eq!(
            answer(include_bytes!("../testdata/delqdisc_ingress_none.bin")),
            (
                -libc::ENOENT,
                Some("Cannot find specified qdisc on specified device".to_owned())
            )
        );
    }
}
