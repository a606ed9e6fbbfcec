//! Serving connections: one thread per connection, each with its own
//! netlink socket inside the namespace its peer's rule names, and one
//! ledger for all.

use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::socket::{ControlMessage, MsgFlags, getsockopt, sendmsg, sockopt::PeerCredentials};
use tap_pool::helper::proto::{
    Answer, Call, ClientFrame, Closing, FrameError, PROTOCOL_VERSION, Response, ServerFrame,
    encode, read_frame, write_frame,
};
use tap_pool::linux::{LinuxLinkWatcher, enter};
use tap_pool::{
    Device, HelperFailure, Kernel, KernelError, LinkEvent, LinkSummary, LinkWatcher, LinuxKernel,
    Netns, Refusal, TapName,
};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::ledger::{Entry, Intent, Ledger, NsId};
use crate::policy::{Policy, Rule};

/// How long a new connection has to say hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often one connection may ask for netlink sockets: a client asks
/// once for its listings, and once on the connection its watcher opens; a
/// peer that asked without end would keep them in flight in its socket's
/// queue, uncounted against it.
const MAX_SOCKET_ASKS: u32 = 2;
/// How long an answer may wait on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the helper cannot start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// A rule's namespace cannot be opened.
    #[error("cannot open the namespace of peer rule {rule}")]
    Namespace {
        /// The rule's position.
        rule: usize,
        /// Why.
        #[source]
        source: KernelError,
    },
    /// The ledger, in the policy's `state_dir`, cannot be read or written.
    #[error("cannot use the ledger in {}", state_dir.display())]
    Ledger {
        /// The policy's `state_dir`.
        state_dir: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A namespace's taps cannot be listed to check the ledger against.
    #[error("cannot list the taps of a namespace to check the ledger")]
    List(#[source] KernelError),
    /// The thread that watches a namespace for taps removed cannot start.
    #[error("cannot start the thread that watches a namespace")]
    Watch(#[source] io::Error),
}

/// The helper: its policy, the namespaces it serves, its ledger.
#[derive(Debug)]
pub struct Helper {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    policy: Policy,
    /// Each rule's namespace (opened once) and its id.
    namespaces: Vec<(Option<Netns>, NsId)>,
    ledger: Mutex<Ledger>,
    connections: AtomicU32,
    /// Connections per rule.
    per_rule: Vec<AtomicU32>,
}

impl Helper {
    /// Opens each rule's namespace, reads the ledger and checks it against
    /// the taps each namespace holds, forgetting what is gone and settling
    /// creates cut short.
    ///
    /// # Errors
    /// [`StartError`].
    pub fn new(policy: Policy) -> Result<Helper, StartError> {
        let mut namespaces = Vec::new();
        for (rule, peer) in policy.peers.iter().enumerate() {
            let netns = peer
                .netns
                .as_ref()
                .map(|path| Netns::Path(path.clone()).open())
                .transpose()
                .map_err(|source| StartError::Namespace { rule, source })?;
            let id =
                ns_id(netns.as_ref()).map_err(|source| StartError::Namespace { rule, source })?;
            namespaces.push((netns, id));
        }
        let ledger_failed = |source| StartError::Ledger {
            state_dir: policy.state_dir.clone(),
            source,
        };
        let mut ledger = Ledger::open(&policy.state_dir).map_err(ledger_failed)?;
        let mut live = Vec::new();
        for (netns, id) in &namespaces {
            if live.contains(id) {
                continue;
            }
            live.push(*id);
            let taps = in_namespace(netns.as_ref(), |kernel| kernel.list_taps())
                .map_err(StartError::List)?;
            let (forgotten, found) = ledger.reconcile(*id, &taps);
            info!(
                ns = id,
                forgotten, found, "ledger checked against the namespace"
            );
        }
        ledger.keep_only(&live);
        ledger.compact().map_err(ledger_failed)?;
        info!(taps = ledger.entries().count(), "tap-pool-helper ready");
        let per_rule = policy.peers.iter().map(|_| AtomicU32::new(0)).collect();
        let shared = Arc::new(Shared {
            policy,
            namespaces,
            per_rule,
            ledger: Mutex::new(ledger),
            connections: AtomicU32::new(0),
        });
        let mut watched = Vec::new();
        for (netns, id) in &shared.namespaces {
            if watched.contains(id) {
                continue;
            }
            watched.push(*id);
            let (netns, id, shared) = (netns.clone(), *id, Arc::clone(&shared));
            std::thread::Builder::new()
                .name("tap-pool-helper-watch".into())
                .spawn(move || watch(&shared, netns.as_ref(), id))
                .map_err(StartError::Watch)?;
        }
        Ok(Helper { shared })
    }

    /// The taps in the ledger: (namespace, index, peer uid, name).
    pub fn taps(&self) -> Vec<(NsId, u32, u32, TapName)> {
        self.shared
            .ledger()
            .entries()
            .map(|e| (e.ns, e.index, e.uid, e.name))
            .collect()
    }

    /// Serves connections on `listener` until it fails, each on a thread
    /// of its own.
    ///
    /// # Errors
    /// `accept` failing for good (not `EINTR`, `ECONNABORTED`, `EMFILE`...
    /// which are waited out).
    pub fn serve(&self, listener: &UnixListener) -> io::Result<()> {
        loop {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if transient(&e) => {
                    warn!(error = %e, "accept failed; going on");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("tap-pool-helper-conn".into())
                .spawn(move || connection(&shared, stream));
            if let Err(e) = spawned {
                warn!(error = %e, "cannot start a connection's thread; dropping it");
            }
        }
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EINTR
                | libc::ECONNABORTED
                | libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EPROTO
        )
    )
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A thread that panicked holding it left it whole: each change is
        // one map operation and one line.
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The id of `netns`, or of this thread's namespace.
fn ns_id(netns: Option<&Netns>) -> Result<NsId, KernelError> {
    let fail = |e: io::Error| KernelError::Namespace {
        netns: netns.map_or_else(|| "the helper's own".to_owned(), ToString::to_string),
        errno: tap_pool::Errno::of(&e),
    };
    match netns {
        Some(Netns::Fd(fd)) => nix::sys::stat::fstat(fd.as_fd())
            .map(|st| st.st_ino)
            .map_err(|e| fail(e.into())),
        Some(Netns::Path(path)) => std::fs::metadata(path).map(|m| m.ino()).map_err(fail),
        None => std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| m.ino())
            .map_err(fail),
    }
}

/// Runs `f` on a kernel handle in `netns`, on a short-lived thread (entering
/// a namespace is for the thread's life).
fn in_namespace<T: Send + 'static>(
    netns: Option<&Netns>,
    f: impl FnOnce(&mut LinuxKernel) -> Result<T, KernelError> + Send + 'static,
) -> Result<T, KernelError> {
    let netns = netns.cloned();
    std::thread::spawn(move || {
        if let Some(netns) = &netns {
            enter(netns)?;
        }
        f(&mut LinuxKernel::open()?)
    })
    .join()
    .unwrap_or(Err(KernelError::Unanswered {
        op: "list (thread died)".into(),
    }))
}

/// Keeps the ledger's taps of namespace `ns` in line with it, for the
/// helper's life: a tap removed by anyone but the helper (its VMM turning
/// persistence off and closing its file, an operator, a move to another
/// namespace) is forgotten at once. Otherwise its slot stays taken
/// (`max_taps`) and its index stays the peer's, and a device that later
/// has that index (a device moved in from another namespace keeps its
/// index where it is free) would be the peer's to reset or delete.
fn watch(shared: &Shared, netns: Option<&Netns>, ns: NsId) {
    if let Some(netns) = netns
        && let Err(error) = enter(netns)
    {
        warn!(%error, ns, "cannot enter a namespace to watch it; taps removed there by others stay in the ledger until a restart");
        return;
    }
    loop {
        // Subscribed first, then listed: no removal falls in between.
        let watching = LinuxLinkWatcher::open_removals().and_then(|watcher| {
            forget_missing(shared, ns)?;
            Ok(watcher)
        });
        let mut watcher = match watching {
            Ok(watcher) => watcher,
            Err(error) => {
                warn!(%error, ns, "cannot watch a namespace; trying again");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        loop {
            let event = watcher.next_event();
            let handled = match event {
                Ok(Some(LinkEvent::Removed { index, .. })) => {
                    shared.ledger().gone(ns, index);
                    Ok(())
                }
                Ok(Some(LinkEvent::Resync)) => forget_missing(shared, ns),
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            };
            if let Err(error) = handled {
                warn!(%error, ns, "watching a namespace failed; watching it afresh");
                break;
            }
        }
    }
}

/// Forgets the taps of namespace `ns` (this thread's) that are no longer
/// there, the ledger held across the listing so that no tap made
/// meanwhile is forgotten.
fn forget_missing(shared: &Shared, ns: NsId) -> Result<(), KernelError> {
    let mut kernel = LinuxKernel::open()?;
    let mut ledger = shared.ledger();
    let taps = kernel.list_taps()?;
    ledger.forget_missing(ns, &taps);
    Ok(())
}

/// Counts a connection while it lives.
struct Counted<'a>(&'a AtomicU32);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection, from its handshake to its end.
fn connection(shared: &Shared, mut stream: UnixStream) {
    let count = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let _counted = Counted(&shared.connections);
    let cred = match getsockopt(&stream, PeerCredentials) {
        Ok(cred) => cred,
        Err(e) => {
            warn!(error = %e, "cannot read a peer's credentials; dropping it");
            return;
        }
    };
    let (uid, gid, pid) = (cred.uid(), cred.gid(), cred.pid());
    let span = tracing::info_span!("peer", uid, pid);
    let _entered = span.enter();
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let close = |stream: &mut UnixStream, closing: Closing| {
        let _ = write_frame(stream, &ServerFrame::Closing(closing));
    };
    let Some(rule_index) = shared.policy.rule_for(uid, gid) else {
        let refusal = Refusal::PeerNotAllowed { uid, gid };
        warn!(%refusal, "connection refused");
        close(&mut stream, Closing::Refused(refusal));
        return;
    };
    let rule_count = shared.per_rule[rule_index].fetch_add(1, Ordering::Relaxed) + 1;
    let _rule_counted = Counted(&shared.per_rule[rule_index]);
    let max_rule = shared.policy.peers[rule_index].max_connections;
    if count > shared.policy.max_connections || rule_count > max_rule {
        let refusal = Refusal::Busy {
            max: if rule_count > max_rule {
                max_rule
            } else {
                shared.policy.max_connections
            },
        };
        warn!(%refusal, "connection refused");
        close(&mut stream, Closing::Refused(refusal));
        return;
    }
    let mut buf = Vec::new();
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    match read_frame::<ClientFrame>(&mut stream, &mut buf) {
        Ok(ClientFrame::Hello { version }) if version == PROTOCOL_VERSION => {}
        Ok(ClientFrame::Hello { version }) => {
            let refusal = Refusal::Version {
                asked: version,
                supported: PROTOCOL_VERSION,
            };
            warn!(%refusal, "connection refused");
            close(&mut stream, Closing::Refused(refusal));
            return;
        }
        Ok(_) => {
            warn!("a connection did not begin with a hello; closed");
            close(
                &mut stream,
                Closing::Protocol("the first frame must be a hello".into()),
            );
            return;
        }
        Err(e) => {
            protocol_error(&mut stream, &e);
            return;
        }
    }
    let rule = &shared.policy.peers[rule_index];
    let (netns, ns) = &shared.namespaces[rule_index];
    if let Some(netns) = netns
        && let Err(e) = enter(netns)
    {
        warn!(error = %e, "cannot enter the peer's namespace");
        close(
            &mut stream,
            Closing::Protocol(format!("the helper failed: {e}")),
        );
        return;
    }
    let kernel = match LinuxKernel::open() {
        Ok(kernel) => kernel,
        Err(e) => {
            warn!(error = %e, "cannot open a netlink socket");
            close(
                &mut stream,
                Closing::Protocol(format!("the helper failed: {e}")),
            );
            return;
        }
    };
    let welcome = ServerFrame::Welcome {
        version: PROTOCOL_VERSION,
        uid,
        gid,
    };
    if write_frame(&mut stream, &welcome).is_err() {
        return;
    }
    debug!("connected");
    let _ = stream.set_read_timeout(None);
    let mut peer = Peer {
        shared,
        rule,
        ns: *ns,
        uid,
        kernel,
        sockets_asked: 0,
    };
    loop {
        let request = match read_frame::<ClientFrame>(&mut stream, &mut buf) {
            Ok(ClientFrame::Request(request)) => request,
            Ok(_) => {
                warn!("a second hello; closed");
                close(&mut stream, Closing::Protocol("a second hello".into()));
                return;
            }
            Err(FrameError::Closed) => {
                debug!("disconnected");
                return;
            }
            Err(e) => {
                protocol_error(&mut stream, &e);
                return;
            }
        };
        let op = request.call.name();
        let (result, fds, undo) = peer.serve(request.call);
        if let Err(KernelError::Refused { refusal, .. }) = &result {
            warn!(op, %refusal, "refused");
        }
        let response = ServerFrame::Response(Response {
            id: request.id,
            result,
        });
        if let Err(e) = send(&mut stream, &response, &fds) {
            debug!(op, error = %e, "the answer could not be sent");
            // A tap made for a caller that will never hear of it goes
            // again, so the pool cannot lose track of it.
            if let Some(entry) = undo {
                peer.take_back(&entry);
            }
            return;
        }
    }
}

fn protocol_error(stream: &mut UnixStream, error: &FrameError) {
    match error {
        FrameError::Io(e) => debug!(error = %e, "connection failed"),
        FrameError::Closed => {}
        error => {
            warn!(%error, "a client broke the protocol; its connection is closed");
            let closing = ServerFrame::Closing(Closing::Protocol(error.to_string()));
            let _ = write_frame(stream, &closing);
        }
    }
}

/// Writes `frame`, with `fds` (if any) as `SCM_RIGHTS` on its first byte.
fn send(stream: &mut UnixStream, frame: &ServerFrame, fds: &[OwnedFd]) -> io::Result<()> {
    let bytes = encode(frame).map_err(io::Error::other)?;
    if fds.is_empty() {
        return stream.write_all(&bytes);
    }
    let raw: Vec<_> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &rights,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    stream.write_all(&bytes[sent..])
}

/// One connected peer: its rule, namespace and kernel handle.
struct Peer<'a> {
    shared: &'a Shared,
    rule: &'a Rule,
    ns: NsId,
    uid: u32,
    kernel: LinuxKernel,
    /// How often this connection asked for netlink sockets.
    sockets_asked: u32,
}

type Served = (Result<Answer, KernelError>, Vec<OwnedFd>, Option<Entry>);

impl Peer<'_> {
    fn serve(&mut self, call: Call) -> Served {
        let op = call.name();
        let refused = |refusal| KernelError::Refused {
            op: op.into(),
            refusal,
        };
        let done =
            |result: Result<(), KernelError>| (result.map(|()| Answer::Done), Vec::new(), None);
        match call {
            Call::Create { name, spec, token } => {
                let checked = self
                    .rule
                    .check_name(&name)
                    .and_then(|()| self.rule.check_spec(self.uid, &spec));
                match checked {
                    Ok(spec) => self.create(name, &spec, token),
                    Err(refusal) => (Err(refused(refusal)), Vec::new(), None),
                }
            }
            Call::Reset { device, spec, mac } => done(self.own(op, device).and_then(|device| {
                let spec = self.rule.check_spec(self.uid, &spec).map_err(refused)?;
                self.kernel.reset_tap(device, &spec, mac)
            })),
            Call::Delete { device } => {
                done(self.own(op, device).and_then(|device| self.delete(device)))
            }
            Call::SetGroup { device, group } => done(self.own(op, device).and_then(|device| {
                self.rule.check_device_group(group).map_err(refused)?;
                self.kernel.set_device_group(device, group)
            })),
            Call::DeleteGroup { group } => done(self.delete_group(group)),
            Call::Abandon { name, token } => {
                let made = self
                    .shared
                    .ledger()
                    .by_name(self.ns, self.uid, name)
                    .filter(|entry| entry.token == token)
                    .cloned();
                if let Some(entry) = made {
                    self.take_back(&entry);
                }
                done(Ok(()))
            }
            Call::OpenNetlink { watch } => {
                self.sockets_asked += 1;
                if self.sockets_asked > MAX_SOCKET_ASKS {
                    let refusal = Refusal::Sockets {
                        max: MAX_SOCKET_ASKS,
                    };
                    return (Err(refused(refusal)), Vec::new(), None);
                }
                let fds = if watch {
                    LinuxLinkWatcher::open_sockets().map(Vec::from)
                } else {
                    LinuxKernel::open_socket().map(|fd| vec![fd])
                };
                match fds {
                    Ok(fds) => {
                        let n = u8::try_from(fds.len()).unwrap_or(u8::MAX);
                        (Ok(Answer::Sockets(n)), fds, None)
                    }
                    Err(e) => (Err(e), Vec::new(), None),
                }
            }
            _ => (
                Err(KernelError::Unanswered {
                    op: "unknown call".into(),
                }),
                Vec::new(),
                None,
            ),
        }
    }

    /// Makes the tap, written down before and after.
    fn create(&mut self, name: TapName, spec: &tap_pool::TapSpec, token: u64) -> Served {
        let refused = |refusal| KernelError::Refused {
            op: "create".into(),
            refusal,
        };
        let ledger_failed = |e: io::Error| KernelError::Helper {
            op: "create".into(),
            failure: HelperFailure::Ledger {
                errno: tap_pool::Errno::of(&e),
            },
        };
        {
            let mut ledger = self.shared.ledger();
            let max = self.rule.max_taps;
            if ledger.count(self.uid) >= max as usize {
                return (Err(refused(Refusal::Limit { max })), Vec::new(), None);
            }
            // A device of that name is not written down as intended: were
            // the helper to die before the create's `Exists` was written
            // down, its next start would settle the intent by name, owner
            // and persistence, and could take that device (a root
            // operator's tap owned by this peer, say) as the peer's. Only
            // root can make one between this look and the create.
            match self.kernel.index_of(name) {
                Ok(None) => {}
                Ok(Some(_)) => return (Err(KernelError::Exists { name }), Vec::new(), None),
                Err(e) => return (Err(e), Vec::new(), None),
            }
            let intent = Intent {
                ns: self.ns,
                uid: self.uid,
                name,
                token,
                owner: spec.owner,
                group: spec.group,
            };
            if let Err(e) = ledger.intend(intent) {
                warn!(error = %e, "cannot write to the ledger; no tap made");
                return (Err(ledger_failed(e)), Vec::new(), None);
            }
        }
        match self.kernel.create_tap(name, spec) {
            Ok(created) => {
                let entry = Entry {
                    ns: self.ns,
                    index: created.index,
                    uid: self.uid,
                    name,
                    token,
                };
                if let Err(e) = self.shared.ledger().made(entry.clone()) {
                    warn!(error = %e, "cannot write to the ledger; the tap goes again");
                    self.take_back(&entry);
                    return (Err(ledger_failed(e)), Vec::new(), None);
                }
                info!(tap = %name, index = created.index, "made");
                (Ok(Answer::Created(created)), Vec::new(), Some(entry))
            }
            Err(e) => {
                self.shared.ledger().dropped(self.ns, self.uid, name);
                (Err(e), Vec::new(), None)
            }
        }
    }

    /// Deletes a tap the helper made (for a create that will not be heard
    /// of), by index.
    fn take_back(&mut self, entry: &Entry) {
        match self.delete(Device::new(entry.name, entry.index)) {
            Ok(()) => info!(tap = %entry.name, index = entry.index, "taken back"),
            Err(error) => warn!(tap = %entry.name, %error, "cannot take a tap back"),
        }
    }

    /// `device`, with its index, if it is a tap the helper made for this
    /// peer in its namespace.
    fn own(&self, op: &'static str, device: Device) -> Result<Device, KernelError> {
        let ledger = self.shared.ledger();
        let entry = match device.index {
            Some(index) => ledger.get(self.ns, self.uid, index),
            None => ledger.by_name(self.ns, self.uid, device.name),
        };
        match entry {
            Some(entry) => Ok(Device::new(device.name, entry.index)),
            None => Err(KernelError::Refused {
                op: op.into(),
                refusal: Refusal::NotYours {
                    name: device.name,
                    index: device.index,
                },
            }),
        }
    }

    fn delete(&mut self, device: Device) -> Result<(), KernelError> {
        let result = self.kernel.delete_link(device);
        if let (
            Some(index),
            Ok(()) | Err(KernelError::NoSuchDevice { .. } | KernelError::NotATap { .. }),
        ) = (device.index, &result)
        {
            self.shared.ledger().gone(self.ns, index);
        }
        result
    }

    /// Deletes device group `group` if the rule gives it and every device
    /// in it is a tap the helper made for this peer.
    fn delete_group(&mut self, group: u32) -> Result<(), KernelError> {
        let refused = |refusal| KernelError::Refused {
            op: "delete_group".into(),
            refusal,
        };
        if group == 0 || !self.rule.device_groups.contains(&group) {
            return Err(refused(Refusal::DeviceGroup { group }));
        }
        let links = self.kernel.links()?;
        let members: Vec<_> = links
            .iter()
            .filter(|link| link.device_group == group)
            .collect();
        self.all_ours(group, &members).map_err(refused)?;
        if members.is_empty() {
            return Ok(());
        }
        // The checked members go to a group no device has, picked at
        // random, and that group is deleted: a device someone else puts in
        // `group` after the check is not deleted with them.
        let fresh = loop {
            let candidate = fastrand::u32(1..);
            if links.iter().all(|link| link.device_group != candidate) {
                break candidate;
            }
        };
        let mut moved = Vec::new();
        for link in &members {
            match self
                .kernel
                .set_device_group(Device::new(link.name, link.index), fresh)
            {
                Ok(()) => moved.push(*link),
                Err(error) if error.is_out_of_reach() => {
                    self.shared.ledger().gone(self.ns, link.index)
                }
                Err(error) => {
                    self.regroup(&moved, group);
                    return Err(error);
                }
            }
        }
        let strangers: Vec<_> = self
            .kernel
            .links()?
            .into_iter()
            .filter(|link| link.device_group == fresh)
            .collect();
        if let Err(refusal) = self.all_ours(group, &strangers.iter().collect::<Vec<_>>()) {
            self.regroup(&moved, group);
            return Err(refused(refusal));
        }
        let result = self.kernel.delete_group(fresh);
        match &result {
            // Written down as gone: those no longer there, as a listing
            // after the delete shows (another call of this peer's may have
            // moved some out of `fresh` meanwhile; the watcher writes down
            // the rest, and everything if this listing fails).
            Ok(()) => {
                if let Ok(after) = self.kernel.links() {
                    let mut ledger = self.shared.ledger();
                    for link in &moved {
                        if after.iter().all(|now| now.index != link.index) {
                            ledger.gone(self.ns, link.index);
                        }
                    }
                }
            }
            // Not deleted: back where the peer put them, not stranded in a
            // group only this call knew.
            Err(_) => self.regroup(&moved, group),
        }
        result
    }

    /// Whether every one of `members` (of device group `group`) is a tap
    /// the helper made for this peer.
    fn all_ours(&self, group: u32, members: &[&LinkSummary]) -> Result<(), Refusal> {
        let ledger = self.shared.ledger();
        match members
            .iter()
            .find(|link| ledger.get(self.ns, self.uid, link.index).is_none())
        {
            Some(stranger) => Err(Refusal::GroupNotYours {
                group,
                member: stranger.name,
            }),
            None => Ok(()),
        }
    }

    /// Puts `moved` back in `group` after a group delete gave up.
    fn regroup(&mut self, moved: &[&LinkSummary], group: u32) {
        for link in moved {
            if let Err(error) = self
                .kernel
                .set_device_group(Device::new(link.name, link.index), group)
            {
                warn!(tap = %link.name, %error, "cannot put a tap back in its device group");
            }
        }
    }
}
