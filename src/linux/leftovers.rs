//! What the orchestrator may have added to a tap for its last tenant, and a
//! reset takes away: routes through the tap, qdiscs, link flags, the
//! transmit queue length, the alias, bridge-port settings and per-device
//! sysctls. (The tenant itself can change none of these: each needs
//! `CAP_NET_ADMIN`.) The next tenant gets a tap that equals a fresh one of
//! the same spec, or none: what cannot be put back is
//! [`Leftover::CannotRestore`], and the pool deletes the tap.
//!
//! # What a reset does, in order
//!
//! One `RTM_GETLINK` ([`LinkState`]) says what differs from a fresh tap;
//! then, by interface index throughout:
//!
//! 1. **XDP.** An attached program is detached (`IFLA_XDP`, fd -1, once per
//!    mode attached). One attached through a BPF link cannot be (`EBUSY`:
//!    only the link's owner can): [`Unrestorable::XdpLink`].
//! 2. **Alternative names** (`ip link property add altname`) are removed
//!    (`RTM_DELLINKPROP`): the kernel looks names up among them too (a VMM
//!    opening the last tenant's name would get this tap).
//! 3. **Per-device sysctls** (`net.ipv4.conf.<tap>.*`,
//!    `net.ipv6.conf.<tap>.*`) that differ from the namespace's `default`
//!    are written back, before the down below so that IPv6 comes up again
//!    with them: see [`sysctl`] for how (netlink for the IPv4 ones,
//!    `/proc/sys` for IPv6's), what is cached, and what cannot be.
//! 4. **Down, flags and bridge port**, in one `RTM_SETLINK`: `IFF_UP` off,
//!    every other flag a user can set put back to a fresh tap's
//!    (`IFF_MULTICAST` on; `IFF_PROMISC`, `IFF_ALLMULTI`, `IFF_NOARP`,
//!    `IFF_DEBUG`, `IFF_NOTRAILERS`, `IFF_DYNAMIC`, `IFF_PORTSEL`,
//!    `IFF_AUTOMEDIA` off: the bits `__dev_change_flags` takes from a
//!    user), any master left (`IFLA_MASTER` 0), and the IPv4 sysctls. A tap
//!    found down is brought up first, so that this is a transition the
//!    kernel acts on.
//!
//!    The down is what removes, on 6.18, in every table: IPv4 and IPv6
//!    routes whose only next hop is the tap (prefix, host, `local` and
//!    `multicast ff00::/8` routes too), nexthop objects on the tap (and the
//!    tap from nexthop groups), every neighbour entry on it (permanent and
//!    proxy ones too, which can even be added while the tap is down), and
//!    IPv6 addresses (unless `keep_addr_on_down`; the caller removes every
//!    address anyway), route exceptions (PMTU, redirects: a tenant can
//!    cause those), and it makes IPv6 start afresh on the tap: without a
//!    down, a tap that had a carrier once stays "configured" for IPv6, and
//!    the next VMM's carrier brings no link-local address back (the reset
//!    before this one removed it for good; checked on 6.18), no router
//!    solicitation, no MLD reports. An explicit dump and `RTM_DELROUTE` per
//!    route walks the same routes and would still leave neighbours,
//!    nexthops, exceptions and the IPv6 state; it would also have to tell
//!    the kernel's own routes (`ff00::/8`) from the orchestrator's, since
//!    the kernel does not make them again for a tap it thinks configured.
//!
//!    Leaving the bridge and joining it again (the caller's final
//!    `RTM_SETLINK` attaches the tap to the spec's bridge) makes a new port:
//!    default port flags (hairpin, learning, flood, isolated, locked, ...:
//!    every `IFLA_BRPORT_*`, including ones later kernels add), no static
//!    FDB or MDB entries, the bridge's default VLAN only, STP state from
//!    the start, as a fresh tap's. Setting `IFLA_PROTINFO` back instead
//!    would still need FDB, VLAN and MDB dumps and deletes, and a list of
//!    port attributes that grows with each kernel. Side effects: a bridge
//!    whose address was never set takes the lowest of its ports', and a
//!    bridge's MTU is its ports' lowest, so a port leaving and joining can
//!    change either for an instant (as any tap created or deleted can),
//!    which makes the kernel walk every route and flush the bridge's
//!    neighbour cache; give bridges an address of their own.
//! 5. **IPv6 token** (`ip token set`): cleared (`IFLA_INET6_TOKEN` `::`),
//!    after the flags (the kernel refuses it while `IFF_NOARP` is set).
//!    Refused: [`Unrestorable::Ipv6Token`].
//! 6. **Qdiscs.** The root qdisc and the `ingress`/`clsact` one are deleted
//!    (`RTM_DELQDISC`, parent `TC_H_ROOT`, then `TC_H_INGRESS`, without a
//!    kind, so either of the two goes), taking their classes and filters
//!    with them. The kernel answers `ENOENT` when there is nothing to
//!    delete: "Cannot delete qdisc with handle of zero" for a default root
//!    (`pfifo_fast`, or `mq` with its per-queue children on a multi-queue
//!    tap; those have handle 0, and user qdiscs never do, and a default
//!    `mq` takes no children), "Cannot find specified qdisc on specified
//!    device" for no ingress qdisc; both mean done. The default root comes
//!    back by itself (at the next up). Done while the tap is down, the
//!    kernel has no queues to stop.
//! 7. **Routes the down left** ([`clear_routes`], which the caller runs
//!    once it has removed the tap's addresses, taking their `local` and
//!    `broadcast` routes with them): one `RTM_GETROUTE` dump per family, in
//!    every table, filtered by the kernel to routes using the tap
//!    (`RTA_OIF`; it checks every next hop). What is left then is a route
//!    of scope host (`ip route add ... dev <tap> scope host`, `ip route add
//!    local ... dev <tap>`: a down keeps those, as it keeps the `local`
//!    routes of addresses still there) and is deleted (`RTM_DELROUTE` with
//!    the dumped message, as `ip route flush` does); or a route with several
//!    next hops, one of them through the tap, which outlives a down (the
//!    next hop is marked dead and comes back at the next up, so the next
//!    tenant would get part of its traffic). Deleting that one would cut its
//!    other next hops too, and the kernel cannot remove one next hop of an
//!    IPv4 route: [`Unrestorable::MultipathRoute`]; deleting the tap is the
//!    kernel's own way (IPv4 drops the route, IPv6 the next hop).
//!
//! The rest goes in the caller's final `RTM_SETLINK`, as the returned
//! [`LinkConfig`]: up with the flags again, and, where they differ from a
//! fresh tap's, the transmit queue length (1000, `DEFAULT_TX_QUEUE_LEN`,
//! which `ether_setup` gives a tap; measured on 6.18), the alias (removed),
//! the link-layer broadcast address (`ff:ff:ff:ff:ff:ff`), the link mode
//! (default, which also lets the kernel compute the operational state
//! again) and the GSO/GRO limits (65536 bytes, 65535 segments,
//! `GSO_LEGACY_MAX_SIZE`, `GSO_MAX_SEGS`, `GRO_LEGACY_MAX_SIZE`).
//!
//! # Left alone, and why
//!
//! - **Policy rules** (`ip rule ... iif/oif <tap>`) match a name, not a
//!   device: they are not the tap's (a tap made anew under the name gets
//!   them too), and they may be there on purpose for the next tenant.
//! - **Neighbour-table parameters** (`net.ipv{4,6}.neigh.<tap>.*`): the
//!   host's own timers and probe counts on the link. The kernel reports one
//!   device's only in a dump of every device's (`RTM_GETNEIGHTBL`), or as
//!   some forty files per reset; what they change is when the host probes
//!   the VM, not what the VM sees.
//! - **Link-layer address lists** (`ip maddr add`, `bridge fdb add ...
//!   self`): a tap filters nothing by them (its filter is the VMM's
//!   `TUNSETTXFILTER`), and the kernel lists them only for every device at
//!   once (`/proc/net/dev_mcast`).
//! - **ethtool features** (`ethtool -K`): they and the VMM's
//!   `TUNSETOFFLOAD` both feed `netdev_update_features`; they belong with
//!   the tun device state the reset puts back before this, and are set
//!   through ethtool's generic netlink family, not rtnetlink.
//! - **tcx and netkit BPF programs** (`BPF_TCX_INGRESS`/`EGRESS`): not
//!   visible over rtnetlink; they need the `bpf()` system call to query
//!   (and a BPF link's owner to detach).
//! - **MPLS** (`net.mpls.conf.<tap>.input`): only with `CONFIG_MPLS_ROUTING`
//!   (not in the 6.18 kernel this was written on).
//! - **Multicast routing interfaces** (a daemon's `MRT_ADD_VIF`): seen as
//!   `mc_forwarding` differing from the default, which cannot be written:
//!   [`Unrestorable::Sysctl`].
//! - **Statistics and counters** (`ip -s link`), and the carrier changes
//!   count: history, not configuration; a fresh tap's start at zero, and
//!   the kernel has no way to reset them.
//!
//! Things the reset puts back elsewhere: addresses, MTU, master, group and
//! the MAC (the caller), the tun device state (the caller, right after
//! checking the device).
//!
//! # Cost
//!
//! Nothing differing, the reset adds one `RTM_GETLINK`, one `RTM_SETLINK`
//! (the down), two `RTM_DELQDISC` and two route dumps, plus four small
//! `/proc/sys` reads (the IPv6 keys the kernel does not report over
//! netlink), and saves the address change it used to announce by setting
//! the MAC it already had. The down and up, and leaving and joining the
//! bridge, are most of it; the kernel's walks for the down, the up and the
//! dumps are over every route of the namespace, so a namespace with many
//! routes costs more. Measured on 6.18 (`examples/reset_cost`, a loaded
//! 2-vCPU VM): ~125–140 µs a reset against ~15–23 µs before in a quiet
//! namespace, ~0.6–0.7 ms against ~0.12 ms with 4,000 routes; a bridge adds
//! ~0.1–0.15 ms (docs/performance.md has the rest).

mod sysctl;

use std::fmt;

use super::link::parse::LinkState;
use super::link::{
    Flags, LinkConfig, Segments, Target, XDP_ATTACHED_DRV, XDP_ATTACHED_HW, XDP_ATTACHED_NONE,
    XDP_ATTACHED_SKB, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE, XDP_FLAGS_SKB_MODE,
};
use super::netlink::{NlError, Rtnl};
use super::qdisc::{TC_H_INGRESS, TC_H_ROOT};
use crate::kernel::{Errno, TapSpec};
use crate::name::TapName;

pub use sysctl::Family;

/// The `ifi_flags` a user can change: `__dev_change_flags` (net/core/dev.c)
/// takes these from a request and keeps the rest (`IFF_BROADCAST`,
/// `IFF_RUNNING`, `IFF_LOWER_UP`, ...) as the device has them.
pub(crate) const USER_FLAGS: u32 = (libc::IFF_UP
    | libc::IFF_PROMISC
    | libc::IFF_ALLMULTI
    | libc::IFF_NOARP
    | libc::IFF_MULTICAST
    | libc::IFF_DEBUG
    | libc::IFF_NOTRAILERS
    | libc::IFF_DYNAMIC
    | libc::IFF_PORTSEL
    | libc::IFF_AUTOMEDIA) as u32;

/// A fresh tap's among [`USER_FLAGS`], besides `IFF_UP`: `IFF_MULTICAST`
/// (`ether_setup`).
pub(crate) const FRESH_FLAGS: u32 = libc::IFF_MULTICAST as u32;

/// A fresh tap's transmit queue length: `DEFAULT_TX_QUEUE_LEN`
/// (linux/netdevice.h), which `ether_setup` gives it.
pub(crate) const FRESH_TXQLEN: u32 = 1000;

/// A fresh tap's link-layer broadcast address (`ether_setup`).
pub(crate) const FRESH_BROADCAST: [u8; 6] = [0xff; 6];

/// A fresh tap's link mode: `IF_LINK_MODE_DEFAULT` (linux/if.h).
pub(crate) const FRESH_LINKMODE: u8 = 0;

/// A fresh tap's segmentation limits (`alloc_netdev_mqs`):
/// `GSO_LEGACY_MAX_SIZE`, `GSO_MAX_SEGS`, `GRO_LEGACY_MAX_SIZE`
/// (linux/netdevice.h).
pub(crate) const FRESH_SEGMENTS: Segments = Segments {
    gso_max_size: 65536,
    gso_max_segs: 65535,
    gro_max_size: 65536,
    gso_ipv4_max_size: 65536,
    gro_ipv4_max_size: 65536,
};

/// Why [`clear`] stopped.
#[derive(Debug)]
pub(super) enum Leftover {
    /// A request failed (a refusal the reset cannot name better, or the
    /// socket); the caller maps it as any other reset failure.
    Failed(NlError),
    /// Something is left that a reset cannot take away; deleting the tap
    /// takes it away.
    CannotRestore(Unrestorable),
}

impl From<NlError> for Leftover {
    fn from(e: NlError) -> Leftover {
        Leftover::Failed(e)
    }
}

impl From<Unrestorable> for Leftover {
    fn from(what: Unrestorable) -> Leftover {
        Leftover::CannotRestore(what)
    }
}

/// What a reset found on a tap and cannot put back as a fresh tap has it.
/// Deleting the tap takes it away (the kernel's own clean-up of a device
/// that goes); the pool makes a new tap instead.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unrestorable {
    /// A route with several next hops has one through the tap. It outlives
    /// a down (the next hop comes back at the next up), and removing it
    /// would cut its other next hops.
    MultipathRoute {
        /// Which route (destination, table).
        route: String,
    },
    /// A per-device sysctl differs from the namespace's default and cannot
    /// be written back: it is read-only (`mc_forwarding`, when a multicast
    /// routing daemon has the tap as an interface; `errno` is `None`), or
    /// reading or writing it failed.
    Sysctl {
        /// `net.ipv4.conf` or `net.ipv6.conf`.
        family: Family,
        /// The key.
        key: String,
        /// What the kernel answered, if it refused.
        errno: Option<Errno>,
    },
    /// The tap has an IPv6 `stable_secret` and the namespace's default has
    /// none: a secret can be set, never unset.
    StableSecret,
    /// An XDP program is attached through a BPF link, which only the link's
    /// owner can detach (`EBUSY`).
    XdpLink,
    /// The IPv6 interface identifier token could not be cleared.
    Ipv6Token {
        /// What the kernel answered.
        errno: Errno,
    },
    /// The tap's sysctl directory is gone, or its name now names another
    /// device: the tap was renamed or deleted during the reset.
    Moved,
}

impl fmt::Display for Unrestorable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unrestorable::MultipathRoute { route } => {
                write!(f, "a multipath route has a next hop through it: {route}")
            }
            Unrestorable::Sysctl {
                family,
                key,
                errno: None,
            } => write!(
                f,
                "net.{}.conf.<tap>.{key} differs from the default and is read-only",
                family.as_str()
            ),
            Unrestorable::Sysctl {
                family,
                key,
                errno: Some(errno),
            } => write!(
                f,
                "net.{}.conf.<tap>.{key} cannot be restored: {errno}",
                family.as_str()
            ),
            Unrestorable::StableSecret => f.write_str(
                "it has an IPv6 stable_secret and the namespace's default has none; one cannot be unset",
            ),
            Unrestorable::XdpLink => f.write_str(
                "an XDP program is attached through a BPF link, which only its owner can detach",
            ),
            Unrestorable::Ipv6Token { errno } => {
                write!(f, "its IPv6 token cannot be cleared: {errno}")
            }
            Unrestorable::Moved => f.write_str("it was renamed or deleted during the reset"),
        }
    }
}

/// Takes away from the tap `name` (interface index `index`, checked by the
/// caller to be the pool's tap) everything listed in the module's docs,
/// leaving it down and detached from any master, and returns what the
/// caller's final `RTM_SETLINK` must set besides its own settings: flags,
/// and the link settings that differ from a fresh tap's, the MAC `mac`
/// among them.
pub(super) fn clear(
    rtnl: &mut Rtnl,
    name: TapName,
    index: u32,
    spec: &TapSpec,
    mac: [u8; 6],
) -> Result<LinkConfig<'static>, Leftover> {
    let state = rtnl.link_state(index)?;
    detach_xdp(rtnl, index, state.xdp)?;
    if !state.altnames.is_empty() {
        rtnl.del_altnames(index, &state.altnames)?;
        tracing::debug!(altnames = ?state.altnames, "alternative names removed");
    }
    let inet_conf = sysctl::restore(rtnl, name, index, spec, &state)?;
    let target = Target::Index(index);
    if state.flags & libc::IFF_UP as u32 == 0 {
        // Found down: up first, so that the down below is a transition.
        let up = LinkConfig {
            up: true,
            ..LinkConfig::default()
        };
        rtnl.set_link(target, up)?;
    }
    let down = LinkConfig {
        flags: Some(Flags {
            value: FRESH_FLAGS,
            mask: USER_FLAGS,
        }),
        master: state.master.map(|_| 0),
        inet_conf: &inet_conf,
        ..LinkConfig::default()
    };
    rtnl.set_link(target, down)?;
    if state.inet6_token {
        let clear_token = LinkConfig {
            clear_token: true,
            ..LinkConfig::default()
        };
        match rtnl.set_link(target, clear_token) {
            Ok(()) => {}
            Err(NlError::Refused { errno, .. }) if errno.0 != libc::ENODEV => {
                return Err(Unrestorable::Ipv6Token { errno }.into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    for parent in [TC_H_ROOT, TC_H_INGRESS] {
        match rtnl.del_qdisc(index, parent) {
            Ok(()) => tracing::debug!(parent, "qdisc removed"),
            Err(NlError::Refused { errno, .. }) if errno.0 == libc::ENOENT => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(final_settings(&state, mac))
}

/// Removes every route still through the tap `index` once [`clear`] took it
/// down and the caller removed its addresses: one dump per family, which
/// the kernel filters to routes using the tap. A route with the tap as its
/// only next hop is deleted; one with other next hops too cannot be
/// restored.
pub(super) fn clear_routes(rtnl: &mut Rtnl, index: u32) -> Result<(), Leftover> {
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        for route in rtnl.routes_through(family, index)? {
            if route.multipath {
                return Err(Unrestorable::MultipathRoute {
                    route: route.to_string(),
                }
                .into());
            }
            match rtnl.del_route(&route) {
                Ok(()) => tracing::debug!(%route, "route removed"),
                Err(NlError::Refused { errno, .. }) if errno.0 == libc::ESRCH => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// What the final `RTM_SETLINK` sets besides the caller's own settings: the
/// flags, and each link setting that differs from a fresh tap's, the MAC
/// (`mac`) among them. (Setting a MAC, even the same one, makes the kernel
/// announce an address change, on which IPv6 walks every route of the
/// namespace and IPv4 flushes its route cache.)
fn final_settings(state: &LinkState, mac: [u8; 6]) -> LinkConfig<'static> {
    let segments = [
        (state.gso_max_size, FRESH_SEGMENTS.gso_max_size),
        (state.gso_max_segs, FRESH_SEGMENTS.gso_max_segs),
        (state.gro_max_size, FRESH_SEGMENTS.gro_max_size),
        (state.gso_ipv4_max_size, FRESH_SEGMENTS.gso_ipv4_max_size),
        (state.gro_ipv4_max_size, FRESH_SEGMENTS.gro_ipv4_max_size),
    ];
    LinkConfig {
        flags: Some(Flags {
            value: FRESH_FLAGS,
            mask: USER_FLAGS,
        }),
        mac: (state.mac != Some(mac)).then_some(mac),
        txqlen: Some(FRESH_TXQLEN).filter(|&fresh| differs(state.txqlen, fresh)),
        clear_alias: state.alias,
        broadcast: Some(FRESH_BROADCAST).filter(|&fresh| differs(state.broadcast, fresh)),
        linkmode: Some(FRESH_LINKMODE).filter(|&fresh| differs(state.linkmode, fresh)),
        segments: segments
            .iter()
            .any(|&(now, fresh)| differs(now, fresh))
            .then_some(FRESH_SEGMENTS),
        ..LinkConfig::default()
    }
}

/// Whether the kernel reported a value (`now`) other than a fresh tap's.
fn differs<T: PartialEq>(now: Option<T>, fresh: T) -> bool {
    now.is_some_and(|now| now != fresh)
}

/// Detaches the XDP program of each mode `attached` (`IFLA_XDP_ATTACHED`)
/// says. `MULTI` is more than one mode at once: each is tried, and a mode
/// with nothing attached is no refusal.
fn detach_xdp(rtnl: &mut Rtnl, index: u32, attached: u8) -> Result<(), Leftover> {
    let modes: &[u32] = match attached {
        XDP_ATTACHED_NONE => return Ok(()),
        XDP_ATTACHED_DRV => &[XDP_FLAGS_DRV_MODE],
        XDP_ATTACHED_SKB => &[XDP_FLAGS_SKB_MODE],
        XDP_ATTACHED_HW => &[XDP_FLAGS_HW_MODE],
        // XDP_ATTACHED_MULTI, or a kind a later kernel reports: each mode.
        _ => &[XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_HW_MODE],
    };
    for &mode in modes {
        let detach = LinkConfig {
            detach_xdp: Some(mode),
            ..LinkConfig::default()
        };
        match rtnl.set_link(Target::Index(index), detach) {
            Ok(()) => tracing::debug!(mode, "XDP program detached"),
            Err(NlError::Refused { errno, .. }) if errno.0 == libc::EBUSY => {
                return Err(Unrestorable::XdpLink.into());
            }
            // A mode the tap does not support (hardware offload): nothing
            // can be attached there either.
            Err(NlError::Refused { errno, .. })
                if modes.len() > 1 && errno.0 == libc::EOPNOTSUPP => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_flags_are_the_ones_the_kernel_takes_from_a_request() {
        assert_eq!(USER_FLAGS, 0xf3a5);
        assert_eq!(FRESH_FLAGS & !USER_FLAGS, 0);
    }

    /// Only what differs from a fresh tap's is set, besides the flags.
    #[test]
    fn final_settings_set_what_differs() {
        let mac = [2, 0, 0, 0, 0, 7];
        let fresh = LinkState {
            mac: Some(mac),
            txqlen: Some(FRESH_TXQLEN),
            broadcast: Some(FRESH_BROADCAST),
            linkmode: Some(FRESH_LINKMODE),
            gso_max_size: Some(65536),
            gso_max_segs: Some(65535),
            gro_max_size: Some(65536),
            gso_ipv4_max_size: Some(65536),
            gro_ipv4_max_size: Some(65536),
            ..LinkState::default()
        };
        let config = final_settings(&fresh, mac);
        let flags = Flags {
            value: FRESH_FLAGS,
            mask: USER_FLAGS,
        };
        assert_eq!(config.flags, Some(flags));
        assert_eq!(
            (
                config.mac,
                config.txqlen,
                config.clear_alias,
                config.broadcast,
                config.linkmode,
                config.segments
            ),
            (None, None, false, None, None, None)
        );
        // A kernel that reports none of them: nothing to compare, nothing set.
        let config = final_settings(&LinkState::default(), mac);
        assert_eq!(config.mac, Some(mac));
        assert_eq!((config.txqlen, config.segments), (None, None));

        let dirty = LinkState {
            mac: Some([2, 0, 0, 0, 0, 8]),
            txqlen: Some(5),
            alias: true,
            broadcast: Some([2; 6]),
            linkmode: Some(1),
            gro_max_size: Some(4000),
            ..fresh
        };
        let config = final_settings(&dirty, mac);
        assert_eq!(config.mac, Some(mac));
        assert_eq!(config.txqlen, Some(FRESH_TXQLEN));
        assert!(config.clear_alias);
        assert_eq!(config.broadcast, Some(FRESH_BROADCAST));
        assert_eq!(config.linkmode, Some(FRESH_LINKMODE));
        assert_eq!(config.segments, Some(FRESH_SEGMENTS));
    }

    #[test]
    fn what_cannot_be_restored_says_what() {
        let cases = [
            (
                Unrestorable::MultipathRoute {
                    route: "10.4.0.0/16 table 254 (multipath)".to_owned(),
                },
                "a multipath route has a next hop through it: 10.4.0.0/16 table 254 (multipath)",
            ),
            (
                Unrestorable::Sysctl {
                    family: Family::Ipv4,
                    key: "mc_forwarding".to_owned(),
                    errno: None,
                },
                "net.ipv4.conf.<tap>.mc_forwarding differs from the default and is read-only",
            ),
            (
                Unrestorable::Sysctl {
                    family: Family::Ipv6,
                    key: "mtu".to_owned(),
                    errno: Some(Errno(libc::EINVAL)),
                },
                "net.ipv6.conf.<tap>.mtu cannot be restored: Invalid argument (os error 22)",
            ),
            (
                Unrestorable::XdpLink,
                "an XDP program is attached through a BPF link, which only its owner can detach",
            ),
            (
                Unrestorable::Ipv6Token {
                    errno: Errno(libc::EINVAL),
                },
                "its IPv6 token cannot be cleared: Invalid argument (os error 22)",
            ),
            (
                Unrestorable::Moved,
                "it was renamed or deleted during the reset",
            ),
        ];
        for (what, text) in cases {
            assert_eq!(what.to_string(), text);
        }
        assert!(
            Unrestorable::StableSecret
                .to_string()
                .contains("stable_secret")
        );
    }
}
