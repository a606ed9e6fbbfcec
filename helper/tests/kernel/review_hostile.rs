//! A hostile review of the helper: what a compromised VMM, or an operator
//! moving devices by hand, can make of the ledger.
//!
//! - A VMM holds its tap's file and may turn persistence off and close it:
//!   the tap goes without the helper deleting it. The ledger must forget
//!   it, or its slot is lost to the peer (`max_taps`) and its index stays
//!   the peer's: a device that later takes that index (one moved in from
//!   another namespace keeps its index when it is free) would be the
//!   peer's to delete.
//! - The netlink sockets the helper hands over (`OpenNetlink`) read the
//!   peer's namespace, and lend nothing: the kernel checks the sender's
//!   capabilities for each change, so uid 65534 gets `EPERM` for every
//!   change it sends through them, and for the namespace behind them.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use tap_pool_testkit::{KernelTest, TestNetns, kernel_test};

use crate::child::{ROLE_ENV, SOCKET_ENV, TAP_ENV};
use crate::scene::{NOBODY, Peer, Scene, eventually};

pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(
            a_tap_its_vmm_removes_is_forgotten_and_a_device_moved_in_at_its_index_is_not_the_peers
        ),
        kernel_test!(the_netlink_sockets_the_helper_hands_over_change_nothing_for_their_holder),
        kernel_test!(a_create_of_a_name_that_exists_writes_no_intent_a_restart_could_settle),
    ]
}

/// One tap at most: a slot lost is seen at once.
const ONE_TAP: &str = r#"
socket_mode = 0o666
state_dir = "{state}"
[[peer]]
uids = [65534]
prefix = "tph-"
bridges = ["tph-br0"]
netns = "{netns}"
max_taps = 1
"#;

/// The VMM's part: as uid 65534 with no capabilities, on a file of
/// `/dev/net/tun` opened in the scene's namespace (its stdin: a jailed
/// VMM is handed one the same way), attaches to the tap named in
/// [`TAP_ENV`], turns its persistence off and closes it, as any process
/// of the tap's owner may. Answers `{"ok": null}` or `{"errno": n}`.
pub fn vmm() -> std::process::ExitCode {
    let name = std::env::var(TAP_ENV).expect("the tap's name");
    let answer = match unpersist(&name) {
        Ok(()) => json!({ "ok": null }),
        Err(e) => json!({ "errno": e.raw_os_error() }),
    };
    println!("{answer}");
    std::process::ExitCode::SUCCESS
}

fn unpersist(name: &str) -> std::io::Result<()> {
    let tun = libc::STDIN_FILENO;
    // SAFETY: `ifreq` is plain old data; all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
    // SAFETY: TUNSETIFF reads and writes the `ifreq` it is given, which
    // lives across the call.
    if unsafe { libc::ioctl(tun, libc::TUNSETIFF, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: TUNSETPERSIST takes its argument by value; no memory.
    if unsafe { libc::ioctl(tun, libc::TUNSETPERSIST, 0 as libc::c_ulong) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs [`vmm`] as uid 65534 on the tap `name` of the scene's namespace.
fn run_vmm(scene: &Scene, name: &str) -> Value {
    let netns = scene.ns.netns();
    let tun = std::thread::spawn(move || {
        tap_pool::linux::enter(&netns).expect("enter the namespace");
        std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("open /dev/net/tun")
    })
    .join()
    .expect("a file of /dev/net/tun");
    let out = Command::new(scene.dir.path().join("child"))
        .env(ROLE_ENV, "vmm")
        .env(SOCKET_ENV, scene.socket())
        .env(TAP_ENV, name)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::from(tun))
        .stderr(Stdio::inherit())
        .output()
        .expect("run the VMM");
    assert!(out.status.success(), "the VMM failed: {}", out.status);
    serde_json::from_slice(&out.stdout).expect("the VMM's answer")
}

/// A raw client as nobody, connected.
fn calls(scene: &Scene) -> Peer {
    let mut peer = scene.child(NOBODY, "calls", "");
    let hello = peer.read();
    assert_eq!(hello["connected"], true, "{hello}\n{}", scene.log());
    peer
}

fn index_of(ns: &TestNetns, name: &str) -> u64 {
    ns.link(name).expect("the device")["ifindex"]
        .as_u64()
        .expect("an index")
}

fn a_tap_its_vmm_removes_is_forgotten_and_a_device_moved_in_at_its_index_is_not_the_peers() {
    let scene = Scene::with_policy(ONE_TAP);
    let mut peer = calls(&scene);
    let spec = json!({ "vnet_hdr": true });
    let made = peer.ask(&json!({ "create": ["tph-0", spec] }).to_string());
    let index = made["ok"].as_u64().unwrap_or_else(|| panic!("{made}"));

    // The VMM lets its tap go: nobody deleted it through the helper.
    assert_eq!(run_vmm(&scene, "tph-0"), json!({ "ok": null }));
    assert!(
        scene.ns.link("tph-0").is_none(),
        "the tap went with its file"
    );

    // The peer's slot comes back: the helper saw the tap go.
    eventually(10, "a second tap within max_taps = 1", || {
        let made = peer.ask(&json!({ "create": ["tph-1", spec] }).to_string());
        made["ok"].is_u64()
    });

    // An operator moves a tap of its own in from another namespace, where
    // it has the index the VMM's tap had; a free index is kept.
    let other = TestNetns::new();
    let mut pad = 0;
    loop {
        let name = format!("pad{pad}");
        other.ip(&["link", "add", &name, "type", "bridge"]);
        if index_of(&other, &name) + 1 >= index {
            break;
        }
        pad += 1;
    }
    other.ip(&["tuntap", "add", "name", "op-tap", "mode", "tap"]);
    assert_eq!(index_of(&other, "op-tap"), index, "the operator's tap");
    other.ip(&["link", "set", "op-tap", "netns", &scene.ns.path()]);
    assert_eq!(index_of(&scene.ns, "op-tap"), index, "moved in, same index");

    // The peer names that index: not its tap.
    for call in [
        json!({ "delete": { "name": "tph-0", "index": index } }),
        json!({ "delete": { "name": "op-tap", "index": index } }),
        json!({ "set_group": [{ "name": "op-tap", "index": index }, 0] }),
    ] {
        let answer = peer.ask(&call.to_string());
        assert_eq!(
            answer["err"]["Refused"]["refusal"]["NotYours"]["index"],
            index,
            "{call}: {answer}\n{}",
            scene.log()
        );
    }
    assert!(
        scene.ns.link("op-tap").is_some(),
        "the operator's tap stays"
    );
    peer.finish();
}

/// The holder's part: as uid 65534, asks the helper for a listing socket
/// (by hand: hello, `OpenNetlink`, the socket off the answer) and sends
/// through it an `RTM_DELLINK` and an `RTM_SETLINK` (device group) of the
/// tap in [`TAP_ENV`], and asks the socket for its namespace
/// (`SIOCGSKNS`). Answers `{"listed": [...], "delete": ..., "set_group":
/// ..., "netns_errno": n}`.
pub fn holder() -> std::process::ExitCode {
    use std::io::IoSliceMut;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use tap_pool::helper::proto::{
        Call, ClientFrame, Request, ServerFrame, decode, read_frame, write_frame,
    };
    use tap_pool::{Device, Kernel, LinuxKernel, TapName};

    let name = TapName::new(&std::env::var(TAP_ENV).expect("the tap")).expect("a name");
    let socket = std::env::var(SOCKET_ENV).expect("the socket");
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let mut buf = Vec::new();
    write_frame(&mut stream, &ClientFrame::Hello { version: 1 }).expect("hello");
    let welcome: ServerFrame = read_frame(&mut stream, &mut buf).expect("welcome");
    assert!(
        matches!(welcome, ServerFrame::Welcome { .. }),
        "{welcome:?}"
    );
    let mut ask = |id: u64| {
        let request = ClientFrame::Request(Request {
            id,
            call: Call::OpenNetlink { watch: false },
        });
        write_frame(&mut stream, &request).expect("open_netlink");
        let mut bytes = vec![0u8; 4096];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let mut iov = [IoSliceMut::new(&mut bytes)];
        let msg = nix::sys::socket::recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .expect("recvmsg");
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().expect("cmsgs") {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: SCM_RIGHTS installed these descriptors in this
                // process; nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        let len = msg.bytes;
        let answer: ServerFrame = decode(&bytes[4..len]).expect("the answer");
        (answer, fds)
    };
    let (answer, fds) = ask(1);
    // A peer that asks again and again is refused after the second time:
    // sockets in flight in its queue would be counted against nobody.
    let (second, _) = ask(2);
    let (third, _) = ask(3);
    let asked_again = json!({
        "second": format!("{second:?}"),
        "third": match third {
            ServerFrame::Response(response) => serde_json::to_value(response.result.err()).unwrap_or(Value::Null),
            other => json!(format!("{other:?}")),
        },
    });
    assert!(matches!(answer, ServerFrame::Response(_)), "{answer:?}");
    let fd = fds.into_iter().next().expect("a socket");
    // SAFETY: SIOCGSKNS takes no argument memory; it returns a descriptor
    // or -1.
    let ns = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGSKNS) };
    let netns_errno = if ns < 0 {
        std::io::Error::last_os_error().raw_os_error()
    } else {
        None
    };
    let mut kernel = LinuxKernel::from_socket(fd);
    let taps = kernel.list_taps().expect("a listing");
    let listed: Vec<String> = taps.iter().map(|t| t.name.to_string()).collect();
    let index = taps.iter().find(|t| t.name == name).map_or(0, |t| t.index);
    let errno = |e: tap_pool::KernelError| serde_json::to_value(e).unwrap_or(Value::Null);
    let delete = kernel
        .delete_link(Device::new(name, index))
        .map_err(errno)
        .err();
    let set_group = kernel
        .set_device_group(Device::new(name, index), 4243)
        .map_err(errno)
        .err();
    println!(
        "{}",
        json!({ "listed": listed, "delete": delete, "set_group": set_group, "netns_errno": netns_errno, "asked_again": asked_again })
    );
    std::process::ExitCode::SUCCESS
}

fn the_netlink_sockets_the_helper_hands_over_change_nothing_for_their_holder() {
    let scene = Scene::new();
    let mut peer = calls(&scene);
    let made = peer.ask(&json!({ "create": ["tph-0", {}] }).to_string());
    assert!(made["ok"].is_u64(), "{made}");
    let out = Command::new(scene.dir.path().join("child"))
        .env(ROLE_ENV, "holder")
        .env(SOCKET_ENV, scene.socket())
        .env(TAP_ENV, "tph-0")
        .uid(NOBODY)
        .gid(NOBODY)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the holder");
    assert!(out.status.success(), "the holder failed: {}", out.status);
    let seen: Value = serde_json::from_slice(&out.stdout).expect("its answer");
    assert_eq!(seen["listed"], json!(["tph-0"]), "it reads: {seen}");
    assert_eq!(seen["delete"]["Delete"]["errno"], libc::EPERM, "{seen}");
    assert_eq!(
        seen["set_group"]["Configure"]["errno"],
        libc::EPERM,
        "{seen}"
    );
    assert_eq!(seen["netns_errno"], libc::EPERM, "{seen}");
    assert!(
        seen["asked_again"]["second"]
            .as_str()
            .is_some_and(|s| s.contains("Sockets(1)")),
        "{seen}"
    );
    assert_eq!(
        seen["asked_again"]["third"]["Refused"]["refusal"],
        json!({ "Sockets": { "max": 2 } }),
        "{seen}"
    );
    let tap = scene.ns.link("tph-0").expect("the tap stays");
    assert_eq!(tap["group"], "default", "{tap}");
    peer.finish();
}

/// A create of a name some device already has is answered `Exists` and
/// writes no intent to the ledger. An intent is settled at the helper's
/// next start by name, owner and persistence: had the helper died between
/// writing it and writing the create's failure, a root operator's tap
/// owned by the peer would have become the peer's to reset and delete.
fn a_create_of_a_name_that_exists_writes_no_intent_a_restart_could_settle() {
    let mut scene = Scene::new();
    scene.ns.ip(&[
        "tuntap", "add", "dev", "tph-7", "mode", "tap", "user", "nobody",
    ]);
    let mut peer = scene.calls(NOBODY);
    let answer = peer.ask(&json!({ "create": ["tph-7", {}] }).to_string());
    assert_eq!(
        answer["err"],
        json!({ "Exists": { "name": "tph-7" } }),
        "{answer}"
    );
    peer.finish();
    let ledger = std::fs::read_to_string(scene.state().join("ledger")).unwrap_or_default();
    assert!(!ledger.contains("tph-7"), "written down:\n{ledger}");
    // And after a restart the device is still not nobody's.
    scene.kill_helper();
    scene.start_helper();
    let mut peer = scene.calls(NOBODY);
    let answer = peer.ask(&json!({ "delete": { "name": "tph-7", "index": null } }).to_string());
    assert!(
        answer["err"]["Refused"]["refusal"]["NotYours"].is_object(),
        "{answer}"
    );
    peer.finish();
    assert!(scene.ns.link("tph-7").is_some());
}
