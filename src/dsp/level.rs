//! Levels: RMS in dBFS over a frame, the measure behind `vox` start/stop and the metrics.

/// RMS level of `samples` in dBFS (full scale = 1.0); silence gives -120.
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let mean_sq = samples.iter().map(|&x| x * x).sum::<f32>() / samples.len() as f32;
    (10.0 * mean_sq.max(1e-12).log10()).max(-120.0)
}

/// RMS level in dBFS of one channel of an interleaved buffer.
pub fn rms_dbfs_channel(interleaved: &[f32], channels: usize, channel: usize) -> f32 {
    let n = interleaved.len() / channels;
    if n == 0 {
        return -120.0;
    }
    let mean_sq = interleaved
        .iter()
        .skip(channel)
        .step_by(channels)
        .map(|&x| x * x)
        .sum::<f32>()
        / n as f32;
    (10.0 * mean_sq.max(1e-12).log10()).max(-120.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_sine_is_minus_3() {
        let s: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.1).sin()).collect();
        assert!((rms_dbfs(&s) + 3.01).abs() < 0.1);
        assert_eq!(rms_dbfs(&[0.0; 10]), -120.0);
        let inter: Vec<f32> = s.iter().flat_map(|&x| [x, 0.0]).collect();
        assert!((rms_dbfs_channel(&inter, 2, 0) + 3.01).abs() < 0.1);
        assert_eq!(rms_dbfs_channel(&inter, 2, 1), -120.0);
    }
}
