//! Group commit for accepted webhooks: one committer takes every event
//! waiting, stores them in one transaction (one fsync), then answers each
//! request. Idle, a batch is one event and adds no wait; under load batches
//! grow with concurrency. A request is answered only after its batch has
//! committed.
//!
//! On an SQLite file the committer is a thread of its own with its own
//! connection ([`SqliteWriter`]): a batch costs one hand-off in and one
//! answer out per request, and nothing else crosses threads. On PostgreSQL
//! it is a task writing through the pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::store::{Checkpointer, Inserted, NewEvent, SqliteWriter, Store, StoreError};

/// Events committed together, at most.
const MAX_BATCH: usize = 512;

/// How often the SQLite log is checkpointed beside the committer (whose
/// commits do not wait for it).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);

/// The log's length, in 4 KiB frames, at which it is started over (about
/// 16 MiB; see [`SqliteWriter::restart_log`]).
const RESTART_FRAMES: i64 = 4096;

/// Frames the committer may be left to copy when it starts the log over:
/// the checkpointer copies again until what arrived during its last pass is
/// no more than this, so that the committer's pause is short.
const RESTART_LEFT: i64 = 256;

/// How often the committer logs how many webhooks it stored (each one is
/// logged at debug only).
const TALLY_EVERY: Duration = Duration::from_secs(10);

type Reply = oneshot::Sender<Result<Inserted, StoreError>>;
type Queue = mpsc::Receiver<(NewEvent, Reply)>;

/// Handle to the committer.
#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<(NewEvent, Reply)>,
}

impl Ingest {
    /// Starts the committer: a thread on an SQLite file, else a task on the
    /// current runtime.
    pub fn start(store: Arc<Store>) -> Result<Self, StoreError> {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        match store.sqlite_writer().transpose()? {
            Some(writer) => {
                let checkpointer = writer.checkpointer()?;
                let running = queue.downgrade();
                let restart = Arc::new(AtomicBool::new(false));
                let restart_asked = restart.clone();
                spawn("leadbridge-committer", move || {
                    commit_thread(writer, rx, &restart_asked)
                })?;
                spawn("leadbridge-checkpoint", move || {
                    checkpoint_thread(&checkpointer, &running, &restart)
                })?;
            }
            None => {
                tokio::spawn(commit_loop(store, rx));
            }
        }
        Ok(Self { queue })
    }

    /// Stores one event durably (with whatever else is waiting). A stopped
    /// committer is reported as the store being unavailable.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((event, reply))
            .await
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))
}

/// Checkpoints the log every [`CHECKPOINT_EVERY`] until the service stops
/// taking webhooks (`running` can no longer be upgraded). Once the log has
/// grown to [`RESTART_FRAMES`], it copies again until little is left, then
/// asks the committer to copy the rest and start the log over.
fn checkpoint_thread(
    checkpointer: &Checkpointer,
    running: &mpsc::WeakSender<(NewEvent, Reply)>,
    restart: &AtomicBool,
) {
    while running.upgrade().is_some() {
        std::thread::sleep(CHECKPOINT_EVERY);
        let mut log = match checkpointer.run() {
            Ok(log) => log,
            Err(e) => {
                checkpoint_failed(e);
                continue;
            }
        };
        if !log.needs_restart(RESTART_FRAMES) {
            continue;
        }
        // Each pass copies what was committed during the one before.
        for _ in 0..8 {
            match checkpointer.run() {
                Ok(next) if next.frames - log.frames > RESTART_LEFT => log = next,
                Ok(_) => break,
                Err(e) => {
                    checkpoint_failed(e);
                    break;
                }
            }
        }
        restart.store(true, Ordering::Relaxed);
    }
}

/// Commits batches until the service stops taking webhooks; between two
/// batches, once their requests are answered, it starts the log over when
/// the checkpointer asks.
fn commit_thread(mut writer: SqliteWriter, mut rx: Queue, restart: &AtomicBool) {
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
        let result = writer.insert_events(&events);
        match refused_alone(result, &events) {
            Ok(result) => tally.answer(replies, result),
            Err(_) => {
                for (event, reply) in events.iter().zip(replies) {
                    let one = writer.insert_events(std::slice::from_ref(event));
                    tally.answer_one(event, reply, one);
                }
            }
        }
        if restart.swap(false, Ordering::Relaxed) {
            if let Err(e) = writer.restart_log() {
                checkpoint_failed(e);
            }
        }
    }
}

fn checkpoint_failed(e: StoreError) {
    tracing::warn!(error = %e, "checkpointing the SQLite log failed; tried again later");
}

async fn commit_loop(store: Arc<Store>, mut rx: Queue) {
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<Reply>) = batch.drain(..).unzip();
        let result = insert_retrying(store.as_ref(), &events).await;
        match refused_alone(result, &events) {
            Ok(result) => tally.answer(replies, result),
            Err(_) => {
                for (event, reply) in events.iter().zip(replies) {
                    let one = insert_retrying(store.as_ref(), std::slice::from_ref(event)).await;
                    tally.answer_one(event, reply, one);
                }
            }
        }
    }
}

/// `Err` when the batch must be stored again one event at a time: one event
/// the database refuses must not fail its neighbours.
fn refused_alone(
    result: Result<Vec<Inserted>, StoreError>,
    events: &[NewEvent],
) -> Result<Result<Vec<Inserted>, StoreError>, ()> {
    match result {
        Err(StoreError::Rejected(_)) if events.len() > 1 => Err(()),
        other => Ok(other),
    }
}

/// Counts what was stored, for a log line every [`TALLY_EVERY`].
struct Tally {
    since: Instant,
    accepted: u64,
    duplicates: u64,
    batches: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            accepted: 0,
            duplicates: 0,
            batches: 0,
        }
    }
}

impl Tally {
    /// Answers a batch's requests with its result.
    fn answer(&mut self, replies: Vec<Reply>, result: Result<Vec<Inserted>, StoreError>) {
        match result {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    self.count(&answer);
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, events = replies.len(), "a batch of webhooks could not be stored");
                for reply in replies {
                    let _ = reply.send(Err(e.shared()));
                }
            }
        }
        self.batch_done();
    }

    /// Answers one request of a batch stored event by event.
    fn answer_one(
        &mut self,
        event: &NewEvent,
        reply: Reply,
        one: Result<Vec<Inserted>, StoreError>,
    ) {
        let one = one.map(|mut a| a.pop().expect("one answer per event"));
        match &one {
            Ok(answer) => self.count(answer),
            Err(e) => {
                tracing::warn!(error = %e, event_id = %event.id, "a webhook could not be stored")
            }
        }
        let _ = reply.send(one);
        self.batch_done();
    }

    fn count(&mut self, answer: &Inserted) {
        match answer {
            Inserted::Accepted => self.accepted += 1,
            Inserted::Duplicate { .. } => self.duplicates += 1,
        }
    }

    fn batch_done(&mut self) {
        self.batches += 1;
        let elapsed = self.since.elapsed();
        if elapsed >= TALLY_EVERY {
            if self.accepted + self.duplicates > 0 {
                tracing::info!(
                    accepted = self.accepted,
                    duplicates = self.duplicates,
                    commits = self.batches,
                    seconds = elapsed.as_secs(),
                    "webhooks stored"
                );
            }
            *self = Self::default();
        }
    }
}

/// Stores events in one transaction, running it again when the database
/// aborted it to resolve a deadlock with another writer.
pub async fn insert_retrying(
    store: &Store,
    events: &[NewEvent],
) -> Result<Vec<Inserted>, StoreError> {
    crate::store::retry_conflicts(|| store.insert_events(events)).await
}
