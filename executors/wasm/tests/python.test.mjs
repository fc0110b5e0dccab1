// Python nodes in the WASM engine (Pyodide) under Node.js's own test runner:
//   REMOTEMEDIA_WASM_PKG=<package dir from `cargo xtask wasm`> node --test executors/wasm/tests/
import test from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";

const pkg = process.env.REMOTEMEDIA_WASM_PKG;
if (!pkg) throw new Error("set REMOTEMEDIA_WASM_PKG to the package built by `cargo xtask wasm`");
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const rm = await import(pathToFileURL(path.join(pkg, "index.js")).href);
const progress = [];
await rm.init({ onProgress: (event) => progress.push(event) });

/** Every output of a session fed `inputs`, then closed. */
async function run(manifest, inputs, options) {
  const s = await rm.createSession(manifest, options);
  const out = [];
  for (const input of inputs) {
    await s.send(input);
    for (let o = await s.recv(); o !== null; o = await s.recv()) out.push(o);
  }
  await s.close();
  for await (const o of s) out.push(o);
  return out;
}

/** A manifest with one Python node whose class is given inline. */
function inline(id, nodeType, source) {
  return JSON.stringify({ nodes: [{ id, node_type: nodeType, multiprocess: { source } }] });
}

const SHOUT = `
import remotemedia

@remotemedia.node("Shout")
class Shout(remotemedia.Node):
    def initialize(self):
        self.count = 0

    def process(self, data):
        self.count += 1
        if isinstance(data, str):
            return data.upper()
        if isinstance(data, dict):
            return {**data, "seen": self.count}
        if isinstance(data, bytes):
            return data[::-1]
        return data
`;

test("a manifest without Python nodes does not load Python", async () => {
  const out = await run("nodes: [{id: p, node_type: PassThrough}]", ["x"]);
  assert.deepEqual(out.map((o) => o.data), ["x"]);
  assert.equal(progress.length, 0, JSON.stringify(progress));
});

test("an inline Python node gets text, JSON and bytes, keeps its state, and answers with its node id", async () => {
  assert.deepEqual(rm.validate(inline("shout", "Shout", SHOUT)).python, ["shout"]);
  const out = await run(inline("shout", "Shout", SHOUT), ["hello", { a: 1 }, new Uint8Array([1, 2, 3]), { b: null }]);
  assert.deepEqual(out.map((o) => o.nodeId), ["shout", "shout", "shout", "shout"]);
  assert.equal(out[0].data, "HELLO");
  assert.deepEqual(out[1].data, { a: 1, seen: 2 });
  assert.deepEqual(out[2].data, new Uint8Array([3, 2, 1]));
  assert.deepEqual(out[3].data, { b: null, seen: 4 });
  // Python loaded once, with its progress reported.
  const stages = progress.map((p) => p.stage);
  assert.deepEqual(stages.filter((s) => s === "python-loading"), ["python-loading"]);
  assert.ok(stages.includes("python-ready") && stages.includes("python-node"), stages.join());
});

test("every session has its own instance; Python loads once per page", async () => {
  const a = await rm.createSession(inline("shout", "Shout", SHOUT));
  const b = await rm.createSession(inline("shout", "Shout", SHOUT));
  for (const s of [a, a, b]) await s.send({});
  const seen = async (s) => { const r = []; for (let o = await s.recv(); o !== null; o = await s.recv()) r.push(o.data.seen); return r; };
  assert.deepEqual(await seen(a), [1, 2]);
  assert.deepEqual(await seen(b), [1]);
  await a.close();
  await b.close();
  assert.equal(progress.filter((p) => p.stage === "python-loading").length, 1);
});

test("Rust → Python → Rust: audio reaches Python as float32 and comes back", async () => {
  const source = `
import array
import remotemedia

@remotemedia.node("Halve")
class Halve(remotemedia.Node):
    def process(self, audio):
        assert isinstance(audio.samples, memoryview) and audio.samples.format == "f", type(audio.samples)
        halved = array.array("f", [float(x) / 2 for x in audio.samples])
        return [remotemedia.Audio(halved, audio.sample_rate, audio.channels, audio.stream_id, audio.timestamp_us),
                {"frames": audio.frames, "rate": audio.sample_rate, "first": float(audio.samples[0])}]
`;
  const manifest = JSON.stringify({
    nodes: [
      { id: "frames", node_type: "AudioChunkerNode", params: { chunk_size: 160 } },
      { id: "halve", node_type: "Halve", multiprocess: { source } },
      { id: "level", node_type: "AudioLevelNode" },
      { id: "info", node_type: "TypeFilterNode", params: { types: ["json"] } },
    ],
    connections: [
      { from: "frames", to: "halve" },
      { from: "halve", to: "level" },
      { from: "halve", to: "info" },
    ],
  });
  const tone = Float32Array.from({ length: 320 }, () => 0.5);
  const out = await run(manifest, [{ samples: tone, sampleRate: 8000, channels: 1, streamId: "audio:0" }]);
  const level = out.filter((o) => o.nodeId === "level" && o.data.rms_db !== undefined);
  const info = out.filter((o) => o.nodeId === "info");
  assert.equal(level.length, 2);
  assert.equal(level[0].data.rms_db, -12.04); // 0.25 full scale
  assert.equal(level[1].data.timestamp_ms, 20);
  assert.deepEqual(info.map((o) => o.data), [
    { frames: 160, rate: 8000, first: 0.5 },
    { frames: 160, rate: 8000, first: 0.5 },
  ]);
});

test("a module on python_path loads from the manifest's URL, as the native runtime finds it on disk", async () => {
  const manifestPath = path.join(root, "examples/pipelines/hybrid-gate.yaml");
  const manifest = readFileSync(manifestPath, "utf8");
  const speech = Float32Array.from({ length: 16000 }, (_, i) => (i < 8000 ? Math.sin(i / 5) * 0.3 : Math.sin(i / 5) * 0.001));
  const out = await run(manifest, [{ samples: speech, sampleRate: 16000, channels: 1 }], {
    baseUrl: pathToFileURL(manifestPath).href,
  });
  const levels = out.filter((o) => o.nodeId === "level").map((o) => o.data);
  assert.equal(levels.length, 50);
  assert.ok(levels[0].rms_db > -15, JSON.stringify(levels[0]));
  // The gate holds 200 ms after the loud half, then mutes the quiet half.
  assert.ok(levels[30].rms_db > -70, JSON.stringify(levels[30]));
  assert.equal(levels[49].rms_db, -120);
  assert.ok(progress.some((p) => p.stage === "python-module" && p.message.includes("noise_gate")));
});

test("async nodes, generators and flush", async () => {
  const source = `
import asyncio
import remotemedia

@remotemedia.node("Words")
class Words(remotemedia.Node):
    def initialize(self):
        self.held = []

    async def process(self, text):
        await asyncio.sleep(0)
        for word in text.split():
            if word.endswith("?"):
                self.held.append(word)
            else:
                yield word

    def flush(self):
        return self.held
`;
  const out = await run(inline("words", "Words", source), ["one two?", "three"]);
  assert.deepEqual(out.map((o) => o.data), ["one", "three", "two?"]);
});

test("a Python exception reaches the caller with the node id and the traceback", async () => {
  const source = `
import remotemedia

@remotemedia.node("Picky")
class Picky(remotemedia.Node):
    def process(self, data):
        if data == "bad":
            raise ValueError("cannot take " + data)
        return data
`;
  const s = await rm.createSession(inline("picky", "Picky", source));
  await s.send("good");
  assert.equal((await s.recv()).data, "good");
  await s.send("bad");
  await assert.rejects(s.recv(), (e) => {
    assert.equal(e.nodeId, "picky");
    assert.match(e.message, /^node 'picky' \(Picky\) failed: Python exception in process\(\): ValueError: cannot take bad\nTraceback \(most recent call last\):/);
    assert.match(e.message, /File "<multiprocess.source>", line 8, in process/);
    assert.doesNotMatch(e.message, /_browser|sdk\.py/);
    return true;
  });
  // The session has ended; another session of the same node works.
  await assert.rejects(s.send("good"), (e) => /closed|ended|failed/.test(e.message));
  const again = await run(inline("picky", "Picky", source), ["fine"]);
  assert.equal(again[0].data, "fine");
});

test("start-up failures name the node: missing class, missing module, other origins, initialize()", async () => {
  await assert.rejects(rm.createSession(inline("x", "Nope", "import remotemedia\n")), (e) =>
    e.nodeId === "x" && /failed to start: Python exception in import\(\): LookupError: no Python node class 'Nope' was found/.test(e.message));
  const base = pathToFileURL(path.join(root, "examples/pipelines/")).href;
  await assert.rejects(
    rm.createSession("nodes: [{id: m, node_type: Gone, multiprocess: {python_path: [./python], modules: [no_such_module]}}]", { baseUrl: base }),
    (e) => e.nodeId === "m" && /ModuleNotFoundError: No module named 'no_such_module'/.test(e.message) &&
      e.message.includes(`${base}python/no_such_module.py`),
  );
  await assert.rejects(
    rm.createSession("nodes: [{id: o, node_type: X, multiprocess: {python_path: ['http://elsewhere.example/py'], modules: [m]}}]", { baseUrl: base }),
    (e) => e.nodeId === "o" && /is http:\/\/elsewhere.example\/py\/, not of this page's origin/.test(e.message),
  );
  const failing = `
import remotemedia

@remotemedia.node("Heavy")
class Heavy(remotemedia.Node):
    def initialize(self):
        raise RuntimeError("model file missing")
`;
  await assert.rejects(rm.createSession(inline("h", "Heavy", failing)), (e) =>
    e.nodeId === "h" && /Python exception in initialize\(\): RuntimeError: model file missing/.test(e.message));
});

test("the multiprocess block is checked as natively; settings a page cannot honour are refused", () => {
  assert.throws(() => rm.validate("nodes: [{id: a, node_type: A, multiprocess: {modules: ['../x']}}]"),
    (e) => e.message === "invalid manifest: node 'a' (A): multiprocess.modules: \"../x\" is not a module name (names like my_nodes or pkg.nodes)");
  assert.throws(() => rm.validate("nodes: [{id: a, node_type: A, multiprocess: {python_executable: /usr/bin/python3}}]"),
    /node 'a' \(A\): multiprocess.python_executable: a browser has no interpreter to choose/);
  assert.throws(() => rm.validate("nodes: [{id: a, node_type: A, multiprocess: {env: {X: '1'}}}]"),
    /multiprocess.env: a browser has no process environment/);
  assert.throws(() => rm.validate("nodes: [{id: a, node_type: A, docker: {}}]"),
    (e) => e.nodeId === "a" && /needs the 'docker' executor, which is not available here \(available: native, multiprocess\)/.test(e.message));
  assert.deepEqual(rm.validate("nodes: [{id: a, node_type: A, executor: multiprocess}]").python, ["a"]);
});

test("process_timeout_ms is checked when the call returns", async () => {
  const source = `
import time
import remotemedia

@remotemedia.node("Slow")
class Slow(remotemedia.Node):
    def process(self, data):
        time.sleep(0.2)
        return data
`;
  const manifest = JSON.stringify({ nodes: [{ id: "slow", node_type: "Slow", multiprocess: { source, process_timeout_ms: 50 } }] });
  const s = await rm.createSession(manifest);
  await s.send("x");
  await assert.rejects(s.recv(), (e) => e.nodeId === "slow" && /process\(\) took \d+ ms, over multiprocess.process_timeout_ms \(50 ms\)/.test(e.message));
});

test("an untrusted manifest may not bring Python code or module paths", async () => {
  const manifest = inline("x", "Shout", SHOUT);
  const refused = (e) => e.nodeId === "x" &&
    e.message === "node 'x' (Shout): multiprocess.source is not allowed in manifests from clients (the server's operator can allow it)";
  assert.throws(() => rm.validate(manifest, { untrusted: true }), refused);
  await assert.rejects(rm.createSession(manifest, { untrusted: true }), refused);
  await assert.rejects(rm.executeUnary(manifest, "hi", { untrusted: true }), refused);
  await assert.rejects(
    rm.createSession("nodes: [{id: m, node_type: X, multiprocess: {python_path: [./py], modules: [m]}}]", { untrusted: true }),
    /multiprocess.modules is not allowed in manifests from clients/,
  );
  // The page's own manifests are trusted.
  assert.deepEqual(rm.validate(manifest).python, ["x"]);
});

test("a module file over 4 MiB is refused naming it", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "rm-wasm-big-"));
  try {
    writeFileSync(path.join(dir, "huge.py"), "#" + "x".repeat(5 * 1024 * 1024) + "\n");
    await assert.rejects(
      rm.createSession("nodes: [{id: h, node_type: Huge, multiprocess: {python_path: ['.'], modules: [huge]}}]",
        { baseUrl: pathToFileURL(dir + "/").href }),
      (e) => e.nodeId === "h" && /cannot load module huge: .*huge\.py has 5242882 bytes, over 4194304/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
