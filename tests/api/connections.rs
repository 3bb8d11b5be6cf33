use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, client_event, spawn_app, spawn_app_with, Webhook};

fn complete() -> Value {
    json!({
        "name": "acme", "caption": "Acme EU", "provider": "salesforce",
        "domainUrl": "https://acme.my.salesforce.com", "consumerKey": "3MVG9-key",
        "consumerSecret": "consumer-secret-value-123", "company": "Acme Ltd",
        "enabled": true,
        "fieldMapping": {"status": "B2C_Status__c", "clientType": "B2C_Client_Type__c"},
        "externalIdField": "B2C_Client_Id__c"
    })
}

#[tokio::test]
async fn create_answers_201_with_the_webhook_secret_shown_only_then() {
    let app = spawn_app().await;
    let created = app.create_connection(complete()).await;
    let secret = created["webhookSecret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["webhookUrl"], "/v1/webhooks/acme");
    assert_eq!(created["consumerSecretSet"], true);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["apiVersion"], "v62.0");
    assert_eq!(created["fieldMapping"]["verificationLevel"], Value::Null);
    assert!(created.get("consumerSecret").is_none());

    for path in ["/v1/connections/acme", "/v1/connections"] {
        let text = app
            .admin(Method::GET, path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains(secret), "{path} shows the webhook secret");
        assert!(
            !text.contains("consumer-secret-value-123"),
            "{path} shows the consumer secret"
        );
        assert!(!text.contains("webhookSecret"), "{path}");
    }
}

#[tokio::test]
async fn list_and_get_show_the_connection() {
    let app = spawn_app().await;
    app.create_connection(json!({"name": "b"})).await;
    app.create_connection(json!({"name": "a", "caption": "First"}))
        .await;
    let list: Value = app
        .admin(Method::GET, "/v1/connections")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let a: Value = app
        .admin(Method::GET, "/v1/connections/a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["caption"], "First");
    assert_eq!(a["consumerSecretSet"], false);
    let res = app
        .admin(Method::GET, "/v1/connections/zzz")
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn a_second_connection_with_the_same_name_gives_409() {
    let app = spawn_app().await;
    app.create_connection(json!({"name": "acme"})).await;
    let res = app
        .admin(Method::POST, "/v1/connections")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "conflict").await;
}

#[tokio::test]
async fn invalid_fields_give_422_naming_each_one() {
    let app = spawn_app().await;
    let res = app
        .admin(Method::POST, "/v1/connections")
        .json(&json!({"name": "Bad Name", "provider": "hubspot", "domainUrl": "https://login.salesforce.com", "apiVersion": "v30.0", "colour": "red"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 422, "validation_failed").await;
    let mut fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["apiVersion", "colour", "domainUrl", "name", "provider"]
    );
    for f in ["apiVersion", "domainUrl", "name"] {
        assert!(body["detail"].as_str().unwrap().contains(f));
    }
    let res = app
        .admin(Method::POST, "/v1/connections")
        .json(&json!({"caption": "x"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "name");
}

#[tokio::test]
async fn enabling_without_the_four_required_fields_gives_422_naming_each() {
    let app = spawn_app().await;
    app.create_connection(json!({"name": "acme", "company": "Acme"}))
        .await;
    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"enabled": true}))
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
    assert_eq!(fields, ["domainUrl", "consumerKey", "consumerSecret"]);
    let still: Value = app
        .admin(Method::GET, "/v1/connections/acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["enabled"], false);
}

#[tokio::test]
async fn patch_is_a_json_merge_patch() {
    let app = spawn_app().await;
    app.create_connection(complete()).await;
    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .header("content-type", "application/merge-patch+json")
        .body(json!({"caption": null, "fieldMapping": {"status": null, "verificationLevel": "B2C_VL__c"}, "enabled": false}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["caption"], Value::Null);
    assert_eq!(c["company"], "Acme Ltd");
    assert_eq!(c["consumerSecretSet"], true);
    assert_eq!(
        c["fieldMapping"],
        json!({"status": null, "clientType": "B2C_Client_Type__c", "verificationLevel": "B2C_VL__c"})
    );
    assert_eq!(c["enabled"], false);
    let res = app
        .admin(Method::PATCH, "/v1/connections/acme")
        .json(&json!({"consumerSecret": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["consumerSecretSet"],
        false
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_gives_400() {
    let app = spawn_app().await;
    let res = app
        .admin(Method::POST, "/v1/connections")
        .body("name=acme")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_payload").await;
}

#[tokio::test]
async fn delete_removes_the_connection_and_its_events() {
    let app = spawn_app().await;
    let secret = app.connection("acme").await;
    let id = app.connection_id("acme").await;
    app.post_webhook(
        "acme",
        &Webhook::standard(&secret, "m", app.now(), &client_event(1)),
    )
    .await;
    let res = app
        .admin(Method::DELETE, "/v1/connections/acme")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(app.store.pending_events(&id).await.unwrap().is_empty());
    let res = app
        .admin(Method::DELETE, "/v1/connections/acme")
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
    let res = app
        .post_webhook(
            "acme",
            &Webhook::standard(&secret, "m2", app.now(), &client_event(1)),
        )
        .await;
    assert_problem(res, 404, "unknown_connection").await;
}

#[tokio::test]
async fn every_admin_call_needs_the_bearer_token() {
    let app = spawn_app().await;
    app.connection("acme").await;
    let calls = [
        (Method::GET, "/v1/connections"),
        (Method::POST, "/v1/connections"),
        (Method::GET, "/v1/connections/acme"),
        (Method::PATCH, "/v1/connections/acme"),
        (Method::DELETE, "/v1/connections/acme"),
        (Method::POST, "/v1/connections/acme/webhook-secret/rotate"),
    ];
    let wrong = format!("{}x", app.admin_token);
    let shorter = app.admin_token[..app.admin_token.len() - 1].to_string();
    for (method, path) in calls {
        for auth in [
            None,
            Some(format!("Bearer {wrong}")),
            Some(format!("Bearer {shorter}")),
            Some(format!("Basic {}", app.admin_token)),
            Some(app.admin_token.clone()),
        ] {
            let mut req = app
                .client
                .request(method.clone(), app.url(path))
                .json(&json!({"name": "x"}));
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.headers()["www-authenticate"], "Bearer");
            assert_problem(res, 401, "unauthorized").await;
        }
    }
    // Nothing was changed by the refused calls.
    let res = app
        .admin(Method::GET, "/v1/connections/acme")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_database_dump_reveals_no_secret() {
    let app = spawn_app().await;
    let created = app.create_connection(complete()).await;
    let webhook_secret = created["webhookSecret"].as_str().unwrap().to_string();
    let rotated: Value = app
        .admin(Method::POST, "/v1/connections/acme/webhook-secret/rotate")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated = rotated["webhookSecret"].as_str().unwrap().to_string();
    let mut dump = Vec::new();
    if app.db.is_postgres() {
        let out = std::process::Command::new("pg_dump")
            .arg(&app.db.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dump = out.stdout;
    } else {
        for entry in std::fs::read_dir(app.db.dir()).unwrap() {
            dump.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    assert!(dump.len() > 2_000, "the database was not found");
    let dump = String::from_utf8_lossy(&dump);
    assert!(
        dump.contains("3MVG9-key"),
        "sanity: the dump holds the plain fields"
    );
    for secret in [
        webhook_secret.as_str(),
        rotated.as_str(),
        "consumer-secret-value-123",
        &webhook_secret[6..],
        &rotated[6..],
    ] {
        assert!(
            !dump.contains(secret),
            "the database holds a secret in the clear"
        );
    }
}

#[tokio::test]
async fn domain_url_may_be_an_emulator_only_when_insecure_is_allowed() {
    let strict = spawn_app().await;
    let res = strict
        .admin(Method::POST, "/v1/connections")
        .json(&json!({"name": "e", "domainUrl": "http://127.0.0.1:9"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "validation_failed").await;
    let lax = spawn_app_with(|s| s.allow_insecure_salesforce = true).await;
    let c = lax
        .create_connection(json!({"name": "e", "domainUrl": "http://127.0.0.1:9/"}))
        .await;
    assert_eq!(c["domainUrl"], "http://127.0.0.1:9");
}

#[tokio::test]
async fn unsupported_methods_and_unknown_paths_get_problem_answers() {
    let app = spawn_app().await;
    let res = app
        .admin(Method::PUT, "/v1/connections")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET, POST");
    assert_problem(res, 405, "method_not_allowed").await;
    let res = app.client.get(app.url("/v2/nothing")).send().await.unwrap();
    assert_problem(res, 404, "not_found").await;
}
