//! Client → Lead, as the contract's table says. Pure: no I/O, no clock.
//!
//! 1. [`changes`] turns one event's `data` into the Lead slots it sets or clears.
//! 2. [`merge`] folds pending events into what was last written, field by field:
//!    the newest `occurredAt` wins (arrival order breaks ties), so an older event
//!    never rolls a field back.
//! 3. [`lead`] renders the create or update body for one org: fields the org
//!    lacks or cannot write are left out, long values are cut, warnings kept.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::FieldMapping;
use crate::salesforce::describe::{AddressPicklists, LeadFields, Refused};
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
mod tests;
