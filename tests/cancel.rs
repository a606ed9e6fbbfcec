//! Callers who give up: a timeout, a dropped future, `do_send`. Whatever
//! they abandon, no lease is left to nobody, and no name stays reserved.

use std::time::Duration;

use tap_pool_actors::sim::{SimKernel, SimOp};
use tap_pool_actors::{Acquire, LeaseGuard, LeaseSource, PoolConfig, Released, Stats};
use tap_pool_testkit::{SimPool, name};

fn slow_creates(size: usize) -> SimPool {
    let sim = SimKernel::new();
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = size;
        c
    });
    p.sim.set_latency(SimOp::Create, Duration::from_millis(100));
    p
}

#[actix_rt::test]
async fn a_caller_that_times_out_on_a_create_leaves_no_lease_and_no_tap() {
    let p = slow_creates(0);
    let gave_up = p
        .pool
        .send(Acquire::new("vm-a").unwrap())
        .timeout(Duration::from_millis(10))
        .await;
    assert!(gave_up.is_err(), "the create takes 100 ms");
    // The create finishes after the caller left: the tap is not leased to
    // nobody; a fallback tap has no place in the pool, so it is deleted.
    let s = p.settle().await;
    assert_eq!((s.leased, s.creating, s.deleting), (0, 0, 0), "{s:?}");
    assert_eq!(p.sim.calls(SimOp::Create), 1);
    assert!(!p.sim.contains(name("vm-a")), "deleted");
    // The name is free again.
    let again = p.acquire("vm-a").await.unwrap();
    assert_eq!(again.source, LeaseSource::Created);
    assert_eq!(p.release(&again).await.unwrap(), Released::Deleted);
}

#[actix_rt::test]
async fn a_dropped_acquire_future_leaves_no_lease() {
    let p = slow_creates(0);
    let request = p.pool.send(Acquire::new("vm-a").unwrap());
    // Let the actor take the message, then drop the future.
    tokio::time::timeout(Duration::from_millis(10), request)
        .await
        .unwrap_err();
    let s = p.settle().await;
    assert_eq!((s.leased, s.deleted), (0, 1), "{s:?}");
    assert!(p.sim.taps().is_empty());
}

#[actix_rt::test]
async fn a_warm_acquire_nobody_waits_for_goes_back_to_the_pool() {
    let p = SimPool::start(2);
    p.warm().await;
    // do_send: the caller never takes the answer.
    p.pool.do_send(Acquire::new("vm-a").unwrap());
    // A timeout shorter than the mailbox wait: the actor answers a caller
    // that is gone.
    let busy = p.pool.send(Stats);
    let gone = p.pool.send(Acquire::new("vm-b").unwrap());
    drop(gone);
    busy.await.unwrap();
    let s = p.settle().await;
    assert_eq!((s.idle, s.leased), (2, 0), "{s:?}");
    assert_eq!(p.kernel_taps().len(), 2);
    // Both taps are handed out again, each once.
    let a = p.acquire("vm-c").await.unwrap();
    let b = p.acquire("vm-d").await.unwrap();
    assert_ne!(a.name, b.name);
    assert_eq!((a.source, b.source), (LeaseSource::Pool, LeaseSource::Pool));
}

#[actix_rt::test]
async fn an_acquire_waiting_for_a_reset_that_gives_up_leaves_the_tap_in_the_pool() {
    let p = SimPool::start(1);
    p.warm().await;
    let held = p.acquire("vm-a").await.unwrap();
    p.sim.set_latency(SimOp::Reset, Duration::from_millis(100));
    p.release(&held).await.unwrap();
    // The only tap is in reset: this Acquire waits for it, then gives up.
    let gave_up = p
        .pool
        .send(Acquire::new("vm-b").unwrap())
        .timeout(Duration::from_millis(10))
        .await;
    assert!(gave_up.is_err());
    let s = p.settle().await;
    assert_eq!((s.idle, s.leased, s.created), (1, 0, 1), "{s:?}");
}

#[actix_rt::test]
async fn a_guard_releases_its_lease_when_dropped_and_only_once() {
    let p = SimPool::start(2);
    p.warm().await;
    let guard = LeaseGuard::acquire(&p.pool, Acquire::new("vm-a").unwrap())
        .await
        .unwrap();
    let lease = *guard.lease();
    assert_eq!(p.stats().await.leased, 1);
    drop(guard);
    let s = p.settle().await;
    assert_eq!((s.idle, s.leased), (2, 0));
    // Its lease has ended: releasing it by hand is refused.
    assert!(p.release(&lease).await.is_err());

    // release() answers, and nothing more is sent on drop.
    let guard = LeaseGuard::acquire(&p.pool, Acquire::new("vm-b").unwrap())
        .await
        .unwrap();
    assert_eq!(guard.release().await.unwrap(), Released::Pooled);

    // into_lease() keeps it.
    let guard = LeaseGuard::acquire(&p.pool, Acquire::new("vm-c").unwrap())
        .await
        .unwrap();
    let kept = guard.into_lease();
    let s = p.settle().await;
    assert_eq!(s.leased, 1);
    assert_eq!(p.release(&kept).await.unwrap(), Released::Pooled);
}

#[actix_rt::test]
async fn settle_answers_once_background_work_is_done() {
    let p = SimPool::start(4);
    // Nothing under way: answered at once.
    assert_eq!(p.settle().await.idle, 0);
    p.sim.set_latency(SimOp::Create, Duration::from_millis(20));
    p.pool.do_send(tap_pool_actors::Warm);
    let s = p.settle().await;
    assert_eq!((s.idle, s.creating), (4, 0), "the warm-up is done");
    p.sim.set_latency(SimOp::Reset, Duration::from_millis(20));
    let lease = p.acquire("vm-a").await.unwrap();
    p.release(&lease).await.unwrap();
    assert_eq!(p.stats().await.resetting, 1);
    let s = p.settle().await;
    assert_eq!((s.idle, s.resetting), (4, 0), "the reset is done");
}

#[actix_rt::test]
async fn settle_does_not_wait_for_a_retry_scheduled_for_later() {
    use tap_pool_actors::sim::Fault;
    let p = slow_creates(0);
    p.sim.set_latency(SimOp::Create, Duration::ZERO);
    let lease = p.acquire("vm-a").await.unwrap();
    // Every delete fails: the tap is kept, its delete retried with backoff.
    p.sim.inject(Fault::always(SimOp::Delete, libc::EIO));
    // The release went through: its answer says the delete failed and is
    // retried.
    assert!(matches!(
        p.release(&lease).await,
        Ok(tap_pool_actors::Released::DeleteFailed(_))
    ));
    let s = p.settle().await;
    assert_eq!((s.delete_failed, s.deleting, s.leased), (1, 0, 0), "{s:?}");
    assert!(p.sim.contains(name("vm-a")), "still there, to be retried");
    // (So that the drain when the test's System stops is quick.)
    p.sim.clear_faults();
}
