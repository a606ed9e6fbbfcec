//! `Release`: back to idle while the pool has room, otherwise delete and refill.

use std::time::Duration;

use tap_pool::Kernel;
use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{Error, LeaseToken, PoolConfig, PoolError, Release, Released, Seed, TapSpec};
use tap_pool_testkit::{SimPool, name};

#[actix_rt::test]
async fn a_pool_tap_goes_back_to_idle_and_stays_in_the_kernel() {
    let p = SimPool::start(2);
    p.warm().await;
    let lease = p.acquire("vm-a").await.unwrap();
    assert_eq!(p.release_settled(&lease).await.unwrap(), Released::Pooled);
    assert!(p.sim.contains(lease.name));
    let s = p.stats().await;
    assert_eq!((s.idle, s.leased, s.deleted), (2, 0, 0));
    assert_eq!(p.sim.calls(SimOp::Delete), 0);
}

#[actix_rt::test]
async fn a_reused_tap_inherits_nothing_from_its_last_tenant() {
    let sim = SimKernel::new();
    sim.add_bridge(name("br0")).unwrap();
    sim.add_bridge(name("br-evil")).unwrap();
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 1;
        c.tap = {
            let mut t = TapSpec::default();
            t.bridge = Some(name("br0"));
            t.mtu = Some(1400);
            t.device_group = Some(7);
            t
        };
        c
    });
    p.warm().await;
    let lease = p.acquire("vm-a").await.unwrap();
    let pooled = p.sim.tap(lease.name).unwrap();
    let evil = p.sim.bridge_index(name("br-evil"));
    p.sim.tamper(lease.name, |l| {
        l.mtu = 9000;
        l.up = false;
        l.mac = [0x02, 0xba, 0xd0, 0, 0, 1];
        l.master = evil;
        l.device_group = 0;
    });
    p.sim.add_address(lease.name, "198.51.100.7/24");
    assert_eq!(p.release_settled(&lease).await.unwrap(), Released::Pooled);
    assert_eq!(p.sim.tap(lease.name).unwrap(), pooled);
    assert!(p.sim.addresses(lease.name).is_empty());
    assert_eq!(p.sim.bridge_ports(name("br-evil")), Some(0));
    // The next VM gets it.
    assert_eq!(p.acquire("vm-b").await.unwrap().name, lease.name);
}

#[actix_rt::test]
async fn a_tap_whose_reset_fails_is_deleted_instead_of_pooled() {
    let p = SimPool::start(1);
    p.warm().await;
    let lease = p.acquire("vm-a").await.unwrap();
    p.sim.inject(Fault::nth(SimOp::Reset, 1, libc::EIO));
    assert_eq!(p.release(&lease).await.unwrap(), Released::Pooled);
    let s = p.settle().await;
    assert_eq!((s.deleted, s.idle), (1, 1), "deleted and refilled");
    assert_eq!(s.failures, 1);
    assert!(!p.sim.contains(lease.name));
}

#[actix_rt::test]
async fn a_pool_tap_released_into_a_full_pool_is_deleted() {
    let p = SimPool::start(1);
    p.warm().await;
    let lease = p.acquire("vm-a").await.unwrap();
    p.warm().await; // refill the slot
    assert_eq!(p.release(&lease).await.unwrap(), Released::Deleted);
    assert!(!p.sim.contains(lease.name));
    // The refill the delete starts finds the pool full and creates nothing.
    let s = p.settle().await;
    assert_eq!((s.idle, s.deleted, s.created), (1, 1, 2));
    assert_eq!(p.kernel_taps().len(), 1);
}

#[actix_rt::test]
async fn a_fallback_tap_is_deleted_and_the_delete_starts_a_refill() {
    let p = SimPool::start(2);
    p.warm().await;
    let a = p.acquire("vm-a").await.unwrap();
    let b = p.acquire("vm-b").await.unwrap();
    let c = p.acquire("vm-c").await.unwrap();
    assert_eq!(c.name, name("vm-c"));
    assert_eq!(p.release(&c).await.unwrap(), Released::Deleted);
    assert!(!p.sim.contains(c.name));
    let s = p.settle().await;
    assert_eq!(s.idle, 2, "refilled");
    assert_eq!((s.creating, s.leased, s.created), (0, 2, 5));
    assert_eq!(p.kernel_taps().len(), 4);
    assert!(p.sim.contains(a.name) && p.sim.contains(b.name));
}

#[actix_rt::test]
async fn pool_size_zero_always_deletes() {
    let p = SimPool::start(0);
    let lease = p.acquire("vm-a").await.unwrap();
    assert_eq!(p.release(&lease).await.unwrap(), Released::Deleted);
    assert!(p.kernel_taps().is_empty());
    // The pool decided on any refill before it answered the release.
    let s = p.stats().await;
    assert_eq!((s.creating, s.created), (0, 1), "no refill with size 0");
    assert_eq!(p.sim.calls(SimOp::Create), 1);
}

#[actix_rt::test]
async fn a_double_release_is_refused_and_changes_nothing() {
    let p = SimPool::start(2);
    p.warm().await;
    let lease = p.acquire("vm-a").await.unwrap();
    p.release_settled(&lease).await.unwrap();
    let before = p.stats().await;
    let resets = p.sim.calls(SimOp::Reset);
    assert_eq!(
        p.release(&lease).await.unwrap_err(),
        Error::Pool(PoolError::LeaseEnded { token: lease.token })
    );
    assert_eq!(p.settle().await, before);
    assert_eq!(p.sim.calls(SimOp::Reset), resets, "no kernel call");
}

#[actix_rt::test]
async fn a_stale_release_never_takes_the_tap_from_its_next_holder() {
    // Size 1: A's tap goes to B; A's second release must not take it back
    // into the pool, where C would get it while B runs on it.
    let p = SimPool::start(1);
    p.warm().await;
    let a = p.acquire("vm-a").await.unwrap();
    p.release_settled(&a).await.unwrap();
    let b = p.acquire("vm-b").await.unwrap();
    assert_eq!(b.name, a.name, "the same tap, a new lease");
    assert_ne!(b.token, a.token);
    assert_eq!(
        p.release(&a).await.unwrap_err(),
        Error::Pool(PoolError::LeaseEnded { token: a.token })
    );
    let c = p.acquire("vm-c").await.unwrap();
    assert_ne!(c.name, b.name, "B still holds its tap");
    let s = p.settle().await;
    assert_eq!((s.leased, s.idle), (2, 0));
    // B's own release still works, once, from its stored form too.
    assert_eq!(
        p.release_token(LeaseToken::from_u128(b.token.to_u128()))
            .await
            .unwrap(),
        Released::Pooled
    );
    assert!(p.release(&b).await.is_err());
}

#[actix_rt::test]
async fn releasing_a_tap_while_it_is_being_deleted_is_refused() {
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Delete, Duration::from_millis(30));
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 0;
        c
    });
    let lease = p.acquire("vm-a").await.unwrap();
    let first = p.pool.send(Release::from(lease));
    let second = p.release(&lease).await;
    assert_eq!(
        second.unwrap_err(),
        Error::Pool(PoolError::LeaseEnded { token: lease.token })
    );
    assert_eq!(first.await.unwrap().unwrap(), Released::Deleted);
    // Once deleted and forgotten, a third release is refused the same way.
    assert_eq!(
        p.release(&lease).await.unwrap_err(),
        Error::Pool(PoolError::LeaseEnded { token: lease.token })
    );
    assert_eq!(p.sim.calls(SimOp::Delete), 1);
    let s = p.stats().await;
    assert_eq!((s.deleting, s.delete_failed, s.leased), (0, 0, 0));
}

#[actix_rt::test]
async fn a_made_up_token_is_refused_with_no_kernel_call() {
    let sim = SimKernel::new();
    sim.add_bridge(name("br0")).unwrap();
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 1;
        c
    });
    p.warm().await;
    let held = p.acquire("vm-a").await.unwrap();
    let before = p.stats().await;
    let calls =
        |p: &SimPool| [SimOp::Create, SimOp::Delete, SimOp::Reset].map(|op| p.sim.calls(op));
    let calls_before = calls(&p);
    // Neighbours of a live token, and tokens of another run.
    let live = held.token.to_u128();
    for made_up in [live + 1, live - 1, live ^ (1 << 100), 0, u128::MAX] {
        let token = LeaseToken::from_u128(made_up);
        let err = p.release_token(token).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Pool(PoolError::UnknownLease { .. } | PoolError::LeaseEnded { .. })
            ),
            "{err}"
        );
    }
    assert_eq!(p.stats().await, before);
    assert_eq!(calls(&p), calls_before, "no kernel call");
    assert!(p.sim.bridge_index(name("br0")).is_some());
    // The live lease is untouched by all that.
    assert_eq!(p.release(&held).await.unwrap(), Released::Pooled);
}

#[actix_rt::test]
async fn a_token_from_another_pool_is_unknown() {
    let one = SimPool::start(1);
    let two = SimPool::start(1);
    one.warm().await;
    two.warm().await;
    let lease = one.acquire("vm-a").await.unwrap();
    assert_eq!(
        two.release(&lease).await.unwrap_err(),
        Error::Pool(PoolError::UnknownLease { token: lease.token })
    );
    assert_eq!(two.stats().await.idle, 1);
}

#[actix_rt::test]
async fn a_burst_of_releases_resets_every_tap_and_a_failed_reset_spoils_only_its_own() {
    let sim = SimKernel::new();
    sim.add_bridge(name("br0")).unwrap();
    let size = 24;
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = size;
        c.tap = {
            let mut t = TapSpec::default();
            t.bridge = Some(name("br0"));
            t.mtu = Some(1400);
            t
        };
        c
    });
    p.warm().await;
    let mut leases = Vec::new();
    for i in 0..size {
        leases.push(p.acquire(&format!("vm-{i}")).await.unwrap());
    }
    let pooled = p.sim.tap(leases[0].name).unwrap();
    for tap in leases.iter().map(|l| l.name) {
        p.sim.tamper(tap, |l| l.mtu = 9000);
        p.sim.add_address(tap, "198.51.100.7/24");
    }
    // One reset in the middle of the burst fails.
    p.sim.inject(Fault::nth(SimOp::Reset, 7, libc::EIO));
    // Released all at once: the resets go to the kernel together.
    let releases: Vec<_> = leases
        .iter()
        .map(|lease| p.pool.send(Release::from(lease)))
        .collect();
    let mut back = Vec::new();
    let mut deleted_on_release = Vec::new();
    for (r, tap) in releases.into_iter().zip(leases.iter().map(|l| l.name)) {
        match r.await.unwrap().unwrap() {
            Released::Pooled => back.push(tap),
            // Once the failed reset's tap is deleted, the refill's create
            // counts against the size: a later release may find no room.
            Released::Deleted => deleted_on_release.push(tap),
            other => panic!("{tap}: {other:?}"),
        }
    }
    let s = p.settle().await;
    assert_eq!((s.resetting, s.deleting, s.creating), (0, 0, 0));
    assert_eq!(s.leased, 0);
    // A refill starts when the delete finds the pool low (it may, while most
    // taps are still out): then the pool is full again; if not, it is one
    // short, which is not low enough to refill.
    assert!(s.idle == size || s.idle == size - 1, "{s:?}");
    assert_eq!(s.deleted, 1 + deleted_on_release.len() as u64);
    assert_eq!(
        p.sim.calls(SimOp::Reset),
        back.len() as u64,
        "each tap back in the pool reset once"
    );
    assert!(deleted_on_release.iter().all(|&t| !p.sim.contains(t)));
    // Of the taps sent back, the one whose reset failed is gone; every other
    // one is as pooled.
    let gone: Vec<_> = back.iter().filter(|&&t| !p.sim.contains(t)).collect();
    assert_eq!(gone.len(), 1, "only the failed reset's tap is deleted");
    for &tap in back.iter().filter(|&&t| p.sim.contains(t)) {
        let now = p.sim.tap(tap).unwrap();
        assert_eq!(
            (now.mtu, now.master, now.up),
            (pooled.mtu, pooled.master, true)
        );
        assert!(p.sim.addresses(tap).is_empty(), "{tap} kept its address");
    }
}

/// With a slow kernel, a tap is back in service once its own reset is done,
/// not once every reset handed over with it is; and a long queue of resets
/// is shared by the kernel workers. (After a restart, `Seed` adopts the
/// earlier run's taps: all their resets are queued at once.)
#[actix_rt::test]
async fn a_tap_is_back_in_service_after_its_own_reset_not_its_whole_batch() {
    let size = 16;
    let mut sim = SimKernel::new();
    for i in 0..size {
        sim.create_tap(name(&format!("tap-pool-{i}")), &TapSpec::default())
            .unwrap();
    }
    sim.set_latency(SimOp::Reset, Duration::from_millis(100));
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = size;
        c.create_window = 2;
        c
    });
    let report = p.pool.send(Seed { used: vec![] }).await.unwrap().unwrap();
    assert_eq!(report.adopted.len(), size);
    p.stats_until("a first tap back in service", |s| s.idle >= 1)
        .await;
    let started = p.sim.calls(SimOp::Reset);
    assert!(
        started < size as u64 / 2,
        "{started} resets had started when the first tap came back"
    );
    assert_eq!(p.settle().await.idle, size, "every tap back");
    assert_eq!(p.sim.calls(SimOp::Reset), size as u64);
}
