//! Safe wrappers over libopus's multistream encoder and decoder (via `opusic-sys`).
//!
//! The `opus` crate only wraps the single-stream API; callrec needs the multistream API to put two
//! uncoupled mono streams in one packet (RFC 7845 §5.1.1.2, mapping family 1). Each wrapper owns
//! its libopus state and frees it on drop; nothing here allocates per frame.

use opusic_sys as ffi;
use std::ffi::CStr;

#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    #[error("libopus: {context}: {message}")]
    Lib {
        context: &'static str,
        message: String,
    },
}

fn lib_err(context: &'static str, code: i32) -> OpusError {
    // SAFETY: opus_strerror returns a pointer to a static, NUL-terminated string for any code.
    let message = unsafe { CStr::from_ptr(ffi::opus_strerror(code)) }
        .to_string_lossy()
        .into_owned();
    OpusError::Lib { context, message }
}

/// Two uncoupled mono streams: mapping [0, 1], streams = 2, coupled = 0.
const MAPPING: [u8; 2] = [0, 1];
const STREAMS: i32 = 2;
const COUPLED: i32 = 0;

pub struct MsEncoder {
    st: *mut ffi::OpusMSEncoder,
    frame_samples: usize,
}

// SAFETY: the encoder state is only touched through &mut self; libopus keeps no thread-local state.
unsafe impl Send for MsEncoder {}

impl MsEncoder {
    /// `bitrate_bps` is per party (per stream); the encoder's total is twice that.
    pub fn new(
        rate_hz: u32,
        frame_samples: usize,
        bitrate_bps: u32,
        complexity: u32,
    ) -> Result<Self, OpusError> {
        let mut err = 0;
        // SAFETY: MAPPING outlives the call; libopus copies it.
        let st = unsafe {
            ffi::opus_multistream_encoder_create(
                rate_hz as i32,
                2,
                STREAMS,
                COUPLED,
                MAPPING.as_ptr(),
                ffi::OPUS_APPLICATION_VOIP,
                &mut err,
            )
        };
        if st.is_null() || err != ffi::OPUS_OK {
            return Err(lib_err("creating the multistream encoder", err));
        }
        let enc = MsEncoder { st, frame_samples };
        enc.ctl(
            "setting the bitrate",
            ffi::OPUS_SET_BITRATE_REQUEST,
            (bitrate_bps * 2) as i32,
        )?;
        enc.ctl(
            "setting the complexity",
            ffi::OPUS_SET_COMPLEXITY_REQUEST,
            complexity as i32,
        )?;
        enc.ctl(
            "setting signal=voice",
            ffi::OPUS_SET_SIGNAL_REQUEST,
            ffi::OPUS_SIGNAL_VOICE,
        )?;
        Ok(enc)
    }

    fn ctl(&self, context: &'static str, request: i32, value: i32) -> Result<(), OpusError> {
        // SAFETY: SET requests take one opus_int32 by value.
        let r = unsafe { ffi::opus_multistream_encoder_ctl(self.st, request, value) };
        if r != ffi::OPUS_OK {
            return Err(lib_err(context, r));
        }
        Ok(())
    }

    /// Encoder lookahead in samples at the encoder rate (basis of the OpusHead pre-skip).
    pub fn lookahead(&self) -> Result<usize, OpusError> {
        let mut v: i32 = 0;
        // SAFETY: GET_LOOKAHEAD writes one opus_int32 through the pointer.
        let r = unsafe {
            ffi::opus_multistream_encoder_ctl(
                self.st,
                ffi::OPUS_GET_LOOKAHEAD_REQUEST,
                &mut v as *mut i32,
            )
        };
        if r != ffi::OPUS_OK {
            return Err(lib_err("reading the lookahead", r));
        }
        Ok(v.max(0) as usize)
    }

    /// Encodes one frame of interleaved [agent, customer] samples into `out`; returns its length.
    pub fn encode(&mut self, interleaved: &[f32], out: &mut [u8]) -> Result<usize, OpusError> {
        debug_assert_eq!(interleaved.len(), self.frame_samples * 2);
        // SAFETY: `interleaved` holds frame_samples * 2 floats; `out` is writable for its length.
        let n = unsafe {
            ffi::opus_multistream_encode_float(
                self.st,
                interleaved.as_ptr(),
                self.frame_samples as i32,
                out.as_mut_ptr(),
                out.len() as i32,
            )
        };
        if n < 0 {
            return Err(lib_err("encoding a frame", n));
        }
        Ok(n as usize)
    }
}

impl Drop for MsEncoder {
    fn drop(&mut self) {
        // SAFETY: st came from opus_multistream_encoder_create and is freed once.
        unsafe { ffi::opus_multistream_encoder_destroy(self.st) }
    }
}

pub struct MsDecoder {
    st: *mut ffi::OpusMSDecoder,
    rate_hz: u32,
}

// SAFETY: as for MsEncoder.
unsafe impl Send for MsDecoder {}

impl MsDecoder {
    pub fn new(rate_hz: u32, streams: u8, coupled: u8, mapping: &[u8]) -> Result<Self, OpusError> {
        let mut err = 0;
        // SAFETY: mapping has one byte per output channel; libopus copies it.
        let st = unsafe {
            ffi::opus_multistream_decoder_create(
                rate_hz as i32,
                mapping.len() as i32,
                streams as i32,
                coupled as i32,
                mapping.as_ptr(),
                &mut err,
            )
        };
        if st.is_null() || err != ffi::OPUS_OK {
            return Err(lib_err("creating the multistream decoder", err));
        }
        Ok(MsDecoder { st, rate_hz })
    }

    /// Decodes one packet into interleaved f32 (`channels` per frame); returns frames decoded.
    pub fn decode(
        &mut self,
        packet: &[u8],
        out: &mut [f32],
        channels: usize,
    ) -> Result<usize, OpusError> {
        // 120 ms is the longest Opus packet (RFC 6716 §3.2.5).
        let max_frames = (out.len() / channels).min(self.rate_hz as usize * 120 / 1000);
        // SAFETY: out is writable for max_frames * channels floats.
        let n = unsafe {
            ffi::opus_multistream_decode_float(
                self.st,
                packet.as_ptr(),
                packet.len() as i32,
                out.as_mut_ptr(),
                max_frames as i32,
                0,
            )
        };
        if n < 0 {
            return Err(lib_err("decoding a packet", n));
        }
        Ok(n as usize)
    }
}

impl Drop for MsDecoder {
    fn drop(&mut self) {
        // SAFETY: st came from opus_multistream_decoder_create and is freed once.
        unsafe { ffi::opus_multistream_decoder_destroy(self.st) }
    }
}
