//! A stateful property test of the pool's rules: random sequences of
//! Acquire, Release, Warm, Seed, Drain, deletions behind the pool's back and
//! injected kernel faults, run against the simulated kernel. Kernel calls the
//! pool asked for stay pending and complete in a random order, as they do with
//! several kernel workers. After every step the invariants are checked.

use std::collections::{BTreeSet, HashSet};

use proptest::prelude::*;
use tap_pool::sim::{Fault, SimKernel, SimOp};
use tap_pool::{
    AcquireDecision, Command, CreatedTap, Kernel, LinkInfo, Pool, PoolConfig, PoolError,
    ReleaseDecision, TapName, TapSpec, TapState,
};

#[derive(Clone, Debug)]
enum Step {
    Acquire(u8),
    Release(usize),
    Warm,
    Seed,
    Drain,
    ExternalDelete(usize),
    Faults(bool),
    /// The kernel carries out a call the pool asked for...
    Execute(usize),
    /// ...and, later, the pool hears how it went.
    Report(usize),
    /// The link watcher's notification of a removal arrives.
    Deliver(usize),
    /// Notifications were lost: a listing is taken now, its answer arrives later.
    Resync,
    /// The process dies (calls in flight are lost) and a new pool seeds.
    Restart,
    FireTimer(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<u8>().prop_map(|i| Step::Acquire(i % 24)),
        4 => any::<usize>().prop_map(Step::Release),
        2 => Just(Step::Warm),
        1 => Just(Step::Seed),
        1 => Just(Step::Drain),
        1 => any::<usize>().prop_map(Step::ExternalDelete),
        1 => any::<bool>().prop_map(Step::Faults),
        6 => any::<usize>().prop_map(Step::Execute),
        6 => any::<usize>().prop_map(Step::Report),
        2 => any::<usize>().prop_map(Step::Deliver),
        1 => Just(Step::Resync),
        1 => Just(Step::Restart),
        1 => any::<usize>().prop_map(Step::FireTimer),
    ]
}

/// A kernel call the pool is waiting on.
#[derive(Clone, Debug)]
enum Pending {
    Command(Command),
    LeaseCreate(TapName, TapSpec),
    ReleaseDelete(TapName),
}

/// A call the kernel carried out, whose answer the pool has not heard yet.
#[derive(Clone, Debug)]
enum Done {
    Created(Pending, Result<CreatedTap, PoolError>),
    Unit(Pending, Result<(), PoolError>),
    Group(Result<Vec<TapName>, PoolError>),
    Listing(Vec<(TapName, u32)>, Vec<LinkInfo>),
}

struct Model {
    pool: Pool,
    config: PoolConfig,
    grouped: bool,
    kernel: SimKernel,
    size: usize,
    pending: Vec<Pending>,
    done: Vec<Done>,
    /// Removals the watcher has seen but not yet delivered.
    events: Vec<(TapName, u32)>,
    timers: Vec<Command>,
    /// What the clients hold.
    held: BTreeSet<TapName>,
    /// Every pool name ever asked for: none may be asked for twice.
    pool_names: HashSet<TapName>,
}

impl Model {
    fn new(size: usize, grouped: bool) -> Model {
        let config = PoolConfig {
            size,
            create_window: 2,
            tap: TapSpec {
                device_group: grouped.then_some(4242),
                ..TapSpec::default()
            },
            ..PoolConfig::default()
        };
        Model {
            pool: Pool::new(config.clone()).unwrap(),
            config,
            grouped,
            kernel: SimKernel::with_seed(7),
            size,
            pending: Vec::new(),
            done: Vec::new(),
            events: Vec::new(),
            timers: Vec::new(),
            held: BTreeSet::new(),
            pool_names: HashSet::new(),
        }
    }

    /// Moves what the pool queued to the pending calls and timers.
    fn collect(&mut self) {
        while let Some(c) = self.pool.take_command() {
            match c {
                Command::Create { name, .. } => {
                    assert!(self.pool_names.insert(name), "index reused: {name}");
                    self.pending.push(Pending::Command(c));
                }
                Command::RetryWarmAfter(_) | Command::RetryDeleteAfter { .. } => {
                    self.timers.push(c)
                }
                Command::WarmFinished(_) | Command::DrainFinished(_) => {}
                c => self.pending.push(Pending::Command(c)),
            }
        }
    }

    fn hold(&mut self, name: TapName) {
        assert!(self.held.insert(name), "{name} handed to two holders");
        // Its VM has it open.
        self.kernel.set_in_use(name, true);
    }

    fn apply(&mut self, step: Step) {
        match step {
            Step::Acquire(i) => {
                let fallback = TapName::new(&format!("vm-{i}")).unwrap();
                match self.pool.acquire(fallback) {
                    Ok(AcquireDecision::Pooled(name)) => self.hold(name),
                    Ok(AcquireDecision::Create(name, spec)) => {
                        self.pending.push(Pending::LeaseCreate(name, spec))
                    }
                    Err(PoolError::NameInUse { .. }) => {}
                    Err(e) => panic!("unexpected acquire error {e}"),
                }
            }
            Step::Release(i) => {
                let Some(&name) = self.held.iter().nth(i % self.held.len().max(1)) else {
                    return;
                };
                self.held.remove(&name);
                self.kernel.set_in_use(name, false);
                match self.pool.release(name).expect("a held tap can be released") {
                    ReleaseDecision::Pooled | ReleaseDecision::Vanished => {}
                    ReleaseDecision::Delete => self.pending.push(Pending::ReleaseDelete(name)),
                }
            }
            Step::Warm => self.pool.warm(),
            Step::Seed => {
                let used: Vec<TapName> = self.held.iter().copied().collect();
                if let Ok(links) = self.kernel.list_taps() {
                    let report = self.pool.reconcile(&used, &links);
                    assert!(report.missing.iter().all(|n| !self.kernel.contains(*n)));
                }
            }
            Step::Drain => self.pool.drain(),
            Step::ExternalDelete(i) => {
                let taps = self.kernel.taps();
                if let Some(t) = taps.get(i % taps.len().max(1)) {
                    self.kernel.remove_externally(t.name);
                    // The watcher's notification, delivered later.
                    self.events.push((t.name, t.index));
                }
            }
            Step::Faults(on) => {
                self.kernel.clear_faults();
                if on {
                    for op in [
                        SimOp::Create,
                        SimOp::Delete,
                        SimOp::Reset,
                        SimOp::DeleteGroup,
                    ] {
                        self.kernel.inject(Fault::rate(op, 0.3, libc::EIO));
                    }
                }
            }
            Step::Execute(i) => {
                if !self.pending.is_empty() {
                    let p = self.pending.swap_remove(i % self.pending.len());
                    let d = self.execute(p);
                    self.done.push(d);
                }
            }
            Step::Report(i) => {
                if !self.done.is_empty() {
                    let d = self.done.swap_remove(i % self.done.len());
                    self.report(d);
                }
            }
            Step::Deliver(i) => {
                if !self.events.is_empty() {
                    let (name, index) = self.events.swap_remove(i % self.events.len());
                    self.pool.link_removed(name, index);
                }
            }
            Step::Resync => {
                let snapshot = self.pool.resync_snapshot();
                if let Ok(links) = self.kernel.list_taps() {
                    self.done.push(Done::Listing(snapshot, links));
                }
            }
            Step::Restart => {
                // Without a device group, fallback taps a dead process made
                // but never handed out cannot be told from anyone else's:
                // restarts are modelled where the pool has its group.
                // Likewise after a drain began: fallback taps made since are
                // kept out of the group, so the group delete cannot take them
                // from their holders (see docs/operations.md).
                if !self.grouped || self.pool.is_shutting_down() {
                    return;
                }
                self.kernel.clear_faults();
                // What was asked but not done is lost; what the kernel did
                // stays. The new pool learns it all from Seed.
                self.pending.clear();
                self.done.clear();
                self.events.clear();
                self.timers.clear();
                self.pool = Pool::new(self.config.clone()).unwrap();
                let used: Vec<TapName> = self.held.iter().copied().collect();
                let links = self.kernel.list_taps().unwrap();
                let report = self.pool.reconcile(&used, &links);
                assert!(report.left_alone.is_empty(), "{report:?}");
                // A VM whose tap vanished while the pool was down is told so.
                for name in &report.missing {
                    assert!(!self.kernel.contains(*name));
                    self.held.remove(name);
                }
                // A new run: an index asked for but never created may be used
                // again, but no name the kernel holds may be.
                self.pool_names = links.iter().map(|l| l.name).collect();
            }
            Step::FireTimer(i) => {
                if self.timers.is_empty() {
                    return;
                }
                match self.timers.swap_remove(i % self.timers.len()) {
                    Command::RetryWarmAfter(_) => self.pool.retry_warm(),
                    Command::RetryDeleteAfter { name, .. } => self.pool.retry_delete(name),
                    other => unreachable!("{other:?}"),
                }
            }
        }
        self.collect();
    }

    fn execute(&mut self, p: Pending) -> Done {
        let k = &mut self.kernel;
        match p {
            Pending::LeaseCreate(name, spec) => {
                let r = k.create_tap(name, &spec).map_err(PoolError::from);
                Done::Created(p, r)
            }
            Pending::ReleaseDelete(name) => {
                let r = k.delete_link(name.into()).map_err(PoolError::from);
                Done::Unit(p, r)
            }
            Pending::Command(ref c) => match *c {
                Command::Create { name, spec } => {
                    let r = k.create_tap(name, &spec).map_err(PoolError::from);
                    Done::Created(p, r)
                }
                Command::Reset { name, spec, mac } => {
                    let r = k
                        .reset_tap(name.into(), &spec, mac)
                        .map_err(PoolError::from);
                    Done::Unit(p, r)
                }
                Command::Delete { name } => {
                    let r = k.delete_link(name.into()).map_err(PoolError::from);
                    Done::Unit(p, r)
                }
                Command::Ungroup { name } => {
                    let r = k.set_device_group(name.into(), 0).map_err(PoolError::from);
                    Done::Unit(p, r)
                }
                Command::CheckGroup { group } => {
                    Done::Group(k.list_group(group).map_err(PoolError::from))
                }
                Command::DeleteGroup { group } => {
                    let r = k.delete_group(group).map_err(PoolError::from);
                    Done::Unit(p, r)
                }
                ref other => unreachable!("{other:?}"),
            },
        }
    }

    fn report(&mut self, d: Done) {
        match d {
            Done::Created(Pending::LeaseCreate(name, _), r) => {
                self.pool.lease_created(name, &r);
                if r.is_ok() {
                    self.hold(name);
                }
            }
            Done::Created(Pending::Command(Command::Create { name, .. }), r) => {
                self.pool.warm_created(name, r)
            }
            Done::Unit(Pending::ReleaseDelete(name), r) => self.pool.delete_finished(name, &r),
            Done::Unit(Pending::Command(c), r) => match c {
                Command::Reset { name, .. } => self.pool.reset_finished(name, &r),
                Command::Delete { name } => self.pool.delete_finished(name, &r),
                Command::Ungroup { name } => self.pool.ungrouped(name, &r),
                Command::DeleteGroup { .. } => self.pool.group_deleted(&r),
                other => unreachable!("{other:?}"),
            },
            Done::Group(r) => self.pool.group_checked(&r),
            Done::Listing(snapshot, links) => self.pool.resync(&snapshot, &links),
            other => unreachable!("{other:?}"),
        }
    }

    fn complete(&mut self, p: Pending) {
        let d = self.execute(p);
        self.report(d);
    }

    fn check(&self) {
        let s = self.pool.stats();
        let creating_for_pool = self
            .pool
            .taps()
            .filter(|(_, st)| *st == TapState::CreatingForPool)
            .count();
        assert!(
            s.idle + s.resetting + creating_for_pool <= self.size,
            "overshoot: {s:?}"
        );
        // An idle tap exists, once the watcher has told of every removal.
        if self.events.is_empty() {
            for name in self.pool.idle() {
                assert!(
                    self.kernel.contains(*name),
                    "idle {name} is not in the kernel"
                );
            }
        }
        for tap in self.kernel.taps() {
            assert!(
                self.pool.state_of(&tap.name).is_some(),
                "{} is in the kernel but the pool forgot it",
                tap.name
            );
        }
        for name in &self.held {
            assert_eq!(self.pool.state_of(name), Some(TapState::Leased), "{name}");
        }
        assert_eq!(s.leased, self.held.len());
    }

    /// Lets every pending call and timer finish, without faults.
    fn settle(&mut self) {
        self.kernel.clear_faults();
        for _ in 0..1000 {
            if let Some((name, index)) = self.events.pop() {
                self.pool.link_removed(name, index);
            } else if let Some(d) = self.done.pop() {
                self.report(d);
            } else if let Some(p) = self.pending.pop() {
                self.complete(p);
            } else if let Some(t) = self.timers.pop() {
                match t {
                    Command::RetryWarmAfter(_) => self.pool.retry_warm(),
                    Command::RetryDeleteAfter { name, .. } => self.pool.retry_delete(name),
                    other => unreachable!("{other:?}"),
                }
            } else {
                return;
            }
            self.collect();
            self.check();
        }
        panic!("did not settle");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn no_tap_is_lost_or_held_twice(
        size in 0usize..5,
        grouped in any::<bool>(),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let mut m = Model::new(size, grouped);
        for s in steps {
            m.apply(s);
            m.check();
        }
        // Once everything settles, the kernel holds exactly the idle taps,
        // the held ones, and nothing else.
        m.settle();
        let s = m.pool.stats();
        prop_assert_eq!(s.creating + s.resetting + s.deleting + s.delete_failed, 0);
        let kernel: BTreeSet<TapName> = m.kernel.taps().iter().map(|t| t.name).collect();
        let mut expected: BTreeSet<TapName> = m.pool.idle().iter().copied().collect();
        expected.extend(m.held.iter().copied().filter(|n| m.kernel.contains(*n)));
        prop_assert_eq!(kernel, expected);
    }
}
