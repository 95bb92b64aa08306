//! Signal processing between the rings and the encoder: resampling to the encoder rate, two-clock
//! alignment, and levels for voice activity.

pub mod align;
pub mod level;
pub mod peaks;
pub mod resample;
pub mod talk;
