// The remotemedia pipeline engine for JavaScript (browsers and Node.js): a thin layer over
// the wasm-bindgen exports of `remotemedia-wasm` that loads the module and gives sessions
// an async iterator.
import wasmInit, * as core from "./remotemedia_wasm.js";

let ready = null;

/** Loads the engine once (later calls return the same promise). In Node.js the `.wasm`
 * file is read next to this module; in a browser it is fetched from the same place. */
export function init(source) {
  if (!ready) {
    ready = (async () => {
      let module_or_path = source;
      if (module_or_path === undefined) {
        const url = new URL("./remotemedia_wasm_bg.wasm", import.meta.url);
        if (typeof process !== "undefined" && process.versions && process.versions.node) {
          const { readFile } = await import("node:fs/promises");
          module_or_path = await readFile(url);
        } else {
          module_or_path = url;
        }
      }
      await wasmInit({ module_or_path });
    })();
  }
  return ready;
}

function loaded() {
  if (!ready) throw new Error("remotemedia: call and await init() first");
}

/** Every node type this build runs, with its params as JSON Schema. */
export function nodes() {
  loaded();
  return core.nodes();
}

/** Checks a manifest (JSON or YAML text) exactly as the native runtime does. */
export function validate(manifest) {
  loaded();
  return core.validate(manifest);
}

/** Runs the pipeline once on `input`; resolves to its single output `{nodeId, data, ...}`. */
export async function executeUnary(manifest, input) {
  loaded();
  return core.executeUnary(manifest, input);
}

/** A streaming session: `send`, `recv` (null when quiescent), `close`, `for await`. */
export class Session {
  constructor(inner) {
    this.inner = inner;
  }
  get sessionId() {
    return this.inner.sessionId;
  }
  send(data) {
    return this.inner.send(data);
  }
  recv() {
    return this.inner.recv();
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

/** Starts a session; resolves once every node is initialized. */
export async function createSession(manifest) {
  loaded();
  return new Session(await core.createSession(manifest));
}
