//! Helpers for the pool's unit tests: a pool warmed on the simulated kernel.

use std::time::Instant;

use super::{Answer, Event, Lease, Pool, PoolError, run_blocking};
use crate::config::PoolConfig;
use crate::name::TapName;
use crate::sim::SimKernel;

pub(super) fn name(s: &str) -> TapName {
    TapName::new(s).unwrap()
}

pub(super) fn config(size: usize) -> PoolConfig {
    PoolConfig {
        size,
        ..PoolConfig::default()
    }
}

/// A pool of `config`, warmed on a fresh simulated kernel.
pub(super) fn warmed_with(config: PoolConfig) -> (Pool, SimKernel, Instant) {
    let mut pool = Pool::new(config).unwrap();
    let mut kernel = SimKernel::new();
    let now = Instant::now();
    pool.warm(now);
    run_blocking(&mut pool, &mut kernel, now);
    (pool, kernel, now)
}

/// A pool of `size`, warmed on a fresh simulated kernel.
pub(super) fn warmed(size: usize) -> (Pool, SimKernel, Instant) {
    warmed_with(config(size))
}

/// Carries out every call the pool asks for; the answers owed.
pub(super) fn run(p: &mut Pool, k: &mut SimKernel, now: Instant) -> Vec<Event> {
    run_blocking(p, k, now)
}

/// An `Acquire` that must be answered at once.
pub(super) fn acquire_now(p: &mut Pool, fallback: &str, now: Instant) -> Result<Lease, PoolError> {
    match p.acquire(name(fallback), now) {
        Answer::Now(result) => result,
        Answer::Later(_) => panic!("expected an answer at once"),
    }
}

/// An `Acquire` that creates its fallback tap; the tap's name.
pub(super) fn acquire_created(
    p: &mut Pool,
    k: &mut SimKernel,
    fallback: &str,
    now: Instant,
) -> TapName {
    let Answer::Later(request) = p.acquire(name(fallback), now) else {
        panic!("expected a create")
    };
    match &run(p, k, now)[..] {
        [
            Event::Acquired {
                request: r,
                result: Ok(lease),
            },
        ] if *r == request => lease.name,
        other => panic!("{other:?}"),
    }
}
