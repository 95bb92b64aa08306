//! The Ogg page checksum (RFC 3533 §6: CRC-32, polynomial 0x04c11db7, no reflection, init 0).
//!
//! Needed by recovery, which validates pages itself to find the last intact one and re-seals the
//! final page with the end-of-stream flag; the `ogg` crate does not expose its CRC.

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut j = 0;
        while j < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            j += 1;
        }
        t[i] = r;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

/// CRC of a whole page whose checksum field (bytes 22..26) is already zeroed.
pub fn crc32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ TABLE[(((crc >> 24) as u8) ^ b) as usize]
    })
}
