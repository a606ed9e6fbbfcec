//! The pool actor never waits on the kernel, and concurrent clients never share
//! a tap.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tap_pool_actors::sim::{SimKernel, SimOp};
use tap_pool_actors::{Acquire, LeaseSource, PoolConfig, Release, Released};
use tap_pool_testkit::{SimPool, name};

#[actix_rt::test]
async fn a_slow_create_does_not_hold_up_requests_served_from_idle_taps() {
    // A release also queues a reset, on a lane of its own: each pair below
    // waits for its tap's reset (tens of µs), never for the slow create,
    // which holds the creates' lane.
    let p = SimPool::with(SimKernel::new(), {
        let mut c = PoolConfig::default();
        c.size = 1;
        c
    });
    p.warm().await;
    let held = p.acquire("vm-first").await.unwrap();
    p.sim.set_latency(SimOp::Create, Duration::from_millis(500));

    // The pool is empty: this Acquire waits 500 ms for its create.
    let slow_done = Arc::new(AtomicBool::new(false));
    let slow = {
        let done = Arc::clone(&slow_done);
        let request = p.pool.send(Acquire::new("vm-slow").unwrap());
        actix_rt::spawn(async move {
            let lease = request.await.unwrap().unwrap().into_lease();
            done.store(true, Ordering::SeqCst);
            lease
        })
    };
    p.release(&held).await.unwrap();

    for i in 0..1000 {
        let lease = p.acquire(&format!("vm-{i}")).await.unwrap();
        assert_eq!(lease.source, LeaseSource::Pool);
        assert_eq!(p.release(&lease).await.unwrap(), Released::Pooled);
        assert!(
            !slow_done.load(Ordering::SeqCst),
            "the slow create finished before pair {i}: the pool waited on the kernel"
        );
    }
    let lease = slow.await.unwrap();
    assert_eq!(
        (lease.name, lease.source),
        (name("vm-slow"), LeaseSource::Created)
    );
}

#[actix_rt::test]
async fn many_clients_never_share_a_tap_and_the_counts_add_up() {
    const CLIENTS: usize = 64;
    const CYCLES: usize = 200;
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Create, Duration::from_micros(200));
    sim.set_latency(SimOp::Delete, Duration::from_micros(200));
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 8;
        c.create_window = 2;
        c
    });
    p.warm().await;

    let held: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let pool = p.pool.clone();
        let held = Arc::clone(&held);
        clients.push(actix_rt::spawn(async move {
            for i in 0..CYCLES {
                let fallback = format!("vm-{c}-{i}");
                let lease = pool
                    .send(Acquire::new(&fallback).unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                assert!(
                    held.lock().unwrap().insert(lease.name.to_string()),
                    "{} handed to two clients at once",
                    lease.name
                );
                if i % 3 == 0 {
                    // Let other clients run while this one holds the tap.
                    actix_rt::task::yield_now().await;
                }
                held.lock().unwrap().remove(lease.name.to_str().unwrap());
                pool.send(Release::from(lease)).await.unwrap().unwrap();
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let s = p.settle().await;
    assert_eq!((s.creating, s.deleting, s.resetting), (0, 0, 0));
    assert_eq!(s.hits + s.misses, (CLIENTS * CYCLES) as u64);
    assert_eq!((s.leased, s.delete_failed, s.failures), (0, 0, 0));
    assert!(s.idle <= 8);
    // What the kernel holds is exactly the idle pool.
    assert_eq!(p.kernel_taps().len(), s.idle);
    assert_eq!(s.created - s.deleted, s.idle as u64);
    assert!(s.misses > 0, "the test should exercise fallback creates");
}
