//! Leases: `Acquire` hands out an idle tap or creates one under the caller's
//! fallback name; `Release` gives it back (reset and pooled while the pool
//! has room, else deleted).

use std::collections::hash_map::Entry;
use std::time::Instant;

use super::{Answer, Event, Lane, Pool, PoolError, Purpose, RequestId, Tap, TapState};
use crate::kernel::{CreatedTap, KernelError, Op};
use crate::name::TapName;

/// Where a leased tap came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseSource {
    /// An idle tap from the pool: no kernel call was needed.
    Pool,
    /// Created for this request under the fallback name.
    Created,
}

/// A tap handed to a caller, who holds it until it releases it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The tap's name: open it with `TUNSETIFF` as a VMM does.
    pub name: TapName,
    /// Whether it came from the pool or was created.
    pub source: LeaseSource,
}

/// What became of a released tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// It is back in the pool (after its reset, where resets are on).
    Pooled,
    /// It was deleted from the kernel.
    Deleted,
    /// Someone had already removed it from the kernel behind the pool's back.
    Vanished,
}

impl Pool {
    /// An `Acquire`: the most recently pooled idle tap, at once; or, when
    /// none is idle, the next released tap whose reset is under way (if
    /// more are resetting than Acquires already wait for), else a create
    /// under `fallback`; either answered by [`Event::Acquired`].
    ///
    /// Refused (and nothing changes) when `fallback` is a pool name or a
    /// name the pool holds.
    pub fn acquire(&mut self, fallback: TapName, now: Instant) -> Answer<Result<Lease, PoolError>> {
        if self.naming.index_of(&fallback).is_some() {
            return Answer::Now(Err(PoolError::FallbackIsPoolName { name: fallback }));
        }
        if let Some(tap) = self.taps.get(&fallback) {
            return Answer::Now(Err(PoolError::NameInUse {
                name: fallback,
                state: tap.state,
            }));
        }
        if self.waiting.iter().any(|(_, name)| *name == fallback) {
            return Answer::Now(Err(PoolError::NameInUse {
                name: fallback,
                state: TapState::CreatingForLease,
            }));
        }
        if let Some(name) = self.idle.pop() {
            if let Some(tap) = self.taps.get_mut(&name) {
                tap.state = TapState::Leased;
            }
            self.counters.hits += 1;
            // The idle stock just shrank: queued resets may now be due.
            self.flush_resets(now, false);
            return Answer::Now(Ok(Lease {
                name,
                source: LeaseSource::Pool,
            }));
        }
        let request = self.request_id();
        if self.resetting > self.waiting.len() && !self.shutting_down {
            // A released tap is on its way back: waiting for its reset
            // (µs with a worker awake, a fraction of a ms on the real
            // kernel) beats creating a tap now and deleting one later.
            self.waiting.push_back((request, fallback));
            self.flush_resets(now, true);
        } else {
            self.create_fallback(request, fallback);
        }
        Answer::Later(request)
    }

    /// Creates `fallback` for the Acquire `request`, which found no tap.
    fn create_fallback(&mut self, request: RequestId, fallback: TapName) {
        self.counters.misses += 1;
        let spec = self.create_spec();
        self.taps.insert(
            fallback,
            Tap {
                grouped: spec.device_group.is_some(),
                ..Tap::new(TapState::CreatingForLease)
            },
        );
        self.send(
            Lane::Fast,
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
            if let Some((request, fallback)) = self.waiting.pop_back() {
                self.create_fallback(request, fallback);
            }
        }
    }

    /// Records how the create of a fallback tap ended, and answers its
    /// caller. On failure the name is forgotten: the kernel left nothing
    /// behind.
    pub(super) fn lease_created(
        &mut self,
        name: TapName,
        request: super::RequestId,
        result: Result<CreatedTap, KernelError>,
        _now: Instant,
    ) {
        let vanished = self.removed_in_flight.remove(&name);
        let result = match result {
            Ok(created) => {
                self.counters.created += 1;
                if let Some(tap) = self.taps.get_mut(&name) {
                    tap.state = TapState::Leased;
                    tap.index = Some(created.index);
                    tap.mac = created.mac;
                    if vanished == Some(created.index) {
                        // Removed behind our back before we heard it was made:
                        // the caller gets the name, which stays reserved until
                        // they release it (and are told it vanished).
                        tap.vanished = true;
                        self.counters.vanished += 1;
                    }
                }
                Ok(Lease {
                    name,
                    source: LeaseSource::Created,
                })
            }
            Err(error) => {
                self.taps.remove(&name);
                self.counters.failures += 1;
                Err(PoolError::Kernel(error))
            }
        };
        self.events.push_back(Event::Acquired { request, result });
    }

    /// A `Release`. A leased pool tap goes back to the pool while idle plus
    /// resetting plus being created stays within the size (after a reset,
    /// queued), answered at once; anything else is deleted, answered by
    /// [`Event::Released`] when the delete is done. A name the pool does not
    /// know is deleted too (it may be a caller's own tap).
    pub fn release(&mut self, name: TapName, now: Instant) -> Answer<Result<Released, PoolError>> {
        if self.waiting.iter().any(|(_, fallback)| *fallback == name) {
            // An Acquire waits with this name reserved: it was never
            // handed out.
            return Answer::Now(Err(PoolError::NotLeased { name }));
        }
        let has_room = self.has_room();
        let is_pool_name = self.naming.index_of(&name).is_some();
        let reset_on_release = self.reset_on_release;
        let tap = match self.taps.entry(name) {
            Entry::Occupied(e) if e.get().state == TapState::Leased && e.get().vanished => {
                e.remove();
                return Answer::Now(Ok(Released::Vanished));
            }
            Entry::Occupied(mut e) => {
                let tap = e.get_mut();
                match tap.state {
                    TapState::Leased if has_room && is_pool_name => {
                        if reset_on_release {
                            tap.state = TapState::Resetting;
                        } else {
                            tap.state = TapState::Idle;
                            self.idle.push(name);
                        }
                    }
                    TapState::Leased => tap.state = TapState::Deleting,
                    TapState::Idle | TapState::Resetting => {
                        return Answer::Now(Err(PoolError::AlreadyIdle { name }));
                    }
                    TapState::CreatingForLease | TapState::CreatingForPool => {
                        return Answer::Now(Err(PoolError::NotLeased { name }));
                    }
                    state @ (TapState::Deleting | TapState::Draining | TapState::DeleteFailed) => {
                        return Answer::Now(Err(PoolError::AlreadyReleased { name, state }));
                    }
                }
                *tap
            }
            Entry::Vacant(e) => *e.insert(Tap::new(TapState::Deleting)),
        };
        match tap.state {
            TapState::Resetting => {
                self.queue_reset(name, now);
                Answer::Now(Ok(Released::Pooled))
            }
            TapState::Idle => Answer::Now(Ok(Released::Pooled)),
            _ => {
                self.bump_index_past(&name);
                let request = self.request_id();
                self.delete(name, Some(request));
                Answer::Later(request)
            }
        }
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
        let events = run(&mut p, &mut k, now);
        assert_eq!(
            events,
            [Event::Acquired {
                request,
                result: Ok(Lease {
                    name: name("vm-1"),
                    source: LeaseSource::Created
                })
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
        assert_eq!(p.release(a, now), Answer::Now(Ok(Released::Pooled)));
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
        let Answer::Later(request) = p.release(name("vm-b"), now) else {
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
        let a = acquire_now(&mut p, "vm-a", now).unwrap().name;
        p.release(a, now);
        assert_eq!(
            p.release(a, now),
            Answer::Now(Err(PoolError::AlreadyIdle { name: a }))
        );
        run(&mut p, &mut k, now);
        assert_eq!(
            p.release(a, now),
            Answer::Now(Err(PoolError::AlreadyIdle { name: a }))
        );
    }

    #[test]
    fn release_without_reset_pools_at_once() {
        let mut config = config(1);
        config.reset_on_release = false;
        let (mut p, mut k, now) = warmed_with(config);
        let a = acquire_now(&mut p, "vm-a", now).unwrap().name;
        assert_eq!(p.release(a, now), Answer::Now(Ok(Released::Pooled)));
        assert_eq!(p.state_of(&a), Some(TapState::Idle));
        assert!(run(&mut p, &mut k, now).is_empty());
        assert_eq!(k.calls(crate::sim::SimOp::Reset), 0);
    }

    #[test]
    fn acquire_is_lifo_then_creates_the_fallback() {
        let (mut p, mut k, now) = warmed_with(windowed(2, 2));
        let idle = p.idle().to_vec();
        assert_eq!(
            acquire_now(&mut p, "vm-a", now),
            Ok(Lease {
                name: idle[1],
                source: LeaseSource::Pool
            })
        );
        assert_eq!(
            acquire_now(&mut p, "vm-b", now),
            Ok(Lease {
                name: idle[0],
                source: LeaseSource::Pool
            })
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
            events(&mut p),
            [Event::Acquired {
                request,
                result: Ok(Lease {
                    name: name("vm-c"),
                    source: LeaseSource::Created
                })
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
        assert!(matches!(p.release(a, now), Answer::Later(_)), "deleted");
        assert!(matches!(p.release(b, now), Answer::Later(_)), "deleted");

        // A reset in flight takes room too: with one tap resetting and one
        // create in flight, a size-2 pool has no room for the other tap.
        let (mut p, _k, now) = warmed_with(windowed(2, 1));
        let c = acquire_now(&mut p, "vm-c", now).unwrap().name;
        let d = acquire_now(&mut p, "vm-d", now).unwrap().name;
        assert_eq!(p.release(c, now), Answer::Now(Ok(Released::Pooled)));
        assert_eq!(p.state_of(&c), Some(TapState::Resetting));
        p.warm(now); // one create: idle 0 + creating 1 + resetting 1 = 2
        assert_eq!(p.stats().creating, 1);
        assert!(matches!(p.release(d, now), Answer::Later(_)), "deleted");
        assert_eq!(p.state_of(&d), Some(TapState::Deleting));
    }

    #[test]
    fn bad_releases_change_nothing() {
        let (mut p, _k, now) = warmed_with(windowed(1, 1));
        let before = p.stats();
        assert_eq!(
            p.release(name("tap-pool-0"), now),
            Answer::Now(Err(PoolError::AlreadyIdle {
                name: name("tap-pool-0")
            }))
        );
        assert_eq!(p.stats(), before);
        assert!(p.poll_batch().is_none());
        acquire_now(&mut p, "vm-a", now).unwrap();
        let Answer::Later(_) = p.acquire(name("vm-b"), now) else {
            panic!("creating vm-b")
        };
        assert_eq!(
            p.release(name("vm-b"), now),
            Answer::Now(Err(PoolError::NotLeased { name: name("vm-b") }))
        );
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
            p.release(name("vm-a"), now),
            Answer::Now(Ok(Released::Vanished))
        );
    }

    /// A pool of one whose only tap was released and is being reset: the
    /// reset command is taken, not yet carried out.
    fn one_tap_in_reset() -> (Pool, SimKernel, Instant, TapName, super::super::Command) {
        let (mut p, k, now) = warmed(1);
        let tap = acquire_now(&mut p, "vm-a", now).unwrap().name;
        assert_eq!(p.release(tap, now), Answer::Now(Ok(Released::Pooled)));
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
            events(&mut p),
            [Event::Acquired {
                request,
                result: Ok(Lease {
                    name: tap,
                    source: LeaseSource::Pool
                })
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
                } => Some((request, lease)),
                _ => None,
            })
            .collect();
        answered.sort_by_key(|(r, _)| *r);
        assert_eq!(
            answered,
            [
                (
                    request,
                    Lease {
                        name: name("vm-b"),
                        source: LeaseSource::Created
                    }
                ),
                (
                    second,
                    Lease {
                        name: name("vm-c"),
                        source: LeaseSource::Created
                    }
                )
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
        let events = run(&mut p, &mut k, now);
        assert!(events.contains(&Event::Acquired {
            request,
            result: Ok(Lease {
                name: name("vm-b"),
                source: LeaseSource::Created
            })
        }));
    }

    #[test]
    fn the_fallback_name_of_a_waiting_acquire_cannot_be_released() {
        let (mut p, mut k, now, _tap, reset) = one_tap_in_reset();
        let Answer::Later(_) = p.acquire(name("vm-b"), now) else {
            panic!("waits")
        };
        assert_eq!(
            p.release(name("vm-b"), now),
            Answer::Now(Err(PoolError::NotLeased { name: name("vm-b") }))
        );
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
}
