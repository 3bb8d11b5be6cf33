//! The route table: every path the service answers, and the 405 that
//! answers other methods. Handlers are in the submodules; what they share
//! is in [`state`] (what a handler reaches) and [`extract`] (admin auth,
//! bodies, queries).

pub mod backfill;
pub mod body_guard;
pub mod clients;
pub mod connection_guard;
pub mod connections;
pub mod console;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod problem;
pub mod request_span;
pub mod state;
pub mod webhooks;

use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};

pub use extract::{query_config, Admin};
pub use problem::ApiError;
pub use state::AppState;

/// Mounts every route on an actix `App`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // Webhooks by their prefix alone, first: a resource with a `{name}`
    // segment is matched by a regular expression, which cost a webhook
    // more than checking its signature. The handler reads the name.
    cfg.service(
        web::scope(crate::webhook::PATH_PREFIX).default_service(web::to(webhooks::receive)),
    );
    cfg.configure(console::routes);
    cfg.service(resource("/health/live", "GET, HEAD", |r| {
        r.route(web::get().to(health::live))
            .route(web::head().to(health::live_head))
    }))
    .service(resource("/health/ready", "GET, HEAD", |r| {
        r.route(web::get().to(health::ready))
            .route(web::head().to(health::ready_head))
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
    .service(resource(backfill::UPLOAD_ROUTE, "GET, POST", |r| {
        r.route(web::get().to(backfill::list))
            .route(web::post().to(backfill::upload))
    }))
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

/// Any path that no route matches.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "nothing is at {}",
        problem::shown_path(req.path())
    )))
}
