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
