//! The types the rest of the code speaks: connections, clients and their sync
//! state, backfill jobs, and typed ids. No I/O; `store` persists these,
//! `connections` validates the operator's edits to them.

mod backfill;
mod client;
mod connection;
mod ids;

pub use backfill::{BackfillJob, JobProgress, JobState, Rejection, MAX_REJECTIONS_KEPT};
pub use client::{ClientRecord, ClientState, ClientUpdate, NextAttempt, SyncError};
pub use connection::{
    webhook_secret_context, ApiUsage, Connection, DuplicatePolicy, FieldMapping, SignatureScheme,
    DEFAULT_API_VERSION, DEFAULT_SIGNATURE_HEADER,
};
pub use ids::{ClientId, ConnectionId, ConnectionName};
