//! `callrec encode IN.wav OUT.opus`: one file through the recorder's own pipeline (resample with
//! the seat aligner, the same encoder settings, the same Ogg writer) without a device. Used by the
//! benches and by anyone checking the pipeline. Channel 0 of the WAV is the agent, channel 1 the
//! customer; a mono WAV is taken as the agent with a silent customer.

use crate::codec::ogg_write::{tags_for, OpusFileWriter};
use crate::config::EncoderConfig;
use crate::dsp::align::Aligner;
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Write};
use std::path::Path;

#[derive(Debug, serde::Serialize)]
pub struct EncodeReport {
    pub duration_ms: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Reads blocks of the WAV as f32 per channel and feeds the aligner.
pub fn encode_file(
    input: &Path,
    output: &Path,
    enc: &EncoderConfig,
) -> anyhow::Result<EncodeReport> {
    let mut reader = hound::WavReader::open(input)
        .with_context(|| format!("opening {} (a WAV file is expected)", input.display()))?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.channels > 2 {
        bail!(
            "{} has {} channels; expected 1 (agent) or 2 (agent, customer)",
            input.display(),
            spec.channels
        );
    }
    let channels = usize::from(spec.channels);
    let mut aligner = Aligner::new(
        spec.sample_rate,
        spec.sample_rate,
        enc.rate_hz,
        enc.frame_samples(),
        false,
    )?;
    let file =
        std::fs::File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let tags = tags_for(&[(
        "CALLREC_SOURCE",
        input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )]);
    let mut writer = OpusFileWriter::new(BufWriter::new(file), enc, 1, &tags)?;
    let scale = match spec.sample_format {
        hound::SampleFormat::Float => 1.0,
        hound::SampleFormat::Int => 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32,
    };
    let block = spec.sample_rate as usize / 10 * channels;
    let mut parties = [Vec::with_capacity(block), Vec::with_capacity(block)];
    let mut frame = vec![0f32; enc.frame_samples() * 2];
    let mut samples: Box<dyn Iterator<Item = Result<f32, hound::Error>>> = match spec.sample_format
    {
        hound::SampleFormat::Float => Box::new(reader.samples::<f32>()),
        hound::SampleFormat::Int => Box::new(
            reader
                .samples::<i32>()
                .map(move |s| s.map(|v| v as f32 * scale)),
        ),
    };
    let mut done = false;
    while !done {
        parties[0].clear();
        parties[1].clear();
        for i in 0..block {
            match samples.next() {
                Some(s) => parties[if channels == 2 { i % 2 } else { 0 }]
                    .push(s.with_context(|| format!("reading {}", input.display()))?),
                None => {
                    done = true;
                    break;
                }
            }
        }
        if channels == 1 {
            parties[1].resize(parties[0].len(), 0.0);
        }
        aligner.push(0, &parties[0]);
        aligner.push(1, &parties[1]);
        while aligner.pop_frame(&mut frame) {
            writer.push_frame(&frame)?;
        }
    }
    let duration_ms = writer.duration_ms();
    let mut out = writer.finish()?;
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    let data = std::fs::read(output)?;
    Ok(EncodeReport {
        duration_ms,
        bytes: data.len() as u64,
        sha256: hex::encode(Sha256::digest(&data)),
    })
}
