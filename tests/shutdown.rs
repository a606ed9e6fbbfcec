//! Shutting down without a `Drain`: stopping the actix System, or the
//! arbiter the pool runs on, tears the pool actor down without letting it
//! run again. The pool drains then, blocking, before it is gone: afterwards
//! the kernel holds exactly the taps that are leased, and none of the pool's
//! threads is left running.
//!
//! The tests here run one at a time (`serial`), so that the pool's threads
//! can be counted.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use actix::{Addr, Arbiter, System};
use tap_pool_actors::sim::{SimKernel, SimOp};
use tap_pool_actors::{Acquire, Drain, Error, PoolConfig, TapName, TapPoolActor, TapSpec, Warm};
use tap_pool_testkit::SimPool;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs this test while no other of this file runs.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The names of this process's threads that are the pool's (kernel
/// workers, link watcher).
fn pool_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let comm = task.expect("a task").path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm)
            && name.starts_with("tap-pool-")
        {
            names.push(name.trim().to_owned());
        }
    }
    names
}

/// Waits (up to five seconds: the link watcher looks about every 200 ms on
/// the simulated kernel) until none of the pool's threads is left.
fn assert_pool_threads_end() {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = pool_threads();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pool threads still run: {left:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn config(size: usize, device_group: Option<u32>) -> PoolConfig {
    let mut c = PoolConfig::default();
    c.size = size;
    c.tap = {
        let mut t = TapSpec::default();
        t.device_group = device_group;
        t
    };
    c
}

/// Warms a pool of 8 on `sim`, leases one tap, and returns the pool's
/// address (kept by the caller, so that only the stop can end the actor)
/// and the leased tap's name. Deletes take 5 ms from then on, so that a
/// drain takes a while.
async fn warm_and_lease(sim: &SimKernel, group: Option<u32>) -> (Addr<TapPoolActor>, TapName) {
    let p = SimPool::with(sim.clone(), config(8, group));
    let warmed = p.warm().await;
    assert_eq!(warmed.created.len(), 8, "{warmed:?}");
    let held = p.acquire("vm-held").await.expect("a pooled tap").name;
    assert_eq!(sim.taps().len(), 8);
    sim.set_latency(SimOp::Delete, Duration::from_millis(5));
    sim.set_latency(SimOp::DeleteGroup, Duration::from_millis(5));
    (p.pool, held)
}

/// Every kernel call made has returned.
fn assert_no_call_in_flight(sim: &SimKernel) {
    for op in ALL_OPS {
        assert_eq!(sim.returned(op), sim.calls(op), "{op:?} calls in flight");
    }
}

/// Every kernel call the simulated kernel counts.
const ALL_OPS: [SimOp; 6] = [
    SimOp::Create,
    SimOp::Delete,
    SimOp::List,
    SimOp::Reset,
    SimOp::SetGroup,
    SimOp::DeleteGroup,
];

fn kernel_taps(sim: &SimKernel) -> Vec<TapName> {
    sim.taps().into_iter().map(|t| t.name).collect()
}

/// Runs `body` on an actix System of its own thread, stops the System from
/// inside (`System::current().stop()`) and runs it until it stops; returns
/// what `body` returned once the thread has returned.
fn on_a_stopped_system<T: Send + 'static, F: Future<Output = T> + 'static>(
    body: impl FnOnce() -> F + Send + 'static,
) -> T {
    thread::spawn(move || {
        let system = System::new();
        let out = system.block_on(async move {
            let out = body().await;
            System::current().stop();
            out
        });
        system.run().expect("the system stops cleanly");
        out
    })
    .join()
    .expect("the system thread returns")
}

/// `System::current().stop()` with the pool's address still held: when the
/// System's thread returns, only the leased tap is left, and no thread of
/// the pool runs.
fn system_stop_leaves_only_the_leased_tap(group: Option<u32>) {
    let _serial = serial();
    let sim = SimKernel::new();
    let on_system = sim.clone();
    let (pool, held) =
        on_a_stopped_system(move || async move { warm_and_lease(&on_system, group).await });
    assert_no_call_in_flight(&sim);
    assert_eq!(kernel_taps(&sim), [held]);
    assert_eq!(sim.tap(held).expect("held").device_group, 0, "ungrouped");
    // While an address to the pool lives on.
    assert_pool_threads_end();
    drop(pool);
}

#[test]
fn stopping_the_system_leaves_only_leased_taps() {
    system_stop_leaves_only_the_leased_tap(None);
}

#[test]
fn stopping_the_system_leaves_only_leased_taps_with_a_device_group() {
    system_stop_leaves_only_the_leased_tap(Some(4242));
}

#[test]
fn stopping_the_system_waits_for_creates_in_flight() {
    let _serial = serial();
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Create, Duration::from_millis(30));
    let on_system = sim.clone();
    let pool = on_a_stopped_system(move || async move {
        let p = SimPool::with(on_system, config(8, Some(4242)));
        // Creates in flight, none done, when the System stops.
        p.pool.do_send(Warm);
        actix_rt::time::sleep(Duration::from_millis(5)).await;
        p.pool
    });
    assert!(sim.calls(SimOp::Create) > 0, "creates were in flight");
    // Every create came back before the System's thread returned.
    assert_no_call_in_flight(&sim);
    assert!(
        kernel_taps(&sim).is_empty(),
        "every create landed and was deleted: {:?}",
        kernel_taps(&sim)
    );
    assert_pool_threads_end();
    drop(pool);
}

/// A tap created for an `Acquire` that is in flight when the System stops
/// is deleted: its caller is gone with the System.
#[test]
fn stopping_the_system_deletes_a_tap_created_for_an_acquire_in_flight() {
    let _serial = serial();
    let sim = SimKernel::new();
    let on_system = sim.clone();
    let (pool, held) = on_a_stopped_system(move || async move {
        let (pool, held) = warm_and_lease(&on_system, Some(4242)).await;
        // Empty the pool, then ask for one more: a fallback create, slow.
        for n in 0..7 {
            // Held (kept past the guard).
            pool.send(Acquire::new(&format!("vm-{n}")).unwrap())
                .await
                .unwrap()
                .unwrap()
                .into_lease();
        }
        on_system.set_latency(SimOp::Create, Duration::from_millis(50));
        let created_before = on_system.calls(SimOp::Create);
        pool.do_send(Acquire::new("vm-late").unwrap());
        while on_system.calls(SimOp::Create) == created_before {
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        }
        (pool, held)
    });
    assert_no_call_in_flight(&sim);
    assert!(!sim.contains(tap_pool_testkit::name("vm-late")), "deleted");
    assert_eq!(kernel_taps(&sim).len(), 8, "the eight leased taps");
    assert!(kernel_taps(&sim).contains(&held));
    assert_pool_threads_end();
    drop(pool);
}

/// A pool that has answered a `Drain` has nothing left to do when its
/// System stops: no kernel call is made.
#[test]
fn stopping_the_system_after_a_drain_makes_no_kernel_call() {
    let _serial = serial();
    let sim = SimKernel::new();
    let on_system = sim.clone();
    let (pool, held, calls) = on_a_stopped_system(move || async move {
        let (pool, held) = warm_and_lease(&on_system, Some(4242)).await;
        let report = pool.send(Drain).await.unwrap();
        assert_eq!((report.deleted, report.bulk, report.leased), (7, true, 1));
        let calls: Vec<u64> = ALL_OPS.iter().map(|&op| on_system.calls(op)).collect();
        (pool, held, calls)
    });
    let after: Vec<u64> = ALL_OPS.iter().map(|&op| sim.calls(op)).collect();
    assert_eq!(calls, after, "no kernel call after the Drain");
    assert_eq!(kernel_taps(&sim), [held]);
    assert_pool_threads_end();
    drop(pool);
}

/// A kernel that hangs cannot hold the thread that stops the System for
/// longer than the shutdown deadline; what is left stays in the kernel.
#[test]
fn a_hung_kernel_holds_the_stop_no_longer_than_the_shutdown_deadline() {
    let _serial = serial();
    let sim = SimKernel::new();
    let on_system = sim.clone();
    let (pool, stopped_at) = on_a_stopped_system(move || async move {
        let pool = TapPoolActor::builder(config(4, Some(4242)))
            .kernel(Arc::new(on_system.clone()))
            .shutdown_deadline(Duration::from_millis(300))
            .start()
            .unwrap();
        assert_eq!(pool.send(Warm).await.unwrap().created.len(), 4);
        on_system.set_latency(SimOp::DeleteGroup, Duration::from_secs(2));
        (pool, Instant::now())
    });
    let took = stopped_at.elapsed();
    assert!(took >= Duration::from_millis(300), "it waited: {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "but not for the kernel: {took:?}"
    );
    assert_eq!(
        sim.calls(SimOp::DeleteGroup),
        1,
        "the group delete was under way"
    );
    assert_eq!(sim.returned(SimOp::DeleteGroup), 0, "and had not returned");
    // The hung call ends; then the worker ends too.
    assert_pool_threads_end();
    drop(pool);
}

/// The pool on an arbiter of its own, which is stopped: once the arbiter's
/// thread is joined, only the leased tap is left.
fn arbiter_stop_leaves_only_the_leased_tap(group: Option<u32>) {
    let _serial = serial();
    let sim = SimKernel::new();
    let system = System::new();
    let (pool, held) = system.block_on(async {
        let arbiter = Arbiter::new();
        let (tx, rx) = mpsc::channel();
        let on_arbiter = sim.clone();
        assert!(arbiter.spawn(async move {
            let (pool, held) = warm_and_lease(&on_arbiter, group).await;
            tx.send((pool, held)).expect("the test waits");
        }));
        let (pool, held) = actix_rt::task::spawn_blocking(move || rx.recv())
            .await
            .expect("the waiting thread")
            .expect("the pool warmed on its arbiter");
        assert!(arbiter.stop());
        actix_rt::task::spawn_blocking(move || arbiter.join())
            .await
            .expect("the joining thread")
            .expect("the arbiter's thread returns");
        (pool, held)
    });
    assert_no_call_in_flight(&sim);
    assert_eq!(kernel_taps(&sim), [held]);
    assert_pool_threads_end();
    drop(pool);
}

#[test]
fn stopping_the_arbiter_leaves_only_leased_taps() {
    arbiter_stop_leaves_only_the_leased_tap(None);
}

#[test]
fn stopping_the_arbiter_leaves_only_leased_taps_with_a_device_group() {
    arbiter_stop_leaves_only_the_leased_tap(Some(4242));
}

/// A caller on another thread whose `Acquire` is in flight when the pool's
/// arbiter stops hears that the pool stopped, and the tap created for it
/// is deleted.
#[test]
fn stopping_the_arbiter_answers_an_acquire_in_flight_and_deletes_its_tap() {
    let _serial = serial();
    let sim = SimKernel::new();
    let system = System::new();
    let (pool, held, answer) = system.block_on(async {
        let arbiter = Arbiter::new();
        let (tx, rx) = mpsc::channel();
        let on_arbiter = sim.clone();
        assert!(arbiter.spawn(async move {
            let p = SimPool::with(on_arbiter, config(1, Some(4242)));
            p.warm().await;
            let held = p.acquire("vm-held").await.unwrap().name;
            tx.send((p.pool, held)).expect("the test waits");
        }));
        let (pool, held) = actix_rt::task::spawn_blocking(move || rx.recv())
            .await
            .expect("the waiting thread")
            .expect("the pool warmed on its arbiter");
        sim.set_latency(SimOp::Create, Duration::from_millis(50));
        let created_before = sim.calls(SimOp::Create);
        let acquiring = pool.send(Acquire::new("vm-late").unwrap());
        let acquiring = actix_rt::spawn(acquiring);
        while sim.calls(SimOp::Create) == created_before {
            actix_rt::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(arbiter.stop());
        actix_rt::task::spawn_blocking(move || arbiter.join())
            .await
            .expect("the joining thread")
            .expect("the arbiter's thread returns");
        let answer = acquiring.await.expect("the caller's task");
        (pool, held, answer)
    });
    assert!(
        matches!(answer, Err(_) | Ok(Err(Error::Stopped))),
        "no lease: {answer:?}"
    );
    assert_no_call_in_flight(&sim);
    assert_eq!(kernel_taps(&sim), [held]);
    assert_pool_threads_end();
    drop(pool);
}

/// Acquires still in the pool actor's mailbox when the System's runtime is
/// dropped (as when `main` of `#[actix::main]` returns right after sending
/// them) leave nothing behind: no tap is handed out to a caller that is
/// gone, and nothing they started is left.
#[test]
fn acquires_in_the_mailbox_when_the_system_ends_leave_nothing_behind() {
    let _serial = serial();
    let sim = SimKernel::new();
    let on_system = sim.clone();
    let pool = thread::spawn(move || {
        let system = System::new();
        let pool = system.block_on(async move {
            let p = SimPool::with(on_system, config(8, Some(4242)));
            assert_eq!(p.warm().await.created.len(), 8);
            // Queued in the mailbox; the actor does not run again before
            // the runtime is dropped.
            for n in 0..3 {
                p.pool
                    .do_send(Acquire::new(&format!("vm-{n}")).expect("a valid name"));
            }
            p.pool
        });
        drop(system);
        pool
    })
    .join()
    .expect("the system thread returns");
    assert_no_call_in_flight(&sim);
    assert!(kernel_taps(&sim).is_empty(), "{:?}", kernel_taps(&sim));
    assert_pool_threads_end();
    drop(pool);
}
