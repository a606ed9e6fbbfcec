//! Warm-up: create taps until idle plus being created reaches the size,
//! with at most `create_window` creates in flight; refill after the pool
//! lost taps once it runs low; retry a failed warm-up with backoff.

use std::time::{Duration, Instant};

use super::{Event, Lane, Pool, PoolError, Purpose, RequestId, Tap, TapState};
use crate::kernel::{CreatedTap, KernelError, Op};
use crate::name::TapName;

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
#[non_exhaustive]
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
    /// fills to the size at once.
    pub(super) fn refill(&mut self, now: Instant) {
        let low = (self.size / 8).max(1);
        if self.warm.run.is_none() && !self.shutting_down && self.occupancy() + low <= self.size {
            self.start_warm_run();
            self.advance_warm(now);
        }
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
        match result {
            Ok(created) if vanished == Some(created.index) => {
                self.taps.remove(&name);
                self.counters.created += 1;
                self.counters.vanished += 1;
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
                self.taps.remove(&name);
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
            let Some(name) = self.naming.name(self.next) else {
                let error = PoolError::IndexExhausted {
                    prefix: self.naming.prefix().to_owned(),
                    max_index: self.naming.max_index(),
                };
                if let Some(run) = &mut self.warm.run {
                    run.failure = Some(WarmFailure { name: None, error });
                }
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
            self.send(
                Lane::Fast,
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
                    self.warm.retry_at = Some(now + after);
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
        tracing::debug!(created = report.created.len(), "tap pool warm-up finished");
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
    use super::*;
    use crate::sim::{Fault, SimOp};

    fn creates(p: &mut Pool) -> Vec<TapName> {
        let mut out = Vec::new();
        while let Some(batch) = p.poll_batch() {
            for c in batch.commands {
                match c.op {
                    Op::Create { name, .. } => out.push(name),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        out
    }

    #[test]
    fn warm_fills_to_size_within_the_window_and_coalesces() {
        let mut config = config(3);
        config.create_window = 2;
        let mut p = Pool::new(config).unwrap();
        let mut k = crate::sim::SimKernel::new();
        let now = Instant::now();
        let first = p.warm(now);
        let second = p.warm(now); // joins: nothing new
        let events = run(&mut p, &mut k, now);
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
    }

    #[test]
    fn at_most_the_window_is_in_flight() {
        let mut config = config(3);
        config.create_window = 2;
        let mut p = Pool::new(config).unwrap();
        p.warm(Instant::now());
        assert_eq!(creates(&mut p), [name("tap-pool-0"), name("tap-pool-1")]);
    }

    #[test]
    fn a_failed_warm_up_stops_and_is_retried_with_backoff() {
        let mut config = config(4);
        config.create_window = 1;
        let mut p = Pool::new(config).unwrap();
        let mut k = crate::sim::SimKernel::new();
        let t0 = Instant::now();
        k.inject(Fault::nth(SimOp::Create, 2, libc::ENOMEM));
        p.warm(t0);
        let events = run(&mut p, &mut k, t0);
        let [Event::Warmed { report, .. }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(report.created.len(), 1);
        assert_eq!(
            report.failure.as_ref().unwrap().name,
            Some(name("tap-pool-1"))
        );
        assert_eq!(report.retry_in, Some(Duration::from_millis(100)));
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(100)));
        p.handle_timeout(t0 + Duration::from_millis(100));
        run(&mut p, &mut k, t0 + Duration::from_millis(100));
        assert_eq!(p.stats().idle, 4);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_refill_waits_until_the_pool_is_an_eighth_short() {
        let (mut p, k, now) = warmed(16);
        let idle = p.idle().to_vec();
        let remove = |p: &mut Pool, name: TapName| {
            let index = p.taps.get(&name).and_then(|t| t.index).unwrap();
            k.remove_externally(name);
            p.link_removed(name, index, now);
        };
        // One tap gone: 15 of 16 is not low yet.
        remove(&mut p, idle[0]);
        assert!(p.poll_batch().is_none());
        // Two gone: 16 / 8 short.
        remove(&mut p, idle[1]);
        assert_eq!(creates(&mut p).len(), 2, "refills to the size");
    }
}
