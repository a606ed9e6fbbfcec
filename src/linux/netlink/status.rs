//! The status that ends every exchange: an `NLMSG_ERROR` (an ack when its
//! code is 0) or a dump's `NLMSG_DONE`, with the extended-ack text the
//! kernel may attach.

use super::attr::{Attrs, c_string};
use super::error::Malformed;
use super::message::{
    HEADER_LEN, Header, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_DONE, align, read_u32,
};

/// `NLMSGERR_ATTR_MSG` (linux/netlink.h, `enum nlmsgerr_attrs`; the libc
/// crate lacks it): the extended ack's text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// What an `NLMSG_ERROR` or `NLMSG_DONE` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    /// 0, or a negative errno.
    pub(crate) code: i32,
    /// The extended-ack text, if the kernel gave one.
    pub(crate) ext_ack: Option<String>,
}

/// Reads the status of an `NLMSG_ERROR` or `NLMSG_DONE` message.
///
/// A dump's done message may carry no payload at all, which means success.
pub(crate) fn parse_status(header: Header, payload: &[u8]) -> Result<Status, Malformed> {
    if payload.len() < 4 {
        return if header.kind == NLMSG_DONE {
            Ok(Status {
                code: 0,
                ext_ack: None,
            })
        } else {
            Err(Malformed::Truncated {
                what: "nlmsgerr",
                len: payload.len(),
                need: 4,
            })
        };
    }
    let code = read_u32(payload, 0) as i32;
    if header.flags & NLM_F_ACK_TLVS == 0 {
        return Ok(Status {
            code,
            ext_ack: None,
        });
    }
    // An error echoes the request after the code: the whole request, or
    // only its header when capped. A done message echoes nothing.
    let echoed = if header.kind == NLMSG_DONE {
        0
    } else if header.flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else if payload.len() >= 8 {
        align(read_u32(payload, 4) as usize)
    } else {
        0
    };
    let tlvs = payload.get(4 + echoed..).unwrap_or_default();
    Ok(Status {
        code,
        ext_ack: ext_ack_message(tlvs),
    })
}

/// The `NLMSGERR_ATTR_MSG` text among an ack's attributes.
fn ext_ack_message(tlvs: &[u8]) -> Option<String> {
    Attrs(tlvs)
        .find(|&(kind, _)| kind == NLMSGERR_ATTR_MSG)
        .map(|(_, text)| c_string(text))
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::message::NLMSG_ERROR;
    use super::*;

    #[test]
    fn error_with_ext_ack_after_the_echoed_request() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-libc::EINVAL).to_ne_bytes()); // error code
        payload.extend_from_slice(&20u32.to_ne_bytes()); // echoed nlmsg_len: 16 + 4
        payload.extend_from_slice(&[0; 12]); // rest of the echoed header
        payload.extend_from_slice(&[0; 4]); // echoed payload
        payload.extend_from_slice(&9u16.to_ne_bytes()); // attr len: 4 + "oops\0"
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes()); // attr type
        payload.extend_from_slice(b"oops\0\0\0\0"); // text, padded
        let header = Header {
            kind: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS,
            seq: 1,
        };
        let status = parse_status(header, &payload).expect("parses");
        assert_eq!(status.code, -libc::EINVAL);
        assert_eq!(status.ext_ack.as_deref(), Some("oops"));
    }

    #[test]
    fn capped_error_echoes_only_the_header() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(-libc::ERANGE).to_ne_bytes()); // error code
        payload.extend_from_slice(&64u32.to_ne_bytes()); // echoed nlmsg_len (uncapped size)
        payload.extend_from_slice(&[0; 12]); // rest of the echoed header
        payload.extend_from_slice(&7u16.to_ne_bytes()); // attr len: 4 + "no\0"
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes()); // attr type
        payload.extend_from_slice(b"no\0\0"); // text, padded
        let header = Header {
            kind: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS | NLM_F_CAPPED,
            seq: 1,
        };
        let status = parse_status(header, &payload).expect("parses");
        assert_eq!(status.code, -libc::ERANGE);
        assert_eq!(status.ext_ack.as_deref(), Some("no"));
    }

    #[test]
    fn done_without_payload_is_success() {
        let header = Header {
            kind: NLMSG_DONE,
            flags: 0,
            seq: 1,
        };
        let status = parse_status(header, &[]).expect("parses");
        assert_eq!(
            status,
            Status {
                code: 0,
                ext_ack: None
            }
        );
    }

    #[test]
    fn short_error_is_malformed() {
        let header = Header {
            kind: NLMSG_ERROR,
            flags: 0,
            seq: 1,
        };
        assert_eq!(
            parse_status(header, &[0, 0]),
            Err(Malformed::Truncated {
                what: "nlmsgerr",
                len: 2,
                need: 4
            })
        );
    }
}

/// Against replies captured from Linux 6.18 (`testdata/README.md` says how).
#[cfg(all(test, target_endian = "little"))]
mod captured {
    use super::super::message::{NLM_F_DUMP_INTR, split_message};
    use super::*;

    /// The status of the one message in `bytes`.
    fn status(bytes: &[u8]) -> (Header, Status) {
        let (header, payload, rest) = split_message(bytes).expect("framed");
        assert!(rest.is_empty());
        (header, parse_status(header, payload).expect("parses"))
    }

    #[test]
    fn ack() {
        let (header, status) = status(include_bytes!("../testdata/ack.bin"));
        assert_eq!(header.seq, 4);
        assert_ne!(header.flags & NLM_F_CAPPED, 0); // acks echo the header only
        assert_eq!(
            status,
            Status {
                code: 0,
                ext_ack: None
            }
        );
    }

    #[test]
    fn error_with_ext_ack() {
        let (header, status) = status(include_bytes!("../testdata/error_ext_ack.bin"));
        assert_eq!(header.flags & NLM_F_CAPPED, 0); // the whole request echoed
        assert_eq!(status.code, -libc::EINVAL);
        assert_eq!(
            status.ext_ack.as_deref(),
            Some("mtu greater than device maximum")
        );
    }

    #[test]
    fn error_without_ext_ack() {
        let (_, status) = status(include_bytes!("../testdata/error_enodev.bin"));
        assert_eq!(
            status,
            Status {
                code: -libc::ENODEV,
                ext_ack: None
            }
        );
    }

    #[test]
    fn done() {
        let (header, status) = status(include_bytes!("../testdata/done.bin"));
        assert_eq!(header.kind, NLMSG_DONE);
        assert_eq!(header.flags & NLM_F_DUMP_INTR, 0);
        assert_eq!(status.code, 0);
    }

    /// The flag is the socket loop's business; the status reads the same.
    #[test]
    fn done_interrupted() {
        let mut bytes = include_bytes!("../testdata/done.bin").to_vec();
        bytes[6] |= NLM_F_DUMP_INTR as u8; // nlmsg_flags, low byte
        let (header, status) = status(&bytes);
        assert_ne!(header.flags & NLM_F_DUMP_INTR, 0);
        assert_eq!(status.code, 0);
    }
}
