//! [`LeaseGuard`]: a lease that releases itself unless it is kept.

use std::fmt;
use std::ops::Deref;

use actix::{Addr, WeakAddr};

use crate::messages::{Acquire, Lease, Release, Released};
use crate::{Error, TapPoolActor};

/// What [`Acquire`] answers: a [`Lease`] that is released when dropped,
/// unless kept with [`LeaseGuard::into_lease`].
///
/// So a lease is never left to nobody, whatever path the caller's code takes:
/// a `?`, a panic, a `select!` that drops the losing branch after its answer
/// came, a task aborted mid-way. Dropping sends the [`Release`] without
/// waiting for its answer, from any thread, inside an actix System, a tokio
/// runtime or neither; [`LeaseGuard::release`] waits for it. Keep the
/// lease with `into_lease()` when it must outlive the guard (a VM that runs
/// on after this task, its token stored with the VM's record): its token is
/// then yours to release. It reads as the lease (`guard.name`,
/// `guard.token`).
///
/// ```no_run
/// # use tap_pool_actors::{Acquire, Release, TapPoolActor};
/// # async fn run(pool: actix::Addr<TapPoolActor>) -> Result<(), Box<dyn std::error::Error>> {
/// let tap = pool.send(Acquire::new("vm-17")?).await??;
/// println!("VM 17 runs on {}", tap.name);
/// // ... run the VM; then give it back and wait for the answer (or just
/// // drop it):
/// tap.release().await?;
///
/// // A VM that outlives this task: keep the lease, store its token.
/// let lease = pool.send(Acquire::new("vm-18")?).await??.into_lease();
/// // ... later, from anywhere:
/// pool.send(Release::from(lease)).await??;
/// # Ok(()) }
/// ```
pub struct LeaseGuard {
    lease: Option<Lease>,
    /// Weak: a lease does not keep a pool alive; a pool that is gone has
    /// nothing to take back.
    pool: WeakAddr<TapPoolActor>,
}

impl LeaseGuard {
    /// Guards `lease`, which `pool` handed out (a lease kept earlier with
    /// [`LeaseGuard::into_lease`], or one from `Seed`).
    pub fn new(pool: &Addr<TapPoolActor>, lease: Lease) -> LeaseGuard {
        LeaseGuard::weak(pool.downgrade(), lease)
    }

    pub(crate) fn weak(pool: WeakAddr<TapPoolActor>, lease: Lease) -> LeaseGuard {
        LeaseGuard {
            lease: Some(lease),
            pool,
        }
    }

    /// Acquires a tap from `pool`: `pool.send(acquire)` with the mailbox's
    /// error folded in.
    ///
    /// # Errors
    /// The pool's refusal ([`Error::Pool`]), or [`Error::Stopped`] when the
    /// pool stopped first.
    pub async fn acquire(pool: &Addr<TapPoolActor>, acquire: Acquire) -> Result<LeaseGuard, Error> {
        pool.send(acquire).await.map_err(|_| Error::Stopped)?
    }

    /// The lease.
    pub fn lease(&self) -> &Lease {
        self.deref()
    }

    /// Releases the lease now and waits for the answer.
    ///
    /// # Errors
    /// The pool's refusal ([`Error::Pool`]), or [`Error::Stopped`] when the
    /// pool stopped first.
    pub async fn release(mut self) -> Result<Released, Error> {
        let (Some(lease), Some(pool)) = (self.lease.take(), self.pool.upgrade()) else {
            return Err(Error::Stopped);
        };
        pool.send(Release::from(lease))
            .await
            .map_err(|_| Error::Stopped)?
    }

    /// Keeps the lease: nothing is released on drop.
    pub fn into_lease(mut self) -> Lease {
        self.take()
    }

    /// The lease, disarmed. Only `into_lease`, `release` and `Release::from`
    /// take it, and each consumes the guard, so it is there.
    fn take(&mut self) -> Lease {
        match self.lease.take() {
            Some(lease) => lease,
            None => unreachable!("a guard's lease is taken once, by a call that consumes it"),
        }
    }
}

impl Deref for LeaseGuard {
    type Target = Lease;

    fn deref(&self) -> &Lease {
        match &self.lease {
            Some(lease) => lease,
            None => unreachable!("a guard's lease is taken once, by a call that consumes it"),
        }
    }
}

impl From<LeaseGuard> for Release {
    /// Ends the guarded lease by message (the guard will not release it
    /// again).
    fn from(mut guard: LeaseGuard) -> Release {
        Release::from(guard.take())
    }
}

impl fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        // Kept or released already: nothing to do, and no address to make.
        let Some(lease) = self.lease.take() else {
            return;
        };
        // `do_send`, not `try_send`: a full mailbox must not lose a release.
        let pool = self.pool.upgrade().filter(Addr::connected);
        if let Some(pool) = pool {
            pool.do_send(Release::from(lease));
        } else {
            // The tap stays in the kernel: nobody is left to delete it.
            tracing::warn!(
                tap = %lease.name,
                token = %lease.token,
                "a lease was dropped after its pool stopped; its tap stays until the next Seed"
            );
        }
    }
}
