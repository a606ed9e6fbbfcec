//! `Seed`: after a restart, the index starts above every pool index in use.

mod support;

use support::{SimPool, name};
use tap_pool_actors::{PoolError, Released, Seed, TapState};

#[actix_rt::test]
async fn seed_starts_the_index_above_used_pool_names_and_ignores_others() {
    let p = SimPool::start(2);
    let used = vec![
        name("tap-pool-7"),
        name("vm-x"),
        name("tap-pool-3"),
        name("tap-pool-0012"), // not canonical: not a pool name
    ];
    let report = p.pool.send(Seed { used }).await.unwrap();
    assert_eq!(report.next_index, 8);
    let warm = p.warm().await;
    let mut created = warm.created.clone();
    created.sort();
    assert_eq!(created, [name("tap-pool-8"), name("tap-pool-9")]);
}

#[actix_rt::test]
async fn seed_never_lowers_the_index() {
    let p = SimPool::start(1);
    p.warm().await; // tap-pool-0
    let report = p
        .pool
        .send(Seed {
            used: vec![name("tap-pool-0")],
        })
        .await
        .unwrap();
    assert_eq!(report.next_index, 1);
    let report = p.pool.send(Seed { used: vec![] }).await.unwrap();
    assert_eq!(report.next_index, 1);
}

#[actix_rt::test]
async fn seeded_names_are_held_by_their_callers() {
    let p = SimPool::start(1);
    p.pool
        .send(Seed {
            used: vec![name("tap-pool-4"), name("vm-x")],
        })
        .await
        .unwrap();
    // A fallback equal to a VM's tap is refused.
    assert_eq!(
        p.acquire("vm-x").await.unwrap_err(),
        PoolError::NameInUse {
            name: name("vm-x"),
            state: TapState::Leased
        }
    );
    // The VM's pool tap, released, goes back to the pool.
    assert_eq!(
        p.release(name("tap-pool-4")).await.unwrap(),
        Released::Pooled
    );
    assert_eq!(p.stats().await.idle, 1);
}
