//! No tap is leaked or held twice wherever the process running the pool dies.
//!
//! Each round starts a child process that runs a pool in the test's network
//! namespace (warm-up, then clients acquiring, opening like a VMM, releasing
//! and re-warming), and kills it with `SIGKILL` at a random moment. Then a new
//! pool with the same configuration does what an orchestrator does after a
//! crash: `Seed` (the dead child's VMs are dead too, so nothing is `used`),
//! `Warm`, `Drain`. `ip -j -d link show` is the witness: every tap the child
//! left is persistent and tagged (a half-made one vanished with the process),
//! `Seed` found every one of them, the new pool's names never collide with
//! them, and after the drain no tun/tap device is left.
//!
//! The child is this same test, run again by itself in a new process: see
//! [`Child::spawn`].

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix::Addr;
use serde_json::Value;
use tap_pool_actors::{
    Acquire, Drain, LeaseSource, LinuxKernelFactory, Netns, PoolConfig, Release, Released, Seed,
    SeedReport, TapName, TapPoolActor, TapSpec, Warm,
};
use tap_pool_testkit::pool::{self, settled};
use tap_pool_testkit::{
    KernelTest, TestNetns, attach, flags, host_link_names, kernel_test, name, text,
};

/// This file's tests, for `main.rs`. Each runs alone: it starts child
/// processes (the pool that dies, `ip`), which get a copy of every descriptor,
/// including the file of a tap another test's pool is creating.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(async no_tap_is_leaked_or_held_twice_wherever_the_process_dies).alone(),
        kernel_test!(async drain_spares_a_tap_that_seed_left_alone).alone(),
    ]
}

/// This test's name, which the child is started with (`--exact`).
const THIS_TEST: &str = "crash::no_tap_is_leaked_or_held_twice_wherever_the_process_dies";
/// Set (to the namespace's path) only in the child: run the pool until killed.
const CHILD_ENV: &str = "TAP_POOL_CRASH_CHILD";
/// What the child does: `churn <seed>` or `hold`.
const MODE_ENV: &str = "TAP_POOL_CRASH_MODE";
/// Reruns the test with the same kill points.
const SEED_ENV: &str = "TAP_POOL_CRASH_SEED";

const PREFIX: &str = "crash-";
const GROUP: u32 = 4242;
const SIZE: usize = 4;
/// Child clients; each holds up to three taps, so demand exceeds the pool
/// and fallback taps are created and deleted all the time.
const CLIENTS: u64 = 4;
const CHURN_ROUNDS: u64 = 40;
/// Kill points are drawn from 0 to this, after the child is spawned: the
/// early ones land while it starts and warms up, the later ones in churn.
const MAX_DELAY: Duration = Duration::from_millis(150);

fn config() -> PoolConfig {
    {
        let mut c = PoolConfig::default();
        c.size = SIZE;
        c.prefix = PREFIX.to_owned();
        c.tap = {
            let mut t = TapSpec::default();
            t.device_group = Some(GROUP);
            t
        };
        c
    }
}

fn start(netns: Netns) -> Addr<TapPoolActor> {
    let factory = LinuxKernelFactory { netns: Some(netns) };
    pool::start(config(), Arc::new(factory), 2)
}

/// splitmix64: a small seeded generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

async fn no_tap_is_leaked_or_held_twice_wherever_the_process_dies() {
    if let Ok(netns) = std::env::var(CHILD_ENV) {
        return run_child(Netns::Path(netns.into())).await;
    }
    let started = Instant::now();
    let host_before = host_link_names();
    let seed = std::env::var(SEED_ENV)
        .ok()
        .map(|s| s.parse().expect("TAP_POOL_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64
        });
    println!("crash seed {seed} (rerun with {SEED_ENV}={seed})");
    let mut rng = Rng(seed);
    let ns = TestNetns::new();

    let mut found_pool = 0;
    let mut found_fallback = 0;
    for round in 0..CHURN_ROUNDS {
        let delay = Duration::from_micros(rng.below(MAX_DELAY.as_micros() as u64));
        let mut child = Child::spawn(&ns, &format!("churn {}", rng.next()), Stdio::null());
        actix_rt::time::sleep(delay).await;
        child.kill();
        let left = checked_leftovers(&ns);
        let pool_taps = left.iter().filter(|t| t.starts_with(PREFIX)).count();
        found_pool += pool_taps;
        found_fallback += left.len() - pool_taps;
        let report = recover(&ns, &left, None).await;
        println!(
            "round {round:2}: killed after {:6.1} ms; left {pool_taps} pool and {} fallback taps; \
             seed adopted {}, deleted {}",
            delay.as_secs_f64() * 1e3,
            left.len() - pool_taps,
            report.adopted.len(),
            report.deleted.len(),
        );
    }
    assert!(
        found_pool > 0 && found_fallback > 0,
        "the kills never caught the child with taps ({found_pool} pool, {found_fallback} \
         fallback): the test tested nothing"
    );

    // The child dies while its VMs hold taps open (`TUNSETIFF`, as a VMM
    // does): their files close with it, so they are idle and found too.
    let mut child = Child::spawn(&ns, "hold", Stdio::piped());
    let held = child.wait_for_holding();
    assert_eq!(held.len(), SIZE + 2);
    for tap in &held {
        assert!(in_use(&ns, tap), "{tap} is open in the child");
    }
    child.kill();
    let left = checked_leftovers(&ns);
    assert_eq!(
        left.iter().collect::<BTreeSet<_>>(),
        held.iter().collect::<BTreeSet<_>>(),
        "exactly the held taps are left"
    );
    for tap in &left {
        assert!(!in_use(&ns, tap), "{tap} was closed when its holder died");
    }

    // An unrelated process holds one of them open while the new pool seeds:
    // it is left alone, and never handed out.
    let outsider = left
        .iter()
        .find(|t| t.starts_with(PREFIX))
        .expect("the child held pool taps")
        .clone();
    let file = ns.attach(&outsider, true);
    let report = recover(&ns, &left, Some((&outsider, file))).await;
    println!(
        "hold round: left {left:?}; seed adopted {:?}, deleted {:?}, left alone {:?}",
        report.adopted, report.deleted, report.left_alone
    );

    assert_eq!(
        host_link_names(),
        host_before,
        "the host's links are untouched"
    );
    println!(
        "{} rounds in {:.1} s",
        CHURN_ROUNDS + 1,
        started.elapsed().as_secs_f64()
    );
}

/// `Seed` leaves alone a tap of the pool's device group that a process it
/// was not told about has open ("a live VM must never lose its device"), and
/// `Drain` must not take it with a group delete (which removes every device in
/// the group): it finds it among the group's members and deletes its own taps
/// one by one instead.
async fn drain_spares_a_tap_that_seed_left_alone() {
    let ns = TestNetns::new();
    // What a dead pool leaves: a persistent tap of its group, which a VM the
    // orchestrator does not know about still has open.
    ns.ip(&["tuntap", "add", "crash-0", "mode", "tap"]);
    ns.ip(&["link", "set", "crash-0", "group", &GROUP.to_string(), "up"]);
    let _vm = ns.attach("crash-0", true);
    let pool = start(ns.netns());
    let report = pool
        .send(Seed::default())
        .await
        .expect("pool alive")
        .expect("seed");
    assert_eq!(report.left_alone, [name("crash-0")], "{report:?}");
    pool.send(Drain).await.expect("pool alive");
    assert!(
        ns.link("crash-0").is_some(),
        "the drain deleted crash-0, which Seed left alone because a VM has it open"
    );
    assert!(in_use(&ns, "crash-0"));
}

/// The tun/tap devices in the namespace, each checked to be what a dead pool
/// may leave: persistent (a tap the child had not finished is gone with its
/// file) and in the pool's device group (so the next pool can find it).
fn checked_leftovers(ns: &TestNetns) -> Vec<String> {
    tun_links(ns)
        .iter()
        .map(|link| {
            let name = text(&link["ifname"]);
            let data = &link["linkinfo"]["info_data"];
            assert_eq!(data["type"], "tap", "{name}");
            assert_eq!(data["persist"], true, "{name} is a half-made tap");
            assert_eq!(text(&link["group"]), GROUP.to_string(), "{name}'s group");
            name
        })
        .collect()
}

fn tun_links(ns: &TestNetns) -> Vec<Value> {
    ns.links()
        .into_iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "tun")
        .collect()
}

fn tap_names(ns: &TestNetns) -> BTreeSet<String> {
    ns.tun_names().into_iter().collect()
}

/// Whether a process has the tap open: a tap has carrier exactly then.
fn in_use(ns: &TestNetns, tap: &str) -> bool {
    flags(&ns.link(tap).unwrap_or_else(|| panic!("{tap} exists"))).contains(&"LOWER_UP".to_owned())
}

/// What an orchestrator does after its pool process died: a new pool seeds
/// (the dead process's VMs are gone, so nothing is in use), warms, serves
/// every idle tap once, and drains. Checks that `Seed` accounts for every tap
/// in `left`, that the new names collide with none of them, that nobody gets
/// a tap twice, and that nothing is left.
///
/// `outsider` is a tap of `left` that the test holds open: `Seed` must leave
/// it alone and the pool never hand it out. Once the test closes it, a second
/// `Seed` finds it unused and deletes it. (It is closed before the drain
/// because the drain does not spare it: see
/// `drain_spares_a_tap_that_seed_left_alone`.)
async fn recover(ns: &TestNetns, left: &[String], outsider: Option<(&str, OwnedFd)>) -> SeedReport {
    let pool = start(ns.netns());
    let report = pool
        .send(Seed::default())
        .await
        .expect("pool alive")
        .expect("seed");
    assert!(report.missing.is_empty(), "{report:?}");
    let left_alone: Vec<TapName> = outsider.iter().map(|(t, _)| name(t)).collect();
    assert_eq!(report.left_alone, left_alone, "{report:?}");
    let found: BTreeSet<String> = report
        .adopted
        .iter()
        .chain(&report.deleted)
        .chain(&report.left_alone)
        .map(TapName::to_string)
        .collect();
    assert_eq!(
        found,
        left.iter().cloned().collect(),
        "seed found every tap the dead pool left: {report:?}"
    );
    assert!(report.adopted.len() <= SIZE, "{report:?}");
    assert!(
        report
            .adopted
            .iter()
            .all(|t| t.to_str().unwrap().starts_with(PREFIX)),
        "only pool taps are adopted: {report:?}"
    );

    let warm = pool.send(Warm).await.expect("pool alive");
    assert!(
        warm.failure.is_none(),
        "the new pool's names collide with nothing: {:?}",
        warm.failure
    );
    assert_eq!(warm.created.len() + report.adopted.len(), SIZE, "{warm:?}");
    for tap in &warm.created {
        assert!(!left.contains(&tap.to_string()), "{tap} reused a name");
    }

    // Every idle tap once: adopted ones too, never the one held open.
    settled(&pool, Duration::from_secs(10)).await;
    let mut leases = HashSet::new();
    let mut tokens = Vec::new();
    for i in 0..SIZE {
        let lease = pool
            .send(Acquire::new(&format!("after-{i}")).unwrap())
            .await
            .expect("pool alive")
            .expect("acquire");
        assert_eq!(lease.source, LeaseSource::Pool);
        assert!(leases.insert(lease.name), "{} handed out twice", lease.name);
        assert!(
            !left_alone.contains(&lease.name),
            "{} is open elsewhere",
            lease.name
        );
        assert!(
            !in_use(ns, lease.name.to_str().unwrap()),
            "{} is idle",
            lease.name
        );
        tokens.push(lease);
    }
    for lease in tokens {
        let released = pool
            .send(Release::from(lease))
            .await
            .expect("pool alive")
            .expect("release");
        assert_eq!(released, Released::Pooled);
    }
    settled(&pool, Duration::from_secs(10)).await;

    if let Some((tap, file)) = outsider {
        assert!(in_use(ns, tap), "{tap} is still there, and open");
        drop(file);
        let again = pool
            .send(Seed::default())
            .await
            .expect("pool alive")
            .expect("seed");
        assert_eq!(
            again.deleted,
            [name(tap)],
            "closed, it is deleted: {again:?}"
        );
        assert!(again.adopted.is_empty() && again.left_alone.is_empty());
    }

    let drain = pool.send(Drain).await.expect("pool alive");
    assert_eq!((drain.leased, drain.delete_failed), (0, 0), "{drain:?}");
    assert!(drain.bulk, "one group delete: {drain:?}");
    let stats = settled(&pool, Duration::from_secs(10)).await;
    assert_eq!((stats.idle, stats.leased, stats.vanished), (0, 0, 0));
    assert_eq!(tap_names(ns), BTreeSet::new(), "nothing leaked");
    report
}

/// The pool process that dies: this test binary run again in a child, by
/// itself, with [`CHILD_ENV`] naming the namespace.
///
/// Re-running the test (rather than a separate helper binary or an ignored
/// test) keeps the child's code next to the parent's and needs nothing but
/// the harness: `--exact` runs only this test, and the variable, set only in
/// the child, turns it into the child. The child never returns; it is killed.
struct Child {
    process: std::process::Child,
}

impl Child {
    fn spawn(ns: &TestNetns, mode: &str, stdout: Stdio) -> Child {
        let exe = std::env::current_exe().expect("the test binary's path");
        let process = Command::new(exe)
            .args(["--exact", THIS_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, ns.path())
            .env(MODE_ENV, mode)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child");
        Child { process }
    }

    /// Reads the child's stdout until it says which taps it holds open.
    fn wait_for_holding(&mut self) -> Vec<String> {
        let stdout = self.process.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // The harness's "test NAME ... " has no newline of its own.
                if let Some((_, names)) = line.split_once("HOLDING ") {
                    let _ = tx.send(names.split(' ').map(str::to_owned).collect());
                    return;
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the child reports the taps it holds")
    }

    /// Kills the child, which must still be running (a child that stopped
    /// on its own failed: its panic is on stderr), and reaps it: by then
    /// every file it had open is closed.
    fn kill(&mut self) {
        if let Some(status) = self.process.try_wait().expect("poll the child") {
            panic!("the child stopped before it was killed: {status}");
        }
        self.process.kill().expect("SIGKILL the child");
        self.process.wait().expect("reap the child");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A failing parent must not leave a child running.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The child's side: a pool in the namespace at `netns`, serving clients
/// until it is killed.
async fn run_child(netns: Netns) {
    // SAFETY: PR_SET_PDEATHSIG only sets a flag on this process. Should the
    // parent test die before killing us, we die with it.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // A failed assertion in a client task would end only that task: end the
    // child instead, so the parent sees it stopped before it was killed.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    let pool = start(netns.clone());
    let mode = std::env::var(MODE_ENV).expect("the child's mode");
    pool.send(Seed::default())
        .await
        .expect("pool alive")
        .expect("seed");
    match mode.split_once(' ') {
        Some(("churn", seed)) => churn(pool, netns, seed.parse().expect("a seed")),
        _ if mode == "hold" => hold(&pool, netns).await,
        _ => panic!("unknown mode {mode:?}"),
    }
    std::future::pending::<()>().await;
}

/// Warm-up, then clients that each acquire one to three taps, open them as a
/// VMM does, and release them, re-warming now and then. Each asserts that no
/// tap it is handed is held by another client.
fn churn(pool: Addr<TapPoolActor>, netns: Netns, seed: u64) {
    pool.do_send(Warm);
    let held: Rc<RefCell<HashSet<TapName>>> = Rc::default();
    for client in 0..CLIENTS {
        let (pool, netns, held) = (pool.clone(), netns.clone(), Rc::clone(&held));
        let mut rng = Rng(seed ^ client);
        actix_rt::spawn(async move {
            for round in 0u64.. {
                let mut vms = Vec::new();
                for i in 0..1 + rng.below(3) {
                    let fallback = format!("vm-{client}-{round}-{i}");
                    let lease = pool
                        .send(Acquire::new(&fallback).expect("fits"))
                        .await
                        .expect("pool alive")
                        .unwrap_or_else(|e| panic!("acquire {fallback}: {e}"));
                    assert!(
                        held.borrow_mut().insert(lease.name),
                        "{} handed out twice",
                        lease.name
                    );
                    let file = attach(netns.clone(), lease.name.to_str().unwrap(), true);
                    vms.push((lease, file));
                }
                actix_rt::task::yield_now().await;
                for (lease, file) in vms {
                    let tap = lease.name;
                    drop(file);
                    held.borrow_mut().remove(&tap);
                    let released = pool
                        .send(Release::from(lease))
                        .await
                        .expect("pool alive")
                        .unwrap_or_else(|e| panic!("release {tap}: {e}"));
                    assert_ne!(released, Released::Vanished, "{tap}");
                }
                if round % 4 == 0 {
                    let warm = pool.send(Warm).await.expect("pool alive");
                    assert!(warm.failure.is_none(), "{:?}", warm.failure);
                }
            }
        });
    }
}

/// Warm-up, then VMs that hold every pool tap and two fallback taps open;
/// says which on stdout.
async fn hold(pool: &Addr<TapPoolActor>, netns: Netns) {
    let warm = pool.send(Warm).await.expect("pool alive");
    assert!(warm.failure.is_none(), "{:?}", warm.failure);
    let mut vms: Vec<(TapName, OwnedFd)> = Vec::new();
    for i in 0..SIZE + 2 {
        let lease = pool
            .send(Acquire::new(&format!("vm-held-{i}")).expect("fits"))
            .await
            .expect("pool alive")
            .expect("acquire")
            .into_lease();
        vms.push((
            lease.name,
            attach(netns.clone(), lease.name.to_str().unwrap(), true),
        ));
    }
    let names: Vec<String> = vms.iter().map(|(t, _)| t.to_string()).collect();
    println!("HOLDING {}", names.join(" "));
    std::future::pending::<()>().await;
}
