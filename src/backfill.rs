//! Backfill: an NDJSON upload of client objects (the `data` of a webhook, one
//! per line), read line by line in constant memory and stored as events in the
//! same queue as webhooks.
//!
//! A backfill row carries no time of its own. It is stored as having occurred
//! at `asOf` (by default the Unix epoch), so the per-field merge ranks it below
//! every webhook that is newer: a backfill row never overwrites a newer
//! webhook's data, whatever order they arrive in. Among backfill rows with the
//! same `asOf`, the later one wins. Its events are not urgent: clients with a
//! webhook pending are written first, and backfill waits while the API budget
//! is spent.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::clock::Clock;
use crate::domain::{
    BackfillJob, ClientId, Connection, ConnectionId, JobProgress, JobState, Rejection,
    MAX_REJECTIONS_KEPT,
};
use crate::store::{NewEvent, Store, StoreError};
use crate::webhook::event;

/// Why an upload ended before its whole file was stored.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// `asOf` is later than now.
    #[error("`asOf` is in the future: a backfill cannot be newer than now")]
    FromTheFuture,
    /// The sender's stream broke off; the lines read before are kept.
    #[error("the upload broke off: {0}")]
    BrokeOff(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where an upload is stored, and who is told of new events.
pub struct Backfill<'a> {
    pub store: &'a Store,
    pub clock: &'a dyn Clock,
    /// Woken for each stored chunk, so the worker starts on it.
    pub wake: &'a crate::sync::pace::Wake,
    /// Longest line, in bytes.
    pub max_line: usize,
}

impl Backfill<'_> {
    /// Reads an NDJSON upload for `conn` as it streams in, storing it in
    /// chunks with the job's progress, and returns the job once the whole
    /// upload is stored. Every complete line read is stored even when the
    /// upload breaks off (a partial last line is not a line); the job is
    /// then `interrupted`.
    pub async fn receive<E: std::fmt::Display>(
        &self,
        conn: &Connection,
        as_of: Option<DateTime<Utc>>,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<BackfillJob, BackfillError> {
        let now = self.clock.now();
        if as_of.is_some_and(|t| t > now) {
            return Err(BackfillError::FromTheFuture);
        }
        let job_id = uuid::Uuid::now_v7().to_string();
        self.store
            .create_backfill_job(&job_id, &conn.id, now)
            .await?;
        tracing::info!(connection = %conn.name, %job_id, "backfill started");

        let as_of = as_of.unwrap_or(DateTime::UNIX_EPOCH);
        let mut upload = Upload::new(&job_id, &conn.id, as_of, now, self.max_line);
        let mut lines = Lines::new(self.max_line);
        let read: Result<(), BackfillError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BackfillError::BrokeOff(e.to_string()))?;
                lines.feed(&chunk, |l| upload.line(l));
                while upload.chunk_ready() {
                    self.store_chunk(&mut upload, JobState::Receiving).await?;
                }
            }
            lines.finish(|l| upload.line(l));
            Ok(())
        }
        .await;
        let last = if read.is_ok() {
            JobState::Received
        } else {
            JobState::Interrupted
        };
        let stored = async {
            while upload.has_pending() {
                self.store_chunk(&mut upload, JobState::Receiving).await?;
            }
            self.store_chunk(&mut upload, last).await
        }
        .await;
        let end = upload.progress(last, 0, self.clock.now());
        crate::metrics::backfill_lines(&conn.name, end.accepted, end.rejected_count);
        if let Err(e) = read.and(stored.map_err(BackfillError::from)) {
            let interrupted = upload.progress(JobState::Interrupted, 0, self.clock.now());
            let _ = self.store.update_backfill_job(&interrupted).await;
            tracing::warn!(connection = %conn.name, %job_id, read = end.read, error = %e, "backfill interrupted");
            return Err(e);
        }
        tracing::info!(
            connection = %conn.name, %job_id, read = end.read, accepted = end.accepted,
            rejected = end.rejected_count, "backfill received"
        );
        self.store
            .backfill_job(&conn.id, &job_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("backfill job {job_id} vanished")).into())
    }

    /// Stores the events read so far and the job's progress, in one transaction.
    async fn store_chunk(&self, upload: &mut Upload, progress: JobState) -> Result<(), StoreError> {
        let events = upload.take_chunk();
        let p = upload.progress(progress, events.len(), self.clock.now());
        crate::store::retry_conflicts(|| self.store.insert_backfill_chunk(&events, &p)).await?;
        upload.stored(events.len());
        if !events.is_empty() {
            self.wake.arrived(events.len() as u64);
        }
        Ok(())
    }
}

/// Events stored per transaction, at most.
pub const CHUNK_EVENTS: usize = 500;
/// Payload bytes stored per transaction, at most (a chunk closes once past it).
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Longest error message kept for a rejected line.
const MAX_ERROR_CHARS: usize = 300;

/// A complete line of the upload.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// Line `number` (from 1), without its newline.
    Text { number: u64, bytes: &'a [u8] },
    /// Line `number` was longer than the limit; its bytes were not kept.
    TooLong { number: u64 },
}

/// Splits a byte stream into lines, holding at most one line of `max` bytes.
#[derive(Debug)]
pub struct Lines {
    buf: BytesMut,
    max: usize,
    number: u64,
    /// Inside a line already known to be too long: drop bytes up to its end.
    skipping: bool,
}

impl Lines {
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max,
            number: 0,
            skipping: false,
        }
    }

    /// Feeds the next bytes; `f` gets every line they complete.
    pub fn feed(&mut self, mut chunk: &[u8], mut f: impl FnMut(Line<'_>)) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&chunk[..end], &chunk[end + 1..]);
            self.number += 1;
            let number = self.number;
            if self.skipping || self.buf.len() + head.len() > self.max {
                f(Line::TooLong { number });
            } else if self.buf.is_empty() {
                f(Line::Text {
                    number,
                    bytes: head,
                });
            } else {
                self.buf.extend_from_slice(head);
                f(Line::Text {
                    number,
                    bytes: &self.buf,
                });
            }
            self.buf.clear();
            self.skipping = false;
            chunk = rest;
        }
        if self.skipping {
            return;
        }
        if self.buf.len() + chunk.len() > self.max {
            self.buf = BytesMut::new();
            self.skipping = true;
        } else {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Ends the stream: a last line without a newline is still a line.
    pub fn finish(&mut self, mut f: impl FnMut(Line<'_>)) {
        if self.skipping {
            self.number += 1;
            f(Line::TooLong {
                number: self.number,
            });
        } else if !self.buf.is_empty() {
            self.number += 1;
            f(Line::Text {
                number: self.number,
                bytes: &self.buf,
            });
        }
        self.buf = BytesMut::new();
        self.skipping = false;
    }
}

/// Checks one line: `Ok(None)` for a blank line, else the client's id and the
/// event payload to store (the line wrapped as a `client.updated` event).
pub fn parse_line(bytes: &[u8]) -> Result<Option<(ClientId, String)>, String> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    // Files saved by some Windows tools start with a UTF-8 byte order mark.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        // serde_json says "… at line 1 column N"; within one line, the column is what helps.
        let text = e.to_string();
        let what = text
            .rsplit_once(" at line ")
            .map_or(text.as_str(), |(w, _)| w);
        format!("not valid JSON at column {}: {what}", e.column())
    })?;
    let Value::Object(map) = value else {
        return Err("a line must be one JSON object (a client)".into());
    };
    let (client_id, _) = event::client_data(map)?;
    // Valid JSON is valid UTF-8.
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let payload = format!(r#"{{"type":"client.updated","data":{}}}"#, text.trim());
    Ok(Some((client_id, payload)))
}

/// One upload in progress: its counts, and the events waiting to be stored.
#[derive(Debug)]
pub struct Upload {
    job_id: String,
    connection_id: ConnectionId,
    as_of: DateTime<Utc>,
    received_at: DateTime<Utc>,
    read: u64,
    accepted: u64,
    /// Accepted lines committed to the store.
    stored: u64,
    rejected_count: u64,
    rejected: Vec<Rejection>,
    pending: Vec<NewEvent>,
    pending_bytes: usize,
    max_line: usize,
}

impl Upload {
    pub fn new(
        job_id: &str,
        connection_id: &ConnectionId,
        as_of: DateTime<Utc>,
        received_at: DateTime<Utc>,
        max_line: usize,
    ) -> Self {
        Self {
            job_id: job_id.to_string(),
            connection_id: connection_id.clone(),
            as_of,
            received_at,
            read: 0,
            accepted: 0,
            stored: 0,
            rejected_count: 0,
            rejected: Vec::new(),
            pending: Vec::with_capacity(CHUNK_EVENTS),
            pending_bytes: 0,
            max_line,
        }
    }

    /// Takes one line: queues its event, or records why it was rejected.
    pub fn line(&mut self, line: Line<'_>) {
        let (number, result) = match line {
            Line::TooLong { number } => {
                (number, Err(format!("longer than {} bytes", self.max_line)))
            }
            Line::Text { number, bytes } => (number, parse_line(bytes)),
        };
        match result {
            Ok(None) => {}
            Ok(Some((client_id, payload))) => {
                self.read += 1;
                self.accepted += 1;
                self.pending_bytes += payload.len();
                self.pending.push(NewEvent {
                    id: uuid::Uuid::now_v7().to_string(),
                    connection_id: self.connection_id.clone(),
                    idempotency_key: format!("backfill:{}:{number}", self.job_id),
                    client_id,
                    event_type: "backfill".into(),
                    occurred_at: self.as_of,
                    received_at: self.received_at,
                    payload,
                    urgent: false,
                    job_id: Some(self.job_id.clone()),
                    signed_digest: None,
                });
            }
            Err(error) => {
                self.read += 1;
                self.rejected_count += 1;
                if self.rejected.len() < MAX_REJECTIONS_KEPT {
                    self.rejected.push(Rejection {
                        line: number,
                        error: error.chars().take(MAX_ERROR_CHARS).collect(),
                    });
                }
            }
        }
    }

    /// Whether enough events wait to store them now.
    pub fn chunk_ready(&self) -> bool {
        self.pending.len() >= CHUNK_EVENTS || self.pending_bytes >= CHUNK_BYTES
    }

    /// Up to [`CHUNK_EVENTS`] of the events waiting to be stored, handed over
    /// (one piece of the network can hold thousands of lines; a statement
    /// takes a bounded number of parameters).
    pub fn take_chunk(&mut self) -> Vec<NewEvent> {
        let n = self.pending.len().min(CHUNK_EVENTS);
        let chunk: Vec<NewEvent> = self.pending.drain(..n).collect();
        self.pending_bytes = self.pending.iter().map(|e| e.payload.len()).sum();
        chunk
    }

    /// Whether events wait to be stored.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Lines accepted so far (stored, or waiting in the current chunk).
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Records that `n` events handed over by [`Upload::take_chunk`] were committed.
    pub fn stored(&mut self, n: usize) {
        self.stored += n as u64;
    }

    /// The job's progress with `storing` more events about to be committed with it.
    pub fn progress(&self, state: JobState, storing: usize, at: DateTime<Utc>) -> JobProgress {
        JobProgress {
            job_id: self.job_id.clone(),
            state,
            read: self.read,
            accepted: self.stored + storing as u64,
            rejected_count: self.rejected_count,
            rejected: self.rejected.clone(),
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        let mut push = |l: Line<'_>| {
            out.push(match l {
                Line::Text { number, bytes } => {
                    format!("{number}:{}", String::from_utf8_lossy(bytes))
                }
                Line::TooLong { number } => format!("{number}:TOO LONG"),
            })
        };
        for c in chunks {
            lines.feed(c, &mut push);
        }
        lines.finish(&mut push);
        out
    }

    #[test]
    fn lines_are_numbered_from_one_across_chunk_boundaries() {
        assert_eq!(
            split(100, &[b"ab", b"c\nde", b"f\n\ng"]),
            ["1:abc", "2:def", "3:", "4:g"]
        );
        assert_eq!(split(100, &[b"x\n"]), ["1:x"]);
        assert!(split(100, &[b""]).is_empty());
    }

    #[test]
    fn a_line_over_the_limit_is_reported_not_kept() {
        assert_eq!(
            split(4, &[b"1234\n12345\nab", b"cdefgh", b"ij\nok"]),
            ["1:1234", "2:TOO LONG", "3:TOO LONG", "4:ok"]
        );
        // Over the limit at the very end, without a newline.
        assert_eq!(split(2, &[b"a\nbcd"]), ["1:a", "2:TOO LONG"]);
    }

    #[test]
    fn the_reader_never_holds_more_than_one_line() {
        let mut lines = Lines::new(8);
        for _ in 0..10_000 {
            lines.feed(b"0123456789", |_| {});
        }
        assert!(lines.buf.capacity() <= 64, "{}", lines.buf.capacity());
    }

    #[test]
    fn a_line_becomes_a_client_updated_event_of_its_client() {
        let (id, payload) = parse_line(b"{\"clientId\": 7, \"email\": \"a@b.c\"}\r")
            .unwrap()
            .unwrap();
        assert_eq!(id, "7");
        match event::parse(payload.as_bytes()).unwrap() {
            event::Parsed::Client(ev) => {
                assert_eq!(ev.client_id.as_str(), "7");
                assert_eq!(ev.event_type, "client.updated");
                assert_eq!(ev.data.email, event::Field::Value("a@b.c".into()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_large_piece_of_input_is_stored_in_chunks_of_bounded_size() {
        let t = DateTime::UNIX_EPOCH;
        let mut u = Upload::new("j", &ConnectionId::from_stored("c".into()), t, t, 100);
        let text: String = (0..1234)
            .map(|i| format!("{{\"clientId\":{i}}}\n"))
            .collect();
        Lines::new(100).feed(text.as_bytes(), |l| u.line(l));
        let sizes: Vec<usize> =
            std::iter::from_fn(|| u.has_pending().then(|| u.take_chunk().len())).collect();
        assert_eq!(sizes, [CHUNK_EVENTS, CHUNK_EVENTS, 234]);
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, reason) in [
            ("{\"clientId\": ", "not valid JSON at column 13: EOF"),
            ("[1, 2]", "one JSON object"),
            ("{\"email\": \"a@b.c\"}", "clientId"),
            ("{\"clientId\": 1, \"phones\": 3}", "wrong type"),
        ] {
            let err = parse_line(line.as_bytes()).unwrap_err();
            assert!(err.contains(reason), "{line}: {err}");
        }
        assert_eq!(parse_line(b"  \r").unwrap(), None);
        let (id, _) = parse_line(b"\xEF\xBB\xBF{\"clientId\":5}")
            .unwrap()
            .unwrap();
        assert_eq!(id, "5", "a byte order mark is not an error");
    }

    #[test]
    fn an_upload_counts_lines_and_keys_each_by_job_and_line() {
        let t = DateTime::UNIX_EPOCH;
        let mut u = Upload::new(
            "job1",
            &ConnectionId::from_stored("conn1".into()),
            t,
            t,
            100,
        );
        let mut lines = Lines::new(100);
        lines.feed(b"{\"clientId\":1}\n\nnope\n{\"clientId\":\"a\"}\n", |l| {
            u.line(l)
        });
        lines.feed(&[b'x'; 200], |l| u.line(l));
        lines.finish(|l| u.line(l));
        let p = u.progress(JobState::Received, 0, t);
        assert_eq!((p.read, p.rejected_count, u.accepted()), (4, 2, 2));
        assert_eq!(
            p.rejected.iter().map(|r| r.line).collect::<Vec<_>>(),
            [3, 5]
        );
        let events = u.take_chunk();
        assert_eq!(u.progress(JobState::Received, events.len(), t).accepted, 2);
        assert!(!u.has_pending());
        assert_eq!(events[0].idempotency_key, "backfill:job1:1");
        assert_eq!(events[1].idempotency_key, "backfill:job1:4");
        assert_eq!(events[1].client_id, "a");
        assert!(events.iter().all(|e| !e.urgent && e.occurred_at == t));
        assert!(u.take_chunk().is_empty());
    }
}
