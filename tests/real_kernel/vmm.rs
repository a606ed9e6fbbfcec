//! What a VMM sees of a pooled tap on the real kernel: it opens the tap the
//! way Firecracker does (`TUNSETIFF` with `IFF_TAP | IFF_NO_PI |
//! IFF_VNET_HDR`, no `IFF_TUN_EXCL`), frames it writes reach the bridge, and
//! the tap's owner and group decide which unprivileged process may open it.
//!
//! Each test runs in a network namespace of its own. The unprivileged "VMM"
//! is a forked child that enters the test namespace, mounts a private
//! `/dev/net/tun` node of its own (mode 0666, in a private mount namespace,
//! so the host's node is never touched), drops to a plain uid and gid, and
//! only then opens the tap.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use actix::Addr;
use tap_pool_actors::{
    Acquire, Errno, Lease, LeaseSource, Netns, PoolConfig, TapName, TapPoolActor, TapSpec, Warm,
};
use tap_pool_testkit::{
    KernelTest, TestNetns, assert_not_in_host, eventually, flags, kernel_test, pool, text,
};

/// This file's tests, for `main.rs`. Each runs alone: `attach_as` forks, and
/// the child holds a copy of the `/dev/net/tun` file a concurrent test's kernel
/// worker holds while it creates a tap, so that tap stays attached (`EBUSY`).
pub fn tests() -> Vec<KernelTest> {
    vec![
        kernel_test!(async a_frame_from_a_firecracker_style_open_reaches_the_bridge_and_is_answered).alone(),
        kernel_test!(async the_configured_owner_attaches_to_its_leased_tap_without_privileges).alone(),
        kernel_test!(async under_the_default_owner_no_unprivileged_process_attaches_to_an_idle_tap).alone(),
        kernel_test!(async under_an_owner_that_uid_attaches_even_to_an_idle_tap).alone(),
        kernel_test!(async with_owner_and_group_the_kernel_demands_both).alone(),
        kernel_test!(async with_only_a_group_its_members_attach).alone(),
    ]
}

// Ids with no passwd/group entry: nobody on the host has them.
pub(crate) const OWNER: u32 = 54321;
pub(crate) const GROUP: u32 = 54322;
pub(crate) const STRANGER: u32 = 54323;

pub(crate) const BRIDGE: &str = "br0";
pub(crate) const BRIDGE_IP: [u8; 4] = [10, 77, 0, 1];
pub(crate) const GUEST_IP: [u8; 4] = [10, 77, 0, 2];
pub(crate) const GUEST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x77, 0x00, 0x02];

/// `struct virtio_net_hdr`: the kernel's default `TUNSETVNETHDRSZ`.
pub(crate) const VNET_HDR_LEN: usize = 10;
const ETHERTYPE_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

fn start(ns: &TestNetns, size: usize, tap: TapSpec) -> Addr<TapPoolActor> {
    pool::spawn(
        {
            let mut c = PoolConfig::default();
            c.size = size;
            c.tap = tap;
            c
        },
        ns.factory(),
        2,
    )
}

async fn warm(pool: &Addr<TapPoolActor>, size: usize) -> Vec<TapName> {
    let report = pool.send(Warm).await.expect("pool alive");
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert_eq!(report.created.len(), size);
    report.created
}

async fn acquire(pool: &Addr<TapPoolActor>, fallback: &str) -> Lease {
    let lease = pool
        .send(Acquire::new(fallback).expect("valid name"))
        .await
        .expect("pool alive")
        .expect("acquire")
        .into_lease();
    assert_eq!(lease.source, LeaseSource::Pool, "served warm");
    lease
}

pub(crate) fn link_flags(ns: &TestNetns, dev: &str) -> Vec<String> {
    flags(&ns.link(dev).unwrap_or_else(|| panic!("{dev} exists")))
}

/// A bridge with an address, up, forwarding as soon as a port has carrier.
pub(crate) fn add_addressed_bridge(ns: &TestNetns) {
    ns.ip(&[
        "link",
        "add",
        BRIDGE,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
    ]);
    let [a, b, c, d] = BRIDGE_IP;
    ns.ip(&["addr", "add", &format!("{a}.{b}.{c}.{d}/24"), "dev", BRIDGE]);
    ns.ip(&["link", "set", BRIDGE, "up"]);
}

/// An ARP request from the guest for the bridge's address, as a VMM writes
/// it: a zeroed virtio-net header (no checksum offload, no GSO), then the
/// Ethernet frame.
pub(crate) fn arp_request() -> Vec<u8> {
    let mut frame = vec![0u8; VNET_HDR_LEN];
    frame.extend([0xff; 6]); // destination: broadcast
    frame.extend(GUEST_MAC); // source
    frame.extend(ETHERTYPE_ARP.to_be_bytes());
    frame.extend(1u16.to_be_bytes()); // hardware type: Ethernet
    frame.extend(0x0800u16.to_be_bytes()); // protocol type: IPv4
    frame.extend([6, 4]); // hardware and protocol address lengths
    frame.extend(ARP_REQUEST.to_be_bytes());
    frame.extend(GUEST_MAC); // sender hardware address
    frame.extend(GUEST_IP); // sender protocol address
    frame.extend([0; 6]); // target hardware address: unknown
    frame.extend(BRIDGE_IP); // target protocol address
    frame
}

/// An ARP reply seen on the tap, after its virtio-net header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ArpReply {
    pub(crate) eth_dst: [u8; 6],
    pub(crate) sender_mac: [u8; 6],
    pub(crate) sender_ip: [u8; 4],
    pub(crate) target_mac: [u8; 6],
    pub(crate) target_ip: [u8; 4],
}

/// Parses `packet` (virtio-net header, then Ethernet) as an ARP reply;
/// `None` for anything else, such as the IPv6 chatter of a new link.
fn parse_arp_reply(packet: &[u8]) -> Option<ArpReply> {
    let frame = packet.get(VNET_HDR_LEN..)?;
    let arp = frame.get(14..42)?;
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    if ethertype != ETHERTYPE_ARP || op != ARP_REPLY {
        return None;
    }
    Some(ArpReply {
        eth_dst: frame[..6].try_into().ok()?,
        sender_mac: arp[8..14].try_into().ok()?,
        sender_ip: arp[14..18].try_into().ok()?,
        target_mac: arp[18..24].try_into().ok()?,
        target_ip: arp[24..28].try_into().ok()?,
    })
}

/// Reads packets from the tap until one is an ARP reply from `BRIDGE_IP`.
pub(crate) fn read_arp_reply(tap: &OwnedFd, timeout: Duration) -> ArpReply {
    let deadline = Instant::now() + timeout;
    let mut seen = 0;
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no ARP reply within {timeout:?} ({seen} other packets)"
        );
        let mut pfd = libc::pollfd {
            fd: tap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that outlives the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
        assert!(rc >= 0, "poll: {}", std::io::Error::last_os_error());
        if rc == 0 {
            continue;
        }
        // SAFETY: `buf` is valid for writes of its whole length.
        let n = unsafe { libc::read(tap.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n >= 0, "read tap: {}", std::io::Error::last_os_error());
        match parse_arp_reply(&buf[..n as usize]) {
            Some(reply) if reply.sender_ip == BRIDGE_IP => return reply,
            _ => seen += 1,
        }
    }
}

pub(crate) fn mac_of(ns: &TestNetns, dev: &str) -> [u8; 6] {
    let link = ns.link(dev).expect("device exists");
    let bytes: Vec<u8> = text(&link["address"])
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex MAC"))
        .collect();
    bytes.try_into().expect("6-byte MAC")
}

async fn a_frame_from_a_firecracker_style_open_reaches_the_bridge_and_is_answered() {
    let ns = TestNetns::new();
    add_addressed_bridge(&ns);
    let pool = start(&ns, 2, {
        let mut t = TapSpec::default();
        t.bridge = Some(TapName::new(BRIDGE).unwrap());
        t
    });
    warm(&pool, 2).await;
    let lease = acquire(&pool, "vm-arp").await;
    let tap = lease.name.to_str().unwrap();

    // Opened on a thread inside the namespace, as a VMM there would.
    let file = ns.attach(tap, true);
    // With STP off the port forwards as soon as the tap has carrier, and
    // the bridge has carrier as soon as a port forwards.
    let forwarding = || {
        let link = ns.link(tap).expect("tap exists");
        link["master"] == BRIDGE
            && link["linkinfo"]["info_slave_data"]["state"] == "forwarding"
            && link_flags(&ns, tap).contains(&"LOWER_UP".to_owned())
            && link_flags(&ns, BRIDGE).contains(&"LOWER_UP".to_owned())
    };
    assert!(
        eventually(Duration::from_secs(5), forwarding),
        "{tap} never forwarded: {:?}",
        ns.link(tap)
    );

    let request = arp_request();
    // SAFETY: `request` is valid for reads of its whole length.
    let n = unsafe { libc::write(file.as_raw_fd(), request.as_ptr().cast(), request.len()) };
    assert_eq!(
        n,
        request.len() as isize,
        "write to {tap}: {}",
        std::io::Error::last_os_error()
    );

    let reply = read_arp_reply(&file, Duration::from_secs(5));
    assert_eq!(
        reply,
        ArpReply {
            eth_dst: GUEST_MAC,
            sender_mac: mac_of(&ns, BRIDGE),
            sender_ip: BRIDGE_IP,
            target_mac: GUEST_MAC,
            target_ip: GUEST_IP,
        }
    );
    drop(file);
    assert_not_in_host(&[tap, "tap-pool-0", "tap-pool-1", BRIDGE]);
}

async fn the_configured_owner_attaches_to_its_leased_tap_without_privileges() {
    let ns = TestNetns::new();
    let pool = start(&ns, 1, {
        let mut t = TapSpec::default();
        t.owner = Some(OWNER);
        t
    });
    warm(&pool, 1).await;
    let lease = acquire(&pool, "vm-owner").await;
    let tap = lease.name.to_str().unwrap();

    assert_eq!(attach_as(&ns, tap, OWNER, GROUP), Ok(()));
    // The same unprivileged setup as anyone else is refused: the owner got
    // in by being the owner, not by some privilege the child kept.
    assert_eq!(
        attach_as(&ns, tap, STRANGER, GROUP),
        Err(Errno(libc::EPERM))
    );
    assert_not_in_host(&[tap]);
}

async fn under_the_default_owner_no_unprivileged_process_attaches_to_an_idle_tap() {
    let ns = TestNetns::new();
    let pool = start(&ns, 1, TapSpec::default());
    let idle = warm(&pool, 1).await;
    let tap = idle[0].to_str().unwrap();

    // Opening /dev/net/tun is allowed (the child's own node is 0666); the
    // tap's owner, the pool's euid, is what refuses.
    assert_eq!(attach_as(&ns, tap, OWNER, GROUP), Err(Errno(libc::EPERM)));
    let link = ns.link(tap).expect("the idle tap is still there");
    assert!(
        !link_flags(&ns, tap).contains(&"LOWER_UP".to_owned()),
        "nobody is attached: {link}"
    );
    // The pool's own euid still may.
    drop(ns.attach(tap, true));
    assert_not_in_host(&[tap]);
}

async fn under_an_owner_that_uid_attaches_even_to_an_idle_tap() {
    let ns = TestNetns::new();
    let pool = start(&ns, 1, {
        let mut t = TapSpec::default();
        t.owner = Some(OWNER);
        t
    });
    let idle = warm(&pool, 1).await;
    let tap = idle[0].to_str().unwrap();

    // The pool does not guard its idle taps: ownership alone decides.
    assert_eq!(attach_as(&ns, tap, OWNER, GROUP), Ok(()));
    assert_eq!(
        attach_as(&ns, tap, STRANGER, GROUP),
        Err(Errno(libc::EPERM))
    );
    assert_not_in_host(&[tap]);
}

async fn with_owner_and_group_the_kernel_demands_both() {
    let ns = TestNetns::new();
    let pool = start(&ns, 1, {
        let mut t = TapSpec::default();
        t.owner = Some(STRANGER);
        t.group = Some(GROUP);
        t
    });
    let idle = warm(&pool, 1).await;
    let tap = idle[0].to_str().unwrap();
    let data = &ns.link(tap).expect("tap exists")["linkinfo"]["info_data"];
    assert_eq!(text(&data["user"]), STRANGER.to_string());
    assert_eq!(text(&data["group"]), GROUP.to_string());

    // The kernel refuses a group member who is not the owner, and the owner
    // outside the group. (Only kernels carrying "tun: fix group permission
    // check", reverted for 6.14 and in the stable branches, let either in.)
    assert_eq!(attach_as(&ns, tap, OWNER, GROUP), Err(Errno(libc::EPERM)));
    assert_eq!(
        attach_as(&ns, tap, STRANGER, OWNER),
        Err(Errno(libc::EPERM))
    );
    assert_eq!(attach_as(&ns, tap, STRANGER, GROUP), Ok(()));
    assert_not_in_host(&[tap]);
}

async fn with_only_a_group_its_members_attach() {
    let ns = TestNetns::new();
    let pool = start(&ns, 1, {
        let mut t = TapSpec::default();
        t.group = Some(GROUP);
        t
    });
    let idle = warm(&pool, 1).await;
    let tap = idle[0].to_str().unwrap();
    assert_eq!(attach_as(&ns, tap, OWNER, GROUP), Ok(()));
    assert_eq!(
        attach_as(&ns, tap, OWNER, STRANGER),
        Err(Errno(libc::EPERM))
    );
    assert_not_in_host(&[tap]);
}

/// The step of the unprivileged child that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    Done = 0,
    EnterNetns,
    CloseFds,
    UnshareMounts,
    MakeMountsPrivate,
    MountTmpfs,
    Mknod,
    SetGroups,
    SetGid,
    SetUid,
    OpenTun,
    SetIff,
}

pub(crate) const STEPS: [Step; 12] = [
    Step::Done,
    Step::EnterNetns,
    Step::CloseFds,
    Step::UnshareMounts,
    Step::MakeMountsPrivate,
    Step::MountTmpfs,
    Step::Mknod,
    Step::SetGroups,
    Step::SetGid,
    Step::SetUid,
    Step::OpenTun,
    Step::SetIff,
];

/// Attaches to `tap` the way Firecracker does, from a child process running
/// as `uid`/`gid` with no supplementary groups and no capabilities, inside
/// the test namespace. `Err` is what `TUNSETIFF` answered; a failure of any
/// earlier step panics, since it means the test's setup is broken.
///
/// The child is forked, not spawned: between `fork` and `_exit` it makes
/// only raw system calls (no allocation, no locks), with everything it needs
/// prepared by the parent beforehand. It exits on its own as soon as it has
/// answered, so its attachment ends with it.
pub(crate) fn attach_as(ns: &TestNetns, tap: &str, uid: u32, gid: u32) -> Result<(), Errno> {
    let Netns::Fd(netns) = ns.netns() else {
        unreachable!("TestNetns hands out its namespace as an fd")
    };
    // SAFETY: `ifreq` is plain old data; all zeroes is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    assert!(tap.len() < req.ifr_name.len(), "tap names fit in 15 bytes");
    for (dst, src) in req.ifr_name.iter_mut().zip(tap.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;

    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 just made these descriptors and nothing else owns them.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // SAFETY: the child runs only `unprivileged_attach`, which makes raw
    // system calls on memory prepared before the fork and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let mut tun = -1;
        let (step, errno) = unprivileged_attach(
            netns.as_raw_fd(),
            write_end.as_raw_fd(),
            uid,
            gid,
            &mut req,
            &mut tun,
        );
        let mut answer = [0u8; 5];
        answer[0] = step as u8;
        answer[1..].copy_from_slice(&errno.to_le_bytes());
        // SAFETY: `answer` is valid for reads of its length; `_exit` ends the
        // child without running the parent's destructors or atexit hooks.
        unsafe {
            libc::write(write_end.as_raw_fd(), answer.as_ptr().cast(), answer.len());
            libc::_exit(0);
        }
    }
    drop(write_end);
    let mut answer = [0u8; 5];
    let read = File::from(read_end).read_exact(&mut answer);
    let mut status = 0;
    // SAFETY: `pid` is our child and `status` is valid for writes.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child died: status {status:#x}"
    );
    read.expect("the child answers before it exits");
    let step = STEPS[answer[0] as usize];
    let errno = i32::from_le_bytes(answer[1..].try_into().unwrap());
    match step {
        Step::Done => Ok(()),
        Step::SetIff => Err(Errno(errno)),
        _ => panic!(
            "unprivileged child for {tap} failed at {step:?}: {:?}",
            Errno(errno)
        ),
    }
}

/// The forked child's work; returns the step that failed and its errno, or
/// `(Step::Done, 0)`, with the attached tun file in `tun_out`.
/// Async-signal-safe: raw system calls only.
pub(crate) fn unprivileged_attach(
    netns: libc::c_int,
    answer: libc::c_int,
    uid: u32,
    gid: u32,
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
    // Drop the copies of the parent's descriptors (other tests' taps and
    // pipes) that the fork gave us, so we keep nothing of theirs open.
    let answer = answer as libc::c_uint;
    if answer > 3 {
        check!(
            Step::CloseFds,
            libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, answer - 1, 0)
        );
    }
    check!(
        Step::CloseFds,
        libc::syscall(libc::SYS_close_range, answer + 1, libc::c_uint::MAX, 0)
    );
    check!(Step::UnshareMounts, libc::unshare(libc::CLONE_NEWNS));
    // Private before anything is mounted: a shared mount would carry the
    // tmpfs back to the host's mount namespace.
    check!(
        Step::MakeMountsPrivate,
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null()
        )
    );
    check!(
        Step::MountTmpfs,
        libc::mount(
            c"tmpfs".as_ptr(),
            c"/dev/net".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            c"mode=0755".as_ptr().cast()
        )
    );
    // SAFETY: umask cannot fail and touches no memory.
    unsafe { libc::umask(0) };
    check!(
        Step::Mknod,
        libc::mknod(
            c"/dev/net/tun".as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(10, 200)
        )
    );
    check!(Step::SetGroups, libc::setgroups(0, std::ptr::null()));
    check!(Step::SetGid, libc::setresgid(gid, gid, gid));
    // Leaving uid 0 for good clears every capability.
    check!(Step::SetUid, libc::setresuid(uid, uid, uid));
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
    (Step::Done, 0)
}
