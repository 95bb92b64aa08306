//! libFuzzer entry for `targets::config` (see `fuzz/src/targets.rs`); holds no logic of its own.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callrec_fuzz::targets::config(data));
