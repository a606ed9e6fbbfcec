//! [`LeaseGuard`]: a lease that releases itself when dropped.

use std::fmt;
use std::ops::Deref;

use actix::Addr;

use crate::messages::{Acquire, Lease, Release, Released};
use crate::{Error, TapPoolActor};

/// A [`Lease`] that is released when dropped, for callers who want one: the
/// tap goes back to the pool (or is deleted) whatever path the caller's code
/// takes out of scope, a `?` or a panic included.
///
/// Dropping sends the [`Release`] without waiting for its answer; call
/// [`LeaseGuard::release`] to wait for it, or [`LeaseGuard::into_lease`] to
/// keep the lease (its token then is yours to release).
///
/// ```no_run
/// # use tap_pool_actors::{Acquire, LeaseGuard, TapPoolActor};
/// # async fn run(pool: actix::Addr<TapPoolActor>) -> Result<(), Box<dyn std::error::Error>> {
/// let tap = LeaseGuard::acquire(&pool, Acquire::new("vm-17")?).await?;
/// println!("VM 17 runs on {}", tap.name);
/// // ... run the VM ...
/// tap.release().await?; // or just drop it
/// # Ok(()) }
/// ```
pub struct LeaseGuard {
    lease: Option<Lease>,
    pool: Addr<TapPoolActor>,
}

impl LeaseGuard {
    /// Guards `lease`, which `pool` handed out.
    pub fn new(pool: Addr<TapPoolActor>, lease: Lease) -> LeaseGuard {
        LeaseGuard {
            lease: Some(lease),
            pool,
        }
    }

    /// Acquires a tap from `pool`, guarded.
    ///
    /// # Errors
    /// The pool's refusal ([`Error::Pool`]), or [`Error::Stopped`] when the
    /// pool stopped first.
    pub async fn acquire(pool: &Addr<TapPoolActor>, acquire: Acquire) -> Result<LeaseGuard, Error> {
        let lease = pool.send(acquire).await.map_err(|_| Error::Stopped)??;
        Ok(LeaseGuard::new(pool.clone(), lease))
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
        let Some(lease) = self.lease.take() else {
            return Err(Error::Stopped);
        };
        self.pool
            .send(Release::from(lease))
            .await
            .map_err(|_| Error::Stopped)?
    }

    /// Keeps the lease: nothing is released on drop.
    pub fn into_lease(mut self) -> Lease {
        // `lease` is `Some` until `release` or this takes it, and both
        // consume the guard.
        self.lease.take().unwrap_or_else(|| unreachable!())
    }
}

impl Deref for LeaseGuard {
    type Target = Lease;

    fn deref(&self) -> &Lease {
        // Some until the guard is consumed.
        self.lease.as_ref().unwrap_or_else(|| unreachable!())
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
        if let Some(lease) = self.lease.take() {
            self.pool.do_send(Release::from(lease));
        }
    }
}
