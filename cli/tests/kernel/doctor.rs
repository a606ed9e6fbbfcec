//! `tap-pool doctor`: all ok (exit status 0) in a healthy namespace; a
//! problem (exit status 1) for a full bridge, and for a user with no
//! capabilities.

use std::os::unix::fs::PermissionsExt;
use std::process::Command as StdCommand;

use predicates::prelude::*;
use serde_json::Value;
use tap_pool_testkit::{KernelTest, TestNetns, kernel_test};

use crate::scene::{CONFIG, ConfigFile, json, tap_pool};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(a_healthy_namespace_is_all_ok),
        kernel_test!(a_full_bridge_is_a_problem),
        kernel_test!(a_user_without_capabilities_is_told_what_it_lacks),
        kernel_test!(a_tun_device_the_vmms_cannot_open_is_a_problem),
    ]
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("a {name} check: {report}"))
}

fn a_healthy_namespace_is_all_ok() {
    let ns = TestNetns::new();
    ns.add_bridge("tpc-br0");
    let config = ConfigFile::new(CONFIG);
    // A /dev/net/tun the pool's tap owner (54321) may open, whatever the
    // host's mode.
    let dir = tempfile::tempdir().expect("temp dir");
    let doctor = |json: bool| {
        let mut command = with_tun_node(dir.path(), "0666", "0:0");
        command.args(["--netns", &ns.path(), "--config", config.arg(), "doctor"]);
        if json {
            command.arg("--json");
        }
        assert_cmd::Command::from_std(command)
    };
    let out = doctor(true).assert().success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["ok"], true, "{report:#}");
    for name in [
        "tun_device",
        "tun_open",
        "cap_net_admin",
        "cap_sys_admin",
        "netns",
        "bridge",
        "pool_names",
        "ifindex",
        "proc_sys_net",
    ] {
        assert_eq!(check(&report, name)["ok"], true, "{name}: {report:#}");
    }
    let bridge = check(&report, "bridge")["detail"].as_str().expect("text");
    assert!(
        bridge.contains("tpc-br0 has 0 ports: 1023 left"),
        "{bridge}"
    );
    let names = check(&report, "pool_names")["detail"]
        .as_str()
        .expect("text");
    // "tpc-" leaves 11 digits: 10^11 names.
    assert!(names.contains("100,000,000,000 pool names"), "{names}");
    doctor(false)
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^ok +tun_device ").expect("regex"))
        .stdout(predicate::str::contains("PROBLEM").not());
}

fn a_full_bridge_is_a_problem() {
    let ns = TestNetns::new();
    ns.add_bridge("tpc-br0");
    // A bridge takes at most 1023 ports (ifb: this kernel has no dummy
    // driver).
    let script: String = (0..1023)
        .map(|i| format!("link add d{i} type ifb\nlink set d{i} master tpc-br0\n"))
        .collect();
    ns.ip_batch(&script);
    let config = ConfigFile::new(CONFIG);
    let report = doctor_with_tun_node(&ns, &config, "0666", "0:0");
    assert_eq!(report["ok"], false);
    let bridge = check(&report, "bridge");
    assert_eq!(bridge["ok"], false, "{report:#}");
    let detail = bridge["detail"].as_str().expect("text");
    assert!(
        detail.contains("tpc-br0 has 1023 ports: 0 left"),
        "{detail}"
    );
    assert!(bridge["fix"].is_string());
    assert_eq!(check(&report, "tun_device")["ok"], true);
    // Without a configuration, every bridge is looked at: this one is full.
    tap_pool()
        .args(["--netns", &ns.path(), "doctor"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::is_match(
                r"(?m)^PROBLEM +bridge +bridge tpc-br0 has 1023 ports: 0 left",
            )
            .expect("regex"),
        );
}

fn a_user_without_capabilities_is_told_what_it_lacks() {
    let ns = TestNetns::new();
    // The binary where uid 65534 can run it (the build directory may not
    // be open to it).
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let binary = dir.path().join("tap-pool");
    std::fs::copy(env!("CARGO_BIN_EXE_tap-pool"), &binary).expect("copy the binary");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Into the test's namespace as root, then as nobody, with no
    // capabilities at all.
    let mut nobody = StdCommand::new("nsenter");
    nobody
        .arg(format!("--net={}", ns.path()))
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(&binary)
        .args(["doctor", "--json"]);
    let out = assert_cmd::Command::from_std(nobody).assert().code(1);
    let report = json(&out.get_output().stdout);
    assert_eq!(report["ok"], false);
    let cap = check(&report, "cap_net_admin");
    assert_eq!(cap["ok"], false, "{report:#}");
    assert!(
        cap["fix"]
            .as_str()
            .expect("a fix")
            .contains("AmbientCapabilities=CAP_NET_ADMIN"),
        "{cap}"
    );
    // Whether nobody may open /dev/net/tun is its mode's to say.
    let mode = std::fs::metadata("/dev/net/tun")
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(
        check(&report, "tun_open")["ok"],
        mode & 0o006 == 0o006,
        "mode {mode:o}: {report:#}"
    );
    // The namespace's /proc/sys/net is root's to write.
    assert_eq!(check(&report, "proc_sys_net")["ok"], false, "{report:#}");
    // It read the namespace it was in: the test's, with lo only.
    let names = check(&report, "ifindex")["detail"].as_str().expect("text");
    assert!(names.starts_with("highest interface index 1 of"), "{names}");
}

/// The binary, to be given its arguments, where `/dev/net/tun` is the tun
/// driver's device node with `mode`, owned by `owner`: a node of its own,
/// made in `dir` (a tmpfs mounted there) in a mount namespace of the
/// command's own, and bound over the host's path there only (the host's
/// node is never touched). The host's node may not let the tests' tap
/// owner (54321) in; this one says what the test needs.
fn with_tun_node(dir: &std::path::Path, mode: &str, owner: &str) -> StdCommand {
    let script = r#"mount -t tmpfs tmpfs "$1" && mknod "$1/tun" c 10 200 \
        && chmod "$2" "$1/tun" && chown "$3" "$1/tun" && mount --bind "$1/tun" /dev/net/tun \
        && shift 3 && exec "$@""#;
    let mut command = StdCommand::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(dir)
        .args([mode, owner, env!("CARGO_BIN_EXE_tap-pool")]);
    command
}

/// `doctor --json` in the test's namespace, with the configuration
/// `config`, where `/dev/net/tun` has `mode` and `owner` ([`with_tun_node`]).
fn doctor_with_tun_node(ns: &TestNetns, config: &ConfigFile, mode: &str, owner: &str) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = with_tun_node(dir.path(), mode, owner);
    command
        .args(["--netns", &ns.path(), "--config", config.arg()])
        .args(["doctor", "--json"]);
    let out = command.output().expect("run unshare");
    assert!(out.status.code().is_some_and(|code| code <= 1), "{out:?}");
    let report = json(&out.stdout);
    assert_eq!(
        report["ok"].as_bool(),
        Some(out.status.success()),
        "the exit status says the same: {report:#}"
    );
    report
}

/// A `/dev/net/tun` that root opens whatever its mode, but that the pool's
/// tap owner (the user its VMMs run as: 54321 in [`CONFIG`]) cannot, is a
/// problem: the tun_device check looks at its mode for that user.
fn a_tun_device_the_vmms_cannot_open_is_a_problem() {
    let ns = TestNetns::new();
    ns.add_bridge("tpc-br0");
    let config = ConfigFile::new(CONFIG);
    let tun = |mode, owner| {
        let report = doctor_with_tun_node(&ns, &config, mode, owner);
        // Root (this process) opens it whatever its mode.
        assert_eq!(check(&report, "tun_open")["ok"], true, "{report:#}");
        let device = check(&report, "tun_device").clone();
        assert!(
            device["detail"]
                .as_str()
                .expect("text")
                .contains(&format!("mode {mode}")),
            "the node made: {device}"
        );
        device
    };
    for (mode, owner, ok) in [
        ("0000", "0:0", false),
        ("0600", "0:0", false),
        ("0600", "54321:0", true),
        ("0060", "0:54322", true),
        ("0606", "0:0", true),
        ("0666", "0:0", true),
    ] {
        let check = tun(mode, owner);
        assert_eq!(check["ok"], ok, "mode {mode}, owner {owner}: {check}");
        if !ok {
            let detail = check["detail"].as_str().expect("text");
            assert!(detail.contains("uid 54321"), "{detail}");
            assert!(check["fix"].as_str().expect("a fix").contains("chmod"));
        }
    }
    // A pool whose taps are root's: its VMMs run as root, which opens it.
    let root = ConfigFile::new("[tap]\nowner = 0\n");
    let report = doctor_with_tun_node(&ns, &root, "0000", "0:0");
    assert_eq!(check(&report, "tun_device")["ok"], true, "{report:#}");
}
