//! Metrics (the `metrics` feature): what a recorder sees of a pool, read from
//! the recorder, never from the pool, and compared with what `Stats` says.
//!
//! One recorder for the whole binary (the pool's metrics are registered on
//! the starting thread, and its kernel workers' timings come from threads
//! of their own); each test tells its pool's metrics apart by the `pool`
//! label, so the tests run in parallel. Reading the recorder takes nothing
//! from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix::Addr;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use tap_pool_actors::sim::{SimKernel, SimOp};
use tap_pool_actors::{
    Acquire, Error, LeaseGuard, LeaseSource, PoolConfig, PoolError, PoolStats, Settle, Stats,
    TapPoolActor, Warm,
};

/// A recorder that keeps every value where a test can read it without
/// resetting it (`metrics_util`'s `DebuggingRecorder` resets what it reads,
/// which parallel tests would see).
struct Store {
    registry: Registry<Key, AtomicStorage>,
    described: Mutex<HashMap<String, Option<Unit>>>,
}

impl Store {
    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        let mut described = self.described.lock().unwrap();
        described.insert(key.as_str().to_owned(), unit);
    }
}

impl Recorder for Store {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.describe(key, unit);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry
            .get_or_create_counter(key, |c| Counter::from_arc(Arc::clone(c)))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry
            .get_or_create_gauge(key, |g| Gauge::from_arc(Arc::clone(g)))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry
            .get_or_create_histogram(key, |h| Histogram::from_arc(Arc::clone(h)))
    }
}

fn store() -> &'static Store {
    static STORE: OnceLock<&'static Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let store: &'static Store = Box::leak(Box::new(Store {
            registry: Registry::atomic(),
            described: Mutex::new(HashMap::new()),
        }));
        metrics::set_global_recorder(store).expect("the only recorder of this binary");
        store
    })
}

/// Whether `key` is `name` with these labels (and no others but `pool`).
fn matches(key: &Key, name: &str, pool: &str, labels: &[(&str, &str)]) -> bool {
    key.name() == name
        && key.labels().any(|l| l.key() == "pool" && l.value() == pool)
        && labels
            .iter()
            .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

fn counter(pool: &str, name: &str) -> Option<u64> {
    let counters = store().registry.get_counter_handles();
    let found: Vec<&Arc<AtomicU64>> = counters
        .iter()
        .filter(|(k, _)| matches(k, name, pool, &[]))
        .map(|(_, c)| c)
        .collect();
    assert!(found.len() <= 1, "{name} registered twice for {pool}");
    found.first().map(|c| c.load(Ordering::SeqCst))
}

fn gauge(pool: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let gauges = store().registry.get_gauge_handles();
    let found: Vec<f64> = gauges
        .iter()
        .filter(|(k, _)| matches(k, name, pool, labels))
        .map(|(_, g)| f64::from_bits(g.load(Ordering::SeqCst)))
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} registered twice for {pool}"
    );
    found.first().copied()
}

fn taps(pool: &str, state: &str) -> Option<f64> {
    gauge(pool, "tap_pool_taps", &[("state", state)])
}

fn samples(pool: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    let histograms = store().registry.get_histogram_handles();
    let found: Vec<Vec<f64>> = histograms
        .iter()
        .filter(|(k, _)| matches(k, name, pool, labels))
        .map(|(_, h)| h.data())
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} registered twice for {pool}"
    );
    found.into_iter().next().unwrap_or_default()
}

/// The counters as the recorder has them, in `PoolStats`' order.
fn counters(pool: &str) -> [Option<u64>; 7] {
    [
        "tap_pool_hits_total",
        "tap_pool_misses_total",
        "tap_pool_created_total",
        "tap_pool_deleted_total",
        "tap_pool_failures_total",
        "tap_pool_vanished_total",
        "tap_pool_discarded_total",
    ]
    .map(|name| counter(pool, name))
}

fn stats_counters(s: &PoolStats) -> [Option<u64>; 7] {
    [
        s.hits,
        s.misses,
        s.created,
        s.deleted,
        s.failures,
        s.vanished,
        s.discarded,
    ]
    .map(Some)
}

/// The gauges as the recorder has them, in `PoolStats`' order.
fn gauges(pool: &str) -> [Option<f64>; 7] {
    [
        gauge(pool, "tap_pool_size", &[]),
        taps(pool, "idle"),
        taps(pool, "creating"),
        taps(pool, "leased"),
        taps(pool, "resetting"),
        taps(pool, "deleting"),
        taps(pool, "delete_failed"),
    ]
}

fn stats_gauges(s: &PoolStats) -> [Option<f64>; 7] {
    [
        s.size,
        s.idle,
        s.creating,
        s.leased,
        s.resetting,
        s.deleting,
        s.delete_failed,
    ]
    .map(|n| Some(n as f64))
}

/// A pool of `size` on `kernel`, its metrics labelled `label`.
fn start(size: usize, kernel: SimKernel, label: &str) -> Addr<TapPoolActor> {
    store();
    let mut config = PoolConfig::default();
    config.size = size;
    TapPoolActor::builder(config)
        .kernel(Arc::new(kernel))
        .metrics_label(label)
        .start()
        .unwrap()
}

async fn acquire(pool: &Addr<TapPoolActor>, fallback: &str) -> Result<LeaseGuard, Error> {
    pool.send(Acquire::new(fallback).unwrap()).await.unwrap()
}

/// Polls `condition` until it holds, for at most 10 s, letting the pool
/// (on this thread) run in between.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "never: {what}");
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
}

#[actix::test]
async fn counters_and_gauges_say_what_stats_says() {
    let label = "counts";
    let pool = start(4, SimKernel::new(), label);
    pool.send(Warm).await.unwrap();
    // 4 warm Acquires, then 2 that create.
    let mut leases = Vec::new();
    for n in 0..6 {
        leases.push(acquire(&pool, &format!("vm-{n}")).await.unwrap());
    }
    let stats = pool.send(Stats).await.unwrap();
    assert_eq!((stats.hits, stats.misses, stats.leased), (4, 2, 6));
    // Answering Stats published what it answered.
    assert_eq!(counters(label), stats_counters(&stats));
    assert_eq!(gauges(label), stats_gauges(&stats));
    assert_eq!(taps(label, "leased"), Some(6.0));
    assert_eq!(taps(label, "idle"), Some(0.0));

    // All back: 4 pooled after their reset, the 2 created ones deleted.
    for lease in leases {
        lease.release().await.unwrap();
    }
    let settled = pool.send(Settle).await.unwrap().unwrap();
    assert_eq!((settled.idle, settled.leased, settled.deleted), (4, 0, 2));
    assert_eq!(counters(label), stats_counters(&settled));
    assert_eq!(gauges(label), stats_gauges(&settled));

    // Without asking: within moments of a change, the counts follow it.
    let held = acquire(&pool, "vm-late").await.unwrap();
    eventually("the gauges follow a warm Acquire", || {
        taps(label, "leased") == Some(1.0) && taps(label, "idle") == Some(3.0)
    })
    .await;
    assert_eq!(counter(label, "tap_pool_hits_total"), Some(5));
    drop(held);
    eventually("the gauges follow a Release", || {
        taps(label, "leased") == Some(0.0) && taps(label, "idle") == Some(4.0)
    })
    .await;
}

#[actix::test]
async fn every_acquire_is_one_latency_sample_by_where_its_tap_came_from() {
    let label = "acquire-latency";
    let kernel = SimKernel::new();
    let create = Duration::from_millis(3);
    kernel.set_latency(SimOp::Create, create);
    let pool = start(2, kernel, label);
    pool.send(Warm).await.unwrap();
    let mut leases = Vec::new();
    for n in 0..5 {
        leases.push(acquire(&pool, &format!("vm-{n}")).await.unwrap());
    }
    // Refused: a fallback under the pool's prefix.
    assert!(matches!(
        acquire(&pool, "tap-pool-99").await,
        Err(Error::Pool(PoolError::FallbackIsPoolName { .. }))
    ));
    let sources: Vec<LeaseSource> = leases.iter().map(|l| l.source).collect();
    assert_eq!(
        sources.iter().filter(|s| **s == LeaseSource::Pool).count(),
        2
    );

    let name = "tap_pool_acquire_duration_seconds";
    let warm = samples(label, name, &[("source", "pool")]);
    let cold = samples(label, name, &[("source", "created")]);
    let refused = samples(label, name, &[("source", "error")]);
    assert_eq!((warm.len(), cold.len(), refused.len()), (2, 3, 1));
    // A created tap's answer waited for its create, at the least.
    for seconds in &cold {
        assert!(*seconds >= create.as_secs_f64(), "{cold:?}");
    }
    for seconds in warm.iter().chain(&refused) {
        assert!(
            *seconds >= 0.0 && seconds.is_finite(),
            "{warm:?} {refused:?}"
        );
    }
}

#[actix::test]
async fn kernel_calls_are_timed_by_operation() {
    let label = "kernel-calls";
    let kernel = SimKernel::new();
    let delete = Duration::from_millis(2);
    kernel.set_latency(SimOp::Delete, delete);
    let pool = start(2, kernel, label);
    // Two warm creates; an Acquire beyond them creates a third.
    pool.send(Warm).await.unwrap();
    let a = acquire(&pool, "vm-a").await.unwrap();
    let b = acquire(&pool, "vm-b").await.unwrap();
    let c = acquire(&pool, "vm-c").await.unwrap();
    assert_eq!(c.source, LeaseSource::Created);
    // Back: the two pool taps are reset, the created one deleted.
    for lease in [a, b, c] {
        lease.release().await.unwrap();
    }
    pool.send(Settle).await.unwrap().unwrap();

    let name = "tap_pool_kernel_call_duration_seconds";
    let calls = |op| samples(label, name, &[("op", op)]);
    assert_eq!(calls("create").len(), 3);
    assert_eq!(calls("reset").len(), 2);
    let deletes = calls("delete");
    assert_eq!(deletes.len(), 1);
    assert!(deletes[0] >= delete.as_secs_f64(), "{deletes:?}");
    // Registered, never called.
    assert!(calls("delete_group").is_empty());
}

#[actix::test]
async fn pools_in_one_process_are_told_apart() {
    let a = start(1, SimKernel::new(), "pool-a");
    let b = start(1, SimKernel::new(), "pool-b");
    a.send(Warm).await.unwrap();
    b.send(Warm).await.unwrap();
    let held = acquire(&a, "vm-a").await.unwrap();
    a.send(Stats).await.unwrap();
    b.send(Stats).await.unwrap();
    assert_eq!(counter("pool-a", "tap_pool_hits_total"), Some(1));
    assert_eq!(counter("pool-b", "tap_pool_hits_total"), Some(0));
    drop(held);

    // Without a label, the pool's prefix is its label.
    let mut config = PoolConfig::default();
    config.size = 1;
    config.prefix = "unlabelled-".to_owned();
    let c = TapPoolActor::builder(config)
        .kernel(Arc::new(SimKernel::new()))
        .start()
        .unwrap();
    c.send(Warm).await.unwrap();
    c.send(Stats).await.unwrap();
    assert_eq!(counter("unlabelled-", "tap_pool_created_total"), Some(1));
}

#[actix::test]
async fn every_metric_is_described_with_its_unit() {
    let pool = start(1, SimKernel::new(), "described");
    pool.send(Warm).await.unwrap();
    pool.send(Stats).await.unwrap();
    let described = store().described.lock().unwrap().clone();
    let mut names: Vec<String> = store()
        .registry
        .get_counter_handles()
        .into_keys()
        .chain(store().registry.get_gauge_handles().into_keys())
        .chain(store().registry.get_histogram_handles().into_keys())
        .filter(|k| matches(k, k.name(), "described", &[]))
        .map(|k| k.name().to_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 11, "{names:?}");
    for name in names {
        let unit = described
            .get(&name)
            .unwrap_or_else(|| panic!("{name} undescribed"));
        let expected = if name.ends_with("_seconds") {
            Unit::Seconds
        } else {
            Unit::Count
        };
        assert_eq!(*unit, Some(expected), "{name}");
    }
}
