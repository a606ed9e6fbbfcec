//! Logs and spans: what an operator sees. A layer of the test's own records
//! every span (with its parent, as the subscriber sees it) and every event,
//! from every thread: the kernel workers make their calls on threads of
//! their own. Each test finds its own records by a holder label or a thread
//! of its own, so the tests run in parallel.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use tap_pool_actors::kernel_api::{Kernel, KernelFactory, LinkWatcher};
use tap_pool_actors::sim::{Fault, SimKernel, SimOp};
use tap_pool_actors::{
    Acquire, Drain, Errno, KernelError, PoolConfig, Release, Released, Seed, Settle, TapPoolActor,
    Warm,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

type Fields = HashMap<String, String>;

#[derive(Clone, Debug)]
struct SpanRecord {
    name: &'static str,
    level: Level,
    fields: Fields,
    /// The parent's name and fields, as they were when this span was made.
    parent: Option<(&'static str, Fields)>,
}

#[derive(Clone, Debug)]
struct EventRecord {
    level: Level,
    thread: ThreadId,
    fields: Fields,
    /// The names of the spans it happened in, innermost first.
    spans: Vec<&'static str>,
}

impl EventRecord {
    fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Records {
    spans: Vec<SpanRecord>,
    events: Vec<EventRecord>,
}

/// Each span's fields, kept in its extensions to give to its children.
struct SpanFields(Fields);

struct Recorder(Arc<Mutex<Records>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().map(|p| {
            let fields = p
                .extensions()
                .get::<SpanFields>()
                .map(|f| f.0.clone())
                .unwrap_or_default();
            (p.name(), fields)
        });
        span.extensions_mut().insert(SpanFields(fields.clone()));
        self.0.lock().unwrap().spans.push(SpanRecord {
            name: attrs.metadata().name(),
            level: *attrs.metadata().level(),
            fields,
            parent,
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let spans = ctx
            .event_scope(event)
            .map(|scope| scope.map(|s| s.name()).collect())
            .unwrap_or_default();
        self.0.lock().unwrap().events.push(EventRecord {
            level: *event.metadata().level(),
            thread: std::thread::current().id(),
            fields,
            spans,
        });
    }
}

fn records() -> &'static Arc<Mutex<Records>> {
    static RECORDS: OnceLock<Arc<Mutex<Records>>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let records = Arc::new(Mutex::new(Records::default()));
        let subscriber = tracing_subscriber::registry().with(Recorder(Arc::clone(&records)));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        records
    })
}

/// The spans named `name` whose `holder` field is `holder` (as shown).
fn spans_of(name: &str, holder: &str) -> Vec<SpanRecord> {
    let records = records().lock().unwrap();
    records
        .spans
        .iter()
        .filter(|s| s.name == name && s.fields.get("holder").map(String::as_str) == Some(holder))
        .cloned()
        .collect()
}

/// The kernel span of operation `op` whose holder is `holder`.
fn kernel_span(op: &str, holder: &str) -> SpanRecord {
    let spans: Vec<SpanRecord> = spans_of("kernel", holder)
        .into_iter()
        .filter(|s| s.fields.get("op").map(String::as_str) == Some(op))
        .collect();
    match &spans[..] {
        [span] => span.clone(),
        other => panic!("one {op} kernel span for {holder}: {other:?}"),
    }
}

fn events_on(thread: ThreadId) -> Vec<EventRecord> {
    let records = records().lock().unwrap();
    records
        .events
        .iter()
        .filter(|e| e.thread == thread)
        .cloned()
        .collect()
}

fn pool(size: usize, kernel: SimKernel, prefix: &str) -> actix::Addr<TapPoolActor> {
    records();
    let mut config = PoolConfig::default();
    config.size = size;
    config.prefix = prefix.to_owned();
    TapPoolActor::builder(config)
        .kernel(Arc::new(kernel))
        .start()
        .unwrap()
}

#[actix::test]
async fn a_cold_acquires_create_is_a_kernel_span_under_the_acquire_with_its_holder() {
    // A pool of none: every Acquire creates, every Release deletes.
    let pool = pool(0, SimKernel::new(), "cold-");
    let acquire = Acquire::new("vm-cold")
        .unwrap()
        .holder("vm-7f3a-cold")
        .unwrap();
    let lease = pool.send(acquire).await.unwrap().unwrap().into_lease();

    let acquire_span = match &spans_of("acquire", "vm-7f3a-cold")[..] {
        [span] => span.clone(),
        other => panic!("one acquire span: {other:?}"),
    };
    assert_eq!(acquire_span.level, Level::DEBUG);
    assert_eq!(acquire_span.fields["fallback"], "vm-cold");
    let create = kernel_span("create", "vm-7f3a-cold");
    let (parent, parent_fields) = create.parent.expect("a parent");
    assert_eq!(parent, "acquire");
    assert_eq!(parent_fields, acquire_span.fields);

    // The release, and the delete it causes, name the holder too.
    assert_eq!(
        pool.send(Release::from(lease)).await.unwrap().unwrap(),
        Released::Deleted
    );
    let release = match &spans_of("release", "vm-7f3a-cold")[..] {
        [span] => span.clone(),
        other => panic!("one release span: {other:?}"),
    };
    let delete = kernel_span("delete", "vm-7f3a-cold");
    assert_eq!(delete.parent.expect("a parent").0, "release");
    assert_eq!(release.level, Level::DEBUG);
}

#[actix::test]
async fn a_released_taps_reset_and_its_warnings_name_its_last_holder() {
    let kernel = SimKernel::new();
    let pool = pool(1, kernel.clone(), "reset-");
    pool.send(Warm).await.unwrap();
    let acquire = Acquire::new("vm-r").unwrap().holder("vm-reset-1").unwrap();
    let lease = pool.send(acquire).await.unwrap().unwrap().into_lease();
    // Its reset fails: the tap is deleted instead, with a warning.
    kernel.inject(Fault::nth(SimOp::Reset, 1, libc::EIO));
    assert_eq!(
        pool.send(Release::from(lease)).await.unwrap().unwrap(),
        Released::Pooled
    );
    pool.send(Settle).await.unwrap().unwrap();

    let reset = kernel_span("reset", "vm-reset-1");
    assert_eq!(reset.parent.expect("a parent").0, "release");
    kernel_span("delete", "vm-reset-1");
    let thread = std::thread::current().id();
    let warned = events_on(thread).into_iter().any(|e| {
        e.level == Level::WARN && e.fields.get("holder").map(String::as_str) == Some("vm-reset-1")
    });
    assert!(warned, "a warning naming the holder");
    // The next lease of the same tap, unlabelled, names nobody.
    let lease = pool
        .send(Acquire::new("vm-r2").unwrap())
        .await
        .unwrap()
        .unwrap()
        .into_lease();
    pool.send(Release::from(lease)).await.unwrap().unwrap();
    pool.send(Settle).await.unwrap().unwrap();
    assert_eq!(
        spans_of("kernel", "vm-reset-1").len(),
        2,
        "only the reset and the delete"
    );
}

#[actix::test]
async fn a_holder_label_cannot_forge_a_log_line() {
    let pool = pool(0, SimKernel::new(), "forge-");
    let forged = "vm-9\n2026-01-01T00:00:00Z  INFO tap pool drained deleted=0";
    let acquire = Acquire::new("vm-forge").unwrap().holder(forged).unwrap();
    let lease = pool.send(acquire).await.unwrap().unwrap().into_lease();
    let shown = r"vm-9\n2026-01-01T00:00:00Z  INFO tap pool drained deleted=0";
    let create = kernel_span("create", shown);
    assert!(!create.fields["holder"].contains('\n'));
    pool.send(Release::from(lease)).await.unwrap().unwrap();
}

#[actix::test]
async fn start_seed_warm_up_and_drain_are_logged_at_info() {
    let kernel = SimKernel::new();
    let pool = pool(2, kernel, "life-");
    pool.send(Seed::default()).await.unwrap().unwrap();
    let warmed = pool.send(Warm).await.unwrap();
    assert_eq!(warmed.created.len(), 2);
    let drained = pool.send(Drain).await.unwrap();
    assert_eq!(drained.deleted, 2);

    // The pool runs on this thread: its events are this test's.
    let info: Vec<EventRecord> = events_on(std::thread::current().id())
        .into_iter()
        .filter(|e| e.level == Level::INFO)
        .collect();
    let find = |message: &str| -> EventRecord {
        match info.iter().find(|e| e.message() == message) {
            Some(event) => event.clone(),
            None => panic!("no info event {message:?} in {info:#?}"),
        }
    };
    let started = find("tap pool started");
    assert_eq!(started.fields["prefix"], "life-");
    assert_eq!(started.fields["size"], "2");
    let seeded = find("tap pool seeded");
    for count in ["held", "adopted", "deleted", "left_alone", "missing"] {
        assert_eq!(seeded.fields[count], "0", "{count}");
    }
    let warm = find("tap pool warm-up finished");
    assert_eq!(warm.fields["created"], "2");
    assert_eq!(warm.fields["failed"], "false");
    // Within the span of the message that caused it.
    assert_eq!(find("tap pool draining").spans, ["drain"]);
    let drained = find("tap pool drained");
    assert_eq!(drained.fields["deleted"], "2");
    assert_eq!(drained.fields["leased"], "0");
    // The message spans of the lifecycle are at info too.
    let records = records().lock().unwrap();
    for name in ["seed", "warm", "drain"] {
        assert!(
            records
                .spans
                .iter()
                .any(|s| s.name == name && s.level == Level::INFO),
            "{name}"
        );
    }
}

/// A kernel whose link watcher never opens (a helper that is down).
struct NoWatcher(SimKernel);

impl KernelFactory for NoWatcher {
    fn open(&self) -> Result<Box<dyn Kernel>, KernelError> {
        self.0.open()
    }

    fn watch(&self) -> Result<Box<dyn LinkWatcher>, KernelError> {
        Err(KernelError::Socket {
            errno: Errno(libc::ECONNREFUSED),
        })
    }
}

#[actix::test]
async fn a_watcher_that_cannot_open_warns_once_not_at_every_retry() {
    records();
    let mut config = PoolConfig::default();
    config.prefix = "nowatch-".to_owned();
    let pool = TapPoolActor::builder(config)
        .kernel(Arc::new(NoWatcher(SimKernel::new())))
        .start()
        .unwrap();
    let attempts = |level: Option<Level>| {
        records()
            .lock()
            .unwrap()
            .events
            .iter()
            .filter(|e| e.message().starts_with("cannot watch the kernel's links"))
            .filter(|e| level.is_none_or(|l| e.level == l))
            .count()
    };
    // It retries every second: three attempts, however long they take.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while attempts(None) < 3 {
        assert!(std::time::Instant::now() < deadline, "never retried");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(attempts(Some(Level::WARN)), 1, "one warning for one reason");
    drop(pool);
}
