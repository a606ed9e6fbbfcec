//! Resets: a released tap goes back to its pooled configuration before it
//! is handed out again, or is deleted if that fails.
//!
//! Resets go to the kernel in batches, so that under load one hand-off to a
//! kernel worker serves many releases: a quiet pool resets a released tap at
//! once; a busy one sends the queue when it holds half the pool (at most
//! 64) or as many taps as are idle (so the idle stock never runs dry waiting
//! for resets), or when [`RESET_WINDOW`] has passed since the last batch. A
//! long queue goes in batches of at most half the pool, so that several
//! workers share it. An Acquire that finds no idle tap while taps are in
//! reset waits for the next one back rather than creating a tap (see
//! `lease`), and sends the queue at once.

use std::time::{Duration, Instant};

use super::{Batch, Event, Lane, LeaseSource, Pool, Purpose, Tap, TapState};
use crate::kernel::{KernelError, Op};
use crate::name::TapName;

/// How long released taps may wait for their reset while more releases
/// gather into one batch; a pool that sent no batch for this long resets at
/// once.
pub const RESET_WINDOW: Duration = Duration::from_millis(1);

/// Released taps whose reset is not yet sent, and the batching clock.
#[derive(Debug)]
pub(super) struct Resets {
    queue: Vec<super::Command>,
    /// How many queued resets make a batch due, and the largest batch.
    batch: usize,
    /// When the last batch went.
    last_batch: Option<Instant>,
    /// When the queue goes even if no batch is due by size.
    deadline: Option<Instant>,
}

impl Resets {
    pub(super) fn new(size: usize) -> Resets {
        Resets {
            queue: Vec::new(),
            batch: (size / 2).clamp(1, 64),
            last_batch: None,
            deadline: None,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl Pool {
    /// Queues the reset of `name`, now `Resetting`, and sends the queue if a
    /// batch is due.
    pub(super) fn queue_reset(&mut self, name: TapName, now: Instant) {
        let Some(&Tap { index, mac, .. }) = self.taps.get(&name) else {
            return;
        };
        self.resetting += 1;
        let op = Op::Reset {
            device: crate::kernel::Device { name, index },
            spec: self.tap,
            mac,
        };
        let command = self.command(op, Purpose::Reset(name));
        self.resets.queue.push(command);
        self.flush_resets(now, false);
    }

    /// Sends the queued resets if a batch is due (or `force`), else makes
    /// sure a deadline will send them.
    pub(super) fn flush_resets(&mut self, now: Instant, force: bool) {
        let r = &mut self.resets;
        if r.queue.is_empty() {
            return;
        }
        let waiting = r.queue.len();
        let due = force
            || waiting >= r.batch
            || waiting >= self.idle.len()
            || r.last_batch.is_none_or(|at| now >= at + RESET_WINDOW);
        if !due {
            if r.deadline.is_none() {
                r.deadline = r.last_batch.map(|at| at + RESET_WINDOW);
            }
            return;
        }
        r.last_batch = Some(now);
        r.deadline = None;
        let mut queue = std::mem::take(&mut r.queue);
        while !queue.is_empty() {
            let rest = queue.split_off(queue.len().min(r.batch));
            self.batches.push_back(Batch {
                lane: Lane::Reset,
                commands: queue,
            });
            queue = rest;
        }
    }

    /// Records how a reset ended: the tap goes idle, or, if the reset failed,
    /// is deleted instead.
    pub(super) fn reset_finished(
        &mut self,
        name: TapName,
        result: Result<(), KernelError>,
        now: Instant,
    ) {
        let Some(tap) = self.taps.get_mut(&name) else {
            return;
        };
        if tap.state != TapState::Resetting {
            return;
        }
        self.resetting -= 1;
        let removed = tap.index.is_some() && self.removed_in_flight.remove(&name) == tap.index;
        let retire = tap.retire;
        match result {
            Ok(()) if removed => {
                self.forget(&name);
                self.counters.vanished += 1;
                self.refill(now);
            }
            Ok(()) => {
                // The reset put it (back) in the pool's group, if any.
                tap.grouped = self.tap.device_group.is_some();
                if self.drain.is_running() {
                    tap.state = TapState::Draining;
                } else if retire {
                    // Renamed behind the pool's back while in reset: it
                    // cannot be handed out by its name; it goes, by index.
                    tap.state = TapState::Deleting;
                    self.delete(name, None);
                    self.replace(now);
                } else if let Some((request, _, holder)) = self.waiting.pop_front() {
                    // An Acquire found the stock empty and waits for it.
                    self.counters.hits += 1;
                    let lease = self.grant(name, LeaseSource::Pool);
                    self.label(name, holder);
                    self.events.push_back(Event::Acquired {
                        request,
                        result: Ok(lease),
                    });
                } else {
                    tap.state = TapState::Idle;
                    self.idle.push(name);
                    // Back in the pool: nobody's.
                    self.unlabel(&name);
                }
            }
            // Gone, or the index is no longer a tap, or the privileged
            // helper says it is not this pool's: nothing of the pool's is
            // left there, and whatever is there now was not touched.
            Err(error) if error.is_out_of_reach() => {
                self.forget(&name);
                self.counters.vanished += 1;
                self.refill(now);
            }
            Err(KernelError::Renamed { now: to, .. }) => {
                // The tap itself, under another name: nobody can open it by
                // its pool name, so it goes (by index; the reset changed
                // nothing).
                tracing::warn!(tap = %name, holder = self.holders.get(&name).map(tracing::field::display), renamed = ?to, "a released tap was renamed behind the pool's back; deleting it");
                tap.state = TapState::Deleting;
                self.delete(name, None);
                self.replace(now);
            }
            Err(error @ KernelError::Residue { .. }) => {
                // Its tenant left something a reset cannot take away (a
                // file still attached, an owner the spec lacks): it must not
                // be handed out again. Nothing was exposed: it was not
                // pooled. Deleted by index, and replaced.
                tracing::warn!(tap = %name, holder = self.holders.get(&name).map(tracing::field::display), %error, "a released tap cannot be reset; deleting it");
                self.counters.discarded += 1;
                tap.state = TapState::Deleting;
                self.delete(name, None);
                self.replace(now);
            }
            Err(error) => {
                tracing::warn!(tap = %name, holder = self.holders.get(&name).map(tracing::field::display), %error, "resetting a released tap failed; deleting it");
                self.counters.failures += 1;
                tap.state = TapState::Deleting;
                self.delete(name, None);
            }
        }
        // A tap lost to its reset leaves an Acquire waiting for it without
        // one to come: it creates its fallback tap after all.
        self.stop_waiting_beyond(self.resetting);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Answer, Released};
    use super::*;

    fn batches_of(p: &mut Pool) -> Vec<super::super::Batch> {
        std::iter::from_fn(|| p.poll_batch()).collect()
    }

    /// The commands of every batch the pool hands out now, one batch a row.
    fn batches(p: &mut Pool) -> Vec<Vec<Op>> {
        std::iter::from_fn(|| p.poll_batch())
            .map(|b| b.commands.into_iter().map(|c| c.op).collect())
            .collect()
    }

    /// What a hostile tenant can do through its file, and what the pool
    /// makes of it: an owner is put back; a group (the spec has none), a
    /// file kept open past the release, the other queue mode: the tap is
    /// deleted and replaced, never handed out.
    #[test]
    fn a_tenants_residue_is_restored_or_the_tap_is_deleted_and_replaced() {
        type Tenant = fn(&crate::sim::SimKernel, TapName);
        let cases: [(&str, Tenant, bool); 4] = [
            (
                "owner",
                |k, t| assert!(k.tamper(t, |l| l.owner = Some(60001))),
                true,
            ),
            (
                "group",
                |k, t| assert!(k.tamper(t, |l| l.group = Some(60001))),
                false,
            ),
            (
                "file kept open",
                |k, t| assert!(k.set_in_use(t, true)),
                false,
            ),
            (
                "queue mode",
                |k, t| assert!(k.tamper(t, |l| l.multi_queue = true)),
                false,
            ),
        ];
        for (what, tenant, restorable) in cases {
            let (mut p, mut k, now) = warmed(2);
            let owner = k.tap(p.idle()[0]).unwrap().owner;
            let lease = acquire_now(&mut p, "vm-a", now).unwrap();
            tenant(&k, lease.name);
            p.release(lease.token, now);
            run(&mut p, &mut k, now);
            let s = p.stats();
            if restorable {
                assert_eq!(p.state_of(&lease.name), Some(TapState::Idle), "{what}");
                assert_eq!(k.tap(lease.name).unwrap().owner, owner, "{what}");
                assert_eq!(s.discarded, 0, "{what}");
            } else {
                assert_eq!(p.state_of(&lease.name), None, "{what}: never pooled again");
                assert!(!k.contains(lease.name), "{what}: deleted");
                assert_eq!(s.discarded, 1, "{what}");
                assert_eq!(s.failures, 0, "{what}: not a failure");
            }
            assert_eq!(s.idle, 2, "{what}: the pool is whole again");
            for idle in p.idle() {
                let tap = k.tap(*idle).unwrap();
                assert!(
                    !tap.in_use && tap.group.is_none() && tap.owner == owner,
                    "{what}: {tap:?}"
                );
            }
        }
    }

    #[test]
    fn a_quiet_pool_resets_at_once_and_a_busy_one_batches_within_the_window() {
        let (mut p, mut k, t0) = warmed(8);
        let taps: Vec<TapName> = (0..3)
            .map(|i| acquire_now(&mut p, &format!("vm-{i}"), t0).unwrap().name)
            .collect();
        // Quiet: the first release goes at once.
        assert_eq!(
            p.release_tap(taps[0], t0),
            Answer::Now(Ok(Released::Pooled))
        );
        run(&mut p, &mut k, t0);
        assert_eq!(k.calls(crate::sim::SimOp::Reset), 1);
        // Within the window, releases gather...
        let t1 = t0 + Duration::from_micros(100);
        p.release_tap(taps[1], t1);
        p.release_tap(taps[2], t1);
        assert!(p.poll_batch().is_none());
        assert_eq!(p.poll_timeout(), Some(t0 + RESET_WINDOW));
        p.handle_timeout(t0 + RESET_WINDOW - Duration::from_nanos(1));
        assert!(p.poll_batch().is_none());
        // ...and go together when it closes.
        p.handle_timeout(t0 + RESET_WINDOW);
        assert_eq!(p.poll_timeout(), None);
        let sent = batches_of(&mut p);
        assert_eq!(
            sent.iter().map(|b| b.commands.len()).collect::<Vec<_>>(),
            [2]
        );
        for batch in sent {
            for c in batch.commands {
                let outcome = c.op.run(&mut k);
                p.complete(c.id, outcome, t0 + RESET_WINDOW);
            }
        }
        assert_eq!(p.stats().idle, 8);
    }

    #[test]
    fn a_queue_as_long_as_the_idle_stock_goes_before_the_window_closes() {
        let (mut p, _k, t0) = warmed(8);
        let taps: Vec<TapName> = (0..6)
            .map(|i| acquire_now(&mut p, &format!("vm-{i}"), t0).unwrap().name)
            .collect();
        p.release_tap(taps[0], t0);
        batches(&mut p);
        let t1 = t0 + Duration::from_micros(10);
        p.release_tap(taps[1], t1);
        assert!(p.poll_batch().is_none(), "1 waits while 2 are idle");
        p.release_tap(taps[2], t1);
        assert_eq!(
            batches(&mut p).iter().map(Vec::len).collect::<Vec<_>>(),
            [2]
        );
    }

    #[test]
    fn a_queue_of_half_the_pool_goes_at_once_in_batches_of_at_most_64() {
        let (mut p, _k, t0) = warmed(200);
        let taps: Vec<TapName> = (0..80)
            .map(|i| acquire_now(&mut p, &format!("vm-{i}"), t0).unwrap().name)
            .collect();
        p.release_tap(taps[0], t0);
        batches(&mut p);
        let t1 = t0 + Duration::from_micros(10);
        for tap in &taps[1..64] {
            p.release_tap(*tap, t1);
        }
        assert!(p.poll_batch().is_none(), "63 wait");
        p.release_tap(taps[64], t1);
        assert_eq!(
            batches(&mut p).iter().map(Vec::len).collect::<Vec<_>>(),
            [64]
        );
        // The rest goes when the window closes.
        for tap in &taps[65..80] {
            p.release_tap(*tap, t1);
        }
        p.handle_timeout(t1 + RESET_WINDOW);
        assert_eq!(
            batches(&mut p).iter().map(Vec::len).collect::<Vec<_>>(),
            [15]
        );
    }

    #[test]
    fn resets_name_the_device_by_index() {
        let (mut p, _k, t0) = warmed(1);
        let tap = acquire_now(&mut p, "vm-0", t0).unwrap().name;
        p.release_tap(tap, t0);
        let sent = batches(&mut p);
        let [ops] = &sent[..] else { panic!() };
        assert!(matches!(
            &ops[..],
            [Op::Reset { device, .. }] if device.name == tap && device.index.is_some()
        ));
    }

    #[test]
    fn a_failed_reset_deletes_the_tap_and_refills() {
        let (mut p, mut k, t0) = warmed(1);
        let tap = acquire_now(&mut p, "vm-0", t0).unwrap().name;
        k.inject(crate::sim::Fault::nth(
            crate::sim::SimOp::Reset,
            1,
            libc::EIO,
        ));
        p.release_tap(tap, t0);
        run(&mut p, &mut k, t0);
        assert_eq!(p.state_of(&tap), None);
        assert!(!k.contains(tap));
        // The delete made room: the pool refilled.
        let s = p.stats();
        assert_eq!((s.idle, s.deleted, s.created), (1, 1, 2));
    }

    #[test]
    fn release_resets_before_the_tap_goes_idle() {
        let (mut p, mut k, t0) = warmed_with(windowed(1, 1));
        let t = acquire_now(&mut p, "vm-a", t0).unwrap().name;
        let mac = k.tap(t).unwrap().mac;
        k.tamper(t, |l| {
            l.mtu = 9000;
            l.up = false;
            l.mac = [2, 9, 9, 9, 9, 9];
        });
        k.add_address(t, "192.0.2.7/24");
        assert_eq!(p.release_tap(t, t0), Answer::Now(Ok(Released::Pooled)));
        assert_eq!(p.state_of(&t), Some(TapState::Resetting));
        // Not yet idle: an Acquire now misses; a second release is refused.
        assert!(!p.idle().contains(&t));
        assert!(matches!(
            p.release_tap(t, t0),
            Answer::Now(Err(super::super::PoolError::UnknownLease { .. }))
        ));
        run(&mut p, &mut k, t0);
        assert_eq!(p.state_of(&t), Some(TapState::Idle));
        let link = k.tap(t).unwrap();
        assert_eq!((link.mtu, link.up, link.mac), (1500, true, mac));
        assert!(k.addresses(t).is_empty());
    }

    #[test]
    fn a_tap_removed_while_its_reset_succeeds_never_goes_idle() {
        let (mut p, mut k, t0) = warmed_with(windowed(1, 1));
        let t = acquire_now(&mut p, "vm-a", t0).unwrap().name;
        p.release_tap(t, t0);
        let reset = take_one(&mut p);
        assert!(matches!(reset.op, Op::Reset { device, .. } if device.name == t));
        let done = outcome(&mut k, &reset);
        assert!(done.is_ok());
        // Removed after the reset went through, before the pool heard so.
        remove_behind_its_back(&mut p, &k, t, t0);
        p.complete(reset.id, done, t0);
        assert!(!p.idle().contains(&t));
        assert_eq!(p.state_of(&t), None);
        run(&mut p, &mut k, t0);
        assert_eq!(p.stats().idle, 1, "refilled");
    }
}
