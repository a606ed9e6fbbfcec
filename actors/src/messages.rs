//! The messages an orchestrator sends to [`TapPoolActor`](crate::TapPoolActor),
//! one per request, named for what the caller means.

use actix::Message;
use tap_pool::{
    DrainReport, Holder, HolderError, NameError, PoolStats, SeedReport, TapName, VmNames,
    WarmReport,
};
pub use tap_pool::{Lease, LeaseSource, LeaseToken, Released};

use crate::{Error, LeaseGuard};

/// Hands out a ready tap: the most recently pooled idle one; when none is
/// idle, the next released tap to come back from its reset, if one is on its
/// way; else a new tap created under `fallback`. The answer is a
/// [`LeaseGuard`]: the [`Lease`] (the tap's name, and a token no other
/// lease has, which [`Release`] takes back), released when dropped unless
/// kept with [`LeaseGuard::into_lease`].
///
/// Refused (and nothing changes) when `fallback` is a pool name (the pool's
/// prefix followed by a decimal index, which the pool may create later:
/// [`PoolError::FallbackIsPoolName`](tap_pool::PoolError::FallbackIsPoolName))
/// or the pool already holds a tap of that name. Another name that starts
/// with the prefix (`tap-pool-x`) is a fallback like any other; a
/// [`VmNames`](tap_pool::VmNames) name is never a pool name.
///
/// Safe to give up on (a timeout, a dropped future, `do_send`): a lease
/// whose caller has gone when it comes is released at once, never left to
/// nobody.
///
/// Name who will hold the tap (a VM's id) with [`Acquire::holder`] to find
/// it in the logs: the label is on this request's span, the span of its
/// tap's create, the `Release` of the lease, the tap's reset or delete
/// after it, and warnings about the tap (docs/operations.md, "Logs and
/// spans").
///
/// ```
/// # use tap_pool_actors::Acquire;
/// let acquire = Acquire::new("vm-7f3a")?.holder("vm-7f3a2c91")?;
/// assert_eq!(acquire.holder.unwrap(), "vm-7f3a2c91");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<LeaseGuard, Error>")]
pub struct Acquire {
    /// The name to create when the pool has no idle tap.
    pub fallback: TapName,
    /// Who will hold the lease, for the logs (none by default).
    pub holder: Option<Holder>,
}

impl Acquire {
    /// An `Acquire` whose fallback name is checked against the kernel's rules.
    ///
    /// # Errors
    /// [`NameError`] when the kernel would refuse `fallback` as a name.
    pub fn new(fallback: &str) -> Result<Acquire, NameError> {
        Ok(Acquire::from(TapName::new(fallback)?))
    }

    /// This `Acquire`, naming who will hold the lease (a VM's id): free
    /// text of 1 to [`MAX_HOLDER_LEN`](tap_pool::MAX_HOLDER_LEN) bytes,
    /// shown escaped in the logs.
    ///
    /// # Errors
    /// [`HolderError`] for an empty label or one that is too long.
    pub fn holder(mut self, holder: &str) -> Result<Acquire, HolderError> {
        self.holder = Some(Holder::new(holder)?);
        Ok(self)
    }
}

impl Acquire {
    /// An `Acquire` for the VM `vm_id`: its fallback name is `names`'
    /// candidate number `attempt` for the id ([`VmNames::candidate`]: 0
    /// first, stable across restarts), and its holder label the id itself
    /// (its first [`MAX_HOLDER_LEN`](tap_pool::MAX_HOLDER_LEN) bytes, cut
    /// at a character; none for an empty id).
    ///
    /// Two ids can meet on one name. The pool then refuses the second
    /// ([`Error::is_name_taken`]) and changes nothing: ask again with the
    /// next attempt.
    ///
    /// ```
    /// # use tap_pool_actors::{Acquire, Error, LeaseGuard, TapPoolActor, VmNames};
    /// # async fn demo(pool: actix::Addr<TapPoolActor>) -> Result<LeaseGuard, Error> {
    /// let names = VmNames::new("vm-").expect("a valid prefix");
    /// let vm = "4f9c7a0e-3a1d-4b8e-9c55-0f3e2d1c6b7a";
    /// let mut attempt = 0;
    /// loop {
    ///     match pool.send(Acquire::for_vm(&names, vm, attempt)).await.map_err(|_| Error::Stopped)? {
    ///         Err(e) if e.is_name_taken() && attempt < 8 => attempt += 1,
    ///         answer => return answer,
    ///     }
    /// }
    /// # }
    /// ```
    pub fn for_vm(names: &VmNames, vm_id: &str, attempt: u32) -> Acquire {
        let mut end = vm_id.len().min(tap_pool::MAX_HOLDER_LEN);
        while !vm_id.is_char_boundary(end) {
            end -= 1;
        }
        Acquire {
            fallback: names.candidate(vm_id, attempt),
            holder: Holder::new(&vm_id[..end]).ok(),
        }
    }
}

impl From<TapName> for Acquire {
    /// An `Acquire` with this fallback name, and no holder label.
    fn from(fallback: TapName) -> Acquire {
        Acquire {
            fallback,
            holder: None,
        }
    }
}

/// Gives a lease back. Under [`Recycle::Reset`](tap_pool::Recycle::Reset)
/// (the default) a pool tap goes back to idle after its reset, while the
/// pool has room (a tap whose reset finds what it cannot take away is
/// deleted and replaced: docs/security.md); under
/// [`Recycle::Fresh`](tap_pool::Recycle::Fresh) it is deleted and replaced.
/// A fallback tap, or a pool tap when the pool is full, is deleted (by
/// interface index); the answer then says what became of it
/// ([`Released::Deleted`], [`Released::Vanished`], or
/// [`Released::DeleteFailed`]: kept and retried). A successful delete
/// refills a warmed pool once it is `size / 8` taps short (at once under
/// `Recycle::Fresh`).
///
/// Only a live lease's token is taken: a stale or duplicate release
/// ([`PoolError::LeaseEnded`](tap_pool::PoolError::LeaseEnded)) or a made-up
/// one ([`PoolError::UnknownLease`](tap_pool::PoolError::UnknownLease)) is
/// refused with no kernel call, and changes nothing. Any other answer means
/// the lease has ended.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<Released, Error>")]
pub struct Release {
    /// The lease to end.
    pub token: LeaseToken,
}

impl From<Lease> for Release {
    fn from(lease: Lease) -> Release {
        Release { token: lease.token }
    }
}

impl From<&Lease> for Release {
    fn from(lease: &Lease) -> Release {
        Release { token: lease.token }
    }
}

/// Creates taps until idle plus being created reaches the pool size. Several
/// `Warm`s during one warm-up coalesce: each is answered with that warm-up's
/// report when it ends.
#[derive(Clone, Copy, Debug, Default, Message)]
#[rtype(result = "WarmReport")]
pub struct Warm;

/// Reconciles with the kernel after a restart. `used` lists every tap the
/// orchestrator's VMs hold. The pool lists the kernel's tun/tap devices, then:
/// gives each listed tap the kernel has a lease ([`SeedReport::held`]: release
/// those tokens when the VMs are done),
/// adopts its idle taps from the earlier run (up to the size, after a reset),
/// deletes its other taps nobody holds, leaves alone any a process has open
/// (and reports them), reports listed names the kernel does not have, and
/// starts the index above every pool index seen. Deletes finish in the
/// background.
#[derive(Clone, Debug, Default, Message)]
#[rtype(result = "Result<SeedReport, Error>")]
pub struct Seed {
    /// Every tap name in use by the orchestrator's VMs.
    pub used: Vec<TapName>,
}

/// Waits until the pool's background work is done, and reports its counts
/// then: no kernel call in flight or queued (released taps are back in the
/// pool, Seed's resets and deletes are done, the warm-up has ended) and no
/// `Acquire` waiting. Retries scheduled for later (a failed delete's, a
/// failed warm-up's) do not count; the stats tell them
/// (`delete_failed`). Where nothing is under way, answered at once.
#[derive(Clone, Copy, Debug, Default, Message)]
#[rtype(result = "Result<PoolStats, Error>")]
pub struct Settle;

/// Reports the pool's counts and counters.
#[derive(Clone, Copy, Debug, Default, Message)]
#[rtype(result = "PoolStats")]
pub struct Stats;

/// Shuts the pool down: stops warming for good, waits for creates in flight,
/// and deletes every idle tap, in one group delete where the pool has a device
/// group. Leased taps are left to their holders; releasing one afterwards
/// deletes it. Once a `Drain` is answered, stopping the pool in any way
/// below starts no new kernel work: it only sees through what is still
/// under way (a released tap's delete, a failed delete's retry).
///
/// # Shutting down without a `Drain`
///
/// - **Every address to the actor dropped**, while its runtime runs on: the
///   actor drains the same way, and keeps running until the drain is done.
///   If the runtime stops first, the next case finishes the drain.
/// - **The actix System stopped** (`System::current().stop()`, the end of
///   `#[actix::main]`'s `main`, a panic unwinding out of it) **or the
///   `Arbiter` the pool runs on stopped**: the runtime drops the actor
///   without letting it run again, and dropping it drains the pool on the
///   dropping thread, blocking: creates and resets in flight are waited for
///   and their taps deleted, a tap created for an `Acquire` whose caller
///   is gone is deleted (the caller, if still there, hears
///   [`Error::Stopped`](crate::Error::Stopped) or a mailbox error), failed
///   deletes are retried, until only leased taps are left, or for at most
///   the shutdown deadline ([`SHUTDOWN_DEADLINE`](crate::SHUTDOWN_DEADLINE),
///   30 s, or [`PoolBuilder::shutdown_deadline`](crate::PoolBuilder::shutdown_deadline)),
///   after which what is left is logged (a `warn`) and left in the kernel.
///   For the System this happens when its runtime is dropped:
///   `SystemRunner::run` drops it before it returns, and after
///   `SystemRunner::block_on` (as in `#[actix::main]`) dropping the runner
///   does. For an arbiter, on the arbiter's thread as it ends:
///   `Arbiter::join` returns after the drain. Stopping the System stops
///   every arbiter but does not wait for their threads: join an arbiter
///   that runs a pool before the process exits.
/// - **The process ends without any of these**: `std::process::exit`, a
///   panic that aborts, `SIGKILL`, or a signal the process does not handle
///   (`SIGTERM`, `SIGINT` by default) run nothing, and every tap stays in
///   the kernel. The next start's [`Seed`] adopts or deletes them.
#[derive(Clone, Copy, Debug, Default, Message)]
#[rtype(result = "DrainReport")]
pub struct Drain;
