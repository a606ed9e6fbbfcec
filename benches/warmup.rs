//! Rows 4 and 5: a pool's warm-up against a direct loop of the same kernel
//! calls, with 1, 2 and 4 kernel workers; and its drain (one group delete)
//! against one `RTM_DELLINK` per tap. Real kernel only, in a throwaway
//! network namespace; skips with a message where it is not usable. Uses 100
//! taps to stay quick (single deletes cost ~20 ms each); the report command
//! measures 1,000.
//!
//! `cargo bench --bench warmup`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tap_pool_testkit::rows;

const TAPS: usize = 100;

fn warmup(c: &mut Criterion) {
    let ns = match tap_pool_testkit::TestNetns::try_new() {
        Ok(ns) => ns,
        Err(why) => return eprintln!("SKIP warm-up/drain bench (needs the real kernel): {why}"),
    };
    let sys = actix_rt::System::new();
    let mut g = c.benchmark_group("warm_up_100");
    g.sample_size(10);
    g.bench_function("direct_loop", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let took = rows::create_direct(&ns, TAPS);
                    rows::clear(&ns);
                    took
                })
                .sum()
        })
    });
    for workers in [1, 2, 4] {
        g.bench_function(format!("pool/{workers}_workers"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (pool, took) = rows::warm_up(&sys, &ns, TAPS, workers);
                        rows::drain(&sys, pool);
                        took
                    })
                    .sum()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("drain_100");
    g.sample_size(10);
    g.bench_function("pool_group_delete", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (pool, _) = rows::warm_up(&sys, &ns, TAPS, 2);
                    rows::drain(&sys, pool)
                })
                .sum()
        })
    });
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("single_deletes", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    rows::create_direct(&ns, TAPS);
                    rows::delete_each(&ns, TAPS, |_| {})
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group!(benches, warmup);
criterion_main!(benches);
