//! The callrec fuzz harness: [`targets`] holds one function per parser of untrusted input; each
//! binary in `fuzz_targets/` hands libFuzzer's bytes to one of them. The same module is compiled
//! into the main crate's test binary (`tests/it/fuzz_replay.rs`), which replays the committed
//! corpus and mutates it for a few seconds on every `make test`.
//!
//! Nothing here may hold parsing logic of its own: a target only calls the entry point that
//! production uses and checks what that entry point promises.

pub mod targets;
