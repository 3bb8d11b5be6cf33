//! A connection: the operator's settings for one Salesforce org, as the rest
//! of the code speaks of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ConnectionId, ConnectionName};

/// `apiVersion` when none is given.
pub const DEFAULT_API_VERSION: &str = "v62.0";
/// Header of the hex scheme when `signatureHeader` is not set.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Signature";

/// The org's daily API usage, from `Sforce-Limit-Info: api-usage=USED/MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: i64,
    pub max: i64,
    pub at: DateTime<Utc>,
}

impl ApiUsage {
    /// Whether `used` has reached `percent` of `max`.
    pub fn at_least(&self, percent: u8) -> bool {
        // In i128: an org (or a proxy) can report any i64.
        self.max > 0 && i128::from(self.used) * 100 >= i128::from(self.max) * i128::from(percent)
    }
}

/// How B2CORE signs this connection's webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    #[default]
    StandardWebhooks,
    HmacSha256Hex,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureScheme::StandardWebhooks => "standard-webhooks",
            SignatureScheme::HmacSha256Hex => "hmac-sha256-hex",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standard-webhooks" => Some(Self::StandardWebhooks),
            "hmac-sha256-hex" => Some(Self::HmacSha256Hex),
            _ => None,
        }
    }
}

/// What to do when the org's duplicate rule finds Leads like the one being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePolicy {
    /// Create the Lead anyway (`Sforce-Duplicate-Rule-Header: allowSave=true`;
    /// an alert rule lets it through, a block rule does not).
    #[default]
    Create,
    /// Link the client to the one matched Lead and update it instead.
    Adopt,
    /// Do not create: the client is `dead` with the matched Lead Ids.
    Report,
}

impl DuplicatePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DuplicatePolicy::Create => "create",
            DuplicatePolicy::Adopt => "adopt",
            DuplicatePolicy::Report => "report",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "create" => Some(Self::Create),
            "adopt" => Some(Self::Adopt),
            "report" => Some(Self::Report),
            _ => None,
        }
    }
}

/// Custom Lead fields that receive Status, Client type and Verification level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    /// Lead field for `status.name`, e.g. `B2C_Status__c`.
    #[schema(pattern = r"^[A-Za-z]([A-Za-z0-9_]{0,78}[A-Za-z0-9])?$")]
    pub status: Option<String>,
    /// Lead field for `type.name`, e.g. `B2C_Client_Type__c`.
    #[schema(pattern = r"^[A-Za-z]([A-Za-z0-9_]{0,78}[A-Za-z0-9])?$")]
    pub client_type: Option<String>,
    /// Lead field for `verificationLevel.name`, e.g. `B2C_Verification_Level__c`.
    #[schema(pattern = r"^[A-Za-z]([A-Za-z0-9_]{0,78}[A-Za-z0-9])?$")]
    pub verification_level: Option<String>,
}

/// A connection as stored. Secrets are sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: ConnectionName,
    pub caption: Option<String>,
    pub provider: String,
    pub domain_url: Option<String>,
    pub consumer_key: Option<String>,
    pub consumer_secret_sealed: Option<String>,
    pub company: Option<String>,
    pub enabled: bool,
    pub field_mapping: FieldMapping,
    pub external_id_field: Option<String>,
    pub api_version: String,
    pub signature_scheme: SignatureScheme,
    pub signature_header: Option<String>,
    /// Whether the org's Lead assignment rule runs on the Lead's first create
    /// (never on updates).
    pub assign_on_create: bool,
    pub on_duplicate: DuplicatePolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The org's API usage as Salesforce last reported it.
    pub api_usage: Option<ApiUsage>,
}

impl Connection {
    /// A connection with defaults only, before the create body is applied.
    pub fn new(id: ConnectionId, name: ConnectionName, now: DateTime<Utc>) -> Self {
        Self {
            id,
            name,
            caption: None,
            provider: "salesforce".into(),
            domain_url: None,
            consumer_key: None,
            consumer_secret_sealed: None,
            company: None,
            enabled: false,
            field_mapping: FieldMapping::default(),
            external_id_field: None,
            api_version: DEFAULT_API_VERSION.into(),
            signature_scheme: SignatureScheme::default(),
            signature_header: None,
            assign_on_create: true,
            on_duplicate: DuplicatePolicy::default(),
            created_at: now,
            updated_at: now,
            api_usage: None,
        }
    }

    /// The header that carries the hex scheme's signature.
    pub fn effective_signature_header(&self) -> &str {
        self.signature_header
            .as_deref()
            .unwrap_or(DEFAULT_SIGNATURE_HEADER)
    }

    /// Where the consumer secret's ciphertext is bound.
    pub fn consumer_secret_context(&self) -> String {
        format!("connection/{}/consumer_secret", self.id)
    }

    /// Changing any of these must drop the cached Salesforce token.
    pub fn credentials_fingerprint(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        (
            self.domain_url.as_deref(),
            self.consumer_key.as_deref(),
            self.consumer_secret_sealed.as_deref(),
        )
    }
}

/// Where a webhook secret's ciphertext is bound.
pub fn webhook_secret_context(connection_id: &str, secret_id: &str) -> String {
    format!("connection/{connection_id}/webhook_secret/{secret_id}")
}

#[cfg(test)]
mod tests {
    use super::ApiUsage;

    #[test]
    fn api_usage_near_the_ends_of_i64_does_not_overflow() {
        let at = chrono::Utc::now();
        let usage = |used, max| ApiUsage { used, max, at };
        assert!(usage(i64::MAX, i64::MAX).at_least(80));
        assert!(!usage(i64::MAX / 2, i64::MAX).at_least(80));
        assert!(usage(80, 100).at_least(80));
        assert!(!usage(79, 100).at_least(80));
        assert!(!usage(i64::MIN, 100).at_least(1));
        assert!(!usage(5, 0).at_least(0));
    }
}
