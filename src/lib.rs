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
//! use tap_pool::sim::SimKernel;
//! use tap_pool::{AcquireDecision, Command, Pool, PoolConfig, TapName, run_blocking};
//!
//! let mut pool = Pool::new(PoolConfig { size: 1, ..PoolConfig::default() }).unwrap();
//! // Warm: the pool queues a create; a driver carries it out and reports back.
//! pool.warm();
//! let tap = TapName::new("tap-pool-0").unwrap();
//! assert!(matches!(pool.take_command(), Some(Command::Create { name, .. }) if name == tap));
//! pool.warm_created(tap, Ok(tap_pool::CreatedTap { index: 7, mac: [2, 0, 0, 0, 0, 7] }));
//! // Acquire: served from the pool, with no kernel call.
//! let vm = TapName::new("vm-1").unwrap();
//! assert_eq!(pool.acquire(vm).unwrap(), AcquireDecision::Pooled(tap));
//!
//! // Or let `run_blocking` drive a kernel (here the simulated one).
//! let mut kernel = SimKernel::new();
//! let mut other = Pool::new(PoolConfig { size: 2, ..PoolConfig::default() }).unwrap();
//! other.warm();
//! run_blocking(&mut other, &mut kernel);
//! assert_eq!(kernel.taps().len(), 2);
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
    CreateStep, CreatedTap, Device, Errno, Kernel, KernelError, KernelFactory, LinkEvent, LinkInfo,
    LinkWatcher, TapSpec, TunKind,
};
#[cfg(target_os = "linux")]
pub use linux::{LinuxKernel, LinuxKernelFactory, Netns};
pub use name::{MAX_NAME_LEN, NameError, TapName};
pub use pool::{
    AcquireDecision, Command, DrainReport, Pool, PoolError, PoolStats, ReleaseDecision, SeedReport,
    TapState, WarmFailure, WarmReport, run_blocking,
};
