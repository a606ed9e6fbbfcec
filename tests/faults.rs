//! Kernel failures leave the bookkeeping consistent: no tap lost, none handed
//! out twice, and a kernel worker survives a panic.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tap_pool::{CreatedTap, Device, Kernel, KernelFactory, LinkInfo, LinkWatcher};
use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{
    Acquire, Backoff, Error, KernelError, PoolConfig, PoolError, Release, Released, TapName,
    TapSpec, Warm,
};
use tap_pool_testkit::{SimPool, name};

#[actix_rt::test]
async fn a_failed_delete_keeps_the_tap_known() {
    let p = SimPool::start(0);
    let lease = p.acquire("vm-a").await.unwrap();
    p.sim.inject(Fault::nth(SimOp::Delete, 1, libc::EIO));
    let released = p.release(&lease).await;
    assert!(matches!(
        released,
        Ok(Released::DeleteFailed(KernelError::Delete { name: n, .. })) if n == lease.name
    ));
    assert!(p.sim.contains(lease.name), "the device is still there");
    let s = p.stats().await;
    assert_eq!((s.delete_failed, s.leased, s.failures), (1, 0, 1));
    // Neither handed out again nor released twice.
    assert_eq!(
        p.release(&lease).await.unwrap_err(),
        Error::Pool(PoolError::LeaseEnded { token: lease.token })
    );
    assert!(matches!(
        p.acquire("vm-a").await.unwrap_err(),
        Error::Pool(PoolError::NameInUse { .. })
    ));
}

/// Random create and delete failures under concurrent churn: at the end the
/// kernel holds exactly the taps the pool knows to exist.
#[actix_rt::test]
async fn random_failures_under_churn_lose_and_duplicate_nothing() {
    let sim = SimKernel::with_seed(42);
    sim.inject(Fault::rate(SimOp::Create, 0.2, libc::ENOMEM));
    sim.inject(Fault::rate(SimOp::Delete, 0.1, libc::EIO));
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 4;
        c.delete_retry = Backoff {
            initial: Duration::from_millis(2),
            max: Duration::from_millis(20),
            max_attempts: u32::MAX,
        };
        c
    });
    let held: Arc<Mutex<HashSet<TapName>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..16 {
        let pool = p.pool.clone();
        let held = Arc::clone(&held);
        clients.push(actix_rt::spawn(async move {
            let mut failed_deletes = Vec::new();
            for i in 0..100 {
                if i % 10 == 0 {
                    pool.send(Warm).await.unwrap();
                }
                let Ok(lease) = pool
                    .send(Acquire::new(&format!("vm-{c}-{i}")).unwrap())
                    .await
                    .unwrap()
                else {
                    continue;
                };
                assert!(held.lock().unwrap().insert(lease.name), "held twice");
                held.lock().unwrap().remove(&lease.name);
                match pool.send(Release::from(lease)).await.unwrap() {
                    Ok(Released::Pooled | Released::Deleted) => {}
                    Ok(Released::DeleteFailed(KernelError::Delete { name, .. })) => {
                        failed_deletes.push(name)
                    }
                    Ok(other) => panic!("nothing deletes taps behind the pool here: {other:?}"),
                    Err(e) => panic!("unexpected release error: {e}"),
                }
            }
            failed_deletes
        }));
    }
    let mut failed_deletes = BTreeSet::new();
    for c in clients {
        failed_deletes.extend(c.await.unwrap());
    }
    assert!(
        !failed_deletes.is_empty(),
        "delete faults should have fired"
    );
    // The faults stop; every failed delete is retried until it succeeds.
    p.sim.clear_faults();
    let s = p
        .stats_until("quiet", |s| {
            s.creating == 0 && s.deleting == 0 && s.resetting == 0 && s.delete_failed == 0
        })
        .await;
    assert!(s.failures > 0, "faults should have fired");
    assert_eq!(s.leased, 0);
    // The kernel holds exactly the idle pool; every failed delete finished.
    let kernel = p.kernel_taps();
    assert_eq!(kernel.len(), s.idle);
    assert!(failed_deletes.iter().all(|n| !kernel.contains(n)));
    assert!(s.idle <= 4);
}

/// A kernel that panics on its first create.
struct Flaky {
    inner: SimKernel,
    panics_left: Arc<AtomicUsize>,
}

impl Kernel for Flaky {
    fn create_tap(&mut self, name: TapName, spec: &TapSpec) -> Result<CreatedTap, KernelError> {
        if self
            .panics_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("injected panic while creating {name}");
        }
        self.inner.create_tap(name, spec)
    }
    fn delete_link(&mut self, device: Device) -> Result<(), KernelError> {
        self.inner.delete_link(device)
    }
    fn list_taps(&mut self) -> Result<Vec<LinkInfo>, KernelError> {
        self.inner.list_taps()
    }
    fn reset_tap(
        &mut self,
        device: Device,
        spec: &TapSpec,
        mac: [u8; 6],
    ) -> Result<(), KernelError> {
        self.inner.reset_tap(device, spec, mac)
    }
    fn set_device_group(&mut self, device: Device, group: u32) -> Result<(), KernelError> {
        self.inner.set_device_group(device, group)
    }
    fn delete_group(&mut self, group: u32) -> Result<(), KernelError> {
        self.inner.delete_group(group)
    }
    fn list_group(&mut self, group: u32) -> Result<Vec<TapName>, KernelError> {
        self.inner.list_group(group)
    }
}

struct FlakyFactory {
    sim: SimKernel,
    opens: Arc<AtomicUsize>,
    panics_left: Arc<AtomicUsize>,
    refuse_opens: Arc<AtomicUsize>,
}

impl KernelFactory for FlakyFactory {
    fn open(&self) -> Result<Box<dyn Kernel>, KernelError> {
        if self
            .refuse_opens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(KernelError::Socket {
                errno: tap_pool_actors::Errno(libc::EMFILE),
            });
        }
        self.opens.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Flaky {
            inner: self.sim.clone(),
            panics_left: Arc::clone(&self.panics_left),
        }))
    }
    fn watch(&self) -> Result<Box<dyn LinkWatcher>, KernelError> {
        self.sim.watch()
    }
}

#[actix_rt::test]
async fn a_kernel_worker_survives_a_panic_and_a_failed_open() {
    let sim = SimKernel::new();
    let opens = Arc::new(AtomicUsize::new(0));
    let factory = FlakyFactory {
        sim: sim.clone(),
        opens: Arc::clone(&opens),
        panics_left: Arc::new(AtomicUsize::new(1)),
        refuse_opens: Arc::new(AtomicUsize::new(1)),
    };
    // One worker, so every call goes through the same thread.
    let pool = tap_pool_testkit::pool::spawn(
        {
            let mut c = PoolConfig::default();
            c.size = 0;
            c.create_window = 1;
            c
        },
        Arc::new(factory),
        1,
    );
    let acquire = |n: &str| pool.send(Acquire::new(n).unwrap());

    // The worker cannot open its handle: the error reaches the caller.
    assert!(matches!(
        acquire("vm-a").await.unwrap(),
        Err(Error::Pool(PoolError::Kernel(KernelError::Socket { .. })))
    ));
    // It opens one on the next call, which panics inside the kernel.
    let err = acquire("vm-a").await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::Pool(PoolError::Kernel(KernelError::Panicked { op, message }))
            if op == "create" && message.contains("injected panic")),
        "{err}"
    );
    assert!(!sim.contains(name("vm-a")));
    // The same worker answers the next call with a fresh handle.
    let lease = acquire("vm-a").await.unwrap().unwrap();
    assert_eq!(lease.name, name("vm-a"));
    assert!(sim.contains(name("vm-a")));
    assert_eq!(opens.load(Ordering::SeqCst), 2, "reopened after the panic");
    let s = pool.send(tap_pool_actors::Stats).await.unwrap();
    assert_eq!((s.leased, s.creating, s.failures), (1, 0, 2));
}
