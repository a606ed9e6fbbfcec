//! `tap-pool doctor`: what this host (and the pool's namespace) lacks to
//! run a pool, each check ok or a problem with what to do about it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::ExitCode;

use caps::{CapSet, Capability};
use serde::Serialize;
use tap_pool::{LinkSummary, TapName};

use crate::setup::{CliError, Target, print_json, thousands};

/// The most ports a Linux bridge takes: port numbers are 10 bits and port
/// 0 is never used (`BR_MAX_PORTS` in net/bridge/br_private.h; a 1,024th
/// gets `EXFULL`).
pub const BRIDGE_MAX_PORTS: u64 = 1023;

/// The highest interface index the kernel hands out: `INT_MAX`. It
/// allocates indices cyclically from 1 to `INT_MAX` (net/core/dev.c,
/// `dev_index_reserve`: `xa_alloc_cyclic` within `XA_LIMIT(1, INT_MAX)`
/// since 6.6; `dev_new_index` before it wrapped the same way), then starts
/// over from the lowest free index: an index a deleted device had can then
/// name a new one.
pub const IFINDEX_MAX: u64 = i32::MAX as u64;

/// Below this many indices left before [`IFINDEX_MAX`], the ifindex check
/// is a problem: 1% of the range.
const IFINDEX_MARGIN: u64 = IFINDEX_MAX / 100;

/// The tun driver's character device: major 10 (misc), minor 200
/// (`TUN_MINOR` in include/linux/miscdevice.h).
const TUN_MAJOR: u32 = 10;
const TUN_MINOR: u32 = 200;

/// One check, as `doctor --json` prints it (stable field names).
#[derive(Debug, Serialize)]
pub struct Check {
    /// Which check: `tun_device` (the node, and whether its mode lets the
    /// pool's tap owner open it), `tun_open`, `cap_net_admin`,
    /// `cap_sys_admin`, `netns`, `bridge`, `pool_names`, `ifindex`,
    /// `proc_sys_net`, `listing`.
    pub check: &'static str,
    /// Whether all is well.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do about a problem.
    pub fix: Option<String>,
}

/// Every check, as `doctor --json` prints it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Whether every check is ok.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

fn ok(check: &'static str, detail: String) -> Check {
    Check {
        check,
        ok: true,
        detail,
        fix: None,
    }
}

fn problem(check: &'static str, detail: String, fix: impl Into<String>) -> Check {
    Check {
        check,
        ok: false,
        detail,
        fix: Some(fix.into()),
    }
}

/// Runs every check and prints them; exit status 1 if any is a problem.
pub fn run(target: &Target, json: bool) -> Result<ExitCode, CliError> {
    let mut checks = vec![
        tun_device(target),
        tun_open(),
        capability(Capability::CAP_NET_ADMIN),
    ];
    if target.netns.is_some() {
        checks.push(capability(Capability::CAP_SYS_ADMIN));
    }
    match target.kernel() {
        Ok(mut kernel) => {
            if let Some(arg) = &target.netns_arg {
                checks.push(ok("netns", format!("entered network namespace {arg}")));
            }
            match kernel.links() {
                Ok(links) => {
                    checks.extend(bridges(target, &links));
                    checks.push(pool_names(target, &links));
                    checks.push(ifindex(&links));
                }
                Err(e) => checks.push(problem(
                    "listing",
                    format!("listing the namespace's devices failed: {e}"),
                    "check that the namespace exists and this process may read it",
                )),
            }
            checks.push(proc_sys_net());
        }
        Err(e) => checks.push(problem(
            "netns",
            format!("{e}; the checks of the namespace were not run"),
            "run as root, or with CAP_SYS_ADMIN (and CAP_NET_ADMIN), to enter the namespace",
        )),
    }
    let report = Report {
        ok: checks.iter().all(|c| c.ok),
        checks,
    };
    if json {
        print_json(&report)?;
    } else {
        for c in &report.checks {
            println!(
                "{:<8} {:<14} {}",
                if c.ok { "ok" } else { "PROBLEM" },
                c.check,
                c.detail
            );
            if let Some(fix) = &c.fix {
                println!("{:<8} {:<14} fix: {fix}", "", "");
            }
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `/dev/net/tun` exists, is the tun driver's character device, and its
/// mode lets the pool's taps' owner and group (the user its VMMs run as)
/// open it.
fn tun_device(target: &Target) -> Check {
    const NAME: &str = "tun_device";
    let fix = "load the tun module (modprobe tun), or make the node: \
               mknod /dev/net/tun c 10 200 && chmod 0666 /dev/net/tun";
    let meta = match std::fs::metadata("/dev/net/tun") {
        Ok(meta) => meta,
        Err(e) => return problem(NAME, format!("/dev/net/tun: {e}"), fix),
    };
    let mode = meta.mode() & 0o7777;
    let owner = format!(
        "mode {mode:04o}, owner uid {} gid {}",
        meta.uid(),
        meta.gid()
    );
    if !meta.file_type().is_char_device() {
        return problem(
            NAME,
            format!("/dev/net/tun is not a character device ({owner})"),
            fix,
        );
    }
    let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
    if (major, minor) != (TUN_MAJOR, TUN_MINOR) {
        return problem(
            NAME,
            format!(
                "/dev/net/tun is the character device {major}:{minor}, \
                 not the tun driver's {TUN_MAJOR}:{TUN_MINOR} ({owner})"
            ),
            fix,
        );
    }
    let detail =
        format!("/dev/net/tun is the tun driver's character device {major}:{minor}, {owner}");
    let inventory = &target.inventory;
    match vmm_access(&meta, inventory.owner(), inventory.group()) {
        Some(who) => problem(
            NAME,
            format!(
                "{detail}: {who}, which the pool's taps are for (a VMM attaches as it), \
                 cannot open it"
            ),
            "give the VMMs' user read and write access to /dev/net/tun: \
             chmod 0666 /dev/net/tun, or a group of theirs with chmod 0660",
        ),
        None => ok(NAME, detail),
    }
}

/// Whether `/dev/net/tun`'s mode refuses it, for certain, to a VMM
/// running as the pool's tap owner `uid` (or, with no owner, in its tap
/// group `gid`): `Some` naming who when no class of its mode that could
/// apply gives read and write: not the other bits, not the group bits (any
/// group may be one of the VMM's), not the owner bits (unless the uid is
/// known and is not the device's owner). Root, and a pool whose taps have
/// neither owner nor group (only processes with `CAP_NET_ADMIN` may
/// attach, and those open the device whatever its mode), are not refused.
fn vmm_access(meta: &std::fs::Metadata, uid: Option<u32>, gid: Option<u32>) -> Option<String> {
    let can = |shift: u32| (meta.mode() >> shift) & 0o6 == 0o6;
    let owner_bits_may_apply = uid.is_none_or(|uid| uid == meta.uid());
    let who = match (uid, gid) {
        (Some(0), _) | (None, None) => return None,
        (Some(uid), _) => format!("uid {uid}"),
        (None, Some(gid)) => format!("gid {gid}"),
    };
    if can(0) || can(3) || (owner_bits_may_apply && can(6)) {
        None
    } else {
        Some(who)
    }
}

/// This process can open `/dev/net/tun` for reading and writing.
fn tun_open() -> Check {
    const NAME: &str = "tun_open";
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => ok(
            NAME,
            "this process can open /dev/net/tun for reading and writing".to_owned(),
        ),
        Err(e) => problem(
            NAME,
            format!(
                "this process (uid {}) cannot open /dev/net/tun: {e}",
                // SAFETY: geteuid has no preconditions and cannot fail.
                unsafe { libc::geteuid() }
            ),
            "run the pool as root, or give its user read and write access to \
             /dev/net/tun (its mode, or a group that has it)",
        ),
    }
}

/// A capability in the effective set.
fn capability(cap: Capability) -> Check {
    let (name, why) = match cap {
        Capability::CAP_SYS_ADMIN => (
            "cap_sys_admin",
            "to enter another network namespace (setns)",
        ),
        _ => (
            "cap_net_admin",
            "to create, configure and delete taps, and attach to taps of other owners",
        ),
    };
    match caps::has_cap(None, CapSet::Effective, cap) {
        Ok(true) => ok(name, format!("{cap} is in effect ({why})")),
        Ok(false) => problem(
            name,
            format!("{cap} is not in effect; the pool needs it {why}"),
            format!(
                "run as root, or give the service AmbientCapabilities={cap} in its systemd unit"
            ),
        ),
        Err(e) => problem(
            name,
            format!("cannot read this process's capabilities: {e}"),
            "check /proc/self/status",
        ),
    }
}

/// Ports left on the configured bridge (or on every bridge).
fn bridges(target: &Target, links: &[LinkSummary]) -> Vec<Check> {
    const NAME: &str = "bridge";
    let size = target.config.size as u64;
    let ports = |bridge: &LinkSummary| {
        links
            .iter()
            .filter(|l| l.master == Some(bridge.index))
            .count() as u64
    };
    let describe = |bridge: &LinkSummary| {
        let used = ports(bridge);
        let left = BRIDGE_MAX_PORTS.saturating_sub(used);
        (
            left,
            format!(
                "bridge {} has {used} ports: {left} left before the kernel's limit of {}",
                bridge.name,
                thousands(BRIDGE_MAX_PORTS)
            ),
        )
    };
    let fix = "spread the pool's taps over several bridges (one pool per bridge), \
               or remove ports the bridge no longer needs";
    if let Some(name) = target.config.tap.bridge {
        let Some(bridge) = links.iter().find(|l| l.name == name) else {
            return vec![problem(
                NAME,
                format!(
                    "the configured bridge {name} does not exist in the namespace: every create would fail"
                ),
                format!("create it (ip link add {name} type bridge), or fix tap.bridge"),
            )];
        };
        if bridge.kind.as_deref() != Some("bridge") {
            return vec![problem(
                NAME,
                format!(
                    "the configured bridge {name} is a {} device, not a bridge",
                    bridge.kind.as_deref().unwrap_or("plain")
                ),
                "fix tap.bridge",
            )];
        }
        let (left, detail) = describe(bridge);
        return vec![if left < size.max(1) {
            problem(
                NAME,
                format!("{detail}: fewer than the pool's size ({size})"),
                fix,
            )
        } else {
            ok(NAME, format!("{detail} (the pool's size: {size})"))
        }];
    }
    let found: Vec<Check> = links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .map(|bridge| {
            let (left, detail) = describe(bridge);
            if left == 0 {
                problem(NAME, format!("{detail}: full"), fix)
            } else {
                ok(NAME, detail)
            }
        })
        .collect();
    if found.is_empty() {
        vec![ok(
            NAME,
            "no bridge in the namespace, and none configured".to_owned(),
        )]
    } else {
        found
    }
}

/// How many pool names the prefix leaves, and how many devices hold one.
fn pool_names(target: &Target, links: &[LinkSummary]) -> Check {
    const NAME: &str = "pool_names";
    let inventory = &target.inventory;
    let names = inventory.max_index().saturating_add(1);
    let held: Vec<(u64, TapName)> = links
        .iter()
        .filter_map(|l| inventory.pool_index(&l.name).map(|i| (i, l.name)))
        .collect();
    let highest = held
        .iter()
        .max_by_key(|(i, _)| *i)
        .map_or_else(|| "none".to_owned(), |(_, name)| name.to_string());
    let free = names.saturating_sub(held.len() as u64);
    let size = target.config.size as u64;
    let detail = format!(
        "prefix {:?} leaves {} pool names ({}0 to {}{}); {} held by devices here, the highest {highest}",
        inventory.prefix(),
        thousands(names),
        inventory.prefix(),
        inventory.prefix(),
        inventory.max_index(),
        held.len(),
    );
    if free < size {
        problem(
            NAME,
            format!("{detail}: fewer free than the pool's size ({size})"),
            "use a shorter prefix, or delete the devices that hold pool names",
        )
    } else {
        ok(NAME, detail)
    }
}

/// The namespace's highest interface index against the kernel's limit.
fn ifindex(links: &[LinkSummary]) -> Check {
    const NAME: &str = "ifindex";
    let highest = links.iter().map(|l| u64::from(l.index)).max().unwrap_or(0);
    let left = IFINDEX_MAX.saturating_sub(highest);
    let detail = format!(
        "highest interface index {} of {} (INT_MAX: the kernel hands out indices \
         cyclically from 1 to INT_MAX, net/core/dev.c dev_index_reserve, then starts over \
         from the lowest free one); {} left",
        thousands(highest),
        thousands(IFINDEX_MAX),
        thousands(left)
    );
    if left < IFINDEX_MARGIN {
        problem(
            NAME,
            format!("{detail}: the kernel will soon reuse the indices of deleted devices"),
            "keep the pool's link watcher on (it is by default): it reports a deletion before \
             an index can name another device; or move the pool to a fresh namespace",
        )
    } else {
        ok(NAME, detail)
    }
}

/// `/proc/sys/net` of the namespace is readable, and writable for the
/// per-device IPv6 settings a reset puts back.
fn proc_sys_net() -> Check {
    const NAME: &str = "proc_sys_net";
    let fix = "run the pool where /proc/sys is mounted read-write (not a read-only /proc/sys \
               of a container) and as root in the namespace's user namespace; otherwise every \
               reset fails and each released tap is deleted instead of reused";
    let v4 = c"/proc/sys/net/ipv4/conf/default/forwarding";
    let v6 = c"/proc/sys/net/ipv6/conf/default/hop_limit";
    let access = |path: &std::ffi::CStr, mode| {
        // SAFETY: `path` is a valid NUL-terminated string for the call.
        let rc = unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), mode, libc::AT_EACCESS) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    if let Err(e) = access(v4, libc::R_OK) {
        return problem(
            NAME,
            format!("cannot read {}: {e}", v4.to_string_lossy()),
            fix,
        );
    }
    match access(v6, libc::W_OK) {
        Ok(()) => ok(
            NAME,
            "/proc/sys/net is readable, and writable for the IPv6 settings a reset puts back"
                .to_owned(),
        ),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => ok(
            NAME,
            "/proc/sys/net is readable; no IPv6 here, so a reset writes nothing".to_owned(),
        ),
        Err(e) => problem(
            NAME,
            format!("cannot write {}: {e}", v6.to_string_lossy()),
            fix,
        ),
    }
}
