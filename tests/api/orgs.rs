//! What real orgs are configured with: triggers and flows, maintenance,
//! duplicate and assignment rules, merged Leads, picklists.

use reqwest::Method;
use serde_json::{json, Value};

use crate::emulator::{DuplicateAction, Emulator, Fault, OrgConfig};
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

async fn get(app: &TestApp, path: &str) -> Value {
    app.admin(Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const QUEUE: &str = "00Gxx0000000QueAAA";
const REP: &str = "005xx00000RepAAA";

fn org_with_assignment() -> OrgConfig {
    OrgConfig {
        assignment_owner: Some(QUEUE.into()),
        ..OrgConfig::default()
    }
}

/// The Lead of client `id`.
async fn lead_of(app: &TestApp, emu: &Emulator, id: &str) -> serde_json::Map<String, Value> {
    let s = app.client_state("acme", id).await;
    assert_eq!(s["state"], "synced", "{s}");
    emu.lead(s["leadId"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn the_assignment_rule_runs_on_the_first_create_and_never_on_updates() {
    for extra in [json!({}), json!({"externalIdField": "B2C_Client_Id__c"})] {
        let (app, emu) = spawn_with_org(org_with_assignment()).await;
        let secret = app.connect(&emu, "acme", extra.clone()).await;
        // One client alone (a single-record call), then two (a collections call).
        accepted(&app, &secret, &client(1, json!({"email": "a@x.io"}))).await;
        app.sync().await;
        accepted(&app, &secret, &client(2, json!({"email": "b@x.io"}))).await;
        accepted(&app, &secret, &client(3, json!({"email": "c@x.io"}))).await;
        app.sync().await;
        for id in ["1", "2", "3"] {
            let lead = lead_of(&app, &emu, id).await;
            assert_eq!(
                lead["OwnerId"], QUEUE,
                "{extra}: the rule assigned the new Lead"
            );
            emu.set_owner(lead["Id"].as_str().unwrap(), REP);
        }
        // Updates, alone and batched, keep the rep as the owner.
        accepted(&app, &secret, &client(1, json!({"email": "a2@x.io"}))).await;
        app.sync().await;
        accepted(&app, &secret, &client(2, json!({"email": "b2@x.io"}))).await;
        accepted(&app, &secret, &client(3, json!({"email": "c2@x.io"}))).await;
        app.sync().await;
        for (id, email) in [("1", "a2@x.io"), ("2", "b2@x.io"), ("3", "c2@x.io")] {
            let lead = lead_of(&app, &emu, id).await;
            assert_eq!(lead["Email"], email);
            assert_eq!(
                lead["OwnerId"], REP,
                "{extra}: an update took the Lead from its rep"
            );
        }
    }
}

#[tokio::test]
async fn with_assignment_off_new_leads_keep_the_integration_user() {
    let (app, emu) = spawn_with_org(org_with_assignment()).await;
    let secret = app
        .connect(&emu, "acme", json!({"assignOnCreate": false}))
        .await;
    assert_eq!(
        get(&app, "/v1/connections/acme").await["assignOnCreate"],
        false
    );
    accepted(&app, &secret, &client(1, json!({"email": "a@x.io"}))).await;
    app.sync().await;
    let lead = lead_of(&app, &emu, "1").await;
    assert_eq!(lead["OwnerId"], crate::emulator::RUN_AS_USER);
}

fn org_with_duplicates(action: DuplicateAction) -> OrgConfig {
    OrgConfig {
        duplicate_rule: Some(action),
        ..OrgConfig::default()
    }
}

/// A Lead that was in the org before leadbridge (a CSV import).
fn imported(emu: &Emulator, email: &str) -> String {
    emu.insert_lead(
        json!({"FirstName": "Jane", "LastName": "Doe", "Company": "Imported Ltd",
        "Email": email}),
    )
}

#[tokio::test]
async fn by_default_a_duplicate_is_created_past_an_alert_rule() {
    let (app, emu) = spawn_with_org(org_with_duplicates(DuplicateAction::Alert)).await;
    assert_eq!(
        app.create_connection(json!({"name": "probe"})).await["onDuplicate"],
        "create"
    );
    imported(&emu, "jane@x.io");
    imported(&emu, "john@x.io");
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(&app, &secret, &client(1, json!({"email": "jane@x.io"}))).await;
    app.sync().await;
    accepted(&app, &secret, &client(2, json!({"email": "JOHN@x.io"}))).await;
    accepted(&app, &secret, &client(3, json!({"email": "jane@x.io"}))).await;
    app.sync().await;
    for id in ["1", "2", "3"] {
        lead_of(&app, &emu, id).await;
    }
    assert_eq!(emu.lead_count(), 5);
}

#[tokio::test]
async fn a_block_rule_makes_the_client_dead_with_the_matched_leads_and_is_not_retried() {
    let (app, emu) = spawn_with_org(org_with_duplicates(DuplicateAction::Block)).await;
    let jane = imported(&emu, "jane@x.io");
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(&app, &secret, &client(1, json!({"email": "jane@x.io"}))).await;
    accepted(&app, &secret, &client(2, json!({"email": "other@x.io"}))).await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "dead", "{s}");
    assert_eq!(s["lastError"]["code"], "DUPLICATES_DETECTED");
    let message = s["lastError"]["message"].as_str().unwrap();
    assert!(
        message.contains(&jane) && message.contains("blocked"),
        "{message}"
    );
    assert!(
        message.contains("Standard_Lead_Duplicate_Rule"),
        "{message}"
    );
    lead_of(&app, &emu, "2").await;
    // The batch, then client 1 alone to learn the matches; then nothing more.
    let calls = emu.calls().len();
    app.clock.advance(chrono::Duration::hours(1));
    app.sync().await;
    assert_eq!(
        emu.calls().len(),
        calls,
        "a blocked duplicate is not retried"
    );
}

#[tokio::test]
async fn report_makes_a_matched_client_dead_with_the_matched_leads() {
    let (app, emu) = spawn_with_org(org_with_duplicates(DuplicateAction::Alert)).await;
    let jane = imported(&emu, "jane@x.io");
    let secret = app
        .connect(&emu, "acme", json!({"onDuplicate": "report"}))
        .await;
    accepted(&app, &secret, &client(1, json!({"email": "jane@x.io"}))).await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "dead", "{s}");
    assert_eq!(s["lastError"]["code"], "DUPLICATES_DETECTED");
    assert!(s["lastError"]["message"].as_str().unwrap().contains(&jane));
    assert_eq!(emu.lead_count(), 1);
}

#[tokio::test]
async fn adopt_links_a_backfilled_client_to_the_imported_lead_and_keeps_it_current() {
    for extra in [
        json!({"onDuplicate": "adopt"}),
        json!({"onDuplicate": "adopt", "externalIdField": "B2C_Client_Id__c"}),
    ] {
        let (app, emu) = spawn_with_org(org_with_duplicates(DuplicateAction::Alert)).await;
        let jane = imported(&emu, "jane@x.io");
        let john = imported(&emu, "john@x.io");
        let secret = app.connect(&emu, "acme", extra.clone()).await;
        // Onboarding: the backfill names clients the org already has.
        let lines = [
            json!({"clientId": 1, "email": "jane@x.io", "info": {"lastName": "Doe"},
                "phones": [{"number": "+35799000001", "confirmed": true}]}),
            json!({"clientId": 2, "email": "john@x.io", "info": {"lastName": "Doe"}}),
            json!({"clientId": 3, "email": "new@x.io", "info": {"lastName": "New"}}),
        ];
        let body: Vec<String> = lines.iter().map(Value::to_string).collect();
        let res = app
            .admin(Method::POST, "/v1/connections/acme/backfill")
            .header("content-type", "application/x-ndjson")
            .body(body.join("\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        app.sync().await;
        assert_eq!(
            emu.lead_count(),
            3,
            "{extra}: no second Lead for imported clients"
        );
        for (id, lead_id) in [("1", &jane), ("2", &john)] {
            let s = app.client_state("acme", id).await;
            assert_eq!(s["leadId"], lead_id.as_str(), "{extra}: {s}");
            let warned = s["warnings"].as_array().unwrap().iter().any(|w| {
                w.as_str()
                    .unwrap()
                    .contains(&format!("adopted the existing Lead {lead_id}"))
            });
            assert!(warned, "{s}");
            let lead = emu.lead(lead_id).unwrap();
            assert_eq!(
                lead["Company"], "Imported Ltd",
                "adoption does not overwrite Company"
            );
        }
        assert_eq!(emu.lead(&jane).unwrap()["Phone"], "+35799000001");
        // Later webhooks update the adopted Lead.
        accepted(&app, &secret, &client(1, json!({"email": "jane.doe@x.io"}))).await;
        app.sync().await;
        assert_eq!(
            emu.lead(&jane).unwrap()["Email"],
            "jane.doe@x.io",
            "{extra}"
        );
        assert_eq!(emu.lead_count(), 3);
        if extra.get("externalIdField").is_some() {
            assert_eq!(emu.lead(&jane).unwrap()["B2C_Client_Id__c"], "1");
        }
    }
}

#[tokio::test]
async fn adopt_with_several_matches_reports_them_instead_of_guessing() {
    let (app, emu) = spawn_with_org(org_with_duplicates(DuplicateAction::Alert)).await;
    let a = imported(&emu, "jane@x.io");
    let b = imported(&emu, "JANE@x.io");
    let secret = app
        .connect(&emu, "acme", json!({"onDuplicate": "adopt"}))
        .await;
    accepted(&app, &secret, &client(1, json!({"email": "jane@x.io"}))).await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "dead", "{s}");
    let message = s["lastError"]["message"].as_str().unwrap();
    assert!(message.contains(&a) && message.contains(&b), "{message}");
    assert_eq!(emu.lead_count(), 2);
}

#[tokio::test]
async fn the_test_report_says_what_the_org_rules_settings_can_do() {
    let (app, emu) = spawn_with_org(OrgConfig {
        country_picklists: true,
        ..OrgConfig::default()
    })
    .await;
    app.connect(
        &emu,
        "acme",
        json!({"apiVersion": "v51.0", "assignOnCreate": false}),
    )
    .await;
    let test = |name: &'static str| {
        let app = &app;
        async move {
            let res = app
                .admin(Method::POST, &format!("/v1/connections/{name}/test"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let old = test("acme").await["orgRules"].clone();
    assert_eq!(old["duplicateRuleHeader"], false);
    assert_eq!(old["onDuplicate"], "create");
    assert_eq!(old["assignOnCreate"], false);
    assert_eq!(old["stateCode"], true);
    // Every ISO country is active in the emulator's org; three have states.
    assert_eq!(old["activeCountries"], 250, "{old}");
    assert_eq!(
        old["countriesWithStates"],
        json!(["AU", "CA", "US"]),
        "{old}"
    );
    assert!(
        old["warnings"][0].as_str().unwrap().contains("v52.0"),
        "{old}"
    );
    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"apiVersion": "v62.0", "onDuplicate": "adopt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let new = test("acme").await["orgRules"].clone();
    assert_eq!(new["duplicateRuleHeader"], true);
    assert_eq!(new["onDuplicate"], "adopt");
    assert_eq!(new["warnings"], json!([]));
}

#[tokio::test]
async fn bad_org_rule_settings_are_refused_by_name() {
    let (app, _emu) = spawn_with_org(OrgConfig::default()).await;
    app.connection("acme").await;
    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"onDuplicate": "merge", "assignOnCreate": "yes"}))
        .send()
        .await
        .unwrap();
    let body = crate::helpers::assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["assignOnCreate", "onDuplicate"]);
    // null puts the defaults back.
    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"onDuplicate": null, "assignOnCreate": null}))
        .send()
        .await
        .unwrap();
    let conn: Value = res.json().await.unwrap();
    assert_eq!(
        (conn["onDuplicate"].clone(), conn["assignOnCreate"].clone()),
        (json!("create"), json!(true))
    );
}

#[tokio::test]
async fn a_client_whose_lead_was_merged_follows_it_to_the_surviving_lead() {
    for extra in [json!({}), json!({"externalIdField": "B2C_Client_Id__c"})] {
        let (app, emu) = spawn_with_org(OrgConfig::default()).await;
        let secret = app.connect(&emu, "acme", extra.clone()).await;
        accepted(&app, &secret, &client(1, json!({"email": "a@x.io"}))).await;
        app.sync().await;
        let mine = app.client_state("acme", "1").await["leadId"]
            .as_str()
            .unwrap()
            .to_string();
        let master = emu.insert_lead(json!({"LastName": "Doe", "Company": "Kept Ltd"}));
        emu.merge_leads(&master, &mine);
        accepted(&app, &secret, &client(1, json!({"email": "merged@x.io"}))).await;
        app.sync().await;
        let s = app.client_state("acme", "1").await;
        assert_eq!(s["state"], "synced", "{extra}: {s}");
        assert_eq!(s["leadId"], master.as_str(), "{extra}");
        let note = format!("the Lead {mine} was merged into {master}");
        assert!(s["warnings"][0].as_str().unwrap().contains(&note), "{s}");
        let lead = emu.lead(&master).unwrap();
        assert_eq!(lead["Email"], "merged@x.io");
        assert_eq!(lead["Company"], "Kept Ltd");
        assert_eq!(
            emu.lead_count(),
            1,
            "{extra}: no Lead was created for the client"
        );
        if extra.get("externalIdField").is_some() {
            assert_eq!(
                lead["B2C_Client_Id__c"], "1",
                "later upserts find the survivor"
            );
        }
        // Later events go straight to the survivor.
        let queries = || {
            emu.calls()
                .iter()
                .filter(|(_, p)| p.starts_with("queryAll"))
                .count()
        };
        let before = queries();
        accepted(&app, &secret, &client(1, json!({"email": "later@x.io"}))).await;
        app.sync().await;
        assert_eq!(emu.lead(&master).unwrap()["Email"], "later@x.io");
        assert_eq!(
            queries(),
            before,
            "no query once the client follows the survivor"
        );
    }
}

#[tokio::test]
async fn a_lead_really_deleted_is_created_again_after_the_query_says_so() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    accepted(&app, &secret, &client(1, json!({"email": "a@x.io"}))).await;
    accepted(&app, &secret, &client(2, json!({"email": "b@x.io"}))).await;
    app.sync().await;
    let one = app.client_state("acme", "1").await["leadId"]
        .as_str()
        .unwrap()
        .to_string();
    let two = app.client_state("acme", "2").await["leadId"]
        .as_str()
        .unwrap()
        .to_string();
    emu.delete_lead(&two);
    emu.empty_recycle_bin(); // two is gone for good
    emu.delete_lead(&one); // one is in the recycle bin
    accepted(&app, &secret, &client(1, json!({"email": "a2@x.io"}))).await;
    accepted(&app, &secret, &client(2, json!({"email": "b2@x.io"}))).await;
    app.sync().await;
    for (id, old) in [("1", &one), ("2", &two)] {
        let s = app.client_state("acme", id).await;
        assert_eq!(s["state"], "synced", "{s}");
        assert_ne!(s["leadId"], old.as_str());
    }
    assert_eq!(emu.lead_count(), 2);
    let queries = emu
        .calls()
        .iter()
        .filter(|(_, p)| p.starts_with("queryAll"))
        .count();
    assert_eq!(
        queries, 2,
        "one look per lost Lead before creating it again"
    );
}

/// An app whose Salesforce calls time out after one second.
async fn spawn_impatient(org: OrgConfig) -> (TestApp, Emulator) {
    let app = crate::helpers::spawn_app_with(|s| {
        s.allow_insecure_salesforce = true;
        s.salesforce.request_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    (app, Emulator::start(org).await)
}

/// Writes client 1 while the answer to its first write is lost (the write
/// itself committed), then once more after the retry delay; returns its state.
async fn write_through_a_lost_answer(app: &TestApp, emu: &Emulator, extra: Value) -> Value {
    let secret = app.connect(emu, "acme", extra).await;
    // A first client, so the token and describe are fetched before the fault.
    accepted(app, &secret, &client(9, json!({"email": "warm@x.io"}))).await;
    app.sync().await;
    emu.fail_next(Fault::AnswerLost, 1);
    accepted(app, &secret, &client(1, json!({"email": "jane@x.io"}))).await;
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "retrying", "{s}");
    assert_eq!(s["lastError"]["code"], "TIMEOUT", "{s}");
    app.clock.advance(chrono::Duration::seconds(5));
    app.sync().await;
    app.client_state("acme", "1").await
}

fn leads_with_email(emu: &Emulator, email: &str) -> usize {
    emu.leads().iter().filter(|l| l["Email"] == email).count()
}

#[tokio::test]
async fn a_lost_answer_with_an_external_id_is_an_upsert_and_makes_no_duplicate() {
    let (app, emu) = spawn_impatient(OrgConfig::default()).await;
    let s = write_through_a_lost_answer(&app, &emu, json!({"externalIdField": "B2C_Client_Id__c"}))
        .await;
    assert_eq!(s["state"], "synced", "{s}");
    assert_eq!(leads_with_email(&emu, "jane@x.io"), 1, "{:?}", emu.leads());
}

#[tokio::test]
async fn a_lost_create_without_an_external_id_is_caught_by_an_alert_rule_with_adopt() {
    let (app, emu) = spawn_impatient(org_with_duplicates(DuplicateAction::Alert)).await;
    let s = write_through_a_lost_answer(&app, &emu, json!({"onDuplicate": "adopt"})).await;
    assert_eq!(s["state"], "synced", "{s}");
    assert_eq!(leads_with_email(&emu, "jane@x.io"), 1, "{:?}", emu.leads());
    let lead = emu.lead(s["leadId"].as_str().unwrap()).unwrap();
    assert_eq!(lead["Email"], "jane@x.io");
}

fn queries(emu: &Emulator) -> usize {
    emu.calls()
        .iter()
        .filter(|(m, p)| m == "GET" && p.starts_with("query/"))
        .count()
}

/// Without an external id, the retry first asks for a Lead this user created
/// since the lost call began, with the LastName, Email and Company it carried:
/// the Lead the lost create made is updated, not made a second time, whether
/// or not a duplicate rule would have caught it.
#[tokio::test]
async fn a_lost_create_without_an_external_id_is_found_and_not_made_twice() {
    for (org, extra) in [
        (OrgConfig::default(), json!({})),
        (
            org_with_duplicates(DuplicateAction::Alert),
            json!({"onDuplicate": "create"}),
        ),
    ] {
        let (app, emu) = spawn_impatient(org).await;
        let s = write_through_a_lost_answer(&app, &emu, extra.clone()).await;
        assert_eq!(s["state"], "synced", "{extra}: {s}");
        assert_eq!(
            leads_with_email(&emu, "jane@x.io"),
            1,
            "{extra}: {:?}",
            emu.leads()
        );
        assert!(warned(&s, "its answer never came"), "{s}");
        assert_eq!(queries(&emu), 1, "one lookup: {:?}", emu.calls());
        let soql = emu.org.lock().unwrap().soql.clone();
        assert!(
            soql[0].contains(&format!("CreatedById = '{}'", crate::emulator::RUN_AS_USER))
                && soql[0].contains("Email = 'jane@x.io'")
                && soql[0].contains("Company = 'Acme Ltd'"),
            "{soql:?}"
        );
        let lead = emu.lead(s["leadId"].as_str().unwrap()).unwrap();
        assert_eq!(lead["Email"], "jane@x.io");
    }
}

#[tokio::test]
async fn the_lookup_takes_no_lead_another_client_holds_and_none_it_did_not_create() {
    let (app, emu) = spawn_impatient(OrgConfig::default()).await;
    // Jane as an import left her a month ago, by another user.
    let import = emu
        .insert_lead(json!({"LastName": "Undefined", "Company": "Acme Ltd", "Email": "jane@x.io"}));
    let secret = app.connect(&emu, "acme", json!({})).await;
    // Client 2 is Jane's twin in B2CORE, with a Lead of its own.
    accepted(&app, &secret, &client(2, json!({"email": "jane@x.io"}))).await;
    app.sync().await;
    let twin = app.client_state("acme", "2").await["leadId"].clone();
    emu.fail_next(Fault::AnswerLost, 1);
    accepted(&app, &secret, &client(1, json!({"email": "jane@x.io"}))).await;
    app.sync().await;
    assert_eq!(app.client_state("acme", "1").await["state"], "retrying");
    app.clock.advance(chrono::Duration::seconds(5));
    app.sync().await;
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "synced", "{s}");
    assert_ne!(s["leadId"], twin);
    assert_ne!(s["leadId"], import.as_str());
    assert!(warned(&s, "its answer never came"), "{s}");
    assert_eq!(leads_with_email(&emu, "jane@x.io"), 3, "{:?}", emu.leads());
}

fn org_with_picklists(inactive: &[&str]) -> OrgConfig {
    OrgConfig {
        country_picklists: true,
        inactive_countries: inactive.iter().map(|c| c.to_string()).collect(),
        ..OrgConfig::default()
    }
}

fn lived_at(id: u32, address: Value) -> Value {
    client(
        id,
        json!({"email": format!("c{id}@x.io"), "info": {"lastName": format!("L{id}")},
               "addresses": [address]}),
    )
}

fn warned(s: &Value, text: &str) -> bool {
    s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains(text))
}

#[tokio::test]
async fn a_state_goes_as_its_state_code_and_a_state_the_org_lacks_costs_no_call() {
    let (app, emu) = spawn_with_org(org_with_picklists(&["RU"])).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let addresses = [
        json!({"country": "United States", "countryCode": "USA", "state": "Washington"}),
        json!({"country": "Australia", "countryCode": "AU", "state": "WA"}),
        json!({"country": "Cyprus", "countryCode": "CY", "state": "Nicosia"}),
        json!({"country": "Russia", "countryCode": "RU", "state": "Moscow"}),
    ];
    for (i, a) in addresses.iter().enumerate() {
        accepted(&app, &secret, &lived_at(i as u32 + 1, a.clone())).await;
    }
    app.sync().await;
    // One collections call: nothing was sent that the org would refuse.
    assert_eq!(collection_calls(&emu), 1, "{:?}", emu.calls());
    let expect = [
        ("1", json!("US"), json!("WA"), json!("Washington")),
        ("2", json!("AU"), json!("WA"), json!("Western Australia")),
        ("3", json!("CY"), Value::Null, Value::Null),
        ("4", Value::Null, Value::Null, Value::Null),
    ];
    for (id, country, code, state) in expect {
        let lead = lead_of(&app, &emu, id).await;
        let get = |k: &str| lead.get(k).cloned().unwrap_or(Value::Null);
        assert_eq!(get("CountryCode"), country, "{id}: {lead:?}");
        assert_eq!(get("StateCode"), code, "{id}: {lead:?}");
        assert_eq!(get("State"), state, "{id}: {lead:?}");
    }
    let cy = app.client_state("acme", "3").await;
    assert!(
        warned(
            &cy,
            "State \"Nicosia\" is not one of this org's states of CY"
        ),
        "{cy}"
    );
    let ru = app.client_state("acme", "4").await;
    assert!(
        warned(&ru, "CountryCode RU is not an active country"),
        "{ru}"
    );

    // A move to another country takes the old state away with it.
    accepted(
        &app,
        &secret,
        &lived_at(
            1,
            json!({"country": "Canada", "countryCode": "CA", "state": "Ontario"}),
        ),
    )
    .await;
    app.sync().await;
    let lead = lead_of(&app, &emu, "1").await;
    assert_eq!(lead["CountryCode"], "CA");
    assert_eq!(lead["StateCode"], "ON");
    assert_eq!(lead["State"], "Ontario");
    accepted(
        &app,
        &secret,
        &lived_at(
            1,
            json!({"country": "Cyprus", "countryCode": "CY", "state": "Limassol"}),
        ),
    )
    .await;
    app.sync().await;
    let lead = lead_of(&app, &emu, "1").await;
    assert_eq!(lead["CountryCode"], "CY");
    assert_eq!(lead["StateCode"], Value::Null, "{lead:?}");
}

#[tokio::test]
async fn a_country_the_org_refuses_is_remembered_while_describe_is_cached() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.allow_insecure_salesforce = true;
        s.salesforce.describe_ttl = std::time::Duration::from_secs(2);
    })
    .await;
    let emu = Emulator::start(org_with_picklists(&[])).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let cyprus = json!({"country": "Cyprus", "countryCode": "CY"});
    accepted(&app, &secret, &lived_at(1, cyprus.clone())).await;
    app.sync().await;
    assert_eq!(lead_of(&app, &emu, "1").await["CountryCode"], "CY");
    // The admin deactivates Cyprus; the cached describe still lists it.
    emu.set_inactive_countries(&["CY"]);
    accepted(&app, &secret, &lived_at(2, cyprus.clone())).await;
    app.sync().await;
    let s = app.client_state("acme", "2").await;
    assert_eq!(s["state"], "synced", "{s}");
    assert!(warned(&s, "CountryCode refused by the org"), "{s}");
    assert!(emu
        .lead(s["leadId"].as_str().unwrap())
        .unwrap()
        .get("CountryCode")
        .is_none_or(Value::is_null));
    // The next clients of Cyprus cost one call, not one per refusal.
    let before = emu.writes();
    accepted(&app, &secret, &lived_at(3, cyprus.clone())).await;
    accepted(&app, &secret, &lived_at(4, cyprus.clone())).await;
    app.sync().await;
    assert_eq!(emu.writes(), before + 1, "{:?}", emu.calls());
    let s = app.client_state("acme", "3").await;
    assert_eq!(s["state"], "synced", "{s}");
    assert!(warned(&s, "CountryCode CY is not an active country"), "{s}");
    // With describe's lifetime the refusal goes: Cyprus, active again, is sent.
    emu.set_inactive_countries(&[]);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    accepted(&app, &secret, &lived_at(5, cyprus.clone())).await;
    app.sync().await;
    assert_eq!(lead_of(&app, &emu, "5").await["CountryCode"], "CY");
}
