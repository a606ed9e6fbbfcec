//! The kernel workers answer for every command, whatever the kernel does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tap_pool_actors::kernel_api::{Kernel, KernelFactory, LinkWatcher};
use tap_pool_actors::sim::SimKernel;
use tap_pool_actors::{KernelError, PoolConfig, PoolError, TapPoolActor, Warm};

/// The simulated kernel, whose first `open` panics.
struct PanicsOnOpen {
    sim: SimKernel,
    panics_left: AtomicUsize,
}

impl KernelFactory for PanicsOnOpen {
    fn open(&self) -> Result<Box<dyn Kernel>, KernelError> {
        if self
            .panics_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            panic!("injected panic while opening");
        }
        self.sim.open()
    }

    fn watch(&self) -> Result<Box<dyn LinkWatcher>, KernelError> {
        self.sim.watch()
    }
}

#[actix_rt::test]
async fn a_panic_while_a_worker_opens_its_handle_is_answered_and_the_worker_lives_on() {
    let sim = SimKernel::new();
    let factory = PanicsOnOpen {
        sim: sim.clone(),
        panics_left: AtomicUsize::new(1),
    };
    let mut config = PoolConfig::default();
    config.size = 2;
    config.create_window = 1;
    let pool = TapPoolActor::builder(config)
        .kernel(Arc::new(factory))
        .workers(1)
        .watch_links(false)
        .start()
        .unwrap();
    let report = pool.send(Warm).await.unwrap();
    assert!(matches!(
        report.failure.map(|f| f.error),
        Some(PoolError::Kernel(KernelError::Panicked { .. }))
    ));
    // The same worker carries the next warm-up.
    let report = pool.send(Warm).await.unwrap();
    assert_eq!(report.created.len(), 2);
    assert_eq!(sim.taps().len(), 2);
}

/// Two deletes that arrive one after the other run side by side on a lane
/// of two workers: the second does not wait for the first's kernel wait.
#[actix_rt::test]
async fn a_second_slow_call_does_not_wait_behind_the_first() {
    use std::time::Duration;
    use tap_pool_actors::sim::SimOp;
    use tap_pool_actors::{Acquire, Release};

    let sim = SimKernel::new();
    let mut config = PoolConfig::default();
    config.size = 0;
    let pool = TapPoolActor::builder(config)
        .kernel(Arc::new(sim.clone()))
        .workers(2)
        .watch_links(false)
        .start()
        .unwrap();
    let a = pool
        .send(Acquire::new("vm-a").unwrap())
        .await
        .unwrap()
        .unwrap();
    let b = pool
        .send(Acquire::new("vm-b").unwrap())
        .await
        .unwrap()
        .unwrap();
    sim.set_latency(SimOp::Delete, Duration::from_secs(2));
    let first = pool.send(Release::from(a));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sim.calls(SimOp::Delete) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "first delete never started"
        );
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    // The first delete is under way; the second arrives now.
    let second = pool.send(Release::from(b));
    while sim.calls(SimOp::Delete) < 2 {
        assert!(
            sim.returned(SimOp::Delete) == 0,
            "the second delete waited for the first to return"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "second delete never started"
        );
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        sim.returned(SimOp::Delete),
        0,
        "both were in flight together"
    );
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
}

/// A reset never waits behind creates or deletes: each lane has workers of
/// its own. (Before, resets shared a lane with creates: in a storm every
/// released tap sat resetting behind the creates.)
#[actix_rt::test]
async fn a_reset_never_waits_behind_creates_or_deletes() {
    use std::time::Duration;
    use tap_pool_actors::sim::SimOp;
    use tap_pool_actors::{Acquire, Release, Released};

    let sim = SimKernel::new();
    let mut config = PoolConfig::default();
    config.size = 2;
    let pool = TapPoolActor::builder(config)
        .kernel(Arc::new(sim.clone()))
        .workers(1)
        .watch_links(false)
        .start()
        .unwrap();
    pool.send(Warm).await.unwrap();
    let a = pool
        .send(Acquire::new("vm-a").unwrap())
        .await
        .unwrap()
        .unwrap();
    let b = pool
        .send(Acquire::new("vm-b").unwrap())
        .await
        .unwrap()
        .unwrap();
    let fallback = pool
        .send(Acquire::new("vm-c").unwrap())
        .await
        .unwrap()
        .unwrap();
    // A storm: the kernel's creates and deletes are slow, and queued.
    sim.set_latency(SimOp::Create, Duration::from_millis(300));
    sim.set_latency(SimOp::Delete, Duration::from_millis(300));
    for i in 0..4 {
        pool.do_send(Acquire::new(&format!("vm-storm-{i}")).unwrap());
    }
    pool.do_send(Release::from(fallback));
    while sim.calls(SimOp::Create) < 4 || sim.calls(SimOp::Delete) < 1 {
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    // Released now, the pool taps are reset at once.
    assert_eq!(
        pool.send(Release::from(a)).await.unwrap().unwrap(),
        Released::Pooled
    );
    assert_eq!(
        pool.send(Release::from(b)).await.unwrap().unwrap(),
        Released::Pooled
    );
    while sim.returned(SimOp::Reset) < 2 {
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        (sim.returned(SimOp::Create), sim.returned(SimOp::Delete)),
        (2 + 1, 0),
        "the resets returned while the first storm create and the delete were still under way"
    );
}
