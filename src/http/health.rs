//! Unauthenticated probes for load balancers and Prometheus.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::Problem;
use super::{ApiError, AppState};

/// Answer of a passing probe.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` (live) or `ready`.
    pub status: &'static str,
}

#[utoipa::path(get, operation_id = "live", path = "/health/live", tag = "health",
    responses((status = 200, description = "The process is up", body = HealthStatus)), security(()))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus { status: "ok" })
}

/// `HEAD /health/live`, for load balancers that probe with HEAD: the GET's
/// status and headers, no body.
#[utoipa::path(head, operation_id = "live_head", path = "/health/live", tag = "health",
    responses((status = 200, description = "The process is up")), security(()))]
pub async fn live_head() -> HttpResponse {
    live().await
}

#[utoipa::path(get, operation_id = "ready", path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "The store answers: send traffic here", body = HealthStatus),
        (status = 503, description = "The store is unreachable", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ), security(()))]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    Ok(HttpResponse::Ok().json(HealthStatus { status: "ready" }))
}

/// `HEAD /health/ready`: the GET's status and headers, no body.
#[utoipa::path(head, operation_id = "ready_head", path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "The store answers: send traffic here"),
        (status = 503, description = "The store is unreachable",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ), security(()))]
pub async fn ready_head(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    ready(state).await
}

#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format; every name starts with `leadbridge_`",
        body = String, content_type = "text/plain")), security(()))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The store's health is asked at every scrape (one cheap query); the
    // backlog is counted at most once per LEADBRIDGE_METRICS_BACKLOG_SECS.
    let counted = match state.store.ping().await {
        Ok(()) => state.backlog.get(&state.store).await,
        Err(e) => Err(e),
    };
    let backlog = match counted {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the backlog could not be read");
            None
        }
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render(
            backlog.as_ref().map(|b| b.as_slice()),
        ))
}
