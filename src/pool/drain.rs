//! Drain: stop warming for good, let creates and resets in flight land,
//! then delete every idle tap, in one group delete where the pool has a
//! device group (leased taps are moved out of the group first), else one by
//! one.

use std::collections::HashSet;
use std::time::Instant;

use super::{Event, Lane, Pool, Purpose, RequestId, TapState};
use crate::kernel::{KernelError, Op};
use crate::name::TapName;

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
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
struct Run {
    phase: Phase,
    ungroup_failed: bool,
    report: DrainReport,
}

/// The drain under way, if any, and who waits for it.
#[derive(Debug, Default)]
pub(super) struct Drainer {
    run: Option<Run>,
    waiters: Vec<RequestId>,
}

impl Drainer {
    pub(super) fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// A delete of `name` went through: counted if it was the drain's.
    pub(super) fn count_deleted(&mut self, name: TapName) {
        if let Some(Run {
            phase: Phase::PerTap(pending),
            report,
            ..
        }) = &mut self.run
            && pending.remove(&name)
        {
            report.deleted += 1;
        }
    }

    /// The drain no longer waits for a delete of `name` (it failed, or the
    /// device was gone).
    pub(super) fn forget(&mut self, name: TapName) {
        if let Some(Run {
            phase: Phase::PerTap(pending),
            ..
        }) = &mut self.run
        {
            pending.remove(&name);
        }
    }

    fn phase(&self) -> Option<&Phase> {
        self.run.as_ref().map(|r| &r.phase)
    }

    fn set_phase(&mut self, phase: Phase) {
        if let Some(run) = &mut self.run {
            run.phase = phase;
        }
    }
}

impl Pool {
    /// Drains the pool: stops warming for good, waits for creates and resets
    /// in flight, then deletes every idle tap: with one group delete where a
    /// device group is configured (leased taps are first moved out of the
    /// group, so they stay with their holders), else one delete per tap.
    /// Answered by [`Event::Drained`] (at once, if there is nothing to wait
    /// for); a drain during a drain joins it.
    pub fn drain(&mut self, _now: Instant) -> RequestId {
        let request = self.request_id();
        self.drain.waiters.push(request);
        if self.drain.run.is_none() {
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
            // Their retries are the drain's deletes now.
            self.delete_retries.clear();
            let stats = self.stats();
            tracing::info!(
                deleting = stats.deleting,
                leased = stats.leased,
                creating = stats.creating,
                resetting = stats.resetting,
                "tap pool draining"
            );
            self.drain.run = Some(Run {
                phase: Phase::Settling,
                ungroup_failed: false,
                report: DrainReport::default(),
            });
            // Taps in reset go with the drain: an Acquire waiting for one
            // creates its fallback tap (outside the group) instead.
            self.stop_waiting_beyond(0);
        }
        self.advance_drain();
        request
    }

    /// Records how moving a leased tap out of the group ended.
    pub(super) fn ungrouped(
        &mut self,
        name: TapName,
        result: Result<(), KernelError>,
        _now: Instant,
    ) {
        match result {
            Ok(()) => {
                if let Some(tap) = self.taps.get_mut(&name) {
                    tap.grouped = false;
                }
            }
            Err(error) if error.is_out_of_reach() => {}
            Err(_) => {
                self.counters.failures += 1;
                if let Some(run) = &mut self.drain.run {
                    run.ungroup_failed = true;
                }
            }
        }
        if let Some(Run {
            phase: Phase::Ungrouping(pending),
            ..
        }) = &mut self.drain.run
        {
            pending.remove(&name);
        }
    }

    /// Records who is in the pool's device group. If every member is a tap
    /// the pool is deleting, the group is deleted in one request; otherwise,
    /// or if the listing failed, the pool's taps are deleted one by one and
    /// the other members are reported.
    pub(super) fn group_checked(
        &mut self,
        result: Result<Vec<TapName>, KernelError>,
        _now: Instant,
    ) {
        if self.drain.phase() != Some(&Phase::CheckingGroup) {
            return;
        }
        match (result, self.tap.device_group) {
            (Ok(members), Some(group)) => {
                // Only devices the pool is deleting may go: not a leased tap
                // (a Seed may have added one during the drain), not a tap
                // some process has open that Seed left alone, not anyone
                // else's device.
                let foreign: Vec<TapName> = members
                    .into_iter()
                    .filter(|n| {
                        !matches!(
                            self.taps.get(n).map(|t| t.state),
                            Some(TapState::Draining | TapState::Deleting | TapState::DeleteFailed)
                        )
                    })
                    .collect();
                if foreign.is_empty() {
                    self.drain.set_phase(Phase::GroupDeleting);
                    self.send(
                        Lane::Delete,
                        Op::DeleteGroup { group },
                        Purpose::DeleteGroup,
                    );
                    return;
                }
                if let Some(run) = &mut self.drain.run {
                    run.report.foreign_in_group = foreign;
                }
            }
            (Ok(_), None) => {}
            (Err(_), _) => self.counters.failures += 1,
        }
        self.delete_draining_one_by_one();
    }

    /// Records how the drain's group delete ended; on failure, falls back to
    /// one delete per tap.
    pub(super) fn group_deleted(&mut self, result: Result<(), KernelError>, _now: Instant) {
        if self.drain.phase() != Some(&Phase::GroupDeleting) {
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
                    .partition(|n| self.taps.get(n).is_some_and(|t| t.grouped));
                // A grouped tap whose own delete failed while the drain
                // waited went with the group too: deleted, not failed.
                let failed_but_gone: Vec<TapName> = self
                    .names_in(TapState::DeleteFailed)
                    .into_iter()
                    .filter(|n| self.taps.get(n).is_some_and(|t| t.grouped))
                    .collect();
                self.counters.deleted += failed_but_gone.len() as u64;
                for name in &failed_but_gone {
                    self.forget(name);
                }
                self.counters.deleted += gone.len() as u64;
                for name in &gone {
                    self.forget(name);
                }
                for &name in &outside {
                    self.delete(name, None);
                }
                if let Some(run) = &mut self.drain.run {
                    // Only the drain's own: a failed delete the group took
                    // along was a release's or a discard's, not an idle tap.
                    run.report.deleted += gone.len();
                    run.report.bulk = true;
                    run.phase = Phase::PerTap(outside.into_iter().collect());
                }
            }
            Err(_) => {
                self.counters.failures += 1;
                self.delete_draining_one_by_one();
            }
        }
    }

    fn delete_draining_one_by_one(&mut self) {
        let names = self.names_in(TapState::Draining);
        for &name in &names {
            self.delete(name, None);
        }
        self.drain
            .set_phase(Phase::PerTap(names.into_iter().collect()));
    }

    /// Moves the drain on as far as it can go now.
    pub(super) fn advance_drain(&mut self) {
        loop {
            let Some(phase) = self.drain.phase() else {
                return;
            };
            match phase {
                Phase::Settling => {
                    // Creates that carry the group (started before the drain)
                    // and resets must land first; fallback creates started
                    // since are outside the group and need no waiting.
                    // So must deletes of grouped taps in flight (a release's,
                    // Seed's): the group delete would take their taps too,
                    // and each count would be off.
                    let grouped_in_flight = self
                        .taps
                        .values()
                        .filter(|t| {
                            matches!(t.state, TapState::CreatingForLease | TapState::Deleting)
                                && t.grouped
                        })
                        .count();
                    if self.creating_for_pool + grouped_in_flight + self.resetting > 0 {
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
                        let device = self.device(name);
                        self.send(
                            Lane::Create,
                            Op::SetGroup { device, group: 0 },
                            Purpose::Ungroup(name),
                        );
                    }
                    self.drain.set_phase(Phase::Ungrouping(leased));
                }
                Phase::Ungrouping(pending) if pending.is_empty() => {
                    let failed = self.drain.run.as_ref().is_some_and(|r| r.ungroup_failed);
                    if failed {
                        // A leased tap may still be in the group: a group
                        // delete would take it from its holder.
                        self.delete_draining_one_by_one();
                        continue;
                    }
                    let Some(group) = self.tap.device_group else {
                        self.delete_draining_one_by_one();
                        continue;
                    };
                    self.drain.set_phase(Phase::CheckingGroup);
                    self.send(Lane::Create, Op::ListGroup { group }, Purpose::CheckGroup);
                    return;
                }
                Phase::PerTap(pending) if pending.is_empty() => {
                    let Some(run) = self.drain.run.take() else {
                        return;
                    };
                    // The drain is over; a later `drain` starts a new one
                    // (for taps released since, which are deleted on release).
                    let mut report = run.report;
                    let stats = self.stats();
                    report.leased = stats.leased;
                    report.delete_failed = stats.delete_failed;
                    tracing::info!(
                        deleted = report.deleted,
                        bulk = report.bulk,
                        leased = report.leased,
                        delete_failed = report.delete_failed,
                        foreign_in_group = report.foreign_in_group.len(),
                        "tap pool drained"
                    );
                    for request in std::mem::take(&mut self.drain.waiters) {
                        self.events.push_back(Event::Drained {
                            request,
                            report: report.clone(),
                        });
                    }
                    return;
                }
                Phase::Ungrouping(_)
                | Phase::CheckingGroup
                | Phase::GroupDeleting
                | Phase::PerTap(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Answer, Lane, Released};
    use super::*;
    use crate::config::{ConfigError, PoolConfig};
    use crate::kernel::{Device, Kernel, TapSpec};

    #[test]
    fn drain_moves_leased_taps_out_of_the_group_then_deletes_it_at_once() {
        let (mut p, mut k, now) = warmed_with(PoolConfig {
            tap: in_group(),
            ..windowed(3, 2)
        });
        let held = acquire_now(&mut p, "vm-a", now).unwrap().name;
        let index = k.tap(held).unwrap().index;
        let request = p.drain(now);
        let ungroup = take_one(&mut p);
        assert_eq!(
            ungroup.op,
            Op::SetGroup {
                device: Device::new(held, index),
                group: 0
            }
        );
        execute(&mut p, &mut k, &ungroup, now);
        let check = take_one(&mut p);
        assert_eq!(check.op, Op::ListGroup { group: GROUP });
        execute(&mut p, &mut k, &check, now);
        let batches = std::iter::from_fn(|| p.poll_batch()).collect::<Vec<_>>();
        let [batch] = &batches[..] else {
            panic!("{batches:?}")
        };
        assert_eq!(batch.lane, Lane::Delete);
        let [delete] = &batch.commands[..] else {
            panic!("{batch:?}")
        };
        assert_eq!(delete.op, Op::DeleteGroup { group: GROUP });
        execute(&mut p, &mut k, delete, now);
        let events = run(&mut p, &mut k, now);
        assert_eq!(
            events,
            [Event::Drained {
                request,
                report: DrainReport {
                    deleted: 2,
                    bulk: true,
                    leased: 1,
                    delete_failed: 0,
                    foreign_in_group: vec![],
                }
            }]
        );
        // Warming has stopped; the held tap is untouched.
        p.warm(now);
        assert!(warm_report(&run(&mut p, &mut k, now)).unwrap().shut_down);
        assert!(p.poll_batch().is_none());
        assert_eq!(p.state_of(&held), Some(TapState::Leased));
        assert_eq!(k.taps().iter().map(|l| l.name).collect::<Vec<_>>(), [held]);
    }

    #[test]
    fn drain_waits_for_creates_in_flight_and_deletes_one_by_one_without_a_group() {
        let (mut p, mut k, now) = fresh(windowed(2, 2));
        p.warm(now);
        let creates = take_commands(&mut p);
        assert_eq!(creates.len(), 2);
        p.drain(now);
        assert!(p.poll_batch().is_none(), "waits for the creates");
        assert!(events(&mut p).is_empty());
        for create in &creates {
            execute(&mut p, &mut k, create, now);
        }
        let events = run(&mut p, &mut k, now);
        let report = drain_report(&events).unwrap();
        assert_eq!((report.deleted, report.bulk), (2, false));
        assert!(k.taps().is_empty());
        assert!(warm_report(&events).unwrap().shut_down);
    }

    #[test]
    fn after_a_drain_releases_delete() {
        let (mut p, mut k, now) = warmed_with(windowed(2, 2));
        let t = acquire_now(&mut p, "vm-a", now).unwrap().name;
        p.drain(now);
        run(&mut p, &mut k, now);
        let Answer::Later(request) = p.release_tap(t, now) else {
            panic!("a release after a drain deletes")
        };
        assert_eq!(
            run(&mut p, &mut k, now),
            [Event::Released {
                request,
                result: Ok(Released::Deleted)
            }]
        );
        assert!(!k.contains(t));
    }

    #[test]
    fn device_group_zero_is_refused() {
        let err = Pool::new(PoolConfig {
            tap: TapSpec {
                device_group: Some(0),
                ..TapSpec::default()
            },
            ..PoolConfig::default()
        })
        .unwrap_err();
        assert_eq!(err, ConfigError::DefaultDeviceGroup);
    }

    #[test]
    fn a_foreign_device_in_the_group_stops_the_bulk_delete() {
        let (mut p, mut k, now) = fresh(grouped(2));
        k.add_foreign_device(name("eth9"), GROUP);
        p.warm(now);
        run(&mut p, &mut k, now);
        p.drain(now);
        let events = run(&mut p, &mut k, now);
        let report = drain_report(&events).unwrap();
        assert_eq!((report.deleted, report.bulk), (2, false));
        assert_eq!(report.foreign_in_group, [name("eth9")]);
        assert!(k.has_foreign_device(name("eth9")), "the NIC survived");
        assert!(k.taps().is_empty());
    }

    // Regressions from an independent review: each was a real interleaving.

    #[test]
    fn a_tap_seed_left_alone_survives_the_drain() {
        let (mut p, mut k, now) = fresh(grouped(1));
        k.create_tap(name("tap-pool-0"), &in_group()).unwrap();
        k.create_tap(name("tap-pool-1"), &in_group()).unwrap();
        k.set_in_use(name("tap-pool-1"), true);
        let request = p.seed(vec![], now);
        let events = run(&mut p, &mut k, now);
        let [Event::Seeded { request: r, result }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(*r, request);
        assert_eq!(result.as_ref().unwrap().left_alone, [name("tap-pool-1")]);
        p.drain(now);
        let events = run(&mut p, &mut k, now);
        assert!(
            k.contains(name("tap-pool-1")),
            "a live VM's tap was deleted"
        );
        assert_eq!(
            drain_report(&events).unwrap().foreign_in_group,
            [name("tap-pool-1")]
        );
    }

    #[test]
    fn a_drain_with_nothing_of_its_own_in_the_group_sends_no_group_delete() {
        let (mut p, mut k, now) = fresh(grouped(2));
        p.warm(now);
        run(&mut p, &mut k, now);
        p.drain(now);
        run(&mut p, &mut k, now);
        // Stopping drains again; by then another pool sharing the group has
        // made a tap, which a group delete would take.
        k.create_tap(name("other-0"), &in_group()).unwrap();
        let request = p.drain(now);
        let commands = take_commands(&mut p);
        assert!(
            !commands
                .iter()
                .any(|c| matches!(c.op, Op::ListGroup { .. } | Op::DeleteGroup { .. })),
            "{commands:?}"
        );
        let events = events(&mut p);
        let [Event::Drained { request: r, report }] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(*r, request);
        assert_eq!((report.deleted, report.bulk), (0, false));
        assert!(k.contains(name("other-0")));
    }

    #[test]
    fn a_tap_seeded_during_a_drain_survives_the_group_delete() {
        let (mut p, mut k, now) = fresh(grouped(1));
        k.create_tap(name("vm-a"), &in_group()).unwrap();
        k.set_in_use(name("vm-a"), true);
        p.warm(now);
        run(&mut p, &mut k, now);
        p.drain(now);
        let check = take_one(&mut p);
        assert!(matches!(check.op, Op::ListGroup { .. }), "{check:?}");
        // A Seed lands while the group check is in flight.
        p.seed(vec![name("vm-a")], now);
        let list = take_one(&mut p);
        execute(&mut p, &mut k, &list, now);
        assert_eq!(p.state_of(&name("vm-a")), Some(TapState::Leased));
        execute(&mut p, &mut k, &check, now);
        let events = run(&mut p, &mut k, now);
        assert_eq!(p.state_of(&name("vm-a")), Some(TapState::Leased));
        assert!(k.contains(name("vm-a")));
        let report = drain_report(&events).unwrap();
        assert_eq!(report.foreign_in_group, [name("vm-a")]);
        assert!(!k.contains(name("tap-pool-0")));
    }

    #[test]
    fn fallback_creates_during_a_drain_do_not_hold_it_up() {
        let (mut p, mut k, now) = fresh(grouped(2));
        p.warm(now);
        let creates = take_commands(&mut p);
        assert_eq!(creates.len(), 2);
        p.drain(now);
        // A miss during the drain: created outside the group.
        let Answer::Later(acquire) = p.acquire(name("vm-0"), now) else {
            panic!("a miss creates")
        };
        let vm = take_one(&mut p);
        let Op::Create {
            name: vm_name,
            spec,
        } = vm.op
        else {
            panic!("{vm:?}")
        };
        assert_eq!(vm_name, name("vm-0"));
        assert_eq!(spec.device_group, None);
        for create in &creates {
            execute(&mut p, &mut k, create, now);
        }
        // The drain moves on while vm-0's create is still in flight.
        let drained = run(&mut p, &mut k, now);
        let report = drain_report(&drained).expect("drain finished");
        assert_eq!((report.deleted, report.bulk), (2, true));
        execute(&mut p, &mut k, &vm, now);
        assert!(matches!(
            &events(&mut p)[..],
            [Event::Acquired { request, result: Ok(_) }] if *request == acquire
        ));
        assert_eq!(p.state_of(&vm_name), Some(TapState::Leased));
        assert!(k.contains(vm_name));
    }
}
