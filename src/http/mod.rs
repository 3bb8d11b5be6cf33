//! Routes, request plumbing shared by handlers, and the OpenAPI document.

pub mod backfill;
pub mod body_guard;
pub mod clients;
pub mod connections;
pub mod console;
pub mod health;
pub mod openapi;
pub mod problem;
pub mod request_span;
pub mod webhooks;

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{dev::Payload, FromRequest, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};

use crate::clock::Clock;
use crate::connections::Rules;
use crate::crypto::{constant_time_eq, MasterKey};
use crate::domain::{Connection, ConnectionName};
use crate::store::Store;
pub use problem::ApiError;

/// What every handler can reach.
pub struct AppState {
    pub store: Arc<Store>,
    pub master_key: Arc<MasterKey>,
    pub salesforce: Arc<crate::salesforce::Salesforce>,
    /// Connections with opened webhook secrets, reused briefly by the webhook path.
    pub receivers: crate::webhook::Receivers,
    /// Group commit of accepted webhooks.
    pub ingest: crate::ingest::Ingest,
    /// Wakes the sync worker when an event is stored.
    pub wake: Arc<crate::sync::pace::Wake>,
    pub admin_token: SecretString,
    pub rules: Rules,
    /// Percent of the daily API allocation past which only urgent writes go out.
    pub quota_budget_percent: u8,
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive (a backfill: may stall).
    pub body_timeout: std::time::Duration,
    /// What `/metrics` last counted of the backlog.
    pub backlog: crate::metrics::BacklogCache,
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// The connection named `name`, or 404 (a name that cannot exist is unknown too).
    pub async fn connection(&self, name: &str) -> Result<Connection, ApiError> {
        let not_found = || ApiError::NotFound(format!("no connection is named `{name}`"));
        let name = ConnectionName::parse(name).map_err(|_| not_found())?;
        self.store
            .get_connection(&name)
            .await?
            .ok_or_else(not_found)
    }
}

/// Mounts every route on an actix `App`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // Webhooks by their prefix alone, first: a resource with a `{name}`
    // segment is matched by a regular expression, which cost a webhook
    // more than checking its signature. The handler reads the name.
    cfg.service(web::scope(webhooks::PREFIX).default_service(web::to(webhooks::receive)));
    cfg.configure(console::routes);
    cfg.service(resource("/health/live", "GET", |r| {
        r.route(web::get().to(health::live))
    }))
    .service(resource("/health/ready", "GET", |r| {
        r.route(web::get().to(health::ready))
    }))
    .service(resource("/metrics", "GET", |r| {
        r.route(web::get().to(health::metrics))
    }))
    .service(resource("/openapi.json", "GET", |r| {
        r.route(web::get().to(openapi::serve))
    }))
    .service(resource("/v1/connections", "GET, POST", |r| {
        r.route(web::get().to(connections::list))
            .route(web::post().to(connections::create))
    }))
    .service(resource(
        "/v1/connections/{name}",
        "GET, PATCH, DELETE",
        |r| {
            r.route(web::get().to(connections::get))
                .route(web::patch().to(connections::patch))
                .route(web::delete().to(connections::delete))
        },
    ))
    .service(resource(
        "/v1/connections/{name}/webhook-secret/rotate",
        "POST",
        |r| r.route(web::post().to(connections::rotate_webhook_secret)),
    ))
    .service(resource(
        "/v1/connections/{name}/webhook-secret/revoke-previous",
        "POST",
        |r| r.route(web::post().to(connections::revoke_previous_webhook_secrets)),
    ))
    .service(resource("/v1/connections/{name}/test", "POST", |r| {
        r.route(web::post().to(clients::test))
    }))
    .service(resource("/v1/connections/{name}/preview", "POST", |r| {
        r.route(web::post().to(clients::preview))
    }))
    .service(resource("/v1/connections/{name}/lead-fields", "GET", |r| {
        r.route(web::get().to(clients::lead_fields))
    }))
    .service(resource("/v1/connections/{name}/clients", "GET", |r| {
        r.route(web::get().to(clients::list))
    }))
    .service(resource(
        "/v1/connections/{name}/clients/{clientId}",
        "GET",
        |r| r.route(web::get().to(clients::get)),
    ))
    .service(resource(
        "/v1/connections/{name}/clients/{clientId}/retry",
        "POST",
        |r| r.route(web::post().to(clients::retry)),
    ))
    .service(resource("/v1/connections/{name}/retry-dead", "POST", |r| {
        r.route(web::post().to(clients::retry_dead))
    }))
    .service(resource(
        "/v1/connections/{name}/backfill",
        "GET, POST",
        |r| {
            r.route(web::get().to(backfill::list))
                .route(web::post().to(backfill::upload))
        },
    ))
    .service(resource(
        "/v1/connections/{name}/backfill/{jobId}",
        "GET",
        |r| r.route(web::get().to(backfill::get)),
    ));
}

/// A resource whose other methods are answered 405 in problem+json.
pub(super) fn resource(
    path: &str,
    allowed: &'static str,
    f: impl FnOnce(actix_web::Resource) -> actix_web::Resource,
) -> actix_web::Resource {
    f(web::resource(path)).default_service(web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allowed,
        })
    }))
}

/// Query strings that do not parse are answered in problem+json too.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::InvalidPayload(format!("the query string is invalid: {err}")).into()
    })
}

/// Any path that no route matches.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("nothing is at {}", req.path())))
}

/// Refuses a request whose declared `Content-Length` is over `limit`, before reading it.
pub fn check_declared_length(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(ApiError::PayloadTooLarge(limit)),
        _ => Ok(()),
    }
}

/// Reads the body, stopping with 413 as soon as it passes `limit` bytes.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::InvalidPayload(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a JSON request body of the admin API.
pub async fn read_json(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<serde_json::Value, ApiError> {
    check_declared_length(req, limit)?;
    let body = read_body(payload, limit).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidPayload(format!("the body is not valid JSON: {e}")))
}

/// Proof that the request carried the admin bearer token (compared in constant time).
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::Internal(anyhow::anyhow!(
                "app state missing"
            ))));
        };
        let offered = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let ok = offered.is_some_and(|t| {
            constant_time_eq(t.as_bytes(), state.admin_token.expose_secret().as_bytes())
        });
        ready(if ok {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        })
    }
}
