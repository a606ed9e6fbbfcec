//! The pool's bookkeeping: a plain state machine with no I/O.
//!
//! [`Pool`] takes what a message means and returns a decision ("hand out this
//! tap", "create this name", "delete that one"). It never sleeps, reads a
//! clock or makes a syscall; the actors carry its decisions out and report
//! back with [`Pool::lease_created`], [`Pool::warm_created`] and
//! [`Pool::delete_finished`]. Every name the pool has asked the kernel about is
//! in exactly one [`TapState`], which is what keeps a create and a delete of the
//! same name from ever being in flight together.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use thiserror::Error;

use crate::config::{ConfigError, Naming, PoolConfig};
use crate::kernel::{KernelError, TapSpec};
use crate::name::TapName;

/// Where a tap the pool knows stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TapState {
    /// Being created to fill the pool.
    CreatingForPool,
    /// Being created under a caller's fallback name, to be handed to it.
    CreatingForLease,
    /// Ready in the pool.
    Idle,
    /// Held by a caller.
    Leased,
    /// Being deleted.
    Deleting,
    /// Its delete failed; it still exists and is kept known so it can be
    /// removed later.
    DeleteFailed,
}

/// A request the pool refuses, or a kernel failure on its behalf.
///
/// A refused request changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PoolError {
    /// The fallback name is itself a pool name, which the pool may create later.
    #[error("fallback name {name} has the pool's prefix; pick a name outside the pool's")]
    FallbackIsPoolName {
        /// The fallback name given.
        name: TapName,
    },
    /// The pool already holds a tap of that name.
    #[error("the pool already holds a tap named {name} ({state:?})")]
    NameInUse {
        /// The name given.
        name: TapName,
        /// Where that tap stands.
        state: TapState,
    },
    /// The tap is already idle in the pool: a double release.
    #[error("tap {name} is already idle in the pool (released twice?)")]
    AlreadyIdle {
        /// The tap released.
        name: TapName,
    },
    /// The tap is still being created and was never handed out.
    #[error("tap {name} was never handed out: it is still being created")]
    NotLeased {
        /// The tap released.
        name: TapName,
    },
    /// The tap was already released and is being (or failed to be) deleted.
    #[error("tap {name} was already released ({state:?})")]
    AlreadyReleased {
        /// The tap released.
        name: TapName,
        /// Where that tap stands.
        state: TapState,
    },
    /// Every index that fits in a 15-byte name has been used in this run.
    #[error("pool names with prefix {prefix:?} are used up (the last index is {max_index})")]
    IndexExhausted {
        /// The pool's prefix.
        prefix: String,
        /// The last index that fits.
        max_index: u64,
    },
    /// The kernel refused.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The kernel actor is gone, so nothing can reach the kernel.
    #[error("the kernel actor is not running")]
    KernelUnavailable,
}

/// What to do for an `Acquire`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireDecision {
    /// Hand out this idle tap now.
    Pooled(TapName),
    /// The pool is empty: create the fallback name, then report back with
    /// [`Pool::lease_created`].
    Create(TapName),
}

/// What to do for a `Release`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseDecision {
    /// The tap is idle in the pool again; nothing to do.
    Pooled,
    /// Delete the tap, then report back with [`Pool::delete_finished`].
    Delete,
}

/// Why a warm-up stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmFailure {
    /// The name whose create failed, if one was tried.
    pub name: Option<TapName>,
    /// What failed.
    pub error: PoolError,
}

/// What a warm-up did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// The taps it created and put in the pool, in order of completion.
    pub created: Vec<TapName>,
    /// The first failure, after which it started no more creates.
    pub failure: Option<WarmFailure>,
    /// It stopped because the pool is shutting down.
    pub shut_down: bool,
}

/// What the actor should do next for a warm-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WarmStep {
    /// Names to create now (already reserved as [`TapState::CreatingForPool`]);
    /// report each back with [`Pool::warm_created`].
    pub create: Vec<TapName>,
    /// Set when the warm-up is over: the report for everyone who asked.
    pub finished: Option<WarmReport>,
}

/// What `Seed` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// The index the next pool name will use.
    pub next_index: u64,
}

/// The pool's counts and counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// The configured size.
    pub size: usize,
    /// Idle taps ready to hand out.
    pub idle: usize,
    /// Taps being created (for the pool or for a caller).
    pub creating: usize,
    /// Taps held by callers.
    pub leased: usize,
    /// Taps being deleted.
    pub deleting: usize,
    /// Taps whose delete failed and which still exist.
    pub delete_failed: usize,
    /// `Acquire`s served from the pool.
    pub hits: u64,
    /// `Acquire`s that had to create a tap.
    pub misses: u64,
    /// Taps created.
    pub created: u64,
    /// Taps deleted.
    pub deleted: u64,
    /// Kernel calls that failed.
    pub failures: u64,
    /// The index the next pool name will use.
    pub next_index: u64,
}

#[derive(Debug, Default)]
struct WarmRun {
    in_flight: usize,
    created: Vec<TapName>,
    failure: Option<WarmFailure>,
}

#[derive(Debug, Default)]
struct Counters {
    hits: u64,
    misses: u64,
    created: u64,
    deleted: u64,
    failures: u64,
}

/// The pool's bookkeeping. See the [module documentation](self).
#[derive(Debug)]
pub struct Pool {
    size: usize,
    create_window: usize,
    tap: TapSpec,
    naming: Naming,
    next: u64,
    taps: HashMap<TapName, TapState>,
    /// Idle taps, most recently pooled last (handed out LIFO).
    idle: Vec<TapName>,
    creating_for_pool: usize,
    warm: Option<WarmRun>,
    shutting_down: bool,
    counters: Counters,
}

impl Pool {
    /// Builds a pool, refusing a configuration that cannot name its taps.
    pub fn new(config: PoolConfig) -> Result<Pool, ConfigError> {
        let naming = Naming::new(&config.prefix)?;
        if config.create_window == 0 {
            return Err(ConfigError::ZeroCreateWindow);
        }
        Ok(Pool {
            size: config.size,
            create_window: config.create_window,
            tap: config.tap,
            naming,
            next: 0,
            taps: HashMap::with_capacity(config.size * 2),
            idle: Vec::with_capacity(config.size),
            creating_for_pool: 0,
            warm: None,
            shutting_down: false,
            counters: Counters::default(),
        })
    }

    /// How every tap is made.
    pub fn tap_spec(&self) -> &TapSpec {
        &self.tap
    }

    /// The pool's name prefix.
    pub fn prefix(&self) -> &str {
        self.naming.prefix()
    }

    /// The pool index of `name`, if it is a pool name.
    pub fn pool_index(&self, name: &TapName) -> Option<u64> {
        self.naming.index_of(name)
    }

    /// Where `name` stands, if the pool knows it.
    pub fn state_of(&self, name: &TapName) -> Option<TapState> {
        self.taps.get(name).copied()
    }

    /// Every name the pool knows, with its state.
    pub fn taps(&self) -> impl Iterator<Item = (TapName, TapState)> + '_ {
        self.taps.iter().map(|(n, s)| (*n, *s))
    }

    /// The idle taps, the next to be handed out last.
    pub fn idle(&self) -> &[TapName] {
        &self.idle
    }

    /// Whether the pool is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Starts the index above every pool index in `used`, and records every
    /// name in `used` as held by a caller, so that a fallback of that name is
    /// refused and its release is honoured. The index never goes down.
    pub fn seed(&mut self, used: &[TapName]) -> SeedReport {
        for &name in used {
            self.bump_index_past(&name);
            self.taps.entry(name).or_insert(TapState::Leased);
        }
        SeedReport {
            next_index: self.next,
        }
    }

    /// Decides an `Acquire`: the most recently pooled idle tap, or a create
    /// under `fallback`.
    pub fn acquire(&mut self, fallback: TapName) -> Result<AcquireDecision, PoolError> {
        if self.naming.index_of(&fallback).is_some() {
            return Err(PoolError::FallbackIsPoolName { name: fallback });
        }
        if let Some(&state) = self.taps.get(&fallback) {
            return Err(PoolError::NameInUse {
                name: fallback,
                state,
            });
        }
        if let Some(name) = self.idle.pop() {
            self.taps.insert(name, TapState::Leased);
            self.counters.hits += 1;
            return Ok(AcquireDecision::Pooled(name));
        }
        self.counters.misses += 1;
        self.taps.insert(fallback, TapState::CreatingForLease);
        Ok(AcquireDecision::Create(fallback))
    }

    /// Records how the create of a fallback tap ended. On failure the name is
    /// forgotten: the kernel left nothing behind.
    pub fn lease_created(&mut self, name: TapName, result: &Result<(), PoolError>) {
        debug_assert_eq!(self.taps.get(&name), Some(&TapState::CreatingForLease));
        match result {
            Ok(()) => {
                self.taps.insert(name, TapState::Leased);
                self.counters.created += 1;
            }
            Err(_) => {
                self.taps.remove(&name);
                self.counters.failures += 1;
            }
        }
    }

    /// Decides a `Release`. A leased pool tap goes back to idle while idle plus
    /// being created stays within the size; anything else is deleted. A name
    /// the pool does not know is deleted too (it may be a caller's own tap).
    pub fn release(&mut self, name: TapName) -> Result<ReleaseDecision, PoolError> {
        match self.taps.entry(name) {
            Entry::Occupied(mut e) => match *e.get() {
                TapState::Leased => {
                    let pooled = !self.shutting_down
                        && self.naming.index_of(&name).is_some()
                        && self.idle.len() + self.creating_for_pool < self.size;
                    if pooled {
                        e.insert(TapState::Idle);
                        self.idle.push(name);
                        Ok(ReleaseDecision::Pooled)
                    } else {
                        e.insert(TapState::Deleting);
                        Ok(ReleaseDecision::Delete)
                    }
                }
                TapState::Idle => Err(PoolError::AlreadyIdle { name }),
                TapState::CreatingForLease | TapState::CreatingForPool => {
                    Err(PoolError::NotLeased { name })
                }
                state @ (TapState::Deleting | TapState::DeleteFailed) => {
                    Err(PoolError::AlreadyReleased { name, state })
                }
            },
            Entry::Vacant(e) => {
                e.insert(TapState::Deleting);
                self.bump_index_past(&name);
                Ok(ReleaseDecision::Delete)
            }
        }
    }

    /// Records how a delete ended. Returns whether to start a refill (the
    /// delete succeeded and the pool is not shutting down).
    ///
    /// A device the kernel no longer has is forgotten either way; a delete
    /// that failed otherwise leaves the tap known as
    /// [`TapState::DeleteFailed`].
    pub fn delete_finished(&mut self, name: TapName, result: &Result<(), PoolError>) -> bool {
        debug_assert_eq!(self.taps.get(&name), Some(&TapState::Deleting));
        match result {
            Ok(()) => {
                self.taps.remove(&name);
                self.counters.deleted += 1;
                !self.shutting_down && self.size > 0
            }
            Err(PoolError::Kernel(KernelError::NoSuchDevice { .. })) => {
                self.taps.remove(&name);
                self.counters.failures += 1;
                false
            }
            Err(_) => {
                self.taps.insert(name, TapState::DeleteFailed);
                self.counters.failures += 1;
                false
            }
        }
    }

    /// Starts a warm-up, or joins the one under way (several `Warm`s coalesce
    /// into one). Returns the names to create now; `finished` is set when there
    /// is nothing to do at all.
    pub fn warm(&mut self) -> WarmStep {
        if self.warm.is_none() {
            self.warm = Some(WarmRun::default());
        }
        self.advance_warm()
    }

    /// Records how a warm-up create ended and says what to do next.
    pub fn warm_created(&mut self, name: TapName, result: Result<(), PoolError>) -> WarmStep {
        debug_assert_eq!(self.taps.get(&name), Some(&TapState::CreatingForPool));
        self.creating_for_pool -= 1;
        let run = self
            .warm
            .as_mut()
            .expect("a warm-up create finished outside a warm-up");
        run.in_flight -= 1;
        match result {
            Ok(()) => {
                self.taps.insert(name, TapState::Idle);
                self.idle.push(name);
                self.counters.created += 1;
                run.created.push(name);
            }
            Err(error) => {
                self.taps.remove(&name);
                self.counters.failures += 1;
                run.failure.get_or_insert(WarmFailure {
                    name: Some(name),
                    error,
                });
            }
        }
        self.advance_warm()
    }

    /// Stops warming for good: no new creates start; those in flight finish.
    pub fn shut_down(&mut self) {
        self.shutting_down = true;
    }

    /// The pool's counts and counters.
    pub fn stats(&self) -> PoolStats {
        let mut s = PoolStats {
            size: self.size,
            hits: self.counters.hits,
            misses: self.counters.misses,
            created: self.counters.created,
            deleted: self.counters.deleted,
            failures: self.counters.failures,
            next_index: self.next,
            ..PoolStats::default()
        };
        for state in self.taps.values() {
            match state {
                TapState::CreatingForPool | TapState::CreatingForLease => s.creating += 1,
                TapState::Idle => s.idle += 1,
                TapState::Leased => s.leased += 1,
                TapState::Deleting => s.deleting += 1,
                TapState::DeleteFailed => s.delete_failed += 1,
            }
        }
        s
    }

    fn bump_index_past(&mut self, name: &TapName) {
        if let Some(index) = self.naming.index_of(name) {
            self.next = self.next.max(index.saturating_add(1));
        }
    }

    /// Fills the warm-up's window with creates while the pool has room, then
    /// ends the run if nothing is left in flight.
    fn advance_warm(&mut self) -> WarmStep {
        let mut step = WarmStep::default();
        let Some(run) = self.warm.as_mut() else {
            return step;
        };
        while run.failure.is_none()
            && !self.shutting_down
            && run.in_flight < self.create_window
            && self.idle.len() + self.creating_for_pool < self.size
        {
            let Some(name) = self.naming.name(self.next) else {
                run.failure = Some(WarmFailure {
                    name: None,
                    error: PoolError::IndexExhausted {
                        prefix: self.naming.prefix().to_owned(),
                        max_index: self.naming.max_index(),
                    },
                });
                break;
            };
            self.next += 1;
            if self.taps.contains_key(&name) {
                // A caller holds this pool name from an earlier run (seeded or
                // released unknown); skip it rather than collide.
                continue;
            }
            self.taps.insert(name, TapState::CreatingForPool);
            self.creating_for_pool += 1;
            run.in_flight += 1;
            step.create.push(name);
        }
        if run.in_flight == 0 {
            let run = self.warm.take().expect("checked above");
            step.finished = Some(WarmReport {
                created: run.created,
                failure: run.failure,
                shut_down: self.shutting_down,
            });
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Errno;

    fn name(s: &str) -> TapName {
        TapName::new(s).unwrap()
    }

    fn pool(size: usize, window: usize) -> Pool {
        Pool::new(PoolConfig {
            size,
            create_window: window,
            ..PoolConfig::default()
        })
        .unwrap()
    }

    fn fail(n: TapName) -> KernelError {
        KernelError::Create {
            name: n,
            step: crate::kernel::CreateStep::SetIff,
            errno: Errno(libc::ENOMEM),
        }
    }

    /// Runs a warm-up to its end, creating successfully.
    fn warm_fully(p: &mut Pool) -> WarmReport {
        let mut step = p.warm();
        loop {
            if let Some(r) = step.finished.take() {
                return r;
            }
            let mut next = WarmStep::default();
            for n in step.create {
                let s = p.warm_created(n, Ok(()));
                next.create.extend(s.create);
                next.finished = next.finished.or(s.finished);
            }
            step = next;
        }
    }

    #[test]
    fn warm_fills_to_size_and_never_more() {
        let mut p = pool(3, 2);
        let step = p.warm();
        assert_eq!(step.create, [name("tap-pool-0"), name("tap-pool-1")]);
        // A second Warm joins: nothing new, not finished.
        assert_eq!(p.warm(), WarmStep::default());
        let s = p.warm_created(name("tap-pool-0"), Ok(()));
        assert_eq!(s.create, [name("tap-pool-2")]);
        assert!(s.finished.is_none());
        assert!(p.warm_created(name("tap-pool-1"), Ok(())).create.is_empty());
        let done = p.warm_created(name("tap-pool-2"), Ok(())).finished.unwrap();
        assert_eq!(done.created.len(), 3);
        assert_eq!(p.stats().idle, 3);
        // Full: another Warm finishes at once with nothing done.
        assert_eq!(p.warm().finished, Some(WarmReport::default()));
    }

    #[test]
    fn warm_stops_at_first_failure_and_reserves_no_more() {
        let mut p = pool(4, 1);
        let step = p.warm();
        assert_eq!(step.create, [name("tap-pool-0")]);
        let s = p.warm_created(name("tap-pool-0"), Ok(()));
        assert_eq!(s.create, [name("tap-pool-1")]);
        let s = p.warm_created(name("tap-pool-1"), Err(fail(name("tap-pool-1")).into()));
        let report = s.finished.unwrap();
        assert_eq!(report.created, [name("tap-pool-0")]);
        assert_eq!(report.failure.unwrap().name, Some(name("tap-pool-1")));
        let st = p.stats();
        assert_eq!((st.idle, st.creating, st.failures), (1, 0, 1));
        // The failed index is not reused.
        assert_eq!(p.warm().create, [name("tap-pool-2")]);
    }

    #[test]
    fn acquire_is_lifo_then_falls_back() {
        let mut p = pool(2, 2);
        warm_fully(&mut p);
        let a = p.acquire(name("vm-a")).unwrap();
        let b = p.acquire(name("vm-b")).unwrap();
        assert_eq!(a, AcquireDecision::Pooled(name("tap-pool-1")));
        assert_eq!(b, AcquireDecision::Pooled(name("tap-pool-0")));
        assert_eq!(
            p.acquire(name("vm-c")).unwrap(),
            AcquireDecision::Create(name("vm-c"))
        );
        p.lease_created(name("vm-c"), &Ok(()));
        let st = p.stats();
        assert_eq!((st.hits, st.misses, st.leased, st.created), (2, 1, 3, 3));
    }

    #[test]
    fn release_pools_while_room_counting_creates_in_flight() {
        let mut p = pool(2, 2);
        warm_fully(&mut p);
        let AcquireDecision::Pooled(t1) = p.acquire(name("vm-a")).unwrap() else {
            panic!()
        };
        let AcquireDecision::Pooled(t0) = p.acquire(name("vm-b")).unwrap() else {
            panic!()
        };
        // A refill is in flight for both slots.
        assert_eq!(p.warm().create.len(), 2);
        assert_eq!(p.release(t1).unwrap(), ReleaseDecision::Delete);
        assert!(p.delete_finished(t1, &Ok(())));
        p.warm_created(name("tap-pool-2"), Ok(()));
        // One create still in flight, one idle: full.
        assert_eq!(p.release(t0).unwrap(), ReleaseDecision::Delete);
        p.warm_created(name("tap-pool-3"), Ok(()));
        assert_eq!(p.stats().idle, 2);
    }

    #[test]
    fn bad_releases_change_nothing() {
        let mut p = pool(1, 1);
        warm_fully(&mut p);
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
    }

    #[test]
    fn fallback_names_in_use_or_pool_shaped_are_refused() {
        let mut p = pool(1, 1);
        warm_fully(&mut p);
        assert!(matches!(
            p.acquire(name("tap-pool-7")),
            Err(PoolError::FallbackIsPoolName { .. })
        ));
        p.acquire(name("vm-a")).unwrap(); // hit
        p.acquire(name("vm-a")).unwrap(); // miss: creating vm-a
        assert_eq!(
            p.acquire(name("vm-a")),
            Err(PoolError::NameInUse {
                name: name("vm-a"),
                state: TapState::CreatingForLease
            })
        );
    }

    #[test]
    fn seed_starts_above_used_pool_indices_and_ignores_others() {
        let mut p = pool(2, 2);
        let used = [name("tap-pool-7"), name("vm-x"), name("tap-pool-03")];
        assert_eq!(p.seed(&used).next_index, 8);
        assert_eq!(p.warm().create, [name("tap-pool-8"), name("tap-pool-9")]);
        // Never goes down.
        assert_eq!(p.seed(&[name("tap-pool-1")]).next_index, 10);
        // Seeded names are held: a release deletes or pools them.
        assert_eq!(p.state_of(&name("vm-x")), Some(TapState::Leased));
    }

    #[test]
    fn failed_delete_is_remembered() {
        let mut p = pool(0, 1);
        assert_eq!(
            p.acquire(name("vm-a")).unwrap(),
            AcquireDecision::Create(name("vm-a"))
        );
        p.lease_created(name("vm-a"), &Ok(()));
        assert_eq!(p.release(name("vm-a")).unwrap(), ReleaseDecision::Delete);
        let err = KernelError::Delete {
            name: name("vm-a"),
            errno: Errno(libc::EIO),
            ext_ack: None,
        };
        assert!(!p.delete_finished(name("vm-a"), &Err(err.into())));
        assert_eq!(p.state_of(&name("vm-a")), Some(TapState::DeleteFailed));
        assert_eq!(p.stats().delete_failed, 1);
    }

    #[test]
    fn size_zero_never_pools() {
        let mut p = pool(0, 1);
        assert_eq!(p.warm().finished, Some(WarmReport::default()));
        assert_eq!(
            p.acquire(name("vm-a")).unwrap(),
            AcquireDecision::Create(name("vm-a"))
        );
        p.lease_created(name("vm-a"), &Ok(()));
        assert_eq!(p.release(name("vm-a")).unwrap(), ReleaseDecision::Delete);
        assert!(!p.delete_finished(name("vm-a"), &Ok(())));
    }

    #[test]
    fn index_exhaustion_is_a_typed_failure() {
        let mut p = Pool::new(PoolConfig {
            size: 20,
            prefix: "fourteen-bytes".into(),
            create_window: 20,
            ..PoolConfig::default()
        })
        .unwrap();
        let step = p.warm();
        assert_eq!(step.create.len(), 10);
        let mut last = None;
        for n in step.create {
            last = p.warm_created(n, Ok(())).finished;
        }
        let report = last.unwrap();
        assert!(matches!(
            report.failure.unwrap().error,
            PoolError::IndexExhausted { max_index: 9, .. }
        ));
    }

    #[test]
    fn shutdown_stops_warming() {
        let mut p = pool(4, 1);
        let step = p.warm();
        p.shut_down();
        let done = p.warm_created(step.create[0], Ok(())).finished.unwrap();
        assert!(done.shut_down);
        assert_eq!(done.created.len(), 1);
        assert_eq!(p.stats().creating, 0);
    }
}
