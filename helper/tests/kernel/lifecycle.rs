//! A pool as uid 65534 with no capabilities: every tap it has is made,
//! reset and deleted by the helper, in the namespace the policy names.

use tap_pool_testkit::{KernelTest, kernel_test};

use crate::scene::{BRIDGE, GROUP, Scene};

pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(
            a_pool_without_privilege_warms_acquires_releases_seeds_and_drains_through_the_helper
        ),
        kernel_test!(the_helper_serves_the_socket_systemd_hands_over),
        kernel_test!(
            the_pools_link_watcher_reads_the_socket_the_helper_handed_over_even_across_its_restart
        ),
    ]
}

/// The pool's link watcher reads a netlink socket the helper opened in the
/// namespace and handed over: an idle tap an operator deletes by hand is
/// seen gone, with no call of the pool's on it, and replaced. The socket
/// does not go through the helper, so it keeps reporting after the helper
/// restarts.
fn the_pools_link_watcher_reads_the_socket_the_helper_handed_over_even_across_its_restart() {
    let mut scene = Scene::new();
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3, "{}", scene.log());
    scene.kill_helper();
    scene.start_helper();
    scene.ns.ip(&["link", "del", "tph-1"]);
    crate::scene::eventually(30, "the pool sees the tap gone and refills", || {
        let stats = pool.ask("stats");
        stats["ok"]["vanished"] == 1 && stats["ok"]["idle"] == 3
    });
    assert_eq!(scene.taps().len(), 3, "{:?}", scene.taps());
    pool.finish();
}

fn a_pool_without_privilege_warms_acquires_releases_seeds_and_drains_through_the_helper() {
    let scene = Scene::new();
    let mut pool = scene.pool();
    let warm = pool.ask("warm");
    assert_eq!(warm["ok"], 3, "{warm}\n{}", scene.log());
    let mut taps = scene.taps();
    taps.sort();
    assert_eq!(taps, ["tph-0", "tph-1", "tph-2"]);
    for tap in &taps {
        let link = scene.ns.link(tap).expect("the tap");
        assert_eq!(link["linkinfo"]["info_data"]["user"], "nobody", "{link}");
        assert_eq!(link["master"], BRIDGE, "{link}");
        assert_eq!(link["group"], GROUP.to_string(), "{link}");
    }
    let lease = pool.ask("acquire vm-00000000000a");
    let token = lease["ok"]["token"].as_str().expect("a lease").to_owned();
    let leased = lease["ok"]["name"].as_str().expect("a name").to_owned();
    assert!(leased.starts_with("tph-"), "{lease}");
    let released = pool.ask(&format!("release {token}"));
    assert_eq!(released["ok"], leased.as_str(), "{released}");
    let settled = pool.ask("settle");
    assert_eq!(settled["ok"]["idle"], 3, "{settled}");
    // A second pool of the same user (after a restart) seeds: it adopts the
    // three taps and resets them through the helper.
    let rest = pool.finish();
    assert_eq!(
        rest.last().map(|v| v["shutdown"].clone()),
        Some(serde_json::json!(true))
    );
    assert!(
        scene.taps().is_empty(),
        "a pool's shutdown drains: {:?}",
        scene.taps()
    );
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3);
    pool.kill();
    assert_eq!(scene.taps().len(), 3, "a killed pool leaves its taps");
    let mut pool = scene.pool();
    let seeded = pool.ask("seed");
    assert_eq!(
        seeded["ok"]["adopted"].as_array().map(Vec::len),
        Some(3),
        "{seeded}\n{}",
        scene.log()
    );
    let drained = pool.ask("drain");
    assert!(drained["ok"].is_object(), "{drained}");
    assert!(scene.taps().is_empty(), "{:?}", scene.taps());
    pool.finish();
}

/// Socket activation: the helper serves the listening socket it is handed
/// (descriptor 3, `LISTEN_FDS`, `LISTEN_PID`), not the path it would make.
fn the_helper_serves_the_socket_systemd_hands_over() {
    let mut scene = Scene::new();
    scene.kill_helper();
    std::fs::remove_file(scene.socket()).expect("remove the socket");
    let listener = std::os::unix::net::UnixListener::bind(scene.socket()).expect("bind");
    std::fs::set_permissions(
        scene.socket(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod");
    scene.start_helper_activated(&listener);
    drop(listener);
    let mut pool = scene.pool();
    assert_eq!(pool.ask("warm")["ok"], 3, "{}", scene.log());
    assert_eq!(scene.taps().len(), 3);
    pool.finish();
    assert!(scene.taps().is_empty());
    assert!(
        scene
            .log()
            .contains("listening on the socket systemd handed over"),
        "{}",
        scene.log()
    );
}
