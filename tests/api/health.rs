use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn live_and_ready_answer_200_without_a_token() {
    let app = spawn_app().await;
    for (path, status) in [("/health/live", "ok"), ("/health/ready", "ready")] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["status"], status);
    }
}

#[tokio::test]
async fn health_answers_head_as_load_balancers_probe_it() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let res = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.bytes().await.unwrap().is_empty(),
            "{path}: a HEAD has no body"
        );
    }
    app.store.close().await;
    let res = app
        .client
        .head(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    // Other methods are still refused, naming both.
    let res = app
        .client
        .delete(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn ready_answers_503_while_the_store_is_unreachable_and_live_stays_200() {
    let app = spawn_app().await;
    app.store.close().await;
    let res = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("retry-after"));
    let body = assert_problem(res, 503, "unavailable").await;
    assert!(
        !body.to_string().to_lowercase().contains("sqlite"),
        "no store internals in errors: {body}"
    );
    let res = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Metrics still answer, and say the store did not.
    let text = app.metrics().await;
    assert!(text.contains("\nleadbridge_store_up 0\n"), "{text}");
    assert!(!text.contains("leadbridge_pending_events{"), "{text}");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_leadbridge_names() {
    let app = spawn_app().await;
    app.client
        .post(app.url("/v1/webhooks/nobody"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            r#"leadbridge_webhooks_total{connection="unknown",outcome="unknown_connection"}"#
        ),
        "{text}"
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("leadbridge_"), "{line}");
    }
}

/// The value of the sample `series` (name and labels exactly), if shown.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_show_the_backlog_tokens_latency_and_dead_clients() {
    use crate::emulator::OrgConfig;
    use serde_json::json;

    let (app, emu) = crate::helpers::spawn_with_org(OrgConfig::default()).await;
    // The recorder is shared by every test in this process: names of our own.
    let secret = app.connect(&emu, "metrics-a", json!({})).await;
    for (id, email) in [("1", "one@x.io"), ("2", "two@x.io"), ("3", "three@x.io")] {
        let body = json!({"type": "client.updated", "data": {"clientId": id, "email": email}});
        assert_eq!(
            app.send_event("metrics-a", &secret, &body).await.status(),
            202
        );
    }
    let text = app.metrics().await;
    let c = r#"connection="metrics-a""#;
    assert_eq!(
        sample(
            &text,
            &format!(r#"leadbridge_clients{{{c},state="pending"}}"#)
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("leadbridge_pending_events{{{c}}}")),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, &format!("leadbridge_dead_clients{{{c}}}")),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"leadbridge_webhooks_total{{{c},outcome="accepted"}}"#)
        ),
        Some(3.0)
    );
    assert_eq!(sample(&text, "leadbridge_store_up"), Some(1.0));

    app.clock.advance(chrono::Duration::seconds(2));
    app.sync().await;
    let text = app.metrics().await;
    assert_eq!(
        sample(
            &text,
            &format!(r#"leadbridge_clients{{{c},state="synced"}}"#)
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("leadbridge_pending_events{{{c}}}")),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            r#"leadbridge_salesforce_token_fetches_total{outcome="ok"}"#
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &text,
            r#"leadbridge_salesforce_requests_total{operation="create",status="200"}"#
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert!(sample(&text, &format!("leadbridge_salesforce_api_used{{{c}}}")).is_some());
    assert!(sample(&text, &format!("leadbridge_salesforce_api_max{{{c}}}")).is_some());
    // Received 2 s before Salesforce confirmed them (the test's clock).
    let under_1 = sample(
        &text,
        r#"leadbridge_sync_latency_seconds_bucket{source="webhook",le="1"}"#,
    )
    .unwrap();
    let under_2_5 = sample(
        &text,
        r#"leadbridge_sync_latency_seconds_bucket{source="webhook",le="2.5"}"#,
    )
    .unwrap();
    assert!(under_2_5 - under_1 >= 3.0, "{text}");

    // A client Salesforce refuses for good is dead, and counted as such.
    let secret_b = app
        .connect(
            &emu,
            "metrics-b",
            json!({"externalIdField": "B2C_Status__c"}),
        )
        .await;
    let body = json!({"type": "client.updated", "data": {"clientId": "9", "email": "n@x.io"}});
    assert_eq!(
        app.send_event("metrics-b", &secret_b, &body).await.status(),
        202
    );
    app.sync().await;
    assert_eq!(app.client_state("metrics-b", "9").await["state"], "dead");
    let text = app.metrics().await;
    let b = r#"connection="metrics-b""#;
    assert_eq!(
        sample(&text, &format!("leadbridge_dead_clients{{{b}}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!(r#"leadbridge_clients{{{b},state="dead"}}"#)),
        Some(1.0)
    );
}

#[tokio::test]
async fn scrapes_reuse_one_backlog_count_within_its_lifetime_but_still_see_the_store_go_down() {
    use serde_json::json;

    let app = crate::helpers::spawn_app_with(|s| {
        s.metrics_backlog_ttl = std::time::Duration::from_secs(600);
    })
    .await;
    let secret = app.connection("metrics-ttl").await;
    let pending = r#"leadbridge_pending_events{connection="metrics-ttl"}"#;
    assert_eq!(sample(&app.metrics().await, pending), Some(0.0));
    let body = json!({"type": "client.updated", "data": {"clientId": 1}});
    assert_eq!(
        app.send_event("metrics-ttl", &secret, &body).await.status(),
        202
    );
    // Counted once: a scrape does not count the backlog again.
    for _ in 0..20 {
        assert_eq!(sample(&app.metrics().await, pending), Some(0.0));
    }
    // The store's health is still asked at every scrape.
    app.store.close().await;
    let text = app.metrics().await;
    assert_eq!(sample(&text, "leadbridge_store_up"), Some(0.0), "{text}");
    assert_eq!(sample(&text, pending), None);
}
