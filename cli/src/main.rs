//! `tap-pool`: the operators' tool for a tap pool's devices in a network
//! namespace, without writing a program.
//!
//! - `tap-pool ls`: the pool's devices, each with its state (idle or in
//!   use), owner, group, master, device group, and what `gc` would do with
//!   it; `--all` adds every other tun/tap device; `--json`.
//! - `tap-pool gc`: deletes the pool's leftovers that no process holds
//!   (a dry run unless `--yes`); never a device in use or not the pool's.
//! - `tap-pool doctor`: what this host lacks to run a pool
//!   (`/dev/net/tun`, capabilities, bridge ports, index headroom,
//!   `/proc/sys/net`).
//!
//! Which devices are "the pool's", and which of them may go, is decided by
//! `tap_pool::inventory`, the rules `Seed` applies too. Every kernel call
//! goes through the library (`/dev/net/tun` and rtnetlink): it never runs
//! `ip`. docs/operations.md describes each command, its output and exit
//! codes.

#![warn(missing_docs)]

#[cfg(target_os = "linux")]
mod doctor;
#[cfg(target_os = "linux")]
mod gc;
#[cfg(target_os = "linux")]
mod ls;
#[cfg(target_os = "linux")]
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tap-pool",
    version,
    about = "See and clean a tap pool's devices, and check what the host lacks to run one",
    long_about = "See and clean a tap pool's devices in a network namespace, and check what \
                  the host lacks to run one.\n\n\
                  Which devices are the pool's comes from its configuration (--config, or \
                  the defaults: prefix tap-pool-, no device group, taps owned by this \
                  user): taps named <prefix><N>, and taps in its device group.\n\n\
                  Exit status: 0 when all is well; 1 when doctor finds a problem, gc could \
                  not delete a device, or the kernel refused a listing; 2 for a usage or \
                  configuration error.",
    after_help = "Every kernel call is made through the tap-pool library (/dev/net/tun and \
                  rtnetlink); the tool never runs `ip`. See docs/operations.md."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// The options every command takes.
#[derive(Debug, Args)]
struct Global {
    /// The network namespace the pool's taps live in: a name (one made
    /// with `ip netns add NAME`, at /run/netns/NAME) or a path
    /// (/proc/PID/ns/net). Default: this process's namespace.
    #[arg(long, global = true, value_name = "NAME|PATH")]
    netns: Option<String>,
    /// The pool's configuration file (TOML, with the keys of PoolConfig;
    /// docs/pool.example.toml has them all). Its prefix, device group,
    /// owner, group and bridge say which devices are the pool's.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The pool's name prefix, in place of the configuration's.
    #[arg(long, global = true, value_name = "PREFIX")]
    prefix: Option<String>,
    /// The pool's device group (1 and up), in place of the
    /// configuration's.
    #[arg(long, global = true, value_name = "GROUP")]
    group: Option<u32>,
    /// Show no progress bar (none is shown either when standard error is
    /// not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
}

/// What to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// List the pool's devices: name, index, class, state (idle or in
    /// use), owner, group, master, device group, kind, MTU, up, and what gc
    /// would do with each.
    Ls {
        /// Also list the tun/tap devices that are not the pool's (marked
        /// "not ours").
        #[arg(long)]
        all: bool,
        /// Print a JSON array, one object per device (the fields are in
        /// docs/operations.md).
        #[arg(long)]
        json: bool,
    },
    /// Delete the pool's leftovers that no process holds: by default a dry
    /// run that says what it would delete and why each other device stays.
    ///
    /// Never deletes a device a process has attached (each tap is attached
    /// to first, so a VMM that opens it meanwhile keeps it), nor one that
    /// is not the pool's (another prefix or device group, another owner or
    /// group, a tun device, a bridge...). For leftovers when no pool runs:
    /// a running pool's idle taps are unheld too.
    Gc {
        /// Delete them (without it, nothing is changed).
        #[arg(long, short = 'y', visible_alias = "apply")]
        yes: bool,
        /// Print a JSON object: what was (or would be) deleted, kept and
        /// failed.
        #[arg(long)]
        json: bool,
    },
    /// Check what this host lacks to run a pool: /dev/net/tun and its
    /// mode, capabilities, bridge ports left, pool names and interface
    /// indices left, /proc/sys/net. Exit status 1 when any check fails.
    Doctor {
        /// Print a JSON object: every check, and whether all are ok.
        #[arg(long)]
        json: bool,
    },
}

#[cfg(target_os = "linux")]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { all, json } => {
            setup::Target::load(&cli.global).and_then(|target| ls::run(&target, all, json))
        }
        Command::Gc { yes, json } => setup::Target::load(&cli.global)
            .and_then(|target| gc::run(&target, yes, json, cli.global.quiet)),
        Command::Doctor { json } => {
            setup::Target::load(&cli.global).and_then(|target| doctor::run(&target, json))
        }
    };
    match result {
        Ok(code) => code,
        // The reader went away (`tap-pool ls | head`): nothing to say.
        Err(setup::CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tap-pool: {error}");
            error.exit_code()
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() -> ExitCode {
    let _ = Cli::parse();
    eprintln!("tap-pool: tap devices are Linux's; this tool runs on Linux only");
    ExitCode::from(2)
}
