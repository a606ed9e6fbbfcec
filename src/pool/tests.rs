use super::*;
use crate::kernel::{Errno, Kernel};
use crate::sim::{Fault, SimKernel, SimOp};

fn name(s: &str) -> TapName {
    TapName::new(s).unwrap()
}

fn config(size: usize, window: usize) -> PoolConfig {
    PoolConfig {
        size,
        create_window: window,
        ..PoolConfig::default()
    }
}

fn pool(size: usize, window: usize) -> Pool {
    Pool::new(config(size, window)).unwrap()
}

fn created(i: u32) -> Result<CreatedTap, PoolError> {
    Ok(CreatedTap {
        index: 100 + i,
        mac: [2, 0, 0, 0, 0, i as u8],
    })
}

fn warm_report(rest: &[Command]) -> Option<&WarmReport> {
    rest.iter().find_map(|c| match c {
        Command::WarmFinished(r) => Some(r),
        _ => None,
    })
}

fn drain_report(rest: &[Command]) -> Option<&DrainReport> {
    rest.iter().find_map(|c| match c {
        Command::DrainFinished(r) => Some(r),
        _ => None,
    })
}

fn creates(p: &mut Pool) -> Vec<TapName> {
    let mut out = Vec::new();
    while let Some(c) = p.take_command() {
        match c {
            Command::Create { name, .. } => out.push(name),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

#[test]
fn warm_fills_to_size_within_the_window_and_coalesces() {
    let mut p = pool(3, 2);
    p.warm();
    assert_eq!(creates(&mut p), [name("tap-pool-0"), name("tap-pool-1")]);
    p.warm(); // joins: nothing new
    assert_eq!(p.take_command(), None);
    p.warm_created(name("tap-pool-0"), created(0));
    assert_eq!(creates(&mut p), [name("tap-pool-2")]);
    p.warm_created(name("tap-pool-1"), created(1));
    assert_eq!(p.take_command(), None);
    p.warm_created(name("tap-pool-2"), created(2));
    let Some(Command::WarmFinished(report)) = p.take_command() else {
        panic!()
    };
    assert_eq!(report.created.len(), 3);
    assert_eq!(p.stats().idle, 3);
    p.warm();
    assert_eq!(
        p.take_command(),
        Some(Command::WarmFinished(WarmReport::default()))
    );
}

#[test]
fn a_failed_warm_up_stops_and_is_retried_with_backoff() {
    let mut p = pool(4, 1);
    let mut k = SimKernel::new();
    k.inject(Fault::nth(SimOp::Create, 2, libc::ENOMEM));
    k.inject(Fault::nth(SimOp::Create, 3, libc::ENOMEM));
    p.warm();
    let rest = run_blocking(&mut p, &mut k);
    let report = warm_report(&rest).unwrap();
    assert_eq!(report.created, [name("tap-pool-0")]);
    assert_eq!(
        report.failure.as_ref().unwrap().name,
        Some(name("tap-pool-1"))
    );
    assert_eq!(report.retry_in, Some(Duration::from_millis(100)));
    assert!(rest.contains(&Command::RetryWarmAfter(Duration::from_millis(100))));
    assert_eq!(k.calls(SimOp::Create), 2, "no create after the failure");
    // The retry fails again: the next delay doubles.
    p.retry_warm();
    let rest = run_blocking(&mut p, &mut k);
    assert!(rest.contains(&Command::RetryWarmAfter(Duration::from_millis(200))));
    // The third try succeeds; the failed indices are not reused.
    p.retry_warm();
    let rest = run_blocking(&mut p, &mut k);
    let report = warm_report(&rest).unwrap();
    assert!(report.failure.is_none() && report.retry_in.is_none());
    assert_eq!(
        report.created,
        [name("tap-pool-3"), name("tap-pool-4"), name("tap-pool-5")]
    );
    assert_eq!(p.stats().idle, 4);
}

#[test]
fn warm_retries_are_bounded() {
    let mut p = Pool::new(PoolConfig {
        warm_retry: Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
            max_attempts: 2,
        },
        ..config(2, 1)
    })
    .unwrap();
    let mut k = SimKernel::new();
    k.inject(Fault::always(SimOp::Create, libc::EIO));
    let mut retries = 0;
    p.warm();
    loop {
        let rest = run_blocking(&mut p, &mut k);
        if rest.iter().any(|c| matches!(c, Command::RetryWarmAfter(_))) {
            retries += 1;
            p.retry_warm();
        } else {
            break;
        }
    }
    assert_eq!(retries, 2);
}

#[test]
fn acquire_is_lifo_then_creates_the_fallback() {
    let mut p = pool(2, 2);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let idle = p.idle().to_vec();
    assert_eq!(
        p.acquire(name("vm-a")).unwrap(),
        AcquireDecision::Pooled(idle[1])
    );
    assert_eq!(
        p.acquire(name("vm-b")).unwrap(),
        AcquireDecision::Pooled(idle[0])
    );
    let AcquireDecision::Create(n, spec) = p.acquire(name("vm-c")).unwrap() else {
        panic!()
    };
    assert_eq!((n, spec), (name("vm-c"), *p.tap_spec()));
    p.lease_created(n, &created(9));
    let s = p.stats();
    assert_eq!((s.hits, s.misses, s.leased, s.created), (2, 1, 3, 3));
}

#[test]
fn release_resets_before_the_tap_goes_idle() {
    let mut p = pool(1, 1);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let AcquireDecision::Pooled(t) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    let mac = k.tap(t).unwrap().mac;
    k.tamper(t, |l| {
        l.mtu = 9000;
        l.up = false;
        l.mac = [2, 9, 9, 9, 9, 9];
    });
    k.add_address(t, "192.0.2.7/24");
    assert_eq!(p.release(t).unwrap(), ReleaseDecision::Pooled);
    assert_eq!(p.state_of(&t), Some(TapState::Resetting));
    // Not yet idle: an Acquire now misses; a second release is refused.
    assert_eq!(p.release(t), Err(PoolError::AlreadyIdle { name: t }));
    run_blocking(&mut p, &mut k);
    assert_eq!(p.state_of(&t), Some(TapState::Idle));
    let link = k.tap(t).unwrap();
    assert_eq!((link.mtu, link.up, link.mac), (1500, true, mac));
    assert!(k.addresses(t).is_empty());
}

#[test]
fn a_failed_reset_deletes_the_tap_and_refills() {
    let mut p = pool(1, 1);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let AcquireDecision::Pooled(t) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    k.inject(Fault::nth(SimOp::Reset, 1, libc::EIO));
    p.release(t).unwrap();
    run_blocking(&mut p, &mut k);
    assert!(!k.contains(t));
    assert_eq!(p.state_of(&t), None);
    let s = p.stats();
    assert_eq!((s.idle, s.deleted, s.created), (1, 1, 2));
}

#[test]
fn room_counts_creates_and_resets_in_flight() {
    let mut p = pool(2, 2);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let AcquireDecision::Pooled(a) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    let AcquireDecision::Pooled(b) = p.acquire(name("vm-b")).unwrap() else {
        panic!()
    };
    p.warm(); // two creates in flight, not yet run
    assert_eq!(p.release(a).unwrap(), ReleaseDecision::Delete);
    assert_eq!(p.release(b).unwrap(), ReleaseDecision::Delete);

    // A reset in flight takes room too: with one tap resetting and one
    // create in flight, a size-2 pool has no room for the other tap.
    let mut p = pool(2, 1);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let AcquireDecision::Pooled(a) = p.acquire(name("vm-c")).unwrap() else {
        panic!()
    };
    let AcquireDecision::Pooled(b) = p.acquire(name("vm-d")).unwrap() else {
        panic!()
    };
    assert_eq!(p.release(a).unwrap(), ReleaseDecision::Pooled);
    assert_eq!(p.state_of(&a), Some(TapState::Resetting));
    p.warm(); // one create: idle 0 + creating 1 + resetting 1 = 2
    assert_eq!(p.release(b).unwrap(), ReleaseDecision::Delete);
}

#[test]
fn bad_releases_change_nothing() {
    let mut p = pool(1, 1);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let before = p.stats();
    assert_eq!(
        p.release(name("tap-pool-0")),
        Err(PoolError::AlreadyIdle {
            name: name("tap-pool-0")
        })
    );
    assert_eq!(p.stats(), before);
    p.acquire(name("vm-a")).unwrap();
    p.acquire(name("vm-b")).unwrap(); // creating vm-b
    assert_eq!(
        p.release(name("vm-b")),
        Err(PoolError::NotLeased { name: name("vm-b") })
    );
    assert!(matches!(
        p.acquire(name("tap-pool-7")),
        Err(PoolError::FallbackIsPoolName { .. })
    ));
    assert!(matches!(
        p.acquire(name("vm-b")),
        Err(PoolError::NameInUse {
            state: TapState::CreatingForLease,
            ..
        })
    ));
}

#[test]
fn a_failed_delete_is_kept_and_retried_for_ever() {
    let mut p = pool(0, 1);
    let mut k = SimKernel::new();
    let AcquireDecision::Create(n, spec) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    let r = k.create_tap(n, &spec).map_err(PoolError::from);
    p.lease_created(n, &r);
    assert_eq!(p.release(n).unwrap(), ReleaseDecision::Delete);
    let err = PoolError::Kernel(KernelError::Delete {
        name: n,
        errno: Errno(libc::EIO),
        ext_ack: None,
    });
    p.delete_finished(n, &Err(err.clone()));
    assert_eq!(p.state_of(&n), Some(TapState::DeleteFailed));
    let mut delays = Vec::new();
    for _ in 0..3 {
        let Some(Command::RetryDeleteAfter { name: r, after }) = p.take_command() else {
            panic!()
        };
        assert_eq!(r, n);
        delays.push(after.as_millis());
        p.retry_delete(n);
        assert_eq!(p.take_command(), Some(Command::Delete { name: n }));
        p.delete_finished(n, &Err(err.clone()));
    }
    assert_eq!(delays, [100, 200, 400]);
    p.take_command();
    p.retry_delete(n);
    run_blocking(&mut p, &mut k);
    assert_eq!(p.state_of(&n), None);
    assert!(!k.contains(n));
}

fn link(name_: &str, index: u32, in_use: bool, group: u32) -> LinkInfo {
    LinkInfo {
        name: name(name_),
        index,
        kind: TunKind::Tap,
        persistent: true,
        owner: Some(0),
        group: None,
        master: None,
        mtu: 1500,
        up: true,
        in_use,
        device_group: group,
        mac: [2, 0, 0, 0, 0, index as u8],
    }
}

#[test]
fn reconcile_adopts_deletes_leaves_alone_and_reports_missing() {
    let mut p = Pool::new(PoolConfig {
        tap: TapSpec {
            device_group: Some(77),
            ..TapSpec::default()
        },
        ..config(2, 2)
    })
    .unwrap();
    let links = [
        link("tap-pool-1", 11, false, 77),
        link("tap-pool-2", 12, false, 77),
        link("tap-pool-3", 13, false, 77), // beyond the size: deleted
        link("tap-pool-9", 19, true, 77),  // open, unlisted: left alone
        link("tap-pool-4", 14, true, 77),  // a VM's, listed
        link("vm-old", 20, false, 77),     // a leaked fallback tap
        link("vm-live", 21, true, 77),     // a VM's fallback tap, unlisted
        link("other", 22, false, 0),       // not ours
    ];
    let used = [name("tap-pool-4"), name("vm-gone")];
    let r = p.reconcile(&used, &links);
    assert_eq!(r.adopted, [name("tap-pool-1"), name("tap-pool-2")]);
    assert_eq!(r.deleted, [name("vm-old"), name("tap-pool-3")]);
    assert_eq!(r.left_alone, [name("vm-live"), name("tap-pool-9")]);
    assert_eq!(r.missing, [name("vm-gone")]);
    assert_eq!(r.next_index, 10);
    assert_eq!(p.state_of(&name("tap-pool-4")), Some(TapState::Leased));
    assert_eq!(p.state_of(&name("other")), None);
    let mut cmds = Vec::new();
    while let Some(c) = p.take_command() {
        cmds.push(c);
    }
    assert_eq!(cmds.len(), 4);
    assert!(cmds.contains(&Command::Reset {
        name: name("tap-pool-1"),
        spec: *p.tap_spec(),
        mac: [2, 0, 0, 0, 0, 11]
    }));
    assert!(cmds.contains(&Command::Delete {
        name: name("vm-old")
    }));
}

#[test]
fn a_vanished_idle_tap_is_dropped_and_refilled() {
    let mut p = pool(2, 2);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let t = p.idle()[0];
    let index = k.tap(t).unwrap().index;
    k.remove_externally(t);
    p.link_removed(t, index + 1000); // another device of that name: ignored
    assert_eq!(p.state_of(&t), Some(TapState::Idle));
    p.link_removed(t, index);
    assert_eq!(p.state_of(&t), None);
    assert!(!p.idle().contains(&t));
    run_blocking(&mut p, &mut k);
    let s = p.stats();
    assert_eq!((s.idle, s.vanished), (2, 1));
}

#[test]
fn a_device_removed_while_being_created_never_goes_idle() {
    let mut p = pool(1, 1);
    p.warm();
    let n = creates(&mut p)[0];
    p.link_removed(n, 105);
    p.warm_created(n, created(5));
    assert_eq!(p.state_of(&n), None);
    assert_eq!(p.stats().idle, 0);
}

#[test]
fn drain_moves_leased_taps_out_of_the_group_then_deletes_it_at_once() {
    let mut p = Pool::new(PoolConfig {
        tap: TapSpec {
            device_group: Some(9),
            ..TapSpec::default()
        },
        ..config(3, 2)
    })
    .unwrap();
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let AcquireDecision::Pooled(held) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    p.drain();
    assert_eq!(p.take_command(), Some(Command::Ungroup { name: held }));
    let r = k.set_device_group(held.into(), 0).map_err(PoolError::from);
    p.ungrouped(held, &r);
    assert_eq!(p.take_command(), Some(Command::CheckGroup { group: 9 }));
    let members = k.list_group(9).map_err(PoolError::from);
    p.group_checked(&members);
    assert_eq!(p.take_command(), Some(Command::DeleteGroup { group: 9 }));
    p.group_deleted(&Ok(()));
    let rest = run_blocking(&mut p, &mut k);
    let report = drain_report(&rest).unwrap();
    assert_eq!(
        report,
        &DrainReport {
            deleted: 2,
            bulk: true,
            leased: 1,
            delete_failed: 0,
            foreign_in_group: vec![],
        }
    );
    // Warming has stopped; the held tap is untouched.
    p.warm();
    assert!(
        warm_report(&run_blocking(&mut p, &mut k))
            .unwrap()
            .shut_down
    );
    assert_eq!(p.state_of(&held), Some(TapState::Leased));
}

#[test]
fn drain_waits_for_creates_in_flight_and_deletes_one_by_one_without_a_group() {
    let mut p = pool(2, 2);
    let mut k = SimKernel::new();
    p.warm();
    let names = creates(&mut p);
    p.drain();
    assert_eq!(p.take_command(), None, "waits for the creates");
    for n in &names {
        let r = k
            .create_tap(*n, &TapSpec::default())
            .map_err(PoolError::from);
        p.warm_created(*n, r);
    }
    let rest = run_blocking(&mut p, &mut k);
    let report = drain_report(&rest).unwrap();
    assert_eq!((report.deleted, report.bulk), (2, false));
    assert!(k.taps().is_empty());
    assert!(warm_report(&rest).unwrap().shut_down);
}

#[test]
fn after_a_drain_releases_delete() {
    let mut p = pool(2, 2);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let AcquireDecision::Pooled(t) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    p.drain();
    run_blocking(&mut p, &mut k);
    assert_eq!(p.release(t).unwrap(), ReleaseDecision::Delete);
}

#[test]
fn size_zero_never_pools() {
    let mut p = pool(0, 1);
    p.warm();
    assert_eq!(
        p.take_command(),
        Some(Command::WarmFinished(WarmReport::default()))
    );
    let AcquireDecision::Create(n, _) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    p.lease_created(n, &created(1));
    assert_eq!(p.release(n).unwrap(), ReleaseDecision::Delete);
    p.delete_finished(n, &Ok(()));
    assert_eq!(p.take_command(), None, "no refill with size 0");
}

#[test]
fn index_exhaustion_is_a_typed_failure_and_not_retried() {
    let mut p = Pool::new(PoolConfig {
        prefix: "fourteen-bytes".into(),
        ..config(20, 20)
    })
    .unwrap();
    let mut k = SimKernel::new();
    p.warm();
    let rest = run_blocking(&mut p, &mut k);
    let report = warm_report(&rest).unwrap();
    assert_eq!(report.created.len(), 10);
    assert!(matches!(
        report.failure.as_ref().unwrap().error,
        PoolError::IndexExhausted { max_index: 9, .. }
    ));
    assert!(report.retry_in.is_none());
}

#[test]
fn device_group_zero_is_refused() {
    let err = Pool::new(PoolConfig {
        tap: TapSpec {
            device_group: Some(0),
            ..TapSpec::default()
        },
        ..PoolConfig::default()
    })
    .unwrap_err();
    assert_eq!(err, ConfigError::DefaultDeviceGroup);
}

#[test]
fn a_foreign_device_in_the_group_stops_the_bulk_delete() {
    let mut p = Pool::new(PoolConfig {
        tap: TapSpec {
            device_group: Some(9),
            ..TapSpec::default()
        },
        ..config(2, 2)
    })
    .unwrap();
    let mut k = SimKernel::new();
    k.add_foreign_device(name("eth9"), 9);
    p.warm();
    run_blocking(&mut p, &mut k);
    p.drain();
    let rest = run_blocking(&mut p, &mut k);
    let report = drain_report(&rest).unwrap();
    assert_eq!((report.deleted, report.bulk), (2, false));
    assert_eq!(report.foreign_in_group, [name("eth9")]);
    assert!(k.has_foreign_device(name("eth9")), "the NIC survived");
    assert!(k.taps().is_empty());
}

// Regressions from an independent review: each was a real interleaving.

fn grouped(size: usize) -> Pool {
    Pool::new(PoolConfig {
        tap: TapSpec {
            device_group: Some(9),
            ..TapSpec::default()
        },
        ..config(size, 2)
    })
    .unwrap()
}

fn in_group() -> TapSpec {
    TapSpec {
        device_group: Some(9),
        ..TapSpec::default()
    }
}

#[test]
fn a_tap_seed_left_alone_survives_the_drain() {
    let mut k = SimKernel::new();
    k.create_tap(name("tap-pool-0"), &in_group()).unwrap();
    k.create_tap(name("tap-pool-1"), &in_group()).unwrap();
    k.set_in_use(name("tap-pool-1"), true);
    let mut p = grouped(1);
    let r = p.reconcile(&[], &k.list_taps().unwrap());
    assert_eq!(r.left_alone, [name("tap-pool-1")]);
    run_blocking(&mut p, &mut k);
    p.drain();
    let rest = run_blocking(&mut p, &mut k);
    assert!(
        k.contains(name("tap-pool-1")),
        "a live VM's tap was deleted"
    );
    assert_eq!(
        drain_report(&rest).unwrap().foreign_in_group,
        [name("tap-pool-1")]
    );
}

#[test]
fn a_drain_with_nothing_of_its_own_in_the_group_sends_no_group_delete() {
    let mut k = SimKernel::new();
    let mut p = grouped(2);
    p.warm();
    run_blocking(&mut p, &mut k);
    p.drain();
    run_blocking(&mut p, &mut k);
    // Stopping drains again; by then another pool sharing the group has
    // made a tap, which a group delete would take.
    k.create_tap(name("other-0"), &in_group()).unwrap();
    p.drain();
    let mut commands = Vec::new();
    while let Some(c) = p.take_command() {
        commands.push(c);
    }
    assert!(
        !commands
            .iter()
            .any(|c| matches!(c, Command::CheckGroup { .. } | Command::DeleteGroup { .. })),
        "{commands:?}"
    );
    let report = drain_report(&commands).unwrap();
    assert_eq!((report.deleted, report.bulk), (0, false));
    assert!(k.contains(name("other-0")));
}

#[test]
fn a_tap_seeded_during_a_drain_survives_the_group_delete() {
    let mut k = SimKernel::new();
    k.create_tap(name("vm-a"), &in_group()).unwrap();
    k.set_in_use(name("vm-a"), true);
    let mut p = grouped(1);
    p.warm();
    run_blocking(&mut p, &mut k);
    p.drain();
    assert!(matches!(p.take_command(), Some(Command::CheckGroup { .. })));
    p.reconcile(&[name("vm-a")], &k.list_taps().unwrap());
    let members = k.list_group(9).map_err(PoolError::from);
    p.group_checked(&members);
    run_blocking(&mut p, &mut k);
    assert_eq!(p.state_of(&name("vm-a")), Some(TapState::Leased));
    assert!(k.contains(name("vm-a")));
}

#[test]
fn a_listing_older_than_a_create_does_not_forget_it() {
    let mut k = SimKernel::new();
    let mut p = pool(1, 1);
    p.warm();
    let snapshot = p.resync_snapshot();
    let dump = k.list_taps().unwrap();
    let Some(Command::Create { name: n, spec }) = p.take_command() else {
        panic!()
    };
    let r = k.create_tap(n, &spec).map_err(PoolError::from);
    p.warm_created(n, r);
    p.resync(&snapshot, &dump);
    assert_eq!(p.state_of(&n), Some(TapState::Idle));
}

#[test]
fn a_tap_removed_while_its_reset_succeeds_never_goes_idle() {
    let mut k = SimKernel::new();
    let mut p = pool(1, 1);
    p.warm();
    run_blocking(&mut p, &mut k);
    let AcquireDecision::Pooled(t) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    p.release(t).unwrap();
    let Some(Command::Reset { name: n, spec, mac }) = p.take_command() else {
        panic!()
    };
    let r = k.reset_tap(n.into(), &spec, mac).map_err(PoolError::from);
    let index = k.tap(n).unwrap().index;
    k.remove_externally(n);
    p.link_removed(n, index);
    p.reset_finished(n, &r);
    assert!(!p.idle().contains(&n));
    run_blocking(&mut p, &mut k);
    assert_eq!(p.stats().idle, 1, "refilled");
}

#[test]
fn a_fallback_that_vanished_before_its_create_reported_keeps_its_name() {
    let mut k = SimKernel::new();
    let mut p = pool(0, 1);
    let AcquireDecision::Create(a, spec) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    let r = k.create_tap(a, &spec).map_err(PoolError::from);
    let index = k.tap(a).unwrap().index;
    k.remove_externally(a);
    p.link_removed(a, index);
    p.lease_created(a, &r);
    assert!(
        p.acquire(name("vm-a")).is_err(),
        "name reused under its holder"
    );
    assert_eq!(p.release(a).unwrap(), ReleaseDecision::Vanished);
}

#[test]
fn fallback_creates_during_a_drain_do_not_hold_it_up() {
    let mut k = SimKernel::new();
    let mut p = grouped(2);
    p.warm();
    let Some(Command::Create { name: c0, spec: s0 }) = p.take_command() else {
        panic!()
    };
    let Some(Command::Create { name: c1, spec: s1 }) = p.take_command() else {
        panic!()
    };
    p.drain();
    // A miss during the drain: created outside the group.
    let AcquireDecision::Create(vm, vm_spec) = p.acquire(name("vm-0")).unwrap() else {
        panic!()
    };
    assert_eq!(vm_spec.device_group, None);
    let r = k.create_tap(c0, &s0).map_err(PoolError::from);
    p.warm_created(c0, r);
    let r = k.create_tap(c1, &s1).map_err(PoolError::from);
    p.warm_created(c1, r);
    // The drain moves on while vm-0's create is still in flight.
    let rest = run_blocking(&mut p, &mut k);
    let report = drain_report(&rest).expect("drain finished");
    assert_eq!((report.deleted, report.bulk), (2, true));
    let r = k.create_tap(vm, &vm_spec).map_err(PoolError::from);
    p.lease_created(vm, &r);
    assert_eq!(p.state_of(&vm), Some(TapState::Leased));
}

#[test]
fn a_refill_waits_until_the_pool_runs_low_then_fills_it() {
    // Size 16: a refill starts 16 / 8 = 2 taps short.
    let mut p = pool(16, 4);
    let mut k = SimKernel::new();
    p.warm();
    run_blocking(&mut p, &mut k);
    let lose = |p: &mut Pool, k: &mut SimKernel| {
        let t = p.idle()[0];
        let index = k.tap(t).unwrap().index;
        k.remove_externally(t);
        p.link_removed(t, index);
    };
    lose(&mut p, &mut k);
    assert_eq!(p.take_command(), None, "one short: no refill yet");
    // A holder that gives its tap back finds room (no create raced it).
    let AcquireDecision::Pooled(t) = p.acquire(name("vm-a")).unwrap() else {
        panic!()
    };
    assert_eq!(p.release(t), Ok(ReleaseDecision::Pooled));
    run_blocking(&mut p, &mut k);
    lose(&mut p, &mut k);
    run_blocking(&mut p, &mut k);
    assert_eq!(p.stats().idle, 16, "two short: refilled to the size");
}
