//! Leases: `Acquire` hands out an idle tap or creates one under the caller's
//! fallback name, with a token no other lease has; `Release` takes the
//! token back (reset and pooled while the pool has room, else deleted).
//!
//! The token is the lease: a release names its token, never a device, so a
//! stale or duplicate release (its lease has ended, the tap may be someone
//! else's) and a made-up one are refused with no kernel call, and nothing a
//! caller sends can make the pool touch a device it does not hold.

use std::fmt;
use std::time::Instant;

use super::{Answer, Event, Lane, Pool, PoolError, Purpose, RequestId, Tap, TapState};
use crate::config::Recycle;
use crate::holder::Holder;
use crate::kernel::{CreatedTap, KernelError, Op};
use crate::name::TapName;

/// Where a leased tap came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LeaseSource {
    /// An idle tap from the pool: no kernel call was needed.
    Pool,
    /// Created for this request under the fallback name.
    Created,
    /// Held by a running VM when the pool started: `Seed`'s `used` list.
    Seeded,
}

/// The token of one lease: no other lease of any pool has it (a random run
/// id, and 64 random bits of its own), so no token can be guessed from
/// another: a caller's off-by-one, or a neighbour's, names no live lease.
///
/// It is plain data, to keep with the VM's record (as a `u128`, see
/// [`LeaseToken::to_u128`]); after a restart `Seed` gives the taps running
/// VMs hold new tokens, and the old ones are refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseToken {
    run: u64,
    serial: u64,
}

impl LeaseToken {
    /// The token as one number, to store.
    pub fn to_u128(self) -> u128 {
        (u128::from(self.run) << 64) | u128::from(self.serial)
    }

    /// A token from [`LeaseToken::to_u128`].
    pub fn from_u128(value: u128) -> LeaseToken {
        LeaseToken {
            run: (value >> 64) as u64,
            serial: value as u64,
        }
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseToken({self})")
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lease {:016x}-{:016x}", self.run, self.serial)
    }
}

/// A tap handed to a caller, who holds it until it releases the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Lease {
    /// The tap's name: open it with `TUNSETIFF` as a VMM does.
    pub name: TapName,
    /// What `Release` takes back: this lease and no other.
    pub token: LeaseToken,
    /// Whether it came from the pool, was created, or was seeded.
    pub source: LeaseSource,
}

/// What became of a released tap.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Released {
    /// It is back in the pool (after its reset, where resets are on).
    Pooled,
    /// It was deleted from the kernel.
    Deleted,
    /// Someone had already removed it from the kernel behind the pool's back.
    Vanished,
    /// Its delete failed: the pool keeps it (never handed out) and retries
    /// the delete with backoff until it goes ([`PoolStats::delete_failed`](super::PoolStats::delete_failed)).
    /// The lease has ended all the same.
    DeleteFailed(KernelError),
}

/// 64 bits from the operating system's entropy source, for a run id and to
/// seed the generator of the tokens' own bits: so that tokens of another
/// pool or an earlier run are not this run's, and no token is guessable.
pub(super) fn entropy() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No entropy source (a sandbox without getrandom(2)): the std
        // library's per-process random hash keys are the next best thing.
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(std::process::id())
    })
}

impl Pool {
    /// An `Acquire`: the most recently pooled idle tap, at once; or, when
    /// none is idle, the next released tap whose reset is under way (if
    /// more are resetting than Acquires already wait for), else a create
    /// under `fallback`; either answered by [`Event::Acquired`].
    ///
    /// Refused (and nothing changes) when `fallback` is a pool name or a
    /// name the pool holds.
    ///
    /// A driver whose caller is gone by the time the lease comes (it gave
    /// up waiting) releases the lease at once: a lease is never left to
    /// nobody.
    pub fn acquire(&mut self, fallback: TapName, now: Instant) -> Answer<Result<Lease, PoolError>> {
        self.acquire_for(fallback, None, now)
    }

    /// An `Acquire` (see [`Pool::acquire`]) whose caller names who will
    /// hold the lease (a VM's id): the pool keeps that label with the tap,
    /// and puts it on every [`Command`](super::Command) about the tap
    /// (its create, and its reset or delete after the release) until the
    /// tap is back in the pool or gone, and on its warnings. The label
    /// changes nothing else; without one, nothing is kept or looked up.
    pub fn acquire_for(
        &mut self,
        fallback: TapName,
        holder: Option<Holder>,
        now: Instant,
    ) -> Answer<Result<Lease, PoolError>> {
        if self.inventory.naming().index_of(&fallback).is_some() {
            return Answer::Now(Err(PoolError::FallbackIsPoolName { name: fallback }));
        }
        if let Some(tap) = self.taps.get(&fallback) {
            return Answer::Now(Err(PoolError::NameInUse {
                name: fallback,
                state: tap.state,
            }));
        }
        if self.waiting.iter().any(|(_, name, _)| *name == fallback) {
            return Answer::Now(Err(PoolError::NameInUse {
                name: fallback,
                state: TapState::CreatingForLease,
            }));
        }
        if let Some(name) = self.idle.pop() {
            self.counters.hits += 1;
            let lease = self.grant(name, LeaseSource::Pool);
            self.label(name, holder);
            // The idle stock just shrank: queued resets may now be due.
            self.flush_resets(now, false);
            return Answer::Now(Ok(lease));
        }
        let request = self.request_id();
        if self.resetting > self.waiting.len() && !self.shutting_down {
            // A released tap is on its way back: waiting for its reset
            // (µs with a worker awake, a fraction of a ms on the real
            // kernel) beats creating a tap now and deleting one later.
            self.waiting.push_back((request, fallback, holder));
            self.flush_resets(now, true);
        } else {
            self.create_fallback(request, fallback, holder);
        }
        Answer::Later(request)
    }

    /// Leases `name` under a new token.
    pub(super) fn grant(&mut self, name: TapName, source: LeaseSource) -> Lease {
        let token = loop {
            let token = LeaseToken {
                run: self.run_id,
                serial: self.tokens.u64(..),
            };
            // 2^-64 a draw; never a live one.
            if let std::collections::hash_map::Entry::Vacant(slot) = self.leases.entry(token) {
                slot.insert(name);
                break token;
            }
        };
        if let Some(tap) = self.taps.get_mut(&name) {
            tap.state = TapState::Leased;
            tap.lease = Some(token);
        }
        Lease {
            name,
            token,
            source,
        }
    }

    /// The tap a live lease holds.
    pub fn leased_tap(&self, token: LeaseToken) -> Option<TapName> {
        self.leases.get(&token).copied()
    }

    /// Creates `fallback` for the Acquire `request`, which found no tap. A
    /// name that became known while the Acquire waited (a `Seed` leased it)
    /// is refused: one name, one state.
    fn create_fallback(&mut self, request: RequestId, fallback: TapName, holder: Option<Holder>) {
        if let Some(tap) = self.taps.get(&fallback) {
            let error = PoolError::NameInUse {
                name: fallback,
                state: tap.state,
            };
            self.events.push_back(Event::Acquired {
                request,
                result: Err(error),
            });
            return;
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
        self.label(fallback, holder);
        self.send(
            Lane::Create,
            Op::Create {
                name: fallback,
                spec,
            },
            Purpose::LeaseCreate {
                name: fallback,
                request,
            },
        );
    }

    /// Acquires waiting for a tap in reset beyond `keep` (the last to come
    /// first) create their fallback taps instead: fewer taps are on their
    /// way back than Acquires wait for them.
    pub(super) fn stop_waiting_beyond(&mut self, keep: usize) {
        while self.waiting.len() > keep {
            if let Some((request, fallback, holder)) = self.waiting.pop_back() {
                self.create_fallback(request, fallback, holder);
            }
        }
    }

    /// Records how the create of a fallback tap ended, and answers its
    /// caller. On failure the name is forgotten: the kernel left nothing
    /// behind.
    pub(super) fn lease_created(
        &mut self,
        name: TapName,
        request: RequestId,
        result: Result<CreatedTap, KernelError>,
        _now: Instant,
    ) {
        let vanished = self.removed_in_flight.remove(&name);
        let renamed = self.renamed_in_flight.remove(&name);
        let result = match result {
            Ok(created) => {
                self.counters.created += 1;
                if let Some(tap) = self.taps.get_mut(&name) {
                    tap.index = Some(created.index);
                    tap.mac = created.mac;
                    if vanished == Some(created.index) {
                        // Removed behind our back before we heard it was made:
                        // the caller gets the name, which stays reserved until
                        // they release it (and are told it vanished).
                        tap.vanished = true;
                        self.counters.vanished += 1;
                    }
                    if renamed == Some(created.index) {
                        // Renamed before we heard it was made: its holder
                        // cannot open it by this name; it is deleted (by
                        // index) when released.
                        tap.retire = true;
                    }
                }
                Ok(self.grant(name, LeaseSource::Created))
            }
            Err(error) => {
                self.forget(&name);
                self.counters.failures += 1;
                Err(PoolError::Kernel(error))
            }
        };
        self.events.push_back(Event::Acquired { request, result });
    }

    /// A `Release` of the lease `token`. Its tap goes back to the pool while
    /// idle plus resetting plus being created stays within the size and it
    /// is a pool tap (after a reset, queued), answered at once; else it is
    /// deleted (by interface index), answered by [`Event::Released`] when
    /// the delete is done.
    ///
    /// A token that is not a live lease of this pool is refused, with no
    /// kernel call: [`PoolError::LeaseEnded`] for one of this run's (a stale
    /// or duplicate release), [`PoolError::UnknownLease`] for any other.
    pub fn release(
        &mut self,
        token: LeaseToken,
        now: Instant,
    ) -> Answer<Result<Released, PoolError>> {
        let Some(name) = self.leases.remove(&token) else {
            return Answer::Now(Err(if token.run == self.run_id {
                PoolError::LeaseEnded { token }
            } else {
                PoolError::UnknownLease { token }
            }));
        };
        let has_room = self.has_room();
        let is_pool_name = self.inventory.naming().index_of(&name).is_some();
        let Some(tap) = self.taps.get_mut(&name) else {
            // Unreachable: a live lease's tap is known. Nothing to do.
            tracing::error!(%token, tap = %name, "a live lease without its tap");
            return Answer::Now(Ok(Released::Vanished));
        };
        tap.lease = None;
        if tap.vanished {
            self.forget(&name);
            if self.inventory.recycle() == Recycle::Fresh {
                // It would have been deleted and replaced now.
                self.refill(now);
            }
            return Answer::Now(Ok(Released::Vanished));
        }
        let tap_retired = tap.retire;
        if has_room && is_pool_name && !tap.retire && self.inventory.recycle() == Recycle::Reset {
            tap.state = TapState::Resetting;
            self.queue_reset(name, now);
            return Answer::Now(Ok(Released::Pooled));
        }
        tap.state = TapState::Deleting;
        let request = self.request_id();
        self.delete(name, Some(request));
        if is_pool_name && (tap_retired || self.inventory.recycle() == Recycle::Fresh) {
            // Gone for good (renamed, or never reused): its replacement
            // need not wait for the delete (~16 ms).
            self.replace(now);
        }
        Answer::Later(request)
    }
}

/// A token serializes as `"<run>-<serial>"`, two groups of 16 hex digits
/// (a string, since TOML and many JSON readers have no 128-bit integers),
/// and deserializes only from that form.
#[cfg(feature = "serde")]
impl serde::Serialize for LeaseToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{:016x}-{:016x}", self.run, self.serial))
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for LeaseToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let part = |hex: &str| {
            (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(hex, 16).ok())
                .flatten()
        };
        text.split_once('-')
            .and_then(|(run, serial)| {
                Some(LeaseToken {
                    run: part(run)?,
                    serial: part(serial)?,
                })
            })
            .ok_or_else(|| {
                serde::de::Error::invalid_value(
                    serde::de::Unexpected::Str(&text),
                    &"a lease token: 16 hex digits, '-', 16 hex digits",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::sim::SimKernel;

    #[test]
    fn a_warm_acquire_is_answered_at_once_lifo() {
        let (mut p, mut k, now) = warmed(2);
        let last = *p.idle().last().unwrap();
        let lease = acquire_now(&mut p, "vm-1", now).unwrap();
        assert_eq!(lease.name, last);
        assert_eq!(lease.source, LeaseSource::Pool);
        assert_eq!(p.stats().hits, 1);
        assert!(run(&mut p, &mut k, now).is_empty(), "no kernel call");
    }

    #[test]
    fn a_miss_creates_the_fallback_and_answers_by_event() {
        let (mut p, mut k, now) = warmed(0);
        let Answer::Later(request) = p.acquire(name("vm-1"), now) else {
            panic!("a miss waits on the kernel")
        };
        assert_eq!(p.state_of(&name("vm-1")), Some(TapState::CreatingForLease));
        let events = untoken(run(&mut p, &mut k, now));
        assert_eq!(
            events,
            [Event::Acquired {
                request,
                result: Ok(lease(name("vm-1"), LeaseSource::Created))
            }]
        );
        assert!(k.contains(name("vm-1")));
        assert_eq!(p.state_of(&name("vm-1")), Some(TapState::Leased));
    }

    #[test]
    fn a_failed_fallback_create_answers_the_error_and_forgets_the_name() {
        let (mut p, mut k, now) = warmed(0);
        k.inject(crate::sim::Fault::nth(
            crate::sim::SimOp::Create,
            1,
            libc::EPERM,
        ));
        let Answer::Later(request) = p.acquire(name("vm-1"), now) else {
            panic!()
        };
        let events = run(&mut p, &mut k, now);
        assert!(matches!(
            &events[..],
            [Event::Acquired { request: r, result: Err(PoolError::Kernel(_)) }] if *r == request
        ));
        assert_eq!(p.state_of(&name("vm-1")), None);
        assert_eq!(p.stats().failures, 1);
    }

    #[test]
    fn refused_acquires_change_nothing() {
        let (mut p, _k, now) = warmed(1);
        let before = p.stats();
        assert_eq!(
            p.acquire(name("tap-pool-7"), now),
            Answer::Now(Err(PoolError::FallbackIsPoolName {
                name: name("tap-pool-7")
            }))
        );
        let held = acquire_now(&mut p, "vm-1", now).unwrap().name;
        assert!(matches!(
            p.acquire(held, now),
            Answer::Now(Err(PoolError::FallbackIsPoolName { .. }))
        ));
        assert_eq!(p.stats().idle, before.idle - 1);
    }

    #[test]
    fn release_pools_while_there_is_room_and_deletes_beyond() {
        let (mut p, mut k, now) = warmed(1);
        let a = acquire_now(&mut p, "vm-a", now).unwrap().name;
        assert_eq!(p.release_tap(a, now), Answer::Now(Ok(Released::Pooled)));
        assert_eq!(p.state_of(&a), Some(TapState::Resetting));
        run(&mut p, &mut k, now);
        assert_eq!(p.state_of(&a), Some(TapState::Idle));
        // A fallback tap is never pooled.
        let _ = acquire_now(&mut p, "vm-a", now).unwrap();
        let Answer::Later(create) = p.acquire(name("vm-b"), now) else {
            panic!()
        };
        let events = run(&mut p, &mut k, now);
        assert!(matches!(&events[..], [Event::Acquired { request, .. }] if *request == create));
        let Answer::Later(request) = p.release_tap(name("vm-b"), now) else {
            panic!("a fallback tap is deleted")
        };
        let events = run(&mut p, &mut k, now);
        assert_eq!(
            events,
            [Event::Released {
                request,
                result: Ok(Released::Deleted)
            }]
        );
        assert!(!k.contains(name("vm-b")));
    }

    #[test]
    fn double_release_is_refused() {
        let (mut p, mut k, now) = warmed(1);
        let a = acquire_now(&mut p, "vm-a", now).unwrap();
        p.release(a.token, now);
        let ended = Answer::Now(Err(PoolError::LeaseEnded { token: a.token }));
        assert_eq!(p.release(a.token, now), ended);
        run(&mut p, &mut k, now);
        assert_eq!(p.release(a.token, now), ended);
        // The tap's next lease has a token of its own; the old one still
        // ends nothing.
        let b = acquire_now(&mut p, "vm-b", now).unwrap();
        assert_eq!(b.name, a.name);
        assert_eq!(p.release(a.token, now), ended);
        assert_eq!(p.state_of(&b.name), Some(TapState::Leased));
        assert_eq!(p.release(b.token, now), Answer::Now(Ok(Released::Pooled)));
    }

    #[test]
    fn a_fresh_pool_deletes_a_released_tap_and_replaces_it() {
        let mut config = config(1);
        config.recycle = Recycle::Fresh;
        let (mut p, mut k, now) = warmed_with(config);
        let a = acquire_now(&mut p, "vm-a", now).unwrap().name;
        let Answer::Later(request) = p.release_tap(a, now) else {
            panic!("a fresh pool's release waits for the delete");
        };
        let events = run(&mut p, &mut k, now);
        assert!(
            events.iter().any(|e| matches!(e, Event::Released { request: r, result: Ok(Released::Deleted) } if *r == request)),
            "{events:?}"
        );
        assert!(!k.contains(a), "the released tap is gone");
        assert_eq!(
            k.calls(crate::sim::SimOp::Reset),
            0,
            "never reset, never reused"
        );
        assert_eq!(p.idle().len(), 1, "refilled");
        assert_ne!(p.idle()[0], a);
    }

    #[test]
    fn acquire_is_lifo_then_creates_the_fallback() {
        let (mut p, mut k, now) = warmed_with(windowed(2, 2));
        let idle = p.idle().to_vec();
        assert_eq!(
            acquire_now(&mut p, "vm-a", now).map(untoken_lease),
            Ok(lease(idle[1], LeaseSource::Pool))
        );
        assert_eq!(
            acquire_now(&mut p, "vm-b", now).map(untoken_lease),
            Ok(lease(idle[0], LeaseSource::Pool))
        );
        let Answer::Later(request) = p.acquire(name("vm-c"), now) else {
            panic!("a miss creates")
        };
        let create = take_one(&mut p);
        assert_eq!(
            create.op,
            Op::Create {
                name: name("vm-c"),
                spec: *p.tap_spec()
            }
        );
        execute(&mut p, &mut k, &create, now);
        assert_eq!(
            untoken(events(&mut p)),
            [Event::Acquired {
                request,
                result: Ok(lease(name("vm-c"), LeaseSource::Created))
            }]
        );
        let s = p.stats();
        assert_eq!((s.hits, s.misses, s.leased, s.created), (2, 1, 3, 3));
    }

    #[test]
    fn room_counts_creates_and_resets_in_flight() {
        let (mut p, _k, now) = warmed_with(windowed(2, 2));
        let a = acquire_now(&mut p, "vm-a", now).unwrap().name;
        let b = acquire_now(&mut p, "vm-b", now).unwrap().name;
        p.warm(now); // two creates in flight, not yet run
        assert_eq!(take_commands(&mut p).len(), 2);
        assert!(matches!(p.release_tap(a, now), Answer::Later(_)), "deleted");
        assert!(matches!(p.release_tap(b, now), Answer::Later(_)), "deleted");

        // A reset in flight takes room too: with one tap resetting and one
        // create in flight, a size-2 pool has no room for the other tap.
        let (mut p, _k, now) = warmed_with(windowed(2, 1));
        let c = acquire_now(&mut p, "vm-c", now).unwrap().name;
        let d = acquire_now(&mut p, "vm-d", now).unwrap().name;
        assert_eq!(p.release_tap(c, now), Answer::Now(Ok(Released::Pooled)));
        assert_eq!(p.state_of(&c), Some(TapState::Resetting));
        p.warm(now); // one create: idle 0 + creating 1 + resetting 1 = 2
        assert_eq!(p.stats().creating, 1);
        assert!(matches!(p.release_tap(d, now), Answer::Later(_)), "deleted");
        assert_eq!(p.state_of(&d), Some(TapState::Deleting));
    }

    #[test]
    fn bad_releases_change_nothing() {
        let (mut p, _k, now) = warmed_with(windowed(1, 1));
        let before = p.stats();
        let made_up = LeaseToken::from_u128(7);
        assert_eq!(
            p.release(made_up, now),
            Answer::Now(Err(PoolError::UnknownLease { token: made_up }))
        );
        assert_eq!(p.stats(), before);
        assert!(p.poll_batch().is_none());
        acquire_now(&mut p, "vm-a", now).unwrap();
        let Answer::Later(_) = p.acquire(name("vm-b"), now) else {
            panic!("creating vm-b")
        };
        assert!(matches!(
            p.release_tap(name("vm-b"), now),
            Answer::Now(Err(PoolError::UnknownLease { .. }))
        ));
        assert!(matches!(
            p.acquire(name("tap-pool-7"), now),
            Answer::Now(Err(PoolError::FallbackIsPoolName { .. }))
        ));
        assert!(matches!(
            p.acquire(name("vm-b"), now),
            Answer::Now(Err(PoolError::NameInUse {
                state: TapState::CreatingForLease,
                ..
            }))
        ));
        assert_eq!(p.state_of(&name("vm-b")), Some(TapState::CreatingForLease));
    }

    #[test]
    fn a_fallback_that_vanished_before_its_create_reported_keeps_its_name() {
        let (mut p, mut k, now) = fresh(windowed(0, 1));
        let Answer::Later(request) = p.acquire(name("vm-a"), now) else {
            panic!("a miss creates")
        };
        let create = take_one(&mut p);
        let created = outcome(&mut k, &create);
        // Removed before the pool hears the create went through.
        remove_behind_its_back(&mut p, &k, name("vm-a"), now);
        p.complete(create.id, created, now);
        assert!(matches!(
            &events(&mut p)[..],
            [Event::Acquired { request: r, result: Ok(_) }] if *r == request
        ));
        assert!(
            matches!(p.acquire(name("vm-a"), now), Answer::Now(Err(_))),
            "name reused under its holder"
        );
        assert_eq!(
            p.release_tap(name("vm-a"), now),
            Answer::Now(Ok(Released::Vanished))
        );
    }

    /// A pool of one whose only tap was released and is being reset: the
    /// reset command is taken, not yet carried out.
    fn one_tap_in_reset() -> (Pool, SimKernel, Instant, TapName, super::super::Command) {
        let (mut p, k, now) = warmed(1);
        let tap = acquire_now(&mut p, "vm-a", now).unwrap().name;
        assert_eq!(p.release_tap(tap, now), Answer::Now(Ok(Released::Pooled)));
        let reset = take_one(&mut p);
        (p, k, now, tap, reset)
    }

    #[test]
    fn an_acquire_that_finds_the_stock_empty_waits_for_a_tap_in_reset() {
        let (mut p, mut k, now, tap, reset) = one_tap_in_reset();
        let Answer::Later(request) = p.acquire(name("vm-b"), now) else {
            panic!("waits")
        };
        assert!(p.poll_batch().is_none(), "no create");
        // Its fallback name is reserved meanwhile.
        assert!(matches!(
            p.acquire(name("vm-b"), now),
            Answer::Now(Err(PoolError::NameInUse { .. }))
        ));
        execute(&mut p, &mut k, &reset, now);
        assert_eq!(
            untoken(events(&mut p)),
            [Event::Acquired {
                request,
                result: Ok(lease(tap, LeaseSource::Pool))
            }]
        );
        assert_eq!(p.state_of(&tap), Some(TapState::Leased));
        assert!(!k.contains(name("vm-b")));
        let s = p.stats();
        assert_eq!((s.hits, s.misses, s.idle, s.leased), (2, 0, 0, 1));
    }

    #[test]
    fn a_waiting_acquire_creates_its_fallback_if_the_reset_fails() {
        let (mut p, mut k, now, _tap, reset) = one_tap_in_reset();
        let Answer::Later(request) = p.acquire(name("vm-b"), now) else {
            panic!("waits")
        };
        // A second Acquire has no tap left to wait for: it creates.
        let Answer::Later(second) = p.acquire(name("vm-c"), now) else {
            panic!()
        };
        k.inject(crate::sim::Fault::nth(
            crate::sim::SimOp::Reset,
            1,
            libc::EIO,
        ));
        execute(&mut p, &mut k, &reset, now);
        let mut answered: Vec<_> = run(&mut p, &mut k, now)
            .into_iter()
            .filter_map(|e| match e {
                Event::Acquired {
                    request,
                    result: Ok(lease),
                } => Some((request, untoken_lease(lease))),
                _ => None,
            })
            .collect();
        answered.sort_by_key(|(r, _)| *r);
        assert_eq!(
            answered,
            [
                (request, lease(name("vm-b"), LeaseSource::Created)),
                (second, lease(name("vm-c"), LeaseSource::Created))
            ]
        );
    }

    #[test]
    fn a_drain_turns_waiting_acquires_into_creates() {
        let (mut p, mut k, now, _tap, _reset) = one_tap_in_reset();
        let Answer::Later(request) = p.acquire(name("vm-b"), now) else {
            panic!("waits")
        };
        p.drain(now);
        let events = untoken(run(&mut p, &mut k, now));
        assert!(events.contains(&Event::Acquired {
            request,
            result: Ok(lease(name("vm-b"), LeaseSource::Created))
        }));
    }

    #[test]
    fn the_fallback_name_of_a_waiting_acquire_cannot_be_released() {
        let (mut p, mut k, now, _tap, reset) = one_tap_in_reset();
        let Answer::Later(_) = p.acquire(name("vm-b"), now) else {
            panic!("waits")
        };
        assert!(matches!(
            p.release_tap(name("vm-b"), now),
            Answer::Now(Err(PoolError::UnknownLease { .. }))
        ));
        assert!(p.poll_batch().is_none(), "no delete");
        // The reset fails: the waiter creates its fallback, and nothing
        // deletes it under them.
        k.inject(crate::sim::Fault::nth(
            crate::sim::SimOp::Reset,
            1,
            libc::EIO,
        ));
        execute(&mut p, &mut k, &reset, now);
        run(&mut p, &mut k, now);
        assert!(k.contains(name("vm-b")));
        assert_eq!(p.state_of(&name("vm-b")), Some(TapState::Leased));
    }

    fn holder(label: &str) -> Holder {
        Holder::new(label).unwrap()
    }

    #[test]
    fn a_holder_label_goes_with_the_tap_until_it_is_back_in_the_pool() {
        let (mut p, mut k, now) = warmed(1);
        // A warm hit: the label is the lease's.
        let Answer::Now(Ok(warm)) = p.acquire_for(name("vm-a"), Some(holder("vm-a")), now) else {
            panic!("a warm hit")
        };
        assert_eq!(p.lease_holder(warm.token), Some(&holder("vm-a")));
        // A miss: the create names the holder.
        let Answer::Later(_) = p.acquire_for(name("vm-b"), Some(holder("vm-b")), now) else {
            panic!("a miss")
        };
        let create = take_one(&mut p);
        assert!(matches!(create.op, Op::Create { .. }));
        assert_eq!(create.holder, Some(holder("vm-b")));
        execute(&mut p, &mut k, &create, now);
        let [
            Event::Acquired {
                result: Ok(cold), ..
            },
        ] = &events(&mut p)[..]
        else {
            panic!("the lease")
        };
        assert_eq!(p.lease_holder(cold.token), Some(&holder("vm-b")));
        // Released: the reset of the pool tap and the delete of the
        // fallback tap still name who held them.
        assert_eq!(
            p.release(warm.token, now),
            Answer::Now(Ok(Released::Pooled))
        );
        assert!(matches!(p.release(cold.token, now), Answer::Later(_)));
        let commands = take_commands(&mut p);
        let labels: Vec<(&str, Option<&str>)> = commands
            .iter()
            .map(|c| (c.op.name(), c.holder.as_ref().map(Holder::as_str)))
            .collect();
        assert_eq!(labels, [("reset", Some("vm-a")), ("delete", Some("vm-b"))]);
        for command in &commands {
            execute(&mut p, &mut k, command, now);
        }
        // Back in the pool, or gone: nobody's any more.
        assert_eq!(p.holder(&warm.name), None);
        assert_eq!(p.holder(&cold.name), None);
        assert!(p.holders.is_empty());
        // The next lease of the same tap, unlabelled, names nobody.
        let next = acquire_now(&mut p, "vm-c", now).unwrap();
        assert_eq!(next.name, warm.name);
        assert_eq!(p.lease_holder(next.token), None);
        p.release(next.token, now);
        assert_eq!(take_one(&mut p).holder, None);
    }

    #[test]
    fn a_waiting_acquire_labels_the_tap_it_gets_from_its_reset() {
        let (mut p, mut k, now, tap, reset) = one_tap_in_reset();
        let Answer::Later(_) = p.acquire_for(name("vm-b"), Some(holder("vm-b")), now) else {
            panic!("waits")
        };
        execute(&mut p, &mut k, &reset, now);
        let [
            Event::Acquired {
                result: Ok(lease), ..
            },
        ] = &events(&mut p)[..]
        else {
            panic!("the lease")
        };
        assert_eq!(lease.name, tap);
        assert_eq!(p.lease_holder(lease.token), Some(&holder("vm-b")));
    }

    #[test]
    fn without_labels_nothing_is_kept() {
        let (mut p, mut k, now) = warmed(1);
        let lease = acquire_now(&mut p, "vm-a", now).unwrap();
        acquire_created(&mut p, &mut k, "vm-b", now);
        p.release(lease.token, now);
        assert!(take_commands(&mut p).iter().all(|c| c.holder.is_none()));
        assert!(p.holders.is_empty());
    }
}
