//! tap-pool-helper on the real kernel: the helper runs as root, a pool or
//! a raw client runs as uid 65534 with no capabilities (this binary, run
//! again), each test in a network namespace of its own (the helper's
//! policy names it; never the host's), with `ip -j -d link show` there as
//! the witness.
//!
//! - `lifecycle`: a pool without privilege warms, acquires, releases,
//!   seeds and drains through the helper.
//! - `review_hostile`: what a compromised VMM or orchestrator, or an
//!   operator moving devices by hand, can make of the helper.
//!
//! They need `/dev/net/tun`, `CAP_NET_ADMIN`, `ip`, `tc`, `bridge` and
//! `nsenter`. Where this process lacks them, every test is reported as
//! ignored, with the reason, unless `TAP_POOL_REQUIRE_KERNEL=1`, which
//! makes each a failure (tap-pool-testkit's harness runs them:
//! `harness = false`). Each runs alone: it starts processes.

mod child;
mod lifecycle;
mod review_caller;
mod review_hostile;
mod scene;

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = child::main() {
        return code;
    }
    tap_pool_testkit::harness::run(
        [
            lifecycle::tests(),
            review_hostile::tests(),
            review_caller::tests(),
        ]
        .into_iter()
        .flatten()
        .map(|test| test.alone()),
    )
}
