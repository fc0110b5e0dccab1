// The remotemedia pipeline engine for JavaScript (browsers and Node.js): a thin layer over
// the wasm-bindgen exports of `remotemedia-wasm` that loads the module, gives sessions an
// async iterator, and runs Python nodes in Pyodide (loaded the first time a manifest with
// Python nodes starts).
import wasmInit, * as core from "./remotemedia_wasm.js";
import { PythonHost } from "./python.js";

let ready = null;
let python = null;

const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

/**
 * Loads the engine once (later calls return the same promise).
 *
 * `options` (all optional):
 * - `module`: the `.wasm` bytes, a `Response` or a URL (default: `remotemedia_wasm_bg.wasm`
 *   next to this module; Node.js reads the file, a page fetches it);
 * - `pyodideURL`: where Pyodide's files are (default: the package's `pyodide/`);
 * - `onProgress(event)`: told `{stage, message, elapsedMs}` while Python loads
 *   (`python-loading`, `python-loaded`, `python-ready`, `python-module`, `python-node`).
 *
 * For compatibility, `options` may also be the module itself.
 */
export function init(options = {}) {
  if (!ready) {
    ready = (async () => {
      const settings =
        options instanceof Uint8Array || options instanceof ArrayBuffer || options instanceof URL ||
        typeof options === "string" || (typeof Response !== "undefined" && options instanceof Response)
          ? { module: options }
          : options ?? {};
      let module_or_path = settings.module;
      if (module_or_path === undefined) {
        const url = new URL("./remotemedia_wasm_bg.wasm", import.meta.url);
        if (isNode) {
          const { readFile } = await import("node:fs/promises");
          module_or_path = await readFile(url);
        } else {
          module_or_path = url;
        }
      }
      await wasmInit({ module_or_path });
      python = new PythonHost({
        pyodideURL: settings.pyodideURL ?? new URL("./pyodide/", import.meta.url),
        sdkURL: new URL("./python/", import.meta.url),
        onProgress: settings.onProgress,
      });
      core.setPythonHost(python);
    })();
  }
  return ready;
}

function loaded() {
  if (!ready) throw new Error("remotemedia: call and await init() first");
}

function baseOf(options) {
  const base = options?.baseUrl;
  return base === undefined || base === null ? undefined : String(base);
}

/** `options.untrusted`: the manifest comes from someone the page does not trust (a user,
 * another site): it is held to the rules a server applies to its clients' manifests — no
 * executor-block settings, so no Python code or module paths of its own. */
function untrustedOf(options) {
  return options?.untrusted === true;
}

/** Every node type this build runs, with its params as JSON Schema. */
export function nodes() {
  loaded();
  return core.nodes();
}

/** Checks a manifest (JSON or YAML text) exactly as the native runtime does; returns
 * `{name, nodes, python}` (`python`: ids of the nodes that run in Pyodide).
 * `options.untrusted` as for `createSession`. */
export function validate(manifest, options) {
  loaded();
  return core.validate(manifest, untrustedOf(options));
}

/** Loads Python (Pyodide) now instead of when the first Python node starts, e.g. while a
 * page shows its progress. Resolves once Python is ready. */
export async function loadPython() {
  loaded();
  await ready;
  return python.load();
}

/** Runs the pipeline once on `input`; resolves to its single output `{nodeId, data, ...}`.
 * `options.baseUrl`: the URL Python nodes' `python_path` entries are relative to
 * (default: the page's URL; in Node.js the current directory). */
export async function executeUnary(manifest, input, options) {
  loaded();
  await ready;
  return core.executeUnary(manifest, input, baseOf(options), untrustedOf(options));
}

/**
 * Runs a whole recording (`{samples: Float32Array, sampleRate, channels?, timestampUs?,
 * streamId?}`) through a session inside the engine, in blocks of `options.blockFrames`
 * frames (default 20 ms) as a live source would deliver them, then ends the input;
 * resolves to every output in order. `options.baseUrl` as for `executeUnary`.
 */
export function runAudio(manifest, audio, options) {
  return recording("runAudio", manifest, audio, options, false);
}

/**
 * How fast a pipeline runs on this machine: `runAudio`'s loop over the recording (same
 * arguments), with the outputs counted inside the engine instead of handed to JavaScript.
 * Resolves to `{blocks, outputs, startMs, ms, realTime}`: `startMs` the session's start
 * (its nodes initialized), `ms` the loop from the first block to the last output,
 * `realTime` how many times faster than real time that is. A page can use it to check
 * that a device keeps up before it goes live.
 */
export function measureAudio(manifest, audio, options) {
  return recording("measureAudio", manifest, audio, options, true);
}

/** `runAudio` (`measure` false) and `measureAudio` (true): one engine call. */
async function recording(name, manifest, audio, options, measure) {
  loaded();
  await ready;
  if (!isAudio(audio)) throw new TypeError(`${name} takes audio: {samples: Float32Array, sampleRate, ...}`);
  return core.runAudio(manifest, audio.samples, audio.sampleRate, audio.channels, audio.timestampUs,
    audio.streamId, options?.blockFrames, baseOf(options), untrustedOf(options), measure);
}

/** Whether `data` is audio (`{samples: Float32Array, ...}`): sent through the engine's
 * audio entry, which takes the parts directly. */
function isAudio(data) {
  return data !== null && typeof data === "object" && data.samples instanceof Float32Array;
}

/** A streaming session: `send`, `recv` (null when quiescent), `process` (both at once),
 * `close`, `for await`. */
export class Session {
  constructor(inner) {
    this.inner = inner;
  }
  get sessionId() {
    return this.inner.sessionId;
  }
  send(data) {
    if (isAudio(data)) {
      return this.inner.sendAudio(data.samples, data.sampleRate, data.channels, data.timestampUs, data.streamId);
    }
    return this.inner.send(data);
  }
  recv() {
    return this.inner.recv();
  }
  /** Sends one input and resolves to every output it led to (an array), once the
   * pipeline is quiescent: `send` then `recv` until `null`, in one call. */
  process(data) {
    if (isAudio(data)) {
      return this.inner.processAudio(data.samples, data.sampleRate, data.channels, data.timestampUs, data.streamId);
    }
    return this.inner.process(data);
  }
  close() {
    return this.inner.close();
  }
  /** Every output until the session has ended (after `close()`, or a failure). */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      const output = await this.inner.next();
      if (output === null) return;
      yield output;
    }
  }
}

/** Starts a session; resolves once every node is initialized (Python nodes: once Pyodide
 * and their modules are loaded). `options.baseUrl` as for `executeUnary`;
 * `options.untrusted`: hold the manifest to a server's rules for client manifests. */
export async function createSession(manifest, options) {
  loaded();
  await ready;
  return new Session(await core.createSession(manifest, baseOf(options), untrustedOf(options)));
}
