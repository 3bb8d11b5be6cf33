//! The OpenAPI document, generated from the handlers' annotations. The copy in
//! `openapi/openapi.json` is checked against it by a test.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{backfill, clients, connections, health, problem, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "leadbridge",
        description = "Keeps Salesforce Leads in step with B2CORE clients. Admin calls need `Authorization: Bearer <LEADBRIDGE_ADMIN_TOKEN>`. Every error is RFC 9457 `application/problem+json`."
    ),
    paths(
        webhooks::receive,
        connections::create, connections::list, connections::get, connections::patch,
        connections::delete, connections::rotate_webhook_secret,
        connections::revoke_previous_webhook_secrets,
        clients::test, clients::preview, clients::lead_fields, clients::list, clients::get, clients::retry,
        clients::retry_dead, backfill::upload, backfill::list, backfill::get,
        health::live, health::live_head, health::ready, health::ready_head, health::metrics, serve,
    ),
    components(schemas(
        problem::Problem, crate::connections::FieldError, crate::domain::FieldMapping,
        crate::domain::SignatureScheme, crate::domain::DuplicatePolicy, webhooks::WebhookAnswer,
        connections::ConnectionView, connections::ApiUsageView, connections::CreatedConnection, connections::ConnectionList,
        connections::RotatedSecret, connections::RevokedSecrets, connections::ConnectionSettings, connections::NewConnection,
        health::HealthStatus, clients::ClientView, clients::ClientPage, crate::connections::check::LastError,
        clients::Requeued, crate::connections::check::TestReport, crate::connections::check::CredentialsCheck, crate::connections::check::FieldCheck,
        crate::connections::check::Preview, crate::connections::check::LeadFieldList, crate::connections::check::OrgRulesCheck, crate::connections::check::LeadFieldView,
        connections::ClientCounts, backfill::JobView, backfill::JobList, crate::domain::Rejection,
    )),
    modifiers(&AdminToken),
    security(("adminToken" = [])),
    tags(
        (name = "webhooks", description = "B2CORE's signed client events"),
        (name = "connections", description = "Salesforce connections (B2CORE's System > External connections)"),
        (name = "clients", description = "Sync state per B2CORE client"),
        (name = "backfill", description = "Bringing in the clients that existed before the connection"),
        (name = "health", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// How many times [`document`] was built: a unit test checks that serving
/// does not build it again.
#[cfg(test)]
static BUILT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The document as served and as checked in.
pub fn document() -> String {
    #[cfg(test)]
    BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

#[utoipa::path(get, operation_id = "openapi_document", path = "/openapi.json", tag = "health",
    responses((status = 200, description = "This document", body = Object)), security(()))]
pub async fn serve() -> HttpResponse {
    // Built once: it never changes while the process runs, and building it
    // cost 0.7 ms of CPU per request, which anyone could ask for.
    static DOCUMENT: std::sync::LazyLock<bytes::Bytes> =
        std::sync::LazyLock::new(|| bytes::Bytes::from(document()));
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.clone())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    #[actix_web::test]
    async fn the_served_document_is_built_once_not_per_request() {
        let first = super::serve().await;
        assert_eq!(first.status(), 200);
        let built = super::BUILT.load(Ordering::Relaxed);
        for _ in 0..3 {
            assert_eq!(super::serve().await.status(), 200);
        }
        assert_eq!(super::BUILT.load(Ordering::Relaxed), built);
    }
}
