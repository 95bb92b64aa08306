//! Per-party resampling from a capture rate to the encoder rate with rubato.
//!
//! A fixed-ratio FFT resampler when the clocks are locked (one device per seat), an asynchronous
//! sinc resampler whose ratio can be nudged when a second device's clock drifts, and a plain
//! pass-through when rates already match. Buffers are allocated once; processing does not allocate.

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{
    Adjustable, Async, Fft, FixedAsync, FixedSync, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// Input chunk: 10 ms at 48 kHz.
const CHUNK: usize = 480;
/// Adjustable resamplers may move ±0.2 % (≥ the 500 ppm drift cap with room to catch up).
pub const MAX_RELATIVE: f64 = 1.002;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot build a {from_hz} -> {to_hz} Hz resampler: {message}")]
    Build {
        from_hz: u32,
        to_hz: u32,
        message: String,
    },
}

enum Kind {
    Pass,
    Fixed(Box<Fft<f32>>),
    Adjustable(Box<Async<f32>>),
}

pub struct PartyResampler {
    kind: Kind,
    pending: Vec<f32>,
    out: Vec<f32>,
}

impl PartyResampler {
    pub fn new(from_hz: u32, to_hz: u32, adjustable: bool) -> Result<Self, ResampleError> {
        let err = |e: &dyn std::fmt::Display| ResampleError::Build {
            from_hz,
            to_hz,
            message: e.to_string(),
        };
        let ratio = f64::from(to_hz) / f64::from(from_hz);
        let kind = if adjustable {
            let params = SincInterpolationParameters {
                sinc_len: 64,
                f_cutoff: None,
                oversampling_factor: 128,
                interpolation: SincInterpolationType::Linear,
                window: WindowFunction::BlackmanHarris2,
            };
            let r =
                Async::<f32>::new_sinc(ratio, MAX_RELATIVE, &params, CHUNK, 1, FixedAsync::Input)
                    .map_err(|e| err(&e))?;
            Kind::Adjustable(Box::new(r))
        } else if from_hz != to_hz {
            let r = Fft::<f32>::new(from_hz as usize, to_hz as usize, CHUNK, 1, FixedSync::Input)
                .map_err(|e| err(&e))?;
            Kind::Fixed(Box::new(r))
        } else {
            Kind::Pass
        };
        let out_max = match &kind {
            Kind::Pass => 0,
            Kind::Fixed(r) => r.output_frames_max(),
            Kind::Adjustable(r) => r.output_frames_max(),
        };
        Ok(PartyResampler {
            kind,
            pending: Vec::with_capacity(CHUNK * 8),
            out: vec![0.0; out_max],
        })
    }

    /// Input samples waiting for a full chunk.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Delay the resampler adds, in output samples.
    pub fn output_delay(&self) -> usize {
        match &self.kind {
            Kind::Pass => 0,
            Kind::Fixed(r) => r.output_delay(),
            Kind::Adjustable(r) => r.output_delay(),
        }
    }

    /// Nudges the ratio relative to nominal (1.0 = nominal); only adjustable resamplers move.
    pub fn set_relative(&mut self, rel: f64) {
        if let Kind::Adjustable(r) = &mut self.kind {
            let _ =
                r.set_resample_ratio_relative(rel.clamp(1.0 / MAX_RELATIVE, MAX_RELATIVE), true);
        }
    }

    /// Resamples `input` and appends the result to `out_fifo`.
    pub fn process(&mut self, input: &[f32], out_fifo: &mut std::collections::VecDeque<f32>) {
        let r: &mut dyn Resampler<f32> = match &mut self.kind {
            Kind::Pass => {
                out_fifo.extend(input.iter().copied());
                return;
            }
            Kind::Fixed(r) => r.as_mut(),
            Kind::Adjustable(r) => r.as_mut(),
        };
        self.pending.extend_from_slice(input);
        let mut used = 0;
        loop {
            let need = r.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            let Ok(inp) = SequentialSlice::new(&self.pending[used..used + need], 1, need) else {
                break;
            };
            let out_len = self.out.len();
            let Ok(mut outp) = SequentialSlice::new_mut(&mut self.out[..], 1, out_len) else {
                break;
            };
            match r.process_into_buffer(&inp, &mut outp, None) {
                Ok((n_in, n_out)) => {
                    used += n_in;
                    out_fifo.extend(self.out[..n_out].iter().copied());
                }
                Err(e) => {
                    tracing::error!("resampler: {e}");
                    break;
                }
            }
        }
        self.pending.drain(..used);
    }
}
