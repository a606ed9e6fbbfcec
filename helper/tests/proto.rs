//! The protocol's decoder on arbitrary bytes: whatever a peer sends,
//! `decode` and `read_frame` give a frame or a `FrameError`, never a panic,
//! and never read past a length prefix over `MAX_FRAME_LEN`; and every
//! frame the library encodes decodes to itself, however the stream is cut
//! into reads.

use std::io::{self, Read};

use proptest::prelude::*;
use tap_pool::helper::proto::{
    Answer, Call, ClientFrame, FrameError, MAX_FRAME_LEN, Request, Response, ServerFrame, decode,
    encode, read_frame,
};
use tap_pool::{CreatedTap, Device, KernelError, Refusal, TapName, TapSpec};

/// A reader that hands its bytes over in the sizes it is given, in turn,
/// a size of 0 being an `Interrupted` error (which readers must retry; the
/// read after one gives a byte at least).
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    turn: usize,
    interrupted: bool,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], sizes: &'a [usize]) -> Chunked<'a> {
        Chunked {
            data,
            sizes,
            turn: 0,
            interrupted: false,
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = if self.sizes.is_empty() {
            buf.len()
        } else {
            self.sizes[self.turn % self.sizes.len()]
        };
        self.turn += 1;
        if size == 0 && !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.interrupted = false;
        let n = size.max(1).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn name() -> impl Strategy<Value = TapName> {
    prop::collection::vec(any::<u8>(), 1..=15)
        .prop_filter_map("a valid name", |bytes| TapName::from_bytes(&bytes).ok())
}

fn spec() -> impl Strategy<Value = TapSpec> {
    (
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<(bool, bool)>(),
        any::<Option<u32>>(),
        prop::option::of(name()),
        any::<Option<u32>>(),
    )
        .prop_map(
            |(owner, group, (vnet_hdr, multi_queue), mtu, bridge, device_group)| {
                let mut spec = TapSpec::default();
                spec.owner = owner;
                spec.group = group;
                spec.vnet_hdr = vnet_hdr;
                spec.multi_queue = multi_queue;
                spec.mtu = mtu;
                spec.bridge = bridge;
                spec.device_group = device_group;
                spec
            },
        )
}

fn device() -> impl Strategy<Value = Device> {
    (name(), any::<Option<u32>>()).prop_map(|(name, index)| Device { name, index })
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        (name(), spec(), any::<u64>()).prop_map(|(name, spec, token)| Call::Create {
            name,
            spec,
            token
        }),
        (device(), spec(), any::<[u8; 6]>()).prop_map(|(device, spec, mac)| Call::Reset {
            device,
            spec,
            mac
        }),
        device().prop_map(|device| Call::Delete { device }),
        (device(), any::<u32>()).prop_map(|(device, group)| Call::SetGroup { device, group }),
        any::<u32>().prop_map(|group| Call::DeleteGroup { group }),
        (name(), any::<u64>()).prop_map(|(name, token)| Call::Abandon { name, token }),
        any::<bool>().prop_map(|watch| Call::OpenNetlink { watch }),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        any::<u32>().prop_map(|version| ClientFrame::Hello { version }),
        (any::<u64>(), call()).prop_map(|(id, call)| ClientFrame::Request(Request { id, call })),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let result = prop_oneof![
        (any::<u32>(), any::<[u8; 6]>())
            .prop_map(|(index, mac)| Ok(Answer::Created(CreatedTap { index, mac }))),
        Just(Ok(Answer::Done)),
        any::<u8>().prop_map(|n| Ok(Answer::Sockets(n))),
        (name(), any::<Option<u32>>()).prop_map(|(name, index)| Err(KernelError::Refused {
            op: "delete".into(),
            refusal: Refusal::NotYours { name, index },
        })),
        any::<u32>().prop_map(|max| Err(KernelError::Refused {
            op: "create".into(),
            refusal: Refusal::Limit { max },
        })),
    ];
    prop_oneof![
        any::<(u32, u32, u32)>().prop_map(|(version, uid, gid)| ServerFrame::Welcome {
            version,
            uid,
            gid
        }),
        (any::<u64>(), result)
            .prop_map(|(id, result)| ServerFrame::Response(Response { id, result })),
    ]
}

/// A length prefix: mostly near the bytes that follow, sometimes around
/// the bound, sometimes anything.
fn prefix(body: usize) -> impl Strategy<Value = u32> {
    let body = u32::try_from(body).expect("small");
    let max = u32::try_from(MAX_FRAME_LEN).expect("fits");
    prop_oneof![
        4 => 0..=body + 8,
        1 => max - 2..=max + 2,
        1 => any::<u32>(),
    ]
}

proptest! {
    #[test]
    fn decode_gives_a_frame_or_an_error_for_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        for result in [
            decode::<ClientFrame>(&bytes).map(drop),
            decode::<ServerFrame>(&bytes).map(drop),
        ] {
            if let Err(e) = result {
                prop_assert!(matches!(e, FrameError::Malformed(_)), "{e}");
            }
        }
    }

    #[test]
    fn read_frame_gives_a_frame_or_an_error_for_any_stream(
        (len, body) in prop::collection::vec(any::<u8>(), 0..256)
            .prop_flat_map(|body| (prefix(body.len()), Just(body))),
        sizes in prop::collection::vec(0usize..8, 0..6),
    ) {
        let mut stream = len.to_be_bytes().to_vec();
        stream.extend_from_slice(&body);
        let mut reader = Chunked::new(&stream, &sizes);
        let result = read_frame::<ClientFrame>(&mut reader, &mut Vec::new());
        let len = len as usize;
        if len > MAX_FRAME_LEN {
            prop_assert!(
                matches!(result, Err(FrameError::TooLong { len: l }) if l == len as u64),
                "{result:?}"
            );
            prop_assert_eq!(reader.data.len(), body.len(), "read past a prefix over the bound");
        } else if body.len() < len {
            prop_assert!(
                matches!(&result, Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof),
                "{result:?}"
            );
        } else {
            // The frame is the `len` bytes after the prefix, as `decode`
            // reads them, and nothing after them is read.
            let expected = decode::<ClientFrame>(&body[..len]);
            match (&result, &expected) {
                (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
                (Err(FrameError::Malformed(_)), Err(FrameError::Malformed(_))) => {}
                _ => prop_assert!(false, "{result:?} but decode gives {expected:?}"),
            }
            prop_assert_eq!(reader.data.len(), body.len() - len);
        }
    }

    #[test]
    fn read_frame_on_cut_or_empty_streams_is_closed_or_eof(
        cut in 0usize..4,
        sizes in prop::collection::vec(0usize..4, 0..4),
    ) {
        let stream = [0u8, 0, 0, 2];
        let mut reader = Chunked::new(&stream[..cut], &sizes);
        let result = read_frame::<ClientFrame>(&mut reader, &mut Vec::new());
        if cut == 0 {
            prop_assert!(matches!(result, Err(FrameError::Closed)), "{result:?}");
        } else {
            prop_assert!(
                matches!(&result, Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof),
                "{result:?}"
            );
        }
    }

    #[test]
    fn client_frames_round_trip_however_the_stream_is_read(
        frames in prop::collection::vec(client_frame(), 1..6),
        sizes in prop::collection::vec(0usize..16, 0..6),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            let bytes = encode(frame).expect("encodes");
            prop_assert_eq!(&decode::<ClientFrame>(&bytes[4..]).expect("decodes"), frame);
            stream.extend_from_slice(&bytes);
        }
        let mut reader = Chunked::new(&stream, &sizes);
        let mut buf = Vec::new();
        for frame in &frames {
            prop_assert_eq!(&read_frame::<ClientFrame>(&mut reader, &mut buf).expect("reads"), frame);
        }
        prop_assert!(matches!(
            read_frame::<ClientFrame>(&mut reader, &mut buf),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn a_frame_with_bytes_after_its_message_is_malformed(
        frame in client_frame(),
        extra in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut bytes = encode(&frame).expect("encodes");
        bytes.extend_from_slice(&extra);
        let len = u32::try_from(bytes.len() - 4).expect("small");
        bytes[..4].copy_from_slice(&len.to_be_bytes());
        let result = read_frame::<ClientFrame>(&mut &bytes[..], &mut Vec::new());
        prop_assert!(matches!(result, Err(FrameError::Malformed(_))), "{result:?}");
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let bytes = encode(&frame).expect("encodes");
        let mut reader = &bytes[..];
        prop_assert_eq!(read_frame::<ServerFrame>(&mut reader, &mut Vec::new()).expect("reads"), frame);
    }
}
