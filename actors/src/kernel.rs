//! [`KernelActor`]: the only place kernel calls run.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext, WeakRecipient};
use tap_pool::{
    Command, CommandId, Device, Kernel, KernelError, KernelFactory, Op, Outcome, Reply,
};
use tracing::{debug, debug_span, warn};

/// Runs kernel calls on worker threads of a [`SyncArbiter`], so that slow
/// calls never block the pool.
///
/// Each worker opens its own [`Kernel`] handle on its own thread (for Linux:
/// its own netlink socket, inside the pool's network namespace). A worker
/// whose handle fails at the socket level, or panics, drops the handle and
/// opens a new one on its next call; a worker never dies, and a panic is
/// answered as [`KernelError::Panicked`].
pub(crate) struct KernelActor {
    factory: Arc<dyn KernelFactory>,
    kernel: Option<Box<dyn Kernel>>,
}

impl KernelActor {
    /// Starts `workers` worker threads (at least one), each driving its own
    /// handle from `factory`.
    pub(crate) fn start(factory: Arc<dyn KernelFactory>, workers: usize) -> Addr<KernelActor> {
        SyncArbiter::start(workers.max(1), move || KernelActor {
            factory: Arc::clone(&factory),
            kernel: None,
        })
    }

    /// Carries out one call, in a span named for it.
    fn run(&mut self, op: &Op) -> Outcome {
        let device = op.device().map(|d| d.to_string());
        let span = debug_span!("kernel", op = op.name(), device);
        let _entered = span.enter();
        let kernel = match &mut self.kernel {
            Some(k) => k,
            slot @ None => slot.insert(self.factory.open().inspect_err(|e| {
                warn!(error = %e, "kernel worker cannot open its kernel handle");
            })?),
        };
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| op.run(kernel.as_mut())));
        let elapsed_us = start.elapsed().as_micros() as u64;
        let result = result.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(KernelError::Panicked {
                op: op.name(),
                message,
            })
        });
        match &result {
            Ok(_) => debug!(elapsed_us, "kernel call done"),
            Err(error) => debug!(elapsed_us, %error, "kernel call failed"),
        }
        if matches!(
            result,
            Err(KernelError::Socket { .. } | KernelError::Panicked { .. })
        ) {
            // The handle may be broken; the next call opens a fresh one.
            self.kernel = None;
        }
        result
    }

    /// Hands finished calls to the pool. If the pool is gone, nobody will
    /// ever release what the calls made: taps they created are deleted.
    fn deliver(&mut self, to: &WeakRecipient<Completed>, done: Vec<(Command, Outcome)>) {
        if let Some(to) = to.upgrade() {
            to.do_send(Completed(
                done.into_iter()
                    .map(|(c, outcome)| (c.id, outcome))
                    .collect(),
            ));
            return;
        }
        for (command, outcome) in done {
            if let (Op::Create { name, .. }, Ok(Reply::Created(created))) = (&command.op, outcome) {
                warn!(tap = %name, "the pool is gone: deleting the tap it asked for");
                let delete = Op::Delete {
                    device: Device::new(*name, created.index),
                };
                if let Err(error) = self.run(&delete) {
                    warn!(tap = %name, %error, "deleting an orphaned tap failed");
                }
            }
        }
    }
}

impl Actor for KernelActor {
    type Context = SyncContext<Self>;
}

/// How long finished calls of a batch may wait to be reported together.
const REPORT_EVERY: Duration = Duration::from_millis(1);

/// Carries out a batch of calls in order. The outcomes go to `report_to` as
/// [`Completed`]s: all in one when the calls are quick, else at least every
/// [`REPORT_EVERY`], so that a reset tap is back in service soon after its
/// own reset rather than after its whole batch. Calls the worker never got
/// to (the worker is gone, the message dropped) are reported as
/// [`KernelError::Unanswered`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Execute {
    commands: VecDeque<Command>,
    report_to: WeakRecipient<Completed>,
}

impl Execute {
    pub(crate) fn new(commands: Vec<Command>, report_to: WeakRecipient<Completed>) -> Execute {
        Execute {
            commands: commands.into(),
            report_to,
        }
    }
}

impl Drop for Execute {
    fn drop(&mut self) {
        if self.commands.is_empty() {
            return;
        }
        if let Some(to) = self.report_to.upgrade() {
            to.do_send(Completed(
                self.commands
                    .drain(..)
                    .map(|c| {
                        let op = c.op.name();
                        (c.id, Err(KernelError::Unanswered { op }))
                    })
                    .collect(),
            ));
        }
    }
}

/// How some calls of an [`Execute`] batch ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Completed(pub(crate) Vec<(CommandId, Outcome)>);

impl Handler<Execute> for KernelActor {
    type Result = ();
    fn handle(&mut self, mut msg: Execute, _: &mut SyncContext<Self>) {
        let mut done = Vec::with_capacity(msg.commands.len());
        let mut reported = Instant::now();
        while let Some(command) = msg.commands.pop_front() {
            let outcome = self.run(&command.op);
            done.push((command, outcome));
            if reported.elapsed() >= REPORT_EVERY {
                self.deliver(&msg.report_to, std::mem::take(&mut done));
                reported = Instant::now();
            }
        }
        if !done.is_empty() {
            self.deliver(&msg.report_to, done);
        }
    }
}
