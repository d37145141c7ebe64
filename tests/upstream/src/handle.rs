//! The state shared by the routes and the [`Handle`] that reads and drives
//! it from the test's side.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Behavior, ControlRequest, Options};

/// A request received on an OpenAI route, as [`Handle::requests`] and
/// `GET /_requests` return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// The request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The body's `model`, when it has a string one.
    pub model: Option<String>,
    /// The `Authorization` header, when present and valid UTF-8.
    pub authorization: Option<String>,
    /// Every header as `(lowercase name, value)`, in the order received;
    /// values that are not UTF-8 are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The parsed JSON body; `null` for a GET or a body that is not JSON.
    pub body: Value,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// When one event of a streamed reply was written to the socket.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ChunkTiming {
    /// The event's index: 0 is the role chunk, `1..=n` the `n` content
    /// chunks, `n + 1` the chunk with `finish_reason`, then the usage chunk
    /// when asked for, and last `data: [DONE]`.
    pub index: usize,
    /// When the write that carried the event returned, in this process.
    #[serde(skip)]
    pub at: Instant,
    /// The same moment in nanoseconds since the Unix epoch, comparable
    /// across processes on this machine.
    pub unix_nanos: u64,
}

/// Counts and settings, as [`Handle::stats`], `GET /_stats` and
/// `POST /_control` return them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// [`Options::name`].
    pub name: String,
    /// The behaviour now (a `fail_next` shows the failures still to come).
    pub behavior: Behavior,
    /// Content chunks per reply.
    pub chunks: u32,
    /// Delay between stream events.
    pub chunk_delay_ms: u64,
    /// Whether requests are being recorded.
    pub record: bool,
    /// Requests received on the OpenAI routes, whatever they were answered
    /// (the same as [`Handle::request_count`]).
    pub requests: u64,
    /// Those requests per path.
    pub by_path: BTreeMap<String, u64>,
    /// Chat completion requests per `model` (`""` when it had none).
    pub by_model: BTreeMap<String, u64>,
    /// Responses per status code; hung and dropped requests have none.
    pub by_status: BTreeMap<u16, u64>,
    /// Streamed replies started.
    pub streams: u64,
    /// Connections dropped on purpose ([`Behavior::DropConnection`]).
    pub dropped: u64,
}

/// The settings a request reads when it arrives.
pub(crate) struct Control {
    pub behavior: Behavior,
    pub chunks: u32,
    pub chunk_delay_ms: u64,
}

/// Counters kept under one lock: a request takes it once when it arrives
/// and once when it is answered.
#[derive(Default)]
struct Counts {
    by_path: HashMap<&'static str, u64>,
    by_model: HashMap<String, u64>,
    by_status: BTreeMap<u16, u64>,
}

/// The chunk timings of one stream, filled as its events are written.
pub(crate) type StreamLog = Mutex<Vec<ChunkTiming>>;

pub(crate) struct Shared {
    pub name: String,
    pub models: Vec<String>,
    pub api_key: Option<String>,
    addr: SocketAddr,
    record: AtomicBool,
    control: Mutex<Control>,
    requests: Mutex<Vec<Recorded>>,
    total: AtomicU64,
    streams: AtomicU64,
    dropped: AtomicU64,
    next_id: AtomicU64,
    counts: Mutex<Counts>,
    last_stream: Mutex<Arc<StreamLog>>,
    all_streams: Mutex<Vec<Arc<StreamLog>>>,
}

/// Locks `m`; a panic elsewhere while it was held leaves data that is still
/// fine to read (counters and lists), so poisoning is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Shared {
    pub fn new(options: Options, addr: SocketAddr) -> Shared {
        Shared {
            name: options.name,
            models: options.models,
            api_key: options.api_key,
            addr,
            record: AtomicBool::new(options.record),
            control: Mutex::new(Control {
                behavior: Behavior::Healthy,
                chunks: options.chunks,
                chunk_delay_ms: options.chunk_delay_ms,
            }),
            requests: Mutex::default(),
            total: AtomicU64::new(0),
            streams: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            counts: Mutex::default(),
            last_stream: Mutex::default(),
            all_streams: Mutex::default(),
        }
    }

    /// Counts a request on an OpenAI route and records it when recording;
    /// `make` builds the record only then.
    pub fn received(
        &self,
        path: &'static str,
        model: Option<&str>,
        make: impl FnOnce() -> Recorded,
    ) {
        self.total.fetch_add(1, Ordering::Relaxed);
        {
            let mut c = lock(&self.counts);
            *c.by_path.entry(path).or_default() += 1;
            if path == crate::openai::CHAT {
                let model = model.unwrap_or_default();
                match c.by_model.get_mut(model) {
                    Some(n) => *n += 1,
                    None => {
                        c.by_model.insert(model.to_string(), 1);
                    }
                }
            }
        }
        if self.record.load(Ordering::Relaxed) {
            let r = make();
            lock(&self.requests).push(r);
        }
    }

    /// Counts a response by status.
    pub fn answered(&self, status: u16) {
        *lock(&self.counts).by_status.entry(status).or_default() += 1;
    }

    /// Counts a connection dropped on purpose.
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The behaviour for the request arriving now, and the stream settings:
    /// a `fail_next` is used up by one.
    pub fn take_behavior(&self) -> (Behavior, u32, u64) {
        let mut c = lock(&self.control);
        let behavior = match c.behavior {
            Behavior::FailNext { count, status } => {
                c.behavior = if count > 1 {
                    Behavior::FailNext {
                        count: count - 1,
                        status,
                    }
                } else {
                    Behavior::Healthy
                };
                if count > 0 {
                    Behavior::Fail { status }
                } else {
                    Behavior::Healthy
                }
            }
            ref b => b.clone(),
        };
        (behavior, c.chunks, c.chunk_delay_ms)
    }

    /// A new completion id, unique in this upstream's life.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A log for a stream starting now, which becomes the last stream.
    pub fn stream_started(&self) -> Arc<StreamLog> {
        self.streams.fetch_add(1, Ordering::Relaxed);
        let log = Arc::new(StreamLog::default());
        *lock(&self.last_stream) = log.clone();
        if self.record.load(Ordering::Relaxed) {
            lock(&self.all_streams).push(log.clone());
        }
        log
    }
}

/// Drives a running upstream from the same process. Cheap to clone; every
/// clone drives the same upstream.
#[derive(Clone)]
pub struct Handle(pub(crate) Arc<Shared>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("name", &self.0.name)
            .field("addr", &self.0.addr)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// The address the upstream listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.0.addr)
    }

    /// Changes how it answers, from the next request on.
    pub fn set(&self, behavior: Behavior) {
        lock(&self.0.control).behavior = behavior;
    }

    /// How it answers now.
    pub fn behavior(&self) -> Behavior {
        lock(&self.0.control).behavior.clone()
    }

    /// Changes the number of content chunks (words) per reply and the delay
    /// before every stream event after the first, from the next request on.
    pub fn set_stream(&self, chunks: u32, chunk_delay_ms: u64) {
        let mut c = lock(&self.0.control);
        c.chunks = chunks;
        c.chunk_delay_ms = chunk_delay_ms;
    }

    /// Turns recording of requests and stream timings on or off.
    pub fn set_record(&self, record: bool) {
        self.0.record.store(record, Ordering::Relaxed);
    }

    /// Applies a control request as `POST /_control` does, and returns the
    /// stats after it. Fails, changing nothing, when a failure status in it
    /// is not 400 to 599.
    pub fn control(&self, request: ControlRequest) -> crate::Result<Stats> {
        request.validate()?;
        if request.clear {
            self.clear();
        }
        if let Some(record) = request.record {
            self.set_record(record);
        }
        {
            let mut c = lock(&self.0.control);
            if let Some(b) = request.behavior {
                c.behavior = b;
            }
            if let Some(n) = request.chunks {
                c.chunks = n;
            }
            if let Some(d) = request.chunk_delay_ms {
                c.chunk_delay_ms = d;
            }
        }
        Ok(self.stats())
    }

    /// The requests received on the OpenAI routes since the last
    /// [`Handle::clear`], oldest first, while recording was on.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.0.requests).clone()
    }

    /// Requests received on the OpenAI routes since the last
    /// [`Handle::clear`], recorded or not, whatever they were answered
    /// (including hung, dropped and unauthorized ones).
    pub fn request_count(&self) -> u64 {
        self.0.total.load(Ordering::Relaxed)
    }

    /// Forgets the requests, counts and stream timings so far; the
    /// behaviour and stream settings stay.
    pub fn clear(&self) {
        lock(&self.0.requests).clear();
        lock(&self.0.all_streams).clear();
        *lock(&self.0.last_stream) = Arc::default();
        *lock(&self.0.counts) = Counts::default();
        self.0.total.store(0, Ordering::Relaxed);
        self.0.streams.store(0, Ordering::Relaxed);
        self.0.dropped.store(0, Ordering::Relaxed);
    }

    /// When each event of the most recently started streamed reply was
    /// written, in event order; events not written yet (or never, when the
    /// client went away) are missing. Kept whether recording or not.
    pub fn last_stream_timings(&self) -> Vec<ChunkTiming> {
        let log = lock(&self.0.last_stream).clone();
        lock(&log).clone()
    }

    /// The timings of every streamed reply since the last
    /// [`Handle::clear`], in the order they started, while recording was on.
    pub fn stream_timings(&self) -> Vec<Vec<ChunkTiming>> {
        let logs = lock(&self.0.all_streams).clone();
        logs.iter().map(|log| lock(log).clone()).collect()
    }

    /// Counts and settings now.
    pub fn stats(&self) -> Stats {
        let s = &self.0;
        let (behavior, chunks, chunk_delay_ms) = {
            let c = lock(&s.control);
            (c.behavior.clone(), c.chunks, c.chunk_delay_ms)
        };
        let (by_path, by_model, by_status) = {
            let c = lock(&s.counts);
            (
                c.by_path
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), *v))
                    .collect(),
                c.by_model.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                c.by_status.clone(),
            )
        };
        Stats {
            name: s.name.clone(),
            behavior,
            chunks,
            chunk_delay_ms,
            record: s.record.load(Ordering::Relaxed),
            requests: s.total.load(Ordering::Relaxed),
            by_path,
            by_model,
            by_status,
            streams: s.streams.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
        }
    }
}
