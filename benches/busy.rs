//! Row 2: warm `Acquire` while the kernel workers are busy (a simulated kernel
//! whose every call takes 50 ms, or the real kernel deleting taps), against
//! the same with the kernel idle. Criterion reports the mean; the report
//! command (`cargo run --release --example perf_report`) gives the p99s the
//! target is about. The real-kernel case skips with a message where the
//! kernel is not usable.
//!
//! `cargo bench --bench busy`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tap_pool_testkit::rows;

fn busy(c: &mut Criterion) {
    let mut g = c.benchmark_group("warm_acquire_busy_kernel");
    g.sample_size(10);
    g.bench_function("sim_50ms/idle_then_busy_1000_each", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let (idle, busy, _) = rows::busy_sim(1000, Duration::from_millis(50));
                    idle.iter().sum::<Duration>() + busy.iter().sum::<Duration>()
                })
                .sum()
        })
    });
    match tap_pool_testkit::TestNetns::try_new() {
        Err(why) => eprintln!("SKIP real-kernel busy bench: {why}"),
        Ok(ns) => {
            g.bench_function("real_deleting/idle_then_busy_1000_each", |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            let (idle, busy, _) = rows::busy_real(&ns, 1000, 10);
                            idle.iter().sum::<Duration>() + busy.iter().sum::<Duration>()
                        })
                        .sum()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, busy);
criterion_main!(benches);
