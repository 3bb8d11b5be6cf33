//! Where a Lead leaves for Salesforce: OAuth client credentials with a cached
//! token, describe of Lead, and record writes. Errors are sorted in [`errors`].

pub mod errors;

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::crypto::MasterKey;
use crate::domain::Connection;
use crate::mapping::{self, AddressPicklists, FieldInfo, LeadFields};
pub use errors::{Failure, Op};

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

/// An access token and the instance it is for.
pub struct Token {
    access_token: SecretString,
    pub instance_url: String,
    /// The user the token acts as (the run-as user), from the answer's `id`
    /// URL (`…/id/{orgId}/{userId}`).
    pub user_id: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", self.instance_url)
    }
}

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
pub struct Refusals(Arc<std::sync::Mutex<mapping::Refused>>);

impl Refusals {
    /// What has been refused so far.
    pub fn snapshot(&self) -> mapping::Refused {
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
}

impl Default for SalesforceSettings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(45 * 60),
            describe_ttl: Duration::from_secs(60 * 60),
            request_timeout: Duration::from_secs(30),
            allow_insecure: false,
        }
    }
}

/// The Salesforce client with its per-process caches.
pub struct Salesforce {
    http: reqwest::Client,
    rules: crate::connections::Rules,
    tokens: Cache<String, Arc<Token>>,
    describes: Cache<String, Arc<LeadDescribe>>,
    /// The latest `Sforce-Limit-Info` per connection: (used, max) of the
    /// tighter budget (see [`parse_limit_info`]).
    usage: Cache<String, (i64, i64)>,
}

/// The usage the API budget follows, from a `Sforce-Limit-Info` header:
/// `api-usage=USED/MAX` (the org's daily requests), and where the connected
/// app has a quota of its own, `per-app-api-usage=USED/MAX(appName=…)`; then
/// the tighter of the two. Parts are separated by `;` (`,` is accepted too);
/// other parts, such as `api-bursts=1/750`, are not budgets and are skipped.
pub fn parse_limit_info(header: &str) -> Option<(i64, i64)> {
    let mut org = None;
    let mut app = None;
    for part in header.split([';', ',']).map(str::trim) {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        // `17/250(appName=x)`: the numbers end where the app's name begins.
        let numbers = value.split('(').next().unwrap_or_default();
        let Some((used, max)) = numbers.split_once('/') else {
            continue;
        };
        let (Ok(used), Ok(max)) = (used.trim().parse::<i64>(), max.trim().parse::<i64>()) else {
            continue;
        };
        if max <= 0 || used < 0 {
            continue;
        }
        match name.trim() {
            "api-usage" => org = Some((used, max)),
            "per-app-api-usage" => app = Some((used, max)),
            _ => {}
        }
    }
    match (org, app) {
        // used₁/max₁ ≥ used₂/max₂, without floats.
        (Some(o), Some(a)) if (a.0 as i128) * (o.1 as i128) > (o.0 as i128) * (a.1 as i128) => {
            Some(a)
        }
        (Some(o), _) => Some(o),
        (None, a) => a,
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    id: Option<String>,
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

#[derive(Deserialize)]
struct SaveAnswer {
    id: String,
    #[serde(default)]
    created: Option<bool>,
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
            rules: crate::connections::Rules {
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

    /// The cached token, fetched once for all concurrent callers when missing.
    pub async fn token(&self, c: &Credentials) -> Result<Arc<Token>, Failure> {
        self.tokens
            .try_get_with(c.cache_key.clone(), async {
                self.fresh_token(c).await.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// A new token from the token endpoint, bypassing and not filling the cache.
    pub async fn fresh_token(&self, c: &Credentials) -> Result<Token, Failure> {
        let result = self.request_token(c).await;
        crate::metrics::token_fetch(match &result {
            Ok(_) => "ok",
            Err(f) => f.code(),
        });
        if let Err(f) = &result {
            tracing::warn!(domain = %c.domain_url, error_code = f.code(), "salesforce token request failed");
        }
        result
    }

    async fn request_token(&self, c: &Credentials) -> Result<Token, Failure> {
        let url = format!("{}/services/oauth2/token", c.domain_url);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose_secret()),
        ];
        let res = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        let status = res.status();
        let body = res.bytes().await.map_err(transport)?;
        crate::metrics::salesforce_request("token", status.as_u16());
        if !status.is_success() {
            return Err(errors::classify_oauth(status.as_u16(), &body));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            Failure::transient(
                errors::codes::BAD_TOKEN_ANSWER,
                format!("unreadable token answer: {e}"),
            )
        })?;
        // Data calls go to `instance_url` with the token: it must be an org
        // URL by the same rules as `domainUrl`.
        let instance_url = crate::connections::domain_url(&answer.instance_url, self.rules)
            .map_err(|why| Failure::Permanent {
                code: errors::codes::BAD_INSTANCE_URL.into(),
                message: format!("the token answer's instance_url {why}"),
            })?;
        tracing::info!(domain = %c.domain_url, "salesforce token fetched");
        let user_id = answer
            .id
            .as_deref()
            .and_then(|url| url.trim_end_matches('/').rsplit('/').next())
            .filter(|id| is_record_id(id))
            .map(str::to_string);
        Ok(Token {
            access_token: SecretString::from(answer.access_token),
            instance_url,
            user_id,
        })
    }

    /// Drops the cached token if it is still `failed` (another caller may have renewed it).
    pub async fn drop_token(&self, c: &Credentials, failed: &Arc<Token>) {
        if let Some(current) = self.tokens.get(&c.cache_key).await {
            if Arc::ptr_eq(&current, failed) {
                self.tokens.invalidate(&c.cache_key).await;
            }
        }
    }

    /// The org's API usage (used, max) as the last answer for these credentials said.
    pub async fn usage(&self, c: &Credentials) -> Option<(i64, i64)> {
        self.usage.get(&c.cache_key).await
    }

    /// Forgets the token cached for these credentials (they are being replaced).
    pub async fn forget_token(&self, c: &Credentials) {
        self.tokens.invalidate(&c.cache_key).await;
    }

    /// Forgets the cached describe (after `INVALID_FIELD`).
    pub async fn drop_describe(&self, c: &Credentials) {
        self.describes.invalidate(&describe_key(c)).await;
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
            let bytes = res.bytes().await.map_err(transport)?;
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
        let body = res.bytes().await.map_err(transport)?;
        crate::metrics::salesforce_request("describe", status.as_u16());
        if !status.is_success() {
            return Err(errors::classify(Op::Describe, status.as_u16(), &body));
        }
        parse_describe(&body)
    }

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
                (true, Some(id)) => Ok(Written {
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

    /// The Lead that `id` was merged into, if it was merged away; None when it
    /// was deleted (or is gone from the recycle bin). `queryAll` sees deleted
    /// records, which `query` does not. One API call.
    pub async fn merged_into(&self, c: &Credentials, id: &str) -> Result<Option<String>, Failure> {
        // Ids are 15 or 18 letters and digits: nothing else reaches the SOQL.
        if !is_record_id(id) {
            return Ok(None);
        }
        let soql = format!("SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE Id = '{id}'");
        #[derive(Deserialize)]
        struct Row {
            #[serde(rename = "IsDeleted")]
            is_deleted: bool,
            #[serde(rename = "MasterRecordId")]
            master_record_id: Option<String>,
        }
        let rows: Vec<Row> = self.query(c, "queryAll", &soql).await?;
        Ok(rows
            .into_iter()
            .find(|r| r.is_deleted)
            .and_then(|r| r.master_record_id))
    }

    /// The Leads this connection's user created at or after `since` whose
    /// fields equal `matching` (`None`: the field is empty), oldest first.
    /// SOQL compares text without regard to case. One API call.
    pub async fn created_since(
        &self,
        c: &Credentials,
        since: chrono::DateTime<chrono::Utc>,
        matching: &[(&str, Option<&str>)],
    ) -> Result<Vec<String>, Failure> {
        let mut soql = String::from("SELECT Id FROM Lead WHERE ");
        if let Some(user) = self.token(c).await?.user_id.as_deref() {
            soql.push_str(&format!("CreatedById = '{user}' AND "));
        }
        soql.push_str(&format!(
            "CreatedDate >= {}",
            since.format("%Y-%m-%dT%H:%M:%SZ")
        ));
        for (field, value) in matching {
            match value {
                Some(v) => soql.push_str(&format!(" AND {field} = '{}'", soql_escape(v))),
                None => soql.push_str(&format!(" AND {field} = null")),
            }
        }
        soql.push_str(" ORDER BY CreatedDate");
        #[derive(Deserialize)]
        struct Row {
            #[serde(rename = "Id")]
            id: String,
        }
        let rows: Vec<Row> = self.query(c, "query", &soql).await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// `GET {resource}/?q=…` (`query` or `queryAll`): the answer's records.
    async fn query<T: serde::de::DeserializeOwned>(
        &self,
        c: &Credentials,
        resource: &str,
        soql: &str,
    ) -> Result<Vec<T>, Failure> {
        let path = format!("{resource}/?q={}", urlencode(soql));
        let (_, bytes) = self
            .send(c, Op::Query, Method::GET, &path, None, None)
            .await?;
        #[derive(Deserialize)]
        struct Answer<T> {
            records: Vec<T>,
        }
        let answer: Answer<T> = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::transient(
                errors::codes::BAD_QUERY_ANSWER,
                format!("unreadable query answer: {e}"),
            )
        })?;
        Ok(answer.records)
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

fn describe_key(c: &Credentials) -> String {
    format!("{}/{}", c.cache_key, c.api_version)
}

fn save_answer(bytes: &[u8]) -> Result<SaveAnswer, Failure> {
    serde_json::from_slice(bytes).map_err(|e| {
        Failure::transient(
            errors::codes::BAD_SAVE_ANSWER,
            format!("unreadable answer to a write: {e}"),
        )
    })
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

/// A SOQL string literal's content, with the escapes SOQL documents.
fn soql_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
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

    #[test]
    fn soql_text_is_escaped_as_soql_documents() {
        assert_eq!(super::soql_escape("O'Brien"), "O\\'Brien");
        assert_eq!(super::soql_escape("a\\b\"c\nd\te"), "a\\\\b\\\"c\\nd\\te");
        // What cannot end the literal passes as it is.
        assert_eq!(super::soql_escape("x' OR Name != '"), "x\\' OR Name != \\'");
        assert!(super::is_record_id("005xx000001Sv6AAAE"));
        assert!(!super::is_record_id("005' OR Id != '"));
    }

    #[test]
    fn limit_info_is_read_as_used_and_max() {
        assert_eq!(
            super::parse_limit_info("api-usage=18/5000"),
            Some((18, 5000))
        );
        assert_eq!(
            super::parse_limit_info("per-app-api-usage=1/100(appName=x), api-usage=25/15000"),
            Some((1, 100)),
            "the app's 1% is tighter than the org's 0.2%"
        );
        assert_eq!(super::parse_limit_info("api-usage=x/5000"), None);
        assert_eq!(super::parse_limit_info(""), None);
    }

    #[test]
    fn every_documented_form_of_limit_info_is_read() {
        use super::parse_limit_info as parse;
        // The REST API guide's examples.
        assert_eq!(parse("api-usage=10018/100000"), Some((10018, 100_000)));
        assert_eq!(
            parse("api-usage=10018/100000; api-bursts=1/750"),
            Some((10018, 100_000))
        );
        // The app's own quota counts when it is the tighter one...
        assert_eq!(
            parse("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)"),
            Some((17, 250))
        );
        // ...and not when the org's is.
        assert_eq!(
            parse("api-usage=4900/5000; per-app-api-usage=17/250(appName=b2core)"),
            Some((4900, 5000))
        );
        assert_eq!(parse("per-app-api-usage=9/10(appName=x)"), Some((9, 10)));
        assert_eq!(parse("api-usage=1/0"), None);
        assert_eq!(parse("api-bursts=1/750"), None);
        assert_eq!(parse(" api-usage = 7 / 70 ;"), Some((7, 70)));
    }
}
