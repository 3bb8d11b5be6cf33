//! Sync state per client, requeueing, and the connection's test and preview.

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::Problem;
use super::{read_json, Admin, ApiError, AppState};
use crate::connections::FieldError;
use crate::domain::Connection;
use crate::domain::{ClientId, ClientRecord, ClientState};
use crate::mapping::{self, Form, Known, Pending, Target};
use crate::salesforce::{errors::oauth_hint, Credentials, Failure};
use crate::webhook::{event, Parsed};

const MAX_PAGE: u32 = 500;

/// Salesforce's last error for a client.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastError {
    /// Salesforce's `errorCode` / `statusCode`, or the OAuth `error`.
    pub code: String,
    pub message: String,
}

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

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Validation(vec![FieldError {
        field: field.into(),
        message: message.into(),
    }])
}

#[utoipa::path(
    get, path = "/v1/connections/{name}/clients", tag = "clients",
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
    get, path = "/v1/connections/{name}/clients/{clientId}", tag = "clients",
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
    let client_id = ClientId::from_stored(client_id);
    let conn = state.connection(&name).await?;
    let client = state
        .store
        .client(&conn.id, &client_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no client `{client_id}` on `{name}`")))?;
    Ok(HttpResponse::Ok().json(view(&conn, &client)))
}

#[utoipa::path(
    post, path = "/v1/connections/{name}/clients/{clientId}/retry", tag = "clients",
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
    let client_id = ClientId::from_stored(client_id);
    let conn = state.connection(&name).await?;
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
    let client = state
        .store
        .client(&conn.id, &client_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no client `{client_id}` on `{name}`")))?;
    Ok(HttpResponse::Accepted().json(view(&conn, &client)))
}

/// How many clients were requeued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

#[utoipa::path(
    post, path = "/v1/connections/{name}/retry-dead", tag = "clients",
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

/// Salesforce's answer to the token request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsCheck {
    pub ok: bool,
    pub instance_url: Option<String>,
    /// OAuth `error`, e.g. `invalid_client`.
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// What to check, in plain words.
    pub hint: Option<String>,
}

/// A mapped or configured Lead field in this org.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldCheck {
    /// `status`, `clientType`, `verificationLevel` or `externalIdField`.
    pub setting: String,
    pub field: String,
    pub exists: bool,
    pub writable: bool,
    pub external_id: bool,
}

/// The connection test's report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub credentials: CredentialsCheck,
    /// Null when the token failed; else whether describe of Lead worked.
    pub describe_ok: Option<bool>,
    /// Salesforce's error for describe, if it failed.
    pub describe_error: Option<LastError>,
    pub fields: Vec<FieldCheck>,
    /// Whether Lead has MiddleName here (null if unknown).
    pub middle_name: Option<bool>,
    /// Whether Lead has CountryCode (country picklists) here (null if unknown).
    pub country_code: Option<bool>,
}

fn credentials(state: &AppState, conn: &Connection) -> Result<Credentials, ApiError> {
    let mut missing = Vec::new();
    for (field, set) in [
        ("domainUrl", conn.domain_url.is_some()),
        ("consumerKey", conn.consumer_key.is_some()),
        ("consumerSecret", conn.consumer_secret_sealed.is_some()),
    ] {
        if !set {
            missing.push(FieldError {
                field: field.into(),
                message: "is required to call Salesforce".into(),
            });
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Validation(missing));
    }
    Credentials::of(conn, &state.master_key).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))
}

#[utoipa::path(
    post, path = "/v1/connections/{name}/test", tag = "connections",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "What a fresh token and describe of Lead showed", body = TestReport),
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
    let creds = credentials(&state, &conn)?;
    let mut report = TestReport {
        credentials: CredentialsCheck {
            ok: false,
            instance_url: None,
            error: None,
            error_description: None,
            hint: None,
        },
        describe_ok: None,
        describe_error: None,
        fields: vec![],
        middle_name: None,
        country_code: None,
    };
    let token = match state.salesforce.fresh_token(&creds).await {
        Ok(t) => t,
        Err(f) => {
            report.credentials.error = Some(f.code().into());
            report.credentials.error_description = Some(match &f {
                Failure::Auth { description, .. } => description.clone(),
                other => other.message(),
            });
            if let Failure::Auth { error, description } = &f {
                report.credentials.hint = Some(oauth_hint(error, description).into());
            }
            return Ok(HttpResponse::Ok().json(report));
        }
    };
    report.credentials.ok = true;
    report.credentials.instance_url = Some(token.instance_url.clone());
    match state.salesforce.describe_with(&creds, &token).await {
        Err(f) => {
            report.describe_ok = Some(false);
            report.describe_error = Some(LastError {
                code: f.code().into(),
                message: f.message(),
            });
        }
        Ok(d) => {
            report.describe_ok = Some(true);
            report.middle_name = Some(d.fields.contains_key("MiddleName"));
            report.country_code = Some(d.fields.contains_key("CountryCode"));
            let m = &conn.field_mapping;
            for (setting, field) in [
                ("status", &m.status),
                ("clientType", &m.client_type),
                ("verificationLevel", &m.verification_level),
                ("externalIdField", &conn.external_id_field),
            ] {
                let Some(field) = field else { continue };
                let info = d.fields.get(field);
                report.fields.push(FieldCheck {
                    setting: setting.into(),
                    field: field.clone(),
                    exists: info.is_some(),
                    writable: info.is_some_and(|i| i.createable && i.updateable),
                    external_id: d.external_ids.contains(field),
                });
            }
        }
    }
    tracing::info!(connection = %conn.name, ok = report.credentials.ok, "connection tested");
    Ok(HttpResponse::Ok().json(report))
}

/// The Lead bodies a webhook would produce.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Body of the first write for this client (POST, or the first upsert).
    #[schema(value_type = Object)]
    pub create: serde_json::Map<String, serde_json::Value>,
    /// Body of a later write (PATCH by Id, or upsert): only what the event changes.
    #[schema(value_type = Object)]
    pub update: serde_json::Map<String, serde_json::Value>,
    /// `sobjects/Lead/{externalIdField}/{clientId}` when writes are upserts.
    pub upsert_path: Option<String>,
    /// True when the org's describe shaped the bodies.
    pub describe_applied: bool,
    pub warnings: Vec<String>,
}

#[utoipa::path(
    post, path = "/v1/connections/{name}/preview", tag = "connections",
    params(("name" = String, Path)),
    request_body(content = Object, content_type = "application/json", description = "A webhook body, as B2CORE sends it"),
    responses(
        (status = 200, description = "The exact Lead JSON; nothing is sent", body = Preview),
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
    let pending = Pending {
        occurred_at: ev.occurred_at.unwrap_or_else(|| state.clock.now()),
        seq: 0,
        changes: mapping::changes(&ev.data),
    };
    let merge = mapping::merge(&Known::default(), &[pending]);
    let mut warnings = Vec::new();
    let describe = match Credentials::of(&conn, &state.master_key) {
        Err(_) => {
            warnings
                .push("credentials are not set: fields were not checked against the org".into());
            None
        }
        Ok(creds) => match state.salesforce.describe_lead(&creds).await {
            Ok(d) => Some(d),
            Err(f) => {
                warnings.push(format!(
                    "describe of Lead failed ({}): fields were not checked against the org",
                    f.code()
                ));
                None
            }
        },
    };
    let none = BTreeSet::new();
    let target = Target {
        company: conn.company.as_deref(),
        mapping: &conn.field_mapping,
        fields: describe.as_ref().map(|d| &d.fields),
        exclude: &none,
    };
    let mut create = mapping::lead(Form::Create, &merge, &target);
    let update = mapping::lead(Form::Update, &merge, &target);
    if let Some(field) = &conn.external_id_field {
        create.body.remove(field);
    }
    warnings.extend(create.warnings);
    Ok(HttpResponse::Ok().json(Preview {
        create: create.body,
        update: update.body,
        upsert_path: conn
            .external_id_field
            .as_ref()
            .map(|f| format!("sobjects/Lead/{f}/{}", ev.client_id)),
        describe_applied: describe.is_some(),
        warnings,
    }))
}
