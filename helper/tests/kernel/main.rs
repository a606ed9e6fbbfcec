//! tap-pool-helper on the real kernel: the helper runs as root, a pool or
//! a raw client runs as uid 65534 with no capabilities (this binary, run
//! again), each test in a network namespace of its own (the helper's
//! policy names it; never the host's), with `ip -j -d link show` there as
//! the witness.
//!
//! - `lifecycle`: a pool without privilege warms, acquires, releases,
//!   seeds and drains through the helper; the helper serves the socket
//!   systemd hands over (socket activation).
//! - `refusals`: what the policy forbids (a peer it does not name, a device
//!   that is not the peer's, a name, bridge, owner, group or device group
//!   it does not give, a group holding others' devices, one tap over the
//!   limit) is refused with the exact `Refusal` and changes nothing; a
//!   pool's `Acquire` whose fallback name is refused gets the refusal.
//! - `protocol`: raw bytes that break the protocol, and a client that never
//!   says hello, end only their own connection; a pool goes on.
//! - `faults`: the helper and the pool killed (`SIGKILL`) at bad moments,
//!   and at random: typed errors, retries, and in the end no tap that is
//!   not in the ledger and that the next pool cannot drain. The random
//!   test prints its seed; `TAP_POOL_HELPER_FAULTS_SEED=N` replays it. A
//!   pool that shuts down while the helper is down exits at its shutdown
//!   deadline, or deletes its taps once the helper is back.
//! - `review_hostile`: what a compromised VMM or orchestrator, or an
//!   operator moving devices by hand, can make of the helper.
//! - `review_caller`: a pool with more kernel workers than its rule has
//!   connections still resets and drains (its kernels share connections).
//!
//! They need `/dev/net/tun`, `CAP_NET_ADMIN`, `ip`, `tc`, `bridge` and
//! `nsenter`. Where this process lacks them, every test is reported as
//! ignored, with the reason, unless `TAP_POOL_REQUIRE_KERNEL=1`, which
//! makes each a failure (tap-pool-testkit's harness runs them:
//! `harness = false`). Each runs alone: it starts processes.

mod child;
mod faults;
mod lifecycle;
mod protocol;
mod refusals;
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
            refusals::tests(),
            protocol::tests(),
            faults::tests(),
            review_hostile::tests(),
            review_caller::tests(),
        ]
        .into_iter()
        .flatten()
        .map(|test| test.alone()),
    )
}
