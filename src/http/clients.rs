//! Sync state per client, requeueing, and the connection's test and preview.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{read_json, Admin};
use super::problem::Problem;
use super::{ApiError, AppState};
use crate::connections::check::{self, LastError};
use crate::connections::FieldError;
use crate::domain::{ClientId, ClientRecord, ClientState, Connection};
use crate::webhook::{event, Parsed};

const MAX_PAGE: u32 = 500;

/// A client's sync state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    pub client_id: String,
    /// `pending`, `synced`, `retrying`, `dead`, `held` (connection disabled) or `converted`.
    pub state: String,
    pub lead_id: Option<String>,
    /// Failed attempts since the last success.
    pub attempts: u32,
    pub last_error: Option<LastError>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Fields dropped and values cut in the last write.
    pub warnings: Vec<String>,
    /// Events received and not yet confirmed by Salesforce.
    pub pending_events: u32,
}

fn shown_state(conn: &Connection, c: &ClientRecord) -> &'static str {
    // Synced, then more events arrived: they wait for the next write.
    let state = match c.state {
        ClientState::Synced if c.pending_events > 0 => ClientState::Pending,
        other => other,
    };
    let waiting = matches!(state, ClientState::Pending | ClientState::Retrying);
    if waiting && !conn.enabled {
        "held"
    } else {
        state.as_str()
    }
}

fn view(conn: &Connection, c: &ClientRecord) -> ClientView {
    ClientView {
        client_id: c.client_id.to_string(),
        state: shown_state(conn, c).into(),
        lead_id: c.lead_id.clone(),
        attempts: c.attempts,
        last_error: c.last_error.as_ref().map(|e| LastError {
            code: e.code.clone(),
            message: e.message.clone(),
        }),
        last_synced_at: c.last_synced_at,
        next_attempt_at: c.next_attempt_at,
        warnings: c.warnings.clone(),
        pending_events: c.pending_events,
    }
}

/// A page of clients.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientPage {
    pub clients: Vec<ClientView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// Filters of the client listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// One of pending, synced, retrying, dead, held, converted.
    pub state: Option<String>,
    /// 1 to 500; 50 by default.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The client's record, or 404.
async fn client(
    state: &AppState,
    conn: &Connection,
    client_id: &ClientId,
) -> Result<ClientRecord, ApiError> {
    state
        .store
        .client(&conn.id, client_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no client `{client_id}` on `{}`", conn.name)))
}

/// A client id from a path. No stored id holds a control character
/// (webhooks refuse them) and PostgreSQL cannot compare a NUL: such an id is
/// simply not there.
fn path_client_id(conn: &Connection, id: String) -> Result<ClientId, ApiError> {
    if id.chars().any(char::is_control) || id.len() > 1024 {
        return Err(ApiError::NotFound(format!(
            "no such client on `{}`",
            conn.name
        )));
    }
    Ok(ClientId::from_stored(id))
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Validation(vec![FieldError {
        field: field.into(),
        message: message.into(),
    }])
}

#[utoipa::path(
    get, operation_id = "list_clients", path = "/v1/connections/{name}/clients", tag = "clients",
    params(("name" = String, Path), ClientQuery),
    responses(
        (status = 200, body = ClientPage),
        (status = 400, description = "A query string that does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad filter", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    _: Admin,
    path: web::Path<String>,
    query: web::Query<ClientQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(invalid("limit", "must be between 1 and 500"));
    }
    let (states, only_held): (Vec<ClientState>, Option<bool>) = match query.state.as_deref() {
        None => (vec![], None),
        Some("held") => (
            vec![ClientState::Pending, ClientState::Retrying],
            Some(true),
        ),
        Some(s) => match ClientState::parse(s) {
            Some(st @ (ClientState::Pending | ClientState::Retrying)) => (vec![st], Some(false)),
            Some(st) => (vec![st], None),
            None => {
                return Err(invalid(
                    "state",
                    "must be one of pending, synced, retrying, dead, held, converted",
                ))
            }
        },
    };
    // A cursor is a client id from an earlier page: never a control character
    // (PostgreSQL cannot compare a NUL).
    if query
        .cursor
        .as_deref()
        .is_some_and(|c| c.chars().any(char::is_control))
    {
        return Err(invalid(
            "cursor",
            "must be the nextCursor of an earlier page",
        ));
    }
    // Held and pending/retrying are the same rows, told apart by the connection.
    if only_held.is_some_and(|held| held == conn.enabled) {
        return Ok(HttpResponse::Ok().json(ClientPage {
            clients: vec![],
            next_cursor: None,
        }));
    }
    let rows = state
        .store
        .list_clients(&conn.id, &states, query.cursor.as_deref(), limit)
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|c| c.client_id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(ClientPage {
        clients: rows.iter().map(|c| view(&conn, c)).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get, operation_id = "get_client", path = "/v1/connections/{name}/clients/{clientId}", tag = "clients",
    params(("name" = String, Path), ("clientId" = String, Path)),
    responses(
        (status = 200, body = ClientView),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection or client", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    _: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, client_id) = path.into_inner();
    let conn = state.connection(&name).await?;
    let client_id = path_client_id(&conn, client_id)?;
    let client = client(&state, &conn, &client_id).await?;
    Ok(HttpResponse::Ok().json(view(&conn, &client)))
}

#[utoipa::path(
    post, operation_id = "retry_client", path = "/v1/connections/{name}/clients/{clientId}/retry", tag = "clients",
    params(("name" = String, Path), ("clientId" = String, Path)),
    responses(
        (status = 202, description = "Due now, with a fresh attempt count", body = ClientView),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection or client", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry(
    _: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (name, client_id) = path.into_inner();
    let conn = state.connection(&name).await?;
    let client_id = path_client_id(&conn, client_id)?;
    let now = state.clock.now();
    if !state
        .store
        .requeue_client(&conn.id, &client_id, now)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "no client `{client_id}` on `{name}`"
        )));
    }
    state.wake.notify_one();
    tracing::info!(connection = %conn.name, %client_id, "client requeued");
    let client = client(&state, &conn, &client_id).await?;
    Ok(HttpResponse::Accepted().json(view(&conn, &client)))
}

/// How many clients were requeued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

#[utoipa::path(
    post, operation_id = "retry_dead_clients", path = "/v1/connections/{name}/retry-dead", tag = "clients",
    params(("name" = String, Path)),
    responses(
        (status = 202, description = "Every dead client is due again", body = Requeued),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_dead(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let requeued = state
        .store
        .requeue_dead(&conn.id, state.clock.now())
        .await?;
    state.wake.notify_one();
    tracing::info!(connection = %conn.name, requeued, "dead clients requeued");
    Ok(HttpResponse::Accepted().json(Requeued { requeued }))
}

#[utoipa::path(
    post, operation_id = "test_connection", path = "/v1/connections/{name}/test", tag = "connections",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "What a fresh token and describe of Lead showed", body = check::TestReport),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Credentials not set, each named", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn test(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let creds = check::credentials(&conn, &state.master_key)?;
    let report = check::test(&state.salesforce, &conn, &creds).await;
    tracing::info!(connection = %conn.name, ok = report.credentials.ok, "connection tested");
    Ok(HttpResponse::Ok().json(report))
}

#[utoipa::path(
    post, operation_id = "preview_lead", path = "/v1/connections/{name}/preview", tag = "connections",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json", description = "A webhook body, as B2CORE sends it"),
    responses(
        (status = 200, description = "The exact Lead JSON; nothing is sent", body = check::Preview),
        (status = 400, description = "Not a client event", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn preview(
    _: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, state.max_body_bytes).await?;
    let conn = state.connection(&path).await?;
    let ev = match event::parse(body.to_string().as_bytes()).map_err(ApiError::InvalidPayload)? {
        Parsed::Client(ev) => ev,
        Parsed::Ignored { event_type } => {
            return Err(ApiError::InvalidPayload(format!(
                "`{event_type}` events are not synced"
            )))
        }
    };
    let now = state.clock.now();
    let preview = check::preview(&state.salesforce, &state.master_key, &conn, &ev, now).await;
    Ok(HttpResponse::Ok().json(preview))
}

#[utoipa::path(
    get, operation_id = "list_lead_fields", path = "/v1/connections/{name}/lead-fields", tag = "connections",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The org's writable Lead fields, from describe (cached); `error` says why there are none", body = check::LeadFieldList),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Credentials not set, each named", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn lead_fields(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let creds = check::credentials(&conn, &state.master_key)?;
    Ok(HttpResponse::Ok().json(check::lead_fields(&state.salesforce, &creds).await))
}
