//! The body B2CORE sends, parsed once into types that keep "absent" apart from
//! "null" (absent leaves a Lead field alone, null clears it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

pub use crate::domain::ClientId;

/// A field of a partial update: not sent, sent as `null`, or sent with a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    /// The value, if one was sent.
    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Field::Null,
            Some(v) => Field::Value(v),
        })
    }
}

/// Accepts a JSON string or number as text (B2CORE sends some codes as numbers).
fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a string or a number, found {other}"
        ))),
    }
}

/// `info`: the client's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    #[serde(default)]
    pub first_name: Field<String>,
    #[serde(default)]
    pub middle_name: Field<String>,
    #[serde(default)]
    pub last_name: Field<String>,
}

/// One entry of `phones`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phone {
    #[serde(default, deserialize_with = "text_or_number")]
    pub number: Option<String>,
    #[serde(default)]
    pub confirmed: Option<bool>,
    #[serde(default)]
    pub update_time: Option<DateTime<Utc>>,
}

/// One entry of `addresses`. Within a chosen address a missing part clears the Lead field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub country_code: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, deserialize_with = "text_or_number")]
    pub postcode: Option<String>,
    #[serde(default)]
    pub update_time: Option<DateTime<Utc>>,
}

/// `status`, `type` and `verificationLevel`: an id and a display name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Named {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub name: Option<String>,
}

/// `data` of a client event, every field but `clientId` optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientData {
    /// `clientId` as sent, read in the same pass as the rest; see
    /// [`ClientEvent::client_id`] for the parsed id.
    #[serde(default, rename = "clientId")]
    pub(crate) raw_client_id: Option<Value>,
    #[serde(default)]
    pub email: Field<String>,
    #[serde(default)]
    pub info: Field<Info>,
    #[serde(default)]
    pub phones: Field<Vec<Phone>>,
    #[serde(default)]
    pub addresses: Field<Vec<Address>>,
    #[serde(default)]
    pub status: Field<Named>,
    #[serde(default, rename = "type")]
    pub client_type: Field<Named>,
    #[serde(default)]
    pub verification_level: Field<Named>,
}

/// Event types that are synced to Salesforce.
pub const SYNCED_TYPES: [&str; 2] = ["client.created", "client.updated"];

/// A webhook body, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A valid event of a type we do not sync.
    Ignored { event_type: String },
    /// A client event to sync.
    Client(Box<ClientEvent>),
}

/// A client event ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientEvent {
    pub event_type: String,
    pub client_id: ClientId,
    /// `occurredAt` as sent, if it was.
    pub occurred_at: Option<DateTime<Utc>>,
    pub data: ClientData,
}

/// The top of a body: the three members read, each kept as its raw text
/// (every other member is skipped without being built).
#[derive(Deserialize)]
struct Root<'a> {
    #[serde(rename = "type", default, borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(rename = "occurredAt", default, borrow)]
    occurred_at: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// Parses a webhook body that has already passed its signature check. The
/// body is read into its types directly, not through a JSON tree: this runs
/// for every webhook.
pub fn parse(body: &[u8]) -> Result<Parsed, String> {
    let not_json = |e: serde_json::Error| format!("the body is not valid JSON: {e}");
    let text = std::str::from_utf8(body).map_err(|e| not_json(serde::de::Error::custom(e)))?;
    let valid_json = || serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    if !text.trim_start().starts_with('{') && valid_json() {
        return Err("the body must be a JSON object".into());
    }
    let root: Root = serde_json::from_str(text).map_err(|e| {
        if e.is_data() && valid_json() {
            "the body must be a JSON object with each member once".to_string()
        } else {
            not_json(e)
        }
    })?;
    let event_type = match root
        .event_type
        .map(|r| serde_json::from_str::<Value>(r.get()))
    {
        Some(Ok(Value::String(t))) if !t.is_empty() => t,
        _ => return Err("`type` is required and must be a non-empty string".into()),
    };
    if !SYNCED_TYPES.contains(&event_type.as_str()) {
        return Ok(Parsed::Ignored { event_type });
    }
    let occurred_at = match root.occurred_at.map(|r| r.get()) {
        None | Some("null") => None,
        Some(raw) => Some(
            serde_json::from_str::<&str>(raw)
                .ok()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .ok_or_else(|| "`occurredAt` must be an RFC 3339 date-time".to_string())?
                .with_timezone(&Utc),
        ),
    };
    let data = match root.data {
        Some(raw) if raw.get().starts_with('{') => raw.get(),
        _ => return Err("`data` is required and must be an object".into()),
    };
    let (client_id, data) = client_data_text(data)?;
    Ok(Parsed::Client(Box::new(ClientEvent {
        event_type,
        client_id,
        occurred_at,
        data,
    })))
}

/// As [`client_data`], from the object's JSON text.
fn client_data_text(data: &str) -> Result<(ClientId, ClientData), String> {
    // A bad clientId is reported as such, before any other field's type.
    let data: ClientData = match serde_json::from_str(data) {
        Ok(data) => data,
        Err(e) => {
            #[derive(Deserialize)]
            struct IdOnly {
                #[serde(rename = "clientId", default)]
                client_id: Option<Value>,
            }
            if let Ok(IdOnly { client_id }) = serde_json::from_str(data) {
                ClientId::parse(client_id.as_ref().unwrap_or(&Value::Null))?;
            }
            return Err(wrong_type(e));
        }
    };
    let client_id = ClientId::parse(data.raw_client_id.as_ref().unwrap_or(&Value::Null))?;
    Ok((client_id, data))
}

fn wrong_type(e: serde_json::Error) -> String {
    format!(
        "`data` has a field of the wrong type: {}",
        without_values(&e.to_string())
    )
}

/// Checks a client object (the `data` of an event): its id and its field types.
pub fn client_data(data: serde_json::Map<String, Value>) -> Result<(ClientId, ClientData), String> {
    let client_id = ClientId::parse(data.get("clientId").unwrap_or(&Value::Null))?;
    let data: ClientData = serde_json::from_value(Value::Object(data)).map_err(wrong_type)?;
    Ok((client_id, data))
}

/// A serde message with every quoted value blanked: `invalid type: string
/// "+357…", expected a sequence` becomes `invalid type: string "…", expected a
/// sequence`. Such messages reach the sender and the logs, and a value there
/// can be a client's personal data.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' || c == '`' {
            let mut escaped = false;
            for d in chars.by_ref() {
                if d == c && !escaped {
                    break;
                }
                escaped = d == '\\' && !escaped;
            }
            out.push('…');
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn unknown_fields_are_ignored() {
        let ev = client(
            r#"{"type":"client.created","extra":1,"data":{"clientId":7,"nickname":"J","info":{"title":"Dr"}}}"#,
        );
        assert_eq!(ev.client_id.as_str(), "7");
    }
}
