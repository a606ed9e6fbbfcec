//! `tap-pool-helper` served in this process, on a thread, for the rows that
//! measure a pool through it: a policy for this process's own uid (0, as
//! root) in the row's namespace, on a socket in a temporary directory in
//! memory (`/dev/shm`), where its ledger is too, as under `/run`.
//! Shared by `benches/cold.rs` and `examples/perf_report.rs`.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

use tap_pool::helper::HelperKernelFactory;
use tap_pool::{DEFAULT_PREFIX, KernelFactory, TapName};
use tap_pool_helper::{Helper, Policy};
use tap_pool_testkit::TestNetns;
use tap_pool_testkit::rows::GROUP;

/// The helper, serving until the process exits.
pub struct InProcessHelper {
    /// Its socket and ledger.
    dir: tempfile::TempDir,
}

impl InProcessHelper {
    /// Serves `ns` for this process's uid: the default pool prefix, the
    /// rows' fallback names (`p-open`, `p0`, `p1`...), `bridge` and the
    /// rows' device group. The rows clear their taps behind the helper's
    /// back (one group delete as root); its watcher forgets them as they
    /// go, but may lag a burst of creates: the tap limit is set far above
    /// what a run makes, so that it never refuses one.
    pub fn start(ns: &TestNetns, bridge: TapName) -> InProcessHelper {
        // The ledger on memory, as under /run on a systemd host (the unit's
        // RuntimeDirectory): on a disk each of its appends waits on the
        // file system's journal. /dev/shm where there is one.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("a temporary directory");
        // SAFETY: geteuid cannot fail and touches no memory of ours.
        let uid = unsafe { libc::geteuid() };
        let policy = format!(
            "state_dir = {state:?}\n\
             [[peer]]\n\
             uids = [{uid}]\n\
             prefix = {DEFAULT_PREFIX:?}\n\
             fallback = \"p-open|p[0-9]+\"\n\
             bridges = [\"{bridge}\"]\n\
             device_groups = [{GROUP}]\n\
             netns = {netns:?}\n\
             max_taps = 100000000\n",
            state = dir.path().join("state").display().to_string(),
            netns = ns.path(),
        );
        let policy = Policy::from_toml(&policy).expect("the policy");
        let helper = Helper::new(policy).expect("the helper starts");
        let listener = UnixListener::bind(dir.path().join("helper.sock")).expect("bind");
        std::thread::Builder::new()
            .name("tap-pool-helper".into())
            .spawn(move || helper.serve(&listener))
            .expect("the helper's thread");
        InProcessHelper { dir }
    }

    /// The helper's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("helper.sock")
    }

    /// A kernel factory whose changes go through the helper.
    pub fn factory(&self) -> Arc<dyn KernelFactory> {
        Arc::new(HelperKernelFactory::new(self.socket()))
    }
}
