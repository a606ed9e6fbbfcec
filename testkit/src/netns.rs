//! A network namespace of a test's (or a bench's) own, and what is done in
//! it: `ip` for set-up and as an independent witness (the library itself
//! never shells out), a kernel handle, a pool, a tap attached as a VMM does.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use serde_json::Value;
use tap_pool::{Kernel, KernelFactory, LinuxKernelFactory, Netns};
use tap_pool_actors::{PoolConfig, TapPoolActor};

use crate::harness::kernel_usable;
use crate::witness::text;

/// A fresh, empty network namespace that lives as long as this value.
pub struct TestNetns {
    fd: Arc<OwnedFd>,
}

impl TestNetns {
    /// Makes the namespace on a short-lived helper thread, so neither the
    /// test's thread nor the host namespace is touched; the open namespace
    /// file keeps it alive after the thread exits.
    #[expect(
        clippy::new_without_default,
        reason = "making a namespace is a system call that can fail, not a default value"
    )]
    pub fn new() -> TestNetns {
        let fd = std::thread::spawn(|| {
            // SAFETY: unshare only changes the calling (helper) thread's
            // namespaces and touches no memory of ours.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("open own netns"))
        })
        .join()
        .expect("netns helper thread");
        let ns = TestNetns { fd: Arc::new(fd) };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A fresh namespace where the real kernel is usable, or why it is not:
    /// for the benches and the report, which skip the real-kernel rows.
    pub fn try_new() -> Result<TestNetns, String> {
        kernel_usable()?;
        Ok(TestNetns::new())
    }

    /// The namespace as the library takes it.
    pub fn netns(&self) -> Netns {
        Netns::Fd(self.fd.clone())
    }

    /// A path naming the namespace, for `nsenter --net=` and `Netns::Path`.
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }

    /// A kernel factory whose handles work in this namespace.
    pub fn factory(&self) -> Arc<dyn KernelFactory> {
        Arc::new(LinuxKernelFactory {
            netns: Some(self.netns()),
        })
    }

    /// A pool on the real kernel in this namespace, with two kernel workers:
    /// see [`crate::pool::start`].
    pub fn start_pool(&self, config: PoolConfig) -> Addr<TapPoolActor> {
        crate::pool::start(config, self.factory(), 2)
    }

    /// Runs `ip ARGS` in the namespace; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        self.try_ip(args)
            .unwrap_or_else(|e| panic!("ip {}: {e}", args.join(" ")))
    }

    /// Runs `ip ARGS` in the namespace; `Err` holds its stderr.
    pub fn try_ip(&self, args: &[&str]) -> Result<String, String> {
        self.try_run("ip", args)
    }

    /// Runs `PROGRAM ARGS` in the namespace (`tc`, `bridge`, `sh -c ...`);
    /// panics if it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        self.try_run(program, args)
            .unwrap_or_else(|e| panic!("{program} {}: {e}", args.join(" ")))
    }

    /// Runs `PROGRAM ARGS` in the namespace; `Err` holds its stderr. `/proc`
    /// and `/proc/sys/net` there show the namespace.
    pub fn try_run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .arg(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run nsenter {program}: {e}"));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Feeds `script` to `ip -batch -` in the namespace.
    pub fn ip_batch(&self, script: &str) {
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .args(["ip", "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run nsenter ip -batch");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write batch");
        assert!(
            child.wait().expect("ip -batch").success(),
            "ip -batch failed"
        );
    }

    /// `ip -j -d link show dev NAME`, or `None` if there is no such device.
    pub fn link(&self, name: &str) -> Option<Value> {
        let out = self
            .try_ip(&["-j", "-d", "link", "show", "dev", name])
            .ok()?;
        let mut links: Vec<Value> = serde_json::from_str(&out).expect("ip -j output is JSON");
        assert!(links.len() <= 1);
        links.pop()
    }

    /// `ip -j -d link show`: every device in the namespace.
    pub fn links(&self) -> Vec<Value> {
        serde_json::from_str(&self.ip(&["-j", "-d", "link", "show"])).expect("ip -j output is JSON")
    }

    /// The names of every tun/tap device `ip` shows in the namespace, sorted.
    pub fn tun_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .links()
            .iter()
            .filter(|l| l["linkinfo"]["info_kind"] == "tun")
            .map(|l| text(&l["ifname"]))
            .collect();
        names.sort();
        names
    }

    /// Adds a bridge named `name`.
    pub fn add_bridge(&self, name: &str) {
        self.ip(&["link", "add", name, "type", "bridge"]);
    }

    /// Reads `/sys/class/net/DEV/FILE` as seen from inside the namespace
    /// (sysfs shows the namespace of whoever mounts it, so this mounts a
    /// private one in a throwaway mount namespace).
    pub fn sysfs(&self, dev: &str, file: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path()))
            .args(["unshare", "-m", "sh", "-c"])
            .arg(format!(
                "mount -t sysfs sysfs /sys && cat /sys/class/net/{dev}/{file}"
            ))
            .output()
            .expect("run nsenter unshare");
        assert!(
            out.status.success(),
            "reading {dev}/{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs `f` with a kernel handle opened by [`LinuxKernelFactory`] on a
    /// fresh thread, which enters the namespace and exits afterwards;
    /// processes `f` starts run in the namespace too.
    pub fn with_kernel<R: Send>(&self, f: impl FnOnce(&mut dyn Kernel) -> R + Send) -> R {
        self.with_kernel_from(self.netns(), f)
    }

    /// [`Self::with_kernel`], with the namespace given as `netns`.
    pub fn with_kernel_from<R: Send>(
        &self,
        netns: Netns,
        f: impl FnOnce(&mut dyn Kernel) -> R + Send,
    ) -> R {
        let factory = LinuxKernelFactory { netns: Some(netns) };
        std::thread::scope(|s| {
            let worker = s.spawn(move || {
                let mut kernel = factory.open().expect("open a kernel in the test netns");
                f(&mut *kernel)
            });
            match worker.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Attaches to the tap `name` the way a VMM does (`TUNSETIFF` without
    /// `IFF_TUN_EXCL`); the tap is in use until the returned file is dropped.
    pub fn attach(&self, name: &str, vnet_hdr: bool) -> OwnedFd {
        attach(self.netns(), name, vnet_hdr)
    }

    /// Attaches one queue of the multi-queue tap `name` the way a VMM does
    /// (`TUNSETIFF` with `IFF_MULTI_QUEUE`); each call is one more queue.
    pub fn attach_queue(&self, name: &str) -> OwnedFd {
        attach_with(
            self.netns(),
            name,
            libc::IFF_VNET_HDR | libc::IFF_MULTI_QUEUE,
        )
    }
}

/// Attaches to the tap `name` in `netns` the way a VMM does, from a helper
/// thread that enters the namespace; for a process that has the namespace
/// only as a path (a child of the test), where [`TestNetns::attach`] is not
/// at hand.
pub fn attach(netns: Netns, name: &str, vnet_hdr: bool) -> OwnedFd {
    attach_with(netns, name, if vnet_hdr { libc::IFF_VNET_HDR } else { 0 })
}

/// [`attach`] with `extra` `TUNSETIFF` flags besides `IFF_TAP | IFF_NO_PI`.
fn attach_with(netns: Netns, name: &str, extra: libc::c_int) -> OwnedFd {
    let name = name.to_owned();
    std::thread::spawn(move || {
        tap_pool::linux::enter(&netns).expect("enter test netns");
        // A process forked elsewhere in the test binary (tests spawn `ip`)
        // holds a copy of any tun file open at that moment until it execs,
        // and the tap answers EBUSY meanwhile: retry that briefly.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let file = File::options()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
                .expect("open /dev/net/tun");
            // SAFETY: `ifreq` is plain old data; all zeroes is valid.
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
                *dst = src as libc::c_char;
            }
            let flags = libc::IFF_TAP | libc::IFF_NO_PI | extra;
            req.ifr_ifru.ifru_flags = flags as libc::c_short;
            // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `req` is.
            let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &raw mut req) };
            if rc == 0 {
                return OwnedFd::from(file);
            }
            let err = std::io::Error::last_os_error();
            assert!(
                err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline,
                "attach {name}: {err}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    })
    .join()
    .expect("attach helper thread")
}

impl TestNetns {
    /// The addresses on `dev` as `(family, local, scope)` from
    /// `ip -j address show dev DEV`.
    pub fn addresses(&self, dev: &str) -> Vec<(String, String, String)> {
        let out = self.ip(&["-j", "address", "show", "dev", dev]);
        let links: Vec<Value> = serde_json::from_str(&out).expect("ip -j output is JSON");
        links
            .iter()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| (text(&a["family"]), text(&a["local"]), text(&a["scope"])))
            .collect()
    }

    /// Opens a link watcher from [`LinuxKernelFactory::watch`] on a fresh
    /// thread in the namespace, and forwards its events (and `None`s) on a
    /// channel until the receiver is dropped.
    pub fn watch(&self) -> std::sync::mpsc::Receiver<Option<tap_pool::LinkEvent>> {
        let factory = self.factory();
        let (tx, rx) = std::sync::mpsc::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut watcher = factory.watch().expect("open a watcher in the test netns");
            ready_tx.send(()).expect("test waits");
            loop {
                let event = watcher.next_event().expect("watch");
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        ready_rx.recv().expect("watcher opened");
        rx
    }
}
