//! The appliance's TOML configuration: box identity, storage, encoder, seats and their inputs.
//!
//! Parsing rejects unknown keys (serde `deny_unknown_fields`) and `validate` checks every value a
//! serde type cannot express, naming the offending key (`seat[2].input[0].rate_hz`) so a floor
//! technician can fix the file without reading code. Nothing here touches devices or the disk
//! beyond reading the config file itself.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Where the daemon looks when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/callrec/callrec.toml";

/// Sample rates libopus accepts for encoding (RFC 6716 §2: 8, 12, 16, 24 and 48 kHz).
pub const OPUS_RATES_HZ: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}. Pass --config PATH or create the file (see hw/callrec.example.toml)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "box")]
    pub box_: BoxConfig,
    pub storage: StorageConfig,
    #[serde(default)]
    pub encoder: EncoderConfig,
    /// Capture devices named once and shared by several seats (`[[device]]`).
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
    #[serde(default, rename = "seat")]
    pub seats: Vec<SeatConfig>,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Where finished calls are shipped (`callrec ship`); absent: no archive.
    #[serde(default)]
    pub archive: Option<ArchiveConfig>,
    /// `callrec hub` only (the fleet's QA hub); absent: defaults.
    #[serde(default)]
    pub hub: Option<HubConfig>,
    /// The complaints register (store::complaints); absent: defaults.
    #[serde(default)]
    pub complaints: ComplaintsConfig,
    /// The completeness alarms (record::completeness); absent: defaults.
    #[serde(default)]
    pub alarms: AlarmsConfig,
}

/// `[alarms]`: when a seat's recording is suspect (docs/admin.md, "Completeness alarms").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsConfig {
    /// A party whose loudest 20 ms frame (RMS) over a call's unpaused audio stays under this
    /// was not heard at all. Default -60 dBFS: a headset's idle line noise is around -70, the
    /// quietest speech over -45 (ITU-T P.56 active speech sits near -26 dBov).
    #[serde(default = "default_noise_floor_dbfs")]
    pub noise_floor_dbfs: f64,
    /// Alarm `silent_channel` after one call at least this long with a party not heard.
    #[serde(default = "default_silent_call_min_s")]
    pub silent_call_min_s: u64,
    /// ... or after this many calls in a row, of any length, with the same party not heard.
    #[serde(default = "default_silent_calls_in_row")]
    pub silent_calls_in_row: u32,
    /// Alarm `idle_logged_in` when an agent is logged in at a `control` seat and no call came
    /// for this long in working hours; 0 turns the alarm off.
    #[serde(default = "default_idle_logged_in_s")]
    pub idle_logged_in_s: u64,
    /// `HH:MM-HH:MM`, the box's local time; `00:00-24:00` is all day, and a start after the
    /// end spans midnight (`22:00-06:00`).
    #[serde(default = "default_working_hours")]
    pub working_hours: String,
    /// Days the working hours apply (`mon` .. `sun`); default every day.
    #[serde(default = "default_working_days")]
    pub working_days: Vec<String>,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        AlarmsConfig {
            noise_floor_dbfs: default_noise_floor_dbfs(),
            silent_call_min_s: default_silent_call_min_s(),
            silent_calls_in_row: default_silent_calls_in_row(),
            idle_logged_in_s: default_idle_logged_in_s(),
            working_hours: default_working_hours(),
            working_days: default_working_days(),
        }
    }
}

fn default_noise_floor_dbfs() -> f64 {
    -60.0
}
fn default_silent_call_min_s() -> u64 {
    30
}
fn default_silent_calls_in_row() -> u32 {
    3
}
fn default_idle_logged_in_s() -> u64 {
    1800
}
fn default_working_hours() -> String {
    "08:00-20:00".into()
}
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
fn default_working_days() -> Vec<String> {
    WEEKDAYS.iter().map(|d| (*d).to_owned()).collect()
}

/// Minutes of the day of `HH:MM` (`24:00` is 1440).
fn minute_of(hh_mm: &str) -> Option<u32> {
    let (h, m) = hh_mm.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl AlarmsConfig {
    /// `working_hours` as (start, end) minutes of the day.
    pub fn working_minutes(&self) -> Option<(u32, u32)> {
        let (a, b) = self.working_hours.split_once('-')?;
        Some((minute_of(a)?, minute_of(b)?))
    }

    /// Whether `minute` of a day (0 = midnight) of `weekday` (0 = Monday) is in working hours.
    /// A span past midnight belongs to the day it starts on.
    pub fn in_working_hours(&self, weekday: u32, minute: u32) -> bool {
        let Some((start, end)) = self.working_minutes() else {
            return false;
        };
        let works = |d: u32| {
            WEEKDAYS
                .get(d as usize % 7)
                .is_some_and(|n| self.working_days.iter().any(|w| w == n))
        };
        if start <= end {
            works(weekday) && (start..end).contains(&minute)
        } else {
            (works(weekday) && minute >= start) || (works((weekday + 6) % 7) && minute < end)
        }
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if !(-120.0..=0.0).contains(&self.noise_floor_dbfs) {
            return Err((
                "alarms.noise_floor_dbfs".into(),
                "must be -120 ..= 0 dBFS (default -60)".into(),
            ));
        }
        if self.silent_call_min_s == 0 {
            return Err((
                "alarms.silent_call_min_s".into(),
                "must be at least 1 s (default 30)".into(),
            ));
        }
        if self.silent_calls_in_row == 0 {
            return Err((
                "alarms.silent_calls_in_row".into(),
                "must be at least 1 (default 3)".into(),
            ));
        }
        if self.working_minutes().is_none() {
            return Err((
                "alarms.working_hours".into(),
                format!(
                    "{:?} is not HH:MM-HH:MM (default \"08:00-20:00\")",
                    self.working_hours
                ),
            ));
        }
        if let Some(d) = self
            .working_days
            .iter()
            .find(|d| !WEEKDAYS.contains(&d.as_str()))
        {
            return Err((
                "alarms.working_days".into(),
                format!("{d:?} is not one of {}", WEEKDAYS.join(", ")),
            ));
        }
        Ok(())
    }
}

/// `[complaints]`: the register's final-response deadline.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintsConfig {
    /// Days from filing to the final response (the ruling); later is overdue. Default 56
    /// (8 weeks, FCA DISP 1.6.2 R).
    #[serde(default = "default_complaint_response_days")]
    pub response_days: u32,
}

impl Default for ComplaintsConfig {
    fn default() -> Self {
        ComplaintsConfig {
            response_days: default_complaint_response_days(),
        }
    }
}

fn default_complaint_response_days() -> u32 {
    56
}

/// `[hub]`: how `callrec hub` follows the archive. Optional; `callrec hub` needs `[archive]`
/// (the same section the boxes use, with credentials that may read the whole bucket).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// How often the bucket is listed for new sidecars (today's and yesterday's day prefixes of
    /// every box); a new call is indexed within this plus the time to fetch its sidecar.
    #[serde(default = "default_hub_poll_s")]
    pub poll_s: u64,
    /// How often every box's whole prefix is listed, to catch calls shipped late into an older
    /// day (a box that was offline); the first poll after a start is always such a sweep.
    #[serde(default = "default_hub_sweep_s")]
    pub sweep_s: u64,
    /// Upper bound of the on-disk audio cache under `<storage.dir>/cache/` (WAV, metrics and
    /// exports read whole files); least recently used files go first.
    #[serde(default = "default_hub_cache_bytes")]
    pub cache_bytes: u64,
}

fn default_hub_poll_s() -> u64 {
    20
}
fn default_hub_sweep_s() -> u64 {
    3600
}
fn default_hub_cache_bytes() -> u64 {
    2 << 30
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            poll_s: default_hub_poll_s(),
            sweep_s: default_hub_sweep_s(),
            cache_bytes: default_hub_cache_bytes(),
        }
    }
}

impl HubConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=3600).contains(&self.poll_s) {
            return Err(("hub.poll_s".into(), "must be 1 ..= 3600 s".into()));
        }
        if !(60..=7 * 86_400).contains(&self.sweep_s) {
            return Err((
                "hub.sweep_s".into(),
                "must be 60 ..= 604800 s (up to a week)".into(),
            ));
        }
        if self.cache_bytes < 16 << 20 {
            return Err((
                "hub.cache_bytes".into(),
                "must be at least 16 MiB (16777216): an hour-long call is about 15 MB".into(),
            ));
        }
        Ok(())
    }
}

/// `[archive]`: the S3-compatible object store every finalized call is shipped to (`archive`
/// module). Only the values are checked here; the credentials file is read (and refused when
/// others can read it) by the shipper when it starts, since this module reads no other file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// The store's base URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://10.0.0.9:7480`.
    pub endpoint: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    /// Put before every key (`floors/` gives `floors/<box>/yyyy/...`); empty by default.
    #[serde(default)]
    pub prefix: String,
    /// AWS shared-credentials file (INI), profile `default`: `aws_access_key_id`,
    /// `aws_secret_access_key`. Must not be readable by group or others.
    pub credentials_file: PathBuf,
    /// Path-style URLs (`endpoint/bucket/key`), which Ceph RGW, MinIO and Garage need.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// Longest wait between two attempts for one call (exponential backoff from 1 s up to it).
    #[serde(default = "default_retry_max_s")]
    pub retry_max_s: u64,
    /// Alarm `archive_backlog` when the oldest call waiting to be shipped is older than this.
    #[serde(default = "default_backlog_alarm_s")]
    pub backlog_alarm_s: u64,
    /// S3 Object Lock on archived objects (`archive::lock`): `auto` (the default) is
    /// `governance` when the bucket has Object Lock enabled and `off` otherwise.
    #[serde(default)]
    pub object_lock: ObjectLock,
    /// How long the archive keeps a call that no `[[retention.rule]]` matches, counted from the
    /// call's start (its objects' retain-until date, and when `callrec archive retention run`
    /// removes them). Unset: `retention.default_keep_days`; both unset: kept forever, no date.
    #[serde(default)]
    pub keep_days: Option<u32>,
    /// How often a box's shipper looks for orders from the hub (`archive::orders`); at most 20
    /// so that an order applies within 60 s of the box being online.
    #[serde(default = "default_orders_poll_s")]
    pub orders_poll_s: u64,
}

/// `archive.object_lock`: how archived objects are made write-once (S3 Object Lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ObjectLock {
    /// `governance` if GetObjectLockConfiguration says the bucket has Object Lock, else `off`.
    #[default]
    Auto,
    /// No retention dates and no object legal holds are set.
    Off,
    /// Retention in GOVERNANCE mode: only a user allowed `s3:BypassGovernanceRetention`, sending
    /// `x-amz-bypass-governance-retention`, can delete a version before its date.
    Governance,
    /// Retention in COMPLIANCE mode: nobody can delete a version or shorten its date before
    /// it, not even the bucket owner (SEC 17a-4(f), MiFID II style write-once storage).
    Compliance,
}

/// Top-level names under `[archive] prefix` that are not boxes: the hub's backups and orders.
pub const RESERVED_ARCHIVE_NAMES: [&str; 2] = ["hub", "orders"];

fn default_region() -> String {
    "us-east-1".into()
}
fn default_retry_max_s() -> u64 {
    300
}
fn default_orders_poll_s() -> u64 {
    10
}
fn default_backlog_alarm_s() -> u64 {
    3600
}

impl ArchiveConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((format!("archive.{k}"), m));
        let e = self.endpoint.trim();
        if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() < 10 {
            return bad(
                "endpoint",
                format!(
                    "{:?} must be a URL such as https://s3.example.com or http://127.0.0.1:7480",
                    self.endpoint
                ),
            );
        }
        if self.region.trim().is_empty() {
            return bad(
                "region",
                "must not be empty (us-east-1 when the store does not care)".into(),
            );
        }
        // S3 bucket naming rules: 3-63 of a-z, 0-9, '.', '-', starting and ending alphanumeric.
        let b = &self.bucket;
        let ok_chars = b
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
        let ends_ok = b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && b.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric());
        if !(3..=63).contains(&b.len()) || !ok_chars || !ends_ok {
            return bad(
                "bucket",
                format!("{b:?} must be 3-63 characters of a-z, 0-9, '.', '-', starting and ending with a letter or digit"),
            );
        }
        if self.prefix.starts_with('/')
            || self.prefix.contains("..")
            || self.prefix.contains("//")
            || (!self.prefix.is_empty() && !self.prefix.ends_with('/'))
        {
            return bad(
                "prefix",
                format!("{:?} must be empty or like \"floors/\": no leading '/', no '..' or '//', ending with '/'", self.prefix),
            );
        }
        if self.credentials_file.as_os_str().is_empty() || !self.credentials_file.is_absolute() {
            return bad(
                "credentials_file",
                "must be an absolute path to an AWS shared-credentials file (mode 0600)".into(),
            );
        }
        if !(1..=86_400).contains(&self.retry_max_s) {
            return bad("retry_max_s", "must be 1 ..= 86400 s".into());
        }
        if !(1..=30 * 86_400).contains(&self.backlog_alarm_s) {
            return bad(
                "backlog_alarm_s",
                "must be 1 ..= 2592000 s (up to 30 days)".into(),
            );
        }
        if !(1..=20).contains(&self.orders_poll_s) {
            return bad(
                "orders_poll_s",
                "must be 1 ..= 20 s (an order from the hub applies within 60 s)".into(),
            );
        }
        Ok(())
    }
}

/// How long recordings are kept (`store::retention`). Without rules and without
/// `default_keep_days`, nothing is ever deleted by retention.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep period for a call that matches no rule; None keeps such calls forever.
    #[serde(default)]
    pub default_keep_days: Option<u32>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RetentionRule>,
    /// How long a settled complaint (store::complaints) is kept after filing; unset: 3 years.
    #[serde(default)]
    pub complaint_keep_days: Option<u32>,
    /// Set by [`Config::parse`] when `[archive]` is configured, never read from the file: local
    /// retention and the disk guard then delete only calls whose archive copy is confirmed.
    #[serde(skip)]
    pub require_archived: bool,
}

/// One `[[retention.rule]]`: the calls it matches (every given field must match) and how long
/// they are kept, counted from the start of the call. When several rules match one call, the
/// longest keep wins, so adding a rule can never shorten what another rule promised.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    pub name: String,
    pub keep_days: u32,
    /// How long the archive keeps the calls this rule matches (their objects' retain-until
    /// date); unset: `keep_days`. The longest of the matching rules wins, as locally.
    #[serde(default)]
    pub archive_keep_days: Option<u32>,
    #[serde(default)]
    pub campaign: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub seat: Option<String>,
}

/// Who qa and supervisor users may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReviewerScope {
    /// Every call on the box.
    #[default]
    All,
    /// Calls whose agent is a user in the reviewer's own team.
    Team,
}

/// The web service (`callrec serve` / `callrec run`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Whether `callrec run` starts the web service next to the recorder.
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_bind")]
    pub bind: String,
    /// TLS is on unless the config says `tls = false` (loopback tests, a TLS-terminating proxy).
    #[serde(default = "default_true")]
    pub tls: bool,
    /// PEM certificate chain and key; when absent a self-signed pair is generated on first start
    /// under `<storage.dir>/tls/`.
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    /// A session ends after this long without a request...
    #[serde(default = "default_session_idle_s")]
    pub session_idle_s: u64,
    /// ...and after this long in any case.
    #[serde(default = "default_session_max_s")]
    pub session_max_s: u64,
    /// Failed logins in a row that lock an account, and for how long.
    #[serde(default = "default_lockout_after")]
    pub lockout_after: u32,
    #[serde(default = "default_lockout_s")]
    pub lockout_s: u64,
    #[serde(default)]
    pub reviewer_scope: ReviewerScope,
    /// Open connections in total; one more is closed at accept. Needs a file limit above it
    /// (the web unit's `LimitNOFILE=`); `callrec serve` refuses to start otherwise.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64); one more is closed at accept.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// A TLS handshake not finished in this time closes the connection.
    #[serde(default = "default_tls_handshake_timeout_ms")]
    pub tls_handshake_timeout_ms: u64,
    /// A request's headers not all received in this time close the connection (slow drip).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// A connection with nothing read or written for this long is closed (idle keep-alive,
    /// a client that stopped reading).
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// A request body not all received in this time fails the request.
    #[serde(default = "default_request_body_timeout_ms")]
    pub request_body_timeout_ms: u64,
    /// Largest request body accepted (forms, JSON); larger gets 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest request head (request line + headers); larger gets 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Reverse proxies (addresses or CIDR blocks: `"10.0.0.5"`, `"10.1.0.0/16"`) whose
    /// `X-Forwarded-For` names the client. Empty (the default): the header is ignored, every
    /// client is its TCP peer. A request through one of them never counts as loopback.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Supervisors and admins may listen to a seat live (`/live/{seat}`, audited). `false`:
    /// the routes answer 404 and no page links to them.
    #[serde(default = "default_true")]
    pub live_listen: bool,
}

/// An address block (`10.1.0.0/16`, `fd00::/8`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix_len: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match p {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|n| *n <= max)?,
        };
        Some(IpNet { addr, prefix_len })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(x)) => (
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(x)) << 96,
                self.prefix_len,
            ),
            (IpAddr::V6(n), IpAddr::V6(x)) => (u128::from(n), u128::from(x), self.prefix_len),
            _ => return false,
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(bits))
        };
        a & mask == b & mask
    }
}

fn default_max_connections() -> usize {
    512
}
fn default_max_connections_per_client() -> usize {
    64
}
fn default_tls_handshake_timeout_ms() -> u64 {
    5_000
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_request_body_timeout_ms() -> u64 {
    30_000
}
fn default_max_body_bytes() -> usize {
    2 * 1024 * 1024
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}

fn default_true() -> bool {
    true
}
fn default_bind() -> String {
    "0.0.0.0:8443".into()
}
fn default_session_idle_s() -> u64 {
    30 * 60
}
fn default_session_max_s() -> u64 {
    12 * 3600
}
fn default_lockout_after() -> u32 {
    5
}
fn default_lockout_s() -> u64 {
    15 * 60
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            enabled: true,
            bind: default_bind(),
            tls: true,
            cert_path: None,
            key_path: None,
            session_idle_s: default_session_idle_s(),
            session_max_s: default_session_max_s(),
            lockout_after: default_lockout_after(),
            lockout_s: default_lockout_s(),
            reviewer_scope: ReviewerScope::All,
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
            tls_handshake_timeout_ms: default_tls_handshake_timeout_ms(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            request_body_timeout_ms: default_request_body_timeout_ms(),
            max_body_bytes: default_max_body_bytes(),
            max_header_bytes: default_max_header_bytes(),
            trusted_proxies: Vec::new(),
            live_listen: true,
        }
    }
}

impl ServerConfig {
    /// `trusted_proxies` parsed (validation refused any that do not parse).
    pub fn trusted_proxy_nets(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| IpNet::parse(p))
            .collect()
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err((
                "server.bind".into(),
                format!(
                    "{:?} is not an address:port such as 0.0.0.0:8443 or 127.0.0.1:8080",
                    self.bind
                ),
            ));
        }
        if self.cert_path.is_some() != self.key_path.is_some() {
            return Err((
                "server.cert_path".into(),
                "set both cert_path and key_path, or neither (a self-signed pair is then generated)".into(),
            ));
        }
        if self.session_idle_s == 0 || self.session_max_s < self.session_idle_s {
            return Err((
                "server.session_idle_s".into(),
                "must be at least 1 s and no longer than server.session_max_s".into(),
            ));
        }
        if self.lockout_after == 0 {
            return Err(("server.lockout_after".into(), "must be at least 1".into()));
        }
        if let Some(bad) = self
            .trusted_proxies
            .iter()
            .find(|p| IpNet::parse(p).is_none())
        {
            return Err((
                "server.trusted_proxies".into(),
                format!("{bad:?} is not an address or CIDR block such as \"10.0.0.5\" or \"10.1.0.0/16\""),
            ));
        }
        self.validate_limits()
    }

    /// The connection limits: every one finite and non-zero, so nothing a client sends can
    /// hold a connection, a buffer or a task without end.
    fn validate_limits(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("server.{k}"), m.to_owned()));
        if !(1..=65_536).contains(&self.max_connections) {
            return bad("max_connections", "must be 1 ..= 65536");
        }
        if self.max_connections_per_client == 0
            || self.max_connections_per_client > self.max_connections
        {
            return bad(
                "max_connections_per_client",
                "must be at least 1 and at most server.max_connections",
            );
        }
        for (k, v) in [
            ("tls_handshake_timeout_ms", self.tls_handshake_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("request_body_timeout_ms", self.request_body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&v) {
                return bad(k, "must be 100 ..= 3600000 (0.1 s to 1 h)");
            }
        }
        if !(1..=1 << 30).contains(&self.max_body_bytes) {
            return bad("max_body_bytes", "must be 1 ..= 1073741824");
        }
        if !(8192..=1 << 20).contains(&self.max_header_bytes) {
            return bad("max_header_bytes", "must be 8192 ..= 1048576");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BoxConfig {
    /// Names this recorder in every call row and file tag (e.g. "floor-3").
    pub id: String,
    /// Unix socket for `callrec call ...`; default `<storage.dir>/control.sock`.
    pub control_socket: Option<PathBuf>,
    /// Encoder worker threads; 0 means one per CPU core.
    #[serde(default)]
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub dir: PathBuf,
    /// Bounds the audio lost to a power cut (invariant 3): at most this plus one Ogg page.
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// The id in the storage dir's STORAGE-ID file, printed on first start. When set, the box
    /// refuses to run on a storage dir with another id or none: an unmounted or wrong disk.
    #[serde(default)]
    pub id: Option<String>,
    /// Disk-pressure guard: when the storage filesystem is fuller than this, `pressure_policy`
    /// decides what happens (by default: calls already due under `[retention]` go at once, and
    /// alarm `disk_pressure` is raised; nothing is deleted before its keep period ends).
    #[serde(default = "default_high_water_percent")]
    pub high_water_percent: u8,
    /// `oldest_first` only: how far down the guard deletes once above high water.
    #[serde(default = "default_low_water_percent")]
    pub low_water_percent: u8,
    /// Which promise wins when the disk fills up: retention's (`keep`, the default) or
    /// recording's (`oldest_first`). See [`PressurePolicy`].
    #[serde(default)]
    pub pressure_policy: PressurePolicy,
    /// How often the recorder checks free space (and finishes any pending deletion).
    #[serde(default = "default_guard_interval_ms")]
    pub guard_interval_ms: u64,
}

/// What the disk-pressure guard may delete above `storage.high_water_percent`.
///
/// Retention (`[retention]`) promises how long calls are kept; the recorder promises to record
/// every call. When the disk fills up both cannot be kept, and this says which wins. Either way
/// a call on legal hold or still recording is never deleted, and when the disk is really full
/// new calls are refused (the full-disk path, the last resort) rather than anything deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PressurePolicy {
    /// Never delete a call before its retention rule allows: above high water, retention runs at
    /// once (instead of at the next hourly pass) so calls already due go, and if that is not
    /// enough alarm `disk_pressure` is raised while there is still room to act.
    #[default]
    Keep,
    /// Delete the oldest finished calls not on hold until usage is at `low_water_percent`,
    /// whatever retention promised them (a recorder that must never stop recording).
    OldestFirst,
}

impl PressurePolicy {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            PressurePolicy::Keep => "keep",
            PressurePolicy::OldestFirst => "oldest_first",
        }
    }
}

fn default_fsync_interval_ms() -> u64 {
    2000
}
fn default_high_water_percent() -> u8 {
    95
}
fn default_low_water_percent() -> u8 {
    90
}
fn default_guard_interval_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    #[serde(default = "default_rate_hz")]
    pub rate_hz: u32,
    /// Per party: each of the two uncoupled mono streams gets this bitrate.
    #[serde(default = "default_bitrate_bps")]
    pub bitrate_bps: u32,
    #[serde(default = "default_complexity")]
    pub complexity: u32,
    #[serde(default = "default_frame_ms")]
    pub frame_ms: u32,
    /// What the writer does with a party's frames that hold only its background noise (see
    /// `codec::quiet`): `encode` (the default) encodes every frame alike, as callrec always did;
    /// `low` encodes them at complexity 0; `dtx` stores a DTX packet without running the
    /// encoder. Both save CPU and cost some PESQ (benches/RESULTS.md, issue 9).
    #[serde(default)]
    pub quiet_frames: QuietFramesMode,
    /// With `quiet_frames = "low"`: the complexity quiet frames are encoded at (0 ..=
    /// `complexity`). 0 saves the most CPU; 2 keeps PESQ-WB within 0.03 of encoding every
    /// frame (benches/RESULTS.md, issue 9).
    #[serde(default)]
    pub quiet_complexity: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuietFramesMode {
    Dtx,
    Low,
    #[default]
    Encode,
}

fn default_rate_hz() -> u32 {
    16000
}
fn default_bitrate_bps() -> u32 {
    16000
}
fn default_complexity() -> u32 {
    5
}
fn default_frame_ms() -> u32 {
    20
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            rate_hz: default_rate_hz(),
            bitrate_bps: default_bitrate_bps(),
            complexity: default_complexity(),
            frame_ms: default_frame_ms(),
            quiet_frames: QuietFramesMode::default(),
            quiet_complexity: 0,
        }
    }
}

impl RetentionConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let mut names = HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("retention.rule[{i}].{field}");
            if r.name.trim().is_empty() || !names.insert(r.name.as_str()) {
                return Err((key("name"), "must be present and unique".into()));
            }
            if let Some(d) = r
                .direction
                .as_deref()
                .filter(|d| !["inbound", "outbound"].contains(d))
            {
                return Err((
                    key("direction"),
                    format!("{d:?} must be \"inbound\" or \"outbound\""),
                ));
            }
            if r.campaign.is_none() && r.direction.is_none() && r.tag.is_none() && r.seat.is_none()
            {
                return Err((
                    key("campaign"),
                    "a rule must match on at least one of campaign, direction, tag, seat; use retention.default_keep_days for all other calls".into(),
                ));
            }
        }
        Ok(())
    }
}

impl EncoderConfig {
    pub fn frame_samples(&self) -> usize {
        (self.rate_hz * self.frame_ms / 1000) as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeatMode {
    /// Calls start and stop on commands (control socket / CTI).
    Control,
    /// Voice-activated: starts on activity, stops after silence on both channels.
    Vox,
    /// Always recording; files roll every `roll_interval_s`.
    Continuous,
}

/// `[[device]]`: one capture device (a multichannel interface: USB, ADAT, a Dante/AES67
/// virtual card) opened once by the recorder, its channels mapped to seats by `[[seat]]
/// device` / `agent_device` / `customer_device` and `agent_channel` / `customer_channel`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// What seats call it: a-z, A-Z, 0-9, '-', '_', up to 64 characters.
    pub name: String,
    /// cpal device id, e.g. "alsa:hw:CARD=desk1,DEV=0" (see `callrec devices`).
    pub pcm: String,
    /// Channels the device is opened with (1..=64); seats use channels 0 ..= channels-1.
    pub channels: u16,
    /// Capture rate; absent (or 0): the encoder's rate when the device offers it, otherwise
    /// 48000 Hz (see [`AUTO_RATE_HZ`]).
    #[serde(default)]
    pub rate_hz: u32,
    /// Device period in frames (cpal `BufferSize::Fixed`).
    #[serde(default = "default_buffer_frames")]
    pub buffer_frames: u32,
}

/// `rate_hz` absent or 0 on an input or `[[device]]`: the recorder picks the capture rate when
/// it starts (`capture::rate::resolve`): the encoder's rate when the device offers it, so
/// nothing has to be resampled (issue 9 item 3), otherwise [`FALLBACK_CAPTURE_RATE_HZ`]; a
/// synthetic input takes the encoder's rate, a file input its WAV's rate.
pub const AUTO_RATE_HZ: u32 = 0;
/// The capture rate when the encoder's is not offered (or the device is absent at start):
/// what nearly every USB, PCIe and AES67 interface offers.
pub const FALLBACK_CAPTURE_RATE_HZ: u32 = 48_000;

/// Most channels a `[[device]]` may be opened with: a MADI or 64-channel Dante card.
pub const MAX_DEVICE_CHANNELS: u16 = 64;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeatConfig {
    pub id: String,
    #[serde(default = "default_mode")]
    pub mode: SeatMode,
    /// One input carrying both parties, or two inputs (agent headset + customer line tap).
    /// Empty when the seat maps channels of `[[device]]`s instead.
    #[serde(default, rename = "input")]
    pub inputs: Vec<InputConfig>,
    /// The `[[device]]` carrying both parties (instead of `[[seat.input]]`).
    #[serde(default)]
    pub device: Option<String>,
    /// The `[[device]]` carrying the agent, when the parties are on two devices (a headset
    /// interface and a line interface); goes with `customer_device`.
    #[serde(default)]
    pub agent_device: Option<String>,
    /// The `[[device]]` carrying the customer; goes with `agent_device`.
    #[serde(default)]
    pub customer_device: Option<String>,
    /// The agent's channel (0-based) on its `[[device]]`.
    #[serde(default)]
    pub agent_channel: Option<u16>,
    /// The customer's channel (0-based) on its `[[device]]`.
    #[serde(default)]
    pub customer_channel: Option<u16>,
    /// Activity threshold for `vox` mode, dBFS RMS over a 20 ms frame.
    #[serde(default = "default_vox_threshold_dbfs")]
    pub vox_threshold_dbfs: f32,
    /// Audio kept before the first active frame so the first word is not clipped.
    #[serde(default = "default_vox_pre_roll_ms")]
    pub vox_pre_roll_ms: u32,
    /// A vox call ends after this much silence on both channels.
    #[serde(default = "default_vox_stop_after_ms")]
    pub vox_stop_after_ms: u32,
    /// Length of each file in `continuous` mode.
    #[serde(default = "default_roll_interval_s")]
    pub roll_interval_s: u32,
}

fn default_mode() -> SeatMode {
    SeatMode::Control
}
fn default_vox_threshold_dbfs() -> f32 {
    -45.0
}
fn default_vox_pre_roll_ms() -> u32 {
    2000
}
fn default_vox_stop_after_ms() -> u32 {
    8000
}
fn default_roll_interval_s() -> u32 {
    3600
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// A capture device through cpal (ALSA).
    Device,
    /// A WAV file played in real time, looping (tests, demos, replaying a tap).
    File,
    /// Generated speech-like two-party audio (demo and capacity benches).
    Synthetic,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub kind: InputKind,
    /// cpal device id for `device` inputs, e.g. "alsa:hw:CARD=seat01,DEV=0" (see `callrec devices`).
    pub device: Option<String>,
    /// WAV path for `file` inputs.
    pub path: Option<PathBuf>,
    /// Capture rate; absent (or 0): picked at start (see [`AUTO_RATE_HZ`]).
    #[serde(default)]
    pub rate_hz: u32,
    #[serde(default = "default_channels")]
    pub channels: u16,
    /// Which channel of this input carries the agent (absent: this input has no agent audio).
    pub agent_channel: Option<u16>,
    /// Which channel of this input carries the customer.
    pub customer_channel: Option<u16>,
    /// Device period in frames (cpal `BufferSize::Fixed`).
    #[serde(default = "default_buffer_frames")]
    pub buffer_frames: u32,
    /// Synthetic inputs only: clock error to simulate, parts per million.
    #[serde(default)]
    pub drift_ppm: f64,
    /// Synthetic inputs only: seed of the conversation generator.
    #[serde(default)]
    pub seed: u64,
    /// Synthetic inputs only: what the generator plays (see `capture::synth`).
    #[serde(default)]
    pub speech: SyntheticSpeech,
}

/// The kinds of synthetic conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyntheticSpeech {
    /// Turns over digital silence, no background (the demo's generator).
    #[default]
    Turns,
    /// A realistic call: turn-taking, overlaps, pauses, office and line noise.
    Conversation,
    /// Both parties talking all the time over the same noise (the encoder's worst case).
    Continuous,
}

fn default_channels() -> u16 {
    2
}
fn default_buffer_frames() -> u32 {
    960
}

impl SeatConfig {
    /// The seat's parties on `[[device]]`s, agent first: (party, device name, channel). Empty
    /// for a seat with `[[seat.input]]` sections.
    pub fn device_parties(&self) -> Vec<(Party, &str, u16)> {
        let mut v = Vec::new();
        let agent = self.agent_device.as_deref().or(self.device.as_deref());
        let customer = self.customer_device.as_deref().or(self.device.as_deref());
        if let (Some(d), Some(c)) = (agent, self.agent_channel) {
            v.push((Party::Agent, d, c));
        }
        if let (Some(d), Some(c)) = (customer, self.customer_channel) {
            v.push((Party::Customer, d, c));
        }
        v
    }

    fn maps_devices(&self) -> bool {
        self.device.is_some()
            || self.agent_device.is_some()
            || self.customer_device.is_some()
            || self.agent_channel.is_some()
            || self.customer_channel.is_some()
    }
}

impl InputConfig {
    /// Party channels carried by this input, in ring order (agent first).
    pub fn party_channels(&self) -> Vec<(Party, u16)> {
        let mut v = Vec::new();
        if let Some(c) = self.agent_channel {
            v.push((Party::Agent, c));
        }
        if let Some(c) = self.customer_channel {
            v.push((Party::Customer, c));
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    Agent,
    Customer,
}

impl Party {
    /// Channel index in the Ogg Opus file (DESIGN: agent = 0, customer = 1).
    pub fn index(self) -> usize {
        match self {
            Party::Agent => 0,
            Party::Customer => 1,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        cfg.validate(path)?;
        cfg.retention.require_archived = cfg.archive.is_some();
        Ok(cfg)
    }

    pub fn control_socket(&self) -> PathBuf {
        self.box_
            .control_socket
            .clone()
            .unwrap_or_else(|| self.storage.dir.join("control.sock"))
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.storage.dir.join("tls")
    }

    pub fn db_path(&self) -> PathBuf {
        self.storage.dir.join("callrec.db")
    }

    pub fn worker_count(&self) -> usize {
        if self.box_.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.box_.workers
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        if self.box_.id.trim().is_empty() {
            return Err(bad("box.id".into(), "must not be empty".into()));
        }
        if self.storage.fsync_interval_ms == 0 || self.storage.fsync_interval_ms > 60_000 {
            return Err(bad(
                "storage.fsync_interval_ms".into(),
                "must be between 1 and 60000 ms".into(),
            ));
        }
        let (high, low) = (
            self.storage.high_water_percent,
            self.storage.low_water_percent,
        );
        if !(1..=100).contains(&high) {
            return Err(bad(
                "storage.high_water_percent".into(),
                "must be between 1 and 100".into(),
            ));
        }
        if low >= high {
            return Err(bad(
                "storage.low_water_percent".into(),
                format!("must be below storage.high_water_percent ({high})"),
            ));
        }
        self.retention.validate().map_err(|(k, m)| bad(k, m))?;
        if self.complaints.response_days == 0 {
            return Err(bad(
                "complaints.response_days".into(),
                "must be at least 1 (default 56: 8 weeks)".into(),
            ));
        }
        if self.retention.complaint_keep_days == Some(0) {
            return Err(bad(
                "retention.complaint_keep_days".into(),
                "must be at least 1 (default 1095: 3 years)".into(),
            ));
        }
        self.encoder.validate().map_err(|(k, m)| bad(k, m))?;
        self.alarms.validate().map_err(|(k, m)| bad(k, m))?;
        self.server.validate().map_err(|(k, m)| bad(k, m))?;
        if let Some(h) = &self.hub {
            h.validate().map_err(|(k, m)| bad(k, m))?;
            if self.archive.is_none() {
                return Err(bad(
                    "hub".into(),
                    "[hub] needs an [archive] section: the bucket the hub indexes".into(),
                ));
            }
        }
        if let Some(a) = &self.archive {
            a.validate().map_err(|(k, m)| bad(k, m))?;
        }
        if self.archive.is_some() && !valid_seat_id(&self.box_.id) {
            // The box id is the first part of every object key.
            return Err(bad(
                "box.id".into(),
                format!("{:?} must be 1-64 characters of a-z, A-Z, 0-9, '-', '_' when [archive] is set (it names the box's objects)", self.box_.id),
            ));
        }
        if self.archive.is_some() && RESERVED_ARCHIVE_NAMES.contains(&self.box_.id.as_str()) {
            return Err(bad(
                "box.id".into(),
                format!("{:?} is reserved in the archive (the hub keeps its own objects under it): choose another box id", self.box_.id),
            ));
        }
        self.validate_devices().map_err(|(k, m)| bad(k, m))?;
        let mut seen = HashSet::new();
        for (i, seat) in self.seats.iter().enumerate() {
            let key = |field: &str| format!("seat[{i}].{field}");
            if !valid_seat_id(&seat.id) {
                return Err(bad(
                    key("id"),
                    format!(
                        "{:?} must be 1-64 characters of a-z, A-Z, 0-9, '-', '_'",
                        seat.id
                    ),
                ));
            }
            if !seen.insert(seat.id.clone()) {
                return Err(bad(
                    key("id"),
                    format!("seat id {:?} is used twice", seat.id),
                ));
            }
            if seat.mode == SeatMode::Continuous && seat.roll_interval_s < 10 {
                return Err(bad(key("roll_interval_s"), "must be at least 10 s".into()));
            }
            if seat.mode == SeatMode::Vox && !(-100.0..0.0).contains(&seat.vox_threshold_dbfs) {
                return Err(bad(
                    key("vox_threshold_dbfs"),
                    "must be between -100 and 0 dBFS".into(),
                ));
            }
            if seat.inputs.is_empty() && seat.maps_devices() {
                validate_mapping(seat, &self.devices).map_err(|(k, m)| bad(key(&k), m))?;
            } else if seat.maps_devices() {
                return Err(bad(
                    key("device"),
                    "a seat takes either [[seat.input]] sections or device/agent_device/customer_device with agent_channel/customer_channel, not both".into(),
                ));
            } else {
                validate_inputs(seat).map_err(|(k, m)| bad(key(&k), m))?;
            }
        }
        self.validate_channel_use().map_err(|(k, m)| bad(k, m))
    }

    /// `[[device]]` sections: names unique, values usable, each device opened by one section
    /// only (a second open of an `hw:` device fails, and two rings would see one clock twice).
    fn validate_devices(&self) -> Result<(), (String, String)> {
        let mut names = HashSet::new();
        let mut pcms = HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let key = |field: &str| format!("device[{i}].{field}");
            if !valid_seat_id(&d.name) {
                return Err((
                    key("name"),
                    format!(
                        "{:?} must be 1-64 characters of a-z, A-Z, 0-9, '-', '_'",
                        d.name
                    ),
                ));
            }
            if !names.insert(d.name.as_str()) {
                return Err((
                    key("name"),
                    format!("device name {:?} is used twice", d.name),
                ));
            }
            if d.pcm.trim().is_empty() {
                return Err((
                    key("pcm"),
                    "needs a cpal device id such as \"alsa:hw:CARD=desk1,DEV=0\" (see `callrec devices`)".into(),
                ));
            }
            if !pcms.insert(d.pcm.as_str()) {
                return Err((
                    key("pcm"),
                    format!("{:?} is already opened by another [[device]]: name it once and map its channels to seats", d.pcm),
                ));
            }
            if d.channels == 0 || d.channels > MAX_DEVICE_CHANNELS {
                return Err((
                    key("channels"),
                    format!("must be 1..={MAX_DEVICE_CHANNELS}"),
                ));
            }
            if d.rate_hz != AUTO_RATE_HZ && !(4000..=192_000).contains(&d.rate_hz) {
                return Err((
                    key("rate_hz"),
                    format!(
                        "{} Hz is not a usable capture rate (4000-192000; leave it out to let the recorder pick)",
                        d.rate_hz
                    ),
                ));
            }
            if !(16..=96_000).contains(&d.buffer_frames) {
                return Err((key("buffer_frames"), "must be 16..=96000 frames".into()));
            }
        }
        for (i, seat) in self.seats.iter().enumerate() {
            for (j, inp) in seat.inputs.iter().enumerate() {
                if let Some(d) = self
                    .devices
                    .iter()
                    .find(|d| inp.device.as_deref() == Some(d.pcm.as_str()))
                {
                    return Err((
                        format!("seat[{i}].input[{j}].device"),
                        format!("{:?} is opened by [[device]] {:?}: map the seat to it with device = {:?} and agent_channel / customer_channel", d.pcm, d.name, d.name),
                    ));
                }
            }
        }
        Ok(())
    }

    /// No channel of a `[[device]]` carries two parties (two seats, or both parties of one).
    fn validate_channel_use(&self) -> Result<(), (String, String)> {
        let mut used: std::collections::HashMap<(&str, u16), (&str, Party)> =
            std::collections::HashMap::new();
        for (i, seat) in self.seats.iter().enumerate() {
            for (party, dev, ch) in seat.device_parties() {
                if let Some((other, other_party)) = used.insert((dev, ch), (&seat.id, party)) {
                    return Err((
                        format!("seat[{i}].{}_channel", party_name(party)),
                        format!(
                            "channel {ch} of device {dev:?} is already seat {other:?}'s {} channel",
                            party_name(other_party)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn party_name(p: Party) -> &'static str {
    match p {
        Party::Agent => "agent",
        Party::Customer => "customer",
    }
}

/// A seat mapped to `[[device]]` channels: both parties present, on devices that exist, on
/// channels those devices have.
fn validate_mapping(seat: &SeatConfig, devices: &[DeviceConfig]) -> Result<(), (String, String)> {
    if seat.device.is_some() && (seat.agent_device.is_some() || seat.customer_device.is_some()) {
        return Err((
            "device".into(),
            "set either device (both parties on one device) or agent_device and customer_device, not both".into(),
        ));
    }
    for (party, dev_key, dev, ch) in [
        (
            Party::Agent,
            "agent_device",
            seat.agent_device.as_ref().or(seat.device.as_ref()),
            seat.agent_channel,
        ),
        (
            Party::Customer,
            "customer_device",
            seat.customer_device.as_ref().or(seat.device.as_ref()),
            seat.customer_channel,
        ),
    ] {
        let ch_key = format!("{}_channel", party_name(party));
        let Some(dev) = dev else {
            return Err((
                dev_key.into(),
                format!("the {} needs a device: set device = \"<[[device]] name>\" (or agent_device and customer_device)", party_name(party)),
            ));
        };
        let Some(ch) = ch else {
            return Err((
                ch_key,
                format!(
                    "missing: which channel of device {dev:?} carries the {} (0-based)",
                    party_name(party)
                ),
            ));
        };
        let key = if seat.device.is_some() {
            "device"
        } else {
            dev_key
        };
        let Some(d) = devices.iter().find(|d| &d.name == dev) else {
            let known: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
            return Err((
                key.into(),
                format!("no [[device]] named {dev:?} (configured: {known:?})"),
            ));
        };
        if ch >= d.channels {
            return Err((
                ch_key,
                format!(
                    "channel {ch} does not exist on device {dev:?} ({} channels: 0..={})",
                    d.channels,
                    d.channels - 1
                ),
            ));
        }
    }
    Ok(())
}

impl EncoderConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if !OPUS_RATES_HZ.contains(&self.rate_hz) {
            return Err((
                "encoder.rate_hz".into(),
                format!(
                    "{} Hz is not an Opus rate; use one of {OPUS_RATES_HZ:?}",
                    self.rate_hz
                ),
            ));
        }
        if !(6000..=128_000).contains(&self.bitrate_bps) {
            return Err((
                "encoder.bitrate_bps".into(),
                "must be between 6000 and 128000 bit/s per channel".into(),
            ));
        }
        if self.complexity > 10 {
            return Err(("encoder.complexity".into(), "must be 0..=10".into()));
        }
        if self.quiet_complexity > self.complexity {
            return Err((
                "encoder.quiet_complexity".into(),
                format!("must be 0..={} (encoder.complexity)", self.complexity),
            ));
        }
        if ![10, 20, 40, 60].contains(&self.frame_ms) {
            return Err(("encoder.frame_ms".into(), "must be 10, 20, 40 or 60".into()));
        }
        Ok(())
    }
}

fn valid_seat_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn validate_inputs(seat: &SeatConfig) -> Result<(), (String, String)> {
    if seat.inputs.is_empty() || seat.inputs.len() > 2 {
        return Err((
            "input".into(),
            "a seat needs one input carrying both parties or two inputs (agent, customer), or device = \"<[[device]] name>\" with agent_channel and customer_channel".into(),
        ));
    }
    let mut agents = 0;
    let mut customers = 0;
    for (j, input) in seat.inputs.iter().enumerate() {
        let key = |field: &str| format!("input[{j}].{field}");
        if input.rate_hz != AUTO_RATE_HZ && !(4000..=192_000).contains(&input.rate_hz) {
            return Err((
                key("rate_hz"),
                format!(
                    "{} Hz is not a usable capture rate (4000-192000; leave it out to let the recorder pick)",
                    input.rate_hz
                ),
            ));
        }
        if input.channels == 0 || input.channels > 32 {
            return Err((key("channels"), "must be 1..=32".into()));
        }
        if !(16..=96_000).contains(&input.buffer_frames) {
            return Err((key("buffer_frames"), "must be 16..=96000 frames".into()));
        }
        if !(-1000.0..=1000.0).contains(&input.drift_ppm) {
            return Err((key("drift_ppm"), "must be within ±1000 ppm".into()));
        }
        for (name, ch) in [
            ("agent_channel", input.agent_channel),
            ("customer_channel", input.customer_channel),
        ] {
            if let Some(c) = ch {
                if c >= input.channels {
                    return Err((
                        key(name),
                        format!(
                            "channel {c} does not exist on a {}-channel input",
                            input.channels
                        ),
                    ));
                }
            }
        }
        agents += usize::from(input.agent_channel.is_some());
        customers += usize::from(input.customer_channel.is_some());
        match input.kind {
            InputKind::Device => match &input.device {
                Some(d) if !d.trim().is_empty() => {}
                _ => return Err((key("device"), "a `device` input needs `device = \"alsa:...\"` (list them with `callrec devices`)".into())),
            },
            InputKind::File => {
                let Some(p) = &input.path else {
                    return Err((key("path"), "a `file` input needs `path = \"...wav\"`".into()));
                };
                if !p.is_file() {
                    return Err((key("path"), format!("{} does not exist or is not a file", p.display())));
                }
            }
            InputKind::Synthetic => {}
        }
        if input.kind != InputKind::Device && input.device.is_some() {
            return Err((key("device"), "only `device` inputs take a device".into()));
        }
        if input.kind != InputKind::Synthetic && (input.drift_ppm != 0.0 || input.seed != 0) {
            return Err((
                key("drift_ppm"),
                "drift_ppm and seed apply to synthetic inputs only".into(),
            ));
        }
        if input.kind != InputKind::Synthetic && input.speech != SyntheticSpeech::default() {
            return Err((
                key("speech"),
                "speech applies to synthetic inputs only".into(),
            ));
        }
    }
    if agents != 1 || customers != 1 {
        return Err((
            "input".into(),
            format!("exactly one input must set agent_channel and exactly one customer_channel (found {agents} and {customers})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[box]
id = "floor-1"
[storage]
dir = "/tmp/x"
[[seat]]
id = "s1"
[[seat.input]]
kind = "synthetic"
agent_channel = 0
customer_channel = 1
"#;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_applied() -> Result<(), ConfigError> {
        let c = Config::parse(GOOD, Path::new("t.toml"))?;
        assert_eq!(c.encoder.rate_hz, 16000);
        assert_eq!(c.encoder.bitrate_bps, 16000);
        assert_eq!(c.encoder.frame_samples(), 320);
        assert_eq!(c.storage.fsync_interval_ms, 2000);
        assert_eq!(c.seats[0].mode, SeatMode::Control);
        assert_eq!(c.control_socket(), PathBuf::from("/tmp/x/control.sock"));
        // Today's encoder and today's synthetic input unless a config asks otherwise.
        assert_eq!(c.encoder.quiet_frames, QuietFramesMode::Encode);
        assert_eq!(c.seats[0].inputs[0].speech, SyntheticSpeech::Turns);
        Ok(())
    }

    #[test]
    fn alarms_default_and_working_hours() -> Result<(), ConfigError> {
        let c = Config::parse(GOOD, Path::new("t.toml"))?;
        assert_eq!(c.alarms.noise_floor_dbfs, -60.0);
        assert_eq!(c.alarms.silent_call_min_s, 30);
        assert_eq!(c.alarms.silent_calls_in_row, 3);
        assert_eq!(c.alarms.idle_logged_in_s, 1800);
        // 08:00-20:00 every day: 08:00 is in, 20:00 is out.
        assert!(c.alarms.in_working_hours(6, 8 * 60));
        assert!(!c.alarms.in_working_hours(0, 20 * 60));
        let night = GOOD.replace(
            "[[seat]]",
            "[alarms]\nworking_hours = \"22:00-06:00\"\nworking_days = [\"fri\"]\n[[seat]]",
        );
        let c = Config::parse(&night, Path::new("t.toml"))?;
        assert!(c.alarms.in_working_hours(4, 23 * 60), "Friday night");
        assert!(
            c.alarms.in_working_hours(5, 5 * 60),
            "its morning is Saturday"
        );
        assert!(
            !c.alarms.in_working_hours(4, 5 * 60),
            "Thursday's night is off"
        );
        let all_day = GOOD.replace(
            "[[seat]]",
            "[alarms]\nworking_hours = \"00:00-24:00\"\n[[seat]]",
        );
        let c = Config::parse(&all_day, Path::new("t.toml"))?;
        assert!(c.alarms.in_working_hours(2, 0) && c.alarms.in_working_hours(2, 1439));
        let bad = GOOD.replace("[[seat]]", "[alarms]\nworking_hours = \"8-20\"\n[[seat]]");
        assert!(err(&bad).contains("alarms.working_hours"));
        let bad = GOOD.replace(
            "[[seat]]",
            "[alarms]\nworking_days = [\"monday\"]\n[[seat]]",
        );
        assert!(err(&bad).contains("alarms.working_days"));
        Ok(())
    }

    #[test]
    fn quiet_frames_and_speech_are_read_and_checked() -> Result<(), ConfigError> {
        let text = GOOD.replace("[[seat]]", "[encoder]\nquiet_frames = \"dtx\"\n[[seat]]")
            + "speech = \"conversation\"\n";
        let c = Config::parse(&text, Path::new("t.toml"))?;
        assert_eq!(c.encoder.quiet_frames, QuietFramesMode::Dtx);
        assert_eq!(c.seats[0].inputs[0].speech, SyntheticSpeech::Conversation);
        let e = err(&GOOD.replace("[[seat]]", "[encoder]\nquiet_frames = \"off\"\n[[seat]]"));
        assert!(e.contains("quiet_frames"), "{e}");
        let e = err(
            &(GOOD.replace("\"synthetic\"", "\"device\"\ndevice = \"alsa:x\"")
                + "speech = \"continuous\"\n"),
        );
        assert!(e.contains("speech"), "{e}");
        Ok(())
    }

    #[test]
    fn pressure_policy_defaults_to_keep_and_is_checked() -> Result<(), ConfigError> {
        let c = Config::parse(GOOD, Path::new("t.toml"))?;
        assert_eq!(c.storage.pressure_policy, PressurePolicy::Keep);
        let opt_in = GOOD.replace("[storage]", "[storage]\npressure_policy = \"oldest_first\"");
        let c = Config::parse(&opt_in, Path::new("t.toml"))?;
        assert_eq!(c.storage.pressure_policy, PressurePolicy::OldestFirst);
        let e = err(&GOOD.replace("[storage]", "[storage]\npressure_policy = \"newest\""));
        assert!(
            e.contains("pressure_policy") && e.contains("`keep`") && e.contains("`oldest_first`"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn unknown_key_named() {
        let e = err(&GOOD.replace("[storage]", "[storage]\nfsync_every = 3"));
        assert!(e.contains("fsync_every"), "{e}");
        let e = err(&GOOD.replace("kind = \"synthetic\"", "kind = \"synthetic\"\ncolour = 1"));
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn bad_rate_named() {
        let e = err(&format!(
            "{GOOD}\n[encoder]\nquiet_frames = \"low\"\nquiet_complexity = 6\n"
        ));
        assert!(
            e.contains("encoder.quiet_complexity") && e.contains("0..=5"),
            "{e}"
        );
        let e = err(&format!("{GOOD}\n[encoder]\nrate_hz = 44100\n"));
        assert!(e.contains("encoder.rate_hz") && e.contains("44100"), "{e}");
        let e = err(&GOOD.replace("agent_channel = 0", "agent_channel = 0\nrate_hz = 100"));
        assert!(e.contains("seat[0].input[0].rate_hz"), "{e}");
    }

    #[test]
    fn connection_limits_defaulted_and_checked() -> Result<(), ConfigError> {
        let c = Config::parse(GOOD, Path::new("t.toml"))?;
        assert_eq!(c.server.max_connections, 512);
        assert_eq!(c.server.header_read_timeout_ms, 10_000);
        for (line, key) in [
            ("max_connections = 0", "server.max_connections"),
            (
                "max_connections_per_client = 600",
                "server.max_connections_per_client",
            ),
            (
                "tls_handshake_timeout_ms = 0",
                "server.tls_handshake_timeout_ms",
            ),
            (
                "header_read_timeout_ms = 0",
                "server.header_read_timeout_ms",
            ),
            ("idle_timeout_ms = 99999999", "server.idle_timeout_ms"),
            (
                "request_body_timeout_ms = 5",
                "server.request_body_timeout_ms",
            ),
            ("max_body_bytes = 0", "server.max_body_bytes"),
            ("max_header_bytes = 100", "server.max_header_bytes"),
        ] {
            let e = err(&format!("{GOOD}\n[server]\n{line}\n"));
            assert!(e.contains(key), "{line}: {e}");
        }
        Ok(())
    }

    #[test]
    fn trusted_proxies_parsed_and_checked() -> Result<(), ConfigError> {
        let c = Config::parse(GOOD, Path::new("t.toml"))?;
        assert!(c.server.trusted_proxies.is_empty());
        let c = Config::parse(
            &format!("{GOOD}\n[server]\ntrusted_proxies = [\"10.0.0.5\", \"10.1.0.0/16\", \"fd00::/8\"]\n"),
            Path::new("t.toml"),
        )?;
        let nets = c.server.trusted_proxy_nets();
        let has = |ip: &str| {
            ip.parse()
                .is_ok_and(|ip| nets.iter().any(|n| n.contains(ip)))
        };
        assert!(has("10.0.0.5") && has("10.1.255.3") && has("fd12::1") && has("::ffff:10.0.0.5"));
        assert!(!has("10.0.0.6") && !has("10.2.0.1") && !has("127.0.0.1") && !has("fe80::1"));
        for bad in ["\"10.0.0.5/33\"", "\"proxy.local\"", "\"10.0.0.0/x\""] {
            let e = err(&format!("{GOOD}\n[server]\ntrusted_proxies = [{bad}]\n"));
            assert!(e.contains("server.trusted_proxies"), "{bad}: {e}");
        }
        Ok(())
    }

    #[test]
    fn missing_device_named() {
        let e = err(&GOOD.replace("\"synthetic\"", "\"device\""));
        assert!(e.contains("seat[0].input[0].device"), "{e}");
    }

    #[test]
    fn channel_map_checked() {
        let e = err(&GOOD.replace("customer_channel = 1", "customer_channel = 2"));
        assert!(
            e.contains("customer_channel") && e.contains("2-channel"),
            "{e}"
        );
        let e = err(&GOOD.replace("customer_channel = 1", ""));
        assert!(
            e.contains("seat[0].input") && e.contains("customer_channel"),
            "{e}"
        );
    }

    const DESK: &str = r#"
[box]
id = "floor-1"
[storage]
dir = "/tmp/x"
[[device]]
name = "desk"
pcm = "alsa:hw:CARD=desk,DEV=0"
channels = 4
[[device]]
name = "heads"
pcm = "alsa:hw:CARD=heads,DEV=0"
channels = 2
rate_hz = 44100
[[device]]
name = "lines"
pcm = "alsa:hw:CARD=lines,DEV=0"
channels = 2
[[seat]]
id = "s1"
device = "desk"
agent_channel = 0
customer_channel = 1
[[seat]]
id = "s2"
device = "desk"
agent_channel = 3
customer_channel = 2
[[seat]]
id = "s3"
agent_device = "heads"
agent_channel = 1
customer_device = "lines"
customer_channel = 1
"#;

    #[test]
    fn seats_map_channels_of_named_devices() -> Result<(), ConfigError> {
        let c = Config::parse(DESK, Path::new("t.toml"))?;
        assert_eq!(c.devices.len(), 3);
        assert_eq!(
            (c.devices[0].rate_hz, c.devices[0].buffer_frames),
            (AUTO_RATE_HZ, 960)
        );
        assert_eq!(c.devices[1].rate_hz, 44100);
        assert_eq!(
            c.seats[1].device_parties(),
            vec![(Party::Agent, "desk", 3), (Party::Customer, "desk", 2)]
        );
        assert_eq!(
            c.seats[2].device_parties(),
            vec![(Party::Agent, "heads", 1), (Party::Customer, "lines", 1)]
        );
        assert!(c.seats[2].inputs.is_empty());
        // Today's seats with their own [[seat.input]] sit beside them unchanged.
        let legacy = GOOD[GOOD.find("[[seat]]").unwrap_or(0)..].replace("\"s1\"", "\"s4\"");
        let mixed = format!("{DESK}{legacy}");
        let c = Config::parse(&mixed, Path::new("t.toml"))?;
        assert!(c.seats[3].device_parties().is_empty());
        assert_eq!(c.seats[3].inputs.len(), 1);
        Ok(())
    }

    #[test]
    fn device_mapping_mistakes_name_their_key() {
        for (from, to, key, hint) in [
            (
                "agent_channel = 3",
                "agent_channel = 4",
                "seat[1].agent_channel",
                "channel 4 does not exist on device \"desk\" (4 channels: 0..=3)",
            ),
            (
                "agent_channel = 3",
                "agent_channel = 1",
                "seat[1].agent_channel",
                "channel 1 of device \"desk\" is already seat \"s1\"'s customer channel",
            ),
            (
                "customer_channel = 2",
                "customer_channel = 3",
                "seat[1].customer_channel",
                "already seat \"s2\"'s agent channel",
            ),
            (
                "customer_device = \"lines\"",
                "customer_device = \"line\"",
                "seat[2].customer_device",
                "no [[device]] named \"line\"",
            ),
            (
                "id = \"s2\"\ndevice = \"desk\"",
                "id = \"s2\"\ndevice = \"desk2\"",
                "seat[1].device",
                "no [[device]] named \"desk2\"",
            ),
            (
                "customer_channel = 2\n",
                "\n",
                "seat[1].customer_channel",
                "missing",
            ),
            (
                "channels = 4",
                "channels = 65",
                "device[0].channels",
                "1..=64",
            ),
            (
                "name = \"lines\"",
                "name = \"heads\"",
                "device[2].name",
                "used twice",
            ),
            (
                "pcm = \"alsa:hw:CARD=lines,DEV=0\"",
                "pcm = \"alsa:hw:CARD=desk,DEV=0\"",
                "device[2].pcm",
                "already opened by another [[device]]",
            ),
            (
                "id = \"s3\"\n",
                "id = \"s3\"\ndevice = \"desk\"\n",
                "seat[2].device",
                "not both",
            ),
        ] {
            assert!(DESK.contains(from), "{from}");
            let e = err(&DESK.replacen(from, to, 1));
            assert!(e.contains(key) && e.contains(hint), "{to}: {e}");
        }
        // A seat cannot mix the two ways, nor open a named device's pcm on its own.
        let mixed = format!(
            "{DESK}[[seat.input]]\nkind = \"synthetic\"\nagent_channel = 0\ncustomer_channel = 1\n"
        );
        let e = err(&mixed);
        assert!(
            e.contains("seat[2].device") && e.contains("not both"),
            "{e}"
        );
        let again = format!(
            "{DESK}[[seat]]\nid = \"s9\"\n[[seat.input]]\nkind = \"device\"\ndevice = \"alsa:hw:CARD=desk,DEV=0\"\nchannels = 4\nagent_channel = 0\ncustomer_channel = 1\n"
        );
        let e = err(&again);
        assert!(
            e.contains("seat[3].input[0].device") && e.contains("opened by [[device]] \"desk\""),
            "{e}"
        );
    }

    #[test]
    fn duplicate_seat_named() {
        let seat = GOOD.find("[[seat]]").unwrap_or(0);
        let twice = format!("{GOOD}{}", &GOOD[seat..]);
        let e = err(&twice);
        assert!(e.contains("seat[1].id") && e.contains("twice"), "{e}");
    }

    #[test]
    fn archive_section_defaults_and_each_bad_value_names_its_key() -> Result<(), ConfigError> {
        let base = "[archive]\nendpoint = \"http://127.0.0.1:7480\"\nbucket = \"calls\"\ncredentials_file = \"/etc/callrec/s3\"\n";
        let c = Config::parse(&format!("{GOOD}{base}"), Path::new("t.toml"))?;
        let a = c.archive.as_ref().map(|a| {
            (
                a.region.as_str(),
                a.prefix.as_str(),
                a.path_style,
                a.retry_max_s,
                a.backlog_alarm_s,
            )
        });
        assert_eq!(a, Some(("us-east-1", "", true, 300, 3600)));
        assert!(Config::parse(GOOD, Path::new("t.toml"))?.archive.is_none());
        for (extra, key, hint) in [
            (
                "endpoint = \"s3.example.com\"",
                "archive.endpoint",
                "must be a URL",
            ),
            ("bucket = \"Calls_1\"", "archive.bucket", "3-63 characters"),
            ("prefix = \"/fleet\"", "archive.prefix", "no leading '/'"),
            ("prefix = \"fleet\"", "archive.prefix", "ending with '/'"),
            (
                "credentials_file = \"s3.ini\"",
                "archive.credentials_file",
                "absolute path",
            ),
            ("retry_max_s = 0", "archive.retry_max_s", "1 ..= 86400"),
            (
                "backlog_alarm_s = 0",
                "archive.backlog_alarm_s",
                "1 ..= 2592000",
            ),
        ] {
            let field = extra.split(' ').next().unwrap_or_default();
            let kept: String = base
                .lines()
                .filter(|l| !l.starts_with(field))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = err(&format!("{GOOD}{kept}{extra}\n"));
            assert!(e.contains(key) && e.contains(hint), "{extra}: {e}");
        }
        let bad_box = format!("{}{base}", GOOD.replace("floor-1", "floor 1"));
        assert!(err(&bad_box).contains("box.id"));
        let hub_box = format!("{}{base}", GOOD.replace("\"floor-1\"", "\"hub\""));
        assert!(
            err(&hub_box).contains("is reserved in the archive"),
            "{}",
            err(&hub_box)
        );
        Ok(())
    }
}
