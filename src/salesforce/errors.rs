//! The one place where Salesforce's answers are sorted into what to do next.

use serde::Deserialize;

/// Error codes the service acts on, in one place: Salesforce's own
/// (`errorCode` / `statusCode`), then the ones leadbridge records for
/// failures that have no Salesforce code.
pub mod codes {
    pub const INVALID_SESSION_ID: &str = "INVALID_SESSION_ID";
    pub const UNABLE_TO_LOCK_ROW: &str = "UNABLE_TO_LOCK_ROW";
    pub const UNKNOWN_EXCEPTION: &str = "UNKNOWN_EXCEPTION";
    pub const SERVER_UNAVAILABLE: &str = "SERVER_UNAVAILABLE";
    pub const REQUEST_LIMIT_EXCEEDED: &str = "REQUEST_LIMIT_EXCEEDED";
    pub const CANNOT_UPDATE_CONVERTED_LEAD: &str = "CANNOT_UPDATE_CONVERTED_LEAD";
    pub const ENTITY_IS_DELETED: &str = "ENTITY_IS_DELETED";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const INVALID_EMAIL_ADDRESS: &str = "INVALID_EMAIL_ADDRESS";
    pub const STRING_TOO_LONG: &str = "STRING_TOO_LONG";
    pub const INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: &str =
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST";
    pub const FIELD_INTEGRITY_EXCEPTION: &str = "FIELD_INTEGRITY_EXCEPTION";
    pub const INVALID_FIELD: &str = "INVALID_FIELD";
    pub const INVALID_FIELD_FOR_INSERT_UPDATE: &str = "INVALID_FIELD_FOR_INSERT_UPDATE";
    pub const REQUIRED_FIELD_MISSING: &str = "REQUIRED_FIELD_MISSING";
    pub const MULTIPLE_CHOICES: &str = "MULTIPLE_CHOICES";
    pub const DUPLICATES_DETECTED: &str = "DUPLICATES_DETECTED";
    /// An Apex trigger failed the save (its message says why).
    pub const CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY: &str = "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY";
    /// A record-triggered flow failed the save.
    pub const CANNOT_EXECUTE_FLOW_TRIGGER: &str = "CANNOT_EXECUTE_FLOW_TRIGGER";
    pub const INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE: &str =
        "INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE";
    // leadbridge's own
    pub const TIMEOUT: &str = "TIMEOUT";
    /// leadbridge's own database could not be read in the middle of a write.
    pub const STORE_UNAVAILABLE: &str = "STORE_UNAVAILABLE";
    pub const CONNECTION_ERROR: &str = "CONNECTION_ERROR";
    pub const CONFIGURATION: &str = "CONFIGURATION";
    pub const TOO_MANY_REJECTIONS: &str = "TOO_MANY_REJECTIONS";
    pub const BAD_TOKEN_ANSWER: &str = "BAD_TOKEN_ANSWER";
    pub const BAD_COLLECTION_ANSWER: &str = "BAD_COLLECTION_ANSWER";
    pub const BAD_DESCRIBE_ANSWER: &str = "BAD_DESCRIBE_ANSWER";
    pub const BAD_SAVE_ANSWER: &str = "BAD_SAVE_ANSWER";
    pub const BAD_QUERY_ANSWER: &str = "BAD_QUERY_ANSWER";
    pub const UNKNOWN: &str = "UNKNOWN";
    pub const BAD_INSTANCE_URL: &str = "BAD_INSTANCE_URL";
    /// An answer larger than leadbridge reads for its kind of call.
    pub const ANSWER_TOO_LARGE: &str = "ANSWER_TOO_LARGE";
}

/// Which call failed; some codes mean different things per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Token,
    Describe,
    Create,
    Update,
    Upsert,
    /// `queryAll`: where a merged Lead went.
    Query,
}

/// A failed Salesforce call, by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Platform trouble, a locked row or the concurrent-request limit: back off and retry.
    #[error("{code}: {message}")]
    Transient { code: String, message: String },
    /// The org's daily API allocation is spent: pause the connection.
    #[error("REQUEST_LIMIT_EXCEEDED: {message}")]
    DailyLimit { message: String },
    /// The access token expired or was revoked: fetch a new one, retry once.
    #[error("INVALID_SESSION_ID: the access token expired or was revoked")]
    SessionExpired,
    /// These fields of the record were rejected: send it again without them.
    #[error("{code}: {message}")]
    RejectedFields {
        fields: Vec<String>,
        code: String,
        message: String,
    },
    /// The Lead was deleted in Salesforce: create it again.
    #[error("{code}: {message}")]
    Deleted { code: String, message: String },
    /// The Lead was converted: stop updating it.
    #[error("CANNOT_UPDATE_CONVERTED_LEAD: {message}")]
    Converted { message: String },
    /// The data, the org's rules or the settings are wrong: retrying as is won't help.
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
    /// The token endpoint refused the connection's credentials.
    #[error("{error}: {description}")]
    Auth { error: String, description: String },
    /// The org's duplicate rule matched other Leads. A single-record answer
    /// names them (`duplicateResult`); a collections result does not.
    #[error("DUPLICATES_DETECTED: {message}")]
    Duplicates {
        /// The matched Lead Ids (empty when the answer did not say).
        matches: Vec<String>,
        /// False for a block rule; None when the answer did not say.
        allow_save: Option<bool>,
        /// The duplicate rule's name, when given.
        rule: Option<String>,
        message: String,
    },
}

impl Failure {
    /// Salesforce's code (`errorCode`, `statusCode` or OAuth `error`).
    pub fn code(&self) -> &str {
        match self {
            Failure::Transient { code, .. }
            | Failure::RejectedFields { code, .. }
            | Failure::Deleted { code, .. }
            | Failure::Permanent { code, .. } => code,
            Failure::DailyLimit { .. } => codes::REQUEST_LIMIT_EXCEEDED,
            Failure::SessionExpired => codes::INVALID_SESSION_ID,
            Failure::Converted { .. } => codes::CANNOT_UPDATE_CONVERTED_LEAD,
            Failure::Auth { error, .. } => error,
            Failure::Duplicates { .. } => codes::DUPLICATES_DETECTED,
        }
    }

    /// Salesforce's message, in plain words where it is an OAuth error.
    pub fn message(&self) -> String {
        match self {
            Failure::Auth { error, description } => {
                format!("{description} — {}", oauth_hint(error, description))
            }
            Failure::Transient { message, .. }
            | Failure::DailyLimit { message }
            | Failure::RejectedFields { message, .. }
            | Failure::Deleted { message, .. }
            | Failure::Converted { message }
            | Failure::Permanent { message, .. }
            | Failure::Duplicates { message, .. } => message.clone(),
            Failure::SessionExpired => "the access token expired or was revoked".into(),
        }
    }

    /// The org's automation (a trigger or a flow) failed the save: the same
    /// records may pass in a smaller call, so a batch is split before blame.
    pub fn is_automation(&self) -> bool {
        matches!(self, Failure::Permanent { code, .. } if AUTOMATION_CODES.contains(&code.as_str()))
    }

    /// The same failure with every text the org sent made storable and
    /// bounded ([`from_org`]), and only real record ids among the matches:
    /// what Salesforce (or whatever answers in its place) sends is stored
    /// on the client and shown, and PostgreSQL refuses a NUL in text.
    pub fn cleaned(self) -> Self {
        let code = |s: String| from_org(&s, MAX_CODE);
        let message = |s: String| from_org(&s, MAX_MESSAGE);
        match self {
            Failure::Transient {
                code: c,
                message: m,
            } => Failure::Transient {
                code: code(c),
                message: message(m),
            },
            Failure::DailyLimit { message: m } => Failure::DailyLimit {
                message: message(m),
            },
            Failure::SessionExpired => Failure::SessionExpired,
            Failure::RejectedFields {
                fields,
                code: c,
                message: m,
            } => Failure::RejectedFields {
                fields: fields
                    .iter()
                    .take(MAX_FIELDS)
                    .map(|f| from_org(f, MAX_CODE))
                    .collect(),
                code: code(c),
                message: message(m),
            },
            Failure::Deleted {
                code: c,
                message: m,
            } => Failure::Deleted {
                code: code(c),
                message: message(m),
            },
            Failure::Converted { message: m } => Failure::Converted {
                message: message(m),
            },
            Failure::Permanent {
                code: c,
                message: m,
            } => Failure::Permanent {
                code: code(c),
                message: message(m),
            },
            Failure::Auth { error, description } => Failure::Auth {
                error: code(error),
                description: message(description),
            },
            Failure::Duplicates {
                matches,
                allow_save,
                rule,
                message: m,
            } => Failure::Duplicates {
                matches: matches
                    .into_iter()
                    .filter(|id| super::is_record_id(id))
                    .take(MAX_FIELDS)
                    .collect(),
                allow_save,
                rule: rule.map(|r| from_org(&r, MAX_CODE)),
                message: message(m),
            },
        }
    }

    pub(crate) fn transient(code: &str, message: impl Into<String>) -> Self {
        Failure::Transient {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The longest code, field or rule name kept from an org's answer, in characters.
const MAX_CODE: usize = 100;
/// The longest message kept from an org's answer, in characters.
const MAX_MESSAGE: usize = 2_000;
/// The most field names or matched ids kept from one error.
const MAX_FIELDS: usize = 50;

/// Text from an org's answer as it may be stored and shown: control
/// characters other than line breaks and tabs (a NUL above all) become
/// U+FFFD, and it is cut at `max` characters (with `…`).
pub fn from_org(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// What an operator should check for each OAuth error.
pub fn oauth_hint(error: &str, description: &str) -> &'static str {
    match error {
        "invalid_client_id" => "the consumer key is not known to this org: check consumerKey and domainUrl",
        "invalid_client" => "the consumer secret does not match the consumer key: check consumerSecret",
        "invalid_grant" if description.contains("no client credentials user") => {
            "the External Client App has no run-as user: set one under its OAuth policies (Client Credentials Flow)"
        }
        "invalid_grant" if description.contains("not supported on this domain") => {
            "use the org's My Domain URL (https://{domain}.my.salesforce.com), not login.salesforce.com"
        }
        "invalid_grant" => "Salesforce refused the grant: check the app's OAuth policies and the run-as user",
        "unsupported_grant_type" => "the Client Credentials Flow is not enabled on the External Client App",
        _ => "Salesforce refused the credentials",
    }
}

/// One error of a single-record call (`errorCode`) or of a composite result (`statusCode`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    #[serde(alias = "statusCode")]
    pub error_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
    /// With `DUPLICATES_DETECTED`: the rule and the records it matched.
    #[serde(default)]
    pub duplicate_result: Option<DuplicateResult>,
}

/// Salesforce's `DuplicateResult`, as far as leadbridge reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DuplicateResult {
    pub allow_save: Option<bool>,
    pub duplicate_rule: Option<String>,
    #[serde(default)]
    pub match_results: Vec<MatchResult>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchResult {
    #[serde(default)]
    pub match_records: Vec<MatchRecord>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MatchRecord {
    pub record: MatchedRecord,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MatchedRecord {
    #[serde(rename = "Id")]
    pub id: String,
}

/// Codes where Salesforce names the rejected fields and the rest of the record is fine.
const FIELD_CODES: [&str; 6] = [
    codes::INVALID_EMAIL_ADDRESS,
    codes::STRING_TOO_LONG,
    codes::INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,
    codes::FIELD_INTEGRITY_EXCEPTION,
    codes::INVALID_FIELD,
    codes::INVALID_FIELD_FOR_INSERT_UPDATE,
];

/// Codes of a save failed by the org's triggers and flows.
const AUTOMATION_CODES: [&str; 2] = [
    codes::CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY,
    codes::CANNOT_EXECUTE_FLOW_TRIGGER,
];

/// Sorts one record-level error (single-record body or composite result).
pub fn classify_record(op: Op, err: &RecordError) -> Failure {
    record_failure(op, err).cleaned()
}

fn record_failure(op: Op, err: &RecordError) -> Failure {
    let code = err.error_code.as_str();
    let message = err.message.clone();
    match code {
        codes::INVALID_SESSION_ID => Failure::SessionExpired,
        codes::UNABLE_TO_LOCK_ROW
        | codes::UNKNOWN_EXCEPTION
        | codes::SERVER_UNAVAILABLE
        | codes::INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE => Failure::Transient {
            code: code.into(),
            message,
        },
        // A trigger or flow that met a locked row says so only in its message.
        c if AUTOMATION_CODES.contains(&c) && message.contains(codes::UNABLE_TO_LOCK_ROW) => {
            Failure::Transient {
                code: code.into(),
                message,
            }
        }
        codes::REQUEST_LIMIT_EXCEEDED if message.contains("TotalRequests") => {
            Failure::DailyLimit { message }
        }
        codes::REQUEST_LIMIT_EXCEEDED => Failure::Transient {
            code: code.into(),
            message,
        },
        codes::CANNOT_UPDATE_CONVERTED_LEAD => Failure::Converted { message },
        codes::DUPLICATES_DETECTED => {
            let result = err.duplicate_result.as_ref();
            let mut matches: Vec<String> = result
                .map(|d| d.match_results.iter())
                .into_iter()
                .flatten()
                .flat_map(|m| m.match_records.iter().map(|r| r.record.id.clone()))
                .collect();
            matches.sort();
            matches.dedup();
            Failure::Duplicates {
                matches,
                allow_save: result.and_then(|d| d.allow_save),
                rule: result.and_then(|d| d.duplicate_rule.clone()),
                message,
            }
        }
        codes::ENTITY_IS_DELETED => Failure::Deleted {
            code: code.into(),
            message,
        },
        codes::NOT_FOUND if op == Op::Update => Failure::Deleted {
            code: code.into(),
            message,
        },
        c if FIELD_CODES.contains(&c) => {
            let mut fields = err.fields.clone();
            if fields.is_empty() && c == codes::INVALID_FIELD {
                fields.extend(no_such_column(&message));
            }
            if fields.is_empty() {
                Failure::Permanent {
                    code: code.into(),
                    message,
                }
            } else {
                Failure::RejectedFields {
                    fields,
                    code: code.into(),
                    message,
                }
            }
        }
        _ => Failure::Permanent {
            code: code.into(),
            message,
        },
    }
}

/// `No such column 'MiddleName' on sobject of type Lead` → `MiddleName`.
fn no_such_column(message: &str) -> Option<String> {
    let rest = message.split("No such column '").nth(1)?;
    Some(rest.split('\'').next()?.to_string())
}

/// Sorts a failed REST answer by status and body.
pub fn classify(op: Op, status: u16, body: &[u8]) -> Failure {
    rest_failure(op, status, body).cleaned()
}

fn rest_failure(op: Op, status: u16, body: &[u8]) -> Failure {
    let errors: Vec<RecordError> = serde_json::from_slice(body).unwrap_or_default();
    if let Some(first) = errors.first() {
        let failure = record_failure(op, first);
        return match (op, status, failure) {
            (Op::Upsert, 404, Failure::Permanent { code, .. }) if code == codes::NOT_FOUND => {
                Failure::Permanent {
                    code,
                    message: "the externalIdField is not an External ID field of Lead in this org"
                        .into(),
                }
            }
            (_, s, Failure::Permanent { code, message }) if s >= 500 => {
                Failure::Transient { code, message }
            }
            (_, _, f) => f,
        };
    }
    match status {
        401 => Failure::SessionExpired,
        300 if op == Op::Upsert => Failure::Permanent {
            code: codes::MULTIPLE_CHOICES.into(),
            message: "several Leads have this external id".into(),
        },
        404 if op == Op::Update => Failure::Deleted {
            code: codes::NOT_FOUND.into(),
            message: "the Lead does not exist".into(),
        },
        s if s >= 500 || s == 429 => Failure::transient(&format!("HTTP_{s}"), snippet(body)),
        s => Failure::Permanent {
            code: format!("HTTP_{s}"),
            message: snippet(body),
        },
    }
}

/// Sorts a failed token request.
pub fn classify_oauth(status: u16, body: &[u8]) -> Failure {
    oauth_failure(status, body).cleaned()
}

fn oauth_failure(status: u16, body: &[u8]) -> Failure {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: String,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) if status < 500 => Failure::Auth {
            error: e.error,
            description: e.error_description,
        },
        _ if status >= 500 || status == 429 => {
            Failure::transient(&format!("HTTP_{status}"), snippet(body))
        }
        _ => Failure::Auth {
            error: format!("http_{status}"),
            description: snippet(body),
        },
    }
}

/// A short, printable part of an unexpected body.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(200).collect();
    if text.is_empty() {
        "no body".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_from_an_org_loses_its_control_characters_and_its_excess() {
        use super::from_org;
        assert_eq!(
            from_org("a\u{0}b\nc\td\u{7}", 100),
            "a\u{FFFD}b\nc\td\u{FFFD}"
        );
        assert_eq!(from_org("héllo wörld", 5), "héllo…");
        assert_eq!(from_org("short", 5), "short");
        let failure = super::classify(
            super::Op::Create,
            400,
            format!(
                r#"[{{"errorCode":"X\u0000Y","message":"{}","fields":["F\u0000"]}}]"#,
                "m".repeat(5_000)
            )
            .as_bytes(),
        );
        assert!(!failure.code().contains('\u{0}'));
        assert!(failure.message().chars().count() <= 2_001);
    }

    use super::*;

    fn one(code: &str, message: &str, fields: &[&str]) -> Vec<u8> {
        serde_json::json!([{"message": message, "errorCode": code, "fields": fields}])
            .to_string()
            .into_bytes()
    }

    #[test]
    fn each_documented_code_gets_its_action() {
        use Failure::*;
        type Case = (Op, u16, Vec<u8>, fn(&Failure) -> bool);
        let cases: Vec<Case> = vec![
            (Op::Update, 401, one("INVALID_SESSION_ID", "Session expired or invalid", &[]), |f| *f == SessionExpired),
            (Op::Create, 403, one("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", &[]), |f| matches!(f, DailyLimit { .. })),
            (Op::Create, 403, one("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.", &[]), |f| matches!(f, Transient { .. })),
            (Op::Create, 503, b"<html>Service Unavailable</html>".to_vec(), |f| matches!(f, Transient { code, .. } if code == "HTTP_503")),
            (Op::Create, 500, one("UNKNOWN_EXCEPTION", "An unexpected error occurred", &[]), |f| matches!(f, Transient { .. })),
            (Op::Update, 400, one("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", &[]), |f| matches!(f, Transient { .. })),
            (Op::Update, 400, one("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "LeadTrigger: execution of AfterUpdate caused by: System.DmlException: Update failed. first error: UNABLE_TO_LOCK_ROW, unable to obtain exclusive access to this record: []", &[]), |f| matches!(f, Transient { .. })),
            (Op::Create, 400, one("CANNOT_EXECUTE_FLOW_TRIGGER", "A flow trigger failed to execute the flow. Error ID: UNABLE_TO_LOCK_ROW: unable to obtain exclusive access", &[]), |f| matches!(f, Transient { .. })),
            (Op::Create, 400, one("INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE", "Updates can't be made during maintenance.", &[]), |f| matches!(f, Transient { .. })),
            (Op::Create, 400, one("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "LeadTrigger: System.LimitException: Too many SOQL queries: 101", &[]), |f| f.is_automation()),
            (Op::Create, 400, one("CANNOT_EXECUTE_FLOW_TRIGGER", "The flow failed: Region__c is required", &[]), |f| f.is_automation()),
            (Op::Create, 400, one("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Phone must start with +", &[]), |f| !f.is_automation()),
            (Op::Create, 400, one("INVALID_EMAIL_ADDRESS", "Email: invalid email address: x", &["Email"]), |f| matches!(f, RejectedFields { fields, .. } if fields == &["Email"])),
            (Op::Create, 400, one("STRING_TOO_LONG", "City: data value too large", &["City"]), |f| matches!(f, RejectedFields { .. })),
            (Op::Create, 400, one("FIELD_INTEGRITY_EXCEPTION", "There's a problem with this country", &["CountryCode"]), |f| matches!(f, RejectedFields { .. })),
            (Op::Create, 400, one("INVALID_FIELD", "No such column 'MiddleName' on sobject of type Lead", &[]), |f| matches!(f, RejectedFields { fields, .. } if fields == &["MiddleName"])),
            (Op::Create, 400, one("REQUIRED_FIELD_MISSING", "Required fields are missing: [Company]", &["Company"]), |f| matches!(f, Permanent { .. })),
            (Op::Create, 400, one("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Phone must start with +", &[]), |f| matches!(f, Permanent { .. })),
            (Op::Create, 400, one("DUPLICATES_DETECTED", "Use one of these records?", &[]), |f| matches!(f, Duplicates { matches, allow_save: None, .. } if matches.is_empty())),
            (Op::Update, 404, one("NOT_FOUND", "The requested resource does not exist", &[]), |f| matches!(f, Deleted { .. })),
            (Op::Update, 404, one("ENTITY_IS_DELETED", "entity is deleted", &[]), |f| matches!(f, Deleted { .. })),
            (Op::Upsert, 404, one("NOT_FOUND", "Provided external ID field does not exist or is not accessible", &[]), |f| matches!(f, Permanent { .. })),
            (Op::Update, 400, one("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", &[]), |f| matches!(f, Converted { .. })),
            (Op::Upsert, 300, b"[\"/services/data/v62.0/sobjects/Lead/00Q1\",\"/services/data/v62.0/sobjects/Lead/00Q2\"]".to_vec(), |f| matches!(f, Permanent { code, .. } if code == "MULTIPLE_CHOICES")),
        ];
        for (op, status, body, check) in cases {
            let got = classify(op, status, &body);
            assert!(
                check(&got),
                "{op:?} {status} {} → {got:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn composite_results_use_status_code_and_classify_the_same() {
        let err: RecordError = serde_json::from_str(r#"{"statusCode":"INVALID_EMAIL_ADDRESS","message":"Email: invalid","fields":["Email"]}"#).unwrap();
        assert!(matches!(
            classify_record(Op::Create, &err),
            Failure::RejectedFields { .. }
        ));
    }

    #[test]
    fn oauth_errors_are_named_in_plain_words() {
        for (body, error, hint) in [
            (
                r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#,
                "invalid_client_id",
                "consumer key",
            ),
            (
                r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
                "invalid_client",
                "consumer secret",
            ),
            (
                r#"{"error":"invalid_grant","error_description":"no client credentials user enabled"}"#,
                "invalid_grant",
                "run-as user",
            ),
            (
                r#"{"error":"unsupported_grant_type","error_description":"grant type not supported"}"#,
                "unsupported_grant_type",
                "not enabled",
            ),
        ] {
            let f = classify_oauth(400, body.as_bytes());
            assert_eq!(f.code(), error);
            assert!(f.message().contains(hint), "{}", f.message());
        }
        assert!(matches!(
            classify_oauth(503, b"down"),
            Failure::Transient { .. }
        ));
    }
}
