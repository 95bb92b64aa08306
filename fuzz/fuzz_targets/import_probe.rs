//! libFuzzer entry for `targets::import_probe` (see `fuzz/src/targets.rs`); holds no logic of its
//! own. Its mutator is libFuzzer's, followed seven times in eight by `targets::fix_ogg_crcs`; its
//! panic hook lets through the symphonia panics that `import::decode` contains.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: callrec_fuzz::targets::abort_unless_contained(),
    |data: &[u8]| callrec_fuzz::targets::import_probe(data)
);

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    if seed % 8 != 0 {
        callrec_fuzz::targets::fix_ogg_crcs(&mut data[..size]);
    }
    size
});
