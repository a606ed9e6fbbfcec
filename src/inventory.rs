//! Which devices are a pool's, and which of them may go: the one place the
//! rules live, for `Seed` (which reconciles a pool with the kernel after a
//! restart) and for the `tap-pool` command-line tool (`ls`, `gc`).
//!
//! An [`Inventory`] is made from a pool's configuration and judges each
//! device a kernel listing holds ([`LinkInfo`]), with no I/O:
//!
//! - its [`Class`]: a tap under a pool name (`<prefix><N>`), a tap in the
//!   pool's device group under another name (a fallback tap), a tun-mode
//!   device under a pool name or in the group (the pool makes none), or a
//!   device that is not the pool's at all;
//! - its [`Verdict`]: what becomes of it when nobody claims it (`Seed`
//!   without it in `used`; `gc`): left alone (not the pool's, not a tap, or
//!   a process has it attached), adoptable, or a leftover to delete.
//!
//! ```
//! use tap_pool::inventory::{Class, Inventory, Verdict};
//! # use tap_pool::{LinkInfo, TapName, TunKind};
//! # fn tap(name: &str, device_group: u32, in_use: bool) -> LinkInfo {
//! #     LinkInfo { name: TapName::new(name).unwrap(), index: 7, kind: TunKind::Tap,
//! #         persistent: true, owner: Some(1000), group: None, master: None, mtu: 1500,
//! #         up: true, in_use, device_group, mac: [2, 0, 0, 0, 0, 7], vnet_hdr: true,
//! #         multi_queue: false, queues: None, link_type: libc::ARPHRD_ETHER }
//! # }
//!
//! let mut config = tap_pool::PoolConfig::default();
//! config.tap.owner = Some(1000);
//! config.tap.device_group = Some(4242);
//! let inventory = Inventory::new(&config)?;
//!
//! let idle = inventory.survey_link(&tap("tap-pool-3", 4242, false));
//! assert_eq!(idle.class, Class::PoolTap { index: 3 });
//! assert_eq!(idle.verdict, Verdict::Adoptable);
//! assert!(idle.verdict.collectable());
//!
//! // A VMM has it open: never deleted.
//! let held = inventory.survey_link(&tap("vm-17", 4242, true));
//! assert_eq!((held.class, held.verdict), (Class::FallbackTap, Verdict::InUse));
//!
//! // Neither a pool name nor in the pool's group: not the pool's.
//! let other = inventory.survey_link(&tap("other0", 0, false));
//! assert_eq!((other.class, other.verdict), (Class::NotOurs, Verdict::NotOurs));
//! # Ok::<(), tap_pool::ConfigError>(())
//! ```

use crate::config::{ConfigError, Naming, PoolConfig, Recycle};
use crate::kernel::{LinkInfo, TunKind};
use crate::name::TapName;

/// A pool's rules for telling its devices from others', made from its
/// configuration. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    naming: Naming,
    device_group: Option<u32>,
    /// The owner every tap of the pool has (the spec's, or the effective
    /// uid where the spec names neither owner nor group).
    owner: Option<u32>,
    group: Option<u32>,
    vnet_hdr: bool,
    multi_queue: bool,
    recycle: Recycle,
}

/// What a device is to the pool, by its name, device group and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Class {
    /// A tap under a pool name, `<prefix><N>`.
    PoolTap {
        /// Its pool index, N.
        index: u64,
    },
    /// A tap in the pool's device group under a name that is not a pool
    /// name: one the pool created under a caller's fallback name.
    FallbackTap,
    /// A tun-mode device (`IFF_TUN`) under a pool name or in the pool's
    /// device group. The pool makes only taps, so it is someone else's:
    /// never touched, and a pool name so taken is never created.
    TunDevice,
    /// Neither a pool name nor in the pool's device group (or the pool has
    /// none): not the pool's.
    NotOurs,
}

impl Class {
    /// Whether the device is one of the pool's taps
    /// ([`PoolTap`](Class::PoolTap) or [`FallbackTap`](Class::FallbackTap)).
    pub fn is_pool_tap(&self) -> bool {
        matches!(self, Class::PoolTap { .. } | Class::FallbackTap)
    }
}

/// What becomes of a device nobody claims: one `Seed` finds that its
/// caller did not list in `used`, or one `gc` looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Verdict {
    /// Not the pool's ([`Class::NotOurs`]): never touched.
    NotOurs,
    /// A tun-mode device under a pool name or in the pool's group
    /// ([`Class::TunDevice`]): never touched.
    NotATap,
    /// One of the pool's taps that a process has attached (a VMM): left
    /// alone, whoever made it. A live VM must never lose its device.
    InUse,
    /// A pool tap made exactly as this pool makes them (see
    /// [`Inventory::made_like_ours`]), with no process attached, under
    /// [`Recycle::Reset`]: `Seed` adopts it (after a reset) while the pool
    /// has room and deletes it beyond; `gc` deletes it.
    Adoptable,
    /// One of the pool's taps, with the pool's owner and group and no
    /// process attached, that cannot be adopted: a fallback tap, a pool tap
    /// made otherwise (another queue mode or vnet header flag, not
    /// persistent), any under [`Recycle::Fresh`]. `Seed` and `gc` delete
    /// it.
    Leftover,
    /// A tap under a pool name or in the pool's group, with no process
    /// attached, whose owner or group is not the pool's: no VMM of this
    /// pool could open it. `Seed` deletes it (the prefix and the group are
    /// the pool's own: one pool per prefix and group); `gc`, which runs
    /// from an operator's shell with a configuration that may not be the
    /// pool's, keeps it.
    OtherOwner,
}

impl Verdict {
    /// Whether `gc` may delete the device: [`Adoptable`](Verdict::Adoptable)
    /// and [`Leftover`](Verdict::Leftover) only. (It still attaches to the
    /// tap first, and keeps it if a process holds it by then.)
    pub fn collectable(&self) -> bool {
        matches!(self, Verdict::Adoptable | Verdict::Leftover)
    }

    /// Whether `Seed` deletes or adopts the device when nobody lists it:
    /// every one of the pool's taps that no process has attached.
    pub fn seed_takes(&self) -> bool {
        matches!(
            self,
            Verdict::Adoptable | Verdict::Leftover | Verdict::OtherOwner
        )
    }
}

/// One device of a listing, judged by an [`Inventory`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Surveyed {
    /// The device as the kernel listed it.
    pub link: LinkInfo,
    /// What it is to the pool.
    pub class: Class,
    /// What becomes of it when nobody claims it.
    pub verdict: Verdict,
}

impl Inventory {
    /// The rules of a pool with this configuration, run by this process:
    /// where the spec names neither owner nor group, the pool's taps are
    /// owned by the effective uid of the process that runs the pool, taken
    /// here to be this one's.
    ///
    /// # Errors
    /// What [`PoolConfig::validate`] refuses.
    pub fn new(config: &PoolConfig) -> Result<Inventory, ConfigError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        Inventory::for_owner(config, config.tap.effective_owner(euid))
    }

    /// The rules of a pool with this configuration whose taps' owner is
    /// `owner` (the pool's effective owner).
    pub(crate) fn for_owner(
        config: &PoolConfig,
        owner: Option<u32>,
    ) -> Result<Inventory, ConfigError> {
        Ok(Inventory {
            naming: config.naming()?,
            device_group: config.tap.device_group,
            owner,
            group: config.tap.group,
            vnet_hdr: config.tap.vnet_hdr,
            multi_queue: config.tap.multi_queue,
            recycle: config.recycle,
        })
    }

    /// The pool's naming scheme.
    pub(crate) fn naming(&self) -> &Naming {
        &self.naming
    }

    /// What becomes of a released pool tap.
    pub(crate) fn recycle(&self) -> Recycle {
        self.recycle
    }

    /// The pool's name prefix.
    pub fn prefix(&self) -> &str {
        self.naming.prefix()
    }

    /// The largest pool index whose name fits in 15 bytes: the prefix
    /// leaves `max_index() + 1` pool names.
    pub fn max_index(&self) -> u64 {
        self.naming.max_index()
    }

    /// The pool's device group, if it has one.
    pub fn device_group(&self) -> Option<u32> {
        self.device_group
    }

    /// The owner (uid) every tap of the pool has, if any.
    pub fn owner(&self) -> Option<u32> {
        self.owner
    }

    /// The group (gid) every tap of the pool has, if any.
    pub fn group(&self) -> Option<u32> {
        self.group
    }

    /// The pool index of `name`, if it is a pool name: the prefix followed
    /// by a canonical decimal number (no sign, no leading zero).
    pub fn pool_index(&self, name: &TapName) -> Option<u64> {
        self.naming.index_of(name)
    }

    /// Whether the device is under a pool name or in the pool's device
    /// group, whatever its kind.
    pub fn is_ours(&self, link: &LinkInfo) -> bool {
        self.pool_index(&link.name).is_some()
            || self.device_group.is_some_and(|g| g == link.device_group)
    }

    /// Whether `link` is a tap made exactly the way this pool makes them:
    /// a persistent Ethernet tap with the pool's owner, group, `vnet_hdr`
    /// and `multi_queue`. A VMM could not open one with another owner,
    /// group or queue mode, one with neither owner nor group is open to
    /// anyone, and a reset cannot change the queue mode or unset an owner
    /// or group.
    pub fn made_like_ours(&self, link: &LinkInfo) -> bool {
        link.kind == TunKind::Tap
            && link.link_type == libc::ARPHRD_ETHER
            && link.persistent
            && self.has_pool_owner(link)
            && link.vnet_hdr == self.vnet_hdr
            && link.multi_queue == self.multi_queue
    }

    /// Whether the device's owner and group are the pool's.
    fn has_pool_owner(&self, link: &LinkInfo) -> bool {
        link.owner == self.owner && link.group == self.group
    }

    /// What the device is to the pool.
    pub fn class(&self, link: &LinkInfo) -> Class {
        let index = self.pool_index(&link.name);
        if !self.is_ours(link) {
            Class::NotOurs
        } else if link.kind != TunKind::Tap {
            Class::TunDevice
        } else if let Some(index) = index {
            Class::PoolTap { index }
        } else {
            Class::FallbackTap
        }
    }

    /// What becomes of the device when nobody claims it.
    pub fn verdict(&self, link: &LinkInfo) -> Verdict {
        match self.class(link) {
            Class::NotOurs => Verdict::NotOurs,
            Class::TunDevice => Verdict::NotATap,
            _ if link.in_use => Verdict::InUse,
            _ if !self.has_pool_owner(link) => Verdict::OtherOwner,
            Class::PoolTap { .. }
                if self.made_like_ours(link) && self.recycle == Recycle::Reset =>
            {
                Verdict::Adoptable
            }
            Class::PoolTap { .. } | Class::FallbackTap => Verdict::Leftover,
        }
    }

    /// The device judged: its class and verdict.
    pub fn survey_link(&self, link: &LinkInfo) -> Surveyed {
        Surveyed {
            link: link.clone(),
            class: self.class(link),
            verdict: self.verdict(link),
        }
    }

    /// Every device of a listing judged, in the listing's order.
    pub fn survey(&self, links: &[LinkInfo]) -> Vec<Surveyed> {
        links.iter().map(|link| self.survey_link(link)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::TapSpec;

    fn link(name: &str, kind: TunKind, device_group: u32) -> LinkInfo {
        LinkInfo {
            name: TapName::new(name).expect("valid"),
            index: 10,
            kind,
            persistent: true,
            owner: Some(1000),
            group: None,
            master: None,
            mtu: 1500,
            up: true,
            in_use: false,
            device_group,
            mac: [2, 0, 0, 0, 0, 10],
            vnet_hdr: true,
            multi_queue: false,
            queues: None,
            link_type: libc::ARPHRD_ETHER,
        }
    }

    fn inventory(recycle: Recycle) -> Inventory {
        let config = PoolConfig {
            tap: TapSpec {
                owner: Some(1000),
                device_group: Some(7),
                ..TapSpec::default()
            },
            recycle,
            ..PoolConfig::default()
        };
        Inventory::new(&config).expect("valid")
    }

    #[test]
    fn classes_by_name_group_and_kind() {
        let inv = inventory(Recycle::Reset);
        let class = |name, kind, group| inv.class(&link(name, kind, group));
        assert_eq!(
            class("tap-pool-4", TunKind::Tap, 0),
            Class::PoolTap { index: 4 }
        );
        assert_eq!(
            class("tap-pool-4", TunKind::Tap, 7),
            Class::PoolTap { index: 4 }
        );
        assert_eq!(class("vm-1", TunKind::Tap, 7), Class::FallbackTap);
        assert_eq!(class("vm-1", TunKind::Tun, 7), Class::TunDevice);
        assert_eq!(class("tap-pool-5", TunKind::Tun, 0), Class::TunDevice);
        assert_eq!(class("vm-1", TunKind::Tap, 0), Class::NotOurs);
        assert_eq!(class("tap-pool-05", TunKind::Tap, 0), Class::NotOurs);
        assert_eq!(class("other-4", TunKind::Tap, 8), Class::NotOurs);
    }

    #[test]
    fn verdicts_in_use_first_then_owner_then_how_it_was_made() {
        let inv = inventory(Recycle::Reset);
        let verdict = |f: &dyn Fn(&mut LinkInfo)| {
            let mut l = link("tap-pool-4", TunKind::Tap, 7);
            f(&mut l);
            inv.verdict(&l)
        };
        assert_eq!(verdict(&|_| {}), Verdict::Adoptable);
        assert_eq!(verdict(&|l| l.in_use = true), Verdict::InUse);
        assert_eq!(
            verdict(&|l| {
                l.in_use = true;
                l.owner = Some(1);
            }),
            Verdict::InUse,
            "a live VM's tap is left alone whoever made it"
        );
        assert_eq!(verdict(&|l| l.owner = Some(1)), Verdict::OtherOwner);
        assert_eq!(verdict(&|l| l.owner = None), Verdict::OtherOwner);
        assert_eq!(verdict(&|l| l.group = Some(5)), Verdict::OtherOwner);
        assert_eq!(verdict(&|l| l.multi_queue = true), Verdict::Leftover);
        assert_eq!(verdict(&|l| l.vnet_hdr = false), Verdict::Leftover);
        assert_eq!(verdict(&|l| l.persistent = false), Verdict::Leftover);
        assert_eq!(
            verdict(&|l| l.name = TapName::new("vm-9").expect("valid")),
            Verdict::Leftover,
            "a fallback tap is never adopted"
        );
        assert_eq!(verdict(&|l| l.kind = TunKind::Tun), Verdict::NotATap);
        assert_eq!(
            verdict(&|l| {
                l.name = TapName::new("vm-9").expect("valid");
                l.device_group = 0;
            }),
            Verdict::NotOurs
        );
        let fresh = inventory(Recycle::Fresh);
        assert_eq!(
            fresh.verdict(&link("tap-pool-4", TunKind::Tap, 7)),
            Verdict::Leftover
        );
    }

    #[test]
    fn gc_deletes_less_than_seed() {
        let all = [
            Verdict::NotOurs,
            Verdict::NotATap,
            Verdict::InUse,
            Verdict::Adoptable,
            Verdict::Leftover,
            Verdict::OtherOwner,
        ];
        let gc: Vec<_> = all.iter().filter(|v| v.collectable()).collect();
        let seed: Vec<_> = all.iter().filter(|v| v.seed_takes()).collect();
        assert_eq!(gc, [&Verdict::Adoptable, &Verdict::Leftover]);
        assert_eq!(
            seed,
            [
                &Verdict::Adoptable,
                &Verdict::Leftover,
                &Verdict::OtherOwner
            ]
        );
    }

    #[test]
    fn without_a_device_group_only_pool_names_are_ours() {
        let inv = Inventory::new(&PoolConfig::default()).expect("valid");
        assert_eq!(inv.device_group(), None);
        assert_eq!(inv.class(&link("vm-1", TunKind::Tap, 0)), Class::NotOurs);
        assert_eq!(inv.max_index(), 999_999);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(inv.owner(), Some(euid), "the effective uid by default");
    }
}
