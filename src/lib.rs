//! tap-pool keeps a warm pool of Linux TAP devices for microVM orchestrators,
//! so that a VM gets a ready network device without waiting on the kernel.
//!
//! This crate is the runtime-agnostic core: validated device names, the pool's
//! configuration, its bookkeeping ([`Pool`], a state machine that returns
//! decisions and makes no syscalls), the [`Kernel`] trait, and a simulated
//! kernel ([`sim::SimKernel`]). It does not run anything by itself and does not
//! depend on actix: the actors that carry the pool's decisions out live in the
//! `tap-pool-actors` crate, which re-exports everything here.
//!
//! ```
//! use std::time::Instant;
//! use tap_pool::sim::SimKernel;
//! use tap_pool::{Answer, Event, LeaseSource, Op, Pool, PoolConfig, Released, TapName};
//!
//! let mut config = PoolConfig::default();
//! config.size = 1;
//! let mut pool = Pool::new(config).unwrap();
//! let now = Instant::now();
//!
//! // Warm: the pool asks for a create; a driver carries it out and reports.
//! let warm = pool.warm(now);
//! let batch = pool.poll_batch().unwrap();
//! let create = &batch.commands[0];
//! assert!(matches!(&create.op, Op::Create { name, .. } if name == "tap-pool-0"));
//! let mut kernel = SimKernel::new();
//! pool.complete(create.id, create.op.run(&mut kernel), now);
//! assert!(matches!(pool.poll_event(), Some(Event::Warmed { request, .. }) if request == warm));
//!
//! // Acquire: served from the pool, at once, with no kernel call.
//! let vm = TapName::new("vm-1").unwrap();
//! let Answer::Now(Ok(lease)) = pool.acquire(vm, now) else { panic!() };
//! assert_eq!(lease.source, LeaseSource::Pool);
//!
//! // Release takes the lease's token: back to the pool after a reset, which
//! // `run_blocking` carries out (it drives every call the pool asks for, on
//! // this thread). The lease has ended: a second release is refused.
//! assert_eq!(pool.release(lease.token, now), Answer::Now(Ok(Released::Pooled)));
//! assert!(matches!(pool.release(lease.token, now), Answer::Now(Err(_))));
//! tap_pool::run_blocking(&mut pool, &mut kernel, now);
//! assert_eq!(pool.stats().idle, 1);
//! ```
//!
//! # Cargo features
//!
//! - `serde` (off by default): `Serialize`/`Deserialize` on [`TapName`]
//!   (a string, or its bytes where it is not UTF-8), [`Lease`] and
//!   [`LeaseToken`] (`"<run>-<serial>"` in hex), [`PoolConfig`] and
//!   [`TapSpec`] (durations as `"100ms"`), [`LinkInfo`], and every report
//!   ([`SeedReport`], [`DrainReport`], [`PoolStats`]; [`WarmReport`] and
//!   [`Released`], which can carry a [`KernelError`], serialize only, as do
//!   the errors). Everything read back is checked as when it is made.
//! - `toml` (off by default; implies `serde`): [`PoolConfig::from_toml`].
#![warn(missing_docs)]

pub mod config;
#[cfg(all(feature = "helper", target_os = "linux"))]
pub mod helper;
pub mod holder;
pub mod inventory;
pub mod kernel;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod name;
pub mod pool;
mod probe;
mod refusal;
pub mod sim;
mod vm_name;

pub use config::{
    Backoff, ConfigError, DEFAULT_PREFIX, MAX_SIZE, MIN_BACKOFF, Naming, PoolConfig, Recycle,
    TAP_MAX_MTU, TAP_MIN_MTU,
};
pub use holder::{Holder, HolderError, MAX_HOLDER_LEN};
pub use kernel::{
    CreateStep, CreatedTap, Device, Errno, Kernel, KernelError, KernelFactory, LinkEvent, LinkInfo,
    LinkWatcher, Op, Outcome, Reply, Residue, TapSpec, TunKind,
};
#[cfg(target_os = "linux")]
pub use linux::{HeldTap, LinkSummary, LinuxKernel, LinuxKernelFactory, Netns};
pub use name::{MAX_NAME_LEN, NameError, TapName};
pub use pool::{
    Answer, Batch, Command, CommandId, DrainReport, Event, Lane, Lease, LeaseSource, LeaseToken,
    Pool, PoolError, PoolStats, RESET_WINDOW, RESYNC_RETRY, Released, RequestId, SeedReport,
    TapState, WarmFailure, WarmReport, run_blocking,
};
pub use probe::ProbeError;
pub use refusal::{HelperFailure, Refusal};
pub use vm_name::{MIN_VM_NAME_DIGITS, VmNames};
