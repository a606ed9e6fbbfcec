//! The harness of the real-kernel test binary (`tests/real_kernel/`).
//!
//! Stable libtest decides whether a test is ignored when it is compiled, but
//! whether the kernel is usable (`/dev/net/tun`, `CAP_NET_ADMIN`, `ip`, `tc`,
//! `bridge`, `nsenter`) is known only when the tests run. So that binary has
//! `harness = false` and this module runs it through `libtest-mimic`, which
//! speaks libtest's command line and output: it probes once, and where the
//! kernel is not usable every test is reported as `ignored (why)` and counted
//! as ignored in the summary, instead of passing without having run. With
//! `TAP_POOL_REQUIRE_KERNEL=1` (as in CI) each of them fails instead.
//!
//! Tests that fork (or start a child process) while they hold a tap open
//! run [`KernelTest::alone`]: a fork copies every descriptor of the process,
//! including the `/dev/net/tun` file another test's kernel worker holds while
//! it creates a tap, which keeps that tap attached (`LOWER_UP`, `EBUSY` on
//! the next open) until the child closes its copy.

use std::future::Future;
use std::process::ExitCode;
use std::sync::{PoisonError, RwLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Set to `1` (CI does) to make a real-kernel test that cannot run a
/// failure instead of ignored.
pub const REQUIRE_ENV: &str = "TAP_POOL_REQUIRE_KERNEL";

/// Tests that run alone take it for writing, the others for reading.
static TURNS: RwLock<()> = RwLock::new(());

/// One real-kernel test: a name as libtest would give it (`module::test`),
/// and its body. Made with [`kernel_test!`](crate::kernel_test).
pub struct KernelTest {
    name: String,
    alone: bool,
    body: Box<dyn FnOnce() + Send>,
}

impl KernelTest {
    /// A test whose body is a plain function.
    pub fn new(name: impl Into<String>, body: impl FnOnce() + Send + 'static) -> KernelTest {
        KernelTest {
            name: name.into(),
            alone: false,
            body: Box::new(body),
        }
    }

    /// A test whose body runs on an actix system of its own, as
    /// `#[actix_rt::test]` would run it.
    pub fn actix<F>(
        name: impl Into<String>,
        body: impl FnOnce() -> F + Send + 'static,
    ) -> KernelTest
    where
        F: Future<Output = ()> + 'static,
    {
        KernelTest::new(name, move || actix_rt::System::new().block_on(body()))
    }

    /// Runs this test while no other real-kernel test of the process runs
    /// (see the module's documentation for why a forking test needs that).
    pub fn alone(mut self) -> KernelTest {
        self.alone = true;
        self
    }

    /// The test's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Makes a [`KernelTest`] of a function in scope, named `module::function`
/// after the module it is written in: `kernel_test!(name)` for a plain
/// function, `kernel_test!(async name)` for an `async fn` that runs on an
/// actix system of its own.
#[macro_export]
macro_rules! kernel_test {
    (async $test:ident) => {
        $crate::harness::KernelTest::actix(
            $crate::harness::test_name(module_path!(), stringify!($test)),
            $test,
        )
    };
    ($test:ident) => {
        $crate::harness::KernelTest::new(
            $crate::harness::test_name(module_path!(), stringify!($test)),
            $test,
        )
    };
}

/// `module::test` for a test in `module_path` (which starts with the test
/// binary's own name, as libtest leaves it out).
pub fn test_name(module_path: &str, test: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_owned(),
    }
}

/// Whether the real-kernel tests can run here, and if not, why (the
/// [`ProbeError`](tap_pool::ProbeError), or the missing tool).
pub fn kernel_usable() -> Result<(), String> {
    tap_pool::linux::probe().map_err(|e| {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            why.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        why
    })?;
    for tool in ["ip", "tc", "bridge", "nsenter"] {
        let found = std::process::Command::new(tool)
            .arg("-V")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!("{tool} (the tests' witness) is not installed"));
        }
    }
    Ok(())
}

/// Runs `tests` as libtest would, with its command line (filters, `--exact`,
/// `--list`, `--test-threads`, ...), and returns the exit code for `main`.
pub fn run(tests: impl IntoIterator<Item = KernelTest>) -> ExitCode {
    let args = Arguments::from_args();
    let usable = kernel_usable();
    let required = std::env::var(REQUIRE_ENV).as_deref() == Ok("1");
    if let Err(why) = &usable {
        if required {
            eprintln!(
                "{REQUIRE_ENV}=1 but the real-kernel tests cannot run: {why} \
                 (they need /dev/net/tun, CAP_NET_ADMIN, ip, tc, bridge and nsenter): each fails"
            );
        } else {
            eprintln!(
                "the real-kernel tests cannot run here, so they are ignored: {why} \
                 (they need /dev/net/tun, CAP_NET_ADMIN, ip, tc, bridge and nsenter; \
                 {REQUIRE_ENV}=1 makes this a failure)"
            );
        }
    }
    let trials = tests.into_iter().map(|test| {
        let usable = usable.clone();
        Trial::ignorable_test(test.name, move || {
            if let Err(why) = usable {
                return if required {
                    Err(Failed::from(format!(
                        "{REQUIRE_ENV}=1 but the real kernel is not usable: {why}"
                    )))
                } else {
                    Ok(Completion::ignored_with(format!(
                        "needs the real kernel: {why}"
                    )))
                };
            }
            let _shared =
                (!test.alone).then(|| TURNS.read().unwrap_or_else(PoisonError::into_inner));
            let _alone = test
                .alone
                .then(|| TURNS.write().unwrap_or_else(PoisonError::into_inner));
            (test.body)();
            Ok(Completion::Completed)
        })
    });
    libtest_mimic::run(&args, trials.collect()).exit_code()
}
