//! A client's sync state: what the worker reads and writes back.

use chrono::{DateTime, Utc};

use super::{ClientId, ConnectionId};

/// Where a client stands with Salesforce (`held` is derived, not stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Pending,
    Synced,
    Retrying,
    Dead,
    Converted,
}

impl ClientState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Pending => "pending",
            ClientState::Synced => "synced",
            ClientState::Retrying => "retrying",
            ClientState::Dead => "dead",
            ClientState::Converted => "converted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ClientState::Pending,
            "synced" => ClientState::Synced,
            "retrying" => ClientState::Retrying,
            "dead" => ClientState::Dead,
            "converted" => ClientState::Converted,
            _ => return None,
        })
    }
}

/// The last error Salesforce gave for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncError {
    pub code: String,
    pub message: String,
}

/// A client's sync record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub connection_id: ConnectionId,
    pub client_id: ClientId,
    pub state: ClientState,
    pub lead_id: Option<String>,
    pub attempts: u32,
    pub first_failure_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<SyncError>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    /// JSON of [`crate::mapping::Known`]: what was last written.
    pub known: String,
    pub company_sent: bool,
    pub pending_events: u32,
    /// When a create of its Lead was first sent without a confirmation since:
    /// set before the call, kept while its answer may have been lost (a
    /// timeout, a broken connection, a crash), cleared by any other outcome.
    pub create_sent_at: Option<DateTime<Utc>>,
}

/// When a client is next due after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAttempt {
    /// At this time (a retry).
    At(DateTime<Utc>),
    /// Now if events arrived during the write, else when one does.
    IfEventsPending,
    /// Only when a new event arrives or an operator retries (dead).
    Never,
}

/// What a worker learned from one attempt, written back with the lease released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUpdate {
    pub state: ClientState,
    pub lead_id: Option<String>,
    pub attempts: u32,
    pub first_failure_at: Option<DateTime<Utc>>,
    /// When the client is next due.
    pub next: NextAttempt,
    pub last_error: Option<SyncError>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    pub known: String,
    pub company_sent: bool,
    /// Whether the create mark stays: this attempt's create (if it sent one)
    /// may have been carried out unheard, or no call answered anything.
    pub create_unconfirmed: bool,
    /// These events (by `seq`) are done: confirmed by Salesforce, or skipped.
    /// Listed one by one: with concurrent writers, sequence order is not commit
    /// order, so "everything up to the highest seq read" could include an
    /// event this attempt never saw.
    pub processed: Vec<i64>,
}
