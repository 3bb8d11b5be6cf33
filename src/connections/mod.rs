//! The operator's configuration of a Salesforce connection: the one place
//! where a create body or a JSON merge patch is checked and applied, naming
//! every bad field ([`apply`]); where each kind of edit is stored with the
//! caches it stales ([`edit`]); and the checks against the org ([`check`]).
//! The connection's types live in [`crate::domain`].

use serde::Serialize;
use serde_json::{Map, Value};

pub mod check;
pub mod edit;

use crate::crypto::MasterKey;
use crate::domain::{
    Connection, ConnectionName, DuplicatePolicy, FieldMapping, SignatureScheme, DEFAULT_API_VERSION,
};
use crate::salesforce::url::{domain_url, Rules};

/// Upsert answers carry `created` from this version on.
const MIN_API_MAJOR: u32 = 46;
/// Header of the hex scheme when `signatureHeader` is not set.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Signature";
const MAX_TEXT: usize = 255;

/// One field that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The JSON name of the field, e.g. `domainUrl` or `fieldMapping.status`.
    pub field: String,
    pub message: String,
}

/// Every refused field of one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every field of a create body; a patch takes the same (`name` and
/// `provider` only repeating their values). The OpenAPI schemas
/// `NewConnection` and `ConnectionSettings` list exactly these (tested).
pub const FIELDS: [&str; 15] = [
    "name",
    "provider",
    "caption",
    "domainUrl",
    "consumerKey",
    "consumerSecret",
    "company",
    "enabled",
    "fieldMapping",
    "externalIdField",
    "apiVersion",
    "signatureScheme",
    "signatureHeader",
    "assignOnCreate",
    "onDuplicate",
];

/// The keys of `fieldMapping` (the OpenAPI schema `FieldMapping`'s properties).
pub const MAPPING_FIELDS: [&str; 3] = ["status", "clientType", "verificationLevel"];

/// Output-only fields, refused in a request body.
const READ_ONLY: [&str; 5] = [
    "consumerSecretSet",
    "webhookUrl",
    "webhookSecret",
    "createdAt",
    "updatedAt",
];

/// Applies a create body or a JSON merge patch to `conn`. `creating` allows
/// `name` and `provider`; a patch may only repeat their current values.
/// Nothing of `conn` changes unless the whole body is valid.
pub fn apply(
    conn: &Connection,
    body: &Value,
    creating: bool,
    rules: Rules,
    key: &MasterKey,
) -> Result<Connection, FieldErrors> {
    let mut errs = FieldErrors::default();
    let Value::Object(map) = body else {
        errs.add("", "the body must be a JSON object");
        return Err(errs);
    };
    let mut next = conn.clone();
    for (field, value) in map {
        apply_field(&mut next, field, value, creating, rules, key, &mut errs);
    }
    if next.enabled {
        let missing = [
            ("domainUrl", next.domain_url.is_none()),
            ("consumerKey", next.consumer_key.is_none()),
            ("consumerSecret", next.consumer_secret_sealed.is_none()),
            ("company", next.company.is_none()),
        ];
        for (field, is_missing) in missing {
            if is_missing && !errs.0.iter().any(|e| e.field == field) {
                errs.add(field, "is required to enable the connection");
            }
        }
    }
    if errs.is_empty() {
        Ok(next)
    } else {
        Err(errs)
    }
}

fn apply_field(
    next: &mut Connection,
    field: &str,
    value: &Value,
    creating: bool,
    rules: Rules,
    key: &MasterKey,
    errs: &mut FieldErrors,
) {
    let result: Result<(), String> = match field {
        "name" => match value.as_str() {
            Some(v) if creating => ConnectionName::parse(v).map(|n| next.name = n),
            Some(v) if next.name == v => Ok(()),
            _ if creating => Err("must be a string".into()),
            _ => Err("cannot be changed".into()),
        },
        "provider" => match value.as_str() {
            Some("salesforce") => Ok(()),
            _ => Err("must be \"salesforce\"".into()),
        },
        "caption" => optional_text(value).map(|v| next.caption = v),
        "domainUrl" => optional(value, |s| domain_url(s, rules)).map(|v| next.domain_url = v),
        "consumerKey" => optional_text(value).map(|v| next.consumer_key = v),
        "consumerSecret" => optional_text(value).map(|v| {
            let context = next.consumer_secret_context();
            next.consumer_secret_sealed = v.map(|s| key.seal(&context, &s));
        }),
        "company" => optional_text(value).map(|v| next.company = v),
        "enabled" => match value {
            Value::Bool(_) | Value::Null => {
                next.enabled = value.as_bool().unwrap_or(false);
                Ok(())
            }
            _ => Err("must be true or false".into()),
        },
        "fieldMapping" => {
            apply_field_mapping(&mut next.field_mapping, value, errs);
            Ok(())
        }
        "externalIdField" => optional(value, api_name).map(|v| next.external_id_field = v),
        "apiVersion" => optional(value, api_version).map(|v| {
            next.api_version = v.unwrap_or_else(|| DEFAULT_API_VERSION.into());
        }),
        "signatureScheme" => optional(value, |s| {
            SignatureScheme::parse(s)
                .ok_or_else(|| "must be \"standard-webhooks\" or \"hmac-sha256-hex\"".to_string())
        })
        .map(|v| next.signature_scheme = v.unwrap_or_default()),
        "signatureHeader" => optional(value, header_name).map(|v| next.signature_header = v),
        "assignOnCreate" => match value {
            Value::Bool(_) | Value::Null => {
                next.assign_on_create = value.as_bool().unwrap_or(true);
                Ok(())
            }
            _ => Err("must be true or false".into()),
        },
        "onDuplicate" => optional(value, |s| {
            DuplicatePolicy::parse(s)
                .ok_or_else(|| "must be \"create\", \"adopt\" or \"report\"".to_string())
        })
        .map(|v| next.on_duplicate = v.unwrap_or_default()),
        f if READ_ONLY.contains(&f) => Err("is read-only".into()),
        _ => Err("is not a field of a connection".into()),
    };
    if let Err(message) = result {
        errs.add(field, message);
    }
}

fn apply_field_mapping(mapping: &mut FieldMapping, value: &Value, errs: &mut FieldErrors) {
    let map: &Map<String, Value> = match value {
        Value::Null => {
            *mapping = FieldMapping::default();
            return;
        }
        Value::Object(m) => m,
        _ => {
            errs.add("fieldMapping", "must be an object or null");
            return;
        }
    };
    for (k, v) in map {
        let slot = match k.as_str() {
            "status" => &mut mapping.status,
            "clientType" => &mut mapping.client_type,
            "verificationLevel" => &mut mapping.verification_level,
            _ => {
                errs.add(
                    &format!("fieldMapping.{k}"),
                    "is not one of status, clientType, verificationLevel",
                );
                continue;
            }
        };
        match optional(v, api_name) {
            Ok(name) => *slot = name,
            Err(message) => errs.add(&format!("fieldMapping.{k}"), message),
        }
    }
}

/// `null` → None; a string → checked by `check`; anything else refused.
fn optional<T>(
    value: &Value,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => check(s).map(Some),
        _ => Err("must be a string or null".into()),
    }
}

fn optional_text(value: &Value) -> Result<Option<String>, String> {
    optional(value, |s| {
        if s.trim().is_empty() {
            Err("must not be blank (use null to clear it)".into())
        } else if s.chars().any(char::is_control) {
            Err("must not contain control characters".into())
        } else if s.chars().count() > MAX_TEXT {
            Err(format!("must be at most {MAX_TEXT} characters"))
        } else {
            Ok(s.to_string())
        }
    })
}

/// A Salesforce API name: a letter, then letters, digits and underscores.
fn api_name(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.ends_with('_')
        && s.len() <= 80;
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be a Salesforce field API name such as B2C_Status__c".into())
    }
}

fn api_version(s: &str) -> Result<String, String> {
    let err = || format!("must look like \"v62.0\" and be at least v{MIN_API_MAJOR}.0");
    let number = s.strip_prefix('v').ok_or_else(err)?;
    let (major, minor) = number.split_once('.').ok_or_else(err)?;
    let major: u32 = major.parse().map_err(|_| err())?;
    if minor != "0" || !(MIN_API_MAJOR..=999).contains(&major) {
        return Err(err());
    }
    Ok(s.to_string())
}

fn header_name(s: &str) -> Result<String, String> {
    match actix_web::http::header::HeaderName::from_bytes(s.as_bytes()) {
        Ok(_) if !s.is_empty() => Ok(s.to_string()),
        _ => Err("must be a valid HTTP header name".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ConnectionId;
    use serde_json::json;

    fn key() -> MasterKey {
        MasterKey::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap()
    }

    fn base() -> Connection {
        Connection::new(
            ConnectionId::from_stored("id-1".into()),
            ConnectionName::parse("acme").unwrap(),
            chrono::Utc::now(),
        )
    }

    fn fields(e: FieldErrors) -> Vec<String> {
        e.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn enabling_names_each_missing_required_field() {
        let err = apply(
            &base(),
            &json!({"enabled": true, "company": "Acme"}),
            false,
            Rules::default(),
            &key(),
        )
        .unwrap_err();
        assert_eq!(fields(err), ["domainUrl", "consumerKey", "consumerSecret"]);
    }

    #[test]
    fn enabling_with_all_four_fields_succeeds_and_seals_the_secret() {
        let body = json!({
            "enabled": true, "company": "Acme", "consumerKey": "ck",
            "consumerSecret": "cs-plain", "domainUrl": "https://acme.my.salesforce.com/"
        });
        let c = apply(&base(), &body, false, Rules::default(), &key()).unwrap();
        assert!(c.enabled);
        assert_eq!(
            c.domain_url.as_deref(),
            Some("https://acme.my.salesforce.com")
        );
        let sealed = c.consumer_secret_sealed.clone().unwrap();
        assert!(!sealed.contains("cs-plain"));
        use secrecy::ExposeSecret;
        assert_eq!(
            key()
                .open(&c.consumer_secret_context(), &sealed)
                .unwrap()
                .expose_secret(),
            "cs-plain"
        );
    }

    #[test]
    fn clearing_a_required_field_of_an_enabled_connection_is_refused() {
        let body = json!({
            "enabled": true, "company": "Acme", "consumerKey": "ck",
            "consumerSecret": "cs", "domainUrl": "https://acme.my.salesforce.com"
        });
        let c = apply(&base(), &body, false, Rules::default(), &key()).unwrap();
        let err = apply(
            &c,
            &json!({"company": null}),
            false,
            Rules::default(),
            &key(),
        )
        .unwrap_err();
        assert_eq!(fields(err), ["company"]);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let body = json!({
            "caption": 5, "domainUrl": "http://acme.my.salesforce.com", "apiVersion": "62",
            "signatureScheme": "md5", "fieldMapping": {"status": "bad name", "colour": "X__c"},
            "externalIdField": "", "consumerSecretSet": true, "bogus": 1, "signatureHeader": "a b"
        });
        let mut got = fields(apply(&base(), &body, false, Rules::default(), &key()).unwrap_err());
        got.sort();
        assert_eq!(
            got,
            [
                "apiVersion",
                "bogus",
                "caption",
                "consumerSecretSet",
                "domainUrl",
                "externalIdField",
                "fieldMapping.colour",
                "fieldMapping.status",
                "signatureHeader",
                "signatureScheme",
            ]
        );
    }

    #[test]
    fn merge_patch_null_clears_and_absent_keeps() {
        let c = apply(
            &base(),
            &json!({"caption": "Main", "fieldMapping": {"status": "S__c", "clientType": "T__c"}}),
            false,
            Rules::default(),
            &key(),
        )
        .unwrap();
        let c = apply(
            &c,
            &json!({"fieldMapping": {"status": null}}),
            false,
            Rules::default(),
            &key(),
        )
        .unwrap();
        assert_eq!(c.caption.as_deref(), Some("Main"));
        assert_eq!(
            c.field_mapping,
            FieldMapping {
                status: None,
                client_type: Some("T__c".into()),
                verification_level: None
            }
        );
        let c = apply(
            &c,
            &json!({"caption": null, "fieldMapping": null}),
            false,
            Rules::default(),
            &key(),
        )
        .unwrap();
        assert_eq!(c.caption, None);
        assert_eq!(c.field_mapping, FieldMapping::default());
    }

    #[test]
    fn name_and_provider_cannot_change_in_a_patch() {
        let err = apply(
            &base(),
            &json!({"name": "other", "provider": "hubspot"}),
            false,
            Rules::default(),
            &key(),
        )
        .unwrap_err();
        assert_eq!(fields(err), ["name", "provider"]);
        assert!(apply(
            &base(),
            &json!({"name": "acme", "provider": "salesforce"}),
            false,
            Rules::default(),
            &key()
        )
        .is_ok());
    }

    #[test]
    fn api_versions_below_46_are_refused() {
        assert!(api_version("v62.0").is_ok());
        assert!(api_version("v46.0").is_ok());
        for bad in ["v45.0", "62.0", "v62", "v62.1", "vx.0"] {
            assert!(api_version(bad).is_err(), "{bad}");
        }
    }
}
