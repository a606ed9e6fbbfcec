//! Links (`RTM_*LINK`): one file per verb. A request is built by a pure
//! function (`request`), tested against golden bytes, and sent by a thin
//! method on [`Rtnl`](super::netlink::Rtnl).

pub(super) mod del;
pub(super) mod get;
mod index;
pub(super) mod parse;
pub(super) mod prop;
pub(super) mod set;

use crate::name::TapName;

use super::netlink::Request;

/// `sizeof(struct ifinfomsg)`: family, pad, type, index, flags, change.
pub(crate) const IFINFOMSG_LEN: usize = size_of::<libc::ifinfomsg>();

/// `IFLA_GSO_IPV4_MAX_SIZE` and `IFLA_GRO_IPV4_MAX_SIZE` (linux/if_link.h,
/// Linux 6.3; the libc crate lacks them).
pub(crate) const IFLA_GSO_IPV4_MAX_SIZE: u16 = 63;
pub(crate) const IFLA_GRO_IPV4_MAX_SIZE: u16 = 64;

/// `IFLA_XDP_*` (linux/if_link.h; the libc crate lacks them): inside
/// `IFLA_XDP`.
pub(crate) const IFLA_XDP_FD: u16 = 1;
pub(crate) const IFLA_XDP_ATTACHED: u16 = 2;
pub(crate) const IFLA_XDP_FLAGS: u16 = 3;

/// `XDP_ATTACHED_*` (linux/if_link.h): how `IFLA_XDP_ATTACHED` says a
/// program is attached. `XDP_ATTACHED_MULTI` (4) is more than one mode at
/// once.
pub(crate) const XDP_ATTACHED_NONE: u8 = 0;
pub(crate) const XDP_ATTACHED_DRV: u8 = 1;
pub(crate) const XDP_ATTACHED_SKB: u8 = 2;
pub(crate) const XDP_ATTACHED_HW: u8 = 3;

/// `XDP_FLAGS_*_MODE` (linux/if_link.h): which attachment a request means.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub(crate) const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

/// `IFLA_INET_CONF` (linux/if_link.h): inside `IFLA_AF_SPEC` / `AF_INET`,
/// the IPv4 per-device settings, one `u32` per `IPV4_DEVCONF_*`.
pub(crate) const IFLA_INET_CONF: u16 = 1;

/// `IFLA_INET6_*` (linux/if_link.h): inside `IFLA_AF_SPEC` / `AF_INET6`.
/// `CONF` is the per-device settings, one `s32` per `DEVCONF_*`.
pub(crate) const IFLA_INET6_CONF: u16 = 2;
pub(crate) const IFLA_INET6_TOKEN: u16 = 7;

/// The address families as the types of `IFLA_AF_SPEC`'s attributes.
pub(crate) const AF_INET: u16 = libc::AF_INET as u16;
pub(crate) const AF_INET6: u16 = libc::AF_INET6 as u16;

/// Which link a request is about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// By name (`IFLA_IFNAME`).
    Name(TapName),
    /// By interface index (`ifi_index`): immune to a rename, and never
    /// mistaken for a later device of the same name.
    Index(u32),
}

/// What one `RTM_SETLINK` sets. `None` (or `false`, or empty) leaves a
/// setting as it is.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinkConfig<'a> {
    /// Set `IFF_UP`.
    pub(crate) up: bool,
    /// Further `ifi_flags`: the bits of `mask` are set as they are in
    /// `value` (`up`, when set, wins for `IFF_UP`).
    pub(crate) flags: Option<Flags>,
    /// `IFLA_MTU`.
    pub(crate) mtu: Option<u32>,
    /// The master's interface index; `Some(0)` detaches from any master.
    pub(crate) master: Option<u32>,
    /// The device group (`IFLA_GROUP`).
    pub(crate) group: Option<u32>,
    /// The Ethernet address (`IFLA_ADDRESS`).
    pub(crate) mac: Option<[u8; 6]>,
    /// The transmit queue length (`IFLA_TXQLEN`).
    pub(crate) txqlen: Option<u32>,
    /// Remove the alias (`IFLA_IFALIAS`, empty).
    pub(crate) clear_alias: bool,
    /// The link-layer broadcast address (`IFLA_BROADCAST`).
    pub(crate) broadcast: Option<[u8; 6]>,
    /// The link mode (`IFLA_LINKMODE`: 0 default, 1 dormant, 2 testing).
    pub(crate) linkmode: Option<u8>,
    /// The segmentation and aggregation limits (`IFLA_GSO_*`, `IFLA_GRO_*`).
    pub(crate) segments: Option<Segments>,
    /// Detach the XDP program attached in this mode (`IFLA_XDP` with fd -1
    /// and these `XDP_FLAGS_*_MODE` flags).
    pub(crate) detach_xdp: Option<u32>,
    /// IPv4 per-device settings (`IFLA_AF_SPEC` / `AF_INET` /
    /// `IFLA_INET_CONF`), as (`IPV4_DEVCONF_*` index, value).
    pub(crate) inet_conf: &'a [(u16, u32)],
    /// Remove the IPv6 interface identifier token (`IFLA_AF_SPEC` /
    /// `AF_INET6` / `IFLA_INET6_TOKEN` `::`).
    pub(crate) clear_token: bool,
}

/// `ifi_flags` bits to set (`value`) among those to change (`mask`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// The bits' new values.
    pub(crate) value: u32,
    /// The bits to change (`ifi_change`).
    pub(crate) mask: u32,
}

/// A link's segmentation offload and aggregation limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segments {
    /// `IFLA_GSO_MAX_SIZE`.
    pub(crate) gso_max_size: u32,
    /// `IFLA_GSO_MAX_SEGS`.
    pub(crate) gso_max_segs: u32,
    /// `IFLA_GRO_MAX_SIZE`.
    pub(crate) gro_max_size: u32,
    /// `IFLA_GSO_IPV4_MAX_SIZE`.
    pub(crate) gso_ipv4_max_size: u32,
    /// `IFLA_GRO_IPV4_MAX_SIZE`.
    pub(crate) gro_ipv4_max_size: u32,
}

/// Appends a `struct ifinfomsg` of family `AF_UNSPEC` about the link with
/// index `index` (0: none), setting the `flags` bits that are in `change`.
fn push_ifinfomsg(request: &mut Request, index: u32, flags: u32, change: u32) {
    let mut ifinfomsg = [0u8; IFINFOMSG_LEN];
    ifinfomsg[0] = libc::AF_UNSPEC as u8; // ifi_family; then a pad byte, ifi_type 0
    ifinfomsg[4..8].copy_from_slice(&index.to_ne_bytes()); // ifi_index
    ifinfomsg[8..12].copy_from_slice(&flags.to_ne_bytes()); // ifi_flags
    ifinfomsg[12..16].copy_from_slice(&change.to_ne_bytes()); // ifi_change
    request.push(&ifinfomsg);
}

/// Appends the `ifinfomsg` naming `target`, and its `IFLA_IFNAME` if it is
/// named.
fn push_target(request: &mut Request, target: Target, flags: u32, change: u32) {
    match target {
        Target::Index(index) => push_ifinfomsg(request, index, flags, change),
        Target::Name(name) => {
            push_ifinfomsg(request, 0, flags, change);
            request.attr_cstr(libc::IFLA_IFNAME, name.as_bytes());
        }
    }
}
