//! The webhook committer's own SQLite connection: opened once, owned by one
//! thread, statements prepared once. A batch is one transaction of plain
//! in-process calls (no channel hop per statement as through sqlx's
//! connection worker), and one fsync at its commit.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::events::{
    write_order, DUE_CHUNK, DUE_CHUNK_END, DUE_CLIENT_CONFLICT, DUE_MARK, DUE_MARK_SET,
    DUPLICATE_OF, INSERT_EVENT, MAKE_DUE,
};
use super::{to_millis, Inserted, NewEvent, Store, StoreError, SQLITE_PRAGMAS};

/// A connection that only stores events; see [`Store::sqlite_writer`].
pub struct SqliteWriter {
    conn: Connection,
    /// Events stored since this writer last made clients due.
    stored_since_due: usize,
}

/// Events the committer stores between two chunks of clients it makes due
/// ([`Store::make_clients_due`]): one bulk statement for hundreds of events
/// costs the committer less than an upsert per batch, and keeps what a
/// reader must make due before it reads small.
const DUE_EVERY: usize = 256;

impl Store {
    /// A writer of its own for events, when the store is an SQLite file
    /// (not in memory, which a second connection would not see).
    pub fn sqlite_writer(&self) -> Option<Result<SqliteWriter, StoreError>> {
        self.sqlite_file.as_deref().map(SqliteWriter::open)
    }
}

impl SqliteWriter {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = connect(path)?;
        // No checkpoints at commit: copying the log into the database (and
        // its fsync) would stall the commit of the webhooks waiting on it.
        // The `Checkpointer` does it beside the committer, which copies only
        // the last of it when it starts the log over (`restart_log`).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            stored_since_due: 0,
        })
    }

    /// Copies the rest of the log into the database file, between commits:
    /// with no write in progress the copy reaches the log's end, so the next
    /// commit starts the log over, writing it in place instead of appending
    /// to a file that would otherwise grow for as long as webhooks keep
    /// arriving. Most of the log is copied by the [`Checkpointer`] already;
    /// this copies what was committed since its last pass, and waits for one
    /// fsync of the database file.
    pub fn restart_log(&mut self) -> Result<(), StoreError> {
        passive_checkpoint(&self.conn).map(drop)
    }

    /// A connection that checkpoints the write-ahead log for this writer.
    pub fn checkpointer(&self) -> Result<Checkpointer, StoreError> {
        let path = self.conn.path().map(PathBuf::from).unwrap_or_default();
        Ok(Checkpointer {
            conn: connect(&path)?,
        })
    }

    /// Stores events in one transaction (one durable commit), answering each
    /// in order; as [`Store::insert_events`].
    pub fn insert_events(&mut self, events: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // IMMEDIATE: the write lock is taken (or waited for) at the start, so
        // the transaction never has to upgrade and fail with SQLITE_BUSY.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_error)?;
        let order = write_order(events);
        let mut stored = std::collections::HashSet::with_capacity(events.len());
        {
            let mut insert = tx
                .prepare_cached(&format!(
                    "{INSERT_EVENT} ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
                ))
                .map_err(store_error)?;
            for e in &order {
                let n = insert
                    .execute(params![
                        e.id,
                        &*e.connection_id,
                        e.idempotency_key,
                        &*e.client_id,
                        e.event_type,
                        to_millis(e.occurred_at),
                        to_millis(e.received_at),
                        e.payload,
                        e.urgent,
                        e.job_id,
                        e.signed_digest,
                    ])
                    .map_err(store_error)?;
                if n == 1 {
                    stored.insert(e.id.as_str());
                }
            }
        }
        let mut answers = Vec::with_capacity(events.len());
        for e in events {
            if stored.contains(e.id.as_str()) {
                answers.push(Inserted::Accepted);
            } else {
                let event_id = tx
                    .prepare_cached(DUPLICATE_OF)
                    .and_then(|mut q| {
                        q.query_row(
                            params![&*e.connection_id, e.idempotency_key, e.signed_digest],
                            |r| r.get(0),
                        )
                    })
                    .map_err(store_error)?;
                answers.push(Inserted::Duplicate { event_id });
            }
        }
        self.stored_since_due += stored.len();
        if self.stored_since_due >= DUE_EVERY {
            make_due_chunk(&tx)?;
            self.stored_since_due = 0;
        }
        tx.commit().map_err(store_error)?;
        Ok(answers)
    }
}

/// Makes due the clients of the next chunk of events after the mark, in the
/// committer's transaction `tx` (which holds the write lock). Without a mark
/// it leaves them to the readers, which report it: the webhooks of the batch
/// are stored all the same.
fn make_due_chunk(tx: &rusqlite::Transaction) -> Result<(), StoreError> {
    let Some(mark) = tx
        .prepare_cached(DUE_MARK)
        .and_then(|mut q| q.query_row([], |r| r.get::<_, Option<i64>>(0)))
        .optional()
        .map_err(store_error)?
        .flatten()
    else {
        return Ok(());
    };
    let end: Option<i64> = tx
        .prepare_cached(DUE_CHUNK_END)
        .and_then(|mut q| q.query_row(params![mark, DUE_CHUNK], |r| r.get(0)))
        .map_err(store_error)?;
    if let Some(end) = end {
        tx.prepare_cached(&format!("{MAKE_DUE} {DUE_CLIENT_CONFLICT}"))
            .and_then(|mut q| q.execute(params![mark, end]))
            .map_err(store_error)?;
        tx.prepare_cached(DUE_MARK_SET)
            .and_then(|mut q| q.execute(params![end]))
            .map_err(store_error)?;
    }
    Ok(())
}

/// Copies committed pages of the write-ahead log into the database file, on
/// its own thread, so that the committer's commits never wait for the copy.
pub struct Checkpointer {
    conn: Connection,
}

impl Checkpointer {
    /// A passive checkpoint: it copies what it can without waiting for or
    /// blocking the writers and readers.
    pub fn run(&self) -> Result<LogState, StoreError> {
        passive_checkpoint(&self.conn)
    }
}

/// The write-ahead log after a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogState {
    /// Frames (pages) in the log since it last started from its beginning.
    pub frames: i64,
}

impl LogState {
    /// Whether the log has grown to `frames` since it last started over.
    /// SQLite starts it over only when a write transaction begins with the
    /// whole log copied; under a steady stream of commits that moment never
    /// comes, since each one begins before the checkpointer's copy ends.
    pub fn needs_restart(&self, frames: i64) -> bool {
        self.frames >= frames
    }
}

fn passive_checkpoint(conn: &Connection) -> Result<LogState, StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(LogState { frames: r.get(1)? })
    })
    .map_err(unavailable)
}

/// A connection to the file with the pool's pragmas.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(unavailable)?;
    conn.execute_batch(SQLITE_PRAGMAS).map_err(unavailable)?;
    Ok(conn)
}

/// A constraint the data broke, or a value SQLite cannot hold, is the data's
/// fault; anything else is the store's.
fn store_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig) => {
            StoreError::Rejected(e.to_string())
        }
        _ => unavailable(e),
    }
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(e)))
}

/// The file of an `sqlite://` URL, unless it names an in-memory database.
pub(super) fn file_of(url: &str) -> Option<PathBuf> {
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().ok()?;
    let path = options.get_filename();
    let text = path.to_string_lossy();
    (!text.is_empty() && !text.starts_with("file:sqlx-in-memory") && text != ":memory:")
        .then(|| path.to_path_buf())
}
