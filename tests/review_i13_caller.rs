//! A careless orchestrator author against issue 13's API (`PoolHandle`,
//! holder labels, serde and TOML, `VmNames`): each test is a mistake such a
//! caller makes, and what the library promises then.

use std::sync::Arc;

use tap_pool_actors::sim::SimKernel;
use tap_pool_actors::{
    Acquire, Error, LeaseSource, PoolConfig, PoolError, PoolHandle, Release, TapName, TapPoolActor,
    VmNames,
};

fn spawn(sim: &SimKernel, config: PoolConfig) -> PoolHandle {
    TapPoolActor::builder(config)
        .kernel(Arc::new(sim.clone()))
        .spawn()
        .expect("the pool starts")
}

/// `VmNames` built with the pool's own prefix: its docs once said every
/// name would then be refused as the pool's own, but only the few whose
/// digits happened to be all decimal were (about one id in 300 with
/// `"vm-"`), as `FallbackIsPoolName`, which the collision advice
/// (`NameInUse`, `Exists`: take the next candidate) does not cover. An
/// orchestrator that tried a few VMs saw it work and then lost one VM start
/// in a few hundred. Now no `VmNames` name is ever a pool name, whatever
/// the pool's prefix: every VM's first candidate is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_names_under_the_pools_own_prefix_are_never_refused_as_pool_names() {
    let sim = SimKernel::new();
    let mut config = PoolConfig::default();
    config.size = 0; // every Acquire creates its fallback
    config.prefix = "vm-".to_owned();
    let pool = spawn(&sim, config);
    let names = VmNames::new("vm-").unwrap();
    for n in 0..1500 {
        let id = format!("4f9c7a0e-{n:04}");
        let name = names.name(&id);
        let lease = pool
            .acquire(Acquire::from(name))
            .await
            .unwrap_or_else(|e| panic!("VM {id}'s name {name} refused: {e}"));
        assert_eq!((lease.name, lease.source), (name, LeaseSource::Created));
        pool.release(Release::from(lease)).await.unwrap();
    }
    assert!(sim.taps().is_empty());
    pool.shutdown().await;
}

/// What `Acquire` refuses as the pool's own is a pool name, the prefix and
/// a decimal index, as its docs now say: another name that merely starts
/// with the prefix is a fallback like any other.
#[tokio::test]
async fn acquire_refuses_pool_names_not_every_name_with_the_prefix() {
    let sim = SimKernel::new();
    let mut config = PoolConfig::default();
    config.size = 0;
    config.prefix = "vm-".to_owned();
    let pool = spawn(&sim, config);
    let refused = TapName::new("vm-7").unwrap();
    assert!(matches!(
        pool.acquire(Acquire::from(refused)).await,
        Err(Error::Pool(PoolError::FallbackIsPoolName { name })) if name == refused
    ));
    let lease = pool.acquire(Acquire::new("vm-x").unwrap()).await.unwrap();
    assert_eq!(lease.name, "vm-x");
    drop(lease);
    pool.shutdown().await;
    assert!(sim.taps().is_empty());
}
