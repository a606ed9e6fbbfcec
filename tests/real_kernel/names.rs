//! Device names byte for byte, on the real kernel, each test in a network
//! namespace of its own: `TapName` takes exactly the names the kernel gives
//! a device, and a name that is not UTF-8 is read back as itself, never as
//! a lossy copy two devices would share. Devices are named with raw bytes
//! (`TUNSETIFF` through libc, `ip` with raw arguments), never through
//! `TapName`, and `ip` is the witness: `ip -j -d` where every name is
//! printable, `ip -o` (which prints names as raw bytes) for every name.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tap_pool::kernel::LinkEvent;
use tap_pool::{Device, KernelError, TapName, TapSpec};
use tap_pool_actors::{PoolConfig, Seed};
use tap_pool_testkit::pool::settle;
use tap_pool_testkit::{KernelTest, TestNetns, kernel_test, name};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(tapname_takes_exactly_the_names_the_kernel_gives_a_device),
        kernel_test!(names_a_lossy_copy_would_merge_are_listed_and_named_apart),
        kernel_test!(a_tap_renamed_to_bytes_that_are_not_utf8_is_renamed_to_exactly_them),
        kernel_test!(async seed_deletes_and_reports_both_of_two_names_a_lossy_copy_would_merge),
    ]
}

/// A name offered to the kernel, and its answer (see [`raw_create`]).
type Offer = (Vec<u8>, Result<Vec<u8>, i32>);

/// Asks the kernel, on the calling thread (which must be in the test's
/// namespace), for a new persistent tap named exactly `name`: a raw
/// `TUNSETIFF` with `IFF_TUN_EXCL` (a new device or none), then
/// `TUNSETPERSIST`. Answers the name the kernel gave the device (it writes
/// it back into the `ifreq`), or the errno it refused with.
fn raw_create(name: &[u8]) -> Result<Vec<u8>, i32> {
    assert!(name.len() < libc::IFNAMSIZ, "room for the NUL");
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `req` is,
    // exclusively borrowed for the call.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &raw mut req) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .expect("an errno"));
    }
    // SAFETY: TUNSETPERSIST takes its argument by value and touches no
    // memory of ours.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) };
    assert_eq!(rc, 0, "TUNSETPERSIST: {}", std::io::Error::last_os_error());
    Ok(req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect())
}

/// Runs `ip ARGS` in the namespace with arguments of raw bytes; its stdout,
/// as bytes. Panics if it fails.
fn raw_ip(ns: &TestNetns, args: &[&[u8]]) -> Vec<u8> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg("ip")
        .args(args.iter().map(|a| OsStr::from_bytes(a)))
        .output()
        .expect("run nsenter ip");
    assert!(
        out.status.success(),
        "ip {:?}: {}",
        args.iter()
            .map(|a| a.escape_ascii().to_string())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every device in the namespace but `lo`, by its name byte for byte, with
/// its index, as `ip -o link show` prints them: one line per device,
/// `INDEX: NAME: <FLAGS> ...`, the name as raw bytes (no device name holds
/// `:` or a newline).
fn witnessed(ns: &TestNetns) -> BTreeMap<Vec<u8>, u32> {
    let out = raw_ip(ns, &[b"-o", b"link", b"show"]);
    out.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let colon = |from: usize| {
                from + line[from..]
                    .iter()
                    .position(|&b| b == b':')
                    .unwrap_or_else(|| panic!("no ':' in {}", line.escape_ascii()))
            };
            let end_index = colon(0);
            let end_name = colon(end_index + 2);
            let index = std::str::from_utf8(&line[..end_index])
                .expect("digits")
                .parse()
                .expect("an index");
            (line[end_index + 2..end_name].to_vec(), index)
        })
        .filter(|(name, _)| name != b"lo")
        .collect()
}

/// The names of the tun devices `ip -j -d link show` prints, parsed
/// strictly: only while every name in the namespace is printable ASCII is
/// its output JSON (`ip` writes other bytes raw).
fn witnessed_json(ns: &TestNetns) -> BTreeSet<Vec<u8>> {
    let out = raw_ip(ns, &[b"-j", b"-d", b"link", b"show"]);
    let links: Vec<Value> = serde_json::from_slice(&out).expect("ip -j output is JSON");
    links
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "tun")
        .map(|l| l["ifname"].as_str().expect("ifname").as_bytes().to_vec())
        .collect()
}

/// A name of bytes, for brevity; panics on an invalid one.
fn bytes(b: &[u8]) -> TapName {
    TapName::from_bytes(b).expect("a valid name")
}

/// Promise (src/name.rs): a `TapName` is exactly a name the kernel gives a
/// device (`dev_valid_name`), byte for byte, and no `%`.
///
/// Every byte value, alone and between two letters (`[b]`, `[a, b, z]`),
/// and a few names of UTF-8 text (`vm-à`, whose C3 A0 the kernel refuses),
/// is offered to the kernel as a new tap's name with a raw `TUNSETIFF`; the
/// kernel accepts a name when it makes a device of exactly those bytes (a
/// NUL cuts the name short, and an empty name becomes `tap0`).
/// `TapName::from_bytes` must accept exactly those, and
/// `LinuxKernel::list_taps` must read each back as itself.
///
/// Broke: `TapName` checked chars (`char::is_whitespace`), so it accepted
/// `vm-à`, which the kernel refuses (its `isspace` counts 0xa0), refused
/// `t\u{2003}x`, which the kernel takes, and refused every name that is
/// not UTF-8; and `list_taps` read names lossily.
fn tapname_takes_exactly_the_names_the_kernel_gives_a_device() {
    let ns = TestNetns::new();
    let mut candidates: Vec<Vec<u8>> = (0..=u8::MAX)
        .flat_map(|b| [vec![b], vec![b'a', b, b'z']])
        .collect();
    // And text whose UTF-8 holds 0xa0 (`à` is C3 A0) or is white space to
    // Unicode but not to the kernel (U+2003 is E2 80 83).
    for text in ["vm-\u{e0}", "a\u{a0}z", "t\u{2003}x", "t\u{3000}x"] {
        candidates.push(text.as_bytes().to_vec());
    }
    // Printable names first, while `ip -j` can print them all; names with a
    // NUL last, so the shorter name the kernel reads ("a" of "a\0z") never
    // takes the place of a name offered as itself.
    let printable = |n: &[u8]| n.iter().all(|b| (0x20..=0x7e).contains(b));
    candidates.sort_by_key(|n| (!printable(n), n.contains(&0)));
    let split = candidates.iter().filter(|n| printable(n)).count();
    let (first, rest) = candidates.split_at(split);

    let create = |names: &[Vec<u8>]| {
        ns.with_kernel(|_| names.iter().map(|n| (n.clone(), raw_create(n))).collect())
    };
    let mut made: Vec<Offer> = create(first);
    let printed = witnessed_json(&ns);
    made.extend(create(rest));
    let (listed, seen) = (ns.with_kernel(|k| k.list_taps()), witnessed(&ns));
    let listed: Vec<TapName> = listed
        .expect("list_taps")
        .into_iter()
        .map(|l| l.name)
        .collect();

    // The witnesses agree with what TUNSETIFF answered.
    let given: BTreeSet<Vec<u8>> = made.iter().filter_map(|(_, r)| r.clone().ok()).collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), given);
    let given_printable: BTreeSet<Vec<u8>> = made[..split]
        .iter()
        .filter_map(|(_, r)| r.clone().ok())
        .collect();
    assert_eq!(printed, given_printable, "ip -j -d");
    assert!(given.contains(&b"tap0"[..]), "the empty name becomes tap0");
    assert!(given.len() > 400, "most names are devices: {}", given.len());

    // TapName takes a name exactly when the kernel made a device of it.
    let wrong: Vec<String> = made
        .iter()
        .filter_map(|(offered, answer)| {
            let kernel = answer.as_deref() == Ok(offered.as_slice());
            assert_eq!(kernel, seen.contains_key(offered));
            let ours = TapName::from_bytes(offered);
            (ours.is_ok() != kernel).then(|| {
                let answer = match answer {
                    Ok(given) => format!("made {}", given.escape_ascii()),
                    Err(errno) => format!("refused, errno {errno}"),
                };
                format!(
                    "{}: kernel {answer}, TapName {ours:?}",
                    offered.escape_ascii()
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "TapName and the kernel disagree: {wrong:#?}"
    );

    // Every device is listed, each under its own name, byte for byte.
    let listed_bytes: Vec<Vec<u8>> = listed.iter().map(|n| n.as_bytes().to_vec()).collect();
    assert_eq!(listed_bytes.len(), given.len(), "one name per device");
    assert_eq!(
        listed_bytes.iter().cloned().collect::<BTreeSet<_>>(),
        given,
        "list_taps"
    );
}

/// Promise (src/linux/link/parse.rs `exact_name`): names are read "never
/// [as] a lossy copy, which could name another device"; and a name that
/// is not UTF-8 is one the pool can create, find and delete by.
///
/// Broke: `parse_tun_link` read `IFLA_IFNAME` with `from_utf8_lossy`, so
/// `tap\xff` and `tap\xfe` were both listed as `tap\u{fffd}`.
fn names_a_lossy_copy_would_merge_are_listed_and_named_apart() {
    let ns = TestNetns::new();
    let (ff, fe, fd) = (bytes(b"tap\xff"), bytes(b"tap\xfe"), bytes(b"tap\xfd"));
    let mut listed = ns.with_kernel(|k| {
        for raw in [ff, fe] {
            assert_eq!(raw_create(raw.as_bytes()), Ok(raw.as_bytes().to_vec()));
        }
        // Made by the pool's own create (TUNSETIFF, an ifindex by name).
        k.create_tap(fd, &TapSpec::default())
            .expect("create tap\\xfd");
        k.list_taps().expect("list")
    });
    listed.sort_by_key(|l| l.name);
    let seen = witnessed(&ns);
    assert_eq!(
        listed.iter().map(|l| (l.name, l.index)).collect::<Vec<_>>(),
        [fd, fe, ff]
            .iter()
            .map(|n| (*n, seen[n.as_bytes()]))
            .collect::<Vec<_>>()
    );
    // Deleted by name: IFLA_IFNAME holds the bytes.
    let (deleted, left) = ns.with_kernel(|k| {
        (
            k.delete_link(Device::from(fe)),
            k.list_taps().expect("list"),
        )
    });
    deleted.expect("delete tap\\xfe by name");
    let mut left: Vec<TapName> = left.into_iter().map(|l| l.name).collect();
    left.sort();
    assert_eq!(left, [fd, ff]);
    assert_eq!(
        witnessed(&ns).into_keys().collect::<Vec<_>>(),
        [b"tap\xfd".to_vec(), b"tap\xff".to_vec()]
    );
}

/// Promise (src/kernel.rs, `KernelError::Renamed` and `LinkEvent::Renamed`):
/// the Linux kernel always gives the name a tap has now; every name a
/// device can have is a `TapName`.
///
/// Broke: a tap renamed to bytes that are not UTF-8 was `Renamed` with no
/// name (`now: None`, `to: None`), as if the kernel had not said.
fn a_tap_renamed_to_bytes_that_are_not_utf8_is_renamed_to_exactly_them() {
    let ns = TestNetns::new();
    let events = ns.watch();
    let (old, new) = (name("tpn-a"), bytes(b"tpn-\xff\x80"));
    let spec = TapSpec::default();
    let created = ns.with_kernel(|k| k.create_tap(old, &spec).expect("create"));
    raw_ip(&ns, &[b"link", b"set", b"tpn-a", b"name", new.as_bytes()]);
    let device = Device::new(old, created.index);
    let (reset, group) = ns.with_kernel(|k| {
        (
            k.reset_tap(device, &spec, created.mac),
            k.set_device_group(device, 9),
        )
    });
    let renamed = Err(KernelError::Renamed {
        name: old,
        index: created.index,
        now: Some(new),
    });
    assert_eq!(reset, renamed);
    assert_eq!(group, renamed);
    let seen = loop {
        match events.recv_timeout(Duration::from_secs(5)) {
            Ok(Some(event @ LinkEvent::Renamed { .. })) => break event,
            Ok(_) => {}
            Err(e) => panic!("no rename seen: {e}"),
        }
    };
    assert_eq!(
        seen,
        LinkEvent::Renamed {
            index: created.index,
            from: old,
            to: Some(new),
        }
    );
    ns.with_kernel(|k| k.delete_link(device))
        .expect("deleted by index");
    assert!(witnessed(&ns).is_empty());
}

/// Promise (`SeedReport::deleted`): Seed deletes the pool's fallback taps
/// (in its device group) that nobody holds, and reports each.
///
/// Broke: both taps were listed as `tap\u{fffd}`, so Seed saw one tap
/// where there were two.
async fn seed_deletes_and_reports_both_of_two_names_a_lossy_copy_would_merge() {
    const GROUP: &[u8] = b"4243";
    let ns = TestNetns::new();
    let (ff, fe) = (bytes(b"tap\xff"), bytes(b"tap\xfe"));
    ns.with_kernel(|_| {
        for raw in [ff, fe] {
            assert_eq!(raw_create(raw.as_bytes()), Ok(raw.as_bytes().to_vec()));
        }
    });
    for raw in [ff, fe] {
        raw_ip(
            &ns,
            &[b"link", b"set", b"dev", raw.as_bytes(), b"group", GROUP],
        );
    }
    let pool = ns.start_pool({
        let mut c = PoolConfig::default();
        c.size = 0;
        c.tap.device_group = Some(4243);
        c
    });
    let report = pool.send(Seed { used: vec![] }).await.unwrap().unwrap();
    let mut deleted = report.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, [fe, ff], "{report:?}");
    let s = settle(&pool).await;
    assert_eq!(s.deleted, 2, "{s:?}");
    assert!(witnessed(&ns).is_empty(), "{:?}", witnessed(&ns));
}
