//! A pool without privilege: its taps made, reset and deleted by
//! `tap-pool-helper`, a small root process with a policy of what each user
//! may have (feature `helper`).
//!
//! [`HelperKernelFactory`] is a [`KernelFactory`](crate::KernelFactory) like
//! any other: give it to a pool instead of the Linux one and nothing else
//! changes. The calls that change links (create, reset, delete, group
//! changes and group deletes) go to the helper over its Unix socket, in the
//! protocol of [`proto`]; the helper checks each against its policy and
//! answers with the kernel's answer or a typed
//! [`Refusal`](crate::Refusal). Listings and link events do not: they need
//! no privilege, so the pool reads them itself, through netlink sockets the
//! helper opens in the namespace its policy gives the pool's user and hands
//! over. That keeps the helper's code and its answers small (a listing of
//! thousands of taps, a stream of events), and it keeps the namespace the
//! helper's to choose: a process without `CAP_SYS_ADMIN` cannot enter
//! another network namespace, and a socket carries none of its opener's
//! privilege (the kernel checks the capabilities of the process that sends
//! each change as well as the opener's).
//!
//! docs/operations.md ("Running without privilege") shows the install.

mod client;
pub mod proto;

pub use client::{DEFAULT_TIMEOUT, HelperKernel, HelperKernelFactory};
