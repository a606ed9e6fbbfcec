//! Helpers for the pool's unit tests: a pool warmed on the simulated kernel,
//! and ways to drive it by hand (take the commands, carry one out now, report
//! an outcome later or out of order).

use std::time::Instant;

use super::{
    Answer, Command, DrainReport, Event, Lease, Pool, PoolError, WarmReport, run_blocking,
};
use crate::config::PoolConfig;
use crate::kernel::{Outcome, TapSpec};
use crate::name::TapName;
use crate::sim::SimKernel;

/// The device group of the pools that [`grouped`] configures.
pub(super) const GROUP: u32 = 9;

pub(super) fn name(s: &str) -> TapName {
    TapName::new(s).unwrap()
}

pub(super) fn config(size: usize) -> PoolConfig {
    PoolConfig {
        size,
        ..PoolConfig::default()
    }
}

/// A configuration of `size` with at most `window` creates in flight.
pub(super) fn windowed(size: usize, window: usize) -> PoolConfig {
    PoolConfig {
        create_window: window,
        ..config(size)
    }
}

/// The spec of a tap in device group [`GROUP`].
pub(super) fn in_group() -> TapSpec {
    TapSpec {
        device_group: Some(GROUP),
        ..TapSpec::default()
    }
}

/// A configuration of `size` whose taps go in device group [`GROUP`], with
/// two creates in flight at most.
pub(super) fn grouped(size: usize) -> PoolConfig {
    PoolConfig {
        tap: in_group(),
        ..windowed(size, 2)
    }
}

/// A pool of `config` and a fresh simulated kernel, not warmed.
pub(super) fn fresh(config: PoolConfig) -> (Pool, SimKernel, Instant) {
    (Pool::new(config).unwrap(), SimKernel::new(), Instant::now())
}

/// A pool of `config`, warmed on a fresh simulated kernel.
pub(super) fn warmed_with(config: PoolConfig) -> (Pool, SimKernel, Instant) {
    let (mut pool, mut kernel, now) = fresh(config);
    pool.warm(now);
    run_blocking(&mut pool, &mut kernel, now);
    (pool, kernel, now)
}

/// A pool of `size`, warmed on a fresh simulated kernel.
pub(super) fn warmed(size: usize) -> (Pool, SimKernel, Instant) {
    warmed_with(config(size))
}

/// Carries out every call the pool asks for; the answers owed.
pub(super) fn run(p: &mut Pool, k: &mut SimKernel, now: Instant) -> Vec<Event> {
    run_blocking(p, k, now)
}

/// Every command the pool asks for now, in order, none carried out: the test
/// carries them out (or not) in the order it needs.
pub(super) fn take_commands(p: &mut Pool) -> Vec<Command> {
    std::iter::from_fn(|| p.poll_batch())
        .flat_map(|b| b.commands)
        .collect()
}

/// The one command the pool asks for now.
pub(super) fn take_one(p: &mut Pool) -> Command {
    let mut commands = take_commands(p);
    match commands.len() {
        1 => commands.remove(0),
        _ => panic!("expected one command, got {commands:?}"),
    }
}

/// Carries `command` out on the kernel now, and returns its outcome for the
/// test to report when it likes (late, or out of order).
pub(super) fn outcome(k: &mut SimKernel, command: &Command) -> Outcome {
    command.op.run(k)
}

/// Carries `command` out on the kernel now and reports its outcome at once.
pub(super) fn execute(p: &mut Pool, k: &mut SimKernel, command: &Command, now: Instant) {
    let outcome = outcome(k, command);
    p.complete(command.id, outcome, now);
}

/// Every answer the pool owes now, without carrying out any command.
pub(super) fn events(p: &mut Pool) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

/// The report of the (first) warm-up among `events`.
pub(super) fn warm_report(events: &[Event]) -> Option<&WarmReport> {
    events.iter().find_map(|e| match e {
        Event::Warmed { report, .. } => Some(report),
        _ => None,
    })
}

/// The report of the (first) drain among `events`.
pub(super) fn drain_report(events: &[Event]) -> Option<&DrainReport> {
    events.iter().find_map(|e| match e {
        Event::Drained { report, .. } => Some(report),
        _ => None,
    })
}

/// Removes `tap` from the kernel behind the pool's back and tells the pool,
/// as the link watcher would; the index it had.
pub(super) fn remove_behind_its_back(
    p: &mut Pool,
    k: &SimKernel,
    tap: TapName,
    now: Instant,
) -> u32 {
    let index = k.tap(tap).expect("the kernel has the tap").index;
    k.remove_externally(tap);
    p.link_removed(tap, index, now);
    index
}

/// An `Acquire` that must be answered at once.
pub(super) fn acquire_now(p: &mut Pool, fallback: &str, now: Instant) -> Result<Lease, PoolError> {
    match p.acquire(name(fallback), now) {
        Answer::Now(result) => result,
        Answer::Later(_) => panic!("expected an answer at once"),
    }
}

/// An `Acquire` that creates its fallback tap; the tap's name.
pub(super) fn acquire_created(
    p: &mut Pool,
    k: &mut SimKernel,
    fallback: &str,
    now: Instant,
) -> TapName {
    let Answer::Later(request) = p.acquire(name(fallback), now) else {
        panic!("expected a create")
    };
    match &run(p, k, now)[..] {
        [
            Event::Acquired {
                request: r,
                result: Ok(lease),
            },
        ] if *r == request => lease.name,
        other => panic!("{other:?}"),
    }
}

impl Pool {
    /// Releases the live lease on `tap`, as its holder would; a tap no
    /// live lease holds gets a made-up token (refused).
    pub(super) fn release_tap(
        &mut self,
        tap: TapName,
        now: Instant,
    ) -> Answer<Result<super::Released, PoolError>> {
        let token = self
            .taps
            .get(&tap)
            .and_then(|t| t.lease)
            .unwrap_or(super::LeaseToken::from_u128(u128::MAX));
        self.release(token, now)
    }
}

/// A lease as the tests compare it: its token blanked (tokens are random).
pub(super) fn lease(name: TapName, source: super::LeaseSource) -> Lease {
    Lease {
        name,
        token: super::LeaseToken::from_u128(0),
        source,
    }
}

/// `lease` with its token blanked.
pub(super) fn untoken_lease(lease: Lease) -> Lease {
    self::lease(lease.name, lease.source)
}

/// `events` with every lease's token blanked.
pub(super) fn untoken(events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .map(|e| match e {
            Event::Acquired {
                request,
                result: Ok(l),
            } => Event::Acquired {
                request,
                result: Ok(untoken_lease(l)),
            },
            other => other,
        })
        .collect()
}
