//! `tap-pool-helper`: the small root process that makes, resets and deletes
//! taps for pools that run without privilege.
//!
//! A pool built on [`tap_pool::helper::HelperKernelFactory`] sends it the
//! calls that change links over a Unix socket
//! ([`tap_pool::helper::proto`]); the helper checks each against its
//! [`policy::Policy`] (who may connect, by `SO_PEERCRED`; which names,
//! bridges, owners, groups, device groups and namespace each may have),
//! carries it out with [`tap_pool::LinuxKernel`], and writes down in its
//! [`ledger::Ledger`] every tap it made and for whom: it deletes, resets or
//! regroups only those, known by interface index, and still knows them
//! after it restarts. It does not run `ip`, serve listings (the pool reads
//! links itself, through sockets the helper hands over), or keep any other
//! state.
//!
//! docs/operations.md ("Running without privilege") shows the install: a
//! systemd service and socket unit, the policy file, which user runs what.

#![warn(missing_docs)]

pub mod ledger;
pub mod policy;
pub mod server;

pub use policy::{Policy, PolicyError};
pub use server::{Helper, StartError};
