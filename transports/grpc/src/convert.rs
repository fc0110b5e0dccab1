//! Lossless conversion between `RuntimeData` and its protobuf form.

use crate::proto;
use remotemedia_runtime_core::data::{AudioSamples, PixelFormat, RuntimeData, TensorDtype};
use remotemedia_runtime_core::transport::TransportData;
use std::sync::Arc;
use tonic::Status;

/// A client's input → `TransportData`: the item, checked
/// ([`RuntimeData::check`]), with the client's sequence number and metadata. `what`
/// names the item in errors (e.g. `inputs[2]`).
pub fn input_from_proto(mut item: proto::DataItem, what: &str) -> Result<TransportData, Status> {
    let sequence = item.sequence;
    let metadata = std::mem::take(&mut item.metadata);
    let mut input = TransportData::new(from_proto(item, what)?).with_metadata_map(metadata);
    input.sequence = sequence;
    Ok(input)
}

// Audio samples travel as little-endian f32; on a little-endian host (every supported
// target) that is the in-memory layout, so conversion shares buffers instead of copying.
#[cfg(target_endian = "big")]
compile_error!("remotemedia-grpc assumes a little-endian host for zero-copy audio");

/// Protobuf → `RuntimeData`, checked ([`RuntimeData::check`]: rates, channels, whole
/// frames, video and tensor sizes). `what` names the item in errors (e.g. `inputs[2]`).
pub fn from_proto(item: proto::DataItem, what: &str) -> Result<RuntimeData, Status> {
    use proto::data_item::Payload;
    let invalid = |why: String| Status::invalid_argument(format!("{what}: {why}"));
    let bad = |e: remotemedia_runtime_core::Error| match e {
        remotemedia_runtime_core::Error::InvalidData(why) => invalid(why),
        other => invalid(other.to_string()),
    };
    let payload = item.payload.ok_or_else(|| {
        invalid("the data item is empty (set audio, video, text, json, binary or tensor)".into())
    })?;
    let data = match payload {
        Payload::Audio(a) => RuntimeData::Audio {
            channels: u16::try_from(a.channels)
                .map_err(|_| invalid(format!("audio has {} channels", a.channels)))?,
            samples: AudioSamples::from_bytes(a.samples).map_err(bad)?,
            sample_rate: a.sample_rate,
            stream_id: a.stream_id.map(Arc::from),
            timestamp_us: a.timestamp_us,
        },
        Payload::Video(v) => RuntimeData::Video {
            format: PixelFormat::parse_named(&v.format).map_err(bad)?,
            pixel_data: v.pixel_data,
            width: v.width,
            height: v.height,
            codec: v.codec,
            frame_number: v.frame_number,
            timestamp_us: v.timestamp_us,
            is_keyframe: v.is_keyframe,
            stream_id: v.stream_id.map(Arc::from),
        },
        Payload::Text(t) => RuntimeData::Text(t),
        Payload::Json(j) => RuntimeData::Json(
            serde_json::from_str(&j)
                .map_err(|e| invalid(format!("json payload is not JSON: {e}")))?,
        ),
        Payload::Binary(b) => RuntimeData::Binary(b),
        Payload::Tensor(t) => RuntimeData::Tensor {
            dtype: TensorDtype::parse_named(&t.dtype).map_err(bad)?,
            shape: t
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<_, _>>()
                .map_err(|_| invalid("a tensor dimension does not fit in memory".to_owned()))?,
            data: t.data,
        },
    };
    data.checked().map_err(bad)
}

/// `RuntimeData` → protobuf.
pub fn to_proto(data: &RuntimeData) -> proto::DataItem {
    use proto::data_item::Payload;
    let payload = match data {
        RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
        } => Payload::Audio(proto::AudioData {
            samples: samples.as_bytes().clone(),
            sample_rate: *sample_rate,
            channels: u32::from(*channels),
            stream_id: stream_id.as_deref().map(str::to_owned),
            timestamp_us: *timestamp_us,
        }),
        RuntimeData::Video {
            pixel_data,
            width,
            height,
            format,
            codec,
            frame_number,
            timestamp_us,
            is_keyframe,
            stream_id,
        } => Payload::Video(proto::VideoData {
            pixel_data: pixel_data.clone(),
            width: *width,
            height: *height,
            format: format.as_str().to_owned(),
            codec: codec.clone(),
            frame_number: *frame_number,
            timestamp_us: *timestamp_us,
            is_keyframe: *is_keyframe,
            stream_id: stream_id.as_deref().map(str::to_owned),
        }),
        RuntimeData::Text(t) => Payload::Text(t.clone()),
        RuntimeData::Json(v) => Payload::Json(v.to_string()),
        RuntimeData::Binary(b) => Payload::Binary(b.clone()),
        RuntimeData::Tensor { data, shape, dtype } => Payload::Tensor(proto::TensorData {
            data: data.clone(),
            shape: shape.iter().map(|&d| d as u64).collect(),
            dtype: dtype.as_str().to_owned(),
        }),
        // RuntimeData is non-exhaustive: a variant this crate does not know yet is named
        // rather than dropped.
        other => {
            Payload::Json(serde_json::json!({"unsupported_type": other.type_name()}).to_string())
        }
    };
    proto::DataItem {
        payload: Some(payload),
        sequence: None,
        metadata: Default::default(),
    }
}

/// A pipeline output → protobuf.
pub fn output_to_proto(output: &TransportData, fallback_sequence: u64) -> proto::Output {
    proto::Output {
        node_id: output.node_id().unwrap_or_default().to_owned(),
        sequence: output.sequence.unwrap_or(fallback_sequence),
        data: Some(to_proto(&output.data)),
        metadata: output.metadata.clone(),
        input_sequence: output.input_sequence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn round_trip(data: RuntimeData) -> RuntimeData {
        from_proto(to_proto(&data), "item").expect("round trip")
    }

    #[test]
    fn every_variant_round_trips_losslessly() {
        let items = vec![
            RuntimeData::Audio {
                samples: vec![0.5f32, -0.25, 1.0, f32::MIN_POSITIVE].into(),
                sample_rate: 48_000,
                channels: 2,
                stream_id: Some("audio:1".into()),
                timestamp_us: 123_456,
            },
            RuntimeData::Video {
                pixel_data: Bytes::from_static(&[1, 2, 3, 4, 5, 6]),
                width: 2,
                height: 1,
                format: PixelFormat::Rgb24,
                codec: None,
                frame_number: 7,
                timestamp_us: 99,
                is_keyframe: true,
                stream_id: Some("video:0".into()),
            },
            RuntimeData::Text("héllo".into()),
            RuntimeData::Json(
                serde_json::json!({"a": [1, 2.5, null, {"b": "c"}], "big": 9007199254740993u64}),
            ),
            RuntimeData::Binary(Bytes::from_static(&[0, 255, 7])),
            RuntimeData::Tensor {
                data: Bytes::from(vec![0u8; 24]),
                shape: vec![2, 3],
                dtype: TensorDtype::F32,
            },
        ];
        for item in items {
            assert_eq!(round_trip(item.clone()), item);
        }
    }

    #[test]
    fn audio_bytes_are_shared_not_copied() {
        let data = RuntimeData::audio(vec![0.25f32; 960], 48_000, 1);
        let RuntimeData::Audio { samples, .. } = &data else {
            unreachable!()
        };
        let item = to_proto(&data);
        let Some(proto::data_item::Payload::Audio(a)) = &item.payload else {
            unreachable!()
        };
        assert_eq!(a.samples.as_ptr(), samples.as_bytes().as_ptr());
    }

    fn audio_item(bytes: usize, channels: u32) -> proto::DataItem {
        proto::DataItem {
            payload: Some(proto::data_item::Payload::Audio(proto::AudioData {
                samples: Bytes::from(vec![0u8; bytes]),
                sample_rate: 16_000,
                channels,
                stream_id: None,
                timestamp_us: 0,
            })),
            sequence: None,
            metadata: Default::default(),
        }
    }

    #[test]
    fn ragged_audio_is_rejected_with_its_position() {
        let status = from_proto(audio_item(12, 2), "inputs[3]").unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "inputs[3]: audio has 3 samples, not a whole number of 2-channel frames"
        );
    }

    #[test]
    fn a_video_frame_of_the_wrong_size_is_rejected() {
        let item = proto::DataItem {
            payload: Some(proto::data_item::Payload::Video(proto::VideoData {
                pixel_data: Bytes::from(vec![0u8; 10]),
                width: 2,
                height: 2,
                format: "rgb24".into(),
                codec: None,
                frame_number: 0,
                timestamp_us: 0,
                is_keyframe: true,
                stream_id: None,
            })),
            sequence: None,
            metadata: Default::default(),
        };
        let status = from_proto(item, "data frame 0").unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "data frame 0: a 2x2 rgb24 video frame has 12 bytes, got 10"
        );
    }

    #[test]
    fn input_sequence_and_metadata_reach_the_transport_data() {
        let mut item = audio_item(8, 1);
        item.sequence = Some(41);
        item.metadata.insert("utterance".into(), "u-7".into());
        let input = input_from_proto(item, "inputs[0]").expect("valid");
        assert_eq!(input.sequence, Some(41));
        assert_eq!(input.metadata["utterance"], "u-7");
    }
}
