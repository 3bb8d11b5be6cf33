//! Backfill: NDJSON uploads of existing clients, into the webhooks' queue.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::emulator::OrgConfig;
use crate::helpers::{assert_problem, spawn_app, spawn_with_org, TestApp};

const NDJSON: &str = "application/x-ndjson";

async fn upload(app: &TestApp, conn: &str, query: &str, body: impl Into<reqwest::Body>) -> Value {
    let res = app
        .admin(
            Method::POST,
            &format!("/v1/connections/{conn}/backfill{query}"),
        )
        .header("content-type", NDJSON)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    body
}

async fn job(app: &TestApp, conn: &str, id: &str) -> Value {
    let res = app
        .admin(
            Method::GET,
            &format!("/v1/connections/{conn}/backfill/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn lines(clients: impl IntoIterator<Item = Value>) -> String {
    clients.into_iter().map(|c| c.to_string() + "\n").collect()
}

#[tokio::test]
async fn a_backfill_reports_each_rejected_line_and_syncs_the_rest_in_batches() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    app.connect(&emu, "acme", json!({})).await;
    let body = [
        r#"{"clientId": 1, "email": "one@x.io", "info": {"lastName": "One"}}"#,
        r#"{"clientId": "2", "email": "two@x.io"}"#,
        r#"{"clientId": 3, "email": "#,
        "",
        r#"{"email": "nobody@x.io"}"#,
        r#"{"clientId": 4, "phones": [{"number": "+35799000000", "confirmed": true}]}"#,
        r#"{"clientId": 5, "phones": "+357"}"#,
    ]
    .join("\r\n");
    let answer = upload(&app, "acme", "", body).await;
    assert_eq!(answer["state"], "received", "{answer}");
    assert_eq!(answer["read"], 6, "blank lines are not counted: {answer}");
    assert_eq!(answer["accepted"], 3);
    assert_eq!(answer["synced"], 0);
    assert_eq!(answer["rejectedCount"], 3);
    let rejected = answer["rejected"].as_array().unwrap();
    let numbers: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 5, 7], "lines count from 1, blank ones too");
    assert!(rejected[0]["error"].as_str().unwrap().contains("JSON"));
    assert!(rejected[1]["error"].as_str().unwrap().contains("clientId"));
    assert!(rejected[2]["error"]
        .as_str()
        .unwrap()
        .contains("wrong type"));

    let id = answer["jobId"].as_str().unwrap().to_string();
    app.sync().await;
    let after = job(&app, "acme", &id).await;
    assert_eq!(after["synced"], 3, "{after}");
    assert_eq!(after["accepted"], 3);
    assert_eq!(emu.lead_count(), 3);
    assert_eq!(emu.writes(), 1, "three clients, one collections call");
    let one = app.client_state("acme", "1").await;
    let lead = emu.lead(one["leadId"].as_str().unwrap()).unwrap();
    assert_eq!(lead["Email"], "one@x.io");
    assert_eq!(lead["LastName"], "One");
    assert_eq!(lead["Company"], "Acme Ltd");
}

#[tokio::test]
async fn a_backfill_row_never_overwrites_a_newer_webhook() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let hook = json!({"type": "client.updated", "occurredAt": "2026-11-20T10:00:00Z",
        "data": {"clientId": 1, "email": "new@x.io"}});
    assert_eq!(app.send_event("acme", &secret, &hook).await.status(), 202);
    app.sync().await;

    // An export that still has the old address, and a name no webhook has sent.
    let row = json!({"clientId": 1, "email": "old@x.io", "info": {"firstName": "Jane"}});
    upload(&app, "acme", "", lines([row.clone()])).await;
    app.sync().await;
    let state = app.client_state("acme", "1").await;
    let lead = emu.lead(state["leadId"].as_str().unwrap()).unwrap();
    assert_eq!(lead["Email"], "new@x.io", "the webhook's newer data stays");
    assert_eq!(
        lead["FirstName"], "Jane",
        "what no webhook said is filled in"
    );

    // The other order, merged in one write: the webhook still wins.
    let writes = emu.writes();
    let row2 = json!({"clientId": 2, "email": "old2@x.io"});
    upload(&app, "acme", "", lines([row2])).await;
    let hook2 = json!({"type": "client.updated", "occurredAt": "2026-11-20T10:00:00Z",
        "data": {"clientId": 2, "email": "new2@x.io"}});
    assert_eq!(app.send_event("acme", &secret, &hook2).await.status(), 202);
    app.sync().await;
    assert_eq!(
        emu.writes() - writes,
        1,
        "the row and the webhook are one write"
    );
    let state = app.client_state("acme", "2").await;
    assert_eq!(
        emu.lead(state["leadId"].as_str().unwrap()).unwrap()["Email"],
        "new2@x.io"
    );

    // With `asOf`, an export newer than the webhook replaces its data; an older one does not.
    upload(
        &app,
        "acme",
        "?asOf=2026-11-01T00:00:00Z",
        lines([row.clone()]),
    )
    .await;
    app.sync().await;
    let lead = emu.lead(
        app.client_state("acme", "1").await["leadId"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(lead.unwrap()["Email"], "new@x.io");
    upload(&app, "acme", "?asOf=2026-11-21T00:00:00Z", lines([row])).await;
    app.sync().await;
    let lead = emu.lead(
        app.client_state("acme", "1").await["leadId"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(lead.unwrap()["Email"], "old@x.io");
}

#[tokio::test]
async fn a_webhook_goes_out_before_a_large_backfill() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let rows =
        (0..1000).map(|i| json!({"clientId": format!("b{i}"), "email": format!("b{i}@x.io")}));
    upload(&app, "acme", "", lines(rows)).await;
    app.clock.advance(chrono::Duration::seconds(5));
    let hook = json!({"type": "client.updated", "data": {"clientId": "w", "email": "w@x.io"}});
    assert_eq!(app.send_event("acme", &secret, &hook).await.status(), 202);

    // One round claims a batch: the webhook's client is in it, though it came last.
    let claimed = app.worker.run_once().await.unwrap();
    assert!(claimed < 1001, "{claimed}");
    assert_eq!(app.client_state("acme", "w").await["state"], "synced");
    app.sync().await;
    assert_eq!(emu.lead_count(), 1001);
}

#[tokio::test]
async fn an_upload_is_stored_while_it_streams_and_kept_if_it_breaks_off() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    app.connect(&emu, "stream-cut", json!({})).await;
    let conn_id = app.connection_id("stream-cut").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream(rx));
    let request = {
        let req = app
            .admin(Method::POST, "/v1/connections/stream-cut/backfill")
            .header("content-type", NDJSON)
            .body(body);
        tokio::spawn(req.send())
    };
    // 1,200 lines, cut at arbitrary byte boundaries.
    let text = lines((0..1200).map(|i| json!({"clientId": i})));
    for piece in text.as_bytes().chunks(777) {
        tx.send(Ok(piece.to_vec())).await.unwrap();
    }
    // Stored before the upload ends: it is read as it comes, not held whole.
    let mut stored = 0;
    for _ in 0..100 {
        stored = app.store.pending_events(&conn_id).await.unwrap().len();
        if stored >= 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored >= 1000, "only {stored} stored while streaming");
    // The sender fails mid-line: what was stored stays, and is synced.
    tx.send(Ok(b"{\"clientId\": 99".to_vec())).await.unwrap();
    tx.send(Err(std::io::Error::other("disk gone")))
        .await
        .unwrap();
    drop(tx);
    assert!(request.await.unwrap().is_err(), "the upload broke off");
    // The server stores what it read once it sees the break; give it a moment.
    let mut kept = 0;
    for _ in 0..100 {
        kept = app.store.pending_events(&conn_id).await.unwrap().len();
        if kept == 1200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        kept, 1200,
        "every complete line is kept, the broken one is not"
    );
    // The job says where it stopped (its id is in the log line about it,
    // written just after the lines are stored).
    let mut line = None;
    for _ in 0..100 {
        line = crate::helpers::captured_logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| {
                l["fields"]["message"] == "backfill interrupted"
                    && l["fields"]["connection"] == "stream-cut"
            });
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = line.expect("an `interrupted` log line within 5 s");
    let id = line["fields"]["job_id"].as_str().unwrap();
    let stopped = job(&app, "stream-cut", id).await;
    assert_eq!(stopped["state"], "interrupted", "{stopped}");
    assert_eq!(stopped["accepted"], 1200);
    assert_eq!(stopped["read"], 1200);
    app.sync().await;
    assert_eq!(emu.lead_count(), 1200);
}

/// A stream of the channel's items.
fn tokio_stream<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
{
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn thousands_of_lines_arriving_in_one_piece_are_all_stored() {
    let app = spawn_app().await;
    app.connection("acme").await;
    // Short lines: one read from the socket holds thousands of them.
    let body = lines((0..20_000).map(|i| json!({"clientId": i})));
    let answer = upload(&app, "acme", "", body).await;
    assert_eq!(answer["accepted"], 20_000, "{answer}");
    assert_eq!(answer["rejectedCount"], 0);
}

#[tokio::test]
async fn a_line_longer_than_the_body_limit_is_rejected_and_the_next_one_read() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    app.connect(&emu, "acme", json!({})).await;
    let long = json!({"clientId": 1, "email": "x".repeat(2 * 1024 * 1024)});
    let body = lines([long, json!({"clientId": 2})]);
    let answer = upload(&app, "acme", "", body).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["rejected"][0]["line"], 1);
    assert!(answer["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("longer than 1048576 bytes"));
}

#[tokio::test]
async fn backfill_requests_are_checked() {
    let app = spawn_app().await;
    app.connection("acme").await;
    let url = "/v1/connections/acme/backfill";
    let res = app
        .client
        .post(app.url(url))
        .header("content-type", NDJSON)
        .body("{\"clientId\":1}\n")
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = app
        .admin(Method::POST, "/v1/connections/nope/backfill")
        .header("content-type", NDJSON)
        .body("{\"clientId\":1}\n")
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
    let res = app
        .admin(Method::POST, url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("{\"clientId\":1}\n")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 415, "unsupported_media_type").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("application/x-ndjson"));
    let res = app
        .admin(Method::POST, url)
        .header("content-type", NDJSON)
        .header("content-encoding", "gzip")
        .body(vec![0x1f_u8, 0x8b, 0x08, 0x00])
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 415, "unsupported_media_type").await;
    assert!(problem["detail"].as_str().unwrap().contains("compressed"));
    let res = app
        .admin(Method::POST, &format!("{url}?asOf=2999-01-01T00:00:00Z"))
        .header("content-type", NDJSON)
        .body("{\"clientId\":1}\n")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_payload").await;
    let res = app
        .admin(
            Method::GET,
            &format!("{url}/0192f5a0-0000-7000-8000-000000000000"),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;

    // A job is visible on its own connection only.
    app.connection("other").await;
    let answer = upload(&app, "acme", "", "{\"clientId\":1}\n").await;
    let id = answer["jobId"].as_str().unwrap();
    let res = app
        .admin(Method::GET, &format!("/v1/connections/other/backfill/{id}"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
    // Jobs are listed newest first, so a lost jobId can be found again.
    let second = upload(&app, "acme", "", "{\"clientId\":2}\n").await;
    let listed: Value = app
        .admin(Method::GET, url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second["jobId"].as_str().unwrap(), id], "{listed}");
    // A disabled connection holds the rows, as it holds webhooks.
    let held = job(&app, "acme", id).await;
    assert_eq!(
        (held["accepted"].as_u64(), held["synced"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(app.client_state("acme", "1").await["state"], "held");
}

#[tokio::test]
async fn done_events_are_deleted_after_their_retention_and_nothing_pending_is() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let held_secret = app.connection("held").await; // disabled: its event stays pending
    let hook = crate::helpers::Webhook::standard(
        &secret,
        "msg-once",
        app.now(),
        &json!({"type": "client.updated", "data": {"clientId": "w", "email": "w@x.io"}})
            .to_string(),
    );
    assert_eq!(app.post_webhook("acme", &hook).await.status(), 202);
    let job_id = upload(
        &app,
        "acme",
        "",
        lines([json!({"clientId": "b1"}), json!({"clientId": "b2"})]),
    )
    .await["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"type": "client.updated", "data": {"clientId": "h", "email": "h@x.io"}});
    assert_eq!(
        app.send_event("held", &held_secret, &body).await.status(),
        202
    );
    app.sync().await;
    assert_eq!(
        app.worker.prune().await.unwrap(),
        0,
        "nothing is old enough yet"
    );

    // A day later the webhook's id is still known: a redelivery is a duplicate.
    app.clock.advance(chrono::Duration::days(1));
    let again = crate::helpers::Webhook::standard(&secret, "msg-once", app.now(), &hook.body);
    assert_eq!(app.post_webhook("acme", &again).await.status(), 200);

    // Past the retention (7 days by default) the three done events go; the held one stays.
    app.clock.advance(chrono::Duration::days(7));
    assert_eq!(app.worker.prune().await.unwrap(), 3);
    assert_eq!(app.client_state("held", "h").await["pendingEvents"], 1);
    let counts = job(&app, "acme", &job_id).await;
    assert_eq!(
        (counts["accepted"].as_u64(), counts["synced"].as_u64()),
        (Some(2), Some(2)),
        "a job's counts outlive its events: {counts}"
    );
    let text = app.metrics().await;
    assert!(text.contains("leadbridge_events_pruned_total"), "{text}");
}

#[tokio::test]
async fn a_backfill_and_webhooks_for_the_same_clients_at_once_lose_nothing() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app
        .connect(&emu, "acme", json!({"externalIdField": "B2C_Client_Id__c"}))
        .await;
    let rows = lines((0..3000).map(|i| json!({"clientId": i, "email": format!("old{i}@x.io"), "info": {"lastName": format!("L{i}")}})));
    let backfill = {
        let req = app
            .admin(Method::POST, "/v1/connections/acme/backfill")
            .header("content-type", NDJSON)
            .body(rows);
        tokio::spawn(req.send())
    };
    // Meanwhile, webhooks for every tenth of those clients, all at once.
    let hooks = futures_util::future::join_all((0..3000).step_by(10).map(|i| {
        let body = json!({"type": "client.updated", "occurredAt": "2026-11-20T10:00:00Z",
            "data": {"clientId": i, "email": format!("new{i}@x.io")}});
        let app = &app;
        let secret = &secret;
        async move {
            app.send_event("acme", secret, &body)
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    assert!(hooks.iter().all(|&s| s == 202), "{hooks:?}");
    let res = backfill.await.unwrap().unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["accepted"], 3000, "{job}");

    app.sync().await;
    assert_eq!(emu.lead_count(), 3000);
    for lead in emu.leads() {
        let id: u64 = lead["B2C_Client_Id__c"].as_str().unwrap().parse().unwrap();
        let want = if id.is_multiple_of(10) {
            format!("new{id}@x.io")
        } else {
            format!("old{id}@x.io")
        };
        assert_eq!(lead["Email"], want.as_str(), "client {id}");
        assert_eq!(lead["LastName"], format!("L{id}").as_str(), "client {id}");
    }
}
