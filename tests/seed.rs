//! `Seed`: after a restart, reconcile with what the kernel holds.

use tap_pool::Kernel;
use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{
    Error, KernelError, LeaseSource, PoolConfig, PoolError, Released, Seed, TapName, TapSpec,
    TapState,
};
use tap_pool_testkit::{SimPool, name, wait_until};

/// A kernel as an earlier run of the pool left it.
fn leftovers(names: &[&str], spec: TapSpec) -> SimKernel {
    let mut sim = SimKernel::new();
    for n in names {
        sim.create_tap(name(n), &spec).unwrap();
    }
    sim
}

async fn seed(p: &SimPool, used: &[&str]) -> Result<tap_pool_actors::SeedReport, Error> {
    let used: Vec<TapName> = used.iter().map(|n| name(n)).collect();
    p.pool.send(Seed { used }).await.unwrap()
}

#[actix_rt::test]
async fn seed_starts_the_index_above_every_pool_index_in_use_or_in_the_kernel() {
    let sim = leftovers(&["tap-pool-7", "tap-pool-3", "vm-x"], TapSpec::default());
    sim.set_in_use(name("tap-pool-7"), true);
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 2;
        c
    });
    let report = seed(&p, &["tap-pool-7", "vm-x", "tap-pool-0012"])
        .await
        .unwrap();
    assert_eq!(report.next_index, 8);
    assert_eq!(report.adopted, [name("tap-pool-3")]);
    assert_eq!(report.missing, [name("tap-pool-0012")]);
    assert!(report.deleted.is_empty() && report.left_alone.is_empty());
    assert_eq!(p.settle().await.idle, 1, "the adopted tap reset");
    let warm = p.warm().await;
    assert_eq!(warm.created, [name("tap-pool-8")]);
}

#[actix_rt::test]
async fn seed_adopts_up_to_the_size_deletes_the_rest_and_spares_open_taps() {
    let sim = leftovers(
        &[
            "tap-pool-0",
            "tap-pool-1",
            "tap-pool-2",
            "tap-pool-3",
            "tap-pool-4",
            "vm-other",
        ],
        TapSpec::default(),
    );
    sim.set_in_use(name("tap-pool-4"), true); // a live VM the caller forgot
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 2;
        c
    });
    let report = seed(&p, &["tap-pool-3"]).await.unwrap();
    assert_eq!(report.adopted, [name("tap-pool-0"), name("tap-pool-1")]);
    assert_eq!(report.deleted, [name("tap-pool-2")]);
    assert_eq!(report.left_alone, [name("tap-pool-4")]);
    assert_eq!(report.next_index, 5);
    let s = p.settle().await;
    assert_eq!((s.deleting, s.resetting), (0, 0));
    assert_eq!((s.idle, s.leased), (2, 1));
    let kernel: Vec<String> = p.kernel_taps().iter().map(|n| n.to_string()).collect();
    // Not the pool's (no prefix, no device group): untouched.
    assert_eq!(
        kernel,
        [
            "tap-pool-0",
            "tap-pool-1",
            "tap-pool-3",
            "tap-pool-4",
            "vm-other"
        ]
    );
}

#[actix_rt::test]
async fn fallback_taps_leaked_by_an_earlier_run_are_found_by_device_group() {
    let spec = {
        let mut t = TapSpec::default();
        t.device_group = Some(4242);
        t
    };
    let sim = leftovers(&["vm-held", "vm-leaked", "vm-open"], spec);
    sim.set_in_use(name("vm-open"), true);
    // Someone else's tap, outside the group.
    let mut other = sim.clone();
    other
        .create_tap(name("vm-foreign"), &TapSpec::default())
        .unwrap();
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 1;
        c.tap = spec;
        c
    });
    let report = seed(&p, &["vm-held"]).await.unwrap();
    assert_eq!(report.deleted, [name("vm-leaked")]);
    assert_eq!(report.left_alone, [name("vm-open")]);
    let s = p.settle().await;
    assert_eq!((s.deleting, s.deleted, s.idle), (0, 1, 0));
    let kernel: Vec<String> = p.kernel_taps().iter().map(|n| n.to_string()).collect();
    // The pool was never warmed: the delete started no refill.
    assert_eq!(kernel, ["vm-foreign", "vm-held", "vm-open"]);
    // The VM's tap is known as held, under a new lease: its release deletes
    // it (not a pool name).
    assert_eq!(report.held.len(), 1);
    assert_eq!(report.held[0].name, name("vm-held"));
    assert_eq!(report.held[0].source, LeaseSource::Seeded);
    assert_eq!(p.release(&report.held[0]).await.unwrap(), Released::Deleted);
}

#[actix_rt::test]
async fn seed_never_lowers_the_index() {
    let p = SimPool::start(1);
    p.warm().await; // tap-pool-0
    assert_eq!(seed(&p, &["tap-pool-0"]).await.unwrap().next_index, 1);
    assert_eq!(seed(&p, &[]).await.unwrap().next_index, 1);
}

#[actix_rt::test]
async fn seeded_names_are_held_by_their_callers() {
    let spec = {
        let mut t = TapSpec::default();
        t.device_group = Some(4242);
        t
    };
    let sim = leftovers(&["tap-pool-4", "vm-x"], spec);
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 1;
        c.tap = spec;
        c
    });
    let report = seed(&p, &["tap-pool-4", "vm-x"]).await.unwrap();
    assert_eq!(
        p.acquire("vm-x").await.unwrap_err(),
        Error::Pool(PoolError::NameInUse {
            name: name("vm-x"),
            state: TapState::Leased
        })
    );
    // The VM's pool tap, released, goes back to the pool after a reset.
    let pool_tap = report
        .held
        .iter()
        .find(|l| l.name == name("tap-pool-4"))
        .unwrap();
    assert_eq!(p.release(pool_tap).await.unwrap(), Released::Pooled);
    // A second Seed listing the same names hands out the same leases.
    let again = seed(&p, &["vm-x"]).await.unwrap();
    assert_eq!(again.held.len(), 1);
    assert_eq!(
        Some(&again.held[0]),
        report.held.iter().find(|l| l.name == name("vm-x"))
    );
    assert_eq!(p.settle().await.idle, 1, "reset and pooled");
}

#[actix_rt::test]
async fn a_failed_listing_is_a_typed_error_and_changes_nothing() {
    let sim = leftovers(&["tap-pool-9"], TapSpec::default());
    let p = SimPool::with(sim.clone(), {
        let mut c = PoolConfig::default();
        c.size = 1;
        c
    });
    // The link watcher lists the links once as it starts; the fault is for
    // Seed's listing, whichever comes first.
    wait_until("the watcher's first listing", || async {
        sim.calls(SimOp::List) >= 1
    })
    .await;
    sim.inject(Fault::nth(
        SimOp::List,
        sim.calls(SimOp::List) + 1,
        libc::ENOBUFS,
    ));
    let before = p.stats().await;
    assert!(matches!(
        seed(&p, &["vm-x"]).await.unwrap_err(),
        Error::Pool(PoolError::Kernel(KernelError::List { .. }))
    ));
    assert_eq!(p.stats().await, before);
    assert_eq!(seed(&p, &[]).await.unwrap().adopted, [name("tap-pool-9")]);
}

#[actix_rt::test]
async fn a_seed_never_leases_a_device_that_is_not_the_pools() {
    // No device group: a fallback-named tap cannot be told from anyone
    // else's; a bridge is not a tap at all.
    let sim = leftovers(&["tap-pool-4", "vnet0"], TapSpec::default());
    sim.add_bridge(name("br0")).unwrap();
    let p = SimPool::with(sim, {
        let mut c = PoolConfig::default();
        c.size = 1;
        c
    });
    let report = seed(&p, &["tap-pool-4", "vnet0", "br0", "lo"])
        .await
        .unwrap();
    assert_eq!(
        report.held.iter().map(|l| l.name).collect::<Vec<_>>(),
        [name("tap-pool-4")]
    );
    assert_eq!(report.not_ours, [name("vnet0")]);
    assert_eq!(report.missing, [name("br0"), name("lo")]);
    p.settle().await;
    assert!(p.sim.contains(name("vnet0")), "never touched");
    assert!(p.sim.bridge_index(name("br0")).is_some(), "never touched");
}

#[actix_rt::test]
async fn a_seed_naming_a_tap_an_acquire_holds_gets_no_token_for_it() {
    // A stale record lists tap-pool-0 after it went to another VM: the
    // Seed must not hand out that VM's token.
    let p = SimPool::start(1);
    p.warm().await;
    let held = p.acquire("vm-b").await.unwrap();
    let report = seed(&p, &[held.name.to_str().unwrap()]).await.unwrap();
    assert!(report.held.is_empty(), "{report:?}");
    assert_eq!(report.known, [(held.name, TapState::Leased)]);
    // The holder's lease is untouched.
    assert_eq!(p.release(&held).await.unwrap(), Released::Pooled);
}
