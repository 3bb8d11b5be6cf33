//! A Salesforce org emulator for tests, strict where real orgs are strict:
//! client-credentials tokens (no `expires_in`, the documented OAuth errors),
//! 401 `INVALID_SESSION_ID` for expired tokens, describe of Lead, create (201),
//! update (204), upsert (201/200/300/404), sObject Collections (200 with
//! per-record `statusCode` errors), field checks from describe (`INVALID_FIELD`,
//! `STRING_TOO_LONG`, `INVALID_EMAIL_ADDRESS`, country picklists, required
//! fields), deleted and converted Leads, `Sforce-Limit-Info`, and injected
//! faults (503, `UNABLE_TO_LOCK_ROW`, request limits, a full outage).
//!
//! Tests and benches start one in process ([`Emulator::start`]) and steer it
//! (faults, conversions, merges); the `salesforce-emulator` binary runs one
//! on a fixed address for a quick start, with `GET /emulator/leads` listing
//! the Leads it holds. The documented formats it follows are summed up in
//! the project's Salesforce notes; `tests/fidelity.rs` checks it against them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use serde_json::{json, Map, Value};

/// How the emulated org is set up.
#[derive(Debug, Clone)]
pub struct OrgConfig {
    pub client_id: String,
    pub client_secret: String,
    /// A run-as user is set on the External Client App.
    pub run_as_user: bool,
    /// The client credentials flow is enabled.
    pub flow_enabled: bool,
    /// "Middle names" is enabled: Lead has MiddleName.
    pub middle_name: bool,
    /// "State and Country/Territory Picklists": Lead has CountryCode and
    /// StateCode, picklists whose values describe lists (states with
    /// `validFor` bitmaps over the countries), and the text fields Country and
    /// State take only integration values (see [`validate_address`]).
    pub country_picklists: bool,
    /// Countries the admin has not made active: not in describe, refused.
    pub inactive_countries: Vec<String>,
    /// Custom text fields (API name, length).
    pub custom_fields: Vec<(String, usize)>,
    /// Custom text fields marked External ID.
    pub external_ids: Vec<String>,
    /// Daily API allocation.
    pub daily_max: u64,
    /// An Apex trigger on Lead that runs a query per record: a collections
    /// call of more than this many records hits the governor limit, and every
    /// record of it fails with `CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY`.
    pub trigger_limit: Option<usize>,
    /// The active Lead assignment rule: every Lead it runs on goes to this
    /// owner (a queue). It runs on creates and updates unless the request
    /// says `Sforce-Auto-Assign: FALSE`, as Salesforce's REST API does.
    pub assignment_owner: Option<String>,
    /// The active duplicate rule on Lead (the Standard Lead Duplicate Rule is
    /// `Alert`), run on create and edit. Its matching rule, simplified from
    /// the Standard Lead Matching Rule: the same Email (any case), or the same
    /// first and last name with the same Phone.
    pub duplicate_rule: Option<DuplicateAction>,
    /// A quota of the External Client App's own (API limit app quotas): the
    /// limit header then carries `per-app-api-usage` after `api-usage`.
    pub app_quota: Option<u64>,
    /// Validation rules: each requires a Lead field to be non-blank, as an
    /// admin's rule `ISBLANK(field)` does, failing the save with its message.
    pub validation_rules: Vec<ValidationRule>,
}

/// What a duplicate rule does on a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateAction {
    /// "Allow, with alert": the API save fails unless it sends
    /// `Sforce-Duplicate-Rule-Header: allowSave=true` (v52.0+).
    Alert,
    /// "Block": the save fails whatever the request says.
    Block,
}

/// The owner of a Lead no assignment rule ran on: the app's run-as user.
pub const RUN_AS_USER: &str = "005xx000001Sv6AAAE";
/// The user who imported the Leads [`Emulator::insert_lead`] puts in the org.
pub const IMPORT_USER: &str = "005xx000001ImpUAAA";

/// A datetime as Salesforce answers it: `2026-12-03T06:50:12.000+0000`.
fn sf_datetime(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// What the request's headers ask of a save.
#[derive(Debug, Clone, Copy)]
struct SaveCtx {
    /// `Sforce-Auto-Assign` (TRUE when absent).
    auto_assign: bool,
    /// `Sforce-Duplicate-Rule-Header: allowSave=true`, on v52.0 or later.
    allow_save: bool,
}

impl Default for SaveCtx {
    fn default() -> Self {
        Self {
            auto_assign: true,
            allow_save: false,
        }
    }
}

/// The save context of a request, or the 400 its headers earn.
fn save_ctx(req: &HttpRequest, version: &str) -> Result<SaveCtx, Box<HttpResponse>> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let auto_assign = match header("sforce-auto-assign").map(str::trim) {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        // An AssignmentRule Id runs that rule.
        Some(v) if v.starts_with("01Q") && (v.len() == 15 || v.len() == 18) => true,
        Some(v) => {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_ID",
                &format!("Sforce-Auto-Assign: invalid id or value: {v}"),
                &[],
            )))
        }
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    // Before v52.0 the REST API does not know the header.
    let allow_save = major >= 52
        && header("sforce-duplicate-rule-header").is_some_and(|v| {
            v.split(';').any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim() == "allowSave" && v.trim().eq_ignore_ascii_case("true")
                })
            })
        });
    Ok(SaveCtx {
        auto_assign,
        allow_save,
    })
}

/// A validation rule of the org: saving a Lead whose `field` is blank fails
/// with `FIELD_CUSTOM_VALIDATION_EXCEPTION` and the rule's message.
#[derive(Debug, Clone)]
pub struct ValidationRule {
    pub field: String,
    pub message: String,
}

impl Default for OrgConfig {
    fn default() -> Self {
        Self {
            client_id: "3MVG9emulatorKey".into(),
            client_secret: "emulator-consumer-secret-0123456789".into(),
            run_as_user: true,
            flow_enabled: true,
            middle_name: false,
            country_picklists: false,
            inactive_countries: vec![],
            custom_fields: vec![
                ("B2C_Status__c".into(), 50),
                ("B2C_Client_Type__c".into(), 50),
                ("B2C_Verification_Level__c".into(), 50),
            ],
            external_ids: vec!["B2C_Client_Id__c".into()],
            daily_max: 100_000,
            app_quota: None,
            assignment_owner: None,
            duplicate_rule: None,
            trigger_limit: None,
            validation_rules: vec![],
        }
    }
}

/// A fault the next REST call answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 with an HTML page, as the platform's front end sends.
    Unavailable,
    /// 400 `UNABLE_TO_LOCK_ROW` on a write.
    LockRow,
    /// 403 `REQUEST_LIMIT_EXCEEDED` "TotalRequests Limit exceeded."
    DailyLimit,
    /// An Apex trigger's own update met a locked row: the save fails with
    /// `CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY` wrapping `UNABLE_TO_LOCK_ROW`
    /// (every record of a collections call, or the single record).
    TriggerLock,
    /// A record-triggered flow met a locked row: `CANNOT_EXECUTE_FLOW_TRIGGER`
    /// wrapping `UNABLE_TO_LOCK_ROW`, likewise.
    FlowLock,
    /// The org is read-only for maintenance: the call fails with 400
    /// `INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE`.
    Maintenance,
    /// The call is carried out (the write committed) but its answer arrives
    /// only after [`ANSWER_LOST_AFTER`], past the caller's timeout: the answer
    /// is lost as it is when a network cuts or a proxy gives up.
    AnswerLost,
}

/// How long an [`Fault::AnswerLost`] answer is held back.
pub const ANSWER_LOST_AFTER: Duration = Duration::from_secs(5);

const TRIGGER_LOCK: &str = "LeadTrigger: execution of AfterInsert\n\ncaused by: System.DmlException: Update failed. First exception on row 0 with id 001xx000003DGb2AAG; first error: UNABLE_TO_LOCK_ROW, unable to obtain exclusive access to this record: []\n\nTrigger.LeadTrigger: line 12, column 1";
const FLOW_LOCK: &str = "The record couldn't be saved because it failed to trigger a flow. A flow trigger failed to execute the flow with version ID 301xx0000000001AAA. Flow error messages: An unhandled fault has occurred in this flow. An unhandled fault has occurred while processing the flow. Error ID: UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record or 1 records";
const TRIGGER_LIMIT: &str = "LeadTrigger: System.LimitException: Too many SOQL queries: 101";

/// The org's automation failing a save: in a collections call every record
/// fails with the same `statusCode` (the transaction is rolled back), a
/// single-record call is answered 400.
fn automation_failure(tail: &str, body: &[u8], code: &str, message: &str) -> HttpResponse {
    let records = tail
        .starts_with("composite/sobjects")
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten()
        .and_then(|b| b.get("records").and_then(Value::as_array).map(Vec::len));
    match records {
        Some(n) => HttpResponse::Ok().json(vec![
            json!({"success": false, "errors": [{"statusCode": code, "message": message, "fields": []}]});
            n
        ]),
        None => error(StatusCode::BAD_REQUEST, code, message, &[]),
    }
}

#[derive(Debug, Default)]
pub struct Org {
    pub cfg: OrgConfig,
    pub leads: BTreeMap<String, Map<String, Value>>,
    /// Lead ids by (External ID field, value); checked against the Lead on use.
    by_external: HashMap<(String, String), Vec<String>>,
    pub deleted: HashSet<String>,
    /// Merged-away Leads and the Lead each was merged into.
    merged_into: HashMap<String, String>,
    tokens: HashSet<String>,
    pub token_requests: u64,
    pub api_calls: u64,
    /// Calls made by this app (leadbridge), against `app_quota`.
    pub app_calls: u64,
    /// Every REST call: (method, path after the version).
    pub calls: Vec<(String, String)>,
    /// The SOQL of every `query` and `queryAll` call.
    pub soql: Vec<String>,
    faults: VecDeque<Fault>,
    pub outage: bool,
    /// While set, the token endpoint answers 307 to this URL (a hostile or
    /// misconfigured proxy): a client that follows it re-posts its secret there.
    pub token_redirect: Option<String>,
    /// While set, token answers name this `instance_url` instead of the emulator.
    pub instance_url: Option<String>,
    pub latency: Duration,
    in_flight: HashMap<String, u32>,
    /// The headers of the request being served (set under the lock).
    ctx: SaveCtx,
    pub max_in_flight_per_lead: u32,
    next_id: u64,
}

/// Every Lead the org holds, by Id: a look into the org for people
/// trying leadbridge out (not a Salesforce endpoint).
async fn list_leads(data: web::Data<Shared>) -> HttpResponse {
    let org = data.org.lock().unwrap();
    HttpResponse::Ok().json(org.leads.values().collect::<Vec<_>>())
}

/// A running emulator on a free local port.
pub struct Emulator {
    pub base: String,
    pub org: Arc<Mutex<Org>>,
    handle: ServerHandle,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { handle.stop(false).await });
        }
    }
}

impl Emulator {
    /// Starts an org on a free local port, serving on the current runtime.
    pub async fn start(cfg: OrgConfig) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self::start_on(cfg, listener)
    }

    /// Starts an org that serves on `listener`.
    pub fn start_on(cfg: OrgConfig, listener: std::net::TcpListener) -> Self {
        let org = Arc::new(Mutex::new(Org {
            cfg,
            ..Org::default()
        }));
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let data = web::Data::new(Shared {
            org: org.clone(),
            base: base.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/services/oauth2/token", web::post().to(token))
                .route("/services/data/{version}/{tail:.*}", web::route().to(rest))
                .route("/emulator/leads", web::get().to(list_leads))
        })
        .workers(2)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { base, org, handle }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Org) -> T) -> T {
        f(&mut self.org.lock().unwrap())
    }

    pub fn leads(&self) -> Vec<Map<String, Value>> {
        self.with(|o| {
            o.leads
                .iter()
                .filter(|(id, _)| !o.deleted.contains(*id))
                .map(|(_, l)| l.clone())
                .collect()
        })
    }

    /// How many Leads exist (without copying them).
    pub fn lead_count(&self) -> usize {
        self.with(|o| o.leads.keys().filter(|id| !o.deleted.contains(*id)).count())
    }

    pub fn lead(&self, id: &str) -> Option<Map<String, Value>> {
        self.with(|o| o.leads.get(id).filter(|_| !o.deleted.contains(id)).cloned())
    }

    pub fn token_requests(&self) -> u64 {
        self.with(|o| o.token_requests)
    }

    /// Writes (creates, updates, upserts, collections) received.
    pub fn writes(&self) -> usize {
        self.with(|o| {
            o.calls
                .iter()
                .filter(|(m, p)| m != "GET" && !p.ends_with("describe"))
                .count()
        })
    }

    pub fn calls(&self) -> Vec<(String, String)> {
        self.with(|o| o.calls.clone())
    }

    /// Every token issued so far stops working (session timeout).
    pub fn expire_tokens(&self) {
        self.with(|o| o.tokens.clear());
    }

    /// The admin (de)activates countries: from now on only the others are
    /// in describe and accepted.
    pub fn set_inactive_countries(&self, codes: &[&str]) {
        self.with(|o| o.cfg.inactive_countries = codes.iter().map(|c| c.to_string()).collect());
    }

    pub fn fail_next(&self, fault: Fault, times: usize) {
        self.with(|o| o.faults.extend(std::iter::repeat_n(fault, times)));
    }

    /// The token endpoint answers `307 Temporary Redirect` to `url` from now on.
    pub fn redirect_token_to(&self, url: &str) {
        self.with(|o| o.token_redirect = Some(url.to_string()));
    }

    /// Token answers name `url` as the org's `instance_url` from now on.
    pub fn set_instance_url(&self, url: &str) {
        self.with(|o| o.instance_url = Some(url.to_string()));
    }

    /// While on, every call (token and REST) answers 503.
    pub fn set_outage(&self, on: bool) {
        self.with(|o| o.outage = on);
    }

    pub fn set_latency(&self, d: Duration) {
        self.with(|o| o.latency = d);
    }

    /// A user deletes the Lead.
    pub fn delete_lead(&self, id: &str) {
        self.with(|o| o.deleted.insert(id.to_string()));
    }

    /// A user merges `victim` into `master`: the victim is deleted, and
    /// `queryAll` shows it with `IsDeleted` and `MasterRecordId`.
    pub fn merge_leads(&self, master: &str, victim: &str) {
        self.with(|o| {
            o.deleted.insert(victim.to_string());
            o.merged_into.insert(victim.to_string(), master.to_string());
        });
    }

    /// The recycle bin is emptied: deleted Leads are gone, even from `queryAll`.
    pub fn empty_recycle_bin(&self) {
        self.with(|o| {
            for id in o.deleted.clone() {
                o.leads.remove(&id);
                o.merged_into.remove(&id);
            }
        });
    }

    /// A rep takes the Lead (changes its owner in Salesforce).
    pub fn set_owner(&self, id: &str, owner: &str) {
        self.with(|o| {
            if let Some(l) = o.leads.get_mut(id) {
                l.insert("OwnerId".into(), Value::String(owner.into()));
            }
        });
    }

    /// Puts a Lead in the org as a user or an import would (no rules run).
    pub fn insert_lead(&self, fields: Value) -> String {
        self.with(|o| {
            let id = o.new_id();
            let mut record = fields.as_object().cloned().unwrap_or_default();
            record.insert("Id".into(), Value::String(id.clone()));
            record.insert("IsConverted".into(), Value::Bool(false));
            record.insert("OwnerId".into(), Value::String(RUN_AS_USER.into()));
            record.insert("CreatedById".into(), Value::String(IMPORT_USER.into()));
            let month_ago = chrono::Utc::now() - chrono::Duration::days(30);
            record.insert("CreatedDate".into(), json!(sf_datetime(month_ago)));
            o.store_lead(&id, record);
            id
        })
    }

    /// A user converts the Lead.
    pub fn convert_lead(&self, id: &str) {
        self.with(|o| {
            o.leads
                .get_mut(id)
                .unwrap()
                .insert("IsConverted".into(), Value::Bool(true));
        });
    }

    /// Sets the org's API usage (other integrations' calls count too).
    pub fn set_api_calls(&self, n: u64) {
        self.with(|o| o.api_calls = n);
    }

    pub fn max_in_flight_per_lead(&self) -> u32 {
        self.with(|o| o.max_in_flight_per_lead)
    }
}

struct Shared {
    org: Arc<Mutex<Org>>,
    base: String,
}

fn errors(status: StatusCode, list: Vec<Value>) -> HttpResponse {
    HttpResponse::build(status).json(Value::Array(list))
}

fn error(status: StatusCode, code: &str, message: &str, fields: &[&str]) -> HttpResponse {
    errors(
        status,
        vec![json!({"message": message, "errorCode": code, "fields": fields})],
    )
}

fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": error, "error_description": description}))
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .content_type("text/html")
        .body("<html><body>Service Unavailable</body></html>")
}

async fn token(req: HttpRequest, body: web::Bytes, s: web::Data<Shared>) -> HttpResponse {
    let latency = s.org.lock().unwrap().latency;
    tokio::time::sleep(latency).await;
    let mut o = s.org.lock().unwrap();
    o.token_requests += 1;
    if o.outage {
        return unavailable();
    }
    if let Some(url) = &o.token_redirect {
        return HttpResponse::TemporaryRedirect()
            .insert_header(("location", url.as_str()))
            .finish();
    }
    let ctype = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return oauth_error(
            "invalid_request",
            "must use application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let (mut id, mut secret) = (
        form.get("client_id").cloned(),
        form.get("client_secret").cloned(),
    );
    if let Some(basic) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .unwrap_or_default();
        if let Some((i, p)) = String::from_utf8_lossy(&decoded).split_once(':') {
            id = Some(i.to_string());
            secret = Some(p.to_string());
        }
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || !o.cfg.flow_enabled
    {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    if id.as_deref() != Some(o.cfg.client_id.as_str()) {
        return oauth_error("invalid_client_id", "client identifier invalid");
    }
    if secret.as_deref() != Some(o.cfg.client_secret.as_str()) {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    if !o.cfg.run_as_user {
        return oauth_error("invalid_grant", "no client credentials user enabled");
    }
    let access = format!("00Dxx0000000001!{}", uuid::Uuid::new_v4().simple());
    o.tokens.insert(access.clone());
    let issued = chrono::Utc::now().timestamp_millis().to_string();
    HttpResponse::Ok().json(json!({
        "access_token": access,
        "signature": "c2lnbmF0dXJl",
        "scope": "api",
        "instance_url": o.instance_url.clone().unwrap_or_else(|| s.base.clone()),
        "id": format!("{}/id/00Dxx0000000001EAA/005xx000001Sv6AAAE", s.base),
        "token_type": "Bearer",
        "issued_at": issued,
        "api_instance_url": format!("{}/api", s.base),
    }))
}

fn describe(cfg: &OrgConfig) -> Vec<Value> {
    let text = |name: &str, kind: &str, len: usize| json!({"name": name, "type": kind, "length": len, "createable": true, "updateable": true, "nillable": true, "externalId": false});
    let mut fields = vec![
        json!({"name": "Id", "type": "id", "length": 18, "createable": false, "updateable": false, "nillable": false, "externalId": false}),
        json!({"name": "LastName", "type": "string", "length": 80, "createable": true, "updateable": true, "nillable": false, "externalId": false}),
        text("FirstName", "string", 40),
        json!({"name": "Company", "type": "string", "length": 255, "createable": true, "updateable": true, "nillable": false, "externalId": false}),
        text("Email", "email", 80),
        text("Phone", "phone", 40),
        text("Street", "textarea", 255),
        text("City", "string", 40),
        text("State", "string", 80),
        text("PostalCode", "string", 20),
        text("Country", "string", 80),
        json!({"name": "IsConverted", "type": "boolean", "length": 0, "createable": false, "updateable": false, "nillable": false, "externalId": false}),
        json!({"name": "OwnerId", "type": "reference", "length": 18, "createable": true, "updateable": true, "nillable": false, "externalId": false}),
    ];
    if cfg.middle_name {
        fields.push(text("MiddleName", "string", 40));
    }
    if cfg.country_picklists {
        let countries = active_countries(cfg);
        let mut country = text("CountryCode", "picklist", 255);
        country["restrictedPicklist"] = json!(true);
        country["dependentPicklist"] = json!(false);
        country["controllerName"] = Value::Null;
        country["picklistValues"] = countries
            .iter()
            .map(|(code, label)| json!({"active": true, "defaultValue": false, "label": label, "validFor": null, "value": code}))
            .collect();
        let mut state = text("StateCode", "picklist", 255);
        state["restrictedPicklist"] = json!(true);
        state["dependentPicklist"] = json!(true);
        state["controllerName"] = json!("CountryCode");
        // validFor: bit i (from the left of the decoded bytes) is the
        // controller's i-th value.
        let mut states = Vec::new();
        for (of, code, label) in STATES {
            let Some(i) = countries.iter().position(|(c, _)| c == of) else {
                continue;
            };
            let mut bits = vec![0u8; countries.len().div_ceil(8)];
            bits[i / 8] |= 0x80 >> (i % 8);
            let valid_for = base64::engine::general_purpose::STANDARD.encode(bits);
            states.push(json!({"active": true, "defaultValue": false, "label": label, "validFor": valid_for, "value": code}));
        }
        state["picklistValues"] = Value::Array(states);
        fields.push(country);
        fields.push(state);
    }
    for (name, len) in &cfg.custom_fields {
        fields.push(text(name, "string", *len));
    }
    for name in &cfg.external_ids {
        fields.push(json!({"name": name, "type": "string", "length": 255, "createable": true, "updateable": true, "nillable": true, "externalId": true}));
    }
    // Every describe field has a label and says whether it is custom.
    for f in &mut fields {
        let name = f["name"].as_str().unwrap().to_string();
        f["custom"] = json!(name.ends_with("__c"));
        f["label"] = json!(label_of(&name));
    }
    fields
}

/// A label as Salesforce's setup makes one: `B2C_Status__c` → "B2C Status",
/// `LastName` → "Last Name" (and the few that differ, as in a real org).
fn label_of(name: &str) -> String {
    match name {
        "Id" => return "Lead ID".into(),
        "Street" => return "Street".into(),
        "PostalCode" => return "Zip/Postal Code".into(),
        "StateCode" => return "State/Province Code".into(),
        "CountryCode" => return "Country Code".into(),
        "State" => return "State/Province".into(),
        "IsConverted" => return "Converted".into(),
        "OwnerId" => return "Owner ID".into(),
        _ => {}
    }
    if let Some(custom) = name.strip_suffix("__c") {
        return custom.replace('_', " ");
    }
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if i > 0 && ch.is_ascii_uppercase() {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

fn field_meta(cfg: &OrgConfig) -> HashMap<String, Value> {
    describe(cfg)
        .into_iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f))
        .collect()
}

/// One record-level error, in single-record form (`errorCode`).
struct RecErr {
    code: &'static str,
    message: String,
    fields: Vec<String>,
    /// A duplicate rule's `duplicateResult` (single-record answers only).
    duplicate_result: Option<Value>,
}

impl RecErr {
    fn new(code: &'static str, message: impl Into<String>, fields: &[&str]) -> Self {
        Self {
            code,
            message: message.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            duplicate_result: None,
        }
    }
    fn single(&self) -> Value {
        let mut v = json!({"message": self.message, "errorCode": self.code, "fields": self.fields});
        if let Some(d) = &self.duplicate_result {
            v["duplicateResult"] = d.clone();
        }
        v
    }
    fn composite(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }
}

fn valid_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !v.contains(char::is_whitespace)
        && !domain.contains('@')
}

/// States the emulated org has. A real org ships states for about ten
/// countries; these are a few of three, with WA in two of them (Washington,
/// Western Australia), as in a real org.
pub const STATES: &[(&str, &str, &str)] = &[
    ("US", "CA", "California"),
    ("US", "NY", "New York"),
    ("US", "TX", "Texas"),
    ("US", "WA", "Washington"),
    ("CA", "BC", "British Columbia"),
    ("CA", "ON", "Ontario"),
    ("CA", "QC", "Quebec"),
    ("AU", "NSW", "New South Wales"),
    ("AU", "VIC", "Victoria"),
    ("AU", "WA", "Western Australia"),
];

/// A country's integration value: its ISO name as Salesforce spells it.
pub fn country_label(c: &celes::Country) -> String {
    match c.alpha2 {
        "US" => "United States".into(),
        "GB" => "United Kingdom".into(),
        _ => c.long_name.trim_start_matches("The ").to_string(),
    }
}

/// The active countries, as describe lists them (by name): (code, name).
fn active_countries(cfg: &OrgConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = celes::Country::get_countries()
        .iter()
        .filter(|c| !cfg.inactive_countries.iter().any(|i| i == c.alpha2))
        .map(|c| (c.alpha2.to_string(), country_label(c)))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn field_integrity(message: String, field: &str) -> RecErr {
    RecErr::new("FIELD_INTEGRITY_EXCEPTION", message, &[field])
}

/// State and Country/Territory Picklists, as Salesforce's field-syncing
/// logic documents them: a code sets its text to the integration value; a
/// text alone must be an active integration value and sets the code; a state
/// must be one of its country's; clearing the country clears the state; a
/// create with mismatched code and text takes the code's text, an update
/// with both mismatched is refused.
fn validate_address(
    cfg: &OrgConfig,
    body: &Map<String, Value>,
    record: &mut Map<String, Value>,
    creating: bool,
) -> Result<(), RecErr> {
    let countries = active_countries(cfg);
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let country_problem = "There's a problem with this country, even though it may appear correct. Please select a country/territory from the list of valid countries.";
    let state_problem = "There's a problem with this state, even though it may appear correct. Please select a state from the list of valid states.";
    if let Some(v) = body.get("CountryCode") {
        match v.as_str() {
            None => {
                for k in ["Country", "StateCode", "State"] {
                    record.insert(k.into(), Value::Null);
                }
            }
            Some(code) => {
                let Some((_, label)) = countries.iter().find(|(c, _)| c == code) else {
                    return Err(field_integrity(format!("The CountryCode field contains {code}, which isn't an available country/territory. Your administrator can add it for you."), "CountryCode"));
                };
                if !creating && text("Country").is_some_and(|t| &t != label) {
                    return Err(field_integrity(country_problem.into(), "Country"));
                }
                record.insert("Country".into(), json!(label));
            }
        }
    } else if let Some(v) = body.get("Country") {
        match v.as_str() {
            None => {
                for k in ["CountryCode", "StateCode", "State"] {
                    record.insert(k.into(), Value::Null);
                }
            }
            Some(t) => match countries.iter().find(|(_, l)| l == t) {
                Some((code, _)) => {
                    record.insert("CountryCode".into(), json!(code));
                }
                None => return Err(field_integrity(country_problem.into(), "Country")),
            },
        }
    }
    let country = record
        .get("CountryCode")
        .and_then(Value::as_str)
        .map(str::to_string);
    let states: Vec<(&str, &str)> = STATES
        .iter()
        .filter(|(of, _, _)| Some(*of) == country.as_deref())
        .map(|(_, code, label)| (*code, *label))
        .collect();
    if let Some(v) = body.get("StateCode") {
        match v.as_str() {
            None => {
                record.insert("State".into(), Value::Null);
            }
            Some(code) => {
                let Some((_, label)) = states.iter().find(|(c, _)| *c == code) else {
                    return Err(field_integrity(format!("The StateCode field contains {code}, which isn't an available state. Your administrator can add it for you."), "StateCode"));
                };
                if !creating && text("State").is_some_and(|t| t != *label) {
                    return Err(field_integrity(state_problem.into(), "State"));
                }
                record.insert("State".into(), json!(label));
            }
        }
    } else if let Some(v) = body.get("State") {
        match v.as_str() {
            None => {
                record.insert("StateCode".into(), Value::Null);
            }
            Some(t) => match states.iter().find(|(_, l)| *l == t) {
                Some((code, _)) => {
                    record.insert("StateCode".into(), json!(code));
                }
                None => return Err(field_integrity(state_problem.into(), "State")),
            },
        }
    } else if let Some(kept) = record.get("StateCode").and_then(Value::as_str) {
        // The country changed under a state it does not have.
        if !states.iter().any(|(c, _)| *c == kept) {
            return Err(field_integrity(state_problem.into(), "StateCode"));
        }
    }
    Ok(())
}

/// Checks `body` against the org's Lead and returns the record it makes.
fn validate(
    cfg: &OrgConfig,
    body: &Value,
    existing: Option<&Map<String, Value>>,
    creating: bool,
) -> Result<Map<String, Value>, Vec<RecErr>> {
    let Value::Object(body) = body else {
        return Err(vec![RecErr::new(
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object",
            &[],
        )]);
    };
    let meta = field_meta(cfg);
    let mut record = existing.cloned().unwrap_or_default();
    let mut errs = Vec::new();
    for (key, value) in body {
        if key == "attributes" {
            continue;
        }
        let Some(m) = meta.get(key) else {
            return Err(vec![RecErr::new(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type Lead"),
                &[],
            )]);
        };
        let allowed = if creating {
            m["createable"] == true
        } else {
            m["updateable"] == true
        };
        if !allowed {
            errs.push(RecErr::new("INVALID_FIELD_FOR_INSERT_UPDATE", format!("Unable to create/update fields: {key}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."), &[key]));
            continue;
        }
        match value {
            Value::Null => {
                record.insert(key.clone(), Value::Null);
            }
            Value::String(v) => {
                let max = m["length"].as_u64().unwrap_or(0) as usize;
                if max > 0 && v.chars().count() > max {
                    errs.push(RecErr::new(
                        "STRING_TOO_LONG",
                        format!("{key}: data value too large: {v} (max length={max})"),
                        &[key],
                    ));
                    continue;
                }
                if m["type"] == "email" && !valid_email(v) {
                    errs.push(RecErr::new(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{key}: invalid email address: {v}"),
                        &[key],
                    ));
                    continue;
                }
                record.insert(key.clone(), Value::String(v.clone()));
            }
            other => {
                errs.push(RecErr::new(
                    "JSON_PARSER_ERROR",
                    format!(
                        "Cannot deserialize instance of string from {other} value for field {key}"
                    ),
                    &[key],
                ));
            }
        }
    }
    if cfg.country_picklists && errs.is_empty() {
        if let Err(e) = validate_address(cfg, body, &mut record, creating) {
            errs.push(e);
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let missing: Vec<&str> = ["LastName", "Company"]
        .into_iter()
        .filter(|f| {
            record
                .get(*f)
                .and_then(Value::as_str)
                .is_none_or(|v| v.trim().is_empty())
        })
        .collect();
    if !missing.is_empty() {
        return Err(vec![RecErr::new(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
            &missing,
        )]);
    }
    // Validation rules run after the system checks; each failing rule is one
    // error, shown at the top of the page (no `fields`), as an admin's rule
    // with "Error location: Top of Page" answers.
    let failed: Vec<RecErr> = cfg
        .validation_rules
        .iter()
        .filter(|r| {
            record
                .get(&r.field)
                .and_then(Value::as_str)
                .is_none_or(|v| v.trim().is_empty())
        })
        .map(|r| RecErr::new("FIELD_CUSTOM_VALIDATION_EXCEPTION", r.message.clone(), &[]))
        .collect();
    if !failed.is_empty() {
        return Err(failed);
    }
    Ok(record)
}

impl Org {
    /// Stores a record and indexes its External ID values.
    fn store_lead(&mut self, id: &str, record: Map<String, Value>) {
        for field in &self.cfg.external_ids {
            if let Some(v) = record.get(field).and_then(Value::as_str) {
                let ids = self
                    .by_external
                    .entry((field.clone(), v.to_string()))
                    .or_default();
                if !ids.iter().any(|i| i == id) {
                    ids.push(id.to_string());
                }
            }
        }
        self.leads.insert(id.to_string(), record);
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("00Q{:012}AAA", self.next_id)
    }

    fn converted(&self, id: &str) -> bool {
        self.leads
            .get(id)
            .is_some_and(|l| l.get("IsConverted") == Some(&Value::Bool(true)))
    }

    fn create(&mut self, body: &Value) -> Result<String, Vec<RecErr>> {
        if let Some(Value::Object(m)) = Some(body) {
            if m.contains_key("Id") {
                return Err(vec![RecErr::new(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "Unable to create/update fields: Id.",
                    &["Id"],
                )]);
            }
        }
        let mut record = validate(&self.cfg, body, None, true)?;
        self.check_duplicates(&record, None)?;
        let owner = match (&self.cfg.assignment_owner, self.ctx.auto_assign) {
            (Some(queue), true) => queue.clone(),
            _ => RUN_AS_USER.to_string(),
        };
        record.insert("OwnerId".into(), Value::String(owner));
        record.insert("CreatedById".into(), Value::String(RUN_AS_USER.into()));
        record.insert("CreatedDate".into(), json!(sf_datetime(chrono::Utc::now())));
        let id = self.new_id();
        record.insert("Id".into(), Value::String(id.clone()));
        record.insert("IsConverted".into(), Value::Bool(false));
        self.store_lead(&id.clone(), record);
        Ok(id)
    }

    fn update(&mut self, id: &str, body: &Value) -> Result<(), (StatusCode, Vec<RecErr>)> {
        if self.deleted.contains(id) {
            return Err((
                StatusCode::NOT_FOUND,
                vec![RecErr::new("ENTITY_IS_DELETED", "entity is deleted", &[])],
            ));
        }
        if !self.leads.contains_key(id) {
            return Err((
                StatusCode::NOT_FOUND,
                vec![RecErr::new(
                    "NOT_FOUND",
                    "The requested resource does not exist",
                    &[],
                )],
            ));
        }
        if self.converted(id) {
            return Err((
                StatusCode::BAD_REQUEST,
                vec![RecErr::new(
                    "CANNOT_UPDATE_CONVERTED_LEAD",
                    "cannot reference converted lead",
                    &[],
                )],
            ));
        }
        let mut record = validate(&self.cfg, body, self.leads.get(id), false)
            .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        self.check_duplicates(&record, Some(id))
            .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        if let (Some(queue), true) = (&self.cfg.assignment_owner, self.ctx.auto_assign) {
            // The assignment rule runs on updates too: the rep loses the Lead.
            record.insert("OwnerId".into(), Value::String(queue.clone()));
        }
        self.store_lead(id, record);
        Ok(())
    }

    /// The duplicate rule's verdict on saving `record` (as `id`, when it exists).
    fn check_duplicates(
        &self,
        record: &Map<String, Value>,
        id: Option<&str>,
    ) -> Result<(), Vec<RecErr>> {
        let Some(action) = self.cfg.duplicate_rule else {
            return Ok(());
        };
        if action == DuplicateAction::Alert && self.ctx.allow_save {
            return Ok(());
        }
        let text = |r: &Map<String, Value>, f: &str| {
            r.get(f)
                .and_then(Value::as_str)
                .map(|v| v.trim().to_lowercase())
                .filter(|v| !v.is_empty())
        };
        let same = |a: &Map<String, Value>, b: &Map<String, Value>, f: &str| {
            text(a, f).is_some() && text(a, f) == text(b, f)
        };
        let matched: Vec<&String> = self
            .leads
            .iter()
            .filter(|(other, lead)| {
                Some(other.as_str()) != id
                    && !self.deleted.contains(*other)
                    && lead.get("IsConverted") != Some(&Value::Bool(true))
                    && (same(record, lead, "Email")
                        || (same(record, lead, "FirstName")
                            && same(record, lead, "LastName")
                            && same(record, lead, "Phone")))
            })
            .map(|(other, _)| other)
            .collect();
        if matched.is_empty() {
            return Ok(());
        }
        let message = match action {
            DuplicateAction::Alert => "Use one of these records?",
            DuplicateAction::Block => {
                "You're creating a duplicate record. We recommend you use an existing record instead."
            }
        };
        let records: Vec<Value> = matched
            .iter()
            .map(|m| json!({"additionalInformation": [], "fieldDiffs": [], "matchConfidence": 100.0,
                "record": {"attributes": {"type": "Lead", "url": format!("/services/data/v62.0/sobjects/Lead/{m}")}, "Id": m}}))
            .collect();
        let mut err = RecErr::new("DUPLICATES_DETECTED", message, &[]);
        err.duplicate_result = Some(json!({
            "allowSave": action == DuplicateAction::Alert,
            "duplicateRule": "Standard_Lead_Duplicate_Rule",
            "duplicateRuleEntityType": "Lead",
            "errorMessage": message,
            "matchResults": [{"entityType": "Lead", "errors": [], "matchEngine": "FuzzyMatchEngine",
                "matchRecords": records, "rule": "Standard_Lead_Match_Rule_v1_0",
                "size": matched.len(), "success": true}],
        }));
        Err(vec![err])
    }

    /// Upsert by an external id: Ok((id, created)).
    fn upsert(
        &mut self,
        field: &str,
        value: &str,
        body: &Value,
    ) -> Result<(String, bool), (StatusCode, Vec<RecErr>)> {
        if !self.cfg.external_ids.iter().any(|f| f == field) {
            return Err((
                StatusCode::NOT_FOUND,
                vec![RecErr::new(
                    "NOT_FOUND",
                    format!(
                        "Provided external ID field does not exist or is not accessible: {field}"
                    ),
                    &[],
                )],
            ));
        }
        if body.get("Id").is_some() {
            return Err((
                StatusCode::BAD_REQUEST,
                vec![RecErr::new(
                    "INVALID_FIELD",
                    "Id is not allowed in the body of an upsert",
                    &["Id"],
                )],
            ));
        }
        let key = (field.to_string(), value.to_string());
        let matches: Vec<String> = self
            .by_external
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|id| {
                !self.deleted.contains(*id)
                    && self
                        .leads
                        .get(*id)
                        .and_then(|l| l.get(field))
                        .and_then(Value::as_str)
                        == Some(value)
            })
            .cloned()
            .collect();
        match matches.as_slice() {
            [] => {
                let mut b = body.clone();
                b.as_object_mut()
                    .map(|m| m.insert(field.to_string(), Value::String(value.to_string())));
                self.create(&b)
                    .map(|id| (id, true))
                    .map_err(|e| (StatusCode::BAD_REQUEST, e))
            }
            [id] => {
                let id = id.clone();
                self.update(&id, body).map(|_| (id, false))
            }
            _ => Err((StatusCode::MULTIPLE_CHOICES, vec![])),
        }
    }
}

/// Marks a write on `key` in flight for its duration, recording the peak.
struct InFlight {
    org: Arc<Mutex<Org>>,
    key: String,
}

impl InFlight {
    fn enter(org: &Arc<Mutex<Org>>, key: String) -> Self {
        let mut o = org.lock().unwrap();
        let n = o.in_flight.entry(key.clone()).or_default();
        *n += 1;
        let n = *n;
        o.max_in_flight_per_lead = o.max_in_flight_per_lead.max(n);
        Self {
            org: org.clone(),
            key,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut o = self.org.lock().unwrap();
        if let Some(n) = o.in_flight.get_mut(&self.key) {
            *n -= 1;
        }
    }
}

async fn rest(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    s: web::Data<Shared>,
) -> HttpResponse {
    let (version, tail) = path.into_inner();
    let method = req.method().to_string();
    let version_ok = version
        .strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b == "0");
    if !version_ok {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        );
    }
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let latency;
    let mut answer_lost = false;
    {
        let mut o = s.org.lock().unwrap();
        if o.outage {
            return unavailable();
        }
        if !bearer.is_some_and(|t| o.tokens.contains(&t)) {
            return error(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
                &[],
            );
        }
        o.api_calls += 1;
        o.app_calls += 1;
        o.calls.push((method.clone(), tail.clone()));
        if o.api_calls > o.cfg.daily_max {
            return error(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
                &[],
            );
        }
        match o.faults.pop_front() {
            Some(Fault::Unavailable) => return unavailable(),
            Some(Fault::LockRow) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record or 1 records",
                    &[],
                )
            }
            Some(Fault::DailyLimit) => {
                return error(
                    StatusCode::FORBIDDEN,
                    "REQUEST_LIMIT_EXCEEDED",
                    "TotalRequests Limit exceeded.",
                    &[],
                )
            }
            Some(Fault::TriggerLock) => {
                let code = "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY";
                return automation_failure(&tail, &body, code, TRIGGER_LOCK);
            }
            Some(Fault::FlowLock) => {
                let code = "CANNOT_EXECUTE_FLOW_TRIGGER";
                return automation_failure(&tail, &body, code, FLOW_LOCK);
            }
            Some(Fault::Maintenance) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE",
                    "Updates can't be made during maintenance. Try again later.",
                    &[],
                )
            }
            Some(Fault::AnswerLost) => answer_lost = true,
            None => {}
        }
        latency = o.latency;
    }
    let usage = {
        let o = s.org.lock().unwrap();
        // As documented: parts separated by "; ", the app's quota with its name.
        let mut v = format!("api-usage={}/{}", o.api_calls, o.cfg.daily_max);
        if let Some(quota) = o.cfg.app_quota {
            v.push_str(&format!(
                "; per-app-api-usage={}/{quota}(appName=leadbridge)",
                o.app_calls
            ));
        }
        v
    };
    let parsed: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "JSON_PARSER_ERROR",
                    &format!("Unexpected character: {e}"),
                    &[],
                )
            }
        }
    };
    let _guards: Vec<InFlight> = lead_keys(&method, &tail, parsed.as_ref())
        .into_iter()
        .map(|k| InFlight::enter(&s.org, k))
        .collect();
    tokio::time::sleep(latency).await;
    let ctx = match save_ctx(&req, &version) {
        Ok(ctx) => ctx,
        Err(res) => return *res,
    };
    let mut res = if method == "GET" && tail.trim_end_matches('/') == "queryAll" {
        query_all(&s.org, req.query_string())
    } else if method == "GET" && tail.trim_end_matches('/') == "query" {
        query(&s.org, req.query_string())
    } else {
        route(&s.org, &method, &tail, parsed, ctx)
    };
    if answer_lost {
        tokio::time::sleep(ANSWER_LOST_AFTER).await;
    }
    res.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("sforce-limit-info"),
        actix_web::http::header::HeaderValue::from_str(&usage).unwrap(),
    );
    res
}

/// `GET queryAll/?q=…`: SOQL that also sees deleted and merged records. The
/// emulator knows one query, the one a client of a merged Lead needs:
/// `SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE Id = '…'`; any
/// other text is `MALFORMED_QUERY`, as a typo would be.
fn query_all(org: &Arc<Mutex<Org>>, query: &str) -> HttpResponse {
    let q = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let words: Vec<&str> = q.split_whitespace().collect();
    let shape = [
        "select",
        "id,",
        "isdeleted,",
        "masterrecordid",
        "from",
        "lead",
        "where",
        "id",
        "=",
    ];
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let id = match (lower.len() == shape.len() + 1, words.last()) {
        (true, Some(last)) if lower[..shape.len()] == shape => last
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric())),
        _ => None,
    };
    let Some(id) = id else {
        return error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            &format!("unexpected token in: {q}"),
            &[],
        );
    };
    let o = org.lock().unwrap();
    let records: Vec<Value> = o
        .leads
        .get(id)
        .map(|_| {
            json!({"attributes": {"type": "Lead", "url": format!("/services/data/v62.0/sobjects/Lead/{id}")},
                "Id": id, "IsDeleted": o.deleted.contains(id),
                "MasterRecordId": o.merged_into.get(id)})
        })
        .into_iter()
        .collect();
    HttpResponse::Ok().json(json!({"totalSize": records.len(), "done": true, "records": records}))
}

/// One SOQL token: a word, a quoted string (escapes decoded), or an operator.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Text(String),
    Op(String),
}

fn soql_tokens(q: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next()? {
                    '\'' => break,
                    '\\' => text.push(match chars.next()? {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        c @ ('\'' | '"' | '\\') => c,
                        _ => return None,
                    }),
                    c => text.push(c),
                }
            }
            out.push(Tok::Text(text));
        } else if "=<>!".contains(c) {
            let mut op = String::new();
            while let Some(&c) = chars.peek().filter(|c| "=<>!".contains(**c)) {
                op.push(c);
                chars.next();
            }
            out.push(Tok::Op(op));
        } else if c == ',' {
            chars.next();
            out.push(Tok::Op(",".into()));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars
                .peek()
                .filter(|c| !c.is_whitespace() && !"'=<>!,".contains(**c))
            {
                word.push(c);
                chars.next();
            }
            out.push(Tok::Word(word));
        }
    }
    Some(out)
}

/// `GET query/?q=…`: the emulator knows the query a lost create's lookup
/// makes: `SELECT Id FROM Lead WHERE cond (AND cond)* [ORDER BY CreatedDate]`
/// where a cond is `CreatedById = '…'`, `CreatedDate >= 2026-12-03T06:00:00Z`
/// (a datetime literal, never quoted) or `LastName|Email|Company = '…'|null`.
/// Text compares without regard to case, as SOQL's does; deleted Leads are
/// not seen. Anything else is `MALFORMED_QUERY`.
fn query(org: &Arc<Mutex<Org>>, query: &str) -> HttpResponse {
    let q = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let malformed = || {
        error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            &format!("unexpected token in: {q}"),
            &[],
        )
    };
    org.lock().unwrap().soql.push(q.clone());
    let Some(toks) = soql_tokens(&q) else {
        return malformed();
    };
    let word =
        |i: usize, w: &str| matches!(toks.get(i), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w));
    if !(word(0, "SELECT")
        && word(1, "Id")
        && word(2, "FROM")
        && word(3, "Lead")
        && word(4, "WHERE"))
    {
        return malformed();
    }
    enum Cond {
        Eq(String, Option<String>),
        Since(chrono::DateTime<chrono::Utc>),
    }
    let mut conds = Vec::new();
    let mut i = 5;
    loop {
        let (Some(Tok::Word(field)), Some(Tok::Op(op)), Some(value)) =
            (toks.get(i), toks.get(i + 1), toks.get(i + 2))
        else {
            return malformed();
        };
        let cond = match (field.as_str(), op.as_str(), value) {
            ("CreatedDate", ">=", Tok::Word(dt)) => {
                match chrono::DateTime::parse_from_rfc3339(dt) {
                    Ok(t) => Cond::Since(t.with_timezone(&chrono::Utc)),
                    Err(_) => return malformed(),
                }
            }
            ("CreatedById" | "LastName" | "Email" | "Company", "=", Tok::Text(v)) => {
                Cond::Eq(field.clone(), Some(v.clone()))
            }
            ("LastName" | "Email" | "Company", "=", Tok::Word(w))
                if w.eq_ignore_ascii_case("null") =>
            {
                Cond::Eq(field.clone(), None)
            }
            _ => return malformed(),
        };
        conds.push(cond);
        i += 3;
        if word(i, "AND") {
            i += 1;
            continue;
        }
        break;
    }
    let ordered = word(i, "ORDER") && word(i + 1, "BY") && word(i + 2, "CreatedDate");
    if ordered {
        i += 3;
    }
    if i != toks.len() {
        return malformed();
    }
    let o = org.lock().unwrap();
    let mut rows: Vec<(&String, &Map<String, Value>)> = o
        .leads
        .iter()
        .filter(|(id, _)| !o.deleted.contains(*id))
        .filter(|(_, lead)| {
            conds.iter().all(|c| match c {
                Cond::Eq(field, want) => {
                    let have = lead
                        .get(field)
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty());
                    match (have, want) {
                        (Some(h), Some(w)) => h.eq_ignore_ascii_case(w),
                        (None, None) => true,
                        _ => false,
                    }
                }
                Cond::Since(t) => lead
                    .get("CreatedDate")
                    .and_then(Value::as_str)
                    .and_then(|d| {
                        chrono::DateTime::parse_from_str(d, "%Y-%m-%dT%H:%M:%S%.3f%z").ok()
                    })
                    .is_some_and(|d| d >= *t),
            })
        })
        .collect();
    if ordered {
        rows.sort_by_key(|(id, lead)| {
            (
                lead.get("CreatedDate")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                (*id).clone(),
            )
        });
    }
    let records: Vec<Value> = rows
        .into_iter()
        .map(|(id, _)| json!({"attributes": {"type": "Lead", "url": format!("/services/data/v62.0/sobjects/Lead/{id}")}, "Id": id}))
        .collect();
    HttpResponse::Ok().json(json!({"totalSize": records.len(), "done": true, "records": records}))
}

/// The records a write targets, for the in-flight check: the Lead of a
/// single-record update or upsert, or every record of a collections call.
fn lead_keys(method: &str, tail: &str, body: Option<&Value>) -> Vec<String> {
    let parts: Vec<&str> = tail.trim_end_matches('/').split('/').collect();
    let records = || {
        body.and_then(|b| b.get("records"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match (method, parts.as_slice()) {
        ("PATCH", ["sobjects", "Lead", id]) => vec![id.to_string()],
        ("PATCH", ["sobjects", "Lead", field, value]) => vec![format!("{field}={value}")],
        ("PATCH", ["composite", "sobjects"]) => records()
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
            .collect(),
        ("PATCH", ["composite", "sobjects", "Lead", field]) => records()
            .iter()
            .filter_map(|r| {
                r.get(*field)
                    .and_then(Value::as_str)
                    .map(|v| format!("{field}={v}"))
            })
            .collect(),
        _ => vec![],
    }
}

fn route(
    org: &Arc<Mutex<Org>>,
    method: &str,
    tail: &str,
    body: Option<Value>,
    ctx: SaveCtx,
) -> HttpResponse {
    let parts: Vec<String> = tail
        .trim_end_matches('/')
        .split('/')
        .map(|p| {
            url::form_urlencoded::parse(format!("x={p}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let mut o = org.lock().unwrap();
    o.ctx = ctx;
    let need_body = || {
        error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body is empty",
            &[],
        )
    };
    match (method, parts.as_slice()) {
        ("GET", ["sobjects", "Lead", "describe"]) => {
            HttpResponse::Ok().json(json!({"name": "Lead", "fields": describe(&o.cfg)}))
        }
        ("POST", ["sobjects", "Lead"]) => {
            let Some(body) = body else { return need_body() };
            match o.create(&body) {
                Ok(id) => {
                    HttpResponse::Created().json(json!({"id": id, "success": true, "errors": []}))
                }
                Err(e) => errors(
                    StatusCode::BAD_REQUEST,
                    e.iter().map(RecErr::single).collect(),
                ),
            }
        }
        ("PATCH", ["sobjects", "Lead", id]) => {
            let Some(body) = body else { return need_body() };
            match o.update(id, &body) {
                Ok(()) => HttpResponse::NoContent().finish(),
                Err((status, e)) => errors(status, e.iter().map(RecErr::single).collect()),
            }
        }
        ("PATCH", ["sobjects", "Lead", field, value]) => {
            let Some(body) = body else { return need_body() };
            match o.upsert(field, value, &body) {
                Ok((id, true)) => HttpResponse::Created()
                    .json(json!({"id": id, "success": true, "errors": [], "created": true})),
                Ok((id, false)) => HttpResponse::Ok()
                    .json(json!({"id": id, "success": true, "errors": [], "created": false})),
                Err((StatusCode::MULTIPLE_CHOICES, _)) => HttpResponse::MultipleChoices()
                    .json(json!(["/services/data/v62.0/sobjects/Lead/multiple"])),
                Err((status, e)) => errors(status, e.iter().map(RecErr::single).collect()),
            }
        }
        (m @ ("POST" | "PATCH"), ["composite", "sobjects", rest @ ..]) => {
            let Some(body) = body else { return need_body() };
            collections(&mut o, m, rest, &body)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        ),
    }
}

/// sObject Collections: one 200 answer with a result per record, in order.
fn collections(o: &mut Org, method: &str, rest: &[&str], body: &Value) -> HttpResponse {
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(records) = body.get("records").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "records is required",
            &[],
        );
    };
    if records.len() > 200 {
        return error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
            &[],
        );
    }
    if o.cfg.trigger_limit.is_some_and(|n| records.len() > n) {
        let failure = json!({"success": false, "errors": [RecErr::new("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", TRIGGER_LIMIT, &[]).composite()]});
        return HttpResponse::Ok().json(vec![failure; records.len()]);
    }
    // Only an all-or-none call can roll back, so only it pays for a copy.
    let snapshot = all_or_none.then(|| (o.leads.clone(), o.by_external.clone(), o.next_id));
    let mut results = Vec::new();
    let mut failed = false;
    for rec in records {
        if rec.pointer("/attributes/type").and_then(Value::as_str) != Some("Lead") {
            failed = true;
            results.push(json!({"success": false, "errors": [RecErr::new("INVALID_TYPE", "Must send a concrete entity type.", &[]).composite()]}));
            continue;
        }
        let outcome: Result<(String, Option<bool>), Vec<RecErr>> = match (method, rest) {
            ("POST", []) => o.create(rec).map(|id| (id, None)),
            ("PATCH", []) => match rec.get("id").and_then(Value::as_str) {
                None => Err(vec![RecErr::new(
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                    &[],
                )]),
                Some(id) => {
                    let mut r = rec.clone();
                    r.as_object_mut().unwrap().remove("id");
                    let id = id.to_string();
                    o.update(&id, &r).map(|_| (id, None)).map_err(|(_, e)| e)
                }
            },
            ("PATCH", ["Lead", field]) => {
                match rec.get(*field).and_then(Value::as_str).map(str::to_string) {
                    None => Err(vec![RecErr::new(
                        "MISSING_ARGUMENT",
                        format!("{field} not specified"),
                        &[],
                    )]),
                    Some(v) => {
                        let mut r = rec.clone();
                        r.as_object_mut().unwrap().remove(*field);
                        o.upsert(field, &v, &r)
                            .map(|(id, c)| (id, Some(c)))
                            .map_err(|(_, e)| e)
                    }
                }
            }
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource does not exist",
                    &[],
                )
            }
        };
        match outcome {
            Ok((id, created)) => {
                let mut r = json!({"id": id, "success": true, "errors": []});
                if let Some(c) = created {
                    r["created"] = Value::Bool(c);
                }
                results.push(r);
            }
            Err(e) => {
                failed = true;
                results.push(json!({"success": false, "errors": e.iter().map(RecErr::composite).collect::<Vec<_>>()}));
            }
        }
    }
    if let (true, Some(snapshot)) = (failed, snapshot) {
        (o.leads, o.by_external, o.next_id) = snapshot;
        for r in results.iter_mut().filter(|r| r["success"] == true) {
            *r = json!({"success": false, "errors": [RecErr::new("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and the request was using AllOrNone header", &[]).composite()]});
        }
    }
    HttpResponse::Ok().json(Value::Array(results))
}
