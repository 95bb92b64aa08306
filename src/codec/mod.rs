//! Opus encoding/decoding and the Ogg Opus container (RFC 7845).
//!
//! Files hold two *uncoupled* mono streams (channel mapping family 1, 2 streams, 0 coupled):
//! agent = channel 0, customer = channel 1, so neither party leaks into the other's silence.

pub mod ogg_crc;
pub mod ogg_read;
pub mod ogg_write;
pub mod opus_ms;
pub mod party;
pub mod quiet;

/// Opus always counts granule positions at 48 kHz (RFC 7845 §4).
pub const GRANULE_RATE_HZ: u32 = 48_000;
/// Channels in every callrec file: agent, customer.
pub const CHANNELS: usize = 2;
