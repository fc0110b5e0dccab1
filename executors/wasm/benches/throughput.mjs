// The WASM side of `cargo xtask bench wasm`. Each case runs a manifest over the same audio
// in blocks of `block` frames through one session, timed; prints one JSON object per case.
//   REMOTEMEDIA_WASM_PKG=<pkg> node throughput.mjs CASES.json RAW_F32LE RATE
// A case: {name, yaml, block, mode, repeat?} (`repeat`: the audio that many times over) — mode "loop": send, then recv until null (what a live
// stream does with the send/recv API); "process": one `session.process(block)` per block;
// "run": one `runAudio` call for the whole buffer (the same per-block loop, inside the
// engine, every output handed to JavaScript); "measure": the same loop through
// `measureAudio` (outputs counted inside the engine, session start not timed).
// `node throughput.mjs --load` instead times loading the engine and Python (Pyodide) in
// this fresh process.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const rm = await import(pathToFileURL(path.join(process.env.REMOTEMEDIA_WASM_PKG, "index.js")).href);

if (process.argv[2] === "--load") {
  const t0 = performance.now();
  await rm.init();
  const engine = performance.now() - t0;
  await rm.loadPython();
  const python = performance.now() - t0 - engine;
  process.stdout.write(JSON.stringify({ engineMs: engine, pythonMs: python }));
  process.exit(0);
}

await rm.init();
const RUNS = Number(process.env.REMOTEMEDIA_BENCH_RUNS ?? 3);
const WARMUP = Number(process.env.REMOTEMEDIA_BENCH_WARMUP ?? 1);
const [casesPath, rawPath, rate] = process.argv.slice(2);
const raw = readFileSync(rawPath);
const clip = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
const results = [];
const tiled = new Map([[1, clip]]);
for (const { name, yaml, block, mode, repeat = 1 } of JSON.parse(readFileSync(casesPath, "utf8"))) {
  // The audio `repeat` times over (long runs for large blocks).
  if (!tiled.has(repeat)) {
    const long = new Float32Array(clip.length * repeat);
    for (let i = 0; i < repeat; i++) long.set(clip, i * clip.length);
    tiled.set(repeat, long);
  }
  const samples = tiled.get(repeat);
  const blocks = [];
  for (let i = 0; i + block <= samples.length; i += block) blocks.push(samples.subarray(i, i + block));
  const run = async () => {
    if (mode === "measure") {
      const report = await rm.measureAudio(yaml, { samples, sampleRate: Number(rate) }, { blockFrames: block });
      return { ms: report.ms, outputs: report.outputs };
    }
    if (mode === "run") {
      const t0 = performance.now();
      const outputs = (await rm.runAudio(yaml, { samples, sampleRate: Number(rate) }, { blockFrames: block })).length;
      return { ms: performance.now() - t0, outputs };
    }
    const s = await rm.createSession(yaml);
    const t0 = performance.now();
    let outputs = 0;
    for (let i = 0; i < blocks.length; i++) {
      const input = { samples: blocks[i], sampleRate: Number(rate), channels: 1, timestampUs: Math.round((i * block * 1e6) / Number(rate)) };
      if (mode === "process") {
        outputs += (await s.process(input)).length;
      } else {
        await s.send(input);
        for (let o = await s.recv(); o !== null; o = await s.recv()) outputs++;
      }
    }
    await s.close();
    for await (const _ of s) outputs++;
    return { ms: performance.now() - t0, outputs };
  };
  for (let i = 0; i < WARMUP; i++) await run(); // warm-up (and, for Python cases, Pyodide's load)
  const runs = [];
  // (Forcing a collection between runs made the runs that build JavaScript objects
  // slower: V8 shrinks its young generation after one. The engine's own loop makes none.)
  for (let i = 0; i < RUNS; i++) runs.push(await run());
  const best = runs.sort((a, b) => a.ms - b.ms)[0];
  results.push({ name, blocks: blocks.length, ms: best.ms, outputs: best.outputs });
}
process.stdout.write(JSON.stringify(results));
