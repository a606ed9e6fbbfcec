//! The tests that run on the real kernel, one module per concept, each test
//! in a network namespace of its own (never the host's), with `ip -j -d` as
//! the witness:
//!
//! - `kernel`: the Linux kernel interface itself (create, list, reset,
//!   delete, group delete, the link watcher);
//! - `pool_on_linux`: the pool's rules through the actors;
//! - `vmm`: what a VMM sees of a pooled tap (opening it, frames, owner and
//!   group);
//! - `hostile`: a tenant that makes every change its file allows, and
//!   what the next tenant and a stranger see of it;
//! - `crash`: no tap leaked or held twice wherever the pool's process dies;
//! - `load`: 64 clients, 100,000 cycles;
//! - `shutdown`: stopping the System or the arbiter drains the pool; a pool
//!   bound to a namespace path keeps its namespace when the path goes;
//! - `names`: device names byte for byte (`TapName` takes exactly what the
//!   kernel does; a name that is not UTF-8 is read back as itself).
//! - `leftovers`: a reset takes away what the orchestrator left on a tap
//!   for its last tenant, or says it cannot.
//! - `bridge_mac`: the gateway MAC guests see: a bridge with no address
//!   of its own follows its ports; one with an address set keeps it.
//! - `handle`: a pool from a plain tokio program (`PoolHandle`), and a pool
//!   that cannot make taps failing fast at start.
//!
//! They need `/dev/net/tun`, `CAP_NET_ADMIN`, `ip`, `tc`, `bridge` and
//! `nsenter`. Where this process lacks them, every test is reported as
//! ignored, with the reason, unless `TAP_POOL_REQUIRE_KERNEL=1`, which makes
//! each a failure: see
//! `tap_pool_testkit::harness`, which runs them (`harness = false`).

mod bridge_mac;
mod crash;
mod handle;
mod hostile;
mod kernel;
mod leftovers;
mod load;
mod names;
mod pool_on_linux;
mod review_reset;
mod review_tenant;
mod shutdown;
mod vmm;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The child process one of `handle`'s tests starts: it must act while
    // this process still has a single thread.
    if let Some(code) = handle::child_main() {
        return code;
    }
    tap_pool_testkit::harness::run(
        [
            kernel::tests(),
            pool_on_linux::tests(),
            vmm::tests(),
            crash::tests(),
            load::tests(),
            shutdown::tests(),
            review_tenant::tests(),
            review_reset::tests(),
            hostile::tests(),
            names::tests(),
            leftovers::tests(),
            bridge_mac::tests(),
            handle::tests(),
        ]
        .into_iter()
        .flatten(),
    )
}
