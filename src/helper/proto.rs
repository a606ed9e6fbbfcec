//! The protocol between a pool and `tap-pool-helper`, over a Unix stream
//! socket.
//!
//! **Frames.** Every message is one frame: a 4-byte big-endian length, then
//! that many bytes of the message encoded with [postcard] (serde's compact
//! binary codec). A frame longer than [`MAX_FRAME_LEN`] is refused before
//! any of it is read, so a peer cannot make the other side allocate more.
//!
//! **Handshake.** The client's first frame is [`ClientFrame::Hello`] with
//! its [`PROTOCOL_VERSION`]; the helper answers [`ServerFrame::Welcome`]
//! (the version it will speak and the peer's uid and gid as it read them
//! with `SO_PEERCRED`), or [`ServerFrame::Closing`] and closes. A
//! `Hello` is the first variant of [`ClientFrame`] in every version, so
//! any version's helper reads any version's hello.
//!
//! **Requests.** Then the client sends [`ClientFrame::Request`]s, each with
//! an id of its choosing, and the helper answers each with a
//! [`ServerFrame::Response`] carrying the same id, in order. The answer to
//! [`Call::OpenNetlink`] carries open netlink sockets as `SCM_RIGHTS` on
//! the frame's first byte.
//!
//! **Errors.** A frame that does not decode, is too long, or is not allowed
//! where it comes ends that one connection: the helper sends
//! [`ServerFrame::Closing`] with [`Closing::Protocol`] (best effort) and
//! closes it; its other connections are not affected.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kernel::{CreatedTap, Device, KernelError, TapSpec};
use crate::name::TapName;
use crate::refusal::Refusal;

/// The version of the protocol this library speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest frame either side reads or writes, length prefix excluded.
/// The longest message is a refusal or a kernel error with the kernel's
/// extended-ack text: far below this.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientFrame {
    /// The first frame, and only the first.
    Hello {
        /// The version the client speaks.
        version: u32,
    },
    /// A call, after the helper's [`ServerFrame::Welcome`].
    Request(Request),
}

/// One call and its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The client's id for it, repeated in the answer.
    pub id: u64,
    /// What to do.
    pub call: Call,
}

/// The calls the helper carries out: the [`Kernel`](crate::Kernel) calls
/// that change links, and two of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Call {
    /// [`Kernel::create_tap`](crate::Kernel::create_tap).
    Create {
        /// The name.
        name: TapName,
        /// How to make it.
        spec: TapSpec,
        /// The client's random token for this create, which an
        /// [`Call::Abandon`] names.
        token: u64,
    },
    /// [`Kernel::reset_tap`](crate::Kernel::reset_tap).
    Reset {
        /// The tap.
        device: Device,
        /// Its pooled configuration.
        spec: TapSpec,
        /// The Ethernet address it was created with.
        mac: [u8; 6],
    },
    /// [`Kernel::delete_link`](crate::Kernel::delete_link).
    Delete {
        /// The tap.
        device: Device,
    },
    /// [`Kernel::set_device_group`](crate::Kernel::set_device_group).
    SetGroup {
        /// The tap.
        device: Device,
        /// The group.
        group: u32,
    },
    /// [`Kernel::delete_group`](crate::Kernel::delete_group).
    DeleteGroup {
        /// The group.
        group: u32,
    },
    /// A create whose answer was lost (the connection broke): delete the
    /// tap of this name if that create (its token) made it for this peer,
    /// and say [`Answer::Done`] either way.
    Abandon {
        /// The name the lost create asked for.
        name: TapName,
        /// The lost create's token.
        token: u64,
    },
    /// Open rtnetlink sockets in the peer's namespace and hand them over
    /// ([`Answer::Sockets`]): one for listings, or with `watch` the two a
    /// link watcher reads. Reading links needs no privilege; the socket
    /// does not lend the helper's (the kernel checks the sender's
    /// capabilities for every change).
    OpenNetlink {
        /// The watcher's two sockets rather than one for listings.
        watch: bool,
    },
}

impl Call {
    /// The call's name, for logs and errors ([`crate::Op::name`]'s for
    /// the kernel calls).
    pub fn name(&self) -> &'static str {
        match self {
            Call::Create { .. } => "create",
            Call::Reset { .. } => "reset",
            Call::Delete { .. } => "delete",
            Call::SetGroup { .. } => "set_device_group",
            Call::DeleteGroup { .. } => "delete_group",
            Call::Abandon { .. } => "abandon",
            Call::OpenNetlink { .. } => "open_netlink",
        }
    }
}

/// What the helper sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServerFrame {
    /// The answer to a [`ClientFrame::Hello`] the helper takes.
    Welcome {
        /// The version both sides speak from here.
        version: u32,
        /// The peer's uid, as `SO_PEERCRED` gave it.
        uid: u32,
        /// The peer's gid.
        gid: u32,
    },
    /// The answer to a [`Request`].
    Response(Response),
    /// The helper ends the connection, and says why.
    Closing(Closing),
}

/// The answer to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// What came of it.
    pub result: Result<Answer, KernelError>,
}

/// What a call gave back, when it succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Answer {
    /// The new tap.
    Created(CreatedTap),
    /// Done.
    Done,
    /// This many sockets came with the frame (`SCM_RIGHTS`).
    Sockets(u8),
}

/// Why the helper ends a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Closing {
    /// The peer may not connect, or not now ([`Refusal::PeerNotAllowed`],
    /// [`Refusal::Version`], [`Refusal::Busy`]).
    Refused(Refusal),
    /// The client broke the protocol.
    Protocol(String),
}

/// Why a frame could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The connection ended cleanly before a frame began.
    #[error("the connection was closed")]
    Closed,
    /// The length prefix says more than [`MAX_FRAME_LEN`].
    #[error("a frame of {len} bytes is longer than the {MAX_FRAME_LEN} allowed")]
    TooLong {
        /// The length the prefix gave.
        len: u64,
    },
    /// The frame's bytes are not a message of the protocol.
    #[error("a frame does not decode: {0}")]
    Malformed(#[from] postcard::Error),
    /// Reading or writing failed (a timeout, a reset, a frame cut short).
    #[error("the connection failed")]
    Io(#[from] io::Error),
}

/// Encodes `message` as one frame, length prefix included.
///
/// # Errors
/// [`FrameError::Malformed`] if serde cannot encode it;
/// [`FrameError::TooLong`] if it would be longer than [`MAX_FRAME_LEN`].
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = postcard::to_extend(message, vec![0u8; 4])?;
    let len = frame.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong { len: len as u64 });
    }
    frame[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(frame)
}

/// Decodes one frame's message (the bytes after its length prefix). The
/// whole frame must be the message: trailing bytes are malformed.
///
/// # Errors
/// [`FrameError::TooLong`] for more than [`MAX_FRAME_LEN`] bytes,
/// [`FrameError::Malformed`] for anything that is not one `T`.
pub fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, FrameError> {
    if payload.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong {
            len: payload.len() as u64,
        });
    }
    let (message, rest) = postcard::take_from_bytes(payload)?;
    if rest.is_empty() {
        Ok(message)
    } else {
        Err(FrameError::Malformed(
            postcard::Error::DeserializeBadEncoding,
        ))
    }
}

/// Reads one frame from `reader` into `buf` and decodes it.
///
/// # Errors
/// [`FrameError::Closed`] at a clean end before a frame;
/// [`FrameError::TooLong`] (nothing more is read), [`FrameError::Malformed`],
/// [`FrameError::Io`] (a frame cut short is `UnexpectedEof`).
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    reader: &mut impl Read,
    buf: &mut Vec<u8>,
) -> Result<T, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        match reader.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong { len: len as u64 });
    }
    buf.clear();
    buf.resize(len, 0);
    reader.read_exact(buf)?;
    decode(buf)
}

/// Encodes `message` and writes it to `writer` as one frame.
///
/// # Errors
/// As [`encode`], or [`FrameError::Io`].
pub fn write_frame<T: Serialize>(writer: &mut impl Write, message: &T) -> Result<(), FrameError> {
    writer.write_all(&encode(message)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_a_big_endian_length_and_the_postcard_bytes() {
        let frame = encode(&ClientFrame::Hello { version: 1 }).unwrap();
        // Variant 0 (Hello), then the version as a varint.
        assert_eq!(frame, [0, 0, 0, 2, 0, 1]);
        let mut reader = &frame[..];
        let back: ClientFrame = read_frame(&mut reader, &mut Vec::new()).unwrap();
        assert_eq!(back, ClientFrame::Hello { version: 1 });
    }

    #[test]
    fn a_length_over_the_bound_is_refused_before_reading_it() {
        let mut reader = &[0xff, 0xff, 0xff, 0xff][..];
        let err = read_frame::<ClientFrame>(&mut reader, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLong { len: 0xffff_ffff }),
            "{err}"
        );
    }

    #[test]
    fn trailing_bytes_and_cut_frames_are_errors() {
        let mut reader = &[0, 0, 0, 3, 0, 1, 7][..];
        let err = read_frame::<ClientFrame>(&mut reader, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
        let mut reader = &[0, 0, 0, 9, 0, 1][..];
        let err = read_frame::<ClientFrame>(&mut reader, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, FrameError::Io(_)), "{err}");
        let mut reader = &[][..];
        let err = read_frame::<ClientFrame>(&mut reader, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, FrameError::Closed), "{err}");
    }
}
