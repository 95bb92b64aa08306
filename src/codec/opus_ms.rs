//! A safe wrapper over libopus's multistream decoder (via `opusic-sys`).
//!
//! The `opus` crate only wraps the single-stream API; callrec needs the multistream API to read
//! two uncoupled mono streams from one packet (RFC 7845 §5.1.1.2, mapping family 1). (Writing
//! joins two mono encoders' packets, see `party`.) The wrapper owns its libopus state and frees it
//! on drop; nothing here allocates per frame.

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

pub struct MsDecoder {
    st: *mut ffi::OpusMSDecoder,
    rate_hz: u32,
}

// SAFETY: the decoder state is only touched through &mut self; libopus keeps no thread-local state.
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
