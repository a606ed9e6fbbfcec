//! What the tests share: the binary, a pool's configuration in a file, and
//! a namespace holding one device of every class.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;
use tap_pool::{PoolConfig, TapSpec};
use tap_pool_testkit::{TestNetns, name, text};

/// The pool the tests' configuration describes: prefix `tpc-`, owner
/// 54321, group 54322, bridge `tpc-br0`, device group 4242.
pub const CONFIG: &str = r#"
size = 4
prefix = "tpc-"
[tap]
owner = 54321
group = 54322
bridge = "tpc-br0"
device_group = 4242
"#;

/// The binary, with nothing set.
pub fn tap_pool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tap-pool"))
}

/// A configuration file (in a directory of its own, removed on drop).
pub struct ConfigFile {
    _dir: tempfile::TempDir,
    /// Its path.
    pub path: PathBuf,
}

impl ConfigFile {
    pub fn new(text: &str) -> ConfigFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pool.toml");
        std::fs::write(&path, text).expect("write the configuration");
        ConfigFile { _dir: dir, path }
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }
}

/// The tap spec of [`CONFIG`], as the pool makes its taps.
pub fn pool_spec() -> TapSpec {
    PoolConfig::from_toml(CONFIG).expect("valid").tap
}

/// A namespace with the pool's bridge and one device of each kind `ls` and
/// `gc` tell apart:
///
/// | device | what it is |
/// |---|---|
/// | `tpc-0` | a pool tap nobody holds: gc deletes it |
/// | `tpc-1` | a pool tap a VMM holds (`vmm`): kept |
/// | `vm-7` | a fallback tap (the pool's group) nobody holds: gc deletes it |
/// | `tpc-2` | a tap under a pool name with another owner: kept |
/// | `tpc-9` | a tun device under a pool name, in the group: kept |
/// | `other0` | a tap of another prefix, not in the group: kept |
/// | `tpc-br0`, `lo` | not tun/tap devices: never listed, never touched |
pub struct Scene {
    pub ns: TestNetns,
    pub config: ConfigFile,
    /// The VMM's file attached to `tpc-1`, held while the scene lives.
    _vmm: OwnedFd,
}

impl Scene {
    pub fn new() -> Scene {
        let ns = TestNetns::new();
        ns.add_bridge("tpc-br0");
        ns.ip(&["link", "set", "tpc-br0", "up"]);
        let spec = pool_spec();
        let mut stranger = TapSpec::default();
        stranger.owner = Some(1);
        ns.with_kernel(|k| {
            for tap in ["tpc-0", "tpc-1", "vm-7"] {
                k.create_tap(name(tap), &spec).expect("create");
            }
            k.create_tap(name("tpc-2"), &stranger).expect("create");
            k.create_tap(name("other0"), &TapSpec::default())
                .expect("create");
        });
        ns.ip(&["tuntap", "add", "dev", "tpc-9", "mode", "tun"]);
        ns.ip(&["link", "set", "tpc-9", "group", "4242"]);
        let vmm = ns.attach("tpc-1", true);
        Scene {
            ns,
            config: ConfigFile::new(CONFIG),
            _vmm: vmm,
        }
    }

    /// The binary with `--netns` (this namespace) and `--config`, then
    /// `args`.
    pub fn tap_pool(&self, args: &[&str]) -> Command {
        let mut command = tap_pool();
        command
            .args(["--netns", &self.ns.path(), "--config", self.config.arg()])
            .args(args);
        command
    }
}

/// Every device name `ip` shows in `ns`, sorted.
pub fn ip_names(ns: &TestNetns) -> Vec<String> {
    let mut names: Vec<String> = ns.links().iter().map(|l| text(&l["ifname"])).collect();
    names.sort();
    names
}

/// The JSON a command printed.
pub fn json(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(output)))
}

/// The names in a JSON array of objects with a `name`, sorted.
pub fn names_of(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("an array: {list}"))
        .iter()
        .map(|e| text(&e["name"]))
        .collect();
    names.sort();
    names
}
