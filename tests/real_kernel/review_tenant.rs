//! Regressions from the hostile-tenant / hostile-operator review of issue
//! 10's trust changes: taps renamed to names `TapName` refused then, on the
//! real kernel, each in namespaces of its own. Each test names the promise
//! it checks; each failed on the reviewed code. (Since issue 11 `TapName`
//! holds every name the kernel does, so the renames are now to names it
//! holds; the promises are the same.)

use std::time::Duration;

use actix::Addr;
use serde_json::Value;
use tap_pool_actors::{Drain, PoolConfig, TapPoolActor, TapSpec, Warm};
use tap_pool_testkit::pool::{acquire, release, settle};
use tap_pool_testkit::{KernelTest, TestNetns, kernel_test, text};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(async an_idle_tap_renamed_to_a_name_tapname_refuses_is_never_handed_out),
        kernel_test!(async drain_never_deletes_a_leased_tap_renamed_to_a_name_tapname_refuses),
        kernel_test!(async a_leased_tap_renamed_to_a_name_tapname_refuses_is_not_leaked),
    ]
}

/// A name the kernel accepts (`dev_valid_name`: its `isspace` sees bytes
/// E2 80 83, none of them space) that `TapName` refused before issue 11
/// (U+2003 EM SPACE is `char::is_whitespace`; `TapName` now checks bytes
/// as the kernel does). `ip` passes it through as bytes.
fn unfit(tag: &str) -> String {
    format!("t\u{2003}{tag}")
}

fn grouped() -> TapSpec {
    let mut t = TapSpec::default();
    t.device_group = Some(4242);
    t
}

fn start(ns: &TestNetns, size: usize, tap: TapSpec) -> Addr<TapPoolActor> {
    ns.start_pool({
        let mut c = PoolConfig::default();
        c.size = size;
        c.tap = tap;
        c
    })
}

fn ifindex(ns: &TestNetns, dev: &str) -> u64 {
    ns.link(dev).expect("device exists")["ifindex"]
        .as_u64()
        .expect("ifindex")
}

fn link_at(ns: &TestNetns, index: u64) -> Option<Value> {
    ns.links()
        .into_iter()
        .find(|l| l["ifindex"].as_u64() == Some(index))
}

/// Time for the link watcher to see a change and the actor to handle it
/// (it reports within ~1 ms; generous here).
async fn let_the_watcher_see() {
    actix_rt::time::sleep(Duration::from_millis(300)).await;
}

/// Promise (README, operations.md "Changes behind the pool's back"): "a tap
/// renamed behind the pool's back is noticed at once"; "an idle one leaves
/// the pool and is deleted"; no handed-out tap is one its holder cannot open
/// by the name it was given.
///
/// Breaks: the watcher skips a notification whose new name `TapName`
/// refuses (src/linux/watch.rs, `queue_rename`: `parse_link_name` gives
/// `None` → "skipped"), so the rename is never reported; the idle tap stays
/// in the pool under its old name and is handed out, though no device has
/// that name.
async fn an_idle_tap_renamed_to_a_name_tapname_refuses_is_never_handed_out() {
    let ns = TestNetns::new();
    let pool = start(&ns, 2, grouped());
    pool.send(Warm).await.unwrap();
    settle(&pool).await;
    for (i, tap) in ["tap-pool-0", "tap-pool-1"].into_iter().enumerate() {
        ns.ip(&["link", "set", "dev", tap, "name", &unfit(&i.to_string())]);
    }
    let_the_watcher_see().await;
    settle(&pool).await;
    let lease = acquire(&pool, "vm-a").await.unwrap();
    assert!(
        ns.link(lease.name.to_str().unwrap()).is_some(),
        "handed out {} ({:?}), which no device is called: its VMM cannot open it; links: {:?}",
        lease.name,
        lease.source,
        ns.links()
            .iter()
            .map(|l| text(&l["ifname"]))
            .collect::<Vec<_>>()
    );
}

/// Promise (operations.md "Shutting down: Drain", architecture.md
/// drain.rs): Drain "moves leased taps out of the device group (so they stay
/// with their VMs)"; "leased taps left to their holders".
///
/// Breaks: a leased tap renamed (by the operator) to a name `TapName`
/// refuses: the drain's ungroup (`set_group`, `verify` with
/// `OnRename::Refuse`) gets `NotATap` for a link with no fit name
/// (src/linux/mod.rs `verify`, the `(None, OnRename::Refuse)` arm), which
/// `ungrouped` (src/pool/drain.rs) takes as "nothing to ungroup" and
/// carries on; the group check's listing drops members whose name
/// `TapName` refuses (src/linux/link/parse.rs `parse_group_member`), so the
/// group looks like the pool's own taps only, and the group delete takes
/// the VM's tap, attached file and all.
async fn drain_never_deletes_a_leased_tap_renamed_to_a_name_tapname_refuses() {
    let ns = TestNetns::new();
    let pool = start(&ns, 3, grouped());
    pool.send(Warm).await.unwrap();
    settle(&pool).await;
    let held = acquire(&pool, "vm-a").await.unwrap();
    // The VM runs on it.
    let _vmm = ns.attach(held.name.to_str().unwrap(), true);
    let index = ifindex(&ns, held.name.to_str().unwrap());
    ns.ip(&[
        "link",
        "set",
        "dev",
        held.name.to_str().unwrap(),
        "name",
        &unfit("vm"),
    ]);
    let_the_watcher_see().await;
    let report = pool.send(Drain).await.unwrap();
    assert!(
        link_at(&ns, index).is_some(),
        "the leased tap (index {index}, held by a running VM) was deleted by the drain: {report:?}"
    );
}

/// Promise (README): "Nothing leaks"; (operations.md) a leased tap renamed
/// behind the pool's back "stays with its VM and is deleted, not pooled,
/// when released"; after a Drain only leased taps remain.
///
/// Breaks: the release's reset `verify`s the index and gets `NotATap` for
/// a tap whose new name `TapName` refuses (src/linux/mod.rs `verify`), and
/// `reset_finished` (src/pool/reset.rs, the `NoSuchDevice | NotATap` arm)
/// forgets it as "nothing of the pool's is left there". The tap, persistent
/// and the pool's own, stays in the kernel for ever; Drain does not know
/// it. (With a device group a group delete happens to catch it; without
/// one nothing does.)
async fn a_leased_tap_renamed_to_a_name_tapname_refuses_is_not_leaked() {
    let ns = TestNetns::new();
    let pool = start(&ns, 1, TapSpec::default());
    pool.send(Warm).await.unwrap();
    settle(&pool).await;
    let held = acquire(&pool, "vm-a").await.unwrap();
    let index = ifindex(&ns, held.name.to_str().unwrap());
    ns.ip(&[
        "link",
        "set",
        "dev",
        held.name.to_str().unwrap(),
        "name",
        &unfit("vm"),
    ]);
    let_the_watcher_see().await;
    let released = release(&pool, &held).await;
    settle(&pool).await;
    let report = pool.send(Drain).await.unwrap();
    settle(&pool).await;
    assert!(
        link_at(&ns, index).is_none(),
        "the pool's tap (index {index}) is left in the kernel after its release \
         ({released:?}) and a drain ({report:?}): {:?}",
        ns.tun_names()
    );
}
