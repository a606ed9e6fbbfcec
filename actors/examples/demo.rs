//! The main job, shown: a warm tap pool under an orchestrator-like churn of VMs.
//!
//! As root, it shows the split of docs/operations.md ("Running without
//! privilege"): this process makes a throwaway network namespace with a
//! bridge of its own, serves `tap-pool-helper` (the library, on a thread)
//! with a policy for uid 65534 in that namespace, and runs the pool in a
//! child process, this program again, as uid 65534 with no capabilities,
//! whose every kernel change goes through the helper. Nothing is left
//! behind: the namespace and every device in it vanish when the demo exits.
//! `--direct` runs the pool in this process on the real kernel instead.
//! Where this process cannot make taps (no root / `CAP_NET_ADMIN`, or no
//! `/dev/net/tun`) it says why and runs the same loop on the simulated
//! kernel; with `CAP_NET_ADMIN` but not root, it runs on the real kernel
//! directly.
//!
//! `cargo run --release -p tap-pool-actors --example demo [-- [--direct] [--config FILE] [VMS [CONCURRENCY]]]`
//!
//! With `--config FILE` the pool is the one a TOML file describes
//! (`PoolConfig::from_toml`; `docs/pool.example.toml` has every key), in
//! the demo's own namespace: its bridge, if it names one, is made there,
//! and the helper's policy gives the pool its prefix, bridge, device group,
//! owner and group.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use tap_pool::helper::HelperKernelFactory;
use tap_pool_actors::kernel_api::Kernel;
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
/// The unprivileged uid (and gid) the pool runs as when the demo runs as
/// root: `nobody`.
const NOBODY: u32 = 65534;
/// Set in the child: the helper's socket. Its presence makes this process
/// the pool's side of the split.
const SOCKET_ENV: &str = "TAP_POOL_DEMO_HELPER_SOCKET";
/// Set in the child: the bridge the parent made (empty: none).
const BRIDGE_ENV: &str = "TAP_POOL_DEMO_BRIDGE";
/// Set in the child when the parent read a configuration file: its text.
const CONFIG_ENV: &str = "TAP_POOL_DEMO_CONFIG";

struct Setup {
    factory: Arc<dyn tap_pool_actors::kernel_api::KernelFactory>,
    bridge: Option<TapName>,
    label: String,
    /// Keeps the namespace alive for the demo's duration.
    _netns: Option<Netns>,
}

fn real_kernel(bridge_name: Option<&str>) -> Result<(Setup, Netns), String> {
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
    let setup = Setup {
        factory: Arc::new(LinuxKernelFactory {
            netns: Some(netns.clone()),
        }),
        label: format!("real kernel, in a throwaway network namespace{}", {
            bridge_label(bridge, bridge_name)
        }),
        bridge,
        _netns: Some(netns.clone()),
    };
    Ok((setup, netns))
}

fn bridge_label(bridge: Option<TapName>, asked: Option<&str>) -> String {
    match (bridge, asked) {
        (Some(bridge), _) => format!(" with bridge {bridge}"),
        (None, Some(_)) => " (no `ip` to make a bridge: taps are not enslaved)".to_owned(),
        (None, None) => " (no bridge configured)".to_owned(),
    }
}

/// The pool's side of the split: its kernel is the helper at `socket`.
fn helper_kernel(socket: &str, bridge: Option<TapName>) -> Setup {
    Setup {
        factory: Arc::new(HelperKernelFactory::new(socket)),
        label: format!(
            "real kernel through tap-pool-helper ({socket}), in the helper's throwaway namespace{}",
            bridge_label(bridge, bridge.is_some().then_some(""))
        ),
        bridge,
        _netns: None,
    }
}

/// This process's uid, gid and effective capabilities, as the kernel has
/// them.
fn identity() -> String {
    // SAFETY: getuid and getgid cannot fail and touch no memory of ours.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:").map(|c| c.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!(
        "pid {}, uid {uid}, gid {gid}, effective capabilities {caps}",
        std::process::id()
    )
}

/// The helper's side of the split (as root): serves `tap-pool-helper` on a
/// thread, with a policy for uid [`NOBODY`] in `netns`, and runs the pool in
/// this program again as that uid. Returns the child's exit status.
fn split(
    netns: &Netns,
    config: &PoolConfig,
    config_text: Option<&str>,
    bridge: Option<TapName>,
    args: &[String],
) -> Result<ExitCode, String> {
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| format!("{what}: {e}")
    };
    // A directory anyone may enter, for the socket, the helper's ledger and
    // a copy of this program that uid 65534 may run (the build's own may
    // sit where it cannot).
    let dir = tempfile::Builder::new()
        .prefix("tap-pool-demo-")
        .tempdir()
        .map_err(fail("a temporary directory"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(fail("chmod"))?;
    let exe = dir.path().join("demo");
    std::fs::copy(std::env::current_exe().map_err(fail("this program"))?, &exe)
        .map_err(fail("copy this program"))?;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
        .map_err(fail("chmod"))?;
    let socket = dir.path().join("helper.sock");

    // The policy: uid 65534 may have the pool's names and the demo's VM
    // names, on the demo's bridge and device group, in the namespace.
    let quoted = |s: &str| format!("{s:?}");
    let policy = format!(
        "state_dir = {state}\n\
         [[peer]]\n\
         uids = [{NOBODY}]\n\
         prefix = {prefix}\n\
         fallback = \"vm-[0-9]+\"\n\
         bridges = [{bridges}]\n\
         device_groups = [{groups}]\n\
         {owners}\
         groups = [{gid}]\n\
         netns = {netns}\n",
        state = quoted(&dir.path().join("state").display().to_string()),
        prefix = quoted(&config.prefix),
        bridges = bridge.map(|b| quoted(&b.to_string())).unwrap_or_default(),
        groups = (config.tap.device_group.filter(|&g| g != 0))
            .map(|g| g.to_string())
            .unwrap_or_default(),
        owners = (config.tap.owner)
            .map(|uid| format!("owners = [{uid}]\n"))
            .unwrap_or_default(),
        gid = config.tap.group.map(|g| g.to_string()).unwrap_or_default(),
        netns = quoted(&netns.path().display().to_string()),
    );
    let policy = tap_pool_helper::Policy::from_toml(&policy).map_err(|e| format!("{e}"))?;
    let helper = Arc::new(tap_pool_helper::Helper::new(policy).map_err(|e| format!("{e}"))?);
    let listener = UnixListener::bind(&socket).map_err(fail("bind the helper's socket"))?;
    // The socket is the pool's user's to connect to; the policy decides
    // what it may do there.
    std::os::unix::fs::chown(&socket, Some(NOBODY), Some(NOBODY)).map_err(fail("chown"))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(fail("chmod"))?;
    let serving = Arc::clone(&helper);
    std::thread::Builder::new()
        .name("tap-pool-helper".into())
        .spawn(move || serving.serve(&listener))
        .map_err(fail("the helper's thread"))?;
    println!("helper: this process ({})", identity());
    println!(
        "        serves {} with a policy for uid {NOBODY}: its prefix, vm-N names, {}device group {}, in the throwaway namespace",
        socket.display(),
        bridge.map_or_else(String::new, |b| format!("bridge {b}, ")),
        config.tap.device_group.unwrap_or(0),
    );
    println!("        and runs the pool as uid {NOBODY} in a child process\n");

    let mut child = Command::new(&exe);
    child
        .args(args)
        .env(SOCKET_ENV, &socket)
        .env(
            BRIDGE_ENV,
            bridge.map(|b| b.to_string()).unwrap_or_default(),
        )
        .current_dir(dir.path())
        .uid(NOBODY)
        .gid(NOBODY);
    if let Some(text) = config_text {
        child.env(CONFIG_ENV, text);
    }
    let status = child.status().map_err(fail("start the pool's process"))?;
    println!(
        "\nhelper: the pool's process exited ({status}); the helper's ledger lists {} taps of uid {NOBODY} now",
        helper.taps().len()
    );
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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

fn main() -> ExitCode {
    // The pool's and the helper's warnings (a refusal, a failed kernel
    // call) on stderr; RUST_LOG=info or debug shows more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut args = raw.clone();
    let direct = match args.iter().position(|a| a == "--direct") {
        Some(at) => {
            args.remove(at);
            true
        }
        None => false,
    };
    let file = match args.iter().position(|a| a == "--config") {
        Some(at) if at + 1 < args.len() => {
            let path = args.remove(at + 1);
            args.remove(at);
            Some(path)
        }
        Some(_) => {
            eprintln!("--config needs a file");
            return ExitCode::from(2);
        }
        None => None,
    };
    let mut args = args.into_iter();
    let vms: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(600);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(24);
    let parse = |origin: &str, text: &str| {
        PoolConfig::from_toml(text).unwrap_or_else(|e| {
            eprintln!("{origin}: {e}");
            std::process::exit(2);
        })
    };

    // The pool's side of the split: run as uid 65534 by the helper's side,
    // which read the configuration and made the bridge.
    if let Ok(socket) = std::env::var(SOCKET_ENV) {
        let from_file = std::env::var(CONFIG_ENV)
            .ok()
            .map(|text| parse("the configuration", &text));
        let bridge = std::env::var(BRIDGE_ENV)
            .ok()
            .and_then(|b| TapName::new(&b).ok());
        println!("pool:   this process ({})", identity());
        let setup = helper_kernel(&socket, bridge);
        let config = pool_config(from_file, setup.bridge);
        return run(setup, config, vms, concurrency, Some(socket));
    }

    let text = file.as_ref().map(|path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        })
    });
    let from_file = text
        .as_deref()
        .zip(file.as_deref())
        .map(|(text, path)| parse(path, text));
    // Without a file, a bridge of the demo's own; with one, its bridge (if
    // it names one), made in the demo's namespace.
    let bridge_name = match &from_file {
        Some(config) => config.tap.bridge.map(|b| b.to_string()),
        None => Some(BRIDGE.to_owned()),
    };

    let setup = match real_kernel(bridge_name.as_deref()) {
        Ok((setup, netns)) => {
            // SAFETY: geteuid cannot fail and touches no memory of ours.
            let root = unsafe { libc::geteuid() } == 0;
            if root && !direct {
                let config = pool_config(from_file.clone(), setup.bridge);
                match split(&netns, &config, text.as_deref(), setup.bridge, &raw) {
                    Ok(code) => return code,
                    Err(why) => println!(
                        "Cannot run the pool through the helper ({why}); running it in this process.\n"
                    ),
                }
            }
            setup
        }
        Err(why) => {
            println!("The real kernel is not usable here ({why}).");
            println!("Running on the simulated kernel instead; run as root to see real taps.\n");
            simulated_kernel(bridge_name.as_deref())
        }
    };
    let config = pool_config(from_file, setup.bridge);
    run(setup, config, vms, concurrency, None)
}

/// The configuration from the file, with the bridge the demo made; else
/// the demo's own.
fn pool_config(from_file: Option<PoolConfig>, bridge: Option<TapName>) -> PoolConfig {
    match from_file {
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
    }
}

/// The pool under churn, on `setup`'s kernel; `helper` is the helper's
/// socket when the pool's changes go through it.
fn run(
    setup: Setup,
    config: PoolConfig,
    vms: usize,
    concurrency: usize,
    helper: Option<String>,
) -> ExitCode {
    actix::System::new().block_on(churn(setup, config, vms, concurrency, helper))
}

async fn churn(
    setup: Setup,
    config: PoolConfig,
    vms: usize,
    concurrency: usize,
    helper: Option<String>,
) -> ExitCode {
    println!("tap-pool demo: {}", setup.label);
    println!(
        "pool of {} taps, {WORKERS} kernel workers, {vms} VMs, up to {concurrency} at once\n",
        config.size
    );
    let pool = match TapPoolActor::builder(config)
        .kernel(Arc::clone(&setup.factory))
        .workers(WORKERS)
        // Through the helper: it answers and lets this uid in, or a typed
        // error now.
        .fail_fast(helper.is_some())
        .start()
    {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("the pool cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
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
        return ExitCode::FAILURE;
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
    if let Some(socket) = helper {
        // What the helper's policy refuses, asked directly: lo is not a tap
        // the helper made for this uid.
        let lo = TapName::new("lo").expect("a device name");
        let refused = HelperKernelFactory::new(socket)
            .connect()
            .and_then(|mut kernel| kernel.delete_link(lo.into()));
        match refused {
            Err(e) => println!("\npool:   asked the helper to delete lo: {e}"),
            Ok(()) => {
                println!("\npool:   the helper deleted lo: its policy is broken");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
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
