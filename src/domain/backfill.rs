//! A backfill job: an NDJSON upload of clients and how far it came.

use chrono::{DateTime, Utc};

use super::ConnectionId;

/// One line of a backfill that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    /// Counted from 1.
    pub line: u64,
    pub error: String,
}

/// Where a backfill upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Lines are still arriving.
    Receiving,
    /// The whole file was read; its rows are queued or synced.
    Received,
    /// The upload stopped before its end (the sender went away, or the
    /// service stopped); the lines stored before that are kept and synced.
    Interrupted,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Receiving => "receiving",
            JobState::Received => "received",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "receiving" => JobState::Receiving,
            "received" => JobState::Received,
            "interrupted" => JobState::Interrupted,
            _ => return None,
        })
    }
}

/// What an upload has read so far, written as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress {
    pub job_id: String,
    pub state: JobState,
    pub read: u64,
    /// Lines stored, this chunk included.
    pub accepted: u64,
    pub rejected_count: u64,
    /// The first [`MAX_REJECTIONS_KEPT`] rejected lines.
    pub rejected: Vec<Rejection>,
    pub at: DateTime<Utc>,
}

/// Rejected lines a job keeps with their error; the rest are only counted.
pub const MAX_REJECTIONS_KEPT: usize = 1000;

/// A backfill job as stored, with `accepted` and `synced` counted from its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillJob {
    pub id: String,
    pub connection_id: ConnectionId,
    pub state: JobState,
    pub read: u64,
    pub accepted: u64,
    pub synced: u64,
    pub rejected_count: u64,
    pub rejected: Vec<Rejection>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}
