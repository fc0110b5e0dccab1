//! Native audio nodes: exact, streaming, and flushing their tails at end of stream.

mod accumulator;
mod balance;
mod chunker;
mod clipping;
pub(crate) mod dsp;
mod format_converter;
mod gain;
mod level;
mod resample;
mod silence;
pub(crate) mod streams;
mod vad;

pub use accumulator::{AudioBufferAccumulatorNode, AudioBufferAccumulatorParams};
pub use balance::{ChannelBalanceNode, ChannelBalanceParams};
pub use chunker::{AudioChunkerNode, AudioChunkerParams};
pub use clipping::{ClippingDetectorNode, ClippingDetectorParams};
pub use format_converter::{AudioFormatConverterNode, AudioFormatConverterParams, PcmFormat};
pub use gain::{AudioGainNode, AudioGainParams};
pub use level::{AudioLevelNode, AudioLevelParams};
pub use resample::{FastResampleNode, FastResampleParams, RateSetting, ResampleQuality};
pub use silence::{SilenceDetectorNode, SilenceDetectorParams};
pub use vad::{VADNode, VadParams};

pub(crate) fn factories() -> Vec<crate::nodes::builtin::BuiltinFactory> {
    vec![
        chunker::factory(),
        resample::factory(),
        format_converter::factory(),
        gain::factory(),
        level::factory(),
        silence::factory(),
        clipping::factory(),
        balance::factory(),
        vad::factory(),
        accumulator::factory(),
    ]
}
