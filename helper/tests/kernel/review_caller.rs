//! A careless caller's review of the helper split: what goes wrong for an
//! orchestrator author or an operator who uses it as documented.
//!
//! - A pool's kernel workers (three lanes of `workers`) against a rule's
//!   `max_connections`: a pool with more workers than the rule has
//!   connections must still make, reset and delete its taps (calls wait
//!   for a connection), not starve a lane for good.

use tap_pool_testkit::{KernelTest, kernel_test};

use crate::child::WORKERS_ENV;
use crate::scene::{NOBODY, POOL, Scene, policy_with};

pub fn tests() -> Vec<KernelTest> {
    vec![kernel_test!(
        a_pool_with_more_workers_than_its_rule_has_connections_still_resets_and_drains
    )]
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
