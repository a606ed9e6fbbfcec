//! The main job, shown: a warm tap pool under an orchestrator-like churn of VMs.
//!
//! On a machine where this process can make taps (root, or CAP_NET_ADMIN, and
//! `/dev/net/tun`), it runs on the real kernel inside a throwaway network
//! namespace with a bridge of its own, and leaves nothing behind: the namespace
//! and every device in it vanish when the demo exits. Elsewhere it says why and
//! runs the same loop on the simulated kernel.
//!
//! `cargo run --release -p tap-pool-actors --example demo [-- [--config FILE] [VMS [CONCURRENCY]]]`
//!
//! With `--config FILE` the pool is the one a TOML file describes
//! (`PoolConfig::from_toml`; `docs/pool.example.toml` has every key), in
//! the demo's own namespace: its bridge, if it names one, is made there.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use tap_pool_actors::sim::{SimKernel, SimOp};
use tap_pool_actors::{
    Acquire, Drain, LeaseGuard, LeaseSource, LinuxKernelFactory, Netns, PoolConfig, Seed, Settle,
    Stats, TapName, TapPoolActor, TapSpec, Warm,
};

const POOL_SIZE: usize = 16;
const WORKERS: usize = 2;
const BRIDGE: &str = "tpdemo-br0";
/// The device group that marks the demo's taps (no other device uses it).
const DEVICE_GROUP: u32 = 4242;

struct Setup {
    factory: Arc<dyn tap_pool_actors::kernel_api::KernelFactory>,
    bridge: Option<TapName>,
    label: String,
    /// Keeps the namespace alive for the demo's duration.
    _netns: Option<Netns>,
}

fn real_kernel(bridge_name: Option<&str>) -> Result<Setup, String> {
    tap_pool_actors::linux::probe().map_err(|e| e.to_string())?;
    let netns = Netns::new_private().map_err(|e| e.to_string())?;
    // The bridge is the demo's scenery, not the library's job: it is made with
    // iproute2 inside the throwaway namespace. Without `ip` the demo runs
    // without a bridge.
    let ns = format!("--net={}", netns.path().display());
    let ip = |args: &[&str]| {
        Command::new("nsenter")
            .arg(&ns)
            .arg("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    let bridge = bridge_name.and_then(|name| {
        (ip(&["link", "add", name, "type", "bridge"]) && ip(&["link", "set", name, "up"]))
            .then(|| TapName::new(name).expect("valid name"))
    });
    Ok(Setup {
        factory: Arc::new(LinuxKernelFactory {
            netns: Some(netns.clone()),
        }),
        label: format!(
            "real kernel, in a throwaway network namespace{}",
            match (bridge, bridge_name) {
                (Some(bridge), _) => format!(" with bridge {bridge}"),
                (None, Some(_)) => " (no `ip` to make a bridge: taps are not enslaved)".to_owned(),
                (None, None) => " (no bridge configured)".to_owned(),
            }
        ),
        bridge,
        _netns: Some(netns),
    })
}

fn simulated_kernel(bridge_name: Option<&str>) -> Setup {
    let sim = SimKernel::new();
    // Roughly what the real kernel costs on these machines.
    sim.set_latency(SimOp::Create, Duration::from_millis(2));
    sim.set_latency(SimOp::Delete, Duration::from_millis(16));
    let bridge = bridge_name.map(|name| {
        let bridge = TapName::new(name).expect("valid name");
        sim.add_bridge(bridge).expect("fresh kernel");
        bridge
    });
    Setup {
        factory: Arc::new(sim),
        bridge,
        label: "simulated kernel (2 ms per create, 16 ms per delete)".to_owned(),
        _netns: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn describe(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "  {label:<26} {:>6} acquires   median {:>10.1?}   p99 {:>10.1?}",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    );
}

/// A tiny deterministic generator for VM lifetimes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn run_vm(
    pool: Addr<TapPoolActor>,
    vm: usize,
    lifetime: Duration,
) -> (LeaseSource, Duration) {
    let fallback = format!("vm-{vm}");
    let start = Instant::now();
    // A guard: the tap goes back however this task ends.
    let lease = LeaseGuard::acquire(&pool, Acquire::new(&fallback).expect("valid name"))
        .await
        .expect("acquire");
    let took = start.elapsed();
    // The pool ran dry: top it up in the background while the VM runs.
    if lease.source == LeaseSource::Created {
        pool.do_send(Warm);
    }
    actix_rt::time::sleep(lifetime).await;
    let source = lease.source;
    lease.release().await.expect("release");
    (source, took)
}

#[actix::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let file = match args.iter().position(|a| a == "--config") {
        Some(at) if at + 1 < args.len() => {
            let path = args.remove(at + 1);
            args.remove(at);
            Some(path)
        }
        Some(_) => {
            eprintln!("--config needs a file");
            std::process::exit(2);
        }
        None => None,
    };
    let mut args = args.into_iter();
    let vms: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(600);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(24);
    let from_file = file.map(|path| {
        std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| PoolConfig::from_toml(&text).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| {
                eprintln!("{path}: {e}");
                std::process::exit(2);
            })
    });
    // Without a file, a bridge of the demo's own; with one, its bridge (if
    // it names one), made in the demo's namespace.
    let bridge_name = match &from_file {
        Some(config) => config.tap.bridge.map(|b| b.to_string()),
        None => Some(BRIDGE.to_owned()),
    };

    let setup = match real_kernel(bridge_name.as_deref()) {
        Ok(setup) => setup,
        Err(why) => {
            println!("The real kernel is not usable here ({why}).");
            println!("Running on the simulated kernel instead; run as root to see real taps.\n");
            simulated_kernel(bridge_name.as_deref())
        }
    };
    let bridge = setup.bridge;
    let config = match from_file {
        Some(mut config) => {
            config.tap.bridge = bridge;
            config
        }
        None => {
            let mut c = PoolConfig::default();
            c.size = POOL_SIZE;
            c.create_window = 2 * WORKERS;
            c.tap = {
                let mut t = TapSpec::default();
                t.bridge = bridge;
                t.device_group = Some(DEVICE_GROUP);
                t
            };
            c
        }
    };
    println!("tap-pool demo: {}", setup.label);
    println!(
        "pool of {} taps, {WORKERS} kernel workers, {vms} VMs, up to {concurrency} at once\n",
        config.size
    );
    let pool = TapPoolActor::builder(config)
        .kernel(Arc::clone(&setup.factory))
        .workers(WORKERS)
        .start()
        .expect("valid config, inside a System");
    // After a crash, the next run finds what this one left: seed first.
    let seeded = pool
        .send(Seed::default())
        .await
        .expect("pool running")
        .expect("seed");
    if !seeded.adopted.is_empty() || !seeded.deleted.is_empty() {
        println!(
            "seed: adopted {} and deleted {} leftover taps",
            seeded.adopted.len(),
            seeded.deleted.len()
        );
    }

    let start = Instant::now();
    let report = pool.send(Warm).await.expect("pool running");
    if let Some(failure) = &report.failure {
        eprintln!("warm-up failed: {}", failure.error);
        std::process::exit(1);
    }
    println!(
        "warmed {} taps in {:.1?}",
        report.created.len(),
        start.elapsed()
    );

    // Orchestrator-like churn: VMs start and stop with random lifetimes,
    // sometimes in bursts larger than the pool, so both paths show.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut running = Vec::new();
    let mut warm = Vec::new();
    let mut cold = Vec::new();
    let churn = Instant::now();
    for vm in 0..vms {
        if running.len() >= concurrency {
            let (source, took) = futures_first(&mut running).await;
            match source {
                LeaseSource::Pool => warm.push(took),
                _ => cold.push(took),
            }
        }
        let lifetime = Duration::from_millis(1 + rng.below(30));
        running.push(actix_rt::spawn(run_vm(pool.clone(), vm, lifetime)));
        if (vm + 1) % 100 == 0 {
            let s = pool.send(Stats).await.expect("pool running");
            println!(
                "  {:>5} VMs started   idle {:>2}  leased {:>2}  hits {:>5}  creations {:>4}",
                vm + 1,
                s.idle,
                s.leased,
                s.hits,
                s.created
            );
        }
    }
    for handle in running.drain(..) {
        let (source, took) = handle.await.expect("vm task");
        match source {
            LeaseSource::Pool => warm.push(took),
            _ => cold.push(took),
        }
    }
    let churn_time = churn.elapsed();

    // Let refills, resets and deletes in flight settle before reading the
    // counters.
    let s = pool
        .send(Settle)
        .await
        .expect("pool running")
        .expect("pool running");
    println!("\nafter {vms} VMs in {churn_time:.1?}:");
    println!(
        "  pool hits {} against {} creations on the acquire path ({:.1}% hits)",
        s.hits,
        s.misses,
        100.0 * s.hits as f64 / (s.hits + s.misses).max(1) as f64
    );
    describe("acquire latency, warm:", warm);
    describe("acquire latency, cold:", cold);
    println!(
        "  devices created {}, deleted {}, kernel failures {}",
        s.created, s.deleted, s.failures
    );

    // Shut down: one group delete for the whole idle pool.
    let start = Instant::now();
    let drained = pool.send(Drain).await.expect("pool running");
    println!(
        "  drained {} idle taps in {:.1?} ({}); {} still leased",
        drained.deleted,
        start.elapsed(),
        if drained.bulk {
            "one group delete"
        } else {
            "one delete each"
        },
        drained.leased
    );
    actix::System::current().stop();
}

/// Waits for the first of `running` to finish and removes it.
async fn futures_first(
    running: &mut Vec<actix_rt::task::JoinHandle<(LeaseSource, Duration)>>,
) -> (LeaseSource, Duration) {
    loop {
        if let Some(i) = running.iter().position(|h| h.is_finished()) {
            return running.swap_remove(i).await.expect("vm task");
        }
        actix_rt::time::sleep(Duration::from_micros(200)).await;
    }
}
