//! Many clients, many cycles, on the real kernel: 64 client tasks share one
//! pool of 32 taps for 100,000 acquire/release cycles. Nobody ever holds a
//! tap another client holds, and at the end the pool's counts are exactly
//! what the kernel (`ip -j -d link show`) holds.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tap_pool_actors::{
    Acquire, Drain, LeaseSource, PoolConfig, Release, Released, TapName, TapSpec, Warm,
};
use tap_pool_testkit::pool::settled;
use tap_pool_testkit::{KernelTest, TestNetns, flags, host_link_names, kernel_test, text};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![kernel_test!(async sixty_four_clients_share_the_pool_for_100k_cycles_on_the_real_kernel)]
}

const CLIENTS: u64 = 64;
const CYCLES: u64 = 100_000;
const SIZE: usize = 32;
const PREFIX: &str = "load-";
const GROUP: u32 = 4243;
const BRIDGE: &str = "br-load";

async fn sixty_four_clients_share_the_pool_for_100k_cycles_on_the_real_kernel() {
    let host_before = host_link_names();
    let ns = TestNetns::new();
    ns.add_bridge(BRIDGE);
    let config = {
        let mut c = PoolConfig::default();
        c.size = SIZE;
        c.prefix = PREFIX.to_owned();
        c.tap = {
            let mut t = TapSpec::default();
            t.bridge = Some(TapName::new(BRIDGE).unwrap());
            t.device_group = Some(GROUP);
            t
        };
        c
    };
    let pool = ns.start_pool(config);
    let warm = pool.send(Warm).await.expect("pool alive");
    assert!(warm.failure.is_none(), "{:?}", warm.failure);
    assert_eq!(warm.created.len(), SIZE);

    let started = Instant::now();
    // One thread runs the clients and the pool, so plain shared cells do.
    let next_cycle = Rc::new(Cell::new(0u64));
    let held: Rc<RefCell<HashSet<TapName>>> = Rc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (pool, next_cycle, held) = (pool.clone(), next_cycle.clone(), held.clone());
            actix_rt::spawn(async move {
                let mut created = 0u64;
                for i in 0u64.. {
                    let cycle = next_cycle.get();
                    if cycle == CYCLES {
                        break;
                    }
                    next_cycle.set(cycle + 1);
                    let fallback = format!("l{client}-{i}");
                    let lease = pool
                        .send(Acquire::new(&fallback).expect("fits"))
                        .await
                        .expect("pool alive")
                        .unwrap_or_else(|e| panic!("acquire {fallback}: {e}"));
                    assert!(
                        held.borrow_mut().insert(lease.name),
                        "{} is held by two clients at once",
                        lease.name
                    );
                    if lease.source == LeaseSource::Created {
                        created += 1;
                    }
                    // Let the other clients run while this one holds its tap.
                    if cycle % 2 == 0 {
                        actix_rt::task::yield_now().await;
                    }
                    held.borrow_mut().remove(&lease.name);
                    let tap = lease.name;
                    let released = pool
                        .send(Release::from(lease))
                        .await
                        .expect("pool alive")
                        .unwrap_or_else(|e| panic!("release {tap}: {e}"));
                    assert_ne!(released, Released::Vanished, "{tap}");
                }
                created
            })
        })
        .collect();
    let mut created_for_clients = 0;
    for client in clients {
        created_for_clients += client.await.expect("client finished");
    }
    let elapsed = started.elapsed();
    assert_eq!(next_cycle.get(), CYCLES);
    assert!(held.borrow().is_empty());

    let stats = settled(&pool, Duration::from_secs(30)).await;
    println!(
        "{CYCLES} acquire/release pairs by {CLIENTS} clients in {:.2} s: {:.0} pairs/s; {stats:?}",
        elapsed.as_secs_f64(),
        CYCLES as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(stats.hits + stats.misses, CYCLES, "{stats:?}");
    assert_eq!(stats.misses, created_for_clients, "{stats:?}");
    assert_eq!(
        (
            stats.leased,
            stats.delete_failed,
            stats.failures,
            stats.vanished
        ),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(
        stats.created - stats.deleted,
        stats.idle as u64,
        "every tap created and not deleted is idle: {stats:?}"
    );
    assert!(stats.idle <= SIZE, "{stats:?}");

    // The kernel holds exactly the idle taps, each as the pool made it.
    let taps: Vec<_> = ns
        .links()
        .into_iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "tun")
        .collect();
    assert_eq!(
        taps.len(),
        stats.idle,
        "the kernel holds the idle taps only"
    );
    let names: HashSet<String> = taps.iter().map(|l| text(&l["ifname"])).collect();
    assert_eq!(names.len(), taps.len());
    for tap in &taps {
        let name = text(&tap["ifname"]);
        assert!(name.starts_with(PREFIX), "{name} is a pool tap");
        assert_eq!(tap["linkinfo"]["info_data"]["persist"], true, "{name}");
        assert_eq!(tap["master"], BRIDGE, "{name}");
        assert_eq!(text(&tap["group"]), GROUP.to_string(), "{name}");
        let flags = flags(tap);
        assert!(flags.contains(&"UP".to_owned()), "{name} is up: {flags:?}");
    }

    let drain = pool.send(Drain).await.expect("pool alive");
    assert_eq!(
        (drain.deleted, drain.bulk, drain.leased, drain.delete_failed),
        (stats.idle, true, 0, 0),
        "{drain:?}"
    );
    let remaining: Vec<_> = ns
        .links()
        .into_iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "tun")
        .map(|l| text(&l["ifname"]))
        .collect();
    assert!(remaining.is_empty(), "left after the drain: {remaining:?}");
    assert_eq!(
        host_link_names(),
        host_before,
        "the host's links are untouched"
    );
}
