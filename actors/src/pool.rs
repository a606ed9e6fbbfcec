//! [`TapPoolActor`]: the pool behind a mailbox.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::Poll;

use actix::dev::{MessageResponse, OneshotSender};
use actix::{
    Actor, ActorContext, ActorFuture, AsyncContext, Context, Handler, Message, MessageResult,
    Running, SpawnHandle, WeakAddr,
};
use tap_pool::{
    Answer, DrainReport, Event, Lane, LeaseToken, LinkEvent, Pool, PoolStats, RequestId,
    SeedReport, TapState, WarmReport,
};
use tokio::sync::mpsc;
use tracing::{Span, debug_span, info, info_span, warn};

use crate::kernel::{Execute, Inbox, Report, Workers};
use crate::messages::{Acquire, Drain, Lease, Release, Released, Seed, Settle, Stats, Warm};
use crate::metrics::{PoolMetrics, Scope};
use crate::{Error, LeaseGuard};

/// Answers [`Acquire`], [`Release`], [`Warm`], [`Seed`], [`Drain`],
/// [`Settle`] and [`Stats`], with no locks. Start it with [`TapPoolActor::builder`].
///
/// It is a thin shell around [`Pool`], the state machine that owns every
/// rule and deadline: it hands the pool each message with the time, sends
/// the kernel calls the pool asks for to the kernel workers, hands their
/// outcomes back, answers callers when the pool says, and arms one timer
/// for the pool's next deadline. It never makes a syscall and never blocks
/// its mailbox, and no future lives in its context but that timer and the
/// drain of the workers' reports (actix polls every future in an actor's
/// context each time the actor wakes).
/// A warm `Acquire`, and a `Release` back to the pool, are answered in
/// place.
///
/// A caller may give up on any request (a timeout, a dropped future,
/// `do_send`): a lease that comes when nobody waits for it any more is
/// released at once (back to the pool, or deleted), never left to nobody.
///
/// Stopping it drains the pool first: it keeps running until the drain is
/// done. When its System or arbiter stops instead, the runtime drops it
/// without letting it run again, and dropping it drains the pool, blocking
/// the dropping thread until only leased taps are left, or for at most the
/// shutdown deadline ([`SHUTDOWN_DEADLINE`](crate::SHUTDOWN_DEADLINE)
/// unless the builder set another). See [`Drain`] for what each way of
/// shutting down guarantees.
pub struct TapPoolActor {
    pool: Pool,
    /// Where kernel workers report, and where this actor drains it (see
    /// [`DrainReports`]).
    report_to: Inbox,
    reports: crossbeam_channel::Receiver<Report>,
    bell: mpsc::UnboundedReceiver<()>,
    /// The kernel workers of each lane: resets, creates (and listings and
    /// group changes), deletes.
    reset: Workers,
    create: Workers,
    delete: Workers,
    /// The one timer, and the deadline it is armed for.
    timer: Option<(Instant, SpawnHandle)>,
    /// Its own address, weakly: what a [`LeaseGuard`] releases to.
    me: WeakAddr<TapPoolActor>,
    callers: Rc<RefCell<Callers>>,
    /// The drain that stopping the actor started, and whether it is done.
    stop: Option<(RequestId, bool)>,
    /// When stopping, after the drain answered: until when the actor keeps
    /// running for the deletes still under way or to be retried (a
    /// released tap's, a discarded one's, a failed one's), so that none is
    /// left when it stops. (A fallback create still under way is not
    /// waited for: its tap is deleted when it comes, as the caller hears
    /// the pool stopped.)
    stop_after: Option<Instant>,
    /// How long dropping the actor may block to drain (`crate::shutdown`).
    shutdown_deadline: Duration,
    /// The pool's metrics (nothing without the `metrics` feature).
    metrics: PoolMetrics,
}

/// Where the answer to one request stands.
pub(crate) enum Slot<T> {
    /// The handler has returned; its reply sender comes next.
    Pending,
    /// Answered before the reply sender came (within the handler).
    Ready(T),
    /// The caller waits on this sender.
    Waiting(OneshotSender<T>),
    /// Nobody will take the answer (`do_send`).
    Unwanted,
}

/// The callers waiting for answers the pool gives by [`Event`], shared
/// between the actor and its replies (everything runs on the actor's
/// thread).
#[derive(Default)]
pub(crate) struct Callers {
    acquires: HashMap<RequestId, Slot<Result<LeaseGuard, Error>>>,
    releases: HashMap<RequestId, Slot<Result<Released, Error>>>,
    warms: HashMap<RequestId, Slot<WarmReport>>,
    seeds: HashMap<RequestId, Slot<Result<SeedReport, Error>>>,
    drains: HashMap<RequestId, Slot<DrainReport>>,
    settles: HashMap<RequestId, Slot<Result<PoolStats, Error>>>,
    /// Leases whose caller had given up when they came: released as soon
    /// as the actor runs.
    abandoned: Vec<LeaseToken>,
}

/// An answer type, and where its callers wait.
pub(crate) trait Routed: Sized + 'static {
    fn slots(callers: &mut Callers) -> &mut HashMap<RequestId, Slot<Self>>;
    /// The answer a caller gets when the pool stops first.
    fn stopped() -> Self;
    /// What becomes of an answer whose caller has gone.
    fn unwanted(self, _callers: &mut Callers) {}
}

impl Routed for Result<LeaseGuard, Error> {
    fn slots(c: &mut Callers) -> &mut HashMap<RequestId, Slot<Self>> {
        &mut c.acquires
    }
    fn stopped() -> Self {
        Err(Error::Stopped)
    }
    fn unwanted(self, c: &mut Callers) {
        if let Ok(guard) = self {
            // Released here, in order, rather than by the guard's message
            // (`pump` says so, naming the holder).
            c.abandoned.push(guard.into_lease().token);
        }
    }
}

impl Routed for Result<Released, Error> {
    fn slots(c: &mut Callers) -> &mut HashMap<RequestId, Slot<Self>> {
        &mut c.releases
    }
    fn stopped() -> Self {
        Err(Error::Stopped)
    }
}

impl Routed for WarmReport {
    fn slots(c: &mut Callers) -> &mut HashMap<RequestId, Slot<Self>> {
        &mut c.warms
    }
    fn stopped() -> Self {
        let mut report = WarmReport::default();
        report.shut_down = true;
        report
    }
}

impl Routed for Result<SeedReport, Error> {
    fn slots(c: &mut Callers) -> &mut HashMap<RequestId, Slot<Self>> {
        &mut c.seeds
    }
    fn stopped() -> Self {
        Err(Error::Stopped)
    }
}

impl Routed for DrainReport {
    fn slots(c: &mut Callers) -> &mut HashMap<RequestId, Slot<Self>> {
        &mut c.drains
    }
    fn stopped() -> Self {
        DrainReport::default()
    }
}

impl Routed for Result<PoolStats, Error> {
    fn slots(c: &mut Callers) -> &mut HashMap<RequestId, Slot<Self>> {
        &mut c.settles
    }
    fn stopped() -> Self {
        Err(Error::Stopped)
    }
}

impl Callers {
    /// Hands `answer` to whoever waits on `request`; an answer nobody takes
    /// is [`Routed::unwanted`].
    fn answer<T: Routed>(&mut self, request: RequestId, answer: T) {
        let slots = T::slots(self);
        match slots.remove(&request) {
            Some(Slot::Pending) => {
                slots.insert(request, Slot::Ready(answer));
            }
            Some(Slot::Waiting(tx)) => {
                if let Err(answer) = tx.send(answer) {
                    answer.unwanted(self);
                }
            }
            Some(Slot::Ready(_) | Slot::Unwanted) | None => answer.unwanted(self),
        }
    }

    /// The reply sender for `request` has come (or none will: `tx` is
    /// `None` for `do_send`).
    fn attach<T: Routed>(&mut self, request: RequestId, tx: Option<OneshotSender<T>>) {
        let slots = T::slots(self);
        match (slots.remove(&request), tx) {
            (Some(Slot::Ready(answer)), Some(tx)) => {
                if let Err(answer) = tx.send(answer) {
                    answer.unwanted(self);
                }
            }
            (Some(Slot::Ready(answer)), None) => answer.unwanted(self),
            (_, Some(tx)) => {
                slots.insert(request, Slot::Waiting(tx));
            }
            (_, None) => {
                slots.insert(request, Slot::Unwanted);
            }
        }
    }
}

impl Drop for Callers {
    /// The actor is gone: every caller still waiting hears so.
    fn drop(&mut self) {
        fn stop_all<T: Routed>(slots: &mut HashMap<RequestId, Slot<T>>) {
            for (_, slot) in slots.drain() {
                if let Slot::Waiting(tx) = slot {
                    let _ = tx.send(T::stopped());
                }
            }
        }
        stop_all(&mut self.acquires);
        stop_all(&mut self.releases);
        stop_all(&mut self.warms);
        stop_all(&mut self.seeds);
        stop_all(&mut self.drains);
        stop_all(&mut self.settles);
    }
}

/// A handler's reply: the answer now, or the request the pool answers later
/// by an [`Event`]. Either way it notices a caller who has gone.
pub struct Reply<T> {
    answer: Answer<T>,
    callers: Rc<RefCell<Callers>>,
}

impl<T: fmt::Debug> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("answer", &self.answer)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TapPoolActor {
    /// The pool's counts: the actor's plumbing (inboxes, workers, timers)
    /// tells a reader nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapPoolActor")
            .field("stats", &self.pool.stats())
            .finish_non_exhaustive()
    }
}

impl<M, T> MessageResponse<TapPoolActor, M> for Reply<T>
where
    M: Message<Result = T>,
    T: Routed,
{
    fn handle(self, ctx: &mut Context<TapPoolActor>, tx: Option<OneshotSender<T>>) {
        let mut callers = self.callers.borrow_mut();
        match self.answer {
            Answer::Now(answer) => {
                let left = match tx {
                    Some(tx) => tx.send(answer).err(),
                    None => Some(answer),
                };
                if let Some(answer) = left {
                    answer.unwanted(&mut callers);
                }
            }
            Answer::Later(request) => callers.attach(request, tx),
        }
        if !callers.abandoned.is_empty() {
            ctx.notify(ReleaseAbandoned);
        }
    }
}

/// Releases the leases whose callers gave up.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ReleaseAbandoned;

impl Handler<ReleaseAbandoned> for TapPoolActor {
    type Result = ();
    fn handle(&mut self, _: ReleaseAbandoned, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}

impl TapPoolActor {
    pub(crate) fn new(
        pool: Pool,
        lanes: [Workers; 3],
        shutdown_deadline: Duration,
        metrics: &Scope,
        ctx: &mut Context<Self>,
    ) -> TapPoolActor {
        let [reset, create, delete] = lanes;
        let spec = pool.tap_spec();
        info!(
            size = pool.stats().size,
            prefix = pool.prefix(),
            workers_per_lane = create.count(),
            owner = ?spec.owner,
            bridge = spec.bridge.map(display),
            device_group = ?spec.device_group,
            "tap pool started"
        );
        let (reports_to, reports) = crossbeam_channel::unbounded();
        let (bell_to, bell) = mpsc::unbounded_channel();
        ctx.spawn(DrainReports);
        TapPoolActor {
            pool,
            report_to: Inbox {
                reports: reports_to,
                bell: bell_to,
            },
            reports,
            bell,
            reset,
            create,
            delete,
            timer: None,
            me: ctx.address().downgrade(),
            callers: Rc::default(),
            stop: None,
            stop_after: None,
            shutdown_deadline,
            metrics: PoolMetrics::new(metrics),
        }
    }

    /// Carries out what the pool asked for after the pool was handed
    /// something (its counts may have changed): see [`Self::carry_out`].
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.metrics.changed();
        self.carry_out(ctx);
    }

    /// Carries out what the pool asked for: kernel calls go to the kernel
    /// workers, answers to the callers waiting on them, and the timer is
    /// set for the pool's next deadline (or the next publish of its
    /// counts).
    fn carry_out(&mut self, ctx: &mut Context<Self>) {
        loop {
            // Leases nobody waits for any more go back before anything
            // else is answered (a Settle must not overtake them).
            let abandoned = std::mem::take(&mut self.callers.borrow_mut().abandoned);
            if !abandoned.is_empty() {
                let now = Instant::now();
                for token in abandoned {
                    warn!(
                        tap = self.pool.leased_tap(token).map(display),
                        %token,
                        holder = self.pool.lease_holder(token).map(display),
                        "the caller gave up on its Acquire; releasing the lease"
                    );
                    // Its answer has no caller either.
                    let _ = self.pool.release(token, now);
                }
            }
            while let Some(batch) = self.pool.poll_batch() {
                let to = match batch.lane {
                    Lane::Reset => &self.reset,
                    Lane::Delete => &self.delete,
                    _ => &self.create,
                };
                // The kernel calls' spans are children of the span of the
                // message being handled. Where they are off (no subscriber,
                // or `debug` disabled for the kernel workers), none is
                // looked up: a `Span::none()` costs nothing to make or clone.
                let parent = if tracing::enabled!(
                    target: "tap_pool_actors::kernel",
                    tracing::Level::DEBUG
                ) {
                    Span::current()
                } else {
                    Span::none()
                };
                to.send(Execute::new(batch.commands, self.report_to.clone(), parent));
            }
            let Some(event) = self.pool.poll_event() else {
                break;
            };
            self.deliver(event);
        }
        if let Some(deadline) = self.stop_after {
            let left: Vec<_> = self
                .pool
                .taps()
                .filter(|(_, state)| {
                    matches!(
                        state,
                        TapState::Deleting | TapState::DeleteFailed | TapState::Draining
                    )
                })
                .collect();
            if left.is_empty() || Instant::now() >= deadline {
                if !left.is_empty() {
                    tracing::warn!(?left, "stopping with deletes still failing");
                }
                self.stop_after = None;
                if let Some((_, done)) = &mut self.stop {
                    *done = true;
                }
                ctx.stop();
                return;
            }
        }
        // A timer armed for earlier than the pool's next deadline is kept:
        // it fires, finds nothing due, and is armed again. Re-arming on
        // every change would cost a timer registration per reset batch.
        // Torn down, no runtime is left to arm a timer on (tokio would
        // panic): `Drop` drains.
        // The pool's counts, once changed, are published when the timer
        // fires (at most every `PUBLISH_EVERY`): the shell reads no clock
        // and walks no taps per message for them.
        let next = [
            self.pool.poll_timeout(),
            self.stop_after,
            self.metrics.deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = next
            && self.timer.as_ref().is_none_or(|(armed, _)| at < *armed)
            && !crate::shutdown::torn_down()
        {
            if let Some((_, handle)) = self.timer.take() {
                ctx.cancel_future(handle);
            }
            let after = at.saturating_duration_since(Instant::now());
            let handle = ctx.run_later(after, |act, ctx| {
                act.timer = None;
                let now = Instant::now();
                act.metrics.publish_due(now, || act.pool.stats());
                if act.pool.poll_timeout().is_some_and(|at| at <= now) {
                    act.pool.handle_timeout(now);
                    act.pump(ctx);
                } else {
                    // Nothing of the pool's was due: its counts have not
                    // changed, and the timer is not armed again for them.
                    act.carry_out(ctx);
                }
            });
            self.timer = Some((at, handle));
        }
    }

    fn deliver(&mut self, event: Event) {
        let mut c = self.callers.borrow_mut();
        match event {
            Event::Acquired { request, result } => {
                self.metrics.acquire_answered(request, result.as_ref());
                c.answer(request, self.guarded(result));
            }
            Event::Released { request, result } => {
                c.answer(request, result.map_err(Error::from));
            }
            Event::Warmed { request, report } => c.answer(request, report),
            Event::Seeded { request, result } => {
                c.answer(request, result.map_err(Error::from));
            }
            Event::Settled { request, stats } => {
                self.metrics.publish(&stats);
                c.answer(request, Ok(stats));
            }
            Event::Drained { request, report } => {
                if let Some((stop, _)) = &self.stop
                    && *stop == request
                {
                    // Stops once nothing but leased taps is left (see
                    // `pump`), or the shutdown deadline passes.
                    self.stop_after = Some(Instant::now() + self.shutdown_deadline);
                }
                c.answer(request, report);
            }
            other => tracing::error!(?other, "an answer this actor does not know; dropped"),
        }
    }
}

impl Actor for TapPoolActor {
    type Context = Context<Self>;

    /// Stopping drains first: the actor keeps running until the drain's
    /// report comes back, then stops for good.
    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if crate::shutdown::torn_down() {
            // The runtime is dropping the actor: `Drop` drains, blocking.
            return Running::Stop;
        }
        match self.stop {
            Some((_, true)) => return Running::Stop,
            Some((_, false)) => return Running::Continue,
            None => {}
        }
        info!("tap pool stopping: draining first");
        self.stop = Some((self.pool.drain(Instant::now()), false));
        // The drain's kernel calls report here.
        ctx.spawn(DrainReports);
        self.pump(ctx);
        if let Some((_, true)) = self.stop {
            return Running::Stop;
        }
        // actix polls what `stopping` spawned into the context (the timer)
        // only once something wakes the actor again: a message to itself
        // does.
        ctx.address().do_send(Wake);
        Running::Continue
    }
}

impl Drop for TapPoolActor {
    /// Torn down without having drained (its System or arbiter stopped):
    /// drains now, blocking (`crate::shutdown`).
    fn drop(&mut self) {
        if !matches!(self.stop, Some((_, true))) {
            // Leases whose callers gave up go back first.
            let abandoned = std::mem::take(&mut self.callers.borrow_mut().abandoned);
            for token in abandoned {
                let _ = self.pool.release(token, Instant::now());
            }
            let shell = crate::shutdown::Shell {
                pool: &mut self.pool,
                reset: &self.reset,
                create: &self.create,
                delete: &self.delete,
                report_to: &self.report_to,
                reports: &self.reports,
            };
            shell.drain_blocking(self.stop.map(|(drain, _)| drain), self.shutdown_deadline);
        }
        // What the pool leaves, for a last scrape.
        self.metrics.publish_with(|| self.pool.stats());
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

/// A change the link watcher saw. Sent by the watcher thread.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct LinkChanged(pub(crate) LinkEvent);

impl Handler<LinkChanged> for TapPoolActor {
    type Result = ();

    fn handle(&mut self, msg: LinkChanged, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match msg.0 {
            LinkEvent::Removed { name, index } => {
                let _span = debug_span!("link_removed", tap = %name, index).entered();
                self.pool.link_removed(name, index, now);
            }
            LinkEvent::Renamed { index, from, to } => {
                let _span = debug_span!("link_renamed", index, %from, ?to).entered();
                self.pool.link_renamed(index, from, to, now);
            }
            LinkEvent::Resync => {
                let _span = debug_span!("resync").entered();
                self.pool.resync(now);
            }
        }
        self.pump(ctx);
    }
}

/// Drains the kernel workers' reports into the pool whenever the actor
/// runs: the one future in the actor's context besides the timer. It ends
/// when no address to the actor is left (unless the actor is draining to
/// stop), so that it does not keep an abandoned actor alive.
struct DrainReports;

impl ActorFuture<TapPoolActor> for DrainReports {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut TapPoolActor,
        ctx: &mut Context<TapPoolActor>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        // Every ring is answered by one drain of everything reported so far.
        while let Poll::Ready(Some(())) = act.bell.poll_recv(task) {}
        let mut now = None;
        while let Ok(report) = act.reports.try_recv() {
            match report {
                Report::Done(id, outcome) => {
                    let now = *now.get_or_insert_with(Instant::now);
                    act.pool.complete(id, outcome, now);
                }
                // Allocated on this thread, freed here.
                Report::Spent(buffer) => drop(buffer),
            }
        }
        if now.is_some() {
            act.pump(ctx);
        }
        if act.stop.is_none() && !ctx.connected() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl TapPoolActor {
    /// A lease answered now, guarded.
    fn guarded(&self, result: Result<Lease, tap_pool::PoolError>) -> Result<LeaseGuard, Error> {
        result
            .map(|lease| LeaseGuard::weak(self.me.clone(), lease))
            .map_err(Error::from)
    }

    /// The reply for `answer`, after carrying out what the request asked of
    /// the pool. The slot for a later answer is made first: the pool may
    /// answer within `pump` (a warm-up with nothing to do).
    fn reply<T: Routed>(&mut self, answer: Answer<T>, ctx: &mut Context<Self>) -> Reply<T> {
        if let Answer::Later(request) = answer {
            T::slots(&mut self.callers.borrow_mut()).insert(request, Slot::Pending);
        }
        self.pump(ctx);
        Reply {
            answer,
            callers: Rc::clone(&self.callers),
        }
    }
}

impl Handler<Acquire> for TapPoolActor {
    type Result = Reply<Result<LeaseGuard, Error>>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        // The holder label is shown escaped (its `Display`).
        let _span = debug_span!(
            "acquire",
            fallback = %msg.fallback,
            holder = msg.holder.as_ref().map(display),
        )
        .entered();
        let now = Instant::now();
        let answer = match self.pool.acquire_for(msg.fallback, msg.holder, now) {
            Answer::Now(result) => {
                self.metrics.acquired(now, result.as_ref());
                Answer::Now(self.guarded(result))
            }
            Answer::Later(request) => {
                self.metrics.acquire_waits(request, now);
                Answer::Later(request)
            }
        };
        self.reply(answer, ctx)
    }
}

impl Handler<Release> for TapPoolActor {
    type Result = Reply<Result<Released, Error>>;

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!(
            "release",
            token = %msg.token,
            holder = self.pool.lease_holder(msg.token).map(display),
        )
        .entered();
        let answer = match self.pool.release(msg.token, Instant::now()) {
            Answer::Now(result) => Answer::Now(result.map_err(Error::from)),
            Answer::Later(request) => Answer::Later(request),
        };
        self.reply(answer, ctx)
    }
}

impl Handler<Warm> for TapPoolActor {
    type Result = Reply<WarmReport>;

    fn handle(&mut self, _: Warm, ctx: &mut Context<Self>) -> Self::Result {
        let _span = info_span!("warm").entered();
        let request = self.pool.warm(Instant::now());
        self.reply(Answer::Later(request), ctx)
    }
}

impl Handler<Drain> for TapPoolActor {
    type Result = Reply<DrainReport>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let _span = info_span!("drain").entered();
        let request = self.pool.drain(Instant::now());
        self.reply(Answer::Later(request), ctx)
    }
}

impl Handler<Seed> for TapPoolActor {
    type Result = Reply<Result<SeedReport, Error>>;

    fn handle(&mut self, msg: Seed, ctx: &mut Context<Self>) -> Self::Result {
        let _span = info_span!("seed", used = msg.used.len()).entered();
        let request = self.pool.seed(msg.used, Instant::now());
        self.reply(Answer::Later(request), ctx)
    }
}

impl Handler<Settle> for TapPoolActor {
    type Result = Reply<Result<PoolStats, Error>>;

    fn handle(&mut self, _: Settle, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("settle").entered();
        let request = self.pool.settle(Instant::now());
        self.reply(Answer::Later(request), ctx)
    }
}

impl Handler<Stats> for TapPoolActor {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        let stats = self.pool.stats();
        self.metrics.publish(&stats);
        MessageResult(stats)
    }
}
