//! Reconciling with the kernel: `Seed` after a restart, devices removed
//! behind the pool's back (the link watcher's notifications), and resyncs
//! when notifications were lost.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::{Lane, Pool, Purpose, RequestId, Tap, TapState};
use crate::kernel::{LinkInfo, Op, TunKind};
use crate::name::TapName;

/// What `Seed` found and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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

impl Pool {
    /// A `Seed`: lists the kernel's tun/tap devices, then reconciles with
    /// them (see [`SeedReport`]); `used` is every tap the caller's VMs hold.
    /// Answered by [`super::Event::Seeded`].
    pub fn seed(&mut self, used: Vec<TapName>, _now: Instant) -> RequestId {
        let request = self.request_id();
        self.send(Lane::Fast, Op::ListTaps, Purpose::Seed { request, used });
        request
    }

    /// Reconciles with what the kernel holds: starts the index above every
    /// pool index seen; records `used` names as held; adopts idle pool taps
    /// up to the size (after a reset), deletes the pool's other taps nobody
    /// holds, and leaves alone any a process has open. Names the pool
    /// already knows are not touched.
    pub(super) fn reconcile(
        &mut self,
        used: &[TapName],
        links: &[LinkInfo],
        now: Instant,
    ) -> SeedReport {
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
                            index: Some(link.index),
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
            let tap = Tap {
                index: Some(link.index),
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
                    self.taps.insert(
                        link.name,
                        Tap {
                            state: TapState::Resetting,
                            ..tap
                        },
                    );
                    self.queue_reset(link.name, now);
                } else {
                    self.taps.insert(
                        link.name,
                        Tap {
                            state: TapState::Idle,
                            ..tap
                        },
                    );
                    self.idle.push(link.name);
                }
            } else {
                report.deleted.push(link.name);
                self.taps.insert(link.name, tap);
                self.delete(link.name, None);
            }
        }
        report.next_index = self.next;
        tracing::info!(
            next_index = report.next_index,
            adopted = report.adopted.len(),
            deleted = report.deleted.len(),
            left_alone = ?report.left_alone,
            missing = ?report.missing,
            "tap pool seeded"
        );
        report
    }

    /// A device was removed from the kernel (seen by the link watcher). An
    /// idle tap of that name and index is dropped at once and the pool
    /// refills when low; a tap being created or reset is dropped when that
    /// call reports back.
    pub fn link_removed(&mut self, name: TapName, index: u32, now: Instant) {
        let Some(tap) = self.taps.get(&name).copied() else {
            return;
        };
        match tap.state {
            TapState::CreatingForPool | TapState::CreatingForLease => {
                self.removed_in_flight.insert(name, index);
            }
            // The reset may still report success: remember the removal.
            TapState::Resetting if tap.index == Some(index) => {
                self.removed_in_flight.insert(name, index);
            }
            _ if tap.index != Some(index) => {}
            TapState::Idle => {
                self.idle.retain(|n| *n != name);
                self.taps.remove(&name);
                self.counters.vanished += 1;
                self.refill(now);
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
        self.advance_drain();
    }

    /// Notifications were lost (or the watcher just started): lists the
    /// kernel's taps, and treats every idle or leased tap that the listing
    /// lacks (by name and index) as removed. A failed listing is retried
    /// after [`super::RESYNC_RETRY`].
    pub fn resync(&mut self, _now: Instant) {
        // Taken now, so that a tap created after the listing was taken is
        // not mistaken for gone.
        let snapshot: Vec<(TapName, u32)> = self
            .taps
            .iter()
            .filter(|(_, t)| matches!(t.state, TapState::Idle | TapState::Leased) && !t.vanished)
            .filter_map(|(n, t)| Some((*n, t.index?)))
            .collect();
        self.send(Lane::Fast, Op::ListTaps, Purpose::Resync(snapshot));
    }

    pub(super) fn resynced(
        &mut self,
        snapshot: &[(TapName, u32)],
        links: &[LinkInfo],
        now: Instant,
    ) {
        let present: HashSet<(TapName, u32)> = links.iter().map(|l| (l.name, l.index)).collect();
        for &(name, index) in snapshot {
            if !present.contains(&(name, index)) {
                self.link_removed(name, index, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Event, TapState};
    use super::*;

    fn seed(
        p: &mut Pool,
        k: &mut crate::sim::SimKernel,
        used: &[&str],
        now: Instant,
    ) -> SeedReport {
        let request = p.seed(used.iter().map(|n| name(n)).collect(), now);
        let events = run(p, k, now);
        let Some(Event::Seeded { result, .. }) = events
            .into_iter()
            .find(|e| matches!(e, Event::Seeded { request: r, .. } if *r == request))
        else {
            panic!("seed answered")
        };
        result.unwrap()
    }

    #[test]
    fn seed_adopts_idle_pool_taps_deletes_the_rest_and_skips_their_indices() {
        let (mut old, mut k, now) = warmed(3);
        let held = acquire_now(&mut old, "vm-1", now).unwrap().name;
        drop(old);
        let mut p = Pool::new(config(1)).unwrap();
        let report = seed(&mut p, &mut k, &[held.as_str(), "vm-gone"], now);
        assert_eq!(report.adopted.len(), 1);
        assert_eq!(report.deleted.len(), 1);
        assert_eq!(report.missing, [name("vm-gone")]);
        assert_eq!(report.next_index, 3);
        assert_eq!(p.state_of(&held), Some(TapState::Leased));
        assert_eq!(k.taps().len(), 2);
    }

    #[test]
    fn seed_leaves_alone_a_tap_a_process_has_open() {
        let (old, mut k, now) = warmed(1);
        let tap = old.idle()[0];
        drop(old);
        k.set_in_use(tap, true);
        let mut p = Pool::new(config(1)).unwrap();
        let report = seed(&mut p, &mut k, &[], now);
        assert_eq!(report.left_alone, [tap]);
        assert!(k.contains(tap));
    }

    #[test]
    fn a_resync_drops_idle_taps_the_kernel_lost_and_retries_a_failed_listing() {
        let (mut p, mut k, t0) = warmed(2);
        let gone = p.idle()[0];
        k.remove_externally(gone);
        k.inject(crate::sim::Fault::nth(
            crate::sim::SimOp::List,
            1,
            libc::ENOBUFS,
        ));
        p.resync(t0);
        run(&mut p, &mut k, t0);
        assert_eq!(p.state_of(&gone), Some(TapState::Idle), "listing failed");
        let retry = p.poll_timeout().expect("retried");
        assert_eq!(retry - t0, super::super::RESYNC_RETRY);
        p.handle_timeout(retry);
        run(&mut p, &mut k, retry);
        assert_eq!(p.state_of(&gone), None);
    }
}
