//! A simulated kernel: an in-memory [`Kernel`] that enforces what Linux does.
//!
//! It is part of the product, not only a test double: orchestrators use it to
//! test their own code without root, and the demo falls back to it where the
//! real kernel is not usable. It enforces the rules the pool relies on (unique
//! names, the 15-byte limit by construction of [`TapName`], `EBUSY` when a
//! name exists, `ENODEV` when it does not, a bridge's 1023-port limit, the
//! tap's MTU range), and it can be slowed down and made to fail:
//!
//! ```
//! use std::time::Duration;
//! use tap_pool::sim::{Fault, SimKernel, SimOp};
//! use tap_pool::{Kernel, KernelError, TapName, TapSpec};
//!
//! let mut sim = SimKernel::new();
//! sim.set_latency(SimOp::Create, Duration::from_millis(1));
//! sim.inject(Fault::nth(SimOp::Create, 2, libc::ENOMEM));
//! let spec = TapSpec::default();
//! let a = TapName::new("tap-a").unwrap();
//! let b = TapName::new("tap-b").unwrap();
//! sim.create_tap(a, &spec).unwrap();
//! assert!(matches!(sim.create_tap(b, &spec), Err(KernelError::Create { .. })));
//! assert!(matches!(sim.create_tap(a, &spec), Err(KernelError::Exists { .. })));
//! assert!(sim.contains(a) && !sim.contains(b));
//! ```
//!
//! Devices are known by interface index, as on Linux: an index is never
//! reused, and a device keeps its index when it is renamed. The calls about
//! an existing device ([`Kernel::reset_tap`], [`Kernel::delete_link`],
//! [`Kernel::set_device_group`]) follow Linux's rules of identity exactly:
//!
//! - with an index, they act on the device at that index, whatever its name
//!   now; without one, on the device of that name;
//! - no device there is [`KernelError::NoSuchDevice`];
//! - a device that is not a tap (a bridge, a veth, a loopback device: see
//!   [`SimKernel::add_foreign`]) is [`KernelError::NotATap`], and is left
//!   alone;
//! - a tap renamed since (see [`SimKernel::rename_externally`]) is
//!   [`KernelError::Renamed`] for a reset or a group change, and nothing is
//!   changed; a delete deletes it all the same (it is the caller's device,
//!   known by its index).
//!
//! ```
//! use tap_pool::sim::{DeviceKind, SimKernel};
//! use tap_pool::{Device, Kernel, KernelError, TapName, TapSpec};
//!
//! let mut sim = SimKernel::new();
//! let spec = TapSpec::default();
//! let tap = TapName::new("tap-a").unwrap();
//! let moved = TapName::new("tap-moved").unwrap();
//! let created = sim.create_tap(tap, &spec).unwrap();
//! // Someone renames the tap and puts a veth under its old name.
//! assert!(sim.rename_externally(tap, moved));
//! let veth = sim.add_foreign(tap, DeviceKind::Veth).unwrap();
//! let device = Device::new(tap, created.index);
//! assert_eq!(
//!     sim.reset_tap(device, &spec, created.mac),
//!     Err(KernelError::Renamed { name: tap, index: created.index, now: Some(moved) })
//! );
//! assert_eq!(
//!     sim.delete_link(Device::from(tap)),
//!     Err(KernelError::NotATap { name: tap, index: veth })
//! );
//! sim.delete_link(device).unwrap(); // the renamed tap, by its index
//! assert!(!sim.contains(moved) && sim.has_foreign_device(tap));
//! ```
//!
//! Clones of a `SimKernel` share one kernel; it is also a [`KernelFactory`]
//! whose handles are such clones. Its watchers see every removal
//! ([`LinkEvent::Removed`]) and every rename ([`LinkEvent::Renamed`]) of any
//! device, as the Linux watcher does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::Duration;

use crate::kernel::{
    CreateStep, CreatedTap, Device, Errno, Kernel, KernelError, KernelFactory, LinkEvent, LinkInfo,
    LinkWatcher, Residue, TapSpec, TunKind,
};
use crate::name::TapName;
use crate::probe::ProbeError;

/// The most ports a Linux bridge takes (`BR_MAX_PORTS - 1`).
pub const MAX_BRIDGE_PORTS: usize = 1023;

/// The smallest and largest MTU a tap accepts.
pub const TAP_MTU_RANGE: (u32, u32) = (68, 65521);

/// A kernel call the simulation can slow down or fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimOp {
    /// [`Kernel::create_tap`].
    Create,
    /// [`Kernel::delete_link`].
    Delete,
    /// [`Kernel::list_taps`].
    List,
    /// [`Kernel::reset_tap`].
    Reset,
    /// [`Kernel::set_device_group`].
    SetGroup,
    /// [`Kernel::delete_group`].
    DeleteGroup,
    /// [`KernelFactory::probe`], which a pool started with fail-fast asks
    /// once. A fault makes it fail as Linux would: `EPERM` as
    /// [`ProbeError::NoNetAdmin`] (a process without `CAP_NET_ADMIN`), any
    /// other errno as `/dev/net/tun` failing to open with it
    /// ([`ProbeError::TunDevice`]).
    Probe,
}

const OPS: usize = 7;

impl SimOp {
    fn slot(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Trigger {
    Nth(u64),
    Every,
    Rate(f64),
}

/// A failure to inject into the simulated kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    op: SimOp,
    trigger: Trigger,
    errno: i32,
}

impl Fault {
    /// Fails the `n`th call (counting from 1, across all handles) of `op`.
    pub fn nth(op: SimOp, n: u64, errno: i32) -> Fault {
        Fault {
            op,
            trigger: Trigger::Nth(n),
            errno,
        }
    }

    /// Fails every call of `op` until the faults are cleared.
    pub fn always(op: SimOp, errno: i32) -> Fault {
        Fault {
            op,
            trigger: Trigger::Every,
            errno,
        }
    }

    /// Fails each call of `op` with probability `p` (0.0 to 1.0), drawn from
    /// the simulation's seeded generator, so a run is repeatable.
    pub fn rate(op: SimOp, p: f64, errno: i32) -> Fault {
        Fault {
            op,
            trigger: Trigger::Rate(p),
            errno,
        }
    }
}

#[derive(Debug)]
struct Bridge {
    index: u32,
    ports: usize,
}

/// A kind of device that is not a tap, for [`SimKernel::add_foreign`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    /// A loopback device, as `lo` is.
    Loopback,
    /// A bridge, as [`SimKernel::add_bridge`] adds (taps can be its ports).
    Bridge,
    /// One end of a veth pair.
    Veth,
    /// A dummy device.
    Dummy,
    /// A physical network card.
    Ethernet,
}

/// A device that is neither a tap nor a bridge.
#[derive(Debug)]
struct Foreign {
    index: u32,
    kind: DeviceKind,
    /// Its device group (`IFLA_GROUP`).
    group: u32,
}

/// What a call about an existing device does with a tap renamed since the
/// caller last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnRename {
    /// Refuses with [`KernelError::Renamed`] (a reset, a group change).
    Refuse,
    /// Acts on it all the same (a delete).
    Follow,
}

#[derive(Debug)]
struct State {
    taps: BTreeMap<TapName, LinkInfo>,
    bridges: BTreeMap<TapName, Bridge>,
    next_index: u32,
    latency: [Duration; OPS],
    calls: [u64; OPS],
    /// Calls that have returned, by operation.
    returned: [u64; OPS],
    faults: Vec<Fault>,
    rng: u64,
    euid: u32,
    /// Addresses a tenant put on a tap, as text.
    addresses: BTreeMap<TapName, Vec<String>>,
    watchers: Vec<mpsc::Sender<LinkEvent>>,
    /// Devices that are neither taps nor bridges (a NIC, a veth, a dummy).
    foreign: BTreeMap<TapName, Foreign>,
    /// Every device's name, by interface index.
    names: BTreeMap<u32, TapName>,
}

impl State {
    fn exists(&self, name: &TapName) -> bool {
        self.index_of(name).is_some()
    }

    /// The interface index of the device `name`, of any kind.
    fn index_of(&self, name: &TapName) -> Option<u32> {
        if let Some(tap) = self.taps.get(name) {
            return Some(tap.index);
        }
        if let Some(bridge) = self.bridges.get(name) {
            return Some(bridge.index);
        }
        self.foreign.get(name).map(|f| f.index)
    }

    /// A new interface index, never used before.
    fn new_index(&mut self, name: TapName) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        self.names.insert(index, name);
        index
    }

    /// The name of the tap a call about `device` acts on, by Linux's rules
    /// (see the [module documentation](self)): the device at its index
    /// where known, else the device of its name, which must be a tap, and
    /// still under the caller's name unless `on_rename` follows it.
    fn target(&self, device: Device, on_rename: OnRename) -> Result<TapName, KernelError> {
        let name = device.name;
        let found = match device.index {
            Some(index) => self.names.get(&index).map(|&now| (index, now)),
            None => self.index_of(&name).map(|index| (index, name)),
        };
        let Some((index, now)) = found else {
            return Err(KernelError::NoSuchDevice { name });
        };
        if !self.taps.contains_key(&now) {
            return Err(KernelError::NotATap { name, index });
        }
        if now != name && on_rename == OnRename::Refuse {
            return Err(KernelError::Renamed {
                name,
                index,
                now: Some(now),
            });
        }
        Ok(now)
    }

    fn emit(&mut self, event: LinkEvent) {
        self.watchers.retain(|w| w.send(event).is_ok());
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: small, seeded, repeatable.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Counts the call and says whether a fault fires, and with which errno.
    fn call(&mut self, op: SimOp) -> (Duration, Option<Errno>) {
        self.calls[op.slot()] += 1;
        let n = self.calls[op.slot()];
        let mut fired = None;
        for f in self.faults.iter().filter(|f| f.op == op) {
            let hit = match f.trigger {
                Trigger::Nth(k) => k == n,
                Trigger::Every => true,
                Trigger::Rate(p) => {
                    self.rng ^= self.rng >> 12;
                    self.rng ^= self.rng << 25;
                    self.rng ^= self.rng >> 27;
                    let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
                    ((x >> 11) as f64 / (1u64 << 53) as f64) < p
                }
            };
            if hit && fired.is_none() {
                fired = Some(Errno(f.errno));
            }
        }
        (self.latency[op.slot()], fired)
    }
}

/// The simulated kernel. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct SimKernel {
    state: Arc<Mutex<State>>,
}

impl Default for SimKernel {
    fn default() -> Self {
        SimKernel::new()
    }
}

impl SimKernel {
    /// An empty kernel with no latency and no faults.
    pub fn new() -> SimKernel {
        SimKernel::with_seed(0x9e37_79b9_7f4a_7c15)
    }

    /// An empty kernel whose fault generator starts from `seed`.
    pub fn with_seed(seed: u64) -> SimKernel {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        SimKernel {
            state: Arc::new(Mutex::new(State {
                taps: BTreeMap::new(),
                bridges: BTreeMap::new(),
                next_index: 2, // 1 is the loopback device
                latency: [Duration::ZERO; OPS],
                calls: [0; OPS],
                returned: [0; OPS],
                faults: Vec::new(),
                rng: seed | 1,
                euid,
                addresses: BTreeMap::new(),
                watchers: Vec::new(),
                foreign: BTreeMap::new(),
                names: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data: every update
        // below is a single insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every call of `op` take `latency` (slept on the calling thread,
    /// outside any lock, so calls from several threads overlap as on Linux).
    pub fn set_latency(&self, op: SimOp, latency: Duration) {
        self.lock().latency[op.slot()] = latency;
    }

    /// Adds a fault.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// How many calls of `op` have returned (with their effects done).
    pub fn returned(&self, op: SimOp) -> u64 {
        self.lock().returned[op.slot()]
    }

    /// How many calls of `op` were made, failed ones included.
    pub fn calls(&self, op: SimOp) -> u64 {
        self.lock().calls[op.slot()]
    }

    /// Adds a bridge, as `ip link add NAME type bridge` would, and returns
    /// its index.
    ///
    /// # Errors
    /// [`KernelError::Exists`] if the name is taken.
    pub fn add_bridge(&self, name: TapName) -> Result<u32, KernelError> {
        let mut s = self.lock();
        if s.exists(&name) {
            return Err(KernelError::Exists { name });
        }
        let index = s.new_index(name);
        s.bridges.insert(name, Bridge { index, ports: 0 });
        Ok(index)
    }

    /// Adds a device that is not a tap, of `kind`, in device group 0, as
    /// `ip link add NAME type KIND` would: its name is taken (a create of it
    /// is [`KernelError::Exists`]) and it has an index of its own, but
    /// [`Kernel::list_taps`] does not list it, and every call about an
    /// existing tap refuses it ([`KernelError::NotATap`]). A bridge is one
    /// taps can be ports of ([`SimKernel::add_bridge`]). Returns its index.
    ///
    /// # Errors
    /// [`KernelError::Exists`] if the name is taken.
    pub fn add_foreign(&self, name: TapName, kind: DeviceKind) -> Result<u32, KernelError> {
        if kind == DeviceKind::Bridge {
            return self.add_bridge(name);
        }
        let mut s = self.lock();
        if s.exists(&name) {
            return Err(KernelError::Exists { name });
        }
        let index = s.new_index(name);
        s.foreign.insert(
            name,
            Foreign {
                index,
                kind,
                group: 0,
            },
        );
        Ok(index)
    }

    /// The kind of the device `name` added by [`SimKernel::add_foreign`] or
    /// [`SimKernel::add_foreign_device`] (a bridge's is
    /// [`DeviceKind::Bridge`]), if it exists.
    pub fn foreign_kind(&self, name: TapName) -> Option<DeviceKind> {
        let s = self.lock();
        if s.bridges.contains_key(&name) {
            return Some(DeviceKind::Bridge);
        }
        s.foreign.get(&name).map(|f| f.kind)
    }

    /// The interface index of the device `name`, of any kind, if it exists.
    pub fn index_of(&self, name: TapName) -> Option<u32> {
        self.lock().index_of(&name)
    }

    /// The interface index of the bridge `name`, if it exists.
    pub fn bridge_index(&self, name: TapName) -> Option<u32> {
        self.lock().bridges.get(&name).map(|b| b.index)
    }

    /// How many ports the bridge `name` has, if it exists.
    pub fn bridge_ports(&self, name: TapName) -> Option<usize> {
        self.lock().bridges.get(&name).map(|b| b.ports)
    }

    /// Whether a tap of that name exists.
    pub fn contains(&self, name: TapName) -> bool {
        self.lock().taps.contains_key(&name)
    }

    /// The tap `name`, as a dump would report it.
    pub fn tap(&self, name: TapName) -> Option<LinkInfo> {
        self.lock().taps.get(&name).cloned()
    }

    /// Every tap, in name order.
    pub fn taps(&self) -> Vec<LinkInfo> {
        self.lock().taps.values().cloned().collect()
    }

    /// Removes a device (a tap, or any other) behind the pool's back, as
    /// `ip link del` would; watchers see [`LinkEvent::Removed`]. Returns
    /// whether it existed. Not counted as a call and never faulted.
    pub fn remove_externally(&self, name: TapName) -> bool {
        let mut s = self.lock();
        if remove_tap(&mut s, &name) {
            return true;
        }
        if let Some(bridge) = s.bridges.remove(&name) {
            for tap in s
                .taps
                .values_mut()
                .filter(|t| t.master == Some(bridge.index))
            {
                tap.master = None;
            }
            s.names.remove(&bridge.index);
            s.emit(LinkEvent::Removed {
                name,
                index: bridge.index,
            });
            return true;
        }
        if let Some(foreign) = s.foreign.remove(&name) {
            s.names.remove(&foreign.index);
            s.emit(LinkEvent::Removed {
                name,
                index: foreign.index,
            });
            return true;
        }
        false
    }

    /// Renames a device (a tap, or any other) behind the pool's back, as
    /// `ip link set FROM name TO` would: it keeps its index and everything
    /// else, and watchers see [`LinkEvent::Renamed`]. Returns whether it was
    /// renamed: `false` if there is no device `from`, or `to` is taken. Not
    /// counted as a call and never faulted.
    pub fn rename_externally(&self, from: TapName, to: TapName) -> bool {
        let mut s = self.lock();
        let Some(index) = s.index_of(&from) else {
            return false;
        };
        if from == to {
            return true;
        }
        if s.exists(&to) {
            return false;
        }
        if let Some(mut tap) = s.taps.remove(&from) {
            tap.name = to;
            s.taps.insert(to, tap);
            if let Some(addresses) = s.addresses.remove(&from) {
                s.addresses.insert(to, addresses);
            }
        } else if let Some(bridge) = s.bridges.remove(&from) {
            s.bridges.insert(to, bridge);
        } else if let Some(foreign) = s.foreign.remove(&from) {
            s.foreign.insert(to, foreign);
        }
        s.names.insert(index, to);
        s.emit(LinkEvent::Renamed {
            index,
            from,
            to: Some(to),
        });
        true
    }

    /// Marks a tap as opened (or closed) by a process, as a VMM attaching to it
    /// would; closing a tap whose persistence is off removes it, as Linux
    /// does (watchers see the removal). Returns whether the tap existed.
    pub fn set_in_use(&self, name: TapName, in_use: bool) -> bool {
        let mut s = self.lock();
        let Some(tap) = s.taps.get_mut(&name) else {
            return false;
        };
        tap.in_use = in_use;
        s.remove_if_unheld(name);
        true
    }
}

fn remove_tap(s: &mut State, name: &TapName) -> bool {
    let Some(tap) = s.taps.remove(name) else {
        return false;
    };
    s.names.remove(&tap.index);
    s.addresses.remove(name);
    if let Some(b) = tap
        .master
        .and_then(|m| s.bridges.values_mut().find(|b| b.index == m))
    {
        b.ports -= 1;
    }
    s.emit(LinkEvent::Removed {
        name: *name,
        index: tap.index,
    });
    true
}

impl State {
    /// Removes the tap `name` if it is neither persistent nor held by a
    /// file, as Linux does when the last file of a non-persistent tap
    /// closes; watchers see the removal.
    fn remove_if_unheld(&mut self, name: TapName) {
        if self
            .taps
            .get(&name)
            .is_some_and(|tap| !tap.persistent && !tap.in_use)
        {
            remove_tap(self, &name);
        }
    }

    /// The master index for `spec`'s bridge, checking that it exists and, if
    /// `current` is not already one of its ports, that it has room.
    fn master_for(
        &self,
        name: TapName,
        spec: &TapSpec,
        current: Option<u32>,
    ) -> Result<Option<u32>, KernelError> {
        let Some(bridge) = spec.bridge else {
            return Ok(None);
        };
        match self.bridges.get(&bridge) {
            None => Err(KernelError::BridgeMissing { name, bridge }),
            Some(b) if current == Some(b.index) => Ok(Some(b.index)),
            Some(b) if b.ports >= MAX_BRIDGE_PORTS => Err(KernelError::BridgeFull { name, bridge }),
            Some(b) => Ok(Some(b.index)),
        }
    }

    fn set_master(&mut self, name: TapName, master: Option<u32>) {
        let tap = self.taps.get_mut(&name).expect("caller checked");
        let old = std::mem::replace(&mut tap.master, master);
        if old == master {
            return;
        }
        for b in self.bridges.values_mut() {
            if Some(b.index) == old {
                b.ports -= 1;
            }
            if Some(b.index) == master {
                b.ports += 1;
            }
        }
    }
}

fn check_mtu(name: TapName, mtu: u32) -> Result<(), KernelError> {
    if (TAP_MTU_RANGE.0..=TAP_MTU_RANGE.1).contains(&mtu) {
        return Ok(());
    }
    Err(KernelError::Configure {
        name,
        errno: Errno(libc::EINVAL),
        ext_ack: Some(if mtu < TAP_MTU_RANGE.0 {
            "mtu less than device minimum".to_owned()
        } else {
            "mtu greater than device maximum".to_owned()
        }),
    })
}

/// Counts a call as returned when the call's body ends (dropped last, after
/// its effects).
struct Returned<'a> {
    sim: &'a SimKernel,
    op: SimOp,
}

impl Drop for Returned<'_> {
    fn drop(&mut self) {
        self.sim.lock().returned[self.op.slot()] += 1;
    }
}

impl SimKernel {
    /// Counts a call of `op`, sleeps its latency outside the lock, and returns
    /// the injected errno if a fault fires.
    fn enter(&self, op: SimOp) -> Option<Errno> {
        let (latency, fault) = self.lock().call(op);
        if !latency.is_zero() {
            thread::sleep(latency);
        }
        fault
    }

    /// Changes a tap as a tenant (or anyone with `ip`) could: `f` gets its
    /// [`LinkInfo`] to edit (MTU, master, up, MAC, group; owner, group,
    /// persistence and the rest of its tun state, as a process attached to
    /// it can). Its name and
    /// index stay as they are (a rename is
    /// [`SimKernel::rename_externally`]). Returns whether the tap exists.
    /// Not counted as a call and never faulted.
    pub fn tamper(&self, name: TapName, f: impl FnOnce(&mut LinkInfo)) -> bool {
        let mut s = self.lock();
        let Some(tap) = s.taps.get_mut(&name) else {
            return false;
        };
        let (before, index) = (tap.master, tap.index);
        f(tap);
        tap.name = name;
        tap.index = index;
        let after = std::mem::replace(&mut tap.master, before);
        s.set_master(name, after);
        s.remove_if_unheld(name);
        true
    }

    /// Adds a device that is not a tap (a NIC, [`DeviceKind::Ethernet`]) to
    /// device group `group`, as an operator could by mistake. A group
    /// delete takes it too. Returns its index, or `None` (adding nothing)
    /// if the name is taken.
    pub fn add_foreign_device(&self, name: TapName, group: u32) -> Option<u32> {
        let index = self.add_foreign(name, DeviceKind::Ethernet).ok()?;
        if let Some(foreign) = self.lock().foreign.get_mut(&name) {
            foreign.group = group;
        }
        Some(index)
    }

    /// Whether the device `name`, neither a tap nor a bridge, exists (one
    /// added by [`SimKernel::add_foreign`] or
    /// [`SimKernel::add_foreign_device`]).
    pub fn has_foreign_device(&self, name: TapName) -> bool {
        self.lock().foreign.contains_key(&name)
    }

    /// Puts an address on a tap, as a tenant could. Returns whether the tap
    /// exists.
    pub fn add_address(&self, name: TapName, address: &str) -> bool {
        let mut s = self.lock();
        if !s.taps.contains_key(&name) {
            return false;
        }
        s.addresses
            .entry(name)
            .or_default()
            .push(address.to_owned());
        true
    }

    /// The addresses on a tap.
    pub fn addresses(&self, name: TapName) -> Vec<String> {
        self.lock()
            .addresses
            .get(&name)
            .cloned()
            .unwrap_or_default()
    }
}

impl Kernel for SimKernel {
    fn create_tap(&mut self, name: TapName, spec: &TapSpec) -> Result<CreatedTap, KernelError> {
        let _returned = Returned {
            sim: self,
            op: SimOp::Create,
        };
        if let Some(errno) = self.enter(SimOp::Create) {
            return Err(KernelError::Create {
                name,
                step: CreateStep::SetIff,
                errno,
            });
        }
        let mut s = self.lock();
        if s.exists(&name) {
            return Err(KernelError::Exists { name });
        }
        let master = s.master_for(name, spec, None)?;
        let mtu = spec.mtu_or_default();
        check_mtu(name, mtu)?;
        let index = s.new_index(name);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&s.next_rand().to_be_bytes()[..6]);
        // A locally administered unicast address, as the tun driver makes.
        mac[0] = (mac[0] & 0xfe) | 0x02;
        let owner = spec.effective_owner(s.euid);
        s.taps.insert(
            name,
            LinkInfo {
                name,
                index,
                kind: TunKind::Tap,
                persistent: true,
                owner,
                group: spec.group,
                master: None,
                mtu,
                up: true,
                in_use: false,
                device_group: spec.device_group.unwrap_or(0),
                mac,
                vnet_hdr: spec.vnet_hdr,
                multi_queue: spec.multi_queue,
                queues: spec.multi_queue.then_some(0),
                link_type: libc::ARPHRD_ETHER,
            },
        );
        s.set_master(name, master);
        Ok(CreatedTap { index, mac })
    }

    fn delete_link(&mut self, device: Device) -> Result<(), KernelError> {
        let name = device.name;
        let _returned = Returned {
            sim: self,
            op: SimOp::Delete,
        };
        if let Some(errno) = self.enter(SimOp::Delete) {
            return Err(KernelError::Delete {
                name,
                errno,
                ext_ack: None,
            });
        }
        let mut s = self.lock();
        let now = s.target(device, OnRename::Follow)?;
        remove_tap(&mut s, &now);
        Ok(())
    }

    fn list_taps(&mut self) -> Result<Vec<LinkInfo>, KernelError> {
        let _returned = Returned {
            sim: self,
            op: SimOp::List,
        };
        if let Some(errno) = self.enter(SimOp::List) {
            return Err(KernelError::List {
                errno,
                ext_ack: None,
            });
        }
        Ok(self.taps())
    }

    fn reset_tap(
        &mut self,
        device: Device,
        spec: &TapSpec,
        mac: [u8; 6],
    ) -> Result<(), KernelError> {
        let name = device.name;
        let _returned = Returned {
            sim: self,
            op: SimOp::Reset,
        };
        if let Some(errno) = self.enter(SimOp::Reset) {
            return Err(KernelError::Reset {
                name,
                errno,
                ext_ack: None,
            });
        }
        let mut s = self.lock();
        s.target(device, OnRename::Refuse)?;
        let Some(current) = s.taps.get(&name).cloned() else {
            return Err(KernelError::NoSuchDevice { name });
        };
        // The Linux kernel's rules: a file still attached, or what no reset
        // can change, is a residue, and nothing is changed.
        let owner = spec.effective_owner(s.euid);
        let residue = |residue| KernelError::Residue {
            name,
            index: current.index,
            residue,
        };
        // As Linux: the bridge is looked up before the tun device is touched.
        let master = s.master_for(name, spec, current.master)?;
        if current.in_use {
            return Err(residue(Residue::Attached));
        }
        current.fixed_residue(spec, owner).map_err(residue)?;
        let mtu = spec.mtu_or_default();
        check_mtu(name, mtu)?;
        s.addresses.remove(&name);
        let tap = s.taps.get_mut(&name).expect("checked above");
        tap.mtu = mtu;
        tap.mac = mac;
        tap.up = true;
        tap.device_group = spec.device_group.unwrap_or(0);
        // As TUNSETOWNER and TUNSETGROUP: they set, they never unset.
        if owner.is_some() {
            tap.owner = owner;
        }
        if spec.group.is_some() {
            tap.group = spec.group;
        }
        tap.persistent = true;
        tap.vnet_hdr = spec.vnet_hdr;
        s.set_master(name, master);
        Ok(())
    }

    fn set_device_group(&mut self, device: Device, group: u32) -> Result<(), KernelError> {
        let name = device.name;
        let _returned = Returned {
            sim: self,
            op: SimOp::SetGroup,
        };
        if let Some(errno) = self.enter(SimOp::SetGroup) {
            return Err(KernelError::Configure {
                name,
                errno,
                ext_ack: None,
            });
        }
        let mut s = self.lock();
        s.target(device, OnRename::Refuse)?;
        match s.taps.get_mut(&name) {
            Some(tap) => {
                tap.device_group = group;
                Ok(())
            }
            None => Err(KernelError::NoSuchDevice { name }),
        }
    }

    fn list_group(&mut self, group: u32) -> Result<Vec<TapName>, KernelError> {
        let _returned = Returned {
            sim: self,
            op: SimOp::List,
        };
        if let Some(errno) = self.enter(SimOp::List) {
            return Err(KernelError::List {
                errno,
                ext_ack: None,
            });
        }
        let s = self.lock();
        Ok(s.taps
            .values()
            .filter(|t| t.device_group == group)
            .map(|t| t.name)
            .chain(
                s.foreign
                    .iter()
                    .filter(|(_, f)| f.group == group)
                    .map(|(n, _)| *n),
            )
            .collect())
    }

    fn delete_group(&mut self, group: u32) -> Result<(), KernelError> {
        let _returned = Returned {
            sim: self,
            op: SimOp::DeleteGroup,
        };
        let fault = self.enter(SimOp::DeleteGroup);
        if group == 0 || fault.is_some() {
            return Err(KernelError::DeleteGroup {
                group,
                errno: fault.unwrap_or(Errno(libc::EINVAL)),
                ext_ack: None,
            });
        }
        let mut s = self.lock();
        let members: Vec<TapName> = s
            .taps
            .values()
            .filter(|t| t.device_group == group)
            .map(|t| t.name)
            .collect();
        for name in members {
            remove_tap(&mut s, &name);
        }
        let foreign: Vec<(TapName, u32)> = s
            .foreign
            .iter()
            .filter(|(_, f)| f.group == group)
            .map(|(name, f)| (*name, f.index))
            .collect();
        for (name, index) in foreign {
            s.foreign.remove(&name);
            s.names.remove(&index);
            s.emit(LinkEvent::Removed { name, index });
        }
        Ok(())
    }
}

/// A [`LinkWatcher`] of the simulated kernel.
#[derive(Debug)]
pub struct SimWatcher {
    events: mpsc::Receiver<LinkEvent>,
}

impl LinkWatcher for SimWatcher {
    fn next_event(&mut self) -> Result<Option<LinkEvent>, KernelError> {
        match self.events.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => Ok(Some(event)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            // The kernel is gone with every handle: nothing more will happen.
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
        }
    }
}

impl KernelFactory for SimKernel {
    fn open(&self) -> Result<Box<dyn Kernel>, KernelError> {
        Ok(Box::new(self.clone()))
    }

    /// Counted as a call of [`SimOp::Probe`], and failed by a fault on it.
    fn probe(&self) -> Result<(), ProbeError> {
        match self.enter(SimOp::Probe) {
            None => Ok(()),
            Some(Errno(libc::EPERM)) => Err(ProbeError::NoNetAdmin),
            Some(errno) => Err(ProbeError::TunDevice {
                path: "/dev/net/tun".into(),
                errno,
            }),
        }
    }

    fn watch(&self) -> Result<Box<dyn LinkWatcher>, KernelError> {
        let (tx, rx) = mpsc::channel();
        self.lock().watchers.push(tx);
        Ok(Box::new(SimWatcher { events: rx }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> TapName {
        TapName::new(s).unwrap()
    }

    #[test]
    fn bridge_rules_match_linux() {
        let mut k = SimKernel::new();
        let spec = TapSpec {
            bridge: Some(n("br0")),
            ..TapSpec::default()
        };
        assert_eq!(
            k.create_tap(n("t0"), &spec),
            Err(KernelError::BridgeMissing {
                name: n("t0"),
                bridge: n("br0")
            })
        );
        assert!(!k.contains(n("t0")));
        let br = k.add_bridge(n("br0")).unwrap();
        for i in 0..MAX_BRIDGE_PORTS {
            k.create_tap(n(&format!("t{i}")), &spec).unwrap();
        }
        assert_eq!(k.bridge_ports(n("br0")), Some(MAX_BRIDGE_PORTS));
        assert_eq!(
            k.create_tap(n("full"), &spec),
            Err(KernelError::BridgeFull {
                name: n("full"),
                bridge: n("br0")
            })
        );
        assert!(!k.contains(n("full")));
        assert_eq!(k.tap(n("t5")).unwrap().master, Some(br));
        k.delete_link(n("t5").into()).unwrap();
        k.create_tap(n("full"), &spec).unwrap();
    }

    fn spec() -> TapSpec {
        TapSpec {
            mtu: Some(1400),
            device_group: Some(7),
            ..TapSpec::default()
        }
    }

    /// The simulated kernel takes names as `TapName`s, so its rules are
    /// the Linux kernel's byte for byte: names need not be UTF-8, and two
    /// that differ in one byte are two devices.
    #[test]
    fn names_are_bytes() {
        let mut k = SimKernel::new();
        let mut watcher = k.watch().unwrap();
        let b = |b: &[u8]| TapName::from_bytes(b).unwrap();
        let ff = k.create_tap(b(b"tap\xff"), &spec()).unwrap();
        k.create_tap(b(b"tap\xfe"), &spec()).unwrap();
        let mut names: Vec<TapName> = k.list_taps().unwrap().iter().map(|l| l.name).collect();
        names.sort();
        assert_eq!(names, [b(b"tap\xfe"), b(b"tap\xff")]);
        assert!(k.rename_externally(b(b"tap\xff"), b(b"tap\xa1")));
        assert_eq!(
            watcher.next_event(),
            Ok(Some(LinkEvent::Renamed {
                index: ff.index,
                from: b(b"tap\xff"),
                to: Some(b(b"tap\xa1")),
            }))
        );
    }

    #[test]
    fn a_device_keeps_its_index_when_renamed() {
        let mut k = SimKernel::new();
        let mut watcher = k.watch().unwrap();
        let created = k.create_tap(n("t0"), &spec()).unwrap();
        let br = k.add_bridge(n("br0")).unwrap();
        assert!(k.add_address(n("t0"), "10.0.0.1/24"));
        assert!(k.rename_externally(n("t0"), n("t1")));
        assert!(k.rename_externally(n("br0"), n("br1")));
        assert!(!k.contains(n("t0")));
        let tap = k.tap(n("t1")).unwrap();
        assert_eq!(
            (tap.name, tap.index, tap.mtu),
            (n("t1"), created.index, 1400)
        );
        assert_eq!(k.addresses(n("t1")), ["10.0.0.1/24"]);
        assert_eq!(k.index_of(n("br1")), Some(br));
        assert_eq!(k.index_of(n("t0")), None);
        // The old name is free again; a taken name or a missing device is
        // not renamed.
        let again = k.create_tap(n("t0"), &spec()).unwrap();
        assert!(again.index > br);
        assert!(!k.rename_externally(n("t0"), n("t1")));
        assert!(!k.rename_externally(n("none"), n("t9")));
        let mut seen = Vec::new();
        while let Some(event) = watcher.next_event().unwrap() {
            seen.push(event);
        }
        assert_eq!(
            seen,
            [
                LinkEvent::Renamed {
                    index: created.index,
                    from: n("t0"),
                    to: Some(n("t1"))
                },
                LinkEvent::Renamed {
                    index: br,
                    from: n("br0"),
                    to: Some(n("br1"))
                },
            ]
        );
    }

    #[test]
    fn a_renamed_tap_is_refused_by_reset_and_group_change_and_deleted_by_index() {
        let mut k = SimKernel::new();
        let created = k.create_tap(n("t0"), &spec()).unwrap();
        let device = Device::new(n("t0"), created.index);
        k.tamper(n("t0"), |l| l.mtu = 9000);
        assert!(k.rename_externally(n("t0"), n("t1")));
        let renamed = Err(KernelError::Renamed {
            name: n("t0"),
            index: created.index,
            now: Some(n("t1")),
        });
        assert_eq!(k.reset_tap(device, &spec(), created.mac), renamed);
        assert_eq!(k.set_device_group(device, 9), renamed);
        let tap = k.tap(n("t1")).unwrap();
        assert_eq!((tap.mtu, tap.device_group), (9000, 7), "nothing changed");
        // By its old name alone: no such device.
        assert_eq!(
            k.reset_tap(n("t0").into(), &spec(), created.mac),
            Err(KernelError::NoSuchDevice { name: n("t0") })
        );
        k.delete_link(device).unwrap();
        assert!(k.taps().is_empty());
        for result in [
            k.delete_link(device),
            k.reset_tap(device, &spec(), created.mac),
            k.set_device_group(device, 9),
        ] {
            assert_eq!(result, Err(KernelError::NoSuchDevice { name: n("t0") }));
        }
    }

    #[test]
    fn a_device_that_is_not_a_tap_is_never_touched() {
        let mut k = SimKernel::new();
        let created = k.create_tap(n("t0"), &spec()).unwrap();
        let old = Device::new(n("t0"), created.index);
        assert!(k.rename_externally(n("t0"), n("t1")));
        // A veth under the tap's old name, a loopback device, a bridge, a NIC.
        let veth = k.add_foreign(n("t0"), DeviceKind::Veth).unwrap();
        let lo = k.add_foreign(n("lo"), DeviceKind::Loopback).unwrap();
        let br = k.add_foreign(n("br0"), DeviceKind::Bridge).unwrap();
        let eth = k.add_foreign_device(n("eth0"), 7).unwrap();
        assert_eq!(
            k.add_foreign(n("lo"), DeviceKind::Dummy),
            Err(KernelError::Exists { name: n("lo") })
        );
        assert_eq!(k.add_foreign_device(n("t1"), 7), None);
        assert_eq!(
            k.create_tap(n("t0"), &spec()),
            Err(KernelError::Exists { name: n("t0") })
        );
        for (device, index) in [
            (Device::from(n("t0")), veth),
            (Device::from(n("lo")), lo),
            (Device::new(n("t0"), lo), lo),
            (Device::from(n("br0")), br),
            (Device::new(n("t5"), br), br),
            (Device::new(n("eth0"), eth), eth),
        ] {
            let not_a_tap = Err(KernelError::NotATap {
                name: device.name,
                index,
            });
            assert_eq!(k.reset_tap(device, &spec(), created.mac), not_a_tap);
            assert_eq!(k.set_device_group(device, 9), not_a_tap);
            assert_eq!(k.delete_link(device), not_a_tap);
        }
        assert_eq!(k.foreign_kind(n("t0")), Some(DeviceKind::Veth));
        assert_eq!(k.foreign_kind(n("lo")), Some(DeviceKind::Loopback));
        assert_eq!(k.foreign_kind(n("br0")), Some(DeviceKind::Bridge));
        assert_eq!(k.bridge_index(n("br0")), Some(br));
        assert_eq!(k.list_group(7).unwrap(), [n("t1"), n("eth0")]);
        let listed: Vec<_> = k.list_taps().unwrap().iter().map(|l| l.name).collect();
        assert_eq!(listed, [n("t1")]);
        // The old device, by its index, is the renamed tap, not the veth.
        k.delete_link(old).unwrap();
        assert!(k.has_foreign_device(n("t0")));
        assert!(k.remove_externally(n("t0")));
        assert!(!k.has_foreign_device(n("t0")));
        assert!(k.remove_externally(n("br0")));
        assert_eq!(k.index_of(n("br0")), None);
    }

    #[test]
    fn a_group_delete_takes_foreign_devices_in_the_group() {
        let mut k = SimKernel::new();
        let mut watcher = k.watch().unwrap();
        let eth = k.add_foreign_device(n("eth0"), 7).unwrap();
        k.add_foreign(n("veth0"), DeviceKind::Veth).unwrap();
        k.delete_group(7).unwrap();
        assert!(!k.has_foreign_device(n("eth0")));
        assert!(k.has_foreign_device(n("veth0")));
        assert_eq!(
            watcher.next_event().unwrap(),
            Some(LinkEvent::Removed {
                name: n("eth0"),
                index: eth
            })
        );
    }

    #[test]
    fn tamper_cannot_rename() {
        let k = SimKernel::new();
        let created = k.clone().create_tap(n("t0"), &spec()).unwrap();
        assert!(k.tamper(n("t0"), |l| {
            l.name = n("t9");
            l.index = 999;
            l.mtu = 1300;
        }));
        let tap = k.tap(n("t0")).unwrap();
        assert_eq!(
            (tap.name, tap.index, tap.mtu),
            (n("t0"), created.index, 1300)
        );
    }

    #[test]
    fn delete_of_missing_device_is_enodev() {
        let mut k = SimKernel::new();
        assert_eq!(
            k.delete_link(n("nope").into()),
            Err(KernelError::NoSuchDevice { name: n("nope") })
        );
    }

    #[test]
    fn owner_defaults_to_the_process() {
        let mut k = SimKernel::new();
        k.create_tap(n("t0"), &TapSpec::default()).unwrap();
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        assert_eq!(k.tap(n("t0")).unwrap().owner, Some(me));
    }

    #[test]
    fn rate_faults_are_repeatable() {
        let run = || {
            let mut k = SimKernel::with_seed(7);
            k.inject(Fault::rate(SimOp::Create, 0.3, libc::EIO));
            (0..200)
                .map(|i| {
                    k.create_tap(n(&format!("t{i}")), &TapSpec::default())
                        .is_ok()
                })
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let failed = a.iter().filter(|ok| !**ok).count();
        assert!((30..90).contains(&failed), "{failed} of 200 failed");
    }
}
