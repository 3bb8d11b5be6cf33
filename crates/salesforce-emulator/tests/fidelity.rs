//! The emulator itself, checked against Salesforce's documented formats
//! (token answers, save results, collections, errors, limits), so a lenient
//! double cannot hide what a real org would refuse.

use reqwest::StatusCode;
use serde_json::{json, Value};

use salesforce_emulator::{Emulator, OrgConfig};

async fn token(emu: &Emulator) -> String {
    let cfg = emu.org.lock().unwrap().cfg.clone();
    let res = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", emu.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    for field in [
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ] {
        assert!(body.get(field).is_some(), "{field}");
    }
    assert!(body.get("expires_in").is_none() && body.get("refresh_token").is_none());
    assert!(
        body["issued_at"].is_string(),
        "issued_at is epoch milliseconds as a string"
    );
    body["access_token"].as_str().unwrap().to_string()
}

fn rest(
    emu: &Emulator,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}/services/data/v62.0/{path}", emu.base))
        .bearer_auth(token)
}

#[tokio::test]
async fn single_record_calls_answer_201_204_and_errorcode_arrays() {
    let emu = Emulator::start(OrgConfig::default()).await;
    let t = token(&emu).await;
    let res = rest(&emu, reqwest::Method::POST, "sobjects/Lead/", &t)
        .json(&json!({"LastName": "D", "Company": "C"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers()["sforce-limit-info"]
        .to_str()
        .unwrap()
        .starts_with("api-usage="));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], true);
    let id = body["id"].as_str().unwrap().to_string();
    let res = rest(
        &emu,
        reqwest::Method::PATCH,
        &format!("sobjects/Lead/{id}"),
        &t,
    )
    .json(&json!({"City": "X"}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for (body, code) in [
        (json!({"LastName": "D"}), "REQUIRED_FIELD_MISSING"),
        (
            json!({"LastName": "D", "Company": "C", "MiddleName": "Q"}),
            "INVALID_FIELD",
        ),
        (
            json!({"LastName": "D", "Company": "C", "Email": "nope"}),
            "INVALID_EMAIL_ADDRESS",
        ),
        (
            json!({"LastName": "D", "Company": "C", "City": "x".repeat(41)}),
            "STRING_TOO_LONG",
        ),
        (
            json!({"LastName": "D", "Company": "C", "Id": "00Q"}),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
    ] {
        let res = rest(&emu, reqwest::Method::POST, "sobjects/Lead/", &t)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let errs: Value = res.json().await.unwrap();
        assert_eq!(errs[0]["errorCode"], code, "{body}");
        assert!(errs[0]["message"].is_string());
    }
    emu.expire_tokens();
    let res = rest(
        &emu,
        reqwest::Method::PATCH,
        &format!("sobjects/Lead/{id}"),
        &t,
    )
    .json(&json!({"City": "Y"}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()[0]["errorCode"],
        "INVALID_SESSION_ID"
    );
}

#[tokio::test]
async fn collections_answer_200_with_per_record_statuscode_errors() {
    let emu = Emulator::start(OrgConfig::default()).await;
    let t = token(&emu).await;
    let rec = |email: &str| json!({"attributes": {"type": "Lead"}, "LastName": "D", "Company": "C", "Email": email});
    let res = rest(&emu, reqwest::Method::POST, "composite/sobjects", &t)
        .json(&json!({"allOrNone": false, "records": [rec("a@x.io"), rec("bad"), rec("c@x.io")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let results: Value = res.json().await.unwrap();
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["success"], false);
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "INVALID_EMAIL_ADDRESS"
    );
    assert!(results[1]["errors"][0].get("errorCode").is_none());
    assert_eq!(results[2]["success"], true);
    assert_eq!(emu.leads().len(), 2);

    let res = rest(&emu, reqwest::Method::POST, "composite/sobjects", &t)
        .json(&json!({"allOrNone": true, "records": [rec("d@x.io"), rec("bad")]}))
        .send()
        .await
        .unwrap();
    let results: Value = res.json().await.unwrap();
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(emu.leads().len(), 2, "rolled back");

    let upsert = |v: &str| json!({"attributes": {"type": "Lead"}, "B2C_Client_Id__c": v, "LastName": "D", "Company": "C"});
    let res = rest(
        &emu,
        reqwest::Method::PATCH,
        "composite/sobjects/Lead/B2C_Client_Id__c",
        &t,
    )
    .json(&json!({"allOrNone": false, "records": [upsert("1"), upsert("1")]}))
    .send()
    .await
    .unwrap();
    let results: Value = res.json().await.unwrap();
    assert_eq!(results[0]["created"], true);
    assert_eq!(results[1]["created"], false);

    let many: Vec<Value> = (0..201).map(|i| rec(&format!("{i}@x.io"))).collect();
    let res = rest(&emu, reqwest::Method::POST, "composite/sobjects", &t)
        .json(&json!({"allOrNone": false, "records": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()[0]["errorCode"],
        "EXCEEDED_ID_LIMIT"
    );
}

#[tokio::test]
async fn token_errors_use_the_documented_oauth_codes() {
    let emu = Emulator::start(OrgConfig::default()).await;
    let cfg = emu.org.lock().unwrap().cfg.clone();
    let client = reqwest::Client::new();
    let url = format!("{}/services/oauth2/token", emu.base);
    for (form, error) in [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nope"),
                ("client_secret", "x"),
            ],
            "invalid_client_id",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", cfg.client_id.as_str()),
                ("client_secret", "x"),
            ],
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", cfg.client_id.as_str()),
                ("client_secret", cfg.client_secret.as_str()),
            ],
            "unsupported_grant_type",
        ),
    ] {
        let res = client.post(&url).form(&form).send().await.unwrap();
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], error);
        assert!(body["error_description"].is_string());
    }
}

#[tokio::test]
async fn describe_gives_every_field_a_label_and_says_which_are_custom() {
    let emu = Emulator::start(OrgConfig::default()).await;
    let t = token(&emu).await;
    let res = rest(&emu, reqwest::Method::GET, "sobjects/Lead/describe", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let fields = body["fields"].as_array().unwrap();
    let of = |name: &str| fields.iter().find(|f| f["name"] == name).unwrap().clone();
    assert_eq!(of("LastName")["label"], "Last Name");
    assert_eq!(of("LastName")["custom"], false);
    assert_eq!(of("B2C_Status__c")["label"], "B2C Status");
    assert_eq!(of("B2C_Status__c")["custom"], true);
    assert!(fields
        .iter()
        .all(|f| f["label"].is_string() && f["custom"].is_boolean()));
}

#[tokio::test]
async fn a_validation_rule_fails_the_save_with_field_custom_validation_exception() {
    let emu = Emulator::start(OrgConfig {
        validation_rules: vec![salesforce_emulator::ValidationRule {
            field: "B2C_Verification_Level__c".into(),
            message: "Verification level is required".into(),
        }],
        ..OrgConfig::default()
    })
    .await;
    let t = token(&emu).await;
    let res = rest(&emu, reqwest::Method::POST, "sobjects/Lead/", &t)
        .json(&json!({"LastName": "D", "Company": "C"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"message": "Verification level is required",
            "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": []}])
    );
    // In a collection, the record fails alone with a `statusCode`.
    let res = rest(&emu, reqwest::Method::POST, "composite/sobjects", &t)
        .json(&json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C"},
            {"attributes": {"type": "Lead"}, "LastName": "B", "Company": "C",
             "B2C_Verification_Level__c": "Full"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body[0]["success"], false);
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    );
    assert_eq!(body[1]["success"], true);
    assert_eq!(emu.lead_count(), 1);
}

#[tokio::test]
async fn the_limit_header_has_the_documented_parts() {
    let emu = Emulator::start(OrgConfig {
        daily_max: 5000,
        app_quota: Some(250),
        ..OrgConfig::default()
    })
    .await;
    emu.set_api_calls(24);
    let t = token(&emu).await;
    let res = rest(&emu, reqwest::Method::GET, "sobjects/Lead/describe", &t)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["sforce-limit-info"],
        "api-usage=25/5000; per-app-api-usage=1/250(appName=leadbridge)"
    );
}

#[tokio::test]
async fn the_assignment_rule_runs_unless_the_request_says_sforce_auto_assign_false() {
    let emu = Emulator::start(OrgConfig {
        assignment_owner: Some("00Gxx0000000QueAAA".into()),
        ..OrgConfig::default()
    })
    .await;
    let t = token(&emu).await;
    let create = |assign: Option<&str>| {
        let mut req = rest(&emu, reqwest::Method::POST, "sobjects/Lead/", &t)
            .json(&json!({"LastName": "D", "Company": "C"}));
        if let Some(v) = assign {
            req = req.header("Sforce-Auto-Assign", v);
        }
        req.send()
    };
    let id_of = |v: Value| v["id"].as_str().unwrap().to_string();
    let by_default = id_of(create(None).await.unwrap().json().await.unwrap());
    let kept = id_of(create(Some("false")).await.unwrap().json().await.unwrap());
    assert_eq!(
        emu.lead(&by_default).unwrap()["OwnerId"],
        "00Gxx0000000QueAAA"
    );
    assert_eq!(
        emu.lead(&kept).unwrap()["OwnerId"],
        salesforce_emulator::RUN_AS_USER
    );
    // It runs on updates too, unless told not to.
    emu.set_owner(&by_default, "005xx00000RepAAA");
    let update = |assign: Option<&str>| {
        let mut req = rest(
            &emu,
            reqwest::Method::PATCH,
            &format!("sobjects/Lead/{by_default}"),
            &t,
        )
        .json(&json!({"City": "X"}));
        if let Some(v) = assign {
            req = req.header("Sforce-Auto-Assign", v);
        }
        req.send()
    };
    assert_eq!(update(Some("FALSE")).await.unwrap().status(), 204);
    assert_eq!(
        emu.lead(&by_default).unwrap()["OwnerId"],
        "005xx00000RepAAA"
    );
    assert_eq!(update(None).await.unwrap().status(), 204);
    assert_eq!(
        emu.lead(&by_default).unwrap()["OwnerId"],
        "00Gxx0000000QueAAA"
    );
    let res = create(Some("sometimes")).await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "MALFORMED_ID");
}

#[tokio::test]
async fn duplicate_rules_answer_duplicates_detected_with_the_matches() {
    use salesforce_emulator::DuplicateAction;
    for action in [DuplicateAction::Alert, DuplicateAction::Block] {
        let emu = Emulator::start(OrgConfig {
            duplicate_rule: Some(action),
            ..OrgConfig::default()
        })
        .await;
        let existing =
            emu.insert_lead(json!({"LastName": "Doe", "Company": "CSV", "Email": "Jane@X.io"}));
        let t = token(&emu).await;
        let save = |version: &str, allow: bool| {
            let mut req = reqwest::Client::new()
                .post(format!(
                    "{}/services/data/{version}/sobjects/Lead/",
                    emu.base
                ))
                .bearer_auth(&t)
                .json(&json!({"LastName": "Doe", "Company": "C", "Email": "jane@x.io"}));
            if allow {
                req = req.header("Sforce-Duplicate-Rule-Header", "allowSave=true");
            }
            req.send()
        };
        let res = save("v62.0", false).await.unwrap();
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        let e = &body[0];
        assert_eq!(e["errorCode"], "DUPLICATES_DETECTED");
        let d = &e["duplicateResult"];
        assert_eq!(d["allowSave"], action == DuplicateAction::Alert);
        assert_eq!(d["duplicateRule"], "Standard_Lead_Duplicate_Rule");
        assert_eq!(
            d["matchResults"][0]["matchRecords"][0]["record"]["Id"],
            existing.as_str()
        );
        // allowSave passes an alert rule, from v52.0 only; never a block rule.
        let passed = save("v62.0", true).await.unwrap().status() == 201;
        assert_eq!(passed, action == DuplicateAction::Alert, "{action:?}");
        assert_eq!(save("v51.0", true).await.unwrap().status(), 400);
        // In a collection the record fails alone, with a statusCode and no details.
        let res = rest(&emu, reqwest::Method::POST, "composite/sobjects", &t)
            .json(&json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C", "Email": "jane@x.io"},
                {"attributes": {"type": "Lead"}, "LastName": "B", "Company": "C", "Email": "b@x.io"},
            ]}))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body[0]["errors"][0]["statusCode"], "DUPLICATES_DETECTED");
        assert!(body[0]["errors"][0].get("duplicateResult").is_none());
        assert_eq!(body[1]["success"], true);
    }
}

#[tokio::test]
async fn query_all_shows_deleted_and_merged_leads_and_refuses_other_soql() {
    let emu = Emulator::start(OrgConfig::default()).await;
    let master = emu.insert_lead(json!({"LastName": "M", "Company": "C"}));
    let victim = emu.insert_lead(json!({"LastName": "V", "Company": "C"}));
    let gone = emu.insert_lead(json!({"LastName": "G", "Company": "C"}));
    emu.merge_leads(&master, &victim);
    emu.delete_lead(&gone);
    let t = token(&emu).await;
    let query = |soql: String| {
        rest(&emu, reqwest::Method::GET, "queryAll/", &t)
            .query(&[("q", soql)])
            .send()
    };
    let soql =
        |id: &str| format!("SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE Id = '{id}'");
    let body: Value = query(soql(&victim)).await.unwrap().json().await.unwrap();
    assert_eq!(body["totalSize"], 1);
    assert_eq!(body["records"][0]["IsDeleted"], true);
    assert_eq!(body["records"][0]["MasterRecordId"], master.as_str());
    let body: Value = query(soql(&gone)).await.unwrap().json().await.unwrap();
    assert_eq!(body["records"][0]["MasterRecordId"], Value::Null);
    let body: Value = query(soql(&master)).await.unwrap().json().await.unwrap();
    assert_eq!(body["records"][0]["IsDeleted"], false);
    emu.empty_recycle_bin();
    let body: Value = query(soql(&gone)).await.unwrap().json().await.unwrap();
    assert_eq!(body["totalSize"], 0);
    let res = query("SELECT Id FROM Lead".into()).await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
}

#[tokio::test]
async fn a_lost_answer_still_commits_the_write() {
    use salesforce_emulator::Fault;
    let emu = Emulator::start(OrgConfig::default()).await;
    let t = token(&emu).await;
    emu.fail_next(Fault::AnswerLost, 1);
    let started = std::time::Instant::now();
    let res = reqwest::Client::new()
        .post(format!("{}/services/data/v62.0/sobjects/Lead/", emu.base))
        .bearer_auth(&t)
        .timeout(std::time::Duration::from_millis(500))
        .json(&json!({"LastName": "D", "Company": "C"}))
        .send()
        .await;
    assert!(res.is_err_and(|e| e.is_timeout()));
    assert!(started.elapsed() < salesforce_emulator::ANSWER_LOST_AFTER);
    // The caller saw nothing, but the Lead exists.
    assert_eq!(emu.lead_count(), 1);
}

#[tokio::test]
async fn state_and_country_picklists_follow_the_documented_syncing_logic() {
    use base64::Engine;
    let emu = Emulator::start(OrgConfig {
        country_picklists: true,
        inactive_countries: vec!["RU".into()],
        ..OrgConfig::default()
    })
    .await;
    let t = token(&emu).await;
    let describe: Value = rest(&emu, reqwest::Method::GET, "sobjects/Lead/describe", &t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let field = |name: &str| {
        describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    let countries: Vec<String> = field("CountryCode")["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap().to_string())
        .collect();
    assert!(countries.contains(&"CY".to_string()));
    assert!(
        !countries.contains(&"RU".to_string()),
        "inactive: not listed"
    );
    let state = field("StateCode");
    assert_eq!(state["controllerName"], "CountryCode");
    assert_eq!(state["dependentPicklist"], true);
    // WA is two states: Washington (US) and Western Australia (AU).
    let valid_for = |label: &str| -> Vec<String> {
        let entry = state["picklistValues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["label"] == label)
            .unwrap()
            .clone();
        let bits = base64::engine::general_purpose::STANDARD
            .decode(entry["validFor"].as_str().unwrap())
            .unwrap();
        (0..countries.len())
            .filter(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
            .map(|i| countries[i].clone())
            .collect()
    };
    assert_eq!(valid_for("Washington"), ["US"]);
    assert_eq!(valid_for("Western Australia"), ["AU"]);

    let post = |body: Value| {
        rest(&emu, reqwest::Method::POST, "sobjects/Lead/", &t)
            .json(&body)
            .send()
    };
    let refused = |res: reqwest::Response, field: &'static str| async move {
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body[0]["errorCode"], "FIELD_INTEGRITY_EXCEPTION", "{body}");
        assert_eq!(body[0]["fields"], json!([field]), "{body}");
    };
    let lead = json!({"LastName": "D", "Company": "C"});
    let with = |extra: Value| {
        let mut b = lead.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    // A code sets its text; a text alone sets its code.
    let res = post(with(json!({"CountryCode": "AU", "StateCode": "WA"})))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id: Value = res.json().await.unwrap();
    let rec = emu.lead(id["id"].as_str().unwrap()).unwrap();
    assert_eq!(rec["Country"], "Australia");
    assert_eq!(rec["State"], "Western Australia");
    let res = post(with(json!({"Country": "Cyprus"}))).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let cy: Value = res.json().await.unwrap();
    assert_eq!(
        emu.lead(cy["id"].as_str().unwrap()).unwrap()["CountryCode"],
        "CY"
    );
    // What the org does not have is refused, naming the field.
    refused(
        post(with(json!({"CountryCode": "RU"}))).await.unwrap(),
        "CountryCode",
    )
    .await;
    refused(
        post(with(json!({"Country": "Atlantis"}))).await.unwrap(),
        "Country",
    )
    .await;
    refused(
        post(with(json!({"CountryCode": "CY", "State": "Nicosia"})))
            .await
            .unwrap(),
        "State",
    )
    .await;
    refused(
        post(with(json!({"CountryCode": "AU", "StateCode": "CA"})))
            .await
            .unwrap(),
        "StateCode",
    )
    .await;
    // A new country under a state it does not have is refused.
    let res = rest(
        &emu,
        reqwest::Method::PATCH,
        &format!("sobjects/Lead/{}", id["id"].as_str().unwrap()),
        &t,
    )
    .json(&json!({"CountryCode": "CY"}))
    .send()
    .await
    .unwrap();
    refused(res, "StateCode").await;
}

#[tokio::test]
async fn query_finds_leads_by_creator_date_and_fields_and_refuses_other_soql() {
    let emu = Emulator::start(OrgConfig::default()).await;
    let t = token(&emu).await;
    let made = |body: Value| {
        let emu = &emu;
        let t = &t;
        async move {
            let res = rest(emu, reqwest::Method::POST, "sobjects/Lead/", t)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let a = made(json!({"LastName": "O'Brien", "Company": "C", "Email": "ob@x.io"})).await;
    let b = made(json!({"LastName": "o'brien", "Company": "C"})).await;
    let imported =
        emu.insert_lead(json!({"LastName": "O'Brien", "Company": "C", "Email": "ob@x.io"}));
    let gone = made(json!({"LastName": "O'Brien", "Company": "C", "Email": "ob@x.io"})).await;
    emu.delete_lead(&gone);
    let since = (chrono::Utc::now() - chrono::Duration::minutes(5)).format("%Y-%m-%dT%H:%M:%SZ");
    let ask = |soql: String| {
        let emu = &emu;
        let t = &t;
        async move {
            let url = format!(
                "query/?q={}",
                url::form_urlencoded::byte_serialize(soql.as_bytes()).collect::<String>()
            );
            rest(emu, reqwest::Method::GET, &url, t)
                .send()
                .await
                .unwrap()
        }
    };
    let ids = |res: reqwest::Response| async move {
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["done"], true);
        assert_eq!(body["totalSize"], body["records"].as_array().unwrap().len());
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["attributes"]["type"], "Lead");
                r["Id"].as_str().unwrap().to_string()
            })
            .collect::<Vec<_>>()
    };
    let user = salesforce_emulator::RUN_AS_USER;
    // Text compares without regard to case; the import (another user, a
    // month ago) and the deleted Lead are not found.
    let q = format!("SELECT Id FROM Lead WHERE CreatedById = '{user}' AND CreatedDate >= {since} AND LastName = 'O\\'BRIEN' AND Email = 'ob@x.io' ORDER BY CreatedDate");
    assert_eq!(ids(ask(q).await).await, std::slice::from_ref(&a));
    let q = format!("SELECT Id FROM Lead WHERE CreatedDate >= {since} AND LastName = 'O\\'Brien' AND Email = null");
    assert_eq!(ids(ask(q).await).await, [b]);
    let q = "SELECT Id FROM Lead WHERE LastName = 'O\\'Brien' AND Email = 'ob@x.io' ORDER BY CreatedDate"
        .to_string();
    assert_eq!(ids(ask(q).await).await, [imported, a], "oldest first");
    // What a real org would refuse is refused.
    for bad in [
        format!("SELECT Id FROM Lead WHERE CreatedDate >= '{since}'"),
        "SELECT Id FROM Lead WHERE LastName = O'Brien".to_string(),
        "SELECT Id, Name FROM Lead WHERE LastName = 'x'".to_string(),
        "SELECT Id FROM Lead WHERE LastName = 'x' AND".to_string(),
        "SELECT Id FROM Lead WHERE LastName = 'x".to_string(),
    ] {
        let res = ask(bad.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY", "{bad}");
    }
}

#[tokio::test]
async fn the_lead_listing_shows_what_the_org_holds_and_is_not_salesforce_api() {
    let emu = Emulator::start(OrgConfig::default()).await;
    let listing = || async {
        reqwest::get(format!("{}/emulator/leads", emu.base))
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    };
    assert!(listing().await.is_empty());
    let t = token(&emu).await;
    let res = rest(&emu, reqwest::Method::POST, "sobjects/Lead/", &t)
        .json(&json!({"LastName": "Doe", "Company": "Acme", "Email": "jane@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].clone();
    let leads = listing().await;
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["Id"], id);
    assert_eq!(leads[0]["Email"], "jane@example.com");
    // The listing is no way around the org's API: writes there are refused.
    let res = reqwest::Client::new()
        .post(format!("{}/emulator/leads", emu.base))
        .json(&json!({"LastName": "X"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert_eq!(emu.lead_count(), 1);
}
