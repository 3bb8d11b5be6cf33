//! The only place that reads settings: the command line and `LEADBRIDGE_*`
//! variables, plus the admin-token and master-key files of an SQLite setup.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use crate::crypto::{generate_admin_token, MasterKey};
use crate::salesforce::SalesforceSettings;
use crate::sync::SyncSettings;

/// leadbridge: B2CORE clients → Salesforce Leads.
#[derive(Debug, Parser)]
#[command(name = "leadbridge", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the process does; `serve` when none is given.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Ask the local service's /health/ready; exit 0 when ready, else 1.
    Healthcheck,
    /// Run only the sync worker (no HTTP), e.g. beside `serve` with LEADBRIDGE_WORKER=false.
    Worker,
    /// Backfill: stream an NDJSON file of clients to a running service.
    Import(ImportArgs),
}

/// `leadbridge import FILE --connection NAME [--url URL] [--token TOKEN]`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// NDJSON file: one client per line (the `data` object of a webhook).
    pub file: PathBuf,
    /// The connection whose clients these are.
    #[arg(long)]
    pub connection: String,
    /// The service's base URL [default: http:// + LEADBRIDGE_LISTEN].
    #[arg(long)]
    pub url: Option<String>,
    /// The admin token [default: LEADBRIDGE_ADMIN_TOKEN, else the token file
    /// beside the SQLite database].
    #[arg(long)]
    pub token: Option<String>,
    /// When the file was exported (RFC 3339): its rows then override webhook
    /// data older than this. Without it they only fill in what no webhook said.
    #[arg(long)]
    pub as_of: Option<String>,
}

impl ImportArgs {
    /// The admin token to send: the flag, the variable, or the SQLite token file (never created here).
    pub fn token(&self, settings: &SettingsArgs) -> anyhow::Result<SecretString> {
        if let Some(t) = self.token.as_deref().filter(|t| !t.trim().is_empty()) {
            return Ok(SecretString::from(t.trim().to_string()));
        }
        if let Some(t) = non_empty_env(ADMIN_TOKEN_ENV)? {
            return Ok(t);
        }
        let Some(db) = sqlite_file(&settings.database_url) else {
            bail!("give --token or set {ADMIN_TOKEN_ENV}");
        };
        let path = sibling(&db, "admin-token");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no --token, no {ADMIN_TOKEN_ENV}, and {} cannot be read",
                path.display()
            )
        })?;
        Ok(SecretString::from(text.trim().to_string()))
    }

    /// The service's base URL: the flag, else the local listen address.
    pub fn base_url(&self, settings: &SettingsArgs) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| local_base_url(&settings.listen))
    }
}

/// `http://` + the listen address, with a wildcard host made local.
pub fn local_base_url(listen: &str) -> String {
    let host = listen
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    format!("http://{host}")
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Settings that come from flags or environment variables.
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "LEADBRIDGE_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: String,
    /// `sqlite://PATH` (created on first start) or `postgres://…`.
    // Its value may hold a Postgres password: `--help` names the variable only.
    #[arg(
        long,
        env = "LEADBRIDGE_DATABASE_URL",
        default_value = "sqlite://leadbridge.db",
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,
    /// Allow `http://` and non-Salesforce hosts in `domainUrl` (emulators, tests).
    #[arg(
        long,
        env = "LEADBRIDGE_ALLOW_INSECURE_SALESFORCE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub allow_insecure_salesforce: bool,
    /// `pretty` or `json`; default `pretty` on a terminal, else `json`.
    #[arg(long, env = "LEADBRIDGE_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Largest accepted request body, in bytes.
    #[arg(
        long,
        env = "LEADBRIDGE_MAX_BODY_BYTES",
        default_value_t = 1024 * 1024,
        global = true
    )]
    pub max_body_bytes: usize,
    /// Run the sync worker inside `serve`.
    #[arg(
        long,
        env = "LEADBRIDGE_WORKER",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub worker: bool,
    /// How long a Salesforce access token is reused (Salesforce does not say;
    /// keep it below the org's session timeout).
    #[arg(long, env = "LEADBRIDGE_TOKEN_TTL_SECS", default_value_t = 45 * 60, global = true)]
    pub token_ttl_secs: u64,
    /// Percent of the org's daily API allocation after which only urgent
    /// writes (webhooks) go out.
    #[arg(long, env = "LEADBRIDGE_QUOTA_BUDGET_PERCENT", default_value_t = 80, global = true,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quota_budget_percent: u8,
    /// How long an idle worker waits after a webhook for more to batch with it.
    #[arg(
        long,
        env = "LEADBRIDGE_LINGER_MS",
        default_value_t = 200,
        global = true
    )]
    pub linger_ms: u64,
    /// While webhooks keep arriving, the longest a round waits after the
    /// previous one for a call's worth of events (200) to gather.
    #[arg(
        long,
        env = "LEADBRIDGE_PACE_MS",
        default_value_t = 2000,
        global = true
    )]
    pub pace_ms: u64,
    /// How long one Salesforce call may take before it counts as failed. A
    /// 200-record write through an org's triggers and flows can take minutes;
    /// Salesforce itself stops a call at 10 minutes.
    #[arg(
        long,
        env = "LEADBRIDGE_SALESFORCE_TIMEOUT_SECS",
        default_value_t = 120,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub salesforce_timeout_secs: u64,
    /// The largest answer to a Salesforce token request read, in bytes.
    #[arg(
        long,
        env = "LEADBRIDGE_SALESFORCE_MAX_TOKEN_ANSWER_BYTES",
        default_value_t = SalesforceSettings::default().max_token_answer,
        global = true
    )]
    pub salesforce_max_token_answer_bytes: usize,
    /// The largest answer to a Salesforce describe, write or query read, in bytes.
    #[arg(
        long,
        env = "LEADBRIDGE_SALESFORCE_MAX_ANSWER_BYTES",
        default_value_t = SalesforceSettings::default().max_answer,
        global = true
    )]
    pub salesforce_max_answer_bytes: usize,
    /// How long a worker holds a client; a killed replica's clients return after it.
    #[arg(
        long,
        env = "LEADBRIDGE_LEASE_SECS",
        default_value_t = 300,
        global = true
    )]
    pub lease_secs: u64,
    /// On SIGTERM, how long requests and Salesforce writes in flight may take
    /// to finish; writes still running then are abandoned and their clients
    /// released (they are written again later, nothing is lost).
    #[arg(
        long,
        env = "LEADBRIDGE_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 25,
        global = true
    )]
    pub shutdown_timeout_secs: u64,
    /// How long events are kept after they are synced (duplicate detection
    /// needs at least 24 h); older ones are deleted.
    #[arg(
        long,
        env = "LEADBRIDGE_EVENT_RETENTION_HOURS",
        default_value_t = 168,
        global = true
    )]
    pub event_retention_hours: u64,
    /// How long `/metrics` reuses the backlog it counted (clients per state,
    /// pending events): counting costs time proportional to the backlog, and
    /// the endpoint needs no token.
    #[arg(
        long,
        env = "LEADBRIDGE_METRICS_BACKLOG_SECS",
        default_value_t = 5,
        global = true
    )]
    pub metrics_backlog_secs: u64,
    /// How long a request body may take to arrive; a backfill upload may
    /// take longer but may not stall this long between two chunks.
    #[arg(
        long,
        env = "LEADBRIDGE_BODY_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub body_timeout_secs: u64,
    /// Open client connections at most (kept below the process's file
    /// descriptor limit); more wait to be accepted.
    #[arg(
        long,
        env = "LEADBRIDGE_MAX_CONNECTIONS",
        default_value_t = 1000,
        global = true
    )]
    pub max_connections: usize,
    /// Rotated-out webhook secrets that still verify (within their 24 h),
    /// newest first, beside the current one.
    #[arg(
        long,
        env = "LEADBRIDGE_MAX_PREVIOUS_SECRETS",
        default_value_t = Limits::default().max_previous_secrets,
        global = true
    )]
    pub max_previous_secrets: usize,
    /// Connections an admin may create.
    #[arg(
        long,
        env = "LEADBRIDGE_MAX_CONNECTIONS_CONFIGURED",
        default_value_t = Limits::default().max_configured_connections,
        global = true
    )]
    pub max_configured_connections: u64,
    /// Webhook secrets a connection may hold at once (current and rotated-out
    /// ones still valid): rotating past it is refused until old ones expire
    /// or are revoked.
    #[arg(
        long,
        env = "LEADBRIDGE_MAX_SECRETS_PER_CONNECTION",
        default_value_t = Limits::default().max_secrets_per_connection,
        global = true
    )]
    pub max_secrets_per_connection: u64,
    /// Backfill jobs a connection may have receiving at once.
    #[arg(
        long,
        env = "LEADBRIDGE_MAX_RUNNING_BACKFILLS",
        default_value_t = Limits::default().max_running_backfills,
        global = true
    )]
    pub max_running_backfills: u64,
    /// Webhook body bytes all requests may hold at once (at least
    /// LEADBRIDGE_MAX_BODY_BYTES); past it a webhook is answered 503 with
    /// Retry-After.
    #[arg(
        long,
        env = "LEADBRIDGE_MAX_BODY_BYTES_IN_FLIGHT",
        default_value_t = Limits::default().max_body_bytes_in_flight,
        global = true
    )]
    pub max_body_bytes_in_flight: usize,
    /// How long an answer may go without the client taking any of it
    /// (TCP_USER_TIMEOUT) before its connection is closed.
    #[arg(
        long,
        env = "LEADBRIDGE_WRITE_TIMEOUT_SECS",
        default_value_t = Limits::default().write_timeout.as_secs(),
        global = true
    )]
    pub write_timeout_secs: u64,
    /// Open connections one peer address may hold; 0 for no ceiling
    /// (behind a proxy, where every connection has the proxy's address).
    #[arg(
        long,
        env = "LEADBRIDGE_MAX_CONNECTIONS_PER_PEER",
        default_value_t = Limits::default().max_connections_per_peer,
        global = true
    )]
    pub max_connections_per_peer: usize,
}

/// Ceilings on what callers can make the service hold: each a setting with
/// a safe default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Rotated-out webhook secrets that still verify beside the current one.
    pub max_previous_secrets: usize,
    /// Connections an admin may create.
    pub max_configured_connections: u64,
    /// Webhook secrets a connection may hold at once.
    pub max_secrets_per_connection: u64,
    /// Backfill jobs a connection may have receiving at once.
    pub max_running_backfills: u64,
    /// Webhook body bytes all requests may hold at once.
    pub max_body_bytes_in_flight: usize,
    /// How long an answer may go without the client taking any of it.
    pub write_timeout: std::time::Duration,
    /// Open connections one peer address may hold; 0 for no ceiling.
    pub max_connections_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_previous_secrets: 3,
            max_configured_connections: 1_000,
            max_secrets_per_connection: 10,
            max_running_backfills: 4,
            max_body_bytes_in_flight: 64 * 1024 * 1024,
            write_timeout: std::time::Duration::from_secs(30),
            max_connections_per_peer: 500,
        }
    }
}

impl SettingsArgs {
    /// The log format in force: the setting, else by whether stdout is a terminal.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
            .unwrap_or(if std::io::stdout().is_terminal() {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            })
    }
}

/// Everything `serve` needs, checked once at start.
#[derive(Debug)]
pub struct Settings {
    pub listen: String,
    pub database_url: String,
    pub admin_token: SecretString,
    pub master_key: MasterKey,
    pub allow_insecure_salesforce: bool,
    pub max_body_bytes: usize,
    /// Run the sync worker in this process.
    pub run_worker: bool,
    /// How long a graceful stop may take.
    pub shutdown_timeout: std::time::Duration,
    pub salesforce: SalesforceSettings,
    pub sync: SyncSettings,
    /// How long `/metrics` reuses a backlog count.
    pub metrics_backlog_ttl: std::time::Duration,
    /// How long a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// Open client connections at most, over all workers.
    pub max_connections: usize,
    pub limits: Limits,
}

const ADMIN_TOKEN_ENV: &str = "LEADBRIDGE_ADMIN_TOKEN";
const MASTER_KEY_ENV: &str = "LEADBRIDGE_MASTER_KEY";

/// Where a secret came from, for the start-up log (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Environment,
    ExistingFile(PathBuf),
    CreatedFile(PathBuf),
}

impl Settings {
    /// Resolves the secrets: from the environment, else (SQLite only) from files
    /// beside the database, created with mode 0600 on first start.
    pub fn resolve(
        args: &SettingsArgs,
    ) -> anyhow::Result<(Self, Vec<(&'static str, SecretSource)>)> {
        if args.max_body_bytes == 0 {
            bail!("LEADBRIDGE_MAX_BODY_BYTES must be above 0");
        }
        if args.token_ttl_secs == 0 {
            bail!("LEADBRIDGE_TOKEN_TTL_SECS must be above 0");
        }
        if args.lease_secs < 2 {
            bail!("LEADBRIDGE_LEASE_SECS must be at least 2");
        }
        // A write may use half the lease; a call must fit in it, so that no
        // other worker claims the client while the call may still land.
        if args.lease_secs < 2 * args.salesforce_timeout_secs {
            bail!(
                "LEADBRIDGE_LEASE_SECS ({}) must be at least twice LEADBRIDGE_SALESFORCE_TIMEOUT_SECS ({})",
                args.lease_secs,
                args.salesforce_timeout_secs
            );
        }
        if args.event_retention_hours < 24 {
            bail!("LEADBRIDGE_EVENT_RETENTION_HOURS must be at least 24: duplicates are recognised for 24 h");
        }
        let env_token = non_empty_env(ADMIN_TOKEN_ENV)?;
        let env_key = non_empty_env(MASTER_KEY_ENV)?;
        let sqlite_path = sqlite_file(&args.database_url);
        let (token, token_src, key, key_src) = match sqlite_path {
            None if args.database_url.starts_with("sqlite:") => {
                // An in-memory database has no place for secret files.
                let (Some(t), Some(k)) = (env_token, env_key) else {
                    bail!("{ADMIN_TOKEN_ENV} and {MASTER_KEY_ENV} are required for an in-memory database");
                };
                (t, SecretSource::Environment, k, SecretSource::Environment)
            }
            None => {
                let missing: Vec<&str> = [
                    (ADMIN_TOKEN_ENV, env_token.is_none()),
                    (MASTER_KEY_ENV, env_key.is_none()),
                ]
                .into_iter()
                .filter_map(|(n, m)| m.then_some(n))
                .collect();
                if !missing.is_empty() {
                    bail!(
                        "{} must be set when the database is not SQLite: replicas must share them, so they are never generated",
                        missing.join(" and ")
                    );
                }
                (
                    env_token.unwrap(),
                    SecretSource::Environment,
                    env_key.unwrap(),
                    SecretSource::Environment,
                )
            }
            Some(db) => {
                let (t, ts) = match env_token {
                    Some(t) => (t, SecretSource::Environment),
                    None => secret_file(&sibling(&db, "admin-token"), generate_admin_token)?,
                };
                let (k, ks) = match env_key {
                    Some(k) => (k, SecretSource::Environment),
                    None => secret_file(&sibling(&db, "master-key"), MasterKey::generate_encoded)?,
                };
                (t, ts, k, ks)
            }
        };
        let master_key = MasterKey::parse(key.expose_secret())
            .with_context(|| format!("{MASTER_KEY_ENV} (or its file) is not usable"))?;
        if token.expose_secret().len() < 16 {
            bail!("{ADMIN_TOKEN_ENV} must be at least 16 characters");
        }
        Ok((
            Self {
                listen: args.listen.clone(),
                database_url: args.database_url.clone(),
                admin_token: token,
                master_key,
                allow_insecure_salesforce: args.allow_insecure_salesforce,
                max_body_bytes: args.max_body_bytes,
                run_worker: args.worker,
                shutdown_timeout: std::time::Duration::from_secs(args.shutdown_timeout_secs),
                metrics_backlog_ttl: std::time::Duration::from_secs(args.metrics_backlog_secs),
                body_timeout: std::time::Duration::from_secs(args.body_timeout_secs.max(1)),
                max_connections: args.max_connections.max(1),
                limits: Limits {
                    max_previous_secrets: args.max_previous_secrets,
                    max_configured_connections: args.max_configured_connections,
                    max_secrets_per_connection: args.max_secrets_per_connection.max(1),
                    max_running_backfills: args.max_running_backfills.max(1),
                    max_body_bytes_in_flight: args
                        .max_body_bytes_in_flight
                        .max(args.max_body_bytes),
                    write_timeout: std::time::Duration::from_secs(args.write_timeout_secs.max(1)),
                    max_connections_per_peer: args.max_connections_per_peer,
                },
                salesforce: SalesforceSettings {
                    token_ttl: std::time::Duration::from_secs(args.token_ttl_secs),
                    request_timeout: std::time::Duration::from_secs(args.salesforce_timeout_secs),
                    max_token_answer: args.salesforce_max_token_answer_bytes.max(1024),
                    max_answer: args.salesforce_max_answer_bytes.max(64 * 1024),
                    ..SalesforceSettings::default()
                },
                sync: SyncSettings {
                    lease: std::time::Duration::from_secs(args.lease_secs),
                    quota_budget_percent: args.quota_budget_percent,
                    linger: std::time::Duration::from_millis(args.linger_ms),
                    pace: crate::sync::pace::Pace {
                        max_wait: std::time::Duration::from_millis(args.pace_ms),
                        ..Default::default()
                    },
                    event_retention: std::time::Duration::from_secs(
                        args.event_retention_hours * 3600,
                    ),
                    ..SyncSettings::default()
                },
            },
            vec![("admin token", token_src), ("master key", key_src)],
        ))
    }
}

fn non_empty_env(name: &str) -> anyhow::Result<Option<SecretString>> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => bail!("{name} is set but empty"),
        Ok(v) => Ok(Some(SecretString::from(v.trim().to_string()))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

/// The file of an SQLite URL (`sqlite://PATH`, `sqlite:PATH`), or None for memory / other stores.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

/// Files holding secrets or the store that other users can read or write:
/// the SQLite database (and its `-wal`), and the admin token and master key
/// files beside it, each with its mode. A file created here is 0600; one
/// that already existed keeps whatever mode it had, so start-up warns.
pub fn loose_files(database_url: &str) -> Vec<(PathBuf, u32)> {
    let Some(db) = sqlite_file(database_url) else {
        return Vec::new();
    };
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    [
        db.clone(),
        PathBuf::from(wal),
        sibling(&db, "admin-token"),
        sibling(&db, "master-key"),
    ]
    .into_iter()
    .filter_map(|path| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
            (mode & 0o077 != 0).then_some((path, mode))
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            None
        }
    })
    .collect()
}

/// What a log may say of a database URL: its scheme, host and port, and
/// database (for SQLite, the file). Never userinfo or the query, where a
/// password (`?password=`, `sslpassword`) or a key file's path may be.
pub fn database_for_logs(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        return format!("sqlite://{}", rest.split('?').next().unwrap_or_default());
    }
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", u.scheme(), u.path())
        }
        Err(_) => "an unreadable database URL".into(),
    }
}

/// `leadbridge.db` → `leadbridge.db.admin-token`, in the same directory.
fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    db.with_file_name(name)
}

/// Reads a secret file, or creates it (mode 0600) with a generated value.
fn secret_file(
    path: &Path,
    generate: fn() -> SecretString,
) -> anyhow::Result<(SecretString, SecretSource)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let secret = generate();
            file.write_all(secret.expose_secret().as_bytes())
                .and_then(|_| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok((secret, SecretSource::CreatedFile(path.to_path_buf())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            if text.trim().is_empty() {
                bail!(
                    "{} is empty; delete it to have a new one made",
                    path.display()
                );
            }
            Ok((
                SecretString::from(text.trim().to_string()),
                SecretSource::ExistingFile(path.to_path_buf()),
            ))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_logged_without_userinfo_or_query() {
        for (url, shown) in [
            (
                "postgres://lb:hunter2@db.internal:5433/leadbridge?password=p2&sslpassword=p3&sslmode=require",
                "postgres://db.internal:5433/leadbridge",
            ),
            ("postgresql://db/leadbridge?password=p2", "postgresql://db/leadbridge"),
            ("sqlite://leadbridge.db", "sqlite://leadbridge.db"),
            ("sqlite:/var/lib/lb/x.db?mode=rwc", "sqlite:///var/lib/lb/x.db"),
            ("not a url:password", "an unreadable database URL"),
        ] {
            let logged = database_for_logs(url);
            assert_eq!(logged, shown, "{url}");
            for secret in ["hunter2", "p2", "p3", "password"] {
                assert!(!logged.contains(secret), "{url} → {logged}");
            }
        }
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite://leadbridge.db"),
            Some(PathBuf::from("leadbridge.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/lb/x.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/lb/x.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/test"), None);
    }

    #[test]
    fn secret_files_sit_beside_the_database() {
        assert_eq!(
            sibling(Path::new("/d/leadbridge.db"), "master-key"),
            PathBuf::from("/d/leadbridge.db.master-key")
        );
        assert_eq!(
            sibling(Path::new("leadbridge.db"), "admin-token"),
            PathBuf::from("leadbridge.db.admin-token")
        );
    }

    #[test]
    fn a_secret_file_is_created_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db.admin-token");
        let (first, src) = secret_file(&path, generate_admin_token).unwrap();
        assert_eq!(src, SecretSource::CreatedFile(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, src) = secret_file(&path, generate_admin_token).unwrap();
        assert_eq!(src, SecretSource::ExistingFile(path));
        assert_eq!(first.expose_secret(), second.expose_secret());
    }
}
