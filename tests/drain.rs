//! `Drain` and stopping: idle taps are deleted in bulk, leased ones are left
//! to their holders, and warming stops for good.

use std::time::Duration;

use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{Drain, PoolConfig, Released, Stats, TapSpec, Warm};
use tap_pool_testkit::SimPool;

fn grouped(size: usize) -> PoolConfig {
    {
        let mut c = PoolConfig::default();
        c.size = size;
        c.tap = {
            let mut t = TapSpec::default();
            t.device_group = Some(4242);
            t
        };
        c
    }
}

#[actix_rt::test]
async fn drain_deletes_idle_taps_with_one_group_delete_and_spares_leased_ones() {
    let p = SimPool::with(SimKernel::new(), grouped(8));
    p.warm().await;
    let held = p.acquire("vm-a").await.unwrap();
    let report = p.pool.send(Drain).await.unwrap();
    assert_eq!((report.deleted, report.bulk, report.leased), (7, true, 1));
    assert_eq!(p.sim.calls(SimOp::DeleteGroup), 1);
    assert_eq!(p.sim.calls(SimOp::Delete), 0, "no per-tap deletes");
    // The held tap is still there, moved out of the group.
    assert_eq!(p.kernel_taps().into_iter().collect::<Vec<_>>(), [held.name]);
    assert_eq!(p.sim.tap(held.name).unwrap().device_group, 0);
    // Warming has stopped; the held tap's release deletes it.
    assert!(p.warm().await.shut_down);
    assert_eq!(p.release(&held).await.unwrap(), Released::Deleted);
    assert!(p.kernel_taps().is_empty());
}

#[actix_rt::test]
async fn drain_waits_for_creates_in_flight() {
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Create, Duration::from_millis(20));
    let p = SimPool::with(sim, grouped(4));
    let warming = p.pool.send(Warm);
    let report = p.pool.send(Drain).await.unwrap();
    let warm = warming.await.unwrap();
    assert!(warm.shut_down);
    assert!(
        !warm.created.is_empty(),
        "creates were in flight when the drain began"
    );
    assert_eq!(report.deleted, warm.created.len());
    assert!(
        p.kernel_taps().is_empty(),
        "creates in flight were drained too"
    );
    let s = p.pool.send(Stats).await.unwrap();
    assert_eq!((s.idle, s.creating, s.deleting), (0, 0, 0));
}

#[actix_rt::test]
async fn without_a_group_drain_deletes_one_by_one() {
    let p = SimPool::start(3);
    p.warm().await;
    let report = p.pool.send(Drain).await.unwrap();
    assert_eq!((report.deleted, report.bulk), (3, false));
    assert_eq!(p.sim.calls(SimOp::Delete), 3);
    assert!(p.kernel_taps().is_empty());
}

#[actix_rt::test]
async fn a_failed_group_delete_falls_back_to_one_by_one() {
    let p = SimPool::with(SimKernel::new(), grouped(3));
    p.warm().await;
    p.sim.inject(Fault::nth(SimOp::DeleteGroup, 1, libc::EIO));
    let report = p.pool.send(Drain).await.unwrap();
    assert_eq!((report.deleted, report.bulk), (3, false));
    assert!(p.kernel_taps().is_empty());
}

#[test]
fn stopping_the_pool_drains_it_in_bulk_after_creates_in_flight() {
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Create, Duration::from_millis(20));
    let system = actix_rt::System::new();
    let (p, held) = system.block_on(async {
        let p = SimPool::with(sim.clone(), grouped(4));
        p.warm().await;
        let held = p.acquire("vm-held").await.unwrap().name;
        // A refill is in flight when the pool is stopped.
        p.pool.do_send(Warm);
        (p, held)
    });
    // Dropping every address stops the actor, which drains first.
    drop(p);
    system.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sim.taps().len() > 1 || sim.calls(SimOp::DeleteGroup) == 0 {
            assert!(std::time::Instant::now() < deadline, "not drained");
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let left: Vec<_> = sim.taps().into_iter().map(|t| t.name).collect();
    assert_eq!(left, [held]);
    assert_eq!(
        sim.calls(SimOp::Delete),
        0,
        "one group delete, no single ones"
    );
    assert_eq!(
        sim.tap(held).unwrap().device_group,
        0,
        "the held tap left the group"
    );
}

#[actix_rt::test]
async fn a_drain_counts_its_own_deletes_not_seeds() {
    for group in [true, false] {
        let sim = SimKernel::new();
        let config = if group {
            grouped(3)
        } else {
            let mut c = PoolConfig::default();
            c.size = 3;
            c
        };
        // Leftovers of an earlier run that Seed deletes: pool taps beyond
        // the size.
        let mut k = sim.clone();
        for i in 0..5 {
            tap_pool::Kernel::create_tap(
                &mut k,
                tap_pool_testkit::name(&format!("tap-pool-{i}")),
                &config.tap,
            )
            .unwrap();
        }
        let p = SimPool::with(sim, config);
        p.sim.set_latency(SimOp::Delete, Duration::from_millis(30));
        let seeded = p
            .pool
            .send(tap_pool_actors::Seed { used: vec![] })
            .await
            .unwrap()
            .unwrap();
        assert_eq!((seeded.adopted.len(), seeded.deleted.len()), (3, 2));
        // The drain starts while Seed's deletes are under way.
        let report = p.pool.send(Drain).await.unwrap();
        assert_eq!(report.deleted, 3, "group {group}: {report:?}");
        let s = p.settle().await;
        assert_eq!(s.deleted, 5, "group {group}: {s:?}");
        assert!(p.kernel_taps().is_empty());
    }
}
