//! What the tests share: a private namespace with a bridge, the helper
//! running as root on a socket in a directory of its own with a policy for
//! uid 65534, and children of this binary running as uid 65534 with no
//! capabilities.

#![allow(
    dead_code,
    reason = "shared by the test modules; not every one uses all of it"
)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tap_pool_testkit::TestNetns;

use crate::child::{CONFIG_ENV, ROLE_ENV, SOCKET_ENV};

/// The unprivileged uid (and gid) of the pools: `nobody`.
pub const NOBODY: u32 = 65534;
/// A uid the policy does not name.
pub const STRANGER: u32 = 65533;
/// A second peer of [`policy_peers`], with a prefix and device group of
/// its own.
pub const OTHER: u32 = 65532;
pub const OTHER_GROUP: u32 = 4244;
/// The pools' prefix, bridge and device group.
pub const PREFIX: &str = "tph-";
pub const BRIDGE: &str = "tph-br0";
pub const GROUP: u32 = 4243;

/// The policy the helper gets: `{netns}`, `{state}` filled in.
pub const POLICY: &str = r#"
socket_mode = 0o666
state_dir = "{state}"
[[peer]]
uids = [65534]
prefix = "tph-"
fallback = "vm-[0-9a-f]{11}[a-f]"
bridges = ["tph-br0"]
device_groups = [4243]
netns = "{netns}"
"#;

/// [`POLICY`] with `extra` lines after its rule for nobody: keys of that
/// rule (`max_connections = 4`), then rules of their own.
pub fn policy_with(extra: &str) -> String {
    format!("{POLICY}{extra}\n")
}

/// [`POLICY`] with nobody's limit at `max_taps` and two more rules:
/// [`OTHER`] (prefix `tpo-`, device group [`OTHER_GROUP`], the same
/// bridge) and uid 0 (prefix `tpr-`), so that this test process can speak
/// raw bytes to the helper.
pub fn policy_peers(max_taps: u32) -> String {
    policy_with(&format!(
        "max_taps = {max_taps}\n\
         [[peer]]\n\
         uids = [{OTHER}]\n\
         prefix = \"tpo-\"\n\
         bridges = [\"{BRIDGE}\"]\n\
         device_groups = [{OTHER_GROUP}]\n\
         netns = \"{{netns}}\"\n\
         [[peer]]\n\
         uids = [0]\n\
         prefix = \"tpr-\"\n\
         netns = \"{{netns}}\""
    ))
}

/// The pool's configuration.
pub const POOL: &str = r#"
size = 3
prefix = "tph-"
[tap]
bridge = "tph-br0"
device_group = 4243
"#;

/// A namespace, a helper serving it, and a directory for its socket, its
/// state and a copy of this binary anyone may run.
pub struct Scene {
    pub ns: TestNetns,
    pub dir: tempfile::TempDir,
    pub helper: Option<Child>,
}

impl Scene {
    /// The scene with [`POLICY`].
    pub fn new() -> Scene {
        Scene::with_policy(POLICY)
    }

    /// The scene with a policy of its own (`{netns}` and `{state}` filled in).
    pub fn with_policy(policy: &str) -> Scene {
        let ns = TestNetns::new();
        ns.ip(&["link", "add", BRIDGE, "type", "bridge"]);
        ns.ip(&["link", "set", BRIDGE, "up"]);
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let policy = policy
            .replace("{netns}", &ns.path())
            .replace("{state}", &dir.path().join("state").display().to_string());
        std::fs::write(dir.path().join("policy.toml"), policy).expect("write the policy");
        let exe = std::env::current_exe().expect("this binary");
        let copy = dir.path().join("child");
        std::fs::copy(&exe, &copy).expect("copy this binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut scene = Scene {
            ns,
            dir,
            helper: None,
        };
        scene.start_helper();
        scene
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("helper.sock")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts the helper (as root) and waits until it answers.
    pub fn start_helper(&mut self) {
        let socket = self.socket();
        self.spawn_helper(Command::new(env!("CARGO_BIN_EXE_tap-pool-helper")), &socket);
    }

    /// Starts the helper as systemd's socket activation does: `listener`
    /// as its descriptor 3, `LISTEN_FDS=1` and `LISTEN_PID` its own pid
    /// (a shell sets it, then execs the helper in its place). Its
    /// `--socket` names a path it must not use.
    pub fn start_helper_activated(&mut self, listener: &std::os::unix::net::UnixListener) {
        use std::os::fd::AsRawFd;
        let fd = listener.as_raw_fd();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_tap-pool-helper"))
            .env("LISTEN_FDS", "1");
        // SAFETY: dup2 is async-signal-safe and touches only the child's
        // descriptor table, between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let unused = self.dir.path().join("not-activated.sock");
        self.spawn_helper(command, &unused);
    }

    fn spawn_helper(&mut self, mut command: Command, socket: &std::path::Path) {
        let child = command
            .arg("--policy")
            .arg(self.dir.path().join("policy.toml"))
            .arg("--socket")
            .arg(socket)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("helper.log"))
                    .expect("the helper's log"),
            ))
            .spawn()
            .expect("start tap-pool-helper");
        self.helper = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        // Serving, not only listening: the helper binds its socket before
        // it reads its ledger and settles it with the namespaces (and an
        // activated one's socket is this test's, connectable all along), so
        // it is up once it answers a hello (a `Closing` for root, whom the
        // policy may not name, is an answer too).
        while !answers_hello(&self.socket()) {
            if let Some(Some(status)) = self.helper.as_mut().map(|c| c.try_wait().ok().flatten()) {
                panic!("the helper exited: {status}\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the helper never listened\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the helper with SIGKILL and reaps it.
    pub fn kill_helper(&mut self) {
        if let Some(mut child) = self.helper.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The helper's log so far, without its colours.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("helper.log")).unwrap_or_default();
        let mut plain = String::with_capacity(log.len());
        let mut escape = false;
        for c in log.chars() {
            match (escape, c) {
                (false, '\u{1b}') => escape = true,
                (false, c) => plain.push(c),
                (true, 'm') => escape = false,
                (true, _) => {}
            }
        }
        plain
    }

    /// This binary, run again as `uid` with no capabilities, in `role`.
    pub fn child(&self, uid: u32, role: &str, pool: &str) -> Peer {
        self.child_with(uid, role, pool, &[])
    }

    /// [`child`](Self::child), with more environment.
    pub fn child_with(&self, uid: u32, role: &str, pool: &str, env: &[(&str, &str)]) -> Peer {
        let mut command = Command::new(self.dir.path().join("child"));
        command
            .envs(env.iter().copied())
            .env(ROLE_ENV, role)
            .env(SOCKET_ENV, self.socket())
            .env(CONFIG_ENV, pool)
            .env("RUST_LOG", "warn")
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .uid(uid)
            .gid(uid);
        // std drops every supplementary group when it sets the uid as root.
        let mut child = command.spawn().expect("start the child");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    /// A pool of [`POOL`] as nobody, started.
    pub fn pool(&self) -> Peer {
        let mut pool = self.child(NOBODY, "pool", POOL);
        let started = pool.read();
        assert_eq!(started["started"], true, "{started}\n{}", self.log());
        pool
    }

    /// The tun/tap devices in the namespace, by name, as `ip` shows them.
    pub fn taps(&self) -> Vec<String> {
        self.ns.tun_names()
    }

    /// A raw-call client (role `calls`) as `uid`, connected.
    pub fn calls(&self, uid: u32) -> Peer {
        let mut calls = self.child(uid, "calls", "");
        let connected = calls.read();
        assert_eq!(connected["connected"], true, "{connected}\n{}", self.log());
        calls
    }

    /// What can change in the namespace and in the helper's state: every
    /// device as `ip -j -d link show` shows it (but a bridge's timers,
    /// which run on their own), and the ledger's file.
    pub fn snapshot(&self) -> (Value, String) {
        fn still(value: &mut Value) {
            match value {
                Value::Object(map) => {
                    map.retain(|key, _| !key.ends_with("_timer"));
                    map.values_mut().for_each(still);
                }
                Value::Array(values) => values.iter_mut().for_each(still),
                _ => {}
            }
        }
        let mut links = Value::Array(self.ns.links());
        still(&mut links);
        (
            links,
            std::fs::read_to_string(self.state().join("ledger")).unwrap_or_default(),
        )
    }

    /// Waits until the namespace is still, then takes a [`snapshot`].
    ///
    /// The kernel settles a link's carrier and operational state (and, from
    /// them, a bridge port's state and the bridge's carrier) in its
    /// linkwatch work, up to a second after the change that caused it and
    /// after the call that made it has answered: a tap the helper has just
    /// made and closed goes from `UNKNOWN` to `DOWN`, its bridge port from
    /// forwarding to disabled, and a second later the bridge loses its
    /// carrier. Still means unchanged for 1.5 s, longer than the kernel
    /// holds back an event, so every event already queued has shown.
    ///
    /// [`snapshot`]: Scene::snapshot
    pub fn settled(&self) -> (Value, String) {
        let still = Duration::from_millis(1500);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = self.snapshot();
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.snapshot();
            if now != seen {
                assert!(Instant::now() < deadline, "the namespace never settles");
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() >= still {
                return seen;
            }
        }
    }

    /// The interface index of `name`, as `ip` shows it.
    pub fn index(&self, name: &str) -> u32 {
        let link = self.ns.link(name).unwrap_or_else(|| panic!("no {name}"));
        link["ifindex"].as_u64().expect("an index") as u32
    }

    /// The helper is running (not exited).
    pub fn helper_alive(&mut self) -> bool {
        self.helper
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The taps the ledger's file holds as made and not gone since, as
    /// (namespace, index, peer uid): read as the helper reads it.
    pub fn ledger_taps(&self) -> Vec<(u64, u64, u64)> {
        let text = std::fs::read_to_string(self.state().join("ledger")).unwrap_or_default();
        let mut taps: Vec<(u64, u64, u64)> = Vec::new();
        let key = |v: &Value| {
            (
                v["ns"].as_u64().unwrap_or(0),
                v["index"].as_u64().unwrap_or(0),
            )
        };
        for line in text.lines() {
            let Ok(record) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(made) = record.get("made") {
                let (ns, index) = key(made);
                taps.retain(|t| (t.0, t.1) != (ns, index));
                taps.push((ns, index, made["uid"].as_u64().unwrap_or(0)));
            } else if let Some(gone) = record.get("gone") {
                let (ns, index) = key(gone);
                taps.retain(|t| (t.0, t.1) != (ns, index));
            }
        }
        taps
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        self.kill_helper();
    }
}

/// A child: commands in, JSON lines out.
pub struct Peer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    /// Sends one command line and reads its answer.
    pub fn ask(&mut self, line: &str) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush");
        self.read()
    }

    /// Reads one answer line.
    pub fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the child");
        assert!(!line.is_empty(), "the child ended without answering");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Closes stdin (a pool shuts down) and waits for the child.
    pub fn finish(mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        let mut line = String::new();
        while self.stdout.read_line(&mut line).unwrap_or(0) > 0 {
            rest.push(serde_json::from_str(&line).expect("JSON"));
            line.clear();
        }
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "the child failed: {status}");
        rest
    }

    /// Sends one command line without waiting for its answer.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let _ = writeln!(stdin, "{line}");
        let _ = stdin.flush();
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `f` is true, or panics after `secs`.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a helper on `socket` answers a hello (within a second).
fn answers_hello(socket: &std::path::Path) -> bool {
    use tap_pool::helper::proto::{
        ClientFrame, PROTOCOL_VERSION, ServerFrame, read_frame, write_frame,
    };
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let hello = ClientFrame::Hello {
        version: PROTOCOL_VERSION,
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_ok()
        && write_frame(&mut stream, &hello).is_ok()
        && read_frame::<ServerFrame>(&mut stream, &mut Vec::new()).is_ok()
}
