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
  assert.deepEqual(rm.validate(yaml), { name: "demo", nodes: ["c"] });
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
