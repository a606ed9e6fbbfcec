//! Issue 11, part 3: a reset takes away what the orchestrator left on a tap
//! for its last tenant (routes, qdiscs, flags, link settings, bridge-port
//! settings, per-device sysctls, XDP), so that the next tenant gets a tap
//! that equals a fresh one of the same spec; or, where that cannot be done,
//! the reset says so and the pool deletes the tap.
//!
//! Each test makes its leftovers with `ip`, `tc`, `bridge` and `/proc/sys`
//! in a namespace of its own, resets, and compares from outside what those
//! tools show of the reset tap with what they show of a tap made fresh, with
//! the same spec, in the same namespace ([`Snapshot`]). Each failed on the
//! reset before this change (which removed addresses and set up, MTU,
//! master, group and MAC only).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tap_pool::{KernelError, Residue, TapSpec};
use tap_pool_actors::{PoolConfig, Warm};
use tap_pool_testkit::pool::{acquire, release, settle};
use tap_pool_testkit::{
    KernelTest, TestNetns, assert_not_in_host, eui64_link_local, eventually, kernel_test, name,
    text,
};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(routes_neighbours_and_nexthops_through_a_tap_go),
        kernel_test!(a_tap_left_down_with_neighbours_is_cleared_too),
        kernel_test!(a_multipath_route_through_a_tap_cannot_be_restored),
        kernel_test!(the_next_vmm_gets_a_link_local_address_again),
        // It resets a multi-queue tap whose queues it just closed: a test
        // that forked meanwhile, on another thread, holds copies of them
        // until its child execs, and the reset rightly sees them attached.
        kernel_test!(qdiscs_and_their_filters_go).alone(),
        kernel_test!(link_flags_are_a_fresh_taps),
        kernel_test!(link_settings_are_a_fresh_taps),
        kernel_test!(a_bridge_port_is_a_fresh_port),
        kernel_test!(per_device_sysctls_are_the_namespaces_defaults),
        kernel_test!(a_default_changed_since_is_followed),
        kernel_test!(a_stable_secret_is_restored_or_cannot_be),
        kernel_test!(xdp_programs_are_detached_unless_held_by_a_link),
        kernel_test!(async a_released_tap_comes_back_as_a_fresh_one),
        kernel_test!(async a_tap_that_cannot_be_restored_is_deleted_and_replaced),
    ]
}

/// The tap a test dirties and resets, and the fresh one it is compared with.
const DIRTY: &str = "tpl-dirty";
const FRESH: &str = "tpl-fresh";

/// A spec with a bridge, an MTU and a group, as orchestrators use.
fn bridged(bridge: &str) -> TapSpec {
    let mut t = TapSpec::default();
    t.bridge = Some(name(bridge));
    t.mtu = Some(1400);
    t.device_group = Some(7);
    t
}

/// Makes `DIRTY` and `FRESH` with `spec`; returns `DIRTY`'s MAC.
fn two_taps(ns: &TestNetns, spec: &TapSpec) -> [u8; 6] {
    ns.with_kernel(|k| {
        k.create_tap(name(FRESH), spec)
            .expect("create the fresh tap");
        k.create_tap(name(DIRTY), spec).expect("create the tap").mac
    })
}

fn reset(ns: &TestNetns, spec: &TapSpec, mac: [u8; 6]) -> Result<(), KernelError> {
    ns.with_kernel(|k| k.reset_tap(name(DIRTY).into(), spec, mac))
}

/// Whether `result` is the reset's "this tap cannot be restored; delete
/// it" (until `KernelError` has a variant of its own: `Reset` with
/// `ENOTRECOVERABLE`, saying what in the extended ack), about `what`.
fn cannot_restore(result: &Result<(), KernelError>, what: &str) -> bool {
    matches!(result,
        Err(KernelError::Residue { residue: Residue::Leftover(text), .. }) if text.contains(what))
}

/// Everything `ip`, `tc`, `bridge` and `/proc/sys` show of one tap that a
/// fresh tap of the same spec has too, with what tells two taps apart (name,
/// index, MAC, port number) taken out.
#[derive(Debug, PartialEq)]
struct Snapshot(BTreeMap<&'static str, Value>);

impl Snapshot {
    fn of(ns: &TestNetns, dev: &str) -> Snapshot {
        let json = |program: &str, args: &[&str]| -> Value {
            let out = ns.run(program, args);
            if out.trim().is_empty() {
                return json!([]);
            }
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{program} {args:?}: {e}: {out}"))
        };
        let mut link = json("ip", &["-j", "-d", "link", "show", "dev", dev])[0].take();
        let mac = text(&link["address"]);
        let object = link.as_object_mut().expect("a link");
        for field in ["ifindex", "ifname", "address"] {
            object.remove(field);
        }
        if let Some(port) = object
            .get_mut("linkinfo")
            .and_then(|l| l.get_mut("info_slave_data"))
            .and_then(Value::as_object_mut)
        {
            // Which port of the bridge it is, and timers.
            for field in [
                "id",
                "no",
                "designated_port",
                "designated_cost",
                "bridge_id",
                "root_id",
                "hold_timer",
                "message_age_timer",
                "forward_delay_timer",
            ] {
                port.remove(field);
            }
        }
        let mut map = BTreeMap::new();
        map.insert("link", link);
        map.insert(
            "addresses",
            json("ip", &["-j", "address", "show", "dev", dev])[0]["addr_info"].take(),
        );
        for (key, family) in [("routes4", "-4"), ("routes6", "-6")] {
            // Every route of every table that names the tap anywhere (`ip
            // route show dev` would miss a multipath route's next hops).
            let routes = json("ip", &["-j", family, "route", "show", "table", "all"]);
            let ours: Vec<Value> = routes
                .as_array()
                .expect("routes")
                .iter()
                .filter(|r| r.to_string().contains(&format!("\"{dev}\"")))
                .map(|r| renamed(r, dev))
                .collect();
            map.insert(key, Value::Array(ours));
        }
        map.insert(
            "neighbours",
            json!([
                json("ip", &["-j", "-4", "neigh", "show", "dev", dev]),
                json("ip", &["-j", "-6", "neigh", "show", "dev", dev]),
                json("ip", &["-j", "-4", "neigh", "show", "proxy", "dev", dev]),
                json("ip", &["-j", "-6", "neigh", "show", "proxy", "dev", dev]),
            ]),
        );
        map.insert(
            "nexthops",
            json("ip", &["-j", "nexthop", "show", "dev", dev]),
        );
        map.insert(
            "token",
            Value::String(
                ns.run("ip", &["token", "get", "dev", dev])
                    .replace(dev, "<tap>"),
            ),
        );
        map.insert("qdiscs", json("tc", &["-j", "qdisc", "show", "dev", dev]));
        map.insert("sysctl4", sysctls(ns, "ipv4", dev));
        map.insert("sysctl6", sysctls(ns, "ipv6", dev));
        // The bridge's entries for the port. (Entries flagged `self` are
        // the tap's own link-layer address lists, which a tap filters
        // nothing by; the IPv6 groups' there come back only with a
        // carrier, so a tap that had one differs until its next VMM.)
        let fdb: Vec<Value> = json("bridge", &["-j", "fdb", "show", "dev", dev])
            .as_array()
            .expect("fdb")
            .iter()
            .filter(|entry| !entry["flags"].to_string().contains("self"))
            .map(|entry| {
                // The tap's own address, as the bridge's local entry.
                Value::String(entry.to_string().replace(&mac, "<own>"))
            })
            .collect();
        map.insert("fdb", Value::Array(fdb));
        let mdb: Vec<Value> = json("bridge", &["-j", "mdb", "show"])
            .as_array()
            .expect("mdb")
            .iter()
            .flat_map(|b| b["mdb"].as_array().cloned().unwrap_or_default())
            .filter(|entry| entry["port"] == dev)
            .map(|entry| renamed(&entry, dev))
            .collect();
        map.insert("mdb", Value::Array(mdb));
        Snapshot(map)
    }

    /// Panics, naming what differs, unless the two are equal.
    fn assert_same(&self, fresh: &Snapshot, context: &str) {
        let differ: Vec<String> = self
            .0
            .iter()
            .filter(|(key, value)| fresh.0.get(*key) != Some(*value))
            .map(|(key, value)| {
                format!(
                    "{key}:\n  reset: {}\n  fresh: {}",
                    differences(value, &fresh.0[key]).0,
                    differences(value, &fresh.0[key]).1
                )
            })
            .collect();
        assert!(
            differ.is_empty(),
            "{context}: the reset tap differs from a fresh one:\n{}",
            differ.join("\n")
        );
    }
}

/// What differs between two JSON values: for two objects, only the fields
/// that differ.
fn differences(a: &Value, b: &Value) -> (Value, Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut left = Map::new();
            let mut right = Map::new();
            for key in a.keys().chain(b.keys()) {
                if a.get(key) != b.get(key) {
                    let (l, r) = differences(
                        a.get(key).unwrap_or(&Value::Null),
                        b.get(key).unwrap_or(&Value::Null),
                    );
                    left.insert(key.clone(), l);
                    right.insert(key.clone(), r);
                }
            }
            (Value::Object(left), Value::Object(right))
        }
        _ => (a.clone(), b.clone()),
    }
}

/// `value` with the tap's name as `<tap>`.
fn renamed(value: &Value, dev: &str) -> Value {
    serde_json::from_str(
        &value
            .to_string()
            .replace(&format!("\"{dev}\""), "\"<tap>\""),
    )
    .expect("JSON")
}

/// Every `/proc/sys/net/FAMILY/conf/DEV/` key and its value, as the
/// namespace shows them (`<unset>` for a file that reads as `EIO`).
fn sysctls(ns: &TestNetns, family: &str, dev: &str) -> Value {
    let out = ns.run(
        "sh",
        &[
            "-c",
            &format!(
                "cd /proc/sys/net/{family}/conf/{dev} && for f in *; do \
                 printf '%s=%s\\n' \"$f\" \"$(cat $f 2>/dev/null || echo '<unset>')\"; done"
            ),
        ],
    );
    let map: Map<String, Value> = out
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    Value::Object(map)
}

/// Writes `value` to `/proc/sys/net/FAMILY/conf/DEV/KEY` in the namespace.
fn set_sysctl(
    ns: &TestNetns,
    family: &str,
    dev: &str,
    key: &str,
    value: &str,
) -> Result<(), String> {
    ns.try_run(
        "sh",
        &[
            "-c",
            &format!("echo {value} > /proc/sys/net/{family}/conf/{dev}/{key}"),
        ],
    )
    .map(drop)
}

fn read_sysctl(ns: &TestNetns, family: &str, dev: &str, key: &str) -> String {
    ns.run(
        "cat",
        &[&format!("/proc/sys/net/{family}/conf/{dev}/{key}")],
    )
    .trim()
    .to_owned()
}

/// A second tap with an address in each family and its carrier on (the
/// returned file), for routes with next hops elsewhere.
fn other_link(ns: &TestNetns) -> OwnedFd {
    ns.with_kernel(|k| {
        k.create_tap(name("tpl-other"), &TapSpec::default())
            .expect("create tpl-other")
    });
    let vmm = ns.attach("tpl-other", true);
    ns.ip_batch(
        "address add 192.0.2.1/24 dev tpl-other\n\
         address add 2001:db8:ff::1/64 dev tpl-other nodad\n",
    );
    vmm
}

// ---------------------------------------------------------------- routes

/// Routes through the tap in several tables and of several kinds (with no
/// address on it), neighbour entries (permanent, proxy), and a nexthop
/// object and a route using it: the down/up of the reset takes every one.
fn routes_neighbours_and_nexthops_through_a_tap_go() {
    let ns = TestNetns::new();
    let spec = TapSpec::default();
    let mac = two_taps(&ns, &spec);
    let _other = other_link(&ns);
    // A nexthop object needs the carrier on (and goes when it goes off):
    // a VMM attached, through the reset.
    let vmm = ns.attach(DIRTY, true);
    ns.ip_batch(&format!(
        "nexthop add id 7 dev {DIRTY}\n\
         route add 10.6.0.0/16 nhid 7\n"
    ));
    assert_ne!(Snapshot::of(&ns, DIRTY).0["nexthops"], json!([]));
    // A reset while the VMM still holds the tap is refused, changing
    // nothing (the pool deletes such a tap: docs/security.md).
    assert!(matches!(
        reset(&ns, &spec, mac),
        Err(KernelError::Residue {
            residue: Residue::Attached,
            ..
        })
    ));
    assert_ne!(Snapshot::of(&ns, DIRTY).0["nexthops"], json!([]));
    drop(vmm);
    reset(&ns, &spec, mac).expect("reset");
    let after = Snapshot::of(&ns, DIRTY);
    assert_eq!(after.0["nexthops"], json!([]));
    assert!(
        !after.0["routes4"].to_string().contains("10.6.0.0"),
        "{after:?}"
    );

    ns.ip_batch(&format!(
        "route add 10.1.0.0/16 dev {DIRTY}\n\
         route add 10.2.0.0/16 dev {DIRTY} table 100\n\
         route add 10.3.0.0/16 via 192.0.2.9 dev {DIRTY} onlink\n\
         route add 10.4.0.0/16 dev {DIRTY} scope host\n\
         route add local 10.5.0.1 dev {DIRTY} table 100\n\
         route add 2001:db8:1::/64 dev {DIRTY}\n\
         route add 2001:db8:2::/64 dev {DIRTY} table 100\n\
         route add 2001:db8:3::/64 via fe80::1 dev {DIRTY}\n\
         neigh add 10.1.0.5 lladdr 02:00:00:00:00:05 dev {DIRTY} nud permanent\n\
         neigh add proxy 10.1.0.6 dev {DIRTY}\n\
         neigh add 2001:db8:1::5 lladdr 02:00:00:00:00:05 dev {DIRTY} nud permanent\n\
         neigh add proxy 2001:db8:1::6 dev {DIRTY}\n"
    ));
    let before = Snapshot::of(&ns, DIRTY);
    assert_eq!(
        before.0["routes4"].as_array().expect("routes").len(),
        5,
        "{before:?}"
    );
    reset(&ns, &spec, mac).expect("reset");
    Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "routes");
    assert_not_in_host(&[DIRTY, FRESH, "tpl-other"]);
}

/// A tap the orchestrator left down can still hold neighbour entries
/// (they can be added to a down device), which only a down transition
/// removes.
fn a_tap_left_down_with_neighbours_is_cleared_too() {
    let ns = TestNetns::new();
    let spec = TapSpec::default();
    let mac = two_taps(&ns, &spec);
    ns.ip_batch(&format!(
        "link set {DIRTY} down\n\
         neigh add 10.1.0.5 lladdr 02:00:00:00:00:05 dev {DIRTY} nud permanent\n\
         neigh add proxy 10.1.0.6 dev {DIRTY}\n\
         neigh add 2001:db8:1::5 lladdr 02:00:00:00:00:05 dev {DIRTY} nud permanent\n"
    ));
    reset(&ns, &spec, mac).expect("reset");
    Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "left down");
}

/// A route with next hops through the tap and elsewhere outlives a down:
/// the reset says it cannot restore the tap; deleting the tap takes the
/// tap's next hop away.
fn a_multipath_route_through_a_tap_cannot_be_restored() {
    let ns = TestNetns::new();
    let spec = TapSpec::default();
    for (family, route) in [
        (
            "-4",
            format!(
                "route add 10.4.0.0/16 nexthop dev {DIRTY} nexthop via 192.0.2.2 dev tpl-other"
            ),
        ),
        (
            "-6",
            format!(
                "route add 2001:db8:4::/64 nexthop via fe80::1 dev {DIRTY} \
                 nexthop via 2001:db8:ff::2 dev tpl-other"
            ),
        ),
    ] {
        let mac = two_taps(&ns, &spec);
        let other = other_link(&ns);
        ns.ip_batch(&format!("{route}\n"));
        let result = reset(&ns, &spec, mac);
        assert!(cannot_restore(&result, "multipath"), "{family}: {result:?}");
        ns.with_kernel(|k| {
            k.delete_link(name(DIRTY).into()).expect("delete");
            k.delete_link(name(FRESH).into()).expect("delete");
            k.delete_link(name("tpl-other").into()).expect("delete");
        });
        drop(other);
        let left = ns.run("ip", &["-j", family, "route", "show", "table", "all"]);
        assert!(!left.contains(DIRTY), "{family}: {left}");
    }
}

/// A tap that had a carrier once (a VMM) stays "configured" for IPv6 until
/// it goes down: the reset removes its addresses, and without a down the
/// next VMM's carrier brings no link-local address back. The reset's down
/// and up start IPv6 afresh.
fn the_next_vmm_gets_a_link_local_address_again() {
    let ns = TestNetns::new();
    let spec = TapSpec::default();
    let mac = two_taps(&ns, &spec);
    let local = eui64_link_local(mac);
    let has_local = || ns.addresses(DIRTY).iter().any(|(_, a, _)| *a == local);
    let first = ns.attach(DIRTY, true);
    assert!(eventually(Duration::from_secs(2), has_local), "first VMM");
    drop(first);
    reset(&ns, &spec, mac).expect("reset");
    assert_eq!(ns.addresses(DIRTY), vec![]);
    let _next = ns.attach(DIRTY, true);
    assert!(
        eventually(Duration::from_secs(2), has_local),
        "the next VMM's tap has no link-local address: {:?}",
        ns.addresses(DIRTY)
    );
}

// ---------------------------------------------------------------- qdiscs

/// A root qdisc with classes, `clsact` with filters, and on a multi-queue
/// tap an `mq` root with a qdisc of its own under a queue: all go, and the
/// default ones come back.
fn qdiscs_and_their_filters_go() {
    let ns = TestNetns::new();
    ns.add_bridge("tpl-br0");
    let spec = bridged("tpl-br0");
    let mac = two_taps(&ns, &spec);
    let tbf_and_clsact: Vec<Vec<&str>> = vec![
        vec![
            "qdisc", "add", "dev", DIRTY, "root", "tbf", "rate", "1mbit", "burst", "32kbit",
            "latency", "400ms",
        ],
        vec!["qdisc", "add", "dev", DIRTY, "clsact"],
        vec![
            "filter", "add", "dev", DIRTY, "ingress", "protocol", "all", "u32", "match", "u32",
            "0", "0", "flowid", "1:1",
        ],
        vec![
            "filter",
            "add",
            "dev",
            DIRTY,
            "egress",
            "protocol",
            "all",
            "bpf",
            "bytecode",
            "1,6 0 0 0,",
        ],
    ];
    let htb_and_ingress: Vec<Vec<&str>> = vec![
        vec![
            "qdisc", "add", "dev", DIRTY, "root", "handle", "1:", "htb", "default", "10",
        ],
        vec![
            "class", "add", "dev", DIRTY, "parent", "1:", "classid", "1:10", "htb", "rate", "1mbit",
        ],
        vec!["qdisc", "add", "dev", DIRTY, "ingress"],
        vec![
            "filter", "add", "dev", DIRTY, "parent", "ffff:", "protocol", "all", "u32", "match",
            "u32", "0", "0", "flowid", "1:1",
        ],
    ];
    for commands in [tbf_and_clsact, htb_and_ingress] {
        for args in &commands {
            ns.run("tc", args);
        }
        assert_ne!(Snapshot::of(&ns, DIRTY), Snapshot::of(&ns, FRESH));
        reset(&ns, &spec, mac).expect("reset");
        Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), &format!("{commands:?}"));
    }

    let mut multi = TapSpec::default();
    multi.multi_queue = true;
    let created = ns.with_kernel(|k| {
        k.create_tap(name("tpl-mq-fresh"), &multi).expect("create");
        k.create_tap(name("tpl-mq"), &multi).expect("create")
    });
    let queues = [ns.attach_queue("tpl-mq"), ns.attach_queue("tpl-mq")];
    tc_batch(
        &ns,
        "qdisc replace dev tpl-mq root handle 1: mq\n\
         qdisc add dev tpl-mq parent 1:2 tbf rate 1mbit burst 32kbit latency 400ms\n",
    );
    drop(queues);
    ns.with_kernel(|k| k.reset_tap(name("tpl-mq").into(), &multi, created.mac))
        .expect("reset");
    Snapshot::of(&ns, "tpl-mq").assert_same(&Snapshot::of(&ns, "tpl-mq-fresh"), "mq");
}

fn tc_batch(ns: &TestNetns, script: &str) {
    for line in script.lines() {
        let args: Vec<&str> = line.split_whitespace().collect();
        ns.run("tc", &args);
    }
}

// ---------------------------------------------------------------- link

/// Every flag a user can set goes back to a fresh tap's.
fn link_flags_are_a_fresh_taps() {
    let ns = TestNetns::new();
    ns.add_bridge("tpl-br0");
    let spec = bridged("tpl-br0");
    let mac = two_taps(&ns, &spec);
    ns.ip(&[
        "link",
        "set",
        "dev",
        DIRTY,
        "promisc",
        "on",
        "allmulticast",
        "on",
        "arp",
        "off",
        "multicast",
        "off",
        "dynamic",
        "on",
        "trailers",
        "off",
    ]);
    let flags = text(&ns.link(DIRTY).expect("there")["flags"]);
    for flag in ["PROMISC", "ALLMULTI", "NOARP", "DYNAMIC", "NOTRAILERS"] {
        assert!(flags.contains(flag), "{flags}");
    }
    reset(&ns, &spec, mac).expect("reset");
    Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "flags");
}

/// The transmit queue length, the alias, the broadcast address, the link
/// mode, the GSO/GRO limits, alternative names, the IPv6 address
/// generation mode and token.
fn link_settings_are_a_fresh_taps() {
    let ns = TestNetns::new();
    let spec = TapSpec::default();
    let mac = two_taps(&ns, &spec);
    ns.ip(&[
        "link",
        "set",
        "dev",
        DIRTY,
        "txqueuelen",
        "77",
        "alias",
        "tenant-a",
        "broadcast",
        "02:11:11:11:11:11",
        "mode",
        "dormant",
        "gso_max_size",
        "30000",
        "gso_max_segs",
        "100",
        "gro_max_size",
        "40000",
        "addrgenmode",
        "none",
    ]);
    ns.ip(&[
        "link",
        "property",
        "add",
        "dev",
        DIRTY,
        "altname",
        "vm-tenant-a",
    ]);
    ns.ip(&["token", "set", "::1:2:3:4/64", "dev", DIRTY]);
    reset(&ns, &spec, mac).expect("reset");
    Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "link settings");
    // The last tenant's name opens nothing any more.
    assert!(ns.link("vm-tenant-a").is_none());
}

// ---------------------------------------------------------------- bridge

/// Port flags, a static FDB entry and a permanent MDB entry go with the
/// port; so does a port on another bridge.
fn a_bridge_port_is_a_fresh_port() {
    let ns = TestNetns::new();
    ns.add_bridge("tpl-br0");
    ns.add_bridge("tpl-br1");
    // Up, as an MDB entry needs.
    ns.ip(&["link", "set", "tpl-br0", "up"]);
    let spec = bridged("tpl-br0");
    let mac = two_taps(&ns, &spec);
    ns.run(
        "bridge",
        &[
            "link",
            "set",
            "dev",
            DIRTY,
            "hairpin",
            "on",
            "learning",
            "off",
            "isolated",
            "on",
            "flood",
            "off",
            "mcast_flood",
            "off",
            "bcast_flood",
            "off",
            "neigh_suppress",
            "on",
            "priority",
            "7",
            "cost",
            "77",
        ],
    );
    ns.run(
        "bridge",
        &[
            "fdb",
            "add",
            "02:00:00:00:00:aa",
            "dev",
            DIRTY,
            "master",
            "static",
        ],
    );
    ns.run(
        "bridge",
        &[
            "mdb",
            "add",
            "dev",
            "tpl-br0",
            "port",
            DIRTY,
            "grp",
            "239.1.1.1",
            "permanent",
        ],
    );
    // VLANs on the port too, where the kernel filters by VLAN.
    let vlan = ns.try_run("bridge", &["vlan", "add", "vid", "100", "dev", DIRTY]);
    eprintln!("bridge vlan add: {vlan:?}");
    assert_ne!(Snapshot::of(&ns, DIRTY), Snapshot::of(&ns, FRESH));
    reset(&ns, &spec, mac).expect("reset");
    Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "bridge port");

    // On another bridge, with settings there.
    ns.ip(&["link", "set", "dev", DIRTY, "master", "tpl-br1"]);
    ns.run("bridge", &["link", "set", "dev", DIRTY, "hairpin", "on"]);
    reset(&ns, &spec, mac).expect("reset");
    Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "other bridge");
}

// ---------------------------------------------------------------- sysctls

/// Keys not set in the sweep: `mtu` follows the link (set on its own
/// below), `stable_secret` cannot be unset (its own test), `mc_forwarding`
/// is read-only; `disable_ipv6` is set last.
const NOT_SWEPT: [&str; 4] = ["mtu", "stable_secret", "mc_forwarding", "disable_ipv6"];

/// Every writable key of both families set to another value the kernel
/// takes, then one reset: each is the namespace's default again, and the
/// whole equals a fresh tap's. The IPv6 MTU, set below the link's, follows
/// the link again.
fn per_device_sysctls_are_the_namespaces_defaults() {
    let ns = TestNetns::new();
    ns.add_bridge("tpl-br0");
    let spec = bridged("tpl-br0");
    let mac = two_taps(&ns, &spec);
    let mut changed = Vec::new();
    for family in ["ipv4", "ipv6"] {
        let keys = sysctls(&ns, family, DIRTY);
        for (key, value) in keys.as_object().expect("keys") {
            if NOT_SWEPT.contains(&key.as_str()) {
                continue;
            }
            let Ok(now) = text(value).parse::<i64>() else {
                continue;
            };
            // The first other value the kernel takes.
            let taken = [now + 1, now - 1, 1, 0, 2]
                .into_iter()
                .filter(|&v| v != now)
                .find(|v| set_sysctl(&ns, family, DIRTY, key, &v.to_string()).is_ok());
            match taken {
                Some(v) if read_sysctl(&ns, family, DIRTY, key) != now.to_string() => {
                    changed.push(format!("{family}.{key}={v}"));
                }
                _ => eprintln!("{family}.{key}: no other value taken"),
            }
        }
    }
    set_sysctl(&ns, "ipv6", DIRTY, "mtu", "1300").expect("ipv6 mtu");
    set_sysctl(&ns, "ipv6", DIRTY, "disable_ipv6", "1").expect("disable_ipv6");
    eprintln!("{} keys changed: {changed:?}", changed.len());
    assert!(changed.len() > 80, "{changed:?}");
    assert_ne!(
        Snapshot::of(&ns, DIRTY).0["sysctl6"],
        Snapshot::of(&ns, FRESH).0["sysctl6"]
    );
    reset(&ns, &spec, mac).expect("reset");
    Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "sysctls");
    for family in ["ipv4", "ipv6"] {
        let default = sysctls(&ns, family, "default");
        let reset = sysctls(&ns, family, DIRTY);
        for (key, value) in default.as_object().expect("keys") {
            if key != "mtu" {
                assert_eq!(&reset[key], value, "{family}.{key}");
            }
        }
    }
    assert_eq!(read_sysctl(&ns, "ipv6", DIRTY, "mtu"), "1400");
}

/// A key the orchestrator set on the tap goes back to the namespace's
/// default as it is now, not as it was when the worker first read it; and
/// a key left as it was, whose default changed after the tap was made, is a
/// fresh tap's again within a second. All on one kernel handle, as a pool
/// worker resets tap after tap (the defaults are cached per thread).
fn a_default_changed_since_is_followed() {
    let ns = TestNetns::new();
    let spec = TapSpec::default();
    let mac = two_taps(&ns, &spec);
    ns.with_kernel(|k| {
        let mut reset = || k.reset_tap(name(DIRTY).into(), &spec, mac).expect("reset");
        // Fills the cache of the defaults.
        reset();
        set_sysctl(&ns, "ipv4", "default", "arp_announce", "2").expect("default");
        set_sysctl(&ns, "ipv6", "default", "dad_transmits", "3").expect("default");
        set_sysctl(&ns, "ipv4", DIRTY, "arp_announce", "1").expect("tap");
        set_sysctl(&ns, "ipv6", DIRTY, "dad_transmits", "5").expect("tap");
        reset();
        assert_eq!(read_sysctl(&ns, "ipv4", DIRTY, "arp_announce"), "2");
        assert_eq!(read_sysctl(&ns, "ipv6", DIRTY, "dad_transmits"), "3");
        set_sysctl(&ns, "ipv6", "default", "hop_limit", "33").expect("default");
        std::thread::sleep(Duration::from_millis(1100));
        reset();
        assert_eq!(read_sysctl(&ns, "ipv6", DIRTY, "hop_limit"), "33");
    });
}

/// A stable secret on the tap: restored to the default's when the default
/// has one; with none there, it cannot be unset.
fn a_stable_secret_is_restored_or_cannot_be() {
    let ns = TestNetns::new();
    let spec = TapSpec::default();
    let mac = two_taps(&ns, &spec);
    set_sysctl(&ns, "ipv6", DIRTY, "stable_secret", "2001:db8::99").expect("secret");
    let result = reset(&ns, &spec, mac);
    assert!(cannot_restore(&result, "stable_secret"), "{result:?}");

    // With a default secret, taps made from then on copy it.
    set_sysctl(&ns, "ipv6", "default", "stable_secret", "2001:db8::1234").expect("default");
    ns.with_kernel(|k| {
        k.delete_link(name(DIRTY).into()).expect("delete");
        k.delete_link(name(FRESH).into()).expect("delete");
    });
    let mac = two_taps(&ns, &spec);
    set_sysctl(&ns, "ipv6", DIRTY, "stable_secret", "2001:db8::99").expect("secret");
    set_sysctl(&ns, "ipv6", DIRTY, "addr_gen_mode", "0").expect("mode");
    reset(&ns, &spec, mac).expect("reset");
    Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "stable secret");
}

// ---------------------------------------------------------------- XDP

/// An XDP program attached in driver and in generic mode is detached; one
/// held by a BPF link cannot be, and the reset says so.
fn xdp_programs_are_detached_unless_held_by_a_link() {
    let ns = TestNetns::new();
    let spec = TapSpec::default();
    let mac = two_taps(&ns, &spec);
    let index = ns.link(DIRTY).expect("there")["ifindex"]
        .as_u64()
        .expect("index") as u32;
    let prog = xdp::load_pass();
    for mode in [xdp::DRV_MODE, xdp::SKB_MODE] {
        xdp::attach(&ns, index, &prog, mode);
        assert!(ns.link(DIRTY).expect("there").get("xdp").is_some());
        reset(&ns, &spec, mac).expect("reset");
        Snapshot::of(&ns, DIRTY).assert_same(&Snapshot::of(&ns, FRESH), "xdp");
    }
    let link = xdp::link(&ns, index, &prog);
    let result = reset(&ns, &spec, mac);
    assert!(cannot_restore(&result, "XDP"), "{result:?}");
    drop(link);
}

/// Loading an XDP program and attaching it, as an orchestrator's agent
/// would, with the `bpf` system call and rtnetlink.
mod xdp {
    use super::*;

    /// `XDP_FLAGS_DRV_MODE`, `XDP_FLAGS_SKB_MODE` (linux/if_link.h).
    pub const DRV_MODE: u32 = 1 << 2;
    pub const SKB_MODE: u32 = 1 << 1;

    /// `BPF_PROG_LOAD`, `BPF_LINK_CREATE` (linux/bpf.h), and the program and
    /// attach types.
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_LINK_CREATE: libc::c_long = 28;
    const BPF_PROG_TYPE_XDP: u32 = 6;
    const BPF_XDP: u32 = 37;

    fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> OwnedFd {
        // SAFETY: `attr` is a zero-filled `union bpf_attr` of the size
        // passed, laid out for `cmd`; every pointer in it points into
        // memory that outlives the call.
        let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
        assert!(fd >= 0, "bpf({cmd}): {}", std::io::Error::last_os_error());
        // SAFETY: the kernel returned a new descriptor that nothing else
        // owns.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    /// `r0 = XDP_PASS; exit`.
    pub fn load_pass() -> OwnedFd {
        let insns: [u8; 16] = [
            0xb7, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, // mov r0, 2
            0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
        ];
        let license = b"GPL\0";
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&BPF_PROG_TYPE_XDP.to_ne_bytes());
        attr[4..8].copy_from_slice(&2u32.to_ne_bytes()); // insn_cnt
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        bpf(BPF_PROG_LOAD, &mut attr)
    }

    /// A BPF link attaching `prog` to the link `index` (in `ns`), held as
    /// long as the returned descriptor.
    pub fn link(ns: &TestNetns, index: u32, prog: &OwnedFd) -> OwnedFd {
        let netns = ns.netns();
        let prog = prog.as_raw_fd() as u32;
        std::thread::spawn(move || {
            tap_pool::linux::enter(&netns).expect("enter");
            let mut attr = [0u8; 128];
            attr[0..4].copy_from_slice(&prog.to_ne_bytes());
            attr[4..8].copy_from_slice(&index.to_ne_bytes()); // target_ifindex
            attr[8..12].copy_from_slice(&BPF_XDP.to_ne_bytes()); // attach_type
            bpf(BPF_LINK_CREATE, &mut attr)
        })
        .join()
        .expect("link thread")
    }

    /// Attaches `prog` to the link `index` in `mode` with one
    /// `RTM_SETLINK` (`IFLA_XDP`), as `ip link set xdp` does.
    pub fn attach(ns: &TestNetns, index: u32, prog: &OwnedFd, mode: u32) {
        let netns = ns.netns();
        let prog = prog.as_raw_fd();
        std::thread::spawn(move || {
            tap_pool::linux::enter(&netns).expect("enter");
            let mut msg = Vec::new();
            msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, below
            msg.extend_from_slice(&libc::RTM_SETLINK.to_ne_bytes());
            msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
            msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
            msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
            msg.extend_from_slice(&[0, 0, 0, 0]); // family, pad, type
            msg.extend_from_slice(&index.to_ne_bytes());
            msg.extend_from_slice(&[0; 8]); // flags, change
            msg.extend_from_slice(&20u16.to_ne_bytes()); // IFLA_XDP, 4 + 8 + 8
            msg.extend_from_slice(&libc::IFLA_XDP.to_ne_bytes());
            msg.extend_from_slice(&8u16.to_ne_bytes());
            msg.extend_from_slice(&1u16.to_ne_bytes()); // IFLA_XDP_FD
            msg.extend_from_slice(&prog.to_ne_bytes());
            msg.extend_from_slice(&8u16.to_ne_bytes());
            msg.extend_from_slice(&3u16.to_ne_bytes()); // IFLA_XDP_FLAGS
            msg.extend_from_slice(&mode.to_ne_bytes());
            let len = msg.len() as u32;
            msg[0..4].copy_from_slice(&len.to_ne_bytes());
            // SAFETY: socket takes no pointers.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_ROUTE,
                )
            };
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            // SAFETY: a new descriptor that nothing else owns.
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            let mut addr: libc::sockaddr_nl =
                // SAFETY: sockaddr_nl is plain old data; zeroes are valid.
                unsafe { std::mem::zeroed() };
            addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            // SAFETY: `msg` and `addr` are live for the call, with their
            // sizes passed; sendto only reads them.
            let sent = unsafe {
                libc::sendto(
                    socket.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            assert_eq!(
                sent,
                msg.len() as isize,
                "{}",
                std::io::Error::last_os_error()
            );
            let mut reply = [0u8; 4096];
            // SAFETY: `reply` is writable for its whole length.
            let got = unsafe {
                libc::recv(
                    socket.as_raw_fd(),
                    reply.as_mut_ptr().cast(),
                    reply.len(),
                    0,
                )
            };
            assert!(got >= 20, "{}", std::io::Error::last_os_error());
            let code = i32::from_ne_bytes(reply[16..20].try_into().expect("four bytes"));
            assert_eq!(code, 0, "attaching XDP in mode {mode}: errno {}", -code);
        })
        .join()
        .expect("attach thread");
    }
}

// ---------------------------------------------------------------- pool

/// Through the pool: a tap leased, dirtied in many ways and released comes
/// back, on the next lease, equal to a tap made fresh with the pool's spec.
async fn a_released_tap_comes_back_as_a_fresh_one() {
    let ns = TestNetns::new();
    ns.add_bridge("tpl-br0");
    let spec = bridged("tpl-br0");
    let pool = ns.start_pool({
        let mut c = PoolConfig::default();
        c.size = 1;
        c.tap = spec;
        c
    });
    pool.send(Warm).await.unwrap();
    settle(&pool).await;
    let lease = acquire(&pool, "tpl-fallback").await.unwrap();
    let tap = lease.name.to_string();
    ns.ip_batch(&format!(
        "route add 10.1.0.0/16 dev {tap} table 100\n\
         route add 2001:db8:1::/64 dev {tap}\n\
         link set dev {tap} promisc on txqueuelen 5 alias tenant-a\n"
    ));
    tc_batch(
        &ns,
        &format!("qdisc add dev {tap} root tbf rate 1mbit burst 32kbit latency 400ms"),
    );
    ns.run("bridge", &["link", "set", "dev", &tap, "hairpin", "on"]);
    set_sysctl(&ns, "ipv4", &tap, "proxy_arp", "1").expect("proxy_arp");
    set_sysctl(&ns, "ipv6", &tap, "forwarding", "1").expect("forwarding");
    release(&pool, &lease).await.unwrap();
    settle(&pool).await;
    let again = acquire(&pool, "tpl-fallback").await.unwrap();
    assert_eq!(again.name.to_string(), tap, "the same tap, reset");
    ns.with_kernel(|k| k.create_tap(name(FRESH), &spec).expect("create"));
    Snapshot::of(&ns, &tap).assert_same(&Snapshot::of(&ns, FRESH), "through the pool");
}

/// Through the pool: a tap the reset cannot restore (a multipath route
/// through it) is deleted, not handed out again, and the pool makes a new
/// one; the route's next hop through it goes with it.
async fn a_tap_that_cannot_be_restored_is_deleted_and_replaced() {
    let ns = TestNetns::new();
    let _other = other_link(&ns);
    let pool = ns.start_pool({
        let mut c = PoolConfig::default();
        c.size = 1;
        c
    });
    pool.send(Warm).await.unwrap();
    settle(&pool).await;
    let lease = acquire(&pool, "tpl-fallback").await.unwrap();
    let tap = lease.name.to_string();
    let index = ns.link(&tap).expect("there")["ifindex"].as_u64();
    ns.ip(&[
        "route",
        "add",
        "10.4.0.0/16",
        "nexthop",
        "dev",
        &tap,
        "nexthop",
        "via",
        "192.0.2.2",
        "dev",
        "tpl-other",
    ]);
    release(&pool, &lease).await.unwrap();
    settle(&pool).await;
    assert!(
        ns.links().iter().all(|l| l["ifindex"].as_u64() != index),
        "the tap that could not be restored is still there"
    );
    let next = acquire(&pool, "tpl-fallback").await.unwrap();
    assert_ne!(
        ns.link(&next.name.to_string()).expect("there")["ifindex"].as_u64(),
        index
    );
    let routes = ns.run("ip", &["-j", "route", "show", "table", "all"]);
    assert!(!routes.contains(&format!("\"{tap}\"")), "{routes}");
}
