//! libFuzzer entry for `targets::range` (see `fuzz/src/targets.rs`); holds no logic of its own.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callrec_fuzz::targets::range(data));
