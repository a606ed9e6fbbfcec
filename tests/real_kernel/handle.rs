//! A pool from a plain tokio program on the real kernel ([`PoolHandle`]),
//! and a pool that cannot make taps failing fast at start. Each test in a
//! network namespace of its own, with `ip -j -d link show` in it as the
//! witness.
//!
//! - A tokio program (no actix System of its own) runs a pool's whole
//!   lifecycle in a private namespace; dropping the last handle leaves no tap.
//! - A thread without `CAP_NET_ADMIN` (dropped with `caps`) is refused at
//!   start with `ProbeError::NoNetAdmin`, and nothing starts.
//! - A process in an unprivileged user namespace of its own has
//!   `CAP_NET_ADMIN` effective, but not over a namespace of the host's user
//!   namespace: the probe asks the kernel, so it is refused all the same
//!   (`ProbeError::ForeignUserNamespace`). That test runs this binary again
//!   in a child ([`child_main`]), since only a single-threaded process may
//!   enter a new user namespace.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, ExitCode, Stdio};

use caps::{CapSet, Capability};
use tap_pool_actors::linux::{probe, probe_in};
use tap_pool_actors::{
    Acquire, LeaseSource, PoolConfig, PoolHandle, ProbeError, Release, Released, Seed, StartError,
    TapPoolActor, TapSpec,
};
use tap_pool_testkit::{KernelTest, TestNetns, assert_not_in_host, kernel_test, name, text};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(a_tokio_program_runs_a_pool_in_a_private_namespace),
        kernel_test!(dropping_the_last_handle_leaves_no_tap_in_the_kernel),
        kernel_test!(a_thread_without_cap_net_admin_fails_fast_and_starts_nothing),
        kernel_test!(a_user_namespace_of_its_own_fails_fast_though_cap_net_admin_is_effective)
            .alone(),
    ]
}

const GROUP: u32 = 4244;

fn config(size: usize, bridge: Option<&str>, group: Option<u32>) -> PoolConfig {
    let mut c = PoolConfig::default();
    c.size = size;
    c.tap = {
        let mut t = TapSpec::default();
        t.bridge = bridge.map(name);
        t.device_group = group;
        t
    };
    c
}

fn spawn(ns: &TestNetns, config: PoolConfig) -> PoolHandle {
    TapPoolActor::builder(config)
        .netns(ns.netns())
        .fail_fast(true)
        .spawn()
        .expect("a pool with the right to make taps starts")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn tun_names(ns: &TestNetns) -> BTreeSet<String> {
    ns.tun_names().into_iter().collect()
}

fn a_tokio_program_runs_a_pool_in_a_private_namespace() {
    let ns = TestNetns::new();
    ns.add_bridge("br-tk");
    let pool = spawn(&ns, config(3, Some("br-tk"), Some(GROUP)));
    runtime().block_on(async {
        let seeded = pool.seed(Seed::default()).await.unwrap();
        assert!(seeded.adopted.is_empty() && seeded.deleted.is_empty());
        let warmed = pool.warm().await.unwrap();
        assert!(warmed.failure.is_none(), "{warmed:?}");
        let pooled = ["tap-pool-0", "tap-pool-1", "tap-pool-2"];
        assert_eq!(tun_names(&ns), BTreeSet::from(pooled.map(str::to_owned)));

        // Four VMs at once, each on a task of its own: three pooled taps
        // and one made under its fallback name, each enslaved to the bridge.
        let vms: Vec<_> = (0..4)
            .map(|i| {
                let pool = pool.clone();
                let vm = Acquire::new(&format!("vm-tk{i}")).unwrap();
                tokio::spawn(async move { pool.acquire(vm).await })
            })
            .collect();
        let mut guards = Vec::new();
        for vm in vms {
            guards.push(vm.await.unwrap().expect("a lease"));
        }
        let held: BTreeSet<String> = guards.iter().map(|g| g.name.to_string()).collect();
        assert_eq!(held.len(), 4, "no tap handed out twice");
        assert_eq!(held, tun_names(&ns));
        for guard in &guards {
            let link = ns
                .link(&guard.name.to_string())
                .expect("the leased tap exists");
            assert_eq!(link["master"], "br-tk", "{}", guard.name);
        }
        let fallback = guards
            .iter()
            .find(|g| g.source == LeaseSource::Created)
            .map(|g| g.name.to_string())
            .expect("one tap was made for its caller");

        // One goes back by dropping its guard on a thread with no runtime,
        // the others by Release from tasks.
        let dropped = guards.pop().unwrap();
        std::thread::spawn(move || drop(dropped)).join().unwrap();
        let stops: Vec<_> = guards
            .into_iter()
            .map(|guard| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.release(Release::from(guard)).await })
            })
            .collect();
        for stop in stops {
            let answer = stop.await.unwrap().expect("released");
            assert!(matches!(answer, Released::Pooled | Released::Deleted));
        }
        let settled = pool.settle().await.unwrap();
        assert_eq!((settled.idle, settled.leased), (3, 0), "{settled:?}");
        assert!(ns.link(&fallback).is_none(), "the fallback tap was deleted");
        let stats = pool.stats().await.unwrap();
        assert_eq!((stats.hits, stats.misses), (3, 1));
        assert_eq!(tun_names(&ns).len(), 3);

        let drained = pool.drain().await.unwrap();
        assert_eq!((drained.deleted, drained.bulk), (3, true), "{drained:?}");
        assert!(tun_names(&ns).is_empty());
        pool.shutdown().await;
    });
    assert_not_in_host(&["tap-pool-0", "tap-pool-2", "vm-tk0", "vm-tk3"]);
}

/// The last handle dropped on a runtime thread, without `shutdown`: the drop
/// returns once the pool has drained, so `ip` finds none of its taps.
fn dropping_the_last_handle_leaves_no_tap_in_the_kernel() {
    let ns = TestNetns::new();
    // No device group: one ~16 ms delete per tap, none of which is done when
    // the System has only been told to stop.
    let pool = spawn(&ns, config(4, None, None));
    let leftover = runtime().block_on(async move {
        assert_eq!(pool.warm().await.unwrap().created.len(), 4);
        let guard = pool.acquire(Acquire::new("vm-x").unwrap()).await.unwrap();
        assert_eq!(guard.release().await, Ok(Released::Pooled));
        assert_eq!(pool.settle().await.unwrap().idle, 4);
        drop(pool.clone());
        assert_eq!(
            pool.stats().await.unwrap().idle,
            4,
            "a clone's drop stops nothing"
        );
        assert_eq!(tun_names(&ns).len(), 4);
        drop(pool);
        tun_names(&ns)
    });
    assert!(leftover.is_empty(), "left in the kernel: {leftover:?}");
}

/// A pool built on a thread that dropped `CAP_NET_ADMIN` from its effective
/// set: with fail-fast, start refuses with the typed error before any
/// thread starts, and the kernel is never asked to make anything; without,
/// it starts and its warm-up fails at the kernel.
fn a_thread_without_cap_net_admin_fails_fast_and_starts_nothing() {
    let ns = TestNetns::new();
    let netns = ns.netns();
    // A thread of its own: capabilities belong to a thread, and this one
    // ends with the test.
    std::thread::spawn(move || {
        caps::drop(None, CapSet::Effective, Capability::CAP_NET_ADMIN).expect("drop CAP_NET_ADMIN");
        assert!(matches!(probe_in(&netns), Err(ProbeError::NoNetAdmin)));

        let err = TapPoolActor::builder(config(2, None, None))
            .netns(netns.clone())
            .fail_fast(true)
            .spawn()
            .expect_err("no pool may start");
        assert!(
            matches!(err, StartError::Probe(ProbeError::NoNetAdmin)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the pool cannot make taps where it would make them"
        );
        assert_eq!(
            std::error::Error::source(&err).unwrap().to_string(),
            "CAP_NET_ADMIN is not in the effective capability set"
        );
        // `start` inside an actix System of its own says the same.
        actix_rt::System::new().block_on(async {
            let err = TapPoolActor::builder(config(2, None, None))
                .netns(netns.clone())
                .fail_fast(true)
                .start()
                .expect_err("no pool may start");
            assert!(matches!(err, StartError::Probe(ProbeError::NoNetAdmin)));
        });

        // Without fail-fast the same pool starts, and finds out at its
        // first create.
        let pool = TapPoolActor::builder(config(2, None, None))
            .netns(netns)
            .spawn()
            .expect("starts without the probe");
        let warmed = runtime().block_on(async {
            let warmed = pool.warm().await.unwrap();
            pool.shutdown().await;
            warmed
        });
        assert!(warmed.created.is_empty());
        assert!(warmed.failure.is_some(), "{warmed:?}");
    })
    .join()
    .expect("the unprivileged thread's checks hold");
    assert!(tun_names(&ns).is_empty());
    // The test's own thread kept its capability.
    assert!(probe_in(&ns.netns()).is_ok());
}

/// Set in the child that [`a_user_namespace_of_its_own_fails_fast_though_cap_net_admin_is_effective`]
/// starts: the path of the namespace to enter.
const CHILD_ENV: &str = "TAP_POOL_TEST_USERNS_CHILD";

/// A process in a user namespace of its own (as `unshare --user` makes),
/// inside the test's network namespace, which belongs to the host's user
/// namespace: `CAP_NET_ADMIN` is in its effective set, yet the kernel would
/// make no tap there for it. The probe and a fail-fast start say so (checked
/// in the child, [`child_main`]), and nothing is made.
fn a_user_namespace_of_its_own_fails_fast_though_cap_net_admin_is_effective() {
    let ns = TestNetns::new();
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .env(CHILD_ENV, ns.path())
        .stdin(Stdio::null())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child's checks failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("REFUSED ForeignUserNamespace"), "{stdout}");
    assert!(tun_names(&ns).is_empty());
    let links: Vec<String> = ns.links().iter().map(|l| text(&l["ifname"])).collect();
    assert_eq!(links, ["lo"], "nothing was made");
}

/// The child of the user-namespace test, before the harness starts (so
/// while this process has one thread, as `unshare(CLONE_NEWUSER)` needs):
/// `None` unless [`CHILD_ENV`] is set. It enters the namespace, then a new
/// user namespace, and checks what the probe and a fail-fast start say.
pub fn child_main() -> Option<ExitCode> {
    let path = std::env::var_os(CHILD_ENV)?;
    let fail = |what: &str| {
        eprintln!("{what}: {}", std::io::Error::last_os_error());
        Some(ExitCode::FAILURE)
    };
    let c_path = CString::new(path.as_bytes()).expect("a path without NUL");
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return fail("open the namespace");
    }
    // SAFETY: `fd` was just opened and is a network namespace's file; setns
    // changes only this (single) thread's namespace.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } < 0 {
        return fail("setns");
    }
    // SAFETY: `fd` is ours and no longer needed.
    unsafe { libc::close(fd) };
    // SAFETY: unshare changes this process's own namespaces; it has one
    // thread, as CLONE_NEWUSER requires.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
        return fail("unshare(CLONE_NEWUSER)");
    }
    let effective = caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN);
    if !matches!(effective, Ok(true)) {
        eprintln!("CAP_NET_ADMIN is not effective in the new user namespace: {effective:?}");
        return Some(ExitCode::FAILURE);
    }
    let probed = probe();
    if !matches!(probed, Err(ProbeError::ForeignUserNamespace)) {
        eprintln!("probe: {probed:?}");
        return Some(ExitCode::FAILURE);
    }
    let started = TapPoolActor::builder(config(2, None, None))
        .fail_fast(true)
        .spawn();
    if !matches!(
        started,
        Err(StartError::Probe(ProbeError::ForeignUserNamespace))
    ) {
        eprintln!("spawn: {started:?}");
        return Some(ExitCode::FAILURE);
    }
    println!("REFUSED ForeignUserNamespace");
    Some(ExitCode::SUCCESS)
}
