//! The webhook committer's own SQLite connection: opened once, owned by one
//! thread, statements prepared once. A batch is one transaction of plain
//! in-process calls (no channel hop per statement as through sqlx's
//! connection worker), and one fsync at its commit.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, params_from_iter, Connection, ErrorCode, OptionalExtension};

use super::dialect::{values, Dialect};
use super::events::{
    write_order, DUE_CHUNK, DUE_CHUNK_END, DUE_CLIENT_CONFLICT, DUE_MARK, DUE_MARK_SET,
    DUPLICATE_OF, EVENT_PARAMS, INSERT_EVENT, MAKE_DUE,
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
        // An insert for each number of rows up to ROWS_PER_INSERT, and the
        // few other statements, all kept prepared.
        conn.set_prepared_statement_cache_capacity(2 * ROWS_PER_INSERT + 16);
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
        let tx = Immediate::begin(&self.conn)?;
        let order = write_order(events);
        let mut stored = std::collections::HashSet::with_capacity(events.len());
        for rows in order.chunks(ROWS_PER_INSERT) {
            let inserted = tx
                .prepare_cached(insert_sql(rows.len()))
                .and_then(|mut insert| {
                    insert.execute(params_from_iter(rows.iter().flat_map(|e| row(e))))
                })
                .map_err(store_error)?;
            if inserted == rows.len() {
                stored.extend(rows.iter().map(|e| e.id.as_str()));
                continue;
            }
            // Some were duplicates (rare): an event that was stored is the
            // one its key and digest find.
            for e in rows {
                if duplicate_of(&tx, e)? == e.id {
                    stored.insert(e.id.as_str());
                }
            }
        }
        let mut answers = Vec::with_capacity(events.len());
        for e in events {
            if stored.contains(e.id.as_str()) {
                answers.push(Inserted::Accepted);
            } else {
                let event_id = duplicate_of(&tx, e)?;
                answers.push(Inserted::Duplicate { event_id });
            }
        }
        self.stored_since_due += stored.len();
        if self.stored_since_due >= DUE_EVERY {
            make_due_chunk(&tx)?;
            self.stored_since_due = 0;
        }
        tx.commit()?;
        Ok(answers)
    }
}

/// A write transaction through statements prepared once (rusqlite's
/// `Transaction` prepares its BEGIN and COMMIT again for every batch); it
/// rolls back if dropped before its commit. IMMEDIATE: the write lock is
/// taken (or waited for) at the start, so the transaction never has to
/// upgrade and fail with SQLITE_BUSY.
struct Immediate<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Immediate<'c> {
    fn begin(conn: &'c Connection) -> Result<Self, StoreError> {
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut begin| begin.execute([]))
            .map_err(store_error)?;
        Ok(Self { conn, open: true })
    }

    fn commit(mut self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]))
            .map_err(store_error)?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for Immediate<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Events inserted by one statement at most: one statement per event costs
/// SQLite its run, a reset and the AUTOINCREMENT counter's update each time.
const ROWS_PER_INSERT: usize = 16;

/// The insert of `rows` events, 1 to [`ROWS_PER_INSERT`], with SQLite's
/// anonymous parameters ([`Dialect::positional`]). Made once: the text is
/// the key of the prepared statement it is looked up by.
fn insert_sql(rows: usize) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (1..=ROWS_PER_INSERT)
            .map(|n| {
                Dialect::Sqlite.positional(format!(
                    "{INSERT_EVENT} {} ON CONFLICT DO NOTHING",
                    values(n, EVENT_PARAMS)
                ))
            })
            .collect()
    });
    &texts[rows - 1]
}

/// An event's values, in the order of [`INSERT_EVENT`].
fn row(e: &NewEvent) -> [ToSqlOutput<'_>; EVENT_PARAMS] {
    fn text(s: &str) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
    }
    fn optional(s: &Option<String>) -> ToSqlOutput<'_> {
        s.as_deref()
            .map_or(ToSqlOutput::Borrowed(ValueRef::Null), text)
    }
    let integer = |i: i64| ToSqlOutput::Borrowed(ValueRef::Integer(i));
    [
        text(&e.id),
        text(&e.connection_id),
        text(&e.idempotency_key),
        text(&e.client_id),
        text(&e.event_type),
        integer(to_millis(e.occurred_at)),
        integer(to_millis(e.received_at)),
        text(&e.payload),
        integer(e.urgent.into()),
        optional(&e.job_id),
        optional(&e.signed_digest),
    ]
}

/// The id of the event stored under `e`'s key or digest.
fn duplicate_of(tx: &Connection, e: &NewEvent) -> Result<String, StoreError> {
    tx.prepare_cached(DUPLICATE_OF)
        .and_then(|mut q| {
            q.query_row(
                params![&*e.connection_id, e.idempotency_key, e.signed_digest],
                |r| r.get(0),
            )
        })
        .map_err(store_error)
}

/// Makes due the clients of the next chunk of events after the mark, in the
/// committer's transaction `tx` (which holds the write lock). Without a mark
/// it leaves them to the readers, which report it: the webhooks of the batch
/// are stored all the same.
fn make_due_chunk(tx: &Connection) -> Result<(), StoreError> {
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
    conn.prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")
        .and_then(|mut q| q.query_row([], |r| Ok(LogState { frames: r.get(1)? })))
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
