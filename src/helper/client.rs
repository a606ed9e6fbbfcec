//! The client side: a [`Kernel`] whose changes are made by
//! `tap-pool-helper`.

use std::collections::VecDeque;
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

use super::proto::{
    Answer, Call, ClientFrame, Closing, FrameError, PROTOCOL_VERSION, Request, ServerFrame,
    read_frame, write_frame,
};
use crate::kernel::{
    CreatedTap, Device, Errno, Kernel, KernelError, KernelFactory, LinkInfo, LinkWatcher, TapSpec,
};
use crate::linux::{LinuxKernel, LinuxLinkWatcher};
use crate::name::TapName;
use crate::probe::ProbeError;
use crate::refusal::{HelperFailure, Refusal};

/// How long a call waits for the helper's answer by default. A group delete
/// of a thousand taps takes about a second; a create, well under one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest pause between connects while the helper is busy and no
/// connection of the factory's comes back.
const MAX_BUSY_PAUSE: Duration = Duration::from_secs(1);

/// How many sockets one answer may carry.
const MAX_FDS: usize = 2;

/// Opens [`HelperKernel`]s: the kernel of a pool that runs without
/// privilege, its taps made, reset and deleted by `tap-pool-helper`.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use tap_pool::helper::HelperKernelFactory;
/// let kernel = Arc::new(HelperKernelFactory::new("/run/tap-pool-helper.sock"));
/// // PoolBuilder::kernel(kernel) in tap-pool-actors: the pool is unchanged.
/// # let _ = kernel;
/// ```
///
/// The kernels a factory opens (one per kernel worker) share its
/// connections: a call takes an idle one, or makes one, and gives it back
/// when answered. So a pool holds as many connections as it has calls in
/// flight at once, never one per worker for good. When the helper is busy
/// (its policy's `max_connections`, [`Refusal::Busy`]), a call waits for a
/// connection of the factory's to come back, or for the helper to take a
/// new one, up to the [`timeout`](Self::timeout). The link watcher and the listings read
/// netlink sockets the helper opened in the namespace its policy gives this
/// user, and handed over (reading links needs no privilege; see
/// [`Call::OpenNetlink`]). Clones share the connections.
#[derive(Clone, Debug)]
pub struct HelperKernelFactory {
    path: PathBuf,
    timeout: Duration,
    conns: Arc<Connections>,
}

/// A factory's connections: those idle, and how many calls hold one.
#[derive(Debug, Default)]
struct Connections {
    state: Mutex<Idle>,
    returned: Condvar,
}

#[derive(Debug, Default)]
struct Idle {
    conns: Vec<Conn>,
    /// Connections held by calls.
    out: usize,
    /// How many held connections were closed rather than given back: a
    /// change means the helper may take a new one.
    closed: u64,
}

impl HelperKernelFactory {
    /// A factory connecting to the helper's socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> HelperKernelFactory {
        HelperKernelFactory {
            path: path.into(),
            timeout: DEFAULT_TIMEOUT,
            conns: Arc::default(),
        }
    }

    /// How long a call waits for its answer before the connection is
    /// dropped and the call fails with [`HelperFailure::Timeout`] (default
    /// [`DEFAULT_TIMEOUT`]). Zero is taken as one millisecond.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> HelperKernelFactory {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The helper's socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connects to the helper now and shakes hands. The connection is
    /// kept among the factory's idle ones, for the kernel's first call.
    ///
    /// # Errors
    /// [`KernelError::Helper`] when the socket does not take the
    /// connection or the handshake fails; [`KernelError::Refused`] when the
    /// helper's policy does not let this uid in ([`Refusal::PeerNotAllowed`](crate::Refusal::PeerNotAllowed))
    /// or it speaks another version.
    pub fn connect(&self) -> Result<HelperKernel, KernelError> {
        self.kernel(true)
    }

    /// A kernel, with a connection ready: a new one if `fresh`, else an
    /// idle one if there is one.
    fn kernel(&self, fresh: bool) -> Result<HelperKernel, KernelError> {
        let conn = self.checkout("connect", fresh)?;
        self.checkin(Some(conn));
        Ok(HelperKernel {
            factory: self.clone(),
            next_id: 1,
            reads: None,
            abandons: Vec::new(),
        })
    }

    fn idle(&self) -> MutexGuard<'_, Idle> {
        // Each change under the lock is one push, pop or count.
        self.conns
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection for one call: an idle one (unless `fresh`), or a new
    /// one; when the helper is busy and calls of this factory hold
    /// connections, the first of theirs given back, up to the timeout.
    fn checkout(&self, op: &'static str, fresh: bool) -> Result<Conn, KernelError> {
        let mut idle = self.idle();
        while !fresh && let Some(conn) = idle.conns.pop() {
            // One the helper closed while it lay idle (it restarted) is
            // dropped here, not failed on by the next call.
            if conn.closed_by_helper() {
                continue;
            }
            idle.out += 1;
            return Ok(conn);
        }
        idle.out += 1;
        let mut closed = idle.closed;
        drop(idle);
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            let busy = match Conn::connect(self, op) {
                Ok(conn) => return Ok(conn),
                Err(
                    error @ KernelError::Refused {
                        refusal: Refusal::Busy { .. },
                        ..
                    },
                ) => error,
                Err(error) => {
                    self.checkin(None);
                    return Err(error);
                }
            };
            let mut idle = self.idle();
            loop {
                if let Some(conn) = idle.conns.pop() {
                    return Ok(conn);
                }
                let now = Instant::now();
                if now >= deadline {
                    drop(idle);
                    self.checkin(None);
                    return Err(busy);
                }
                if idle.closed != closed {
                    // One of ours closed: the helper may take a new one.
                    closed = idle.closed;
                    break;
                }
                // The helper counts a connection until its thread ends,
                // which is after the client saw it close (a refused one
                // too): connect again after a pause, if nothing comes back.
                let (guard, waited) = self
                    .conns
                    .returned
                    .wait_timeout(idle, pause.min(deadline - now))
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                idle = guard;
                if waited.timed_out() {
                    pause = (pause * 2).min(MAX_BUSY_PAUSE);
                    break;
                }
            }
        }
    }

    /// Gives a connection back after a call, or `None` for one closed.
    fn checkin(&self, conn: Option<Conn>) {
        let mut idle = self.idle();
        idle.out = idle.out.saturating_sub(1);
        match conn {
            Some(conn) => idle.conns.push(conn),
            None => idle.closed += 1,
        }
        drop(idle);
        self.conns.returned.notify_one();
    }
}

impl KernelFactory for HelperKernelFactory {
    /// A kernel whose first call may take a connection another kernel of
    /// this factory made.
    fn open(&self) -> Result<Box<dyn Kernel>, KernelError> {
        Ok(Box::new(self.kernel(false)?))
    }

    /// A [`LinuxLinkWatcher`] on the two sockets the helper opens for it.
    fn watch(&self) -> Result<Box<dyn LinkWatcher>, KernelError> {
        let mut kernel = self.connect()?;
        let mut sockets = kernel.open_netlink(true)?.into_iter();
        match (sockets.next(), sockets.next()) {
            (Some(subscribed), Some(dumps)) => {
                Ok(Box::new(LinuxLinkWatcher::from_sockets(subscribed, dumps)?))
            }
            _ => Err(protocol("open_netlink", "fewer sockets than asked for")),
        }
    }

    /// Connects and shakes hands: the helper is there and lets this uid in.
    fn probe(&self) -> Result<(), ProbeError> {
        self.connect().map(drop).map_err(ProbeError::Helper)
    }
}

/// A [`Kernel`] whose every change is a call to `tap-pool-helper`, and
/// whose listings read a netlink socket the helper handed over.
///
/// Each call takes a connection of its factory's (see
/// [`HelperKernelFactory`]); one that breaks is dropped, and the call that
/// was in flight on it fails with [`KernelError::Helper`] (the pool
/// retries as for any failed kernel call). A create whose answer was lost
/// is taken back: the helper is asked, on the next connection, to delete
/// the tap if that create made it, so no tap is left that the pool does
/// not know.
#[derive(Debug)]
pub struct HelperKernel {
    factory: HelperKernelFactory,
    next_id: u64,
    /// A handle on the listing socket the helper handed over.
    reads: Option<LinuxKernel>,
    /// Creates whose answers were lost: their names and tokens.
    abandons: Vec<(TapName, u64)>,
}

impl HelperKernel {
    /// A connection of the factory's (a new one if `fresh`), creates whose
    /// answers were lost taken back on it first.
    fn connection(&mut self, op: &'static str, fresh: bool) -> Result<Conn, KernelError> {
        let mut conn = self.factory.checkout(op, fresh)?;
        if self.take_back(&mut conn) {
            Ok(conn)
        } else {
            self.factory.checkin(None);
            Err(KernelError::Helper {
                op: op.into(),
                failure: HelperFailure::Closed,
            })
        }
    }

    /// Asks the helper to delete what each create whose answer was lost
    /// made; false if the connection broke.
    fn take_back(&mut self, conn: &mut Conn) -> bool {
        while let Some(&(name, token)) = self.abandons.first() {
            let id = self.next_id;
            self.next_id += 1;
            match conn.exchange(id, Call::Abandon { name, token }) {
                Ok(Ok(_)) => {
                    tracing::debug!(tap = %name, "a create whose answer was lost is taken back");
                    self.abandons.remove(0);
                }
                Ok(Err(error)) => {
                    tracing::warn!(tap = %name, %error, "the helper would not take back a create whose answer was lost; the next Seed finds the tap if it was made");
                    self.abandons.remove(0);
                }
                Err(failure) => {
                    tracing::debug!(tap = %name, %failure, "could not take back a lost create yet");
                    return false;
                }
            }
        }
        true
    }

    /// Puts `call` to the helper, on a new connection if `fresh`, and waits
    /// for its answer.
    fn call_on(&mut self, call: Call, fresh: bool) -> Result<(Answer, Vec<OwnedFd>), KernelError> {
        let op = call.name();
        let mut conn = self.connection(op, fresh)?;
        let id = self.next_id;
        self.next_id += 1;
        let (result, healthy) = match conn.exchange(id, call) {
            Ok(Ok(answer @ Answer::Sockets(n))) => match conn.take_fds(usize::from(n)) {
                Some(fds) => (Ok((answer, fds)), true),
                None => (Err(protocol(op, "an answer without its sockets")), false),
            },
            Ok(Ok(answer)) => (Ok((answer, Vec::new())), true),
            // A connection that asked for sockets as often as the helper
            // lets one is closed, not shared again: the next ask gets a
            // new one, whose slot this one gives up.
            Ok(Err(
                error @ KernelError::Refused {
                    refusal: Refusal::Sockets { .. },
                    ..
                },
            )) => (Err(error), false),
            Ok(Err(error)) => (Err(error), true),
            Err(failure) => (
                Err(KernelError::Helper {
                    op: op.into(),
                    failure,
                }),
                false,
            ),
        };
        self.factory.checkin(healthy.then_some(conn));
        result
    }

    fn call(&mut self, call: Call) -> Result<(Answer, Vec<OwnedFd>), KernelError> {
        self.call_on(call, false)
    }

    /// Sockets the helper opens in this peer's namespace.
    fn open_netlink(&mut self, watch: bool) -> Result<Vec<OwnedFd>, KernelError> {
        let answer = match self.call_on(Call::OpenNetlink { watch }, false) {
            // That connection asked as often as the helper lets one (for
            // other kernels of the factory, or listings that failed
            // before): a new one may ask again.
            Err(KernelError::Refused {
                refusal: Refusal::Sockets { .. },
                ..
            }) => self.call_on(Call::OpenNetlink { watch }, true)?,
            answer => answer?,
        };
        match answer {
            (Answer::Sockets(_), fds) if fds.len() == if watch { 2 } else { 1 } => Ok(fds),
            _ => Err(protocol(
                "open_netlink",
                "an answer that is not the sockets",
            )),
        }
    }

    /// The handle listings go through.
    fn reads(&mut self) -> Result<&mut LinuxKernel, KernelError> {
        if self.reads.is_none() {
            let socket = self
                .open_netlink(false)?
                .into_iter()
                .next()
                .ok_or_else(|| protocol("open_netlink", "no socket"))?;
            self.reads = Some(LinuxKernel::from_socket(socket));
        }
        self.reads
            .as_mut()
            .ok_or_else(|| protocol("open_netlink", "no socket"))
    }

    fn done(&mut self, call: Call) -> Result<(), KernelError> {
        let op = call.name();
        match self.call(call)? {
            (Answer::Done, _) => Ok(()),
            _ => Err(protocol(op, "an answer that does not fit the call")),
        }
    }
}

impl Kernel for HelperKernel {
    fn create_tap(&mut self, name: TapName, spec: &TapSpec) -> Result<CreatedTap, KernelError> {
        let token = fastrand::u64(..);
        let result = self.call(Call::Create {
            name,
            spec: *spec,
            token,
        });
        match result {
            Ok((Answer::Created(created), _)) => Ok(created),
            Ok(_) => Err(protocol("create", "an answer that does not fit the call")),
            // Never sent: no connection was made for it.
            Err(
                error @ KernelError::Helper {
                    failure: HelperFailure::Connect { .. },
                    ..
                },
            ) => Err(error),
            Err(error @ KernelError::Helper { .. }) => {
                // The helper may have made it: take it back now, or on the
                // next connection.
                self.abandons.push((name, token));
                if let Ok(conn) = self.connection("abandon", false) {
                    self.factory.checkin(Some(conn));
                }
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    fn delete_link(&mut self, device: Device) -> Result<(), KernelError> {
        self.done(Call::Delete { device })
    }

    fn list_taps(&mut self) -> Result<Vec<LinkInfo>, KernelError> {
        let result = self.reads()?.list_taps();
        if result.is_err() {
            self.reads = None;
        }
        result
    }

    fn reset_tap(
        &mut self,
        device: Device,
        spec: &TapSpec,
        mac: [u8; 6],
    ) -> Result<(), KernelError> {
        self.done(Call::Reset {
            device,
            spec: *spec,
            mac,
        })
    }

    fn set_device_group(&mut self, device: Device, group: u32) -> Result<(), KernelError> {
        self.done(Call::SetGroup { device, group })
    }

    fn list_group(&mut self, group: u32) -> Result<Vec<TapName>, KernelError> {
        let result = self.reads()?.list_group(group);
        if result.is_err() {
            self.reads = None;
        }
        result
    }

    fn delete_group(&mut self, group: u32) -> Result<(), KernelError> {
        self.done(Call::DeleteGroup { group })
    }
}

impl Drop for HelperKernel {
    fn drop(&mut self) {
        if !self.abandons.is_empty()
            && let Ok(conn) = self.connection("abandon", false)
        {
            self.factory.checkin(Some(conn));
        }
    }
}

fn protocol(op: &'static str, what: &str) -> KernelError {
    KernelError::Helper {
        op: op.into(),
        failure: HelperFailure::Protocol(what.to_owned()),
    }
}

/// One connection to the helper, past its handshake.
#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    /// Sockets received and not yet claimed by an answer.
    fds: VecDeque<OwnedFd>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    /// Whether the helper closed this idle connection (or sent on it
    /// unasked, which the protocol does not allow): a peek that does not
    /// wait.
    fn closed_by_helper(&self) -> bool {
        let mut byte = [0u8; 1];
        !matches!(
            nix::sys::socket::recv(
                self.stream.as_raw_fd(),
                &mut byte,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ),
            Err(nix::errno::Errno::EAGAIN)
        )
    }

    fn connect(factory: &HelperKernelFactory, op: &'static str) -> Result<Conn, KernelError> {
        let fail = |failure| KernelError::Helper {
            op: op.into(),
            failure,
        };
        let stream = UnixStream::connect(&factory.path).map_err(|e| {
            fail(HelperFailure::Connect {
                path: factory.path.display().to_string(),
                errno: Errno::of(&e),
            })
        })?;
        let io = |e: io::Error| {
            fail(HelperFailure::Io {
                errno: Errno::of(&e),
            })
        };
        stream.set_read_timeout(Some(factory.timeout)).map_err(io)?;
        stream
            .set_write_timeout(Some(factory.timeout))
            .map_err(io)?;
        let mut conn = Conn {
            stream,
            fds: VecDeque::new(),
            buf: Vec::new(),
            timeout: factory.timeout,
        };
        let hello = ClientFrame::Hello {
            version: PROTOCOL_VERSION,
        };
        write_frame(&mut conn.stream, &hello).map_err(|e| fail(conn.failure(e)))?;
        match conn.read() {
            Ok(ServerFrame::Welcome { version, .. }) if version == PROTOCOL_VERSION => Ok(conn),
            Ok(ServerFrame::Welcome { version, .. }) => Err(fail(HelperFailure::Protocol(
                format!("the helper chose version {version}"),
            ))),
            Ok(ServerFrame::Closing(Closing::Refused(refusal))) => Err(KernelError::Refused {
                op: op.into(),
                refusal,
            }),
            Ok(ServerFrame::Closing(Closing::Protocol(why))) => {
                Err(fail(HelperFailure::Protocol(why)))
            }
            Ok(_) => Err(fail(HelperFailure::Protocol(
                "an answer before the welcome".to_owned(),
            ))),
            Err(e) => Err(fail(conn.failure(e))),
        }
    }

    /// Sends `call` as request `id` and reads its answer: the call's own
    /// result, or why the connection is no good any more.
    fn exchange(
        &mut self,
        id: u64,
        call: Call,
    ) -> Result<Result<Answer, KernelError>, HelperFailure> {
        let request = ClientFrame::Request(Request { id, call });
        write_frame(&mut self.stream, &request).map_err(|e| self.failure(e))?;
        match self.read().map_err(|e| self.failure(e))? {
            ServerFrame::Response(response) if response.id == id => Ok(response.result),
            ServerFrame::Response(response) => Err(HelperFailure::Protocol(format!(
                "the answer to request {} came for request {id}",
                response.id
            ))),
            ServerFrame::Closing(Closing::Protocol(why)) => Err(HelperFailure::Protocol(why)),
            ServerFrame::Closing(_) => Err(HelperFailure::Closed),
            ServerFrame::Welcome { .. } => {
                Err(HelperFailure::Protocol("a second welcome".to_owned()))
            }
        }
    }

    fn read(&mut self) -> Result<ServerFrame, FrameError> {
        let mut buf = std::mem::take(&mut self.buf);
        let frame = read_frame(self, &mut buf);
        self.buf = buf;
        frame
    }

    fn take_fds(&mut self, n: usize) -> Option<Vec<OwnedFd>> {
        (self.fds.len() >= n).then(|| self.fds.drain(..n).collect())
    }

    fn failure(&self, error: FrameError) -> HelperFailure {
        match error {
            FrameError::Closed => HelperFailure::Closed,
            FrameError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                HelperFailure::Timeout {
                    millis: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                }
            }
            FrameError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => HelperFailure::Closed,
            FrameError::Io(e) => HelperFailure::Io {
                errno: Errno::of(&e),
            },
            error => HelperFailure::Protocol(error.to_string()),
        }
    }
}

/// Reads go through `recvmsg`, keeping any sockets that come along.
impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let bytes = msg.bytes;
        let cmsgs = msg.cmsgs().map_err(io::Error::from)?;
        for cmsg in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for fd in fds {
                    // SAFETY: the kernel just installed this descriptor in
                    // this process for us; nothing else owns it.
                    self.fds.push_back(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(io::Error::other("more sockets than the protocol allows"));
        }
        Ok(bytes)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
