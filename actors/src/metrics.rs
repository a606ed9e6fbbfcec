//! The pool's metrics through the [`metrics`](https://docs.rs/metrics)
//! facade, with the `metrics` feature; without it, every type here is empty
//! and every call does nothing, so no metrics code is compiled.
//!
//! The rule lives in one place: the counts and counters are the pool's own
//! [`PoolStats`], published as they are (counters with
//! [`Counter::absolute`](metrics::Counter::absolute)); only the latencies
//! are measured here. Every handle is registered once, when the pool
//! starts, on the starting thread (so a recorder set for that thread alone
//! sees them too), and never again: a recorder installed after the pool
//! started sees nothing of it.

#[cfg(feature = "metrics")]
pub(crate) use on::*;

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;

/// How often, at most, the pool's counts are published while they change
/// (by the actor's timer, within this long of a change, or at once after a
/// quiet spell); and whenever the pool answers `Stats` or `Settle`, at once.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

#[cfg(feature = "metrics")]
mod on {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use metrics::{
        Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge,
        describe_histogram, gauge, histogram,
    };
    use tap_pool::{Lease, LeaseSource, PoolError, PoolStats, RequestId};

    use super::PUBLISH_EVERY;

    /// The label every metric of a pool carries, `pool`: the builder's
    /// [`metrics_label`](crate::PoolBuilder::metrics_label), else the
    /// pool's prefix.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Label(pub(crate) Option<String>);

    /// The `pool` label's value, decided at start.
    #[derive(Clone, Debug)]
    pub(crate) struct Scope {
        pool: Arc<str>,
    }

    impl Scope {
        pub(crate) fn new(label: &Label, prefix: &str) -> Scope {
            describe();
            Scope {
                pool: Arc::from(label.0.as_deref().unwrap_or(prefix)),
            }
        }

        fn pool(&self) -> String {
            self.pool.to_string()
        }
    }

    /// Every metric's description and unit, told to the recorder once per
    /// pool start (a recorder keeps the first or the last; they are the
    /// same).
    fn describe() {
        describe_counter!(
            "tap_pool_hits_total",
            Unit::Count,
            "Acquires served from the pool (an idle tap, or one back from its reset)"
        );
        describe_counter!(
            "tap_pool_misses_total",
            Unit::Count,
            "Acquires that created a tap under their fallback name"
        );
        describe_counter!("tap_pool_created_total", Unit::Count, "Taps created");
        describe_counter!("tap_pool_deleted_total", Unit::Count, "Taps deleted");
        describe_counter!(
            "tap_pool_failures_total",
            Unit::Count,
            "Kernel calls that failed"
        );
        describe_counter!(
            "tap_pool_vanished_total",
            Unit::Count,
            "Taps removed from the kernel behind the pool's back"
        );
        describe_counter!(
            "tap_pool_discarded_total",
            Unit::Count,
            "Released taps deleted because their reset found what it cannot take away"
        );
        describe_gauge!(
            "tap_pool_taps",
            Unit::Count,
            "Taps the pool knows, by state: idle, leased, creating, resetting, deleting, delete_failed"
        );
        describe_gauge!("tap_pool_size", Unit::Count, "The configured pool size");
        describe_histogram!(
            "tap_pool_acquire_duration_seconds",
            Unit::Seconds,
            "From the pool taking an Acquire to its answer, by where the tap came from (source: pool, created, error)"
        );
        describe_histogram!(
            "tap_pool_kernel_call_duration_seconds",
            Unit::Seconds,
            "One kernel call on a kernel worker, by operation (op)"
        );
    }

    /// The actor's metrics: the pool's counts, published at most every
    /// [`PUBLISH_EVERY`], and the Acquire latency.
    pub(crate) struct PoolMetrics {
        hits: Counter,
        misses: Counter,
        created: Counter,
        deleted: Counter,
        failures: Counter,
        vanished: Counter,
        discarded: Counter,
        size: Gauge,
        idle: Gauge,
        leased: Gauge,
        creating: Gauge,
        resetting: Gauge,
        deleting: Gauge,
        delete_failed: Gauge,
        /// Acquire latency by source: pool, created, error.
        acquire: [Histogram; 3],
        /// When each Acquire answered later was taken.
        waiting: HashMap<RequestId, Instant>,
        /// When the counts may next be published.
        next: Instant,
        /// The pool was handed something since they last were.
        changed: bool,
    }

    impl PoolMetrics {
        pub(crate) fn new(scope: &Scope) -> PoolMetrics {
            let counter = |name: &'static str| counter!(name, "pool" => scope.pool());
            let taps = |state: &'static str| gauge!("tap_pool_taps", "pool" => scope.pool(), "state" => state);
            let acquire = |source: &'static str| {
                histogram!(
                    "tap_pool_acquire_duration_seconds",
                    "pool" => scope.pool(),
                    "source" => source
                )
            };
            PoolMetrics {
                hits: counter("tap_pool_hits_total"),
                misses: counter("tap_pool_misses_total"),
                created: counter("tap_pool_created_total"),
                deleted: counter("tap_pool_deleted_total"),
                failures: counter("tap_pool_failures_total"),
                vanished: counter("tap_pool_vanished_total"),
                discarded: counter("tap_pool_discarded_total"),
                size: gauge!("tap_pool_size", "pool" => scope.pool()),
                idle: taps("idle"),
                leased: taps("leased"),
                creating: taps("creating"),
                resetting: taps("resetting"),
                deleting: taps("deleting"),
                delete_failed: taps("delete_failed"),
                acquire: [acquire("pool"), acquire("created"), acquire("error")],
                waiting: HashMap::new(),
                next: Instant::now(),
                changed: false,
            }
        }

        /// Publishes `stats`.
        pub(crate) fn publish(&mut self, stats: &PoolStats) {
            self.hits.absolute(stats.hits);
            self.misses.absolute(stats.misses);
            self.created.absolute(stats.created);
            self.deleted.absolute(stats.deleted);
            self.failures.absolute(stats.failures);
            self.vanished.absolute(stats.vanished);
            self.discarded.absolute(stats.discarded);
            self.size.set(stats.size as f64);
            self.idle.set(stats.idle as f64);
            self.leased.set(stats.leased as f64);
            self.creating.set(stats.creating as f64);
            self.resetting.set(stats.resetting as f64);
            self.deleting.set(stats.deleting as f64);
            self.delete_failed.set(stats.delete_failed as f64);
        }

        /// The pool was handed something: its counts may have changed.
        /// Costs a store, no clock read.
        #[inline]
        pub(crate) fn changed(&mut self) {
            self.changed = true;
        }

        /// When the actor's timer should fire to publish the counts: once
        /// they may have changed, [`PUBLISH_EVERY`] after the last publish
        /// (at once after a quiet spell).
        #[inline]
        pub(crate) fn deadline(&self) -> Option<Instant> {
            self.changed.then_some(self.next)
        }

        /// Publishes the counts `stats` makes (called only here: without the
        /// feature, never).
        pub(crate) fn publish_with(&mut self, stats: impl FnOnce() -> PoolStats) {
            self.publish(&stats());
        }

        /// Publishes the counts if they may have changed and it is time.
        /// `stats` is only called to publish: the counts cost a walk over
        /// the pool's taps.
        pub(crate) fn publish_due(&mut self, now: Instant, stats: impl FnOnce() -> PoolStats) {
            if self.changed && now >= self.next {
                self.publish(&stats());
                self.changed = false;
                self.next = now + PUBLISH_EVERY;
            }
        }

        /// An Acquire taken at `started` was answered now.
        pub(crate) fn acquired(&self, started: Instant, result: Result<&Lease, &PoolError>) {
            let source = match result {
                Ok(Lease {
                    source: LeaseSource::Created,
                    ..
                }) => 1,
                Ok(_) => 0,
                Err(_) => 2,
            };
            self.acquire[source].record(seconds(started.elapsed()));
        }

        /// An Acquire taken at `started` is answered later, as `request`.
        pub(crate) fn acquire_waits(&mut self, request: RequestId, started: Instant) {
            self.waiting.insert(request, started);
        }

        /// The Acquire `request` was answered now.
        pub(crate) fn acquire_answered(
            &mut self,
            request: RequestId,
            result: Result<&Lease, &PoolError>,
        ) {
            if let Some(started) = self.waiting.remove(&request) {
                self.acquired(started, result);
            }
        }
    }

    impl std::fmt::Debug for PoolMetrics {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PoolMetrics")
                .field("waiting", &self.waiting.len())
                .field("next", &self.next)
                .field("changed", &self.changed)
                .finish_non_exhaustive()
        }
    }

    /// The kernel call latency histograms of one lane, by operation:
    /// registered at start for every operation the pool asks for, so a
    /// worker never registers (or allocates) one per call.
    #[derive(Clone, Debug)]
    pub(crate) struct KernelMetrics {
        scope: Scope,
        ops: Vec<(&'static str, Histogram)>,
    }

    /// Every [`Op::name`](tap_pool::Op::name).
    pub(crate) const OPS: [&str; 7] = [
        "create",
        "reset",
        "delete",
        "set_device_group",
        "list_group",
        "delete_group",
        "list",
    ];

    impl KernelMetrics {
        pub(crate) fn new(scope: &Scope) -> KernelMetrics {
            KernelMetrics {
                scope: scope.clone(),
                ops: OPS
                    .iter()
                    .map(|&op| (op, Self::register(scope, op)))
                    .collect(),
            }
        }

        fn register(scope: &Scope, op: &'static str) -> Histogram {
            histogram!(
                "tap_pool_kernel_call_duration_seconds",
                "pool" => scope.pool(),
                "op" => op
            )
        }

        /// One call of `op` took `elapsed`.
        pub(crate) fn record(&mut self, op: &'static str, elapsed: Duration) {
            let histogram = match self.ops.iter().position(|(name, _)| *name == op) {
                Some(at) => &self.ops[at].1,
                None => {
                    // An operation added to the kernel since: registered
                    // once, on first use.
                    let histogram = Self::register(&self.scope, op);
                    self.ops.push((op, histogram));
                    &self.ops[self.ops.len() - 1].1
                }
            };
            histogram.record(seconds(elapsed));
        }
    }

    fn seconds(elapsed: Duration) -> f64 {
        elapsed.as_secs_f64()
    }
}

#[cfg(not(feature = "metrics"))]
mod off {
    use std::time::{Duration, Instant};

    use tap_pool::{Lease, PoolError, PoolStats, RequestId};

    /// Nothing: there is no label to give without the feature.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Label(());

    #[derive(Clone, Debug)]
    pub(crate) struct Scope;

    impl Scope {
        #[inline(always)]
        pub(crate) fn new(_: &Label, _: &str) -> Scope {
            Scope
        }
    }

    #[derive(Debug)]
    pub(crate) struct PoolMetrics;

    impl PoolMetrics {
        #[inline(always)]
        pub(crate) fn new(_: &Scope) -> PoolMetrics {
            PoolMetrics
        }
        #[inline(always)]
        pub(crate) fn publish(&mut self, _: &PoolStats) {}
        #[inline(always)]
        pub(crate) fn publish_with(&mut self, _: impl FnOnce() -> PoolStats) {}
        #[inline(always)]
        pub(crate) fn changed(&mut self) {}
        #[inline(always)]
        pub(crate) fn deadline(&self) -> Option<Instant> {
            None
        }
        #[inline(always)]
        pub(crate) fn publish_due(&mut self, _: Instant, _: impl FnOnce() -> PoolStats) {}
        #[inline(always)]
        pub(crate) fn acquired(&self, _: Instant, _: Result<&Lease, &PoolError>) {}
        #[inline(always)]
        pub(crate) fn acquire_waits(&mut self, _: RequestId, _: Instant) {}
        #[inline(always)]
        pub(crate) fn acquire_answered(&mut self, _: RequestId, _: Result<&Lease, &PoolError>) {}
    }

    #[derive(Clone, Debug)]
    pub(crate) struct KernelMetrics;

    impl KernelMetrics {
        #[inline(always)]
        pub(crate) fn new(_: &Scope) -> KernelMetrics {
            KernelMetrics
        }
        #[inline(always)]
        pub(crate) fn record(&mut self, _: &'static str, _: Duration) {}
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use tap_pool::{Device, Op, TapName, TapSpec};

    use super::on::OPS;

    #[test]
    fn every_kernel_operation_has_its_histogram_registered_at_start() {
        let name = TapName::new("tap-pool-0").unwrap();
        let device = Device::from(name);
        let ops = [
            Op::Create {
                name,
                spec: TapSpec::default(),
            },
            Op::Reset {
                device,
                spec: TapSpec::default(),
                mac: [2, 0, 0, 0, 0, 1],
            },
            Op::Delete { device },
            Op::SetGroup { device, group: 0 },
            Op::ListGroup { group: 1 },
            Op::DeleteGroup { group: 1 },
            Op::ListTaps,
        ];
        let mut names: Vec<&str> = ops.iter().map(Op::name).collect();
        let mut listed = OPS.to_vec();
        names.sort_unstable();
        listed.sort_unstable();
        assert_eq!(names, listed);
    }
}
