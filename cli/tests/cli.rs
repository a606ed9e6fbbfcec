//! The `tap-pool` binary where no kernel is needed: its help, and a
//! configuration or namespace it refuses (exit status 2, changing
//! nothing); and the example configuration, read as the tool reads it.

use assert_cmd::Command;
use predicates::prelude::*;
use tap_pool::{PoolConfig, Recycle, TapName};

fn tap_pool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tap-pool"))
}

#[test]
fn help_names_every_command_and_the_exit_statuses() {
    tap_pool().arg("--help").assert().success().stdout(
        predicate::str::contains("ls")
            .and(predicate::str::contains("gc"))
            .and(predicate::str::contains("doctor"))
            .and(predicate::str::contains("--netns"))
            .and(predicate::str::contains("--config"))
            .and(predicate::str::contains("Exit status: 0")),
    );
    for (command, option) in [("ls", "--all"), ("gc", "--yes"), ("doctor", "--json")] {
        tap_pool()
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains(option));
    }
}

#[test]
fn a_usage_error_exits_2() {
    tap_pool().arg("prune").assert().code(2);
    tap_pool()
        .args(["gc", "--yes", "--nonsense"])
        .assert()
        .code(2);
    tap_pool().args(["ls", "--group", "many"]).assert().code(2);
}

#[test]
fn a_bad_configuration_file_exits_2_with_the_files_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("pool.toml");
    std::fs::write(&bad, "size = 3\nsiez = 4\n").expect("write");
    for command in ["ls", "gc", "doctor"] {
        tap_pool()
            .args(["--config", bad.to_str().expect("utf-8"), command])
            .assert()
            .code(2)
            .stdout("")
            .stderr(
                predicate::str::contains(bad.to_str().expect("utf-8"))
                    .and(predicate::str::contains("siez"))
                    .and(predicate::str::contains("line 2")),
            );
    }
    // Read, but refused by the pool's checks.
    std::fs::write(&bad, "prefix = \"\"\n").expect("write");
    tap_pool()
        .args(["--config", bad.to_str().expect("utf-8"), "ls"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("prefix is empty"));
    let missing = dir.path().join("missing.toml");
    tap_pool()
        .args(["ls", "--config", missing.to_str().expect("utf-8")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the configuration"));
}

#[test]
fn overrides_are_checked_as_the_configuration_is() {
    tap_pool()
        .args(["gc", "--group", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("device group must not be 0"));
    tap_pool()
        .args(["ls", "--prefix", "fifteen-bytes-x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("at most 14 leaves room"));
}

#[test]
fn a_namespace_that_does_not_open_exits_2() {
    tap_pool()
        .args(["ls", "--netns", "/nonexistent/tap-pool-netns"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/tap-pool-netns"));
    // A file that is no network namespace.
    tap_pool()
        .args(["gc", "--netns", "/proc/self/status"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Invalid argument"));
}

/// A `--config` that never ends (`/dev/zero`, `/dev/urandom`) is refused
/// (exit status 2, naming the file and the bound) once it has read more
/// than any configuration holds: it is not read until memory runs out. Run
/// with its address space limited to 1 GiB, so that without the bound it
/// fails there (out of memory) rather than taking the machine's memory.
#[test]
fn an_endless_configuration_file_is_refused_not_read_to_the_end() {
    for endless in ["/dev/zero", "/dev/urandom"] {
        let mut command = std::process::Command::new("prlimit");
        command
            .arg("--as=1073741824")
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_tap-pool"))
            .args(["--config", endless, "ls"]);
        Command::from_std(command)
            .assert()
            .code(2)
            .stdout("")
            .stderr(
                predicate::str::contains(endless)
                    .and(predicate::str::contains("larger than 1 MiB")),
            );
    }
}

/// A `--netns` that is a FIFO (or any file whose open waits for a peer) is
/// refused as no network namespace, at once: the tool does not wait for a
/// writer that never comes. (The deadline only turns a hang into a
/// failure; nothing is timed.)
#[test]
fn a_fifo_as_the_namespace_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("netns");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    for command in ["ls", "gc", "doctor"] {
        tap_pool()
            .args(["--netns", fifo.to_str().expect("utf-8"), command])
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("Invalid argument"));
    }
}

/// The example shipped with the docs reads as a configuration, and says
/// what its comments say: it cannot rot unnoticed.
#[test]
fn the_example_configuration_reads_back() {
    let config = PoolConfig::from_toml(include_str!("../../docs/pool.example.toml"))
        .expect("docs/pool.example.toml is a valid configuration");
    let mut want = PoolConfig::default();
    want.size = 32;
    want.prefix = "vmtap-".into();
    want.create_window = 4;
    want.recycle = Recycle::Reset;
    want.tap.owner = Some(10_000);
    want.tap.group = None;
    want.tap.vnet_hdr = true;
    want.tap.multi_queue = false;
    want.tap.mtu = Some(1500);
    want.tap.bridge = Some(TapName::new("br-vms").expect("valid"));
    want.tap.device_group = Some(4242);
    want.warm_retry.initial = std::time::Duration::from_millis(100);
    want.warm_retry.max = std::time::Duration::from_secs(10);
    want.warm_retry.max_attempts = 10;
    want.delete_retry.initial = std::time::Duration::from_millis(100);
    want.delete_retry.max = std::time::Duration::from_secs(30);
    assert_eq!(config, want);
}
