//! Row 1: warm `Acquire` + `Release` through the actors, measured in the same
//! run as its two baselines: a bare actix round trip to a no-op actor on the
//! same arbiter (the limit of any actor design) and a `Mutex<Vec<String>>`
//! pool with the seed's semantics (the lock-based design). With reset on
//! release (the default, `Recycle::Reset`) and with
//! `Recycle::Fresh` (each release deletes the tap and the pool makes another).
//!
//! `cargo bench --bench acquire`; the whole table: `cargo run --release
//! --example perf_report`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tap_pool_actors::Recycle;
use tap_pool_testkit::rows::{self, WarmFixture};

fn warm_acquire_release(c: &mut Criterion) {
    let mut g = c.benchmark_group("warm_acquire_release");
    g.measurement_time(Duration::from_secs(3));
    for recycle in [Recycle::Reset, Recycle::Fresh] {
        let f = WarmFixture::new(rows::PAIRS_POOL_SIZE, recycle);
        let label = match recycle {
            Recycle::Fresh => "fresh",
            _ => "reset",
        };
        g.bench_function(format!("tap_pool_actor_pair/{label}"), |b| {
            b.iter_custom(|iters| f.pairs(iters).0.iter().sum())
        });
        if recycle == Recycle::Reset {
            g.bench_function("bare_actix_two_round_trips", |b| {
                b.iter_custom(|iters| f.round_trips(2 * iters).iter().sum())
            });
            g.bench_function("mutex_vec_pool_pair", |b| {
                b.iter(|| {
                    let name = f.mutex.acquire(black_box("vm-bench"));
                    f.mutex.release(black_box(name));
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, warm_acquire_release);
criterion_main!(benches);
