//! A pool's metrics, served for Prometheus to scrape.
//!
//! Installs `metrics-exporter-prometheus` as the `metrics` recorder, listening
//! on 127.0.0.1 only, then runs a pool on the simulated kernel (no root
//! needed) under a churn of VMs, each naming itself as the holder of its
//! lease, and prints the URL to scrape. It stops by itself after a while.
//!
//! ```sh
//! cargo run -p tap-pool-actors --features metrics --example prometheus             # serve for 60 s on 127.0.0.1:9464
//! cargo run -p tap-pool-actors --features metrics --example prometheus -- --seconds 600 --port 9100
//! cargo run -p tap-pool-actors --features metrics --example prometheus -- --once   # one scrape to stdout, no listener
//! ```
//!
//! `--once` listens on nothing: it runs one round of churn, waits for the
//! pool to settle, prints what a scrape would return, and exits.
//! docs/operations.md lists every metric.

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tap_pool_actors::sim::{SimKernel, SimOp};
use tap_pool_actors::{Acquire, LeaseGuard, PoolConfig, Settle, TapPoolActor, Warm};

const POOL_SIZE: usize = 8;
/// VMs alive at once: more than the pool holds, so some Acquires create.
const CONCURRENT_VMS: usize = 12;

/// Latency buckets, in seconds, from a warm Acquire (~1 µs) to a slow
/// kernel call (~100 ms): rendered as Prometheus histograms, which can be
/// aggregated across pools, rather than the exporter's default summaries.
const BUCKETS: [f64; 16] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1,
];

struct Args {
    once: bool,
    seconds: u64,
    port: u16,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        once: false,
        seconds: 60,
        port: 9464,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = |name: &str| {
            given
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{name} takes a number"))
        };
        match arg.as_str() {
            "--once" => args.once = true,
            "--seconds" => args.seconds = value("--seconds")?,
            "--port" => {
                args.port = u16::try_from(value("--port")?).map_err(|_| "no such port")?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: [--once] [--seconds N] [--port P]"
                ));
            }
        }
    }
    Ok(args)
}

/// One VM: a lease held for `lifetime` under the VM's id, then given back.
async fn vm(pool: Addr<TapPoolActor>, id: u64, lifetime: Duration) -> Result<(), Box<dyn Error>> {
    let acquire = Acquire::new(&format!("vm-{id}"))?.holder(&format!("vm-{id:016x}"))?;
    let lease = LeaseGuard::acquire(&pool, acquire).await?;
    actix_rt::time::sleep(lifetime).await;
    // Dropping the guard would release it too; this waits for the answer.
    lease.release().await?;
    Ok(())
}

/// One round of churn: `CONCURRENT_VMS` VMs of random short lifetimes.
async fn churn(pool: &Addr<TapPoolActor>, round: u64) {
    let vms = (0..CONCURRENT_VMS as u64).map(|n| {
        let lifetime = Duration::from_micros(fastrand_like(round * 1000 + n) % 20_000);
        let id = round * 1000 + n;
        let pool = pool.clone();
        actix_rt::spawn(async move {
            if let Err(error) = vm(pool, id, lifetime).await {
                eprintln!("vm-{id}: {error}");
            }
        })
    });
    for vm in vms.collect::<Vec<_>>() {
        let _ = vm.await;
    }
}

/// A few bits of noise for VM lifetimes (the example needs no RNG crate).
fn fastrand_like(seed: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

#[actix::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("{why}");
            return ExitCode::FAILURE;
        }
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let builder = match PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &BUCKETS)
    {
        Ok(builder) => builder,
        Err(error) => {
            eprintln!("cannot configure the exporter: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The recorder must be installed before the pool starts: the pool
    // registers its metrics once, at start.
    let scrape = if args.once {
        match builder.install_recorder() {
            Ok(handle) => Some(handle),
            Err(error) => {
                eprintln!("cannot install the recorder: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        // Serves on the actix System's runtime, on 127.0.0.1 only.
        if let Err(error) = builder.with_http_listener(address).install() {
            eprintln!("cannot listen on {address}: {error}");
            return ExitCode::FAILURE;
        }
        None
    };

    let sim = SimKernel::new();
    sim.set_latency(SimOp::Create, Duration::from_millis(2));
    sim.set_latency(SimOp::Delete, Duration::from_millis(5));
    let mut config = PoolConfig::default();
    config.size = POOL_SIZE;
    let pool = match TapPoolActor::builder(config)
        .kernel(Arc::new(sim))
        .metrics_label("example")
        .start()
    {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("cannot start the pool: {error}");
            return ExitCode::FAILURE;
        }
    };
    if pool.send(Warm).await.is_err() {
        return ExitCode::FAILURE;
    }

    if let Some(scrape) = scrape {
        churn(&pool, 0).await;
        // Settled: the resets and deletes are done and the counts published.
        if pool.send(Settle).await.is_err() {
            return ExitCode::FAILURE;
        }
        print!("{}", scrape.render());
        return ExitCode::SUCCESS;
    }

    println!("scrape http://{address}/metrics (for {} s)", args.seconds);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let mut round = 0;
    while Instant::now() < until {
        churn(&pool, round).await;
        round += 1;
        pool.do_send(Warm);
    }
    println!("{round} rounds of {CONCURRENT_VMS} VMs; done");
    ExitCode::SUCCESS
}
