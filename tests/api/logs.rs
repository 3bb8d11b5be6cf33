//! Log lines: JSON with the request id, connection, client and Salesforce's
//! error code; no personal data at info level.

use serde_json::{json, Value};

use crate::emulator::{Fault, OrgConfig};
use crate::helpers::{captured_logs, spawn_app, spawn_with_org, Webhook};

/// Captured JSON lines about connection `name` (the capture is shared by every test).
fn lines_of(name: &str) -> Vec<Value> {
    captured_logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["connection"] == name)
        .collect()
}

fn with_message<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["fields"]["message"] == message)
        .unwrap_or_else(|| panic!("no `{message}` line in {lines:#?}"))
}

#[tokio::test]
async fn log_lines_carry_request_connection_client_and_error_code_but_no_personal_data() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "logs-a", json!({})).await;
    let body = json!({"type": "client.created", "data": {
        "clientId": 77, "email": "zaphod@heart.of.gold",
        "info": {"firstName": "Zaphod", "lastName": "Beeblebrox"},
        "phones": [{"number": "+35799111222", "confirmed": true}]}});
    assert_eq!(app.send_event("logs-a", &secret, &body).await.status(), 202);
    // A malformed body's error quotes the offending value: it must not reach the logs.
    let bad = json!({"type": "client.updated", "data": {"clientId": 78, "phones": "+35799111222"}});
    assert_eq!(app.send_event("logs-a", &secret, &bad).await.status(), 400);
    emu.fail_next(Fault::LockRow, 1);
    app.sync().await;

    let lines = lines_of("logs-a");
    let accepted = with_message(&lines, "webhook accepted");
    assert_eq!(accepted["fields"]["client_id"], "77");
    let request_id = accepted["span"]["request_id"].as_str().unwrap_or_default();
    assert!(!request_id.is_empty(), "{accepted}");
    let failed = with_message(&lines, "sync failed");
    assert_eq!(failed["fields"]["client_id"], "77");
    assert_eq!(failed["fields"]["error_code"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(failed["level"], "WARN");

    // Info and above: the client's id, never its data.
    let all = captured_logs();
    for line in all
        .lines()
        .filter(|l| !l.contains(r#""level":"DEBUG""#) && !l.contains(r#""level":"TRACE""#))
    {
        for personal in [
            "zaphod@heart.of.gold",
            "Zaphod",
            "Beeblebrox",
            "35799111222",
        ] {
            assert!(
                !line.contains(personal),
                "personal data at info level: {line}"
            );
        }
    }
    assert!(!all.contains(&secret), "the webhook secret was logged");
}

#[tokio::test]
async fn a_query_string_never_reaches_the_logs_even_on_a_4xx() {
    let (app, _emu) = spawn_with_org(OrgConfig::default()).await;
    let marker = format!("tok-{}", uuid::Uuid::new_v4().simple());
    // Unauthenticated (401) and unknown (404), each with a token in the query.
    for path in [
        format!("/v1/connections?token={marker}"),
        format!("/v1/nothing-here?token={marker}"),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert!(res.status().is_client_error());
    }
    let logs = captured_logs();
    assert!(
        logs.contains(r#""http.target":"/v1/nothing-here""#),
        "the path is still logged"
    );
    assert!(!logs.contains(&marker), "the query string was logged");
}

/// A webhook's span is made only when something is logged in it: the lines
/// it does write (an ignored type at info, a failure at error) still carry
/// the request's id, method and path.
#[tokio::test]
async fn a_webhooks_lines_carry_its_request_span_though_it_is_made_only_to_log() {
    let app = spawn_app().await;
    let secret = app.connection("logs-c").await;
    let ignored = Webhook::standard(&secret, "m1", app.now(), r#"{"type":"deposit.created"}"#);
    assert_eq!(app.post_webhook("logs-c", &ignored).await.status(), 200);
    // Another app whose store is closed before its first webhook: 503.
    let down = spawn_app().await;
    let secret = down.connection("logs-c").await;
    down.store.close().await;
    let body = json!({"type": "client.created", "data": {"clientId": 5}}).to_string();
    let failed = Webhook::standard(&secret, "m2", down.now(), &body);
    assert_eq!(down.post_webhook("logs-c", &failed).await.status(), 503);

    let lines: Vec<Value> = captured_logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["span"]["http.target"] == "/v1/webhooks/logs-c")
        .collect();
    let ignored = with_message(&lines, "webhook ignored: event type is not synced");
    let failed = with_message(&lines, "request failed");
    assert_eq!(failed["level"], "ERROR");
    let ids: Vec<&str> = [ignored, failed]
        .iter()
        .map(|l| {
            assert_eq!(l["span"]["http.method"], "POST", "{l}");
            l["span"]["request_id"].as_str().unwrap_or_default()
        })
        .collect();
    assert!(ids.iter().all(|id| id.len() == 36), "{ids:?}");
    assert_ne!(ids[0], ids[1], "each request has its own id");
}
