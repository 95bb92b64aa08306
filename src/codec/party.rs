//! One party's mono Opus encoder, and the joining of two parties' packets into the two-stream
//! packet a callrec file holds.
//!
//! A callrec file (see the `codec` module) is Ogg Opus with channel mapping family 1, two streams,
//! none coupled: every Ogg packet is a multistream packet holding the agent's Opus packet in
//! self-delimiting framing (RFC 6716 Appendix B) followed by the customer's in normal framing
//! (RFC 7845 §5.1.1.2: "all but the last stream use self-delimiting framing"). That is what
//! libopus's multistream encoder makes from two mono encoders run one after the other; keeping the
//! two encoders apart lets the recorder skip one party's encoder while that party is quiet
//! (`quiet`) and lets an import run them on two threads.
//!
//! Pure: no I/O, no allocation beyond the packet handed back.

use crate::config::EncoderConfig;

/// Largest packet libopus can emit for one frame (RFC 6716 §3.2.1 limits a frame to 1275 bytes).
const MAX_PACKET: usize = 1500;

#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    #[error("libopus: {0}")]
    Opus(#[from] opus::Error),
    #[error("libopus returned a packet it cannot parse back: {0}")]
    Packet(String),
}

/// One party's mono encoder with the recorder's settings: VOIP application, voice signal, the
/// per-party bitrate, the box's complexity.
pub struct PartyEncoder {
    enc: opus::Encoder,
    buf: Vec<u8>,
    complexity: i32,
}

impl PartyEncoder {
    /// `max_bandwidth`: the widest band the source has content in (an import of 8 kHz µ-law);
    /// `Fullband` leaves the encoder exactly as the recorder's.
    pub fn new(e: &EncoderConfig, max_bandwidth: opus::Bandwidth) -> Result<Self, PartyError> {
        let mut enc = opus::Encoder::new(e.rate_hz, opus::Channels::Mono, opus::Application::Voip)?;
        enc.set_bitrate(opus::Bitrate::Bits(e.bitrate_bps as i32))?;
        enc.set_complexity(e.complexity as i32)?;
        enc.set_signal(opus::Signal::Voice)?;
        if max_bandwidth != opus::Bandwidth::Fullband {
            enc.set_max_bandwidth(max_bandwidth)?;
        }
        Ok(PartyEncoder {
            enc,
            buf: vec![0u8; MAX_PACKET],
            complexity: e.complexity as i32,
        })
    }

    /// Encoder lookahead in samples at the encoder rate (the basis of the pre-skip).
    pub fn lookahead(&mut self) -> Result<usize, PartyError> {
        Ok(self.enc.get_lookahead()?.max(0) as usize)
    }

    /// Sets the complexity for the next frames (libopus takes it between any two frames,
    /// `OPUS_SET_COMPLEXITY`); a no-op when it is already that.
    pub fn set_complexity(&mut self, complexity: i32) -> Result<(), PartyError> {
        if complexity != self.complexity {
            self.enc.set_complexity(complexity)?;
            self.complexity = complexity;
        }
        Ok(())
    }

    /// Encodes one frame of mono samples into a new packet.
    pub fn encode(&mut self, frame: &[f32]) -> Result<Vec<u8>, PartyError> {
        let n = self.enc.encode_float(frame, &mut self.buf)?;
        Ok(self.buf[..n].to_vec())
    }
}

/// RFC 6716 §3.2.1 frame length: one byte below 252, else two.
fn push_len(out: &mut Vec<u8>, n: usize) {
    if n < 252 {
        out.push(n as u8);
    } else {
        let first = 252 + (n & 3);
        out.push(first as u8);
        out.push(((n - first) >> 2) as u8);
    }
}

/// The packet a party's stream carries for a frame that was not encoded: its TOC byte alone, a
/// code 0 packet whose one frame is empty. RFC 6716 §3.2.1 lets a frame be 0 bytes ("DTX or
/// lost"); decoders run their loss concealment / comfort noise for it, exactly as for the
/// packets libopus's own DTX (`OPUS_SET_DTX`) emits. `toc` is the TOC of the party's last real
/// packet, so mode, bandwidth and frame size stay what the decoder last saw.
pub fn dtx_packet(toc: u8) -> Vec<u8> {
    vec![toc & 0xfc]
}

/// Joins the agent's and the customer's packets into one two-stream packet: the first in
/// self-delimiting framing (RFC 6716 Appendix B), the second unchanged.
pub fn join_streams(agent: &[u8], customer: &[u8]) -> Result<Vec<u8>, PartyError> {
    let parsed = opus::packet::parse(agent).map_err(|e| PartyError::Packet(e.to_string()))?;
    let frames = &parsed.frames;
    let mut out = Vec::with_capacity(agent.len() + customer.len() + 3);
    let config = parsed.toc & 0xfc;
    match frames.len() {
        0 => return Err(PartyError::Packet("a packet without frames".into())),
        1 => {
            // Code 0: TOC, the frame's length, the frame.
            out.push(config);
            push_len(&mut out, frames[0].len());
            out.extend_from_slice(frames[0]);
        }
        n => {
            // Code 3, VBR, no padding: TOC, frame count, every frame's length (the last one is
            // what self-delimiting adds), the frames.
            out.push(config | 3);
            out.push(0x80 | n as u8);
            for f in frames {
                push_len(&mut out, f.len());
            }
            for f in frames {
                out.extend_from_slice(f);
            }
        }
    }
    out.extend_from_slice(customer);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_delimited_lengths() -> Result<(), PartyError> {
        let mut v = Vec::new();
        push_len(&mut v, 251);
        push_len(&mut v, 252);
        push_len(&mut v, 1275);
        assert_eq!(v, vec![251, 252, 0, 255, 255]);
        // A multi-frame packet (code 3) is rewritten with every length stated.
        let frame = [0x11u8; 3];
        let code1 = [0x01u8 | (12 << 3), 0x11, 0x11, 0x11, 0x11, 0x11, 0x11];
        let joined = join_streams(&code1, &[0xaa])?;
        assert_eq!(joined[0] & 3, 3);
        assert_eq!(joined[1], 0x82);
        assert_eq!(&joined[2..4], &[3, 3]);
        assert_eq!(&joined[4..7], &frame);
        assert_eq!(joined.last(), Some(&0xaa));
        Ok(())
    }

    #[test]
    fn a_dtx_packet_is_a_toc_with_an_empty_frame() -> Result<(), PartyError> {
        // SILK-only wideband 20 ms (config 9, RFC 6716 §3.1), whatever code the last packet had.
        let toc = (9 << 3) | 1;
        assert_eq!(dtx_packet(toc), vec![9 << 3]);
        // Self-delimited as the first stream: TOC then a zero length.
        let joined = join_streams(&dtx_packet(toc), &dtx_packet(toc))?;
        assert_eq!(joined, vec![9 << 3, 0, 9 << 3]);
        Ok(())
    }
}
