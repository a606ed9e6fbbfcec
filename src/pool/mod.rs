//! The pool: one deterministic state machine with no I/O and no clock.
//!
//! [`Pool`] owns every rule: which tap a caller gets, when a tap is created,
//! reset, deleted or retried, how resets are batched, how a drain proceeds,
//! and every deadline. It never sleeps, reads a clock or makes a syscall; in
//! the style of quinn-proto, a driver hands it `now` with every input and:
//!
//! - takes the kernel work it asks for with [`Pool::poll_batch`] (each
//!   [`Command`] has an id and names its device by name and, where known,
//!   interface index), carries it out, and reports each outcome through the
//!   one entry [`Pool::complete`];
//! - takes the answers owed to callers who waited on the kernel with
//!   [`Pool::poll_event`] ("answer request 17 with this lease");
//! - asks [`Pool::poll_timeout`] when to wake it, and calls
//!   [`Pool::handle_timeout`] then.
//!
//! A caller's request ([`Pool::acquire`], [`Pool::release`], [`Pool::warm`],
//! [`Pool::seed`], [`Pool::drain`]) is answered at once where the pool can
//! answer from memory, else with a [`RequestId`] that a later [`Event`]
//! answers. The actors in `tap-pool-actors` are such a driver; so is
//! [`run_blocking`], for tools that may block, and so are the tests, which
//! drive it with a virtual clock.
//!
//! Every name the pool has asked the kernel about is in exactly one
//! [`TapState`], which is what keeps a create and a delete of the same name
//! from ever being in flight together.
//!
//! The rules live one concept per file: `lease` (Acquire and Release),
//! `warm` (warm-up, refill and its retry), `reset` (released taps back to
//! their pooled configuration, in batches), `delete` (deletes and their
//! retries), `drain`, and `reconcile` (Seed, removals behind the pool's back,
//! resyncs).

mod delete;
mod drain;
mod lease;
mod reconcile;
mod reset;
mod warm;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use thiserror::Error;

use crate::config::{Backoff, ConfigError, PoolConfig};
use crate::holder::Holder;
use crate::inventory::Inventory;
use crate::kernel::{CreatedTap, Device, KernelError, LinkInfo, Op, Outcome, Reply, TapSpec};
use crate::name::TapName;

pub use drain::DrainReport;
pub use lease::{Lease, LeaseSource, LeaseToken, Released};
pub use reconcile::SeedReport;
pub use reset::RESET_WINDOW;
pub use warm::{WarmFailure, WarmReport};

/// Where a tap the pool knows stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
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

/// A request the pool refuses, or the kernel's refusal on its behalf.
///
/// A refused request changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum PoolError {
    /// The fallback name is itself a pool name, which the pool may create later.
    #[error("fallback name {name} is a pool name (the pool's prefix and an index); pick another")]
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
    /// The token is this run's but no live lease: released already (a stale
    /// or duplicate release; its tap may be someone else's now), or never
    /// handed out. Nothing was changed.
    #[error("{token} is not a live lease (released already?); nothing changed")]
    LeaseEnded {
        /// The token given.
        token: LeaseToken,
    },
    /// No lease of this pool ever had this token: made up, or from another
    /// pool or an earlier run (after a restart, `Seed` gives the taps that
    /// running VMs hold new tokens). Nothing was changed.
    #[error("{token} is not a lease of this pool; nothing changed")]
    UnknownLease {
        /// The token given.
        token: LeaseToken,
    },
    /// Every pool name is taken: held by callers, in the pool, or by devices
    /// the pool does not own.
    #[error("pool names with prefix {prefix:?} are all taken (the last index is {max_index})")]
    IndexExhausted {
        /// The pool's prefix.
        prefix: String,
        /// The last index that fits.
        max_index: u64,
    },
    /// The kernel refused.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// A caller's request that waits on the kernel; an [`Event`] carrying the
/// same id answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request {}", self.0)
    }
}

/// A kernel call the pool asked for; its outcome goes back through
/// [`Pool::complete`] with the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(u64);

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command {}", self.0)
    }
}

/// How the pool answers a caller: at once, from memory, or later, by an
/// [`Event`] for this [`RequestId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// The answer.
    Now(T),
    /// The answer comes as an [`Event`] once the kernel has replied.
    Later(RequestId),
}

/// One kernel call the pool asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Command {
    /// Report its outcome with this id.
    pub id: CommandId,
    /// What to do.
    pub op: Op,
    /// Who holds (or last held) the tap the call is about, where the
    /// caller of `Acquire` named one ([`Pool::acquire_for`]): for the
    /// driver's logs and spans. It changes nothing about the call.
    pub holder: Option<Holder>,
}

/// Which kernel workers should carry a batch: each lane has workers of its
/// own, so that no call waits behind another lane's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lane {
    /// Resets of released taps: the quickest calls, which the idle stock
    /// (and an Acquire that waits for a tap in reset) waits on; never
    /// behind a create storm or a delete.
    Reset,
    /// Creates, listings and group changes.
    Create,
    /// Deletes: slow kernel waits (~16 ms each) that run in parallel.
    Delete,
}

/// Kernel calls to hand to one worker together, carried out in order.
///
/// Most batches hold one call; released taps' resets go in batches, so
/// that under load one hand-off to a worker serves many releases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Which workers carry it.
    pub lane: Lane,
    /// The calls, in order.
    pub commands: Vec<Command>,
}

/// An answer owed to a caller who waited on the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The answer to an [`Pool::acquire`] that created a tap.
    Acquired {
        /// The request answered.
        request: RequestId,
        /// The lease, or why there is none (nothing of it remains).
        result: Result<Lease, PoolError>,
    },
    /// The answer to a [`Pool::release`] that deleted the tap.
    Released {
        /// The request answered.
        request: RequestId,
        /// What became of the tap.
        result: Result<Released, PoolError>,
    },
    /// The answer to a [`Pool::warm`]: the warm-up it joined has ended.
    Warmed {
        /// The request answered.
        request: RequestId,
        /// What the warm-up did.
        report: WarmReport,
    },
    /// The answer to a [`Pool::seed`].
    Seeded {
        /// The request answered.
        request: RequestId,
        /// What the pool found and decided.
        result: Result<SeedReport, PoolError>,
    },
    /// The answer to a [`Pool::drain`]: the drain it joined has ended.
    Drained {
        /// The request answered.
        request: RequestId,
        /// What the drain did.
        report: DrainReport,
    },
    /// The answer to a [`Pool::settle`]: no kernel call is in flight or
    /// queued and no caller waits on one.
    Settled {
        /// The request answered.
        request: RequestId,
        /// The pool's counts then.
        stats: PoolStats,
    },
}

/// The pool's counts and counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
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
    /// Released taps deleted rather than pooled because their reset found
    /// something it cannot take away (a file still attached, an owner or
    /// group the spec lacks: [`KernelError::Residue`]).
    pub discarded: u64,
    /// The index the next pool name will use.
    pub next_index: u64,
}

/// A tap the pool knows.
#[derive(Clone, Copy, Debug)]
struct Tap {
    state: TapState,
    /// The interface index, once created.
    index: Option<u32>,
    mac: [u8; 6],
    /// Whether the device is in the pool's device group.
    grouped: bool,
    /// Failed deletes in a row.
    delete_attempts: u32,
    /// Removed from the kernel behind the pool's back while leased.
    vanished: bool,
    /// Never to be pooled again (renamed behind the pool's back, or a seeded
    /// tap not made the way the pool makes them): deleted, by index, once
    /// nobody holds it.
    retire: bool,
    /// Its lease was given by `Seed` (a second `Seed` listing it gets the
    /// same token; a lease from `Acquire` is never handed to a `Seed`).
    seeded: bool,
    /// The lease that holds it, while leased.
    lease: Option<LeaseToken>,
}

impl Tap {
    fn new(state: TapState) -> Tap {
        Tap {
            state,
            index: None,
            mac: [0; 6],
            grouped: false,
            delete_attempts: 0,
            vanished: false,
            retire: false,
            seeded: false,
            lease: None,
        }
    }
}

/// Why a kernel call is in flight: what its outcome means to the pool.
#[derive(Debug)]
enum Purpose {
    /// A warm-up create.
    WarmCreate(TapName),
    /// A fallback create for a caller's Acquire.
    LeaseCreate { name: TapName, request: RequestId },
    /// A released (or adopted) tap's reset.
    Reset(TapName),
    /// A delete, answered to the caller that released the tap, if any.
    Delete {
        name: TapName,
        answer: Option<RequestId>,
    },
    /// A leased tap moved out of the group before a drain's group delete.
    Ungroup(TapName),
    /// The listing of the pool's device group before its group delete.
    CheckGroup,
    /// The drain's group delete.
    DeleteGroup,
    /// Seed's listing.
    Seed {
        request: RequestId,
        used: Vec<TapName>,
    },
    /// A resync's listing, and the taps it checks.
    Resync(Vec<(TapName, u32)>),
}

#[derive(Debug, Default)]
struct Counters {
    hits: u64,
    misses: u64,
    created: u64,
    deleted: u64,
    failures: u64,
    vanished: u64,
    discarded: u64,
}

/// How long a failed resync listing waits before the next try.
pub const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// The pool's state machine. See the [module documentation](self).
#[derive(Debug)]
pub struct Pool {
    size: usize,
    create_window: usize,
    warm_retry: Backoff,
    delete_retry: Backoff,
    tap: TapSpec,
    /// Which devices are the pool's, and which of them `Seed` may take;
    /// with the naming scheme, the recycle policy and the owner every tap
    /// of the pool has (the spec's, or this process's effective uid where
    /// the spec names neither owner nor group).
    inventory: Inventory,
    /// The next pool index to try.
    next: u64,
    /// Pool names the kernel holds for devices the pool does not own (it
    /// found them taken): never created while they stand.
    taken: HashSet<TapName>,
    taps: HashMap<TapName, Tap>,
    /// This run's lease tokens: a random run id, and the generator of each
    /// token's own random bits.
    run_id: u64,
    tokens: fastrand::Rng,
    /// The live leases.
    leases: FxHashMap<LeaseToken, TapName>,
    /// Whether a warm-up was ever asked for: until then the pool never
    /// fills itself.
    warm_asked: bool,
    /// Seed listings in flight, and the names the pool forgot since the
    /// first of them was asked: a listing older than that forgetting must
    /// not bring them back.
    seed_listings: usize,
    forgotten_since_listing: HashSet<TapName>,
    /// Devices renamed (by index) while a create of them was in flight.
    renamed_in_flight: HashMap<TapName, u32>,
    /// Callers waiting for the pool to settle.
    settle_waiters: Vec<RequestId>,
    /// Idle taps, most recently pooled last (handed out LIFO).
    idle: Vec<TapName>,
    /// Pool creates in flight (all of them belong to the warm run, if any).
    creating_for_pool: usize,
    /// Resets queued or in flight.
    resetting: usize,
    /// Acquires that found no idle tap and wait for one in reset, oldest
    /// first, with their fallback names (reserved meanwhile) and holders.
    waiting: VecDeque<(RequestId, TapName, Option<Holder>)>,
    /// The holder labels of taps held (or being created, reset or deleted
    /// after they were held), where the caller named one: empty, and never
    /// looked up, while no caller names any.
    holders: FxHashMap<TapName, Holder>,
    warm: warm::Warmer,
    resets: reset::Resets,
    drain: drain::Drainer,
    shutting_down: bool,
    /// Devices removed (by index) while a create or reset of them was in
    /// flight: the call may still report success.
    removed_in_flight: HashMap<TapName, u32>,
    /// Deletes to retry, by when.
    delete_retries: BTreeSet<(Instant, TapName)>,
    /// When a failed resync is tried again.
    resync_retry_at: Option<Instant>,
    /// Kernel calls asked for and not yet completed, by id. Ids are the
    /// pool's own, so a fast hash is safe here.
    in_flight: FxHashMap<CommandId, Purpose>,
    next_id: u64,
    batches: VecDeque<Batch>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl Pool {
    /// Builds a pool, refusing a configuration it cannot run.
    ///
    /// # Errors
    /// [`ConfigError`] names the setting at fault.
    pub fn new(config: PoolConfig) -> Result<Pool, ConfigError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let owner = config.tap.effective_owner(unsafe { libc::geteuid() });
        Ok(Pool {
            inventory: Inventory::for_owner(&config, owner)?,
            size: config.size,
            create_window: config.create_window,
            warm_retry: config.warm_retry,
            delete_retry: config.delete_retry,
            tap: config.tap,
            next: 0,
            taken: HashSet::new(),
            taps: HashMap::new(),
            run_id: lease::entropy(),
            tokens: fastrand::Rng::with_seed(lease::entropy()),
            leases: FxHashMap::default(),
            warm_asked: false,
            seed_listings: 0,
            forgotten_since_listing: HashSet::new(),
            renamed_in_flight: HashMap::new(),
            settle_waiters: Vec::new(),
            idle: Vec::new(),
            creating_for_pool: 0,
            resetting: 0,
            waiting: VecDeque::new(),
            holders: FxHashMap::default(),
            warm: warm::Warmer::default(),
            resets: reset::Resets::new(config.size),
            drain: drain::Drainer::default(),
            shutting_down: false,
            removed_in_flight: HashMap::new(),
            delete_retries: BTreeSet::new(),
            resync_retry_at: None,
            in_flight: FxHashMap::default(),
            next_id: 0,
            batches: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        })
    }

    /// How the pool's taps are made.
    pub fn tap_spec(&self) -> &TapSpec {
        &self.tap
    }

    /// Which devices are this pool's, and which of them `Seed` adopts or
    /// deletes when nobody lists them: see [`crate::inventory`].
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The pool's name prefix.
    pub fn prefix(&self) -> &str {
        self.inventory.naming().prefix()
    }

    /// The pool index of `name`, if it is a pool name.
    pub fn pool_index(&self, name: &TapName) -> Option<u64> {
        self.inventory.naming().index_of(name)
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

    /// The next batch of kernel calls to carry out, if any.
    pub fn poll_batch(&mut self) -> Option<Batch> {
        self.batches.pop_front()
    }

    /// The next answer owed to a caller, if any.
    ///
    /// A `Settle` is answered only once every other answer has been taken:
    /// a driver that releases a lease whose caller has gone (see
    /// [`Pool::acquire`]) does so before it asks for the next event, so the
    /// pool is not called settled while that release is still to come.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            self.answer_settled();
        }
        self.events.pop_front()
    }

    /// When the pool next needs [`Pool::handle_timeout`], if ever: the
    /// earliest of the reset batch's window, a warm-up retry, a delete
    /// retry and a resync retry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.resets.deadline(),
            self.warm.retry_at(),
            self.resync_retry_at,
            self.delete_retries.first().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Does whatever was due by `now`: sends the queued resets whose window
    /// closed, retries a failed warm-up, deletes and resyncs.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.resets.deadline().is_some_and(|at| at <= now) {
            self.flush_resets(now, true);
        }
        if self.warm.retry_at().is_some_and(|at| at <= now) {
            self.retry_warm(now);
        }
        while let Some(&(at, name)) = self.delete_retries.first()
            && at <= now
        {
            self.delete_retries.pop_first();
            self.retry_delete(name);
        }
        if self.resync_retry_at.is_some_and(|at| at <= now) {
            self.resync_retry_at = None;
            self.resync(now);
        }
    }

    /// Records how the kernel call `id` ended. An id the pool is not waiting
    /// on (already completed, or never asked) is ignored.
    pub fn complete(&mut self, id: CommandId, outcome: Outcome, now: Instant) {
        let Some(purpose) = self.in_flight.remove(&id) else {
            tracing::debug!(%id, "completion for a command not in flight; ignored");
            return;
        };
        match purpose {
            Purpose::WarmCreate(name) => self.warm_created(name, outcome.created(), now),
            Purpose::LeaseCreate { name, request } => {
                self.lease_created(name, request, outcome.created(), now)
            }
            Purpose::Reset(name) => self.reset_finished(name, outcome.done(), now),
            Purpose::Delete { name, answer } => {
                self.delete_finished(name, answer, outcome.done(), now)
            }
            Purpose::Ungroup(name) => self.ungrouped(name, outcome.done(), now),
            Purpose::CheckGroup => self.group_checked(outcome.members(), now),
            Purpose::DeleteGroup => self.group_deleted(outcome.done(), now),
            Purpose::Seed { request, used } => {
                let result = outcome
                    .links()
                    .map(|links| self.reconcile(&used, &links, now))
                    .map_err(PoolError::Kernel);
                self.seed_listings -= 1;
                if self.seed_listings == 0 {
                    self.forgotten_since_listing.clear();
                }
                self.events.push_back(Event::Seeded { request, result });
            }
            Purpose::Resync(snapshot) => match outcome.links() {
                Ok(links) => self.resynced(&snapshot, &links, now),
                Err(error) => {
                    tracing::warn!(%error, "cannot list links to resync; retrying");
                    self.counters.failures += 1;
                    self.resync_retry_at = Some(later(now, RESYNC_RETRY));
                }
            },
        }
        self.advance_warm(now);
        self.advance_drain();
    }

    /// A `Settle`: answered by [`Event::Settled`] once no kernel call is in
    /// flight or queued and no caller waits on one (at once, if none is):
    /// released taps are back in the pool, Seed's resets and deletes are
    /// done, the warm-up has ended. Retries scheduled for later (a failed
    /// delete's, a failed warm-up's) do not count: the stats tell them.
    pub fn settle(&mut self, _now: Instant) -> RequestId {
        let request = self.request_id();
        self.settle_waiters.push(request);
        request
    }

    /// Whether no kernel call is in flight or queued and no caller waits.
    pub fn is_settled(&self) -> bool {
        self.in_flight.is_empty() && self.waiting.is_empty()
    }

    fn answer_settled(&mut self) {
        if self.settle_waiters.is_empty() || !self.is_settled() {
            return;
        }
        let stats = self.stats();
        for request in std::mem::take(&mut self.settle_waiters) {
            self.events.push_back(Event::Settled {
                request,
                stats: stats.clone(),
            });
        }
    }

    /// Forgets `name`: the pool no longer knows a device of that name. A
    /// Seed listing in flight was taken before this, so it must not bring
    /// the name back.
    fn forget(&mut self, name: &TapName) -> Option<Tap> {
        let tap = self.taps.remove(name)?;
        if let Some(token) = tap.lease {
            self.leases.remove(&token);
        }
        self.unlabel(name);
        if self.seed_listings > 0 {
            self.forgotten_since_listing.insert(*name);
        }
        Some(tap)
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
            discarded: self.counters.discarded,
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

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn request_id(&mut self) -> RequestId {
        RequestId(self.next_id())
    }

    /// Registers a kernel call for `purpose` and returns it, for the caller
    /// to put in a batch.
    fn command(&mut self, op: Op, purpose: Purpose) -> Command {
        let id = CommandId(self.next_id());
        self.in_flight.insert(id, purpose);
        let holder = if self.holders.is_empty() {
            None
        } else {
            op.device()
                .and_then(|device| self.holders.get(&device.name).cloned())
        };
        Command { id, op, holder }
    }

    /// The holder label of the tap `name`, if its caller named one: while it
    /// is held, and while it is being reset or deleted after.
    pub fn holder(&self, name: &TapName) -> Option<&Holder> {
        self.holders.get(name)
    }

    /// The holder label of the live lease `token`, if its caller named one.
    pub fn lease_holder(&self, token: LeaseToken) -> Option<&Holder> {
        if self.holders.is_empty() {
            return None;
        }
        self.holders.get(self.leases.get(&token)?)
    }

    /// Names `holder` as who holds `name` (none: forgets who did).
    fn label(&mut self, name: TapName, holder: Option<Holder>) {
        match holder {
            Some(holder) => {
                self.holders.insert(name, holder);
            }
            None => self.unlabel(&name),
        }
    }

    /// Forgets who held `name`: it is back in the pool, or gone.
    fn unlabel(&mut self, name: &TapName) {
        if !self.holders.is_empty() {
            self.holders.remove(name);
        }
    }

    /// Registers a kernel call and queues it as a batch of its own.
    fn send(&mut self, lane: Lane, op: Op, purpose: Purpose) {
        let command = self.command(op, purpose);
        self.batches.push_back(Batch {
            lane,
            commands: vec![command],
        });
    }

    /// The device the pool knows as `name`: with its index where known.
    fn device(&self, name: TapName) -> Device {
        Device {
            name,
            index: self.taps.get(&name).and_then(|t| t.index),
        }
    }

    /// The spec of a tap created now: without the device group once a drain
    /// has begun, so that the drain's group delete cannot take it.
    fn create_spec(&self) -> TapSpec {
        let mut spec = self.tap;
        if self.drain.is_running() {
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
    fn names_in(&self, state: TapState) -> Vec<TapName> {
        self.taps
            .iter()
            .filter(|(_, t)| t.state == state)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// `now + after`, or as late as an `Instant` goes: a backoff configured
/// beyond the clock's range waits for ever rather than panicking.
fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or_else(|| far_future(now))
}

/// The latest `Instant` after `now` that can be represented.
fn far_future(now: Instant) -> Instant {
    let mut step = Duration::from_secs(u64::MAX / 4);
    let mut at = now;
    while !step.is_zero() {
        match at.checked_add(step) {
            Some(next) => at = next,
            None => step /= 2,
        }
    }
    at
}

/// What the pool reads from an [`Outcome`]: the reply its call should have
/// had. A reply of another shape (a driver's bug) counts as unanswered.
trait Expect {
    fn created(self) -> Result<CreatedTap, KernelError>;
    fn done(self) -> Result<(), KernelError>;
    fn links(self) -> Result<Vec<LinkInfo>, KernelError>;
    fn members(self) -> Result<Vec<TapName>, KernelError>;
}

impl Expect for Outcome {
    fn created(self) -> Result<CreatedTap, KernelError> {
        match self? {
            Reply::Created(created) => Ok(created),
            other => Err(mismatch(&other)),
        }
    }
    fn done(self) -> Result<(), KernelError> {
        match self? {
            Reply::Done => Ok(()),
            other => Err(mismatch(&other)),
        }
    }
    fn links(self) -> Result<Vec<LinkInfo>, KernelError> {
        match self? {
            Reply::Links(links) => Ok(links),
            other => Err(mismatch(&other)),
        }
    }
    fn members(self) -> Result<Vec<TapName>, KernelError> {
        match self? {
            Reply::Members(members) => Ok(members),
            other => Err(mismatch(&other)),
        }
    }
}

fn mismatch(reply: &Reply) -> KernelError {
    tracing::error!(?reply, "a kernel reply does not fit its command");
    KernelError::Unanswered {
        op: "mismatched reply".into(),
    }
}

/// Carries out every kernel call the pool asks for at once, in order, on
/// the calling thread, reporting each outcome back, until none is left.
/// Returns the answers owed to callers. Timers are the caller's: call
/// [`Pool::handle_timeout`] (then this again) when [`Pool::poll_timeout`]
/// says.
///
/// This is the pool without actors: for tools and tests that can block (a
/// one-shot cleanup, a deterministic model of the pool). The actors do the
/// same work without blocking the pool's mailbox.
pub fn run_blocking(
    pool: &mut Pool,
    kernel: &mut dyn crate::kernel::Kernel,
    now: Instant,
) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        while let Some(batch) = pool.poll_batch() {
            for command in batch.commands {
                let outcome = command.op.run(kernel);
                pool.complete(command.id, outcome, now);
            }
        }
        match pool.poll_event() {
            Some(event) => events.push(event),
            None => break,
        }
    }
    events
}

#[cfg(test)]
mod testing;
