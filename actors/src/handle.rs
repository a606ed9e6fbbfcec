//! [`PoolHandle`]: a pool for programs that do not run actix.

use std::fmt;
use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle, ThreadId};

use actix::dev::ToEnvelope;
use actix::{Addr, Handler, Message, System};
use tap_pool::{DrainReport, PoolStats, SeedReport, WarmReport};
use tokio::sync::watch;
use tracing::warn;

use crate::builder::{PoolBuilder, StartError};
use crate::messages::{Acquire, Drain, Release, Released, Seed, Settle, Stats, Warm};
use crate::{Error, LeaseGuard, TapPoolActor};

/// A running pool, for a program that does not run actix (a plain tokio
/// program, or none at all): the pool's actix `System` runs on a thread of
/// its own, `tap-pool-system`, and the handle sends it messages from any
/// thread. Start one with [`PoolBuilder::spawn`].
///
/// It is `Clone + Send + Sync`, and so are the futures of its methods, so
/// they can go to `tokio::spawn`. Each method answers as its message does
/// ([`Acquire`], [`Release`], [`Warm`], [`Seed`], [`Settle`], [`Stats`],
/// [`Drain`]), with [`Error::Stopped`] when the pool is gone before it took
/// the request; none panics. The [`LeaseGuard`] that
/// [`acquire`](Self::acquire) returns releases its lease when dropped, on
/// any thread, inside a runtime or not.
///
/// # Shutting down
///
/// [`shutdown`](Self::shutdown) drains the pool, stops its System and
/// waits, without blocking the runtime, for the System's thread to end:
/// once it returns, only leased taps are left in the kernel.
///
/// Dropping the last handle (clones share one pool) without `shutdown`
/// stops the System too, and the pool then drains as it does whenever its
/// System stops ([`Drain`] has the details): every idle tap, and any tap
/// still being made or reset, is deleted; leased taps are left to their
/// holders. That drop **blocks the dropping thread** until the drain is
/// done and the thread has ended: at most the shutdown deadline
/// ([`PoolBuilder::shutdown_deadline`], 30 s by default), usually a
/// few ms. It blocks rather than leaving the drain to run on behind the
/// program's back because a program that drops its pool and then returns
/// from `main` would exit while the drain runs, and every tap left would
/// stay in the kernel until the next run's [`Seed`]. In async code prefer
/// `shutdown().await`, which waits without blocking a runtime thread.
///
/// ```
/// use std::sync::Arc;
/// use tap_pool_actors::sim::SimKernel;
/// use tap_pool_actors::{Acquire, PoolConfig, Release, Seed, TapPoolActor};
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let mut config = PoolConfig::default();
///     config.size = 4;
///     let sim = SimKernel::new();
///     let pool = TapPoolActor::builder(config)
///         .kernel(Arc::new(sim.clone())) // the default is the real kernel
///         .spawn()?;
///
///     pool.seed(Seed::default()).await?;
///     assert_eq!(pool.warm().await?.created.len(), 4);
///
///     // From any task: the handle is Clone + Send + Sync.
///     let vm = tokio::spawn({
///         let pool = pool.clone();
///         async move {
///             let tap = pool.acquire(Acquire::new("vm-7")?).await?;
///             println!("VM 7 runs on {}", tap.name);
///             // ... and when it stops (or just drop the guard):
///             pool.release(Release::from(tap)).await?;
///             Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
///         }
///     });
///     vm.await?.map_err(|e| e.to_string())?;
///     assert_eq!(pool.settle().await?.idle, 4);
///
///     // Drains, stops the pool's System and waits for its thread.
///     let drained = pool.shutdown().await;
///     assert_eq!(drained.deleted, 4);
///     assert!(sim.taps().is_empty());
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct PoolHandle {
    inner: Arc<Inner>,
}

/// What the clones of a handle share; dropping it stops the pool.
struct Inner {
    addr: Addr<TapPoolActor>,
    system: System,
    /// The System's thread, until [`PoolHandle::shutdown`] or the last
    /// drop joins it.
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
    /// Turns `true` at the very end of the System's thread, after the pool
    /// has drained.
    ended: watch::Receiver<bool>,
}

// What the type promises, checked when this crate compiles.
const _: () = {
    const fn handle_is_shareable<T: Clone + Send + Sync + 'static>() {}
    handle_is_shareable::<PoolHandle>();
};

/// Every method's future is `Send`: checked when this crate compiles.
#[allow(dead_code)]
fn futures_are_send(pool: &PoolHandle, acquire: Acquire, release: Release, seed: Seed) {
    fn send<T: Send>(_: &T) {}
    send(&pool.acquire(acquire));
    send(&pool.release(release));
    send(&pool.warm());
    send(&pool.seed(seed));
    send(&pool.settle());
    send(&pool.stats());
    send(&pool.drain());
    send(&pool.clone().shutdown());
}

impl PoolBuilder {
    /// Starts the pool on an actix `System` of its own, on a new thread
    /// named `tap-pool-system`, and returns a handle to it: the way to run a
    /// pool from a program that does not run actix (a plain tokio program,
    /// or one with no runtime). It works from inside an actix System too.
    ///
    /// Blocks the calling thread until the pool has started there (a few
    /// ms; with [`fail_fast`](Self::fail_fast), the probe too), and reports
    /// what [`start`](Self::start) reports; after an error the thread has
    /// ended and nothing runs.
    ///
    /// # Errors
    /// What [`start`](Self::start) says, or [`StartError::SystemThread`]
    /// when the System's thread cannot be started.
    pub fn spawn(self) -> Result<PoolHandle, StartError> {
        let (started_tx, started) = mpsc::sync_channel(1);
        let (ended_tx, ended) = watch::channel(false);
        let thread = thread::Builder::new()
            .name("tap-pool-system".to_owned())
            .spawn(move || run_system(self, started_tx, ended_tx))
            .map_err(StartError::SystemThread)?;
        match started.recv() {
            Ok(Ok((addr, system))) => Ok(PoolHandle {
                inner: Arc::new(Inner {
                    addr,
                    system,
                    thread_id: thread.thread().id(),
                    thread: Mutex::new(Some(thread)),
                    ended,
                }),
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(mpsc::RecvError) => {
                let _ = thread.join();
                Err(StartError::SystemThread(io::Error::other(
                    "the pool's System thread ended before the pool started",
                )))
            }
        }
    }
}

type Started = Result<(Addr<TapPoolActor>, System), StartError>;

/// The System's thread: starts the pool, reports, and runs until the System
/// is stopped. `SystemRunner::run` drops the runtime before it returns, and
/// with it the pool actor, which drains then (`crate::shutdown`); only then
/// is `ended` set.
fn run_system(
    builder: PoolBuilder,
    started: mpsc::SyncSender<Started>,
    ended: watch::Sender<bool>,
) {
    let runner = System::new();
    let running = runner.block_on(async move {
        let result = builder.start().map(|addr| (addr, System::current()));
        let running = result.is_ok();
        let _ = started.send(result);
        running
    });
    if running && let Err(error) = runner.run() {
        warn!(%error, "the tap pool's System ended with an error");
    }
    ended.send_replace(true);
}

impl PoolHandle {
    /// Sends `msg` and waits for the answer; a pool that is gone is
    /// [`Error::Stopped`].
    async fn ask<M>(&self, msg: M) -> Result<M::Result, Error>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        TapPoolActor: Handler<M>,
        <TapPoolActor as actix::Actor>::Context: ToEnvelope<TapPoolActor, M>,
    {
        self.inner.addr.send(msg).await.map_err(|_| Error::Stopped)
    }

    /// Acquires a tap ([`Acquire`]): a lease that goes back when its guard
    /// is dropped.
    ///
    /// # Errors
    /// The pool's refusal ([`Error::Pool`]), or [`Error::Stopped`].
    pub async fn acquire(&self, acquire: Acquire) -> Result<LeaseGuard, Error> {
        self.ask(acquire).await?
    }

    /// Ends a lease ([`Release`]); `Release::from(guard)` for a guarded one.
    ///
    /// # Errors
    /// The pool's refusal ([`Error::Pool`]: a stale, duplicate or made-up
    /// token), or [`Error::Stopped`].
    pub async fn release(&self, release: Release) -> Result<Released, Error> {
        self.ask(release).await?
    }

    /// Fills the pool to its size ([`Warm`]).
    ///
    /// # Errors
    /// [`Error::Stopped`] when the pool is gone.
    pub async fn warm(&self) -> Result<WarmReport, Error> {
        self.ask(Warm).await
    }

    /// Reconciles with the kernel after a restart ([`Seed`]).
    ///
    /// # Errors
    /// The pool's refusal ([`Error::Pool`]: the kernel's listing failed),
    /// or [`Error::Stopped`].
    pub async fn seed(&self, seed: Seed) -> Result<SeedReport, Error> {
        self.ask(seed).await?
    }

    /// Waits until the pool's background work is done ([`Settle`]).
    ///
    /// # Errors
    /// [`Error::Stopped`] when the pool is gone.
    pub async fn settle(&self) -> Result<PoolStats, Error> {
        self.ask(Settle).await?
    }

    /// The pool's counts and counters ([`Stats`]).
    ///
    /// # Errors
    /// [`Error::Stopped`] when the pool is gone.
    pub async fn stats(&self) -> Result<PoolStats, Error> {
        self.ask(Stats).await
    }

    /// Deletes every idle tap and stops warming for good ([`Drain`]); the
    /// pool keeps answering (an `Acquire` then creates its fallback).
    ///
    /// # Errors
    /// [`Error::Stopped`] when the pool is gone.
    pub async fn drain(&self) -> Result<DrainReport, Error> {
        self.ask(Drain).await
    }

    /// Shuts the pool down for every clone of this handle: drains it
    /// ([`Drain`]), stops its System, and waits for the System's thread to
    /// end without blocking the runtime (a signal the thread sends at its
    /// very end), then joins it. Only leased taps are left in the kernel
    /// then. Other clones' requests are answered [`Error::Stopped`] from
    /// then on.
    ///
    /// The drain's report; an empty one if the pool had stopped already.
    pub async fn shutdown(self) -> DrainReport {
        let report = self.drain().await.unwrap_or_default();
        self.inner.system.stop();
        let mut ended = self.inner.ended.clone();
        // An error means the thread is gone without saying so (it
        // panicked): it has ended all the same.
        let _ = ended.wait_for(|ended| *ended).await;
        // Taken only once the thread has ended, so that a shutdown dropped
        // while it waits leaves the join to the last drop.
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // It has returned, or is returning.
            let _ = thread.join();
        }
        report
    }

    /// The pool actor's address, for what the handle has no method for
    /// (`do_send`, a `Recipient`). Messages can be sent to it from any
    /// thread, inside an actix System or a tokio runtime or neither; only
    /// `Request::timeout` needs a tokio runtime with its timer.
    pub fn addr(&self) -> &Addr<TapPoolActor> {
        &self.inner.addr
    }
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("connected", &self.inner.addr.connected())
            .field("ended", &*self.inner.ended.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    /// The last handle is gone: stops the System, which drains the pool on
    /// its thread, and joins that thread, blocking (see [`PoolHandle`]).
    fn drop(&mut self) {
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(thread) = thread else {
            // `shutdown` has joined it.
            return;
        };
        self.system.stop();
        // The System's own thread cannot wait for itself (nothing of the
        // pool's hands a handle to it, but a user's actor there could).
        if thread::current().id() != self.thread_id {
            let _ = thread.join();
        }
    }
}
