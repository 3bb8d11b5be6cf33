//! What the operator can ask of a connection before it syncs: a test of its
//! credentials and fields against the org, and a preview of the Lead a
//! webhook would produce. Nothing here writes to Salesforce.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::FieldError;
use crate::crypto::MasterKey;
use crate::domain::{Connection, DuplicatePolicy};
use crate::mapping::{self, Form, Known, Pending, Target};
use crate::salesforce::{
    api_major, errors::oauth_hint, Credentials, Failure, Salesforce, DUPLICATE_HEADER_SINCE,
};
use crate::webhook::ClientEvent;

/// Salesforce's last error for a client.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastError {
    /// Salesforce's `errorCode` / `statusCode`, or the OAuth `error`.
    pub code: String,
    pub message: String,
}

/// Salesforce's answer to the token request.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsCheck {
    pub ok: bool,
    pub instance_url: Option<String>,
    /// OAuth `error`, e.g. `invalid_client`.
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// What to check, in plain words.
    pub hint: Option<String>,
}

/// A mapped or configured Lead field in this org.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldCheck {
    /// `status`, `clientType`, `verificationLevel` or `externalIdField`.
    pub setting: String,
    pub field: String,
    pub exists: bool,
    pub writable: bool,
    pub external_id: bool,
}

/// The connection test's report.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub credentials: CredentialsCheck,
    /// Null when the token failed; else whether describe of Lead worked.
    pub describe_ok: Option<bool>,
    /// Salesforce's error for describe, if it failed.
    pub describe_error: Option<LastError>,
    pub fields: Vec<FieldCheck>,
    /// Whether Lead has MiddleName here (null if unknown).
    pub middle_name: Option<bool>,
    /// Whether Lead has CountryCode (country picklists) here (null if unknown).
    pub country_code: Option<bool>,
    /// What this connection asks of the org's own rules, and what it can see.
    pub org_rules: OrgRulesCheck,
}

/// The connection's answers to the org's duplicate and assignment rules.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgRulesCheck {
    /// Whether `apiVersion` takes `Sforce-Duplicate-Rule-Header` (v52.0+): without
    /// it an alert duplicate rule refuses matching clients even with `onDuplicate: create`.
    pub duplicate_rule_header: bool,
    pub on_duplicate: DuplicatePolicy,
    /// Whether new Leads go through the org's assignment rule (updates never do).
    pub assign_on_create: bool,
    /// Whether Lead has StateCode (state and country picklists; null if unknown).
    pub state_code: Option<bool>,
    /// With state and country picklists: how many countries the org has
    /// active (a client of another country is written without its country).
    pub active_countries: Option<usize>,
    /// With state and country picklists: the countries whose states the org
    /// has; a client's state elsewhere is not sent (the org refuses it).
    pub countries_with_states: Option<Vec<String>>,
    /// What may not work as configured, in plain words.
    pub warnings: Vec<String>,
}

/// What the settings alone say about the org's rules.
fn org_rules(conn: &Connection) -> OrgRulesCheck {
    let header = api_major(&conn.api_version) >= DUPLICATE_HEADER_SINCE;
    let mut warnings = Vec::new();
    if !header && conn.on_duplicate == DuplicatePolicy::Create {
        warnings.push(format!(
            "apiVersion {} cannot send Sforce-Duplicate-Rule-Header (v52.0 or later is needed): \
             an alert duplicate rule will refuse clients that match an existing Lead",
            conn.api_version
        ));
    }
    OrgRulesCheck {
        duplicate_rule_header: header,
        on_duplicate: conn.on_duplicate,
        assign_on_create: conn.assign_on_create,
        state_code: None,
        active_countries: None,
        countries_with_states: None,
        warnings,
    }
}

/// The Lead bodies a webhook would produce.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Body of the first write for this client (POST, or the first upsert).
    #[schema(value_type = Object)]
    pub create: serde_json::Map<String, serde_json::Value>,
    /// Body of a later write (PATCH by Id, or upsert): only what the event changes.
    #[schema(value_type = Object)]
    pub update: serde_json::Map<String, serde_json::Value>,
    /// `sobjects/Lead/{externalIdField}/{clientId}` when writes are upserts.
    pub upsert_path: Option<String>,
    /// True when the org's describe shaped the bodies.
    pub describe_applied: bool,
    pub warnings: Vec<String>,
}

/// The credentials to call Salesforce with, or each missing setting named.
pub fn credentials(conn: &Connection, key: &MasterKey) -> Result<Credentials, CheckError> {
    let missing: Vec<FieldError> = [
        ("domainUrl", conn.domain_url.is_some()),
        ("consumerKey", conn.consumer_key.is_some()),
        ("consumerSecret", conn.consumer_secret_sealed.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| !set)
    .map(|(field, _)| FieldError {
        field: field.into(),
        message: "is required to call Salesforce".into(),
    })
    .collect();
    if !missing.is_empty() {
        return Err(CheckError::Missing(missing));
    }
    Credentials::of(conn, key).map_err(CheckError::Unreadable)
}

/// Why a connection could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Settings needed to call Salesforce are not set.
    #[error("credentials are not set")]
    Missing(Vec<FieldError>),
    /// The stored consumer secret does not open.
    #[error("the stored credentials cannot be read: {0}")]
    Unreadable(String),
}

/// Gets a fresh token (never a cached one) and describes Lead: whether the
/// credentials work, and which configured fields exist and are writable.
pub async fn test(salesforce: &Salesforce, conn: &Connection, creds: &Credentials) -> TestReport {
    let mut report = TestReport {
        org_rules: org_rules(conn),
        ..TestReport::default()
    };
    let token = match salesforce.fresh_token(creds).await {
        Ok(t) => t,
        Err(f) => {
            report.credentials.error = Some(f.code().into());
            report.credentials.error_description = Some(match &f {
                Failure::Auth { description, .. } => description.clone(),
                other => other.message(),
            });
            if let Failure::Auth { error, description } = &f {
                report.credentials.hint = Some(oauth_hint(error, description).into());
            }
            return report;
        }
    };
    report.credentials.ok = true;
    report.credentials.instance_url = Some(token.instance_url.clone());
    match salesforce.describe_with(creds, &token).await {
        Err(f) => {
            report.describe_ok = Some(false);
            report.describe_error = Some(LastError {
                code: f.code().into(),
                message: f.message(),
            });
        }
        Ok(d) => {
            report.describe_ok = Some(true);
            report.middle_name = Some(d.fields.contains_key("MiddleName"));
            report.country_code = Some(d.fields.contains_key("CountryCode"));
            report.org_rules.state_code = Some(d.fields.contains_key("StateCode"));
            if let Some(lists) = &d.picklists {
                report.org_rules.active_countries = Some(lists.countries.len());
                report.org_rules.countries_with_states =
                    Some(lists.states.keys().cloned().collect());
            }
            let m = &conn.field_mapping;
            for (setting, field) in [
                ("status", &m.status),
                ("clientType", &m.client_type),
                ("verificationLevel", &m.verification_level),
                ("externalIdField", &conn.external_id_field),
            ] {
                let Some(field) = field else { continue };
                let info = d.fields.get(field);
                report.fields.push(FieldCheck {
                    setting: setting.into(),
                    field: field.clone(),
                    exists: info.is_some(),
                    writable: info.is_some_and(|i| i.createable && i.updateable),
                    external_id: d.external_ids.contains(field),
                });
            }
        }
    }
    report
}

/// The exact Lead bodies `ev` would produce for a new client of `conn`
/// (shaped by the org's describe when the credentials allow it). Nothing is sent.
pub async fn preview(
    salesforce: &Salesforce,
    key: &MasterKey,
    conn: &Connection,
    ev: &ClientEvent,
    now: DateTime<Utc>,
) -> Preview {
    let pending = Pending {
        occurred_at: ev.occurred_at.unwrap_or(now),
        seq: 0,
        changes: mapping::changes(&ev.data),
    };
    let merge = mapping::merge(&Known::default(), &[pending]);
    let mut warnings = Vec::new();
    let describe = match Credentials::of(conn, key) {
        Err(_) => {
            warnings
                .push("credentials are not set: fields were not checked against the org".into());
            None
        }
        Ok(creds) => match salesforce.describe_lead(&creds).await {
            Ok(d) => Some(d),
            Err(f) => {
                warnings.push(format!(
                    "describe of Lead failed ({}): fields were not checked against the org",
                    f.code()
                ));
                None
            }
        },
    };
    let none = BTreeSet::new();
    let refused = describe
        .as_ref()
        .map(|d| d.refused.snapshot())
        .unwrap_or_default();
    let target = Target {
        company: conn.company.as_deref(),
        mapping: &conn.field_mapping,
        fields: describe.as_ref().map(|d| &d.fields),
        picklists: describe.as_ref().and_then(|d| d.picklists.as_ref()),
        exclude: &none,
        refused: &refused,
    };
    let mut create = mapping::lead(Form::Create, &merge, &target);
    let update = mapping::lead(Form::Update, &merge, &target);
    if let Some(field) = &conn.external_id_field {
        create.body.remove(field);
    }
    warnings.extend(create.warnings);
    Preview {
        create: create.body,
        update: update.body,
        upsert_path: conn
            .external_id_field
            .as_ref()
            .map(|f| format!("sobjects/Lead/{f}/{}", ev.client_id)),
        describe_applied: describe.is_some(),
        warnings,
    }
}

/// A Lead field leadbridge can write in this org (createable and updateable).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadFieldView {
    /// API name, e.g. `B2C_Status__c`.
    pub name: String,
    /// The label the org shows (the API name when describe gives none).
    pub label: String,
    /// Salesforce's field type: `string`, `picklist`, `email`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Maximum characters; 0 when the type has none.
    pub length: usize,
    /// A custom field (`__c`).
    pub custom: bool,
    /// Marked External ID: usable as `externalIdField`.
    pub external_id: bool,
}

/// The org's writable Lead fields, by label, or Salesforce's error.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadFieldList {
    pub fields: Vec<LeadFieldView>,
    /// Why the fields could not be read (token or describe), as Salesforce said it.
    pub error: Option<LastError>,
}

/// The writable Lead fields of the connection's org, from describe (cached
/// like every describe, so choosing fields does not cost a call each time).
pub async fn lead_fields(salesforce: &Salesforce, creds: &Credentials) -> LeadFieldList {
    let d = match salesforce.describe_lead(creds).await {
        Ok(d) => d,
        Err(f) => {
            return LeadFieldList {
                fields: vec![],
                error: Some(LastError {
                    code: f.code().into(),
                    message: f.message(),
                }),
            }
        }
    };
    let mut fields: Vec<LeadFieldView> = d
        .fields
        .iter()
        .filter(|(_, info)| info.createable && info.updateable)
        .map(|(name, info)| LeadFieldView {
            name: name.clone(),
            label: d.labels.get(name).cloned().unwrap_or_else(|| name.clone()),
            kind: info.kind.clone(),
            length: info.length,
            custom: name.ends_with("__c"),
            external_id: d.external_ids.contains(name),
        })
        .collect();
    fields
        .sort_by(|a, b| (a.label.to_lowercase(), &a.name).cmp(&(b.label.to_lowercase(), &b.name)));
    LeadFieldList {
        fields,
        error: None,
    }
}
