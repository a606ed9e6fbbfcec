//! The `tap-pool` binary on the real kernel, each test in a network
//! namespace of its own (passed with `--netns`; never the host's), with
//! `ip -j -d link show` as the independent witness:
//!
//! - `ls`: the pool's devices, idle and in use, with owner, group, master
//!   and device group as `ip` shows them;
//! - `gc`: a dry run deletes nothing; `--yes` deletes exactly the unheld
//!   leftovers, one group delete where the group holds only them;
//! - `doctor`: ok in a healthy namespace, a problem (exit status 1) for a
//!   full bridge or a user without capabilities.
//!
//! They need `/dev/net/tun`, `CAP_NET_ADMIN`, `ip`, `tc`, `bridge` and
//! `nsenter`. Where this process lacks them, every test is reported as
//! ignored, with the reason, unless `TAP_POOL_REQUIRE_KERNEL=1`, which makes
//! each a failure (tap-pool-testkit's harness runs them: `harness = false`).
//! Each runs alone: it starts processes while it holds a tap open.

mod doctor;
mod gc;
mod ls;
mod scene;

use std::process::ExitCode;

fn main() -> ExitCode {
    tap_pool_testkit::harness::run(
        [ls::tests(), gc::tests(), doctor::tests()]
            .into_iter()
            .flatten()
            .map(|test| test.alone()),
    )
}
