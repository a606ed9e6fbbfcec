//! What an operator sees when the helper cannot start: the error names
//! the path at fault. No root needed: the helper fails before it touches
//! any namespace.

use std::path::Path;

use assert_cmd::Command;

/// Starts the helper with `policy` on `socket`, expects it to exit with
/// failure (status 1), and gives its standard error.
fn failed_start(policy: &Path, socket: &Path) -> String {
    let out = Command::cargo_bin("tap-pool-helper")
        .expect("the binary")
        .arg("--policy")
        .arg(policy)
        .arg("--socket")
        .arg(socket)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the helper");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A socket path whose directory does not exist (a typo in `--socket` or
/// the policy's `socket`, a `/run` subdirectory not made yet): the helper
/// exits with failure and its message names the path, not only
/// "No such file or directory".
#[test]
fn a_socket_whose_directory_is_missing_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[[peer]]\nuids = [990]\nprefix = \"x-\"\n").expect("the policy");
    let socket = dir.path().join("missing").join("helper.sock");
    let stderr = failed_start(&policy, &socket);
    assert!(
        stderr.contains(&socket.display().to_string()),
        "the error does not name the socket: {stderr}"
    );
    assert!(!socket.exists());
}

/// A `state_dir` the helper cannot make or write (here, under a regular
/// file): the helper exits with failure and its message names the
/// directory, not only "Not a directory".
#[test]
fn a_state_dir_that_cannot_be_used_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("file");
    std::fs::write(&file, "").expect("a file");
    let state = file.join("state");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "state_dir = \"{}\"\n[[peer]]\nuids = [990]\nprefix = \"x-\"\n",
            state.display()
        ),
    )
    .expect("the policy");
    let stderr = failed_start(&policy, &dir.path().join("helper.sock"));
    assert!(
        stderr.contains(&state.display().to_string()),
        "the error does not name the state directory: {stderr}"
    );
}
