//! The pool's bookkeeping: a plain state machine with no I/O.
//!
//! [`Pool`] takes what a message means and returns a decision ("hand out this
//! tap", "create this name", "delete that one"). It never sleeps, reads a
//! clock or makes a syscall. Work nobody waits for in person (warming up,
//! resetting a released tap, retrying, draining) is queued as [`Command`]s
//! that the actors take with [`Pool::take_command`], carry out, and report
//! back. Every name the pool has asked the kernel about is in exactly one
//! [`TapState`], which is what keeps a create and a delete of the same name
//! from ever being in flight together.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use thiserror::Error;

use crate::config::{Backoff, ConfigError, Naming, PoolConfig};
use crate::kernel::{CreatedTap, KernelError, LinkInfo, TapSpec, TunKind};
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
    /// Released, and being put back to its pooled configuration before it
    /// goes idle.
    Resetting,
    /// Being deleted.
    Deleting,
    /// Idle when the pool was drained: waiting for the bulk delete.
    Draining,
    /// Its delete failed; it still exists, is never handed out, and its
    /// delete is retried.
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
    /// The tap is already back in the pool: a double release.
    #[error("tap {name} is already back in the pool (released twice?)")]
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
    /// The pool stopped before the request could finish; nothing of it
    /// remains (a tap made for it was deleted).
    #[error("the tap pool stopped before the request finished")]
    Stopped,
}

/// What to do for an `Acquire`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireDecision {
    /// Hand out this idle tap now.
    Pooled(TapName),
    /// The pool is empty: create the fallback name with this spec, then
    /// report back with [`Pool::lease_created`].
    Create(TapName, TapSpec),
}

/// What to do for a `Release`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseDecision {
    /// The tap is going back to the pool (after a reset, queued as a
    /// [`Command`]); nothing to wait for.
    Pooled,
    /// Delete the tap, then report back with [`Pool::delete_finished`].
    Delete,
    /// The tap was removed from the kernel behind the pool's back while it
    /// was leased; the pool has forgotten it and there is nothing to do.
    Vanished,
}

/// Work the pool asks the actors to do. Each kernel command is reported back
/// through the method its documentation names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create a pool tap; report with [`Pool::warm_created`].
    Create {
        /// The name to create.
        name: TapName,
        /// How to make it.
        spec: TapSpec,
    },
    /// Put a released tap back to its pooled configuration; report with
    /// [`Pool::reset_finished`].
    Reset {
        /// The tap.
        name: TapName,
        /// Its pooled configuration.
        spec: TapSpec,
        /// The Ethernet address it was created with.
        mac: [u8; 6],
    },
    /// Delete a tap; report with [`Pool::delete_finished`].
    Delete {
        /// The tap.
        name: TapName,
    },
    /// Move a leased tap out of the pool's device group before the group is
    /// deleted; report with [`Pool::ungrouped`].
    Ungroup {
        /// The tap.
        name: TapName,
    },
    /// Name every device in the pool's group, to make sure the group delete
    /// would take only the pool's own; report with [`Pool::group_checked`].
    CheckGroup {
        /// The group.
        group: u32,
    },
    /// Delete every device in the pool's group in one request; report with
    /// [`Pool::group_deleted`].
    DeleteGroup {
        /// The group.
        group: u32,
    },
    /// Call [`Pool::retry_warm`] after this long.
    RetryWarmAfter(Duration),
    /// Call [`Pool::retry_delete`] for `name` after `after`.
    RetryDeleteAfter {
        /// The tap whose delete failed.
        name: TapName,
        /// How long to wait.
        after: Duration,
    },
    /// A warm-up ended: answer everyone waiting on a `Warm`.
    WarmFinished(WarmReport),
    /// The drain ended: answer everyone waiting on a `Drain`.
    DrainFinished(DrainReport),
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
    /// When the failure will be retried, if it will.
    pub retry_in: Option<Duration>,
}

/// What `Seed` found and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// The index the next pool name will use.
    pub next_index: u64,
    /// Pool taps from an earlier run, idle in the kernel, now in the pool
    /// (after a reset).
    pub adopted: Vec<TapName>,
    /// The pool's taps from an earlier run that nobody holds, now being
    /// deleted: pool taps beyond the pool's size, and fallback taps (in the
    /// pool's device group) that no process has open.
    pub deleted: Vec<TapName>,
    /// The pool's taps that a process has open but the caller did not list:
    /// left alone (a live VM must not lose its device); their indices are
    /// skipped.
    pub left_alone: Vec<TapName>,
    /// Names the caller listed that the kernel does not have.
    pub missing: Vec<TapName>,
}

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Idle taps deleted.
    pub deleted: usize,
    /// Whether they went in one group delete.
    pub bulk: bool,
    /// Taps still held by callers, left to them.
    pub leased: usize,
    /// Taps whose delete failed; still known and retried.
    pub delete_failed: usize,
    /// Devices in the pool's group that the drain must not delete (someone
    /// else's, or taps held or open); the group was then not deleted in bulk
    /// (that would take them too).
    pub foreign_in_group: Vec<TapName>,
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
    /// Released taps being reset before they go idle.
    pub resetting: usize,
    /// Taps being deleted (or waiting for a drain's bulk delete).
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
    /// Idle or leased taps that were removed from the kernel behind the
    /// pool's back.
    pub vanished: u64,
    /// The index the next pool name will use.
    pub next_index: u64,
}

#[derive(Clone, Copy, Debug)]
struct Tap {
    state: TapState,
    /// The interface index, once created (0 before).
    index: u32,
    mac: [u8; 6],
    /// Whether the device is in the pool's device group.
    grouped: bool,
    /// Failed deletes in a row.
    delete_attempts: u32,
    /// Removed from the kernel behind the pool's back while leased.
    vanished: bool,
}

impl Tap {
    fn new(state: TapState) -> Tap {
        Tap {
            state,
            index: 0,
            mac: [0; 6],
            grouped: false,
            delete_attempts: 0,
            vanished: false,
        }
    }
}

#[derive(Debug, Default)]
struct WarmRun {
    created: Vec<TapName>,
    failure: Option<WarmFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DrainPhase {
    /// Waiting for creates and resets in flight.
    Settling,
    /// Moving these leased taps out of the group.
    Ungrouping(HashSet<TapName>),
    /// Checking that the group holds only the pool's devices.
    CheckingGroup,
    /// The group delete is in flight.
    GroupDeleting,
    /// One delete per tap; these are still in flight.
    PerTap(HashSet<TapName>),
}

#[derive(Debug)]
struct DrainRun {
    phase: DrainPhase,
    ungroup_failed: bool,
    report: DrainReport,
}

#[derive(Debug, Default)]
struct Counters {
    hits: u64,
    misses: u64,
    created: u64,
    deleted: u64,
    failures: u64,
    vanished: u64,
}

/// The pool's bookkeeping. See the [module documentation](self).
#[derive(Debug)]
pub struct Pool {
    size: usize,
    create_window: usize,
    reset_on_release: bool,
    warm_retry: Backoff,
    delete_retry: Backoff,
    tap: TapSpec,
    naming: Naming,
    next: u64,
    taps: HashMap<TapName, Tap>,
    /// Idle taps, most recently pooled last (handed out LIFO).
    idle: Vec<TapName>,
    /// Pool creates in flight (all of them belong to the warm run, if any).
    creating_for_pool: usize,
    resetting: usize,
    warm: Option<WarmRun>,
    warm_attempts: u32,
    warm_retry_scheduled: bool,
    drain: Option<DrainRun>,
    shutting_down: bool,
    /// Devices removed (by index) while a create or reset of them was in
    /// flight: the call may still report success.
    removed_in_flight: HashMap<TapName, u32>,
    commands: VecDeque<Command>,
    counters: Counters,
}

impl Pool {
    /// Builds a pool, refusing a configuration that cannot name its taps.
    pub fn new(config: PoolConfig) -> Result<Pool, ConfigError> {
        let naming = Naming::new(&config.prefix)?;
        if config.create_window == 0 {
            return Err(ConfigError::ZeroCreateWindow);
        }
        if config.tap.device_group == Some(0) {
            return Err(ConfigError::DefaultDeviceGroup);
        }
        Ok(Pool {
            size: config.size,
            create_window: config.create_window,
            reset_on_release: config.reset_on_release,
            warm_retry: config.warm_retry,
            delete_retry: config.delete_retry,
            tap: config.tap,
            naming,
            next: 0,
            taps: HashMap::with_capacity(config.size * 2),
            idle: Vec::with_capacity(config.size),
            creating_for_pool: 0,
            resetting: 0,
            warm: None,
            warm_attempts: 0,
            warm_retry_scheduled: false,
            drain: None,
            shutting_down: false,
            removed_in_flight: HashMap::new(),
            commands: VecDeque::new(),
            counters: Counters::default(),
        })
    }

    /// How the pool's taps are made.
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
        self.taps.get(name).map(|t| t.state)
    }

    /// Every name the pool knows, with its state.
    pub fn taps(&self) -> impl Iterator<Item = (TapName, TapState)> + '_ {
        self.taps.iter().map(|(n, t)| (*n, t.state))
    }

    /// The idle taps, the next to be handed out last.
    pub fn idle(&self) -> &[TapName] {
        &self.idle
    }

    /// Whether the pool is shutting down (drained or draining).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// The next piece of queued work, if any.
    pub fn take_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The spec of a tap created now: without the device group once a drain
    /// has begun, so that the drain's group delete cannot take it.
    fn create_spec(&self) -> TapSpec {
        let mut spec = self.tap;
        if self.drain.is_some() {
            spec.device_group = None;
        }
        spec
    }

    fn occupancy(&self) -> usize {
        self.idle.len() + self.creating_for_pool + self.resetting
    }

    fn has_room(&self) -> bool {
        !self.shutting_down && self.occupancy() < self.size
    }

    /// Whether `link` is one of the pool's: a pool name, or a member of the
    /// pool's device group.
    fn is_ours(&self, link: &LinkInfo) -> bool {
        self.naming.index_of(&link.name).is_some()
            || self
                .tap
                .device_group
                .is_some_and(|g| g == link.device_group)
    }

    /// Reconciles with what the kernel holds after a restart: `used` is every
    /// tap the caller's VMs hold, `links` a fresh [`LinkInfo`] dump. Starts the
    /// index above every pool index seen; records `used` names as held;
    /// adopts idle pool taps up to the size (queuing a reset), deletes the
    /// pool's other taps nobody holds, and leaves alone any a process has
    /// open. Names the pool already knows are not touched.
    pub fn reconcile(&mut self, used: &[TapName], links: &[LinkInfo]) -> SeedReport {
        let mut report = SeedReport::default();
        let used_set: HashSet<TapName> = used.iter().copied().collect();
        for name in used {
            self.bump_index_past(name);
        }
        let mut links: Vec<&LinkInfo> = links.iter().collect();
        links.sort_by_key(|l| (self.naming.index_of(&l.name), l.name));
        for link in &links {
            if self.is_ours(link) {
                self.bump_index_past(&link.name);
            }
        }
        let by_name: HashMap<TapName, &LinkInfo> = links.iter().map(|l| (l.name, *l)).collect();
        for &name in used {
            if self.taps.contains_key(&name) {
                continue;
            }
            match by_name.get(&name) {
                Some(link) => {
                    self.taps.insert(
                        name,
                        Tap {
                            index: link.index,
                            mac: link.mac,
                            grouped: self.tap.device_group == Some(link.device_group),
                            ..Tap::new(TapState::Leased)
                        },
                    );
                }
                None => report.missing.push(name),
            }
        }
        for link in links {
            if used_set.contains(&link.name)
                || self.taps.contains_key(&link.name)
                || !self.is_ours(link)
            {
                continue;
            }
            if link.in_use {
                report.left_alone.push(link.name);
                continue;
            }
            let mut tap = Tap {
                index: link.index,
                mac: link.mac,
                grouped: self.tap.device_group == Some(link.device_group),
                ..Tap::new(TapState::Deleting)
            };
            // Only a tap made the way this pool makes them: a VMM could not
            // open one with another owner or group, and a reset cannot
            // change those.
            let adoptable = self.naming.index_of(&link.name).is_some()
                && link.kind == TunKind::Tap
                && link.persistent
                && link.group == self.tap.group
                && self.tap.owner.is_none_or(|o| link.owner == Some(o));
            if adoptable && self.has_room() {
                report.adopted.push(link.name);
                if self.reset_on_release {
                    tap.state = TapState::Resetting;
                    self.resetting += 1;
                    self.commands.push_back(Command::Reset {
                        name: link.name,
                        spec: self.tap,
                        mac: link.mac,
                    });
                } else {
                    tap.state = TapState::Idle;
                    self.idle.push(link.name);
                }
            } else {
                report.deleted.push(link.name);
                self.commands.push_back(Command::Delete { name: link.name });
            }
            self.taps.insert(link.name, tap);
        }
        report.next_index = self.next;
        report
    }

    /// Decides an `Acquire`: the most recently pooled idle tap, or a create
    /// under `fallback`.
    pub fn acquire(&mut self, fallback: TapName) -> Result<AcquireDecision, PoolError> {
        if self.naming.index_of(&fallback).is_some() {
            return Err(PoolError::FallbackIsPoolName { name: fallback });
        }
        if let Some(tap) = self.taps.get(&fallback) {
            return Err(PoolError::NameInUse {
                name: fallback,
                state: tap.state,
            });
        }
        if let Some(name) = self.idle.pop() {
            if let Some(tap) = self.taps.get_mut(&name) {
                tap.state = TapState::Leased;
            }
            self.counters.hits += 1;
            return Ok(AcquireDecision::Pooled(name));
        }
        self.counters.misses += 1;
        let spec = self.create_spec();
        self.taps.insert(
            fallback,
            Tap {
                grouped: spec.device_group.is_some(),
                ..Tap::new(TapState::CreatingForLease)
            },
        );
        Ok(AcquireDecision::Create(fallback, spec))
    }

    /// Records how the create of a fallback tap ended. On failure the name is
    /// forgotten: the kernel left nothing behind.
    pub fn lease_created(&mut self, name: TapName, result: &Result<CreatedTap, PoolError>) {
        let vanished = self.removed_in_flight.remove(&name);
        match result {
            Ok(created) => {
                self.counters.created += 1;
                if let Some(tap) = self.taps.get_mut(&name) {
                    tap.state = TapState::Leased;
                    tap.index = created.index;
                    tap.mac = created.mac;
                    if vanished == Some(created.index) {
                        // Removed behind our back before we heard it was made:
                        // the caller gets the name, which stays reserved until
                        // they release it (and are told it vanished).
                        tap.vanished = true;
                        self.counters.vanished += 1;
                    }
                }
            }
            Err(_) => {
                self.taps.remove(&name);
                self.counters.failures += 1;
            }
        }
        self.advance_drain();
    }

    /// Decides a `Release`. A leased pool tap goes back to the pool while idle
    /// plus resetting plus being created stays within the size (after a
    /// reset, queued as a [`Command::Reset`]); anything else is deleted. A
    /// name the pool does not know is deleted too (it may be a caller's own
    /// tap).
    pub fn release(&mut self, name: TapName) -> Result<ReleaseDecision, PoolError> {
        let has_room = self.has_room();
        let is_pool_name = self.naming.index_of(&name).is_some();
        match self.taps.entry(name) {
            Entry::Occupied(mut e) => {
                let tap = e.get_mut();
                match tap.state {
                    TapState::Leased if tap.vanished => {
                        e.remove();
                        Ok(ReleaseDecision::Vanished)
                    }
                    TapState::Leased if has_room && is_pool_name => {
                        if self.reset_on_release {
                            tap.state = TapState::Resetting;
                            self.resetting += 1;
                            self.commands.push_back(Command::Reset {
                                name,
                                spec: self.tap,
                                mac: tap.mac,
                            });
                        } else {
                            tap.state = TapState::Idle;
                            self.idle.push(name);
                        }
                        Ok(ReleaseDecision::Pooled)
                    }
                    TapState::Leased => {
                        tap.state = TapState::Deleting;
                        Ok(ReleaseDecision::Delete)
                    }
                    TapState::Idle | TapState::Resetting => Err(PoolError::AlreadyIdle { name }),
                    TapState::CreatingForLease | TapState::CreatingForPool => {
                        Err(PoolError::NotLeased { name })
                    }
                    state @ (TapState::Deleting | TapState::Draining | TapState::DeleteFailed) => {
                        Err(PoolError::AlreadyReleased { name, state })
                    }
                }
            }
            Entry::Vacant(e) => {
                e.insert(Tap::new(TapState::Deleting));
                self.bump_index_past(&name);
                Ok(ReleaseDecision::Delete)
            }
        }
    }

    /// Records how a delete ended (one from [`ReleaseDecision::Delete`] or
    /// a [`Command::Delete`]). A successful delete refills the pool if it is
    /// `size / 8` taps short, unless the pool is shutting down. A device the
    /// kernel no longer has is forgotten;
    /// any other failure leaves the tap known as [`TapState::DeleteFailed`]
    /// and queues a retry.
    pub fn delete_finished(&mut self, name: TapName, result: &Result<(), PoolError>) {
        let deleting = matches!(
            self.taps.get(&name).map(|t| t.state),
            Some(TapState::Deleting | TapState::Draining)
        );
        match result {
            Ok(()) => {
                if deleting {
                    self.taps.remove(&name);
                }
                self.counters.deleted += 1;
                if let Some(drain) = &mut self.drain {
                    drain.report.deleted += 1;
                }
                self.refill();
            }
            Err(PoolError::Kernel(KernelError::NoSuchDevice { .. })) => {
                if deleting {
                    self.taps.remove(&name);
                }
            }
            Err(_) => {
                self.counters.failures += 1;
                if deleting {
                    let tap = self.taps.get_mut(&name).expect("checked above");
                    tap.state = TapState::DeleteFailed;
                    let after = self.delete_retry.delay(tap.delete_attempts);
                    tap.delete_attempts = tap.delete_attempts.saturating_add(1);
                    self.commands
                        .push_back(Command::RetryDeleteAfter { name, after });
                }
            }
        }
        if let Some(DrainRun {
            phase: DrainPhase::PerTap(pending),
            ..
        }) = &mut self.drain
        {
            pending.remove(&name);
        }
        self.advance_drain();
    }

    /// Retries the delete of a tap whose delete failed, if it still needs it.
    pub fn retry_delete(&mut self, name: TapName) {
        if let Some(tap) = self.taps.get_mut(&name)
            && tap.state == TapState::DeleteFailed
        {
            tap.state = TapState::Deleting;
            self.commands.push_back(Command::Delete { name });
        }
    }

    /// Records how a reset ended: the tap goes idle, or, if the reset failed,
    /// is deleted instead (queued).
    pub fn reset_finished(&mut self, name: TapName, result: &Result<(), PoolError>) {
        let Some(tap) = self.taps.get_mut(&name) else {
            return;
        };
        if tap.state != TapState::Resetting {
            return;
        }
        self.resetting -= 1;
        let removed = self.removed_in_flight.remove(&name) == Some(tap.index);
        match result {
            Ok(()) if removed => {
                self.taps.remove(&name);
                self.counters.vanished += 1;
                self.refill();
            }
            Ok(()) => {
                // The reset put it (back) in the pool's group, if any.
                tap.grouped = self.tap.device_group.is_some();
                if self.drain.is_some() {
                    tap.state = TapState::Draining;
                } else {
                    tap.state = TapState::Idle;
                    self.idle.push(name);
                }
            }
            Err(PoolError::Kernel(KernelError::NoSuchDevice { .. })) => {
                self.taps.remove(&name);
                self.counters.vanished += 1;
                self.refill();
            }
            Err(_) => {
                self.counters.failures += 1;
                tap.state = TapState::Deleting;
                self.commands.push_back(Command::Delete { name });
            }
        }
        self.advance_drain();
    }

    /// Starts a warm-up, or joins the one under way (several `Warm`s coalesce
    /// into one). A [`Command::WarmFinished`] is queued when it ends, at once
    /// if there is nothing to do.
    pub fn warm(&mut self) {
        if self.warm.is_none() {
            self.warm = Some(WarmRun::default());
        }
        self.advance_warm();
    }

    /// Starts a warm-up if there is room and none is under way.
    fn start_warm(&mut self) {
        if self.warm.is_none() && self.has_room() {
            self.warm();
        }
    }

    /// Refills after the pool lost a tap (a delete, a vanished tap): only
    /// once it has run low, `size / 8` taps (at least one) short, and then
    /// up to the size. Without the margin, a refill that starts while a
    /// holder is about to give its tap back makes that tap find no room and
    /// be deleted, and that delete's refill does the same: a create and a
    /// delete per cycle for as long as taps come and go. An explicit `Warm`
    /// fills to the size at once.
    fn refill(&mut self) {
        let low = (self.size / 8).max(1);
        if self.warm.is_none() && !self.shutting_down && self.occupancy() + low <= self.size {
            self.warm();
        }
    }

    /// A retry of a failed warm-up is due.
    pub fn retry_warm(&mut self) {
        self.warm_retry_scheduled = false;
        self.start_warm();
    }

    /// Records how a warm-up create ended.
    pub fn warm_created(&mut self, name: TapName, result: Result<CreatedTap, PoolError>) {
        self.creating_for_pool -= 1;
        let vanished = self.removed_in_flight.remove(&name);
        let run = self.warm.as_mut();
        match result {
            Ok(created) if vanished == Some(created.index) => {
                self.taps.remove(&name);
                self.counters.created += 1;
                self.counters.vanished += 1;
            }
            Ok(created) => {
                let tap = self
                    .taps
                    .get_mut(&name)
                    .expect("a create in flight is known");
                tap.index = created.index;
                tap.mac = created.mac;
                if self.drain.is_some() {
                    tap.state = TapState::Draining;
                } else {
                    tap.state = TapState::Idle;
                    self.idle.push(name);
                }
                self.counters.created += 1;
                if let Some(run) = run {
                    run.created.push(name);
                }
            }
            Err(error) => {
                self.taps.remove(&name);
                self.counters.failures += 1;
                if let Some(run) = run {
                    run.failure.get_or_insert(WarmFailure {
                        name: Some(name),
                        error,
                    });
                }
            }
        }
        self.advance_warm();
        self.advance_drain();
    }

    /// A device was removed from the kernel (seen by the link watcher). An
    /// idle tap of that name and index is dropped at once and the pool
    /// refills; a tap being created is dropped when its create reports back.
    pub fn link_removed(&mut self, name: TapName, index: u32) {
        let Some(tap) = self.taps.get(&name).copied() else {
            return;
        };
        match tap.state {
            TapState::CreatingForPool | TapState::CreatingForLease => {
                self.removed_in_flight.insert(name, index);
            }
            // The reset may still report success: remember the removal.
            TapState::Resetting if tap.index == index => {
                self.removed_in_flight.insert(name, index);
            }
            _ if tap.index != index => {}
            TapState::Idle => {
                self.idle.retain(|n| *n != name);
                self.taps.remove(&name);
                self.counters.vanished += 1;
                self.refill();
            }
            TapState::Leased => {
                // Its holder still holds the name: keep it, so the name is
                // not reused under them; their release will be told.
                if let Some(tap) = self.taps.get_mut(&name)
                    && !tap.vanished
                {
                    tap.vanished = true;
                    self.counters.vanished += 1;
                }
            }
            // A delete in flight (or to be retried) reports it, and keeps the
            // name from being reused meanwhile.
            TapState::Deleting
            | TapState::DeleteFailed
            | TapState::Draining
            | TapState::Resetting => {}
        }
    }

    /// The idle and leased taps a resync will check: take it when asking for
    /// the listing, and hand it to [`Pool::resync`] with the listing, so a
    /// tap created after the listing was taken is not mistaken for gone.
    pub fn resync_snapshot(&self) -> Vec<(TapName, u32)> {
        self.taps
            .iter()
            .filter(|(_, t)| {
                matches!(t.state, TapState::Idle | TapState::Leased) && !t.vanished && t.index != 0
            })
            .map(|(n, t)| (*n, t.index))
            .collect()
    }

    /// Notifications were lost (or the watcher just started): treat every
    /// tap of `snapshot` that a listing taken after it lacks (by name and
    /// index) as removed.
    pub fn resync(&mut self, snapshot: &[(TapName, u32)], links: &[LinkInfo]) {
        let present: HashSet<(TapName, u32)> = links.iter().map(|l| (l.name, l.index)).collect();
        for &(name, index) in snapshot {
            if !present.contains(&(name, index)) {
                self.link_removed(name, index);
            }
        }
    }

    /// Drains the pool: stops warming for good, waits for creates and resets
    /// in flight, then deletes every idle tap: with one group delete where a
    /// device group is configured (leased taps are first moved out of the
    /// group, so they stay with their holders), else one delete per tap. A
    /// [`Command::DrainFinished`] is queued when done; a `drain` during a
    /// drain joins it.
    pub fn drain(&mut self) {
        if self.drain.is_some() {
            return;
        }
        self.shutting_down = true;
        for name in self.idle.drain(..) {
            if let Some(tap) = self.taps.get_mut(&name) {
                tap.state = TapState::Draining;
            }
        }
        for tap in self.taps.values_mut() {
            if tap.state == TapState::DeleteFailed {
                tap.state = TapState::Draining;
            }
        }
        self.drain = Some(DrainRun {
            phase: DrainPhase::Settling,
            ungroup_failed: false,
            report: DrainReport::default(),
        });
        self.advance_drain();
    }

    /// Records how moving a leased tap out of the group ended.
    pub fn ungrouped(&mut self, name: TapName, result: &Result<(), PoolError>) {
        match result {
            Ok(()) => {
                if let Some(tap) = self.taps.get_mut(&name) {
                    tap.grouped = false;
                }
            }
            Err(PoolError::Kernel(KernelError::NoSuchDevice { .. })) => {}
            Err(_) => {
                self.counters.failures += 1;
                if let Some(d) = &mut self.drain {
                    d.ungroup_failed = true;
                }
            }
        }
        if let Some(DrainRun {
            phase: DrainPhase::Ungrouping(pending),
            ..
        }) = &mut self.drain
        {
            pending.remove(&name);
        }
        self.advance_drain();
    }

    /// Records who is in the pool's device group. If every member is a tap
    /// the pool is deleting, the group is deleted in one request; otherwise,
    /// or if the listing failed, the pool's taps are deleted one by one and
    /// the other members are reported.
    pub fn group_checked(&mut self, result: &Result<Vec<TapName>, PoolError>) {
        if !matches!(
            self.drain,
            Some(DrainRun {
                phase: DrainPhase::CheckingGroup,
                ..
            })
        ) {
            return;
        }
        match result {
            Ok(members) => {
                // Only devices the pool is deleting may go: not a leased tap
                // (a Seed may have added one during the drain), not a tap
                // some process has open that Seed left alone, not anyone
                // else's device.
                let foreign: Vec<TapName> = members
                    .iter()
                    .filter(|n| {
                        !matches!(
                            self.taps.get(n).map(|t| t.state),
                            Some(TapState::Draining | TapState::Deleting | TapState::DeleteFailed)
                        )
                    })
                    .copied()
                    .collect();
                if foreign.is_empty() {
                    let drain = self.drain.as_mut().expect("checked above");
                    drain.phase = DrainPhase::GroupDeleting;
                    let group = self.tap.device_group.expect("grouped drain");
                    self.commands.push_back(Command::DeleteGroup { group });
                    return;
                }
                self.drain
                    .as_mut()
                    .expect("checked above")
                    .report
                    .foreign_in_group = foreign;
            }
            Err(_) => self.counters.failures += 1,
        }
        self.delete_draining_one_by_one();
        self.advance_drain();
    }

    /// Records how the drain's group delete ended; on failure, falls back to
    /// one delete per tap.
    pub fn group_deleted(&mut self, result: &Result<(), PoolError>) {
        if !matches!(
            self.drain,
            Some(DrainRun {
                phase: DrainPhase::GroupDeleting,
                ..
            })
        ) {
            return;
        }
        match result {
            Ok(()) => {
                // Only taps in the group went; a draining tap outside it (one
                // an earlier drain moved out, whose delete then failed) is
                // deleted on its own.
                let (gone, outside): (Vec<TapName>, Vec<TapName>) = self
                    .names_in(TapState::Draining)
                    .into_iter()
                    .partition(|n| self.taps[n].grouped);
                self.counters.deleted += gone.len() as u64;
                for name in &gone {
                    self.taps.remove(name);
                }
                for &name in &outside {
                    self.commands.push_back(Command::Delete { name });
                }
                let drain = self.drain.as_mut().expect("checked above");
                drain.report.deleted += gone.len();
                drain.report.bulk = true;
                drain.phase = DrainPhase::PerTap(outside.into_iter().collect());
            }
            Err(_) => {
                self.counters.failures += 1;
                self.delete_draining_one_by_one();
            }
        }
        self.advance_drain();
    }

    fn names_in(&self, state: TapState) -> Vec<TapName> {
        self.taps
            .iter()
            .filter(|(_, t)| t.state == state)
            .map(|(n, _)| *n)
            .collect()
    }

    fn delete_draining_one_by_one(&mut self) {
        let names = self.names_in(TapState::Draining);
        for &name in &names {
            self.commands.push_back(Command::Delete { name });
        }
        if let Some(drain) = &mut self.drain {
            drain.phase = DrainPhase::PerTap(names.into_iter().collect());
        }
    }

    fn advance_drain(&mut self) {
        loop {
            let Some(drain) = &mut self.drain else {
                return;
            };
            match &drain.phase {
                DrainPhase::Settling => {
                    // Creates that carry the group (started before the drain)
                    // and resets must land first; fallback creates started
                    // since are outside the group and need no waiting.
                    let grouped_lease_creates = self
                        .taps
                        .values()
                        .filter(|t| t.state == TapState::CreatingForLease && t.grouped)
                        .count();
                    if self.creating_for_pool + grouped_lease_creates + self.resetting > 0 {
                        return;
                    }
                    // A group delete takes whatever is in the group when it
                    // runs: with none of the pool's taps to delete, it could
                    // only take someone else's device (another pool's that
                    // shares the group, created after the check).
                    let grouped_draining = self
                        .taps
                        .values()
                        .any(|t| t.state == TapState::Draining && t.grouped);
                    if self.tap.device_group.is_none() || !grouped_draining {
                        self.delete_draining_one_by_one();
                        continue;
                    }
                    let leased: HashSet<TapName> = self
                        .taps
                        .iter()
                        .filter(|(_, t)| t.grouped && t.state == TapState::Leased)
                        .map(|(n, _)| *n)
                        .collect();
                    for &name in &leased {
                        self.commands.push_back(Command::Ungroup { name });
                    }
                    drain.phase = DrainPhase::Ungrouping(leased);
                }
                DrainPhase::Ungrouping(pending) if pending.is_empty() => {
                    if drain.ungroup_failed {
                        // A leased tap may still be in the group: a group
                        // delete would take it from its holder.
                        self.delete_draining_one_by_one();
                        continue;
                    }
                    drain.phase = DrainPhase::CheckingGroup;
                    let group = self.tap.device_group.expect("grouped drain");
                    self.commands.push_back(Command::CheckGroup { group });
                    return;
                }
                DrainPhase::PerTap(pending) if pending.is_empty() => {
                    let mut report = std::mem::take(&mut drain.report);
                    // The drain is over; a later `drain` starts a new one
                    // (for taps released since, which are deleted on release).
                    self.drain = None;
                    let stats = self.stats();
                    report.leased = stats.leased;
                    report.delete_failed = stats.delete_failed;
                    self.commands.push_back(Command::DrainFinished(report));
                    return;
                }
                DrainPhase::Ungrouping(_)
                | DrainPhase::CheckingGroup
                | DrainPhase::GroupDeleting
                | DrainPhase::PerTap(_) => {
                    return;
                }
            }
        }
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
            vanished: self.counters.vanished,
            next_index: self.next,
            ..PoolStats::default()
        };
        for tap in self.taps.values() {
            match tap.state {
                TapState::CreatingForPool | TapState::CreatingForLease => s.creating += 1,
                TapState::Idle => s.idle += 1,
                TapState::Leased => s.leased += 1,
                TapState::Resetting => s.resetting += 1,
                TapState::Deleting | TapState::Draining => s.deleting += 1,
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
    fn advance_warm(&mut self) {
        if self.warm.is_none() {
            return;
        }
        // A run ends only when none of its creates is in flight, so every
        // pool create in flight is this run's.
        while self.warm.as_ref().is_some_and(|run| run.failure.is_none())
            && self.creating_for_pool < self.create_window
            && self.has_room()
        {
            let Some(name) = self.naming.name(self.next) else {
                let run = self.warm.as_mut().expect("checked above");
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
                // A caller holds this pool name from an earlier run; skip it.
                continue;
            }
            let spec = self.tap;
            self.taps.insert(
                name,
                Tap {
                    grouped: spec.device_group.is_some(),
                    ..Tap::new(TapState::CreatingForPool)
                },
            );
            self.creating_for_pool += 1;
            self.commands.push_back(Command::Create { name, spec });
        }
        if self.creating_for_pool > 0 {
            return;
        }
        let run = self.warm.take().expect("checked above");
        let mut report = WarmReport {
            created: run.created,
            failure: run.failure,
            shut_down: self.shutting_down,
            retry_in: None,
        };
        match &report.failure {
            None => self.warm_attempts = 0,
            Some(f) if matches!(f.error, PoolError::IndexExhausted { .. }) => {}
            Some(_) if self.shutting_down => {}
            Some(_) => {
                if self.warm_attempts < self.warm_retry.max_attempts && !self.warm_retry_scheduled {
                    let after = self.warm_retry.delay(self.warm_attempts);
                    self.warm_attempts += 1;
                    self.warm_retry_scheduled = true;
                    report.retry_in = Some(after);
                    self.commands.push_back(Command::RetryWarmAfter(after));
                }
            }
        }
        self.commands.push_back(Command::WarmFinished(report));
    }
}

#[cfg(test)]
mod tests;

/// Carries out every queued kernel command at once, in order, on the calling
/// thread, reporting each result back to the pool, until none is left.
/// Returns the commands that are not kernel calls (timers, finished
/// warm-ups and drains) for the caller to act on.
///
/// This is the pool without actors: for tools and tests that can block (a
/// one-shot cleanup, a deterministic model of the pool). The actors do the
/// same work without blocking the pool's mailbox.
pub fn run_blocking(pool: &mut Pool, kernel: &mut dyn crate::kernel::Kernel) -> Vec<Command> {
    let mut rest = Vec::new();
    while let Some(command) = pool.take_command() {
        match command {
            Command::Create { name, spec } => {
                let result = kernel.create_tap(name, &spec).map_err(PoolError::from);
                pool.warm_created(name, result);
            }
            Command::Reset { name, spec, mac } => {
                let result = kernel
                    .reset_tap(name.into(), &spec, mac)
                    .map_err(PoolError::from);
                pool.reset_finished(name, &result);
            }
            Command::Delete { name } => {
                let result = kernel.delete_link(name.into()).map_err(PoolError::from);
                pool.delete_finished(name, &result);
            }
            Command::Ungroup { name } => {
                let result = kernel
                    .set_device_group(name.into(), 0)
                    .map_err(PoolError::from);
                pool.ungrouped(name, &result);
            }
            Command::CheckGroup { group } => {
                let result = kernel.list_group(group).map_err(PoolError::from);
                pool.group_checked(&result);
            }
            Command::DeleteGroup { group } => {
                let result = kernel.delete_group(group).map_err(PoolError::from);
                pool.group_deleted(&result);
            }
            other => rest.push(other),
        }
    }
    rest
}
