//! Reconciling with the kernel: `Seed` after a restart, devices removed
//! behind the pool's back (the link watcher's notifications), and resyncs
//! when notifications were lost.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::{Lane, Lease, LeaseSource, Pool, Purpose, RequestId, Tap, TapState};
use crate::inventory::Verdict;
use crate::kernel::{LinkInfo, Op, TunKind};
use crate::name::TapName;

/// What `Seed` found and decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SeedReport {
    /// The index the next pool name will use.
    pub next_index: u64,
    /// A lease for every name the caller listed that the kernel holds as one
    /// of the pool's taps: release these tokens when those VMs are done. A
    /// name an earlier `Seed` of this run leased keeps its token. A held tap
    /// not made the way the pool makes them (another owner, say) is deleted,
    /// not pooled, when released.
    pub held: Vec<Lease>,
    /// Pool taps from an earlier run, idle in the kernel, now in the pool
    /// (after a reset).
    pub adopted: Vec<TapName>,
    /// The pool's taps from an earlier run that nobody holds, now being
    /// deleted: pool taps beyond the pool's size or not made exactly as the
    /// spec makes them (another owner, group, queue mode or vnet header
    /// flag, or neither owner nor group), every one under
    /// [`Recycle::Fresh`](crate::Recycle::Fresh), and fallback taps (in the
    /// pool's device group) that no process has open.
    pub deleted: Vec<TapName>,
    /// The pool's taps that a process has open but the caller did not list:
    /// left alone (a live VM must not lose its device); their indices are
    /// skipped.
    pub left_alone: Vec<TapName>,
    /// Names the caller listed that the kernel does not have as a tap (no
    /// such device, or one that is not a tap): not leased, not touched.
    pub missing: Vec<TapName>,
    /// Names the caller listed that are taps but not the pool's (neither a
    /// pool name nor in the pool's device group; without a device group a
    /// fallback tap cannot be told from anyone else's): not leased, never
    /// touched.
    pub not_ours: Vec<TapName>,
    /// Names the caller listed that the pool already holds otherwise, with
    /// where they stand: leased by an `Acquire` of this run (its holder has
    /// its token; naming it gets no lease), idle, in reset, being deleted,
    /// or reserved by a waiting `Acquire`. Nothing changed.
    pub known: Vec<(TapName, TapState)>,
}

impl Pool {
    /// A `Seed`: lists the kernel's tun/tap devices, then reconciles with
    /// them (see [`SeedReport`]); `used` is every tap the caller's VMs hold.
    /// Answered by [`super::Event::Seeded`].
    pub fn seed(&mut self, used: Vec<TapName>, _now: Instant) -> RequestId {
        let request = self.request_id();
        self.seed_listings += 1;
        self.send(Lane::Create, Op::ListTaps, Purpose::Seed { request, used });
        request
    }

    /// Reconciles with what the kernel holds: starts the index above every
    /// pool index seen; leases `used` names the kernel holds as taps; adopts
    /// idle pool taps up to the size (after a reset), deletes the pool's
    /// other taps nobody holds, and leaves alone any a process has open.
    /// Names the pool already knows are not touched, nor are names it
    /// forgot since the listing was asked for (the listing is older than
    /// that).
    pub(super) fn reconcile(
        &mut self,
        used: &[TapName],
        links: &[LinkInfo],
        now: Instant,
    ) -> SeedReport {
        let mut report = SeedReport::default();
        let used_set: HashSet<TapName> = used.iter().copied().collect();
        let mut links: Vec<&LinkInfo> = links
            .iter()
            .filter(|l| !self.forgotten_since_listing.contains(&l.name))
            .collect();
        links.sort_by_key(|l| (self.inventory.naming().index_of(&l.name), l.name));
        for link in &links {
            if self.inventory.is_ours(link)
                && let Some(index) = self.inventory.pool_index(&link.name)
            {
                self.next = self.next.max(index.saturating_add(1));
            }
        }
        let by_name: HashMap<TapName, &LinkInfo> = links.iter().map(|l| (l.name, *l)).collect();
        // Fallback names Acquires waiting for a reset have reserved.
        let reserved: HashSet<TapName> = self.waiting.iter().map(|(_, n, _)| *n).collect();
        let mut used_sorted: Vec<TapName> = used_set.iter().copied().collect();
        used_sorted.sort();
        for name in used_sorted {
            if reserved.contains(&name) {
                report.known.push((name, TapState::CreatingForLease));
                continue;
            }
            if let Some(tap) = self.taps.get(&name) {
                match (tap.state, tap.lease, tap.seeded) {
                    // Seed's own lease: the same token again.
                    (TapState::Leased, Some(token), true) => report.held.push(Lease {
                        name,
                        token,
                        source: LeaseSource::Seeded,
                    }),
                    // Anything else (an Acquire's lease, an idle tap, a tap
                    // in reset or being deleted) is not the caller's to take
                    // by naming it.
                    (state, ..) => report.known.push((name, state)),
                }
                continue;
            }
            match by_name.get(&name) {
                Some(link) if self.inventory.class(link).is_pool_tap() => {
                    let mac = self.fresh_mac();
                    self.taps.insert(
                        name,
                        Tap {
                            index: Some(link.index),
                            mac,
                            grouped: self.tap.device_group == Some(link.device_group),
                            seeded: true,
                            // A tap not made the way this pool makes them
                            // stays with its VM but is never pooled.
                            retire: !self.inventory.made_like_ours(link),
                            ..Tap::new(TapState::Leased)
                        },
                    );
                    report.held.push(self.grant(name, LeaseSource::Seeded));
                }
                Some(link) if link.kind == TunKind::Tap => report.not_ours.push(name),
                // A tun-mode device is not a tap: as if there were none.
                Some(_) | None => report.missing.push(name),
            }
        }
        // Pool names the kernel holds for devices left alone: never created.
        self.taken.clear();
        for link in links {
            if used_set.contains(&link.name)
                || self.taps.contains_key(&link.name)
                || reserved.contains(&link.name)
            {
                continue;
            }
            // The rules of which devices are the pool's, and which of them
            // it may take, are the inventory's (`gc` applies them too).
            let verdict = self.inventory.verdict(link);
            match verdict {
                Verdict::NotOurs => continue,
                // A tun device under a pool name, or in the pool's group:
                // the pool makes none, so it is someone else's. Never
                // touched; its name is never created.
                Verdict::NotATap => {
                    if self.inventory.pool_index(&link.name).is_some() {
                        self.taken.insert(link.name);
                    }
                    continue;
                }
                Verdict::InUse => {
                    report.left_alone.push(link.name);
                    self.taken.insert(link.name);
                    continue;
                }
                Verdict::Adoptable | Verdict::Leftover | Verdict::OtherOwner => {}
            }
            let tap = Tap {
                index: Some(link.index),
                mac: self.fresh_mac(),
                grouped: self.tap.device_group == Some(link.device_group),
                ..Tap::new(TapState::Deleting)
            };
            // Only a tap made exactly the way this pool makes them, and
            // reset before it is handed out; none at all in a fresh pool,
            // where any leftover may have been leased before.
            if verdict == Verdict::Adoptable && self.has_room() {
                report.adopted.push(link.name);
                self.taps.insert(
                    link.name,
                    Tap {
                        state: TapState::Resetting,
                        ..tap
                    },
                );
                self.queue_reset(link.name, now);
            } else {
                report.deleted.push(link.name);
                self.taps.insert(link.name, tap);
                self.delete(link.name, None);
            }
        }
        report.next_index = self.next;
        tracing::info!(
            used = used.len(),
            held = report.held.len(),
            adopted = report.adopted.len(),
            deleted = report.deleted.len(),
            left_alone = report.left_alone.len(),
            missing = report.missing.len(),
            not_ours = report.not_ours.len(),
            known = report.known.len(),
            next_index = report.next_index,
            "tap pool seeded"
        );
        if !report.left_alone.is_empty() || !report.missing.is_empty() {
            tracing::debug!(
                left_alone = ?report.left_alone,
                missing = ?report.missing,
                "tap pool seeded: names left alone or missing"
            );
        }
        report
    }

    /// The Ethernet address a reset gives a tap from an earlier run: a new
    /// random one (locally administered, unicast, as the tun driver makes
    /// them), never the one the kernel shows now, which its last tenant
    /// may have chosen (`SIOCSIFHWADDR` needs no capability on its file):
    /// another VM's, or a low one its bridge would take as its own.
    fn fresh_mac(&mut self) -> [u8; 6] {
        let mut mac = [0u8; 6];
        self.tokens.fill(&mut mac);
        mac[0] = (mac[0] & 0xfe) | 0x02;
        mac
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
                self.forget(&name);
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

    /// A device was renamed behind the pool's back (seen by the link
    /// watcher): the device at `index`, last seen as `from`, is now `to`.
    /// A pool tap so renamed can no longer be opened by its name: see
    /// `docs/architecture.md` for what becomes of it.
    ///
    /// An idle tap so renamed leaves the pool and is deleted (by index: the
    /// tap itself, whatever now has its old name), and the pool refills; a
    /// leased one stays with its holder and is deleted, not pooled, when
    /// released; one in reset or being created is deleted when that call
    /// reports. A device that takes a pool tap's old name is never touched.
    pub fn link_renamed(&mut self, index: u32, from: TapName, to: Option<TapName>, now: Instant) {
        let Some(tap) = self.taps.get_mut(&from) else {
            return;
        };
        match tap.state {
            TapState::CreatingForPool | TapState::CreatingForLease => {
                self.renamed_in_flight.insert(from, index);
                return;
            }
            _ if tap.index != Some(index) => return,
            TapState::Idle => {
                tracing::warn!(tap = %from, renamed = ?to, index, "an idle tap was renamed behind the pool's back; deleting it");
                tap.state = TapState::Deleting;
                tap.retire = true;
                self.idle.retain(|n| *n != from);
                self.delete(from, None);
                self.replace(now);
            }
            TapState::Leased | TapState::Resetting => {
                tracing::warn!(tap = %from, holder = self.holders.get(&from).map(tracing::field::display), renamed = ?to, index, state = ?tap.state, "a tap was renamed behind the pool's back; it goes when released");
                tap.retire = true;
            }
            // Deleted by index already.
            TapState::Deleting | TapState::DeleteFailed | TapState::Draining => {}
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
        self.send(Lane::Create, Op::ListTaps, Purpose::Resync(snapshot));
    }

    pub(super) fn resynced(
        &mut self,
        snapshot: &[(TapName, u32)],
        links: &[LinkInfo],
        now: Instant,
    ) {
        let by_index: HashMap<u32, TapName> = links.iter().map(|l| (l.index, l.name)).collect();
        for &(name, index) in snapshot {
            match by_index.get(&index) {
                Some(&now_named) if now_named == name => {}
                // The tap itself, under another name: renamed while
                // notifications were lost.
                Some(&now_named) => self.link_renamed(index, name, Some(now_named), now),
                None => self.link_removed(name, index, now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Answer, Event, TapState};
    use super::*;
    use crate::config::PoolConfig;
    use crate::kernel::{Device, Reply, TapSpec};

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
        let report = seed(&mut p, &mut k, &[held.to_str().unwrap(), "vm-gone"], now);
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
    fn a_listing_older_than_a_release_leases_nothing_nobody_holds() {
        // A VM holds vm-a; the orchestrator seeds (its periodic reconcile),
        // and the VM's tap is released and deleted while the listing, taken
        // before the delete, is on its way back.
        let (mut p, mut k, now) = warmed(0);
        let a = acquire_created(&mut p, &mut k, "vm-a", now);
        let token = p.taps[&a].lease.unwrap();
        let request = p.seed(vec![a], now);
        let listing = take_one(&mut p);
        let listed = outcome(&mut k, &listing);
        let Answer::Later(_) = p.release(token, now) else {
            panic!("a fallback tap is deleted")
        };
        run(&mut p, &mut k, now);
        assert!(!k.contains(a));
        p.complete(listing.id, listed, now);
        let Some(Event::Seeded {
            request: r,
            result: Ok(report),
        }) = p.poll_event()
        else {
            panic!("seed answered")
        };
        assert_eq!(r, request);
        assert!(report.held.is_empty(), "{report:?}");
        assert_eq!(report.missing, [a]);
        assert_eq!(p.state_of(&a), None);
        assert_eq!(p.stats().leased, 0);
    }

    #[test]
    fn seed_deletes_do_not_warm_a_pool_nobody_warmed() {
        // Fallback taps an earlier run left in the pool's group: deleted.
        let (mut p, mut k, now) = fresh(grouped(4));
        for i in 0..2 {
            crate::kernel::Kernel::create_tap(&mut k, name(&format!("vm-old-{i}")), &in_group())
                .unwrap();
        }
        let report = seed(&mut p, &mut k, &[], now);
        assert_eq!((report.adopted.len(), report.deleted.len()), (0, 2));
        run(&mut p, &mut k, now);
        assert!(k.taps().is_empty());
        assert_eq!(
            k.calls(crate::sim::SimOp::Create),
            2,
            "no create by the pool"
        );
        let s = p.stats();
        assert_eq!((s.idle, s.created, s.deleted), (0, 0, 2));
        // Once warmed, the pool refills itself after a loss as before.
        p.warm(now);
        run(&mut p, &mut k, now);
        let gone = p.idle()[0];
        remove_behind_its_back(&mut p, &k, gone, now);
        run(&mut p, &mut k, now);
        assert_eq!(p.stats().idle, 4);
    }

    fn index_of(p: &Pool, tap: TapName) -> u32 {
        p.taps[&tap].index.unwrap()
    }

    #[test]
    fn a_renamed_idle_tap_leaves_the_pool_and_is_deleted_by_index() {
        let (mut p, mut k, now) = warmed(2);
        let tap = p.idle()[1];
        let index = index_of(&p, tap);
        p.link_renamed(index, tap, Some(name("renamed")), now);
        assert!(!p.idle().contains(&tap), "never handed out again");
        let commands = take_commands(&mut p);
        let delete = commands
            .iter()
            .find(|c| matches!(c.op, crate::kernel::Op::Delete { .. }))
            .expect("deleted");
        assert_eq!(
            delete.op,
            crate::kernel::Op::Delete {
                device: Device {
                    name: tap,
                    index: Some(index)
                }
            }
        );
        for c in &commands {
            execute(&mut p, &mut k, c, now);
        }
        run(&mut p, &mut k, now);
        assert_eq!(p.state_of(&tap), None);
        assert_eq!(p.stats().idle, 2, "refilled");
        // An Acquire gets a tap it can open by name.
        let lease = acquire_now(&mut p, "vm-a", now).unwrap();
        assert_ne!(lease.name, tap);
    }

    #[test]
    fn a_renamed_leased_or_resetting_tap_is_deleted_not_pooled() {
        let (mut p, mut k, now) = warmed(2);
        let a = acquire_now(&mut p, "vm-a", now).unwrap();
        p.link_renamed(index_of(&p, a.name), a.name, Some(name("renamed-a")), now);
        assert_eq!(
            p.state_of(&a.name),
            Some(TapState::Leased),
            "its holder keeps it"
        );
        assert!(matches!(
            p.release(a.token, now),
            super::super::Answer::Later(_)
        ));
        // Deleted, and replaced at once: gone for good.
        let commands = take_commands(&mut p);
        let [delete, create] = &commands[..] else {
            panic!("one delete and its replacement: {commands:?}")
        };
        assert!(matches!(delete.op, crate::kernel::Op::Delete { .. }));
        assert!(matches!(create.op, crate::kernel::Op::Create { .. }));
        execute(&mut p, &mut k, create, now);
        // Renamed while its reset is under way: deleted when it reports.
        let b = acquire_now(&mut p, "vm-b", now).unwrap();
        p.release(b.token, now);
        let [reset] = &take_commands(&mut p)[..] else {
            panic!("one reset")
        };
        p.link_renamed(index_of(&p, b.name), b.name, Some(name("renamed-b")), now);
        execute(&mut p, &mut k, reset, now);
        assert_eq!(p.state_of(&b.name), Some(TapState::Deleting));
        // A reset that finds the tap renamed (the kernel checks) deletes it.
        let (mut p, mut k, now) = warmed(1);
        let c = acquire_now(&mut p, "vm-c", now).unwrap();
        p.release(c.token, now);
        let [reset] = &take_commands(&mut p)[..] else {
            panic!("one reset")
        };
        p.complete(
            reset.id,
            Err(crate::kernel::KernelError::Renamed {
                name: c.name,
                index: index_of(&p, c.name),
                now: Some(name("renamed-c")),
            }),
            now,
        );
        assert_eq!(p.state_of(&c.name), Some(TapState::Deleting));
        run(&mut p, &mut k, now);
        assert_eq!(p.state_of(&c.name), None);
    }

    /// Releases a tap the pool created for its caller, so that it is
    /// deleted, and answers the delete with `error`: the tap is forgotten
    /// and its delete not retried.
    fn a_delete_answered(error: impl FnOnce(&Pool, TapName) -> crate::kernel::KernelError) {
        let (mut p, _k, now) = warmed(0);
        let mut k = crate::sim::SimKernel::new();
        let tap = acquire_created(&mut p, &mut k, "vm-a", now);
        let token = p.taps[&tap].lease.unwrap();
        p.release(token, now);
        let [delete] = &take_commands(&mut p)[..] else {
            panic!("one delete")
        };
        let error = error(&p, tap);
        p.complete(delete.id, Err(error), now);
        assert_eq!(p.state_of(&tap), None);
        assert_eq!(p.poll_timeout(), None, "no retry");
        assert!(p.poll_batch().is_none());
    }

    #[test]
    fn an_index_that_is_no_longer_a_tap_is_forgotten_not_retried() {
        a_delete_answered(|p, tap| crate::kernel::KernelError::NotATap {
            name: tap,
            index: index_of(p, tap),
        });
    }

    fn not_yours(p: &Pool, tap: TapName) -> crate::kernel::KernelError {
        crate::kernel::KernelError::Refused {
            op: "delete".into(),
            refusal: crate::Refusal::NotYours {
                name: tap,
                index: Some(index_of(p, tap)),
            },
        }
    }

    #[test]
    fn a_tap_the_helper_says_is_not_the_pools_is_forgotten_not_deleted_again() {
        // The privileged helper refuses a delete of a tap it did not make
        // for this pool: retrying would be refused for ever.
        a_delete_answered(not_yours);
    }

    #[test]
    fn a_tap_the_helper_says_is_not_the_pools_is_not_reset_or_deleted_after_its_reset() {
        let (mut p, _k, now) = warmed(1);
        let a = acquire_now(&mut p, "vm-a", now).unwrap();
        p.release(a.token, now);
        let [reset] = &take_commands(&mut p)[..] else {
            panic!("one reset")
        };
        let refused = not_yours(&p, a.name);
        p.complete(reset.id, Err(refused), now);
        assert_eq!(p.state_of(&a.name), None, "forgotten");
        assert!(
            take_commands(&mut p)
                .iter()
                .all(|c| c.op.device().is_none_or(|d| d.name != a.name)),
            "nothing more is asked of it"
        );
    }

    #[test]
    fn a_resync_follows_a_rename_it_missed() {
        let (mut p, mut k, now) = warmed(2);
        let tap = p.idle()[0];
        let index = index_of(&p, tap);
        let mut links = crate::kernel::Kernel::list_taps(&mut k).unwrap();
        for l in &mut links {
            if l.name == tap {
                l.name = name("renamed");
            }
        }
        p.resync(now);
        let [listing] = &take_commands(&mut p)[..] else {
            panic!("one listing")
        };
        p.complete(listing.id, Ok(Reply::Links(links)), now);
        assert_eq!(p.state_of(&tap), Some(TapState::Deleting));
        let delete = take_commands(&mut p)
            .into_iter()
            .find(|c| matches!(c.op, crate::kernel::Op::Delete { .. }))
            .expect("deleted by index");
        assert_eq!(
            delete.op,
            crate::kernel::Op::Delete {
                device: Device {
                    name: tap,
                    index: Some(index)
                }
            }
        );
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

    fn link(name_: &str, index: u32, in_use: bool, group: u32) -> LinkInfo {
        LinkInfo {
            name: name(name_),
            index,
            kind: TunKind::Tap,
            persistent: true,
            owner: Some(0),
            group: None,
            master: None,
            mtu: 1500,
            up: true,
            in_use,
            device_group: group,
            mac: [2, 0, 0, 0, 0, index as u8],
            vnet_hdr: true,
            multi_queue: false,
            queues: None,
            link_type: libc::ARPHRD_ETHER,
        }
    }

    #[test]
    fn reconcile_adopts_deletes_leaves_alone_and_reports_missing() {
        let mut p = Pool::new(PoolConfig {
            tap: TapSpec {
                device_group: Some(77),
                ..TapSpec::default()
            },
            ..windowed(2, 2)
        })
        .unwrap();
        let now = Instant::now();
        let links = vec![
            link("tap-pool-1", 11, false, 77),
            link("tap-pool-2", 12, false, 77),
            link("tap-pool-3", 13, false, 77), // beyond the size: deleted
            link("tap-pool-9", 19, true, 77),  // open, unlisted: left alone
            link("tap-pool-4", 14, true, 77),  // a VM's, listed
            link("vm-old", 20, false, 77),     // a leaked fallback tap
            link("vm-live", 21, true, 77),     // a VM's fallback tap, unlisted
            link("other", 22, false, 0),       // not ours
        ];
        let request = p.seed(vec![name("tap-pool-4"), name("vm-gone")], now);
        let list = take_one(&mut p);
        assert_eq!(list.op, Op::ListTaps);
        p.complete(list.id, Ok(Reply::Links(links)), now);
        let [Event::Seeded { request: r, result }] = &events(&mut p)[..] else {
            panic!("seed answered")
        };
        assert_eq!(*r, request);
        let r = result.as_ref().unwrap();
        assert_eq!(r.adopted, [name("tap-pool-1"), name("tap-pool-2")]);
        assert_eq!(r.deleted, [name("vm-old"), name("tap-pool-3")]);
        assert_eq!(r.left_alone, [name("vm-live"), name("tap-pool-9")]);
        assert_eq!(r.missing, [name("vm-gone")]);
        assert_eq!(r.next_index, 10);
        assert_eq!(p.state_of(&name("tap-pool-4")), Some(TapState::Leased));
        assert_eq!(p.state_of(&name("other")), None);
        let ops: Vec<Op> = take_commands(&mut p).into_iter().map(|c| c.op).collect();
        assert_eq!(ops.len(), 4, "{ops:?}");
        // Reset with a new address of the pool's, never the one listed
        // (its last tenant may have chosen it).
        assert!(ops.iter().any(|op| matches!(
            op,
            Op::Reset { device, spec, mac }
                if *device == Device::new(name("tap-pool-1"), 11)
                    && spec == p.tap_spec()
                    && *mac != [2, 0, 0, 0, 0, 11]
                    && mac[0] & 0x03 == 0x02
        )));
        assert!(ops.contains(&Op::Delete {
            device: Device::new(name("vm-old"), 20)
        }));
    }

    #[test]
    fn a_vanished_idle_tap_is_dropped_and_refilled() {
        let (mut p, mut k, now) = warmed_with(windowed(2, 2));
        let t = p.idle()[0];
        let index = k.tap(t).unwrap().index;
        k.remove_externally(t);
        p.link_removed(t, index + 1000, now); // another device of that name: ignored
        assert_eq!(p.state_of(&t), Some(TapState::Idle));
        p.link_removed(t, index, now);
        assert_eq!(p.state_of(&t), None);
        assert!(!p.idle().contains(&t));
        run(&mut p, &mut k, now);
        let s = p.stats();
        assert_eq!((s.idle, s.vanished), (2, 1));
    }

    #[test]
    fn a_device_removed_while_being_created_never_goes_idle() {
        let (mut p, mut k, now) = fresh(windowed(1, 1));
        p.warm(now);
        let create = take_one(&mut p);
        let Op::Create { name: n, .. } = create.op else {
            panic!("{create:?}")
        };
        let created = outcome(&mut k, &create);
        // Removed before the pool hears the create went through.
        remove_behind_its_back(&mut p, &k, n, now);
        p.complete(create.id, created, now);
        assert_eq!(p.state_of(&n), None);
        assert_eq!(p.stats().idle, 0);
        assert!(!p.idle().contains(&n));
    }

    #[test]
    fn a_listing_older_than_a_create_does_not_forget_it() {
        let (mut p, mut k, now) = fresh(windowed(1, 1));
        p.warm(now);
        let create = take_one(&mut p);
        p.resync(now);
        let list = take_one(&mut p);
        // The dump is taken before the create runs, and reported after it.
        let dump = outcome(&mut k, &list);
        let Op::Create { name: n, .. } = create.op else {
            panic!("{create:?}")
        };
        execute(&mut p, &mut k, &create, now);
        p.complete(list.id, dump, now);
        assert_eq!(p.state_of(&n), Some(TapState::Idle));
        assert_eq!(p.stats().vanished, 0);
    }
}
