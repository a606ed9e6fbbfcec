//! Starting a pool, and the messages tests send it, answered or with a
//! deadline. Every test and bench starts its pools here ([`start`], or
//! [`spawn`] without a link watcher), so a change to how a pool is
//! built is made in one place.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use tap_pool_actors::kernel_api::KernelFactory;
use tap_pool_actors::{
    Acquire, Error, Lease, LeaseGuard, LeaseToken, PoolConfig, PoolStats, Release, Released,
    Settle, Stats, TapPoolActor,
};

/// The whole pool on `factory` (kernel workers with `workers` threads per lane,
/// and a link watcher), as an orchestrator starts it.
pub fn start(
    config: PoolConfig,
    factory: Arc<dyn KernelFactory>,
    workers: usize,
) -> Addr<TapPoolActor> {
    TapPoolActor::builder(config)
        .kernel(factory)
        .workers(workers)
        .start()
        .expect("valid config")
}

/// The pool without a link watcher: removals behind its back are noticed
/// only when a kernel call on them fails.
pub fn spawn(
    config: PoolConfig,
    factory: Arc<dyn KernelFactory>,
    workers: usize,
) -> Addr<TapPoolActor> {
    TapPoolActor::builder(config)
        .kernel(factory)
        .workers(workers)
        .watch_links(false)
        .start()
        .expect("valid config")
}

/// `Acquire` with `fallback`, answered.
pub async fn acquire(pool: &Addr<TapPoolActor>, fallback: &str) -> Result<Lease, Error> {
    pool.send(Acquire::new(fallback).expect("valid name"))
        .await
        .expect("pool actor alive")
        .map(LeaseGuard::into_lease)
}

/// `Release` of `lease`, answered.
pub async fn release(pool: &Addr<TapPoolActor>, lease: &Lease) -> Result<Released, Error> {
    release_token(pool, lease.token).await
}

/// `Release` of the token `token`, answered.
pub async fn release_token(
    pool: &Addr<TapPoolActor>,
    token: LeaseToken,
) -> Result<Released, Error> {
    pool.send(Release { token })
        .await
        .expect("pool actor alive")
}

/// `Settle`: waits until the pool's background work is done; its stats then.
pub async fn settle(pool: &Addr<TapPoolActor>) -> PoolStats {
    pool.send(Settle)
        .await
        .expect("pool actor alive")
        .expect("pool running")
}

/// The pool's `Stats`.
pub async fn stats(pool: &Addr<TapPoolActor>) -> PoolStats {
    pool.send(Stats).await.expect("pool actor alive")
}

/// Polls `Stats` until `cond` holds, or panics after ten seconds, naming
/// `what` it waited for. Only for what `Settle` cannot know of: a link
/// watcher's notice still on its way, a retry scheduled for later, a state
/// part-way through; to wait for the pool's own work, use [`settle`].
pub async fn stats_until(
    pool: &Addr<TapPoolActor>,
    what: &str,
    cond: impl Fn(&PoolStats) -> bool,
) -> PoolStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(pool).await;
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        actix_rt::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until the pool has nothing in flight (no create, reset or delete)
/// and returns its stats; no delete may be stuck failing.
pub async fn settled(pool: &Addr<TapPoolActor>, within: Duration) -> PoolStats {
    let deadline = Instant::now() + within;
    loop {
        let s = stats(pool).await;
        if s.creating == 0 && s.resetting == 0 && s.deleting == 0 {
            assert_eq!(s.delete_failed, 0, "{s:?}");
            return s;
        }
        assert!(Instant::now() < deadline, "pool never settled: {s:?}");
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
}
