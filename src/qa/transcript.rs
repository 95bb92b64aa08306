//! Transcripts made by any external speech-to-text: WebVTT or JSON segments.
//!
//! The box does no speech recognition. A transcript made elsewhere is uploaded for a call and
//! read here into [`Segment`]s (start/end in ms from the start of the call, speaker, text); the
//! store indexes them for full-text search and `qa::script::suggest` uses them to point a
//! reviewer at the moment a script step seems to be said.
//!
//! This module never guesses silently: a timestamp it cannot read, a cue ending before it starts
//! or a JSON shape it does not know is an error naming the line or segment, never a dropped cue.
//! It does no I/O and never touches the recording.
//!
//! # Formats
//!
//! * WebVTT (W3C): `WEBVTT` header, blank-line separated blocks, `NOTE`/`STYLE`/`REGION` blocks
//!   ignored, optional cue identifier, `[hh:]mm:ss.ttt --> [hh:]mm:ss.ttt [settings]`, payload
//!   lines joined with a space. `<v Agent>` (or `<v.loud Agent Smith>`) names the speaker; a
//!   cue with several voices becomes one segment per voice, all with the cue's times. Other tags
//!   are stripped and `&amp; &lt; &gt; &nbsp; &quot; &apos;` and numeric references decoded.
//! * JSON: an array of segments, or an object with a `segments`, `results` or `utterances`
//!   array (also nested one level, as `{"results": {"utterances": [...]}}`). A segment has
//!   `start`/`end` in seconds or `start_ms`/`end_ms`; `speaker` (string or number),
//!   `speaker_label` or `channel` (0 = agent, 1 = customer, as the recording's channels); and
//!   `text` or `transcript`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One stretch of speech.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    /// `agent`, `customer`, another lowercased label, or None when the transcript does not say.
    pub speaker: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptError {
    #[error("not a transcript callrec reads: expected WebVTT (a file starting with WEBVTT) or JSON segments (starting with [ or {{)")]
    UnknownFormat,
    #[error("WebVTT line 1: the file must start with `WEBVTT`")]
    VttHeader,
    #[error("WebVTT line {line}: `{found}` is not a timestamp; write hh:mm:ss.ttt or mm:ss.ttt (e.g. 00:01:02.500)")]
    VttTimestamp { line: usize, found: String },
    #[error("WebVTT line {line}: expected a cue timing line such as `00:00:01.000 --> 00:00:04.000`, found `{found}`")]
    VttTiming { line: usize, found: String },
    #[error("WebVTT line {line}: the cue ends ({end}) before it starts ({start})")]
    VttEndBeforeStart {
        line: usize,
        start: String,
        end: String,
    },
    #[error("transcript JSON: {0}")]
    Json(String),
    #[error("transcript JSON: expected an array of segments or an object with a \"segments\", \"results\" or \"utterances\" array")]
    JsonShape,
    #[error("transcript JSON segment {index} (counting from 0): {problem}")]
    JsonSegment { index: usize, problem: String },
    #[error("the transcript has no segments with text")]
    Empty,
    #[error("a segment at {} – {} runs past the end of the call ({}); is this the transcript of another call?", m_ss(*.start_ms), m_ss(*.end_ms), m_ss(*.max_ms))]
    BeyondCall {
        start_ms: u64,
        end_ms: u64,
        max_ms: u64,
    },
}

fn m_ss(ms: u64) -> String {
    format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60)
}

/// Reads a transcript in either format, told apart by its start: `WEBVTT` (after an optional
/// byte-order mark) or `{`/`[`. Returns the segments sorted by start and the format name
/// (`"webvtt"` or `"json"`).
pub fn parse(text: &str) -> Result<(Vec<Segment>, &'static str), TranscriptError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    if body.starts_with("WEBVTT") {
        Ok((parse_webvtt(body)?, "webvtt"))
    } else if body.trim_start().starts_with(['{', '[']) {
        Ok((parse_json(body)?, "json"))
    } else {
        Err(TranscriptError::UnknownFormat)
    }
}

/// A recognizer's rounding may put the last cue this far past the call's end.
const CALL_END_SLACK_MS: u64 = 2000;

/// The latest a cue may end in a call of `duration_ms`: the call's duration plus
/// [`CALL_END_SLACK_MS`]. A cue after that means the file is another call's (or uses another
/// time base).
pub fn max_ms_for_call(duration_ms: i64) -> u64 {
    duration_ms.max(0) as u64 + CALL_END_SLACK_MS
}

/// Reads a transcript ([`parse`]) meant for a call of `duration_ms` and checks that it fits the
/// call ([`check_max_ms`] with [`max_ms_for_call`]).
pub fn parse_for_call(
    text: &str,
    duration_ms: i64,
) -> Result<(Vec<Segment>, &'static str), TranscriptError> {
    let (segments, format) = parse(text)?;
    check_max_ms(&segments, max_ms_for_call(duration_ms))?;
    Ok((segments, format))
}

/// Checks that no segment ends after `max_ms` (the call's duration plus whatever slack the
/// caller allows for a recognizer's rounding): a transcript longer than its call belongs to
/// another call.
pub fn check_max_ms(segments: &[Segment], max_ms: u64) -> Result<(), TranscriptError> {
    match segments.iter().find(|s| s.end_ms > max_ms) {
        Some(s) => Err(TranscriptError::BeyondCall {
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            max_ms,
        }),
        None => Ok(()),
    }
}

/// Maps the many ways recognizers name the two parties onto `agent` and `customer` (channel 0 is
/// the agent's headset in a callrec recording, channel 1 the customer's line). Any other label
/// is kept, trimmed and lowercased; an empty one is None.
pub fn normalize_speaker(raw: &str) -> Option<String> {
    let label = raw.trim().to_lowercase();
    if label.is_empty() {
        return None;
    }
    // "spk_0", "speaker 0", "channel-0" and "ch0" all compare as "spk0", "speaker0", ...
    let squashed: String = label
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .collect();
    let role = match squashed.as_str() {
        "agent" | "a" | "rep" | "ch0" | "channel0" | "spk0" | "speaker0" | "0" => "agent",
        "customer" | "caller" | "client" | "c" | "ch1" | "channel1" | "spk1" | "speaker1" | "1" => {
            "customer"
        }
        _ => return Some(label),
    };
    Some(role.to_owned())
}

/// Collapses runs of whitespace to one space and trims.
fn squash_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sort_segments(segments: &mut [Segment]) {
    segments.sort_by_key(|s| (s.start_ms, s.end_ms));
}

// ---------------------------------------------------------------------------------------------
// WebVTT

/// A WebVTT timestamp in ms: `hh:mm:ss.ttt` (hours two or more digits) or `mm:ss.ttt`.
fn vtt_time(s: &str) -> Option<u64> {
    let (clock, millis) = s.split_once('.')?;
    let digits = |t: &str, min: usize, max: usize| -> Option<u64> {
        let ok = (min..=max).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| t.parse().ok()).flatten()
    };
    let ms = digits(millis, 3, 3)?;
    let parts: Vec<&str> = clock.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [m, s] => (0, *m, *s),
        // Hours beyond 18 digits would overflow; no call lasts that long.
        [h, m, s] => (digits(h, 2, 18)?, *m, *s),
        _ => return None,
    };
    let (m, sec) = (digits(m, 2, 2)?, digits(sec, 2, 2)?);
    if m > 59 || sec > 59 {
        return None;
    }
    h.checked_mul(3_600_000)?
        .checked_add(m * 60_000 + sec * 1000 + ms)
}

/// Whether `line` opens a block of `kind` (`NOTE`, `STYLE`, `REGION`): the word alone or
/// followed by a space or tab.
fn opens_block(line: &str, kind: &str) -> bool {
    line.strip_prefix(kind)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Whitespace-only lines count as blank: editors and exporters leave trailing spaces.
fn blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Reads a WebVTT file; segments sorted by start.
pub fn parse_webvtt(text: &str) -> Result<Vec<Segment>, TranscriptError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // CRLF, LF and lone CR are all line ends in WebVTT.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let first = lines.first().copied().unwrap_or("");
    if !opens_block(first, "WEBVTT") {
        return Err(TranscriptError::VttHeader);
    }
    let mut segments = Vec::new();
    // Skip the header: everything up to the first blank line.
    let mut i = lines.iter().position(|l| blank(l)).unwrap_or(lines.len());
    while i < lines.len() {
        if blank(lines[i]) {
            i += 1;
            continue;
        }
        let line = lines[i];
        if ["NOTE", "STYLE", "REGION"]
            .iter()
            .any(|k| opens_block(line, k))
        {
            while i < lines.len() && !blank(lines[i]) {
                i += 1;
            }
            continue;
        }
        // An optional identifier line, then the timing line.
        if !line.contains("-->") {
            i += 1;
        }
        let timing = lines.get(i).copied().unwrap_or("");
        let line_no = i + 1;
        if !timing.contains("-->") {
            return Err(TranscriptError::VttTiming {
                line: line_no,
                found: timing.to_owned(),
            });
        }
        let (start_ms, end_ms) = vtt_timing(timing, line_no)?;
        i += 1;
        let mut payload = Vec::new();
        // The payload ends at a blank line, or at a line with "-->" (the next cue's timing when
        // a file leaves out the blank line).
        while i < lines.len() && !blank(lines[i]) && !lines[i].contains("-->") {
            payload.push(lines[i]);
            i += 1;
        }
        for (speaker, words) in vtt_payload(&payload.join(" ")) {
            segments.push(Segment {
                start_ms,
                end_ms,
                speaker,
                text: words,
            });
        }
    }
    if segments.is_empty() {
        return Err(TranscriptError::Empty);
    }
    sort_segments(&mut segments);
    Ok(segments)
}

fn vtt_timing(line: &str, line_no: usize) -> Result<(u64, u64), TranscriptError> {
    let (left, right) = line.split_once("-->").unwrap_or((line, ""));
    let start_text = left.trim();
    // Cue settings ("align:start line:0") follow the end time after whitespace.
    let end_text = right.split_whitespace().next().unwrap_or("");
    let time = |t: &str| {
        vtt_time(t).ok_or_else(|| TranscriptError::VttTimestamp {
            line: line_no,
            found: t.to_owned(),
        })
    };
    let (start, end) = (time(start_text)?, time(end_text)?);
    if end < start {
        return Err(TranscriptError::VttEndBeforeStart {
            line: line_no,
            start: start_text.to_owned(),
            end: end_text.to_owned(),
        });
    }
    Ok((start, end))
}

/// Splits a cue payload into (speaker, text) runs by voice span, stripping every other tag and
/// decoding entities. Runs without text are left out; neighbours with the same voice merge.
fn vtt_payload(payload: &str) -> Vec<(Option<String>, String)> {
    let mut runs: Vec<(Option<String>, String)> = Vec::new();
    let mut voice: Option<String> = None;
    let mut text = String::new();
    let flush =
        |runs: &mut Vec<(Option<String>, String)>, voice: &Option<String>, text: &mut String| {
            let t = squash_spaces(&decode_entities(text));
            text.clear();
            if t.is_empty() {
                return;
            }
            match runs.last_mut() {
                Some((v, prev)) if v == voice => {
                    prev.push(' ');
                    prev.push_str(&t);
                }
                _ => runs.push((voice.clone(), t)),
            }
        };
    let mut rest = payload;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>').map(|c| open + c) else {
            // A lone '<' is text (it should have been &lt;, but losing words is worse).
            break;
        };
        text.push_str(&rest[..open]);
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if tag == "/v" {
            flush(&mut runs, &voice, &mut text);
            voice = None;
        } else if let Some(after_v) = tag
            .strip_prefix('v')
            .filter(|r| r.is_empty() || r.starts_with(['.', ' ', '\t']))
        {
            flush(&mut runs, &voice, &mut text);
            // `<v.class.other Annotation words>`: classes run up to the first whitespace.
            let annotation = after_v.split_once([' ', '\t']).map_or("", |(_, a)| a);
            voice = normalize_speaker(&decode_entities(annotation));
        }
        // Any other tag (<b>, <i>, <u>, <c.x>, <ruby>, <rt>, <lang en>, timestamps such as
        // <00:01.000>) only formats or times the text around it: dropped, text kept.
    }
    text.push_str(rest);
    flush(&mut runs, &voice, &mut text);
    runs
}

/// Decodes the character references WebVTT allows in cue text; an unknown one stays as written.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let name = &rest[1..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                // A plain space: transcripts are searched and matched, not typeset.
                "nbsp" => Some(' '),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lrm" | "rlm" => None,
                _ => {
                    let code = if let Some(hex) =
                        name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        name.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    match code.and_then(char::from_u32) {
                        Some(c) => Some(c),
                        None => return None,
                    }
                }
            };
            Some((c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                if let Some(c) = c {
                    out.push(c);
                }
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Reads JSON segments; segments sorted by start.
pub fn parse_json(text: &str) -> Result<Vec<Segment>, TranscriptError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| TranscriptError::Json(e.to_string()))?;
    let items = segment_array(&value, 0).ok_or(TranscriptError::JsonShape)?;
    let mut segments = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let problem = |problem: String| TranscriptError::JsonSegment { index, problem };
        let Value::Object(obj) = item else {
            return Err(problem(format!("expected an object, found {item}")));
        };
        let (start_ms, end_ms) = json_times(obj).map_err(problem)?;
        if end_ms < start_ms {
            return Err(problem(format!(
                "it ends ({end_ms} ms) before it starts ({start_ms} ms)"
            )));
        }
        let text = match obj.get("text").or_else(|| obj.get("transcript")) {
            Some(Value::String(s)) => squash_spaces(s),
            Some(Value::Null) | None => String::new(),
            Some(other) => {
                return Err(problem(format!("\"text\" must be a string, found {other}")))
            }
        };
        if text.is_empty() {
            // Silence or noise markers: nothing to search or match.
            continue;
        }
        segments.push(Segment {
            start_ms,
            end_ms,
            speaker: json_speaker(obj),
            text,
        });
    }
    if segments.is_empty() {
        return Err(TranscriptError::Empty);
    }
    sort_segments(&mut segments);
    Ok(segments)
}

/// The segment list: the value itself if an array, else the first of the known keys holding an
/// array, looking one object level down (`{"results": {"utterances": [...]}}`).
fn segment_array(value: &Value, depth: u8) -> Option<&Vec<Value>> {
    match value {
        Value::Array(items) => Some(items),
        Value::Object(obj) if depth <= 1 => ["segments", "results", "utterances"]
            .iter()
            .filter_map(|k| obj.get(*k))
            .find_map(|v| match v {
                Value::Array(items) => Some(items),
                Value::Object(_) => segment_array(v, depth + 1),
                _ => None,
            }),
        _ => None,
    }
}

/// A number, or a string holding one (some recognizers quote their times).
fn json_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Longest time accepted, in ms (about 31 years): anything larger is a unit mistake.
const MAX_TIME_MS: f64 = 1e12;

fn json_times(obj: &Map<String, Value>) -> Result<(u64, u64), String> {
    let one = |ms_key: &str, s_key: &str| -> Result<u64, String> {
        let (key, value, scale) = if let Some(v) = obj.get(ms_key) {
            (ms_key, v, 1.0)
        } else if let Some(v) = obj.get(s_key) {
            (s_key, v, 1000.0)
        } else {
            return Err(format!(
                "needs \"{s_key}\" (seconds) or \"{ms_key}\" (milliseconds)"
            ));
        };
        let n = json_number(value)
            .ok_or_else(|| format!("\"{key}\" must be a number, found {value}"))?;
        let ms = (n * scale).round();
        if ms < 0.0 {
            return Err(format!("\"{key}\" is negative ({n})"));
        }
        if !ms.is_finite() || ms > MAX_TIME_MS {
            return Err(format!("\"{key}\" is too large ({n})"));
        }
        // In range 0..=1e12 and whole: the conversion is exact.
        Ok(ms as u64)
    };
    Ok((one("start_ms", "start")?, one("end_ms", "end")?))
}

fn json_speaker(obj: &Map<String, Value>) -> Option<String> {
    let label = |v: &Value| match v {
        Value::String(s) => normalize_speaker(s),
        Value::Number(n) => normalize_speaker(&n.to_string()),
        _ => None,
    };
    if let Some(s) = obj.get("speaker").and_then(label) {
        return Some(s);
    }
    if let Some(s) = obj.get("speaker_label").and_then(label) {
        return Some(s);
    }
    match obj.get("channel")? {
        // Channel numbers are the recording's channels, never diarization guesses.
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some("agent".to_owned()),
            Some(1) => Some("customer".to_owned()),
            _ => normalize_speaker(&format!("channel_{n}")),
        },
        other => label(other),
    }
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;

    const VTT: &str = "\u{feff}WEBVTT - call 1234, exported by the recognizer
Kind: captions

NOTE This block is a comment
that spans two lines --> and mentions an arrow

STYLE
::cue { color: yellow }

1
00:00:01.000 --> 00:00:04.500 align:start position:10%
<v Agent>Thank you for calling, <b>this call</b> is recorded
for quality &amp; training.</v>

intro-2
00:05.250 --> 00:07.000
<v.loud Customer Jane>Hi &lt;there&gt;,&nbsp;it's about my <i>bill</i>.</v>

00:01:10.000 --> 00:01:12.000
<v Agent>Can I have your <c.highlight>date</c> <00:01:11.000>of birth?</v> <v Customer>Sure.</v>

00:02:00.000 --> 00:02:00.500
no voice here, just text

00:03:00.000 --> 00:03:01.000
<v Agent></v>
";

    #[test]
    fn webvtt_sample() -> TestResult {
        let (segments, format) = parse(VTT)?;
        assert_eq!(format, "webvtt");
        let want = [
            (
                1_000,
                4_500,
                Some("agent"),
                "Thank you for calling, this call is recorded for quality & training.",
            ),
            (
                5_250,
                7_000,
                Some("customer jane"),
                "Hi <there>, it's about my bill.",
            ),
            (
                70_000,
                72_000,
                Some("agent"),
                "Can I have your date of birth?",
            ),
            (70_000, 72_000, Some("customer"), "Sure."),
            (120_000, 120_500, None, "no voice here, just text"),
        ];
        assert_eq!(segments.len(), want.len(), "{segments:#?}");
        for (s, (start_ms, end_ms, speaker, text)) in segments.iter().zip(want) {
            assert_eq!(
                (s.start_ms, s.end_ms, s.speaker.as_deref(), s.text.as_str()),
                (start_ms, end_ms, speaker, text)
            );
        }
        // CRLF line ends read the same; cues out of order come back sorted.
        let crlf = VTT.replace('\n', "\r\n");
        assert_eq!(parse_webvtt(&crlf)?, segments);
        let swapped =
            "WEBVTT\n\n00:10.000 --> 00:11.000\nlater\n\n00:01.000 --> 00:02.000\nearlier\n";
        let s = parse_webvtt(swapped)?;
        assert_eq!(s.first().map(|x| x.text.as_str()), Some("earlier"));
        // Hours beyond two digits, and a cue with no blank line before the next.
        let long = "WEBVTT\n\n100:00:00.000 --> 100:00:01.000\nlate\n100:00:02.000 --> 100:00:03.000\nlater\n";
        let s = parse_webvtt(long)?;
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(1).map(|x| x.start_ms), Some(360_002_000));
        Ok(())
    }

    #[test]
    fn webvtt_errors_name_the_line() {
        let bad = "WEBVTT\n\n1\n00:00:01.000 --> 00:00:04.000\nfine\n\n2\n00:00:05.000 --> 00:00:6.000\nbroken\n";
        let e = parse_webvtt(bad);
        assert_eq!(
            e,
            Err(TranscriptError::VttTimestamp {
                line: 8,
                found: "00:00:6.000".into()
            })
        );
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("WebVTT line 8:"), "{msg}");

        for bad_time in ["00:61.000", "00:00:01,000", "1:00.000", "00:01.5", "x"] {
            let text = format!("WEBVTT\n\n{bad_time} --> 00:02:00.000\nhi\n");
            assert!(
                matches!(
                    parse_webvtt(&text),
                    Err(TranscriptError::VttTimestamp { line: 3, .. })
                ),
                "{bad_time}"
            );
        }

        let backwards = "WEBVTT\n\n00:00:05.000 --> 00:00:04.000\nhi\n";
        let e = parse_webvtt(backwards);
        assert_eq!(
            e,
            Err(TranscriptError::VttEndBeforeStart {
                line: 3,
                start: "00:00:05.000".into(),
                end: "00:00:04.000".into()
            })
        );

        let no_timing = "WEBVTT\n\nid\njust text\n";
        assert!(matches!(
            parse_webvtt(no_timing),
            Err(TranscriptError::VttTiming { line: 4, .. })
        ));
        assert_eq!(parse_webvtt("WEBVTTX\n"), Err(TranscriptError::VttHeader));
        assert_eq!(
            parse_webvtt("WEBVTT\n\nNOTE nothing\n"),
            Err(TranscriptError::Empty)
        );
        assert_eq!(parse("hello"), Err(TranscriptError::UnknownFormat));
        assert_eq!(parse(""), Err(TranscriptError::UnknownFormat));
    }

    #[test]
    fn json_in_three_shapes() -> TestResult {
        // A bare array, times in seconds, speakers by name.
        let array = r#"[
            {"start": 12.5, "end": 14.25, "speaker": "Caller", "text": "  I want to   cancel "},
            {"start": 1, "end": 3.0006, "speaker": "spk_0", "text": "This call is recorded."},
            {"start": 4, "end": 5, "speaker": "", "text": ""}
        ]"#;
        let (s, format) = parse(array)?;
        assert_eq!(format, "json");
        assert_eq!(s.len(), 2, "the empty segment is skipped");
        let first = s.first().ok_or("no first")?;
        assert_eq!(
            (first.start_ms, first.end_ms, first.speaker.as_deref()),
            (1_000, 3_001, Some("agent"))
        );
        let second = s.get(1).ok_or("no second")?;
        assert_eq!(second.speaker.as_deref(), Some("customer"));
        assert_eq!(second.text, "I want to cancel");

        // An object with "segments", times in ms, speakers by channel number.
        let object = r#"{"language": "en", "segments": [
            {"start_ms": 500, "end_ms": 2500, "channel": 0, "transcript": "Hello"},
            {"start_ms": 3000, "end_ms": 4000, "channel": 1, "text": "Hi"},
            {"start_ms": 4000, "end_ms": 4100, "channel": 2, "text": "beep"}
        ]}"#;
        let s = parse_json(object)?;
        let speakers: Vec<Option<&str>> = s.iter().map(|x| x.speaker.as_deref()).collect();
        assert_eq!(
            speakers,
            [Some("agent"), Some("customer"), Some("channel_2")]
        );

        // "utterances" (and "results"), nested one level, numeric and label speakers.
        let nested = r#"{"results": {"utterances": [
            {"start": 0.2, "end": 1.0, "speaker": 1, "transcript": "yes"},
            {"start": 1.5, "end": 2.0, "speaker_label": "Agent Smith", "text": "ok"}
        ]}}"#;
        let s = parse_json(nested)?;
        let speakers: Vec<Option<&str>> = s.iter().map(|x| x.speaker.as_deref()).collect();
        assert_eq!(speakers, [Some("customer"), Some("agent smith")]);
        let results = r#"{"results": [{"start": 0, "end": 1, "text": "x"}]}"#;
        assert_eq!(parse_json(results)?.len(), 1);
        let utterances = r#"{"utterances": [{"start": 0, "end": 1, "text": "x"}]}"#;
        assert_eq!(parse_json(utterances)?.len(), 1);
        Ok(())
    }

    #[test]
    fn json_errors() -> TestResult {
        let seg_err = |text: &str| match parse_json(text) {
            Err(TranscriptError::JsonSegment { index, problem }) => Some((index, problem)),
            _ => None,
        };
        let backwards =
            r#"[{"start": 1, "end": 2, "text": "a"}, {"start": 5, "end": 4, "text": "b"}]"#;
        let (index, problem) = seg_err(backwards).unwrap_or_default();
        assert_eq!(index, 1);
        assert!(problem.contains("before it starts"), "{problem}");
        let negative = r#"[{"start": -1, "end": 2, "text": "a"}]"#;
        assert!(seg_err(negative).is_some_and(|(_, p)| p.contains("negative")));
        let no_times = r#"[{"text": "a"}]"#;
        assert!(seg_err(no_times).is_some_and(|(_, p)| p.contains("\"start\"")));
        let not_object = r#"[1]"#;
        assert!(seg_err(not_object).is_some());
        assert_eq!(
            parse_json(r#"{"words": []}"#),
            Err(TranscriptError::JsonShape)
        );
        assert_eq!(parse_json("[]"), Err(TranscriptError::Empty));
        let Err(TranscriptError::Json(msg)) = parse("[{\"start\": 1,") else {
            return Err("truncated JSON must be a JSON error".into());
        };
        assert!(msg.contains("line 1"), "serde's message: {msg}");
        Ok(())
    }

    #[test]
    fn speakers_normalize() {
        for raw in [
            "Agent",
            " a ",
            "CH0",
            "ch_0",
            "channel_0",
            "spk_0",
            "Speaker 0",
            "0",
            "rep",
        ] {
            assert_eq!(normalize_speaker(raw).as_deref(), Some("agent"), "{raw}");
        }
        for raw in [
            "customer",
            "Caller",
            "client",
            "C",
            "ch1",
            "spk_1",
            "speaker_1",
            "1",
        ] {
            assert_eq!(normalize_speaker(raw).as_deref(), Some("customer"), "{raw}");
        }
        assert_eq!(normalize_speaker("  "), None);
        assert_eq!(
            normalize_speaker(" Supervisor Bob "),
            Some("supervisor bob".into())
        );
        assert_eq!(normalize_speaker("spk_2"), Some("spk_2".into()));
    }

    #[test]
    fn segments_beyond_the_call() -> TestResult {
        let (s, _) = parse("WEBVTT\n\n00:00.000 --> 01:00.000\nhello\n")?;
        check_max_ms(&s, 60_000)?;
        let e = check_max_ms(&s, 59_000);
        assert!(matches!(
            e,
            Err(TranscriptError::BeyondCall { end_ms: 60_000, .. })
        ));
        Ok(())
    }
}
