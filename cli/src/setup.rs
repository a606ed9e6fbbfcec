//! What every command starts from: the pool's configuration (a file, and
//! the overrides), the rules made from it, the namespace, and a kernel
//! handle in that namespace; and the errors that end a command.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tap_pool::inventory::Inventory;
use tap_pool::{ConfigError, KernelError, LinuxKernel, Netns, PoolConfig};
use thiserror::Error;

use crate::Global;

/// Why a command could not do its work.
#[derive(Debug, Error)]
pub enum CliError {
    /// The configuration file could not be read.
    #[error("cannot read the configuration {}: {source}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is larger than any configuration
    /// ([`MAX_CONFIG_BYTES`]): not read to its end (`/dev/zero` has none).
    #[error(
        "the configuration {} is larger than 1 MiB: not a pool's configuration",
        path.display()
    )]
    ConfigTooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The configuration (the file's, with the overrides) is refused.
    #[error("{}: {source}", origin(path.as_deref()))]
    Config {
        /// The file, if one was given.
        path: Option<PathBuf>,
        /// What the library refused.
        #[source]
        source: ConfigError,
    },
    /// `--netns` names no network namespace this process can open.
    #[error("--netns: {source}")]
    Netns {
        /// What opening it said.
        #[source]
        source: KernelError,
    },
    /// The namespace opened, but this thread could not enter it (no
    /// `CAP_SYS_ADMIN`).
    #[error("{source} (entering a namespace needs CAP_SYS_ADMIN)")]
    Enter {
        /// What `setns` said.
        #[source]
        source: KernelError,
    },
    /// A kernel call failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The output could not be written.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

fn origin(path: Option<&Path>) -> String {
    match path {
        Some(path) => path.display().to_string(),
        None => "the configuration".to_owned(),
    }
}

impl CliError {
    /// The exit status: 2 for a usage or configuration error (as clap's
    /// own), 1 for anything that failed while doing the work.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::ConfigFile { .. }
            | CliError::ConfigTooLarge { .. }
            | CliError::Config { .. }
            | CliError::Netns { .. } => ExitCode::from(2),
            CliError::Enter { .. } | CliError::Kernel(_) | CliError::Output(_) => ExitCode::from(1),
        }
    }
}

/// The pool a command is about, and where.
#[derive(Debug)]
pub struct Target {
    /// Its configuration, with the overrides.
    pub config: PoolConfig,
    /// Its rules: which devices are its own.
    pub inventory: Inventory,
    /// Its namespace, opened (a path opened once, so every later step sees
    /// the namespace it named then), if one was given.
    pub netns: Option<Netns>,
    /// `--netns` as given, for messages.
    pub netns_arg: Option<String>,
}

impl Target {
    /// Reads the configuration (the file, else the defaults), applies
    /// `--prefix` and `--group`, checks it, and opens `--netns`.
    pub fn load(global: &Global) -> Result<Target, CliError> {
        let mut config = match &global.config {
            Some(path) => {
                let text = read_config(path)?;
                PoolConfig::from_toml(&text).map_err(|source| CliError::Config {
                    path: Some(path.clone()),
                    source,
                })?
            }
            None => PoolConfig::default(),
        };
        if let Some(prefix) = &global.prefix {
            config.prefix = prefix.clone();
        }
        if let Some(group) = global.group {
            config.tap.device_group = Some(group);
        }
        let inventory = Inventory::new(&config).map_err(|source| CliError::Config {
            path: global.config.clone(),
            source,
        })?;
        let netns = global
            .netns
            .as_deref()
            .map(|arg| {
                netns_path(arg)
                    .open()
                    .map_err(|source| CliError::Netns { source })
            })
            .transpose()?;
        Ok(Target {
            config,
            inventory,
            netns,
            netns_arg: global.netns.clone(),
        })
    }

    /// Moves this thread into the pool's namespace (if one was given) and
    /// opens a kernel handle there.
    pub fn kernel(&self) -> Result<LinuxKernel, CliError> {
        self.enter()?;
        Ok(LinuxKernel::open()?)
    }

    /// Moves this thread into the pool's namespace, if one was given:
    /// `/proc/sys/net` and every socket opened afterwards are that
    /// namespace's.
    pub fn enter(&self) -> Result<(), CliError> {
        match &self.netns {
            Some(netns) => {
                tap_pool::linux::enter(netns).map_err(|source| CliError::Enter { source })
            }
            None => Ok(()),
        }
    }
}

/// The most bytes a configuration file may hold: a pool's has a few
/// hundred.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads the configuration file as text, at most [`MAX_CONFIG_BYTES`] of
/// it: a file that never ends (`/dev/zero`) is refused, not read until
/// memory runs out. A pipe (`--config <(...)`) reads as a file.
fn read_config(path: &Path) -> Result<String, CliError> {
    let unreadable = |source| CliError::ConfigFile {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(CliError::ConfigTooLarge {
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes)
        .map_err(|e| unreadable(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// `--netns`: a name is a namespace made by `ip netns add` (at
/// `/run/netns/NAME`), anything with a `/` a path.
pub fn netns_path(arg: &str) -> Netns {
    if arg.contains('/') {
        Netns::Path(arg.into())
    } else {
        Netns::Path(Path::new("/run/netns").join(arg))
    }
}

/// A progress bar on standard error for `len` steps of `what`, hidden when
/// `quiet` or when standard error is not a terminal.
pub fn progress(len: usize, what: &'static str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    bar.set_style(style);
    bar.set_message(what);
    bar
}

/// Writes `value` as pretty JSON and a newline to standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// Prints `rows` as a table with a header, each column as wide as its
/// widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| -> std::io::Result<()> {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            text.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(&mut header.iter().copied())?;
    for row in rows {
        line(&mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// `n` with a comma between each group of three digits.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            text.push(',');
        }
        text.push(c);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(2_147_483_647), "2,147,483,647");
    }

    #[test]
    fn a_name_is_under_run_netns_and_a_path_is_itself() {
        let path = |arg| match netns_path(arg) {
            Netns::Path(path) => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(path("vms"), Path::new("/run/netns/vms"));
        assert_eq!(path("/proc/1/ns/net"), Path::new("/proc/1/ns/net"));
        assert_eq!(path("./ns"), Path::new("./ns"));
    }
}
