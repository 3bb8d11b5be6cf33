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
    Ok(Option::<TextOrNumber<true>>::deserialize(d)?.and_then(|t| t.0))
}

/// A JSON string or number, its text kept when `KEEP`; any other value is
/// refused with words that name it.
struct TextOrNumber<const KEEP: bool>(Option<String>);

impl<'de, const KEEP: bool> Deserialize<'de> for TextOrNumber<KEEP> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde::de::{Error, MapAccess, SeqAccess, Visitor};
        struct V<const KEEP: bool>;
        fn found<E: Error>(other: Value) -> E {
            E::custom(format!("expected a string or a number, found {other}"))
        }
        impl<'de, const KEEP: bool> Visitor<'de> for V<KEEP> {
            type Value = TextOrNumber<KEEP>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TextOrNumber(KEEP.then(|| v.to_owned())))
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TextOrNumber(KEEP.then(|| v.to_string())))
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(TextOrNumber(KEEP.then(|| v.to_string())))
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(TextOrNumber(KEEP.then(|| Value::from(v).to_string())))
            }
            fn visit_bool<E: Error>(self, v: bool) -> Result<Self::Value, E> {
                Err(found(Value::Bool(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Err(found(Value::deserialize(SeqAccessDeserializer::new(seq))?))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Err(found(Value::deserialize(MapAccessDeserializer::new(map))?))
            }
        }
        d.deserialize_any(V::<KEEP>)
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

/// A client event's type, client and time, with its `data` checked: what
/// the webhook path needs to store it. `data` itself stays in the stored
/// body until the worker reads it ([`parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub event_type: String,
    pub client_id: ClientId,
    /// `occurredAt` as sent, if it was.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// What [`check`] makes of a body.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// A valid event of a type we do not sync.
    Ignored { event_type: String },
    /// A client event to store.
    Client(Head),
}

/// Checks a webhook body that has already passed its signature check as
/// [`parse`] does (it accepts and refuses the same bodies, for the same
/// reasons), without building `data`: its members are read into types that
/// hold nothing. This runs for every webhook; the worker parses the stored
/// body later.
pub fn check(body: &[u8]) -> Result<Checked, String> {
    if let Some(checked) = std::str::from_utf8(body).ok().and_then(check_in_one_pass) {
        return Ok(checked);
    }
    let (event_type, occurred_at, data) = match head(body)? {
        Root::Ignored(event_type) => return Ok(Checked::Ignored { event_type }),
        Root::Client {
            event_type,
            occurred_at,
            data,
        } => (event_type, occurred_at, data),
    };
    let client_id = read_data::<shape::Data>(data)?.0;
    Ok(Checked::Client(Head {
        event_type,
        client_id,
        occurred_at,
    }))
}

/// [`check`]'s single pass over a body: `None` as soon as anything is
/// unusual (a member named twice, a value [`check`] would refuse), and the
/// two passes then give the verdict, so what this accepts the two passes
/// accept too, alike. `data` is checked as a client's as it comes, unless
/// `type` came first and is not synced (then it is only skipped): when its
/// type turns out to be ignored, the check only showed that it is JSON.
fn check_in_one_pass(text: &str) -> Option<Checked> {
    use serde::de::value::MapAccessDeserializer;
    use serde::de::{DeserializeSeed, Error, IgnoredAny, MapAccess, Visitor};
    use std::borrow::Cow;

    struct Top;
    impl<'de> Visitor<'de> for Top {
        type Value = Checked;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a client event")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
            let unusual = || A::Error::custom("left to the two passes");
            let synced = |t: &String| SYNCED_TYPES.contains(&t.as_str());
            let mut event_type: Option<String> = None;
            let mut occurred_at: Option<Option<&'de RawValue>> = None;
            // None: no `data` yet; Some(None): skipped (an ignored type's).
            let mut client_id: Option<Option<ClientId>> = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                match key.as_ref() {
                    "type" if event_type.is_none() => {
                        event_type = Some(type_of(map.next_value()?).ok_or_else(unusual)?);
                    }
                    "occurredAt" if occurred_at.is_none() => {
                        occurred_at = Some(map.next_value()?);
                    }
                    "data" if client_id.is_none() => {
                        if event_type.as_ref().is_some_and(|t| !synced(t)) {
                            map.next_value::<IgnoredAny>()?;
                            client_id = Some(None);
                        } else {
                            let raw = map.next_value_seed(DataObject)?;
                            let id = ClientId::parse(raw.as_ref().unwrap_or(&Value::Null))
                                .map_err(|_| unusual())?;
                            client_id = Some(Some(id));
                        }
                    }
                    "type" | "occurredAt" | "data" => return Err(unusual()),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let event_type = event_type.ok_or_else(unusual)?;
            if !synced(&event_type) {
                return Ok(Checked::Ignored { event_type });
            }
            let occurred_at = occurred_at_of(occurred_at.flatten()).ok_or_else(unusual)?;
            Ok(Checked::Client(Head {
                event_type,
                client_id: client_id.flatten().ok_or_else(unusual)?,
                occurred_at,
            }))
        }
    }

    /// `data`, an object only, read into its [`shape`]; its raw `clientId`.
    struct DataObject;
    impl<'de> DeserializeSeed<'de> for DataObject {
        type Value = Option<Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for DataObject {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
            shape::Data::deserialize(MapAccessDeserializer::new(map)).map(|d| d.raw_client_id)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let checked = de.deserialize_map(Top).ok()?;
    de.end().ok()?;
    Some(checked)
}

/// Parses a webhook body that has already passed its signature check. The
/// body is read into its types directly, not through a JSON tree.
pub fn parse(body: &[u8]) -> Result<Parsed, String> {
    let (event_type, occurred_at, data) = match head(body)? {
        Root::Ignored(event_type) => return Ok(Parsed::Ignored { event_type }),
        Root::Client {
            event_type,
            occurred_at,
            data,
        } => (event_type, occurred_at, data),
    };
    let (client_id, data) = read_data::<ClientData>(data)?;
    Ok(Parsed::Client(Box::new(ClientEvent {
        event_type,
        client_id,
        occurred_at,
        data,
    })))
}

/// The top of a body, read: an ignored type, or a client event's type and
/// time with its `data` object still as text.
enum Root<'a> {
    Ignored(String),
    Client {
        event_type: String,
        occurred_at: Option<DateTime<Utc>>,
        data: &'a str,
    },
}

/// The top of a body: the three members read, each kept as its raw text
/// (every other member is skipped without being built).
#[derive(Deserialize)]
struct RawRoot<'a> {
    #[serde(rename = "type", default, borrow)]
    event_type: Option<&'a RawValue>,
    #[serde(rename = "occurredAt", default, borrow)]
    occurred_at: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

fn head(body: &[u8]) -> Result<Root<'_>, String> {
    let not_json = |e: serde_json::Error| format!("the body is not valid JSON: {e}");
    let text = std::str::from_utf8(body).map_err(|e| not_json(serde::de::Error::custom(e)))?;
    let valid_json = || serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    if !text.trim_start().starts_with('{') && valid_json() {
        return Err("the body must be a JSON object".into());
    }
    let root: RawRoot = serde_json::from_str(text).map_err(|e| {
        if e.is_data() && valid_json() {
            "the body must be a JSON object with each member once".to_string()
        } else {
            not_json(e)
        }
    })?;
    let event_type = root
        .event_type
        .and_then(type_of)
        .ok_or("`type` is required and must be a non-empty string")?;
    if !SYNCED_TYPES.contains(&event_type.as_str()) {
        return Ok(Root::Ignored(event_type));
    }
    let occurred_at =
        occurred_at_of(root.occurred_at).ok_or("`occurredAt` must be an RFC 3339 date-time")?;
    let data = match root.data {
        Some(raw) if raw.get().starts_with('{') => raw.get(),
        _ => return Err("`data` is required and must be an object".into()),
    };
    Ok(Root::Client {
        event_type,
        occurred_at,
        data,
    })
}

/// `type`'s raw value as an event type: a non-empty string, else `None`.
fn type_of(raw: &RawValue) -> Option<String> {
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::String(t)) if !t.is_empty() => Some(t),
        _ => None,
    }
}

/// `occurredAt`'s raw value: absent or `null` is no time; anything but an
/// RFC 3339 date-time is `None`.
fn occurred_at_of(raw: Option<&RawValue>) -> Option<Option<DateTime<Utc>>> {
    match raw.map(RawValue::get) {
        None | Some("null") => Some(None),
        Some(raw) => serde_json::from_str::<&str>(raw)
            .ok()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| Some(t.with_timezone(&Utc))),
    }
}

/// What `data` is read into: [`ClientData`], or its [`shape`] when it is
/// only checked.
trait DataReader<'a>: Deserialize<'a> {
    fn raw_client_id(&self) -> Option<&Value>;
}

impl DataReader<'_> for ClientData {
    fn raw_client_id(&self) -> Option<&Value> {
        self.raw_client_id.as_ref()
    }
}

/// Reads `data` (the object's JSON text) into `D`, with its client id.
fn read_data<'a, D: DataReader<'a>>(data: &'a str) -> Result<(ClientId, D), String> {
    // A bad clientId is reported as such, before any other field's type.
    let read: D = match serde_json::from_str(data) {
        Ok(read) => read,
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
    let client_id = ClientId::parse(read.raw_client_id().unwrap_or(&Value::Null))?;
    Ok((client_id, read))
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

/// `data` read only to be checked: the same members and types as
/// [`ClientData`] (each struct renamed after its twin, so that errors read
/// the same), in types that keep nothing but the client id, so that reading
/// allocates next to nothing (a `Vec` of zero-sized entries holds no memory).
mod shape {
    // The members are read to check their types, never used.
    #![allow(dead_code)]

    use serde::de::{Deserializer, Error, Visitor};
    use serde::Deserialize;
    use serde_json::Value;

    use super::TextOrNumber;

    #[derive(Deserialize)]
    #[serde(rename = "ClientData", rename_all = "camelCase")]
    pub(super) struct Data {
        #[serde(default, rename = "clientId")]
        pub(super) raw_client_id: Option<Value>,
        #[serde(default)]
        email: Option<Text>,
        #[serde(default)]
        info: Option<Info>,
        #[serde(default)]
        phones: Option<Vec<Phone>>,
        #[serde(default)]
        addresses: Option<Vec<Address>>,
        #[serde(default)]
        status: Option<Named>,
        #[serde(default, rename = "type")]
        client_type: Option<Named>,
        #[serde(default)]
        verification_level: Option<Named>,
    }

    impl super::DataReader<'_> for Data {
        fn raw_client_id(&self) -> Option<&Value> {
            self.raw_client_id.as_ref()
        }
    }

    #[derive(Deserialize)]
    #[serde(rename = "Info", rename_all = "camelCase")]
    struct Info {
        #[serde(default)]
        first_name: Option<Text>,
        #[serde(default)]
        middle_name: Option<Text>,
        #[serde(default)]
        last_name: Option<Text>,
    }

    #[derive(Deserialize)]
    #[serde(rename = "Phone", rename_all = "camelCase")]
    struct Phone {
        #[serde(default)]
        number: Option<TextOrNumber<false>>,
        #[serde(default)]
        confirmed: Option<bool>,
        #[serde(default)]
        update_time: Option<Time>,
    }

    #[derive(Deserialize)]
    #[serde(rename = "Address", rename_all = "camelCase")]
    struct Address {
        #[serde(default, rename = "type")]
        kind: Option<Text>,
        #[serde(default)]
        country: Option<Text>,
        #[serde(default)]
        country_code: Option<TextOrNumber<false>>,
        #[serde(default)]
        state: Option<Text>,
        #[serde(default)]
        city: Option<Text>,
        #[serde(default)]
        address: Option<Text>,
        #[serde(default)]
        postcode: Option<TextOrNumber<false>>,
        #[serde(default)]
        update_time: Option<Time>,
    }

    #[derive(Deserialize)]
    #[serde(rename = "Named")]
    struct Named {
        #[serde(default)]
        id: Option<Value>,
        #[serde(default)]
        name: Option<Text>,
    }

    /// A JSON string, as `String` reads it.
    struct Text;

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Text;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: Error>(self, _: &str) -> Result<Text, E> {
                    Ok(Text)
                }
            }
            d.deserialize_string(V)
        }
    }

    /// An RFC 3339 date-time, as chrono's `DateTime<Utc>` reads it.
    struct Time;

    impl<'de> Deserialize<'de> for Time {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Time;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an RFC 3339 formatted date and time string")
                }
                fn visit_str<E: Error>(self, v: &str) -> Result<Time, E> {
                    v.parse::<chrono::DateTime<chrono::FixedOffset>>()
                        .map(|_| Time)
                        .map_err(E::custom)
                }
            }
            d.deserialize_str(V)
        }
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
