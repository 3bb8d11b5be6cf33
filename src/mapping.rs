//! Client → Lead, as the contract's table says. Pure: no I/O, no clock.
//!
//! 1. [`changes`] turns one event's `data` into the Lead slots it sets or clears.
//! 2. [`merge`] folds pending events into what was last written, field by field:
//!    the newest `occurredAt` wins (arrival order breaks ties), so an older event
//!    never rolls a field back.
//! 3. [`lead`] renders the create or update body for one org: fields the org
//!    lacks or cannot write are left out, long values are cut, warnings kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::FieldMapping;
use crate::webhook::event::{Address, ClientData, Field, Named, Phone};

/// Lead value for a missing or blank last name (LastName is required).
pub const UNDEFINED_LAST_NAME: &str = "Undefined";

/// One thing leadbridge writes on a Lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Slot {
    LastName,
    FirstName,
    MiddleName,
    Email,
    Phone,
    Street,
    City,
    State,
    PostalCode,
    Country,
    CountryCode,
    Status,
    ClientType,
    VerificationLevel,
}

impl Slot {
    /// The Lead field this slot is written to, if it is written at all.
    pub fn api_name(self, mapping: &FieldMapping) -> Option<&str> {
        Some(match self {
            Slot::LastName => "LastName",
            Slot::FirstName => "FirstName",
            Slot::MiddleName => "MiddleName",
            Slot::Email => "Email",
            Slot::Phone => "Phone",
            Slot::Street => "Street",
            Slot::City => "City",
            Slot::State => "State",
            Slot::PostalCode => "PostalCode",
            Slot::Country => "Country",
            Slot::CountryCode => "CountryCode",
            Slot::Status => return mapping.status.as_deref(),
            Slot::ClientType => return mapping.client_type.as_deref(),
            Slot::VerificationLevel => return mapping.verification_level.as_deref(),
        })
    }
}

/// What one event sets (`Some`) or clears (`None`).
pub type Changes = Vec<(Slot, Option<String>)>;

const ADDRESS_SLOTS: [Slot; 6] = [
    Slot::Street,
    Slot::City,
    Slot::State,
    Slot::PostalCode,
    Slot::Country,
    Slot::CountryCode,
];

/// The slots one event's `data` touches. Absent fields touch nothing.
pub fn changes(data: &ClientData) -> Changes {
    let mut out = Changes::new();
    match &data.email {
        Field::Absent => {}
        Field::Null => out.push((Slot::Email, None)),
        Field::Value(v) => out.push((Slot::Email, Some(v.clone()))),
    }
    match &data.info {
        Field::Absent => {}
        Field::Null => {
            out.extend([Slot::FirstName, Slot::MiddleName, Slot::LastName].map(|s| (s, None)))
        }
        Field::Value(info) => {
            for (slot, field) in [
                (Slot::FirstName, &info.first_name),
                (Slot::MiddleName, &info.middle_name),
                (Slot::LastName, &info.last_name),
            ] {
                match field {
                    Field::Absent => {}
                    Field::Null => out.push((slot, None)),
                    Field::Value(v) => out.push((slot, Some(v.clone()))),
                }
            }
        }
    }
    match &data.phones {
        Field::Absent => {}
        Field::Null => out.push((Slot::Phone, None)),
        Field::Value(list) => out.push((Slot::Phone, choose_phone(list))),
    }
    match &data.addresses {
        Field::Absent => {}
        Field::Null => out.extend(ADDRESS_SLOTS.map(|s| (s, None))),
        Field::Value(list) => {
            let chosen = choose_address(list);
            let part = |f: fn(&Address) -> &Option<String>| chosen.and_then(|a| f(a).clone());
            out.push((Slot::Street, part(|a| &a.address)));
            out.push((Slot::City, part(|a| &a.city)));
            out.push((Slot::State, part(|a| &a.state)));
            out.push((Slot::PostalCode, part(|a| &a.postcode)));
            out.push((Slot::Country, part(|a| &a.country)));
            out.push((Slot::CountryCode, part(|a| &a.country_code)));
        }
    }
    for (slot, field) in [
        (Slot::Status, &data.status),
        (Slot::ClientType, &data.client_type),
        (Slot::VerificationLevel, &data.verification_level),
    ] {
        match field {
            Field::Absent => {}
            Field::Null => out.push((slot, None)),
            Field::Value(Named { name, .. }) => out.push((slot, name.clone())),
        }
    }
    out
}

/// The confirmed one, else the most recently updated (ties: the later listed).
pub fn choose_phone(phones: &[Phone]) -> Option<String> {
    let usable: Vec<&Phone> = phones.iter().filter(|p| p.number.is_some()).collect();
    let chosen = usable
        .iter()
        .rev()
        .find(|p| p.confirmed == Some(true))
        .copied()
        .or_else(|| latest(&usable, |p| p.update_time))?;
    chosen.number.clone()
}

/// The `residential` one, else the latest `updateTime`, else the last listed.
pub fn choose_address(addresses: &[Address]) -> Option<&Address> {
    let all: Vec<&Address> = addresses.iter().collect();
    all.iter()
        .rev()
        .find(|a| {
            a.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("residential"))
        })
        .copied()
        .or_else(|| latest(&all, |a| a.update_time))
}

/// The item with the latest time; items without one count as oldest; ties and
/// no times at all pick the last listed.
fn latest<'a, T>(items: &[&'a T], time: fn(&T) -> Option<DateTime<Utc>>) -> Option<&'a T> {
    items
        .iter()
        .enumerate()
        .max_by_key(|(i, t)| (time(t), *i))
        .map(|(_, t)| *t)
}

/// Any ISO 3166-1 code (alpha-2, alpha-3 or numeric) as alpha-2.
pub fn country_alpha2(code: &str) -> Option<&'static str> {
    let code = code.trim();
    let country = if code.chars().all(|c| c.is_ascii_digit()) && !code.is_empty() {
        code.parse::<usize>()
            .ok()
            .and_then(|n| celes::Country::from_value(n).ok())
    } else if code.len() == 2 {
        celes::Country::from_alpha2(code).ok()
    } else if code.len() == 3 {
        celes::Country::from_alpha3(code).ok()
    } else {
        None
    };
    country.map(|c| c.alpha2)
}

/// A slot's value with when it was set: `at` (occurredAt, ms) then `seq` (arrival).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    pub v: Option<String>,
    pub at: i64,
    pub seq: i64,
}

/// What is known of a client's Lead, slot by slot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Known(pub BTreeMap<Slot, Stamped>);

/// One pending event's changes with its order keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub occurred_at: DateTime<Utc>,
    pub seq: i64,
    pub changes: Changes,
}

/// The result of folding pending events into what is known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merge {
    /// Everything known after the events.
    pub merged: Known,
    /// Slots whose value the events changed: what an update must send.
    pub delta: BTreeSet<Slot>,
}

/// Folds `events` into `known`, per slot: a later (occurredAt, arrival) wins.
pub fn merge(known: &Known, events: &[Pending]) -> Merge {
    let mut merged = known.clone();
    for ev in events {
        let at = ev.occurred_at.timestamp_millis();
        for (slot, value) in &ev.changes {
            let newer = merged
                .0
                .get(slot)
                .is_none_or(|old| (at, ev.seq) >= (old.at, old.seq));
            if newer {
                merged.0.insert(
                    *slot,
                    Stamped {
                        v: value.clone(),
                        at,
                        seq: ev.seq,
                    },
                );
            }
        }
    }
    let delta = merged
        .0
        .iter()
        .filter(|(slot, new)| known.0.get(slot).is_none_or(|old| old.v != new.v))
        .map(|(slot, _)| *slot)
        .collect();
    Merge { merged, delta }
}

/// Which body to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Everything known, plus Company.
    Create,
    /// Only what changed; never Company.
    Update,
}

/// A Lead field as describe reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldInfo {
    pub createable: bool,
    pub updateable: bool,
    /// Maximum characters; 0 when the type has none.
    pub length: usize,
    pub kind: String,
}

/// The org's Lead fields, by API name.
pub type LeadFields = HashMap<String, FieldInfo>;

/// The org's State and Country/Territory Picklists, from describe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPicklists {
    /// Active countries: ISO code → integration value (the name).
    pub countries: BTreeMap<String, String>,
    /// Active states by country code: state code → name.
    pub states: BTreeMap<String, BTreeMap<String, String>>,
}

/// Values the org refused of every client: `(field, Some(value))` for one
/// value, `(field, None)` for the whole field.
pub type Refused = BTreeSet<(String, Option<String>)>;

/// Where a body goes: the connection's settings and the org's Lead.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub company: Option<&'a str>,
    pub mapping: &'a FieldMapping,
    /// From describe; `None` sends every field unchecked.
    pub fields: Option<&'a LeadFields>,
    /// From describe, when the org has State and Country/Territory Picklists.
    pub picklists: Option<&'a AddressPicklists>,
    /// Fields Salesforce rejected in this write; sent no more.
    pub exclude: &'a BTreeSet<String>,
    /// What the org refused in earlier writes; not sent again.
    pub refused: &'a Refused,
}

impl Target<'_> {
    fn refuses(&self, field: &str, value: &str) -> bool {
        // Nearly always empty: no key is built for the common case.
        if self.refused.is_empty() {
            return false;
        }
        self.refused.contains(&(field.to_string(), None))
            || self
                .refused
                .contains(&(field.to_string(), Some(value.to_string())))
    }
}

/// A rendered Lead body and what was changed on the way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lead {
    pub body: Map<String, Value>,
    pub warnings: Vec<String>,
}

fn is_text(kind: &str) -> bool {
    matches!(
        kind,
        "string" | "textarea" | "email" | "phone" | "url" | "picklist" | "combobox"
    )
}

/// Renders the body of `form` for `target`.
pub fn lead(form: Form, m: &Merge, target: &Target) -> Lead {
    let mut out = Lead::default();
    let slots: Vec<Slot> = match form {
        Form::Create => m.merged.0.keys().copied().collect(),
        Form::Update => m.delta.iter().copied().collect(),
    };
    let value_of = |slot: Slot| m.merged.0.get(&slot).and_then(|s| s.v.clone());
    let writable = |name: &str| match target.fields {
        None => true,
        Some(fields) => fields.get(name).is_some_and(|f| match form {
            Form::Create => f.createable,
            Form::Update => f.updateable,
        }),
    };
    // With State and Country picklists, the address is rendered as a whole.
    let picklist_mode = writable("CountryCode") && target.fields.is_some();
    let mut values: Vec<(String, Option<String>)> = Vec::new();
    if picklist_mode && (form == Form::Create || slots.iter().any(|s| PICKLIST_SLOTS.contains(s))) {
        let state_writable = writable("StateCode");
        values.extend(picklist_address(
            form,
            &value_of,
            target,
            state_writable,
            &mut out.warnings,
        ));
    }
    for slot in slots {
        let mut value = value_of(slot);
        match slot {
            _ if picklist_mode && PICKLIST_SLOTS.contains(&slot) => continue,
            Slot::LastName if value.as_deref().is_none_or(|v| v.trim().is_empty()) => {
                value = Some(UNDEFINED_LAST_NAME.into());
            }
            // Without picklists the org has no CountryCode: Country carries it.
            Slot::CountryCode => continue,
            _ if form == Form::Create && value.is_none() => continue,
            _ => {}
        }
        let Some(name) = slot.api_name(target.mapping) else {
            continue;
        };
        values.push((name.to_string(), value));
    }
    if form == Form::Create {
        if !m.merged.0.contains_key(&Slot::LastName) {
            values.push(("LastName".into(), Some(UNDEFINED_LAST_NAME.into())));
        }
        if let Some(company) = target.company {
            values.push(("Company".into(), Some(company.into())));
        }
    }
    for (name, value) in values {
        if target.exclude.contains(&name) {
            continue;
        }
        if let Some(v) = value.as_deref().filter(|v| target.refuses(&name, v)) {
            out.warnings.push(format!(
                "{name} {v:?} not sent: this org refused it in an earlier write"
            ));
            continue;
        }
        if !writable(&name) {
            if value.is_some() {
                out.warnings.push(format!(
                    "{name} not sent: this org's Lead has no such writable field"
                ));
            }
            continue;
        }
        let value = match (value, target.fields.and_then(|f| f.get(&name))) {
            (Some(v), Some(info)) if is_text(&info.kind) && info.length > 0 => {
                let count = v.chars().count();
                if count > info.length {
                    out.warnings.push(format!(
                        "{name} cut from {count} to {} characters",
                        info.length
                    ));
                    Some(v.chars().take(info.length).collect())
                } else {
                    Some(v)
                }
            }
            (v, _) => v,
        };
        out.body
            .insert(name, value.map(Value::String).unwrap_or(Value::Null));
    }
    out
}

/// The address slots that picklists render together.
const PICKLIST_SLOTS: [Slot; 3] = [Slot::Country, Slot::CountryCode, Slot::State];

/// The address for an org with State and Country/Territory Picklists.
///
/// - The country goes as CountryCode (alpha-2), which sets Country, when the
///   org has it active; else as the Country text, when it names one of the
///   org's active countries (or the org lists none); else not at all.
/// - The state goes as StateCode when it names (by code or name) one of the
///   country's states, and State is left out: the org refuses any State text
///   that is not one of its states, and a country without states takes none.
/// - An update touching the address clears what it cannot set, so a state
///   of the old country is not left under a new one.
fn picklist_address(
    form: Form,
    value_of: &dyn Fn(Slot) -> Option<String>,
    target: &Target,
    state_writable: bool,
    warnings: &mut Vec<String>,
) -> Vec<(String, Option<String>)> {
    let lists = target.picklists;
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let raw_code = value_of(Slot::CountryCode);
    let code = raw_code.as_deref().and_then(|c| {
        let a2 = country_alpha2(c);
        if a2.is_none() {
            warnings.push(format!(
                "countryCode {c:?} is not an ISO 3166-1 code; CountryCode not sent"
            ));
        }
        a2
    });
    let active = |c: &str| {
        lists.is_none_or(|l| l.countries.contains_key(c)) && !target.refuses("CountryCode", c)
    };
    // The country code the state is looked up under.
    let mut country: Option<String> = None;
    match code {
        Some(c) if active(c) => {
            out.push(("CountryCode".into(), Some(c.into())));
            country = Some(c.into());
        }
        _ => {
            if let Some(c) = code {
                warnings.push(format!(
                    "CountryCode {c} is not an active country in this org; not sent"
                ));
            }
            match value_of(Slot::Country) {
                Some(text) => {
                    let known = match lists {
                        Some(l) => l
                            .countries
                            .iter()
                            .find(|(_, name)| name.eq_ignore_ascii_case(text.trim()))
                            .map(|(code, name)| (Some(code.clone()), name.clone())),
                        None => Some((None, text.clone())),
                    };
                    match known {
                        Some((code, name)) if !target.refuses("Country", &name) => {
                            out.push(("Country".into(), Some(name)));
                            country = code;
                        }
                        _ => warnings.push(format!(
                            "Country {text:?} is not an active country in this org; not sent"
                        )),
                    }
                }
                None if raw_code.is_none() && form == Form::Update => {
                    out.push(("CountryCode".into(), None));
                }
                None => {}
            }
        }
    }
    let state = value_of(Slot::State);
    match (state, lists) {
        (Some(s), None) => out.push(("State".into(), Some(s))),
        (Some(s), Some(l)) => {
            let found = country
                .as_deref()
                .and_then(|c| l.states.get(c))
                .and_then(|states| {
                    states.iter().find(|(code, name)| {
                        code.eq_ignore_ascii_case(s.trim()) || name.eq_ignore_ascii_case(s.trim())
                    })
                })
                .map(|(code, _)| code.clone())
                .filter(|code| state_writable && !target.refuses("StateCode", code));
            match found {
                Some(code) => out.push(("StateCode".into(), Some(code))),
                None => {
                    let of = country.map(|c| format!(" of {c}")).unwrap_or_default();
                    warnings.push(format!(
                        "State {s:?} is not one of this org's states{of}; not sent"
                    ));
                    if form == Form::Update && state_writable {
                        out.push(("StateCode".into(), None));
                    }
                }
            }
        }
        (None, _) if form == Form::Update => {
            let field = if state_writable { "StateCode" } else { "State" };
            out.push((field.into(), None));
        }
        (None, _) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
            serde_json::from_str(include_str!("../tests/fixtures/contract_example.json")).unwrap();
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
}
