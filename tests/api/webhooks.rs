use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use leadbridge::clock::Clock;
use leadbridge::webhook::{verify, StandardHeaders};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, client_event, spawn_app, spawn_app_with, Webhook};

#[tokio::test]
async fn signed_webhook_is_accepted_with_202_and_stored_as_received() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let body = include_str!("../fixtures/contract_example.json");
    let res = app
        .post_webhook(
            "acme",
            &Webhook::standard(&secret, "msg_1", app.now(), body),
        )
        .await;
    assert_eq!(res.status(), 202);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["status"], "accepted");
    let event_id = answer["eventId"].as_str().unwrap().to_string();

    let stored = app
        .store
        .pending_events(&app.connection_id("acme").await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, event_id);
    assert_eq!(stored[0].client_id, "10234");
    assert_eq!(stored[0].idempotency_key, "msg_1");
    assert_eq!(stored[0].payload, body);
    assert_eq!(
        stored[0].occurred_at.to_rfc3339(),
        "2026-11-28T10:00:00+00:00"
    );
}

#[tokio::test]
async fn events_for_a_disabled_connection_are_accepted_and_held() {
    let app = spawn_app().await;
    let created = app
        .create_connection(json!({"name": "held", "enabled": false}))
        .await;
    assert_eq!(created["enabled"], false);
    let secret = created["webhookSecret"].as_str().unwrap();
    let res = app
        .post_webhook(
            "held",
            &Webhook::standard(secret, "m", app.now(), &client_event(5)),
        )
        .await;
    assert_eq!(res.status(), 202);
    let pending = app
        .store
        .pending_events(&app.connection_id("held").await)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
}

#[tokio::test]
async fn occurred_at_defaults_to_the_signed_webhook_timestamp() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let ts = app.now() - 100;
    app.post_webhook(
        "acme",
        &Webhook::standard(&secret, "m", ts, &client_event(1)),
    )
    .await;
    let pending = app
        .store
        .pending_events(&app.connection_id("acme").await)
        .await
        .unwrap();
    assert_eq!(pending[0].occurred_at.timestamp(), ts);
}

#[tokio::test]
async fn duplicate_id_is_answered_200_and_stored_once() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let hook = Webhook::standard(&secret, "msg_dup", app.now(), &client_event(7));
    let first: Value = app.post_webhook("acme", &hook).await.json().await.unwrap();
    // A retry from B2CORE: same id, fresh timestamp and signature.
    let retry = Webhook::standard(&secret, "msg_dup", app.now() + 5, &client_event(7));
    let res = app.post_webhook("acme", &retry).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(second["status"], "duplicate");
    assert_eq!(second["eventId"], first["eventId"]);
    let pending = app
        .store
        .pending_events(&app.connection_id("acme").await)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
}

#[tokio::test]
async fn the_same_id_on_another_connection_is_not_a_duplicate() {
    let app = spawn_app().await;
    let a = app.connection("a").await;
    let b = app.connection("b").await;
    for (name, secret) in [("a", &a), ("b", &b)] {
        let res = app
            .post_webhook(
                name,
                &Webhook::standard(secret, "same", app.now(), &client_event(1)),
            )
            .await;
        assert_eq!(res.status(), 202, "{name}");
    }
}

#[tokio::test]
async fn unknown_connection_gives_404() {
    let app = spawn_app().await;
    let res = app
        .post_webhook(
            "nobody",
            &Webhook::standard("whsec_eA==", "m", app.now(), "{}"),
        )
        .await;
    assert_problem(res, 404, "unknown_connection").await;
}

#[tokio::test]
async fn stale_and_future_timestamps_are_rejected_with_401() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    for offset in [-301, 301, -86_400] {
        let hook = Webhook::standard(&secret, "m", app.now() + offset, &client_event(1));
        let res = app.post_webhook("acme", &hook).await;
        assert_problem(res, 401, "timestamp_out_of_tolerance").await;
    }
    let pending = app
        .store
        .pending_events(&app.connection_id("acme").await)
        .await
        .unwrap();
    assert!(pending.is_empty());
}

#[tokio::test]
async fn empty_truncated_and_foreign_signatures_are_rejected_with_401() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let good = Webhook::standard(&secret, "m", app.now(), &client_event(1));
    let sig = good.headers[2].1.clone();
    let other = Webhook::standard(
        "whsec_b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmchIQ==",
        "m",
        app.now(),
        &client_event(1),
    );
    for bad in [
        "v1,".to_string(),
        sig[..sig.len() - 3].to_string(),
        other.headers[2].1.clone(),
    ] {
        let hook = Webhook::standard(&secret, "m", app.now(), &client_event(1))
            .with_header("webhook-signature", &bad);
        assert_problem(
            app.post_webhook("acme", &hook).await,
            401,
            "invalid_signature",
        )
        .await;
    }
}

#[tokio::test]
async fn missing_signature_headers_are_rejected_with_401() {
    let app = spawn_app().await;
    app.connection("acme").await;
    let hook = Webhook {
        body: client_event(1),
        headers: vec![],
    };
    let body = assert_problem(
        app.post_webhook("acme", &hook).await,
        401,
        "invalid_signature",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("webhook-id"));
}

#[tokio::test]
async fn the_signature_is_checked_before_the_body_is_parsed() {
    let app = spawn_app().await;
    app.connection("acme").await;
    let hook = Webhook::standard("whsec_d3Jvbmc=", "m", app.now(), "{not json");
    assert_problem(
        app.post_webhook("acme", &hook).await,
        401,
        "invalid_signature",
    )
    .await;
}

#[tokio::test]
async fn malformed_json_after_a_valid_signature_gives_400() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let hook = Webhook::standard(&secret, "m", app.now(), "{\"type\": \"client.created\",");
    assert_problem(
        app.post_webhook("acme", &hook).await,
        400,
        "invalid_payload",
    )
    .await;
}

#[tokio::test]
async fn a_client_event_without_client_id_gives_400() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let body = json!({"type": "client.created", "data": {"email": "x@example.com"}}).to_string();
    let hook = Webhook::standard(&secret, "m", app.now(), &body);
    let problem = assert_problem(
        app.post_webhook("acme", &hook).await,
        400,
        "invalid_payload",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("clientId"));
}

#[tokio::test]
async fn other_event_types_are_ignored_with_200_and_not_stored() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let hook = Webhook::standard(&secret, "m", app.now(), r#"{"type":"deposit.created"}"#);
    let res = app.post_webhook("acme", &hook).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"status": "ignored"})
    );
    let pending = app
        .store
        .pending_events(&app.connection_id("acme").await)
        .await
        .unwrap();
    assert!(pending.is_empty());
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"leadbridge_webhooks_total{connection="acme",outcome="ignored"}"#),
        "{metrics}"
    );
}

/// Sends raw HTTP/1.1 and returns the status line, never waiting more than 10 s.
fn raw_exchange(
    address: &str,
    head: &str,
    mut write_body: impl FnMut(&mut TcpStream) -> usize,
) -> (String, usize) {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let written = write_body(&mut stream);
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if response.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    (text.lines().next().unwrap_or_default().to_string(), written)
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gives_413_without_reading_the_body() {
    let app = spawn_app().await;
    app.connection("acme").await;
    let address = app.address.clone();
    // Declares 50 MiB but sends only 1 KiB: an answer proves nothing waited for the rest.
    let (status, _) = tokio::task::spawn_blocking(move || {
        let head = "POST /v1/webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 52428800\r\n\r\n";
        raw_exchange(&address, head, |s| {
            s.write_all(&[b' '; 1024]).unwrap();
            1024
        })
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gives_413_once_the_limit_is_passed() {
    let app = spawn_app_with(|s| s.max_body_bytes = 64 * 1024).await;
    app.connection("acme").await;
    let address = app.address.clone();
    // Headers that can pass, so the body is read (a request without them is
    // refused before its body: see hardening.rs).
    let head = format!("POST /v1/webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n{}\r\n", signed_headers(app.now()));
    let (status, closed) = tokio::task::spawn_blocking(move || {
        let mut closed = false;
        let (status, _) = raw_exchange(&address, &head, |s| {
            // An endless body: the server must end the connection, not read it all.
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if s.write_all(chunk.as_bytes()).is_err() {
                    closed = true;
                    break;
                }
            }
            0
        });
        (status, closed)
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(closed, "the server kept reading an endless body for 20 s");
}

#[tokio::test]
async fn hex_scheme_accepts_prefixed_and_bare_signatures_and_dedupes_by_request_id_and_by_body() {
    let app = spawn_app().await;
    let created = app
        .create_connection(json!({"name": "hex", "signatureScheme": "hmac-sha256-hex", "signatureHeader": "X-B2C-Signature"}))
        .await;
    let secret = SecretString::from(created["webhookSecret"].as_str().unwrap().to_string());
    let body = client_event(9);
    let sig = leadbridge::webhook::sign_hex(&secret, body.as_bytes());
    let bare = sig.trim_start_matches("sha256=").to_string();

    let prefixed = Webhook {
        body: body.clone(),
        headers: vec![
            ("X-B2C-Signature".into(), sig.clone()),
            ("X-Request-Id".into(), "req-1".into()),
        ],
    };
    assert_eq!(app.post_webhook("hex", &prefixed).await.status(), 202);
    let again = Webhook {
        body: body.clone(),
        headers: vec![
            ("X-B2C-Signature".into(), bare.clone()),
            ("X-Request-Id".into(), "req-1".into()),
        ],
    };
    assert_eq!(app.post_webhook("hex", &again).await.status(), 200);

    // Only the body is signed, so a fresh id does not make it new: a replay.
    let replayed = Webhook {
        body: body.clone(),
        headers: vec![
            ("X-B2C-Signature".into(), bare.clone()),
            ("X-Request-Id".into(), "req-2-attacker".into()),
        ],
    };
    assert_eq!(app.post_webhook("hex", &replayed).await.status(), 200);
    let no_id = Webhook {
        body: body.clone(),
        headers: vec![("X-B2C-Signature".into(), bare)],
    };
    assert_eq!(app.post_webhook("hex", &no_id).await.status(), 200);

    // Without an id header, the body's hash is the key: the same body is a duplicate.
    let other = client_event(10);
    let other_sig = leadbridge::webhook::sign_hex(&secret, other.as_bytes());
    let other_no_id = Webhook {
        body: other,
        headers: vec![("X-B2C-Signature".into(), other_sig)],
    };
    assert_eq!(app.post_webhook("hex", &other_no_id).await.status(), 202);
    assert_eq!(app.post_webhook("hex", &other_no_id).await.status(), 200);
    let conn = app.connection_id("hex").await;
    assert_eq!(app.store.pending_events(&conn).await.unwrap().len(), 2);

    // The default header name is not the configured one.
    let wrong_header = Webhook {
        body,
        headers: vec![("X-Signature".into(), sig)],
    };
    assert_problem(
        app.post_webhook("hex", &wrong_header).await,
        401,
        "invalid_signature",
    )
    .await;
}

#[tokio::test]
async fn after_rotation_both_secrets_verify_for_24_hours_then_only_the_new_one() {
    let app = spawn_app().await;
    let old = app.connection("acme").await;
    let res = app
        .admin(
            reqwest::Method::POST,
            "/v1/connections/acme/webhook-secret/rotate",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    let new = rotated["webhookSecret"].as_str().unwrap().to_string();
    assert_ne!(old, new);

    async fn send(app: &crate::helpers::TestApp, secret: &str, id: &str) -> u16 {
        let hook = Webhook::standard(secret, id, app.now(), &client_event(1));
        app.post_webhook("acme", &hook).await.status().as_u16()
    }
    assert_eq!(send(&app, &old, "a").await, 202);
    assert_eq!(send(&app, &new, "b").await, 202);
    app.clock.advance(chrono::Duration::hours(23));
    assert_eq!(send(&app, &old, "c").await, 202);
    app.clock
        .advance(chrono::Duration::hours(1) + chrono::Duration::seconds(1));
    assert_eq!(send(&app, &old, "d").await, 401);
    assert_eq!(send(&app, &new, "e").await, 202);
}

#[tokio::test]
async fn a_store_that_cannot_take_the_event_gives_503_with_retry_after() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    app.store.close().await;
    let res = app
        .post_webhook(
            "acme",
            &Webhook::standard(&secret, "m", app.now(), &client_event(1)),
        )
        .await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503, "unavailable").await;
}

#[test]
fn signatures_made_by_the_python_standardwebhooks_package_verify() {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/standardwebhooks_python.json")).unwrap();
    let secret = SecretString::from(fixture["secret"].as_str().unwrap().to_string());
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let ts = case["timestamp"].as_i64().unwrap();
        let ts_text = ts.to_string();
        let body = case["body"].as_str().unwrap().as_bytes();
        let headers = StandardHeaders {
            id: case["id"].as_str(),
            timestamp: Some(&ts_text),
            signature: case["signature"].as_str(),
        };
        let got = verify::verify_standard(headers, body, std::slice::from_ref(&secret), ts);
        assert_eq!(got, Ok(case["id"].as_str().unwrap()), "{case}");
        let mut tampered = body.to_vec();
        tampered.push(b' ');
        let got = verify::verify_standard(headers, &tampered, std::slice::from_ref(&secret), ts);
        assert!(got.is_err());
    }
}

#[tokio::test]
async fn a_client_id_that_would_change_the_url_or_cannot_be_stored_gives_400() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    for (i, id) in [".", "..", "a\u{0}b"].into_iter().enumerate() {
        let body = json!({"type": "client.created", "data": {"clientId": id}}).to_string();
        let hook = Webhook::standard(&secret, &format!("m{i}"), app.now(), &body);
        let problem = assert_problem(
            app.post_webhook("acme", &hook).await,
            400,
            "invalid_payload",
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains("clientId"),
            "{problem}"
        );
    }
    let conn = app.connection_id("acme").await;
    assert!(app.store.pending_events(&conn).await.unwrap().is_empty());
}

#[tokio::test]
async fn requests_for_made_up_connection_names_add_no_metric_labels() {
    let app = spawn_app().await;
    let address = app.address.clone();
    let names: Vec<String> = (0..20)
        .map(|i| format!("made-up-{}-{i}", uuid::Uuid::new_v4().simple()))
        .collect();
    for name in names.clone() {
        let address = address.clone();
        // An oversized declared length (413 before any lookup), then a plain 404.
        let (status, _) = tokio::task::spawn_blocking(move || {
            let head = format!("POST /v1/webhooks/{name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 52428800\r\n\r\n");
            raw_exchange(&address, &head, |s| {
                s.write_all(&[b' '; 16]).unwrap();
                16
            })
        })
        .await
        .unwrap();
        assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    }
    for name in &names {
        let res = app
            .client
            .post(app.url(&format!("/v1/webhooks/{name}")))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        names.iter().all(|n| !text.contains(n.as_str())),
        "a label came from the path"
    );
    assert!(text.contains(
        r#"leadbridge_webhooks_total{connection="unknown",outcome="payload_too_large"}"#
    ));
}

#[tokio::test]
async fn an_occurred_at_far_in_the_future_gives_400_and_is_not_stored() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let soon = (app.clock.now() + chrono::Duration::minutes(30)).to_rfc3339();
    for (i, (at, status)) in [("9999-12-31T23:59:59Z", 400), (soon.as_str(), 202)]
        .into_iter()
        .enumerate()
    {
        let body = json!({"type": "client.updated", "occurredAt": at, "data": {"clientId": i}})
            .to_string();
        let hook = Webhook::standard(&secret, &format!("f{i}"), app.now(), &body);
        let res = app.post_webhook("acme", &hook).await;
        assert_eq!(res.status().as_u16(), status, "{at}");
    }
    let conn = app.connection_id("acme").await;
    let pending = app.store.pending_events(&conn).await.unwrap();
    assert_eq!(pending.len(), 1, "only the plausible one is stored");
}

#[tokio::test]
async fn revoking_previous_secrets_stops_them_at_once_and_keeps_the_current_one() {
    let app = spawn_app().await;
    let old = app.connection("acme").await;
    let post = |path: &'static str| app.admin(reqwest::Method::POST, path).send();
    let rotated: Value = post("/v1/connections/acme/webhook-secret/rotate")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = rotated["webhookSecret"].as_str().unwrap().to_string();
    async fn send(app: &crate::helpers::TestApp, secret: &str, id: &str) -> u16 {
        let hook = Webhook::standard(secret, id, app.now(), &client_event(1));
        app.post_webhook("acme", &hook).await.status().as_u16()
    }
    assert_eq!(send(&app, &old, "a").await, 202, "still in its overlap");
    let res = post("/v1/connections/acme/webhook-secret/revoke-previous")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"revoked": 1}));
    assert_eq!(send(&app, &old, "b").await, 401);
    assert_eq!(send(&app, &new, "c").await, 202);
    let again: Value = post("/v1/connections/acme/webhook-secret/revoke-previous")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, json!({"revoked": 0}));
}

/// Standard Webhooks headers that pass the checks made before the body is
/// read (present, timestamp in the window), with a signature that will not
/// match: enough to have the body read.
fn signed_headers(now: i64) -> String {
    format!("webhook-id: slow\r\nwebhook-timestamp: {now}\r\nwebhook-signature: v1,AAAA\r\n")
}

/// The head of a webhook whose 100,000-byte body is then trickled.
fn trickled_head(now: i64) -> String {
    format!(
        "POST /v1/webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n{}\r\n",
        signed_headers(now)
    )
}

/// Sends `head`, then one byte of body every 200 ms until the server stops
/// taking them or 15 s pass; returns the status line and the seconds it took.
fn trickle(address: &str, head: &str) -> (String, f64) {
    let started = std::time::Instant::now();
    let (status, _) = raw_exchange(address, head, |s| {
        let mut sent = 0;
        while started.elapsed() < Duration::from_secs(15) {
            // The answer arrives while we still write: stop once it is readable.
            s.set_nonblocking(true).unwrap();
            let mut peek = [0u8; 1];
            let answered = matches!(s.peek(&mut peek), Ok(n) if n > 0);
            s.set_nonblocking(false).unwrap();
            if answered || s.write_all(b" ").is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        sent
    });
    (status, started.elapsed().as_secs_f64())
}

#[tokio::test]
async fn a_body_trickling_in_is_cut_at_the_deadline_while_the_service_keeps_answering() {
    let app = spawn_app_with(|s| s.body_timeout = Duration::from_secs(1)).await;
    app.connection("acme").await;
    let head = trickled_head(app.now());
    let senders: Vec<_> = (0..20)
        .map(|_| {
            let (address, head) = (app.address.clone(), head.clone());
            tokio::task::spawn_blocking(move || trickle(&address, &head))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "answers while 20 bodies trickle");
    for s in senders {
        let (status, secs) = s.await.unwrap();
        assert!(status.starts_with("HTTP/1.1 400"), "{status}");
        assert!(secs < 4.0, "cut after {secs:.1} s, the deadline is 1 s");
    }
}

#[tokio::test]
async fn past_the_connection_cap_a_request_waits_until_a_slow_sender_is_cut() {
    // One connection per worker: trickling senders fill them all.
    let app = spawn_app_with(|s| {
        s.body_timeout = Duration::from_secs(2);
        s.max_connections = 1;
    })
    .await;
    app.connection("acme").await;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let head = trickled_head(app.now());
    let senders: Vec<_> = (0..workers)
        .map(|_| {
            let (address, head) = (app.address.clone(), head.clone());
            tokio::task::spawn_blocking(move || trickle(&address, &head))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let live = reqwest::Client::new()
        .get(app.url("/health/live"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let waited = started.elapsed().as_secs_f64();
    assert!(
        waited > 0.8,
        "answered after {waited:.1} s: the cap did not hold it back"
    );
    for s in senders {
        let (status, _) = s.await.unwrap();
        assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    }
}

/// The same request with Svix's header names.
fn svix(hook: Webhook) -> Webhook {
    let headers = hook
        .headers
        .into_iter()
        .map(|(k, v)| (k.replace("webhook-", "svix-"), v))
        .collect();
    Webhook { headers, ..hook }
}

#[tokio::test]
async fn svix_headers_are_accepted_as_the_standard_webhooks_ones() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let hook = svix(Webhook::standard(
        &secret,
        "msg_svix",
        app.now(),
        &client_event(9),
    ));
    assert!(hook.headers.iter().all(|(k, _)| k.starts_with("svix-")));
    let res = app.post_webhook("acme", &hook).await;
    assert_eq!(res.status(), 202);
    let stored = app
        .store
        .pending_events(&app.connection_id("acme").await)
        .await
        .unwrap();
    assert_eq!(stored[0].idempotency_key, "msg_svix");
    // The svix-id dedupes like a webhook-id: the same message under either name.
    let again = Webhook::standard(&secret, "msg_svix", app.now(), &client_event(9));
    let res = app.post_webhook("acme", &again).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "duplicate");

    // A bad svix signature is refused like a bad webhook one.
    let forged = svix(Webhook::standard(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_forged",
        app.now(),
        &client_event(9),
    ));
    let res = app.post_webhook("acme", &forged).await;
    assert_problem(res, 401, "invalid_signature").await;
    // A stale svix timestamp is out of tolerance.
    let stale = svix(Webhook::standard(
        &secret,
        "msg_old",
        app.now() - 301,
        &client_event(9),
    ));
    let res = app.post_webhook("acme", &stale).await;
    assert_problem(res, 401, "timestamp_out_of_tolerance").await;
}

#[tokio::test]
async fn a_request_with_both_header_sets_is_checked_by_its_webhook_headers() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let good = Webhook::standard(&secret, "msg_w", app.now(), &client_event(9));
    // svix-* headers that do not verify, beside webhook-* ones that do.
    let mut hook = svix(Webhook::standard(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_s",
        app.now(),
        &client_event(9),
    ));
    hook.headers.extend(good.headers);
    let res = app.post_webhook("acme", &hook).await;
    assert_eq!(res.status(), 202);
    let stored = app
        .store
        .pending_events(&app.connection_id("acme").await)
        .await
        .unwrap();
    assert_eq!(stored[0].idempotency_key, "msg_w");
}

/// `/v1/webhooks/{connectionName}` is one segment: another method is 405,
/// a deeper or an empty path is 404 like any unknown path, and a
/// percent-encoded name is the name it decodes to.
#[tokio::test]
async fn the_webhook_path_is_one_segment_for_post_only() {
    let app = spawn_app().await;
    let secret = app.connection("acme-1").await;
    let res = app
        .client
        .get(app.url("/v1/webhooks/acme-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "POST");
    assert_problem(res, 405, "method_not_allowed").await;
    for path in [
        "/v1/webhooks/acme-1/x",
        "/v1/webhooks/",
        "/v1/webhooks",
        "/v1/webhooksacme-1",
    ] {
        let res = app
            .client
            .post(app.url(path))
            .body("{}")
            .send()
            .await
            .unwrap();
        let problem = assert_problem(res, 404, "not_found").await;
        assert_eq!(problem["detail"], format!("nothing is at {path}"), "{path}");
    }
    let res = app
        .client
        .post(app.url("/v1/webhooks/nobody"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "unknown_connection").await;
    let hook = Webhook::standard(&secret, "m1", app.now(), &client_event(1));
    let mut req = app
        .client
        .post(app.url("/v1/webhooks/%61cme%2D1"))
        .body(hook.body.clone());
    for (k, v) in &hook.headers {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 202);
}
