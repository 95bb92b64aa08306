//! The guides' examples are run, not trusted (issue 16 item 7): every example config in the docs
//! passes the real `callrec config check` and writes only where the shipped systemd units allow,
//! and every HTTP example (a `curl` command line in a fenced block) runs, as written, against a
//! live `callrec run` and gets the status and JSON keys the guide shows. The admin guide's
//! configuration reference shows every key the binary accepts, and figures in measured units are
//! numbers of benches/RESULTS.md.
//!
//! The conventions the guides follow (docs/internals.md, "Tests", "The guides' examples"):
//! - A ```` ```toml ```` block is a callrec config. With `[box]` and `[storage]` it is complete;
//!   otherwise it is a fragment, checked merged into a minimal base (`[box] id`, `[storage] dir`).
//!   A TOML block that is another file (an outcome list, a call script) says so in its info
//!   string: ```` ```toml not-config ````.
//! - In any fenced block, a command line starting with `curl` (or `X=$(curl …`) is an HTTP
//!   example; `NAME=value` lines in the same block are its shell variables. Other lines (callrec
//!   commands, prose) are not run. A comment line right after it, `# → [STATUS] [JSON]`, states
//!   the answer: the status (default: any 2xx) and, where JSON is shown, the keys of its first
//!   object, which the real answer must have. The reader's own values are `$CALL` (a call id),
//!   `$CSRF` (the session's token), `jar` / `cookies` (a logged-in session's cookie file); any
//!   host:port, `--cacert` file and bearer token are replaced by the test server's.
//! - Exactly one ```` ```toml reference ```` block (docs/admin.md, "Configuration") lists every
//!   key, set or commented out (`# key = …`).
//!
//! This module must never edit the docs or accept an example it did not run.

use super::common::{bin, repo};
use super::webbox::{WebBox, PASSWORD};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The reader-facing documents whose examples are tested; new guides under docs/ are picked up.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md"), repo().join("hw/README.md")];
    let mut guides: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    guides.sort();
    docs.extend(guides);
    docs
}

/// One fenced code block: where it starts (1-based line of the fence), its info string and lines
/// (with the fence's indentation removed).
struct Block {
    file: String,
    line: usize,
    info: String,
    lines: Vec<String>,
}

impl Block {
    fn lang(&self) -> &str {
        self.info.split_whitespace().next().unwrap_or("")
    }
    fn at(&self, offset: usize) -> String {
        format!("{}:{}", self.file, self.line + 1 + offset)
    }
}

fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for path in documents() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let trimmed = lines[i].trim_start();
            if let Some(info) = trimmed.strip_prefix("```") {
                let indent = lines[i].len() - trimmed.len();
                let start = i;
                let mut body = Vec::new();
                i += 1;
                while i < lines.len() && lines[i].trim() != "```" {
                    let l = lines[i];
                    body.push(
                        l.get(indent.min(l.len() - l.trim_start().len())..)
                            .unwrap_or(l),
                    );
                    i += 1;
                }
                assert!(i < lines.len(), "{file}:{}: unclosed code block", start + 1);
                out.push(Block {
                    file: file.clone(),
                    line: start + 1,
                    info: info.trim().to_owned(),
                    lines: body.into_iter().map(str::to_owned).collect(),
                });
            }
            i += 1;
        }
    }
    out
}

// ---- Config examples -------------------------------------------------------------------------

/// Merges `over` into `base`: tables key by key, anything else (arrays of tables too) replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The directories each shipped unit may write: `ReadWritePaths=`, `StateDirectory=` (under
/// /var/lib) and `RuntimeDirectory=` (under /run); systemd.exec(5), "Sandboxing" and "Paths".
fn writable_paths(unit: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(repo().join("systemd").join(unit)).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let root = match key.trim() {
            "ReadWritePaths" => "",
            "StateDirectory" => "/var/lib",
            "RuntimeDirectory" => "/run",
            _ => continue,
        };
        for p in value.split_whitespace() {
            let p = p.trim_start_matches(['-', '+']);
            out.push(if root.is_empty() {
                PathBuf::from(p)
            } else {
                Path::new(root).join(p)
            });
        }
    }
    assert!(!out.is_empty(), "{unit}: no writable path found");
    out
}

fn assert_fits(at: &str, what: &str, path: &Path, units: &[&str]) {
    for unit in units {
        let allowed = writable_paths(unit);
        assert!(
            allowed.iter().any(|a| path.starts_with(a)),
            "{at}: {what} = {} is not writable under systemd/{unit} (writable: {allowed:?})",
            path.display()
        );
    }
}

#[test]
fn docs_config_examples_pass_config_check_and_fit_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    // The example config the package installs as /etc/callrec/callrec.toml (there with `[box] id`
    // commented out, so nothing records until it is set) is one more example.
    let shipped = Block {
        file: "hw/callrec.example.toml".into(),
        line: 0,
        info: "toml".into(),
        lines: std::fs::read_to_string(repo().join("hw/callrec.example.toml"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    };
    for b in blocks().into_iter().chain([shipped]) {
        // A config shown in an untagged block would escape the check: configs are ```toml.
        if b.lang().is_empty() {
            for (n, l) in b.lines.iter().enumerate() {
                let t = l.trim();
                assert!(
                    !(t.starts_with("[storage]")
                        || t.starts_with("[box]")
                        || t.starts_with("[[seat]]")),
                    "{}: a config in an untagged block: tag it ```toml",
                    b.at(n)
                );
            }
        }
        if b.lang() != "toml" || b.info.contains("not-config") {
            continue;
        }
        let text = b.lines.join("\n");
        let at = b.at(0);
        let example: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{at}: not TOML: {e}"));
        let complete = example.contains_key("box") && example.contains_key("storage");
        let mut cfg: toml::Table =
            "[box]\nid = \"docs-example\"\n[storage]\ndir = \"/var/lib/callrec\"\n"
                .parse()
                .unwrap();
        merge(&mut cfg, example.clone());
        let file = dir.path().join(format!("example-{checked}.toml"));
        std::fs::write(
            &file,
            if complete {
                text.clone()
            } else {
                toml::to_string(&cfg).unwrap()
            },
        )
        .unwrap();
        let o = Command::new(bin())
            .args(["--config"])
            .arg(&file)
            .args(["config", "check"])
            .output()
            .unwrap();
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(": ok ("),
            "{at}: `callrec config check` refuses the {} example:\n{}{}",
            if complete {
                "complete"
            } else {
                "fragment's merged"
            },
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );

        // Where it writes: the storage dir (index, calls, keys, tls/) and the control socket.
        let storage_dir = PathBuf::from(cfg["storage"]["dir"].as_str().unwrap());
        // The hub's config: named so (`# /etc/callrec/hub.toml`), or a `[hub]` without seats
        // (the reference shows `[hub]` beside a box's seats: that one is a box's).
        let hub = text.contains("hub.toml")
            || (example.contains_key("hub") && !example.contains_key("seat"));
        if hub {
            assert_fits(&at, "storage.dir", &storage_dir, &["callrec-hub.service"]);
        } else {
            assert_fits(
                &at,
                "storage.dir",
                &storage_dir,
                &[
                    "callrec.service",
                    "callrec-record.service",
                    "callrec-web.service",
                    "callrec-ship.service",
                ],
            );
            let socket = cfg["box"]
                .get("control_socket")
                .and_then(|v| v.as_str())
                .map(PathBuf::from)
                .unwrap_or_else(|| storage_dir.join("control.sock"));
            // Only the recorder creates the socket; the web service connects to it.
            assert_fits(
                &at,
                "box.control_socket",
                &socket,
                &["callrec.service", "callrec-record.service"],
            );
        }
        checked += 1;
    }
    // The admin guide's reference, the archive, hub, storage identity, complaints and device
    // examples at least: a parser that finds none would pass vacuously.
    assert!(checked >= 7, "only {checked} config examples found");
}

// ---- HTTP examples ---------------------------------------------------------------------------

/// What a guide says an example answers.
#[derive(Debug, Default)]
struct Expect {
    status: Option<u16>,
    /// Keys of the first JSON object shown (of the first element when it is an array).
    keys: Vec<String>,
    array: bool,
}

/// Top-level keys of the first object in `shown`, which may elide values with `…`.
fn shown_keys(shown: &str) -> (Vec<String>, bool) {
    let shown = shown.trim();
    let array = shown.starts_with('[');
    let mut keys = Vec::new();
    let (mut depth, mut object_depth) = (0usize, None::<usize>);
    let chars: Vec<char> = shown.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' | '[' => {
                depth += 1;
                if chars[i] == '{' && object_depth.is_none() {
                    object_depth = Some(depth);
                }
            }
            '}' | ']' => {
                if object_depth == Some(depth) {
                    break;
                }
                depth = depth.saturating_sub(1);
            }
            '"' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                let s: String = chars[start..i.min(chars.len())].iter().collect();
                let rest: String = chars[(i + 1).min(chars.len())..].iter().collect();
                if object_depth == Some(depth) && rest.trim_start().starts_with(':') {
                    keys.push(s);
                }
            }
            _ => {}
        }
        i += 1;
    }
    (keys, array)
}

fn parse_expect(comment: &str) -> Expect {
    let rest = comment
        .trim_start_matches('#')
        .trim()
        .trim_start_matches('→')
        .trim();
    let mut e = Expect::default();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let rest = if digits.len() == 3 {
        e.status = digits.parse().ok();
        rest[3..].trim_start()
    } else {
        rest
    };
    if rest.starts_with('{') || rest.starts_with('[') {
        (e.keys, e.array) = shown_keys(rest);
    }
    e
}

/// One curl example: where it is, the command as written, and the answer the guide shows.
struct Example {
    at: String,
    command: String,
    expect: Expect,
}

fn is_assignment(line: &str) -> bool {
    let name: String = line
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    !name.is_empty() && line[name.len()..].starts_with('=')
}

/// Whether `command` has a `&` outside quotes (a URL's query string that the shell would split).
fn has_unquoted_ampersand(command: &str) -> bool {
    let mut quote = None;
    for c in command.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '&') => return true,
            _ => {}
        }
    }
    false
}

/// The block as a bash script: its assignments and curl commands, each curl call tagged with
/// its example's index so the log says which example got which answer.
fn script_of(b: &Block, examples: &mut Vec<Example>) -> Option<String> {
    let mut script = String::new();
    let mut any = false;
    let mut i = 0;
    while i < b.lines.len() {
        let first = b.lines[i].trim();
        let start = i;
        let mut command = first.to_owned();
        while command.ends_with('\\') && i + 1 < b.lines.len() {
            i += 1;
            command.push('\n');
            command.push_str(&b.lines[i]);
        }
        i += 1;
        let is_curl =
            first.starts_with("curl ") || (is_assignment(first) && first.contains("$(curl "));
        if is_curl {
            assert!(
                !has_unquoted_ampersand(&command),
                "{}: an unquoted `&` puts the command in the background and cuts the URL: quote it\n{command}",
                b.at(start)
            );
            let expect = b
                .lines
                .get(i)
                .map(|l| l.trim())
                .filter(|l| l.starts_with("# →"))
                .map(parse_expect)
                .unwrap_or_default();
            let n = examples.len();
            let tagged = command
                .replacen("$(curl ", &format!("$(__curl {n} "), 1)
                .replacen(
                    "curl ",
                    &format!("__curl {n} "),
                    usize::from(first.starts_with("curl ")),
                );
            script.push_str(&tagged);
            script.push('\n');
            examples.push(Example {
                at: b.at(start),
                command: command.clone(),
                expect,
            });
            any = true;
        } else if is_assignment(first) {
            script.push_str(&command);
            script.push('\n');
        }
    }
    any.then_some(script)
}

/// Runs the documented command line with curl, only pointed at the test server: the URL's
/// scheme://host:port, `--cacert`, a bearer token and `-b` cookie file are replaced; the status
/// and body of each call go to $LOG. Each call may take 20 s at most (a streaming route would
/// otherwise hang the test: such an example must bound itself, e.g. with `--max-time`).
const CURL_SHIM: &str = r#"
__curl() {
  local n=$1; shift
  local args=() a next=
  for a in "$@"; do
    case "$next" in
      drop) next=; continue;;
      jar) next=; args+=("$JAR"); continue;;
    esac
    case "$a" in
      --cacert) next=drop; continue;;
      -b|--cookie) args+=("$a"); next=jar; continue;;
    esac
    if [[ $a =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/.*)?$ ]]; then a="$BASE${BASH_REMATCH[2]}"; fi
    if [[ $a =~ ^[Aa]uthorization:\ Bearer ]]; then a="Authorization: Bearer $TOKEN"; fi
    args+=("$a")
  done
  local body="$PWD/.body-$n-$RANDOM" head="$PWD/.head-$n-$RANDOM"
  command curl -sS --max-time 20 -D "$head" "${args[@]}" > "$body" || { echo "curl failed: example $n" >&2; return 1; }
  printf '%s\t%s\t%s\n' "$n" "$(awk 'toupper($1) ~ /^HTTP/ {s=$2} END {print s}' "$head")" "$body" >> "$LOG"
  cat "$body"
}
"#;

/// A curl cookie file (Netscape format) holding one session cookie for the test server.
fn netscape_cookie(value: &str) -> String {
    format!(
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tcallrec_session\t{value}\n"
    )
}

#[test]
fn docs_http_examples_answer_as_documented_on_a_live_server() {
    let wb = WebBox::start("");
    wb.add_user("lead", "admin", &["--team", "red"]);
    // The reviewers the guides' examples name.
    for name in ["rita", "quinn"] {
        wb.add_user(name, "qa", &[]);
    }
    let session = wb.login("lead", PASSWORD);
    let token = wb.cli(&["tokens", "add", "cti-main"]).trim().to_owned();
    let call_id = wb.record_call(
        "seat02",
        2.0,
        &["--agent", "lead", "--direction", "inbound"],
    );

    let work = tempfile::tempdir().unwrap();
    let jar = work.path().join("session-cookies");
    std::fs::write(&jar, netscape_cookie(session.cookie.as_deref().unwrap())).unwrap();
    let log = work.path().join("answers.log");
    std::fs::write(&log, "").unwrap();

    let mut examples = Vec::new();
    for b in blocks() {
        let Some(script) = script_of(&b, &mut examples) else {
            continue;
        };
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!("set -e -o pipefail\n{CURL_SHIM}\n{script}"))
            .current_dir(work.path())
            .env("BASE", wb.url(""))
            .env("TOKEN", &token)
            .env("JAR", &jar)
            .env("LOG", &log)
            .env("CSRF", session.csrf.as_deref().unwrap())
            .env("CALL", call_id.to_string())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: the block's commands failed:\n{}\n--- stderr:\n{}",
            b.at(0),
            script,
            String::from_utf8_lossy(&o.stderr)
        );
    }

    let mut answers: BTreeMap<usize, Vec<(u16, PathBuf)>> = BTreeMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let mut f = line.split('\t');
        let (n, status, body) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        answers
            .entry(n.parse().unwrap())
            .or_default()
            .push((status.parse().unwrap_or(0), PathBuf::from(body)));
    }
    for (n, ex) in examples.iter().enumerate() {
        let got = answers
            .get(&n)
            .unwrap_or_else(|| panic!("{}: never ran: {}", ex.at, ex.command));
        for (status, body) in got {
            let text = std::fs::read_to_string(body).unwrap_or_default();
            let ok = match ex.expect.status {
                Some(s) => *status == s,
                None => (200..300).contains(status),
            };
            assert!(
                ok,
                "{}: {}\n  answered {status} (the guide says {}): {text}",
                ex.at,
                ex.command,
                ex.expect.status.map_or("2xx".to_owned(), |s| s.to_string())
            );
            if ex.expect.keys.is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: the guide shows JSON, got ({e}): {text}", ex.at));
            let obj = if ex.expect.array { &v[0] } else { &v };
            for k in &ex.expect.keys {
                assert!(
                    obj.get(k).is_some(),
                    "{}: {}\n  the answer has no `{k}` the guide shows: {text}",
                    ex.at,
                    ex.command
                );
            }
        }
    }
    // Integration's CTI walkthrough alone has a dozen: a parser that finds none passes vacuously.
    assert!(
        examples.len() >= 12,
        "only {} HTTP examples found",
        examples.len()
    );
}

// ---- The configuration reference -------------------------------------------------------------

/// The keys `callrec config check` accepts in the section at `path` (each element a table name
/// and whether it is an array of tables), read from serde's own refusal of an unknown key
/// (every config struct is `deny_unknown_fields`); None when `path` is not a table.
fn accepted_keys(dir: &Path, path: &[(String, bool)]) -> Option<Vec<String>> {
    let mut text = String::new();
    for i in 0..path.len() {
        let name: Vec<&str> = path[..=i].iter().map(|(n, _)| n.as_str()).collect();
        let (open, close) = if path[i].1 { ("[[", "]]") } else { ("[", "]") };
        text.push_str(&format!("{open}{}{close}\n", name.join(".")));
    }
    text.push_str("zz_probe = 1\n");
    let file = dir.join("probe.toml");
    std::fs::write(&file, &text).unwrap();
    let o = Command::new(bin())
        .arg("--config")
        .arg(&file)
        .args(["config", "check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let listed = err.split("unknown field `zz_probe`, expected").nth(1)?;
    let listed = listed.split('|').next().unwrap_or(listed);
    Some(
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Every key the binary accepts, as dotted paths (`seat.input.kind`), found section by section.
fn all_accepted(dir: &Path, path: &mut Vec<(String, bool)>, out: &mut Vec<String>) {
    let keys = accepted_keys(dir, path).unwrap_or_else(|| panic!("no key list for {path:?}"));
    for k in keys {
        let dotted: Vec<&str> = path
            .iter()
            .map(|(n, _)| n.as_str())
            .chain([k.as_str()])
            .collect();
        out.push(dotted.join("."));
        for array in [false, true] {
            path.push((k.clone(), array));
            let table = accepted_keys(dir, path).is_some();
            if table {
                all_accepted(dir, path, out);
            }
            path.pop();
            if table {
                break;
            }
        }
    }
}

/// The keys the reference block shows, set or commented out (`# cert_path / key_path`,
/// `# seed = 1`), as dotted paths.
fn reference_keys(b: &Block) -> Vec<String> {
    let mut out = Vec::new();
    let mut section = String::new();
    for line in &b.lines {
        let t = line.trim();
        if t.starts_with('[') {
            let head = t.split('#').next().unwrap().trim();
            section = head.trim_matches(['[', ']']).to_owned();
            continue;
        }
        let (names, commented) = match t.strip_prefix('#') {
            Some(c) => (c.trim_start(), true),
            None => (t, false),
        };
        let first: String = names
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = names[first.len()..].trim_start();
        if first.is_empty() || !(rest.starts_with('=') || (commented && rest.starts_with('/'))) {
            continue;
        }
        let mut keys = vec![first];
        if commented {
            if let Some(second) = rest.strip_prefix('/') {
                let second: String = second
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                keys.push(second);
            }
        }
        for k in keys {
            out.push(if section.is_empty() {
                k
            } else {
                format!("{section}.{k}")
            });
        }
    }
    // Each section header names its key too.
    for line in &b.lines {
        let t = line.trim();
        if t.starts_with('[') {
            out.push(
                t.split('#')
                    .next()
                    .unwrap()
                    .trim()
                    .trim_matches(['[', ']'])
                    .to_owned(),
            );
        }
    }
    out
}

#[test]
fn docs_admin_reference_shows_every_key_the_binary_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let mut accepted = Vec::new();
    all_accepted(dir.path(), &mut Vec::new(), &mut accepted);
    // Sanity: the probe sees nested sections, or it would pass by seeing nothing.
    for k in ["server.bind", "seat.input.kind", "retention.rule.keep_days"] {
        assert!(
            accepted.contains(&k.to_owned()),
            "probe missed {k}: {accepted:?}"
        );
    }
    let refs: Vec<Block> = blocks()
        .into_iter()
        .filter(|b| b.lang() == "toml" && b.info.split_whitespace().any(|w| w == "reference"))
        .collect();
    assert_eq!(
        refs.len(),
        1,
        "exactly one ```toml reference block (docs/admin.md, \"Configuration\")"
    );
    let shown = reference_keys(&refs[0]);
    let missing: Vec<&String> = accepted.iter().filter(|k| !shown.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "{}: the configuration reference lacks keys `callrec config check` accepts: {missing:?}",
        refs[0].at(0)
    );
}

// ---- Figures ---------------------------------------------------------------------------------

/// Units whose figures in the docs are measurements, each with the words RESULTS.md uses for that
/// measure; a figure must be a number on a line of benches/RESULTS.md (or a table row under a
/// header) holding one of them. The rest were checked by hand (issue 16 item 7); arithmetic is
/// labelled as such in the text.
const MEASURED_UNITS: &[(&str, &[&str])] = &[
    ("MB per call-hour", &["call-hour"]),
    ("% of one core", &["CPU", "core"]),
    ("requests/s", &["req"]),
    ("ms p95", &["p95"]),
    ("MB RSS", &["RSS"]),
];

/// Numbers in `text` (digits with `.` decimals and spaces grouping thousands, `20 300`) with the
/// byte offset where each ends.
fn numbers(text: &str) -> Vec<(f64, usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'))
        {
            let mut s = String::new();
            while i < b.len() {
                if b[i].is_ascii_digit() {
                    s.push(b[i] as char);
                    i += 1;
                } else if b[i] == b'.' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
                    s.push('.');
                    i += 1;
                } else if b[i] == b' '
                    && !s.contains('.')
                    && b.get(i + 1..i + 4)
                        .is_some_and(|g| g.iter().all(u8::is_ascii_digit))
                    && !b.get(i + 4).is_some_and(u8::is_ascii_digit)
                {
                    i += 1;
                } else {
                    break;
                }
            }
            let decimals = s.split('.').nth(1).map_or(0, str::len);
            if let Ok(v) = s.parse() {
                out.push((v, decimals, i));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Each line of RESULTS.md with its context: a table row with its header row.
fn with_context(results: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut header: Option<&str> = None;
    for line in results.lines() {
        if line.starts_with('|') {
            let h = *header.get_or_insert(line);
            out.push(format!("{h}\n{line}"));
        } else {
            header = None;
            out.push(line.to_owned());
        }
    }
    out
}

#[test]
fn docs_measured_figures_are_from_benches_results() {
    let results =
        with_context(&std::fs::read_to_string(repo().join("benches/RESULTS.md")).unwrap());
    let mut checked = 0;
    for path in documents() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (v, decimals, end) in numbers(&text) {
            let after = text[end..].trim_start_matches([' ', '\u{a0}']);
            let Some((unit, words)) = MEASURED_UNITS.iter().find(|(u, _)| after.starts_with(u))
            else {
                continue;
            };
            // Rounded as written: 1.2 stands for 1.15..1.25, 20 300 for 20 300 ± 1 %.
            let tolerance = if decimals > 0 {
                0.5 * 10f64.powi(-(decimals as i32))
            } else {
                (v * 0.01).max(0.5)
            };
            let found = results.iter().any(|l| {
                words.iter().any(|w| l.contains(w))
                    && numbers(l)
                        .iter()
                        .any(|(m, _, _)| (m - v).abs() <= tolerance + 1e-9)
            });
            let line = text[..end].lines().count();
            assert!(
                found,
                "{}:{line}: {v} {unit}: no line of benches/RESULTS.md about {words:?} has it",
                path.strip_prefix(repo()).unwrap().display(),
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} measured figures found");
}
