//! The one seam between the pool and the operating system.
//!
//! [`Kernel`] has two implementations: the real Linux one
//! ([`crate::linux::LinuxKernel`]) and [`crate::sim::SimKernel`], an in-memory
//! kernel that enforces the same rules. The actors drive a `Box<dyn Kernel>` and
//! never know which one it is.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::Arc;

use thiserror::Error;

use crate::name::TapName;
use crate::probe::ProbeError;
use crate::refusal::{HelperFailure, Refusal};

/// How a new tap is made and configured.
///
/// `Copy`, because it travels with every create request. Part of the
/// configuration: start from [`TapSpec::default`] and set the fields you
/// need (the struct is `#[non_exhaustive]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct TapSpec {
    /// The uid allowed to attach to the tap (`TUNSETOWNER`). `None` with no
    /// `group` means the effective uid of the process running the pool: a tap
    /// is never left with neither owner nor group, because such a persistent
    /// tap can be attached by any local user who can open `/dev/net/tun`.
    pub owner: Option<u32>,
    /// The gid allowed to attach to the tap (`TUNSETGROUP`), if any. When both
    /// an owner and a group are set, the kernel (6.14 and later, and the
    /// stable branches) demands that an attaching process match both; set only
    /// a group to let any member of it attach.
    pub group: Option<u32>,
    /// Create the tap with `IFF_VNET_HDR` (Firecracker's default: on).
    pub vnet_hdr: bool,
    /// Create the tap with `IFF_MULTI_QUEUE` (Firecracker's default: off).
    pub multi_queue: bool,
    /// The MTU to set, if not the kernel's default.
    pub mtu: Option<u32>,
    /// The bridge to enslave the tap to, if any.
    pub bridge: Option<TapName>,
    /// The device group (`IFLA_GROUP`) to tag the tap with, if any.
    pub device_group: Option<u32>,
}

/// The MTU a tap has when its spec names none (Ethernet's, the kernel's
/// default for a tap), and what a reset puts back then.
pub const DEFAULT_MTU: u32 = 1500;

impl LinkInfo {
    /// What a reset cannot change on this tun device and the spec does not
    /// have: a link type other than Ethernet, the other multi-queue flag, an
    /// owner or a group where the spec has none (`owner` is the spec's
    /// effective owner). The one rule for every kernel.
    pub(crate) fn fixed_residue(&self, spec: &TapSpec, owner: Option<u32>) -> Result<(), Residue> {
        if self.kind != TunKind::Tap || self.link_type != libc::ARPHRD_ETHER {
            return Err(Residue::LinkType(self.link_type));
        }
        if self.multi_queue != spec.multi_queue {
            return Err(Residue::MultiQueue(self.multi_queue));
        }
        if let (Some(uid), None) = (self.owner, owner) {
            return Err(Residue::Owner(uid));
        }
        if let (Some(gid), None) = (self.group, spec.group) {
            return Err(Residue::Group(gid));
        }
        Ok(())
    }

    /// Whether a multi-queue tap has a queue attached, enabled or not, other
    /// than one file of the caller's own.
    pub(crate) fn in_use_by_others(&self) -> bool {
        self.queues.is_some_and(|queues| queues > 1)
    }
}

impl TapSpec {
    /// The MTU the tap should have: the spec's, or [`DEFAULT_MTU`].
    pub fn mtu_or_default(&self) -> u32 {
        self.mtu.unwrap_or(DEFAULT_MTU)
    }

    /// The owner to set on a new tap, given the pool process's effective uid:
    /// the configured one, or `euid` when neither owner nor group is set.
    pub fn effective_owner(&self, euid: u32) -> Option<u32> {
        match (self.owner, self.group) {
            (Some(owner), _) => Some(owner),
            (None, Some(_)) => None,
            (None, None) => Some(euid),
        }
    }
}

impl Default for TapSpec {
    fn default() -> Self {
        TapSpec {
            owner: None,
            group: None,
            vnet_hdr: true,
            multi_queue: false,
            mtu: None,
            bridge: None,
            device_group: None,
        }
    }
}

/// Whether a tun/tap device carries Ethernet frames (tap) or IP packets (tun).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum TunKind {
    /// An Ethernet-level device (`IFF_TAP`).
    Tap,
    /// An IP-level device (`IFF_TUN`).
    Tun,
}

/// One tun/tap device as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LinkInfo {
    /// The device's name.
    pub name: TapName,
    /// The kernel's interface index.
    pub index: u32,
    /// Tap or tun.
    pub kind: TunKind,
    /// Whether the device outlives its last open file (`TUNSETPERSIST`).
    pub persistent: bool,
    /// The uid allowed to attach, if set.
    pub owner: Option<u32>,
    /// The gid allowed to attach, if set.
    pub group: Option<u32>,
    /// The interface index of the device's master (a bridge), if any.
    pub master: Option<u32>,
    /// The MTU.
    pub mtu: u32,
    /// Whether the device is administratively up (`IFF_UP`).
    pub up: bool,
    /// Whether a process has the device attached: the tun driver's count of
    /// attached queues where it reports one (multi-queue taps), else the
    /// carrier (`IFLA_CARRIER`), which a tap has exactly while some file is
    /// attached, even while the device is down.
    pub in_use: bool,
    /// The device group (`IFLA_GROUP`); 0 is the kernel's default group.
    pub device_group: u32,
    /// The Ethernet address.
    pub mac: [u8; 6],
    /// Whether the device was last attached with `IFF_VNET_HDR` (each
    /// attaching process sets it again).
    pub vnet_hdr: bool,
    /// Whether the device was made with `IFF_MULTI_QUEUE` (fixed at
    /// creation).
    pub multi_queue: bool,
    /// How many files are attached (enabled and disabled queues), where the
    /// tun driver says: for a multi-queue tap only.
    pub queues: Option<u32>,
    /// The link-layer type (`ARPHRD_*`): `ARPHRD_ETHER` for a tap, unless a
    /// process attached to it changed it (`TUNSETLINK`, while it was down).
    pub link_type: u16,
}

/// A device the pool asks the kernel about: its name, and its interface
/// index once known. The index is what identifies it: names can be changed
/// and reused behind the pool's back, an index names one device for as long
/// as it lives (after a delete, a device moved in from another namespace may
/// take it: the link watcher's removal notice comes first). A kernel acts
/// on the index when it has one, and on the name
/// only before the device was ever seen; either way it first checks that
/// the device is a tap, and still has this name where that matters (see
/// [`Kernel::reset_tap`], [`Kernel::delete_link`] and
/// [`Kernel::set_device_group`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Device {
    /// The name the pool gave it.
    pub name: TapName,
    /// Its interface index, once the pool has seen it.
    pub index: Option<u32>,
}

impl Device {
    /// A device known by name and interface index.
    pub fn new(name: TapName, index: u32) -> Device {
        Device {
            name,
            index: Some(index),
        }
    }
}

impl From<TapName> for Device {
    /// A device known only by name.
    fn from(name: TapName) -> Device {
        Device { name, index: None }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "{} (index {index})", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// What the kernel made for a [`Kernel::create_tap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CreatedTap {
    /// The new device's interface index. Names can be reused; an index is
    /// not reused while the kernel runs, so it tells one device of a name
    /// from the next.
    pub index: u32,
    /// The Ethernet address it was given, put back by [`Kernel::reset_tap`].
    pub mac: [u8; 6],
}

/// A change to the kernel's links, seen by a [`LinkWatcher`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// A device was removed, by anyone (`RTM_DELLINK` notification).
    Removed {
        /// Its name.
        name: TapName,
        /// Its interface index.
        index: u32,
    },
    /// A device was renamed, by anyone: the device at `index`, last seen
    /// as `from`, is now `to`. (Watchers report renames of devices they
    /// have seen; a device first seen under its new name is not reported.)
    Renamed {
        /// Its interface index.
        index: u32,
        /// The name it had.
        from: TapName,
        /// The name it has now. Every name the kernel gives a device is a
        /// [`TapName`] (bytes that are not UTF-8 too), so the Linux and
        /// simulated watchers always give it; `None` is for a watcher that
        /// cannot tell (a notification with no name a device can have):
        /// the pool could never open it by name.
        to: Option<TapName>,
    },
    /// Notifications were lost (the socket overran): the watcher's owner
    /// should compare its view with a fresh [`Kernel::list_taps`].
    Resync,
}

/// An errno the kernel answered with (serialized as its number).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Errno(pub i32);

impl Errno {
    /// The errno of an `io::Error`, or `EIO` where it carries none.
    pub fn of(err: &io::Error) -> Errno {
        Errno(err.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.0))
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({}: {})", self.0, self)
    }
}

/// The step of creating a tap that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum CreateStep {
    /// `open("/dev/net/tun")`.
    OpenTun,
    /// `TUNSETIFF`.
    SetIff,
    /// `TUNSETOWNER`.
    SetOwner,
    /// `TUNSETGROUP`.
    SetGroup,
    /// `TUNSETPERSIST`.
    SetPersist,
}

impl fmt::Display for CreateStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CreateStep::OpenTun => "open /dev/net/tun",
            CreateStep::SetIff => "TUNSETIFF",
            CreateStep::SetOwner => "TUNSETOWNER",
            CreateStep::SetGroup => "TUNSETGROUP",
            CreateStep::SetPersist => "TUNSETPERSIST",
        })
    }
}

/// Renders an optional extended-ack message as a suffix.
struct Ack<'a>(&'a Option<String>);

impl fmt::Display for Ack<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(text) => write!(f, " (kernel says: {text})"),
            None => Ok(()),
        }
    }
}

/// A kernel call that failed.
///
/// `Clone` so that one failure can be reported to every caller waiting on the
/// same warm-up.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum KernelError {
    /// A device of that name already exists (`EBUSY` from `TUNSETIFF` with
    /// `IFF_TUN_EXCL`, or `EEXIST`). Nothing was changed.
    #[error("a device named {name} already exists in the kernel")]
    Exists {
        /// The name asked for.
        name: TapName,
    },
    /// No device of that name exists (`ENODEV`).
    #[error("no device named {name} exists in the kernel")]
    NoSuchDevice {
        /// The name asked for.
        name: TapName,
    },
    /// The configured bridge does not exist. The tap was not left behind.
    #[error("cannot attach {name}: bridge {bridge} does not exist")]
    BridgeMissing {
        /// The tap being configured.
        name: TapName,
        /// The missing bridge.
        bridge: TapName,
    },
    /// The bridge has no free port (`EXFULL`: a bridge takes at most 1023
    /// ports). The tap was not left behind.
    #[error("cannot attach {name}: bridge {bridge} is full (a bridge takes at most 1023 ports)")]
    BridgeFull {
        /// The tap being configured.
        name: TapName,
        /// The full bridge.
        bridge: TapName,
    },
    /// A step of creating the tap through `/dev/net/tun` failed. The tap was
    /// not left behind.
    #[error("creating tap {name} failed at {step}: {errno}")]
    Create {
        /// The tap being created.
        name: TapName,
        /// The step that failed.
        step: CreateStep,
        /// What the kernel answered.
        errno: Errno,
    },
    /// Configuring the tap (`RTM_SETLINK`: up, MTU, master, group) failed. The
    /// tap was not left behind.
    #[error("configuring {name} failed: {errno}{}", Ack(ext_ack))]
    Configure {
        /// The tap being configured.
        name: TapName,
        /// What the kernel answered.
        errno: Errno,
        /// The kernel's extended-ack text, when it gave one.
        ext_ack: Option<String>,
    },
    /// Deleting the device (`RTM_DELLINK`) failed.
    #[error("deleting {name} failed: {errno}{}", Ack(ext_ack))]
    Delete {
        /// The device being deleted.
        name: TapName,
        /// What the kernel answered.
        errno: Errno,
        /// The kernel's extended-ack text, when it gave one.
        ext_ack: Option<String>,
    },
    /// Resetting a released tap to its pooled configuration failed.
    #[error("resetting {name} failed: {errno}{}", Ack(ext_ack))]
    Reset {
        /// The tap being reset.
        name: TapName,
        /// What the kernel answered.
        errno: Errno,
        /// The kernel's extended-ack text, when it gave one.
        ext_ack: Option<String>,
    },
    /// Deleting a device group (`RTM_DELLINK` with `IFLA_GROUP`) failed.
    #[error("deleting device group {group} failed: {errno}{}", Ack(ext_ack))]
    DeleteGroup {
        /// The group.
        group: u32,
        /// What the kernel answered.
        errno: Errno,
        /// The kernel's extended-ack text, when it gave one.
        ext_ack: Option<String>,
    },
    /// Listing the devices (`RTM_GETLINK` dump) failed.
    #[error("listing devices failed: {errno}{}", Ack(ext_ack))]
    List {
        /// What the kernel answered.
        errno: Errno,
        /// The kernel's extended-ack text, when it gave one.
        ext_ack: Option<String>,
    },
    /// Opening or using the netlink socket failed.
    #[error("netlink socket failed: {errno}")]
    Socket {
        /// What the kernel answered.
        errno: Errno,
    },
    /// Entering the pool's network namespace failed.
    #[error("entering network namespace {netns} failed: {errno}")]
    Namespace {
        /// The namespace, as configured.
        netns: String,
        /// What the kernel answered.
        errno: Errno,
    },
    /// The device at the interface index the call targets is not a tun/tap
    /// device: whatever the pool made there is gone, and the device now
    /// there was not touched.
    #[error("device {index} (expected {name}) is not a tun/tap device; left alone")]
    NotATap {
        /// The name the pool knows the device by.
        name: TapName,
        /// The interface index targeted.
        index: u32,
    },
    /// The tap at the targeted interface index has been renamed behind the
    /// pool's back: its holder (or the next) could not open it by its old
    /// name. Nothing was changed.
    #[error("tap {name} (index {index}) has been renamed to {}", Unnamed(now))]
    Renamed {
        /// The name the pool knows the tap by.
        name: TapName,
        /// Its interface index.
        index: u32,
        /// Its name now. The Linux and simulated kernels always give it
        /// (every name a device can have is a [`TapName`]); `None` is for
        /// a kernel that cannot tell.
        now: Option<TapName>,
    },
    /// A released tap carries something of its last tenant that a reset
    /// cannot take away, or that did not read back as restored: the tap
    /// must not be handed out again, and is deleted (by index) instead.
    /// Nothing of the next tenant's was exposed: the tap was not pooled.
    #[error("tap {name} (index {index}) cannot be reset: {residue}")]
    Residue {
        /// The name the pool knows the tap by.
        name: TapName,
        /// Its interface index.
        index: u32,
        /// What is left.
        residue: Residue,
    },
    /// A process has the tap attached (a VMM holds it), so it was left
    /// alone: [`LinuxKernel::hold`](crate::LinuxKernel::hold) found a
    /// single-queue tap busy (`EBUSY`), or a multi-queue tap with a queue
    /// attached. Nothing was changed.
    #[error("tap {name} (index {index}) is in use: a process has it attached; left alone")]
    InUse {
        /// The tap's name.
        name: TapName,
        /// Its interface index.
        index: u32,
    },
    /// The privileged helper refused the call by its policy (the name, the
    /// bridge, the owner, a device it did not make for this peer...).
    /// Nothing was changed. Only the helper kernel
    /// ([`HelperKernelFactory`](crate::helper::HelperKernelFactory)) gives it.
    #[error("the tap-pool helper refused {op}: {refusal}")]
    Refused {
        /// The call.
        op: Cow<'static, str>,
        /// Why.
        refusal: Refusal,
    },
    /// The privileged helper could not be reached, or the connection to it
    /// broke before the call's answer came: the helper may or may not have
    /// carried it out. The next call connects again. Only the helper kernel
    /// gives it.
    #[error("the tap-pool helper did not answer {op}: {failure}")]
    Helper {
        /// The call.
        op: Cow<'static, str>,
        /// What went wrong.
        failure: HelperFailure,
    },
    /// The call's answer never came: the kernel worker carrying it is gone
    /// (its process is shutting down), so it did not run, or what it made
    /// was removed again.
    #[error("kernel call {op} was not answered: the kernel worker is gone")]
    Unanswered {
        /// The call.
        op: Cow<'static, str>,
    },
    /// The kernel implementation panicked; the worker survived.
    #[error("kernel call {op} panicked: {message}")]
    Panicked {
        /// The call that panicked.
        op: Cow<'static, str>,
        /// The panic's message.
        message: String,
    },
}

impl KernelError {
    /// Whether the device the call was about is out of the pool's reach:
    /// gone ([`KernelError::NoSuchDevice`]), not a tap any more
    /// ([`KernelError::NotATap`]), or not one the privileged helper made
    /// for this pool ([`Refusal::NotYours`]). Nothing was touched; the
    /// pool forgets the device rather than try again.
    pub fn is_out_of_reach(&self) -> bool {
        matches!(
            self,
            KernelError::NoSuchDevice { .. }
                | KernelError::NotATap { .. }
                | KernelError::Refused {
                    refusal: Refusal::NotYours { .. },
                    ..
                }
        )
    }

    /// The errno behind this error, where the kernel gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            KernelError::Exists { .. } | KernelError::InUse { .. } => Some(Errno(libc::EBUSY)),
            KernelError::NoSuchDevice { .. } => Some(Errno(libc::ENODEV)),
            KernelError::BridgeMissing { .. } => Some(Errno(libc::ENODEV)),
            KernelError::BridgeFull { .. } => Some(Errno(libc::EXFULL)),
            KernelError::Create { errno, .. }
            | KernelError::Configure { errno, .. }
            | KernelError::Delete { errno, .. }
            | KernelError::Reset { errno, .. }
            | KernelError::DeleteGroup { errno, .. }
            | KernelError::List { errno, .. }
            | KernelError::Socket { errno }
            | KernelError::Namespace { errno, .. } => Some(*errno),
            KernelError::NotATap { .. }
            | KernelError::Renamed { .. }
            | KernelError::Residue { .. } => None,
            KernelError::Panicked { .. } | KernelError::Unanswered { .. } => None,
            KernelError::Refused { .. } => Some(Errno(libc::EPERM)),
            KernelError::Helper { failure, .. } => failure.errno(),
        }
    }
}

/// What a released tap still carries of its last tenant that a reset
/// cannot take away (see docs/security.md for each).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Residue {
    /// A file is still attached to the tap: its tenant (or anyone it let
    /// in) kept it open past the release, and would see the next tenant's
    /// traffic.
    Attached,
    /// The tap has an owner uid and the spec none: the kernel cannot unset
    /// an owner (`TUNSETOWNER` takes only a valid uid).
    Owner(u32),
    /// The tap has a group and the spec none: the kernel cannot unset a
    /// group either.
    Group(u32),
    /// The tap's link-layer type is not Ethernet (`TUNSETLINK`); it can be
    /// changed back only while the link is down.
    LinkType(u16),
    /// The tap was made with `IFF_MULTI_QUEUE` and the spec says otherwise,
    /// or the other way round: fixed at creation.
    MultiQueue(bool),
    /// A tun setting read back other than it was just set: the kernel kept
    /// a tenant's value. Names the setting.
    TunState(Cow<'static, str>),
    /// Something the orchestrator added for the last tenant that a reset
    /// cannot restore. Names it.
    Leftover(String),
}

impl fmt::Display for Residue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Residue::Attached => f.write_str("a file is still attached to it"),
            Residue::Owner(uid) => write!(f, "it has owner {uid}, which cannot be unset"),
            Residue::Group(gid) => write!(f, "it has group {gid}, which cannot be unset"),
            Residue::LinkType(kind) => write!(f, "its link type is {kind}, not Ethernet"),
            Residue::MultiQueue(on) => write!(f, "it was made with IFF_MULTI_QUEUE {on}"),
            Residue::TunState(what) => write!(f, "its {what} did not read back as set"),
            Residue::Leftover(what) => write!(f, "{what} cannot be restored"),
        }
    }
}

/// One kernel call the pool asks for (see [`Kernel`] for what each does).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// [`Kernel::create_tap`].
    Create {
        /// The name to create.
        name: TapName,
        /// How to make it.
        spec: TapSpec,
    },
    /// [`Kernel::reset_tap`].
    Reset {
        /// The tap.
        device: Device,
        /// Its pooled configuration.
        spec: TapSpec,
        /// The Ethernet address it was created with.
        mac: [u8; 6],
    },
    /// [`Kernel::delete_link`].
    Delete {
        /// The tap.
        device: Device,
    },
    /// [`Kernel::set_device_group`].
    SetGroup {
        /// The tap.
        device: Device,
        /// The group (0 is the default).
        group: u32,
    },
    /// [`Kernel::list_group`].
    ListGroup {
        /// The group.
        group: u32,
    },
    /// [`Kernel::delete_group`].
    DeleteGroup {
        /// The group.
        group: u32,
    },
    /// [`Kernel::list_taps`].
    ListTaps,
}

/// What a kernel call answered, when it succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A create's new tap.
    Created(CreatedTap),
    /// A reset, delete, group change or group delete went through.
    Done,
    /// A listing of tun/tap devices.
    Links(Vec<LinkInfo>),
    /// A listing of a device group's members.
    Members(Vec<TapName>),
}

/// How a kernel call ended.
pub type Outcome = Result<Reply, KernelError>;

impl Op {
    /// The call's name, for logs and spans.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Reset { .. } => "reset",
            Op::Delete { .. } => "delete",
            Op::SetGroup { .. } => "set_device_group",
            Op::ListGroup { .. } => "list_group",
            Op::DeleteGroup { .. } => "delete_group",
            Op::ListTaps => "list",
        }
    }

    /// The device the call is about, if it is about one.
    pub fn device(&self) -> Option<Device> {
        match self {
            Op::Create { name, .. } => Some(Device::from(*name)),
            Op::Reset { device, .. } | Op::Delete { device } | Op::SetGroup { device, .. } => {
                Some(*device)
            }
            Op::ListGroup { .. } | Op::DeleteGroup { .. } | Op::ListTaps => None,
        }
    }

    /// Carries the call out on `kernel`.
    ///
    /// # Errors
    /// The kernel's [`KernelError`], as the [`Kernel`] method the call
    /// names documents it.
    pub fn run(&self, kernel: &mut dyn Kernel) -> Outcome {
        match self {
            Op::Create { name, spec } => kernel.create_tap(*name, spec).map(Reply::Created),
            Op::Reset { device, spec, mac } => {
                kernel.reset_tap(*device, spec, *mac).map(|()| Reply::Done)
            }
            Op::Delete { device } => kernel.delete_link(*device).map(|()| Reply::Done),
            Op::SetGroup { device, group } => kernel
                .set_device_group(*device, *group)
                .map(|()| Reply::Done),
            Op::ListGroup { group } => kernel.list_group(*group).map(Reply::Members),
            Op::DeleteGroup { group } => kernel.delete_group(*group).map(|()| Reply::Done),
            Op::ListTaps => kernel.list_taps().map(Reply::Links),
        }
    }
}

/// The kernel calls the pool needs. Implementations block: they are only ever
/// called from the pool's kernel worker threads.
pub trait Kernel: Send {
    /// Creates a persistent tap named `name`, owned as `spec` says, configured
    /// (up, MTU, master, group) and closed.
    ///
    /// The tap becomes persistent only once it is fully configured, so a
    /// process that dies part-way leaves nothing behind (the kernel removes a
    /// non-persistent tap when its last file closes).
    ///
    /// # Errors
    /// [`KernelError::Exists`] if any device of that name exists;
    /// [`KernelError::BridgeMissing`] / [`KernelError::BridgeFull`] for the
    /// spec's bridge; [`KernelError::Create`] / [`KernelError::Configure`]
    /// naming the step that failed; [`KernelError::Residue`] if a stranger
    /// attached during the create. On any failure after the device was
    /// made, it is removed before this returns.
    fn create_tap(&mut self, name: TapName, spec: &TapSpec) -> Result<CreatedTap, KernelError>;

    /// Deletes the tap `device`: the device at its index where known, even
    /// if it has been renamed (it is the caller's own device); else the
    /// device of its name.
    ///
    /// # Errors
    /// [`KernelError::NoSuchDevice`] if there is none;
    /// [`KernelError::NotATap`], deleting nothing, if the device there is
    /// not a tap (a bridge, a veth, `lo`, a tun-mode device);
    /// [`KernelError::Delete`] with the kernel's errno otherwise.
    fn delete_link(&mut self, device: Device) -> Result<(), KernelError>;

    /// Lists every tun/tap device.
    ///
    /// # Errors
    /// [`KernelError::List`] (or [`KernelError::Socket`]) when the dump
    /// fails; nothing is changed.
    fn list_taps(&mut self) -> Result<Vec<LinkInfo>, KernelError>;

    /// Puts a released tap back to its pooled configuration, whatever its
    /// last tenant changed through its file and whatever the orchestrator
    /// added for it (docs/security.md has the full list): the tun state
    /// (owner, group, filters, offloads, vnet header, send buffer,
    /// persistence), read back where the kernel can say; every address; its
    /// MTU (the spec's, or 1500), its master (the spec's bridge, or none),
    /// its device group (the spec's, or 0), its Ethernet address (`mac`);
    /// and brings it up. What cannot be put back is
    /// [`KernelError::Residue`]: a file still attached, an owner or group
    /// the spec does not have, and the like. Acts on the device at
    /// `device`'s index where known, else on the device of its name, and
    /// checks it first, changing nothing if the check fails.
    ///
    /// # Errors
    /// [`KernelError::NoSuchDevice`] if there is none,
    /// [`KernelError::NotATap`] if it is not a tap, and
    /// [`KernelError::Renamed`] if it is a tap renamed since (its holder
    /// could not open it by the name it was given): nothing changed.
    /// [`KernelError::Residue`] for what a reset cannot take away, and
    /// [`KernelError::Reset`] with the kernel's errno when a step fails:
    /// the tap is then not fit to hand out (the pool deletes it).
    fn reset_tap(
        &mut self,
        device: Device,
        spec: &TapSpec,
        mac: [u8; 6],
    ) -> Result<(), KernelError>;

    /// Moves the tap `device` into device group `group` (0 is the default
    /// group), checked first as [`Kernel::reset_tap`] checks it.
    ///
    /// # Errors
    /// As [`Kernel::reset_tap`]'s check (nothing changed), or
    /// [`KernelError::Reset`] with the kernel's errno.
    fn set_device_group(&mut self, device: Device, group: u32) -> Result<(), KernelError>;

    /// Names every device of any kind in device group `group` (a
    /// `RTM_GETLINK` dump), so a caller can check the group holds only its
    /// own devices before deleting it.
    ///
    /// # Errors
    /// [`KernelError::List`] (or [`KernelError::Socket`]) when the dump
    /// fails.
    fn list_group(&mut self, group: u32) -> Result<Vec<TapName>, KernelError>;

    /// Deletes every device in `group` with one `RTM_DELLINK`.
    ///
    /// # Errors
    /// [`KernelError::DeleteGroup`]: with `EINVAL` for group 0 (every
    /// device is in it), which is refused without a kernel call, else with
    /// the kernel's errno.
    fn delete_group(&mut self, group: u32) -> Result<(), KernelError>;
}

/// Blocks for the next change to the kernel's links.
pub trait LinkWatcher: Send {
    /// The next event, or `None` when nothing happened within about a second
    /// (so a watcher thread can check whether anyone still listens).
    ///
    /// # Errors
    /// [`KernelError::Socket`] when the watcher's socket fails (events may
    /// have been lost: the caller reopens it and resyncs).
    fn next_event(&mut self) -> Result<Option<LinkEvent>, KernelError>;
}

/// Makes one [`Kernel`] handle per worker thread.
///
/// `open` is called on the worker's own thread, so a handle may hold
/// thread-bound state (a netlink socket, the thread's network namespace).
pub trait KernelFactory: Send + Sync + 'static {
    /// Opens a handle for the calling thread.
    ///
    /// # Errors
    /// [`KernelError::Namespace`] when the pool's namespace cannot be
    /// entered, [`KernelError::Socket`] when no netlink socket opens.
    fn open(&self) -> Result<Box<dyn Kernel>, KernelError>;

    /// Opens a watcher of link changes for the calling thread (for Linux: a
    /// netlink socket subscribed to `RTNLGRP_LINK`, in the pool's namespace).
    ///
    /// # Errors
    /// As [`KernelFactory::open`].
    fn watch(&self) -> Result<Box<dyn LinkWatcher>, KernelError>;

    /// Called once, on the thread that starts a pool, before any worker or
    /// watcher opens a handle: a factory that depends on nothing that may
    /// change while the pool runs, for all of them to use, or `None` to use
    /// this one as it is (the default). For Linux: a namespace given by
    /// path is opened here, once ([`Netns::open`](crate::Netns::open)), so
    /// every worker and the watcher enter that namespace even after the path
    /// is unmounted or removed.
    ///
    /// # Errors
    /// Why no pool can start on this kernel; for Linux,
    /// [`KernelError::Namespace`] naming the path and the errno.
    fn resolve(&self) -> Result<Option<Arc<dyn KernelFactory>>, KernelError> {
        Ok(None)
    }

    /// Whether handles this factory opens can make taps, checked without
    /// making one: asked by a pool started with fail-fast
    /// (`PoolBuilder::fail_fast` in `tap-pool-actors`), once, on the thread
    /// that starts it, after [`resolve`](Self::resolve) (of the factory it
    /// returned) and before any worker or watcher starts. Workers are
    /// threads started from that thread, with its capabilities. The default
    /// says yes. For Linux: `/dev/net/tun` opens and the kernel takes link
    /// changes from this thread, inside the pool's namespace
    /// ([`linux::probe_in`](crate::linux::probe_in)); for the simulated
    /// kernel, an injected fault on [`SimOp::Probe`](crate::sim::SimOp::Probe).
    ///
    /// # Errors
    /// [`ProbeError`] says what is missing.
    fn probe(&self) -> Result<(), ProbeError> {
        Ok(())
    }
}

/// A name that may be unknown, for messages.
struct Unnamed<'a>(&'a Option<TapName>);

impl fmt::Display for Unnamed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "{name}"),
            None => f.write_str("a name the kernel did not tell"),
        }
    }
}
