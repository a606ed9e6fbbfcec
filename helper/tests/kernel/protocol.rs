//! A client that breaks the protocol loses its own connection and nothing
//! else: raw bytes from this process (uid 0, which [`policy_peers`] names)
//! over a `UnixStream`, while a pool (nobody) goes on acquiring and
//! releasing through the same helper, which stays up.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use tap_pool::helper::proto::{
    Call, ClientFrame, Closing, FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION, Request, ServerFrame,
    encode, read_frame,
};
use tap_pool::{Device, Refusal, TapName};
use tap_pool_testkit::{KernelTest, kernel_test};

use crate::scene::{GROUP, Peer, Scene, policy_peers};

pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(a_client_that_breaks_the_protocol_loses_only_its_own_connection),
        kernel_test!(a_client_that_never_says_hello_is_dropped_and_no_one_else_is),
    ]
}

/// How long a raw client waits for the helper before calling it a hang.
const PATIENCE: Duration = Duration::from_secs(20);

/// How a connection ended, from the client's side.
#[derive(Debug)]
enum End {
    Closing(Closing),
    Eof,
}

fn connect(scene: &Scene) -> UnixStream {
    let stream = UnixStream::connect(scene.socket()).expect("connect to the helper");
    stream.set_read_timeout(Some(PATIENCE)).expect("a timeout");
    stream
}

fn hello(stream: &mut UnixStream, version: u32) {
    let frame = encode(&ClientFrame::Hello { version }).expect("encode");
    stream.write_all(&frame).expect("write the hello");
}

fn welcomed(stream: &mut UnixStream) {
    hello(stream, PROTOCOL_VERSION);
    let welcome: ServerFrame = read_frame(stream, &mut Vec::new()).expect("a welcome");
    assert!(
        matches!(welcome, ServerFrame::Welcome { uid: 0, .. }),
        "{welcome:?}"
    );
}

/// Reads what the helper says until the connection ends: its `Closing`
/// (and then EOF), or EOF. A read timeout is a hang: the test fails.
fn end(stream: &mut UnixStream, what: &str) -> End {
    let mut buf = Vec::new();
    match read_frame::<ServerFrame>(stream, &mut buf) {
        Ok(ServerFrame::Closing(closing)) => {
            let mut rest = Vec::new();
            let read = stream.read_to_end(&mut rest);
            assert!(
                read.is_ok() && rest.is_empty(),
                "{what}: the connection goes on after a Closing: {read:?} {rest:?}"
            );
            End::Closing(closing)
        }
        Ok(frame) => panic!("{what}: the helper answered {frame:?}"),
        Err(FrameError::Closed) => End::Eof,
        Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => End::Eof,
        Err(e) => panic!("{what}: the helper did not end the connection: {e:?}"),
    }
}

/// The pool acquires and releases through the helper, which still runs.
fn still_serving(scene: &mut Scene, pool: &mut Peer, after: &str) {
    assert!(
        scene.helper_alive(),
        "the helper died after {after}\n{}",
        scene.log()
    );
    let lease = pool.ask("acquire vm-00000000000a");
    let token = lease["ok"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no lease after {after}: {lease}\n{}", scene.log()))
        .to_owned();
    let released = pool.ask(&format!("release {token}"));
    assert!(released["ok"].is_string(), "after {after}: {released}");
    let settled = pool.ask("settle");
    assert_eq!(settled["ok"]["idle"], 3, "after {after}: {settled}");
}

fn protocol_closing(end: &End) -> bool {
    matches!(end, End::Closing(Closing::Protocol(_)))
}

fn a_client_that_breaks_the_protocol_loses_only_its_own_connection() {
    let mut scene = Scene::with_policy(&policy_peers(64));
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3);
    still_serving(&mut scene, &mut pool, "the start");

    // A raw client that keeps to the protocol is answered (the control).
    let mut good = connect(&scene);
    welcomed(&mut good);
    let lo = Device::new(TapName::new("lo").expect("a name"), 1);
    let request = ClientFrame::Request(Request {
        id: 7,
        call: Call::Delete { device: lo },
    });
    good.write_all(&encode(&request).expect("encode"))
        .expect("write");
    let answer: ServerFrame = read_frame(&mut good, &mut Vec::new()).expect("an answer");
    match answer {
        ServerFrame::Response(response) => {
            assert_eq!(response.id, 7);
            assert!(
                matches!(
                    response.result,
                    Err(tap_pool::KernelError::Refused {
                        refusal: Refusal::NotYours { .. },
                        ..
                    })
                ),
                "{:?}",
                response.result
            );
        }
        other => panic!("{other:?}"),
    }

    let over = u32::try_from(MAX_FRAME_LEN + 1).expect("fits");
    let request = encode(&ClientFrame::Request(Request {
        id: 1,
        call: Call::DeleteGroup { group: GROUP },
    }))
    .expect("encode");
    type Case = (&'static str, bool, Vec<u8>, fn(&End) -> bool);
    let cases: Vec<Case> = vec![
        (
            "a frame that does not decode, first",
            false,
            vec![0, 0, 0, 3, 0xff, 0xff, 0xff],
            protocol_closing,
        ),
        (
            "a frame that does not decode, after the hello",
            true,
            vec![0, 0, 0, 3, 0xff, 0xff, 0xff],
            protocol_closing,
        ),
        (
            // Nothing follows the prefix, and the client keeps its side
            // open: a helper that waited for the frame would hang here.
            "a length over MAX_FRAME_LEN, first",
            false,
            over.to_be_bytes().to_vec(),
            protocol_closing,
        ),
        (
            "a length over MAX_FRAME_LEN, after the hello",
            true,
            over.to_be_bytes().to_vec(),
            protocol_closing,
        ),
        (
            "a length of u32::MAX",
            true,
            u32::MAX.to_be_bytes().to_vec(),
            protocol_closing,
        ),
        (
            "an unknown version in the hello",
            false,
            encode(&ClientFrame::Hello { version: 99 }).expect("encode"),
            |end| {
                matches!(
                    end,
                    End::Closing(Closing::Refused(Refusal::Version {
                        asked: 99,
                        supported: PROTOCOL_VERSION
                    }))
                )
            },
        ),
        (
            "a request before the hello",
            false,
            request,
            protocol_closing,
        ),
        (
            "a second hello",
            true,
            encode(&ClientFrame::Hello {
                version: PROTOCOL_VERSION,
            })
            .expect("encode"),
            protocol_closing,
        ),
    ];
    for (what, after_hello, bytes, expected) in cases {
        let mut stream = connect(&scene);
        if after_hello {
            welcomed(&mut stream);
        }
        stream.write_all(&bytes).expect("write");
        let ended = end(&mut stream, what);
        assert!(expected(&ended), "{what}: {ended:?}\n{}", scene.log());
        still_serving(&mut scene, &mut pool, what);
    }
    // Frames cut short, then EOF: the connection ends, nothing else does.
    for (what, after_hello, bytes) in [
        ("a length prefix cut short", false, vec![0, 0]),
        ("a frame cut short", false, vec![0, 0, 0, 9, 0, 1]),
        (
            "a frame cut short, after the hello",
            true,
            vec![0, 0, 0, 9, 0],
        ),
    ] {
        let mut stream = connect(&scene);
        if after_hello {
            welcomed(&mut stream);
        }
        stream.write_all(&bytes).expect("write");
        stream.shutdown(Shutdown::Write).expect("shutdown");
        let ended = end(&mut stream, what);
        assert!(
            matches!(ended, End::Eof | End::Closing(Closing::Protocol(_))),
            "{what}: {ended:?}"
        );
        still_serving(&mut scene, &mut pool, what);
    }
    // The well-behaved raw connection was never disturbed.
    welcomed_again(&mut good);
    assert_eq!(scene.taps().len(), 3, "the pool's taps: {:?}", scene.taps());
    let drained = pool.ask("drain");
    assert!(drained["ok"].is_object(), "{drained}");
    assert!(scene.taps().is_empty(), "{:?}", scene.taps());
    pool.finish();
}

/// `stream`, welcomed earlier, is still served.
fn welcomed_again(stream: &mut UnixStream) {
    let request = ClientFrame::Request(Request {
        id: 8,
        call: Call::DeleteGroup { group: 0 },
    });
    stream
        .write_all(&encode(&request).expect("encode"))
        .expect("write");
    let answer: ServerFrame = read_frame(stream, &mut Vec::new()).expect("an answer");
    assert!(
        matches!(&answer, ServerFrame::Response(r) if r.id == 8 && r.result.is_err()),
        "{answer:?}"
    );
}

fn a_client_that_never_says_hello_is_dropped_and_no_one_else_is() {
    let mut scene = Scene::with_policy(&policy_peers(64));
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3);
    let mut silent = connect(&scene);
    let mut welcomed_one = connect(&scene);
    welcomed(&mut welcomed_one);
    // While the silent client waits, the pool is served.
    still_serving(&mut scene, &mut pool, "a silent client connected");
    // The helper drops it after its handshake timeout (seconds, well
    // within the client's PATIENCE, after which `end` fails): it reads EOF.
    let ended = end(&mut silent, "a silent client");
    assert!(matches!(ended, End::Eof), "{ended:?}");
    // A client past its handshake may be quiet as long as it likes.
    welcomed_again(&mut welcomed_one);
    still_serving(&mut scene, &mut pool, "a silent client dropped");
    pool.ask("drain");
    assert!(scene.taps().is_empty(), "{:?}", scene.taps());
    pool.finish();
}
