//! [`NetlinkActor`]: the only place kernel calls run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext, WeakRecipient};
use tap_pool::{CreatedTap, Kernel, KernelError, KernelFactory, LinkInfo, TapName, TapSpec};
use tracing::{debug, debug_span, warn};

/// How many kernel worker threads a pool uses unless told otherwise.
pub const DEFAULT_WORKERS: usize = 2;

/// Runs kernel calls on worker threads of a [`SyncArbiter`], so that slow
/// calls never block the pool's bookkeeping.
///
/// Each worker opens its own [`Kernel`] handle on its own thread (for Linux:
/// its own netlink socket, inside the pool's network namespace). A worker whose
/// handle fails at the socket level, or panics, drops the handle and opens a
/// new one on its next call; a worker never dies, and a panic is answered as
/// [`KernelError::Panicked`].
pub struct NetlinkActor {
    factory: Arc<dyn KernelFactory>,
    kernel: Option<Box<dyn Kernel>>,
}

impl NetlinkActor {
    /// Starts `workers` worker threads (at least one), each driving its own
    /// handle from `factory`.
    pub fn start(factory: Arc<dyn KernelFactory>, workers: usize) -> Addr<NetlinkActor> {
        SyncArbiter::start(workers.max(1), move || NetlinkActor {
            factory: Arc::clone(&factory),
            kernel: None,
        })
    }

    fn call<T>(
        &mut self,
        op: &'static str,
        name: Option<TapName>,
        f: impl FnOnce(&mut dyn Kernel) -> Result<T, KernelError>,
    ) -> Result<T, KernelError> {
        let span = debug_span!("kernel", op, name = name.as_ref().map(TapName::as_str));
        let _entered = span.enter();
        let kernel = match &mut self.kernel {
            Some(k) => k,
            slot @ None => slot.insert(self.factory.open().inspect_err(|e| {
                warn!(error = %e, "kernel worker cannot open its kernel handle");
            })?),
        };
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| f(kernel.as_mut())));
        let elapsed_us = start.elapsed().as_micros() as u64;
        let result = result.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(KernelError::Panicked { op, message })
        });
        match &result {
            Ok(_) => debug!(elapsed_us, "kernel call done"),
            Err(error) => debug!(elapsed_us, %error, "kernel call failed"),
        }
        if matches!(
            result,
            Err(KernelError::Socket { .. } | KernelError::Panicked { .. })
        ) {
            // The handle may be broken; the next call opens a fresh one.
            self.kernel = None;
        }
        result
    }
}

impl Actor for NetlinkActor {
    type Context = SyncContext<Self>;
}

/// Creates and configures a tap. Answered by [`NetlinkActor`].
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<CreatedTap, KernelError>")]
pub struct CreateTap {
    /// The name to create.
    pub name: TapName,
    /// How to make it.
    pub spec: TapSpec,
}

/// Deletes a device. Answered by [`NetlinkActor`].
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<(), KernelError>")]
pub struct DeleteTap {
    /// The device to delete.
    pub name: TapName,
}

/// Puts a released tap back to its pooled configuration. Answered by
/// [`NetlinkActor`].
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<(), KernelError>")]
pub struct ResetTap {
    /// The tap.
    pub name: TapName,
    /// Its pooled configuration.
    pub spec: TapSpec,
    /// The Ethernet address it was created with.
    pub mac: [u8; 6],
}

/// Resets several released taps, one after another, in one hand-off to a
/// worker. The outcomes go to `report_to` as [`ResetDone`]s, before the batch
/// itself is answered: all in one when the resets are quick, else at least
/// every [`RESET_REPORT_EVERY`], so that a tap is back in service soon after
/// its own reset rather than after its whole batch.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ResetTaps {
    /// The resets, in order.
    pub resets: Vec<ResetTap>,
    /// Who hears each outcome (held weakly: a pool that is gone hears
    /// nothing).
    pub report_to: WeakRecipient<ResetDone>,
}

/// How some resets of a [`ResetTaps`] batch ended, in order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ResetDone(pub Vec<(TapName, Result<(), KernelError>)>);

/// How long finished resets of a batch may wait to be reported together.
pub const RESET_REPORT_EVERY: Duration = Duration::from_millis(1);

/// Moves a device into a device group. Answered by [`NetlinkActor`].
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<(), KernelError>")]
pub struct SetDeviceGroup {
    /// The device.
    pub name: TapName,
    /// The group (0 is the default).
    pub group: u32,
}

/// Deletes every device in a group with one request. Answered by
/// [`NetlinkActor`].
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<(), KernelError>")]
pub struct DeleteGroup {
    /// The group.
    pub group: u32,
}

/// Names every device in a device group. Answered by [`NetlinkActor`].
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<Vec<TapName>, KernelError>")]
pub struct ListGroup {
    /// The group.
    pub group: u32,
}

/// Lists every tun/tap device. Answered by [`NetlinkActor`].
#[derive(Clone, Copy, Debug, Default, Message)]
#[rtype(result = "Result<Vec<LinkInfo>, KernelError>")]
pub struct ListTaps;

impl Handler<CreateTap> for NetlinkActor {
    type Result = Result<CreatedTap, KernelError>;
    fn handle(&mut self, msg: CreateTap, _: &mut SyncContext<Self>) -> Self::Result {
        self.call("create", Some(msg.name), |k| {
            k.create_tap(msg.name, &msg.spec)
        })
    }
}

impl Handler<DeleteTap> for NetlinkActor {
    type Result = Result<(), KernelError>;
    fn handle(&mut self, msg: DeleteTap, _: &mut SyncContext<Self>) -> Self::Result {
        self.call("delete", Some(msg.name), |k| k.delete_link(msg.name.into()))
    }
}

impl Handler<ListTaps> for NetlinkActor {
    type Result = Result<Vec<LinkInfo>, KernelError>;
    fn handle(&mut self, _: ListTaps, _: &mut SyncContext<Self>) -> Self::Result {
        self.call("list", None, |k| k.list_taps())
    }
}

impl Handler<ResetTap> for NetlinkActor {
    type Result = Result<(), KernelError>;
    fn handle(&mut self, msg: ResetTap, _: &mut SyncContext<Self>) -> Self::Result {
        self.call("reset", Some(msg.name), |k| {
            k.reset_tap(msg.name.into(), &msg.spec, msg.mac)
        })
    }
}

impl Handler<ResetTaps> for NetlinkActor {
    type Result = ();
    fn handle(&mut self, msg: ResetTaps, ctx: &mut SyncContext<Self>) {
        let report = |done: &mut Vec<_>| {
            if let Some(to) = msg.report_to.upgrade() {
                to.do_send(ResetDone(std::mem::take(done)));
            }
        };
        let mut done = Vec::with_capacity(msg.resets.len());
        let mut reported = Instant::now();
        for reset in msg.resets.iter().copied() {
            done.push((reset.name, self.handle(reset, ctx)));
            if reported.elapsed() >= RESET_REPORT_EVERY {
                report(&mut done);
                reported = Instant::now();
            }
        }
        if !done.is_empty() {
            report(&mut done);
        }
    }
}

impl Handler<SetDeviceGroup> for NetlinkActor {
    type Result = Result<(), KernelError>;
    fn handle(&mut self, msg: SetDeviceGroup, _: &mut SyncContext<Self>) -> Self::Result {
        self.call("set_device_group", Some(msg.name), |k| {
            k.set_device_group(msg.name.into(), msg.group)
        })
    }
}

impl Handler<DeleteGroup> for NetlinkActor {
    type Result = Result<(), KernelError>;
    fn handle(&mut self, msg: DeleteGroup, _: &mut SyncContext<Self>) -> Self::Result {
        self.call("delete_group", None, |k| k.delete_group(msg.group))
    }
}

impl Handler<ListGroup> for NetlinkActor {
    type Result = Result<Vec<TapName>, KernelError>;
    fn handle(&mut self, msg: ListGroup, _: &mut SyncContext<Self>) -> Self::Result {
        self.call("list_group", None, |k| k.list_group(msg.group))
    }
}
