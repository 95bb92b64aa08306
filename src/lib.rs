//! callrec: a call-recording and QA appliance. Seats are captured (cpal/ALSA), encoded to Ogg
//! Opus (two uncoupled mono streams: agent, customer), and indexed in SQLite, crash-safely.
//! The binary (`main.rs`, `cli/`) is a thin CLI over this library; `docs/ARCHITECTURE.md` draws
//! the modules and the one direction of their dependencies.

pub mod archive;
pub mod capture;
pub mod check;
pub mod clock;
pub mod codec;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dsp;
pub mod durable;
pub mod encode;
pub mod evidence;
pub mod hash;
pub mod hub;
pub mod import;
pub mod qa;
pub mod record;
pub mod serve;
pub mod store;
