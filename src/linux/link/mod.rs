//! Links (`RTM_*LINK`): one file per verb. A request is built by a pure
//! function (`request`), tested against golden bytes, and sent by a thin
//! method on [`Rtnl`](super::netlink::Rtnl).

pub(super) mod del;
pub(super) mod get;
mod index;
pub(super) mod parse;
pub(super) mod set;

use crate::name::TapName;

use super::netlink::Request;

/// `sizeof(struct ifinfomsg)`: family, pad, type, index, flags, change.
pub(crate) const IFINFOMSG_LEN: usize = size_of::<libc::ifinfomsg>();

/// Which link a request is about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// By name (`IFLA_IFNAME`).
    Name(TapName),
    /// By interface index (`ifi_index`): immune to a rename, and never
    /// mistaken for a later device of the same name.
    Index(u32),
}

/// What one `RTM_SETLINK` sets. `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinkConfig {
    /// Set `IFF_UP`.
    pub(crate) up: bool,
    /// `IFLA_MTU`.
    pub(crate) mtu: Option<u32>,
    /// The master's interface index; `Some(0)` detaches from any master.
    pub(crate) master: Option<u32>,
    /// The device group (`IFLA_GROUP`).
    pub(crate) group: Option<u32>,
    /// The Ethernet address (`IFLA_ADDRESS`).
    pub(crate) mac: Option<[u8; 6]>,
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
