//! `Acquire`: LIFO from the pool, or a create under the caller's fallback name.

use std::time::Duration;

use tap_pool::Kernel;
use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{
    Acquire, Error, KernelError, LeaseSource, NameError, PoolConfig, PoolError, Released, TapSpec,
    TapState,
};
use tap_pool_testkit::{SimPool, name};

#[actix_rt::test]
async fn acquire_hands_out_the_most_recently_pooled_tap() {
    let p = SimPool::start(3);
    p.warm().await;
    let a = p.acquire("vm-a").await.unwrap();
    let b = p.acquire("vm-b").await.unwrap();
    assert_eq!((a.source, b.source), (LeaseSource::Pool, LeaseSource::Pool));
    assert_ne!(a.name, b.name);
    assert_eq!(p.release_settled(&b).await.unwrap(), Released::Pooled);
    assert_eq!(p.release_settled(&a).await.unwrap(), Released::Pooled);
    // a went back last, so it comes out first.
    assert_eq!(p.acquire("vm-c").await.unwrap().name, a.name);
    assert_eq!(p.acquire("vm-d").await.unwrap().name, b.name);
    let s = p.stats().await;
    assert_eq!((s.hits, s.misses, s.leased, s.idle), (4, 0, 2, 1));
    assert_eq!(p.sim.calls(SimOp::Create), 3, "hits create nothing");
}

#[actix_rt::test]
async fn empty_pool_creates_the_fallback_name() {
    let p = SimPool::start(1);
    let lease = p.acquire("vm-cold").await.unwrap();
    assert_eq!(lease.name, name("vm-cold"));
    assert_eq!(lease.source, LeaseSource::Created);
    let tap = p.sim.tap(name("vm-cold")).expect("created in the kernel");
    assert!(tap.persistent && tap.up);
    let s = p.stats().await;
    assert_eq!((s.misses, s.leased, s.created), (1, 1, 1));
}

#[actix_rt::test]
async fn pool_size_zero_always_creates() {
    let p = SimPool::start(0);
    p.warm().await;
    for i in 0..3 {
        let lease = p.acquire(&format!("vm-{i}")).await.unwrap();
        assert_eq!(lease.source, LeaseSource::Created);
    }
    assert_eq!(p.kernel_taps().len(), 3);
}

#[actix_rt::test]
async fn a_failed_fallback_create_reaches_the_caller_and_leaks_nothing() {
    let p = SimPool::start(1);
    p.sim.inject(Fault::nth(SimOp::Create, 1, libc::ENOMEM));
    let err = p.acquire("vm-a").await.unwrap_err();
    assert!(
        matches!(err, Error::Pool(PoolError::Kernel(KernelError::Create { name: n, .. })) if n == name("vm-a")),
        "{err}"
    );
    assert!(p.kernel_taps().is_empty());
    let s = p.stats().await;
    assert_eq!((s.creating, s.leased, s.failures), (0, 0, 1));
    // The name is free again.
    assert_eq!(p.acquire("vm-a").await.unwrap().name, name("vm-a"));
}

#[actix_rt::test]
async fn a_fallback_name_that_exists_in_the_kernel_is_refused_and_left_alone() {
    let p = SimPool::start(1);
    let mut outside = p.sim.clone();
    let spec = {
        let mut t = TapSpec::default();
        t.mtu = Some(9000);
        t
    };
    outside.create_tap(name("vm-taken"), &spec).unwrap();
    let err = p.acquire("vm-taken").await.unwrap_err();
    assert_eq!(
        err,
        Error::Pool(PoolError::Kernel(KernelError::Exists {
            name: name("vm-taken")
        }))
    );
    // The other owner's device is untouched, and the pool does not claim it.
    assert_eq!(p.sim.tap(name("vm-taken")).unwrap().mtu, 9000);
    let s = p.stats().await;
    assert_eq!((s.leased, s.creating), (0, 0));
}

#[actix_rt::test]
async fn bad_fallback_names_are_typed_errors() {
    assert_eq!(Acquire::new("").unwrap_err(), NameError::Empty);
    assert!(matches!(
        Acquire::new("a-name-of-16-byt"),
        Err(NameError::TooLong { len: 16, .. })
    ));
    for (bad, byte) in [
        ("vm/1", b'/'),
        ("vm:1", b':'),
        ("vm 1", b' '),
        ("vm\0", 0),
        ("vm-\u{e0}", 0xa0),
    ] {
        assert!(
            matches!(Acquire::new(bad), Err(NameError::ForbiddenByte { byte: b, .. }) if b == byte),
            "{bad:?}"
        );
    }
    assert!(matches!(Acquire::new(".."), Err(NameError::Reserved(_))));
}

#[actix_rt::test]
async fn fallback_names_the_pool_holds_are_refused_and_change_nothing() {
    let p = SimPool::start(1);
    p.warm().await;
    let pooled = p.acquire("vm-a").await.unwrap(); // hit
    let created = p.acquire("vm-b").await.unwrap(); // miss: vm-b created
    assert_eq!(created.name, name("vm-b"));
    p.release_settled(&pooled).await.unwrap(); // idle again
    let before = p.stats().await;
    let kernel_before = p.kernel_taps();

    assert_eq!(
        p.acquire("vm-b").await.unwrap_err(),
        Error::Pool(PoolError::NameInUse {
            name: name("vm-b"),
            state: TapState::Leased
        })
    );
    // The idle tap's own name (a pool name) as a fallback.
    assert_eq!(
        p.acquire(pooled.name.to_str().unwrap()).await.unwrap_err(),
        Error::Pool(PoolError::FallbackIsPoolName { name: pooled.name })
    );
    assert_eq!(p.stats().await, before);
    assert_eq!(p.kernel_taps(), kernel_before);
}

/// The pool stops while the kernel is still creating a caller's fallback
/// tap: nobody could release it any more, so it is deleted and the caller
/// is told the pool stopped.
#[test]
fn a_fallback_tap_finished_after_the_pool_stopped_is_deleted() {
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Create, Duration::from_millis(300));
    let system = actix_rt::System::new();
    let late = name("vm-late");
    let (p, pending) = system.block_on(async {
        let p = SimPool::with(sim.clone(), {
            let mut c = PoolConfig::default();
            c.size = 0;
            c
        });
        let pending = p.pool.send(Acquire::from(late));
        tap_pool_testkit::wait_until("the fallback create to start", || async {
            sim.calls(SimOp::Create) == 1
        })
        .await;
        (p, pending)
    });
    // Dropping every address stops the pool (after a drain that does not
    // wait for fallback creates).
    drop(p);
    system.block_on(async {
        assert!(matches!(pending.await.unwrap(), Err(Error::Stopped)));
        tap_pool_testkit::wait_until("the orphaned tap to be deleted", || async {
            !sim.contains(late)
        })
        .await;
    });
    assert_eq!(sim.calls(SimOp::Create), 1);
    assert!(sim.taps().is_empty(), "nothing left: {:?}", sim.taps());
}

/// Same, but the create fails because the name is someone else's device:
/// the caller hears that the pool stopped, and the device is left alone.
#[actix_rt::test]
async fn a_failed_fallback_create_after_the_pool_stopped_leaves_the_owners_device_alone() {
    let sim = SimKernel::new();
    let mut outside = sim.clone();
    outside
        .create_tap(name("vm-taken"), &TapSpec::default())
        .unwrap();
    sim.set_latency(SimOp::Create, Duration::from_millis(100));
    let p = SimPool::with(sim.clone(), {
        let mut c = PoolConfig::default();
        c.size = 0;
        c
    });
    let pending = p.pool.send(Acquire::new("vm-taken").unwrap());
    tap_pool_testkit::wait_until("the fallback create to start", || async {
        sim.calls(SimOp::Create) == 1
    })
    .await;
    let weak = p.pool.downgrade();
    drop(p);
    assert!(matches!(pending.await.unwrap(), Err(Error::Stopped)));
    tap_pool_testkit::wait_until("the create to fail", || async {
        sim.returned(SimOp::Create) == 1
    })
    .await;
    tap_pool_testkit::wait_until("the pool to stop", || async {
        weak.upgrade().is_none_or(|pool| !pool.connected())
    })
    .await;
    assert!(sim.contains(name("vm-taken")));
    assert_eq!(sim.calls(SimOp::Delete), 0);
}
