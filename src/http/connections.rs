//! `/v1/connections…`: thin handlers over `connections::apply` and the store.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{read_json, Admin};
use super::problem::Problem;
use super::{ApiError, AppState};
use crate::connections::{self, FieldError};
use crate::domain::ClientState;
use crate::domain::{
    Connection, ConnectionId, ConnectionName, DuplicatePolicy, FieldMapping, SignatureScheme,
};
use crate::store::Backlog;

/// How long a rotated-out webhook secret keeps verifying.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;
/// Admin bodies are small; this bounds them well below the webhook limit.
const ADMIN_BODY_LIMIT: usize = 64 * 1024;

/// A connection as the API shows it. Secrets are never shown here.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub name: String,
    pub caption: Option<String>,
    /// Always `salesforce`.
    pub provider: String,
    pub domain_url: Option<String>,
    pub consumer_key: Option<String>,
    /// Whether a consumer secret is stored (it is write-only).
    pub consumer_secret_set: bool,
    /// Applied to all new Leads.
    pub company: Option<String>,
    pub enabled: bool,
    pub field_mapping: FieldMapping,
    pub external_id_field: Option<String>,
    pub api_version: String,
    pub signature_scheme: SignatureScheme,
    /// Header of the `hmac-sha256-hex` scheme; `X-Signature` when null.
    pub signature_header: Option<String>,
    /// Whether the org's Lead assignment rule runs on a Lead's first create
    /// (`Sforce-Auto-Assign: TRUE`); updates never reassign (`FALSE`).
    pub assign_on_create: bool,
    /// When the org's duplicate rule matches a Lead being created.
    pub on_duplicate: DuplicatePolicy,
    /// Path to register in B2CORE, relative to this service's public URL.
    pub webhook_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The org's daily API usage as Salesforce last reported it (null before the first call).
    pub api_usage: Option<ApiUsageView>,
    /// Clients by sync state and events not yet synced, counted at most every
    /// `LEADBRIDGE_METRICS_BACKLOG_SECS` (5 s); null in answers to changes.
    pub clients: Option<ClientCounts>,
}

/// How many clients of a connection are in each state.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCounts {
    pub pending: u64,
    pub synced: u64,
    pub retrying: u64,
    pub dead: u64,
    /// Pending or retrying while the connection is disabled.
    pub held: u64,
    pub converted: u64,
    /// Stored events not yet confirmed by Salesforce.
    pub pending_events: u64,
}

impl ClientCounts {
    fn of(b: &Backlog) -> Self {
        let mut c = Self {
            pending_events: b.pending_events,
            ..Self::default()
        };
        for (state, n) in &b.clients {
            let slot = match state {
                ClientState::Pending | ClientState::Retrying if !b.enabled => &mut c.held,
                ClientState::Pending => &mut c.pending,
                ClientState::Retrying => &mut c.retrying,
                ClientState::Synced => &mut c.synced,
                ClientState::Dead => &mut c.dead,
                ClientState::Converted => &mut c.converted,
            };
            *slot += n;
        }
        c
    }
}

/// The views of `conns` with their client counts.
async fn counted_views(
    state: &AppState,
    conns: &[Connection],
) -> Result<Vec<ConnectionView>, ApiError> {
    let backlog = state.backlog.get(&state.store).await?;
    Ok(conns
        .iter()
        .map(|c| {
            let mut v = ConnectionView::new(c, state.quota_budget_percent);
            let counted = backlog.iter().find(|b| b.connection == c.name);
            v.clients = Some(counted.map(ClientCounts::of).unwrap_or_default());
            v
        })
        .collect())
}

/// The org's daily API usage and leadbridge's budget.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiUsageView {
    /// Requests used in the last 24 h, all of the org's integrations together
    /// (or this app's, when the app's own quota is the fuller one).
    pub used: i64,
    /// The org's daily allocation (or the app's quota, as for `used`).
    pub max: i64,
    /// Past this percent of `max`, only urgent writes (webhooks) go out.
    pub budget_percent: u8,
    /// Whether `used` has reached the budget.
    pub budget_reached: bool,
    pub observed_at: DateTime<Utc>,
}

impl ConnectionView {
    /// The view of `c` with the API budget in force.
    pub fn new(c: &Connection, budget_percent: u8) -> Self {
        let mut v = Self::from(c);
        v.api_usage = c.api_usage.map(|u| ApiUsageView {
            used: u.used,
            max: u.max,
            budget_percent,
            budget_reached: u.at_least(budget_percent),
            observed_at: u.at,
        });
        v
    }
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        Self {
            name: c.name.to_string(),
            caption: c.caption.clone(),
            provider: c.provider.clone(),
            domain_url: c.domain_url.clone(),
            consumer_key: c.consumer_key.clone(),
            consumer_secret_set: c.consumer_secret_sealed.is_some(),
            company: c.company.clone(),
            enabled: c.enabled,
            field_mapping: c.field_mapping.clone(),
            external_id_field: c.external_id_field.clone(),
            api_version: c.api_version.clone(),
            signature_scheme: c.signature_scheme,
            signature_header: c.signature_header.clone(),
            assign_on_create: c.assign_on_create,
            on_duplicate: c.on_duplicate,
            webhook_url: format!("/v1/webhooks/{}", c.name),
            created_at: c.created_at,
            updated_at: c.updated_at,
            api_usage: None,
            clients: None,
        }
    }
}

/// Answer to a create: the connection and, this once, its webhook secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedConnection {
    #[serde(flatten)]
    pub connection: ConnectionView,
    /// `whsec_…`; shown only now. Paste it into B2CORE.
    pub webhook_secret: String,
}

/// All connections, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionView>,
}

/// Answer to a rotation: the new secret, shown only now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    pub webhook_secret: String,
    /// Until when the secrets it replaces still verify.
    pub previous_secrets_valid_until: DateTime<Utc>,
}

/// Edit-form fields (every one optional). `null` clears a field.
#[allow(dead_code)] // a schema for the OpenAPI document; bodies are checked by `connections::apply`
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSettings {
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    caption: Option<String>,
    /// `https://{domain}.my.salesforce.com` or a sandbox My Domain
    /// (any http(s) URL when LEADBRIDGE_ALLOW_INSECURE_SALESFORCE is set).
    #[schema(
        example = "https://acme.my.salesforce.com",
        pattern = r"^https://[a-z0-9-]+(--[a-z0-9-]+\.sandbox)?\.my\.salesforce\.com/?$"
    )]
    domain_url: Option<String>,
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    consumer_key: Option<String>,
    /// Write-only.
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    consumer_secret: Option<String>,
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    company: Option<String>,
    /// Enabling needs domainUrl, consumerKey, consumerSecret and company.
    enabled: Option<bool>,
    field_mapping: Option<FieldMapping>,
    /// Lead field marked External ID: writes become upserts by clientId.
    #[schema(pattern = r"^[A-Za-z]([A-Za-z0-9_]{0,78}[A-Za-z0-9])?$")]
    external_id_field: Option<String>,
    #[schema(pattern = r"^v[0-9]+\.0$", example = "v62.0")]
    api_version: Option<String>,
    signature_scheme: Option<SignatureScheme>,
    /// Header of the hex scheme; `X-Signature` by default.
    #[schema(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    signature_header: Option<String>,
    /// Run the org's Lead assignment rule on a Lead's first create (default
    /// true). Updates never reassign a Lead.
    assign_on_create: Option<bool>,
    /// On a duplicate rule's match at create (default `create`): `create`
    /// (allowSave=true), `adopt` (update the one matched Lead instead),
    /// `report` (dead, with the matched Ids).
    on_duplicate: Option<DuplicatePolicy>,
}

/// Body of `POST /v1/connections`.
#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewConnection {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$", example = "acme")]
    name: String,
    /// Only `salesforce`.
    #[schema(example = "salesforce")]
    provider: Option<String>,
    #[serde(flatten)]
    settings: ConnectionSettings,
}

fn validation(errs: connections::FieldErrors) -> ApiError {
    ApiError::Validation(errs.0)
}

#[utoipa::path(
    post, operation_id = "create_connection", path = "/v1/connections", tag = "connections",
    request_body(content = NewConnection, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the webhook secret is shown only now", body = CreatedConnection),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken, or LEADBRIDGE_MAX_CONNECTIONS_CONFIGURED connections exist", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, ADMIN_BODY_LIMIT).await?;
    let name = match body.get("name") {
        Some(Value::String(n)) => ConnectionName::parse(n),
        Some(_) => Err("must be a string".to_string()),
        None => Err("is required".to_string()),
    };
    let now = state.clock.now();
    let id = ConnectionId::generate();
    let base = Connection::new(
        id.clone(),
        name.clone()
            .unwrap_or_else(|_| ConnectionName::parse("placeholder").expect("valid")),
        now,
    );
    let applied = connections::apply(&base, &body, true, state.rules, &state.master_key);
    let conn = match (name, applied) {
        (Ok(_), Ok(conn)) => conn,
        (name, applied) => {
            let mut errs = Vec::new();
            if let Err(message) = name {
                errs.push(FieldError {
                    field: "name".into(),
                    message,
                });
            }
            if let Err(more) = applied {
                errs.extend(more.0.into_iter().filter(|e| e.field != "name"));
            }
            return Err(ApiError::Validation(errs));
        }
    };
    let secret = match state.edit().create(&conn, now).await {
        Err(connections::edit::EditError::Store(crate::store::StoreError::Conflict)) => {
            return Err(ApiError::Conflict(format!(
                "a connection named `{}` already exists",
                conn.name
            )))
        }
        other => other?,
    };
    tracing::info!(connection = %conn.name, enabled = conn.enabled, "connection created");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/connections/{}", conn.name)))
        .json(CreatedConnection {
            connection: ConnectionView::new(&conn, state.quota_budget_percent),
            webhook_secret: secret.expose_secret().to_string(),
        }))
}

#[utoipa::path(
    get, operation_id = "list_connections", path = "/v1/connections", tag = "connections",
    responses(
        (status = 200, body = ConnectionList),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(_: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = state.store.list_connections().await?;
    Ok(HttpResponse::Ok().json(ConnectionList {
        connections: counted_views(&state, &all).await?,
    }))
}

#[utoipa::path(
    get, operation_id = "get_connection", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path)),
    responses(
        (status = 200, body = ConnectionView),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let mut views = counted_views(&state, std::slice::from_ref(&conn)).await?;
    Ok(HttpResponse::Ok().json(views.pop()))
}

#[utoipa::path(
    patch, operation_id = "update_connection", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path)),
    request_body(content = ConnectionSettings, content_type = "application/merge-patch+json",
        description = "JSON merge patch (RFC 7396); `application/json` is accepted too."),
    responses(
        (status = 200, body = ConnectionView),
        (status = 400, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch(
    _: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_json(&req, payload, ADMIN_BODY_LIMIT).await?;
    let current = state.connection(&path).await?;
    let mut next = connections::apply(&current, &body, false, state.rules, &state.master_key)
        .map_err(validation)?;
    next.updated_at = state.clock.now();
    if !state.edit().update(&current, &next).await? {
        return Err(ApiError::NotFound(format!(
            "no connection is named `{}`",
            current.name
        )));
    }
    let credentials_changed = current.credentials_fingerprint() != next.credentials_fingerprint();
    tracing::info!(connection = %next.name, enabled = next.enabled, credentials_changed, "connection updated");
    Ok(HttpResponse::Ok().json(ConnectionView::new(&next, state.quota_budget_percent)))
}

#[utoipa::path(
    delete, operation_id = "delete_connection", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted, with its secrets and unsynced events"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let deleted = state.edit().delete(&conn).await?;
    if !deleted {
        return Err(ApiError::NotFound(format!(
            "no connection is named `{path}`"
        )));
    }
    tracing::info!(connection = %conn.name, "connection deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post, operation_id = "rotate_webhook_secret", path = "/v1/connections/{name}/webhook-secret/rotate", tag = "connections",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The new secret; the previous ones verify for 24 h more", body = RotatedSecret),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The connection holds as many valid secrets as it may (LEADBRIDGE_MAX_SECRETS_PER_CONNECTION): revoke the previous ones first", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_webhook_secret(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let now = state.clock.now();
    let until = now + chrono::Duration::hours(ROTATION_OVERLAP_HOURS);
    let secret = state
        .edit()
        .rotate_webhook_secret(&conn, now, until)
        .await?;
    tracing::info!(connection = %conn.name, "webhook secret rotated");
    Ok(HttpResponse::Ok().json(RotatedSecret {
        webhook_secret: secret.expose_secret().to_string(),
        previous_secrets_valid_until: until,
    }))
}

/// Answer to a revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedSecrets {
    /// Rotated-out secrets that stopped verifying now.
    pub revoked: u64,
}

#[utoipa::path(
    post, operation_id = "revoke_previous_webhook_secrets", path = "/v1/connections/{name}/webhook-secret/revoke-previous", tag = "connections",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "Only the current secret verifies from now on (other replicas: within 2 s)", body = RevokedSecrets),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such connection", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_previous_webhook_secrets(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let conn = state.connection(&path).await?;
    let revoked = state.edit().revoke_previous_webhook_secrets(&conn).await?;
    tracing::info!(connection = %conn.name, revoked, "previous webhook secrets revoked");
    Ok(HttpResponse::Ok().json(RevokedSecrets { revoked }))
}
