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
mod vad;

pub use accumulator::AudioBufferAccumulatorNode;
pub use balance::ChannelBalanceNode;
pub use chunker::AudioChunkerNode;
pub use clipping::ClippingDetectorNode;
pub use format_converter::{AudioFormatConverterNode, PcmFormat};
pub use gain::AudioGainNode;
pub use level::AudioLevelNode;
pub use resample::{FastResampleNode, ResampleQuality};
pub use silence::SilenceDetectorNode;
pub use vad::VADNode;

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
