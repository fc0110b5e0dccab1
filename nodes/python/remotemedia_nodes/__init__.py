"""RemoteMedia's Python node catalog.

| node type | what it does |
|---|---|
| `EchoNode` | returns every input unchanged (proves lossless transport of every data type) |
| `SileroVADNode` | voice activity events with the Silero VAD ONNX model (onnxruntime) |
| `SpeechRecognitionNode` | utterance audio -> transcript, offline (Whisper small ONNX, Whisper tiny.en, PocketSphinx) |
| `TextToSpeechNode` | text -> audio (Piper, festival, espeak-ng) |

The runtime finds these classes through the `remotemedia.nodes` entry points; importing a
module registers its class with `@remotemedia.node` too. Nothing is downloaded at run time:
models come from installed packages. The model nodes share their worker process between
sessions (`share=True`): each model is loaded once per process.
"""

__version__ = "0.4.0"
