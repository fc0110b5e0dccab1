"""RemoteMedia's Python node catalog.

| node type | what it does |
|---|---|
| `EchoNode` | returns every input unchanged (proves lossless transport of every data type) |
| `SileroVADNode` | voice activity events with the Silero VAD ONNX model (onnxruntime) |
| `SpeechRecognitionNode` | utterance audio -> transcript, offline (pocketsphinx, bundled en-US model) |
| `TextToSpeechNode` | text -> audio (espeak-ng) |

The runtime finds these classes through the `remotemedia.nodes` entry points; importing a
module registers its class with `@remotemedia.node` too. Nothing is downloaded at run time:
models come from installed packages.
"""

__version__ = "0.4.0"
