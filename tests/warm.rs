//! `Warm`: creates taps until the pool is full, never more, and stops at the
//! first failure.

use std::collections::BTreeSet;
use std::time::Duration;

use tap_pool::TunKind;
use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{KernelError, PoolConfig, PoolError, Warm};
use tap_pool_testkit::{SimPool, name};

#[actix_rt::test]
async fn warm_fills_the_pool_with_persistent_owned_taps() {
    let p = SimPool::start(5);
    let report = p.warm().await;
    assert!(report.failure.is_none());
    let created: BTreeSet<_> = report.created.iter().copied().collect();
    assert_eq!(created.len(), 5);
    assert_eq!(p.kernel_taps(), created);
    for tap in p.sim.taps() {
        assert!(tap.name.to_str().unwrap().starts_with("tap-pool-"));
        assert_eq!(tap.kind, TunKind::Tap);
        assert!(tap.persistent && tap.up && tap.owner.is_some());
    }
    let s = p.stats().await;
    assert_eq!((s.idle, s.creating, s.created, s.next_index), (5, 0, 5, 5));
    // Full: another warm creates nothing.
    assert!(p.warm().await.created.is_empty());
    assert_eq!(p.sim.calls(SimOp::Create), 5);
}

#[actix_rt::test]
async fn concurrent_warms_coalesce_and_never_overshoot() {
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Create, Duration::from_millis(5));
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 6;
        c.create_window = 2;
        c
    });
    // Each send is in the mailbox before any is awaited.
    let requests: Vec<_> = (0..4).map(|_| p.pool.send(Warm)).collect();
    let mut reports = Vec::new();
    for r in requests {
        reports.push(r.await.expect("pool actor alive"));
    }
    for r in &reports {
        assert_eq!(r, &reports[0], "every coalesced Warm gets the same report");
    }
    assert_eq!(reports[0].created.len(), 6);
    assert_eq!(p.sim.calls(SimOp::Create), 6);
    assert_eq!(p.kernel_taps().len(), 6);
}

#[actix_rt::test]
async fn warm_stops_at_first_failure_and_resumes_with_fresh_names() {
    let sim = SimKernel::new();
    sim.inject(Fault::nth(SimOp::Create, 3, libc::ENOMEM));
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 5;
        c.create_window = 1;
        c
    });
    let report = p.warm().await;
    assert_eq!(report.created, [name("tap-pool-0"), name("tap-pool-1")]);
    let failure = report.failure.expect("third create failed");
    assert_eq!(failure.name, Some(name("tap-pool-2")));
    assert!(matches!(
        failure.error,
        PoolError::Kernel(KernelError::Create { .. })
    ));
    assert_eq!(p.sim.calls(SimOp::Create), 3, "no create after the failure");
    let s = p.stats().await;
    assert_eq!((s.idle, s.creating, s.failures), (2, 0, 1));
    assert_eq!(p.kernel_taps().len(), 2);

    let again = p.warm().await;
    assert!(again.failure.is_none());
    assert_eq!(
        again.created,
        [name("tap-pool-3"), name("tap-pool-4"), name("tap-pool-5")]
    );
    assert_eq!(p.kernel_taps().len(), 5);
}

#[actix_rt::test]
async fn pool_size_zero_warms_nothing() {
    let p = SimPool::start(0);
    let report = p.warm().await;
    assert!(report.created.is_empty() && report.failure.is_none());
    assert_eq!(p.sim.calls(SimOp::Create), 0);
}

#[actix_rt::test]
async fn warm_with_a_missing_bridge_reports_a_typed_error_and_leaves_nothing() {
    let p = SimPool::with(SimKernel::new(), {
        let mut c = PoolConfig::default();
        c.size = 3;
        c.tap.bridge = Some(name("br-missing"));
        c
    });
    let report = p.warm().await;
    assert!(report.created.is_empty());
    assert!(matches!(
        report.failure.unwrap().error,
        PoolError::Kernel(KernelError::BridgeMissing { .. })
    ));
    assert!(p.kernel_taps().is_empty());
}

/// A long-lived pool never runs out of names: more than a million pool
/// creates (the default prefix leaves 1,000,000 names), with taps held
/// across the wrap, and it still warms, never creating a name that is held.
#[test]
fn a_pool_still_warms_after_more_than_a_million_creates() {
    use std::time::Instant;
    use tap_pool::{Answer, Event, Pool, run_blocking};

    const SIZE: usize = 1000;
    let mut config = PoolConfig::default();
    config.size = SIZE;
    config.create_window = SIZE;
    let mut pool = Pool::new(config).unwrap();
    let mut kernel = SimKernel::new();
    let now = Instant::now();
    // Held for the whole run: their names must never be created again.
    pool.warm(now);
    run_blocking(&mut pool, &mut kernel, now);
    let kept: Vec<_> = (0..10)
        .map(|i| match pool.acquire(name(&format!("vm-k{i}")), now) {
            Answer::Now(Ok(lease)) => lease,
            other => panic!("{other:?}"),
        })
        .collect();
    let mut creates = 0u64;
    let mut round = 0;
    while creates <= 1_000_000 {
        // Take the whole stock, refill it, give the old stock back: the
        // pool is full, so each one given back is deleted.
        let taken: Vec<_> = (0..pool.idle().len())
            .map(|i| match pool.acquire(name(&format!("vm-{i}")), now) {
                Answer::Now(Ok(lease)) => lease,
                other => panic!("{other:?}"),
            })
            .collect();
        pool.warm(now);
        for event in run_blocking(&mut pool, &mut kernel, now) {
            if let Event::Warmed { report, .. } = event {
                assert!(report.failure.is_none(), "round {round}: {report:?}");
                assert_eq!(report.created.len(), SIZE, "round {round}");
                for k in &kept {
                    assert!(
                        !report.created.contains(&k.name),
                        "{} created while held",
                        k.name
                    );
                }
                creates += report.created.len() as u64;
            }
        }
        for lease in taken {
            assert!(matches!(pool.release(lease.token, now), Answer::Later(_)));
        }
        run_blocking(&mut pool, &mut kernel, now);
        round += 1;
    }
    let s = pool.stats();
    assert_eq!((s.idle, s.leased), (SIZE, kept.len()));
    assert!(s.created > 1_000_000);
    assert_eq!(kernel.taps().len(), SIZE + kept.len());
}
