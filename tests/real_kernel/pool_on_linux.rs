//! The pool's rules through the actors, again on the real kernel: each test in
//! a network namespace of its own, with `ip -j -d link show` as the witness.

use actix::Addr;
use serde_json::Value;
use tap_pool_actors::{
    Acquire, Drain, Error, KernelError, LeaseSource, LeaseToken, PoolConfig, PoolError, Recycle,
    Released, Seed, Stats, TapPoolActor, TapSpec, Warm,
};
use tap_pool_testkit::pool::{acquire, release, release_token, settle, stats_until};
use tap_pool_testkit::{KernelTest, TestNetns, assert_not_in_host, flags, kernel_test, name, text};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(async warm_acquire_release_and_refill_on_the_real_kernel),
        kernel_test!(async pool_size_zero_creates_and_deletes_every_time),
        kernel_test!(async seed_starts_above_the_kernels_pool_names_and_no_input_pushes_the_index),
        kernel_test!(async a_fallback_name_that_exists_is_ebusy_and_nothing_is_leaked_or_touched),
        kernel_test!(async a_missing_bridge_fails_the_warm_up_and_leaves_nothing),
        kernel_test!(async bad_releases_get_typed_errors_and_touch_nothing),
        kernel_test!(async a_reused_tap_is_reset_to_its_pooled_configuration),
        kernel_test!(async an_idle_tap_deleted_with_ip_is_dropped_and_replaced),
        kernel_test!(async drain_deletes_the_idle_pool_in_one_group_delete_and_spares_leased_taps),
        kernel_test!(async drain_never_bulk_deletes_a_group_holding_someone_elses_device),
        kernel_test!(async acquires_whose_callers_gave_up_leave_no_lease_and_no_tap),
        kernel_test!(async seed_deletes_do_not_warm_a_pool_nobody_warmed),
        kernel_test!(async a_renamed_idle_tap_leaves_the_pool_and_its_old_name_is_never_touched),
        kernel_test!(async a_renamed_leased_tap_is_deleted_on_release_and_its_old_name_never_touched),
        kernel_test!(async seed_adopts_only_taps_made_exactly_as_the_spec_says),
        kernel_test!(async a_fresh_pool_never_hands_out_a_tap_twice),
    ]
}

const OWNER: u32 = 54321;
const GROUP: u32 = 54322;

fn start(ns: &TestNetns, size: usize, tap: TapSpec) -> Addr<TapPoolActor> {
    ns.start_pool({
        let mut c = PoolConfig::default();
        c.size = size;
        c.tap = tap;
        c
    })
}

/// Asserts what `ip -j -d` shows of a pooled tap made with `configured()`.
fn assert_configured(link: &Value) {
    let name = text(&link["ifname"]);
    let data = &link["linkinfo"]["info_data"];
    assert_eq!(data["type"], "tap", "{name}");
    assert_eq!(data["persist"], true, "{name}");
    assert_eq!(data["vnet_hdr"], true, "{name}");
    assert_eq!(text(&data["user"]), OWNER.to_string(), "{name}");
    assert_eq!(text(&data["group"]), GROUP.to_string(), "{name}");
    assert_eq!(link["mtu"], 1400, "{name}");
    assert_eq!(link["master"], "br-tp", "{name}");
    let flags = flags(link);
    assert!(flags.contains(&"UP".to_owned()), "{name} is up: {flags:?}");
}

fn configured() -> TapSpec {
    {
        let mut t = TapSpec::default();
        t.owner = Some(OWNER);
        t.group = Some(GROUP);
        t.mtu = Some(1400);
        t.bridge = Some(name("br-tp"));
        t
    }
}

async fn warm_acquire_release_and_refill_on_the_real_kernel() {
    let ns = TestNetns::new();
    ns.add_bridge("br-tp");
    let pool = start(&ns, 3, configured());

    let report = pool.send(Warm).await.unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert_eq!(report.created.len(), 3);
    for tap in &report.created {
        assert_configured(&ns.link(tap.to_str().unwrap()).expect("warm tap exists"));
    }
    assert_eq!(ns.tun_names(), ["tap-pool-0", "tap-pool-1", "tap-pool-2"]);

    // Hits, LIFO, then a fallback create.
    let a = acquire(&pool, "vm-a").await.unwrap();
    assert_eq!(a.source, LeaseSource::Pool);
    assert_eq!(release(&pool, &a).await.unwrap(), Released::Pooled);
    assert_eq!(settle(&pool).await.resetting, 0);
    assert!(ns.link(a.name.to_str().unwrap()).is_some());
    assert_eq!(acquire(&pool, "vm-a").await.unwrap().name, a.name);
    acquire(&pool, "vm-b").await.unwrap();
    acquire(&pool, "vm-c").await.unwrap();
    let d = acquire(&pool, "vm-d").await.unwrap();
    assert_eq!((d.name, d.source), (name("vm-d"), LeaseSource::Created));
    assert_configured(&ns.link("vm-d").expect("fallback tap exists"));

    // A fallback tap is deleted on release, and the delete refills the pool.
    assert_eq!(release(&pool, &d).await.unwrap(), Released::Deleted);
    assert!(ns.link("vm-d").is_none(), "deleted from the kernel");
    let s = settle(&pool).await;
    assert_eq!(s.idle, 3, "refilled");
    assert_eq!((s.leased, s.creating, s.hits, s.misses), (3, 0, 4, 1));
    assert_eq!(ns.tun_names().len(), 6);
    assert_not_in_host(&["tap-pool-0", "tap-pool-3", "vm-d"]);
}

async fn pool_size_zero_creates_and_deletes_every_time() {
    let ns = TestNetns::new();
    let pool = start(&ns, 0, TapSpec::default());
    assert!(pool.send(Warm).await.unwrap().created.is_empty());
    assert!(ns.tun_names().is_empty());
    let lease = acquire(&pool, "vm-z").await.unwrap();
    assert_eq!(lease.source, LeaseSource::Created);
    let link = ns.link("vm-z").expect("created");
    // The default owner is the pool's own uid: never an open tap.
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let user = text(&link["linkinfo"]["info_data"]["user"]);
    assert!(user == me.to_string() || user == "root", "owner {user}");
    assert_eq!(release(&pool, &lease).await.unwrap(), Released::Deleted);
    assert!(ns.tun_names().is_empty());
}

async fn seed_starts_above_the_kernels_pool_names_and_no_input_pushes_the_index() {
    let ns = TestNetns::new();
    // A VM of an earlier run holds tap-pool-41.
    ns.with_kernel(|k| k.create_tap(name("tap-pool-41"), &TapSpec::default()))
        .unwrap();
    let pool = start(&ns, 2, TapSpec::default());
    // Names the kernel does not have (one at the very end of the index
    // space) are reported missing and push nothing.
    let report = pool
        .send(Seed {
            used: vec![name("tap-pool-41"), name("vm-x"), name("tap-pool-999999")],
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.next_index, 42);
    assert_eq!(report.missing, [name("tap-pool-999999"), name("vm-x")]);
    assert_eq!(report.held.len(), 1);
    pool.send(Warm).await.unwrap();
    assert_eq!(
        ns.tun_names(),
        ["tap-pool-41", "tap-pool-42", "tap-pool-43"]
    );
}

async fn a_fallback_name_that_exists_is_ebusy_and_nothing_is_leaked_or_touched() {
    let ns = TestNetns::new();
    ns.add_bridge("br-tp");
    ns.ip(&["tuntap", "add", "vm-busy", "mode", "tap"]);
    let before = ns.link("vm-busy").unwrap();
    let pool = start(&ns, 1, configured());
    let err = acquire(&pool, "vm-busy").await.unwrap_err();
    assert_eq!(
        err,
        Error::Pool(PoolError::Kernel(KernelError::Exists {
            name: name("vm-busy")
        }))
    );
    // The other owner's device is exactly as it was: not adopted, not
    // configured, not deleted.
    let after = ns.link("vm-busy").unwrap();
    assert_eq!(after["flags"], before["flags"]);
    assert_eq!(after.get("master"), before.get("master"));
    assert_eq!(after["linkinfo"], before["linkinfo"]);
    assert_eq!(ns.tun_names(), ["vm-busy"]);
    let s = pool.send(Stats).await.unwrap();
    assert_eq!((s.leased, s.creating, s.failures), (0, 0, 1));
}

async fn a_missing_bridge_fails_the_warm_up_and_leaves_nothing() {
    let ns = TestNetns::new();
    let pool = start(&ns, 2, configured()); // br-tp is never made
    let report = pool.send(Warm).await.unwrap();
    assert!(report.created.is_empty());
    // Two creates are in flight on two workers: either may report first.
    let error = report.failure.unwrap().error;
    assert!(
        matches!(
            &error,
            PoolError::Kernel(KernelError::BridgeMissing { name: tap, bridge })
                if *bridge == name("br-tp")
                    && (*tap == name("tap-pool-0") || *tap == name("tap-pool-1"))
        ),
        "{error:?}"
    );
    assert!(ns.tun_names().is_empty());
}

async fn bad_releases_get_typed_errors_and_touch_nothing() {
    let ns = TestNetns::new();
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&[
        "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b",
    ]);
    let others = |ns: &TestNetns| -> Vec<serde_json::Value> {
        ns.links()
            .into_iter()
            .filter(|l| l["linkinfo"]["info_kind"] != "tun")
            .collect()
    };
    let before = others(&ns);
    let pool = start(&ns, 1, TapSpec::default());
    pool.send(Warm).await.unwrap();
    let lease = acquire(&pool, "vm-a").await.unwrap();
    assert_eq!(release(&pool, &lease).await.unwrap(), Released::Pooled);
    // Stale, duplicate, made up: refused, and no device changes.
    assert_eq!(
        release(&pool, &lease).await.unwrap_err(),
        Error::Pool(PoolError::LeaseEnded { token: lease.token })
    );
    let made_up = LeaseToken::from_u128(lease.token.to_u128() ^ (1 << 90));
    assert_eq!(
        release_token(&pool, made_up).await.unwrap_err(),
        Error::Pool(PoolError::UnknownLease { token: made_up })
    );
    // Seed with names that are not taps the pool could hold: no lease.
    let seeded = pool
        .send(Seed {
            used: vec![name("br0"), name("veth-a"), name("lo")],
        })
        .await
        .unwrap()
        .unwrap();
    assert!(seeded.held.is_empty(), "{seeded:?}");
    assert_eq!(seeded.missing.len(), 3);
    settle(&pool).await;
    assert!(Acquire::new("name-of-16-bytes").is_err());
    assert_eq!(ns.tun_names(), ["tap-pool-0"]);
    assert_eq!(others(&ns), before, "no other device changed");
}

async fn a_reused_tap_is_reset_to_its_pooled_configuration() {
    let ns = TestNetns::new();
    ns.add_bridge("br-tp");
    ns.add_bridge("br-evil");
    let pool = start(&ns, 1, configured());
    pool.send(Warm).await.unwrap();
    let lease = acquire(&pool, "vm-a").await.unwrap();
    let tap = lease.name.to_str().unwrap();
    let before = ns.link(tap).unwrap();
    // What a careless or hostile tenant might leave behind.
    ns.ip(&["addr", "add", "198.51.100.7/24", "dev", tap]);
    ns.ip(&["addr", "add", "2001:db8::7/64", "dev", tap]);
    ns.ip(&["link", "set", tap, "mtu", "9000"]);
    ns.ip(&["link", "set", tap, "master", "br-evil"]);
    ns.ip(&["link", "set", tap, "address", "02:ba:d0:00:00:01"]);
    ns.ip(&["link", "set", tap, "group", "0"]);
    ns.ip(&["link", "set", tap, "down"]);

    assert_eq!(release(&pool, &lease).await.unwrap(), Released::Pooled);
    assert_eq!(settle(&pool).await.idle, 1, "reset and pooled");
    let after = ns.link(tap).unwrap();
    assert_configured(&after);
    assert_eq!(after["address"], before["address"], "MAC restored");
    assert_eq!(after["group"], before["group"], "device group restored");
    let addrs = ns.ip(&["-j", "addr", "show", "dev", tap]);
    assert!(
        !addrs.contains("198.51.100.7") && !addrs.contains("2001:db8::7"),
        "tenant addresses left: {addrs}"
    );
    // The next VM gets the clean tap.
    assert_eq!(acquire(&pool, "vm-b").await.unwrap().name, lease.name);
}

async fn an_idle_tap_deleted_with_ip_is_dropped_and_replaced() {
    let ns = TestNetns::new();
    let pool = start(&ns, 2, TapSpec::default());
    pool.send(Warm).await.unwrap();
    ns.ip(&["link", "del", "tap-pool-1"]);
    let s = stats_until(&pool, "the deleted tap dropped and replaced", |s| {
        s.vanished == 1 && s.idle == 2
    })
    .await;
    assert_eq!(s.created, 3);
    assert_eq!(ns.tun_names(), ["tap-pool-0", "tap-pool-2"]);
    for fallback in ["vm-a", "vm-b"] {
        let lease = acquire(&pool, fallback).await.unwrap();
        assert_eq!(lease.source, LeaseSource::Pool);
        assert!(
            ns.link(lease.name.to_str().unwrap()).is_some(),
            "{} exists",
            lease.name
        );
    }
}

async fn drain_deletes_the_idle_pool_in_one_group_delete_and_spares_leased_taps() {
    let ns = TestNetns::new();
    ns.ip(&["link", "add", "keep-ifb", "type", "ifb"]);
    let pool = start(&ns, 20, {
        let mut t = TapSpec::default();
        t.device_group = Some(4242);
        t
    });
    pool.send(Warm).await.unwrap();
    let held = acquire(&pool, "vm-a").await.unwrap();
    assert_eq!(ns.tun_names().len(), 20);
    let report = pool.send(Drain).await.unwrap();
    assert_eq!((report.deleted, report.bulk, report.leased), (19, true, 1));
    assert_eq!(ns.tun_names(), [held.name.to_string()]);
    let link = ns.link(held.name.to_str().unwrap()).unwrap();
    assert_eq!(link["group"], "default", "the held tap left the group");
    assert!(ns.link("keep-ifb").is_some(), "other devices untouched");
    assert_eq!(release(&pool, &held).await.unwrap(), Released::Deleted);
    assert!(ns.tun_names().is_empty());
}

async fn drain_never_bulk_deletes_a_group_holding_someone_elses_device() {
    let ns = TestNetns::new();
    // An operator put another device in the pool's group by mistake.
    ns.ip(&["link", "add", "not-ours", "type", "ifb"]);
    ns.ip(&["link", "set", "not-ours", "group", "4242"]);
    let pool = start(&ns, 3, {
        let mut t = TapSpec::default();
        t.device_group = Some(4242);
        t
    });
    pool.send(Warm).await.unwrap();
    let report = pool.send(Drain).await.unwrap();
    assert_eq!((report.deleted, report.bulk), (3, false));
    assert_eq!(report.foreign_in_group, [name("not-ours")]);
    assert!(ns.link("not-ours").is_some(), "the other device survived");
    assert!(ns.tun_names().is_empty());
}

async fn acquires_whose_callers_gave_up_leave_no_lease_and_no_tap() {
    let ns = TestNetns::new();
    // Size 0: every Acquire creates; its caller is gone before the create
    // is done.
    let pool = start(&ns, 0, TapSpec::default());
    // A caller that times out (whether before the actor took the request,
    // which actix then drops, or while its create runs), and one that
    // never waits.
    for i in 0..8 {
        let gave_up = pool
            .send(Acquire::new(&format!("vm-t{i}")).unwrap())
            .timeout(std::time::Duration::from_micros(200 * i))
            .await;
        if let Ok(answer) = gave_up {
            release(&pool, &answer.unwrap().into_lease()).await.unwrap();
        }
    }
    pool.do_send(Acquire::new("vm-a").unwrap());
    let s = settle(&pool).await;
    assert_eq!(s.leased, 0, "{s:?}");
    assert!(s.created >= 1, "{s:?}");
    assert_eq!(s.created, s.deleted, "{s:?}");
    assert!(ns.tun_names().is_empty(), "{:?}", ns.tun_names());
    // The names are free again.
    let again = acquire(&pool, "vm-a").await.unwrap();
    assert_eq!(ns.tun_names(), ["vm-a"]);
    release(&pool, &again).await.unwrap();

    // A warm pool: the taps go back to it, each handed out once later.
    let pool = start(&ns, 2, TapSpec::default());
    pool.send(Warm).await.unwrap();
    pool.do_send(Acquire::new("vm-c").unwrap());
    pool.do_send(Acquire::new("vm-d").unwrap());
    let s = settle(&pool).await;
    assert_eq!((s.idle, s.leased), (2, 0), "{s:?}");
    assert_eq!(ns.tun_names(), ["tap-pool-0", "tap-pool-1"]);
    let c = acquire(&pool, "vm-c").await.unwrap();
    let d = acquire(&pool, "vm-d").await.unwrap();
    assert_ne!(c.name, d.name);
    pool.send(Drain).await.unwrap();
}

async fn seed_deletes_do_not_warm_a_pool_nobody_warmed() {
    let ns = TestNetns::new();
    let spec = {
        let mut t = TapSpec::default();
        t.device_group = Some(GROUP);
        t
    };
    // Fallback taps an earlier run left in the pool's group.
    ns.with_kernel(|k| {
        for n in ["vm-old-0", "vm-old-1"] {
            k.create_tap(name(n), &spec).unwrap();
        }
    });
    let pool = start(&ns, 4, spec);
    let report = pool.send(Seed { used: vec![] }).await.unwrap().unwrap();
    assert_eq!(report.deleted.len(), 2);
    let s = settle(&pool).await;
    assert_eq!((s.idle, s.created, s.deleted), (0, 0, 2), "{s:?}");
    assert!(ns.tun_names().is_empty(), "{:?}", ns.tun_names());
}

/// Everything `ip -j -d link show` says of `dev` that a pool could change.
fn fingerprint(ns: &TestNetns, dev: &str) -> Value {
    let mut link = ns.link(dev).unwrap_or_else(|| panic!("{dev} exists"));
    if let Some(o) = link.as_object_mut() {
        // Counters and carrier-derived fields move on their own.
        for volatile in ["operstate", "linkmode", "stats", "stats64"] {
            o.remove(volatile);
        }
    }
    link
}

async fn a_renamed_idle_tap_leaves_the_pool_and_its_old_name_is_never_touched() {
    let ns = TestNetns::new();
    let pool = start(&ns, 2, TapSpec::default());
    pool.send(Warm).await.unwrap();
    // An operator renames an idle tap and makes a veth under its old name.
    ns.ip(&["link", "set", "tap-pool-1", "name", "x-renamed"]);
    ns.ip(&[
        "link",
        "add",
        "tap-pool-1",
        "type",
        "veth",
        "peer",
        "name",
        "veth-peer",
    ]);
    let veth = fingerprint(&ns, "tap-pool-1");
    // The watcher tells the pool; it deletes the renamed tap by index.
    tap_pool_testkit::wait_until("the renamed tap to be deleted", || async {
        ns.link("x-renamed").is_none()
    })
    .await;
    let s = settle(&pool).await;
    assert_eq!(s.idle, 2, "refilled: {s:?}");
    assert_eq!(
        fingerprint(&ns, "tap-pool-1"),
        veth,
        "the veth is untouched"
    );
    // Every tap handed out can be opened by its name.
    let a = acquire(&pool, "vm-a").await.unwrap();
    let b = acquire(&pool, "vm-b").await.unwrap();
    for lease in [&a, &b] {
        assert_ne!(lease.name, name("tap-pool-1"));
        let link = ns
            .link(lease.name.to_str().unwrap())
            .expect("opened by its name");
        assert_eq!(text(&link["linkinfo"]["info_kind"]), "tun");
    }
    pool.send(Drain).await.unwrap();
    assert_eq!(
        fingerprint(&ns, "tap-pool-1"),
        veth,
        "the veth is untouched"
    );
}

async fn a_renamed_leased_tap_is_deleted_on_release_and_its_old_name_never_touched() {
    let ns = TestNetns::new();
    let pool = start(&ns, 2, TapSpec::default());
    pool.send(Warm).await.unwrap();
    let held = acquire(&pool, "vm-a").await.unwrap();
    let old = held.name.to_string();
    ns.ip(&["link", "set", &old, "name", "x-renamed"]);
    ns.ip(&["link", "add", &old, "type", "bridge"]);
    let bridge = fingerprint(&ns, &old);
    // Released (whether or not the watcher's notice came first), the tap
    // is deleted by index, not reset and pooled: nobody could open it by
    // its name.
    let released = release(&pool, &held).await.unwrap();
    assert_eq!(released, Released::Deleted);
    let s = settle(&pool).await;
    assert_eq!((s.leased, s.resetting, s.deleting), (0, 0, 0), "{s:?}");
    assert!(ns.link("x-renamed").is_none(), "the renamed tap is gone");
    assert_eq!(fingerprint(&ns, &old), bridge, "the bridge is untouched");
    pool.send(Drain).await.unwrap();
    assert_eq!(fingerprint(&ns, &old), bridge, "the bridge is untouched");
    let left: Vec<String> = ns.tun_names();
    assert!(left.is_empty(), "{left:?}");
}

/// Leftovers under pool names: only the one made exactly as the spec says
/// (the effective owner, no group, a single-queue tap with a vnet header)
/// is adopted; the pool's other taps are deleted; a tun device under a pool
/// name is someone else's and left alone.
async fn seed_adopts_only_taps_made_exactly_as_the_spec_says() {
    let ns = TestNetns::new();
    let leftovers: [(&str, &[&str]); 5] = [
        ("tap-pool-0", &["user", "0", "vnet_hdr"]),
        ("tap-pool-1", &["user", "60001", "vnet_hdr"]),
        ("tap-pool-2", &["vnet_hdr"]),
        ("tap-pool-3", &["user", "0", "vnet_hdr", "multi_queue"]),
        ("tap-pool-4", &["user", "0"]),
    ];
    for (dev, options) in leftovers {
        let mut args = vec!["tuntap", "add", "dev", dev, "mode", "tap"];
        args.extend(options);
        ns.ip(&args);
    }
    ns.ip(&[
        "tuntap",
        "add",
        "dev",
        "tap-pool-5",
        "mode",
        "tun",
        "user",
        "0",
    ]);
    let tun = fingerprint(&ns, "tap-pool-5");
    let pool = start(&ns, 4, TapSpec::default());
    let report = pool.send(Seed { used: vec![] }).await.unwrap().unwrap();
    assert_eq!(report.adopted, [name("tap-pool-0")], "{report:?}");
    let mut deleted = report.deleted.clone();
    deleted.sort_by_key(|n| n.to_string());
    assert_eq!(
        deleted,
        ["tap-pool-1", "tap-pool-2", "tap-pool-3", "tap-pool-4"].map(name),
        "{report:?}"
    );
    let stats = settle(&pool).await;
    assert_eq!((stats.idle, stats.deleted), (1, 4), "{stats:?}");
    assert_eq!(ns.tun_names(), ["tap-pool-0", "tap-pool-5"]);
    assert_eq!(fingerprint(&ns, "tap-pool-5"), tun, "the tun is untouched");
    let data = &ns.link("tap-pool-0").unwrap()["linkinfo"]["info_data"];
    assert_eq!(
        (text(&data["user"]), &data["vnet_hdr"]),
        ("root".to_owned(), &Value::Bool(true))
    );
    assert_not_in_host(&["tap-pool-0", "tap-pool-5"]);
}

/// `Recycle::Fresh`: a released tap is deleted (its index gone for good)
/// and the pool makes another; no device is ever leased twice. Seed adopts
/// no leftover.
async fn a_fresh_pool_never_hands_out_a_tap_twice() {
    let ns = TestNetns::new();
    let config = {
        let mut c = PoolConfig::default();
        c.size = 2;
        c.recycle = Recycle::Fresh;
        c
    };
    let pool = ns.start_pool(config.clone());
    pool.send(Warm).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for round in 0..6 {
        let lease = acquire(&pool, &format!("vm-{round}")).await.unwrap();
        let index = ns.link(&lease.name.to_string()).expect("leased")["ifindex"].clone();
        assert!(
            seen.insert(index.to_string()),
            "round {round}: {} leased again",
            lease.name
        );
        assert_eq!(release(&pool, &lease).await, Ok(Released::Deleted));
        assert!(
            ns.links().iter().all(|l| l["ifindex"] != index),
            "round {round}: the released tap is gone"
        );
        let stats = settle(&pool).await;
        assert_eq!(stats.resetting, 0);
        assert!(stats.idle >= 1, "refilled: {stats:?}");
    }
    // A fresh pool adopts no leftover: any may have been leased before.
    let other = TestNetns::new();
    other.with_kernel(|k| {
        for n in ["tap-pool-0", "tap-pool-1"] {
            k.create_tap(name(n), &config.tap).unwrap();
        }
    });
    let restarted = other.start_pool(config);
    let report = restarted
        .send(Seed { used: vec![] })
        .await
        .unwrap()
        .unwrap();
    assert!(report.adopted.is_empty(), "{report:?}");
    assert_eq!(report.deleted.len(), 2, "{report:?}");
    settle(&restarted).await;
    assert!(other.tun_names().is_empty(), "{:?}", other.tun_names());
}
