//! libFuzzer entry for `targets::transcript_json` (see `fuzz/src/targets.rs`); holds no logic of its own.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callrec_fuzz::targets::transcript_json(data));
