//! A pool on the simulated kernel, for the message-level tests that need no
//! root: the pool's address and the kernel to inspect it by.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix::Addr;
use tap_pool_actors::sim::SimKernel;
use tap_pool_actors::{
    Error, Lease, LeaseToken, PoolConfig, PoolStats, Released, TapName, TapPoolActor, Warm,
    WarmReport,
};

use crate::pool;

/// A pool actor on a simulated kernel, and the kernel to inspect it by.
pub struct SimPool {
    /// The pool actor.
    pub pool: Addr<TapPoolActor>,
    /// Its kernel.
    pub sim: SimKernel,
}

impl SimPool {
    /// A pool of `size` on a fresh simulated kernel, otherwise as configured
    /// by default.
    pub fn start(size: usize) -> SimPool {
        SimPool::with(SimKernel::new(), {
            let mut c = PoolConfig::default();
            c.size = size;
            c
        })
    }

    /// A pool configured by `config` on `sim`, with as many kernel workers
    /// as its create window.
    pub fn with(sim: SimKernel, config: PoolConfig) -> SimPool {
        let workers = config.create_window;
        let pool = pool::start(config, Arc::new(sim.clone()), workers);
        SimPool { pool, sim }
    }

    /// `Warm`, answered.
    pub async fn warm(&self) -> WarmReport {
        self.pool.send(Warm).await.expect("pool actor alive")
    }

    /// `Acquire` with `fallback`, answered.
    pub async fn acquire(&self, fallback: &str) -> Result<Lease, Error> {
        pool::acquire(&self.pool, fallback).await
    }

    /// `Release` of `lease`, answered.
    pub async fn release(&self, lease: &Lease) -> Result<Released, Error> {
        pool::release(&self.pool, lease).await
    }

    /// `Release` of the token `token`, answered.
    pub async fn release_token(&self, token: LeaseToken) -> Result<Released, Error> {
        pool::release_token(&self.pool, token).await
    }

    /// Releases `lease` and waits until the pool has settled (its reset,
    /// or delete, is done).
    pub async fn release_settled(&self, lease: &Lease) -> Result<Released, Error> {
        let r = self.release(lease).await;
        self.settle().await;
        r
    }

    /// `Settle`: waits until the pool's background work is done.
    pub async fn settle(&self) -> PoolStats {
        pool::settle(&self.pool).await
    }

    /// The pool's `Stats`.
    pub async fn stats(&self) -> PoolStats {
        pool::stats(&self.pool).await
    }

    /// The names of every tap the simulated kernel holds.
    pub fn kernel_taps(&self) -> BTreeSet<TapName> {
        self.sim.taps().into_iter().map(|t| t.name).collect()
    }

    /// Polls `Stats` until `cond` holds, or panics at the deadline. Only for
    /// what `Settle` cannot know of (a watcher's notice on its way, a retry
    /// scheduled for later, a state part-way through); else [`SimPool::settle`].
    pub async fn stats_until(&self, what: &str, cond: impl Fn(&PoolStats) -> bool) -> PoolStats {
        pool::stats_until(&self.pool, what, cond).await
    }
}
