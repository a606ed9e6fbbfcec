//! `tap-pool ls`: the pool's devices in the namespace, each with its state
//! and what `gc` would do with it.

use std::collections::HashMap;
use std::process::ExitCode;

use serde::Serialize;
use tap_pool::inventory::{Class, Inventory, Surveyed, Verdict};
use tap_pool::{Kernel, LinkInfo, TunKind};

use crate::setup::{CliError, Target, print_json, print_table};

/// One device as `ls --json` prints it. The field names are stable
/// (docs/operations.md lists them).
#[derive(Debug, Serialize)]
pub struct Row {
    /// The device's name as [`TapName`](tap_pool::TapName) displays it:
    /// printable ASCII as itself, `\` as `\\`, every other byte (UTF-8 or
    /// not) as `\xNN`.
    pub name: String,
    /// Its interface index.
    pub index: u32,
    /// What it is to the pool: `pool_tap`, `fallback_tap`, `tun_device`,
    /// `not_ours`.
    pub class: &'static str,
    /// Its pool index N, for a pool name `<prefix><N>` (of any class).
    pub pool_index: Option<u64>,
    /// `in_use` while a process has it attached, else `idle`.
    pub state: &'static str,
    /// What becomes of it when nobody claims it: `adoptable`, `leftover`,
    /// `in_use`, `other_owner`, `not_ours`, `not_a_tap`.
    pub verdict: &'static str,
    /// Whether `gc --yes` would delete it (after attaching to it).
    pub gc: bool,
    /// `tap` or `tun`.
    pub kind: &'static str,
    /// The uid allowed to attach, if set.
    pub owner: Option<u32>,
    /// The gid allowed to attach, if set.
    pub group: Option<u32>,
    /// The master's name (a bridge), if any.
    pub master: Option<String>,
    /// The master's interface index, if any.
    pub master_index: Option<u32>,
    /// The device group (0 is the kernel's default).
    pub device_group: u32,
    /// The MTU.
    pub mtu: u32,
    /// Whether it is administratively up.
    pub up: bool,
    /// Whether it outlives its last file (`TUNSETPERSIST`).
    pub persistent: bool,
    /// Whether it was last attached with `IFF_VNET_HDR`.
    pub vnet_hdr: bool,
    /// Whether it was made with `IFF_MULTI_QUEUE`.
    pub multi_queue: bool,
}

/// Lists the pool's devices (and with `all`, every other tun/tap device),
/// as a table or as JSON.
pub fn run(target: &Target, all: bool, json: bool) -> Result<ExitCode, CliError> {
    let mut kernel = target.kernel()?;
    let taps = kernel.list_taps()?;
    let names: HashMap<u32, String> = kernel
        .links()?
        .into_iter()
        .map(|l| (l.index, l.name.to_string()))
        .collect();
    let rows = rows(&target.inventory, &taps, &names, all);
    if json {
        print_json(&rows)?;
    } else {
        print_table(
            &[
                "NAME", "INDEX", "CLASS", "STATE", "OWNER", "GROUP", "MASTER", "DEVGROUP", "KIND",
                "MTU", "UP", "GC",
            ],
            &rows.iter().map(text_row).collect::<Vec<_>>(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The rows `ls` shows, the pool's taps first (by pool index), then its
/// other devices and, with `all`, everyone else's, each by name.
pub fn rows(
    inventory: &Inventory,
    taps: &[LinkInfo],
    names: &HashMap<u32, String>,
    all: bool,
) -> Vec<Row> {
    let mut surveyed: Vec<Surveyed> = inventory
        .survey(taps)
        .into_iter()
        .filter(|s| all || s.class != Class::NotOurs)
        .collect();
    surveyed.sort_by_key(|s| (rank(s.class), pool_index(s.class), s.link.name));
    surveyed.iter().map(|s| row(inventory, s, names)).collect()
}

fn rank(class: Class) -> u8 {
    match class {
        Class::PoolTap { .. } => 0,
        Class::FallbackTap => 1,
        Class::TunDevice => 2,
        _ => 3,
    }
}

fn pool_index(class: Class) -> Option<u64> {
    match class {
        Class::PoolTap { index } => Some(index),
        _ => None,
    }
}

fn row(inventory: &Inventory, s: &Surveyed, names: &HashMap<u32, String>) -> Row {
    let link = &s.link;
    Row {
        name: link.name.to_string(),
        index: link.index,
        class: class_name(s.class),
        pool_index: inventory.pool_index(&link.name),
        state: if link.in_use { "in_use" } else { "idle" },
        verdict: verdict_name(s.verdict),
        gc: s.verdict.collectable(),
        kind: match link.kind {
            TunKind::Tap => "tap",
            TunKind::Tun => "tun",
        },
        owner: link.owner,
        group: link.group,
        master: link.master.map(|index| {
            names
                .get(&index)
                .cloned()
                .unwrap_or_else(|| format!("index {index}"))
        }),
        master_index: link.master,
        device_group: link.device_group,
        mtu: link.mtu,
        up: link.up,
        persistent: link.persistent,
        vnet_hdr: link.vnet_hdr,
        multi_queue: link.multi_queue,
    }
}

/// The class as `ls --json` names it.
pub fn class_name(class: Class) -> &'static str {
    match class {
        Class::PoolTap { .. } => "pool_tap",
        Class::FallbackTap => "fallback_tap",
        Class::TunDevice => "tun_device",
        _ => "not_ours",
    }
}

/// The verdict as `ls --json` names it.
pub fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Adoptable => "adoptable",
        Verdict::Leftover => "leftover",
        Verdict::InUse => "in_use",
        Verdict::OtherOwner => "other_owner",
        Verdict::NotATap => "not_a_tap",
        _ => "not_ours",
    }
}

fn text_row(row: &Row) -> Vec<String> {
    let id = |id: Option<u32>| id.map_or_else(|| "-".to_owned(), |id| id.to_string());
    vec![
        row.name.clone(),
        row.index.to_string(),
        row.class.replace('_', " "),
        row.state.replace('_', " "),
        id(row.owner),
        id(row.group),
        row.master.clone().unwrap_or_else(|| "-".to_owned()),
        row.device_group.to_string(),
        row.kind.to_owned(),
        row.mtu.to_string(),
        if row.up { "yes" } else { "no" }.to_owned(),
        if row.gc {
            "delete".to_owned()
        } else {
            format!("keep: {}", row.verdict.replace('_', " "))
        },
    ]
}
