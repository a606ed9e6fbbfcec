//! The actors of tap-pool: [`TapPoolActor`] keeps the pool's bookkeeping and
//! answers orchestrators' messages; [`NetlinkActor`] runs every kernel call on
//! worker threads of its own, so a slow kernel never delays an answer the pool
//! can give from memory.
//!
//! This crate re-exports the core crate, so it is the only dependency an
//! orchestrator needs. It does not choose a kernel: hand it the real Linux one
//! or the simulated one ([`sim::SimKernel`]), which runs without root.
//!
//! ```
//! use std::sync::Arc;
//! use tap_pool_actors::sim::SimKernel;
//! use tap_pool_actors::{
//!     Acquire, LeaseSource, NetlinkActor, PoolConfig, Release, Released, TapPoolActor, Warm,
//! };
//!
//! #[actix::main]
//! async fn main() {
//!     let kernel = NetlinkActor::start(Arc::new(SimKernel::new()), 2);
//!     let config = PoolConfig { size: 4, ..PoolConfig::default() };
//!     let pool = TapPoolActor::spawn(config, kernel).unwrap();
//!
//!     assert_eq!(pool.send(Warm).await.unwrap().created.len(), 4);
//!     let lease = pool.send(Acquire::new("vm-42").unwrap()).await.unwrap().unwrap();
//!     assert_eq!(lease.source, LeaseSource::Pool);
//!     // ... start the VM on lease.name, and when it stops:
//!     let released = pool.send(Release { tap: lease.name }).await.unwrap().unwrap();
//!     assert_eq!(released, Released::Pooled);
//! }
//! ```
#![warn(missing_docs)]

pub mod messages;
pub mod netlink;
pub mod pool;

pub use messages::{Acquire, Drain, Lease, LeaseSource, Release, Released, Seed, Stats, Warm};
pub use netlink::{
    CreateTap, DEFAULT_WORKERS, DeleteGroup, DeleteTap, ListGroup, ListTaps, NetlinkActor,
    RESET_REPORT_EVERY, ResetDone, ResetTap, ResetTaps, SetDeviceGroup,
};
pub use pool::{RESET_WINDOW, Reply, TapPoolActor};
pub use tap_pool::*;

/// The README's example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}
