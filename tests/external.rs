//! The kernel changes behind the pool's back, and failures heal.

use std::time::Duration;

use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{Backoff, Error, KernelError, LeaseSource, PoolConfig, PoolError, Released};
use tap_pool_testkit::SimPool;

#[actix_rt::test]
async fn an_idle_tap_deleted_behind_the_pools_back_is_dropped_and_replaced() {
    let p = SimPool::start(3);
    p.warm().await;
    let victims: Vec<_> = p.kernel_taps().into_iter().take(2).collect();
    for v in &victims {
        assert!(p.sim.remove_externally(*v));
    }
    let s = p
        .stats_until("vanished taps replaced", |s| s.vanished == 2 && s.idle == 3)
        .await;
    assert_eq!(s.created, 5);
    // Every idle tap exists; acquire never hands out a vanished one.
    for i in 0..3 {
        let lease = p.acquire(&format!("vm-{i}")).await.unwrap();
        assert_eq!(lease.source, LeaseSource::Pool);
        assert!(!victims.contains(&lease.name));
        assert!(p.sim.contains(lease.name));
    }
}

#[actix_rt::test]
async fn a_failed_warm_up_is_retried_with_backoff_until_the_pool_is_full() {
    let sim = SimKernel::new();
    sim.inject(Fault::nth(SimOp::Create, 2, libc::ENOMEM));
    sim.inject(Fault::nth(SimOp::Create, 3, libc::ENOMEM));
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 3;
        c.create_window = 1;
        c.warm_retry = Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            max_attempts: 5,
        };
        c
    });
    let report = p.warm().await;
    assert_eq!(report.created.len(), 1);
    assert_eq!(report.retry_in, Some(Duration::from_millis(5)));
    let s = p.stats_until("healed", |s| s.idle == 3).await;
    assert_eq!(s.failures, 2);
}

#[actix_rt::test]
async fn a_failed_delete_is_retried_until_the_tap_is_gone() {
    let sim = SimKernel::new();
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 0;
        c.delete_retry = Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
            max_attempts: u32::MAX,
        };
        c
    });
    let lease = p.acquire("vm-a").await.unwrap();
    p.sim.inject(Fault::nth(SimOp::Delete, 1, libc::EBUSY));
    p.sim.inject(Fault::nth(SimOp::Delete, 2, libc::EBUSY));
    assert!(matches!(
        p.release(&lease).await,
        Ok(Released::DeleteFailed(KernelError::Delete { .. }))
    ));
    assert!(p.sim.contains(lease.name));
    let s = p
        .stats_until("retried delete", |s| {
            s.delete_failed == 0 && s.deleting == 0
        })
        .await;
    assert_eq!((s.deleted, s.failures), (1, 2));
    assert!(!p.sim.contains(lease.name));
    assert_eq!(p.sim.calls(SimOp::Delete), 3);
}

#[actix_rt::test]
async fn a_leased_tap_deleted_behind_the_pools_back_keeps_its_name_until_released() {
    let p = SimPool::start(0);
    let lease = p.acquire("vm-a").await.unwrap();
    let index = p.sim.tap(lease.name).unwrap().index;
    assert!(p.sim.remove_externally(lease.name));
    // The watcher tells the pool; the holder still holds the name.
    p.stats_until("the pool hears of it", |s| s.vanished == 1)
        .await;
    assert!(matches!(
        p.acquire("vm-a").await.unwrap_err(),
        Error::Pool(PoolError::NameInUse { .. })
    ));
    assert_eq!(
        p.release(&lease).await.unwrap(),
        tap_pool_actors::Released::Vanished
    );
    // Now the name is free again, for a new device.
    let again = p.acquire("vm-a").await.unwrap();
    assert_ne!(p.sim.tap(again.name).unwrap().index, index);
}
