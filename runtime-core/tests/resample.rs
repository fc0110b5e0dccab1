//! `FastResampleNode`: duration, frequency, channel separation, tail flush, timestamps,
//! quality.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use support::*;

fn manifest(target: u32, quality: &str) -> String {
    format!(
        "nodes: [{{id: resample, node_type: FastResampleNode, params: {{target_rate: {target}, quality: {quality}}}}}]"
    )
}

async fn resample(
    samples: &[f32],
    from: u32,
    to: u32,
    channels: u16,
    quality: &str,
    chunk: usize,
) -> (Vec<f32>, Vec<RuntimeData>) {
    let outputs = run_stream(
        &manifest(to, quality),
        chunks(samples, from, channels, chunk),
    )
    .await;
    let data: Vec<RuntimeData> = outputs.iter().map(|o| o.data.clone()).collect();
    (concat_audio(&outputs), data)
}

#[tokio::test]
async fn duration_is_kept_exactly_after_end_of_stream() {
    for &(from, to) in &[
        (48_000u32, 16_000u32),
        (16_000, 48_000),
        (44_100, 16_000),
        (22_050, 44_100),
    ] {
        for quality in ["Low", "Medium", "High"] {
            let input = sine(440.0, 0.5, from, 1.37);
            let (out, _) = resample(&input, from, to, 1, quality, 777).await;
            let expected = (input.len() as f64 * f64::from(to) / f64::from(from)).round() as usize;
            assert_eq!(out.len(), expected, "{from}->{to} {quality}");
        }
    }
}

#[tokio::test]
async fn a_tone_keeps_its_frequency() {
    for quality in ["Low", "Medium", "High"] {
        let input = sine(1000.0, 0.5, 48_000, 2.0);
        let (out, _) = resample(&input, 48_000, 16_000, 1, quality, 960).await;
        let freq = zero_crossing_frequency(&out[1600..out.len() - 1600], 16_000);
        assert!((freq - 1000.0).abs() < 2.0, "{quality}: {freq} Hz");
    }
}

#[tokio::test]
async fn channels_stay_separate() {
    let left = sine(440.0, 0.8, 48_000, 1.0);
    let right = vec![0.0f32; left.len()];
    let stereo = interleave(&[left, right]);
    let (out, data) = resample(&stereo, 48_000, 16_000, 2, "Medium", 960).await;
    assert!(data
        .iter()
        .all(|d| matches!(d, RuntimeData::Audio { channels: 2, .. })));
    let right_out = channel(&out, 2, 1);
    let peak = right_out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak < 1e-4, "silent channel leaked: peak {peak}");
    let left_out = channel(&out, 2, 0);
    let freq = zero_crossing_frequency(&left_out[800..left_out.len() - 800], 16_000);
    assert!((freq - 440.0).abs() < 2.0, "{freq}");
}

#[tokio::test]
async fn timestamps_advance_with_the_output_frames() {
    let input = sine(440.0, 0.5, 48_000, 1.0);
    let (_, data) = resample(&input, 48_000, 16_000, 1, "Medium", 480).await;
    let mut expected_next = 0u64;
    let mut total = 0u64;
    for d in &data {
        let RuntimeData::Audio {
            timestamp_us,
            samples,
            ..
        } = d
        else {
            continue;
        };
        assert!(
            timestamp_us.abs_diff(expected_next) <= 1,
            "timestamp {timestamp_us} expected {expected_next}"
        );
        total += samples.len() as u64;
        expected_next = total * 1_000_000 / 16_000;
    }
    assert_eq!(total, 16_000);
}

#[tokio::test]
async fn every_quality_is_clean_and_the_filtered_ones_reject_aliases() {
    let mut report = Vec::new();
    for quality in ["Low", "Medium", "High"] {
        // THD+N of a 1 kHz tone through a non-integer ratio.
        let input = sine(1000.0, 0.5, 44_100, 2.0);
        let (out, _) = resample(&input, 44_100, 16_000, 1, quality, 882).await;
        let thd_n = thd_n_db(&out, 1000.0, 16_000, 0.1);
        // A 10 kHz tone is above the 8 kHz output Nyquist: it should vanish, not alias.
        let input = sine(10_000.0, 0.5, 48_000, 1.0);
        let (out, _) = resample(&input, 48_000, 16_000, 1, quality, 960).await;
        let middle = &out[1600..out.len() - 1600];
        let rms = (middle.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / middle.len() as f64)
            .sqrt();
        let alias_db = 20.0 * (rms / (0.5 / 2f64.sqrt())).max(1e-12).log10();
        report.push((quality, thd_n, alias_db));
    }
    println!(
        "quality, THD+N dB (1 kHz, 44.1k->16k), alias level dB (10 kHz, 48k->16k): {report:?}"
    );
    // The live ratios (16 kHz sources to 48 kHz sinks and back): as clean.
    for quality in ["Medium", "High"] {
        for (from, to) in [(16_000, 48_000), (48_000, 16_000), (16_000, 8_000)] {
            let input = sine(1000.0, 0.5, from, 2.0);
            let (out, _) = resample(&input, from, to, 1, quality, from as usize / 50).await;
            let thd_n = thd_n_db(&out, 1000.0, to, 0.1);
            assert!(thd_n < -90.0, "{from} -> {to} {quality}: THD+N {thd_n}");
        }
    }
    for (quality, thd_n, alias_db) in &report {
        assert!(*thd_n < -40.0, "{quality}: THD+N {thd_n}");
        if *quality != "Low" {
            assert!(*thd_n < -90.0, "{quality}: THD+N {thd_n}");
            assert!(*alias_db < -90.0, "{quality}: alias {alias_db}");
        }
    }
}

#[tokio::test]
async fn audio_already_at_the_target_rate_passes_through_without_a_copy() {
    let samples = sine(440.0, 0.5, 16_000, 0.1);
    let ptr = samples.as_ptr();
    let outputs = run_stream(
        &manifest(16_000, "Medium"),
        vec![RuntimeData::audio(samples, 16_000, 1)],
    )
    .await;
    let RuntimeData::Audio { samples, .. } = &outputs[0].data else {
        panic!("audio")
    };
    assert_eq!(samples.as_ptr(), ptr);
}

#[tokio::test]
async fn declared_source_rate_mismatch_is_a_node_error() {
    let runner = remotemedia_runtime_core::transport::PipelineRunner::new().expect("runner");
    let manifest = std::sync::Arc::new(
        remotemedia_runtime_core::manifest::Manifest::from_yaml(
            "nodes: [{id: rs, node_type: AudioResampleNode, params: {source_rate: 44100, target_rate: 16000}}]",
        )
        .expect("valid"),
    );
    let err = runner
        .execute_unary(
            manifest,
            remotemedia_runtime_core::transport::TransportData::new(RuntimeData::audio(
                vec![0.0f32; 480],
                48_000,
                1,
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'rs' (AudioResampleNode) failed: input audio is 48000 Hz but source_rate is 44100"
    );
}

#[tokio::test]
async fn a_non_finite_sample_is_a_node_error_not_a_panic() {
    let runner = remotemedia_runtime_core::transport::PipelineRunner::new().expect("runner");
    let manifest = std::sync::Arc::new(
        remotemedia_runtime_core::manifest::Manifest::from_yaml(
            "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 16000}}]",
        )
        .expect("manifest"),
    );
    let mut samples = vec![0.1f32; 4800];
    samples[100] = f32::NAN;
    let err = runner
        .execute_collect(
            manifest,
            vec![remotemedia_runtime_core::transport::TransportData::new(
                RuntimeData::audio(samples, 48_000, 1),
            )],
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("node 'r' (FastResampleNode) failed: input audio sample 100 is NaN"),
        "{message}"
    );
    assert!(!message.contains("panicked"), "{message}");
}

#[tokio::test]
async fn an_awkward_ratio_keeps_its_exact_length_and_frequency() {
    // 767 999 Hz is coprime with 16 kHz: the sinc resampler serves it (bounded memory).
    let rate = 767_999;
    let input = sine(2000.0, 0.5, rate, 0.5);
    let frames = input.len();
    let outputs = run_stream(&manifest(16_000, "Medium"), chunks(&input, rate, 1, 15_360)).await;
    let output = concat_audio(&outputs);
    assert_eq!(
        output.len(),
        (frames as f64 * 16_000.0 / f64::from(rate)).round() as usize
    );
    let middle = &output[1000..output.len() - 1000];
    assert!((zero_crossing_frequency(middle, 16_000) - 2000.0).abs() < 20.0);
}
