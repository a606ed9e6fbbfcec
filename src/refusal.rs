//! Why the privileged helper (`tap-pool-helper`) said no, and why it could
//! not be asked: the two reasons a call through
//! [`HelperKernelFactory`](crate::helper::HelperKernelFactory) fails that
//! the kernel itself never gives
//! ([`KernelError::Refused`](crate::KernelError::Refused) and
//! [`KernelError::Helper`](crate::KernelError::Helper)).

use thiserror::Error;

use crate::kernel::Errno;
use crate::name::TapName;

/// A call the helper refused by its policy. Nothing was changed, and the
/// helper logged it with the peer's uid.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Refusal {
    /// No rule of the policy names the connecting process's uid or gid
    /// (read by the helper with `SO_PEERCRED`, not told by the client).
    #[error("uid {uid} (gid {gid}) may not use this helper")]
    PeerNotAllowed {
        /// The peer's uid.
        uid: u32,
        /// The peer's gid.
        gid: u32,
    },
    /// The client speaks a protocol version the helper does not.
    #[error("protocol version {asked} is not spoken here (this helper speaks {supported})")]
    Version {
        /// The client's version.
        asked: u32,
        /// The helper's.
        supported: u32,
    },
    /// The helper serves as many connections as it takes, in all or from
    /// this peer's rule (`max_connections`).
    #[error("the helper has as many connections as it takes ({max})")]
    Busy {
        /// Its limit.
        max: u32,
    },
    /// The name is neither a pool name under the peer's prefix nor one the
    /// fallback pattern allows.
    #[error("the name {name} is not one this peer may create")]
    Name {
        /// The name asked for.
        name: TapName,
    },
    /// The tap may not join this bridge.
    #[error("a tap may not join bridge {bridge}")]
    Bridge {
        /// The bridge asked for.
        bridge: TapName,
    },
    /// The tap may not be owned by this uid (by default a peer's taps are
    /// its own).
    #[error("a tap may not be owned by uid {uid}")]
    Owner {
        /// The owner asked for.
        uid: u32,
    },
    /// The tap may not be given this group.
    #[error("a tap may not have group {gid}")]
    Group {
        /// The group asked for.
        gid: u32,
    },
    /// The tap may not be put in this device group.
    #[error("a tap may not be put in device group {group}")]
    DeviceGroup {
        /// The device group asked for.
        group: u32,
    },
    /// The device is not a tap the helper made for this peer: `lo`, a
    /// bridge, another peer's tap, a device made by hand.
    #[error("{name} is not a tap this helper made for this peer")]
    NotYours {
        /// The device's name as the client gave it.
        name: TapName,
        /// Its interface index, if the client gave one.
        index: Option<u32>,
    },
    /// The device group holds a device that is not a tap the helper made
    /// for this peer: the group is not deleted.
    #[error("device group {group} holds {member}, which is not this peer's")]
    GroupNotYours {
        /// The group.
        group: u32,
        /// A member that is not the peer's.
        member: TapName,
    },
    /// The tap may not have this MTU (a tap's MTU lowers that of a bridge
    /// whose own is not set, for every port of it).
    #[error("a tap may not have MTU {mtu}")]
    Mtu {
        /// The MTU asked for (the kernel's 1500 where the spec names none).
        mtu: u32,
    },
    /// The connection asked for netlink sockets more often than a client
    /// needs (one for listings, two for a watcher).
    #[error("a connection may ask for sockets {max} times")]
    Sockets {
        /// The limit.
        max: u32,
    },
    /// The peer has as many taps as the policy gives it.
    #[error("this peer has as many taps as it may ({max})")]
    Limit {
        /// Its limit.
        max: u32,
    },
}

/// Why a call could not be put to the helper, or its answer did not come.
/// The helper may or may not have carried it out; the helper kernel
/// connects again on the next call.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum HelperFailure {
    /// The helper's socket does not take connections (`ENOENT`: no
    /// socket; `ECONNREFUSED`: no helper behind it; `EACCES`: its mode).
    #[error("cannot connect to {path}: {errno}")]
    Connect {
        /// The socket's path.
        path: String,
        /// What `connect` answered.
        errno: Errno,
    },
    /// The helper closed the connection (it stopped or restarted, or ended
    /// this connection for a protocol error).
    #[error("the helper closed the connection")]
    Closed,
    /// Reading from or writing to the connection failed.
    #[error("the connection failed: {errno}")]
    Io {
        /// What the kernel answered.
        errno: Errno,
    },
    /// No answer came within the client's timeout; the connection was
    /// dropped.
    #[error("no answer within {millis} ms")]
    Timeout {
        /// The timeout, in milliseconds.
        millis: u64,
    },
    /// The helper cannot write its ledger of the taps it made, so it made
    /// none (or took back the one it made).
    #[error("the helper cannot write its ledger: {errno}")]
    Ledger {
        /// What the kernel answered.
        errno: Errno,
    },
    /// The helper answered something the protocol does not allow there.
    #[error("the helper broke the protocol: {0}")]
    Protocol(String),
}

impl HelperFailure {
    /// The errno behind the failure, where there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            HelperFailure::Connect { errno, .. }
            | HelperFailure::Io { errno }
            | HelperFailure::Ledger { errno } => Some(*errno),
            HelperFailure::Closed => Some(Errno(libc::ECONNRESET)),
            HelperFailure::Timeout { .. } => Some(Errno(libc::ETIMEDOUT)),
            HelperFailure::Protocol(_) => Some(Errno(libc::EPROTO)),
        }
    }
}
