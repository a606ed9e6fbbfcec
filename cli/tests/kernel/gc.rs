//! `tap-pool gc`: a dry run changes nothing; `--yes` deletes exactly the
//! pool's unheld leftovers, and nothing a process holds or that is not the
//! pool's.

use std::os::fd::AsRawFd;

use predicates::prelude::*;
use tap_pool_testkit::{KernelTest, TestNetns, flags, kernel_test, name};

use crate::scene::{ConfigFile, Scene, ip_names, json, names_of, pool_spec, tap_pool};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(a_dry_run_deletes_nothing),
        kernel_test!(gc_yes_deletes_exactly_the_unheld_leftovers),
        kernel_test!(a_group_of_leftovers_goes_in_one_group_delete),
        kernel_test!(a_vmm_that_hides_its_carrier_keeps_its_tap),
    ]
}

fn a_dry_run_deletes_nothing() {
    let scene = Scene::new();
    let before = ip_names(&scene.ns);
    scene.tap_pool(&["gc"]).assert().success().stdout(
        predicate::str::contains("would delete tpc-0")
            .and(predicate::str::contains("would delete vm-7"))
            .and(predicate::str::contains("keep tpc-1"))
            .and(predicate::str::contains("in use"))
            .and(predicate::str::contains("dry run: 2 to delete, 4 kept")),
    );
    let out = scene.tap_pool(&["gc", "--json"]).assert().success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["dry_run"], true);
    assert_eq!(names_of(&report["would_delete"]), ["tpc-0", "vm-7"]);
    assert_eq!(names_of(&report["deleted"]), Vec::<String>::new());
    assert_eq!(
        names_of(&report["kept"]),
        ["other0", "tpc-1", "tpc-2", "tpc-9"]
    );
    assert_eq!(ip_names(&scene.ns), before, "nothing changed");
}

fn gc_yes_deletes_exactly_the_unheld_leftovers() {
    let scene = Scene::new();
    let before = ip_names(&scene.ns);
    let out = scene
        .tap_pool(&["gc", "--yes", "--json"])
        .assert()
        .success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["dry_run"], false);
    assert_eq!(names_of(&report["deleted"]), ["tpc-0", "vm-7"]);
    assert_eq!(
        names_of(&report["kept"]),
        ["other0", "tpc-1", "tpc-2", "tpc-9"]
    );
    assert_eq!(names_of(&report["failed"]), Vec::<String>::new());
    // The group also holds the VMM's tap and a tun device: one by one.
    assert_eq!(report["bulk"], false);
    let after = ip_names(&scene.ns);
    let want: Vec<String> = before
        .into_iter()
        .filter(|n| n != "tpc-0" && n != "vm-7")
        .collect();
    assert_eq!(after, want, "exactly the two leftovers went");
    for kept in ["lo", "tpc-br0", "tpc-1", "tpc-2", "tpc-9", "other0"] {
        assert!(after.iter().any(|n| n == kept), "{kept} kept: {after:?}");
    }
    // The VMM still has its tap, attached.
    let held = scene.ns.link("tpc-1").expect("tpc-1");
    assert!(flags(&held).contains(&"LOWER_UP".to_owned()), "{held}");
    // Nothing left to do.
    let out = scene
        .tap_pool(&["gc", "--yes", "--json"])
        .assert()
        .success();
    assert_eq!(
        names_of(&json(&out.get_output().stdout)["deleted"]),
        Vec::<String>::new()
    );
}

fn a_group_of_leftovers_goes_in_one_group_delete() {
    let ns = TestNetns::new();
    ns.add_bridge("tpc-br0");
    let spec = pool_spec();
    ns.with_kernel(|k| {
        for i in 0..40 {
            k.create_tap(name(&format!("tpc-{i}")), &spec)
                .expect("create");
        }
    });
    let config = ConfigFile::new(crate::scene::CONFIG);
    let out = tap_pool()
        .args(["--netns", &ns.path(), "--config", config.arg(), "-q"])
        .args(["gc", "--yes", "--json"])
        .assert()
        .success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["bulk"], true, "{report}");
    assert_eq!(report["deleted"].as_array().expect("a list").len(), 40);
    assert!(ns.tun_names().is_empty(), "{:?}", ns.tun_names());
    assert_eq!(ip_names(&ns), ["lo", "tpc-br0"], "the bridge stays");
}

/// A VMM can make a single-queue tap look closed (`TUNSETCARRIER 0` on its
/// own file needs no capability): the listing then says idle, and only
/// gc's own attach, which the kernel refuses (`EBUSY`), tells it is held.
fn a_vmm_that_hides_its_carrier_keeps_its_tap() {
    let scene = Scene::new();
    let vmm = scene.ns.attach("tpc-0", true);
    let off: libc::c_int = 0;
    // SAFETY: TUNSETCARRIER reads one int, which `off` is.
    let rc = unsafe { libc::ioctl(vmm.as_raw_fd(), libc::TUNSETCARRIER, &off) };
    assert_eq!(rc, 0, "TUNSETCARRIER: {}", std::io::Error::last_os_error());
    let index = scene.ns.link("tpc-0").expect("tpc-0")["ifindex"].clone();
    // The listing believes it.
    let out = scene.tap_pool(&["ls", "--json"]).assert().success();
    let rows = json(&out.get_output().stdout);
    let listed = rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == "tpc-0")
        .expect("tpc-0 listed");
    assert_eq!(listed["state"], "idle", "{listed}");
    let out = scene
        .tap_pool(&["gc", "--yes", "--json"])
        .assert()
        .success();
    let report = json(&out.get_output().stdout);
    assert_eq!(names_of(&report["deleted"]), ["vm-7"], "{report:#}");
    let kept = report["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .find(|e| e["name"] == "tpc-0")
        .unwrap_or_else(|| panic!("tpc-0 kept: {report:#}"));
    assert!(
        kept["reason"].as_str().expect("text").contains("in use"),
        "{kept}"
    );
    let still = scene.ns.link("tpc-0").expect("the VMM keeps its tap");
    assert_eq!(still["ifindex"], index, "the same device");
    drop(vmm);
}
