//! [`TapPoolActor`]: the pool behind a mailbox.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::Poll;

use actix::{
    Actor, ActorContext, ActorFuture, AsyncContext, Context, Handler, Message, MessageResult,
    Response, Running, SpawnHandle,
};
use tap_pool::{
    Answer, DrainReport, Event, Lane, LinkEvent, Pool, RequestId, SeedReport, WarmReport,
};
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tracing::{debug_span, info};

use crate::Error;
use crate::kernel::{Execute, Inbox, Report, Workers};
use crate::messages::{Acquire, Drain, Lease, Release, Released, Seed, Stats, Warm};

/// Answers [`Acquire`], [`Release`], [`Warm`], [`Seed`], [`Drain`] and
/// [`Stats`], with no locks. Start it with [`TapPoolActor::builder`].
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
    /// Creates, resets, listings and group changes.
    fast: Workers,
    /// Deletes: slow kernel waits, kept off the fast lane.
    slow: Workers,
    /// The one timer, and the deadline it is armed for.
    timer: Option<(Instant, SpawnHandle)>,
    waiting: Waiting,
    /// The drain that stopping the actor started, and whether it is done.
    stop: Option<(RequestId, bool)>,
    /// How long dropping the actor may block to drain (`crate::shutdown`).
    shutdown_deadline: Duration,
}

/// Callers waiting for an answer the pool will give by [`Event`].
#[derive(Default)]
struct Waiting {
    acquires: HashMap<RequestId, oneshot::Sender<Result<Lease, Error>>>,
    releases: HashMap<RequestId, oneshot::Sender<Result<Released, Error>>>,
    warms: HashMap<RequestId, oneshot::Sender<WarmReport>>,
    seeds: HashMap<RequestId, oneshot::Sender<Result<SeedReport, Error>>>,
    drains: HashMap<RequestId, oneshot::Sender<DrainReport>>,
}

/// Sends `answer` to whoever waits on `request` in `waiting` (a caller that
/// went away no longer wants it).
fn answer<K: Eq + Hash, T>(waiting: &mut HashMap<K, oneshot::Sender<T>>, request: &K, answer: T) {
    if let Some(tx) = waiting.remove(request) {
        let _ = tx.send(answer);
    }
}

/// A reply for a request the pool answers now or by a later event: the
/// sender goes in `waiting`, and the caller gets `unanswered` if the pool
/// stops first.
fn respond<T: 'static>(
    answer: Answer<T>,
    waiting: &mut HashMap<RequestId, oneshot::Sender<T>>,
    unanswered: T,
) -> Response<T> {
    match answer {
        Answer::Now(answer) => Response::reply(answer),
        Answer::Later(request) => later(request, waiting, unanswered),
    }
}

fn later<T: 'static>(
    request: RequestId,
    waiting: &mut HashMap<RequestId, oneshot::Sender<T>>,
    unanswered: T,
) -> Response<T> {
    let (tx, rx) = oneshot::channel();
    waiting.insert(request, tx);
    Response::fut(async move { rx.await.unwrap_or(unanswered) })
}

impl TapPoolActor {
    pub(crate) fn new(
        pool: Pool,
        fast: Workers,
        slow: Workers,
        shutdown_deadline: Duration,
        ctx: &mut Context<Self>,
    ) -> TapPoolActor {
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
            fast,
            slow,
            timer: None,
            waiting: Waiting::default(),
            stop: None,
            shutdown_deadline,
        }
    }

    /// Carries out what the pool asked for: kernel calls go to the kernel
    /// workers, answers to the callers waiting on them, and the timer is
    /// set for the pool's next deadline.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(batch) = self.pool.poll_batch() {
            let to = match batch.lane {
                Lane::Fast => &self.fast,
                Lane::Slow => &self.slow,
            };
            to.send(Execute::new(batch.commands, self.report_to.clone()));
        }
        while let Some(event) = self.pool.poll_event() {
            self.deliver(event, ctx);
        }
        // A timer armed for earlier than the pool's next deadline is kept:
        // it fires, finds nothing due, and is armed again. Re-arming on
        // every change would cost a timer registration per reset batch.
        // Torn down, no runtime is left to arm a timer on (tokio would
        // panic): `Drop` drains.
        if let Some(at) = self.pool.poll_timeout()
            && self.timer.as_ref().is_none_or(|(armed, _)| at < *armed)
            && !crate::shutdown::torn_down()
        {
            if let Some((_, handle)) = self.timer.take() {
                ctx.cancel_future(handle);
            }
            let after = at.saturating_duration_since(Instant::now());
            let handle = ctx.run_later(after, |act, ctx| {
                act.timer = None;
                act.pool.handle_timeout(Instant::now());
                act.pump(ctx);
            });
            self.timer = Some((at, handle));
        }
    }

    fn deliver(&mut self, event: Event, ctx: &mut Context<Self>) {
        let w = &mut self.waiting;
        match event {
            Event::Acquired { request, result } => {
                answer(&mut w.acquires, &request, result.map_err(Error::from));
            }
            Event::Released { request, result } => {
                answer(&mut w.releases, &request, result.map_err(Error::from));
            }
            Event::Warmed { request, report } => answer(&mut w.warms, &request, report),
            Event::Seeded { request, result } => {
                answer(&mut w.seeds, &request, result.map_err(Error::from));
            }
            Event::Drained { request, report } => {
                if let Some((stop, done)) = &mut self.stop
                    && *stop == request
                {
                    *done = true;
                    ctx.stop();
                }
                answer(&mut w.drains, &request, report);
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
            let shell = crate::shutdown::Shell {
                pool: &mut self.pool,
                fast: &self.fast,
                slow: &self.slow,
                report_to: &self.report_to,
                reports: &self.reports,
            };
            shell.drain_blocking(self.stop.map(|(drain, _)| drain), self.shutdown_deadline);
        }
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
                let _span = debug_span!("link_renamed", index, %from, %to).entered();
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

impl Handler<Acquire> for TapPoolActor {
    type Result = Response<Result<Lease, Error>>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("acquire", fallback = %msg.fallback).entered();
        let answer = match self.pool.acquire(msg.fallback, Instant::now()) {
            Answer::Now(result) => Answer::Now(result.map_err(Error::from)),
            Answer::Later(request) => Answer::Later(request),
        };
        let response = respond(answer, &mut self.waiting.acquires, Err(Error::Stopped));
        self.pump(ctx);
        response
    }
}

impl Handler<Release> for TapPoolActor {
    type Result = Response<Result<Released, Error>>;

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("release", tap = %msg.tap).entered();
        let answer = match self.pool.release(msg.tap, Instant::now()) {
            Answer::Now(result) => Answer::Now(result.map_err(Error::from)),
            Answer::Later(request) => Answer::Later(request),
        };
        let response = respond(answer, &mut self.waiting.releases, Err(Error::Stopped));
        self.pump(ctx);
        response
    }
}

impl Handler<Warm> for TapPoolActor {
    type Result = Response<WarmReport>;

    fn handle(&mut self, _: Warm, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("warm").entered();
        let request = self.pool.warm(Instant::now());
        let mut shut_down = WarmReport::default();
        shut_down.shut_down = true;
        let response = later(request, &mut self.waiting.warms, shut_down);
        self.pump(ctx);
        response
    }
}

impl Handler<Drain> for TapPoolActor {
    type Result = Response<DrainReport>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("drain").entered();
        let request = self.pool.drain(Instant::now());
        let response = later(request, &mut self.waiting.drains, DrainReport::default());
        self.pump(ctx);
        response
    }
}

impl Handler<Seed> for TapPoolActor {
    type Result = Response<Result<SeedReport, Error>>;

    fn handle(&mut self, msg: Seed, ctx: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("seed", used = msg.used.len()).entered();
        let request = self.pool.seed(msg.used, Instant::now());
        let response = later(request, &mut self.waiting.seeds, Err(Error::Stopped));
        self.pump(ctx);
        response
    }
}

impl Handler<Stats> for TapPoolActor {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.pool.stats())
    }
}
