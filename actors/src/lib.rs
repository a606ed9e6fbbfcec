//! The actors of tap-pool: [`TapPoolActor`] keeps a warm pool of Linux TAP
//! devices and answers an orchestrator's messages, [`Acquire`],
//! [`Release`], [`Warm`], [`Seed`], [`Drain`] and [`Stats`]; kernel
//! workers of its own make every kernel call, so a slow kernel never delays
//! an answer the pool can give from memory.
//!
//! This crate re-exports what an orchestrator needs from the core crate, so
//! it is the only dependency an orchestrator needs. It does not start VMs,
//! open taps for them, manage bridges or route traffic. Run it on the real
//! Linux kernel, or on the simulated one ([`sim::SimKernel`]), which needs
//! no root.
//!
//! Inside an actix System, start a pool with
//! [`TapPoolActor::builder`]`(..).start()` and send it messages; from a
//! program without actix (a plain tokio program), use
//! [`spawn`](PoolBuilder::spawn) instead, which runs the pool's System on a
//! thread of its own and returns a [`PoolHandle`] with async methods.
//!
//! The whole lifecycle, on the simulated kernel:
//!
//! ```
//! use std::sync::Arc;
//! use tap_pool_actors::sim::SimKernel;
//! use tap_pool_actors::{
//!     Acquire, Drain, LeaseSource, PoolConfig, Release, Released, Seed, Settle, TapPoolActor, Warm,
//! };
//!
//! #[actix::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut config = PoolConfig::default();
//!     config.size = 4;
//!     let pool = TapPoolActor::builder(config)
//!         .kernel(Arc::new(SimKernel::new())) // the default is the real kernel
//!         .start()?;
//!
//!     // After a restart: the taps the orchestrator's VMs still hold.
//!     let seeded = pool.send(Seed { used: vec![] }).await??;
//!     assert!(seeded.adopted.is_empty());
//!     assert_eq!(pool.send(Warm).await?.created.len(), 4);
//!
//!     // A guard that releases on drop; keep the lease itself here.
//!     let lease = pool.send(Acquire::new("vm-42")?).await??.into_lease();
//!     assert_eq!(lease.source, LeaseSource::Pool);
//!     // ... start the VM on lease.name, and when it stops:
//!     assert_eq!(pool.send(Release::from(lease)).await??, Released::Pooled);
//!     // The lease has ended: a second release is refused, changing nothing.
//!     assert!(pool.send(Release::from(lease)).await?.is_err());
//!     // Wait for the tap's reset: it is idle again.
//!     assert_eq!(pool.send(Settle).await??.idle, 4);
//!
//!     // Shutting down: every idle tap goes.
//!     let drained = pool.send(Drain).await?;
//!     assert_eq!(drained.deleted, 4);
//!     Ok(())
//! }
//! ```
//!
//! # Cargo features
//!
//! - `metrics` (off by default): publishes the pool's counts and counters
//!   ([`PoolStats`]), the latency of each [`Acquire`] and of each kernel
//!   call through the [`metrics`](https://docs.rs/metrics) facade, to
//!   whatever recorder the process installs before it starts the pool (a
//!   Prometheus exporter: see `examples/prometheus.rs`). Every metric is
//!   named `tap_pool_*` and labelled `pool` (the prefix, or
//!   `PoolBuilder::metrics_label`); docs/operations.md lists them. Off, no
//!   metrics code is compiled and no dependency added.
//! - `serde` (off by default): `Serialize`/`Deserialize` on names, leases
//!   and their tokens, the configuration, the kernel's listings and every
//!   report, so an orchestrator can keep its VMs' leases across its own
//!   restart (errors, and the reports that carry one, serialize only).
//!   Tap-pool's `serde` feature.
//! - `toml` (off by default; implies `serde`): [`PoolConfig::from_toml`],
//!   a configuration read from a TOML file and checked as a pool checks it
//!   (`docs/pool.example.toml` has every key).
//!
//! # Logs and spans
//!
//! Through [`tracing`](https://docs.rs/tracing): the pool's start, `Seed`,
//! warm-up and drain at `info`; a `debug` span per request and per kernel
//! call, each kernel call's span a child of the span of the message that
//! caused it, though it runs on a kernel worker. Name who holds a lease with
//! [`Acquire::holder`] (a VM's id) to find every span and warning about its
//! tap (docs/operations.md, "Logs and spans").
#![warn(missing_docs)]

mod builder;
mod guard;
mod handle;
mod kernel;
mod messages;
mod metrics;
mod pool;
mod shutdown;

use thiserror::Error;

pub use builder::{DEFAULT_WORKERS, MAX_WORKERS, PoolBuilder, StartError};
pub use guard::LeaseGuard;
pub use handle::PoolHandle;
pub use messages::{
    Acquire, Drain, Lease, LeaseSource, LeaseToken, Release, Released, Seed, Settle, Stats, Warm,
};
pub use pool::{Reply, TapPoolActor};
pub use shutdown::SHUTDOWN_DEADLINE;
pub use tap_pool::{
    Backoff, ConfigError, CreateStep, DEFAULT_PREFIX, DrainReport, Errno, HelperFailure, Holder,
    HolderError, KernelError, MAX_HOLDER_LEN, MAX_NAME_LEN, MAX_SIZE, MIN_BACKOFF,
    MIN_VM_NAME_DIGITS, NameError, PoolConfig, PoolError, PoolStats, ProbeError, Recycle, Refusal,
    Residue, SeedReport, TapName, TapSpec, TapState, VmNames, WarmFailure, WarmReport,
};
#[cfg(target_os = "linux")]
pub use tap_pool::{LinuxKernelFactory, Netns};

/// The simulated kernel, for tests and demos without root.
pub use tap_pool::sim;

/// A pool without privilege: [`helper::HelperKernelFactory`] has
/// `tap-pool-helper` make its taps (feature `helper`).
#[cfg(all(feature = "helper", target_os = "linux"))]
pub use tap_pool::helper;

/// The real kernel: [`linux::probe`] tells whether this process can make
/// taps; [`linux::LinuxKernelFactory`] drives it in a namespace of your
/// choice.
#[cfg(target_os = "linux")]
pub use tap_pool::linux;

/// For implementers of a kernel of their own: the [`Kernel`](kernel_api::Kernel)
/// trait and the types it speaks. An orchestrator needs none of it.
pub mod kernel_api {
    pub use tap_pool::{
        CreatedTap, Device, Kernel, KernelFactory, LinkEvent, LinkInfo, LinkWatcher, TunKind,
    };
}

/// Why a request to the pool actor failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool refused the request, or the kernel refused it on the
    /// pool's behalf. Nothing changed.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The pool stopped before it could answer.
    #[error("the tap pool stopped before it answered")]
    Stopped,
}

impl Error {
    /// Whether the pool refused an `Acquire` because its fallback name is
    /// taken: the pool holds a tap of that name
    /// ([`PoolError::NameInUse`]), or another device has it
    /// ([`KernelError::Exists`]). Nothing changed; with
    /// [`Acquire::for_vm`], ask again with the next attempt.
    pub fn is_name_taken(&self) -> bool {
        matches!(
            self,
            Error::Pool(
                PoolError::NameInUse { .. } | PoolError::Kernel(KernelError::Exists { .. })
            )
        )
    }
}

/// The README's example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}
