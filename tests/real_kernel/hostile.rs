//! A hostile tenant on the real kernel (docs/security.md): a forked child
//! that drops to the tap's owner uid, with no capabilities, attaches to its
//! leased tap and makes every change a process attached to a tap can make
//! through its file (owner, group, offloads, MAC and socket filters, vnet
//! header size and endianness, send buffer, log level, MAC address, carrier,
//! link type, persistence). After its release the next lessee gets a tap
//! equal to the spec, or a new one; a stranger uid can attach to no idle
//! tap, and to no tap of anyone else, at any point.
//!
//! The children fork as `vmm.rs`'s do (and reuse its setup), so these tests
//! run alone too.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use actix::Addr;
use serde_json::Value;
use tap_pool_actors::{
    Errno, Lease, Netns, PoolConfig, Released, TapName, TapPoolActor, TapSpec, Warm,
};
use tap_pool_testkit::pool::{acquire, release, settle};
use tap_pool_testkit::{KernelTest, TestNetns, assert_not_in_host, kernel_test, pool};

use crate::vmm::{
    self, BRIDGE, BRIDGE_IP, GROUP, GUEST_IP, GUEST_MAC, OWNER, STEPS, STRANGER, Step, attach_as,
};

/// This file's tests, for `main.rs`. Each runs alone (they fork).
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(async a_hostile_tenant_that_lets_go_leaves_nothing_for_the_next).alone(),
        kernel_test!(async a_hostile_tenant_that_keeps_its_file_cannot_reach_the_next).alone(),
        kernel_test!(async a_tenant_that_turns_persistence_off_costs_only_its_own_tap).alone(),
        kernel_test!(async a_tenant_that_gives_its_tap_a_group_gets_it_replaced).alone(),
        kernel_test!(async a_tenant_handed_its_file_under_the_default_owner_reaches_nothing_else)
            .alone(),
    ]
}

/// What the hostile tenant hands its tap to.
const STRANGER_GID: u32 = STRANGER;
/// The MAC address the tenant gives its tap, and the only one its MAC
/// filter lets through.
const TENANT_MAC: [u8; 6] = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];

/// Every change a process attached to a tap can make through its file
/// without a capability (drivers/net/tun.c, `__tun_chr_ioctl`; the eBPF
/// programs need a program fd, which an unprivileged process cannot load
/// where unprivileged BPF is off, as here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// `TUNSETOWNER` to the stranger: hands the tap over.
    Owner,
    /// `TUNSETGROUP` to the stranger's group.
    Group,
    /// `TUNSETOFFLOAD`: checksum and TSO on.
    Offload,
    /// `TUNSETTXFILTER`: only frames to `TENANT_MAC` pass.
    TxFilter,
    /// `TUNATTACHFILTER`: a classic BPF filter that drops every frame.
    SocketFilter,
    /// `TUNSETVNETHDRSZ` 12.
    VnetHdrSz,
    /// `TUNSETVNETLE` on.
    VnetLe,
    /// `TUNSETVNETBE` on (`EINVAL` on a kernel without
    /// `CONFIG_TUN_VNET_CROSS_LE`).
    VnetBe,
    /// `TUNSETSNDBUF` 4096.
    SndBuf,
    /// `TUNSETDEBUG`: every log message on.
    Debug,
    /// `SIOCSIFHWADDR` through the tun file: `TENANT_MAC`.
    Mac,
    /// `TUNSETCARRIER` off: the tap looks unused to anyone reading it.
    Carrier,
    /// `TUNSETLINK` to `ARPHRD_NONE` (`EBUSY` while the tap is up).
    LinkType,
    /// `TUNSETPERSIST` off: the tap goes with the tenant's file.
    Persist,
}

/// Every change a reset can undo: all but a group (the kernel cannot
/// unset one) and turning persistence off.
const CHANGES: [Change; 12] = [
    Change::Owner,
    Change::Offload,
    Change::TxFilter,
    Change::SocketFilter,
    Change::VnetHdrSz,
    Change::VnetLe,
    Change::VnetBe,
    Change::SndBuf,
    Change::Debug,
    Change::Mac,
    Change::Carrier,
    Change::LinkType,
];

/// A hostile tenant: a child process attached to its tap, waiting for the
/// test's word to act again or to exit.
struct Hostile {
    pid: libc::pid_t,
    chan: UnixStream,
    /// What the kernel answered to each change.
    results: Vec<(Change, Result<(), Errno>)>,
}

/// Everything the child's system calls read, prepared before the fork.
struct Plan {
    /// Attach as root, then drop to [`OWNER`] keeping the file: the
    /// orchestrator hands the VMM its tap (the default owner's way).
    handed: bool,
    attach: libc::ifreq,
    hwaddr: libc::ifreq,
    tx_filter: [u8; 10],
    fprog: libc::sock_fprog,
    frame: Vec<u8>,
}

/// Forks a tenant that attaches to `tap` as its owner ([`OWNER`]) with no
/// capabilities, makes `changes` in order, and reports. With `keep`, it
/// keeps its file open until [`Hostile::after_release`], where it tries
/// to send a frame through it; else it closes it at once.
fn hostile(ns: &TestNetns, tap: &str, changes: &[Change], keep: bool) -> Hostile {
    fork_tenant(ns, tap, changes, keep, false)
}

/// As [`hostile`], but the tenant is handed its file: it attaches as root
/// and only then drops to [`OWNER`] with no capabilities, as a VMM an
/// orchestrator hands an open tap (the default owner's way: the tap's
/// owner is the pool's uid, which no tenant runs as).
fn handed(ns: &TestNetns, tap: &str, changes: &[Change], keep: bool) -> Hostile {
    fork_tenant(ns, tap, changes, keep, true)
}

fn fork_tenant(ns: &TestNetns, tap: &str, changes: &[Change], keep: bool, handed: bool) -> Hostile {
    let Netns::Fd(netns) = ns.netns() else {
        unreachable!("TestNetns hands out its namespace as an fd")
    };
    let ifreq = |flags: libc::c_int| {
        // SAFETY: `ifreq` is plain old data; all zeroes is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(tap.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        req
    };
    let mut hwaddr = ifreq(0);
    // SAFETY: every member of the union is plain data; this writes the
    // hardware address one.
    unsafe {
        hwaddr.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        for (dst, src) in hwaddr
            .ifr_ifru
            .ifru_hwaddr
            .sa_data
            .iter_mut()
            .zip(TENANT_MAC)
        {
            *dst = src as libc::c_char;
        }
    }
    // `struct tun_filter`: flags 0, one exact address.
    let mut tx_filter = [0u8; 10];
    tx_filter[2..4].copy_from_slice(&1u16.to_ne_bytes());
    tx_filter[4..].copy_from_slice(&TENANT_MAC);
    // One instruction: return 0 (drop).
    let drop_all = Box::leak(Box::new([libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }]));
    let mut plan = Plan {
        handed,
        attach: ifreq(libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR),
        hwaddr,
        tx_filter,
        fprog: libc::sock_fprog {
            len: 1,
            filter: drop_all.as_mut_ptr(),
        },
        frame: vmm::arp_request(),
    };
    let changes: Vec<Change> = changes.to_vec();
    let (parent, child) = UnixStream::pair().expect("socketpair");

    // SAFETY: the child runs only `tenant`, which makes raw system calls on
    // memory prepared before the fork and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        tenant(
            netns.as_raw_fd(),
            child.as_raw_fd(),
            &mut plan,
            &changes,
            keep,
        );
    }
    drop(child);
    let mut hostile = Hostile {
        pid,
        chan: parent,
        results: Vec::new(),
    };
    let mut head = [0u8; 8];
    hostile
        .chan
        .read_exact(&mut head)
        .expect("the tenant reports");
    let step = i32::from_ne_bytes(head[..4].try_into().unwrap());
    let errno = i32::from_ne_bytes(head[4..].try_into().unwrap());
    assert!(
        step == Step::Done as i32,
        "the tenant's setup failed at {:?}: {:?}",
        STEPS[step as usize],
        Errno(errno)
    );
    for change in changes {
        let mut answer = [0u8; 4];
        hostile
            .chan
            .read_exact(&mut answer)
            .expect("the tenant reports");
        let errno = i32::from_ne_bytes(answer);
        hostile.results.push((
            change,
            if errno == 0 {
                Ok(())
            } else {
                Err(Errno(errno))
            },
        ));
    }
    hostile
}

/// The child: attach as [`OWNER`], make each change, report each answer;
/// with `keep`, wait for the word, write a frame through the old file,
/// report, and wait again. Async-signal-safe: raw system calls only.
fn tenant(
    netns: libc::c_int,
    chan: libc::c_int,
    plan: &mut Plan,
    changes: &[Change],
    keep: bool,
) -> ! {
    fn errno() -> i32 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }
    let send = |value: i32| {
        let bytes = value.to_ne_bytes();
        // SAFETY: `bytes` is valid for reads of its length.
        unsafe { libc::write(chan, bytes.as_ptr().cast(), bytes.len()) };
    };
    let wait = || {
        let mut byte = 0u8;
        // SAFETY: `byte` is valid for a one-byte write.
        unsafe { libc::read(chan, (&raw mut byte).cast(), 1) };
    };
    let mut tun = -1;
    let (step, err) = if plan.handed {
        handed_attach(netns, chan, &mut plan.attach, &mut tun)
    } else {
        vmm::unprivileged_attach(netns, chan, OWNER, GROUP, &mut plan.attach, &mut tun)
    };
    send(step as i32);
    send(err);
    if step == Step::Done {
        let int = |value: libc::c_int| value;
        for change in changes {
            let (sndbuf, hdr, on, off) = (int(4096), int(12), int(1), int(0));
            // SAFETY: each request is given the argument type the kernel
            // reads for it: an integer by value, or a pointer to an `int`,
            // a `tun_filter`, a `sock_fprog` or an `ifreq` prepared before
            // the fork, each outliving the call.
            let rc = unsafe {
                match change {
                    Change::Owner => libc::ioctl(tun, libc::TUNSETOWNER, STRANGER as libc::c_ulong),
                    Change::Group => {
                        libc::ioctl(tun, libc::TUNSETGROUP, STRANGER_GID as libc::c_ulong)
                    }
                    Change::Offload => libc::ioctl(
                        tun,
                        libc::TUNSETOFFLOAD,
                        (libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6) as libc::c_ulong,
                    ),
                    Change::TxFilter => {
                        libc::ioctl(tun, libc::TUNSETTXFILTER, plan.tx_filter.as_ptr())
                    }
                    Change::SocketFilter => {
                        libc::ioctl(tun, libc::TUNATTACHFILTER, &raw const plan.fprog)
                    }
                    Change::VnetHdrSz => libc::ioctl(tun, libc::TUNSETVNETHDRSZ, &raw const hdr),
                    Change::VnetLe => libc::ioctl(tun, libc::TUNSETVNETLE, &raw const on),
                    Change::VnetBe => libc::ioctl(tun, libc::TUNSETVNETBE, &raw const on),
                    Change::SndBuf => libc::ioctl(tun, libc::TUNSETSNDBUF, &raw const sndbuf),
                    Change::Debug => libc::ioctl(tun, libc::TUNSETDEBUG, 0xffff as libc::c_ulong),
                    Change::Mac => libc::ioctl(
                        tun,
                        libc::SIOCSIFHWADDR as libc::Ioctl,
                        &raw mut plan.hwaddr,
                    ),
                    Change::Carrier => libc::ioctl(tun, libc::TUNSETCARRIER, &raw const off),
                    Change::LinkType => {
                        libc::ioctl(tun, libc::TUNSETLINK, libc::ARPHRD_NONE as libc::c_ulong)
                    }
                    Change::Persist => libc::ioctl(tun, libc::TUNSETPERSIST, 0 as libc::c_ulong),
                }
            };
            send(if rc < 0 { errno() } else { 0 });
        }
        if keep {
            wait();
            // SAFETY: `frame` is valid for reads of its length.
            let n = unsafe { libc::write(tun, plan.frame.as_ptr().cast(), plan.frame.len()) };
            send(if n < 0 { errno() } else { 0 });
            wait();
        }
    }
    // SAFETY: `_exit` ends the child without running the parent's
    // destructors or atexit hooks; the kernel closes its files.
    unsafe { libc::_exit(0) }
}

/// The handed tenant's setup: enter the namespace, attach as root, keep
/// only `chan` and the tun file, drop to [`OWNER`]/[`GROUP`] for good (which
/// clears every capability). Async-signal-safe: raw system calls only.
fn handed_attach(
    netns: libc::c_int,
    chan: libc::c_int,
    req: &mut libc::ifreq,
    tun_out: &mut libc::c_int,
) -> (Step, i32) {
    fn errno() -> i32 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }
    macro_rules! check {
        ($step:expr, $call:expr) => {
            // SAFETY: each call below is a plain system call whose pointer
            // arguments are NUL-terminated literals or `req`, which outlives it.
            if unsafe { $call } < 0 {
                return ($step, errno());
            }
        };
    }
    check!(Step::EnterNetns, libc::setns(netns, libc::CLONE_NEWNET));
    // SAFETY: the path is a NUL-terminated literal.
    let tun = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if tun < 0 {
        return (Step::OpenTun, errno());
    }
    *tun_out = tun;
    check!(
        Step::SetIff,
        libc::ioctl(tun, libc::TUNSETIFF, req as *mut libc::ifreq)
    );
    // Keep only the two files: the copies of the parent's (the pool's tun
    // files among them) would hold other taps.
    let (low, high) = (chan.min(tun) as libc::c_uint, chan.max(tun) as libc::c_uint);
    // Inclusive ranges around the two; an empty one is skipped.
    for (first, last) in [
        (3, low.saturating_sub(1)),
        (low + 1, high - 1),
        (high + 1, libc::c_uint::MAX),
    ] {
        if first <= last {
            check!(
                Step::CloseFds,
                libc::syscall(libc::SYS_close_range, first, last, 0)
            );
        }
    }
    check!(Step::SetGroups, libc::setgroups(0, std::ptr::null()));
    check!(Step::SetGid, libc::setresgid(GROUP, GROUP, GROUP));
    check!(Step::SetUid, libc::setresuid(OWNER, OWNER, OWNER));
    (Step::Done, 0)
}

impl Hostile {
    /// What the kernel answered to `change`.
    fn result(&self, change: Change) -> Result<(), Errno> {
        self.results
            .iter()
            .find(|(c, _)| *c == change)
            .map(|(_, r)| *r)
            .expect("change made")
    }

    /// Writes a frame through the file the tenant kept (with `keep`), and
    /// answers what the kernel said.
    fn after_release(&mut self) -> Result<(), Errno> {
        self.chan.write_all(&[1]).expect("the tenant waits");
        let mut answer = [0u8; 4];
        self.chan
            .read_exact(&mut answer)
            .expect("the tenant reports");
        match i32::from_ne_bytes(answer) {
            0 => Ok(()),
            errno => Err(Errno(errno)),
        }
    }

    /// Lets the tenant exit, and waits for it: its file closes.
    fn exit(mut self) {
        let _ = self.chan.write_all(&[1]);
        self.reap();
    }

    fn reap(&mut self) {
        if self.pid == 0 {
            return;
        }
        let mut status = 0;
        // SAFETY: `pid` is our child and `status` is valid for writes.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        self.pid = 0;
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if self.pid != 0 {
            // SAFETY: `pid` is our own child, not yet reaped.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.reap();
        }
    }
}

/// The spec of these tests: owned by the tenant's uid (so that it can
/// attach at all), on the bridge, with a device group.
fn spec() -> TapSpec {
    let mut t = TapSpec::default();
    t.owner = Some(OWNER);
    t.bridge = Some(TapName::new(BRIDGE).unwrap());
    t.device_group = Some(4711);
    t
}

fn start(ns: &TestNetns) -> Addr<TapPoolActor> {
    pool::spawn(
        {
            let mut c = PoolConfig::default();
            c.size = 2;
            c.tap = spec();
            c
        },
        ns.factory(),
        2,
    )
}

/// Asserts a stranger uid can attach to no tun device in `ns` but `except`.
fn assert_stranger_shut_out(ns: &TestNetns, except: Option<&str>, when: &str) {
    for tap in ns.tun_names() {
        if Some(tap.as_str()) == except {
            continue;
        }
        let attached = attach_as(ns, &tap, STRANGER, STRANGER_GID);
        assert!(
            matches!(attached, Err(Errno(libc::EPERM))),
            "{when}: a stranger attached to {tap}: {attached:?}"
        );
    }
}

/// Asserts `tap` is what the spec makes, as `ip -j -d link show` sees it,
/// with the Ethernet address `mac`.
fn assert_as_made(ns: &TestNetns, tap: &str, mac: &Value) {
    assert_made_with(ns, tap, mac, &Value::from(OWNER));
}

/// As [`assert_as_made`], with the owner `ip` shows.
fn assert_made_with(ns: &TestNetns, tap: &str, mac: &Value, owner: &Value) {
    let link = ns.link(tap).expect("the tap exists");
    let data = &link["linkinfo"]["info_data"];
    assert_eq!(data["type"], "tap", "{link}");
    assert_eq!(&data["user"], owner, "owner: {link}");
    assert!(data["group"].is_null(), "group: {link}");
    assert_eq!(data["persist"], true, "{link}");
    assert_eq!(data["vnet_hdr"], true, "{link}");
    assert_eq!(data["multi_queue"], false, "{link}");
    assert_eq!(link["link_type"], "ether", "{link}");
    assert_eq!(&link["address"], mac, "{link}");
    assert_eq!(link["master"], BRIDGE, "{link}");
    assert_eq!(link["group"], "4711", "{link}");
    assert_eq!(link["mtu"], 1500, "{link}");
    assert!(
        vmm::link_flags(ns, tap).contains(&"UP".to_owned()),
        "{link}"
    );
    assert!(
        !vmm::link_flags(ns, tap).contains(&"LOWER_UP".to_owned()),
        "nobody has it open: {link}"
    );
}

/// The next tenant's view, through a file of its own: the tun settings read
/// back as a fresh tap's, and an ARP exchange with the bridge goes through
/// (no MAC filter, socket filter or vnet header size of the last tenant's
/// in the way).
fn assert_next_tenant_served(ns: &TestNetns, tap: &str, owner_attaches: bool) {
    let file = ns.attach(tap, true);
    let get = |request| {
        let mut value: libc::c_int = -1;
        // SAFETY: the request writes one `int` to `value`.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, &raw mut value) };
        (rc == 0)
            .then_some(value)
            .ok_or_else(|| Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)))
    };
    assert_eq!(get(libc::TUNGETVNETHDRSZ), Ok(10), "vnet header size");
    assert_eq!(get(libc::TUNGETVNETLE), Ok(0), "little-endian headers");
    assert!(
        matches!(get(libc::TUNGETVNETBE), Ok(0) | Err(Errno(libc::EINVAL))),
        "big-endian headers"
    );
    assert_eq!(get(libc::TUNGETSNDBUF), Ok(libc::c_int::MAX), "send buffer");
    assert_eq!(msg_level(ns, tap), 0, "log level");
    exchange_arp(ns, tap, &file);
    drop(file);
    // And the tenant's own uid attaches, as its VMM will, where the spec
    // names it.
    if owner_attaches {
        assert_eq!(attach_as(ns, tap, OWNER, GROUP), Ok(()));
    }
}

/// The driver's log level of `tap` (`ETHTOOL_GMSGLVL`), read from a thread
/// inside the namespace.
fn msg_level(ns: &TestNetns, tap: &str) -> u32 {
    /// `ETHTOOL_GMSGLVL` (linux/ethtool.h; the libc crate lacks it).
    const ETHTOOL_GMSGLVL: u32 = 0x0000_0007;
    let netns = ns.netns();
    let tap = tap.to_owned();
    std::thread::spawn(move || {
        tap_pool::linux::enter(&netns).expect("enter the test namespace");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").or_else(|_| {
            // `lo` may be down in a fresh namespace: any IPv4 socket will do.
            // SAFETY: socket(2) makes a new descriptor that we own.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            // SAFETY: `fd` was just made and nothing else owns it.
            Ok::<_, ()>(std::net::UdpSocket::from(unsafe {
                OwnedFd::from_raw_fd(fd)
            }))
        });
        let socket = socket.expect("an IPv4 socket");
        let mut value = [ETHTOOL_GMSGLVL, 0];
        // SAFETY: `ifreq` is plain old data; all zeroes is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(tap.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_data = value.as_mut_ptr().cast();
        // SAFETY: SIOCETHTOOL reads the `ifreq` and, through its data
        // pointer, the `struct ethtool_value` `value` is, which it writes.
        let rc = unsafe {
            libc::ioctl(
                socket.as_raw_fd(),
                libc::SIOCETHTOOL as libc::Ioctl,
                &raw mut req,
            )
        };
        assert_eq!(rc, 0, "SIOCETHTOOL: {}", std::io::Error::last_os_error());
        value[1]
    })
    .join()
    .expect("the ethtool thread")
}

/// An ARP request from the guest through `file`, answered by the bridge.
fn exchange_arp(ns: &TestNetns, tap: &str, file: &OwnedFd) {
    assert!(
        tap_pool_testkit::eventually(Duration::from_secs(5), || {
            let link = ns.link(tap).expect("tap exists");
            link["linkinfo"]["info_slave_data"]["state"] == "forwarding"
        }),
        "{tap} never forwarded"
    );
    let request = vmm::arp_request();
    // SAFETY: `request` is valid for reads of its whole length.
    let n = unsafe { libc::write(file.as_raw_fd(), request.as_ptr().cast(), request.len()) };
    assert_eq!(n, request.len() as isize, "write to {tap}");
    let reply = vmm::read_arp_reply(file, Duration::from_secs(5));
    assert_eq!(
        reply,
        vmm::ArpReply {
            eth_dst: GUEST_MAC,
            sender_mac: vmm::mac_of(ns, BRIDGE),
            sender_ip: BRIDGE_IP,
            target_mac: GUEST_MAC,
            target_ip: GUEST_IP,
        }
    );
}

/// What every test here starts from: a namespace with an addressed
/// bridge, a pool of two taps of [`spec`], warm, and one of them leased to
/// the hostile tenant's VM.
struct Leased {
    ns: TestNetns,
    pool: Addr<TapPoolActor>,
    warmed: Vec<TapName>,
    held: Lease,
    tap: String,
}

async fn leased() -> Leased {
    let ns = TestNetns::new();
    vmm::add_addressed_bridge(&ns);
    let pool = start(&ns);
    let warmed = warm(&pool).await;
    let held = lease(&pool, "vm-hostile").await;
    let tap = held.name.to_string();
    Leased {
        ns,
        pool,
        warmed,
        held,
        tap,
    }
}

async fn warm(pool: &Addr<TapPoolActor>) -> Vec<TapName> {
    let report = pool.send(Warm).await.expect("pool alive");
    assert!(report.failure.is_none(), "{:?}", report.failure);
    report.created
}

async fn lease(pool: &Addr<TapPoolActor>, vm: &str) -> Lease {
    acquire(pool, vm).await.expect("acquire")
}

/// The changes the kernel lets an unprivileged attached process make all
/// went through (so the test tried something real).
fn assert_changes_made(tenant: &Hostile, ns: &TestNetns, tap: &str) {
    for &(change, _) in &tenant.results {
        let result = tenant.result(change);
        match change {
            // Refused while the tap is up: only the orchestrator could
            // take it down.
            Change::LinkType => assert_eq!(result, Err(Errno(libc::EBUSY)), "{change:?}"),
            Change::VnetBe => assert!(
                matches!(result, Ok(()) | Err(Errno(libc::EINVAL))),
                "{change:?}: {result:?}"
            ),
            _ => assert_eq!(result, Ok(()), "{change:?}"),
        }
    }
    let link = ns.link(tap).expect("the tap exists");
    let data = &link["linkinfo"]["info_data"];
    assert_eq!(
        data["user"], STRANGER,
        "the tenant handed its tap over: {link}"
    );
    if tenant.results.iter().any(|(c, _)| *c == Change::Group) {
        assert_eq!(data["group"], STRANGER_GID, "{link}");
    }
    if tenant.results.iter().any(|(c, _)| *c == Change::Mac) {
        assert_eq!(link["address"], "02:de:ad:be:ef:01", "{link}");
    }
}

async fn a_hostile_tenant_that_lets_go_leaves_nothing_for_the_next() {
    let Leased {
        ns,
        pool,
        held,
        tap,
        ..
    } = leased().await;
    let mac = ns.link(&tap).expect("leased tap")["address"].clone();
    let index = ns.link(&tap).expect("leased tap")["ifindex"].clone();
    assert_stranger_shut_out(&ns, None, "before");

    let tenant = hostile(&ns, &tap, &CHANGES, false);
    assert_changes_made(&tenant, &ns, &tap);
    tenant.exit();
    // Its own tap it gave away (it could as well relay its traffic); every
    // other stays shut.
    assert_stranger_shut_out(&ns, Some(&tap), "during the lease");

    assert_eq!(release(&pool, &held).await, Ok(Released::Pooled));
    let stats = settle(&pool).await;
    assert_eq!((stats.discarded, stats.failures), (0, 0), "{stats:?}");
    assert_stranger_shut_out(&ns, None, "after the release");

    // The next lessee gets the same tap (the most recently pooled), as made.
    let next = lease(&pool, "vm-next").await;
    assert_eq!(next.name, held.name);
    assert_eq!(
        ns.link(&tap).expect("pooled")["ifindex"],
        index,
        "the same device"
    );
    assert_as_made(&ns, &tap, &mac);
    assert_next_tenant_served(&ns, &tap, true);
    assert_not_in_host(&[&tap, BRIDGE]);
}

async fn a_hostile_tenant_that_keeps_its_file_cannot_reach_the_next() {
    let Leased {
        ns,
        pool,
        held,
        tap,
        ..
    } = leased().await;

    let mut tenant = hostile(&ns, &tap, &CHANGES, true);
    assert_changes_made(&tenant, &ns, &tap);
    // Released while the tenant still holds its file: the reset finds it
    // attached, and the tap is deleted, never pooled.
    assert_eq!(release(&pool, &held).await, Ok(Released::Pooled));
    let stats = settle(&pool).await;
    assert_eq!(stats.discarded, 1, "{stats:?}");
    assert!(
        ns.link(&tap).is_none(),
        "the tap is gone: {:?}",
        ns.tun_names()
    );
    assert_eq!(stats.idle, 2, "and replaced: {stats:?}");
    // What the tenant kept reaches nothing.
    let sent = tenant.after_release();
    assert!(
        sent.is_err(),
        "a frame through the old file went out: {sent:?}"
    );
    assert_stranger_shut_out(&ns, None, "after the release");

    let next = lease(&pool, "vm-next").await;
    assert_ne!(next.name, held.name);
    let mac = ns.link(&next.name.to_string()).expect("leased")["address"].clone();
    assert_as_made(&ns, &next.name.to_string(), &mac);
    assert_next_tenant_served(&ns, &next.name.to_string(), true);
    tenant.exit();
    assert_not_in_host(&[&tap, BRIDGE]);
}

async fn a_tenant_that_turns_persistence_off_costs_only_its_own_tap() {
    let Leased {
        ns,
        pool,
        warmed,
        held,
        tap,
    } = leased().await;

    let mut changes = CHANGES.to_vec();
    changes.push(Change::Persist);
    let tenant = hostile(&ns, &tap, &changes, false);
    assert_eq!(tenant.result(Change::Persist), Ok(()));
    tenant.exit();
    // The kernel removed it with the tenant's file.
    assert!(
        tap_pool_testkit::eventually(Duration::from_secs(5), || ns.link(&tap).is_none()),
        "{tap} outlived its file"
    );
    let released = release(&pool, &held).await;
    assert!(
        matches!(released, Ok(Released::Pooled | Released::Vanished)),
        "{released:?}"
    );
    let stats = settle(&pool).await;
    assert_eq!(stats.idle, 2, "the pool is whole again: {stats:?}");
    assert_stranger_shut_out(&ns, None, "after the release");
    let other = warmed
        .iter()
        .find(|n| **n != held.name)
        .expect("two warmed");
    let mac = ns.link(&other.to_string()).expect("idle")["address"].clone();
    assert_as_made(&ns, &other.to_string(), &mac);
    assert_not_in_host(&[&tap, BRIDGE]);
}

async fn a_tenant_that_gives_its_tap_a_group_gets_it_replaced() {
    let Leased {
        ns,
        pool,
        held,
        tap,
        ..
    } = leased().await;

    let tenant = hostile(&ns, &tap, &[Change::Owner, Change::Group], false);
    assert_changes_made(&tenant, &ns, &tap);
    tenant.exit();
    assert_eq!(release(&pool, &held).await, Ok(Released::Pooled));
    // The kernel cannot unset a group: the tap is deleted and replaced.
    let stats = settle(&pool).await;
    assert_eq!((stats.discarded, stats.idle), (1, 2), "{stats:?}");
    assert!(
        ns.link(&tap).is_none(),
        "the tap is gone: {:?}",
        ns.tun_names()
    );
    assert_stranger_shut_out(&ns, None, "after the release");
    let next = lease(&pool, "vm-next").await;
    let mac = ns.link(&next.name.to_string()).expect("leased")["address"].clone();
    assert_as_made(&ns, &next.name.to_string(), &mac);
    assert_not_in_host(&[&tap, BRIDGE]);
}

/// The recommended configuration (docs/security.md, "Who can attach"):
/// taps owned by the pool's uid, which no tenant runs as, and each VMM
/// handed its open tap. The hostile tenant (uid [`OWNER`], no
/// capabilities, its file handed over) makes every change its file allows;
/// it can open no other tap, before or after its release, nor its own once
/// released; a stranger attaches to nothing else at any point; the next
/// lessee gets the tap as made.
async fn a_tenant_handed_its_file_under_the_default_owner_reaches_nothing_else() {
    let ns = TestNetns::new();
    vmm::add_addressed_bridge(&ns);
    let pool = pool::spawn(
        {
            let mut c = PoolConfig::default();
            c.size = 2;
            c.tap = {
                let mut t = spec();
                t.owner = None;
                t
            };
            c
        },
        ns.factory(),
        2,
    );
    warm(&pool).await;
    let held = lease(&pool, "vm-hostile").await;
    let tap = held.name.to_string();
    let mac = ns.link(&tap).expect("leased tap")["address"].clone();
    let others = |ns: &TestNetns| -> Vec<String> {
        ns.tun_names().into_iter().filter(|n| *n != tap).collect()
    };
    let tenant = handed(&ns, &tap, &CHANGES, false);
    assert_changes_made(&tenant, &ns, &tap);
    // Its uid opens no other tap.
    for other in others(&ns) {
        assert_eq!(
            attach_as(&ns, &other, OWNER, GROUP),
            Err(Errno(libc::EPERM)),
            "{other}"
        );
    }
    tenant.exit();
    assert_stranger_shut_out(&ns, Some(&tap), "during the lease");

    assert_eq!(release(&pool, &held).await, Ok(Released::Pooled));
    let stats = settle(&pool).await;
    assert_eq!((stats.discarded, stats.failures), (0, 0), "{stats:?}");
    assert_stranger_shut_out(&ns, None, "after the release");
    // Neither its own tap, now pooled, nor any other.
    for any in ns.tun_names() {
        assert_eq!(
            attach_as(&ns, &any, OWNER, GROUP),
            Err(Errno(libc::EPERM)),
            "{any}"
        );
    }
    let next = lease(&pool, "vm-next").await;
    assert_eq!(next.name, held.name);
    assert_made_with(&ns, &tap, &mac, &Value::from("root"));
    assert_next_tenant_served(&ns, &tap, false);
    assert_not_in_host(&[&tap, BRIDGE]);
}
