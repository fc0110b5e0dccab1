// The WASM side of `cargo xtask bench wasm`: each manifest runs over the same audio in 20 ms
// frames (send, then recv until null), timed; prints one JSON object per manifest.
//   REMOTEMEDIA_WASM_PKG=<pkg> node throughput.mjs CASES.json RAW_F32LE RATE
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [casesPath, rawPath, rate] = process.argv.slice(2);
const rm = await import(pathToFileURL(path.join(process.env.REMOTEMEDIA_WASM_PKG, "index.js")).href);
await rm.init();
const raw = readFileSync(rawPath);
const samples = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
const frame = Number(rate) / 50;
const frames = [];
for (let i = 0; i + frame <= samples.length; i += frame) frames.push(samples.subarray(i, i + frame));
const results = [];
for (const { name, yaml } of JSON.parse(readFileSync(casesPath, "utf8"))) {
  const run = async () => {
    const s = await rm.createSession(yaml);
    const t0 = performance.now();
    let outputs = 0;
    for (let i = 0; i < frames.length; i++) {
      await s.send({ samples: frames[i], sampleRate: Number(rate), channels: 1, timestampUs: i * 20000 });
      for (let o = await s.recv(); o !== null; o = await s.recv()) outputs++;
    }
    await s.close();
    for await (const _ of s) outputs++;
    return { ms: performance.now() - t0, outputs };
  };
  await run(); // warm-up
  const best = [await run(), await run(), await run()].sort((a, b) => a.ms - b.ms)[0];
  results.push({ name, frames: frames.length, ms: best.ms, outputs: best.outputs });
}
process.stdout.write(JSON.stringify(results));
