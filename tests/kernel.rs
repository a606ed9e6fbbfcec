//! `LinuxKernel` against the real kernel, each test in its own network
//! namespace, with `ip -j -d link show` as the witness.

mod common;

use std::time::{Duration, Instant};

use common::{TestNetns, assert_not_in_host, eventually, name, require_kernel, text};
use serde_json::Value;
use tap_pool::{Errno, KernelError, LinkInfo, Netns, TapSpec, TunKind};

// Ids with no passwd/group entry, so `ip` prints them as numbers.
const UID: u32 = 54321;
const GID: u32 = 54322;

fn info_data(link: &Value) -> &Value {
    &link["linkinfo"]["info_data"]
}

fn flags(link: &Value) -> Vec<String> {
    link["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(text)
        .collect()
}

#[test]
fn create_makes_a_persistent_configured_tap() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    ns.add_bridge("tpk-br0");
    let full = TapSpec {
        owner: Some(UID),
        group: Some(GID),
        vnet_hdr: true,
        multi_queue: false,
        mtu: Some(1400),
        bridge: Some(name("tpk-br0")),
        device_group: Some(42),
    };
    let plain = TapSpec {
        vnet_hdr: false,
        multi_queue: true,
        ..TapSpec::default()
    };
    let (full_time, plain_time) = ns.with_kernel(|k| {
        let start = Instant::now();
        k.create_tap(name("tpk-full"), &full)
            .expect("create tpk-full");
        let full_time = start.elapsed();
        let start = Instant::now();
        k.create_tap(name("tpk-plain"), &plain)
            .expect("create tpk-plain");
        (full_time, start.elapsed())
    });
    eprintln!("create+configure: with bridge {full_time:?}, plain {plain_time:?}");

    let link = ns.link("tpk-full").expect("tpk-full exists");
    assert_eq!(link["linkinfo"]["info_kind"], "tun");
    let data = info_data(&link);
    assert_eq!(data["type"], "tap");
    assert_eq!(data["persist"], true);
    assert_eq!(data["pi"], false);
    assert_eq!(data["vnet_hdr"], true);
    assert_eq!(data["multi_queue"], false);
    assert_eq!(text(&data["user"]), UID.to_string());
    assert_eq!(text(&data["group"]), GID.to_string());
    assert!(flags(&link).contains(&"UP".to_owned()), "{link}");
    assert_eq!(link["mtu"], 1400);
    assert_eq!(link["master"], "tpk-br0");
    assert_eq!(text(&link["group"]), "42");
    // sysfs, a second witness for the owner and group.
    assert_eq!(ns.sysfs("tpk-full", "owner"), UID.to_string());
    assert_eq!(ns.sysfs("tpk-full", "group"), GID.to_string());

    let link = ns.link("tpk-plain").expect("tpk-plain exists");
    let data = info_data(&link);
    assert_eq!(data["type"], "tap");
    assert_eq!(data["persist"], true);
    assert_eq!(data["vnet_hdr"], false);
    assert_eq!(data["multi_queue"], true);
    // No owner asked for: the process's euid, never "nobody".
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(ns.sysfs("tpk-plain", "owner"), euid.to_string());
    assert_eq!(ns.sysfs("tpk-plain", "group"), "-1");
    assert!(data.get("group").is_none(), "{link}");
    assert!(flags(&link).contains(&"UP".to_owned()), "{link}");
    assert!(link.get("master").is_none(), "{link}");
    assert_eq!(text(&link["group"]), "default");

    assert_not_in_host(&["tpk-br0", "tpk-full", "tpk-plain"]);
}

#[test]
fn factory_takes_a_namespace_path() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    ns.with_kernel_from(Netns::Path(ns.path().into()), |k| {
        k.create_tap(name("tpk-path"), &TapSpec::default())
            .expect("create tpk-path");
    });
    assert!(ns.link("tpk-path").is_some());
    assert_not_in_host(&["tpk-path"]);
}

/// What `ip` says about one device, in `LinkInfo`'s terms.
fn witness(ns: &TestNetns, link: &Value) -> LinkInfo {
    let data = info_data(link);
    let id = |v: &Value| {
        (!v.is_null()).then(|| match v {
            Value::Number(n) => n.as_u64().expect("id") as u32,
            // `ip` prints a resolvable id by name; only root resolves here.
            Value::String(s) if s == "root" => 0,
            other => panic!("unexpected id {other}"),
        })
    };
    let links = ns.links();
    let master = link["master"].as_str().map(|m| {
        links
            .iter()
            .find(|l| l["ifname"] == m)
            .expect("master exists")["ifindex"]
            .as_u64()
            .expect("ifindex") as u32
    });
    let flags = flags(link);
    LinkInfo {
        name: name(link["ifname"].as_str().expect("ifname")),
        index: link["ifindex"].as_u64().expect("ifindex") as u32,
        kind: match data["type"].as_str() {
            Some("tap") => TunKind::Tap,
            Some("tun") => TunKind::Tun,
            other => panic!("unexpected tun type {other:?}"),
        },
        persistent: data["persist"] == true,
        owner: id(&data["user"]),
        group: id(&data["group"]),
        master,
        mtu: link["mtu"].as_u64().expect("mtu") as u32,
        up: flags.contains(&"UP".to_owned()),
        in_use: flags.contains(&"LOWER_UP".to_owned()),
        device_group: match text(&link["group"]).as_str() {
            "default" => 0,
            n => n.parse().expect("numeric device group"),
        },
        mac: [0; 6], // STUB until the Linux backend reports it
    }
}

#[test]
fn list_taps_matches_ip() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    ns.add_bridge("tpk-br1");
    // Not ours, but tun devices all the same; and one device that is not.
    ns.ip(&["tuntap", "add", "dev", "tpk-tun", "mode", "tun"]);
    ns.ip(&["link", "add", "tpk-ifb", "type", "ifb"]);
    let spec = TapSpec {
        owner: Some(UID),
        group: Some(GID),
        mtu: Some(9000),
        bridge: Some(name("tpk-br1")),
        device_group: Some(7),
        ..TapSpec::default()
    };
    let (mut listed, list_time) = ns.with_kernel(|k| {
        k.create_tap(name("tpk-a"), &spec).expect("create tpk-a");
        k.create_tap(name("tpk-b"), &TapSpec::default())
            .expect("create tpk-b");
        let start = Instant::now();
        let listed = k.list_taps().expect("list");
        (listed, start.elapsed())
    });
    eprintln!("list_taps (3 tun devices, 6 links): {list_time:?}");
    listed.sort_by_key(|l| l.name);

    let mut seen: Vec<LinkInfo> = ns
        .links()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "tun")
        .map(|l| witness(&ns, l))
        .collect();
    seen.sort_by_key(|l| l.name);
    assert_eq!(listed, seen);
    let names: Vec<_> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["tpk-a", "tpk-b", "tpk-tun"]);
    let a = &listed[0];
    assert_eq!(
        (a.owner, a.group, a.mtu, a.device_group),
        (Some(UID), Some(GID), 9000, 7)
    );
    assert!(a.persistent && a.up && !a.in_use && a.kind == TunKind::Tap);
    assert_eq!(listed[2].kind, TunKind::Tun);

    // A VMM attaching makes it in use; letting go makes it idle again, and
    // the persistent tap stays.
    let in_use = |ns: &TestNetns| {
        ns.with_kernel(|k| {
            k.list_taps()
                .expect("list")
                .into_iter()
                .find(|l| l.name == "tpk-a")
                .expect("tpk-a listed")
                .in_use
        })
    };
    let attached = ns.attach("tpk-a", true);
    assert!(eventually(Duration::from_secs(5), || in_use(&ns)));
    assert!(flags(&ns.link("tpk-a").expect("tpk-a")).contains(&"LOWER_UP".to_owned()));
    drop(attached);
    assert!(eventually(Duration::from_secs(5), || !in_use(&ns)));
    assert!(ns.link("tpk-a").is_some());

    assert_not_in_host(&["tpk-a", "tpk-b", "tpk-tun", "tpk-ifb", "tpk-br1"]);
}

#[test]
fn delete_removes_the_device() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    let (delete_time, again) = ns.with_kernel(|k| {
        k.create_tap(name("tpk-del"), &TapSpec::default())
            .expect("create");
        let start = Instant::now();
        k.delete_link(name("tpk-del")).expect("delete");
        let delete_time = start.elapsed();
        (delete_time, k.delete_link(name("tpk-del")))
    });
    eprintln!("delete_link: {delete_time:?}");
    assert!(ns.link("tpk-del").is_none());
    assert_eq!(
        again,
        Err(KernelError::NoSuchDevice {
            name: name("tpk-del")
        })
    );
    assert_not_in_host(&["tpk-del"]);
}

#[test]
fn deleting_a_missing_device_is_no_such_device() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    let result = ns.with_kernel(|k| k.delete_link(name("tpk-none")));
    assert_eq!(
        result,
        Err(KernelError::NoSuchDevice {
            name: name("tpk-none")
        })
    );
}

#[test]
fn a_taken_name_is_exists_and_the_device_is_untouched() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    ns.ip(&["link", "add", "tpk-ifb2", "type", "ifb"]);
    let (tap, other, listed) = ns.with_kernel(|k| {
        let first = TapSpec {
            owner: Some(UID),
            mtu: Some(1400),
            ..TapSpec::default()
        };
        k.create_tap(name("tpk-dup"), &first).expect("create");
        let second = TapSpec {
            owner: Some(UID + 1),
            mtu: Some(9000),
            vnet_hdr: false,
            ..TapSpec::default()
        };
        (
            k.create_tap(name("tpk-dup"), &second),
            k.create_tap(name("tpk-ifb2"), &second),
            k.list_taps().expect("list"),
        )
    });
    assert_eq!(
        tap,
        Err(KernelError::Exists {
            name: name("tpk-dup")
        })
    );
    assert_eq!(
        other,
        Err(KernelError::Exists {
            name: name("tpk-ifb2")
        })
    );

    let link = ns.link("tpk-dup").expect("still there");
    assert_eq!(link["mtu"], 1400);
    assert_eq!(info_data(&link)["vnet_hdr"], true);
    assert_eq!(info_data(&link)["persist"], true);
    assert_eq!(text(&info_data(&link)["user"]), UID.to_string());
    assert_eq!(
        ns.link("tpk-ifb2").expect("ifb stays")["linkinfo"]["info_kind"],
        "ifb"
    );
    assert_eq!(listed.len(), 1);
    assert_not_in_host(&["tpk-dup", "tpk-ifb2"]);
}

#[test]
fn a_missing_bridge_leaves_no_tap() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    let spec = TapSpec {
        bridge: Some(name("tpk-nobr")),
        ..TapSpec::default()
    };
    let (result, listed) = ns.with_kernel(|k| {
        (
            k.create_tap(name("tpk-orphan"), &spec),
            k.list_taps().expect("list"),
        )
    });
    assert_eq!(
        result,
        Err(KernelError::BridgeMissing {
            name: name("tpk-orphan"),
            bridge: name("tpk-nobr")
        })
    );
    assert!(ns.link("tpk-orphan").is_none());
    assert!(listed.is_empty());
    assert_not_in_host(&["tpk-orphan"]);
}

#[test]
fn a_full_bridge_leaves_no_tap() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brf");
    // A bridge takes at most 1023 ports. (ifb: this kernel has no dummy driver.)
    let script: String = (0..1023)
        .map(|i| format!("link add d{i} type ifb\nlink set d{i} master tpk-brf\n"))
        .collect();
    ns.ip_batch(&script);
    let spec = TapSpec {
        bridge: Some(name("tpk-brf")),
        ..TapSpec::default()
    };
    let (result, listed) = ns.with_kernel(|k| {
        (
            k.create_tap(name("tpk-1024"), &spec),
            k.list_taps().expect("list"),
        )
    });
    assert_eq!(
        result,
        Err(KernelError::BridgeFull {
            name: name("tpk-1024"),
            bridge: name("tpk-brf")
        })
    );
    assert_eq!(result.unwrap_err().errno(), Some(Errno(libc::EXFULL)));
    assert!(ns.link("tpk-1024").is_none());
    assert!(listed.is_empty());
    assert_not_in_host(&["tpk-1024", "tpk-brf"]);
}

#[test]
fn a_refused_mtu_carries_the_kernels_ext_ack_and_leaves_no_tap() {
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    let (too_big, too_small, listed) = ns.with_kernel(|k| {
        let big = TapSpec {
            mtu: Some(70000),
            ..TapSpec::default()
        };
        let small = TapSpec {
            mtu: Some(10),
            ..TapSpec::default()
        };
        (
            k.create_tap(name("tpk-big"), &big),
            k.create_tap(name("tpk-small"), &small),
            k.list_taps().expect("list"),
        )
    });
    for (result, tap) in [(too_big, "tpk-big"), (too_small, "tpk-small")] {
        let err = result.expect_err("the kernel refuses the MTU");
        eprintln!("{err}");
        match &err {
            KernelError::Configure {
                name: n,
                errno,
                ext_ack,
            } => {
                assert_eq!(*n, name(tap));
                assert_eq!(*errno, Errno(libc::EINVAL));
                let text = ext_ack.as_deref().expect("the kernel explains");
                assert!(text.to_lowercase().contains("mtu"), "{text}");
            }
            other => panic!("expected Configure, got {other:?}"),
        }
        assert!(err.to_string().contains("kernel says"), "{err}");
        assert!(ns.link(tap).is_none());
    }
    assert!(listed.is_empty());
    assert_not_in_host(&["tpk-big", "tpk-small"]);
}

#[test]
fn a_handle_survives_failures_and_keeps_answering() {
    // Every failure above must leave the socket clean: run a mix of failing
    // and succeeding calls on one handle and check each answer.
    if !require_kernel() {
        return;
    }
    let ns = TestNetns::new();
    ns.with_kernel(|k| {
        for round in 0..20 {
            let tap = name(&format!("tpk-r{round}"));
            assert!(matches!(
                k.delete_link(tap),
                Err(KernelError::NoSuchDevice { .. })
            ));
            let bad = TapSpec {
                mtu: Some(70000),
                ..TapSpec::default()
            };
            assert!(matches!(
                k.create_tap(tap, &bad),
                Err(KernelError::Configure { .. })
            ));
            k.create_tap(tap, &TapSpec::default()).expect("create");
            let listed = k.list_taps().expect("list");
            assert_eq!(listed.len(), round + 1);
        }
    });
    assert_eq!(
        ns.links()
            .iter()
            .filter(|l| l["linkinfo"]["info_kind"] == "tun")
            .count(),
        20
    );
}
