//! The mapping rules, table by table, against the contract.

use super::*;
use crate::salesforce::describe::FieldInfo;
use crate::webhook::event;
use serde_json::json;

fn data(v: Value) -> ClientData {
    serde_json::from_value(v).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn pending(seq: i64, when: &str, v: Value) -> Pending {
    Pending {
        occurred_at: at(when),
        seq,
        changes: changes(&data(v)),
    }
}

fn mapping() -> FieldMapping {
    FieldMapping {
        status: Some("B2C_Status__c".into()),
        client_type: Some("B2C_Client_Type__c".into()),
        verification_level: None,
    }
}

fn field(len: usize, kind: &str) -> FieldInfo {
    FieldInfo {
        createable: true,
        updateable: true,
        length: len,
        kind: kind.into(),
    }
}

/// A standard org without middle names and without country picklists.
fn standard_org() -> LeadFields {
    [
        ("LastName", 80),
        ("FirstName", 40),
        ("Company", 255),
        ("Email", 80),
        ("Phone", 40),
        ("Street", 255),
        ("City", 40),
        ("State", 80),
        ("PostalCode", 20),
        ("Country", 80),
        ("B2C_Status__c", 255),
        ("B2C_Client_Type__c", 255),
    ]
    .into_iter()
    .map(|(n, l)| {
        (
            n.to_string(),
            field(l, if n == "Email" { "email" } else { "string" }),
        )
    })
    .collect()
}

fn render(form: Form, events: &[Pending], fields: Option<&LeadFields>) -> Lead {
    render_with(form, events, fields, None, &Refused::new())
}

/// `events` rendered for Acme Ltd with this test module's mapping.
fn render_with(
    form: Form,
    events: &[Pending],
    fields: Option<&LeadFields>,
    picklists: Option<&AddressPicklists>,
    refused: &Refused,
) -> Lead {
    let m = merge(&Known::default(), events);
    let map = mapping();
    let none = BTreeSet::new();
    lead(
        form,
        &m,
        &Target {
            company: Some("Acme Ltd"),
            mapping: &map,
            fields,
            exclude: &none,
            picklists,
            refused,
        },
    )
}

#[test]
fn the_contract_example_becomes_this_create_body() {
    let body: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/contract_example.json")).unwrap();
    let ev = match event::parse(body.to_string().as_bytes()).unwrap() {
        event::Parsed::Client(c) => c,
        _ => unreachable!(),
    };
    let p = Pending {
        occurred_at: ev.occurred_at.unwrap(),
        seq: 1,
        changes: changes(&ev.data),
    };
    let out = render(Form::Create, &[p], None);
    assert_eq!(
        Value::Object(out.body),
        json!({
            "LastName": "Doe", "FirstName": "Jane", "MiddleName": "Q", "Email": "jane@example.com",
            "Phone": "+35799123456", "Street": "1 Main St", "City": "Limassol", "State": "Limassol",
            "PostalCode": "3035", "Country": "Cyprus", "Company": "Acme Ltd",
            "B2C_Status__c": "Active", "B2C_Client_Type__c": "Individual"
        })
    );
}

#[test]
fn last_name_becomes_undefined_when_missing_blank_or_null() {
    for (info, form, expected) in [
        (json!({"firstName": "J"}), Form::Create, Some("Undefined")),
        (json!({"lastName": "  "}), Form::Create, Some("Undefined")),
        (json!({"lastName": null}), Form::Create, Some("Undefined")),
        (json!({"lastName": null}), Form::Update, Some("Undefined")),
        (json!({"lastName": ""}), Form::Update, Some("Undefined")),
        (json!({"firstName": "J"}), Form::Update, None),
        (json!({"lastName": "Doe"}), Form::Update, Some("Doe")),
    ] {
        let out = render(
            form,
            &[pending(1, "2026-01-01T00:00:00Z", json!({"info": info}))],
            None,
        );
        assert_eq!(
            out.body.get("LastName").and_then(Value::as_str),
            expected,
            "{info} {form:?}"
        );
    }
    let out = render(
        Form::Create,
        &[pending(
            1,
            "2026-01-01T00:00:00Z",
            json!({"email": "a@b.c"}),
        )],
        None,
    );
    assert_eq!(out.body["LastName"], "Undefined");
}

#[test]
fn company_goes_on_create_only() {
    let ev = [pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"email": "a@b.c"}),
    )];
    assert_eq!(render(Form::Create, &ev, None).body["Company"], "Acme Ltd");
    assert!(!render(Form::Update, &ev, None).body.contains_key("Company"));
}

#[test]
fn phone_choice_follows_the_contract() {
    let p = |n: &str, c: Option<bool>, t: Option<&str>| Phone {
        number: Some(n.into()),
        confirmed: c,
        update_time: t.map(at),
    };
    for (phones, expected) in [
        (vec![], None),
        (
            vec![
                p("1", Some(false), Some("2026-01-02T00:00:00Z")),
                p("2", Some(true), Some("2026-01-01T00:00:00Z")),
            ],
            Some("2"),
        ),
        (
            vec![
                p("1", None, Some("2026-01-02T00:00:00Z")),
                p("2", Some(false), Some("2026-01-01T00:00:00Z")),
            ],
            Some("1"),
        ),
        (
            vec![
                p("1", None, Some("2026-01-01T00:00:00Z")),
                p("2", None, None),
            ],
            Some("1"),
        ),
        (vec![p("1", None, None), p("2", None, None)], Some("2")),
        (
            vec![p("1", Some(true), None), p("2", Some(true), None)],
            Some("2"),
        ),
    ] {
        assert_eq!(choose_phone(&phones).as_deref(), expected, "{phones:?}");
    }
}

#[test]
fn address_choice_follows_the_contract() {
    let a = |kind: Option<&str>, city: &str, t: Option<&str>| Address {
        kind: kind.map(Into::into),
        city: Some(city.into()),
        update_time: t.map(at),
        ..Default::default()
    };
    for (list, expected) in [
        (
            vec![
                a(Some("postal"), "P", Some("2026-02-01T00:00:00Z")),
                a(Some("residential"), "R", Some("2026-01-01T00:00:00Z")),
            ],
            Some("R"),
        ),
        (
            vec![
                a(Some("postal"), "New", Some("2026-02-01T00:00:00Z")),
                a(Some("billing"), "Old", Some("2026-01-01T00:00:00Z")),
            ],
            Some("New"),
        ),
        (
            vec![a(None, "First", None), a(None, "Last", None)],
            Some("Last"),
        ),
        (vec![], None),
    ] {
        assert_eq!(
            choose_address(&list).and_then(|x| x.city.as_deref()),
            expected
        );
    }
}

#[test]
fn a_chosen_address_clears_its_missing_parts_and_an_empty_list_clears_all() {
    let ev = pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"addresses": [{"type": "residential", "city": "Paphos"}]}),
    );
    let out = render(Form::Update, &[ev], None);
    assert_eq!(
        Value::Object(out.body),
        json!({"City": "Paphos", "Street": null, "State": null, "PostalCode": null, "Country": null})
    );

    let known = merge(
        &Known::default(),
        &[pending(
            1,
            "2026-01-01T00:00:00Z",
            json!({"addresses": [{"city": "A", "address": "1 St", "postcode": "1"}]}),
        )],
    )
    .merged;
    for (addresses, expected) in [
        (
            json!([{"city": "B"}]),
            json!({"City": "B", "Street": null, "PostalCode": null}),
        ),
        (
            json!([]),
            json!({"City": null, "Street": null, "PostalCode": null}),
        ),
        (
            json!(null),
            json!({"City": null, "Street": null, "PostalCode": null}),
        ),
    ] {
        let m = merge(
            &known,
            &[pending(
                2,
                "2026-01-02T00:00:00Z",
                json!({"addresses": addresses}),
            )],
        );
        let map = mapping();
        let none = BTreeSet::new();
        let out = lead(
            Form::Update,
            &m,
            &Target {
                company: None,
                mapping: &map,
                fields: None,
                exclude: &none,
                picklists: None,
                refused: &Refused::new(),
            },
        );
        assert_eq!(Value::Object(out.body), expected, "{addresses}");
    }
}

#[test]
fn country_codes_in_any_iso_form_become_alpha_2() {
    for (code, expected) in [
        ("CY", Some("CY")),
        ("cy", Some("CY")),
        ("CYP", Some("CY")),
        ("196", Some("CY")),
        ("036", Some("AU")),
        ("36", Some("AU")),
        ("GBR", Some("GB")),
        ("XX", None),
        ("", None),
        ("CYPR", None),
    ] {
        assert_eq!(country_alpha2(code), expected, "{code}");
    }
}

/// An org with picklists: Cyprus and the United States active, Russia
/// not; two US states.
fn picklist_org() -> (LeadFields, AddressPicklists) {
    let mut org = standard_org();
    org.insert("CountryCode".into(), field(10, "picklist"));
    org.insert("StateCode".into(), field(10, "picklist"));
    let lists = AddressPicklists {
        countries: BTreeMap::from([
            ("CY".to_string(), "Cyprus".to_string()),
            ("US".to_string(), "United States".to_string()),
        ]),
        states: BTreeMap::from([(
            "US".to_string(),
            BTreeMap::from([
                ("CA".to_string(), "California".to_string()),
                ("NY".to_string(), "New York".to_string()),
            ]),
        )]),
    };
    (org, lists)
}

fn render_picklists(form: Form, address: Value, refused: &Refused) -> Lead {
    let (org, lists) = picklist_org();
    let ev = [pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"addresses": [address]}),
    )];
    render_with(form, &ev, Some(&org), Some(&lists), refused)
}

fn address_of(out: &Lead) -> Value {
    let keys = ["Country", "CountryCode", "State", "StateCode"];
    Value::Object(
        out.body
            .iter()
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

#[test]
fn a_state_the_country_has_goes_as_state_code_by_code_or_name() {
    let none = Refused::new();
    for state in ["California", "california", "CA", " ca "] {
        let out = render_picklists(
            Form::Create,
            json!({"country": "USA", "countryCode": "USA", "state": state}),
            &none,
        );
        assert_eq!(
            address_of(&out),
            json!({"CountryCode": "US", "StateCode": "CA"}),
            "{state}"
        );
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }
}

#[test]
fn a_state_the_country_lacks_is_left_out_with_a_warning() {
    let none = Refused::new();
    // Cyprus has no states in this org; Texas is not one of its two US states.
    for (address, country) in [
        (json!({"countryCode": "CY", "state": "Nicosia"}), "CY"),
        (json!({"countryCode": "US", "state": "Texas"}), "US"),
    ] {
        let out = render_picklists(Form::Create, address.clone(), &none);
        assert_eq!(
            address_of(&out),
            json!({"CountryCode": country}),
            "{address}"
        );
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains("is not one of this org's states")),
            "{:?}",
            out.warnings
        );
        // An update clears the old state, so it is not left under a new country.
        let out = render_picklists(Form::Update, address.clone(), &none);
        assert_eq!(
            address_of(&out),
            json!({"CountryCode": country, "StateCode": null}),
            "{address}"
        );
    }
}

#[test]
fn an_inactive_country_falls_back_to_the_country_text_when_the_org_has_it() {
    let none = Refused::new();
    // RU is not active: neither code nor name can be sent.
    let out = render_picklists(
        Form::Create,
        json!({"country": "Russia", "countryCode": "RU", "state": "Moscow"}),
        &none,
    );
    assert_eq!(address_of(&out), json!({}));
    assert!(out.warnings.iter().any(|w| w.contains("CountryCode RU")));
    assert!(out.warnings.iter().any(|w| w.contains("\"Russia\"")));
    // A code the org refused before: the text, in the org's spelling, instead.
    let refused = Refused::from([("CountryCode".to_string(), Some("US".to_string()))]);
    let out = render_picklists(
        Form::Create,
        json!({"country": "united states", "countryCode": "US", "state": "NY"}),
        &refused,
    );
    assert_eq!(
        address_of(&out),
        json!({"Country": "United States", "StateCode": "NY"})
    );
}

#[test]
fn a_value_the_org_refused_before_is_not_sent_again() {
    let mut org = standard_org();
    org.insert("B2C_Status__c".into(), field(50, "picklist"));
    let refused = Refused::from([("B2C_Status__c".to_string(), Some("Gold".to_string()))]);
    let ev = [pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"status": {"name": "Gold"}, "email": "a@b.io"}),
    )];
    let out = render_with(Form::Create, &ev, Some(&org), None, &refused);
    assert!(!out.body.contains_key("B2C_Status__c"), "{out:?}");
    assert_eq!(out.body["Email"], "a@b.io");
    assert!(out
        .warnings
        .iter()
        .any(|w| w.contains("refused it in an earlier write")));
}

#[test]
fn with_country_picklists_country_code_is_sent_alone_as_alpha_2() {
    let mut org = standard_org();
    org.insert("CountryCode".into(), field(10, "picklist"));
    let ev = [pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"addresses": [{"country": "Cyprus", "countryCode": 196}]}),
    )];
    let out = render(Form::Create, &ev, Some(&org));
    assert_eq!(out.body.get("CountryCode"), Some(&json!("CY")), "{out:?}");
    assert!(!out.body.contains_key("Country"));
    // Without picklists the name goes to Country and the code is not sent.
    let out = render(Form::Create, &ev, Some(&standard_org()));
    assert_eq!(out.body["Country"], "Cyprus");
    assert!(!out.body.contains_key("CountryCode"));
    // An unknown code is not sent, with a warning; Country still is.
    let ev = [pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"addresses": [{"country": "Atlantis", "countryCode": "ZZ"}]}),
    )];
    let out = render(Form::Create, &ev, Some(&org));
    assert_eq!(out.body["Country"], "Atlantis");
    assert!(
        out.warnings.iter().any(|w| w.contains("\"ZZ\"")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn fields_the_org_lacks_or_cannot_write_are_not_sent() {
    let mut org = standard_org();
    org.get_mut("Email").unwrap().updateable = false;
    let ev = [pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"email": "a@b.c", "info": {"middleName": "Q", "lastName": "D"}}),
    )];
    let create = render(Form::Create, &ev, Some(&org));
    assert!(!create.body.contains_key("MiddleName"));
    assert_eq!(create.body["Email"], "a@b.c");
    assert!(create
        .warnings
        .iter()
        .any(|w| w.starts_with("MiddleName not sent")));
    let update = render(Form::Update, &ev, Some(&org));
    assert!(!update.body.contains_key("Email"));
    assert!(!update.body.contains_key("MiddleName"));
}

#[test]
fn long_values_are_cut_at_a_character_boundary_with_a_warning() {
    let org = standard_org();
    let name = "Ω".repeat(50); // 100 bytes, 50 characters; FirstName holds 40
    let ev = [pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"info": {"firstName": name, "lastName": "D"}}),
    )];
    let out = render(Form::Create, &ev, Some(&org));
    assert_eq!(out.body["FirstName"].as_str().unwrap(), "Ω".repeat(40));
    assert_eq!(out.warnings, ["FirstName cut from 50 to 40 characters"]);
}

#[test]
fn unmapped_custom_fields_are_not_sent() {
    let ev = [pending(
        1,
        "2026-01-01T00:00:00Z",
        json!({"status": {"name": "Active"}, "type": {"name": "Corp"}, "verificationLevel": {"name": "Full"}}),
    )];
    let out = render(Form::Update, &ev, None);
    assert_eq!(
        Value::Object(out.body),
        json!({"B2C_Status__c": "Active", "B2C_Client_Type__c": "Corp"})
    );
}

#[test]
fn absent_fields_are_left_alone_and_null_fields_are_cleared() {
    let known = merge(
        &Known::default(),
        &[pending(
            1,
            "2026-01-01T00:00:00Z",
            json!({"email": "a@b.c", "info": {"firstName": "J", "lastName": "D"}}),
        )],
    )
    .merged;
    let m = merge(
        &known,
        &[pending(2, "2026-01-02T00:00:00Z", json!({"email": null}))],
    );
    let map = mapping();
    let none = BTreeSet::new();
    let out = lead(
        Form::Update,
        &m,
        &Target {
            company: None,
            mapping: &map,
            fields: None,
            exclude: &none,
            picklists: None,
            refused: &Refused::new(),
        },
    );
    assert_eq!(Value::Object(out.body), json!({"Email": null}));
    assert_eq!(m.merged.0[&Slot::FirstName].v.as_deref(), Some("J"));
}

#[test]
fn an_older_event_does_not_roll_back_a_newer_one() {
    let known = merge(
        &Known::default(),
        &[pending(
            1,
            "2026-01-02T00:00:00Z",
            json!({"email": "new@x.io"}),
        )],
    )
    .merged;
    // Arrives later, happened earlier: its email loses, its phone (untouched since) wins.
    let m = merge(
        &known,
        &[pending(
            2,
            "2026-01-01T00:00:00Z",
            json!({"email": "old@x.io", "phones": [{"number": "+1"}]}),
        )],
    );
    assert_eq!(m.merged.0[&Slot::Email].v.as_deref(), Some("new@x.io"));
    assert_eq!(m.delta, BTreeSet::from([Slot::Phone]));
}

#[test]
fn events_with_equal_occurred_at_apply_in_arrival_order() {
    let m = merge(
        &Known::default(),
        &[
            pending(7, "2026-01-01T00:00:00Z", json!({"email": "first@x.io"})),
            pending(9, "2026-01-01T00:00:00Z", json!({"email": "second@x.io"})),
        ],
    );
    assert_eq!(m.merged.0[&Slot::Email].v.as_deref(), Some("second@x.io"));
}

#[test]
fn an_unchanged_value_is_not_in_the_update() {
    let known = merge(
        &Known::default(),
        &[pending(
            1,
            "2026-01-01T00:00:00Z",
            json!({"email": "a@b.c"}),
        )],
    )
    .merged;
    let m = merge(
        &known,
        &[pending(
            2,
            "2026-01-02T00:00:00Z",
            json!({"email": "a@b.c"}),
        )],
    );
    assert!(m.delta.is_empty());
}

#[test]
fn excluded_fields_are_dropped_silently() {
    let m = merge(
        &Known::default(),
        &[pending(
            1,
            "2026-01-01T00:00:00Z",
            json!({"email": "bad", "info": {"lastName": "D"}}),
        )],
    );
    let map = mapping();
    let exclude = BTreeSet::from(["Email".to_string()]);
    let out = lead(
        Form::Create,
        &m,
        &Target {
            company: Some("A"),
            mapping: &map,
            fields: None,
            picklists: None,
            exclude: &exclude,
            refused: &Refused::new(),
        },
    );
    assert_eq!(
        Value::Object(out.body),
        json!({"LastName": "D", "Company": "A"})
    );
    assert!(out.warnings.is_empty());
}
