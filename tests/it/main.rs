//! End-to-end tests of the `callrec` binary with real parts: cpal/ALSA capture (the ALSA `file`
//! plugin reading a FIFO fed in real time), libopus, a real SQLite file, and output checked by
//! tools nobody here wrote (`opusinfo`, `ffprobe`, `sqlite3`, `sha256sum`).
//! One test binary with a module per concern keeps link time down.

mod alsa;
mod archive;
mod archive_lock;
mod archive_restore;
mod archive_verify;
mod attack;
mod browser;
mod campaign;
mod check;
mod cli;
mod common;
mod complaints;
mod completeness;
mod crash;
mod disk_full;
mod docs;
mod erasure;
mod evidence;
mod figures;
mod fleet;
mod fuzz_replay;
mod hub;
mod hub_export;
mod import;
mod isolation;
mod layers;
mod lifecycle;
mod live;
mod modes;
mod multichannel;
mod orders;
mod outcomes;
mod quiet;
mod stalled;
mod web;
mod web_export;
mod webbox;
