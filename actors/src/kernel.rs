//! The kernel workers: the only place kernel calls run.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use tap_pool::{
    Command, CommandId, Device, Holder, Kernel, KernelError, KernelFactory, Op, Outcome, Reply,
};
use tokio::sync::mpsc;
use tracing::{Span, debug, debug_span, warn};

use crate::metrics::KernelMetrics;

/// How long the lane's watcher keeps looking for the next batch awake
/// before it sleeps. Waking a sleeping thread costs the waker a futex call
/// and, on a VM whose other vCPU has halted, tens of µs before the thread
/// runs; a pool under load hands batches every few µs, so a watcher that
/// waits a little finds the next one without either. An idle lane pays
/// this much CPU once per batch.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// Kernel worker threads sharing one queue of batches.
///
/// One worker at a time watches the queue (the lane's watcher); the others
/// sleep on a condition variable of their own, which a send rings only when
/// nobody watches (every worker is busy with a call), so a batch never waits
/// behind another while a worker is free. Where the lane's calls are quick
/// (the last batch's took less than [`SPIN`] each: the simulated kernel), the
/// watcher looks for work awake for up to [`SPIN`] before it sleeps in the
/// queue, so a busy pool pays no wake-up per batch; against real kernel
/// waits it sleeps at once, leaving the CPU to the worker making the call.
///
/// Each worker opens its own [`Kernel`] handle on its own thread (for Linux:
/// its own netlink socket, inside the pool's network namespace). A worker
/// whose handle fails at the socket level, or panics, drops the handle and
/// opens a new one on its next call; a panic is answered as
/// [`KernelError::Panicked`]. The workers end when the pool drops its
/// `Workers` and the queue is empty.
pub(crate) struct Workers {
    queue: Sender<Execute>,
    watch: Arc<Watch>,
    /// How many workers the lane has.
    count: usize,
}

/// What the workers of a lane share besides the queue.
#[derive(Default)]
struct Watch {
    /// How long the watcher looks for work awake before it sleeps.
    spin: Duration,
    state: Mutex<WatchState>,
    /// Where workers other than the watcher sleep.
    followers: Condvar,
    /// Nobody watches while a worker sleeps (see `publish`).
    unwatched: AtomicBool,
}

#[derive(Default)]
struct WatchState {
    /// A worker watches the queue.
    watched: bool,
    /// The queue is closed: every worker ends.
    closed: bool,
    /// Workers asleep on `followers`.
    sleeping: usize,
    /// The calls of the lane's last batch took [`SPIN`] or longer each
    /// (assumed until they did not): they are real kernel waits.
    slow_calls: bool,
}

impl Watch {
    /// Wakes a sleeping worker to take the watch, if one sleeps and nobody
    /// watches.
    fn wake_follower(&self) {
        // Read without the lock on the pool's thread: a send that finds the
        // queue watched (the usual case) costs one atomic load.
        if !self.unwatched.load(Ordering::Acquire) {
            return;
        }
        let state = lock(&self.state);
        if state.sleeping > 0 && !state.watched {
            self.followers.notify_one();
        }
    }

    /// Publishes whether nobody watches while a worker sleeps; called after
    /// every change of either, under the lock.
    fn publish(&self, state: &WatchState) {
        self.unwatched
            .store(state.sleeping > 0 && !state.watched, Ordering::Release);
    }
}

impl Workers {
    /// Starts `workers` threads (at least one) named `name`, each driving
    /// its own handle from `factory` and timing its calls into `metrics`.
    /// `spin` is how long the watcher looks for work awake ([`SPIN`] for
    /// the lane of quick calls; none for deletes, whose ~16 ms kernel wait
    /// dwarfs a wake-up, and whose spin would only take a CPU from the
    /// pool's own thread).
    pub(crate) fn start(
        factory: &Arc<dyn KernelFactory>,
        workers: usize,
        name: &str,
        spin: Duration,
        metrics: &KernelMetrics,
    ) -> std::io::Result<Workers> {
        let (queue, jobs) = crossbeam_channel::unbounded();
        let watch = Arc::new(Watch {
            spin,
            state: Mutex::new(WatchState {
                slow_calls: true,
                ..WatchState::default()
            }),
            ..Watch::default()
        });
        for _ in 0..workers.max(1) {
            let mut worker = Worker {
                factory: Arc::clone(factory),
                kernel: None,
                metrics: metrics.clone(),
            };
            let jobs = jobs.clone();
            let watch = Arc::clone(&watch);
            thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || worker.serve(&jobs, &watch))?;
        }
        Ok(Workers {
            queue,
            watch,
            count: workers.max(1),
        })
    }

    /// How many workers the lane has.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Queues a batch for the lane's watcher, and wakes a sleeping worker
    /// to watch if nobody does (every worker is busy with a call, or gave
    /// the watch up to make one): a batch never waits behind another.
    pub(crate) fn send(&self, batch: Execute) {
        // Every worker is gone only if every one panicked outside a call:
        // the batch is then dropped, and reported as unanswered.
        let _ = self.queue.send(batch);
        self.watch.wake_follower();
    }
}

/// One kernel worker: its kernel handle, opened on its own thread.
struct Worker {
    factory: Arc<dyn KernelFactory>,
    kernel: Option<Box<dyn Kernel>>,
    metrics: KernelMetrics,
}

impl Worker {
    /// Carries out batches until the pool is gone.
    fn serve(&mut self, jobs: &Receiver<Execute>, watch: &Watch) {
        let mut watching = false;
        loop {
            // Become the watcher (unless this worker kept the watch), or
            // sleep until the watch is free.
            let spin = {
                let mut state = lock(&watch.state);
                while !watching && state.watched && !state.closed {
                    state.sleeping += 1;
                    watch.publish(&state);
                    state = watch
                        .followers
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                    state.sleeping -= 1;
                    watch.publish(&state);
                }
                if state.closed {
                    return;
                }
                state.watched = true;
                watch.publish(&state);
                watching = false;
                // Looking awake pays only where calls are quick: against a
                // real kernel wait a wake-up is cheap, and a spinning watcher
                // would take a CPU from the worker making the call.
                if state.slow_calls {
                    Duration::ZERO
                } else {
                    watch.spin
                }
            };
            let job = Self::watch(jobs, spin);
            {
                let mut state = lock(&watch.state);
                state.watched = false;
                state.closed |= job.is_none();
                watch.publish(&state);
            }
            let Some(job) = job else {
                watch.followers.notify_all();
                return;
            };
            // More work queued: another worker takes the watch now. A batch
            // that arrives later, while this one is busy, wakes one itself
            // (`Workers::send`); otherwise this one watches again when done.
            if !jobs.is_empty() {
                watch.wake_follower();
            }
            let started = Instant::now();
            let calls = job.commands.len().max(1) as u32;
            let report_to = job.report_to.clone();
            self.execute(job);
            {
                let mut state = lock(&watch.state);
                state.slow_calls = started.elapsed() / calls >= SPIN;
                // Take the watch back before the pool hears (and, maybe,
                // sends the next batch at once): else that batch would wake
                // a sleeping worker for nothing.
                if !state.watched {
                    state.watched = true;
                    watch.publish(&state);
                    watching = true;
                }
            }
            report_to.ring();
        }
    }

    /// The next batch: looked for awake for up to `spin`, then waited
    /// for asleep. `None` once the pool is gone and the queue is empty.
    fn watch(jobs: &Receiver<Execute>, spin: Duration) -> Option<Execute> {
        let since = Instant::now();
        loop {
            match jobs.try_recv() {
                Ok(job) => return Some(job),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if since.elapsed() < spin => std::hint::spin_loop(),
                Err(TryRecvError::Empty) => return jobs.recv().ok(),
            }
        }
    }

    /// Carries out one call, in a span named for it, under `parent`: the
    /// span of the message whose handling sent it (none: a root span).
    fn run(&mut self, op: &Op, holder: Option<&Holder>, parent: &Span) -> Outcome {
        // Fields are evaluated only when the span is enabled; a holder label
        // is shown escaped (its `Display`), so it cannot break the line.
        let span = debug_span!(
            parent: parent,
            "kernel",
            op = op.name(),
            device = ?op.device(),
            holder = holder.map(tracing::field::display),
        );
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
        let elapsed = start.elapsed();
        self.metrics.record(op.name(), elapsed);
        let elapsed_us = elapsed.as_micros() as u64;
        let result = result.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(KernelError::Panicked {
                op: op.name().into(),
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

    /// Hands a finished call to the pool. If the pool is gone, nobody will
    /// ever release what the call made: a tap it created is deleted.
    fn deliver(&mut self, to: &Inbox, command: &Command, outcome: Outcome) {
        let created = match (&command.op, &outcome) {
            (Op::Create { name, .. }, Ok(Reply::Created(tap))) => Some((*name, tap.index)),
            _ => None,
        };
        if to.reports.send(Report::Done(command.id, outcome)).is_ok() {
            return;
        }
        if let Some((name, index)) = created {
            warn!(tap = %name, "the pool is gone: deleting the tap it asked for");
            let delete = Op::Delete {
                device: Device::new(name, index),
            };
            if let Err(error) = self.run(&delete, command.holder.as_ref(), &Span::none()) {
                warn!(tap = %name, %error, "deleting an orphaned tap failed");
            }
        }
    }
}

/// Where workers report to the pool: a queue that the pool's thread drains
/// whenever it runs, and a bell rung once a batch is done (and at least
/// every [`REPORT_EVERY`] during a long one) to wake the pool if it waits.
/// A report allocates nothing; a message per batch cost allocations freed
/// on the other thread, and with glibc's allocator those made the threads
/// contend on an arena lock (the tail of a tight pool's Release,
/// docs/performance.md).
#[derive(Clone, Debug)]
pub(crate) struct Inbox {
    pub(crate) reports: crossbeam_channel::Sender<Report>,
    pub(crate) bell: mpsc::UnboundedSender<()>,
}

impl Inbox {
    fn ring(&self) {
        // A pool that is gone hears nothing.
        let _ = self.bell.send(());
    }
}

/// The next report, waited for blocking the calling thread until `until`,
/// or `None` once `until` has passed with nothing reported. For the pool's
/// last drain, which runs where no actix runtime is left to ring the bell
/// to (`crate::shutdown`). The pool holds a sender of its own, so the queue
/// never closes while it waits; if it did, this sleeps until `until` rather
/// than return at once.
pub(crate) fn wait_report(reports: &Receiver<Report>, until: Instant) -> Option<Report> {
    match reports.recv_deadline(until) {
        Ok(report) => Some(report),
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            thread::sleep(until.saturating_duration_since(Instant::now()));
            None
        }
    }
}

/// How long finished calls of a long batch may wait for the bell.
const REPORT_EVERY: Duration = Duration::from_millis(1);

/// What a worker tells the pool.
#[derive(Debug)]
pub(crate) enum Report {
    /// A call finished.
    Done(CommandId, Outcome),
    /// A batch's emptied command buffer, handed back to be freed on the
    /// thread that allocated it.
    Spent(VecDeque<Command>),
}

/// Carries out a batch of calls in order, reporting each outcome as it is
/// known and ringing once the batch is done (or every [`REPORT_EVERY`]). Calls the worker never got to (the worker is gone, the batch
/// dropped) are reported as [`KernelError::Unanswered`].
#[derive(Debug)]
pub(crate) struct Execute {
    commands: VecDeque<Command>,
    report_to: Inbox,
    /// The span its calls' spans are children of: the message's whose
    /// handling sent the batch ([`Span::none`] where tracing is off, which
    /// costs nothing to clone).
    parent: Span,
}

impl Execute {
    pub(crate) fn new(commands: Vec<Command>, report_to: Inbox, parent: Span) -> Execute {
        Execute {
            commands: commands.into(),
            report_to,
            parent,
        }
    }
}

impl Drop for Execute {
    fn drop(&mut self) {
        let any = !self.commands.is_empty();
        for c in self.commands.drain(..) {
            let op = c.op.name();
            let unanswered = Report::Done(c.id, Err(KernelError::Unanswered { op: op.into() }));
            // A pool that is gone hears nothing.
            let _ = self.report_to.reports.send(unanswered);
        }
        if any {
            self.report_to.ring();
        }
    }
}

impl Worker {
    fn execute(&mut self, mut msg: Execute) {
        let mut rung = Instant::now();
        while let Some(command) = msg.commands.pop_front() {
            let outcome = self.run(&command.op, command.holder.as_ref(), &msg.parent);
            self.deliver(&msg.report_to, &command, outcome);
            if rung.elapsed() >= REPORT_EVERY && !msg.commands.is_empty() {
                // A reset tap is back in service soon after its own reset,
                // not after its whole batch.
                msg.report_to.ring();
                rung = Instant::now();
            }
        }
        let spent = std::mem::take(&mut msg.commands);
        let _ = msg.report_to.reports.send(Report::Spent(spent));
    }
}

/// Locks `mutex`, whose state stays valid even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
