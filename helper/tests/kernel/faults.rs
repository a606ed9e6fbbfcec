//! The helper and the pool die (`SIGKILL`) at bad moments: the pool gets
//! typed errors and retries, the helper comes back knowing (from its
//! ledger) what it made and for whom, and in the end every tap is one the
//! pool can find and delete through the helper.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tap_pool_testkit::{KernelTest, kernel_test};

use crate::child::SHUTDOWN_ENV;
use crate::scene::{GROUP, NOBODY, POOL, Peer, Scene, eventually};

pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(a_pool_rides_out_a_helper_restart_and_the_new_helper_knows_its_taps),
        kernel_test!(a_pool_killed_mid_warm_up_leaves_nothing_the_next_pool_cannot_drain),
        kernel_test!(random_kills_of_pool_and_helper_leave_only_taps_in_the_ledger),
        kernel_test!(a_helper_restart_while_the_pool_is_idle_fails_none_of_its_next_calls),
        kernel_test!(
            a_pool_shutting_down_without_its_helper_stops_at_its_deadline_and_leaks_nothing
        ),
        kernel_test!(a_pool_shutting_down_while_its_helper_restarts_deletes_its_taps),
    ]
}

/// Reruns the random kills with the same choices.
const SEED_ENV: &str = "TAP_POOL_HELPER_FAULTS_SEED";
const ROUNDS: usize = 25;

/// The tun/tap devices in the namespace: index to name.
fn taps_by_index(scene: &Scene) -> BTreeMap<u64, String> {
    scene
        .ns
        .links()
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "tun")
        .map(|l| {
            (
                l["ifindex"].as_u64().expect("an index"),
                l["ifname"].as_str().expect("a name").to_owned(),
            )
        })
        .collect()
}

/// The helper has written a create's intent and not yet its outcome.
fn create_under_way(scene: &Scene) -> bool {
    std::fs::read(scene.state().join("ledger")).is_ok_and(|ledger| {
        ledger
            .trim_ascii_end()
            .rsplit(|&b| b == b'\n')
            .next()
            .is_some_and(|last| last.starts_with(b"{\"intent\""))
    })
}

/// How many taps a pool's seed found of its own: adopted, or deleted as
/// more than it keeps.
fn found(seeded: &Value) -> usize {
    ["adopted", "deleted"]
        .iter()
        .map(|key| seeded["ok"][key].as_array().map_or(0, Vec::len))
        .sum()
}

/// The helper failure in a `calls` child's answer, or `Null`.
fn helper_failure(answer: &Value) -> Value {
    answer["err"]["Helper"]["failure"].clone()
}

fn a_pool_rides_out_a_helper_restart_and_the_new_helper_knows_its_taps() {
    let mut scene = Scene::new();
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3);
    let before = taps_by_index(&scene);
    let mut calls = scene.calls(NOBODY);
    scene.kill_helper();

    // A call after the helper died fails with a typed helper failure: the
    // connection it kept idle is seen closed and dropped, and no helper
    // takes a new one. So does the next.
    let first = json!({ "delete_group": GROUP }).to_string();
    let failed = calls.ask(&first);
    assert_eq!(
        helper_failure(&failed)["Connect"]["errno"],
        libc::ECONNREFUSED,
        "{failed}"
    );
    let failed = calls.ask(&first);
    assert_eq!(
        helper_failure(&failed)["Connect"]["errno"],
        libc::ECONNREFUSED,
        "{failed}"
    );

    // The pool leases an idle tap without the helper; its refill fails
    // with the helper's failure, and is retried.
    let lease = pool.ask("acquire vm-00000000000a");
    let token = lease["ok"]["token"].as_str().expect("a lease").to_owned();
    let warm = pool.ask("warm");
    let error = &warm["report"]["failure"]["error"]["Kernel"]["Helper"];
    assert_eq!(
        error["op"], "create",
        "the refill fails with the helper's failure: {warm}"
    );
    let failure = &error["failure"];
    assert!(
        failure == "Closed" || failure.get("Io").is_some() || failure.get("Connect").is_some(),
        "{warm}"
    );
    assert!(
        warm["report"]["retry_in"].is_string(),
        "and is retried: {warm}"
    );
    assert_eq!(
        taps_by_index(&scene),
        before,
        "nothing changed without the helper"
    );

    scene.start_helper();
    // The pool's retries refill it through the new helper.
    eventually(30, "the pool refills after the restart", || {
        let stats = pool.ask("stats");
        stats["ok"]["idle"] == 3
    });
    // The tap leased before the restart is reset by the new helper: it
    // knows it from its ledger.
    let released = pool.ask(&format!("release {token}"));
    assert!(released["ok"].is_string(), "{released}\n{}", scene.log());
    let settled = pool.ask("settle");
    assert_eq!(
        settled["ok"]["delete_failed"],
        0,
        "{settled}\n{}",
        scene.log()
    );
    // Some taps of the old helper's are still there for the drain.
    let now = taps_by_index(&scene);
    assert!(
        before.keys().any(|index| now.contains_key(index)),
        "before {before:?} now {now:?}"
    );
    // The raw client connects again on its next call, and its calls work.
    let listed = calls.ask(&json!({ "list": null }).to_string());
    assert_eq!(
        listed["ok"].as_array().map(Vec::len),
        Some(now.len()),
        "{listed}"
    );
    // The drain deletes every tap, the ones the old helper made included.
    let drained = pool.ask("drain");
    assert!(drained["ok"].is_object(), "{drained}");
    assert!(
        scene.taps().is_empty(),
        "{:?}\n{}",
        scene.taps(),
        scene.log()
    );
    pool.finish();
    calls.finish();
}

fn a_pool_killed_mid_warm_up_leaves_nothing_the_next_pool_cannot_drain() {
    let mut scene = Scene::new();
    let big = POOL.replace("size = 3", "size = 100");
    let mut pool = scene.child(NOBODY, "pool", &big);
    assert_eq!(pool.read()["started"], true);
    pool.send("warm");
    eventually(30, "the warm-up makes taps", || scene.taps().len() >= 5);
    // Killed while the helper makes a tap for it: the answer cannot be
    // sent.
    eventually(30, "a create under way", || create_under_way(&scene));
    pool.kill();
    let left = scene.taps().len();
    assert!(left < 100, "the pool was killed mid warm-up: {left} taps");
    assert!(
        scene.helper_alive(),
        "the helper died with its pool\n{}",
        scene.log()
    );

    // The next pool adopts what was made, and its drain deletes it all.
    let mut pool = scene.pool();
    let seeded = pool.ask("seed");
    assert!(found(&seeded) >= 5, "{seeded}\n{}", scene.log());
    // What the seed did not adopt it deleted, or the helper took back (a
    // create the dead pool left in flight): what is left is the adopted.
    let mut adopted: Vec<String> = seeded["ok"]["adopted"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    adopted.sort();
    eventually(20, "only the adopted taps are left", || {
        scene.taps() == adopted
    });
    let drained = pool.ask("drain");
    assert!(drained["ok"].is_object(), "{drained}");
    assert!(
        scene.taps().is_empty(),
        "{:?}\n{}",
        scene.taps(),
        scene.log()
    );
    assert!(scene.helper_alive());
    pool.finish();
    println!(
        "mid warm-up: {left} taps left by the killed pool, {} taken back by the helper",
        scene.log().matches("taken back").count()
    );
}

fn random_kills_of_pool_and_helper_leave_only_taps_in_the_ledger() {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("faults seed {seed} (rerun with {SEED_ENV}={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut scene = Scene::new();
    let config = POOL.replace("size = 3", "size = 24");
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    let mut look = |scene: &Scene| seen.extend(taps_by_index(scene));
    let pause = |rng: &mut fastrand::Rng, max: u64| {
        // A kill point, not a wait for anything.
        std::thread::sleep(Duration::from_millis(rng.u64(0..max)));
    };
    for round in 0..ROUNDS {
        if !scene.helper_alive() {
            scene.kill_helper();
            scene.start_helper();
        }
        let mut pool: Peer = scene.child(NOBODY, "pool", &config);
        let started = pool.read();
        assert_eq!(
            started["started"], true,
            "seed {seed} round {round}: {started}"
        );
        // Each acquire takes a tap and makes the pool refill: creates in
        // flight for most of the round.
        for line in ["seed", "warm", "acquire vm-00000000000a", "warm"] {
            pool.send(line);
        }
        for i in 0..rng.usize(0..12) {
            pool.send(&format!("acquire vm-{i:011x}b"));
        }
        if rng.u8(0..4) == 0 {
            pause(&mut rng, 300);
            look(&scene);
        } else {
            // Aim at a create: the ledger's last line is its intent until
            // the tap is made (or the wait ends: then anywhere), and then
            // at a point within it.
            let deadline = Instant::now() + Duration::from_secs(1);
            while !create_under_way(&scene) && Instant::now() < deadline {}
            let within = Instant::now() + Duration::from_micros(rng.u64(0..1000));
            while Instant::now() < within {}
        }
        match rng.u8(0..3) {
            0 => pool.kill(),
            1 => {
                scene.kill_helper();
                pause(&mut rng, 100);
                scene.start_helper();
                pause(&mut rng, 300);
                look(&scene);
                pool.kill();
            }
            _ => {
                if rng.bool() {
                    scene.kill_helper();
                    pool.kill();
                } else {
                    pool.kill();
                    scene.kill_helper();
                }
            }
        }
        look(&scene);
    }
    // A last helper start: it checks its ledger against the namespace and
    // writes it afresh. Every tap seen at any point is gone, or in it,
    // made for nobody.
    scene.kill_helper();
    scene.start_helper();
    let ledger = scene.ledger_taps();
    let left = taps_by_index(&scene);
    look(&scene);
    for (index, name) in seen.iter().filter(|(index, _)| left.contains_key(index)) {
        assert!(
            ledger
                .iter()
                .any(|&(_, i, uid)| i == *index && uid == u64::from(NOBODY)),
            "seed {seed}: {name} ({index}) is not in the ledger: no pool could delete it\n\
             ledger {ledger:?}\n{}",
            scene.log()
        );
    }
    // And the last pool finds and deletes every one of them.
    let mut pool = scene.pool();
    let seeded = pool.ask("seed");
    assert_eq!(
        found(&seeded),
        left.len(),
        "seed {seed}: {seeded}\nleft {left:?}"
    );
    let drained = pool.ask("drain");
    assert!(drained["ok"].is_object(), "seed {seed}: {drained}");
    assert!(
        scene.taps().is_empty(),
        "seed {seed}: left after the drain {:?} (seen {} taps)\n{}",
        scene.taps(),
        seen.len(),
        scene.log()
    );
    pool.finish();
    let log = scene.log();
    println!(
        "faults: {ROUNDS} rounds, {} taps seen, {} left for the last pool, \
         {} taken back by the helper, {} helper starts found a create cut short",
        seen.len(),
        left.len(),
        log.matches("taken back").count(),
        log.lines()
            .filter(|l| l.contains("ledger checked") && !l.contains("found=0"))
            .count(),
    );
}

/// A helper restarted while the pool made no call: the connections the pool
/// kept idle are dead, and its next calls take new ones instead of failing
/// on them (a release's reset, then a create).
fn a_helper_restart_while_the_pool_is_idle_fails_none_of_its_next_calls() {
    let mut scene = Scene::new();
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3, "{}", scene.log());
    let leases: Vec<Value> = (0..2)
        .map(|i| pool.ask(&format!("acquire vm-00000000000{i}"))["ok"].clone())
        .collect();
    // Both connections the resets and creates used are idle now.
    scene.kill_helper();
    scene.start_helper();
    for lease in &leases {
        let token = lease["token"].as_str().expect("a lease");
        let released = pool.ask(&format!("release {token}"));
        assert!(released["ok"].is_string(), "{released}");
    }
    let settled = pool.ask("settle");
    assert_eq!(settled["ok"]["failures"], 0, "{settled}\n{}", scene.log());
    assert_eq!(settled["ok"]["idle"], 3, "{settled}");
    assert_eq!(settled["ok"]["discarded"], 0, "{settled}");
    pool.finish();
    assert!(scene.taps().is_empty(), "{:?}", scene.taps());
}

/// A pool of [`POOL`] as nobody, with a shutdown deadline of `millis`,
/// started and warmed (three taps).
fn warm_pool_with_deadline(scene: &Scene, millis: u64) -> Peer {
    let mut pool = scene.child_with(NOBODY, "pool", POOL, &[(SHUTDOWN_ENV, &millis.to_string())]);
    let started = pool.read();
    assert_eq!(started["started"], true, "{started}\n{}", scene.log());
    assert_eq!(pool.ask("warm")["ok"], 3, "{}", scene.log());
    pool
}

/// docs/operations.md, "When the helper restarts": a pool that shuts down
/// while the helper is down retries its deletes until its shutdown
/// deadline, then exits; the taps it leaves are still the peer's in the
/// helper's ledger, and the next pool's `Seed` takes them back.
fn a_pool_shutting_down_without_its_helper_stops_at_its_deadline_and_leaks_nothing() {
    let mut scene = Scene::new();
    let deadline = Duration::from_secs(2);
    let pool = warm_pool_with_deadline(&scene, deadline.as_millis() as u64);
    let before = taps_by_index(&scene);
    assert_eq!(before.len(), 3, "{before:?}");
    scene.kill_helper();

    let shutting_down = Instant::now();
    let rest = pool.finish();
    let took = shutting_down.elapsed();
    assert_eq!(
        rest.last().map(|r| &r["shutdown"]),
        Some(&json!(true)),
        "{rest:?}"
    );
    // It tried until its deadline, and no longer (with room for a slow
    // machine: a hung exit would take for ever).
    assert!(took >= deadline, "gave up after {took:?}");
    assert!(
        took < deadline + Duration::from_secs(20),
        "the exit waited {took:?} on a dead helper"
    );
    assert_eq!(taps_by_index(&scene), before, "nothing could delete them");

    // The next pool, through the restarted helper, finds them as its own.
    scene.start_helper();
    let mut pool = scene.pool();
    let seeded = pool.ask("seed");
    assert_eq!(found(&seeded), 3, "{seeded}\n{}", scene.log());
    let drained = pool.ask("drain");
    assert!(drained["ok"].is_object(), "{drained}");
    pool.finish();
    assert!(scene.taps().is_empty(), "{:?}", scene.taps());
    assert!(scene.ledger_taps().is_empty(), "{:?}", scene.ledger_taps());
}

/// The same shutdown, with the helper back before the deadline: the pool's
/// retries reach it and its taps are deleted before it exits.
fn a_pool_shutting_down_while_its_helper_restarts_deletes_its_taps() {
    let mut scene = Scene::new();
    let pool = warm_pool_with_deadline(&scene, 60_000);
    scene.kill_helper();

    let shutting_down = Instant::now();
    let exited = std::thread::spawn(move || {
        let rest = pool.finish();
        (rest, Instant::now())
    });
    // Let the drain's first tries fail on the dead helper, then bring it
    // back.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        taps_by_index(&scene).len(),
        3,
        "deleted without the helper?"
    );
    scene.start_helper();
    let (rest, at) = exited.join().expect("the pool exited");
    assert_eq!(
        rest.last().map(|r| &r["shutdown"]),
        Some(&json!(true)),
        "{rest:?}"
    );
    assert!(
        at - shutting_down < Duration::from_secs(50),
        "the pool waited for its deadline, not for the helper"
    );
    assert!(
        scene.taps().is_empty(),
        "{:?}\n{}",
        scene.taps(),
        scene.log()
    );
    assert!(scene.ledger_taps().is_empty(), "{:?}", scene.ledger_taps());
}
