use serde_json::{json, Value};

use crate::helpers::spawn_app;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

/// Fails when `openapi/openapi.json` is stale. `UPDATE_OPENAPI=1 cargo test` rewrites it.
#[test]
fn the_checked_in_openapi_document_is_current() {
    let generated = leadbridge::http::openapi::document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_one() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.unwrap();
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(CHECKED_IN).unwrap()).unwrap();
    assert_eq!(served, checked_in);
    assert!(served["paths"]["/v1/webhooks/{connectionName}"]["post"].is_object());
    assert!(served["components"]["securitySchemes"]["adminToken"].is_object());
}

/// The property names of a component schema, following `allOf` and `$ref`.
fn properties(doc: &Value, name: &str) -> std::collections::BTreeSet<String> {
    let schema = &doc["components"]["schemas"][name];
    let mut out = std::collections::BTreeSet::new();
    let parts = schema["allOf"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![schema.clone()]);
    for part in parts {
        if let Some(r) = part["$ref"].as_str() {
            out.extend(properties(doc, r.rsplit('/').next().unwrap()));
        }
        if let Some(props) = part["properties"].as_object() {
            out.extend(props.keys().cloned());
        }
    }
    out
}

#[test]
fn the_connection_schemas_name_exactly_the_fields_the_parser_accepts() {
    use leadbridge::connections::{apply, FIELDS, MAPPING_FIELDS};
    use leadbridge::domain::{Connection, ConnectionId, ConnectionName};
    use leadbridge::salesforce::url::Rules;
    let doc: Value = serde_json::from_str(&leadbridge::http::openapi::document()).unwrap();
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
    assert_eq!(properties(&doc, "NewConnection"), set(&FIELDS));
    assert_eq!(properties(&doc, "FieldMapping"), set(&MAPPING_FIELDS));

    // Each of them is a field the parser knows (null where it may be cleared).
    use secrecy::ExposeSecret;
    let encoded = leadbridge::crypto::MasterKey::generate_encoded();
    let key = leadbridge::crypto::MasterKey::parse(encoded.expose_secret()).unwrap();
    let base = Connection::new(
        ConnectionId::generate(),
        ConnectionName::parse("acme").unwrap(),
        chrono::Utc::now(),
    );
    let unknown = "is not a field of a connection";
    for field in FIELDS {
        let value = match field {
            "name" => json!("acme"),
            "provider" => json!("salesforce"),
            _ => Value::Null,
        };
        let body = json!({ field: value });
        let errors = apply(&base, &body, true, Rules::default(), &key)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            errors.iter().all(|e| e.message != unknown),
            "{field}: {errors:?}"
        );
    }
    for field in MAPPING_FIELDS {
        let body = json!({"fieldMapping": { field: null }});
        assert!(
            apply(&base, &body, false, Rules::default(), &key).is_ok(),
            "fieldMapping.{field}"
        );
    }
    let bogus = apply(&base, &json!({"colour": 1}), true, Rules::default(), &key)
        .unwrap_err()
        .0;
    assert_eq!(bogus[0].message, unknown);
}

#[test]
fn every_operation_has_its_own_operation_id() {
    let doc: Value = serde_json::from_str(&leadbridge::http::openapi::document()).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            if let Some(other) = seen.insert(id.to_string(), format!("{method} {path}")) {
                panic!("operationId `{id}` names both {other} and {method} {path}");
            }
        }
    }
    assert!(seen.len() >= 20, "{seen:?}");
}
