//! The CSV sidecar of a legacy import: one row per recording with its agent, number, start time,
//! direction, campaign and external id, under column names chosen with flags.
//!
//! Rows are matched to sources by the file column: first as a path (relative to the CSV's own
//! folder, or absolute), then by file name alone when exactly one row has that name. Problems that
//! make the whole sidecar unusable (unreadable, no header, a mapped column missing, two rows for
//! the same file) are errors before anything is imported; a bad value in one row (a start time
//! that does not parse, an unknown direction) fails only the file that row describes, so it is
//! never imported with made-up metadata.
//!
//! Pure parsing: this module reads the CSV and nothing else; it must never touch the index, the
//! storage directory or the audio files.

use crate::clock::format_utc;
use crate::store::CallMeta;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("sidecar {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("sidecar {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Which CSV column holds which field. `None` means the default name (see [`ColumnMap::DEFAULTS`])
/// if the CSV has such a column; a name given explicitly must exist.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColumnMap {
    pub file: Option<String>,
    pub agent: Option<String>,
    pub number: Option<String>,
    pub started: Option<String>,
    pub direction: Option<String>,
    pub campaign: Option<String>,
    pub external_id: Option<String>,
}

impl ColumnMap {
    /// Default column names: file, agent, number, started, direction, campaign, external_id.
    pub const DEFAULTS: [(&'static str, &'static str); 7] = [
        ("file", "file"),
        ("agent", "agent"),
        ("number", "number"),
        ("started", "started"),
        ("direction", "direction"),
        ("campaign", "campaign"),
        ("external_id", "external_id"),
    ];

    fn fields(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("file", self.file.as_deref()),
            ("agent", self.agent.as_deref()),
            ("number", self.number.as_deref()),
            ("started", self.started.as_deref()),
            ("direction", self.direction.as_deref()),
            ("campaign", self.campaign.as_deref()),
            ("external_id", self.external_id.as_deref()),
        ]
    }
}

/// What the sidecar says about one recording.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Row {
    /// 1-based line in the CSV (the header is line 1).
    pub line: u64,
    pub file: String,
    pub meta: CallMeta,
    /// Normalised to `2026-11-27T17:20:00.000Z`.
    pub started_at_utc: Option<String>,
    /// Why this row cannot be used; the file it names fails with this reason.
    pub error: Option<String>,
}

#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a Row),
    /// Several rows have this file name and none matched by path: their line numbers.
    Ambiguous(Vec<u64>),
    None,
}

#[derive(Debug, Default)]
pub struct Sidecar {
    pub rows: Vec<Row>,
    base: PathBuf,
    by_path: HashMap<PathBuf, usize>,
    by_name: HashMap<String, Vec<usize>>,
}

impl Sidecar {
    /// Reads and parses `path`; relative file names are resolved against its folder.
    pub fn load(
        path: &Path,
        map: &ColumnMap,
        time_format: Option<&str>,
    ) -> Result<Sidecar, SidecarError> {
        let text = std::fs::read(path).map_err(|source| SidecarError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Sidecar::parse(&text, &base, map, time_format).map_err(|message| SidecarError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses CSV text. The delimiter is whichever of `,` `;` tab occurs most in the header line
    /// (spreadsheet exports in many locales use `;`). A UTF-8 byte-order mark is ignored.
    pub fn parse(
        text: &[u8],
        base: &Path,
        map: &ColumnMap,
        time_format: Option<&str>,
    ) -> Result<Sidecar, String> {
        let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
        let header_line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let delimiter = [b',', b';', b'\t']
            .into_iter()
            .max_by_key(|d| header_line.iter().filter(|&&b| b == *d).count())
            .unwrap_or(b',');
        let mut rd = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text);
        let headers: Vec<String> = rd
            .headers()
            .map_err(|e| format!("reading the header line: {e}"))?
            .iter()
            .map(str::to_owned)
            .collect();
        if headers.iter().all(String::is_empty) {
            return Err("no header line (the first line must name the columns)".into());
        }
        let mut col: HashMap<&'static str, usize> = HashMap::new();
        for ((field, explicit), (_, default)) in map.fields().into_iter().zip(ColumnMap::DEFAULTS) {
            let name = explicit.unwrap_or(default);
            match headers.iter().position(|h| h.eq_ignore_ascii_case(name)) {
                Some(i) => {
                    col.insert(field, i);
                }
                None if explicit.is_some() || field == "file" => {
                    return Err(format!(
                        "no column {name:?} (for {}); the columns are: {}",
                        field.replace('_', "-"),
                        headers.join(", ")
                    ))
                }
                None => {}
            }
        }
        let mut sc = Sidecar {
            base: base.to_path_buf(),
            ..Default::default()
        };
        let mut seen: HashMap<String, u64> = HashMap::new();
        for rec in rd.records() {
            let rec = rec.map_err(|e| e.to_string())?;
            // Counted from the bytes: the csv crate does not count blank lines.
            let line = rec.position().map_or(0, |p| {
                let mut at = (p.byte() as usize).min(text.len());
                while at < text.len() && matches!(text[at], b'\r' | b'\n') {
                    at += 1;
                }
                1 + text[..at].iter().filter(|&&b| b == b'\n').count() as u64
            });
            let get = |field: &str| {
                col.get(field)
                    .and_then(|&i| rec.get(i))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            };
            let Some(file) = get("file") else {
                if rec.iter().all(|v| v.trim().is_empty()) {
                    continue;
                }
                return Err(format!("line {line}: the file column is empty"));
            };
            if let Some(first) = seen.insert(file.clone(), line) {
                return Err(format!(
                    "lines {first} and {line} both describe {file:?}; keep one"
                ));
            }
            let mut errors = Vec::new();
            let started_at_utc = match get("started") {
                Some(s) => match parse_time(&s, time_format) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
                None => None,
            };
            let direction = match get("direction").map(|d| parse_direction(&d)) {
                Some(Ok(d)) => Some(d.to_owned()),
                Some(Err(e)) => {
                    errors.push(e);
                    None
                }
                None => None,
            };
            let row = Row {
                line,
                file: file.clone(),
                meta: CallMeta {
                    agent: get("agent"),
                    direction,
                    remote_number: get("number"),
                    campaign: get("campaign"),
                    external_id: get("external_id"),
                },
                started_at_utc,
                error: (!errors.is_empty())
                    .then(|| format!("sidecar line {line}: {}", errors.join("; "))),
            };
            let idx = sc.rows.len();
            sc.by_path.insert(normalise(&sc.base.join(&file)), idx);
            if let Some(name) = Path::new(&file).file_name() {
                sc.by_name
                    .entry(name.to_string_lossy().into_owned())
                    .or_default()
                    .push(idx);
            }
            sc.rows.push(row);
        }
        Ok(sc)
    }

    /// The row describing `source`: by path first, then by a unique file name.
    pub fn lookup(&self, source: &Path) -> Lookup<'_> {
        if let Some(&i) = self.by_path.get(&normalise(source)) {
            return Lookup::Found(&self.rows[i]);
        }
        let Some(name) = source.file_name() else {
            return Lookup::None;
        };
        match self.by_name.get(name.to_string_lossy().as_ref()) {
            Some(v) if v.len() == 1 => Lookup::Found(&self.rows[v[0]]),
            Some(v) => Lookup::Ambiguous(v.iter().map(|&i| self.rows[i].line).collect()),
            None => Lookup::None,
        }
    }
}

/// An absolute, canonical form when the file exists; otherwise the path made absolute lexically.
fn normalise(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `inbound` / `outbound` from the spellings legacy systems use (in, i, incoming, ...).
pub fn parse_direction(s: &str) -> Result<&'static str, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "inbound" | "in" | "i" | "incoming" | "inb" => Ok("inbound"),
        "outbound" | "out" | "o" | "outgoing" | "outb" => Ok("outbound"),
        other => Err(format!(
            "direction {other:?} is neither inbound (in, incoming) nor outbound (out, outgoing)"
        )),
    }
}

/// Parses a start time into callrec's UTC form (`2026-11-27T17:20:00.000Z`).
///
/// With `format` (strptime-style, chrono's syntax: `%d/%m/%Y %H:%M`, `%s` for Unix seconds): a
/// format with an offset (`%z`, `%:z`) is converted to UTC; one without is taken as UTC; a
/// date-only format means midnight UTC. Without `format`: RFC 3339 (`2026-11-27T17:20:00+01:00`),
/// then `%Y-%m-%d %H:%M:%S` and `%Y-%m-%dT%H:%M:%S` (fractions allowed), taken as UTC.
pub fn parse_time(s: &str, format: Option<&str>) -> Result<String, String> {
    let s = s.trim();
    let utc = |t: DateTime<Utc>| format_utc(t);
    match format {
        Some(f) => {
            if f.contains("%z") || f.contains("%:z") || f.contains("%#z") {
                return DateTime::parse_from_str(s, f)
                    .map(|t| utc(t.with_timezone(&Utc)))
                    .map_err(|e| format!("start time {s:?} does not match {f:?}: {e}"));
            }
            match NaiveDateTime::parse_from_str(s, f) {
                Ok(t) => Ok(utc(t.and_utc())),
                Err(e) => NaiveDate::parse_from_str(s, f)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| utc(t.and_utc()))
                    .ok_or_else(|| format!("start time {s:?} does not match {f:?}: {e}")),
            }
        }
        None => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(utc(t.with_timezone(&Utc)));
            }
            for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
                    return Ok(utc(t.and_utc()));
                }
            }
            Err(format!(
                "start time {s:?} is neither RFC 3339 nor \"YYYY-MM-DD HH:MM:SS\" (UTC); \
                 pass --time-format for other layouts"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn map(pairs: &[(&str, &str)]) -> ColumnMap {
        let mut m = ColumnMap::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "file" => m.file = v,
                "agent" => m.agent = v,
                "number" => m.number = v,
                "started" => m.started = v,
                "direction" => m.direction = v,
                "campaign" => m.campaign = v,
                "external_id" => m.external_id = v,
                _ => {}
            }
        }
        m
    }

    #[test]
    fn time_formats() -> TestResult {
        assert_eq!(
            parse_time("2026-11-27T10:00:00+01:00", None)?,
            "2026-11-27T09:00:00.000Z"
        );
        assert_eq!(
            parse_time("2026-11-27T09:00:00.25Z", None)?,
            "2026-11-27T09:00:00.250Z"
        );
        assert_eq!(
            parse_time("2026-11-27 09:30:05", None)?,
            "2026-11-27T09:30:05.000Z"
        );
        assert_eq!(
            parse_time(" 2026-11-27T09:30:05.5 ", None)?,
            "2026-11-27T09:30:05.500Z"
        );
        assert!(parse_time("27/11/2026 09:30", None).is_err());
        assert_eq!(
            parse_time("27/11/2026 09:30", Some("%d/%m/%Y %H:%M"))?,
            "2026-11-27T09:30:00.000Z"
        );
        assert_eq!(
            parse_time("27.11.2026 09:30 +0200", Some("%d.%m.%Y %H:%M %z"))?,
            "2026-11-27T07:30:00.000Z"
        );
        assert_eq!(
            parse_time("1795771800", Some("%s"))?,
            "2026-11-27T09:30:00.000Z"
        );
        assert_eq!(
            parse_time("2026-11-27", Some("%Y-%m-%d"))?,
            "2026-11-27T00:00:00.000Z"
        );
        let e = parse_time("yesterday", Some("%Y-%m-%d"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("does not match"), "{e}");
        Ok(())
    }

    #[test]
    fn directions() {
        assert_eq!(parse_direction("IN"), Ok("inbound"));
        assert_eq!(parse_direction("outgoing"), Ok("outbound"));
        assert!(parse_direction("sideways").is_err());
    }

    #[test]
    fn maps_columns_and_matches_files() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("sub/a.wav"), b"x")?;
        let csv = "\u{feff}filename;agent;ani;start_time;dir;queue;call_id;ignored\n\
                   sub/a.wav;alice;+441234;2026-11-27 09:00:00;in;billing;X-1;zzz\n\
                   b.mp3;bob;;27/11/2026;out;;;\n\
                   \n\
                   other/b.mp3;carol;;;;;;\n";
        let m = map(&[
            ("file", "filename"),
            ("number", "ani"),
            ("started", "start_time"),
            ("direction", "dir"),
            ("campaign", "queue"),
            ("external_id", "call_id"),
        ]);
        let sc = Sidecar::parse(csv.as_bytes(), dir.path(), &m, None)?;
        assert_eq!(sc.rows.len(), 3);
        let Lookup::Found(a) = sc.lookup(&dir.path().join("sub/a.wav")) else {
            panic!("a.wav must match by path");
        };
        assert_eq!(a.line, 2);
        assert_eq!(a.meta.agent.as_deref(), Some("alice"));
        assert_eq!(a.meta.remote_number.as_deref(), Some("+441234"));
        assert_eq!(a.meta.direction.as_deref(), Some("inbound"));
        assert_eq!(a.meta.campaign.as_deref(), Some("billing"));
        assert_eq!(a.meta.external_id.as_deref(), Some("X-1"));
        assert_eq!(
            a.started_at_utc.as_deref(),
            Some("2026-11-27T09:00:00.000Z")
        );
        assert_eq!(a.error, None);
        // The same name elsewhere matches by name alone only when one row has it.
        let Lookup::Found(a2) = sc.lookup(Path::new("/elsewhere/a.wav")) else {
            panic!("a unique file name must match");
        };
        assert_eq!(a2.line, 2);
        match sc.lookup(Path::new("/elsewhere/b.mp3")) {
            Lookup::Ambiguous(lines) => assert_eq!(lines, vec![3, 5]),
            other => panic!("b.mp3 is named twice: {other:?}"),
        }
        let Lookup::Found(b) = sc.lookup(&dir.path().join("b.mp3")) else {
            panic!("b.mp3 matches by path");
        };
        // A start time in the wrong layout fails that row only, naming the line.
        assert_eq!(b.started_at_utc, None);
        let err = b.error.clone().unwrap_or_default();
        assert!(err.starts_with("sidecar line 3:"), "{err}");
        assert_eq!(b.meta.direction.as_deref(), Some("outbound"));
        assert!(matches!(sc.lookup(Path::new("zzz.flac")), Lookup::None));
        Ok(())
    }

    #[test]
    fn default_columns_and_sidecar_errors() -> TestResult {
        let base = Path::new("/tmp");
        let sc = Sidecar::parse(
            b"file,agent,started\nx.wav,dan,2026-01-02T03:04:05Z\n",
            base,
            &ColumnMap::default(),
            None,
        )?;
        assert_eq!(sc.rows[0].meta.agent.as_deref(), Some("dan"));
        assert_eq!(
            sc.rows[0].started_at_utc.as_deref(),
            Some("2026-01-02T03:04:05.000Z")
        );
        // An explicitly mapped column must exist; the file column always must.
        let e = Sidecar::parse(
            b"file,agent\nx.wav,dan\n",
            base,
            &map(&[("number", "ani")]),
            None,
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("no column \"ani\" (for number)"), "{e}");
        let e = Sidecar::parse(
            b"name,agent\nx.wav,dan\n",
            base,
            &ColumnMap::default(),
            None,
        )
        .err()
        .unwrap_or_default();
        assert!(e.contains("no column \"file\""), "{e}");
        let e = Sidecar::parse(b"file\nx.wav\nx.wav\n", base, &ColumnMap::default(), None)
            .err()
            .unwrap_or_default();
        assert!(e.contains("lines 2 and 3 both describe"), "{e}");
        let e = Sidecar::parse(
            b"file,direction\nx.wav,sideways\n",
            base,
            &ColumnMap::default(),
            None,
        )?
        .rows[0]
            .error
            .clone()
            .unwrap_or_default();
        assert!(e.contains("sideways"), "{e}");
        // Tab-separated works too.
        let sc = Sidecar::parse(
            b"file\tagent\ny.wav\teve\n",
            base,
            &ColumnMap::default(),
            None,
        )?;
        assert_eq!(sc.rows[0].meta.agent.as_deref(), Some("eve"));
        Ok(())
    }
}
