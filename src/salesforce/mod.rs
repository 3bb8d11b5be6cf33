//! Where a Lead leaves for Salesforce: the client and its per-process
//! caches ([`Salesforce`]), the token ([`token`]), describe of Lead
//! ([`describe`]), record writes ([`write`](mod@write)), SOQL reads ([`query`]), the
//! API usage ([`limits`]) and which hosts may be called ([`url`]). Errors
//! are sorted in [`errors`].

pub mod describe;
pub mod errors;
pub mod limits;
pub mod query;
pub mod token;
pub mod url;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::crypto::MasterKey;
use crate::domain::Connection;
pub use describe::{AddressPicklists, FieldInfo, LeadDescribe, LeadFields, Refusals, Refused};
pub use errors::{Failure, Op};
pub use limits::parse_limit_info;
pub use token::Token;
pub use write::{api_major, Batch, SaveOptions, DUPLICATE_HEADER_SINCE, MAX_BATCH};

/// What is needed to call one org, opened from a connection.
#[derive(Clone)]
pub struct Credentials {
    /// Changes whenever the domain, key or secret change, so caches miss.
    pub cache_key: String,
    pub domain_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub api_version: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("domain_url", &self.domain_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The connection's credentials, or the names of the missing settings.
    pub fn of(conn: &Connection, key: &MasterKey) -> Result<Self, String> {
        let (Some(domain), Some(client_id), Some(sealed)) = (
            conn.domain_url.as_ref(),
            conn.consumer_key.as_ref(),
            conn.consumer_secret_sealed.as_ref(),
        ) else {
            return Err("domainUrl, consumerKey and consumerSecret must be set".into());
        };
        let secret = key
            .open(&conn.consumer_secret_context(), sealed)
            .map_err(|e| e.to_string())?;
        let mut h = Sha256::new();
        for part in [conn.id.as_str(), domain, client_id, sealed] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        Ok(Self {
            cache_key: hex::encode(h.finalize()),
            domain_url: domain.clone(),
            client_id: client_id.clone(),
            client_secret: secret,
            api_version: conn.api_version.clone(),
        })
    }
}

/// A record Salesforce confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub id: String,
    pub created: bool,
}

/// Settings of the Salesforce client.
#[derive(Debug, Clone, Copy)]
pub struct SalesforceSettings {
    /// How long a token is reused. Salesforce does not say (no `expires_in`);
    /// keep it below the org's session timeout (1 h in the B2CORE guide).
    pub token_ttl: Duration,
    pub describe_ttl: Duration,
    pub request_timeout: Duration,
    /// Allow `http://` and hosts other than `*.my.salesforce.com`
    /// (`LEADBRIDGE_ALLOW_INSECURE_SALESFORCE`; emulators and tests).
    pub allow_insecure: bool,
    /// The largest answer to a token request read, in bytes (a real one is
    /// under 1 KiB).
    pub max_token_answer: usize,
    /// The largest answer to describe, a write or a query read (Lead's
    /// describe with an org's country and state picklists is a few hundred
    /// KiB; 200 collections results are tens of KiB).
    pub max_answer: usize,
}

impl Default for SalesforceSettings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(45 * 60),
            describe_ttl: Duration::from_secs(60 * 60),
            request_timeout: Duration::from_secs(30),
            allow_insecure: false,
            max_token_answer: 64 * 1024,
            max_answer: 16 * 1024 * 1024,
        }
    }
}

/// The Salesforce client with its per-process caches.
pub struct Salesforce {
    http: reqwest::Client,
    /// What is read of an answer at most: (token, anything else), in bytes.
    caps: (usize, usize),
    rules: url::Rules,
    tokens: Cache<String, Arc<Token>>,
    describes: Cache<String, Arc<LeadDescribe>>,
    /// The latest `Sforce-Limit-Info` per connection: (used, max) of the
    /// tighter budget (see [`parse_limit_info`]).
    usage: Cache<String, (i64, i64)>,
}

impl Salesforce {
    pub fn new(settings: SalesforceSettings) -> Self {
        // No redirects: a token endpoint answering 307 would have the
        // consumer secret posted again to wherever it points.
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .user_agent(concat!("leadbridge/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!settings.allow_insecure)
            .build()
            .expect("the HTTP client builds");
        Self {
            http,
            caps: (settings.max_token_answer, settings.max_answer),
            rules: url::Rules {
                allow_insecure_salesforce: settings.allow_insecure,
            },
            tokens: Cache::builder()
                .time_to_live(settings.token_ttl)
                .max_capacity(10_000)
                .build(),
            describes: Cache::builder()
                .time_to_live(settings.describe_ttl)
                .max_capacity(10_000)
                .build(),
            usage: Cache::builder().max_capacity(10_000).build(),
        }
    }

    /// Sends one REST call with the cached token; on `INVALID_SESSION_ID` gets a
    /// new token and sends it once more. Non-2xx answers come back classified.
    async fn send(
        &self,
        c: &Credentials,
        op: Op,
        method: Method,
        path: &str,
        body: Option<&Map<String, Value>>,
        save: Option<SaveOptions>,
    ) -> Result<(StatusCode, bytes::Bytes), Failure> {
        let mut renewed = false;
        loop {
            let token = self.token(c).await?;
            let url = format!(
                "{}/services/data/{}/{}",
                token.instance_url, c.api_version, path
            );
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.access_token.expose_secret());
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(save) = save {
                req = req.header(
                    "Sforce-Auto-Assign",
                    if save.assign { "TRUE" } else { "FALSE" },
                );
                if save.allow_duplicates && api_major(&c.api_version) >= DUPLICATE_HEADER_SINCE {
                    req = req.header("Sforce-Duplicate-Rule-Header", "allowSave=true");
                }
            }
            let res = req.send().await.map_err(transport)?;
            let status = res.status();
            if let Some(u) = res
                .headers()
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_limit_info)
            {
                self.usage.insert(c.cache_key.clone(), u).await;
            }
            let bytes = read_capped(res, self.caps.1).await?;
            crate::metrics::salesforce_request(op_name(op), status.as_u16());
            if status.is_success() {
                return Ok((status, bytes));
            }
            match errors::classify(op, status.as_u16(), &bytes) {
                Failure::SessionExpired if !renewed => {
                    self.drop_token(c, &token).await;
                    renewed = true;
                }
                failure => return Err(failure),
            }
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Token => "token",
        Op::Describe => "describe",
        Op::Create => "create",
        Op::Update => "update",
        Op::Upsert => "upsert",
        Op::Query => "query",
    }
}

fn transport(e: reqwest::Error) -> Failure {
    let code = if e.is_timeout() {
        errors::codes::TIMEOUT
    } else {
        errors::codes::CONNECTION_ERROR
    };
    // reqwest's Display names the URL, never headers or bodies.
    Failure::transient(code, e.without_url().to_string())
}

/// A Salesforce record id: 15 or 18 letters and digits.
fn is_record_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.chars().all(|ch| ch.is_ascii_alphanumeric())
}

fn urlencode(s: &str) -> String {
    ::url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Reads an answer's body, refusing one over `cap` bytes: by its declared
/// length before reading anything, else as soon as it passes the cap. An
/// org, or whatever answers in its place, cannot make the process hold
/// more than `cap` for one call.
async fn read_capped(mut res: reqwest::Response, cap: usize) -> Result<bytes::Bytes, Failure> {
    let too_large = || {
        Failure::transient(
            errors::codes::ANSWER_TOO_LARGE,
            format!("the answer was larger than {cap} bytes"),
        )
    };
    let declared = res.content_length();
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::with_capacity(declared.map_or(8 * 1024, |n| n as usize));
    while let Some(chunk) = res.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
