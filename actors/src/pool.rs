//! [`TapPoolActor`]: the pool's bookkeeping behind a mailbox.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;

use actix::dev::{MessageResponse, OneshotSender};
use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, MailboxError, Message,
    MessageResult, Running, WeakAddr, WeakRecipient,
};
use tap_pool::{
    AcquireDecision, Command, ConfigError, DrainReport, KernelError, KernelFactory, LinkEvent,
    Pool, PoolConfig, PoolError, ReleaseDecision, SeedReport, TapName, WarmReport,
};
use tokio::sync::oneshot;
use tracing::{debug, debug_span, info, warn};

use crate::messages::{Acquire, Drain, Lease, LeaseSource, Release, Released, Seed, Stats, Warm};
use crate::netlink::{
    CreateTap, DeleteGroup, DeleteTap, ListGroup, ListTaps, NetlinkActor, ResetDone, ResetTap,
    ResetTaps, SetDeviceGroup,
};

/// Owns the idle taps and the name index, with no locks, and answers
/// [`Acquire`], [`Release`], [`Warm`], [`Seed`], [`Drain`] and [`Stats`].
///
/// It never makes a syscall and never blocks its mailbox: a request that needs
/// the kernel reserves its name or slot in the bookkeeping first, hands the
/// call to the [`NetlinkActor`], and is answered (see [`Reply`]) when the
/// kernel has replied and the bookkeeping is done; meanwhile every other
/// message is served. No future lives in its context: kernel replies are
/// awaited on tasks of their own and come back as messages. A warm
/// `Acquire` is answered in place, with no allocation; a `Release` back to
/// the pool is answered in place too, and queues the tap's reset (a kernel
/// call nobody waits for) unless `reset_on_release` is off.
pub struct TapPoolActor {
    pool: Pool,
    /// Its own address, held weakly: given to the tasks that await kernel
    /// replies. Set in `started`.
    me: Option<WeakAddr<TapPoolActor>>,
    /// Creates, resets, listings and group changes.
    kernel: Addr<NetlinkActor>,
    /// Deletes: slow kernel waits (~16 ms each) that run in parallel, kept
    /// off `kernel`'s queue so that creates and resets never wait behind them.
    deleter: Addr<NetlinkActor>,
    /// Released taps whose reset is not yet handed to the kernel actor.
    resets: Vec<ResetTap>,
    /// How many queued resets make a batch due (half the pool, 1 to 64).
    reset_batch: usize,
    /// When resets last went to the kernel actor.
    last_reset_batch: Option<Instant>,
    /// Whether a timer will send the queued resets.
    reset_timer: bool,
    warm_waiters: Vec<oneshot::Sender<WarmReport>>,
    drain_waiters: Vec<oneshot::Sender<DrainReport>>,
    stop: StopState,
}

/// Where stopping the actor stands: it drains the pool first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopState {
    Running,
    Draining,
    Drained,
}

/// A change the link watcher saw. Sent by the watcher thread.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct LinkChanged(LinkEvent);

impl TapPoolActor {
    /// A pool actor that sends its kernel calls to `kernel`. Refuses a
    /// configuration that cannot name its taps.
    pub fn new(config: PoolConfig, kernel: Addr<NetlinkActor>) -> Result<Self, ConfigError> {
        let reset_batch = (config.size / 2).clamp(1, 64);
        Ok(TapPoolActor {
            pool: Pool::new(config)?,
            me: None,
            deleter: kernel.clone(),
            kernel,
            resets: Vec::new(),
            reset_batch,
            last_reset_batch: None,
            reset_timer: false,
            warm_waiters: Vec::new(),
            drain_waiters: Vec::new(),
            stop: StopState::Running,
        })
    }

    /// Starts the actor on the current arbiter, with no link watcher: taps
    /// removed behind the pool's back are noticed only when a kernel call on
    /// them fails. Prefer [`TapPoolActor::start_with`].
    pub fn spawn(
        config: PoolConfig,
        kernel: Addr<NetlinkActor>,
    ) -> Result<Addr<TapPoolActor>, ConfigError> {
        Ok(TapPoolActor::new(config, kernel)?.start())
    }

    /// Starts the whole pool on `factory`: a [`NetlinkActor`] with `workers`
    /// threads for creates and resets, another with `workers` threads for
    /// deletes (so creates never queue behind slow deletes), the pool actor
    /// on the current arbiter, and a thread that watches the kernel's links
    /// (so a tap deleted behind the pool's back is noticed at once).
    pub fn start_with(
        config: PoolConfig,
        factory: Arc<dyn KernelFactory>,
        workers: usize,
    ) -> Result<Addr<TapPoolActor>, ConfigError> {
        let kernel = NetlinkActor::start(Arc::clone(&factory), workers);
        let mut actor = TapPoolActor::new(config, kernel)?;
        actor.deleter = NetlinkActor::start(Arc::clone(&factory), workers);
        let addr = actor.start();
        let weak = addr.downgrade();
        thread::Builder::new()
            .name("tap-pool-watch".to_owned())
            .spawn(move || watch_links(factory, weak))
            .expect("spawn the link watcher thread");
        Ok(addr)
    }

    /// Hands `msg` to the kernel actor `to` and, when it answers, runs
    /// `then` on the pool (followed by [`TapPoolActor::pump`]).
    ///
    /// The reply is awaited on a task of its own that holds the pool only
    /// weakly and comes back as a message: the pool's own context never holds
    /// a pending future. (actix polls every future spawned in an actor's
    /// context each time the actor wakes, so N kernel calls in flight would
    /// cost every `Acquire` N polls.)
    fn call<M, T, F>(&self, to: &Addr<NetlinkActor>, msg: M, then: F)
    where
        M: Message<Result = Result<T, KernelError>> + Send + 'static,
        T: Send + 'static,
        NetlinkActor: Handler<M>,
        F: FnOnce(&mut Self, Result<T, PoolError>, &mut Context<Self>) + Send + 'static,
    {
        self.call_raw(to, msg, move |act, res, ctx| {
            then(act, kernel_result(res), ctx)
        });
    }

    /// [`TapPoolActor::call`] for a message whose answer is not a single
    /// `Result`.
    fn call_raw<M, F>(&self, to: &Addr<NetlinkActor>, msg: M, then: F)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        NetlinkActor: Handler<M>,
        F: FnOnce(&mut Self, Result<M::Result, MailboxError>, &mut Context<Self>) + Send + 'static,
    {
        let request = to.send(msg);
        let pool = self.weak();
        actix::spawn(async move {
            let res = request.await;
            // A pool that is gone has nothing left to record.
            if let Some(pool) = pool.upgrade() {
                pool.do_send(Then(Box::new(
                    move |act: &mut Self, ctx: &mut Context<Self>| then(act, res, ctx),
                )));
            }
        });
    }

    /// Runs `step` on the pool (which then pumps) and resolves to what it
    /// returned, or to `None` if the pool is gone. How an answer the caller
    /// waits for records the kernel's reply before the caller hears of it.
    async fn on_pool<R: Send + 'static>(
        pool: WeakAddr<Self>,
        step: impl FnOnce(&mut Self) -> R + Send + 'static,
    ) -> Option<R> {
        let pool = pool.upgrade()?;
        pool.send(Then(Box::new(
            move |act: &mut Self, _: &mut Context<Self>| step(act),
        )))
        .await
        .ok()
    }

    /// The pool's own address, held weakly (set when the actor starts).
    fn weak(&self) -> WeakAddr<Self> {
        self.me.clone().expect("the pool actor has started")
    }

    /// Carries out the work the pool queued: kernel calls go to the kernel
    /// actor and report back; timers are set; finished warm-ups and drains
    /// are answered.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(command) = self.pool.take_command() {
            match command {
                Command::Create { name, spec } => {
                    self.call(
                        &self.kernel,
                        CreateTap { name, spec },
                        move |act, res, _| {
                            match &res {
                                Err(error) => warn!(tap = %name, %error, "tap pool warm-up failed"),
                                Ok(_) => debug!(tap = %name, "tap added to idle pool"),
                            }
                            act.pool.warm_created(name, res);
                        },
                    );
                }
                Command::Reset { name, spec, mac } => {
                    self.resets.push(ResetTap { name, spec, mac });
                }
                Command::Delete { name } => {
                    self.call(&self.deleter, DeleteTap { name }, move |act, res, _| {
                        if let Err(error) = &res {
                            warn!(tap = %name, %error, "deleting a tap failed");
                        }
                        act.pool.delete_finished(name, &res);
                    });
                }
                Command::Ungroup { name } => {
                    let msg = SetDeviceGroup { name, group: 0 };
                    self.call(&self.kernel, msg, move |act, res, _| {
                        act.pool.ungrouped(name, &res);
                    });
                }
                Command::CheckGroup { group } => {
                    self.call(&self.kernel, ListGroup { group }, move |act, res, _| {
                        if let Ok(members) = &res {
                            debug!(group, members = members.len(), "device group listed");
                        }
                        act.pool.group_checked(&res);
                    });
                }
                Command::DeleteGroup { group } => {
                    self.call(&self.deleter, DeleteGroup { group }, move |act, res, _| {
                        if let Err(error) = &res {
                            warn!(group, %error, "group delete failed; deleting one by one");
                        }
                        act.pool.group_deleted(&res);
                    });
                }
                Command::RetryWarmAfter(after) => {
                    ctx.run_later(after, |act, ctx| {
                        act.pool.retry_warm();
                        act.pump(ctx);
                    });
                }
                Command::RetryDeleteAfter { name, after } => {
                    ctx.run_later(after, move |act, ctx| {
                        act.pool.retry_delete(name);
                        act.pump(ctx);
                    });
                }
                Command::WarmFinished(report) => {
                    if let Some(failure) = &report.failure {
                        warn!(
                            tap = ?failure.name,
                            error = %failure.error,
                            retry_in_ms = report.retry_in.map(|d| d.as_millis() as u64),
                            "tap pool warm-up stopped"
                        );
                    }
                    debug!(created = report.created.len(), "tap pool warm-up finished");
                    for waiter in self.warm_waiters.drain(..) {
                        // A waiter that went away no longer wants the report.
                        let _ = waiter.send(report.clone());
                    }
                }
                Command::DrainFinished(report) => {
                    if !report.foreign_in_group.is_empty() {
                        warn!(
                            foreign = ?report.foreign_in_group,
                            "devices that are not the pool's are in its device group; \
                             deleted the pool's taps one by one instead"
                        );
                    }
                    info!(
                        deleted = report.deleted,
                        bulk = report.bulk,
                        leased = report.leased,
                        delete_failed = report.delete_failed,
                        "tap pool drained"
                    );
                    for waiter in self.drain_waiters.drain(..) {
                        let _ = waiter.send(report.clone());
                    }
                    if self.stop == StopState::Draining {
                        self.stop = StopState::Drained;
                        ctx.stop();
                    }
                }
            }
        }
        self.send_resets(ctx, false);
    }

    /// Hands the queued resets to the kernel actor when that is due: at
    /// once if no batch went in the last [`RESET_WINDOW`] (a quiet pool
    /// resets a released tap straight away), when the queue holds half the
    /// pool (at most 64) or as many taps as are idle (so the idle stock never
    /// runs dry waiting for resets), or when the window's timer fires
    /// (`force`). Under load one hand-off to a worker (a cross-thread wake-up
    /// each way, a few µs) serves many releases.
    ///
    /// The queue goes in batches of at most half the pool (64), so that
    /// several workers share a long queue; each tap's outcome comes back as
    /// a [`ResetDone`] soon after its own reset is done.
    fn send_resets(&mut self, ctx: &mut Context<Self>, force: bool) {
        if self.resets.is_empty() {
            return;
        }
        let waiting = self.resets.len();
        let now = Instant::now();
        let due = force
            || waiting >= self.reset_batch
            || waiting >= self.pool.idle().len()
            || self
                .last_reset_batch
                .is_none_or(|at| now.duration_since(at) >= RESET_WINDOW);
        if !due {
            if !self.reset_timer {
                self.reset_timer = true;
                ctx.run_later(RESET_WINDOW, |act, ctx| {
                    act.reset_timer = false;
                    act.send_resets(ctx, true);
                });
            }
            return;
        }
        self.last_reset_batch = Some(now);
        let report_to = WeakRecipient::from(self.weak());
        let queue = std::mem::take(&mut self.resets);
        for batch in queue.chunks(self.reset_batch) {
            let names: Vec<TapName> = batch.iter().map(|r| r.name).collect();
            let msg = ResetTaps {
                resets: batch.to_vec(),
                report_to: report_to.clone(),
            };
            self.call_raw(&self.kernel, msg, move |act, res, _| {
                // Each outcome came as a `ResetDone`, unless the kernel actor
                // was gone: then none of them ran.
                if res.is_err() {
                    for name in names {
                        act.reset_done(name, Err(PoolError::KernelUnavailable));
                    }
                }
            });
        }
    }

    /// Records how a released tap's reset ended.
    fn reset_done(&mut self, name: TapName, res: Result<(), PoolError>) {
        if let Err(error) = &res {
            warn!(tap = %name, %error, "resetting a released tap failed; deleting it");
        }
        self.pool.reset_finished(name, &res);
    }
}

/// How long released taps may wait for their reset while more releases
/// gather into one batch; a pool that saw no batch for this long resets at
/// once.
pub const RESET_WINDOW: Duration = Duration::from_millis(1);

/// Forwards link changes to the pool until the pool is gone. Runs on a
/// thread of its own, which opens its watcher there (for Linux: inside the
/// pool's namespace).
fn watch_links(factory: Arc<dyn KernelFactory>, pool: WeakAddr<TapPoolActor>) {
    // Hold the pool's address only to deliver an event: a strong address
    // held while blocked would keep the pool from ever stopping.
    let alive = || pool.upgrade().is_some();
    let send = |event| {
        if let Some(addr) = pool.upgrade() {
            addr.do_send(LinkChanged(event));
        }
    };
    let mut watcher = None;
    while alive() {
        let w = match &mut watcher {
            Some(w) => w,
            None => match factory.watch() {
                Ok(w) => {
                    // Whatever happened before the watcher listened is
                    // caught by comparing with a fresh listing.
                    send(LinkEvent::Resync);
                    watcher.insert(w)
                }
                Err(error) => {
                    warn!(%error, "cannot watch the kernel's links; retrying");
                    thread::sleep(Duration::from_secs(1));
                    continue;
                }
            },
        };
        match w.next_event() {
            Ok(Some(event)) => send(event),
            Ok(None) => {}
            Err(error) => {
                warn!(%error, "link watcher failed; reopening and resyncing");
                watcher = None;
                send(LinkEvent::Resync);
            }
        }
    }
}

/// Flattens a kernel actor reply: a closed mailbox means the call never ran.
fn kernel_result<T>(res: Result<Result<T, KernelError>, MailboxError>) -> Result<T, PoolError> {
    match res {
        Ok(r) => r.map_err(PoolError::Kernel),
        Err(_) => Err(PoolError::KernelUnavailable),
    }
}

impl Actor for TapPoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address().downgrade());
    }

    /// Stopping drains first: the actor keeps running until the drain's
    /// report comes back, then stops for good. If the kernel actors are
    /// already gone, it stops at once.
    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        match self.stop {
            StopState::Drained => return Running::Stop,
            StopState::Draining => return Running::Continue,
            StopState::Running if !self.kernel.connected() => return Running::Stop,
            StopState::Running => {}
        }
        self.stop = StopState::Draining;
        info!("tap pool stopping: draining first");
        self.pool.drain();
        self.pump(ctx);
        if self.stop == StopState::Drained {
            return Running::Stop;
        }
        // actix polls what `stopping` spawned into the context (a reset
        // timer, retry timers) only once something wakes the actor again: a
        // message to itself does.
        ctx.address().do_send(Wake);
        Running::Continue
    }
}

/// Wakes the actor after `stopping` started the drain.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Wake;

impl Handler<Wake> for TapPoolActor {
    type Result = ();
    fn handle(&mut self, _: Wake, _: &mut Context<Self>) {}
}

/// Work to run on the pool once a kernel call has answered: how replies
/// awaited outside the pool's context come back to it. The pool then carries
/// out whatever the step queued ([`TapPoolActor::pump`]).
struct Then<R = ()>(Box<dyn OnPool<R>>);

/// A step run on the pool actor with its context.
trait OnPool<R>: FnOnce(&mut TapPoolActor, &mut Context<TapPoolActor>) -> R + Send {}

impl<R, F: FnOnce(&mut TapPoolActor, &mut Context<TapPoolActor>) -> R + Send> OnPool<R> for F {}

impl<R: 'static> Message for Then<R> {
    type Result = R;
}

impl<R: 'static> Handler<Then<R>> for TapPoolActor {
    type Result = MessageResult<Then<R>>;
    fn handle(&mut self, msg: Then<R>, ctx: &mut Context<Self>) -> Self::Result {
        let answer = (msg.0)(self, ctx);
        self.pump(ctx);
        MessageResult(answer)
    }
}

/// How the pool answers a request: at once, or later from a task of its own
/// (never from a future in the pool's context; see [`TapPoolActor`]).
pub enum Reply<T> {
    /// The answer, sent as the message is handled.
    Now(T),
    /// A task that computes the answer; it runs on the pool's arbiter but
    /// outside the pool's context.
    Later(Pin<Box<dyn Future<Output = T>>>),
}

impl<A: Actor, M: Message<Result = T>, T: 'static> MessageResponse<A, M> for Reply<T> {
    fn handle(self, _: &mut A::Context, tx: Option<OneshotSender<T>>) {
        match self {
            Reply::Now(answer) => {
                if let Some(tx) = tx {
                    // A caller that went away no longer wants the answer.
                    let _ = tx.send(answer);
                }
            }
            Reply::Later(answer) => {
                actix::spawn(async move {
                    let answer = answer.await;
                    if let Some(tx) = tx {
                        let _ = tx.send(answer);
                    }
                });
            }
        }
    }
}

impl Handler<Acquire> for TapPoolActor {
    type Result = Reply<Result<Lease, PoolError>>;

    fn handle(&mut self, msg: Acquire, _: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("acquire", fallback = %msg.fallback).entered();
        match self.pool.acquire(msg.fallback) {
            Err(e) => {
                debug!(error = %e, "acquire refused");
                Reply::Now(Err(e))
            }
            Ok(AcquireDecision::Pooled(name)) => Reply::Now(Ok(Lease {
                name,
                source: LeaseSource::Pool,
            })),
            Ok(AcquireDecision::Create(name, spec)) => {
                debug!(tap = %name, "pool empty: creating the fallback tap");
                let deleter = self.deleter.clone();
                let request = self.kernel.send(CreateTap { name, spec });
                let pool = self.weak();
                Reply::Later(Box::pin(async move {
                    let res = kernel_result(request.await);
                    let failure = res.as_ref().err().cloned();
                    // The pool records the lease before the caller hears of
                    // it, so the caller's Release always finds it.
                    let record = move |act: &mut Self| {
                        act.pool.lease_created(name, &res);
                        res.map(|_| Lease {
                            name,
                            source: LeaseSource::Created,
                        })
                    };
                    if let Some(answer) = Self::on_pool(pool, record).await {
                        return answer;
                    }
                    match failure {
                        // Nothing was made (the name may well be someone
                        // else's device: leave it be).
                        Some(error) => Err(error),
                        None => {
                            // The pool stopped while the kernel made the tap:
                            // nobody would ever release it, so it goes.
                            warn!(
                                tap = %name,
                                "the pool stopped during a fallback create; deleting the tap"
                            );
                            deleter.do_send(DeleteTap { name });
                            Err(PoolError::Stopped)
                        }
                    }
                }))
            }
        }
    }
}

impl Handler<Release> for TapPoolActor {
    type Result = Reply<Result<Released, PoolError>>;

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) -> Self::Result {
        let name = msg.tap;
        let _span = debug_span!("release", tap = %name).entered();
        match self.pool.release(name) {
            Err(e) => {
                debug!(error = %e, "release refused");
                Reply::Now(Err(e))
            }
            Ok(ReleaseDecision::Pooled) => {
                self.pump(ctx);
                Reply::Now(Ok(Released::Pooled))
            }
            Ok(ReleaseDecision::Vanished) => Reply::Now(Ok(Released::Vanished)),
            Ok(ReleaseDecision::Delete) => {
                let request = self.deleter.send(DeleteTap { name });
                let pool = self.weak();
                Reply::Later(Box::pin(async move {
                    let res = kernel_result(request.await);
                    if let Err(error) = &res {
                        warn!(tap = %name, %error, "deleting a released tap failed");
                    }
                    let answer = res.clone().map(|()| Released::Deleted);
                    // Recorded before the caller hears, like a create (a pool
                    // that is gone has nothing to record).
                    Self::on_pool(pool, move |act| act.pool.delete_finished(name, &res)).await;
                    answer
                }))
            }
        }
    }
}

impl Handler<Warm> for TapPoolActor {
    type Result = Reply<WarmReport>;

    fn handle(&mut self, _: Warm, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("warm").entered();
        let (tx, rx) = oneshot::channel();
        self.warm_waiters.push(tx);
        self.pool.warm();
        self.pump(ctx);
        let shut_down = WarmReport {
            shut_down: true,
            ..WarmReport::default()
        };
        Reply::Later(Box::pin(async move { rx.await.unwrap_or(shut_down) }))
    }
}

impl Handler<Drain> for TapPoolActor {
    type Result = Reply<DrainReport>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("drain").entered();
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.pool.drain();
        self.pump(ctx);
        Reply::Later(Box::pin(async move { rx.await.unwrap_or_default() }))
    }
}

impl Handler<Seed> for TapPoolActor {
    type Result = Reply<Result<SeedReport, PoolError>>;

    fn handle(&mut self, msg: Seed, _: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("seed", used = msg.used.len()).entered();
        let request = self.kernel.send(ListTaps);
        let pool = self.weak();
        Reply::Later(Box::pin(async move {
            let links = kernel_result(request.await)?;
            let reconcile = move |act: &mut Self| {
                let report = act.pool.reconcile(&msg.used, &links);
                info!(
                    next_index = report.next_index,
                    adopted = report.adopted.len(),
                    deleted = report.deleted.len(),
                    left_alone = ?report.left_alone,
                    missing = ?report.missing,
                    "tap pool seeded"
                );
                report
            };
            Self::on_pool(pool, reconcile)
                .await
                .ok_or(PoolError::Stopped)
        }))
    }
}

impl Handler<Stats> for TapPoolActor {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("stats").entered();
        MessageResult(self.pool.stats())
    }
}

impl Handler<ResetDone> for TapPoolActor {
    type Result = ();

    fn handle(&mut self, msg: ResetDone, ctx: &mut Context<Self>) {
        for (name, result) in msg.0 {
            self.reset_done(name, result.map_err(PoolError::Kernel));
        }
        self.pump(ctx);
    }
}

impl Handler<LinkChanged> for TapPoolActor {
    type Result = ();

    fn handle(&mut self, msg: LinkChanged, ctx: &mut Context<Self>) {
        match msg.0 {
            LinkEvent::Removed { name, index } => {
                let _span = debug_span!("link_removed", tap = %name, index).entered();
                self.pool.link_removed(name, index);
                self.pump(ctx);
            }
            LinkEvent::Resync => {
                let snapshot = self.pool.resync_snapshot();
                self.call(&self.kernel, ListTaps, move |act, res, ctx| match res {
                    Ok(links) => act.pool.resync(&snapshot, &links),
                    Err(error) => {
                        warn!(%error, "cannot list links to resync; retrying");
                        ctx.notify_later(LinkChanged(LinkEvent::Resync), Duration::from_secs(1));
                    }
                });
            }
        }
    }
}
