//! Audio sources feeding the recorder: cpal capture devices (ALSA), WAV files played in real time
//! and a synthetic conversation generator. Every source ends in the same place, a lock-free SPSC
//! ring per input ([`ring::RingWriter`]), so the rest of the pipeline cannot tell them apart.

pub mod device;
pub mod rate;
pub mod ring;
pub mod sim;
pub mod survey;
pub mod synth;
