//! The webhook body parser, and the mapping of what it parses into Lead
//! bodies: never panics on any input.
#![no_main]

use std::collections::BTreeSet;

use leadbridge::domain::FieldMapping;
use leadbridge::mapping::{self, Form, Known, Pending, Target};
use leadbridge::webhook::{event, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Parsed::Client(ev)) = event::parse(data) else {
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
    let target = Target {
        company: Some("Acme"),
        mapping: &field_mapping,
        fields: None,
        exclude: &none,
    };
    let create = mapping::lead(Form::Create, &merge, &target);
    let _ = mapping::lead(Form::Update, &merge, &target);
    // LastName and Company are required on every create.
    assert!(create.body.contains_key("LastName"));
    assert!(create.body.contains_key("Company"));
    // What was merged survives a round trip through the store's JSON.
    let known = serde_json::to_string(&merge.merged).unwrap();
    let _: Known = serde_json::from_str(&known).unwrap();
});
