//! Measures `reset_tap` on the real kernel, in a namespace of its own: a
//! plain tap; a tap on a bridge with an address of its own and another
//! port of the same MTU, as a bridge of VMs is; and the only port of a
//! bridge without either (whose address and MTU are its port's, and change
//! for an instant each time the port leaves, which costs the kernel a walk
//! of every route each way); in a quiet namespace and in one with many
//! routes. Nothing is left on the taps between resets: this
//! is a reset's cost when there is nothing to clear. Run as root:
//!
//! ```text
//! cargo run --release --example reset_cost [-- ROUNDS]
//! ```

use std::time::{Duration, Instant};

use tap_pool::TapSpec;
use tap_pool_testkit::{TestNetns, name};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(2000, |n| n.parse().expect("a number of rounds"));
    let ns = match TestNetns::try_new() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    ns.add_bridge("rc-br0");
    ns.ip(&[
        "link",
        "set",
        "rc-br0",
        "address",
        "02:00:00:00:00:01",
        "up",
    ]);
    ns.add_bridge("rc-br1");
    ns.ip(&["link", "set", "rc-br1", "up"]);
    let bridged = |bridge| {
        let mut t = TapSpec::default();
        t.bridge = Some(name(bridge));
        t.mtu = Some(1400);
        t.device_group = Some(7);
        t
    };
    ns.with_kernel(|k| k.create_tap(name("rc-peer"), &bridged("rc-br0")))
        .expect("create rc-peer");
    let taps = [
        ("rc-plain", TapSpec::default()),
        ("rc-bridged", bridged("rc-br0")),
        ("rc-only-port", bridged("rc-br1")),
    ]
    .map(|(tap, spec)| {
        let created = ns.with_kernel(|k| k.create_tap(name(tap), &spec).expect("create"));
        (tap, spec, created.mac)
    });
    measure(&ns, "quiet namespace", rounds, &taps);

    // A busy namespace: routes through another tap, in both families.
    ns.ip(&["tuntap", "add", "dev", "rc-other", "mode", "tap"]);
    ns.ip(&["link", "set", "rc-other", "up"]);
    let mut script = String::new();
    for i in 0..2000 {
        script.push_str(&format!(
            "route add 10.{}.{}.0/24 dev rc-other\n\
             route add 2001:db8:{i:x}::/64 dev rc-other\n",
            i / 256,
            i % 256
        ));
    }
    ns.ip_batch(&script);
    measure(&ns, "4000 other routes", rounds, &taps);
}

fn measure(ns: &TestNetns, label: &str, rounds: usize, taps: &[(&str, TapSpec, [u8; 6])]) {
    for (tap, spec, mac) in taps {
        let mut times: Vec<Duration> = ns.with_kernel(|k| {
            (0..rounds)
                .map(|_| {
                    let start = Instant::now();
                    k.reset_tap(name(tap).into(), spec, *mac).expect("reset");
                    start.elapsed()
                })
                .collect()
        });
        times.sort();
        let mean = times.iter().sum::<Duration>() / rounds as u32;
        let p50 = times[rounds / 2];
        let p99 = times[rounds * 99 / 100];
        println!(
            "{label:>18}, {tap:>12}: mean {mean:?}, p50 {p50:?}, p99 {p99:?} ({rounds} resets)"
        );
    }
}
