//! Record writes: single-record create, update and upsert, and sObject
//! Collections calls of up to 200 records, with the assignment and
//! duplicate-rule headers each write needs.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::errors::{self, Failure, Op};
use super::{is_record_id, urlencode, Credentials, Salesforce, Written};

#[derive(Deserialize)]
struct SaveAnswer {
    id: String,
    #[serde(default)]
    created: Option<bool>,
}

impl Salesforce {
    /// One sObject Collections call for up to [`MAX_BATCH`] records, in order;
    /// each record's outcome comes back on its own (`allOrNone: false`).
    pub async fn collection(
        &self,
        c: &Credentials,
        batch: &Batch,
        records: Vec<Map<String, Value>>,
        save: SaveOptions,
    ) -> Result<Vec<Result<Written, Failure>>, Failure> {
        assert!(
            records.len() <= MAX_BATCH,
            "a collections call carries at most 200 records"
        );
        let n = records.len();
        let records: Vec<Value> = records
            .into_iter()
            .map(|mut r| {
                r.insert("attributes".into(), serde_json::json!({"type": "Lead"}));
                Value::Object(r)
            })
            .collect();
        let mut body = Map::new();
        body.insert("allOrNone".into(), Value::Bool(false));
        body.insert("records".into(), Value::Array(records));
        let (op, method, path) = match batch {
            Batch::Create => (Op::Create, Method::POST, "composite/sobjects".to_string()),
            Batch::Update => (Op::Update, Method::PATCH, "composite/sobjects".to_string()),
            Batch::Upsert(f) => (
                Op::Upsert,
                Method::PATCH,
                format!("composite/sobjects/Lead/{}", urlencode(f)),
            ),
        };
        let (_, bytes) = self
            .send(c, op, method, &path, Some(&body), Some(save))
            .await?;
        let answers: Vec<RecordAnswer> = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::transient(
                errors::codes::BAD_COLLECTION_ANSWER,
                format!("unreadable collections answer: {e}"),
            )
        })?;
        if answers.len() != n {
            return Err(Failure::transient(
                errors::codes::BAD_COLLECTION_ANSWER,
                format!("{} results for {n} records", answers.len()),
            ));
        }
        Ok(answers
            .into_iter()
            .map(|a| match (a.success, a.id) {
                (true, Some(id)) => checked_id(&id).map(|()| Written {
                    id,
                    created: a.created.unwrap_or(*batch == Batch::Create),
                }),
                _ => Err(match a.errors.first() {
                    Some(e) => errors::classify_record(op, e),
                    None => Failure::Permanent {
                        code: errors::codes::UNKNOWN.into(),
                        message: "failed without an error".into(),
                    },
                }),
            })
            .collect())
    }

    /// `POST sobjects/Lead/` → 201 with the new id.
    pub async fn create(
        &self,
        c: &Credentials,
        body: &Map<String, Value>,
        save: SaveOptions,
    ) -> Result<Written, Failure> {
        let (_, bytes) = self
            .send(
                c,
                Op::Create,
                Method::POST,
                "sobjects/Lead/",
                Some(body),
                Some(save),
            )
            .await?;
        let answer = save_answer(&bytes)?;
        Ok(Written {
            id: answer.id,
            created: true,
        })
    }

    /// `PATCH sobjects/Lead/{id}` → 204.
    pub async fn update(
        &self,
        c: &Credentials,
        id: &str,
        body: &Map<String, Value>,
        save: SaveOptions,
    ) -> Result<Written, Failure> {
        let path = format!("sobjects/Lead/{}", urlencode(id));
        self.send(c, Op::Update, Method::PATCH, &path, Some(body), Some(save))
            .await?;
        Ok(Written {
            id: id.to_string(),
            created: false,
        })
    }

    /// `PATCH sobjects/Lead/{field}/{value}` → 201 created or 200 updated.
    pub async fn upsert(
        &self,
        c: &Credentials,
        field: &str,
        value: &str,
        body: &Map<String, Value>,
        save: SaveOptions,
    ) -> Result<Written, Failure> {
        let path = format!("sobjects/Lead/{}/{}", urlencode(field), urlencode(value));
        let (status, bytes) = self
            .send(c, Op::Upsert, Method::PATCH, &path, Some(body), Some(save))
            .await?;
        let answer = save_answer(&bytes)?;
        Ok(Written {
            id: answer.id,
            created: answer.created.unwrap_or(status == StatusCode::CREATED),
        })
    }
}

/// Request headers of a write that steer the org's own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveOptions {
    /// `Sforce-Auto-Assign: TRUE` runs the org's Lead assignment rule; `FALSE`
    /// keeps the owner. Salesforce's default, when the header is absent, is TRUE.
    pub assign: bool,
    /// `Sforce-Duplicate-Rule-Header: allowSave=true`: an alert duplicate rule
    /// lets the save through (a block rule never does). Sent from v52.0.
    pub allow_duplicates: bool,
}

impl SaveOptions {
    /// A later write of a Lead leadbridge already has: never reassigned, and
    /// an edit is not held up by an alert rule.
    pub const UPDATE: SaveOptions = SaveOptions {
        assign: false,
        allow_duplicates: true,
    };
}

/// The API version's major number: `v62.0` → 62.
pub fn api_major(version: &str) -> u32 {
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The first API version that takes `Sforce-Duplicate-Rule-Header`.
pub const DUPLICATE_HEADER_SINCE: u32 = 52;

/// Which sObject Collections call a batch is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Batch {
    /// `POST composite/sobjects`.
    Create,
    /// `PATCH composite/sobjects`; each record carries its `id`.
    Update,
    /// `PATCH composite/sobjects/Lead/{field}`; each record carries `field`.
    Upsert(String),
}

/// The most records one collections call may carry.
pub const MAX_BATCH: usize = 200;

#[derive(Deserialize)]
struct RecordAnswer {
    #[serde(default)]
    id: Option<String>,
    success: bool,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<errors::RecordError>,
}

fn save_answer(bytes: &[u8]) -> Result<SaveAnswer, Failure> {
    let answer: SaveAnswer = serde_json::from_slice(bytes).map_err(|e| {
        Failure::transient(
            errors::codes::BAD_SAVE_ANSWER,
            format!("unreadable answer to a write: {e}"),
        )
    })?;
    checked_id(&answer.id)?;
    Ok(answer)
}

/// A record id from a write's answer, checked where it enters: it is stored
/// and later put in a URL path (`sobjects/Lead/{id}`), so anything but 15 or
/// 18 letters and digits is a broken answer, not an id.
fn checked_id(id: &str) -> Result<(), Failure> {
    if is_record_id(id) {
        Ok(())
    } else {
        Err(Failure::transient(
            errors::codes::BAD_SAVE_ANSWER,
            "the answer to a write named no valid record id",
        ))
    }
}
