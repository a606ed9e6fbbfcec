//! Findings of the careless-caller review of issue 11 ("a reused tap carries
//! nothing from its last tenant": `Recycle::{Reset, Fresh}`,
//! `KernelError::Residue`, `PoolStats::discarded`, Seed's exact matches).
//!
//! Each test fails on the reviewed code (3f0682b) and names the promise it
//! checks, the steps, what breaks and where. They are findings, not yet
//! regressions: this file fails until the library is fixed. They drive the pure `Pool` on
//! the simulated kernel where they can, and the actor (still on the
//! simulated kernel) where the finding is the actor's.

use std::time::{Duration, Instant};

use tap_pool::sim::{Fault, SimKernel, SimOp};
use tap_pool::{
    Answer, Event, Kernel, Lease, Pool, PoolConfig, PoolError, Recycle, Released, TapName, TunKind,
    run_blocking,
};
use tap_pool_actors::{Release, Stats};
use tap_pool_testkit::{SimPool, name};

fn config(size: usize, recycle: Recycle) -> PoolConfig {
    let mut c = PoolConfig::default();
    c.size = size;
    c.recycle = recycle;
    c
}

/// A pool of `config`, warmed on a fresh simulated kernel.
fn warmed(config: PoolConfig) -> (Pool, SimKernel, Instant) {
    let mut pool = Pool::new(config).expect("valid config");
    let mut kernel = SimKernel::new();
    let now = Instant::now();
    pool.warm(now);
    run_blocking(&mut pool, &mut kernel, now);
    (pool, kernel, now)
}

/// An `Acquire` the idle stock answers at once.
fn acquire_now(p: &mut Pool, fallback: &str, now: Instant) -> Lease {
    match p.acquire(name(fallback), now) {
        Answer::Now(Ok(lease)) => lease,
        other => panic!("expected a pooled tap at once, got {other:?}"),
    }
}

/// Releases `token` and carries out what the release asks of the kernel;
/// the answer, at once or by its event.
fn release(
    p: &mut Pool,
    k: &mut SimKernel,
    token: tap_pool::LeaseToken,
    now: Instant,
) -> Result<Released, PoolError> {
    match p.release(token, now) {
        Answer::Now(result) => {
            run_blocking(p, k, now);
            result
        }
        Answer::Later(request) => run_blocking(p, k, now)
            .into_iter()
            .find_map(|e| match e {
                Event::Released { request: r, result } if r == request => Some(result),
                _ => None,
            })
            .expect("the release is answered"),
    }
}

// ---------------------------------------------------------------------------
// Finding 1: dropping the last address abandons deletes in flight
// ---------------------------------------------------------------------------

/// Starts a pool of `config` on `sim` on its own System, warms it, leases a
/// tap, lets `before_release` prepare the tap, and releases it with every
/// delete from then on taking 50 ms and the first one failing (`EIO`).
/// Then drops every address to the actor while that delete is in flight
/// and gives the pool a second to finish. Returns the taps the kernel
/// still holds.
fn release_then_drop_every_address(
    sim: &SimKernel,
    config: PoolConfig,
    before_release: impl FnOnce(&SimKernel, TapName),
) -> Vec<TapName> {
    let system = actix_rt::System::new();
    let p = system.block_on(async {
        let p = SimPool::with(sim.clone(), config);
        p.warm().await;
        let lease = p.acquire("vm-a").await.expect("a pooled tap");
        before_release(sim, lease.name);
        sim.set_latency(SimOp::Delete, Duration::from_millis(50));
        sim.inject(Fault::nth(SimOp::Delete, 1, libc::EIO));
        p.pool.do_send(Release::from(lease));
        // Handled after the Release: its delete is with a kernel worker.
        p.pool.send(Stats).await.expect("pool actor alive");
        p
    });
    drop(p);
    system.block_on(async {
        actix_rt::time::sleep(Duration::from_secs(1)).await;
    });
    sim.taps().into_iter().map(|t| t.name).collect()
}

fn fast_delete_retry(mut c: PoolConfig) -> PoolConfig {
    c.delete_retry.initial = Duration::from_millis(2);
    c.delete_retry.max = Duration::from_millis(10);
    c
}

/// Breaks: "every address to the actor dropped, its runtime still
/// running: the actor drains as for `Drain` and keeps running until the
/// drain is done; left in the kernel: the leased taps, once the drain is
/// done" (docs/operations.md, "Shutting down without `Drain`"); `Drain`'s
/// doc (actors/src/messages.rs): stopping "only sees through what is still
/// under way (a released tap's delete, a failed delete's retry)"; "no tap
/// is ever leaked".
///
/// Steps: a `Recycle::Fresh` pool of 1 in a device group (the recommended
/// setup) leases its tap; the lease is released, so the tap's delete is in
/// flight; every address to the actor is dropped; that delete fails once
/// (`EIO`; a retry 2 ms later would succeed).
///
/// What breaks: `TapPoolActor::stopping` (actors/src/pool.rs) starts a
/// drain and stops the actor (`ctx.stop()` in `deliver`) as soon as the
/// drain reports; `Drop` then skips `drain_blocking`, the drain being
/// marked done. `Pool::advance_drain` (src/pool/drain.rs, `Settling`)
/// waits for the grouped delete, but once it fails the tap is
/// `DeleteFailed`, which no phase waits for: the drain reports at once,
/// the actor is gone, and the retry scheduled for 2 ms later never runs.
/// The released tap stays in the kernel for ever, held by nobody. (Without
/// a device group the drain does not even wait for the delete in flight:
/// the next test.) The System-stop path (`drain_blocking`, which waits
/// until only leased taps are left) does not have this gap.
#[test]
fn dropping_the_last_address_abandons_a_fresh_releases_failed_delete() {
    let sim = SimKernel::new();
    let mut config = fast_delete_retry(config(1, Recycle::Fresh));
    config.tap.device_group = Some(4242);
    let left = release_then_drop_every_address(&sim, config, |_, _| {});
    assert!(
        left.is_empty(),
        "a released tap left in the kernel after the pool stopped: {left:?}"
    );
}

/// Breaks the same promise for a tap discarded for a residue
/// (`Recycle::Reset`, no device group): its tenant keeps its file open, so
/// the reset finds `Residue::Attached` and `reset_finished`
/// (src/pool/reset.rs) deletes it. Without a device group the tap is not
/// `grouped`, so the drain that dropping the last address starts
/// (`advance_drain`, `Settling`) does not wait for that delete at all: it
/// reports at once, the actor stops, and the delete's failure is never
/// seen nor retried. The tap, still attached to its last tenant's file,
/// stays in the kernel. (The same holds for every release of a Fresh pool
/// without a group and every fallback tap's release.)
#[test]
fn dropping_the_last_address_abandons_a_residue_discards_failed_delete() {
    let sim = SimKernel::new();
    let left = release_then_drop_every_address(
        &sim,
        fast_delete_retry(config(1, Recycle::Reset)),
        |sim, tap| assert!(sim.set_in_use(tap, true)),
    );
    // The pool's refill makes a new tap, which the drain then deletes.
    assert!(
        left.is_empty(),
        "a discarded tap left in the kernel after the pool stopped: {left:?}"
    );
}

// ---------------------------------------------------------------------------
// Finding 2: a deleting Release is answered with an error that changed things
// ---------------------------------------------------------------------------

/// Breaks: "`Error::Pool`: the pool refused the request, or the kernel
/// refused it on the pool's behalf. Nothing changed." (actors/src/lib.rs)
/// and "A refused request changes nothing" (README.md, "Using it").
///
/// Steps: a `Recycle::Fresh` pool leases a tap; its release's delete fails
/// (`EIO`); the caller, told `Err(Kernel(Delete { .. }))`, does what an
/// error that changed nothing invites: it releases again.
///
/// What breaks: `Pool::release` (src/pool/lease.rs) ended the lease before
/// the delete was tried, and `delete_finished` (src/pool/delete.rs) answers
/// the delete's error as the release's. The second release is refused as
/// `LeaseEnded` ("released already?"): the first one, reported as refused,
/// did end the lease (the tap is `DeleteFailed` and retried). Under Fresh
/// every release takes this path; under Reset every fallback tap's does.
#[test]
fn a_fresh_release_whose_delete_fails_is_an_error_that_ended_the_lease() {
    let (mut p, mut k, now) = warmed(config(1, Recycle::Fresh));
    let lease = acquire_now(&mut p, "vm-a", now);
    k.inject(Fault::nth(SimOp::Delete, 1, libc::EIO));
    let first = release(&mut p, &mut k, lease.token, now);
    let again = p.release(lease.token, now);
    if first.is_err() {
        assert_ne!(
            again,
            Answer::Now(Err(PoolError::LeaseEnded { token: lease.token })),
            "the release was answered {first:?}, an error that changes nothing, \
             yet it ended the lease"
        );
    }
}

/// Breaks: "`Released::Vanished`: someone had already removed it from the
/// kernel behind the pool's back" (src/pool/lease.rs), what a `Reset` pool
/// answers for the same tap (`Released::Pooled`, then counted `vanished`
/// and refilled), and `PoolStats::vanished`.
///
/// Steps: a `Recycle::Fresh` pool of 2 leases a tap; an operator deletes
/// it by hand and the pool has not heard (no link watcher:
/// `watch_links(false)`, or the notice is still on its way); the holder
/// releases it.
///
/// What breaks: the release's delete gets `NoSuchDevice`;
/// `delete_finished` (src/pool/delete.rs) forgets the tap and answers the
/// release with `Err(Kernel(NoSuchDevice))`, an error for a release that
/// went through. It counts nothing (`vanished` stays 0: the removal is in
/// no counter) and does not refill (only a successful delete calls
/// `refill`): the pool stays one tap short.
#[test]
fn a_fresh_release_of_a_tap_deleted_by_hand_is_an_error_and_is_not_replaced() {
    let (mut p, mut k, now) = warmed(config(2, Recycle::Fresh));
    let lease = acquire_now(&mut p, "vm-a", now);
    assert!(k.remove_externally(lease.name));
    let answer = release(&mut p, &mut k, lease.token, now);
    assert_eq!(answer, Ok(Released::Vanished), "the release's answer");
    let s = p.stats();
    assert_eq!(s.vanished, 1, "the removal is counted: {s:?}");
    assert_eq!(s.idle, 2, "the pool replaced the tap: {s:?}");
}

// ---------------------------------------------------------------------------
// Finding 3: Fresh and Residue do not replace what they delete
// ---------------------------------------------------------------------------

/// Breaks: `Recycle::Fresh`: "a released tap is deleted ... and the pool
/// creates a new one in the background" (src/config.rs), "a released tap
/// is deleted and the pool creates another in the background"
/// (docs/security.md): the refill keeps a Fresh pool at its size.
///
/// Steps: a Fresh pool of 16, warm; one Acquire and its Release; settle.
///
/// What breaks: the release's delete calls `Pool::refill`
/// (src/pool/warm.rs), which starts a warm-up only once the pool is
/// `size / 8` (here 2) short. The pool stays at 15 idle taps; at size 64
/// it sits up to 8 short for good. The margin exists for Reset pools (a
/// refill racing a release would make the released tap find no room); a
/// Fresh pool deletes every released tap anyway, so it only loses taps.
/// A Reset pool doing the same is back at 16.
#[test]
fn a_fresh_pool_of_sixteen_does_not_replace_a_released_tap() {
    let (mut p, mut k, now) = warmed(config(16, Recycle::Fresh));
    let lease = acquire_now(&mut p, "vm-a", now);
    assert_eq!(
        release(&mut p, &mut k, lease.token, now),
        Ok(Released::Deleted)
    );
    let s = p.stats();
    assert_eq!(s.idle, 16, "a new tap replaces the released one: {s:?}");
}

/// Breaks: "Anything that cannot be put back ... is `KernelError::Residue`:
/// the tap is deleted (by index) and the pool makes a new one"
/// (docs/security.md, "What a reset does"); `Recycle::Reset`: "deleted
/// instead and the pool refills" (src/config.rs); `reset_finished`'s own
/// comment "Deleted by index, and replaced." (src/pool/reset.rs).
///
/// Steps: a Reset pool of 16; a tenant keeps its file open past its
/// release (`Residue::Attached`); settle.
///
/// What breaks: `reset_finished` counts it `discarded` and deletes it,
/// but the refill it asks for (and the one after the delete) waits until
/// the pool is 2 short: the pool stays at 15. The unit test of this
/// (`a_tenants_residue_is_restored_or_the_tap_is_deleted_and_replaced`)
/// uses a pool of 2, where `size / 8` rounds up to 1.
#[test]
fn a_discarded_tap_is_not_replaced_in_a_pool_of_sixteen() {
    let (mut p, mut k, now) = warmed(config(16, Recycle::Reset));
    let lease = acquire_now(&mut p, "vm-a", now);
    assert!(k.set_in_use(lease.name, true));
    assert_eq!(
        release(&mut p, &mut k, lease.token, now),
        Ok(Released::Pooled)
    );
    let s = p.stats();
    assert_eq!(s.discarded, 1, "{s:?}");
    assert_eq!(s.idle, 16, "a new tap replaces the discarded one: {s:?}");
}

/// Breaks: `Recycle::Fresh`'s "the pool creates a new one in the
/// background" for a released tap that vanished (the link watcher saw an
/// operator delete it while leased).
///
/// Steps: a Fresh pool of 1 leases its tap; an operator deletes it and the
/// pool hears (`link_removed`); the holder releases it: `Vanished`.
///
/// What breaks: `Pool::release` (src/pool/lease.rs, the `tap.vanished`
/// branch) forgets the tap and answers, with no `refill`; `link_removed`
/// of a leased tap (src/pool/reconcile.rs) does not refill either. The
/// pool stays empty until some later delete happens to refill it: the next
/// Acquire is a miss that creates its fallback tap. (The same holds for a
/// Reset pool.)
#[test]
fn a_fresh_pool_never_replaces_a_leased_tap_that_vanished() {
    let (mut p, mut k, now) = warmed(config(1, Recycle::Fresh));
    let lease = acquire_now(&mut p, "vm-a", now);
    let index = k.tap(lease.name).expect("leased tap").index;
    assert!(k.remove_externally(lease.name));
    p.link_removed(lease.name, index, now);
    assert_eq!(
        release(&mut p, &mut k, lease.token, now),
        Ok(Released::Vanished)
    );
    let s = p.stats();
    assert_eq!(s.idle, 1, "a new tap replaces the vanished one: {s:?}");
}

// ---------------------------------------------------------------------------
// Finding 4: a rename counts as `vanished` or not, by the moment it is seen
// ---------------------------------------------------------------------------

/// Breaks: "stats add up": `PoolStats::vanished` is "Idle or leased taps
/// that were removed from the kernel behind the pool's back"; the same
/// event must count the same way.
///
/// Steps: two pools of 2; in each, an operator renames one tap (`ip link
/// set tap-pool-N name other`) and the watcher reports it. In the first
/// the tap is idle; in the second it is leased and then released. Either
/// way the pool deletes the renamed tap by index and refills.
///
/// What breaks: `link_renamed` (src/pool/reconcile.rs) counts an idle
/// tap's rename as `vanished` (and its delete as `deleted`), a leased or
/// resetting tap's rename as nothing (only its delete). `reset_finished`'s
/// `Renamed` branch counts it again as `vanished`. So `vanished` counts a
/// rename, which removes nothing, once or not at all depending on when the
/// tap was renamed; and a renamed idle tap is counted both as vanished
/// and as deleted.
#[test]
fn a_rename_counts_as_vanished_for_an_idle_tap_but_not_for_a_leased_one() {
    let (mut idle_pool, mut idle_kernel, now) = warmed(config(2, Recycle::Reset));
    let idle = idle_pool.idle()[0];
    let index = idle_kernel.tap(idle).expect("idle tap").index;
    assert!(idle_kernel.rename_externally(idle, name("renamed")));
    idle_pool.link_renamed(index, idle, Some(name("renamed")), now);
    run_blocking(&mut idle_pool, &mut idle_kernel, now);

    let (mut leased_pool, mut leased_kernel, now) = warmed(config(2, Recycle::Reset));
    let lease = acquire_now(&mut leased_pool, "vm-a", now);
    let index = leased_kernel.tap(lease.name).expect("leased tap").index;
    assert!(leased_kernel.rename_externally(lease.name, name("renamed")));
    leased_pool.link_renamed(index, lease.name, Some(name("renamed")), now);
    release(&mut leased_pool, &mut leased_kernel, lease.token, now).expect("released");

    let (a, b) = (idle_pool.stats(), leased_pool.stats());
    assert!(idle_kernel.taps().iter().all(|t| t.name != "renamed"));
    assert!(leased_kernel.taps().iter().all(|t| t.name != "renamed"));
    assert_eq!(
        (a.vanished, a.deleted),
        (b.vanished, b.deleted),
        "one rename, counted two ways: idle {a:?}, leased {b:?}"
    );
}

// ---------------------------------------------------------------------------
// Finding 5: a listed tun device is reported as someone else's tap
// ---------------------------------------------------------------------------

/// Breaks: `SeedReport::missing`: "Names the caller listed that the kernel
/// does not have as a tap (no such device, or one that is not a tap)";
/// `SeedReport::not_ours`: "Names the caller listed that are taps but not
/// the pool's" (src/pool/reconcile.rs); operations.md: Seed "reports as
/// missing listed names the kernel does not have as a tap".
///
/// Steps: the kernel holds `tap-pool-3`, a tun-mode device under a pool
/// name (docs/security.md: the pool leaves it alone); the orchestrator
/// lists it in `Seed { used }` by mistake.
///
/// What breaks: `reconcile` puts every listed device that is not a tap of
/// the pool's in `not_ours` (the `Some(_)` arm), a tun device included:
/// the report says the kernel has it as a tap, someone else's, where the
/// docs say it is missing (not a tap at all).
#[test]
fn a_listed_tun_device_is_reported_as_a_tap_that_is_not_ours() {
    let mut p = Pool::new(config(1, Recycle::Reset)).expect("valid config");
    let mut k = SimKernel::new();
    let now = Instant::now();
    let tun = name("tap-pool-3");
    k.create_tap(tun, p.tap_spec()).expect("made");
    assert!(k.tamper(tun, |l| l.kind = TunKind::Tun));
    let request = p.seed(vec![tun], now);
    let events = run_blocking(&mut p, &mut k, now);
    let report = events
        .into_iter()
        .find_map(|e| match e {
            Event::Seeded { request: r, result } if r == request => Some(result),
            _ => None,
        })
        .expect("seed answered")
        .expect("seeded");
    assert!(report.held.is_empty(), "{report:?}");
    assert_eq!(report.missing, [tun], "not a tap: missing. {report:?}");
    assert!(report.not_ours.is_empty(), "{report:?}");
}

// ---------------------------------------------------------------------------
// Finding 6: the docs point to a cost that is not there
// ---------------------------------------------------------------------------

/// Breaks: "every claim in the docs matches the code and the other docs":
/// `Recycle::Fresh` says "at the cost of a kernel delete and create per
/// lease (docs/performance.md)" (src/config.rs) and docs/security.md says
/// of Fresh "Its cost is in docs/performance.md". docs/performance.md says
/// nothing of Fresh, `Recycle` or what a lease costs under it.
#[test]
fn docs_performance_gives_the_cost_of_a_fresh_pool() {
    let performance =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/performance.md"))
            .expect("docs/performance.md");
    assert!(
        performance.contains("Recycle::Fresh") || performance.contains("Fresh"),
        "docs/performance.md has no word of Recycle::Fresh, which src/config.rs and \
         docs/security.md send the reader there for"
    );
}

// ---------------------------------------------------------------------------
// Finding 7: a drain's report counts a released tap as an idle one it deleted
// ---------------------------------------------------------------------------

/// The drain report of a Fresh pool of 3 whose two leases are out, when
/// one of them is released just before a `Drain` and that release's
/// delete fails once.
fn drain_during_a_failing_fresh_delete(group: Option<u32>) -> tap_pool::DrainReport {
    let mut config = config(3, Recycle::Fresh);
    config.tap.device_group = group;
    let (mut p, mut k, now) = warmed(config);
    let released = acquire_now(&mut p, "vm-a", now);
    let _held = acquire_now(&mut p, "vm-b", now);
    k.inject(Fault::nth(SimOp::Delete, 1, libc::EIO));
    let Answer::Later(_) = p.release(released.token, now) else {
        panic!("a fresh release deletes")
    };
    let drain = p.drain(now);
    run_blocking(&mut p, &mut k, now)
        .into_iter()
        .find_map(|e| match e {
            Event::Drained { request, report } if request == drain => Some(report),
            _ => None,
        })
        .expect("drained")
}

/// Breaks: `DrainReport::deleted`: "Idle taps deleted"
/// (src/pool/drain.rs); the drain "waits for ... deletes of its grouped
/// taps in flight (so each report counts only its own deletes)"
/// (docs/operations.md, "Shutting down: `Drain`").
///
/// Steps: a `Recycle::Fresh` pool of 3, two taps leased, one idle. One
/// lease is released (its delete fails once, `EIO`) and a `Drain` follows
/// at once. With and without a device group.
///
/// (Fixed: the report now counts the same idle taps either way; the
/// numbers below allow for the fresh pool's refill, which now replaces the
/// released tap at once.)
///
/// What broke: the pool had one idle tap. Without a group the report
/// said 1 deleted. With a group, `advance_drain` waits for the release's
/// delete, which fails and leaves the tap `DeleteFailed`; the group delete
/// then takes it and `group_deleted` adds it to the report as
/// `failed_but_gone`: 2 "idle taps" deleted. The released tap's caller was
/// told its release failed (finding 2), and the drain reports the same tap
/// as one of its own idle taps. The same drain reports 1 or 2 by the
/// device group.
#[test]
fn a_drain_reports_a_released_taps_retried_delete_as_an_idle_tap_it_deleted() {
    let without = drain_during_a_failing_fresh_delete(None);
    let with = drain_during_a_failing_fresh_delete(Some(4242));
    // The same idle taps either way: the one left, and the two the refill
    // made at once for the released tap (a fresh pool replaces without a
    // margin, and the drain waits for creates under way); never the
    // released tap itself.
    assert_eq!(without.deleted, 3, "{without:?}");
    assert_eq!(
        with.deleted, without.deleted,
        "{with:?} against {without:?}"
    );
    // The released tap's failed delete: still there and retried without a
    // group; gone with the group's delete, so neither failed nor counted.
    assert_eq!((without.delete_failed, with.delete_failed), (1, 0));
}
