//! The kernel workers: the only place kernel calls run.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use actix::{Message, WeakRecipient};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tap_pool::{
    Command, CommandId, Device, Kernel, KernelError, KernelFactory, Op, Outcome, Reply,
};
use tracing::{debug, debug_span, warn};

/// How long an idle worker keeps looking for its next batch before it
/// sleeps. Waking a sleeping thread costs the waker a futex call and, on a
/// VM whose other vCPU has halted, the wakee tens of µs before it runs; a
/// pool under load hands batches every few µs, so a worker that waits a
/// little finds the next one without either. An idle pool pays this much
/// CPU once per batch. One worker of a lane waits so at a time: more would
/// only take CPU from the pool's own thread.
const SPIN: Duration = Duration::from_micros(50);

/// Kernel worker threads sharing one queue of batches.
///
/// Each worker opens its own [`Kernel`] handle on its own thread (for Linux:
/// its own netlink socket, inside the pool's network namespace). A worker
/// whose handle fails at the socket level, or panics, drops the handle and
/// opens a new one on its next call; a worker never dies, and a panic is
/// answered as [`KernelError::Panicked`]. The workers end when the pool
/// drops its `Workers` and the queue is empty.
pub(crate) struct Workers {
    queue: Sender<Execute>,
}

impl Workers {
    /// Starts `workers` threads (at least one) named `name`, each driving
    /// its own handle from `factory`.
    pub(crate) fn start(
        factory: &Arc<dyn KernelFactory>,
        workers: usize,
        name: &str,
    ) -> std::io::Result<Workers> {
        let (queue, jobs) = crossbeam_channel::unbounded();
        let spinning = Arc::new(AtomicBool::new(false));
        for _ in 0..workers.max(1) {
            let mut worker = Worker {
                factory: Arc::clone(factory),
                kernel: None,
                spinning: Arc::clone(&spinning),
            };
            let jobs = jobs.clone();
            thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || worker.serve(&jobs))?;
        }
        Ok(Workers { queue })
    }

    /// Queues a batch for the next free worker.
    pub(crate) fn send(&self, batch: Execute) {
        // Every worker is gone only if every one panicked outside a call:
        // the batch is then dropped, and reported as unanswered.
        let _ = self.queue.send(batch);
    }
}

/// One kernel worker: its kernel handle, opened on its own thread.
struct Worker {
    factory: Arc<dyn KernelFactory>,
    kernel: Option<Box<dyn Kernel>>,
    /// Whether a worker of this lane is waiting for work awake.
    spinning: Arc<AtomicBool>,
}

impl Worker {
    /// Carries out batches until the pool is gone.
    fn serve(&mut self, jobs: &Receiver<Execute>) {
        loop {
            let job = match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => self.spin(jobs),
            };
            let job = match job {
                Some(job) => job,
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            self.execute(job);
        }
    }

    /// Waits awake for the next batch for up to [`SPIN`], if no other
    /// worker of the lane does already.
    fn spin(&self, jobs: &Receiver<Execute>) -> Option<Execute> {
        if self
            .spinning
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let since = Instant::now();
        let job = loop {
            match jobs.try_recv() {
                Ok(job) => break Some(job),
                Err(TryRecvError::Empty) if since.elapsed() < SPIN => std::hint::spin_loop(),
                Err(_) => break None,
            }
        };
        self.spinning.store(false, Ordering::Release);
        job
    }

    /// Carries out one call, in a span named for it.
    fn run(&mut self, op: &Op) -> Outcome {
        // Fields are evaluated only when the span is enabled.
        let span = debug_span!("kernel", op = op.name(), device = ?op.device());
        let _entered = span.enter();
        let start = Instant::now();
        // A panic anywhere in the call, opening the handle included, is
        // answered: the worker lives on and the pool hears of every command.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let kernel = match &mut self.kernel {
                Some(k) => k,
                slot @ None => slot.insert(self.factory.open().inspect_err(|e| {
                    warn!(error = %e, "kernel worker cannot open its kernel handle");
                })?),
            };
            op.run(kernel.as_mut())
        }));
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
        // A pool that stopped, even if someone still holds its address,
        // records nothing more.
        if let Some(to) = to.upgrade().filter(|to| to.connected()) {
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

/// How long finished calls of a batch may wait to be reported together.
const REPORT_EVERY: Duration = Duration::from_millis(1);

/// Carries out a batch of calls in order. The outcomes go to `report_to` as
/// [`Completed`]s: all in one when the calls are quick, else at least every
/// [`REPORT_EVERY`], so that a reset tap is back in service soon after its
/// own reset rather than after its whole batch. Calls the worker never got
/// to (the worker is gone, the message dropped) are reported as
/// [`KernelError::Unanswered`].
#[derive(Debug)]
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

impl Worker {
    fn execute(&mut self, mut msg: Execute) {
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
