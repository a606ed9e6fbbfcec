//! Starting a pool: [`PoolBuilder`].

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use actix::{Actor, Addr, System, WeakAddr};
use tap_pool::{
    ConfigError, Errno, KernelError, KernelFactory, LinkEvent, Pool, PoolConfig, ProbeError,
};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::kernel::{SPIN, Workers};
use crate::pool::{LinkChanged, TapPoolActor};
use crate::shutdown::SHUTDOWN_DEADLINE;

/// How many kernel worker threads each lane of a pool uses unless told
/// otherwise.
pub const DEFAULT_WORKERS: usize = 2;

/// Why a pool did not start. Nothing was started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is refused.
    #[error("the pool's configuration is refused")]
    Config(#[from] ConfigError),
    /// No actix `System` runs on this thread: start the pool from inside
    /// one (`#[actix::main]`, `actix::System::new().block_on(..)`), or use
    /// [`PoolBuilder::spawn`], which runs one on a thread of its own.
    #[error("no actix System is running on this thread")]
    NoSystem,
    /// The link watcher's thread could not be started.
    #[error("cannot start the link watcher thread")]
    Watcher(#[source] std::io::Error),
    /// A kernel worker thread could not be started.
    #[error("cannot start a kernel worker thread")]
    Workers(#[source] std::io::Error),
    /// The number of kernel workers per lane is out of range.
    #[error("{workers} kernel workers per lane: between 1 and {MAX_WORKERS}")]
    WorkerCount {
        /// The number asked for.
        workers: usize,
    },
    /// The pool's network namespace, given by path, does not open as one:
    /// `ENOENT` (no such path), `EACCES`/`EPERM`, or `EINVAL` (the file is
    /// not a network namespace). The path is opened once, at start, and
    /// every kernel worker and the link watcher enter what it named then.
    #[error("cannot open network namespace {path}: {errno}")]
    Namespace {
        /// The namespace's path, as configured.
        path: PathBuf,
        /// What the kernel answered.
        errno: Errno,
    },
    /// The kernel factory refused to prepare for the pool
    /// ([`KernelFactory::resolve`]) for a reason of its own.
    #[error("the kernel cannot be prepared for the pool")]
    Kernel(#[source] KernelError),
    /// Started with [`PoolBuilder::fail_fast`]: the pool could not make
    /// taps where it would make them ([`KernelFactory::probe`]); the
    /// [`ProbeError`] says what is missing.
    #[error("the pool cannot make taps where it would make them")]
    Probe(#[source] ProbeError),
    /// [`PoolBuilder::spawn`]: the thread of the pool's actix System could
    /// not be started, or ended before the pool started.
    #[error("cannot run the pool's System thread")]
    SystemThread(#[source] std::io::Error),
}

/// The most kernel workers a lane may have.
pub const MAX_WORKERS: usize = 256;

/// Starts a [`TapPoolActor`]: the kernel to drive, how many kernel workers,
/// and whether to watch the kernel's links (on by default).
///
/// ```
/// use std::sync::Arc;
/// use tap_pool_actors::sim::SimKernel;
/// use tap_pool_actors::{PoolConfig, TapPoolActor};
///
/// #[actix::main]
/// async fn main() {
///     let mut config = PoolConfig::default();
///     config.size = 4;
///     let pool = TapPoolActor::builder(config)
///         .kernel(Arc::new(SimKernel::new()))
///         .workers(2)
///         .start()
///         .unwrap();
///     # drop(pool);
/// }
/// ```
#[must_use]
pub struct PoolBuilder {
    config: PoolConfig,
    kernel: Option<Arc<dyn KernelFactory>>,
    workers: usize,
    watch: bool,
    shutdown_deadline: Duration,
    fail_fast: bool,
    /// The `pool` label of its metrics (empty without the `metrics` feature).
    metrics: crate::metrics::Label,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .field("workers", &self.workers)
            .field("watch", &self.watch)
            .field("shutdown_deadline", &self.shutdown_deadline)
            .field("fail_fast", &self.fail_fast)
            .finish_non_exhaustive()
    }
}

impl TapPoolActor {
    /// A builder for a pool of `config`, on the real Linux kernel in this
    /// process's network namespace unless told otherwise.
    pub fn builder(config: PoolConfig) -> PoolBuilder {
        PoolBuilder {
            config,
            kernel: None,
            workers: DEFAULT_WORKERS,
            watch: true,
            shutdown_deadline: SHUTDOWN_DEADLINE,
            fail_fast: false,
            metrics: crate::metrics::Label::default(),
        }
    }
}

impl PoolBuilder {
    /// The kernel to drive: a [`tap_pool::LinuxKernelFactory`] (for
    /// example with its own network namespace), the simulated kernel, the
    /// helper kernel (`tap_pool::helper::HelperKernelFactory`, feature
    /// `helper`), or a kernel of your own. It replaces a kernel given
    /// before, [`netns`](Self::netns) included: the last of the two wins.
    pub fn kernel(mut self, factory: Arc<dyn KernelFactory>) -> PoolBuilder {
        self.kernel = Some(factory);
        self
    }

    /// Drive the real kernel inside the network namespace `netns` (every
    /// kernel worker and the link watcher enter it). A
    /// [`Netns::Path`](tap_pool::Netns::Path) is opened once, by
    /// [`start`](Self::start): the pool keeps the namespace it named then,
    /// even if the path is later unmounted or removed.
    ///
    /// This is [`kernel`](Self::kernel) with a `LinuxKernelFactory`: it
    /// replaces a kernel given before (the last of the two wins). With the
    /// helper kernel, the namespace is the helper policy's: give no
    /// `netns` then.
    #[cfg(target_os = "linux")]
    pub fn netns(self, netns: tap_pool::Netns) -> PoolBuilder {
        self.kernel(Arc::new(tap_pool::LinuxKernelFactory {
            netns: Some(netns),
        }))
    }

    /// How many kernel worker threads each lane gets, from 1 to
    /// [`MAX_WORKERS`] (else `start` refuses with
    /// [`StartError::WorkerCount`]): one lane for resets, one for creates
    /// and listings, one for deletes, so that no call queues behind another
    /// lane's. Default [`DEFAULT_WORKERS`].
    pub fn workers(mut self, workers: usize) -> PoolBuilder {
        self.workers = workers;
        self
    }

    /// Whether a thread watches the kernel's links, so that a tap deleted
    /// behind the pool's back is noticed at once (default: on). Without it,
    /// such a tap is noticed only when a kernel call on it fails.
    pub fn watch_links(mut self, watch: bool) -> PoolBuilder {
        self.watch = watch;
        self
    }

    /// How long the pool's last drain may block the thread that drops the
    /// actor when its System or arbiter stops without a [`Drain`](crate::Drain)
    /// (default [`SHUTDOWN_DEADLINE`], 30 s): past it, what is left is
    /// logged and left to the next run's `Seed`.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> PoolBuilder {
        self.shutdown_deadline = deadline;
        self
    }

    /// Whether starting first checks that the pool can make taps where it
    /// will make them, and refuses to start if not (default: off). Off, a
    /// pool without the right starts all the same, and each warm-up, retry
    /// and `Acquire` then fails with the kernel's typed error; that suits a
    /// pool given the right later, or one on a kernel of its own.
    ///
    /// On, [`start`](Self::start) and [`spawn`](Self::spawn) ask the kernel
    /// factory ([`KernelFactory::probe`]) on the starting thread, after the
    /// namespace is opened and before any thread starts, and fail with
    /// [`StartError::Probe`] if it says no. For the real kernel that is
    /// [`linux::probe_in`](tap_pool::linux::probe_in) the pool's namespace,
    /// on a thread started from the starting one, as the kernel workers
    /// will be (so with its capabilities; with no namespace configured, on
    /// the starting thread itself): `/dev/net/tun` opens there, and
    /// the kernel takes link changes from that thread there, which it does
    /// not from a process whose `CAP_NET_ADMIN` is only that of an
    /// unprivileged user namespace. It makes no device.
    ///
    /// ```no_run
    /// use tap_pool_actors::{PoolConfig, ProbeError, StartError, TapPoolActor};
    ///
    /// match TapPoolActor::builder(PoolConfig::default()).fail_fast(true).spawn() {
    ///     Ok(pool) => { /* ... */ }
    ///     Err(StartError::Probe(ProbeError::NoNetAdmin)) => {
    ///         eprintln!("run as root, or with CAP_NET_ADMIN");
    ///     }
    ///     Err(other) => eprintln!("cannot start the tap pool: {other}"),
    /// }
    /// ```
    pub fn fail_fast(mut self, fail_fast: bool) -> PoolBuilder {
        self.fail_fast = fail_fast;
        self
    }

    /// The value of the `pool` label on every metric of this pool (default:
    /// the pool's prefix), to tell pools apart where several in one process
    /// share a prefix (in different network namespaces). Only with the
    /// `metrics` feature; docs/operations.md lists the metrics.
    #[cfg(feature = "metrics")]
    pub fn metrics_label(mut self, label: &str) -> PoolBuilder {
        self.metrics = crate::metrics::Label(Some(label.to_owned()));
        self
    }

    /// Starts the pool actor on the current arbiter, its kernel workers, and
    /// (unless turned off) the link watcher. A network namespace given by
    /// path is opened here, once ([`KernelFactory::resolve`]); with
    /// [`fail_fast`](Self::fail_fast), the kernel is probed next.
    ///
    /// It never panics: outside a running actix `System` (in a plain tokio
    /// program, or before `System::new().block_on(..)` runs) it is
    /// [`StartError::NoSystem`]. A program without actix uses
    /// [`spawn`](Self::spawn), which runs the pool's System on a thread of
    /// its own.
    ///
    /// # Errors
    /// [`StartError`] says why nothing was started: a refused
    /// configuration, no actix `System` on this thread, a namespace path
    /// that does not open, a failed probe, or no thread for the watcher or
    /// a worker.
    pub fn start(self) -> Result<Addr<TapPoolActor>, StartError> {
        let pool = Pool::new(self.config)?;
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(StartError::WorkerCount {
                workers: self.workers,
            });
        }
        // A System made but not yet running (`System::new()` before its
        // `block_on`) has no runtime entered, and actix would panic.
        if System::try_current().is_none() || tokio::runtime::Handle::try_current().is_err() {
            return Err(StartError::NoSystem);
        }
        let factory: Arc<dyn KernelFactory> = match self.kernel {
            Some(factory) => factory,
            #[cfg(target_os = "linux")]
            None => Arc::new(tap_pool::LinuxKernelFactory::default()),
            #[cfg(not(target_os = "linux"))]
            None => Arc::new(tap_pool::sim::SimKernel::new()),
        };
        let factory = match factory.resolve() {
            Ok(Some(resolved)) => resolved,
            Ok(None) => factory,
            Err(KernelError::Namespace { netns, errno }) => {
                return Err(StartError::Namespace {
                    path: netns.into(),
                    errno,
                });
            }
            Err(error) => return Err(StartError::Kernel(error)),
        };
        if self.fail_fast {
            factory.probe().map_err(StartError::Probe)?;
        }
        let watcher = if self.watch {
            let (tx, rx) = std::sync::mpsc::channel::<WeakAddr<TapPoolActor>>();
            let factory = Arc::clone(&factory);
            let handle = thread::Builder::new()
                .name("tap-pool-watch".to_owned())
                .spawn(move || {
                    if let Ok(pool) = rx.recv() {
                        watch_links(factory, pool);
                    }
                })
                .map_err(StartError::Watcher)?;
            Some((tx, handle))
        } else {
            None
        };
        // Every metric is registered here, on the starting thread.
        let scope = crate::metrics::Scope::new(&self.metrics, pool.prefix());
        let kernel = crate::metrics::KernelMetrics::new(&scope);
        let workers = self.workers;
        let reset = Workers::start(&factory, workers, "tap-pool-reset", SPIN, &kernel)
            .map_err(StartError::Workers)?;
        let create = Workers::start(&factory, workers, "tap-pool-create", SPIN, &kernel)
            .map_err(StartError::Workers)?;
        let delete = Workers::start(
            &factory,
            workers,
            "tap-pool-delete",
            Duration::ZERO,
            &kernel,
        )
        .map_err(StartError::Workers)?;
        let deadline = self.shutdown_deadline;
        let addr = TapPoolActor::create(|ctx| {
            TapPoolActor::new(pool, [reset, create, delete], deadline, &scope, ctx)
        });
        if let Some((tx, _)) = watcher {
            let _ = tx.send(addr.downgrade());
        }
        Ok(addr)
    }
}

/// Forwards link changes to the pool until the pool is gone: no address to
/// it is left, or the actor itself is (it stopped, or its System or arbiter
/// did, while addresses to it live on). Runs on a thread of its own, which
/// opens its watcher there (for Linux: inside the pool's namespace), and
/// looks at least about once a second.
fn watch_links(factory: Arc<dyn KernelFactory>, pool: WeakAddr<TapPoolActor>) {
    // Hold the pool's address only to deliver an event: a strong address
    // held while blocked would keep the pool from ever stopping.
    // `upgrade` fails once the actor is gone, even while addresses to it
    // live on.
    let alive = || pool.upgrade().is_some();
    let send = |event| {
        if let Some(addr) = pool.upgrade() {
            addr.do_send(LinkChanged(event));
        }
    };
    let mut watcher = None;
    // The last reason no watcher opened: said at `warn` when it changes,
    // not once a second while it lasts (a helper that is down).
    let mut failing: Option<String> = None;
    while alive() {
        let w = match &mut watcher {
            Some(w) => w,
            None => match factory.watch() {
                Ok(w) => {
                    if failing.take().is_some() {
                        info!("watching the kernel's links again");
                    }
                    // Whatever happened before the watcher listened is
                    // caught by comparing with a fresh listing.
                    send(LinkEvent::Resync);
                    watcher.insert(w)
                }
                Err(error) => {
                    let why = error.to_string();
                    if failing.as_ref() == Some(&why) {
                        debug!(%error, "cannot watch the kernel's links; retrying");
                    } else {
                        warn!(%error, "cannot watch the kernel's links; retrying every second");
                        failing = Some(why);
                    }
                    thread::sleep(Duration::from_secs(1));
                    continue;
                }
            },
        };
        match w.next_event() {
            Ok(Some(event)) => send(event),
            Ok(None) => {}
            Err(error) => {
                warn!(%error, "link watcher failed; reopening and resyncing");
                watcher = None;
                send(LinkEvent::Resync);
            }
        }
    }
}
