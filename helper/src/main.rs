//! `tap-pool-helper`: serves the taps of pools that run without privilege,
//! within a policy. See the library's docs and docs/operations.md.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tap_pool_helper::{Helper, Policy};
use tracing::{error, info};

/// Makes, resets and deletes taps for pools that run without privilege,
/// within a policy of what each user may have.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The policy file (TOML).
    #[arg(long, default_value = "/etc/tap-pool/helper.toml")]
    policy: PathBuf,
    /// The socket to listen on, instead of the policy's (ignored when
    /// systemd hands one over).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Check the policy and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let policy = match Policy::load(&args.policy) {
        Ok(policy) => policy,
        Err(e) => {
            error!(error = %chain(&e), "the policy is not taken");
            return ExitCode::from(2);
        }
    };
    if args.check {
        info!(peers = policy.peers.len(), "the policy is good");
        return ExitCode::SUCCESS;
    }
    let listener = match listener(&args, &policy) {
        Ok(listener) => listener,
        Err(e) => {
            error!(error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let helper = match Helper::new(policy) {
        Ok(helper) => helper,
        Err(e) => {
            error!(error = %chain(&e), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match helper.serve(&listener) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "cannot accept connections");
            ExitCode::FAILURE
        }
    }
}

/// The socket systemd handed over (socket activation), or one made at the
/// configured path: a stale socket file there (no helper answers on it) is
/// replaced; one a helper answers on is not.
fn listener(args: &Args, policy: &Policy) -> std::io::Result<UnixListener> {
    let mut fds = listenfd::ListenFd::from_env();
    if let Some(listener) = fds.take_unix_listener(0)? {
        info!("listening on the socket systemd handed over");
        return Ok(listener);
    }
    let path = args.socket.as_ref().unwrap_or(&policy.socket);
    if UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("a helper already answers on {}", path.display()),
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            std::fs::remove_file(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        _ => {}
    }
    let at = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let listener = UnixListener::bind(path).map_err(at)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(policy.socket_mode))
        .map_err(at)?;
    info!(socket = %path.display(), "listening");
    Ok(listener)
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
