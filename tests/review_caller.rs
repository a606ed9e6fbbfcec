//! Regressions from the careless-caller review of lease tokens (issue 10):
//! stale, duplicate and wrong requests, callers that give up, Seed at odd
//! moments. Each test failed on the code the review read, and names the
//! promise (README.md, docs/architecture.md, docs/operations.md) it checks.

use std::time::Instant;

use tap_pool::{
    Answer, Command, Event, Kernel, Pool, PoolConfig, Released as PoolReleased, TapSpec, TapState,
    run_blocking,
};
use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{Acquire, Error, LeaseToken, PoolError, Seed, SeedReport, TapName};
use tap_pool_testkit::{SimPool, name};

fn sized(size: usize) -> PoolConfig {
    let mut c = PoolConfig::default();
    c.size = size;
    c
}

async fn seed(p: &SimPool, used: &[&str]) -> SeedReport {
    let used: Vec<TapName> = used.iter().map(|n| name(n)).collect();
    p.pool
        .send(Seed { used })
        .await
        .expect("pool actor alive")
        .expect("seeded")
}

// ---------------------------------------------------------------------------
// Callers that give up
// ---------------------------------------------------------------------------

/// Breaks: "A caller may give up on any request: ... a dropped future. A
/// lease that comes when nobody waits for it any more is released at once
/// ... so it is never leased to nobody" (docs/operations.md, Leases), and
/// `Acquire`'s "Safe to give up on (a timeout, a dropped future)".
///
/// The caller drops its `send(Acquire)` future after the actor has answered
/// into the reply channel but before the future was polled again (a
/// `select!` whose other branch won, a task aborted at that moment). The
/// lease dies inside the dropped oneshot receiver: the actor's send
/// succeeded, so it never learns that nobody took it. The tap stays leased
/// to nobody for the rest of the run, and `Settle` calls the pool settled.
#[actix_rt::test]
async fn a_warm_lease_answered_into_a_dropped_future_is_held_by_nobody() {
    let p = SimPool::start(1);
    p.warm().await;
    let request = p.pool.send(Acquire::new("vm-a").unwrap());
    // Stats queues behind the Acquire: once it is answered, the Acquire
    // was handled and its lease sits in `request`'s reply channel.
    p.stats().await;
    drop(request); // the caller gives up now
    let s = p.settle().await;
    assert_eq!((s.idle, s.leased), (1, 0), "a lease nobody holds: {s:?}");
}

/// Breaks the same promise for a cold Acquire, and: "its fallback name is
/// free again" / "never leaves ... a fallback name reserved for ever".
/// The dropped future took the lease with it: the fallback tap stays in the
/// kernel, leased to nobody, and its name is refused (`NameInUse`) for the
/// rest of the run.
#[actix_rt::test]
async fn a_created_lease_answered_into_a_dropped_future_reserves_its_fallback_name_for_ever() {
    let p = SimPool::start(0);
    let request = p.pool.send(Acquire::new("vm-a").unwrap());
    // Settle queues behind the Acquire and waits for its create: the lease
    // is then in `request`'s reply channel.
    p.settle().await;
    drop(request);
    let s = p.settle().await;
    assert_eq!(s.leased, 0, "a lease nobody holds: {s:?}");
    assert!(
        p.acquire("vm-a").await.is_ok(),
        "the fallback name stays reserved for ever"
    );
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// Breaks: "a stale or duplicate Release ... changes nothing, even if the
/// tap has since gone to another VM" and "no caller can take a tap from its
/// next holder" (docs/architecture.md, lease.rs).
///
/// A Seed is an oracle for live tokens: "a name already leased in this run
/// keeps its token" returns the token of whichever lease holds the name
/// NOW, including an ordinary Acquire's. A careless orchestrator whose
/// periodic reconcile lists VM A's stale record (A released `tap-pool-0`,
/// B has it since) gets B's token as "A's lease", and A's shutdown path
/// then releases it: the tap is reset under B and handed to C.
#[actix_rt::test]
async fn a_stale_seed_hands_out_the_next_holders_token() {
    let p = SimPool::start(1);
    p.warm().await;
    let a = p.acquire("vm-a").await.unwrap();
    p.release_settled(&a).await.unwrap();
    let b = p.acquire("vm-b").await.unwrap();
    assert_eq!(b.name, a.name, "LIFO: B got A's old tap");
    // The orchestrator's stale record still says VM A holds a.name.
    let report = seed(&p, &[a.name.to_str().unwrap()]).await;
    if let Some(as_a) = report.held.iter().find(|l| l.name == a.name) {
        // A's shutdown releases what Seed said A holds.
        let _ = p.release(as_a).await;
    }
    p.settle().await;
    let c = p.acquire("vm-c").await.unwrap();
    assert_ne!(
        c.name, b.name,
        "C got the tap B still runs on (Seed leaked B's token {})",
        b.token
    );
}

/// Breaks: "a made-up token ... is refused with PoolError::UnknownLease,
/// with no kernel call" (docs/operations.md, Leases).
///
/// Tokens are a run id and a serial that counts up by one per lease, so
/// anyone who holds one token can name every other live one: a caller that
/// stores tokens carelessly (an off-by-one, two VMs' records mixed up)
/// releases another VM's tap, and the reply is `Ok(Pooled)`.
#[actix_rt::test]
async fn a_made_up_token_next_to_a_real_one_releases_another_holders_tap() {
    let p = SimPool::start(2);
    p.warm().await;
    let a = p.acquire("vm-a").await.unwrap();
    let b = p.acquire("vm-b").await.unwrap();
    let made_up = LeaseToken::from_u128(a.token.to_u128() + 1);
    let answer = p.release_token(made_up).await;
    assert!(
        matches!(
            answer,
            Err(Error::Pool(
                PoolError::UnknownLease { .. } | PoolError::LeaseEnded { .. }
            ))
        ),
        "a token nobody was given ended B's lease on {}: {answer:?}",
        b.name
    );
    // Both leases are still live: each ends once, by its own token.
    assert!(p.release(&a).await.is_ok());
    assert!(p.release(&b).await.is_ok());
}

// ---------------------------------------------------------------------------
// Seed
// ---------------------------------------------------------------------------

/// Breaks: "nothing a caller sends can make the pool delete a device it did
/// not make" (docs/operations.md, Leases) and "the pool touches only its
/// own devices" (issue 10).
///
/// Seed leases every listed name the kernel holds as a tap, whether or not
/// it is the pool's: here a tap with no pool prefix and outside the pool's
/// device group (another tenant's, libvirt's `vnet0`), listed by mistake.
/// Its release then deletes it by index.
#[actix_rt::test]
async fn a_seed_listing_someone_elses_tap_lets_release_delete_it() {
    let mut sim = SimKernel::new();
    sim.create_tap(name("vnet0"), &TapSpec::default()).unwrap(); // group 0
    sim.set_in_use(name("vnet0"), true);
    let mut config = sized(1);
    config.tap.device_group = Some(4242);
    let p = SimPool::with(sim, config);
    let report = seed(&p, &["vnet0"]).await;
    for lease in &report.held {
        let _ = p.release(lease).await;
    }
    p.settle().await;
    assert!(
        p.sim.contains(name("vnet0")),
        "the pool deleted a tap it never made (Seed gave it a lease: {:?})",
        report.held
    );
    assert_eq!(p.sim.calls(SimOp::Delete), 0);
}

/// Breaks: "Seed adopts only taps made the way the pool makes them (same
/// group, and the configured owner); others are deleted" (docs/operations.md)
/// and what it protects: "a VMM could not open one with another owner or
/// group, and a reset cannot change those" (reconcile.rs).
///
/// A running VM's pool-named tap from before a restart that changed the
/// owner (the jailer's uid) gets a Seed lease; when that VM stops, its
/// release POOLS the tap (a reset does not change the owner), and the next
/// Acquire hands out a tap the new VMM's uid cannot open (`EPERM`).
#[actix_rt::test]
async fn a_seeded_tap_made_for_another_owner_is_pooled_on_release_and_handed_out() {
    let mut sim = SimKernel::new();
    let old = {
        let mut t = TapSpec::default();
        t.owner = Some(1234); // the previous run's jailer uid
        t
    };
    sim.create_tap(name("tap-pool-3"), &old).unwrap();
    sim.set_in_use(name("tap-pool-3"), true);
    let mut config = sized(1);
    config.tap.owner = Some(10_000); // this run's jailer uid
    let p = SimPool::with(sim, config);
    let report = seed(&p, &["tap-pool-3"]).await;
    assert_eq!(report.held.len(), 1, "{report:?}");
    p.sim.set_in_use(name("tap-pool-3"), false); // the VM stops
    p.release(&report.held[0]).await.unwrap();
    p.settle().await;
    let next = p.acquire("vm-next").await.unwrap();
    let owner = p.sim.tap(next.name).and_then(|t| t.owner);
    assert_eq!(
        owner,
        Some(10_000),
        "{} ({:?}) handed out with the old owner: its VMM cannot open it",
        next.name,
        next.source
    );
}

/// Breaks: "Every name the pool has asked the kernel about is in exactly
/// one state" (docs/architecture.md) and the lease promises built on it.
///
/// An Acquire waiting for a tap in reset reserves its fallback name only in
/// the waiting queue; Seed does not look there and leases a running VM's
/// tap of that name. When the reset fails (or a drain starts) the waiter
/// creates its fallback over the seeded lease: the VM's tap is overwritten
/// in the pool's books (`CreatingForLease`), the create fails `EBUSY`, the
/// name is forgotten while its Seed token stays live, and that token's
/// release answers `Vanished` for a tap the kernel still has. Same root
/// cause, found by a random careless-caller run: Seed deletes an unheld
/// grouped tap whose name a waiter reserved, and the waiter's create then
/// goes out while that delete is in flight ("a create and a delete of the
/// same name are never in flight together").
#[test]
fn seed_leases_a_name_a_waiting_acquire_reserved_and_the_waiter_overwrites_it() {
    let mut k = SimKernel::new();
    let now = Instant::now();
    let mut p = Pool::new(sized(1)).unwrap();
    p.warm(now);
    run_blocking(&mut p, &mut k, now);
    let Answer::Now(Ok(a)) = p.acquire(name("vm-a"), now) else {
        panic!("a warm hit")
    };
    assert_eq!(
        p.release(a.token, now),
        Answer::Now(Ok(PoolReleased::Pooled))
    );
    // The reset is taken by a worker, not yet done.
    let reset: Vec<Command> = std::iter::from_fn(|| p.poll_batch())
        .flat_map(|b| b.commands)
        .collect();
    assert_eq!(reset.len(), 1);
    // An Acquire finds the stock empty and waits for that tap.
    let Answer::Later(_waiter) = p.acquire(name("vm-b"), now) else {
        panic!("waits for the reset")
    };
    // A VM from before the restart runs on a tap named vm-b; Seed lists it.
    k.create_tap(name("vm-b"), &TapSpec::default()).unwrap();
    k.set_in_use(name("vm-b"), true);
    p.seed(vec![name("vm-b")], now);
    let events = run_blocking(&mut p, &mut k, now);
    let held = events
        .iter()
        .find_map(|e| match e {
            Event::Seeded {
                result: Ok(report), ..
            } => Some(report.held.clone()),
            _ => None,
        })
        .expect("seeded");
    let seeded = held.iter().find(|l| l.name == name("vm-b"));
    let Some(seeded) = seeded else {
        // Refusing to lease a reserved name would also keep the promise.
        return;
    };
    assert_eq!(p.state_of(&name("vm-b")), Some(TapState::Leased));
    // The reset fails: the waiter turns to its fallback.
    k.inject(Fault::nth(SimOp::Reset, 1, libc::EIO));
    let outcome = reset[0].op.run(&mut k);
    p.complete(reset[0].id, outcome, now);
    assert_eq!(
        p.state_of(&name("vm-b")),
        Some(TapState::Leased),
        "the waiter's create overwrote the seeded lease of vm-b"
    );
    run_blocking(&mut p, &mut k, now);
    assert!(k.contains(name("vm-b")), "the VM's tap is still there");
    assert_eq!(p.state_of(&name("vm-b")), Some(TapState::Leased));
    assert_ne!(
        p.release(seeded.token, now),
        Answer::Now(Ok(PoolReleased::Vanished))
    );
}

/// Breaks: "reports count what their names say" (issue 10, point 7) for
/// Seed: every listed name is reported as held or missing ("gives every
/// listed tap the kernel holds a lease"; "reports as missing listed names
/// the kernel does not have as a tap").
///
/// A listed name the pool holds idle (or resetting, or deleting) is in
/// neither list nor any other: the caller is told nothing about a tap its
/// VM claims and the pool will hand to another VM.
#[actix_rt::test]
async fn a_listed_name_the_pool_holds_idle_is_in_no_list_of_the_seed_report() {
    let p = SimPool::start(1);
    p.warm().await;
    let idle = name("tap-pool-0");
    assert_eq!(p.sim.tap(idle).map(|t| t.name), Some(idle));
    let report = seed(&p, &["tap-pool-0"]).await;
    let listed = report.held.iter().any(|l| l.name == idle)
        || report.missing.contains(&idle)
        || report.left_alone.contains(&idle)
        || report.adopted.contains(&idle)
        || report.deleted.contains(&idle)
        || report.known.contains(&(idle, TapState::Idle));
    assert!(listed, "tap-pool-0 is in no list of {report:?}");
}

// ---------------------------------------------------------------------------
// Drain
// ---------------------------------------------------------------------------

/// Breaks: "reports count what their names say" (issue 10, point 7) for
/// Drain: `DrainReport.deleted` is "Idle taps deleted" and `delete_failed`
/// is "Taps whose delete failed; still known and retried".
///
/// A fallback tap whose release-delete fails while the drain settles is
/// `DeleteFailed` but still in the device group; the group check accepts
/// it and the group delete removes it. The report counted it as failed,
/// and the pool kept retrying a delete of a device that is gone (the
/// retry's ENODEV then forgot it without counting it anywhere). (It is not
/// one of the drain's idle taps either: the review of issue 11 found a
/// drain counting it as such.)
#[test]
fn a_tap_the_drains_group_delete_took_is_reported_as_delete_failed() {
    let mut k = SimKernel::new();
    let now = Instant::now();
    let mut config = sized(1);
    config.tap.device_group = Some(9);
    let mut p = Pool::new(config).unwrap();
    p.warm(now);
    run_blocking(&mut p, &mut k, now);
    let Answer::Now(Ok(a)) = p.acquire(name("vm-a"), now) else {
        panic!("a warm hit")
    };
    let Answer::Later(_) = p.acquire(name("vm-c"), now) else {
        panic!("a create")
    };
    let vm_c = run_blocking(&mut p, &mut k, now)
        .into_iter()
        .find_map(|e| match e {
            Event::Acquired {
                result: Ok(lease), ..
            } => Some(lease),
            _ => None,
        })
        .expect("vm-c created");
    assert_eq!(p.state_of(&vm_c.name), Some(TapState::Leased));
    // a goes back to the pool; vm-c's release deletes it.
    p.release(a.token, now);
    run_blocking(&mut p, &mut k, now);
    let vm_c_token = vm_c.token;
    let Answer::Later(_) = p.release(vm_c_token, now) else {
        panic!("a fallback tap is deleted")
    };
    let delete: Vec<Command> = std::iter::from_fn(|| p.poll_batch())
        .flat_map(|b| b.commands)
        .collect();
    assert_eq!(delete.len(), 1);
    // The drain begins while vm-c's delete is in flight; the delete fails.
    let drain = p.drain(now);
    k.inject(Fault::nth(SimOp::Delete, 1, libc::EIO));
    let outcome = delete[0].op.run(&mut k);
    p.complete(delete[0].id, outcome, now);
    let events = run_blocking(&mut p, &mut k, now);
    let report = events
        .iter()
        .find_map(|e| match e {
            Event::Drained { request, report } if *request == drain => Some(report.clone()),
            _ => None,
        })
        .expect("drained");
    assert!(!k.contains(name("vm-c")), "the group delete took vm-c");
    // Its one idle tap; vm-c was a release's delete, not the drain's, and
    // is not reported as failed either: it is gone, and forgotten.
    assert_eq!(
        (report.deleted, report.delete_failed),
        (1, 0),
        "{report:?}; pool still has vm-c as {:?}",
        p.state_of(&name("vm-c"))
    );
    assert_eq!(p.state_of(&name("vm-c")), None);
    assert_eq!(p.stats().deleted, 2, "both deletes counted in the stats");
}

/// Breaks: "A Seed whose listing was taken before a tap was released and
/// deleted does not bring that tap back as held" (docs/operations.md) and
/// "no phantom lease" (issue 10, point 7), with the driver contract of
/// `Pool::acquire`: "A driver whose caller is gone by the time the lease
/// comes releases the lease at once" (what `TapPoolActor::pump` does).
///
/// The fallback create of an Acquire whose caller gave up and a Seed
/// listing that names the same tap report in one go (one `DrainReports`
/// pass in the actor). The Seed's reconcile runs while the tap is leased
/// to the gone caller and puts that lease's token in `held`; the driver
/// then releases the abandoned lease (the tap is deleted) and delivers the
/// Seed report afterwards: the Seed's caller is handed a token that has
/// already ended, for a tap that is being deleted.
#[test]
fn a_seed_report_can_hold_a_lease_released_before_it_was_delivered() {
    let mut k = SimKernel::new();
    let now = Instant::now();
    let mut p = Pool::new(sized(0)).unwrap();
    let Answer::Later(acquire) = p.acquire(name("vm-0"), now) else {
        panic!("a create")
    };
    let seed = p.seed(vec![name("vm-0")], now);
    let calls: Vec<Command> = std::iter::from_fn(|| p.poll_batch())
        .flat_map(|b| b.commands)
        .collect();
    assert_eq!(calls.len(), 2, "the create and the listing");
    // Both finish, and are reported together.
    for c in &calls {
        let outcome = c.op.run(&mut k);
        p.complete(c.id, outcome, now);
    }
    // The driver answers in order: the Acquire's caller has gone, so its
    // lease is released at once, before the next answer is taken.
    let mut held = None;
    while let Some(event) = p.poll_event() {
        match event {
            Event::Acquired {
                request,
                result: Ok(lease),
            } if request == acquire => {
                let _ = p.release(lease.token, now);
            }
            Event::Seeded {
                request,
                result: Ok(report),
            } if request == seed => held = Some(report.held),
            _ => {}
        }
    }
    let held = held.expect("seeded");
    for lease in &held {
        assert_eq!(
            p.leased_tap(lease.token),
            Some(lease.name),
            "Seed handed out {} for {}, a lease that had already ended ({:?})",
            lease.token,
            lease.name,
            p.state_of(&lease.name)
        );
    }
}

// ---------------------------------------------------------------------------
// Names and configuration
// ---------------------------------------------------------------------------

/// Breaks: "`NameError` for a name the kernel would refuse (checked when the
/// message is built)" (README) and "a name that passes here is never refused
/// by the kernel for its spelling" (name.rs), for callers and for configs.
///
/// The kernel reads a `%` in a `TUNSETIFF` name as a template
/// (`dev_alloc_name`). Checked on the real kernel in a private namespace
/// (`create_tap` through `TestNetns::with_kernel`, not committed): `vm%d`
/// makes `vm0`, the pool's index lookup of `vm%d` then fails and the
/// Acquire gets a misleading `Configure { errno: ENODEV }`; `a%s` gets
/// `EINVAL`. A pool with prefix `tap%d-` is accepted and every warm-up
/// fails, retried with backoff for as long as it runs; the simulated
/// kernel accepts both names, so the sim-based tests never see it.
#[test]
fn a_percent_in_a_name_is_accepted_though_the_kernel_reads_it_as_a_template() {
    assert!(
        Acquire::new("vm%d").is_err(),
        "a fallback name the kernel turns into vm0"
    );
    let mut config = sized(2);
    config.prefix = "tap%d-".into();
    assert!(
        Pool::new(config).is_err(),
        "a prefix no tap can be created with"
    );
}
