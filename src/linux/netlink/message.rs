//! Message framing: the `nlmsghdr` around a request ([`Request`]), and
//! splitting a datagram of replies into messages ([`split_message`]).

use super::error::Malformed;

/// `sizeof(struct nlmsghdr)`: length, type, flags, sequence, port id.
pub(crate) const HEADER_LEN: usize = size_of::<libc::nlmsghdr>();

/// `NLMSG_ALIGNTO` and `NLA_ALIGNTO` (linux/netlink.h): messages and
/// attributes start on 4-byte boundaries. The libc crate keeps its
/// `NLMSG_ALIGNTO` private and lacks `NLA_ALIGNTO`.
const ALIGN_TO: usize = 4;

// libc's values, narrowed to the width of the header fields they go in.
pub(crate) const NLMSG_NOOP: u16 = libc::NLMSG_NOOP as u16;
pub(crate) const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
pub(crate) const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
pub(crate) const NLMSG_OVERRUN: u16 = libc::NLMSG_OVERRUN as u16;
pub(crate) const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
pub(crate) const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
pub(crate) const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
pub(crate) const NLM_F_DUMP_INTR: u16 = libc::NLM_F_DUMP_INTR as u16;
pub(crate) const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
pub(crate) const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;

/// Rounds `len` up to the netlink alignment.
pub(crate) fn align(len: usize) -> usize {
    (len + ALIGN_TO - 1) & !(ALIGN_TO - 1)
}

/// One request being laid out: a header, then the payload pushed after it.
/// The length and sequence number are filled in by [`Request::finish`], so
/// a request can be sent again (a dump retried) under a new sequence number.
pub(crate) struct Request {
    bytes: Vec<u8>,
}

impl Request {
    /// A request of type `kind` with `NLM_F_REQUEST | flags`, addressed to
    /// the kernel (port id 0), with no payload yet.
    pub(crate) fn new(kind: u16, flags: u16) -> Request {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len: `finish`
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq: `finish`
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
        Request { bytes }
    }

    /// Appends `bytes` (a fixed family header, or a whole payload), padded.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.pad();
    }

    /// Appends one attribute holding `value`. Every attribute this crate
    /// sends is a few bytes long, far below the 64 KiB an attribute's
    /// 16-bit length allows.
    pub(crate) fn attr(&mut self, kind: u16, value: &[u8]) {
        let start = self.begin_nested(kind);
        self.bytes.extend_from_slice(value);
        self.end_nested(start);
    }

    /// Appends a `u32` attribute, in host byte order.
    pub(crate) fn attr_u32(&mut self, kind: u16, value: u32) {
        self.attr(kind, &value.to_ne_bytes());
    }

    /// Appends a string attribute, NUL-terminated as the kernel expects.
    pub(crate) fn attr_str(&mut self, kind: u16, value: &str) {
        self.attr_cstr(kind, value.as_bytes());
    }

    /// Appends a string attribute of bytes that need not be UTF-8 (a
    /// device name), NUL-terminated as the kernel expects. `value` holds
    /// no NUL.
    pub(crate) fn attr_cstr(&mut self, kind: u16, value: &[u8]) {
        let start = self.begin_nested(kind);
        self.bytes.extend_from_slice(value);
        self.bytes.push(0);
        self.end_nested(start);
    }

    /// Opens an attribute whose value is the attributes appended until
    /// [`Request::end_nested`] is called with the returned offset.
    pub(crate) fn begin_nested(&mut self, kind: u16) -> usize {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&0u16.to_ne_bytes()); // nla_len: `end_nested`
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        start
    }

    /// Closes the attribute opened at `start`: sets its length (without
    /// padding, as the kernel does) and pads what follows.
    pub(crate) fn end_nested(&mut self, start: usize) {
        let len = u16::try_from(self.bytes.len() - start).unwrap_or(u16::MAX);
        self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.pad();
    }

    /// Sets the length and the sequence number `seq`, and returns the
    /// finished message.
    pub(crate) fn finish(&mut self, seq: u32) -> &[u8] {
        let len = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        self.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        self.bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.bytes
    }

    fn pad(&mut self) {
        self.bytes.resize(align(self.bytes.len()), 0);
    }
}

/// The fields of a netlink message header that replies are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// `nlmsg_type`.
    pub(crate) kind: u16,
    /// `nlmsg_flags`.
    pub(crate) flags: u16,
    /// `nlmsg_seq`.
    pub(crate) seq: u32,
}

/// Splits the first message off `bytes`: its header, its payload, and what
/// follows it.
pub(crate) fn split_message(bytes: &[u8]) -> Result<(Header, &[u8], &[u8]), Malformed> {
    if bytes.len() < HEADER_LEN {
        return Err(Malformed::Truncated {
            what: "message header",
            len: bytes.len(),
            need: HEADER_LEN,
        });
    }
    let len = read_u32(bytes, 0) as usize;
    if len < HEADER_LEN || len > bytes.len() {
        return Err(Malformed::MessageLength {
            len,
            available: bytes.len(),
        });
    }
    let header = Header {
        kind: read_u16(bytes, 4),
        flags: read_u16(bytes, 6),
        seq: read_u32(bytes, 8),
    };
    let next = align(len).min(bytes.len());
    Ok((header, &bytes[HEADER_LEN..len], &bytes[next..]))
}

/// The `u32` at `at`, in host byte order. The caller has checked that
/// `bytes` holds it.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

/// The `u16` at `at`, in host byte order. The caller has checked that
/// `bytes` holds it.
pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}
