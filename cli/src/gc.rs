//! `tap-pool gc`: deletes the pool's leftovers that no process holds.
//!
//! What may go is what `tap_pool::inventory` says `gc` may delete
//! ([`Verdict::collectable`]): the pool's taps, with its owner and group,
//! that no process had attached when they were listed. Between that
//! listing and a delete a VMM could open one, so each is first attached to
//! by this process ([`LinuxKernel::hold`]): a tap that answers `EBUSY` is in
//! use and kept, and while it is held no VMM can open it. Only then is it
//! deleted, by interface index, while still held. A multi-queue tap can
//! take a VMM's queue after that check: that window remains
//! (docs/operations.md).

use std::collections::BTreeSet;
use std::process::ExitCode;

use serde::Serialize;
use tap_pool::inventory::{Class, Inventory, Surveyed, Verdict};
use tap_pool::{Device, HeldTap, Kernel, KernelError, LinuxKernel, TapName};

use crate::setup::{CliError, Target, print_json, progress};

/// What `gc` did (or, in a dry run, would do), as `gc --json` prints it.
/// The field names are stable (docs/operations.md lists them).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Whether nothing was changed (no `--yes`).
    pub dry_run: bool,
    /// Whether the deletes went as one group delete.
    pub bulk: bool,
    /// What would be deleted (a dry run only).
    pub would_delete: Vec<Entry>,
    /// What was deleted.
    pub deleted: Vec<Entry>,
    /// Every other tun/tap device, and why it stays.
    pub kept: Vec<Entry>,
    /// Devices that were gone by the time they were to be deleted.
    pub gone: Vec<Entry>,
    /// Devices whose delete failed, with the kernel's error.
    pub failed: Vec<Entry>,
}

/// One device in a [`Report`].
#[derive(Debug, Serialize)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its interface index.
    pub index: u32,
    /// Why it goes, stays or failed.
    pub reason: String,
}

impl Entry {
    fn new(device: Device, index: u32, reason: impl Into<String>) -> Entry {
        Entry {
            name: device.name.to_string(),
            index,
            reason: reason.into(),
        }
    }
}

/// Descriptors kept free for everything but held taps.
const SPARE_FILES: u64 = 64;

/// Lists, judges, and (with `yes`) deletes; prints the report.
pub fn run(target: &Target, yes: bool, json: bool, quiet: bool) -> Result<ExitCode, CliError> {
    let mut kernel = target.kernel()?;
    let inventory = &target.inventory;
    let mut surveyed = inventory.survey(&kernel.list_taps()?);
    surveyed.sort_by_key(|s| s.link.name);
    let mut report = Report {
        dry_run: !yes,
        ..Report::default()
    };
    let mut doomed = Vec::new();
    for s in &surveyed {
        let device = Device::new(s.link.name, s.link.index);
        if s.verdict.collectable() {
            doomed.push((device, why_delete(inventory, s)));
        } else {
            report
                .kept
                .push(Entry::new(device, s.link.index, why_keep(inventory, s)));
        }
    }
    if yes {
        collect(&mut kernel, inventory, doomed, &mut report, quiet)?;
    } else {
        report.would_delete = doomed
            .into_iter()
            .map(|(device, why)| Entry::new(device, index(device), why))
            .collect();
    }
    if json {
        print_json(&report)?;
    } else {
        print_text(&report);
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn index(device: Device) -> u32 {
    device.index.unwrap_or(0)
}

/// Takes hold of each doomed tap, then deletes them: with one group delete
/// where the pool's group holds exactly the taps held, else one by one.
fn collect(
    kernel: &mut LinuxKernel,
    inventory: &Inventory,
    doomed: Vec<(Device, String)>,
    report: &mut Report,
    quiet: bool,
) -> Result<(), CliError> {
    let files = raise_file_limit();
    if (doomed.len() as u64).saturating_add(SPARE_FILES) > files {
        // Too many to hold at once: each is held, deleted and let go in
        // turn.
        let bar = progress(doomed.len(), "deleting", quiet);
        for (device, why) in doomed {
            if let Some(held) = hold(kernel, device, report) {
                delete(kernel, &held, why, report);
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        return Ok(());
    }
    let bar = progress(doomed.len(), "checking", quiet);
    let mut held = Vec::new();
    for (device, why) in doomed {
        if let Some(tap) = hold(kernel, device, report) {
            held.push((tap, why));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(group) = inventory.device_group()
        && !held.is_empty()
    {
        let ours: BTreeSet<TapName> = held.iter().map(|(t, _)| t.device().name).collect();
        let members: Option<BTreeSet<TapName>> = kernel
            .list_group(group)
            .ok()
            .map(|names| names.into_iter().collect());
        // Everything in the group is a tap this process holds: one request
        // deletes them all (a device added to the group after this check
        // would go too; gc is for when no pool runs). Else, or if the
        // group delete fails, one by one.
        if members.as_ref() == Some(&ours) && kernel.delete_group(group).is_ok() {
            report.bulk = true;
            for (tap, why) in held {
                let device = tap.device();
                report.deleted.push(Entry::new(device, index(device), why));
            }
            return Ok(());
        }
    }
    let bar = progress(held.len(), "deleting", quiet);
    for (tap, why) in &held {
        delete(kernel, tap, why.clone(), report);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Attaches to the tap so that no process can until it is deleted; `None`
/// (with the device reported) if it is in use, gone, or cannot be held.
fn hold(kernel: &mut LinuxKernel, device: Device, report: &mut Report) -> Option<HeldTap> {
    let at = index(device);
    match kernel.hold(device) {
        Ok(held) => Some(held),
        Err(KernelError::InUse { .. }) => {
            report.kept.push(Entry::new(
                device,
                at,
                "in use: a process attached it after the listing",
            ));
            None
        }
        Err(KernelError::NoSuchDevice { .. }) => {
            report
                .gone
                .push(Entry::new(device, at, "gone since the listing"));
            None
        }
        Err(e @ (KernelError::NotATap { .. } | KernelError::Renamed { .. })) => {
            report.kept.push(Entry::new(device, at, e.to_string()));
            None
        }
        Err(e) => {
            report.failed.push(Entry::new(device, at, e.to_string()));
            None
        }
    }
}

/// Deletes a held tap by its index.
fn delete(kernel: &mut LinuxKernel, held: &HeldTap, why: String, report: &mut Report) {
    let device = held.device();
    let at = index(device);
    match kernel.delete_link(device) {
        Ok(()) => report.deleted.push(Entry::new(device, at, why)),
        Err(KernelError::NoSuchDevice { .. }) => {
            report
                .gone
                .push(Entry::new(device, at, "gone since the listing"))
        }
        Err(e) => report.failed.push(Entry::new(device, at, e.to_string())),
    }
}

/// Raises this process's soft limit of open files to its hard limit (each
/// held tap is an open file) and returns the limit now in force.
fn raise_file_limit() -> u64 {
    // SAFETY: `rlimit` is plain old data; all zeroes is valid.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes one `rlimit`, which `limit` is.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return SPARE_FILES;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one `rlimit`, which `raised` is.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    limit.rlim_cur
}

/// Why a tap `gc` may delete goes.
fn why_delete(inventory: &Inventory, s: &Surveyed) -> String {
    match s.class {
        Class::PoolTap { .. } => "a pool tap with the pool's owner; no process has it attached",
        _ => match inventory.device_group() {
            Some(_) => "a tap in the pool's device group, with the pool's owner; no process has it attached",
            None => "one of the pool's taps; no process has it attached",
        },
    }
    .to_owned()
}

/// Why a device stays.
fn why_keep(inventory: &Inventory, s: &Surveyed) -> String {
    let id = |id: Option<u32>| id.map_or_else(|| "none".to_owned(), |id| id.to_string());
    match s.verdict {
        Verdict::InUse => "in use: a process has it attached".to_owned(),
        Verdict::OtherOwner => format!(
            "owner {} and group {} are not the pool's ({} and {}): not this configuration's",
            id(s.link.owner),
            id(s.link.group),
            id(inventory.owner()),
            id(inventory.group()),
        ),
        Verdict::NotATap => "a tun-mode device, not a tap: the pool makes none".to_owned(),
        _ => match inventory.device_group() {
            Some(group) => format!(
                "not the pool's: not named {}N, not in device group {group}",
                inventory.prefix()
            ),
            None => format!("not the pool's: not named {}N", inventory.prefix()),
        },
    }
}

fn print_text(report: &Report) {
    let line =
        |what: &str, e: &Entry| println!("{what} {} (index {}): {}", e.name, e.index, e.reason);
    for e in &report.would_delete {
        line("would delete", e);
    }
    for e in &report.deleted {
        line("deleted", e);
    }
    for e in &report.kept {
        line("keep", e);
    }
    for e in &report.gone {
        line("gone", e);
    }
    for e in &report.failed {
        line("FAILED", e);
    }
    if report.dry_run {
        println!(
            "dry run: {} to delete, {} kept; nothing changed (--yes deletes them)",
            report.would_delete.len(),
            report.kept.len()
        );
    } else {
        println!(
            "{} deleted{}, {} kept, {} gone, {} failed",
            report.deleted.len(),
            if report.bulk {
                " (one group delete)"
            } else {
                ""
            },
            report.kept.len(),
            report.gone.len(),
            report.failed.len()
        );
    }
}
