//! Fallback names from VM ids (`VmNames`, `Acquire::for_vm`): valid, stable
//! across restarts, and a collision is a typed refusal that the next attempt
//! gets past.

use std::collections::HashMap;

use tap_pool_actors::sim::{DeviceKind, SimKernel};
use tap_pool_actors::{Acquire, LeaseSource, PoolConfig, Seed, VmNames};
use tap_pool_testkit::SimPool;

/// A pool that always creates (size 0), in device group 7, so that its
/// fallback taps are its own after a restart.
fn config() -> PoolConfig {
    let mut c = PoolConfig::default();
    c.size = 0;
    c.tap.device_group = Some(7);
    c
}

/// Two VM ids whose first candidates are one name (found among ~2^16 ids
/// with 8 digits).
fn colliding(names: &VmNames) -> (String, String) {
    let mut seen = HashMap::new();
    (0u32..)
        .map(|i| format!("vm-{i}"))
        .find_map(|id| {
            seen.insert(names.name(&id), id.clone())
                .map(|other| (other, id))
        })
        .unwrap()
}

#[actix_rt::test]
async fn a_collision_is_refused_and_the_next_attempt_gets_a_name_of_its_own() {
    let names = VmNames::new("abcdefg").unwrap();
    let (a, b) = colliding(&names);
    let p = SimPool::with(SimKernel::new(), config());
    let first = p
        .pool
        .send(Acquire::for_vm(&names, &a, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.name, names.name(&a));
    assert_eq!(first.source, LeaseSource::Created);

    let refused = p.pool.send(Acquire::for_vm(&names, &b, 0)).await.unwrap();
    let error = refused.expect_err("the same name twice");
    assert!(error.is_name_taken(), "{error:?}");
    assert_eq!(p.kernel_taps().len(), 1, "the refusal changed nothing");

    let second = p
        .pool
        .send(Acquire::for_vm(&names, &b, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.name, names.candidate(&b, 1));
    assert_ne!(second.name, first.name);
    assert_eq!(p.kernel_taps().len(), 2);
}

#[actix_rt::test]
async fn a_name_another_device_has_is_taken_too() {
    let names = VmNames::new("vm-").unwrap();
    let sim = SimKernel::new();
    sim.add_foreign(names.name("vm-x"), DeviceKind::Dummy)
        .unwrap();
    let p = SimPool::with(sim, config());
    let error = p
        .pool
        .send(Acquire::for_vm(&names, "vm-x", 0))
        .await
        .unwrap()
        .expect_err("the kernel has a device of that name");
    assert!(error.is_name_taken(), "{error:?}");
    let lease = p
        .pool
        .send(Acquire::for_vm(&names, "vm-x", 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.name, names.candidate("vm-x", 1));
}

#[actix_rt::test]
async fn after_a_restart_the_vm_id_alone_finds_its_tap_again() {
    let names = VmNames::new("vm-").unwrap();
    let vm = "4f9c7a0e-3a1d-4b8e-9c55-0f3e2d1c6b7a";
    let sim = SimKernel::new();
    let before = SimPool::with(sim.clone(), config());
    let lease = before
        .pool
        .send(Acquire::for_vm(&names, vm, 0))
        .await
        .unwrap()
        .unwrap()
        .into_lease();
    sim.set_in_use(lease.name, true); // the VM runs on
    drop(before);

    // A new run stored nothing but the VM's id.
    let after = SimPool::with(sim, config());
    let report = after
        .pool
        .send(Seed {
            used: vec![VmNames::new("vm-").unwrap().name(vm)],
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.held.len(), 1, "{report:?}");
    assert_eq!(report.held[0].name, lease.name);
}

#[test]
fn the_holder_label_is_the_vm_id_cut_to_its_bound() {
    let names = VmNames::new("vm-").unwrap();
    let acquire = Acquire::for_vm(&names, "vm-7", 0);
    assert_eq!(acquire.holder.unwrap().as_str(), "vm-7");
    let long = "é".repeat(200); // 400 bytes
    let acquire = Acquire::for_vm(&names, &long, 0);
    let holder = acquire.holder.unwrap();
    assert!(holder.as_str().len() <= tap_pool_actors::MAX_HOLDER_LEN);
    assert!(long.starts_with(holder.as_str()));
    assert_eq!(
        acquire.fallback,
        names.name(&long),
        "the name is of the whole id"
    );
    assert!(Acquire::for_vm(&names, "", 0).holder.is_none());
}
