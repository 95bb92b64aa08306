//! The capture rate of inputs and `[[device]]`s whose config leaves it out: chosen once, when
//! the recorder starts, so the rest of the pipeline (rings, resamplers, the aligner) sees a
//! fixed rate exactly as if the config had named it.
//!
//! Capturing at the encoder's rate (16 kHz by default) skips the resampler and a third of the
//! samples every stage handles; a device that does not offer it is opened at
//! [`FALLBACK_CAPTURE_RATE_HZ`] and resampled as before. Must never open a stream: it only asks
//! the device what it offers.

use super::device;
use crate::config::{Config, InputKind, AUTO_RATE_HZ, FALLBACK_CAPTURE_RATE_HZ};

/// `cfg` with every automatic `rate_hz` replaced by the rate the recorder will capture at.
pub fn resolve(cfg: &Config) -> Config {
    let mut out = cfg.clone();
    let enc_hz = cfg.encoder.rate_hz;
    for dev in out.devices.iter_mut().filter(|d| d.rate_hz == AUTO_RATE_HZ) {
        dev.rate_hz = for_device(&dev.pcm, dev.channels, enc_hz);
        tracing::info!(device = %dev.name, rate_hz = dev.rate_hz, "capture rate picked");
    }
    for seat in &mut out.seats {
        for (j, inp) in seat.inputs.iter_mut().enumerate() {
            if inp.rate_hz != AUTO_RATE_HZ {
                continue;
            }
            inp.rate_hz = match inp.kind {
                InputKind::Device => for_device(
                    inp.device.as_deref().unwrap_or_default(),
                    inp.channels,
                    enc_hz,
                ),
                InputKind::Synthetic => enc_hz,
                // The file's own rate: a file is played as it is. One that cannot be read keeps
                // the fallback, and the simulator's open then names what is wrong with it.
                InputKind::File => inp
                    .path
                    .as_deref()
                    .and_then(|p| hound::WavReader::open(p).ok())
                    .map_or(FALLBACK_CAPTURE_RATE_HZ, |r| r.spec().sample_rate),
            };
            tracing::info!(seat = %seat.id, input = j, rate_hz = inp.rate_hz, "capture rate picked");
        }
    }
    out
}

/// The encoder's rate when the device offers it for `channels`, else the fallback (also when
/// the device is absent at start: the supervisor keeps retrying it at that rate).
fn for_device(pcm: &str, channels: u16, enc_hz: u32) -> u32 {
    match device::offers_rate(pcm, channels, enc_hz) {
        Ok(true) => enc_hz,
        Ok(false) => FALLBACK_CAPTURE_RATE_HZ,
        Err(e) => {
            tracing::warn!(
                device = pcm,
                "{e}; capturing at {FALLBACK_CAPTURE_RATE_HZ} Hz"
            );
            FALLBACK_CAPTURE_RATE_HZ
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[box]
id = "b"
[storage]
dir = "/tmp/callrec-rate-test"
[[seat]]
id = "s1"
[[seat.input]]
kind = "synthetic"
agent_channel = 0
customer_channel = 1
[[seat]]
id = "s2"
[[seat.input]]
kind = "synthetic"
rate_hz = 44100
agent_channel = 0
customer_channel = 1
[[seat]]
id = "s3"
[[seat.input]]
kind = "file"
path = "/nonexistent/callrec-rate-test.wav"
agent_channel = 0
customer_channel = 1
[[seat]]
id = "s4"
[[seat.input]]
kind = "device"
device = "alsa:callrec-no-such-device"
agent_channel = 0
customer_channel = 1
"#;

    #[test]
    fn automatic_rates_take_the_encoders_when_they_can_and_48k_otherwise() -> Result<(), String> {
        let cfg: Config = toml::from_str(CFG).map_err(|e| e.to_string())?;
        let r = resolve(&cfg);
        let rates: Vec<u32> = r.seats.iter().map(|s| s.inputs[0].rate_hz).collect();
        // Synthetic: the encoder's 16 kHz; a named rate is kept; an unreadable file and an
        // absent device fall back to 48 kHz.
        assert_eq!(rates, vec![16_000, 44_100, 48_000, 48_000]);
        Ok(())
    }
}
