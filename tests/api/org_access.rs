//! Reaching the org: OAuth errors in plain words, the connection test and
//! preview, credentials changes and the token cache, and the URL rules.

use reqwest::Method;
use serde_json::{json, Value};

use crate::emulator::{Emulator, OrgConfig};
use crate::helpers::spawn_with_org;
use crate::sync::{accepted, full_event, mapping, update};

#[tokio::test]
async fn oauth_errors_show_in_plain_words_on_the_client_and_the_test() {
    let (app, emu) = spawn_with_org(OrgConfig {
        run_as_user: false,
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
    let s = app.client_state("acme", "1").await;
    assert_eq!(s["state"], "retrying");
    assert_eq!(s["lastError"]["code"], "invalid_grant");
    assert!(
        s["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("run-as user"),
        "{s}"
    );

    let report: Value = app
        .admin(Method::POST, "/v1/connections/acme/test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["credentials"]["ok"], false);
    assert_eq!(report["credentials"]["error"], "invalid_grant");
    assert_eq!(
        report["credentials"]["errorDescription"],
        "no client credentials user enabled"
    );
    assert!(report["credentials"]["hint"]
        .as_str()
        .unwrap()
        .contains("run-as user"));

    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"consumerSecret": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = app
        .admin(Method::POST, "/v1/connections/acme/test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["credentials"]["error"], "invalid_client");
}

#[tokio::test]
async fn the_test_gets_a_fresh_token_and_reports_the_orgs_fields() {
    let (app, emu) = spawn_with_org(OrgConfig {
        country_picklists: true,
        ..OrgConfig::default()
    })
    .await;
    app.connect(
        &emu,
        "acme",
        json!({
            "fieldMapping": {"status": "B2C_Status__c", "clientType": "B2C_Typo__c"},
            "externalIdField": "B2C_Client_Id__c"
        }),
    )
    .await;
    for expected_tokens in [1, 2] {
        let res = app
            .admin(Method::POST, "/v1/connections/acme/test")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let report: Value = res.json().await.unwrap();
        assert_eq!(report["credentials"]["ok"], true);
        assert_eq!(report["describeOk"], true);
        assert_eq!(report["middleName"], false);
        assert_eq!(report["countryCode"], true);
        assert_eq!(
            report["fields"],
            json!([
                {"setting": "status", "field": "B2C_Status__c", "exists": true, "writable": true, "externalId": false},
                {"setting": "clientType", "field": "B2C_Typo__c", "exists": false, "writable": false, "externalId": false},
                {"setting": "externalIdField", "field": "B2C_Client_Id__c", "exists": true, "writable": true, "externalId": true},
            ])
        );
        assert_eq!(
            emu.token_requests(),
            expected_tokens,
            "never a cached token"
        );
    }
}

#[tokio::test]
async fn preview_shows_the_exact_bodies_and_sends_nothing() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    app.connect(&emu, "acme", mapping()).await;
    let res = app
        .admin(Method::POST, "/v1/connections/acme/preview")
        .json(&full_event())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["describeApplied"], true);
    assert_eq!(p["create"]["Company"], "Acme Ltd");
    assert_eq!(p["create"]["LastName"], "Doe");
    assert!(
        p["create"].get("MiddleName").is_none(),
        "this org has no middle names"
    );
    assert!(p["update"].get("Company").is_none());
    assert_eq!(p["update"]["B2C_Verification_Level__c"], "Full");
    assert!(p["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("MiddleName not sent"));
    assert_eq!(emu.writes(), 0);
    let res = app
        .admin(Method::POST, "/v1/connections/acme/preview")
        .json(&json!({"type": "deposit.created"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn changing_the_credentials_drops_the_cached_token_and_other_edits_do_not() {
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
    assert_eq!(emu.token_requests(), 1);
    let patch = |body: Value| {
        app.admin(Method::PATCH, "/v1/connections/acme")
            .json(&body)
            .send()
    };
    assert_eq!(patch(json!({"caption": "EU"})).await.unwrap().status(), 200);
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "b@x.io"})),
    )
    .await;
    app.sync().await;
    assert_eq!(emu.token_requests(), 1, "a caption change keeps the token");
    let cs = emu.org.lock().unwrap().cfg.client_secret.clone();
    assert_eq!(
        patch(json!({"consumerSecret": cs})).await.unwrap().status(),
        200
    );
    accepted(
        &app,
        "acme",
        &secret,
        &update(1, json!({"email": "c@x.io"})),
    )
    .await;
    app.sync().await;
    assert_eq!(emu.token_requests(), 2, "new credentials, new token");
    assert_eq!(emu.leads()[0]["Email"], "c@x.io");
}

#[tokio::test]
async fn a_token_endpoint_that_redirects_is_not_followed_with_the_secret() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let elsewhere = Emulator::start(OrgConfig::default()).await;
    app.connect(&emu, "acme", json!({})).await;
    emu.redirect_token_to(&format!("{}/services/oauth2/token", elsewhere.base));
    let res = app
        .admin(Method::POST, "/v1/connections/acme/test")
        .send()
        .await
        .unwrap();
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["credentials"]["ok"], false, "{report}");
    assert_eq!(elsewhere.token_requests(), 0, "the secret was re-posted");
}

#[tokio::test]
async fn an_instance_url_that_is_not_an_org_url_is_refused_before_any_data_call() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    let elsewhere = Emulator::start(OrgConfig::default()).await;
    app.connect(&emu, "acme", json!({})).await;
    emu.set_instance_url(&format!("{}/steal?x=1", elsewhere.base));
    let res = app
        .admin(Method::POST, "/v1/connections/acme/test")
        .send()
        .await
        .unwrap();
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["credentials"]["ok"], false, "{report}");
    assert_eq!(report["credentials"]["error"], "BAD_INSTANCE_URL");
    assert!(
        elsewhere.calls().is_empty(),
        "a data call left for the foreign host"
    );
}

#[tokio::test]
async fn without_the_insecure_setting_plain_http_is_never_called() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    app.connect(&emu, "acme", json!({})).await;
    let conn = app
        .store
        .get_connection(&leadbridge::domain::ConnectionName::parse("acme").unwrap())
        .await
        .unwrap()
        .unwrap();
    let key = leadbridge::crypto::MasterKey::parse(&app.master_key).unwrap();
    let creds = leadbridge::salesforce::Credentials::of(&conn, &key).unwrap();
    let strict = leadbridge::salesforce::Salesforce::new(Default::default());
    assert!(strict.fresh_token(&creds).await.is_err());
    assert_eq!(
        emu.token_requests(),
        0,
        "an http:// token endpoint was called"
    );
}
