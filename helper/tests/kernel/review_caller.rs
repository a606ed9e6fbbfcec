//! A careless caller's review of the helper split: what goes wrong for an
//! orchestrator author or an operator who uses it as documented.
//!
//! - A pool's kernel workers (three lanes of `workers`) against a rule's
//!   `max_connections`: a pool with more workers than the rule has
//!   connections must still make, reset and delete its taps (calls wait
//!   for a connection), not starve a lane for good.
//! - An operator changes a rule's namespace and restarts the helper: the
//!   taps it made in the old one are forgotten, and it says how many.

use tap_pool_testkit::{KernelTest, TestNetns, kernel_test};

use crate::child::WORKERS_ENV;
use crate::scene::{NOBODY, POOL, Scene, policy_with};

pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(
            a_pool_with_more_workers_than_its_rule_has_connections_still_resets_and_drains
        ),
        kernel_test!(a_policy_that_drops_a_namespace_says_how_many_taps_the_helper_forgets),
    ]
}

/// Three lanes of eight workers, four connections: every lane must get
/// its turn. (With a connection per worker for good, the creates and
/// resets took all four and every delete was refused `Busy`: the drain
/// deleted nothing and the taps stayed.)
fn a_pool_with_more_workers_than_its_rule_has_connections_still_resets_and_drains() {
    let scene = Scene::with_policy(&policy_with("max_connections = 4"));
    let mut pool = scene.child_with(NOBODY, "pool", POOL, &[(WORKERS_ENV, "8")]);
    let started = pool.read();
    assert_eq!(started["started"], true, "{started}\n{}", scene.log());
    let warm = pool.ask("warm");
    assert_eq!(warm["ok"], 3, "{warm}\n{}", scene.log());
    let mut leases = Vec::new();
    for i in 0..3 {
        let lease = pool.ask(&format!("acquire vm-0000000000{i}a"));
        let token = lease["ok"]["token"].as_str();
        leases.push(token.unwrap_or_else(|| panic!("{lease}")).to_owned());
    }
    for token in &leases {
        let released = pool.ask(&format!("release {token}"));
        assert!(released["ok"].is_string(), "{released}");
    }
    let settled = pool.ask("settle");
    assert_eq!(settled["ok"]["idle"], 3, "{settled}");
    assert_eq!(settled["ok"]["hits"], 3, "{settled}");
    assert_eq!(settled["ok"]["failures"], 0, "{settled}\n{}", scene.log());
    let drained = pool.ask("drain");
    assert_eq!(
        drained["ok"]["delete_failed"],
        0,
        "{drained}\n{}",
        scene.log()
    );
    assert!(scene.taps().is_empty(), "{:?}", scene.taps());
    pool.finish();
}

/// The policy's namespace for nobody is changed while the helper is
/// stopped: at its next start the helper forgets the three taps it made in
/// the old one and says so at `warn`, and they are not the peer's any more.
fn a_policy_that_drops_a_namespace_says_how_many_taps_the_helper_forgets() {
    let mut scene = Scene::new();
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3, "{}", scene.log());
    pool.kill();
    scene.kill_helper();
    let other = TestNetns::new();
    let path = scene.dir.path().join("policy.toml");
    let policy = std::fs::read_to_string(&path).expect("the policy");
    std::fs::write(&path, policy.replace(&scene.ns.path(), &other.path())).expect("rewrite");
    scene.start_helper();
    let log = scene.log();
    assert!(
        log.lines().any(|line| line.contains("WARN")
            && line.contains("no longer names")
            && line.contains("forgotten=3")),
        "{log}"
    );
    assert_eq!(scene.taps().len(), 3, "left in the old namespace");
    drop(other);
    // The ledger's file, as the helper wrote it at its start, holds none
    // of them as nobody's.
    assert!(scene.ledger_taps().is_empty(), "{:?}", scene.ledger_taps());
}
