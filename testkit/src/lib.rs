//! What `tap-pool`'s tests, benches and performance report share, so that
//! each helper exists once: a network namespace of a test's own
//! ([`TestNetns`]) with `ip` as an independent witness, a pool on the
//! simulated kernel ([`SimPool`]), pool start-up and polling with a deadline
//! ([`pool`], [`wait`]), the harness that reports a real-kernel test that
//! cannot run as ignored rather than passed ([`harness`]), and the
//! measurements behind `docs/performance.md` ([`rows`]).
//!
//! It is not published and not for orchestrators: they have
//! `tap_pool_actors::sim::SimKernel`.
//!
//! ```no_run
//! use tap_pool_testkit::{TestNetns, name};
//!
//! let ns = TestNetns::new();
//! ns.add_bridge("br0");
//! ns.with_kernel(|k| k.create_tap(name("tap0"), &Default::default()))
//!     .expect("created");
//! assert_eq!(ns.tun_names(), ["tap0"]);
//! ```

// Test support, not published: its helpers panic on purpose (that is how a
// test fails), their errors are the test's, and its types are plumbing. The
// workspace's documentation lints are for the crates users call.
#![allow(
    clippy::missing_panics_doc,
    clippy::missing_errors_doc,
    missing_debug_implementations
)]
#![warn(missing_docs)]

pub mod harness;
pub mod netns;
pub mod pool;
pub mod rows;
pub mod sim;
pub mod wait;
pub mod witness;

pub use harness::KernelTest;
pub use netns::{TestNetns, attach};
pub use sim::SimPool;
pub use wait::{eventually, wait_until};
pub use witness::{
    assert_not_in_host, eui64_link_local, flags, host_link_names, link_mac, parse_mac, text,
};

use tap_pool_actors::TapName;

/// A valid name, for brevity; panics on an invalid one.
pub fn name(s: &str) -> TapName {
    TapName::new(s).expect("test names are valid")
}
