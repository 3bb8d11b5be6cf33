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
