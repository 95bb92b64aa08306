//! libFuzzer entry for `targets::peaks` (see `fuzz/src/targets.rs`); holds no logic of its own.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| callrec_fuzz::targets::peaks(data));
