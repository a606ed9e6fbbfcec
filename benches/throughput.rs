//! Row 7: Acquire + Release pairs per second with 1 and with 64 concurrent
//! clients on the pool's arbiter, beside the same clients doing two bare
//! actix round trips. Reported by criterion as time per pair.
//!
//! `cargo bench --bench throughput`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tap_pool_actors::Recycle;
use tap_pool_testkit::rows::{self, WarmFixture};

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("throughput");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    for recycle in [Recycle::Reset, Recycle::Fresh] {
        let f = WarmFixture::new(rows::THROUGHPUT_POOL_SIZE, recycle);
        let label = match recycle {
            Recycle::Fresh => "fresh",
            _ => "reset",
        };
        for clients in [1, 64] {
            g.bench_function(format!("pool_pairs/{clients}_clients/{label}"), |b| {
                b.iter_custom(|iters| {
                    let t0 = Instant::now();
                    f.throughput(clients, iters);
                    t0.elapsed()
                })
            });
            if recycle == Recycle::Reset {
                g.bench_function(format!("bare_actix_pairs/{clients}_clients"), |b| {
                    b.iter_custom(|iters| {
                        let t0 = Instant::now();
                        f.noop_throughput(clients, iters);
                        t0.elapsed()
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
