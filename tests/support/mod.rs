//! Shared helpers for the message-level tests: a pool on a simulated kernel,
//! and polling with a deadline instead of sleeping.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use tap_pool_actors::sim::SimKernel;
use tap_pool_actors::{
    Acquire, Lease, PoolConfig, PoolError, PoolStats, Release, Released, Stats, TapName,
    TapPoolActor, Warm, WarmReport,
};

/// A pool actor on a simulated kernel, and the kernel to inspect it by.
pub struct SimPool {
    pub pool: Addr<TapPoolActor>,
    pub sim: SimKernel,
}

impl SimPool {
    pub fn start(size: usize) -> SimPool {
        SimPool::with(
            SimKernel::new(),
            PoolConfig {
                size,
                ..PoolConfig::default()
            },
        )
    }

    pub fn with(sim: SimKernel, config: PoolConfig) -> SimPool {
        let workers = config.create_window;
        let pool =
            TapPoolActor::start_with(config, Arc::new(sim.clone()), workers).expect("valid config");
        SimPool { pool, sim }
    }

    pub async fn warm(&self) -> WarmReport {
        self.pool.send(Warm).await.expect("pool actor alive")
    }

    pub async fn acquire(&self, fallback: &str) -> Result<Lease, PoolError> {
        self.pool
            .send(Acquire::new(fallback).expect("valid name"))
            .await
            .expect("pool actor alive")
    }

    pub async fn release(&self, tap: TapName) -> Result<Released, PoolError> {
        self.pool
            .send(Release { tap })
            .await
            .expect("pool actor alive")
    }

    /// Releases `tap` and waits until no released tap is still being reset,
    /// so the pool's idle list is settled.
    pub async fn release_settled(&self, tap: TapName) -> Result<Released, PoolError> {
        let r = self.release(tap).await;
        self.stats_until("resets done", |s| s.resetting == 0).await;
        r
    }

    pub async fn stats(&self) -> PoolStats {
        self.pool.send(Stats).await.expect("pool actor alive")
    }

    /// The names of every tap the simulated kernel holds.
    pub fn kernel_taps(&self) -> BTreeSet<TapName> {
        self.sim.taps().into_iter().map(|t| t.name).collect()
    }

    /// Polls `Stats` until `cond` holds, or panics at the deadline.
    pub async fn stats_until(&self, what: &str, cond: impl Fn(&PoolStats) -> bool) -> PoolStats {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.stats().await;
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
}

pub fn name(s: &str) -> TapName {
    TapName::new(s).expect("valid name")
}

/// Polls `cond` until it holds, or panics at the deadline.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(2)).await;
    }
}
