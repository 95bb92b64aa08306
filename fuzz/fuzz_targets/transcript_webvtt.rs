//! libFuzzer entry for `targets::transcript_webvtt` (see `fuzz/src/targets.rs`); holds no logic of its own.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callrec_fuzz::targets::transcript_webvtt(data));
