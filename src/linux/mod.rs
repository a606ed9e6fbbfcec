//! The real kernel: taps made through `/dev/net/tun`, configured, listed and
//! deleted over rtnetlink.
//!
//! A [`LinuxKernel`] is bound to the network namespace of the thread that
//! opened it: its netlink socket was opened there, and every tap it makes is
//! made by opening `/dev/net/tun` on the calling thread. Use it on the thread
//! that opened it, as the pool's kernel workers do.

mod netns;
mod rtnl;
mod tun;

use std::time::Instant;

pub use netns::{Netns, enter};

use crate::kernel::{Kernel, KernelError, KernelFactory, LinkInfo, TapSpec};
use crate::name::TapName;
use rtnl::{LinkConfig, NlError, Rtnl};

/// The Linux implementation of [`Kernel`].
pub struct LinuxKernel {
    rtnl: Rtnl,
}

impl LinuxKernel {
    /// Opens a handle in the calling thread's network namespace.
    pub fn open() -> Result<LinuxKernel, KernelError> {
        let rtnl = Rtnl::open().map_err(|errno| KernelError::Socket { errno })?;
        Ok(LinuxKernel { rtnl })
    }

    /// The interface index of the bridge `spec` names, if any. Looked up
    /// before the tap is made, so a missing bridge costs no tap.
    fn resolve_master(
        &mut self,
        name: TapName,
        spec: &TapSpec,
    ) -> Result<Option<u32>, KernelError> {
        let Some(bridge) = spec.bridge else {
            return Ok(None);
        };
        match self.rtnl.link_index(bridge) {
            Ok(Some(index)) => Ok(Some(index)),
            Ok(None) => Err(KernelError::BridgeMissing { name, bridge }),
            Err(e) => Err(configure_error(name, e)),
        }
    }

    /// Brings up, sizes, enslaves and tags the freshly made tap `name`.
    fn configure(
        &mut self,
        name: TapName,
        spec: &TapSpec,
        master: Option<u32>,
    ) -> Result<(), KernelError> {
        let config = LinkConfig {
            mtu: spec.mtu,
            master,
            group: spec.device_group,
        };
        self.rtnl
            .set_link(name, config)
            .map_err(|e| match (e, spec.bridge) {
                (NlError::Kernel { errno, .. }, Some(bridge)) if errno.0 == libc::EXFULL => {
                    KernelError::BridgeFull { name, bridge }
                }
                // The bridge went away between looking it up and attaching.
                (NlError::Kernel { errno, .. }, Some(bridge)) if errno.0 == libc::ENODEV => {
                    KernelError::BridgeMissing { name, bridge }
                }
                (e, _) => configure_error(name, e),
            })
    }
}

impl Kernel for LinuxKernel {
    fn create_tap(
        &mut self,
        name: TapName,
        spec: &TapSpec,
    ) -> Result<crate::kernel::CreatedTap, KernelError> {
        let _span = tracing::debug_span!("create_tap", %name).entered();
        let start = Instant::now();
        let result = self.resolve_master(name, spec).and_then(|master| {
            tun::create_persistent_tap(name, spec)?;
            self.configure(name, spec, master).inspect_err(|_| {
                // The tap is persistent by now: it stays unless deleted.
                if let Err(e) = self.rtnl.del_link(name) {
                    tracing::warn!(%name, error = ?e, "could not remove a tap that failed to configure");
                }
            })
        });
        tracing::debug!(
            elapsed_us = start.elapsed().as_micros() as u64,
            ok = result.is_ok(),
            "create_tap"
        );
        result.map(|()| crate::kernel::CreatedTap {
            index: 0,
            mac: [0; 6],
        }) // STUB
    }
    fn reset_tap(&mut self, name: TapName, _: &TapSpec, _: [u8; 6]) -> Result<(), KernelError> {
        Err(KernelError::Reset {
            name,
            errno: crate::Errno(libc::ENOSYS),
            ext_ack: None,
        }) // STUB
    }
    fn set_device_group(&mut self, name: TapName, _: u32) -> Result<(), KernelError> {
        Err(KernelError::Configure {
            name,
            errno: crate::Errno(libc::ENOSYS),
            ext_ack: None,
        }) // STUB
    }
    fn delete_group(&mut self, group: u32) -> Result<(), KernelError> {
        Err(KernelError::DeleteGroup {
            group,
            errno: crate::Errno(libc::ENOSYS),
            ext_ack: None,
        }) // STUB
    }

    fn delete_link(&mut self, name: TapName) -> Result<(), KernelError> {
        let _span = tracing::debug_span!("delete_link", %name).entered();
        let start = Instant::now();
        let result = self.rtnl.del_link(name).map_err(|e| match e {
            NlError::Kernel { errno, .. } if errno.0 == libc::ENODEV => {
                KernelError::NoSuchDevice { name }
            }
            NlError::Kernel { errno, ext_ack } => KernelError::Delete {
                name,
                errno,
                ext_ack,
            },
            NlError::Socket(errno) => KernelError::Socket { errno },
        });
        tracing::debug!(
            elapsed_us = start.elapsed().as_micros() as u64,
            ok = result.is_ok(),
            "delete_link"
        );
        result
    }

    fn list_taps(&mut self) -> Result<Vec<LinkInfo>, KernelError> {
        let _span = tracing::debug_span!("list_taps").entered();
        let start = Instant::now();
        let result = self.rtnl.tun_links().map_err(|e| match e {
            NlError::Kernel { errno, ext_ack } => KernelError::List { errno, ext_ack },
            NlError::Socket(errno) => KernelError::Socket { errno },
        });
        tracing::debug!(
            elapsed_us = start.elapsed().as_micros() as u64,
            count = result.as_ref().map_or(0, Vec::len),
            ok = result.is_ok(),
            "list_taps"
        );
        result
    }
}

fn configure_error(name: TapName, e: NlError) -> KernelError {
    match e {
        NlError::Kernel { errno, ext_ack } => KernelError::Configure {
            name,
            errno,
            ext_ack,
        },
        NlError::Socket(errno) => KernelError::Socket { errno },
    }
}

/// Opens a [`LinuxKernel`] per worker thread, in the pool's network namespace.
#[derive(Clone, Debug, Default)]
pub struct LinuxKernelFactory {
    /// The namespace each worker enters before opening its socket; `None`
    /// keeps the worker in the namespace it was started in.
    pub netns: Option<Netns>,
}

impl KernelFactory for LinuxKernelFactory {
    /// Moves the calling thread into the namespace (if any), then opens the
    /// socket there: a socket belongs to the namespace of the thread that
    /// opens it, and so does every tap the handle later makes on this thread.
    fn open(&self) -> Result<Box<dyn Kernel>, KernelError> {
        if let Some(netns) = &self.netns {
            enter(netns)?;
        }
        Ok(Box::new(LinuxKernel::open()?))
    }
    fn watch(&self) -> Result<Box<dyn crate::kernel::LinkWatcher>, KernelError> {
        Err(KernelError::Socket {
            errno: crate::Errno(libc::ENOSYS),
        }) // STUB
    }
}

/// From linux/capability.h.
const CAP_NET_ADMIN: u32 = 12;

/// Checks that this process can make taps: `/dev/net/tun` opens and the
/// thread has `CAP_NET_ADMIN`. The `Err` says what is missing, for a test or
/// demo deciding whether to skip.
pub fn probe() -> Result<(), String> {
    tun::open_tun().map_err(|errno| format!("cannot open /dev/net/tun: {errno}"))?;
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .map_err(|e| format!("cannot read /proc/thread-self/status: {e}"))?;
    let cap_eff = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or("no CapEff line in /proc/thread-self/status")?;
    if cap_eff & (1 << CAP_NET_ADMIN) == 0 {
        return Err("CAP_NET_ADMIN is missing".to_owned());
    }
    Ok(())
}
