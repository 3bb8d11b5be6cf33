//! Where a webhook enters: the connection's receiver (settings and opened
//! secrets), signature verification, and parsing of B2CORE's body into the
//! event to store.

pub mod event;
pub mod receiver;
pub mod verify;

use chrono::{DateTime, Utc};

pub use event::{Checked, ClientData, ClientEvent, ClientId, Field, Head, Parsed};
pub use receiver::{LoadError, Receiver, Receivers, Signed};
pub use verify::{sign_hex, sign_standard, StandardHeaders, VerifyError};

use crate::store::NewEvent;

/// The path every webhook is posted under: `/v1/webhooks/{connectionName}`.
/// Routed by this prefix alone (a `{name}` resource is matched by a regular
/// expression, which cost more than the signature check).
pub const PATH_PREFIX: &str = "/v1/webhooks";

/// Whether a request of `method` to `path` is a webhook (it is given no
/// request span up front).
pub fn is_webhook(method: &str, path: &str) -> bool {
    method == "POST"
        && path
            .strip_prefix(PATH_PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// How far ahead of the server's clock an `occurredAt` may be (clock skew).
pub const MAX_AHEAD: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What a verified webhook asks for.
#[derive(Debug)]
pub enum Intake {
    /// An event type that is not synced.
    Ignored { event_type: String },
    /// A client event, ready to be stored.
    Event(NewEvent),
}

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Signature(#[from] VerifyError),
    /// The body passed the signature but is not a usable event.
    #[error("{0}")]
    Payload(String),
}

/// Verifies a webhook's raw `body` for `receiver`'s connection, then parses
/// it into the event to store (received at `now`).
pub fn intake<'r>(
    receiver: &Receiver,
    header: impl Fn(&str) -> Option<&'r str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Intake, IntakeError> {
    let signed = receiver.verify(header, body, now)?;
    let ev = match event::check(body).map_err(IntakeError::Payload)? {
        Checked::Ignored { event_type } => return Ok(Intake::Ignored { event_type }),
        Checked::Client(ev) => ev,
    };
    if ev.occurred_at.is_some_and(|t| t > now + MAX_AHEAD) {
        // A date far ahead would win every later merge: its fields could never change again.
        return Err(IntakeError::Payload(format!(
            "`occurredAt` is more than {} minutes ahead of this server's clock",
            MAX_AHEAD.num_minutes()
        )));
    }
    let occurred_at = ev
        .occurred_at
        .or_else(|| {
            signed
                .timestamp
                .and_then(|t| DateTime::from_timestamp(t, 0))
        })
        .unwrap_or(now);
    let payload = String::from_utf8(body.to_vec())
        .map_err(|_| IntakeError::Payload("the body is not UTF-8".into()))?;
    Ok(Intake::Event(NewEvent {
        id: uuid::Uuid::now_v7().to_string(),
        connection_id: receiver.conn.id.clone(),
        idempotency_key: signed.idempotency_key,
        client_id: ev.client_id,
        event_type: ev.event_type,
        occurred_at,
        received_at: now,
        payload,
        urgent: true,
        job_id: None,
        signed_digest: signed.signed_digest,
    }))
}
