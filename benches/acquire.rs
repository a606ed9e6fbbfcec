//! Warm `Acquire` + `Release` through the actors, measured in the same run as
//! its two baselines: a bare actix round trip to a no-op actor (the limit of
//! any actor design) and a `Mutex<Vec<String>>` pool with the seed's semantics
//! (the lock-based design).
//!
//! `cargo bench --bench acquire`

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message};
use criterion::{Criterion, criterion_group, criterion_main};
use tap_pool_actors::sim::SimKernel;
use tap_pool_actors::{Acquire, NetlinkActor, PoolConfig, Release, TapName, TapPoolActor, Warm};

/// The limit: an actor that does nothing.
struct Noop;

impl Actor for Noop {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);

impl Handler<Ping> for Noop {
    type Result = u64;
    fn handle(&mut self, msg: Ping, _: &mut Context<Self>) -> u64 {
        msg.0
    }
}

/// The seed's design: a mutex around a vector of names.
#[derive(Default)]
struct MutexPool {
    entries: Mutex<Vec<String>>,
    size: usize,
}

impl MutexPool {
    fn acquire(&self, fallback: &str) -> String {
        let mut entries = self.entries.lock().unwrap();
        match entries.pop() {
            Some(name) => name,
            None => fallback.to_owned(),
        }
    }

    fn release(&self, name: String) {
        let mut entries = self.entries.lock().unwrap();
        if name.starts_with("tap-pool-") && entries.len() < self.size {
            entries.push(name);
        }
    }
}

fn warm_acquire_release(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let (pool, noop) = sys.block_on(async {
        let kernel = NetlinkActor::start(Arc::new(SimKernel::new()), 2);
        let pool = TapPoolActor::spawn(
            PoolConfig {
                size: 8,
                ..PoolConfig::default()
            },
            kernel,
        )
        .unwrap();
        assert_eq!(pool.send(Warm).await.unwrap().created.len(), 8);
        (pool, Noop.start())
    });
    let fallback = TapName::new("vm-bench").unwrap();
    let mutex_pool = MutexPool {
        entries: Mutex::new((0..8).map(|i| format!("tap-pool-{i}")).collect()),
        size: 8,
    };

    let mut g = c.benchmark_group("warm_acquire_release");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("tap_pool_actor_pair", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let lease = pool.send(Acquire { fallback }).await.unwrap().unwrap();
                    pool.send(Release { tap: lease.name })
                        .await
                        .unwrap()
                        .unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("bare_actix_two_round_trips", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(noop.send(Ping(i)).await.unwrap());
                    black_box(noop.send(Ping(i)).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("mutex_vec_pool_pair", |b| {
        b.iter(|| {
            let name = mutex_pool.acquire(black_box("vm-bench"));
            mutex_pool.release(black_box(name));
        })
    });
    g.finish();
}

criterion_group!(benches, warm_acquire_release);
criterion_main!(benches);
