//! The last drain: what the pool does when it is torn down without having
//! drained.
//!
//! Stopping the actix System (`System::current().stop()`, or the end of
//! `#[actix::main]`'s `main`), or the `Arbiter` the pool actor runs on, ends
//! the runtime, and the runtime drops every actor it holds. actix then polls
//! the actor once more, outside any runtime, and drops it: the graceful path
//! (`Actor::stopping` starts a drain and the actor runs on until the drain's
//! report) cannot run, since nothing will ever poll it again. So the actor's
//! `Drop` carries the drain out here, on the thread that drops it, blocking:
//! it starts the drain on the [`Pool`] (or carries on with the one stopping
//! had started), sends each batch to the kernel workers (threads of their
//! own, which outlive the runtime), waits for their reports and completes
//! them into the pool, and handles the pool's deadlines (delete retries)
//! itself, until nothing but leased taps is left, or until the deadline
//! passes (then it logs what is left, for the next run's `Seed`).

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tap_pool::{Event, Lane, Pool, RequestId, TapName, TapState};
use tracing::{info, warn};

use crate::kernel::{Execute, Inbox, Report, Workers, wait_report};

/// How long the pool's last drain (when its System or arbiter stops without
/// a [`Drain`](crate::Drain)) may block the thread that tears it down,
/// unless [`PoolBuilder::shutdown_deadline`](crate::PoolBuilder::shutdown_deadline)
/// says otherwise. A hung kernel call cannot hold the process's exit for
/// longer; what is left then is logged, and the next run's `Seed` finds it.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// Whether the actor runs because it is being torn down: actix polls an
/// actor outside any runtime only when the runtime that held it drops it
/// (its System or arbiter stopped). It then never runs again, so no timer
/// can be armed and no drain can wait for a report there.
pub(crate) fn torn_down() -> bool {
    tokio::runtime::Handle::try_current().is_err()
}

/// What of the pool actor the last drain needs.
pub(crate) struct Shell<'a> {
    pub(crate) pool: &'a mut Pool,
    pub(crate) reset: &'a Workers,
    pub(crate) create: &'a Workers,
    pub(crate) delete: &'a Workers,
    pub(crate) report_to: &'a Inbox,
    pub(crate) reports: &'a Receiver<Report>,
}

impl Shell<'_> {
    /// Drains the pool, blocking the calling thread, until only leased taps
    /// are left or `deadline` (from now) has passed. `started` is a drain
    /// that stopping the actor began and that has not yet answered.
    ///
    /// Every caller still waiting on the actor gets `Error::Stopped` when
    /// the actor is gone. So a tap created for a caller meanwhile (its
    /// `Acquire` was in flight) is released again, which deletes it: nobody
    /// will ever hold it.
    pub(crate) fn drain_blocking(mut self, started: Option<RequestId>, limit: Duration) {
        let begun = Instant::now();
        // A deadline beyond the clock's range is as good as none: a year.
        let deadline = begun
            .checked_add(limit)
            .or_else(|| begun.checked_add(Duration::from_secs(365 * 24 * 3600)))
            .unwrap_or(begun);
        info!(
            deadline_ms = limit.as_millis() as u64,
            "tap pool torn down without a drain (its System or arbiter stopped): draining now"
        );
        let mut drain = started.unwrap_or_else(|| self.pool.drain(begun));
        let mut drained = false;
        loop {
            self.send_batches();
            let mut answered = false;
            while let Some(event) = self.pool.poll_event() {
                answered = true;
                match event {
                    Event::Drained { request, .. } if request == drain => drained = true,
                    Event::Acquired {
                        result: Ok(lease), ..
                    } => {
                        // Its caller is told the pool stopped: delete it.
                        let _ = self.pool.release(lease.token, Instant::now());
                    }
                    // Nobody is left to answer.
                    _ => {}
                }
            }
            if answered {
                // What the answers started (a delete) goes out first.
                continue;
            }
            if drained {
                if !self.pool.idle().is_empty() {
                    // A tap became idle after the drain had passed it (a
                    // Seed's adoption): drain again.
                    drain = self.pool.drain(Instant::now());
                    drained = false;
                    continue;
                }
                if self.left().is_empty() {
                    info!(
                        elapsed_ms = begun.elapsed().as_millis() as u64,
                        leased = self.pool.stats().leased,
                        "tap pool drained; leased taps are left to their holders"
                    );
                    return;
                }
            }
            if Instant::now() >= deadline {
                let left = self.left();
                warn!(
                    ?left,
                    drained,
                    "tap pool shutdown deadline passed: these taps are left in the kernel \
                     for the next run's Seed"
                );
                return;
            }
            let until = self
                .pool
                .poll_timeout()
                .map_or(deadline, |at| at.min(deadline));
            match wait_report(self.reports, until) {
                Some(report) => {
                    self.complete(report);
                    while let Ok(report) = self.reports.try_recv() {
                        self.complete(report);
                    }
                }
                None => self.pool.handle_timeout(Instant::now()),
            }
        }
    }

    /// Hands every batch the pool asks for to its lane of kernel workers.
    fn send_batches(&mut self) {
        while let Some(batch) = self.pool.poll_batch() {
            let to = match batch.lane {
                Lane::Reset => self.reset,
                Lane::Delete => self.delete,
                _ => self.create,
            };
            to.send(Execute::new(
                batch.commands,
                self.report_to.clone(),
                tracing::Span::current(),
            ));
        }
    }

    fn complete(&mut self, report: Report) {
        match report {
            Report::Done(id, outcome) => self.pool.complete(id, outcome, Instant::now()),
            Report::Spent(buffer) => drop(buffer),
        }
    }

    /// The pool's taps other than the leased ones: what a finished drain
    /// leaves in the kernel only if their deletes failed.
    fn left(&self) -> Vec<(TapName, TapState)> {
        self.pool
            .taps()
            .filter(|(_, state)| *state != TapState::Leased)
            .collect()
    }
}
