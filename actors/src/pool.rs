//! [`TapPoolActor`]: the pool's bookkeeping behind a mailbox.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use actix::fut::{self, ActorFutureExt};
use actix::{
    Actor, ActorContext, ActorResponse, Addr, AsyncContext, Context, Handler, MailboxError,
    Message, ResponseActFuture, Running, WeakAddr, WrapFuture,
};
use tap_pool::{
    AcquireDecision, Command, ConfigError, DrainReport, KernelError, KernelFactory, LinkEvent,
    Pool, PoolConfig, PoolError, PoolStats, ReleaseDecision, SeedReport, WarmReport,
};
use tokio::sync::oneshot;
use tracing::{debug, debug_span, info, warn};

use crate::messages::{Acquire, Drain, Lease, LeaseSource, Release, Released, Seed, Stats, Warm};
use crate::netlink::{
    CreateTap, DeleteGroup, DeleteTap, ListGroup, ListTaps, NetlinkActor, ResetTap, SetDeviceGroup,
};

/// Owns the idle taps and the name index, with no locks, and answers
/// [`Acquire`], [`Release`], [`Warm`], [`Seed`], [`Drain`] and [`Stats`].
///
/// It never makes a syscall and never blocks its mailbox: a request that needs
/// the kernel reserves its name or slot in the bookkeeping first, hands the
/// call to the [`NetlinkActor`], and is answered from a `ResponseActFuture`
/// when the kernel replies; meanwhile every other message is served. A warm
/// `Acquire` is answered in place, with no allocation; a `Release` back to
/// the pool is answered in place too, and queues the tap's reset (a kernel
/// call nobody waits for) unless `reset_on_release` is off.
pub struct TapPoolActor {
    pool: Pool,
    /// Creates, resets, listings and group changes.
    kernel: Addr<NetlinkActor>,
    /// Deletes: slow kernel waits (~16 ms each) that run in parallel, kept
    /// off `kernel`'s queue so that creates and resets never wait behind them.
    deleter: Addr<NetlinkActor>,
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
        Ok(TapPoolActor {
            pool: Pool::new(config)?,
            deleter: kernel.clone(),
            kernel,
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

    /// Carries out the work the pool queued: kernel calls go to the kernel
    /// actor and report back; timers are set; finished warm-ups and drains
    /// are answered.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(command) = self.pool.take_command() {
            match command {
                Command::Create { name, spec } => {
                    let request = self.kernel.send(CreateTap { name, spec });
                    ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
                        let res = kernel_result(res);
                        match &res {
                            Err(error) => warn!(tap = %name, %error, "tap pool warm-up failed"),
                            Ok(_) => debug!(tap = %name, "tap added to idle pool"),
                        }
                        act.pool.warm_created(name, res);
                        act.pump(ctx);
                    }));
                }
                Command::Reset { name, spec, mac } => {
                    let request = self.kernel.send(ResetTap { name, spec, mac });
                    ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
                        let res = kernel_result(res);
                        if let Err(error) = &res {
                            warn!(tap = %name, %error, "resetting a released tap failed; deleting it");
                        }
                        act.pool.reset_finished(name, &res);
                        act.pump(ctx);
                    }));
                }
                Command::Delete { name } => {
                    let request = self.deleter.send(DeleteTap { name });
                    ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
                        let res = kernel_result(res);
                        if let Err(error) = &res {
                            warn!(tap = %name, %error, "deleting a tap failed");
                        }
                        act.pool.delete_finished(name, &res);
                        act.pump(ctx);
                    }));
                }
                Command::Ungroup { name } => {
                    let request = self.kernel.send(SetDeviceGroup { name, group: 0 });
                    ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
                        act.pool.ungrouped(name, &kernel_result(res));
                        act.pump(ctx);
                    }));
                }
                Command::CheckGroup { group } => {
                    let request = self.kernel.send(ListGroup { group });
                    ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
                        let res = kernel_result(res);
                        if let Ok(members) = &res {
                            debug!(group, members = members.len(), "device group listed");
                        }
                        act.pool.group_checked(&res);
                        act.pump(ctx);
                    }));
                }
                Command::DeleteGroup { group } => {
                    let request = self.deleter.send(DeleteGroup { group });
                    ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
                        let res = kernel_result(res);
                        if let Err(error) = &res {
                            warn!(group, %error, "group delete failed; deleting one by one");
                        }
                        act.pool.group_deleted(&res);
                        act.pump(ctx);
                    }));
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
    }
}

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
        // actix polls what `stopping` spawned only once something wakes the
        // actor again: a message to itself does.
        ctx.address().do_send(Wake);
        Running::Continue
    }
}

/// Wakes the actor after `stopping` spawned the drain's kernel calls.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Wake;

impl Handler<Wake> for TapPoolActor {
    type Result = ();
    fn handle(&mut self, _: Wake, _: &mut Context<Self>) {}
}

impl Handler<Acquire> for TapPoolActor {
    type Result = ActorResponse<Self, Result<Lease, PoolError>>;

    fn handle(&mut self, msg: Acquire, _: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("acquire", fallback = %msg.fallback).entered();
        match self.pool.acquire(msg.fallback) {
            Err(e) => {
                debug!(error = %e, "acquire refused");
                ActorResponse::reply(Err(e))
            }
            Ok(AcquireDecision::Pooled(name)) => ActorResponse::reply(Ok(Lease {
                name,
                source: LeaseSource::Pool,
            })),
            Ok(AcquireDecision::Create(name, spec)) => {
                debug!(tap = %name, "pool empty: creating the fallback tap");
                let request = self.kernel.send(CreateTap { name, spec });
                let reply: ResponseActFuture<Self, _> =
                    Box::pin(request.into_actor(self).map(move |res, act, ctx| {
                        let res = kernel_result(res);
                        act.pool.lease_created(name, &res);
                        act.pump(ctx);
                        res.map(|_| Lease {
                            name,
                            source: LeaseSource::Created,
                        })
                    }));
                ActorResponse::r#async(reply)
            }
        }
    }
}

impl Handler<Release> for TapPoolActor {
    type Result = ActorResponse<Self, Result<Released, PoolError>>;

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) -> Self::Result {
        let name = msg.tap;
        let _span = debug_span!("release", tap = %name).entered();
        match self.pool.release(name) {
            Err(e) => {
                debug!(error = %e, "release refused");
                ActorResponse::reply(Err(e))
            }
            Ok(ReleaseDecision::Pooled) => {
                self.pump(ctx);
                ActorResponse::reply(Ok(Released::Pooled))
            }
            Ok(ReleaseDecision::Vanished) => ActorResponse::reply(Ok(Released::Vanished)),
            Ok(ReleaseDecision::Delete) => {
                let request = self.deleter.send(DeleteTap { name });
                let reply: ResponseActFuture<Self, _> =
                    Box::pin(request.into_actor(self).map(move |res, act, ctx| {
                        let res = kernel_result(res);
                        if let Err(error) = &res {
                            warn!(tap = %name, %error, "deleting a released tap failed");
                        }
                        act.pool.delete_finished(name, &res);
                        act.pump(ctx);
                        res.map(|()| Released::Deleted)
                    }));
                ActorResponse::r#async(reply)
            }
        }
    }
}

impl Handler<Warm> for TapPoolActor {
    type Result = ActorResponse<Self, WarmReport>;

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
        ActorResponse::r#async(fut::wrap_future(rx).map(|res, _, _| res.unwrap_or(shut_down)))
    }
}

impl Handler<Drain> for TapPoolActor {
    type Result = ActorResponse<Self, DrainReport>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("drain").entered();
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.pool.drain();
        self.pump(ctx);
        ActorResponse::r#async(fut::wrap_future(rx).map(|res, _, _| res.unwrap_or_default()))
    }
}

impl Handler<Seed> for TapPoolActor {
    type Result = ActorResponse<Self, Result<SeedReport, PoolError>>;

    fn handle(&mut self, msg: Seed, _: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("seed", used = msg.used.len()).entered();
        let request = self.kernel.send(ListTaps);
        let reply: ResponseActFuture<Self, _> =
            Box::pin(request.into_actor(self).map(move |res, act, ctx| {
                let links = kernel_result(res)?;
                let report = act.pool.reconcile(&msg.used, &links);
                info!(
                    next_index = report.next_index,
                    adopted = report.adopted.len(),
                    deleted = report.deleted.len(),
                    left_alone = ?report.left_alone,
                    missing = ?report.missing,
                    "tap pool seeded"
                );
                act.pump(ctx);
                Ok(report)
            }));
        ActorResponse::r#async(reply)
    }
}

impl Handler<Stats> for TapPoolActor {
    type Result = ActorResponse<Self, PoolStats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("stats").entered();
        ActorResponse::reply(self.pool.stats())
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
                let request = self.kernel.send(ListTaps);
                ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
                    match kernel_result(res) {
                        Ok(links) => act.pool.resync(&snapshot, &links),
                        Err(error) => {
                            warn!(%error, "cannot list links to resync; retrying");
                            ctx.notify_later(
                                LinkChanged(LinkEvent::Resync),
                                Duration::from_secs(1),
                            );
                        }
                    }
                    act.pump(ctx);
                }));
            }
        }
    }
}
