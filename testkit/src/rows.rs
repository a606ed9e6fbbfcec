//! The measurements behind every row of `docs/performance.md`, shared by the
//! criterion benches (`benches/*.rs`) and the report command
//! (`examples/perf_report.rs`), so both measure the same thing the same way.
//!
//! Every function returns raw samples (one `Duration` per operation, or per
//! run for whole-pool operations); the caller computes medians and
//! percentiles. Real-kernel measurements run inside a throwaway network
//! namespace ([`TestNetns`]) and never touch the host's.

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler, Message};
use actix_rt::SystemRunner;
use tap_pool_actors::sim::{SimKernel, SimOp};
use tap_pool_actors::{
    Acquire, Drain, Lease, PoolConfig, Recycle, Release, Seed, Stats, TapName, TapPoolActor,
    TapSpec, Warm,
};

use crate::{TestNetns, name, pool};

/// The device group every real-kernel row tags its devices with, so that one
/// group delete clears them.
pub const GROUP: u32 = 4242;

/// The median of `samples` (sorted in place).
pub fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 50.0)
}

/// The `p`th percentile of `samples` (nearest rank; sorts in place).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

// ---------------------------------------------------------------- baselines

/// What any split into two processes adds to a call on this machine: a
/// round trip over a Unix socket to a thread that is busy for `busy` before
/// it answers (as a helper is while it makes a tap), `busy` taken off. One
/// sample per round trip; 8 bytes each way.
pub fn socket_round_trip(n: usize, busy: Duration) -> Vec<Duration> {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let (mut caller, mut server) = UnixStream::pair().expect("a socket pair");
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        while server.read_exact(&mut buf).is_ok() {
            let t0 = Instant::now();
            while t0.elapsed() < busy {
                std::hint::spin_loop();
            }
            if server.write_all(&buf).is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 8];
    let out = (0..n)
        .map(|i| {
            let t0 = Instant::now();
            caller.write_all(&(i as u64).to_le_bytes()).expect("write");
            caller.read_exact(&mut buf).expect("read");
            t0.elapsed().saturating_sub(busy)
        })
        .collect();
    drop(caller);
    let _ = echo.join();
    out
}

/// The limit of any actor design: an actor that does nothing.
pub struct Noop;

impl Actor for Noop {
    type Context = Context<Self>;
}

/// A message [`Noop`] answers with its own payload.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Ping(pub u64);

impl Handler<Ping> for Noop {
    type Result = u64;
    fn handle(&mut self, msg: Ping, _: &mut Context<Self>) -> u64 {
        msg.0
    }
}

/// The lock-based design (the seed's semantics): a mutex around a vector of
/// names; a miss hands back the fallback name, a release pushes a pool name
/// back while there is room.
pub struct MutexPool {
    entries: Mutex<Vec<String>>,
    size: usize,
}

impl MutexPool {
    /// A full pool of `size` names.
    pub fn new(size: usize) -> MutexPool {
        MutexPool {
            entries: Mutex::new((0..size).map(|i| format!("tap-pool-{i}")).collect()),
            size,
        }
    }

    /// The most recently pooled name, or the fallback.
    pub fn acquire(&self, fallback: &str) -> String {
        let mut entries = self.entries.lock().unwrap();
        match entries.pop() {
            Some(name) => name,
            None => fallback.to_owned(),
        }
    }

    /// Back to the pool while there is room.
    pub fn release(&self, name: String) {
        let mut entries = self.entries.lock().unwrap();
        if name.starts_with("tap-pool-") && entries.len() < self.size {
            entries.push(name);
        }
    }
}

// ------------------------------------------------------------ rows 1 and 7

/// The pool size for row 1: one client, one tap out at a time.
pub const PAIRS_POOL_SIZE: usize = 64;

/// The pool size for row 7. With reset on, a released tap is out of
/// circulation until its reset comes back (a batch's round trip to a kernel
/// worker, up to ~1 ms when 64 clients keep the pool's thread busy), so the
/// pool needs about `rate × turnaround` taps beyond those leased, or
/// Acquires miss and create.
pub const THROUGHPUT_POOL_SIZE: usize = 1024;

/// A warm pool on the simulated kernel, a no-op actor on the same arbiter,
/// and a mutex pool: rows 1 and 7. The warm path makes no kernel call, so
/// the kernel behind it does not matter, except for what a release queues:
/// a reset ([`Recycle::Reset`]) or a delete and a create ([`Recycle::Fresh`]).
pub struct WarmFixture {
    /// The system the pool and the no-op actor run on.
    pub sys: SystemRunner,
    /// The warm pool.
    pub pool: Addr<TapPoolActor>,
    /// The no-op actor: the limit of any actor design.
    pub noop: Addr<Noop>,
    /// The lock-based design.
    pub mutex: MutexPool,
}

impl WarmFixture {
    /// A pool of `size` warm taps.
    pub fn new(size: usize, recycle: Recycle) -> WarmFixture {
        let sys = actix_rt::System::new();
        let (pool, noop) = sys.block_on(async move {
            let pool = pool::spawn(
                {
                    let mut c = PoolConfig::default();
                    c.size = size;
                    c.recycle = recycle;
                    c
                },
                Arc::new(SimKernel::new()),
                2,
            );
            assert_eq!(pool.send(Warm).await.unwrap().created.len(), size);
            (pool, Noop.start())
        });
        WarmFixture {
            sys,
            pool,
            noop,
            mutex: MutexPool::new(size),
        }
    }

    /// How many Acquires so far found the pool empty (and created a tap).
    pub fn misses(&self) -> u64 {
        let pool = &self.pool;
        self.sys
            .block_on(async move { pool.send(tap_pool_actors::Stats).await.unwrap().misses })
    }

    /// `n` warm Acquire + Release pairs, each timed: (pair, acquire, release).
    pub fn pairs(&self, n: u64) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>) {
        let fallback = name("vm-bench");
        let pool = &self.pool;
        self.sys.block_on(async move {
            let mut pairs = Vec::with_capacity(n as usize);
            let mut acquires = Vec::with_capacity(n as usize);
            let mut releases = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let t0 = Instant::now();
                let lease = pool.send(Acquire::from(fallback)).await.unwrap().unwrap();
                let t1 = Instant::now();
                pool.send(Release::from(lease)).await.unwrap().unwrap();
                let t2 = Instant::now();
                acquires.push(t1 - t0);
                releases.push(t2 - t1);
                pairs.push(t2 - t0);
            }
            (pairs, acquires, releases)
        })
    }

    /// `n` bare round trips to the no-op actor, each timed.
    pub fn round_trips(&self, n: u64) -> Vec<Duration> {
        let noop = &self.noop;
        self.sys.block_on(async move {
            let mut out = Vec::with_capacity(n as usize);
            for i in 0..n {
                let t0 = Instant::now();
                black_box(noop.send(Ping(i)).await.unwrap());
                out.push(t0.elapsed());
            }
            out
        })
    }

    /// `n` batches of 100 mutex-pool pairs; each sample is one pair's share
    /// of its batch (a pair is too short to time alone).
    pub fn mutex_pairs(&self, n: u64) -> Vec<Duration> {
        (0..n)
            .map(|_| {
                let t0 = Instant::now();
                for _ in 0..100 {
                    let name = self.mutex.acquire(black_box("vm-bench"));
                    self.mutex.release(black_box(name));
                }
                t0.elapsed() / 100
            })
            .collect()
    }

    /// Acquire + Release pairs per second with `clients` concurrent tasks on
    /// the pool's arbiter, `total` pairs in all. Each client has its own
    /// fallback name, used if the pool runs dry (when resets lag behind).
    pub fn throughput(&self, clients: u64, total: u64) -> f64 {
        let pool = self.pool.clone();
        self.sys.block_on(async move {
            let done = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|c| {
                    let pool = pool.clone();
                    let done = Arc::clone(&done);
                    let fallback = name(&format!("vm-c{c}"));
                    actix_rt::spawn(async move {
                        while done.fetch_add(1, Ordering::Relaxed) < total {
                            let lease = pool.send(Acquire::from(fallback)).await.unwrap().unwrap();
                            pool.send(Release::from(lease)).await.unwrap().unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            total as f64 / start.elapsed().as_secs_f64()
        })
    }

    /// Pairs of bare round trips per second with `clients` concurrent tasks.
    pub fn noop_throughput(&self, clients: u64, total: u64) -> f64 {
        let noop = self.noop.clone();
        self.sys.block_on(async move {
            let done = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let noop = noop.clone();
                    let done = Arc::clone(&done);
                    actix_rt::spawn(async move {
                        while done.fetch_add(1, Ordering::Relaxed) < total {
                            black_box(noop.send(Ping(1)).await.unwrap());
                            black_box(noop.send(Ping(2)).await.unwrap());
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            total as f64 / start.elapsed().as_secs_f64()
        })
    }

    /// Mutex-pool pairs per second from `threads` OS threads.
    pub fn mutex_throughput(&self, threads: u64, total: u64) -> f64 {
        let done = AtomicU64::new(0);
        let mutex = &self.mutex;
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    while done.fetch_add(1, Ordering::Relaxed) < total {
                        let name = mutex.acquire(black_box("vm-bench"));
                        mutex.release(black_box(name));
                    }
                });
            }
        });
        total as f64 / start.elapsed().as_secs_f64()
    }
}

// ------------------------------------------------------------------ row 2

/// Warm `Acquire` latency with the kernel idle, then while it is busy with
/// `background` deletes (of fallback taps leased before the pool warmed). Returns
/// (idle samples, busy samples, whether the kernel was still busy when the
/// busy measurement ended).
///
/// Each sample is one `Acquire`; the tap goes straight back (untimed, reset
/// off, so the pool never runs dry).
pub fn busy_acquire(
    sys: &SystemRunner,
    pool: &Addr<TapPoolActor>,
    background: &[Lease],
    remaining: &dyn Fn() -> usize,
    n: u64,
) -> (Vec<Duration>, Vec<Duration>, bool) {
    sys.block_on(async move {
        let measure = |n: u64| async move {
            let mut out = Vec::with_capacity(n as usize);
            for i in 0..n {
                // A fallback name of its own: after a miss, the last one may
                // still be on its way out when the next Acquire comes.
                let fallback = name(&format!("vm-b{i}"));
                let t0 = Instant::now();
                let lease = pool.send(Acquire::from(fallback)).await.unwrap().unwrap();
                out.push(t0.elapsed());
                // Not awaited: with the kernel slow, a Release that finds
                // the pool full (a refill is under way) waits for a delete,
                // and the loop would time the kernel instead of Acquire.
                pool.do_send(Release::from(lease));
            }
            out
        };
        let idle = measure(n).await;
        for lease in background {
            pool.do_send(Release::from(lease));
        }
        // Let the pool hand the deletes to its kernel workers first.
        pool.send(Stats).await.unwrap();
        let busy = measure(n).await;
        // The background taps are not the pool's, so its stats do not count
        // their deletes: ask the kernel whether some are still there.
        let still_busy = remaining() > 0;
        (idle, busy, still_busy)
    })
}

/// Row 2 on the simulated kernel: every kernel call takes `latency` (50 ms).
pub fn busy_sim(n: u64, latency: Duration) -> (Vec<Duration>, Vec<Duration>, bool) {
    let sys = actix_rt::System::new();
    let sim = SimKernel::new();
    let (pool, background) = sys.block_on({
        let sim = sim.clone();
        async move {
            let pool = pool::spawn(
                {
                    let mut c = PoolConfig::default();
                    c.size = 64;
                    c
                },
                Arc::new(sim.clone()),
                2,
            );
            let background = lease_fallbacks(&pool, 100).await;
            pool.send(Warm).await.unwrap();
            // Resets have a lane of their own (row 8 measures them under a
            // storm of creates); the busy lanes are the ones a warm Acquire
            // must not wait on.
            for op in [SimOp::Create, SimOp::Delete, SimOp::List] {
                sim.set_latency(op, latency);
            }
            (pool, background)
        }
    });
    let remaining = || background.iter().filter(|l| sim.contains(l.name)).count();
    busy_acquire(&sys, &pool, &background, &remaining, n)
}

/// `n` fallback taps `x0`.. leased from `pool` before it warms (so each is
/// created): releasing them deletes them.
async fn lease_fallbacks(pool: &Addr<TapPoolActor>, n: usize) -> Vec<Lease> {
    let mut leases = Vec::with_capacity(n);
    for i in 0..n {
        let fallback = name(&format!("x{i}"));
        leases.push(
            pool.send(Acquire::from(fallback))
                .await
                .unwrap()
                .unwrap()
                .into_lease(),
        );
    }
    leases
}

// ------------------------------------------------------- the real kernel

/// Deletes every device of [`GROUP`] in `ns` with one request.
pub fn clear(ns: &TestNetns) {
    ns.with_kernel(|k| k.delete_group(GROUP).expect("group delete"));
}

/// The spec every real-kernel row uses: tagged with [`GROUP`], on `bridge`.
pub fn spec(bridge: Option<TapName>) -> TapSpec {
    {
        let mut t = TapSpec::default();
        t.bridge = bridge;
        t.device_group = Some(GROUP);
        t
    }
}

/// Row 2 on the real kernel: the deleter is busy with single deletes of
/// `background` taps (~20 ms each).
pub fn busy_real(
    ns: &TestNetns,
    n: u64,
    background: usize,
) -> (Vec<Duration>, Vec<Duration>, bool) {
    let sys = actix_rt::System::new();
    let (pool, leases) = sys.block_on(async {
        let config = {
            let mut c = PoolConfig::default();
            c.size = 64;
            c.tap = spec(None);
            c
        };
        let pool = pool::start(config, ns.factory(), 2);
        let leases = lease_fallbacks(&pool, background).await;
        pool.send(Warm).await.unwrap();
        (pool, leases)
    });
    let names: Vec<TapName> = leases.iter().map(|l| l.name).collect();
    let remaining = || {
        let links = ns.with_kernel(|k| k.list_taps().unwrap());
        links.iter().filter(|l| names.contains(&l.name)).count()
    };
    let out = busy_acquire(&sys, &pool, &leases, &remaining, n);
    sys.block_on(async {
        while remaining() > 0 {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        pool.send(Drain).await.unwrap();
    });
    clear(ns);
    out
}

/// Row 3, the pool: `n` cold `Acquire`s (pool size 0: create + up + master),
/// each timed.
pub fn cold_pool(ns: &TestNetns, bridge: TapName, n: usize) -> Vec<Duration> {
    cold_pool_on(ns, ns.factory(), bridge, n)
}

/// Row 3 on another kernel in `ns` (the helper's: `tap-pool-helper`
/// serving `ns`): the same pool, the same creates.
pub fn cold_pool_on(
    ns: &TestNetns,
    factory: Arc<dyn tap_pool_actors::kernel_api::KernelFactory>,
    bridge: TapName,
    n: usize,
) -> Vec<Duration> {
    let sys = actix_rt::System::new();
    let out = sys.block_on(async {
        let pool = pool::start(
            {
                let mut c = PoolConfig::default();
                c.size = 0;
                c.tap = spec(Some(bridge));
                c
            },
            factory,
            2,
        );
        // The first call opens the worker's socket in the namespace.
        // Kept (the taps are cleared together at the end).
        pool.send(Acquire::new("p-open").unwrap())
            .await
            .unwrap()
            .unwrap()
            .into_lease();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let fallback = name(&format!("p{i}"));
            let t0 = Instant::now();
            let lease = pool.send(Acquire::from(fallback)).await.unwrap().unwrap();
            out.push(t0.elapsed());
            lease.into_lease();
        }
        out
    });
    clear(ns);
    out
}

/// Row 3, the limit: the same kernel calls made directly in a loop.
pub fn cold_direct(ns: &TestNetns, bridge: TapName, n: usize) -> Vec<Duration> {
    let out = ns.with_kernel(|k| {
        (0..n)
            .map(|i| {
                let tap = name(&format!("d{i}"));
                let t0 = Instant::now();
                k.create_tap(tap, &spec(Some(bridge))).unwrap();
                t0.elapsed()
            })
            .collect()
    });
    clear(ns);
    out
}

/// Row 3, what many orchestrators do: `ip tuntap add` and `ip link set …
/// master … up` as subprocesses.
pub fn cold_subprocess(ns: &TestNetns, bridge: TapName, n: usize) -> Vec<Duration> {
    let group = GROUP.to_string();
    let out = ns.with_kernel(|_| {
        let ip = |args: &[&str]| {
            let status = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "ip {}", args.join(" "));
        };
        (0..n)
            .map(|i| {
                let tap = format!("s{i}");
                let t0 = Instant::now();
                ip(&[
                    "tuntap", "add", "dev", &tap, "mode", "tap", "vnet_hdr", "user", "0",
                ]);
                ip(&[
                    "link",
                    "set",
                    "dev",
                    &tap,
                    "group",
                    &group,
                    "master",
                    bridge.to_str().expect("a bridge name of text"),
                    "up",
                ]);
                t0.elapsed()
            })
            .collect()
    });
    clear(ns);
    out
}

/// Row 4: a pool with `workers` kernel workers warms `n` taps; returns the
/// warm-up's duration, and leaves the pool for [`drain`].
pub fn warm_up(
    sys: &SystemRunner,
    ns: &TestNetns,
    n: usize,
    workers: usize,
) -> (Addr<TapPoolActor>, Duration) {
    sys.block_on(async {
        let config = {
            let mut c = PoolConfig::default();
            c.size = n;
            c.create_window = 2 * workers;
            c.tap = spec(None);
            c
        };
        let pool = pool::start(config, ns.factory(), workers);
        let t0 = Instant::now();
        let report = pool.send(Warm).await.unwrap();
        let took = t0.elapsed();
        assert_eq!(report.created.len(), n, "{report:?}");
        (pool, took)
    })
}

/// Row 5: drains a warm pool (one group delete); returns how long it took.
pub fn drain(sys: &SystemRunner, pool: Addr<TapPoolActor>) -> Duration {
    sys.block_on(async {
        let t0 = Instant::now();
        let report = pool.send(Drain).await.unwrap();
        let took = t0.elapsed();
        assert!(report.bulk, "drain fell back to single deletes");
        took
    })
}

/// Row 4's limit: `n` creates in a direct loop. Leaves the taps for
/// [`delete_each`].
pub fn create_direct(ns: &TestNetns, n: usize) -> Duration {
    ns.with_kernel(|k| {
        let t0 = Instant::now();
        for i in 0..n {
            k.create_tap(name(&format!("d{i}")), &spec(None)).unwrap();
        }
        t0.elapsed()
    })
}

/// Row 5's baseline: deletes the `n` taps of [`create_direct`] with one
/// `RTM_DELLINK` each, calling `progress` every 100.
pub fn delete_each(ns: &TestNetns, n: usize, progress: impl Fn(usize) + Send + Sync) -> Duration {
    ns.with_kernel(|k| {
        let t0 = Instant::now();
        for i in 0..n {
            k.delete_link(name(&format!("d{i}")).into()).unwrap();
            if (i + 1) % 100 == 0 {
                progress(i + 1);
            }
        }
        t0.elapsed()
    })
}

/// Row 6's namespace: `links` links (foreign taps, 192 taps of the
/// orchestrator's VMs and 8 pool taps they hold). Returns the 200 taps.
pub fn seed_setup(ns: &TestNetns, links: usize) -> Vec<TapName> {
    let taps = 200.min(links);
    let used: Vec<TapName> = (0..taps)
        .map(|i| {
            name(&if i < 8 {
                format!("tap-pool-{i}")
            } else {
                format!("vm{i}")
            })
        })
        .collect();
    // The rest are taps too (this kernel has no dummy driver): the worst
    // case for the dump, which the pool filters for tun/tap devices.
    ns.with_kernel(|k| {
        for tap in &used {
            k.create_tap(*tap, &spec(None)).unwrap();
        }
        for i in 0..links - taps {
            k.create_tap(name(&format!("other{i}")), &spec(None))
                .unwrap();
        }
    });
    used
}

/// Row 6: times `seeds` `Seed`s, each by a fresh pool told that all of
/// `used` is in use (list + reconcile; nothing to adopt or delete, so every
/// run sees the same kernel).
pub fn seed(ns: &TestNetns, used: &[TapName], seeds: usize) -> Vec<Duration> {
    let sys = actix_rt::System::new();
    sys.block_on(async {
        // One pool, its kernel handles opened by a first Seed: every timed
        // Seed lists and reconciles the same kernel (the names it is told
        // are in use are known after the first).
        let pool = pool::spawn(PoolConfig::default(), ns.factory(), 2);
        pool.send(Seed {
            used: used.to_vec(),
        })
        .await
        .unwrap()
        .unwrap();
        let mut out = Vec::with_capacity(seeds);
        for _ in 0..seeds {
            let t0 = Instant::now();
            let report = pool
                .send(Seed {
                    used: used.to_vec(),
                })
                .await
                .unwrap()
                .unwrap();
            out.push(t0.elapsed());
            assert!(report.adopted.is_empty() && report.deleted.is_empty());
            assert!(report.missing.is_empty());
        }
        out
    })
}

// ------------------------------------------------------------------ row 8

/// Row 8: reset turnaround on the real kernel. A pool of one: its tap is
/// released, and an Acquire that finds the stock empty waits for that tap's
/// reset; each sample is the time from the Release to that Acquire's lease.
/// With `storm`, each Release follows `storm` fallback creates sent just
/// before it (callers that keep the kernel's create lane busy), so the reset
/// is asked for behind them.
pub fn reset_turnaround(ns: &TestNetns, n: usize, storm: usize) -> Vec<Duration> {
    let out = turnaround(ns.factory(), spec(None), n, storm);
    clear(ns);
    out
}

/// Row 8 on the simulated kernel: as [`reset_turnaround`], with creates
/// that take `create` (a wait, not CPU: the kernel's time, without the
/// 2 cores' contention that makes the real-kernel numbers noisy) and resets
/// that take no time.
pub fn reset_turnaround_sim(n: usize, storm: usize, create: Duration) -> Vec<Duration> {
    let sim = SimKernel::new();
    sim.set_latency(SimOp::Create, create);
    turnaround(Arc::new(sim), TapSpec::default(), n, storm)
}

fn turnaround(
    factory: Arc<dyn tap_pool_actors::kernel_api::KernelFactory>,
    tap: TapSpec,
    n: usize,
    storm: usize,
) -> Vec<Duration> {
    let sys = actix_rt::System::new();
    sys.block_on(async {
        let pool = pool::start(
            {
                let mut c = PoolConfig::default();
                c.size = 1;
                c.tap = tap;
                c
            },
            factory,
            2,
        );
        pool.send(Warm).await.unwrap();
        let mut lease = pool
            .send(Acquire::new("r-first").unwrap())
            .await
            .unwrap()
            .unwrap();
        let mut storms = Vec::new();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            for j in 0..storm {
                // Held until the end (a group delete clears them), so the
                // storm is creates only.
                storms.push(pool.send(Acquire::new(&format!("s{i}-{j}")).unwrap()));
            }
            let t0 = Instant::now();
            pool.send(Release::from(lease)).await.unwrap().unwrap();
            lease = pool
                .send(Acquire::new(&format!("r{i}")).unwrap())
                .await
                .unwrap()
                .unwrap();
            out.push(t0.elapsed());
            assert_eq!(lease.source, tap_pool_actors::LeaseSource::Pool);
        }
        for s in storms {
            s.await.unwrap().unwrap().into_lease();
        }
        out
    })
}

/// Row 9: what a lease costs the kernel under `recycle`, on a warm pool of
/// 4 taps: each sample is the time from a Release to the pool being settled
/// again (the released tap reset and pooled, or deleted and replaced).
pub fn recycle_cost(ns: &TestNetns, recycle: Recycle, n: usize) -> Vec<Duration> {
    let sys = actix_rt::System::new();
    let out = sys.block_on(async {
        let pool = pool::start(
            {
                let mut c = PoolConfig::default();
                c.size = 4;
                c.recycle = recycle;
                c.tap = spec(None);
                c
            },
            ns.factory(),
            2,
        );
        pool.send(Warm).await.unwrap();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let lease = pool
                .send(Acquire::new(&format!("c{i}")).unwrap())
                .await
                .unwrap()
                .unwrap()
                .into_lease();
            let t0 = Instant::now();
            pool.send(Release::from(lease)).await.unwrap().unwrap();
            pool.send(tap_pool_actors::Settle).await.unwrap().unwrap();
            out.push(t0.elapsed());
        }
        pool.send(Drain).await.unwrap();
        out
    });
    clear(ns);
    out
}
