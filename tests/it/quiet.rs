//! Quiet frames (`codec::quiet`, issue 9): what skipping a quiet party's encoder must not lose —
//! quiet speech, word onsets, a third voice in the room — and that the files stay standard Ogg
//! Opus (opusinfo, ffprobe, ffmpeg's own decoder).

use callrec::capture::synth::Conversation;
use callrec::codec::ogg_read;
use callrec::codec::ogg_write::OpusFileWriter;
use callrec::config::{EncoderConfig, QuietFramesMode, SyntheticSpeech};
use callrec::dsp::level::rms_dbfs;

const RATE: usize = 16_000;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// White noise at `dbfs` RMS from a fixed LCG.
fn noise(len: usize, dbfs: f32, seed: u32) -> Vec<f32> {
    let mut s = seed;
    let amp = 10f32.powf(dbfs / 20.0) * 3f32.sqrt();
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

/// `seconds` of one party of the synthetic conversation (digital silence between turns),
/// scaled so that its talking stretches are at `dbfs` RMS.
fn speech(seed: u64, party: usize, seconds: usize, dbfs: f32) -> Vec<f32> {
    let mut conv = Conversation::new(seed, RATE as u32);
    let v: Vec<f32> = (0..RATE * seconds)
        .map(|_| {
            let (a, c) = conv.next_pair();
            if party == 0 {
                a
            } else {
                c
            }
        })
        .collect();
    let talking: Vec<f32> = v.iter().copied().filter(|x| *x != 0.0).collect();
    let gain = 10f32.powf((dbfs - rms_dbfs(&talking)) / 20.0);
    v.into_iter().map(|x| x * gain).collect()
}

fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Encodes agent/customer with `mode` and decodes the file back; also returns how many party
/// frames were stored as DTX.
fn round_trip(
    agent: &[f32],
    customer: &[f32],
    mode: QuietFramesMode,
) -> TestResult<(Vec<f32>, Vec<f32>, u64)> {
    let e = EncoderConfig {
        quiet_frames: mode,
        ..EncoderConfig::default()
    };
    let mut w = OpusFileWriter::new(Vec::new(), &e, 1, &[])?;
    let n = e.frame_samples();
    let mut frame = vec![0f32; n * 2];
    for (fa, fc) in agent.chunks_exact(n).zip(customer.chunks_exact(n)) {
        for i in 0..n {
            frame[2 * i] = fa[i];
            frame[2 * i + 1] = fc[i];
        }
        w.push_frame(&frame)?;
    }
    let skipped = w.party_frames().1;
    let data = w.finish()?;
    let d = ogg_read::decode(&data, RATE as u32)?;
    assert_eq!(d.frames(), agent.len() / n * n, "decoded length");
    Ok((d.channel(0), d.channel(1), skipped))
}

/// 5 ms RMS envelope.
fn envelope(x: &[f32]) -> Vec<f32> {
    x.chunks(RATE / 200)
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt())
        .collect()
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    let mean = |x: &[f32]| x[..n].iter().map(|v| f64::from(*v)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (f64::from(a[i]) - ma, f64::from(b[i]) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt().max(1e-30)
}

/// Start of every turn: the first sample after ≥ 300 ms of digital silence.
fn turn_starts(clean: &[f32]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut silent = 0usize;
    for (i, x) in clean.iter().enumerate() {
        if *x == 0.0 {
            silent += 1;
        } else {
            if silent >= RATE * 3 / 10 {
                starts.push(i);
            }
            silent = 0;
        }
    }
    starts
}

/// Where the 5 ms envelope first exceeds `threshold` at or after envelope index `from`.
fn onset(env: &[f32], from: usize, threshold: f32) -> Option<usize> {
    (from..env.len()).find(|&i| env[i] > threshold)
}

#[test]
fn quiet_speech_at_minus_45_dbfs_keeps_its_onsets_and_envelope() -> TestResult {
    let seconds = 30;
    let clean = speech(4, 1, seconds, -45.0);
    let customer = add(&clean, &noise(clean.len(), -64.0, 7));
    let agent = noise(clean.len(), -60.0, 8);
    let (_, dtx, skipped) = round_trip(&agent, &customer, QuietFramesMode::Dtx)?;
    let (_, every, _) = round_trip(&agent, &customer, QuietFramesMode::Encode)?;
    // The saving is real: the agent (noise only) and the customer's pauses skip the encoder.
    let party_frames = 2 * (clean.len() / 320) as u64;
    assert!(
        skipped * 10 > party_frames * 6,
        "only {skipped} of {party_frames} party frames skipped"
    );
    let (src_env, dtx_env, every_env) = (envelope(&customer), envelope(&dtx), envelope(&every));
    // Threshold between the line noise (-64 dBFS) and the speech: -54 dBFS.
    let threshold = 10f32.powf(-54.0 / 20.0);
    let starts = turn_starts(&clean);
    assert!(starts.len() >= 3, "turns: {}", starts.len());
    let mut worst_ms = 0f32;
    for s in starts {
        let from = (s / (RATE / 200)).saturating_sub(20);
        let Some(src) = onset(&src_env, from, threshold) else {
            continue;
        };
        let got = onset(&dtx_env, from, threshold).ok_or("onset lost")?;
        let err_ms = (got as f32 - src as f32).abs() * 5.0;
        worst_ms = worst_ms.max(err_ms);
    }
    assert!(worst_ms <= 20.0, "worst onset error {worst_ms} ms");
    let c_dtx = correlation(&src_env, &dtx_env);
    let c_every = correlation(&src_env, &every_env);
    eprintln!("-45 dBFS speech: onset error ≤ {worst_ms} ms, envelope correlation {c_dtx:.3} (every frame encoded: {c_every:.3}), {skipped}/{party_frames} party frames skipped");
    assert!(c_dtx >= 0.9, "envelope correlation {c_dtx:.3}");
    assert!(c_dtx >= c_every - 0.02, "{c_dtx:.3} vs {c_every:.3}");
    Ok(())
}

#[test]
fn a_third_voice_10_db_over_the_background_is_kept() -> TestResult {
    let seconds = 20;
    // The agent never speaks; someone behind them does, 10 dB over the office noise.
    let voice = speech(11, 0, seconds, -46.0);
    let agent = add(&voice, &noise(voice.len(), -56.0, 3));
    let customer = noise(voice.len(), -64.0, 4);
    let (dtx, _, _) = round_trip(&agent, &customer, QuietFramesMode::Dtx)?;
    let (every, _, _) = round_trip(&agent, &customer, QuietFramesMode::Encode)?;
    let (src_env, dtx_env, every_env) = (envelope(&agent), envelope(&dtx), envelope(&every));
    let c = correlation(&src_env, &dtx_env);
    // Level of the voice's stretches in the source and in the file.
    let talking: Vec<usize> = voice
        .chunks(RATE / 200)
        .enumerate()
        .filter(|(_, w)| w.iter().any(|x| *x != 0.0))
        .map(|(i, _)| i)
        .collect();
    let level = |env: &[f32]| {
        let p = talking.iter().map(|&i| env[i] * env[i]).sum::<f32>() / talking.len() as f32;
        10.0 * p.log10()
    };
    let (l_src, l_dtx, l_every) = (level(&src_env), level(&dtx_env), level(&every_env));
    eprintln!("third voice: envelope correlation {c:.3}, level {l_src:.1} dBFS in, {l_dtx:.1} out ({l_every:.1} with every frame encoded)");
    assert!(c >= 0.9, "envelope correlation {c:.3}");
    // SILK at 16 kbit/s itself loses a little level on a voice this quiet; skipping quiet
    // frames must not lose more.
    assert!((l_src - l_dtx).abs() < 3.0, "{l_src:.1} vs {l_dtx:.1} dBFS");
    assert!(
        (l_every - l_dtx).abs() < 1.0,
        "{l_every:.1} vs {l_dtx:.1} dBFS"
    );
    Ok(())
}

#[test]
fn skipped_frames_decode_to_the_background_level_and_pauses_to_silence() -> TestResult {
    // 3 s of line noise, 2 s of speech, 5 s of noise: the last seconds are DTX and decode
    // as comfort noise near the background level, not as silence and not louder.
    let len = RATE * 10;
    let mut clean = vec![0f32; len];
    let talk = speech(2, 0, 10, -25.0);
    clean[RATE * 3..RATE * 5].copy_from_slice(&talk[RATE * 3..RATE * 5]);
    let customer = add(&clean, &noise(len, -64.0, 9));
    let agent = vec![0f32; len];
    let (a, c, _) = round_trip(&agent, &customer, QuietFramesMode::Dtx)?;
    let tail = rms_dbfs(&c[RATE * 7..]);
    assert!(
        (-72.0..-58.0).contains(&tail),
        "comfort noise at {tail:.1} dBFS"
    );
    assert!(
        rms_dbfs(&a) < -90.0,
        "digital silence stays silent: {}",
        rms_dbfs(&a)
    );
    Ok(())
}

/// `callrec encode` of a realistic call (the bench's `conversation` input) with quiet frames
/// stored as DTX: opusinfo has no warning, ffprobe's duration is the input's, ffmpeg's own Opus
/// decoder reads every packet (DTX ones included) to the same length, and the skipped party
/// frames are really there.
#[test]
fn a_realistic_call_with_dtx_frames_is_standard_ogg_opus() -> TestResult {
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("call.wav");
    let seconds = 20;
    let mut conv = Conversation::with_speech(3, RATE as u32, SyntheticSpeech::Conversation);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec)?;
    for _ in 0..RATE * seconds {
        let (a, c) = conv.next_pair();
        w.write_sample((a * 32767.0) as i16)?;
        w.write_sample((c * 32767.0) as i16)?;
    }
    w.finalize()?;
    let out = dir.path().join("call.opus");
    let o = std::process::Command::new(crate::common::bin())
        .args([
            "--config",
            "/nonexistent.toml",
            "encode",
            "--quiet-frames",
            "dtx",
        ])
        .arg(&wav)
        .arg(&out)
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    crate::common::check_opus_file(&out, seconds as i64 * 1000, 0);
    // ffmpeg decodes with its own Opus decoder (not libopus): every packet, the right length.
    let pcm = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&out)
        .args(["-f", "s16le", "-ar", "16000", "-"])
        .output()?;
    assert!(
        pcm.status.success(),
        "{}",
        String::from_utf8_lossy(&pcm.stderr)
    );
    let frames = pcm.stdout.len() / 4;
    assert!(
        frames.abs_diff(RATE * seconds) <= RATE / 50,
        "ffmpeg decoded {frames} frames"
    );
    // The file holds DTX packets: count the agent's (first, self-delimited) streams of length 0.
    let data = std::fs::read(&out)?;
    let info = ogg_read::decode(&data, RATE as u32)?;
    assert_eq!(info.frames(), RATE * seconds);
    let dtx = ogg_packets(&data)
        .iter()
        .skip(2)
        .filter(|p| p.len() > 1 && p[1] == 0)
        .count();
    let packets = RATE * seconds / 320;
    assert!(
        dtx * 5 > packets,
        "only {dtx} of {packets} agent packets are DTX"
    );
    Ok(())
}

/// The packets of an Ogg stream (one logical stream, no checks: ogg_read checked the file).
fn ogg_packets(data: &[u8]) -> Vec<Vec<u8>> {
    let (mut packets, mut cur, mut i) = (Vec::new(), Vec::new(), 0usize);
    while i + 27 <= data.len() {
        let nseg = usize::from(data[i + 26]);
        let mut p = i + 27 + nseg;
        for &seg in &data[i + 27..i + 27 + nseg] {
            cur.extend_from_slice(&data[p..p + usize::from(seg)]);
            p += usize::from(seg);
            if seg < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        i = p;
    }
    packets
}
