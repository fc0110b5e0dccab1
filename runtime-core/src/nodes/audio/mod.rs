//! Native audio nodes.

mod chunker;

pub use chunker::AudioChunkerNode;

pub(crate) fn factories() -> Vec<crate::nodes::builtin::BuiltinFactory> {
    vec![chunker::factory()]
}
