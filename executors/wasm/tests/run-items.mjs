// Runs one manifest in the WASM engine on a list of items (audio and video, as JSON) and
// prints every output as JSON (audio samples as the bit patterns of their f32 values, video
// pixels as byte lists, so a comparison can be exact):
//   REMOTEMEDIA_WASM_PKG=<pkg> node run-items.mjs MANIFEST ITEMS.json
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [manifestPath, itemsPath] = process.argv.slice(2);
const rm = await import(pathToFileURL(path.join(process.env.REMOTEMEDIA_WASM_PKG, "index.js")).href);
await rm.init();
const session = await rm.createSession(readFileSync(manifestPath, "utf8"));
const outputs = [];
const take = (o) => {
  const d = o.data;
  if (d && d.samples instanceof Float32Array) {
    const bits = Array.from(new Uint32Array(d.samples.buffer, d.samples.byteOffset, d.samples.length));
    outputs.push({ nodeId: o.nodeId, type: "audio", sampleRate: d.sampleRate, channels: d.channels, timestampUs: d.timestampUs, bits });
  } else if (d && d.pixels instanceof Uint8Array) {
    outputs.push({ nodeId: o.nodeId, type: "video", width: d.width, height: d.height, format: d.format,
      frameNumber: d.frameNumber, timestampUs: d.timestampUs, pixels: Array.from(d.pixels) });
  } else {
    outputs.push({ nodeId: o.nodeId, type: typeof d === "string" ? "text" : "json", value: d });
  }
};
for (const item of JSON.parse(readFileSync(itemsPath, "utf8"))) {
  const input = item.type === "video"
    ? { pixels: Uint8Array.from(item.pixels), width: item.width, height: item.height, format: item.format,
        frameNumber: item.frameNumber, timestampUs: item.timestampUs, streamId: "video:0" }
    : { samples: new Float32Array(Uint32Array.from(item.bits).buffer), sampleRate: item.sampleRate,
        channels: item.channels, timestampUs: item.timestampUs, streamId: "audio:0" };
  for (const o of await session.process(input)) take(o);
}
await session.close();
for await (const o of session) take(o);
process.stdout.write(JSON.stringify(outputs));
