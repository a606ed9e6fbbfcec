//! `tap-pool ls`: what it shows of each device agrees with `ip`.

use predicates::prelude::*;
use serde_json::Value;
use tap_pool_testkit::{KernelTest, flags, kernel_test, text};

use crate::scene::{Scene, json, names_of};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(ls_shows_the_pools_devices_as_ip_does),
        kernel_test!(ls_all_adds_the_devices_that_are_not_the_pools),
        kernel_test!(ls_prints_a_table),
    ]
}

fn row<'a>(rows: &'a Value, name: &str) -> &'a Value {
    rows.as_array()
        .expect("an array")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} listed: {rows}"))
}

fn ls_shows_the_pools_devices_as_ip_does() {
    let scene = Scene::new();
    let out = scene.tap_pool(&["ls", "--json"]).assert().success();
    let rows = json(&out.get_output().stdout);
    // The pool's: its names and its group; not other0, the bridge or lo.
    assert_eq!(
        names_of(&rows),
        ["tpc-0", "tpc-1", "tpc-2", "tpc-9", "vm-7"]
    );
    let bridge = scene.ns.link("tpc-br0").expect("the bridge");
    for tap in ["tpc-0", "tpc-1", "vm-7"] {
        let r = row(&rows, tap);
        let link = scene.ns.link(tap).expect("ip shows it");
        let data = &link["linkinfo"]["info_data"];
        assert_eq!(r["index"], link["ifindex"], "{tap}");
        assert_eq!(r["kind"], "tap");
        assert_eq!(text(&r["owner"]), text(&data["user"]), "{tap}");
        assert_eq!(r["owner"], 54321);
        assert_eq!(text(&r["group"]), text(&data["group"]), "{tap}");
        assert_eq!(r["group"], 54322);
        // The master by name, as ip names it, and by index.
        assert_eq!(r["master"], link["master"], "{tap}");
        assert_eq!(r["master"], "tpc-br0");
        assert_eq!(r["master_index"], bridge["ifindex"]);
        assert_eq!(text(&r["device_group"]), text(&link["group"]), "{tap}");
        assert_eq!(r["device_group"], 4242);
        assert_eq!(r["mtu"], link["mtu"]);
        assert_eq!(r["up"], true);
        assert_eq!(r["persistent"], data["persist"]);
        // In use exactly while a file is attached: ip sees its carrier.
        let attached = flags(&link).contains(&"LOWER_UP".to_owned());
        assert_eq!(attached, tap == "tpc-1", "{tap}: {link}");
        let state = if attached { "in_use" } else { "idle" };
        assert_eq!(r["state"], state, "{tap}");
    }
    let class = |name| {
        (
            row(&rows, name)["class"].clone(),
            row(&rows, name)["verdict"].clone(),
        )
    };
    assert_eq!(class("tpc-0"), ("pool_tap".into(), "adoptable".into()));
    assert_eq!(row(&rows, "tpc-0")["pool_index"], 0);
    assert_eq!(class("tpc-1"), ("pool_tap".into(), "in_use".into()));
    assert_eq!(class("vm-7"), ("fallback_tap".into(), "leftover".into()));
    assert_eq!(row(&rows, "vm-7")["pool_index"], Value::Null);
    assert_eq!(class("tpc-2"), ("pool_tap".into(), "other_owner".into()));
    assert_eq!(row(&rows, "tpc-2")["owner"], 1);
    assert_eq!(row(&rows, "tpc-2")["master"], Value::Null);
    assert_eq!(class("tpc-9"), ("tun_device".into(), "not_a_tap".into()));
    assert_eq!(row(&rows, "tpc-9")["kind"], "tun");
    let gc: Vec<&str> = ["tpc-0", "tpc-1", "tpc-2", "tpc-9", "vm-7"]
        .into_iter()
        .filter(|n| row(&rows, n)["gc"] == true)
        .collect();
    assert_eq!(gc, ["tpc-0", "vm-7"]);
}

fn ls_all_adds_the_devices_that_are_not_the_pools() {
    let scene = Scene::new();
    let out = scene
        .tap_pool(&["ls", "--all", "--json"])
        .assert()
        .success();
    let rows = json(&out.get_output().stdout);
    assert_eq!(
        names_of(&rows),
        ["other0", "tpc-0", "tpc-1", "tpc-2", "tpc-9", "vm-7"],
        "every tun/tap device ip shows: {:?}",
        scene.ns.tun_names()
    );
    let other = row(&rows, "other0");
    assert_eq!(other["class"], "not_ours");
    assert_eq!(other["gc"], false);
    assert_eq!(
        other["index"],
        scene.ns.link("other0").expect("ip")["ifindex"]
    );
}

fn ls_prints_a_table() {
    let scene = Scene::new();
    scene.tap_pool(&["ls"]).assert().success().stdout(
        predicate::str::is_match(r"(?m)^NAME +INDEX +CLASS +STATE +OWNER +GROUP +MASTER +DEVGROUP")
            .expect("regex")
            .and(
                predicate::str::is_match(
                    r"(?m)^tpc-1 +\d+ +pool tap +in use +54321 +54322 +tpc-br0 +4242 +tap .*keep: in use$",
                )
                .expect("regex"),
            )
            .and(
                predicate::str::is_match(r"(?m)^vm-7 +\d+ +fallback tap +idle .* delete$")
                    .expect("regex"),
            )
            .and(predicate::str::contains("other0").not()),
    );
}
