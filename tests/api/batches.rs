//! Batches and the API budget: sObject Collections calls, skipped writes,
//! `Sforce-Limit-Info` and the budget, end to end against the emulator.

use reqwest::Method;
use serde_json::{json, Value};

use crate::emulator::{Emulator, OrgConfig};
use crate::helpers::spawn_with_org;
use crate::sync::{accepted, update};

fn composite_calls(emu: &Emulator) -> Vec<(String, String)> {
    emu.calls()
        .into_iter()
        .filter(|(_, p)| p.starts_with("composite/"))
        .collect()
}

#[tokio::test]
async fn several_due_clients_go_out_in_one_collections_call() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({"enabled": false})).await;
    for i in 0..50 {
        accepted(
            &app,
            "acme",
            &secret,
            &update(i, json!({"email": format!("c{i}@x.io")})),
        )
        .await;
    }
    app.admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    app.sync().await;
    assert_eq!(emu.leads().len(), 50);
    assert_eq!(
        composite_calls(&emu),
        vec![("POST".to_string(), "composite/sobjects".to_string())]
    );
    assert_eq!(emu.writes(), 1, "no single-record write");
    for i in 0..50 {
        accepted(
            &app,
            "acme",
            &secret,
            &update(i, json!({"email": format!("new{i}@x.io")})),
        )
        .await;
    }
    app.sync().await;
    assert_eq!(
        composite_calls(&emu).last().unwrap(),
        &("PATCH".to_string(), "composite/sobjects".to_string())
    );
    assert_eq!(emu.writes(), 2);
    assert!(emu
        .leads()
        .iter()
        .all(|l| l["Email"].as_str().unwrap().starts_with("new")));
    let page: Value = app
        .admin(
            Method::GET,
            "/v1/connections/acme/clients?state=synced&limit=100",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["clients"].as_array().unwrap().len(), 50);
}

#[tokio::test]
async fn upserts_are_batched_by_the_external_id_field() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app
        .connect(
            &emu,
            "acme",
            json!({"enabled": false, "externalIdField": "B2C_Client_Id__c"}),
        )
        .await;
    for i in 0..20 {
        accepted(
            &app,
            "acme",
            &secret,
            &update(format!("x{i}"), json!({"email": format!("c{i}@x.io")})),
        )
        .await;
    }
    app.admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    app.sync().await;
    assert_eq!(
        composite_calls(&emu),
        vec![(
            "PATCH".to_string(),
            "composite/sobjects/Lead/B2C_Client_Id__c".to_string()
        )]
    );
    let leads = emu.leads();
    assert_eq!(leads.len(), 20);
    assert!(
        leads.iter().all(|l| l["Company"] == "Acme Ltd"),
        "Company goes with the first write"
    );
}

#[tokio::test]
async fn more_than_200_due_clients_are_split_into_calls_of_200() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({"enabled": false})).await;
    for i in 0..450 {
        accepted(
            &app,
            "acme",
            &secret,
            &update(i, json!({"email": format!("c{i}@x.io")})),
        )
        .await;
    }
    app.admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    app.sync().await;
    assert_eq!(emu.leads().len(), 450);
    assert_eq!(composite_calls(&emu).len(), 3, "200 + 200 + 50");
}

#[tokio::test]
async fn a_bad_record_in_a_batch_neither_fails_nor_holds_back_the_others() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({"enabled": false})).await;
    for i in 0..10 {
        let email = if i == 3 {
            "broken".to_string()
        } else {
            format!("c{i}@x.io")
        };
        accepted(
            &app,
            "acme",
            &secret,
            &update(
                i,
                json!({"email": email, "info": {"lastName": format!("L{i}")}}),
            ),
        )
        .await;
    }
    app.admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    app.sync().await;
    assert_eq!(emu.leads().len(), 10);
    for i in 0..10 {
        let s = app.client_state("acme", &i.to_string()).await;
        assert_eq!(s["state"], "synced", "{s}");
        assert_eq!(s["attempts"], 0);
        let warned = !s["warnings"].as_array().unwrap().is_empty();
        assert_eq!(warned, i == 3, "{s}");
    }
    // One collections call, then the bad record alone, without its Email.
    assert_eq!(composite_calls(&emu).len(), 1);
    assert_eq!(emu.writes(), 2);
    let bad = emu
        .leads()
        .into_iter()
        .find(|l| l["LastName"] == "L3")
        .unwrap();
    assert!(bad.get("Email").is_none());
}

#[tokio::test]
async fn a_client_whose_lead_would_not_change_is_not_sent_again() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io", "info": {"lastName": "D"}})),
    )
    .await;
    app.sync().await;
    let writes = emu.writes();
    // The same data again (B2CORE resends on its own schedule, with a new id).
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io", "info": {"lastName": "D"}})),
    )
    .await;
    app.sync().await;
    assert_eq!(
        emu.writes(),
        writes,
        "an identical Lead is not written again"
    );
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "synced");
    assert_eq!(s["pendingEvents"], 0);
}

#[tokio::test]
async fn the_orgs_api_usage_is_read_from_every_answer_and_shown_on_the_connection() {
    let (app, emu) = spawn_with_org(OrgConfig {
        daily_max: 5000,
        ..OrgConfig::default()
    })
    .await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let before: Value = app
        .admin(Method::GET, "/v1/connections/acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["apiUsage"], Value::Null);
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io"})),
    )
    .await;
    app.sync().await;
    let conn: Value = app
        .admin(Method::GET, "/v1/connections/acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let usage = &conn["apiUsage"];
    assert_eq!(usage["used"], 2, "describe and one write: {usage}");
    assert_eq!(usage["max"], 5000);
    assert_eq!(usage["budgetPercent"], 80);
    assert_eq!(usage["budgetReached"], false);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"leadbridge_salesforce_api_used{connection="acme"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"leadbridge_salesforce_api_max{connection="acme"} 5000"#));
}

#[tokio::test]
async fn a_limit_header_of_several_parts_still_feeds_the_budget() {
    // The app's own quota (2 calls) is tighter than the org's allocation.
    let (app, emu) = spawn_with_org(OrgConfig {
        daily_max: 100_000,
        app_quota: Some(2),
        ..OrgConfig::default()
    })
    .await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io"})),
    )
    .await;
    app.sync().await;
    let conn: Value = app
        .admin(Method::GET, "/v1/connections/acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let usage = &conn["apiUsage"];
    assert_eq!(usage["used"], 2, "{usage}");
    assert_eq!(usage["max"], 2, "the app's quota, not the org's: {usage}");
    assert_eq!(usage["budgetReached"], true, "{usage}");
}

#[tokio::test]
async fn past_the_budget_only_urgent_work_is_written() {
    let (app, emu) = spawn_with_org(OrgConfig {
        daily_max: 100,
        ..OrgConfig::default()
    })
    .await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    emu.set_api_calls(85); // the org's other integrations
    accepted(
        &app,
        "acme",
        &secret,
        &update("c1", json!({"email": "c1@x.io"})),
    )
    .await;
    app.sync().await;
    let conn: Value = app
        .admin(Method::GET, "/v1/connections/acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conn["apiUsage"]["budgetReached"], true, "{conn}");

    // Backfill waits; a webhook still goes out.
    let res = app
        .admin(Method::POST, "/v1/connections/acme/backfill")
        .header("content-type", "application/x-ndjson")
        .body(json!({"clientId": "b", "email": "b@x.io"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    accepted(
        &app,
        "acme",
        &secret,
        &update("c2", json!({"email": "c2@x.io"})),
    )
    .await;
    app.sync().await;
    let emails: Vec<String> = emu
        .leads()
        .iter()
        .map(|l| l["Email"].as_str().unwrap().to_string())
        .collect();
    assert!(
        emails.contains(&"c2@x.io".to_string()),
        "urgent work is written: {emails:?}"
    );
    assert!(
        !emails.contains(&"b@x.io".to_string()),
        "non-urgent work waits: {emails:?}"
    );
    let b = app.client_state("acme", "b").await;
    assert_eq!(b["state"], "pending");
    assert_eq!(b["attempts"], 0);
    assert_eq!(b["pendingEvents"], 1);

    // Once the reading is older than the pause, the next write checks again.
    app.clock.advance(chrono::Duration::minutes(16));
    app.sync().await;
    assert!(emu.leads().iter().any(|l| l["Email"] == "b@x.io"));
}
