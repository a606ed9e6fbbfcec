//! The bridge's MAC, which guests on it see as their gateway's: a bridge
//! with no address of its own takes its lowest port's, so it changes as the
//! pool adds and deletes taps and as a tenant sets its tap's address; an
//! address set on the bridge stays (docs/operations.md, "The bridge's MAC").

use tap_pool_actors::{PoolConfig, Recycle, TapSpec, Warm};
use tap_pool_testkit::pool::{acquire, release, settle};
use tap_pool_testkit::{KernelTest, TestNetns, kernel_test, link_mac, name};

/// This file's tests, for `main.rs`.
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(async an_unpinned_bridge_mac_follows_the_pools_taps_and_a_tenants_address),
        kernel_test!(async a_pinned_bridge_mac_stays_through_churn_and_a_tenants_address),
    ]
}

const BRIDGE: &str = "br-mac";

fn bridge_mac(ns: &TestNetns) -> [u8; 6] {
    link_mac(&ns.link(BRIDGE).expect("the bridge exists"))
}

/// The lowest MAC among the bridge's ports, as `ip` shows them.
fn lowest_port_mac(ns: &TestNetns) -> [u8; 6] {
    ns.links()
        .iter()
        .filter(|l| l["master"] == BRIDGE)
        .map(link_mac)
        .min()
        .expect("the bridge has ports")
}

/// A Fresh pool of four on the bridge, warmed: each release deletes a tap
/// and a new one (with a new MAC) takes its place.
async fn churn(ns: &TestNetns, tenant_mac: &str) -> ([u8; 6], [u8; 6], [u8; 6]) {
    let pool = ns.start_pool({
        let mut c = PoolConfig::default();
        c.size = 4;
        c.recycle = Recycle::Fresh;
        c.tap = {
            let mut t = TapSpec::default();
            t.bridge = Some(name(BRIDGE));
            t
        };
        c
    });
    assert!(pool.send(Warm).await.unwrap().failure.is_none());
    let before = bridge_mac(ns);
    let mut leases = Vec::new();
    for vm in ["vm-0", "vm-1", "vm-2", "vm-3"] {
        leases.push(acquire(&pool, vm).await.unwrap());
    }
    // Release the tap holding the lowest MAC: it goes, a new one comes.
    let lowest = lowest_port_mac(ns);
    let (i, _) = leases
        .iter()
        .enumerate()
        .find(|(_, l)| link_mac(&ns.link(l.name.to_str().unwrap()).unwrap()) == lowest)
        .expect("the lowest MAC is a pool tap's");
    release(&pool, &leases.remove(i)).await.unwrap();
    settle(&pool).await;
    let after_churn = bridge_mac(ns);
    // A tenant sets its tap's address through its file (SIOCSIFHWADDR, as
    // `ip` does here).
    let tenant = leases[0].name.to_string();
    ns.ip(&["link", "set", &tenant, "address", tenant_mac]);
    let with_tenant = bridge_mac(ns);
    for lease in &leases {
        release(&pool, lease).await.unwrap();
    }
    settle(&pool).await;
    (before, after_churn, with_tenant)
}

async fn an_unpinned_bridge_mac_follows_the_pools_taps_and_a_tenants_address() {
    let ns = TestNetns::new();
    ns.add_bridge(BRIDGE);
    let (before, after_churn, with_tenant) = churn(&ns, "00:00:00:00:00:01").await;
    assert_ne!(
        before, after_churn,
        "the gateway MAC changed when its port went"
    );
    assert_eq!(
        with_tenant,
        [0, 0, 0, 0, 0, 1],
        "a tenant chose the gateway MAC"
    );
}

async fn a_pinned_bridge_mac_stays_through_churn_and_a_tenants_address() {
    let ns = TestNetns::new();
    ns.add_bridge(BRIDGE);
    let pinned = "02:aa:bb:cc:dd:ee";
    ns.ip(&["link", "set", BRIDGE, "address", pinned]);
    let (before, after_churn, with_tenant) = churn(&ns, "00:00:00:00:00:01").await;
    let pinned = tap_pool_testkit::parse_mac(pinned);
    assert_eq!([before, after_churn, with_tenant], [pinned; 3]);
    assert_eq!(bridge_mac(&ns), pinned);
}
