//! Row 3: cold `Acquire` (empty pool: create + up + master) against the same
//! kernel calls made directly in a loop (the limit) and against `ip tuntap
//! add` + `ip link set … master … up` as subprocesses; and the same pool
//! with its changes made by `tap-pool-helper` (served in this process, on a
//! thread, over its Unix socket), against the pool on the Linux kernel.
//! Real kernel only, in a throwaway network namespace; skips with a message
//! where it is not usable.
//!
//! `cargo bench --bench cold`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tap_pool_testkit::rows;

#[path = "support/in_process_helper.rs"]
mod in_process_helper;

fn cold(c: &mut Criterion) {
    let ns = match tap_pool_testkit::TestNetns::try_new() {
        Ok(ns) => ns,
        Err(why) => return eprintln!("SKIP cold-acquire bench (needs the real kernel): {why}"),
    };
    ns.ip_batch("link add br0 type bridge\nlink set br0 up\n");
    let br = tap_pool_testkit::name("br0");
    let mut g = c.benchmark_group("cold_acquire");
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(10);
    g.bench_function("pool", |b| {
        b.iter_custom(|iters| rows::cold_pool(&ns, br, iters as usize).iter().sum())
    });
    let helper = in_process_helper::InProcessHelper::start(&ns, br);
    g.bench_function("pool_through_helper", |b| {
        b.iter_custom(|iters| {
            rows::cold_pool_on(&ns, helper.factory(), br, iters as usize)
                .iter()
                .sum()
        })
    });
    g.bench_function("direct_kernel_calls", |b| {
        b.iter_custom(|iters| rows::cold_direct(&ns, br, iters as usize).iter().sum())
    });
    g.bench_function("ip_subprocesses", |b| {
        b.iter_custom(|iters| rows::cold_subprocess(&ns, br, iters as usize).iter().sum())
    });
    g.finish();
}

criterion_group!(benches, cold);
criterion_main!(benches);
