//! Starting a pool: the one constructor, and its typed errors.

use std::error::Error as _;
use std::sync::Arc;

use tap_pool_actors::sim::SimKernel;
use tap_pool_actors::{ConfigError, PoolConfig, StartError, TapPoolActor, Warm};

fn config() -> PoolConfig {
    let mut c = PoolConfig::default();
    c.size = 2;
    c
}

#[test]
fn starting_outside_an_actix_system_is_a_typed_error_not_a_panic() {
    let start = || {
        TapPoolActor::builder(config())
            .kernel(Arc::new(SimKernel::new()))
            .start()
    };
    assert!(matches!(start(), Err(StartError::NoSystem)));
    // A plain tokio runtime is not an actix System either.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async { assert!(matches!(start(), Err(StartError::NoSystem))) });
    // A System made but not yet running.
    let system = actix_rt::System::new();
    assert!(matches!(start(), Err(StartError::NoSystem)));
    // Inside it, the pool starts and works.
    let sim = SimKernel::new();
    system.block_on(async {
        let pool = TapPoolActor::builder(config())
            .kernel(Arc::new(sim.clone()))
            .start()
            .unwrap();
        assert_eq!(pool.send(Warm).await.unwrap().created.len(), 2);
    });
    assert_eq!(sim.taps().len(), 2);
}

#[test]
fn a_refused_configuration_says_why_once() {
    let mut c = config();
    c.prefix = "tap/".to_owned();
    let err = TapPoolActor::builder(c).start().unwrap_err();
    assert!(matches!(
        err,
        StartError::Config(ConfigError::PrefixInvalid { .. })
    ));
    assert_eq!(err.to_string(), "the pool's configuration is refused");
    let config_error = err.source().unwrap();
    assert_eq!(
        config_error.to_string(),
        "pool name prefix \"tap/\" cannot start a device name"
    );
    assert!(config_error.source().is_some(), "the name's error, once");
}

#[actix_rt::test]
async fn no_configuration_panics_or_aborts_and_bad_ones_start_nothing() {
    use std::time::Duration;
    use tap_pool_actors::{Backoff, MAX_SIZE, MAX_WORKERS};
    let sim = SimKernel::new();
    let start = |f: &dyn Fn(&mut PoolConfig), workers: usize| {
        let mut c = config();
        f(&mut c);
        TapPoolActor::builder(c)
            .kernel(Arc::new(sim.clone()))
            .workers(workers)
            .start()
    };
    // Sizes that used to overflow a multiply or abort on allocation.
    for size in [usize::MAX, 1_000_000_000, MAX_SIZE + 1] {
        assert!(matches!(
            start(&|c| c.size = size, 2),
            Err(StartError::Config(ConfigError::SizeTooLarge { .. }))
        ));
    }
    // A zero backoff would retry a failing delete ~840 times a second.
    let zero = Backoff {
        initial: Duration::ZERO,
        max: Duration::ZERO,
        max_attempts: u32::MAX,
    };
    assert!(matches!(
        start(&|c| c.delete_retry = zero, 2),
        Err(StartError::Config(ConfigError::Backoff { .. }))
    ));
    assert!(matches!(
        start(&|c| c.warm_retry = zero, 2),
        Err(StartError::Config(ConfigError::Backoff { .. }))
    ));
    for workers in [0, MAX_WORKERS + 1, usize::MAX] {
        assert!(matches!(
            start(&|_| {}, workers),
            Err(StartError::WorkerCount { .. })
        ));
    }
    // Nothing was started by any of them.
    assert!(sim.taps().is_empty());
    assert_eq!(sim.calls(tap_pool_actors::sim::SimOp::Create), 0);
    // The largest size starts.
    let pool = start(&|c| c.size = MAX_SIZE, 1).unwrap();
    assert_eq!(
        pool.send(tap_pool_actors::Stats).await.unwrap().size,
        MAX_SIZE
    );
}

/// A namespace path is opened once, when the pool starts: one that does not
/// open as a network namespace is a typed error naming the path and the
/// errno, and nothing starts.
#[cfg(target_os = "linux")]
#[test]
fn a_namespace_path_that_does_not_open_is_a_typed_start_error() {
    use std::path::Path;
    use tap_pool_actors::{Errno, LinuxKernelFactory, Netns};

    let system = actix_rt::System::new();
    system.block_on(async {
        let cases = [
            ("/nonexistent/tap-pool-netns", libc::ENOENT),
            // Another kind of namespace; a file that is no namespace.
            ("/proc/self/ns/mnt", libc::EINVAL),
            ("/proc/self/status", libc::EINVAL),
        ];
        for (path, expected) in cases {
            let by_builder = TapPoolActor::builder(config())
                .netns(Netns::Path(path.into()))
                .start();
            let by_factory = TapPoolActor::builder(config())
                .kernel(Arc::new(LinuxKernelFactory {
                    netns: Some(Netns::Path(path.into())),
                }))
                .start();
            for result in [by_builder, by_factory] {
                let err = result.expect_err("the pool must not start");
                match &err {
                    StartError::Namespace { path: p, errno } => {
                        assert_eq!((p.as_path(), *errno), (Path::new(path), Errno(expected)));
                    }
                    other => panic!("{path}: {other:?}"),
                }
                assert!(
                    err.to_string()
                        .starts_with(&format!("cannot open network namespace {path}: ")),
                    "{err}"
                );
            }
        }
        // This process's own namespace, by path, starts.
        let pool = TapPoolActor::builder(config())
            .netns(Netns::Path("/proc/self/ns/net".into()))
            .watch_links(false)
            .start();
        assert!(pool.is_ok());
    });
}

/// With fail-fast, a kernel that cannot make taps is refused at start with
/// the probe's typed error, by `start` and by `spawn`, and the pool never
/// asks it for anything; without, the probe is not asked at all.
#[test]
fn fail_fast_refuses_a_kernel_that_cannot_make_taps_and_starts_nothing() {
    use std::path::Path;
    use tap_pool_actors::sim::{Fault, SimOp};
    use tap_pool_actors::{Errno, ProbeError};

    let sim = SimKernel::new();
    sim.inject(Fault::always(SimOp::Probe, libc::EPERM));
    let builder = || {
        TapPoolActor::builder(config())
            .kernel(Arc::new(sim.clone()))
            .fail_fast(true)
    };
    let spawned = builder().spawn().expect_err("no pool may start");
    assert!(
        matches!(spawned, StartError::Probe(ProbeError::NoNetAdmin)),
        "{spawned:?}"
    );
    assert_eq!(
        spawned.source().unwrap().to_string(),
        "CAP_NET_ADMIN is not in the effective capability set"
    );
    actix_rt::System::new().block_on(async {
        let started = builder().start().expect_err("no pool may start");
        assert!(matches!(started, StartError::Probe(ProbeError::NoNetAdmin)));
    });
    assert_eq!(sim.calls(SimOp::Probe), 2);
    assert_eq!(sim.calls(SimOp::Create) + sim.calls(SimOp::List), 0);

    // Another errno reads as the tun device that does not open.
    sim.clear_faults();
    sim.inject(Fault::always(SimOp::Probe, libc::ENOENT));
    match builder().spawn() {
        Err(StartError::Probe(ProbeError::TunDevice { path, errno })) => {
            assert_eq!(
                (path.as_path(), errno),
                (Path::new("/dev/net/tun"), Errno(libc::ENOENT))
            );
        }
        other => panic!("{other:?}"),
    }

    // Without fail-fast the probe is not asked, and the pool starts.
    let pool = TapPoolActor::builder(config())
        .kernel(Arc::new(sim.clone()))
        .spawn()
        .expect("starts");
    assert_eq!(sim.calls(SimOp::Probe), 3);
    // A kernel that passes the probe starts with fail-fast too.
    sim.clear_faults();
    let probed = builder().spawn().expect("starts");
    assert_eq!(sim.calls(SimOp::Probe), 4);
    drop((pool, probed));
}
