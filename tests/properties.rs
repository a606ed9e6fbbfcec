//! A stateful property test of the pool's rules: random sequences of
//! Acquire, Release, Warm, Seed, Drain, deletions behind the pool's back,
//! injected kernel faults and the passing of time, run against the simulated
//! kernel with a virtual clock. Kernel calls the pool asked for stay pending
//! and complete in a random order, as they do with several kernel workers;
//! the pool's own timing policy (reset batching, retries and their backoff)
//! runs as it does in production, driven by `poll_timeout` and
//! `handle_timeout`. After every step the invariants are checked.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tap_pool::sim::{Fault, SimKernel, SimOp};
use tap_pool::{
    Answer, Command, CommandId, Event, Kernel, Lease, LeaseToken, LinkEvent, Op, Outcome, Pool,
    PoolConfig, PoolError, RequestId, TapName, TapSpec, TapState,
};

#[derive(Clone, Debug)]
enum Step {
    Acquire(u8),
    /// An Acquire whose caller gives up: the driver releases the lease
    /// when it comes.
    AcquireAndGiveUp(u8),
    Release(usize),
    /// A release of a lease that has ended (stale, duplicate, or from
    /// before a restart).
    StaleRelease(usize),
    Warm,
    Seed,
    Drain,
    ExternalDelete(usize),
    /// An operator renames a tap behind the pool's back (`ip link set X
    /// name Y`); the watcher's notification comes later.
    ExternalRename(usize),
    Faults(bool),
    /// The kernel carries out a call the pool asked for...
    Execute(usize),
    /// ...and, later, the pool hears how it went.
    Report(usize),
    /// The link watcher's notification of a removal arrives.
    Deliver(usize),
    /// Notifications were lost: the pool resyncs.
    Resync,
    /// A hostile tenant changes its leased tap through its file: another
    /// owner (restorable), a group (not: the spec has none), vnet header or
    /// persistence off, or it keeps the file open past its release.
    Tenant(usize, u8),
    /// The process dies (calls in flight are lost) and a new pool seeds.
    Restart,
    /// Time passes (one of a few steps, from under the reset window to
    /// the longest backoff), and the pool's timer fires if it is due.
    Advance(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<u8>().prop_map(|i| Step::Acquire(i % 24)),
        1 => any::<u8>().prop_map(|i| Step::AcquireAndGiveUp(i % 24)),
        4 => any::<usize>().prop_map(Step::Release),
        1 => any::<usize>().prop_map(Step::StaleRelease),
        2 => Just(Step::Warm),
        1 => Just(Step::Seed),
        1 => Just(Step::Drain),
        1 => any::<usize>().prop_map(Step::ExternalDelete),
        1 => any::<usize>().prop_map(Step::ExternalRename),
        1 => any::<bool>().prop_map(Step::Faults),
        6 => any::<usize>().prop_map(Step::Execute),
        6 => any::<usize>().prop_map(Step::Report),
        2 => any::<usize>().prop_map(Step::Deliver),
        1 => Just(Step::Resync),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, what)| Step::Tenant(i, what % 5)),
        1 => Just(Step::Restart),
        3 => any::<u8>().prop_map(Step::Advance),
    ]
}

const STEPS: [Duration; 5] = [
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_millis(100),
    Duration::from_secs(1),
    Duration::from_secs(30),
];

struct Model {
    pool: Pool,
    config: PoolConfig,
    grouped: bool,
    kernel: SimKernel,
    size: usize,
    now: Instant,
    /// Calls the pool asked for, not yet carried out.
    pending: Vec<Command>,
    /// Calls carried out, whose outcome the pool has not heard yet.
    done: Vec<(CommandId, Outcome)>,
    /// Removals and renames the watcher has seen but not yet delivered.
    events: Vec<LinkEvent>,
    /// Names given by renames, to the name the pool knows the tap by.
    renamed: HashMap<TapName, TapName>,
    renames: u32,
    /// Renamed taps a restarted pool could not know (a VM holds one open
    /// under a name nobody listed): left alone, outside the pool.
    outside: HashSet<TapName>,
    /// Requests the pool owes an answer, and what they asked.
    owed: HashMap<RequestId, &'static str>,
    /// What the clients hold, and their tokens.
    held: BTreeMap<TapName, LeaseToken>,
    /// Leases that have ended (released, or from before a restart).
    ended: Vec<LeaseToken>,
    /// Acquires whose callers have gone.
    gave_up: HashSet<RequestId>,
    /// Every pool name ever asked for: none may be asked for twice.
    pool_names: HashSet<TapName>,
    /// Taps whose tenant keeps its file open past the release, by the
    /// name the pool knows them by.
    kept_open: HashSet<TapName>,
}

impl Model {
    fn new(size: usize, grouped: bool) -> Model {
        let config = {
            let mut c = PoolConfig::default();
            c.size = size;
            c.create_window = 2;
            c.tap = {
                let mut t = TapSpec::default();
                t.device_group = grouped.then_some(4242);
                t
            };
            c
        };
        Model {
            pool: Pool::new(config.clone()).unwrap(),
            config,
            grouped,
            kernel: SimKernel::with_seed(7),
            size,
            now: Instant::now(),
            pending: Vec::new(),
            done: Vec::new(),
            events: Vec::new(),
            renamed: HashMap::new(),
            renames: 0,
            outside: HashSet::new(),
            owed: HashMap::new(),
            held: BTreeMap::new(),
            ended: Vec::new(),
            gave_up: HashSet::new(),
            pool_names: HashSet::new(),
            kept_open: HashSet::new(),
        }
    }

    /// Takes what the pool asked for: kernel calls become pending, answers
    /// are checked off what is owed.
    fn collect(&mut self) {
        // Answering an event may ask for more (a lease nobody wants goes
        // back): until nothing is left.
        while self.collect_once() {}
    }

    fn collect_once(&mut self) -> bool {
        let mut any = false;
        while let Some(batch) = self.pool.poll_batch() {
            any = true;
            for c in batch.commands {
                if let Op::Create { name, .. } = &c.op
                    && self.pool.pool_index(name).is_some()
                {
                    assert!(self.pool_names.insert(*name), "index reused: {name}");
                }
                self.pending.push(c);
            }
        }
        while let Some(event) = self.pool.poll_event() {
            any = true;
            let (request, kind) = match &event {
                Event::Acquired { request, .. } => (*request, "acquire"),
                Event::Released { request, .. } => (*request, "release"),
                Event::Warmed { request, .. } => (*request, "warm"),
                Event::Seeded { request, .. } => (*request, "seed"),
                Event::Drained { request, .. } => (*request, "drain"),
                other => unreachable!("{other:?}"),
            };
            assert_eq!(
                self.owed.remove(&request),
                Some(kind),
                "{event:?} answers nothing owed"
            );
            match event {
                Event::Acquired {
                    request,
                    result: Ok(lease),
                } => {
                    if self.gave_up.remove(&request) {
                        self.give_back(lease);
                    } else {
                        self.hold(lease);
                    }
                }
                Event::Seeded {
                    result: Ok(report), ..
                } => {
                    // A VM whose tap vanished is told so.
                    for name in &report.missing {
                        assert!(!self.kernel.contains(*name));
                        if let Some(token) = self.held.remove(name) {
                            self.ended.push(token);
                        }
                    }
                    // Every other held tap has its lease (a new one after
                    // a restart).
                    for lease in &report.held {
                        if let Some(old) = self.held.insert(lease.name, lease.token)
                            && old != lease.token
                        {
                            self.ended.push(old);
                        }
                    }
                }
                _ => {}
            }
        }
        any
    }

    fn owe<T>(&mut self, answer: Answer<T>, kind: &'static str) {
        if let Answer::Later(request) = answer {
            self.owe_id(request, kind);
        }
    }

    fn owe_id(&mut self, request: RequestId, kind: &'static str) {
        assert!(self.owed.insert(request, kind).is_none(), "id reused");
    }

    fn hold(&mut self, lease: Lease) {
        let name = lease.name;
        assert!(
            self.held.insert(name, lease.token).is_none(),
            "{name} handed to two holders"
        );
        assert!(!self.ended.contains(&lease.token), "a token reused");
        // Nothing of a last tenant: nobody has it open, and it is owned
        // and grouped as the spec says.
        if let Some(tap) = self.kernel.tap(self.kernel_name(name)) {
            assert!(!tap.in_use, "{name} handed out while a file is attached");
            assert_eq!(tap.group, self.config.tap.group, "{name}'s group");
            assert!(tap.owner.is_some(), "{name} open to anyone");
            assert!(tap.persistent, "{name} not persistent");
            assert_eq!(tap.vnet_hdr, self.config.tap.vnet_hdr, "{name}'s vnet_hdr");
        }
        // Its VM has it open.
        self.kernel.set_in_use(name, true);
        self.kept_open.remove(&name);
    }

    /// The driver releases a lease whose caller has gone.
    fn give_back(&mut self, lease: Lease) {
        assert!(
            !self.held.contains_key(&lease.name),
            "{} held twice",
            lease.name
        );
        let answer = self.pool.release(lease.token, self.now);
        assert!(
            !matches!(answer, Answer::Now(Err(_))),
            "a lease nobody wants goes back: {answer:?}"
        );
        self.ended.push(lease.token);
        self.owe(answer, "release");
    }

    /// A Seed whose listing runs and is reported at once (a Seed racing
    /// other calls is not modelled here).
    fn seed(&mut self) {
        self.collect();
        let used: Vec<TapName> = self.held.keys().copied().collect();
        let request = self.pool.seed(used, self.now);
        self.owe_id(request, "seed");
        let batch = self.pool.poll_batch().expect("Seed lists the kernel");
        let [c] = &batch.commands[..] else {
            panic!("{batch:?}")
        };
        assert_eq!(c.op, Op::ListTaps);
        let outcome = c.op.run(&mut self.kernel);
        self.pool.complete(c.id, outcome, self.now);
    }

    fn apply(&mut self, step: Step) {
        let now = self.now;
        match step {
            Step::Acquire(i) => {
                let fallback = TapName::new(&format!("vm-{i}")).unwrap();
                match self.pool.acquire(fallback, now) {
                    Answer::Now(Ok(lease)) => self.hold(lease),
                    Answer::Now(Err(PoolError::NameInUse { .. })) => {}
                    Answer::Now(Err(e)) => panic!("unexpected acquire error {e}"),
                    later => self.owe(later, "acquire"),
                }
            }
            Step::AcquireAndGiveUp(i) => {
                let fallback = TapName::new(&format!("vm-{i}")).unwrap();
                match self.pool.acquire(fallback, now) {
                    Answer::Now(Ok(lease)) => self.give_back(lease),
                    Answer::Now(Err(PoolError::NameInUse { .. })) => {}
                    Answer::Now(Err(e)) => panic!("unexpected acquire error {e}"),
                    Answer::Later(request) => {
                        self.owe_id(request, "acquire");
                        self.gave_up.insert(request);
                    }
                }
            }
            Step::Release(i) => {
                let Some((&name, &token)) = self.held.iter().nth(i % self.held.len().max(1)) else {
                    return;
                };
                self.held.remove(&name);
                // Its VM closes it, under whatever name it has now (unless
                // a hostile tenant keeps it open).
                if !self.kept_open.contains(&name) {
                    self.kernel.set_in_use(self.kernel_name(name), false);
                }
                let answer = self.pool.release(token, now);
                assert!(
                    !matches!(answer, Answer::Now(Err(_))),
                    "a held tap can be released: {answer:?}"
                );
                self.ended.push(token);
                self.owe(answer, "release");
            }
            Step::Tenant(i, what) => {
                let Some(&name) = self.held.keys().nth(i % self.held.len().max(1)) else {
                    return;
                };
                if what == 4 {
                    self.kept_open.insert(name);
                    return;
                }
                self.kernel
                    .tamper(self.kernel_name(name), |tap| match what {
                        0 => tap.owner = Some(60001),
                        1 => tap.group = Some(60001),
                        2 => tap.vnet_hdr = !tap.vnet_hdr,
                        _ => tap.persistent = false,
                    });
            }
            Step::StaleRelease(i) => {
                let Some(&token) = self.ended.get(i % self.ended.len().max(1)) else {
                    return;
                };
                let before = self.pool.stats();
                let answer = self.pool.release(token, now);
                assert!(
                    matches!(
                        answer,
                        Answer::Now(Err(
                            PoolError::LeaseEnded { .. } | PoolError::UnknownLease { .. }
                        ))
                    ),
                    "a stale release is refused: {answer:?}"
                );
                assert_eq!(self.pool.stats(), before, "a stale release changes nothing");
                assert!(self.pool.poll_batch().is_none(), "and calls no kernel");
            }
            Step::Warm => {
                let request = self.pool.warm(now);
                self.owe_id(request, "warm");
            }
            Step::Seed => {
                if self.kernel.list_taps().is_ok() {
                    self.seed();
                }
            }
            Step::Drain => {
                let request = self.pool.drain(now);
                self.owe_id(request, "drain");
            }
            Step::ExternalDelete(i) => {
                let taps = self.kernel.taps();
                if let Some(t) = taps.get(i % taps.len().max(1)) {
                    self.kernel.remove_externally(t.name);
                    // The watcher's notification, delivered later, under
                    // the name the device had.
                    self.events.push(LinkEvent::Removed {
                        name: t.name,
                        index: t.index,
                    });
                }
            }
            Step::ExternalRename(i) => {
                let taps = self.kernel.taps();
                if let Some(t) = taps.get(i % taps.len().max(1)) {
                    self.renames += 1;
                    let to = TapName::new(&format!("ren-{}", self.renames)).unwrap();
                    assert!(self.kernel.rename_externally(t.name, to));
                    if self.outside.remove(&t.name) {
                        self.outside.insert(to);
                    } else {
                        let known_as = self.renamed.remove(&t.name).unwrap_or(t.name);
                        self.renamed.insert(to, known_as);
                    }
                    self.events.push(LinkEvent::Renamed {
                        index: t.index,
                        from: t.name,
                        to: Some(to),
                    });
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
                        SimOp::List,
                    ] {
                        self.kernel.inject(Fault::rate(op, 0.3, libc::EIO));
                    }
                }
            }
            Step::Execute(i) => {
                if !self.pending.is_empty() {
                    let c = self.pending.swap_remove(i % self.pending.len());
                    let outcome = c.op.run(&mut self.kernel);
                    self.done.push((c.id, outcome));
                }
            }
            Step::Report(i) => {
                if !self.done.is_empty() {
                    let (id, outcome) = self.done.swap_remove(i % self.done.len());
                    self.pool.complete(id, outcome, now);
                }
            }
            Step::Deliver(i) => {
                if !self.events.is_empty() {
                    let event = self.events.swap_remove(i % self.events.len());
                    self.deliver(event);
                }
            }
            Step::Resync => self.pool.resync(now),
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
                // Tenants that kept their files past the release let go
                // (one that never does keeps a device no Seed may touch).
                for name in std::mem::take(&mut self.kept_open) {
                    if !self.held.contains_key(&name) {
                        self.kernel.set_in_use(self.kernel_name(name), false);
                    }
                }
                // What was asked but not done is lost; what the kernel did
                // stays. The new pool learns it all from Seed.
                self.pending.clear();
                self.done.clear();
                self.events.clear();
                self.owed.clear();
                self.gave_up.clear();
                // A new run knows devices by the names they have now. A
                // held tap renamed meanwhile is listed by its old name, so
                // the new pool cannot know it: its VM keeps it, outside.
                for (now_named, was) in self.renamed.drain() {
                    if self.held.contains_key(&was) && self.kernel.contains(now_named) {
                        self.outside.insert(now_named);
                    }
                }
                self.pool = Pool::new(self.config.clone()).unwrap();
                let links = self.kernel.list_taps().unwrap();
                self.seed();
                self.collect();
                // A new run: an index asked for but never created may be used
                // again, but no name the kernel holds may be.
                self.pool_names = links.iter().map(|l| l.name).collect();
            }
            Step::Advance(i) => {
                self.now += STEPS[i as usize % STEPS.len()];
                self.fire_timer();
            }
        }
        self.collect();
    }

    /// The watcher's notification reaches the pool.
    fn deliver(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Removed { name, index } => self.pool.link_removed(name, index, self.now),
            LinkEvent::Renamed { index, from, to } => {
                self.pool.link_renamed(index, from, to, self.now)
            }
            LinkEvent::Resync => self.pool.resync(self.now),
        }
    }

    /// The kernel's name now for the tap the pool knows as `known`.
    fn kernel_name(&self, known: TapName) -> TapName {
        self.renamed
            .iter()
            .find(|(now, was)| **was == known && self.kernel.contains(**now))
            .map_or(known, |(now, _)| *now)
    }

    /// The name the pool knows the kernel's device `name` by.
    fn known_as(&self, name: TapName) -> TapName {
        self.renamed.get(&name).copied().unwrap_or(name)
    }

    /// The pool's timer fires: a driver may fire it early (the actor keeps
    /// a timer armed for an earlier deadline than the pool's next), so it
    /// fires whether or not anything is due.
    fn fire_timer(&mut self) {
        self.pool.handle_timeout(self.now);
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
            if self.outside.contains(&tap.name) {
                continue;
            }
            let known_as = self.known_as(tap.name);
            assert!(
                self.pool.state_of(&known_as).is_some(),
                "{} (known as {known_as}) is in the kernel but the pool forgot it",
                tap.name
            );
        }
        for (name, token) in &self.held {
            assert_eq!(self.pool.state_of(name), Some(TapState::Leased), "{name}");
            assert_eq!(self.pool.leased_tap(*token), Some(*name), "{name}'s lease");
        }
        assert_eq!(s.leased, self.held.len());
        // A deadline never lies in the past for long: the driver is told
        // of every one, and none is armed for nothing.
        if let Some(at) = self.pool.poll_timeout() {
            assert!(at <= self.now + STEPS[STEPS.len() - 1], "deadline too far");
        }
    }

    /// Lets every pending call, notification and timer finish, without
    /// faults, moving the clock to each deadline in turn.
    fn settle(&mut self) {
        self.kernel.clear_faults();
        for _ in 0..10_000 {
            if let Some(event) = self.events.pop() {
                self.deliver(event);
            } else if let Some((id, outcome)) = self.done.pop() {
                self.pool.complete(id, outcome, self.now);
            } else if let Some(c) = self.pending.pop() {
                let outcome = c.op.run(&mut self.kernel);
                self.pool.complete(c.id, outcome, self.now);
            } else if let Some(at) = self.pool.poll_timeout() {
                self.now = self.now.max(at);
                self.pool.handle_timeout(self.now);
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
        size in 0usize..12,
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
        prop_assert_eq!(s.creating + s.resetting + s.deleting + s.delete_failed, 0, "{:?} {:?}", s, m.pool.taps().collect::<Vec<_>>());
        // Every request was answered, once.
        prop_assert!(m.owed.is_empty(), "unanswered: {:?}", m.owed);
        // (Renamed taps by the name the pool knows them by: a held one is
        // still its holder's; no idle one is renamed.)
        let kernel: BTreeSet<TapName> = m
            .kernel
            .taps()
            .iter()
            .filter(|t| !m.outside.contains(&t.name))
            .map(|t| m.known_as(t.name))
            .collect();
        let mut expected: BTreeSet<TapName> = m.pool.idle().iter().copied().collect();
        for name in m.pool.idle() {
            prop_assert!(m.kernel.contains(*name), "idle {} renamed or gone", name);
        }
        expected.extend(m.held.keys().copied().filter(|n| kernel.contains(n)));
        prop_assert_eq!(kernel, expected);
    }
}
