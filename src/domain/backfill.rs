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

/// A job still `receiving` with no progress for this long is shown as
/// `interrupted`: the process that read it stopped.
pub const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

impl BackfillJob {
    /// The job's state as an operator should see it at `now`.
    pub fn state_at(&self, now: DateTime<Utc>) -> JobState {
        match self.state {
            JobState::Receiving if now - self.updated_at > STALE_AFTER => JobState::Interrupted,
            s => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, updated_at: DateTime<Utc>) -> BackfillJob {
        BackfillJob {
            id: "j".into(),
            connection_id: ConnectionId::from_stored("c".into()),
            state,
            read: 0,
            accepted: 0,
            synced: 0,
            rejected_count: 0,
            rejected: vec![],
            created_at: updated_at,
            updated_at,
            finished_at: None,
        }
    }

    #[test]
    fn a_job_left_receiving_by_a_stopped_process_shows_as_interrupted() {
        let now = Utc::now();
        let minutes = chrono::TimeDelta::minutes;
        let state = |state, age| job(state, now - age).state_at(now);
        assert_eq!(state(JobState::Receiving, minutes(1)), JobState::Receiving);
        assert_eq!(
            state(JobState::Receiving, minutes(11)),
            JobState::Interrupted
        );
        assert_eq!(state(JobState::Received, minutes(3000)), JobState::Received);
    }
}
