//! Row 6: `Seed` (list + reconcile) in a namespace holding 4,000 links. Real
//! kernel only, in a throwaway network namespace; skips with a message where
//! it is not usable.
//!
//! `cargo bench --bench seed`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tap_pool_testkit::rows;

fn seed(c: &mut Criterion) {
    let ns = match tap_pool_testkit::TestNetns::try_new() {
        Ok(ns) => ns,
        Err(why) => return eprintln!("SKIP seed bench (needs the real kernel): {why}"),
    };
    let used = rows::seed_setup(&ns, 4000);
    let mut g = c.benchmark_group("seed_4000_links");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("seed", |b| {
        b.iter_custom(|iters| rows::seed(&ns, &used, iters as usize).iter().sum())
    });
    g.finish();
    rows::clear(&ns);
}

criterion_group!(benches, seed);
criterion_main!(benches);
