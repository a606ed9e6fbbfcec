//! Per-device sysctls (`net.ipv4.conf.<tap>.*`, `net.ipv6.conf.<tap>.*`):
//! which of a tap's differ from the namespace's `default`, which a fresh tap
//! copies when it is made, and putting those back.
//!
//! - **Reading the tap's.** One `RTM_GETLINK` reports both families'
//!   settings (`IFLA_INET_CONF`, `IFLA_INET6_CONF`: an array by the
//!   kernel's `IPV4_DEVCONF_*` and `DEVCONF_*` numbers), which
//!   [`IPV4_KEYS`] and [`IPV6_KEYS`] name. A key the arrays do not carry
//!   (on 6.18: IPv6's `stable_secret`, `ra_honor_pio_life`,
//!   `ra_honor_pio_pflag`, `regen_min_advance`; any key a later kernel
//!   adds) is read from `/proc/sys/net/ipv{4,6}/conf/<tap>/<key>`.
//! - **The reference.** Every file of `/proc/sys/net/ipv{4,6}/conf/default/`,
//!   read into a cache per thread and namespace ([`Defaults`]) that is
//!   filled again when older than [`DEFAULTS_MAX_AGE`]; and before a key is
//!   written its default is read again, so no stale default is ever
//!   written. Exceptions: IPv6 `mtu` follows the link's MTU (a fresh tap's
//!   is the spec's MTU; when the link's MTU is not that yet, the reset's
//!   own MTU change sets it); a fresh tap's IPv6 `addr_gen_mode` is
//!   `stable_privacy` (2) when the default has a `stable_secret`
//!   (`ipv6_add_dev`); `stable_secret` reads as `EIO` when unset.
//! - **Writing.** Only keys that differ. IPv4 keys the array carries go in
//!   the reset's `RTM_SETLINK` (`IFLA_AF_SPEC` / `AF_INET` /
//!   `IFLA_INET_CONF`), by index; IPv6 has no such attribute, so those (and
//!   any other) are written to `/proc/sys/net/ipv6/conf/<tap>/<key>`, through
//!   the directory opened once and checked to still be the tap's (its name
//!   still names its index) after it was opened: a directory whose device
//!   is renamed or deleted is unregistered, and nothing in it opens any
//!   more.
//!
//! `/proc/sys/net` shows the network namespace of the *calling thread*
//! (not the process's), which is the pool's: the worker thread entered it
//! before opening its handle (checked by the real-kernel tests, which run
//! the workers on threads of their own in private namespaces).
//!
//! What cannot be put back is [`Unrestorable`]: a read-only key that differs
//! (`mc_forwarding`: a multicast routing daemon has the tap as an
//! interface), a `stable_secret` where the default has none (one can be
//! set, never unset), a write the kernel refuses.

use std::cell::RefCell;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use super::{Leftover, Unrestorable};
use crate::kernel::{Errno, TapSpec};
use crate::linux::link::parse::LinkState;
use crate::linux::netlink::Rtnl;
use crate::name::TapName;

/// How long the namespace's defaults are trusted before they are read
/// again (a key about to be written is always read again).
pub(crate) const DEFAULTS_MAX_AGE: Duration = Duration::from_secs(1);

/// The IPv4 keys by `IPV4_DEVCONF_*` (linux/ip.h, Linux 6.18): key `i` is
/// `IPV4_DEVCONF_*` `i + 1`, at `i` in `IFLA_INET_CONF`. No unit
/// conversions: the array holds what the sysctl shows.
pub(crate) const IPV4_KEYS: [&str; 33] = [
    "forwarding",
    "mc_forwarding",
    "proxy_arp",
    "accept_redirects",
    "secure_redirects",
    "send_redirects",
    "shared_media",
    "rp_filter",
    "accept_source_route",
    "bootp_relay",
    "log_martians",
    "tag",
    "arp_filter",
    "medium_id",
    "disable_xfrm",
    "disable_policy",
    "force_igmp_version",
    "arp_announce",
    "arp_ignore",
    "promote_secondaries",
    "arp_accept",
    "arp_notify",
    "accept_local",
    "src_valid_mark",
    "proxy_arp_pvlan",
    "route_localnet",
    "igmpv2_unsolicited_report_interval",
    "igmpv3_unsolicited_report_interval",
    "ignore_routes_with_linkdown",
    "drop_unicast_in_l2_multicast",
    "drop_gratuitous_arp",
    "bc_forwarding",
    "arp_evict_nocarrier",
];

/// How an IPv6 key's value in `IFLA_INET6_CONF` relates to its sysctl's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// The same number.
    Same,
    /// Milliseconds in the array, seconds in the sysctl
    /// (`jiffies_to_msecs` against `proc_dointvec_jiffies`).
    Seconds,
    /// Not in the array (`ipv6_store_devconf` leaves it 0).
    Absent,
}

/// The IPv6 keys by `DEVCONF_*` (linux/ipv6.h, Linux 6.18): key `i` is
/// `DEVCONF_*` `i`, at `i` in `IFLA_INET6_CONF`.
pub(crate) const IPV6_KEYS: [(&str, Unit); 60] = [
    ("forwarding", Unit::Same),
    ("hop_limit", Unit::Same),
    ("mtu", Unit::Same),
    ("accept_ra", Unit::Same),
    ("accept_redirects", Unit::Same),
    ("autoconf", Unit::Same),
    ("dad_transmits", Unit::Same),
    ("router_solicitations", Unit::Same),
    ("router_solicitation_interval", Unit::Seconds),
    ("router_solicitation_delay", Unit::Seconds),
    ("use_tempaddr", Unit::Same),
    ("temp_valid_lft", Unit::Same),
    ("temp_prefered_lft", Unit::Same),
    ("regen_max_retry", Unit::Same),
    ("max_desync_factor", Unit::Same),
    ("max_addresses", Unit::Same),
    ("force_mld_version", Unit::Same),
    ("accept_ra_defrtr", Unit::Same),
    ("accept_ra_pinfo", Unit::Same),
    ("accept_ra_rtr_pref", Unit::Same),
    ("router_probe_interval", Unit::Seconds),
    ("accept_ra_rt_info_max_plen", Unit::Same),
    ("proxy_ndp", Unit::Same),
    ("optimistic_dad", Unit::Same),
    ("accept_source_route", Unit::Same),
    ("mc_forwarding", Unit::Same),
    ("disable_ipv6", Unit::Same),
    ("accept_dad", Unit::Same),
    ("force_tllao", Unit::Same),
    ("ndisc_notify", Unit::Same),
    // Milliseconds in both (`proc_dointvec_ms_jiffies`).
    ("mldv1_unsolicited_report_interval", Unit::Same),
    ("mldv2_unsolicited_report_interval", Unit::Same),
    ("suppress_frag_ndisc", Unit::Same),
    ("accept_ra_from_local", Unit::Same),
    ("use_optimistic", Unit::Same),
    ("accept_ra_mtu", Unit::Same),
    ("stable_secret", Unit::Absent),
    ("use_oif_addrs_only", Unit::Same),
    ("accept_ra_min_hop_limit", Unit::Same),
    ("ignore_routes_with_linkdown", Unit::Same),
    ("drop_unicast_in_l2_multicast", Unit::Same),
    ("drop_unsolicited_na", Unit::Same),
    ("keep_addr_on_down", Unit::Same),
    ("router_solicitation_max_interval", Unit::Seconds),
    ("seg6_enabled", Unit::Same),
    ("seg6_require_hmac", Unit::Same),
    ("enhanced_dad", Unit::Same),
    ("addr_gen_mode", Unit::Same),
    ("disable_policy", Unit::Same),
    ("accept_ra_rt_info_min_plen", Unit::Same),
    ("ndisc_tclass", Unit::Same),
    ("rpl_seg_enabled", Unit::Same),
    ("ra_defrtr_metric", Unit::Same),
    ("ioam6_enabled", Unit::Same),
    ("ioam6_id", Unit::Same),
    ("ioam6_id_wide", Unit::Same),
    ("ndisc_evict_nocarrier", Unit::Same),
    ("accept_untracked_na", Unit::Same),
    ("accept_ra_min_lft", Unit::Same),
    ("force_forwarding", Unit::Same),
];

/// `IPV6_MIN_MTU` (linux/ipv6.h): below it a link has no IPv6 at all.
const IPV6_MIN_MTU: u32 = 1280;

/// `IN6_ADDR_GEN_MODE_STABLE_PRIVACY` (linux/if_link.h).
const STABLE_PRIVACY: i64 = 2;

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `net.ipv4.conf`.
    Ipv4,
    /// `net.ipv6.conf`.
    Ipv6,
}

impl Family {
    /// `ipv4` or `ipv6`, as in the sysctl's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// `/proc/sys/net/ipv{4,6}/conf`.
    fn conf_dir(self) -> String {
        format!("/proc/sys/net/{}/conf", self.as_str())
    }
}

/// A sysctl's value as read: the text (trimmed), or unset (`EIO`, which
/// `stable_secret` answers until it is set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// What the file holds, without the trailing newline.
    Text(String),
    /// Reading it failed with `EIO`.
    Unset,
}

impl Value {
    /// The number it holds, if it is one number.
    fn number(&self) -> Option<i64> {
        match self {
            Value::Text(text) => text.parse().ok(),
            Value::Unset => None,
        }
    }

    /// The same setting, compared as the kernel means it: numbers as
    /// numbers, a stable secret as an address.
    fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Text(a), Value::Text(b)) => {
                a == b
                    || a.parse::<i64>().is_ok_and(|a| b.parse() == Ok(a))
                    || a.parse::<Ipv6Addr>().is_ok_and(|a| b.parse() == Ok(a))
            }
            (Value::Unset, Value::Unset) => true,
            _ => false,
        }
    }
}

/// One key of a family's `default` directory.
#[derive(Clone, Debug)]
struct Default {
    name: String,
    value: Value,
    /// The file has no write permission (`mc_forwarding`).
    read_only: bool,
}

/// The namespace's defaults, as read at `read_at`.
struct Defaults {
    /// The namespace they were read in (device and inode of
    /// `/proc/thread-self/ns/net`).
    netns: (u64, u64),
    read_at: Instant,
    ipv4: Vec<Default>,
    ipv6: Vec<Default>,
}

thread_local! {
    /// This thread's [`Defaults`]: `/proc/sys/net` is the calling thread's
    /// namespace, so the cache is per thread, and per namespace within it.
    static DEFAULTS: RefCell<Option<Defaults>> = const { RefCell::new(None) };
}

/// What [`restore`] found to write through the reset's `RTM_SETLINK`: IPv4
/// keys by `IPV4_DEVCONF_*` index, with their values.
pub(crate) type InetConf = Vec<(u16, u32)>;

/// Puts back every per-device sysctl of the tap `name` (index `index`,
/// whose settings `state` holds) that differs from a fresh tap's. IPv6 keys
/// (and any IPv4 key the kernel does not report by number) are written here;
/// the IPv4 keys it does are returned, for the caller's `RTM_SETLINK`.
pub(crate) fn restore(
    rtnl: &Rtnl,
    name: TapName,
    index: u32,
    spec: &TapSpec,
    state: &LinkState,
) -> Result<InetConf, Leftover> {
    let netns = current_netns()?;
    DEFAULTS.with(|cell| {
        let mut cache = cell.borrow_mut();
        let stale = cache.as_ref().is_none_or(|defaults| {
            defaults.netns != netns || defaults.read_at.elapsed() > DEFAULTS_MAX_AGE
        });
        if stale {
            *cache = Some(Defaults {
                netns,
                read_at: Instant::now(),
                ipv4: read_defaults(Family::Ipv4)?,
                ipv6: read_defaults(Family::Ipv6)?,
            });
        }
        let defaults = cache.as_mut().expect("filled above");
        let mut tap = TapDir::new(name, index);
        let mut inet_conf = Vec::new();
        if !state.inet_conf.is_empty() {
            for (key, wanted) in ipv4_differences(&mut defaults.ipv4, state, &mut tap, rtnl)? {
                match IPV4_KEYS.iter().position(|&k| k == key) {
                    Some(i) if i < state.inet_conf.len() => {
                        let value = wanted.number().ok_or_else(|| Unrestorable::Sysctl {
                            family: Family::Ipv4,
                            key: key.clone(),
                            errno: Some(Errno(libc::EINVAL)),
                        })?;
                        // The kernel keeps an `int`; -1 goes as 0xffffffff.
                        inet_conf.push((i as u16 + 1, value as i32 as u32));
                    }
                    _ => tap.write(rtnl, Family::Ipv4, &key, &wanted)?,
                }
            }
        }
        if !state.inet6_conf.is_empty() {
            let secret = stable_secret_of_default(&defaults.ipv6);
            for (key, wanted) in
                ipv6_differences(&mut defaults.ipv6, state, spec, secret, &mut tap, rtnl)?
            {
                tap.write(rtnl, Family::Ipv6, &key, &wanted)?;
            }
        }
        Ok(inet_conf)
    })
}

/// Whether the namespace's default has an IPv6 stable secret.
fn stable_secret_of_default(ipv6: &[Default]) -> bool {
    ipv6.iter()
        .any(|d| d.name == "stable_secret" && d.value != Value::Unset)
}

/// A tap's value of a key: as `IFLA_INET_CONF`/`IFLA_INET6_CONF` reported
/// it, or as its file reads.
#[derive(Clone, Debug)]
enum Now {
    /// The array's number, and how it relates to the sysctl's.
    Reported(i32, Unit),
    /// The file's value.
    Read(Value),
}

impl Now {
    /// Whether the tap has the setting `default` stands for.
    fn matches(&self, default: &Value) -> bool {
        match self {
            Now::Reported(now, Unit::Seconds) => {
                default.number().map(|s| s * 1000) == Some(i64::from(*now))
            }
            Now::Reported(now, _) => default.number() == Some(i64::from(*now)),
            Now::Read(value) => value.same(default),
        }
    }
}

/// The IPv4 keys whose value on the tap differs from the default, and the
/// default to write.
fn ipv4_differences(
    defaults: &mut [Default],
    state: &LinkState,
    tap: &mut TapDir,
    rtnl: &Rtnl,
) -> Result<Vec<(String, Value)>, Leftover> {
    let mut differ = Vec::new();
    for default in defaults.iter_mut() {
        let reported = IPV4_KEYS
            .iter()
            .position(|&k| k == default.name)
            .and_then(|i| state.inet_conf.get(i));
        let now = match reported {
            // The kernel keeps an `int`: 0xffffffff is -1.
            Some(&now) => Now::Reported(now as i32, Unit::Same),
            None => Now::Read(tap.read(rtnl, Family::Ipv4, &default.name)?),
        };
        if let Some(wanted) = differs(Family::Ipv4, default, &now)? {
            differ.push((default.name.clone(), wanted));
        }
    }
    Ok(differ)
}

/// The IPv6 keys whose value on the tap differs from a fresh tap's, and the
/// value to write.
fn ipv6_differences(
    defaults: &mut [Default],
    state: &LinkState,
    spec: &TapSpec,
    default_secret: bool,
    tap: &mut TapDir,
    rtnl: &Rtnl,
) -> Result<Vec<(String, Value)>, Leftover> {
    let mut differ = Vec::new();
    for default in defaults.iter_mut() {
        let reported = IPV6_KEYS
            .iter()
            .position(|&(k, unit)| k == default.name && unit != Unit::Absent)
            .and_then(|i| Some(Now::Reported(*state.inet6_conf.get(i)?, IPV6_KEYS[i].1)));
        let fixed = match default.name.as_str() {
            // A fresh tap's IPv6 MTU is its link's. If the link's MTU is not
            // the spec's yet, the reset's MTU change sets both.
            "mtu" => {
                let mtu = spec.mtu_or_default();
                if state.mtu != Some(mtu) || mtu < IPV6_MIN_MTU {
                    continue;
                }
                Some(Value::Text(mtu.to_string()))
            }
            // `ipv6_add_dev` makes it stable_privacy when the default has a
            // secret.
            "addr_gen_mode" if default_secret => Some(Value::Text(STABLE_PRIVACY.to_string())),
            _ => None,
        };
        if let Some(wanted) = fixed {
            if reported.is_some_and(|now| !now.matches(&wanted)) {
                differ.push((default.name.clone(), wanted));
            }
            continue;
        }
        let now = match reported {
            Some(now) => now,
            None => Now::Read(tap.read(rtnl, Family::Ipv6, &default.name)?),
        };
        if default.name == "stable_secret" && matches!(now, Now::Read(Value::Text(_))) {
            // Set on the tap. One can be set, never unset: if the default
            // has none (read again: the cache may be stale), no write can
            // make this tap a fresh one.
            default.value = read_default(Family::Ipv6, &default.name)?;
            if default.value == Value::Unset {
                return Err(Unrestorable::StableSecret.into());
            }
        }
        if let Some(wanted) = differs(Family::Ipv6, default, &now)? {
            differ.push((default.name.clone(), wanted));
        }
    }
    Ok(differ)
}

/// Whether the tap's value `now` differs from `default`'s value, which is
/// read again first if it seems to (the cached one may be stale): the
/// fresh default to write if it does. A read-only key that differs cannot
/// be restored.
fn differs(family: Family, default: &mut Default, now: &Now) -> Result<Option<Value>, Leftover> {
    if now.matches(&default.value) {
        return Ok(None);
    }
    default.value = read_default(family, &default.name)?;
    if now.matches(&default.value) {
        return Ok(None);
    }
    if default.read_only {
        return Err(Unrestorable::Sysctl {
            family,
            key: default.name.clone(),
            errno: None,
        }
        .into());
    }
    Ok(Some(default.value.clone()))
}

/// Every key of a family's `default` directory, with its value. A family
/// the kernel lacks (IPv6 disabled) has none.
fn read_defaults(family: Family) -> Result<Vec<Default>, Leftover> {
    let dir = format!("{}/default", family.conf_dir());
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(sysctl_failure(family, "default", &e)),
    };
    let mut defaults = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| sysctl_failure(family, "default", &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let mode = entry
            .metadata()
            .map_err(|e| sysctl_failure(family, &name, &e))?
            .permissions()
            .mode();
        let value = read_default(family, &name)?;
        defaults.push(Default {
            name,
            value,
            read_only: mode & 0o200 == 0,
        });
    }
    defaults.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(defaults)
}

/// One key of a family's `default` directory.
fn read_default(family: Family, key: &str) -> Result<Value, Leftover> {
    let path = format!("{}/default/{key}", family.conf_dir());
    File::open(&path)
        .and_then(read_value)
        .map_err(|e| sysctl_failure(family, key, &e))
}

/// A sysctl file's value. `EIO` is [`Value::Unset`].
fn read_value(mut file: File) -> io::Result<Value> {
    let mut text = String::new();
    match file.read_to_string(&mut text) {
        Ok(_) => Ok(Value::Text(text.trim_end().to_owned())),
        Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(Value::Unset),
        Err(e) => Err(e),
    }
}

/// A sysctl that could not be read or written: the tap cannot be put back
/// as it was made.
fn sysctl_failure(family: Family, key: &str, e: &io::Error) -> Leftover {
    Unrestorable::Sysctl {
        family,
        key: key.to_owned(),
        errno: Some(Errno::of(e)),
    }
    .into()
}

/// The calling thread's network namespace, as device and inode.
fn current_netns() -> Result<(u64, u64), Leftover> {
    let meta = std::fs::metadata("/proc/thread-self/ns/net").map_err(|e| Unrestorable::Sysctl {
        family: Family::Ipv4,
        key: "/proc/thread-self/ns/net".to_owned(),
        errno: Some(Errno::of(&e)),
    })?;
    Ok((meta.dev(), meta.ino()))
}

/// The tap's own sysctl directories, opened when first needed and checked
/// to be the tap's.
struct TapDir {
    name: TapName,
    index: u32,
    ipv4: Option<OwnedFd>,
    ipv6: Option<OwnedFd>,
}

impl TapDir {
    fn new(name: TapName, index: u32) -> TapDir {
        TapDir {
            name,
            index,
            ipv4: None,
            ipv6: None,
        }
    }

    /// The directory `/proc/sys/net/<family>/conf/<tap>`, opened now if it
    /// was not yet, and then checked to be the tap's: its name must still
    /// name the tap's index (else it was renamed, and another device may
    /// have its name). Once open, the directory is the device's: renamed or
    /// deleted, it is unregistered and nothing in it opens any more.
    fn dir(&mut self, rtnl: &Rtnl, family: Family) -> Result<&OwnedFd, Leftover> {
        let slot = match family {
            Family::Ipv4 => &mut self.ipv4,
            Family::Ipv6 => &mut self.ipv6,
        };
        if slot.is_none() {
            // The name's own bytes (its `Display` escapes some).
            let mut path = std::ffi::OsString::from(format!("{}/", family.conf_dir()));
            path.push(std::ffi::OsStr::from_bytes(self.name.as_bytes()));
            let dir =
                File::open(&path).map_err(|e| moved_or(family, &self.name.to_string(), &e))?;
            match rtnl.ifindex(self.name) {
                Ok(index) if index == self.index => {}
                _ => return Err(Unrestorable::Moved.into()),
            }
            *slot = Some(OwnedFd::from(dir));
        }
        Ok(slot.as_ref().expect("opened above"))
    }

    /// The tap's value of `key`.
    fn read(&mut self, rtnl: &Rtnl, family: Family, key: &str) -> Result<Value, Leftover> {
        let dir = self.dir(rtnl, family)?;
        open_at(dir, key, libc::O_RDONLY)
            .and_then(read_value)
            .map_err(|e| moved_or(family, key, &e))
    }

    /// Writes `value` to the tap's `key`. A refusal cannot be restored.
    fn write(
        &mut self,
        rtnl: &Rtnl,
        family: Family,
        key: &str,
        value: &Value,
    ) -> Result<(), Leftover> {
        let Value::Text(text) = value else {
            // A default that is unset is never written: only a stable
            // secret is ever unset, and it is handled before.
            return Err(Unrestorable::StableSecret.into());
        };
        let dir = self.dir(rtnl, family)?;
        tracing::debug!(family = family.as_str(), key, value = %text, "restoring a per-device sysctl");
        open_at(dir, key, libc::O_WRONLY)
            .and_then(|mut file| file.write_all(format!("{text}\n").as_bytes()))
            .map_err(|e| moved_or(family, key, &e))
    }
}

/// `ENOENT` on the tap's own directory or in it: the tap was renamed or
/// deleted during the reset. Anything else is a failure of that key.
fn moved_or(family: Family, key: &str, e: &io::Error) -> Leftover {
    if e.kind() == io::ErrorKind::NotFound {
        Unrestorable::Moved.into()
    } else {
        sysctl_failure(family, key, e)
    }
}

/// Opens `name` in the directory `dir` (`openat`), close-on-exec.
fn open_at(dir: &OwnedFd, name: &str, flags: libc::c_int) -> io::Result<File> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `dir` is an open descriptor for the call's duration and
    // `name` a NUL-terminated string that outlives it; openat reads the
    // string and touches no other memory of ours.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_as_the_kernel_means_them() {
        let text = |s: &str| Value::Text(s.to_owned());
        assert!(text("1").same(&text("1")));
        assert!(text("-1").same(&text("-1")));
        assert!(!text("0").same(&text("1")));
        assert!(text("2001:0db8:0000:0000:0000:0000:0000:1234").same(&text("2001:db8::1234")));
        assert!(!text("2001:db8::1").same(&text("2001:db8::2")));
        assert!(Value::Unset.same(&Value::Unset));
        assert!(!Value::Unset.same(&text("2001:db8::1")));
        assert_eq!(text("1500").number(), Some(1500));
        assert_eq!(Value::Unset.number(), None);
    }

    /// Each table has every name once, and IPv6's `mtu` and
    /// `stable_secret` sit where `DEVCONF_MTU6` (2) and
    /// `DEVCONF_STABLE_SECRET` (36) say.
    #[test]
    fn tables_name_each_key_once() {
        let mut v4 = IPV4_KEYS.to_vec();
        v4.sort_unstable();
        v4.dedup();
        assert_eq!(v4.len(), IPV4_KEYS.len());
        let mut v6: Vec<_> = IPV6_KEYS.iter().map(|(k, _)| *k).collect();
        v6.sort_unstable();
        v6.dedup();
        assert_eq!(v6.len(), IPV6_KEYS.len());
        assert_eq!(IPV6_KEYS[2].0, "mtu");
        assert_eq!(IPV6_KEYS[36], ("stable_secret", Unit::Absent));
        assert_eq!(IPV6_KEYS[25].0, "mc_forwarding");
        assert_eq!(IPV4_KEYS[1], "mc_forwarding");
    }
}
