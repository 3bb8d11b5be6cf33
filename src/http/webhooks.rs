//! `POST /v1/webhooks/{connectionName}`: size check, signature check on the raw
//! bytes, parse, durable insert, then 202.

use std::borrow::Cow;
use std::sync::Arc;

use actix_router::Quoter;
use actix_web::http::header::HeaderName;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{check_declared_length, read_body_within};
use super::request_span::LazySpan;
use super::{ApiError, AppState};
use crate::store::Inserted;
use crate::webhook::{self, Intake, Receiver};

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

impl WebhookAnswer {
    fn new(status: &'static str, event_id: Option<String>) -> Self {
        Self { status, event_id }
    }
}

#[utoipa::path(
    post,
    operation_id = "receive_webhook",
    path = "/v1/webhooks/{connectionName}",
    tag = "webhooks",
    params(("connectionName" = String, Path, description = "The connection's name")),
    request_body(content = Object, content_type = "application/json",
        description = "A B2CORE client event, signed per the connection's `signatureScheme`: `webhook-id`, `webhook-timestamp` and `webhook-signature` (or their Svix names `svix-id`, `svix-timestamp`, `svix-signature`), or the hex scheme's header."),
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
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // Everything under the prefix comes here (see `routes`): the rest of
    // the path must be one segment, read as the `{connectionName}` of a
    // resource pattern would be.
    let Some(name) = connection_segment(req.match_info().unprocessed()) else {
        return super::not_found(req).await;
    };
    if req.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allowed: "POST",
        });
    }
    let span = LazySpan::new(&req);
    // Labelled by the connection only once it is known to exist: a label
    // taken from an unauthenticated path would let anyone grow /metrics.
    let mut known = None;
    let result = handle(&req, &span, &name, payload, &state, &mut known).await;
    let outcome = match &result {
        Ok((_, answer)) => answer.status,
        Err(e) => e.code(),
    };
    match &known {
        Some(receiver) => receiver.counts.count(outcome),
        None => crate::metrics::webhook("unknown", outcome),
    }
    match result {
        Ok((status, answer)) => Ok(HttpResponse::build(status).json(answer)),
        // Built here so that what it logs is in the request's span.
        Err(e) if e.status_code().is_server_error() => Ok(span.in_scope(|| e.error_response())),
        Err(e) => Err(e),
    }
}

/// The headers a signature is read from, named once: a name given as text
/// is parsed again at every look-up.
static SIGNATURE_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("webhook-id"),
    HeaderName::from_static("webhook-timestamp"),
    HeaderName::from_static("webhook-signature"),
    HeaderName::from_static("svix-id"),
    HeaderName::from_static("svix-timestamp"),
    HeaderName::from_static("svix-signature"),
    HeaderName::from_static("x-request-id"),
];

/// The one segment of `rest` (`/name`), percent-decoded as a `{name}`
/// segment of a resource pattern is; `None` when `rest` is not one segment.
fn connection_segment(rest: &str) -> Option<Cow<'_, str>> {
    let segment = rest.strip_prefix('/')?;
    if segment.is_empty() || segment.contains('/') {
        return None;
    }
    Some(match Quoter::new(b"", b"").requote(segment.as_bytes()) {
        Some(decoded) => Cow::Owned(String::from_utf8_lossy(&decoded).into_owned()),
        None => Cow::Borrowed(segment),
    })
}

async fn handle(
    req: &HttpRequest,
    span: &LazySpan<'_>,
    name: &str,
    payload: web::Payload,
    state: &AppState,
    known: &mut Option<Arc<Receiver>>,
) -> Result<(StatusCode, WebhookAnswer), ApiError> {
    check_declared_length(req, state.max_body_bytes)?;
    let receiver = state
        .receivers
        .get(&state.store, &state.master_key, name, state.clock.now())
        .await?;
    *known = Some(receiver.clone());
    let conn = &receiver.conn;
    let header = |n: &str| {
        let value = match SIGNATURE_HEADERS.iter().find(|h| h.as_str() == n) {
            Some(name) => req.headers().get(name),
            None => req.headers().get(n),
        };
        value.and_then(|v| v.to_str().ok())
    };
    // Headers and timestamp first: a request that cannot pass costs no body.
    receiver
        .precheck(header, state.clock.now())
        .map_err(|e| ApiError::from(webhook::IntakeError::Signature(e)))?;
    // Held until the answer: the body's bytes count against the budget.
    let (body, _reserved) =
        read_body_within(req, payload, state.max_body_bytes, &state.body_budget).await?;
    let new = match webhook::intake(&receiver, header, &body, state.clock.now())? {
        Intake::Ignored { event_type } => {
            span.in_scope(|| tracing::info!(connection = %conn.name, %event_type, "webhook ignored: event type is not synced"));
            return Ok((StatusCode::OK, WebhookAnswer::new("ignored", None)));
        }
        Intake::Event(new) => new,
    };
    let (event_id, client_id) = (new.id.clone(), new.client_id.clone());
    match state.ingest.insert(new).await? {
        Inserted::Accepted => {
            state.wake.arrived(1);
            // At debug: at full rate a line per webhook costs more than
            // storing it. The committer logs a count at info.
            if tracing::enabled!(tracing::Level::DEBUG) {
                span.in_scope(|| {
                    tracing::debug!(
                        connection = %conn.name, %client_id, %event_id, held = !conn.enabled,
                        "webhook accepted"
                    )
                });
            }
            Ok((
                StatusCode::ACCEPTED,
                WebhookAnswer::new("accepted", Some(event_id)),
            ))
        }
        Inserted::Duplicate { event_id } => {
            if tracing::enabled!(tracing::Level::DEBUG) {
                span.in_scope(
                    || tracing::debug!(connection = %conn.name, %event_id, "webhook duplicate"),
                );
            }
            Ok((
                StatusCode::OK,
                WebhookAnswer::new("duplicate", Some(event_id)),
            ))
        }
    }
}
