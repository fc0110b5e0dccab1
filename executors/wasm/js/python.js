// The Python host of the remotemedia WASM engine: runs a manifest's Python nodes in
// Pyodide, on the JavaScript side. The engine (Rust, in wasm) validates a node's
// `multiprocess:` block and calls `open / process / flush / close`; this file loads
// Pyodide the first time a Python node starts (once per page), installs the package's
// pure-Python SDK (`remotemedia.Node`, `@remotemedia.node`), fetches the node's modules
// from its `python_path` (URLs of the page's origin) or runs its inline `source`, and
// hands items to `remotemedia._browser.Host`, which calls the node class.

/** Largest Python module file fetched for a node (bytes). */
export const MAX_MODULE_BYTES = 4 * 1024 * 1024;

/** The SDK's files, under `python/remotemedia/` next to this module. */
const SDK_FILES = ["__init__.py", "sdk.py", "_hosting.py", "_browser.py"];

/** Where fetched modules and the SDK live in Pyodide's file system. */
const ROOT = "/home/pyodide/remotemedia";

const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

/** The origin modules may come from: the page's; without a page (Node.js), the base URL's. */
function allowedOrigin(base) {
  if (!isNode && globalThis.location?.origin) return globalThis.location.origin;
  return new URL(base).origin;
}

/** The text at `url`, or `null` when there is nothing there (HTTP 404, no such file). */
async function fetchText(url) {
  if (url.protocol === "file:") {
    const { readFile, stat } = await import("node:fs/promises");
    try {
      const info = await stat(url);
      if (!info.isFile()) return null;
      if (info.size > MAX_MODULE_BYTES) throw new Error(`${url.href} has ${info.size} bytes, over ${MAX_MODULE_BYTES}`);
      return await readFile(url, "utf8");
    } catch (e) {
      if (e.code === "ENOENT" || e.code === "ENOTDIR") return null;
      throw e;
    }
  }
  const response = await fetch(url);
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${url.href} answered HTTP ${response.status}`);
  const text = await response.text();
  if (text.length > MAX_MODULE_BYTES) throw new Error(`${url.href} has over ${MAX_MODULE_BYTES} bytes`);
  return text;
}

/** The default base URL: the page's, or the current directory's in Node.js. */
async function defaultBase() {
  if (!isNode && globalThis.document?.baseURI) return globalThis.document.baseURI;
  if (!isNode && globalThis.location?.href) return globalThis.location.href;
  const { pathToFileURL } = await import("node:url");
  return pathToFileURL(process.cwd() + "/").href;
}

function failure(phase, message) {
  return ["error", phase, message, ""];
}

/** An answer of the Python host: an array at once, or a promise of one when the node's
 * method was a coroutine (its proxy is released once settled). */
function settled(answer) {
  if (Array.isArray(answer)) return answer;
  return (async () => {
    try {
      return await answer;
    } finally {
      answer.destroy?.();
    }
  })();
}

/** Runs Python nodes for the engine; one per page (the package's `init()` makes it). */
export class PythonHost {
  /**
   * @param {object} options
   * @param {string|URL} options.pyodideURL where Pyodide's files are (the package's `pyodide/`)
   * @param {string|URL} options.sdkURL where the SDK's `remotemedia/` package is (the package's `python/`)
   * @param {(event: {stage: string, message: string, elapsedMs: number}) => void} [options.onProgress]
   */
  constructor({ pyodideURL, sdkURL, onProgress }) {
    this.pyodideURL = new URL(pyodideURL);
    this.sdkURL = new URL(sdkURL);
    this.onProgress = onProgress ?? (() => {});
    this.loading = null;
    this.pyodide = null;
    this.host = null;
    /** Module name → the URL it was loaded from (one module per name in the page). */
    this.moduleOrigins = new Map();
    /** python_path URL → its directory in Pyodide's file system. */
    this.pathDirs = new Map();
  }

  progress(stage, message, started) {
    try {
      this.onProgress({ stage, message, elapsedMs: Math.round(performance.now() - started) });
    } catch {
      // A progress listener's failure is not the pipeline's.
    }
  }

  /** Whether Pyodide is loaded. */
  get loaded() {
    return this.host !== null;
  }

  /** Loads Pyodide and the SDK once; later calls wait for the same load. */
  load() {
    if (!this.loading) {
      this.loading = this.#load().catch((e) => {
        this.loading = null;
        throw e;
      });
    }
    return this.loading;
  }

  async #load() {
    const started = performance.now();
    this.progress("python-loading", `loading Python (Pyodide) from ${this.pyodideURL.href}`, started);
    const { loadPyodide } = await import(new URL("pyodide.mjs", this.pyodideURL).href);
    const indexURL = isNode ? (await import("node:url")).fileURLToPath(this.pyodideURL) : this.pyodideURL.href;
    const pyodide = await loadPyodide({ indexURL, stdout: (line) => console.log(line), stderr: (line) => console.error(line) });
    const python = pyodide.runPython("import sys; sys.version.split()[0]");
    this.progress("python-loaded", `Pyodide ${pyodide.version} (Python ${python}) loaded`, started);
    pyodide.FS.mkdirTree(`${ROOT}/sdk/remotemedia`);
    for (const file of SDK_FILES) {
      const text = await fetchText(new URL(`remotemedia/${file}`, this.sdkURL));
      if (text === null) throw new Error(`the Python SDK file remotemedia/${file} is missing from ${this.sdkURL.href}`);
      pyodide.FS.writeFile(`${ROOT}/sdk/remotemedia/${file}`, text);
    }
    pyodide.runPython(`import sys; sys.path.insert(0, ${JSON.stringify(`${ROOT}/sdk`)})`);
    const make = pyodide.runPython(`
from pyodide.ffi import to_js as _to_js
from remotemedia._browser import Host as _Host
def _make_host():
    return _Host(_to_js)
_make_host`);
    this.host = make();
    make.destroy();
    this.pyodide = pyodide;
    this.progress("python-ready", "Python SDK ready", started);
  }

  /** A python_path entry's directory in Pyodide's file system (made once per URL). */
  #dirFor(pathURL) {
    let dir = this.pathDirs.get(pathURL);
    if (!dir) {
      dir = `${ROOT}/path/${this.pathDirs.size}`;
      this.pyodide.FS.mkdirTree(dir);
      this.pathDirs.set(pathURL, dir);
      this.pyodide.globals.get("sys").path.insert(0, dir);
    }
    return dir;
  }

  /** Fetches `name` (a dotted module) from the first python_path URL that has it into
   * the file system; returns the URLs tried when none had it. */
  async #fetchModule(name, pathURLs, nodeId, started) {
    const known = this.moduleOrigins.get(name);
    const parts = name.split(".");
    const tried = [];
    for (const pathURL of pathURLs) {
      for (const relative of [`${parts.join("/")}.py`, `${parts.join("/")}/__init__.py`]) {
        const url = new URL(relative, pathURL);
        tried.push(url.href);
        if (known !== undefined) {
          if (known === url.href) return { found: true };
          continue;
        }
        const text = await fetchText(url);
        if (text === null) continue;
        const dir = this.#dirFor(pathURL);
        // Parent packages' __init__.py, where there are some (else namespace packages).
        for (let i = 1; i < parts.length; i++) {
          const pkg = parts.slice(0, i).join("/");
          this.pyodide.FS.mkdirTree(`${dir}/${pkg}`);
          const init = await fetchText(new URL(`${pkg}/__init__.py`, pathURL));
          if (init !== null) this.pyodide.FS.writeFile(`${dir}/${pkg}/__init__.py`, init);
        }
        const file = `${dir}/${relative}`;
        this.pyodide.FS.mkdirTree(file.slice(0, file.lastIndexOf("/")));
        this.pyodide.FS.writeFile(file, text);
        this.moduleOrigins.set(name, url.href);
        this.progress("python-module", `node '${nodeId}': module ${name} from ${url.href}`, started);
        return { found: true };
      }
    }
    if (known !== undefined && pathURLs.length > 0) {
      return {
        conflict: `module ${name} is already loaded in this page from ${known}; a page's Python has one module per name, and this node's python_path points elsewhere`,
      };
    }
    return { found: false, tried };
  }

  /** Opens a node instance: `["instance", n]` or `["error", phase, message, traceback]`. */
  async open(spec) {
    const started = performance.now();
    await this.load();
    const base = spec.baseUrl ?? (await defaultBase());
    const origin = allowedOrigin(base);
    const pathURLs = [];
    for (const entry of spec.pythonPath ?? []) {
      let url;
      try {
        url = new URL(entry.endsWith("/") ? entry : `${entry}/`, base);
      } catch {
        return failure("import", `multiprocess.python_path entry ${JSON.stringify(entry)} is not a URL relative to ${base}`);
      }
      if (url.origin !== origin) {
        return failure("import", `multiprocess.python_path entry ${JSON.stringify(entry)} is ${url.href}, not of this page's origin (${origin}): Python modules are only loaded from the page's own origin`);
      }
      pathURLs.push(url.href);
    }
    const missing = [];
    for (const name of spec.modules ?? []) {
      let answer;
      try {
        answer = await this.#fetchModule(name, pathURLs, spec.nodeId, started);
      } catch (e) {
        return failure("import", `cannot load module ${name}: ${e.message}`);
      }
      if (answer.conflict) return failure("import", answer.conflict);
      if (!answer.found) missing.push(...answer.tried);
    }
    const opened = await settled(this.host.open(spec.nodeType, spec.nodeId, spec.params ?? "{}", spec.modules ?? [], spec.source ?? undefined));
    if (opened[0] === "error" && missing.length > 0) {
      opened[2] += ` (looked for it at ${missing.join(", ")})`;
    }
    if (opened[0] !== "error") this.progress("python-node", `node '${spec.nodeId}' (${spec.nodeType}) ready`, started);
    return opened;
  }

  /** One item (`[kind, ...fields]`), handed to Python as positional arguments. */
  process(instance, item) {
    return settled(this.host.process(instance, ...item));
  }

  flush(instance) {
    return settled(this.host.flush(instance));
  }

  close(instance) {
    return settled(this.host.close(instance));
  }
}
