use reqwest::Method;
use serde_json::json;

use crate::helpers::{captured_logs, client_event, spawn_app, Webhook};

/// Drives every endpoint (successes and failures) and checks that no secret
/// shows up in a log line, nor in any answer but the one that issues it.
#[tokio::test]
async fn no_secret_appears_in_any_response_or_log_line() {
    let app = spawn_app().await;
    let consumer_secret = "cs-4f1d9a0b7e-never-shown";
    let mut bodies = Vec::new();

    let created = app
        .create_connection(json!({
            "name": "acme", "domainUrl": "https://acme.my.salesforce.com", "consumerKey": "ck",
            "consumerSecret": consumer_secret, "company": "Acme", "enabled": true
        }))
        .await;
    let webhook_secret = created["webhookSecret"].as_str().unwrap().to_string();
    let res = app
        .admin(Method::POST, "/v1/connections/acme/webhook-secret/rotate")
        .send()
        .await
        .unwrap();
    let rotated: serde_json::Value = res.json().await.unwrap();
    let rotated = rotated["webhookSecret"].as_str().unwrap().to_string();

    for (method, path, body) in [
        (Method::GET, "/v1/connections", None),
        (Method::GET, "/v1/connections/acme", None),
        (
            Method::PATCH,
            "/v1/connections/acme",
            Some(json!({"consumerSecret": consumer_secret, "caption": "c"})),
        ),
        (
            Method::PATCH,
            "/v1/connections/acme",
            Some(json!({"consumerSecret": 5})),
        ),
        (
            Method::POST,
            "/v1/connections",
            Some(json!({"name": "acme", "consumerSecret": consumer_secret})),
        ),
        (
            Method::POST,
            "/v1/connections",
            Some(json!({"name": "BAD", "consumerSecret": consumer_secret})),
        ),
    ] {
        let mut req = app.admin(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        bodies.push(req.send().await.unwrap().text().await.unwrap());
    }
    // Refused admin calls, with a token that is almost right.
    let almost = format!("{}0", app.admin_token);
    let res = app
        .client
        .get(app.url("/v1/connections"))
        .bearer_auth(&almost)
        .send()
        .await
        .unwrap();
    bodies.push(res.text().await.unwrap());
    // Webhooks: good, bad signature, bad body.
    for hook in [
        Webhook::standard(&webhook_secret, "m1", app.now(), &client_event(1)),
        Webhook::standard(&rotated, "m2", app.now(), &client_event(2)),
        Webhook::standard(&rotated, "m3", app.now(), "{oops"),
        Webhook::standard(&rotated, "m4", app.now(), &client_event(3))
            .with_header("webhook-signature", "v1,AAAA"),
    ] {
        bodies.push(app.post_webhook("acme", &hook).await.text().await.unwrap());
    }

    let logs = captured_logs();
    assert!(logs.contains("webhook accepted"), "logs were not captured");
    let secrets = [
        consumer_secret,
        &webhook_secret,
        &webhook_secret[6..],
        &rotated,
        &rotated[6..],
        &app.admin_token,
        &almost,
        &app.master_key,
    ];
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret is in the logs");
        for body in &bodies {
            assert!(!body.contains(secret), "a secret is in an answer: {body}");
        }
    }
}
