//! Warm-up: create taps until idle plus being created reaches the size,
//! with at most `create_window` creates in flight; refill after the pool
//! lost taps once it runs low; retry a failed warm-up with backoff.

use std::time::{Duration, Instant};

use super::{Event, Lane, Pool, PoolError, Purpose, RequestId, Tap, TapState};
use crate::config::Recycle;
use crate::kernel::{CreatedTap, KernelError, Op};
use crate::name::TapName;

/// Why a warm-up stopped early.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WarmFailure {
    /// The name whose create failed, if one was tried.
    pub name: Option<TapName>,
    /// What failed.
    pub error: PoolError,
}

/// What a warm-up did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct WarmReport {
    /// The taps it created and put in the pool, in order of completion.
    pub created: Vec<TapName>,
    /// The first failure, after which it started no more creates.
    pub failure: Option<WarmFailure>,
    /// It stopped because the pool is shutting down.
    pub shut_down: bool,
    /// When the failure will be retried, if it will.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub retry_in: Option<Duration>,
}

#[derive(Debug, Default)]
struct Run {
    created: Vec<TapName>,
    failure: Option<WarmFailure>,
}

/// The warm-up under way, if any, who waits for it, and its retry clock.
#[derive(Debug, Default)]
pub(super) struct Warmer {
    run: Option<Run>,
    waiters: Vec<RequestId>,
    /// Failed warm-ups in a row.
    attempts: u32,
    /// When the failed warm-up is tried again.
    retry_at: Option<Instant>,
}

impl Warmer {
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
}

impl Pool {
    /// A `Warm`: starts a warm-up, or joins the one under way (several
    /// coalesce). Answered by [`Event::Warmed`] when it ends (in the same
    /// call's events if there is nothing to do).
    pub fn warm(&mut self, now: Instant) -> RequestId {
        self.warm_asked = true;
        let request = self.request_id();
        self.warm.waiters.push(request);
        self.start_warm_run();
        self.advance_warm(now);
        request
    }

    fn start_warm_run(&mut self) {
        if self.warm.run.is_none() {
            self.warm.run = Some(Run::default());
        }
    }

    /// Refills after the pool lost a tap (a delete, a vanished tap): only
    /// once it has run low, `size / 8` taps (at least one) short, and then
    /// up to the size. Without the margin, a refill that starts while a
    /// holder is about to give its tap back makes that tap find no room and
    /// be deleted, and that delete's refill does the same: a create and a
    /// delete per cycle for as long as taps come and go. An explicit `Warm`
    /// fills to the size at once. A fresh pool ([`Recycle::Fresh`]) has no
    /// margin: no released tap ever comes back to find no room.
    pub(super) fn refill(&mut self, now: Instant) {
        let low = match self.inventory.recycle() {
            Recycle::Fresh => 1,
            _ => (self.size / 8).max(1),
        };
        self.refill_below(now, low);
    }

    /// Replaces a tap the pool lost for good while its holder's turn was
    /// over (a released tap that could not be reset and was deleted): at
    /// once, with no margin, since no holder will give that tap back.
    pub(super) fn replace(&mut self, now: Instant) {
        self.refill_below(now, 1);
    }

    /// Starts a warm-up to the size if the pool was warmed and is at least
    /// `low` taps short.
    fn refill_below(&mut self, now: Instant, low: usize) {
        if self.warm_asked
            && self.warm.run.is_none()
            && !self.shutting_down
            && self.occupancy() + low <= self.size
        {
            self.start_warm_run();
            self.advance_warm(now);
        }
    }

    /// The next pool name to create: the lowest index from the next one up
    /// that no tap the pool knows and no other device has; past the last
    /// index, from 0 again. `None` when every name is taken.
    fn free_pool_name(&mut self) -> Option<TapName> {
        let names = self.inventory.naming().max_index().saturating_add(1);
        let start = if self.next > self.inventory.naming().max_index() {
            0
        } else {
            self.next
        };
        // Every taken name is a known tap or a known foreign device, so
        // at most that many are skipped before a free one.
        let limit = (self.taps.len() + self.taken.len()).saturating_add(1) as u64;
        let mut index = start;
        for _ in 0..limit.min(names) {
            let name = self.inventory.naming().name(index)?;
            index = if index == self.inventory.naming().max_index() {
                0
            } else {
                index + 1
            };
            if !self.taps.contains_key(&name) && !self.taken.contains(&name) {
                self.next = index;
                return Some(name);
            }
        }
        None
    }

    /// A retry of a failed warm-up is due.
    pub(super) fn retry_warm(&mut self, now: Instant) {
        self.warm.retry_at = None;
        if self.warm.run.is_none() && self.has_room() {
            self.start_warm_run();
            self.advance_warm(now);
        }
    }

    /// Records how a warm-up create ended.
    pub(super) fn warm_created(
        &mut self,
        name: TapName,
        result: Result<CreatedTap, KernelError>,
        _now: Instant,
    ) {
        self.creating_for_pool -= 1;
        let vanished = self.removed_in_flight.remove(&name);
        let renamed = self.renamed_in_flight.remove(&name);
        match result {
            Ok(created) if vanished == Some(created.index) => {
                self.forget(&name);
                self.counters.created += 1;
                self.counters.vanished += 1;
            }
            Ok(created) if renamed == Some(created.index) => {
                // Renamed before we heard it was made: it can never be
                // handed out by its name; it goes, by index.
                self.counters.created += 1;
                self.counters.vanished += 1;
                if let Some(tap) = self.taps.get_mut(&name) {
                    tap.index = Some(created.index);
                    tap.state = TapState::Deleting;
                }
                self.delete(name, None);
            }
            Err(KernelError::Exists { .. }) => {
                // A device the pool does not own has this name: it is left
                // alone, and its name is skipped from now on.
                tracing::debug!(tap = %name, "a pool name is taken by another device; skipping it");
                self.forget(&name);
                self.taken.insert(name);
            }
            Ok(created) => {
                if let Some(tap) = self.taps.get_mut(&name) {
                    tap.index = Some(created.index);
                    tap.mac = created.mac;
                    if self.drain.is_running() {
                        tap.state = TapState::Draining;
                    } else {
                        tap.state = TapState::Idle;
                        self.idle.push(name);
                    }
                }
                self.counters.created += 1;
                if let Some(run) = &mut self.warm.run {
                    run.created.push(name);
                }
            }
            Err(error) => {
                tracing::warn!(tap = %name, %error, "tap pool warm-up failed");
                self.forget(&name);
                self.counters.failures += 1;
                if let Some(run) = &mut self.warm.run {
                    run.failure.get_or_insert(WarmFailure {
                        name: Some(name),
                        error: PoolError::Kernel(error),
                    });
                }
            }
        }
    }

    /// Fills the warm-up's window with creates while the pool has room, then
    /// ends the run if nothing is left in flight.
    pub(super) fn advance_warm(&mut self, now: Instant) {
        if self.warm.run.is_none() {
            return;
        }
        // A run ends only when none of its creates is in flight, so every
        // pool create in flight is this run's.
        while self
            .warm
            .run
            .as_ref()
            .is_some_and(|run| run.failure.is_none())
            && self.creating_for_pool < self.create_window
            && self.has_room()
        {
            let Some(name) = self.free_pool_name() else {
                let error = PoolError::IndexExhausted {
                    prefix: self.inventory.naming().prefix().to_owned(),
                    max_index: self.inventory.naming().max_index(),
                };
                if let Some(run) = &mut self.warm.run {
                    run.failure = Some(WarmFailure { name: None, error });
                }
                break;
            };
            let spec = self.tap;
            self.taps.insert(
                name,
                Tap {
                    grouped: spec.device_group.is_some(),
                    ..Tap::new(TapState::CreatingForPool)
                },
            );
            self.creating_for_pool += 1;
            self.send(
                Lane::Create,
                Op::Create { name, spec },
                Purpose::WarmCreate(name),
            );
        }
        if self.creating_for_pool > 0 {
            return;
        }
        let Some(run) = self.warm.run.take() else {
            return;
        };
        let mut report = WarmReport {
            created: run.created,
            failure: run.failure,
            shut_down: self.shutting_down,
            retry_in: None,
        };
        match &report.failure {
            None => self.warm.attempts = 0,
            Some(f) if matches!(f.error, PoolError::IndexExhausted { .. }) => {}
            Some(_) if self.shutting_down => {}
            Some(_) => {
                if self.warm.attempts < self.warm_retry.max_attempts && self.warm.retry_at.is_none()
                {
                    let after = self.warm_retry.delay(self.warm.attempts);
                    self.warm.attempts += 1;
                    self.warm.retry_at = Some(super::later(now, after));
                    report.retry_in = Some(after);
                }
            }
        }
        if let Some(failure) = &report.failure {
            tracing::warn!(
                tap = ?failure.name,
                error = %failure.error,
                retry_in_ms = report.retry_in.map(|d| d.as_millis() as u64),
                "tap pool warm-up stopped"
            );
        }
        // A warm-up someone asked for is part of the pool's lifecycle; a
        // refill after a loss (one per few releases under churn) is not.
        if self.warm.waiters.is_empty() {
            tracing::debug!(
                created = report.created.len(),
                failed = report.failure.is_some(),
                idle = self.idle.len(),
                "tap pool refill finished"
            );
        } else {
            tracing::info!(
                created = report.created.len(),
                failed = report.failure.is_some(),
                idle = self.idle.len(),
                size = self.size,
                retry_in_ms = report.retry_in.map(|d| d.as_millis() as u64),
                shut_down = report.shut_down,
                "tap pool warm-up finished"
            );
        }
        for request in std::mem::take(&mut self.warm.waiters) {
            self.events.push_back(Event::Warmed {
                request,
                report: report.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Answer, Command, Released};
    use super::*;
    use crate::config::{Backoff, PoolConfig};
    use crate::kernel::TapSpec;
    use crate::sim::{Fault, SimOp};

    /// The names `commands` create; panics on any other call.
    fn create_names(commands: &[Command]) -> Vec<TapName> {
        commands
            .iter()
            .map(|c| match &c.op {
                Op::Create { name, .. } => *name,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn creates(p: &mut Pool) -> Vec<TapName> {
        create_names(&take_commands(p))
    }

    #[test]
    fn warm_fills_to_size_within_the_window_and_coalesces() {
        let (mut p, mut k, now) = fresh(windowed(3, 2));
        let first = p.warm(now);
        let window = take_commands(&mut p);
        assert_eq!(
            create_names(&window),
            [name("tap-pool-0"), name("tap-pool-1")]
        );
        let second = p.warm(now); // joins: nothing new
        assert!(p.poll_batch().is_none());
        // As each create lands, the window takes the next.
        execute(&mut p, &mut k, &window[0], now);
        let next = take_commands(&mut p);
        assert_eq!(create_names(&next), [name("tap-pool-2")]);
        execute(&mut p, &mut k, &window[1], now);
        assert!(p.poll_batch().is_none(), "the pool is full");
        assert!(events(&mut p).is_empty(), "still creating");
        execute(&mut p, &mut k, &next[0], now);
        let events = events(&mut p);
        assert_eq!(events.len(), 2);
        for (event, request) in events.iter().zip([first, second]) {
            let Event::Warmed { request: r, report } = event else {
                panic!("{event:?}")
            };
            assert_eq!(*r, request);
            assert_eq!(report.created.len(), 3);
        }
        assert_eq!(p.stats().idle, 3);
        let again = p.warm(now);
        assert_eq!(
            p.poll_event(),
            Some(Event::Warmed {
                request: again,
                report: WarmReport::default()
            })
        );
        assert!(p.poll_batch().is_none());
    }

    #[test]
    fn at_most_the_window_is_in_flight() {
        let mut p = Pool::new(windowed(3, 2)).unwrap();
        p.warm(Instant::now());
        assert_eq!(creates(&mut p), [name("tap-pool-0"), name("tap-pool-1")]);
    }

    #[test]
    fn a_failed_warm_up_stops_and_is_retried_with_backoff() {
        let (mut p, mut k, t0) = fresh(windowed(4, 1));
        k.inject(Fault::nth(SimOp::Create, 2, libc::ENOMEM));
        k.inject(Fault::nth(SimOp::Create, 3, libc::ENOMEM));
        p.warm(t0);
        let events = run(&mut p, &mut k, t0);
        let [Event::Warmed { report, .. }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(report.created, [name("tap-pool-0")]);
        assert_eq!(
            report.failure.as_ref().unwrap().name,
            Some(name("tap-pool-1"))
        );
        assert_eq!(report.retry_in, Some(Duration::from_millis(100)));
        assert_eq!(k.calls(SimOp::Create), 2, "no create after the failure");
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(p.poll_timeout(), Some(t1));
        // Nothing happens before it is due.
        p.handle_timeout(t1 - Duration::from_millis(1));
        assert!(p.poll_batch().is_none());
        // The retry (joined by a Warm) fails again: the next delay doubles.
        p.handle_timeout(t1);
        let joined = p.warm(t1);
        let events = run(&mut p, &mut k, t1);
        let [Event::Warmed { request, report }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(*request, joined);
        assert_eq!(report.retry_in, Some(Duration::from_millis(200)));
        let t2 = t1 + Duration::from_millis(200);
        assert_eq!(p.poll_timeout(), Some(t2));
        // The third try succeeds; the failed indices are not reused.
        p.handle_timeout(t2);
        let joined = p.warm(t2);
        let events = run(&mut p, &mut k, t2);
        let [Event::Warmed { request, report }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(*request, joined);
        assert!(report.failure.is_none() && report.retry_in.is_none());
        assert_eq!(
            report.created,
            [name("tap-pool-3"), name("tap-pool-4"), name("tap-pool-5")]
        );
        assert_eq!(p.stats().idle, 4);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn warm_retries_are_bounded() {
        let (mut p, mut k, mut now) = fresh(PoolConfig {
            warm_retry: Backoff {
                initial: Duration::from_millis(1),
                max: Duration::from_millis(4),
                max_attempts: 2,
            },
            ..windowed(2, 1)
        });
        k.inject(Fault::always(SimOp::Create, libc::EIO));
        let mut retries = 0;
        p.warm(now);
        loop {
            run(&mut p, &mut k, now);
            let Some(at) = p.poll_timeout() else { break };
            retries += 1;
            now = at;
            p.handle_timeout(now);
        }
        assert_eq!(retries, 2);
        assert_eq!(k.calls(SimOp::Create), 3, "one try and two retries");
    }

    #[test]
    fn size_zero_never_pools() {
        let (mut p, mut k, now) = fresh(windowed(0, 1));
        let warm = p.warm(now);
        assert_eq!(
            p.poll_event(),
            Some(Event::Warmed {
                request: warm,
                report: WarmReport::default()
            })
        );
        assert!(p.poll_batch().is_none());
        let a = acquire_created(&mut p, &mut k, "vm-a", now);
        let Answer::Later(request) = p.release_tap(a, now) else {
            panic!("a size-0 pool deletes every release")
        };
        let delete = take_one(&mut p);
        assert!(matches!(delete.op, Op::Delete { device } if device.name == a));
        execute(&mut p, &mut k, &delete, now);
        assert_eq!(
            events(&mut p),
            [Event::Released {
                request,
                result: Ok(Released::Deleted)
            }]
        );
        assert!(p.poll_batch().is_none(), "no refill with size 0");
    }

    #[test]
    fn index_exhaustion_is_a_typed_failure_and_not_retried() {
        // Ten names, all held: a warm-up finds none free.
        let (mut p, mut k, now) = fresh(PoolConfig {
            prefix: "fourteen-bytes".into(),
            ..windowed(10, 10)
        });
        p.warm(now);
        let events = run(&mut p, &mut k, now);
        let report = warm_report(&events).unwrap();
        assert_eq!(report.created.len(), 10);
        let held: Vec<_> = (0..10)
            .map(|i| acquire_now(&mut p, &format!("vm-{i}"), now).unwrap())
            .collect();
        p.warm(now);
        let events = run(&mut p, &mut k, now);
        let report = warm_report(&events).unwrap();
        assert!(report.created.is_empty());
        assert!(matches!(
            report.failure.as_ref().unwrap().error,
            PoolError::IndexExhausted { max_index: 9, .. }
        ));
        assert!(report.retry_in.is_none());
        assert_eq!(p.poll_timeout(), None);
        // A name comes free when its holder gives it back.
        p.release(held[3].token, now);
        run(&mut p, &mut k, now);
        assert_eq!(p.idle(), [held[3].name]);
    }

    #[test]
    fn indices_wrap_to_the_lowest_free_one_past_the_end() {
        // Ten names: churn through them many times over.
        let (mut p, mut k, now) = fresh(PoolConfig {
            prefix: "fourteen-bytes".into(),
            ..windowed(2, 2)
        });
        p.warm(now);
        run(&mut p, &mut k, now);
        let mut created = Vec::new();
        for i in 0..40 {
            let a = acquire_now(&mut p, &format!("vm-{i}"), now).unwrap();
            // Keep one of every eight: its name must never be created again
            // while held.
            p.warm(now);
            for e in run(&mut p, &mut k, now) {
                if let Event::Warmed { report, .. } = e {
                    assert!(report.failure.is_none(), "{report:?}");
                    created.extend(report.created);
                }
            }
            if i % 8 != 0 {
                p.release(a.token, now);
                run(&mut p, &mut k, now);
            } else {
                assert_eq!(p.state_of(&a.name), Some(TapState::Leased));
            }
        }
        assert!(created.len() >= 40, "{}", created.len());
        assert!(p.stats().next_index <= 9);
        // Every idle tap and every held one is a distinct kernel device.
        assert_eq!(k.taps().len(), p.stats().idle + p.stats().leased);
    }

    #[test]
    fn a_pool_name_taken_by_another_device_is_skipped_not_a_failure() {
        let (mut p, mut k, now) = fresh(windowed(2, 2));
        // Someone else's tap holds the pool's first name.
        crate::kernel::Kernel::create_tap(&mut k, name("tap-pool-0"), &TapSpec::default()).unwrap();
        p.warm(now);
        let events = run(&mut p, &mut k, now);
        let report = warm_report(&events).unwrap();
        assert!(report.failure.is_none(), "{report:?}");
        assert_eq!(report.created, [name("tap-pool-1"), name("tap-pool-2")]);
    }

    #[test]
    fn a_refill_waits_until_the_pool_is_an_eighth_short() {
        // Size 16: a refill starts 16 / 8 = 2 taps short.
        let (mut p, mut k, now) = warmed_with(windowed(16, 4));
        // One tap gone: 15 of 16 is not low yet.
        let gone = p.idle()[0];
        remove_behind_its_back(&mut p, &k, gone, now);
        assert!(p.poll_batch().is_none(), "one short: no refill yet");
        // A holder that gives its tap back finds room (no create raced it).
        let t = acquire_now(&mut p, "vm-a", now).unwrap().name;
        assert_eq!(p.release_tap(t, now), Answer::Now(Ok(Released::Pooled)));
        run(&mut p, &mut k, now);
        assert_eq!(p.state_of(&t), Some(TapState::Idle));
        // Two gone: 16 / 8 short.
        let gone = p.idle()[0];
        remove_behind_its_back(&mut p, &k, gone, now);
        let refill = take_commands(&mut p);
        assert_eq!(create_names(&refill).len(), 2, "refills to the size");
        for command in &refill {
            execute(&mut p, &mut k, command, now);
        }
        assert_eq!(p.stats().idle, 16, "two short: refilled to the size");
    }
}
