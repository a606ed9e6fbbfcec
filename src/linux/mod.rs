//! The real kernel: taps made through `/dev/net/tun`, configured, listed and
//! deleted over rtnetlink.
//!
//! A [`LinuxKernel`] is bound to the network namespace of the thread that
//! opened it: its netlink socket was opened there, and every tap it makes is
//! made by opening `/dev/net/tun` on the calling thread. Use it on the thread
//! that opened it, as the pool's kernel workers do.

mod addr;
mod ioctl;
mod leftovers;
mod link;
mod netlink;
mod netns;
mod probe;
#[cfg(test)]
mod proptests;
mod qdisc;
mod route;
mod tun;
mod watch;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

pub use netns::{Netns, enter};
pub use probe::{probe, probe_in};
pub use watch::LinuxLinkWatcher;

use crate::kernel::{
    CreatedTap, Device, Errno, Kernel, KernelError, KernelFactory, LinkInfo, LinkWatcher, Residue,
    TapSpec,
};
use crate::name::TapName;
use crate::probe::ProbeError;
use link::{LinkConfig, Target};
use netlink::{NlError, Rtnl};

/// The Linux implementation of [`Kernel`].
pub struct LinuxKernel {
    rtnl: Rtnl,
}

impl std::fmt::Debug for LinuxKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxKernel").finish_non_exhaustive()
    }
}

impl LinuxKernel {
    /// Opens a handle in the calling thread's network namespace.
    ///
    /// # Errors
    /// [`KernelError::Socket`] when no rtnetlink socket opens.
    pub fn open() -> Result<LinuxKernel, KernelError> {
        let rtnl = Rtnl::open().map_err(|e| socket_error(&e))?;
        Ok(LinuxKernel { rtnl })
    }

    /// The socket of a handle just opened, to hand to a process that
    /// cannot enter this namespace: it lists links here
    /// ([`LinuxKernel::from_socket`]). A socket does not carry its
    /// opener's privilege: the kernel checks the capabilities of the
    /// process that sends each change too, so a process without
    /// `CAP_NET_ADMIN` over the namespace can only read through it.
    ///
    /// # Errors
    /// [`KernelError::Socket`] when no rtnetlink socket opens.
    pub fn open_socket() -> Result<OwnedFd, KernelError> {
        let rtnl = Rtnl::open().map_err(|e| socket_error(&e))?;
        Ok(watch::owned(rtnl.into_socket()))
    }

    /// A handle on a socket [`LinuxKernel::open_socket`] opened, in
    /// whatever namespace that was: listings ([`Kernel::list_taps`],
    /// [`Kernel::list_group`], [`LinuxKernel::links`]) need no privilege;
    /// changes need `CAP_NET_ADMIN` over that namespace, in this process.
    pub fn from_socket(socket: OwnedFd) -> LinuxKernel {
        LinuxKernel {
            rtnl: Rtnl::from_socket(watch::nl_socket(socket)),
        }
    }

    /// The interface index of the bridge `spec` names, if any. Looked up
    /// before anything is changed, so a missing bridge costs no tap.
    fn resolve_master(
        &mut self,
        name: TapName,
        spec: &TapSpec,
    ) -> Result<Option<u32>, KernelError> {
        let Some(bridge) = spec.bridge else {
            return Ok(None);
        };
        match self.rtnl.ifindex(bridge) {
            Ok(index) => Ok(Some(index)),
            Err(errno) if errno.0 == libc::ENODEV => {
                Err(KernelError::BridgeMissing { name, bridge })
            }
            Err(errno) => Err(KernelError::Socket { errno }),
        }
    }

    /// Applies `config` to the tap `name` (interface index `index`) in one
    /// `RTM_SETLINK`, naming a refusal that is about the bridge as such:
    /// `EXFULL` is a full bridge, and a refusal (`ENODEV`, or the `EINVAL` of
    /// an unknown master index) after which the bridge is gone is a missing
    /// bridge. Any other refusal goes to `other`.
    fn set_link(
        &mut self,
        name: TapName,
        index: u32,
        spec: &TapSpec,
        config: LinkConfig,
        other: impl FnOnce(Errno, Option<String>) -> KernelError,
    ) -> Result<(), KernelError> {
        let (errno, ext_ack) = match self.rtnl.set_link(Target::Index(index), config) {
            Ok(()) => return Ok(()),
            Err(NlError::Refused { errno, ext_ack }) => (errno, ext_ack),
            Err(e) => return Err(socket_error(&e)),
        };
        if let Some(bridge) = spec.bridge {
            if errno.0 == libc::EXFULL {
                return Err(KernelError::BridgeFull { name, bridge });
            }
            let gone = matches!(self.rtnl.ifindex(bridge), Err(e) if e.0 == libc::ENODEV);
            if (errno.0 == libc::ENODEV || errno.0 == libc::EINVAL) && gone {
                return Err(KernelError::BridgeMissing { name, bridge });
            }
        }
        Err(other(errno, ext_ack))
    }

    fn create(&mut self, name: TapName, spec: &TapSpec) -> Result<CreatedTap, KernelError> {
        let configure_error = |errno, ext_ack| KernelError::Configure {
            name,
            errno,
            ext_ack,
        };
        let master = self.resolve_master(name, spec)?;
        // Not persistent yet: if this process dies before `persist`, the
        // kernel closes the file and removes the device. See `tun`.
        let tap = tun::new_tap(name, spec)?;
        let index = self
            .rtnl
            .ifindex(name)
            .map_err(|errno| configure_error(errno, None))?;
        let configured = tap
            .mac()
            .map_err(|errno| configure_error(errno, None))
            .and_then(|mac| {
                let config = LinkConfig {
                    up: true,
                    mtu: spec.mtu,
                    master,
                    group: spec.device_group,
                    ..LinkConfig::default()
                };
                self.set_link(name, index, spec, config, configure_error)?;
                Ok(mac)
            });
        // A multi-queue tap takes more than one file, and until its owner
        // was set anyone could attach a queue: none but this one may be
        // there before it is handed to anyone.
        let configured = configured.and_then(|mac| {
            if spec.multi_queue && self.tun_link(name, index)?.in_use_by_others() {
                return Err(KernelError::Residue {
                    name,
                    index,
                    residue: Residue::Attached,
                });
            }
            Ok(mac)
        });
        match configured.and_then(|mac| tap.persist().map(|()| mac)) {
            Ok(mac) => Ok(CreatedTap { index, mac }),
            Err(e) => {
                self.discard(name, index);
                Err(e)
            }
        }
    }

    /// Removes the half-made tap `name` (index `index`) after a failed
    /// create, at once.
    ///
    /// Closing its file removes it too, but not necessarily at once: a child
    /// that another thread forks (to run a VMM, say) holds a copy of every
    /// descriptor until it execs, `O_CLOEXEC` or not, and the device lives
    /// until the last copy closes. Deleted by index, so that no later device
    /// of the same name is touched; the create's own error is what the
    /// caller sees either way.
    fn discard(&mut self, name: TapName, index: u32) {
        match self.rtnl.del_link(Target::Index(index)) {
            Ok(()) => {}
            Err(NlError::Refused { errno, .. }) if errno.0 == libc::ENODEV => {}
            Err(e) => {
                tracing::warn!(%name, index, error = %Chain(&e), "could not remove a tap that failed to configure; closing it will");
            }
        }
    }

    /// The interface index a call about `device` may act on, once one
    /// `RTM_GETLINK` has shown that the link there is what the pool made:
    /// the link at `device.index` (or, for a device known only by name, the
    /// link of that name) must be a tap, else [`KernelError::NotATap`]; and
    /// it must still have the pool's name, else [`KernelError::Renamed`],
    /// unless `on_rename` follows it. No such link is
    /// [`KernelError::NoSuchDevice`]; any other refusal goes to `refused`.
    /// Nothing is changed here.
    ///
    /// A tap renamed to any name is `Renamed` with that name, byte for byte
    /// (UTF-8 or not: every name the kernel gives a device is a
    /// [`TapName`]); with no name only if the kernel sent none.
    ///
    /// The check and the call after it are two requests, not one: a rename
    /// in between goes unnoticed, but an index names one device for as long
    /// as it lives, so the call can only ever reach the device checked.
    fn verify(
        &mut self,
        device: Device,
        on_rename: OnRename,
        refused: impl FnOnce(Errno, Option<String>) -> KernelError,
    ) -> Result<u32, KernelError> {
        let name = device.name;
        let link = self
            .rtnl
            .link(target(device))
            .map_err(tap_error(name, refused))?;
        let index = link.index;
        if !link.tap {
            return Err(KernelError::NotATap { name, index });
        }
        match (link.name, on_rename) {
            (_, OnRename::Follow) => Ok(index),
            (Some(now), OnRename::Refuse) if now == name => Ok(index),
            (Some(now), OnRename::Refuse) => Err(KernelError::Renamed {
                name,
                index,
                now: Some(now),
            }),
            // Still the tap the pool made, under a name it cannot even
            // write: renamed all the same (never "not a tap", which would
            // make the pool forget a device that is there).
            (None, OnRename::Refuse) => Err(KernelError::Renamed {
                name,
                index,
                now: None,
            }),
        }
    }

    fn reset(&mut self, device: Device, spec: &TapSpec, mac: [u8; 6]) -> Result<(), KernelError> {
        let name = device.name;
        let reset_error = |errno: Errno, ext_ack| {
            if errno.0 == libc::ENODEV {
                KernelError::NoSuchDevice { name }
            } else {
                KernelError::Reset {
                    name,
                    errno,
                    ext_ack,
                }
            }
        };
        let nl_error = |e: NlError| match e {
            NlError::Refused { errno, ext_ack } => reset_error(errno, ext_ack),
            e => socket_error(&e),
        };
        let index = self.verify(device, OnRename::Refuse, reset_error)?;
        let master = self.resolve_master(name, spec)?;
        self.reset_tun(device, index, spec)?;
        // What the orchestrator may have added for the last tenant (routes,
        // qdiscs, flags, bridge-port settings, per-device sysctls); leaves
        // the tap down and detached, and says what the final RTM_SETLINK
        // sets besides.
        let leftover_error = |e| match e {
            leftovers::Leftover::Failed(e) => nl_error(e),
            // A residue: the pool deletes the tap and replaces it.
            leftovers::Leftover::CannotRestore(what) => KernelError::Residue {
                name,
                index,
                residue: Residue::Leftover(what.to_string()),
            },
        };
        let fresh =
            leftovers::clear(&mut self.rtnl, name, index, spec, mac).map_err(leftover_error)?;
        // Every address goes, link-local ones too: a tenant may have added
        // its own fe80:: address, or changed the MAC that the kernel's one
        // was derived from. The kernel adds a link-local address again,
        // derived from the restored MAC, when the next tenant's carrier
        // comes up (or at once below, if the tap is still attached).
        for address in self.rtnl.addresses(index).map_err(nl_error)? {
            match self.rtnl.del_addr(&address) {
                Ok(()) => {}
                // Gone already: an IPv4 primary address takes its
                // secondaries with it.
                Err(NlError::Refused { errno, .. }) if errno.0 == libc::EADDRNOTAVAIL => {}
                Err(e) => return Err(nl_error(e)),
            }
            tracing::trace!(family = address.family(), "address removed");
        }
        // Routes still through the tap now that it is down and has no
        // address (routes of scope host, multipath ones).
        leftovers::clear_routes(&mut self.rtnl, index).map_err(leftover_error)?;
        let config = LinkConfig {
            up: true,
            mtu: Some(spec.mtu_or_default()),
            // 0 detaches from whatever master the tenant chose.
            master: Some(master.unwrap_or(0)),
            group: Some(spec.device_group.unwrap_or(0)),
            // The MAC (if it differs), the flags, and the link settings
            // that differ from a fresh tap's.
            ..fresh
        };
        self.set_link(name, index, spec, config, reset_error)?;
        self.check_reset(name, index, spec, master, mac)
    }

    /// Puts back the tun device's own state, which its tenant could change
    /// through its file without any capability (see [`tun::Attached`]), or
    /// says why it cannot ([`KernelError::Residue`]): a file still attached,
    /// an owner or group the spec lacks (the kernel cannot unset either), a
    /// link type other than Ethernet, the other multi-queue flag.
    ///
    /// It attaches to the tap itself: on a single-queue tap that succeeds
    /// only if no other file is attached, the one test of that a tenant
    /// cannot forge (the carrier it can turn off). While attached, nobody
    /// else can attach; the owner and group are put back before it lets go.
    fn reset_tun(&mut self, device: Device, index: u32, spec: &TapSpec) -> Result<(), KernelError> {
        let name = device.name;
        let residue = |residue| KernelError::Residue {
            name,
            index,
            residue,
        };
        let refused = |errno: Errno| KernelError::Reset {
            name,
            errno,
            ext_ack: None,
        };
        let link = self.tun_link(name, index)?;
        // SAFETY: geteuid cannot fail and touches no memory.
        let owner = spec.effective_owner(unsafe { libc::geteuid() });
        link.fixed_residue(spec, owner).map_err(residue)?;
        if spec.multi_queue && link.in_use {
            return Err(residue(Residue::Attached));
        }
        let tap = self.attach_alone(
            device,
            index,
            spec,
            &|errno, ext_ack| reset_error_for(name)(errno, ext_ack),
            || residue(Residue::Attached),
        )?;
        tap.restore(owner, spec.group).map_err(|e| match e {
            tun::TunRestore::Refused(what, errno) => {
                tracing::debug!(%name, what, %errno, "a tun setting could not be put back");
                refused(errno)
            }
            tun::TunRestore::Differs(what) => residue(Residue::TunState(what.into())),
        })?;
        if spec.multi_queue {
            // Queues attached before this one took the owner back.
            let link = self.tun_link(name, index)?;
            if link.in_use_by_others() {
                return Err(residue(Residue::Attached));
            }
        }
        tap.persist().map_err(refused)
    }

    /// Attaches to the tap `device`, at `index` (checked by the caller),
    /// with `spec`'s flags, the way a VMM does: on a single-queue tap that
    /// succeeds only if no other file is attached, and while the returned
    /// file is held no other can attach. A tap that stays busy is `busy()`;
    /// a refusal is `refused`'s; a tap that went or was renamed meanwhile
    /// is [`KernelError::NoSuchDevice`] or what [`Self::verify`] says.
    fn attach_alone(
        &mut self,
        device: Device,
        index: u32,
        spec: &TapSpec,
        refused: &dyn Fn(Errno, Option<String>) -> KernelError,
        busy: impl FnOnce() -> KernelError,
    ) -> Result<tun::Attached, KernelError> {
        let name = device.name;
        // A tap a file is attached to answers EBUSY. A process that forks
        // while some thread of it holds a tun file keeps a copy in the
        // child until it execs, so a tap can look held for that long by
        // nobody's intent: tried again, a millisecond apart, each time
        // only once the index shows the tap still there (a TUNSETIFF of a
        // name no device has would make one).
        let mut tries = 1;
        let tap = loop {
            match tun::attach(name, spec) {
                Ok(tap) => break tap,
                Err(errno) if errno.0 == libc::EBUSY && tries < ATTACH_TRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    self.verify(device, OnRename::Refuse, |errno, ext_ack| {
                        refused(errno, ext_ack)
                    })?;
                }
                Err(errno) if errno.0 == libc::EBUSY => return Err(busy()),
                Err(errno) => return Err(refused(errno, None)),
            }
        };
        // Attached by name: it must be the tap at `index`. Else the tap
        // went or was renamed in between, and the attach may have made a
        // device of that name: it goes now, by index, rather than with the
        // last copy of the file. Told apart from someone else's device
        // while this file still holds it: one the attach made is not
        // persistent, has no owner or group, and no file but this one.
        match self.rtnl.ifindex(name) {
            Ok(i) if i == index => Ok(tap),
            found => {
                if let Ok(made) = found
                    && let Ok(Some(link)) = self.rtnl.tun_link(made)
                    && !link.persistent
                    && link.owner.is_none()
                    && link.group.is_none()
                    && !link.in_use_by_others()
                {
                    self.discard(name, made);
                }
                drop(tap);
                self.verify(device, OnRename::Refuse, |errno, ext_ack| {
                    refused(errno, ext_ack)
                })?;
                Err(KernelError::NoSuchDevice { name })
            }
        }
    }

    /// Takes hold of the tap `device` that no process has attached, so
    /// that none can while it is held: it attaches to the tap itself (with
    /// the tap's own vnet header and queue flags, as a VMM would), which a
    /// single-queue tap allows only when no other file is attached, and
    /// then refuses every other (`EBUSY`). Delete it while it is held
    /// ([`Kernel::delete_link`] by index, or [`Kernel::delete_group`]) and
    /// no VMM that opens it between a listing and the delete loses its
    /// device: the `gc` of the `tap-pool` tool does this.
    ///
    /// A multi-queue tap takes more than one file: it is held only if no
    /// queue but this one is attached once attached, and a process can
    /// still attach a queue of its own after that check.
    ///
    /// Dropping the [`HeldTap`] detaches (a tap that was persistent stays,
    /// with the flags it had, but `IFF_NO_PI`, which this attach sets).
    ///
    /// # Errors
    /// [`KernelError::InUse`] when a process has the tap attached;
    /// [`KernelError::NoSuchDevice`], [`KernelError::NotATap`] or
    /// [`KernelError::Renamed`] when the device at `device`'s index (or of
    /// its name) is gone, is not a tap or no longer has its name;
    /// [`KernelError::Delete`] with the errno when the kernel refuses the
    /// attach (`EPERM` without `CAP_NET_ADMIN` for a tap of another owner);
    /// [`KernelError::Socket`] when the netlink socket fails.
    pub fn hold(&mut self, device: Device) -> Result<HeldTap, KernelError> {
        let name = device.name;
        let refused = |errno: Errno, ext_ack| {
            if errno.0 == libc::ENODEV {
                KernelError::NoSuchDevice { name }
            } else {
                KernelError::Delete {
                    name,
                    errno,
                    ext_ack,
                }
            }
        };
        let index = self.verify(device, OnRename::Refuse, refused)?;
        let in_use = KernelError::InUse { name, index };
        let link = match self.rtnl.tun_link(index) {
            Ok(Some(link)) => link,
            Ok(None) => return Err(KernelError::NotATap { name, index }),
            Err(e) => return Err(tap_error(name, refused)(e)),
        };
        if link.multi_queue && link.in_use {
            return Err(in_use);
        }
        let spec = TapSpec {
            vnet_hdr: link.vnet_hdr,
            multi_queue: link.multi_queue,
            ..TapSpec::default()
        };
        let file = self.attach_alone(device, index, &spec, &refused, || in_use.clone())?;
        if link.multi_queue {
            match self.rtnl.tun_link(index) {
                Ok(Some(link)) if !link.in_use_by_others() => {}
                Ok(Some(_)) => return Err(in_use),
                Ok(None) => return Err(KernelError::NotATap { name, index }),
                Err(e) => return Err(tap_error(name, refused)(e)),
            }
        }
        Ok(HeldTap {
            device: Device::new(name, index),
            _file: file,
        })
    }

    /// Every link in the namespace, of any kind, from one `RTM_GETLINK`
    /// dump: its index, name, kind, master and device group. For tools that
    /// show a tap's master by name, count a bridge's ports, or look at the
    /// highest index in use.
    ///
    /// # Errors
    /// [`KernelError::List`] when the kernel refuses the dump,
    /// [`KernelError::Socket`] when the socket fails.
    pub fn links(&mut self) -> Result<Vec<LinkSummary>, KernelError> {
        self.rtnl.link_summaries().map_err(list_error)
    }

    /// The interface index of the link named `name` in this handle's
    /// namespace, or `None` if there is none (one `SIOCGIFINDEX`).
    ///
    /// # Errors
    /// [`KernelError::Socket`] when the kernel answers otherwise.
    pub fn index_of(&self, name: TapName) -> Result<Option<u32>, KernelError> {
        match self.rtnl.ifindex(name) {
            Ok(index) => Ok(Some(index)),
            Err(errno) if errno.0 == libc::ENODEV => Ok(None),
            Err(errno) => Err(KernelError::Socket { errno }),
        }
    }

    /// The tun/tap device at interface index `index` as
    /// [`Kernel::list_taps`] reads it (one `RTM_GETLINK`), or `None` if the
    /// device there is not a tun/tap device.
    ///
    /// # Errors
    /// [`KernelError::NoSuchDevice`] (named `name`) when no device has the
    /// index; [`KernelError::List`] or [`KernelError::Socket`] otherwise.
    pub fn tun_device(
        &mut self,
        name: TapName,
        index: u32,
    ) -> Result<Option<LinkInfo>, KernelError> {
        match self.rtnl.tun_link(index) {
            Ok(link) => Ok(link),
            Err(NlError::Refused { errno, .. }) if errno.0 == libc::ENODEV => {
                Err(KernelError::NoSuchDevice { name })
            }
            Err(e) => Err(list_error(e)),
        }
    }

    /// The tun/tap device at `index`, known to the pool as `name`.
    fn tun_link(&mut self, name: TapName, index: u32) -> Result<LinkInfo, KernelError> {
        match self.rtnl.tun_link(index) {
            Ok(Some(link)) => Ok(link),
            Ok(None) => Err(KernelError::NotATap { name, index }),
            Err(e) => Err(tap_error(name, reset_error_for(name))(e)),
        }
    }

    /// Reads the reset tap back (one `RTM_GETLINK`) and checks it is what
    /// the spec makes: [`KernelError::Residue`] if not.
    fn check_reset(
        &mut self,
        name: TapName,
        index: u32,
        spec: &TapSpec,
        master: Option<u32>,
        mac: [u8; 6],
    ) -> Result<(), KernelError> {
        let link = self.tun_link(name, index)?;
        // SAFETY: geteuid cannot fail and touches no memory.
        let owner = spec.effective_owner(unsafe { libc::geteuid() });
        let residue = |residue| KernelError::Residue {
            name,
            index,
            residue,
        };
        link.fixed_residue(spec, owner).map_err(residue)?;
        if spec.multi_queue && link.queues.is_some_and(|queues| queues > 0) {
            // A queue attached since the reset let go: only someone the
            // restored owner and group let in, but not the next tenant's.
            return Err(residue(Residue::Attached));
        }
        let differs = if link.owner != owner {
            Some("owner")
        } else if link.group != spec.group {
            Some("group")
        } else if !link.persistent {
            Some("persistence")
        } else if link.vnet_hdr != spec.vnet_hdr {
            Some("vnet header flag")
        } else if link.mtu != spec.mtu_or_default() {
            Some("MTU")
        } else if link.master != master {
            Some("master")
        } else if link.device_group != spec.device_group.unwrap_or(0) {
            Some("device group")
        } else if link.mac != mac {
            Some("Ethernet address")
        } else if !link.up {
            Some("up flag")
        } else {
            None
        };
        match differs {
            Some(what) => Err(residue(Residue::TunState(what.into()))),
            None => Ok(()),
        }
    }

    /// Deletes the tap `device`, renamed or not: it is the pool's own
    /// device, known by its index. Anything but a tap is refused.
    fn delete(&mut self, device: Device) -> Result<(), KernelError> {
        let name = device.name;
        let delete_error = |errno, ext_ack| KernelError::Delete {
            name,
            errno,
            ext_ack,
        };
        let index = self.verify(device, OnRename::Follow, delete_error)?;
        self.rtnl
            .del_link(Target::Index(index))
            .map_err(tap_error(name, delete_error))
    }

    fn set_group(&mut self, device: Device, group: u32) -> Result<(), KernelError> {
        let name = device.name;
        let configure_error = |errno, ext_ack| KernelError::Configure {
            name,
            errno,
            ext_ack,
        };
        let index = self.verify(device, OnRename::Refuse, configure_error)?;
        let config = LinkConfig {
            group: Some(group),
            ..LinkConfig::default()
        };
        self.rtnl
            .set_link(Target::Index(index), config)
            .map_err(tap_error(name, configure_error))
    }

    fn del_group(&mut self, group: u32) -> Result<(), KernelError> {
        if group == 0 {
            // Every device is in group 0. The kernel would refuse too (EPERM),
            // but it is never even asked.
            return Err(KernelError::DeleteGroup {
                group,
                errno: Errno(libc::EINVAL),
                ext_ack: None,
            });
        }
        match self.rtnl.del_group(group) {
            Ok(()) => Ok(()),
            // The kernel's answer for a group with no device in it: nothing
            // to delete is nothing failed.
            Err(NlError::Refused { errno, .. }) if errno.0 == libc::ENODEV => Ok(()),
            Err(NlError::Refused { errno, ext_ack }) => Err(KernelError::DeleteGroup {
                group,
                errno,
                ext_ack,
            }),
            Err(e) => Err(socket_error(&e)),
        }
    }
}

/// A tap this process holds as its only file ([`LinuxKernel::hold`]): no
/// other process can attach to it (a single-queue one) until this is
/// dropped.
#[derive(Debug)]
pub struct HeldTap {
    device: Device,
    _file: tun::Attached,
}

impl HeldTap {
    /// The tap held: its name and interface index.
    pub fn device(&self) -> Device {
        self.device
    }
}

/// One link of any kind, as [`LinuxKernel::links`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LinkSummary {
    /// The interface index.
    pub index: u32,
    /// The name.
    pub name: TapName,
    /// The kind (`IFLA_INFO_KIND`: `"bridge"`, `"tun"`, `"veth"`,
    /// `"dummy"`...); `None` for a device with none (`lo`, a physical
    /// NIC).
    pub kind: Option<String>,
    /// The master's interface index (a bridge's, for its ports), if any.
    pub master: Option<u32>,
    /// The device group (0 is the kernel's default).
    pub device_group: u32,
}

/// How many times, a millisecond apart, a reset tries to attach to a tap
/// that answers `EBUSY` before it takes the tap for held. A process that
/// forks while some thread of it holds a tun file (the pool's own worker
/// resetting or creating a tap, say) keeps a copy in the child until it
/// execs, so a tap can look held for that long by nobody's intent.
const ATTACH_TRIES: u32 = 3;

/// How a refused reset step reaches the caller.
fn reset_error_for(name: TapName) -> impl FnOnce(Errno, Option<String>) -> KernelError {
    move |errno, ext_ack| {
        if errno.0 == libc::ENODEV {
            KernelError::NoSuchDevice { name }
        } else {
            KernelError::Reset {
                name,
                errno,
                ext_ack,
            }
        }
    }
}

/// What a call does with a tap renamed behind the pool's back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnRename {
    /// Refuses the call ([`KernelError::Renamed`]): a reset or a group
    /// change would put back in service a tap its holder can no longer
    /// open by the name it was given.
    Refuse,
    /// Acts on it all the same: a delete of the pool's own device.
    Follow,
}

/// How a request names `device`: by index once known, so that a device
/// renamed, or a new one made under its old name, is never mistaken for it.
fn target(device: Device) -> Target {
    match device.index {
        Some(index) => Target::Index(index),
        None => Target::Name(device.name),
    }
}

/// A dump that failed.
fn list_error(e: NlError) -> KernelError {
    match e {
        NlError::Refused { errno, ext_ack } => KernelError::List { errno, ext_ack },
        e => socket_error(&e),
    }
}

/// A failure of the socket rather than a refusal by the kernel, as the
/// caller sees it: [`KernelError::Socket`], which carries only the errno
/// (it is `Clone` and `Eq`, and an `io::Error` is neither). The whole chain
/// of causes is logged here, where it is last known.
fn socket_error(e: &NlError) -> KernelError {
    tracing::debug!(error = %Chain(e), "netlink socket failure");
    KernelError::Socket { errno: e.errno() }
}

/// Renders an error and each of its sources, separated by ": ".
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// How a failed request about the device `name` reaches the caller: `ENODEV`
/// is [`KernelError::NoSuchDevice`], a socket failure is
/// [`KernelError::Socket`], and any other refusal is what `refused` makes of
/// it.
fn tap_error(
    name: TapName,
    refused: impl FnOnce(Errno, Option<String>) -> KernelError,
) -> impl FnOnce(NlError) -> KernelError {
    move |e| match e {
        NlError::Refused { errno, .. } if errno.0 == libc::ENODEV => {
            KernelError::NoSuchDevice { name }
        }
        NlError::Refused { errno, ext_ack } => refused(errno, ext_ack),
        e => socket_error(&e),
    }
}

/// Runs one kernel call inside a debug span named `op`, then logs its
/// duration and outcome.
macro_rules! timed {
    ($op:literal, $body:expr $(, $field:ident = $value:expr)*) => {{
        let _span = tracing::debug_span!($op $(, $field = %$value)*).entered();
        let start = Instant::now();
        let result = $body;
        tracing::debug!(
            elapsed_us = start.elapsed().as_micros() as u64,
            ok = result.is_ok(),
            $op
        );
        result
    }};
}

impl Kernel for LinuxKernel {
    fn create_tap(&mut self, name: TapName, spec: &TapSpec) -> Result<CreatedTap, KernelError> {
        timed!("create_tap", self.create(name, spec), name = name)
    }

    fn delete_link(&mut self, device: Device) -> Result<(), KernelError> {
        timed!("delete_link", self.delete(device), device = device)
    }

    fn list_taps(&mut self) -> Result<Vec<LinkInfo>, KernelError> {
        timed!("list_taps", self.rtnl.tun_links().map_err(list_error))
    }

    fn reset_tap(
        &mut self,
        device: Device,
        spec: &TapSpec,
        mac: [u8; 6],
    ) -> Result<(), KernelError> {
        timed!("reset_tap", self.reset(device, spec, mac), device = device)
    }

    fn set_device_group(&mut self, device: Device, group: u32) -> Result<(), KernelError> {
        timed!(
            "set_device_group",
            self.set_group(device, group),
            device = device,
            group = group
        )
    }

    fn delete_group(&mut self, group: u32) -> Result<(), KernelError> {
        timed!("delete_group", self.del_group(group), group = group)
    }

    fn list_group(&mut self, group: u32) -> Result<Vec<TapName>, KernelError> {
        timed!(
            "list_group",
            self.rtnl.group_members(group).map_err(list_error),
            group = group
        )
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

    /// Moves the calling thread into the namespace (if any), then opens the
    /// watcher's socket there, so it sees that namespace's links only.
    fn watch(&self) -> Result<Box<dyn LinkWatcher>, KernelError> {
        if let Some(netns) = &self.netns {
            enter(netns)?;
        }
        Ok(Box::new(LinuxLinkWatcher::open()?))
    }

    /// Opens a namespace given by path, once: every thread of the pool then
    /// enters the namespace the path named when the pool started, even
    /// after the path is unmounted or removed.
    fn resolve(&self) -> Result<Option<Arc<dyn KernelFactory>>, KernelError> {
        match &self.netns {
            Some(netns @ Netns::Path(_)) => Ok(Some(Arc::new(LinuxKernelFactory {
                netns: Some(netns.open()?),
            }))),
            Some(Netns::Fd(_)) | None => Ok(None),
        }
    }

    /// [`probe_in`] the namespace, or [`probe`] here when there is none:
    /// workers without a namespace stay in the one of the thread that
    /// starts them.
    fn probe(&self) -> Result<(), ProbeError> {
        match &self.netns {
            Some(netns) => probe_in(netns),
            None => probe(),
        }
    }
}
