//! The unprivileged side of the tests: this binary run again as uid 65534
//! with no capabilities ([`Role`] in its environment), either a pool on the
//! helper kernel driven line by line from its stdin, or a client that puts
//! raw kernel calls to the helper. Each answers one JSON line per command.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{Value, json};
use tap_pool_actors::helper::HelperKernelFactory;
use tap_pool_actors::kernel_api::{Device, Kernel};
use tap_pool_actors::{
    Acquire, LeaseToken, PoolConfig, PoolHandle, Release, Seed, TapName, TapPoolActor, TapSpec,
};

/// Where the child learns its role and socket.
pub const ROLE_ENV: &str = "TAP_POOL_HELPER_TEST_ROLE";
pub const SOCKET_ENV: &str = "TAP_POOL_HELPER_TEST_SOCKET";
pub const CONFIG_ENV: &str = "TAP_POOL_HELPER_TEST_CONFIG";
/// How many kernel workers per lane a `pool` child starts (default: the
/// builder's).
pub const WORKERS_ENV: &str = "TAP_POOL_HELPER_TEST_WORKERS";
/// A `pool` child's shutdown deadline, in milliseconds (default: the
/// builder's).
pub const SHUTDOWN_ENV: &str = "TAP_POOL_HELPER_TEST_SHUTDOWN_MS";
/// A `calls` child's helper timeout, in milliseconds (default: the
/// factory's).
pub const TIMEOUT_ENV: &str = "TAP_POOL_HELPER_TEST_TIMEOUT_MS";
/// The tap a `vmm` child acts on.
pub const TAP_ENV: &str = "TAP_POOL_HELPER_TEST_TAP";

/// Runs the child's role, if this process is a child.
pub fn main() -> Option<ExitCode> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let socket = std::env::var(SOCKET_ENV).expect("the socket's path");
    Some(match role.as_str() {
        "pool" => pool(&socket),
        "calls" => calls(&socket),
        "vmm" => crate::review_hostile::vmm(),
        "holder" => crate::review_hostile::holder(),
        other => {
            eprintln!("unknown role {other}");
            ExitCode::FAILURE
        }
    })
}

fn reply(value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// A kernel error, as JSON and as text.
fn error<E: std::fmt::Display + serde::Serialize>(e: &E) -> Value {
    json!({ "err": serde_json::to_value(e).unwrap_or(Value::Null), "text": e.to_string() })
}

/// A pool's error, as its debug form and as text.
fn pool_error<E: std::fmt::Display + std::fmt::Debug>(e: &E) -> Value {
    json!({ "err": format!("{e:?}"), "text": e.to_string() })
}

/// A pool on the helper kernel. Commands: `warm`, `acquire FALLBACK`,
/// `release TOKEN`, `seed [NAME...]`, `settle`, `drain`, `stats`,
/// `shutdown`. Starting it answers `{"started": ...}` first.
fn pool(socket: &str) -> ExitCode {
    let config: PoolConfig =
        PoolConfig::from_toml(&std::env::var(CONFIG_ENV).expect("the pool's configuration"))
            .expect("a valid configuration");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut builder = TapPoolActor::builder(config)
        .kernel(Arc::new(HelperKernelFactory::new(socket)))
        .fail_fast(true);
    if let Some(workers) = std::env::var(WORKERS_ENV).ok().and_then(|w| w.parse().ok()) {
        builder = builder.workers(workers);
    }
    if let Some(millis) = std::env::var(SHUTDOWN_ENV)
        .ok()
        .and_then(|m| m.parse().ok())
    {
        builder = builder.shutdown_deadline(std::time::Duration::from_millis(millis));
    }
    let started = builder.spawn();
    let handle: PoolHandle = match started {
        Ok(handle) => {
            reply(json!({ "started": true }));
            handle
        }
        Err(e) => {
            reply(json!({ "started": false, "text": e.to_string() }));
            return ExitCode::FAILURE;
        }
    };
    let mut leases = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = runtime.block_on(async {
            match words.as_slice() {
                ["warm"] => match handle.warm().await {
                    Ok(report) => json!({
                        "ok": report.created.len(),
                        "report": serde_json::to_value(&report).expect("json"),
                    }),
                    Err(e) => pool_error(&e),
                },
                ["acquire", fallback] => {
                    match handle
                        .acquire(Acquire::new(fallback).expect("a name"))
                        .await
                    {
                        Ok(guard) => {
                            let lease = guard.into_lease();
                            leases.push(lease);
                            json!({ "ok": serde_json::to_value(lease).expect("json") })
                        }
                        Err(e) => pool_error(&e),
                    }
                }
                ["release", token] => {
                    let token: LeaseToken =
                        serde_json::from_value(json!(token)).expect("a lease token");
                    let Some(lease) = leases.iter().find(|l| l.token == token).copied() else {
                        return json!({ "err": null, "text": "no such lease" });
                    };
                    match handle.release(Release::from(lease)).await {
                        Ok(_) => json!({ "ok": lease.name.to_string() }),
                        Err(e) => pool_error(&e),
                    }
                }
                ["seed", used @ ..] => {
                    let used = used
                        .iter()
                        .map(|n| TapName::new(n).expect("a name"))
                        .collect();
                    match handle.seed(Seed { used }).await {
                        Ok(report) => json!({ "ok": serde_json::to_value(report).expect("json") }),
                        Err(e) => pool_error(&e),
                    }
                }
                ["settle"] => match handle.settle().await {
                    Ok(stats) => json!({ "ok": serde_json::to_value(stats).expect("json") }),
                    Err(e) => pool_error(&e),
                },
                ["stats"] => match handle.stats().await {
                    Ok(stats) => json!({ "ok": serde_json::to_value(stats).expect("json") }),
                    Err(e) => pool_error(&e),
                },
                ["drain"] => match handle.drain().await {
                    Ok(report) => json!({ "ok": serde_json::to_value(report).expect("json") }),
                    Err(e) => pool_error(&e),
                },
                _ => json!({ "err": null, "text": format!("unknown command {line}") }),
            }
        });
        reply(answer);
    }
    runtime.block_on(handle.shutdown());
    reply(json!({ "shutdown": true }));
    ExitCode::SUCCESS
}

/// Raw kernel calls through the helper kernel, one JSON object per line:
/// `{"create": [name, spec]}`, `{"delete": device}`, `{"reset": [device,
/// spec, mac]}`, `{"set_group": [device, group]}`, `{"delete_group": g}`,
/// `{"list": null}`. Connecting answers `{"connected": ...}` first.
fn calls(socket: &str) -> ExitCode {
    let mut factory = HelperKernelFactory::new(socket);
    if let Some(millis) = std::env::var(TIMEOUT_ENV).ok().and_then(|m| m.parse().ok()) {
        factory = factory.timeout(std::time::Duration::from_millis(millis));
    }
    let mut kernel = match factory.connect() {
        Ok(kernel) => {
            reply(json!({ "connected": true }));
            kernel
        }
        Err(e) => {
            reply(
                json!({ "connected": false, "err": serde_json::to_value(&e).ok(), "text": e.to_string() }),
            );
            return ExitCode::SUCCESS;
        }
    };
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let call: Value = serde_json::from_str(&line).expect("a JSON call");
        let (op, arg) = call
            .as_object()
            .and_then(|o| o.iter().next())
            .map(|(k, v)| (k.clone(), v.clone()))
            .expect("one call");
        let device = |v: &Value| -> Device { serde_json::from_value(v.clone()).expect("a device") };
        let spec = |v: &Value| -> TapSpec { serde_json::from_value(v.clone()).expect("a spec") };
        let answer = match op.as_str() {
            "create" => {
                let name: TapName = serde_json::from_value(arg[0].clone()).expect("a name");
                match kernel.create_tap(name, &spec(&arg[1])) {
                    Ok(created) => json!({ "ok": created.index }),
                    Err(e) => error(&e),
                }
            }
            "delete" => match kernel.delete_link(device(&arg)) {
                Ok(()) => json!({ "ok": null }),
                Err(e) => error(&e),
            },
            "reset" => {
                let mac: [u8; 6] = serde_json::from_value(arg[2].clone()).expect("a MAC");
                match kernel.reset_tap(device(&arg[0]), &spec(&arg[1]), mac) {
                    Ok(()) => json!({ "ok": null }),
                    Err(e) => error(&e),
                }
            }
            "set_group" => {
                let group = arg[1].as_u64().expect("a group") as u32;
                match kernel.set_device_group(device(&arg[0]), group) {
                    Ok(()) => json!({ "ok": null }),
                    Err(e) => error(&e),
                }
            }
            "delete_group" => match kernel.delete_group(arg.as_u64().expect("a group") as u32) {
                Ok(()) => json!({ "ok": null }),
                Err(e) => error(&e),
            },
            "list" => match kernel.list_taps() {
                Ok(links) => {
                    json!({ "ok": links.iter().map(|l| l.name.to_string()).collect::<Vec<_>>() })
                }
                Err(e) => error(&e),
            },
            other => json!({ "err": null, "text": format!("unknown call {other}") }),
        };
        reply(answer);
    }
    ExitCode::SUCCESS
}
