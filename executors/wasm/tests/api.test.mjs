// The JavaScript API of remotemedia-wasm under Node.js's own test runner:
//   REMOTEMEDIA_WASM_PKG=<package dir from `cargo xtask wasm`> node --test executors/wasm/tests/
import test from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { pathToFileURL } from "node:url";

const pkg = process.env.REMOTEMEDIA_WASM_PKG;
if (!pkg) throw new Error("set REMOTEMEDIA_WASM_PKG to the package built by `cargo xtask wasm`");
const rm = await import(pathToFileURL(path.join(pkg, "index.js")).href);
await rm.init();

test("nodes() lists the built-in native nodes with their params", () => {
  const types = rm.nodes().map((n) => n.node_type);
  for (const t of ["PassThrough", "FastResampleNode", "AudioChunkerNode", "VADNode", "AudioLevelNode", "CalculatorNode"]) {
    assert.ok(types.includes(t), `${t} in ${types}`);
  }
  const chunker = rm.nodes().find((n) => n.node_type === "AudioChunkerNode");
  assert.equal(chunker.params.properties.chunk_size.type, "integer");
});

test("validate() accepts YAML and JSON and rejects like the native runtime", () => {
  const yaml = "metadata: {name: demo}\nnodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 160}}]";
  assert.deepEqual(rm.validate(yaml), { name: "demo", nodes: ["c"], python: [] });
  const json = JSON.stringify({ nodes: [{ id: "p", node_type: "PassThrough" }] });
  assert.deepEqual(rm.validate(json).nodes, ["p"]);
  // The native runtime's message, word for word (`remotemedia validate` prints the same).
  assert.throws(
    () => rm.validate("nodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 0}}]"),
    (e) => e instanceof Error && e.nodeId === "c" &&
      e.message === "node 'c' (AudioChunkerNode): param 'chunk_size': value 0 is out of range 1..=1048576",
  );
  assert.throws(() => rm.validate("nodes: [{id: x, node_type: NoSuchNode}]"), (e) => e.nodeId === "x" && /NoSuchNode/.test(e.message));
  assert.throws(() => rm.validate("nodes: [[["), (e) => e instanceof Error && !e.nodeId);
});

test("executeUnary() returns the single output with its node id", async () => {
  const out = await rm.executeUnary("nodes: [{id: calc, node_type: CalculatorNode}]", { operation: "add", operands: [2, 3] });
  assert.equal(out.nodeId, "calc");
  assert.equal(out.sequence, 0);
  assert.equal(out.inputSequence, null);
  assert.deepEqual(out.data, { result: 5, operation: "add" });
  await assert.rejects(
    rm.executeUnary("nodes: [{id: calc, node_type: CalculatorNode}]", { operation: "divide", operands: [1, 0] }),
    (e) => e instanceof Error && e.nodeId === "calc" && /division by zero/.test(e.message),
  );
});

test("a session re-frames audio bit-exactly and flushes at close", async () => {
  const s = await rm.createSession("nodes: [{id: frames, node_type: AudioChunkerNode, params: {chunk_size: 320}}]");
  const input = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i / 7) * 0.5);
  await s.send({ samples: input, sampleRate: 16000, channels: 1 });
  const got = [];
  for (let o = await s.recv(); o !== null; o = await s.recv()) got.push(o);
  assert.deepEqual(got.map((o) => o.data.samples.length), [320, 320, 320]);
  assert.equal(got[0].nodeId, "frames");
  assert.equal(got[1].data.sampleRate, 16000);
  assert.equal(got[1].data.timestampUs, 20000);
  await s.close();
  for await (const o of s) got.push(o);
  assert.deepEqual(got.map((o) => o.data.samples.length), [320, 320, 320, 40]);
  const joined = new Float32Array(1000);
  let at = 0;
  for (const o of got) { joined.set(o.data.samples, at); at += o.data.samples.length; }
  assert.deepEqual(joined, input);
});

test("process() sends an input and resolves to the outputs it led to", async () => {
  const s = await rm.createSession("nodes: [{id: frames, node_type: AudioChunkerNode, params: {chunk_size: 160}}]");
  const first = await s.process({ samples: new Float32Array(400), sampleRate: 8000 });
  assert.deepEqual(first.map((o) => [o.nodeId, o.data.samples.length, o.data.timestampUs]), [["frames", 160, 0], ["frames", 160, 20000]]);
  assert.deepEqual(await s.process({ samples: new Float32Array(10), sampleRate: 8000, timestampUs: 50000 }), []);
  await s.close();
  const rest = [];
  for await (const o of s) rest.push(o.data.samples.length);
  assert.deepEqual(rest, [90]);
  const calc = await rm.createSession("nodes: [{id: calc, node_type: CalculatorNode}]");
  await assert.rejects(calc.process({ operation: "divide", operands: [1, 0] }), (e) => e.nodeId === "calc");
});

test("runAudio() runs a whole recording block by block, as the session loop would", async () => {
  const yaml = "nodes: [{id: level, node_type: AudioLevelNode}]";
  const samples = Float32Array.from({ length: 16000 }, (_, i) => Math.sin(i / 9) * (i < 8000 ? 0.5 : 0.01));
  const whole = await rm.runAudio(yaml, { samples, sampleRate: 16000, timestampUs: 1000000 });
  assert.equal(whole.length, 50); // 20 ms blocks by default
  const s = await rm.createSession(yaml);
  const looped = [];
  for (let f = 0; f < 16000; f += 320) {
    looped.push(...(await s.process({ samples: samples.subarray(f, f + 320), sampleRate: 16000, timestampUs: 1000000 + f * 62.5 })));
  }
  await s.close();
  assert.deepEqual(whole, looped);
  assert.equal(whole[49].data.timestamp_ms, 1980);
  const seconds = await rm.runAudio(yaml, { samples, sampleRate: 16000 }, { blockFrames: 16000 });
  assert.equal(seconds.length, 1);
  await assert.rejects(rm.runAudio(yaml, { samples, sampleRate: 16000 }, { blockFrames: 0 }), /blockFrames must be at least 1/);
  await assert.rejects(rm.runAudio(yaml, "text"), TypeError);
  await assert.rejects(rm.runAudio("nodes: [{id: x, node_type: Nope}]", { samples, sampleRate: 16000 }), (e) => e.nodeId === "x");
});

test("measureAudio() runs the same loop and reports its speed instead of the outputs", async () => {
  const yaml = "nodes: [{id: v, node_type: VADNode}, {id: r, node_type: FastResampleNode, params: {target_rate: 48000}}]";
  const samples = Float32Array.from({ length: 32000 }, (_, i) => Math.sin(i / 7) * (i % 16000 < 8000 ? 0.5 : 0));
  const outputs = await rm.runAudio(yaml, { samples, sampleRate: 16000 });
  const report = await rm.measureAudio(yaml, { samples, sampleRate: 16000 });
  assert.equal(report.blocks, 100);
  assert.equal(report.outputs, outputs.length);
  assert.ok(report.outputs > 100, `${report.outputs} outputs`);
  assert.ok(report.ms > 0 && report.startMs >= 0, JSON.stringify(report));
  // 2 s of audio in `ms` milliseconds.
  assert.ok(Math.abs(report.realTime - 2000 / report.ms) < 1e-6 * report.realTime, JSON.stringify(report));
  const odd = await rm.measureAudio(yaml, { samples, sampleRate: 16000, channels: 2 }, { blockFrames: 3000 });
  assert.equal(odd.blocks, 6); // 16000 frames in blocks of 3000: the last one partial
  await assert.rejects(rm.measureAudio(yaml, { samples, sampleRate: 16000 }, { blockFrames: 0 }), /blockFrames must be at least 1/);
  await assert.rejects(rm.measureAudio(yaml, new Float32Array(4)), TypeError);
  await assert.rejects(rm.measureAudio("nodes: [{id: x, node_type: Nope}]", { samples, sampleRate: 16000 }), (e) => e.nodeId === "x");
  const bad = Float32Array.from(samples);
  bad[5] = NaN;
  await assert.rejects(rm.measureAudio(yaml, { samples: bad, sampleRate: 16000 }), /audio sample 5 is NaN/);
});

test("text, JSON and bytes go through; a node failure rejects with its id", async () => {
  const text = await rm.createSession("nodes: [{id: sentences, node_type: TextCollectorNode}]");
  await text.send("One. Tw");
  await text.send("o.");
  const sentences = [];
  for (let o = await text.recv(); o !== null; o = await text.recv()) sentences.push(o.data);
  assert.deepEqual(sentences, ["One.", "Two."]);
  await text.close();
  const echo = await rm.createSession("nodes: [{id: echo, node_type: PassThrough}]");
  await echo.send(new Uint8Array([1, 2, 3]));
  await echo.send({ a: [1, "x", null] });
  const back = [await echo.recv(), await echo.recv()];
  assert.deepEqual(back[0].data, new Uint8Array([1, 2, 3]));
  assert.deepEqual(back[1].data, { a: [1, "x", null] });
  await echo.close();
  const calc = await rm.createSession("nodes: [{id: calc, node_type: CalculatorNode}]");
  await calc.send({ operation: "divide", operands: [1, 0] });
  await assert.rejects(calc.recv(), (e) => e.nodeId === "calc");
  await assert.rejects(
    rm.createSession("nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: -5}}]"),
    (e) => e.nodeId === "r",
  );
  await assert.rejects(echo.send({ samples: new Float32Array(4) }), TypeError);
});

test("video frames go through the native video nodes", async () => {
  // 4x2 rgb24: left half white, right half black → gray8 at half the width.
  const pixels = new Uint8Array(4 * 2 * 3);
  for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) pixels.fill(255, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
  const s = await rm.createSession("nodes: [{id: gray, node_type: VideoFormatConverterNode, params: {pixel_format: gray8, width: 2}}]");
  await s.send({ pixels, width: 4, height: 2, format: "rgb24", frameNumber: 7, timestampUs: 40000, streamId: "video:0" });
  const out = await s.recv();
  assert.equal(out.nodeId, "gray");
  assert.equal(out.data.format, "gray8");
  assert.equal(out.data.width, 2);
  assert.equal(out.data.height, 1);
  assert.equal(out.data.frameNumber, 7);
  assert.equal(out.data.timestampUs, 40000);
  assert.equal(out.data.streamId, "video:0");
  assert.equal(out.data.pixels.length, 2);
  assert.ok(out.data.pixels[0] > 200 && out.data.pixels[1] < 50, `${out.data.pixels}`);
  await s.close();
  // A frame whose bytes do not match its size gets the native runtime's error.
  await assert.rejects(
    s.send({ pixels: new Uint8Array(5), width: 4, height: 2 }),
    (e) => e instanceof Error && e.message === "invalid data: a 4x2 rgb24 video frame has 24 bytes, got 5",
  );
  await assert.rejects(s.send({ pixels, width: 4, height: 2, format: "bgr" }), /unknown pixel format 'bgr'/);
});
