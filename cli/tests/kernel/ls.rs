//! `tap-pool ls`: what it shows of each device agrees with `ip`.

use predicates::prelude::*;
use serde_json::Value;
use tap_pool::{TapName, TapSpec};
use tap_pool_testkit::{KernelTest, TestNetns, flags, kernel_test, text};

use crate::scene::{Scene, json, names_of, tap_pool};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(ls_shows_the_pools_devices_as_ip_does),
        kernel_test!(ls_all_adds_the_devices_that_are_not_the_pools),
        kernel_test!(ls_prints_a_table),
        kernel_test!(names_of_any_bytes_show_escaped_and_exact),
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

/// Device names are attacker-influenced bytes (any but NUL, `/`, `:`, `%`
/// and white space): `ls`, its JSON and `gc` show each escaped as
/// docs/operations.md says (printable ASCII as itself, `\` as `\\`, any
/// other byte as `\xNN`), so that no terminal escape reaches the terminal,
/// the JSON is valid, and no two names show alike.
fn names_of_any_bytes_show_escaped_and_exact() {
    let ns = TestNetns::new();
    let names: [(&[u8], &str); 6] = [
        (b"tap\xff", r"tap\xff"),
        (b"tap\xfe", r"tap\xfe"),
        (r"tap\xff".as_bytes(), r"tap\\xff"),
        ("tap-\u{e9}".as_bytes(), r"tap-\xc3\xa9"),
        (b"x\x1b[31mred", r"x\x1b[31mred"),
        (b"bell\x07\x08\x7f", r"bell\x07\x08\x7f"),
    ];
    ns.with_kernel(|k| {
        for (bytes, _) in names {
            let name = TapName::from_bytes(bytes).expect("a device name");
            k.create_tap(name, &TapSpec::default()).expect("create");
        }
    });
    let ls = |args: &[&str]| {
        let out = tap_pool()
            .args(["--netns", &ns.path(), "ls", "--all"])
            .args(args)
            .assert()
            .success();
        out.get_output().stdout.clone()
    };
    let rows = json(&ls(&["--json"]));
    let mut shown = names_of(&rows);
    let mut want: Vec<String> = names.iter().map(|(_, s)| (*s).to_owned()).collect();
    shown.sort();
    want.sort();
    assert_eq!(shown, want);
    let gc = tap_pool()
        .args(["--netns", &ns.path(), "gc", "--json"])
        .assert()
        .success();
    assert_eq!(names_of(&json(&gc.get_output().stdout)["kept"]), want);
    for text in [ls(&[]), gc.get_output().stdout.clone()] {
        assert!(
            text.iter()
                .all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)),
            "only printable ASCII reaches the terminal: {}",
            String::from_utf8_lossy(&text)
        );
    }
}
