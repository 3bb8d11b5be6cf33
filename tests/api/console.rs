//! What the operator's console stands on: its embedded page with strict
//! headers, the list of the org's writable Lead fields, and client counts per
//! connection. The page itself is driven in Chromium by `tests/console`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::emulator::{OrgConfig, ValidationRule};
use crate::helpers::{assert_problem, spawn_app, spawn_with_org};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

#[tokio::test]
async fn the_console_and_its_assets_are_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for (path, media) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/api.js", "text/javascript; charset=utf-8"),
        ("/console/dom.js", "text/javascript; charset=utf-8"),
        ("/console/settings.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert_eq!(h["content-type"], media, "{path}");
        assert_eq!(h["content-security-policy"], CSP, "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let body = res.text().await.unwrap();
        // Nothing is fetched from elsewhere: the console works offline (the
        // script names Salesforce's URL only as a hint for the domain field).
        if !path.ends_with(".js") {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{path}"
            );
        }
        assert!(
            !body.contains("@import") && !body.contains("url("),
            "{path}"
        );
        assert!(
            !body.contains("fetch('http") && !body.contains("fetch(\"http"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_console_page_has_no_inline_script_and_builds_no_html_from_strings() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/console")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    assert_eq!(page.matches("<script").count(), 1, "one script, by src");
    assert!(!page.contains(" on"), "no inline event handlers: {page}");
    let mut scripts = String::new();
    for module in ["app", "api", "dom", "settings"] {
        let path = format!("/console/{module}.js");
        let script = app.client.get(app.url(&path)).send().await;
        let script = script.unwrap().text().await.unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!script.contains(sink), "{path} uses {sink}");
        }
        // Modules come from the console itself, never from elsewhere.
        for import in script.lines().filter(|l| l.starts_with("import ")) {
            assert!(import.contains(" from './"), "{path}: {import}");
        }
        scripts.push_str(&script);
    }
    // The token lives in the tab's session storage, never in a cookie.
    assert!(scripts.contains("sessionStorage") && !scripts.contains("document.cookie"));
}

#[tokio::test]
async fn the_console_adds_no_way_in_without_the_token() {
    let app = spawn_app().await;
    app.connection("acme").await;
    let page = app.client.get(app.url("/console")).send().await.unwrap();
    assert!(!page.text().await.unwrap().contains("acme"));
    let res = app.client.post(app.url("/console")).send().await.unwrap();
    assert_problem(res, 405, "method_not_allowed").await;
    let res = app
        .client
        .get(app.url("/console/admin"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
    let res = app
        .client
        .get(app.url("/v1/connections/acme/lead-fields"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn lead_fields_lists_the_writable_fields_of_the_org_with_labels() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    app.connect(&emu, "acme", json!({})).await;
    let get = || async {
        let res = app
            .admin(Method::GET, "/v1/connections/acme/lead-fields")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };
    let list = get().await;
    assert_eq!(list["error"], Value::Null);
    let fields = list["fields"].as_array().unwrap();
    let of = |name: &str| fields.iter().find(|f| f["name"] == name).cloned();
    assert_eq!(
        of("B2C_Status__c").unwrap(),
        json!({"name": "B2C_Status__c", "label": "B2C Status", "type": "string",
            "length": 50, "custom": true, "externalId": false})
    );
    assert_eq!(of("B2C_Client_Id__c").unwrap()["externalId"], true);
    assert_eq!(of("LastName").unwrap()["custom"], false);
    // Read-only fields are not offered.
    assert!(of("Id").is_none() && of("IsConverted").is_none());
    let labels: Vec<String> = fields
        .iter()
        .map(|f| f["label"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = labels.clone();
    sorted.sort();
    assert_eq!(labels, sorted, "by label");
    // Describe is cached: choosing fields again costs no API call.
    let describes = || {
        emu.calls()
            .iter()
            .filter(|(_, p)| p.ends_with("describe"))
            .count()
    };
    assert_eq!(describes(), 1);
    assert_eq!(get().await, list);
    assert_eq!(describes(), 1);
}

#[tokio::test]
async fn lead_fields_names_missing_credentials_and_reports_salesforces_error() {
    let (app, emu) = spawn_with_org(OrgConfig::default()).await;
    app.connection("bare").await;
    let res = app
        .admin(Method::GET, "/v1/connections/bare/lead-fields")
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 422, "validation_failed").await;
    let named: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["domainUrl", "consumerKey", "consumerSecret"]);

    app.connect(
        &emu,
        "wrong",
        json!({"consumerSecret": "not-the-secret", "enabled": false}),
    )
    .await;
    let res = app
        .admin(Method::GET, "/v1/connections/wrong/lead-fields")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["fields"], json!([]));
    assert_eq!(body["error"]["code"], "invalid_client");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid client credentials"));
    let res = app
        .admin(Method::GET, "/v1/connections/nobody/lead-fields")
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
}

/// An org whose validation rule needs the verification level on every Lead.
fn org_needing_verification_level() -> OrgConfig {
    OrgConfig {
        validation_rules: vec![ValidationRule {
            field: "B2C_Verification_Level__c".into(),
            message: "Verification level is required for B2CORE leads".into(),
        }],
        ..OrgConfig::default()
    }
}

fn client_with_level(id: u64) -> Value {
    json!({"type": "client.created", "data": {"clientId": id,
        "info": {"lastName": "Doe"}, "verificationLevel": {"id": 3, "name": "Full"}}})
}

#[tokio::test]
async fn connections_count_their_clients_by_state() {
    let (app, emu) = spawn_with_org(org_needing_verification_level()).await;
    let secret = app
        .connect(
            &emu,
            "acme",
            json!({"fieldMapping": {"status": "B2C_Status__c"}}),
        )
        .await;
    for id in [1, 2, 3] {
        let res = app
            .send_event("acme", &secret, &client_with_level(id))
            .await;
        assert_eq!(res.status(), 202);
    }
    app.sync().await;
    let list: Value = app
        .admin(Method::GET, "/v1/connections")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["connections"][0]["clients"],
        json!({"pending": 0, "synced": 0, "retrying": 0, "dead": 3, "held": 0,
            "converted": 0, "pendingEvents": 3})
    );
    let one: Value = app
        .admin(Method::GET, "/v1/connections/acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["clients"], list["connections"][0]["clients"]);
}

#[tokio::test]
async fn a_client_dead_on_a_validation_rule_syncs_after_the_mapping_is_fixed_and_it_is_retried() {
    let (app, emu) = spawn_with_org(org_needing_verification_level()).await;
    let secret = app.connect(&emu, "acme", json!({})).await;
    let res = app.send_event("acme", &secret, &client_with_level(7)).await;
    assert_eq!(res.status(), 202);
    app.sync().await;
    let dead = app.client_state("acme", "7").await;
    assert_eq!(dead["state"], "dead", "{dead}");
    assert_eq!(
        dead["lastError"],
        json!({"code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Verification level is required for B2CORE leads"})
    );
    assert_eq!(emu.lead_count(), 0);

    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"fieldMapping": {"verificationLevel": "B2C_Verification_Level__c"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .admin(Method::POST, "/v1/connections/acme/clients/7/retry")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    app.sync().await;
    let synced = app.client_state("acme", "7").await;
    assert_eq!(synced["state"], "synced", "{synced}");
    let lead = emu.lead(synced["leadId"].as_str().unwrap()).unwrap();
    assert_eq!(lead["B2C_Verification_Level__c"], "Full");
}

/// The `key: '…'` entries of `export const NAME = [ … ];` in the console's
/// settings module, or of the string list `export const NAME = ['…', …];`.
fn console_list(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("export const {name} = ["))
        .unwrap_or_else(|| panic!("settings.js has no list {name}"));
    let rest = &source[start..];
    let list = &rest[..rest.find("];").expect("the list ends")];
    let keyed: Vec<String> = list
        .split("key: '")
        .skip(1)
        .map(|s| s[..s.find('\'').unwrap()].to_string())
        .collect();
    if !keyed.is_empty() {
        return keyed;
    }
    list.split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_consoles_settings_list_is_the_servers_list_of_connection_fields() {
    use leadbridge::connections::{FIELDS, MAPPING_FIELDS};
    use std::collections::BTreeSet;

    let source = include_str!("../../console/settings.js");
    let mut console: Vec<String> = ["SETTINGS", "FLAGS", "OTHER_FIELDS", "NOT_ON_FORM"]
        .iter()
        .flat_map(|list| console_list(source, list))
        .collect();
    let shown = console.len();
    console.sort();
    console.dedup();
    assert_eq!(console.len(), shown, "a field is listed twice: {console:?}");
    let server: BTreeSet<String> = FIELDS.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        console.into_iter().collect::<BTreeSet<_>>(),
        server,
        "console/settings.js and connections::FIELDS name different fields"
    );
    let mapping: BTreeSet<String> = console_list(source, "MAPPING").into_iter().collect();
    let server_mapping: BTreeSet<String> = MAPPING_FIELDS.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        mapping, server_mapping,
        "the console's field mapping differs"
    );
}
