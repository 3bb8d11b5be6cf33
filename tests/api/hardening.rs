//! What a hostile org, a hostile caller or a NUL must not do to the service:
//! answers read with a byte cap, strings from Salesforce made storable,
//! bodies checked before they are read, one slow org holding back no other,
//! and ceilings on what callers can make the service hold.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::emulator::{Emulator, OrgConfig, ValidationRule};
use crate::helpers::{
    assert_problem, client_event, spawn_app_with, spawn_with_org, TestApp, Webhook,
};

/// A stand-in for an org that answers every request with `head` and then,
/// if `endless` is set, sends that chunk again and again until the caller
/// hangs up. Returns its base URL.
fn raw_org(head: Vec<u8>, endless: Option<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (head, endless) = (head.clone(), endless.clone());
            std::thread::spawn(move || {
                read_request_head(&mut stream);
                if stream.write_all(&head).is_err() {
                    return;
                }
                if let Some(chunk) = endless {
                    let framed = [
                        format!("{:x}\r\n", chunk.len()).into_bytes(),
                        chunk,
                        b"\r\n".to_vec(),
                    ]
                    .concat();
                    let started = Instant::now();
                    while started.elapsed() < Duration::from_secs(60) {
                        if stream.write_all(&framed).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    base
}

fn read_request_head(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
}

/// A connection to the org at `base` with credentials (the raw org ignores
/// them); returns its webhook secret.
async fn connection_to(app: &TestApp, name: &str, base: &str) -> String {
    app.create_connection(json!({
        "name": name, "domainUrl": base, "consumerKey": "key",
        "consumerSecret": "secret-0123456789", "company": "Acme", "enabled": true,
    }))
    .await["webhookSecret"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn test_report(app: &TestApp, name: &str) -> Value {
    let res = app
        .admin(Method::POST, &format!("/v1/connections/{name}/test"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_token_answer_that_never_ends_is_cut_at_its_cap() {
    let app = spawn_app_with(|s| s.allow_insecure_salesforce = true).await;
    let endless = raw_org(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
        Some(vec![b' '; 64 * 1024]),
    );
    connection_to(&app, "endless", &endless).await;
    let started = Instant::now();
    let report = test_report(&app, "endless").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "read for {:?}",
        started.elapsed()
    );
    assert_eq!(report["credentials"]["ok"], false, "{report}");
    assert_eq!(
        report["credentials"]["error"], "ANSWER_TOO_LARGE",
        "{report}"
    );
}

#[tokio::test]
async fn a_declared_over_large_answer_is_refused_before_it_is_read() {
    let app = spawn_app_with(|s| s.allow_insecure_salesforce = true).await;
    // 400 MB declared; the body never comes: only the declaration is read.
    let big = raw_org(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400000000\r\n\r\n{"
            .to_vec(),
        None,
    );
    connection_to(&app, "big", &big).await;
    let started = Instant::now();
    let report = test_report(&app, "big").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        report["credentials"]["error"], "ANSWER_TOO_LARGE",
        "{report}"
    );
}

#[tokio::test]
async fn an_oauth_error_of_any_text_is_a_bounded_metric_label() {
    let app = spawn_app_with(|s| s.allow_insecure_salesforce = true).await;
    // 50 KB: under the token answer's cap, so it is read and classified.
    let error = format!("err_{}", "x".repeat(50_000));
    let body = json!({"error": error, "error_description": "no"}).to_string();
    let hostile = raw_org(
        format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
        None,
    );
    connection_to(&app, "hostile", &hostile).await;
    let report = test_report(&app, "hostile").await;
    assert_eq!(report["credentials"]["ok"], false);
    let shown = report["credentials"]["error"].as_str().unwrap();
    assert!(shown.chars().count() <= 101, "{} chars", shown.len());
    let metrics = app.metrics().await;
    let token_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("leadbridge_salesforce_token_fetches_total{"))
        .collect();
    assert!(
        token_lines.iter().any(|l| l.contains(r#"outcome="other""#)),
        "{token_lines:?}"
    );
    assert!(
        !metrics.contains("err_xxxx"),
        "the org's text became a label"
    );
    assert!(
        metrics.len() < 50_000,
        "/metrics is {} bytes",
        metrics.len()
    );
}

#[tokio::test]
async fn a_nul_in_salesforces_error_is_stored_as_text_and_the_rest_of_the_batch_is_recorded() {
    // The org's validation rule quotes a value with a NUL back in its
    // message (PostgreSQL refuses U+0000 in text).
    let (app, emu) = spawn_with_org(OrgConfig {
        validation_rules: vec![ValidationRule {
            field: "B2C_Verification_Level__c".into(),
            message: "Verification level is required\u{0} for \u{0}B2CORE leads".into(),
        }],
        ..OrgConfig::default()
    })
    .await;
    let secret = app
        .connect(
            &emu,
            "acme",
            json!({"fieldMapping": {"verificationLevel": "B2C_Verification_Level__c"}}),
        )
        .await;
    for (id, level) in [("1", Some("Full")), ("2", None), ("3", Some("Basic"))] {
        let mut data = json!({"clientId": id, "info": {"lastName": "Doe"}});
        if let Some(level) = level {
            data["verificationLevel"] = json!({"id": 1, "name": level});
        }
        let body = json!({"type": "client.created", "data": data});
        assert_eq!(app.send_event("acme", &secret, &body).await.status(), 202);
    }
    app.sync().await;
    assert_eq!(app.client_state("acme", "1").await["state"], "synced");
    assert_eq!(app.client_state("acme", "3").await["state"], "synced");
    let refused = app.client_state("acme", "2").await;
    assert_eq!(refused["state"], "dead", "{refused}");
    let message = refused["lastError"]["message"].as_str().unwrap();
    assert!(!message.contains('\u{0}'), "{message:?}");
    assert!(
        message.contains("Verification level is required\u{FFFD} for"),
        "{message:?}"
    );
    assert_eq!(emu.lead_count(), 2);
}

#[tokio::test]
async fn a_record_id_from_salesforce_that_is_no_id_is_never_stored() {
    let app = spawn_app_with(|s| s.allow_insecure_salesforce = true).await;
    // A token, a describe and a create answering the id `..`.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let instance = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let instance = instance.clone();
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut buf = vec![0u8; 65536];
                let n = stream.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) = if head.starts_with("POST /services/oauth2/token") {
                    (
                        "200 OK",
                        json!({"access_token": "00D!tok", "instance_url": instance,
                               "id": "https://x/id/00Dxx0000000001AAA/005xx000001Sv6AAAE",
                               "token_type": "Bearer", "issued_at": "1", "signature": "s"})
                        .to_string(),
                    )
                } else if head.contains("/sobjects/Lead/describe") {
                    ("200 OK", json!({"fields": []}).to_string())
                } else {
                    (
                        "201 Created",
                        json!({"id": "..", "success": true, "errors": []}).to_string(),
                    )
                };
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    let secret = connection_to(&app, "odd", &base).await;
    let body =
        json!({"type": "client.created", "data": {"clientId": 7, "info": {"lastName": "D"}}});
    assert_eq!(app.send_event("odd", &secret, &body).await.status(), 202);
    app.worker.run_once().await.unwrap();
    let state = app.client_state("odd", "7").await;
    assert_eq!(state["leadId"], Value::Null, "{state}");
    assert_eq!(state["state"], "retrying", "{state}");
    assert_eq!(state["lastError"]["code"], "BAD_SAVE_ANSWER", "{state}");
}

#[tokio::test]
async fn a_webhook_without_its_signature_headers_is_refused_before_its_body_is_read() {
    let app = spawn_app_with(|s| s.body_timeout = Duration::from_secs(20)).await;
    app.connection("acme").await;
    let host = app.address.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        // 1 MiB declared, none of it sent.
        s.write_all(b"POST /v1/webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_webhook_with_a_stale_timestamp_is_refused_before_its_body_is_read() {
    let app = spawn_app_with(|s| s.body_timeout = Duration::from_secs(20)).await;
    app.connection("acme").await;
    let host = app.address.trim_start_matches("http://").to_string();
    let stale = app.now() - 3600;
    let status = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(format!("POST /v1/webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\nwebhook-id: m1\r\nwebhook-timestamp: {stale}\r\nwebhook-signature: v1,AAAA\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = [0u8; 2048];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(status.contains("timestamp_out_of_tolerance"), "{status}");
}

#[tokio::test]
async fn bodies_in_flight_past_the_budget_are_answered_503_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.max_body_bytes = 100_000;
        s.limits.max_body_bytes_in_flight = 250_000;
        s.body_timeout = Duration::from_secs(20);
    })
    .await;
    app.connection("acme").await;
    let now = app.now();
    // Two senders hold 100,000 bytes each (declared, half sent); a third
    // would pass the 250,000-byte budget.
    let mut holders = Vec::new();
    for i in 0..2 {
        let host = app.address.trim_start_matches("http://").to_string();
        let mut s = TcpStream::connect(host).unwrap();
        s.write_all(format!("POST /v1/webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nwebhook-id: hold{i}\r\nwebhook-timestamp: {now}\r\nwebhook-signature: v1,AAAA\r\n\r\n").as_bytes())
            .unwrap();
        s.write_all(&[b' '; 50_000]).unwrap();
        holders.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hook = Webhook::standard("whsec_AAAA", "third", now, &" ".repeat(90_000));
    let res = app.post_webhook("acme", &hook).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    assert_problem(res, 503, "unavailable").await;
    // Once the holders hang up, the budget is free again.
    drop(holders);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let small = app
        .post_webhook(
            "acme",
            &Webhook::standard("whsec_AAAA", "fourth", now, "{}"),
        )
        .await;
    assert_eq!(small.status(), 401, "checked, not shed");
}

#[tokio::test]
async fn a_slow_org_does_not_hold_back_another_connections_webhooks() {
    let app = spawn_app_with(|s| {
        s.allow_insecure_salesforce = true;
        s.run_worker = true;
        s.sync.linger = Duration::from_millis(10);
    })
    .await;
    let slow = Emulator::start(OrgConfig::default()).await;
    let fast = Emulator::start(OrgConfig::default()).await;
    slow.set_latency(Duration::from_secs(8));
    let slow_secret = app.connect(&slow, "slow", json!({})).await;
    let fast_secret = app.connect(&fast, "fast", json!({})).await;
    let event = |id: &str| json!({"type": "client.created", "data": {"clientId": id, "info": {"lastName": "D"}}});
    assert_eq!(
        app.send_event("slow", &slow_secret, &event("s1"))
            .await
            .status(),
        202
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    assert_eq!(
        app.send_event("fast", &fast_secret, &event("f1"))
            .await
            .status(),
        202
    );
    loop {
        if app.client_state("fast", "f1").await["state"] == "synced" {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "the fast org's client waited {:?} for the slow org",
            sent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.client_state("slow", "s1").await["state"], "pending");
}

#[tokio::test]
async fn a_webhook_to_a_connection_named_backfill_has_the_body_deadline() {
    let app = spawn_app_with(|s| s.body_timeout = Duration::from_secs(1)).await;
    app.connection("backfill").await;
    let host = app.address.trim_start_matches("http://").to_string();
    let now = app.now();
    let (status, secs) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut s = TcpStream::connect(host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(format!("POST /v1/webhooks/backfill HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nwebhook-id: m\r\nwebhook-timestamp: {now}\r\nwebhook-signature: v1,AAAA\r\n\r\n").as_bytes())
            .unwrap();
        // A byte every 200 ms: a streamed upload's idle timer would never fire.
        while started.elapsed() < Duration::from_secs(12) {
            s.set_nonblocking(true).unwrap();
            let mut peek = [0u8; 1];
            let answered = matches!(s.peek(&mut peek), Ok(n) if n > 0);
            s.set_nonblocking(false).unwrap();
            if answered || s.write_all(b" ").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        let status = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string();
        (status, started.elapsed().as_secs_f64())
    })
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");
    assert!(secs < 4.0, "cut after {secs:.1} s, the deadline is 1 s");
}

#[tokio::test]
async fn only_the_newest_rotated_out_secrets_verify() {
    let app = spawn_app_with(|s| s.limits.max_previous_secrets = 2).await;
    let first = app.connection("acme").await;
    let mut secrets = vec![first];
    for _ in 0..4 {
        app.clock.advance(chrono::Duration::seconds(1));
        let res = app
            .admin(Method::POST, "/v1/connections/acme/webhook-secret/rotate")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        secrets.push(body["webhookSecret"].as_str().unwrap().to_string());
    }
    // Current: secrets[4]; the two newest previous: [3], [2]; older: [1], [0].
    for (i, secret) in secrets.iter().enumerate() {
        let hook = Webhook::standard(secret, &format!("r{i}"), app.now(), &client_event(i as i64));
        let status = app.post_webhook("acme", &hook).await.status();
        let verifies = i >= 2;
        assert_eq!(status == 202, verifies, "secret {i}: {status}");
    }
}

#[tokio::test]
async fn rotations_past_the_ceiling_are_refused_until_old_secrets_are_revoked() {
    let app = spawn_app_with(|s| s.limits.max_secrets_per_connection = 3).await;
    app.connection("acme").await;
    let rotate = || async {
        app.admin(Method::POST, "/v1/connections/acme/webhook-secret/rotate")
            .send()
            .await
            .unwrap()
    };
    assert_eq!(rotate().await.status(), 200);
    assert_eq!(rotate().await.status(), 200);
    let refused = assert_problem(rotate().await, 409, "conflict").await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("LEADBRIDGE_MAX_SECRETS_PER_CONNECTION"),
        "{refused}"
    );
    let revoked = app
        .admin(
            Method::POST,
            "/v1/connections/acme/webhook-secret/revoke-previous",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(rotate().await.status(), 200);
}

#[tokio::test]
async fn connections_past_the_ceiling_are_refused() {
    let app = spawn_app_with(|s| s.limits.max_configured_connections = 2).await;
    app.connection("a").await;
    app.connection("b").await;
    let res = app
        .admin(Method::POST, "/v1/connections")
        .json(&json!({"name": "c"}))
        .send()
        .await
        .unwrap();
    let refused = assert_problem(res, 409, "conflict").await;
    assert!(refused["detail"]
        .as_str()
        .unwrap()
        .contains("LEADBRIDGE_MAX_CONNECTIONS_CONFIGURED"));
}

#[tokio::test]
async fn uploads_past_the_ceiling_of_running_backfills_are_refused() {
    let app = spawn_app_with(|s| {
        s.limits.max_running_backfills = 1;
        s.body_timeout = Duration::from_secs(20);
    })
    .await;
    app.connection("acme").await;
    let host = app.address.trim_start_matches("http://").to_string();
    // One upload keeps streaming (chunked, not finished).
    let mut running = TcpStream::connect(host).unwrap();
    running
        .write_all(format!("POST /v1/connections/acme/backfill HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n", app.admin_token).as_bytes())
        .unwrap();
    let line = b"{\"clientId\": 1}\n";
    running
        .write_all(&[format!("{:x}\r\n", line.len()).as_bytes(), line, b"\r\n"].concat())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = app
        .admin(Method::POST, "/v1/connections/acme/backfill")
        .header("content-type", "application/x-ndjson")
        .body("{\"clientId\": 2}\n")
        .send()
        .await
        .unwrap();
    let refused = assert_problem(second, 409, "conflict").await;
    assert!(refused["detail"]
        .as_str()
        .unwrap()
        .contains("LEADBRIDGE_MAX_RUNNING_BACKFILLS"));
    // Once it ends, another may start.
    running.write_all(b"0\r\n\r\n").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let third = app
        .admin(Method::POST, "/v1/connections/acme/backfill")
        .header("content-type", "application/x-ndjson")
        .body("{\"clientId\": 3}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 202);
}

#[cfg(unix)]
#[tokio::test]
async fn existing_secret_files_with_loose_permissions_are_warned_about_at_start() {
    use std::os::unix::fs::PermissionsExt;

    use crate::backend::TestDb;
    use crate::process::{free_port, Service, Target};

    // About SQLite's files, so always on SQLite.
    let target = Target {
        db: TestDb::sqlite().await,
        env: vec![],
        token: None,
    };
    let token = target.dir().join("leadbridge.db.admin-token");
    std::fs::write(&token, "a-token-of-at-least-16-characters").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut svc = Service::start(&target, free_port(), "out.log");
    svc.wait_ready().await;
    let logs = svc.logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("chmod 600"))
        .unwrap_or_else(|| panic!("no warning in {logs}"));
    assert!(warning.contains("leadbridge.db.admin-token"), "{warning}");
    assert!(warning.contains("644"), "{warning}");
    assert!(
        !logs.contains("a-token-of-at-least-16-characters"),
        "the token was logged"
    );
    // The key file it created itself is 0600 and not named.
    assert!(!warning.contains("master-key"));
    svc.kill9();
}

/// Opens a connection from `local` (an address of 127.0.0.0/8) to `address`.
fn connect_from(local: &str, address: &str) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(
        &format!("{local}:0")
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )?;
    let target: std::net::SocketAddr = address.trim_start_matches("http://").parse().unwrap();
    socket.connect(&target.into())?;
    Ok(socket.into())
}

/// Whether the server closed `stream` (EOF or reset) without sending
/// anything, within `wait`.
fn closed_unanswered_within(stream: &TcpStream, wait: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < wait {
        let mut probe = [0u8; 1];
        stream.set_nonblocking(true).unwrap();
        let outcome = stream.peek(&mut probe);
        stream.set_nonblocking(false).unwrap();
        match outcome {
            Ok(0) => return true,
            Ok(_) => return false,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return true,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

/// `GET /health/live` on a fresh connection from `local`: its status line,
/// or empty when the connection was closed without an answer.
fn live_from(local: &str, address: &str) -> String {
    let Ok(mut s) = connect_from(local, address) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return String::new();
    }
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn clients_that_never_read_their_answers_do_not_lock_others_out() {
    let app = spawn_app_with(|s| {
        s.max_connections = 64;
        s.limits.max_connections_per_peer = 8;
        s.limits.write_timeout = Duration::from_secs(2);
    })
    .await;
    let address = app.address.clone();
    // Ten connections from 127.0.0.1 pipeline 200 requests for the OpenAPI
    // document (about 80 KB each: more than the socket buffers hold) and
    // never read: the ninth and tenth are
    // closed at once, the others once their answers stall for 2 s.
    let pipelined = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    let started = Instant::now();
    let (readers, refused) = tokio::task::spawn_blocking(move || {
        let mut streams = Vec::new();
        for _ in 0..10 {
            let mut s = connect_from("127.0.0.1", &address).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
            let _ = s.write_all(pipelined.as_bytes());
            streams.push(s);
        }
        std::thread::sleep(Duration::from_millis(300));
        let refused = streams
            .iter()
            .filter(|s| closed_unanswered_within(s, Duration::from_millis(300)))
            .count();
        (streams, refused)
    })
    .await
    .unwrap();
    assert_eq!(refused, 2, "past the per-peer ceiling: closed unanswered");
    // Another address is served at once, on a fresh connection.
    let address = app.address.clone();
    let live = tokio::task::spawn_blocking(move || live_from("127.0.0.2", &address))
        .await
        .unwrap();
    assert!(live.starts_with("HTTP/1.1 200"), "{live:?}");
    // 127.0.0.1 holds its eight: a ninth is closed unanswered...
    let address = app.address.clone();
    let ninth = tokio::task::spawn_blocking(move || live_from("127.0.0.1", &address))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "too slow to tell"
    );
    assert_eq!(ninth, "", "the per-peer ceiling let a ninth in");
    // ...until the write deadline closes the stalled ones and frees them.
    let address = app.address.clone();
    let freed_after = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if live_from("127.0.0.1", &address).starts_with("HTTP/1.1 200") {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    })
    .await
    .unwrap();
    assert!(
        freed_after.is_some(),
        "the stalled connections kept their slots past the write deadline"
    );
    drop(readers);
    let metrics = app.metrics().await;
    assert!(metrics.contains("leadbridge_http_connections_refused_total"));
}

#[tokio::test]
async fn a_refused_request_is_logged_at_debug_with_its_peer_and_never_echoes_a_forged_name() {
    let app = crate::helpers::spawn_app().await;
    let forged = "evil%0A2026-12-07T00:00:00Z%20ERROR%20forged";
    let long = "a".repeat(30_000);
    for name in [forged, long.as_str()] {
        let res = app
            .client
            .post(app.url(&format!("/v1/webhooks/{name}")))
            .body("{}")
            .send()
            .await
            .unwrap();
        let body = assert_problem(res, 404, "unknown_connection").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            !detail.contains('\n') && !detail.contains("forged"),
            "{detail}"
        );
        assert!(detail.len() < 200, "{} bytes", detail.len());
    }
    let logs = crate::helpers::captured_logs();
    for line in logs.lines() {
        assert!(!line.contains("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), "a 30 KB name reached the log");
        assert!(
            !line.contains("Error encountered while processing"),
            "a WARN line per refused request: {line}"
        );
    }
    let refused: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| {
            l["fields"]["message"] == "request refused"
                && l["fields"]["http.target"]
                    .as_str()
                    .is_some_and(|t| t.contains("evil"))
        })
        .collect();
    let line = refused
        .first()
        .expect("a debug line for the refused webhook");
    assert_eq!(line["level"], "DEBUG");
    assert!(
        line["fields"]["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{line}"
    );
    let target = line["fields"]["http.target"].as_str().unwrap();
    assert!(!target.contains('\n'), "{target:?}");
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"leadbridge_http_requests_refused_total{status="404"}"#));
}

#[tokio::test]
async fn a_control_character_in_admin_input_is_refused_not_a_500() {
    let app = crate::helpers::spawn_app().await;
    app.connection("acme").await;
    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"caption": "Acme\u{0}EU", "company": "Acme\u{7}"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["caption", "company"], "{body}");
    for path in [
        "/v1/connections/acme/clients/a%00b",
        "/v1/connections/acme/clients/a%00b/retry",
    ] {
        let method = if path.ends_with("retry") {
            Method::POST
        } else {
            Method::GET
        };
        let res = app.admin(method, path).send().await.unwrap();
        assert_problem(res, 404, "not_found").await;
    }
    let res = app
        .admin(Method::GET, "/v1/connections/acme/clients?cursor=a%00b")
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation_failed").await;
}
