//! What the policy forbids is refused with a typed [`Refusal`] and changes
//! nothing: `ip -j -d link show` in the namespace and the helper's ledger
//! are the same after each refused call as before it.
//!
//! [`Refusal`]: tap_pool::Refusal

use serde_json::{Value, json};

use crate::child::TIMEOUT_ENV;
use tap_pool_testkit::{KernelTest, kernel_test};

use crate::scene::{
    BRIDGE, GROUP, NOBODY, OTHER, OTHER_GROUP, Peer, STRANGER, Scene, policy_peers,
};

pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(a_peer_the_policy_does_not_name_is_refused_at_connect_and_logged),
        kernel_test!(what_is_not_the_peers_cannot_be_deleted_reset_or_regrouped),
        kernel_test!(a_create_outside_the_policy_is_refused_and_makes_nothing),
        kernel_test!(a_group_holding_what_is_not_the_peers_is_not_deleted),
        kernel_test!(a_peer_at_its_limit_of_taps_is_refused_another),
        kernel_test!(an_acquire_whose_fallback_name_the_policy_refuses_gets_the_refusal),
        kernel_test!(a_rule_at_its_connection_limit_is_refused_one_more_until_one_closes),
    ]
}

/// The refusal in a `calls` child's answer, or `Null` if it is not one.
fn refusal(answer: &Value) -> Value {
    answer["err"]["Refused"]["refusal"].clone()
}

/// Puts `call` as `calls` and asserts that it is refused with `expected`
/// and that nothing changed in the namespace or the ledger. The namespace
/// must be still ([`Scene::settled`]) after what the test last made.
fn refused(scene: &Scene, calls: &mut Peer, call: &Value, expected: &Value) {
    let before = scene.snapshot();
    let answer = calls.ask(&call.to_string());
    assert_eq!(&refusal(&answer), expected, "{call} -> {answer}");
    let after = scene.snapshot();
    assert!(
        before == after,
        "{call} was refused but changed something:\n{}\nledger before:\n{}\nledger after:\n{}",
        differences(&before.0, &after.0, "links").join("\n"),
        before.1,
        after.1
    );
}

/// Where `before` and `after` differ, one line per value, as
/// `path: before -> after` (a CI log keeps the head of a long message only).
fn differences(before: &Value, after: &Value, path: &str) -> Vec<String> {
    match (before, after) {
        _ if before == after => Vec::new(),
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|key| {
                    let missing = Value::Null;
                    differences(
                        b.get(key).unwrap_or(&missing),
                        a.get(key).unwrap_or(&missing),
                        &format!("{path}.{key}"),
                    )
                })
                .collect()
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => b
            .iter()
            .zip(a)
            .enumerate()
            .flat_map(|(i, (b, a))| {
                let name = b["ifname"].as_str().map_or(i.to_string(), str::to_string);
                differences(b, a, &format!("{path}[{name}]"))
            })
            .collect(),
        _ => vec![format!("{path}: {before} -> {after}")],
    }
}

fn a_peer_the_policy_does_not_name_is_refused_at_connect_and_logged() {
    let scene = Scene::new();
    let before = scene.settled();
    let mut stranger = scene.child(STRANGER, "calls", "");
    let connected = stranger.read();
    assert_eq!(connected["connected"], false, "{connected}");
    assert_eq!(
        refusal(&connected),
        json!({ "PeerNotAllowed": { "uid": STRANGER, "gid": STRANGER } }),
        "{connected}"
    );
    stranger.finish();
    assert!(
        before == scene.snapshot(),
        "a refused connection changed something"
    );
    crate::scene::eventually(10, "the helper logs the refusal", || {
        scene
            .log()
            .lines()
            .any(|l| l.contains("connection refused") && l.contains(&STRANGER.to_string()))
    });
}

fn what_is_not_the_peers_cannot_be_deleted_reset_or_regrouped() {
    let scene = Scene::with_policy(&policy_peers(64));
    // A tap made by root, owned by nobody, named as nobody's pool names
    // its taps: neither its name nor its owner makes it nobody's.
    scene.ns.ip(&[
        "tuntap", "add", "dev", "tph-7", "mode", "tap", "user", "nobody",
    ]);
    // A tap the helper made for the other peer.
    let mut other = scene.calls(OTHER);
    let spec = json!({ "bridge": BRIDGE, "device_group": OTHER_GROUP });
    let made = other.ask(&json!({ "create": ["tpo-0", spec] }).to_string());
    assert!(made["ok"].is_u64(), "{made}\n{}", scene.log());
    // And one of nobody's own, which nobody may change (the control).
    let mut calls = scene.calls(NOBODY);
    let spec = json!({ "bridge": BRIDGE, "device_group": GROUP });
    let own = calls.ask(&json!({ "create": ["tph-0", spec] }).to_string());
    assert!(own["ok"].is_u64(), "{own}\n{}", scene.log());
    scene.settled();

    let mut targets = Vec::new();
    for name in ["lo", BRIDGE, "tph-7", "tpo-0"] {
        let index = scene.index(name);
        // By name, by name and index, and by the index with a pool name.
        targets.push(json!({ "name": name, "index": null }));
        targets.push(json!({ "name": name, "index": index }));
        targets.push(json!({ "name": "tph-1", "index": index }));
    }
    for device in &targets {
        let not_yours = json!({ "NotYours": { "name": device["name"], "index": device["index"] } });
        refused(&scene, &mut calls, &json!({ "delete": device }), &not_yours);
        let reset = json!({ "reset": [device, spec, [2, 0, 0, 0, 0, 1]] });
        refused(&scene, &mut calls, &reset, &not_yours);
        let regroup = json!({ "set_group": [device, GROUP] });
        refused(&scene, &mut calls, &regroup, &not_yours);
    }
    // Nobody's own tap is nobody's to change, by name or by index.
    let index = scene.index("tph-0");
    let regrouped =
        calls.ask(&json!({ "set_group": [{ "name": "tph-0", "index": index }, 0] }).to_string());
    assert_eq!(regrouped["ok"], Value::Null, "{regrouped}");
    assert_eq!(scene.ns.link("tph-0").expect("tph-0")["group"], "default");
    let deleted = calls.ask(&json!({ "delete": { "name": "tph-0", "index": null } }).to_string());
    assert_eq!(deleted["ok"], Value::Null, "{deleted}");
    assert!(scene.ns.link("tph-0").is_none());
    // The other peer's tap is its own.
    let deleted = other.ask(&json!({ "delete": { "name": "tpo-0", "index": null } }).to_string());
    assert_eq!(deleted["ok"], Value::Null, "{deleted}");
    assert_eq!(scene.taps(), ["tph-7"]);
    calls.finish();
    other.finish();
}

fn a_create_outside_the_policy_is_refused_and_makes_nothing() {
    let scene = Scene::new();
    scene.ns.add_bridge("tph-br1");
    scene.settled();
    let mut calls = scene.calls(NOBODY);
    let create = |name: &str, spec: Value| json!({ "create": [name, spec] });
    for name in [
        "tph-01",
        "tph-x",
        "eth0",
        "lo",
        BRIDGE,
        "vm-00000000000g",
        "tpo-0",
    ] {
        refused(
            &scene,
            &mut calls,
            &create(name, json!({})),
            &json!({ "Name": { "name": name } }),
        );
    }
    refused(
        &scene,
        &mut calls,
        &create("tph-0", json!({ "bridge": "tph-br1" })),
        &json!({ "Bridge": { "bridge": "tph-br1" } }),
    );
    refused(
        &scene,
        &mut calls,
        &create("tph-0", json!({ "owner": 0 })),
        &json!({ "Owner": { "uid": 0 } }),
    );
    refused(
        &scene,
        &mut calls,
        &create("tph-0", json!({ "owner": STRANGER })),
        &json!({ "Owner": { "uid": STRANGER } }),
    );
    refused(
        &scene,
        &mut calls,
        &create("tph-0", json!({ "group": NOBODY })),
        &json!({ "Group": { "gid": NOBODY } }),
    );
    refused(
        &scene,
        &mut calls,
        &create("tph-0", json!({ "device_group": OTHER_GROUP })),
        &json!({ "DeviceGroup": { "group": OTHER_GROUP } }),
    );
    // What the policy gives is made: a pool name and a fallback name, with
    // the bridge and the device group it names.
    let spec = json!({ "bridge": BRIDGE, "device_group": GROUP });
    for name in ["tph-0", "vm-00000000000a"] {
        let made = calls.ask(&create(name, spec.clone()).to_string());
        assert!(made["ok"].is_u64(), "{made}\n{}", scene.log());
    }
    assert_eq!(scene.taps(), ["tph-0", "vm-00000000000a"]);
    let link = scene.ns.link("tph-0").expect("tph-0");
    assert_eq!(link["linkinfo"]["info_data"]["user"], "nobody", "{link}");
    scene.settled();
    // A device group the rule does not give cannot be set either.
    let device = json!({ "name": "tph-0", "index": null });
    refused(
        &scene,
        &mut calls,
        &json!({ "set_group": [device, OTHER_GROUP] }),
        &json!({ "DeviceGroup": { "group": OTHER_GROUP } }),
    );
    let drained = calls.ask(&json!({ "delete_group": GROUP }).to_string());
    assert_eq!(drained["ok"], Value::Null, "{drained}");
    assert!(scene.taps().is_empty(), "{:?}", scene.taps());
    calls.finish();
}

fn a_group_holding_what_is_not_the_peers_is_not_deleted() {
    let scene = Scene::new();
    let mut calls = scene.calls(NOBODY);
    let spec = json!({ "bridge": BRIDGE, "device_group": GROUP });
    for name in ["tph-0", "tph-1"] {
        let made = calls.ask(&json!({ "create": [name, spec] }).to_string());
        assert!(made["ok"].is_u64(), "{made}\n{}", scene.log());
    }
    // Root puts a bridge in the group, then a tap owned by nobody made by
    // hand: either way the group is not nobody's to delete.
    let group = GROUP.to_string();
    let strangers: [&[&str]; 2] = [
        &["link", "add", "tph-d", "type", "bridge"],
        &[
            "tuntap", "add", "dev", "tph-7", "mode", "tap", "user", "nobody",
        ],
    ];
    for (stranger, add) in ["tph-d", "tph-7"].into_iter().zip(strangers) {
        scene.ns.ip(add);
        scene.ns.ip(&["link", "set", stranger, "group", &group]);
        let before = scene.settled();
        let answer = calls.ask(&json!({ "delete_group": GROUP }).to_string());
        assert_eq!(
            refusal(&answer),
            json!({ "GroupNotYours": { "group": GROUP, "member": stranger } }),
            "{answer}"
        );
        let after = scene.snapshot();
        assert!(
            before == after,
            "a refused group delete changed something:\n{}",
            differences(&before.0, &after.0, "links").join("\n")
        );
        for name in ["tph-0", "tph-1", stranger] {
            assert!(scene.ns.link(name).is_some(), "{name} is gone");
        }
        scene.ns.ip(&["link", "del", stranger]);
    }
    refused(
        &scene,
        &mut calls,
        &json!({ "delete_group": 0 }),
        &json!({ "DeviceGroup": { "group": 0 } }),
    );
    refused(
        &scene,
        &mut calls,
        &json!({ "delete_group": OTHER_GROUP }),
        &json!({ "DeviceGroup": { "group": OTHER_GROUP } }),
    );
    // With only nobody's taps in it, the group goes.
    let deleted = calls.ask(&json!({ "delete_group": GROUP }).to_string());
    assert_eq!(deleted["ok"], Value::Null, "{deleted}");
    assert!(scene.taps().is_empty(), "{:?}", scene.taps());
    calls.finish();
}

fn a_peer_at_its_limit_of_taps_is_refused_another() {
    let scene = Scene::with_policy(&policy_peers(2));
    let mut calls = scene.calls(NOBODY);
    let spec = json!({ "device_group": GROUP });
    for name in ["tph-0", "tph-1"] {
        let made = calls.ask(&json!({ "create": [name, spec] }).to_string());
        assert!(made["ok"].is_u64(), "{made}\n{}", scene.log());
    }
    scene.settled();
    refused(
        &scene,
        &mut calls,
        &json!({ "create": ["tph-2", spec] }),
        &json!({ "Limit": { "max": 2 } }),
    );
    // Another peer's taps do not count against nobody's limit, nor
    // nobody's against its.
    let mut other = scene.calls(OTHER);
    let made = other.ask(&json!({ "create": ["tpo-0", {}] }).to_string());
    assert!(made["ok"].is_u64(), "{made}");
    // One deleted, one may be made again.
    let deleted = calls.ask(&json!({ "delete": { "name": "tph-0", "index": null } }).to_string());
    assert_eq!(deleted["ok"], Value::Null, "{deleted}");
    let made = calls.ask(&json!({ "create": ["tph-2", spec] }).to_string());
    assert!(made["ok"].is_u64(), "{made}");
    assert_eq!(scene.taps(), ["tph-1", "tph-2", "tpo-0"]);
    calls.finish();
    other.finish();
}

/// Through the pool: an `Acquire` that must create its fallback tap, under a
/// name the policy does not give, fails with the helper's refusal (its
/// caller sees `Refused` and why), the helper logs it, and nothing is made.
fn an_acquire_whose_fallback_name_the_policy_refuses_gets_the_refusal() {
    let scene = Scene::new();
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3, "{}", scene.log());
    // The pool's three taps leased: the next Acquire creates its fallback.
    for i in 0..3 {
        assert!(pool.ask(&format!("acquire vm-00000000000{i}"))["ok"].is_object());
    }
    let before = scene.taps();
    let refused = pool.ask("acquire not-a-vm");
    let debug = refused["err"].as_str().unwrap_or_default();
    assert!(
        debug.contains("Refused") && debug.contains("Name"),
        "{refused}"
    );
    let text = refused["text"].as_str().unwrap_or_default();
    assert!(text.contains("not-a-vm"), "{refused}");
    assert_eq!(scene.taps(), before, "nothing made");
    assert!(
        scene.log().contains("refused") && scene.log().contains("not-a-vm"),
        "{}",
        scene.log()
    );
    pool.finish();
}

/// A rule's `max_connections`: one more connection of its peers is
/// refused at connect with `Busy` (the client waits for a slot until its
/// timeout, then says so), and taken once one of theirs closes.
fn a_rule_at_its_connection_limit_is_refused_one_more_until_one_closes() {
    let scene = Scene::with_policy(&crate::scene::policy_with("max_connections = 2"));
    let held = [scene.calls(NOBODY), scene.calls(NOBODY)];
    let mut third = scene.child_with(NOBODY, "calls", "", &[(TIMEOUT_ENV, "1000")]);
    let connected = third.read();
    assert_eq!(connected["connected"], false, "{connected}");
    assert_eq!(
        refusal(&connected),
        json!({ "Busy": { "max": 2 } }),
        "{connected}"
    );
    third.finish();
    let [first, mut second] = held;
    first.finish();
    // The helper counts a connection until its thread has ended.
    crate::scene::eventually(10, "a connection is taken again", || {
        let mut again = scene.child(NOBODY, "calls", "");
        let taken = again.read()["connected"] == true;
        again.finish();
        taken
    });
    let listed = second.ask(&json!({ "list": null }).to_string());
    assert!(
        listed["ok"].is_array(),
        "the held one still serves: {listed}"
    );
    second.finish();
}
