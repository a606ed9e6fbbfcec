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
//! use tap_pool::{AcquireDecision, Pool, PoolConfig, TapName};
//!
//! let mut pool = Pool::new(PoolConfig { size: 1, ..PoolConfig::default() }).unwrap();
//! // Warm: the pool asks for one create; the caller makes it and reports back.
//! let step = pool.warm();
//! assert_eq!(step.create, [TapName::new("tap-pool-0").unwrap()]);
//! pool.warm_created(step.create[0], Ok(()));
//! // Acquire: served from the pool.
//! let vm = TapName::new("vm-1").unwrap();
//! assert_eq!(pool.acquire(vm).unwrap(), AcquireDecision::Pooled(step.create[0]));
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod kernel;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod name;
pub mod pool;
pub mod sim;

pub use config::{Backoff, ConfigError, DEFAULT_PREFIX, PoolConfig};
pub use kernel::{
    CreateStep, CreatedTap, Errno, Kernel, KernelError, KernelFactory, LinkEvent, LinkInfo,
    LinkWatcher, TapSpec, TunKind,
};
#[cfg(target_os = "linux")]
pub use linux::{LinuxKernel, LinuxKernelFactory, Netns};
pub use name::{MAX_NAME_LEN, NameError, TapName};
pub use pool::{
    AcquireDecision, Command, DrainReport, Pool, PoolError, PoolStats, ReleaseDecision, SeedReport,
    TapState, WarmFailure, WarmReport, run_blocking,
};
