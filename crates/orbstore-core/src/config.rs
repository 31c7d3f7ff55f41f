//! Backend configuration, from explicit values or from the environment.
//!
//! Precedence, first that is set wins (an empty variable counts as unset):
//! explicit [`Config`] > `DATABASE_URL` > `DB_BACKEND` with `DB_*` > `ORB_PERSISTENCE` >
//! the file backend in `ORB_DATA_DIR` (default `./data`). See `docs/configuration.md`.
//!
//! Parsing knows every backend whether or not it is compiled in, so that "known but not
//! compiled" can be told apart from "unknown" when the backend is opened.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// A string that never appears in `Debug` or `Display` (passwords, URLs holding them).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, to hand to a driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// When the file backend makes a write durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSync {
    /// A write returns after its log record is fsynced (concurrent writers share one fsync).
    Always,
    /// Writes return at once; they are written and fsynced together after this much quiet,
    /// when 1,000 are pending, after at most 5 times the quiet period, on `flush()` and on close.
    Debounced(std::time::Duration),
    /// Writes reach the operating system at once but are never fsynced (tests, throwaway runs).
    Never,
}

impl Default for FileSync {
    /// One second of debounce: the behaviour of the hand-written stores orbstore replaces.
    fn default() -> Self {
        FileSync::Debounced(std::time::Duration::from_secs(1))
    }
}

/// File backend settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The data directory (created with mode 0700).
    pub dir: PathBuf,
    /// When writes become durable.
    pub sync: FileSync,
    /// Refuse to open on corruption: an unreadable snapshot or log region (default: copy it
    /// aside, recover what is readable and open, reporting it). A torn last write is tolerated
    /// either way: that is what a crash leaves.
    pub strict: bool,
}

impl FileConfig {
    /// Defaults for a directory: debounced sync (1 s), not strict.
    pub fn new(dir: impl Into<PathBuf>) -> FileConfig {
        FileConfig { dir: dir.into(), sync: FileSync::default(), strict: false }
    }
}

/// Where SQLite keeps its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    /// A database file (its parent directory is created).
    File(PathBuf),
    /// A private in-memory database (`sqlite::memory:`).
    Memory,
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    /// Every commit is fsynced: survives a power loss (the default).
    #[default]
    Full,
    /// Commits survive a process crash, not a power loss (WAL is synced at checkpoints).
    Normal,
}

/// SQLite settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file, or a private in-memory database.
    pub location: SqliteLocation,
    /// Durability of commits.
    pub synchronous: SqliteSync,
}

impl SqliteConfig {
    /// Defaults for a location: `synchronous = FULL`.
    pub fn new(location: SqliteLocation) -> SqliteConfig {
        SqliteConfig { location, synchronous: SqliteSync::Full }
    }
}

/// PostgreSQL settings.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Server host name or address.
    pub host: String,
    /// Server port (default 5432).
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Whether to use TLS.
    pub ssl: bool,
    /// Connection pool size (default 10).
    pub pool_size: usize,
    /// The schema holding orbstore's tables (default `orbstore`).
    pub schema: String,
    /// How long opening a connection may take (default 10 s; `DB_CONNECT_TIMEOUT`, URL
    /// `connect_timeout`).
    pub connect_timeout: Duration,
    /// How long one statement may run before the server cancels it (default 60 s; zero for
    /// none; `DB_STATEMENT_TIMEOUT`, URL `statement_timeout`). It also bounds, on the client, how
    /// long an operation waits for a server that stopped answering.
    pub statement_timeout: Duration,
}

impl PostgresConfig {
    /// The default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default statement timeout.
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ssl", &self.ssl)
            .field("pool_size", &self.pool_size)
            .field("schema", &self.schema)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// How the MongoDB backend runs queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MongoQueryMode {
    /// Native when the server's `buildInfo` says it is MongoDB itself, exact otherwise.
    #[default]
    Auto,
    /// Filter, sort, projection, offset and limit go to the server (MongoDB's semantics are
    /// orbstore's).
    Native,
    /// Only `_id` lookups go to the server; orbstore's evaluator decides everything else, for
    /// servers that speak the protocol with other semantics.
    Exact,
}

/// MongoDB settings.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoConfig {
    /// The connection string, handed to the driver as is.
    pub url: Secret,
    /// The database holding orbstore's collections.
    pub database: String,
    /// Native or exact queries (`ORB_MONGO_QUERY_MODE`, default `auto`).
    pub query_mode: MongoQueryMode,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("url", &redact_url(self.url.expose()))
            .field("database", &self.database)
            .field("query_mode", &self.query_mode)
            .finish()
    }
}

/// Which backend, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// In-process memory; nothing outlives the process.
    Memory,
    /// JSON files in a directory.
    File(FileConfig),
    /// SQLite.
    Sqlite(SqliteConfig),
    /// PostgreSQL.
    Postgres(PostgresConfig),
    /// MongoDB.
    Mongo(MongoConfig),
}

impl BackendConfig {
    /// The backend's kind (`"memory"`, `"file"`, `"sqlite"`, `"postgres"`, `"mongodb"`), which is
    /// also the name of the cargo feature that compiles it in.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Memory => "memory",
            BackendConfig::File(_) => "file",
            BackendConfig::Sqlite(_) => "sqlite",
            BackendConfig::Postgres(_) => "postgres",
            BackendConfig::Mongo(_) => "mongodb",
        }
    }

    /// Parses a URL: `postgres://`, `postgresql://`, `mongodb://`, `mongodb+srv://`,
    /// `sqlite://<path>`, `sqlite::memory:`, `file://<dir>`, `memory://`.
    pub fn from_url(url: &str) -> Result<BackendConfig> {
        parse_url(url).map_err(|why| Error::invalid(format!("invalid URL {:?}: {why}", redact_url(url))))
    }
}

/// Where a configuration came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Given in code.
    Explicit,
    /// Chosen by an environment variable, with its (redacted) value.
    Env {
        /// The variable's name.
        variable: &'static str,
        /// Its value, passwords redacted.
        value: String,
    },
    /// Nothing was set: the embedded default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Explicit => f.write_str("explicit configuration"),
            Origin::Env { variable, value } => write!(f, "{variable}={value:?}"),
            Origin::Default => f.write_str("the default (no ORB_*/DB_*/DATABASE_URL variable set)"),
        }
    }
}

/// A backend configuration and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The backend and its settings.
    pub backend: BackendConfig,
    /// Where it came from.
    pub origin: Origin,
}

/// The valid `DATABASE_URL` schemes, for error messages.
pub const URL_SCHEMES: &str =
    "postgres://, postgresql://, mongodb://, mongodb+srv://, sqlite://<path>, sqlite::memory:, file://<dir>, memory://";
/// The valid `DB_BACKEND` values, for error messages.
pub const DB_BACKEND_VALUES: &str =
    "postgresql, mongodb, sqlite, in-memory (also accepted: postgres, mongo, memory, file)";
/// The valid `ORB_PERSISTENCE` values, for error messages.
pub const ORB_PERSISTENCE_VALUES: &str = "memory, file, sql";

impl Config {
    /// An explicit configuration (highest precedence: the environment is not read).
    pub fn new(backend: BackendConfig) -> Config {
        Config { backend, origin: Origin::Explicit }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `lookup` (tests pass a map; [`Config::from_env`] passes
    /// `std::env::var`). Errors name the variable, the bad value and the valid choices.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let data_dir = || PathBuf::from(get("ORB_DATA_DIR").unwrap_or_else(|| "./data".to_owned()));
        let sqlite_sync = || -> Result<SqliteSync> {
            match get("ORB_SQLITE_SYNC").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
                None | Some("full") => Ok(SqliteSync::Full),
                Some("normal") => Ok(SqliteSync::Normal),
                Some(_) => Err(Error::invalid(format!(
                    "invalid ORB_SQLITE_SYNC {:?}: valid values are full, normal",
                    get("ORB_SQLITE_SYNC").unwrap_or_default()
                ))),
            }
        };
        let sqlite_config = |location: SqliteLocation| -> Result<BackendConfig> {
            Ok(BackendConfig::Sqlite(SqliteConfig { location, synchronous: sqlite_sync()? }))
        };
        let mongo_query_mode = || -> Result<MongoQueryMode> {
            match get("ORB_MONGO_QUERY_MODE").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
                None | Some("auto") => Ok(MongoQueryMode::Auto),
                Some("native") => Ok(MongoQueryMode::Native),
                Some("exact") => Ok(MongoQueryMode::Exact),
                Some(_) => Err(Error::invalid(format!(
                    "invalid ORB_MONGO_QUERY_MODE {:?}: valid values are auto, native, exact",
                    get("ORB_MONGO_QUERY_MODE").unwrap_or_default()
                ))),
            }
        };
        let file_config = |dir: PathBuf| -> Result<BackendConfig> {
            Ok(BackendConfig::File(FileConfig {
                dir,
                sync: parse_file_sync(get("ORB_FILE_SYNC"))?,
                strict: parse_bool("ORB_FILE_STRICT", get("ORB_FILE_STRICT"))?,
            }))
        };

        if let Some(url) = get("DATABASE_URL") {
            let mut backend = parse_url(&url).map_err(|why| {
                Error::invalid(format!(
                    "invalid DATABASE_URL {:?}: {why}; valid forms: {URL_SCHEMES}",
                    redact_url(&url)
                ))
            })?;
            match &mut backend {
                BackendConfig::File(f) => backend = file_config(f.dir.clone())?,
                BackendConfig::Sqlite(s) => backend = sqlite_config(s.location.clone())?,
                BackendConfig::Mongo(m) => m.query_mode = mongo_query_mode()?,
                BackendConfig::Postgres(_) => {
                    let params: Vec<String> = url::Url::parse(url.trim())
                        .map(|u| u.query_pairs().map(|(k, _)| k.into_owned()).collect())
                        .unwrap_or_default();
                    backend = backend.with_env_timeouts(&get, |k| params.iter().any(|p| p == k))?
                }
                _ => {}
            }
            return Ok(Config { backend, origin: env_origin("DATABASE_URL", redact_url(&url)) });
        }

        if let Some(kind) = get("DB_BACKEND") {
            let backend = match kind.trim().to_ascii_lowercase().as_str() {
                "postgresql" | "postgres" => BackendConfig::Postgres(PostgresConfig {
                    host: get("DB_HOST").unwrap_or_else(|| "localhost".to_owned()),
                    port: parse_port(get("DB_PORT"), 5432)?,
                    database: get("DB_NAME").unwrap_or_else(|| "orbstore".to_owned()),
                    user: get("DB_USER").unwrap_or_else(|| "postgres".to_owned()),
                    password: get("DB_PASSWORD").map(Secret::new),
                    ssl: parse_bool("DB_SSL", get("DB_SSL"))?,
                    pool_size: parse_pool_size(get("DB_POOL_SIZE"))?,
                    schema: get("DB_SCHEMA").unwrap_or_else(|| "orbstore".to_owned()),
                    connect_timeout: PostgresConfig::DEFAULT_CONNECT_TIMEOUT,
                    statement_timeout: PostgresConfig::DEFAULT_STATEMENT_TIMEOUT,
                })
                .with_env_timeouts(&get, |_| false)?,
                "mongodb" | "mongo" => {
                    let host = get("DB_HOST").unwrap_or_else(|| "localhost".to_owned());
                    let port = parse_port(get("DB_PORT"), 27017)?;
                    let ssl = parse_bool("DB_SSL", get("DB_SSL"))?;
                    let pool = get("DB_POOL_SIZE").map(|v| parse_pool_size(Some(v))).transpose()?;
                    let mut url = url::Url::parse("mongodb://placeholder/")
                        .map_err(|e| Error::invalid(format!("internal URL error: {e}")))?;
                    url.set_host(Some(&host))
                        .map_err(|e| Error::invalid(format!("invalid DB_HOST {host:?}: {e}")))?;
                    let _ = url.set_port(Some(port));
                    if let Some(user) = get("DB_USER") {
                        let _ = url.set_username(&user);
                        if let Some(pw) = get("DB_PASSWORD") {
                            let _ = url.set_password(Some(&pw));
                        }
                    }
                    {
                        let mut q = url.query_pairs_mut();
                        if ssl {
                            q.append_pair("tls", "true");
                        }
                        if let Some(n) = pool {
                            q.append_pair("maxPoolSize", &n.to_string());
                        }
                    }
                    let mut s = url.to_string();
                    if s.ends_with('?') {
                        s.pop();
                    }
                    BackendConfig::Mongo(MongoConfig {
                        url: Secret::new(s),
                        database: get("DB_NAME").unwrap_or_else(|| "orbstore".to_owned()),
                        query_mode: mongo_query_mode()?,
                    })
                }
                "sqlite" => sqlite_config(SqliteLocation::File(
                    get("DB_NAME").map(PathBuf::from).unwrap_or_else(|| data_dir().join("orbstore.sqlite3")),
                ))?,
                "in-memory" | "memory" => BackendConfig::Memory,
                "file" => file_config(data_dir())?,
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid DB_BACKEND {kind:?}: valid values are {DB_BACKEND_VALUES}"
                    )))
                }
            };
            return Ok(Config { backend, origin: env_origin("DB_BACKEND", kind) });
        }

        if let Some(mode) = get("ORB_PERSISTENCE") {
            let backend = match mode.trim().to_ascii_lowercase().as_str() {
                "memory" => BackendConfig::Memory,
                "file" => file_config(data_dir())?,
                "sql" => sqlite_config(SqliteLocation::File(
                    get("ORB_SQLITE_PATH")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| data_dir().join("orbstore.sqlite3")),
                ))?,
                _ => {
                    return Err(Error::invalid(format!(
                        "invalid ORB_PERSISTENCE {mode:?}: valid values are {ORB_PERSISTENCE_VALUES}"
                    )))
                }
            };
            return Ok(Config { backend, origin: env_origin("ORB_PERSISTENCE", mode) });
        }

        Ok(Config { backend: file_config(data_dir())?, origin: Origin::Default })
    }
}

fn env_origin(variable: &'static str, value: String) -> Origin {
    Origin::Env { variable, value }
}

fn parse_port(v: Option<String>, default: u16) -> Result<u16> {
    match v {
        None => Ok(default),
        Some(s) => match s.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => {
                Err(Error::invalid(format!("invalid DB_PORT {s:?}: expected a port number from 1 to 65535")))
            }
        },
    }
}

/// Reads a yes/no setting: `true`, `1`, `yes`, `on` or `false`, `0`, `no`, `off` (any case,
/// surrounding blanks ignored); unset or blank is `false`. Anything else is `InvalidInput` naming
/// `var`, the value and the valid spellings. Every boolean variable of orbstore and its layers
/// reads through this, so they all accept the same spellings.
pub fn parse_bool(var: &str, v: Option<String>) -> Result<bool> {
    match v.as_deref().map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
        None => Ok(false),
        Some(s) => match s.as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(Error::invalid(format!(
                "invalid {var} {s:?}: valid values are true, false, 1, 0, yes, no, on, off"
            ))),
        },
    }
}

/// `ORB_FILE_SYNC`: `always`, `never`, `debounced` (1 s) or `debounced:<milliseconds>`.
fn parse_file_sync(v: Option<String>) -> Result<FileSync> {
    let Some(raw) = v else { return Ok(FileSync::default()) };
    let s = raw.trim().to_ascii_lowercase();
    let bad = || {
        Error::invalid(format!(
            "invalid ORB_FILE_SYNC {raw:?}: valid values are always, never, debounced, debounced:<milliseconds>"
        ))
    };
    match s.as_str() {
        "always" => Ok(FileSync::Always),
        "never" => Ok(FileSync::Never),
        "debounced" => Ok(FileSync::default()),
        other => {
            let ms = other.strip_prefix("debounced:").ok_or_else(bad)?.parse::<u64>().map_err(|_| bad())?;
            if ms == 0 || ms > 3_600_000 {
                return Err(bad());
            }
            Ok(FileSync::Debounced(std::time::Duration::from_millis(ms)))
        }
    }
}

/// The two PostgreSQL timeouts, for parsing: a number without a unit means seconds for the
/// connect timeout (as libpq's `connect_timeout`) and milliseconds for the statement timeout (as
/// PostgreSQL's `statement_timeout`); `500ms`, `5s`, `2min` are understood for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeout {
    Connect,
    Statement,
}

impl Timeout {
    fn url_parameter(self) -> &'static str {
        match self {
            Timeout::Connect => "connect_timeout",
            Timeout::Statement => "statement_timeout",
        }
    }

    fn variable(self) -> &'static str {
        match self {
            Timeout::Connect => "DB_CONNECT_TIMEOUT",
            Timeout::Statement => "DB_STATEMENT_TIMEOUT",
        }
    }
}

/// The longest timeout accepted: a day (longer is a typo, not a setting).
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Parses a timeout; the error is the reason only (the caller names the source and value).
fn parse_timeout(which: Timeout, raw: &str) -> std::result::Result<Duration, String> {
    let v = raw.trim();
    let limit = MAX_TIMEOUT.as_secs_f64() + 1.0;
    let parsed = match v.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Some(match which {
            Timeout::Connect => Duration::from_secs_f64(n.min(limit)),
            Timeout::Statement => Duration::from_secs_f64((n / 1000.0).min(limit)),
        }),
        Ok(_) => None,
        Err(_) => humantime::parse_duration(v).ok(),
    };
    let unit = match which {
        Timeout::Connect => "seconds",
        Timeout::Statement => "milliseconds",
    };
    match parsed {
        Some(d) if d > MAX_TIMEOUT => Err("longer than a day".to_owned()),
        Some(d) if d.is_zero() && which == Timeout::Connect => Err("must be more than zero".to_owned()),
        Some(d) => Ok(d),
        None => Err(format!("expected a number of {unit} or a duration such as 500ms, 5s, 2min")),
    }
}

impl BackendConfig {
    /// Fills a PostgreSQL configuration's timeouts from `DB_CONNECT_TIMEOUT` and
    /// `DB_STATEMENT_TIMEOUT`, except those the URL's own parameters set (`in_url`).
    fn with_env_timeouts(
        mut self,
        get: &impl Fn(&str) -> Option<String>,
        in_url: impl Fn(&str) -> bool,
    ) -> Result<BackendConfig> {
        let BackendConfig::Postgres(pg) = &mut self else { return Ok(self) };
        for which in [Timeout::Connect, Timeout::Statement] {
            let Some(raw) = get(which.variable()) else { continue };
            if in_url(which.url_parameter()) {
                continue;
            }
            let d = parse_timeout(which, &raw)
                .map_err(|why| Error::invalid(format!("invalid {} {raw:?}: {why}", which.variable())))?;
            match which {
                Timeout::Connect => pg.connect_timeout = d,
                Timeout::Statement => pg.statement_timeout = d,
            }
        }
        Ok(self)
    }
}

fn parse_pool_size(v: Option<String>) -> Result<usize> {
    match v {
        None => Ok(10),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err(Error::invalid(format!(
                "invalid DB_POOL_SIZE {s:?}: expected an integer from 1 to 10000"
            ))),
        },
    }
}

/// Parses a URL; the error is the reason only (the caller adds the variable and value).
fn parse_url(raw: &str) -> std::result::Result<BackendConfig, String> {
    let s = raw.trim();
    if s == "memory://" || s == "memory:" {
        return Ok(BackendConfig::Memory);
    }
    if s == "sqlite::memory:" || s == "sqlite://:memory:" {
        return Ok(BackendConfig::Sqlite(SqliteConfig::new(SqliteLocation::Memory)));
    }
    if let Some(path) = s.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("sqlite:// needs a path, e.g. sqlite://./data/orbstore.sqlite3".into());
        }
        return Ok(BackendConfig::Sqlite(SqliteConfig::new(SqliteLocation::File(PathBuf::from(path)))));
    }
    if let Some(dir) = s.strip_prefix("file://") {
        if dir.is_empty() {
            return Err("file:// needs a directory, e.g. file://./data".into());
        }
        return Ok(BackendConfig::File(FileConfig::new(dir)));
    }
    let url = url::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "postgres" | "postgresql" => parse_postgres(&url).map(BackendConfig::Postgres),
        "mongodb" | "mongodb+srv" => {
            if url.host_str().unwrap_or("").is_empty() {
                return Err("a mongodb URL needs a host".into());
            }
            let database = url.path().trim_start_matches('/');
            Ok(BackendConfig::Mongo(MongoConfig {
                url: Secret::new(s),
                database: if database.is_empty() { "orbstore".to_owned() } else { database.to_owned() },
                query_mode: MongoQueryMode::Auto,
            }))
        }
        other => Err(format!("unknown scheme {other:?}")),
    }
}

fn parse_postgres(url: &url::Url) -> std::result::Result<PostgresConfig, String> {
    let host = url.host_str().unwrap_or("");
    if host.is_empty() {
        return Err("a postgres URL needs a host".into());
    }
    let decode =
        |s: &str| percent_decode(s).ok_or_else(|| "the URL holds invalid percent-encoding".to_owned());
    let user = if url.username().is_empty() { "postgres".to_owned() } else { decode(url.username())? };
    let password = url.password().map(decode).transpose()?.map(Secret::new);
    let database = match url.path().trim_start_matches('/') {
        "" => user.clone(),
        db => decode(db)?,
    };
    let mut cfg = PostgresConfig {
        host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        port: url.port().unwrap_or(5432),
        database,
        user,
        password,
        ssl: false,
        pool_size: 10,
        schema: "orbstore".to_owned(),
        connect_timeout: PostgresConfig::DEFAULT_CONNECT_TIMEOUT,
        statement_timeout: PostgresConfig::DEFAULT_STATEMENT_TIMEOUT,
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                cfg.ssl = match v.as_ref() {
                    "disable" | "allow" | "prefer" => false,
                    "require" | "verify-ca" | "verify-full" => true,
                    other => {
                        return Err(format!(
                            "unknown sslmode {other:?} (valid: disable, allow, prefer, require, verify-ca, verify-full)"
                        ))
                    }
                }
            }
            "pool_size" | "pool_max_size" => {
                cfg.pool_size = parse_pool_size(Some(v.to_string())).map_err(|e| e.message().to_owned())?
            }
            "schema" => cfg.schema = v.to_string(),
            "connect_timeout" | "statement_timeout" => {
                let which = if k == "connect_timeout" { Timeout::Connect } else { Timeout::Statement };
                let d = parse_timeout(which, &v).map_err(|why| format!("invalid {k} {v:?}: {why}"))?;
                match which {
                    Timeout::Connect => cfg.connect_timeout = d,
                    Timeout::Statement => cfg.statement_timeout = d,
                }
            }
            _ => {} // libpq has many options; the driver reads the ones it knows
        }
    }
    Ok(cfg)
}

/// Percent-decoding of URL user, password and path parts. Hand-written because the `url`
/// crate returns them still encoded and a dependency for ten lines is not worth it.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A URL with its password replaced by `***`, safe to print (also for malformed URLs).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_owned() };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else { return url.to_owned() };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else { return url.to_owned() };
    format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn default_is_file_in_data() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.backend, BackendConfig::File(FileConfig::new("./data")));
        assert_eq!(c.origin, Origin::Default);
        let c = cfg(&[("ORB_DATA_DIR", "/tmp/x")]).unwrap();
        assert_eq!(c.backend, BackendConfig::File(FileConfig::new("/tmp/x")));
        let c = cfg(&[("ORB_FILE_SYNC", "debounced:250"), ("ORB_FILE_STRICT", "true")]).unwrap();
        assert_eq!(
            c.backend,
            BackendConfig::File(FileConfig {
                dir: "./data".into(),
                sync: FileSync::Debounced(std::time::Duration::from_millis(250)),
                strict: true
            })
        );
        let c = cfg(&[("DATABASE_URL", "file:///d"), ("ORB_FILE_SYNC", "always")]).unwrap();
        assert_eq!(
            c.backend,
            BackendConfig::File(FileConfig { sync: FileSync::Always, ..FileConfig::new("/d") })
        );
    }

    #[test]
    fn database_url_beats_db_backend_and_orb_persistence() {
        let c = cfg(&[("DATABASE_URL", "memory://"), ("DB_BACKEND", "sqlite"), ("ORB_PERSISTENCE", "file")])
            .unwrap();
        assert_eq!(c.backend, BackendConfig::Memory);
        assert!(matches!(c.origin, Origin::Env { variable: "DATABASE_URL", .. }));
    }

    #[test]
    fn db_backend_beats_orb_persistence() {
        let c = cfg(&[("DB_BACKEND", "in-memory"), ("ORB_PERSISTENCE", "file")]).unwrap();
        assert_eq!(c.backend, BackendConfig::Memory);
        assert!(matches!(c.origin, Origin::Env { variable: "DB_BACKEND", .. }));
    }

    #[test]
    fn orb_persistence_beats_default() {
        assert_eq!(cfg(&[("ORB_PERSISTENCE", "memory")]).unwrap().backend, BackendConfig::Memory);
        assert_eq!(
            cfg(&[("ORB_PERSISTENCE", "sql"), ("ORB_SQLITE_PATH", "/tmp/a.db")]).unwrap().backend,
            BackendConfig::Sqlite(SqliteConfig::new(SqliteLocation::File("/tmp/a.db".into())))
        );
        assert_eq!(
            cfg(&[("ORB_PERSISTENCE", "sql"), ("ORB_DATA_DIR", "/d")]).unwrap().backend,
            BackendConfig::Sqlite(SqliteConfig::new(SqliteLocation::File("/d/orbstore.sqlite3".into())))
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let c = cfg(&[("DATABASE_URL", ""), ("DB_BACKEND", "  "), ("ORB_PERSISTENCE", "memory")]).unwrap();
        assert_eq!(c.backend, BackendConfig::Memory);
    }

    #[test]
    fn every_url_scheme() {
        let pg = |u: &str| match BackendConfig::from_url(u).unwrap() {
            BackendConfig::Postgres(p) => p,
            other => panic!("{other:?}"),
        };
        let p = pg("postgres://bob:s%40cret@db.example:6543/app?sslmode=require&pool_size=4&schema=rl");
        assert_eq!(
            (p.host.as_str(), p.port, p.database.as_str(), p.user.as_str()),
            ("db.example", 6543, "app", "bob")
        );
        assert_eq!(p.password.as_ref().unwrap().expose(), "s@cret");
        assert!(p.ssl);
        assert_eq!((p.pool_size, p.schema.as_str()), (4, "rl"));
        let p = pg("postgresql://postgres@127.0.0.1/test");
        assert_eq!((p.port, p.password.is_none(), p.ssl), (5432, true, false));

        match BackendConfig::from_url("mongodb://127.0.0.1:27117/rl?directConnection=true").unwrap() {
            BackendConfig::Mongo(m) => assert_eq!(m.database, "rl"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            BackendConfig::from_url("sqlite://./x/y.db").unwrap(),
            BackendConfig::Sqlite(SqliteConfig::new(SqliteLocation::File("./x/y.db".into())))
        );
        assert_eq!(
            BackendConfig::from_url("sqlite::memory:").unwrap(),
            BackendConfig::Sqlite(SqliteConfig::new(SqliteLocation::Memory))
        );
        assert_eq!(
            BackendConfig::from_url("file:///var/orb").unwrap(),
            BackendConfig::File(FileConfig::new("/var/orb"))
        );
        assert_eq!(BackendConfig::from_url("memory://").unwrap(), BackendConfig::Memory);
    }

    #[test]
    fn db_backend_values_and_parts() {
        let c = cfg(&[
            ("DB_BACKEND", "postgresql"),
            ("DB_HOST", "h"),
            ("DB_PORT", "7000"),
            ("DB_NAME", "n"),
            ("DB_USER", "u"),
            ("DB_PASSWORD", "pw"),
            ("DB_SSL", "true"),
            ("DB_POOL_SIZE", "3"),
        ])
        .unwrap();
        let BackendConfig::Postgres(p) = c.backend else { panic!() };
        assert_eq!(
            (p.host.as_str(), p.port, p.database.as_str(), p.user.as_str(), p.ssl, p.pool_size),
            ("h", 7000, "n", "u", true, 3)
        );
        let c =
            cfg(&[("DB_BACKEND", "mongodb"), ("DB_USER", "u"), ("DB_PASSWORD", "p w"), ("DB_NAME", "rl")])
                .unwrap();
        let BackendConfig::Mongo(m) = c.backend else { panic!() };
        assert_eq!(m.url.expose(), "mongodb://u:p%20w@localhost:27017/");
        assert_eq!(m.database, "rl");
        assert_eq!(
            cfg(&[("DB_BACKEND", "sqlite"), ("DB_NAME", "/tmp/z.db")]).unwrap().backend,
            BackendConfig::Sqlite(SqliteConfig::new(SqliteLocation::File("/tmp/z.db".into())))
        );
        assert_eq!(cfg(&[("DB_BACKEND", "in-memory")]).unwrap().backend, BackendConfig::Memory);
    }

    #[test]
    fn postgres_timeouts_from_variables_and_url_parameters() {
        let pg = |vars: &[(&str, &str)]| match cfg(vars) {
            Ok(Config { backend: BackendConfig::Postgres(p), .. }) => {
                Ok((p.connect_timeout, p.statement_timeout))
            }
            Ok(other) => panic!("not postgres: {other:?}"),
            Err(e) => Err(e.to_string()),
        };
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let url = |q: &str| format!("postgres://h/db{q}");
        assert_eq!(pg(&[("DATABASE_URL", &url(""))]), Ok((s(10), s(60))), "defaults");
        // No unit: seconds to connect (libpq), milliseconds per statement (PostgreSQL).
        assert_eq!(
            pg(&[("DATABASE_URL", &url("?connect_timeout=3&statement_timeout=1500"))]),
            Ok((s(3), ms(1500)))
        );
        assert_eq!(
            pg(&[("DATABASE_URL", &url("?connect_timeout=250ms&statement_timeout=2s"))]),
            Ok((ms(250), s(2)))
        );
        assert_eq!(
            pg(&[("DATABASE_URL", &url("?statement_timeout=0"))]),
            Ok((s(10), s(0))),
            "0: no statement timeout"
        );
        let env = [("DB_CONNECT_TIMEOUT", "2"), ("DB_STATEMENT_TIMEOUT", "5s")];
        assert_eq!(pg(&[&env[..], &[("DATABASE_URL", &url(""))]].concat()), Ok((s(2), s(5))));
        // The URL's own parameter wins over the variable, also when it states the default.
        assert_eq!(
            pg(&[&env[..], &[("DATABASE_URL", &url("?connect_timeout=10"))]].concat()),
            Ok((s(10), s(5)))
        );
        assert_eq!(pg(&[&env[..], &[("DB_BACKEND", "postgres")]].concat()), Ok((s(2), s(5))));
        for (vars, needles) in [
            (
                vec![("DATABASE_URL", url("?connect_timeout=soon"))],
                vec!["connect_timeout", "\"soon\"", "seconds"],
            ),
            (vec![("DATABASE_URL", url("?connect_timeout=0"))], vec!["connect_timeout", "more than zero"]),
            (vec![("DATABASE_URL", url("?statement_timeout=-5"))], vec!["statement_timeout", "milliseconds"]),
            (
                vec![("DATABASE_URL", url("?statement_timeout=2days"))],
                vec!["statement_timeout", "longer than a day"],
            ),
            (
                vec![("DB_BACKEND", "postgres".into()), ("DB_STATEMENT_TIMEOUT", "x".into())],
                vec!["DB_STATEMENT_TIMEOUT", "\"x\""],
            ),
        ] {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let e = pg(&vars).expect_err("refused");
            for n in needles {
                assert!(e.contains(n), "{e:?} lacks {n:?}");
            }
        }
    }

    #[test]
    fn errors_name_variable_value_and_choices() {
        for (vars, needles) in [
            (
                vec![("DATABASE_URL", "ftp://x")],
                vec!["DATABASE_URL", "ftp://x", "unknown scheme", "postgres://"],
            ),
            (vec![("DATABASE_URL", "not a url")], vec!["DATABASE_URL", "not a url", "sqlite://"]),
            (vec![("DATABASE_URL", "postgres:///db")], vec!["DATABASE_URL", "needs a host"]),
            (vec![("DATABASE_URL", "postgres://h/db?sslmode=bogus")], vec!["sslmode", "bogus"]),
            (
                vec![("DB_BACKEND", "oracle")],
                vec!["DB_BACKEND", "\"oracle\"", "postgresql, mongodb, sqlite, in-memory"],
            ),
            (vec![("DB_BACKEND", "postgres"), ("DB_PORT", "x")], vec!["DB_PORT", "\"x\""]),
            (vec![("DB_BACKEND", "postgres"), ("DB_PORT", "70000")], vec!["DB_PORT", "70000"]),
            (vec![("DB_BACKEND", "postgres"), ("DB_POOL_SIZE", "0")], vec!["DB_POOL_SIZE", "\"0\""]),
            (vec![("DB_BACKEND", "postgres"), ("DB_SSL", "maybe")], vec!["DB_SSL", "maybe"]),
            (vec![("ORB_PERSISTENCE", "cloud")], vec!["ORB_PERSISTENCE", "\"cloud\"", "memory, file, sql"]),
            (
                vec![("ORB_FILE_SYNC", "sometimes")],
                vec!["ORB_FILE_SYNC", "sometimes", "always, never, debounced"],
            ),
            (vec![("ORB_FILE_SYNC", "debounced:0")], vec!["ORB_FILE_SYNC", "debounced:0"]),
            (
                vec![("ORB_PERSISTENCE", "sql"), ("ORB_SQLITE_SYNC", "off")],
                vec!["ORB_SQLITE_SYNC", "\"off\"", "full, normal"],
            ),
        ] {
            let e = cfg(&vars).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
            for n in needles {
                assert!(e.to_string().contains(n), "{vars:?}: {e} lacks {n}");
            }
        }
    }

    #[test]
    fn passwords_never_printed() {
        let url = "postgres://bob:hunter2@h/db";
        let c = cfg(&[("DATABASE_URL", url)]).unwrap();
        for s in [format!("{c:?}"), format!("{}", c.origin)] {
            assert!(!s.contains("hunter2"), "{s}");
        }
        let c = cfg(&[("DATABASE_URL", "mongodb://bob:hunter2@h/db")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = cfg(&[("DB_BACKEND", "postgres"), ("DB_PASSWORD", "hunter2")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = cfg(&[("DB_BACKEND", "mongodb"), ("DB_USER", "u"), ("DB_PASSWORD", "hunter2")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        // a malformed URL with a password is redacted in the error too
        let e = cfg(&[("DATABASE_URL", "ftp://bob:hunter2@h/")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(redact_url("postgres://u:p@h:1/d?x=y"), "postgres://u:***@h:1/d?x=y");
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
    }
}
