//! Property tests of every reply parser: arbitrary bytes, and replies
//! captured from a real kernel (`testdata/`) with bytes changed or cut off,
//! never panic or read out of bounds, and fail only with a typed
//! [`Malformed`].

use std::collections::VecDeque;

use proptest::prelude::*;

use super::addr::get::parse_address;
use rustc_hash::FxHashMap;

use super::link::parse::{
    parse_group_member, parse_link_identity, parse_link_name, parse_link_state, parse_link_summary,
    parse_tun_info, parse_tun_link,
};
use super::netlink::{Attrs, Header, Malformed, parse_status, split_message};
use super::route::get::parse_route;
use super::watch::{NameNow, queue_events};
use crate::name::TapName;

/// Every captured reply.
const CAPTURED: &[&[u8]] = &[
    include_bytes!("testdata/tun_dump.bin"),
    include_bytes!("testdata/group_dump.bin"),
    include_bytes!("testdata/addr_dump.bin"),
    include_bytes!("testdata/ack.bin"),
    include_bytes!("testdata/error_ext_ack.bin"),
    include_bytes!("testdata/error_enodev.bin"),
    include_bytes!("testdata/done.bin"),
    include_bytes!("testdata/newlink_bridge_port.bin"),
    include_bytes!("testdata/dellink_bridge_port.bin"),
    include_bytes!("testdata/dellink.bin"),
    include_bytes!("testdata/getlink_tap.bin"),
    include_bytes!("testdata/getlink_tun.bin"),
    include_bytes!("testdata/getlink_bridge.bin"),
    include_bytes!("testdata/getlink_lo.bin"),
    include_bytes!("testdata/getlink_enodev.bin"),
    include_bytes!("testdata/getlink_by_name.bin"),
    include_bytes!("testdata/newlink_rename.bin"),
    include_bytes!("testdata/newlink_mtu.bin"),
    include_bytes!("testdata/newlink_bridge_mtu.bin"),
    include_bytes!("testdata/getlink_leftovers.bin"),
    include_bytes!("testdata/route_dump.bin"),
    include_bytes!("testdata/delqdisc_root_default.bin"),
    include_bytes!("testdata/delqdisc_ingress_none.bin"),
];

/// Runs `bytes`, as a datagram and as a bare payload, through every parser.
/// Each returns `Ok` or a `Malformed` (the types say so); what is checked
/// here is that none panics, and that the framer always moves forward.
fn every_parser(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match split_message(rest) {
            Ok((header, payload, next)) => {
                assert!(next.len() < rest.len(), "the framer must advance");
                parse_payload(header, payload);
                rest = next;
            }
            Err(Malformed::Truncated { .. } | Malformed::MessageLength { .. }) => break,
            Err(other) => panic!("the framer failed with {other:?}"),
        }
    }
    // The watcher, knowing every index a captured reply holds under
    // another name, with each check answered every way it can be.
    for now in [
        NameNow::Is(TapName::new("x").expect("valid")),
        NameNow::Unfit,
        NameNow::Unknown,
    ] {
        let mut names: FxHashMap<u32, TapName> = (0..8)
            .map(|index| (index, TapName::new("old").expect("valid")))
            .collect();
        let _ = queue_events(bytes, &mut names, &mut |_| now, &mut VecDeque::new());
    }
    for kind in [libc::NLMSG_ERROR as u16, libc::NLMSG_DONE as u16] {
        for flags in [0, libc::NLM_F_ACK_TLVS as u16, 0x300] {
            let header = Header {
                kind,
                flags,
                seq: 1,
            };
            let _ = parse_status(header, bytes);
        }
    }
    parse_payload(
        Header {
            kind: 0,
            flags: 0,
            seq: 0,
        },
        bytes,
    );
}

/// Every payload parser, whatever the message's type.
fn parse_payload(header: Header, payload: &[u8]) {
    let _ = parse_status(header, payload);
    let _ = parse_tun_link(payload);
    let _ = parse_link_summary(payload);
    let _ = parse_tun_info(payload);
    let _ = parse_link_identity(payload);
    let _ = parse_link_name(payload);
    let _ = parse_group_member(payload, 7);
    let _ = parse_address(payload, 3);
    let _ = parse_link_state(payload);
    let _ = parse_route(payload, 3);
    let mut consumed = 0;
    for (_, value) in Attrs(payload) {
        consumed += value.len() + 4;
        assert!(consumed <= payload.len());
    }
}

/// A captured reply with some bytes replaced and its end perhaps cut off.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..CAPTURED.len(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(which, changes, cut, truncate)| {
            let mut bytes = CAPTURED[which].to_vec();
            for (at, value) in changes {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        every_parser(&bytes);
    }

    #[test]
    fn mutated_captured_replies(bytes in mutated()) {
        every_parser(&bytes);
    }

    /// Attribute lengths are what break parsers: every 16-bit length at
    /// every place an attribute header sits in a captured reply.
    #[test]
    fn captured_with_a_bad_length(
        which in 0..CAPTURED.len(),
        at in any::<prop::sample::Index>(),
        len in any::<u16>(),
    ) {
        let mut bytes = CAPTURED[which].to_vec();
        let at = at.index(bytes.len() / 2) * 2;
        if at + 2 <= bytes.len() {
            bytes[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        every_parser(&bytes);
    }
}

#[test]
fn every_captured_reply_parses() {
    for bytes in CAPTURED {
        let mut rest = *bytes;
        while !rest.is_empty() {
            let (_, _, next) = split_message(rest).expect("a captured reply is framed");
            rest = next;
        }
        every_parser(bytes);
    }
}
