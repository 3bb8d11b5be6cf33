//! `POST /v1/webhooks/{connectionName}`: size check, signature check on the raw
//! bytes, parse, durable insert, then 202.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{check_declared_length, read_body, ApiError, AppState};
use crate::connections::{webhook_secret_context, Connection, SignatureScheme};
use crate::store::{Inserted, NewEvent};
use crate::webhook::{event, verify, Parsed, StandardHeaders, VerifyError};

/// Answer to an accepted, duplicate or ignored webhook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    /// `accepted`, `duplicate` or `ignored`.
    pub status: &'static str,
    /// The stored event (for `accepted` and `duplicate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// Longest idempotency key kept as is; longer ones are stored as their SHA-256.
const MAX_KEY_LEN: usize = 255;

#[utoipa::path(
    post,
    path = "/v1/webhooks/{connectionName}",
    tag = "webhooks",
    params(("connectionName" = String, Path, description = "The connection's name")),
    request_body(content = Object, content_type = "application/json",
        description = "A B2CORE client event, signed per the connection's `signatureScheme`."),
    responses(
        (status = 202, description = "Durably stored", body = WebhookAnswer),
        (status = 200, description = "`duplicate` (id already accepted) or `ignored` (event type not synced)", body = WebhookAnswer),
        (status = 400, description = "Malformed JSON or no clientId", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid or missing signature or timestamp", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown connection", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot take it; retry after `Retry-After` seconds", body = super::problem::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ),
    security(())
)]
pub async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let result = handle(&req, &name, payload, &state).await;
    let (label, outcome) = match &result {
        Ok((_, answer)) => (name.as_str(), answer.status),
        Err(ApiError::UnknownConnection(_)) => ("unknown", "unknown_connection"),
        Err(e) => (name.as_str(), e.code()),
    };
    crate::metrics::webhook(label, outcome);
    let (status, answer) = result?;
    Ok(HttpResponse::build(status).json(answer))
}

async fn handle(
    req: &HttpRequest,
    name: &str,
    payload: web::Payload,
    state: &AppState,
) -> Result<(actix_web::http::StatusCode, WebhookAnswer), ApiError> {
    use actix_web::http::StatusCode;

    check_declared_length(req, state.max_body_bytes)?;
    let receiver = receiver(state, name).await?;
    let conn = &receiver.conn;
    let body = read_body(payload, state.max_body_bytes).await?;
    let now = state.clock.now();

    // Expiry is checked against the clock on every request, cached or not.
    let secrets: Vec<SecretString> = receiver
        .secrets
        .iter()
        .filter(|(expires_at, _)| expires_at.is_none_or(|t| t > now))
        .map(|(_, s)| s.clone())
        .collect();
    let signed = verify_request(req, conn, &body, &secrets, now.timestamp())?;

    let parsed = event::parse(&body).map_err(ApiError::InvalidPayload)?;
    let ev = match parsed {
        Parsed::Ignored { event_type } => {
            tracing::info!(connection = %conn.name, %event_type, "webhook ignored: event type is not synced");
            return Ok((
                StatusCode::OK,
                WebhookAnswer {
                    status: "ignored",
                    event_id: None,
                },
            ));
        }
        Parsed::Client(ev) => ev,
    };
    let occurred_at = ev
        .occurred_at
        .or_else(|| {
            signed
                .timestamp
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        })
        .unwrap_or(now);
    let new = NewEvent {
        id: uuid::Uuid::now_v7().to_string(),
        connection_id: conn.id.clone(),
        idempotency_key: signed.idempotency_key,
        client_id: ev.client_id.as_str().to_string(),
        event_type: ev.event_type,
        occurred_at,
        received_at: now,
        payload: String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::InvalidPayload("the body is not UTF-8".into()))?,
        urgent: true,
        job_id: None,
    };
    let stored = state
        .ingest
        .insert(new.clone())
        .await
        .map_err(|e| ApiError::Unavailable(anyhow::anyhow!(e)))?;
    match stored {
        Inserted::Accepted => {
            state.wake.notify_one();
            tracing::info!(
                connection = %conn.name, client_id = %new.client_id, event_id = %new.id,
                held = !conn.enabled, "webhook accepted"
            );
            Ok((
                StatusCode::ACCEPTED,
                WebhookAnswer {
                    status: "accepted",
                    event_id: Some(new.id),
                },
            ))
        }
        Inserted::Duplicate { event_id } => {
            tracing::info!(connection = %conn.name, %event_id, "webhook duplicate");
            Ok((
                StatusCode::OK,
                WebhookAnswer {
                    status: "duplicate",
                    event_id: Some(event_id),
                },
            ))
        }
    }
}

/// A connection with its webhook secrets opened, as the webhook path needs it.
pub struct Receiver {
    conn: Connection,
    /// (expires_at, secret) of every secret not expired when loaded.
    secrets: Vec<(Option<chrono::DateTime<chrono::Utc>>, SecretString)>,
}

/// How long this process reuses a loaded [`Receiver`]. Its own edits drop it at
/// once; another replica's edits (a new secret, a deleted connection) reach it
/// within this time. Expired secrets are refused at once either way.
pub const RECEIVER_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The cache of receivers, by connection name.
pub fn receiver_cache() -> moka::future::Cache<String, Arc<Receiver>> {
    moka::future::Cache::builder()
        .time_to_live(RECEIVER_TTL)
        .max_capacity(10_000)
        .build()
}

/// The connection named `name` with its secrets, from the cache or the store.
async fn receiver(state: &AppState, name: &str) -> Result<Arc<Receiver>, ApiError> {
    if let Some(r) = state.receivers.get(name).await {
        return Ok(r);
    }
    let conn = state
        .store
        .get_connection(name)
        .await?
        .ok_or_else(|| ApiError::UnknownConnection(name.to_string()))?;
    let now = state.clock.now();
    let secrets = state
        .store
        .valid_webhook_secrets(&conn.id, now)
        .await?
        .iter()
        .map(|s| {
            state
                .master_key
                .open(&webhook_secret_context(&conn.id, &s.id), &s.sealed)
                .map(|secret| (s.expires_at, secret))
                .map_err(|e| ApiError::Internal(e.into()))
        })
        .collect::<Result<_, _>>()?;
    let r = Arc::new(Receiver { conn, secrets });
    state.receivers.insert(name.to_string(), r.clone()).await;
    Ok(r)
}

/// What a verified signature tells about the request.
struct Signed {
    idempotency_key: String,
    /// The signed `webhook-timestamp` (Standard Webhooks only).
    timestamp: Option<i64>,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn verify_request(
    req: &HttpRequest,
    conn: &Connection,
    body: &[u8],
    secrets: &[SecretString],
    now_unix: i64,
) -> Result<Signed, ApiError> {
    let to_api = |e: VerifyError| match e {
        VerifyError::TimestampOutOfTolerance => ApiError::TimestampOutOfTolerance,
        other => ApiError::InvalidSignature(other.to_string()),
    };
    match conn.signature_scheme {
        SignatureScheme::StandardWebhooks => {
            let headers = StandardHeaders {
                id: header(req, "webhook-id"),
                timestamp: header(req, "webhook-timestamp"),
                signature: header(req, "webhook-signature"),
            };
            let id = verify::verify_standard(headers, body, secrets, now_unix).map_err(to_api)?;
            Ok(Signed {
                idempotency_key: bounded_key(id),
                timestamp: headers.timestamp.and_then(|t| t.trim().parse().ok()),
            })
        }
        SignatureScheme::HmacSha256Hex => {
            let name = conn.effective_signature_header();
            verify::verify_hex(name, header(req, name), body, secrets).map_err(to_api)?;
            let key = header(req, "webhook-id")
                .or_else(|| header(req, "x-request-id"))
                .filter(|k| !k.trim().is_empty())
                .map(bounded_key)
                .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))));
            Ok(Signed {
                idempotency_key: key,
                timestamp: None,
            })
        }
    }
}

fn bounded_key(key: &str) -> String {
    if key.len() <= MAX_KEY_LEN {
        key.to_string()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}
