use serde_json::Value;

use crate::helpers::spawn_app;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// Fails when `openapi/openapi.json` is stale. `UPDATE_OPENAPI=1 cargo test` rewrites it.
#[test]
fn the_checked_in_openapi_document_is_current() {
    let generated = leadbridge::http::openapi::document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_one() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.unwrap();
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(CHECKED_IN).unwrap()).unwrap();
    assert_eq!(served, checked_in);
    assert!(served["paths"]["/v1/webhooks/{connectionName}"]["post"].is_object());
    assert!(served["components"]["securitySchemes"]["adminToken"].is_object());
}
