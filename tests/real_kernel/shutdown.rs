//! Shutting down on the real kernel: each test in a network namespace of its
//! own, with `ip -j -d link show` in it as the witness. Stopping the actix
//! System, or the arbiter the pool runs on, drains the pool before the
//! stopping thread returns: only the leased tap is left.

use std::sync::{Arc, mpsc};
use std::thread;

use actix::{Addr, Arbiter, System};
use tap_pool_actors::{LeaseSource, PoolConfig, TapName, TapPoolActor, TapSpec, Warm};
use tap_pool_testkit::pool::acquire;
use tap_pool_testkit::{KernelTest, TestNetns, kernel_test};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(stopping_the_system_leaves_only_the_leased_tap),
        kernel_test!(stopping_the_system_leaves_only_the_leased_tap_without_a_group),
        kernel_test!(async stopping_the_arbiter_leaves_only_the_leased_tap),
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
    assert_eq!(ns.tun_names(), [held.as_str()]);
    if group.is_some() {
        let link = ns.link(held.as_str()).expect("held");
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
    assert_eq!(ns.tun_names(), [held.as_str()]);
    drop(pool);
}
