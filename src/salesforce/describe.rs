//! Describe of Lead: the org's fields, labels, External ID fields and
//! State and Country/Territory Picklists, cached per connection; and what
//! the org refused of every client while that describe is cached. The
//! mapping reads these facts; they are defined here, where they are learnt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::errors::{self, Failure, Op};
use reqwest::Method;

use super::{transport, Credentials, Salesforce, Token};

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

/// Describe of Lead, as leadbridge needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadDescribe {
    pub fields: LeadFields,
    /// Fields marked External ID.
    pub external_ids: Vec<String>,
    /// Each field's label in the org, for people choosing fields (the console).
    pub labels: std::collections::HashMap<String, String>,
    /// State and Country/Territory Picklists, when CountryCode lists values.
    pub picklists: Option<AddressPicklists>,
    /// Values (or whole fields) this org refused in a write while this
    /// describe is cached: not sent again, so a refusal costs one call once.
    pub refused: Refusals,
}

/// What an org refused of every client, not of one: a picklist value it does
/// not have (`(field, Some(value))`) or a field it will not take
/// (`(field, None)`). Shared by every write while its describe is cached.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<std::sync::Mutex<Refused>>);

impl Refusals {
    /// What has been refused so far.
    pub fn snapshot(&self) -> Refused {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn add(&self, field: &str, value: Option<&str>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((field.to_string(), value.map(str::to_string)));
    }
}

impl PartialEq for Refusals {
    fn eq(&self, other: &Self) -> bool {
        self.snapshot() == other.snapshot()
    }
}

#[derive(Deserialize)]
struct DescribeAnswer {
    fields: Vec<DescribeField>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeField {
    name: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    length: usize,
    createable: bool,
    updateable: bool,
    #[serde(default)]
    external_id: bool,
    #[serde(default)]
    picklist_values: Vec<PicklistEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PicklistEntry {
    value: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    active: bool,
    /// Base64: bit i (from the left) set when the entry is valid for the
    /// controlling field's i-th value.
    #[serde(default)]
    valid_for: Option<String>,
}

impl Salesforce {
    /// Forgets the cached describe (after `INVALID_FIELD`).
    pub async fn drop_describe(&self, c: &Credentials) {
        self.describes.invalidate(&describe_key(c)).await;
    }

    /// Lead's fields for this org, cached per connection.
    pub async fn describe_lead(&self, c: &Credentials) -> Result<Arc<LeadDescribe>, Failure> {
        self.describes
            .try_get_with(describe_key(c), async {
                let (_, body) = self
                    .send(
                        c,
                        Op::Describe,
                        Method::GET,
                        "sobjects/Lead/describe",
                        None,
                        None,
                    )
                    .await?;
                parse_describe(&body).map(Arc::new)
            })
            .await
            .map_err(|e: Arc<Failure>| (*e).clone())
    }

    /// The cached describe, if there is one; never calls Salesforce.
    pub async fn cached_describe(&self, c: &Credentials) -> Option<Arc<LeadDescribe>> {
        self.describes.get(&describe_key(c)).await
    }

    /// Describe of Lead with the given token, uncached (the connection test).
    pub async fn describe_with(
        &self,
        c: &Credentials,
        token: &Token,
    ) -> Result<LeadDescribe, Failure> {
        let url = format!(
            "{}/services/data/{}/sobjects/Lead/describe",
            token.instance_url, c.api_version
        );
        let res = self
            .http
            .get(&url)
            .bearer_auth(token.access_token.expose_secret())
            .send()
            .await
            .map_err(transport)?;
        let status = res.status();
        let body = super::read_capped(res, self.caps.1).await?;
        crate::metrics::salesforce_request("describe", status.as_u16());
        if !status.is_success() {
            return Err(errors::classify(Op::Describe, status.as_u16(), &body));
        }
        parse_describe(&body)
    }
}

fn parse_describe(body: &[u8]) -> Result<LeadDescribe, Failure> {
    let answer: DescribeAnswer = serde_json::from_slice(body).map_err(|e| {
        Failure::transient(
            errors::codes::BAD_DESCRIBE_ANSWER,
            format!("unreadable describe: {e}"),
        )
    })?;
    let mut out = LeadDescribe::default();
    let mut countries: Vec<PicklistEntry> = Vec::new();
    let mut states: Vec<PicklistEntry> = Vec::new();
    for mut f in answer.fields {
        match f.name.as_str() {
            "CountryCode" => countries = std::mem::take(&mut f.picklist_values),
            "StateCode" => states = std::mem::take(&mut f.picklist_values),
            _ => {}
        }
        if f.external_id {
            out.external_ids.push(f.name.clone());
        }
        if let Some(label) = f.label {
            out.labels.insert(f.name.clone(), label);
        }
        out.fields.insert(
            f.name,
            FieldInfo {
                createable: f.createable,
                updateable: f.updateable,
                length: f.length,
                kind: f.kind,
            },
        );
    }
    out.picklists = address_picklists(&countries, &states);
    Ok(out)
}

/// The active countries and, through `validFor`, each one's active states.
/// `validFor` indexes the controller's values as describe lists them, active
/// or not.
fn address_picklists(
    countries: &[PicklistEntry],
    states: &[PicklistEntry],
) -> Option<AddressPicklists> {
    if countries.is_empty() {
        return None;
    }
    let label = |e: &PicklistEntry| e.label.clone().unwrap_or_else(|| e.value.clone());
    let mut out = AddressPicklists::default();
    for c in countries.iter().filter(|c| c.active) {
        out.countries.insert(c.value.clone(), label(c));
    }
    for st in states.iter().filter(|s| s.active) {
        let Some(bits) = st.valid_for.as_deref().and_then(|v| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(v).ok()
        }) else {
            continue;
        };
        for (i, c) in countries.iter().enumerate() {
            let set = bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
            if set && c.active {
                out.states
                    .entry(c.value.clone())
                    .or_default()
                    .insert(st.value.clone(), label(st));
            }
        }
    }
    Some(out)
}

fn describe_key(c: &Credentials) -> String {
    format!("{}/{}", c.cache_key, c.api_version)
}

#[cfg(test)]
mod tests {
    #[test]
    fn describe_gives_active_countries_and_their_states_through_valid_for() {
        // Controller values: AU (index 0), RU inactive (1), US (2). WA is
        // valid for AU and US: bits 0 and 2 → 0b1010_0000 = "oA==".
        let body = serde_json::json!({"fields": [
            {"name": "CountryCode", "type": "picklist", "length": 255, "createable": true, "updateable": true,
             "picklistValues": [
                {"active": true, "label": "Australia", "value": "AU", "validFor": null},
                {"active": false, "label": "Russian Federation", "value": "RU", "validFor": null},
                {"active": true, "label": "United States", "value": "US", "validFor": null}]},
            {"name": "StateCode", "type": "picklist", "length": 255, "createable": true, "updateable": true,
             "controllerName": "CountryCode", "dependentPicklist": true,
             "picklistValues": [
                {"active": true, "label": "Washington", "value": "WA", "validFor": "oA=="},
                {"active": true, "label": "Moscow", "value": "MOW", "validFor": "QA=="},
                {"active": false, "label": "Texas", "value": "TX", "validFor": "IA=="},
                {"active": true, "label": "New York", "value": "NY", "validFor": "IA=="}]}
        ]});
        let d = super::parse_describe(body.to_string().as_bytes()).unwrap();
        let lists = d.picklists.unwrap();
        assert_eq!(
            lists.countries.keys().collect::<Vec<_>>(),
            ["AU", "US"],
            "inactive countries are not offered"
        );
        let states = |c: &str| {
            lists
                .states
                .get(c)
                .map(|s| s.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(states("AU"), ["WA"]);
        assert_eq!(states("US"), ["NY", "WA"]);
        assert!(
            states("RU").is_empty(),
            "states of an inactive country are not offered"
        );
        // An org without picklist values has none.
        let plain = serde_json::json!({"fields": [
            {"name": "Country", "type": "string", "length": 80, "createable": true, "updateable": true}]});
        assert!(super::parse_describe(plain.to_string().as_bytes())
            .unwrap()
            .picklists
            .is_none());
    }
}
