//! One function per parser of untrusted input, shared by the libFuzzer binaries
//! (`fuzz/fuzz_targets/*.rs`) and the corpus replay in the main test binary
//! (`tests/it/fuzz_replay.rs`, which includes this file by path).
//!
//! Each target feeds the bytes to the entry point production code calls, never to a copy of it,
//! and asserts only what that entry point promises (ranges inside the file, segments sorted, a
//! resealed page that checks). A target must never panic or `unwrap()` on the input itself: the
//! only panics allowed here are those assertions, and any panic is a finding. Targets must stay
//! deterministic and touch no file except through the parser's own path lookups.

use callrec::codec::{ogg_crc, ogg_read};
use callrec::config::Config;
use callrec::dsp::peaks;
use callrec::import::decode;
use callrec::import::sidecar::{ColumnMap, Lookup, Sidecar};
use callrec::qa::transcript;
use callrec::serve::stream::{parse_range, ByteRange};
use std::path::Path;

/// A target: takes any bytes, returns normally unless it found a bug.
pub type Target = fn(&[u8]);

/// Every target by name (the name is also its corpus folder, `fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("ogg_opus", ogg_opus),
    ("range", range),
    ("config", config),
    ("transcript_webvtt", transcript_webvtt),
    ("transcript_json", transcript_json),
    ("peaks", peaks),
    ("sidecar", sidecar),
    ("import_probe", import_probe),
];

/// Targets whose inputs are Ogg streams: after each mutation the fuzzers recompute the page
/// checksums ([`fix_ogg_crcs`]) most of the time, or nearly every mutated page would stop the
/// scan at its CRC and the code behind it would never be reached.
pub const OGG_TARGETS: &[&str] = &["ogg_opus", "import_probe"];

/// Recomputes the CRC of every complete Ogg page found from the start of `data` (a mutation
/// aid, not a parser: it follows the page layout of RFC 3533 §6 only far enough to find each
/// page's length, and stops at the first place that is not a page).
pub fn fix_ogg_crcs(data: &mut [u8]) {
    let mut at = 0;
    while let Some(h) = data.get(at..at + 27) {
        if &h[..4] != b"OggS" {
            return;
        }
        let nsegs = usize::from(h[26]);
        let Some(lacing) = data.get(at + 27..at + 27 + nsegs) else {
            return;
        };
        let len = 27 + nsegs + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
        let Some(page) = data.get_mut(at..at + len) else {
            return;
        };
        page[22..26].fill(0);
        let crc = ogg_crc::crc32(page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        at += len;
    }
}

/// Where the panics come from that production code contains on purpose: `import::decode` runs
/// every symphonia call under `catch_unwind` and reports a panic as a corrupt file.
pub const CONTAINED_PANICS_FROM: &[&str] = &["/symphonia-"];

/// libfuzzer-sys's panic hook aborts on every panic, caught or not. The `import_probe` binary
/// replaces it with this one: a panic raised in [`CONTAINED_PANICS_FROM`] is left to the code
/// that contains it, any other aborts as before (and one that escapes the target still aborts
/// in libfuzzer-sys's wrapper), so only a panic callrec lets through counts as a crash.
pub fn abort_unless_contained() {
    let libfuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let file = info.location().map_or("", |l| l.file());
        if CONTAINED_PANICS_FROM.iter().any(|p| file.contains(p)) {
            return;
        }
        libfuzzer_hook(info);
    }));
}

/// The encoder rate a default box decodes at (`encoder.rate_hz`).
const RATE_HZ: u32 = 16_000;

/// The Ogg Opus reader as recovery, verification, peaks and the WAV route use it: `inspect`,
/// streaming `decode_each`, `decode_window` (seeking) and `reseal_last_page` (crash recovery).
pub fn ogg_opus(data: &[u8]) {
    let Ok(info) = ogg_read::inspect(data) else {
        return;
    };
    assert!(info.valid_bytes <= data.len(), "valid_bytes past the end");
    let _ = (info.duration_ms(), info.has_eos());
    let mut samples = 0usize;
    let _ = ogg_read::decode_each(data, RATE_HZ, |pcm| samples += pcm.len());
    let frames = info.samples_48k / 3;
    for from in [0, frames / 2] {
        if let Ok(pcm) = ogg_read::decode_window(data, &info, RATE_HZ, from, 8000) {
            assert!(pcm.len() <= 8000 * usize::from(info.head.channels));
        }
    }
    if let Some(last) = info.pages.last() {
        let mut copy = data.to_vec();
        ogg_read::reseal_last_page(&mut copy, last);
        assert!(
            ogg_read::parse_page(&copy, last.offset).is_some_and(|p| p.is_eos()),
            "a resealed page must check and carry end-of-stream"
        );
    }
}

/// The HTTP `Range` header as the audio, WAV and peaks routes read it, against several lengths.
pub fn range(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    for len in [0, 1, 44, 1000, data.len() as u64, u64::MAX] {
        if let ByteRange::Part(first, last) = parse_range(Some(header), len) {
            assert!(
                first <= last && last < len,
                "{header:?} on {len} bytes gave {first}-{last}"
            );
        }
    }
}

/// The TOML config as `callrec --config` loads it (the file is read as UTF-8 first).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("fuzz.toml")) {
        Ok(cfg) => {
            let _ = (cfg.control_socket(), cfg.db_path(), cfg.worker_count());
            for seat in &cfg.seats {
                for input in &seat.inputs {
                    let _ = input.party_channels();
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A transcript upload as `store::compliance::import_transcript` reads it, for a one-hour call.
fn transcript(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match transcript::parse_for_call(text, 3_600_000) {
        Ok((segments, _format)) => {
            assert!(!segments.is_empty(), "Ok with no segments");
            for s in &segments {
                assert!(
                    s.start_ms <= s.end_ms,
                    "segment ends before it starts: {s:?}"
                );
                assert!(!s.text.is_empty(), "segment without text: {s:?}");
            }
            assert!(
                segments.windows(2).all(|w| w[0].start_ms <= w[1].start_ms),
                "segments not sorted by start"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// WebVTT transcripts (the corpus starts them with `WEBVTT`; `parse` tells the formats apart).
pub fn transcript_webvtt(data: &[u8]) {
    transcript(data);
}

/// JSON transcripts (the corpus starts them with `{` or `[`).
pub fn transcript_json(data: &[u8]) {
    transcript(data);
}

/// An audiowaveform v2 peaks file as `callrec check` reads it.
pub fn peaks(data: &[u8]) {
    if let Some(p) = peaks::parse(data) {
        assert_eq!(
            p.data.len(),
            p.length as usize * 2 * p.channels.max(0) as usize
        );
    }
}

/// The import's CSV sidecar: with the default columns (no `--time-format`, then `%s`) and with
/// the README's `--col-*` mapping and `--time-format`; every row is then looked up the way the
/// import matches sources to rows.
pub fn sidecar(data: &[u8]) {
    let base = Path::new("/nonexistent/callrec-fuzz");
    let readme = ColumnMap {
        file: Some("filename".into()),
        agent: Some("agent_login".into()),
        number: Some("ani".into()),
        started: Some("start_time".into()),
        ..ColumnMap::default()
    };
    let runs = [
        (ColumnMap::default(), None),
        (ColumnMap::default(), Some("%s")),
        (readme, Some("%d/%m/%Y %H:%M:%S")),
    ];
    for (map, format) in &runs {
        let Ok(sc) = Sidecar::parse(data, base, map, *format) else {
            continue;
        };
        for row in &sc.rows {
            match sc.lookup(&base.join(&row.file)) {
                Lookup::Found(_) | Lookup::Ambiguous(_) | Lookup::None => {}
            }
        }
    }
}

/// The import's probe and decoder (`import::decode::probe`, behind `decode::open`): sniff, open
/// with the Ogg Opus reader or symphonia, then decode every block and read the damage notes.
pub fn import_probe(data: &[u8]) {
    let src = std::io::Cursor::new(data.to_vec());
    let Ok(mut source) = decode::probe(src, Some(data.len() as u64), None, RATE_HZ, None) else {
        return;
    };
    let channels = source.info().channels;
    let mut planes = Vec::new();
    while let Ok(true) = source.next_block(&mut planes) {
        assert!(planes.len() <= decode::MAX_CHANNELS.max(channels));
    }
    let _ = source.notes();
}
