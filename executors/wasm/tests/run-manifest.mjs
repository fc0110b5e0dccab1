// Runs one manifest in the WASM engine on raw audio and prints every output as JSON (audio
// samples as the bit patterns of their f32 values, so a comparison can be bit-exact):
//   REMOTEMEDIA_WASM_PKG=<pkg> node run-manifest.mjs MANIFEST RAW_F32LE RATE CHANNELS CHUNK_FRAMES
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [manifestPath, rawPath, rate, channels, chunk] = process.argv.slice(2);
const rm = await import(pathToFileURL(path.join(process.env.REMOTEMEDIA_WASM_PKG, "index.js")).href);
await rm.init();
const raw = readFileSync(rawPath);
const samples = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const ch = Number(channels);
const step = Number(chunk) * ch;
const session = await rm.createSession(readFileSync(manifestPath, "utf8"));
const outputs = [];
const take = (o) => {
  const d = o.data;
  if (d && d.samples instanceof Float32Array) {
    const bits = Array.from(new Uint32Array(d.samples.buffer, d.samples.byteOffset, d.samples.length));
    outputs.push({ nodeId: o.nodeId, type: "audio", sampleRate: d.sampleRate, channels: d.channels, timestampUs: d.timestampUs, bits });
  } else {
    outputs.push({ nodeId: o.nodeId, type: typeof d === "string" ? "text" : "json", value: d });
  }
};
for (let i = 0, n = 0; i < samples.length; i += step, n++) {
  const part = samples.slice(i, i + step);
  await session.send({ samples: part, sampleRate: Number(rate), channels: ch, timestampUs: Math.round((i / ch) * 1e6 / Number(rate)), streamId: "audio:0" });
  for (let o = await session.recv(); o !== null; o = await session.recv()) take(o);
}
await session.close();
for await (const o of session) take(o);
process.stdout.write(JSON.stringify(outputs));
