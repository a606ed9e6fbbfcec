//! Deletes: of released taps the pool has no room for, of failed resets,
//! of Seed's leftovers, and a drain's one by one; a failed delete is retried
//! with backoff for ever, and the tap stays known meanwhile.

use std::time::Instant;

use super::{Event, Lane, Pool, Purpose, Released, RequestId, TapState};
use crate::kernel::{KernelError, Op};
use crate::name::TapName;

impl Pool {
    /// Asks the kernel to delete `name` (by index where known); the outcome
    /// answers `answer`, if a caller waits on it.
    pub(super) fn delete(&mut self, name: TapName, answer: Option<RequestId>) {
        let device = self.device(name);
        self.send(
            Lane::Delete,
            Op::Delete { device },
            Purpose::Delete { name, answer },
        );
    }

    /// Records how a delete ended. A successful delete refills the pool if
    /// it is short (see `refill`), unless the pool is shutting down. A
    /// device the kernel no longer has is forgotten; any other failure
    /// leaves the tap known as [`TapState::DeleteFailed`] and schedules a
    /// retry. A release waiting on the delete is answered with what became
    /// of the tap: deleted, vanished, or its delete failed and is retried.
    pub(super) fn delete_finished(
        &mut self,
        name: TapName,
        answer: Option<RequestId>,
        result: Result<(), KernelError>,
        now: Instant,
    ) {
        let deleting = matches!(
            self.taps.get(&name).map(|t| t.state),
            Some(TapState::Deleting | TapState::Draining)
        );
        match &result {
            Ok(()) => {
                if deleting {
                    self.forget(&name);
                }
                self.counters.deleted += 1;
                self.drain.count_deleted(name);
                self.refill(now);
            }
            // Gone already, or the index is no longer a tap (whatever is
            // there now was not touched), or the privileged helper says it
            // is not this pool's: nothing of the pool's is left to delete.
            Err(error) if error.is_out_of_reach() => {
                if deleting {
                    self.forget(&name);
                }
                self.drain.forget(name);
                if answer.is_some() {
                    // A released tap someone removed first: what a release
                    // of a tap known to have vanished answers, and replaced
                    // as such.
                    self.counters.vanished += 1;
                    self.refill(now);
                }
            }
            Err(_) => {
                self.counters.failures += 1;
                if deleting && let Some(tap) = self.taps.get_mut(&name) {
                    tap.state = TapState::DeleteFailed;
                    let after = self.delete_retry.delay(tap.delete_attempts);
                    tap.delete_attempts = tap.delete_attempts.saturating_add(1);
                    self.delete_retries.insert((super::later(now, after), name));
                }
                self.drain.forget(name);
            }
        }
        if let Some(request) = answer {
            // The lease ended when the release came: whatever the delete
            // met, the release went through, and says what became of the
            // tap.
            let released = match result {
                Ok(()) => Released::Deleted,
                Err(error) if error.is_out_of_reach() => Released::Vanished,
                Err(error) => Released::DeleteFailed(error),
            };
            self.events.push_back(Event::Released {
                request,
                result: Ok(released),
            });
        }
    }

    /// Retries the delete of a tap whose delete failed, if it still needs it.
    pub(super) fn retry_delete(&mut self, name: TapName) {
        if let Some(tap) = self.taps.get_mut(&name)
            && tap.state == TapState::DeleteFailed
        {
            tap.state = TapState::Deleting;
            self.delete(name, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::*;
    use super::super::{Answer, Event, Released, TapState};
    use crate::kernel::Op;
    use crate::sim::{Fault, SimOp};

    #[test]
    fn a_failed_delete_is_kept_and_retried_with_backoff_until_it_goes() {
        let (mut p, mut k, now) = warmed(0);
        let tap = acquire_created(&mut p, &mut k, "vm-1", now);
        for n in 1..=4 {
            k.inject(Fault::nth(SimOp::Delete, n, libc::EIO));
        }
        let Answer::Later(request) = p.release_tap(tap, now) else {
            panic!()
        };
        let released = run(&mut p, &mut k, now);
        assert!(matches!(
            &released[..],
            [Event::Released { request: r, result: Ok(Released::DeleteFailed(_)) }] if *r == request
        ));
        assert_eq!(p.state_of(&tap), Some(TapState::DeleteFailed));
        assert_eq!(p.stats().delete_failed, 1);
        // Retried for ever, each wait twice the last.
        let mut at = now;
        let mut delays = Vec::new();
        for attempt in 0..3 {
            let due = p.poll_timeout().expect("a retry is due");
            delays.push((due - at).as_millis());
            // Nothing happens before it is due.
            p.handle_timeout(due - Duration::from_millis(1));
            assert!(p.poll_batch().is_none());
            p.handle_timeout(due);
            let retry = take_one(&mut p);
            assert!(
                matches!(retry.op, Op::Delete { device } if device.name == tap && device.index.is_some()),
                "{retry:?}"
            );
            execute(&mut p, &mut k, &retry, due);
            assert!(events(&mut p).is_empty(), "nobody waits on a retry");
            assert_eq!(p.state_of(&tap), Some(TapState::DeleteFailed), "{attempt}");
            at = due;
        }
        assert_eq!(delays, [100, 200, 400]);
        let last = p.poll_timeout().expect("retried again");
        assert_eq!(last - at, Duration::from_millis(800));
        p.handle_timeout(last);
        run(&mut p, &mut k, last);
        assert_eq!(p.state_of(&tap), None);
        assert!(!k.contains(tap));
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_delete_of_a_device_already_gone_forgets_it() {
        let (mut p, mut k, now) = warmed(0);
        let tap = acquire_created(&mut p, &mut k, "vm-1", now);
        k.remove_externally(tap);
        p.release_tap(tap, now);
        run(&mut p, &mut k, now);
        assert_eq!(p.state_of(&tap), None);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn a_backoff_beyond_the_clock_waits_for_ever_instead_of_panicking() {
        let mut config = config(0);
        config.delete_retry.initial = Duration::MAX;
        config.delete_retry.max = Duration::MAX;
        config.warm_retry = config.delete_retry;
        let (mut p, mut k, now) = warmed_with(config);
        let tap = acquire_created(&mut p, &mut k, "vm-1", now);
        k.inject(Fault::nth(SimOp::Delete, 1, libc::EBUSY));
        p.release_tap(tap, now);
        run(&mut p, &mut k, now);
        assert_eq!(p.state_of(&tap), Some(TapState::DeleteFailed));
        assert!(p.poll_timeout().is_some_and(|at| at > now));
    }
}
