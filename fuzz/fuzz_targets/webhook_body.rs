//! The webhook body parser, and the mapping of what it parses into Lead
//! bodies: never panics on any input; the webhook path's check of a body
//! agrees with the parser on every input.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use leadbridge::domain::FieldMapping;
use leadbridge::mapping::{self, Form, Known, Pending, Target};
use leadbridge::salesforce::describe::{AddressPicklists, FieldInfo, Refused};
use leadbridge::webhook::{event, Checked, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The webhook path only checks a body (`check`); the worker parses what
    // was stored (`parse`): both must take and refuse the same bodies.
    let parsed = event::parse(data);
    match (event::check(data), &parsed) {
        (Ok(Checked::Client(head)), Ok(Parsed::Client(ev))) => {
            assert_eq!(head.event_type, ev.event_type);
            assert_eq!(head.client_id, ev.client_id);
            assert_eq!(head.occurred_at, ev.occurred_at);
        }
        (Ok(Checked::Ignored { event_type: a }), Ok(Parsed::Ignored { event_type: b })) => {
            assert_eq!(&a, b)
        }
        (Err(a), Err(b)) => assert_eq!(&a, b),
        (checked, parsed) => panic!("check {checked:?}, parse {parsed:?}"),
    }
    let Ok(Parsed::Client(ev)) = parsed else {
        return;
    };
    assert!(!ev.client_id.as_str().trim().is_empty());
    let pending = Pending {
        occurred_at: ev.occurred_at.unwrap_or(chrono::DateTime::UNIX_EPOCH),
        seq: 1,
        changes: mapping::changes(&ev.data),
    };
    let merge = mapping::merge(&Known::default(), &[pending]);
    let field_mapping = FieldMapping {
        status: Some("B2C_Status__c".into()),
        client_type: Some("B2C_Client_Type__c".into()),
        verification_level: None,
    };
    let none = BTreeSet::new();
    let refused = Refused::from([("CountryCode".to_string(), Some("CY".to_string()))]);
    // An org with State and Country/Territory Picklists: two countries, one
    // of them with a state.
    let text = |kind: &str, length| FieldInfo {
        createable: true,
        updateable: true,
        length,
        kind: kind.into(),
    };
    let org: HashMap<String, FieldInfo> = [
        ("LastName", text("string", 80)),
        ("Company", text("string", 255)),
        ("Email", text("email", 80)),
        ("State", text("string", 80)),
        ("Country", text("string", 80)),
        ("CountryCode", text("picklist", 255)),
        ("StateCode", text("picklist", 255)),
    ]
    .into_iter()
    .map(|(n, f)| (n.to_string(), f))
    .collect();
    let lists = AddressPicklists {
        countries: BTreeMap::from([
            ("CY".into(), "Cyprus".into()),
            ("US".into(), "United States".into()),
        ]),
        states: BTreeMap::from([(
            "US".into(),
            BTreeMap::from([("WA".into(), "Washington".into())]),
        )]),
    };
    for (fields, picklists) in [(None, None), (Some(&org), Some(&lists))] {
        let target = Target {
            company: Some("Acme"),
            mapping: &field_mapping,
            fields,
            picklists,
            exclude: &none,
            refused: &refused,
        };
        let create = mapping::lead(Form::Create, &merge, &target);
        let _ = mapping::lead(Form::Update, &merge, &target);
        // LastName and Company are required on every create.
        assert!(create.body.contains_key("LastName"));
        assert!(create.body.contains_key("Company"));
        // With picklists no State text is ever sent: the org would refuse it.
        assert!(picklists.is_none() || !create.body.contains_key("State"));
    }
    // What was merged survives a round trip through the store's JSON.
    let known = serde_json::to_string(&merge.merged).unwrap();
    let _: Known = serde_json::from_str(&known).unwrap();
});
