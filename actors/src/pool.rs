//! [`TapPoolActor`]: the pool's bookkeeping behind a mailbox.

use actix::fut::{self, ActorFutureExt};
use actix::{
    Actor, ActorResponse, Addr, AsyncContext, Context, Handler, MailboxError, ResponseActFuture,
    Running, WrapFuture,
};
use tap_pool::{
    AcquireDecision, ConfigError, KernelError, Pool, PoolConfig, PoolError, PoolStats,
    ReleaseDecision, SeedReport, WarmReport, WarmStep,
};
use tokio::sync::oneshot;
use tracing::{debug, debug_span, info, warn};

use crate::messages::{Acquire, Lease, LeaseSource, Release, Released, Seed, Stats, Warm};
use crate::netlink::{CreateTap, DeleteTap, NetlinkActor};

/// Owns the idle taps and the name index, with no locks, and answers
/// [`Acquire`], [`Release`], [`Warm`], [`Seed`] and [`Stats`].
///
/// It never makes a syscall and never blocks its mailbox: a request that needs
/// the kernel reserves its name or slot in the bookkeeping first, hands the
/// call to the [`NetlinkActor`], and is answered from a `ResponseActFuture`
/// when the kernel replies; meanwhile every other message is served. Requests
/// that need no kernel call (a warm `Acquire`, a `Release` back to idle) are
/// answered in place, with no allocation.
pub struct TapPoolActor {
    pool: Pool,
    kernel: Addr<NetlinkActor>,
    warm_waiters: Vec<oneshot::Sender<WarmReport>>,
}

impl TapPoolActor {
    /// A pool actor that sends its kernel calls to `kernel`. Refuses a
    /// configuration that cannot name its taps.
    pub fn new(config: PoolConfig, kernel: Addr<NetlinkActor>) -> Result<Self, ConfigError> {
        Ok(TapPoolActor {
            pool: Pool::new(config)?,
            kernel,
            warm_waiters: Vec::new(),
        })
    }

    /// Starts the actor on the current arbiter.
    pub fn spawn(
        config: PoolConfig,
        kernel: Addr<NetlinkActor>,
    ) -> Result<Addr<TapPoolActor>, ConfigError> {
        Ok(TapPoolActor::new(config, kernel)?.start())
    }

    /// Sends the creates a warm-up step asks for, and answers every waiting
    /// `Warm` when the warm-up is over.
    fn run_warm_step(&mut self, step: WarmStep, ctx: &mut Context<Self>) {
        let spec = *self.pool.tap_spec();
        for name in step.create {
            let request = self.kernel.send(CreateTap { name, spec });
            ctx.spawn(request.into_actor(self).map(move |res, act, ctx| {
                let res = kernel_result(res);
                if let Err(error) = &res {
                    warn!(tap = %name, %error, "tap pool warm-up failed");
                } else {
                    debug!(tap = %name, "tap added to idle pool");
                }
                let next = act.pool.warm_created(name, res);
                act.run_warm_step(next, ctx);
            }));
        }
        if let Some(report) = step.finished {
            info!(
                created = report.created.len(),
                failed = report.failure.is_some(),
                shut_down = report.shut_down,
                "tap pool warm-up finished"
            );
            for waiter in self.warm_waiters.drain(..) {
                // A waiter that went away no longer wants the report.
                let _ = waiter.send(report.clone());
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

    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        self.pool.shut_down();
        Running::Stop
    }
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
            Ok(AcquireDecision::Create(name)) => {
                debug!(tap = %name, "pool empty: creating the fallback tap");
                let spec = *self.pool.tap_spec();
                let request = self.kernel.send(CreateTap { name, spec });
                let reply: ResponseActFuture<Self, _> =
                    Box::pin(request.into_actor(self).map(move |res, act, _| {
                        let res = kernel_result(res);
                        act.pool.lease_created(name, &res);
                        res.map(|()| Lease {
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

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) -> Self::Result {
        let name = msg.tap;
        let _span = debug_span!("release", tap = %name).entered();
        match self.pool.release(name) {
            Err(e) => {
                debug!(error = %e, "release refused");
                ActorResponse::reply(Err(e))
            }
            Ok(ReleaseDecision::Pooled) => ActorResponse::reply(Ok(Released::Pooled)),
            Ok(ReleaseDecision::Delete) => {
                let request = self.kernel.send(DeleteTap { name });
                let reply: ResponseActFuture<Self, _> =
                    Box::pin(request.into_actor(self).map(move |res, act, ctx| {
                        let res = kernel_result(res);
                        if let Err(error) = &res {
                            warn!(tap = %name, %error, "deleting a released tap failed");
                        }
                        if act.pool.delete_finished(name, &res) {
                            let step = act.pool.warm();
                            act.run_warm_step(step, ctx);
                        }
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
        let mut step = self.pool.warm();
        if let Some(report) = step.finished.take() {
            // Nothing to do and no warm-up under way: nobody else is waiting.
            self.run_warm_step(step, ctx);
            return ActorResponse::reply(report);
        }
        let (tx, rx) = oneshot::channel();
        self.warm_waiters.push(tx);
        self.run_warm_step(step, ctx);
        let shut_down = WarmReport {
            shut_down: true,
            ..WarmReport::default()
        };
        ActorResponse::r#async(fut::wrap_future(rx).map(|res, _, _| res.unwrap_or(shut_down)))
    }
}

impl Handler<Seed> for TapPoolActor {
    type Result = ActorResponse<Self, SeedReport>;

    fn handle(&mut self, msg: Seed, _: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("seed", used = msg.used.len()).entered();
        let report = self.pool.seed(&msg.used);
        info!(next_index = report.next_index, "tap pool seeded");
        ActorResponse::reply(report)
    }
}

impl Handler<Stats> for TapPoolActor {
    type Result = ActorResponse<Self, PoolStats>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        let _span = debug_span!("stats").entered();
        ActorResponse::reply(self.pool.stats())
    }
}
