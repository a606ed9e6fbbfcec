//! A pool from a plain tokio program ([`PoolHandle`]), on the simulated
//! kernel: no actix System in the test, every request from tokio tasks, and
//! what is left in the kernel after `shutdown` or the last drop.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tap_pool_actors::kernel_api::{
    CreatedTap, Device, Kernel, KernelFactory, LinkInfo, LinkWatcher,
};
use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{
    Acquire, Backoff, Error, KernelError, LeaseSource, PoolConfig, PoolHandle, Release, Released,
    Seed, StartError, Stats, TapName, TapPoolActor, TapSpec,
};

fn config(size: usize) -> PoolConfig {
    let mut c = PoolConfig::default();
    c.size = size;
    c
}

fn spawn(sim: &SimKernel, config: PoolConfig) -> PoolHandle {
    TapPoolActor::builder(config)
        .kernel(Arc::new(sim.clone()))
        .spawn()
        .expect("the pool starts")
}

fn names(sim: &SimKernel) -> BTreeSet<TapName> {
    sim.taps().into_iter().map(|t| t.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tokio_program_runs_the_whole_lifecycle() {
    let sim = SimKernel::new();
    let pool = spawn(&sim, config(4));
    let seeded = pool.seed(Seed::default()).await.unwrap();
    assert!(seeded.adopted.is_empty() && seeded.held.is_empty());
    assert_eq!(pool.warm().await.unwrap().created.len(), 4);
    assert_eq!(names(&sim).len(), 4);

    // Five VMs start at once, each on a task of its own: four pooled taps
    // and one created under its fallback name, no tap twice.
    let vms: Vec<_> = (0..5)
        .map(|i| {
            let pool = pool.clone();
            let vm = Acquire::new(&format!("vm-{i}")).unwrap();
            tokio::spawn(async move { pool.acquire(vm).await })
        })
        .collect();
    let mut guards = Vec::new();
    for vm in vms {
        guards.push(vm.await.unwrap().expect("a lease"));
    }
    let held: BTreeSet<TapName> = guards.iter().map(|g| g.name).collect();
    assert_eq!(held.len(), 5, "no tap handed out twice");
    assert_eq!(held, names(&sim), "each lease is a tap in the kernel");
    let created: Vec<_> = guards
        .iter()
        .filter(|g| g.source == LeaseSource::Created)
        .collect();
    assert_eq!(created.len(), 1);
    let fallback = created[0].name;

    // They stop, again from tasks of their own.
    let stops: Vec<_> = guards
        .into_iter()
        .map(|guard| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.release(Release::from(guard)).await })
        })
        .collect();
    let mut answers = Vec::new();
    for stop in stops {
        answers.push(stop.await.unwrap().expect("released"));
    }
    assert_eq!(
        answers.iter().filter(|a| **a == Released::Pooled).count(),
        4
    );
    assert_eq!(
        answers.iter().filter(|a| **a == Released::Deleted).count(),
        1
    );
    assert!(!sim.contains(fallback), "the fallback tap was deleted");

    let settled = pool.settle().await.unwrap();
    assert_eq!((settled.idle, settled.leased), (4, 0));
    let stats = pool.stats().await.unwrap();
    assert_eq!((stats.hits, stats.misses), (4, 1));

    let drained = pool.drain().await.unwrap();
    assert_eq!(drained.deleted, 4);
    assert!(sim.taps().is_empty());
    let report = pool.shutdown().await;
    assert_eq!(report.deleted, 0, "drained already");
}

#[tokio::test]
async fn starting_a_pool_directly_from_tokio_is_a_typed_error_not_a_panic() {
    let sim = SimKernel::new();
    let started = TapPoolActor::builder(config(2))
        .kernel(Arc::new(sim.clone()))
        .start();
    assert!(matches!(started, Err(StartError::NoSystem)), "{started:?}");
    // Nothing of it runs: the kernel was never asked for anything.
    assert_eq!(sim.calls(SimOp::Create) + sim.calls(SimOp::List), 0);
    // `spawn` is the way from here.
    let pool = spawn(&sim, config(2));
    assert_eq!(pool.warm().await.unwrap().created.len(), 2);
    pool.shutdown().await;
}

/// A lease guard goes back when dropped on a tokio task, and on a thread
/// with no runtime at all; the actor's address works from tokio too.
#[tokio::test]
async fn leases_and_the_address_work_outside_any_actix_system() {
    let sim = SimKernel::new();
    let pool = spawn(&sim, config(2));
    pool.warm().await.unwrap();

    let on_task = pool.acquire(Acquire::new("vm-a").unwrap()).await.unwrap();
    tokio::spawn(async move { drop(on_task) }).await.unwrap();
    let on_thread = pool.acquire(Acquire::new("vm-b").unwrap()).await.unwrap();
    std::thread::spawn(move || drop(on_thread)).join().unwrap();
    // Each drop sent its Release before this Settle was sent.
    let settled = pool.settle().await.unwrap();
    assert_eq!((settled.leased, settled.idle), (0, 2), "{settled:?}");

    // A guard released by hand, from tokio.
    let guard = pool.acquire(Acquire::new("vm-c").unwrap()).await.unwrap();
    assert_eq!(guard.release().await, Ok(Released::Pooled));

    let stats = pool.addr().send(Stats).await.expect("the actor answers");
    assert_eq!(stats.leased, 0);
    pool.shutdown().await;
    assert!(sim.taps().is_empty());
}

/// After one clone shuts the pool down, every request of another clone is
/// `Error::Stopped`, and dropping it neither panics nor blocks.
#[tokio::test]
async fn a_pool_that_was_shut_down_answers_stopped() {
    let sim = SimKernel::new();
    let pool = spawn(&sim, config(2));
    let other = pool.clone();
    let lease = pool
        .acquire(Acquire::new("vm-a").unwrap())
        .await
        .unwrap()
        .into_lease();
    pool.shutdown().await;
    // The leased tap is left to its holder; nothing else is.
    assert_eq!(names(&sim), BTreeSet::from([lease.name]));

    let fallback = Acquire::new("vm-b").unwrap();
    assert_eq!(other.acquire(fallback).await.unwrap_err(), Error::Stopped);
    assert_eq!(
        other.release(Release::from(lease)).await,
        Err(Error::Stopped)
    );
    assert_eq!(other.warm().await.unwrap_err(), Error::Stopped);
    assert_eq!(
        other.seed(Seed::default()).await.unwrap_err(),
        Error::Stopped
    );
    assert_eq!(other.settle().await, Err(Error::Stopped));
    assert_eq!(other.stats().await, Err(Error::Stopped));
    assert_eq!(other.drain().await, Err(Error::Stopped));
    assert!(other.addr().send(Stats).await.is_err());
    assert_eq!(other.clone().shutdown().await, Default::default());
    drop(other);
    assert!(!sim.contains(TapName::new("vm-b").unwrap()));
}

/// Dropping the last handle drains the pool before the drop returns: with
/// deletes that take a while, nothing of the pool is left in the kernel once
/// it has.
#[tokio::test]
async fn dropping_the_last_handle_leaves_no_tap_once_it_returns() {
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Delete, Duration::from_millis(20));
    let pool = spawn(&sim, config(4));
    pool.warm().await.unwrap();
    let guard = pool.acquire(Acquire::new("vm-a").unwrap()).await.unwrap();
    assert_eq!(guard.release().await, Ok(Released::Pooled));
    assert_eq!(pool.settle().await.unwrap().idle, 4);

    // A clone's drop stops nothing.
    let clone = pool.clone();
    drop(clone);
    assert_eq!(pool.stats().await.unwrap().idle, 4);
    assert_eq!(names(&sim).len(), 4);

    drop(pool);
    assert!(
        sim.taps().is_empty(),
        "left in the kernel: {:?}",
        names(&sim)
    );
}

/// `shutdown` waits for the pool's thread without blocking the runtime that
/// polls it. The pool's last drain (on its System's thread, once the System
/// has stopped) makes a delete that waits for a task on this one-thread
/// runtime: were `shutdown` to block the thread while it waits, that task
/// could not run before `shutdown` returned.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_waits_for_the_pools_thread_without_blocking_the_runtime() {
    let sim = SimKernel::new();
    // The release's delete fails, and so does the Drain's retry of it: only
    // the last drain's, the third delete, can take the tap.
    sim.inject(Fault::nth(SimOp::Delete, 1, libc::EIO));
    sim.inject(Fault::nth(SimOp::Delete, 2, libc::EIO));
    let gate = Gate::new(2);
    let mut c = config(0);
    let hour = Duration::from_secs(3600);
    c.delete_retry = Backoff {
        initial: hour,
        max: hour,
        max_attempts: u32::MAX,
    };
    let pool = TapPoolActor::builder(c)
        .kernel(Arc::new(GatedDeletes {
            sim: sim.clone(),
            gate: Arc::clone(&gate),
        }))
        .watch_links(false)
        .shutdown_deadline(Duration::from_secs(5))
        .spawn()
        .unwrap();
    let guard = pool.acquire(Acquire::new("vm-a").unwrap()).await.unwrap();
    assert!(matches!(
        guard.release().await,
        Ok(Released::DeleteFailed(KernelError::Delete { .. }))
    ));

    let returned = AtomicBool::new(false);
    let shutdown = async {
        let report = pool.shutdown().await;
        returned.store(true, Ordering::SeqCst);
        report
    };
    let (report, opened) = tokio::join!(shutdown, gate.open_while(&returned));
    assert_eq!(report.delete_failed, 1, "{report:?}");
    assert!(
        opened,
        "this runtime never ran while shutdown waited for the pool's last drain"
    );
    assert!(sim.taps().is_empty(), "left: {:?}", names(&sim));
}

/// Holds every delete after the first `after` until a task opens it.
struct Gate {
    after: u64,
    waiting: AtomicBool,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn new(after: u64) -> Arc<Gate> {
        Arc::new(Gate {
            after,
            waiting: AtomicBool::new(false),
            open: Mutex::new(false),
            opened: Condvar::new(),
        })
    }

    /// Called by a delete: waits for the gate (for at most 20 s, so that a
    /// failing test ends).
    fn pass(&self, sim: &SimKernel) {
        if sim.calls(SimOp::Delete) < self.after {
            return;
        }
        self.waiting.store(true, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let _ = self
            .opened
            .wait_timeout_while(open, Duration::from_secs(20), |open| !*open)
            .unwrap();
    }

    /// Opens the gate once a delete waits at it, unless `returned` is set
    /// first (or 20 s pass); whether it opened.
    async fn open_while(&self, returned: &AtomicBool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !returned.load(Ordering::SeqCst) {
            if self.waiting.load(Ordering::SeqCst) {
                *self.open.lock().unwrap() = true;
                self.opened.notify_all();
                return true;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    }
}

/// The simulated kernel, with its deletes held at a [`Gate`].
struct GatedDeletes {
    sim: SimKernel,
    gate: Arc<Gate>,
}

impl KernelFactory for GatedDeletes {
    fn open(&self) -> Result<Box<dyn Kernel>, KernelError> {
        Ok(Box::new(GatedDeletes {
            sim: self.sim.clone(),
            gate: Arc::clone(&self.gate),
        }))
    }

    fn watch(&self) -> Result<Box<dyn LinkWatcher>, KernelError> {
        self.sim.watch()
    }
}

impl Kernel for GatedDeletes {
    fn create_tap(&mut self, name: TapName, spec: &TapSpec) -> Result<CreatedTap, KernelError> {
        self.sim.create_tap(name, spec)
    }

    fn delete_link(&mut self, device: Device) -> Result<(), KernelError> {
        self.gate.pass(&self.sim);
        self.sim.delete_link(device)
    }

    fn list_taps(&mut self) -> Result<Vec<LinkInfo>, KernelError> {
        self.sim.list_taps()
    }

    fn reset_tap(
        &mut self,
        device: Device,
        spec: &TapSpec,
        mac: [u8; 6],
    ) -> Result<(), KernelError> {
        self.sim.reset_tap(device, spec, mac)
    }

    fn set_device_group(&mut self, device: Device, group: u32) -> Result<(), KernelError> {
        self.sim.set_device_group(device, group)
    }

    fn list_group(&mut self, group: u32) -> Result<Vec<TapName>, KernelError> {
        self.sim.list_group(group)
    }

    fn delete_group(&mut self, group: u32) -> Result<(), KernelError> {
        self.sim.delete_group(group)
    }
}
