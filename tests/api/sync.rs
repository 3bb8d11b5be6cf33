//! Webhooks to Leads, end to end, against the Salesforce emulator.

use reqwest::Method;
use serde_json::{json, Value};

use crate::emulator::{Emulator, Fault, OrgConfig};
use crate::helpers::{spawn_with_org, TestApp};

pub(crate) fn mapping() -> Value {
    json!({"fieldMapping": {
        "status": "B2C_Status__c", "clientType": "B2C_Client_Type__c",
        "verificationLevel": "B2C_Verification_Level__c"
    }})
}

pub(crate) fn full_event() -> Value {
    serde_json::from_str(include_str!("../fixtures/contract_example.json")).unwrap()
}

pub(crate) fn update(client: impl Into<Value>, data: Value) -> Value {
    let mut d = data;
    d["clientId"] = client.into();
    json!({"type": "client.updated", "data": d})
}

pub(crate) async fn accepted(app: &TestApp, conn: &str, secret: &str, body: &Value) {
    let res = app.send_event(conn, secret, body).await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn a_webhook_becomes_a_lead_with_every_mapped_field() {
    let (app, emu) = spawn_with_org(OrgConfig {
        middle_name: true,
        ..OrgConfig::default()
    })
    .await;
    let secret = app.connect(&emu, "acme", mapping()).await;
    accepted(&app, "acme", &secret, &full_event()).await;
    assert_eq!(app.sync().await, 1);

    let leads = emu.leads();
    assert_eq!(leads.len(), 1);
    let lead = &leads[0];
    for (field, value) in [
        ("LastName", "Doe"),
        ("FirstName", "Jane"),
        ("MiddleName", "Q"),
        ("Email", "jane@example.com"),
        ("Phone", "+35799123456"),
        ("Street", "1 Main St"),
        ("City", "Limassol"),
        ("State", "Limassol"),
        ("PostalCode", "3035"),
        ("Country", "Cyprus"),
        ("Company", "Acme Ltd"),
        ("B2C_Status__c", "Active"),
        ("B2C_Client_Type__c", "Individual"),
        ("B2C_Verification_Level__c", "Full"),
    ] {
        assert_eq!(lead[field], value, "{field}");
    }
    let state = app.client_state("acme", "10234").await;
    assert_eq!(state["state"], "synced");
    assert_eq!(state["leadId"], lead["Id"]);
    assert_eq!(state["pendingEvents"], 0);
    assert_eq!(state["warnings"], json!([]));
    assert!(state["lastSyncedAt"].is_string());
}

#[tokio::test]
async fn an_update_changes_that_same_lead_and_leaves_absent_fields_alone() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(&app, "acme", &secret, &full_event()).await;
    app.sync().await;
    let id = app.client_state("acme", "10234").await["leadId"].clone();

    accepted(&app, "acme", &secret, &update("10234", json!({"email": "jane.doe@example.com", "info": {"lastName": "Doe-Smith"}, "phones": null}))).await;
    app.sync().await;
    let leads = emu.leads();
    assert_eq!(leads.len(), 1, "still one Lead");
    let lead = &leads[0];
    assert_eq!(lead["Id"], id);
    assert_eq!(lead["Email"], "jane.doe@example.com");
    assert_eq!(lead["LastName"], "Doe-Smith");
    assert_eq!(lead["FirstName"], "Jane", "absent: unchanged");
    assert_eq!(lead["Phone"], Value::Null, "null: cleared");
    // The update carried only what changed, and never Company.
    let last = emu.calls().last().unwrap().clone();
    assert_eq!(last.0, "PATCH");
}

#[tokio::test]
async fn events_waiting_for_one_client_are_merged_into_one_write() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    for email in ["a@x.io", "b@x.io", "c@x.io"] {
        accepted(&app, "acme", &secret, &update(5, json!({"email": email}))).await;
    }
    app.sync().await;
    assert_eq!(emu.writes(), 1);
    assert_eq!(emu.leads()[0]["Email"], "c@x.io");
}

#[tokio::test]
async fn an_older_event_arriving_later_does_not_roll_the_lead_back() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let mut newer = update(5, json!({"email": "new@x.io"}));
    newer["occurredAt"] = json!("2026-11-28T12:00:00Z");
    let mut older = update(
        5,
        json!({"email": "old@x.io", "info": {"firstName": "Ann"}}),
    );
    older["occurredAt"] = json!("2026-11-28T11:00:00Z");
    accepted(&app, "acme", &secret, &newer).await;
    app.sync().await;
    accepted(&app, "acme", &secret, &older).await;
    app.sync().await;
    let lead = &emu.leads()[0];
    assert_eq!(lead["Email"], "new@x.io");
    assert_eq!(
        lead["FirstName"], "Ann",
        "fields the newer event did not touch still apply"
    );
}

#[tokio::test]
async fn the_token_is_fetched_once_for_100_concurrent_writes() {
    // The worker batches, so drive the Salesforce client directly: 100 creates
    // at once, all needing a token that is not cached yet.
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    emu.set_latency(std::time::Duration::from_millis(50));
    app.connect(&emu, "acme", json!({})).await;
    let conn = app
        .store
        .get_connection(&leadbridge::domain::ConnectionName::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let key = leadbridge::crypto::MasterKey::parse(&app.master_key).unwrap();
    let creds = leadbridge::salesforce::Credentials::of(&conn, &key).unwrap();
    let sf = leadbridge::salesforce::Salesforce::new(leadbridge::salesforce::SalesforceSettings {
        allow_insecure: true,
        ..Default::default()
    });
    let writes = (0..100).map(|i| {
        let mut body = serde_json::Map::new();
        body.insert("LastName".into(), json!(format!("L{i}")));
        body.insert("Company".into(), json!("Acme"));
        let (sf, creds) = (&sf, &creds);
        async move {
            sf.create(creds, &body, leadbridge::salesforce::SaveOptions::UPDATE)
                .await
        }
    });
    let results = futures_util::future::join_all(writes).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(emu.leads().len(), 100);
    assert_eq!(emu.token_requests(), 1);
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_write_goes_through() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io"})),
    )
    .await;
    app.sync().await;
    emu.expire_tokens();
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "b@x.io"})),
    )
    .await;
    app.sync().await;
    assert_eq!(emu.token_requests(), 2);
    assert_eq!(emu.leads()[0]["Email"], "b@x.io");
    assert_eq!(app.client_state("acme", "1").await["state"], "synced");
}

#[tokio::test]
async fn an_outage_delays_the_sync_but_loses_nothing() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    emu.set_outage(true);
    for i in 0..5 {
        accepted(
            &app,
            "acme",
            &secret,
            &update(i, json!({"email": format!("c{i}@x.io")})),
        )
        .await;
    }
    app.sync().await;
    for i in 0..5 {
        let s = app.client_state("acme", &i.to_string()).await;
        assert_eq!(s["state"], "retrying");
        assert_eq!(s["attempts"], 1);
        assert_eq!(s["lastError"]["code"], "HTTP_503");
        assert!(s["nextAttemptAt"].is_string());
        assert_eq!(s["pendingEvents"], 1);
    }
    // Not due yet: nothing is claimed before the backoff passes.
    assert_eq!(app.sync().await, 0);
    emu.set_outage(false);
    app.clock.advance(chrono::Duration::seconds(2));
    app.sync().await;
    assert_eq!(emu.leads().len(), 5);
    for i in 0..5 {
        let s = app.client_state("acme", &i.to_string()).await;
        assert_eq!(s["state"], "synced");
        assert_eq!(s["attempts"], 0);
        assert_eq!(s["lastError"], Value::Null);
    }
}

#[tokio::test]
async fn a_locked_row_and_a_503_are_retried_with_backoff() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io"})),
    )
    .await;
    app.sync().await;
    emu.fail_next(Fault::LockRow, 1);
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "b@x.io"})),
    )
    .await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "retrying");
    assert_eq!(s["lastError"]["code"], "UNABLE_TO_LOCK_ROW");
    emu.fail_next(Fault::Unavailable, 1);
    app.clock.advance(chrono::Duration::seconds(2));
    app.sync().await;
    assert_eq!(app.client_state("acme", "1").await["attempts"], 2);
    app.clock.advance(chrono::Duration::seconds(5));
    app.sync().await;
    assert_eq!(app.client_state("acme", "1").await["state"], "synced");
    assert_eq!(emu.leads()[0]["Email"], "b@x.io");
}

#[tokio::test]
async fn failures_are_retried_for_72_hours_then_the_client_is_dead_and_can_be_retried() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    emu.set_outage(true);
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io"})),
    )
    .await;
    let mut hours = 0;
    loop {
        app.sync().await;
        let s = app.client_state("acme", "1").await;
        if s["state"] == "dead" {
            break;
        }
        assert_eq!(s["state"], "retrying", "{s}");
        app.clock.advance(chrono::Duration::hours(1));
        hours += 1;
        assert!(hours <= 80, "still retrying after {hours} h");
    }
    assert!(hours >= 72, "dead after only {hours} h");
    let dead = app.client_state("acme", "1").await;
    assert_eq!(dead["nextAttemptAt"], Value::Null);
    assert_eq!(dead["pendingEvents"], 1, "the event is kept");
    let listed: Value = app
        .admin(Method::GET, "/v1/connections/acme/clients?state=dead")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["clients"][0]["clientId"], "1");

    emu.set_outage(false);
    let res = app
        .admin(Method::POST, "/v1/connections/acme/retry-dead")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["requeued"], 1);
    app.sync().await;
    assert_eq!(app.client_state("acme", "1").await["state"], "synced");
    assert_eq!(emu.leads().len(), 1);
}

#[tokio::test]
async fn a_rejected_email_is_sent_again_without_it_with_a_warning() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(
            1,
            json!({"email": "not-an-email", "info": {"lastName": "Roe"}}),
        ),
    )
    .await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "synced");
    let warning = s["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("Email") && warning.contains("INVALID_EMAIL_ADDRESS"),
        "{warning}"
    );
    let lead = &emu.leads()[0];
    assert_eq!(lead["LastName"], "Roe");
    assert!(lead.get("Email").is_none());
}

#[tokio::test]
async fn long_values_are_cut_to_the_orgs_lengths_with_a_warning() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let city = "Ł".repeat(45);
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"addresses": [{"city": city}]})),
    )
    .await;
    app.sync().await;
    assert_eq!(emu.leads()[0]["City"].as_str().unwrap().chars().count(), 40);
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["warnings"], json!(["City cut from 45 to 40 characters"]));
}

#[tokio::test]
async fn fields_the_org_lacks_are_not_sent_and_a_changed_org_is_described_again() {
    let (app, emu) = spawn_with_org(OrgConfig {
        middle_name: true,
        ..OrgConfig::default()
    })
    .await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"info": {"middleName": "Q", "lastName": "D"}})),
    )
    .await;
    app.sync().await;
    assert_eq!(emu.leads()[0]["MiddleName"], "Q");
    // An admin turns middle names off; the cached describe still lists MiddleName.
    emu.org.lock().unwrap().cfg.middle_name = false;
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"info": {"middleName": "R", "firstName": "Al"}})),
    )
    .await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "synced", "{s}");
    assert!(
        s["warnings"][0].as_str().unwrap().contains("INVALID_FIELD"),
        "{s}"
    );
    assert_eq!(emu.leads()[0]["FirstName"], "Al");
    let describes = emu
        .calls()
        .iter()
        .filter(|(_, p)| p.ends_with("describe"))
        .count();
    assert_eq!(
        describes, 2,
        "describe was fetched again after INVALID_FIELD"
    );
}

#[tokio::test]
async fn country_codes_become_alpha_2_where_the_org_has_country_picklists() {
    let (app, emu) = spawn_with_org(OrgConfig {
        country_picklists: true,
        ..OrgConfig::default()
    })
    .await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(
            1,
            json!({"addresses": [{"country": "Cyprus", "countryCode": 196}]}),
        ),
    )
    .await;
    app.sync().await;
    let lead = &emu.leads()[0];
    assert_eq!(lead["CountryCode"], "CY");
    assert_eq!(app.client_state("acme", "1").await["state"], "synced");
}

#[tokio::test]
async fn a_lead_deleted_in_salesforce_is_created_again() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(&app, "acme", &secret, &full_event()).await;
    app.sync().await;
    let first = app.client_state("acme", "10234").await["leadId"]
        .as_str()
        .unwrap()
        .to_string();
    emu.delete_lead(&first);
    accepted(
        &app,
        "acme",
        &secret,
        &update(10234, json!({"email": "x@y.io"})),
    )
    .await;
    app.sync().await;
    let s = app.client_state("acme", "10234").await;
    assert_eq!(s["state"], "synced");
    assert_ne!(s["leadId"], first);
    let lead = emu.lead(s["leadId"].as_str().unwrap()).unwrap();
    assert_eq!(lead["Email"], "x@y.io");
    assert_eq!(lead["LastName"], "Doe", "the whole record was sent again");
    assert_eq!(lead["Company"], "Acme Ltd");
}

#[tokio::test]
async fn a_converted_lead_moves_the_client_to_converted_and_stops_its_updates() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io"})),
    )
    .await;
    app.sync().await;
    let id = app.client_state("acme", "1").await["leadId"]
        .as_str()
        .unwrap()
        .to_string();
    emu.convert_lead(&id);
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "b@x.io"})),
    )
    .await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "converted");
    assert_eq!(s["lastError"]["code"], "CANNOT_UPDATE_CONVERTED_LEAD");
    let writes = emu.writes();
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "c@x.io"})),
    )
    .await;
    app.sync().await;
    assert_eq!(emu.writes(), writes, "no write after conversion");
    assert_eq!(app.client_state("acme", "1").await["pendingEvents"], 0);
}

#[tokio::test]
async fn with_an_external_id_writes_are_upserts_and_company_goes_only_first() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app
        .connect(&emu, "acme", json!({"externalIdField": "B2C_Client_Id__c"}))
        .await;
    accepted(
        &app,
        "acme",
        &secret,
        &update("A-1", json!({"email": "a@x.io"})),
    )
    .await;
    app.sync().await;
    accepted(
        &app,
        "acme",
        &secret,
        &update("A-1", json!({"email": "b@x.io"})),
    )
    .await;
    app.sync().await;
    let leads = emu.leads();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["B2C_Client_Id__c"], "A-1");
    assert_eq!(leads[0]["Email"], "b@x.io");
    assert_eq!(leads[0]["LastName"], "Undefined");
    let upserts: Vec<_> = emu
        .calls()
        .into_iter()
        .filter(|(m, _)| m == "PATCH")
        .collect();
    assert_eq!(upserts.len(), 2);
    assert!(
        upserts
            .iter()
            .all(|(_, p)| p == "sobjects/Lead/B2C_Client_Id__c/A-1"),
        "{upserts:?}"
    );
    // A Lead deleted under an upsert connection comes back whole.
    emu.delete_lead(leads[0]["Id"].as_str().unwrap());
    accepted(
        &app,
        "acme",
        &secret,
        &update("A-1", json!({"email": "c@x.io"})),
    )
    .await;
    app.sync().await;
    let leads = emu.leads();
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["Company"], "Acme Ltd");
    assert_eq!(leads[0]["Email"], "c@x.io");
}

#[tokio::test]
async fn a_field_that_is_not_an_external_id_makes_the_client_dead_with_salesforces_error() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app
        .connect(&emu, "acme", json!({"externalIdField": "B2C_Status__c"}))
        .await;
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "a@x.io"})),
    )
    .await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "dead");
    assert_eq!(s["lastError"]["code"], "NOT_FOUND");
    // The operator fixes the setting and retries this one client.
    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"externalIdField": "B2C_Client_Id__c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .admin(Method::POST, "/v1/connections/acme/clients/1/retry")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "pending");
    app.sync().await;
    assert_eq!(app.client_state("acme", "1").await["state"], "synced");
}

#[tokio::test]
async fn the_daily_limit_pauses_that_connection_only() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let other = Emulator::start(OrgConfig::default()).await;
    let a = app.connect(&emu, "a", json!({})).await;
    let b = app.connect(&other, "b", json!({})).await;
    emu.fail_next(Fault::DailyLimit, 1);
    accepted(&app, "a", &a, &update(1, json!({"email": "a@x.io"}))).await;
    app.sync().await;
    let s = app.client_state("a", "1").await;
    assert_eq!(s["state"], "pending");
    assert_eq!(s["attempts"], 0, "a pause is not a failed attempt");
    assert_eq!(s["lastError"]["code"], "REQUEST_LIMIT_EXCEEDED");
    // The other connection goes on; the paused one is not even tried.
    accepted(&app, "a", &a, &update(2, json!({"email": "c@x.io"}))).await;
    accepted(&app, "b", &b, &update(1, json!({"email": "b@x.io"}))).await;
    app.sync().await;
    assert_eq!(other.leads().len(), 1);
    assert_eq!(emu.leads().len(), 0);
    app.clock.advance(chrono::Duration::minutes(16));
    app.sync().await;
    assert_eq!(emu.leads().len(), 2);
}

#[tokio::test]
async fn clients_of_a_disabled_connection_are_held_then_synced_once_it_is_enabled() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({"enabled": false})).await;
    for i in 0..3 {
        accepted(
            &app,
            "acme",
            &secret,
            &update(i, json!({"email": format!("c{i}@x.io")})),
        )
        .await;
    }
    assert_eq!(app.sync().await, 0);
    let page: Value = app
        .admin(Method::GET, "/v1/connections/acme/clients?state=held")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["clients"].as_array().unwrap().len(), 3);
    assert!(page["clients"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["state"] == "held"));
    app.admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    app.sync().await;
    assert_eq!(emu.leads().len(), 3);
    let page: Value = app
        .admin(Method::GET, "/v1/connections/acme/clients?state=synced")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["clients"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_client_listing_pages_with_a_cursor_and_checks_its_filters() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({"enabled": false})).await;
    for i in 0..5 {
        accepted(&app, "acme", &secret, &update(format!("c{i}"), json!({}))).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/connections/acme/clients?limit=2&cursor={c}"),
            None => "/v1/connections/acme/clients?limit=2".into(),
        };
        let page: Value = app
            .admin(Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for c in page["clients"].as_array().unwrap() {
            seen.push(c["clientId"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
    for bad in ["state=lost", "limit=0", "limit=501"] {
        let res = app
            .admin(Method::GET, &format!("/v1/connections/acme/clients?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{bad}");
    }
    let res = app
        .admin(Method::GET, "/v1/connections/acme/clients?limit=abc")
        .send()
        .await
        .unwrap();
    crate::helpers::assert_problem(res, 400, "invalid_payload").await;
    let res = app
        .admin(Method::GET, "/v1/connections/acme/clients/nobody")
        .send()
        .await
        .unwrap();
    crate::helpers::assert_problem(res, 404, "not_found").await;
}
