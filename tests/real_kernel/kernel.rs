//! `LinuxKernel` against the real kernel, each test in its own network
//! namespace, with `ip -j -d link show` as the witness.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tap_pool::kernel::{CreatedTap, LinkEvent};
use tap_pool::{Device, Errno, KernelError, LinkInfo, Netns, Residue, TapSpec, TunKind};
use tap_pool_testkit::{
    KernelTest, TestNetns, assert_not_in_host, eui64_link_local, eventually, flags, kernel_test,
    link_mac, name, text,
};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(create_makes_a_persistent_configured_tap),
        kernel_test!(factory_takes_a_namespace_path),
        kernel_test!(list_taps_matches_ip),
        kernel_test!(delete_removes_the_device),
        kernel_test!(deleting_a_missing_device_is_no_such_device),
        kernel_test!(a_taken_name_is_exists_and_the_device_is_untouched),
        kernel_test!(a_missing_bridge_leaves_no_tap),
        kernel_test!(a_full_bridge_leaves_no_tap),
        kernel_test!(a_refused_mtu_carries_the_kernels_ext_ack_and_leaves_no_tap),
        kernel_test!(a_handle_survives_failures_and_keeps_answering),
        kernel_test!(create_returns_the_index_and_mac_ip_shows),
        kernel_test!(reset_puts_back_what_a_tenant_changed),
        kernel_test!(reset_refusals_name_the_cause),
        kernel_test!(delete_group_removes_exactly_the_group),
        kernel_test!(one_group_delete_against_single_deletes),
        kernel_test!(watcher_reports_removals_in_its_namespace_only),
        kernel_test!(watcher_sees_every_tap_of_a_group_delete),
        kernel_test!(a_tap_held_open_counts_as_in_use_even_when_down),
        kernel_test!(a_renamed_tap_is_refused_by_reset_and_group_change_and_deleted_by_index),
        kernel_test!(a_device_under_a_taps_old_name_is_never_touched),
        kernel_test!(lo_a_bridge_and_a_tun_device_are_not_taps),
        kernel_test!(watcher_reports_renames_of_taps_made_after_it_opened),
        kernel_test!(watcher_reports_renames_of_devices_that_existed_before_it_opened),
        kernel_test!(a_multi_queue_tap_with_a_queue_still_attached_is_a_residue),
        kernel_test!(a_held_tap_keeps_every_vmm_out_until_it_is_deleted),
        kernel_test!(links_lists_every_device_with_its_kind_master_and_group),
    ]
}

// Ids with no passwd/group entry, so `ip` prints them as numbers.
const UID: u32 = 54321;
const GID: u32 = 54322;

fn info_data(link: &Value) -> &Value {
    &link["linkinfo"]["info_data"]
}

fn create_makes_a_persistent_configured_tap() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-br0");
    let mut full = TapSpec::default();
    full.owner = Some(UID);
    full.group = Some(GID);
    full.vnet_hdr = true;
    full.multi_queue = false;
    full.mtu = Some(1400);
    full.bridge = Some(name("tpk-br0"));
    full.device_group = Some(42);
    let plain = {
        let mut t = TapSpec::default();
        t.vnet_hdr = false;
        t.multi_queue = true;
        t
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

fn factory_takes_a_namespace_path() {
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
        // A tun device has no Ethernet address: the kernel sends none.
        mac: link["address"]
            .as_str()
            .map_or([0; 6], tap_pool_testkit::parse_mac),
        vnet_hdr: data["vnet_hdr"] == true,
        multi_queue: data["multi_queue"] == true,
        queues: data["numqueues"]
            .as_u64()
            .map(|n| (n + data["numdisabled"].as_u64().unwrap_or(0)) as u32),
        link_type: match link["link_type"].as_str() {
            Some("ether") => libc::ARPHRD_ETHER,
            Some("none") => libc::ARPHRD_NONE,
            other => panic!("unexpected link type {other:?}"),
        },
    }
}

fn list_taps_matches_ip() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-br1");
    // Not ours, but tun devices all the same; and one device that is not.
    ns.ip(&["tuntap", "add", "dev", "tpk-tun", "mode", "tun"]);
    ns.ip(&["link", "add", "tpk-ifb", "type", "ifb"]);
    let spec = {
        let mut t = TapSpec::default();
        t.owner = Some(UID);
        t.group = Some(GID);
        t.mtu = Some(9000);
        t.bridge = Some(name("tpk-br1"));
        t.device_group = Some(7);
        t
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
    let names: Vec<_> = listed.iter().map(|l| l.name.to_str().unwrap()).collect();
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

fn delete_removes_the_device() {
    let ns = TestNetns::new();
    let (delete_time, again) = ns.with_kernel(|k| {
        k.create_tap(name("tpk-del"), &TapSpec::default())
            .expect("create");
        let start = Instant::now();
        k.delete_link(name("tpk-del").into()).expect("delete");
        let delete_time = start.elapsed();
        (delete_time, k.delete_link(name("tpk-del").into()))
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

fn deleting_a_missing_device_is_no_such_device() {
    let ns = TestNetns::new();
    let result = ns.with_kernel(|k| k.delete_link(name("tpk-none").into()));
    assert_eq!(
        result,
        Err(KernelError::NoSuchDevice {
            name: name("tpk-none")
        })
    );
}

fn a_taken_name_is_exists_and_the_device_is_untouched() {
    let ns = TestNetns::new();
    ns.ip(&["link", "add", "tpk-ifb2", "type", "ifb"]);
    let (tap, other, listed) = ns.with_kernel(|k| {
        let first = {
            let mut t = TapSpec::default();
            t.owner = Some(UID);
            t.mtu = Some(1400);
            t
        };
        k.create_tap(name("tpk-dup"), &first).expect("create");
        let second = {
            let mut t = TapSpec::default();
            t.owner = Some(UID + 1);
            t.mtu = Some(9000);
            t.vnet_hdr = false;
            t
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

fn a_missing_bridge_leaves_no_tap() {
    let ns = TestNetns::new();
    let spec = {
        let mut t = TapSpec::default();
        t.bridge = Some(name("tpk-nobr"));
        t
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

fn a_full_bridge_leaves_no_tap() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brf");
    // A bridge takes at most 1023 ports. (ifb: this kernel has no dummy driver.)
    let script: String = (0..1023)
        .map(|i| format!("link add d{i} type ifb\nlink set d{i} master tpk-brf\n"))
        .collect();
    ns.ip_batch(&script);
    let spec = {
        let mut t = TapSpec::default();
        t.bridge = Some(name("tpk-brf"));
        t
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

fn a_refused_mtu_carries_the_kernels_ext_ack_and_leaves_no_tap() {
    let ns = TestNetns::new();
    let (too_big, too_small, listed) = ns.with_kernel(|k| {
        let big = {
            let mut t = TapSpec::default();
            t.mtu = Some(70000);
            t
        };
        let small = {
            let mut t = TapSpec::default();
            t.mtu = Some(10);
            t
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

fn a_handle_survives_failures_and_keeps_answering() {
    // Every failure above must leave the socket clean: run a mix of failing
    // and succeeding calls on one handle and check each answer.
    let ns = TestNetns::new();
    ns.with_kernel(|k| {
        for round in 0..20 {
            let tap = name(&format!("tpk-r{round}"));
            assert!(matches!(
                k.delete_link(tap.into()),
                Err(KernelError::NoSuchDevice { .. })
            ));
            let bad = {
                let mut t = TapSpec::default();
                t.mtu = Some(70000);
                t
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

fn create_returns_the_index_and_mac_ip_shows() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brc");
    let spec = {
        let mut t = TapSpec::default();
        t.mtu = Some(1400);
        t.bridge = Some(name("tpk-brc"));
        t.device_group = Some(3);
        t
    };
    let (created, listed, times) = ns.with_kernel(|k| {
        let mut created = Vec::new();
        let mut times = Vec::new();
        for (i, spec) in [spec, TapSpec::default()]
            .iter()
            .cycle()
            .take(20)
            .enumerate()
        {
            let start = Instant::now();
            let tap = k
                .create_tap(name(&format!("tpk-c{i}")), spec)
                .expect("create");
            times.push(start.elapsed());
            created.push(tap);
        }
        (created, k.list_taps().expect("list"), times)
    });
    let mut sorted = times.clone();
    sorted.sort();
    eprintln!(
        "create_tap x20 (half with bridge+mtu+group): median {:?}, max {:?}",
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    for (i, tap) in created.iter().enumerate() {
        let dev = format!("tpk-c{i}");
        let link = ns.link(&dev).expect("created");
        let seen = CreatedTap {
            index: link["ifindex"].as_u64().expect("ifindex") as u32,
            mac: link_mac(&link),
        };
        assert_eq!(*tap, seen, "{dev}");
        let info = listed
            .iter()
            .find(|l| l.name == dev.as_str())
            .expect("listed");
        assert_eq!((info.index, info.mac), (tap.index, tap.mac));
        // Configured with its carrier off: no IPv6 autoconfiguration ran.
        assert_eq!(ns.addresses(&dev), vec![], "{dev}");
    }
    let link = ns.link("tpk-c0").expect("created");
    assert_eq!(link["master"], "tpk-brc");
    assert_eq!(link["mtu"], 1400);
    assert_eq!(info_data(&link)["persist"], true);
    assert!(flags(&link).contains(&"UP".to_owned()), "{link}");
}

/// `(family, local, scope)` of every address on `dev` that a reset must
/// have removed: all but the link-local one the kernel derives from `mac`.
fn tenant_addresses(ns: &TestNetns, dev: &str, mac: [u8; 6]) -> Vec<(String, String, String)> {
    let kernels = eui64_link_local(mac);
    ns.addresses(dev)
        .into_iter()
        .filter(|(family, local, _)| !(family == "inet6" && *local == kernels))
        .collect()
}

fn assert_pooled(
    ns: &TestNetns,
    dev: &str,
    mac: [u8; 6],
    mtu: u64,
    master: Option<&str>,
    group: &str,
) {
    let link = ns.link(dev).expect("still there");
    assert_eq!(link["mtu"], mtu, "{link}");
    assert_eq!(link["master"].as_str(), master, "{link}");
    assert_eq!(text(&link["group"]), group, "{link}");
    assert!(flags(&link).contains(&"UP".to_owned()), "{link}");
    assert_eq!(link_mac(&link), mac, "{link}");
    assert_eq!(info_data(&link)["persist"], true);
    assert_eq!(tenant_addresses(ns, dev, mac), vec![], "{dev}");
}

fn reset_puts_back_what_a_tenant_changed() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-br0");
    ns.add_bridge("tpk-br1");
    let spec = {
        let mut t = TapSpec::default();
        t.mtu = Some(1400);
        t.bridge = Some(name("tpk-br0"));
        t.device_group = Some(7);
        t
    };
    let tap = "tpk-rst";
    let created = ns.with_kernel(|k| k.create_tap(name(tap), &spec).expect("create"));

    // Tenant 1 attaches (carrier on) and changes everything, staying up.
    let vmm = ns.attach(tap, true);
    ns.ip_batch(&format!(
        "link set {tap} address 02:11:22:33:44:55\n\
         link set {tap} mtu 9000 master tpk-br1 group 99\n\
         address add 10.9.8.7/24 dev {tap}\n\
         address add 10.9.8.8/24 dev {tap}\n\
         address add 2001:db8::7/64 dev {tap} nodad\n\
         address add fe80::bad/64 dev {tap} nodad\n"
    ));
    let before = ns.addresses(tap);
    assert!(before.len() >= 5, "{before:?}");
    // Reset while the VMM still holds it: refused, since whoever holds
    // the file would see the next tenant's traffic; nothing is changed.
    let refused = ns.with_kernel(|k| k.reset_tap(name(tap).into(), &spec, created.mac));
    assert!(
        matches!(
            refused,
            Err(KernelError::Residue {
                residue: Residue::Attached,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(ns.addresses(tap), before, "a refused reset changes nothing");
    drop(vmm);
    // Let go: now it resets. The kernel may add back the link-local
    // address of the restored MAC, and nothing else.
    let time = ns.with_kernel(|k| {
        let start = Instant::now();
        k.reset_tap(name(tap).into(), &spec, created.mac)
            .expect("reset");
        start.elapsed()
    });
    eprintln!("reset_tap (6 addresses): {time:?}; before: {before:?}");
    assert_pooled(&ns, tap, created.mac, 1400, Some("tpk-br0"), "7");

    // Tenant 2 lets go and leaves it down, detached, with an address.
    ns.ip_batch(&format!(
        "link set {tap} nomaster\n\
         link set {tap} down mtu 9000 address 02:aa:bb:cc:dd:ee\n\
         address add 10.1.1.1/16 dev {tap}\n"
    ));
    let time = ns.with_kernel(|k| {
        let start = Instant::now();
        k.reset_tap(name(tap).into(), &spec, created.mac)
            .expect("reset");
        start.elapsed()
    });
    eprintln!("reset_tap (1 address, detached, down): {time:?}");
    assert_pooled(&ns, tap, created.mac, 1400, Some("tpk-br0"), "7");
    // Detached: no carrier, so no autoconfiguration either.
    assert_eq!(ns.addresses(tap), vec![]);

    // A spec with no bridge, MTU or group puts back none.
    let plain = ns.with_kernel(|k| {
        k.create_tap(name("tpk-rst2"), &TapSpec::default())
            .expect("create")
    });
    ns.ip(&[
        "link", "set", "tpk-rst2", "master", "tpk-br1", "mtu", "4000", "group", "5",
    ]);
    ns.with_kernel(|k| {
        k.reset_tap(name("tpk-rst2").into(), &TapSpec::default(), plain.mac)
            .expect("reset")
    });
    assert_pooled(&ns, "tpk-rst2", plain.mac, 1500, None, "default");

    // The index stays: a reset is not a re-create.
    let link = ns.link(tap).expect("there");
    assert_eq!(link["ifindex"].as_u64(), Some(created.index.into()));
    assert_not_in_host(&[tap, "tpk-rst2", "tpk-br0", "tpk-br1"]);
}

fn reset_refusals_name_the_cause() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brx");
    let spec = {
        let mut t = TapSpec::default();
        t.bridge = Some(name("tpk-brx"));
        t
    };
    let (missing, no_bridge, bad_mtu, still_works) = ns.with_kernel(|k| {
        let created = k.create_tap(name("tpk-rr"), &spec).expect("create");
        let missing = k.reset_tap(name("tpk-none").into(), &spec, created.mac);
        let gone = {
            let mut t = TapSpec::default();
            t.bridge = Some(name("tpk-gone"));
            t
        };
        let no_bridge = k.reset_tap(name("tpk-rr").into(), &gone, created.mac);
        let mut big = spec;
        big.mtu = Some(70000);
        let bad_mtu = k.reset_tap(name("tpk-rr").into(), &big, created.mac);
        (
            missing,
            no_bridge,
            bad_mtu,
            k.reset_tap(name("tpk-rr").into(), &spec, created.mac),
        )
    });
    assert_eq!(
        missing,
        Err(KernelError::NoSuchDevice {
            name: name("tpk-none")
        })
    );
    assert_eq!(
        no_bridge,
        Err(KernelError::BridgeMissing {
            name: name("tpk-rr"),
            bridge: name("tpk-gone")
        })
    );
    match bad_mtu {
        Err(KernelError::Reset {
            name: n,
            errno,
            ext_ack,
        }) => {
            assert_eq!(n, name("tpk-rr"));
            assert_eq!(errno, Errno(libc::EINVAL));
            assert!(ext_ack.is_some_and(|t| t.to_lowercase().contains("mtu")));
        }
        other => panic!("expected Reset, got {other:?}"),
    }
    still_works.expect("a good reset after refused ones");
}

fn delete_group_removes_exactly_the_group() {
    let ns = TestNetns::new();
    ns.ip(&["link", "add", "tpk-ifbg", "type", "ifb"]);
    let (refused, missing) = ns.with_kernel(|k| {
        let mut set_time = Duration::ZERO;
        for i in 0..5 {
            let tap = name(&format!("tpk-g{i}"));
            k.create_tap(tap, &TapSpec::default()).expect("create");
            let start = Instant::now();
            k.set_device_group(tap.into(), 4242).expect("set group");
            set_time += start.elapsed();
        }
        eprintln!("set_device_group: {:?} each", set_time / 5);
        for i in 0..2 {
            k.create_tap(name(&format!("tpk-o{i}")), &TapSpec::default())
                .expect("create");
        }
        (
            k.delete_group(0),
            k.set_device_group(name("tpk-none").into(), 4242),
        )
    });
    assert_eq!(
        refused,
        Err(KernelError::DeleteGroup {
            group: 0,
            errno: Errno(libc::EINVAL),
            ext_ack: None
        })
    );
    assert_eq!(
        missing,
        Err(KernelError::NoSuchDevice {
            name: name("tpk-none")
        })
    );
    let all = [
        "tpk-g0", "tpk-g1", "tpk-g2", "tpk-g3", "tpk-g4", "tpk-o0", "tpk-o1",
    ];
    assert_eq!(ns.tun_names(), all, "group 0 refused: nothing deleted");
    for i in 0..5 {
        let link = ns.link(&format!("tpk-g{i}")).expect("there");
        assert_eq!(text(&link["group"]), "4242");
        // Only the group changed: still up, still persistent.
        assert!(flags(&link).contains(&"UP".to_owned()));
    }
    // The ifb outside the group stays too.
    ns.ip(&["link", "set", "tpk-ifbg", "group", "4243"]);

    let (first, empty, other) = ns.with_kernel(|k| {
        let start = Instant::now();
        let first = k.delete_group(4242);
        let time = start.elapsed();
        eprintln!("delete_group (5 taps): {time:?}");
        (first, k.delete_group(4242), k.delete_group(77))
    });
    first.expect("delete group 4242");
    empty.expect("an emptied group deletes as nothing");
    other.expect("a group never used deletes as nothing");
    assert_eq!(ns.tun_names(), ["tpk-o0", "tpk-o1"]);
    assert!(ns.link("tpk-ifbg").is_some());
    assert_not_in_host(&["tpk-g0", "tpk-o0", "tpk-ifbg"]);
}

fn one_group_delete_against_single_deletes() {
    const N: usize = 50;
    let ns = TestNetns::new();
    let spec = {
        let mut t = TapSpec::default();
        t.device_group = Some(9);
        t
    };
    let (group_time, single_time) = ns.with_kernel(|k| {
        for i in 0..N {
            k.create_tap(name(&format!("tpk-a{i}")), &spec)
                .expect("create");
            k.create_tap(name(&format!("tpk-b{i}")), &TapSpec::default())
                .expect("create");
        }
        let start = Instant::now();
        k.delete_group(9).expect("delete group");
        let group_time = start.elapsed();
        let start = Instant::now();
        for i in 0..N {
            k.delete_link(name(&format!("tpk-b{i}")).into())
                .expect("delete");
        }
        (group_time, start.elapsed())
    });
    eprintln!("{N} taps: one delete_group {group_time:?}, {N} delete_link {single_time:?}");
    assert_eq!(ns.tun_names(), Vec::<String>::new());
}

/// The next `Removed` event, skipping others, within `timeout`.
fn next_removed(
    rx: &std::sync::mpsc::Receiver<Option<LinkEvent>>,
    timeout: Duration,
) -> Option<LinkEvent> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(Some(event @ LinkEvent::Removed { .. })) => return Some(event),
            Ok(Some(LinkEvent::Resync)) => panic!("unexpected resync"),
            Ok(Some(LinkEvent::Renamed { .. }) | None) => {}
            Err(_) => return None,
        }
    }
}

fn watcher_reports_removals_in_its_namespace_only() {
    let ns = TestNetns::new();
    let other = TestNetns::new();
    ns.add_bridge("tpk-brw");
    let spec = {
        let mut t = TapSpec::default();
        t.bridge = Some(name("tpk-brw"));
        t
    };
    let (a, b) = ns.with_kernel(|k| {
        (
            k.create_tap(name("tpk-wa"), &spec).expect("create"),
            k.create_tap(name("tpk-wb"), &spec).expect("create"),
        )
    });
    other.ip(&["tuntap", "add", "dev", "tpk-wx", "mode", "tap"]);
    let rx = ns.watch();

    // Elsewhere: not seen. Leaving a bridge (an AF_BRIDGE RTM_DELLINK) and
    // other changes: not removals.
    other.ip(&["link", "del", "tpk-wx"]);
    ns.ip(&["link", "set", "tpk-wb", "nomaster"]);
    ns.ip(&["link", "set", "tpk-wb", "mtu", "1300"]);
    ns.ip(&["link", "del", "tpk-wa"]);
    assert_eq!(
        next_removed(&rx, Duration::from_secs(5)),
        Some(LinkEvent::Removed {
            name: name("tpk-wa"),
            index: a.index
        })
    );
    // A removal while enslaved is reported once, not once per family.
    ns.ip(&["link", "set", "tpk-wb", "master", "tpk-brw"]);
    ns.ip(&["link", "del", "tpk-wb"]);
    assert_eq!(
        next_removed(&rx, Duration::from_secs(5)),
        Some(LinkEvent::Removed {
            name: name("tpk-wb"),
            index: b.index
        })
    );
    // Then nothing: a `None` about a second after the last event.
    let start = Instant::now();
    let quiet_event = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("watcher answers");
    assert_eq!(quiet_event, None);
    let quiet = start.elapsed();
    assert!(quiet >= Duration::from_millis(500), "{quiet:?}");
    assert!(quiet < Duration::from_secs(3), "{quiet:?}");
}

fn watcher_sees_every_tap_of_a_group_delete() {
    const N: usize = 100;
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brg");
    let spec = {
        let mut t = TapSpec::default();
        t.bridge = Some(name("tpk-brg"));
        t.device_group = Some(31);
        t
    };
    let indices: Vec<u32> = ns.with_kernel(|k| {
        (0..N)
            .map(|i| {
                k.create_tap(name(&format!("tpk-w{i}")), &spec)
                    .expect("create")
                    .index
            })
            .collect()
    });
    let rx = ns.watch();
    ns.with_kernel(|k| k.delete_group(31).expect("delete group"));
    let mut seen = Vec::new();
    while seen.len() < N {
        match next_removed(&rx, Duration::from_secs(5)) {
            Some(LinkEvent::Removed { name: n, index }) => {
                let i = indices
                    .iter()
                    .position(|&x| x == index)
                    .expect("one of ours");
                assert_eq!(n, name(&format!("tpk-w{i}")));
                seen.push(index);
            }
            other => panic!("after {} removals: {other:?}", seen.len()),
        }
    }
    seen.sort();
    let mut expected = indices.clone();
    expected.sort();
    assert_eq!(seen, expected);
}

fn a_tap_held_open_counts_as_in_use_even_when_down() {
    let ns = TestNetns::new();
    ns.with_kernel(|k| k.create_tap(name("tpk-down"), &TapSpec::default()))
        .expect("create");
    let in_use = |ns: &TestNetns| {
        ns.with_kernel(|k| k.list_taps())
            .expect("list")
            .into_iter()
            .find(|l| l.name == name("tpk-down"))
            .expect("listed")
            .in_use
    };
    let fd = ns.attach("tpk-down", true);
    ns.ip(&["link", "set", "tpk-down", "down"]);
    // No carrier while down, but a VMM holds it: it must not look idle.
    assert!(!flags(&ns.link("tpk-down").unwrap()).contains(&"LOWER_UP".to_owned()));
    assert!(in_use(&ns));
    drop(fd);
    assert!(
        eventually(Duration::from_secs(5), || !in_use(&ns)),
        "still in use after the last file closed"
    );
    // And an up tap behaves the same.
    ns.ip(&["link", "set", "tpk-down", "up"]);
    let fd = ns.attach("tpk-down", true);
    assert!(in_use(&ns));
    drop(fd);
    assert!(eventually(Duration::from_secs(5), || !in_use(&ns)));
}

/// What `ip -j -d` says identifies `dev` and what a reset or a group
/// change would alter (index, name, kind, MTU, master, group, flags, MAC,
/// veth peer, addresses), to compare before and after.
fn snapshot(ns: &TestNetns, dev: &str) -> Value {
    let link = ns.link(dev).unwrap_or_else(|| panic!("{dev} exists"));
    json!({
        "ifindex": link["ifindex"],
        "ifname": link["ifname"],
        "kind": link["linkinfo"]["info_kind"],
        "type": info_data(&link)["type"],
        "mtu": link["mtu"],
        "master": link["master"],
        "group": link["group"],
        "flags": link["flags"],
        "address": link["address"],
        "peer": link["link"],
        "addresses": format!("{:?}", ns.addresses(dev)),
    })
}

fn ifindex(ns: &TestNetns, dev: &str) -> u32 {
    let link = ns.link(dev).unwrap_or_else(|| panic!("{dev} exists"));
    link["ifindex"].as_u64().expect("ifindex") as u32
}

/// The tap `dev`'s spec in these tests: a bridge, an MTU and a group, all
/// of which a reset would put back.
fn pooled_spec(bridge: &str) -> TapSpec {
    let mut t = TapSpec::default();
    t.mtu = Some(1400);
    t.bridge = Some(name(bridge));
    t.device_group = Some(7);
    t
}

fn a_renamed_tap_is_refused_by_reset_and_group_change_and_deleted_by_index() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brn");
    let spec = pooled_spec("tpk-brn");
    let created = ns.with_kernel(|k| k.create_tap(name("tpk-ren"), &spec).expect("create"));
    let device = Device::new(name("tpk-ren"), created.index);
    ns.ip(&["link", "set", "tpk-ren", "name", "tpk-ren2"]);
    // What a tenant changed, which a reset would put back.
    ns.ip(&["link", "set", "tpk-ren2", "nomaster", "mtu", "9000"]);
    let before = snapshot(&ns, "tpk-ren2");
    let (reset, group) = ns.with_kernel(|k| {
        (
            k.reset_tap(device, &spec, created.mac),
            k.set_device_group(device, 9),
        )
    });
    let renamed = Err(KernelError::Renamed {
        name: name("tpk-ren"),
        index: created.index,
        now: Some(name("tpk-ren2")),
    });
    assert_eq!(reset, renamed);
    assert_eq!(group, renamed);
    assert_eq!(snapshot(&ns, "tpk-ren2"), before, "nothing changed");
    assert_eq!(before["mtu"], 9000);
    assert_eq!(text(&before["group"]), "7");

    // A delete follows it: the pool's own device, by its index.
    ns.with_kernel(|k| k.delete_link(device))
        .expect("delete by index");
    assert!(ns.link("tpk-ren2").is_none());
    assert_eq!(ns.tun_names(), Vec::<String>::new());
    assert!(ns.link("tpk-brn").is_some());
    assert_not_in_host(&["tpk-ren", "tpk-ren2", "tpk-brn"]);
}

fn a_device_under_a_taps_old_name_is_never_touched() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-bro");
    ns.add_bridge("tpk-brv");
    let spec = pooled_spec("tpk-bro");
    let created = ns.with_kernel(|k| k.create_tap(name("tpk-old"), &spec).expect("create"));
    ns.ip(&["link", "set", "tpk-old", "name", "tpk-moved"]);
    // A veth takes the old name: a master, a group, an MTU and an up state
    // of its own, each of which a reset or group change would alter.
    ns.ip(&[
        "link", "add", "tpk-old", "type", "veth", "peer", "name", "tpk-peer",
    ]);
    ns.ip(&[
        "link", "set", "tpk-old", "master", "tpk-brv", "group", "55", "mtu", "1300", "up",
    ]);
    let veth = snapshot(&ns, "tpk-old");
    let veth_index = ifindex(&ns, "tpk-old");
    assert_eq!(veth["kind"], "veth");

    let old = Device::new(name("tpk-old"), created.index);
    let by_name = Device::from(name("tpk-old"));
    let (renamed, not_a_tap, deleted, gone) = ns.with_kernel(|k| {
        let renamed = [
            k.reset_tap(old, &spec, created.mac),
            k.set_device_group(old, 9),
        ];
        let not_a_tap = [
            k.reset_tap(by_name, &spec, created.mac),
            k.set_device_group(by_name, 9),
            k.delete_link(by_name),
        ];
        let deleted = k.delete_link(old);
        let gone = [
            k.reset_tap(old, &spec, created.mac),
            k.set_device_group(old, 9),
            k.delete_link(old),
        ];
        (renamed, not_a_tap, deleted, gone)
    });
    for result in renamed {
        assert_eq!(
            result,
            Err(KernelError::Renamed {
                name: name("tpk-old"),
                index: created.index,
                now: Some(name("tpk-moved")),
            })
        );
    }
    for result in not_a_tap {
        assert_eq!(
            result,
            Err(KernelError::NotATap {
                name: name("tpk-old"),
                index: veth_index,
            })
        );
    }
    deleted.expect("the renamed tap, deleted by its index");
    for result in gone {
        assert_eq!(
            result,
            Err(KernelError::NoSuchDevice {
                name: name("tpk-old")
            })
        );
    }
    assert!(ns.link("tpk-moved").is_none());
    assert_eq!(snapshot(&ns, "tpk-old"), veth, "the veth is untouched");
    assert_eq!(veth["master"], "tpk-brv");
    assert_eq!(text(&veth["group"]), "55");
    assert!(flags(&ns.link("tpk-old").expect("veth")).contains(&"UP".to_owned()));
    assert!(ns.link("tpk-peer").is_some());
    assert_not_in_host(&["tpk-old", "tpk-moved", "tpk-peer", "tpk-bro", "tpk-brv"]);
}

fn lo_a_bridge_and_a_tun_device_are_not_taps() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brl");
    ns.ip(&["link", "set", "tpk-brl", "group", "5", "up"]);
    ns.ip(&["tuntap", "add", "dev", "tpk-tun", "mode", "tun"]);
    let devices = ["lo", "tpk-brl", "tpk-tun"];
    let before: Vec<Value> = devices.iter().map(|d| snapshot(&ns, d)).collect();
    let (lo, br, tun) = (
        ifindex(&ns, "lo"),
        ifindex(&ns, "tpk-brl"),
        ifindex(&ns, "tpk-tun"),
    );
    // A pool's record pointing at them, by index (whatever name it has)
    // or by their own name.
    let targets = [
        (Device::new(name("tpk-x"), lo), lo),
        (Device::from(name("lo")), lo),
        (Device::new(name("tpk-brl"), br), br),
        (Device::from(name("tpk-brl")), br),
        (Device::new(name("tpk-tun"), tun), tun),
        (Device::from(name("tpk-tun")), tun),
    ];
    let spec = pooled_spec("tpk-brl");
    let results = ns.with_kernel(|k| {
        targets
            .iter()
            .map(|&(device, _)| {
                [
                    k.reset_tap(device, &spec, [2, 0, 0, 0, 0, 1]),
                    k.set_device_group(device, 9),
                    k.delete_link(device),
                ]
            })
            .collect::<Vec<_>>()
    });
    for ((device, index), results) in targets.iter().zip(results) {
        for result in results {
            assert_eq!(
                result,
                Err(KernelError::NotATap {
                    name: device.name,
                    index: *index
                }),
                "{device}"
            );
        }
    }
    let after: Vec<Value> = devices.iter().map(|d| snapshot(&ns, d)).collect();
    assert_eq!(after, before, "each device untouched");
    assert_not_in_host(&["tpk-brl", "tpk-tun"]);
}

/// Every event `rx` forwards until `last` has come and the watcher has
/// been quiet for a while after it (so that a spurious event after the
/// last expected one is caught too); panics on a resync, or if `last`
/// does not come within `timeout`.
fn events_until(
    rx: &std::sync::mpsc::Receiver<Option<LinkEvent>>,
    last: &LinkEvent,
    timeout: Duration,
) -> Vec<LinkEvent> {
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no {last:?} in time; got {events:?}"));
        match rx.recv_timeout(left) {
            Ok(Some(LinkEvent::Resync)) => panic!("unexpected resync after {events:?}"),
            Ok(Some(event)) => events.push(event),
            Ok(None) if events.contains(last) => return events,
            Ok(None) => {}
            Err(_) => panic!("no {last:?} in time; got {events:?}"),
        }
    }
}

fn watcher_reports_renames_of_taps_made_after_it_opened() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brr");
    let rx = ns.watch();
    let created = ns.with_kernel(|k| {
        k.create_tap(name("tpk-wr"), &pooled_spec("tpk-brr"))
            .expect("create")
    });
    // Changes that are not renames, then two renames, then the removal.
    ns.ip(&["link", "set", "tpk-wr", "mtu", "1300", "down"]);
    ns.ip(&["link", "set", "tpk-wr", "name", "tpk-wr2"]);
    ns.ip(&["link", "set", "tpk-wr2", "up", "nomaster"]);
    ns.ip(&["link", "set", "tpk-wr2", "name", "tpk-wr3"]);
    ns.ip(&["link", "del", "tpk-wr3"]);
    let index = created.index;
    let removed = LinkEvent::Removed {
        name: name("tpk-wr3"),
        index,
    };
    let events = events_until(&rx, &removed, Duration::from_secs(10));
    assert_eq!(
        events,
        [
            LinkEvent::Renamed {
                index,
                from: name("tpk-wr"),
                to: Some(name("tpk-wr2")),
            },
            LinkEvent::Renamed {
                index,
                from: name("tpk-wr2"),
                to: Some(name("tpk-wr3")),
            },
            removed,
        ]
    );
}

fn watcher_reports_renames_of_devices_that_existed_before_it_opened() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-brp");
    let created = ns.with_kernel(|k| {
        k.create_tap(name("tpk-pre"), &pooled_spec("tpk-brp"))
            .expect("create")
    });
    let bridge = ifindex(&ns, "tpk-brp");
    let rx = ns.watch();
    ns.ip(&["link", "set", "tpk-pre", "name", "tpk-post"]);
    ns.ip(&["link", "set", "tpk-brp", "name", "tpk-brq"]);
    let last = LinkEvent::Renamed {
        index: bridge,
        from: name("tpk-brp"),
        to: Some(name("tpk-brq")),
    };
    let events = events_until(&rx, &last, Duration::from_secs(10));
    assert_eq!(
        events,
        [
            LinkEvent::Renamed {
                index: created.index,
                from: name("tpk-pre"),
                to: Some(name("tpk-post")),
            },
            last,
        ]
    );
}

/// A multi-queue tap takes more than one file, so the reset's own attach
/// succeeds even while a tenant keeps a queue (enabled or disabled): the
/// queue count read back says so, and the reset refuses, changing nothing.
fn a_multi_queue_tap_with_a_queue_still_attached_is_a_residue() {
    let ns = TestNetns::new();
    let spec = {
        let mut t = TapSpec::default();
        t.multi_queue = true;
        t
    };
    let tap = "tpk-mq";
    let created = ns.with_kernel(|k| k.create_tap(name(tap), &spec).expect("create"));
    let netns = ns.netns();
    // A tenant's queue, attached the way a multi-queue VMM attaches.
    let queue = std::thread::spawn(move || {
        tap_pool::linux::enter(&netns).expect("enter the test namespace");
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("open /dev/net/tun");
        // SAFETY: `ifreq` is plain old data; all zeroes is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(tap.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR | libc::IFF_MULTI_QUEUE)
                as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `req` is.
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::TUNSETIFF,
                &raw mut req,
            )
        };
        assert_eq!(rc, 0, "attach: {}", std::io::Error::last_os_error());
        file
    })
    .join()
    .expect("attach thread");
    let reset =
        |ns: &TestNetns| ns.with_kernel(|k| k.reset_tap(name(tap).into(), &spec, created.mac));
    let refused = reset(&ns);
    assert!(
        matches!(
            refused,
            Err(KernelError::Residue {
                residue: Residue::Attached,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        info_data(&ns.link(tap).unwrap())["numqueues"],
        1,
        "the tenant's queue only"
    );
    drop(queue);
    reset(&ns).expect("reset once the tenant let go");
    assert_eq!(info_data(&ns.link(tap).unwrap())["numqueues"], 0);
    assert_eq!(info_data(&ns.link(tap).unwrap())["persist"], true);
}

/// Runs `f` with a `LinuxKernel` (not the trait: `hold` and `links` are
/// Linux's own) on a fresh thread in `ns`.
fn with_linux<R: Send>(
    ns: &TestNetns,
    f: impl FnOnce(&mut tap_pool::LinuxKernel) -> R + Send,
) -> R {
    let netns = ns.netns();
    std::thread::scope(|s| {
        s.spawn(move || {
            tap_pool::linux::enter(&netns).expect("enter the test namespace");
            f(&mut tap_pool::LinuxKernel::open().expect("open"))
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A VMM's `TUNSETIFF` of `name` in `ns`, once: the errno it gets, if any.
fn vmm_attach_errno(ns: &TestNetns, name: &str) -> Option<i32> {
    let netns = ns.netns();
    let name = name.to_owned();
    std::thread::spawn(move || {
        tap_pool::linux::enter(&netns).expect("enter the test namespace");
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("open /dev/net/tun");
        // SAFETY: `ifreq` is plain old data; all zeroes is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as i16;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `req` is.
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::TUNSETIFF,
                &raw mut req,
            )
        };
        (rc != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    })
    .join()
    .expect("attach thread")
}

fn a_held_tap_keeps_every_vmm_out_until_it_is_deleted() {
    let ns = TestNetns::new();
    let mut multi = TapSpec::default();
    multi.multi_queue = true;
    let (idle, busy, queued) = ns.with_kernel(|k| {
        (
            k.create_tap(name("tpk-idle"), &TapSpec::default())
                .expect("create"),
            k.create_tap(name("tpk-busy"), &TapSpec::default())
                .expect("create"),
            k.create_tap(name("tpk-mq"), &multi).expect("create"),
        )
    });
    let _vmm = ns.attach("tpk-busy", true);
    let _queue = ns.attach_queue("tpk-mq");
    with_linux(&ns, |k| {
        for (tap, index) in [("tpk-busy", busy.index), ("tpk-mq", queued.index)] {
            assert_eq!(
                k.hold(Device::new(name(tap), index)).map(|h| h.device()),
                Err(KernelError::InUse {
                    name: name(tap),
                    index
                }),
                "{tap}"
            );
        }
        let held = k
            .hold(Device::new(name("tpk-idle"), idle.index))
            .expect("held");
        assert_eq!(held.device(), Device::new(name("tpk-idle"), idle.index));
        // A VMM that comes now is turned away; the delete takes no
        // device from it.
        assert_eq!(vmm_attach_errno(&ns, "tpk-idle"), Some(libc::EBUSY));
        tap_pool::Kernel::delete_link(k, held.device()).expect("deleted while held");
        drop(held);
    });
    assert!(ns.link("tpk-idle").is_none(), "deleted");
    for tap in ["tpk-busy", "tpk-mq"] {
        assert!(
            flags(&ns.link(tap).expect("still there")).contains(&"UP".to_owned()),
            "{tap} untouched"
        );
    }
    // A tap that has gone since the listing is not made again by the attach.
    let gone = ns.with_kernel(|k| k.create_tap(name("tpk-gone"), &TapSpec::default()));
    let gone = gone.expect("create");
    ns.ip(&["link", "del", "tpk-gone"]);
    let held = with_linux(&ns, |k| {
        k.hold(Device::new(name("tpk-gone"), gone.index))
            .map(|h| h.device())
    });
    assert_eq!(
        held,
        Err(KernelError::NoSuchDevice {
            name: name("tpk-gone")
        })
    );
    assert!(ns.link("tpk-gone").is_none());
}

fn links_lists_every_device_with_its_kind_master_and_group() {
    let ns = TestNetns::new();
    ns.add_bridge("tpk-br0");
    let mut spec = TapSpec::default();
    spec.bridge = Some(name("tpk-br0"));
    spec.device_group = Some(77);
    let tap = ns
        .with_kernel(|k| k.create_tap(name("tpk-port"), &spec))
        .expect("create");
    ns.ip(&["link", "add", "tpk-ifb", "type", "ifb"]);
    let links = with_linux(&ns, |k| k.links()).expect("links");
    let by_ip: Vec<(u64, String)> = ns
        .links()
        .iter()
        .map(|l| (l["ifindex"].as_u64().expect("index"), text(&l["ifname"])))
        .collect();
    let ours: Vec<(u64, String)> = links
        .iter()
        .map(|l| (u64::from(l.index), l.name.to_string()))
        .collect();
    assert_eq!(ours, by_ip, "the same devices as ip, in index order");
    let find = |n: &str| links.iter().find(|l| l.name == name(n)).expect(n).clone();
    let bridge = find("tpk-br0");
    assert_eq!(bridge.kind.as_deref(), Some("bridge"));
    let port = find("tpk-port");
    assert_eq!(port.index, tap.index);
    assert_eq!(port.kind.as_deref(), Some("tun"));
    assert_eq!(port.master, Some(bridge.index));
    assert_eq!(port.device_group, 77);
    assert_eq!(find("tpk-ifb").kind.as_deref(), Some("ifb"));
    assert_eq!(find("lo").kind, None);
}
