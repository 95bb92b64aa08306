//! The short fuzzing run of `make test`: every committed input under `fuzz/corpus/<target>/`
//! (seeds and the inputs of past findings) goes through the same target functions the libFuzzer
//! harness runs (`fuzz/src/targets.rs`, compiled in here by path), then each target gets a few
//! seconds (`FUZZ_REPLAY_MS`, default 2000 ms) of random mutations of that corpus from a
//! fixed-seed generator (Ogg inputs get their page checksums recomputed, as in `make fuzz`).
//! The instrumented harness itself takes minutes to build on two cores, so it runs only in
//! `make fuzz`.
//!
//! A panic or an input that takes longer than [`HANG`] fails the target's test and names the
//! input, saved under `test-artifacts/fuzz-replay/` for `fuzz/target/.../<target> <file>`. This
//! test must never write into `fuzz/corpus/`.

// `abort_unless_contained` serves the libFuzzer binaries only: here a panic is caught per input.
#[allow(dead_code)]
#[path = "../../fuzz/src/targets.rs"]
mod targets;

use crate::common::{artifacts, repo};
use callrec::codec::ogg_read;
use callrec::import::decode::{self, DecodeError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// One input slower than this is a hang (libFuzzer's `-timeout` in `make fuzz` is 10 s too).
const HANG: Duration = Duration::from_secs(10);
/// Mutated inputs never grow past this (the largest seed is a few KB).
const MAX_LEN: usize = 64 * 1024;

/// Tokens the parsers give meaning to, spliced in by the mutator.
const TOKENS: &[&[u8]] = &[
    b"OggS",
    b"OpusHead",
    b"OpusTags",
    b"RIFF",
    b"WAVE",
    b"fmt ",
    b"data",
    b"fLaC",
    b"ID3",
    b"bytes=",
    b"-",
    b",",
    b"\n",
    b"\r\n",
    b"-->",
    b"WEBVTT",
    b"NOTE",
    b"<v ",
    b"</v>",
    b"&#x",
    b"&amp;",
    b"00:00:01.000",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"start\":",
    b"\"end_ms\":",
    b"1e308",
    b"[[seat]]",
    b"[[seat.input]]",
    b"=",
    b"\"",
    b";",
    b"\t",
    b"\xef\xbb\xbf",
    b"18446744073709551615",
    b"4294967295",
    b"-1",
    b"0",
];

/// xorshift64*: a fixed sequence per target, so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("fuzz/corpus").join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), bytes)
        })
        .collect()
}

/// One to four byte-level edits of a seed, sometimes spliced with another.
fn mutate(seeds: &[(String, Vec<u8>)], rng: &mut Rng) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(9) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = rng.next() as u8;
            }
            2 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = [0, 0xff, 0x7f, 0x80, b'9', b' '][rng.below(6)];
            }
            3 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            4 => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                v.drain(at.min(end)..end);
            }
            5 => v.truncate(at),
            6 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            7 if !v.is_empty() => {
                // Repeat a stretch of the input (lacing tables, cues, rows).
                let from = rng.below(v.len());
                let end = (from + 1 + rng.below(512)).min(v.len());
                let copy = v[from..end].to_vec();
                v.splice(at..at, copy);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())].1;
                let from = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
        }
        v.truncate(MAX_LEN);
    }
    v
}

/// Runs one input; a panic or a hang fails the test with the input saved.
fn check(name: &str, target: targets::Target, input: &[u8], what: &str) {
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| target(input)));
    let took = started.elapsed();
    if outcome.is_ok() && took < HANG {
        return;
    }
    let dir = artifacts().join("fuzz-replay");
    let _ = std::fs::create_dir_all(&dir);
    let hash: u64 = input.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let saved = dir.join(format!("{name}-{hash:016x}"));
    let _ = std::fs::write(&saved, input);
    let why = if outcome.is_err() {
        "panicked".to_owned()
    } else {
        format!("took {took:?} (a hang)")
    };
    panic!(
        "fuzz target {name} {why} on {what}; input saved as {}",
        saved.display()
    );
}

fn replay(name: &str) {
    let budget = Duration::from_millis(
        std::env::var("FUZZ_REPLAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000),
    );
    let Some(&(_, target)) = targets::TARGETS.iter().find(|(n, _)| *n == name) else {
        panic!("no fuzz target {name}");
    };
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "fuzz/corpus/{name}/ is empty");
    for (path, bytes) in &seeds {
        check(name, target, bytes, path);
    }
    let mut rng = Rng(name.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(31)
    }) | 1);
    let deadline = Instant::now() + budget;
    let mut runs = 0u64;
    let fix_crcs = targets::OGG_TARGETS.contains(&name);
    while Instant::now() < deadline {
        let mut input = mutate(&seeds, &mut rng);
        if fix_crcs && rng.below(8) != 0 {
            targets::fix_ogg_crcs(&mut input);
        }
        check(name, target, &input, &format!("mutation #{runs}"));
        runs += 1;
    }
    eprintln!(
        "fuzz replay {name}: {} corpus inputs, {runs} mutations in {budget:?}",
        seeds.len()
    );
}

#[test]
fn every_target_has_a_test_here() {
    let names: Vec<&str> = targets::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "ogg_opus",
            "range",
            "config",
            "transcript_webvtt",
            "transcript_json",
            "peaks",
            "sidecar",
            "import_probe"
        ]
    );
}

#[test]
fn ogg_opus() {
    replay("ogg_opus");
}

#[test]
fn range() {
    replay("range");
}

#[test]
fn config() {
    replay("config");
}

#[test]
fn transcript_webvtt() {
    replay("transcript_webvtt");
}

#[test]
fn transcript_json() {
    replay("transcript_json");
}

#[test]
fn peaks() {
    replay("peaks");
}

#[test]
fn sidecar() {
    replay("sidecar");
}

#[test]
fn import_probe() {
    replay("import_probe");
}

// ---------------------------------------------------------------------------------------------
// Findings: each input is committed in the corpus (so every run replays it) and checked here for
// the clear error or the right result that replaced the crash. RELIABILITY.md lists them.

fn finding(path: &str) -> Vec<u8> {
    let p = repo().join("fuzz/corpus").join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Finding 1 (`make fuzz`, import_probe): symphonia 0.6.1 asserts in its Vorbis setup-header
/// reader (`lookup1_values`) on this Ogg Vorbis file. The import reports a corrupt file instead.
#[test]
fn finding_1_symphonia_panic_is_a_corrupt_file() {
    let data = finding("import_probe/finding-1-vorbis-setup-lookup1-panic.ogg");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("legacy.ogg");
    std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for opened in [
        decode::open(&path, 16_000, None),
        decode::probe(std::io::Cursor::new(data), None, Some("ogg"), 16_000, None),
    ] {
        match opened {
            Err(DecodeError::Corrupt(m)) => {
                assert!(m.starts_with("the decoder failed on damaged data"), "{m}")
            }
            Err(e) => panic!("expected a corrupt-file error, got: {e}"),
            Ok(_) => panic!("a file symphonia cannot set up must not open"),
        }
    }
}

/// Finding 2 (overflow check in the harness, ogg_opus): an 8-channel file whose last granule
/// claims 3 * 2^61 samples. `decode_each` multiplied the frames to keep by the channel count
/// and wrapped to 0 (a panic with overflow checks), so nothing was decoded; it saturates now and
/// every packet's audio is kept (3 packets of 20 ms at 16 kHz, less the 104-frame pre-skip).
#[test]
fn finding_2_huge_granule_keeps_the_audio() {
    let data = finding("ogg_opus/finding-2-8ch-granule-wraps-to-keep.opus");
    let info = ogg_read::inspect(&data).unwrap_or_else(|e| panic!("inspect: {e}"));
    assert_eq!((info.head.channels, info.samples_48k), (8, 3 << 61));
    let mut samples = 0;
    let channels = ogg_read::decode_each(&data, 16_000, |pcm| samples += pcm.len())
        .unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!((channels, samples), (8, (3 * 320 - 104) * 8));
}

/// Finding 3 (`make fuzz`, import_probe): an Ogg Vorbis file whose last granule claims about
/// 2^63 frames. The truncation note turned frames into ms as `frames * 1000` and wrapped (a
/// panic with overflow checks), printing a made-up length; it is computed wide now.
#[test]
fn finding_3_huge_frame_claim_is_reported_exactly() {
    let data = finding("import_probe/finding-3-vorbis-huge-granule-ms-overflow.ogg");
    // With the length known (as for a file), symphonia reads the last page's granule.
    let len = Some(data.len() as u64);
    let mut source = decode::probe(std::io::Cursor::new(data), len, Some("ogg"), 16_000, None)
        .unwrap_or_else(|e| panic!("the file opens (its damage is in the audio): {e}"));
    let info = source.info().clone();
    let Some(expected) = info.expected_frames else {
        panic!("the file claims a length: {info:?}");
    };
    let mut planes = Vec::new();
    while let Ok(true) = source.next_block(&mut planes) {}
    let claimed_ms = u128::from(expected) * 1000 / u128::from(info.rate_hz);
    assert!(
        u128::from(expected) * 1000 > u128::from(u64::MAX),
        "the claim must be one that overflowed: {info:?}"
    );
    let want = format!("the header promises {claimed_ms} ms");
    let notes = source.notes();
    assert!(notes.iter().any(|n| n.contains(&want)), "{notes:?}");
}
