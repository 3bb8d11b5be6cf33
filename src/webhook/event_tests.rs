//! The webhook body: parsed and checked alike, refused with reasons.

use super::*;

fn client(body: &str) -> ClientEvent {
    match parse(body.as_bytes()).unwrap() {
        Parsed::Client(c) => *c,
        other => panic!("expected a client event, got {other:?}"),
    }
}

#[test]
fn the_contract_example_parses() {
    let ev = client(include_str!("../../tests/fixtures/contract_example.json"));
    assert_eq!(ev.client_id.as_str(), "10234");
    assert_eq!(ev.event_type, "client.created");
    assert_eq!(ev.data.email, Field::Value("jane@example.com".into()));
    let info = ev.data.info.value().unwrap();
    assert_eq!(info.middle_name, Field::Value("Q".into()));
    assert_eq!(ev.data.phones.value().unwrap().len(), 2);
    assert_eq!(
        ev.data.addresses.value().unwrap()[0]
            .country_code
            .as_deref(),
        Some("CY")
    );
    assert_eq!(
        ev.data.verification_level.value().unwrap().name.as_deref(),
        Some("Full")
    );
}

#[test]
fn absent_and_null_fields_are_told_apart() {
    let ev = client(
        r#"{"type":"client.updated","data":{"clientId":1,"email":null,"info":{"lastName":null}}}"#,
    );
    assert_eq!(ev.data.email, Field::Null);
    assert_eq!(ev.data.phones, Field::Absent);
    let info = ev.data.info.value().unwrap();
    assert_eq!(info.last_name, Field::Null);
    assert_eq!(info.first_name, Field::Absent);
}

#[test]
fn numeric_and_string_client_ids_with_equal_text_are_the_same_client() {
    let a = client(r#"{"type":"client.updated","data":{"clientId":10234}}"#);
    let b = client(r#"{"type":"client.updated","data":{"clientId":"10234"}}"#);
    assert_eq!(a.client_id, b.client_id);
}

#[test]
fn bad_bodies_are_refused_with_a_reason() {
    for (body, reason) in [
        ("{not json", "not valid JSON"),
        ("[1,2]", "JSON object"),
        ("\"client.created\"", "JSON object"),
        (
            r#"{"type":"client.created","type":"client.updated","data":{"clientId":1}}"#,
            "each member once",
        ),
        (r#"{"data":{"clientId":1}}"#, "`type` is required"),
        (r#"{"type":"client.created"}"#, "`data` is required"),
        (
            r#"{"type":"client.created","data":{}}"#,
            "clientId` is required",
        ),
        (
            r#"{"type":"client.created","data":{"clientId":""}}"#,
            "must not be empty",
        ),
        (
            r#"{"type":"client.created","data":{"clientId":1.5}}"#,
            "integer or a string",
        ),
        (
            r#"{"type":"client.created","data":{"clientId":true}}"#,
            "integer or a string",
        ),
        (
            r#"{"type":"client.created","occurredAt":"yesterday","data":{"clientId":1}}"#,
            "RFC 3339",
        ),
        (
            r#"{"type":"client.created","data":{"clientId":1,"phones":"+357"}}"#,
            "wrong type",
        ),
    ] {
        let err = parse(body.as_bytes()).unwrap_err();
        assert!(err.contains(reason), "{body}: {err}");
    }
}

#[test]
fn type_errors_name_the_problem_but_not_the_value() {
    let body = r#"{"type":"client.created","data":{"clientId":1,"phones":"+35799111222","info":{"firstName":["Jane \"J\""]}}}"#;
    let err = parse(body.as_bytes()).unwrap_err();
    assert!(
        err.contains("wrong type") && err.contains("expected"),
        "{err}"
    );
    assert!(!err.contains("35799111222"), "{err}");
    assert_eq!(
        without_values(r#"invalid type: string "a \"b\" c", expected `x`"#),
        r#"invalid type: string "…", expected `…`"#
    );
}

#[test]
fn other_event_types_are_ignored_without_needing_a_client_id() {
    assert_eq!(
        parse(br#"{"type":"client.deleted"}"#).unwrap(),
        Parsed::Ignored {
            event_type: "client.deleted".into()
        }
    );
}

#[test]
fn numeric_country_codes_and_postcodes_are_read_as_text() {
    let ev = client(
        r#"{"type":"client.created","data":{"clientId":"x","addresses":[{"countryCode":196,"postcode":3035}]}}"#,
    );
    let a = &ev.data.addresses.value().unwrap()[0];
    assert_eq!(a.country_code.as_deref(), Some("196"));
    assert_eq!(a.postcode.as_deref(), Some("3035"));
}

#[test]
fn reading_the_text_directly_gives_what_the_json_tree_gives() {
    // `parse` reads the body into its types in one pass; backfill lines
    // go through `client_data` on a JSON tree. Both must agree.
    for body in [
        include_str!("../../tests/fixtures/contract_example.json"),
        r#"{"type":"client.updated","data":{"clientId":1,"email":null,"info":{"lastName":null},"phones":[]}}"#,
        r#"{"type":"client.created","data":{"clientId":"x","addresses":[{"countryCode":196,"postcode":3035}],"status":{"id":1}}}"#,
        r#"{"type":"client.created","extra":{"a":[1,2]},"data":{"clientId":7,"nickname":"J","info":{"title":"Dr"},"type":null}}"#,
    ] {
        let tree: Value = serde_json::from_str(body).unwrap();
        let Value::Object(data) = tree["data"].clone() else {
            panic!("{body}")
        };
        let (id, data) = client_data(data).unwrap();
        let ev = client(body);
        assert_eq!((ev.client_id, ev.data), (id, data), "{body}");
    }
}

/// `check` against `parse` on one body: the same verdict, the same
/// reason, and the same type, client and time.
fn assert_check_agrees(body: &str) {
    let agreed = match (check(body.as_bytes()), parse(body.as_bytes())) {
        (Ok(Checked::Client(head)), Ok(Parsed::Client(ev))) => {
            head == Head {
                event_type: ev.event_type,
                client_id: ev.client_id,
                occurred_at: ev.occurred_at,
            }
        }
        (Ok(Checked::Ignored { event_type: a }), Ok(Parsed::Ignored { event_type: b })) => a == b,
        (Err(a), Err(b)) => a == b,
        _ => false,
    };
    assert!(
        agreed,
        "{body}: check {:?}, parse {:?}",
        check(body.as_bytes()),
        parse(body.as_bytes())
    );
}

#[test]
fn checking_a_body_accepts_and_refuses_what_parsing_it_does() {
    let wrap = |data: &str| format!(r#"{{"type":"client.updated","data":{data}}}"#);
    let mut bodies: Vec<String> = [
        include_str!("../../tests/fixtures/contract_example.json"),
        r#"{"type":"client.deleted"}"#,
        r#"{"type":"client.created","occurredAt":"2026-11-28T10:00:00+02:00","data":{"clientId":"x"}}"#,
        r#"{"type":"client.created","occurredAt":null,"data":{"clientId":"x"}}"#,
        r#"{"type":"client.created","occurredAt":5,"data":{"clientId":"x"}}"#,
        r#"{"type":"client.created","type":"client.updated","data":{"clientId":1}}"#,
        "{not json",
        "[1,2]",
        r#"{"type":"client.created","data":[]}"#,
    ]
    .map(String::from)
    .to_vec();
    for data in [
        r#"{}"#,
        r#"{"clientId":null}"#,
        r#"{"clientId":1.5}"#,
        r#"{"clientId":" "}"#,
        r#"{"clientId":".."}"#,
        r#"{"clientId":"a\u0000b"}"#,
        r#"{"clientId":"\u00e9t\u00e9 \"q\""}"#,
        r#"{"clientId":18446744073709551615}"#,
        r#"{"clientId":-3,"email":null,"info":null,"phones":null,"addresses":null,"status":null,"type":null,"verificationLevel":null}"#,
        r#"{"clientId":1,"email":5}"#,
        r#"{"clientId":1,"email":"a@b.c","email":"d@e.f"}"#,
        r#"{"clientId":1,"info":[]}"#,
        r#"{"clientId":1,"info":{"firstName":1}}"#,
        r#"{"clientId":1,"info":{"lastName":"a","lastName":"b"}}"#,
        r#"{"clientId":1,"info":{"title":["x"],"middleName":null}}"#,
        r#"{"clientId":1,"phones":"+357"}"#,
        r#"{"clientId":1,"phones":[null]}"#,
        r#"{"clientId":1,"phones":[{"number":true}]}"#,
        r#"{"clientId":1,"phones":[{"number":["+357 \"1\""]}]}"#,
        r#"{"clientId":1,"phones":[{"number":{"a":1}}]}"#,
        r#"{"clientId":1,"phones":[{"number":357.5,"confirmed":"yes"}]}"#,
        r#"{"clientId":1,"phones":[{"number":"1","updateTime":"yesterday"}]}"#,
        r#"{"clientId":1,"phones":[{"number":"1","updateTime":20261101}]}"#,
        r#"{"clientId":1,"phones":[{"updateTime":"2026-11-01 09:00:00Z"}]}"#,
        r#"{"clientId":1,"addresses":{}}"#,
        r#"{"clientId":1,"addresses":[{"countryCode":false}]}"#,
        r#"{"clientId":1,"addresses":[{"countryCode":196,"postcode":-1e3,"type":null}]}"#,
        r#"{"clientId":1,"addresses":[{"city":["Limassol"]}]}"#,
        r#"{"clientId":1,"addresses":[{"updateTime":"2026-13-01T09:00:00Z"}]}"#,
        r#"{"clientId":1,"status":"Active"}"#,
        r#"{"clientId":1,"status":{"id":{"deep":[1,{"x":null}]},"name":"A"}}"#,
        r#"{"clientId":1,"type":{"name":2}}"#,
        r#"{"clientId":1,"verificationLevel":{"name":"Full","name":"Basic"}}"#,
        r#"{"clientId":true,"phones":"x"}"#,
        r#"{"clientId":1,"phones":[{"number":"1"}],"phones":[]}"#,
        r#"{"clientId":1,"email":"a\ud800"}"#,
    ] {
        bodies.push(wrap(data));
    }
    for body in [
        r#"{"data":{"clientId":1},"type":"client.created"}"#,
        r#"{"data":{"clientId":1,"phones":1},"type":"deposit.created"}"#,
        r#"{"data":{"clientId":null},"type":"deposit.created"}"#,
        r#"{"data":{"clientId":1},"occurredAt":"bad","type":"deposit.created"}"#,
        r#"{"data":{"clientId":1},"occurredAt":"bad","type":"client.created"}"#,
        // A member twice (one escaped).
        r#"{"type":"client.created","typ\u0065":"client.updated","data":{"clientId":1}}"#,
        r#"{"type":"client.created","data":{"clientId":1},"data":{"clientId":2}}"#,
        r#"{"type":"client.created","occurredAt":null,"occurredAt":null,"data":{"clientId":1}}"#,
        r#"{"type":"client.created","data":{"clientId":1}} x"#,
        r#"{"type":"client.created","data":{"clientId":1}}  "#,
        r#"{"type":"client.created","data":null}"#,
        r#"{"type":"client.created","data":[1]}"#,
        r#"{"type":"client.created","occurredAt":"2026-11-28T10:00:00Z","data":{"clientId":1},"occurredAt":"x"}"#,
        // An ignored type: its data and time are not read.
        r#"{"type":"deposit.created","occurredAt":"bad","data":[{"x":1}]}"#,
        r#"{"type":"deposit.created","data":1,"data":2}"#,
        r#"{"type":"","data":{"clientId":1}}"#,
        r#"{"type":null,"data":{"clientId":1}}"#,
    ] {
        bodies.push(body.to_string());
    }
    // `data` as deep as the parser allows when read alone, one level
    // deeper than when read inside the body.
    for depth in [125, 126, 127, 128] {
        let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        bodies.push(wrap(&format!(
            r#"{{"clientId":1,"status":{{"id":{nested}}}}}"#
        )));
    }
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    bodies.push(wrap(&format!(
        r#"{{"clientId":1,"status":{{"id":{deep}}}}}"#
    )));
    bodies.push(wrap(&format!(
        r#"{{"clientId":1,"phones":[{{"number":{deep}}}]}}"#
    )));
    for body in &bodies {
        assert_check_agrees(body);
    }
}

#[test]
fn a_body_with_its_type_before_its_data_is_checked_in_one_pass() {
    let example = include_str!("../../tests/fixtures/contract_example.json");
    let one_pass = check_in_one_pass(example);
    assert!(
        matches!(&one_pass, Some(Checked::Client(h)) if h.client_id.as_str() == "10234"),
        "{one_pass:?}"
    );
    let data_first = r#"{"data":{"clientId":1},"type":"client.created"}"#;
    assert!(check_in_one_pass(data_first).is_some());
    let twice = r#"{"type":"client.created","data":{"clientId":1},"data":{"clientId":2}}"#;
    assert!(check_in_one_pass(twice).is_none());
}

#[test]
fn unknown_fields_are_ignored() {
    let ev = client(
        r#"{"type":"client.created","extra":1,"data":{"clientId":7,"nickname":"J","info":{"title":"Dr"}}}"#,
    );
    assert_eq!(ev.client_id.as_str(), "7");
}
