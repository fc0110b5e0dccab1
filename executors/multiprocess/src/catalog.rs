//! The Python node catalog (`nodes/python`, the `remotemedia-nodes` package): type names,
//! params and descriptions, so manifests using them are checked before any worker starts.

use remotemedia_runtime_core::nodes::audio::VADNode;
use remotemedia_runtime_core::nodes::registry::{NodeRegistry, PythonNodeType};
use remotemedia_runtime_core::nodes::schema::ParamsSchema;
use remotemedia_runtime_core::nodes::Node;

/// The catalog's node types.
pub fn catalog() -> Vec<PythonNodeType> {
    vec![
        PythonNodeType::new("EchoNode")
            .with_schema(ParamsSchema::new())
            .with_description("test node: returns every input unchanged, of every data type"),
        // Same params and event contract as the native VADNode.
        PythonNodeType::new("SileroVADNode")
            .with_schema(<VADNode as Node>::params_schema().unwrap_or_default())
            .with_description(
                "voice activity events (Json) followed by the unchanged audio, with the Silero VAD model (onnxruntime); 16 kHz or 8 kHz mono",
            ),
        PythonNodeType::new("SpeechRecognitionNode")
            .with_schema(
                ParamsSchema::new()
                    .choice(
                        "engine",
                        Some("whisper-small"),
                        &["whisper-small", "whisper-tiny", "pocketsphinx"],
                        "recognition engine, offline: whisper-small (Whisper small, int8 ONNX), whisper-tiny (Whisper tiny.en, CTranslate2; English) or pocketsphinx (US English)",
                    )
                    .string(
                        "language",
                        Some("en-us"),
                        "language of the engine's model (whisper-small: a Whisper language code; en-us counts as en)",
                    )
                    .choice(
                        "output",
                        Some("text"),
                        &["text", "json"],
                        "text: a Text transcript; json: {text, engine, language, start_s, end_s, segments: [{start_s, end_s, text}]} in media time",
                    )
                    .boolean(
                        "emit_empty",
                        Some(false),
                        "emit an empty transcript when nothing was recognized",
                    ),
            )
            .with_description("16 kHz mono utterance Audio -> transcript (Text, or Json with times), offline; one model per worker process, shared by sessions"),
        PythonNodeType::new("TextToSpeechNode")
            .with_schema(
                ParamsSchema::new()
                    .choice(
                        "engine",
                        Some("piper"),
                        &["piper", "festival", "espeak-ng", "espeak"],
                        "speech synthesizer: piper (neural, voice en_US-joe-medium), festival (HTS, cmu_us_slt_arctic_hts), espeak-ng (formant, en-us; `espeak` is the same engine)",
                    )
                    .string(
                        "voice",
                        None,
                        "voice name (default: the engine's; espeak-ng --voices lists espeak-ng's)",
                    )
                    .integer("rate", Some(175), 80, 500, "speaking rate in words per minute")
                    .integer(
                        "sample_rate",
                        Some(22_050),
                        8_000,
                        96_000,
                        "sample rate of the produced audio",
                    ),
            )
            .with_description("Text -> mono Audio, one item per input text"),
    ]
}

/// Registers every catalog type in `registry`.
pub fn register_catalog(registry: &mut NodeRegistry) {
    for node in catalog() {
        registry.register_python_type(node);
    }
}
