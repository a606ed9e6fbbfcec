//! The installed files say what the helper does: docs/helper.example.toml
//! is a policy the helper takes, with the defaults it states, and the
//! systemd units name the paths the helper uses by default. No root needed.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tap_pool::{TapName, TapSpec, VmNames};
use tap_pool_helper::policy::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_TAPS, DEFAULT_SOCKET, DEFAULT_STATE_DIR,
};
use tap_pool_helper::{Policy, PolicyError};

fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn example() -> String {
    std::fs::read_to_string(workspace("docs/helper.example.toml")).expect("the example policy")
}

fn name(s: &str) -> TapName {
    TapName::new(s).expect("a device name")
}

#[test]
fn the_example_policy_reads_back_as_written() {
    let policy = Policy::from_toml(&example()).expect("the example is a policy");
    assert_eq!(policy.peers.len(), 1);
    let rule = &policy.peers[0];
    assert_eq!(policy.rule_for(990, 990), Some(0));
    assert_eq!(policy.rule_for(991, 991), None, "only the uid it names");
    assert_eq!(rule.bridges, [name("br-vms")]);
    assert_eq!(rule.device_groups, [4242]);
    assert_eq!(rule.owners.as_deref(), Some(&[990, 10000][..]));
    assert_eq!(rule.netns.as_deref(), Some(Path::new("/run/netns/vms")));
    // Its names: the pool's, and the fallback names VmNames gives.
    assert_eq!(rule.check_name(&name("tap-pool-17")), Ok(()));
    let vm_names = VmNames::new("vm-").expect("a prefix");
    for attempt in 0..3 {
        let vm = vm_names.candidate("0b6f3f4e-8f2a-4c4e-9d1e-6d7c2a9b1e55", attempt);
        assert_eq!(rule.check_name(&vm), Ok(()), "{vm}");
    }
    assert!(rule.check_name(&name("lo")).is_err());
    assert!(rule.check_name(&name("br-vms")).is_err());
    // The owners it gives, and no other.
    let mut spec = TapSpec::default();
    spec.owner = Some(10000);
    spec.bridge = Some(name("br-vms"));
    spec.device_group = Some(4242);
    assert_eq!(
        rule.check_spec(990, &spec).map(|s| s.owner),
        Ok(Some(10000))
    );
    spec.owner = Some(0);
    assert!(rule.check_spec(990, &spec).is_err());
}

/// Where the example writes a key's default, it is the default the helper
/// takes when the key is left out.
#[test]
fn the_example_policy_states_the_defaults() {
    let example = Policy::from_toml(&example()).expect("the example is a policy");
    let minimal =
        Policy::from_toml("[[peer]]\nuids = [990]\nprefix = \"tap-pool-\"\n").expect("a policy");
    assert_eq!(example.socket, minimal.socket);
    assert_eq!(example.socket, Path::new(DEFAULT_SOCKET));
    assert_eq!(example.socket_mode, minimal.socket_mode);
    assert_eq!(example.state_dir, minimal.state_dir);
    assert_eq!(example.state_dir, Path::new(DEFAULT_STATE_DIR));
    assert_eq!(example.max_connections, minimal.max_connections);
    assert_eq!(example.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(example.peers[0].max_taps, minimal.peers[0].max_taps);
    assert_eq!(example.peers[0].max_taps, DEFAULT_MAX_TAPS);
    // And the defaults it names in comments for the keys it sets otherwise.
    let minimal = &minimal.peers[0];
    assert!(minimal.owners.is_none() && minimal.netns.is_none());
    assert!(minimal.bridges.is_empty() && minimal.device_groups.is_empty());
    assert!(minimal.groups.is_empty() && minimal.fallback.is_none());
}

/// Every key the example sets is one the policy reads (an unknown key is an
/// error), and docs/operations.md documents each.
#[test]
fn every_key_of_the_example_is_read_and_documented() {
    let text = example();
    let operations =
        std::fs::read_to_string(workspace("docs/operations.md")).expect("docs/operations.md");
    let keys: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with('['))
        .filter_map(|line| line.split_once(" = ").map(|(key, _)| key.trim()))
        .collect();
    assert_eq!(
        keys,
        [
            "socket",
            "socket_mode",
            "state_dir",
            "max_connections",
            "uids",
            "gids",
            "prefix",
            "fallback",
            "bridges",
            "device_groups",
            "owners",
            "groups",
            "netns",
            "max_taps"
        ]
    );
    for key in keys {
        assert!(
            operations.contains(&format!("`{key}`")),
            "docs/operations.md does not document `{key}`"
        );
        // Misspelt, the key is refused: so the example's spelling is read.
        let misspelt = text.replacen(&format!("\n{key} = "), &format!("\n{key}x = "), 1);
        match Policy::from_toml(&misspelt) {
            Err(PolicyError::Toml(e)) => assert!(e.contains(&format!("{key}x")), "{e}"),
            other => panic!("{key}x: {other:?}"),
        }
    }
}

#[test]
fn the_helper_checks_the_example_policy() {
    Command::cargo_bin("tap-pool-helper")
        .expect("the helper's binary")
        .arg("--check")
        .arg("--policy")
        .arg(workspace("docs/helper.example.toml"))
        .assert()
        .success();
}

#[test]
fn the_helper_refuses_a_bad_policy_with_exit_status_2() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let bad = dir.path().join("helper.toml");
    std::fs::write(
        &bad,
        example().replace("device_groups = [4242]", "device_groups = [0]"),
    )
    .expect("write");
    let out = Command::cargo_bin("tap-pool-helper")
        .expect("the helper's binary")
        .arg("--check")
        .arg("--policy")
        .arg(&bad)
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("device group 0"), "{stderr}");
}

/// The units run the helper on the paths it uses by default.
#[test]
fn the_systemd_units_name_the_helpers_paths() {
    let socket = std::fs::read_to_string(workspace("helper/systemd/tap-pool-helper.socket"))
        .expect("the socket unit");
    let service = std::fs::read_to_string(workspace("helper/systemd/tap-pool-helper.service"))
        .expect("the service unit");
    let setting = |unit: &str, key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|line| line.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(setting(&socket, "ListenStream"), [DEFAULT_SOCKET]);
    assert_eq!(setting(&socket, "SocketMode"), ["0660"]);
    assert_eq!(setting(&socket, "SocketGroup"), ["tap-pool"]);
    assert_eq!(setting(&service, "Requires"), ["tap-pool-helper.socket"]);
    let state = Path::new(DEFAULT_STATE_DIR);
    assert_eq!(state.parent(), Some(Path::new("/run")));
    assert_eq!(
        setting(&service, "RuntimeDirectory"),
        [state.file_name().unwrap().to_str().unwrap()]
    );
    assert_eq!(setting(&service, "RuntimeDirectoryPreserve"), ["yes"]);
    assert_eq!(
        setting(&service, "ExecStart"),
        ["/usr/local/bin/tap-pool-helper --policy /etc/tap-pool/helper.toml"]
    );
    assert_eq!(
        setting(&service, "CapabilityBoundingSet"),
        ["CAP_NET_ADMIN CAP_SYS_ADMIN"]
    );
}
