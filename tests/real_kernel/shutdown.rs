//! Shutting down on the real kernel, and a namespace bound by path: each
//! test in a network namespace of its own, with `ip -j -d link show` in it
//! as the witness.
//!
//! - Stopping the actix System, or the arbiter the pool runs on, drains the
//!   pool before the stopping thread returns: only the leased tap is left.
//! - A pool bound to `Netns::Path` opens the path once, when it starts: its
//!   kernel workers keep creating, resetting and deleting in that namespace
//!   after the path is unmounted and removed.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;

use actix::{Addr, Arbiter, System};
use tap_pool_actors::{
    Drain, LeaseSource, LinuxKernelFactory, Netns, PoolConfig, Released, TapName, TapPoolActor,
    TapSpec, Warm,
};
use tap_pool_testkit::pool::{acquire, release, stats_until};
use tap_pool_testkit::{KernelTest, TestNetns, flags, kernel_test, text};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(stopping_the_system_leaves_only_the_leased_tap),
        kernel_test!(stopping_the_system_leaves_only_the_leased_tap_without_a_group),
        kernel_test!(async stopping_the_arbiter_leaves_only_the_leased_tap),
        kernel_test!(a_pool_bound_to_a_netns_path_keeps_its_namespace_when_the_path_goes),
        kernel_test!(a_kernel_factory_bound_to_a_netns_path_keeps_its_namespace_too),
    ]
}

const GROUP: u32 = 4243;

fn config(size: usize, device_group: Option<u32>) -> PoolConfig {
    let mut c = PoolConfig::default();
    c.size = size;
    c.tap = {
        let mut t = TapSpec::default();
        t.device_group = device_group;
        t
    };
    c
}

/// Warms a pool of 8 in `ns` and leases one tap; returns the pool's address
/// (kept by the caller, so that only the stop can end the actor) and the
/// leased tap's name.
async fn warm_and_lease(
    ns_factory: Arc<dyn tap_pool_actors::kernel_api::KernelFactory>,
    group: Option<u32>,
) -> (Addr<TapPoolActor>, TapName) {
    let pool = tap_pool_testkit::pool::start(config(8, group), ns_factory, 2);
    let warmed = pool.send(Warm).await.expect("pool alive");
    assert_eq!(warmed.created.len(), 8, "{warmed:?}");
    let held = acquire(&pool, "vm-held").await.expect("a pooled tap");
    assert_eq!(held.source, LeaseSource::Pool);
    (pool, held.name)
}

/// `System::current().stop()` with the pool's address still held: when the
/// System's thread has returned, `ip` shows only the leased tap.
fn system_stop(group: Option<u32>) {
    let ns = TestNetns::new();
    let factory = ns.factory();
    let (pool, held) = thread::spawn(move || {
        let system = System::new();
        let out = system.block_on(async move {
            let out = warm_and_lease(factory, group).await;
            System::current().stop();
            out
        });
        system.run().expect("the system stops cleanly");
        out
    })
    .join()
    .expect("the system thread returns");
    assert_eq!(ns.tun_names(), [held.to_str().unwrap()]);
    if group.is_some() {
        let link = ns.link(held.to_str().unwrap()).expect("held");
        assert_eq!(link["group"], "default", "the held tap left the group");
    }
    drop(pool);
}

fn stopping_the_system_leaves_only_the_leased_tap() {
    system_stop(Some(GROUP));
}

fn stopping_the_system_leaves_only_the_leased_tap_without_a_group() {
    system_stop(None);
}

/// The pool on an arbiter of its own, which is stopped: once the arbiter's
/// thread is joined, `ip` shows only the leased tap.
async fn stopping_the_arbiter_leaves_only_the_leased_tap() {
    let ns = TestNetns::new();
    let arbiter = Arbiter::new();
    let (tx, rx) = mpsc::channel();
    let factory = ns.factory();
    assert!(arbiter.spawn(async move {
        let out = warm_and_lease(factory, Some(GROUP)).await;
        tx.send(out).expect("the test waits");
    }));
    let (pool, held) = actix_rt::task::spawn_blocking(move || rx.recv())
        .await
        .expect("the waiting thread")
        .expect("the pool warmed on its arbiter");
    assert_eq!(ns.tun_names().len(), 8);
    assert!(arbiter.stop());
    actix_rt::task::spawn_blocking(move || arbiter.join())
        .await
        .expect("the joining thread")
        .expect("the arbiter's thread returns");
    assert_eq!(ns.tun_names(), [held.to_str().unwrap()]);
    drop(pool);
}

/// `ns` bind-mounted on a file of its own, in a mount namespace private to
/// the calling thread (nobody else sees the mount, and it goes with the
/// thread). For a test's own thread only: it changes that thread's mount
/// namespace for good.
struct BoundPath {
    path: PathBuf,
    mounted: bool,
}

impl BoundPath {
    fn new(ns: &TestNetns) -> BoundPath {
        // SAFETY: unshare changes only the calling thread's mount namespace
        // (and its own copy of the filesystem context); no memory is touched.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        );
        // Mounts made here must not propagate to the host's namespace.
        let root = c"/";
        // SAFETY: the strings are NUL-terminated and outlive the call; a
        // propagation change reads no source, type or data.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "make / private: {}", std::io::Error::last_os_error());
        let path = std::env::temp_dir().join(format!(
            "tap-pool-netns-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        std::fs::write(&path, b"").expect("the mount point");
        let source = cstring(Path::new(&ns.path()));
        let target = cstring(&path);
        // SAFETY: as above; a bind mount reads only the two paths.
        let rc = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "bind-mount the netns: {}",
            std::io::Error::last_os_error()
        );
        BoundPath {
            path,
            mounted: true,
        }
    }

    /// Unmounts the namespace and removes the file: the path names nothing.
    fn remove(&mut self) {
        if self.mounted {
            let target = cstring(&self.path);
            // SAFETY: the string is NUL-terminated and outlives the call.
            let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            assert_eq!(rc, 0, "umount: {}", std::io::Error::last_os_error());
            self.mounted = false;
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for BoundPath {
    fn drop(&mut self) {
        if self.mounted {
            let target = cstring(&self.path);
            // SAFETY: as in `remove`.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn cstring(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in the path")
}

/// A pool bound to `ns` by a path that is unmounted and removed once the
/// pool is warm: creates, resets and deletes (a lane of workers that had
/// not opened a handle yet) still work in `ns`. `start` starts the pool on
/// the path.
fn path_goes_after_start(start: impl FnOnce(&Path) -> Addr<TapPoolActor> + Send) {
    let ns = TestNetns::new();
    let ns = &ns;
    thread::scope(|s| {
        s.spawn(move || {
            let mut bound = BoundPath::new(ns);
            System::new().block_on(async {
                let pool = start(&bound.path);
                assert_eq!(pool.send(Warm).await.unwrap().created.len(), 2);
                assert_eq!(ns.tun_names(), ["tap-pool-0", "tap-pool-1"]);

                bound.remove();
                assert!(!bound.path.exists(), "the path names nothing now");

                // Two hits, then two creates side by side.
                let a = acquire(&pool, "vm-a").await.unwrap();
                let b = acquire(&pool, "vm-b").await.unwrap();
                let (c, d) = tokio::join!(acquire(&pool, "vm-c"), acquire(&pool, "vm-d"));
                let (c, d) = (c.expect("create vm-c"), d.expect("create vm-d"));
                assert_eq!(
                    (c.source, d.source),
                    (LeaseSource::Created, LeaseSource::Created)
                );
                for tap in ["vm-c", "vm-d"] {
                    let link = ns.link(tap).expect("created in the namespace");
                    assert!(flags(&link).contains(&"UP".to_owned()), "{tap} is up");
                }

                // A reset, after an address was added to the tap.
                ns.ip(&[
                    "addr",
                    "add",
                    "10.9.8.7/24",
                    "dev",
                    a.name.to_str().unwrap(),
                ]);
                assert_eq!(release(&pool, &a).await.unwrap(), Released::Pooled);
                stats_until(&pool, "the reset done", |s| s.resetting == 0 && s.idle == 1).await;
                assert!(
                    ns.addresses(a.name.to_str().unwrap())
                        .iter()
                        .all(|(f, _, _)| f != "inet")
                );

                // Deletes: the delete lane's workers open their handles now.
                let (rc, rd) = tokio::join!(release(&pool, &c), release(&pool, &d));
                assert_eq!(rc.unwrap(), Released::Deleted);
                assert_eq!(rd.unwrap(), Released::Deleted);
                assert!(ns.link("vm-c").is_none() && ns.link("vm-d").is_none());

                let report = pool.send(Drain).await.unwrap();
                // The idle taps: the one reset, and what the deletes' refill made.
                assert!(report.deleted >= 1, "{report:?}");
                assert_eq!((report.leased, report.delete_failed), (1, 0), "{report:?}");
                let names: Vec<String> = ns.links().iter().map(|l| text(&l["ifname"])).collect();
                assert_eq!(ns.tun_names(), [b.name.to_str().unwrap()], "{names:?}");
            });
        });
    });
}

fn a_pool_bound_to_a_netns_path_keeps_its_namespace_when_the_path_goes() {
    path_goes_after_start(|path| {
        TapPoolActor::builder(config(2, None))
            .netns(Netns::Path(path.to_owned()))
            .workers(2)
            .start()
            .expect("the pool starts")
    });
}

fn a_kernel_factory_bound_to_a_netns_path_keeps_its_namespace_too() {
    path_goes_after_start(|path| {
        let factory = LinuxKernelFactory {
            netns: Some(Netns::Path(path.to_owned())),
        };
        TapPoolActor::builder(config(2, None))
            .kernel(Arc::new(factory))
            .workers(2)
            .start()
            .expect("the pool starts")
    });
}
