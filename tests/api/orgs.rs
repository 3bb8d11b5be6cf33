//! What real orgs are configured with: triggers and flows, maintenance,
//! duplicate and assignment rules, merged Leads, picklists.

use reqwest::Method;
use serde_json::{json, Value};

use crate::emulator::{Emulator, Fault, OrgConfig};
use crate::helpers::{spawn_with_org, TestApp};

fn client(id: impl Into<Value>, data: Value) -> Value {
    let mut d = data;
    d["clientId"] = id.into();
    json!({"type": "client.updated", "data": d})
}

async fn accepted(app: &TestApp, secret: &str, body: &Value) {
    let res = app.send_event("acme", secret, body).await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
}

/// The collections calls the emulator answered, by method.
fn collection_calls(emu: &Emulator) -> usize {
    emu.calls()
        .iter()
        .filter(|(_, p)| p.starts_with("composite/sobjects"))
        .count()
}

#[tokio::test]
async fn a_call_that_trips_a_trigger_limit_is_sent_again_in_halves_until_it_passes() {
    let (app, emu) = spawn_with_org(OrgConfig {
        trigger_limit: Some(3),
        ..OrgConfig::default()
    })
    .await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    for id in 1..=8 {
        accepted(
            &app,
            &secret,
            &client(id, json!({"email": format!("c{id}@x.io")})),
        )
        .await;
    }
    app.sync().await;
    // 8 records fail; 4 + 4 fail; four calls of 2 pass: seven calls, no client blamed.
    assert_eq!(collection_calls(&emu), 7, "{:?}", emu.calls());
    assert_eq!(emu.lead_count(), 8);
    for id in 1..=8 {
        let s = app.client_state("acme", &id.to_string()).await;
        assert_eq!(s["state"], "synced", "{s}");
    }
}

#[tokio::test]
async fn an_automation_error_of_one_record_alone_is_that_clients_own() {
    let (app, emu) = spawn_with_org(OrgConfig {
        trigger_limit: Some(0),
        ..OrgConfig::default()
    })
    .await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    for id in 1..=2 {
        accepted(
            &app,
            &secret,
            &client(id, json!({"email": format!("c{id}@x.io")})),
        )
        .await;
    }
    app.sync().await;
    // Two records fail, then each alone: three calls, then the clients are dead.
    assert_eq!(collection_calls(&emu), 3, "{:?}", emu.calls());
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "dead", "{s}");
    assert_eq!(
        s["lastError"]["code"],
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
    );
    assert!(s["lastError"]["message"]
        .as_str()
        .unwrap()
        .contains("Too many SOQL queries"));
}

#[tokio::test]
async fn locks_met_by_triggers_and_flows_and_maintenance_are_retried_not_dead() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(&app, &secret, &client(1, json!({"email": "a@x.io"}))).await;
    accepted(&app, &secret, &client(2, json!({"email": "b@x.io"}))).await;
    app.sync().await;
    for (fault, code) in [
        (Fault::TriggerLock, "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"),
        (Fault::FlowLock, "CANNOT_EXECUTE_FLOW_TRIGGER"),
        (
            Fault::Maintenance,
            "INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE",
        ),
    ] {
        let calls = collection_calls(&emu);
        emu.fail_next(fault, 1);
        let email = format!("{}@x.io", code.to_lowercase());
        accepted(&app, &secret, &client(1, json!({"email": email}))).await;
        accepted(
            &app,
            &secret,
            &client(2, json!({"email": format!("2{email}")})),
        )
        .await;
        app.sync().await;
        // One call, failed for every record: not split (a lock is not the
        // batch's size), not blamed on the clients.
        assert_eq!(collection_calls(&emu), calls + 1, "{code}");
        for id in ["1", "2"] {
            let s = app.client_state("acme", id).await;
            assert_eq!(s["state"], "retrying", "{code}: {s}");
            assert_eq!(s["lastError"]["code"], code, "{s}");
        }
        app.clock.advance(chrono::Duration::seconds(5));
        app.sync().await;
        let s = app.client_state("acme", "1").await;
        assert_eq!(s["state"], "synced", "{code}: {s}");
        let lead = emu.lead(s["leadId"].as_str().unwrap()).unwrap();
        assert_eq!(lead["Email"], email.as_str());
    }
}

#[allow(dead_code)]
async fn get(app: &TestApp, path: &str) -> Value {
    app.admin(Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
